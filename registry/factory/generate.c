/*
 * generate.c: continuing a prompt with the n-gram model, greedily and deterministically.
 *
 * Stupid back-off (Brants, Popat, Xu, Och and Dean, "Large Language Models in Machine
 * Translation", 2007): the score of word w after the last L words c is count(c w) / count(c) when
 * c w occurs, else 0.4 times its score after the last L-1 words, down to the unigram frequency.
 * Counts are suffix-array ranges: the occurrences of c are one range, and within it the suffixes
 * are sorted by the word after c, so each next word's count is a sub-range found by galloping. A
 * word seen after a longer context takes its score from there; a shorter context is not looked at
 * once the best score so far beats anything it could give (0.4^drop x 1). Scores are compared as
 * exact fractions (128-bit cross products), so no rounding decides a word; ties go to the smaller
 * word id, and the end of a record (SPAN_SEP, the smallest) ends the text, once it has a word (a
 * prompt that ends where records end is continued with the best word that ever follows it).
 *
 * Greedy decoding of an n-gram model loops ("the cat sat on the cat sat on"); like the
 * no_repeat_ngram_size of common decoders, a word that would repeat an n-gram the text (prompt
 * included) already holds is skipped for the next best.
 *
 * Each word is written as it stands at one occurrence in the records: the occurrence right after
 * the previous word's when the record goes on with this word (then the record's own spacing and
 * punctuation between them are kept), else the first occurrence of the chosen n-gram in the suffix
 * array, with the punctuation glued to it.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/factory/factory_internal.h"
#include "runtime/base/sort.h"

#define NONE UINT32_MAX

typedef struct cand {
    uint32_t w;     /* word id, or SPAN_SEP: end of text */
    uint64_t count; /* occurrences of context + w */
    uint64_t total; /* occurrences of the context */
    uint32_t drop;  /* back-off steps from the longest context: score x 0.4^drop */
    uint32_t pos;   /* an occurrence of w (corpus position) */
} cand;

static unsigned __int128 pow_u(uint64_t b, uint32_t e) {
    unsigned __int128 r = 1;
    while (e--) r *= b;
    return r;
}

/* a's score > b's (ties: the smaller word id wins). */
static bool better(const cand *a, const cand *b) {
    /* (2/5)^da ca/ta  vs  (2/5)^db cb/tb  <=>  ca tb 2^da 5^db  vs  cb ta 2^db 5^da */
    unsigned __int128 l = (unsigned __int128)a->count * b->total * pow_u(2, a->drop) * pow_u(5, b->drop);
    unsigned __int128 r = (unsigned __int128)b->count * a->total * pow_u(2, b->drop) * pow_u(5, a->drop);
    if (l != r) return l > r;
    return a->w < b->w;
}

/* Would w after hist[0..h) repeat an n-gram of size n already in hist? */
static bool repeats(const uint32_t *hist, size_t h, uint32_t w, uint32_t n) {
    if (n < 1 || h + 1 < n) return false;
    const uint32_t *tail = hist + h - (n - 1);
    for (size_t j = 0; j + n <= h; j++)
        if (hist[j + n - 1] == w && memcmp(hist + j, tail, (size_t)(n - 1) * sizeof *hist) == 0) return true;
    return false;
}

static bool in_sorted(const uint32_t *v, size_t n, uint32_t w) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < w) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && v[lo] == w;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}


/* The word after the context at suffix rank r. */
static inline uint32_t next_word(const span_corpus *c, uint32_t r, uint32_t L) {
    return span_corpus_token(c, span_corpus_suffix(c, r) + L);
}

/* The end of the run of ranks from r (< hi) whose next word is w, in a range whose suffixes share
 * their first L words: while neighbours share L + 1 tokens (a few bytes), then galloping and
 * bisection. */
static uint32_t group_end(const factory_model *m, uint32_t r, uint32_t hi, uint32_t L, uint32_t w) {
    const span_corpus *c = m->corpus;
    uint32_t limit = hi - r > 64 ? r + 64 : hi, e = r + 1;
    while (e < limit && m->lcp[e] > L) e++;
    if (e < limit || e == hi) return e;
    r = e - 1; /* the last of 64 with w: gallop on from there */
    uint32_t step = 1, lo = r + 1;
    while (r + step < hi && next_word(c, r + step, L) == w) {
        lo = r + step + 1;
        step *= 2;
    }
    uint32_t end = r + step < hi ? r + step : hi;
    while (lo < end) {
        uint32_t mid = lo + (end - lo) / 2;
        if (next_word(c, mid, L) == w) lo = mid + 1;
        else end = mid;
    }
    return lo;
}

/* The ranks [lo, hi) of the suffixes that share their first L words with the suffix at rank r:
 * while the common prefixes of neighbours reach L, a few bytes read near r; a long range is
 * bounded by searching the suffix array around r. */
static void find_around(const factory_model *m, uint32_t r, uint32_t L, uint32_t *lo, uint32_t *hi) {
    enum { SCAN = 64 };
    uint32_t nsuf = span_corpus_suffixes(m->corpus), a = r, b = r + 1;
    while (a > 0 && r - a < SCAN && m->lcp[a] >= L) a--;
    while (b < nsuf && b - r < SCAN && m->lcp[b] >= L) b++;
    if ((a > 0 && m->lcp[a] >= L) || (b < nsuf && m->lcp[b] >= L)) {
        span_corpus_find_around(m->corpus, r, L, lo, hi);
        return;
    }
    *lo = a;
    *hi = b;
}

typedef struct chooser {
    const factory_model *m;
    const uint32_t *hist;
    size_t h;
    uint32_t nrep; /* no-repeat n-gram size */
    bool allow_end; /* may the text end here? (not before its first word) */
    uint32_t at;    /* NONE, or a corpus position where hist's last `atlen` words occur (ending there) */
    uint32_t atlen;
    uint32_t *seen; /* words scored at a longer context (sorted after each level) */
    size_t nseen, seen_cap;
} chooser;

static int remember(chooser *ch, uint32_t w) {
    if (ch->nseen == ch->seen_cap) {
        size_t c = ch->seen_cap ? ch->seen_cap * 2 : 64;
        uint32_t *q = realloc(ch->seen, c * sizeof *q);
        if (!q) return -1;
        ch->seen = q;
        ch->seen_cap = c;
    }
    ch->seen[ch->nseen++] = w;
    return 0;
}

/* The best next word given hist, in *best (best->w == 0: nothing can follow). */
static int choose(chooser *ch, cand *best) {
    const factory_model *m = ch->m;
    const span_corpus *c = m->corpus;
    uint32_t maxctx = m->order - 1;
    if (maxctx > ch->h) maxctx = (uint32_t)ch->h;
    memset(best, 0, sizeof *best);
    ch->nseen = 0;
    for (uint32_t L = maxctx + 1; L-- > 0;) {
        uint32_t drop = maxctx - L;
        if (best->w) { /* can this level still win? its best possible is 0.4^drop x 1 */
            cand bound = {.w = 0, .count = 1, .total = 1, .drop = drop};
            if (better(best, &bound)) break;
        }
        size_t seen_before = ch->nseen;
        if (L == 0) {
            /* Unigrams: the most frequent word not scored above and not repeating. */
            uint64_t total = span_corpus_tokens(c);
            for (size_t i = 0; i < m->nuni; i++) {
                uint32_t w = m->unigram[i];
                if (in_sorted(ch->seen, seen_before, w) || repeats(ch->hist, ch->h, w, ch->nrep)) continue;
                uint32_t lo, hi;
                span_corpus_find(c, &w, 1, &lo, &hi);
                cand k = {.w = w, .count = hi - lo, .total = total, .drop = drop, .pos = span_corpus_suffix(c, lo)};
                if (!best->w || better(&k, best)) *best = k;
                break; /* the first eligible one is this level's best */
            }
            break;
        }
        const uint32_t *ctx = ch->hist + ch->h - L;
        uint32_t lo, hi;
        if (L >= 2 && ch->at != NONE && ch->atlen >= L) /* the context occurs at at - L + 1 */
            find_around(m, m->rank[ch->at - L + 1], L, &lo, &hi);
        else
            span_corpus_find(c, ctx, L, &lo, &hi);
        if (lo == hi) continue; /* unseen context: back off */
        for (uint32_t r = lo; r < hi;) {
            uint32_t w = next_word(c, r, L);
            uint32_t e = group_end(m, r, hi, L, w);
            if (!in_sorted(ch->seen, seen_before, w)) {
                cand k = {.w = w, .count = e - r, .total = hi - lo, .drop = drop, .pos = span_corpus_suffix(c, r) + L};
                bool ok = w == SPAN_SEP ? ch->allow_end : !repeats(ch->hist, ch->h, w, ch->nrep);
                if (ok && (!best->w || better(&k, best))) *best = k;
                if (remember(ch, w)) return -1;
            }
            r = e;
        }
        acc_sort(ch->seen, ch->nseen, sizeof *ch->seen, cmp_u32); /* a context is mostly followed by a handful of words */
    }
    return 0;
}

/* Appends text[a, b) of the record holding pos (hint: factory_record_of's). */
static void put_range(acc_buf *b, const factory_model *m, uint32_t pos, size_t from, size_t to, uint32_t *hint) {
    const char *t = factory_text_at(m, pos, hint);
    if (to > from) acc_buf_append(b, t + from, to - from);
}

int factory_continue(const factory_model *m, const char *prompt, size_t len, uint32_t max_tokens, factory_output *out,
                     acc_err *err) {
    memset(out, 0, sizeof *out);
    if (max_tokens < 1 || max_tokens > FACTORY_MAX_TOKENS)
        return acc_fail(err, ACC_EINVAL, "max_tokens: %u is not 1..%d", max_tokens, FACTORY_MAX_TOKENS);
    span_tokens tk = SPAN_TOKENS_INIT;
    int rc = span_tokenize(prompt, len, &tk, err);
    if (!rc) rc = factory_continue_tokens(m, &tk, max_tokens, out, err);
    span_tokens_free(&tk);
    return rc;
}

int factory_continue_tokens(const factory_model *m, const span_tokens *prompt, uint32_t max_tokens, factory_output *out,
                            acc_err *err) {
    memset(out, 0, sizeof *out);
    if (max_tokens < 1 || max_tokens > FACTORY_MAX_TOKENS)
        return acc_fail(err, ACC_EINVAL, "max_tokens: %u is not 1..%d", max_tokens, FACTORY_MAX_TOKENS);
    int rc = ACC_OK;
    chooser ch = {.m = m, .nrep = m->order < 2 ? 2 : m->order, .at = NONE};
    uint32_t *hist = malloc((prompt->n + max_tokens + 1) * sizeof *hist);
    acc_buf b = ACC_BUF_INIT;
    if (!hist) return acc_fail(err, ACC_ENOMEM, "model: out of memory");
    span_vocab_find_ids(m->vocab, prompt, hist);
    ch.hist = hist;
    ch.h = prompt->n;
    out->prompt_tokens = (uint32_t)prompt->n;

    uint32_t prev = NONE, rec = NONE; /* rec: the record of the last word written */
    out->finish = FACTORY_FINISH_LENGTH;
    while (out->completion_tokens < max_tokens) {
        cand best;
        ch.allow_end = out->completion_tokens > 0;
        if (choose(&ch, &best)) {
            rc = acc_fail(err, ACC_ENOMEM, "model: out of memory");
            break;
        }
        if (best.w == 0 || best.w == SPAN_SEP) {
            out->finish = FACTORY_FINISH_STOP;
            break;
        }
        uint32_t p = best.pos;
        if (prev != NONE && span_corpus_token(m->corpus, prev + 1) == best.w) p = prev + 1; /* the record goes on */
        if (prev != NONE && p == prev + 1) {
            put_range(&b, m, p, m->tend[prev], m->tend[p], &rec);
        } else {
            if (prev != NONE) put_range(&b, m, prev, m->tend[prev], factory_trailing_end(m, prev, &rec), &rec);
            if (b.len) acc_buf_putc(&b, ' ');
            put_range(&b, m, p, factory_leading_start(m, p, &rec), m->tend[p], &rec);
        }
        prev = p;
        hist[ch.h++] = best.w;
        /* best.pos holds best.w after the context it was found at (maxctx - drop words). */
        ch.at = best.pos;
        ch.atlen = m->order - 1 < ch.h - 1 ? m->order - 1 : (uint32_t)ch.h - 1;
        ch.atlen = ch.atlen - best.drop + 1;
        out->completion_tokens++;
    }
    if (!rc && prev != NONE) put_range(&b, m, prev, m->tend[prev], factory_trailing_end(m, prev, &rec), &rec);
    free(hist);
    free(ch.seen);
    if (!rc && acc_buf_failed(&b)) rc = acc_fail(err, ACC_ENOMEM, "model: out of memory");
    if (rc) {
        acc_buf_free(&b);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->text = acc_buf_take(&b, &out->len);
    return out->text ? ACC_OK : acc_fail(err, ACC_ENOMEM, "model: out of memory");
}
