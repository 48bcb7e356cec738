/*
 * calls.h: model and dataset calls as the server makes them, for agents' sessions and for the
 * OpenAI-compatible endpoint alike: resolve the name, meter the call, run it (in process or over
 * HTTP), and report the answer with its usage line.
 *
 * Two ways in. rt_call_try_now, from any thread (a worker inside a turn), finishes calls that can
 * be answered at once (built-in models, datasets) and says RT_CALL_ASYNC for the others, which
 * the loop then starts with rt_call_start; their completion arrives on the loop, never inside
 * rt_call_start itself.
 */
#ifndef ACCRUE_RUNTIME_SERVER_CALLS_H
#define ACCRUE_RUNTIME_SERVER_CALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base/buf.h"

typedef struct rt_server rt_server;
typedef struct rt_call rt_call;

typedef enum rt_call_kind { RT_CALL_MODEL, RT_CALL_DATASET } rt_call_kind;

typedef struct rt_call_req {
    rt_call_kind kind;
    const char *name; /* not NUL-terminated */
    size_t name_len;
    const char *json; /* the request object as JSON text */
    size_t json_len;
    uint64_t sandbox_call_id; /* the turn's call id, for sessions */
    bool ok;                  /* sessions: whether the answer handed to the turn is a success */
    bool owned;               /* name and json are this struct's copies (rt_call_req_copy) */
    char payer[64];           /* the paying account */
    char session[40];         /* "" outside sessions */
    char agent[170];          /* "name@version", "" outside sessions */
    char request_id[80];      /* what the client knows the call by */
} rt_call_req;

typedef struct rt_call_result {
    bool ok;
    acc_buf text;       /* ok: the answer as JSON text; else the error message */
    const char *code;   /* !ok: a stable error name ("not_found", "insufficient_funds", ...) */
    acc_buf usage_line; /* one JSON object describing the call for usage frames, or empty */
    uint64_t cost;      /* base units booked */
    uint64_t tokens_in, tokens_out;
} rt_call_result;

enum { RT_CALL_DONE = 0, RT_CALL_ASYNC = 1 };

/* Any thread. Answers the call now (RT_CALL_DONE, *res filled: free it with
 * rt_call_result_free), or says it must be started on the loop (RT_CALL_ASYNC, *res untouched). */
int rt_call_try_now(rt_server *srv, const rt_call_req *req, rt_call_result *res);

/* Loop. Starts a call; done runs later on the loop, exactly once, with the result (owned by the
 * call: copy what you keep). on_chunk, when set, receives streamed text as it arrives. Returns the
 * call, valid until done has run. */
typedef void (*rt_call_done_fn)(rt_call *call, void *ud, const rt_call_result *res);
typedef void (*rt_call_chunk_fn)(rt_call *call, void *ud, const char *text, size_t len);
rt_call *rt_call_start(rt_server *srv, const rt_call_req *req, rt_call_done_fn done, void *ud);
rt_call *rt_call_start_streaming(rt_server *srv, const rt_call_req *req, rt_call_done_fn done,
                                 rt_call_chunk_fn on_chunk, void *ud);
/* Loop. Ends the call early: done then runs with !ok, code "cancelled"; nothing is charged. */
void rt_call_cancel(rt_call *call);

void rt_call_req_copy(rt_call_req *dst, const rt_call_req *src);
void rt_call_req_free(rt_call_req *req);
void rt_call_result_free(rt_call_result *res);

/* Appends ,"balance":N for the account (nothing when balances are unknown). */
void rt_call_balance_json(rt_server *srv, const char *account, acc_buf *out);

/* The models callers can name, as OpenAI's model list entries (for GET /v1/models). */
void rt_call_models_json(rt_server *srv, acc_buf *out);

#endif
