/*
 * json.c: the JSON codec of sandbox/json.h (json.encode, json.decode, json.null, json.array).
 *
 * It converts straight between JSON text and values on the Lua stack, with no tree in between, so
 * every byte it allocates comes from the Lua state's allocator and counts against the sandbox's
 * memory cap, and every loop pays for its work on the sandbox's work meter (sbx_meter_t: each
 * byte read or written at the scanning price, SBX_SCAN_BYTES to a unit, and a unit per value), so
 * no input can hold the CPU past a limit. It is a trust boundary (Redis's bundled cjson overflowed): decoding is RFC 8259
 * strict, reads only s[0..n), validates UTF-8, and bounds nesting by SBX_JSON_MAX_DEPTH.
 *
 * Error messages are "json.decode: <what> at byte <offset>" with a 0-based byte offset into the
 * input, and "json.encode: <what>". They carry no "chunk:line:" prefix, so the host sees the same
 * text whether the script or the host called the codec.
 *
 * Output is built in a growable Lua userdata kept at a fixed stack slot rather than a luaL_Buffer:
 * a luaL_Buffer needs its box at the top of the stack at every add, while the encoder keeps the
 * tables it walks above it.
 */
#include "sandbox/json.h"
#include "sandbox/internal.h"

#include <lauxlib.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Their addresses are the identities: json.null is a light userdata pointing at json_null_tag,
 * and the array metatable lives in the registry under &json_array_key. Not const, so the compiler
 * cannot fold them into one address. */
static char json_null_tag;
static char json_array_key;

/* Long runs (a huge string, a sea of whitespace) are scanned in chunks of this many bytes, a
 * quarter of what the meter charges at once, so no loop goes far between two charges. */
#define CHUNK (SBX_CHARGE_EVERY / 4 * SBX_SCAN_BYTES)
/* RFC 8259 lets a parser limit numbers. 4096 bytes holds any double written out in full; longer
 * tokens would only feed strtod pathological work. */
#define MAX_NUMBER_LEN 4096

/* ---- shared ------------------------------------------------------------------------------- */

/* Raises msg as is: luaL_error would prefix the Lua caller's "chunk:line:". lua_error does not
 * return; abort() only tells the compiler so. */
_Noreturn static void json_error(lua_State *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_error(L);
    abort();
}

/* Pushes the array metatable, creating it on first use in this state. */
static void push_array_mt(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &json_array_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 0);
        sbx_protect_metatable(L, -1); /* scripts reach it: it must never gain __mode */
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &json_array_key);
    }
}

/* Pushes the array metatable for attaching to tables. Scripts can reach it (getmetatable of a
 * decoded array) and add __gc to it; attaching it from C would then mark tables for finalization
 * behind the sandbox's setmetatable, which refuses __gc because finalizers run without hooks. */
static void push_array_mt_checked(lua_State *L, const char *who) {
    push_array_mt(L);
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, -2) != LUA_TNIL) /* raw: the script may have given the mt a metatable */
        json_error(L, "%s: the array metatable has been given a __gc field", who);
    lua_pop(L, 1);
}

/* Length of the valid UTF-8 sequence at s (n bytes available, n >= 1, s[0] >= 0x80), or 0 when
 * it is invalid: RFC 3629's table, so overlongs, UTF-16 surrogates and code points past U+10FFFF
 * are all refused. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (n >= 2 && (s[1] & 0xC0) == 0x80) return 2;
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* surrogates */
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        return 4;
    }
    return 0;
}

/* JSON numbers use '.', while strtod and snprintf follow the locale. Asking localeconv() on every
 * call is a race with any setlocale in the process (its result is static and shared), so numbers
 * are read with strtod_l and written under uselocale in a private "C" locale, made once. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static locale_t json_c_locale(lua_State *L) {
    pthread_once(&c_locale_once, make_c_locale);
    if (c_locale == (locale_t)0) json_error(L, "json: out of host memory for the \"C\" locale");
    return c_locale;
}

/* ---- decode ------------------------------------------------------------------------------- */

typedef struct decoder {
    lua_State *L;
    const unsigned char *s;
    size_t n, pos;
    sbx_meter_t meter;
    size_t metered_pos; /* input before this offset is on the meter */
    int depth;
    int array_mt;       /* stack slot of the array metatable (nil until the first array, lazily) */
    bool mt_ready;      /* the array metatable is in its slot, checked */
    int strings;        /* stack slot of the answer's string list (sbx_json_decode_answer), or 0 */
    int nstrings;       /* short strings met so far: the next one's place in that list */
    sandbox_t *warm;    /* whose warm list notes the list's strings the answer used (NULL: none) */
    locale_t numeric;   /* the "C" locale numbers are read in */
} decoder_t;

_Noreturn static void decode_fail(decoder_t *d, size_t at, const char *what) {
    json_error(d->L, "json.decode: %s at byte %I", what, (lua_Integer)at);
}

/* Fails naming the byte at pos, or the end of input. */
_Noreturn static void decode_unexpected(decoder_t *d, const char *expected) {
    char what[96];
    if (d->pos >= d->n) {
        decode_fail(d, d->pos, "unexpected end of input");
    }
    unsigned char c = d->s[d->pos];
    if (c > 0x20 && c < 0x7F)
        snprintf(what, sizeof what, "unexpected character '%c'%s%s", c, expected ? ", expected " : "",
                 expected ? expected : "");
    else
        snprintf(what, sizeof what, "unexpected byte 0x%02X%s%s", c, expected ? ", expected " : "",
                 expected ? expected : "");
    decode_fail(d, d->pos, what);
}

/* Puts the input read up to pos on the meter. */
static inline void decode_charge(decoder_t *d, size_t pos) {
    sbx_meter_scan(&d->meter, pos - d->metered_pos);
    d->metered_pos = pos;
}

static void skip_ws(decoder_t *d) {
    const unsigned char *s = d->s;
    size_t p = d->pos, n = d->n;
    for (;;) {
        size_t end = n - p > CHUNK ? p + CHUNK : n;
        while (p < end && (s[p] == ' ' || s[p] == '\n' || s[p] == '\r' || s[p] == '\t')) p++;
        decode_charge(d, p);
        if (p < end || p == n) break;
    }
    d->pos = p;
}

static void expect_literal(decoder_t *d, const char *lit, size_t len) {
    if (d->n - d->pos < len || memcmp(d->s + d->pos, lit, len) != 0)
        decode_fail(d, d->pos, "invalid literal");
    d->pos += len;
}

/* 1 for bytes that stand for themselves inside a JSON string: printable ASCII but '"' and '\\'. */
static const unsigned char plain_in_string[256] = {
#define R8(x) x, x, x, x, x, x, x, x
    R8(0), R8(0), R8(0), R8(0),                 /* 0x00-0x1F: control characters */
    1, 1, 0, 1, 1, 1, 1, 1, R8(1), R8(1), R8(1), /* 0x20-0x3F, '"' is 0x22 */
    R8(1), R8(1), R8(1), 1, 1, 1, 1, 0, 1, 1, 1, /* 0x40-0x5F, '\\' is 0x5C */
    R8(1), R8(1), R8(1), R8(1),                 /* 0x60-0x7F */
    R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0),
    R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), /* 0x80-0xFF: checked as UTF-8 */
#undef R8
};

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], x;
        if (c >= '0' && c <= '9') x = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') x = (c | 0x20) - 'a' + 10;
        else return 0;
        v = v << 4 | x;
    }
    *out = v;
    return 1;
}

static void buffer_code_point(luaL_Buffer *b, unsigned cp) {
    char u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (char)cp; k = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3F)); k = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); k = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); k = 4;
    }
    luaL_addlstring(b, u, k);
}

/* Pushes the short string s[0..len) of a host's answer: the string at the same place in the last
 * answer when it is the same (no interning), else a new one, which takes that place. Answers of
 * one provider have one shape, so their keys and most short values (a model's name, a finish
 * reason) come back in the same order: this reads one list, in order, where interning reads a
 * bucket of the string table and a chain of strings, cold in a sandbox that waited for its
 * answer while a thousand others ran. The list's array part is made at its full size, so
 * setting a place never allocates. */
static void push_answer_string(decoder_t *d, const char *s, size_t len) {
    lua_State *L = d->L;
    lua_Integer at = ++d->nstrings;
    const char *str = NULL;
    size_t have = 0;
    if (lua_rawgeti(L, d->strings, at) == LUA_TSTRING) {
        str = lua_tolstring(L, -1, &have);
        if (have != len || memcmp(str, s, len) != 0) str = NULL;
    }
    if (!str) {
        lua_pop(L, 1);
        str = lua_pushlstring(L, s, len);
        lua_pushvalue(L, -1);
        lua_rawseti(L, d->strings, at);
    }
    /* the next answer's string at this place is compared with this one: its bytes, and its length
     * and hash, which Lua keeps in the 24 bytes before them */
    if (d->warm) sbx_warm_note(d->warm, str - 24, len + 24);
}

/* Decodes the string at d->pos (its opening quote) and pushes it. Strings without escapes are
 * pushed straight from the input; the first escape switches to a luaL_Buffer (nothing else is
 * pushed while it is open, as it requires). */
static void decode_string(decoder_t *d) {
    lua_State *L = d->L;
    const unsigned char *s = d->s;
    size_t n = d->n, start = d->pos, p = start + 1, run = p;
    luaL_Buffer b;
    int buffered = 0;
    for (;;) {
        size_t end = n - p > CHUNK ? p + CHUNK : n;
        while (p < end && plain_in_string[s[p]]) p++;
        decode_charge(d, p);
        if (p == n) decode_fail(d, start, "unterminated string");
        if (p == end) continue;
        unsigned char c = s[p];
        if (c == '"') break;
        if (c >= 0x80) {
            size_t k = utf8_seq_len(s + p, n - p);
            if (k == 0) decode_fail(d, p, "invalid UTF-8");
            p += k;
            continue;
        }
        if (c < 0x20) decode_fail(d, p, "unescaped control character in string");
        /* a backslash */
        if (!buffered) {
            luaL_buffinit(L, &b);
            buffered = 1;
        }
        luaL_addlstring(&b, (const char *)s + run, p - run);
        if (p + 1 >= n) decode_fail(d, start, "unterminated string");
        char e = (char)s[p + 1];
        switch (e) {
        case '"': case '\\': case '/': luaL_addchar(&b, e); p += 2; break;
        case 'b': luaL_addchar(&b, '\b'); p += 2; break;
        case 'f': luaL_addchar(&b, '\f'); p += 2; break;
        case 'n': luaL_addchar(&b, '\n'); p += 2; break;
        case 'r': luaL_addchar(&b, '\r'); p += 2; break;
        case 't': luaL_addchar(&b, '\t'); p += 2; break;
        case 'u': {
            unsigned cp = 0, lo = 0;
            if (n - p < 6 || !hex4(s + p + 2, &cp)) decode_fail(d, p, "invalid \\u escape");
            if (cp >= 0xDC00 && cp <= 0xDFFF) decode_fail(d, p, "lone surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (n - p < 12 || s[p + 6] != '\\' || s[p + 7] != 'u' || !hex4(s + p + 8, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    decode_fail(d, p, "lone surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 12;
            } else {
                p += 6;
            }
            buffer_code_point(&b, cp);
            break;
        }
        default: decode_fail(d, p, "invalid escape");
        }
        run = p;
    }
    if (buffered) {
        luaL_addlstring(&b, (const char *)s + run, p - run);
        luaL_pushresult(&b);
    } else if (d->strings && p - start - 1 <= SBX_ANSWER_STRING_MAX && d->nstrings < SBX_ANSWER_STRINGS) {
        push_answer_string(d, (const char *)s + start + 1, p - start - 1);
    } else {
        lua_pushlstring(L, (const char *)s + start + 1, p - start - 1);
    }
    d->pos = p + 1;
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Pushes the number at d->pos: an integer when the token has no fraction or exponent and fits
 * int64, else a float. The grammar is checked here, so strtod only ever sees a JSON number, and
 * only through a NUL-terminated copy bounded by MAX_NUMBER_LEN. */
static void decode_number(decoder_t *d) {
    lua_State *L = d->L;
    const unsigned char *s = d->s;
    size_t n = d->n, start = d->pos, p = start;
    int neg = 0, integral = 1;
    if (s[p] == '-') { neg = 1; p++; }
    if (p >= n || !is_digit(s[p])) decode_fail(d, start, "invalid number");
    if (s[p] == '0') {
        p++;
        if (p < n && is_digit(s[p])) decode_fail(d, start, "leading zero in number");
    } else {
        while (p < n && is_digit(s[p]) && p - start <= MAX_NUMBER_LEN) p++;
    }
    if (p < n && s[p] == '.') {
        integral = 0;
        p++;
        if (p >= n || !is_digit(s[p])) decode_fail(d, start, "invalid number");
        while (p < n && is_digit(s[p]) && p - start <= MAX_NUMBER_LEN) p++;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        integral = 0;
        p++;
        if (p < n && (s[p] == '+' || s[p] == '-')) p++;
        if (p >= n || !is_digit(s[p])) decode_fail(d, start, "invalid number");
        while (p < n && is_digit(s[p]) && p - start <= MAX_NUMBER_LEN) p++;
    }
    size_t len = p - start;
    if (len > MAX_NUMBER_LEN) decode_fail(d, start, "number too long");
    d->pos = p;

    if (integral) {
        uint64_t v = 0;
        int overflow = 0;
        for (size_t q = start + (size_t)neg; q < p; q++) {
            unsigned dg = s[q] - '0';
            if (v > (UINT64_MAX - dg) / 10) { overflow = 1; break; }
            v = v * 10 + dg;
        }
        if (!overflow) {
            if (!neg && v <= (uint64_t)LUA_MAXINTEGER) { lua_pushinteger(L, (lua_Integer)v); return; }
            /* -0 has no integer form; as a float it keeps its sign through a round trip */
            if (neg && v != 0 && v <= (uint64_t)LUA_MAXINTEGER) { lua_pushinteger(L, -(lua_Integer)v); return; }
            if (neg && v == (uint64_t)LUA_MAXINTEGER + 1) { lua_pushinteger(L, LUA_MININTEGER); return; }
        }
    }

    char small[64];
    char *text = small;
    if (len >= sizeof small) text = lua_newuserdatauv(L, len + 1, 0); /* popped below */
    memcpy(text, s + start, len);
    text[len] = '\0';
    double x = strtod_l(text, NULL, d->numeric);
    if (text != small) lua_pop(L, 1);
    if (isinf(x)) decode_fail(d, start, "number out of range");
    lua_pushnumber(L, (lua_Number)x);
}

static void decode_value(decoder_t *d);

static void enter(decoder_t *d) {
    if (++d->depth > SBX_JSON_MAX_DEPTH) decode_fail(d, d->pos, "too deeply nested");
    sbx_check_cstack(d->L); /* the codec may be called deep in a turn's C stack */
    /* container, key, value, and the string buffer's two slots */
    luaL_checkstack(d->L, 6, "json.decode: nesting");
}

/* An object's first pairs wait on the stack until the object ends or has OBJECT_PAIRS_HELD of
 * them, and its table is then made with room for them: a table grown one key at a time is
 * rehashed at 1, 2 and 4 keys, three allocations a small object (a host's answer is two of them)
 * need not make. */
#define OBJECT_PAIRS_HELD 8

/* Makes the table of the n pairs above stack index base, sets them in order (a duplicate key
 * overwrites: the last one wins) and leaves the table alone above base. */
static void object_from_pairs(lua_State *L, int base, int n) {
    lua_createtable(L, 0, n);
    lua_insert(L, base + 1);
    for (int i = 0; i < n; i++) {
        lua_pushvalue(L, base + 2 + 2 * i);
        lua_pushvalue(L, base + 3 + 2 * i);
        lua_rawset(L, base + 1);
    }
    lua_settop(L, base + 1);
}

static void decode_object(decoder_t *d) {
    lua_State *L = d->L;
    enter(d);
    luaL_checkstack(L, 2 * OBJECT_PAIRS_HELD + 3, "json.decode: nesting");
    d->pos++; /* '{' */
    int base = lua_gettop(L), held = 0; /* held pairs above base; -1 once the table is made */
    skip_ws(d);
    if (d->pos < d->n && d->s[d->pos] == '}') {
        d->pos++;
        d->depth--;
        lua_createtable(L, 0, 0);
        return;
    }
    for (;;) {
        skip_ws(d);
        if (d->pos >= d->n || d->s[d->pos] != '"') decode_unexpected(d, "a string key");
        decode_string(d);
        skip_ws(d);
        if (d->pos >= d->n || d->s[d->pos] != ':') decode_unexpected(d, "':'");
        d->pos++;
        decode_value(d);
        if (held < 0) lua_rawset(L, -3); /* a duplicate key overwrites: the last one wins */
        else if (++held == OBJECT_PAIRS_HELD) object_from_pairs(L, base, held), held = -1;
        skip_ws(d);
        if (d->pos < d->n && d->s[d->pos] == ',') { d->pos++; continue; }
        if (d->pos < d->n && d->s[d->pos] == '}') { d->pos++; break; }
        decode_unexpected(d, "',' or '}'");
    }
    if (held > 0) object_from_pairs(L, base, held);
    d->depth--;
}

static void decode_array(decoder_t *d) {
    lua_State *L = d->L;
    enter(d);
    d->pos++; /* '[' */
    if (!d->mt_ready) {
        push_array_mt_checked(L, "json.decode");
        lua_replace(L, d->array_mt);
        d->mt_ready = true;
    }
    lua_createtable(L, 0, 0);
    lua_pushvalue(L, d->array_mt);
    lua_setmetatable(L, -2);
    skip_ws(d);
    if (d->pos < d->n && d->s[d->pos] == ']') {
        d->pos++;
        d->depth--;
        return;
    }
    for (lua_Integer i = 1;; i++) {
        decode_value(d);
        lua_rawseti(L, -2, i);
        skip_ws(d);
        if (d->pos < d->n && d->s[d->pos] == ',') { d->pos++; continue; }
        if (d->pos < d->n && d->s[d->pos] == ']') { d->pos++; break; }
        decode_unexpected(d, "',' or ']'");
    }
    d->depth--;
}

static void decode_value(decoder_t *d) {
    lua_State *L = d->L;
    skip_ws(d);
    sbx_meter_add(&d->meter, 1);
    if (d->pos >= d->n) decode_unexpected(d, NULL);
    switch (d->s[d->pos]) {
    case '{': decode_object(d); break;
    case '[': decode_array(d); break;
    case '"': decode_string(d); break;
    case 't': expect_literal(d, "true", 4); lua_pushboolean(L, 1); break;
    case 'f': expect_literal(d, "false", 5); lua_pushboolean(L, 0); break;
    case 'n': expect_literal(d, "null", 4); lua_pushlightuserdata(L, &json_null_tag); break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': decode_number(d); break;
    default: decode_unexpected(d, NULL);
    }
}

/* Decodes s[0..n) with the array metatable checked at once (json.decode: a script that gave it a
 * __gc field learns so whatever it decodes) or at the first array (an answer), and the answer's
 * string list at stack index strings (0: none). */
static void decode_text(lua_State *L, const char *s, size_t n, bool check_mt, int strings, sandbox_t *warm) {
    luaL_checkstack(L, 8, "json.decode");
    decoder_t d = {.L = L, .s = (const unsigned char *)s, .n = n, .meter = {.L = L}, .numeric = json_c_locale(L),
                   .strings = strings ? lua_absindex(L, strings) : 0, .warm = warm};
    if (check_mt) push_array_mt_checked(L, "json.decode");
    else lua_pushnil(L);
    d.mt_ready = check_mt;
    d.array_mt = lua_gettop(L);
    decode_value(&d);
    skip_ws(&d);
    if (d.pos != n) decode_fail(&d, d.pos, "trailing characters");
    decode_charge(&d, n);
    sbx_meter_flush(&d.meter);
    lua_remove(L, d.array_mt);
}

void sbx_json_decode(lua_State *L, const char *s, size_t n) { decode_text(L, s, n, true, 0, NULL); }

void sbx_json_decode_answer(lua_State *L, const char *s, size_t n, int strings, sandbox_t *warm) {
    decode_text(L, s, n, false, strings, warm);
}

/* ---- encode ------------------------------------------------------------------------------- */

typedef struct encoder {
    lua_State *L;
    char *buf; /* a userdata at stack slot `slot`, replaced by a bigger one to grow */
    size_t len, cap;
    int slot;
    int array_mt;       /* stack slot of the array metatable */
    int depth;
    sbx_meter_t meter;
    size_t metered_len; /* output before this length is on the meter */
    locale_t numeric;   /* the "C" locale numbers are written in */
    const sbx_json_bounds_t *bounds; /* what the text may be, or NULL for json.encode's own */
    size_t values;
} encoder_t;

static void encode_value(encoder_t *e, int idx);

/* Puts the output written so far on the meter. */
static inline void encode_charge(encoder_t *e) {
    sbx_meter_scan(&e->meter, e->len - e->metered_len);
    e->metered_len = e->len;
}

/* A request to the host past its bounds stops here, before the text is any bigger. */
static void check_size(encoder_t *e, size_t need) {
    const sbx_json_bounds_t *b = e->bounds;
    if (b && need > b->max_bytes - e->len)
        json_error(e->L, "%s: the request is too large (more than %I bytes of JSON)", b->who,
                   (lua_Integer)b->max_bytes);
}

static void out_grow(encoder_t *e, size_t need) {
    check_size(e, need);
    size_t cap = e->cap;
    while (cap - e->len < need) {
        if (cap > SIZE_MAX / 2) json_error(e->L, "json.encode: output too large");
        cap *= 2;
    }
    luaL_checkstack(e->L, 1, "json.encode");
    char *nb = lua_newuserdatauv(e->L, cap, 0);
    memcpy(nb, e->buf, e->len);
    lua_replace(e->L, e->slot); /* the old buffer becomes garbage */
    e->buf = nb;
    e->cap = cap;
}

static inline void out_reserve(encoder_t *e, size_t need) {
    if (e->cap - e->len < need) out_grow(e, need);
}

static inline void out_bytes(encoder_t *e, const char *p, size_t n) {
    out_reserve(e, n);
    memcpy(e->buf + e->len, p, n);
    e->len += n;
}

static inline void out_char(encoder_t *e, char c) {
    out_reserve(e, 1);
    e->buf[e->len++] = c;
}

static void encode_string(encoder_t *e, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    out_char(e, '"');
    while (i < n) {
        /* A chunk's worst case is 6 output bytes per input byte (\u00XX), plus the tail of a
         * UTF-8 sequence that starts inside it. */
        size_t end = n - i > CHUNK ? i + CHUNK : n;
        check_size(e, end - i);
        out_reserve(e, (end - i) * 6 + 4);
        char *o = e->buf + e->len;
        while (i < end) {
            unsigned char c = s[i];
            if (plain_in_string[c]) { *o++ = (char)c; i++; continue; }
            if (c >= 0x80) {
                size_t k = utf8_seq_len(s + i, n - i);
                if (k == 0) json_error(e->L, "json.encode: invalid UTF-8 in string");
                memcpy(o, s + i, k);
                o += k;
                i += k;
                continue;
            }
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            }
            i++;
        }
        e->len = (size_t)(o - e->buf);
        encode_charge(e);
    }
    out_char(e, '"');
}

static void encode_number(encoder_t *e, int idx) {
    lua_State *L = e->L;
    char tmp[48];
    int k;
    if (lua_isinteger(L, idx)) {
        k = snprintf(tmp, sizeof tmp, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        out_bytes(e, tmp, (size_t)k);
        return;
    }
    double x = (double)lua_tonumber(L, idx);
    if (!isfinite(x)) json_error(L, "json.encode: cannot encode NaN or infinity");
    /* the shortest of 15, 16, 17 significant digits that reads back as the same double; snprintf
     * has no _l form, so this thread uses the "C" locale for the duration (nothing here raises) */
    locale_t prev = uselocale(e->numeric);
    for (int prec = 15; prec <= 17; prec++) {
        k = snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (prec == 17 || strtod_l(tmp, NULL, e->numeric) == x) break;
    }
    uselocale(prev);
    int looks_float = 0;
    for (int j = 0; j < k; j++)
        if (tmp[j] == '.' || tmp[j] == 'e') looks_float = 1;
    /* 1.0 must not come back as the integer 1 */
    if (!looks_float) { tmp[k++] = '.'; tmp[k++] = '0'; }
    out_bytes(e, tmp, (size_t)k);
}

typedef struct key_ref {
    const char *s;
    size_t len;
    lua_Integer slot; /* where the key sits: its stack index, or its index in the keys table */
} key_ref_t;

static int key_ref_cmp(const void *a, const void *b) {
    const key_ref_t *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Objects this small keep their keys on the Lua stack and their key array on the C stack (16
 * refs, under 400 bytes a level), which saves two allocations per object. */
#define SMALL_OBJECT 16

static void encode_object(encoder_t *e, int idx, size_t count) {
    lua_State *L = e->L;
    /* The key strings must stay referenced while the C array points into them: no Lua code runs
     * while encoding, so the table cannot change, but the collector may clear entries of a weak
     * table, and a cleared entry's key string can be freed. So small objects keep their keys on
     * the stack and big ones in a keys table. The second walk stops at `count`, and a key whose
     * value went reads back as null. */
    key_ref_t small[SMALL_OBJECT];
    key_ref_t *refs = small;
    int base = lua_gettop(L), keys = 0;
    if (count <= SMALL_OBJECT) {
        luaL_checkstack(L, SMALL_OBJECT + 4, "json.encode: nesting");
    } else {
        lua_createtable(L, count < INT_MAX ? (int)count : 0, 0);
        keys = lua_gettop(L);
        refs = lua_newuserdatauv(L, count * sizeof *refs, 0);
    }
    size_t got = 0;
    lua_pushnil(L);
    while (got < count && lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) continue;
        refs[got].s = lua_tolstring(L, -1, &refs[got].len); /* a string: no conversion */
        if (keys) {
            refs[got].slot = (lua_Integer)got + 1;
            lua_pushvalue(L, -1);
            lua_rawseti(L, keys, refs[got].slot);
        } else {
            refs[got].slot = lua_gettop(L); /* stays; lua_next continues from a copy */
            lua_pushvalue(L, -1);
        }
        got++;
    }
    if (got == count) lua_pop(L, 1); /* the key lua_next left, when it did not finish */
    if (keys) {
        uint64_t log2 = 1;
        while (((size_t)1 << log2) < got && log2 < 63) log2++;
        sbx_meter_add(&e->meter, got * log2); /* the sort's comparisons, paid before it runs */
        qsort(refs, got, sizeof *refs, key_ref_cmp);
    } else {
        for (size_t i = 1; i < got; i++) { /* insertion sort: a few keys */
            key_ref_t r = refs[i];
            size_t j = i;
            for (; j > 0 && key_ref_cmp(&refs[j - 1], &r) > 0; j--) refs[j] = refs[j - 1];
            refs[j] = r;
        }
        sbx_meter_add(&e->meter, got);
    }

    out_char(e, '{');
    for (size_t k = 0; k < got; k++) {
        if (k) out_char(e, ',');
        encode_string(e, refs[k].s, refs[k].len);
        out_char(e, ':');
        if (keys) lua_rawgeti(L, keys, refs[k].slot);
        else lua_pushvalue(L, (int)refs[k].slot);
        lua_rawget(L, idx);
        encode_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
    out_char(e, '}');
    lua_settop(L, base);
}

static void encode_table(encoder_t *e, int idx) {
    lua_State *L = e->L;
    if (e->bounds && e->depth + 1 > e->bounds->max_depth)
        json_error(L, "%s: the request nests too deeply (more than %d levels, or a cycle)", e->bounds->who,
                   e->bounds->max_depth);
    if (++e->depth > SBX_JSON_MAX_DEPTH) json_error(L, "json.encode: too deeply nested (or a cycle)");
    sbx_check_cstack(L);
    /* the keys table, the key array, a key, a value, a new buffer */
    luaL_checkstack(L, 6, "json.encode: nesting");

    int marked = 0;
    if (lua_getmetatable(L, idx)) { /* raw: __metatable is not consulted */
        if (lua_isnil(L, e->array_mt)) {
            push_array_mt(L);
            lua_replace(L, e->array_mt);
        }
        marked = lua_rawequal(L, -1, e->array_mt);
        lua_pop(L, 1);
    }

    /* Classify the keys: all strings makes an object, exactly 1..n an array. */
    size_t count = 0, strings = 0, positive = 0;
    lua_Integer max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        sbx_meter_add(&e->meter, 1);
        int kt = lua_type(L, -1);
        if (kt == LUA_TSTRING) {
            strings++;
        } else if (kt == LUA_TNUMBER && lua_isinteger(L, -1)) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k >= 1) {
                positive++;
                if (k > max) max = k;
            }
        } else {
            const char *what = kt == LUA_TNUMBER ? "a non-integer number" : lua_typename(L, kt);
            json_error(L, "json.encode: table has a key that is %s%s (keys must be strings or integers)",
                       kt == LUA_TNUMBER ? "" : "a ", what);
        }
        if ((count & 255) == 0) encode_charge(e);
    }

    if (count == 0) {
        out_bytes(e, marked ? "[]" : "{}", 2);
    } else if (positive == count && (uint64_t)max == count) {
        out_char(e, '[');
        for (lua_Integer i = 1; i <= max; i++) {
            if (i > 1) out_char(e, ',');
            lua_rawgeti(L, idx, i);
            encode_value(e, lua_gettop(L));
            lua_pop(L, 1);
        }
        out_char(e, ']');
    } else if (strings == count && !marked) {
        encode_object(e, idx, count);
    } else {
        json_error(L, "json.encode: table has mixed or sparse keys");
    }
    e->depth--;
}

static void encode_value(encoder_t *e, int idx) {
    lua_State *L = e->L;
    sbx_meter_add(&e->meter, 1);
    if (e->bounds && ++e->values > e->bounds->max_values)
        json_error(L, "%s: the request holds too many values (more than %I)", e->bounds->who,
                   (lua_Integer)e->bounds->max_values);
    encode_charge(e);
    int t = lua_type(L, idx);
    switch (t) {
    case LUA_TNIL: out_bytes(e, "null", 4); break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) out_bytes(e, "true", 4);
        else out_bytes(e, "false", 5);
        break;
    case LUA_TNUMBER: encode_number(e, idx); break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        encode_string(e, s, n);
        break;
    }
    case LUA_TTABLE: encode_table(e, idx); break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &json_null_tag) {
            out_bytes(e, "null", 4);
            break;
        }
        /* fall through */
    default: json_error(L, "json.encode: cannot encode a %s", lua_typename(L, t));
    }
}

/* Encodes the value at idx into a buffer that it leaves at the top of the stack (a full userdata:
 * scratch, the userdata at that stack index, when the text fits in it, else a new one), the
 * text NUL-terminated. Returns the text; *len is its length. */
static const char *encode_into(lua_State *L, int idx, const sbx_json_bounds_t *bounds, int scratch, size_t *len) {
    idx = lua_absindex(L, idx);
    if (scratch) scratch = lua_absindex(L, scratch);
    luaL_checkstack(L, 8, "json.encode");
    encoder_t e = {.L = L, .cap = 256, .meter = {.L = L}, .numeric = json_c_locale(L), .bounds = bounds};
    lua_pushnil(L); /* the array metatable's slot, filled at the first table with a metatable */
    e.array_mt = lua_gettop(L);
    if (scratch) {
        lua_pushvalue(L, scratch);
        e.buf = lua_touserdata(L, -1);
        e.cap = lua_rawlen(L, -1);
    } else {
        e.buf = lua_newuserdatauv(L, e.cap, 0);
    }
    e.slot = lua_gettop(L);
    encode_value(&e, idx);
    encode_charge(&e);
    sbx_meter_flush(&e.meter);
    out_reserve(&e, 1);
    e.buf[e.len] = 0;
    lua_remove(L, e.array_mt);
    *len = e.len;
    return e.buf;
}

void sbx_json_encode(lua_State *L, int idx) { sbx_json_encode_bounded(L, idx, NULL); }

void sbx_json_encode_bounded(lua_State *L, int idx, const sbx_json_bounds_t *bounds) {
    size_t len;
    const char *text = encode_into(L, idx, bounds, 0, &len);
    lua_pushlstring(L, text, len);
    lua_remove(L, -2);
}

const char *sbx_json_encode_request(lua_State *L, int idx, const sbx_json_bounds_t *bounds, int scratch, size_t *len) {
    return encode_into(L, idx, bounds, scratch, len);
}

/* ---- the json table ----------------------------------------------------------------------- */

static int json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    sbx_json_encode(L, 1);
    return 1;
}

static int json_decode(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING) { /* not lua_isstring: no numbers as text */
        json_error(L, "json.decode: expected a string");
    }
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    sbx_json_decode(L, s, n);
    return 1;
}

static int json_array(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    push_array_mt_checked(L, "json.array");
    if (lua_getmetatable(L, 1)) {
        if (!lua_rawequal(L, -1, -2)) json_error(L, "json.array: the table already has a metatable");
        lua_pop(L, 1);
    }
    lua_setmetatable(L, 1);
    return 1;
}

int sbx_open_json(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"encode", json_encode},
        {"decode", json_decode},
        {"array", json_array},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, &json_null_tag);
    lua_setfield(L, -2, "null");
    push_array_mt(L); /* decoded arrays and json.array share it from the start */
    lua_pop(L, 1);
    return 1;
}
