/*
 * internal.h: what the server's files share. Not a public interface (server.h is).
 *
 * Threads and ownership:
 *   - The loop thread runs the libuv loop lws serves on (server.c) and owns every lws object,
 *     the session table, the HTTP requests and every session's frames. Only it calls lws
 *     functions (lws_cancel_service is the one exception: any thread may call it, through
 *     rt_post).
 *   - Worker threads (pool.c) run agent turns: a session's sandbox belongs to the worker that
 *     runs its job, and a session has at most one job at a time, so no two threads ever touch a
 *     sandbox at once. Workers report back through the session's mailbox (under its mutex) and
 *     rt_post.
 *   - The resolver thread (outbound.c) runs getaddrinfo, which lws 4.1.6 would run on the loop.
 */
#ifndef ACCRUE_RUNTIME_SERVER_INTERNAL_H
#define ACCRUE_RUNTIME_SERVER_INTERNAL_H

#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/base/buf.h"
#include "runtime/base/status.h"
#include "meters/eth/keys.h"
#include "meters/ledger/ledger.h"
#include "meters/meters.h"
#include "registry/registry.h"
#include "runtime/metered.h"
#include "runtime/server/outbound.h"
#include "runtime/server/server.h"
#include "sandbox/sandbox.h"

typedef struct rt_server rt_server;
typedef struct rt_sess rt_sess;
typedef struct rt_ws rt_ws;
typedef struct rt_req rt_req;

/* ---- text.c: UTF-8, JSON strings, ids --------------------------------------------------- */

/* Length of the longest prefix of s[0..n) that is valid UTF-8 and ends on a whole character,
 * and whether the rest is only an incomplete (not invalid) character: *incomplete_tail. */
size_t rt_utf8_prefix(const char *s, size_t n, bool *incomplete_tail);
bool rt_utf8_valid(const char *s, size_t n);
/* Appends s[0..n) as the inside of a JSON string (no quotes); invalid UTF-8 becomes U+FFFD. */
void rt_json_escape(acc_buf *b, const char *s, size_t n);
/* Appends "s" with quotes (acc_buf_json_string). */
static inline void rt_json_str(acc_buf *b, const char *s, size_t n) { acc_buf_json_string(b, s, n); }
static inline void rt_json_cstr(acc_buf *b, const char *s) { acc_buf_json_string(b, s, __builtin_strlen(s)); }
/* n random bytes from the OS, as 2n lower-case hex characters and a NUL. */
void rt_random_hex(char *out, size_t nbytes);
uint64_t rt_now_ns(void);
uint64_t rt_wall_ms(void);

/* ---- map.c: a string-keyed hash table of pointers (loop thread only) ---------------------- */

typedef struct rt_map_entry {
    char *key;
    void *value;
} rt_map_entry;
typedef struct rt_map {
    rt_map_entry *slots;
    size_t cap, count, tombs;
} rt_map;
void *rt_map_get(const rt_map *m, const char *key);
int rt_map_put(rt_map *m, const char *key, void *value); /* ACC_OK or ACC_ENOMEM; replaces */
void *rt_map_del(rt_map *m, const char *key);            /* returns the value removed */
void rt_map_free(rt_map *m);                             /* the keys; values are the caller's */
/* Iteration: for (size_t i = 0; rt_map_next(m, &i, &e);) ... (no changes while iterating) */
bool rt_map_next(const rt_map *m, size_t *i, rt_map_entry **e);

/* ---- the write queues: WebSocket connections and HTTP requests with something to write ---- */

/* A link of an intrusive queue, embedded in what is queued: the loop's writes after a drain of the
 * inbox (rt_ws_flush, rt_http_flush). Loop thread only. */
typedef struct rt_wq_link {
    struct rt_wq_link *next;
    bool queued;
} rt_wq_link;

static inline void rt_wq_push(rt_wq_link **head, rt_wq_link *n) {
    if (n->queued) return;
    n->queued = true;
    n->next = *head;
    *head = n;
}

/* Takes n off the queue it is on, if it is (its owner is going away). */
static inline void rt_wq_remove(rt_wq_link **head, rt_wq_link *n) {
    if (!n->queued) return;
    for (rt_wq_link **p = head; *p; p = &(*p)->next)
        if (*p == n) {
            *p = n->next;
            break;
        }
    n->queued = false;
}

static inline rt_wq_link *rt_wq_pop(rt_wq_link **head) {
    rt_wq_link *n = *head;
    if (n) *head = n->next, n->queued = false;
    return n;
}

/* ---- the inbox: work handed to the loop from any thread (rt_event, rt_net: outbound.h) ---- */

/* Queues ev for the server's loop (rt_net_post on srv->net). */
void rt_post(rt_server *srv, rt_event *ev);
/* Writes what the WebSocket connections queued by rt_ws_request_write have to send (wsconn.c). */
void rt_ws_flush(rt_server *srv);
/* Writes the HTTP responses and server-sent events queued since the last flush (http.c). */
void rt_http_flush(rt_server *srv);

/* ---- pool.c: worker threads ------------------------------------------------------------- */

typedef struct rt_job rt_job;
struct rt_job {
    rt_job *next;
    void (*fn)(rt_job *job); /* runs on a worker */
    /* Optional: starts loading what fn touches first. A worker that takes a job while others wait
     * may take the next one too, if enough are left for the other workers, and calls its ahead
     * before it runs the first: then the job is this worker's (no other thread runs it) and runs
     * on it next. A hint only. */
    void (*ahead)(rt_job *job);
};
typedef struct rt_pool rt_pool;
/* Starts n threads. NULL with err set when a thread cannot start. */
rt_pool *rt_pool_start(unsigned n, acc_err *err);
/* Queues a job (FIFO). Any thread. */
void rt_pool_submit(rt_pool *p, rt_job *job);
/* Jobs queued and not yet taken. */
unsigned rt_pool_depth(rt_pool *p);
/* Lets the threads finish the jobs queued, then joins them. */
void rt_pool_stop(rt_pool *p);

/* ---- metrics.c -------------------------------------------------------------------------- */

typedef struct rt_metrics {
    atomic_uint_fast64_t http_requests, http_errors, ws_frames_in, ws_frames_out;
    atomic_uint_fast64_t sessions_opened, sessions_closed, turns, turns_failed;
    atomic_uint_fast64_t model_calls, dataset_calls, calls_failed;
    atomic_uint_fast64_t limit_hits[SANDBOX_LIMIT_REFUSED + 1]; /* by sandbox_limit_t */
    atomic_uint_fast64_t openai_requests;
    atomic_uint_fast64_t batches_cut, settle_failures;
    atomic_uint_fast64_t last_batch;
    atomic_int_fast64_t sessions_live, connections_ws;
} rt_metrics;
/* The Prometheus text exposition of the server's counters. */
void rt_metrics_render(rt_server *srv, acc_buf *out);

/* ---- who is calling, and the stores (backend.c) ----------------------------------------- */

typedef struct rt_principal {
    char account[REGISTRY_NAME_MAX + 1]; /* the account's name: the ledger's payer */
    int64_t account_id;
    char key_id[17]; /* a hash of the API key (never the key itself), for per-key limits */
    bool admin;
} rt_principal;

/* Checks an API key (the loop's registry handle, answers cached a few seconds). ACC_OK and *who, or
 * ACC_EPERM for a key that is malformed, unknown or revoked. Loop thread. */
int rt_auth_key(rt_server *srv, const char *key, size_t len, rt_principal *who, acc_err *err);
void rt_auth_forget(rt_server *srv); /* drops the cache (a key was revoked here) */
/* The calling worker's own registry handle, opened on first use; NULL with err set. */
registry_t *rt_worker_registry(rt_server *srv, acc_err *err);
void rt_worker_exit(void); /* closes it (pool.c, as a worker ends) */
/* Credits account with amount from "external" (a top-up), durably: waits for the commit. */
int rt_topup(ledger_t *l, const char *account, uint64_t amount, ledger_result_t *res, acc_err *err);

/* ---- upstream.c: HTTP models for the meters --------------------------------------------- */

typedef struct rt_upcall rt_upcall;
/* Who a call to an HTTP model is for: set by the worker (rt_tl_owner) around the metered call
 * that may start it. The callbacks run on the loop. */
typedef struct rt_call_owner {
    void *ud;
    bool stream;          /* ask the upstream to stream; on_chunk gets the text as it comes */
    uint64_t deadline_ms; /* the call ends by then (rt_now_ns clock, ms); 0: the server's timeout */
    void (*on_start)(void *ud, rt_upcall *u);                  /* may be NULL */
    void (*on_chunk)(void *ud, const char *text, size_t len);  /* may be NULL */
    /* The upstream is done: hand u to a worker that calls rt_upcall_finish(u) there. */
    void (*on_done)(void *ud, rt_upcall *u);
} rt_call_owner;
extern _Thread_local rt_call_owner *rt_tl_owner;
rt_http_t rt_upstream_hook(rt_net *net);
/* Loop; on_done follows. why (static) goes on the call's usage event: voided when nothing was
 * passed on yet, else charged for what was (rt_http_cut). */
void rt_upcall_cancel(rt_upcall *u, const char *why);
void rt_upcall_finish(rt_upcall *u); /* a worker with its registry set on the call's session */
const char *rt_upcall_model(const rt_upcall *u);
rt_upcall **rt_upcall_link(rt_upcall *u); /* a list link its owner may use once on_done ran */

/* ---- http.c: requests, routes, responses ------------------------------------------------ */

enum { RT_GET = 1, RT_POST = 2, RT_PUT = 4, RT_DELETE = 8, RT_PATCH = 16, RT_OPTIONS = 32, RT_HEAD = 64 };

#define RT_MAX_PARAMS 3
typedef struct rt_route rt_route;
struct rt_req {
    rt_server *srv;
    const rt_route *route; /* the route matched */
    struct lws *wsi; /* NULL once the client has gone */
    int method;      /* RT_GET ... */
    char path[512];  /* decoded, without the query */
    char *query;     /* the query's arguments, decoded, "name=value" each, NUL-separated */
    size_t query_len;
    char params[RT_MAX_PARAMS][256]; /* {name} parts of the route matched, decoded */
    acc_buf body;
    bool body_too_big;
    char request_id[72]; /* X-Request-Id from the client, or made up */
    bool request_id_made; /* made up: "req_" and 24 random hex digits */
    char auth[160];      /* the bearer token, or "" */
    uint64_t start_ns;
    /* The response, headers and body, written in one piece. */
    unsigned char *out; /* LWS_PRE bytes of headroom, then out_len bytes */
    size_t out_len;
    bool responded;
    bool dispatched; /* the route's handler has run (once per request) */
    /* Server-sent events: chunks queued for the writable callback. */
    bool sse, sse_done, sse_headers_sent;
    acc_buf sse_queue;
    /* An operation in flight for this request (a model call): told when the client goes. */
    void *op;
    void (*op_gone)(void *op);
    rt_wq_link flush; /* on srv->http_flush: a response or events to write (rt_http_flush) */
};

/* Responses. Each builds the whole response and queues it for rt_http_flush. */
void rt_respond(rt_req *r, unsigned status, const char *content_type, const char *body, size_t len,
                const char *extra_headers);
void rt_respond_json(rt_req *r, unsigned status, const acc_buf *json);
/* {"error":{"code":CODE,"message":MSG}}, appended to b. */
void rt_error_json(acc_buf *b, const char *code, const char *msg);
/* That error as the response, with the status given. */
void rt_respond_error(rt_req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An acc_err's code mapped to an HTTP status and a stable error name. */
unsigned rt_status_http(int code);
const char *rt_status_code_name(int code);
/* Server-sent events: start (headers), send one event's data, end. */
void rt_sse_start(rt_req *r, const char *extra_headers);
void rt_sse_send(rt_req *r, const char *data, size_t len);
void rt_sse_end(rt_req *r);

/* The caller's API key checked: ACC_OK, or an error response has been sent. */
int rt_req_auth(rt_req *r, rt_principal *who, bool admin_only);
/* Query parameter NAME (decoded) into out; false when absent. */
bool rt_req_query(const rt_req *r, const char *name, char *out, size_t outlen);

typedef void (*rt_handler)(rt_req *r);
struct rt_route {
    int methods;
    const char *pattern; /* "/v1/agents/{}" : {} matches one path segment */
    rt_handler handler;
};

/* api.c: handlers whose work touches the stores run on a worker (rt_api_async): the request's
 * parts are copied into the job, fn fills status and out there, and the loop sends the response. */
typedef struct rt_api_job rt_api_job;
typedef void (*rt_api_fn)(rt_api_job *j, registry_t *reg);
struct rt_api_job {
    rt_job job;
    rt_event ev;
    rt_server *srv;
    rt_req *r; /* NULL once the client has gone */
    rt_principal who;
    rt_api_fn fn;
    char params[RT_MAX_PARAMS][256];
    char *query; /* as rt_req's */
    size_t query_len;
    char *body;
    size_t body_len;
    char request_id[72];
    unsigned status; /* 200 unless fn says otherwise */
    acc_buf out;     /* the JSON body */
};
void rt_api_async(rt_req *r, const rt_principal *who, rt_api_fn fn);
/* The job's response becomes an error: the status and name belonging to code, and the message. */
void rt_api_error(rt_api_job *j, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool rt_api_query(const rt_api_job *j, const char *name, char *out, size_t outlen);

/* api.c, for the API's other files (reports.c, batches.c): run fn on a worker after the access
 * check (RT_PUBLIC: no key needed, but a key given is checked; RT_KEY: any account's; RT_ADMIN),
 * set the response to a JSON value (taken), read a whole-number query parameter in [lo, hi] (dflt
 * when absent; false after an error response). */
typedef enum rt_access { RT_PUBLIC, RT_KEY, RT_ADMIN } rt_access;
void rt_api_route(rt_req *r, rt_access a, rt_api_fn fn);
struct json_t;
void rt_api_json(rt_api_job *j, struct json_t *v);
bool rt_api_query_num(rt_api_job *j, const char *name, uint64_t lo, uint64_t hi, uint64_t dflt, uint64_t *out);
/* A record as the API shows it (id, contributor, text, status, seq, content_hash, signed, ...). */
struct json_t *rt_record_json(const registry_record_t *r);
/* A model as GET /v1/models and /v1/models/NAME show it (api.c); an http model's endpoint (url,
 * upstream, api_key_env) only with endpoint (the admin's view). */
struct json_t *rt_model_json(const registry_model_t *m, bool endpoint);

/* reports.c: what the web page shows beyond the core API (each a route of api.c's table). */
void rt_r_agent_usage(rt_req *r);          /* GET /v1/agents/NAME:usage?days=N */
void rt_r_datanet_contributors(rt_req *r); /* GET /v1/datanets/NAME:contributors */
void rt_r_record(rt_req *r);               /* GET /v1/records/ID */
void rt_r_earnings(rt_req *r);             /* GET /v1/earnings/ADDRESS */
/* batches.c: settlement batches and proofs, as the command line prints them. */
void rt_r_batches(rt_req *r);     /* GET /v1/batches?address=&limit= */
void rt_r_batch(rt_req *r);       /* GET /v1/batches/SEQ */
void rt_r_batch_proof(rt_req *r); /* GET /v1/batches/SEQ/proofs/ADDRESS */

/* openai.c */
void rt_openai_chat(rt_req *r);
void rt_openai_models(rt_req *r);
/* openapi.c: the API described as an OpenAPI 3 document. */
void rt_openapi_json(acc_buf *out);

/* api.c and openai.c: the route table. */
extern const rt_route rt_routes[];
extern const size_t rt_nroutes;

/* The lws callback of the "accrue" protocol for plain HTTP reasons. */
int rt_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

/* ---- session.c: WebSocket sessions ------------------------------------------------------ */

int rt_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
/* Loop: periodic upkeep (detached sessions expire). */
void rt_sessions_tick(rt_server *srv);
/* Loop: shutdown: cancel every running turn; true once no turn runs any more. */
bool rt_sessions_drain(rt_server *srv);
/* Loop: close every session and connection (after the drain). */
void rt_sessions_close_all(rt_server *srv);

/* ---- settle.c: batches cut by the server ----------------------------------------------------- */

/* Checks the options at start (the first batch needs a chain id and a contract). */
int rt_settle_init(rt_server *srv, acc_err *err);
/* Loop, from the tick: starts a cut on a worker when one is due (--settle-every) or may be
 * (--settle-threshold, checked every few seconds). */
void rt_settle_tick(rt_server *srv);

/* ---- the server --------------------------------------------------------------------------- */

/* Per-connection user data of the "accrue" protocol. */
typedef struct rt_conn {
    rt_req *req;
    rt_ws *ws;
} rt_conn;

struct rt_server {
    rt_serve_config cfg;
    rt_net net; /* the lws context, its loop's inbox, the upstream timeouts and counters */
    rt_pool *pool;

    bool draining; /* shutting down: no new connections, sessions or requests */
    uint64_t started_ms;
    const char *event_loop; /* "libuv", or "poll" without lws's libuv plugin (GET /healthz) */
    rt_metrics m;

    rt_wq_link *ws_flush;   /* connections with frames to write (wsconn.c: rt_ws_flush) */
    rt_wq_link *http_flush; /* requests with a response or events to write (http.c: rt_http_flush) */
    struct lws *http_cb_wsi; /* the connection whose HTTP callback is running (server.c) */
    rt_map sessions;      /* session id -> rt_sess */
    unsigned sessions_alive; /* allocated and not yet freed (closing ones too) */
    rt_map key_sessions;  /* key id -> (uintptr_t) live session count */
    lws_sorted_usec_list_t tick;

    /* The stores. */
    registry_t *reg;        /* the loop's handle: API keys only */
    ledger_t *ledger;
    meter_t *meter;
    rt_metered_t *metered;
    rt_map auth_cache;      /* API key -> cached principal */
    eth_key *host_key;      /* signs settlement batches */
    /* Settlement (settle.c): the next scheduled cut, the next threshold check, one cut at a time. */
    uint8_t contract[ETH_ADDRESS_SIZE];
    bool has_contract;
    uint64_t next_settle_ms, next_threshold_ms;
    bool settling;
    rt_job settle_job;
    rt_event settle_done;
    bool settle_due; /* the job cuts whatever accrued; else only past the threshold */
    char host_address[ETH_ADDRESS_TEXT_SIZE];
};

extern volatile sig_atomic_t rt_stop_signal;

#endif
