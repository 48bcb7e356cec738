/*
 * outbound.c: HTTP requests from the server to remote models, on the loop, on kept-alive
 * connections of our own (keepalive.c, http1.c; TLS there for https://).
 *
 * lws 4.1.6 as Debian builds it has no asynchronous DNS, and getaddrinfo() can block for
 * seconds. So names are resolved here first, on a thread of our own (one request at a time),
 * and cached for a minute; the connection then goes to the numeric address while the Host
 * header, TLS SNI and the certificate check use the name. An IP literal skips the resolver.
 *
 * Each request has a connect deadline (until the response's status line) and a total deadline;
 * either ends the request on its connection (rt_ka_abort closes it) with ACC_ETIMEOUT; a cancel
 * does the same with ACC_ECANCELLED. The body is passed on as it arrives (de-chunked by our
 * parser), so a streamed answer is forwarded while it is made. The end (success or not) is
 * reported once, through the inbox, never from inside rt_out_start.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/internal.h"
#include "runtime/server/keepalive.h"
#include "runtime/server/outbound.h"

#define DNS_TTL_MS 60000
#define MAX_RESPONSE (8u << 20)

struct rt_out {
    rt_event ev; /* first: the end, posted to the loop */
    rt_net *net;
    rt_out_cb cb;
    rt_ka_req *ka;     /* the request on its connection (keepalive.c) */
    bool scheme_https;
    char host[256];  /* as in the URL */
    char addr[64];   /* numeric, once resolved */
    int port;
    char path[1024];
    char method[8];
    char *body;
    size_t body_len;
    char content_type[64];
    char auth[300];
    uint32_t connect_ms, total_ms;
    lws_sorted_usec_list_t connect_timer, total_timer;
    int status;         /* HTTP status, once known */
    size_t received;
    bool ended;         /* the end has been decided (result below) */
    bool reported;      /* the end event has run */
    bool cancelled;
    bool connected;     /* the status line arrived */
    int result;         /* ACC_OK or an ACC_E* code */
    char msg[200];
    rt_event resolved_ev; /* the resolver's answer */
    bool resolve_ok;
    bool resolving; /* in the resolver's hands: not freed until it gives it back */
};

/* ---- the resolver thread ------------------------------------------------------------------ */

typedef struct dns_entry {
    char addr[64];
    uint64_t expires_ms;
} dns_entry;

typedef struct resolver {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rt_out *queue[256];
    unsigned head, count;
    bool stop, started;
    rt_map cache; /* host -> dns_entry (loop only) */
} resolver;

static resolver res;

static void *resolver_main(void *arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_mutex_lock(&res.mu);
    for (;;) {
        while (!res.count && !res.stop) pthread_cond_wait(&res.cv, &res.mu);
        if (res.stop) break;
        rt_out *o = res.queue[res.head];
        res.head = (res.head + 1) % 256;
        res.count--;
        pthread_mutex_unlock(&res.mu);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        char port[8];
        snprintf(port, sizeof port, "%d", o->port);
        int rc = getaddrinfo(o->host, port, &hints, &ai);
        o->resolve_ok = false;
        if (rc == 0 && ai) {
            /* IPv4 first: lws is happiest with it and loopback names resolve to both. */
            struct addrinfo *pick = ai;
            for (struct addrinfo *a = ai; a; a = a->ai_next)
                if (a->ai_family == AF_INET) {
                    pick = a;
                    break;
                }
            void *src = pick->ai_family == AF_INET ? (void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr
                                                   : (void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
            o->resolve_ok = inet_ntop(pick->ai_family, src, o->addr, sizeof o->addr) != NULL;
        } else {
            snprintf(o->msg, sizeof o->msg, "cannot resolve %s: %s", o->host, gai_strerror(rc));
        }
        if (ai) freeaddrinfo(ai);
        rt_net_post(o->net, &o->resolved_ev);
        pthread_mutex_lock(&res.mu);
    }
    pthread_mutex_unlock(&res.mu);
    return NULL;
}

int rt_out_init(rt_net *n, acc_err *err) {
    (void)n;
    rt_ka_init();
    memset(&res, 0, sizeof res);
    pthread_mutex_init(&res.mu, NULL);
    pthread_cond_init(&res.cv, NULL);
    int rc = pthread_create(&res.thread, NULL, resolver_main, NULL);
    if (rc) return acc_fail(err, ACC_ENOMEM, "cannot start the resolver thread: %s", strerror(rc));
    res.started = true;
    return ACC_OK;
}

void rt_out_shutdown(void) {
    if (!res.started) return;
    rt_ka_shutdown();
    pthread_mutex_lock(&res.mu);
    res.stop = true;
    pthread_cond_broadcast(&res.cv);
    pthread_mutex_unlock(&res.mu);
    pthread_join(res.thread, NULL);
    rt_map_entry *e;
    for (size_t i = 0; rt_map_next(&res.cache, &i, &e);) free(e->value);
    rt_map_free(&res.cache);
    pthread_mutex_destroy(&res.mu);
    pthread_cond_destroy(&res.cv);
    res.started = false;
}

/* ---- the loop: its inbox, and a client-only loop for accrue run ------------------------------- */

static _Thread_local rt_net *tl_held;
static _Thread_local bool tl_wake_held;

void rt_net_hold_wakes(rt_net *n, bool hold) {
    if (hold) {
        tl_held = n;
        return;
    }
    tl_held = NULL;
    if (tl_wake_held && n->ctx) lws_cancel_service(n->ctx);
    tl_wake_held = false;
}

void rt_net_post(rt_net *n, rt_event *ev) {
    pthread_mutex_lock(&n->inbox_mu);
    if (ev->queued) {
        pthread_mutex_unlock(&n->inbox_mu);
        return;
    }
    ev->queued = true;
    ev->next = NULL;
    bool was_empty = !n->inbox_head;
    if (n->inbox_tail) n->inbox_tail->next = ev;
    else n->inbox_head = ev;
    n->inbox_tail = ev;
    pthread_mutex_unlock(&n->inbox_mu);
    /* The loop posting to itself needs no wake-up: it drains after each callback it runs. */
    if (was_empty && !pthread_equal(pthread_self(), n->loop_thread) && n->ctx) {
        if (tl_held == n) tl_wake_held = true;
        else lws_cancel_service(n->ctx);
    }
}

void rt_net_drain(rt_net *n) {
    for (;;) {
        pthread_mutex_lock(&n->inbox_mu);
        rt_event *ev = n->inbox_head;
        if (ev) {
            n->inbox_head = ev->next;
            if (!n->inbox_head) n->inbox_tail = NULL;
            ev->queued = false;
        }
        pthread_mutex_unlock(&n->inbox_mu);
        if (!ev) return;
        ev->fn(n->srv, ev);
    }
}

/* The client-only loop's one protocol: the outbound client, and the inbox drained after each
 * callback (the server's loop does the same in server.c). */
static int client_only_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    rt_net *n = lws_context_user(lws_get_context(wsi));
    int rc = reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED ? 0 : rt_out_callback(wsi, reason, user, in, len);
    if (n) rt_net_drain(n);
    return rc;
}

static const struct lws_protocols client_only_protocols[] = {
    {"accrue-client", client_only_callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void client_log(int level, const char *line) {
    if (level & LLL_ERR) fprintf(stderr, "accrue: lws: %s", line);
}


int rt_net_client_open(rt_net **out, uint32_t connect_ms, uint32_t total_ms, acc_err *err) {
    rt_net *n = calloc(1, sizeof *n);
    if (!n) return acc_fail(err, ACC_ENOMEM, "out of memory");
    n->loop_thread = pthread_self();
    pthread_mutex_init(&n->inbox_mu, NULL);
    n->connect_ms = connect_ms;
    n->total_ms = total_ms;
    int rc = rt_out_init(n, err);
    if (rc) {
        pthread_mutex_destroy(&n->inbox_mu);
        free(n);
        return rc;
    }
    lws_set_log_level(LLL_ERR, client_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = client_only_protocols;
    info.user = n;
    info.vhost_name = "accrue-run";
    n->ctx = lws_create_context(&info);
    n->vh = n->ctx ? lws_get_vhost_by_name(n->ctx, "accrue-run") : NULL;
    if (!n->ctx) {
        rt_out_shutdown();
        pthread_mutex_destroy(&n->inbox_mu);
        free(n);
        return acc_fail(err, ACC_EIO, "cannot start the HTTP client (lws_create_context failed)");
    }
    *out = n;
    return ACC_OK;
}

void rt_net_client_close(rt_net *n) {
    if (!n) return;
    rt_out_shutdown(); /* first: the resolver posts to n */
    rt_net_drain(n);
    lws_context_destroy(n->ctx);
    pthread_mutex_destroy(&n->inbox_mu);
    free(n);
}

static void on_wait_over(lws_sorted_usec_list_t *sul) { (void)sul; }

void rt_net_wait(rt_net *n, int timeout_ms) {
    /* Posts made on this thread outside the loop's callbacks (a call started by the sandbox)
     * woke nothing: run them before waiting. */
    rt_net_drain(n);
    /* A timer due within the next millisecond or so makes lws 4.1.6's poll spin: never sooner. */
    if (timeout_ms < 2) timeout_ms = 2;
    lws_sorted_usec_list_t sul;
    memset(&sul, 0, sizeof sul);
    lws_sul_schedule(n->ctx, 0, &sul, on_wait_over, (lws_usec_t)timeout_ms * 1000);
    lws_service(n->ctx, 0);
    lws_sul_cancel(&sul);
    rt_net_drain(n);
}

void rt_net_wake(rt_net *n) { lws_cancel_service(n->ctx); }

/* ---- the end of a request ------------------------------------------------------------------- */

static void end_event(rt_server *srv, rt_event *ev) {
    rt_out *o = (rt_out *)ev;
    (void)srv;
    if (o->resolving) return; /* the resolver still has it: on_resolved posts again */
    o->reported = true;
    lws_sul_cancel(&o->connect_timer);
    lws_sul_cancel(&o->total_timer);
    atomic_fetch_add(&o->net->requests, 1);
    if (o->result != ACC_OK) atomic_fetch_add(&o->net->errors, 1);
    o->cb.on_done(o->cb.ud, o->result, o->status, o->msg);
    free(o->body);
    free(o);
}

/* Decides the end (the first decision wins) and, when the connection is gone, reports it. */
static void end(rt_out *o, int result, const char *fmt, const char *detail) {
    if (!o->ended) {
        o->ended = true;
        o->result = result;
        if (fmt) snprintf(o->msg, sizeof o->msg, fmt, detail ? detail : "");
    }
    if (o->ka) { /* its connection closes; nothing more comes from it */
        rt_ka_abort(o->ka);
        o->ka = NULL;
    }
    rt_net_post(o->net, &o->ev);
}

static void on_connect_timeout(lws_sorted_usec_list_t *sul) {
    rt_out *o = (rt_out *)((char *)sul - offsetof(rt_out, connect_timer));
    if (!o->connected) end(o, ACC_ETIMEOUT, "no answer from %s within the connect timeout", o->host);
}

static void on_total_timeout(lws_sorted_usec_list_t *sul) {
    rt_out *o = (rt_out *)((char *)sul - offsetof(rt_out, total_timer));
    end(o, ACC_ETIMEOUT, "%s did not finish within the time limit", o->host);
}

/* ---- connecting -------------------------------------------------------------------------------- */

/* keepalive.c's hooks. Each returns nonzero once the request was ended from inside it. */
static int ka_status(void *ud, int status) {
    rt_out *o = ud;
    o->connected = true;
    o->status = status;
    lws_sul_cancel(&o->connect_timer);
    if (o->cb.on_status) o->cb.on_status(o->cb.ud, status);
    return !o->ka;
}

static int ka_data(void *ud, const char *data, size_t len) {
    rt_out *o = ud;
    o->received += len;
    if (o->received > MAX_RESPONSE) {
        end(o, ACC_EUPSTREAM, "%s answered more than 8 MiB", o->host);
        return 1;
    }
    if (o->cb.on_data) o->cb.on_data(o->cb.ud, data, len);
    return !o->ka;
}

static void ka_end(void *ud, int result, const char *msg) {
    rt_out *o = ud;
    o->ka = NULL;
    end(o, result, result == ACC_OK ? NULL : "%s", msg);
}

static void connect_now(rt_out *o) {
    rt_ka_target t = {.net = o->net,
                      .addr = o->addr,
                      .port = o->port,
                      .host = o->host,
                      .tls = o->scheme_https,
                      .method = o->method,
                      .path = o->path,
                      .content_type = o->content_type,
                      .bearer = o->auth[0] ? o->auth + 7 : NULL, /* after "Bearer " */
                      .body = o->body,
                      .body_len = o->body_len};
    rt_ka_hooks h = {.ud = o, .on_status = ka_status, .on_data = ka_data, .on_end = ka_end};
    acc_err err = {0};
    o->ka = rt_ka_start(&t, &h, &err);
    if (!o->ka) end(o, err.code ? err.code : ACC_EUPSTREAM, "%s", err.msg);
}

static void on_resolved(rt_server *srv, rt_event *ev) {
    rt_out *o = (rt_out *)((char *)ev - offsetof(rt_out, resolved_ev));
    (void)srv;
    o->resolving = false;
    if (o->ended) { /* cancelled or timed out while resolving */
        rt_net_post(o->net, &o->ev);
        return;
    }
    if (!o->resolve_ok) {
        char why[sizeof o->msg]; /* end() writes o->msg: not from itself */
        snprintf(why, sizeof why, "%s", o->msg[0] ? o->msg : "cannot resolve the host");
        end(o, ACC_EUPSTREAM, "%s", why);
        return;
    }
    dns_entry *d = rt_map_get(&res.cache, o->host);
    if (!d && (d = calloc(1, sizeof *d)) && rt_map_put(&res.cache, o->host, d) != ACC_OK) {
        free(d);
        d = NULL;
    }
    if (d) {
        snprintf(d->addr, sizeof d->addr, "%s", o->addr);
        d->expires_ms = rt_now_ns() / 1000000 + DNS_TTL_MS;
    }
    connect_now(o);
}

static bool parse_url(rt_out *o, const char *url, acc_err *err) {
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0) p += 7, o->port = 80;
    else if (strncmp(p, "https://", 8) == 0) p += 8, o->port = 443, o->scheme_https = true;
    else return acc_fail(err, ACC_EINVAL, "the URL must start with http:// or https://"), false;
    const char *host_end;
    if (*p == '[') { /* [IPv6] */
        host_end = strchr(p, ']');
        if (!host_end) return acc_fail(err, ACC_EINVAL, "bad IPv6 address in the URL"), false;
        snprintf(o->host, sizeof o->host, "%.*s", (int)(host_end - p - 1), p + 1);
        host_end++;
    } else {
        host_end = p + strcspn(p, ":/?");
        if (host_end == p || (size_t)(host_end - p) >= sizeof o->host)
            return acc_fail(err, ACC_EINVAL, "the URL has no host"), false;
        snprintf(o->host, sizeof o->host, "%.*s", (int)(host_end - p), p);
    }
    p = host_end;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535) return acc_fail(err, ACC_EINVAL, "bad port in the URL"), false;
        o->port = (int)port;
        p = end;
    }
    if (*p && *p != '/') return acc_fail(err, ACC_EINVAL, "bad URL after the host"), false;
    snprintf(o->path, sizeof o->path, "%s", *p ? p : "/");
    return true;
}

rt_out *rt_out_start(rt_net *n, const rt_out_req *req, const rt_out_cb *cb, acc_err *err) {
    rt_out *o = calloc(1, sizeof *o);
    if (!o) {
        acc_fail(err, ACC_ENOMEM, "out of memory");
        return NULL;
    }
    o->ev.fn = end_event;
    o->resolved_ev.fn = on_resolved;
    o->net = n;
    o->cb = *cb;
    if (!parse_url(o, req->url, err)) {
        free(o);
        return NULL;
    }
    snprintf(o->method, sizeof o->method, "%s", req->method ? req->method : "POST");
    snprintf(o->content_type, sizeof o->content_type, "%s", req->content_type ? req->content_type : "application/json");
    if (req->bearer && *req->bearer) snprintf(o->auth, sizeof o->auth, "Bearer %s", req->bearer);
    if (req->body_len) {
        o->body = malloc(req->body_len);
        if (!o->body) {
            free(o);
            acc_fail(err, ACC_ENOMEM, "out of memory");
            return NULL;
        }
        memcpy(o->body, req->body, req->body_len);
        o->body_len = req->body_len;
    }
    o->connect_ms = req->connect_timeout_ms ? req->connect_timeout_ms : 5000;
    o->total_ms = req->total_timeout_ms ? req->total_timeout_ms : 60000;
    lws_sul_schedule(n->ctx, 0, &o->connect_timer, on_connect_timeout, (lws_usec_t)o->connect_ms * 1000);
    lws_sul_schedule(n->ctx, 0, &o->total_timer, on_total_timeout, (lws_usec_t)o->total_ms * 1000);

    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, o->host, &a4) == 1 || inet_pton(AF_INET6, o->host, &a6) == 1) {
        snprintf(o->addr, sizeof o->addr, "%s", o->host);
        connect_now(o);
        return o;
    }
    dns_entry *d = rt_map_get(&res.cache, o->host);
    if (d && d->expires_ms > rt_now_ns() / 1000000) {
        snprintf(o->addr, sizeof o->addr, "%s", d->addr);
        connect_now(o);
        return o;
    }
    pthread_mutex_lock(&res.mu);
    bool queued = res.count < 256;
    o->resolving = queued;
    if (queued) {
        res.queue[(res.head + res.count) % 256] = o;
        res.count++;
        pthread_cond_signal(&res.cv);
    }
    pthread_mutex_unlock(&res.mu);
    if (!queued) end(o, ACC_EBUSY, "%s", "too many host names being resolved at once");
    return o;
}

void rt_out_cancel(rt_out *o) {
    if (!o || o->ended) return;
    o->cancelled = true;
    end(o, ACC_ECANCELLED, "%s", "cancelled");
}

/* ---- the client protocol's callback ------------------------------------------------------------ */

int rt_out_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    switch (reason) { /* our own sockets */
    case LWS_CALLBACK_RAW_RX:
    case LWS_CALLBACK_RAW_WRITEABLE:
    case LWS_CALLBACK_RAW_CLOSE:
        return rt_ka_callback(wsi, reason, in, len);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
