/*
 * ledger.h: accrue's double-entry ledger: accounts, reservations, transfers, group commit.
 *
 * What it owns. Accounts (one per Ethereum address that earns, one per API-key account that pays,
 * and the system accounts: "external", where top-ups come from, "operator", which earns the
 * operator's fee, and "settlement", where settled amounts go), their balances, reservations
 * (holds), and postings: balanced sets of transfers committed together with the record they
 * belong to (a usage event, a settlement batch). It knows nothing of models, datasets or agents:
 * a usage event is bytes its owner (meters/) encodes and decodes.
 *
 * Money. Amounts are uint64 counts of the base unit, the micro-credit: 1 credit (the display
 * currency) = 1,000,000 base units. An amount is at most LEDGER_AMOUNT_MAX (2^63 - 1, so that it
 * is stored exactly in SQLite's signed 64-bit integers). Never floating point.
 *
 * Transfers and postings. A transfer moves an amount from a debit account to a credit account
 * under a code (model call, data query, agent fee, operator fee, top-up, settlement); each
 * transfer is balanced by itself, so total debits equal total credits at every commit. Transfers
 * are submitted in postings: one caller-supplied, time-ordered 128-bit id (ledger_id_new), the
 * transfers, and the event bytes. A posting is stored as one row, all its transfers or none;
 * submitting an id that is already stored applies nothing and returns the first result
 * (duplicate = true). The id is the transfers' id: a transfer is named by (posting id, index).
 *
 * Reservations. Before a call, ledger_reserve holds the most it can cost on the payer's account
 * (a pending transfer). They live in memory only, under the writer's control: a crash voids
 * every reservation by construction (nothing pending is ever stored, so after a restart nothing
 * is pending), and writing less is what makes metering fast (ARCHITECTURE.md, Money). A posting
 * that settles a reservation posts part of it and voids the rest at once; ledger_void voids all
 * of it. A reservation whose deadline passes is voided by the writer (the reaper), so no pending
 * transfer outlives its call's deadline while the host runs.
 *
 * States. A posting is stored POSTED (its transfers moved money) or VOIDED (a record of a call
 * whose reservation was voided, with no transfers: the client can still reconcile it). PENDING
 * is a reservation's state, never a stored one.
 *
 * Durability with group commit. ledger_submit queues a posting and returns; one writer thread
 * takes everything queued, writes it in one transaction and commits it with one fsync (SQLite WAL,
 * synchronous=FULL), then calls each posting's done callback. Under load it lets a batch gather
 * for a moment first (commit_delay_us), which costs each call that much latency and saves an fsync
 * and a transaction for every posting it adds. A caller releases a call's result
 * only from that callback (or after ledger_submit_wait returns): then its transfers are durable,
 * and kill -9 at any moment loses no posted transfer and never applies one twice.
 *
 * The sequence (for settlement). Every stored posting gets a sequence number, seq, in commit
 * order: 1, 2, 3, ... with no gap, each assigned once, in every process that writes the same
 * database (SQLite's write lock serializes the writers, and rows are never deleted). A reader
 * that sees seq N sees every seq below it, so a batch cut at ledger_last_seq covers a contiguous
 * range that later commits never change, even while calls keep being booked. VOIDED postings take
 * a seq too (and move no money). A batch ranges over postings; a posting's transfers are all in
 * one batch.
 *
 * Balances. Per account: debits and credits posted (durable), pending (held by this process's
 * reservations and by postings queued but not yet committed), earned (credits under the charge
 * codes: model call, data query, agent fee, operator fee) and settled (debits under the settlement
 * code). accrued = earned - settled: what is owed and not yet settled. available = credits +
 * credit limit - debits - pending. No account's debits exceed its credits plus its credit limit
 * (the writer checks the durable figures in every transaction, so several processes on one
 * database cannot overdraw an account between them either); "external" has no limit.
 *
 * Threads. Every function here may be called from any thread; a ledger_t is shared. Done
 * callbacks run on the writer thread, after the commit: they must not block or call back into
 * ledger_submit_wait (hand the result to your own thread: a queue, a ring and a wakeup).
 *
 * Storage sits behind a narrow interface (store.h, private): SQLite now; a PostgreSQL backend can
 * be added there without touching callers.
 */
#ifndef ACCRUE_METERS_LEDGER_H
#define ACCRUE_METERS_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

typedef uint64_t ledger_amount_t;

#define LEDGER_UNIT_NAME "micro-credit"
#define LEDGER_UNITS_PER_CREDIT UINT64_C(1000000)
#define LEDGER_AMOUNT_MAX UINT64_C(0x7fffffffffffffff)

/* --- Ids ---------------------------------------------------------------------------------- */

/* 128 bits, big-endian: the first 48 bits are a Unix time in milliseconds, then a 12-bit counter
 * that keeps ids made in one millisecond by one process increasing, then random bits (the layout
 * of a UUIDv7). Byte order is time order, so the id index grows at its right edge. */
typedef struct ledger_id {
    uint8_t b[16];
} ledger_id_t;

/* A fresh id, greater than every id this process made before. Thread-safe. */
void ledger_id_new(ledger_id_t *out);
/* The same, for a caller that has just read the wall clock (Unix ms): one read instead of two. */
void ledger_id_new_at(ledger_id_t *out, uint64_t unix_ms);
/* 32 lower-case hex digits and a NUL. */
void ledger_id_hex(const ledger_id_t *id, char out[33]);
/* Parses 32 hex digits (an optional 0x and dashes of the UUID form are allowed). */
int ledger_id_parse(const char *s, size_t len, ledger_id_t *out, acc_err *err);
uint64_t ledger_id_time_ms(const ledger_id_t *id);
bool ledger_id_is_zero(const ledger_id_t *id);

/* --- Accounts ----------------------------------------------------------------------------- */

typedef enum ledger_account_kind {
    LEDGER_ACCOUNT_SYSTEM = 1,  /* "external", "operator", "settlement" */
    LEDGER_ACCOUNT_USER = 2,    /* an API-key account that pays, named by its registry name */
    LEDGER_ACCOUNT_ADDRESS = 3, /* an Ethereum address that earns, named by its EIP-55 form */
} ledger_account_kind_t;

#define LEDGER_SYSTEM_EXTERNAL "external"     /* top-ups come from it; no credit limit */
#define LEDGER_SYSTEM_OPERATOR "operator"     /* earns the operator's fee */
#define LEDGER_SYSTEM_SETTLEMENT "settlement" /* receives what settlement batches settle */
#define LEDGER_NAME_MAX 128

/* An account as the ledger holds it. Lives as long as the ledger; never freed by callers. */
typedef struct ledger_account ledger_account_t;

typedef struct ledger_balance {
    ledger_amount_t debits, credits; /* posted, durable */
    ledger_amount_t pending;         /* reserved or queued by this process, not yet committed */
    ledger_amount_t available;       /* credits + credit_limit - debits - pending, or 0 */
    ledger_amount_t earned, settled; /* credits under charge codes; debits under settlement */
    ledger_amount_t accrued;         /* earned - settled */
    ledger_amount_t credit_limit;    /* LEDGER_AMOUNT_MAX for "external" (no limit) */
    uint64_t id;                     /* the account's stored id; 0 until first written */
} ledger_balance_t;

/* --- Codes, states, transfers ------------------------------------------------------------- */

typedef enum ledger_code {
    LEDGER_CODE_MODEL_CALL = 1,   /* a model's price: its owner, its data, its declared shares */
    LEDGER_CODE_DATA_QUERY = 2,   /* a dataset query's price: the returned records' contributors */
    LEDGER_CODE_AGENT_FEE = 3,    /* an agent author's price and markup */
    LEDGER_CODE_OPERATOR_FEE = 4, /* the operator's fee */
    LEDGER_CODE_TOPUP = 5,        /* credit entering from "external" */
    LEDGER_CODE_SETTLEMENT = 6,   /* accrued fees leaving to "settlement" in a batch */
} ledger_code_t;
#define LEDGER_CODE_MAX 6

/* "model_call", "data_query", "agent_fee", "operator_fee", "topup", "settlement". Static. */
const char *ledger_code_name(ledger_code_t code);
/* Charge codes (1-4) are what a usage event pays for: every posted transfer under one belongs to
 * a posting that carries an event. */
static inline bool ledger_code_is_charge(int code) { return code >= 1 && code <= 4; }

typedef enum ledger_state {
    LEDGER_PENDING = 1, /* a reservation: in memory only */
    LEDGER_POSTED = 2,
    LEDGER_VOIDED = 3,
} ledger_state_t;
const char *ledger_state_name(ledger_state_t state); /* "pending", "posted", "voided" */

/* A transfer to submit. */
typedef struct ledger_transfer {
    ledger_account_t *debit, *credit; /* different accounts */
    ledger_amount_t amount;           /* > 0 */
    ledger_code_t code;
} ledger_transfer_t;

/* A stored transfer, as scans return it: accounts by stored id (ledger_account_by_id). */
typedef struct ledger_leg {
    uint64_t debit, credit;
    ledger_amount_t amount;
    ledger_code_t code;
} ledger_leg_t;

/* --- Opening ------------------------------------------------------------------------------ */

typedef struct ledger ledger_t;

typedef struct ledger_opts {
    bool readonly;            /* no writer: scans, balances and checks only */
    bool no_sync;             /* synchronous=NORMAL instead of FULL (tests, benchmarks only) */
    uint32_t max_batch;       /* postings per transaction at most; 0 = 4096 */
    uint32_t busy_timeout_ms; /* wait for another process's write lock; 0 = 5000 */
    /* Under load (postings arrived while the last commit ran, or other callers hold reservations,
     * and a commit ended less than twice this ago), the writer lets a batch gather for up to this
     * long before committing it (a quarter of it when only reservations in flight hold it open),
     * ending early after a quiet slice, or, once a batch ended quiet, as soon as the next is as big
     * (callers who wait for their answers have all posted); a lone caller is committed at once
     * (ledger.c says how load is told). 0 = the default
     * (LEDGER_DEFAULT_COMMIT_DELAY_US), LEDGER_NO_COMMIT_DELAY = never wait. */
    uint32_t commit_delay_us;
    /* Called on the writer thread with true before it runs a committed batch's done callbacks,
     * and with false after: a host whose callbacks hand results to another thread can wake that
     * thread once a batch instead of once a posting. NULL: none. */
    void (*on_done_batch)(void *ud, bool begin);
    void *on_done_batch_ud;
} ledger_opts_t;

#define LEDGER_DEFAULT_COMMIT_DELAY_US 4000
#define LEDGER_NO_COMMIT_DELAY UINT32_MAX

/* Opens (creating, or upgrading in place) the ledger's tables in the SQLite database at path, and
 * starts the writer thread unless readonly. The ledger's tables live beside the registry's in the
 * same file; their schema version is the ledger's own (table ledger_meta), so the two modules
 * migrate independently. A file with a newer ledger schema is ACC_EVERSION. opts may be NULL. */
int ledger_open(const char *path, const ledger_opts_t *opts, ledger_t **out, acc_err *err);
/* Commits everything queued (done callbacks run), stops the writer, voids the reservations still
 * held and closes. A hold still owned by a caller must not be used after this. */
void ledger_close(ledger_t *l);

/* The account of kind and name, created (in memory; stored with its first posting) when it does
 * not exist. Reads the database the first time an account is asked for: do not call it on an event
 * loop that must never wait (accounts are cached; look them up on a worker). name: at most
 * LEDGER_NAME_MAX bytes of printable ASCII. */
int ledger_account(ledger_t *l, ledger_account_kind_t kind, const char *name, ledger_account_t **out, acc_err *err);
/* The system account name ("external", "operator" or "settlement"); never fails for those. */
ledger_account_t *ledger_system(ledger_t *l, const char *name);
ledger_account_kind_t ledger_account_kind(const ledger_account_t *a);
const char *ledger_account_name(const ledger_account_t *a); /* lives as long as the ledger */
/* The account stored under id (from a ledger_leg), loading it if needed; ACC_ENOTFOUND if none. */
int ledger_account_by_id(ledger_t *l, uint64_t id, ledger_account_t **out, acc_err *err);

/* The account's balance as this process sees it: durable figures as of this process's last commit
 * touching the account (or its first read), with this process's pending. refresh re-reads the
 * durable figures (another process may have written since). */
int ledger_balance(ledger_t *l, ledger_account_t *a, bool refresh, ledger_balance_t *out, acc_err *err);

/* Sets an account's credit limit (how far below zero it may go), durably; waits for the commit. */
int ledger_set_credit_limit(ledger_t *l, ledger_account_t *a, ledger_amount_t limit, acc_err *err);

/* --- Reservations ------------------------------------------------------------------------- */

typedef struct ledger_hold ledger_hold_t;

/* Monotonic milliseconds, the clock of reservation deadlines. */
uint64_t ledger_now_ms(void);

/* Holds amount on account until deadline_ms (ledger_now_ms clock; 0 = no deadline). When the
 * available balance is short, ACC_EFUNDS with a message naming both ("account demo has 120
 * micro-credits available, 400 needed"), and *available set (may be NULL). The hold is the caller's: settle it
 * with ledger_submit (hold field) or ledger_void, exactly once. */
int ledger_reserve(ledger_t *l, ledger_account_t *a, ledger_amount_t amount, uint64_t deadline_ms,
                   ledger_hold_t **out, ledger_amount_t *available, acc_err *err);
/* Voids the whole hold and frees it. Nothing is written. */
void ledger_void(ledger_t *l, ledger_hold_t *h);
/* PENDING while held; VOIDED once the reaper voided it at its deadline (a later posting of it is
 * refused with ACC_ETIMEOUT). */
ledger_state_t ledger_hold_state(ledger_t *l, const ledger_hold_t *h);
ledger_amount_t ledger_hold_amount(const ledger_hold_t *h);

/* --- Postings ----------------------------------------------------------------------------- */

typedef struct ledger_posting {
    ledger_id_t id;           /* caller-supplied, time-ordered (ledger_id_new); never zero */
    ledger_state_t state;     /* LEDGER_POSTED, or LEDGER_VOIDED (no transfers: a record only) */
    ledger_code_t code;       /* what the posting is for: its main transfers' code */
    ledger_hold_t *hold;      /* the reservation it settles (consumed, always), or NULL */
    const ledger_transfer_t *transfers; /* debits of hold's account draw on the hold */
    size_t ntransfers;        /* at most LEDGER_MAX_TRANSFERS */
    const void *event;        /* stored with it, opaque (a usage event, a batch); may be NULL */
    size_t event_len;         /* at most LEDGER_MAX_EVENT */
    /* Compare-and-set for settlement: when set, the posting commits only if the last stored
     * settlement posting has seq after_settlement (0: there is none); else ACC_EMISMATCH. */
    bool check_settlement;
    uint64_t after_settlement;
    /* CLOCK_MONOTONIC ns (ledger_now_ms's clock) the caller read just before submitting, or 0:
     * the ledger reads it (the hold's deadline is checked, and the arrival timed, against it). */
    uint64_t now_ns;
} ledger_posting_t;

#define LEDGER_MAX_TRANSFERS (1 << 20) /* a settlement batch is one posting: a transfer per payee */
#define LEDGER_MAX_EVENT (1u << 20)

typedef struct ledger_result {
    int status;          /* ACC_OK, or why nothing was written (err says more) */
    bool duplicate;      /* the id was stored already: seq and state are the first result's */
    uint64_t seq;        /* the posting's place in the sequence (0 when status is not ACC_OK) */
    ledger_state_t state;
    uint64_t time_ms;    /* commit time, Unix milliseconds */
    acc_err err;         /* why, when status is not ACC_OK (else code 0 and msg "") */
} ledger_result_t;

typedef void (*ledger_done_fn)(void *ud, const ledger_result_t *res);

/* Queues a posting; done(ud, res) runs on the writer thread once it is durable (or failed). The
 * posting is copied. Checked at once, and refused without queueing (done not called, the hold
 * voided): bad input (zero id, zero or oversize amount, an account debited and credited at once,
 * a VOIDED posting with transfers), ACC_ETIMEOUT when the hold's deadline passed, and ACC_EFUNDS
 * when the debits exceed the hold (for its account) or the available balance (for any other).
 * Debits within the hold are posted, the rest of the hold is voided at once. The amounts queued
 * count as pending until the commit. Failures after queueing (I/O, a full disk, a lost
 * compare-and-set, an overdraft found at commit because another process spent the same money)
 * arrive in done with nothing written. */
int ledger_submit(ledger_t *l, const ledger_posting_t *p, ledger_done_fn done, void *ud, acc_err *err);
/* ledger_submit, then waits for the result. Not from a done callback. Returns res->status. */
int ledger_submit_wait(ledger_t *l, const ledger_posting_t *p, ledger_result_t *res, acc_err *err);

/* --- Reading ------------------------------------------------------------------------------ */

/* A stored posting, valid during the callback that receives it. */
typedef struct ledger_entry {
    uint64_t seq;
    ledger_id_t id;
    uint64_t time_ms; /* commit time, Unix milliseconds; never decreases along seq */
    ledger_state_t state;
    ledger_code_t code;
    size_t nlegs;
    const ledger_leg_t *legs;
    const void *event;
    size_t event_len;
} ledger_entry_t;

/* Returns ACC_OK to go on, anything else stops the scan and is returned by it. */
typedef int (*ledger_entry_fn)(void *ud, const ledger_entry_t *e);

/* The highest committed seq (0 when empty): a consistent cut point. */
int ledger_last_seq(ledger_t *l, uint64_t *seq, acc_err *err);
/* Calls fn for every stored posting with from <= seq <= to (to = 0: no upper bound), in seq order,
 * or newest first when reverse. One read transaction: a consistent snapshot. */
int ledger_scan(ledger_t *l, uint64_t from, uint64_t to, bool reverse, ledger_entry_fn fn, void *ud, acc_err *err);
/* The posting stored under id: fn called once; ACC_ENOTFOUND if none. */
int ledger_find(ledger_t *l, const ledger_id_t *id, ledger_entry_fn fn, void *ud, acc_err *err);
/* The last settlement posting (code LEDGER_CODE_SETTLEMENT): fn called once; ACC_ENOTFOUND if none. */
int ledger_last_settlement(ledger_t *l, ledger_entry_fn fn, void *ud, acc_err *err);
/* Settlement postings (code LEDGER_CODE_SETTLEMENT), newest first: those with seq < before (0: from
 * the last one), at most limit of them (0: all), one read snapshot. Their transfers are left out
 * (nlegs 0): a batch of 100k payees holds 100k. With debited (kind and name; NULL: every
 * settlement), only the postings that debit that account under the settlement code, each with one
 * leg: {debit: its id, credit: 0 (not kept), amount: what the posting debits it, settlement}. Both
 * are an index's range (the cost grows with limit, not with the number of settlements or their
 * transfers). An account the ledger never stored has none. */
typedef struct ledger_account_ref {
    ledger_account_kind_t kind;
    const char *name;
} ledger_account_ref_t;
int ledger_settlements(ledger_t *l, const ledger_account_ref_t *debited, uint64_t before, size_t limit,
                       ledger_entry_fn fn, void *ud, acc_err *err);
/* The first seq whose commit time is >= time_ms (last seq + 1 when none). */
int ledger_seq_at_time(ledger_t *l, uint64_t time_ms, uint64_t *seq, acc_err *err);

/* Every stored account, in id order; fn gets each with its durable balance. */
typedef int (*ledger_account_fn)(void *ud, ledger_account_t *a, const ledger_balance_t *b);
int ledger_accounts(ledger_t *l, ledger_account_fn fn, void *ud, acc_err *err);

/* --- Invariants --------------------------------------------------------------------------- */

typedef enum ledger_invariant {
    LEDGER_INV_BALANCED = 0, /* every account's stored totals are the sums of its transfers, and
                                total debits equal total credits */
    LEDGER_INV_NO_OVERDRAFT, /* no account's debits exceed its credits plus its credit limit */
    LEDGER_INV_EVENTS,       /* every posted charge belongs to a posting with a usage event (and
                                the event checker, when given, accepts it) */
    LEDGER_INV_POSTED_XOR_VOIDED, /* each id stored once, posted or voided, never both; a voided
                                     posting moves no money */
    LEDGER_INV_NO_STALE_PENDING,  /* no reservation held past its deadline (this process), and
                                     nothing pending stored */
    LEDGER_INV_SEQUENCE,          /* seqs run 1..N with no gap; commit times never decrease */
    LEDGER_INV_SETTLED_INDEX,     /* the index of settlements by account (what batch listings by
                                     address read) holds, per account, what its settlement
                                     transfers debited it */
    LEDGER_INV_COUNT
} ledger_invariant_t;

/* "balanced", "no_overdraft", ... Static. */
const char *ledger_invariant_name(ledger_invariant_t inv);

typedef struct ledger_check_report {
    bool ok[LEDGER_INV_COUNT];
    char detail[LEDGER_INV_COUNT][200]; /* what failed first for that invariant, or "" */
    uint64_t postings, transfers, accounts;
    ledger_amount_t total_debits_hi, total_debits_lo; /* 128-bit sum of all posted amounts */
} ledger_check_report_t;

/* Checks the event of a posted posting (meters/ decodes it and compares it with the legs). */
typedef int (*ledger_event_check_fn)(void *ud, const ledger_entry_t *e, acc_err *err);

/* Reads the whole ledger in one snapshot and checks every invariant. ACC_OK when all hold;
 * ACC_ECORRUPT naming the first that fails ("no_overdraft: account user:alice: debits 5 exceed
 * credits 3 + limit 0"); report (may be NULL) gets every invariant's outcome. */
int ledger_check(ledger_t *l, ledger_event_check_fn check_event, void *ud, ledger_check_report_t *report,
                 acc_err *err);

/* --- Counters (for /metrics and benchmarks) ------------------------------------------------ */

typedef struct ledger_stats {
    uint64_t commits;      /* transactions committed */
    uint64_t postings;     /* postings committed */
    uint64_t duplicates;   /* postings refused as already stored */
    uint64_t failed;       /* postings that failed after queueing */
    uint64_t holds;        /* reservations held now */
    uint64_t reaped;       /* reservations voided at their deadline */
    uint64_t commit_ns;    /* total time in commits (write + fsync) */
    uint64_t gather_ns;    /* total time the writer let batches gather before committing them */
    uint64_t durable_ns;   /* summed over committed postings: from queued to durable (done called) */
    uint64_t max_batch;    /* largest transaction so far, in postings */
    uint64_t account_rows; /* account rows written (each touched account's totals, once a commit) */
} ledger_stats_t;
void ledger_stats(ledger_t *l, ledger_stats_t *out);

#endif
