/*
 * keepalive.c: requests to model endpoints on kept-alive connections of our own, http:// and
 * https:// (keepalive.h).
 *
 * lws 4.1.6's HTTP client closes its connection after each response, and reuses one only by
 * queueing requests behind a single connection per host (LCCSCF_PIPELINE), which would make
 * concurrent model calls wait for each other. So we keep connections of our own, as Go's
 * http.Transport and libcurl's connection cache do: a pool of idle connections per (address,
 * port, and for https the name the certificate must carry), the most recently used taken first
 * (its peer has had the least time to give up on it); a connection goes back only after a
 * complete response that allows another request, at most IDLE_PER_HOST idle per address (the
 * least recently used closes to make room), each for IDLE_S seconds, less if the server said so
 * (Keep-Alive: timeout=N: we leave a second early). An idle connection that becomes readable
 * (bytes we did not ask for, or the server's close) is dropped.
 *
 * The sockets are ours and lws polls them: a non-blocking connect() to the resolver's numeric
 * address, then lws_adopt_descriptor_vhost_via_info as a raw socket on the "accrue-client"
 * protocol (LWS_CALLBACK_RAW_*). lws treats an adopted socket as established at once; while our
 * connect is in progress its POLLIN is switched off (lws_rx_flow_control) and we ask for
 * POLLOUT, so a refused connection reaches us as POLLHUP with its error still in SO_ERROR (lws
 * would otherwise read() it away and report nothing but a close), and the first writable
 * callback means connected. The request (http1.c) is sent with send() on the socket, as much as
 * the kernel takes, the rest on POLLOUT (not with lws_write, which hands the kernel at most the
 * protocol's buffer size, 4 KiB, per loop iteration, and copies the rest). The response's bytes
 * come in RAW_RX and are parsed as they come, so a streamed answer reaches the caller while it is
 * made.
 *
 * https: OpenSSL over two memory BIOs, so lws keeps reading and polling the socket as for plain
 * http. The bytes RAW_RX brings go into the session's read BIO and come out of SSL_read as the
 * answer; the handshake's records and the request's ciphertext come out of the write BIO and are
 * sent like a plain request (the rest waits in `wire` for POLLOUT). The peer is verified against
 * the system's trust store (SSL_CERT_FILE and SSL_CERT_DIR override it, as everywhere in OpenSSL)
 * and the URL's host: its DNS name, or its IP address when the URL gives one; SNI carries the
 * name, ALPN offers http/1.1 only. A TLS 1.3 server sends session tickets after the handshake;
 * on an idle connection they are read and the connection kept, any answer bytes drop it.
 *
 * A kept-alive connection can die between requests while we hold it idle: the server closed it
 * and its FIN had not arrived when we picked it. Then the request fails before any byte of an
 * answer; such a request, on a reused connection, is sent once more on a new connection (Go does
 * the same). Never a second retry, never after a byte of the answer, never from a fresh
 * connection: a model call must not be made twice because of us. The retry starts from the
 * inbox, outside lws's callbacks.
 *
 * A connection is freed in its RAW_CLOSE only; whoever wants one gone asks lws to close it
 * (lws_set_timeout with LWS_TO_KILL_ASYNC, or -1 from its own callback).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "runtime/base/invariant.h"
#include "runtime/server/http1.h"
#include "runtime/server/internal.h"
#include "runtime/server/keepalive.h"

#define IDLE_PER_HOST 64
#define IDLE_S 30
#define WIRE_KEEP (64u << 10) /* https: the ciphertext room a connection keeps between requests */

typedef struct ka_conn ka_conn;

typedef struct ka_host {
    ka_conn *head, *tail; /* the idle connections, the most recently used first */
    unsigned idle;
} ka_host;

struct ka_conn {
    struct lws *wsi; /* NULL once closed */
    ka_host *host;
    rt_ka_req *req;       /* the request on it; NULL when idle or on its way out */
    ka_conn *prev, *next; /* in host's idle list */
    bool idle;
    bool connecting; /* connect() still in progress */
    bool adopting;   /* inside lws_adopt_descriptor_vhost_via_info */
    bool closing;    /* asked to close: never reused */
    bool reused;     /* has carried a whole exchange before this one */
    int soerr;       /* the connect's error, when the writable callback saw it */
    size_t got;      /* bytes of the current response read */
    rt_h1_resp resp;
    /* https */
    bool tls;
    bool ready;     /* the handshake is done */
    SSL *ssl;       /* made once connected; owns its two memory BIOs */
    acc_buf wire;   /* ciphertext the kernel has not taken yet, from wire_off */
    size_t wire_off;
    char why[160];  /* a TLS failure, for the close to report */
};

struct rt_ka_req {
    rt_event retry_ev; /* the one retry, from the inbox */
    rt_net *net;
    ka_host *host;
    ka_conn *conn; /* NULL while a retry waits */
    rt_ka_hooks hooks;
    char addr[64];
    int port;
    char name[256]; /* the URL's host: messages, and for https SNI and the certificate's name */
    bool tls;
    acc_buf out; /* the request */
    size_t sent; /* bytes of it on the current connection */
    bool retried, retry_queued, aborted;
};

static struct {
    rt_map hosts; /* "address port" or "address port name" (https) -> ka_host */
    bool down;    /* shut down: no retries, nothing parked */
    SSL_CTX *tls; /* the https client's settings and trust store, made once */
} pool;

/* ---- the pool ----------------------------------------------------------------------------------- */

static ka_host *host_of(const rt_ka_req *k) {
    char key[400];
    if (k->tls) snprintf(key, sizeof key, "%s %d %s", k->addr, k->port, k->name);
    else snprintf(key, sizeof key, "%s %d", k->addr, k->port);
    ka_host *h = rt_map_get(&pool.hosts, key);
    if (h) return h;
    h = calloc(1, sizeof *h);
    if (h && rt_map_put(&pool.hosts, key, h) != ACC_OK) {
        free(h);
        h = NULL;
    }
    return h;
}

static void idle_unlink(ka_conn *c) {
    ka_host *h = c->host;
    ACC_INVARIANT(c->idle && h->idle > 0, "unlinking a connection that is not idle (%u idle)", h->idle);
    if (c->prev) c->prev->next = c->next;
    else h->head = c->next;
    if (c->next) c->next->prev = c->prev;
    else h->tail = c->prev;
    c->prev = c->next = NULL;
    c->idle = false;
    h->idle--;
}

/* Closes c later (its RAW_CLOSE frees it). */
static void kill_later(ka_conn *c) {
    if (c->idle) idle_unlink(c);
    if (c->closing || !c->wsi) return;
    c->closing = true;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* After a complete response that allows another: c waits for the next request. false: close it. */
static bool park(ka_conn *c, uint32_t keep_alive_s) {
    int secs = IDLE_S;
    if (keep_alive_s && (int)keep_alive_s - 1 < secs) secs = (int)keep_alive_s - 1;
    if (secs <= 0 || pool.down || c->closing) return false;
    ACC_INVARIANT(!c->idle && !c->req, "parking a connection that is idle or busy");
    ka_host *h = c->host;
    if (h->idle >= IDLE_PER_HOST) kill_later(h->tail);
    c->reused = true;
    c->got = 0;
    rt_h1_resp_init(&c->resp);
    c->prev = NULL;
    c->next = h->head;
    if (h->head) h->head->prev = c;
    else h->tail = c;
    h->head = c;
    h->idle++;
    c->idle = true;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, secs);
    return true;
}

static ka_conn *take_idle(ka_host *h) {
    ka_conn *c = h->head;
    if (!c) return NULL;
    idle_unlink(c);
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    return c;
}

/* ---- a request's life ------------------------------------------------------------------------ */

static void req_free(rt_ka_req *k) {
    acc_buf_free(&k->out);
    free(k);
}

/* The end, reported once; k is gone after. */
static void finish(rt_ka_req *k, int result, const char *msg) {
    rt_ka_hooks h = k->hooks;
    req_free(k);
    h.on_end(h.ud, result, msg);
}

static void attach(rt_ka_req *k, ka_conn *c) {
    c->req = k;
    k->conn = c;
    k->sent = 0;
}

static rt_ka_req *detach(ka_conn *c) {
    rt_ka_req *k = c->req;
    c->req = NULL;
    if (k) k->conn = NULL;
    return k;
}

/* Sends what the kernel takes of data[*off, len), and asks for POLLOUT if some is left. -1: the
 * connection failed. */
static int send_some(ka_conn *c, const char *data, size_t len, size_t *off) {
    int fd = lws_get_socket_fd(c->wsi);
    while (*off < len) {
        ssize_t n = send(fd, data + *off, len - *off, MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            lws_callback_on_writable(c->wsi);
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

/* ---- https ------------------------------------------------------------------------------------- */

static SSL_CTX *tls_context(acc_err *err) {
    if (pool.tls) return pool.tls;
    SSL_CTX *x = SSL_CTX_new(TLS_client_method());
    if (!x || !SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION) || !SSL_CTX_set_default_verify_paths(x)) {
        SSL_CTX_free(x);
        acc_fail(err, ACC_EUPSTREAM, "cannot set up TLS (OpenSSL: %s)", ERR_reason_error_string(ERR_get_error()));
        return NULL;
    }
    SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
    pool.tls = x;
    return x;
}

/* Records why c's TLS failed (the close reports it): the certificate's verdict, or OpenSSL's. */
static void tls_failed(ka_conn *c, const char *name, int rc) {
    long v = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK)
        snprintf(c->why, sizeof c->why, "the certificate of %.60s is not accepted (%s)", name,
                 X509_verify_cert_error_string(v));
    else if (e)
        snprintf(c->why, sizeof c->why, "TLS with %.60s failed (%s)", name, ERR_reason_error_string(e));
    else
        snprintf(c->why, sizeof c->why, "TLS with %.60s failed (error %d)", name, SSL_get_error(c->ssl, rc));
    ERR_clear_error();
}

/* The name c's TLS checks and reports: its request's host. */
static const char *peer_name(const ka_conn *c) { return c->req ? c->req->name : "the upstream"; }

/* c's TLS session, once its socket is connected. */
static int tls_open(ka_conn *c, const char *name) {
    acc_err e = {0};
    SSL_CTX *x = tls_context(&e);
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    c->ssl = x && r && w ? SSL_new(x) : NULL;
    if (!c->ssl) {
        BIO_free(r);
        BIO_free(w);
        snprintf(c->why, sizeof c->why, "%s", x ? "out of memory for TLS" : e.msg);
        return -1;
    }
    SSL_set_bio(c->ssl, r, w);
    SSL_set_connect_state(c->ssl);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_set_alpn_protos(c->ssl, alpn, sizeof alpn - 1);
    struct in6_addr ip;
    bool literal = inet_pton(AF_INET, name, &ip) == 1 || inet_pton(AF_INET6, name, &ip) == 1;
    bool ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) == 1
                      : SSL_set_tlsext_host_name(c->ssl, name) == 1 && SSL_set1_host(c->ssl, name) == 1;
    if (!ok) {
        snprintf(c->why, sizeof c->why, "cannot check a certificate for the name %.60s", name);
        return -1;
    }
    return 0;
}

/* Sends the ciphertext TLS has made (and what waited before it). */
static int wire_flush(ka_conn *c) {
    BIO *w = SSL_get_wbio(c->ssl);
    if (c->wire_off == c->wire.len) { /* all sent: a large request's room is not kept while idle */
        if (c->wire.cap > WIRE_KEEP) acc_buf_free(&c->wire);
        acc_buf_reset(&c->wire);
        c->wire_off = 0;
    }
    for (;;) {
        size_t pending = BIO_ctrl_pending(w);
        if (!pending) break;
        if (pending > INT_MAX) pending = INT_MAX;
        char *to = acc_buf_reserve(&c->wire, pending);
        if (!to) return -1;
        int n = BIO_read(w, to, (int)pending);
        if (n <= 0) break;
        acc_buf_commit(&c->wire, (size_t)n);
    }
    return send_some(c, c->wire.data, c->wire.len, &c->wire_off);
}

/* Moves an https connection along: the handshake, then the request, then whatever ciphertext
 * is waiting. */
static int tls_progress(ka_conn *c) {
    rt_ka_req *k = c->req;
    if (!c->ssl && tls_open(c, peer_name(c)) < 0) return -1;
    ERR_clear_error();
    if (!c->ready) {
        int rc = SSL_do_handshake(c->ssl);
        if (rc == 1) {
            c->ready = true;
        } else if (SSL_get_error(c->ssl, rc) != SSL_ERROR_WANT_READ) {
            tls_failed(c, peer_name(c), rc);
            wire_flush(c); /* the alert, if any */
            return -1;
        }
    }
    if (c->ready && k && k->sent < k->out.len) { /* into memory: taken whole */
        size_t n = k->out.len - k->sent;
        int rc = SSL_write(c->ssl, k->out.data + k->sent, (int)(n > INT_MAX ? INT_MAX : n));
        if (rc <= 0) {
            tls_failed(c, k->name, rc);
            return -1;
        }
        k->sent += (size_t)rc;
    }
    return wire_flush(c);
}

/* Sends what the kernel takes of c's request (through TLS for https). -1: the connection
 * failed. */
static int send_request(ka_conn *c) {
    if (c->tls) return tls_progress(c);
    return c->req ? send_some(c, c->req->out.data, c->req->out.len, &c->req->sent) : 0;
}

/* The whole request has left (not only into TLS). */
static bool request_gone(const ka_conn *c) {
    return c->req->sent == c->req->out.len && c->wire_off == c->wire.len;
}

static void conn_free(ka_conn *c) {
    SSL_free(c->ssl);
    acc_buf_free(&c->wire);
    free(c);
}

/* Outside c's callbacks: a failed send closes it, and its close decides what the request does. */
static void send_now(ka_conn *c) {
    if (send_request(c) < 0) {
        c->closing = true;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

static int to_sockaddr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

/* A new connection for k: connect() started, the socket handed to lws, the request sent as soon
 * as it is connected. */
static int open_conn(rt_ka_req *k, acc_err *err) {
    struct sockaddr_storage ss;
    socklen_t sl;
    if (to_sockaddr(k->addr, k->port, &ss, &sl))
        return acc_fail(err, ACC_EUPSTREAM, "cannot reach %s: %s is not an address", k->name, k->addr);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return acc_fail(err, ACC_EUPSTREAM, "cannot reach %s: %s", k->name, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (struct sockaddr *)&ss, sl);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return acc_fail(err, ACC_EUPSTREAM, "cannot reach %s: %s", k->name, strerror(e));
    }
    ka_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return acc_fail(err, ACC_ENOMEM, "out of memory");
    }
    c->host = k->host;
    c->tls = k->tls;
    c->connecting = rc < 0;
    c->adopting = true;
    rt_h1_resp_init(&c->resp);
    lws_adopt_desc_t ad = {.vh = k->net->vh, .type = LWS_ADOPT_SOCKET, .vh_prot_name = "accrue-client", .opaque = c};
    ad.fd.sockfd = fd;
    c->wsi = lws_adopt_descriptor_vhost_via_info(&ad); /* closes fd when it fails */
    c->adopting = false;
    if (!c->wsi) {
        free(c); /* its RAW_CLOSE, if lws called it, left it to us */
        return acc_fail(err, ACC_EUPSTREAM, "cannot reach %s: the loop took no more sockets", k->name);
    }
    atomic_fetch_add(&k->net->upstream_connects, 1);
    attach(k, c);
    if (c->connecting) {
        lws_rx_flow_control(c->wsi, 0);
        lws_callback_on_writable(c->wsi);
    } else {
        send_now(c);
    }
    return ACC_OK;
}

static void on_retry(rt_server *srv, rt_event *ev) {
    rt_ka_req *k = (rt_ka_req *)ev;
    (void)srv;
    k->retry_queued = false;
    if (k->aborted) {
        req_free(k);
        return;
    }
    if (pool.down) { /* the loop is closing: no new connection */
        finish(k, ACC_EUPSTREAM, "the upstream connection closed while shutting down");
        return;
    }
    acc_err e = {0};
    if (open_conn(k, &e) != ACC_OK) finish(k, ACC_EUPSTREAM, e.msg);
}

/* c's connection closed under its request before the response was complete (or with a body that
 * ends at the close): the request ends, or goes again once. */
static void lost(ka_conn *c, int soerr) {
    rt_ka_req *k = detach(c);
    char msg[ACC_ERR_MSG_SIZE];
    if (c->connecting) {
        snprintf(msg, sizeof msg, "cannot reach %s: %s", k->name, soerr ? strerror(soerr) : "the connection failed");
    } else if (c->why[0]) {
        snprintf(msg, sizeof msg, "cannot reach %s: %s", k->name, c->why);
    } else if (c->got == 0 && c->reused && !k->retried && !pool.down) {
        k->retried = true;
        k->retry_queued = true;
        atomic_fetch_add(&k->net->upstream_retries, 1);
        rt_net_post(k->net, &k->retry_ev);
        return;
    } else if (c->got == 0) {
        snprintf(msg, sizeof msg, "%s closed the connection without answering", k->name);
    } else {
        acc_err e = {0};
        if (rt_h1_eof(&c->resp, &e) == RT_H1_DONE) {
            finish(k, ACC_OK, NULL);
            return;
        }
        snprintf(msg, sizeof msg, "%s closed the connection before the answer was complete (%s)", k->name, e.msg);
    }
    finish(k, ACC_EUPSTREAM, msg);
}

rt_ka_req *rt_ka_start(const rt_ka_target *t, const rt_ka_hooks *hooks, acc_err *err) {
    rt_ka_req *k = calloc(1, sizeof *k);
    if (!k) {
        acc_fail(err, ACC_ENOMEM, "out of memory");
        return NULL;
    }
    k->retry_ev.fn = on_retry;
    k->net = t->net;
    k->hooks = *hooks;
    k->port = t->port;
    snprintf(k->addr, sizeof k->addr, "%s", t->addr);
    snprintf(k->name, sizeof k->name, "%s", t->host);
    k->tls = t->tls;
    int rc = rt_h1_write_request(&k->out, t->method, t->host, t->port, t->path, t->content_type, t->bearer,
                                 t->body, t->body_len, err);
    if (rc == ACC_OK && k->tls && !tls_context(err)) rc = ACC_EUPSTREAM;
    if (rc == ACC_OK && !(k->host = host_of(k))) rc = acc_fail(err, ACC_ENOMEM, "out of memory");
    if (rc == ACC_OK) {
        ka_conn *c = take_idle(k->host);
        if (c) {
            attach(k, c);
            send_now(c);
        } else {
            rc = open_conn(k, err);
        }
    }
    if (rc != ACC_OK) {
        req_free(k);
        return NULL;
    }
    return k;
}

void rt_ka_abort(rt_ka_req *k) {
    if (!k) return;
    ka_conn *c = k->conn;
    if (c) {
        detach(c);
        kill_later(c);
    }
    if (k->retry_queued) k->aborted = true; /* on_retry frees it */
    else req_free(k);
}

/* ---- the sockets' callbacks ------------------------------------------------------------------- */

static int sink_head(void *ud, int status) {
    ka_conn *c = ud;
    rt_ka_req *k = c->req;
    return k->hooks.on_status ? k->hooks.on_status(k->hooks.ud, status) : 0;
}

static int sink_body(void *ud, const char *data, size_t len) {
    ka_conn *c = ud;
    rt_ka_req *k = c->req;
    return k->hooks.on_data ? k->hooks.on_data(k->hooks.ud, data, len) : 0;
}

/* Response bytes: parsed; at the response's end the request finishes and the connection is
 * parked or closed. Returns -1 to close. */
static int on_rx(ka_conn *c, const char *in, size_t len) {
    if (!c->req) return -1; /* bytes on an idle connection (or its close): not an answer to us */
    c->got += len;
    size_t used = 0;
    acc_err e = {0};
    rt_h1_sink sink = {.ud = c, .on_head = sink_head, .on_body = sink_body};
    int rc = rt_h1_feed(&c->resp, in, len, &used, &sink, &e);
    if (!c->req || rc == RT_H1_STOPPED) return -1; /* the owner ended it from a hook */
    if (rc < 0) {
        rt_ka_req *k = detach(c);
        char msg[ACC_ERR_MSG_SIZE];
        snprintf(msg, sizeof msg, "%s sent a malformed response: %s", k->name, e.msg);
        finish(k, ACC_EUPSTREAM, msg);
        return -1;
    }
    if (rc != RT_H1_DONE) return 0;
    /* Bytes past the response's end, or an answer before the whole request went: not reusable. */
    bool clean = used == len && request_gone(c);
    rt_ka_req *k = detach(c);
    bool parked = clean && rt_h1_reusable(&c->resp) && park(c, c->resp.keep_alive_s);
    finish(k, ACC_OK, NULL);
    return parked ? 0 : -1;
}

/* https: ciphertext in, the answer's bytes out to on_rx. Session tickets on an idle connection
 * yield no bytes and keep it. */
static int on_tls_rx(ka_conn *c, const char *in, size_t len) {
    if (!c->ssl || BIO_write(SSL_get_rbio(c->ssl), in, (int)len) != (int)len) return -1;
    if (!c->ready) {
        if (tls_progress(c) < 0) return -1;
        if (!c->ready) return 0; /* more of the handshake to come */
    }
    char buf[16384];
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, sizeof buf);
        if (n > 0) {
            if (on_rx(c, buf, (size_t)n) < 0) return -1;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e != SSL_ERROR_ZERO_RETURN) tls_failed(c, peer_name(c), n);
        return -1; /* closed (close_notify) or broken: the close decides */
    }
    return wire_flush(c);
}

/* Acknowledges what arrived at once, not after the delayed-ACK timer (40 ms). An upstream that
 * writes its answer's head and body apart with Nagle on (Python's http.server does) sends the
 * body only once the head is acknowledged; on a kept-alive connection, where request and answer
 * take turns, Linux delays that ACK, and every call waited 44 ms (a fresh connection starts in
 * quick-ACK mode, which is why connecting per call never showed it). Quick-ACK mode lasts a few
 * segments, so it is asked again after each read. */
static void quick_ack(struct lws *wsi) {
    int one = 1;
    setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

int rt_ka_callback(struct lws *wsi, enum lws_callback_reasons reason, void *in, size_t len) {
    ka_conn *c = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX:
        if (!c) return -1;
        quick_ack(wsi);
        return c->tls ? on_tls_rx(c, in, len) : on_rx(c, in, len);
    case LWS_CALLBACK_RAW_WRITEABLE: {
        if (!c) return 0;
        if (!c->connecting) return send_request(c); /* the rest of the request */
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            c->soerr = soerr; /* the close reports it */
            return -1;
        }
        c->connecting = false;
        lws_rx_flow_control(wsi, 1);
        if (!c->req) return -1; /* its request ended while it connected */
        return send_request(c);
    }
    case LWS_CALLBACK_RAW_CLOSE: {
        if (!c) return 0;
        lws_set_opaque_user_data(wsi, NULL);
        c->wsi = NULL;
        if (c->adopting) return 0; /* open_conn frees it */
        if (c->idle) idle_unlink(c);
        if (c->req) {
            int soerr = c->soerr;
            socklen_t sl = sizeof soerr;
            if (c->connecting && !soerr) getsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_ERROR, &soerr, &sl);
            lost(c, soerr);
        }
        conn_free(c);
        return 0;
    }
    default:
        return 0;
    }
}

/* ---- with the loop ------------------------------------------------------------------------------ */

void rt_ka_init(void) { memset(&pool, 0, sizeof pool); }

void rt_ka_tls_warm(void) {
    acc_err e = {0};
    if (!tls_context(&e)) ERR_clear_error(); /* the first https call reports it */
}

void rt_ka_shutdown(void) {
    pool.down = true;
    rt_map_entry *e;
    for (size_t i = 0; rt_map_next(&pool.hosts, &i, &e);) {
        ka_host *h = e->value;
        while (h->head) { /* the loop still runs (accrue run): close them now */
            ka_conn *c = h->head;
            idle_unlink(c);
            c->closing = true;
            if (c->wsi) lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC); /* frees c */
            else conn_free(c);
        }
        free(h);
    }
    rt_map_free(&pool.hosts);
    SSL_CTX_free(pool.tls); /* connections still closing hold their own reference */
    pool.tls = NULL;
}
