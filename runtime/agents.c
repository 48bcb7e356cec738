/*
 * agents.c: the script check of a deploy, the marketplace's usage figures, and agent references
 * (agents.h).
 */
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "meters/ledger/ledger.h"
#include "meters/meters.h"
#include "runtime/agents.h"
#include "sandbox/sandbox.h"

static int refuse_call(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    static const char msg[] = "no host calls while a deployed script is checked";
    sandbox_call_done(sb, call->id, 0, msg, sizeof msg - 1);
    return -1;
}

int rt_script_check(void *ud, const char *name, const char *script, size_t len, acc_err *err) {
    sandbox_limits_t limits = sandbox_default_limits();
    sandbox_provider_t provider = {.start_call = refuse_call};
    acc_err open_err = {0};
    sandbox_t *sb = sandbox_open(&limits, &provider, &open_err);
    if (!sb) return acc_fail(err, open_err.code, "cannot make a sandbox to check it: %s", open_err.msg);
    char chunk[REGISTRY_NAME_MAX + 2] = "=";
    strncat(chunk, name, REGISTRY_NAME_MAX);
    int rc = ACC_OK;
    if (sandbox_start_load(sb, chunk, script, len, NULL) != ACC_OK || sandbox_run_to_end(sb) != SANDBOX_DONE) {
        sandbox_limit_t limit = sandbox_limit_hit(sb);
        if (limit != SANDBOX_LIMIT_NONE)
            rc = acc_fail(err, ACC_ESCRIPT, "loading it hit the %s", sandbox_limit_name(limit));
        else
            rc = acc_fail(err, ACC_ESCRIPT, "%s", sandbox_errmsg(sb));
    }
    sandbox_close(sb);
    return rc;
}

struct rt_usage {
    meter_agent_usage_t *v;
    size_t n;
};

int rt_usage_load(const char *db, rt_usage_t **out, acc_err *err) {
    rt_usage_t *u = calloc(1, sizeof *u);
    if (!u) return acc_fail(err, ACC_ENOMEM, "out of memory");
    ledger_t *l;
    ledger_opts_t o = {.readonly = true};
    int rc = ledger_open(db ? db : REGISTRY_DEFAULT_PATH, &o, &l, err);
    if (!rc) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rc = meter_usage_by_agent(l, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000, &u->v, &u->n, err);
        ledger_close(l);
    }
    if (rc) {
        free(u);
        return rc;
    }
    *out = u;
    return ACC_OK;
}

void rt_usage_free(rt_usage_t *u) {
    if (!u) return;
    free(u->v);
    free(u);
}

int rt_agent_usage(void *ud, const char *agent, registry_agent_usage_t *out, acc_err *err) {
    rt_usage_t *u = ud;
    const meter_agent_usage_t *a = u ? meter_agent_usage_find(u->v, u->n, agent) : NULL;
    if (!a) return registry_usage_none(ud, agent, out, err);
    *out = (registry_agent_usage_t){.sessions_7d = a->sessions_7d, .sessions_30d = a->sessions_30d,
                                    .messages_7d = a->messages_7d, .messages_30d = a->messages_30d,
                                    .revenue_7d = a->revenue_7d, .revenue_30d = a->revenue_30d};
    return ACC_OK;
}

int rt_agent_ref(const char *ref, char name[REGISTRY_NAME_MAX + 1], char version[REGISTRY_VERSION_MAX + 1],
                 acc_err *err) {
    const char *at = strchr(ref, '@');
    size_t n = at ? (size_t)(at - ref) : strlen(ref);
    if (n == 0 || n > REGISTRY_NAME_MAX) return acc_fail(err, ACC_EINVAL, "'%.80s': NAME or NAME@VERSION", ref);
    memcpy(name, ref, n);
    name[n] = '\0';
    int rc = registry_name_check(name, "agent", err);
    if (rc) return rc;
    version[0] = '\0';
    if (at) {
        if (strlen(at + 1) > REGISTRY_VERSION_MAX || (rc = registry_semver_check(at + 1, err)) != ACC_OK)
            return acc_fail(err, ACC_EINVAL, "'%.80s': the version after @ is not a semantic version (as 1.0.0)", ref);
        strcpy(version, at + 1);
    }
    return ACC_OK;
}
