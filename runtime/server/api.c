/*
 * api.c: the route table and the small handlers: health, metrics, the API's own description.
 * The registry's, the meters' and settlement's routes join the table as those land.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "runtime/server/internal.h"

static void healthz(rt_req *r) {
    rt_server *srv = r->srv;
    acc_buf b = ACC_BUF_INIT;
    acc_buf_printf(&b,
                   "{\"status\":\"ok\",\"uptime_s\":%" PRIu64 ",\"sessions\":%" PRIdFAST64
                   ",\"connections\":%" PRIdFAST64 ",\"workers\":%u}",
                   (rt_wall_ms() - srv->started_ms) / 1000, atomic_load(&srv->m.sessions_live),
                   atomic_load(&srv->m.connections_ws), srv->cfg.workers);
    rt_respond_json(r, 200, &b);
    acc_buf_free(&b);
}

static void metrics(rt_req *r) {
    acc_buf b = ACC_BUF_INIT;
    rt_metrics_render(r->srv, &b);
    if (acc_buf_failed(&b)) rt_respond_error(r, 503, "unavailable", "out of memory");
    else rt_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
    acc_buf_free(&b);
}

static void openapi(rt_req *r) {
    acc_buf b = ACC_BUF_INIT;
    rt_openapi_json(&b);
    rt_respond_json(r, 200, &b);
    acc_buf_free(&b);
}

const rt_route rt_routes[] = {
    {RT_GET, "/healthz", healthz},
    {RT_GET, "/metrics", metrics},
    {RT_GET, "/v1/openapi.json", openapi},
    {RT_GET, "/v1/models", rt_openai_models},
    {RT_POST, "/v1/chat/completions", rt_openai_chat},
};
const size_t rt_nroutes = sizeof rt_routes / sizeof rt_routes[0];
