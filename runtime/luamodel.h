/*
 * luamodel.h: models of kind lua, a model written as a sandboxed Lua script.
 *
 * THE SCRIPT'S CONTRACT. A lua model is written the way an agent is (scripts/): its top-level code
 * returns a table with on_message(session, request). Each call to the model is one message whose
 * text, request, is the call's request as JSON:
 *     {"prompt": "...", "max_tokens": N}   or   {"messages": [{"role": "...", "content": "..."}, ...],
 *                                                "max_tokens": N}
 * as the caller sent it, with max_tokens always present (the bound the call was priced for). The
 * script decodes it with json.decode and answers with text: what it streams with session.send,
 * followed by the string on_message returns (nil: the streamed text alone; a number reads as its
 * text). Anything else (a table, a boolean), an error, or no text at all fails the call. Output
 * past max_tokens (the factory's normalised words) is cut there, with finish_reason "length".
 * print goes nowhere. models.call and datasets.query fail with an error the script may catch: a
 * lua model makes no host calls, so it cannot spend its caller's money.
 *
 * ITS SANDBOX. Every call runs in a fresh sandbox of its own: the script's state never carries
 * one caller's prompt to the next caller, and a call that hit a limit leaves nothing behind. A
 * whole call of a small script (sandbox made, script compiled and run, sandbox closed) costs
 * 51-64 us of CPU, a metered one 88-118 us (bench_meters, BENCHMARKS.md). The limits below hold for every lua model; loading the script
 * and answering the message are two turns, each with the turn limits.
 *
 * Threads: any thread that does not execute a sandbox turn at that moment (the metered provider
 * runs a call from inside an agent's turn later, from rt_answer_deliver).
 */
#ifndef ACCRUE_RUNTIME_LUAMODEL_H
#define ACCRUE_RUNTIME_LUAMODEL_H

#include <stddef.h>

#include "registry/registry.h"
#include "runtime/base/buf.h"
#include "runtime/base/status.h"
#include "sandbox/sandbox.h"

#define RT_LUA_MODEL_MEMORY_BYTES ((size_t)16 << 20)
#define RT_LUA_MODEL_INSTRUCTIONS UINT64_C(20000000)
#define RT_LUA_MODEL_TIME_MS 1000
#define RT_LUA_MODEL_OUTPUT_BYTES ((size_t)256 << 10)

/* The limits above. */
sandbox_limits_t rt_lua_model_limits(void);

/* Runs one call of the lua model name (its script, len bytes) on request (JSON text, see above):
 * out gets the answer's text (appended). ACC_OK; ACC_ESCRIPT (the script does not load, raised an
 * error, returned no text or the wrong type), ACC_ELIMIT (a limit: err names it), ACC_ENOMEM;
 * err's message is the cause alone ("NAME:3: boom", "the time limit (1000 ms)"), for the caller
 * to put in context. */
int rt_lua_model_run(const char *name, const char *script, size_t len, const char *request, size_t request_len,
                     acc_buf *out, acc_err *err);

/* A registry_script_check_fn for lua models: the script loads under the model's limits and
 * returns a table with on_message. ACC_OK, or ACC_ESCRIPT / ACC_ELIMIT with the reason. */
int rt_lua_model_check(void *ud, const char *name, const char *script, size_t len, acc_err *err);

/* Everything about a model to register that can be checked before the registry is touched: the
 * registry's own checks (registry_model_check: fields, limits, shares adding up to at most 10000
 * bps, the script's size and encoding), then, for a lua model, that its script loads
 * (rt_lua_model_check). What `accrue model register` and POST /v1/models both run. ACC_OK;
 * ACC_EINVAL, prefixed "model 'NAME'", as registry_model_register would say it; or ACC_ESCRIPT /
 * ACC_ELIMIT, "LABEL: does not load as a lua model: CAUSE" (label: how the caller names the
 * script, a file's path or a field). */
int rt_model_check(const registry_model_t *spec, const char *script, size_t len, const char *label, acc_err *err);

#endif
