/*
 * store.h: the ledger's storage interface (private to meters/ledger).
 *
 * Everything the ledger keeps durably goes through these operations, and nothing else touches the
 * database: a second backend (PostgreSQL, for several hosts on one ledger) is another table of
 * these functions. store_sqlite.c is the first.
 *
 * Two sides. The writer side (begin ... commit) is used by the ledger's writer thread alone, one
 * transaction at a time, holding the database's write lock from begin to commit/rollback. The
 * read side may be used from any thread: each read function is one consistent read (a backend
 * serializes them as it needs); scans and checks open a read snapshot of their own, so their
 * callbacks may call the other read functions.
 *
 * Amounts cross this interface as uint64 and are stored exactly (each at most LEDGER_AMOUNT_MAX).
 */
#ifndef ACCRUE_METERS_LEDGER_STORE_H
#define ACCRUE_METERS_LEDGER_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "meters/ledger/ledger.h"

/* An account's stored row. */
typedef struct store_account {
    uint64_t id;
    int kind;
    char name[LEDGER_NAME_MAX + 1];
    ledger_amount_t credit_limit, debits, credits, earned, settled;
} store_account_t;

/* A posting to write. */
typedef struct store_posting {
    const ledger_id_t *id;
    uint64_t time_ms;
    ledger_state_t state;
    ledger_code_t code;
    const ledger_leg_t *legs;
    size_t nlegs;
    const void *event;
    size_t event_len;
} store_posting_t;

typedef int (*store_account_fn)(void *ud, const store_account_t *a);
/* A row of the index of settlements by account: what settlement posting seq debited account. */
typedef int (*store_settled_fn)(void *ud, uint64_t account, uint64_t seq, uint64_t amount);

typedef struct store store_t;

typedef struct store_ops {
    const char *name; /* "sqlite" */
    /* Opens path (creating the ledger's tables, or upgrading them in place, unless readonly) and
     * makes sure the system accounts exist. */
    int (*open)(const char *path, bool readonly, bool no_sync, uint32_t busy_timeout_ms, store_t **out,
                acc_err *err);
    void (*close)(store_t *s);

    /* --- writer side --- */
    int (*begin)(store_t *s, acc_err *err); /* takes the write lock (waiting up to the busy timeout) */
    int (*commit)(store_t *s, acc_err *err); /* durable when it returns ACC_OK */
    void (*rollback)(store_t *s);
    /* The highest seq and its commit time, inside the transaction. */
    int (*tail)(store_t *s, uint64_t *seq, uint64_t *time_ms, acc_err *err);
    /* Whether another connection (another process, or another handle of this one) may have
     * committed since this connection's last transaction; inside the transaction. The first call
     * says yes. The writer trusts its cached account totals only when the answer is no. */
    int (*changed_by_others)(store_t *s, bool *changed, acc_err *err);
    /* The account (kind, name), created with zero balances if absent; *out gets its row. */
    int (*account_upsert)(store_t *s, int kind, const char *name, store_account_t *out, acc_err *err);
    /* Adds to an account's totals. */
    int (*account_add)(store_t *s, uint64_t id, ledger_amount_t debits, ledger_amount_t credits,
                       ledger_amount_t earned, ledger_amount_t settled, acc_err *err);
    /* The account's row as this transaction sees it. */
    int (*account_row)(store_t *s, uint64_t id, store_account_t *out, acc_err *err);
    int (*account_set_limit)(store_t *s, uint64_t id, ledger_amount_t limit, acc_err *err);
    /* Writes a posting. When its id is stored already, writes nothing and sets *dup with the stored
     * seq, state and time; else *seq is the new one. */
    int (*insert)(store_t *s, const store_posting_t *p, uint64_t *seq, bool *dup, ledger_state_t *dup_state,
                  uint64_t *dup_time, acc_err *err);
    /* The seq of the last settlement posting (0 when none), inside the transaction. */
    int (*last_settlement_seq)(store_t *s, uint64_t *seq, acc_err *err);

    /* --- read side --- */
    int (*account_get)(store_t *s, int kind, const char *name, store_account_t *out, bool *found, acc_err *err);
    int (*account_by_id)(store_t *s, uint64_t id, store_account_t *out, acc_err *err); /* ACC_ENOTFOUND */
    int (*accounts)(store_t *s, store_account_fn fn, void *ud, acc_err *err);
    int (*last_seq)(store_t *s, uint64_t *seq, acc_err *err);
    int (*scan)(store_t *s, uint64_t from, uint64_t to, bool reverse, ledger_entry_fn fn, void *ud, acc_err *err);
    int (*find)(store_t *s, const ledger_id_t *id, ledger_entry_fn fn, void *ud, acc_err *err);
    int (*last_settlement)(store_t *s, ledger_entry_fn fn, void *ud, acc_err *err);
    /* Settlement postings with seq < before (0: no bound), newest first, at most limit (0: all);
     * without their transfers (nlegs 0), or, when account is not 0, only those that debit it, each
     * with one leg: {debit account, credit 0, the amount the posting debits it, code settlement}.
     * Indexed (not a read of every settlement's transfers) in a store at the current schema. */
    int (*settlements)(store_t *s, uint64_t account, uint64_t before, uint64_t limit, ledger_entry_fn fn, void *ud,
                       acc_err *err);
    int (*seq_at_time)(store_t *s, uint64_t time_ms, uint64_t *seq, acc_err *err);
    /* One snapshot for a whole check: accounts then postings, both in order, then the index of
     * settlements by account (*indexed false in a store without it); then *dup set when some id is stored
     * twice (which the store's own constraint should make impossible). */
    int (*snapshot)(store_t *s, store_account_fn afn, ledger_entry_fn pfn, store_settled_fn sfn, void *ud,
                    bool *indexed, bool *dup, ledger_id_t *dup_id, acc_err *err);
} store_ops_t;

extern const store_ops_t store_sqlite;

#endif
