/*
 * calls.c: model and dataset calls (calls.h).
 *
 * Today's providers: the built-in test provider (models test/echo and test/upper, dataset
 * test/words, answered in process at once, free). The registry's models (built-in n-gram models,
 * `http` models called through outbound.c) and the meters' reservations and bookings plug in
 * here as they land, behind the same two entry points.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/calls.h"
#include "runtime/server/internal.h"
#include "runtime/test_provider.h"

struct rt_call {
    rt_event ev; /* first: the completion event */
    rt_server *srv;
    rt_call_req req;
    rt_call_result res;
    rt_call_done_fn done;
    rt_call_chunk_fn on_chunk;
    void *ud;
    bool finished; /* res is final; the event is queued or has run */
    bool cancelled;
};

void rt_call_req_copy(rt_call_req *dst, const rt_call_req *src) {
    *dst = *src;
    char *name = malloc(src->name_len + 1), *json = malloc(src->json_len + 1);
    if (name) {
        memcpy(name, src->name, src->name_len);
        name[src->name_len] = 0;
    }
    if (json) {
        memcpy(json, src->json, src->json_len);
        json[src->json_len] = 0;
    }
    if (!name || !json) { /* out of memory: an empty request, which resolves to nothing */
        free(name);
        free(json);
        name = json = NULL;
        dst->name_len = dst->json_len = 0;
    }
    dst->name = name ? name : "";
    dst->json = json ? json : "";
    dst->owned = name != NULL;
}

void rt_call_req_free(rt_call_req *req) {
    if (req->owned) {
        free((char *)req->name);
        free((char *)req->json);
    }
    memset(req, 0, sizeof *req);
}

void rt_call_result_free(rt_call_result *res) {
    acc_buf_free(&res->text);
    acc_buf_free(&res->usage_line);
    memset(res, 0, sizeof *res);
}

static void fail(rt_call_result *res, const char *code, const char *msg) {
    res->ok = false;
    res->code = code;
    acc_buf_reset(&res->text);
    acc_buf_puts(&res->text, msg);
}

static bool is_test_name(const rt_call_req *req) { return req->name_len > 5 && memcmp(req->name, "test/", 5) == 0; }

/* One line of the usage frame for a finished call. */
static void usage_line(const rt_call_req *req, rt_call_result *res) {
    acc_buf *u = &res->usage_line;
    acc_buf_reset(u);
    acc_buf_printf(u, "{\"resource\":\"%s:", req->kind == RT_CALL_MODEL ? "model" : "dataset");
    rt_json_escape(u, req->name, req->name_len);
    acc_buf_printf(u, "\",\"ok\":%s,\"tokens_in\":%" PRIu64 ",\"tokens_out\":%" PRIu64 ",\"cost\":%" PRIu64
                      ",\"payees\":[]}",
                   res->ok ? "true" : "false", res->tokens_in, res->tokens_out, res->cost);
}

int rt_call_try_now(rt_server *srv, const rt_call_req *req, rt_call_result *res) {
    (void)srv;
    memset(res, 0, sizeof *res);
    if (is_test_name(req)) {
        sandbox_call_kind_t kind = req->kind == RT_CALL_MODEL ? SANDBOX_CALL_MODEL : SANDBOX_CALL_DATASET;
        res->ok = test_provider_answer(kind, req->name, req->name_len, req->json, req->json_len, &res->text) != 0;
        if (!res->ok) res->code = "not_found";
        if (res->ok && req->kind == RT_CALL_MODEL) {
            json_t *a = json_loadb(res->text.data, res->text.len, 0, NULL);
            json_t *u = json_object_get(a, "usage");
            res->tokens_in = (uint64_t)json_integer_value(json_object_get(u, "input_tokens"));
            res->tokens_out = (uint64_t)json_integer_value(json_object_get(u, "output_tokens"));
            json_decref(a);
        }
        if (acc_buf_failed(&res->text)) fail(res, "internal", "out of memory");
        atomic_fetch_add(req->kind == RT_CALL_MODEL ? &srv->m.model_calls : &srv->m.dataset_calls, 1);
        if (!res->ok) atomic_fetch_add(&srv->m.calls_failed, 1);
        usage_line(req, res);
        return RT_CALL_DONE;
    }
    char msg[240];
    snprintf(msg, sizeof msg, "no %s named '%.*s'", req->kind == RT_CALL_MODEL ? "model" : "dataset",
             (int)(req->name_len > 128 ? 128 : req->name_len), req->name);
    fail(res, "not_found", msg);
    atomic_fetch_add(&srv->m.calls_failed, 1);
    return RT_CALL_DONE;
}

static void call_event(rt_server *srv, rt_event *ev) {
    rt_call *c = (rt_call *)ev;
    (void)srv;
    c->done(c, c->ud, &c->res);
    rt_call_req_free(&c->req);
    rt_call_result_free(&c->res);
    free(c);
}

static void finish(rt_call *c) {
    if (c->finished) return;
    c->finished = true;
    rt_post(c->srv, &c->ev);
}

rt_call *rt_call_start_streaming(rt_server *srv, const rt_call_req *req, rt_call_done_fn done,
                                 rt_call_chunk_fn on_chunk, void *ud) {
    rt_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ev.fn = call_event;
    c->srv = srv;
    c->done = done;
    c->on_chunk = on_chunk;
    c->ud = ud;
    rt_call_req_copy(&c->req, req);
    if (rt_call_try_now(srv, &c->req, &c->res) == RT_CALL_DONE) {
        if (c->res.ok && c->on_chunk && c->req.kind == RT_CALL_MODEL) {
            /* An answer made at once streams as one piece. */
            json_t *a = json_loadb(c->res.text.data, c->res.text.len, 0, NULL);
            const char *t = json_string_value(json_object_get(a, "text"));
            if (t) c->on_chunk(c, c->ud, t, strlen(t));
            json_decref(a);
        }
        finish(c);
    }
    return c;
}

rt_call *rt_call_start(rt_server *srv, const rt_call_req *req, rt_call_done_fn done, void *ud) {
    return rt_call_start_streaming(srv, req, done, NULL, ud);
}

void rt_call_cancel(rt_call *c) {
    if (!c || c->finished) return; /* finished calls report what they did */
    c->cancelled = true;
    fail(&c->res, "cancelled", "the call was cancelled");
    finish(c);
}

void rt_call_balance_json(rt_server *srv, const char *account, acc_buf *out) {
    (void)srv, (void)account, (void)out; /* balances arrive with the ledger */
}

void rt_call_models_json(rt_server *srv, acc_buf *out) {
    (void)srv;
    static const char *const names[] = {"test/echo", "test/upper"};
    acc_buf_putc(out, '[');
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (i) acc_buf_putc(out, ',');
        acc_buf_puts(out, "{\"id\":");
        rt_json_cstr(out, names[i]);
        acc_buf_printf(out, ",\"object\":\"model\",\"created\":%" PRIu64 ",\"owned_by\":\"accrue\"}",
                       srv->started_ms / 1000);
    }
    acc_buf_putc(out, ']');
}
