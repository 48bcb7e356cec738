/*
 * pool.c: the worker threads that run agent turns.
 *
 * A FIFO of intrusive jobs (a session embeds its one job, so queueing allocates nothing) under
 * one mutex, and N threads taking from it. A turn that pauses at the end of its time slice is
 * queued again at the back, so one busy agent shares a worker with the others instead of
 * holding it for its whole time limit. Workers block SIGINT and SIGTERM (the loop's thread takes
 * them) but not the sandbox watchdog's signal, which must reach the thread running a turn. A
 * worker may take a session's job ahead, to load its memory while it runs the one before
 * (take_ahead).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/internal.h"

struct rt_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rt_job *head, *tail;
    unsigned depth;
    bool stopping;
    unsigned workers; /* as asked (take_ahead) */
    unsigned n;       /* started */
    pthread_t threads[];
};

static rt_job *take(rt_pool *p) {
    rt_job *job = p->head;
    if (!job) return NULL;
    p->head = job->next;
    if (!p->head) p->tail = NULL;
    p->depth--;
    job->next = NULL;
    return job;
}

/* A worker with many sessions to run finds each one's memory cold (a thousand others ran since).
 * It takes the next job with it when the job says what to load (rt_job.ahead) and the others
 * still have as many left as there are other workers, so that no worker waits for it: then the
 * job is this worker's, its memory loads while the current one runs, and it runs here next (behind
 * the current job, as it would have in the queue behind the other workers' jobs). */
static rt_job *take_ahead(rt_pool *p) {
    if (!p->head || !p->head->ahead || p->depth < p->workers) return NULL;
    return take(p);
}

/* The first lines of a job's owner (a session's): the job sits in them. */
static void prefetch_job(const rt_job *job) {
    __builtin_prefetch(job, 0, 3);
    __builtin_prefetch((const char *)job + 64, 0, 3);
}

static void *worker_main(void *arg) {
    rt_pool *p = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* SCHED_BATCH: a woken worker does not preempt the thread that woke it (the kernel's fair
     * scheduler skips wake-up preemption for batch threads; the tick still shares the core). On a
     * core the loop shares with a worker, each submitted job used to switch to the worker at once
     * and back when it slept: two context switches a job. Now the loop finishes its pass first and
     * the worker then runs every job it queued. The loop and the ledger's writer stay normal
     * threads, so their own wake-ups still preempt a worker. Unprivileged; if refused, nothing
     * else changes. */
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    rt_job *next = NULL; /* taken ahead: this worker's, run after the current one */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!next && !p->head && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        rt_job *job = next ? next : take(p);
        if (!job) break; /* stopping and nothing left */
        next = take_ahead(p);
        const rt_job *after = next ? p->head : NULL; /* still queued: only its address is used */
        pthread_mutex_unlock(&p->mu);
        if (next) {
            if (after) prefetch_job(after);
            next->ahead(next);
        }
        job->fn(job);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    rt_worker_exit(); /* its registry handle */
    return NULL;
}

rt_pool *rt_pool_start(unsigned n, acc_err *err) {
    if (n == 0) n = 1;
    rt_pool *p = calloc(1, sizeof *p + n * sizeof(pthread_t));
    if (!p) {
        acc_fail(err, ACC_ENOMEM, "out of memory starting %u workers", n);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->workers = n;
    for (unsigned i = 0; i < n; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc) {
            acc_fail(err, ACC_ENOMEM, "cannot start worker thread %u: %s", i + 1, strerror(rc));
            p->n = i;
            rt_pool_stop(p);
            return NULL;
        }
    }
    p->n = n;
    return p;
}

void rt_pool_submit(rt_pool *p, rt_job *job) {
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail) p->tail->next = job;
    else p->head = job;
    p->tail = job;
    p->depth++;
    pthread_mutex_unlock(&p->mu);
    /* Signalled after the unlock: a worker woken while the lock is held, on a core it shares with
     * the caller, preempts it and at once blocks on the lock (two more context switches a job). */
    pthread_cond_signal(&p->cv);
}

unsigned rt_pool_depth(rt_pool *p) {
    pthread_mutex_lock(&p->mu);
    unsigned d = p->depth;
    pthread_mutex_unlock(&p->mu);
    return d;
}

void rt_pool_stop(rt_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
