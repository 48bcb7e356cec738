/*
 * provider.h: the host-call provider of `accrue run`: registered models and datasets through the
 * registry and the meters (runtime/metered.h: priced, reserved, run, attributed and booked before
 * the agent sees the answer), test/... names by the built-in test provider (runtime/test_provider.h,
 * not metered).
 *
 * The registry and the ledger (the same file) are opened by rt_provider_prepare before the first
 * turn and, when the registry holds nothing yet, seeded with the demo registry; the demo account
 * gets its demo credit then (once: the top-up has a fixed id). So no turn's time limit pays for
 * making them. With no_demo they are opened at the first call that needs them instead (a run that
 * never calls a registered name leaves no file behind) and nothing is seeded. The payer is the
 * account of user_key (--user), or the demo account. When agent is set (a deployed agent runs), a call to a name its manifest does not
 * list is refused, and each message pays the agent's price. A model registered with kind http is
 * called over HTTP (its url's /chat/completions), metered like any other.
 *
 * Requests are bounded before any work: at most RT_REQUEST_MAX bytes of JSON. A model answers
 *   {"text": "...", "model": NAME, "finish_reason": "stop"|"length",
 *    "usage": {"prompt_tokens": N, "completion_tokens": M, "cost": C, "call": ID}}
 * and a dataset (opts.limit from 1 to REGISTRY_QUERY_LIMIT_MAX, 3 when left out)
 *   {"rows": [{"id": 12, "contributor": "0x...", "score": 3.2, "text": "..."}, ...],
 *    "usage": {"records": N, "cost": C, "call": ID}}
 * (best first); cost in micro-credits, call the usage event's id (accrue usage --call ID).
 */
#ifndef ACCRUE_RUNTIME_PROVIDER_H
#define ACCRUE_RUNTIME_PROVIDER_H

#include <stdbool.h>

#include "meters/ledger/ledger.h"
#include "meters/meters.h"
#include "registry/registry.h"
#include "runtime/metered.h"
#include "sandbox/sandbox.h"

#define RT_REQUEST_MAX (64u << 10)
#define RT_QUERY_LIMIT_DEFAULT 3

typedef struct rt_provider {
    const char *db_path;            /* NULL: ./accrue.db */
    bool no_demo;                   /* do not seed the demo registry */
    const registry_agent_t *agent;  /* the deployed agent running, or NULL for a script file */
    registry_t *reg;                /* open once needed; rt_provider_close closes it */
    bool open_failed;
    acc_err open_err;
    void (*seeded)(void *ud, const char *path); /* told when the demo registry was made */
    void *seeded_ud;
    const char *user_key;           /* the paying account's API key, or NULL: the demo account */
    uint32_t operator_fee_bps;      /* the operator's fee on every call */
    /* HTTP models: called with the server's outbound client on a loop of this thread's own, opened
     * at the first such call and serviced while the turn waits for it. 0: 5 s and 60 s, both
     * cut to the turn's time limit. */
    uint32_t upstream_connect_ms, upstream_total_ms;
    struct rt_net *net;
    /* Metering, opened with the registry (rt_provider_meter). */
    char payer[REGISTRY_NAME_MAX + 1];
    ledger_t *ledger;
    meter_t *meter;
    rt_metered_t *metered;
    rt_session_t *session;
    rt_queue_t *queue;
    meter_agent_t magent;
    bool meter_failed;
    acc_err meter_err;
} rt_provider_t;

#define RT_DEMO_CREDIT (UINT64_C(100) * LEDGER_UNITS_PER_CREDIT) /* what the demo account starts with */

/* What a command does before its first turn, unless no_demo: opens the registry (made, and seeded
 * with the demo registry, when it holds nothing yet) and the metering session (the ledger, the demo
 * credit). ACC_OK, or the failure (a bad user_key: ACC_EPERM), which is kept for the calls too. */
int rt_provider_prepare(rt_provider_t *p, acc_err *err);

/* The metering session, opened now if it was not yet (with the registry): ACC_EPERM for a
 * user_key that is malformed, unknown or revoked. */
int rt_provider_meter(rt_provider_t *p, rt_session_t **s, acc_err *err);

/* Runs the sandbox's current turn to its end, answering metered calls as their postings become
 * durable (rt_run_turn). */
sandbox_status_t rt_provider_run_turn(rt_provider_t *p, sandbox_t *sb);

/* A sandbox provider over p (which must outlive the sandbox); output stays NULL for the caller. */
sandbox_provider_t rt_provider(rt_provider_t *p);

/* The registry, opened now if it was not yet: with create, made and seeded when missing or empty;
 * without, only an existing one (ACC_ENOTFOUND otherwise). */
int rt_provider_registry(rt_provider_t *p, bool create, registry_t **reg, acc_err *err);

void rt_provider_close(rt_provider_t *p);

#endif
