/*
 * store.c: opening the registry's SQLite file, upgrading its schema, statements, transactions,
 * hooks and the clock (store.h).
 *
 * A file is the registry's when its application_id is ours, or when it is new (application_id and
 * user_version both 0: an empty file, or one where another accrue store made its tables first). A
 * file at a schema version past ours was written by a newer accrue and is refused before anything
 * is written to it. An upgrade runs every missing migration and sets the version in one IMMEDIATE
 * transaction, so two processes opening an old file at once upgrade it once, and a failure leaves
 * it as it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "registry/store.h"
#include "runtime/base/invariant.h"

#define ACCRUE_APPLICATION_ID 0x61637275 /* "acru" */
#define BUSY_TIMEOUT_MS 5000

int64_t registry_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t store_now(registry_t *reg) { return reg->clock ? reg->clock(reg->clock_ud) : registry_now_ms(); }

void registry_set_clock(registry_t *reg, int64_t (*now_ms)(void *ud), void *ud) {
    reg->clock = now_ms;
    reg->clock_ud = ud;
}

int registry_schema_latest(void) { return store_migrations[store_n_migrations - 1].version; }

static int sqlite_status(int rc) {
    switch (rc & 0xff) {
    case SQLITE_NOMEM: return ACC_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return ACC_EBUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return ACC_ECORRUPT;
    case SQLITE_CONSTRAINT: return ACC_EEXIST;
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH: return ACC_EINVAL;
    default: return ACC_EIO;
    }
}

int store_fail(registry_t *reg, int rc, acc_err *err, const char *what) {
    return acc_fail(err, sqlite_status(rc), "%s: database: %s", what, reg && reg->db ? sqlite3_errmsg(reg->db) : sqlite3_errstr(rc));
}

int store_stmt(registry_t *reg, const char *sql, sqlite3_stmt **out, acc_err *err) {
    for (size_t i = 0; i < reg->n_stmts; i++)
        if (reg->stmts[i].sql == sql) {
            sqlite3_stmt *st = reg->stmts[i].st;
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            *out = st;
            return ACC_OK;
        }
    ACC_INVARIANT(reg->n_stmts < STORE_STMTS_MAX, "more distinct statements than STORE_STMTS_MAX");
    *out = NULL;
    if (reg->n_stmts == STORE_STMTS_MAX) return acc_fail(err, ACC_ELIMIT, "statement cache full");
    int rc = sqlite3_prepare_v3(reg->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK) return store_fail(reg, rc, err, "prepare");
    reg->stmts[reg->n_stmts].sql = sql;
    reg->stmts[reg->n_stmts].st = *out;
    reg->n_stmts++;
    return ACC_OK;
}

int store_exec(registry_t *reg, sqlite3_stmt *st, acc_err *err, const char *what) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? ACC_OK : store_fail(reg, rc, err, what);
}

bool store_column_blob(sqlite3_stmt *st, int i, void *out, size_t n) {
    const void *p = sqlite3_column_blob(st, i);
    if (!p || (size_t)sqlite3_column_bytes(st, i) != n) {
        memset(out, 0, n);
        return false;
    }
    memcpy(out, p, n);
    return true;
}

void store_column_text(sqlite3_stmt *st, int i, char *out, size_t size) {
    const char *p = (const char *)sqlite3_column_text(st, i);
    size_t n = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (n >= size) n = size - 1;
    if (n) memcpy(out, p, n);
    out[n] = '\0';
}

int store_names(registry_t *reg, const char *sql, store_name_t **names, size_t *n, acc_err *err) {
    *names = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql, &st, err), src;
    if (rc) return rc;
    size_t cap = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            store_name_t *bigger = realloc(*names, cap * sizeof **names);
            if (!bigger) {
                rc = acc_fail(err, ACC_ENOMEM, "out of memory");
                break;
            }
            *names = bigger;
        }
        store_column_text(st, 0, (*names)[(*n)++], sizeof **names);
    }
    sqlite3_reset(st);
    if (rc == ACC_OK && src != SQLITE_DONE) rc = store_fail(reg, src, err, "list");
    if (rc) {
        free(*names);
        *names = NULL;
        *n = 0;
    }
    return rc;
}

/* Runs a fixed SQL script (no user input in it). */
static int exec_script(registry_t *reg, const char *sql, acc_err *err, const char *what) {
    int rc = sqlite3_exec(reg->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? ACC_OK : store_fail(reg, rc, err, what);
}

static int pragma_int(registry_t *reg, const char *sql, int *out, acc_err *err) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return store_fail(reg, rc, err, "open");
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? ACC_OK : store_fail(reg, rc, err, "open");
}

/* ---------------------------------------------------------------------------- transactions */

static void fire_end_hooks(registry_t *reg, bool committed) {
    bool announce = reg->accepted_in_tx, undone = reg->rolled_back_in_tx || !committed;
    reg->accepted_in_tx = reg->rolled_back_in_tx = false;
    if (!announce) return;
    for (size_t i = 0; i < reg->n_hooks; i++) {
        const registry_hooks_t *h = &reg->hooks[i];
        if (undone && h->rolled_back) h->rolled_back(h->ud, reg);
        if (committed && h->committed) h->committed(h->ud, reg);
    }
}

int store_tx_begin(registry_t *reg, acc_err *err) {
    int rc = exec_script(reg, reg->depth == 0 ? "BEGIN IMMEDIATE" : "SAVEPOINT registry", err, "begin");
    if (rc == ACC_OK) reg->depth++;
    return rc;
}

int store_tx_end(registry_t *reg, int rc, acc_err *err) {
    ACC_INVARIANT(reg->depth > 0, "store_tx_end without store_tx_begin");
    reg->depth--;
    bool outer = reg->depth == 0;
    if (rc == ACC_OK) {
        int src = sqlite3_exec(reg->db, outer ? "COMMIT" : "RELEASE registry", NULL, NULL, NULL);
        if (src == SQLITE_OK) {
            if (outer) fire_end_hooks(reg, true);
            return ACC_OK;
        }
        rc = store_fail(reg, src, err, "commit");
    }
    if (outer) {
        sqlite3_exec(reg->db, "ROLLBACK", NULL, NULL, NULL);
        fire_end_hooks(reg, false);
    } else {
        sqlite3_exec(reg->db, "ROLLBACK TO registry; RELEASE registry", NULL, NULL, NULL);
        if (reg->accepted_in_tx) reg->rolled_back_in_tx = true;
    }
    return rc;
}

int registry_begin(registry_t *reg, acc_err *err) { return store_tx_begin(reg, err); }
int registry_commit(registry_t *reg, acc_err *err) { return store_tx_end(reg, ACC_OK, err); }
void registry_rollback(registry_t *reg) { store_tx_end(reg, ACC_EMISUSE, NULL); }

int registry_add_hooks(registry_t *reg, const registry_hooks_t *hooks, acc_err *err) {
    if (reg->n_hooks == REGISTRY_HOOKS_MAX)
        return acc_fail(err, ACC_ELIMIT, "hooks: at most %d sets", REGISTRY_HOOKS_MAX);
    reg->hooks[reg->n_hooks++] = *hooks;
    return ACC_OK;
}

int store_announce_accepted(registry_t *reg, const registry_record_t *r, acc_err *err) {
    ACC_INVARIANT(reg->depth > 0, "records are announced inside the transaction that accepts them");
    if (reg->n_hooks == 0) return ACC_OK;
    reg->accepted_in_tx = true;
    for (size_t i = 0; i < reg->n_hooks; i++) {
        const registry_hooks_t *h = &reg->hooks[i];
        if (!h->record_accepted) continue;
        int rc = h->record_accepted(h->ud, reg, r, err);
        if (rc != ACC_OK) return rc;
    }
    return ACC_OK;
}

/* -------------------------------------------------------------------------- open, migrate */

static int migrate(registry_t *reg, const char *path, int target, acc_err *err) {
    int rc = store_tx_begin(reg, err);
    if (rc) return rc;
    int version = 0;
    rc = pragma_int(reg, "PRAGMA user_version", &version, err);
    for (size_t i = 0; rc == ACC_OK && i < store_n_migrations; i++) {
        const store_migration_t *m = &store_migrations[i];
        ACC_INVARIANT(m->version == (int)i + 1, "migrations are numbered 1, 2, 3... in order");
        if (m->version <= version || m->version > target) continue;
        rc = exec_script(reg, m->sql, err, "upgrade");
        if (rc == ACC_OK && m->step) rc = m->step(reg, err);
        if (rc) acc_err_prefix(err, "%s: upgrading the schema to version %d (%s)", path, m->version, m->what);
    }
    if (rc == ACC_OK && version < target) {
        /* PRAGMA takes no bound parameters; the numbers are ours. */
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d", target,
                 ACCRUE_APPLICATION_ID);
        rc = exec_script(reg, sql, err, "upgrade");
    }
    return store_tx_end(reg, rc, err);
}

int store_open_at(const char *path, unsigned flags, int target, registry_t **out, acc_err *err) {
    *out = NULL;
    struct stat sb;
    if ((flags & REGISTRY_OPEN_EXISTING) && stat(path, &sb) != 0)
        return acc_fail(err, errno == ENOENT ? ACC_ENOTFOUND : ACC_EIO, "%s: no registry there (%s)", path,
                        strerror(errno));
    registry_t *reg = calloc(1, sizeof *reg);
    if (!reg) return acc_fail(err, ACC_ENOMEM, "%s: out of memory", path);
    int open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (!(flags & REGISTRY_OPEN_EXISTING)) open_flags |= SQLITE_OPEN_CREATE;
    int src = sqlite3_open_v2(path, &reg->db, open_flags, NULL);
    int rc = ACC_OK;
    if (src != SQLITE_OK) {
        rc = acc_fail(err, ACC_EIO, "%s: cannot open: %s", path, reg->db ? sqlite3_errmsg(reg->db) : sqlite3_errstr(src));
        goto fail;
    }
    sqlite3_busy_timeout(reg->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(reg->db, 1);

    int app = 0, version = 0;
    rc = pragma_int(reg, "PRAGMA application_id", &app, err);
    if (rc == ACC_OK) rc = pragma_int(reg, "PRAGMA user_version", &version, err);
    if (rc != ACC_OK) {
        if (rc == ACC_ECORRUPT) rc = acc_fail(err, ACC_ECORRUPT, "%s: not an accrue database (%s)", path, sqlite3_errmsg(reg->db));
        else acc_err_prefix(err, "%s", path);
        goto fail;
    }
    if ((app != 0 && app != ACCRUE_APPLICATION_ID) || (app == 0 && version != 0)) {
        rc = acc_fail(err, ACC_ECORRUPT, "%s: a SQLite database that is not accrue's (application_id %d, user_version %d)",
                      path, app, version);
        goto fail;
    }
    if (version > registry_schema_latest()) {
        rc = acc_fail(err, ACC_EVERSION,
                      "%s: made by a newer accrue (registry schema version %d; this accrue knows up to %d): upgrade accrue to use it",
                      path, version, registry_schema_latest());
        goto fail;
    }
    if ((flags & REGISTRY_OPEN_EXISTING) && version == 0) {
        rc = acc_fail(err, ACC_ENOTFOUND, "%s: no registry there", path);
        goto fail;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(reg->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) == SQLITE_OK) {
        src = sqlite3_step(st);
        const char *mode = src == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        bool wal = mode && strcmp(mode, "wal") == 0;
        sqlite3_finalize(st);
        if (!wal) {
            rc = acc_fail(err, ACC_EIO, "%s: cannot switch to WAL mode: %s", path, sqlite3_errmsg(reg->db));
            goto fail;
        }
    }
    /* 16 MiB of page cache (SQLite's default is 2 MiB): an import's indexes on content hashes
     * are written at random places, and the full-text index's pending terms, fit in it. */
    rc = exec_script(reg, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -16384", err,
                     "open");
    if (rc == ACC_OK && version < target) rc = migrate(reg, path, target, err);
    if (rc != ACC_OK) goto fail;
    *out = reg;
    return ACC_OK;
fail:
    registry_close(reg);
    return rc;
}

int registry_open(const char *path, unsigned flags, registry_t **out, acc_err *err) {
    return store_open_at(path, flags, registry_schema_latest(), out, err);
}

void registry_close(registry_t *reg) {
    if (!reg) return;
    ACC_INVARIANT(reg->depth == 0, "registry closed inside a transaction");
    for (size_t i = 0; i < reg->n_stmts; i++) sqlite3_finalize(reg->stmts[i].st);
    sqlite3_finalize(reg->fts_insert.st);
    sqlite3_finalize(reg->fts_query.st);
    sqlite3_finalize(reg->fts_probe.st);
    sqlite3_close(reg->db);
    free(reg);
}

int registry_schema_version(registry_t *reg) {
    int v = 0;
    pragma_int(reg, "PRAGMA user_version", &v, NULL);
    return v;
}

bool registry_is_empty(registry_t *reg) {
    static const char sql[] =
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM datanets LIMIT 1)) + "
        "(SELECT count(*) FROM (SELECT 1 FROM models LIMIT 1)) + "
        "(SELECT count(*) FROM (SELECT 1 FROM agents LIMIT 1))";
    sqlite3_stmt *st;
    if (store_stmt(reg, sql, &st, NULL)) return false;
    bool empty = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0;
    sqlite3_reset(st);
    return empty;
}
