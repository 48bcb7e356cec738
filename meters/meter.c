/*
 * meter.c: a metered call, from its reservation to its durable posting (meters.h).
 *
 * The work is split so that nothing here waits: meter_begin_* prices and reserves (ledger.h keeps
 * reservations in memory), meter_finish_* computes the attribution and queues one posting, and the
 * ledger's writer calls back once the posting is durable. A call writes one row (the posting, with
 * its transfers and this usage event packed in it): the ledger's measured cost per row is what
 * bounds metered calls per second (ARCHITECTURE.md, Money). The evidence (spans, rows, records)
 * is kept as data and stored compactly (event.c); its JSON is written only when an event is read
 * back, never on a call's path.
 */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meters/internal.h"
#include "runtime/base/invariant.h"

struct meter {
    ledger_t *l;
    meter_config_t cfg;
    ledger_account_t *operator;
    _Atomic uint64_t begun, finished, failed, refused, charged;
};

#define INLINE_LINES 8
#define INLINE_RECS 16

struct meter_call {
    meter_t *m;
    meter_resource_t resource;
    ledger_id_t id;
    ledger_account_t *payer;
    ledger_hold_t *hold;
    ledger_amount_t reserved;
    uint64_t start_ms, start_ns;
    uint64_t end_ns; /* fill_event's clock read, the ledger's too (post) */
    uint64_t in_max, out_max;
    bool has_agent, first_in_session;
    /* built by finish */
    meter_event_t ev;
    meter_line_t *lines;
    meter__line_ev_t *line_ev; /* each line's evidence */
    size_t nlines, cap;
    int64_t *recs; /* the records the lines' evidence names */
    size_t nrecs, recs_cap;
    meter__evidence_t evidence; /* the event's */
    acc_buf text;  /* a failed call's error, or a cut one's (meter_model_outcome_t.cut_why) */
    meter_done_fn done;
    void *ud;
    meter_ready_fn ready; /* meter_call_set_ready */
    void *ready_ud;
    /* From here on, filled as needed rather than zeroed (new_call): a call is allocated per
     * metered call, and these are most of its bytes. */
    meter_model_t model;     /* METER_MODEL */
    meter_dataset_t dataset; /* METER_DATASET */
    meter_agent_t agent;     /* when has_agent */
    char payer_name[METER_NAME_MAX + 1], request_id[METER_NAME_MAX + 1], session[METER_NAME_MAX + 1];
    meter_line_t inline_lines[INLINE_LINES];
    meter__line_ev_t inline_ev[INLINE_LINES];
    int64_t inline_recs[INLINE_RECS];
};

/* A call with its header zeroed (the rest is filled before use). */
static meter_call_t *new_call(void) {
    meter_call_t *c = malloc(sizeof *c);
    if (c) memset(c, 0, offsetof(meter_call_t, model));
    return c;
}

meter_config_t meter_config_default(void) {
    return (meter_config_t){.operator_fee_bps = 0, .deadline_ms = 0, .record_failures = true};
}

int meter_open(ledger_t *ledger, const meter_config_t *cfg, meter_t **out, acc_err *err) {
    meter_config_t c = cfg ? *cfg : meter_config_default();
    if (c.operator_fee_bps > METER_BPS)
        return acc_fail(err, ACC_EINVAL, "operator fee: %u bps is more than the whole (10000)", c.operator_fee_bps);
    if (!c.deadline_ms) c.deadline_ms = 10 * 60 * 1000;
    meter_t *m = calloc(1, sizeof *m);
    if (!m) return acc_fail(err, ACC_ENOMEM, "meter: out of memory");
    m->l = ledger;
    m->cfg = c;
    m->operator = ledger_system(ledger, LEDGER_SYSTEM_OPERATOR);
    *out = m;
    return ACC_OK;
}

void meter_close(meter_t *m) { free(m); }
ledger_t *meter_ledger(meter_t *m) { return m->l; }

void meter_stats(meter_t *m, meter_stats_t *out) {
    out->begun = atomic_load(&m->begun);
    out->finished = atomic_load(&m->finished);
    out->failed = atomic_load(&m->failed);
    out->refused = atomic_load(&m->refused);
    out->charged = atomic_load(&m->charged);
}

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int copy_name(char *dst, const char *src, const char *what, acc_err *err) {
    size_t n = src ? strlen(src) : 0;
    if (n > METER_NAME_MAX) return acc_fail(err, ACC_EINVAL, "%s: at most %d bytes", what, METER_NAME_MAX);
    memcpy(dst, src ? src : "", n + 1);
    return ACC_OK;
}

/* The markup and the operator's fee on a cost, and the total. */
static int add_fees(const meter_t *m, const meter_call_t *c, ledger_amount_t cost, bool markup_applies,
                    ledger_amount_t *markup, ledger_amount_t *fee, ledger_amount_t *total) {
    *markup = 0;
    if (markup_applies && c->has_agent && meter_fee(cost, c->agent.markup_bps, markup)) return ACC_ELIMIT;
    ledger_amount_t sub;
    if (__builtin_add_overflow(cost, *markup, &sub) || meter_fee(sub, m->cfg.operator_fee_bps, fee) ||
        __builtin_add_overflow(sub, *fee, total) || *total > LEDGER_AMOUNT_MAX)
        return ACC_ELIMIT;
    return ACC_OK;
}

/* The common part of meter_begin_*: the call, its copies of ctx, and the reservation of `most`. */
static int begin(meter_t *m, const meter_ctx_t *ctx, meter_resource_t resource, meter_call_t *c, bool markup_applies,
                 ledger_amount_t cost_max, meter_call_t **out, acc_err *err) {
    int rc = ACC_OK;
    ledger_amount_t markup, fee, total;
    if (!ctx->payer || !*ctx->payer) rc = acc_fail(err, ACC_EINVAL, "meter: no payer");
    if (!rc) rc = copy_name(c->payer_name, ctx->payer, "payer", err);
    if (!rc) rc = copy_name(c->request_id, ctx->request_id, "request id", err);
    if (!rc) rc = copy_name(c->session, ctx->session, "session", err);
    if (!rc && ctx->agent) {
        c->agent = *ctx->agent;
        c->has_agent = true;
        if (c->agent.markup_bps > 100 * METER_BPS)
            rc = acc_fail(err, ACC_EINVAL, "agent %s: markup of %u bps is past 100x", c->agent.name, c->agent.markup_bps);
    }
    if (!rc && add_fees(m, c, cost_max, markup_applies, &markup, &fee, &total))
        rc = acc_fail(err, ACC_ELIMIT, "meter: the most this call could cost overflows");
    if (!rc) rc = ledger_account(m->l, LEDGER_ACCOUNT_USER, c->payer_name, &c->payer, err);
    if (!rc) {
        c->m = m;
        c->resource = resource;
        c->start_ms = wall_ms();
        c->start_ns = mono_ns(); /* ledger_now_ms's clock, in ns */
        rc = ledger_reserve(m->l, c->payer, total, c->start_ns / 1000000 + m->cfg.deadline_ms, &c->hold, NULL, err);
        if (rc == ACC_EFUNDS) atomic_fetch_add(&m->refused, 1);
    }
    if (rc) {
        free(c);
        *out = NULL;
        return rc;
    }
    c->reserved = total;
    if (ctx->id && !ledger_id_is_zero(ctx->id)) c->id = *ctx->id;
    else ledger_id_new_at(&c->id, c->start_ms); /* one wall clock read for both */
    c->lines = c->inline_lines;
    c->line_ev = c->inline_ev;
    c->cap = INLINE_LINES;
    c->recs = c->inline_recs;
    c->recs_cap = INLINE_RECS;
    atomic_fetch_add(&m->begun, 1);
    *out = c;
    return ACC_OK;
}

int meter_begin_model(meter_t *m, const meter_ctx_t *ctx, const meter_model_t *model, uint64_t prompt_tokens_max,
                      uint64_t max_tokens, meter_call_t **call, acc_err *err) {
    uint32_t bps = model->owner_share_bps;
    for (size_t i = 0; i < model->nshares && i < METER_SHARES_MAX; i++) bps += model->shares[i].bps;
    if (model->nshares > METER_SHARES_MAX || bps > METER_BPS)
        return acc_fail(err, ACC_EINVAL, "model %s: owner share and fixed shares add up to more than the whole", model->name);
    ledger_amount_t most;
    if (meter_price_model(model, prompt_tokens_max, max_tokens, &most))
        return acc_fail(err, ACC_ELIMIT, "model %s: the most this call could cost overflows", model->name);
    meter_call_t *c = new_call();
    if (!c) return acc_fail(err, ACC_ENOMEM, "meter: out of memory");
    /* the shares in use only: the whole descriptor is mostly room for shares */
    memcpy(&c->model, model, offsetof(meter_model_t, shares));
    memcpy(c->model.shares, model->shares, model->nshares * sizeof model->shares[0]);
    c->in_max = prompt_tokens_max;
    c->out_max = max_tokens;
    return begin(m, ctx, METER_MODEL, c, true, most, call, err);
}

int meter_begin_dataset(meter_t *m, const meter_ctx_t *ctx, const meter_dataset_t *dataset, uint64_t limit,
                        meter_call_t **call, acc_err *err) {
    ledger_amount_t most;
    if (meter_price_dataset(dataset, limit, &most))
        return acc_fail(err, ACC_ELIMIT, "dataset %s: the most this query could cost overflows", dataset->name);
    meter_call_t *c = new_call();
    if (!c) return acc_fail(err, ACC_ENOMEM, "meter: out of memory");
    c->dataset = *dataset;
    c->out_max = limit;
    return begin(m, ctx, METER_DATASET, c, true, most, call, err);
}

int meter_begin_message(meter_t *m, const meter_ctx_t *ctx, bool first_in_session, meter_call_t **call, acc_err *err) {
    if (!ctx->agent) return acc_fail(err, ACC_EINVAL, "meter: a message needs its agent");
    ledger_amount_t cost = ctx->agent->price_per_message;
    if (first_in_session && __builtin_add_overflow(cost, ctx->agent->price_per_session, &cost))
        return acc_fail(err, ACC_ELIMIT, "agent %s: price overflows", ctx->agent->name);
    meter_call_t *c = new_call();
    if (!c) return acc_fail(err, ACC_ENOMEM, "meter: out of memory");
    c->first_in_session = first_in_session;
    return begin(m, ctx, METER_MESSAGE, c, false, cost, call, err);
}

ledger_amount_t meter_call_reserved(const meter_call_t *call) { return call->reserved; }
void meter_call_set_ready(meter_call_t *call, meter_ready_fn ready, void *ready_ud) {
    call->ready = ready;
    call->ready_ud = ready_ud;
}
const ledger_id_t *meter_call_id(const meter_call_t *call) { return &call->id; }

/* --- lines --- */

static meter_line_t *add_line(meter_call_t *c, meter_role_t role, ledger_account_kind_t kind, const char *payee,
                              uint64_t weight, ledger_amount_t amount) {
    if (c->nlines == c->cap) {
        size_t nc = c->cap * 2;
        meter_line_t *lines = malloc(nc * sizeof *lines);
        meter__line_ev_t *ev = malloc(nc * sizeof *ev);
        if (!lines || !ev) {
            free(lines);
            free(ev);
            return NULL;
        }
        memcpy(lines, c->lines, c->nlines * sizeof *lines);
        memcpy(ev, c->line_ev, c->nlines * sizeof *ev);
        if (c->lines != c->inline_lines) free(c->lines), free(c->line_ev);
        c->lines = lines;
        c->line_ev = ev;
        c->cap = nc;
    }
    meter_line_t *l = &c->lines[c->nlines];
    memset(l, 0, sizeof *l);
    l->role = role;
    l->payee_kind = kind;
    size_t plen = strnlen(payee, sizeof l->payee - 1);
    memcpy(l->payee, payee, plen);
    l->payee[plen] = '\0';
    l->weight = weight;
    l->amount = amount;
    c->line_ev[c->nlines++] = (meter__line_ev_t){.kind = METER__EV_NONE};
    return l;
}

/* Appends a record to the lines' evidence; -1 when out of memory. */
static int add_record(meter_call_t *c, int64_t record) {
    if (c->nrecs == c->recs_cap) {
        size_t nc = c->recs_cap * 2;
        int64_t *r = malloc(nc * sizeof *r);
        if (!r) return -1;
        memcpy(r, c->recs, c->nrecs * sizeof *r);
        if (c->recs != c->inline_recs) free(c->recs);
        c->recs = r;
        c->recs_cap = nc;
    }
    c->recs[c->nrecs++] = record;
    return 0;
}

/* Contributors and their summed weights, with the records behind each (for evidence). */
typedef struct payee_sum {
    const char *address;
    uint64_t weight;
    size_t first_record; /* index into the sorted record list */
} payee_sum_t;

typedef struct credit_ref {
    const char *address;
    int64_t record;
    uint64_t weight;
} credit_ref_t;

static int by_address_then_record(const void *a, const void *b) {
    const credit_ref_t *x = a, *y = b;
    int c = strcmp(x->address, y->address);
    if (c) return c;
    return x->record < y->record ? -1 : x->record > y->record;
}

/* Lines for contributors: `amount` split by their weights (each contributor's weight the sum of
 * its records'), in address order (deterministic), with {"records":[...]} evidence. */
static int contributor_lines(meter_call_t *c, meter_role_t role, credit_ref_t *refs, size_t n, ledger_amount_t amount) {
    qsort(refs, n, sizeof *refs, by_address_then_record);
    size_t npayees = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(refs[i].address, refs[i - 1].address) != 0) npayees++;
    uint64_t wstack[32];
    ledger_amount_t pstack[32];
    uint64_t *w = npayees <= 32 ? wstack : malloc(npayees * sizeof *w);
    ledger_amount_t *parts = npayees <= 32 ? pstack : malloc(npayees * sizeof *parts);
    int rc = (!w || !parts) ? ACC_ENOMEM : ACC_OK;
    for (size_t i = 0, k = 0; !rc && i < n; i++) {
        bool first = i == 0 || strcmp(refs[i].address, refs[i - 1].address) != 0;
        if (first) w[k++] = 0;
        if (__builtin_add_overflow(w[k - 1], refs[i].weight, &w[k - 1])) rc = ACC_ELIMIT;
    }
    if (!rc) rc = meter_split(amount, w, npayees, parts);
    for (size_t i = 0, k = 0; !rc && i < n; k++) {
        meter_line_t *l = add_line(c, role, LEDGER_ACCOUNT_ADDRESS, refs[i].address, w[k], parts[k]);
        if (!l) {
            rc = ACC_ENOMEM;
            break;
        }
        meter__line_ev_t *le = &c->line_ev[c->nlines - 1];
        *le = (meter__line_ev_t){.kind = METER__EV_RECORDS, .off = c->nrecs};
        size_t j = i;
        for (; !rc && j < n && strcmp(refs[j].address, refs[i].address) == 0; j++)
            if ((j == i || refs[j].record != refs[j - 1].record) && add_record(c, refs[j].record)) rc = ACC_ENOMEM;
        le->n = c->nrecs - le->off;
        i = j;
    }
    if (w != wstack) free(w);
    if (parts != pstack) free(parts);
    return rc;
}

/* --- finishing --- */

static void fill_event(meter_call_t *c, ledger_state_t state, uint64_t units_in, uint64_t units_out,
                       ledger_amount_t cost, int error_code, const char *error) {
    meter_event_t *e = &c->ev;
    e->id = c->id;
    e->state = state;
    e->resource = c->resource;
    e->resource_name = c->resource == METER_MODEL     ? c->model.name
                       : c->resource == METER_DATASET ? c->dataset.name
                                                      : c->agent.name;
    e->payer = c->payer_name;
    e->request_id = c->request_id;
    e->session = c->session;
    e->agent = c->has_agent ? c->agent.name : "";
    e->agent_version = c->has_agent ? c->agent.version : "";
    e->start_ms = c->start_ms;
    c->end_ns = mono_ns();
    e->latency_us = (c->end_ns - c->start_ns) / 1000;
    e->units_in = units_in;
    e->units_out = units_out;
    e->reserved = c->reserved;
    e->cost = cost;
    e->error_code = error_code;
    e->error = error ? error : "";
}

/* The receipt's event: its lines, without evidence (the stored event has it, written out). */
static void fix_lines(meter_call_t *c) {
    c->ev.lines = c->lines;
    c->ev.nlines = c->nlines;
}

static void free_call(meter_call_t *c) {
    if (c->lines != c->inline_lines) free(c->lines), free(c->line_ev);
    if (c->recs != c->inline_recs) free(c->recs);
    acc_buf_free(&c->text);
    free(c);
}

/* The writer: the receipt of a posting's commit (event: the call's, or NULL). */
static meter_receipt_t receipt_of(const ledger_result_t *res, const meter_event_t *event) {
    meter_receipt_t r = {.status = res->status, .seq = res->seq, .duplicate = res->duplicate, .event = event};
    if (res->status) r.err = res->err; /* the error's text is read only when there is one */
    return r;
}

/* The writer: a posted charge's commit counted, charged or failed. */
static void count_commit(meter_t *m, const ledger_result_t *res, ledger_amount_t cost) {
    if (res->status == ACC_OK && !res->duplicate) atomic_fetch_add(&m->charged, cost);
    else atomic_fetch_add(&m->failed, 1);
}

static void on_posted(void *ud, const ledger_result_t *res) {
    meter_call_t *c = ud;
    meter_receipt_t r = receipt_of(res, &c->ev);
    if (c->ev.state == LEDGER_POSTED) count_commit(c->m, res, c->ev.cost);
    if (c->done) c->done(c->ud, &r);
    free_call(c);
}

/* What the writer's callback needs of a call whose memory went at its submission (a call given
 * meter_call_set_ready, which had its event then). */
typedef struct posted {
    meter_t *m;
    meter_done_fn done;
    void *ud;
    ledger_amount_t cost;
} posted_t;

static void on_posted_lean(void *ud, const ledger_result_t *res) {
    posted_t *t = ud;
    meter_receipt_t r = receipt_of(res, NULL);
    count_commit(t->m, res, t->cost); /* only posted charges are given a ready callback */
    t->done(t->ud, &r);
    free(t);
}

/* Encodes the event, turns its lines into transfers (one per payee account and code) and queues
 * the posting. Consumes c (done or freed). */
static int post(meter_call_t *c, ledger_state_t state, acc_err *err) {
    meter_t *m = c->m;
    ledger_transfer_t tstack[16], *t = c->nlines <= 16 ? tstack : malloc(c->nlines * sizeof *t);
    int rc = t ? ACC_OK : acc_fail(err, ACC_ENOMEM, "meter: out of memory");
    size_t nt = 0;
    ledger_amount_t total = 0;
    for (size_t i = 0; !rc && i < c->nlines; i++) {
        const meter_line_t *l = &c->lines[i];
        if (!l->amount) continue;
        ledger_account_t *a = l->payee_kind == LEDGER_ACCOUNT_SYSTEM ? ledger_system(m->l, l->payee) : NULL;
        if (!a && (rc = ledger_account(m->l, l->payee_kind, l->payee, &a, err))) break;
        ledger_code_t code = meter__line_code(c->resource, l->role);
        size_t j = 0;
        while (j < nt && !(t[j].credit == a && t[j].code == code)) j++;
        if (j == nt) t[nt++] = (ledger_transfer_t){.debit = c->payer, .credit = a, .amount = 0, .code = code};
        t[j].amount += l->amount; /* no overflow: the lines add up to the cost, checked below */
        total += l->amount;
    }
    ACC_INVARIANT(rc || total == c->ev.cost, "lines add up to %" PRIu64 ", the cost is %" PRIu64, total, c->ev.cost);
    ACC_INVARIANT(rc || c->ev.cost <= c->reserved, "cost %" PRIu64 " above the reservation %" PRIu64, c->ev.cost,
                  c->reserved);
    /* The encoded event lives only until the ledger has its copy (the posting's), not until the
     * commit: its memory is reused warm by the next call instead of waiting with hundreds of
     * others for their batch's commit. */
    acc_buf bytes = ACC_BUF_INIT;
    if (!rc) {
        c->evidence.lines = c->line_ev;
        c->evidence.records = c->recs;
        meter__event_encode(&c->ev, &c->evidence, &bytes);
        if (acc_buf_failed(&bytes) || acc_buf_failed(&c->text)) rc = acc_fail(err, ACC_ENOMEM, "meter: out of memory");
    }
    /* Who hears of the commit: a call given a ready callback (or none to hear of it: a failed
     * call's voided posting) is freed once the ledger has its posting, the rest waits with it. */
    posted_t *lean = NULL;
    bool keep = c->done && !c->ready;
    if (!rc && c->done && c->ready) {
        if (!(lean = malloc(sizeof *lean))) rc = acc_fail(err, ACC_ENOMEM, "meter: out of memory");
        else *lean = (posted_t){.m = m, .done = c->done, .ud = c->ud, .cost = c->ev.cost};
    }
    if (!rc && c->ready) c->ready(c->ready_ud, &c->ev);
    if (!rc) {
        ledger_posting_t p = {.id = c->id, .state = state, .code = meter__resource_code(c->resource), .hold = c->hold,
                              .transfers = t, .ntransfers = nt, .event = bytes.data, .event_len = bytes.len,
                              .now_ns = c->end_ns};
        c->hold = NULL; /* the posting owns it now, whatever happens */
        rc = keep ? ledger_submit(m->l, &p, on_posted, c, err)
             : ledger_submit(m->l, &p, lean ? on_posted_lean : NULL, lean, err);
    }
    acc_buf_free(&bytes);
    if (t != tstack) free(t);
    if (rc) {
        if (c->hold) ledger_void(m->l, c->hold);
        if (state == LEDGER_POSTED) atomic_fetch_add(&m->failed, 1);
        free(lean);
        free_call(c);
        return rc;
    }
    if (state == LEDGER_POSTED) atomic_fetch_add(&m->finished, 1);
    if (!keep) free_call(c);
    return ACC_OK;
}

/* Lines for the markup and the operator's fee, given the cost before them. */
static int fee_lines(meter_call_t *c, ledger_amount_t cost, bool markup_applies, ledger_amount_t *total) {
    ledger_amount_t markup, fee;
    if (add_fees(c->m, c, cost, markup_applies, &markup, &fee, total)) return ACC_ELIMIT;
    if (markup && !add_line(c, METER_ROLE_AUTHOR, LEDGER_ACCOUNT_ADDRESS, c->agent.author, c->agent.markup_bps, markup))
        return ACC_ENOMEM;
    if (fee && !add_line(c, METER_ROLE_OPERATOR, LEDGER_ACCOUNT_SYSTEM, LEDGER_SYSTEM_OPERATOR,
                         c->m->cfg.operator_fee_bps, fee))
        return ACC_ENOMEM;
    return ACC_OK;
}

static int finish_failed(meter_call_t *c, int rc, acc_err *err, const char *what) {
    if (rc == ACC_ENOMEM) acc_fail(err, rc, "meter: out of memory");
    else if (rc == ACC_ELIMIT) acc_fail(err, rc, "meter: %s: amounts overflow", what);
    ledger_void(c->m->l, c->hold);
    c->hold = NULL;
    atomic_fetch_add(&c->m->failed, 1);
    free_call(c);
    return rc;
}

int meter_finish_model(meter_call_t *c, const meter_model_outcome_t *o, meter_done_fn done, void *ud, acc_err *err) {
    if (c->resource != METER_MODEL) return finish_failed(c, acc_fail(err, ACC_EMISUSE, "meter: not a model call"), err, "");
    c->done = done;
    c->ud = ud;
    const meter_model_t *md = &c->model;
    uint64_t in = o->in_tokens < c->in_max ? o->in_tokens : c->in_max;
    uint64_t out = o->out_tokens < c->out_max ? o->out_tokens : c->out_max;
    ledger_amount_t cost;
    int rc = meter_price_model(md, in, out, &cost);
    /* 1. owner share, declared shares, the data share */
    uint64_t w[METER_SHARES_MAX + 2];
    ledger_amount_t parts[METER_SHARES_MAX + 2];
    size_t n = 0;
    w[n++] = md->owner_share_bps;
    uint32_t declared = md->owner_share_bps;
    for (size_t i = 0; i < md->nshares; i++) w[n++] = md->shares[i].bps, declared += md->shares[i].bps;
    w[n++] = METER_BPS - declared;
    if (!rc) rc = meter_split(cost, w, n, parts);
    ledger_amount_t owner = rc ? 0 : parts[0], data = rc ? 0 : parts[n - 1];
    /* 2. the data share: covered tokens to the spans' contributors, the rest to the owner */
    uint64_t T = o->output_norm_tokens, C = o->covered_tokens < T ? o->covered_tokens : T;
    bool spans = !rc && data && C && o->ncredits;
    ledger_amount_t covered = 0;
    if (spans) {
        uint64_t cw[2] = {C, T - C};
        ledger_amount_t cp[2];
        rc = meter_split(data, cw, 2, cp);
        covered = cp[0];
        owner += cp[1];
    } else {
        owner += data;
    }
    if (!rc && o->nspans)
        c->evidence = (meter__evidence_t){.kind = METER__EV_SPANS, .output_tokens = T, .covered_tokens = C,
                                          .output = o->output, .output_len = o->output_len, .nspans = o->nspans,
                                          .spans = o->spans};
    if (!rc && owner && !add_line(c, METER_ROLE_OWNER, LEDGER_ACCOUNT_ADDRESS, md->owner, md->owner_share_bps, owner))
        rc = ACC_ENOMEM;
    for (size_t i = 0; !rc && i < md->nshares; i++)
        if (parts[1 + i] &&
            !add_line(c, METER_ROLE_SHARE, LEDGER_ACCOUNT_ADDRESS, md->shares[i].address, md->shares[i].bps, parts[1 + i]))
            rc = ACC_ENOMEM;
    if (!rc && spans) {
        credit_ref_t stack[32], *refs = o->ncredits <= 32 ? stack : malloc(o->ncredits * sizeof *refs);
        if (!refs) rc = ACC_ENOMEM;
        for (size_t i = 0; !rc && i < o->ncredits; i++)
            refs[i] = (credit_ref_t){o->credits[i].contributor, o->credits[i].record, o->credits[i].weight};
        if (!rc) rc = contributor_lines(c, METER_ROLE_SPAN, refs, o->ncredits, covered);
        if (refs && refs != stack) free(refs);
    }
    ledger_amount_t total = 0;
    if (!rc) rc = fee_lines(c, cost, true, &total);
    if (rc) return finish_failed(c, rc, err, md->name);
    const char *cut = NULL;
    if (o->cut_code) { /* the event's error is in the call's memory until it is posted */
        acc_buf_reset(&c->text);
        acc_buf_printf(&c->text, "%.*s", METER_ERROR_MAX, o->cut_why ? o->cut_why : "");
        cut = c->text.data ? c->text.data : "";
    }
    fill_event(c, LEDGER_POSTED, in, out, total, o->cut_code, cut);
    fix_lines(c);
    return post(c, LEDGER_POSTED, err);
}

/* A rank score as an integer weight: millionths, rounded, at least 1 (FTS5's BM25 is a double;
 * it is quantized here, before any money is computed from it). */
uint64_t meter__score_weight(double score) {
    if (!(score > 0)) return 1;
    if (score > 1e12) return UINT64_C(1000000000000000000);
    uint64_t w = (uint64_t)llround(score * 1e6);
    return w ? w : 1;
}

int meter_finish_dataset(meter_call_t *c, const meter_dataset_outcome_t *o, meter_done_fn done, void *ud,
                         acc_err *err) {
    if (c->resource != METER_DATASET)
        return finish_failed(c, acc_fail(err, ACC_EMISUSE, "meter: not a dataset query"), err, "");
    c->done = done;
    c->ud = ud;
    size_t n = o->nrows < c->out_max ? o->nrows : (size_t)c->out_max;
    ledger_amount_t cost;
    int rc = meter_price_dataset(&c->dataset, n, &cost);
    if (!rc && n) c->evidence = (meter__evidence_t){.kind = METER__EV_ROWS, .nrows = n, .rows = o->rows};
    if (!rc && cost) {
        if (n == 0) {
            if (!add_line(c, METER_ROLE_OWNER, LEDGER_ACCOUNT_ADDRESS, c->dataset.owner, 1, cost)) rc = ACC_ENOMEM;
        } else {
            credit_ref_t stack[32], *refs = n <= 32 ? stack : malloc(n * sizeof *refs);
            if (!refs) rc = ACC_ENOMEM;
            for (size_t i = 0; !rc && i < n; i++)
                refs[i] = (credit_ref_t){o->rows[i].contributor, o->rows[i].record, meter__score_weight(o->rows[i].score)};
            if (!rc) rc = contributor_lines(c, METER_ROLE_RETRIEVAL, refs, n, cost);
            if (refs && refs != stack) free(refs);
        }
    }
    ledger_amount_t total = 0;
    if (!rc) rc = fee_lines(c, cost, true, &total);
    if (rc) return finish_failed(c, rc, err, c->dataset.name);
    fill_event(c, LEDGER_POSTED, c->out_max, n, total, 0, NULL);
    fix_lines(c);
    return post(c, LEDGER_POSTED, err);
}

int meter_finish_message(meter_call_t *c, meter_done_fn done, void *ud, acc_err *err) {
    if (c->resource != METER_MESSAGE)
        return finish_failed(c, acc_fail(err, ACC_EMISUSE, "meter: not a message"), err, "");
    c->done = done;
    c->ud = ud;
    ledger_amount_t cost = c->agent.price_per_message + (c->first_in_session ? c->agent.price_per_session : 0);
    int rc = ACC_OK;
    if (cost && !add_line(c, METER_ROLE_AUTHOR, LEDGER_ACCOUNT_ADDRESS, c->agent.author, 1, cost)) rc = ACC_ENOMEM;
    if (!rc && cost)
        c->line_ev[c->nlines - 1] = (meter__line_ev_t){.kind = METER__EV_PRICE, .per_message = c->agent.price_per_message,
                                                       .per_session = c->first_in_session ? c->agent.price_per_session : 0};
    ledger_amount_t total = 0;
    if (!rc) rc = fee_lines(c, cost, false, &total);
    if (rc) return finish_failed(c, rc, err, c->agent.name);
    fill_event(c, LEDGER_POSTED, 1, 1, total, 0, NULL);
    fix_lines(c);
    return post(c, LEDGER_POSTED, err);
}

void meter_fail(meter_call_t *c, int code, const char *why) {
    if (!c) return;
    meter_t *m = c->m;
    atomic_fetch_add(&m->failed, 1);
    if (!m->cfg.record_failures) {
        ledger_void(m->l, c->hold);
        c->hold = NULL;
        free_call(c);
        return;
    }
    c->nlines = 0;
    c->nrecs = 0;
    c->evidence = (meter__evidence_t){.kind = METER__EV_NONE};
    c->done = NULL;
    c->ready = NULL; /* a failed call has no event to hand over */
    acc_buf_reset(&c->text);
    acc_buf_printf(&c->text, "%.*s", METER_ERROR_MAX, why ? why : acc_status_name(code));
    fix_lines(c);
    fill_event(c, LEDGER_VOIDED, 0, 0, 0, code ? code : ACC_ECANCELLED, c->text.data ? c->text.data : "");
    /* The voided posting carries the hold, which the ledger voids whole; the event is written
     * when the writer next commits, and nobody waits for it. */
    post(c, LEDGER_VOIDED, NULL);
}
