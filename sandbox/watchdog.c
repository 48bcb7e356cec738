/*
 * watchdog.c: stops Lua code that runs past a deadline, at no cost while it runs; and the
 * process-wide registry of open sandboxes that sandbox_cancel looks ids up in.
 *
 * A count hook would check the clock, but any count hook sends every VM instruction through
 * luaG_traceexec (measured: tight loops 2.2x slower). Instead one thread sleeps until the earliest
 * deadline of the turns executing now (time limit or end of time slice), sets the turn's interrupt
 * bits and sends a signal to the thread running it. The handler runs on that thread, between two
 * of its instructions, and arms a count hook of 1 in the coroutine executing now, which is the
 * way lua.c stops a script on Ctrl-C (lua_sethook is safe to call from a signal handler). Our own
 * C functions poll the interrupt bits in sbx_charge, since hooks never run inside C functions.
 *
 * A signal can arrive late, after its turn stopped executing, or during another sandbox's turn on
 * the same thread: the handler then arms a hook that finds nothing to do (the hook re-checks the
 * bits), which is harmless.
 *
 * How many turns can execute at once is up to the host (one per thread in sandbox_run), so there
 * is no fixed table: executing turns with a deadline sit in a binary min-heap ordered by their
 * next deadline, O(log n) to enter and leave, and the watchdog only ever looks at its top. The
 * heap's array is reserved by sandbox_open (one slot per open sandbox, which bounds the number
 * executing), so entering it in sandbox_run never allocates and never fails.
 *
 * sandbox_cancel takes an id rather than a pointer so that it can never touch freed memory: the
 * registry maps the ids of open sandboxes to their handles, and sandbox_close removes its entry
 * under the same lock a cancel holds while it uses the handle.
 *
 * Invariants, under watch_lock: heap[0..heap_len) is a min-heap on watch_deadline and
 * heap[i]->watch_pos == i; a sandbox is in the heap only while watched; heap_cap >= nopen; the
 * registry holds exactly the open sandboxes, at most half full.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/base/invariant.h"
#include "sandbox/internal.h"

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_wake;
static bool set_up;                       /* the handler is installed and the thread runs */
static int watch_signal;                  /* the signal claimed, once set_up */
static uint64_t watch_wake_ns = UINT64_MAX; /* when the watchdog thread will look next */

static sandbox_t **heap; /* executing turns with a deadline, earliest first */
static size_t heap_len, heap_cap;

typedef struct id_slot {
    uint64_t id; /* 0 = empty */
    sandbox_t *sb;
} id_slot_t;
static id_slot_t *ids; /* open addressing, linear probing; ids_cap a power of two */
static size_t ids_cap, nopen;
static uint64_t last_id;

/* The sandbox whose turn executes on this thread now. */
static _Thread_local sandbox_t *volatile running_here;
/* Whether this thread has made sure it does not block the watchdog's signal. */
static _Thread_local bool signal_unblocked;

uint64_t sbx_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_watch_signal(int sig) {
    (void)sig;
    int saved = errno;
    sandbox_t *sb = running_here;
    if (sb && atomic_load_explicit(&sb->interrupt, memory_order_relaxed)) {
        lua_State *L = sb->current;
        if (L) lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1);
    }
    errno = saved;
}

/* ---- the deadline heap (under watch_lock) ------------------------------------------------- */

static void heap_place(size_t i, sandbox_t *sb) {
    heap[i] = sb;
    sb->watch_pos = i;
}

static void sift_up(size_t i) {
    sandbox_t *sb = heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent]->watch_deadline <= sb->watch_deadline) break;
        heap_place(i, heap[parent]);
        i = parent;
    }
    heap_place(i, sb);
}

static void sift_down(size_t i) {
    sandbox_t *sb = heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= heap_len) break;
        if (child + 1 < heap_len && heap[child + 1]->watch_deadline < heap[child]->watch_deadline) child++;
        if (heap[child]->watch_deadline >= sb->watch_deadline) break;
        heap_place(i, heap[child]);
        i = child;
    }
    heap_place(i, sb);
}

static void heap_push(sandbox_t *sb) {
    ACC_INVARIANT(heap_len < heap_cap, "heap of %zu full with %zu sandboxes open", heap_cap, nopen);
    heap_place(heap_len++, sb);
    sift_up(heap_len - 1);
}

static void heap_remove(sandbox_t *sb) {
    size_t i = sb->watch_pos;
    ACC_INVARIANT(i < heap_len && heap[i] == sb, "sandbox not at its heap position %zu", i);
    sb->watch_pos = SIZE_MAX;
    sandbox_t *last = heap[--heap_len];
    if (i == heap_len) return;
    heap_place(i, last);
    sift_down(i);
    sift_up(last->watch_pos);
}

/* The next moment the watchdog must act for sb: its time limit (until it fired) or its slice end. */
static uint64_t next_deadline(const sandbox_t *sb) {
    uint64_t d = UINT64_MAX;
    if (sb->turn_deadline_ns && !(atomic_load(&sb->interrupt) & SBX_INT_TIME)) d = sb->turn_deadline_ns;
    if (sb->slice_deadline_ns && sb->slice_deadline_ns < d) d = sb->slice_deadline_ns;
    return d;
}

static void *watch_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&watch_lock);
    for (;;) {
        uint64_t now = sbx_now_ns();
        while (heap_len > 0 && heap[0]->watch_deadline <= now) {
            sandbox_t *sb = heap[0];
            uint32_t bits = 0;
            if (sb->turn_deadline_ns && now >= sb->turn_deadline_ns) bits |= SBX_INT_TIME;
            if (sb->slice_deadline_ns && now >= sb->slice_deadline_ns) {
                bits |= SBX_INT_PREEMPT;
                sb->slice_deadline_ns = 0; /* one preemption per slice */
            }
            if (bits && (atomic_fetch_or(&sb->interrupt, bits) & bits) != bits)
                pthread_kill(sb->runner, watch_signal);
            sb->watch_deadline = next_deadline(sb);
            if (sb->watch_deadline == UINT64_MAX) heap_remove(sb); /* nothing more to watch for */
            else sift_down(0);
        }
        watch_wake_ns = heap_len > 0 ? heap[0]->watch_deadline : UINT64_MAX;
        if (watch_wake_ns == UINT64_MAX) {
            pthread_cond_wait(&watch_wake, &watch_lock);
        } else {
            struct timespec ts = {(time_t)(watch_wake_ns / 1000000000u), (long)(watch_wake_ns % 1000000000u)};
            pthread_cond_timedwait(&watch_wake, &watch_lock, &ts);
        }
    }
    return NULL;
}

/* ---- setup -------------------------------------------------------------------------------- */

/* Under watch_lock. */
static int setup_locked(int sig, acc_err *err) {
    if (sig == 0) sig = SIGRTMIN + 3;
    if (sig < SIGRTMIN || sig > SIGRTMAX)
        return acc_fail(err, ACC_EINVAL, "sandbox: watchdog signal %d is not a real-time signal (%d..%d)", sig,
                        SIGRTMIN, SIGRTMAX);
    if (set_up) {
        if (sig == watch_signal) return ACC_OK;
        return acc_fail(err, ACC_EMISUSE, "sandbox: the watchdog already uses signal %d (asked for %d)",
                        watch_signal, sig);
    }
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0)
        return acc_fail(err, ACC_EINVAL, "sandbox: signal %d: %s", sig, strerror(errno));
    if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
        return acc_fail(err, ACC_EBUSY,
                        "sandbox: signal %d already has a handler; give the watchdog another (sandbox_setup)", sig);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&watch_wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) return acc_fail(err, ACC_ENOMEM, "sandbox: cannot make the watchdog's condition variable");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watch_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        pthread_cond_destroy(&watch_wake);
        return acc_fail(err, ACC_EINVAL, "sandbox: cannot install the handler of signal %d: %s", sig, strerror(errno));
    }
    /* The watchdog thread must never take the signal meant for a runner. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, sig);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);
    watch_signal = sig;
    pthread_t t;
    rc = pthread_create(&t, &attr, watch_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        sigaction(sig, &old, NULL);
        pthread_cond_destroy(&watch_wake);
        return acc_fail(err, ACC_ENOMEM, "sandbox: cannot start the watchdog thread: %s", strerror(rc));
    }
    set_up = true;
    return ACC_OK;
}

int sandbox_setup(const sandbox_setup_t *setup, acc_err *err) {
    pthread_mutex_lock(&watch_lock);
    int rc = setup_locked(setup ? setup->watchdog_signal : 0, err);
    pthread_mutex_unlock(&watch_lock);
    return rc;
}

/* ---- the registry of open sandboxes (under watch_lock) -------------------------------------- */

static size_t id_home(uint64_t id, size_t cap) {
    return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

static void ids_put(id_slot_t *table, size_t cap, uint64_t id, sandbox_t *sb) {
    size_t i = id_home(id, cap);
    while (table[i].id) i = (i + 1) & (cap - 1);
    table[i].id = id;
    table[i].sb = sb;
}

static size_t ids_find(uint64_t id) {
    if (!ids_cap || id == 0) return SIZE_MAX;
    for (size_t i = id_home(id, ids_cap);; i = (i + 1) & (ids_cap - 1)) {
        if (ids[i].id == id) return i;
        if (ids[i].id == 0) return SIZE_MAX;
    }
}

/* Removes slot i, moving later entries of its probe run back (no tombstones). */
static void ids_delete(size_t i) {
    size_t mask = ids_cap - 1;
    ids[i].id = 0;
    for (size_t j = (i + 1) & mask; ids[j].id; j = (j + 1) & mask) {
        size_t home = id_home(ids[j].id, ids_cap);
        /* Entry j may move to the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        ids[i] = ids[j];
        ids[j].id = 0;
        i = j;
    }
}

/* Room for one more open sandbox, in the registry and in the heap. */
static int reserve_one_more(acc_err *err) {
    if (nopen + 1 > heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 64;
        sandbox_t **bigger = realloc(heap, cap * sizeof *bigger);
        if (!bigger) return acc_fail(err, ACC_ENOMEM, "sandbox: out of host memory for the watchdog's heap");
        heap = bigger;
        heap_cap = cap;
    }
    if ((nopen + 1) * 2 > ids_cap) {
        size_t cap = ids_cap ? ids_cap * 2 : 128;
        id_slot_t *table = calloc(cap, sizeof *table);
        if (!table) return acc_fail(err, ACC_ENOMEM, "sandbox: out of host memory for the sandbox registry");
        for (size_t i = 0; i < ids_cap; i++)
            if (ids[i].id) ids_put(table, cap, ids[i].id, ids[i].sb);
        free(ids);
        ids = table;
        ids_cap = cap;
    }
    return ACC_OK;
}

int sbx_register(sandbox_t *sb, acc_err *err) {
    pthread_mutex_lock(&watch_lock);
    int rc = setup_locked(set_up ? watch_signal : 0, err);
    if (rc == ACC_OK) rc = reserve_one_more(err);
    if (rc == ACC_OK) {
        sb->id = ++last_id;
        sb->watch_pos = SIZE_MAX;
        ids_put(ids, ids_cap, sb->id, sb);
        nopen++;
    }
    pthread_mutex_unlock(&watch_lock);
    return rc;
}

void sbx_unregister(sandbox_t *sb) {
    pthread_mutex_lock(&watch_lock);
    ACC_INVARIANT(!sb->watched, "sandbox %llu closed while its turn executes", (unsigned long long)sb->id);
    size_t i = ids_find(sb->id);
    ACC_INVARIANT(i != SIZE_MAX, "sandbox %llu not in the registry", (unsigned long long)sb->id);
    if (i != SIZE_MAX) {
        ids_delete(i);
        nopen--;
    }
    pthread_mutex_unlock(&watch_lock);
}

int sandbox_cancel(uint64_t id) {
    pthread_mutex_lock(&watch_lock);
    size_t i = ids_find(id);
    if (i != SIZE_MAX) {
        sandbox_t *sb = ids[i].sb;
        /* Between turns the bit is cleared when the next turn starts: a cancel ends a turn. */
        atomic_fetch_or(&sb->interrupt, SBX_INT_CANCEL);
        if (sb->watched) pthread_kill(sb->runner, watch_signal);
    }
    pthread_mutex_unlock(&watch_lock);
    return i == SIZE_MAX ? ACC_ENOTFOUND : ACC_OK;
}

/* ---- watching a turn ------------------------------------------------------------------------ */

/* Every executing turn is marked watched, deadline or not, so that sandbox_cancel can reach it;
 * only those with a deadline enter the heap. */
void sbx_watch_begin(sandbox_t *sb) {
    if (!signal_unblocked) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, watch_signal);
        pthread_sigmask(SIG_UNBLOCK, &s, NULL);
        signal_unblocked = true;
    }
    running_here = sb;
    atomic_fetch_and(&sb->interrupt, ~(uint32_t)SBX_INT_PREEMPT); /* a new slice starts */
    uint64_t slice_end = sb->limits.slice_ms ? sbx_now_ns() + (uint64_t)sb->limits.slice_ms * 1000000u : 0;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&watch_lock);
    sb->runner = self;
    sb->slice_deadline_ns = slice_end;
    sb->watched = true;
    sb->watch_deadline = next_deadline(sb);
    if (sb->watch_deadline != UINT64_MAX) {
        heap_push(sb);
        /* Wake the watchdog only when it would otherwise sleep past this turn's deadline. */
        if (sb->watch_deadline < watch_wake_ns) pthread_cond_signal(&watch_wake);
    }
    pthread_mutex_unlock(&watch_lock);
}

sandbox_t *sbx_watch_running_here(void) { return running_here; }

void sbx_watch_end(sandbox_t *sb) {
    pthread_mutex_lock(&watch_lock);
    if (sb->watch_pos != SIZE_MAX) heap_remove(sb);
    sb->watched = false;
    pthread_mutex_unlock(&watch_lock);
    running_here = NULL;
}
