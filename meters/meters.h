/*
 * meters.h: every call priced, reserved, attributed and booked.
 *
 * What it owns. Pricing (what a model call, a dataset query or an agent's message costs, and the
 * most it can cost), the reservation before the call, the attribution after it (who earned which
 * part, and the evidence), exact integer splits, the usage event that records it all, and its
 * booking in the ledger (meters/ledger/ledger.h) as one posting: the payer's account debited, each
 * payee's credited. It does not call models or query datasets (the caller does, between
 * meter_begin_* and meter_finish_*), does not read the registry (the caller resolves names into the
 * plain descriptors below; runtime/ does it for `accrue run` and the server) and knows nothing of
 * sockets or sandboxes.
 *
 * A metered call, from any thread:
 *
 *   meter_begin_model(m, &ctx, &model, prompt_tokens_max, max_tokens, &call, &err)
 *       prices the most the call can cost and reserves it on the payer's account; when the balance
 *       is short: ACC_EFUNDS, err says "insufficient_funds: account demo has 120 micro-credits
 *       available, 400 needed", and the model must not be called.
 *   ... the caller runs the model ...
 *   meter_finish_model(call, &outcome, done, ud, &err)
 *       counts the real units, attributes, splits, and queues the posting: the real cost posted,
 *       the rest of the reservation voided at once. done(ud, receipt) runs on the ledger's writer
 *       thread once the posting is durable: only then may the caller release the call's result.
 *   or meter_fail(call, code, why)
 *       voids the whole reservation (nothing is charged) and records the failed call as a voided
 *       usage event (asynchronously; nothing waits for it).
 * Every meter_call_t ends in exactly one meter_finish_* or meter_fail, which frees it.
 *
 * For the server: meter_begin_* and meter_finish_* never wait on disk or the network (they take
 * the ledger's mutex briefly and may read an account from the database the first time it is
 * named: name payer accounts on a worker, not on the event loop); done runs on the writer thread
 * and must only hand the receipt over (copy what it needs, push to a ring, lws_cancel_service).
 *
 * Money. Amounts are ledger base units (micro-credits, ledger.h), uint64, checked arithmetic,
 * never floating point. Rates are basis points (bps, 1/10000). A fee of bps on an amount is
 * amount x bps / 10000 rounded half up. Splits are largest-remainder splits (meter_split): the
 * parts always sum to the whole, no part is negative, the same inputs give the same parts.
 *
 * What a call costs (ARCHITECTURE.md, Money):
 *   model     price_per_call + ceil((in x price_per_1k_in + out x price_per_1k_out) / 1000)
 *   dataset   price_per_query + price_per_record x records returned
 *   message   the agent's price_per_message, plus price_per_session on a session's first message
 * then the agent's markup (markup_bps of a model's or dataset's cost, to the author; none on a
 * message) and the operator's fee (operator_fee_bps of everything before it, to the system account
 * "operator"). The reservation is the same formula at the most the call can use: the prompt's
 * token bound and max_tokens for a model, the query's limit for a dataset. Units reported above
 * those bounds are charged at the bounds (a call never costs more than was reserved).
 *
 * Who is paid (the attribution), for a model call's cost:
 *   1. split by weight [owner_share_bps, each declared share's bps, the rest = the data share];
 *   2. the data share splits by [output tokens covered by spans, tokens not covered]: the covered
 *      part goes to the contributors of the records the spans were found in, by the span
 *      attribution's weights (span length, shared among a span's records), summed per contributor;
 *      the uncovered part (all of it when no span was found) goes to the model owner;
 * for a dataset query's cost: the contributors of the returned records, weighted by rank score
 * (the score in millionths, rounded; at least 1), summed per contributor; a query that returned
 * nothing pays its price to the datanet's owner;
 * for a message: the agent's author. Then markup to the author and the fee to the operator.
 * Each (payee, role) is one attribution line; the ledger posting has one transfer per (payee
 * account, code): model_call (owner, shares, spans), data_query (retrieval, datanet owner),
 * agent_fee (author), operator_fee (operator).
 *
 * Usage events. Each finished or failed call is a usage event stored as the posting's event
 * (meter_event_t): its id (the posting's), the request id the client knows, session, agent and
 * version, payer, resource, units, latency, reserved and charged amounts, state and the
 * attribution lines with their evidence. meter_event_decode reads them back (for `accrue usage`,
 * the server's usage API and settlement's explanations); meter_check_event is the ledger check's
 * event checker: each posted event's lines must add up to its transfers exactly.
 */
#ifndef ACCRUE_METERS_H
#define ACCRUE_METERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meters/ledger/ledger.h"
#include "runtime/base/buf.h"
#include "runtime/base/status.h"

#define METER_BPS 10000u
#define METER_ADDRESS_SIZE 43 /* "0x" + 40 hex digits (EIP-55) + NUL */
#define METER_NAME_MAX 128    /* names, versions, session and request ids, at most this many bytes */
#define METER_SHARES_MAX 16
#define METER_ERROR_MAX 200

/* --- Splits ------------------------------------------------------------------------------- */

/* Splits total into n parts proportional to weights, by largest remainder: each part is
 * floor(total x w / W) and the units left over go one each to the parts with the largest
 * remainders (ties: the lower index first). Exact (128-bit intermediates): the parts sum to total,
 * a zero weight gets 0, equal weights differ by at most 1. ACC_EINVAL when every weight is 0 (and
 * total is not) or n is 0; ACC_ENOMEM. */
int meter_split(ledger_amount_t total, const uint64_t *weights, size_t n, ledger_amount_t *parts);

/* amount x bps / 10000, rounded half up; ACC_ELIMIT past LEDGER_AMOUNT_MAX. */
int meter_fee(ledger_amount_t amount, uint32_t bps, ledger_amount_t *out);

/* --- What is priced: plain descriptors the caller fills from the registry ------------------ */

typedef struct meter_share {
    char address[METER_ADDRESS_SIZE]; /* EIP-55 */
    uint32_t bps;
} meter_share_t;

typedef struct meter_model {
    char name[METER_NAME_MAX + 1];
    char owner[METER_ADDRESS_SIZE];
    ledger_amount_t price_per_call, price_per_1k_in, price_per_1k_out;
    uint32_t owner_share_bps;
    size_t nshares;
    meter_share_t shares[METER_SHARES_MAX]; /* owner_share_bps + every bps <= 10000 */
} meter_model_t;

typedef struct meter_dataset {
    char name[METER_NAME_MAX + 1];
    char owner[METER_ADDRESS_SIZE];
    ledger_amount_t price_per_query, price_per_record;
} meter_dataset_t;

/* The agent a call is made for; an anonymous script (accrue run FILE.lua) has none (NULL). */
typedef struct meter_agent {
    char name[METER_NAME_MAX + 1];
    char version[METER_NAME_MAX + 1];
    char author[METER_ADDRESS_SIZE];
    ledger_amount_t price_per_message, price_per_session;
    uint32_t markup_bps;
} meter_agent_t;

/* Pure pricing (no reservation): the cost before markup and fee. ACC_ELIMIT on overflow. */
int meter_price_model(const meter_model_t *m, uint64_t in_tokens, uint64_t out_tokens, ledger_amount_t *out);
int meter_price_dataset(const meter_dataset_t *d, uint64_t records, ledger_amount_t *out);

/* --- The meter ------------------------------------------------------------------------------ */

typedef struct meter meter_t;

typedef struct meter_config {
    uint32_t operator_fee_bps; /* the operator's fee on every call */
    uint32_t deadline_ms;      /* a reservation is voided this long after it was made; 0 = 10 minutes */
    bool record_failures;      /* store failed calls as voided usage events (default true via meter_config_default) */
} meter_config_t;

meter_config_t meter_config_default(void);

/* A meter over an open ledger (not owned: close the meter first, then the ledger). */
int meter_open(ledger_t *ledger, const meter_config_t *cfg, meter_t **out, acc_err *err);
void meter_close(meter_t *m);
ledger_t *meter_ledger(meter_t *m);

/* Who pays, and for what: copied by meter_begin_*. */
typedef struct meter_ctx {
    const char *payer;      /* the API-key account (a ledger USER account): required */
    const char *request_id; /* what the client knows the call by (a session message id, an OpenAI
                               response id, X-Request-Id); NULL or "" is none */
    const char *session;    /* NULL or "" is none */
    const meter_agent_t *agent; /* NULL: no agent (no markup, no message price) */
    const ledger_id_t *id;  /* NULL: a fresh id. A retry of a call whose outcome the caller never
                               learned passes the same id: if the first was booked, the retry's
                               receipt says duplicate (with the first's seq) and nothing more is
                               charged. Ids are time-ordered (ledger_id_new). */
} meter_ctx_t;

typedef struct meter_call meter_call_t;

/* Prices the most a model call can cost and reserves it. prompt_tokens_max bounds the prompt's
 * tokens (the exact count for a built-in model; for an HTTP model's unknown tokenizer, its bytes
 * plus a few per message: a token is at least a byte), max_tokens the output's. ACC_EFUNDS when
 * the payer cannot afford it (err names the balance and the need; *call is NULL). */
int meter_begin_model(meter_t *m, const meter_ctx_t *ctx, const meter_model_t *model, uint64_t prompt_tokens_max,
                      uint64_t max_tokens, meter_call_t **call, acc_err *err);
/* The same for a dataset query returning at most limit records. */
int meter_begin_dataset(meter_t *m, const meter_ctx_t *ctx, const meter_dataset_t *dataset, uint64_t limit,
                        meter_call_t **call, acc_err *err);
/* An agent's message (ctx->agent required): its price, and its session price when first_in_session. */
int meter_begin_message(meter_t *m, const meter_ctx_t *ctx, bool first_in_session, meter_call_t **call, acc_err *err);

/* The amount reserved for the call (its most). */
ledger_amount_t meter_call_reserved(const meter_call_t *call);
/* The call's id (the usage event's and the posting's). */
const ledger_id_t *meter_call_id(const meter_call_t *call);

/* A span that earned a data share: where it is in the output, and the records it was found in. */
typedef struct meter_span {
    uint32_t byte_start, byte_end; /* in the output text */
    uint32_t ntokens;
    size_t nrecords;
    const int64_t *records;        /* record ids */
} meter_span_t;

/* A record credited by span attribution: its weight, and its contributor. */
typedef struct meter_credit {
    int64_t record;
    char contributor[METER_ADDRESS_SIZE];
    uint64_t weight;
} meter_credit_t;

typedef struct meter_model_outcome {
    uint64_t in_tokens, out_tokens; /* reported by the model, or counted by our tokenizer */
    const char *output;             /* the text (for the spans' evidence) */
    size_t output_len;
    uint64_t output_norm_tokens;    /* the output's normalised tokens (the span index's count) */
    uint64_t covered_tokens;        /* of those, inside at least one span */
    size_t nspans;
    const meter_span_t *spans;
    size_t ncredits;
    const meter_credit_t *credits;
    /* 0 for an answer that ended as answers end. Else the call ended early (ACC_ECANCELLED,
     * ACC_ETIMEOUT) after this output had already been delivered (a streamed answer's deltas): it
     * is charged for that output all the same, and its posted event records the code and cut_why
     * (error_code and error, "" when NULL), so it reads as a call cut short, not a whole answer. */
    int cut_code;
    const char *cut_why;
} meter_model_outcome_t;

typedef struct meter_row {
    int64_t record;
    char contributor[METER_ADDRESS_SIZE];
    double score; /* the query's rank score (BM25, > 0): quantized before any money is computed */
} meter_row_t;

typedef struct meter_dataset_outcome {
    size_t nrows;
    const meter_row_t *rows;
} meter_dataset_outcome_t;

/* What the caller gets back once the call's posting is durable (or failed). Valid during done. */
typedef enum meter_role {
    METER_ROLE_OWNER = 1,   /* the model's owner (its share and the uncovered data share), or a
                               datanet's owner (a query that returned nothing) */
    METER_ROLE_SHARE = 2,   /* a model's declared fixed share */
    METER_ROLE_SPAN = 3,    /* a contributor whose records the output copied */
    METER_ROLE_RETRIEVAL = 4, /* a contributor of a record the query returned */
    METER_ROLE_AUTHOR = 5,  /* the agent's author: markup, message and session price */
    METER_ROLE_OPERATOR = 6, /* the operator's fee */
} meter_role_t;
#define METER_ROLE_MAX 6
/* "owner", "share", "span", "retrieval", "author", "operator". Static. */
const char *meter_role_name(meter_role_t role);

typedef struct meter_line {
    meter_role_t role;
    ledger_account_kind_t payee_kind; /* ADDRESS, or SYSTEM for the operator */
    char payee[METER_ADDRESS_SIZE];   /* EIP-55 address, or "operator" */
    uint64_t weight;                  /* what the line's part was split by: bps for owner and share
                                         lines, span weight, score in millionths, 1 otherwise */
    ledger_amount_t amount;
    const char *evidence;             /* JSON, or NULL: {"records":[...]} and such */
    size_t evidence_len;
} meter_line_t;

typedef enum meter_resource {
    METER_MODEL = 1,
    METER_DATASET = 2,
    METER_MESSAGE = 3,
} meter_resource_t;
const char *meter_resource_name(meter_resource_t r); /* "model", "dataset", "message" */

/* A usage event, as stored (decoded) and as receipts carry it. Strings point into the event's
 * bytes: valid as long as they are. */
typedef struct meter_event {
    ledger_id_t id;
    ledger_state_t state;          /* POSTED or VOIDED */
    meter_resource_t resource;
    const char *resource_name;     /* model, dataset or agent name */
    const char *payer;
    const char *request_id, *session, *agent, *agent_version; /* "" when none */
    uint64_t start_ms;             /* Unix ms when it began */
    uint64_t latency_us;           /* begin to finish */
    uint64_t units_in, units_out;  /* tokens in and out; records asked (limit) and returned */
    ledger_amount_t reserved, cost; /* cost: what was charged (0 when voided) */
    int error_code;                /* ACC_* of a failure (voided), or of a model call cut short
                                      after it delivered output (posted: charged for that), else 0 */
    const char *error;             /* "" when none */
    const char *evidence;          /* the call's evidence: spans with their text, or the rows */
    size_t evidence_len;
    size_t nlines;
    meter_line_t *lines;           /* decoded: owned by the meter_event_t (meter_event_free) */
} meter_event_t;

/* Decodes an event's bytes (ledger_entry_t.event). ACC_ECORRUPT naming what is malformed. */
int meter_event_decode(const void *data, size_t len, meter_event_t *out, acc_err *err);
void meter_event_free(meter_event_t *e);
/* The event as a JSON object (what `accrue usage --json` prints per call): appends to out. seq is
 * the posting's (0: unknown). */
void meter_event_json(const meter_event_t *e, uint64_t seq, acc_buf *out);

typedef struct meter_receipt {
    int status;             /* ACC_OK: durable; else the posting failed and nothing was charged */
    acc_err err;
    uint64_t seq;
    bool duplicate;         /* the id was booked already (a retry): nothing more was charged, and
                               the stored event is the first one's (ledger_find), not `event` */
    const meter_event_t *event; /* the event as this call computed it, its evidence left out (event
                                   and lines say evidence_len 0): it is stored as data and written
                                   out as JSON when the stored event is read (meter_event_decode).
                                   NULL for a call given meter_call_set_ready (it had it there) */
} meter_receipt_t;

typedef void (*meter_done_fn)(void *ud, const meter_receipt_t *r);

/* The event a finished call computed (without evidence, as a receipt carries it), handed to the
 * caller on its own thread before the posting is queued: everything a caller builds from the
 * receipt but whether the commit succeeded (an answer's usage and cost, a receipt of its own) is
 * known then, and the event is still in the cache. Valid during the call only. */
typedef void (*meter_ready_fn)(void *ud, const meter_event_t *event);

/* Before meter_finish_*: ready(ready_ud, event) runs inside it, on its thread, once the call's
 * event is computed and just before the posting is queued (not for a call that fails before that;
 * one refused by the ledger after it, meter_finish_* failing, has had it). done's receipt then
 * carries no event (NULL), and the call's memory is freed as soon as the ledger has its posting,
 * not kept until the commit: a host with many calls in flight reuses it warm. */
void meter_call_set_ready(meter_call_t *call, meter_ready_fn ready, void *ready_ud);

/* Finishes a call: real units, attribution, the posting queued. On ACC_OK, done runs once the
 * posting is durable (or failed); on failure here (bad outcome, out of memory) nothing was queued,
 * the reservation was voided and done is not called. Frees call either way. */
int meter_finish_model(meter_call_t *call, const meter_model_outcome_t *o, meter_done_fn done, void *ud, acc_err *err);
int meter_finish_dataset(meter_call_t *call, const meter_dataset_outcome_t *o, meter_done_fn done, void *ud,
                         acc_err *err);
int meter_finish_message(meter_call_t *call, meter_done_fn done, void *ud, acc_err *err);
/* The call failed, timed out or was cancelled having delivered nothing: voids the reservation
 * (nothing charged) and, when the config says so, records a voided usage event naming code and
 * why. Frees call. (A call cut short after it delivered output is finished with
 * meter_finish_model and a cut_code instead: charged for what it delivered.) */
void meter_fail(meter_call_t *call, int code, const char *why);

/* The ledger check's event checker (ledger_event_check_fn): a charge posting's event decodes, its
 * state and id are the posting's, its cost is the sum of its lines and of the posting's transfers,
 * and each (payee, code) of its lines adds up to the transfers to that account under that code. */
int meter_check_event(void *ud, const ledger_entry_t *e, acc_err *err);

/* --- Usage per agent (the marketplace's figures) ------------------------------------------- */

typedef struct meter_agent_usage {
    char agent[METER_NAME_MAX + 1];
    uint64_t sessions_7d, sessions_30d; /* distinct sessions with a call */
    uint64_t messages_7d, messages_30d; /* distinct messages (request ids) with a call */
    ledger_amount_t revenue_7d, revenue_30d; /* what its users paid through it: every charge */
} meter_agent_usage_t;

/* One pass over the usage events of the 30 days before now_ms (Unix ms): each agent's figures,
 * sorted by agent name. *out is malloc'd (the caller frees); meter_agent_usage_find looks one up. */
int meter_usage_by_agent(ledger_t *l, uint64_t now_ms, meter_agent_usage_t **out, size_t *n, acc_err *err);
const meter_agent_usage_t *meter_agent_usage_find(const meter_agent_usage_t *v, size_t n, const char *agent);

/* --- Counters ------------------------------------------------------------------------------ */

typedef struct meter_stats {
    uint64_t begun, finished, failed, refused; /* refused: insufficient funds */
    ledger_amount_t charged;
} meter_stats_t;
void meter_stats(meter_t *m, meter_stats_t *out);

#endif
