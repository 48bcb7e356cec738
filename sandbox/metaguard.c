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
 * "In use" tables are remembered in a registry set. A metatable with no metatable of its own gets
 * the shared guard; one that has the agent's metatable M (class inheritance: Derived used as a
 * metatable while Derived's metatable is {__index = Base}) gets a proxy: a copy of M's fields made
 * at that moment, whose __newindex guards "__mode" and then does what M's would, and whose
 * __metatable makes getmetatable still answer M. The visible differences from stock Lua: no
 * weak tables; changes to M after its table came into use as a metatable do not reach the proxy.
 */
#include <string.h>

#include "sandbox/internal.h"

static const char guard_key[1];   /* the shared guard metatable */
static const char inuse_key[1];   /* set of tables in use as metatables (weak keys, host-owned) */
static const char proxies_key[1]; /* proxy -> the agent's metatable it stands for */

static bool rawget_bool(lua_State *L, const void *key, int idx) {
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    lua_pushvalue(L, idx);
    bool found = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return found;
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
    lua_rawgetp(L, LUA_REGISTRYINDEX, proxies_key);
    lua_pushvalue(L, p);
    lua_pushvalue(L, m);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_remove(L, m);
}

/* Pushes what the agent sees as the metatable of the table at idx (nil for the guard, the
 * original for a proxy, else the metatable itself); returns its Lua type. */
static int push_agent_metatable(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, guard_key);
    if (lua_rawequal(L, -1, -2)) {
        lua_pop(L, 2);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, proxies_key);
    lua_pushvalue(L, -2);
    if (lua_rawget(L, -2) != LUA_TNIL) {
        lua_replace(L, -3);
        lua_pop(L, 1);
        return LUA_TTABLE;
    }
    lua_pop(L, 2);
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
    if (rawget_bool(L, inuse_key, idx)) return;
    if (lua_getmetatable(L, idx)) push_proxy_for_top(L);
    else lua_rawgetp(L, LUA_REGISTRYINDEX, guard_key);
    lua_setmetatable(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, inuse_key);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
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
    if (rawget_bool(L, inuse_key, 1)) push_protecting_metatable(L, 2); /* t is someone's metatable */
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
    if (is_mode_key(L, 2) && rawget_bool(L, inuse_key, 1)) return refuse_weak(L);
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

    for (int i = 0; i < 2; i++) { /* host-owned weak-keyed sets, out of the agent's reach */
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, i == 0 ? (const void *)inuse_key : (const void *)proxies_key);
    }

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
