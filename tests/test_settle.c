/*
 * test_settle.c: settlement batches (meters/settle/settle.h) cut from a real ledger.
 *
 * A batch nets exactly the postings of its range per payee address, sorted, with a root, a digest
 * and a signature that hold; it books each payee's amount from accrued to settled; batches chain
 * (sequence, previous digest, transfer ranges that follow each other); the JSON round-trips; every
 * proof leads to the root; verify names each tampered field, entry, signature and link, and the
 * ledger re-derivation names a forged entry; a payee cap cuts early without skipping; concurrent
 * cutters never make two batches of one sequence; cutting while another process books never skips
 * or repeats a transfer (checked by summing); kill -9 in the middle of a cut leaves no batch or a
 * whole one. The claim contract and the independent cross-check are in test_settle_chain.c.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meters/eth/eip712.h"
#include "meters/eth/hex.h"
#include "meters/eth/keys.h"
#include "meters/ledger/ledger.h"
#include "meters/settle/internal.h"
#include "meters/settle/settle.h"
#include "tests/check.h"

static char dir[128];
static int db_counter;
static eth_key *host_key;
static const uint8_t contract[20] = {0xc0, 0x11, 0xec, 0x70, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
#define CHAIN_ID 31337

static const char *fresh_path(void) {
    static char path[256];
    snprintf(path, sizeof path, "%s/s%d.db", dir, ++db_counter);
    return path;
}

static ledger_t *open_at(const char *path) {
    ledger_t *l = NULL;
    acc_err err = {0};
    ledger_opts_t o = {.no_sync = true};
    int rc = ledger_open(path, &o, &l, &err);
    CHECK_MSG(rc == ACC_OK, "open %s: %s", path, err.msg);
    return l;
}

static ledger_account_t *account_of(ledger_t *l, ledger_account_kind_t kind, const char *name) {
    ledger_account_t *a = NULL;
    acc_err err = {0};
    CHECK_MSG(ledger_account(l, kind, name, &a, &err) == ACC_OK, "%s: %s", name, err.msg);
    return a;
}

/* The address account of a (reproducible) payee number. */
static void payee_address(unsigned k, uint8_t a[20]) {
    for (int i = 0; i < 20; i++) a[i] = (uint8_t)((k * 2654435761u) >> (i % 4 * 8)) ^ (uint8_t)(i * 37);
    a[0] = (uint8_t)(k >> 8);
    a[1] = (uint8_t)k;
}

static ledger_account_t *payee(ledger_t *l, unsigned k) {
    uint8_t a[20];
    char text[ETH_ADDRESS_TEXT_SIZE];
    payee_address(k, a);
    eth_address_to_text(a, text);
    return account_of(l, LEDGER_ACCOUNT_ADDRESS, text);
}

static int submit(ledger_t *l, ledger_posting_t *p) {
    ledger_id_new(&p->id);
    ledger_result_t res;
    acc_err err = {0};
    int rc = ledger_submit_wait(l, p, &res, &err);
    CHECK_MSG(rc == ACC_OK, "submit: %s", err.msg);
    return rc;
}

static ledger_account_t *funded_user(ledger_t *l, const char *name) {
    ledger_account_t *u = account_of(l, LEDGER_ACCOUNT_USER, name);
    ledger_transfer_t t = {ledger_system(l, LEDGER_SYSTEM_EXTERNAL), u, LEDGER_AMOUNT_MAX / 4, LEDGER_CODE_TOPUP};
    ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &t, .ntransfers = 1};
    submit(l, &p);
    return u;
}

/* One metered call: payer pays each payee its amount (a model call) and the operator 1. */
static int book(ledger_t *l, ledger_account_t *payer, ledger_account_t **payees, const uint64_t *amounts, size_t n) {
    ledger_transfer_t t[16];
    for (size_t i = 0; i < n; i++) t[i] = (ledger_transfer_t){payer, payees[i], amounts[i], LEDGER_CODE_MODEL_CALL};
    t[n] = (ledger_transfer_t){payer, ledger_system(l, LEDGER_SYSTEM_OPERATOR), 1, LEDGER_CODE_OPERATOR_FEE};
    ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_MODEL_CALL, .transfers = t, .ntransfers = n + 1,
                          .event = "usage", .event_len = 5};
    return submit(l, &p);
}

static settle_batch_t *cut(ledger_t *l, int with_domain, uint64_t max_entries) {
    settle_cut_opts_t o = {.key = host_key, .max_entries = max_entries};
    if (with_domain) {
        o.chain_id = CHAIN_ID;
        o.contract = contract;
    }
    settle_batch_t *b = NULL;
    acc_err err = {0};
    int rc = settle_cut(l, &o, &b, &err);
    CHECK_MSG(rc == ACC_OK, "cut: %s", err.msg);
    return b;
}

static void check_ledger(ledger_t *l) {
    acc_err err = {0};
    CHECK_MSG(ledger_check(l, NULL, NULL, NULL, &err) == ACC_OK, "ledger check: %s", err.msg);
}

static ledger_balance_t balance(ledger_t *l, ledger_account_t *a) {
    ledger_balance_t b = {0};
    ledger_balance(l, a, true, &b, NULL);
    return b;
}

static char *batch_json(const settle_batch_t *b) {
    acc_buf out = ACC_BUF_INIT;
    CHECK(settle_batch_json(b, &out, NULL) == ACC_OK);
    return acc_buf_take(&out, NULL);
}

typedef struct vresult {
    int rc;
    bool linked;
    acc_err err;
} vresult;

static vresult verify_text(const char *text, const settle_batch_t *prev, ledger_t *l) {
    vresult r = {0};
    settle_verify_opts_t o = {.prev = prev, .ledger = l};
    r.rc = settle_verify(text, strlen(text), &o, &r.linked, &r.err);
    return r;
}

/* ---------------------------------------------------------------- cutting */

static void test_cut_nets_signs_and_books(void) {
    ledger_t *l = open_at(fresh_path());
    ledger_account_t *u = funded_user(l, "alice");
    ledger_account_t *p[5];
    for (unsigned k = 0; k < 5; k++) p[k] = payee(l, k);
    uint64_t want[5] = {0};
    for (int call = 0; call < 40; call++) {
        ledger_account_t *who[3] = {p[call % 5], p[(call * 3 + 1) % 5], p[(call + 4) % 5 == call % 5 ? 0 : (call + 2) % 5]};
        if (who[2] == who[0] || who[2] == who[1]) who[2] = NULL;
        uint64_t amounts[3] = {100 + (uint64_t)call, 7, 1000};
        size_t n = who[2] ? 3 : 2;
        book(l, u, who, amounts, n);
        for (size_t i = 0; i < n; i++)
            for (unsigned k = 0; k < 5; k++)
                if (who[i] == p[k]) want[k] += amounts[i];
    }
    uint64_t last;
    CHECK(ledger_last_seq(l, &last, NULL) == ACC_OK && last == 41);
    uint64_t accrued = 0;
    CHECK(settle_accrued(l, &accrued, NULL) == ACC_OK);

    settle_batch_t *b = cut(l, 1, 0);
    if (!b) return;
    CHECK_EQ(b->sequence, 1);
    CHECK_EQ(b->first_transfer, 1);
    CHECK_EQ(b->last_transfer, 41);
    CHECK_EQ(b->entry_count, 5);
    CHECK_EQ(b->chain_id, CHAIN_ID);
    CHECK(memcmp(b->contract, contract, 20) == 0);
    static const uint8_t zero[32];
    CHECK(memcmp(b->prev_hash, zero, 32) == 0);
    uint64_t total = 0;
    for (unsigned i = 0; i < b->entry_count; i++) {
        total += b->entries[i].amount;
        if (i) CHECK(memcmp(b->entries[i - 1].address, b->entries[i].address, 20) < 0);
        for (unsigned k = 0; k < 5; k++) {
            uint8_t a[20];
            payee_address(k, a);
            if (memcmp(a, b->entries[i].address, 20) == 0) CHECK_EQ(b->entries[i].amount, want[k]);
        }
    }
    CHECK_EQ(b->total, total);
    CHECK_EQ(accrued, total);
    uint8_t signer[20], rec[20], digest[32];
    eth_key_address(host_key, signer);
    CHECK(memcmp(b->signer, signer, 20) == 0);
    CHECK(settle_batch_digest(b, digest, NULL) == ACC_OK && memcmp(digest, b->digest, 32) == 0);
    CHECK(eth_recover(b->digest, b->signature, rec, NULL) == ACC_OK && memcmp(rec, signer, 20) == 0);

    /* Booked: accrued to settled, the settlement account holds the total. */
    for (unsigned k = 0; k < 5; k++) {
        ledger_balance_t bal = balance(l, p[k]);
        CHECK_EQ(bal.earned, want[k]);
        CHECK_EQ(bal.settled, want[k]);
        CHECK_EQ(bal.accrued, 0);
    }
    CHECK_EQ(balance(l, ledger_system(l, LEDGER_SYSTEM_SETTLEMENT)).credits, total);
    CHECK(settle_accrued(l, &accrued, NULL) == ACC_OK && accrued == 0);
    CHECK(b->ledger_seq == 42);
    check_ledger(l);

    /* Read back: the same batch, field for field. */
    settle_batch_t *got = NULL;
    acc_err err = {0};
    CHECK_MSG(settle_batch_get(l, 1, &got, &err) == ACC_OK, "%s", err.msg);
    char *a = batch_json(b), *c = got ? batch_json(got) : NULL;
    CHECK_STREQ(c, a);
    vresult v = verify_text(a, NULL, l);
    CHECK_MSG(v.rc == ACC_OK && v.linked, "verify: %s", v.err.msg);
    free(a);
    free(c);
    settle_batch_free(got);
    settle_batch_free(b);
    ledger_close(l);
}

static void test_nothing_to_settle(void) {
    ledger_t *l = open_at(fresh_path());
    settle_batch_t *b = cut(l, 1, 0);
    CHECK(b == NULL); /* an empty ledger */
    ledger_account_t *u = funded_user(l, "bob");
    b = cut(l, 1, 0);
    CHECK(b == NULL); /* a top-up pays no payee */
    ledger_account_t *p = payee(l, 1);
    uint64_t amount = 5;
    book(l, u, &p, &amount, 1);
    b = cut(l, 1, 0);
    CHECK(b && b->first_transfer == 1 && b->last_transfer == 2 && b->total == 5); /* the top-up, the call */
    settle_batch_free(b);
    b = cut(l, 0, 0);
    CHECK(b == NULL); /* nothing since: the batch's own posting pays nobody */
    acc_err err = {0};
    settle_batch_t *none;
    CHECK(settle_batch_get(l, 2, &none, &err) == ACC_ENOTFOUND);
    CHECK_CONTAINS(err.msg, "the last batch is 1");
    ledger_close(l);
}

static void test_first_batch_needs_chain_and_contract(void) {
    ledger_t *l = open_at(fresh_path());
    ledger_account_t *u = funded_user(l, "carol"), *p = payee(l, 2);
    uint64_t amount = 9;
    book(l, u, &p, &amount, 1);
    settle_cut_opts_t o = {.key = host_key, .chain_id = CHAIN_ID};
    settle_batch_t *b = NULL;
    acc_err err = {0};
    CHECK(settle_cut(l, &o, &b, &err) == ACC_EINVAL && b == NULL);
    CHECK_CONTAINS(err.msg, "--contract");
    uint64_t last;
    CHECK(ledger_last_seq(l, &last, NULL) == ACC_OK && last == 2); /* nothing written */
    o = (settle_cut_opts_t){0};
    CHECK(settle_cut(l, &o, &b, &err) == ACC_EINVAL);
    ledger_close(l);
}

static int add_accrued(void *ud, ledger_account_t *a, const ledger_balance_t *b) {
    if (ledger_account_kind(a) == LEDGER_ACCOUNT_ADDRESS) *(uint64_t *)ud += b->accrued;
    return ACC_OK;
}

typedef struct seen_list {
    uint64_t s[8];
    size_t n;
} seen_list;

static int list_sequences(void *ud, const settle_batch_t *b, const settle_entry_t *e) {
    seen_list *c = ud;
    if (b->entries || e || c->n == 8) return ACC_EINVAL; /* listed without entries */
    c->s[c->n++] = b->sequence;
    return ACC_OK;
}

static void test_batches_chain(void) {
    ledger_t *l = open_at(fresh_path());
    ledger_account_t *u = funded_user(l, "dave");
    ledger_account_t *p[4];
    for (unsigned k = 0; k < 4; k++) p[k] = payee(l, 10 + k);
    uint64_t amounts[2] = {300, 20};
    book(l, u, (ledger_account_t *[]){p[0], p[1]}, amounts, 2);
    settle_batch_t *b1 = cut(l, 1, 0);
    book(l, u, (ledger_account_t *[]){p[2], p[3]}, amounts, 2);
    book(l, u, (ledger_account_t *[]){p[1], p[3]}, amounts, 2);
    uint64_t accrued = 0, by_accounts = 0;
    CHECK(settle_accrued(l, &accrued, NULL) == ACC_OK);
    CHECK(ledger_accounts(l, add_accrued, &by_accounts, NULL) == ACC_OK);
    CHECK_EQ(accrued, 640);
    CHECK_EQ(accrued, by_accounts);
    settle_batch_t *b2 = cut(l, 0, 0); /* chain id and contract from batch 1 */
    if (!b1 || !b2) return;
    CHECK_EQ(b2->sequence, 2);
    CHECK(memcmp(b2->prev_hash, b1->digest, 32) == 0);
    CHECK_EQ(b2->first_transfer, b1->last_transfer + 1);
    CHECK_EQ(b2->last_transfer, b1->ledger_seq + 2); /* batch 1's own posting is in batch 2's range */
    CHECK_EQ(b2->entry_count, 3);                    /* p1, p2, p3: p0 earned nothing since */
    CHECK_EQ(b2->total, 300 + 20 + 300 + 20);
    CHECK_EQ(b2->chain_id, CHAIN_ID);
    CHECK(memcmp(b2->contract, contract, 20) == 0);
    CHECK_EQ(balance(l, p[1]).settled, 20 + 300);
    CHECK_EQ(balance(l, p[3]).settled, 20 + 20);

    /* A new contract from batch 3 on. */
    uint8_t other[20] = {0xaa};
    book(l, u, (ledger_account_t *[]){p[0]}, amounts, 1);
    settle_cut_opts_t o = {.key = host_key, .chain_id = 10, .contract = other};
    settle_batch_t *b3 = NULL;
    CHECK(settle_cut(l, &o, &b3, NULL) == ACC_OK && b3 && b3->chain_id == 10 && memcmp(b3->contract, other, 20) == 0);

    /* Listed newest first; each read back whole; each verifies against the ledger. */
    seen_list seen = {0};
    CHECK(settle_batches(l, NULL, list_sequences, &seen, NULL) == ACC_OK);
    CHECK(seen.n == 3 && seen.s[0] == 3 && seen.s[1] == 2 && seen.s[2] == 1);
    settle_batch_t *all[3] = {b1, b2, b3};
    for (int i = 0; i < 3; i++) {
        settle_batch_t *got = NULL;
        CHECK(settle_batch_get(l, (uint64_t)i + 1, &got, NULL) == ACC_OK);
        char *a = batch_json(all[i]), *c = got ? batch_json(got) : NULL;
        CHECK_STREQ(c, a);
        vresult v = verify_text(a, NULL, l);
        CHECK_MSG(v.rc == ACC_OK && v.linked, "verify batch %d: %s", i + 1, v.err.msg);
        v = verify_text(a, NULL, NULL); /* no ledger: all but the link for 2 and 3 */
        CHECK(v.rc == ACC_OK && v.linked == (i == 0));
        if (i > 0) {
            v = verify_text(a, all[i - 1], NULL);
            CHECK_MSG(v.rc == ACC_OK && v.linked, "verify batch %d with its predecessor: %s", i + 1, v.err.msg);
        }
        free(a);
        free(c);
        settle_batch_free(got);
    }
    settle_batch_t *last = NULL;
    CHECK(settle_batch_get(l, 0, &last, NULL) == ACC_OK && last && last->sequence == 3);
    settle_batch_free(last);
    check_ledger(l);
    settle_batch_free(b1);
    settle_batch_free(b2);
    settle_batch_free(b3);
    ledger_close(l);
}

/* Any batch of a long chain is found (through the skip links), with the right neighbours. */
static void test_long_chain_lookup(void) {
    ledger_t *l = open_at(fresh_path());
    ledger_account_t *u = funded_user(l, "june"), *p = payee(l, 99);
    uint8_t digests[70][32];
    for (int k = 1; k <= 69; k++) {
        book(l, u, &p, (uint64_t[]){(uint64_t)k}, 1);
        settle_batch_t *b = cut(l, k == 1, 0);
        if (!b) return;
        memcpy(digests[k], b->digest, 32);
        settle_batch_free(b);
    }
    int all = 1;
    for (int k = 69; k >= 1; k--) {
        settle_batch_t *b = NULL;
        acc_err err = {0};
        if (settle_batch_get(l, (uint64_t)k, &b, &err) != ACC_OK) {
            CHECK_MSG(0, "batch %d: %s", k, err.msg);
            all = 0;
            continue;
        }
        if (b->sequence != (uint64_t)k || memcmp(b->digest, digests[k], 32) != 0 || b->total != (uint64_t)k ||
            (k > 1 && memcmp(b->prev_hash, digests[k - 1], 32) != 0))
            all = 0;
        settle_batch_free(b);
    }
    CHECK(all);
    check_ledger(l);
    ledger_close(l);
}

/* ---------------------------------------------------------------- listing: pages, an address's */

static void tamper(const char *path, const char *sql) {
    CHECK(test_sql_exec(path, sql) == 0);
}

typedef struct listed {
    uint64_t seq[16], amount[16];
    size_t n;
    int bad;
} listed_t;

static int take_listed(void *ud, const settle_batch_t *b, const settle_entry_t *e) {
    listed_t *c = ud;
    if (b->entries || c->n == 16) return ACC_EINVAL;
    c->seq[c->n] = b->sequence;
    c->amount[c->n++] = e ? e->amount : 0;
    return ACC_OK;
}

/* "12:24 9:18" for the sequences (and amounts, when the list is an address's). */
static const char *list_text(ledger_t *l, const uint8_t *address, uint64_t before, size_t limit, int *rc_out) {
    static char text[256];
    listed_t c = {0};
    acc_err err = {0};
    settle_list_opts_t o = {.address = address, .before = before, .limit = limit};
    int rc = settle_batches(l, &o, take_listed, &c, &err);
    if (rc_out) *rc_out = rc;
    else CHECK_MSG(rc == ACC_OK, "list: %s", err.msg);
    size_t len = 0;
    text[0] = 0;
    for (size_t i = 0; i < c.n; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, address ? "%s%llu:%llu" : "%s%llu", i ? " " : "",
                                (unsigned long long)c.seq[i], (unsigned long long)c.amount[i]);
    return text;
}

static void check_address_lists(ledger_t *l, const uint8_t *a, const uint8_t *c, const uint8_t *stranger) {
    CHECK_STREQ(list_text(l, a, 0, 0, NULL), "12:24 9:18 6:12 3:6");
    CHECK_STREQ(list_text(l, a, 0, 2, NULL), "12:24 9:18");
    CHECK_STREQ(list_text(l, a, 9, 2, NULL), "6:12 3:6"); /* the next page: below the last listed */
    CHECK_STREQ(list_text(l, a, 3, 0, NULL), "");
    CHECK_STREQ(list_text(l, a, 99, 1, NULL), "12:24"); /* past the last batch: no bound */
    CHECK_STREQ(list_text(l, c, 0, 0, NULL), "5:30"); /* paid twice in one batch: one entry */
    CHECK_STREQ(list_text(l, stranger, 0, 0, NULL), "");
}

/* Batches listed a page at a time, newest first, and the batches that owe one address, with its
 * amount in each, read from the ledger's index of settlements by account (schema 2); a ledger
 * from before that index answers the same read-only, and is upgraded in place when opened to
 * write. */
static void test_batches_paged_and_by_address(void) {
    const char *path = fresh_path();
    ledger_t *l = open_at(path);
    ledger_account_t *u = funded_user(l, "kim"), *pa = payee(l, 300), *pb = payee(l, 301), *pc = payee(l, 302);
    uint8_t a[20], c[20], stranger[20];
    payee_address(300, a);
    payee_address(302, c);
    payee_address(303, stranger);
    uint64_t batch1_posting = 0;
    for (uint64_t k = 1; k <= 12; k++) {
        book(l, u, &pb, (uint64_t[]){1000 + k}, 1); /* b is in every batch */
        if (k % 3 == 0) book(l, u, &pa, (uint64_t[]){2 * k}, 1);
        if (k == 5) book(l, u, (ledger_account_t *[]){pc, pb}, (uint64_t[]){10, 1}, 2);
        if (k == 5) book(l, u, &pc, (uint64_t[]){20}, 1);
        settle_batch_t *b = cut(l, k == 1, 0);
        if (!b) return;
        if (k == 1) batch1_posting = b->ledger_seq;
        settle_batch_free(b);
    }
    CHECK_STREQ(list_text(l, NULL, 0, 0, NULL), "12 11 10 9 8 7 6 5 4 3 2 1");
    CHECK_STREQ(list_text(l, NULL, 0, 5, NULL), "12 11 10 9 8");
    CHECK_STREQ(list_text(l, NULL, 8, 5, NULL), "7 6 5 4 3");
    CHECK_STREQ(list_text(l, NULL, 3, 5, NULL), "2 1");
    CHECK_STREQ(list_text(l, NULL, 1, 0, NULL), "");
    check_address_lists(l, a, c, stranger);
    ledger_close(l);

    /* An address's list reads only its batches: batch 1 (b's alone) broken does not stop a's,
     * while the whole list names it. */
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE ledger_postings SET event = CAST('{}' AS BLOB) WHERE seq = %llu",
             (unsigned long long)batch1_posting);
    tamper(path, sql);
    ledger_t *r;
    CHECK(ledger_open(path, &(ledger_opts_t){.readonly = true}, &r, NULL) == ACC_OK);
    check_address_lists(r, a, c, stranger);
    int rc = ACC_OK;
    list_text(r, NULL, 0, 0, &rc);
    CHECK(rc == ACC_ECORRUPT);
    ledger_close(r);

    /* A ledger of schema 1 (no index): read-only, the same answers from the batches' transfers;
     * opened to write, upgraded to schema 2 with every batch indexed. */
    tamper(path, "DROP TABLE ledger_settled; UPDATE ledger_meta SET value = 1 WHERE key = 'schema'");
    CHECK(ledger_open(path, &(ledger_opts_t){.readonly = true}, &r, NULL) == ACC_OK);
    check_address_lists(r, a, c, stranger);
    ledger_close(r);
    l = open_at(path);
    check_address_lists(l, a, c, stranger);
    check_ledger(l);
    ledger_close(l);
    sqlite3 *db;
    sqlite3_stmt *st;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "SELECT (SELECT value FROM ledger_meta WHERE key = 'schema'), count(*), sum(amount) "
                                 "FROM ledger_settled", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    /* 12 entries for b, 4 for a, 1 for c */
    CHECK_MSG(sqlite3_column_int(st, 0) == 2 && sqlite3_column_int(st, 1) == 17 &&
                  sqlite3_column_int64(st, 2) == (1001 + 1012) * 6 + 1 + 60 + 30,
              "schema %d, %d rows, %lld in all", sqlite3_column_int(st, 0), sqlite3_column_int(st, 1),
              (long long)sqlite3_column_int64(st, 2));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_max_entries_cuts_early_and_skips_nothing(void) {
    ledger_t *l = open_at(fresh_path());
    ledger_account_t *u = funded_user(l, "erin");
    ledger_account_t *p[10];
    for (unsigned k = 0; k < 10; k++) p[k] = payee(l, 100 + k);
    /* Ten calls, each paying two payees: k and k+1. */
    for (unsigned k = 0; k < 9; k++) book(l, u, (ledger_account_t *[]){p[k], p[k + 1]}, (uint64_t[]){10, 1}, 2);
    uint64_t sum = 0, expect_first = 1, n = 0;
    settle_batch_t *b;
    while ((b = cut(l, n == 0, 3)) != NULL) {
        CHECK(b->entry_count <= 3);
        CHECK_EQ(b->first_transfer, expect_first);
        expect_first = b->last_transfer + 1;
        sum += b->total;
        n++;
        settle_batch_free(b);
    }
    CHECK_EQ(sum, 9 * 11);
    CHECK(n >= 4);
    for (unsigned k = 0; k < 10; k++) CHECK_EQ(balance(l, p[k]).accrued, 0);
    /* A posting paying more payees than the cap cannot be cut at all. */
    ledger_account_t *four[4] = {p[0], p[1], p[2], p[3]};
    book(l, u, four, (uint64_t[]){1, 1, 1, 1}, 4);
    settle_cut_opts_t o = {.key = host_key, .max_entries = 3};
    acc_err err = {0};
    CHECK(settle_cut(l, &o, &b, &err) == ACC_ELIMIT && b == NULL);
    CHECK_CONTAINS(err.msg, "pays 4 addresses");
    check_ledger(l);
    ledger_close(l);
}

/* ---------------------------------------------------------------- JSON, proofs, verify */

static settle_batch_t *sample_batch(ledger_t **lp, unsigned payees) {
    ledger_t *l = open_at(fresh_path());
    ledger_account_t *u = funded_user(l, "fred");
    for (unsigned k = 0; k < payees; k++) {
        ledger_account_t *p = payee(l, 1000 + k);
        book(l, u, &p, (uint64_t[]){1000 + k * 7}, 1);
    }
    *lp = l;
    return cut(l, 1, 0);
}

static void test_json_round_trip_and_proofs(void) {
    ledger_t *l;
    settle_batch_t *b = sample_batch(&l, 37);
    if (!b) return;
    char *text = batch_json(b);
    settle_batch_t *back = NULL;
    acc_err err = {0};
    CHECK_MSG(settle_batch_parse(text, strlen(text), &back, &err) == ACC_OK, "%s", err.msg);
    if (back) {
        back->ledger_seq = b->ledger_seq;
        char *again = batch_json(back);
        CHECK_STREQ(again, text);
        free(again);
    }
    /* The typed data is what eip712 digests to the batch's digest. */
    json_t *o = json_loads(text, 0, NULL);
    char *td = json_dumps(json_object_get(o, "typed_data"), JSON_COMPACT);
    uint8_t d[32];
    CHECK(td && eip712_digest_json(td, strlen(td), d, NULL) == ACC_OK && memcmp(d, b->digest, 32) == 0);
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(o, "typed_data"), "primaryType")), "Batch");
    free(td);
    json_decref(o);

    merkle_tree *tree = NULL;
    CHECK(settle_batch_tree(b, &tree, NULL) == ACC_OK);
    int all_ok = 1;
    for (unsigned i = 0; tree && i < b->entry_count; i++) {
        acc_buf out = ACC_BUF_INIT;
        if (settle_proof_json(b, tree, b->entries[i].address, &out, NULL) != ACC_OK) {
            all_ok = 0;
            continue;
        }
        json_t *p = json_loads(out.data, 0, NULL);
        uint8_t leaf[32], proof[32][32];
        size_t n = json_array_size(json_object_get(p, "proof"));
        hex_parse0x(json_string_value(json_object_get(p, "leaf")), 66, leaf, 32, NULL);
        for (size_t k = 0; k < n && k < 32; k++)
            hex_parse0x(json_string_value(json_array_get(json_object_get(p, "proof"), k)), 66, proof[k], 32, NULL);
        uint64_t amount = 0;
        settle_json_u64(json_object_get(p, "amount"), &amount);
        if (merkle_verify(b->root, leaf, (const uint8_t (*)[32])proof, n, NULL) != ACC_OK || amount != b->entries[i].amount)
            all_ok = 0;
        json_decref(p);
        acc_buf_free(&out);
    }
    CHECK(all_ok);
    uint8_t stranger[20] = {1, 2, 3};
    acc_buf out = ACC_BUF_INIT;
    CHECK(settle_proof_json(b, tree, stranger, &out, &err) == ACC_ENOTFOUND);
    CHECK_CONTAINS(err.msg, "no entry for");
    acc_buf_free(&out);
    merkle_free(tree);
    settle_batch_free(back);
    free(text);
    settle_batch_free(b);
    ledger_close(l);
}

/* Sets a value inside a batch's JSON text at a path like "total", "entries/2/1" or
 * "typed_data/message/total". Returns the new text (caller frees). */
static char *with(const char *text, const char *path, json_t *value) {
    json_t *root = json_loads(text, 0, NULL), *at = root;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save, *part = strtok_r(buf, "/", &save), *next;
    while ((next = strtok_r(NULL, "/", &save)) != NULL) {
        at = json_is_array(at) ? json_array_get(at, (size_t)atoi(part)) : json_object_get(at, part);
        part = next;
    }
    if (json_is_array(at))
        json_array_set_new(at, (size_t)atoi(part), value);
    else if (value)
        json_object_set_new(at, part, value);
    else
        json_object_del(at, part);
    char *out = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return out;
}

static json_t *hexv(const uint8_t *d, size_t n) {
    char t[200];
    hex_encode0x(d, n, t);
    return json_string(t);
}

static json_t *addrv(const uint8_t a[20]) {
    char t[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(a, t);
    return json_string(t);
}

static void expect_failure(const char *name, const char *text, ledger_t *l, const settle_batch_t *prev, int code,
                           const char *want) {
    vresult v = verify_text(text, prev, l);
    CHECK_MSG(v.rc == code && strstr(v.err.msg, want), "%s: got %d \"%s\", want %d \"%s\"", name, v.rc, v.err.msg, code,
              want);
}

static void test_verify_names_each_tampering(void) {
    ledger_t *l;
    settle_batch_t *b = sample_batch(&l, 12);
    if (!b) return;
    char *text = batch_json(b);
    CHECK(verify_text(text, NULL, l).rc == ACC_OK);

    uint8_t other_hash[32], other_addr[20] = {0x42};
    memset(other_hash, 0x5a, 32);
    uint8_t sig[65];
    memcpy(sig, b->signature, 65);
    sig[10] ^= 1;
    uint8_t between[20];
    memcpy(between, b->entries[4].address, 20);
    between[19] ^= 1; /* still between entries 3 and 5 */
    struct {
        const char *path;
        json_t *value;
        int code;
        const char *want;
    } cases[] = {
        {"sequence", json_integer(2), ACC_EMISMATCH, "typed_data.message.sequence: 1, but the batch's fields give 2"},
        {"prev_hash", hexv(other_hash, 32), ACC_EMISMATCH, "typed_data.message.prevHash"},
        {"first_transfer", json_integer(2), ACC_EMISMATCH, "typed_data.message.firstTransfer"},
        {"last_transfer", json_integer(999), ACC_EMISMATCH, "typed_data.message.lastTransfer"},
        {"entry_count", json_integer(11), ACC_EMISMATCH, "entry_count: 11, but the batch lists 12 entries"},
        {"total", json_string("1"), ACC_EMISMATCH, "total: 1, but the entries sum to"},
        {"root", hexv(other_hash, 32), ACC_EMISMATCH, "root: the entries give"},
        {"cut_time", json_integer(5), ACC_EMISMATCH, "typed_data.message.cutTime"},
        {"chain_id", json_integer(1), ACC_EMISMATCH, "typed_data.domain.chainId: 31337, but the batch's fields give 1"},
        {"verifying_contract", addrv(other_addr), ACC_EMISMATCH, "typed_data.domain.verifyingContract"},
        {"signer", addrv(other_addr), ACC_EBADSIG, "signature: recovers to"},
        {"digest", hexv(other_hash, 32), ACC_EMISMATCH, "digest: the fields give"},
        {"signature", hexv(sig, 65), ACC_EBADSIG, "signature:"},
        {"entries/3/1", json_string("1"), ACC_EMISMATCH, "total: "},
        {"entries/4/0", addrv(between), ACC_EMISMATCH, "root: the entries give"},
        {"entries/4/0", addrv(b->entries[5].address), ACC_EMISMATCH, "entries[5]: "},
        {"entries/4/0", addrv(b->entries[9].address), ACC_EMISMATCH, "is not in ascending address order"},
        {"entries/4/1", json_string("0"), ACC_EMISMATCH, "entries[4]: amount is zero"},
        {"typed_data/message/total", json_string("7"), ACC_EMISMATCH, "typed_data.message.total: 7"},
        {"typed_data/domain/chainId", json_string("0x7a6a"), ACC_EMISMATCH, "typed_data.domain.chainId: 31338"},
        {"typed_data/domain/name", json_string("other"), ACC_EMISMATCH, "typed_data.domain.name"},
        {"typed_data/primaryType", json_string("EIP712Domain"), ACC_EMISMATCH, "typed_data.primaryType"},
        {"typed_data/types/Batch/0/type", json_string("uint256"), ACC_EMISMATCH, "typed_data.types"},
        {"signature", NULL, ACC_EINVAL, "signature: missing"},
        {"root", json_string("0x1234"), ACC_EINVAL, "root: not 0x followed by 32 hex bytes"},
        {"entries/2", json_string("x"), ACC_EINVAL, "entries[2]: not an [address, amount] pair"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = with(text, cases[i].path, cases[i].value);
        char name[64];
        snprintf(name, sizeof name, "case %zu (%s)", i, cases[i].path);
        expect_failure(name, t, NULL, NULL, cases[i].code, cases[i].want);
        free(t);
    }
    /* Another tool's spelling of the same typed data (a hex chain id, a numeric total) holds. */
    char *t0 = with(text, "typed_data/domain/chainId", json_string("0x7a69"));
    char *t1 = with(t0, "typed_data/message/total", json_integer((json_int_t)b->total));
    vresult same = verify_text(t1, NULL, l);
    CHECK_MSG(same.rc == ACC_OK, "%s", same.err.msg);
    free(t0);
    free(t1);
    /* An entry taken out: the count says so first. */
    json_t *root = json_loads(text, 0, NULL);
    json_array_remove(json_object_get(root, "entries"), 3);
    char *t = json_dumps(root, 0);
    expect_failure("entry removed", t, NULL, NULL, ACC_EMISMATCH, "entry_count: 12, but the batch lists 11");
    free(t);
    json_decref(root);
    expect_failure("not JSON", "{\"sequence\":", NULL, NULL, ACC_EINVAL, "not JSON");
    free(text);

    /* A forger who moves money between entries and fixes up every derived field and the digest
     * still needs the host's key. */
    settle_batch_t f = *b;
    f.entries = malloc(b->entry_count * sizeof *f.entries);
    memcpy(f.entries, b->entries, b->entry_count * sizeof *f.entries);
    f.entries[0].amount += 5;
    f.entries[1].amount -= 5;
    CHECK(settle_batch_commit_entries(&f, NULL) == ACC_OK);
    CHECK(settle_batch_digest(&f, f.digest, NULL) == ACC_OK);
    t = batch_json(&f);
    expect_failure("forged entries, old signature", t, NULL, NULL, ACC_EBADSIG, "signature: recovers to");
    free(t);
    /* Signed by another key, naming it as signer: the file holds together; the ledger does not. */
    eth_key *mallory;
    uint8_t secret[32];
    memset(secret, 0x33, 32);
    eth_key_from_secret(&mallory, secret, NULL);
    CHECK(settle_batch_sign(&f, mallory, NULL) == ACC_OK);
    t = batch_json(&f);
    CHECK(verify_text(t, NULL, NULL).rc == ACC_OK);
    char a0[ETH_ADDRESS_TEXT_SIZE], want[200];
    eth_address_to_text(f.entries[0].address, a0);
    snprintf(want, sizeof want, "ledger: %s earned %llu in transfers 1..%llu, the batch says %llu", a0,
             (unsigned long long)b->entries[0].amount, (unsigned long long)b->last_transfer,
             (unsigned long long)f.entries[0].amount);
    expect_failure("forged entries, another key, with the ledger", t, l, NULL, ACC_EMISMATCH, want);
    free(t);
    /* Even the host's own key cannot make the ledger say otherwise. */
    CHECK(settle_batch_sign(&f, host_key, NULL) == ACC_OK);
    t = batch_json(&f);
    CHECK(verify_text(t, NULL, NULL).rc == ACC_OK);
    expect_failure("forged entries, the host's key, with the ledger", t, l, NULL, ACC_EMISMATCH, want);
    free(t);
    /* The same entries, re-cut at another time and re-signed: not the batch the ledger stored. */
    memcpy(f.entries, b->entries, b->entry_count * sizeof *f.entries);
    CHECK(settle_batch_commit_entries(&f, NULL) == ACC_OK);
    f.cut_time += 1;
    CHECK(settle_batch_sign(&f, host_key, NULL) == ACC_OK);
    t = batch_json(&f);
    expect_failure("re-signed copy", t, l, NULL, ACC_EMISMATCH, "in the database has digest");
    free(t);
    /* A batch the ledger does not have. */
    f.cut_time -= 1;
    f.sequence = 2;
    memcpy(f.prev_hash, b->digest, 32);
    f.first_transfer = b->last_transfer + 1;
    f.last_transfer = b->ledger_seq;
    CHECK(settle_batch_sign(&f, host_key, NULL) == ACC_OK);
    t = batch_json(&f);
    expect_failure("batch not in the ledger", t, l, NULL, ACC_EMISMATCH, "ledger: 0x"); /* its range paid nobody */
    free(t);
    eth_key_free(mallory);
    free(f.entries);
    settle_batch_free(b);
    ledger_close(l);
}

static void test_verify_names_a_broken_link(void) {
    ledger_t *l = open_at(fresh_path());
    ledger_account_t *u = funded_user(l, "gina"), *p = payee(l, 7);
    book(l, u, &p, (uint64_t[]){50}, 1);
    settle_batch_t *b1 = cut(l, 1, 0);
    book(l, u, &p, (uint64_t[]){60}, 1);
    settle_batch_t *b2 = cut(l, 0, 0);
    if (!b1 || !b2) return;
    settle_batch_t f = *b2;
    f.entries = malloc(f.entry_count * sizeof *f.entries);
    memcpy(f.entries, b2->entries, f.entry_count * sizeof *f.entries);
    struct {
        const char *name;
        void (*edit)(settle_batch_t *);
        const char *want;
    } cases[] = {
        {"prev_hash", NULL, "link: prev_hash"},
        {"first_transfer", NULL, "link: first_transfer"},
        {"sequence", NULL, "link: sequence 3 does not follow batch 1"},
    };
    for (int i = 0; i < 3; i++) {
        settle_batch_t g = f;
        if (i == 0) g.prev_hash[5] ^= 1;
        if (i == 1) g.first_transfer += 1;
        if (i == 2) g.sequence = 3;
        CHECK(settle_batch_sign(&g, host_key, NULL) == ACC_OK);
        char *t = batch_json(&g);
        expect_failure(cases[i].name, t, NULL, b1, ACC_EMISMATCH, cases[i].want);
        if (i < 2) expect_failure(cases[i].name, t, l, NULL, ACC_EMISMATCH, cases[i].want);
        free(t);
    }
    /* Batch 1 must start the chain. */
    settle_batch_t g = *b1;
    g.first_transfer = 2;
    CHECK(settle_batch_sign(&g, host_key, NULL) == ACC_OK);
    char *t = batch_json(&g);
    expect_failure("batch 1 from transfer 2", t, NULL, NULL, ACC_EMISMATCH, "link: batch 1 must start at transfer 1");
    free(t);
    free(f.entries);
    settle_batch_free(b1);
    settle_batch_free(b2);
    ledger_close(l);
}

/* ---------------------------------------------------------------- concurrency and crashes */

typedef struct cutter {
    ledger_t *l;
    int batches;
    uint64_t total;
    int failures;
} cutter_t;

static void *cut_loop(void *arg) {
    cutter_t *c = arg;
    for (int i = 0; i < 30; i++) {
        settle_cut_opts_t o = {.key = host_key, .chain_id = CHAIN_ID, .contract = contract};
        settle_batch_t *b = NULL;
        acc_err err = {0};
        if (settle_cut(c->l, &o, &b, &err) != ACC_OK) {
            fprintf(stderr, "cut: %s\n", err.msg);
            c->failures++;
        } else if (b) {
            c->batches++;
            c->total += b->total;
            settle_batch_free(b);
        }
        usleep(2000);
    }
    return NULL;
}

typedef struct chain_sum {
    uint64_t total, expect_first, expect_seq, n;
    int contiguous;
} chain_sum;

static int sum_chain(void *ud, const settle_batch_t *b, const settle_entry_t *e) {
    (void)e;
    chain_sum *s = ud; /* newest first */
    if (s->n && (b->last_transfer + 1 != s->expect_first || b->sequence + 1 != s->expect_seq)) s->contiguous = 0;
    s->expect_first = b->first_transfer;
    s->expect_seq = b->sequence;
    s->total += b->total;
    s->n++;
    return ACC_OK;
}

typedef struct earned_sum {
    uint64_t earned, settled, accrued;
} earned_sum;

static int sum_earned(void *ud, ledger_account_t *a, const ledger_balance_t *b) {
    earned_sum *s = ud;
    if (ledger_account_kind(a) != LEDGER_ACCOUNT_ADDRESS) return ACC_OK;
    s->earned += b->earned;
    s->settled += b->settled;
    s->accrued += b->accrued;
    return ACC_OK;
}

/* After everything is cut: the chain is contiguous from transfer 1, its totals add up to what the
 * payees earned, nothing is still accrued, and every batch verifies against the ledger. */
static void check_by_summing(ledger_t *l, const char *what) {
    chain_sum cs = {.contiguous = 1};
    CHECK(settle_batches(l, NULL, sum_chain, &cs, NULL) == ACC_OK);
    earned_sum es = {0};
    CHECK(ledger_accounts(l, sum_earned, &es, NULL) == ACC_OK);
    CHECK_MSG(cs.contiguous && (cs.n == 0 || (cs.expect_first == 1 && cs.expect_seq == 1)), "%s: batches not contiguous",
              what);
    uint64_t accrued = 1;
    CHECK(settle_accrued(l, &accrued, NULL) == ACC_OK && accrued == 0);
    CHECK_MSG(cs.total == es.earned && es.settled == es.earned && es.accrued == 0,
              "%s: %llu batches total %llu; payees earned %llu, settled %llu, accrued %llu", what,
              (unsigned long long)cs.n, (unsigned long long)cs.total, (unsigned long long)es.earned,
              (unsigned long long)es.settled, (unsigned long long)es.accrued);
    for (uint64_t s = 1; s <= cs.n; s++) {
        settle_batch_t *b = NULL;
        acc_err err = {0};
        if (settle_batch_get(l, s, &b, &err) != ACC_OK) {
            CHECK_MSG(0, "%s: batch %llu: %s", what, (unsigned long long)s, err.msg);
            continue;
        }
        char *t = batch_json(b);
        vresult v = verify_text(t, NULL, l);
        CHECK_MSG(v.rc == ACC_OK, "%s: batch %llu: %s", what, (unsigned long long)s, v.err.msg);
        free(t);
        settle_batch_free(b);
    }
    check_ledger(l);
}

static void test_concurrent_cutters_make_one_chain(void) {
    ledger_t *l = open_at(fresh_path());
    ledger_account_t *u = funded_user(l, "hank");
    ledger_account_t *p[50];
    for (unsigned k = 0; k < 50; k++) p[k] = payee(l, 2000 + k);
    book(l, u, p, (uint64_t[]){1}, 1);
    cutter_t c[2] = {{.l = l}, {.l = l}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, cut_loop, &c[i]);
    for (int i = 0; i < 600; i++) book(l, u, (ledger_account_t *[]){p[i % 50], p[(i * 7 + 1) % 50]}, (uint64_t[]){3, 5}, 2);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    settle_batch_t *b = cut(l, 1, 0);
    settle_batch_free(b);
    CHECK(c[0].failures == 0 && c[1].failures == 0);
    CHECK_MSG(c[0].batches + c[1].batches >= 4, "%d + %d batches", c[0].batches, c[1].batches);
    check_by_summing(l, "two cutters");
    ledger_close(l);
}

/* Books calls into path from a child process for ms milliseconds; returns its pid. */
static pid_t booking_child(const char *path, unsigned ms, unsigned payees) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    ledger_t *l = NULL;
    ledger_opts_t o = {.no_sync = true};
    if (ledger_open(path, &o, &l, NULL) != ACC_OK) _exit(3);
    ledger_account_t *u = NULL;
    if (ledger_account(l, LEDGER_ACCOUNT_USER, "loader", &u, NULL) != ACC_OK) _exit(3);
    double end = test_now_ms() + ms;
    unsigned i = 0;
    while (test_now_ms() < end) {
        ledger_account_t *who[2];
        uint8_t a[20];
        char text[ETH_ADDRESS_TEXT_SIZE];
        for (int j = 0; j < 2; j++) {
            payee_address(5000 + (i * 13 + (unsigned)j * 7) % payees, a);
            eth_address_to_text(a, text);
            if (ledger_account(l, LEDGER_ACCOUNT_ADDRESS, text, &who[j], NULL) != ACC_OK) _exit(3);
        }
        if (who[0] == who[1]) who[1] = NULL;
        ledger_transfer_t t[3] = {{u, who[0], 11, LEDGER_CODE_MODEL_CALL},
                                  {u, ledger_system(l, LEDGER_SYSTEM_OPERATOR), 1, LEDGER_CODE_OPERATOR_FEE},
                                  {u, who[1], 4, LEDGER_CODE_DATA_QUERY}};
        ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_MODEL_CALL, .transfers = t,
                              .ntransfers = who[1] ? 3 : 2, .event = "usage", .event_len = 5};
        ledger_id_new(&p.id);
        ledger_result_t res;
        if (ledger_submit_wait(l, &p, &res, NULL) != ACC_OK) _exit(4);
        i++;
    }
    ledger_close(l);
    _exit(0);
}

static void test_cut_while_another_process_books(void) {
    const char *path = fresh_path();
    ledger_t *l = open_at(path);
    funded_user(l, "loader");
    ledger_close(l); /* fork with one thread: the ledger's writer is a thread */
    /* A duration, not a bound: under a slow tool both sides slow down alike. */
    pid_t child = booking_child(path, test_slow_tool() ? 3000 : 1500, 300);
    l = open_at(path);
    int batches = 0, status = 0;
    while (waitpid(child, &status, WNOHANG) == 0) {
        settle_batch_t *b = cut(l, batches == 0, 0);
        if (b) batches++;
        settle_batch_free(b);
        usleep(20000);
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the booking process failed (%d)", status);
    settle_batch_free(cut(l, batches == 0, 0));
    CHECK_MSG(batches >= (test_slow_tool() ? 1 : 5), "only %d batches cut while booking", batches);
    uint64_t last = 0;
    ledger_last_seq(l, &last, NULL);
    CHECK(last > (test_slow_tool() ? 20u : 200u));
    check_by_summing(l, "cut while booking");
    ledger_close(l);
}

static void test_kill_during_a_cut(void) {
    const char *path = fresh_path();
    ledger_t *l = open_at(path);
    funded_user(l, "ivan");
    ledger_account_t **p = malloc(4000 * sizeof *p);
    /* Enough to cut that a kill lands in the middle: time one cut of the same shape first. */
    unsigned rounds = test_slow_tool() ? 4 : 12, kills_before = 0, kills_after = 0;
    double cut_ms = 0;
    for (unsigned r = 0; r < rounds; r++) {
        ledger_account_t *u = account_of(l, LEDGER_ACCOUNT_USER, "ivan"); /* this ledger_t's accounts */
        for (unsigned k = 0; k < 4000; k++) p[k] = payee(l, 10000 + k);
        for (unsigned i = 0; i < 2000; i++)
            book(l, u, (ledger_account_t *[]){p[(i * 2 + r * 31) % 4000], p[(i * 2 + 1 + r * 31) % 4000]},
                 (uint64_t[]){2, 3}, 2);
        uint64_t before = 0, after = 0;
        ledger_last_seq(l, &before, NULL);
        ledger_close(l);
        if (r == 0) { /* the first cut runs to the end: its time sizes the kills */
            double t0 = test_now_ms();
            l = open_at(path);
            settle_batch_free(cut(l, 1, 0));
            cut_ms = test_now_ms() - t0;
            ledger_close(l);
            l = open_at(path);
            continue;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            ledger_t *cl = NULL;
            ledger_opts_t o = {0}; /* synchronous: the real thing */
            if (ledger_open(path, &o, &cl, NULL) != ACC_OK) _exit(3);
            settle_cut_opts_t co = {.key = host_key};
            settle_batch_t *b = NULL;
            _exit(settle_cut(cl, &co, &b, NULL) == ACC_OK ? 0 : 4);
        }
        usleep((useconds_t)(cut_ms * 1000.0 * (double)(test_rand() % 100) / 80.0));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        l = open_at(path);
        ledger_last_seq(l, &after, NULL);
        if (after == before)
            kills_before++;
        else
            kills_after++;
        CHECK_MSG(after == before || after == before + 1, "seq went from %llu to %llu", (unsigned long long)before,
                  (unsigned long long)after);
        check_ledger(l);
    }
    settle_batch_free(cut(l, 0, 0));
    fprintf(stderr, "  # a cut took %.0f ms; %u kills left no batch, %u found it whole\n", cut_ms, kills_before,
            kills_after);
    check_by_summing(l, "kill -9 during cuts");
    free(p);
    ledger_close(l);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    if (test_scratch_dir(dir, sizeof dir, "settle") != 0) return 1;
    test_seed("ACCRUE_SETTLE_SEED", 13);
    uint8_t secret[32];
    for (int i = 0; i < 32; i++) secret[i] = (uint8_t)(i + 1);
    if (eth_key_from_secret(&host_key, secret, NULL) != ACC_OK) return 1;
    RUN(test_cut_nets_signs_and_books);
    RUN(test_nothing_to_settle);
    RUN(test_first_batch_needs_chain_and_contract);
    RUN(test_batches_chain);
    RUN(test_long_chain_lookup);
    RUN(test_batches_paged_and_by_address);
    RUN(test_max_entries_cuts_early_and_skips_nothing);
    RUN(test_json_round_trip_and_proofs);
    RUN(test_verify_names_each_tampering);
    RUN(test_verify_names_a_broken_link);
    RUN(test_concurrent_cutters_make_one_chain);
    RUN(test_cut_while_another_process_books);
    RUN(test_kill_during_a_cut);
    eth_key_free(host_key);
    test_remove_dir(dir);
    return check_finish("settle");
}
