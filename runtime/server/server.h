/*
 * server.h: `accrue serve`, the one long-running process of accrue.
 *
 * One libwebsockets loop (one thread) serves HTTP (the /v1 API, the OpenAI-compatible endpoint,
 * the web page's files), WebSocket sessions (/v1/sessions), timers and outbound HTTP to remote
 * models. Nothing on that loop waits: agent turns run on a pool of worker threads in time slices,
 * host names are resolved on a thread of their own, ledger commits happen on the ledger's writer.
 * Work finished elsewhere comes back to the loop through an inbox and lws_cancel_service.
 *
 * rt_serve runs until SIGINT or SIGTERM, then stops accepting, cancels running turns (voiding
 * their reservations), flushes the ledger and returns 0.
 */
#ifndef ACCRUE_RUNTIME_SERVER_H
#define ACCRUE_RUNTIME_SERVER_H

#include <stdint.h>

#include "runtime/base/status.h"

typedef struct rt_serve_config {
    const char *host;          /* listen address, "127.0.0.1" */
    int port;                  /* 8080; 0 picks a free port (printed) */
    const char *db_path;       /* "./accrue.db" */
    const char *key_path;      /* host key file; NULL: beside the database */
    const char *web_dir;       /* the web page's folder served at /; NULL: built-in search */
    uint64_t settle_every_s;   /* cut a settlement batch every S seconds; 0 = never */
    uint64_t settle_threshold; /* and when accrued fees pass this amount; 0 = never */
    uint64_t chain_id;         /* the first batch's EIP-712 domain (later ones reuse the last's) */
    const char *contract;      /* the claim contract's address, likewise; NULL: none given */
    unsigned workers;          /* agent worker threads; 0 = number of CPUs */
    /* Limits (0 = the default). */
    unsigned sessions_per_key;   /* concurrent WebSocket sessions per API key */
    unsigned messages_per_sec;   /* client frames per second per connection (burst 2x) */
    uint64_t max_frame;          /* largest client WebSocket message, bytes */
    uint64_t max_body;           /* largest HTTP request body, bytes */
    uint64_t turn_time_ms;       /* wall time per agent turn */
    uint32_t slice_ms;           /* time slice of a running turn on a worker */
    uint32_t upstream_connect_ms; /* outbound model calls: until the status line */
    uint32_t upstream_total_ms;   /* outbound model calls: until the whole answer */
    int quiet;                   /* no banner */
    int ledger_no_sync;          /* SQLite synchronous=NORMAL for the ledger (benchmarks) */
} rt_serve_config;

/* Runs the server until a signal stops it. ACC_OK after a clean shutdown; an error (with err set)
 * when it cannot start: the address is taken, the database cannot be opened. */
int rt_serve(const rt_serve_config *cfg, acc_err *err);

#endif
