/*
 * tokenize.c: words a light edit cannot change.
 *
 * Attribution must see through the edits a model (or a person passing a model's output off as
 * their own) makes for free: case, punctuation, spacing, accents, and characters nobody sees. So
 * a word is its letters and digits only, case-folded, accents dropped; everything else between
 * words is a separator; and the invisible characters (zero-width spaces and joiners, soft hyphens,
 * combining marks, bidi controls, variation selectors) are dropped without splitting the word they
 * sit in, or "co\u200Bpy" would be two words and hide a copied span. An apostrophe inside a word
 * joins it ("don't" and "dont" are one word), since dropping it is a punctuation edit too.
 *
 * Scripts written without spaces (CJK ideographs, kana) make each character a word. Other scripts
 * keep their letters as they are, with case folding for Greek and Cyrillic. This is not full
 * Unicode case folding or normalisation (no tables of the whole UCD here): it covers what text in
 * the Latin, Greek and Cyrillic scripts does in practice, and every other letter still tokenizes,
 * unfolded.
 *
 * ASCII bytes take a table lookup each; the rest decode strict UTF-8 (an invalid byte is a
 * separator, never a crash or a joined word).
 */
#include <stdlib.h>
#include <string.h>

#include "registry/span/span_internal.h"

enum cls {
    C_SEP,    /* ends a word */
    C_WORD,   /* letter or digit: part of a word (folded form in the output) */
    C_APOS,   /* apostrophe: joins two letters, else a separator */
    C_IGNORE, /* invisible: dropped, does not end a word */
    C_IDEO,   /* a word of its own */
};

/* Latin-1 letters U+00C0..U+00FF without their accents; NULL: not a letter (x and / signs). */
static const char *const latin1_fold[64] = {
    "a", "a", "a",  "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o",  "o", "o", "o", "o",  NULL, "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a",  "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o",  "o", "o", "o", "o",  NULL, "o", "u", "u", "u", "u", "y", "th", "y",
};

/* Latin Extended-A U+0100..U+017F: each letter's base (letters with strokes too). */
static const char *const latin_ext_a_fold[128] = {
    "a", "a", "a", "a", "a", "a", "c", "c", "c", "c", "c", "c", "c", "c", "d", "d",
    "d", "d", "e", "e", "e", "e", "e", "e", "e", "e", "e", "e", "g", "g", "g", "g",
    "g", "g", "g", "g", "h", "h", "h", "h", "i", "i", "i", "i", "i", "i", "i", "i",
    "i", "i", "ij", "ij", "j", "j", "k", "k", "k", "l", "l", "l", "l", "l", "l", "l",
    "l", "l", "l", "n", "n", "n", "n", "n", "n", "n", "n", "n", "o", "o", "o", "o",
    "o", "o", "oe", "oe", "r", "r", "r", "r", "r", "r", "s", "s", "s", "s", "s", "s",
    "s", "s", "t", "t", "t", "t", "t", "t", "u", "u", "u", "u", "u", "u", "u", "u",
    "u", "u", "u", "u", "w", "w", "y", "y", "y", "z", "z", "z", "z", "z", "z", "s",
};

static inline int ascii_letter(unsigned c) { return (unsigned)((c | 0x20) - 'a') < 26u; }
static inline int ascii_word(unsigned c) { return (unsigned)(c - '0') < 10u || ascii_letter(c); }
static inline char ascii_fold(unsigned c) { return (char)(ascii_letter(c) ? c | 0x20 : c); }

static int in(uint32_t cp, uint32_t lo, uint32_t hi) { return cp >= lo && cp <= hi; }

/* Decodes one strict UTF-8 code point at s[0..n) (n >= 1, s[0] >= 0x80). Returns its length, or 0
 * for an invalid sequence (overlong, surrogate, beyond U+10FFFF, truncated). */
size_t span_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1Fu, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0Fu, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07u, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || in(v, 0xD800, 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* The class of a non-ASCII code point and, for a word character, its folded form: either a short
 * ASCII string (*fold) or a code point (*out). */
static enum cls classify(uint32_t cp, const char **fold, uint32_t *out) {
    *fold = NULL;
    *out = cp;
    if (cp < 0xC0) {
        if (cp == 0xAA || cp == 0xBA) { /* ordinal indicators: letters */
            *fold = cp == 0xAA ? "a" : "o";
            return C_WORD;
        }
        if (cp == 0xB5) { /* micro sign: Greek mu */
            *out = 0x3BC;
            return C_WORD;
        }
        return cp == 0xAD ? C_IGNORE : C_SEP; /* soft hyphen; controls, NBSP, Latin-1 symbols */
    }
    if (cp < 0x100) {
        *fold = latin1_fold[cp - 0xC0];
        return *fold ? C_WORD : C_SEP;
    }
    if (cp < 0x180) {
        *fold = latin_ext_a_fold[cp - 0x100];
        return C_WORD;
    }
    if (cp == 0x2BC) return C_APOS; /* modifier letter apostrophe */
    if (in(cp, 0x2B0, 0x2FF) || in(cp, 0x300, 0x36F)) return C_IGNORE; /* modifiers, combining */
    if (in(cp, 0x370, 0x3FF)) {                                          /* Greek */
        if (cp == 0x37E || cp == 0x387 || cp == 0x375 || cp == 0x384 || cp == 0x385) return C_SEP;
        static const struct { uint16_t from, to; } greek[] = {
            {0x386, 0x3B1}, {0x388, 0x3B5}, {0x389, 0x3B7}, {0x38A, 0x3B9}, {0x38C, 0x3BF},
            {0x38E, 0x3C5}, {0x38F, 0x3C9}, {0x390, 0x3B9}, {0x3AA, 0x3B9}, {0x3AB, 0x3C5},
            {0x3AC, 0x3B1}, {0x3AD, 0x3B5}, {0x3AE, 0x3B7}, {0x3AF, 0x3B9}, {0x3B0, 0x3C5},
            {0x3C2, 0x3C3}, {0x3CA, 0x3B9}, {0x3CB, 0x3C5}, {0x3CC, 0x3BF}, {0x3CD, 0x3C5},
            {0x3CE, 0x3C9},
        };
        for (size_t i = 0; i < sizeof greek / sizeof greek[0]; i++)
            if (greek[i].from == cp) *out = greek[i].to;
        if (in(cp, 0x391, 0x3A9)) *out = cp + 0x20;
        return C_WORD;
    }
    if (in(cp, 0x400, 0x4FF)) { /* Cyrillic; ё is written е as often as not */
        if (in(cp, 0x482, 0x489)) return in(cp, 0x483, 0x489) ? C_IGNORE : C_SEP;
        if (in(cp, 0x400, 0x40F)) *out = cp + 0x50;
        else if (in(cp, 0x410, 0x42F)) *out = cp + 0x20;
        else if (in(cp, 0x460, 0x4BF) && !(cp & 1)) *out = cp + 1;
        if (*out == 0x451) *out = 0x435;
        return C_WORD;
    }
    if (in(cp, 0x1AB0, 0x1AFF) || in(cp, 0x1DC0, 0x1DFF) || in(cp, 0x20D0, 0x20FF) || in(cp, 0xFE20, 0xFE2F))
        return C_IGNORE; /* combining marks */
    if (in(cp, 0x2000, 0x206F)) { /* general punctuation, with the invisible controls */
        if (cp == 0x2019) return C_APOS;
        if (in(cp, 0x200B, 0x200F) || in(cp, 0x202A, 0x202E) || in(cp, 0x2060, 0x206F)) return C_IGNORE;
        return C_SEP;
    }
    if (in(cp, 0x2070, 0x2BFF) || in(cp, 0x2E00, 0x2E7F)) return C_SEP; /* symbols, arrows, shapes */
    if (in(cp, 0x3005, 0x3007)) return C_IDEO;
    if (in(cp, 0x3000, 0x303F)) return C_SEP; /* CJK punctuation, ideographic space */
    if (in(cp, 0x3040, 0x30FF) || in(cp, 0x31F0, 0x31FF) || in(cp, 0x3400, 0x4DBF) || in(cp, 0x4E00, 0x9FFF) ||
        in(cp, 0xF900, 0xFAFF) || in(cp, 0xFF66, 0xFF9F) || in(cp, 0x20000, 0x3134F))
        return C_IDEO;
    if (in(cp, 0xE000, 0xF8FF)) return C_SEP; /* private use */
    if (in(cp, 0xFE00, 0xFE0F) || cp == 0xFEFF || in(cp, 0xE0000, 0xE007F) || in(cp, 0xE0100, 0xE01EF))
        return C_IGNORE; /* variation selectors, byte order mark, tags */
    if (in(cp, 0xFE10, 0xFE1F) || in(cp, 0xFE30, 0xFE6F)) return C_SEP;
    if (in(cp, 0xFF00, 0xFFEF)) { /* fullwidth and halfwidth forms */
        if (in(cp, 0xFF10, 0xFF19)) *out = '0' + (cp - 0xFF10);
        else if (in(cp, 0xFF21, 0xFF3A)) *out = 'a' + (cp - 0xFF21);
        else if (in(cp, 0xFF41, 0xFF5A)) *out = 'a' + (cp - 0xFF41);
        else if (in(cp, 0xFFA0, 0xFFDC)) return C_WORD; /* halfwidth hangul */
        else return C_SEP;
        return C_WORD;
    }
    if (in(cp, 0xFFF0, 0xFFFF) || in(cp, 0x1F000, 0x1FAFF) || in(cp, 0xF0000, 0x10FFFF)) return C_SEP;
    return C_WORD;
}

static size_t utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int span_grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Opens a word at byte i (its normalised form starts at nl). NULL when out of memory. */
static span_token *start_word(span_tokens *out, size_t i, size_t nl) {
    if (span_grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v)) return NULL;
    span_token *t = &out->v[out->n++];
    t->start = (uint32_t)i;
    t->norm = (uint32_t)nl;
    return t;
}

/* The class of the character at text[i] (and its length and folded form). */
static enum cls char_at(const unsigned char *t, size_t len, size_t i, size_t *clen, const char **fold, uint32_t *cp) {
    unsigned char c = t[i];
    if (c < 0x80) {
        *clen = 1;
        *fold = NULL;
        *cp = (uint32_t)ascii_fold(c);
        return ascii_word(c) ? C_WORD : c == '\'' ? C_APOS : C_SEP;
    }
    size_t n = span_utf8_decode(t + i, len - i, cp);
    if (!n) {
        *clen = 1;
        return C_SEP;
    }
    *clen = n;
    return classify(*cp, fold, cp);
}

int span_tokenize(const char *text, size_t len, span_tokens *out, acc_err *err) {
    if (len > SPAN_MAX_TEXT) return acc_fail(err, ACC_ELIMIT, "text of %zu bytes: at most %zu can be tokenized", len, SPAN_MAX_TEXT);
    out->n = 0;
    out->norm_len = 0;
    const unsigned char *t = (const unsigned char *)text;
    /* A normalised word is never longer than its text (the widest folds, "ß" -> "ss" and the
     * fullwidth letters, keep or shrink the byte count), so one allocation holds them all. */
    if (span_grow((void **)&out->norm, &out->norm_cap, len + 1, 1)) return acc_fail(err, ACC_ENOMEM, "tokenize: out of memory");
    char *norm = out->norm;
    size_t nl = 0;
    int inword = 0;
    span_token *cur = NULL;
    size_t i = 0;
    while (i < len) {
        unsigned char c = t[i];
        if (c < 0x80 && ascii_word(c)) { /* the common case: a run of ASCII letters and digits */
            if (!inword) {
                if (!(cur = start_word(out, i, nl))) return acc_fail(err, ACC_ENOMEM, "tokenize: out of memory");
                inword = 1;
            }
            do norm[nl++] = ascii_fold(t[i++]);
            while (i < len && t[i] < 0x80 && ascii_word(t[i]));
            cur->end = (uint32_t)i;
            continue;
        }
        if (c < 0x80 && c != '\'') { /* the next most common: an ASCII separator (char_at's C_SEP) */
            if (inword) cur->norm_len = (uint32_t)(nl - cur->norm);
            inword = 0;
            i++;
            continue;
        }
        size_t clen;
        const char *fold;
        uint32_t cp;
        enum cls k = char_at(t, len, i, &clen, &fold, &cp);
        if (k == C_APOS) {
            /* Joins only letter'letter: look at what follows. */
            size_t nlen;
            const char *nf;
            uint32_t ncp;
            if (inword && i + clen < len && char_at(t, len, i + clen, &nlen, &nf, &ncp) == C_WORD) {
                i += clen;
                continue;
            }
            k = C_SEP;
        }
        if (k == C_IGNORE) {
            i += clen;
            continue;
        }
        if (k == C_SEP) {
            if (inword) cur->norm_len = (uint32_t)(nl - cur->norm);
            inword = 0;
            i += clen;
            continue;
        }
        if (k == C_IDEO && inword) {
            cur->norm_len = (uint32_t)(nl - cur->norm);
            inword = 0;
        }
        if (!inword) {
            if (!(cur = start_word(out, i, nl))) return acc_fail(err, ACC_ENOMEM, "tokenize: out of memory");
            inword = 1;
        }
        if (fold) {
            size_t fl = strlen(fold);
            memcpy(norm + nl, fold, fl);
            nl += fl;
        } else {
            nl += utf8_encode(cp, norm + nl);
        }
        i += clen;
        cur->end = (uint32_t)i;
        if (k == C_IDEO) {
            cur->norm_len = (uint32_t)(nl - cur->norm);
            inword = 0;
        }
    }
    if (inword) cur->norm_len = (uint32_t)(nl - cur->norm);
    out->norm_len = nl;
    return ACC_OK;
}

void span_tokens_free(span_tokens *t) {
    free(t->v);
    free(t->norm);
    memset(t, 0, sizeof *t);
}
