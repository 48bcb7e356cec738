/*
 * store_sqlite.c: the ledger's tables in SQLite (store.h's first backend).
 *
 * Written for the writer's speed, after measuring on this machine (ARCHITECTURE.md, Money): a
 * transaction of 1000 inserts, WAL, synchronous=FULL, runs at about 600k rows/s keyed by rowid and
 * 380k with a unique index on a time-ordered 16-byte id, against 46k for random ids. So:
 *   - a posting is one row: seq is the rowid (commit order, no gap: rows are never deleted, and
 *     SQLite gives a new row max(rowid) + 1 inside the write lock), the id has the one secondary
 *     index (idempotency), and the transfers are packed into the row as varints (legs);
 *   - the settlement index is partial (WHERE code = 6): a call's row adds nothing to it;
 *   - account totals are updated once per account per transaction (the writer adds up a batch
 *     first), so a thousand calls paying the same ten payees cost ten updates, not thousands;
 *   - a settlement posting's debits are indexed by account (ledger_settled, schema version 2), so
 *     "the settlements that paid account A, newest first" is a range of one index, not a read of
 *     every settlement's transfers. Only settlement postings add to it: a call's row adds nothing.
 * Reservations are never stored (ledger.h).
 *
 * Connections: the writer's (writer thread only, after open), one shared read connection behind a
 * mutex for point reads, and a fresh read-only connection per scan or check, so a scan's callback
 * may make point reads without deadlocking.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "meters/ledger/store.h"

#define SCHEMA_VERSION 2

enum {
    W_BEGIN, W_COMMIT, W_ROLLBACK, W_TAIL, W_DATA_VERSION, W_UPSERT, W_ADD, W_ROW, W_LIMIT, W_INSERT, W_DUP,
    W_LAST_SETTLE, W_SETTLED, W_COUNT
};
static const char *const writer_sql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_TAIL] = "SELECT seq, time_ms FROM ledger_postings ORDER BY seq DESC LIMIT 1",
    [W_UPSERT] = ("INSERT INTO ledger_accounts(kind, name) VALUES(?1, ?2) "
                 "ON CONFLICT(kind, name) DO UPDATE SET kind = excluded.kind "
                 "RETURNING id, kind, name, credit_limit, debits, credits, earned, settled"),
    [W_DATA_VERSION] = "PRAGMA data_version",
    /* No RETURNING: measured here, an UPDATE ... RETURNING cost 12.9 us of CPU against 1.2 us for
     * the UPDATE alone and 1.9 us for the UPDATE and a SELECT of the row (SQLite 3.40). */
    [W_ADD] = ("UPDATE ledger_accounts SET debits = debits + ?2, credits = credits + ?3, earned = earned + ?4, "
              "settled = settled + ?5 WHERE id = ?1"),
    [W_ROW] = ("SELECT id, kind, name, credit_limit, debits, credits, earned, settled FROM ledger_accounts "
              "WHERE id = ?1"),
    [W_LIMIT] = "UPDATE ledger_accounts SET credit_limit = ?2 WHERE id = ?1",
    [W_INSERT] = ("INSERT INTO ledger_postings(id, time_ms, state, code, legs, event) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                 "ON CONFLICT(id) DO NOTHING"),
    [W_DUP] = "SELECT seq, state, time_ms FROM ledger_postings WHERE id = ?1",
    [W_LAST_SETTLE] = "SELECT seq FROM ledger_postings WHERE code = 6 ORDER BY seq DESC LIMIT 1",
    [W_SETTLED] = ("INSERT INTO ledger_settled(account, seq, amount) VALUES(?1, ?2, ?3) "
                  "ON CONFLICT(account, seq) DO UPDATE SET amount = amount + excluded.amount"),
};

enum { R_ACCOUNT, R_ACCOUNT_ID, R_LAST_SEQ, R_TIME_AT, R_BEGIN, R_END, R_COUNT };
static const char *const reader_sql[R_COUNT] = {
    [R_ACCOUNT] = ("SELECT id, kind, name, credit_limit, debits, credits, earned, settled FROM ledger_accounts "
                  "WHERE kind = ?1 AND name = ?2"),
    [R_ACCOUNT_ID] = ("SELECT id, kind, name, credit_limit, debits, credits, earned, settled FROM ledger_accounts "
                     "WHERE id = ?1"),
    [R_LAST_SEQ] = "SELECT max(seq) FROM ledger_postings",
    [R_TIME_AT] = "SELECT time_ms FROM ledger_postings WHERE seq = ?1",
    [R_BEGIN] = "BEGIN",
    [R_END] = "COMMIT",
};

static const char posting_cols[] = "SELECT seq, id, time_ms, state, code, legs, event FROM ledger_postings ";

struct store {
    char *path;
    bool readonly, has_tables;
    bool has_settled; /* ledger_settled exists (schema 2; an older file opened read-only has not) */
    sqlite3 *w; /* writer connection; NULL when readonly */
    sqlite3_stmt *ws[W_COUNT];
    pthread_mutex_t rmu; /* guards r and rs */
    sqlite3 *r;
    sqlite3_stmt *rs[R_COUNT];
    uint32_t busy_ms;
    /* writer's scratch for packing legs */
    uint8_t *pack;
    size_t pack_cap;
    /* the writer connection's last PRAGMA data_version (changed_by_others) */
    int64_t data_version;
    bool data_version_known;
};

static int db_fail(acc_err *err, sqlite3 *db, const char *path, const char *what) {
    int rc = sqlite3_extended_errcode(db);
    int code = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? ACC_EBUSY
               : (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB ? ACC_ECORRUPT
                                                                                : ACC_EIO;
    return acc_fail(err, code, "ledger %s: %s: %s", path, what, sqlite3_errmsg(db));
}

/* --- legs: four varints each (debit, credit, amount, code) --- */

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Decodes legs into a growable array; -1 on malformed bytes. */
static int unpack_legs(const uint8_t *p, size_t len, ledger_leg_t **legs, size_t *cap, size_t *n) {
    const uint8_t *end = p + len;
    *n = 0;
    while (p < end) {
        uint64_t d, c, a, code;
        if (get_varint(&p, end, &d) || get_varint(&p, end, &c) || get_varint(&p, end, &a) ||
            get_varint(&p, end, &code))
            return -1;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            ledger_leg_t *bigger = realloc(*legs, nc * sizeof **legs);
            if (!bigger) return -2;
            *legs = bigger;
            *cap = nc;
        }
        (*legs)[(*n)++] = (ledger_leg_t){.debit = d, .credit = c, .amount = a, .code = (ledger_code_t)code};
    }
    return 0;
}

/* --- opening --- */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS ledger_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ledger_accounts("
    " id INTEGER PRIMARY KEY,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),"
    " name TEXT NOT NULL,"
    " credit_limit INTEGER NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),"
    " debits INTEGER NOT NULL DEFAULT 0 CHECK (debits >= 0),"
    " credits INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0),"
    " earned INTEGER NOT NULL DEFAULT 0 CHECK (earned >= 0),"
    " settled INTEGER NOT NULL DEFAULT 0 CHECK (settled >= 0),"
    " UNIQUE (kind, name));"
    /* seq: commit order; legs: packed transfers; event: the owner's record, opaque here */
    "CREATE TABLE IF NOT EXISTS ledger_postings("
    " seq INTEGER PRIMARY KEY,"
    " id BLOB NOT NULL UNIQUE,"
    " time_ms INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " code INTEGER NOT NULL,"
    " legs BLOB,"
    " event BLOB);"
    "CREATE INDEX IF NOT EXISTS ledger_settlements ON ledger_postings(seq) WHERE code = 6;"
    /* version 2: what each posted settlement debits each account (the sum, if one posting debits
     * it twice): by account, then seq, so an account's settlements are one range */
    "CREATE TABLE IF NOT EXISTS ledger_settled("
    " account INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " amount INTEGER NOT NULL CHECK (amount > 0),"
    " PRIMARY KEY (account, seq)) WITHOUT ROWID;";

static int exec(sqlite3 *db, const char *sql, const char *path, acc_err *err) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_fail(err, db, path, sql);
    return ACC_OK;
}

static int open_conn(const char *path, bool readonly, uint32_t busy_ms, sqlite3 **out, acc_err *err) {
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        int rc = acc_fail(err, ACC_EIO, "ledger: cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, (int)busy_ms);
    *out = db;
    return ACC_OK;
}

static bool table_exists(sqlite3 *db, const char *name) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    bool yes = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return yes;
}

/* Indexes a posted settlement's debits under settlement codes in ledger_settled, through ins (the
 * W_SETTLED statement on the writer's connection). */
static int index_settled(store_t *s, sqlite3_stmt *ins, uint64_t seq, const ledger_leg_t *legs, size_t n,
                         acc_err *err) {
    for (size_t i = 0; i < n; i++) {
        if (legs[i].code != LEDGER_CODE_SETTLEMENT) continue;
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)legs[i].debit);
        sqlite3_bind_int64(ins, 2, (sqlite3_int64)seq);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)legs[i].amount);
        int rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE) return db_fail(err, s->w, s->path, "indexing a settlement's transfers");
    }
    return ACC_OK;
}

/* Version 1 to 2: the settlements already stored, indexed by account. */
static int backfill_settled(store_t *s, acc_err *err) {
    sqlite3_stmt *sel = NULL, *ins = NULL;
    ledger_leg_t *legs = NULL;
    size_t cap = 0, n;
    int rc = ACC_OK, src;
    if (sqlite3_prepare_v2(s->w, "SELECT seq, legs FROM ledger_postings WHERE code = 6 AND state = 2 ORDER BY seq",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->w, writer_sql[W_SETTLED], -1, &ins, NULL) != SQLITE_OK) {
        rc = db_fail(err, s->w, s->path, "upgrading to ledger schema 2");
        goto done;
    }
    while (!rc && (src = sqlite3_step(sel)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(sel, 0);
        int ul = unpack_legs(sqlite3_column_blob(sel, 1), (size_t)sqlite3_column_bytes(sel, 1), &legs, &cap, &n);
        if (ul)
            rc = ul == -2 ? acc_fail(err, ACC_ENOMEM, "ledger: out of memory")
                          : acc_fail(err, ACC_ECORRUPT, "ledger %s: posting %llu: malformed transfers", s->path,
                                     (unsigned long long)seq);
        else
            rc = index_settled(s, ins, seq, legs, n, err);
    }
    if (!rc && src != SQLITE_DONE) rc = db_fail(err, s->w, s->path, "upgrading to ledger schema 2");
done:
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    free(legs);
    return rc;
}

_Static_assert(SCHEMA_VERSION == 2, "migrate() writes schema version 2: add the new version's step there");

/* Creates or upgrades the tables and the system accounts, in one transaction. */
static int migrate(store_t *s, acc_err *err) {
    sqlite3 *db = s->w;
    int rc = exec(db, "BEGIN IMMEDIATE", s->path, err);
    if (rc) return rc;
    if ((rc = exec(db, schema_sql, s->path, err))) goto fail;
    sqlite3_stmt *st;
    int version = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM ledger_meta WHERE key = 'schema'", -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(err, db, s->path, "reading the schema version");
        goto fail;
    }
    if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > SCHEMA_VERSION) {
        rc = acc_fail(err, ACC_EVERSION,
                      "ledger %s: written by a newer accrue (ledger schema %d; this one knows %d): upgrade accrue",
                      s->path, version, SCHEMA_VERSION);
        goto fail;
    }
    /* schema_sql made what is missing (every table, when version is 0: a new ledger); each step
     * below fills what a new table must hold for the postings already stored, from the version
     * found to the next. */
    if (version == 1 && (rc = backfill_settled(s, err))) goto fail;
    if ((rc = exec(db,
                   "INSERT INTO ledger_meta(key, value) VALUES('schema', 2) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value;"
                   "INSERT INTO ledger_accounts(kind, name, credit_limit) VALUES(1, 'external', 9223372036854775807) "
                   "ON CONFLICT(kind, name) DO NOTHING;"
                   "INSERT INTO ledger_accounts(kind, name) VALUES(1, 'operator') ON CONFLICT(kind, name) DO NOTHING;"
                   "INSERT INTO ledger_accounts(kind, name) VALUES(1, 'settlement') "
                   "ON CONFLICT(kind, name) DO NOTHING;",
                   s->path, err)))
        goto fail;
    return exec(db, "COMMIT", s->path, err);
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n, const char *path, acc_err *err) {
    for (int i = 0; i < n; i++)
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL) != SQLITE_OK)
            return db_fail(err, db, path, sql[i]);
    return ACC_OK;
}

static void sq_close(store_t *s) {
    if (!s) return;
    for (int i = 0; i < W_COUNT; i++) sqlite3_finalize(s->ws[i]);
    for (int i = 0; i < R_COUNT; i++) sqlite3_finalize(s->rs[i]);
    sqlite3_close(s->w);
    sqlite3_close(s->r);
    pthread_mutex_destroy(&s->rmu);
    free(s->pack);
    free(s->path);
    free(s);
}

static int sq_open(const char *path, bool readonly, bool no_sync, uint32_t busy_ms, store_t **out, acc_err *err) {
    struct stat stbuf;
    if (readonly && stat(path, &stbuf) != 0)
        return acc_fail(err, ACC_ENOTFOUND, "ledger: no database at %s", path);
    store_t *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return acc_fail(err, ACC_ENOMEM, "ledger: out of memory");
    }
    pthread_mutex_init(&s->rmu, NULL);
    s->readonly = readonly;
    s->busy_ms = busy_ms;
    int rc;
    if (!readonly) {
        if ((rc = open_conn(path, false, busy_ms, &s->w, err))) goto fail;
        char pragmas[200];
        /* cache_size: a transaction that touches many accounts (a settlement batch updates one row
         * per payee) must not spill its dirty pages to the WAL before it commits: 64 MiB at most,
         * allocated as used. */
        snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-65536;",
                 no_sync ? "NORMAL" : "FULL");
        if ((rc = exec(s->w, pragmas, path, err)) || (rc = migrate(s, err))) goto fail;
        if ((rc = prepare_all(s->w, writer_sql, s->ws, W_COUNT, path, err))) goto fail;
    }
    if ((rc = open_conn(path, true, busy_ms, &s->r, err))) goto fail;
    s->has_tables = table_exists(s->r, "ledger_postings");
    s->has_settled = table_exists(s->r, "ledger_settled");
    if (s->has_tables && (rc = prepare_all(s->r, reader_sql, s->rs, R_COUNT, path, err))) goto fail;
    *out = s;
    return ACC_OK;
fail:
    sq_close(s);
    return rc;
}

/* --- writer side --- */

static int step_done(store_t *s, sqlite3_stmt *st, const char *what, acc_err *err) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return db_fail(err, s->w, s->path, what);
    return ACC_OK;
}

static int sq_begin(store_t *s, acc_err *err) { return step_done(s, s->ws[W_BEGIN], "begin", err); }
static int sq_commit(store_t *s, acc_err *err) { return step_done(s, s->ws[W_COMMIT], "commit", err); }
static void sq_rollback(store_t *s) {
    if (!sqlite3_get_autocommit(s->w)) step_done(s, s->ws[W_ROLLBACK], "rollback", NULL);
}

static int sq_tail(store_t *s, uint64_t *seq, uint64_t *time_ms, acc_err *err) {
    sqlite3_stmt *st = s->ws[W_TAIL];
    int rc = sqlite3_step(st);
    *seq = *time_ms = 0;
    if (rc == SQLITE_ROW) {
        *seq = (uint64_t)sqlite3_column_int64(st, 0);
        *time_ms = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_fail(err, s->w, s->path, "reading the last posting");
    return ACC_OK;
}

static void account_row(sqlite3_stmt *st, store_account_t *a) {
    a->id = (uint64_t)sqlite3_column_int64(st, 0);
    a->kind = sqlite3_column_int(st, 1);
    const unsigned char *name = sqlite3_column_text(st, 2);
    snprintf(a->name, sizeof a->name, "%s", name ? (const char *)name : "");
    a->credit_limit = (uint64_t)sqlite3_column_int64(st, 3);
    a->debits = (uint64_t)sqlite3_column_int64(st, 4);
    a->credits = (uint64_t)sqlite3_column_int64(st, 5);
    a->earned = (uint64_t)sqlite3_column_int64(st, 6);
    a->settled = (uint64_t)sqlite3_column_int64(st, 7);
}

/* Steps a statement expected to return one row into *out. */
static int one_account(store_t *s, sqlite3 *db, sqlite3_stmt *st, store_account_t *out, bool *found,
                       const char *what, acc_err *err) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) account_row(st, out);
    if (found) *found = rc == SQLITE_ROW;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_fail(err, db, s->path, what);
    if (rc == SQLITE_DONE && !found) return acc_fail(err, ACC_ENOTFOUND, "ledger: %s: no such account", what);
    return ACC_OK;
}

static int sq_account_upsert(store_t *s, int kind, const char *name, store_account_t *out, acc_err *err) {
    sqlite3_stmt *st = s->ws[W_UPSERT];
    sqlite3_bind_int(st, 1, kind);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    return one_account(s, s->w, st, out, NULL, "creating an account", err);
}

/* PRAGMA data_version is unchanged by this connection's own commits and changes with any other
 * connection's: read inside the write transaction, it says whether anyone else wrote since. */
static int sq_changed_by_others(store_t *s, bool *changed, acc_err *err) {
    sqlite3_stmt *st = s->ws[W_DATA_VERSION];
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return db_fail(err, s->w, s->path, "reading the data version");
    *changed = !s->data_version_known || v != s->data_version;
    s->data_version = v;
    s->data_version_known = true;
    return ACC_OK;
}

static int sq_account_add(store_t *s, uint64_t id, ledger_amount_t debits, ledger_amount_t credits,
                          ledger_amount_t earned, ledger_amount_t settled, acc_err *err) {
    sqlite3_stmt *st = s->ws[W_ADD];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)debits);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)credits);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)earned);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)settled);
    int rc = step_done(s, st, "updating an account's totals", err);
    if (!rc && sqlite3_changes(s->w) != 1)
        rc = acc_fail(err, ACC_ECORRUPT, "ledger %s: account %llu is not stored", s->path, (unsigned long long)id);
    return rc;
}

static int sq_account_row(store_t *s, uint64_t id, store_account_t *out, acc_err *err) {
    sqlite3_stmt *st = s->ws[W_ROW];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    return one_account(s, s->w, st, out, NULL, "reading an account's totals", err);
}

static int sq_account_set_limit(store_t *s, uint64_t id, ledger_amount_t limit, acc_err *err) {
    sqlite3_stmt *st = s->ws[W_LIMIT];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    return step_done(s, st, "setting a credit limit", err);
}

static int sq_insert(store_t *s, const store_posting_t *p, uint64_t *seq, bool *dup, ledger_state_t *dup_state,
                     uint64_t *dup_time, acc_err *err) {
    size_t need = p->nlegs * 4 * 10;
    if (need > s->pack_cap) {
        uint8_t *bigger = realloc(s->pack, need);
        if (!bigger) return acc_fail(err, ACC_ENOMEM, "ledger: out of memory");
        s->pack = bigger;
        s->pack_cap = need;
    }
    size_t n = 0;
    for (size_t i = 0; i < p->nlegs; i++) {
        n += put_varint(s->pack + n, p->legs[i].debit);
        n += put_varint(s->pack + n, p->legs[i].credit);
        n += put_varint(s->pack + n, p->legs[i].amount);
        n += put_varint(s->pack + n, (uint64_t)p->legs[i].code);
    }
    sqlite3_stmt *st = s->ws[W_INSERT];
    sqlite3_bind_blob(st, 1, p->id->b, 16, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)p->time_ms);
    sqlite3_bind_int(st, 3, (int)p->state);
    sqlite3_bind_int(st, 4, (int)p->code);
    if (n) sqlite3_bind_blob(st, 5, s->pack, (int)n, SQLITE_STATIC);
    else sqlite3_bind_null(st, 5);
    if (p->event_len) sqlite3_bind_blob(st, 6, p->event, (int)p->event_len, SQLITE_STATIC);
    else sqlite3_bind_null(st, 6);
    int rc = step_done(s, st, "writing a posting", err);
    if (rc) return rc;
    *dup = sqlite3_changes(s->w) == 0;
    if (!*dup) {
        *seq = (uint64_t)sqlite3_last_insert_rowid(s->w);
        if (p->code == LEDGER_CODE_SETTLEMENT && p->state == LEDGER_POSTED)
            return index_settled(s, s->ws[W_SETTLED], *seq, p->legs, p->nlegs, err);
        return ACC_OK;
    }
    st = s->ws[W_DUP];
    sqlite3_bind_blob(st, 1, p->id->b, 16, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *seq = (uint64_t)sqlite3_column_int64(st, 0);
        *dup_state = (ledger_state_t)sqlite3_column_int(st, 1);
        *dup_time = (uint64_t)sqlite3_column_int64(st, 2);
        rc = ACC_OK;
    } else {
        rc = db_fail(err, s->w, s->path, "reading the first result of a repeated id");
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_last_settlement_seq(store_t *s, uint64_t *seq, acc_err *err) {
    sqlite3_stmt *st = s->ws[W_LAST_SETTLE];
    int rc = sqlite3_step(st);
    *seq = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_fail(err, s->w, s->path, "reading the last settlement");
    return ACC_OK;
}

/* --- read side: point reads on the shared connection --- */

static int sq_account_get(store_t *s, int kind, const char *name, store_account_t *out, bool *found, acc_err *err) {
    if (!s->has_tables) {
        *found = false;
        return ACC_OK;
    }
    pthread_mutex_lock(&s->rmu);
    sqlite3_stmt *st = s->rs[R_ACCOUNT];
    sqlite3_bind_int(st, 1, kind);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = one_account(s, s->r, st, out, found, "reading an account", err);
    pthread_mutex_unlock(&s->rmu);
    return rc;
}

static int sq_account_by_id(store_t *s, uint64_t id, store_account_t *out, acc_err *err) {
    if (!s->has_tables) return acc_fail(err, ACC_ENOTFOUND, "ledger: no account %llu", (unsigned long long)id);
    pthread_mutex_lock(&s->rmu);
    sqlite3_stmt *st = s->rs[R_ACCOUNT_ID];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    bool found;
    int rc = one_account(s, s->r, st, out, &found, "reading an account", err);
    pthread_mutex_unlock(&s->rmu);
    if (!rc && !found) rc = acc_fail(err, ACC_ENOTFOUND, "ledger: no account %llu", (unsigned long long)id);
    return rc;
}

static int sq_last_seq(store_t *s, uint64_t *seq, acc_err *err) {
    *seq = 0;
    if (!s->has_tables) return ACC_OK;
    pthread_mutex_lock(&s->rmu);
    sqlite3_stmt *st = s->rs[R_LAST_SEQ];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *seq = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->rmu);
    if (rc != SQLITE_ROW) return db_fail(err, s->r, s->path, "reading the last seq");
    return ACC_OK;
}

/* The first seq with time_ms >= t: commit times never decrease along seq, so a binary search over
 * point reads (no index on time needed). */
static int sq_seq_at_time(store_t *s, uint64_t t, uint64_t *out, acc_err *err) {
    uint64_t last;
    int rc = sq_last_seq(s, &last, err);
    if (rc) return rc;
    uint64_t lo = 1, hi = last + 1; /* answer in [lo, hi] */
    pthread_mutex_lock(&s->rmu);
    if (sqlite3_step(s->rs[R_BEGIN]) != SQLITE_DONE) rc = db_fail(err, s->r, s->path, "begin");
    sqlite3_reset(s->rs[R_BEGIN]);
    sqlite3_stmt *st = s->rs[R_TIME_AT];
    while (!rc && lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)mid);
        int src = sqlite3_step(st);
        uint64_t tm = src == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : UINT64_MAX;
        sqlite3_reset(st);
        if (src != SQLITE_ROW && src != SQLITE_DONE) rc = db_fail(err, s->r, s->path, "reading a posting's time");
        if (tm >= t) hi = mid;
        else lo = mid + 1;
    }
    sqlite3_step(s->rs[R_END]);
    sqlite3_reset(s->rs[R_END]);
    pthread_mutex_unlock(&s->rmu);
    *out = lo;
    return rc;
}

/* --- read side: scans on a connection of their own --- */

typedef struct scan {
    store_t *s;
    sqlite3 *db;
    ledger_leg_t *legs;
    size_t cap;
    uint64_t account; /* a query with an 8th column (ledger_settled's amount): the account it debits */
} scan_t;

static int scan_open(store_t *s, scan_t *sc, acc_err *err) {
    memset(sc, 0, sizeof *sc);
    sc->s = s;
    int rc = open_conn(s->path, true, s->busy_ms, &sc->db, err);
    if (!rc && exec(sc->db, "BEGIN", s->path, err)) rc = err ? err->code : ACC_EIO;
    if (rc) sqlite3_close(sc->db);
    return rc;
}

static void scan_close(scan_t *sc) {
    sqlite3_exec(sc->db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(sc->db);
    free(sc->legs);
}

/* Runs a prepared posting query, calling fn on each row. */
static int scan_rows(scan_t *sc, sqlite3_stmt *st, ledger_entry_fn fn, void *ud, size_t *nrows, acc_err *err) {
    int rc = ACC_OK, src;
    size_t rows = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        ledger_entry_t e = {0};
        e.seq = (uint64_t)sqlite3_column_int64(st, 0);
        const void *id = sqlite3_column_blob(st, 1);
        if (sqlite3_column_bytes(st, 1) != 16 || !id) {
            rc = acc_fail(err, ACC_ECORRUPT, "ledger %s: posting %llu: id is not 16 bytes", sc->s->path,
                          (unsigned long long)e.seq);
            break;
        }
        memcpy(e.id.b, id, 16);
        e.time_ms = (uint64_t)sqlite3_column_int64(st, 2);
        e.state = (ledger_state_t)sqlite3_column_int(st, 3);
        e.code = (ledger_code_t)sqlite3_column_int(st, 4);
        const uint8_t *legs = sqlite3_column_blob(st, 5);
        int ul = unpack_legs(legs, (size_t)sqlite3_column_bytes(st, 5), &sc->legs, &sc->cap, &e.nlegs);
        if (ul) {
            rc = ul == -2 ? acc_fail(err, ACC_ENOMEM, "ledger: out of memory")
                          : acc_fail(err, ACC_ECORRUPT, "ledger %s: posting %llu: malformed transfers", sc->s->path,
                                     (unsigned long long)e.seq);
            break;
        }
        e.legs = sc->legs;
        ledger_leg_t settled;
        if (sc->account) { /* one leg: what the posting debits the account (settlements()) */
            settled = (ledger_leg_t){.debit = sc->account, .amount = (uint64_t)sqlite3_column_int64(st, 7),
                                     .code = LEDGER_CODE_SETTLEMENT};
            e.legs = &settled;
            e.nlegs = 1;
        }
        e.event = sqlite3_column_blob(st, 6);
        e.event_len = (size_t)sqlite3_column_bytes(st, 6);
        rows++;
        if ((rc = fn(ud, &e)) != ACC_OK) break;
    }
    if (!rc && src != SQLITE_DONE) rc = db_fail(err, sc->db, sc->s->path, "reading postings");
    if (nrows) *nrows = rows;
    return rc;
}

/* where: the query after posting_cols, or a whole query of the same columns (from "SELECT"); with
 * account, an eighth column: what each posting debits that account. */
static int query_postings(store_t *s, const char *where, const uint64_t *args, int nargs, const ledger_id_t *id,
                          uint64_t account, ledger_entry_fn fn, void *ud, size_t *nrows, acc_err *err) {
    if (nrows) *nrows = 0;
    if (!s->has_tables) return ACC_OK;
    scan_t sc;
    int rc = scan_open(s, &sc, err);
    if (rc) return rc;
    sc.account = account;
    char sql[400];
    snprintf(sql, sizeof sql, "%s%s", strncmp(where, "SELECT", 6) == 0 ? "" : posting_cols, where);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sc.db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(err, sc.db, s->path, "preparing a scan");
    } else {
        for (int i = 0; i < nargs; i++) sqlite3_bind_int64(st, i + 1, (sqlite3_int64)args[i]);
        if (id) sqlite3_bind_blob(st, 1, id->b, 16, SQLITE_STATIC);
        rc = scan_rows(&sc, st, fn, ud, nrows, err);
        sqlite3_finalize(st);
    }
    scan_close(&sc);
    return rc;
}

static int sq_scan(store_t *s, uint64_t from, uint64_t to, bool reverse, ledger_entry_fn fn, void *ud, acc_err *err) {
    uint64_t args[2] = {from, to ? to : (uint64_t)INT64_MAX};
    return query_postings(s, reverse ? "WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq DESC"
                                     : "WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
                          args, 2, NULL, 0, fn, ud, NULL, err);
}

static int sq_find(store_t *s, const ledger_id_t *id, ledger_entry_fn fn, void *ud, acc_err *err) {
    size_t n;
    int rc = query_postings(s, "WHERE id = ?1", NULL, 0, id, 0, fn, ud, &n, err);
    if (!rc && !n) {
        char hex[33];
        ledger_id_hex(id, hex);
        rc = acc_fail(err, ACC_ENOTFOUND, "ledger: no posting with id %s", hex);
    }
    return rc;
}

static int sq_last_settlement(store_t *s, ledger_entry_fn fn, void *ud, acc_err *err) {
    size_t n;
    int rc = query_postings(s, "WHERE code = 6 ORDER BY seq DESC LIMIT 1", NULL, 0, NULL, 0, fn, ud, &n, err);
    if (!rc && !n) rc = acc_fail(err, ACC_ENOTFOUND, "ledger: no settlement yet");
    return rc;
}

/* A ledger from before ledger_settled, opened read-only (so not upgraded): an account's
 * settlements found by reading every settlement's transfers, as the index would give them. */
typedef struct settled_filter {
    uint64_t account, limit, seen;
    ledger_entry_fn fn;
    void *ud;
} settled_filter_t;

#define FILTER_DONE 1 /* not an error: the limit is reached */

static int filter_settled(void *ud, const ledger_entry_t *e) {
    settled_filter_t *f = ud;
    ledger_leg_t sum = {.debit = f->account, .code = LEDGER_CODE_SETTLEMENT};
    for (size_t i = 0; i < e->nlegs; i++)
        if (e->legs[i].debit == f->account && e->legs[i].code == LEDGER_CODE_SETTLEMENT) sum.amount += e->legs[i].amount;
    if (!sum.amount) return ACC_OK;
    ledger_entry_t one = *e;
    one.legs = &sum;
    one.nlegs = 1;
    int rc = f->fn(f->ud, &one);
    if (rc == ACC_OK && f->limit && ++f->seen == f->limit) rc = FILTER_DONE;
    return rc;
}

static int sq_settlements(store_t *s, uint64_t account, uint64_t before, uint64_t limit, ledger_entry_fn fn, void *ud,
                          acc_err *err) {
    if (!s->has_tables) return ACC_OK;
    uint64_t args[3] = {before ? before : (uint64_t)INT64_MAX, limit ? limit : (uint64_t)-1, account};
    if (!account)
        return query_postings(s, "SELECT seq, id, time_ms, state, code, NULL, event FROM ledger_postings "
                                 "WHERE code = 6 AND seq < ?1 ORDER BY seq DESC LIMIT ?2",
                              args, 2, NULL, 0, fn, ud, NULL, err);
    if (s->has_settled)
        return query_postings(s, "SELECT p.seq, p.id, p.time_ms, p.state, p.code, NULL, p.event, x.amount "
                                 "FROM ledger_settled x JOIN ledger_postings p ON p.seq = x.seq "
                                 "WHERE x.account = ?3 AND x.seq < ?1 ORDER BY x.seq DESC LIMIT ?2",
                              args, 3, NULL, account, fn, ud, NULL, err);
    settled_filter_t f = {.account = account, .limit = limit, .fn = fn, .ud = ud};
    int rc = query_postings(s, "SELECT seq, id, time_ms, state, code, legs, event FROM ledger_postings "
                               "WHERE code = 6 AND state = 2 AND seq < ?1 ORDER BY seq DESC",
                            args, 1, NULL, 0, filter_settled, &f, NULL, err);
    return rc == FILTER_DONE ? ACC_OK : rc;
}

static int accounts_rows(store_t *s, sqlite3 *db, store_account_fn fn, void *ud, acc_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, kind, name, credit_limit, debits, credits, earned, settled FROM ledger_accounts "
                           "ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(err, db, s->path, "reading accounts");
    int rc = ACC_OK, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        store_account_t a;
        account_row(st, &a);
        if ((rc = fn(ud, &a)) != ACC_OK) break;
    }
    if (!rc && src != SQLITE_DONE) rc = db_fail(err, db, s->path, "reading accounts");
    sqlite3_finalize(st);
    return rc;
}

static int sq_accounts(store_t *s, store_account_fn fn, void *ud, acc_err *err) {
    if (!s->has_tables) return ACC_OK;
    scan_t sc;
    int rc = scan_open(s, &sc, err);
    if (rc) return rc;
    rc = accounts_rows(s, sc.db, fn, ud, err);
    scan_close(&sc);
    return rc;
}

static int sq_snapshot(store_t *s, store_account_fn afn, ledger_entry_fn pfn, store_settled_fn sfn, void *ud,
                       bool *indexed, bool *dup, ledger_id_t *dup_id, acc_err *err) {
    *dup = false;
    *indexed = s->has_settled;
    if (!s->has_tables) return ACC_OK;
    scan_t sc;
    int rc = scan_open(s, &sc, err);
    if (rc) return rc;
    rc = accounts_rows(s, sc.db, afn, ud, err);
    if (!rc) {
        sqlite3_stmt *st;
        char sql[200];
        snprintf(sql, sizeof sql, "%sORDER BY seq", posting_cols);
        if (sqlite3_prepare_v2(sc.db, sql, -1, &st, NULL) != SQLITE_OK) {
            rc = db_fail(err, sc.db, s->path, "reading postings");
        } else {
            rc = scan_rows(&sc, st, pfn, ud, NULL, err);
            sqlite3_finalize(st);
        }
    }
    if (!rc && s->has_settled) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(sc.db, "SELECT account, seq, amount FROM ledger_settled", -1, &st, NULL) != SQLITE_OK) {
            rc = db_fail(err, sc.db, s->path, "reading the settlements' index");
        } else {
            int src;
            while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW)
                rc = sfn(ud, (uint64_t)sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
                         (uint64_t)sqlite3_column_int64(st, 2));
            if (!rc && src != SQLITE_DONE) rc = db_fail(err, sc.db, s->path, "reading the settlements' index");
            sqlite3_finalize(st);
        }
    }
    if (!rc) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(sc.db, "SELECT id FROM ledger_postings GROUP BY id HAVING count(*) > 1 LIMIT 1", -1,
                               &st, NULL) != SQLITE_OK) {
            rc = db_fail(err, sc.db, s->path, "looking for repeated ids");
        } else {
            int src = sqlite3_step(st);
            if (src == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
                *dup = true;
                memcpy(dup_id->b, sqlite3_column_blob(st, 0), 16);
            } else if (src != SQLITE_DONE && src != SQLITE_ROW) {
                rc = db_fail(err, sc.db, s->path, "looking for repeated ids");
            }
            sqlite3_finalize(st);
        }
    }
    scan_close(&sc);
    return rc;
}

const store_ops_t store_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .tail = sq_tail,
    .changed_by_others = sq_changed_by_others,
    .account_upsert = sq_account_upsert,
    .account_add = sq_account_add,
    .account_row = sq_account_row,
    .account_set_limit = sq_account_set_limit,
    .insert = sq_insert,
    .last_settlement_seq = sq_last_settlement_seq,
    .account_get = sq_account_get,
    .account_by_id = sq_account_by_id,
    .accounts = sq_accounts,
    .last_seq = sq_last_seq,
    .scan = sq_scan,
    .find = sq_find,
    .last_settlement = sq_last_settlement,
    .settlements = sq_settlements,
    .seq_at_time = sq_seq_at_time,
    .snapshot = sq_snapshot,
};
