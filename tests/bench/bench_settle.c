/*
 * bench_settle.c: cutting one settlement batch of 1M transfers over 100k payees: the postings read
 * and netted, the entries sorted, the StandardMerkleTree built, the batch signed and committed with
 * its 100k settlement transfers; then every proof of the batch computed from the stored batch.
 * Beside it, in the same run, the time the same rows take just to be read: a bare SQLite loop over
 * the ledger's posting rows (the physical limit of any cut that reads them), and the ledger's own
 * scan (which also decodes each row's transfers). Target: the cut in at most 3 s.
 *
 * The ledger is loaded through ledger_submit (group commit, no fsync: setup only): 200,000 calls,
 * each paying 4 of 100,000 payees under charge codes plus the operator's fee, so 1,000,000
 * transfers, 800,000 of them to payees. The bare loop reads the table ledger_postings, which the
 * SQLite store (meters/ledger/store_sqlite.c) defines; a bench may know that, the code may not.
 * Then listing: 1,000 batches of about 1,000 entries, one address in every tenth: the time to list
 * that address's batches, and a page of all batches, from the ledger's index of settlements, beside
 * the way it was done before that index (ACCRUE_BENCH_SETTLE_NO_LIST=1 leaves this part out).
 * Run with `zig build bench -Doptimize=ReleaseFast`; ACCRUE_BENCH_SMALL=1 runs a tenth of it.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "meters/eth/keys.h"
#include "meters/ledger/ledger.h"
#include "meters/settle/settle.h"
#include "tests/util.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void) { /* every thread's: the cut's and the ledger writer's */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const acc_err *err) {
    fprintf(stderr, "bench_settle: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static void address_of(unsigned k, uint8_t a[20]) {
    uint64_t x = (uint64_t)k * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < 20; i++) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ull;
        a[i] = (uint8_t)(x >> 56);
    }
}

static void submitted(void *ud, const ledger_result_t *res) {
    if (res->status != ACC_OK) {
        fprintf(stderr, "bench_settle: a posting failed: %s\n", res->err.msg);
        exit(1);
    }
    __atomic_add_fetch((uint64_t *)ud, 1, __ATOMIC_RELAXED);
}

/* A ledger (no fsync: setup only) with a funded payer *u and payees p[0..payees) (caller frees
 * p), payee k at address_of(first + k). */
static ledger_t *open_funded(const char *path, unsigned first, unsigned payees, ledger_account_t **u,
                             ledger_account_t ***payees_out) {
    ledger_t *l;
    acc_err err = {0};
    ledger_opts_t o = {.no_sync = true};
    if (ledger_open(path, &o, &l, &err) != ACC_OK) die("open", &err);
    ledger_account_t **p = malloc(payees * sizeof *p);
    if (ledger_account(l, LEDGER_ACCOUNT_USER, "payer", u, &err) != ACC_OK) die("account", &err);
    for (unsigned k = 0; k < payees; k++) {
        uint8_t a[20];
        char text[ETH_ADDRESS_TEXT_SIZE];
        address_of(first + k, a);
        eth_address_to_text(a, text);
        if (ledger_account(l, LEDGER_ACCOUNT_ADDRESS, text, &p[k], &err) != ACC_OK) die("account", &err);
    }
    ledger_result_t res;
    ledger_transfer_t top = {ledger_system(l, LEDGER_SYSTEM_EXTERNAL), *u, LEDGER_AMOUNT_MAX / 2, LEDGER_CODE_TOPUP};
    ledger_posting_t tp = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &top, .ntransfers = 1};
    ledger_id_new(&tp.id);
    if (ledger_submit_wait(l, &tp, &res, &err) != ACC_OK) die("top-up", &err);
    *payees_out = p;
    return l;
}

static void load(const char *path, unsigned calls, unsigned payees) {
    ledger_account_t *u, **p;
    ledger_t *l = open_funded(path, 0, payees, &u, &p);
    acc_err err = {0};
    uint64_t done = 0, rng = 42;
    for (unsigned c = 0; c < calls; c++) {
        ledger_transfer_t t[5];
        unsigned ks[4];
        for (int j = 0; j < 4; j++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            /* the first payee walks through all of them, so every payee earns; the others are random */
            unsigned k = j == 0 ? c % payees : (unsigned)((rng >> 33) % payees);
            for (int i = 0; i < j; i++)
                if (ks[i] == k) k = (k + 1) % payees, i = -1; /* four distinct payees */
            ks[j] = k;
            t[j] = (ledger_transfer_t){u, p[k], 1 + (rng >> 40) % 1000, j == 3 ? LEDGER_CODE_DATA_QUERY : LEDGER_CODE_MODEL_CALL};
        }
        t[4] = (ledger_transfer_t){u, ledger_system(l, LEDGER_SYSTEM_OPERATOR), 2, LEDGER_CODE_OPERATOR_FEE};
        ledger_posting_t post = {.state = LEDGER_POSTED, .code = LEDGER_CODE_MODEL_CALL, .transfers = t, .ntransfers = 5,
                                 .event = "usage", .event_len = 5};
        ledger_id_new(&post.id);
        while (ledger_submit(l, &post, submitted, &done, &err) != ACC_OK) {
            if (err.code != ACC_EBUSY) die("submit", &err);
            usleep(1000);
        }
        while ((uint64_t)c >= __atomic_load_n(&done, __ATOMIC_RELAXED) + 20000) usleep(1000); /* bounded queue */
    }
    while (__atomic_load_n(&done, __ATOMIC_RELAXED) < calls) usleep(1000);
    free(p);
    ledger_close(l);
}

/* The bare loop: every posting row's transfers read as SQLite hands them out. */
static double bare_read(const char *path, uint64_t first, uint64_t last, uint64_t *bytes) {
    sqlite3 *db;
    sqlite3_stmt *st;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die("sqlite open", NULL);
    double t = now();
    if (sqlite3_prepare_v2(db, "SELECT seq, state, code, legs FROM ledger_postings WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        die(sqlite3_errmsg(db), NULL);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)first);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)last);
    uint64_t sum = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *b = sqlite3_column_blob(st, 3);
        int n = sqlite3_column_bytes(st, 3);
        sum += (uint64_t)sqlite3_column_int64(st, 0) + (uint64_t)n + (n ? b[n - 1] : 0);
    }
    t = now() - t;
    sqlite3_finalize(st);
    sqlite3_close(db);
    *bytes = sum;
    return t;
}

typedef struct scan_sum {
    uint64_t legs;
} scan_sum;

static int count_legs(void *ud, const ledger_entry_t *e) {
    ((scan_sum *)ud)->legs += e->nlegs;
    return ACC_OK;
}

/* ---------------------------------------------------------------- listing batches */

typedef struct list_count {
    size_t n;
    uint64_t amount;
} list_count;

static int count_listed(void *ud, const settle_batch_t *b, const settle_entry_t *e) {
    list_count *c = ud;
    c->n++;
    if (e) c->amount += e->amount;
    (void)b;
    return ACC_OK;
}

typedef struct seq_list {
    uint64_t *v;
    size_t n;
} seq_list;

static int collect_seq(void *ud, const settle_batch_t *b, const settle_entry_t *e) {
    (void)e;
    seq_list *s = ud;
    s->v[s->n++] = b->sequence;
    return ACC_OK;
}

/* Many batches, one address in a tenth of them: the time to list that address's newest 50 (and a
 * page of 50 batches) from the ledger's index, beside what the server did before the index: every
 * batch read with its entries and searched for the address. nbatches batches of about
 * 4 * calls_per payees each, drawn from a pool of pool payees. */
static void bench_listing(const char *dir, const eth_key *key, unsigned nbatches, unsigned calls_per, unsigned pool) {
    char path[256];
    snprintf(path, sizeof path, "%s/list.db", dir);
    ledger_account_t *u, **p;
    ledger_t *l = open_funded(path, 1000000, pool + 1, &u, &p); /* p[pool]: the address listed */
    acc_err err = {0};
    uint8_t target[20];
    address_of(1000000 + pool, target);
    uint8_t contract[20] = {0xc1, 0xa1, 0x3e};
    uint64_t rng = 7, done = 0, submitted_n = 0, owed = 0;
    double t0 = now();
    for (unsigned b = 1; b <= nbatches; b++) {
        for (unsigned c = 0; c < calls_per; c++) {
            ledger_transfer_t t[4];
            for (int j = 0; j < 4; j++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                unsigned k = (unsigned)((rng >> 33) % pool);
                if (j == 0 && c == 0 && b % 10 == 0) k = pool; /* the target, in every tenth batch */
                t[j] = (ledger_transfer_t){u, p[k], 1 + (rng >> 40) % 1000, LEDGER_CODE_MODEL_CALL};
                if (k == pool) owed += t[j].amount;
            }
            ledger_posting_t post = {.state = LEDGER_POSTED, .code = LEDGER_CODE_MODEL_CALL, .transfers = t,
                                     .ntransfers = 4, .event = "usage", .event_len = 5};
            ledger_id_new(&post.id);
            while (ledger_submit(l, &post, submitted, &done, &err) != ACC_OK) {
                if (err.code != ACC_EBUSY) die("submit", &err);
                usleep(1000);
            }
            submitted_n++;
        }
        while (__atomic_load_n(&done, __ATOMIC_RELAXED) < submitted_n) usleep(200);
        settle_cut_opts_t co = {.key = key, .chain_id = 1, .contract = contract};
        settle_batch_t *cut = NULL;
        if (settle_cut(l, &co, &cut, &err) != ACC_OK || !cut) die("cut", &err);
        settle_batch_free(cut);
    }
    double made = now() - t0;

    /* The address's newest 50, then every one of its batches; a page of 50 of all batches. */
    settle_list_opts_t mine = {.address = target, .limit = 50}, page = {.limit = 50, .before = nbatches / 2},
                       newest = {.limit = 50};
    double t_mine = 1e9, t_page = 1e9, t_all_mine = 1e9, t_newest = 1e9;
    list_count c = {0};
    for (int r = 0; r < 5; r++) {
        double t = now();
        c = (list_count){0};
        if (settle_batches(l, &mine, count_listed, &c, &err) != ACC_OK) die("list", &err);
        t = now() - t;
        if (t < t_mine) t_mine = t;
        if (c.n != (nbatches / 10 < 50 ? nbatches / 10 : 50)) die("list: not the address's newest 50 batches", NULL);
        t = now();
        list_count all = {0};
        settle_list_opts_t every = {.address = target};
        if (settle_batches(l, &every, count_listed, &all, &err) != ACC_OK) die("list", &err);
        t = now() - t;
        if (t < t_all_mine) t_all_mine = t;
        if (all.n != nbatches / 10 || all.amount != owed) die("list: the address's batches do not add up", NULL);
        t = now();
        list_count pc = {0};
        if (settle_batches(l, &page, count_listed, &pc, &err) != ACC_OK) die("page", &err);
        t = now() - t;
        if (t < t_page) t_page = t;
        if (pc.n != 50) die("page: not 50 batches", NULL);
        t = now();
        pc = (list_count){0};
        if (settle_batches(l, &newest, count_listed, &pc, &err) != ACC_OK) die("page", &err);
        t = now() - t;
        if (t < t_newest) t_newest = t;
        if (pc.n != 50) die("page: not 50 batches", NULL);
    }
    /* Before the index: the chain listed, each batch read whole and searched (once: it is slow). */
    double t = now();
    seq_list s = {malloc(nbatches * sizeof *s.v), 0};
    if (settle_batches(l, NULL, collect_seq, &s, &err) != ACC_OK) die("list", &err);
    size_t found = 0;
    for (size_t i = 0; i < s.n && found < c.n; i++) {
        settle_batch_t *b;
        if (settle_batch_get(l, s.v[i], &b, &err) != ACC_OK) die("get", &err);
        size_t lo = 0, hi = b->entry_count;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int cmp = memcmp(b->entries[mid].address, target, 20);
            if (cmp == 0) {
                found++;
                break;
            }
            if (cmp < 0) lo = mid + 1;
            else hi = mid;
        }
        settle_batch_free(b);
    }
    double t_old = now() - t;
    free(s.v);
    if (found != c.n) die("the old way did not find the same batches", NULL);
    printf("bench_settle: listing: %u batches of about %u entries (%.1f s to make), one address in every tenth\n",
           nbatches, 4 * calls_per, made);
    printf("  the address's newest 50 batches (settle_batches, ledger index): %8.3f ms\n", t_mine * 1e3);
    printf("  all %u of its batches:                                          %8.3f ms\n", nbatches / 10, t_all_mine * 1e3);
    printf("  the newest 50 batches:                                          %8.3f ms\n", t_newest * 1e3);
    printf("  a page of 50 batches further back (--before %u):                %8.3f ms\n", nbatches / 2, t_page * 1e3);
    printf("  its newest 50 the old way (each batch read with its entries):   %8.3f ms\n", t_old * 1e3);
    free(p);
    ledger_close(l);
}

int main(void) {
    int small = getenv("ACCRUE_BENCH_SMALL") != NULL;
    unsigned calls = small ? 20000 : 200000, payees = small ? 10000 : 100000;
    char dir[128], path[256];
    if (test_scratch_dir(dir, sizeof dir, "bench-settle") != 0) return 1;
    snprintf(path, sizeof path, "%s/bench.db", dir);
    double t0 = now();
    /* ACCRUE_BENCH_SETTLE_DB=FILE keeps a copy of the loaded ledger there and starts from it next
     * time (loading is most of the run; the cut changes the database, so it always gets a copy). */
    const char *keep = getenv("ACCRUE_BENCH_SETTLE_DB");
    char cmd[1024];
    if (keep && access(keep, R_OK) == 0) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s' && if [ -f '%s-wal' ]; then cp '%s-wal' '%s-wal'; fi", keep, path, keep,
                 keep, path);
    } else {
        load(path, calls, payees);
        snprintf(cmd, sizeof cmd, keep ? "cp '%s' '%s' && if [ -f '%s-wal' ]; then cp '%s-wal' '%s-wal'; fi" : "true",
                 path, keep, path, path, keep);
    }
    if (system(cmd) != 0) die("copying the ledger", NULL);
    printf("bench_settle: loaded %u calls (%u transfers) over %u payees in %.1f s\n", calls, calls * 5, payees, now() - t0);

    uint8_t secret[32];
    memset(secret, 7, 32);
    eth_key *key;
    if (eth_key_from_secret(&key, secret, NULL) != ACC_OK) die("key", NULL);
    uint8_t contract[20] = {0xc1, 0xa1, 0x3e};

    ledger_t *l;
    acc_err err = {0};
    ledger_opts_t o = {0}; /* the cut commits with fsync, as in production */
    if (ledger_open(path, &o, &l, &err) != ACC_OK) die("open", &err);
    uint64_t last;
    ledger_last_seq(l, &last, &err);

    /* The rows read, three ways, alternating with nothing else running. */
    uint64_t bytes = 0;
    double bare = 1e9, scan = 1e9;
    for (int r = 0; r < 3; r++) {
        double b = bare_read(path, 1, last, &bytes);
        if (b < bare) bare = b;
        scan_sum s = {0};
        double t = now();
        if (ledger_scan(l, 1, last, false, count_legs, &s, &err) != ACC_OK) die("scan", &err);
        t = now() - t;
        if (t < scan) scan = t;
        if (s.legs != (uint64_t)calls * 5 + 1) die("scan: wrong number of transfers", NULL);
    }

    settle_cut_opts_t co = {.key = key, .chain_id = 1, .contract = contract};
    settle_batch_t *b = NULL;
    ledger_stats_t st0, st1;
    ledger_stats(l, &st0);
    double t = now(), c0 = cpu_now();
    if (settle_cut(l, &co, &b, &err) != ACC_OK || !b) die("cut", &err);
    double cut = now() - t, cut_cpu = cpu_now() - c0;
    ledger_stats(l, &st1);
    double commit = (double)(st1.commit_ns - st0.commit_ns) / 1e9;
    if (b->entry_count != payees || b->last_transfer != last) die("cut: not the whole range", NULL);

    /* Every proof, from the batch as the ledger stores it. */
    t = now();
    settle_batch_t *got = NULL;
    merkle_tree *tree = NULL;
    if (settle_batch_get(l, 1, &got, &err) != ACC_OK || settle_batch_tree(got, &tree, &err) != ACC_OK) die("get", &err);
    double load_batch = now() - t;
    size_t cap = merkle_max_proof_len(tree), total_hashes = 0;
    uint8_t (*proof)[32] = malloc(cap * sizeof *proof);
    t = now();
    for (size_t i = 0; i < got->entry_count; i++) total_hashes += merkle_proof(tree, i, proof);
    double proofs = now() - t;
    free(proof);

    printf("bench_settle: %u payees, %llu postings (%u transfers)\n", payees, (unsigned long long)last, calls * 5 + 1);
    printf("  read the rows, bare SQLite loop:       %7.3f s  (%.0f rows/s)\n", bare, (double)last / bare);
    printf("  read the rows, ledger_scan (decoded):  %7.3f s\n", scan);
    printf("  cut the batch (read, net, sort, tree, sign, commit %llu transfers): %7.3f s  (%.2fx the bare read; target <= 3 s)\n",
           (unsigned long long)b->entry_count, cut, cut / bare);
    printf("    CPU time (all threads): %.3f s\n", cut_cpu);
    printf("    of which the ledger's commit (write and fsync): %.3f s\n", commit);
    printf("  the stored batch read back with its tree: %7.3f s; all %llu proofs (%zu hashes): %7.3f s\n", load_batch,
           (unsigned long long)got->entry_count, total_hashes, proofs);
    merkle_free(tree);
    settle_batch_free(got);
    settle_batch_free(b);
    ledger_close(l);
    if (!getenv("ACCRUE_BENCH_SETTLE_NO_LIST")) bench_listing(dir, key, small ? 200 : 1000, 250, small ? 5000 : 20000);
    eth_key_free(key);
    test_remove_dir(dir);
    return 0;
}
