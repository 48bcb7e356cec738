/*
 * provider.c: host calls of `accrue run` answered by the registry (provider.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meters/eth/keys.h"
#include "runtime/demo.h"
#include "runtime/provider.h"
#include "runtime/server/outbound.h"
#include "runtime/test_provider.h"

/* The demo account's credit is one top-up with this fixed id, so it is given once however many
 * runs open the file (the ledger applies an id once). */
static const ledger_id_t demo_credit_id = {{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0x00, 0x80, 0x00, 0x64, 0x65,
                                            0x6d, 0x6f, 0x00, 0x01}};

static int demo_credit(ledger_t *l, acc_err *err) {
    ledger_account_t *demo;
    int rc = ledger_account(l, LEDGER_ACCOUNT_USER, RT_DEMO_ACCOUNT, &demo, err);
    if (rc) return rc;
    ledger_transfer_t t = {ledger_system(l, LEDGER_SYSTEM_EXTERNAL), demo, RT_DEMO_CREDIT, LEDGER_CODE_TOPUP};
    ledger_posting_t p = {.id = demo_credit_id, .state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &t,
                          .ntransfers = 1};
    ledger_result_t res;
    return ledger_submit_wait(l, &p, &res, err);
}

static void net_wait(void *ud, int timeout_ms) { rt_net_wait(ud, timeout_ms); }
static void net_wake(void *ud) { rt_net_wake(ud); }

/* An HTTP model's call: the loop is opened at the first, and the queue's waits service it from
 * then on (the answers of the ledger's writer wake it). */
static int http_start(void *ud, const registry_model_t *model, const char *request_json, size_t len,
                      rt_http_call_t *call) {
    rt_provider_t *p = ud;
    if (!p->net) {
        acc_err err = {0};
        if (rt_net_client_open(&p->net, p->upstream_connect_ms, p->upstream_total_ms, &err) != ACC_OK) {
            fprintf(stderr, "accrue: %s\n", err.msg);
            return -1;
        }
        rt_queue_set_waiter(p->queue, net_wait, net_wake, p->net);
    }
    return rt_upstream_local(p->net).start(p->net, model, request_json, len, call);
}

int rt_provider_meter(rt_provider_t *p, rt_session_t **out, acc_err *err) {
    if (p->session) {
        *out = p->session;
        return ACC_OK;
    }
    if (p->meter_failed) {
        if (err) *err = p->meter_err;
        return p->meter_err.code;
    }
    registry_t *reg;
    acc_err *e = &p->meter_err;
    int rc = rt_provider_registry(p, true, &reg, e);
    const char *path = p->db_path ? p->db_path : REGISTRY_DEFAULT_PATH;
    if (!rc && p->user_key) {
        registry_account_t a;
        rc = registry_account_by_key(reg, p->user_key, strlen(p->user_key), &a, e);
        if (!rc) snprintf(p->payer, sizeof p->payer, "%s", a.name);
        else acc_err_prefix(e, "--user");
    } else if (!rc) {
        snprintf(p->payer, sizeof p->payer, "%s", RT_DEMO_ACCOUNT);
    }
    if (!rc) rc = ledger_open(path, NULL, &p->ledger, e);
    if (!rc && !p->user_key && !p->no_demo) {
        registry_account_t a; /* a demo registry (its demo account exists): give the demo credit once */
        if (registry_account_get(reg, RT_DEMO_ACCOUNT, &a, NULL) == ACC_OK) rc = demo_credit(p->ledger, e);
    }
    meter_config_t mc = meter_config_default();
    mc.operator_fee_bps = p->operator_fee_bps;
    if (!rc) rc = meter_open(p->ledger, &mc, &p->meter, e);
    rt_metered_config_t cfg = {.meter = p->meter, .http = {.ud = p, .start = http_start}};
    if (!rc) rc = rt_metered_open(&cfg, &p->metered, e);
    if (!rc && !p->queue && !(p->queue = rt_queue_new())) rc = acc_fail(e, ACC_ENOMEM, "out of memory");
    if (!rc) {
        ledger_id_t sid;
        ledger_id_new(&sid);
        char session[40] = "run-";
        ledger_id_hex(&sid, session + 4);
        if (p->agent) {
            const registry_agent_t *a = p->agent;
            snprintf(p->magent.name, sizeof p->magent.name, "%s", a->name);
            snprintf(p->magent.version, sizeof p->magent.version, "%s", a->version);
            eth_address_to_text(a->author, p->magent.author);
            p->magent.price_per_message = a->price_per_message;
            p->magent.price_per_session = a->price_per_session;
            p->magent.markup_bps = a->markup_bps;
        }
        rt_session_config_t sc = {.reg = reg, .payer = p->payer, .session = session,
                                  .agent = p->agent ? &p->magent : NULL, .poster = rt_queue_poster(p->queue)};
        rc = rt_session_open(p->metered, &sc, &p->session, e);
    }
    if (rc) {
        e->code = rc;
        p->meter_failed = true;
        if (err) *err = *e;
        return rc;
    }
    *out = p->session;
    return ACC_OK;
}

int rt_provider_prepare(rt_provider_t *p, acc_err *err) {
    if (p->no_demo) return ACC_OK;
    rt_session_t *s;
    return rt_provider_meter(p, &s, err); /* opens (and seeds) the registry first */
}

sandbox_status_t rt_provider_run_turn(rt_provider_t *p, sandbox_t *sb) {
    if (!p->queue && !(p->queue = rt_queue_new())) return sandbox_run_to_end(sb); /* no memory: nothing can wait */
    return rt_run_turn(sb, &p->session, p->queue);
}

int rt_provider_registry(rt_provider_t *p, bool create, registry_t **reg, acc_err *err) {
    if (p->reg) {
        *reg = p->reg;
        return ACC_OK;
    }
    if (p->open_failed) {
        if (err) *err = p->open_err;
        return p->open_err.code;
    }
    const char *path = p->db_path ? p->db_path : REGISTRY_DEFAULT_PATH;
    if (!create) {
        /* Only look: no file made, nothing seeded, and a failure is not remembered. */
        int rc = registry_open(path, REGISTRY_OPEN_EXISTING, &p->reg, err);
        if (rc == ACC_OK) *reg = p->reg;
        return rc;
    }
    int rc = registry_open(path, REGISTRY_OPEN_CREATE, &p->reg, &p->open_err);
    bool seeded = false;
    if (rc == ACC_OK && !p->no_demo) rc = rt_demo_seed(p->reg, &seeded, NULL, &p->open_err);
    if (rc) {
        registry_close(p->reg);
        p->reg = NULL;
        p->open_failed = true;
        p->open_err.code = rc;
        if (err) *err = p->open_err;
        return rc;
    }
    if (seeded && p->seeded) p->seeded(p->seeded_ud, path);
    *reg = p->reg;
    return ACC_OK;
}

void rt_provider_close(rt_provider_t *p) {
    rt_session_close(p->session);
    rt_queue_free(p->queue);
    rt_metered_close(p->metered);
    meter_close(p->meter);
    ledger_close(p->ledger); /* commits whatever is still queued */
    rt_net_client_close(p->net);
    p->net = NULL;
    p->session = NULL;
    p->queue = NULL;
    p->metered = NULL;
    p->meter = NULL;
    p->ledger = NULL;
    registry_close(p->reg);
    p->reg = NULL;
}

static int refuse(sandbox_t *sb, uint64_t id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(sandbox_t *sb, uint64_t id, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sandbox_call_done(sb, id, 0, msg, strlen(msg));
    return -1;
}

static bool listed(const char (*names)[REGISTRY_NAME_MAX + 1], size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return true;
    return false;
}

static int start_call(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    rt_provider_t *p = ud;
    bool model = call->kind == SANDBOX_CALL_MODEL;
    char name[REGISTRY_NAME_MAX + 1];
    if (call->name_len > REGISTRY_NAME_MAX || memchr(call->name, 0, call->name_len))
        return refuse(sb, call->id, "not a %s name", model ? "model" : "datanet");
    memcpy(name, call->name, call->name_len);
    name[call->name_len] = '\0';
    acc_err err = {0};
    if (registry_name_check(name, model ? "model" : "datanet", &err) != ACC_OK) return refuse(sb, call->id, "%s", err.msg);
    if (p->agent && !(model ? listed(p->agent->models, p->agent->n_models, name)
                            : listed(p->agent->datanets, p->agent->n_datanets, name)))
        return refuse(sb, call->id, "%s@%s may not call %s '%s' (its manifest does not list it)", p->agent->name,
                      p->agent->version, model ? "model" : "datanet", name);
    if (strncmp(name, "test/", 5) == 0) return test_provider().start_call(NULL, sb, call);
    if (call->json_len > RT_REQUEST_MAX)
        return refuse(sb, call->id, "the request is %zu bytes of JSON, over %u", call->json_len, RT_REQUEST_MAX);
    if (model && !p->reg) {
        /* A model is looked up in an existing registry only: naming one makes no file. */
        registry_t *reg;
        int rc = rt_provider_registry(p, false, &reg, &err);
        if (rc == ACC_ENOTFOUND) return refuse(sb, call->id, "not_found: no model named '%s' (no registry here yet)", name);
        if (rc) return refuse(sb, call->id, "%s", err.msg);
    }
    rt_session_t *s;
    if (rt_provider_meter(p, &s, &err) != ACC_OK) return refuse(sb, call->id, "%s", err.msg);
    return rt_session_provider(s).start_call(s, sb, call);
}

sandbox_provider_t rt_provider(rt_provider_t *p) {
    sandbox_provider_t sp = {.ud = p, .start_call = start_call, .output = NULL};
    return sp;
}
