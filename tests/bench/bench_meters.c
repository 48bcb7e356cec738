/*
 * bench_meters.c: metered calls end to end, beside the physical limit of writing their rows.
 *
 * 1. End to end. 1,000 sandboxes run an agent that calls a built-in model (the factory's n-gram
 *    model over a datanet of 2,000 synthetic records by 50 contributors) in a loop. Every call goes
 *    through runtime/metered.c as `accrue run` and the server make it: resolved, priced, reserved,
 *    run, attributed over the lineage's span index (its continuations copy records, so there are
 *    spans and contributors to pay), split, posted and durably committed (WAL, synchronous=FULL,
 *    group commit) before the agent sees its answer. One thread drives the sandboxes; the ledger's
 *    writer is the other. Measured: calls per second, CPU per call (whole process), and each call's
 *    latency from the agent's models.call to its answer. The same run with the process pinned to
 *    one core (sched_setaffinity) is the "one core" figure. Beside it, the same sandboxes and model
 *    with no meter, answered at once (each sandbox's loop runs through, its memory in the cache)
 *    and answered round-robin as the metered runs are (each call finds its sandbox cold, as a
 *    metered call does): what metering adds is measured against the second, in CPU and latency. Then one
 *    sandbox alone (one call in flight), metered and not: the latency a call adds when nothing
 *    else is queued (its own commit, fsync included).
 * 2. The physical limit: the rows run 1 wrote (one posting row per call, account totals once per
 *    account per transaction), read back and written again by a bare SQLite loop with the same
 *    schema, statements and synchronous=FULL, twice: in the run's own transactions (its mean
 *    postings and account rows per commit), and in transactions of 1,000 postings that update
 *    every account the run touched once (what a well-fed group commit would write).
 * 4. A lua model (runtime/luamodel.h): one call alone (a fresh sandbox, the script compiled and
 *    run), and metered end to end like 1. with the agents calling it instead (a tenth of the calls).
 * 3. Attribution of a 200-token output against a 10M-token datanet (the synthetic text of
 *    tests/bench/synth_text.h): span matching, weights and contributors (span_attribute and
 *    rt_attribution_view, what registry_attribute and runtime/metered.c do per call) and the
 *    meter's part (split, lines, event, queued posting), per output.
 *
 * Run with `zig build bench -Doptimize=ReleaseFast`. BENCH_METERS_CALLS sets the calls per sandbox
 * (default 100), BENCH_METERS_TOKENS the attribution datanet's size (default 10M).
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "meters/eth/keys.h"
#include "meters/ledger/ledger.h"
#include "meters/meters.h"
#include "registry/factory/factory.h"
#include "registry/registry.h"
#include "runtime/luamodel.h"
#include "runtime/metered.h"
#include "tests/bench/synth_text.h"
#include "tests/util.h"

#define NSB 1000
#define NRECORDS 2000
#define NCONTRIB 50

static char dir[128];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double minor_faults(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_minflt;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* This thread's CPU time: on a shared machine, wall time per output mostly measures the others. */
static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, const acc_err *err) {
    fprintf(stderr, "bench_meters: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

/* The bench's paying account, "bench", funded past anything a run spends. */
static void fund_payer(ledger_t *l) {
    ledger_account_t *payer;
    acc_err err = {0};
    if (ledger_account(l, LEDGER_ACCOUNT_USER, "bench", &payer, &err)) die("payer", &err);
    ledger_transfer_t t = {ledger_system(l, LEDGER_SYSTEM_EXTERNAL), payer, UINT64_C(1) << 60, LEDGER_CODE_TOPUP};
    ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &t, .ntransfers = 1};
    ledger_id_new(&p.id);
    ledger_result_t r;
    if (ledger_submit_wait(l, &p, &r, &err)) die("topup", &err);
}

static void contributor_address(int i, uint8_t out[20]) {
    memset(out, 0, 20);
    out[0] = 0xc0;
    out[19] = (uint8_t)(i + 1);
    out[18] = (uint8_t)((i + 1) >> 8);
}

/* A small lua model: it decodes the request, walks its words and answers with them title-cased. */
static const char lua_model_script[] =
    "local function title(w) return w:sub(1, 1):upper() .. w:sub(2) end\n"
    "local function words(s)\n"
    "  local out = {}\n"
    "  for w in s:gmatch('%S+') do out[#out + 1] = title(w) end\n"
    "  return out\n"
    "end\n"
    "return { on_message = function(session, req)\n"
    "  local r = json.decode(req)\n"
    "  local text = r.prompt or r.messages[#r.messages].content\n"
    "  return table.concat(words(text), ' ')\n"
    "end }\n";

/* The registry: a datanet of synthetic records, a built-in model and a lua model over it. */
static registry_t *make_registry(const char *path, char prompts[8][64]) {
    registry_t *reg;
    acc_err err = {0};
    if (registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err)) die("registry", &err);
    registry_datanet_spec_t spec = {.name = "bench/corpus", .price_per_query = 10, .price_per_record = 5};
    contributor_address(999, spec.owner);
    if (registry_datanet_create(reg, &spec, NULL, &err)) die("datanet", &err);
    make_vocab();
    acc_buf jl = ACC_BUF_INIT;
    char text[4096];
    for (int i = 0; i < NRECORDS; i++) {
        make_text(text, 20 + (int)(rnd() % 30));
        uint8_t a[20];
        char at[ETH_ADDRESS_TEXT_SIZE];
        contributor_address(i % NCONTRIB, a);
        eth_address_to_text(a, at);
        acc_buf_puts(&jl, "{\"text\":");
        acc_buf_json_string(&jl, text, strlen(text));
        acc_buf_printf(&jl, ",\"contributor\":\"%s\"}\n", at);
        if (i < 8) { /* prompts: each record's first three words */
            int words = 0;
            size_t k = 0;
            while (text[k] && words < 3 && k < 60) words += text[++k] == ' ';
            snprintf(prompts[i], 64, "%.*s", (int)k, text);
        }
    }
    if (registry_import_jsonl(reg, "bench/corpus", jl.data, jl.len, "bench", NULL, NULL, NULL, &err))
        die("import", &err);
    acc_buf_free(&jl);
    registry_model_t m = {.name = "bench/gen", .price_per_call = 100, .price_per_1k_in = 500, .price_per_1k_out = 2000,
                          .owner_share_bps = 3000, .span_k = 8};
    contributor_address(998, m.owner);
    if (factory_build(reg, &m, "bench/corpus", 4, NULL, &err)) die("factory_build", &err);
    registry_model_t lm = {.name = "bench/lua", .kind = REGISTRY_MODEL_LUA, .price_per_call = 100,
                           .price_per_1k_in = 500, .price_per_1k_out = 2000, .owner_share_bps = 3000, .span_k = 8,
                           .n_lineage = 1, .lineage = {"bench/corpus"}};
    contributor_address(998, lm.owner);
    if (registry_model_register(reg, &lm, lua_model_script, strlen(lua_model_script), NULL, &err)) die("lua model", &err);
    return reg;
}

typedef struct run_result {
    double wall, cpu, driver_cpu, calls;
    double faults; /* minor page faults of the whole process during the run */
    double p50_ms, p99_ms, max_ms;
    ledger_stats_t ls;
} run_result_t;

/* An unmetered provider: the same model, no meter (the baseline of what metering adds). It answers
 * at once (each sandbox's loop then runs through while its memory is in the cache), or, with
 * defer, into a list the driver delivers later, round-robin over the sandboxes as the metered runs
 * go: each call then finds its sandbox's memory as cold as a metered call does. */
typedef struct deferred {
    sandbox_t *sb;
    uint64_t id;
    char *text;
    size_t len;
} deferred_t;

typedef struct bare_ctx {
    registry_t *reg;
    registry_model_t model;
    factory_model *fm; /* resolved once, as the metered provider caches it in its model entry */
    bool defer;
    deferred_t *list; /* NSB entries: a sandbox has one call in flight at most */
    size_t n;
} bare_ctx_t;

/* The same work as the metered provider's built-in path, less the meter: parse, run, answer. */
static int bare_start(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    bare_ctx_t *b = ud;
    acc_err err = {0};
    factory_request fr;
    factory_output o = {0};
    if (factory_request_parse(call->json, call->json_len, &fr, &err) || factory_run(b->fm, &fr, &o, &err))
        die("factory", &err);
    acc_buf out = ACC_BUF_INIT;
    acc_buf_puts(&out, "{\"text\":");
    acc_buf_json_string(&out, o.text, o.len);
    acc_buf_printf(&out, ",\"model\":\"bench/gen\",\"finish_reason\":\"%s\",\"usage\":{\"prompt_tokens\":%u,"
                         "\"completion_tokens\":%u}}",
                   o.finish == FACTORY_FINISH_STOP ? "stop" : "length", o.prompt_tokens, o.completion_tokens);
    if (b->defer) {
        deferred_t *d = &b->list[b->n++];
        d->sb = sb, d->id = call->id;
        d->text = acc_buf_take(&out, &d->len);
    } else {
        sandbox_call_done(sb, call->id, 1, out.data, out.len);
    }
    acc_buf_free(&out);
    factory_output_free(&o);
    factory_request_free(&fr);
    return 0;
}

static const char script_fmt[] = "return { on_message = function(session, text)\n"
                                 "  for i = 1, %d do models.call('%s', { prompt = text, max_tokens = 16 }) end\n"
                                 "  return 'done'\n"
                                 "end }\n";

static run_result_t run(registry_t *reg, const char *ledger_path, const char *model, int nsb, int calls, bool metered,
                        bool defer, bool pin, char prompts[8][64]) {
    run_result_t res = {0};
    cpu_set_t old;
    sched_getaffinity(0, sizeof old, &old);
    if (pin) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu(), &one);
        sched_setaffinity(0, sizeof one, &one); /* threads made from now on inherit it */
    }
    acc_err err = {0};
    ledger_t *l = NULL;
    meter_t *meter = NULL;
    rt_metered_t *mt = NULL;
    rt_queue_t *q = rt_queue_new();
    static deferred_t deferred[2][NSB];
    bare_ctx_t bare = {.reg = reg, .defer = defer && !metered, .list = deferred[0]};
    if (registry_model_get(reg, "bench/gen", &bare.model, &err) || factory_model_of(reg, &bare.model, &bare.fm, &err))
        die("model", &err);
    if (metered) {
        ledger_opts_t lo = {0};
        if (getenv("BENCH_METERS_COMMIT_DELAY_US")) lo.commit_delay_us = (uint32_t)atoi(getenv("BENCH_METERS_COMMIT_DELAY_US"));
        if (ledger_open(ledger_path, &lo, &l, &err)) die("ledger", &err);
        meter_config_t mc = meter_config_default();
        mc.operator_fee_bps = 100;
        meter_open(l, &mc, &meter, &err);
        rt_metered_config_t cfg = {.meter = meter};
        rt_metered_open(&cfg, &mt, &err);
        fund_payer(l);
    }
    char script[512];
    snprintf(script, sizeof script, script_fmt, calls, model);
    static sandbox_t *sbs[NSB];
    static rt_session_t *sessions[NSB];
    static double started[NSB];
    size_t total = (size_t)nsb * (size_t)calls, nlat = 0;
    double *lat = malloc(total * sizeof *lat);
    sandbox_limits_t limits = sandbox_default_limits();
    limits.turn.time_ms = 600000;
    limits.turn.instructions = 0;
    for (int i = 0; i < nsb; i++) {
        sandbox_provider_t p;
        if (metered) {
            char sess[32];
            snprintf(sess, sizeof sess, "s%d", i);
            rt_session_config_t sc = {.reg = reg, .payer = "bench", .session = sess, .poster = rt_queue_poster(q)};
            if (rt_session_open(mt, &sc, &sessions[i], &err)) die("session", &err);
            p = rt_session_provider(sessions[i]);
        } else {
            p = (sandbox_provider_t){.ud = &bare, .start_call = bare_start};
        }
        sbs[i] = sandbox_open(&limits, &p, NULL);
        if (!sbs[i] || sandbox_start_load(sbs[i], "=bench", script, strlen(script), NULL) ||
            sandbox_run_to_end(sbs[i]) != SANDBOX_DONE)
            die("sandbox", NULL);
        sandbox_set_userdata(sbs[i], &started[i]); /* the answer's sandbox finds its clock */
    }
    /* warm the caches (model, span index, contributors) outside the timing */
    if (metered) {
        rt_session_config_t sc = {.reg = reg, .payer = "bench", .poster = rt_queue_poster(q)};
        rt_session_t *ws;
        rt_session_open(mt, &sc, &ws, &err);
        sandbox_provider_t p = rt_session_provider(ws);
        sandbox_t *sb = sandbox_open(&limits, &p, NULL);
        char one[512];
        snprintf(one, sizeof one, script_fmt, 1, model);
        sandbox_start_load(sb, "=w", one, strlen(one), NULL);
        sandbox_run_to_end(sb);
        sandbox_start_message(sb, prompts[0], strlen(prompts[0]), NULL);
        if (rt_run_turn(sb, &ws, q) != SANDBOX_DONE) die("warm-up", NULL);
        sandbox_close(sb);
        rt_session_close(ws);
    }
    struct timespec d0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &d0);
    double t0 = now_s(), c0 = cpu_s(), f0 = minor_faults();
    int done = 0;
    for (int i = 0; i < nsb; i++) {
        sandbox_start_message(sbs[i], prompts[i % 8], strlen(prompts[i % 8]), NULL);
        started[i] = now_s();
        sandbox_status_t st = sandbox_run(sbs[i]);
        if (st == SANDBOX_DONE) done++;
        else if (st != SANDBOX_WAITING) die(sandbox_errmsg(sbs[i]), NULL);
        if (!metered && !bare.defer) { /* answered at once: the whole loop ran */
            lat[nlat++] = (now_s() - started[i]) / calls;
        }
    }
    for (int turn = 1; bare.defer && done < nsb; turn ^= 1) { /* deliver the answers of the last round */
        deferred_t *list = bare.list;
        size_t n = bare.n;
        bare.list = deferred[turn], bare.n = 0;
        for (size_t k = 0; k < n; k++) {
            sandbox_t *sb = list[k].sb;
            /* the next sandboxes' memory loaded ahead, as rt_answer_deliver does for the metered runs */
            if (k + 2 < n) sandbox_prefetch_handle(list[k + 2].sb);
            if (k + 1 < n) sandbox_prefetch(list[k + 1].sb);
            double *start = sandbox_userdata(sb), t = now_s();
            lat[nlat++] = t - *start;
            *start = t;
            if (sandbox_call_done(sb, list[k].id, 1, list[k].text, list[k].len)) die("call_done", NULL);
            free(list[k].text);
            sandbox_status_t st = sandbox_run(sb);
            if (st == SANDBOX_DONE) done++;
            else if (st != SANDBOX_WAITING) die(sandbox_errmsg(sb), NULL);
        }
    }
    while (metered && done < nsb) {
        rt_answer_t *a = rt_queue_take(q, -1);
        while (a) {
            rt_answer_t *next = a->next;
            if (a->work) { /* a lua model's call runs now; its answer comes once booked */
                rt_answer_deliver(a);
                a = next;
                continue;
            }
            sandbox_t *sb = rt_session_sandbox(a->session);
            double *start = sandbox_userdata(sb);
            double t = now_s();
            lat[nlat++] = t - *start;
            if (rt_answer_deliver(a) == 0) {
                *start = t;
                sandbox_status_t st = sandbox_run(sb);
                if (st == SANDBOX_DONE) done++;
                else if (st != SANDBOX_WAITING) die(sandbox_errmsg(sb), NULL);
            }
            a = next;
        }
    }
    res.wall = now_s() - t0;
    res.cpu = cpu_s() - c0;
    res.faults = minor_faults() - f0;
    struct timespec d1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &d1);
    res.driver_cpu = (double)(d1.tv_sec - d0.tv_sec) + (double)(d1.tv_nsec - d0.tv_nsec) / 1e9;
    res.calls = (double)total;
    qsort(lat, nlat, sizeof *lat, cmp_double);
    res.p50_ms = lat[nlat / 2] * 1e3;
    res.p99_ms = lat[nlat * 99 / 100] * 1e3;
    res.max_ms = lat[nlat - 1] * 1e3;
    free(lat);
    for (int i = 0; i < nsb; i++) {
        sandbox_close(sbs[i]);
        if (metered) rt_session_close(sessions[i]);
    }
    if (metered) {
        ledger_stats(l, &res.ls);
        acc_err cerr = {0};
        if (ledger_check(l, meter_check_event, l, NULL, &cerr)) die("ledger check", &cerr);
        rt_metered_close(mt);
        meter_close(meter);
        ledger_close(l);
    }
    rt_queue_free(q);
    sched_setaffinity(0, sizeof old, &old);
    return res;
}

/* The bare loop: the rows of a metered run written again with the ledger's own statements, in
 * transactions of per_txn postings that each also update accounts_per_txn account rows (the run's
 * averages, or a well-fed group commit's). */
static double bare_sqlite(const char *from, const char *to, double per_txn, double accounts_per_txn, size_t *nrows,
                          double *cpu_per_row) {
    sqlite3 *src, *dst;
    sqlite3_open(from, &src);
    { /* the same schema, made by the ledger itself */
        ledger_t *l;
        acc_err err = {0};
        if (ledger_open(to, NULL, &l, &err)) die("bare ledger", &err);
        ledger_close(l);
    }
    sqlite3_open(to, &dst);
    sqlite3_exec(dst, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;", NULL, NULL, NULL);
    sqlite3_stmt *rd, *ins, *upd;
    sqlite3_prepare_v2(src, "SELECT id, time_ms, state, code, legs, event FROM ledger_postings WHERE code != 5 ORDER BY seq",
                       -1, &rd, NULL);
    sqlite3_prepare_v2(dst,
                       "INSERT INTO ledger_postings(id, time_ms, state, code, legs, event) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                       "ON CONFLICT(id) DO NOTHING",
                       -1, &ins, NULL);
    sqlite3_prepare_v2(dst,
                       "UPDATE ledger_accounts SET debits = debits + ?2, credits = credits + ?3, earned = earned + ?4, "
                       "settled = settled + ?5 WHERE id = ?1",
                       -1, &upd, NULL);
    /* load the rows first: the loop times writing only */
    typedef struct row {
        uint8_t id[16];
        int64_t time;
        int state, code;
        void *legs, *event;
        int nlegs, nevent;
    } row_t;
    size_t cap = 1 << 16, n = 0;
    row_t *rows = malloc(cap * sizeof *rows);
    while (sqlite3_step(rd) == SQLITE_ROW) {
        if (n == cap) rows = realloc(rows, (cap *= 2) * sizeof *rows);
        row_t *r = &rows[n++];
        memcpy(r->id, sqlite3_column_blob(rd, 0), 16);
        r->time = sqlite3_column_int64(rd, 1);
        r->state = sqlite3_column_int(rd, 2);
        r->code = sqlite3_column_int(rd, 3);
        r->nlegs = sqlite3_column_bytes(rd, 4);
        r->legs = malloc((size_t)r->nlegs + 1);
        memcpy(r->legs, sqlite3_column_blob(rd, 4), (size_t)r->nlegs);
        r->nevent = sqlite3_column_bytes(rd, 5);
        r->event = malloc((size_t)r->nevent + 1);
        memcpy(r->event, sqlite3_column_blob(rd, 5), (size_t)r->nevent);
    }
    sqlite3_finalize(rd);
    sqlite3_close(src);
    size_t batch = per_txn < 1 ? 1 : (size_t)(per_txn + 0.5);
    int naccounts = accounts_per_txn < 1 ? 1 : (int)(accounts_per_txn + 0.5);
    double t0 = now_s(), c0 = cpu_s();
    for (size_t i = 0; i < n; i += batch) {
        sqlite3_exec(dst, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (size_t j = i; j < n && j < i + batch; j++) {
            row_t *r = &rows[j];
            sqlite3_bind_blob(ins, 1, r->id, 16, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 2, r->time);
            sqlite3_bind_int(ins, 3, r->state);
            sqlite3_bind_int(ins, 4, r->code);
            sqlite3_bind_blob(ins, 5, r->legs, r->nlegs, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 6, r->event, r->nevent, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) die("bare insert", NULL);
            sqlite3_reset(ins);
        }
        for (int a = 1; a <= naccounts; a++) {
            sqlite3_bind_int64(upd, 1, a);
            for (int k = 2; k <= 5; k++) sqlite3_bind_int64(upd, k, 0);
            if (sqlite3_step(upd) != SQLITE_DONE) die("bare update", NULL);
            sqlite3_reset(upd);
        }
        if (sqlite3_exec(dst, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) die("bare commit", NULL);
    }
    double dt = now_s() - t0;
    *cpu_per_row = (cpu_s() - c0) / (double)(n ? n : 1);
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    sqlite3_close(dst);
    for (size_t i = 0; i < n; i++) free(rows[i].legs), free(rows[i].event);
    free(rows);
    *nrows = n;
    return (double)n / dt;
}

/* The accounts a run's postings moved money on. */
static int touched_accounts(const char *path) {
    sqlite3 *db;
    sqlite3_stmt *st;
    int n = 0;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM ledger_accounts WHERE debits > 0 OR credits > 0", -1, &st, NULL) ==
            SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

/* --- 0. the meter and the ledger alone: no sandbox, no model, no attribution --- */

static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_cond = PTHREAD_COND_INITIALIZER;
static int slots_free;

static void slot_done(void *ud, const meter_receipt_t *r) {
    (void)ud;
    if (r->status) die("posting", &r->err);
    pthread_mutex_lock(&slots_mu);
    slots_free++;
    pthread_cond_signal(&slots_cond);
    pthread_mutex_unlock(&slots_mu);
}

static void meter_alone(const char *path, int n, int window) {
    ledger_t *l;
    meter_t *m;
    acc_err err = {0};
    if (ledger_open(path, NULL, &l, &err)) die("ledger", &err);
    meter_config_t mc = meter_config_default();
    mc.operator_fee_bps = 100;
    meter_open(l, &mc, &m, &err);
    fund_payer(l);
    meter_model_t model = {.name = "bench/model", .owner = "0xc0000000000000000000000000000000000003e7",
                           .price_per_call = 100, .price_per_1k_in = 1000, .price_per_1k_out = 2000, .owner_share_bps = 3000};
    meter_ctx_t ctx = {.payer = "bench", .session = "s"};
    slots_free = window;
    double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&slots_mu);
        while (!slots_free) pthread_cond_wait(&slots_cond, &slots_mu);
        slots_free--;
        pthread_mutex_unlock(&slots_mu);
        meter_call_t *c;
        if (meter_begin_model(m, &ctx, &model, 10, 16, &c, &err)) die("begin", &err);
        meter_model_outcome_t o = {.in_tokens = 10, .out_tokens = 16, .output = "x", .output_len = 1, .output_norm_tokens = 16};
        if (meter_finish_model(c, &o, slot_done, NULL, &err)) die("finish", &err);
    }
    pthread_mutex_lock(&slots_mu);
    while (slots_free < window) pthread_cond_wait(&slots_cond, &slots_mu);
    pthread_mutex_unlock(&slots_mu);
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    ledger_stats_t st;
    ledger_stats(l, &st);
    printf("meter + ledger alone (no sandbox, model or spans), %d in flight: %.0f calls/s, cpu %.2f us/call "
           "(%.0f calls per CPU-second; %" PRIu64 " commits, largest %" PRIu64 ")\n",
           window, n / wall, cpu / n * 1e6, n / cpu, st.commits, st.max_batch);
    meter_close(m);
    ledger_close(l);
}

/* --- 3. attribution at 10M tokens --- */

static int synth_contributor(void *ud, size_t i, int64_t record, char out[METER_ADDRESS_SIZE], acc_err *err) {
    (void)ud, (void)i, (void)err;
    uint8_t a[20];
    contributor_address((int)(record % 1000), a);
    eth_address_to_text(a, out);
    return ACC_OK;
}

static void no_op_done(void *ud, const meter_receipt_t *r) { (void)ud, (void)r; }

static void attribution_at_scale(size_t target) {
    size_t cap = target * 9 + 4096, len = 0;
    char *text = malloc(cap);
    size_t nrec = 0, rcap = target / 20 + 16, words = 0;
    size_t *off = malloc(rcap * sizeof *off), *rlen = malloc(rcap * sizeof *rlen);
    while (words < target) {
        int n = 20 + (int)(rnd() % 181);
        off[nrec] = len;
        rlen[nrec] = make_text(text + len, n);
        len += rlen[nrec] + 1;
        words += (size_t)n;
        nrec++;
    }
    acc_err err = {0};
    span_index *x = span_index_new();
    double t0 = now_s();
    for (size_t r = 0; r < nrec; r++)
        if (span_index_add(x, (int64_t)r + 1, text + off[r], rlen[r], &err)) die("span add", &err);
    if (span_index_commit(x, &err)) die("span commit", &err);
    printf("attribution datanet: %zu records, %zu tokens, index built in %.1f s\n", nrec, span_index_tokens(x),
           now_s() - t0);
    enum { NQ = 300, QLEN = 200 };
    static char outs[NQ][4096];
    static size_t outlen[NQ];
    span_tokens tk = SPAN_TOKENS_INIT;
    for (int qi = 0; qi < NQ; qi++) { /* five 40-token pieces of records */
        size_t o = 0;
        int have = 0;
        while (have < QLEN) {
            size_t r = rnd() % nrec;
            span_tokenize(text + off[r], rlen[r], &tk, NULL);
            if (tk.n < 45) continue;
            size_t p = rnd() % (tk.n - 40), end = tk.v[p + 39].end, l = end - tk.v[p].start;
            if (o) outs[qi][o++] = ' ';
            memcpy(outs[qi] + o, text + off[r] + tk.v[p].start, l);
            o += l;
            have += 40;
        }
        outlen[qi] = o;
    }
    span_tokens_free(&tk);
    /* the meter's part goes to a real ledger (no fsync here: this times the computation) */
    char path[256];
    snprintf(path, sizeof path, "%s/attr.db", dir);
    ledger_t *l;
    meter_t *m;
    if (ledger_open(path, &(ledger_opts_t){.no_sync = true}, &l, &err)) die("ledger", &err);
    meter_open(l, NULL, &m, &err);
    fund_payer(l);
    meter_model_t model = {.name = "bench/model", .owner = "0xc0000000000000000000000000000000000003e7",
                           .price_per_call = 100, .price_per_1k_out = 2000, .owner_share_bps = 3000};
    double *span_t = malloc(NQ * sizeof *span_t), *meter_t_ = malloc(NQ * sizeof *meter_t_);
    double spans = 0, credits = 0;
    const span_index *xs[1] = {x};
    for (int round = 0; round < 2; round++)
        for (int qi = 0; qi < NQ; qi++) {
            rt_attribution_t a;
            span_attribution at;
            span_attr_options opts = {.min_tokens = 8};
            double a0 = thread_cpu_s();
            if (span_attribute(xs, 1, outs[qi], outlen[qi], &opts, &at, &err) ||
                rt_attribution_view(&at, outs[qi], outlen[qi], synth_contributor, NULL, &a, &err))
                die("attribute", &err);
            double a1 = thread_cpu_s();
            meter_ctx_t ctx = {.payer = "bench"};
            meter_call_t *c;
            if (meter_begin_model(m, &ctx, &model, 10, 256, &c, &err)) die("begin", &err);
            meter_model_outcome_t o = {.in_tokens = 10, .out_tokens = a.norm_tokens};
            rt_attribution_outcome(&a, outs[qi], outlen[qi], &o);
            if (meter_finish_model(c, &o, no_op_done, NULL, &err)) die("finish", &err);
            double a2 = thread_cpu_s();
            span_t[qi] = a1 - a0;
            meter_t_[qi] = a2 - a1;
            if (round) spans += (double)a.nspans, credits += (double)a.ncredits;
            rt_attribution_free(&a);
            span_attribution_free(&at);
        }
    qsort(span_t, NQ, sizeof *span_t, cmp_double);
    qsort(meter_t_, NQ, sizeof *meter_t_, cmp_double);
    printf("attribution of a 200-token output on %.0fM tokens (%.1f spans, %.1f records credited per output; thread CPU):\n"
           "  span matching, weights and contributors: median %.1f us, p99 %.1f us\n"
           "  meter (price, split, lines, event, posting queued): median %.1f us, p99 %.1f us\n",
           (double)span_index_tokens(x) / 1e6, spans / NQ, credits / NQ, span_t[NQ / 2] * 1e6, span_t[NQ * 99 / 100] * 1e6,
           meter_t_[NQ / 2] * 1e6, meter_t_[NQ * 99 / 100] * 1e6);
    meter_close(m);
    ledger_close(l);
    span_index_free(x);
    free(span_t);
    free(meter_t_);
    free(text);
    free(off);
    free(rlen);
}

/* The lua model: one call alone (a fresh sandbox, the script compiled and run, its answer, nothing
 * else), then metered end to end like the built-in model's run. */
static void lua_model_rows(registry_t *reg, const char *ledger_path, int calls, char prompts[8][64]) {
    char req[256];
    snprintf(req, sizeof req, "{\"prompt\":\"%s\",\"max_tokens\":16}", prompts[0]);
    acc_buf out = ACC_BUF_INIT;
    acc_err err = {0};
    int n = 2000;
    double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < n; i++) {
        acc_buf_reset(&out);
        if (rt_lua_model_run("bench/lua", lua_model_script, strlen(lua_model_script), req, strlen(req), &out, &err))
            die("lua model", &err);
    }
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    acc_buf_free(&out);
    printf("%-46s %8.0f calls/s  cpu %.2f us/call (a fresh sandbox, the script compiled and run)\n",
           "lua model alone, unmetered", n / wall, cpu / n * 1e6);
    run_result_t r = run(reg, ledger_path, "bench/lua", NSB, calls, true, false, true, prompts);
    printf("%-46s %8.0f calls/s  cpu %.2f us/call (sandboxes' thread %.2f)  latency p50 %.3f ms p99 %.3f ms\n",
           "lua model, metered, one core", r.calls / r.wall, r.cpu / r.calls * 1e6, r.driver_cpu / r.calls * 1e6,
           r.p50_ms, r.p99_ms);
}

int main(void) {
    if (test_scratch_dir(dir, sizeof dir, "bench-meters") != 0) return 1;
    const char *env = getenv("BENCH_METERS_CALLS");
    int calls = env ? atoi(env) : 100;
    char path[256], prompts[8][64];
    snprintf(path, sizeof path, "%s/registry.db", dir);
    registry_t *reg = make_registry(path, prompts);
    printf("# meters bench: %d sandboxes x %d calls of a built-in model (n-gram over %d records), %ld cores online\n",
           NSB, calls, NRECORDS, sysconf(_SC_NPROCESSORS_ONLN));
    char l1[256], l2[256], l3[256], l4[256], lb[256];
    snprintf(l1, sizeof l1, "%s/run1.db", dir);
    snprintf(l2, sizeof l2, "%s/run2.db", dir);
    snprintf(l3, sizeof l3, "%s/run3.db", dir);
    snprintf(l4, sizeof l4, "%s/run4.db", dir);
    snprintf(lb, sizeof lb, "%s/bare.db", dir);
    /* BENCH_METERS_LUA=1 runs the lua model's rows alone. */
    if (getenv("BENCH_METERS_LUA")) {
        lua_model_rows(reg, l4, calls, prompts);
        registry_close(reg);
        test_remove_dir(dir);
        return 0;
    }
    /* BENCH_METERS_PROFILE=1 runs the metered one-core run alone (for perf); =rr the unmetered
     * round-robin one (the sandbox's side of a call, no meter). BENCH_METERS_NSB=N runs it with N
     * sandboxes instead of 1,000 (how much of a call is its sandbox's memory gone cold). */
    if (getenv("BENCH_METERS_PROFILE")) {
        bool rr = strcmp(getenv("BENCH_METERS_PROFILE"), "rr") == 0;
        int nsb = getenv("BENCH_METERS_NSB") ? atoi(getenv("BENCH_METERS_NSB")) : NSB;
        if (nsb < 1 || nsb > NSB) nsb = NSB;
        run_result_t one = run(reg, l1, "bench/gen", nsb, calls, !rr, rr, true, prompts);
        printf("%s, one core: %.0f calls/s, cpu %.2f us/call (sandboxes' thread %.2f, the rest %.2f); "
               "latency p50 %.1f ms p99 %.1f ms; %.3f page faults a call; %" PRIu64 " commits, %.0f postings each, %.2f ms each\n",
               rr ? "unmetered round-robin" : "metered", one.calls / one.wall, one.cpu / one.calls * 1e6, one.driver_cpu / one.calls * 1e6,
               (one.cpu - one.driver_cpu) / one.calls * 1e6, one.p50_ms, one.p99_ms, one.faults / one.calls, one.ls.commits,
               (double)one.ls.postings / (double)(one.ls.commits ? one.ls.commits : 1),
               (double)one.ls.commit_ns / 1e6 / (double)(one.ls.commits ? one.ls.commits : 1));
        registry_close(reg);
        test_remove_dir(dir);
        return 0;
    }
    {
        char l0[256];
        snprintf(l0, sizeof l0, "%s/alone.db", dir);
        meter_alone(l0, 200000, 4000);
    }
    run_result_t hot = run(reg, NULL, "bench/gen", NSB, calls, false, false, true, prompts);
    run_result_t bare = run(reg, NULL, "bench/gen", NSB, calls, false, true, true, prompts);
    run_result_t one = run(reg, l1, "bench/gen", NSB, calls, true, false, true, prompts);
    run_result_t two = run(reg, l2, "bench/gen", NSB, calls, true, false, false, prompts);
    /* one call in flight: what a call adds when nothing else is queued (a commit, fsync included) */
    int lone_calls = calls * 20 > 5000 ? 5000 : calls * 20;
    run_result_t lone_bare = run(reg, NULL, "bench/gen", 1, lone_calls, false, false, true, prompts);
    run_result_t lone = run(reg, l3, "bench/gen", 1, lone_calls, true, false, true, prompts);
    struct {
        const char *what;
        run_result_t *r;
    } rows[] = {{"unmetered, answered at once, one core", &hot},
                {"unmetered, answered round-robin, one core", &bare},
                {"metered, one core", &one},
                {"metered, both cores", &two},
                {"unmetered, 1 in flight, one core", &lone_bare},
                {"metered, 1 in flight, one core", &lone}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        run_result_t *r = rows[i].r;
        printf("%-46s %8.0f calls/s  cpu %.2f us/call (sandboxes' thread %.2f)  latency p50 %.3f ms p99 %.3f ms max %.1f ms",
               rows[i].what, r->calls / r->wall, r->cpu / r->calls * 1e6, r->driver_cpu / r->calls * 1e6, r->p50_ms,
               r->p99_ms, r->max_ms);
        if (r->ls.commits)
            printf("  (%" PRIu64 " commits, %.0f postings each, largest %" PRIu64 ", %.1f account rows each, %.2f ms each)",
                   r->ls.commits, (double)r->ls.postings / (double)r->ls.commits, r->ls.max_batch,
                   (double)r->ls.account_rows / (double)r->ls.commits, (double)r->ls.commit_ns / 1e6 / (double)r->ls.commits);
        printf("\n");
    }
    printf("metering adds %.2f us of CPU per call (one core; metered - unmetered round-robin)\n",
           (one.cpu - bare.cpu) / one.calls * 1e6);
    printf("rows written per call: 1 posting (%.2f account rows besides, at the run's batches)\n",
           (double)one.ls.account_rows / (double)(one.ls.postings ? one.ls.postings : 1));
    /* The physical limit, twice: the run's own transactions (its mean batch and account rows per
     * commit), and a well-fed group commit's (1,000 postings a transaction, every account the run
     * touched updated once). */
    size_t nrows;
    double per_txn = (double)one.ls.postings / (double)(one.ls.commits ? one.ls.commits : 1), bare_cpu, big_cpu;
    double acc_per_txn = (double)one.ls.account_rows / (double)(one.ls.commits ? one.ls.commits : 1);
    double bare_rate = bare_sqlite(l1, lb, per_txn, acc_per_txn, &nrows, &bare_cpu);
    char lbb[256];
    snprintf(lbb, sizeof lbb, "%s/bare_big.db", dir);
    int touched = touched_accounts(l1);
    double big_rate = bare_sqlite(l1, lbb, 1000, touched, &nrows, &big_cpu);
    printf("bare SQLite loop, the same %zu rows in the run's transactions (%.0f postings, %.1f account rows), "
           "synchronous=FULL: %.0f rows/s, cpu %.2f us/row; metered end to end on one core is %.2fx of it in rows/s, "
           "%.2fx in CPU per row\n",
           nrows, per_txn, acc_per_txn, bare_rate, bare_cpu * 1e6, one.calls / one.wall / bare_rate,
           bare_cpu / (one.cpu / one.calls));
    printf("bare SQLite loop, the same rows in transactions of 1000 (%d account rows), synchronous=FULL: %.0f rows/s, "
           "cpu %.2f us/row; metered end to end on one core is %.2fx of it in rows/s, %.2fx in CPU per row\n",
           touched, big_rate, big_cpu * 1e6, one.calls / one.wall / big_rate, big_cpu / (one.cpu / one.calls));
    printf("per core of CPU: metered %.0f calls/s, unmetered %.0f calls/s, bare SQLite %.0f rows/s (run's batches), "
           "%.0f rows/s (batches of 1000)\n",
           one.calls / one.cpu, bare.calls / bare.cpu, 1 / bare_cpu, 1 / big_cpu);
    lua_model_rows(reg, l4, calls / 10 ? calls / 10 : 1, prompts);
    registry_close(reg);
    factory_cache_clear();
    const char *tenv = getenv("BENCH_METERS_TOKENS");
    attribution_at_scale(tenv ? strtoull(tenv, NULL, 10) : 10000000);
    test_remove_dir(dir);
    return 0;
}
