/*
 * cframe.c: a client's WebSocket frame read into the fields the host looks at (rt_cframe,
 * session.h): type, id, agent, budget, content, run, session, last_seq.
 *
 * Why not jansson alone: parsing each message frame into a tree of allocated nodes (and printing its
 * id back out) was ~7% of an echo agent's round trip in the server. The frames clients send are
 * small flat objects, so a short scanner reads the common ones in place: ASCII text, string values
 * with the simple escapes, integers of up to 18 digits, null, true, false, at most 16 members. For
 * anything else (non-ASCII text, \u escapes, nested values, other numbers, a duplicate member, any
 * syntax error) it gives up, and jansson reads the frame as before: a frame means the same
 * whichever reads it, and every error message is jansson's.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/server/session.h"

#define CF_MAX_MEMBERS 16
#define CF_MAX_DIGITS 18 /* fits a long long, so no overflow to check */

typedef struct scan {
    const char *p, *end;
    char *out; /* decoded strings, NUL-terminated (room: the frame's length + 1 per member) */
} scan_t;

static void skip_ws(scan_t *sc) {
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r')) sc->p++;
}

/* A string at sc->p (its opening quote), decoded into sc->out. false: not one the scanner reads. */
static bool scan_string(scan_t *sc, const char **s, size_t *len) {
    if (sc->p >= sc->end || *sc->p != '"') return false;
    sc->p++;
    char *o = sc->out;
    *s = o;
    while (sc->p < sc->end) {
        unsigned char ch = (unsigned char)*sc->p++;
        if (ch == '"') {
            *len = (size_t)(o - *s);
            *o++ = 0;
            sc->out = o;
            return true;
        }
        if (ch < 0x20 || ch >= 0x80) return false; /* invalid, or text jansson checks as UTF-8 */
        if (ch == '\\') {
            if (sc->p >= sc->end) return false;
            switch (*sc->p++) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            default: return false; /* \u (surrogates, \u0000) and errors: jansson's */
            }
        }
        *o++ = (char)ch;
    }
    return false;
}

static bool scan_word(scan_t *sc, const char *w, size_t n) {
    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, w, n) != 0) return false;
    sc->p += n;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A value: string, integer, null, true or false. */
static bool scan_value(scan_t *sc, rt_cfield *v) {
    if (sc->p >= sc->end) return false;
    char c = *sc->p;
    if (c == '"') {
        v->kind = CF_STRING;
        return scan_string(sc, &v->s, &v->len);
    }
    if (c == 'n') return (v->kind = CF_NULL, scan_word(sc, "null", 4));
    if (c == 't') return (v->kind = CF_OTHER, scan_word(sc, "true", 4));
    if (c == 'f') return (v->kind = CF_OTHER, scan_word(sc, "false", 5));
    bool neg = c == '-';
    if (neg) sc->p++;
    const char *d = sc->p;
    long long n = 0;
    while (sc->p < sc->end && is_digit(*sc->p) && sc->p - d < CF_MAX_DIGITS) n = n * 10 + (*sc->p++ - '0');
    if (sc->p < sc->end && is_digit(*sc->p)) return false; /* more digits than it reads */
    size_t digits = (size_t)(sc->p - d);
    if (!digits || (digits > 1 && *d == '0')) return false;
    if (sc->p < sc->end && (*sc->p == '.' || *sc->p == 'e' || *sc->p == 'E')) return false; /* a real */
    v->kind = CF_INTEGER;
    v->i = neg ? -n : n;
    return true;
}

static rt_cfield *field_named(rt_cfields *f, const char *k, size_t n) {
#define CF_NAME(name)                                                                                     \
    if (n == sizeof #name - 1 && memcmp(k, #name, n) == 0) return &f->name;
    CF_NAME(type)
    CF_NAME(id)
    CF_NAME(agent)
    CF_NAME(budget)
    CF_NAME(content)
    CF_NAME(run)
    CF_NAME(session)
    CF_NAME(last_seq)
#undef CF_NAME
    return NULL;
}

/* The scanner's reading of data into *out, its strings decoded into scratch; false when jansson
 * must read it. */
static bool scan_frame(rt_cfields *out, char *scratch, const char *data, size_t len) {
    scan_t sc = {.p = data, .end = data + len, .out = scratch};
    const char *keys[CF_MAX_MEMBERS];
    size_t key_len[CF_MAX_MEMBERS], members = 0;
    rt_cfields got = {0};
    skip_ws(&sc);
    if (sc.p >= sc.end || *sc.p++ != '{') return false;
    skip_ws(&sc);
    if (sc.p < sc.end && *sc.p == '}') sc.p++;
    else
        for (;;) {
            const char *k;
            size_t kn;
            if (members == CF_MAX_MEMBERS || !scan_string(&sc, &k, &kn)) return false;
            for (size_t i = 0; i < members; i++)
                if (key_len[i] == kn && memcmp(keys[i], k, kn) == 0) return false; /* jansson names it */
            keys[members] = k, key_len[members++] = kn;
            skip_ws(&sc);
            if (sc.p >= sc.end || *sc.p++ != ':') return false;
            skip_ws(&sc);
            rt_cfield v = {0};
            if (!scan_value(&sc, &v)) return false;
            rt_cfield *slot = field_named(&got, k, kn);
            if (slot) *slot = v;
            skip_ws(&sc);
            if (sc.p >= sc.end) return false;
            char c = *sc.p++;
            if (c == '}') break;
            if (c != ',') return false;
            skip_ws(&sc);
        }
    skip_ws(&sc);
    if (sc.p != sc.end) return false;
    *out = got;
    return true;
}

static rt_cfield field_of(json_t *v) {
    if (!v) return (rt_cfield){.kind = CF_ABSENT};
    if (json_is_null(v)) return (rt_cfield){.kind = CF_NULL};
    if (json_is_string(v)) return (rt_cfield){.kind = CF_STRING, .s = json_string_value(v), .len = json_string_length(v)};
    if (json_is_integer(v)) return (rt_cfield){.kind = CF_INTEGER, .i = json_integer_value(v)};
    return (rt_cfield){.kind = CF_OTHER};
}

/* The id as JSON text, as json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT) prints it: the scanner's
 * strings hold printable ASCII and the five control characters it decodes. */
static char *id_text_of(const rt_cfield *id) {
    acc_buf b = ACC_BUF_INIT;
    if (id->kind == CF_INTEGER) {
        acc_buf_put_i64(&b, id->i);
    } else {
        acc_buf_putc(&b, '"');
        for (size_t i = 0; i < id->len; i++) {
            char c = id->s[i];
            const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (e) acc_buf_puts(&b, e);
            else acc_buf_putc(&b, c);
        }
        acc_buf_putc(&b, '"');
    }
    return acc_buf_take(&b, NULL);
}

int rt_cframe_read(rt_cframe *f, const char *data, size_t len, json_error_t *jerr) {
    f->v = (rt_cfields){0};
    f->id_text = f->owned = NULL;
    f->doc = NULL;
    /* Decoded strings take at most the frame's bytes, plus a NUL for each member. */
    size_t room = len + CF_MAX_MEMBERS;
    char *scratch = room <= sizeof f->small ? f->small : (f->owned = malloc(room));
    if (scratch && scan_frame(&f->v, scratch, data, len)) {
        const rt_cfield *id = &f->v.id;
        if (id->kind == CF_INTEGER || (id->kind == CF_STRING && id->len <= 200)) f->id_text = id_text_of(id);
        return 0;
    }
    free(f->owned);
    f->owned = NULL;
    /* jansson's reading, and its errors */
    f->doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, jerr);
    if (!f->doc) return -1;
    if (!json_is_object(f->doc)) return -2;
    rt_cfields *v = &f->v;
    v->type = field_of(json_object_get(f->doc, "type"));
    v->id = field_of(json_object_get(f->doc, "id"));
    v->agent = field_of(json_object_get(f->doc, "agent"));
    v->budget = field_of(json_object_get(f->doc, "budget"));
    v->content = field_of(json_object_get(f->doc, "content"));
    v->run = field_of(json_object_get(f->doc, "run"));
    v->session = field_of(json_object_get(f->doc, "session"));
    v->last_seq = field_of(json_object_get(f->doc, "last_seq"));
    json_t *id = json_object_get(f->doc, "id");
    if (id && (json_is_string(id) || json_is_integer(id)) && !(json_is_string(id) && json_string_length(id) > 200))
        f->id_text = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
    return 0;
}

void rt_cframe_free(rt_cframe *f) {
    free(f->id_text);
    free(f->owned);
    json_decref(f->doc);
    f->id_text = f->owned = NULL;
    f->doc = NULL;
}
