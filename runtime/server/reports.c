/*
 * reports.c: what the web page shows beyond the core API, each a route any program can call too:
 *
 *   GET /v1/agents/NAME:usage?days=N       an agent's sessions, messages and revenue per UTC day
 *   GET /v1/datanets/NAME:contributors     who contributed to a datanet, records by status, earned
 *   GET /v1/records/ID                     one record, any datanet (what evidence cites)
 *   GET /v1/earnings/ADDRESS?scan=N        what earned an address: by source and role, by record
 *
 * The usage figures are read from the usage events in the ledger the way meter_usage_by_agent
 * reads the marketplace's 7- and 30-day figures: posted charge postings, a session counted once
 * per day it had a call, a message once per (session, request id), revenue the events' cost. So
 * the chart's last 7 and 30 days add up to the agent's card.
 *
 * Earnings have no index by payee: they are read from the newest usage events backwards, at most
 * ?scan= postings (100,000 by default), and the answer says when it stopped short. Everything here
 * runs on a worker (rt_api_route), never on the loop.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "meters/eth/keys.h"
#include "runtime/agents.h"
#include "runtime/server/internal.h"

#define DAY_MS UINT64_C(86400000)
#define USAGE_DAYS_MAX 90
#define EARNINGS_RECORDS_MAX 50

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Decodes a posting's usage event when it is a posted charge with one; false otherwise. */
static bool charge_event(const ledger_entry_t *e, meter_event_t *ev) {
    if (!ledger_code_is_charge(e->code) || !e->event_len || e->state != LEDGER_POSTED) return false;
    return meter_event_decode(e->event, e->event_len, ev, NULL) == ACC_OK;
}

/* ---- an agent's usage per day ------------------------------------------------------------------ */

typedef struct day_walk {
    const char *agent;
    uint64_t first_ms; /* the first day's midnight, UTC */
    size_t ndays;
    uint64_t sessions[USAGE_DAYS_MAX], messages[USAGE_DAYS_MAX];
    ledger_amount_t revenue[USAGE_DAYS_MAX];
    rt_map seen; /* "day \x1f session" and "day \x1f session \x1f request": counted already */
} day_walk;

/* 1 when key is new (and now remembered), 0 when seen, ACC_ENOMEM. */
static int first_time(rt_map *m, const char *key) {
    if (rt_map_get(m, key)) return 0;
    return rt_map_put(m, key, (void *)1) == ACC_OK ? 1 : ACC_ENOMEM;
}

static int day_one(void *ud, const ledger_entry_t *e) {
    day_walk *w = ud;
    meter_event_t ev;
    if (e->time_ms < w->first_ms || !charge_event(e, &ev)) return ACC_OK;
    int rc = ACC_OK;
    size_t d = (size_t)((e->time_ms - w->first_ms) / DAY_MS);
    if (d < w->ndays && strcmp(ev.agent, w->agent) == 0) {
        char key[3 * (METER_NAME_MAX + 1) + 24];
        if (__builtin_add_overflow(w->revenue[d], ev.cost, &w->revenue[d])) rc = ACC_ELIMIT;
        if (!rc && ev.session[0]) {
            snprintf(key, sizeof key, "%zu\x1f%s", d, ev.session);
            int n = first_time(&w->seen, key);
            if (n < 0) rc = n;
            else w->sessions[d] += (uint64_t)n;
        }
        if (!rc && ev.request_id[0]) {
            snprintf(key, sizeof key, "%zu\x1f%s\x1f%s", d, ev.session, ev.request_id);
            int n = first_time(&w->seen, key);
            if (n < 0) rc = n;
            else w->messages[d] += (uint64_t)n;
        }
    }
    meter_event_free(&ev);
    return rc;
}

static void agent_usage(rt_api_job *j, registry_t *reg) {
    char name[REGISTRY_NAME_MAX + 1], version[REGISTRY_VERSION_MAX + 1];
    uint64_t ndays;
    acc_err err = {0};
    registry_agent_t a;
    int rc = rt_agent_ref(j->params[0], name, version, &err);
    if (!rc) rc = registry_agent_get(reg, name, NULL, &a, &err);
    if (rc) {
        rt_api_error(j, rc == ACC_EINVAL ? ACC_ENOTFOUND : rc, "%s", err.msg);
        return;
    }
    if (!rt_api_query_num(j, "days", 1, USAGE_DAYS_MAX, 30, &ndays)) return;
    day_walk *w = calloc(1, sizeof *w);
    if (!w) {
        rt_api_error(j, ACC_ENOMEM, "out of memory");
        return;
    }
    uint64_t today = now_ms() / DAY_MS * DAY_MS;
    w->agent = a.name;
    w->ndays = (size_t)ndays;
    w->first_ms = today - (ndays - 1) * DAY_MS;
    uint64_t from = 1;
    rc = ledger_seq_at_time(j->srv->ledger, w->first_ms, &from, &err);
    if (!rc) rc = ledger_scan(j->srv->ledger, from, 0, false, day_one, w, &err);
    if (rc == ACC_ENOMEM || rc == ACC_ELIMIT) acc_fail(&err, rc, "usage per day: %s", rc == ACC_ENOMEM ? "out of memory" : "revenue overflows");
    if (rc) rt_api_error(j, rc, "%s", err.msg);
    else {
        json_t *days = json_array();
        for (size_t d = 0; d < w->ndays; d++) {
            time_t t = (time_t)((w->first_ms + d * DAY_MS) / 1000);
            struct tm tm;
            char day[16];
            gmtime_r(&t, &tm);
            strftime(day, sizeof day, "%Y-%m-%d", &tm);
            json_array_append_new(days, json_pack("{s:s,s:I,s:I,s:I,s:I}", "day", day, "start_ms",
                                                  (json_int_t)(w->first_ms + d * DAY_MS), "sessions",
                                                  (json_int_t)w->sessions[d], "messages", (json_int_t)w->messages[d],
                                                  "revenue", (json_int_t)w->revenue[d]));
        }
        rt_api_json(j, json_pack("{s:s,s:o}", "agent", a.name, "days", days));
    }
    rt_map_free(&w->seen);
    free(w);
}

/* ---- a datanet's contributors ------------------------------------------------------------------ */

typedef struct contributors {
    rt_api_job *j;
    json_t *items;
} contributors;

static int contributor_item(void *ud, const registry_contributor_t *c) {
    contributors *cs = ud;
    char addr[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(c->address, addr);
    json_t *o = json_pack("{s:s,s:I,s:I,s:I}", "address", addr, "accepted", (json_int_t)c->accepted, "pending",
                          (json_int_t)c->pending, "rejected", (json_int_t)c->rejected);
    ledger_account_t *acct;
    ledger_balance_t b;
    if (ledger_account(cs->j->srv->ledger, LEDGER_ACCOUNT_ADDRESS, addr, &acct, NULL) == ACC_OK &&
        ledger_balance(cs->j->srv->ledger, acct, false, &b, NULL) == ACC_OK) {
        json_object_set_new(o, "earned", json_integer((json_int_t)b.earned));
        json_object_set_new(o, "settled", json_integer((json_int_t)b.settled));
    }
    json_array_append_new(cs->items, o);
    return 0;
}

static void datanet_contributors(rt_api_job *j, registry_t *reg) {
    uint64_t limit;
    if (!rt_api_query_num(j, "limit", 1, 1000, 200, &limit)) return;
    contributors cs = {.j = j, .items = json_array()};
    acc_err err = {0};
    int rc = registry_datanet_contributors(reg, j->params[0], (size_t)limit, contributor_item, &cs, &err);
    if (rc) {
        json_decref(cs.items);
        rt_api_error(j, rc == ACC_EINVAL ? ACC_ENOTFOUND : rc, "%s", err.msg);
        return;
    }
    rt_api_json(j, json_pack("{s:s,s:o}", "datanet", j->params[0], "contributors", cs.items));
}

/* ---- one record -------------------------------------------------------------------------------- */

typedef struct named {
    int64_t id;
    char name[REGISTRY_NAME_MAX + 1];
} named;

static int datanet_named(void *ud, const registry_datanet_t *d) {
    named *n = ud;
    if (d->id != n->id) return 0;
    snprintf(n->name, sizeof n->name, "%s", d->name);
    return 1;
}

/* The datanet's name of a datanet id ("" when none: it cannot be, records keep theirs). */
static void datanet_name(registry_t *reg, int64_t id, char out[REGISTRY_NAME_MAX + 1]) {
    named n = {.id = id};
    registry_datanets_list(reg, datanet_named, &n, NULL);
    snprintf(out, REGISTRY_NAME_MAX + 1, "%s", n.name);
}

typedef struct record_out {
    registry_t *reg;
    json_t *o;
} record_out;

static int record_found(void *ud, const registry_record_t *r) {
    record_out *ro = ud;
    char name[REGISTRY_NAME_MAX + 1];
    datanet_name(ro->reg, r->datanet_id, name);
    ro->o = rt_record_json(r);
    json_object_set_new(ro->o, "datanet", json_string(name));
    return 0;
}

/* A record id of the path: a whole number above 0. */
static bool record_id(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v <= 0 || s[0] == '+' || s[0] == ' ') return false;
    *out = v;
    return true;
}

static void record_get(rt_api_job *j, registry_t *reg) {
    int64_t id;
    if (!record_id(j->params[0], &id)) {
        rt_api_error(j, ACC_EINVAL, "a record id is a whole number above 0, not '%.40s'", j->params[0]);
        return;
    }
    record_out ro = {.reg = reg};
    acc_err err = {0};
    int rc = registry_record_get(reg, id, record_found, &ro, &err);
    if (rc) rt_api_error(j, rc, "%s", err.msg);
    else rt_api_json(j, ro.o);
}

/* ---- what earned an address -------------------------------------------------------------------- */

typedef struct source {
    meter_resource_t resource;
    meter_role_t role;
    char name[METER_NAME_MAX + 1];
    uint64_t calls;
    ledger_amount_t amount;
} source;

typedef struct earn_walk {
    char address[METER_ADDRESS_SIZE];
    uint64_t scanned, limit;
    bool truncated;
    source *sources;
    size_t nsources, capsources;
    rt_map records; /* record id (decimal) -> (uintptr_t) calls */
    int rc;
} earn_walk;

static source *source_of(earn_walk *w, const meter_event_t *ev, meter_role_t role) {
    for (size_t i = 0; i < w->nsources; i++) /* a payee earns from few sources */
        if (w->sources[i].resource == ev->resource && w->sources[i].role == role &&
            strcmp(w->sources[i].name, ev->resource_name) == 0)
            return &w->sources[i];
    if (w->nsources == w->capsources) {
        size_t cap = w->capsources ? 2 * w->capsources : 16;
        source *v = realloc(w->sources, cap * sizeof *v);
        if (!v) return NULL;
        w->sources = v;
        w->capsources = cap;
    }
    source *s = &w->sources[w->nsources++];
    memset(s, 0, sizeof *s);
    s->resource = ev->resource;
    s->role = role;
    snprintf(s->name, sizeof s->name, "%s", ev->resource_name);
    return s;
}

/* Counts one call for each record a line's evidence ({"records": [ids]}) names. */
static int count_records(earn_walk *w, const meter_line_t *l) {
    if (!l->evidence_len) return ACC_OK;
    json_t *ev = json_loadb(l->evidence, l->evidence_len, 0, NULL);
    json_t *ids = json_object_get(ev, "records");
    size_t i;
    json_t *v;
    int rc = ACC_OK;
    json_array_foreach(ids, i, v) {
        if (!json_is_integer(v)) continue;
        char key[24];
        snprintf(key, sizeof key, "%" PRId64, (int64_t)json_integer_value(v));
        uintptr_t n = (uintptr_t)rt_map_get(&w->records, key);
        if (rt_map_put(&w->records, key, (void *)(n + 1)) != ACC_OK) {
            rc = ACC_ENOMEM;
            break;
        }
    }
    json_decref(ev);
    return rc;
}

static int earn_one(void *ud, const ledger_entry_t *e) {
    earn_walk *w = ud;
    if (w->scanned >= w->limit) {
        w->truncated = true;
        return ACC_ECANCELLED;
    }
    w->scanned++;
    meter_event_t ev;
    if (!charge_event(e, &ev)) return ACC_OK;
    int rc = ACC_OK;
    for (size_t i = 0; !rc && i < ev.nlines; i++) {
        const meter_line_t *l = &ev.lines[i];
        if (l->payee_kind != LEDGER_ACCOUNT_ADDRESS || strcasecmp(l->payee, w->address) != 0) continue;
        source *s = source_of(w, &ev, l->role);
        if (!s) rc = ACC_ENOMEM;
        else if (__builtin_add_overflow(s->amount, l->amount, &s->amount)) rc = ACC_ELIMIT;
        else {
            s->calls++;
            rc = count_records(w, l);
        }
    }
    meter_event_free(&ev);
    return rc;
}

static int by_amount(const void *a, const void *b) {
    const source *x = a, *y = b;
    if (x->amount != y->amount) return x->amount < y->amount ? 1 : -1;
    return strcmp(x->name, y->name);
}

typedef struct record_count {
    int64_t id;
    uint64_t calls;
} record_count;

static int by_calls(const void *a, const void *b) {
    const record_count *x = a, *y = b;
    if (x->calls != y->calls) return x->calls < y->calls ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int record_brief(void *ud, const registry_record_t *r) {
    record_out *ro = ud;
    char name[REGISTRY_NAME_MAX + 1];
    datanet_name(ro->reg, r->datanet_id, name);
    json_object_set_new(ro->o, "datanet", json_string(name));
    json_object_set_new(ro->o, "text", json_stringn(r->text, r->text_len));
    return 0;
}

static void earnings(rt_api_job *j, registry_t *reg) {
    uint8_t a[20];
    acc_err err = {0};
    if (eth_address_parse(j->params[0], strlen(j->params[0]), a, &err) != ACC_OK) {
        rt_api_error(j, ACC_EINVAL, "%s", err.msg);
        return;
    }
    earn_walk w = {0};
    eth_address_to_text(a, w.address);
    if (!rt_api_query_num(j, "scan", 1, 10000000, 100000, &w.limit)) return;
    int rc = ledger_scan(j->srv->ledger, 1, 0, true, earn_one, &w, &err);
    if (rc == ACC_ECANCELLED) rc = ACC_OK;
    if (rc == ACC_ENOMEM || rc == ACC_ELIMIT) acc_fail(&err, rc, "earnings: %s", rc == ACC_ENOMEM ? "out of memory" : "an amount overflows");
    record_count *recs = NULL;
    size_t nrecs = 0;
    if (!rc && w.records.count) {
        recs = calloc(w.records.count, sizeof *recs);
        if (!recs) rc = acc_fail(&err, ACC_ENOMEM, "earnings: out of memory");
        rt_map_entry *e;
        for (size_t i = 0; recs && rt_map_next(&w.records, &i, &e);)
            recs[nrecs++] = (record_count){strtoll(e->key, NULL, 10), (uint64_t)(uintptr_t)e->value};
        if (nrecs) qsort(recs, nrecs, sizeof *recs, by_calls);
    }
    if (rc) rt_api_error(j, rc, "%s", err.msg);
    else {
        if (w.nsources) qsort(w.sources, w.nsources, sizeof *w.sources, by_amount);
        json_t *sources = json_array(), *records = json_array();
        for (size_t i = 0; i < w.nsources; i++)
            json_array_append_new(sources, json_pack("{s:s,s:s,s:s,s:I,s:I}", "resource",
                                                     meter_resource_name(w.sources[i].resource), "name",
                                                     w.sources[i].name, "role", meter_role_name(w.sources[i].role),
                                                     "calls", (json_int_t)w.sources[i].calls, "amount",
                                                     (json_int_t)w.sources[i].amount));
        for (size_t i = 0; i < nrecs && i < EARNINGS_RECORDS_MAX; i++) {
            record_out ro = {.reg = reg,
                             .o = json_pack("{s:I,s:I}", "id", (json_int_t)recs[i].id, "calls",
                                            (json_int_t)recs[i].calls)};
            registry_record_get(reg, recs[i].id, record_brief, &ro, NULL);
            json_array_append_new(records, ro.o);
        }
        rt_api_json(j, json_pack("{s:s,s:o,s:o,s:I,s:I,s:b}", "address", w.address, "sources", sources, "records",
                                 records, "records_total", (json_int_t)nrecs, "scanned", (json_int_t)w.scanned,
                                 "truncated", w.truncated));
    }
    free(recs);
    free(w.sources);
    rt_map_free(&w.records);
}

/* ---- routes ------------------------------------------------------------------------------------ */

void rt_r_agent_usage(rt_req *r) { rt_api_route(r, RT_PUBLIC, agent_usage); }
void rt_r_datanet_contributors(rt_req *r) { rt_api_route(r, RT_PUBLIC, datanet_contributors); }
void rt_r_record(rt_req *r) { rt_api_route(r, RT_PUBLIC, record_get); }
void rt_r_earnings(rt_req *r) { rt_api_route(r, RT_PUBLIC, earnings); }
