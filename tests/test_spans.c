/*
 * test_spans.c: the registry's span indexes and attribution (registry/spans.h).
 *
 * Attribution of a model's output against its lineage, with contributors and datanets; span_k;
 * an index current with records accepted afterwards, through this handle or another one (another
 * process does the same through the file); a database replaced under the same path never answered
 * from the old index; snapshots saved, loaded instead of a build, caught up, and ignored when
 * damaged; "which records contain this span"; and attributions on several threads while records
 * are being added.
 */
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>

#include "registry/spans.h"
#include "tests/check.h"

static char dir[256];

static const char *const A = "0x2222222222222222222222222222222222222222";
static const char *const B = "0x3333333333333333333333333333333333333333";

static registry_t *open_db(const char *name, char *path, size_t n) {
    snprintf(path, n, "%s/%s", dir, name);
    registry_t *reg = NULL;
    acc_err err = {0};
    CHECK_MSG(registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err) == ACC_OK, "%s", err.msg);
    return reg;
}

static void make_datanet(registry_t *reg, const char *name) {
    registry_datanet_spec_t spec = {.name = name, .description = "test"};
    memset(spec.owner, 0x11, 20);
    acc_err err = {0};
    CHECK_MSG(registry_datanet_create(reg, &spec, NULL, &err) == ACC_OK, "%s", err.msg);
}

/* Imports texts (NULL-terminated), contributors alternating A, B. */
static int import_rc(registry_t *reg, const char *datanet, const char *const *texts, acc_err *err) {
    acc_buf jl = ACC_BUF_INIT;
    for (size_t i = 0; texts[i]; i++) {
        json_t *line = json_pack("{s:s,s:s}", "text", texts[i], "contributor", i % 2 ? B : A);
        char *s = json_dumps(line, JSON_COMPACT);
        acc_buf_puts(&jl, s);
        acc_buf_putc(&jl, '\n');
        free(s);
        json_decref(line);
    }
    registry_import_result_t res;
    int rc = registry_import_jsonl(reg, datanet, jl.data, jl.len, "t.jsonl", NULL, NULL, &res, err);
    acc_buf_free(&jl);
    return rc;
}

static void import(registry_t *reg, const char *datanet, const char *const *texts) {
    acc_err err = {0};
    CHECK_MSG(import_rc(reg, datanet, texts, &err) == ACC_OK, "%s", err.msg);
}

static registry_model_t model_over(registry_t *reg, const char *name, const char *const *lineage, size_t n, uint32_t k) {
    registry_model_t m = {.kind = REGISTRY_MODEL_HTTP, .span_k = k, .n_lineage = n};
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.url, sizeof m.url, "http://127.0.0.1:9/v1");
    snprintf(m.upstream, sizeof m.upstream, "up");
    for (size_t i = 0; i < n; i++) snprintf(m.lineage[i], sizeof m.lineage[i], "%s", lineage[i]);
    registry_model_t got = {0};
    acc_err err = {0};
    CHECK_MSG(registry_model_register(reg, &m, NULL, 0, &got, &err) == ACC_OK, "%s", err.msg);
    return got;
}

static bool is_addr(const uint8_t a[20], const char *text) {
    uint8_t want[20];
    for (int i = 0; i < 20; i++) {
        unsigned v;
        sscanf(text + 2 + 2 * i, "%2x", &v);
        want[i] = (uint8_t)v;
    }
    return memcmp(a, want, 20) == 0;
}

static const char *const fruit[] = {
    "Apples grow on trees in temperate orchards across the northern hemisphere every year.",
    "Bananas are berries, botanically speaking, while strawberries are not berries at all.",
    "Cherries ripen early in the summer and must be picked by hand within a few days.",
    NULL,
};
static const char *const weather[] = {
    "Rain is expected over the northern hills on Tuesday and Wednesday evening, with fog at dawn.",
    NULL,
};

static void attributes_against_the_lineage(void) {
    char path[512];
    registry_t *reg = open_db("attr.db", path, sizeof path);
    make_datanet(reg, "d/fruit");
    make_datanet(reg, "d/weather");
    import(reg, "d/fruit", fruit);
    import(reg, "d/weather", weather);
    const char *lin[] = {"d/fruit", "d/weather"};
    registry_model_t m = model_over(reg, "m/both", lin, 2, 0);
    const char *out = "Well: BANANAS are berries, botanically speaking, while strawberries are not. "
                      "Also rain is expected over the northern hills on Tuesday.";
    registry_attribution_t a;
    acc_err err = {0};
    CHECK_MSG(registry_attribute(reg, &m, out, strlen(out), &a, &err) == ACC_OK, "%s", err.msg);
    CHECK(a.min_tokens == REGISTRY_SPAN_K_DEFAULT);
    CHECK(a.spans.nspans == 2 && a.spans.ncredits == 2);
    if (a.spans.ncredits == 2) {
        CHECK(a.credits[0].datanet_id == m.lineage_id[0] && is_addr(a.credits[0].contributor, B)); /* bananas: 2nd line */
        CHECK(a.credits[0].weight == 9 * SPAN_SHARE_SCALE);
        CHECK(a.credits[1].datanet_id == m.lineage_id[1] && is_addr(a.credits[1].contributor, A));
        CHECK(a.credits[1].weight == 9 * SPAN_SHARE_SCALE && a.spans.spans[1].sources[0].index == 1);
    }
    CHECK(a.spans.covered_tokens == 18);
    registry_attribution_free(&a);
    /* A model with k = 12: the same output earns nothing. */
    registry_model_t strict = model_over(reg, "m/strict", lin, 2, 12);
    CHECK(registry_attribute(reg, &strict, out, strlen(out), &a, &err) == ACC_OK && a.spans.nspans == 0 && a.min_tokens == 12);
    registry_attribution_free(&a);
    /* No lineage: no spans, whatever the text. */
    registry_model_t none = model_over(reg, "m/none", NULL, 0, 0);
    CHECK(registry_attribute(reg, &none, fruit[0], strlen(fruit[0]), &a, &err) == ACC_OK && a.spans.nspans == 0);
    registry_attribution_free(&a);
    /* Which records hold a span, case and punctuation aside. */
    span_hits h;
    CHECK(registry_span_find(reg, "d/fruit", "PICKED -- by hand!", 18, 5, &h, &err) == ACC_OK);
    CHECK(h.occurrences == 1 && h.records == 1 && h.nids == 1);
    free(h.ids);
    CHECK(registry_span_find(reg, "d/fruit", "are", 3, 5, &h, &err) == ACC_OK && h.occurrences == 2 && h.records == 1);
    free(h.ids);
    CHECK(registry_span_find(reg, "d/nothing", "are", 3, 5, &h, &err) == ACC_ENOTFOUND);
    registry_close(reg);
    registry_spans_clear();
}

static void current_with_new_records_from_any_handle(void) {
    char path[512];
    registry_t *reg = open_db("current.db", path, sizeof path);
    make_datanet(reg, "d/fruit");
    import(reg, "d/fruit", fruit);
    const char *lin[] = {"d/fruit"};
    registry_model_t m = model_over(reg, "m/f", lin, 1, 0);
    const char *later = "Dates grow on palm trees in hot and dry climates of the Middle East and North Africa.";
    registry_attribution_t a;
    acc_err err = {0};
    CHECK(registry_attribute(reg, &m, later, strlen(later), &a, &err) == ACC_OK && a.spans.nspans == 0);
    registry_attribution_free(&a);
    /* Accepted through this handle. */
    const char *more[] = {later, NULL};
    import(reg, "d/fruit", more);
    CHECK(registry_attribute(reg, &m, later, strlen(later), &a, &err) == ACC_OK && a.spans.nspans == 1 &&
          a.spans.spans[0].ntokens == 17);
    registry_attribution_free(&a);
    /* Accepted through another handle (as another process would). */
    registry_t *other = NULL;
    CHECK(registry_open(path, REGISTRY_OPEN_EXISTING, &other, &err) == ACC_OK);
    const char *third[] = {"Elderberries must be cooked before eating, because raw ones can upset the stomach.", NULL};
    import(other, "d/fruit", third);
    registry_close(other);
    CHECK(registry_attribute(reg, &m, third[0], strlen(third[0]), &a, &err) == ACC_OK && a.spans.nspans == 1 &&
          a.spans.ncredits == 1 && is_addr(a.credits[0].contributor, A));
    registry_attribution_free(&a);
    registry_span_stats_t st;
    CHECK(registry_span_refresh(reg, "d/fruit", false, &st, &err) == ACC_OK && st.seq == 5 && st.records == 5 && st.added == 0);
    registry_close(reg);

    /* The file replaced under the same path: same datanet name and id, other records. */
    char wal[600];
    remove(path);
    snprintf(wal, sizeof wal, "%s-wal", path);
    remove(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    remove(wal);
    reg = open_db("current.db", path, sizeof path);
    make_datanet(reg, "d/fruit");
    import(reg, "d/fruit", weather);
    m = model_over(reg, "m/f", lin, 1, 0);
    CHECK(registry_attribute(reg, &m, later, strlen(later), &a, &err) == ACC_OK && a.spans.nspans == 0);
    registry_attribution_free(&a);
    CHECK(registry_attribute(reg, &m, weather[0], strlen(weather[0]), &a, &err) == ACC_OK && a.spans.nspans == 1);
    registry_attribution_free(&a);
    registry_close(reg);
    registry_spans_clear();
}

/* registry_attribute_within trusts a fresh check for max_age_ms, then looks again. */
static void within_a_window_then_current(void) {
    char path[512];
    registry_t *reg = open_db("window.db", path, sizeof path);
    make_datanet(reg, "d/fruit");
    import(reg, "d/fruit", fruit);
    const char *lin[] = {"d/fruit"};
    registry_model_t m = model_over(reg, "m/w", lin, 1, 0);
    const char *later = "Dates grow on palm trees in hot and dry climates of the Middle East and North Africa.";
    registry_attribution_t a;
    acc_err err = {0};
    CHECK(registry_attribute_within(reg, &m, later, strlen(later), 60000, &a, &err) == ACC_OK && a.spans.nspans == 0);
    registry_attribution_free(&a);
    const char *more[] = {later, NULL};
    import(reg, "d/fruit", more);
    /* checked moments ago: the index is trusted (not yet seen) */
    CHECK(registry_attribute_within(reg, &m, later, strlen(later), 60000, &a, &err) == ACC_OK && a.spans.nspans == 0);
    registry_attribution_free(&a);
    /* with no window, or once it has passed, the new record is seen */
    CHECK(registry_attribute_within(reg, &m, later, strlen(later), 0, &a, &err) == ACC_OK && a.spans.nspans == 1);
    registry_attribution_free(&a);
    const char *third[] = {"Elderberries must be cooked before eating, because raw ones can upset the stomach.", NULL};
    import(reg, "d/fruit", third);
    usleep(30 * 1000);
    CHECK(registry_attribute_within(reg, &m, third[0], strlen(third[0]), 20, &a, &err) == ACC_OK && a.spans.nspans == 1);
    registry_attribution_free(&a);
    registry_close(reg);
    registry_spans_clear();
}

static int64_t count_rows(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static void exec_sql(const char *path, const char *sql) {
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
}

/* n records of random words (deterministic), about 100 words each. */
static char **random_records(size_t n, size_t first) {
    static const char *w[] = {"amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper",
                              "kelp", "lumen", "moss", "nectar", "onyx", "pearl", "quartz", "reed", "sage", "tundra"};
    char **t = calloc(n + 1, sizeof *t);
    for (size_t r = 0; r < n; r++) {
        acc_buf b = ACC_BUF_INIT;
        acc_buf_printf(&b, "Record %zu:", first + r);
        for (int i = 0; i < 100; i++) acc_buf_printf(&b, " %s", w[test_rand() % 20]);
        t[r] = acc_buf_take(&b, NULL);
    }
    return t;
}

static void free_records(char **t) {
    for (size_t i = 0; t[i]; i++) free(t[i]);
    free(t);
}

static void snapshots_saved_loaded_and_checked(void) {
    char path[512];
    registry_t *reg = open_db("snap.db", path, sizeof path);
    make_datanet(reg, "d/big");
    char **recs = random_records(700, 0); /* 71k tokens: past SPANS_SNAPSHOT_MIN_TOKENS */
    import(reg, "d/big", (const char *const *)recs);
    const char *lin[] = {"d/big"};
    registry_model_t m = model_over(reg, "m/big", lin, 1, 0);
    registry_attribution_t a;
    acc_err err = {0};
    CHECK(registry_attribute(reg, &m, recs[42], strlen(recs[42]), &a, &err) == ACC_OK && a.spans.nspans >= 1);
    CHECK(a.spans.ncredits >= 1 && a.spans.credits[0].source.record_id > 0);
    registry_attribution_free(&a);
    CHECK(count_rows(path, "SELECT seq FROM span_snapshots") == 700); /* saved by the first use */
    CHECK(count_rows(path, "SELECT count(*) FROM span_snapshot_parts") == 1);

    /* A new process (the cache emptied) loads it instead of building. */
    registry_spans_clear();
    registry_span_stats_t st;
    CHECK(registry_span_refresh(reg, "d/big", false, &st, &err) == ACC_OK);
    CHECK(st.from_snapshot && st.added == 0 && st.seq == 700 && st.tokens == 700 * 102);
    /* Records accepted after the snapshot are added on top of it. */
    char **more = random_records(3, 700);
    import(reg, "d/big", (const char *const *)more);
    registry_spans_clear();
    CHECK(registry_span_refresh(reg, "d/big", false, &st, &err) == ACC_OK);
    CHECK(st.from_snapshot && st.added == 3 && st.seq == 703 && st.snapshot_seq == 700);
    CHECK(registry_attribute(reg, &m, more[2], strlen(more[2]), &a, &err) == ACC_OK && a.spans.ncredits >= 1);
    registry_attribution_free(&a);
    /* Saved on request; then damaged on disk: ignored, rebuilt from the records, same answers. */
    CHECK(registry_span_refresh(reg, "d/big", true, &st, &err) == ACC_OK && st.snapshot_seq == 703);
    CHECK(count_rows(path, "SELECT seq FROM span_snapshots") == 703);
    exec_sql(path, "UPDATE span_snapshot_parts SET data = CAST(substr(data, 1, 100) || x'ff' || substr(data, 102) AS BLOB)");
    registry_spans_clear();
    CHECK(registry_span_refresh(reg, "d/big", false, &st, &err) == ACC_OK);
    CHECK(!st.from_snapshot && st.added == 703 && st.tokens == 703 * 102);
    CHECK(registry_attribute(reg, &m, more[1], strlen(more[1]), &a, &err) == ACC_OK && a.spans.ncredits >= 1);
    registry_attribution_free(&a);
    /* A snapshot of other records (a file copied over) is not used either. */
    exec_sql(path, "UPDATE span_snapshots SET last_hash = zeroblob(32)");
    registry_spans_clear();
    CHECK(registry_span_refresh(reg, "d/big", false, &st, &err) == ACC_OK && !st.from_snapshot && st.added == 703);
    free_records(recs);
    free_records(more);
    registry_close(reg);
    registry_spans_clear();
}

/* ---- threads ---- */

typedef struct worker {
    const char *path;
    int id;
    int failures;
} worker;

static void *attribute_loop(void *p) {
    worker *w = p;
    registry_t *reg = NULL;
    if (registry_open(w->path, REGISTRY_OPEN_EXISTING, &reg, NULL) != ACC_OK) {
        w->failures++;
        return NULL;
    }
    registry_model_t m;
    registry_model_get(reg, "m/t", &m, NULL);
    for (int i = 0; i < 60; i++) {
        registry_attribution_t a;
        const char *t = fruit[i % 3];
        acc_err err = {0};
        int rc = registry_attribute(reg, &m, t, strlen(t), &a, &err);
        if (rc != ACC_OK && rc != ACC_EBUSY) w->failures++;
        if (rc == ACC_OK && a.spans.nspans != 1) w->failures++;
        registry_attribution_free(&a);
    }
    registry_close(reg);
    return NULL;
}

static void *add_loop(void *p) {
    worker *w = p;
    registry_t *reg = NULL;
    if (registry_open(w->path, REGISTRY_OPEN_EXISTING, &reg, NULL) != ACC_OK) {
        w->failures++;
        return NULL;
    }
    for (int i = 0; i < 20; i++) {
        char **r = random_records(1, 1000 + (size_t)i);
        int rc = import_rc(reg, "d/t", (const char *const *)r, NULL);
        if (rc != ACC_OK && rc != ACC_EBUSY) w->failures++;
        free_records(r);
    }
    registry_close(reg);
    return NULL;
}

static void attributions_on_threads_while_records_come(void) {
    char path[512];
    registry_t *reg = open_db("threads.db", path, sizeof path);
    make_datanet(reg, "d/t");
    import(reg, "d/t", fruit);
    const char *lin[] = {"d/t"};
    model_over(reg, "m/t", lin, 1, 0);
    registry_close(reg);
    pthread_t th[4];
    worker w[4] = {{path, 0, 0}, {path, 1, 0}, {path, 2, 0}, {path, 3, 0}};
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, attribute_loop, &w[i]);
    pthread_create(&th[3], NULL, add_loop, &w[3]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) CHECK_MSG(w[i].failures == 0, "worker %d: %d failures", i, w[i].failures);
    registry_spans_clear();
}

int main(void) {
    if (test_scratch_dir(dir, sizeof dir, "spans") != 0) return 1;
    RUN(attributes_against_the_lineage);
    RUN(current_with_new_records_from_any_handle);
    RUN(within_a_window_then_current);
    RUN(snapshots_saved_loaded_and_checked);
    RUN(attributions_on_threads_while_records_come);
    test_remove_dir(dir);
    return check_finish("spans");
}
