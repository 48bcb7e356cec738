/*
 * stdlib.c: the part of Lua's standard library an agent gets, and the wrappers that keep it safe.
 *
 * Opened: base, coroutine, table, string, math, utf8, and os reduced to time, clock and date.
 * Never opened: io, debug, package (so no require), and dofile, loadfile, warn and string.dump
 * are removed. Replaced with our own:
 *  - load: text chunks only (mode "t" whatever the caller asks), in the sandbox's own globals;
 *  - collectgarbage: only the options that cannot defeat memory accounting;
 *  - setmetatable, getmetatable, rawset (metaguard.c): no __gc, since finalizers run with hooks
 *    off (an endless __gc would hang the host), and no weak tables, ever;
 *  - print: captured and counted against the output limit;
 *  - pcall, xpcall, coroutine.resume/wrap/close: every function that catches errors re-raises a
 *    limit stop, so no limit can be caught;
 *  - coroutine.resume/wrap also pass host yields (a model call, the end of a time slice) made
 *    inside the agent's own coroutines on to the host: the OpenResty way of letting agents write
 *    plain sequential code inside coroutines too.
 * The string metatable is protected (getmetatable("") is false).
 */
#include <limits.h>
#include <string.h>

#include <lualib.h>

#include "sandbox/internal.h"

/* ---- pcall / xpcall ------------------------------------------------------------------------ */

static int finish_pcall(lua_State *L, int status, lua_KContext extra) {
    if (status != LUA_OK && status != LUA_YIELD) {
        sbx_rethrow_if_stopped(L, status);
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int sbx_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    sbx_check_cstack(L);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

/* The message handler xpcall installs: the agent's handler (upvalue 1) runs only for the agent's
 * own errors. A stop raised by the hook leaves Lua's hooks off while the handler runs (luaD_hook
 * does not restore allowhook when the hook throws), so the agent's handler must not run then. */
static int xpcall_handler(lua_State *L) {
    sandbox_t *sb = sbx_from_state(L);
    if (sb && (sb->stop || atomic_load_explicit(&sb->interrupt, memory_order_relaxed) & (SBX_INT_TIME | SBX_INT_CANCEL)))
        return 1; /* the stop value goes through as it is */
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, 1);
    return 1;
}

static int sbx_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    sbx_check_cstack(L);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, xpcall_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* function, handler, true, function, args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

/* ---- coroutines ---------------------------------------------------------------------------- */

enum { RESUME_ERROR = -1, RESUME_HOST_YIELD = -2 };

enum co_state { CO_RUNNING, CO_SUSPENDED, CO_NORMAL, CO_DEAD };
static const char *const co_state_name[] = {"running", "suspended", "normal", "dead"};

/* What coroutine.status says of co, seen from L (lcorolib.c's auxstatus). Checked before every
 * resume and close, so Lua never has to make an error message inside co, where it has no
 * protected call to raise in. */
static enum co_state co_state_of(lua_State *L, lua_State *co) {
    if (L == co) return CO_RUNNING;
    switch (lua_status(co)) {
    case LUA_YIELD: return CO_SUSPENDED;
    case LUA_OK: {
        lua_Debug ar;
        if (lua_getstack(co, 0, &ar)) return CO_NORMAL; /* it has frames: it resumed someone */
        return lua_gettop(co) == 0 ? CO_DEAD : CO_SUSPENDED;
    }
    default: return CO_DEAD; /* it ended with an error */
    }
}

/* Runs co's pending __close handlers (lua_resetthread) in co, under its hook. Returns the status;
 * an error object is then on top of co. */
static int close_thread(lua_State *L, lua_State *co) {
    sandbox_t *sb = sbx_from_state(L);
    /* lua_resetthread starts co's C-call count afresh (5.4.4): only the C stack bounds this. */
    sbx_check_cstack(L);
    sbx_switch_to(sb, co); /* its __close handlers run in co */
    int status = lua_resetthread(co);
    sbx_switch_to(sb, L);
    return status;
}

/* Resumes co with the narg values on top of L. Returns the number of results now on top of L;
 * RESUME_ERROR with the error object on top; or RESUME_HOST_YIELD when co yielded for the host,
 * and the caller must yield too. */
static int resume_co(lua_State *L, lua_State *co, int narg) {
    sandbox_t *sb = sbx_from_state(L);
    if (sb->limits.instructions) sbx_charge(L, SBX_HOOK_QUANTUM / 2); /* co's partial count is lost */
    enum co_state state = co_state_of(L, co);
    if (state != CO_SUSPENDED) {
        lua_pushstring(L, state == CO_DEAD ? "cannot resume dead coroutine" : "cannot resume non-suspended coroutine");
        return RESUME_ERROR;
    }
    sbx_check_cstack(L);
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return RESUME_ERROR;
    }
    lua_xmove(L, co, narg);
    bool chain = sb->chain_yieldable;
    sb->chain_yieldable = chain && lua_isyieldable(L);
    sbx_switch_to(sb, co);
    int nres = 0;
    int status = lua_resume(co, L, narg, &nres);
    sbx_switch_to(sb, L);
    sb->chain_yieldable = chain;
    if (status == LUA_OK || status == LUA_YIELD) {
        if (status == LUA_YIELD && sb->yield != SBX_YIELD_NONE) {
            lua_pop(co, nres);
            return RESUME_HOST_YIELD;
        }
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return RESUME_ERROR;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    sbx_rethrow_if_stopped(L, status);
    return RESUME_ERROR;
}

static int co_resume_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: co at 1, then the values to pass. */
static int co_resume_from(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    int r = resume_co(L, co, lua_gettop(L) - 1);
    if (r == RESUME_HOST_YIELD) return lua_yieldk(L, 0, 0, co_resume_k);
    if (r == RESUME_ERROR) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int co_resume_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status, (void)ctx;
    return co_resume_from(L);
}

static int co_resume(lua_State *L) {
    luaL_argexpected(L, lua_tothread(L, 1), 1, "coroutine");
    return co_resume_from(L);
}

static int co_wrap_k(lua_State *L, int status, lua_KContext ctx);

static int co_wrap_call(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = resume_co(L, co, lua_gettop(L));
    if (r == RESUME_HOST_YIELD) return lua_yieldk(L, 0, 0, co_wrap_k);
    if (r == RESUME_ERROR) {
        int stat = lua_status(co);
        if (stat != LUA_OK && stat != LUA_YIELD) { /* an error killed it: close its variables */
            stat = close_thread(L, co);
            lua_xmove(co, L, 1);
            sbx_rethrow_if_stopped(L, stat);
        }
        if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return r;
}

static int co_wrap_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status, (void)ctx;
    return co_wrap_call(L);
}

static int co_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, co_wrap_call, 1);
    return 1;
}

static int co_yield(lua_State *L) {
    sandbox_t *sb = sbx_from_state(L);
    if (L == sb->turn_thread) return luaL_error(L, "attempt to yield from outside a coroutine");
    return lua_yield(L, lua_gettop(L));
}

static int co_isyieldable(lua_State *L) {
    sandbox_t *sb = sbx_from_state(L);
    lua_State *co = lua_isnone(L, 1) ? L : lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    lua_pushboolean(L, co != sb->turn_thread && lua_isyieldable(co));
    return 1;
}

static int co_running(lua_State *L) {
    sandbox_t *sb = sbx_from_state(L);
    int ismain = lua_pushthread(L);
    if (L == sb->turn_thread) sb->turn_thread_seen = true; /* the agent may keep it: never reused */
    lua_pushboolean(L, ismain || L == sb->turn_thread);
    return 2;
}

/* coroutine.close(co), as Lua's (lcorolib.c's luaB_close), but an error raised while closing is
 * re-raised when it is a stop: out of memory in a __close handler, or any limit, even when a later
 * __close handler raised an error of its own over it (the stop is sticky: sb->stop says). Only a
 * dead or suspended coroutine can be closed, so neither the running one nor the turn's own thread
 * (normal, below an agent coroutine) is ever reset. */
static int co_close(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    enum co_state state = co_state_of(L, co);
    if (state != CO_DEAD && state != CO_SUSPENDED)
        return luaL_error(L, "cannot close a %s coroutine", co_state_name[state]);
    int status = close_thread(L, co);
    if (status == LUA_OK) {
        sbx_rethrow_if_stopped(L, status);
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    sbx_rethrow_if_stopped(L, status);
    return 2;
}

/* ---- base functions ------------------------------------------------------------------------ */

/* load(chunk [, chunkname [, mode [, env]]]): text only whatever mode says, compiled in pieces
 * so that the parser's work is bounded (sbx_load_chunk). */
static int sbx_load(lua_State *L) {
    size_t len = 0;
    const char *s = lua_tolstring(L, 1, &len);
    const char *chunkname;
    int env = lua_isnone(L, 4) ? 0 : 4;
    sbx_check_cstack(L);
    lua_settop(L, 4);
    if (s) {
        chunkname = luaL_optstring(L, 2, s);
    } else {
        chunkname = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
    }
    int status = sbx_load_chunk(L, s, len, s ? 0 : 1, chunkname);
    if (status == LUA_OK) {
        if (env) {
            lua_pushvalue(L, env);
            if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
        }
        return 1;
    }
    sbx_rethrow_if_stopped(L, status);
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
}

static int sbx_collectgarbage(lua_State *L) {
    static const char *const allowed[] = {"collect", "count", "step", "isrunning", NULL};
    const char *opt = luaL_optstring(L, 1, "collect");
    int ok = 0;
    for (int i = 0; allowed[i]; i++) ok |= strcmp(opt, allowed[i]) == 0;
    if (!ok) return luaL_error(L, "collectgarbage: option '%s' is not allowed in the sandbox", opt);
    sandbox_t *sb = sbx_from_state(L);
    if (strcmp(opt, "step") == 0) {
        /* A negative step puts the collector that many KiB in credit: step(-2^31) stopped it for
         * good, the refused "stop" by another name. Steps are 0 (a basic step) up to a full cycle. */
        lua_Integer kb = luaL_optinteger(L, 2, 0);
        lua_Integer most = sb && sb->heap.cap ? (lua_Integer)(sb->heap.cap >> 10) + 1 : INT_MAX;
        lua_settop(L, 1);
        lua_pushinteger(L, kb < 0 ? 0 : kb > most ? most : kb);
    }
    /* A collection visits the whole heap: it is paid for like copying it. */
    if (sb && strcmp(opt, "count") != 0 && strcmp(opt, "isrunning") != 0) sbx_charge(L, sbx_copy_units(sb->heap.used));
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static int sbx_print(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    sbx_output(L, SANDBOX_OUTPUT_PRINT, s, len);
    return 0;
}

/* How a function wrapped by charged_linear reads its input (upvalue 2). */
enum {
    READS_WHAT_IT_RETURNS, /* char, pack, unpack, utf8.char, utf8.codepoint (and sub, byte, ours) */
    READS_ALL,             /* the whole subject (upper, lower, reverse are priced so, in bounded_string.c) */
    READS_RANGE,           /* utf8.len(s, i, j): every byte from i to j */
    READS_TO_RESULT,       /* utf8.offset(s, n, i): from i to the position it returns */
};

/* Lua's own position rules (lstrlib.c's posrelat): 1-based, negative from the end. */
static size_t position(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 0;
    return len + (size_t)pos + 1;
}

/* The bytes a call read, from its arguments (still at 1..nargs) and its nres results on top. */
static size_t bytes_read(lua_State *L, int how, int nargs, int nres) {
    size_t len = lua_type(L, 1) == LUA_TSTRING ? lua_rawlen(L, 1) : 0;
    if (how == READS_ALL) return len;
    if (how == READS_RANGE) {
        size_t i = position(nargs >= 2 && lua_isinteger(L, 2) ? lua_tointeger(L, 2) : 1, len);
        size_t j = position(nargs >= 3 && lua_isinteger(L, 3) ? lua_tointeger(L, 3) : -1, len);
        return j >= i ? j - i + 1 : 0;
    }
    if (how == READS_TO_RESULT) {
        lua_Integer n = nargs >= 2 && lua_isinteger(L, 2) ? lua_tointeger(L, 2) : 0;
        size_t from = position(nargs >= 3 && lua_isinteger(L, 3) ? lua_tointeger(L, 3) : (n >= 0 ? 1 : -1), len);
        if (nres < 1 || !lua_isinteger(L, -nres)) return len; /* not found: it scanned to an end */
        size_t to = (size_t)lua_tointeger(L, -nres);
        return to > from ? to - from : from - to;
    }
    return 0; /* its results say it all */
}

/* Lua's own string and utf8 functions whose work is linear in what they read and write (upper,
 * sub, byte, pack...; rep and format are ours): they run once, then pay for the bytes they read
 * and wrote, and for each result, so the instruction count reflects their work. They pay for what
 * they touched, not for their subject: s:sub(i, i) over a 64 KiB string reads one byte. Bounded
 * already (memory caps their output), they need no check while they run. The original is upvalue
 * 1, how it reads upvalue 2. */
static int charged_linear(lua_State *L) {
    int nargs = lua_gettop(L);
    /* Called in this frame, not through lua_call, so its argument errors name the function and
     * the caller's line as Lua's would. */
    lua_CFunction original = lua_tocfunction(L, lua_upvalueindex(1));
    int nres = original(L);
    int top = lua_gettop(L);
    size_t bytes = bytes_read(L, (int)lua_tointeger(L, lua_upvalueindex(2)), nargs, nres);
    for (int i = top - nres + 1; i <= top; i++)
        if (lua_type(L, i) == LUA_TSTRING) bytes += lua_rawlen(L, i);
    sbx_charge(L, sbx_copy_units(bytes) + (uint64_t)nres);
    return nres;
}

/* Replaces t[name] (t on top of the stack) with fn, given the original as its upvalue. */
static void wrap_field(lua_State *L, const char *name, lua_CFunction fn) {
    lua_getfield(L, -1, name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, name);
}

static void charge_linear_fields(lua_State *L, const char *const *names, int how) {
    for (; *names; names++) {
        lua_getfield(L, -1, *names);
        lua_pushinteger(L, how);
        lua_pushcclosure(L, charged_linear, 2);
        lua_setfield(L, -2, *names);
    }
}

static void set_field(lua_State *L, const char *name, lua_CFunction fn) {
    if (fn) lua_pushcfunction(L, fn);
    else lua_pushnil(L);
    lua_setfield(L, -2, name);
}

void sbx_open_stdlib(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},        {LUA_COLIBNAME, luaopen_coroutine},
        {LUA_TABLIBNAME, luaopen_table},  {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math},  {LUA_UTF8LIBNAME, luaopen_utf8},
        {LUA_OSLIBNAME, luaopen_os},      {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    sbx_open_metaguard(L); /* setmetatable, getmetatable, rawset */

    lua_pushglobaltable(L);
    set_field(L, "dofile", NULL);
    set_field(L, "loadfile", NULL);
    set_field(L, "warn", NULL);
    set_field(L, "load", sbx_load);
    wrap_field(L, "collectgarbage", sbx_collectgarbage);
    set_field(L, "print", sbx_print);
    set_field(L, "pcall", sbx_pcall);
    set_field(L, "xpcall", sbx_xpcall);

    /* os: time, clock and date only. */
    lua_getfield(L, -1, LUA_OSLIBNAME);
    lua_createtable(L, 0, 3);
    for (const char *const *f = (const char *const[]){"time", "clock", "date", NULL}; *f; f++) {
        lua_getfield(L, -2, *f);
        lua_setfield(L, -2, *f);
    }
    lua_setfield(L, -3, LUA_OSLIBNAME);
    lua_pop(L, 1);

    lua_getfield(L, -1, LUA_COLIBNAME);
    set_field(L, "resume", co_resume);
    set_field(L, "wrap", co_wrap);
    set_field(L, "yield", co_yield);
    set_field(L, "isyieldable", co_isyieldable);
    set_field(L, "running", co_running);
    set_field(L, "close", co_close);
    lua_pop(L, 1);

    lua_getfield(L, -1, LUA_STRLIBNAME);
    set_field(L, "dump", NULL);
    sbx_open_bounded_string(L);
    /* sub, byte, upper, lower and reverse are ours (bounded_string.c), charged the same way. */
    charge_linear_fields(L, (const char *const[]){"char", "pack", "unpack", NULL}, READS_WHAT_IT_RETURNS);
    lua_pop(L, 1);

    lua_getfield(L, -1, LUA_UTF8LIBNAME);
    charge_linear_fields(L, (const char *const[]){"char", "codepoint", NULL}, READS_WHAT_IT_RETURNS);
    charge_linear_fields(L, (const char *const[]){"len", NULL}, READS_RANGE);
    charge_linear_fields(L, (const char *const[]){"offset", NULL}, READS_TO_RESULT);
    lua_pop(L, 1);

    lua_getfield(L, -1, LUA_TABLIBNAME);
    sbx_open_bounded_table(L);
    lua_pop(L, 1);
    lua_pop(L, 1); /* globals */

    /* getmetatable("") is false: the string metatable is not the agent's to change. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}
