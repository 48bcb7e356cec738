/*
 * calls.c: model and dataset calls (calls.h).
 *
 * Providers: the built-in test provider (models test/echo and test/upper, dataset test/words,
 * answered in process at once), and `http` models: any OpenAI-compatible chat-completions
 * endpoint, called through outbound.c. An http call asks the upstream to stream when the caller
 * wants the answer as it is made (SSE parsed here, each content delta passed on at once), and
 * takes the usage from the response (the last chunk's, with stream_options.include_usage).
 *
 * Every answer reaches the caller in one shape, whatever the provider:
 *   {"model": NAME, "text": "...", "usage": {"input_tokens": N, "output_tokens": M}}
 * The meters' reservations and bookings plug in here as they land.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/calls.h"
#include "runtime/server/internal.h"
#include "runtime/server/outbound.h"
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
    /* http */
    rt_model model;
    rt_out *out;
    int status;
    bool streaming;
    acc_buf body;   /* the whole response (not streaming), or the SSE bytes not yet parsed */
    acc_buf text;   /* the answer's text so far */
    bool sse_done;
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

static void count(rt_server *srv, const rt_call_req *req, const rt_call_result *res) {
    atomic_fetch_add(req->kind == RT_CALL_MODEL ? &srv->m.model_calls : &srv->m.dataset_calls, 1);
    if (!res->ok) atomic_fetch_add(&srv->m.calls_failed, 1);
}

int rt_call_try_now(rt_server *srv, const rt_call_req *req, rt_call_result *res) {
    memset(res, 0, sizeof *res);
    rt_model model;
    acc_err err = {0};
    bool is_test = req->name_len > 5 && memcmp(req->name, "test/", 5) == 0;
    if (!is_test && req->kind == RT_CALL_MODEL && rt_backend_model(srv, req->name, req->name_len, &model, &err) == ACC_OK &&
        model.kind == RT_MODEL_HTTP)
        return RT_CALL_ASYNC;
    if (is_test) {
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
    } else {
        char msg[240];
        snprintf(msg, sizeof msg, "no %s named '%.*s'", req->kind == RT_CALL_MODEL ? "model" : "dataset",
                 (int)(req->name_len > 128 ? 128 : req->name_len), req->name);
        fail(res, "not_found", msg);
    }
    count(srv, req, res);
    usage_line(req, res);
    return RT_CALL_DONE;
}

static void call_event(rt_server *srv, rt_event *ev) {
    rt_call *c = (rt_call *)ev;
    (void)srv;
    c->done(c, c->ud, &c->res);
    rt_call_req_free(&c->req);
    rt_call_result_free(&c->res);
    acc_buf_free(&c->body);
    acc_buf_free(&c->text);
    free(c);
}

static void finish(rt_call *c) {
    if (c->finished) return;
    c->finished = true;
    rt_post(c->srv, &c->ev);
}

/* ---- http models ------------------------------------------------------------------------------ */

/* The answer in the one shape callers get. */
static void answer(rt_call *c, const char *text, size_t len) {
    rt_call_result *res = &c->res;
    res->ok = true;
    acc_buf_reset(&res->text);
    acc_buf_puts(&res->text, "{\"model\":");
    rt_json_str(&res->text, c->req.name, c->req.name_len);
    acc_buf_puts(&res->text, ",\"text\":");
    rt_json_str(&res->text, text, len);
    acc_buf_printf(&res->text, ",\"usage\":{\"input_tokens\":%" PRIu64 ",\"output_tokens\":%" PRIu64 "}}",
                   res->tokens_in, res->tokens_out);
    if (acc_buf_failed(&res->text)) fail(res, "internal", "out of memory");
}

static void take_usage(rt_call *c, json_t *usage) {
    if (!json_is_object(usage)) return;
    json_t *in = json_object_get(usage, "prompt_tokens"), *out = json_object_get(usage, "completion_tokens");
    if (json_is_integer(in) && json_integer_value(in) >= 0) c->res.tokens_in = (uint64_t)json_integer_value(in);
    if (json_is_integer(out) && json_integer_value(out) >= 0) c->res.tokens_out = (uint64_t)json_integer_value(out);
}

/* Parses the complete SSE events in c->body: content deltas go to the caller as they come. */
static void parse_sse(rt_call *c) {
    size_t used = 0;
    for (;;) {
        char *start = c->body.data + used;
        size_t left = c->body.len - used;
        char *nl = memchr(start, '\n', left);
        if (!nl) break;
        size_t linelen = (size_t)(nl - start);
        used += linelen + 1;
        if (linelen && start[linelen - 1] == '\r') linelen--;
        if (linelen < 5 || memcmp(start, "data:", 5) != 0) continue; /* blank lines, comments, event: */
        const char *d = start + 5;
        size_t dlen = linelen - 5;
        while (dlen && *d == ' ') d++, dlen--;
        if (dlen == 6 && memcmp(d, "[DONE]", 6) == 0) {
            c->sse_done = true;
            continue;
        }
        json_t *chunk = json_loadb(d, dlen, 0, NULL);
        if (!chunk) continue;
        take_usage(c, json_object_get(chunk, "usage"));
        json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
        const char *t = json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
        if (t && *t) {
            size_t tl = strlen(t);
            acc_buf_append(&c->text, t, tl);
            if (c->on_chunk && !c->cancelled) c->on_chunk(c, c->ud, t, tl);
        }
        json_decref(chunk);
    }
    if (used) {
        memmove(c->body.data, c->body.data + used, c->body.len - used);
        c->body.len -= used;
    }
}

static void http_status(void *ud, int status) {
    rt_call *c = ud;
    c->status = status;
}

static void http_data(void *ud, const char *data, size_t len) {
    rt_call *c = ud;
    acc_buf_append(&c->body, data, len);
    if (c->streaming && c->status == 200) parse_sse(c);
}

static void http_done(void *ud, int result, int status, const char *msg) {
    rt_call *c = ud;
    c->out = NULL;
    rt_call_result *res = &c->res;
    char m[400];
    if (c->cancelled || result == ACC_ECANCELLED) {
        fail(res, "cancelled", "the call was cancelled");
    } else if (result != ACC_OK) {
        snprintf(m, sizeof m, "model '%s': %s", c->model.name, msg);
        fail(res, result == ACC_ETIMEOUT ? "timeout" : "upstream_error", m);
    } else if (status != 200) {
        json_t *e = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
        const char *em = json_string_value(json_object_get(json_object_get(e, "error"), "message"));
        snprintf(m, sizeof m, "model '%s': its endpoint answered %d%s%.200s", c->model.name, status, em ? ": " : "",
                 em ? em : "");
        json_decref(e);
        fail(res, status == 429 ? "limit_exceeded" : "upstream_error", m);
    } else if (c->streaming) {
        if (c->body.len) { /* a last event without its blank line */
            acc_buf_putc(&c->body, '\n');
            parse_sse(c);
        }
        answer(c, c->text.data ? c->text.data : "", c->text.len);
    } else {
        json_t *a = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
        json_t *choice = json_array_get(json_object_get(a, "choices"), 0);
        const char *t = json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
        if (!t) {
            snprintf(m, sizeof m, "model '%s': its endpoint's answer has no choices[0].message.content", c->model.name);
            fail(res, "upstream_error", m);
        } else {
            take_usage(c, json_object_get(a, "usage"));
            answer(c, t, strlen(t));
        }
        json_decref(a);
    }
    count(c->srv, &c->req, res);
    usage_line(&c->req, res);
    finish(c);
}

/* The upstream request: the caller's request with the upstream's model name; a prompt becomes a
 * user message. */
static char *upstream_body(rt_call *c, acc_err *err) {
    json_error_t jerr;
    json_t *req = json_loadb(c->req.json, c->req.json_len, 0, &jerr);
    if (!json_is_object(req)) {
        json_decref(req);
        acc_fail(err, ACC_EINVAL, "the request must be a JSON object");
        return NULL;
    }
    json_t *prompt = json_object_get(req, "prompt");
    if (json_is_string(prompt) && !json_object_get(req, "messages")) {
        json_t *msgs = json_pack("[{s:s,s:O}]", "role", "user", "content", prompt);
        json_object_set_new(req, "messages", msgs);
    }
    json_object_del(req, "prompt");
    if (!json_is_array(json_object_get(req, "messages"))) {
        json_decref(req);
        acc_fail(err, ACC_EINVAL, "the request needs a prompt or messages");
        return NULL;
    }
    json_object_set_new(req, "model", json_string(c->model.upstream));
    json_object_set_new(req, "stream", json_boolean(c->streaming));
    if (c->streaming) json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
    else json_object_del(req, "stream_options");
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text) acc_fail(err, ACC_ENOMEM, "out of memory");
    return text;
}

static void start_http(rt_call *c) {
    acc_err err = {0};
    if (rt_backend_model(c->srv, c->req.name, c->req.name_len, &c->model, &err) != ACC_OK) {
        fail(&c->res, "not_found", err.msg);
        goto failed;
    }
    c->streaming = c->on_chunk != NULL;
    char *body = upstream_body(c, &err);
    if (!body) {
        fail(&c->res, "bad_request", err.msg);
        goto failed;
    }
    char url[700];
    size_t ul = strlen(c->model.url);
    while (ul && c->model.url[ul - 1] == '/') ul--;
    snprintf(url, sizeof url, "%.*s/chat/completions", (int)ul, c->model.url);
    const char *key = c->model.api_key_env[0] ? getenv(c->model.api_key_env) : NULL;
    rt_out_req oreq = {.url = url,
                       .method = "POST",
                       .body = body,
                       .body_len = strlen(body),
                       .bearer = key,
                       .connect_timeout_ms = c->srv->cfg.upstream_connect_ms,
                       .total_timeout_ms = c->srv->cfg.upstream_total_ms};
    rt_out_cb cb = {.ud = c, .on_status = http_status, .on_data = http_data, .on_done = http_done};
    c->out = rt_out_start(c->srv, &oreq, &cb, &err);
    free(body);
    if (c->out) return;
    char m[400];
    snprintf(m, sizeof m, "model '%s': %s", c->model.name, err.msg);
    fail(&c->res, "upstream_error", m);
failed:
    count(c->srv, &c->req, &c->res);
    usage_line(&c->req, &c->res);
    finish(c);
}

/* ---- entry points ----------------------------------------------------------------------------- */

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
        return c;
    }
    start_http(c);
    return c;
}

rt_call *rt_call_start(rt_server *srv, const rt_call_req *req, rt_call_done_fn done, void *ud) {
    return rt_call_start_streaming(srv, req, done, NULL, ud);
}

void rt_call_cancel(rt_call *c) {
    if (!c || c->finished || c->cancelled) return; /* finished calls report what they did */
    c->cancelled = true;
    if (c->out) {
        rt_out_cancel(c->out); /* http_done follows */
        return;
    }
    fail(&c->res, "cancelled", "the call was cancelled");
    finish(c);
}

void rt_call_balance_json(rt_server *srv, const char *account, acc_buf *out) {
    (void)srv, (void)account, (void)out; /* balances arrive with the ledger */
}

void rt_call_models_json(rt_server *srv, acc_buf *out) {
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
