/*
 * openai.c: the OpenAI-compatible endpoint: POST /v1/chat/completions and GET /v1/models.
 *
 * Any OpenAI client with an accrue API key calls any registered model here, metered and attributed
 * like an agent's call: a worker opens a metered session for the request (no sandbox, no agent;
 * the key's account pays) and makes the call through runtime/metered.c, which reserves, runs the
 * model (a built-in one on that worker, an http one through upstream.c), attributes and books it.
 * The response leaves only once the booking is durable. With "stream": true the answer goes out as
 * server-sent events: an http model's deltas as they arrive, a built-in model's answer in one
 * piece, then the finish chunk, the usage chunk when stream_options.include_usage is set, and
 * "data: [DONE]" once booked. test/... models are the built-in test provider's: answered at once
 * on the loop, free.
 *
 * The request id is X-Request-Id from the client or, when it sends none, the response's own id
 * ("chatcmpl-..."); it goes back in the X-Request-Id header and onto the call's usage event.
 * Errors have OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with accrue's
 * stable error name as the code.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/internal.h"
#include "runtime/test_provider.h"

typedef struct chat_op {
    rt_event ev; /* the answer arrived (or the call could not start) */
    rt_job job;
    /* The answer can arrive (from the ledger's writer) while the worker that made the call is still
     * returning from it: the op is answered and freed only once that job is over. And the upstream
     * can finish while that job still runs: the next job waits for it (one job at a time). */
    pthread_mutex_t mu;
    bool job_running, answer_waiting, resubmit;
    rt_server *srv;
    rt_req *r; /* NULL once the client has gone */
    rt_session_t *ms;
    rt_call_owner owner;
    rt_upcall *upcall, *finished_upcall;
    rt_answer_t *answer;
    char fail[300]; /* the call could not start: why */
    bool dataset; /* a datanet query (POST /v1/datanets/NAME:query), not a chat completion */
    bool stream, include_usage, started;
    char id[48];
    char model[REGISTRY_NAME_MAX + 1];
    char account[REGISTRY_NAME_MAX + 1];
    char request_id[80];
    char *request;
    size_t request_len;
    uint64_t created;
} chat_op;

static const char *openai_type(unsigned status) {
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
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

/* ---- the response --------------------------------------------------------------------------- */

static void chunk_head(acc_buf *b, const chat_op *op) {
    acc_buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%" PRIu64 ",\"model\":",
                   op->id, op->created);
    rt_json_cstr(b, op->model);
}

static void send_chunk(chat_op *op, const char *delta_json, const char *finish) {
    acc_buf b = ACC_BUF_INIT;
    chunk_head(&b, op);
    acc_buf_printf(&b, ",\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,\"finish_reason\":", delta_json);
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

static void stream_text(chat_op *op, const char *text, size_t len) {
    if (!op->r || !len) return;
    start_stream(op);
    acc_buf d = ACC_BUF_INIT;
    acc_buf_puts(&d, "{\"content\":");
    rt_json_str(&d, text, len);
    acc_buf_putc(&d, '}');
    if (!acc_buf_failed(&d)) send_chunk(op, d.data, NULL);
    acc_buf_free(&d);
}

/* Answers the client from a model's answer ({"text", "finish_reason", "usage": {...}}) or an error. */
static void respond(chat_op *op, bool ok, const char *answer, size_t len, int status_code, const char *errmsg) {
    rt_req *r = op->r;
    if (!r) return;
    r->op = NULL;
    r->op_gone = NULL;
    if (op->dataset) { /* accrue's shapes: the rows and their usage, or an error */
        if (ok) rt_respond(r, 200, "application/json", answer, len, NULL);
        else rt_respond_error(r, rt_status_http(status_code), rt_status_code_name(status_code), "%s", errmsg);
        return;
    }
    json_t *a = ok ? json_loadb(answer, len, 0, NULL) : NULL;
    const char *text = json_string_value(json_object_get(a, "text"));
    if (!ok || !text) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", ok ? "the model answered without text" : errmsg);
        int st = ok ? ACC_EUPSTREAM : status_code;
        unsigned http = rt_status_http(st);
        const char *code = rt_status_code_name(st);
        if (!ok && strstr(errmsg, "timeout")) http = 504, code = "timeout";
        if (op->started) { /* mid-stream: an error event, then the end */
            acc_buf b = ACC_BUF_INIT;
            openai_error_json(&b, http, code, NULL, msg);
            if (!acc_buf_failed(&b)) rt_sse_send(r, b.data, b.len);
            acc_buf_free(&b);
            rt_sse_send(r, "[DONE]", 6);
            rt_sse_end(r);
        } else {
            openai_error(r, http, code, http == 404 ? "model" : NULL, "%s", msg);
        }
        json_decref(a);
        return;
    }
    json_t *u = json_object_get(a, "usage");
    uint64_t in = (uint64_t)json_integer_value(json_object_get(u, "prompt_tokens"));
    uint64_t out = (uint64_t)json_integer_value(json_object_get(u, "completion_tokens"));
    uint64_t cost = (uint64_t)json_integer_value(json_object_get(u, "cost"));
    const char *call = json_string_value(json_object_get(u, "call"));
    const char *finish = json_string_value(json_object_get(a, "finish_reason"));
    if (!finish) finish = "stop";
    acc_buf usage = ACC_BUF_INIT;
    acc_buf_printf(&usage,
                   "{\"prompt_tokens\":%" PRIu64 ",\"completion_tokens\":%" PRIu64 ",\"total_tokens\":%" PRIu64
                   ",\"cost\":%" PRIu64 ",\"call\":\"%s\"}",
                   in, out, in + out, cost, call ? call : "");
    if (op->stream) {
        if (!op->started) stream_text(op, text, json_string_length(json_object_get(a, "text")));
        start_stream(op); /* an empty answer still gets its role chunk */
        send_chunk(op, "{}", finish);
        if (op->include_usage) {
            acc_buf b = ACC_BUF_INIT;
            chunk_head(&b, op);
            acc_buf_puts(&b, ",\"choices\":[],\"usage\":");
            acc_buf_append(&b, usage.data, usage.len);
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
        acc_buf_printf(&b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],\"usage\":", finish);
        acc_buf_append(&b, usage.data, usage.len);
        acc_buf_putc(&b, '}');
        rt_respond_json(r, 200, &b);
        acc_buf_free(&b);
    }
    acc_buf_free(&usage);
    json_decref(a);
}

static void op_free(chat_op *op) {
    if (op->ms) rt_session_close(op->ms);
    pthread_mutex_destroy(&op->mu);
    free(op->request);
    free(op);
}

/* Loop: hands the op to a worker (the job that starts the call, or finishes its upstream part). */
static void op_submit(chat_op *op) {
    pthread_mutex_lock(&op->mu);
    bool running = op->job_running;
    if (running) op->resubmit = true; /* the running job submits it again as it ends */
    op->job_running = true;
    pthread_mutex_unlock(&op->mu);
    if (!running) rt_pool_submit(op->srv->pool, &op->job);
}

/* Worker: the job's last touch of the op. */
static void op_job_end(chat_op *op) {
    pthread_mutex_lock(&op->mu);
    if (op->resubmit) {
        op->resubmit = false;
        pthread_mutex_unlock(&op->mu);
        rt_pool_submit(op->srv->pool, &op->job); /* job_running stays: the next job is the op's */
        return;
    }
    op->job_running = false;
    bool waiting = op->answer_waiting;
    if (waiting) rt_post(op->srv, &op->ev);
    pthread_mutex_unlock(&op->mu);
}

/* ---- the metered call ---------------------------------------------------------------------- */

/* The status a failed call's message names: metered.c starts each with acc_status_name's word
 * ("insufficient_funds: account demo has ...", "upstream: model ...: ..."). */
static int status_of_message(const char *msg) {
    for (int code = -1; code >= -18; code--) {
        const char *w = acc_status_name(code);
        size_t n = strlen(w);
        if (strncmp(msg, w, n) == 0 && msg[n] == ':') return code;
    }
    return ACC_EUPSTREAM;
}

/* Loop: the answer (booked, or refused), or the failure to start. */
static void op_event(rt_server *srv, rt_event *ev) {
    chat_op *op = (chat_op *)((char *)ev - offsetof(chat_op, ev));
    (void)srv;
    pthread_mutex_lock(&op->mu);
    bool running = op->job_running;
    op->answer_waiting = running;
    pthread_mutex_unlock(&op->mu);
    if (running) return; /* the job posts this event again as it ends */
    rt_answer_t *a = op->answer;
    op->answer = NULL;
    if (!a) {
        respond(op, false, NULL, 0, ACC_EBUSY, op->fail[0] ? op->fail : "the call could not start");
    } else {
        int st = a->ok ? ACC_OK : a->receipt && a->receipt->status ? a->receipt->status
                                                                    : status_of_message(a->text ? a->text : "");
        respond(op, a->ok, a->text, a->len, st, a->text ? a->text : "the call failed");
        rt_answer_deliver(a); /* frees it, adds its receipt (no sandbox to answer) */
    }
    op_free(op);
}

/* Any thread: metered.c's poster. */
static void op_post(void *ud, rt_answer_t *a) {
    chat_op *op = ud;
    op->answer = a;
    rt_post(op->srv, &op->ev);
}

static void op_up_start(void *ud, rt_upcall *u) {
    chat_op *op = ud;
    op->upcall = u;
    if (!op->r) rt_upcall_cancel(u, "the client disconnected");
}

static void op_up_chunk(void *ud, const char *text, size_t len) { stream_text(ud, text, len); }

static void op_up_done(void *ud, rt_upcall *u) {
    chat_op *op = ud;
    op->upcall = NULL;
    op->finished_upcall = u;
    op_submit(op);
}

/* Worker: starts the call, or finishes its upstream part. */
static void op_work(chat_op *op) {
    rt_server *srv = op->srv;
    acc_err err = {0};
    registry_t *reg = rt_worker_registry(srv, &err);
    if (op->finished_upcall) {
        rt_upcall *u = op->finished_upcall;
        op->finished_upcall = NULL;
        rt_session_set_registry(op->ms, reg); /* the start's may be another worker's */
        rt_tl_owner = &op->owner;
        rt_upcall_finish(u); /* without a registry its attribution fails: the call is voided */
        rt_tl_owner = NULL;
        return;
    }
    if (!reg) {
        snprintf(op->fail, sizeof op->fail, "%s", err.msg);
        rt_post(srv, &op->ev);
        return;
    }
    rt_session_config_t cfg = {.reg = reg, .payer = op->account, .session = "", .poster = {.ud = op, .post = op_post}};
    if (rt_session_open(srv->metered, &cfg, &op->ms, &err) != ACC_OK) {
        snprintf(op->fail, sizeof op->fail, "%s", err.msg);
        rt_post(srv, &op->ev);
        return;
    }
    rt_session_set_request_id(op->ms, op->request_id);
    sandbox_call_t call = {.id = 1,
                           .kind = op->dataset ? SANDBOX_CALL_DATASET : SANDBOX_CALL_MODEL,
                           .name = op->model,
                           .name_len = strlen(op->model),
                           .json = op->request,
                           .json_len = op->request_len};
    atomic_fetch_add(op->dataset ? &srv->m.dataset_calls : &srv->m.model_calls, 1);
    rt_tl_owner = &op->owner;
    rt_session_call(op->ms, &call); /* every outcome comes back through op_post */
    rt_tl_owner = NULL;
}

static void op_job(rt_job *job) {
    chat_op *op = (chat_op *)((char *)job - offsetof(chat_op, job));
    op_work(op);
    op_job_end(op);
}

static void op_gone(void *p) {
    chat_op *op = p;
    op->r = NULL;
    /* Nobody will read the rest: the call ends, voided, or charged for the deltas already sent. */
    if (op->upcall) rt_upcall_cancel(op->upcall, "the client disconnected");
}

/* ---- validation and entry points ------------------------------------------------------------ */

/* Checks the request's shape the way OpenAI does, naming the parameter at fault. */
static bool check_request(rt_req *r, json_t *body) {
    json_t *model = json_object_get(body, "model"), *messages = json_object_get(body, "messages");
    if (!model) return openai_error(r, 400, "bad_request", "model", "you must provide a model parameter"), false;
    if (!json_is_string(model) || !json_string_length(model) || json_string_length(model) > REGISTRY_NAME_MAX)
        return openai_error(r, 400, "bad_request", "model", "'model' must be a model's name"), false;
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
            openai_error(r, 400, "bad_request", "messages",
                         "messages[%zu].role '%.40s' is not one of system, developer, user, assistant, tool", i, rs);
            return false;
        }
        if (!json_is_string(content)) {
            openai_error(r, 400, "bad_request", "messages", "messages[%zu].content must be a string", i);
            return false;
        }
    }
    static const char *const ints[] = {"max_tokens", "max_completion_tokens", "n", "seed"};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        json_t *v = json_object_get(body, ints[k]);
        if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 1)) {
            openai_error(r, 400, "bad_request", ints[k], "'%s' must be a whole number >= 1", ints[k]);
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

static bool auth(rt_req *r, rt_principal *who) {
    if (!r->auth[0]) {
        openai_error(r, 401, "unauthorized", NULL, "no API key: send \"Authorization: Bearer KEY\"");
        return false;
    }
    acc_err err = {0};
    if (rt_auth_key(r->srv, r->auth, strlen(r->auth), who, &err) != ACC_OK) {
        openai_error(r, 401, "unauthorized", NULL, "%s", err.msg);
        return false;
    }
    return true;
}

/* test/... models: the test provider's answer, at once and free, in the metered answer's shape. */
static void test_model(chat_op *op) {
    acc_buf out = ACC_BUF_INIT;
    int ok = test_provider_answer(SANDBOX_CALL_MODEL, op->model, strlen(op->model), op->request, op->request_len, &out);
    atomic_fetch_add(&op->srv->m.model_calls, 1);
    if (!ok) {
        respond(op, false, NULL, 0, ACC_ENOTFOUND, out.data ? out.data : "test provider: no such model");
    } else {
        json_t *a = json_loadb(out.data, out.len, 0, NULL);
        json_t *u = json_object_get(a, "usage");
        acc_buf ans = ACC_BUF_INIT;
        acc_buf_puts(&ans, "{\"text\":");
        json_t *t = json_object_get(a, "text");
        rt_json_str(&ans, json_string_value(t) ? json_string_value(t) : "", json_string_length(t));
        acc_buf_printf(&ans, ",\"usage\":{\"prompt_tokens\":%" JSON_INTEGER_FORMAT ",\"completion_tokens\":%" JSON_INTEGER_FORMAT
                             ",\"cost\":0}}",
                       json_integer_value(json_object_get(u, "input_tokens")),
                       json_integer_value(json_object_get(u, "output_tokens")));
        respond(op, true, ans.data, ans.len, ACC_OK, NULL);
        acc_buf_free(&ans);
        json_decref(a);
    }
    acc_buf_free(&out);
}

void rt_openai_chat(rt_req *r) {
    rt_server *srv = r->srv;
    atomic_fetch_add(&srv->m.openai_requests, 1);
    rt_principal who;
    if (!auth(r, &who)) return;
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
    op->ev.fn = op_event;
    op->job.fn = op_job;
    pthread_mutex_init(&op->mu, NULL);
    op->srv = srv;
    op->r = r;
    char hex[33];
    if (r->request_id_made) /* its random part (http.c) */
        snprintf(hex, sizeof hex, "%.24s", r->request_id + 4);
    else
        rt_random_hex(hex, 12);
    snprintf(op->id, sizeof op->id, "chatcmpl-%s", hex);
    snprintf(op->model, sizeof op->model, "%s", json_string_value(json_object_get(body, "model")));
    snprintf(op->account, sizeof op->account, "%s", who.account);
    op->created = rt_wall_ms() / 1000;
    op->stream = json_is_true(json_object_get(body, "stream"));
    op->include_usage = json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
    if (r->request_id_made) /* made up here: the response's id is the request's */
        snprintf(r->request_id, sizeof r->request_id, "%s", op->id);
    snprintf(op->request_id, sizeof op->request_id, "%s", r->request_id);
    op->owner = (rt_call_owner){.ud = op, .stream = op->stream, .on_start = op_up_start, .on_chunk = op_up_chunk,
                                .on_done = op_up_done};
    /* The model gets the chat request without the fields that are ours to handle; the meters take
     * max_tokens from max_completion_tokens when only that is given. */
    json_t *mct = json_object_get(body, "max_completion_tokens");
    if (json_is_integer(mct) && !json_object_get(body, "max_tokens")) json_object_set(body, "max_tokens", mct);
    static const char *const ours[] = {"model", "stream", "stream_options", "max_completion_tokens", "n", "user",
                                       "seed", "temperature", "top_p", "presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) json_object_del(body, ours[i]);
    op->request = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!op->request) {
        free(op);
        openai_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    op->request_len = strlen(op->request);
    if (strncmp(op->model, "test/", 5) == 0) {
        test_model(op);
        op_free(op);
        return;
    }
    r->op = op;
    r->op_gone = op_gone;
    op_submit(op);
}

/* POST /v1/datanets/NAME:query {"text": "...", "limit": N}: the query a program makes, metered
 * and attributed like an agent's datasets.query (the caller's account pays; the returned records'
 * contributors earn). The answer: {"rows": [{id, contributor, score, text}], "usage": {...}}. */
void rt_datanet_query(rt_req *r) {
    rt_server *srv = r->srv;
    rt_principal who;
    if (rt_req_auth(r, &who, false) != ACC_OK) return;
    json_error_t jerr;
    json_t *body = json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *text = json_object_get(body, "text"), *limit = json_object_get(body, "limit");
    if (!json_is_object(body) || !json_is_string(text) ||
        (limit && (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
                   json_integer_value(limit) > REGISTRY_QUERY_LIMIT_MAX))) {
        json_decref(body);
        rt_respond_error(r, 400, "bad_request", "a query is {\"text\": \"...\", \"limit\": 1 to %d}",
                         REGISTRY_QUERY_LIMIT_MAX);
        return;
    }
    chat_op *op = calloc(1, sizeof *op);
    json_t *req = json_pack("{s:O,s:{s:I}}", "text", text, "opts", "limit",
                            limit ? json_integer_value(limit) : (json_int_t)3);
    json_decref(body);
    if (!op || !req || !(op->request = json_dumps(req, JSON_COMPACT))) {
        json_decref(req);
        free(op);
        rt_respond_error(r, 503, "unavailable", "out of memory");
        return;
    }
    json_decref(req);
    op->request_len = strlen(op->request);
    op->ev.fn = op_event;
    op->job.fn = op_job;
    pthread_mutex_init(&op->mu, NULL);
    op->srv = srv;
    op->r = r;
    op->dataset = true;
    snprintf(op->model, sizeof op->model, "%s", r->params[0]);
    snprintf(op->account, sizeof op->account, "%s", who.account);
    snprintf(op->request_id, sizeof op->request_id, "%s", r->request_id);
    r->op = op;
    r->op_gone = op_gone;
    op_submit(op);
}

/* ---- GET /v1/models ------------------------------------------------------------------------ */

/* One registered model of the list, shaped as GET /v1/models/NAME shows it to the same key
 * (rt_model_json: an http model's endpoint to the admin only). */
static int model_entry(void *ud, const registry_model_t *m) {
    rt_api_job *j = ud;
    acc_buf *b = &j->out;
    json_t *o = rt_model_json(m, j->who.admin);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) return ACC_ENOMEM;
    acc_buf_putc(b, ',');
    acc_buf_puts(b, s);
    free(s);
    return 0;
}

/* Worker: the list, the test provider's models first. */
static void models_list(rt_api_job *j, registry_t *reg) {
    acc_buf *b = &j->out;
    acc_buf_printf(b, "{\"object\":\"list\",\"data\":[");
    static const char *const tests[] = {"test/echo", "test/upper"};
    for (size_t i = 0; i < 2; i++)
        acc_buf_printf(b, "%s{\"id\":\"%s\",\"object\":\"model\",\"created\":0,\"owned_by\":\"accrue\",\"kind\":\"test\"}",
                       i ? "," : "", tests[i]);
    acc_err err = {0};
    int rc = registry_models_list(reg, model_entry, j, &err);
    if (rc != ACC_OK) {
        rt_api_error(j, rc, "%s", err.msg[0] ? err.msg : "out of memory");
        return;
    }
    acc_buf_puts(b, "]}");
}

void rt_openai_models(rt_req *r) {
    rt_principal who;
    if (!auth(r, &who)) return;
    rt_api_async(r, &who, models_list);
}
