/*
 * upstream.c: how the meters' calls to `http` models reach their endpoints from the server.
 *
 * runtime/metered.c prices, reserves, attributes and books a call to an HTTP model; it leaves the
 * network to the host (rt_http_t). Here, start runs on the worker that runs the call, takes the
 * OpenAI request metered.c made, and hands it to the loop, which sends it with the outbound client
 * (outbound.c). When the caller wants the answer as it is made (an agent's models.call with
 * stream = true, a streamed chat completion), the upstream is asked to stream, each content delta
 * goes to the caller on the loop as it arrives, and the whole answer is put back together (text,
 * finish reason, usage) for metered.c, which wants one chat-completions response. A streamed
 * answer is cut at the request's max_tokens as it arrives, where metered.c cuts a whole one
 * (rt_output_cut), and the request ends there: no caller gets output it was not charged for.
 * For the same reason a streamed call that is cancelled (its client left, its turn was cancelled)
 * or runs out of time after some of its deltas were passed on is not voided but charged for what
 * was passed on (rt_http_cut); one that passed nothing on is voided, as any failure.
 * The end goes back to a worker (the owner decides which, through on_done), where rt_upcall_finish gives it to
 * rt_http_done: attribution reads the registry, and the worker's handle is the one to use.
 * `accrue run` uses the same path on a loop of its own (rt_upstream_local): there the thread that
 * runs the sandbox also services the loop, and finishes the call as soon as it ends.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/internal.h"
#include "runtime/server/outbound.h"

_Thread_local rt_call_owner *rt_tl_owner;

struct rt_upcall {
    rt_event ev; /* first: the start, posted to the loop */
    rt_upcall *link;
    rt_net *net;
    rt_http_call_t *hc;
    rt_call_owner owner;
    char url[700];
    char model[REGISTRY_NAME_MAX + 1];
    char *body;
    char bearer[256];
    uint32_t total_ms;
    rt_out *out;
    int status;
    bool cancelled;
    const char *cancel_why; /* static: who cancelled it, for its usage event */
    acc_buf raw;  /* the response (not streaming), or SSE bytes not parsed yet */
    acc_buf text; /* streaming: the content so far (up to the cut) */
    size_t passed; /* how much of it went to the owner (on_chunk) */
    rt_output_limit_t limit; /* streaming: the request's max_tokens (the text is cut there) */
    char finish[24];
    json_t *usage;
    /* the end, for rt_upcall_finish */
    bool ok;
    int cut;         /* ACC_ECANCELLED or ACC_ETIMEOUT: ended early after text[0..passed) was passed on */
    acc_buf response; /* the answer, or the error message (a cut call's too) */
};

static void up_start(rt_server *srv, rt_event *ev);

static int http_start(void *ud, const registry_model_t *model, const char *request_json, size_t len,
                      rt_http_call_t *hc) {
    rt_net *net = ud;
    rt_call_owner *owner = rt_tl_owner;
    if (!owner) return -1; /* a call outside the server's own paths: refuse */
    rt_upcall *u = calloc(1, sizeof *u);
    if (!u) return -1;
    u->ev.fn = up_start;
    u->net = net;
    u->hc = hc;
    u->owner = *owner;
    snprintf(u->model, sizeof u->model, "%s", model->name);
    size_t ul = strlen(model->url);
    while (ul && model->url[ul - 1] == '/') ul--;
    snprintf(u->url, sizeof u->url, "%.*s/chat/completions", (int)ul, model->url);
    const char *key = model->api_key_env[0] ? getenv(model->api_key_env) : NULL;
    if (key) snprintf(u->bearer, sizeof u->bearer, "%s", key);
    if (!owner->stream) {
        /* metered.c's request as it is: a compact JSON object (the way json_dumps would put it) */
        u->body = len && request_json[0] == '{' ? strndup(request_json, len) : NULL;
    } else {
        json_t *req = json_loadb(request_json, len, 0, NULL);
        json_t *mt = json_object_get(req, "max_tokens"); /* metered.c always sets it */
        u->limit.max = json_is_integer(mt) && json_integer_value(mt) > 0 ? (uint64_t)json_integer_value(mt) : 0;
        json_object_set_new(req, "stream", json_true());
        json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
        u->body = json_is_object(req) ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
    }
    if (!u->body) {
        free(u);
        return -1;
    }
    u->total_ms = net->total_ms ? net->total_ms : 60000;
    if (owner->deadline_ms) { /* never past the turn's own time limit */
        uint64_t now = rt_now_ns() / 1000000;
        uint64_t left = owner->deadline_ms > now ? owner->deadline_ms - now : 1;
        if (left < u->total_ms) u->total_ms = (uint32_t)left;
    }
    rt_net_post(net, &u->ev);
    return 0;
}

rt_http_t rt_upstream_hook(rt_net *net) { return (rt_http_t){.ud = net, .start = http_start}; }

/* accrue run: one thread runs the sandbox and the loop, so the call is finished as soon as the
 * upstream is done (rt_http_done then answers the waiting sandbox, or queues its booking). */
static void local_done(void *ud, rt_upcall *u) {
    (void)ud;
    rt_upcall_finish(u);
}

static int local_start(void *ud, const registry_model_t *model, const char *request_json, size_t len,
                       rt_http_call_t *hc) {
    rt_call_owner owner = {.ud = ud, .deadline_ms = rt_http_call_deadline_ns(hc) / 1000000, .on_done = local_done};
    rt_call_owner *prev = rt_tl_owner;
    rt_tl_owner = &owner;
    int rc = http_start(ud, model, request_json, len, hc);
    rt_tl_owner = prev;
    return rc;
}

rt_http_t rt_upstream_local(rt_net *net) { return (rt_http_t){.ud = net, .start = local_start}; }

/* ---- the loop's side ----------------------------------------------------------------------------- */

static void take_usage(rt_upcall *u, json_t *usage) {
    if (!json_is_object(usage)) return;
    json_decref(u->usage);
    u->usage = json_incref(usage);
}

/* Hands the owner the text up to upto, what it has not had yet. */
static void pass_on(rt_upcall *u, size_t upto) {
    if (upto > u->passed && u->owner.on_chunk && !u->cancelled)
        u->owner.on_chunk(u->owner.ud, u->text.data + u->passed, upto - u->passed);
    if (upto > u->passed) u->passed = upto;
}

/* A content delta: appended to the text and passed on, up to the request's max_tokens. An upstream
 * that goes past them (it ignored max_tokens) is cut where rt_http_done would cut its whole answer:
 * the rest is neither passed on nor kept, and the caller's answer ends there ("length"). */
static void take_delta(rt_upcall *u, const char *d, size_t len) {
    acc_buf_append(&u->text, d, len);
    if (acc_buf_failed(&u->text)) return; /* out_done fails the call */
    size_t keep = rt_output_limit_feed(&u->limit, u->text.data, u->text.len);
    if (u->limit.reached) {
        u->text.len = keep;
        u->text.data[keep] = '\0';
        snprintf(u->finish, sizeof u->finish, "length");
    }
    pass_on(u, keep);
}

/* Parses complete SSE events: each content delta goes to the owner at once. */
static void parse_sse(rt_upcall *u) {
    size_t used = 0;
    while (!u->limit.reached) {
        char *start = u->raw.data + used;
        size_t left = u->raw.len - used;
        char *nl = memchr(start, '\n', left);
        if (!nl) break;
        size_t linelen = (size_t)(nl - start);
        used += linelen + 1;
        if (linelen && start[linelen - 1] == '\r') linelen--;
        if (linelen < 5 || memcmp(start, "data:", 5) != 0) continue;
        const char *d = start + 5;
        size_t dlen = linelen - 5;
        while (dlen && *d == ' ') d++, dlen--;
        if (dlen == 6 && memcmp(d, "[DONE]", 6) == 0) continue;
        json_t *chunk = json_loadb(d, dlen, 0, NULL);
        if (!chunk) continue;
        take_usage(u, json_object_get(chunk, "usage"));
        json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
        const char *fr = json_string_value(json_object_get(choice, "finish_reason"));
        if (fr) snprintf(u->finish, sizeof u->finish, "%s", fr);
        json_t *c = json_object_get(json_object_get(choice, "delta"), "content");
        if (json_is_string(c) && json_string_length(c)) take_delta(u, json_string_value(c), json_string_length(c));
        json_decref(chunk);
    }
    if (used) {
        memmove(u->raw.data, u->raw.data + used, u->raw.len - used);
        u->raw.len -= used;
    }
}

static void out_status(void *ud, int status) {
    rt_upcall *u = ud;
    u->status = status;
}

static void out_data(void *ud, const char *data, size_t len) {
    rt_upcall *u = ud;
    if (u->limit.reached) return; /* cut: the rest is not wanted (the request is ending) */
    acc_buf_append(&u->raw, data, len);
    if (u->owner.stream && u->status == 200) parse_sse(u);
    /* Cut at max_tokens: the upstream's answer is over for us. Ending the request now spares the
     * upstream's owner its rest and keeps a runaway upstream from running into the time limit,
     * which would void a call whose output the caller already has. out_done answers with what
     * was passed on; its usage is ours (the upstream's comes at the end, which is not awaited). */
    if (u->limit.reached && u->out && !u->cancelled) rt_out_cancel(u->out);
}

static void out_done(void *ud, int result, int status, const char *msg) {
    rt_upcall *u = ud;
    u->out = NULL;
    acc_buf *r = &u->response;
    if (u->limit.reached && !u->cancelled) { /* cut: what came after does not matter */
        result = ACC_OK;
        status = 200;
    }
    if (u->cancelled || result == ACC_ECANCELLED) {
        acc_buf_puts(r, u->cancel_why ? u->cancel_why : "the call was cancelled");
        if (u->passed) u->cut = ACC_ECANCELLED;
    } else if (result != ACC_OK) {
        acc_buf_printf(r, "%s%s", result == ACC_ETIMEOUT ? "timeout: " : "", msg);
        if (u->passed && result == ACC_ETIMEOUT) u->cut = ACC_ETIMEOUT;
    } else if (status != 200) {
        json_t *e = json_loadb(u->raw.data ? u->raw.data : "", u->raw.len, 0, NULL);
        const char *em = json_string_value(json_object_get(json_object_get(e, "error"), "message"));
        acc_buf_printf(r, "its endpoint answered %d%s%.200s", status, em ? ": " : "", em ? em : "");
        json_decref(e);
    } else if (u->owner.stream) {
        if (u->raw.len) { /* a last event without its blank line */
            acc_buf_putc(&u->raw, '\n');
            parse_sse(u);
        }
        pass_on(u, u->text.len); /* what waited after the last token (rt_output_limit_feed) */
        /* One chat-completions response, as metered.c reads it. */
        acc_buf_puts(r, "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        acc_buf_json_string(r, u->text.data ? u->text.data : "", u->text.len);
        acc_buf_printf(r, "},\"finish_reason\":\"%s\"}]", u->finish[0] ? u->finish : "stop");
        if (u->usage) {
            char *us = json_dumps(u->usage, JSON_COMPACT);
            if (us) acc_buf_printf(r, ",\"usage\":%s", us);
            free(us);
        }
        acc_buf_putc(r, '}');
        u->ok = true;
    } else {
        acc_buf_append(r, u->raw.data ? u->raw.data : "", u->raw.len);
        u->ok = true;
    }
    if (acc_buf_failed(r) || acc_buf_failed(&u->text)) {
        acc_buf_reset(r);
        acc_buf_puts(r, "out of memory");
        u->ok = false;
    }
    acc_buf_free(&u->raw);
    u->owner.on_done(u->owner.ud, u);
}

static void up_start(rt_server *srv, rt_event *ev) {
    rt_upcall *u = (rt_upcall *)ev;
    (void)srv;
    if (u->owner.on_start) u->owner.on_start(u->owner.ud, u);
    if (u->cancelled) {
        out_done(u, ACC_ECANCELLED, 0, "cancelled");
        return;
    }
    acc_err err = {0};
    rt_out_req req = {.url = u->url,
                      .method = "POST",
                      .body = u->body,
                      .body_len = strlen(u->body),
                      .bearer = u->bearer[0] ? u->bearer : NULL,
                      .connect_timeout_ms = u->net->connect_ms,
                      .total_timeout_ms = u->total_ms};
    rt_out_cb cb = {.ud = u, .on_status = out_status, .on_data = out_data, .on_done = out_done};
    u->out = rt_out_start(u->net, &req, &cb, &err); /* copies the body */
    free(u->body);
    u->body = NULL;
    if (!u->out) out_done(u, ACC_EUPSTREAM, 0, err.msg);
}

const char *rt_upcall_model(const rt_upcall *u) { return u->model; }
rt_upcall **rt_upcall_link(rt_upcall *u) { return &u->link; }

void rt_upcall_cancel(rt_upcall *u, const char *why) {
    if (!u || u->cancelled) return;
    u->cancelled = true;
    u->cancel_why = why;
    if (u->out) rt_out_cancel(u->out);
}

void rt_upcall_finish(rt_upcall *u) {
    const char *resp = u->response.data ? u->response.data : "";
    /* what was passed on stays the caller's: charged (the text past it, waiting for a token more, was not) */
    if (u->cut && !acc_buf_failed(&u->text)) rt_http_cut(u->hc, u->cut, resp, u->text.data, u->passed);
    else rt_http_done(u->hc, u->ok, resp, u->response.len);
    acc_buf_free(&u->response);
    acc_buf_free(&u->text);
    json_decref(u->usage);
    free(u->body);
    free(u);
}
