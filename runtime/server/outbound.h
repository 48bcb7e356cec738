/*
 * outbound.h: HTTP requests from the loop to remote model endpoints (outbound.c).
 * Loop thread only, except the resolver thread inside.
 */
#ifndef ACCRUE_RUNTIME_SERVER_OUTBOUND_H
#define ACCRUE_RUNTIME_SERVER_OUTBOUND_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

typedef struct rt_server rt_server;
typedef struct rt_out rt_out;

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

/* The resolver thread: started and stopped with the server. */
int rt_out_init(rt_server *srv, acc_err *err);
void rt_out_shutdown(void);

/* Starts a request. NULL (err set) only for a malformed URL or no memory: on_done is then never
 * called. Otherwise on_done runs later on the loop, exactly once. */
rt_out *rt_out_start(rt_server *srv, const rt_out_req *req, const rt_out_cb *cb, acc_err *err);
/* Ends a request early: on_done follows with ACC_ECANCELLED. No-op once it ended. */
void rt_out_cancel(rt_out *o);

/* The "accrue-client" protocol's callback. */
int rt_out_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

#endif
