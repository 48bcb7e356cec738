/*
 * cli_serve.c: `accrue serve`: parses the flags and runs the server (runtime/server/server.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cli.h"
#include "runtime/cli_util.h"
#include "runtime/server/server.h"

static const char serve_usage[] =
    "usage: accrue serve [--listen HOST:PORT] [--db PATH] [--key FILE] [--settle-every S]\n"
    "                    [--settle-threshold AMOUNT] [--workers N] [--web DIR] [limits...]\n"
    "\n"
    "Serves the HTTP API (/v1/...), WebSocket sessions (/v1/sessions), the OpenAI-compatible\n"
    "endpoint (/v1/chat/completions, /v1/models) and the web page (/) from one process, until\n"
    "SIGINT or SIGTERM, then stops cleanly (running turns cancelled, the ledger flushed), exit 0.\n"
    "\n"
    "  --listen HOST:PORT        address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
    "  --db PATH                 the database (default ./accrue.db)\n"
    "  --key FILE                the host key that signs settlement batches (default: made,\n"
    "                            mode 0600, beside the database on first start)\n"
    "  --settle-every S          cut a settlement batch every S seconds (default 0: never)\n"
    "  --settle-threshold AMOUNT and whenever accrued fees pass AMOUNT base units (0: never)\n"
    "  --chain-id N --contract ADDRESS  the first batch's EIP-712 domain (the claim contract's chain\n"
    "                            and address); later batches reuse the last one's\n"
    "  --workers N               worker threads running agent turns (default: one per CPU)\n"
    "  --web DIR                 the web page's folder (default: found beside the binary)\n"
    "  --quiet                   no banner\n"
    "  --ledger-no-sync          commit the ledger without fsync (SQLite synchronous=NORMAL): a\n"
    "                            commit survives accrue being killed, not the machine losing power;\n"
    "                            for benchmarks that compare with gateways that keep no ledger\n"
    "\n"
    "Limits:\n"
    "  --sessions-per-key N      concurrent sessions per API key (default 64)\n"
    "  --messages-per-second N   client frames per second per connection, burst 2x (default 20;\n"
    "                            0 = unlimited)\n"
    "  --max-frame BYTES         largest client WebSocket message (default 65536)\n"
    "  --max-body BYTES          largest HTTP request body (default 1048576)\n"
    "  --turn-time-limit MS      wall time of one agent turn, waits included (default 30000)\n"
    "  --slice-ms MS             a running turn yields its worker after MS (default 10)\n"
    "  --upstream-connect-timeout MS  remote model calls: until the answer starts (default 5000)\n"
    "  --upstream-timeout MS     remote model calls: until the answer is complete (default 60000)\n"
    "\n"
    "Exit status: 0 after a clean shutdown; 1 when the server cannot start; 2 for a usage error.\n";

/* A value in [lo, hi] for flag; false after saying what is wrong. */
static bool in_range(const char *flag, bool seen, uint64_t v, uint64_t lo, uint64_t hi) {
    if (!seen || (v >= lo && v <= hi)) return true;
    cli_fail("serve", 2, "%s takes %" PRIu64 " to %" PRIu64 ", not %" PRIu64, flag, lo, hi, v);
    return false;
}

int cli_serve(int argc, char **argv) {
    static char host[256];
    const char *listen = NULL, *db = "./accrue.db", *key = NULL, *web = NULL, *contract = NULL;
    uint64_t chain_id = 0;
    bool quiet = false, no_sync = false;
    uint64_t settle_every = 0, settle_threshold = 0, workers = 0, per_key = 64, rate = 20, max_frame = 65536,
             max_body = 1 << 20, turn_ms = 30000, slice_ms = 10, up_connect = 5000, up_total = 60000;
    cli_flag_t flags[] = {
        CLI_FLAG("--listen", CLI_STRING, &listen),
        CLI_FLAG("--chain-id", CLI_AMOUNT, &chain_id),
        CLI_FLAG("--contract", CLI_STRING, &contract),
        CLI_FLAG("--db", CLI_STRING, &db),
        CLI_FLAG("--key", CLI_STRING, &key),
        CLI_FLAG("--web", CLI_STRING, &web),
        CLI_FLAG("--quiet", CLI_BOOL, &quiet),
        CLI_FLAG("--ledger-no-sync", CLI_BOOL, &no_sync),
        CLI_FLAG("--settle-every", CLI_AMOUNT, &settle_every),
        CLI_FLAG("--settle-threshold", CLI_AMOUNT, &settle_threshold),
        CLI_FLAG("--workers", CLI_AMOUNT, &workers),
        CLI_FLAG("--sessions-per-key", CLI_AMOUNT, &per_key),
        CLI_FLAG("--messages-per-second", CLI_AMOUNT, &rate),
        CLI_FLAG("--max-frame", CLI_AMOUNT, &max_frame),
        CLI_FLAG("--max-body", CLI_AMOUNT, &max_body),
        CLI_FLAG("--turn-time-limit", CLI_AMOUNT, &turn_ms),
        CLI_FLAG("--slice-ms", CLI_AMOUNT, &slice_ms),
        CLI_FLAG("--upstream-connect-timeout", CLI_AMOUNT, &up_connect),
        CLI_FLAG("--upstream-timeout", CLI_AMOUNT, &up_total),
    };
    int rc = cli_parse("serve", argc, argv, flags, sizeof flags / sizeof flags[0], NULL, 0, 0, serve_usage);
    if (rc) return rc < 0 ? 0 : rc;
    bool workers_given = false; /* absent: one per CPU */
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strcmp(flags[i].name, "--workers")) workers_given = flags[i].seen;
    if (!in_range("--workers", workers_given, workers, 1, 1024) ||
        !in_range("--sessions-per-key", true, per_key, 0, 1000000) ||
        !in_range("--messages-per-second", true, rate, 0, 1000000) ||
        !in_range("--max-frame", true, max_frame, 1, 256u << 20) || !in_range("--max-body", true, max_body, 1, 1u << 30) ||
        !in_range("--turn-time-limit", true, turn_ms, 1, 3600000) || !in_range("--slice-ms", true, slice_ms, 0, 60000) ||
        !in_range("--upstream-connect-timeout", true, up_connect, 1, 3600000) ||
        !in_range("--upstream-timeout", true, up_total, 1, 3600000))
        return 2;
    rt_serve_config cfg = {
        .host = "127.0.0.1",
        .port = 8080,
        .db_path = db,
        .key_path = key,
        .web_dir = web,
        .settle_every_s = settle_every,
        .settle_threshold = settle_threshold,
        .chain_id = chain_id,
        .contract = contract,
        .workers = (unsigned)workers,
        .sessions_per_key = (unsigned)per_key,
        .messages_per_sec = (unsigned)rate,
        .max_frame = max_frame,
        .max_body = max_body,
        .turn_time_ms = turn_ms,
        .slice_ms = (uint32_t)slice_ms,
        .upstream_connect_ms = (uint32_t)up_connect,
        .upstream_total_ms = (uint32_t)up_total,
        .quiet = quiet,
        .ledger_no_sync = no_sync,
    };
    if (listen) {
        const char *colon = strrchr(listen, ':');
        uint64_t port;
        if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host || cli_parse_u64(colon + 1, 65535, &port))
            return cli_fail("serve", 2, "--listen needs HOST:PORT (e.g. 127.0.0.1:8080), got '%s'", listen);
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = 0;
        cfg.host = host;
        cfg.port = (int)port;
    }
    acc_err err = {0};
    if (rt_serve(&cfg, &err) != ACC_OK) return cli_fail("serve", 1, "%s", err.msg);
    return 0;
}
