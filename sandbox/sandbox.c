/*
 * sandbox.c: sandbox lifecycle, turns, limits and the stop that cannot be caught.
 *
 * A turn is a coroutine of the sandbox's state. sandbox_run resumes it; it comes back done,
 * failed, waiting for a host call (sbx_host_call yielded it) or paused at the end of its time
 * slice (the hook yielded it). The limits meet in one place, sbx_stop: it records which limit was
 * hit, arms a count hook of 1 in the running coroutine so that every following instruction fails
 * again (pcall, error handlers and __close cannot run on), and raises a preallocated error value,
 * so the memory limit can be reported without allocating. Every function that catches errors
 * (pcall, xpcall, coroutine.resume/wrap/close, load) is ours and re-raises the stop.
 *
 * Instructions are counted by a count hook of SBX_HOOK_QUANTUM when a limit is set; C work is
 * charged through sbx_charge; time is watched by watchdog.c. Hook counters live per coroutine and
 * a coroutine's partial count is lost when it yields or returns, so every resume of an agent
 * coroutine is charged half a quantum, the expected loss (stdlib.c): many short coroutines cannot
 * run uncounted.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "runtime/base/invariant.h"
#include "runtime/base/prefetch.h"
#include "sandbox/internal.h"
#include "sandbox/json.h"


/* Registry keys (their addresses). */
static const char stop_key[1];  /* table: limit -> preallocated error string */
static const char agent_key[1]; /* the agent table the script returned */
static const char turn_key[1];  /* the current turn's thread, or between turns the one kept for the
                                 * next (a fixed slot: clearing it never allocates) */
static const char anchors_key[1]; /* the messages Lua may create where it has no protected call */

/* Lua 5.4.4 makes these strings outside any protected call (lua_resume's resume_error, and
 * luaD_seterrorobj for LUA_ERRERR in lua_resume and lua_resetthread): an allocation failing there
 * would abort(). Short strings are interned, so while these stay referenced Lua finds them and
 * allocates nothing. */
static const char *const unprotected_messages[] = {
    "cannot resume dead coroutine", "cannot resume non-suspended coroutine", "C stack overflow",
    "error in error handling", NULL,
};

sandbox_limits_t sandbox_default_limits(void) {
    sandbox_limits_t l = {
        .memory_bytes = SANDBOX_DEFAULT_MEMORY_BYTES,
        .turn = {
            .instructions = SANDBOX_DEFAULT_INSTRUCTIONS,
            .time_ms = SANDBOX_DEFAULT_TIME_MS,
            .output_bytes = SANDBOX_DEFAULT_OUTPUT_BYTES,
            .slice_ms = SANDBOX_DEFAULT_SLICE_MS,
        },
    };
    return l;
}

const char *sandbox_limit_name(sandbox_limit_t limit) {
    switch (limit) {
    case SANDBOX_LIMIT_MEMORY: return "memory limit";
    case SANDBOX_LIMIT_INSTRUCTIONS: return "instruction limit";
    case SANDBOX_LIMIT_TIME: return "time limit";
    case SANDBOX_LIMIT_OUTPUT: return "output limit";
    case SANDBOX_LIMIT_CANCELLED: return "cancelled";
    case SANDBOX_LIMIT_REFUSED: return "output refused";
    case SANDBOX_LIMIT_NONE: break;
    }
    return "none";
}


/* Records a failure: its ACC_* code and a message (fmt has one %s, for detail). Returns code. */
static int set_error(sandbox_t *sb, int code, const char *fmt, const char *detail) {
    sb->errcode = code;
    snprintf(sb->errmsg, sizeof sb->errmsg, fmt, detail);
    return code;
}

/* The code of a turn that stopped on limit. */
static int limit_code(sandbox_limit_t limit) {
    switch (limit) {
    case SANDBOX_LIMIT_CANCELLED: return ACC_ECANCELLED;
    case SANDBOX_LIMIT_REFUSED: return ACC_EBUSY;
    default: return ACC_ELIMIT;
    }
}

/* Refuses a call made from inside a provider callback (sandbox.h, CALLBACKS). */
static bool refused_in_callback(sandbox_t *sb, const char *what) {
    if (sb->in_callback == 0) return false;
    set_error(sb, ACC_EMISUSE, "%s cannot be called from inside a provider callback", what);
    return true;
}

/* ---- hooks and stops ---------------------------------------------------------------------- */

static void arm(lua_State *L, int count) {
    if (count) lua_sethook(L, sbx_hook, LUA_MASKCOUNT, count);
    else lua_sethook(L, NULL, 0, 0);
}

/* ThreadSanitizer holds a signal back until its thread next enters an intercepted call, which a
 * Lua loop never does, so under it the watchdog's signal would not stop a turn that counts no
 * instructions. There the hook is armed every quantum whatever the limits, and it polls the
 * interrupt bits the watchdog sets: the races under test are the same, only the wake-up differs. */
#if defined(__SANITIZE_THREAD__)
#define HOOK_ALWAYS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HOOK_ALWAYS 1
#endif
#endif
#ifndef HOOK_ALWAYS
#define HOOK_ALWAYS 0
#endif

/* The count of the hook a turn runs with: every quantum when instructions are counted, else none. */
static int normal_count(const sandbox_t *sb) {
    return sb->limits.instructions || HOOK_ALWAYS ? SBX_HOOK_QUANTUM : 0;
}

void sbx_arm_normal_hook(sandbox_t *sb, lua_State *L) {
    int normal = normal_count(sb);
    if (lua_gethook(L) == sbx_hook) {
        int count = lua_gethookcount(L);
        /* Re-arming would reset the count in progress: a loop that closed or resumed its own
         * coroutine every few instructions would never reach the hook. */
        if (count == normal || count == 1) return;
    } else if (normal == 0) {
        return; /* no hook, none wanted */
    }
    arm(L, normal);
}

/* Must the turn stop at its next instruction (for a limit, or to yield to the host)? */
static bool stop_pending(sandbox_t *sb) {
    return sb->stop != SANDBOX_LIMIT_NONE ||
           (atomic_load_explicit(&sb->interrupt, memory_order_relaxed) &
            (SBX_INT_TIME | SBX_INT_CANCEL | SBX_INT_PREEMPT | SBX_INT_BLOCK));
}

void sbx_switch_to(sandbox_t *sb, lua_State *co) {
    sb->current = co;
    sbx_arm_normal_hook(sb, co);
    /* A stop, or an interrupt signalled while we switched, may have armed the hook in the other
     * coroutine only. */
    if (stop_pending(sb)) lua_sethook(co, sbx_hook, LUA_MASKCOUNT, 1);
}

void sbx_check_cstack(lua_State *L) {
    sandbox_t *sb = sbx_from_state(L);
    if (!sb || !sb->cstack_base) return;
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (here < sb->cstack_base && sb->cstack_base - here > SBX_CSTACK_MAX) luaL_error(L, "C stack overflow");
}

void sbx_heap_exhausted(sbx_heap_t *heap) {
    sandbox_t *sb = (sandbox_t *)((char *)heap - offsetof(sandbox_t, heap));
    if (sb->stop == SANDBOX_LIMIT_NONE) sb->stop = SANDBOX_LIMIT_MEMORY;
    lua_State *L = sb->current;
    if (L) lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1); /* as the watchdog's signal does */
}

_Noreturn void sbx_stop(lua_State *L, sandbox_limit_t limit) {
    sandbox_t *sb = sbx_from_state(L);
    if (sb->stop == SANDBOX_LIMIT_NONE) sb->stop = limit;
    arm(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, stop_key);
    lua_rawgeti(L, -1, (lua_Integer)sb->stop);
    lua_error(L);
    abort(); /* lua_error does not return */
}

/* Which limit, if any, the turn has run into by now. */
static sandbox_limit_t limit_reached(sandbox_t *sb) {
    if (sb->stop) return sb->stop;
    uint32_t bits = atomic_load_explicit(&sb->interrupt, memory_order_relaxed);
    if (bits & SBX_INT_CANCEL) return SANDBOX_LIMIT_CANCELLED;
    if (bits & SBX_INT_TIME) return SANDBOX_LIMIT_TIME;
    if (sb->limits.instructions && sb->instructions >= sb->limits.instructions) return SANDBOX_LIMIT_INSTRUCTIONS;
    return SANDBOX_LIMIT_NONE;
}

void sbx_rethrow_if_stopped(lua_State *L, int status) {
    sandbox_t *sb = sbx_from_state(L);
    if (!sb) return;
    if (status == LUA_ERRMEM && sb->stop == SANDBOX_LIMIT_NONE) sb->stop = SANDBOX_LIMIT_MEMORY;
    sandbox_limit_t limit = limit_reached(sb);
    if (limit != SANDBOX_LIMIT_NONE) sbx_stop(L, limit);
}

void sbx_charge_check(lua_State *L, sandbox_t *sb) {
    sandbox_limit_t limit = limit_reached(sb);
    /* While the turn executes, the watchdog sets SBX_INT_TIME at the deadline; outside it
     * (compiling in sandbox_start_load) the clock is read here. */
    if (limit == SANDBOX_LIMIT_NONE && sb->turn_deadline_ns && !sb->watched && sbx_now_ns() >= sb->turn_deadline_ns)
        limit = SANDBOX_LIMIT_TIME;
    if (limit != SANDBOX_LIMIT_NONE) sbx_stop(L, limit);
}

void sbx_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    sandbox_t *sb = sbx_from_state(L);
    sbx_check_cstack(L);
    int count = lua_gethookcount(L), normal = normal_count(sb);
    if (count == SBX_HOOK_QUANTUM) sb->instructions += SBX_HOOK_QUANTUM;
    if (count != normal) arm(L, normal); /* a one-shot from the signal handler or a stop */

    sandbox_limit_t limit = limit_reached(sb);
    if (limit == SANDBOX_LIMIT_NONE && sb->turn_deadline_ns && count == SBX_HOOK_QUANTUM && !sb->watched &&
        sbx_now_ns() >= sb->turn_deadline_ns)
        limit = SANDBOX_LIMIT_TIME; /* no watchdog for this turn: check the clock here */
    if (limit != SANDBOX_LIMIT_NONE) sbx_stop(L, limit);

    /* The end of a time slice, or output backpressure: yield to the host if the turn can. */
    uint32_t bits = atomic_load_explicit(&sb->interrupt, memory_order_relaxed);
    if (bits & (SBX_INT_PREEMPT | SBX_INT_BLOCK)) {
        if (lua_isyieldable(L) && sb->chain_yieldable) {
            atomic_fetch_and(&sb->interrupt, ~(uint32_t)(SBX_INT_PREEMPT | SBX_INT_BLOCK));
            sb->yield = (bits & SBX_INT_BLOCK) ? SBX_YIELD_BLOCK : SBX_YIELD_SLICE;
            lua_yield(L, 0);
        } else {
            arm(L, SBX_HOOK_QUANTUM); /* inside a C call: try again a little later */
        }
    }
}

/* ---- output -------------------------------------------------------------------------------- */

/* The host's verdict PAUSE cannot stop the turn here, inside a C function: it sets SBX_INT_BLOCK
 * and arms the hook, which yields at the first instruction where the turn can reach the host. */
void sbx_output(lua_State *L, sandbox_output_kind_t kind, const char *s, size_t len) {
    sandbox_t *sb = sbx_from_state(L);
    if (sb->limits.output_bytes && len > sb->limits.output_bytes - sb->output) sbx_stop(L, SANDBOX_LIMIT_OUTPUT);
    sb->output += len;
    sbx_charge(L, sbx_copy_units(len));
    if (!sb->provider.output) return;
    sb->in_callback++;
    sandbox_output_verdict_t verdict = sb->provider.output(sb->provider.ud, sb, kind, s, len);
    sb->in_callback--;
    if (verdict == SANDBOX_OUTPUT_REFUSE) sbx_stop(L, SANDBOX_LIMIT_REFUSED);
    if (verdict == SANDBOX_OUTPUT_PAUSE) {
        atomic_fetch_or(&sb->interrupt, SBX_INT_BLOCK);
        arm(L, 1);
    }
}

/* ---- host calls ---------------------------------------------------------------------------- */

/* Runs when the host resumes the turn after sandbox_call_done: the answer is in sb->call_*,
 * read here, inside the coroutine, so that building the Lua value is under protection. */
static int host_call_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status;
    sandbox_t *sb = sbx_from_state(L);
    const char *what = (const char *)ctx;
    /* Answered, the call's fields no longer change (sandbox_call_done refuses a second answer);
     * the lock orders this read after the answering thread's writes. */
    pthread_mutex_lock(&sb->call_lock);
    bool answered = sb->call_answered, nomem = sb->call_nomem, ok = sb->call_ok;
    pthread_mutex_unlock(&sb->call_lock);
    if (nomem) return luaL_error(L, "%s: out of host memory for the answer", what);
    if (!answered || !sb->call_text) return luaL_error(L, "%s: the host gave no answer", what);
    if (!ok) {
        lua_pushlstring(L, sb->call_text, sb->call_len);
        return luaL_error(L, "%s: %s", what, lua_tostring(L, -1));
    }
    if (sb->answer_strings == 0) { /* made at the first answer: an idle sandbox holds none */
        lua_createtable(L, SBX_ANSWER_STRINGS, 0);
        sb->answer_strings = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->answer_strings);
    sandbox_t *warm = sb->warm_base ? sb : NULL; /* noting its lines (sandbox_prefetch) */
    if (warm) { /* the tables the next answer starts from (their headers; their parts are Lua's own) */
        sbx_warm_note(sb, lua_topointer(L, LUA_REGISTRYINDEX), 1);
        sbx_warm_note(sb, lua_topointer(L, -1), 1);
    }
    sbx_json_decode_answer(L, sb->call_text, sb->call_len, -1, warm);
    lua_remove(L, -2);
    return 1;
}

int sbx_host_call(lua_State *L, sandbox_call_kind_t kind, const char *name, size_t name_len, int req_idx) {
    sandbox_t *sb = sbx_from_state(L);
    const char *what = kind == SANDBOX_CALL_MODEL ? "models.call" : "datasets.query";
    if (!lua_isyieldable(L) || !sb->chain_yieldable || sb->turn_thread == NULL)
        return luaL_error(L, "%s cannot wait here (inside a metamethod, a sort comparator, a gsub "
                             "callback or another C function)", what);
    if (!sb->provider.start_call) return luaL_error(L, "%s: no provider", what);
    req_idx = lua_absindex(L, req_idx);
    if (sb->request_buf == 0) { /* made at the first call: an idle sandbox holds none */
        lua_newuserdatauv(L, SBX_REQUEST_SCRATCH, 0);
        sb->request_buf = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->request_buf);
    sbx_json_bounds_t bounds = {what, SANDBOX_CALL_MAX_BYTES, SANDBOX_CALL_MAX_DEPTH, SANDBOX_CALL_MAX_VALUES};
    size_t json_len;
    const char *json = sbx_json_encode_request(L, req_idx, &bounds, -1, &json_len);
    if (!lua_rawequal(L, -1, -2) && lua_rawlen(L, -1) <= SBX_REQUEST_SCRATCH_MAX) {
        lua_pushvalue(L, -1); /* a bigger scratch for the next requests; its slot exists: no allocation */
        lua_rawseti(L, LUA_REGISTRYINDEX, sb->request_buf);
    }
    lua_remove(L, -2); /* the buffer the text is in stays */
    sbx_warm_note(sb, json, json_len + 1); /* the next request is written there (mostly) */
    /* The provider parses this text on the agent's behalf: paid for before it does, about as much
     * again as encoding it. */
    sbx_charge(L, sbx_scan_units(json_len));
    pthread_mutex_lock(&sb->call_lock);
    sandbox_call_t call = {++sb->last_call_id, kind, name, name_len, json, json_len};
    free(sb->call_text);
    sb->call_text = NULL;
    sb->call_pending = true;
    sb->call_answered = sb->call_nomem = false;
    pthread_mutex_unlock(&sb->call_lock);
    sb->host_calls++;
    sb->in_callback++;
    int taken = sb->provider.start_call(sb->provider.ud, sb, &call) == 0;
    sb->in_callback--;
    if (!taken) {
        pthread_mutex_lock(&sb->call_lock);
        sb->call_pending = false;
        bool has_message = sb->call_answered && !sb->call_ok && sb->call_text;
        pthread_mutex_unlock(&sb->call_lock);
        if (has_message) {
            lua_pushlstring(L, sb->call_text, sb->call_len);
            return luaL_error(L, "%s: %s", what, lua_tostring(L, -1));
        }
        return luaL_error(L, "%s: the call was refused", what);
    }
    lua_pop(L, 1);
    sb->yield = SBX_YIELD_CALL;
    return lua_yieldk(L, 0, (lua_KContext)what, host_call_k);
}

/* Any thread: everything it touches is under call_lock, and it sets no message on the handle. */
int sandbox_call_done(sandbox_t *sb, uint64_t call_id, int ok, const char *text, size_t len) {
    int rc = ACC_OK;
    pthread_mutex_lock(&sb->call_lock);
    if (!sb->call_pending || sb->call_answered || call_id != sb->last_call_id) {
        rc = ACC_EMISUSE;
    } else {
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, text, len);
            copy[len] = 0;
            free(sb->call_text);
            sb->call_text = copy;
            sb->call_len = len;
            sb->call_ok = ok != 0;
        } else {
            sb->call_nomem = true; /* the agent gets an error at once instead of a wait to the deadline */
            rc = ACC_ENOMEM;
        }
        sb->call_answered = true;
    }
    pthread_mutex_unlock(&sb->call_lock);
    return rc;
}

/* ---- compiling ---------------------------------------------------------------------------- */

/* Lua's code generator is quadratic on long `or` chains and elseif ladders, inside one C call
 * where no hook runs (stock lua5.4 compiles an 80,000-term chain in 9 s). So chunks reach the
 * parser in pieces of at most PIECE bytes, and between pieces the reader pays for them and checks
 * the limits, the clock included: parsing stops within one piece's work of a deadline.
 *
 * That bounds the time only if no few bytes can cost seconds, and gotos could: every `end` walks
 * all pending gotos, each through every compile-time constant in scope (lparser.c movegotosout and
 * reglevel), and a label removes each goto it resolves by shifting the rest (solvegoto). 30,000
 * gotos inside 190 blocks under 190 constants made the 760 bytes of `end`s cost 13 s. So a chunk
 * may hold at most SBX_MAX_GOTOS gotos, counted as the reader hands the text over: the word
 * `goto` anywhere (in strings and comments too: a conservative count). The worst case measured
 * with that bound is in BENCHMARKS.md. */
#define PIECE 64
#define SBX_MAX_GOTOS 256

typedef struct chunk_reader {
    const char *s;
    size_t left;
    int fn;   /* stack index of a reader function, or 0 for a string chunk */
    int slot; /* stack index keeping the reader function's current string alive */
    /* The goto count, carried across pieces: how far the identifier being read matches "goto"
     * (-1: it does not, or no identifier). */
    int gotos, match;
} chunk_reader_t;

static bool ident_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

/* Counts the words "goto" in s[0..n) (the end of the chunk when s is NULL). */
static void count_gotos(chunk_reader_t *r, const char *s, size_t n) {
    if (!s) {
        if (r->match == 4) r->gotos++;
        r->match = -1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (ident_char(c)) {
            if (r->match == -2) r->match = c == 'g' ? 1 : -1; /* an identifier starts */
            else if (r->match >= 0 && r->match < 4 && c == (unsigned char)"goto"[r->match]) r->match++;
            else r->match = -1;
        } else {
            if (r->match == 4) r->gotos++;
            r->match = -2; /* between identifiers */
        }
    }
}

static const char *read_piece(lua_State *L, void *ud, size_t *size) {
    chunk_reader_t *r = ud;
    if (r->left == 0 && r->fn) {
        luaL_checkstack(L, 2, "too many nested functions");
        lua_pushvalue(L, r->fn);
        lua_call(L, 0, 1);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            count_gotos(r, NULL, 0);
            *size = 0;
            return NULL;
        }
        if (!lua_isstring(L, -1)) luaL_error(L, "reader function must return a string");
        lua_replace(L, r->slot);
        r->s = lua_tolstring(L, r->slot, &r->left);
    }
    if (r->left == 0) {
        count_gotos(r, NULL, 0);
        if (r->gotos > SBX_MAX_GOTOS) luaL_error(L, "too many gotos in one chunk (at most %d)", SBX_MAX_GOTOS);
        *size = 0;
        return NULL;
    }
    size_t n = r->left < PIECE ? r->left : PIECE;
    sbx_charge(L, sbx_scan_units(n));
    count_gotos(r, r->s, n);
    if (r->gotos > SBX_MAX_GOTOS) luaL_error(L, "too many gotos in one chunk (at most %d)", SBX_MAX_GOTOS);
    const char *piece = r->s;
    r->s += n;
    r->left -= n;
    *size = n;
    return piece;
}

int sbx_load_chunk(lua_State *L, const char *s, size_t len, int fn, const char *chunkname) {
    chunk_reader_t r = {s, len, fn, 0, 0, -2};
    if (fn) {
        lua_pushnil(L);
        r.slot = lua_gettop(L);
    }
    int status = lua_load(L, read_piece, &r, chunkname, "t");
    if (fn) lua_remove(L, r.slot);
    return status;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

/* Builds the state's contents; run under lua_pcall, so running out of memory is an error here. */
static int open_in_protected_mode(lua_State *L) {
    lua_createtable(L, SANDBOX_LIMIT_REFUSED, 0); /* the stop errors, made before they are needed */
    for (int limit = SANDBOX_LIMIT_MEMORY; limit <= SANDBOX_LIMIT_REFUSED; limit++) {
        if (limit == SANDBOX_LIMIT_CANCELLED) lua_pushliteral(L, "turn cancelled by the host");
        else if (limit == SANDBOX_LIMIT_REFUSED) lua_pushliteral(L, "output refused by the host");
        else lua_pushfstring(L, "%s exceeded", sandbox_limit_name((sandbox_limit_t)limit));
        lua_rawseti(L, -2, limit);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, stop_key);
    lua_newtable(L);
    for (const char *const *m = unprotected_messages; *m; m++) {
        lua_pushstring(L, *m);
        lua_rawseti(L, -2, m - unprotected_messages + 1);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, anchors_key);
    lua_pushboolean(L, 0); /* the turn slot exists from the start */
    lua_rawsetp(L, LUA_REGISTRYINDEX, turn_key);
    sbx_open_stdlib(L);
    sbx_open_api(L);
    return 0;
}

/* A Lua state with the library and the API on heap, or NULL when memory ran out (the cap, or
 * the host's). */
static lua_State *new_state(sbx_heap_t *heap, sandbox_t *sb) {
    lua_State *L = lua_newstate(sbx_lua_alloc, heap);
    if (!L) return NULL;
    *(sandbox_t **)lua_getextraspace(L) = sb; /* sbx_from_state; coroutines copy it */
    lua_gc(L, LUA_GCINC, 0, 0, 0);
    lua_pushcfunction(L, open_in_protected_mode);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK || heap->over) {
        lua_close(L);
        return NULL;
    }
    return L;
}

/* Why new_state failed under a cap: if an uncapped state can be built, the cap was too small. */
static int open_failure(size_t cap, acc_err *err) {
    if (cap) {
        sbx_heap_t probe = {0};
        lua_State *L = new_state(&probe, NULL);
        if (L) {
            size_t need = probe.used;
            lua_close(L);
            sbx_heap_close(&probe);
            return acc_fail(err, ACC_ELIMIT, "sandbox: a memory cap of %zu bytes is below the %zu bytes an idle sandbox needs",
                            cap, need);
        }
    }
    return acc_fail(err, ACC_ENOMEM, "sandbox: out of host memory");
}

sandbox_t *sandbox_open(const sandbox_limits_t *limits, const sandbox_provider_t *provider, acc_err *err) {
    sandbox_t *sb = calloc(1, sizeof *sb);
    if (!sb) {
        acc_fail(err, ACC_ENOMEM, "sandbox: out of host memory");
        return NULL;
    }
    sandbox_limits_t l = limits ? *limits : sandbox_default_limits();
    if (l.turn.time_ms == 0) { /* no turn without a wall-time bound (README: why) */
        free(sb);
        acc_fail(err, ACC_EINVAL, "sandbox: a turn needs a time limit (time_ms 0 is refused)");
        return NULL;
    }
    sb->default_turn = sb->limits = l.turn;
    if (provider) sb->provider = *provider;
    sb->heap.cap = l.memory_bytes;
    if (pthread_mutex_init(&sb->call_lock, NULL) != 0) {
        free(sb);
        acc_fail(err, ACC_ENOMEM, "sandbox: cannot make a mutex");
        return NULL;
    }
    if (sbx_register(sb, err) != ACC_OK) {
        pthread_mutex_destroy(&sb->call_lock);
        free(sb);
        return NULL;
    }
    if (sbx_heap_open(&sb->heap) != 0) {
        sbx_unregister(sb);
        pthread_mutex_destroy(&sb->call_lock);
        free(sb);
        acc_fail(err, ACC_ENOMEM, "sandbox: no address space left to reserve for its heap");
        return NULL;
    }
    sb->L = new_state(&sb->heap, sb);
    if (!sb->L) {
        sbx_heap_close(&sb->heap);
        sbx_unregister(sb);
        pthread_mutex_destroy(&sb->call_lock);
        free(sb);
        open_failure(l.memory_bytes, err);
        return NULL;
    }
    return sb;
}

int sandbox_close(sandbox_t *sb) {
    if (!sb) return ACC_OK;
    if (refused_in_callback(sb, "sandbox_close")) return ACC_EMISUSE;
    sbx_unregister(sb); /* from here no sandbox_cancel can reach it */
    lua_close(sb->L);
    ACC_INVARIANT(sb->heap.used == 0, "%zu bytes still counted after lua_close", sb->heap.used);
    sbx_heap_close(&sb->heap);
    pthread_mutex_destroy(&sb->call_lock);
    free(sb->call_text);
    free(sb->reply);
    free(sb->input);
    free(sb);
    return ACC_OK;
}

uint64_t sandbox_id(const sandbox_t *sb) { return sb->id; }

/* ---- turns --------------------------------------------------------------------------------- */

/* What the turn being prepared needs (set by sandbox_start_*, read by prepare_turn). */
typedef struct turn_spec {
    const char *chunkname, *src;
    size_t len;
} turn_spec_t;

static int load_k(lua_State *T, int status, lua_KContext ctx) {
    (void)status, (void)ctx;
    if (lua_type(T, -1) == LUA_TTABLE) {
        lua_pushliteral(T, "on_message");
        lua_rawget(T, -2);
        int ok = lua_type(T, -1) == LUA_TFUNCTION;
        lua_pop(T, 1);
        if (ok) {
            lua_rawsetp(T, LUA_REGISTRYINDEX, agent_key);
            return 0;
        }
    }
    return luaL_error(T, "script must return a table with an on_message function");
}

static int message_k(lua_State *T, int status, lua_KContext ctx) {
    (void)status, (void)ctx;
    sandbox_t *sb = sbx_from_state(T);
    int t = lua_type(T, -1);
    if (t == LUA_TNIL) return 0; /* everything was streamed with session.send */
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_error(T, "on_message must return a string or nil (it returned a %s)", lua_typename(T, t));
    size_t len;
    const char *s = lua_tolstring(T, -1, &len);
    if (sb->limits.output_bytes && len > sb->limits.output_bytes - sb->output) sbx_stop(T, SANDBOX_LIMIT_OUTPUT);
    sb->output += len;
    char *copy = malloc(len + 1);
    if (!copy) {
        sb->host_nomem = true;
        return luaL_error(T, "out of host memory for the reply");
    }
    memcpy(copy, s, len);
    copy[len] = 0;
    free(sb->reply);
    sb->reply = copy;
    sb->reply_len = len;
    return 0;
}

/* The body of every turn's coroutine. For a load turn the compiled chunk is below it. */
static int turn_body(lua_State *T) {
    sandbox_t *sb = sbx_from_state(T);
    if (sb->turn == SBX_TURN_LOAD) {
        lua_callk(T, 0, 1, 0, load_k);
        return load_k(T, LUA_OK, 0);
    }
    if (lua_rawgetp(T, LUA_REGISTRYINDEX, agent_key) != LUA_TTABLE) return luaL_error(T, "no agent is loaded");
    lua_pushliteral(T, "on_message");
    lua_rawget(T, -2);
    sbx_push_session(T);
    lua_pushlstring(T, sb->input, sb->input_len);
    lua_callk(T, 2, 1, 0, message_k);
    return message_k(T, LUA_OK, 0);
}

/* A message turn runs in the thread of the last turn when that one returned normally (nothing left
 * on it: no frames, no pending __close, no upvalues open) and the agent never held it
 * (coroutine.running): a new thread a turn, its stack's allocation and the page faults after each
 * turn's purge, were a tenth of an echo agent's turn in the server. Anything else gets a new one. */
static lua_State *turn_thread_for(lua_State *L, sandbox_t *sb, bool load) {
    if (!load && sb->spare_thread && lua_rawgetp(L, LUA_REGISTRYINDEX, turn_key) == LUA_TTHREAD) {
        lua_State *T = lua_tothread(L, -1);
        if (lua_status(T) == LUA_OK && lua_gettop(T) == 0) {
            lua_sethook(T, lua_gethook(L), lua_gethookmask(L), lua_gethookcount(L)); /* as lua_newthread */
            return T;
        }
    }
    lua_settop(L, 2);
    return lua_newthread(L);
}

static int prepare_turn(lua_State *L) {
    sandbox_t *sb = lua_touserdata(L, 1);
    const turn_spec_t *spec = lua_touserdata(L, 2);
    lua_State *T = turn_thread_for(L, sb, spec != NULL);
    sb->turn_thread_seen = false;
    lua_pushcfunction(T, turn_body);
    if (spec) {
        int status = sbx_load_chunk(T, spec->src, spec->len, 0, spec->chunkname);
        if (status != LUA_OK) {
            if (status == LUA_ERRMEM) sb->stop = SANDBOX_LIMIT_MEMORY;
            lua_xmove(T, L, 1);
            return lua_error(L);
        }
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, turn_key);
    sb->turn_thread = T;
    return 0;
}

/* Records why a turn (or its compilation) failed with status; returns the ACC_* code. */
static int describe_error(sandbox_t *sb, lua_State *from, int status) {
    if (status == LUA_ERRMEM && !sb->stop) sb->stop = SANDBOX_LIMIT_MEMORY;
    if (sb->stop) return set_error(sb, limit_code(sb->stop), "%s", sandbox_limit_name(sb->stop));
    int code = sb->host_nomem ? ACC_ENOMEM : ACC_ESCRIPT;
    /* Never call __tostring: the error object may be the agent's, and this runs unhooked. */
    int t = lua_type(from, -1);
    if (t == LUA_TSTRING) return set_error(sb, code, "%s", lua_tostring(from, -1));
    if (t == LUA_TNUMBER) {
        char n[64];
        snprintf(n, sizeof n, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(from, -1));
        return set_error(sb, code, "%s", n);
    }
    return set_error(sb, code, "(error object is a %s value)", lua_typename(from, t));
}

static void reset_turn_state(sandbox_t *sb, enum sbx_turn kind) {
    sb->turn = kind;
    sb->stop = SANDBOX_LIMIT_NONE;
    atomic_store(&sb->interrupt, 0);
    sb->instructions = 0;
    sb->output = 0;
    sb->heap.over = sb->heap.refused_last = false;
    sb->yield = SBX_YIELD_NONE;
    pthread_mutex_lock(&sb->call_lock);
    sb->call_pending = sb->call_answered = false;
    pthread_mutex_unlock(&sb->call_lock);
    sb->errcode = ACC_OK;
    sb->host_nomem = false;
    sb->errmsg[0] = 0;
    free(sb->reply);
    sb->reply = NULL;
    sb->reply_len = 0;
    sb->turn_start_ns = sbx_now_ns();
    sb->turn_end_ns = 0;
    sb->turn_deadline_ns = sb->limits.time_ms ? sb->turn_start_ns + sb->limits.time_ms * 1000000u : 0;
}

static int start_turn(sandbox_t *sb, enum sbx_turn kind, const turn_spec_t *spec,
                      const sandbox_turn_limits_t *limits) {
    sb->limits = limits ? *limits : sb->default_turn;
    reset_turn_state(sb, kind);
    lua_settop(sb->L, 0);
    lua_pushcfunction(sb->L, prepare_turn);
    lua_pushlightuserdata(sb->L, sb);
    lua_pushlightuserdata(sb->L, (void *)spec);
    int status = lua_pcall(sb->L, 2, 0, 0);
    if (status != LUA_OK) {
        int code = describe_error(sb, sb->L, status);
        lua_settop(sb->L, 0);
        sb->turn = SBX_TURN_NONE;
        sb->turn_end_ns = sbx_now_ns();
        return code;
    }
    sbx_arm_normal_hook(sb, sb->turn_thread);
    return ACC_OK;
}

/* ACC_OK when a turn with these limits (NULL: the defaults) may start now; else the code, with the
 * message set. */
static int may_start(sandbox_t *sb, const char *what, const sandbox_turn_limits_t *limits) {
    if (refused_in_callback(sb, what)) return ACC_EMISUSE;
    if (sb->turn_thread) return set_error(sb, ACC_EMISUSE, "%s", "a turn is already under way");
    if (limits && limits->time_ms == 0)
        return set_error(sb, ACC_EINVAL, "%s", "a turn needs a time limit (time_ms 0 is refused)");
    return ACC_OK;
}

int sandbox_start_load(sandbox_t *sb, const char *chunkname, const char *src, size_t len,
                       const sandbox_turn_limits_t *turn) {
    int rc = may_start(sb, "sandbox_start_load", turn);
    if (rc != ACC_OK) return rc;
    if (sb->loaded) return set_error(sb, ACC_EMISUSE, "%s", "a script is already loaded in this sandbox");
    turn_spec_t spec = {chunkname ? chunkname : "=agent", src, len};
    return start_turn(sb, SBX_TURN_LOAD, &spec, turn);
}

int sandbox_start_message(sandbox_t *sb, const char *text, size_t len, const sandbox_turn_limits_t *turn) {
    int rc = may_start(sb, "sandbox_start_message", turn);
    if (rc != ACC_OK) return rc;
    if (!sb->loaded) return set_error(sb, ACC_EMISUSE, "%s", "no script is loaded in this sandbox");
    char *copy = malloc(len + 1);
    if (!copy) return set_error(sb, ACC_ENOMEM, "%s", "out of host memory for the message");
    memcpy(copy, text, len);
    copy[len] = 0;
    free(sb->input);
    sb->input = copy;
    sb->input_len = len;
    return start_turn(sb, SBX_TURN_MESSAGE, NULL, turn);
}

static sandbox_status_t end_turn(sandbox_t *sb, sandbox_status_t status) {
    pthread_mutex_lock(&sb->call_lock);
    sb->call_pending = false; /* an answer arriving after the turn is dropped */
    pthread_mutex_unlock(&sb->call_lock);
    /* Kept in its slot for the next turn when a message turn returned normally (sandbox_run
     * cleared its stack) and the agent never had it; dropped otherwise. Not after the load: a
     * sandbox that never gets a message holds no thread. An existing key: no allocation. */
    lua_State *T = sb->turn_thread;
    sb->spare_thread = status == SANDBOX_DONE && sb->turn == SBX_TURN_MESSAGE && !sb->turn_thread_seen &&
                       lua_status(T) == LUA_OK && lua_gettop(T) == 0 && !lua_getstack(T, 0, &(lua_Debug){0});
    lua_settop(sb->L, 0);
    if (!sb->spare_thread) {
        lua_pushboolean(sb->L, 0);
        lua_rawsetp(sb->L, LUA_REGISTRYINDEX, turn_key);
    }
    sb->turn_thread = NULL;
    sb->current = NULL;
    sb->turn_end_ns = sbx_now_ns();
    if (status == SANDBOX_DONE && sb->turn == SBX_TURN_LOAD) sb->loaded = true;
    sb->turn = SBX_TURN_NONE;
    free(sb->input);
    sb->input = NULL;
    sbx_heap_trim(&sb->heap); /* an idle sandbox holds no free pages */
    return status;
}

static sandbox_status_t fail_turn(sandbox_t *sb, sandbox_limit_t limit) {
    if (!sb->stop) sb->stop = limit;
    set_error(sb, limit_code(sb->stop), "%s", sandbox_limit_name(sb->stop));
    return end_turn(sb, SANDBOX_FAILED);
}

/* Resumes the turn's thread; run under lua_pcall on the main thread (sandbox_run). */
static int resume_turn(lua_State *L) {
    sandbox_t *sb = lua_touserdata(L, 1);
    lua_State *T = sb->turn_thread;
    /* The first resume of a load turn passes the compiled chunk to turn_body. */
    int nargs = sb->turn == SBX_TURN_LOAD && lua_status(T) == LUA_OK ? 1 : 0;
    sb->resume_nres = 0;
    sb->resume_status = lua_resume(T, NULL, nargs, &sb->resume_nres);
    return 0;
}

static bool call_answered(sandbox_t *sb) {
    pthread_mutex_lock(&sb->call_lock);
    bool answered = sb->call_answered;
    pthread_mutex_unlock(&sb->call_lock);
    return answered;
}

sandbox_status_t sandbox_run(sandbox_t *sb) {
    if (refused_in_callback(sb, "sandbox_run")) return SANDBOX_FAILED;
    /* Another sandbox's callback on this thread: its turn's watch (the thread's running sandbox,
     * which the watchdog's signal stops) would be lost to this one's. */
    if (sbx_watch_running_here()) {
        set_error(sb, ACC_EMISUSE, "%s", "sandbox_run: another sandbox's turn is running on this thread (from "
                                         "inside its provider callback)");
        return SANDBOX_FAILED;
    }
    lua_State *T = sb->turn_thread;
    if (!T) {
        set_error(sb, ACC_EMISUSE, "%s", "no turn is under way");
        return SANDBOX_FAILED;
    }
    for (;;) {
        if (sb->yield == SBX_YIELD_CALL && !call_answered(sb)) {
            uint32_t bits = atomic_load(&sb->interrupt);
            if (bits & SBX_INT_CANCEL) return fail_turn(sb, SANDBOX_LIMIT_CANCELLED);
            if (sb->turn_deadline_ns && sbx_now_ns() >= sb->turn_deadline_ns) return fail_turn(sb, SANDBOX_LIMIT_TIME);
            return SANDBOX_WAITING;
        }
        sandbox_limit_t limit = limit_reached(sb);
        if (limit == SANDBOX_LIMIT_NONE && sb->turn_deadline_ns && sbx_now_ns() >= sb->turn_deadline_ns)
            limit = SANDBOX_LIMIT_TIME;
        if (limit != SANDBOX_LIMIT_NONE) return fail_turn(sb, limit);

        pthread_mutex_lock(&sb->call_lock);
        sb->call_pending = false; /* the answer, if any, is taken now */
        pthread_mutex_unlock(&sb->call_lock);
        sb->yield = SBX_YIELD_NONE;
        sb->warm.n = 0; /* noted again by this run */
        sb->chain_yieldable = true;
        sb->current = T;
        sbx_watch_begin(sb);
        /* A cancel that came after the check above but before the turn was watched sent no
         * signal: arm the hook as the signal's handler would have. */
        if (atomic_load(&sb->interrupt) & SBX_INT_CANCEL) arm(T, 1);
        sb->charge_check_at = sb->limits.instructions ? sb->limits.instructions : UINT64_MAX;
        sbx_switch_to(sb, T);
        sb->cstack_base = (uintptr_t)__builtin_frame_address(0);
        /* The resume runs inside a protected call of the main thread: an error Lua raises in a
         * coroutine with no handler of its own (luaD_throw) lands there instead of in abort(). */
        lua_settop(sb->L, 0);
        lua_pushcfunction(sb->L, resume_turn);
        lua_pushlightuserdata(sb->L, sb);
        int unprotected = lua_pcall(sb->L, 1, 0, 0);
        sb->cstack_base = 0;
        sb->charge_check_at = 0; /* unwatched from here: every charge reads the clock */
        sbx_watch_end(sb);
        sb->current = NULL;
        if (unprotected != LUA_OK) {
            /* T was left mid-call by a longjmp past it: it is never resumed again. */
            describe_error(sb, sb->L, unprotected);
            return end_turn(sb, SANDBOX_FAILED);
        }
        int status = sb->resume_status, nres = sb->resume_nres;

        if (status == LUA_YIELD) {
            lua_pop(T, nres);
            if (sb->yield == SBX_YIELD_CALL) continue; /* answered already? loop; else WAITING */
            if (sb->yield == SBX_YIELD_SLICE || sb->yield == SBX_YIELD_BLOCK) {
                sb->pauses++;
                return sb->yield == SBX_YIELD_SLICE ? SANDBOX_PAUSED : SANDBOX_BLOCKED;
            }
            set_error(sb, ACC_ESCRIPT, "%s", "the agent yielded outside a coroutine");
            return end_turn(sb, SANDBOX_FAILED);
        }
        if (status == LUA_OK) {
            lua_settop(T, 0);
            if (sb->stop) return fail_turn(sb, sb->stop); /* a limit is reported whatever was returned */
            return end_turn(sb, SANDBOX_DONE);
        }
        describe_error(sb, T, status);
        return end_turn(sb, SANDBOX_FAILED);
    }
}

sandbox_status_t sandbox_run_to_end(sandbox_t *sb) {
    if (refused_in_callback(sb, "sandbox_run_to_end")) return SANDBOX_FAILED;
    for (;;) {
        sandbox_status_t st = sandbox_run(sb);
        if (st == SANDBOX_PAUSED || st == SANDBOX_BLOCKED) continue; /* no queue to wait for here */
        if (st == SANDBOX_WAITING) {
            sb->stop = SANDBOX_LIMIT_NONE;
            set_error(sb, ACC_EMISUSE, "%s", "a host call was left unanswered");
            end_turn(sb, SANDBOX_FAILED);
            return SANDBOX_FAILED;
        }
        return st;
    }
}

uint64_t sandbox_turn_deadline_ns(const sandbox_t *sb) { return sb->turn_thread ? sb->turn_deadline_ns : 0; }

const char *sandbox_reply(sandbox_t *sb, size_t *len) {
    if (len) *len = sb->reply_len;
    return sb->reply;
}

int sandbox_errcode(sandbox_t *sb) { return sb->errcode; }
const char *sandbox_errmsg(sandbox_t *sb) { return sb->errmsg; }
sandbox_limit_t sandbox_limit_hit(sandbox_t *sb) { return sb->stop; }
void sandbox_set_userdata(sandbox_t *sb, void *ud) { sb->userdata = ud; }
void *sandbox_userdata(sandbox_t *sb) { return sb->userdata; }

void sandbox_stats(sandbox_t *sb, sandbox_stats_t *out) {
    out->instructions = sb->instructions;
    uint64_t end = sb->turn_end_ns ? sb->turn_end_ns : sbx_now_ns();
    out->turn_ns = sb->turn_start_ns ? end - sb->turn_start_ns : 0;
    out->output_bytes = sb->output;
    out->memory_bytes = sb->heap.used;
    out->memory_peak = sb->heap.peak;
    out->host_calls = sb->host_calls;
    out->pauses = sb->pauses;
}

/* ---- prefetching --------------------------------------------------------------------------- */

void sandbox_prefetch_handle(const sandbox_t *sb) { acc_prefetch_lines(sb, offsetof(sandbox_t, errmsg)); }

/* A coroutine's lua_State (with LUA_EXTRASPACE bytes before it, where the sandbox's pointer is):
 * its status, its stack's and its call's pointers, its hook. The main thread's, and the global
 * state Lua allocates with it, are left out: loading them too measured slower (BENCHMARKS.md), the
 * prefetches queueing behind each other for the cache's few miss buffers. */
#define THREAD_STATE_BYTES 256

void sandbox_prefetch(sandbox_t *sb) {
    /* A sandbox notes its lines once a host prefetches it: one whose host never does (one session
     * on its worker) spends nothing on them. */
    if (!sb->warm_base) sb->warm_base = sbx_heap_base(&sb->heap);
    const sbx_warm_t *w = &sb->warm;
    for (int i = 0; i < w->n; i++) __builtin_prefetch((const char *)sb->warm_base + (size_t)w->line[i] * 64, 1, 3);
    sbx_heap_prefetch(&sb->heap);
    if (sb->turn_thread) acc_prefetch_lines((const char *)sb->turn_thread - LUA_EXTRASPACE, THREAD_STATE_BYTES);
}
