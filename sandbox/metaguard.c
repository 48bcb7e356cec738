/*
 * metaguard.c: no table an agent can reach is ever weak.
 *
 * Why: a weak-keyed table is an ephemeron, and Lua's collector converges ephemerons in its atomic
 * phase, in C, where no hook or signal can stop it, in time quadratic in a chain laid through one
 * (stock lua5.4: 40,000 links, 6.5 s). The collector reads __mode from a table's metatable at
 * every cycle, so refusing __mode in setmetatable is not enough: a metatable could gain __mode
 * after it is in use. Weak tables are therefore not available to agents at all, and this keeps it
 * so with one invariant:
 *
 *   Every table in use as a metatable has __mode absent, and has a metatable of the host's own
 *   whose __newindex refuses the key "__mode" (rawset refuses it too).
 *
 * A metatable with no metatable of its own gets the shared guard; one that has the agent's
 * metatable M (class inheritance: Derived used as a metatable while Derived's metatable is
 * {__index = Base}) gets a proxy: a copy of M's fields made at that moment, whose __newindex guards
 * "__mode" and then does what M's would, and whose __metatable makes getmetatable still answer M.
 * The visible differences from stock Lua: no weak tables; changes to M after its table came into
 * use as a metatable do not reach the proxy.
 *
 * The sandbox keeps no structure of its own whose collection an agent could make costly (an
 * earlier version remembered "in use" tables and proxies in weak-keyed registry tables, and a
 * script that grew and chained them made one collectgarbage() do seconds of ephemeron work). The
 * state lives in the tables themselves, as strong references the collector marks in linear time:
 * a table is in use exactly when its metatable is the guard or a proxy, and a proxy holds the M it
 * stands for under a private light-userdata key no script can make.
 */
#include <string.h>

#include "sandbox/internal.h"

static const char guard_key[1]; /* the shared guard metatable */
static const char proxy_tag[1]; /* in a proxy, the key of the agent's metatable it stands for */

/* Pushes the metatable of the table at idx and returns what it is: none (nothing pushed), the
 * guard, a proxy, or the agent's own. */
enum mt_kind { MT_NONE, MT_GUARD, MT_PROXY, MT_AGENT };
static enum mt_kind push_raw_metatable(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return MT_NONE;
    lua_rawgetp(L, LUA_REGISTRYINDEX, guard_key);
    bool guard = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (guard) return MT_GUARD;
    bool proxy = lua_rawgetp(L, -1, proxy_tag) != LUA_TNIL;
    lua_pop(L, 1);
    return proxy ? MT_PROXY : MT_AGENT;
}

/* Is the table at idx in use as a metatable (guarded)? */
static bool in_use(lua_State *L, int idx) {
    enum mt_kind kind = push_raw_metatable(L, idx);
    if (kind != MT_NONE) lua_pop(L, 1);
    return kind == MT_GUARD || kind == MT_PROXY;
}

static bool is_mode_key(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TSTRING) return false;
    size_t len;
    const char *k = lua_tolstring(L, idx, &len);
    return len == 6 && memcmp(k, "__mode", 6) == 0;
}

static int refuse_weak(lua_State *L) {
    return luaL_error(L, "weak tables (__mode) are not allowed in the sandbox");
}

/* __newindex of the guard: (t, k, v). */
static int guard_newindex(lua_State *L) {
    if (is_mode_key(L, 2)) return refuse_weak(L);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

/* __newindex of a proxy: (t, k, v); upvalue 1 is the __newindex of the metatable it copies. */
static int proxy_newindex(lua_State *L) {
    if (is_mode_key(L, 2)) return refuse_weak(L);
    lua_settop(L, 3);
    switch (lua_type(L, lua_upvalueindex(1))) {
    case LUA_TNIL:
        lua_rawset(L, 1);
        break;
    case LUA_TFUNCTION:
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, 3, 0);
        break;
    default: /* a table (or anything indexable): the assignment goes on to it, as in Lua */
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_settable(L, 1);
        break;
    }
    return 0;
}

/* Replaces the agent's metatable on top of the stack with a proxy for it. */
static void push_proxy_for_top(lua_State *L) {
    int m = lua_gettop(L);
    lua_createtable(L, 0, 8);
    int p = m + 1, copied = 0;
    lua_pushnil(L);
    while (lua_next(L, m)) {
        if (++copied % 64 == 0) sbx_charge(L, 64);
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            if (!strcmp(k, "__gc") || !strcmp(k, "__mode") || !strcmp(k, "__newindex") || !strcmp(k, "__metatable")) {
                lua_pop(L, 1);
                continue;
            }
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, p);
    }
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, m);
    lua_pushcclosure(L, proxy_newindex, 1);
    lua_setfield(L, p, "__newindex");
    /* What getmetatable answers: M's own __metatable if it has one, else M. */
    lua_pushliteral(L, "__metatable");
    if (lua_rawget(L, m) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, m);
    }
    lua_setfield(L, p, "__metatable");
    lua_pushvalue(L, m);
    lua_rawsetp(L, p, proxy_tag);
    lua_remove(L, m);
}

/* Pushes what the agent sees as the metatable of the table at idx (nil for the guard, the
 * original for a proxy, else the metatable itself); returns its Lua type. */
static int push_agent_metatable(lua_State *L, int idx) {
    switch (push_raw_metatable(L, idx)) {
    case MT_NONE: lua_pushnil(L); return LUA_TNIL;
    case MT_GUARD: lua_pop(L, 1); lua_pushnil(L); return LUA_TNIL;
    case MT_PROXY: lua_rawgetp(L, -1, proxy_tag); lua_remove(L, -2); return LUA_TTABLE;
    case MT_AGENT: break;
    }
    return LUA_TTABLE;
}

/* Pushes the metatable to install on a table in use: the guard for nil, else a proxy of mt. */
static void push_protecting_metatable(lua_State *L, int mt) {
    if (lua_isnil(L, mt)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, guard_key);
    } else {
        lua_pushvalue(L, mt);
        push_proxy_for_top(L);
    }
}

void sbx_protect_metatable(lua_State *L, int idx) {
    if (!sbx_from_state(L)) return; /* a plain state (tests of the library pieces) */
    idx = lua_absindex(L, idx);
    switch (push_raw_metatable(L, idx)) {
    case MT_GUARD:
    case MT_PROXY: lua_pop(L, 1); return; /* in use already */
    case MT_NONE: lua_rawgetp(L, LUA_REGISTRYINDEX, guard_key); break;
    case MT_AGENT: push_proxy_for_top(L); break;
    }
    lua_setmetatable(L, idx);
}

/* setmetatable(t, mt) as Lua's, but for the invariant above, and refusing __gc (finalizers run
 * with hooks off) and __mode. */
static int sbx_setmetatable(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    lua_settop(L, 2);
    if (push_agent_metatable(L, 1) == LUA_TTABLE) {
        lua_pushliteral(L, "__metatable");
        if (lua_rawget(L, -2) != LUA_TNIL) return luaL_error(L, "cannot change a protected metatable");
    }
    lua_settop(L, 2);
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in the sandbox");
        lua_pushliteral(L, "__mode");
        if (lua_rawget(L, 2) != LUA_TNIL) return refuse_weak(L);
        lua_settop(L, 2);
        sbx_protect_metatable(L, 2);
    }
    if (in_use(L, 1)) push_protecting_metatable(L, 2); /* t is someone's metatable */
    else lua_pushvalue(L, 2);
    lua_setmetatable(L, 1);
    lua_settop(L, 1);
    return 1;
}

/* getmetatable(v): for tables, what the agent set (never the guard or a proxy), or its
 * __metatable field; other values go to Lua's own getmetatable (upvalue 1). */
static int sbx_getmetatable(lua_State *L) {
    luaL_checkany(L, 1);
    if (lua_type(L, 1) != LUA_TTABLE) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, lua_gettop(L) - 1, 1);
        return 1;
    }
    if (push_agent_metatable(L, 1) == LUA_TNIL) return 1;
    lua_pushliteral(L, "__metatable");
    if (lua_rawget(L, -2) == LUA_TNIL) lua_pop(L, 1);
    return 1;
}

static int sbx_rawset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (is_mode_key(L, 2) && in_use(L, 1)) return refuse_weak(L);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

void sbx_open_metaguard(lua_State *L) {
    lua_createtable(L, 0, 2); /* the guard */
    lua_pushcfunction(L, guard_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, guard_key);

    lua_pushglobaltable(L);
    lua_pushcfunction(L, sbx_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_getfield(L, -1, "getmetatable");
    lua_pushcclosure(L, sbx_getmetatable, 1);
    lua_setfield(L, -2, "getmetatable");
    lua_pushcfunction(L, sbx_rawset);
    lua_setfield(L, -2, "rawset");
    lua_pop(L, 1);
}
