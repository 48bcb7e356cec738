/*
 * bench_registry.c: the registry's import, full-text queries and API key lookups.
 *
 * The datanet is synthetic English-like text (tests/bench/synth_text.h: Zipf(1) words over a
 * 200k-word vocabulary, so a few words are everywhere and most are rare, as in real text), 8..30
 * words a record, 100 contributors. Measured:
 *   - import: registry_import_jsonl of 100,000 JSON Lines records into a fresh file, one
 *     transaction (parse each line, check the text and the address, hash it, insert it, index it
 *     in FTS5); beside it, the physical limit: a bare SQLite loop inserting the same rows (already
 *     parsed and hashed) into the same tables, FTS5 included, in one transaction, with prepared
 *     statements; and the same loop without the FTS5 index, to show what the index costs;
 *   - query: registry_query of 1 to 5 words drawn from the same distribution, limit 10, over the
 *     100k records (the words' document frequencies are what a real datanet has: a query with a
 *     common word ranks tens of thousands of matches), p50, p99 and mean; beside it the bare FTS5
 *     statement with the same expression;
 *   - registry_account_by_key: one keccak-256 and one index probe, per request.
 * Run with `zig build bench -Doptimize=ReleaseFast`; REGISTRY_BENCH_RECORDS overrides the size.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "registry/registry.h"
#include "runtime/base/buf.h"
#include "tests/bench/synth_text.h"

/* The machine is shared: times are this thread's CPU time (the work done, whatever else runs), with
 * REGISTRY_BENCH_WALL=1 wall-clock time instead (commits' fsync included). */
static double now(void) {
    struct timespec ts;
    clock_gettime(getenv("REGISTRY_BENCH_WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct row {
    char *text;
    size_t len;
    uint8_t contributor[20], hash[32];
} row_t;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static registry_t *fresh(const char *path, const char *datanet) {
    unlink(path);
    char side[512];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    registry_t *reg;
    acc_err err = {0};
    if (registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err) != ACC_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    registry_datanet_spec_t spec = {.name = datanet};
    if (registry_datanet_create(reg, &spec, NULL, &err) != ACC_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    return reg;
}

/* The physical limit: the same rows into the same tables with prepared statements, one transaction. */
static double bare_insert(const char *path, const row_t *rows, size_t n, int with_fts) {
    registry_t *reg = fresh(path, "bench");
    registry_close(reg);
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA synchronous = FULL; PRAGMA cache_size = -16384", NULL, NULL, NULL);
    sqlite3_stmt *ins, *fts;
    sqlite3_prepare_v2(db,
                       "INSERT INTO records (datanet_id, seq, contributor, content_hash, text, status, created_ms, "
                       "status_ms, signature, provenance) VALUES (1, ?1, ?2, ?3, ?4, 'accepted', ?5, ?5, NULL, ?6)",
                       -1, &ins, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO records_fts_1 (rowid, text) VALUES (?1, ?2)", -1, &fts, NULL); /* datanet 1's */
    const char *prov = "{\"kind\":\"owner_import\",\"by\":\"0x0000000000000000000000000000000000000000\",\"signed\":false,"
                       "\"source\":\"bench.jsonl\",\"line\":1}";
    double t = now();
    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)i + 1);
        sqlite3_bind_blob(ins, 2, rows[i].contributor, 20, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 3, rows[i].hash, 32, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, rows[i].text, (int)rows[i].len, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, 1700000000000);
        sqlite3_bind_text(ins, 6, prov, -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) fprintf(stderr, "bench: bare insert: %s\n", sqlite3_errmsg(db));
        sqlite3_reset(ins);
        if (with_fts) {
            sqlite3_bind_int64(fts, 1, (int64_t)(i + 1)); /* seq i + 1 */
            sqlite3_bind_text(fts, 2, rows[i].text, (int)rows[i].len, SQLITE_STATIC);
            if (sqlite3_step(fts) != SQLITE_DONE) fprintf(stderr, "bench: bare FTS insert: %s\n", sqlite3_errmsg(db));
            sqlite3_reset(fts);
        }
    }
    sqlite3_exec(db, "UPDATE datanets SET version = version + 1", NULL, NULL, NULL);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    t = now() - t;
    sqlite3_finalize(ins);
    sqlite3_finalize(fts);
    sqlite3_close(db);
    return t;
}

/* A query of 1..5 words drawn from the text's own distribution; with content_only, words past the
 * 100 most common (the ones a stop-word list, or a person, leaves out of a question). */
static int content_only;
static size_t make_query(char *q, size_t size) {
    int words = 1 + (int)(rnd() % 5);
    size_t n = 0;
    for (int w = 0; w < words; w++) {
        int r;
        do r = zipf();
        while (content_only && r < 100);
        n += (size_t)snprintf(q + n, size - n, "%s%s", w ? " " : "", word_text[r]);
    }
    return n;
}

int main(void) {
    size_t n = getenv("REGISTRY_BENCH_RECORDS") ? strtoul(getenv("REGISTRY_BENCH_RECORDS"), NULL, 10) : 100000;
    make_vocab();
    uint8_t contributors[100][20];
    char contributor_text[100][ETH_ADDRESS_TEXT_SIZE];
    for (int i = 0; i < 100; i++) {
        for (int k = 0; k < 20; k++) contributors[i][k] = (uint8_t)rnd();
        eth_address_to_text(contributors[i], contributor_text[i]);
    }
    row_t *rows = calloc(n, sizeof *rows);
    acc_buf jsonl = ACC_BUF_INIT;
    size_t text_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        char text[32 * 16];
        int c = (int)(rnd() % 100), prefix = snprintf(text, sizeof text, "r%zu ", i); /* every record unique */
        rows[i].len = (size_t)prefix + make_text(text + prefix, 8 + (int)(rnd() % 23));
        rows[i].text = strdup(text);
        memcpy(rows[i].contributor, contributors[c], 20);
        keccak256(rows[i].text, rows[i].len, rows[i].hash);
        text_bytes += rows[i].len;
        acc_buf_printf(&jsonl, "{\"text\": \"%s\", \"contributor\": \"%s\"}\n", rows[i].text, contributor_text[c]);
    }
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[256], bare_path[256];
    snprintf(path, sizeof path, "%s/accrue-bench-registry.db", dir);
    snprintf(bare_path, sizeof bare_path, "%s/accrue-bench-registry-bare.db", dir);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("# registry bench: %zu records, %.1f MB of text, %.1f MB of JSON Lines; %s time\n", n, text_bytes / 1e6,
           jsonl.len / 1e6, getenv("REGISTRY_BENCH_WALL") ? "wall-clock" : "CPU");

    /* Import beside the bare loop, alternating, best of 2 each. */
    double best_import = 1e9, best_bare = 1e9, best_bare_nofts = 1e9;
    acc_err err = {0};
    for (int round = 0; round < 2; round++) {
        registry_t *reg = fresh(path, "bench");
        registry_import_result_t res;
        double t = now();
        int rc = registry_import_jsonl(reg, "bench", jsonl.data, jsonl.len, "bench.jsonl", NULL, NULL, &res, &err);
        t = now() - t;
        if (rc != ACC_OK || res.records != n) {
            fprintf(stderr, "bench: import: %s\n", err.msg);
            return 1;
        }
        registry_close(reg);
        if (t < best_import) best_import = t;
        t = bare_insert(bare_path, rows, n, 1);
        if (t < best_bare) best_bare = t;
        t = bare_insert(bare_path, rows, n, 0);
        if (t < best_bare_nofts) best_bare_nofts = t;
    }
    printf("import: %zu records in %.2f s = %.0f records/s (registry_import_jsonl, one transaction)\n", n, best_import,
           n / best_import);
    printf("bare SQLite loop, same rows and tables, FTS5 included: %.2f s = %.0f rows/s (import at %.2fx of it)\n",
           best_bare, n / best_bare, best_bare / best_import);
    printf("bare SQLite loop without the FTS5 index: %.2f s = %.0f rows/s\n", best_bare_nofts, n / best_bare_nofts);

    /* Queries: content words, then any words. */
    registry_t *reg;
    registry_open(path, REGISTRY_OPEN_EXISTING, &reg, &err);
    enum { QUERIES = 1000 };
    double *lat = malloc(QUERIES * sizeof *lat);
    for (content_only = 1; content_only >= 0; content_only--) {
        const char *kind = content_only ? "content words" : "any words";
        double total = 0;
        size_t hits_total = 0;
        uint64_t saved = rng;
        for (int i = 0; i < QUERIES; i++) {
            char q[256];
            size_t qlen = make_query(q, sizeof q);
            registry_hits_t *hits;
            double t = now();
            if (registry_query(reg, "bench", q, qlen, 10, &hits, &err) != ACC_OK) {
                fprintf(stderr, "bench: query: %s\n", err.msg);
                return 1;
            }
            lat[i] = now() - t;
            total += lat[i];
            hits_total += hits->n;
            free(hits);
        }
        qsort(lat, QUERIES, sizeof *lat, cmp_double);
        printf("query (1-5 %s, limit 10, %zu records): p50 %.0f us, p99 %.0f us, mean %.0f us, %.1f hits each\n", kind,
               n, lat[QUERIES / 2] * 1e6, lat[QUERIES * 99 / 100] * 1e6, total / QUERIES * 1e6,
               (double)hits_total / QUERIES);

        /* The same expressions through a bare FTS5 statement. */
        rng = saved;
        sqlite3 *db;
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db,
                               "SELECT r.id, r.contributor, r.text, -f.score FROM (SELECT rowid AS k, "
                               "bm25(records_fts_1) AS score FROM records_fts_1 WHERE records_fts_1 MATCH ?1 "
                               "ORDER BY score LIMIT 10) f JOIN records r ON r.datanet_id = 1 AND "
                               "r.seq = f.k ORDER BY f.score",
                               -1, &st, NULL) != SQLITE_OK) {
            fprintf(stderr, "bench: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        total = 0;
        size_t bare_hits = 0;
        for (int i = 0; i < QUERIES; i++) {
            char q[256];
            size_t qlen = make_query(q, sizeof q);
            acc_buf e = ACC_BUF_INIT;
            for (size_t k = 0, first = 1; k < qlen; first = 0) {
                size_t start = k;
                while (k < qlen && q[k] != ' ') k++;
                acc_buf_printf(&e, "%s\"%.*s\"", first ? "" : " OR ", (int)(k - start), q + start);
                k++;
            }
            double t = now();
            sqlite3_bind_text(st, 1, e.data, (int)e.len, SQLITE_STATIC);
            int src;
            while ((src = sqlite3_step(st)) == SQLITE_ROW) bare_hits++;
            if (src != SQLITE_DONE) fprintf(stderr, "bench: bare query: %s\n", sqlite3_errmsg(db));
            sqlite3_reset(st);
            lat[i] = now() - t;
            total += lat[i];
            acc_buf_free(&e);
        }
        qsort(lat, QUERIES, sizeof *lat, cmp_double);
        printf("bare FTS5 statement, same expressions: p50 %.0f us, p99 %.0f us, mean %.0f us, %.1f hits each\n",
               lat[QUERIES / 2] * 1e6, lat[QUERIES * 99 / 100] * 1e6, total / QUERIES * 1e6, (double)bare_hits / QUERIES);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }

    /* API key lookups. */
    char key[REGISTRY_API_KEY_TEXT_SIZE];
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "app-%d", i);
        registry_account_create(reg, name, false, key, NULL, &err);
    }
    enum { LOOKUPS = 200000 };
    registry_account_t a;
    double t = now();
    for (int i = 0; i < LOOKUPS; i++) registry_account_by_key(reg, key, strlen(key), &a, NULL);
    t = now() - t;
    printf("registry_account_by_key (1000 accounts): %.2f us per lookup\n", t / LOOKUPS * 1e6);
    registry_close(reg);

    for (size_t i = 0; i < n; i++) free(rows[i].text);
    free(rows);
    free(lat);
    acc_buf_free(&jsonl);
    unlink(path);
    unlink(bare_path);
    return 0;
}
