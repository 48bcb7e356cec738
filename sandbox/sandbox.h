/*
 * sandbox.h: run untrusted Lua 5.4 agent scripts under hard limits.
 *
 * One sandbox is one lua_State of its own (nothing is shared between sandboxes), created on an
 * allocator that charges every byte to the sandbox's memory cap. Work happens in turns: loading the
 * script runs its top-level code, and each message calls the agent's on_message. Every turn has its
 * own instruction, wall-time and output budgets; memory is capped for the sandbox's whole life.
 *
 * A turn runs as a coroutine. It stops when it finishes, when it waits for a host call (a model call,
 * a dataset query: the provider answers with sandbox_call_done, at once or later), or when its time
 * slice is over (SANDBOX_PAUSED: run it again when it is its turn). A limit hit ends the turn with
 * SANDBOX_FAILED and sandbox_limit_hit() naming the limit; the script cannot catch it.
 *
 * Errors follow SQLite: functions return a status, sandbox_errmsg() says what went wrong.
 * A sandbox belongs to one thread at a time.
 */
#ifndef ACCRUE_SANDBOX_H
#define ACCRUE_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct sandbox sandbox_t;

typedef struct sandbox_limits {
    size_t memory_bytes;   /* cap on the sandbox's Lua heap, whole life; 0 = no cap */
    uint64_t instructions; /* per turn, Lua VM instructions plus C work; 0 = not counted */
    uint64_t time_ms;      /* wall time per turn, waits included; required (sandbox_open refuses 0):
                            * only the clock bounds the C work Lua does inside one VM instruction */
    size_t output_bytes;   /* print, session.send and the reply, per turn; 0 = none */
    uint32_t slice_ms;     /* a running turn pauses after this long (time slicing); 0 = never */
} sandbox_limits_t;

#define SANDBOX_DEFAULT_MEMORY_BYTES ((size_t)64 << 20)
#define SANDBOX_DEFAULT_INSTRUCTIONS UINT64_C(100000000)
#define SANDBOX_DEFAULT_TIME_MS 5000
#define SANDBOX_DEFAULT_OUTPUT_BYTES ((size_t)1 << 20)
#define SANDBOX_DEFAULT_SLICE_MS 0

/* The defaults above. */
sandbox_limits_t sandbox_default_limits(void);

typedef enum sandbox_limit {
    SANDBOX_LIMIT_NONE = 0,
    SANDBOX_LIMIT_MEMORY,
    SANDBOX_LIMIT_INSTRUCTIONS,
    SANDBOX_LIMIT_TIME,
    SANDBOX_LIMIT_OUTPUT,
    SANDBOX_LIMIT_CANCELLED, /* the host cancelled the turn */
} sandbox_limit_t;

/* "memory limit", "instruction limit", "time limit", "output limit", "cancelled". Static. */
const char *sandbox_limit_name(sandbox_limit_t limit);

typedef enum sandbox_call_kind {
    SANDBOX_CALL_MODEL,   /* models.call(name, request): json is the request object */
    SANDBOX_CALL_DATASET, /* datasets.query(name, text, opts): json is {"text":..,"opts":{..}} */
} sandbox_call_kind_t;

typedef struct sandbox_call {
    uint64_t id; /* names this call in sandbox_call_done; never reused within a sandbox */
    sandbox_call_kind_t kind;
    const char *name; /* model or dataset name; valid during start_call only */
    size_t name_len;
    const char *json; /* the request as JSON text; valid during start_call only */
    size_t json_len;
} sandbox_call_t;

typedef enum sandbox_output_kind {
    SANDBOX_OUTPUT_PRINT, /* print(...) */
    SANDBOX_OUTPUT_DELTA, /* session.send(text): streamed part of the reply */
} sandbox_output_kind_t;

/* What the host gives the agent API. Any member may be NULL: a missing start_call makes models.call
 * and datasets.query fail with "no provider"; a missing output drops output (still counted). */
typedef struct sandbox_provider {
    void *ud;
    /* Starts a host call. Return 0 when taken: the provider then calls sandbox_call_done exactly
     * once, before returning or later from the host's loop. Non-zero refuses the call; the agent sees
     * an error with the message set by sandbox_call_done(sb, id, 0, msg, len) if it was called, else
     * a generic one. */
    int (*start_call)(void *ud, sandbox_t *sb, const sandbox_call_t *call);
    void (*output)(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *text, size_t len);
} sandbox_provider_t;

typedef enum sandbox_status {
    SANDBOX_DONE,    /* the turn finished; for a message turn, sandbox_reply has the answer */
    SANDBOX_WAITING, /* waiting for sandbox_call_done; then sandbox_run again */
    SANDBOX_PAUSED,  /* the time slice ran out; sandbox_run again to continue */
    SANDBOX_FAILED,  /* error or limit: sandbox_errmsg, sandbox_limit_hit */
} sandbox_status_t;

/* Creates a sandbox with the vetted standard library and the agent API. Returns NULL when out of
 * memory or when limits->time_ms is 0. The provider struct is copied. Close with sandbox_close. */
sandbox_t *sandbox_open(const sandbox_limits_t *limits, const sandbox_provider_t *provider);
void sandbox_close(sandbox_t *sb);

/* Compiles an agent script (text only) and starts the turn that runs its top-level code, which
 * must return a table with on_message. 0 ok; -1 with sandbox_errmsg on a syntax error or when a
 * turn is already under way. */
int sandbox_start_load(sandbox_t *sb, const char *chunkname, const char *src, size_t len);

/* Starts a turn that calls on_message(session, text). 0 ok; -1 when the script is not loaded or a
 * turn is under way. */
int sandbox_start_message(sandbox_t *sb, const char *text, size_t len);

/* Runs the current turn until it is done, waits, pauses or fails. */
sandbox_status_t sandbox_run(sandbox_t *sb);

/* Runs the current turn to its end, resuming after pauses; for providers that answer at once.
 * Returns SANDBOX_DONE or SANDBOX_FAILED (a call left unanswered fails the turn). */
sandbox_status_t sandbox_run_to_end(sandbox_t *sb);

/* Answers host call call_id, which the turn is waiting for: ok with the result as JSON text, or !ok
 * with an error message the agent sees as a Lua error. Copies the text. 0 ok; -1 when that call is
 * not the one waiting (answered already, or its turn ended: a late answer is dropped). */
int sandbox_call_done(sandbox_t *sb, uint64_t call_id, int ok, const char *text, size_t len);

/* Ends the current turn at its next instruction: it fails with SANDBOX_LIMIT_CANCELLED. Safe to
 * call from another thread. */
void sandbox_cancel(sandbox_t *sb);

/* The reply of the last finished message turn (what on_message returned, after streamed parts).
 * Owned by the sandbox, valid until the next turn starts. NULL when there is none. */
const char *sandbox_reply(sandbox_t *sb, size_t *len);

/* The error of the last failed call or turn. Owned by the sandbox. Never NULL. */
const char *sandbox_errmsg(sandbox_t *sb);
sandbox_limit_t sandbox_limit_hit(sandbox_t *sb);

typedef struct sandbox_stats {
    uint64_t instructions;  /* used by the current or last turn */
    uint64_t turn_ns;       /* wall time of the current or last turn */
    size_t output_bytes;    /* output of the current or last turn */
    size_t memory_bytes;    /* Lua heap now; after the memory limit was hit, up to 64 KiB past the cap
                             * (what Lua needed to end the turn) until the next collection */
    size_t memory_peak;     /* highest Lua heap the scripts reached so far (never past the cap) */
    uint64_t host_calls;    /* host calls started, whole life */
    uint64_t pauses;        /* time-slice pauses, whole life */
} sandbox_stats_t;
void sandbox_stats(sandbox_t *sb, sandbox_stats_t *out);

/* The host's opaque pointer for this sandbox (e.g. its session). */
void sandbox_set_userdata(sandbox_t *sb, void *ud);
void *sandbox_userdata(sandbox_t *sb);

#endif
