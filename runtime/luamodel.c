/*
 * luamodel.c: one call of a lua model, in a sandbox of its own (luamodel.h).
 *
 * The sandbox already is everything a model script needs: hard limits that a script cannot catch,
 * a turn that answers a message with text, session.send for streamed parts. So a lua model is an
 * agent with no host calls and the request as its message; this file only opens the sandbox with
 * the model's limits, collects the text, and says why a call failed in words a caller can show.
 */
#include <stdio.h>
#include <string.h>

#include "registry/registry.h"
#include "runtime/luamodel.h"

sandbox_limits_t rt_lua_model_limits(void) {
    return (sandbox_limits_t){.memory_bytes = RT_LUA_MODEL_MEMORY_BYTES,
                              .turn = {.instructions = RT_LUA_MODEL_INSTRUCTIONS,
                                       .time_ms = RT_LUA_MODEL_TIME_MS,
                                       .output_bytes = RT_LUA_MODEL_OUTPUT_BYTES}};
}

static int refuse_call(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    static const char msg[] = "a lua model cannot call models or datasets";
    (void)ud;
    sandbox_call_done(sb, call->id, 0, msg, sizeof msg - 1);
    return -1;
}

/* Streamed parts are the first part of the answer; print goes nowhere (the sandbox still counts
 * it against the output limit). */
static sandbox_output_verdict_t take_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *text,
                                            size_t len) {
    acc_buf *out = ud;
    (void)sb;
    if (kind != SANDBOX_OUTPUT_DELTA || !out) return SANDBOX_OUTPUT_OK;
    acc_buf_append(out, text, len);
    return acc_buf_failed(out) ? SANDBOX_OUTPUT_REFUSE : SANDBOX_OUTPUT_OK;
}

/* Why the sandbox's last call or turn failed, as err. */
static int failure(sandbox_t *sb, acc_err *err) {
    sandbox_limit_t limit = sandbox_limit_hit(sb);
    switch (limit) {
    case SANDBOX_LIMIT_MEMORY:
        return acc_fail(err, ACC_ELIMIT, "the memory limit (%zu MiB)", RT_LUA_MODEL_MEMORY_BYTES >> 20);
    case SANDBOX_LIMIT_INSTRUCTIONS:
        return acc_fail(err, ACC_ELIMIT, "the instruction limit (%llu)", (unsigned long long)RT_LUA_MODEL_INSTRUCTIONS);
    case SANDBOX_LIMIT_TIME: return acc_fail(err, ACC_ELIMIT, "the time limit (%d ms)", RT_LUA_MODEL_TIME_MS);
    case SANDBOX_LIMIT_OUTPUT:
        return acc_fail(err, ACC_ELIMIT, "the output limit (%zu KiB)", RT_LUA_MODEL_OUTPUT_BYTES >> 10);
    case SANDBOX_LIMIT_REFUSED: return acc_fail(err, ACC_ENOMEM, "out of memory for its output");
    default: break;
    }
    int code = sandbox_errcode(sb);
    if (code == ACC_ENOMEM || code == ACC_ECANCELLED) return acc_fail(err, code, "%s", sandbox_errmsg(sb));
    return acc_fail(err, ACC_ESCRIPT, "%s", sandbox_errmsg(sb));
}

/* Opens the model's sandbox and runs its script's top-level code into *sbp. */
static int load(const char *name, const char *script, size_t len, acc_buf *out, sandbox_t **sbp, acc_err *err) {
    sandbox_limits_t limits = rt_lua_model_limits();
    sandbox_provider_t provider = {.ud = out, .start_call = refuse_call, .output = take_output};
    acc_err open_err = {0};
    sandbox_t *sb = sandbox_open(&limits, &provider, &open_err);
    if (!sb) return acc_fail(err, open_err.code, "cannot make its sandbox: %s", open_err.msg);
    char chunk[REGISTRY_NAME_MAX + 2] = "=";
    strncat(chunk, name, REGISTRY_NAME_MAX);
    if (sandbox_start_load(sb, chunk, script, len, NULL) != ACC_OK || sandbox_run_to_end(sb) != SANDBOX_DONE) {
        int rc = failure(sb, err);
        sandbox_close(sb);
        return rc;
    }
    *sbp = sb;
    return ACC_OK;
}

int rt_lua_model_run(const char *name, const char *script, size_t len, const char *request, size_t request_len,
                     acc_buf *out, acc_err *err) {
    size_t start = out->len;
    sandbox_t *sb;
    int rc = load(name, script, len, out, &sb, err);
    if (rc) return rc;
    if (sandbox_start_message(sb, request, request_len, NULL) != ACC_OK || sandbox_run_to_end(sb) != SANDBOX_DONE) {
        rc = failure(sb, err);
    } else {
        size_t rlen;
        const char *reply = sandbox_reply(sb, &rlen);
        if (reply) acc_buf_append(out, reply, rlen);
        if (acc_buf_failed(out)) rc = acc_fail(err, ACC_ENOMEM, "out of memory for its output");
        else if (!reply && out->len == start)
            rc = acc_fail(err, ACC_ESCRIPT, "on_message returned nil and sent nothing: a model must answer with text");
    }
    sandbox_close(sb);
    return rc;
}

int rt_lua_model_check(void *ud, const char *name, const char *script, size_t len, acc_err *err) {
    (void)ud;
    sandbox_t *sb;
    int rc = load(name, script, len, NULL, &sb, err);
    if (rc) return rc;
    sandbox_close(sb);
    return ACC_OK;
}

int rt_model_check(const registry_model_t *spec, const char *script, size_t len, const char *label, acc_err *err) {
    int rc = registry_model_check(spec, script, len, err);
    if (rc) acc_err_prefix(err, "model '%s'", spec->name);
    else if (spec->kind == REGISTRY_MODEL_LUA && (rc = rt_lua_model_check(NULL, spec->name, script, len, err)))
        acc_err_prefix(err, "%s: does not load as a lua model", label);
    return rc;
}
