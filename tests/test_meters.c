/*
 * test_meters.c: metering (meters/meters.h): splits (property tests against a reference over many
 * random cases), fees and prices, a model call, a dataset query and a message each reserved,
 * attributed, posted and checked against the ledger; insufficient funds; failures that void; units
 * past their bounds; usage events round-tripping; and the ledger check catching an event whose
 * lines do not match its transfers.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "meters/internal.h"
#include "meters/meters.h"
#include "tests/check.h"

typedef unsigned __int128 u128;

static char dir[128];
static int ndb;

static const char *fresh_path(void) {
    static char path[256];
    snprintf(path, sizeof path, "%s/m%d.db", dir, ++ndb);
    return path;
}

/* --- splits --- */

/* The reference: floor shares, then +1 to the largest exact remainders, ties to the lower index,
 * found by scanning (quadratic, obviously right). */
static void reference_split(uint64_t total, const uint64_t *w, size_t n, uint64_t *out) {
    u128 sum = 0;
    for (size_t i = 0; i < n; i++) sum += w[i];
    uint64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint64_t)(((u128)total * w[i]) / sum);
        given += out[i];
    }
    char *got = calloc(n, 1);
    for (uint64_t k = 0; k < total - given; k++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (got[i]) continue;
            u128 r = ((u128)total * w[i]) % sum;
            if (best == n || r > ((u128)total * w[best]) % sum) best = i;
        }
        got[best] = 1;
        out[best]++;
    }
    free(got);
}

static void test_split_properties_over_random_cases(void) {
    test_seed("ACCRUE_METERS_SEED", 12);
    uint64_t w[64], parts[64], again[64], ref[64];
    int bad_sum = 0, bad_ref = 0, bad_det = 0, bad_near = 0, bad_order = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 1 + test_rand() % 64;
        int shape = iter % 4;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = test_rand();
            w[i] = shape == 0 ? r % 10 : shape == 1 ? r % 10001 : shape == 2 ? r >> (r % 64) : (r % 3 ? 7 : 0);
        }
        w[test_rand() % n] |= 1; /* at least one nonzero weight */
        uint64_t total = iter % 3 == 0 ? test_rand() % 1000 : iter % 3 == 1 ? test_rand() >> 1 : LEDGER_AMOUNT_MAX;
        if (meter_split(total, w, n, parts) != ACC_OK) {
            bad_sum++;
            continue;
        }
        meter_split(total, w, n, again);
        u128 sum = 0, wsum = 0;
        for (size_t i = 0; i < n; i++) sum += parts[i], wsum += w[i];
        if (sum != total) bad_sum++;
        if (memcmp(parts, again, n * sizeof *parts)) bad_det++;
        for (size_t i = 0; i < n; i++) {
            /* within one unit of the exact share: |part * W - total * w| < W */
            u128 a = (u128)parts[i] * wsum, b = (u128)total * w[i];
            if ((a > b ? a - b : b - a) >= wsum) bad_near++;
            if (w[i] == 0 && parts[i]) bad_near++;
            for (size_t j = 0; j < n; j++)
                if (w[i] > w[j] && parts[i] < parts[j]) bad_order++;
        }
        if (n <= 16 && total < 100000) {
            reference_split(total, w, n, ref);
            if (memcmp(parts, ref, n * sizeof *parts)) bad_ref++;
        }
    }
    CHECK_EQ(bad_sum, 0);
    CHECK_EQ(bad_det, 0);
    CHECK_EQ(bad_near, 0);
    CHECK_EQ(bad_order, 0);
    CHECK_EQ(bad_ref, 0);
}

static void test_split_edges(void) {
    uint64_t w[3] = {1, 1, 1}, p[3];
    CHECK(meter_split(10, w, 3, p) == ACC_OK);
    CHECK(p[0] == 4 && p[1] == 3 && p[2] == 3); /* ties: the lower index first */
    uint64_t z[2] = {0, 0};
    CHECK(meter_split(5, z, 2, p) == ACC_EINVAL);
    CHECK(meter_split(0, z, 2, p) == ACC_OK && p[0] == 0 && p[1] == 0);
    CHECK(meter_split(5, w, 0, p) == ACC_EINVAL);
    uint64_t big[2] = {UINT64_MAX, UINT64_MAX};
    CHECK(meter_split(LEDGER_AMOUNT_MAX, big, 2, p) == ACC_OK && p[0] + p[1] == LEDGER_AMOUNT_MAX);
    /* many parts (past the on-stack sort) */
    enum { N = 5000 };
    static uint64_t ww[N], pp[N];
    for (int i = 0; i < N; i++) ww[i] = 1 + (uint64_t)i % 7;
    CHECK(meter_split(123457, ww, N, pp) == ACC_OK);
    uint64_t s = 0;
    for (int i = 0; i < N; i++) s += pp[i];
    CHECK_EQ(s, 123457);
}

static void test_fees_and_prices(void) {
    ledger_amount_t f;
    CHECK(meter_fee(10000, 250, &f) == ACC_OK && f == 250);
    CHECK(meter_fee(3, 5000, &f) == ACC_OK && f == 2); /* 1.5 rounds half up */
    CHECK(meter_fee(1, 4999, &f) == ACC_OK && f == 0);
    CHECK(meter_fee(LEDGER_AMOUNT_MAX, 10000, &f) == ACC_OK && f == LEDGER_AMOUNT_MAX);
    CHECK(meter_fee(LEDGER_AMOUNT_MAX, 10001, &f) == ACC_ELIMIT);
    meter_model_t m = {.price_per_call = 100, .price_per_1k_in = 30, .price_per_1k_out = 60};
    ledger_amount_t c;
    CHECK(meter_price_model(&m, 0, 0, &c) == ACC_OK && c == 100);
    CHECK(meter_price_model(&m, 1000, 1000, &c) == ACC_OK && c == 190);
    CHECK(meter_price_model(&m, 1, 0, &c) == ACC_OK && c == 101); /* 0.03 rounds up */
    CHECK(meter_price_model(&m, 10, 20, &c) == ACC_OK && c == 102); /* (300 + 1200) / 1000 = 1.5 -> 2 */
    m.price_per_1k_out = LEDGER_AMOUNT_MAX;
    CHECK(meter_price_model(&m, 0, UINT64_MAX, &c) == ACC_ELIMIT);
    meter_dataset_t d = {.price_per_query = 5, .price_per_record = 2};
    CHECK(meter_price_dataset(&d, 10, &c) == ACC_OK && c == 25);
    d.price_per_record = LEDGER_AMOUNT_MAX;
    CHECK(meter_price_dataset(&d, 2, &c) == ACC_ELIMIT);
}

/* --- metering against a ledger --- */

typedef struct world {
    ledger_t *l;
    meter_t *m;
    const char *path;
} world_t;

static world_t open_world(uint32_t operator_bps) {
    world_t w = {0};
    w.path = fresh_path();
    acc_err err = {0};
    CHECK_MSG(ledger_open(w.path, &(ledger_opts_t){.no_sync = true}, &w.l, &err) == ACC_OK, "%s", err.msg);
    meter_config_t cfg = meter_config_default();
    cfg.operator_fee_bps = operator_bps;
    CHECK(meter_open(w.l, &cfg, &w.m, &err) == ACC_OK);
    return w;
}

static void close_world(world_t *w) {
    acc_err err = {0};
    CHECK_MSG(ledger_check(w->l, meter_check_event, w->l, NULL, &err) == ACC_OK, "check: %s", err.msg);
    meter_close(w->m);
    ledger_close(w->l);
}

static void topup(world_t *w, const char *user, ledger_amount_t amount) {
    ledger_account_t *a;
    ledger_account(w->l, LEDGER_ACCOUNT_USER, user, &a, NULL);
    ledger_transfer_t t = {ledger_system(w->l, LEDGER_SYSTEM_EXTERNAL), a, amount, LEDGER_CODE_TOPUP};
    ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &t, .ntransfers = 1};
    ledger_id_new(&p.id);
    ledger_result_t r;
    CHECK(ledger_submit_wait(w->l, &p, &r, NULL) == ACC_OK);
}

static ledger_balance_t balance(world_t *w, ledger_account_kind_t kind, const char *name) {
    ledger_account_t *a;
    ledger_balance_t b = {0};
    if (ledger_account(w->l, kind, name, &a, NULL) == ACC_OK) ledger_balance(w->l, a, false, &b, NULL);
    return b;
}

/* Waits for a call's receipt and keeps a copy of what the tests look at. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
    int status;
    uint64_t seq;
    ledger_amount_t cost;
    size_t nlines;
    meter_line_t lines[32];
    char evidence[32][256];
    char event_evidence[2048];
} waiter_t;

static void on_done(void *ud, const meter_receipt_t *r) {
    waiter_t *w = ud;
    pthread_mutex_lock(&w->mu);
    w->status = r->status;
    w->seq = r->seq;
    w->cost = r->event->cost;
    w->nlines = r->event->nlines < 32 ? r->event->nlines : 32;
    for (size_t i = 0; i < w->nlines; i++) {
        w->lines[i] = r->event->lines[i];
        w->lines[i].evidence = NULL;
    }
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void wait_done(waiter_t *w) {
    pthread_mutex_lock(&w->mu);
    while (!w->done) pthread_cond_wait(&w->cond, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* The evidence of the call w waited for, as the stored event says (a receipt carries none: it is
 * written out when the event is read back). */
static int evidence_of(void *ud, const ledger_entry_t *e) {
    waiter_t *w = ud;
    meter_event_t ev;
    acc_err err = {0};
    CHECK_MSG(meter_event_decode(e->event, e->event_len, &ev, &err) == ACC_OK, "%s", err.msg);
    CHECK(ev.nlines == w->nlines);
    for (size_t i = 0; i < ev.nlines && i < w->nlines; i++) {
        CHECK(ev.lines[i].role == w->lines[i].role && strcmp(ev.lines[i].payee, w->lines[i].payee) == 0 &&
              ev.lines[i].amount == w->lines[i].amount && ev.lines[i].weight == w->lines[i].weight);
        snprintf(w->evidence[i], sizeof w->evidence[i], "%.*s", (int)ev.lines[i].evidence_len, ev.lines[i].evidence);
    }
    snprintf(w->event_evidence, sizeof w->event_evidence, "%.*s", (int)ev.evidence_len, ev.evidence ? ev.evidence : "");
    meter_event_free(&ev);
    return ACC_OK;
}

static void wait_stored(ledger_t *l, waiter_t *w) {
    wait_done(w);
    CHECK(w->status == ACC_OK && w->seq > 0);
    CHECK(ledger_scan(l, w->seq, w->seq, false, evidence_of, w, NULL) == ACC_OK);
}

#define WAITER_INIT {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER}

static const meter_line_t *line_for(const waiter_t *w, meter_role_t role, const char *payee) {
    for (size_t i = 0; i < w->nlines; i++)
        if (w->lines[i].role == role && strcmp(w->lines[i].payee, payee) == 0) return &w->lines[i];
    return NULL;
}

#define OWNER "0x1111111111111111111111111111111111111111"
#define SHARE "0x2222222222222222222222222222222222222222"
#define ALICE "0xAaaaAaaaaAaAaAaaaAAAaAAaAaaAAAaAAAaaaaaA"
#define BOB "0xBbbbBbbBBbBBbBbbbBbBBBbbbBbBBbBbbbBBBBbB"
#define AUTHOR "0x4444444444444444444444444444444444444444"

static meter_model_t test_model(void) {
    meter_model_t m = {.name = "demo/fruit-gen", .owner = OWNER, .price_per_call = 1000, .price_per_1k_in = 2000,
                       .price_per_1k_out = 4000, .owner_share_bps = 3000, .nshares = 1};
    snprintf(m.shares[0].address, sizeof m.shares[0].address, "%s", SHARE);
    m.shares[0].bps = 1000;
    return m;
}

static void test_model_call_reserved_attributed_posted(void) {
    world_t w = open_world(500); /* operator 5 % */
    topup(&w, "demo", 1000000);
    meter_model_t model = test_model();
    meter_agent_t agent = {.name = "fruit-bot", .version = "1.0.0", .author = AUTHOR, .markup_bps = 1000};
    meter_ctx_t ctx = {.payer = "demo", .request_id = "msg-1", .session = "s-1", .agent = &agent};
    meter_call_t *call;
    acc_err err = {0};
    CHECK_MSG(meter_begin_model(w.m, &ctx, &model, 50, 100, &call, &err) == ACC_OK, "%s", err.msg);
    /* most: 1000 + ceil((50*2000 + 100*4000)/1000) = 1500; markup 150; fee 5% of 1650 = 82.5 -> 83 */
    CHECK_EQ(meter_call_reserved(call), 1733);
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_USER, "demo").pending, 1733);
    /* The output: 40 normalised tokens, 30 inside spans found in records of Alice (weights 3) and
     * Bob (weight 1). */
    int64_t recs_a[] = {11, 12}, recs_b[] = {21};
    const char *out = "Grapes grow in clusters on vines, and vines like sun.";
    meter_span_t spans[] = {{0, 32, 6, 2, recs_a}, {38, 52, 4, 1, recs_b}};
    meter_credit_t credits[] = {{11, ALICE, 2}, {12, ALICE, 1}, {21, BOB, 1}};
    meter_model_outcome_t o = {.in_tokens = 20, .out_tokens = 60, .output = out, .output_len = strlen(out),
                               .output_norm_tokens = 40, .covered_tokens = 30, .nspans = 2, .spans = spans,
                               .ncredits = 3, .credits = credits};
    waiter_t wt = WAITER_INIT;
    CHECK_MSG(meter_finish_model(call, &o, on_done, &wt, &err) == ACC_OK, "%s", err.msg);
    wait_stored(w.l, &wt);
    CHECK_EQ(wt.status, ACC_OK);
    /* cost: 1000 + ceil((20*2000 + 60*4000)/1000) = 1280. Shares [3000, 1000, 6000] bps:
     * owner 384, share 128, data 768. Data: 30/40 covered -> 576 to spans, 192 to the owner.
     * Spans: Alice 3/4 -> 432, Bob 1/4 -> 144. Markup 128; fee 5% of 1408 = 70.4 -> 70. */
    CHECK_EQ(wt.cost, 1478);
    const meter_line_t *l;
    CHECK((l = line_for(&wt, METER_ROLE_OWNER, OWNER)) && l->amount == 384 + 192);
    CHECK((l = line_for(&wt, METER_ROLE_SHARE, SHARE)) && l->amount == 128);
    CHECK((l = line_for(&wt, METER_ROLE_SPAN, ALICE)) && l->amount == 432 && l->weight == 3);
    CHECK((l = line_for(&wt, METER_ROLE_SPAN, BOB)) && l->amount == 144);
    CHECK((l = line_for(&wt, METER_ROLE_AUTHOR, AUTHOR)) && l->amount == 128);
    CHECK((l = line_for(&wt, METER_ROLE_OPERATOR, "operator")) && l->amount == 70);
    /* stored as data, written out as the JSON it always was */
    CHECK_STREQ(wt.event_evidence,
                "{\"output_tokens\":40,\"covered_tokens\":30,\"spans\":[{\"start\":0,\"end\":32,\"tokens\":6,"
                "\"text\":\"Grapes grow in clusters on vines\",\"records\":[11,12]},{\"start\":38,\"end\":52,\"tokens\":4,"
                "\"text\":\"vines like sun\",\"records\":[21]}]}");
    for (size_t i = 0; i < wt.nlines; i++)
        if (wt.lines[i].role == METER_ROLE_SPAN && strcmp(wt.lines[i].payee, ALICE) == 0)
            CHECK_STREQ(wt.evidence[i], "{\"records\":[11,12]}");
    ledger_balance_t demo = balance(&w, LEDGER_ACCOUNT_USER, "demo");
    CHECK_EQ(demo.debits, 1478);
    CHECK_EQ(demo.pending, 0);
    CHECK_EQ(demo.available, 1000000 - 1478);
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_ADDRESS, OWNER).earned, 576);
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_ADDRESS, ALICE).accrued, 432);
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_SYSTEM, "operator").earned, 70);
    meter_stats_t st;
    meter_stats(w.m, &st);
    CHECK(st.begun == 1 && st.finished == 1 && st.charged == 1478);
    close_world(&w);
}

/* A call given a ready callback: the event arrives on the finishing thread before the posting is
 * queued (so before done), done's receipt carries none, and the call is booked and counted as any. */
typedef struct ready_seen {
    waiter_t *w;
    int calls;
    bool before_done;
    ledger_id_t id;
} ready_seen_t;

static void on_ready(void *ud, const meter_event_t *e) {
    ready_seen_t *r = ud;
    r->calls++;
    pthread_mutex_lock(&r->w->mu);
    r->before_done = !r->w->done;
    r->w->cost = e->cost;
    r->w->nlines = e->nlines < 32 ? e->nlines : 32;
    for (size_t i = 0; i < r->w->nlines; i++) r->w->lines[i] = e->lines[i], r->w->lines[i].evidence = NULL;
    pthread_mutex_unlock(&r->w->mu);
    r->id = e->id;
}

static void on_done_lean(void *ud, const meter_receipt_t *r) {
    waiter_t *w = ud;
    pthread_mutex_lock(&w->mu);
    w->status = r->event ? ACC_EMISUSE : r->status; /* a receipt without its event, as promised */
    w->seq = r->seq;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void test_ready_hands_the_event_over_before_the_posting(void) {
    world_t w = open_world(500);
    topup(&w, "demo", 1000000);
    meter_model_t model = test_model();
    meter_ctx_t ctx = {.payer = "demo"};
    meter_call_t *call;
    acc_err err = {0};
    CHECK(meter_begin_model(w.m, &ctx, &model, 50, 100, &call, &err) == ACC_OK);
    int64_t recs[] = {11};
    meter_span_t spans[] = {{0, 6, 1, 1, recs}};
    meter_credit_t credits[] = {{11, ALICE, 1}};
    meter_model_outcome_t o = {.in_tokens = 20, .out_tokens = 60, .output = "Grapes", .output_len = 6,
                               .output_norm_tokens = 2, .covered_tokens = 1, .nspans = 1, .spans = spans,
                               .ncredits = 1, .credits = credits};
    waiter_t wt = WAITER_INIT;
    ready_seen_t seen = {.w = &wt};
    meter_call_set_ready(call, on_ready, &seen);
    CHECK_MSG(meter_finish_model(call, &o, on_done_lean, &wt, &err) == ACC_OK, "%s", err.msg);
    CHECK(seen.calls == 1 && seen.before_done);
    wait_stored(w.l, &wt); /* the stored event's lines are the ones ready saw */
    CHECK_EQ(wt.status, ACC_OK);
    /* 1000 + ceil((20*2000 + 60*4000)/1000) = 1280; fee 5% = 64 */
    CHECK_EQ(wt.cost, 1344);
    const meter_line_t *l;
    CHECK((l = line_for(&wt, METER_ROLE_SPAN, ALICE)) && l->amount > 0);
    CHECK((l = line_for(&wt, METER_ROLE_OPERATOR, "operator")) && l->amount == 64);
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_USER, "demo").debits, 1344);
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_USER, "demo").pending, 0);
    meter_stats_t st;
    meter_stats(w.m, &st);
    CHECK(st.finished == 1 && st.charged == 1344 && st.failed == 0);
    /* a call that fails hands nothing over */
    CHECK(meter_begin_model(w.m, &ctx, &model, 50, 100, &call, &err) == ACC_OK);
    meter_call_set_ready(call, on_ready, &seen);
    meter_fail(call, ACC_ECANCELLED, "the caller left");
    CHECK(seen.calls == 1);
    close_world(&w);
}

static void test_no_span_pays_the_data_share_to_the_owner(void) {
    world_t w = open_world(0);
    topup(&w, "demo", 100000);
    meter_model_t model = test_model();
    meter_ctx_t ctx = {.payer = "demo"};
    meter_call_t *call;
    CHECK(meter_begin_model(w.m, &ctx, &model, 10, 10, &call, NULL) == ACC_OK);
    meter_model_outcome_t o = {.in_tokens = 10, .out_tokens = 10, .output = "novel", .output_len = 5,
                               .output_norm_tokens = 1};
    waiter_t wt = WAITER_INIT;
    CHECK(meter_finish_model(call, &o, on_done, &wt, NULL) == ACC_OK);
    wait_stored(w.l, &wt);
    /* cost 1000 + ceil(60000/1000) = 1060: share 106, owner the rest */
    CHECK_EQ(wt.cost, 1060);
    CHECK_EQ(wt.nlines, 2);
    const meter_line_t *l;
    CHECK((l = line_for(&wt, METER_ROLE_OWNER, OWNER)) && l->amount == 954);
    CHECK(line_for(&wt, METER_ROLE_SPAN, ALICE) == NULL);
    CHECK_STREQ(wt.event_evidence, "");
    close_world(&w);
}

static void test_insufficient_funds_refuses_before_the_call(void) {
    world_t w = open_world(0);
    topup(&w, "poor", 120);
    meter_model_t model = test_model();
    meter_ctx_t ctx = {.payer = "poor"};
    meter_call_t *call = (meter_call_t *)1;
    acc_err err = {0};
    CHECK(meter_begin_model(w.m, &ctx, &model, 10, 100, &call, &err) == ACC_EFUNDS);
    CHECK(call == NULL);
    CHECK_CONTAINS(err.msg, "120");
    CHECK_CONTAINS(err.msg, "1420"); /* 1000 + ceil((10*2000 + 100*4000)/1000) */
    CHECK_CONTAINS(err.msg, "poor");
    CHECK_STREQ(acc_status_name(err.code), "insufficient_funds");
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_USER, "poor").pending, 0);
    /* an account that was never topped up */
    ctx.payer = "nobody";
    CHECK(meter_begin_model(w.m, &ctx, &model, 10, 100, &call, &err) == ACC_EFUNDS);
    meter_stats_t st;
    meter_stats(w.m, &st);
    CHECK_EQ(st.refused, 2);
    uint64_t last;
    ledger_last_seq(w.l, &last, NULL);
    CHECK_EQ(last, 1); /* the top-up only */
    close_world(&w);
}

typedef struct found {
    int n;
    meter_event_t ev;
    int decoded;
    uint8_t raw[2048];
    size_t raw_len;
} found_t;

static int grab_event(void *ud, const ledger_entry_t *e) {
    found_t *f = ud;
    f->n++;
    f->raw_len = e->event_len < sizeof f->raw ? e->event_len : 0;
    if (f->raw_len) memcpy(f->raw, e->event, f->raw_len);
    f->decoded = meter_event_decode(e->event, e->event_len, &f->ev, NULL) == ACC_OK;
    return ACC_OK;
}

static void test_failure_voids_everything_and_is_recorded(void) {
    world_t w = open_world(100);
    topup(&w, "demo", 100000);
    meter_model_t model = test_model();
    meter_ctx_t ctx = {.payer = "demo", .request_id = "req-9"};
    meter_call_t *call;
    CHECK(meter_begin_model(w.m, &ctx, &model, 10, 10, &call, NULL) == ACC_OK);
    ledger_id_t id = *meter_call_id(call);
    CHECK(balance(&w, LEDGER_ACCOUNT_USER, "demo").pending > 0);
    meter_fail(call, ACC_EUPSTREAM, "upstream answered 502");
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_USER, "demo").pending, 0);
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_USER, "demo").available, 100000);
    ledger_close(w.l); /* flushes the voided event */
    acc_err err = {0};
    CHECK(ledger_open(w.path, &(ledger_opts_t){.no_sync = true}, &w.l, &err) == ACC_OK);
    meter_close(w.m);
    meter_open(w.l, NULL, &w.m, NULL);
    found_t f = {0};
    CHECK(ledger_find(w.l, &id, grab_event, &f, &err) == ACC_OK && f.n == 1 && f.decoded);
    CHECK(f.ev.state == LEDGER_VOIDED && f.ev.cost == 0 && f.ev.error_code == ACC_EUPSTREAM);
    CHECK_STREQ(f.ev.error, "upstream answered 502");
    CHECK_STREQ(f.ev.request_id, "req-9");
    meter_event_free(&f.ev);
    CHECK_EQ(balance(&w, LEDGER_ACCOUNT_USER, "demo").debits, 0);
    close_world(&w);
}

static void test_units_past_their_bounds_are_charged_at_the_bounds(void) {
    world_t w = open_world(0);
    topup(&w, "demo", 100000);
    meter_model_t model = test_model();
    meter_ctx_t ctx = {.payer = "demo"};
    meter_call_t *call;
    CHECK(meter_begin_model(w.m, &ctx, &model, 10, 20, &call, NULL) == ACC_OK);
    ledger_amount_t reserved = meter_call_reserved(call);
    meter_model_outcome_t o = {.in_tokens = 1000, .out_tokens = 5000, .output = "x", .output_len = 1};
    waiter_t wt = WAITER_INIT;
    CHECK(meter_finish_model(call, &o, on_done, &wt, NULL) == ACC_OK);
    wait_done(&wt);
    CHECK_EQ(wt.cost, reserved);
    close_world(&w);
}

static void test_dataset_query_pays_contributors_by_score(void) {
    world_t w = open_world(0);
    topup(&w, "demo", 100000);
    meter_dataset_t d = {.name = "demo/fruit", .owner = OWNER, .price_per_query = 10, .price_per_record = 30};
    meter_ctx_t ctx = {.payer = "demo"};
    meter_call_t *call;
    CHECK(meter_begin_dataset(w.m, &ctx, &d, 5, &call, NULL) == ACC_OK);
    CHECK_EQ(meter_call_reserved(call), 160);
    meter_row_t rows[] = {{7, ALICE, 3.0}, {8, BOB, 1.0}, {9, ALICE, NAN}}; /* NaN: weight 1 */
    meter_dataset_outcome_t o = {.nrows = 3, .rows = rows};
    waiter_t wt = WAITER_INIT;
    CHECK(meter_finish_dataset(call, &o, on_done, &wt, NULL) == ACC_OK);
    wait_stored(w.l, &wt);
    CHECK_EQ(wt.cost, 100);
    const meter_line_t *a = line_for(&wt, METER_ROLE_RETRIEVAL, ALICE), *b = line_for(&wt, METER_ROLE_RETRIEVAL, BOB);
    CHECK(a && b);
    if (a && b) {
        CHECK_EQ(a->amount + b->amount, 100);
        CHECK_EQ(a->weight, 3000001);
        CHECK_EQ(b->amount, 25); /* 1e6 / 4000001 of 100 = 24.99..., largest remainder gives it 25 */
    }
    /* a score that is not a number is no number in the JSON either */
    CHECK_STREQ(wt.event_evidence, "{\"rows\":[{\"record\":7,\"score\":3,\"weight\":3000000},{\"record\":8,\"score\":1,"
                                   "\"weight\":1000000},{\"record\":9,\"score\":null,\"weight\":1}]}");
    for (size_t i = 0; i < wt.nlines; i++)
        if (wt.lines[i].role == METER_ROLE_RETRIEVAL && strcmp(wt.lines[i].payee, ALICE) == 0)
            CHECK_STREQ(wt.evidence[i], "{\"records\":[7,9]}");
    /* nothing returned: the per-query price goes to the datanet's owner */
    waiter_t w2 = WAITER_INIT;
    CHECK(meter_begin_dataset(w.m, &ctx, &d, 5, &call, NULL) == ACC_OK);
    meter_dataset_outcome_t none = {0};
    CHECK(meter_finish_dataset(call, &none, on_done, &w2, NULL) == ACC_OK);
    wait_done(&w2);
    CHECK_EQ(w2.cost, 10);
    CHECK(line_for(&w2, METER_ROLE_OWNER, OWNER) != NULL);
    close_world(&w);
}

static void test_message_price_and_session_price(void) {
    world_t w = open_world(1000);
    topup(&w, "demo", 100000);
    meter_agent_t agent = {.name = "fruit-bot", .version = "1.2.0", .author = AUTHOR, .price_per_message = 50,
                           .price_per_session = 200, .markup_bps = 5000};
    meter_ctx_t ctx = {.payer = "demo", .agent = &agent, .session = "s"};
    meter_call_t *call;
    CHECK(meter_begin_message(w.m, &ctx, true, &call, NULL) == ACC_OK);
    CHECK_EQ(meter_call_reserved(call), 275); /* 250 + 10 % fee; no markup on its own price */
    waiter_t wt = WAITER_INIT;
    CHECK(meter_finish_message(call, on_done, &wt, NULL) == ACC_OK);
    wait_stored(w.l, &wt);
    CHECK_EQ(wt.cost, 275);
    const meter_line_t *l = line_for(&wt, METER_ROLE_AUTHOR, AUTHOR);
    CHECK(l && l->amount == 250);
    CHECK_STREQ(wt.evidence[l - wt.lines], "{\"per_message\":50,\"per_session\":200}");
    CHECK(meter_begin_message(w.m, &ctx, false, &call, NULL) == ACC_OK);
    CHECK_EQ(meter_call_reserved(call), 55);
    meter_fail(call, ACC_ECANCELLED, "cancelled by the client");
    ctx.agent = NULL;
    acc_err err = {0};
    CHECK(meter_begin_message(w.m, &ctx, false, &call, &err) == ACC_EINVAL);
    close_world(&w);
}

/* An event with one line paying payee, encoded; returns its bytes' length (0 when it does not
 * decode back to the same payee). */
static size_t encode_payee(const char *payee) {
    meter_line_t line = {.role = METER_ROLE_OWNER, .payee_kind = LEDGER_ACCOUNT_ADDRESS, .weight = 1, .amount = 7};
    snprintf(line.payee, sizeof line.payee, "%s", payee);
    meter_event_t e = {.state = LEDGER_POSTED, .resource = METER_MODEL, .resource_name = "m", .nlines = 1, .lines = &line};
    meter__evidence_t ev = {.kind = METER__EV_NONE};
    acc_buf b = ACC_BUF_INIT;
    meter__event_encode(&e, &ev, &b);
    meter_event_t d;
    size_t len = b.len;
    if (meter_event_decode(b.data, b.len, &d, NULL) != ACC_OK) len = 0;
    else if (d.nlines != 1 || strcmp(d.lines[0].payee, payee) != 0) len = 0, meter_event_free(&d);
    else meter_event_free(&d);
    acc_buf_free(&b);
    return len;
}

/* Payees that are addresses ("0x" and 40 hex digits, any case) are stored as 25 bytes, anything
 * else (a digit one past a range, a byte past ASCII) as text; both read back exactly. */
static void test_payees_stored_as_addresses_exactly_when_they_are(void) {
    const size_t base = encode_payee("x"); /* a 1-byte string: form, length, byte */
    CHECK(base > 0);
    static const char pool[] = "0123456789abcdefABCDEF/:@G`gF9f0 \x80\xff";
    uint64_t r = 0x9e3779b97f4a7c15u;
    for (int n = 0; n < 20000; n++) {
        char a[43] = "0x";
        bool hex = true;
        for (int i = 0; i < 40; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            /* mostly digits: one in 64 draws from the whole pool, edge characters included */
            size_t k = (r >> 8) % 64 == 0 ? (r >> 16) % (sizeof pool - 1) : (r >> 16) % 22;
            a[2 + i] = pool[k];
            hex &= strchr("0123456789abcdefABCDEF", pool[k]) != NULL;
        }
        size_t len = encode_payee(a);
        CHECK_MSG(len == (hex ? base - 3 + 26 : base - 3 + 44), "%s: %zu bytes (base %zu), hex %d", a, len, base, hex);
        if (len != (hex ? base - 3 + 26 : base - 3 + 44)) break;
    }
    /* every digit at every place, both cases */
    for (int i = 0; i < 40; i++)
        for (const char *d = "0123456789abcdefABCDEF"; *d; d++) {
            char a[43] = "0x0000000000000000000000000000000000000000";
            a[2 + i] = *d;
            CHECK_EQ(encode_payee(a), base - 3 + 26);
        }
    CHECK_EQ(encode_payee("0x000000000000000000000000000000000000000"), base - 3 + 43); /* 41 characters */
    CHECK_EQ(encode_payee("1x0000000000000000000000000000000000000000"), base - 3 + 44);
    CHECK_EQ(encode_payee("operator"), base - 3 + 10);
}

static void test_event_round_trips_and_rejects_garbage(void) {
    world_t w = open_world(0);
    topup(&w, "demo", 100000);
    meter_model_t model = test_model();
    /* payees stored as addresses (20 bytes and their case) or, when they only look like one, as text */
    const char *not_hex = "0x111111111111111111111111111111111111111g";
    model.nshares = 2;
    snprintf(model.shares[1].address, sizeof model.shares[1].address, "%s", not_hex);
    model.shares[1].bps = 1000;
    meter_agent_t agent = {.name = "a\"gent", .version = "0.1.0", .author = AUTHOR, .markup_bps = 100};
    meter_ctx_t ctx = {.payer = "demo", .request_id = "chatcmpl-\xff", .session = "sess", .agent = &agent};
    meter_call_t *call;
    CHECK(meter_begin_model(w.m, &ctx, &model, 5, 5, &call, NULL) == ACC_OK);
    ledger_id_t id = *meter_call_id(call);
    meter_model_outcome_t o = {.in_tokens = 5, .out_tokens = 5, .output = "x", .output_len = 1};
    waiter_t wt = WAITER_INIT;
    CHECK(meter_finish_model(call, &o, on_done, &wt, NULL) == ACC_OK);
    wait_done(&wt);
    found_t f = {0};
    CHECK(ledger_find(w.l, &id, grab_event, &f, NULL) == ACC_OK && f.decoded);
    CHECK_STREQ(f.ev.agent, "a\"gent");
    CHECK_STREQ(f.ev.agent_version, "0.1.0");
    CHECK_STREQ(f.ev.session, "sess");
    CHECK_EQ(f.ev.units_in, 5);
    CHECK_EQ(f.ev.cost, wt.cost);
    CHECK(f.ev.nlines == wt.nlines);
    for (size_t i = 0; i < f.ev.nlines && i < wt.nlines; i++)
        CHECK_MSG(strcmp(f.ev.lines[i].payee, wt.lines[i].payee) == 0 && f.ev.lines[i].amount == wt.lines[i].amount,
                  "line %zu: %s, stored as %s", i, wt.lines[i].payee, f.ev.lines[i].payee);
    CHECK(line_for(&wt, METER_ROLE_SHARE, not_hex) && line_for(&wt, METER_ROLE_AUTHOR, AUTHOR));
    acc_buf j = ACC_BUF_INIT;
    meter_event_json(&f.ev, wt.seq, &j);
    CHECK_CONTAINS(j.data, "\"agent\":\"a\\\"gent\"");
    CHECK_CONTAINS(j.data, "\"request_id\":\"chatcmpl-\xef\xbf\xbd\"");
    CHECK_CONTAINS(j.data, "\"role\":\"owner\"");
    acc_buf_free(&j);
    meter_event_free(&f.ev);
    /* garbage and truncations are refused, never read past the end */
    uint8_t junk[64] = {1};
    meter_event_t e;
    acc_err err = {0};
    CHECK(meter_event_decode(junk, sizeof junk, &e, &err) == ACC_ECORRUPT);
    junk[0] = 9;
    CHECK(meter_event_decode(junk, sizeof junk, &e, &err) == ACC_ECORRUPT);
    CHECK_CONTAINS(err.msg, "version 9");
    CHECK(f.raw_len > 19);
    for (size_t n = 0; n < f.raw_len; n++)
        CHECK_MSG(meter_event_decode(f.raw, n, &e, &err) == ACC_ECORRUPT, "a stored event cut to %zu bytes decoded", n);
    /* An event stored by version 1 (evidence as JSON strings, payees as text) still reads. */
    uint8_t v1[256];
    size_t n1 = 0;
    static const uint8_t head[] = {
        1, /* version */
        0x01, 0x8c, 0x2f, 0x3a, 0x00, 0x00, 0x70, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x2a, /* id */
        2, 1, /* posted, model */
        0x01, 0x05, 0x03, 0x04, 0x0c, 0x0a, 0x00, /* start 1, latency 5, units 3 and 4, reserved 12, cost 10, no error */
        9, 'd', 'e', 'm', 'o', '/', 'f', 'i', 'g', 's', 4, 'd', 'e', 'm', 'o', 0, 1, 's', 0, 0, 0, /* name .. error */
        14, '{', '"', 's', 'p', 'a', 'n', 's', '"', ':', '[', ']', '}', ' ', ' ', /* evidence */
        1, 3, 3, 42, /* one line: span, an address, 42 bytes of it */
    };
    memcpy(v1, head, sizeof head), n1 = sizeof head;
    memcpy(v1 + n1, ALICE, 42), n1 += 42;
    static const uint8_t tail[] = {2, 10, 15, '{', '"', 'r', 'e', 'c', 'o', 'r', 'd', 's', '"', ':', '[', '7', ']', '}'};
    memcpy(v1 + n1, tail, sizeof tail), n1 += sizeof tail;
    CHECK_MSG(meter_event_decode(v1, n1, &e, &err) == ACC_OK, "%s", err.msg);
    CHECK(e.id.b[15] == 0x2a && e.state == LEDGER_POSTED && e.resource == METER_MODEL && e.cost == 10 && e.units_out == 4);
    CHECK_STREQ(e.resource_name, "demo/figs");
    CHECK_STREQ(e.session, "s");
    CHECK(e.evidence_len == 14 && memcmp(e.evidence, "{\"spans\":[]}  ", 14) == 0);
    CHECK(e.nlines == 1 && e.lines[0].role == METER_ROLE_SPAN && e.lines[0].amount == 10 && e.lines[0].weight == 2);
    CHECK_STREQ(e.lines[0].payee, ALICE);
    CHECK_STREQ(e.lines[0].evidence, "{\"records\":[7]}");
    meter_event_free(&e);
    close_world(&w);
}

static void tamper(const char *path, const char *sql) {
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    char *msg = NULL;
    CHECK_MSG(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s", msg ? msg : "");
    sqlite3_free(msg);
    sqlite3_close(db);
}

static void test_check_catches_an_event_that_does_not_match_its_transfers(void) {
    world_t w = open_world(0);
    topup(&w, "demo", 100000);
    meter_model_t model = test_model();
    meter_ctx_t ctx = {.payer = "demo"};
    meter_call_t *call;
    CHECK(meter_begin_model(w.m, &ctx, &model, 5, 5, &call, NULL) == ACC_OK);
    meter_model_outcome_t o = {.in_tokens = 5, .out_tokens = 5, .output = "x", .output_len = 1};
    waiter_t wt = WAITER_INIT;
    CHECK(meter_finish_model(call, &o, on_done, &wt, NULL) == ACC_OK);
    wait_done(&wt);
    meter_close(w.m);
    ledger_close(w.l);
    /* Swap the event of the charge for the event of... a copy with its cost bumped by one: the
     * event's varint cost is the 6th varint after the 19-byte head. Easier: replace the whole event
     * with a truncated one, then with one from a different posting. */
    tamper(w.path, "UPDATE ledger_postings SET event = substr(event, 1, length(event) - 1) WHERE seq = 2");
    ledger_t *l;
    acc_err err = {0};
    CHECK(ledger_open(w.path, &(ledger_opts_t){.readonly = true}, &l, &err) == ACC_OK);
    CHECK(ledger_check(l, meter_check_event, l, NULL, &err) == ACC_ECORRUPT);
    CHECK_CONTAINS(err.msg, "charges_have_events");
    CHECK_CONTAINS(err.msg, "malformed");
    ledger_close(l);
}

static ledger_amount_t charge(world_t *w, const meter_agent_t *agent, const char *session, const char *request) {
    meter_model_t model = test_model();
    meter_ctx_t ctx = {.payer = "demo", .agent = agent, .session = session, .request_id = request};
    meter_call_t *call;
    CHECK(meter_begin_model(w->m, &ctx, &model, 5, 5, &call, NULL) == ACC_OK);
    meter_model_outcome_t o = {.in_tokens = 5, .out_tokens = 5, .output = "x", .output_len = 1};
    waiter_t wt = WAITER_INIT;
    CHECK(meter_finish_model(call, &o, on_done, &wt, NULL) == ACC_OK);
    wait_done(&wt);
    return wt.cost;
}

static void test_usage_by_agent(void) {
    world_t w = open_world(0);
    topup(&w, "demo", 10000000);
    meter_agent_t a = {.name = "alpha", .version = "1.0.0", .author = AUTHOR}, b = {.name = "beta", .version = "2.0.0",
                                                                                  .author = AUTHOR};
    ledger_amount_t ra = 0, rb = 0;
    ra += charge(&w, &a, "s1", "r1");
    ra += charge(&w, &a, "s1", "r1"); /* two calls of one message */
    ra += charge(&w, &a, "s1", "r2");
    ra += charge(&w, &a, "s2", "r3");
    rb += charge(&w, &b, "s9", "r9");
    charge(&w, NULL, "s0", "r0"); /* no agent: counted nowhere */
    ledger_id_t id;
    ledger_id_new(&id);
    uint64_t now = ledger_id_time_ms(&id) + 1000;
    meter_agent_usage_t *v;
    size_t n;
    acc_err err = {0};
    CHECK_MSG(meter_usage_by_agent(w.l, now, &v, &n, &err) == ACC_OK, "%s", err.msg);
    CHECK_EQ(n, 2);
    const meter_agent_usage_t *ua = meter_agent_usage_find(v, n, "alpha"), *ub = meter_agent_usage_find(v, n, "beta");
    CHECK(ua && ua->sessions_30d == 2 && ua->sessions_7d == 2 && ua->messages_30d == 3 && ua->messages_7d == 3);
    CHECK(ua && ua->revenue_30d == ra && ua->revenue_7d == ra);
    CHECK(ub && ub->sessions_30d == 1 && ub->messages_30d == 1 && ub->revenue_30d == rb);
    CHECK(meter_agent_usage_find(v, n, "gamma") == NULL);
    free(v);
    /* eight days on: in the 30 days, not the 7 */
    CHECK(meter_usage_by_agent(w.l, now + 8 * UINT64_C(86400000), &v, &n, &err) == ACC_OK);
    ua = meter_agent_usage_find(v, n, "alpha");
    CHECK(ua && ua->sessions_7d == 0 && ua->revenue_7d == 0 && ua->sessions_30d == 2 && ua->revenue_30d == ra);
    free(v);
    /* thirty-one days on: nothing */
    CHECK(meter_usage_by_agent(w.l, now + 31 * UINT64_C(86400000), &v, &n, &err) == ACC_OK);
    CHECK_EQ(n, 0);
    free(v);
    close_world(&w);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    if (test_scratch_dir(dir, sizeof dir, "meters") != 0) return 1;
    RUN(test_split_properties_over_random_cases);
    RUN(test_split_edges);
    RUN(test_fees_and_prices);
    RUN(test_model_call_reserved_attributed_posted);
    RUN(test_ready_hands_the_event_over_before_the_posting);
    RUN(test_no_span_pays_the_data_share_to_the_owner);
    RUN(test_insufficient_funds_refuses_before_the_call);
    RUN(test_failure_voids_everything_and_is_recorded);
    RUN(test_units_past_their_bounds_are_charged_at_the_bounds);
    RUN(test_dataset_query_pays_contributors_by_score);
    RUN(test_message_price_and_session_price);
    RUN(test_event_round_trips_and_rejects_garbage);
    RUN(test_payees_stored_as_addresses_exactly_when_they_are);
    RUN(test_check_catches_an_event_that_does_not_match_its_transfers);
    RUN(test_usage_by_agent);
    test_remove_dir(dir);
    return check_finish("meters");
}
