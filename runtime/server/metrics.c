/*
 * metrics.c: /metrics in the Prometheus text exposition format (version 0.0.4): counters and
 * gauges the loop and the workers bump with relaxed atomics, read here without a lock.
 */
#include <inttypes.h>
#include <stdio.h>

#include "runtime/server/internal.h"

static void metric(acc_buf *b, const char *name, const char *type, const char *help, uint64_t v) {
    acc_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

/* A counter of nanoseconds, shown in seconds. */
static void seconds_metric(acc_buf *b, const char *name, const char *help, uint64_t ns) {
    acc_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 ".%09" PRIu64 "\n", name, help, name, name,
                   ns / 1000000000u, ns % 1000000000u);
}

#define LOAD(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))

void rt_metrics_render(rt_server *srv, acc_buf *b) {
    rt_metrics *m = &srv->m;
    metric(b, "accrue_http_requests_total", "counter", "HTTP requests answered.", LOAD(m->http_requests));
    metric(b, "accrue_http_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status.",
           LOAD(m->http_errors));
    metric(b, "accrue_openai_requests_total", "counter", "POST /v1/chat/completions requests.",
           LOAD(m->openai_requests));
    metric(b, "accrue_ws_connections", "gauge", "WebSocket connections open.", LOAD(m->connections_ws));
    metric(b, "accrue_ws_frames_in_total", "counter", "Client WebSocket messages received.", LOAD(m->ws_frames_in));
    metric(b, "accrue_ws_frames_out_total", "counter", "Host frames made.", LOAD(m->ws_frames_out));
    metric(b, "accrue_sessions", "gauge", "Sessions alive (attached or detached).", LOAD(m->sessions_live));
    metric(b, "accrue_sessions_opened_total", "counter", "Sessions started.", LOAD(m->sessions_opened));
    metric(b, "accrue_sessions_closed_total", "counter", "Sessions ended.", LOAD(m->sessions_closed));
    metric(b, "accrue_turns_total", "counter", "Agent runs started.", LOAD(m->turns));
    metric(b, "accrue_turns_failed_total", "counter", "Agent runs that failed.", LOAD(m->turns_failed));
    metric(b, "accrue_model_calls_total", "counter", "Model calls made (metered).", LOAD(m->model_calls));
    metric(b, "accrue_dataset_calls_total", "counter", "Dataset queries made (metered).", LOAD(m->dataset_calls));
    metric(b, "accrue_calls_failed_total", "counter", "Model or dataset calls that failed.", LOAD(m->calls_failed));
    if (srv->meter) {
        meter_stats_t ms;
        meter_stats(srv->meter, &ms);
        metric(b, "accrue_metered_calls_total", "counter", "Metered calls begun (models, datasets, message fees).",
               ms.begun);
        metric(b, "accrue_metered_calls_refused_total", "counter", "Metered calls refused for insufficient funds.",
               ms.refused);
        metric(b, "accrue_metered_calls_failed_total", "counter", "Metered calls voided (failed, cancelled).",
               ms.failed);
        metric(b, "accrue_amount_booked_total", "counter", "Micro-credits charged by posted calls.", ms.charged);
    }
    if (srv->ledger) {
        ledger_stats_t ls;
        ledger_stats(srv->ledger, &ls);
        metric(b, "accrue_ledger_commits_total", "counter", "Ledger transactions committed (each one fsync).",
               ls.commits);
        metric(b, "accrue_ledger_postings_total", "counter", "Postings committed.", ls.postings);
        seconds_metric(b, "accrue_ledger_commit_seconds_total", "Time spent committing (write and fsync).",
                       ls.commit_ns);
        seconds_metric(b, "accrue_ledger_gather_seconds_total",
                       "Time the ledger's writer let batches gather before committing them.", ls.gather_ns);
        seconds_metric(b, "accrue_ledger_durable_seconds_total",
                       "Summed over committed postings: time from queued to durable.", ls.durable_ns);
        metric(b, "accrue_ledger_holds", "gauge", "Reservations held now.", ls.holds);
        metric(b, "accrue_ledger_largest_batch", "gauge", "Postings in the largest commit so far.", ls.max_batch);
    }
    metric(b, "accrue_upstream_requests_total", "counter", "Outbound HTTP requests to remote models.",
           LOAD(srv->net.requests));
    metric(b, "accrue_upstream_errors_total", "counter", "Outbound HTTP requests that failed.",
           LOAD(srv->net.errors));
    metric(b, "accrue_upstream_connections_total", "counter",
           "Connections opened to http:// model endpoints (kept alive between calls).",
           LOAD(srv->net.upstream_connects));
    metric(b, "accrue_upstream_retries_total", "counter",
           "Calls sent again on a new connection after a kept-alive one closed before answering.",
           LOAD(srv->net.upstream_retries));
    acc_buf_puts(b, "# HELP accrue_sandbox_limit_hits_total Agent turns ended by a limit.\n"
                    "# TYPE accrue_sandbox_limit_hits_total counter\n");
    static const char *const names[] = {"none", "memory", "instructions", "time", "output", "cancelled", "refused"};
    _Static_assert(sizeof names / sizeof *names == SANDBOX_LIMIT_REFUSED + 1, "a name for every sandbox_limit_t");
    for (int i = 1; i <= SANDBOX_LIMIT_REFUSED; i++)
        acc_buf_printf(b, "accrue_sandbox_limit_hits_total{limit=\"%s\"} %" PRIu64 "\n", names[i],
                       LOAD(m->limit_hits[i]));
    metric(b, "accrue_settlement_batches_total", "counter", "Settlement batches this server cut.",
           LOAD(m->batches_cut));
    metric(b, "accrue_settlement_failures_total", "counter", "Cuts that failed (tried again later).",
           LOAD(m->settle_failures));
    metric(b, "accrue_settlement_last_batch", "gauge", "The sequence of the last batch this server cut.",
           LOAD(m->last_batch));
    metric(b, "accrue_worker_queue_depth", "gauge", "Agent jobs waiting for a worker.",
           srv->pool ? rt_pool_depth(srv->pool) : 0);
    metric(b, "accrue_uptime_seconds", "gauge", "Seconds since the server started.",
           (rt_wall_ms() - srv->started_ms) / 1000);
}
