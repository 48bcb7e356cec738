/*
 * outbound.h: HTTP requests from a loop to remote model endpoints (outbound.c), and the loop they
 * run on (rt_net): an lws context, the inbox other threads post work to, the upstream timeouts.
 * The server embeds one around its own context; `accrue run` opens a client-only one
 * (rt_net_client_open) and services it while its turn waits on a call (rt_net_wait).
 * Loop thread only, except rt_net_post and the resolver thread inside.
 */
#ifndef ACCRUE_RUNTIME_SERVER_OUTBOUND_H
#define ACCRUE_RUNTIME_SERVER_OUTBOUND_H

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"
#include "runtime/metered.h"

typedef struct rt_server rt_server;
typedef struct rt_out rt_out;

/* Work handed to the loop from any thread. */
typedef struct rt_event rt_event;
struct rt_event {
    rt_event *next;
    void (*fn)(rt_server *srv, rt_event *ev); /* runs on the loop; srv is the rt_net's (may be NULL) */
    bool queued;                              /* under the inbox lock */
};

typedef struct rt_net {
    struct lws_context *ctx;
    struct lws_vhost *vh;     /* client connections are made on it */
    pthread_t loop_thread;
    pthread_mutex_t inbox_mu;
    rt_event *inbox_head, *inbox_tail;
    rt_server *srv;                /* handed to the events; NULL outside the server */
    uint32_t connect_ms, total_ms; /* upstream calls' timeouts (0: 5 s and 60 s) */
    atomic_uint_fast64_t requests, errors; /* outbound requests ended, and those that failed */
    /* upstream connections (keepalive.c): opened, and requests sent again once on a new
     * connection because a kept-alive one had died */
    atomic_uint_fast64_t upstream_connects, upstream_retries;
} rt_net;

/* Queues ev for the loop (once: an event already queued is not queued twice) and wakes it. */
void rt_net_post(rt_net *n, rt_event *ev);
/* Between hold (true) and release (false), the calling thread's posts wake the loop once, at the
 * release: a thread that posts many events in a row (the ledger's writer, a batch's answers) does
 * not wake the loop, on a core they share, to run each one by itself. */
void rt_net_hold_wakes(rt_net *n, bool hold);
/* Runs every queued event, including those posted while running them. Loop thread. */
void rt_net_drain(rt_net *n);

/* A loop of the calling thread's own with a client-only lws context (no listening socket), and the
 * resolver thread: for `accrue run`. One at a time per process (the resolver is one). */
int rt_net_client_open(rt_net **out, uint32_t connect_ms, uint32_t total_ms, acc_err *err);
void rt_net_client_close(rt_net *n); /* NULL is fine; every request must have ended */
/* Services the loop once: returns after a network event, a post, a wake or timeout_ms. */
void rt_net_wait(rt_net *n, int timeout_ms);
/* Makes a waiting rt_net_wait return. Any thread. */
void rt_net_wake(rt_net *n);


typedef struct rt_out_req {
    const char *url;    /* http://host[:port]/path or https://... */
    const char *method; /* "POST" (default) or "GET" */
    const char *body;   /* copied */
    size_t body_len;
    const char *content_type; /* default application/json */
    const char *bearer;       /* an API key for "Authorization: Bearer", or NULL */
    uint32_t connect_timeout_ms, total_timeout_ms; /* 0: 5 s and 60 s */
} rt_out_req;

typedef struct rt_out_cb {
    void *ud;
    void (*on_status)(void *ud, int status);                   /* the response's status line */
    void (*on_data)(void *ud, const char *data, size_t len);   /* body bytes as they arrive */
    /* The end, once: ACC_OK when the whole response arrived (whatever its status), else
     * ACC_ETIMEOUT, ACC_ECANCELLED, ACC_EUPSTREAM (connection or name failure) with msg. */
    void (*on_done)(void *ud, int result, int status, const char *msg);
} rt_out_cb;

/* The resolver thread: started and stopped with the loop. */
int rt_out_init(rt_net *n, acc_err *err);
void rt_out_shutdown(void);

/* Starts a request. NULL (err set) only for a malformed URL or no memory: on_done is then never
 * called. Otherwise on_done runs later on the loop, exactly once. */
rt_out *rt_out_start(rt_net *n, const rt_out_req *req, const rt_out_cb *cb, acc_err *err);
/* Ends a request early: on_done follows with ACC_ECANCELLED. No-op once it ended. */
void rt_out_cancel(rt_out *o);

/* The meters' HTTP models (upstream.c) for a host whose one thread runs both the sandbox and the
 * loop n (accrue run): each call goes out on n, with n's timeouts cut to the turn's time limit,
 * and is finished (rt_http_done) on that thread as soon as it ends. */
rt_http_t rt_upstream_local(rt_net *n);

/* The "accrue-client" protocol's callback: lws's client connections (https) and our own raw
 * sockets (http, keepalive.c). */
int rt_out_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

#endif
