/*
 * settle.c: settlement batches cut by the server (--settle-every S, --settle-threshold AMOUNT).
 *
 * A cut reads and writes the ledger (meters/settle: settle_accrued scans the postings since the last
 * batch, settle_cut nets, signs with the host key and commits), so it runs on a worker, one at a time;
 * the loop only decides when. Every S seconds a cut is made (nothing to settle makes no batch); with
 * a threshold, every SETTLE_CHECK_MS the worker reads what the payees have accrued and cuts when it
 * passes AMOUNT. The first batch needs the EIP-712 domain (--chain-id and --contract); later ones
 * take the last batch's. A cut that fails is logged and tried again at the next occasion: the ledger
 * keeps everything it would have settled.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "meters/settle/settle.h"
#include "runtime/server/internal.h"

#define SETTLE_CHECK_MS 2000

static void settle_job(rt_job *job) {
    rt_server *srv = (rt_server *)((char *)job - offsetof(rt_server, settle_job));
    acc_err err = {0};
    bool cut = srv->settle_due;
    uint64_t accrued = 0;
    if (!cut && srv->cfg.settle_threshold) {
        if (settle_accrued(srv->ledger, &accrued, &err) != ACC_OK) goto failed;
        cut = accrued >= srv->cfg.settle_threshold;
    }
    if (cut) {
        settle_cut_opts_t o = {.key = srv->host_key, .chain_id = srv->cfg.chain_id,
                               .contract = srv->has_contract ? srv->contract : NULL};
        settle_batch_t *b = NULL;
        if (settle_cut(srv->ledger, &o, &b, &err) != ACC_OK) goto failed;
        if (b) {
            atomic_fetch_add(&srv->m.batches_cut, 1);
            atomic_store(&srv->m.last_batch, b->sequence);
            if (!srv->cfg.quiet)
                fprintf(stderr,
                        "accrue serve: settlement batch %" PRIu64 ": %" PRIu64 " entries, %" PRIu64
                        " micro-credits, postings %" PRIu64 "-%" PRIu64 "\n",
                        b->sequence, b->entry_count, b->total, b->first_transfer, b->last_transfer);
            settle_batch_free(b);
        }
    }
    rt_post(srv, &srv->settle_done);
    return;
failed:
    atomic_fetch_add(&srv->m.settle_failures, 1);
    fprintf(stderr, "accrue serve: settlement: %s (tried again later)\n", err.msg);
    rt_post(srv, &srv->settle_done);
}

static void settle_done(rt_server *srv, rt_event *ev) {
    (void)ev;
    srv->settling = false;
}

int rt_settle_init(rt_server *srv, acc_err *err) {
    srv->settle_job.fn = settle_job;
    srv->settle_done.fn = settle_done;
    if (srv->cfg.contract) {
        if (eth_address_parse(srv->cfg.contract, strlen(srv->cfg.contract), srv->contract, err) != ACC_OK)
            return acc_err_prefix(err, "--contract");
        srv->has_contract = true;
    }
    if (!srv->cfg.settle_every_s && !srv->cfg.settle_threshold) return ACC_OK;
    settle_batch_t *last = NULL;
    int rc = settle_batch_get(srv->ledger, 0, &last, err);
    settle_batch_free(last);
    if (rc == ACC_ENOTFOUND && (!srv->cfg.chain_id || !srv->has_contract))
        return acc_fail(err, ACC_EINVAL,
                        "--settle-every and --settle-threshold need --chain-id and --contract until a first batch "
                        "exists (its EIP-712 domain)");
    if (rc != ACC_OK && rc != ACC_ENOTFOUND) return rc;
    uint64_t now = rt_now_ns() / 1000000;
    srv->next_settle_ms = srv->cfg.settle_every_s ? now + srv->cfg.settle_every_s * 1000 : 0;
    srv->next_threshold_ms = srv->cfg.settle_threshold ? now + SETTLE_CHECK_MS : 0;
    return ACC_OK;
}

void rt_settle_tick(rt_server *srv) {
    if (srv->settling || srv->draining || (!srv->next_settle_ms && !srv->next_threshold_ms)) return;
    uint64_t now = rt_now_ns() / 1000000;
    bool due = srv->next_settle_ms && now >= srv->next_settle_ms;
    bool check = srv->next_threshold_ms && now >= srv->next_threshold_ms;
    if (!due && !check) return;
    if (due) srv->next_settle_ms = now + srv->cfg.settle_every_s * 1000;
    if (srv->next_threshold_ms) srv->next_threshold_ms = now + SETTLE_CHECK_MS;
    srv->settle_due = due;
    srv->settling = true;
    rt_pool_submit(srv->pool, &srv->settle_job);
}
