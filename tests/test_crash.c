/*
 * test_crash.c: kill -9 under metered load, many times, some of them during recovery.
 *
 * A child process opens the ledger (SQLite's recovery of a killed writer happens here), retries a
 * few calls of earlier rounds by their ids, then runs metered calls from four client threads as
 * fast as the ledger takes them, logging "S id" when a call starts and "C id" once its receipt says
 * it is durable (the moment a real client would see its answer). The parent kills it with SIGKILL
 * at a random moment (a quarter of the rounds within a few milliseconds of the start, while it
 * recovers and retries), then checks, each round:
 *   - ledger_check (with the usage-event checker) holds;
 *   - every call the client saw charged ("C") is stored exactly once, posted;
 *   - a retry of a call seen charged comes back as a duplicate, never charged again ("N" for one is
 *     a double charge); a retry of a call whose outcome was unknown is charged at most once.
 * The log is a file written with O_APPEND (one write a line), so lines survive the kill intact.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meters/meters.h"
#include "tests/check.h"

static char dir[128], db_path[256], log_path[256];

#define PAYER "crash-client"
#define CLIENTS 4
#define IN_FLIGHT 64

/* --- the child --- */

typedef struct child {
    meter_t *m;
    int log;
    sem_t slots[CLIENTS];
} child_t;

static void log_line(int fd, char tag, const ledger_id_t *id) {
    char line[40];
    line[0] = tag;
    line[1] = ' ';
    ledger_id_hex(id, line + 2);
    line[34] = '\n';
    if (write(fd, line, 35) != 35) _exit(3);
}

typedef struct pending {
    child_t *c;
    int slot; /* -1: a retry */
    ledger_id_t id;
} pending_t;

static void on_receipt(void *ud, const meter_receipt_t *r) {
    pending_t *p = ud;
    if (p->slot < 0) log_line(p->c->log, r->duplicate ? 'D' : r->status == ACC_OK ? 'N' : 'F', &p->id);
    else if (r->status == ACC_OK) log_line(p->c->log, 'C', &p->id);
    if (p->slot >= 0) sem_post(&p->c->slots[p->slot]);
    free(p);
}

static const meter_model_t *crash_model(void) {
    static meter_model_t m = {.name = "crash/model", .owner = "0x1111111111111111111111111111111111111111",
                              .price_per_call = 100, .price_per_1k_in = 1000, .price_per_1k_out = 3000,
                              .owner_share_bps = 2000};
    return &m;
}

/* One metered call: begin, "run the model", finish. id NULL: a new call. */
static void one_call(child_t *c, int slot, const ledger_id_t *id) {
    static const char out[] = "the quick brown fox jumps over the lazy dog again";
    static const int64_t recs[] = {1, 2};
    static const meter_span_t spans[] = {{4, 40, 8, 2, recs}};
    static const meter_credit_t credits[] = {{1, "0x2222222222222222222222222222222222222222", 3},
                                             {2, "0x3333333333333333333333333333333333333333", 5}};
    pending_t *p = malloc(sizeof *p);
    if (!p) _exit(4);
    p->c = c;
    p->slot = slot;
    if (id) p->id = *id;
    else ledger_id_new(&p->id);
    if (slot >= 0) log_line(c->log, 'S', &p->id);
    meter_ctx_t ctx = {.payer = PAYER, .session = "crash", .id = &p->id};
    meter_call_t *call;
    if (meter_begin_model(c->m, &ctx, crash_model(), 16, 16, &call, NULL) != ACC_OK) _exit(5);
    meter_model_outcome_t o = {.in_tokens = 12, .out_tokens = 10, .output = out, .output_len = sizeof out - 1,
                               .output_norm_tokens = 10, .covered_tokens = 8, .nspans = 1, .spans = spans,
                               .ncredits = 2, .credits = credits};
    if (meter_finish_model(call, &o, on_receipt, p, NULL) != ACC_OK) _exit(6);
}

typedef struct client_arg {
    child_t *c;
    int slot;
} client_arg_t;

static void *client(void *arg) {
    client_arg_t *a = arg;
    for (;;) {
        sem_wait(&a->c->slots[a->slot]);
        one_call(a->c, a->slot, NULL);
    }
    return NULL;
}

static void child_main(const ledger_id_t *retries, size_t nretries) {
    child_t c;
    c.log = open(log_path, O_WRONLY | O_APPEND);
    ledger_t *l;
    acc_err err = {0};
    if (c.log < 0 || ledger_open(db_path, NULL, &l, &err) != ACC_OK) _exit(2);
    meter_config_t cfg = meter_config_default();
    cfg.operator_fee_bps = 250;
    if (meter_open(l, &cfg, &c.m, &err) != ACC_OK) _exit(2);
    for (size_t i = 0; i < nretries; i++) one_call(&c, -1, &retries[i]);
    client_arg_t args[CLIENTS];
    pthread_t th;
    for (int i = 0; i < CLIENTS; i++) {
        sem_init(&c.slots[i], 0, IN_FLIGHT);
        args[i] = (client_arg_t){&c, i};
        pthread_create(&th, NULL, client, &args[i]);
    }
    for (;;) pause();
}

/* --- the parent --- */

typedef struct idset {
    ledger_id_t *v;
    size_t n, cap;
} idset_t;

static void idset_add(idset_t *s, const ledger_id_t *id) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = *id;
}

static int id_cmp(const void *a, const void *b) { return memcmp(a, b, 16); }

static bool idset_has(const idset_t *sorted, const ledger_id_t *id) {
    return sorted->n && bsearch(id, sorted->v, sorted->n, sizeof *id, id_cmp) != NULL;
}

static void idset_sort(idset_t *s) {
    if (s->n) qsort(s->v, s->n, sizeof *s->v, id_cmp);
}

typedef struct stored {
    idset_t ids;
    size_t voided;
} stored_t;

static int collect(void *ud, const ledger_entry_t *e) {
    stored_t *s = ud;
    if (e->code == LEDGER_CODE_MODEL_CALL) {
        if (e->state == LEDGER_POSTED) idset_add(&s->ids, &e->id);
        else s->voided++;
    }
    return ACC_OK;
}

static void test_kill_9_under_metered_load(void) {
    test_seed("ACCRUE_CRASH_SEED", 99);
    snprintf(db_path, sizeof db_path, "%s/crash.db", dir);
    snprintf(log_path, sizeof log_path, "%s/client.log", dir);
    {
        ledger_t *l;
        acc_err err = {0};
        CHECK_MSG(ledger_open(db_path, NULL, &l, &err) == ACC_OK, "%s", err.msg);
        ledger_account_t *payer;
        ledger_account(l, LEDGER_ACCOUNT_USER, PAYER, &payer, NULL);
        ledger_transfer_t t = {ledger_system(l, LEDGER_SYSTEM_EXTERNAL), payer, UINT64_C(1) << 50, LEDGER_CODE_TOPUP};
        ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &t, .ntransfers = 1};
        ledger_id_new(&p.id);
        ledger_result_t r;
        CHECK(ledger_submit_wait(l, &p, &r, NULL) == ACC_OK);
        ledger_close(l);
    }
    int rounds = test_slow_tool() ? 6 : 40;
    idset_t charged = {0}, unknown = {0}, stored_before = {0}; /* stored_before: sorted, the last scan */
    size_t total_charged = 0, during_recovery = 0, retried_dup = 0, retried_new = 0, double_charges = 0;
    size_t missing = 0, check_failures = 0;
    for (int round = 0; round < rounds; round++) {
        int fd = open(log_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
        close(fd);
        /* retries: a few calls seen charged (must come back duplicate) and a few of unknown outcome */
        ledger_id_t retries[16];
        size_t nr = 0;
        for (int i = 0; i < 8 && charged.n; i++) retries[nr++] = charged.v[test_rand() % charged.n];
        for (int i = 0; i < 8 && unknown.n; i++) retries[nr++] = unknown.v[test_rand() % unknown.n];
        bool early = round % 4 == 0;
        useconds_t delay = early ? (useconds_t)(test_rand() % 3000) : (useconds_t)(5000 + test_rand() % 150000);
        delay = (useconds_t)(delay * test_time_scale()); /* under valgrind the child starts slowly */
        pid_t pid = fork();
        if (pid == 0) child_main(retries, nr);
        usleep(delay);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "round %d: the child ended on its own (status %d)", round,
                  st);
        if (early) during_recovery++;
        /* what the client saw */
        FILE *f = fopen(log_path, "r");
        char line[64];
        idset_t started = {0}, seen = {0};
        idset_sort(&charged);
        while (f && fgets(line, sizeof line, f)) {
            ledger_id_t id;
            if (strlen(line) != 35 || ledger_id_parse(line + 2, 32, &id, NULL) != ACC_OK) continue;
            switch (line[0]) {
            case 'S': idset_add(&started, &id); break;
            case 'C': idset_add(&seen, &id); break;
            case 'D': retried_dup++; break;
            case 'N':
                if (idset_has(&stored_before, &id)) double_charges++;
                else idset_add(&seen, &id), retried_new++;
                break;
            }
        }
        if (f) fclose(f);
        /* the ledger after the crash */
        ledger_t *l;
        acc_err err = {0};
        CHECK_MSG(ledger_open(db_path, &(ledger_opts_t){.readonly = true}, &l, &err) == ACC_OK, "%s", err.msg);
        if (ledger_check(l, meter_check_event, l, NULL, &err) != ACC_OK) {
            check_failures++;
            CHECK_MSG(0, "round %d: %s", round, err.msg);
        }
        stored_t s = {0};
        CHECK(ledger_scan(l, 1, 0, false, collect, &s, NULL) == ACC_OK);
        ledger_close(l);
        idset_sort(&s.ids);
        for (size_t i = 1; i < s.ids.n; i++)
            if (memcmp(&s.ids.v[i], &s.ids.v[i - 1], 16) == 0) double_charges++;
        for (size_t i = 0; i < seen.n; i++) {
            if (!idset_has(&s.ids, &seen.v[i])) missing++;
            idset_add(&charged, &seen.v[i]);
        }
        total_charged += seen.n;
        idset_sort(&seen);
        for (size_t i = 0; i < started.n; i++)
            if (!idset_has(&seen, &started.v[i])) idset_add(&unknown, &started.v[i]);
        free(started.v);
        free(seen.v);
        free(stored_before.v);
        stored_before = s.ids;
    }
    free(stored_before.v);
    printf("# crash: %d kills (%zu within 3 ms of the start), %zu calls seen charged, retries: %zu duplicates, "
           "%zu first charges\n",
           rounds, during_recovery, total_charged, retried_dup, retried_new);
    CHECK_EQ(missing, 0);
    CHECK_EQ(double_charges, 0);
    CHECK_EQ(check_failures, 0);
    CHECK_MSG(total_charged > (size_t)rounds * 10, "only %zu calls charged in %d rounds: the load did not run",
              total_charged, rounds);
    CHECK_MSG(retried_dup > 0, "no retry of a charged call came back");
    free(charged.v);
    free(unknown.v);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    if (test_scratch_dir(dir, sizeof dir, "crash") != 0) return 1;
    RUN(test_kill_9_under_metered_load);
    test_remove_dir(dir);
    return check_finish("crash");
}
