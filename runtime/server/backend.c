/*
 * backend.c: the registry and the ledger as the server's threads reach them.
 *
 * Every worker thread has a registry handle of its own (a registry_t belongs to one thread; WAL
 * lets readers run beside the one writer), opened the first time the thread needs it. The loop has
 * one too, for API keys only: checking a key is one indexed read, and its answer is cached for a
 * few seconds so a busy client costs the loop no read at all (a revoked key stops working within
 * AUTH_TTL_MS). Everything else that touches SQLite runs on a worker.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/keccak.h"
#include "runtime/server/internal.h"

#define AUTH_TTL_MS 5000
#define AUTH_CACHE_MAX 4096

static _Thread_local registry_t *tl_reg;

registry_t *rt_worker_registry(rt_server *srv, acc_err *err) {
    if (tl_reg) return tl_reg;
    if (registry_open(srv->cfg.db_path, REGISTRY_OPEN_EXISTING, &tl_reg, err) != ACC_OK) {
        tl_reg = NULL;
        return NULL;
    }
    return tl_reg;
}

void rt_worker_exit(void) {
    registry_close(tl_reg);
    tl_reg = NULL;
}

typedef struct auth_entry {
    rt_principal who;
    uint64_t expires_ms;
} auth_entry;

int rt_auth_key(rt_server *srv, const char *key, size_t len, rt_principal *who, acc_err *err) {
    if (len == 0 || len > 200 || memchr(key, 0, len)) return acc_fail(err, ACC_EPERM, "unknown or revoked API key");
    char k[201];
    memcpy(k, key, len);
    k[len] = 0;
    uint64_t now = rt_now_ns() / 1000000;
    auth_entry *e = rt_map_get(&srv->auth_cache, k);
    if (e && e->expires_ms > now) {
        *who = e->who;
        return ACC_OK;
    }
    registry_account_t a;
    int rc = registry_account_by_key(srv->reg, k, len, &a, err);
    if (rc != ACC_OK) {
        if (e) free(rt_map_del(&srv->auth_cache, k));
        return rc == ACC_EPERM ? rc : acc_fail(err, ACC_EPERM, "the API key could not be checked: %s", err ? err->msg : "");
    }
    memset(who, 0, sizeof *who);
    snprintf(who->account, sizeof who->account, "%s", a.name);
    who->account_id = a.id;
    who->admin = a.admin;
    /* A key's id for per-key limits: its hash, never the key. */
    uint8_t h[32];
    keccak256(k, len, h);
    for (int i = 0; i < 8; i++) snprintf(who->key_id + 2 * i, 3, "%02x", h[i]);
    if (!e) {
        if (srv->auth_cache.count >= AUTH_CACHE_MAX) { /* crude bound: start over */
            rt_map_entry *x;
            for (size_t i = 0; rt_map_next(&srv->auth_cache, &i, &x);) free(x->value);
            rt_map_free(&srv->auth_cache);
        }
        e = malloc(sizeof *e);
        if (e && rt_map_put(&srv->auth_cache, k, e) != ACC_OK) {
            free(e);
            e = NULL;
        }
    }
    if (e) {
        e->who = *who;
        e->expires_ms = now + AUTH_TTL_MS;
    }
    return ACC_OK;
}

void rt_auth_forget(rt_server *srv) {
    rt_map_entry *x;
    for (size_t i = 0; rt_map_next(&srv->auth_cache, &i, &x);) free(x->value);
    rt_map_free(&srv->auth_cache);
}

int rt_topup(ledger_t *l, const char *account, uint64_t amount, ledger_result_t *res, acc_err *err) {
    ledger_account_t *to;
    int rc = ledger_account(l, LEDGER_ACCOUNT_USER, account, &to, err);
    if (rc) return rc;
    ledger_transfer_t t = {.debit = ledger_system(l, LEDGER_SYSTEM_EXTERNAL), .credit = to, .amount = amount,
                           .code = LEDGER_CODE_TOPUP};
    ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &t, .ntransfers = 1};
    ledger_id_new(&p.id);
    ledger_result_t r;
    rc = ledger_submit_wait(l, &p, res ? res : &r, err);
    return rc;
}
