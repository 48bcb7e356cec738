/*
 * check.c: the ledger's invariants, checked against everything stored (ledger_check).
 *
 * The writer keeps these by construction (ledger.c); this file re-derives them from the rows, in
 * one read snapshot, so that a bug, a crash at a bad moment or a hand edit of the database shows
 * up as a named failure rather than as wrong money later. Each account's stored totals are
 * recomputed from every transfer, so the check reads the whole ledger: it is for tests, operators
 * and `accrue ledger check`, not for the hot path.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/ledger/internal.h"

#define STALE_GRACE_MS 1000 /* the reaper runs every 50 ms; a hold may outlive its deadline by that */

const char *ledger_invariant_name(ledger_invariant_t inv) {
    switch (inv) {
    case LEDGER_INV_BALANCED: return "balanced";
    case LEDGER_INV_NO_OVERDRAFT: return "no_overdraft";
    case LEDGER_INV_EVENTS: return "charges_have_events";
    case LEDGER_INV_POSTED_XOR_VOIDED: return "posted_xor_voided";
    case LEDGER_INV_NO_STALE_PENDING: return "no_stale_pending";
    case LEDGER_INV_SEQUENCE: return "contiguous_sequence";
    case LEDGER_INV_SETTLED_INDEX: return "settlement_index";
    case LEDGER_INV_COUNT: break;
    }
    return "unknown";
}

typedef struct u128 {
    uint64_t hi, lo;
} u128_t;

static void add128(u128_t *s, uint64_t v) {
    if (__builtin_add_overflow(s->lo, v, &s->lo)) s->hi++;
}

typedef struct acct {
    store_account_t row;
    u128_t debits, credits, earned, settled; /* recomputed */
    u128_t indexed;                          /* its settlements in the store's index */
} acct_t;

typedef struct check {
    ledger_t *l;
    ledger_event_check_fn check_event;
    void *ud;
    ledger_check_report_t *rep;
    acct_t *accts;
    size_t n, cap;
    uint64_t last_seq, last_time;
    u128_t total;
    int oom;
} check_t;

static void failed(check_t *c, ledger_invariant_t inv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void failed(check_t *c, ledger_invariant_t inv, const char *fmt, ...) {
    if (!c->rep->ok[inv]) return; /* keep the first */
    c->rep->ok[inv] = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->rep->detail[inv], sizeof c->rep->detail[inv], fmt, ap);
    va_end(ap);
}

static int on_account(void *ud, const store_account_t *a) {
    check_t *c = ud;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        acct_t *bigger = realloc(c->accts, nc * sizeof *bigger);
        if (!bigger) return c->oom = ACC_ENOMEM;
        c->accts = bigger;
        c->cap = nc;
    }
    memset(&c->accts[c->n], 0, sizeof c->accts[c->n]);
    c->accts[c->n++].row = *a;
    return ACC_OK;
}

/* Accounts come in id order: binary search. */
static acct_t *find(check_t *c, uint64_t id) {
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->accts[mid].row.id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < c->n && c->accts[lo].row.id == id ? &c->accts[lo] : NULL;
}

static int on_posting(void *ud, const ledger_entry_t *e) {
    check_t *c = ud;
    c->rep->postings++;
    if (e->seq != c->last_seq + 1)
        failed(c, LEDGER_INV_SEQUENCE, "seq %" PRIu64 " follows %" PRIu64 " (a gap or a repeat)", e->seq, c->last_seq);
    if (e->time_ms < c->last_time)
        failed(c, LEDGER_INV_SEQUENCE, "posting %" PRIu64 ": commit time %" PRIu64 " before the previous one's %" PRIu64,
               e->seq, e->time_ms, c->last_time);
    c->last_seq = e->seq;
    c->last_time = e->time_ms;
    if (e->state == LEDGER_PENDING)
        failed(c, LEDGER_INV_NO_STALE_PENDING, "posting %" PRIu64 " is stored pending (reservations are never stored)",
               e->seq);
    else if (e->state != LEDGER_POSTED && e->state != LEDGER_VOIDED)
        failed(c, LEDGER_INV_POSTED_XOR_VOIDED, "posting %" PRIu64 ": unknown state %d", e->seq, (int)e->state);
    if (e->state == LEDGER_VOIDED && e->nlegs)
        failed(c, LEDGER_INV_POSTED_XOR_VOIDED, "posting %" PRIu64 " is voided but moves money (%zu transfers)", e->seq,
               e->nlegs);
    bool charge = false;
    for (size_t i = 0; i < e->nlegs; i++) {
        const ledger_leg_t *g = &e->legs[i];
        c->rep->transfers++;
        acct_t *d = find(c, g->debit), *k = find(c, g->credit);
        if (!d || !k) {
            failed(c, LEDGER_INV_BALANCED, "posting %" PRIu64 " transfer %zu: no account %" PRIu64, e->seq, i,
                   d ? g->credit : g->debit);
            continue;
        }
        if (d == k || g->amount == 0 || g->amount > LEDGER_AMOUNT_MAX || g->code < 1 || g->code > LEDGER_CODE_MAX)
            failed(c, LEDGER_INV_BALANCED, "posting %" PRIu64 " transfer %zu: malformed (same account, zero amount or unknown code)",
                   e->seq, i);
        if (e->state != LEDGER_POSTED) continue;
        add128(&d->debits, g->amount);
        add128(&k->credits, g->amount);
        add128(&c->total, g->amount);
        if (ledger_code_is_charge(g->code)) {
            add128(&k->earned, g->amount);
            charge = true;
        }
        if (g->code == LEDGER_CODE_SETTLEMENT) add128(&d->settled, g->amount);
    }
    if (charge && (!e->event_len || !ledger_code_is_charge(e->code)))
        failed(c, LEDGER_INV_EVENTS, "posting %" PRIu64 " moves charges without a usage event", e->seq);
    if (c->check_event && ledger_code_is_charge(e->code) && e->event_len) {
        acc_err why = {0};
        if (c->check_event(c->ud, e, &why) != ACC_OK) {
            char hex[33];
            ledger_id_hex(&e->id, hex);
            failed(c, LEDGER_INV_EVENTS, "posting %" PRIu64 " (%s): %s", e->seq, hex, why.msg);
        }
    }
    return ACC_OK;
}

static bool eq128(u128_t a, uint64_t v) { return a.hi == 0 && a.lo == v; }

static int on_settled(void *ud, uint64_t account, uint64_t seq, uint64_t amount) {
    check_t *c = ud;
    acct_t *a = find(c, account);
    if (!a) failed(c, LEDGER_INV_SETTLED_INDEX, "batch %" PRIu64 " is indexed under account %" PRIu64 ", which does not exist", seq, account);
    else add128(&a->indexed, amount);
    return 0;
}

int ledger_check(ledger_t *l, ledger_event_check_fn check_event, void *ud, ledger_check_report_t *report, acc_err *err) {
    ledger_check_report_t local;
    ledger_check_report_t *rep = report ? report : &local;
    memset(rep, 0, sizeof *rep);
    for (int i = 0; i < LEDGER_INV_COUNT; i++) rep->ok[i] = true;
    check_t c = {.l = l, .check_event = check_event, .ud = ud, .rep = rep};
    bool dup = false, indexed = false;
    ledger_id_t dup_id;
    int rc = l->ops->snapshot(l->store, on_account, on_posting, on_settled, &c, &indexed, &dup, &dup_id, err);
    if (!rc && c.oom) rc = acc_fail(err, ACC_ENOMEM, "ledger check: out of memory");
    if (rc) {
        free(c.accts);
        return rc;
    }
    if (dup) {
        char hex[33];
        ledger_id_hex(&dup_id, hex);
        failed(&c, LEDGER_INV_POSTED_XOR_VOIDED, "id %s is stored more than once", hex);
    }
    u128_t sum_debits = {0, 0}, sum_credits = {0, 0};
    for (size_t i = 0; i < c.n; i++) {
        const acct_t *a = &c.accts[i];
        const store_account_t *r = &a->row;
        add128(&sum_debits, r->debits);
        add128(&sum_credits, r->credits);
        if (!eq128(a->debits, r->debits) || !eq128(a->credits, r->credits) || !eq128(a->earned, r->earned) ||
            !eq128(a->settled, r->settled))
            failed(&c, LEDGER_INV_BALANCED,
                   "account %s: stored debits %" PRIu64 ", credits %" PRIu64 ", earned %" PRIu64 ", settled %" PRIu64
                   " are not the sums of its transfers (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
                   r->name, r->debits, r->credits, r->earned, r->settled, a->debits.lo, a->credits.lo, a->earned.lo,
                   a->settled.lo);
        if (indexed && (a->indexed.hi != a->settled.hi || a->indexed.lo != a->settled.lo))
            failed(&c, LEDGER_INV_SETTLED_INDEX,
                   "account %s: the settlements' index holds %" PRIu64 ", its settlement transfers %" PRIu64, r->name,
                   a->indexed.lo, a->settled.lo);
        uint64_t room;
        if (__builtin_add_overflow(r->credits, r->credit_limit, &room)) room = UINT64_MAX;
        if (r->debits > room)
            failed(&c, LEDGER_INV_NO_OVERDRAFT,
                   "account %s: debits %" PRIu64 " exceed credits %" PRIu64 " + credit limit %" PRIu64, r->name, r->debits,
                   r->credits, r->credit_limit);
    }
    if (sum_debits.hi != sum_credits.hi || sum_debits.lo != sum_credits.lo)
        failed(&c, LEDGER_INV_BALANCED, "total debits (%" PRIu64 ") differ from total credits (%" PRIu64 ")",
               sum_debits.lo, sum_credits.lo);
    uint64_t now = ledger_now_ms();
    pthread_mutex_lock(&l->mu);
    for (ledger_hold_t *h = l->holds; h; h = h->next)
        if (h->deadline_ms && now > h->deadline_ms + STALE_GRACE_MS) {
            failed(&c, LEDGER_INV_NO_STALE_PENDING,
                   "a reservation of %" PRIu64 " on %s is %" PRIu64 " ms past its deadline", h->amount, h->account->name,
                   now - h->deadline_ms);
            break;
        }
    pthread_mutex_unlock(&l->mu);
    rep->accounts = c.n;
    rep->total_debits_hi = c.total.hi;
    rep->total_debits_lo = c.total.lo;
    free(c.accts);
    for (int i = 0; i < LEDGER_INV_COUNT; i++)
        if (!rep->ok[i])
            return acc_fail(err, ACC_ECORRUPT, "%s: %s", ledger_invariant_name((ledger_invariant_t)i), rep->detail[i]);
    return ACC_OK;
}
