/*
 * test_json.c: the spec of sandbox/json.c, the JSON codec agents get (json.encode, json.decode,
 * json.null, json.array) and the host-call interface uses.
 *
 * The codec is a trust boundary, so most of this file is about what it must refuse and that it
 * never crashes: the JSONTestSuite-style reject and accept cases, every truncation of a valid
 * document, deep nesting, encode errors, metamethods that must never run, and a fuzz loop of
 * mutated documents (run it under AddressSanitizer, see the end of this comment). Inputs from C
 * are decoded from a malloc'd copy of exactly their length, so a read past the end is caught.
 *
 * Runs on a plain luaL_newstate with the standard library and `json` as a global; there
 * sbx_charge is a no-op. Prints a "#" line with decode and encode throughput (not asserted).
 *
 * ASan: gcc -std=c11 -D_GNU_SOURCE -I. -fsanitize=address,undefined -g tests/test_json.c
 *       sandbox/json.c <a file defining sbx_charge> $(pkg-config --cflags --libs lua5.4) -lm
 * JSON_FUZZ_ITERS overrides the number of fuzz iterations (default 200000).
 */
#include "sandbox/internal.h"
#include "sandbox/json.h"
#include "tests/check.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static lua_State *L;
static char last_error[1024];

/* Runs a Lua chunk; on error keeps the message in last_error. */
static int lua_ok(const char *name, const char *code) {
    last_error[0] = '\0';
    if (luaL_loadbuffer(L, code, strlen(code), name) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK) {
        snprintf(last_error, sizeof last_error, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

#define CHECK_LUA(code) CHECK_MSG(lua_ok(check_current, code), "%s", last_error)

typedef struct span {
    const char *s;
    size_t n;
} span_t;

static int decode_span(lua_State *Ls) {
    const span_t *sp = lua_touserdata(Ls, 1);
    sbx_json_decode(Ls, sp->s, sp->n);
    return 1;
}

/* Decodes s[0..n) from an exact-size heap copy under pcall. Leaves the value or the error
 * message on the stack; returns 1 when it decoded. */
static int decode_exact(const char *s, size_t n) {
    char *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, s, n);
    span_t sp = {copy, n};
    lua_pushcfunction(L, decode_span);
    lua_pushlightuserdata(L, &sp);
    int rc = lua_pcall(L, 1, 1, 0);
    free(copy);
    return rc == LUA_OK;
}

static int encode_top(lua_State *Ls) {
    sbx_json_encode(Ls, 1);
    return 1;
}

/* Encodes the value on top of the stack (popping it) under pcall; leaves text or message. */
static int encode_pop(void) {
    lua_pushcfunction(L, encode_top);
    lua_insert(L, -2);
    return lua_pcall(L, 1, 1, 0) == LUA_OK;
}

/* ---- decoding ---------------------------------------------------------------------------- */

static void decodes_scalars_to_the_right_lua_types(void) {
    CHECK_LUA("local d = json.decode\n"
              "assert(math.type(d'0') == 'integer' and d'0' == 0)\n"
              "assert(math.type(d'-12') == 'integer' and d'-12' == -12)\n"
              "assert(d'9223372036854775807' == math.maxinteger and math.type(d'9223372036854775807') == 'integer')\n"
              "assert(d'-9223372036854775808' == math.mininteger and math.type(d'-9223372036854775808') == 'integer')\n"
              "assert(math.type(d'9223372036854775808') == 'float' and d'9223372036854775808' == 2^63)\n"
              "assert(math.type(d'-9223372036854775809') == 'float')\n"
              "assert(math.type(d'12345678901234567890123') == 'float')\n"
              "assert(math.type(d'-0') == 'float' and 1/d'-0' == -math.huge, 'minus zero keeps its sign')\n"
              "assert(math.type(d'1.0') == 'float' and d'1.0' == 1)\n"
              "assert(math.type(d'1e2') == 'float' and d'1e2' == 100)\n"
              "assert(d'1E+2' == 100 and d'1e-2' == 0.01 and d'-1.5e3' == -1500)\n"
              "assert(d'1e-400' == 0, 'underflow is a number, not an error')\n"
              "assert(d'1.7976931348623157e308' == 1.7976931348623157e308)\n"
              "assert(d'true' == true and d'false' == false)\n"
              "assert(d'null' == json.null and d' null ' == json.null)\n"
              "assert(type(json.null) == 'userdata')\n"
              "assert(d'\"\"' == '' and d'\"abc\"' == 'abc')\n"
              "assert(d[[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]] == '\"\\\\/\\b\\f\\n\\r\\t')\n"
              "assert(d[[\"\\u0041\\u00e9\\u20AC\"]] == 'A\\u{e9}\\u{20ac}')\n"
              "assert(d[[\"\\ud83d\\ude00\"]] == '\\u{1F600}' and #d[[\"\\ud83d\\ude00\"]] == 4)\n"
              "assert(d[[\"\\uDBFF\\uDFFF\"]] == '\\u{10FFFF}')\n"
              "assert(d[[\"a\\u0000b\"]] == 'a\\0b', 'escaped NUL is kept')\n"
              "assert(d'\"\\u{1F600}\\u{7FF}\\u{800}\\u{FFFF}\"' == '\\u{1F600}\\u{7FF}\\u{800}\\u{FFFF}')\n");
}

static void decodes_containers(void) {
    CHECK_LUA("local v = json.decode(' { \"a\" : [1, 2, {\"b\": null}], \"c\": {}, \"d\": [] } ')\n"
              "assert(v.a[1] == 1 and v.a[2] == 2 and v.a[3].b == json.null and #v.a == 3)\n"
              "assert(next(v.c) == nil and next(v.d) == nil)\n"
              "assert(getmetatable(v.a) == getmetatable(v.d), 'arrays share one metatable')\n"
              "assert(getmetatable(v.a) ~= nil and getmetatable(v) == nil and getmetatable(v.c) == nil)\n"
              "assert(getmetatable(json.decode('[]')) == getmetatable(json.array({})))\n"
              "local dup = json.decode('{\"k\":1,\"k\":2}')\n"
              "assert(dup.k == 2, 'duplicate keys: the last wins')\n"
              /* objects of more pairs than the decoder holds before making the table (8), with
               * duplicates before and across that point, nested in one another */
              "local parts = {}\n"
              "for i = 1, 20 do parts[#parts + 1] = ('\"k%d\":%d'):format(i, i) end\n"
              "parts[#parts + 1] = '\"k3\":300'; parts[#parts + 1] = '\"k15\":1500'\n"
              "table.insert(parts, 5, '\"k2\":200')\n"
              "local big = json.decode('{' .. table.concat(parts, ',') .. ',\"in\":{' .. table.concat(parts, ',') .. '}}')\n"
              "for _, o in ipairs({big, big['in']}) do\n"
              "  local n = 0 for _ in pairs(o) do n = n + 1 end\n"
              "  assert(n == (o == big and 21 or 20), 'pair count ' .. n)\n"
              "  for i = 1, 20 do assert(o['k' .. i] == ({[2] = 200, [3] = 300, [15] = 1500})[i] or o['k' .. i] == i) end\n"
              "  assert(o.k2 == 200 and o.k3 == 300 and o.k15 == 1500, 'the last of each duplicate wins')\n"
              "end\n"
              "local eight = json.decode('{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8}')\n"
              "assert(eight.a == 1 and eight.h == 8 and select('#', next(eight)) == 2)\n"
              "local o = json.decode('{\"1\":\"x\"}')\n"
              "assert(o['1'] == 'x' and o[1] == nil, 'object keys stay strings')\n"
              "local z = json.decode('{\"a\\\\u0000b\":1}')\n"
              "assert(z['a\\0b'] == 1)\n");
}

static void accepts_what_rfc8259_allows(void) {
    static const char *ok[] = {
        "[]", "{}", " [ ] ", "\t\n\r 1 \r\n\t", "[[[[]]]]", "{\"\":\"\"}", "[1e1,0.1e1,-1E-1,0e0,-0.0e+0]",
        "\"\\/\"", "[\"\\u2028\\u2029\"]", "\"\xf0\x9f\x98\x80\"", "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\"",
        "\"\xf4\x8f\xbf\xbf\"", "\"\x7f\"", "[null,true,false]", "{\"a\":{\"b\":{\"c\":[]}}}", "-0", "0.5",
        "123e-2", "[\"\\\\u0000\"]", "{\"a\":1,\"a\":2,\"a\":3}", "\"\\uD834\\uDD1E\"",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int good = decode_exact(ok[i], strlen(ok[i]));
        CHECK_MSG(good, "%s: %s", ok[i], good ? "" : lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

typedef struct reject {
    const char *text;
    size_t len; /* 0: strlen */
    const char *want; /* a part of the message */
} reject_t;

#define R(s, w) {s, sizeof(s) - 1, w}

static void rejects_malformed_json(void) {
    static const reject_t bad[] = {
        R("", "unexpected end of input at byte 0"),
        R("   ", "unexpected end of input at byte 3"),
        R("[1,]", "unexpected character ']' at byte 3"),
        R("{\"a\":1,}", "unexpected character '}', expected a string key at byte 7"),
        R("[,1]", "unexpected character ','"),
        R("[1,,2]", "unexpected character ','"),
        R("{,}", "expected a string key"),
        R("['a']", "unexpected character '''"),
        R("{'a':1}", "expected a string key"),
        R("{a:1}", "expected a string key"),
        R("{1:1}", "expected a string key"),
        R("{\"a\" 1}", "expected ':'"),
        R("{\"a\":}", "unexpected character '}'"),
        R("{\"a\"}", "expected ':'"),
        R("[1 2]", "expected ',' or ']'"),
        R("{\"a\":1 \"b\":2}", "expected ',' or '}'"),
        R("01", "leading zero in number at byte 0"),
        R("[-01]", "leading zero in number at byte 1"),
        R("00", "leading zero"),
        R("1.", "invalid number"),
        R("1.e5", "invalid number"),
        R(".5", "unexpected character '.'"),
        R("+1", "unexpected character '+'"),
        R("1e", "invalid number"),
        R("1e+", "invalid number"),
        R("-", "invalid number"),
        R("--1", "invalid number"),
        R("- 1", "invalid number"),
        R("0x10", "trailing characters at byte 1"),
        R("1_000", "trailing characters"),
        R("NaN", "unexpected character 'N'"),
        R("nan", "invalid literal"),
        R("Infinity", "unexpected character 'I'"),
        R("-Infinity", "invalid number"),
        R("[1e400]", "number out of range at byte 1"),
        R("-1e400", "number out of range"),
        R("1" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000"
          "0000000000" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000"
          "0000000000" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000"
          "0000000000" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000" "0000000000"
          "0000000000" "0000000000" "0000000000" "0000000000",
          "number out of range"),
        R("tru", "invalid literal"),
        R("nul", "invalid literal"),
        R("True", "unexpected character 'T'"),
        R("nulll", "trailing characters at byte 4"),
        R("1 2", "trailing characters at byte 2"),
        R("[] x", "trailing characters at byte 3"),
        R("{}}", "trailing characters"),
        R("[1]//c", "trailing characters"),
        R("/*c*/[1]", "unexpected character '/'"),
        R("\xef\xbb\xbf[]", "unexpected byte 0xEF at byte 0"),
        R("\x0c[]", "unexpected byte 0x0C"),
        R("[\xa0]", "unexpected byte 0xA0"),
        R("\"abc", "unterminated string at byte 0"),
        R("[\"abc]", "unterminated string at byte 1"),
        R("\"\\", "unterminated string"),
        R("\"\\x\"", "invalid escape at byte 1"),
        R("\"\\'\"", "invalid escape"),
        R("\"\\U0041\"", "invalid escape"),
        R("\"\\u12G4\"", "invalid \\u escape"),
        R("\"\\u123\"", "invalid \\u escape"),
        R("\"\\u12", "invalid \\u escape"),
        R("\"\\ud800\"", "lone surrogate in \\u escape at byte 1"),
        R("\"\\udc00\"", "lone surrogate"),
        R("\"\\udfff\\ud800\"", "lone surrogate"),
        R("\"\\ud800\\u0041\"", "lone surrogate"),
        R("\"\\ud800\\ud800\"", "lone surrogate"),
        R("\"\\ud800x\"", "lone surrogate"),
        R("\"\\ud800\\", "lone surrogate"),
        R("\"\xc0\xaf\"", "invalid UTF-8 at byte 1"),        /* overlong '/' */
        R("\"\xc1\xbf\"", "invalid UTF-8"),                  /* overlong */
        R("\"\xe0\x80\xaf\"", "invalid UTF-8"),              /* overlong */
        R("\"\xe0\x9f\xbf\"", "invalid UTF-8"),              /* overlong */
        R("\"\xf0\x80\x80\xaf\"", "invalid UTF-8"),          /* overlong */
        R("\"\xf0\x8f\xbf\xbf\"", "invalid UTF-8"),          /* overlong */
        R("\"\xed\xa0\x80\"", "invalid UTF-8"),              /* U+D800 in UTF-8 */
        R("\"\xed\xbf\xbf\"", "invalid UTF-8"),              /* U+DFFF */
        R("\"\xf4\x90\x80\x80\"", "invalid UTF-8"),          /* U+110000 */
        R("\"\xf5\x80\x80\x80\"", "invalid UTF-8"),
        R("\"\xff\"", "invalid UTF-8"),
        R("\"\xfe\"", "invalid UTF-8"),
        R("\"\x80\"", "invalid UTF-8"),                      /* lone continuation */
        R("\"a\xe2\x82\"", "invalid UTF-8 at byte 2"),       /* truncated sequence */
        R("\"\xe2\x82", "invalid UTF-8"),                    /* truncated at the end of input */
        R("\"\xf0\x9f\x98", "invalid UTF-8"),
        R("\"\xc3\x28\"", "invalid UTF-8"),
        R("\"a\tb\"", "unescaped control character in string at byte 2"),
        R("\"\n\"", "unescaped control character"),
        R("\"\x01\"", "unescaped control character"),
        R("\"\x1f\"", "unescaped control character"),
        R("\"a\0b\"", "unescaped control character in string at byte 2"),
        R("\0", "unexpected byte 0x00 at byte 0"),
        R("[1]\0", "trailing characters at byte 3"),
        R("\0[1]", "unexpected byte 0x00"),
        R("[\0 1]", "unexpected byte 0x00 at byte 1"),
        R("[1\0]", "unexpected byte 0x00, expected ',' or ']' at byte 2"),
        R("{\"a\":1\0}", "unexpected byte 0x00"),
        R("[", "unexpected end of input at byte 1"),
        R("{", "unexpected end of input"),
        R("[1", "unexpected end of input at byte 2"),
        R("{\"a\"", "unexpected end of input"),
        R("{\"a\":", "unexpected end of input"),
        R("{\"a\":1", "unexpected end of input"),
        R("]", "unexpected character ']'"),
        R("}", "unexpected character '}'"),
        R(":", "unexpected character ':'"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int ok = decode_exact(bad[i].text, bad[i].len);
        const char *msg = lua_tostring(L, -1);
        CHECK_MSG(!ok, "accepted case %zu", i);
        if (!ok) {
            CHECK_MSG(msg && strncmp(msg, "json.decode: ", 13) == 0, "case %zu: %s", i, msg ? msg : "?");
            CHECK_MSG(msg && strstr(msg, bad[i].want), "case %zu: got \"%s\", want \"%s\"", i,
                      msg ? msg : "?", bad[i].want);
        }
        lua_pop(L, 1);
    }
    /* a number token longer than any double needs is refused outright */
    char *big = malloc(5001);
    memset(big, '1', 5000);
    big[1] = '.';
    int ok = decode_exact(big, 5000);
    CHECK(!ok && strstr(lua_tostring(L, -1), "number too long at byte 0"));
    lua_pop(L, 1);
    CHECK(decode_exact(big, 4000)); /* long but bounded: fine */
    lua_pop(L, 1);
    free(big);
}

static void decode_accepts_only_strings(void) {
    CHECK_LUA("for _, v in ipairs({123, true, {}, json.null}) do\n"
              "  local ok, err = pcall(json.decode, v)\n"
              "  assert(not ok and err == 'json.decode: expected a string', tostring(err))\n"
              "end\n"
              "local ok, err = pcall(json.decode)\n"
              "assert(not ok and err == 'json.decode: expected a string')\n");
}

/* No proper prefix of a document whose root is an object is valid JSON. */
static void every_truncation_is_an_error(void) {
    static const char doc[] =
        " {\"s\": \"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\xe2\x82\xac\", \"n\": [0, -1, 12.5e-3, 9223372036854775807, "
        "-0.0, 1E+2], \"t\": true, \"f\": false, \"z\": null, \"o\": {\"\": [[], {}]}} ";
    size_t n = sizeof doc - 1;
    CHECK(decode_exact(doc, n));
    lua_pop(L, 1);
    for (size_t len = 0; len < n - 1; len++) { /* n - 1: only the trailing space is optional */
        int ok = decode_exact(doc, len);
        CHECK_MSG(!ok, "prefix of length %zu accepted", len);
        lua_pop(L, 1);
    }
}

static void deep_nesting_is_a_clean_error(void) {
    size_t depth = 10000;
    char *s = malloc(2 * depth + 16);
    for (size_t i = 0; i < depth; i++) s[i] = '[';
    for (size_t i = 0; i < depth; i++) s[depth + i] = ']';
    CHECK(!decode_exact(s, 2 * depth) && strstr(lua_tostring(L, -1), "too deeply nested at byte 128"));
    lua_pop(L, 1);
    CHECK(!decode_exact(s, depth));
    lua_pop(L, 1);
    /* exactly the limit is fine, one more is not */
    size_t lim = SBX_JSON_MAX_DEPTH;
    memcpy(s + lim, s + depth, lim);
    CHECK(decode_exact(s, 2 * lim));
    lua_pop(L, 1);
    s[lim] = '[';
    memcpy(s + lim + 1, s + depth, lim + 1);
    CHECK(!decode_exact(s, 2 * lim + 2) && strstr(lua_tostring(L, -1), "too deeply nested"));
    lua_pop(L, 1);
    free(s);
    /* objects too */
    size_t unit = 5; /* {"a": */
    s = malloc(unit * depth);
    for (size_t i = 0; i < depth; i++) memcpy(s + unit * i, "{\"a\":", unit);
    CHECK(!decode_exact(s, unit * depth) && strstr(lua_tostring(L, -1), "too deeply nested"));
    lua_pop(L, 1);
    free(s);
    CHECK_LUA("local ok, err = pcall(json.decode, string.rep('[{\"k\":', 5000))\n"
              "assert(not ok and err:find('too deeply nested', 1, true), err)\n");
}

/* ---- encoding ---------------------------------------------------------------------------- */

static void encodes_values_canonically(void) {
    CHECK_LUA("local e = json.encode\n"
              "local function is(v, want) local got = e(v) if got ~= want then error(string.format('got %q want %q', got, want), 2) end end\n"
              "is(nil, 'null') is(json.null, 'null') is(true, 'true') is(false, 'false')\n"
              "is(0, '0') is(-7, '-7') is(math.maxinteger, '9223372036854775807') is(math.mininteger, '-9223372036854775808')\n"
              "is(1.0, '1.0') is(-0.0, '-0.0') is(0.0, '0.0') is(100.0, '100.0') is(0.1, '0.1') is(1.5, '1.5')\n"
              "is(1/3, '0.3333333333333333') is(1e100, '1e+100') is(2^63, '9.223372036854776e+18') is(-2.5e-7, '-2.5e-07')\n"
              "is(5e-324, '4.94065645841247e-324') is(1.7976931348623157e308, '1.7976931348623157e+308')\n"
              "is('', '\"\"') is('a/b', '\"a/b\"') is('\\u{e9}\\u{1F600}', '\"\\u{e9}\\u{1F600}\"')\n"
              "is('\"\\\\\\b\\f\\n\\r\\t', [[\"\\\"\\\\\\b\\f\\n\\r\\t\"]])\n"
              "is('\\0\\1\\31\\127', [[\"\\u0000\\u0001\\u001f]] .. '\\127\"')\n"
              "is({}, '{}') is(json.array({}), '[]') is(json.decode('[]'), '[]') is(json.decode('{}'), '{}')\n"
              "is({1, 2, 3}, '[1,2,3]') is({{}, {n = json.null}}, '[{},{\"n\":null}]')\n"
              "is({b = 1, a = 2, A = 3, aa = 4, [''] = 5}, '{\"\":5,\"A\":3,\"a\":2,\"aa\":4,\"b\":1}')\n"
              "is({['\\u{e9}'] = 1, z = 2, ['a\\0'] = 3, a = 4}, '{\"a\":4,\"a\\\\u0000\":3,\"z\":2,\"\\u{e9}\":1}')\n"
              "is({['1'] = true, ['2'] = false}, '{\"1\":true,\"2\":false}')\n"
              "is(json.array({'x', 'y'}), '[\"x\",\"y\"]')\n"
              "local t = {} assert(json.array(t) == t, 'json.array returns its argument')\n");
}

static void round_trips_preserve_values(void) {
    static const char *pairs[][2] = {
        {" {\"b\" : 1, \"a\" : [1, 2, {\"c\" : null}], \"d\" : {}, \"e\" : []} ",
         "{\"a\":[1,2,{\"c\":null}],\"b\":1,\"d\":{},\"e\":[]}"},
        {"[[],[[]],{},[{}]]", "[[],[[]],{},[{}]]"},
        {"\"\\u00e9\\ud83d\\ude00\\u20ac\"", "\"\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac\""},
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001F\\u0000\"", "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u0000\""},
        {"[0,-1,9223372036854775807,-9223372036854775808,1.5,-0.0,0.1,1e300,-0]",
         "[0,-1,9223372036854775807,-9223372036854775808,1.5,-0.0,0.1,1e+300,-0.0]"},
        {"[1.0,2e0,3E+0,1E2]", "[1.0,2.0,3.0,100.0]"},
        {"{\"k\":1,\"k\":2}", "{\"k\":2}"},
        {"[null,null]", "[null,null]"},
        {"{\"\\u0000\":\"\\u0000\"}", "{\"\\u0000\":\"\\u0000\"}"},
        {"\"\xf4\x8f\xbf\xbf\"", "\"\xf4\x8f\xbf\xbf\""},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        int ok = decode_exact(pairs[i][0], strlen(pairs[i][0]));
        CHECK_MSG(ok, "%s: %s", pairs[i][0], ok ? "" : lua_tostring(L, -1));
        if (!ok) { lua_pop(L, 1); continue; }
        ok = encode_pop();
        CHECK_MSG(ok && strcmp(lua_tostring(L, -1), pairs[i][1]) == 0, "%s: got %s, want %s", pairs[i][0],
                  lua_tostring(L, -1), pairs[i][1]);
        lua_pop(L, 1);
    }
    /* floats: every double that is finite reads back bit for bit, integers stay integers */
    CHECK_LUA("local vals = {0.1, 0.2, 0.3, 1/3, 2/3, math.pi, -math.pi, 1e-300, 5e-324, 2.2250738585072014e-308,\n"
              "  1.7976931348623157e308, 2^53, 2^53 + 2, -2^63, 123456.789, 1e21, 1e22, 0.000001, 1e-7, 9007199254740993.0,\n"
              "  math.maxinteger, math.mininteger, 0, -1, 1 << 53, (1 << 53) + 1}\n"
              "math.randomseed(12345)\n"
              "for i = 1, 20000 do\n"
              "  local x = string.unpack('<d', string.pack('<i8', math.random(math.mininteger, math.maxinteger)))\n"
              "  if x == x and x ~= math.huge and x ~= -math.huge then vals[#vals + 1] = x end\n"
              "end\n"
              "for _, x in ipairs(vals) do\n"
              "  local s = json.encode(x)\n"
              "  local y = json.decode(s)\n"
              "  assert(math.type(y) == math.type(x), s)\n"
              "  assert(string.pack('<n', y) == string.pack('<n', x), 'not exact: ' .. s)\n"
              "  assert(json.encode({x}) == '[' .. s .. ']')\n"
              "end\n"
              "local big = {}\n"
              "for i = 1, 1000 do big[i] = {id = i, name = 'n' .. i, tags = json.array({}), v = i / 7} end\n"
              "local s = json.encode(big)\n"
              "assert(json.encode(json.decode(s)) == s)\n"
              "local long = string.rep('\\u{e9}\"\\\\\\n\\1x', 200000)\n"
              "assert(json.decode(json.encode(long)) == long)\n"
              "assert(json.decode(string.rep(' ', 100000) .. '[1]' .. string.rep('\\n', 100000))[1] == 1)\n");
}

static void encode_refuses_what_json_cannot_hold(void) {
    CHECK_LUA("local function fails(v, want)\n"
              "  local ok, err = pcall(json.encode, v)\n"
              "  if ok then error('encoded: ' .. err, 2) end\n"
              "  if err ~= want then error(string.format('got %q want %q', err, want), 2) end\n"
              "end\n"
              "local c = {} c[1] = c fails(c, 'json.encode: too deeply nested (or a cycle)')\n"
              "local o = {} o.self = o fails(o, 'json.encode: too deeply nested (or a cycle)')\n"
              "local a, b = {}, {} a.b = b b.a = a fails({a}, 'json.encode: too deeply nested (or a cycle)')\n"
              "local deep = {} for i = 1, 200 do deep = {deep} end fails(deep, 'json.encode: too deeply nested (or a cycle)')\n"
              "local ok128 = 1 for i = 1, 128 do ok128 = {ok128} end assert(json.encode(ok128))\n"
              "local no129 = 1 for i = 1, 129 do no129 = {no129} end fails(no129, 'json.encode: too deeply nested (or a cycle)')\n"
              "fails(print, 'json.encode: cannot encode a function')\n"
              "fails({f = function() end}, 'json.encode: cannot encode a function')\n"
              "fails(coroutine.create(print), 'json.encode: cannot encode a thread')\n"
              "fails(io.stdout, 'json.encode: cannot encode a userdata')\n"
              "fails(0/0, 'json.encode: cannot encode NaN or infinity')\n"
              "fails({1/0}, 'json.encode: cannot encode NaN or infinity')\n"
              "fails(-1/0, 'json.encode: cannot encode NaN or infinity')\n"
              "fails({1, nil, 3}, 'json.encode: table has mixed or sparse keys')\n"
              "fails({[2] = 1}, 'json.encode: table has mixed or sparse keys')\n"
              "fails({1, a = 2}, 'json.encode: table has mixed or sparse keys')\n"
              "fails({[0] = 1}, 'json.encode: table has mixed or sparse keys')\n"
              "fails({[-1] = 1, [1] = 2}, 'json.encode: table has mixed or sparse keys')\n"
              "fails(json.array({a = 1}), 'json.encode: table has mixed or sparse keys')\n"
              "fails(json.array({[3] = 1}), 'json.encode: table has mixed or sparse keys')\n"
              "fails({[1.5] = 1}, 'json.encode: table has a key that is a non-integer number (keys must be strings or integers)')\n"
              "fails({[true] = 1}, 'json.encode: table has a key that is a boolean (keys must be strings or integers)')\n"
              "fails({[{}] = 1}, 'json.encode: table has a key that is a table (keys must be strings or integers)')\n"
              "fails('\\xff', 'json.encode: invalid UTF-8 in string')\n"
              "fails('a\\xc0\\xaf', 'json.encode: invalid UTF-8 in string')\n"
              "fails('\\xed\\xa0\\x80', 'json.encode: invalid UTF-8 in string')\n"
              "fails('\\xf4\\x90\\x80\\x80', 'json.encode: invalid UTF-8 in string')\n"
              "fails('\\xe2\\x82', 'json.encode: invalid UTF-8 in string')\n"
              "fails({['\\xff'] = 1}, 'json.encode: invalid UTF-8 in string')\n"
              "fails({s = string.rep('a', 100000) .. '\\x80'}, 'json.encode: invalid UTF-8 in string')\n"
              "local ok, err = pcall(json.encode) assert(not ok, 'encode needs an argument')\n"
              "local ok2, err2 = pcall(json.array, setmetatable({}, {}))\n"
              "assert(not ok2 and err2:find('already has a metatable', 1, true), err2)\n"
              "assert(not pcall(json.array, 'x'))\n");
}

static void never_calls_metamethods(void) {
    CHECK_LUA("local called = false\n"
              "local function boom() called = true error('metamethod called') end\n"
              "local mt = {__index = boom, __newindex = boom, __len = boom, __pairs = boom, __tostring = boom,\n"
              "  __eq = boom, __lt = boom, __le = boom, __concat = boom, __call = boom, __name = 'trap',\n"
              "  __metatable = 'locked'}\n"
              "local arr = setmetatable({1, 2, 3}, mt)\n"
              "local obj = setmetatable({b = arr, a = setmetatable({}, mt)}, mt)\n"
              "assert(json.encode(arr) == '[1,2,3]')\n"
              "assert(json.encode(obj) == '{\"a\":{},\"b\":[1,2,3]}')\n"
              "assert(json.encode(setmetatable({}, {__index = function(t, k) return 1 end})) == '{}')\n"
              "assert(not called)\n"
              /* a script can reach the shared array metatable; adding metamethods to it changes nothing */
              "local amt = getmetatable(json.decode('[]'))\n"
              "amt.__newindex = boom amt.__index = boom amt.__len = boom\n"
              "local v = json.decode('[1,[2],{\"a\":[3]}]')\n"
              "assert(rawget(v, 1) == 1 and json.encode(v) == '[1,[2],{\"a\":[3]}]')\n"
              "setmetatable(amt, {__index = boom})\n"
              "assert(json.encode(json.decode('[[]]')) == '[[]]')\n"
              "assert(not called)\n"
              "amt.__newindex = nil amt.__index = nil amt.__len = nil setmetatable(amt, nil)\n"
              /* ...except __gc, which would mark every decoded array for finalization behind
               * the sandbox's setmetatable: the codec refuses to attach it then */
              "amt.__gc = function() end\n"
              "local ok, err = pcall(json.decode, '[]')\n"
              "assert(not ok and err:find('array metatable has been given a __gc', 1, true), err)\n"
              "assert(not pcall(json.array, {}))\n"
              "assert(not pcall(json.decode, '{}'), 'checked once per decode, arrays or not')\n"
              "amt.__gc = nil\n"
              "assert(json.encode(json.decode('[]')) == '[]')\n");
}

/* The collector may clear entries of a weak table while it is being encoded (the encoder
 * allocates); that must never leave the encoder pointing at a freed key. Run under ASan. */
static void weak_tables_are_safe_to_encode(void) {
    CHECK_LUA("for round = 1, 30 do\n"
              "  local small = setmetatable({}, {__mode = 'v'})\n"
              "  local big = setmetatable({}, {__mode = 'v'})\n"
              "  for i = 1, 10 do small[string.rep('k', 50) .. i .. round] = {string.rep('x', 1000)} end\n"
              "  for i = 1, 300 do big[string.rep('k', 50) .. i .. round] = {string.rep('x', 1000)} end\n"
              "  collectgarbage('incremental', 100, 100)\n"
              "  local ok1, s1 = pcall(json.encode, {small, big})\n"
              "  assert(ok1, s1)\n"
              "end\n"
              "collectgarbage('incremental', 200, 100)\n");
}

/* ---- fuzz -------------------------------------------------------------------------------- */

/* Decoding a mutated document may fail but must not crash; when it decodes, encoding the value
 * must work, and the encoding must be a fixed point of decode-then-encode. */
static void fuzz_never_crashes(void) {
    static const char *seeds[] = {
        "{\"a\":[1,2,3,{\"b\":null}],\"c\":\"d\\u00e9\\ud83d\\ude00\",\"e\":-1.5e-3,\"f\":true}",
        "[[[[[]]]],{},{\"\":[]},\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",0,-0,9223372036854775807,1e308]",
        "\"\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9\"",
        "{\"k\":{\"k\":{\"k\":{\"k\":[false,true,null,12345678901234567890]}}}}",
        "[0.1,2E+2,3e-2,-9223372036854775808,\"\\u0000\",\"\\uDBFF\\uDFFF\"]",
    };
    static const char *tokens[] = {
        "[", "]", "{", "}", ",", ":", "\"", "\\", "\\u", "\\ud800", "\\udc00", "0", "-", "e", ".", "1e999",
        "null", "true", "false", "\xc0", "\xed\xa0\x80", "\xf4\x90", "\x80", "\0", " ", "\n", "9223372036854775808",
    };
    long iters = 200000;
    const char *env = getenv("JSON_FUZZ_ITERS");
    if (env) iters = atol(env);
    char buf[512];
    long decoded = 0, crashed_invariant = 0;
    for (long it = 0; it < iters; it++) {
        const char *seed = seeds[test_rand() % (sizeof seeds / sizeof seeds[0])];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        n = test_mutate(buf, n, sizeof buf, tokens, sizeof tokens / sizeof tokens[0], 4);
        int top = lua_gettop(L);
        if (decode_exact(buf, n)) {
            decoded++;
            if (!encode_pop()) {
                crashed_invariant++;
                CHECK_MSG(0, "decoded but cannot encode: %.*s: %s", (int)n, buf, lua_tostring(L, -1));
            } else {
                size_t len1;
                const char *s1 = lua_tolstring(L, -1, &len1);
                if (!decode_exact(s1, len1) || !encode_pop()) {
                    crashed_invariant++;
                    CHECK_MSG(0, "own output does not decode: %s", s1);
                } else {
                    size_t len2;
                    const char *s2 = lua_tolstring(L, -1, &len2);
                    if (len1 != len2 || memcmp(s1, s2, len1) != 0) {
                        crashed_invariant++;
                        CHECK_MSG(0, "not a fixed point: %s vs %s", s1, s2);
                    }
                }
            }
        }
        lua_settop(L, top);
        if (crashed_invariant > 5) break;
    }
    printf("# json fuzz: %ld documents, %ld decoded\n", iters, decoded);
}

/* ---- benchmark --------------------------------------------------------------------------- */

static void benchmark_throughput(void) {
    CHECK_LUA("local items = {}\n"
              "for i = 1, 4000 do\n"
              "  items[i] = {id = i, name = 'item \\u{e9} ' .. i, score = i / 3, ok = i % 2 == 0,\n"
              "    tags = json.array({'alpha', 'beta', 'gamma\\n'}), nested = {x = i, y = -i, z = json.null}}\n"
              "end\n"
              "bench_doc = json.encode({items = items, text = string.rep('lorem ipsum \"dolor\" ', 15000)})\n");
    lua_getglobal(L, "bench_doc");
    size_t n;
    const char *doc = lua_tolstring(L, -1, &n);
    int rounds = 20;
    double t0 = test_now_s();
    for (int i = 0; i < rounds; i++) {
        CHECK(decode_exact(doc, n));
        if (i + 1 < rounds) lua_pop(L, 1);
    }
    double t1 = test_now_s();
    for (int i = 0; i < rounds; i++) {
        lua_pushvalue(L, -1);
        CHECK(encode_pop());
        lua_pop(L, 1);
    }
    double t2 = test_now_s();
    double mb = (double)n * rounds / 1e6;
    printf("# json bench: %.2f MB document, decode %.0f MB/s, encode %.0f MB/s\n", (double)n / 1e6,
           mb / (t1 - t0), mb / (t2 - t1));
    lua_pop(L, 2);
}

static void leaves_the_stack_balanced(void) { CHECK(lua_gettop(L) == 0); }

int main(void) {
    L = luaL_newstate();
    sbx_plain_state(L);
    luaL_openlibs(L);
    sbx_open_json(L);
    lua_setglobal(L, "json");

    RUN(decodes_scalars_to_the_right_lua_types);
    RUN(decodes_containers);
    RUN(accepts_what_rfc8259_allows);
    RUN(rejects_malformed_json);
    RUN(decode_accepts_only_strings);
    RUN(every_truncation_is_an_error);
    RUN(deep_nesting_is_a_clean_error);
    RUN(encodes_values_canonically);
    RUN(round_trips_preserve_values);
    RUN(encode_refuses_what_json_cannot_hold);
    RUN(never_calls_metamethods);
    RUN(weak_tables_are_safe_to_encode);
    RUN(fuzz_never_crashes);
    RUN(benchmark_throughput);
    RUN(leaves_the_stack_balanced);

    lua_close(L);
    return check_finish("json");
}
