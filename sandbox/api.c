/*
 * api.c: the agent API, the globals an agent script sees beside the standard library.
 *
 *   models.call(name, request)       -> the model's answer (a table); request is a table, or a
 *                                       string as shorthand for {prompt = string}
 *   datasets.query(name, text, opts) -> {rows = {...}} as the dataset answers
 *   session.send(text)               -> streams part of the reply (counted as output)
 *   json.encode(v), json.decode(s), json.null, json.array(t)
 *
 * models.call and datasets.query go to the host through sandbox_provider_t.start_call and wait
 * for its answer by yielding the turn's coroutine, so agents are written as plain sequential code.
 */
#include "sandbox/internal.h"
#include "sandbox/json.h"

static const char session_key[1];

static int models_call(lua_State *L) {
    size_t name_len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, 2);
        lua_setfield(L, -2, "prompt");
        lua_replace(L, 2);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    return sbx_host_call(L, SANDBOX_CALL_MODEL, name, name_len, 2);
}

static int datasets_query(lua_State *L) {
    size_t name_len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    size_t text_len;
    luaL_checklstring(L, 2, &text_len);
    if (text_len > SANDBOX_QUERY_MAX_BYTES)
        return luaL_error(L, "datasets.query: the query text is too long (%I bytes, at most %I)",
                          (lua_Integer)text_len, (lua_Integer)SANDBOX_QUERY_MAX_BYTES);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "text");
    if (!lua_isnil(L, 3)) {
        lua_pushvalue(L, 3);
        lua_setfield(L, -2, "opts");
    }
    return sbx_host_call(L, SANDBOX_CALL_DATASET, name, name_len, 4);
}

static int session_send(lua_State *L) {
    /* Both session.send(text) and session:send(text) work. */
    int arg = lua_type(L, 1) == LUA_TTABLE ? 2 : 1;
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    sbx_output(L, SANDBOX_OUTPUT_DELTA, s, len);
    return 0;
}

void sbx_push_session(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, session_key); }

void sbx_open_api(lua_State *L) {
    lua_pushglobaltable(L);

    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, models_call);
    lua_setfield(L, -2, "call");
    lua_setfield(L, -2, "models");

    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, datasets_query);
    lua_setfield(L, -2, "query");
    lua_setfield(L, -2, "datasets");

    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, session_send);
    lua_setfield(L, -2, "send");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, session_key);
    lua_setfield(L, -2, "session");

    sbx_open_json(L);
    lua_setfield(L, -2, "json");

    lua_pop(L, 1);
}
