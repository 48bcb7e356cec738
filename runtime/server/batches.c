/*
 * batches.c: settlement batches over HTTP, in the shapes the command line prints them:
 *
 *   GET /v1/batches?address=ADDR&limit=N&before=SEQ
 *                                          the batches, newest first, as `accrue batches --json`
 *                                          lists them; with an address, only those that owe it
 *                                          something, each with "amount" (a decimal string);
 *                                          limit 1-1000 (50), before: only sequences below it
 *   GET /v1/batches/SEQ                    the whole signed batch: `accrue batch SEQ --json`
 *   GET /v1/batches/SEQ/proofs/ADDRESS     an entry's Merkle proof: `accrue proof SEQ ADDR --json`,
 *                                          what the claim contract's claim() takes
 *
 * All public: a batch is a statement meant to be posted on a chain. The batches are read from the
 * ledger (meters/settle), on a worker.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/keys.h"
#include "meters/settle/settle.h"
#include "runtime/server/internal.h"

#define BATCHES_LIMIT_MAX 1000

/* A batch's sequence number from the path: a whole number from 1; false after an error response. */
static bool sequence_of(rt_api_job *j, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || s[0] == '+' || v == 0) {
        rt_api_error(j, ACC_EINVAL, "a batch's sequence number is a whole number from 1, not '%.40s'", s);
        return false;
    }
    *out = v;
    return true;
}

static bool address_of(rt_api_job *j, const char *s, uint8_t out[ETH_ADDRESS_SIZE]) {
    acc_err err = {0};
    if (eth_address_parse(s, strlen(s), out, &err) == ACC_OK) return true;
    rt_api_error(j, ACC_EINVAL, "%s", err.msg);
    return false;
}

typedef struct listing {
    json_t *items;
    acc_err err;
} listing;

/* One batch's header as the CLI lists it, with "amount" (what it owes the address) when the list is
 * an address's. */
static int list_one(void *ud, const settle_batch_t *b, const settle_entry_t *e) {
    listing *li = ud;
    acc_buf text = ACC_BUF_INIT;
    int rc = settle_batch_summary_json(b, &text, &li->err);
    json_t *o = rc ? NULL : json_loadb(text.data, text.len, 0, NULL);
    acc_buf_free(&text);
    if (rc) return rc;
    if (!o) return acc_fail(&li->err, ACC_ENOMEM, "batches: out of memory");
    if (e) {
        char amount[24];
        snprintf(amount, sizeof amount, "%" PRIu64, e->amount);
        json_object_set_new(o, "amount", json_string(amount));
    }
    json_array_append_new(li->items, o);
    return ACC_OK;
}

static void batches_list(rt_api_job *j, registry_t *reg) {
    (void)reg;
    uint64_t limit, before;
    uint8_t addr[ETH_ADDRESS_SIZE];
    char a[64];
    bool has_addr = rt_api_query(j, "address", a, sizeof a);
    if (!rt_api_query_num(j, "limit", 1, BATCHES_LIMIT_MAX, 50, &limit)) return;
    if (!rt_api_query_num(j, "before", 1, UINT64_MAX, 0, &before)) return;
    if (has_addr && !address_of(j, a, addr)) return;
    /* The ledger's index answers both lists: the cost is the page asked for, not the chain. */
    listing li = {.items = json_array()};
    settle_list_opts_t o = {.address = has_addr ? addr : NULL, .before = before, .limit = (size_t)limit};
    int rc = li.items ? settle_batches(j->srv->ledger, &o, list_one, &li, &li.err)
                      : acc_fail(&li.err, ACC_ENOMEM, "batches: out of memory");
    if (rc) {
        json_decref(li.items);
        rt_api_error(j, rc, "%s", li.err.msg);
        return;
    }
    rt_api_json(j, json_pack("{s:o}", "batches", li.items));
}

static void batch_get(rt_api_job *j, registry_t *reg) {
    (void)reg;
    uint64_t seq;
    if (!sequence_of(j, j->params[0], &seq)) return;
    settle_batch_t *b;
    acc_err err = {0};
    int rc = settle_batch_get(j->srv->ledger, seq, &b, &err);
    if (!rc) {
        acc_buf_reset(&j->out);
        rc = settle_batch_json(b, &j->out, &err);
        settle_batch_free(b);
    }
    if (rc) rt_api_error(j, rc, "%s", err.msg);
}

static void batch_proof(rt_api_job *j, registry_t *reg) {
    (void)reg;
    uint64_t seq;
    uint8_t addr[ETH_ADDRESS_SIZE];
    if (!sequence_of(j, j->params[0], &seq) || !address_of(j, j->params[1], addr)) return;
    settle_batch_t *b;
    merkle_tree *tree = NULL;
    acc_err err = {0};
    int rc = settle_batch_get(j->srv->ledger, seq, &b, &err);
    if (!rc) {
        rc = settle_batch_tree(b, &tree, &err);
        acc_buf_reset(&j->out);
        if (!rc) rc = settle_proof_json(b, tree, addr, &j->out, &err);
        merkle_free(tree);
        settle_batch_free(b);
    }
    if (rc) rt_api_error(j, rc, "%s", err.msg);
}

void rt_r_batches(rt_req *r) { rt_api_route(r, RT_PUBLIC, batches_list); }
void rt_r_batch(rt_req *r) { rt_api_route(r, RT_PUBLIC, batch_get); }
void rt_r_batch_proof(rt_req *r) { rt_api_route(r, RT_PUBLIC, batch_proof); }
