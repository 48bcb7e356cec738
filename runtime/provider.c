/*
 * provider.c: host calls of `accrue run` answered by the registry (provider.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime/demo.h"
#include "runtime/provider.h"
#include "runtime/test_provider.h"

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

static int query(rt_provider_t *p, sandbox_t *sb, const sandbox_call_t *call, const char *name) {
    json_error_t jerr;
    json_t *req = json_loadb(call->json, call->json_len, 0, &jerr);
    const char *text = json_string_value(json_object_get(req, "text"));
    json_t *opts = json_object_get(req, "opts"), *limit_v = json_object_get(opts, "limit");
    json_int_t limit = RT_QUERY_LIMIT_DEFAULT;
    int rc = 0;
    if (!text) {
        rc = refuse(sb, call->id, "the query needs a text");
    } else if (opts && !json_is_object(opts)) {
        rc = refuse(sb, call->id, "opts must be a table");
    } else if (limit_v && (!json_is_integer(limit_v) || json_integer_value(limit_v) < 1 ||
                           json_integer_value(limit_v) > REGISTRY_QUERY_LIMIT_MAX)) {
        rc = refuse(sb, call->id, "opts.limit: a whole number from 1 to %d", REGISTRY_QUERY_LIMIT_MAX);
    }
    if (limit_v && json_is_integer(limit_v)) limit = json_integer_value(limit_v);
    registry_t *reg;
    registry_hits_t *hits = NULL;
    acc_err err = {0};
    if (rc == 0 && (rt_provider_registry(p, true, &reg, &err) != ACC_OK ||
                    registry_query(reg, name, text, json_string_length(json_object_get(req, "text")), (size_t)limit,
                                   &hits, &err) != ACC_OK))
        rc = refuse(sb, call->id, "%s", err.msg);
    json_decref(req);
    if (rc) return rc;
    json_t *rows = json_array();
    for (size_t i = 0; i < hits->n; i++) {
        const registry_hit_t *h = &hits->hit[i];
        char addr[ETH_ADDRESS_TEXT_SIZE];
        eth_address_to_text(h->contributor, addr);
        json_array_append_new(rows, json_pack("{s:I, s:s%, s:s, s:f}", "id", (json_int_t)h->id, "text", h->text,
                                              h->text_len, "contributor", addr, "score", h->score));
    }
    free(hits);
    json_t *answer = json_pack("{s:o}", "rows", rows);
    char *out = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    if (!out) return refuse(sb, call->id, "out of memory");
    sandbox_call_done(sb, call->id, 1, out, strlen(out));
    free(out);
    return 0;
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
    if (!model) {
        if (call->json_len > RT_REQUEST_MAX)
            return refuse(sb, call->id, "the request is %zu bytes of JSON, over %u", call->json_len, RT_REQUEST_MAX);
        return query(p, sb, call, name);
    }
    /* A model is only looked up (no registry is made for it): none is called here yet. */
    registry_t *reg;
    registry_model_t *m = malloc(sizeof *m);
    int rc = m ? rt_provider_registry(p, false, &reg, &err) : acc_fail(&err, ACC_ENOMEM, "out of memory");
    if (rc == ACC_OK) rc = registry_model_get(reg, name, m, &err);
    if (rc == ACC_OK)
        refuse(sb, call->id, "'%s' is a registered %s model; accrue run does not call registered models yet "
                             "(test/echo and test/upper answer here)", name, registry_model_kind_name(m->kind));
    else if (rc == ACC_ENOTFOUND)
        refuse(sb, call->id, "no model named '%s' (test/echo and test/upper answer here)", name);
    else
        refuse(sb, call->id, "%s", err.msg);
    free(m);
    return -1;
}

sandbox_provider_t rt_provider(rt_provider_t *p) {
    sandbox_provider_t sp = {.ud = p, .start_call = start_call, .output = NULL};
    return sp;
}
