/*
 * internal.h: what the sandbox's own files share. Not for other modules.
 *
 * Every library function written in C that can run long (pattern matching, sorting, copying,
 * JSON) pays for its work with sbx_charge: one unit is about one Lua VM instruction of work (one
 * matcher step, one comparison, SBX_COPY_BYTES bytes copied: the price list is below, one for all).
 * sbx_charge also checks the stop flags (time limit, cancel), so a C loop that charges at least
 * every SBX_CHARGE_EVERY units can never hold the CPU past a limit. When a limit is hit,
 * sbx_charge raises the sandbox's stop error and does not return; the stop is sticky, so pcall
 * cannot swallow it.
 */
#ifndef ACCRUE_SANDBOX_INTERNAL_H
#define ACCRUE_SANDBOX_INTERNAL_H

#include <lua.h>
#include <lauxlib.h>
#include <stdint.h>
#include <string.h>

#include "runtime/base/invariant.h"
#include "sandbox/sandbox.h"

#define SBX_CHARGE_EVERY 1024

/* The instruction-count hook fires every SBX_HOOK_QUANTUM VM instructions (when counting). */
#define SBX_HOOK_QUANTUM 100

/* The C stack a turn may use below sandbox_run's frame, measured (sbx_check_cstack). Every path
 * that recurses in C without Lua counting it (coroutine.close and coroutine.wrap reset Lua's C-call
 * count in Lua 5.4.4) passes a check, and between two checks Lua's own count (LUAI_MAXCCALLS, 200
 * levels) bounds the rest; see sandbox.h for what the host's thread needs. */
#define SBX_CSTACK_MAX ((size_t)1 << 20)

/* Bytes past the cap that only the end of a turn may use: once the script's cap is hit for good,
 * the allocations Lua itself must make to raise and unwind (an error message in a coroutine with
 * no handler, a CallInfo, the registry's own slots) are granted from here instead of failing into
 * abort(). The script cannot use them: the memory stop is armed before it runs again. */
#define SBX_HEAP_RESERVE ((size_t)64 << 10)

#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>

/* A capped sandbox's Lua heap lives in a region of address space of its own (alloc.c, region.c):
 * a main pool of SBX_PAGES_PER_CAP times the cap, the bound on its resident pages, and a reserve
 * pool of 2 * SBX_HEAP_RESERVE. During a turn, free pages go back to the kernel after each cap's
 * worth of frees (SBX_PURGE_MIN at least), and at its end if anything was freed. */
#define SBX_PAGES_PER_CAP 3
#define SBX_PURGE_MIN ((size_t)4 << 20)
typedef struct sbx_region sbx_region_t; /* region.h */

/* The Lua heap of one sandbox: every byte Lua asks for is counted against cap (requested sizes,
 * exact). alloc.c. */
typedef struct sbx_heap {
    sbx_region_t *region;   /* its pages (NULL: no cap, or built for ASan/valgrind: malloc's) */
    size_t freed;           /* bytes freed since its free pages last went back */
    size_t used, peak, cap; /* cap 0 = none */
    uint64_t refusals;      /* allocations refused for the cap, whole life */
    bool refused_last;      /* the last request to grow was refused (Lua collects and asks again) */
    bool over;              /* the cap was hit for good this turn: the reserve is open */
} sbx_heap_t;

/* Reserves the heap's region (for a capped heap): 0, or -1 when the address space cannot be had.
 * Close with sbx_heap_close. */
int sbx_heap_open(sbx_heap_t *heap);
void sbx_heap_close(sbx_heap_t *heap);
/* Starts loading the heap's control data into the cache (sandbox_prefetch). */
void sbx_heap_prefetch(const sbx_heap_t *heap);
/* The address of the heap region's first block, line-aligned; 0 for a heap with no region. */
uintptr_t sbx_heap_base(const sbx_heap_t *heap);
/* Returns the heap's free pages to the kernel if it freed anything since it last did (the end of
 * a turn). */
void sbx_heap_trim(sbx_heap_t *heap);

/* Called by the allocator when a request still does not fit after Lua's emergency collection:
 * records the memory limit and arms the stop in the running coroutine (sandbox.c). */
void sbx_heap_exhausted(sbx_heap_t *heap);

void *sbx_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Bits of sandbox.interrupt, set from other threads (watchdog, sandbox_cancel) and by output
 * backpressure. TIME and CANCEL stay set until the turn ends; PREEMPT and BLOCK are taken by the
 * hook that acts on them. */
enum { SBX_INT_TIME = 1, SBX_INT_CANCEL = 2, SBX_INT_PREEMPT = 4, SBX_INT_BLOCK = 8 };

/* Why the turn's coroutine yielded to the host. */
enum sbx_yield { SBX_YIELD_NONE = 0, SBX_YIELD_CALL, SBX_YIELD_SLICE, SBX_YIELD_BLOCK };

enum sbx_turn { SBX_TURN_NONE = 0, SBX_TURN_LOAD, SBX_TURN_MESSAGE };

/* The cache lines of a sandbox's heap that its next resume reads first (the strings of its last
 * answer, which the next answer's are compared with; its request buffer; the tables that hold
 * them), noted during a run, when they are in the cache: sandbox_prefetch loads them again before
 * the next. Kept as line numbers from the start of the heap's pages, 16 bits each, so that the
 * handle stays in jemalloc's 1 KiB size class (an idle session's memory): a line past the heap's
 * first 4 MiB (an agent's long-lived objects are made early, low in it) is not noted, nor anything
 * of a heap with no region. */
#define SBX_WARM_MAX 24
typedef struct sbx_warm {
    uint16_t line[SBX_WARM_MAX];
    uint8_t n;
} sbx_warm_t;

struct sandbox {
    lua_State *L;                /* the sandbox's main state; turns run in threads of it */
    sbx_heap_t heap;
    sandbox_turn_limits_t limits;        /* the current (or last) turn's limits */
    sandbox_turn_limits_t default_turn;  /* the limits of a turn started without its own */
    sandbox_provider_t provider;
    void *userdata;
    uint64_t id;                 /* sandbox_id; the registry's key (watchdog.c) */
    int in_callback;             /* > 0 while a provider callback runs */

    /* The current turn. */
    enum sbx_turn turn;
    lua_State *turn_thread;      /* NULL between turns */
    lua_State *volatile current; /* the coroutine executing now (read by the signal handler) */
    bool turn_thread_seen;       /* coroutine.running gave the agent turn_thread this turn */
    bool spare_thread;           /* between turns: the last clean message turn's thread waits in its slot for reuse */
    bool chain_yieldable;        /* can a host yield in `current` reach the host? */
    uint64_t turn_start_ns, turn_deadline_ns, turn_end_ns;
    uint64_t instructions;       /* used this turn */
    uint64_t charge_check_at;    /* sbx_charge takes its slow path from this count on: the
                                  * instruction limit while the watchdog watches the turn, 0 when
                                  * nothing does (the clock must then be read) */
    size_t output;               /* bytes this turn */
    _Atomic uint32_t interrupt;  /* SBX_INT_* */
    sandbox_limit_t stop;        /* sticky: once set, the turn can only fail */
    enum sbx_yield yield;

    /* The host call the turn waits for. call_lock guards these: sandbox_call_done may come from
     * any thread. */
    pthread_mutex_t call_lock;
    bool call_pending, call_answered, call_ok, call_nomem;
    uint64_t last_call_id;
    char *call_text;
    size_t call_len;
    int answer_strings; /* registry ref of the answers' string list (json.c), 0 until the first */
    int request_buf;    /* registry ref of the requests' scratch buffer, 0 until the first */

    char *reply;
    size_t reply_len;
    char *input; /* the message of the current turn */
    size_t input_len;
    int errcode; /* ACC_* of the last failure */
    bool loaded; /* the load turn finished: the agent table is in the registry */
    bool host_nomem; /* the turn failed because the host's malloc did (ACC_ENOMEM) */
    uint64_t host_calls, pauses;
    int resume_status, resume_nres; /* what the last lua_resume of the turn's thread returned */
    uintptr_t cstack_base; /* C stack address where the running turn started (0 = none) */

    /* The watchdog's view, under its lock: watched while the turn executes Lua. watchdog.c. */
    pthread_t runner;
    uint64_t slice_deadline_ns;
    uint64_t watch_deadline; /* the deadline the watchdog's heap orders this turn by */
    size_t watch_pos;        /* index in the heap, or SIZE_MAX when not in it */

    /* What the next resume touches first, noted by the last run while it was in the cache
     * (sandbox_prefetch): lines from warm_base (sbx_heap_base; 0 until the first
     * sandbox_prefetch, and for a heap with no region: nothing noted). */
    uintptr_t warm_base;
    bool watched; /* the watchdog's, above: here it fills what would be padding */
    sbx_warm_t warm;

    /* Cold: last, so that sandbox_prefetch_handle loads everything above it and not this. */
    char errmsg[512];
};

/* Notes the cache lines of [p, p + len) (len >= 1) in sb's warm list (sandbox_prefetch). */
static inline void sbx_warm_note(sandbox_t *sb, const void *p, size_t len) {
    sbx_warm_t *w = &sb->warm;
    uintptr_t base = sb->warm_base;
    if (!base || (uintptr_t)p < base) return;
    uintptr_t line = ((uintptr_t)p - base) / 64, last = ((uintptr_t)p + len - 1 - base) / 64;
    for (; line <= last && line <= UINT16_MAX && w->n < SBX_WARM_MAX; line++) w->line[w->n++] = (uint16_t)line;
}

/* Monotonic clock in nanoseconds. */
uint64_t sbx_now_ns(void);

/* Hooks and stops (sandbox.c). */
void sbx_hook(lua_State *L, lua_Debug *ar);
/* Arms the normal hook in L: the instruction-count hook if instructions are counted, else none.
 * A coroutine that has our hook already keeps it and its partial count, so no call can reset the
 * count of the coroutine running it. */
void sbx_arm_normal_hook(sandbox_t *sb, lua_State *L);
/* Makes co the coroutine executing now (the one the watchdog's signal arms) with its hook armed,
 * and the stop hook armed too if the turn must stop. */
void sbx_switch_to(sandbox_t *sb, lua_State *co);
/* Raises "C stack overflow" (an ordinary error) when the turn has used SBX_CSTACK_MAX of C stack. */
void sbx_check_cstack(lua_State *L);
/* Records the limit (first one wins), arms the sticky stop in L and raises the stop error. */
_Noreturn void sbx_stop(lua_State *L, sandbox_limit_t limit);
/* After a catcher (pcall, coroutine.resume, load...) saw an error with this status: re-raises the
 * stop error if the turn must stop (a limit was hit, or status is a memory error). */
void sbx_rethrow_if_stopped(lua_State *L, int status);
/* Compiles a text chunk (a string, or pieces from the reader function at stack index fn when fn
 * is not 0), pushing the function or the error like lua_load. The parser's work is bounded by the
 * limits. */
int sbx_load_chunk(lua_State *L, const char *s, size_t len, int fn, const char *chunkname);
/* Counts output against the turn's limit and hands it to the provider. Raises on the limit. */
void sbx_output(lua_State *L, sandbox_output_kind_t kind, const char *s, size_t len);
/* Starts a host call and yields the calling coroutine until it is answered; the continuation
 * returns the decoded result or raises the error. Raises when the call cannot wait here. */
int sbx_host_call(lua_State *L, sandbox_call_kind_t kind, const char *name, size_t name_len, int req_idx);

/* Resumes co from L on behalf of the agent's coroutine.resume/wrap, passing host yields through.
 * Returns like lua_resume; a host yield makes this function yield L itself. stdlib.c. */
void sbx_open_stdlib(lua_State *L);
/* The agent API globals: models, datasets, session, json. api.c. */
void sbx_open_api(lua_State *L);
/* No weak tables: setmetatable/getmetatable/rawset globals and their registry state. metaguard.c. */
void sbx_open_metaguard(lua_State *L);
/* Marks the table at idx as in use as a metatable and guards it against gaining __mode. Host
 * code that sets a metatable the agent can reach calls this first. */
void sbx_protect_metatable(lua_State *L, int idx);
/* Pushes the session table (the global `session`, on_message's first argument). api.c. */
void sbx_push_session(lua_State *L);

/* watchdog.c: while a turn executes Lua on this thread, a deadline (time limit or slice end)
 * makes the watchdog set the interrupt bits and signal this thread; the signal handler arms the
 * hook in sb->current. sbx_watch_begin/end bracket each stretch of execution in sandbox_run. */
void sbx_watch_begin(sandbox_t *sb);
void sbx_watch_end(sandbox_t *sb);
/* The sandbox whose turn executes on this thread (inside sandbox_run), or NULL. */
sandbox_t *sbx_watch_running_here(void);
/* Gives sb its id and makes room for it in the watchdog's heap (sets up the process first if
 * needed). ACC_OK, or setup's code or ACC_ENOMEM with err set. */
int sbx_register(sandbox_t *sb, acc_err *err);
/* Forgets sb: sandbox_cancel no longer finds it. */
void sbx_unregister(sandbox_t *sb);

/* The sandbox a lua_State (any of its coroutines) belongs to, or NULL for a plain state that
 * sbx_plain_state marked (tests of the library pieces). It sits in the state's extra space, which
 * Lua copies from the main thread into every coroutine: one load, on the path of every charge. */
static inline sandbox_t *sbx_from_state(lua_State *L) {
    sandbox_t *sb = *(sandbox_t **)lua_getextraspace(L);
    ACC_INVARIANT(sb == NULL || lua_getallocf(L, NULL) == sbx_lua_alloc, "lua_State %p: no sandbox in its extra space",
                  (void *)L);
    return sb;
}

/* Marks a state made without sandbox_open: sbx_from_state finds no sandbox in it, so the library
 * pieces run unmetered. Call before opening any of them in it. */
static inline void sbx_plain_state(lua_State *L) { *(sandbox_t **)lua_getextraspace(L) = NULL; }

/* The slow half of sbx_charge: a limit may have been reached, or the clock must be read. */
void sbx_charge_check(lua_State *L, sandbox_t *sb);

/* Charges units of C work to the running turn and checks every stop flag; raises on a limit. The
 * common case (no limit near, no interrupt) is a load, an add and three tests. */
static inline void sbx_charge(lua_State *L, uint64_t units) {
    sandbox_t *sb = sbx_from_state(L);
    if (!sb) return;
    sb->instructions += units;
    if (sb->instructions >= sb->charge_check_at || sb->stop != SANDBOX_LIMIT_NONE ||
        atomic_load_explicit(&sb->interrupt, memory_order_relaxed) != 0)
        sbx_charge_check(L, sb);
}

/* The price of bytes, one list for every C path of the sandbox, so a byte costs the same whoever
 * handles it:
 *   SBX_COPY_BYTES  bytes to a unit that libc (or Lua's own linear functions) copies, scans or
 *                   compares, memcpy-fast; plus one unit for the call, so no copy is free;
 *   SBX_SCAN_BYTES  bytes to a unit that are looked at one at a time by a parser or a loop of our
 *                   own (JSON, the Lua compiler's reader, a pattern's character set).
 * Everything else is counted in steps: a matcher step, a comparison, an element moved, a value. */
#define SBX_COPY_BYTES 64
#define SBX_SCAN_BYTES 16

static inline uint64_t sbx_copy_units(size_t n) { return n / SBX_COPY_BYTES + 1; }
static inline uint64_t sbx_scan_units(size_t n) { return n / SBX_SCAN_BYTES + 1; }

/* Work done but not yet charged, flushed every SBX_CHARGE_EVERY units: a C loop can count each
 * step cheaply and still reach sbx_charge often enough to be stopped. The work meter of every
 * bounded function and of the JSON codec. */
typedef struct sbx_meter {
    lua_State *L;
    uint64_t pending; /* units not yet charged */
    size_t scanned;   /* bytes scanned one at a time, short of a whole unit */
} sbx_meter_t;

static inline void sbx_meter_flush(sbx_meter_t *m) {
    if (m->pending > 0) {
        uint64_t units = m->pending;
        m->pending = 0;
        sbx_charge(m->L, units);
    }
}

static inline void sbx_meter_add(sbx_meter_t *m, uint64_t units) {
    m->pending += units;
    if (m->pending >= SBX_CHARGE_EVERY) sbx_meter_flush(m);
}

/* n bytes copied or scanned by libc. */
static inline void sbx_meter_copy(sbx_meter_t *m, size_t n) { sbx_meter_add(m, sbx_copy_units(n)); }

/* n bytes looked at one at a time; the fraction of a unit is carried to the next. */
static inline void sbx_meter_scan(sbx_meter_t *m, size_t n) {
    m->scanned += n;
    if (m->scanned >= SBX_SCAN_BYTES) {
        sbx_meter_add(m, m->scanned / SBX_SCAN_BYTES);
        m->scanned %= SBX_SCAN_BYTES;
    }
}

/* The one charged copy: long copies go in pieces of SBX_COPY_PIECE bytes, each paid before it is
 * copied, so a limit stops a copy of gigabytes within a piece. */
#define SBX_COPY_PIECE ((size_t)SBX_COPY_BYTES * SBX_CHARGE_EVERY)

static inline void sbx_copy(sbx_meter_t *m, char *dst, const char *src, size_t n) {
    while (n > 0) {
        size_t k = n < SBX_COPY_PIECE ? n : SBX_COPY_PIECE;
        sbx_meter_copy(m, k);
        memcpy(dst, src, k);
        dst += k;
        src += k;
        n -= k;
    }
}

/* The same, appending to a luaL_Buffer (which must be at the top of the stack, as ever). */
static inline void sbx_buffer_add(sbx_meter_t *m, luaL_Buffer *b, const char *s, size_t n) {
    if (n == 0) return;
    sbx_copy(m, luaL_prepbuffsize(b, n), s, n);
    luaL_addsize(b, n);
}

/* Bounds on a JSON text the sandbox makes for the host (json.c): encoding stops with an error
 * naming `who` as soon as the text would pass one, before it is any bigger. */
typedef struct sbx_json_bounds {
    const char *who; /* "models.call" */
    size_t max_bytes;
    int max_depth;
    size_t max_values;
} sbx_json_bounds_t;
/* A host's answer to a call, decoded as sbx_json_decode does (json.h) but for two things. Its
 * short strings (at most SBX_ANSWER_STRING_MAX bytes, the first SBX_ANSWER_STRINGS of them, in
 * the order the text has them) are first looked for at their place in the list at stack index
 * strings, a table made with lua_createtable(L, SBX_ANSWER_STRINGS, 0) and kept by the caller
 * from answer to answer (0: none), and take that place when they differ (json.c tells why). And
 * the array metatable is checked when the first array is made, not before: an answer without
 * arrays costs no look-up of it. */
#define SBX_ANSWER_STRINGS 32
#define SBX_ANSWER_STRING_MAX 40 /* LUAI_MAXSHORTLEN: longer strings are not interned anyway */
/* warm (NULL: none) is the sandbox whose warm list gets the lines of the list's strings the answer
 * used (sbx_warm_note). */
void sbx_json_decode_answer(lua_State *L, const char *s, size_t n, int strings, sandbox_t *warm);

/* sbx_json_encode (json.h) within bounds (NULL: json.encode's own, depth only). */
void sbx_json_encode_bounded(lua_State *L, int idx, const sbx_json_bounds_t *bounds);
/* The same for a request to the host, with no string made: the text is written into the full
 * userdata at stack index scratch when it fits (the caller keeps one from call to call), else
 * into a new one. The buffer the text is in is left at the top of the stack, and the text stays
 * valid while it is there; NUL-terminated. *len is its length. */
const char *sbx_json_encode_request(lua_State *L, int idx, const sbx_json_bounds_t *bounds, int scratch, size_t *len);
/* A request whose text needed a bigger buffer than the sandbox's scratch keeps that buffer as its
 * scratch if it is at most this big. */
#define SBX_REQUEST_SCRATCH 256
#define SBX_REQUEST_SCRATCH_MAX 4096

/* Replaces the fields of the `string` table at the top of the stack with bounded versions: find,
 * match, gmatch, gsub (our own matcher, steps charged), rep, format. bounded_string.c. */
void sbx_open_bounded_string(lua_State *L);

/* Replaces sort, concat, move (and whatever else can run long) of the `table` table at the top of
 * the stack with bounded versions. bounded_table.c. */
void sbx_open_bounded_table(lua_State *L);

#endif
