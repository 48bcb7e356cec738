/*
 * store.h: the registry's SQLite store, shared by the files of registry/ (never included outside it).
 *
 * The handle is one connection with its prepared statements cached (each SQL text is prepared once,
 * keyed by the address of its string literal), a transaction depth (the outermost level is BEGIN
 * IMMEDIATE, inner ones are savepoints, so every writing function is atomic whether or not its caller
 * grouped it with others), the hooks and the clock.
 *
 * A writing function reads:
 *     int rc = store_tx_begin(reg, err);
 *     if (rc) return rc;
 *     rc = ...the work...;
 *     return store_tx_end(reg, rc, err);   // commits (or releases) on ACC_OK, else undoes it all
 */
#ifndef ACCRUE_REGISTRY_STORE_H
#define ACCRUE_REGISTRY_STORE_H

#include <sqlite3.h>

#include "registry/registry.h"

#define STORE_STMTS_MAX 128

typedef struct store_fts_stmt {
    int64_t datanet_id; /* 0: none */
    sqlite3_stmt *st;
} store_fts_stmt_t;

struct registry {
    sqlite3 *db;
    int depth;              /* open transaction levels */
    bool accepted_in_tx;    /* records were announced to hooks in the outermost transaction */
    bool rolled_back_in_tx; /* an inner level was undone after records were announced */
    size_t n_hooks;
    registry_hooks_t hooks[REGISTRY_HOOKS_MAX];
    int64_t (*clock)(void *ud);
    void *clock_ud;
    size_t n_stmts;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } stmts[STORE_STMTS_MAX];
    /* The statements on one datanet's full-text table (its name holds the datanet's id, so they
     * are not string literals): the last datanet's, kept for the next record or query. */
    store_fts_stmt_t fts_insert, fts_query, fts_probe;
    /* sqlite3_db_filename(db, "main"), read once: the span cache's key (spans.c), looked up by
     * every attribution, and the call was most of that look-up's time */
    const char *db_filename;
};

/* A migration takes the schema from version - 1 to version: SQL run as one script inside the
 * upgrade's transaction. */
typedef struct store_migration {
    int version;
    const char *what; /* one line, for messages */
    const char *sql;
    int (*step)(registry_t *reg, acc_err *err); /* run after sql when not NULL: what SQL alone cannot do */
} store_migration_t;

/* Creates datanet id's full-text table (records_fts_<id>, schema version 7), inside the caller's
 * transaction, and fills it with the datanet's accepted records (none for a new datanet); replace
 * drops the table first if there is one (an upgrade builds every datanet's afresh). */
int store_fts_create(registry_t *reg, int64_t datanet_id, bool replace, acc_err *err);

extern const store_migration_t store_migrations[];
extern const size_t store_n_migrations;

/* Opens path and brings its schema to version target (the latest: registry_schema_latest()). For
 * tests of upgrades: a file made at an older target and opened again by registry_open. */
int store_open_at(const char *path, unsigned flags, int target, registry_t **out, acc_err *err);

/* The cached statement for sql (a string literal), reset with its bindings cleared, into *st; or a
 * failure status when it cannot be prepared. */
int store_stmt(registry_t *reg, const char *sql, sqlite3_stmt **st, acc_err *err);

/* Maps the connection's last error (rc a SQLite result code) to an ACC_E* code, with a message
 * "database: ..." prefixed by what. */
int store_fail(registry_t *reg, int rc, acc_err *err, const char *what);

/* Steps a statement that returns no row (INSERT, UPDATE); ACC_OK or store_fail. */
int store_exec(registry_t *reg, sqlite3_stmt *st, acc_err *err, const char *what);

int store_tx_begin(registry_t *reg, acc_err *err);
int store_tx_end(registry_t *reg, int rc, acc_err *err);

int64_t store_now(registry_t *reg);

/* Announces an accepted record to the hooks (inside the accepting transaction). */
int store_announce_accepted(registry_t *reg, const registry_record_t *r, acc_err *err);

/* Every row's first column (a name) of sql (a statement without parameters), into a malloc'd
 * array the caller frees: for lists that then read each item with statements of their own. */
typedef char store_name_t[REGISTRY_NAME_MAX + 1];
int store_names(registry_t *reg, const char *sql, store_name_t **names, size_t *n, acc_err *err);

/* Binding helpers: text of len bytes (copied by SQLite only when it must outlive the call: we bind
 * static), a 20-byte address, a uint64 amount (<= INT64_MAX, checked by the callers' parsers). */
static inline int store_bind_text(sqlite3_stmt *st, int i, const char *s, size_t len) {
    return sqlite3_bind_text(st, i, s, (int)len, SQLITE_STATIC);
}
static inline int store_bind_str(sqlite3_stmt *st, int i, const char *s) {
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}
static inline int store_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len) {
    return sqlite3_bind_blob(st, i, p, (int)len, SQLITE_STATIC);
}
/* Copies column i (a blob of exactly n bytes) into out; false when it is not that. */
bool store_column_blob(sqlite3_stmt *st, int i, void *out, size_t n);
/* Copies column i (text) into out (size bytes), truncating; always NUL-terminates. */
void store_column_text(sqlite3_stmt *st, int i, char *out, size_t size);

/* Validation shared by the files of registry/ (names.c). */
/* registry_name_check, and not under test/ (the built-in test provider's). */
int registry_name_check_new(const char *name, const char *what, acc_err *err);
bool registry_semver_is_prerelease(const char *s);
bool registry_utf8_valid(const char *s, size_t len);
/* A description: at most REGISTRY_DESCRIPTION_MAX bytes of UTF-8, no control character but \n, \t. */
int registry_description_check(const char *s, const char *what, acc_err *err);
/* A 65-byte signature over digest (already EIP-191-wrapped or not: see registry_signed_digest) that
 * must recover want; messages name what was signed and who signed instead. */
int registry_verify_signer(const uint8_t digest[32], const uint8_t sig[65], const uint8_t want[20],
                           const char *what, const char *who, acc_err *err);

#endif
