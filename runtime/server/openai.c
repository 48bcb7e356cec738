/*
 * openai.c: the OpenAI-compatible endpoint: POST /v1/chat/completions and GET /v1/models.
 *
 * Any OpenAI client with an accrue API key calls any registered model through here, metered and
 * attributed like an agent's call (calls.h). Request and response follow OpenAI's shapes; with
 * "stream": true the answer goes out as server-sent events, chunk by chunk as the model makes it,
 * with the usage in a last chunk when stream_options.include_usage is set, then "data: [DONE]".
 * Errors use OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with accrue's stable
 * error name as the code.
 *
 * The request id: X-Request-Id from the client, or, when it sends none, the response's own id
 * ("chatcmpl-..."); it goes back in the X-Request-Id header and onto the call's usage event, so a
 * client can reconcile its calls one to one.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/calls.h"
#include "runtime/server/internal.h"

typedef struct chat_op {
    rt_req *r; /* NULL once the client has gone */
    rt_call *call;
    bool stream, include_usage, started;
    char id[48];
    char model[160];
    uint64_t created;
} chat_op;

static const char *openai_type(unsigned status) {
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "invalid_request_error";
    case 402: return "insufficient_quota";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static void openai_error_json(acc_buf *b, unsigned status, const char *code, const char *param, const char *msg) {
    acc_buf_puts(b, "{\"error\":{\"message\":");
    rt_json_cstr(b, msg);
    acc_buf_printf(b, ",\"type\":\"%s\",\"param\":", openai_type(status));
    if (param) rt_json_cstr(b, param);
    else acc_buf_puts(b, "null");
    acc_buf_puts(b, ",\"code\":");
    rt_json_cstr(b, code);
    acc_buf_puts(b, "}}");
}

static void openai_error(rt_req *r, unsigned status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void openai_error(rt_req *r, unsigned status, const char *code, const char *param, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    acc_buf b = ACC_BUF_INIT;
    openai_error_json(&b, status, code, param, msg);
    rt_respond_json(r, status, &b);
    acc_buf_free(&b);
}

static unsigned status_of_code(const char *code) {
    if (!code) return 500;
    if (!strcmp(code, "not_found")) return 404;
    if (!strcmp(code, "insufficient_funds")) return 402;
    if (!strcmp(code, "limit_exceeded")) return 429;
    if (!strcmp(code, "bad_request")) return 400;
    if (!strcmp(code, "cancelled")) return 499;
    if (!strcmp(code, "timeout")) return 504;
    if (!strcmp(code, "upstream_error")) return 502;
    if (!strcmp(code, "unavailable")) return 503;
    return 500;
}

static void chunk_head(acc_buf *b, const chat_op *op) {
    acc_buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%" PRIu64 ",\"model\":",
                   op->id, op->created);
    rt_json_cstr(b, op->model);
}

static void send_chunk(chat_op *op, const char *delta_json, const char *finish) {
    acc_buf b = ACC_BUF_INIT;
    chunk_head(&b, op);
    acc_buf_printf(&b, ",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":", delta_json);
    if (finish) acc_buf_printf(&b, "\"%s\"", finish);
    else acc_buf_puts(&b, "null");
    acc_buf_puts(&b, "}]}");
    if (!acc_buf_failed(&b)) rt_sse_send(op->r, b.data, b.len);
    acc_buf_free(&b);
}

static void start_stream(chat_op *op) {
    if (op->started) return;
    op->started = true;
    rt_sse_start(op->r, NULL);
    send_chunk(op, "{\"role\":\"assistant\",\"content\":\"\"}", NULL);
}

static void on_chunk(rt_call *call, void *ud, const char *text, size_t len) {
    chat_op *op = ud;
    (void)call;
    if (!op->r || !op->stream || !len) return;
    start_stream(op);
    acc_buf d = ACC_BUF_INIT;
    acc_buf_puts(&d, "{\"content\":");
    rt_json_str(&d, text, len);
    acc_buf_putc(&d, '}');
    if (!acc_buf_failed(&d)) send_chunk(op, d.data, NULL);
    acc_buf_free(&d);
}

static void usage_json(acc_buf *b, const rt_call_result *res) {
    acc_buf_printf(b,
                   "{\"prompt_tokens\":%" PRIu64 ",\"completion_tokens\":%" PRIu64 ",\"total_tokens\":%" PRIu64
                   ",\"cost\":%" PRIu64 "}",
                   res->tokens_in, res->tokens_out, res->tokens_in + res->tokens_out, res->cost);
}

static void op_gone(void *p) {
    chat_op *op = p;
    op->r = NULL;
    if (op->call) rt_call_cancel(op->call); /* nobody will read the answer: void it */
}

static void on_done(rt_call *call, void *ud, const rt_call_result *res) {
    chat_op *op = ud;
    (void)call;
    op->call = NULL;
    rt_req *r = op->r;
    if (!r) {
        free(op);
        return;
    }
    r->op = NULL;
    r->op_gone = NULL;
    const char *text = NULL;
    json_t *answer = NULL;
    if (res->ok) {
        answer = json_loadb(res->text.data ? res->text.data : "", res->text.len, 0, NULL);
        text = json_string_value(json_object_get(answer, "text"));
    }
    if (!res->ok || !text) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", res->ok ? "the model answered without text" : res->text.data ? res->text.data : "");
        const char *code = res->ok ? "upstream_error" : (res->code ? res->code : "internal");
        unsigned status = status_of_code(code);
        if (op->started) { /* mid-stream: an error event, then the end */
            acc_buf b = ACC_BUF_INIT;
            openai_error_json(&b, status, code, NULL, msg);
            if (!acc_buf_failed(&b)) rt_sse_send(r, b.data, b.len);
            acc_buf_free(&b);
            rt_sse_send(r, "[DONE]", 6);
            rt_sse_end(r);
        } else {
            openai_error(r, status, code, status == 404 ? "model" : NULL, "%s", msg);
        }
        json_decref(answer);
        free(op);
        return;
    }
    if (op->stream) {
        if (!op->started) { /* an answer that was not streamed (a non-streaming upstream) */
            start_stream(op);
            on_chunk(NULL, op, text, strlen(text));
        }
        send_chunk(op, "{}", "stop");
        if (op->include_usage) {
            acc_buf b = ACC_BUF_INIT;
            chunk_head(&b, op);
            acc_buf_puts(&b, ",\"choices\":[],\"usage\":");
            usage_json(&b, res);
            acc_buf_putc(&b, '}');
            if (!acc_buf_failed(&b)) rt_sse_send(r, b.data, b.len);
            acc_buf_free(&b);
        }
        rt_sse_send(r, "[DONE]", 6);
        rt_sse_end(r);
    } else {
        acc_buf b = ACC_BUF_INIT;
        acc_buf_printf(&b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%" PRIu64 ",\"model\":", op->id,
                       op->created);
        rt_json_cstr(&b, op->model);
        acc_buf_puts(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        rt_json_cstr(&b, text);
        acc_buf_puts(&b, "},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":");
        usage_json(&b, res);
        acc_buf_putc(&b, '}');
        rt_respond_json(r, 200, &b);
        acc_buf_free(&b);
    }
    json_decref(answer);
    free(op);
}

/* Checks the request's shape the way OpenAI does, naming the parameter at fault. */
static bool check_request(rt_req *r, json_t *body) {
    json_t *model = json_object_get(body, "model"), *messages = json_object_get(body, "messages");
    if (!model) return openai_error(r, 400, "bad_request", "model", "you must provide a model parameter"), false;
    if (!json_is_string(model) || !json_string_length(model))
        return openai_error(r, 400, "bad_request", "model", "'model' must be a non-empty string"), false;
    if (!json_is_array(messages) || !json_array_size(messages))
        return openai_error(r, 400, "bad_request", "messages", "'messages' must be a non-empty array"), false;
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role)) {
            openai_error(r, 400, "bad_request", "messages", "messages[%zu] needs a 'role' string", i);
            return false;
        }
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool") &&
            strcmp(rs, "developer")) {
            openai_error(r, 400, "bad_request", "messages", "messages[%zu].role '%.40s' is not one of system, "
                         "developer, user, assistant, tool", i, rs);
            return false;
        }
        if (content && !json_is_string(content) && !json_is_array(content) && !json_is_null(content)) {
            openai_error(r, 400, "bad_request", "messages", "messages[%zu].content must be a string or an array", i);
            return false;
        }
    }
    static const char *const ints[] = {"max_tokens", "max_completion_tokens", "n", "seed"};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        json_t *v = json_object_get(body, ints[k]);
        if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 0)) {
            openai_error(r, 400, "bad_request", ints[k], "'%s' must be a non-negative integer", ints[k]);
            return false;
        }
    }
    json_t *n = json_object_get(body, "n");
    if (json_is_integer(n) && json_integer_value(n) != 1) {
        openai_error(r, 400, "bad_request", "n", "only n = 1 is supported");
        return false;
    }
    static const char *const nums[] = {"temperature", "top_p", "presence_penalty", "frequency_penalty"};
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        json_t *v = json_object_get(body, nums[k]);
        if (v && !json_is_null(v) && !json_is_number(v)) {
            openai_error(r, 400, "bad_request", nums[k], "'%s' must be a number", nums[k]);
            return false;
        }
    }
    json_t *stream = json_object_get(body, "stream");
    if (stream && !json_is_null(stream) && !json_is_boolean(stream)) {
        openai_error(r, 400, "bad_request", "stream", "'stream' must be a boolean");
        return false;
    }
    json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        json_t *iu = json_object_get(so, "include_usage");
        if (!json_is_object(so) || (iu && !json_is_boolean(iu))) {
            openai_error(r, 400, "bad_request", "stream_options",
                         "'stream_options' must be an object with a boolean 'include_usage'");
            return false;
        }
    }
    return true;
}

void rt_openai_chat(rt_req *r) {
    rt_server *srv = r->srv;
    atomic_fetch_add(&srv->m.openai_requests, 1);
    rt_principal who;
    if (!r->auth[0]) {
        openai_error(r, 401, "unauthorized", NULL, "no API key: send \"Authorization: Bearer KEY\"");
        return;
    }
    acc_err err = {0};
    if (rt_backend_auth(srv, r->auth, strlen(r->auth), &who, &err) != ACC_OK) {
        openai_error(r, 401, "unauthorized", NULL, "%s", err.msg);
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body)) {
        if (!body) openai_error(r, 400, "bad_request", NULL, "the body is not JSON: %s (at byte %d)", jerr.text, jerr.position);
        else openai_error(r, 400, "bad_request", NULL, "the body must be a JSON object");
        json_decref(body);
        return;
    }
    if (!check_request(r, body)) {
        json_decref(body);
        return;
    }
    chat_op *op = calloc(1, sizeof *op);
    if (!op) {
        json_decref(body);
        openai_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    op->r = r;
    char hex[33];
    rt_random_hex(hex, 12);
    snprintf(op->id, sizeof op->id, "chatcmpl-%s", hex);
    snprintf(op->model, sizeof op->model, "%s", json_string_value(json_object_get(body, "model")));
    op->created = rt_wall_ms() / 1000;
    op->stream = json_is_true(json_object_get(body, "stream"));
    op->include_usage = json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
    if (strncmp(r->request_id, "req_", 4) == 0) /* made up here: the response id is the request id */
        snprintf(r->request_id, sizeof r->request_id, "%s", op->id);

    /* The model gets the chat request as it came, without the fields that are ours to handle. */
    json_object_del(body, "model");
    json_object_del(body, "stream");
    json_object_del(body, "stream_options");
    char *request = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!request) {
        free(op);
        openai_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    rt_call_req req = {
        .kind = RT_CALL_MODEL,
        .name = op->model,
        .name_len = strlen(op->model),
        .json = request,
        .json_len = strlen(request),
    };
    snprintf(req.payer, sizeof req.payer, "%s", who.account);
    snprintf(req.request_id, sizeof req.request_id, "%s", r->request_id);
    r->op = op;
    r->op_gone = op_gone;
    op->call = rt_call_start_streaming(srv, &req, on_done, op->stream ? on_chunk : NULL, op);
    free(request);
    if (!op->call) {
        r->op = NULL;
        r->op_gone = NULL;
        free(op);
        openai_error(r, 503, "unavailable", NULL, "out of memory");
    }
}

void rt_openai_models(rt_req *r) {
    rt_principal who;
    if (!r->auth[0]) {
        openai_error(r, 401, "unauthorized", NULL, "no API key: send \"Authorization: Bearer KEY\"");
        return;
    }
    acc_err err = {0};
    if (rt_backend_auth(r->srv, r->auth, strlen(r->auth), &who, &err) != ACC_OK) {
        openai_error(r, 401, "unauthorized", NULL, "%s", err.msg);
        return;
    }
    acc_buf b = ACC_BUF_INIT;
    acc_buf_puts(&b, "{\"object\":\"list\",\"data\":");
    rt_call_models_json(r->srv, &b);
    acc_buf_putc(&b, '}');
    rt_respond_json(r, 200, &b);
    acc_buf_free(&b);
}
