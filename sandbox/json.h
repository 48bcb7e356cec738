/*
 * json.h: the JSON codec agents get, and the one the sandbox uses to pass requests and results
 * across the host-call interface. Lua values <-> JSON text directly, with no tree in between, so
 * every byte it builds is charged to the sandbox's memory cap and its work to sbx_charge.
 *
 * This is a trust boundary: input is length-counted (never assumed NUL-terminated), UTF-8 is
 * validated, nesting depth is bounded, and every malformed input ends in an error naming the
 * problem and its byte offset.
 */
#ifndef ACCRUE_SANDBOX_JSON_H
#define ACCRUE_SANDBOX_JSON_H

#include <lua.h>
#include <stddef.h>

#define SBX_JSON_MAX_DEPTH 128

/* Pushes the Lua value for JSON text s[0..n). Raises a Lua error ("json.decode: ... at byte N")
 * when the text is not valid JSON. Objects become tables, arrays become tables with the array
 * metatable (so they encode back as arrays, empty ones too), null becomes json.null. */
void sbx_json_decode(lua_State *L, const char *s, size_t n);

/* Pushes the JSON text of the value at index idx. Raises ("json.encode: ...") for values JSON
 * cannot hold: functions, NaN/inf, cycles or nesting past SBX_JSON_MAX_DEPTH, mixed or sparse
 * tables, non-string keys of an object, invalid UTF-8. Never calls metamethods. */
void sbx_json_encode(lua_State *L, int idx);

/* Pushes the `json` table: json.encode(v), json.decode(s), json.null, json.array(t) (marks t as an
 * array and returns it). */
int sbx_open_json(lua_State *L);

#endif
