/*
 * api.c: the HTTP API (/v1/...), the route table, and the job that runs store work on a worker.
 *
 * Routes that read or write the registry or the ledger do their work on a worker (rt_api_async):
 * the loop checks the caller's key, copies the request's parts into a job, and sends the response
 * the job made. Names may hold '/', so a name is the rest of a path ("{+}"), and an action on it
 * is a ":verb" suffix (names never hold ':'): POST /v1/datanets/demo/orchard:query.
 *
 * Who may call what: the marketplace, models, datanets and address balances are public; deploys,
 * contributions and reviews need any API key (the signature inside gives the authority); a
 * query, the caller's balance and usage need the caller's key (its account pays, or is shown);
 * account management, top-ups, datanet creation and model registration need the admin key.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/hex.h"
#include "registry/factory/factory.h"
#include "runtime/agents.h"
#include "runtime/base/invariant.h"
#include "runtime/luamodel.h"
#include "runtime/server/internal.h"

/* ---- the job ---------------------------------------------------------------------------------- */

static void api_done(rt_server *srv, rt_event *ev) {
    rt_api_job *j = (rt_api_job *)((char *)ev - offsetof(rt_api_job, ev));
    (void)srv;
    if (j->r) {
        j->r->op = NULL;
        j->r->op_gone = NULL;
        if (acc_buf_failed(&j->out)) rt_respond_error(j->r, 503, "unavailable", "out of memory");
        else rt_respond(j->r, j->status, "application/json", j->out.data ? j->out.data : "{}", j->out.len, NULL);
    }
    acc_buf_free(&j->out);
    free(j->query);
    free(j->body);
    free(j);
}

static void api_run(rt_job *job) {
    rt_api_job *j = (rt_api_job *)((char *)job - offsetof(rt_api_job, job));
    acc_err err = {0};
    registry_t *reg = rt_worker_registry(j->srv, &err);
    j->status = 200;
    if (!reg) rt_api_error(j, ACC_EBUSY, "the registry cannot be opened: %s", err.msg);
    else j->fn(j, reg);
    rt_post(j->srv, &j->ev);
}

static void api_gone(void *p) { ((rt_api_job *)p)->r = NULL; }

void rt_api_async(rt_req *r, const rt_principal *who, rt_api_fn fn) {
    ACC_INVARIANT(!r->op, "a request has one operation in flight at most (%s)", r->path);
    rt_api_job *j = calloc(1, sizeof *j);
    if (!j) {
        rt_respond_error(r, 503, "unavailable", "out of memory");
        return;
    }
    j->job.fn = api_run;
    j->ev.fn = api_done;
    j->srv = r->srv;
    j->r = r;
    if (who) j->who = *who;
    j->fn = fn;
    memcpy(j->params, r->params, sizeof j->params);
    snprintf(j->request_id, sizeof j->request_id, "%s", r->request_id);
    if (r->query) {
        j->query = malloc(r->query_len);
        if (j->query) memcpy(j->query, r->query, r->query_len), j->query_len = r->query_len;
    }
    if (r->body.len) {
        j->body = malloc(r->body.len + 1);
        if (j->body) memcpy(j->body, r->body.data, r->body.len + 1), j->body_len = r->body.len;
    }
    if ((r->query && !j->query) || (r->body.len && !j->body)) {
        free(j->query);
        free(j->body);
        free(j);
        rt_respond_error(r, 503, "unavailable", "out of memory");
        return;
    }
    r->op = j;
    r->op_gone = api_gone;
    rt_pool_submit(r->srv->pool, &j->job);
}

void rt_api_error(rt_api_job *j, int code, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    j->status = rt_status_http(code);
    acc_buf_reset(&j->out);
    rt_error_json(&j->out, rt_status_code_name(code), msg);
}

bool rt_api_query(const rt_api_job *j, const char *name, char *out, size_t outlen) {
    if (!j->query) return false;
    size_t nlen = strlen(name);
    for (const char *p = j->query; p < j->query + j->query_len; p += strlen(p) + 1) {
        if (strncmp(p, name, nlen) != 0 || (p[nlen] != '=' && p[nlen] != 0)) continue;
        snprintf(out, outlen, "%s", p[nlen] ? p + nlen + 1 : "");
        return true;
    }
    return false;
}

/* A whole-number query parameter in [lo, hi] (dflt when absent); false after an error response. */
static bool query_num(rt_api_job *j, const char *name, uint64_t lo, uint64_t hi, uint64_t dflt, uint64_t *out) {
    char v[32];
    *out = dflt;
    if (!rt_api_query(j, name, v, sizeof v)) return true;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || n < lo || n > hi) {
        rt_api_error(j, ACC_EINVAL, "?%s= takes a whole number from %" PRIu64 " to %" PRIu64, name, lo, hi);
        return false;
    }
    *out = n;
    return true;
}

/* The body as a JSON object; NULL after an error response. */
static json_t *body_object(rt_api_job *j) {
    json_error_t je;
    json_t *b = json_loadb(j->body ? j->body : "", j->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!b) rt_api_error(j, ACC_EINVAL, "the body is not JSON: %s (at byte %d)", je.text, je.position);
    else if (!json_is_object(b)) {
        rt_api_error(j, ACC_EINVAL, "the body must be a JSON object");
        json_decref(b);
        b = NULL;
    }
    return b;
}

/* A field of the body: *out the string (borrowed), or an error response naming it. */
static bool field_string(rt_api_job *j, json_t *b, const char *name, bool required, const char **out) {
    json_t *v = json_object_get(b, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) rt_api_error(j, ACC_EINVAL, "\"%s\" is required", name);
        return !required;
    }
    if (!json_is_string(v)) {
        rt_api_error(j, ACC_EINVAL, "\"%s\" must be a string", name);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool field_amount(rt_api_job *j, json_t *b, const char *name, uint64_t *out) {
    json_t *v = json_object_get(b, name);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        rt_api_error(j, ACC_EINVAL, "\"%s\" must be a whole number of base units (micro-credits)", name);
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool field_signature(rt_api_job *j, json_t *b, uint8_t sig[65]) {
    const char *s;
    if (!field_string(j, b, "signature", true, &s)) return false;
    if (hex_parse0x(s, strlen(s), sig, 65, NULL) != ACC_OK) {
        rt_api_error(j, ACC_EINVAL, "\"signature\" must be 65 bytes as 0x and 130 hex digits");
        return false;
    }
    return true;
}

static bool field_address(rt_api_job *j, json_t *b, const char *name, uint8_t out[20]) {
    const char *s;
    if (!field_string(j, b, name, true, &s)) return false;
    acc_err e = {0};
    if (eth_address_parse(s, strlen(s), out, &e) != ACC_OK) {
        rt_api_error(j, ACC_EINVAL, "\"%s\": %s", name, e.msg);
        return false;
    }
    return true;
}

static void json_out(rt_api_job *j, json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    acc_buf_reset(&j->out);
    if (s) acc_buf_puts(&j->out, s);
    else rt_api_error(j, ACC_ENOMEM, "out of memory");
    free(s);
}

static json_t *address_json(const uint8_t a[20]) {
    char t[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(a, t);
    return json_string(t);
}

/* ---- handlers on the loop --------------------------------------------------------------------- */

static void healthz(rt_req *r) {
    rt_server *srv = r->srv;
    acc_buf b = ACC_BUF_INIT;
    acc_buf_printf(&b,
                   "{\"status\":\"%s\",\"uptime_s\":%" PRIu64 ",\"sessions\":%" PRIdFAST64
                   ",\"connections\":%" PRIdFAST64 ",\"workers\":%u,\"signer\":\"%s\",\"event_loop\":\"%s\"}",
                   srv->draining ? "draining" : "ok", (rt_wall_ms() - srv->started_ms) / 1000,
                   atomic_load(&srv->m.sessions_live), atomic_load(&srv->m.connections_ws), srv->cfg.workers,
                   srv->host_address, srv->event_loop);
    rt_respond_json(r, 200, &b);
    acc_buf_free(&b);
}

static void metrics(rt_req *r) {
    acc_buf b = ACC_BUF_INIT;
    rt_metrics_render(r->srv, &b);
    if (acc_buf_failed(&b)) rt_respond_error(r, 503, "unavailable", "out of memory");
    else rt_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
    acc_buf_free(&b);
}

static void openapi(rt_req *r) {
    acc_buf b = ACC_BUF_INIT;
    rt_openapi_json(&b);
    rt_respond_json(r, 200, &b);
    acc_buf_free(&b);
}

/* Runs fn on a worker: public (no key), key (any account) or admin. */
enum access { PUBLIC, KEY, ADMIN };
static void async(rt_req *r, enum access a, rt_api_fn fn) {
    rt_principal who = {0};
    if (a != PUBLIC && rt_req_auth(r, &who, a == ADMIN) != ACC_OK) return;
    if (a == PUBLIC && r->auth[0]) { /* a key given to a public route is still checked */
        acc_err err = {0};
        if (rt_auth_key(r->srv, r->auth, strlen(r->auth), &who, &err) != ACC_OK) {
            rt_respond_error(r, 401, "unauthorized", "%s", err.msg);
            return;
        }
    }
    rt_api_async(r, &who, fn);
}

/* ---- agents ------------------------------------------------------------------------------------ */

static json_t *agent_json(const registry_agent_t *a, const registry_agent_usage_t *u) {
    json_t *tags = json_array(), *models = json_array(), *datanets = json_array();
    for (size_t i = 0; i < a->n_tags; i++) json_array_append_new(tags, json_string(a->tags[i]));
    for (size_t i = 0; i < a->n_models; i++) json_array_append_new(models, json_string(a->models[i]));
    for (size_t i = 0; i < a->n_datanets; i++) json_array_append_new(datanets, json_string(a->datanets[i]));
    char hash[67];
    hex_encode0x(a->script_hash, 32, hash);
    json_t *o = json_pack("{s:s,s:s,s:o,s:s,s:o,s:{s:I,s:I},s:I,s:{s:I,s:I,s:I,s:I},s:o,s:o,s:s,s:b,s:I}", "name",
                          a->name, "version", a->version, "author", address_json(a->author), "description",
                          a->description, "tags", tags, "price", "per_message", (json_int_t)a->price_per_message,
                          "per_session", (json_int_t)a->price_per_session, "markup_bps", (json_int_t)a->markup_bps,
                          "limits", "memory_bytes", (json_int_t)a->limits.memory_bytes, "instructions",
                          (json_int_t)a->limits.instructions, "time_ms", (json_int_t)a->limits.time_ms, "output_bytes",
                          (json_int_t)a->limits.output_bytes, "models", models, "datanets", datanets, "script_hash",
                          hash, "listed", a->listed, "deployed_ms", (json_int_t)a->created_ms);
    if (u)
        json_object_set_new(o, "usage",
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "sessions_7d", (json_int_t)u->sessions_7d,
                                      "sessions_30d", (json_int_t)u->sessions_30d, "messages_7d",
                                      (json_int_t)u->messages_7d, "messages_30d", (json_int_t)u->messages_30d,
                                      "revenue_7d", (json_int_t)u->revenue_7d, "revenue_30d", (json_int_t)u->revenue_30d));
    return o;
}

typedef struct listing {
    json_t *items;
    uint64_t skip, total;
} listing;

static int agent_item(void *ud, const registry_agent_t *a, const registry_agent_usage_t *u) {
    listing *l = ud;
    l->total++;
    if (l->skip) {
        l->skip--;
        return 0;
    }
    json_t *o = agent_json(a, u);
    json_object_set_new(o, "versions", json_integer((json_int_t)a->n_versions));
    json_array_append_new(l->items, o);
    return 0;
}

static void agents_list(rt_api_job *j, registry_t *reg) {
    char search[200] = "", tag[64] = "", sort[16] = "usage";
    bool has_search = rt_api_query(j, "search", search, sizeof search);
    bool has_tag = rt_api_query(j, "tag", tag, sizeof tag);
    rt_api_query(j, "sort", sort, sizeof sort);
    uint64_t limit, offset;
    if (!query_num(j, "limit", 1, 200, 50, &limit) || !query_num(j, "offset", 0, 100000, 0, &offset)) return;
    registry_agent_query_t q = {.search = has_search && *search ? search : NULL, .tag = has_tag && *tag ? tag : NULL,
                                .limit = (size_t)(limit + offset), .usage = rt_agent_usage};
    if (!strcmp(sort, "usage")) q.sort = REGISTRY_SORT_USAGE;
    else if (!strcmp(sort, "revenue")) q.sort = REGISTRY_SORT_REVENUE;
    else if (!strcmp(sort, "new")) q.sort = REGISTRY_SORT_NEW;
    else {
        rt_api_error(j, ACC_EINVAL, "?sort= takes usage, revenue or new, not '%.20s'", sort);
        return;
    }
    listing l = {.items = json_array(), .skip = offset};
    acc_err err = {0};
    int rc = registry_agents_list(reg, &q, agent_item, &l, &err);
    if (rc) {
        json_decref(l.items);
        rt_api_error(j, rc, "%s", err.msg);
        return;
    }
    json_out(j, json_pack("{s:o,s:I,s:I}", "agents", l.items, "offset", (json_int_t)offset, "limit", (json_int_t)limit));
}

static int version_item(void *ud, const registry_agent_t *a) {
    json_array_append_new(ud, json_pack("{s:s,s:b,s:I}", "version", a->version, "listed", a->listed, "deployed_ms",
                                        (json_int_t)a->created_ms));
    return 0;
}

static void agent_get(rt_api_job *j, registry_t *reg) {
    char name[REGISTRY_NAME_MAX + 1], version[REGISTRY_VERSION_MAX + 1];
    acc_err err = {0};
    registry_agent_t a;
    registry_agent_usage_t u = {0};
    int rc = rt_agent_ref(j->params[0], name, version, &err);
    if (!rc) rc = registry_agent_get(reg, name, version, &a, &err);
    if (rc) {
        rt_api_error(j, rc == ACC_EINVAL ? ACC_ENOTFOUND : rc, "%s", err.msg);
        return;
    }
    rt_agent_usage(NULL, a.name, &u, NULL);
    json_t *o = agent_json(&a, &u), *versions = json_array();
    registry_agent_versions(reg, a.name, version_item, versions, NULL);
    json_object_set_new(o, "versions", versions);
    json_out(j, o);
}

/* POST /v1/agents {"manifest": {...} or "...", "script": "...", "signature": "0x..."} */
static void agent_deploy(rt_api_job *j, registry_t *reg) {
    json_t *b = body_object(j);
    if (!b) return;
    const char *script;
    uint8_t sig[65];
    json_t *m = json_object_get(b, "manifest");
    char *manifest = json_is_string(m) ? strdup(json_string_value(m)) : json_is_object(m) ? json_dumps(m, JSON_COMPACT) : NULL;
    if (!manifest) rt_api_error(j, ACC_EINVAL, "\"manifest\" must be the manifest: an object, or its JSON text");
    else if (field_string(j, b, "script", true, &script) && field_signature(j, b, sig)) {
        registry_agent_t a;
        acc_err err = {0};
        int rc = registry_agent_deploy(reg, manifest, strlen(manifest), script, strlen(script), sig, rt_script_check,
                                       NULL, &a, &err);
        if (rc) rt_api_error(j, rc, "%s", err.msg);
        else {
            j->status = 201;
            json_out(j, agent_json(&a, NULL));
        }
    }
    free(manifest);
    json_decref(b);
}

/* ---- models ------------------------------------------------------------------------------------ */

/* A model as GET /v1/models and /v1/models/NAME show it (OpenAI's fields, then accrue's): what a
 * caller chooses by (owner, prices, shares, lineage), a lua model's script by its keccak256 (not
 * the script: it may be long), and, with `endpoint` (the admin's view), an http model's endpoint:
 * its url, its upstream name and the name of the host's environment variable holding its key,
 * which are the operator's business (where the server calls, and what it holds) and nobody
 * else's. */
json_t *rt_model_json(const registry_model_t *m, bool endpoint) {
    json_t *lineage = json_array(), *shares = json_array();
    for (size_t i = 0; i < m->n_lineage; i++) json_array_append_new(lineage, json_string(m->lineage[i]));
    for (size_t i = 0; i < m->n_shares; i++)
        json_array_append_new(shares, json_pack("{s:o,s:I}", "address", address_json(m->shares[i].address), "bps",
                                                (json_int_t)m->shares[i].bps));
    json_t *o = json_pack("{s:s,s:s,s:I,s:o,s:s,s:{s:I,s:I,s:I},s:I,s:I,s:o,s:o}", "id", m->name, "object", "model",
                          "created", (json_int_t)(m->created_ms / 1000), "owned_by", address_json(m->owner), "kind",
                          registry_model_kind_name(m->kind), "price", "per_call", (json_int_t)m->price_per_call,
                          "per_1k_in", (json_int_t)m->price_per_1k_in, "per_1k_out", (json_int_t)m->price_per_1k_out,
                          "owner_share_bps", (json_int_t)m->owner_share_bps, "span_k", (json_int_t)m->span_k,
                          "lineage", lineage, "shares", shares);
    if (m->kind == REGISTRY_MODEL_HTTP && endpoint) {
        json_object_set_new(o, "url", json_string(m->url));
        json_object_set_new(o, "upstream", json_string(m->upstream));
        json_object_set_new(o, "api_key_env", m->api_key_env[0] ? json_string(m->api_key_env) : json_null());
    }
    if (m->kind == REGISTRY_MODEL_LUA) {
        char hash[67];
        hex_encode0x(m->script_hash, 32, hash);
        json_object_set_new(o, "script_hash", json_string(hash));
    }
    return o;
}

static void model_get(rt_api_job *j, registry_t *reg) {
    registry_model_t m;
    acc_err err = {0};
    int rc = registry_model_get(reg, j->params[0], &m, &err);
    if (rc) rt_api_error(j, rc == ACC_EINVAL ? ACC_ENOTFOUND : rc, "%s", err.msg);
    else json_out(j, rt_model_json(&m, j->who.admin));
}

/* A string field copied into out (size bytes with its NUL), or an error response naming it. */
static bool field_copy(rt_api_job *j, json_t *b, const char *name, bool required, char *out, size_t size) {
    const char *v;
    if (!field_string(j, b, name, required, &v)) return false;
    if (v && strlen(v) >= size) {
        rt_api_error(j, ACC_EINVAL, "\"%s\" is longer than %zu bytes", name, size - 1);
        return false;
    }
    snprintf(out, size, "%s", v ? v : "");
    return true;
}

/* "shares": [{"address": "0x...", "bps": N}, ...], as GET shows them. Their limits (1 to 10000 bps
 * each, at most 10000 with the owner's share) are the registry's (registry_model_check). */
static bool field_shares(rt_api_job *j, json_t *b, registry_model_t *m) {
    json_t *shares = json_object_get(b, "shares"), *v;
    if (!shares || json_is_null(shares)) return true;
    if (!json_is_array(shares) || json_array_size(shares) > REGISTRY_LIST_MAX) {
        rt_api_error(j, ACC_EINVAL, "\"shares\" must be a list of at most %d {\"address\", \"bps\"} objects",
                     REGISTRY_LIST_MAX);
        return false;
    }
    size_t i;
    json_array_foreach(shares, i, v) {
        const char *addr = json_string_value(json_object_get(v, "address"));
        json_t *bps = json_object_get(v, "bps");
        acc_err e = {0};
        if (!json_is_object(v) || json_object_size(v) != 2 || !addr || !json_is_integer(bps) ||
            json_integer_value(bps) < 0 || json_integer_value(bps) > UINT32_MAX) {
            rt_api_error(j, ACC_EINVAL, "\"shares\"[%zu] must be {\"address\": \"0x...\", \"bps\": N}", i);
            return false;
        }
        if (eth_address_parse(addr, strlen(addr), m->shares[i].address, &e) != ACC_OK) {
            rt_api_error(j, ACC_EINVAL, "\"shares\"[%zu].address: %s", i, e.msg);
            return false;
        }
        m->shares[i].bps = (uint32_t)json_integer_value(bps);
        m->n_shares = i + 1;
    }
    return true;
}

/* POST /v1/models (admin): registers an http model (an OpenAI-compatible endpoint: url, upstream,
 * api_key_env) or a lua model (its script, which must load as one: rt_model_check, as `accrue model
 * register` checks it), with prices, the owner's share, lineage and declared fixed shares. A field
 * this does not know, or one of the other kind's, is refused by name. Built-in models come from
 * `accrue model build`, which trains them from a datanet. */
static void model_register(rt_api_job *j, registry_t *reg) {
    static const char *const known[] = {"name", "kind", "owner", "url", "upstream", "api_key_env", "script",
                                        "price_per_call", "price_per_1k_in", "price_per_1k_out", "owner_share_bps",
                                        "span_k", "lineage", "shares"};
    static const char *const http_only[] = {"url", "upstream", "api_key_env"};
    json_t *b = body_object(j);
    if (!b) return;
    registry_model_t *m = calloc(1, sizeof *m);
    const char *kind = NULL, *script = NULL, *key;
    json_t *v;
    bool ok = m != NULL;
    if (!m) rt_api_error(j, ACC_ENOMEM, "out of memory");
    json_object_foreach(b, key, v) {
        size_t i = 0;
        while (i < sizeof known / sizeof *known && strcmp(key, known[i]) != 0) i++;
        if (ok && i == sizeof known / sizeof *known)
            ok = false, rt_api_error(j, ACC_EINVAL, "\"%.64s\": not a field of a model registration", key);
    }
    if (ok) ok = field_string(j, b, "kind", false, &kind);
    if (ok && kind && !strcmp(kind, "builtin"))
        ok = false, rt_api_error(j, ACC_EINVAL, "\"kind\": builtin models are made by `accrue model build`");
    else if (ok && registry_model_kind_parse(kind ? kind : "http", &m->kind) != ACC_OK)
        ok = false, rt_api_error(j, ACC_EINVAL, "\"kind\" is http or lua, not '%.32s'", kind);
    bool lua = ok && m->kind == REGISTRY_MODEL_LUA;
    for (size_t i = 0; ok && lua && i < sizeof http_only / sizeof *http_only; i++)
        if (json_object_get(b, http_only[i]))
            ok = false, rt_api_error(j, ACC_EINVAL, "\"%s\" is for http models, not lua ones", http_only[i]);
    if (ok && !lua && json_object_get(b, "script"))
        ok = false, rt_api_error(j, ACC_EINVAL, "\"script\" is for lua models (\"kind\": \"lua\")");
    uint64_t owner_bps = 0, span_k = 0;
    ok = ok && field_copy(j, b, "name", true, m->name, sizeof m->name) &&
         field_copy(j, b, "url", !lua, m->url, sizeof m->url) &&
         field_copy(j, b, "upstream", !lua, m->upstream, sizeof m->upstream) &&
         field_copy(j, b, "api_key_env", false, m->api_key_env, sizeof m->api_key_env) &&
         field_string(j, b, "script", lua, &script) && field_address(j, b, "owner", m->owner) &&
         field_amount(j, b, "price_per_call", &m->price_per_call) &&
         field_amount(j, b, "price_per_1k_in", &m->price_per_1k_in) &&
         field_amount(j, b, "price_per_1k_out", &m->price_per_1k_out) &&
         field_amount(j, b, "owner_share_bps", &owner_bps) && field_amount(j, b, "span_k", &span_k) &&
         field_shares(j, b, m);
    size_t script_len = script ? json_string_length(json_object_get(b, "script")) : 0;
    if (ok && script_len > REGISTRY_SCRIPT_MAX)
        ok = false, rt_api_error(j, ACC_EINVAL, "\"script\" is %zu bytes, over %u", script_len, REGISTRY_SCRIPT_MAX);
    if (ok && (owner_bps > REGISTRY_BPS_MAX || span_k > 1024))
        ok = false, rt_api_error(j, ACC_EINVAL, owner_bps > REGISTRY_BPS_MAX ? "\"owner_share_bps\" is at most 10000"
                                                                             : "\"span_k\" is at most 1024");
    json_t *lineage = json_object_get(b, "lineage");
    if (ok && lineage && (!json_is_array(lineage) || json_array_size(lineage) > REGISTRY_LIST_MAX))
        ok = false, rt_api_error(j, ACC_EINVAL, "\"lineage\" must be a list of at most %d datanet names", REGISTRY_LIST_MAX);
    if (ok) {
        m->owner_share_bps = (uint32_t)owner_bps;
        m->span_k = (uint32_t)span_k;
        size_t i;
        json_array_foreach(lineage, i, v) {
            if (!json_is_string(v) || json_string_length(v) > REGISTRY_NAME_MAX) {
                ok = false;
                rt_api_error(j, ACC_EINVAL, "\"lineage\"[%zu] must be a datanet's name", i);
                break;
            }
            snprintf(m->lineage[m->n_lineage++], sizeof m->lineage[0], "%s", json_string_value(v));
        }
    }
    acc_err err = {0};
    int rc;
    if (ok && (rc = rt_model_check(m, script, script_len, "\"script\"", &err))) {
        /* a script that does not load is a bad request, not a failed call */
        rt_api_error(j, rc == ACC_ENOMEM ? rc : ACC_EINVAL, "%s", err.msg);
        ok = false;
    }
    if (ok) {
        registry_model_t *out = malloc(sizeof *out);
        rc = out ? registry_model_register(reg, m, script, script_len, out, &err) : acc_fail(&err, ACC_ENOMEM, "out of memory");
        if (rc) rt_api_error(j, rc, "%s", err.msg);
        else {
            j->status = 201;
            json_out(j, rt_model_json(out, true)); /* admin only */
        }
        free(out);
    }
    free(m);
    json_decref(b);
}

/* ---- datanets ---------------------------------------------------------------------------------- */

static json_t *datanet_json(const registry_datanet_t *d) {
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I},s:s,s:I,s:I,s:I,s:I}", "name", d->name, "owner", address_json(d->owner),
                     "description", d->description, "price", "per_query", (json_int_t)d->price_per_query, "per_record",
                     (json_int_t)d->price_per_record, "curation",
                     d->curation == REGISTRY_CURATION_REVIEW ? "review" : "auto", "version", (json_int_t)d->version,
                     "pending", (json_int_t)d->pending, "rejected", (json_int_t)d->rejected, "created_ms",
                     (json_int_t)d->created_ms);
}

static int datanet_item(void *ud, const registry_datanet_t *d) {
    json_array_append_new(ud, datanet_json(d));
    return 0;
}

static void datanets_list(rt_api_job *j, registry_t *reg) {
    json_t *items = json_array();
    acc_err err = {0};
    int rc = registry_datanets_list(reg, datanet_item, items, &err);
    if (rc) {
        json_decref(items);
        rt_api_error(j, rc, "%s", err.msg);
        return;
    }
    json_out(j, json_pack("{s:o}", "datanets", items));
}

static void datanet_get(rt_api_job *j, registry_t *reg) {
    registry_datanet_t d;
    acc_err err = {0};
    int rc = registry_datanet_get(reg, j->params[0], &d, &err);
    if (rc) rt_api_error(j, rc == ACC_EINVAL ? ACC_ENOTFOUND : rc, "%s", err.msg);
    else json_out(j, datanet_json(&d));
}

static void datanet_create(rt_api_job *j, registry_t *reg) {
    json_t *b = body_object(j);
    if (!b) return;
    registry_datanet_spec_t spec = {0};
    const char *name, *description, *curation;
    bool ok = field_string(j, b, "name", true, &name) && field_address(j, b, "owner", spec.owner) &&
              field_string(j, b, "description", false, &description) &&
              field_string(j, b, "curation", false, &curation) &&
              field_amount(j, b, "price_per_query", &spec.price_per_query) &&
              field_amount(j, b, "price_per_record", &spec.price_per_record);
    if (ok && curation && strcmp(curation, "auto") && strcmp(curation, "review"))
        ok = false, rt_api_error(j, ACC_EINVAL, "\"curation\" is auto or review");
    if (ok) {
        spec.name = name;
        spec.description = description;
        spec.curation = curation && !strcmp(curation, "review") ? REGISTRY_CURATION_REVIEW : REGISTRY_CURATION_AUTO;
        registry_datanet_t d;
        acc_err err = {0};
        int rc = registry_datanet_create(reg, &spec, &d, &err);
        if (rc) rt_api_error(j, rc, "%s", err.msg);
        else {
            j->status = 201;
            json_out(j, datanet_json(&d));
        }
    }
    json_decref(b);
}

/* POST /v1/datanets/NAME:contribute {"text", "contributor", "signature"}: a record signed by its
 * contributor (EIP-191 over keccak256(datanet || 0x00 || text); `accrue sign` makes one). */
static void datanet_contribute(rt_api_job *j, registry_t *reg) {
    json_t *b = body_object(j);
    if (!b) return;
    const char *text;
    uint8_t contributor[20], sig[65];
    if (field_string(j, b, "text", true, &text) && field_address(j, b, "contributor", contributor) &&
        field_signature(j, b, sig)) {
        registry_added_t added;
        acc_err err = {0};
        int rc = registry_record_add(reg, j->params[0], text, json_string_length(json_object_get(b, "text")),
                                     contributor, sig, &added, &err);
        if (rc) rt_api_error(j, rc, "%s", err.msg);
        else {
            j->status = 201;
            json_out(j, json_pack("{s:I,s:s,s:I}", "id", (json_int_t)added.id, "status",
                                  registry_record_status_name(added.status), "seq", (json_int_t)added.seq));
        }
    }
    json_decref(b);
}

/* POST /v1/datanets/NAME:review {"record": ID, "accept": true|false, "signature"} by the owner. */
static void datanet_review(rt_api_job *j, registry_t *reg) {
    json_t *b = body_object(j);
    if (!b) return;
    json_t *rec = json_object_get(b, "record"), *acc = json_object_get(b, "accept");
    uint8_t sig[65];
    if (!json_is_integer(rec) || !json_is_boolean(acc)) {
        rt_api_error(j, ACC_EINVAL, "a review needs \"record\": ID and \"accept\": true or false");
    } else if (field_signature(j, b, sig)) {
        acc_err err = {0};
        int rc = registry_record_review(reg, j->params[0], json_integer_value(rec), json_is_true(acc), sig, &err);
        if (rc) rt_api_error(j, rc, "%s", err.msg);
        else json_out(j, json_pack("{s:I,s:s}", "id", (json_int_t)json_integer_value(rec), "status",
                                   json_is_true(acc) ? "accepted" : "rejected"));
    }
    json_decref(b);
}

json_t *rt_record_json(const registry_record_t *r) {
    char hash[67];
    hex_encode0x(r->content_hash, 32, hash);
    json_t *o = json_pack("{s:I,s:o,s:s%,s:s,s:I,s:s,s:b,s:I}", "id", (json_int_t)r->id, "contributor",
                          address_json(r->contributor), "text", r->text, r->text_len, "status",
                          registry_record_status_name(r->status), "seq", (json_int_t)r->seq, "content_hash", hash,
                          "signed", r->is_signed, "created_ms", (json_int_t)r->created_ms);
    json_t *prov = r->provenance ? json_loads(r->provenance, 0, NULL) : NULL;
    if (prov) json_object_set_new(o, "provenance", prov);
    return o;
}

static int record_item(void *ud, const registry_record_t *r) {
    json_array_append_new(ud, rt_record_json(r));
    return 0;
}

/* GET /v1/datanets/NAME:records?status=accepted&after=ID&limit=N */
static void datanet_records(rt_api_job *j, registry_t *reg) {
    char status[16] = "accepted";
    rt_api_query(j, "status", status, sizeof status);
    registry_record_status_t st;
    if (!strcmp(status, "accepted")) st = REGISTRY_RECORD_ACCEPTED;
    else if (!strcmp(status, "pending")) st = REGISTRY_RECORD_PENDING;
    else if (!strcmp(status, "rejected")) st = REGISTRY_RECORD_REJECTED;
    else {
        rt_api_error(j, ACC_EINVAL, "?status= takes accepted, pending or rejected");
        return;
    }
    uint64_t after, limit;
    if (!query_num(j, "after", 0, INT64_MAX, 0, &after) || !query_num(j, "limit", 1, 500, 50, &limit)) return;
    json_t *items = json_array();
    acc_err err = {0};
    int rc = registry_records_list(reg, j->params[0], st, (int64_t)after, (size_t)limit, record_item, items, &err);
    if (rc) {
        json_decref(items);
        rt_api_error(j, rc, "%s", err.msg);
        return;
    }
    json_out(j, json_pack("{s:o}", "records", items));
}

/* ---- accounts and balances ----------------------------------------------------------------------- */

static int account_item(void *ud, const registry_account_t *a) {
    json_array_append_new(ud, json_pack("{s:s,s:b,s:I,s:I}", "name", a->name, "admin", a->admin, "live_keys",
                                        (json_int_t)a->live_keys, "created_ms", (json_int_t)a->created_ms));
    return 0;
}

static void accounts_list(rt_api_job *j, registry_t *reg) {
    json_t *items = json_array();
    acc_err err = {0};
    int rc = registry_accounts_list(reg, account_item, items, &err);
    if (rc) {
        json_decref(items);
        rt_api_error(j, rc, "%s", err.msg);
        return;
    }
    json_out(j, json_pack("{s:o}", "accounts", items));
}

/* POST /v1/accounts {"name", "admin"?, "credit"?}: the new key is in the answer, once. */
static void account_create(rt_api_job *j, registry_t *reg) {
    json_t *b = body_object(j);
    if (!b) return;
    const char *name;
    uint64_t credit = 0;
    json_t *adm = json_object_get(b, "admin");
    if (field_string(j, b, "name", true, &name) && field_amount(j, b, "credit", &credit)) {
        if (adm && !json_is_boolean(adm)) rt_api_error(j, ACC_EINVAL, "\"admin\" must be true or false");
        else {
            char key[REGISTRY_API_KEY_TEXT_SIZE];
            acc_err err = {0};
            int rc = registry_account_create(reg, name, json_is_true(adm), key, NULL, &err);
            if (!rc && credit) rc = rt_topup(j->srv->ledger, name, credit, NULL, &err);
            if (rc) rt_api_error(j, rc, "%s", err.msg);
            else {
                j->status = 201;
                json_out(j, json_pack("{s:s,s:s,s:b,s:I}", "name", name, "api_key", key, "admin", json_is_true(adm),
                                      "credit", (json_int_t)credit));
            }
            memset(key, 0, sizeof key);
        }
    }
    json_decref(b);
}

static void account_topup(rt_api_job *j, registry_t *reg) {
    json_t *b = body_object(j);
    if (!b) return;
    uint64_t amount = 0;
    acc_err err = {0};
    if (field_amount(j, b, "amount", &amount)) {
        int rc = amount ? registry_account_get(reg, j->params[0], NULL, &err)
                        : acc_fail(&err, ACC_EINVAL, "\"amount\" must be a whole number above 0");
        ledger_result_t res;
        if (!rc) rc = rt_topup(j->srv->ledger, j->params[0], amount, &res, &err);
        if (rc) rt_api_error(j, rc, "%s", err.msg);
        else json_out(j, json_pack("{s:s,s:I,s:I}", "account", j->params[0], "amount", (json_int_t)amount, "seq",
                                   (json_int_t)res.seq));
    }
    json_decref(b);
}

static void account_revoke(rt_api_job *j, registry_t *reg) {
    unsigned n = 0;
    acc_err err = {0};
    int rc = registry_account_revoke(reg, j->params[0], &n, &err);
    if (rc) rt_api_error(j, rc, "%s", err.msg);
    else json_out(j, json_pack("{s:s,s:I}", "account", j->params[0], "revoked", (json_int_t)n));
}

static void account_new_key(rt_api_job *j, registry_t *reg) {
    char key[REGISTRY_API_KEY_TEXT_SIZE];
    acc_err err = {0};
    int rc = registry_account_new_key(reg, j->params[0], key, &err);
    if (rc) rt_api_error(j, rc, "%s", err.msg);
    else {
        j->status = 201;
        json_out(j, json_pack("{s:s,s:s}", "account", j->params[0], "api_key", key));
    }
    memset(key, 0, sizeof key);
}

static void balance_of(rt_api_job *j, ledger_account_kind_t kind, const char *name) {
    ledger_account_t *a;
    ledger_balance_t b;
    acc_err err = {0};
    int rc = ledger_account(j->srv->ledger, kind, name, &a, &err);
    if (!rc) rc = ledger_balance(j->srv->ledger, a, true, &b, &err);
    if (rc) {
        rt_api_error(j, rc, "%s", err.msg);
        return;
    }
    json_out(j, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "account", name, "kind",
                          kind == LEDGER_ACCOUNT_USER ? "account" : "address", "unit", LEDGER_UNIT_NAME, "available",
                          (json_int_t)b.available, "pending", (json_int_t)b.pending, "credits", (json_int_t)b.credits,
                          "debits", (json_int_t)b.debits, "earned", (json_int_t)b.earned, "accrued",
                          (json_int_t)b.accrued, "settled", (json_int_t)b.settled));
}

static void balance_mine(rt_api_job *j, registry_t *reg) {
    (void)reg;
    balance_of(j, LEDGER_ACCOUNT_USER, j->who.account);
}

/* GET /v1/balance/ADDRESS (anyone: what an address earned, accrued and settled), or an account's
 * name (its own key, or the admin's). */
static void balance_named(rt_api_job *j, registry_t *reg) {
    (void)reg;
    const char *who = j->params[0];
    uint8_t a[20];
    if (strncmp(who, "0x", 2) == 0 || strncmp(who, "0X", 2) == 0) {
        acc_err e = {0};
        if (eth_address_parse(who, strlen(who), a, &e) != ACC_OK) {
            rt_api_error(j, ACC_EINVAL, "%s", e.msg);
            return;
        }
        char t[ETH_ADDRESS_TEXT_SIZE];
        eth_address_to_text(a, t);
        balance_of(j, LEDGER_ACCOUNT_ADDRESS, t);
        return;
    }
    if (!j->who.admin && strcmp(j->who.account, who) != 0) {
        rt_api_error(j, ACC_EPERM, "an account's balance is for its own key (or the admin's)");
        return;
    }
    balance_of(j, LEDGER_ACCOUNT_USER, who);
}

/* ---- usage ------------------------------------------------------------------------------------- */

typedef struct usage_scan {
    rt_api_job *j;
    json_t *items;
    uint64_t limit, since_ms;
    bool forward;
    const char *payer, *agent, *session, *payee;
} usage_scan;

static int usage_item(void *ud, const ledger_entry_t *e) {
    usage_scan *u = ud;
    if (!e->event || !e->event_len || e->code == LEDGER_CODE_TOPUP || e->code == LEDGER_CODE_SETTLEMENT) return 0;
    if (u->since_ms && e->time_ms < u->since_ms) return u->forward ? 0 : 1; /* newest first: older follow */
    meter_event_t ev;
    if (meter_event_decode(e->event, e->event_len, &ev, NULL) != ACC_OK) return 0;
    bool keep = (!u->payer || !strcmp(ev.payer, u->payer)) && (!u->agent || !strcmp(ev.agent, u->agent)) &&
                (!u->session || !strcmp(ev.session, u->session));
    if (keep && u->payee) {
        keep = false;
        for (size_t i = 0; i < ev.nlines; i++)
            if (!strcasecmp(ev.lines[i].payee, u->payee)) keep = true;
    }
    if (keep) {
        acc_buf b = ACC_BUF_INIT;
        meter_event_json(&ev, e->seq, &b);
        json_t *o = acc_buf_failed(&b) ? NULL : json_loadb(b.data, b.len, 0, NULL);
        if (o) json_array_append_new(u->items, o);
        acc_buf_free(&b);
    }
    meter_event_free(&ev);
    return json_array_size(u->items) >= u->limit ? 1 : 0;
}

/* GET /v1/usage?agent=&session=&payee=&since=MS&limit=N[&from_seq=N]: the caller's calls (the
 * admin's: everyone's), each with its attribution lines; newest first, or, with from_seq, in
 * ledger order from that seq on (to page through everything). */
static void usage_list(rt_api_job *j, registry_t *reg) {
    (void)reg;
    char agent[200], session[80], payee[64];
    uint64_t limit, since, from;
    if (!query_num(j, "limit", 1, 1000, 100, &limit) || !query_num(j, "since", 0, INT64_MAX, 0, &since) ||
        !query_num(j, "from_seq", 0, INT64_MAX, 0, &from))
        return;
    usage_scan u = {.j = j, .items = json_array(), .limit = limit, .since_ms = since, .forward = from > 0};
    if (!j->who.admin) u.payer = j->who.account;
    if (rt_api_query(j, "agent", agent, sizeof agent)) u.agent = agent;
    if (rt_api_query(j, "session", session, sizeof session)) u.session = session;
    if (rt_api_query(j, "payee", payee, sizeof payee)) u.payee = payee;
    acc_err err = {0};
    int rc = ledger_scan(j->srv->ledger, u.forward ? from : 1, 0, !u.forward, usage_item, &u, &err);
    if (rc != ACC_OK && rc != 1) {
        json_decref(u.items);
        rt_api_error(j, rc, "%s", err.msg);
        return;
    }
    json_out(j, json_pack("{s:o}", "usage", u.items));
}

static int usage_one(void *ud, const ledger_entry_t *e) {
    usage_scan *u = ud;
    meter_event_t ev;
    if (!e->event || meter_event_decode(e->event, e->event_len, &ev, NULL) != ACC_OK) return ACC_ENOTFOUND;
    if (u->payer && strcmp(ev.payer, u->payer) != 0) {
        meter_event_free(&ev);
        return ACC_ENOTFOUND;
    }
    acc_buf b = ACC_BUF_INIT;
    meter_event_json(&ev, e->seq, &b);
    json_t *o = acc_buf_failed(&b) ? NULL : json_loadb(b.data, b.len, 0, NULL);
    if (o) json_array_append_new(u->items, o);
    acc_buf_free(&b);
    meter_event_free(&ev);
    return ACC_OK;
}

/* GET /v1/usage/CALL_ID: one call, who was paid what and why. */
static void usage_get(rt_api_job *j, registry_t *reg) {
    (void)reg;
    ledger_id_t id;
    acc_err err = {0};
    if (ledger_id_parse(j->params[0], strlen(j->params[0]), &id, &err) != ACC_OK) {
        rt_api_error(j, ACC_EINVAL, "%s", err.msg);
        return;
    }
    usage_scan u = {.j = j, .items = json_array(), .payer = j->who.admin ? NULL : j->who.account};
    int rc = ledger_find(j->srv->ledger, &id, usage_one, &u, &err);
    if (rc || !json_array_size(u.items)) {
        json_decref(u.items);
        rt_api_error(j, ACC_ENOTFOUND, "no call %s among yours", j->params[0]);
        return;
    }
    json_out(j, json_incref(json_array_get(u.items, 0)));
    json_decref(u.items);
}

/* ---- for the API's other files (internal.h) ------------------------------------------------------ */

void rt_api_route(rt_req *r, rt_access a, rt_api_fn fn) {
    async(r, a == RT_ADMIN ? ADMIN : a == RT_KEY ? KEY : PUBLIC, fn);
}
void rt_api_json(rt_api_job *j, json_t *v) { json_out(j, v); }
bool rt_api_query_num(rt_api_job *j, const char *name, uint64_t lo, uint64_t hi, uint64_t dflt, uint64_t *out) {
    return query_num(j, name, lo, hi, dflt, out);
}

/* ---- routes ------------------------------------------------------------------------------------ */

static void r_agents(rt_req *r) { async(r, PUBLIC, agents_list); }
static void r_agent(rt_req *r) { async(r, PUBLIC, agent_get); }
static void r_deploy(rt_req *r) { async(r, KEY, agent_deploy); }
static void r_model(rt_req *r) { async(r, PUBLIC, model_get); }
static void r_model_register(rt_req *r) { async(r, ADMIN, model_register); }
static void r_datanets(rt_req *r) { async(r, PUBLIC, datanets_list); }
static void r_datanet(rt_req *r) { async(r, PUBLIC, datanet_get); }
static void r_datanet_create(rt_req *r) { async(r, ADMIN, datanet_create); }
static void r_contribute(rt_req *r) { async(r, KEY, datanet_contribute); }
static void r_review(rt_req *r) { async(r, KEY, datanet_review); }
static void r_records(rt_req *r) { async(r, PUBLIC, datanet_records); }
static void r_accounts(rt_req *r) { async(r, ADMIN, accounts_list); }
static void r_account_create(rt_req *r) { async(r, ADMIN, account_create); }
static void r_topup(rt_req *r) { async(r, ADMIN, account_topup); }
static void r_revoke(rt_req *r) {
    rt_auth_forget(r->srv); /* the revoked keys stop at once on this server */
    async(r, ADMIN, account_revoke);
}
static void r_new_key(rt_req *r) { async(r, ADMIN, account_new_key); }
static void r_balance(rt_req *r) { async(r, KEY, balance_mine); }
static void r_balance_named(rt_req *r) {
    bool address = strncasecmp(r->params[0], "0x", 2) == 0;
    async(r, address ? PUBLIC : KEY, balance_named);
}
static void r_usage(rt_req *r) { async(r, KEY, usage_list); }
static void r_usage_one(rt_req *r) { async(r, KEY, usage_get); }
void rt_datanet_query(rt_req *r); /* openai.c: metered like any call */

const rt_route rt_routes[] = {
    {RT_GET, "/healthz", healthz},
    {RT_GET, "/metrics", metrics},
    {RT_GET, "/v1/openapi.json", openapi},
    {RT_GET, "/v1/models", rt_openai_models},
    {RT_POST, "/v1/models", r_model_register},
    {RT_GET, "/v1/models/{+}", r_model},
    {RT_POST, "/v1/chat/completions", rt_openai_chat},
    {RT_GET, "/v1/agents", r_agents},
    {RT_POST, "/v1/agents", r_deploy},
    {RT_GET, "/v1/agents/{+}", r_agent},
    {RT_GET, "/v1/agents/{+}:usage", rt_r_agent_usage},
    {RT_GET, "/v1/datanets", r_datanets},
    {RT_POST, "/v1/datanets", r_datanet_create},
    {RT_GET, "/v1/datanets/{+}", r_datanet},
    {RT_POST, "/v1/datanets/{+}:contribute", r_contribute},
    {RT_POST, "/v1/datanets/{+}:review", r_review},
    {RT_POST, "/v1/datanets/{+}:query", rt_datanet_query},
    {RT_GET, "/v1/datanets/{+}:records", r_records},
    {RT_GET, "/v1/datanets/{+}:contributors", rt_r_datanet_contributors},
    {RT_GET, "/v1/records/{}", rt_r_record},
    {RT_GET, "/v1/earnings/{}", rt_r_earnings},
    {RT_GET, "/v1/batches", rt_r_batches},
    {RT_GET, "/v1/batches/{}", rt_r_batch},
    {RT_GET, "/v1/batches/{}/proofs/{}", rt_r_batch_proof},
    {RT_GET, "/v1/accounts", r_accounts},
    {RT_POST, "/v1/accounts", r_account_create},
    {RT_POST, "/v1/accounts/{}:topup", r_topup},
    {RT_POST, "/v1/accounts/{}:revoke", r_revoke},
    {RT_POST, "/v1/accounts/{}:keys", r_new_key},
    {RT_GET, "/v1/balance", r_balance},
    {RT_GET, "/v1/balance/{+}", r_balance_named},
    {RT_GET, "/v1/usage", r_usage},
    {RT_GET, "/v1/usage/{}", r_usage_one},
};
const size_t rt_nroutes = sizeof rt_routes / sizeof rt_routes[0];
