/*
 * keepalive.h: http:// and https:// requests to model endpoints on kept-alive connections of our
 * own (keepalive.c), for outbound.c, which keeps each request's deadlines, cancel and report. Loop
 * thread only.
 */
#ifndef ACCRUE_RUNTIME_SERVER_KEEPALIVE_H
#define ACCRUE_RUNTIME_SERVER_KEEPALIVE_H

#include <libwebsockets.h>
#include <stddef.h>

#include "runtime/base/status.h"
#include "runtime/server/outbound.h"

typedef struct rt_ka_req rt_ka_req;

typedef struct rt_ka_target {
    rt_net *net;
    const char *addr; /* numeric: the resolver's answer or the URL's literal */
    int port;
    const char *host; /* as in the URL: the Host header, messages, and for https SNI and the
                       * name (or address) the certificate must carry */
    bool tls;         /* https */
    const char *method, *path, *content_type, *bearer;
    const char *body; /* copied */
    size_t body_len;
} rt_ka_target;

typedef struct rt_ka_hooks {
    void *ud;
    /* The final status line arrived; then body bytes, de-chunked, as they arrive. A nonzero return
     * says the owner has aborted the request (rt_ka_abort) from inside the hook. */
    int (*on_status)(void *ud, int status);
    int (*on_data)(void *ud, const char *data, size_t len);
    /* The end, once, unless the request was aborted first: ACC_OK when the whole response arrived,
     * else ACC_EUPSTREAM with msg (cannot connect, closed early, malformed). */
    void (*on_end)(void *ud, int result, const char *msg);
} rt_ka_hooks;

/* Sends a request on an idle connection to (addr, port), or on a new one. NULL (err set) when it
 * cannot start (a bad field, no memory, a socket or connect that fails at once); no hook then
 * runs. Hooks never run from inside this call. */
rt_ka_req *rt_ka_start(const rt_ka_target *t, const rt_ka_hooks *hooks, acc_err *err);
/* Ends a request early: its connection is closed, no hook runs after this. Not from on_end. */
void rt_ka_abort(rt_ka_req *k);

/* The raw-socket callbacks of the connections (rt_out_callback passes them on). */
int rt_ka_callback(struct lws *wsi, enum lws_callback_reasons reason, void *in, size_t len);

/* With the loop: rt_ka_init empties the pool; rt_ka_shutdown closes the idle connections (if the
 * lws context still runs; destroying it closes them too) and frees the pool. */
void rt_ka_init(void);
void rt_ka_shutdown(void);
/* Loads the https client's trust store now (about 15 ms) rather than at the first https call:
 * the server does at start, so that no request waits for it on the loop. */
void rt_ka_tls_warm(void);

#endif
