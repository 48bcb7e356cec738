/*
 * sandbox.h: run untrusted Lua 5.4 agent scripts under hard limits.
 *
 * One sandbox is one lua_State of its own (nothing is shared between sandboxes), created on an
 * allocator that charges every byte to the sandbox's memory cap. Work happens in turns: loading the
 * script runs its top-level code, and each message calls the agent's on_message. Memory is capped
 * for the sandbox's whole life; instructions, wall time and output are capped per turn, by the
 * limits the turn was started with (a metered host gives each turn what its account can pay for).
 *
 * A turn runs as a coroutine. sandbox_run runs it until it finishes (SANDBOX_DONE), fails
 * (SANDBOX_FAILED), waits for a host call (SANDBOX_WAITING: a model call or a dataset query; the
 * provider answers with sandbox_call_done, at once or later), has used its time slice
 * (SANDBOX_PAUSED) or was told by the output callback that the session's queue is full
 * (SANDBOX_BLOCKED). After WAITING, PAUSED or BLOCKED the host calls sandbox_run again when it is
 * the turn's turn. A limit ends the turn with SANDBOX_FAILED and sandbox_limit_hit() naming it; the
 * script cannot catch it.
 *
 * Errors: functions return a status of runtime/base/status.h (ACC_OK, or a negative ACC_E* code)
 * and keep a message on the handle, SQLite's way: sandbox_errcode() and sandbox_errmsg() describe
 * the last failure of a call or a turn. A failed turn's code says what kind of failure it was:
 *   ACC_ESCRIPT     the script raised an error or does not compile;
 *   ACC_ELIMIT      a limit (sandbox_limit_hit: memory, instructions, time, output);
 *   ACC_ECANCELLED  sandbox_cancel;
 *   ACC_EBUSY       the output callback refused more output (SANDBOX_OUTPUT_REFUSE);
 *   ACC_ENOMEM      the host (not the script's heap) ran out of memory;
 *   ACC_EMISUSE     the host broke a rule below (a turn already under way, a call left unanswered
 *                   by sandbox_run_to_end's provider, a forbidden call from inside a callback).
 *
 * WHAT THE SANDBOX DOES TO THE PROCESS
 * - One watchdog thread, started by sandbox_setup (or the first sandbox_open), lives until the
 *   process exits. It sleeps until the earliest deadline (a time limit, the end of a time slice) of
 *   the turns executing at that moment, and then signals the thread running that turn.
 * - It claims one real-time signal, SIGRTMIN + 3 unless sandbox_setup names another, and installs
 *   its handler with SA_RESTART. Setup fails (ACC_EBUSY) if that signal already has a handler. The
 *   signal is only sent to a thread while it executes a turn inside sandbox_run, but it can land
 *   just after that sandbox_run returned: the handler then does nothing, and a system call it
 *   interrupts restarts, except those Linux never restarts after a handler (poll, epoll_wait,
 *   nanosleep, ...: they fail with EINTR, which an event loop retries anyway).
 * - A thread must not block that signal while it runs turns: sandbox_run unblocks it on its thread
 *   (checked once per thread). Other threads are left alone.
 * - Every turn executing at once is watched, however many: deadlines are kept in a heap that
 *   grows with the number of open sandboxes (reserved by sandbox_open, so sandbox_run never
 *   allocates for it), at O(log n) per turn started or stopped.
 * - A capped sandbox reserves address space for its Lua heap: 3x its memory cap, plus a 128 KiB
 *   reserve and a bitmap of 1/64 of that (about 195 MiB for the default 64 MiB cap), with
 *   MAP_NORESERVE: pages are committed only as touched, but a process limited with RLIMIT_AS, or
 *   a system with vm.overcommit_memory = 2, runs out sooner. An uncapped heap is on jemalloc.
 * - JSON numbers are read with strtod_l and written under uselocale in a private "C" locale, so they
 *   use '.' whatever LC_NUMERIC says, and a setlocale elsewhere is no race. (Lua's own tostring and
 *   tonumber follow the process's locale, as stock Lua does: leave LC_NUMERIC at "C".)
 *
 * THREADS
 * - A sandbox belongs to one thread at a time: every function below takes it on the thread that
 *   owns it, except sandbox_call_done and sandbox_cancel. Ownership may move between calls (a
 *   worker pool: WAITING on one thread, sandbox_run again on another), provided the host hands the
 *   sandbox over with a synchronising operation (a mutex, a queue).
 * - sandbox_call_done is safe from any thread while the sandbox is open, concurrently with the
 *   owner's sandbox_run: an answer that arrives while sandbox_run is still returning WAITING is
 *   kept, and the next sandbox_run takes it.
 * - sandbox_cancel takes a sandbox id, not the handle: it is safe from any thread at any time,
 *   before, during and after sandbox_close (a closed id is simply not found). Not async-signal-safe
 *   (it takes a lock): a SIGTERM handler sets a flag, the loop cancels.
 * - Sandboxes share nothing but the watchdog: different sandboxes run on different threads at once.
 * - A thread that runs turns needs stack: a turn may use 1 MiB of C stack below sandbox_run's frame
 *   (measured; past it the script gets "C stack overflow"), and the provider's callbacks run below
 *   that. Threads with the default 8 MiB are fine; give a pool's threads at least 2 MiB.
 * - Resident memory: a capped sandbox's heap takes its pages only from its own reservation (above),
 *   so no allocation pattern holds more resident; a turn that freed anything returns its free
 *   pages when it ends, and an idle sandbox holds little more than its live heap (about 28 KiB
 *   each for 10,000 idle agents). There is no limit on the number of sandboxes but address space.
 *
 * CALLBACKS (the provider's start_call and output run inside sandbox_run, on its thread)
 * - They may call sandbox_call_done, sandbox_cancel, sandbox_id, sandbox_userdata, sandbox_stats,
 *   sandbox_errmsg and sandbox_errcode.
 * - They must not call sandbox_run, sandbox_run_to_end, sandbox_start_load, sandbox_start_message
 *   or sandbox_close: those refuse with ACC_EMISUSE (SANDBOX_FAILED for the run functions) and
 *   change nothing. They must not longjmp out, or call into the sandbox's Lua state.
 * - Nor may they run another sandbox's turn on their thread (sandbox_run on any sandbox refuses
 *   while a turn executes on the calling thread: the watchdog knows one running turn per thread).
 *   A host that wants a nested sandbox (a lua model called by an agent) runs it after the turn
 *   yields, or on another thread.
 */
#ifndef ACCRUE_SANDBOX_H
#define ACCRUE_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

typedef struct sandbox sandbox_t;

/* ---- the process ------------------------------------------------------------------------ */

typedef struct sandbox_setup {
    int watchdog_signal; /* a real-time signal (SIGRTMIN..SIGRTMAX) for the watchdog; 0 = SIGRTMIN + 3 */
} sandbox_setup_t;

/* Starts the watchdog and claims its signal, once per process. Optional: the first sandbox_open
 * calls it with the defaults. Call it before any sandbox is opened to choose the signal. ACC_OK (also
 * when called again with the same choice); ACC_EINVAL for a signal outside SIGRTMIN..SIGRTMAX;
 * ACC_EBUSY when that signal already has a handler; ACC_EMISUSE when setup already happened with
 * another signal; ACC_ENOMEM when the thread cannot be started. A failed setup can be retried. */
int sandbox_setup(const sandbox_setup_t *setup, acc_err *err);

/* ---- limits ------------------------------------------------------------------------------- */

typedef struct sandbox_turn_limits {
    uint64_t instructions; /* Lua VM instructions plus C work; 0 = not counted */
    uint64_t time_ms;      /* wall time of the turn, waits and pauses included; required (0 is
                            * refused): only the clock bounds the C work Lua does inside one VM
                            * instruction */
    size_t output_bytes;   /* print, session.send and the reply; 0 = none */
    uint32_t slice_ms;     /* a running turn pauses after this long (time slicing); 0 = never */
} sandbox_turn_limits_t;

typedef struct sandbox_limits {
    size_t memory_bytes;        /* cap on the sandbox's Lua heap, whole life; 0 = no cap */
    sandbox_turn_limits_t turn; /* the limits of a turn whose start gives none */
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
    SANDBOX_LIMIT_CANCELLED, /* sandbox_cancel */
    SANDBOX_LIMIT_REFUSED,   /* the output callback refused more output */
} sandbox_limit_t;

/* "memory limit", "instruction limit", "time limit", "output limit", "cancelled",
 * "output refused". Static. */
const char *sandbox_limit_name(sandbox_limit_t limit);

/* ---- the provider: what the host gives the agent API ---------------------------------------- */

typedef enum sandbox_call_kind {
    SANDBOX_CALL_MODEL,   /* models.call(name, request): json is the request object */
    SANDBOX_CALL_DATASET, /* datasets.query(name, text, opts): json is {"text":..,"opts":{..}} */
} sandbox_call_kind_t;

/* What an agent hands the host in one call is bounded before any provider sees it, and the agent
 * pays for it (encoding, and the provider's parse, as instructions): the request's JSON text is at
 * most SANDBOX_CALL_MAX_BYTES, nests at most SANDBOX_CALL_MAX_DEPTH deep and holds at most
 * SANDBOX_CALL_MAX_VALUES values (so a few KiB of Lua tables shared a million times over cannot
 * become a million objects in the host); a dataset query's text is at most SANDBOX_QUERY_MAX_BYTES.
 * The rule for providers (the test provider, the registry's FTS query): the work done for one
 * call is at most linear in these bounds, and a query is ranked on at most SANDBOX_QUERY_MAX_TERMS
 * of its words. A synchronous start_call runs inside the turn, whose time limit is checked when it
 * returns, not during it: a provider's own work must stay within milliseconds. */
#define SANDBOX_CALL_MAX_BYTES ((size_t)1 << 20)
#define SANDBOX_CALL_MAX_DEPTH 16
#define SANDBOX_CALL_MAX_VALUES 10000
#define SANDBOX_QUERY_MAX_BYTES 4096
#define SANDBOX_QUERY_MAX_TERMS 32

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

/* What the output callback answers: backpressure from the session's queue. */
typedef enum sandbox_output_verdict {
    SANDBOX_OUTPUT_OK = 0, /* taken; go on */
    SANDBOX_OUTPUT_PAUSE,  /* taken, and the queue is now full: the turn stops at the next point it
                            * can, and sandbox_run returns SANDBOX_BLOCKED. In Lua code that is the
                            * next instruction; inside a C function that calls back into Lua (a
                            * table.sort comparator, a gsub callback) it is within about 100
                            * instructions after that function returns. Output that comes before
                            * the turn stops is still handed over (and may be answered PAUSE
                            * again). Run the turn again when the queue has room. */
    SANDBOX_OUTPUT_REFUSE, /* not taken: the turn fails now (SANDBOX_LIMIT_REFUSED, ACC_EBUSY) */
} sandbox_output_verdict_t;

/* Any member may be NULL: a missing start_call makes models.call and datasets.query fail with
 * "no provider"; a missing output drops output (still counted against the output limit). */
typedef struct sandbox_provider {
    void *ud;
    /* Starts a host call. Return 0 when taken: then sandbox_call_done(call->id) must follow exactly
     * once, before returning or later, from any thread. Non-zero refuses the call; the agent sees
     * an error with the message set by sandbox_call_done(sb, id, 0, msg, len) if it was called,
     * else a generic one. */
    int (*start_call)(void *ud, sandbox_t *sb, const sandbox_call_t *call);
    /* Takes output as the turn produces it. text is valid during the call only. Returns a
     * sandbox_output_verdict_t. */
    sandbox_output_verdict_t (*output)(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *text,
                                       size_t len);
} sandbox_provider_t;

/* ---- sandboxes and turns ------------------------------------------------------------------- */

typedef enum sandbox_status {
    SANDBOX_DONE,    /* the turn finished; for a message turn, sandbox_reply has the answer */
    SANDBOX_WAITING, /* waiting for sandbox_call_done; then sandbox_run again */
    SANDBOX_PAUSED,  /* the time slice ran out; sandbox_run again to continue */
    SANDBOX_BLOCKED, /* the output callback said PAUSE; sandbox_run again when the queue has room */
    SANDBOX_FAILED,  /* sandbox_errcode, sandbox_errmsg, sandbox_limit_hit say why */
} sandbox_status_t;

/* Creates a sandbox with the vetted standard library and the agent API; the provider struct is
 * copied. Returns NULL on failure with err set: ACC_EINVAL (limits->turn.time_ms is 0), ACC_ENOMEM
 * (host memory, or no address space to reserve for its heap), ACC_ELIMIT (the memory cap is too small to hold the standard library), or
 * sandbox_setup's code. Close with sandbox_close. */
sandbox_t *sandbox_open(const sandbox_limits_t *limits, const sandbox_provider_t *provider, acc_err *err);

/* Frees the sandbox, a turn under way included; its id is never found again. NULL is fine.
 * ACC_OK, or ACC_EMISUSE from inside a callback (nothing is freed then). */
int sandbox_close(sandbox_t *sb);

/* The sandbox's id for sandbox_cancel: unique in the process, never 0, never reused. */
uint64_t sandbox_id(const sandbox_t *sb);

/* Compiles an agent script (text only) and starts the turn that runs its top-level code, which
 * must return a table with on_message. turn NULL uses the sandbox's turn limits. ACC_OK;
 * ACC_ESCRIPT on a syntax error; ACC_ELIMIT when compiling hit a limit (sandbox_limit_hit);
 * ACC_EMISUSE when a script is loaded already or a turn is under way; ACC_EINVAL when
 * turn->time_ms is 0; ACC_ENOMEM. */
int sandbox_start_load(sandbox_t *sb, const char *chunkname, const char *src, size_t len,
                       const sandbox_turn_limits_t *turn);

/* Starts a turn that calls on_message(session, text); text is copied. turn NULL uses the
 * sandbox's turn limits. ACC_OK; ACC_EMISUSE when no script is loaded or a turn is under way;
 * ACC_EINVAL when turn->time_ms is 0; ACC_ENOMEM. */
int sandbox_start_message(sandbox_t *sb, const char *text, size_t len, const sandbox_turn_limits_t *turn);

/* Runs the current turn until it is done, waits, pauses, blocks or fails. A turn that was waiting
 * or blocked fails here if its time limit has passed or it was cancelled meanwhile. */
sandbox_status_t sandbox_run(sandbox_t *sb);

/* Runs the current turn to its end, going on after pauses and blocks; for providers that answer
 * at once. Returns SANDBOX_DONE or SANDBOX_FAILED (a call left unanswered fails the turn with
 * ACC_EMISUSE). */
sandbox_status_t sandbox_run_to_end(sandbox_t *sb);

/* When the current turn's time limit passes, in CLOCK_MONOTONIC nanoseconds; 0 when it has none
 * or no turn is under way. A turn that waits (WAITING, BLOCKED) is not executing, so nothing
 * watches it: a host that waits longer than this should call sandbox_run by then, which fails the
 * turn. */
uint64_t sandbox_turn_deadline_ns(const sandbox_t *sb);

/* Answers host call call_id: ok with the result as JSON text, or !ok with an error message the
 * agent sees as a Lua error. Copies the text. Any thread (see THREADS); it returns a code and
 * leaves the handle's message alone. ACC_OK; ACC_EMISUSE when that call is not the one waiting
 * (answered already, or its turn ended: a late answer is dropped); ACC_ENOMEM when the text cannot
 * be copied: the call then fails in the agent with "out of host memory for the answer" at the next
 * sandbox_run, so the turn never waits for an answer that cannot come. */
int sandbox_call_done(sandbox_t *sb, uint64_t call_id, int ok, const char *text, size_t len);

/* Ends the turn under way in sandbox id: a turn executing now stops at its next instruction; one
 * that is waiting, paused or blocked fails at its next sandbox_run. Either way it fails with
 * SANDBOX_LIMIT_CANCELLED (ACC_ECANCELLED). A cancel between turns does nothing. Any thread, any
 * time. ACC_OK, or ACC_ENOTFOUND when no open sandbox has that id. */
int sandbox_cancel(uint64_t id);

/* The reply of the last finished message turn (what on_message returned, after streamed parts).
 * Owned by the sandbox, valid until the next turn starts. NULL when there is none. */
const char *sandbox_reply(sandbox_t *sb, size_t *len);

/* The code and message of the last failed call or turn (ACC_OK and "" when none failed). The
 * message is owned by the sandbox, valid until the next call on it. Never NULL. */
int sandbox_errcode(sandbox_t *sb);
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
    uint64_t pauses;        /* time-slice pauses and output blocks, whole life */
} sandbox_stats_t;
void sandbox_stats(sandbox_t *sb, sandbox_stats_t *out);

/* The host's opaque pointer for this sandbox (e.g. its session). */
void sandbox_set_userdata(sandbox_t *sb, void *ud);
void *sandbox_userdata(sandbox_t *sb);

/* ---- prefetching ---------------------------------------------------------------------------- */

/* A host that runs many sandboxes on one thread finds each one's memory cold when its turn comes
 * again (with 1,000 in flight, the others' calls evict it), and a resume waits on one cache miss
 * after another. A host that knows which sandboxes it runs next (a list of answers to deliver)
 * can have their memory loaded while it runs the current one: sandbox_prefetch_handle for the
 * sandbox after next (the handle itself), sandbox_prefetch for the next one (what its next
 * sandbox_run touches first: the strings of its last answer and its request buffer, as noted when
 * it last ran, its heap's control data, the waiting coroutine). A sandbox notes those lines from
 * its first sandbox_prefetch on (a host that never prefetches pays nothing for them). Hints only:
 * nothing changes but what is in the caches. On the thread that runs sb, not inside its
 * sandbox_run (callbacks included). */
void sandbox_prefetch_handle(const sandbox_t *sb);
void sandbox_prefetch(sandbox_t *sb);

#endif
