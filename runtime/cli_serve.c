/*
 * cli_serve.c: `accrue serve`: parses the flags and runs the server (runtime/server/server.h).
 */
#include <errno.h>
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
    "  --workers N               worker threads running agent turns (default: one per CPU)\n"
    "  --web DIR                 the web page's folder (default: found beside the binary)\n"
    "  --quiet                   no banner\n"
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

int cli_serve(int argc, char **argv) {
    static char host[256];
    rt_serve_config cfg = {
        .host = "127.0.0.1",
        .port = 8080,
        .db_path = "./accrue.db",
        .sessions_per_key = 64,
        .messages_per_sec = 20,
        .max_frame = 65536,
        .max_body = 1 << 20,
        .turn_time_ms = 30000,
        .slice_ms = 10,
        .upstream_connect_ms = 5000,
        .upstream_total_ms = 60000,
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(serve_usage, stdout);
            return 0;
        } else if (strcmp(a, "--quiet") == 0) {
            cfg.quiet = 1;
            continue;
        }
        if (a[0] != '-' || a[1] != '-') {
            fprintf(stderr, "accrue serve: unexpected argument '%s' (see accrue serve --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "accrue serve: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--listen") == 0) {
            const char *colon = strrchr(v, ':');
            if (!colon || colon == v || (size_t)(colon - v) >= sizeof host || cli_parse_u64(colon + 1, 65535, &n) ||
                n > 65535) {
                fprintf(stderr, "accrue serve: --listen needs HOST:PORT (e.g. 127.0.0.1:8080), got '%s'\n", v);
                return 2;
            }
            memcpy(host, v, (size_t)(colon - v));
            host[colon - v] = 0;
            cfg.host = host;
            cfg.port = (int)n;
        } else if (strcmp(a, "--db") == 0) {
            cfg.db_path = v;
        } else if (strcmp(a, "--key") == 0) {
            cfg.key_path = v;
        } else if (strcmp(a, "--web") == 0) {
            cfg.web_dir = v;
        } else if (strcmp(a, "--settle-every") == 0) {
            if (cli_whole_number("serve", a, v, UINT64_MAX, &cfg.settle_every_s)) return 2;
        } else if (strcmp(a, "--settle-threshold") == 0) {
            if (cli_whole_number("serve", a, v, UINT64_MAX, &cfg.settle_threshold)) return 2;
        } else if (strcmp(a, "--max-frame") == 0) {
            if (cli_whole_number("serve", a, v, UINT64_MAX, &cfg.max_frame)) return 2;
        } else if (strcmp(a, "--max-body") == 0) {
            if (cli_whole_number("serve", a, v, UINT64_MAX, &cfg.max_body)) return 2;
        } else if (strcmp(a, "--turn-time-limit") == 0) {
            if (cli_whole_number("serve", a, v, UINT64_MAX, &cfg.turn_time_ms)) return 2;
        } else if (strcmp(a, "--upstream-connect-timeout") == 0 || strcmp(a, "--upstream-timeout") == 0) {
            if (cli_whole_number("serve", a, v, UINT64_MAX, &n)) return 2;
            if (n == 0 || n > 3600000) {
                fprintf(stderr, "accrue serve: %s takes 1 to 3600000 ms\n", a);
                return 2;
            }
            if (a[11] == 'c') cfg.upstream_connect_ms = (uint32_t)n;
            else cfg.upstream_total_ms = (uint32_t)n;
        } else if (strcmp(a, "--workers") == 0 || strcmp(a, "--sessions-per-key") == 0 ||
                   strcmp(a, "--messages-per-second") == 0 || strcmp(a, "--slice-ms") == 0) {
            if (cli_whole_number("serve", a, v, UINT64_MAX, &n)) return 2;
            if (n > 1000000) {
                fprintf(stderr, "accrue serve: %s is at most 1000000\n", a);
                return 2;
            }
            if (a[2] == 'w') {
                if (n == 0 || n > 1024) {
                    fprintf(stderr, "accrue serve: --workers takes 1 to 1024\n");
                    return 2;
                }
                cfg.workers = (unsigned)n;
            } else if (strcmp(a, "--sessions-per-key") == 0) cfg.sessions_per_key = (unsigned)n;
            else if (strcmp(a, "--messages-per-second") == 0) cfg.messages_per_sec = (unsigned)n;
            else cfg.slice_ms = (uint32_t)n;
        } else {
            fprintf(stderr, "accrue serve: unknown flag '%s' (see accrue serve --help)\n", a);
            return 2;
        }
    }
    acc_err err = {0};
    if (rt_serve(&cfg, &err) != ACC_OK) {
        fprintf(stderr, "accrue serve: %s\n", err.msg);
        return 1;
    }
    return 0;
}
