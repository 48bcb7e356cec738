/*
 * spans.c: the span indexes of the registry's datanets (spans.h), kept current and saved.
 *
 * One entry per (database file, datanet) for the whole process, found under a mutex and then used
 * under its own read-write lock: attributions read-lock it, bringing it up to date write-locks it.
 * An attribution over several datanets locks their entries in datanet-id order, so two of them can
 * never wait on each other in a cycle.
 *
 * Being current is checked, not assumed: the entry knows the last record it indexed (seq, id,
 * content hash), and each use reads the datanet's version and compares. Records are never changed
 * or removed, so if the record at the entry's seq is the one it remembers, the index holds exactly
 * records 1..seq and only the newer ones need adding; anything else (a database file replaced, a
 * snapshot from elsewhere) drops the index and builds it again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/spans.h"
#include "registry/store.h"
#include "runtime/base/invariant.h"

#define PART_BYTES ((size_t)32 << 20) /* a snapshot is stored in blobs of at most this */

typedef struct entry {
    char *db; /* the database file's full path (or "mem:<handle>") */
    int64_t datanet_id;
    pthread_rwlock_t lock;
    /* Under lock: */
    span_index *x;       /* NULL until built or loaded */
    uint64_t seq;        /* records 1..seq are in x */
    int64_t last_id;     /* the record at seq (when seq > 0) */
    uint8_t last_hash[32];
    uint64_t saved_seq;  /* what the stored snapshot covers, as far as this process knows */
    uint64_t saved_tokens;
    _Atomic uint64_t checked_ns; /* when the index was last found current (monotonic clock) */
    /* The contributors of the records credited so far, or indexed: a record never changes, so an
     * address found once is good for ever, and an attribution pays without a query per record
     * (under contrib_lock: attributions read it after releasing the index). */
    pthread_mutex_t contrib_lock;
    struct known *known; /* open addressing on the record id; id 0 = empty */
    size_t nknown, known_cap;
    struct entry *next;
} entry;

typedef struct known {
    int64_t id;
    uint8_t contributor[20];
} known;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static entry *cache;

void registry_spans_clear(void) {
    pthread_mutex_lock(&cache_lock);
    while (cache) {
        entry *e = cache;
        cache = e->next;
        span_index_free(e->x);
        pthread_rwlock_destroy(&e->lock);
        pthread_mutex_destroy(&e->contrib_lock);
        free(e->known);
        free(e->db);
        free(e);
    }
    pthread_mutex_unlock(&cache_lock);
}

static size_t known_slot(int64_t id, size_t cap) { return (size_t)((uint64_t)id * UINT64_C(0x9e3779b97f4a7c15) >> 17) & (cap - 1); }

/* Remembers a record's contributor (a cache: out of memory, it is simply not kept). */
static void known_put(entry *e, int64_t id, const uint8_t contributor[20]) {
    if (id == 0) return;
    pthread_mutex_lock(&e->contrib_lock);
    if ((e->nknown + 1) * 2 > e->known_cap) {
        size_t cap = e->known_cap ? e->known_cap * 2 : 256;
        known *t = calloc(cap, sizeof *t);
        if (t) {
            for (size_t i = 0; i < e->known_cap; i++)
                if (e->known[i].id) {
                    size_t j = known_slot(e->known[i].id, cap);
                    while (t[j].id) j = (j + 1) & (cap - 1);
                    t[j] = e->known[i];
                }
            free(e->known);
            e->known = t;
            e->known_cap = cap;
        }
    }
    if ((e->nknown + 1) * 2 <= e->known_cap) {
        size_t j = known_slot(id, e->known_cap);
        while (e->known[j].id && e->known[j].id != id) j = (j + 1) & (e->known_cap - 1);
        if (!e->known[j].id) e->nknown++;
        e->known[j].id = id;
        memcpy(e->known[j].contributor, contributor, 20);
    }
    pthread_mutex_unlock(&e->contrib_lock);
}

static bool known_get(entry *e, int64_t id, uint8_t contributor[20]) {
    bool hit = false;
    pthread_mutex_lock(&e->contrib_lock);
    if (e->known_cap) {
        for (size_t j = known_slot(id, e->known_cap); e->known[j].id; j = (j + 1) & (e->known_cap - 1))
            if (e->known[j].id == id) {
                memcpy(contributor, e->known[j].contributor, 20);
                hit = true;
                break;
            }
    }
    pthread_mutex_unlock(&e->contrib_lock);
    return hit;
}

static int entry_of(registry_t *reg, int64_t datanet_id, entry **out, acc_err *err) {
    char mem[64];
    if (!reg->db_filename) reg->db_filename = sqlite3_db_filename(reg->db, "main");
    const char *db = reg->db_filename;
    if (!db || !*db) {
        snprintf(mem, sizeof mem, "mem:%p", (void *)reg);
        db = mem;
    }
    pthread_mutex_lock(&cache_lock);
    entry *e = cache;
    while (e && (e->datanet_id != datanet_id || strcmp(e->db, db) != 0)) e = e->next;
    if (!e && (e = calloc(1, sizeof *e)) != NULL) {
        e->db = strdup(db);
        e->datanet_id = datanet_id;
        pthread_mutex_init(&e->contrib_lock, NULL);
        if (!e->db || pthread_rwlock_init(&e->lock, NULL) != 0) {
            free(e->db);
            free(e);
            e = NULL;
        } else {
            e->next = cache;
            cache = e;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    *out = e;
    return e ? ACC_OK : acc_fail(err, ACC_ENOMEM, "span index: out of memory");
}

/* ---- reading the registry ---- */

static const char sql_record_at[] = "SELECT id, content_hash FROM records WHERE datanet_id = ?1 AND seq = ?2";
/* Both at once, read in one statement (one snapshot of the database): the version, and the record
 * at the seq an index holds. What every use of an index asks first. */
static const char sql_check[] = "SELECT d.version, r.id, r.content_hash FROM datanets d "
                                "LEFT JOIN records r ON r.datanet_id = d.id AND r.seq = ?2 WHERE d.id = ?1";
static const char sql_contributor[] = "SELECT contributor, datanet_id FROM records WHERE id = ?1";

/* The datanet's version, and whether the record at e's seq is the one e remembers. */
static int check_entry(registry_t *reg, const entry *e, uint64_t *version, bool *same, acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_check, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, e->datanet_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)e->seq);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        uint8_t h[32];
        *version = (uint64_t)sqlite3_column_int64(st, 0);
        *same = e->seq == 0 || (sqlite3_column_type(st, 1) != SQLITE_NULL && sqlite3_column_int64(st, 1) == e->last_id &&
                                store_column_blob(st, 2, h, 32) && memcmp(h, e->last_hash, 32) == 0);
    } else if (src == SQLITE_DONE) {
        rc = acc_fail(err, ACC_ENOTFOUND, "datanet %lld: no such datanet", (long long)e->datanet_id);
    } else {
        rc = store_fail(reg, src, err, "span index");
    }
    sqlite3_reset(st);
    return rc;
}

/* Is the datanet's accepted record number seq the one with this id and hash? (seq 0: yes.) */
static int same_record_at(registry_t *reg, int64_t datanet_id, uint64_t seq, int64_t id, const uint8_t hash[32],
                          bool *same, acc_err *err) {
    *same = seq == 0;
    if (seq == 0) return ACC_OK;
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_record_at, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, datanet_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        uint8_t h[32];
        *same = sqlite3_column_int64(st, 0) == id && store_column_blob(st, 1, h, 32) && memcmp(h, hash, 32) == 0;
    } else if (src != SQLITE_DONE) {
        rc = store_fail(reg, src, err, "span index");
    }
    sqlite3_reset(st);
    return rc;
}

/* ---- snapshots ---- */

static const char sql_snap_get[] =
    "SELECT seq, last_record_id, last_hash, tokens, parts, bytes FROM span_snapshots WHERE datanet_id = ?1";
static const char sql_snap_part[] = "SELECT data FROM span_snapshot_parts WHERE datanet_id = ?1 AND part = ?2";
static const char sql_snap_drop_parts[] = "DELETE FROM span_snapshot_parts WHERE datanet_id = ?1";
static const char sql_snap_put_part[] = "INSERT INTO span_snapshot_parts (datanet_id, part, data) VALUES (?1, ?2, ?3)";
static const char sql_snap_put[] =
    "INSERT OR REPLACE INTO span_snapshots (datanet_id, seq, last_record_id, last_hash, tokens, parts, bytes, "
    "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/* Loads the stored snapshot into e when there is one that fits records 1..version of this
 * database. Anything unusable is skipped silently (the index is then built from the records). */
static void load_snapshot(registry_t *reg, entry *e, uint64_t version) {
    sqlite3_stmt *st;
    if (store_stmt(reg, sql_snap_get, &st, NULL)) return;
    sqlite3_bind_int64(st, 1, e->datanet_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return;
    }
    uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0), tokens = (uint64_t)sqlite3_column_int64(st, 3);
    int64_t last_id = sqlite3_column_int64(st, 1);
    sqlite3_int64 parts = sqlite3_column_int64(st, 4), bytes = sqlite3_column_int64(st, 5);
    uint8_t hash[32];
    bool ok = store_column_blob(st, 2, hash, 32);
    sqlite3_reset(st);
    bool same = false;
    if (!ok || seq > version || same_record_at(reg, e->datanet_id, seq, last_id, hash, &same, NULL) || !same) return;
    acc_buf b = ACC_BUF_INIT;
    for (sqlite3_int64 p = 0; p < parts && !acc_buf_failed(&b); p++) {
        if (store_stmt(reg, sql_snap_part, &st, NULL)) break;
        sqlite3_bind_int64(st, 1, e->datanet_id);
        sqlite3_bind_int64(st, 2, p);
        if (sqlite3_step(st) == SQLITE_ROW) acc_buf_append(&b, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        else b.failed = true;
        sqlite3_reset(st);
    }
    span_index *x = NULL;
    if (!acc_buf_failed(&b) && (sqlite3_int64)b.len == bytes && span_index_load(b.data, b.len, &x, NULL) == ACC_OK &&
        span_index_records(x) == seq) {
        e->x = x;
        e->seq = e->saved_seq = seq;
        e->saved_tokens = tokens;
        e->last_id = last_id;
        memcpy(e->last_hash, hash, 32);
    } else {
        span_index_free(x);
    }
    acc_buf_free(&b);
}

/* Stores e's index as the datanet's snapshot, replacing the old one, in one transaction. */
static int save_snapshot(registry_t *reg, entry *e, acc_err *err) {
    acc_buf b = ACC_BUF_INIT;
    int rc = span_index_save(e->x, &b, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    size_t parts = b.len ? (b.len + PART_BYTES - 1) / PART_BYTES : 1;
    if ((rc = store_tx_begin(reg, err))) {
        acc_buf_free(&b);
        return rc;
    }
    if ((rc = store_stmt(reg, sql_snap_drop_parts, &st, err)) == ACC_OK) {
        sqlite3_bind_int64(st, 1, e->datanet_id);
        rc = store_exec(reg, st, err, "span snapshot");
    }
    for (size_t p = 0; rc == ACC_OK && p < parts; p++) {
        size_t off = p * PART_BYTES, n = b.len - off < PART_BYTES ? b.len - off : PART_BYTES;
        if ((rc = store_stmt(reg, sql_snap_put_part, &st, err))) break;
        sqlite3_bind_int64(st, 1, e->datanet_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)p);
        sqlite3_bind_blob64(st, 3, b.data + off, n, SQLITE_STATIC);
        rc = store_exec(reg, st, err, "span snapshot");
    }
    if (rc == ACC_OK && (rc = store_stmt(reg, sql_snap_put, &st, err)) == ACC_OK) {
        sqlite3_bind_int64(st, 1, e->datanet_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)e->seq);
        sqlite3_bind_int64(st, 3, e->last_id);
        store_bind_blob(st, 4, e->last_hash, 32);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)span_index_tokens(e->x));
        sqlite3_bind_int64(st, 6, (sqlite3_int64)parts);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)b.len);
        sqlite3_bind_int64(st, 8, store_now(reg));
        rc = store_exec(reg, st, err, "span snapshot");
    }
    rc = store_tx_end(reg, rc, err);
    acc_buf_free(&b);
    if (rc == ACC_OK) {
        e->saved_seq = e->seq;
        e->saved_tokens = span_index_tokens(e->x);
    }
    return rc;
}

/* ---- keeping an entry current ---- */

typedef struct catchup {
    entry *e;
    uint64_t added;
    acc_err *err;
} catchup;

static int add_record(void *ud, const registry_record_t *r) {
    catchup *c = ud;
    int rc = span_index_add(c->e->x, r->id, r->text, r->text_len, c->err);
    if (rc) return rc;
    known_put(c->e, r->id, r->contributor);
    c->e->seq = r->seq;
    c->e->last_id = r->id;
    memcpy(c->e->last_hash, r->content_hash, 32);
    c->added++;
    return 0;
}

static void drop_index(entry *e) {
    span_index_free(e->x);
    e->x = NULL;
    e->seq = e->saved_seq = e->saved_tokens = 0;
    pthread_mutex_lock(&e->contrib_lock); /* another database under the same path: other records */
    free(e->known);
    e->known = NULL;
    e->nknown = e->known_cap = 0;
    pthread_mutex_unlock(&e->contrib_lock);
}

/* Brings e (write-locked) to the datanet's records 1..version at least. */
static int update(registry_t *reg, entry *e, uint64_t version, bool force_save, registry_span_stats_t *stats,
                  acc_err *err) {
    bool same = false;
    int rc;
    if (e->x) {
        if ((rc = same_record_at(reg, e->datanet_id, e->seq, e->last_id, e->last_hash, &same, err))) return rc;
        if (!same) drop_index(e); /* another database under this path */
    }
    if (!e->x) {
        load_snapshot(reg, e, version);
        if (stats) stats->from_snapshot = e->x != NULL;
    }
    if (!e->x) {
        if (!(e->x = span_index_new())) return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
        e->seq = e->saved_seq = e->saved_tokens = 0;
    }
    catchup c = {.e = e, .err = err};
    if (e->seq < version) {
        rc = registry_records_accepted(reg, e->datanet_id, e->seq, 0, add_record, &c, err);
        if (!rc) rc = span_index_commit(e->x, err);
        if (rc) {
            drop_index(e); /* half-added: start again next time */
            return rc;
        }
    }
    if (stats) stats->added = c.added;
    /* Save when the part no snapshot covers has grown by a quarter of what one does. */
    uint64_t tokens = span_index_tokens(e->x), unsaved = tokens - (e->saved_seq ? e->saved_tokens : 0);
    uint64_t due = e->saved_tokens / 4 > SPANS_SNAPSHOT_MIN_TOKENS ? e->saved_tokens / 4 : SPANS_SNAPSHOT_MIN_TOKENS;
    if (e->seq > e->saved_seq && (force_save || (tokens >= SPANS_SNAPSHOT_MIN_TOKENS && unsaved >= due))) {
        rc = save_snapshot(reg, e, err);
        if (rc && force_save) return rc;
        /* Otherwise a snapshot is only a cache: a busy database or a full disk must not fail the
         * attribution that happened to be the one to save it. */
    }
    return ACC_OK;
}

/* Locks e current for reading (*write = false) or, when it had to be updated, for writing. */
static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Takes e's lock with its index current: found current within max_age_ns (0: now; the check is a
 * read transaction, which costs more than attributing a short output), or brought up to date. */
static int acquire(registry_t *reg, entry *e, uint64_t max_age_ns, bool *write, acc_err *err) {
    uint64_t version;
    bool same;
    pthread_rwlock_rdlock(&e->lock);
    uint64_t now = max_age_ns ? mono_ns() : 0;
    if (max_age_ns && e->x && now - atomic_load(&e->checked_ns) < max_age_ns) {
        *write = false;
        return ACC_OK;
    }
    int rc = check_entry(reg, e, &version, &same, err);
    if (rc == ACC_OK && e->x && same && e->seq >= version) {
        if (max_age_ns) atomic_store(&e->checked_ns, now);
        *write = false;
        return ACC_OK;
    }
    pthread_rwlock_unlock(&e->lock);
    if (rc) return rc;
    pthread_rwlock_wrlock(&e->lock);
    if ((rc = update(reg, e, version, false, NULL, err))) {
        pthread_rwlock_unlock(&e->lock);
        return rc;
    }
    if (max_age_ns) atomic_store(&e->checked_ns, now);
    *write = true;
    return ACC_OK;
}

/* ---- what callers ask ---- */

int registry_span_refresh(registry_t *reg, const char *datanet, bool save, registry_span_stats_t *out, acc_err *err) {
    registry_datanet_t d;
    registry_span_stats_t stats = {0};
    int rc = registry_datanet_get(reg, datanet, &d, err);
    entry *e;
    if (rc || (rc = entry_of(reg, d.id, &e, err))) return rc;
    pthread_rwlock_wrlock(&e->lock);
    rc = update(reg, e, d.version, save, &stats, err);
    if (!rc) {
        stats.seq = e->seq;
        stats.records = span_index_records(e->x);
        stats.tokens = span_index_tokens(e->x);
        stats.corpora = span_index_corpora(e->x);
        stats.snapshot_seq = e->saved_seq;
    }
    pthread_rwlock_unlock(&e->lock);
    if (out) *out = stats;
    return rc;
}

int registry_span_find(registry_t *reg, const char *datanet, const char *text, size_t len, size_t cap, span_hits *out,
                       acc_err *err) {
    memset(out, 0, sizeof *out);
    registry_datanet_t d;
    int rc = registry_datanet_get(reg, datanet, &d, err);
    entry *e;
    bool write;
    if (rc || (rc = entry_of(reg, d.id, &e, err)) || (rc = acquire(reg, e, 0, &write, err))) return rc;
    span_tokens tk = SPAN_TOKENS_INIT;
    uint32_t *ids = NULL;
    if ((rc = span_tokenize(text, len, &tk, err)) == ACC_OK && tk.n) {
        if (!(ids = malloc(tk.n * sizeof *ids))) rc = acc_fail(err, ACC_ENOMEM, "span index: out of memory");
        else {
            span_vocab_find_ids(span_index_vocab_const(e->x), &tk, ids);
            rc = span_index_find(e->x, ids, tk.n, cap, out, err);
        }
    }
    pthread_rwlock_unlock(&e->lock);
    free(ids);
    span_tokens_free(&tk);
    return rc;
}

void registry_attribution_free(registry_attribution_t *a) {
    if (!a) return;
    span_attribution_free(&a->spans);
    free(a->credits);
    memset(a, 0, sizeof *a);
}

/* A record's contributor and datanet (one indexed lookup: the meters ask for every credit). */
static int contributor_of(registry_t *reg, int64_t record, uint8_t address[20], int64_t *datanet_id, acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_contributor, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, record);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW && store_column_blob(st, 0, address, 20)) *datanet_id = sqlite3_column_int64(st, 1);
    else if (src == SQLITE_ROW || src == SQLITE_DONE) rc = acc_fail(err, ACC_ENOTFOUND, "record %lld: no such record", (long long)record);
    else rc = store_fail(reg, src, err, "attribution");
    sqlite3_reset(st);
    return rc;
}

int registry_attribute(registry_t *reg, const registry_model_t *model, const char *text, size_t len,
                       registry_attribution_t *out, acc_err *err) {
    return registry_attribute_within(reg, model, text, len, 0, out, err);
}

int registry_attribute_within(registry_t *reg, const registry_model_t *model, const char *text, size_t len,
                              uint32_t max_age_ms, registry_attribution_t *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    out->min_tokens = model->span_k ? model->span_k : REGISTRY_SPAN_K_DEFAULT;
    size_t n = model->n_lineage;
    if (n > REGISTRY_LIST_MAX) return acc_fail(err, ACC_EINVAL, "model %s: %zu lineage datanets", model->name, n);
    entry *e[REGISTRY_LIST_MAX];
    bool write[REGISTRY_LIST_MAX], locked[REGISTRY_LIST_MAX] = {0};
    size_t order[REGISTRY_LIST_MAX];
    int rc = ACC_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = entry_of(reg, model->lineage_id[i], &e[i], err);
        order[i] = i;
    }
    /* Lock in datanet-id order (no cycles between attributions over overlapping lineages). */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && model->lineage_id[order[j - 1]] > model->lineage_id[order[j]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (size_t k = 0; k < n && !rc; k++) {
        size_t i = order[k];
        if (k && model->lineage_id[order[k - 1]] == model->lineage_id[i]) continue; /* listed twice */
        if ((rc = acquire(reg, e[i], (uint64_t)max_age_ms * 1000000u, &write[i], err)) == ACC_OK) locked[i] = true;
        else acc_err_prefix(err, "lineage %s", model->lineage[i]);
    }
    if (!rc) {
        const span_index *xs[REGISTRY_LIST_MAX];
        for (size_t i = 0; i < n; i++) xs[i] = e[i]->x;
        span_attr_options o = {.min_tokens = out->min_tokens};
        rc = span_attribute(xs, n, text, len, &o, &out->spans, err);
    }
    for (size_t i = 0; i < n; i++)
        if (locked[i]) pthread_rwlock_unlock(&e[i]->lock);
    if (!rc && out->spans.ncredits) {
        out->credits = calloc(out->spans.ncredits, sizeof *out->credits);
        if (!out->credits) rc = acc_fail(err, ACC_ENOMEM, "attribution: out of memory");
        for (size_t c = 0; !rc && c < out->spans.ncredits; c++) {
            const span_credit *sc = &out->spans.credits[c];
            registry_span_credit_t *rcd = &out->credits[c];
            int64_t in_datanet = model->lineage_id[sc->source.index];
            entry *owner = e[sc->source.index];
            if (!known_get(owner, sc->source.record_id, rcd->contributor)) {
                rc = contributor_of(reg, sc->source.record_id, rcd->contributor, &in_datanet, err);
                if (!rc && in_datanet == model->lineage_id[sc->source.index])
                    known_put(owner, sc->source.record_id, rcd->contributor);
            }
            rcd->record_id = sc->source.record_id;
            rcd->datanet_id = model->lineage_id[sc->source.index];
            rcd->weight = sc->weight;
            rcd->spans = sc->spans;
            ACC_INVARIANT(rc || in_datanet == rcd->datanet_id, "record %lld is in datanet %lld, indexed under %lld",
                          (long long)rcd->record_id, (long long)in_datanet, (long long)rcd->datanet_id);
        }
    }
    if (rc) registry_attribution_free(out);
    return rc;
}
