/*
 * test_bounded.c: the bounded string and table functions (sandbox/bounded_string.c,
 * sandbox/bounded_table.c) behave exactly like Lua 5.4's own, and stop when the budget runs out.
 *
 * Differential tests run on a plain lua_State: Lua's original functions are saved as globals
 * (orig_find, ...) before ours replace them, and both are run on the same arguments, fixed cases
 * and fuzzed ones; results and error messages must be the same. On a plain state sbx_charge has no
 * sandbox to charge, so it must do nothing there.
 *
 * Boundedness tests run scripts that would hold the CPU for minutes inside one C call and check
 * that they stop quickly: through a real sandbox with a tight instruction limit, or, when built by
 * hand with -DACCRUE_BOUNDED_STANDALONE against a stand-in sbx_charge, on a plain state whose
 * stand-in reads its budget from registry["bounded.budget"].
 */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox/internal.h"
#include "sandbox/sandbox.h"
#include "tests/check.h"

static const char *const saved_string_fns[] = {"find", "match", "gmatch", "gsub", "rep", "format",
                                               "sub", "byte", "upper", "lower", "reverse"};
static const char *const saved_table_fns[] = {"sort", "concat", "move", "unpack", "insert",
                                              "remove"};

/* A plain state with our functions in string and table, Lua's originals in orig_<name>. */
static lua_State *new_state(void) {
    lua_State *L = luaL_newstate();
    sbx_plain_state(L);
    luaL_openlibs(L);
    lua_getglobal(L, "string");
    for (size_t i = 0; i < sizeof saved_string_fns / sizeof *saved_string_fns; i++) {
        char name[32];
        lua_getfield(L, -1, saved_string_fns[i]);
        snprintf(name, sizeof name, "orig_%s", saved_string_fns[i]);
        lua_setglobal(L, name);
    }
    sbx_open_bounded_string(L);
    lua_pop(L, 1);
    lua_getglobal(L, "table");
    for (size_t i = 0; i < sizeof saved_table_fns / sizeof *saved_table_fns; i++) {
        char name[32];
        lua_getfield(L, -1, saved_table_fns[i]);
        snprintf(name, sizeof name, "orig_%s", saved_table_fns[i]);
        lua_setglobal(L, name);
    }
    sbx_open_bounded_table(L);
    lua_pop(L, 1);
    return L;
}

/*
 * Runs a chunk that returns nil when all is well or a string describing the first mismatch.
 * Returns NULL on success; otherwise the message, copied into a static buffer.
 */
static const char *run_chunk(lua_State *L, const char *code) {
    static char msg[2048];
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        snprintf(msg, sizeof msg, "error: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return msg;
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return msg;
}

/* Shared Lua helpers: same() runs a function once with ours and once with Lua's original and
 * compares everything it returns (error messages with the function name normalised, since the
 * name Lua finds for a function depends on where it is stored). */
static const char *const prelude =
    "local function norm(v)\n"
    "  if type(v) == 'string' then return (v:gsub(\"to '[^']*'\", \"to '?'\")) end\n"
    "  return v\n"
    "end\n"
    "local function show(r)\n"
    "  local out = {}\n"
    "  for i = 1, r.n do out[#out + 1] = type(r[i]) .. ':' .. tostring(r[i]) end\n"
    "  return table.concat(out, ', ')\n"
    "end\n"
    "function same(desc, f, ...)\n"
    "  local a = table.pack(pcall(f, false, ...))\n"
    "  local b = table.pack(pcall(f, true, ...))\n"
    "  local ok = a.n == b.n\n"
    "  for i = 1, math.max(a.n, b.n) do\n"
    "    local x, y = norm(a[i]), norm(b[i])\n"
    "    if x ~= y and not (x ~= x and y ~= y) then ok = false end\n"
    "  end\n"
    "  if not ok then\n"
    "    return desc .. ': ours {' .. show(a) .. '} lua {' .. show(b) .. '}'\n"
    "  end\n"
    "end\n"
    "function pick(orig, name, lib)\n"
    "  if orig then return _G['orig_' .. name] end\n"
    "  return (lib or string)[name]\n"
    "end\n"
    "function fmt(v) return string.format('%q', v) end\n"
    "function run_find(orig, s, p, i, plain) local find = pick(orig, 'find') return find(s, p, i, plain) end\n"
    "function run_match(orig, s, p, i) local match = pick(orig, 'match') return match(s, p, i) end\n"
    "function run_gmatch(orig, s, p, i)\n"
    "  local gmatch = pick(orig, 'gmatch')\n"
    "  local out, n = {}, 0\n"
    "  for a, b, c in gmatch(s, p, i) do\n"
    "    n = n + 1\n"
    "    out[#out + 1] = tostring(a) .. '|' .. tostring(b) .. '|' .. tostring(c)\n"
    "    if n > 1000 then break end\n"
    "  end\n"
    "  return table.concat(out, ';'), n\n"
    "end\n"
    "function run_gsub(orig, s, p, r, n) local gsub = pick(orig, 'gsub') return gsub(s, p, r, n) end\n";

static lua_State *new_diff_state(void) {
    lua_State *L = new_state();
    const char *err = run_chunk(L, prelude);
    CHECK_MSG(err == NULL, "%s", err);
    return L;
}

/* Every (subject, pattern, init) case through find, match and gmatch, ours against Lua's. */
static void test_patterns_match_lua(void) {
    lua_State *L = new_diff_state();
    const char *err = run_chunk(L,
        "local cases = {\n"
        "  {'hello world', 'o w'}, {'hello world', 'o', 5}, {'hello', 'l+'}, {'hello', 'l*'},\n"
        "  {'hello', 'l-'}, {'hello', 'l?'}, {'hello', 'x*'}, {'hello', '^h'}, {'hello', '^e'},\n"
        "  {'hello', 'o$'}, {'hello', 'l$'}, {'a$b', 'a$b'}, {'a$', '$'}, {'', ''}, {'', '^$'},\n"
        "  {'abc', ''}, {'abc', '', 10}, {'abc', '', 4}, {'abc', '', -1}, {'abc', 'b', -10},\n"
        "  {'abc', 'c', -1}, {'abc', 'a', 0}, {'abc', '.', 3}, {'abc', '.', 5},\n"
        "  {'  key = value  ', '(%w+)%s*=%s*(%w+)'}, {'2024-01-31', '(%d+)-(%d+)-(%d+)'},\n"
        "  {'THE (quick) fox', '%((%a+)%)'}, {'f(a(b)c)d', '%b()'}, {'f(a(b c)d', '%b()'},\n"
        "  {'[[x]]', '%b[]'}, {'abc', '%bab'}, {'THE (quick) fox', '%f[%a]%a+'},\n"
        "  {'hello world', '%f[%w]%w+$'}, {'the cat', '%f[%l]'}, {'x', '%f[%z]'}, {'x', '%f[^%z]'},\n"
        "  {'aaa', '()a()'}, {'hello', '()ll()'}, {'abcabc', '(abc)%1'}, {'abab', '(ab)%1'},\n"
        "  {'xyzxyz', '(x)(y)(z)%1%2%3'}, {'aa', '(a)%1'}, {'ab', '(a)%1'},\n"
        "  {'a.b', '%.'}, {'a+b', '%+'}, {'a%b', '%%'}, {'a]b', ']'}, {'a]b', '[]]'},\n"
        "  {'a]b', '[^]]+'}, {'a-b', '[a-]+'}, {'a-b', '[-a]+'}, {'za', '[a-z]+'},\n"
        "  {'AZaz09', '[%u]+'}, {'AZaz09', '[^%u]+'}, {'x^y', '[%^]'}, {'x^y', '[x^]+'},\n"
        "  {'a]b', '[%]]'}, {'hello', '[^l]+'}, {'tab\\there', '%s'}, {'tab\\there', '%S+'},\n"
        "  {'\\0a\\0', '%z'}, {'\\0a\\0', '[%z]'}, {'a\\0b', 'a\\0b'}, {'a\\0b', '\\0'},\n"
        "  {'abc', '[b-a]'}, {'abc', '[a-c-e]+'}, {'a-', '[%a-]+'}, {'abc', '[%a-z]+'},\n"
        "  {'Hello, World!', '%p'}, {'Hello, World!', '%P+'}, {'0x1F', '%x+'}, {'ctrl\\1', '%c'},\n"
        "  {'ab12', '%W'}, {'ab12', '%D+'}, {'ab12', '%A+'}, {'aB', '%L'}, {'aB', '%U'},\n"
        "  {'aaab', 'a-b'}, {'aaab', 'a*b'}, {'aaab', 'a+b'}, {'aaab', 'a?b'}, {'b', 'a?b'},\n"
        "  {'aaa', 'a-$'}, {'aaa', '^a-'}, {'one two  three', '(%S+)%s*'}, {'x = 1', '^(%w+)'},\n"
        "  {'abc', '((a)(b)(c))'}, {'abc', '(a(b(c)))'}, {'abc', '()'}, {'abc', '(.-)c'},\n"
        "  {'[x]', '%[(.-)%]'}, {'a.b.c', '(.-)%.'}, {'a.b.c', '(.*)%.'}, {'path/to/f.txt', '([^/]+)$'},\n"
        "  {'äöü', '.'}, {'\\200\\255', '[\\128-\\255]+'}, {'ab', 'a*?'}, {'a', 'a**'},\n"
        "  {'^a', '^^a'}, {'a^', 'a^'}, {'$$', '$$'}, {'x', '.-'}, {'x', '.-$'}, {'xy', '.?y'},\n"
        "  {'aXb', '%u'}, {'12ab', '^%d+'}, {'  trim  ', '^%s*(.-)%s*$'}, {'a,b,,c', '([^,]*)'},\n"
        "  {'hello', 'l', 1, true}, {'a.b', '.', 1, true}, {'a.b', '.', 3, true}, {'a+b', '+', 1, true},\n"
        "  {'abc', 'c', -1, true}, {'abc', '', 4, true}, {'abc', '', 5, true}, {'abc', 'abcd', 1, true},\n"
        "  {'a(b', '(', 1, true}, {'x%y', '%', 1, true}, {'find me', 'me', -2},\n"
        "  {'aaa', '%'}, {'aaa', 'a%'}, {'aaa', '[a'}, {'aaa', '[a%'}, {'aaa', '[^'}, {'aaa', '[]'},\n"
        "  {'aaa', '(a'}, {'aaa', 'a)'}, {'aaa', '%1'}, {'aaa', '(a)%2'}, {'aaa', '(a%1)'},\n"
        "  {'aaa', '%f'}, {'aaa', '%fa'}, {'aaa', '%f[a'}, {'aaa', '%b'}, {'aaa', '%ba'},\n"
        "  {'aaa', '(()'}, {'aaa', '%0'}, {'aaa', '()%1'}, {'aaa', string.rep('(', 33) .. 'a' .. string.rep(')', 33)},\n"
        "  {'aaa', string.rep('(a)', 32)}, {string.rep('a', 40), string.rep('(a)', 32)},\n"
        "  {string.rep('a', 300), string.rep('a?', 300)}, {string.rep('a', 10), string.rep('a?', 250)},\n"
        "  {string.rep('(', 10), string.rep('%b()', 3)}, {'aaa', '[%'}, {'a', '[a-%%]'},\n"
        "}\n"
        "for k, c in ipairs(cases) do\n"
        "  local d = 'case ' .. k .. ' ' .. fmt(c[1]) .. ' ' .. fmt(c[2]) .. ' ' .. tostring(c[3])\n"
        "  local r = same('find ' .. d, run_find, c[1], c[2], c[3], c[4])\n"
        "    or same('match ' .. d, run_match, c[1], c[2], c[3])\n"
        "    or same('gmatch ' .. d, run_gmatch, c[1], c[2], c[3])\n"
        "  if r then return r end\n"
        "end\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

static void test_gsub_matches_lua(void) {
    lua_State *L = new_diff_state();
    const char *err = run_chunk(L,
        "local t = {hello = 'HI', world = false, x = 1.5, y = {}}\n"
        "local cases = {\n"
        "  {'hello world', 'o', '0'}, {'hello world', 'o', '0', 1}, {'hello world', 'o', '0', 0},\n"
        "  {'hello world', 'o', '0', -1}, {'hello world', '', '-'}, {'abc', '.-', '<%0>'},\n"
        "  {'abc', 'x*', '-'}, {'hello world', '(%w+)', '<%1>'}, {'hello world', '%w+', '%0 %0'},\n"
        "  {'hello world', '(o)', '%%'}, {'hello', '(l)(l)', '%2%1'}, {'hello', 'l', '%1'},\n"
        "  {'hello', 'l', '%2'}, {'hello', '(l)', '%2'}, {'hello', 'l', '%'}, {'hello', 'l', '%x'},\n"
        "  {'hello', '()l', '%1'}, {'hello', '^h', 'H'}, {'hello', '^l', 'L'}, {'hello', 'o$', 'O'},\n"
        "  {'hello world', '%w+', t}, {'hello world', '(%w+)', t}, {'x y', '%a', t}, {'y', 'y', t},\n"
        "  {'hello world', '%w+', string.upper}, {'hello world', '(%w)(%w*)', function(a, b) return b .. a end},\n"
        "  {'abc', '%w', function() return nil end}, {'abc', '%w', function() return false end},\n"
        "  {'abc', '%w', function() return 7 end}, {'abc', '%w', function() return {} end},\n"
        "  {'abc', '%w', function() return true end}, {'abc', '()', function(p) return p end},\n"
        "  {'abc', '', function(m) return '[' .. m .. ']' end}, {'abc', 'b', 5}, {'abc', 'b', 2.5},\n"
        "  {'abc', 'b', true}, {'abc', 'b'}, {'abc', '(', 'x'}, {'abc', '%', 'x'},\n"
        "  {'a,b,,c', ',', ';'}, {'  trim  ', '^%s*(.-)%s*$', '%1'}, {'aaa', 'a', 'b', 2},\n"
        "  {string.rep('ab', 50), 'b', 'BB'}, {'a\\0b', '%z', 'Z'}, {'abc', 'b', '%0%0%0'},\n"
        "  {'abc', '(b)', function(x) error('boom') end},\n"
        "}\n"
        "for k, c in ipairs(cases) do\n"
        "  local d = 'gsub case ' .. k .. ' ' .. fmt(c[1]) .. ' ' .. fmt(c[2])\n"
        "  local r = same(d, run_gsub, c[1], c[2], c[3], c[4])\n"
        "  if r then return r end\n"
        "end\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

/* Random subjects and patterns from a small alphabet rich in magic characters. */
static void test_fuzzed_patterns_match_lua(void) {
    lua_State *L = new_diff_state();
    const char *err = run_chunk(L,
        "math.randomseed(12345)\n"
        "local chars = {'a', 'b', 'c', '(', ')', '[', ']', '%', '.', '-', '^', '$', ' ', '1', 'A', '\\0', '\\200'}\n"
        "local atoms = {'a', 'b', '.', '%a', '%d', '%s', '%W', '[ab]', '[^a]', '[a-c]', '[%a%d]',\n"
        "  '%%', '%.', '(', ')', '()', '%1', '%2', '%b()', '%f[%a]', '%f[^a]', '^', '$', '[', ']',\n"
        "  '%', '[]', '%]', '[%]]', '-', 'c', ' ', '1', '%l', '%g', '%x', '%P', '%c', '%U', '[%]a-]',\n"
        "  '[^%s%d]', '%bab', '%b))', '%f[%s]', '%f[]', '%f[^]', '.-', 'a*', '(a*)', '(.)%1', '%3'}\n"
        "local quants = {'', '', '', '*', '+', '-', '?'}\n"
        "local reps = {'x', '%0', '%1', '<%1%2>', '%%', '%', '', '%9'}\n"
        "local function subject()\n"
        "  local out = {}\n"
        "  for i = 1, math.random(0, 12) do out[i] = chars[math.random(#chars)] end\n"
        "  return table.concat(out)\n"
        "end\n"
        "local function pattern()\n"
        "  local out = {}\n"
        "  for i = 1, math.random(0, 6) do\n"
        "    out[i] = atoms[math.random(#atoms)] .. quants[math.random(#quants)]\n"
        "  end\n"
        "  return table.concat(out)\n"
        "end\n"
        "for k = 1, 20000 do\n"
        "  local s, p = subject(), pattern()\n"
        "  local init = math.random(-14, 14)\n"
        "  local d = 'fuzz ' .. k .. ' ' .. fmt(s) .. ' ' .. fmt(p) .. ' ' .. init\n"
        "  local r = same('find ' .. d, run_find, s, p, init)\n"
        "    or same('match ' .. d, run_match, s, p, init)\n"
        "    or same('gmatch ' .. d, run_gmatch, s, p, init)\n"
        "    or same('gsub ' .. d, run_gsub, s, p, reps[math.random(#reps)], math.random(-1, 3))\n"
        "    or same('gsubf ' .. d, run_gsub, s, p, function(...) return select('#', ...) end)\n"
        "  if r then return r end\n"
        "end\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

/* Malformed patterns raise Lua's own messages, word for word. */
static void test_pattern_errors(void) {
    static const struct {
        const char *pattern, *message;
    } cases[] = {
        {"%", "malformed pattern (ends with '%')"},
        {"[a", "malformed pattern (missing ']')"},
        {"[]", "malformed pattern (missing ']')"},
        {"(a", "unfinished capture"},
        {"a)", "invalid pattern capture"},
        {"%fa", "missing '[' after '%f' in pattern"},
        {"(a)%2", "invalid capture index %2"},
        {"%b", "malformed pattern (missing arguments to '%b')"},
    };
    lua_State *L = new_state();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lua_getglobal(L, "string");
        lua_getfield(L, -1, "match");
        lua_pushliteral(L, "aaa");
        lua_pushstring(L, cases[i].pattern);
        CHECK(lua_pcall(L, 2, 1, 0) != LUA_OK);
        CHECK_STREQ(lua_tostring(L, -1), cases[i].message);
        lua_pop(L, 2);
    }
    const char *err = run_chunk(L,
        "local ok, e = pcall(string.find, ('a'):rep(300), ('a?'):rep(300) .. 'b')\n"
        "if ok or e ~= 'pattern too complex' then return 'deep: ' .. tostring(e) end\n"
        "ok, e = pcall(string.find, 'a', ('()'):rep(33))\n"
        "if ok or e ~= 'too many captures' then return 'captures: ' .. tostring(e) end\n"
        "ok, e = pcall(string.gsub, 'a', 'a', '%')\n"
        "if ok or e ~= \"invalid use of '%' in replacement string\" then return 'repl: ' .. tostring(e) end\n"
        "ok, e = pcall(string.gsub, 'a', 'a', {a = {}})\n"
        "if ok or e ~= 'invalid replacement value (a table)' then return 'value: ' .. tostring(e) end\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

/* rep and format: same results and errors as Lua's. */
static void test_rep_and_format(void) {
    lua_State *L = new_diff_state();
    const char *err = run_chunk(L,
        "local function rep(orig, ...) return pick(orig, 'rep')(...) end\n"
        "local function format(orig, ...) return pick(orig, 'format')(...) end\n"
        "local cases = {\n"
        "  {'ab', 3}, {'ab', 3, ','}, {'ab', 1, ','}, {'ab', 0, ','}, {'ab', -5}, {'', 10},\n"
        "  {'', 10, ''}, {'', 3, 'x'}, {'x', 100000}, {'abc', 77777, '--'}, {'abc', 2.0},\n"
        "  {'abc', 2.5}, {'abc', 'x'}, {'abc'}, {'x', 2^31}, {'x', 1 << 62, 'y'}, {'abc', 1 << 40}, {string.rep('q', 70000), 3, 'sep'}, {12, 3, 4},\n"
        "}\n"
        "for k, c in ipairs(cases) do\n"
        "  local r = same('rep case ' .. k, rep, table.unpack(c, 1, 3))\n"
        "  if r then return r end\n"
        "end\n"
        "local mt = {__tostring = function() return 'OBJ' end}\n"
        "local fcases = {\n"
        "  {'%d %s %q', 1, 'two', 'th\\nree'}, {'%5.2f|%-5d|%x', 3.14159, 42, 255}, {'%s', string.rep('z', 5000)},\n"
        "  {'%s %s', setmetatable({}, mt), nil}, {'%d', 1.5}, {'%y', 1}, {'%s'}, {'plain'}, {'%c%c', 65, 66},\n"
        "}\n"
        "for k, c in ipairs(fcases) do\n"
        "  local r = same('format case ' .. k, format, table.unpack(c, 1, 4))\n"
        "  if r then return r end\n"
        "end\n"
        "if (('ab'):rep(3)) ~= 'ababab' then return 'method call' end\n"
        "-- Lua's own rep loops 2^62 times here copying nothing; ours returns at once.\n"
        "if string.rep('', 1 << 62) ~= '' or string.rep('', 1 << 62, '') ~= '' then return 'empty rep' end\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

/* sub, byte, upper, lower, reverse: same results and errors as Lua's, on every position pair
 * around the ends of the string (and far past them), on numbers as subjects and on bad arguments. */
static void test_linear_string_functions_match_lua(void) {
    lua_State *L = new_diff_state();
    const char *err = run_chunk(L,
        "local function S(name) return function(orig, ...) return pick(orig, name)(...) end end\n"
        "local positions = {0, 1, 2, 3, 5, 6, 7, 100, -1, -2, -5, -6, -7, -100, math.maxinteger,\n"
        "                   math.mininteger, math.mininteger + 1, 2.0, 3.5, '2', 'x', nil}\n"
        "for _, subject in ipairs({'hello', '', 'a', 12345, 'A\\0b\\255z'}) do\n"
        "  for _, i in ipairs(positions) do\n"
        "    for _, j in ipairs(positions) do\n"
        "      local r = same('sub ' .. tostring(subject) .. ' ' .. tostring(i) .. ' ' .. tostring(j), S('sub'), subject, i, j)\n"
        "        or same('byte ' .. tostring(subject) .. ' ' .. tostring(i) .. ' ' .. tostring(j), S('byte'), subject, i, j)\n"
        "      if r then return r end\n"
        "    end\n"
        "    local r = same('sub/1 ' .. tostring(i), S('sub'), subject, i) or same('byte/1 ' .. tostring(i), S('byte'), subject, i)\n"
        "    if r then return r end\n"
        "  end\n"
        "  for _, f in ipairs({'upper', 'lower', 'reverse', 'byte'}) do\n"
        "    local r = same(f .. ' ' .. tostring(subject), S(f), subject)\n"
        "    if r then return r end\n"
        "  end\n"
        "end\n"
        "local all = {} for c = 0, 255 do all[#all + 1] = string.char(c) end all = table.concat(all)\n"
        "for _, f in ipairs({'upper', 'lower', 'reverse'}) do\n"
        "  local r = same(f .. ' all bytes', S(f), all) or same(f .. ' no arg', S(f)) or same(f .. ' table', S(f), {})\n"
        "  if r then return r end\n"
        "end\n"
        "local r = same('sub no args', S('sub')) or same('sub no i', S('sub'), 'abc') or same('byte table', S('byte'), {})\n"
        "  or same('byte long', S('byte'), ('x'):rep(1000), 1, -1)\n"
        "if r then return r end\n"
        "if ('hello'):sub(2, 3) ~= 'el' or ('hello'):byte(-1) ~= 111 or ('aB'):upper() ~= 'AB' then return 'methods' end\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

/* sort, concat, move, unpack, insert, remove: same results and errors as Lua's. */
static void test_table_functions_match_lua(void) {
    lua_State *L = new_diff_state();
    const char *err = run_chunk(L,
        "local function T(name) return function(orig, ...) return pick(orig, name, table)(...) end end\n"
        "local function sorted(orig, t, f)\n"
        "  local c = {}\n"
        "  for i = 1, #t do c[i] = t[i] end\n"
        "  pick(orig, 'sort', table)(c, f)\n"
        "  return table.concat(c, ' ')\n"
        "end\n"
        "math.randomseed(7)\n"
        "for n = 0, 300, 7 do\n"
        "  local t = {}\n"
        "  for i = 1, n do t[i] = math.random(1, n // 3 + 1) end\n"
        "  local r = same('sort ' .. n, sorted, t) or same('sort desc ' .. n, sorted, t, function(a, b) return a > b end)\n"
        "  if r then return r end\n"
        "  local asc = {}\n"
        "  for i = 1, n do asc[i] = i end\n"
        "  r = same('sort sorted ' .. n, sorted, asc) or same('sort reversed ' .. n, sorted, asc, function(a, b) return a > b end)\n"
        "  if r then return r end\n"
        "end\n"
        "local words = {}\n"
        "for w in ('the quick brown fox jumps over the lazy dog again and again'):gmatch('%a+') do words[#words + 1] = w end\n"
        "local r = same('sort words', sorted, words)\n"
        "  or same('sort mixed', sorted, {3, 'a', 1})\n"
        "  or same('sort bad cmp', function(orig) local t = {1, 2, 3} pick(orig, 'sort', table)(t, 3) end)\n"
        "  or same('sort always true', function(orig) local t = {5, 4, 3, 2, 1, 6, 7} pick(orig, 'sort', table)(t, function() return true end) end)\n"
        "  or same('sort nil', function(orig) pick(orig, 'sort', table)(nil) end)\n"
        "  or same('sort big', function(orig) pick(orig, 'sort', table)(setmetatable({}, {__len = function() return math.maxinteger end})) end)\n"
        "if r then return r end\n"
        "local proxy_log = {}\n"
        "local function proxy(orig, op, ...)\n"
        "  local store = {10, 20, 30, 40, 50}\n"
        "  local p = setmetatable({}, {__index = store, __newindex = store, __len = function() return #store end})\n"
        "  local res = table.pack(pick(orig, op, table)(p, ...))\n"
        "  for i = 1, res.n do if type(res[i]) == 'table' then res[i] = '<table>' end end\n"
        "  return table.concat(store, ','), table.unpack(res, 1, res.n)\n"
        "end\n"
        "local tcases = {\n"
        "  {'concat', {1, 2, 3}}, {'concat', {1, 2, 3}, ', '}, {'concat', {1, 2, 3}, ', ', 2}, {'concat', {1, 2, 3}, ', ', 2, 3},\n"
        "  {'concat', {1, 2, 3}, ', ', 3, 2}, {'concat', {1, {}, 3}}, {'concat', {1, 2, 3}, ', ', 1, 5}, {'concat', {}},\n"
        "  {'concat', {'a', 1.5, 'b'}, '-'}, {'concat', 5}, {'concat', {1, 2}, {}},\n"
        "  {'unpack', {1, 2, 3}}, {'unpack', {1, 2, 3}, 2}, {'unpack', {1, 2, 3}, 2, 5}, {'unpack', {1, 2, 3}, 3, 1},\n"
        "  {'unpack', {1, 2, 3}, -1, 1}, {'unpack', {}, 1, 1e7}, {'unpack', {}, math.mininteger, math.maxinteger},\n"
        "  {'unpack', {}, 1, 'x'},\n"
        "  {'move', {1, 2, 3}, 1, 3, 2}, {'move', {1, 2, 3}, 2, 3, 1}, {'move', {1, 2, 3}, 1, 3, 1, {}},\n"
        "  {'move', {1, 2, 3}, 1, 0, 5}, {'move', {1, 2, 3}, math.mininteger, 3, 1}, {'move', {1, 2, 3}, 1, 3, math.maxinteger},\n"
        "  {'move', {1, 2, 3}, 1, 3}, {'move', {1, 2, 3}, 1, 3, 3, 7},\n"
        "  {'insert', {1, 2, 3}, 9}, {'insert', {1, 2, 3}, 1, 9}, {'insert', {1, 2, 3}, 4, 9}, {'insert', {1, 2, 3}, 5, 9},\n"
        "  {'insert', {1, 2, 3}, 0, 9}, {'insert', {1, 2, 3}}, {'insert', {1, 2, 3}, 1, 2, 3},\n"
        "  {'remove', {1, 2, 3}}, {'remove', {1, 2, 3}, 1}, {'remove', {1, 2, 3}, 4}, {'remove', {1, 2, 3}, 5},\n"
        "  {'remove', {}}, {'remove', {}, 0}, {'remove', {}, -1},\n"
        "}\n"
        "for k, c in ipairs(tcases) do\n"
        "  local function call(orig)\n"
        "    local t = c[2]\n"
        "    local copy = t\n"
        "    if type(t) == 'table' then copy = {} for i, v in pairs(t) do copy[i] = v end end\n"
        "    local res = table.pack(pick(orig, c[1], table)(copy, table.unpack(c, 3)))\n"
        "    local shown = {}\n"
        "    for i = 1, res.n do shown[i] = type(res[i]) == 'table' and '<table>' or tostring(res[i]) end\n"
        "    local cells = {}\n"
        "    if type(copy) == 'table' then for i = -1, 10 do cells[#cells + 1] = tostring(copy[i]) end end\n"
        "    return table.concat(shown, ','), table.concat(cells, ',')\n"
        "  end\n"
        "  r = same('table case ' .. k .. ' ' .. c[1], call)\n"
        "  if r then return r end\n"
        "end\n"
        "return same('proxy insert', proxy, 'insert', 2, 15) or same('proxy remove', proxy, 'remove', 2)\n"
        "  or same('proxy sort', proxy, 'sort', function(a, b) return a > b end) or same('proxy concat', proxy, 'concat', '+')\n"
        "  or same('proxy move', proxy, 'move', 1, 3, 2) or same('proxy unpack', proxy, 'unpack')\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

/* Random and inconsistent comparators never crash or read outside the array; valid random data
 * always ends sorted. */
static void test_sort_survives_bad_comparators(void) {
    lua_State *L = new_state();
    const char *err = run_chunk(L,
        "math.randomseed(99)\n"
        "for round = 1, 200 do\n"
        "  local n = math.random(2, 200)\n"
        "  local t = {}\n"
        "  for i = 1, n do t[i] = math.random(1, 50) end\n"
        "  local seen = {}\n"
        "  local ok, e = pcall(table.sort, t, function(a, b)\n"
        "    if a == nil or b == nil then error('nil compared') end\n"
        "    return math.random() < 0.5\n"
        "  end)\n"
        "  if not ok and e ~= 'invalid order function for sorting' then return 'random cmp: ' .. tostring(e) end\n"
        "  if #t ~= n then return 'size changed' end\n"
        "  ok, e = pcall(table.sort, t, function(a, b) return a <= b end)\n"
        "  if not ok and e ~= 'invalid order function for sorting' then return '<=: ' .. tostring(e) end\n"
        "  table.sort(t)\n"
        "  for i = 2, n do if t[i - 1] > t[i] then return 'not sorted at ' .. i end end\n"
        "end\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

/* Quicksort killers (organ pipe, all equal, sawtooth) stay O(n log n) in comparisons. */
static void test_sort_comparisons_bounded(void) {
    lua_State *L = new_state();
    const char *err = run_chunk(L,
        "local n = 20000\n"
        "local shapes = {\n"
        "  function(i) return i end, function(i) return n - i end, function(i) return 7 end,\n"
        "  function(i) return i <= n // 2 and i or n - i end, function(i) return i % 17 end,\n"
        "  function(i) return (i * 7919) % n end,\n"
        "}\n"
        "for k, shape in ipairs(shapes) do\n"
        "  local t = {}\n"
        "  for i = 1, n do t[i] = shape(i) end\n"
        "  local count = 0\n"
        "  table.sort(t, function(a, b) count = count + 1 return a < b end)\n"
        "  if count > 4 * n * 15 then return 'shape ' .. k .. ': ' .. count .. ' comparisons' end\n"
        "  for i = 2, n do if t[i - 1] > t[i] then return 'shape ' .. k .. ' not sorted' end end\n"
        "end\n");
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

/* How long a stopped script may take: 0.5 s, stretched under valgrind and the sanitizers. */
static double stop_deadline_seconds(void) {
    return test_scaled_ms(500) / 1e3;
}

/* Scripts that would hold the CPU inside one C call for seconds or minutes. */
static const char *const runaway_scripts[] = {
    "local s = ('a'):rep(200) return s:find('.-.-.-.-.-b')",
    "local s = ('a'):rep(5000) return s:find('(.-)%1b')",
    "return string.gsub(('a'):rep(100000), '.-.-b', 'x')",
    "for w in ('a'):rep(3000):gmatch('a*a*a*a*b') do end",
    "local s = string.rep('x', 1e8) return #s",
    "local s = string.rep('xy', 3e7, ',') return #s",
    "local t = {} for i = 1, 100000 do t[i] = i end "
    "table.sort(t, function(a, b) return a > b end)",
    "local t = {} for i = 1, 100000 do t[i] = -i end table.sort(t)",
    "table.move({}, 1, math.maxinteger - 1, 2)",
    "local t = setmetatable({}, {__len = function() return 1 << 50 end}) table.insert(t, 1, 'x')",
    "local t = setmetatable({}, {__len = function() return 1 << 50 end}) table.remove(t, 1)",
    "local set = '[' .. string.rep('a', 1e6) .. ']' "
    "return string.gsub(string.rep('a', 1e5), set, 'b')",
    "local t = {} for i = 1, 2000 do t[i] = 'abc' end "
    "return #table.concat(t, string.rep('-', 1e6))",
};

#ifdef ACCRUE_BOUNDED_STANDALONE
/* Built by hand against the stand-in sbx_charge (see the header comment). */
void stub_reset(void);

static void test_runaway_scripts_stop(void) {
    for (size_t i = 0; i < sizeof runaway_scripts / sizeof *runaway_scripts; i++) {
        lua_State *L = new_state();
        stub_reset();
        lua_pushinteger(L, 1000000);
        lua_setfield(L, LUA_REGISTRYINDEX, "bounded.budget");
        double t0 = test_now_s();
        int rc = luaL_loadstring(L, runaway_scripts[i]);
        if (rc == LUA_OK) rc = lua_pcall(L, 0, 0, 0);
        double dt = test_now_s() - t0;
        CHECK_MSG(rc != LUA_OK && strstr(lua_tostring(L, -1), "instruction limit"),
                  "script %zu: %s", i, rc == LUA_OK ? "finished" : lua_tostring(L, -1));
        CHECK_MSG(dt < stop_deadline_seconds(), "script %zu took %.3f s", i, dt);
        lua_close(L);
    }
}
#else
/* Through a real sandbox: the instruction limit stops every script within a fraction of a second. */
static void test_runaway_scripts_stop(void) {
    for (size_t i = 0; i < sizeof runaway_scripts / sizeof *runaway_scripts; i++) {
        sandbox_limits_t limits = sandbox_default_limits();
        limits.turn.instructions = 1000000;
        limits.memory_bytes = (size_t)512 << 20; /* the limit under test is the CPU one */
        limits.turn.time_ms = 10000;
        sandbox_t *sb = sandbox_open(&limits, NULL, NULL);
        CHECK(sb != NULL);
        if (!sb) return;
        double t0 = test_now_s();
        int rc = sandbox_start_load(sb, "runaway", runaway_scripts[i], strlen(runaway_scripts[i]), NULL);
        CHECK_MSG(rc == ACC_OK, "script %zu: %s", i, sandbox_errmsg(sb));
        sandbox_status_t st = rc == ACC_OK ? sandbox_run_to_end(sb) : SANDBOX_FAILED;
        double dt = test_now_s() - t0;
        CHECK_MSG(st == SANDBOX_FAILED && sandbox_limit_hit(sb) == SANDBOX_LIMIT_INSTRUCTIONS,
                  "script %zu: status %d, limit %d, %s", i, (int)st, (int)sandbox_limit_hit(sb),
                  sandbox_errmsg(sb));
        CHECK_MSG(dt < stop_deadline_seconds(), "script %zu took %.3f s", i, dt);
        sandbox_close(sb);
    }
}
#endif

/* Rough speed of ours against Lua's on an everyday workload; printed, not asserted, except that
 * ours must not be pathologically slower. */
static void test_speed_against_lua(void) {
    lua_State *L = new_state();
#ifdef ACCRUE_DEBUG
    lua_pushstring(L, " (a Debug build: ours unoptimised, Lua's -O2; zig build bench has the release ratios)");
#else
    lua_pushstring(L, "");
#endif
    lua_setglobal(L, "build_note");
    const char *code =
        "local words = {}\n"
        "for i = 1, 2000 do words[i] = 'word' .. i .. ' key' .. i .. '=value' .. (i * 7) end\n"
        "local text = table.concat(words, ' ')\n"
        "local function work(find, gsub, gmatch)\n"
        "  local t0 = os.clock()\n"
        "  local n = 0\n"
        "  for r = 1, 20 do\n"
        "    for k, v in gmatch(text, '(%w+)=(%w+)') do n = n + 1 end\n"
        "    n = n + select(2, gsub(text, '%s+', ' '))\n"
        "    n = n + select(2, gsub(text, 'key(%d+)', '<%1>'))\n"
        "    local i = 1\n"
        "    while true do\n"
        "      local s, e = find(text, '%d+', i)\n"
        "      if not s then break end\n"
        "      n, i = n + 1, e + 1\n"
        "    end\n"
        "    n = n + (find(text, 'word1999', 1, true) or 0)\n"
        "  end\n"
        "  return os.clock() - t0, n\n"
        "end\n"
        "local tl, nl = work(orig_find, orig_gsub, orig_gmatch)\n"
        "local to, no = work(string.find, string.gsub, string.gmatch)\n"
        "if nl ~= no then return 'different results' end\n"
        "io.stdout:write(string.format('# bounded: find/gsub/gmatch workload %.3f s ours, %.3f s Lua, ratio %.2f%s\\n', to, tl, to / tl, build_note))\n"
        "if to > 12 * tl + 0.05 then return 'too slow: ' .. to .. ' vs ' .. tl end\n";
    const char *err = run_chunk(L, code);
    if (test_slow_tool()) err = NULL; /* the ratio means nothing when only our side is instrumented */
    CHECK_MSG(err == NULL, "%s", err);
    lua_close(L);
}

int main(void) {
    RUN(test_patterns_match_lua);
    RUN(test_gsub_matches_lua);
    RUN(test_fuzzed_patterns_match_lua);
    RUN(test_pattern_errors);
    RUN(test_rep_and_format);
    RUN(test_linear_string_functions_match_lua);
    RUN(test_table_functions_match_lua);
    RUN(test_sort_survives_bad_comparators);
    RUN(test_sort_comparisons_bounded);
    RUN(test_runaway_scripts_stop);
    RUN(test_speed_against_lua);
    return check_finish("bounded");
}
