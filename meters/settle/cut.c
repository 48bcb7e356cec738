/*
 * cut.c: batches out of the ledger, and back.
 *
 * Cutting. The ledger numbers its stored postings 1, 2, 3, ... with no gap, in commit order, and a
 * reader that sees seq N sees everything below it (ledger.h). So a cut reads the last batch (the
 * last settlement posting), takes the ledger's last committed seq as its cut point, and nets the
 * postings in between, one read snapshot, while writers keep appending after the cut point. The
 * batch is then committed as a settlement posting guarded by the ledger's compare-and-set on the
 * last settlement posting: if another cutter committed a batch meanwhile, ours is refused whole
 * (nothing written) and we start over from the new last batch. Each batch's range starts right
 * after its predecessor's, so no posting is covered twice or skipped, and its transfers and the
 * signed header are one row: a crash leaves no batch or a whole one.
 *
 * Reading back. The settlement posting's event holds the signed header and the seq of the
 * previous batch's posting, so the batches form a list walked from the last one (ledger_last_
 * settlement) backwards; a batch's entries are its posting's transfers (debit: the payee's
 * account, named by its address).
 *
 * Accounts. A posting's legs name accounts by stored id; netting needs each credited account's
 * kind and address. Ids are resolved once each (ledger_account_by_id, which caches), or, for a long
 * range, by loading every account in one pass (ledger_accounts), which costs one query instead of
 * one per payee.
 */
#include "meters/settle/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meters/eth/hex.h"
#include "runtime/base/invariant.h"

/* A range at least this long loads every account at once rather than one query per new payee. */
#define PRELOAD_ACCOUNTS_AFTER 20000
/* Times a cut starts over when another cutter commits first. */
#define CUT_ATTEMPTS 8

/* ---------------------------------------------------------------- account ids -> payees */

typedef struct slot {
    uint64_t id;              /* 0: empty */
    ledger_account_t *account;
    bool is_payee;            /* an address account */
    uint8_t address[ETH_ADDRESS_SIZE];
    uint64_t amount;          /* netted in the range */
    uint64_t touched;         /* the posting that made it a payee of the batch (to undo that posting) */
} slot_t;

typedef struct payees {
    ledger_t *ledger;
    slot_t *slots;
    size_t cap, used; /* cap a power of two; used < cap / 2 */
    size_t earning;   /* slots with amount > 0 */
} payees_t;

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int payees_init(payees_t *p, ledger_t *l, acc_err *err) {
    memset(p, 0, sizeof *p);
    p->ledger = l;
    p->cap = 1024;
    p->slots = calloc(p->cap, sizeof *p->slots);
    return p->slots ? ACC_OK : acc_fail(err, ACC_ENOMEM, "settle: out of memory");
}

static void payees_free(payees_t *p) {
    free(p->slots);
    p->slots = NULL;
}

static slot_t *probe(slot_t *slots, size_t cap, uint64_t id) {
    size_t i = mix(id) & (cap - 1);
    while (slots[i].id != 0 && slots[i].id != id) i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow(payees_t *p, acc_err *err) {
    size_t cap = p->cap * 2;
    slot_t *s = calloc(cap, sizeof *s);
    if (!s) return acc_fail(err, ACC_ENOMEM, "settle: out of memory for %zu accounts", p->used);
    for (size_t i = 0; i < p->cap; i++)
        if (p->slots[i].id) *probe(s, cap, p->slots[i].id) = p->slots[i];
    free(p->slots);
    p->slots = s;
    p->cap = cap;
    return ACC_OK;
}

static int fill_slot(slot_t *s, ledger_account_t *a, uint64_t id, acc_err *err) {
    s->id = id;
    s->account = a;
    s->is_payee = ledger_account_kind(a) == LEDGER_ACCOUNT_ADDRESS;
    if (s->is_payee) {
        /* The stored EIP-55 name, decoded without recomputing its checksum (a keccak per payee):
         * the checksum guards typed text, and this text was checked when the account was made. */
        const char *name = ledger_account_name(a);
        if (strlen(name) != 2 + 2 * ETH_ADDRESS_SIZE || hex_parse0x(name, strlen(name), s->address, ETH_ADDRESS_SIZE, NULL) != ACC_OK)
            return acc_fail(err, ACC_ECORRUPT, "settle: account %llu is an address account named '%s', not an address",
                            (unsigned long long)id, name);
    }
    return ACC_OK;
}

/* The slot of account id, resolving it on first sight. */
static int payees_get(payees_t *p, uint64_t id, slot_t **out, acc_err *err) {
    slot_t *s = probe(p->slots, p->cap, id);
    if (s->id == id) {
        *out = s;
        return ACC_OK;
    }
    if ((p->used + 1) * 2 > p->cap) {
        int rc = grow(p, err);
        if (rc != ACC_OK) return rc;
        s = probe(p->slots, p->cap, id);
    }
    ledger_account_t *a;
    int rc = ledger_account_by_id(p->ledger, id, &a, err);
    if (rc != ACC_OK) return rc;
    if ((rc = fill_slot(s, a, id, err)) != ACC_OK) {
        s->id = 0;
        return rc;
    }
    p->used++;
    *out = s;
    return ACC_OK;
}

typedef struct preload_ctx {
    payees_t *p;
    acc_err *err;
} preload_ctx;

static int preload_one(void *ud, ledger_account_t *a, const ledger_balance_t *bal) {
    preload_ctx *c = ud;
    payees_t *p = c->p;
    if ((p->used + 1) * 2 > p->cap && grow(p, c->err) != ACC_OK) return ACC_ENOMEM;
    slot_t *s = probe(p->slots, p->cap, bal->id);
    if (s->id == bal->id) return ACC_OK;
    int rc = fill_slot(s, a, bal->id, c->err);
    if (rc != ACC_OK) {
        s->id = 0;
        return rc;
    }
    p->used++;
    return ACC_OK;
}

static int payees_preload(payees_t *p, acc_err *err) {
    acc_err ours = {0}, theirs = {0};
    preload_ctx c = {p, &ours};
    int rc = ledger_accounts(p->ledger, preload_one, &c, &theirs);
    if (rc != ACC_OK && err) *err = ours.code != ACC_OK ? ours : theirs;
    return rc;
}

/* ---------------------------------------------------------------- netting a range */

typedef struct net_ctx {
    payees_t *payees;
    size_t max_entries;   /* stop before the payees would pass this; 0 = no limit */
    uint64_t last_taken;  /* the last posting netted */
    bool stopped;         /* stopped early at max_entries */
    acc_err *err;
} net_ctx;

#define NET_STOP 1 /* not an error: the scan stops at the payee limit */

static int net_posting(void *ud, const ledger_entry_t *e) {
    net_ctx *c = ud;
    if (e->state == LEDGER_POSTED) {
        payees_t *p = c->payees;
        size_t earning_before = p->earning;
        for (size_t i = 0; i < e->nlegs; i++) {
            const ledger_leg_t *leg = &e->legs[i];
            if (!ledger_code_is_charge(leg->code)) continue;
            slot_t *s;
            int rc = payees_get(p, leg->credit, &s, c->err);
            if (rc != ACC_OK) return rc;
            if (!s->is_payee) continue;
            if (s->amount == 0) {
                p->earning++;
                s->touched = e->seq; /* new to the batch with this posting */
            }
            if (__builtin_add_overflow(s->amount, leg->amount, &s->amount) || s->amount > LEDGER_AMOUNT_MAX)
                return acc_fail(c->err, ACC_ELIMIT, "settle: %s earned more than %llu in one batch; cut more often",
                                ledger_account_name(s->account), (unsigned long long)LEDGER_AMOUNT_MAX);
        }
        if (c->max_entries && p->earning > c->max_entries) {
            /* This posting takes the batch past its payees: it goes whole to the next batch. */
            if (earning_before == 0)
                return acc_fail(c->err, ACC_ELIMIT, "settle: posting %llu alone pays %zu addresses, more than the %zu a batch holds",
                                (unsigned long long)e->seq, p->earning, c->max_entries);
            for (size_t i = 0; i < e->nlegs; i++) {
                const ledger_leg_t *leg = &e->legs[i];
                if (!ledger_code_is_charge(leg->code)) continue;
                slot_t *s;
                payees_get(p, leg->credit, &s, NULL); /* found: resolved above */
                if (!s->is_payee) continue;
                s->amount -= leg->amount;
                if (s->touched == e->seq && s->amount == 0) p->earning--;
            }
            ACC_INVARIANT(p->earning == earning_before, "%zu payees after undoing posting %llu, %zu before", p->earning,
                          (unsigned long long)e->seq, earning_before);
            c->stopped = true;
            return NET_STOP;
        }
    }
    c->last_taken = e->seq;
    return ACC_OK;
}

/* Nets postings [first, last]; *taken is the last posting netted (below last when max_entries
 * stopped it). */
static int net_range(payees_t *p, uint64_t first, uint64_t last, size_t max_entries, uint64_t *taken, acc_err *err) {
    if (last >= first && last - first + 1 >= PRELOAD_ACCOUNTS_AFTER) {
        int rc = payees_preload(p, err);
        if (rc != ACC_OK) return rc;
    }
    acc_err ours = {0}, scan = {0};
    net_ctx c = {.payees = p, .max_entries = max_entries, .err = &ours};
    int rc = ledger_scan(p->ledger, first, last, false, net_posting, &c, &scan);
    if (rc == NET_STOP) rc = ACC_OK;
    if (rc != ACC_OK) {
        if (err) *err = ours.code != ACC_OK ? ours : scan; /* our callback's failure, or the scan's own */
        return rc;
    }
    *taken = c.stopped ? c.last_taken : last;
    return ACC_OK;
}

typedef struct sortable {
    settle_entry_t entry;
    ledger_account_t *account;
    uint64_t id;
} sortable_t;

static int by_address(const void *a, const void *b) {
    return settle_address_cmp(((const sortable_t *)a)->entry.address, ((const sortable_t *)b)->entry.address);
}

/* The netted payees as entries sorted by address (and their accounts, in the same order, when
 * accounts is not NULL). */
static int collect(const payees_t *p, settle_entry_t **entries, ledger_account_t ***accounts, uint64_t **ids,
                   size_t *count, acc_err *err) {
    size_t n = p->earning;
    sortable_t *s = malloc((n ? n : 1) * sizeof *s);
    if (!s) return acc_fail(err, ACC_ENOMEM, "settle: out of memory for %zu entries", n);
    size_t k = 0;
    for (size_t i = 0; i < p->cap; i++)
        if (p->slots[i].id && p->slots[i].is_payee && p->slots[i].amount) {
            memcpy(s[k].entry.address, p->slots[i].address, ETH_ADDRESS_SIZE);
            s[k].entry.amount = p->slots[i].amount;
            s[k].account = p->slots[i].account;
            s[k].id = p->slots[i].id;
            k++;
        }
    ACC_INVARIANT(k == n, "%zu payees with an amount, %zu counted", k, n);
    qsort(s, n, sizeof *s, by_address);
    settle_entry_t *e = malloc((n ? n : 1) * sizeof *e);
    ledger_account_t **a = accounts ? malloc((n ? n : 1) * sizeof *a) : NULL;
    uint64_t *id = ids ? malloc((n ? n : 1) * sizeof *id) : NULL;
    if (!e || (accounts && !a) || (ids && !id)) {
        free(s);
        free(e);
        free(a);
        free(id);
        return acc_fail(err, ACC_ENOMEM, "settle: out of memory for %zu entries", n);
    }
    for (size_t i = 0; i < n; i++) {
        e[i] = s[i].entry;
        if (a) a[i] = s[i].account;
        if (id) id[i] = s[i].id;
    }
    free(s);
    *entries = e;
    if (accounts) *accounts = a;
    if (ids) *ids = id;
    *count = n;
    return ACC_OK;
}

int settle_derive(ledger_t *l, uint64_t first, uint64_t last, settle_entry_t **entries, size_t *count, acc_err *err) {
    payees_t p;
    int rc = payees_init(&p, l, err);
    if (rc != ACC_OK) return rc;
    uint64_t taken;
    if (last >= first) rc = net_range(&p, first, last, 0, &taken, err);
    if (rc == ACC_OK) rc = collect(&p, entries, NULL, NULL, count, err);
    payees_free(&p);
    return rc;
}

/* ---------------------------------------------------------------- stored batches */

/* What a settlement posting holds, copied out of the ledger's callback. */
typedef struct stored {
    bool found;
    uint64_t seq;
    settle_batch_t header;
    uint64_t prev_ledger_seq; /* the posting of batch sequence-1 (0: none) */
    uint64_t skip_ledger_seq; /* the posting of batch skip_to(sequence) (0: none) */
    ledger_leg_t *legs; /* NULL unless asked for */
    size_t nlegs;
    bool want_legs;
    int status;
    acc_err err;
} stored_t;

static int take_posting(void *ud, const ledger_entry_t *e) {
    stored_t *s = ud;
    if (e->code != LEDGER_CODE_SETTLEMENT) return ACC_OK; /* (a seq read that is not a batch) */
    s->found = true;
    s->seq = e->seq;
    json_t *o = settle_json_load(e->event, e->event_len, &s->err);
    if (!o) return s->status = acc_fail(&s->err, ACC_ECORRUPT, "settle: posting %llu: the batch header is not JSON",
                                        (unsigned long long)e->seq);
    memset(&s->header, 0, sizeof s->header);
    int rc = settle_header_from_json(o, &s->header, &s->err);
    uint64_t prev = 0, skip = 0;
    if (rc == ACC_OK && settle_json_u64(json_object_get(o, "prev_ledger_seq"), &prev) != 0)
        rc = acc_fail(&s->err, ACC_ECORRUPT, "prev_ledger_seq: missing");
    if (rc == ACC_OK && settle_json_u64(json_object_get(o, "skip_ledger_seq"), &skip) != 0)
        rc = acc_fail(&s->err, ACC_ECORRUPT, "skip_ledger_seq: missing");
    json_decref(o);
    if (rc != ACC_OK) {
        acc_err_prefix(&s->err, "settle: posting %llu", (unsigned long long)e->seq);
        return s->status = s->err.code = ACC_ECORRUPT;
    }
    s->prev_ledger_seq = prev;
    s->skip_ledger_seq = skip;
    s->header.ledger_seq = e->seq;
    if (s->want_legs) {
        s->legs = malloc((e->nlegs ? e->nlegs : 1) * sizeof *s->legs);
        if (!s->legs) return s->status = acc_fail(&s->err, ACC_ENOMEM, "settle: out of memory for a batch's transfers");
        memcpy(s->legs, e->legs, e->nlegs * sizeof *e->legs);
        s->nlegs = e->nlegs;
    }
    return ACC_OK;
}

/* Reads the settlement posting at seq (0: the last one). ACC_ENOTFOUND when there is none. */
static int read_stored(ledger_t *l, uint64_t seq, bool want_legs, stored_t *s, acc_err *err) {
    memset(s, 0, sizeof *s);
    s->want_legs = want_legs;
    acc_err lerr = {0};
    /* Without its transfers, the newest settlement at or below seq is one index probe (a batch of
     * 100k payees is 100k transfers to decode otherwise). */
    int rc = want_legs ? (seq == 0 ? ledger_last_settlement(l, take_posting, s, &lerr)
                                   : ledger_scan(l, seq, seq, false, take_posting, s, &lerr))
                       : ledger_settlements(l, NULL, seq ? seq + 1 : 0, 1, take_posting, s, &lerr);
    if (rc == ACC_OK && s->found && seq && s->seq != seq) s->found = false; /* an older batch */
    if (s->status != ACC_OK) {
        if (err) *err = s->err;
        free(s->legs);
        return s->status;
    }
    if (rc == ACC_ENOTFOUND || (rc == ACC_OK && !s->found))
        return acc_fail(err, ACC_ENOTFOUND, seq ? "settle: posting %llu is not a batch" : "settle: no batch yet",
                        (unsigned long long)seq);
    if (rc != ACC_OK) {
        if (err) *err = lerr;
        free(s->legs);
        return rc;
    }
    return ACC_OK;
}

static int entry_by_address(const void *a, const void *b) {
    return settle_address_cmp(((const settle_entry_t *)a)->address, ((const settle_entry_t *)b)->address);
}

/* The batch of a stored posting, entries from its transfers. */
static int stored_to_batch(ledger_t *l, stored_t *s, settle_batch_t **out, acc_err *err) {
    settle_batch_t *b = malloc(sizeof *b);
    if (!b) return acc_fail(err, ACC_ENOMEM, "settle: out of memory");
    *b = s->header;
    b->entries = malloc((s->nlegs ? s->nlegs : 1) * sizeof *b->entries);
    if (!b->entries) {
        free(b);
        return acc_fail(err, ACC_ENOMEM, "settle: out of memory for %zu entries", s->nlegs);
    }
    payees_t p;
    int rc = payees_init(&p, l, err);
    if (rc == ACC_OK && s->nlegs >= PRELOAD_ACCOUNTS_AFTER) rc = payees_preload(&p, err);
    for (size_t i = 0; rc == ACC_OK && i < s->nlegs; i++) {
        slot_t *slot;
        rc = payees_get(&p, s->legs[i].debit, &slot, err);
        if (rc == ACC_OK && (!slot->is_payee || s->legs[i].code != LEDGER_CODE_SETTLEMENT))
            rc = acc_fail(err, ACC_ECORRUPT, "settle: batch %llu: transfer %zu is not a payee's settlement",
                          (unsigned long long)b->sequence, i);
        if (rc == ACC_OK) {
            memcpy(b->entries[i].address, slot->address, ETH_ADDRESS_SIZE);
            b->entries[i].amount = s->legs[i].amount;
        }
    }
    payees_free(&p);
    if (rc == ACC_OK) qsort(b->entries, s->nlegs, sizeof *b->entries, entry_by_address); /* stored in id order */
    if (rc == ACC_OK && s->nlegs != b->entry_count)
        rc = acc_fail(err, ACC_ECORRUPT, "settle: batch %llu: %zu settlement transfers for %llu entries",
                      (unsigned long long)b->sequence, s->nlegs, (unsigned long long)b->entry_count);
    if (rc != ACC_OK) {
        settle_batch_free(b);
        return rc;
    }
    *out = b;
    return ACC_OK;
}

/* Batch k links to batch k-1 and to batch skip_to(k), k with its lowest set bit cleared (12 -> 8,
 * 8 -> 0: none). From any batch, batch j is reached in O(log^2 k) reads: jump while the skip does
 * not pass j, else step back one. */
static uint64_t skip_to(uint64_t k) {
    return k & (k - 1);
}

/* The stored batch of that sequence (0: the last one), its transfers too when want_legs. */
static int find_batch(ledger_t *l, uint64_t sequence, bool want_legs, stored_t *s, acc_err *err) {
    int rc = read_stored(l, 0, want_legs && sequence == 0, s, err);
    if (rc == ACC_ENOTFOUND && sequence)
        return acc_fail(err, ACC_ENOTFOUND, "no batch %llu: the ledger has no batch yet", (unsigned long long)sequence);
    if (rc != ACC_OK) return rc;
    if (sequence > s->header.sequence) {
        free(s->legs);
        return acc_fail(err, ACC_ENOTFOUND, "no batch %llu: the last batch is %llu", (unsigned long long)sequence,
                        (unsigned long long)s->header.sequence);
    }
    while (sequence && s->header.sequence != sequence) {
        uint64_t at = s->header.sequence, skip = skip_to(at);
        bool jump = skip >= sequence && skip > 0 && s->skip_ledger_seq;
        uint64_t next = jump ? s->skip_ledger_seq : s->prev_ledger_seq, want = jump ? skip : at - 1;
        if (next == 0)
            return acc_fail(err, ACC_ECORRUPT, "settle: batch %llu has no link to batch %llu", (unsigned long long)at,
                            (unsigned long long)want);
        if ((rc = read_stored(l, next, false, s, err)) != ACC_OK) return rc;
        if (s->header.sequence != want)
            return acc_fail(err, ACC_ECORRUPT, "settle: batch %llu links to posting %llu, which holds batch %llu, not %llu",
                            (unsigned long long)at, (unsigned long long)next, (unsigned long long)s->header.sequence,
                            (unsigned long long)want);
    }
    if (want_legs && !s->want_legs) return read_stored(l, s->seq, true, s, err);
    return ACC_OK;
}

int settle_batch_get(ledger_t *l, uint64_t sequence, settle_batch_t **out, acc_err *err) {
    stored_t s;
    int rc = find_batch(l, sequence, true, &s, err);
    if (rc != ACC_OK) return rc;
    rc = stored_to_batch(l, &s, out, err);
    free(s.legs);
    return rc;
}

typedef struct list_ctx {
    settle_batch_fn fn;
    void *ud;
    const uint8_t *address;
    uint64_t last;   /* the sequence of the batch listed before (0: none yet) */
    int status;      /* our own failure (the header, the order), with err */
    acc_err err;
} list_ctx;

static int list_posting(void *ud, const ledger_entry_t *e) {
    list_ctx *c = ud;
    stored_t s;
    memset(&s, 0, sizeof s);
    if (take_posting(&s, e) != ACC_OK) {
        c->err = s.err;
        return c->status = s.status;
    }
    /* Newest first: every batch's sequence below the one before it, and, for the whole chain,
     * right below it (a batch missing from the list would be a gap in the chain). */
    uint64_t at = s.header.sequence;
    if (c->last && (at >= c->last || (!c->address && at + 1 != c->last)))
        return c->status = acc_fail(&c->err, ACC_ECORRUPT, "settle: batch %llu is listed after batch %llu",
                                    (unsigned long long)at, (unsigned long long)c->last);
    c->last = at;
    settle_batch_t b = s.header;
    b.entries = NULL;
    settle_entry_t entry;
    if (c->address) {
        if (e->nlegs != 1)
            return c->status = acc_fail(&c->err, ACC_ECORRUPT, "settle: batch %llu: the ledger gave %zu amounts for one address",
                                        (unsigned long long)at, e->nlegs);
        memcpy(entry.address, c->address, ETH_ADDRESS_SIZE);
        entry.amount = e->legs[0].amount;
    }
    return c->fn(c->ud, &b, c->address ? &entry : NULL);
}

int settle_batches(ledger_t *l, const settle_list_opts_t *o, settle_batch_fn fn, void *ud, acc_err *err) {
    settle_list_opts_t all = {0};
    if (!o) o = &all;
    uint64_t before = 0; /* as a ledger seq: batch sequences and their postings' seqs grow together */
    if (o->before) {
        stored_t at;
        int rc = find_batch(l, o->before, false, &at, err);
        if (rc == ACC_OK) {
            before = at.seq;
        } else if (rc == ACC_ENOTFOUND) { /* past the last batch (or none yet): no bound */
            if (err) memset(err, 0, sizeof *err);
        } else {
            return rc;
        }
    }
    ledger_account_ref_t ref = {LEDGER_ACCOUNT_ADDRESS, NULL};
    char name[ETH_ADDRESS_TEXT_SIZE];
    if (o->address) {
        eth_address_to_text(o->address, name); /* the account's name: the address's EIP-55 form */
        ref.name = name;
    }
    list_ctx c = {.fn = fn, .ud = ud, .address = o->address};
    acc_err lerr = {0};
    int rc = ledger_settlements(l, o->address ? &ref : NULL, before, o->limit, list_posting, &c, &lerr);
    if (c.status != ACC_OK) {
        if (err) *err = c.err;
        return c.status;
    }
    if (rc != ACC_OK && lerr.code != ACC_OK && err) *err = lerr; /* the ledger's failure, not fn's */
    return rc;
}

/* ---------------------------------------------------------------- cutting */

int settle_accrued(ledger_t *l, uint64_t *total, acc_err *err) {
    /* Each batch settles exactly what its range earned, so what is accrued now is what the
     * postings after the last batch earned: no need to read every account. */
    stored_t last;
    int rc = read_stored(l, 0, false, &last, err);
    if (rc != ACC_OK && rc != ACC_ENOTFOUND) return rc;
    uint64_t first = rc == ACC_ENOTFOUND ? 1 : last.header.last_transfer + 1, cut;
    acc_err lerr = {0};
    if ((rc = ledger_last_seq(l, &cut, &lerr)) != ACC_OK) {
        if (err) *err = lerr;
        return rc;
    }
    *total = 0;
    if (cut < first) return ACC_OK;
    payees_t p;
    uint64_t taken, sum = 0;
    if ((rc = payees_init(&p, l, err)) != ACC_OK) return rc;
    rc = net_range(&p, first, cut, 0, &taken, err);
    for (size_t i = 0; rc == ACC_OK && i < p.cap; i++)
        if (p.slots[i].id && p.slots[i].is_payee && __builtin_add_overflow(sum, p.slots[i].amount, &sum))
            rc = acc_fail(err, ACC_ELIMIT, "settle: accrued amounts sum past 2^64-1");
    payees_free(&p);
    if (rc == ACC_OK) *total = sum;
    return rc;
}

static _Thread_local const uint64_t *sort_ids; /* for by_id_descending (qsort has no context) */

static int by_id_descending(const void *a, const void *b) {
    uint64_t x = sort_ids[*(const size_t *)a], y = sort_ids[*(const size_t *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

/* One attempt: *retry set when another cutter committed first. */
static int cut_once(ledger_t *l, const settle_cut_opts_t *o, settle_batch_t **out, bool *retry, acc_err *err) {
    *retry = false;
    *out = NULL;
    stored_t prev;
    int rc = read_stored(l, 0, false, &prev, err);
    bool first_batch = rc == ACC_ENOTFOUND;
    if (rc != ACC_OK && !first_batch) return rc;

    settle_batch_t *b = calloc(1, sizeof *b);
    if (!b) return acc_fail(err, ACC_ENOMEM, "settle: out of memory");
    b->sequence = first_batch ? 1 : prev.header.sequence + 1;
    if (!first_batch) memcpy(b->prev_hash, prev.header.digest, 32);
    b->first_transfer = first_batch ? 1 : prev.header.last_transfer + 1;
    b->chain_id = o->chain_id ? o->chain_id : first_batch ? 0 : prev.header.chain_id;
    if (o->contract)
        memcpy(b->contract, o->contract, ETH_ADDRESS_SIZE);
    else if (!first_batch)
        memcpy(b->contract, prev.header.contract, ETH_ADDRESS_SIZE);
    if (first_batch && (!o->chain_id || !o->contract)) {
        settle_batch_free(b);
        return acc_fail(err, ACC_EINVAL, "the first batch needs a chain id and the claim contract's address "
                                         "(--chain-id, --contract); later batches reuse the last ones");
    }

    uint64_t cut;
    acc_err lerr = {0};
    if ((rc = ledger_last_seq(l, &cut, &lerr)) != ACC_OK) {
        settle_batch_free(b);
        if (err) *err = lerr;
        return rc;
    }
    if (cut < b->first_transfer) { /* nothing committed since the last batch */
        settle_batch_free(b);
        return ACC_OK;
    }

    payees_t p;
    ledger_account_t **accounts = NULL;
    uint64_t *ids = NULL;
    size_t n = 0;
    uint64_t taken = 0;
    size_t max_entries = o->max_entries ? (size_t)o->max_entries : LEDGER_MAX_TRANSFERS;
    if (max_entries > LEDGER_MAX_TRANSFERS) max_entries = LEDGER_MAX_TRANSFERS;
    rc = payees_init(&p, l, err);
    if (rc == ACC_OK) rc = net_range(&p, b->first_transfer, cut, max_entries, &taken, err);
    if (rc == ACC_OK) rc = collect(&p, &b->entries, &accounts, &ids, &n, err);
    payees_free(&p);
    if (rc != ACC_OK || n == 0) { /* n == 0: postings since the last batch, but none paid a payee */
        free(accounts);
        free(ids);
        settle_batch_free(b);
        return rc;
    }
    b->last_transfer = taken;
    b->entry_count = n;
    b->cut_time = o->cut_time ? o->cut_time : (uint64_t)time(NULL);
    rc = settle_batch_commit_entries(b, err);
    if (rc == ACC_OK) rc = settle_batch_sign(b, o->key, err);

    /* The posting: the entries as settlement transfers, the signed header as its event. */
    acc_buf event = ACC_BUF_INIT;
    ledger_transfer_t *t = NULL;
    if (rc == ACC_OK) {
        json_t *h = NULL;
        rc = settle_header_json(b, &event, err);
        if (rc == ACC_OK) {
            /* The header, plus the links to the postings of batches sequence-1 and skip_to(sequence). */
            h = settle_json_load(event.data, event.len, err);
            uint64_t skip_seq = 0, skip = skip_to(b->sequence);
            if (skip && skip == prev.header.sequence) {
                skip_seq = prev.seq;
            } else if (skip) {
                stored_t at;
                rc = find_batch(l, skip, false, &at, err);
                skip_seq = at.seq;
            }
            if (rc == ACC_OK &&
                (!h || json_object_set_new(h, "prev_ledger_seq", json_integer((json_int_t)(first_batch ? 0 : prev.seq))) ||
                 json_object_set_new(h, "skip_ledger_seq", json_integer((json_int_t)skip_seq))))
                rc = acc_fail(err, ACC_ENOMEM, "settle: out of memory");
            acc_buf_reset(&event);
            char *text = rc == ACC_OK ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            if (rc == ACC_OK && !text) rc = acc_fail(err, ACC_ENOMEM, "settle: out of memory");
            if (text) acc_buf_puts(&event, text);
            free(text);
        }
        json_decref(h);
    }
    if (rc == ACC_OK) {
        t = malloc(n * sizeof *t);
        if (!t) rc = acc_fail(err, ACC_ENOMEM, "settle: out of memory for %zu transfers", n);
    }
    if (rc == ACC_OK) {
        /* In descending account id: the writer updates each account's row in the reverse of the
         * order it meets them, so the rows are written in id order, page after page, rather than
         * all over the table (for a batch of 100k payees, several times faster). */
        ledger_account_t *settled = ledger_system(l, LEDGER_SYSTEM_SETTLEMENT);
        size_t *order = malloc(n * sizeof *order);
        if (!order) rc = acc_fail(err, ACC_ENOMEM, "settle: out of memory for %zu transfers", n);
        for (size_t i = 0; order && i < n; i++) order[i] = i;
        if (order) {
            sort_ids = ids;
            qsort(order, n, sizeof *order, by_id_descending);
            for (size_t i = 0; i < n; i++)
                t[i] = (ledger_transfer_t){.debit = accounts[order[i]], .credit = settled,
                                           .amount = b->entries[order[i]].amount, .code = LEDGER_CODE_SETTLEMENT};
            free(order);
        }
    }
    if (rc == ACC_OK) {
        ledger_posting_t post = {.state = LEDGER_POSTED,
                                 .code = LEDGER_CODE_SETTLEMENT,
                                 .transfers = t,
                                 .ntransfers = n,
                                 .event = event.data,
                                 .event_len = event.len,
                                 .check_settlement = true,
                                 .after_settlement = first_batch ? 0 : prev.seq};
        /* The ledger checks each debit against the balance as this process last saw it, which
         * is stale for a payee whose earnings another process booked since: re-read those (only
         * those, so a server that booked them itself reads nothing). The cut point was read
         * before, so the re-read sees every credit the batch settles. */
        for (size_t i = 0; i < n; i++) {
            ledger_balance_t bal;
            if (ledger_balance(l, accounts[i], false, &bal, NULL) == ACC_OK && bal.available < b->entries[i].amount)
                ledger_balance(l, accounts[i], true, &bal, NULL);
        }
        /* Two ways to lose a race: the compare-and-set (another batch committed first), or, when
         * another batch is taking the same payees' amounts, the balance check, which counts that
         * batch while it is queued, before it commits. Both start over (settle_cut retries a few
         * times, and reports a shortfall if it stays). */
        ledger_id_new(&post.id);
        ledger_result_t res;
        acc_err serr = {0};
        rc = ledger_submit_wait(l, &post, &res, &serr);
        if (rc == ACC_EMISMATCH || rc == ACC_EFUNDS) *retry = true;
        if (rc != ACC_OK) {
            if (err) *err = serr;
            acc_err_prefix(err, "settle: committing batch %llu", (unsigned long long)b->sequence);
        } else {
            b->ledger_seq = res.seq;
        }
    }
    acc_buf_free(&event);
    free(t);
    free(accounts);
    free(ids);
    if (rc != ACC_OK) {
        settle_batch_free(b);
        return rc;
    }
    *out = b;
    return ACC_OK;
}

/* Cuts in one process run one at a time: two cutters of one process would both net the same
 * range, and the loser's balance check would count the winner's queued transfers as pending until
 * the winner commits. Cutters in other processes meet at the ledger's compare-and-set instead. */
static pthread_mutex_t cut_mu = PTHREAD_MUTEX_INITIALIZER;

int settle_cut(ledger_t *l, const settle_cut_opts_t *o, settle_batch_t **out, acc_err *err) {
    *out = NULL;
    if (!o || !o->key) return acc_fail(err, ACC_EINVAL, "settle: no signing key");
    pthread_mutex_lock(&cut_mu);
    int rc = ACC_OK;
    bool retry = false;
    for (int attempt = 0; attempt < CUT_ATTEMPTS; attempt++) {
        if (attempt) { /* let the batch that beat us commit; spread competing cutters apart */
            struct timespec ts = {0, (long)(1000000L << attempt) + (long)(ledger_now_ms() % 7) * 1000000L};
            nanosleep(&ts, NULL);
        }
        rc = cut_once(l, o, out, &retry, err);
        if (!retry) break;
    }
    pthread_mutex_unlock(&cut_mu);
    if (retry && rc == ACC_EMISMATCH)
        return acc_fail(err, ACC_EBUSY, "settle: other cuts kept committing first (%d attempts); cut again", CUT_ATTEMPTS);
    return rc; /* when retries ran out on a shortfall, err says whose */
}
