/*
 * internal.h: what the sandbox's own files share. Not for other modules.
 *
 * Every library function written in C that can run long (pattern matching, sorting, copying,
 * JSON) pays for its work with sbx_charge: one unit is about one Lua VM instruction of work (one
 * matcher step, one comparison, ~64 bytes copied). sbx_charge also checks the stop flags (time
 * limit, cancel), so a C loop that charges at least every SBX_CHARGE_EVERY units can never hold
 * the CPU past a limit. When a limit is hit, sbx_charge raises the sandbox's stop error and does
 * not return; the stop is sticky, so pcall cannot swallow it.
 */
#ifndef ACCRUE_SANDBOX_INTERNAL_H
#define ACCRUE_SANDBOX_INTERNAL_H

#include <lua.h>
#include <lauxlib.h>
#include <stdint.h>

#include "sandbox/sandbox.h"

#define SBX_CHARGE_EVERY 1024

/* The sandbox a lua_State (any of its coroutines) belongs to. */
sandbox_t *sbx_from_state(lua_State *L);

/* Charges units of C work to the running turn and checks every stop flag; raises on a limit. */
void sbx_charge(lua_State *L, uint64_t units);

/* Replaces the fields of the `string` table at the top of the stack with bounded versions: find,
 * match, gmatch, gsub (our own matcher, steps charged), rep, format. bounded_string.c. */
void sbx_open_bounded_string(lua_State *L);

/* Replaces sort, concat, move (and whatever else can run long) of the `table` table at the top of
 * the stack with bounded versions. bounded_table.c. */
void sbx_open_bounded_table(lua_State *L);

#endif
