/*
 * internal.h: the ledger's in-memory structures, shared by ledger.c and check.c (private).
 */
#ifndef ACCRUE_METERS_LEDGER_INTERNAL_H
#define ACCRUE_METERS_LEDGER_INTERNAL_H

#include <pthread.h>

#include "meters/ledger/ledger.h"
#include "meters/ledger/store.h"

struct ledger_account {
    ledger_account_kind_t kind;
    char name[LEDGER_NAME_MAX + 1];
    uint32_t hash;
    struct ledger_account *next_name, *next_id, *next_all;
    /* Under mu. */
    uint64_t id;     /* stored id; 0 until stored */
    bool loaded;     /* durable figures read (or known to be zero: not stored yet) */
    uint64_t version; /* bumped by every commit that touches it */
    uint64_t epoch;   /* the ledger's cache epoch when its durable figures were read (see ledger.c) */
    ledger_amount_t limit, debits, credits, earned, settled; /* durable, as of the last look */
    ledger_amount_t pending;
    ledger_amount_t submit_sum, credit_sum; /* scratch of ledger_submit */
    /* Writer only. */
    uint64_t w_id;
    bool w_tentative, w_touched, w_bad, w_reread;
    struct ledger_account *w_next, *w_next_tentative;
    ledger_amount_t w_debits, w_credits, w_earned, w_settled;
    store_account_t w_after;
};

struct ledger_hold {
    ledger_account_t *account;
    ledger_amount_t amount;
    uint64_t deadline_ms;
    ledger_state_t state; /* under mu */
    struct ledger_hold *prev, *next; /* the live list, under mu */
};

enum op_kind { OP_POSTING, OP_SET_LIMIT };

typedef struct op {
    struct op *next;
    enum op_kind kind;
    ledger_id_t id;
    ledger_state_t state;
    ledger_code_t code;
    ledger_transfer_t *tx;
    size_t ntx;
    uint8_t *event;
    size_t event_len;
    bool check_settlement;
    uint64_t after_settlement;
    ledger_account_t *limit_account;
    ledger_amount_t limit;
    ledger_done_fn done;
    void *ud;
    bool failed;
    bool pooled;        /* OP_POOLED_SIZE bytes, from and back to the ledger's pool (ledger.c) */
    uint64_t queued_ns; /* when it was queued (mono_ns) */
    /* Last: its error's text (most of an op's bytes) is written only when the op fails, so an op
     * in flight keeps that memory untouched (new_op). */
    ledger_result_t res;
} op_t;

struct ledger {
    const store_ops_t *ops;
    store_t *store;
    bool readonly;
    uint32_t max_batch;
    void (*on_done_batch)(void *ud, bool begin); /* ledger_opts_t's */
    void *on_done_batch_ud;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    /* Under mu. */
    ledger_account_t **by_name, **by_id, *all;
    size_t nbuckets, naccounts;
    ledger_account_t *system[3]; /* external, operator, settlement */
    ledger_hold_t *holds;
    size_t nholds;
    op_t *q_head, *q_tail;
    size_t q_len;
    bool stopping;
    bool w_idle, w_gathering; /* the writer waits for work / gathers a batch */
    bool w_gather_on_holds;   /* ...for the reservations in flight (unlink_hold ends it) */
    uint64_t arrivals;        /* postings queued so far */
    uint64_t last_arrival_ns, gap_ns; /* the last one's time; the mean gap between them */
    uint64_t commit_delay_ns;
    size_t w_echo; /* the size of the last batch that ended quiet (0: none, or forgotten; ledger.c) */
    uint64_t epoch; /* bumped whenever another connection may have written (ledger.c) */
    ledger_stats_t stats;
    /* Writer only. */
    pthread_t writer;
    bool writer_started;
    ledger_account_t *w_touched, *w_tentative;
    ledger_leg_t *w_legs;
    size_t w_legs_cap;
    uint64_t w_commit_ns, w_account_rows;
    bool w_tail_known; /* w_last_time is the stored tail's (nobody else wrote since) */
    uint64_t w_last_time;
    /* Postings' memory, freed by the writer after their commit and reused by the next submitters,
     * the last freed first (ledger.c) */
    pthread_mutex_t pool_mu;
    op_t *pool;
    size_t npool;
};

/* credits + limit - debits - pending, or 0; under mu. */
ledger_amount_t ledger__available(const ledger_account_t *a);

#endif
