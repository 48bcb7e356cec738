/*
 * metered.h: models.call and datasets.query answered through the registry and the meters.
 *
 * This is the sandbox provider of `accrue run` and of the server: a host call names a model or a
 * dataset; the registry resolves it (its prices, owner, lineage, shares); the meter prices the most
 * it can cost and reserves that (a refusal answers the agent at once: "insufficient_funds: ..."),
 * the call runs (a built-in model in the factory, a dataset query in FTS5; an HTTP model through
 * the host's own client; a lua model in a sandbox of its own, runtime/luamodel.h), its output
 * is attributed (spans over the lineage datanets' span indexes, or the returned records'
 * contributors), and the posting is queued. The agent gets its answer only
 * once the ledger has made the posting durable: the ledger's writer thread hands the finished call
 * (an rt_answer_t) to the host's post function, and the thread that owns the sandbox delivers it
 * with rt_answer_deliver (which calls sandbox_call_done). So a synchronous `accrue run` and the
 * server's event loop and workers share every line of this file.
 *
 * Threads. An rt_metered_t is shared by every thread of the process (its caches are locked). An
 * rt_session_t belongs to the thread that runs its sandbox, like the sandbox itself; its registry
 * handle is that thread's. post runs on the ledger's writer thread (or, for a refusal or an error
 * found before the model runs, and for a lua model's call, on the sandbox's thread inside
 * start_call): it must only queue.
 */
#ifndef ACCRUE_RUNTIME_METERED_H
#define ACCRUE_RUNTIME_METERED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meters/meters.h"
#include "registry/registry.h"
#include "registry/span/span.h"
#include "sandbox/sandbox.h"

typedef struct rt_metered rt_metered_t;
typedef struct rt_session rt_session_t;

/* A finished host call, waiting to be delivered on its sandbox's thread. The host may use next
 * (for its queue) and read session; the rest is this file's. */
typedef struct rt_answer {
    struct rt_answer *next;
    rt_session_t *session;
    uint64_t call_id;         /* the sandbox's; 0 for a message fee (nothing to answer) */
    int ok;
    char *text;               /* the result's JSON so far, or the error message */
    size_t len;
    struct rt_receipt *receipt;
    struct pending *work;     /* this file's: a lua model's call, to run when delivered (text is
                               * then its request), off the agent's turn that made it */
} rt_answer_t;

/* Answers the sandbox (sandbox_call_done), adds the call to its session's receipt, frees a. On
 * the sandbox's thread. Returns 0 when the sandbox's waiting call was answered (run it again),
 * -1 otherwise (a message fee's answer; a call whose turn had ended; a lua model's call, which
 * runs here, outside the agent's turn, and whose answer is posted once booked). */
int rt_answer_deliver(rt_answer_t *a);
/* Frees an answer that will not be delivered (its session is being closed). */
void rt_answer_drop(rt_answer_t *a);

/* How the host hears of finished calls: post(ud, a) from any thread; the host later calls
 * rt_answer_deliver(a) on the sandbox's thread. */
typedef struct rt_poster {
    void *ud;
    void (*post)(void *ud, rt_answer_t *a);
} rt_poster_t;

/* An HTTP model, called by the host (the server's outbound client). start runs on the sandbox's
 * thread and returns at once (0: taken; else refused, and the call fails with the message the
 * host put in the call's error with rt_http_done, or a generic one); the host later calls
 * rt_http_done once, on the sandbox's thread (the attribution reads the session's registry
 * handle), with the upstream's chat-completions response or an error. request_json is an OpenAI
 * chat-completions request for the model's upstream name, with max_tokens set and stream false;
 * it is valid during start only. NULL start: HTTP models are refused. */
typedef struct rt_http_call rt_http_call_t;
typedef struct rt_http {
    void *ud;
    int (*start)(void *ud, const registry_model_t *model, const char *request_json, size_t len, rt_http_call_t *call);
} rt_http_t;
/* When the turn of the sandbox that made the call must end (CLOCK_MONOTONIC ns; 0: none). */
uint64_t rt_http_call_deadline_ns(const rt_http_call_t *call);
/* ok: response is the upstream's JSON body (its choices[0].message.content and its usage are
 * read); !ok: response is an error message. Copies response. */
void rt_http_done(rt_http_call_t *call, int ok, const char *response, size_t len);
/* Instead of rt_http_done: the call ended early (code ACC_ECANCELLED: the caller cancelled or
 * left; ACC_ETIMEOUT: its time ran out; why says how) after text[0..len) of its streamed answer
 * had been passed on to the caller. The caller keeps that output, so it pays for it: the prompt and
 * that text's tokens (our counts: the upstream's usage comes at the stream's end, not reached),
 * attributed over that text as any answer is, posted (never above the reservation), the rest
 * voided; the usage event records code and why (error_code, error) on a posted call, and the
 * answer's finish_reason is "cancelled" or "timeout". len 0: nothing was passed on, and the call
 * is voided whole, as a failure is (the meter's rule). */
void rt_http_cut(rt_http_call_t *call, int code, const char *why, const char *text, size_t len);

/* What a model's caller may receive: at most its max_tokens of output, counted in the normalised
 * words every model's output is counted in (span_tokenize). A lua model's or an HTTP model's text
 * past that is cut there (an upstream may ignore max_tokens), so the caller never gets output it
 * was not charged for, and is never charged above the reservation (priced at max_tokens). */

/* The length of text's first max tokens (their last one's end), or len when it has no more than
 * max (trailing separators included). max 0: no limit. */
size_t rt_output_cut(const char *text, size_t len, uint64_t max);

/* The same cut made while a text arrives in pieces (a streamed upstream), so that what was passed
 * on is always a prefix of what rt_output_cut passes on of the whole: counting resumes at the
 * start of the last token seen (it may still grow), so each piece costs its own length. Zero it
 * and set max (0: no limit). */
typedef struct rt_output_limit {
    uint64_t max;
    uint64_t counted; /* tokens wholly before `from` */
    size_t from;      /* where the last token seen begins */
    bool reached;     /* the text passed max: nothing past the cut is passed on */
} rt_output_limit_t;
/* text[0..len) is the whole text so far (what came before, then the new piece). Returns how much
 * of it may be passed on now: never less than before; the cut once reached is set (then it stays
 * set). Once max tokens have come, what follows the last one waits: when the text ends without a
 * token more (reached unset), the whole text is passed on. */
size_t rt_output_limit_feed(rt_output_limit_t *l, const char *text, size_t len);

/* A queue of answers for a host whose sandbox thread can wait (accrue run, tests, benchmarks):
 * its poster pushes under a mutex and signals; rt_queue_take waits for answers on the sandbox's
 * thread. */
typedef struct rt_queue rt_queue_t;
rt_queue_t *rt_queue_new(void); /* NULL when out of memory */
void rt_queue_free(rt_queue_t *q); /* drops what is left */
rt_poster_t rt_queue_poster(rt_queue_t *q);
/* Waits up to timeout_ms (-1: for ever) for an answer, then takes every queued one, oldest first
 * (a list through next), or NULL. With a waiter (below), it waits once with it instead and may
 * return NULL early: the waiter's loop may have answered a call meanwhile. */
rt_answer_t *rt_queue_take(rt_queue_t *q, int timeout_ms);
/* A host whose sandbox thread must also service an event loop while it waits (accrue run's HTTP
 * client): rt_queue_take calls wait(ud, timeout_ms) instead of sleeping on its condition, and the
 * poster calls wake(ud) from the posting thread after each post. Set before it matters; NULL wait
 * restores the plain wait. */
void rt_queue_set_waiter(rt_queue_t *q, void (*wait)(void *ud, int timeout_ms), void (*wake)(void *ud), void *ud);

typedef struct rt_metered_config {
    meter_t *meter;      /* not owned */
    rt_http_t http;
    uint32_t default_max_tokens_http; /* when a request to an HTTP or lua model names none; 0 = 1024 */
} rt_metered_config_t;

int rt_metered_open(const rt_metered_config_t *cfg, rt_metered_t **out, acc_err *err);
/* Before factory_cache_clear and registry_spans_clear: this holds the loaded models it used. */
void rt_metered_close(rt_metered_t *m);

/* One receipt line per call (what `accrue run` prints after the reply, the server's usage frame). */
typedef struct rt_receipt_line {
    meter_role_t role;
    char payee[METER_ADDRESS_SIZE];
    ledger_amount_t amount;
} rt_receipt_line_t;

typedef struct rt_receipt {
    struct rt_receipt *next;
    ledger_id_t id;
    int status;                 /* ACC_OK charged; else the call failed (nothing charged) */
    int cut;                    /* charged, but cut short after it delivered output (rt_http_cut):
                                 * ACC_ECANCELLED or ACC_ETIMEOUT, and error says how; else 0 */
    bool duplicate;
    meter_resource_t resource;
    const char *name;           /* in the receipt's own memory, like error */
    uint64_t units_in, units_out;
    ledger_amount_t cost;
    const char *error;          /* "" when it was charged whole; at most 199 bytes */
    size_t nlines;
    rt_receipt_line_t lines[];
} rt_receipt_t;

typedef struct rt_session_config {
    registry_t *reg;        /* the owning thread's registry handle */
    const char *payer;      /* the API-key account that pays */
    const char *session;    /* the session id ("" for none) */
    const meter_agent_t *agent; /* the agent running, or NULL (a script run from a file) */
    /* What the agent may call (its manifest's lists); NULL: anything registered. */
    const char *const *models;
    size_t nmodels;
    const char *const *datanets;
    size_t ndatanets;
    rt_poster_t poster;
} rt_session_config_t;

/* A session: its provider (for sandbox_open), its payer and agent, its receipts. */
int rt_session_open(rt_metered_t *m, const rt_session_config_t *cfg, rt_session_t **out, acc_err *err);
/* Every call still in flight must have been delivered or dropped. */
void rt_session_close(rt_session_t *s);
sandbox_provider_t rt_session_provider(rt_session_t *s);
/* The request id the client knows the current message by (a session message id, X-Request-Id);
 * copied; stamped on every usage event of the calls that follow. */
void rt_session_set_request_id(rt_session_t *s, const char *request_id);
/* The sandbox this session's provider serves (known from its first call; NULL before). */
sandbox_t *rt_session_sandbox(const rt_session_t *s);
/* The registry handle the session uses from now on: the handle of the thread that runs it next
 * (a server's sessions move between worker threads, one thread at a time). */
void rt_session_set_registry(rt_session_t *s, registry_t *reg);
/* A call made for no sandbox (the server's OpenAI endpoint, its dataset queries): the same
 * metering as a sandbox's host call, but every outcome, a refusal included, arrives through the
 * poster as an answer with call->id (rt_answer_deliver then only frees it and adds its receipt).
 * On the thread that owns the session, with its registry set. */
int rt_session_call(rt_session_t *s, const sandbox_call_t *call);
/* Starts loading what delivering the session's next answer touches first (its first line, its
 * sandbox: sandbox_prefetch, its last receipt), for a host that knows which session it runs next
 * and prefetches it while it runs the current one. A hint; on the thread that will run it next,
 * while no other thread may (sandbox.h's rules for sandbox_prefetch). */
void rt_session_prefetch(rt_session_t *s);
/* Calls started and not yet delivered. */
size_t rt_session_in_flight(const rt_session_t *s);
/* The receipts of the calls delivered so far, oldest first (owned by the session). */
const rt_receipt_t *rt_session_receipts(const rt_session_t *s);
void rt_session_clear_receipts(rt_session_t *s);

/* The agent's message fee: reserved at the start of a turn (ACC_EFUNDS refuses the turn),
 * posted when the turn ends well, voided when it fails. The session's first message also pays
 * the agent's session price. Between begin and end the turn's calls run as usual. Without an
 * agent, or with a free one, both do nothing. */
int rt_session_begin_message(rt_session_t *s, acc_err *err);
/* ok: queue its posting; like a call, it arrives through post as an answer (call_id 0, nothing to
 * answer in the sandbox) whose delivery adds its receipt. !ok: void it. */
int rt_session_end_message(rt_session_t *s, bool ok, acc_err *err);

/* --- Attribution of a model's output, as the meter takes it --- */

#define RT_ATTR_STACK 16
typedef struct rt_attribution {
    uint64_t norm_tokens;  /* the output's normalised tokens */
    uint64_t covered;      /* of those, inside at least one span (spans may overlap) */
    size_t nspans, ncredits;
    meter_span_t *spans;
    meter_credit_t *credits;
    int64_t *records;
    meter_span_t span_stack[RT_ATTR_STACK];
    meter_credit_t credit_stack[RT_ATTR_STACK];
} rt_attribution_t;

/* The contributor of the i-th credit (its record), EIP-55. */
typedef int (*rt_contributor_fn)(void *ud, size_t i, int64_t record, char out[METER_ADDRESS_SIZE], acc_err *err);

/* The meter's view of a span attribution (registry_attribute's, or span_attribute's over indexes
 * of one's own): the spans as evidence, the credited records with their contributors. at must
 * outlive nothing: a copies what it keeps but the records. *a is freed with rt_attribution_free
 * (also after a failure). */
int rt_attribution_view(const span_attribution *at, const char *text, size_t len, rt_contributor_fn contributor,
                        void *ud, rt_attribution_t *a, acc_err *err);
/* Fills o's output, token and span fields from a (o's units are the caller's). */
void rt_attribution_outcome(const rt_attribution_t *a, const char *text, size_t len, meter_model_outcome_t *o);
void rt_attribution_free(rt_attribution_t *a);

/* Delivers the session's answers from q until nothing of it is in flight (a message fee queued
 * after its turn ended). */
void rt_session_drain(rt_session_t *s, rt_queue_t *q);

/* Runs the sandbox's current turn to its end on this thread: runs it, delivers answers from q as
 * they come and runs it again, until it is done or failed and nothing of the session is in flight
 * (its message fee included). *s may be NULL, and may become a session during the turn (a host
 * that opens its session at the first call that needs one); with none, a turn left waiting ends
 * at its time limit. */
sandbox_status_t rt_run_turn(sandbox_t *sb, rt_session_t *const *s, rt_queue_t *q);

#endif
