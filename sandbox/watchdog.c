/*
 * watchdog.c: stops Lua code that runs past a deadline, at no cost while it runs.
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
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "sandbox/internal.h"

#define WATCH_SIGNAL (SIGRTMIN + 3)
#define MAX_WATCHED 256

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_wake;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static sandbox_t *watched[MAX_WATCHED];
static int nwatched;
static bool watch_ok;
static uint64_t watch_wake_ns = UINT64_MAX; /* when the watchdog thread will look next */

/* The sandbox whose turn executes on this thread now. */
static _Thread_local sandbox_t *volatile running_here;

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
        uint64_t now = sbx_now_ns(), earliest = UINT64_MAX;
        for (int i = 0; i < nwatched; i++) {
            sandbox_t *sb = watched[i];
            uint32_t bits = 0;
            if (sb->turn_deadline_ns && now >= sb->turn_deadline_ns) bits |= SBX_INT_TIME;
            if (sb->slice_deadline_ns && now >= sb->slice_deadline_ns) {
                bits |= SBX_INT_PREEMPT;
                sb->slice_deadline_ns = 0; /* one preemption per slice */
            }
            if (bits && (atomic_fetch_or(&sb->interrupt, bits) & bits) != bits)
                pthread_kill(sb->runner, WATCH_SIGNAL);
            uint64_t d = next_deadline(sb);
            if (d < earliest) earliest = d;
        }
        watch_wake_ns = earliest;
        if (earliest == UINT64_MAX) {
            pthread_cond_wait(&watch_wake, &watch_lock);
        } else {
            struct timespec ts = {(time_t)(earliest / 1000000000u), (long)(earliest % 1000000000u)};
            pthread_cond_timedwait(&watch_wake, &watch_lock, &ts);
        }
    }
    return NULL;
}

static void watch_init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watch_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(WATCH_SIGNAL, &sa, NULL) != 0) return;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&watch_wake, &ca);
    pthread_condattr_destroy(&ca);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The watchdog must not take the signal meant for a runner. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, WATCH_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pthread_t t;
    watch_ok = pthread_create(&t, &attr, watch_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

/* Every executing turn is registered, deadline or not, so that sandbox_cancel can reach it. */
void sbx_watch_begin(sandbox_t *sb) {
    running_here = sb;
    atomic_fetch_and(&sb->interrupt, ~(uint32_t)SBX_INT_PREEMPT); /* a new slice starts */
    sb->slice_deadline_ns = sb->limits.slice_ms ? sbx_now_ns() + (uint64_t)sb->limits.slice_ms * 1000000u : 0;
    pthread_once(&watch_once, watch_init);
    if (!watch_ok) return; /* no watchdog: sbx_charge and the count hook still check the clock */
    sb->runner = pthread_self();
    pthread_mutex_lock(&watch_lock);
    if (nwatched < MAX_WATCHED) {
        watched[nwatched++] = sb;
        sb->watched = true;
        /* Wake the watchdog only when it would otherwise sleep past this turn's deadline. */
        if (next_deadline(sb) < watch_wake_ns) pthread_cond_signal(&watch_wake);
    }
    pthread_mutex_unlock(&watch_lock);
}

void sbx_watch_poke(sandbox_t *sb) {
    pthread_mutex_lock(&watch_lock);
    if (sb->watched) pthread_kill(sb->runner, WATCH_SIGNAL);
    pthread_mutex_unlock(&watch_lock);
}

void sbx_watch_end(sandbox_t *sb) {
    if (sb->watched) {
        pthread_mutex_lock(&watch_lock);
        for (int i = 0; i < nwatched; i++)
            if (watched[i] == sb) {
                watched[i] = watched[--nwatched];
                break;
            }
        sb->watched = false;
        pthread_mutex_unlock(&watch_lock);
    }
    running_here = NULL;
}
