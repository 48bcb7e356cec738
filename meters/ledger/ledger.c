/*
 * ledger.c: accounts in memory, reservations, the queue and the group-commit writer (ledger.h).
 *
 * The problem: every metered call must be durable before its result is released, and an fsync
 * costs milliseconds, so a ledger that commits each call by itself tops out at a few hundred calls a
 * second. The answer is the one databases use for their logs: callers queue their postings and one
 * writer commits everything that queued up while it was busy with the previous commit, in one
 * transaction and one fsync. The busier the host, the bigger the batch.
 *
 * Locking. One mutex (mu) guards the account cache (the durable totals each account had at its last
 * commit, and its pending amount), the live reservations, the queue and the counters. Callers hold it
 * only for arithmetic. The writer holds it to take the queue and to apply a committed batch, never
 * while it talks to the store. Writer-only fields (w_*) belong to the writer thread.
 *
 * The account cache and other writers. The writer adds each touched account's totals to its row
 * once per transaction (a plain UPDATE) and needs the row after, to check that no debited account
 * went below its limit and to refresh the cache. When nobody else wrote since the writer's last
 * transaction (store: changed_by_others; for SQLite, PRAGMA data_version), the cached figures are
 * the stored ones and the row after is cache + this batch, computed here; otherwise it is read
 * back. "The cached figures are the stored ones" needs care, since accounts are read by other
 * threads: every read of a row is tagged with the cache epoch taken *before* the read, the writer
 * bumps the epoch whenever it finds that someone else wrote, and only an account tagged with the
 * current epoch is trusted (a row read before a foreign commit is tagged with an older epoch, since
 * the writer bumps it at its first transaction after that commit). Reading a row back is cheap
 * (a SELECT by id); reading it with UPDATE ... RETURNING was not (BENCHMARKS.md, Metering).
 *
 * Pending. An account's pending amount is the sum of its live holds plus the debits of its postings
 * queued and not yet committed. Every amount added to it is taken off exactly once: when a hold is
 * voided (by its owner or the reaper), when a posting settles a hold (the unused part at once), and
 * when the writer finishes a posting (the posted part, committed or failed).
 */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meters/ledger/internal.h"
#include "runtime/base/invariant.h"

/* --- small helpers --- */

uint64_t ledger_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* a + b, or LEDGER_AMOUNT_MAX when that is more: limits and balances never wrap. */
static ledger_amount_t sat_add(ledger_amount_t a, ledger_amount_t b) {
    ledger_amount_t r;
    if (__builtin_add_overflow(a, b, &r) || r > LEDGER_AMOUNT_MAX) return LEDGER_AMOUNT_MAX;
    return r;
}

ledger_amount_t ledger__available(const ledger_account_t *a) {
    ledger_amount_t have = sat_add(a->credits, a->limit), used = sat_add(a->debits, a->pending);
    return have > used ? have - used : 0;
}

const char *ledger_code_name(ledger_code_t code) {
    switch (code) {
    case LEDGER_CODE_MODEL_CALL: return "model_call";
    case LEDGER_CODE_DATA_QUERY: return "data_query";
    case LEDGER_CODE_AGENT_FEE: return "agent_fee";
    case LEDGER_CODE_OPERATOR_FEE: return "operator_fee";
    case LEDGER_CODE_TOPUP: return "topup";
    case LEDGER_CODE_SETTLEMENT: return "settlement";
    }
    return "unknown";
}

const char *ledger_state_name(ledger_state_t state) {
    switch (state) {
    case LEDGER_PENDING: return "pending";
    case LEDGER_POSTED: return "posted";
    case LEDGER_VOIDED: return "voided";
    }
    return "unknown";
}

/* --- the account cache: two hash tables of chained accounts, by (kind, name) and by stored id --- */

/* Eight bytes at a time: a metered call looks up each payee (a 42-character address) by name,
 * and a byte-at-a-time hash of them was 0.2 us of a call (bench_meters' profile). */
static uint32_t name_hash(int kind, const char *name) {
    const uint64_t mul = UINT64_C(0x9e3779b97f4a7c15);
    size_t n = strlen(name);
    uint64_t h = (uint64_t)(uint32_t)kind * mul ^ n;
    for (; n >= 8; n -= 8, name += 8) {
        uint64_t w;
        memcpy(&w, name, 8);
        h = ((h << 5 | h >> 59) ^ w) * mul;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, name, n);
        h = ((h << 5 | h >> 59) ^ w) * mul;
    }
    return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

static int grow_tables(ledger_t *l) {
    size_t n = l->nbuckets ? l->nbuckets * 2 : 64;
    ledger_account_t **by_name = calloc(n, sizeof *by_name), **by_id = calloc(n, sizeof *by_id);
    if (!by_name || !by_id) {
        free(by_name);
        free(by_id);
        return ACC_ENOMEM;
    }
    for (ledger_account_t *a = l->all; a; a = a->next_all) {
        size_t i = a->hash & (n - 1);
        a->next_name = by_name[i];
        by_name[i] = a;
        if (a->id) {
            size_t j = a->id & (n - 1);
            a->next_id = by_id[j];
            by_id[j] = a;
        }
    }
    free(l->by_name);
    free(l->by_id);
    l->by_name = by_name;
    l->by_id = by_id;
    l->nbuckets = n;
    return ACC_OK;
}

/* Under mu. */
static ledger_account_t *find_name(ledger_t *l, int kind, const char *name, uint32_t h) {
    for (ledger_account_t *a = l->by_name[h & (l->nbuckets - 1)]; a; a = a->next_name)
        if (a->hash == h && (int)a->kind == kind && strcmp(a->name, name) == 0) return a;
    return NULL;
}

static ledger_account_t *find_id(ledger_t *l, uint64_t id) {
    for (ledger_account_t *a = l->by_id[id & (l->nbuckets - 1)]; a; a = a->next_id)
        if (a->id == id) return a;
    return NULL;
}

/* Under mu: records a's stored id (set once). */
static void set_id(ledger_t *l, ledger_account_t *a, uint64_t id) {
    if (a->id) return;
    a->id = id;
    size_t j = id & (l->nbuckets - 1);
    a->next_id = l->by_id[j];
    l->by_id[j] = a;
}

static void take_row(ledger_account_t *a, const store_account_t *r) {
    a->limit = r->credit_limit;
    a->debits = r->debits;
    a->credits = r->credits;
    a->earned = r->earned;
    a->settled = r->settled;
}

/* Under mu: a new account in the cache (not loaded). NULL when out of memory. */
static ledger_account_t *add_account(ledger_t *l, int kind, const char *name, uint32_t h) {
    if (l->naccounts >= l->nbuckets && grow_tables(l)) return NULL;
    ledger_account_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->kind = (ledger_account_kind_t)kind;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->hash = h;
    a->next_all = l->all;
    l->all = a;
    size_t i = h & (l->nbuckets - 1);
    a->next_name = l->by_name[i];
    l->by_name[i] = a;
    l->naccounts++;
    return a;
}

static int check_name(int kind, const char *name, acc_err *err) {
    if (kind < LEDGER_ACCOUNT_SYSTEM || kind > LEDGER_ACCOUNT_ADDRESS)
        return acc_fail(err, ACC_EINVAL, "account: unknown kind %d", kind);
    size_t n = strlen(name);
    if (n == 0 || n > LEDGER_NAME_MAX)
        return acc_fail(err, ACC_EINVAL, "account name: 1 to %d characters", LEDGER_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x21 || name[i] > 0x7e)
            return acc_fail(err, ACC_EINVAL, "account name: printable ASCII without spaces only");
    return ACC_OK;
}

int ledger_account(ledger_t *l, ledger_account_kind_t kind, const char *name, ledger_account_t **out, acc_err *err) {
    if (kind < LEDGER_ACCOUNT_SYSTEM || kind > LEDGER_ACCOUNT_ADDRESS) return check_name((int)kind, name, err);
    uint32_t h = name_hash((int)kind, name);
    pthread_mutex_lock(&l->mu);
    ledger_account_t *a = find_name(l, (int)kind, name, h);
    uint64_t epoch = l->epoch; /* before the read (see the top of this file) */
    pthread_mutex_unlock(&l->mu);
    if (a && a->loaded) { /* a name in the cache was checked when it came in */
        *out = a;
        return ACC_OK;
    }
    int rc = check_name((int)kind, name, err);
    if (rc) return rc;
    store_account_t row;
    bool found = false;
    if ((rc = l->ops->account_get(l->store, (int)kind, name, &row, &found, err))) return rc;
    pthread_mutex_lock(&l->mu);
    a = find_name(l, (int)kind, name, h);
    if (!a && !(a = add_account(l, (int)kind, name, h))) {
        pthread_mutex_unlock(&l->mu);
        return acc_fail(err, ACC_ENOMEM, "ledger: out of memory");
    }
    if (!a->loaded) {
        if (found) {
            take_row(a, &row);
            set_id(l, a, row.id);
        }
        a->epoch = epoch;
        a->loaded = true;
    }
    pthread_mutex_unlock(&l->mu);
    *out = a;
    return ACC_OK;
}

ledger_account_t *ledger_system(ledger_t *l, const char *name) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, l->system[i]->name) == 0) return l->system[i];
    return NULL;
}

ledger_account_kind_t ledger_account_kind(const ledger_account_t *a) { return a->kind; }
const char *ledger_account_name(const ledger_account_t *a) { return a->name; }

int ledger_account_by_id(ledger_t *l, uint64_t id, ledger_account_t **out, acc_err *err) {
    pthread_mutex_lock(&l->mu);
    ledger_account_t *a = find_id(l, id);
    pthread_mutex_unlock(&l->mu);
    if (a) {
        *out = a;
        return ACC_OK;
    }
    store_account_t row;
    int rc = l->ops->account_by_id(l->store, id, &row, err);
    if (rc) return rc;
    if ((rc = ledger_account(l, (ledger_account_kind_t)row.kind, row.name, &a, err))) return rc;
    pthread_mutex_lock(&l->mu);
    set_id(l, a, row.id);
    pthread_mutex_unlock(&l->mu);
    *out = a;
    return ACC_OK;
}

/* Re-reads a's durable totals, unless a commit touched it meanwhile (then the cache is newer). */
static int refresh(ledger_t *l, ledger_account_t *a, acc_err *err) {
    pthread_mutex_lock(&l->mu);
    uint64_t version = a->version, epoch = l->epoch;
    pthread_mutex_unlock(&l->mu);
    store_account_t row;
    bool found;
    int rc = l->ops->account_get(l->store, (int)a->kind, a->name, &row, &found, err);
    if (rc || !found) return rc;
    pthread_mutex_lock(&l->mu);
    if (a->version == version) {
        take_row(a, &row);
        set_id(l, a, row.id);
        a->epoch = epoch;
    }
    pthread_mutex_unlock(&l->mu);
    return ACC_OK;
}

static void fill_balance(const ledger_account_t *a, ledger_balance_t *b) {
    b->debits = a->debits;
    b->credits = a->credits;
    b->pending = a->pending;
    b->available = ledger__available(a);
    b->earned = a->earned;
    b->settled = a->settled;
    b->accrued = a->earned > a->settled ? a->earned - a->settled : 0;
    b->credit_limit = a->limit;
    b->id = a->id;
}

int ledger_balance(ledger_t *l, ledger_account_t *a, bool refresh_first, ledger_balance_t *out, acc_err *err) {
    if (refresh_first) {
        int rc = refresh(l, a, err);
        if (rc) return rc;
    }
    pthread_mutex_lock(&l->mu);
    fill_balance(a, out);
    pthread_mutex_unlock(&l->mu);
    return ACC_OK;
}

/* --- reservations --- */

static void unlink_hold(ledger_t *l, ledger_hold_t *h) {
    if (h->prev) h->prev->next = h->next;
    else l->holds = h->next;
    if (h->next) h->next->prev = h->prev;
    h->prev = h->next = NULL;
    l->nholds--;
    /* The last reservation in flight is posted or voided: the writer gathering a batch for it
     * waits for nobody now. */
    if (l->w_gathering && l->w_gather_on_holds && l->nholds == 0) pthread_cond_signal(&l->wake);
}

/* Under mu: voids a pending hold, returning its amount to the account. */
static void void_hold_locked(ledger_t *l, ledger_hold_t *h) {
    if (h->state != LEDGER_PENDING) return;
    ACC_INVARIANT(h->account->pending >= h->amount, "account %s: pending %" PRIu64 " below a hold of %" PRIu64,
                  h->account->name, h->account->pending, h->amount);
    h->account->pending -= h->amount;
    h->state = LEDGER_VOIDED;
    unlink_hold(l, h);
}

/* Under mu: voids every hold past its deadline. */
static void reap(ledger_t *l, uint64_t now) {
    for (ledger_hold_t *h = l->holds, *next; h; h = next) {
        next = h->next;
        if (h->deadline_ms && now >= h->deadline_ms) {
            void_hold_locked(l, h);
            l->stats.reaped++;
        }
    }
}

static int funds_error(acc_err *err, const ledger_account_t *a, ledger_amount_t have, ledger_amount_t need) {
    return acc_fail(err, ACC_EFUNDS, "account %s has %" PRIu64 " %ss available, %" PRIu64 " needed", a->name, have,
                    LEDGER_UNIT_NAME, need);
}

int ledger_reserve(ledger_t *l, ledger_account_t *a, ledger_amount_t amount, uint64_t deadline_ms,
                   ledger_hold_t **out, ledger_amount_t *available, acc_err *err) {
    if (amount > LEDGER_AMOUNT_MAX) return acc_fail(err, ACC_EINVAL, "amount: at most %" PRIu64, LEDGER_AMOUNT_MAX);
    if (l->readonly) return acc_fail(err, ACC_EMISUSE, "ledger: opened read-only");
    ledger_hold_t *h = calloc(1, sizeof *h);
    if (!h) return acc_fail(err, ACC_ENOMEM, "ledger: out of memory");
    for (int attempt = 0;; attempt++) {
        pthread_mutex_lock(&l->mu);
        ledger_amount_t have = ledger__available(a);
        if (available) *available = have;
        if (have >= amount) {
            a->pending += amount;
            h->account = a;
            h->amount = amount;
            h->deadline_ms = deadline_ms;
            h->state = LEDGER_PENDING;
            h->next = l->holds;
            if (l->holds) l->holds->prev = h;
            l->holds = h;
            l->nholds++;
            pthread_mutex_unlock(&l->mu);
            *out = h;
            return ACC_OK;
        }
        pthread_mutex_unlock(&l->mu);
        /* Short: another process may have credited the account since we last read it. */
        int rc = attempt == 0 ? refresh(l, a, err) : funds_error(err, a, have, amount);
        if (rc) {
            free(h);
            return rc;
        }
    }
}

void ledger_void(ledger_t *l, ledger_hold_t *h) {
    if (!h) return;
    pthread_mutex_lock(&l->mu);
    void_hold_locked(l, h);
    pthread_mutex_unlock(&l->mu);
    free(h);
}

ledger_state_t ledger_hold_state(ledger_t *l, const ledger_hold_t *h) {
    pthread_mutex_lock(&l->mu);
    ledger_state_t s = h->state;
    pthread_mutex_unlock(&l->mu);
    return s;
}

ledger_amount_t ledger_hold_amount(const ledger_hold_t *h) { return h->amount; }

/* --- submitting --- */

static int validate(const ledger_posting_t *p, acc_err *err) {
    if (ledger_id_is_zero(&p->id)) return acc_fail(err, ACC_EINVAL, "posting: the id is zero");
    if (p->state != LEDGER_POSTED && p->state != LEDGER_VOIDED)
        return acc_fail(err, ACC_EINVAL, "posting: state must be posted or voided");
    if (p->code < 1 || p->code > LEDGER_CODE_MAX) return acc_fail(err, ACC_EINVAL, "posting: unknown code %d", p->code);
    if (p->ntransfers > LEDGER_MAX_TRANSFERS)
        return acc_fail(err, ACC_ELIMIT, "posting: %zu transfers, at most %d", p->ntransfers, LEDGER_MAX_TRANSFERS);
    if (p->ntransfers && !p->transfers) return acc_fail(err, ACC_EINVAL, "posting: transfers missing");
    if (p->state == LEDGER_VOIDED && p->ntransfers)
        return acc_fail(err, ACC_EINVAL, "posting: a voided posting moves no money (it has %zu transfers)",
                        p->ntransfers);
    if (p->event_len > LEDGER_MAX_EVENT)
        return acc_fail(err, ACC_ELIMIT, "posting: event of %zu bytes, at most %u", p->event_len, LEDGER_MAX_EVENT);
    if (p->event_len && !p->event) return acc_fail(err, ACC_EINVAL, "posting: event missing");
    for (size_t i = 0; i < p->ntransfers; i++) {
        const ledger_transfer_t *t = &p->transfers[i];
        if (!t->debit || !t->credit) return acc_fail(err, ACC_EINVAL, "transfer %zu: account missing", i);
        if (t->debit == t->credit)
            return acc_fail(err, ACC_EINVAL, "transfer %zu: account %s is both debited and credited", i, t->debit->name);
        if (t->amount == 0 || t->amount > LEDGER_AMOUNT_MAX)
            return acc_fail(err, ACC_EINVAL, "transfer %zu: amount must be 1 to %" PRIu64, i, LEDGER_AMOUNT_MAX);
        if (t->code < 1 || t->code > LEDGER_CODE_MAX)
            return acc_fail(err, ACC_EINVAL, "transfer %zu: unknown code %d", i, t->code);
    }
    return ACC_OK;
}

/* Under mu: adds each transfer's amount to its debit account's submit_sum (and its credit account's
 * credit_sum); -1 when a sum overflows. */
static int sum_transfers(op_t *op) {
    int over = 0;
    for (size_t i = 0; i < op->ntx; i++) {
        if (__builtin_add_overflow(op->tx[i].debit->submit_sum, op->tx[i].amount, &op->tx[i].debit->submit_sum))
            over = -1;
        if (__builtin_add_overflow(op->tx[i].credit->credit_sum, op->tx[i].amount, &op->tx[i].credit->credit_sum))
            over = -1;
    }
    return over;
}

static void clear_sums(op_t *op) {
    for (size_t i = 0; i < op->ntx; i++) op->tx[i].debit->submit_sum = op->tx[i].credit->credit_sum = 0;
}

/* Under mu: checks that every debit account can pay its part (hold's account from the hold), and
 * that no credit would pass LEDGER_AMOUNT_MAX. *short_of is the account found short. */
static int check_funds(const op_t *op, const ledger_hold_t *hold, ledger_account_t **short_of, acc_err *err) {
    for (size_t i = 0; i < op->ntx; i++) {
        ledger_account_t *d = op->tx[i].debit, *c = op->tx[i].credit;
        if (d->submit_sum > LEDGER_AMOUNT_MAX || c->credit_sum > LEDGER_AMOUNT_MAX ||
            sat_add(c->credits, c->credit_sum) >= LEDGER_AMOUNT_MAX)
            return acc_fail(err, ACC_ELIMIT, "posting: an account's totals would pass %" PRIu64, LEDGER_AMOUNT_MAX);
        if (hold && d == hold->account) {
            if (d->submit_sum > hold->amount)
                return acc_fail(err, ACC_EFUNDS, "posting %" PRIu64 " from %s exceeds its hold of %" PRIu64,
                                d->submit_sum, d->name, hold->amount);
        } else if (d->submit_sum > ledger__available(d)) {
            *short_of = d;
            return funds_error(err, d, ledger__available(d), d->submit_sum);
        }
    }
    return ACC_OK;
}

/* Postings up to this size (a metered call's: the op, a few transfers, its event of a few hundred
 * bytes) are made in the ledger's pool: the writer gives each back after its commit and the next
 * submitter takes the last one given back, whose lines the writer has just used, instead of a block
 * malloc took from wherever (a posting waits for its commit with hundreds of others, so fresh
 * memory is cold memory: copying a call's event into it was 0.2-0.45 us of the call). At most
 * OP_POOL_MAX are kept (4 MiB). */
#define OP_POOLED_SIZE 1024
#define OP_POOL_MAX 4096

static op_t *op_alloc(ledger_t *l, size_t size) {
    if (size > OP_POOLED_SIZE) return malloc(size);
    pthread_mutex_lock(&l->pool_mu);
    op_t *op = l->pool;
    if (op) l->pool = op->next, l->npool--;
    pthread_mutex_unlock(&l->pool_mu);
    return op ? op : malloc(OP_POOLED_SIZE);
}

/* Writer: frees a committed batch's ops (a list), keeping the pool's for the next submitters: the
 * last done first (the warmest), as many as the pool has room for. */
static void ops_release(ledger_t *l, op_t *ops) {
    op_t *keep = NULL;
    for (op_t *op = ops, *next; op; op = next) {
        next = op->next;
        if (op->pooled) op->next = keep, keep = op;
        else free(op);
    }
    if (!keep) return;
    pthread_mutex_lock(&l->pool_mu);
    size_t room = l->npool < OP_POOL_MAX ? OP_POOL_MAX - l->npool : 0, n = 0;
    op_t *last = NULL, *rest = keep;
    while (rest && n < room) last = rest, rest = rest->next, n++;
    if (last) {
        last->next = l->pool;
        l->pool = keep;
        l->npool += n;
    }
    pthread_mutex_unlock(&l->pool_mu);
    for (op_t *next; rest; rest = next) next = rest->next, free(rest);
}

static op_t *new_op(ledger_t *l, const ledger_posting_t *p, acc_err *err) {
    size_t size = sizeof(op_t) + p->ntransfers * sizeof(ledger_transfer_t) + p->event_len;
    op_t *op = op_alloc(l, size);
    if (!op) {
        acc_fail(err, ACC_ENOMEM, "ledger: out of memory");
        return NULL;
    }
    /* Zeroed but for its result's error text, written only if the op fails: a posting waits for
     * its commit with hundreds of others, and the text's lines would be written for nothing. */
    memset(op, 0, offsetof(op_t, res) + offsetof(ledger_result_t, err) + sizeof op->res.err.code);
    op->res.err.msg[0] = '\0';
    op->kind = OP_POSTING;
    op->id = p->id;
    op->state = p->state;
    op->code = p->code;
    op->tx = (ledger_transfer_t *)(op + 1);
    op->ntx = p->ntransfers;
    if (p->ntransfers) memcpy(op->tx, p->transfers, p->ntransfers * sizeof *op->tx);
    op->event = (uint8_t *)(op->tx + p->ntransfers);
    op->event_len = p->event_len;
    if (p->event_len) memcpy(op->event, p->event, p->event_len);
    op->check_settlement = p->check_settlement;
    op->after_settlement = p->after_settlement;
    op->pooled = size <= OP_POOLED_SIZE;
    return op;
}

/* Under mu: appends op to the queue. Returns whether the writer must be woken: the caller signals
 * it after unlocking mu, since a writer woken while mu is held, on a core it shares with the
 * caller, preempts it and at once blocks on mu (two more context switches a posting). */
static bool enqueue(ledger_t *l, op_t *op, uint64_t now) {
    op->next = NULL;
    if (l->q_tail) l->q_tail->next = op;
    else l->q_head = op;
    l->q_tail = op;
    l->q_len++;
    l->arrivals++;
    /* the mean gap between postings (an exponential average over about 8), for the writer's
     * gathering: under a busy CPU, postings keep coming but further apart */
    if (now < l->last_arrival_ns) now = l->last_arrival_ns; /* read by its caller, before another's */
    uint64_t gap = now - l->last_arrival_ns;
    l->last_arrival_ns = now;
    op->queued_ns = now;
    if (gap < 1000000000u) l->gap_ns = l->gap_ns - l->gap_ns / 8 + gap / 8; /* not across an idle second */
    /* Wake the writer when it waits for work, and when it gathers a batch only once the batch is
     * full or as big as the echo (or, from unlink_hold, no reservation is left in flight): a
     * signal per posting would cost a futex wake per call. */
    return l->w_idle || (l->w_gathering && (l->q_len >= l->max_batch || l->q_len == l->w_echo));
}

int ledger_submit(ledger_t *l, const ledger_posting_t *p, ledger_done_fn done, void *ud, acc_err *err) {
    ledger_hold_t *hold = p->hold;
    int rc = l->readonly ? acc_fail(err, ACC_EMISUSE, "ledger: opened read-only") : validate(p, err);
    op_t *op = rc ? NULL : new_op(l, p, err);
    if (!op) {
        if (!rc) rc = err ? err->code : ACC_ENOMEM;
        ledger_void(l, hold);
        return rc;
    }
    op->done = done;
    op->ud = ud;
    bool wake = false;
    for (int attempt = 0;; attempt++) {
        ledger_account_t *short_of = NULL;
        pthread_mutex_lock(&l->mu);
        uint64_t now = p->now_ns ? p->now_ns : mono_ns(); /* one read: the hold's deadline, the arrival's time */
        if (l->stopping) rc = acc_fail(err, ACC_EMISUSE, "ledger: closing");
        else if (hold && hold->deadline_ms && now / 1000000 >= hold->deadline_ms) void_hold_locked(l, hold);
        if (!rc && hold && hold->state != LEDGER_PENDING)
            rc = acc_fail(err, ACC_ETIMEOUT, "reservation voided: its deadline passed before the posting");
        if (!rc) {
            rc = sum_transfers(op) ? acc_fail(err, ACC_ELIMIT, "posting: amounts overflow") : ACC_OK;
            if (!rc) rc = check_funds(op, hold, &short_of, err);
            if (!rc) {
                /* Debits become pending (until the writer finishes the posting); the hold's account
                 * already holds them, and gets back the unused part now. */
                for (size_t i = 0; i < op->ntx; i++) {
                    ledger_account_t *d = op->tx[i].debit;
                    if (!d->submit_sum) continue;
                    if (hold && d == hold->account) {
                        ACC_INVARIANT(d->pending >= hold->amount, "pending below a hold");
                        d->pending -= hold->amount - d->submit_sum;
                        hold->amount = d->submit_sum; /* what stays held, now by the posting */
                    } else {
                        d->pending += d->submit_sum;
                    }
                    d->submit_sum = 0;
                }
                if (hold) {
                    bool posted_any = false;
                    for (size_t i = 0; i < op->ntx; i++) posted_any |= op->tx[i].debit == hold->account;
                    if (!posted_any) hold->account->pending -= hold->amount; /* nothing drawn: all voided */
                    hold->state = LEDGER_POSTED;
                    unlink_hold(l, hold);
                }
                clear_sums(op);
                wake = enqueue(l, op, now);
            }
        }
        if (rc) clear_sums(op);
        pthread_mutex_unlock(&l->mu);
        if (wake) pthread_cond_signal(&l->wake);
        if (!rc) break;
        if (rc == ACC_EFUNDS && short_of && attempt == 0 && refresh(l, short_of, NULL) == ACC_OK) {
            rc = ACC_OK;
            continue;
        }
        free(op);
        ledger_void(l, hold);
        return rc;
    }
    free(hold);
    return ACC_OK;
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    ledger_result_t *res;
} waiter_t;

static void wake_waiter(void *ud, const ledger_result_t *res) {
    waiter_t *w = ud;
    pthread_mutex_lock(&w->mu);
    *w->res = *res;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static int wait_for(ledger_t *l, op_t *op, ledger_result_t *res, bool submit, const ledger_posting_t *p, acc_err *err) {
    waiter_t w = {.done = false, .res = res};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    int rc;
    if (submit) {
        rc = ledger_submit(l, p, wake_waiter, &w, err);
    } else {
        op->done = wake_waiter;
        op->ud = &w;
        bool wake = false;
        pthread_mutex_lock(&l->mu);
        if (l->stopping) rc = acc_fail(err, ACC_EMISUSE, "ledger: closing");
        else wake = enqueue(l, op, mono_ns()), rc = ACC_OK;
        pthread_mutex_unlock(&l->mu);
        if (wake) pthread_cond_signal(&l->wake);
        if (rc) free(op);
    }
    if (rc == ACC_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = res->status;
        if (rc && err) *err = res->err;
    } else {
        memset(res, 0, sizeof *res);
        res->status = rc;
        if (err) res->err = *err;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

int ledger_submit_wait(ledger_t *l, const ledger_posting_t *p, ledger_result_t *res, acc_err *err) {
    return wait_for(l, NULL, res, true, p, err);
}

int ledger_set_credit_limit(ledger_t *l, ledger_account_t *a, ledger_amount_t limit, acc_err *err) {
    if (l->readonly) return acc_fail(err, ACC_EMISUSE, "ledger: opened read-only");
    if (limit > LEDGER_AMOUNT_MAX) return acc_fail(err, ACC_EINVAL, "credit limit: at most %" PRIu64, LEDGER_AMOUNT_MAX);
    op_t *op = calloc(1, sizeof *op);
    if (!op) return acc_fail(err, ACC_ENOMEM, "ledger: out of memory");
    op->kind = OP_SET_LIMIT;
    op->limit_account = a;
    op->limit = limit;
    ledger_result_t res;
    return wait_for(l, op, &res, false, NULL, err);
}

/* --- the writer --- */

/* Writer: the stored id of a, creating the account inside the transaction if it has none yet
 * (tentatively: it is published only if the transaction commits). */
static int resolve(ledger_t *l, ledger_account_t *a, uint64_t *id, acc_err *err) {
    if (!a->w_id) {
        pthread_mutex_lock(&l->mu);
        a->w_id = a->id;
        pthread_mutex_unlock(&l->mu);
    }
    if (!a->w_id) {
        store_account_t row;
        int rc = l->ops->account_upsert(l->store, (int)a->kind, a->name, &row, err);
        if (rc) return rc;
        a->w_id = row.id;
        a->w_tentative = true;
        a->w_next_tentative = l->w_tentative;
        l->w_tentative = a;
    }
    *id = a->w_id;
    return ACC_OK;
}

static void touch(ledger_t *l, ledger_account_t *a) {
    if (a->w_touched) return;
    a->w_touched = true;
    a->w_next = l->w_touched;
    l->w_touched = a;
}

/* Writer: forgets what a rolled-back transaction did to the writer's scratch. */
static void reset_scratch(ledger_t *l) {
    for (ledger_account_t *a = l->w_touched, *n; a; a = n) {
        n = a->w_next;
        a->w_touched = a->w_bad = a->w_reread = false;
        a->w_debits = a->w_credits = a->w_earned = a->w_settled = 0;
        a->w_next = NULL;
    }
    l->w_touched = NULL;
    for (ledger_account_t *a = l->w_tentative, *n; a; a = n) {
        n = a->w_next_tentative;
        a->w_id = 0;
        a->w_tentative = false;
        a->w_next_tentative = NULL;
    }
    l->w_tentative = NULL;
}

static void fail_op(op_t *op, int code, const acc_err *why) {
    op->res.status = code;
    op->res.seq = 0;
    op->res.duplicate = false;
    if (why) op->res.err = *why;
    else acc_fail(&op->res.err, code, "ledger: %s", acc_status_name(code));
    op->res.err.code = code;
    op->failed = true;
}

/* Writer: one posting inside the transaction. A failure of the op alone (a lost compare-and-set)
 * marks it failed and returns ACC_OK; a failure of the store returns its error (the batch is lost). */
static int write_posting(ledger_t *l, op_t *op, uint64_t time_ms, acc_err *err) {
    if (op->check_settlement) {
        uint64_t last;
        int rc = l->ops->last_settlement_seq(l->store, &last, err);
        if (rc) return rc;
        if (last != op->after_settlement) {
            acc_err why;
            acc_fail(&why, ACC_EMISMATCH,
                     "settlement: the last settlement is at seq %" PRIu64 ", not %" PRIu64 " (another cut came first)",
                     last, op->after_settlement);
            fail_op(op, ACC_EMISMATCH, &why);
            return ACC_OK;
        }
    }
    if (op->ntx > l->w_legs_cap) {
        ledger_leg_t *bigger = realloc(l->w_legs, op->ntx * sizeof *bigger);
        if (!bigger) return acc_fail(err, ACC_ENOMEM, "ledger: out of memory");
        l->w_legs = bigger;
        l->w_legs_cap = op->ntx;
    }
    for (size_t i = 0; i < op->ntx; i++) {
        ledger_leg_t *g = &l->w_legs[i];
        int rc = resolve(l, op->tx[i].debit, &g->debit, err);
        if (!rc) rc = resolve(l, op->tx[i].credit, &g->credit, err);
        if (rc) return rc;
        g->amount = op->tx[i].amount;
        g->code = op->tx[i].code;
    }
    store_posting_t sp = {.id = &op->id, .time_ms = time_ms, .state = op->state, .code = op->code,
                          .legs = l->w_legs, .nlegs = op->ntx, .event = op->event, .event_len = op->event_len};
    bool dup = false;
    ledger_state_t dup_state = 0;
    uint64_t seq = 0, dup_time = 0;
    int rc = l->ops->insert(l->store, &sp, &seq, &dup, &dup_state, &dup_time, err);
    if (rc) return rc;
    op->res.status = ACC_OK;
    op->res.seq = seq;
    op->res.duplicate = dup;
    op->res.state = dup ? dup_state : op->state;
    op->res.time_ms = dup ? dup_time : time_ms;
    if (dup) return ACC_OK;
    for (size_t i = 0; i < op->ntx; i++) {
        ledger_account_t *d = op->tx[i].debit, *c = op->tx[i].credit;
        ledger_amount_t amt = op->tx[i].amount;
        touch(l, d);
        touch(l, c);
        d->w_debits += amt; /* no overflow: checked at submit against LEDGER_AMOUNT_MAX per posting */
        c->w_credits += amt;
        if (ledger_code_is_charge(op->tx[i].code)) c->w_earned += amt;
        if (op->tx[i].code == LEDGER_CODE_SETTLEMENT) d->w_settled += amt;
    }
    return ACC_OK;
}

/* Writer: forgets what it knew of the store (after a failure: trust nothing cached). */
static void distrust_cache(ledger_t *l) {
    pthread_mutex_lock(&l->mu);
    l->epoch++;
    pthread_mutex_unlock(&l->mu);
    l->w_tail_known = false;
}

/* Writer: each touched account's totals added to its row, and the row after in w_after: computed
 * from the cache when it is the stored row (see the top of this file), else read back. */
static int update_accounts(ledger_t *l, acc_err *err) {
    int rc = ACC_OK;
    l->w_account_rows = 0;
    for (ledger_account_t *a = l->w_touched; !rc && a; a = a->w_next)
        if (a->w_debits || a->w_credits || a->w_earned || a->w_settled) {
            rc = l->ops->account_add(l->store, a->w_id, a->w_debits, a->w_credits, a->w_earned, a->w_settled, err);
            l->w_account_rows++;
        }
    if (rc) return rc;
    pthread_mutex_lock(&l->mu);
    for (ledger_account_t *a = l->w_touched; a; a = a->w_next) {
        if (a->w_tentative || a->w_reread || a->epoch != l->epoch || a->id != a->w_id) {
            a->w_reread = true;
            continue;
        }
        a->w_after = (store_account_t){.id = a->id, .kind = (int)a->kind, .credit_limit = a->limit,
                                       .debits = a->debits + a->w_debits, .credits = a->credits + a->w_credits,
                                       .earned = a->earned + a->w_earned, .settled = a->settled + a->w_settled};
    }
    pthread_mutex_unlock(&l->mu);
    for (ledger_account_t *a = l->w_touched; !rc && a; a = a->w_next)
        if (a->w_reread) rc = l->ops->account_row(l->store, a->w_id, &a->w_after, err);
    return rc;
}

/* Writer: commits ops (a list) as one transaction. On return every op has its result. */
static void commit_batch(ledger_t *l, op_t *ops) {
    acc_err err = {0};
    for (;;) {
        int rc = l->ops->begin(l->store, &err);
        bool others = true;
        if (!rc) rc = l->ops->changed_by_others(l->store, &others, &err);
        if (!rc && others) distrust_cache(l);
        uint64_t last_seq = 0, last_time = l->w_last_time;
        if (!rc && !l->w_tail_known) rc = l->ops->tail(l->store, &last_seq, &last_time, &err);
        /* Commit time: never below the last stored one, whichever process stored it. */
        uint64_t time_ms = wall_ms();
        if (time_ms < last_time) time_ms = last_time;
        for (op_t *op = ops; !rc && op; op = op->next) {
            if (op->failed) continue;
            if (op->kind == OP_SET_LIMIT) {
                uint64_t id;
                rc = resolve(l, op->limit_account, &id, &err);
                if (!rc) rc = l->ops->account_set_limit(l->store, id, op->limit, &err);
                if (!rc) touch(l, op->limit_account), op->limit_account->w_reread = true;
                op->res.status = rc;
                continue;
            }
            rc = write_posting(l, op, time_ms, &err);
        }
        /* Totals, once per account; no debited account may end below its limit (another process
         * may have spent from it since we last looked). */
        if (!rc) rc = update_accounts(l, &err);
        bool overdrawn = false;
        for (ledger_account_t *a = l->w_touched; !rc && a; a = a->w_next)
            if (a->w_debits && a->w_after.debits > sat_add(a->w_after.credits, a->w_after.credit_limit))
                a->w_bad = overdrawn = true;
        if (!rc && overdrawn) {
            l->ops->rollback(l->store);
            for (op_t *op = ops; op; op = op->next) {
                if (op->failed || op->kind != OP_POSTING) continue;
                for (size_t i = 0; i < op->ntx; i++) {
                    if (!op->tx[i].debit->w_bad) continue;
                    acc_err why;
                    funds_error(&why, op->tx[i].debit, 0, op->tx[i].amount);
                    acc_err_prefix(&why, "found at commit (another process spent from the account)");
                    fail_op(op, ACC_EFUNDS, &why);
                    break;
                }
            }
            reset_scratch(l);
            continue; /* again, without the postings that no longer fit */
        }
        if (!rc) {
            uint64_t t0 = mono_ns();
            rc = l->ops->commit(l->store, &err);
            l->w_commit_ns = mono_ns() - t0;
        }
        if (rc) {
            l->ops->rollback(l->store);
            for (op_t *op = ops; op; op = op->next)
                if (!op->failed) fail_op(op, rc, &err);
            reset_scratch(l);
            distrust_cache(l);
            l->w_account_rows = 0;
            return;
        }
        (void)last_seq;
        l->w_last_time = time_ms;
        l->w_tail_known = true;
        return;
    }
}

/* Writer, under mu: publishes a committed batch to the cache and releases the pending amounts. */
static void apply_batch(ledger_t *l, op_t *ops, size_t n, uint64_t durable_at) {
    for (ledger_account_t *a = l->w_tentative; a; a = a->w_next_tentative) {
        set_id(l, a, a->w_id);
        a->w_tentative = false;
    }
    l->w_tentative = NULL;
    bool committed = false;
    for (ledger_account_t *a = l->w_touched, *next; a; a = next) {
        next = a->w_next;
        take_row(a, &a->w_after);
        a->epoch = l->epoch; /* the row as committed, under the write lock: current */
        a->version++;
        a->w_touched = a->w_bad = a->w_reread = false;
        a->w_debits = a->w_credits = a->w_earned = a->w_settled = 0;
        a->w_next = NULL;
        committed = true;
    }
    l->w_touched = NULL;
    for (op_t *op = ops; op; op = op->next) {
        if (op->kind != OP_POSTING) continue;
        for (size_t i = 0; i < op->ntx; i++) {
            ledger_account_t *d = op->tx[i].debit;
            ACC_INVARIANT(d->pending >= op->tx[i].amount, "account %s: pending %" PRIu64 " below a queued debit %" PRIu64,
                          d->name, d->pending, op->tx[i].amount);
            d->pending -= op->tx[i].amount;
        }
        if (op->failed) l->stats.failed++;
        else if (op->res.duplicate) l->stats.duplicates++;
        else l->stats.postings++, l->stats.durable_ns += durable_at - op->queued_ns;
    }
    if (committed || n) {
        l->stats.commits++;
        l->stats.commit_ns += l->w_commit_ns;
        l->stats.account_rows += l->w_account_rows;
        if (n > l->stats.max_batch) l->stats.max_batch = n;
    }
}

/* Why the writer stopped gathering a batch. */
typedef enum gather_end {
    GATHER_NONE,    /* not gathered: a lone caller, a quiet moment, a full queue, or no window */
    GATHER_AT_ECHO, /* not gathered: as many postings already queued as the echo */
    GATHER_FULL,    /* max_batch queued */
    GATHER_WINDOW,  /* the window ended with postings still coming */
    GATHER_QUIET,   /* a quiet slice passed: nothing arrived, and nothing was about to */
    GATHER_HOLDS,   /* the reservations in flight that held it were posted or voided, or held it long enough */
    GATHER_ECHO,    /* as many postings queued as in the last batch that ended quiet */
} gather_end_t;

/* Writer, under mu: lets the batch grow while it is worth it (the comment in writer_main). */
static gather_end_t gather(ledger_t *l, bool concurrent, uint64_t last_commit_ns) {
    uint64_t t = mono_ns();
    /* Fewer queued than the echo: callers of the closed loop it measured are posting again (their
     * answers were just handed over), the rest about to; none may hold a reservation right now
     * (between two calls), and none posted during the commit (they were waiting for it), yet they
     * are no lone caller: gather for them as for a stream. Committing the few that came first
     * split a loop of 100 in bench_meters into batches of 100 and 12, each waiting for the other. */
    bool echo_pending = l->w_echo > l->q_len;
    if (!l->commit_delay_ns || l->stopping || l->q_len >= l->max_batch || !(concurrent || l->nholds > 0 || echo_pending) ||
        t - last_commit_ns >= 2 * l->commit_delay_ns)
        return GATHER_NONE;
    /* As many queued already as the echo expects: every caller it saw is waiting; more: the
     * postings outpace the loop it saw, so gather as for a stream until a batch ends quiet again. */
    if (l->w_echo && l->q_len == l->w_echo) return GATHER_AT_ECHO;
    if (l->w_echo && l->q_len > l->w_echo) l->w_echo = 0;
    bool on_holds = l->nholds > 0 && !concurrent;
    uint64_t holds_until = t + l->commit_delay_ns / 4, slice = 4 * l->gap_ns;
    uint64_t until = on_holds ? holds_until : t + l->commit_delay_ns;
    if (slice < l->commit_delay_ns / 16) slice = l->commit_delay_ns / 16;
    l->w_gathering = true;
    l->w_gather_on_holds = on_holds;
    gather_end_t end = on_holds ? GATHER_HOLDS : GATHER_WINDOW; /* if the time runs out */
    for (;;) {
        uint64_t seen = l->arrivals, now_ns = mono_ns();
        if (now_ns >= until) break;
        uint64_t wait_ns = on_holds || until - now_ns < slice ? until - now_ns : slice;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + wait_ns;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        int w = pthread_cond_timedwait(&l->wake, &l->mu, &ts);
        if (l->stopping || l->q_len >= l->max_batch) {
            end = GATHER_FULL;
            break;
        }
        if (l->w_echo && l->q_len >= l->w_echo) {
            end = GATHER_ECHO;
            break;
        }
        if (on_holds ? l->nholds == 0 || w != 0 : l->arrivals == seen && (l->nholds == 0 || mono_ns() >= holds_until)) {
            end = on_holds ? GATHER_HOLDS : GATHER_QUIET;
            break;
        }
    }
    l->w_gathering = l->w_gather_on_holds = false;
    l->stats.gather_ns += mono_ns() - t;
    if (end == GATHER_QUIET) l->w_echo = l->q_len < l->max_batch ? l->q_len : l->max_batch;
    else if (end == GATHER_WINDOW || end == GATHER_FULL) l->w_echo = 0;
    return end;
}

static void *writer_main(void *arg) {
    ledger_t *l = arg;
    pthread_mutex_lock(&l->mu);
    uint64_t last_reap = 0, last_commit_ns = 0;
    bool concurrent = false; /* postings arrived during the last commit */
    for (;;) {
        while (!l->q_head && !l->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            l->w_idle = true;
            pthread_cond_timedwait(&l->wake, &l->mu, &ts);
            l->w_idle = false;
            uint64_t now = ledger_now_ms();
            reap(l, now);
            last_reap = now;
        }
        if (!l->q_head) break; /* stopping, and everything is written */
        /* Under load, let the batch grow for a little while before committing: an fsync and a
         * transaction cost the same for one posting or a thousand, so gathering trades a little
         * latency for much less work per call. Load is either of two things, measured as it
         * happens rather than guessed:
         *   - postings arrived while the last commit was under way (callers who do not wait for
         *     each other: many sessions, or one thread running many sandboxes, whose calls come
         *     back to back with no reservation held in between). The batch then grows while they
         *     keep coming: it is committed when a quiet slice passes with no arrival and no
         *     reservation in flight, or when the window ends. The slice is four mean gaps between
         *     postings (on a busy CPU they keep coming, but further apart), at least a sixteenth
         *     of the window (250 us by default: a few callers that all wait for this commit are
         *     not kept waiting long);
         *   - other callers hold reservations they will post soon (threads in the middle of a
         *     call): the batch waits for them, until the last is posted or voided.
         * A reservation may belong to a call to an upstream model that takes seconds, so waiting
         * for reservations is bounded by a quarter of the window (1 ms by default): only a stream
         * of postings that keeps coming holds a batch open for the whole window.
         * A lone caller (its next posting comes only after its last is committed, and it holds no
         * reservation meanwhile) is committed at once, and so is anyone after a quiet moment (no
         * commit in the last two windows).
         * The echo. A batch that ended quiet shows callers who wait for their answers before they
         * post again (sessions, each with a call in flight: a closed loop): the stream stopped
         * because every one of them was waiting for this commit, and the slice it waited was time
         * in which nobody could do anything. So the next batches end as soon as they hold as many
         * postings as that one (the size is remembered: w_echo), without a quiet slice each; one
         * that ends quiet again (fewer callers now) sets a smaller echo.
         * The echo is a bet that a batch of its size holds every caller there is, all waiting for
         * its commit, and each commit it ends checks the bet: if a posting arrives while that
         * commit runs, its caller was not waiting for it, so the postings are a stream (or a loop
         * bigger than the echo), and the echo is forgotten; batches gather as for a stream until
         * one ends quiet again, which measures the loop afresh. A closed loop of the echo's size
         * never posts during its own commit and keeps it (the server at 32 connections: 83-99% of
         * echo batches; at 128, 46-69%, the rest measured afresh). This is what keeps a stream that
         * paused once (its poster preempted on a loaded machine, so that a small batch ended quiet)
         * from being committed in batches of that size for good: its first echo batch gives it
         * away. The echo is also forgotten when more are queued than it when gathering would start
         * (the postings outpace the loop it saw), and when a window ends with postings still coming
         * or the batch fills (a stream: gathering for the window is what keeps its batches big).
         * Not caught: a stream slower than a commit (nothing arrives while one runs) keeps an echo
         * it set; it looks like a lone caller, and is mostly committed a posting at a time, echo or
         * not.
         * Measured (BENCHMARKS.md, the server): 32 sessions calling a metered model, each batch
         * waited 250-320 us of quiet with the core idle; with the echo, 28-32% more round trips
         * (since the workers run as batch threads, whose postings come in bursts, less: 21.5k
         * against 18.0k a second, medians of 8 alternated pairs). */
        gather_end_t end = gather(l, concurrent, last_commit_ns);
        uint64_t now = ledger_now_ms();
        if (now - last_reap >= 20) {
            reap(l, now);
            last_reap = now;
        }
        op_t *ops = l->q_head, *tail = ops;
        size_t n = 1;
        while (tail->next && n < l->max_batch) tail = tail->next, n++;
        l->q_head = tail->next;
        if (!l->q_head) l->q_tail = NULL;
        tail->next = NULL;
        l->q_len -= n;
        uint64_t arrivals_before = l->arrivals;
        pthread_mutex_unlock(&l->mu);

        commit_batch(l, ops);
        last_commit_ns = mono_ns();

        pthread_mutex_lock(&l->mu);
        /* before any done callback: a lone caller's next posting must not count */
        concurrent = l->arrivals != arrivals_before;
        /* the echo's bet checked (above): a posting that came while its batch was committed was
         * not waiting for it */
        if (concurrent && (end == GATHER_ECHO || end == GATHER_AT_ECHO)) l->w_echo = 0;
        apply_batch(l, ops, n, last_commit_ns);
        pthread_mutex_unlock(&l->mu);
        if (l->on_done_batch) l->on_done_batch(l->on_done_batch_ud, true);
        for (op_t *op = ops; op; op = op->next)
            if (op->done) op->done(op->ud, &op->res);
        if (l->on_done_batch) l->on_done_batch(l->on_done_batch_ud, false);
        ops_release(l, ops);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* --- opening and closing --- */

int ledger_open(const char *path, const ledger_opts_t *opts, ledger_t **out, acc_err *err) {
    ledger_opts_t o = opts ? *opts : (ledger_opts_t){0};
    ledger_t *l = calloc(1, sizeof *l);
    if (!l) return acc_fail(err, ACC_ENOMEM, "ledger: out of memory");
    l->ops = &store_sqlite;
    l->readonly = o.readonly;
    l->on_done_batch = o.on_done_batch;
    l->on_done_batch_ud = o.on_done_batch_ud;
    l->max_batch = o.max_batch ? o.max_batch : 4096;
    l->commit_delay_ns = (uint64_t)(o.commit_delay_us == LEDGER_NO_COMMIT_DELAY ? 0
                                    : o.commit_delay_us ? o.commit_delay_us : LEDGER_DEFAULT_COMMIT_DELAY_US) * 1000;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->pool_mu, NULL);
    pthread_cond_init(&l->wake, NULL);
    int rc = grow_tables(l) ? acc_fail(err, ACC_ENOMEM, "ledger: out of memory") : ACC_OK;
    if (!rc) rc = l->ops->open(path, o.readonly, o.no_sync, o.busy_timeout_ms ? o.busy_timeout_ms : 5000, &l->store, err);
    static const char *const system[3] = {LEDGER_SYSTEM_EXTERNAL, LEDGER_SYSTEM_OPERATOR, LEDGER_SYSTEM_SETTLEMENT};
    for (int i = 0; !rc && i < 3; i++) rc = ledger_account(l, LEDGER_ACCOUNT_SYSTEM, system[i], &l->system[i], err);
    if (!rc && l->system[0]->limit == 0) l->system[0]->limit = LEDGER_AMOUNT_MAX; /* a read-only view of a new file */
    if (!rc && !o.readonly) {
        errno = pthread_create(&l->writer, NULL, writer_main, l);
        if (errno) rc = acc_fail(err, ACC_ENOMEM, "ledger: cannot start the writer thread: %s", strerror(errno));
        else l->writer_started = true;
    }
    if (rc) {
        ledger_close(l);
        return rc;
    }
    *out = l;
    return ACC_OK;
}

void ledger_close(ledger_t *l) {
    if (!l) return;
    if (l->writer_started) {
        pthread_mutex_lock(&l->mu);
        l->stopping = true;
        pthread_cond_broadcast(&l->wake);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->writer, NULL);
    }
    for (ledger_hold_t *h = l->holds, *n; h; h = n) {
        n = h->next;
        free(h);
    }
    for (ledger_account_t *a = l->all, *n; a; a = n) {
        n = a->next_all;
        free(a);
    }
    if (l->store) l->ops->close(l->store);
    free(l->by_name);
    free(l->by_id);
    free(l->w_legs);
    for (op_t *op = l->pool, *n; op; op = n) n = op->next, free(op);
    pthread_mutex_destroy(&l->pool_mu);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void ledger_stats(ledger_t *l, ledger_stats_t *out) {
    pthread_mutex_lock(&l->mu);
    *out = l->stats;
    out->holds = l->nholds;
    pthread_mutex_unlock(&l->mu);
}

/* --- reading (the store does the work) --- */

int ledger_last_seq(ledger_t *l, uint64_t *seq, acc_err *err) { return l->ops->last_seq(l->store, seq, err); }

int ledger_scan(ledger_t *l, uint64_t from, uint64_t to, bool reverse, ledger_entry_fn fn, void *ud, acc_err *err) {
    return l->ops->scan(l->store, from, to, reverse, fn, ud, err);
}

int ledger_find(ledger_t *l, const ledger_id_t *id, ledger_entry_fn fn, void *ud, acc_err *err) {
    return l->ops->find(l->store, id, fn, ud, err);
}

int ledger_last_settlement(ledger_t *l, ledger_entry_fn fn, void *ud, acc_err *err) {
    return l->ops->last_settlement(l->store, fn, ud, err);
}

int ledger_settlements(ledger_t *l, const ledger_account_ref_t *debited, uint64_t before, size_t limit,
                       ledger_entry_fn fn, void *ud, acc_err *err) {
    uint64_t id = 0;
    if (debited) {
        /* Looked up in the store, not the account cache: a query about any address must not add an
         * account to the cache (ledger_account would, for one never stored). */
        store_account_t row;
        bool found = false;
        int rc = l->ops->account_get(l->store, (int)debited->kind, debited->name, &row, &found, err);
        if (rc || !found) return rc;
        id = row.id;
    }
    return l->ops->settlements(l->store, id, before, (uint64_t)limit, fn, ud, err);
}

int ledger_seq_at_time(ledger_t *l, uint64_t time_ms, uint64_t *seq, acc_err *err) {
    return l->ops->seq_at_time(l->store, time_ms, seq, err);
}

typedef struct accounts_walk {
    ledger_t *l;
    uint64_t epoch; /* before the walk's snapshot */
    ledger_account_fn fn;
    void *ud;
    acc_err *err;
} accounts_walk_t;

static int accounts_one(void *ud, const store_account_t *row) {
    accounts_walk_t *w = ud;
    ledger_t *l = w->l;
    /* The row is in hand: an account not cached yet is cached from it (as ledger_account would,
     * without reading it again: one query for the whole walk, not one per account). */
    uint32_t h = name_hash(row->kind, row->name);
    ledger_balance_t b;
    pthread_mutex_lock(&l->mu);
    ledger_account_t *a = find_name(l, row->kind, row->name, h);
    if (!a && !(a = add_account(l, row->kind, row->name, h))) {
        pthread_mutex_unlock(&l->mu);
        return acc_fail(w->err, ACC_ENOMEM, "ledger: out of memory");
    }
    if (!a->loaded) {
        take_row(a, row);
        a->epoch = w->epoch;
        a->loaded = true;
    }
    set_id(l, a, row->id);
    ledger_account_t tmp = *a;
    take_row(&tmp, row);
    fill_balance(&tmp, &b);
    pthread_mutex_unlock(&l->mu);
    return w->fn(w->ud, a, &b);
}

int ledger_accounts(ledger_t *l, ledger_account_fn fn, void *ud, acc_err *err) {
    pthread_mutex_lock(&l->mu);
    accounts_walk_t w = {l, l->epoch, fn, ud, err};
    pthread_mutex_unlock(&l->mu);
    return l->ops->accounts(l->store, accounts_one, &w, err);
}
