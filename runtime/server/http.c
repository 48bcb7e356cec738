/*
 * http.c: HTTP requests on the loop: reading them, routing them, answering them.
 *
 * Every request on the vhost reaches the "accrue" protocol (there are no lws mounts): a route of
 * the table in api.c when one matches, else, for GET, a file of the web page's folder, else a
 * JSON 404 (or 405 naming the methods the path takes). Bodies are collected up to
 * cfg.max_body; a larger declared Content-Length is refused before a byte is read.
 *
 * A response is written in one piece: the status line, the headers and the body go to one
 * lws_write, so no request waits on the delayed-ACK interaction that separate writes of headers
 * and body ran into here (about 40 ms per request on loopback). A handler may answer at once or
 * later (a model call in flight): the request then stays until rt_respond is called, and if the
 * client leaves first the handler's operation is told through op_gone.
 *
 * An answer made at once is written by the callback that made it. One made later (from the inbox:
 * a worker's or the ledger's answer) is queued and written by rt_http_flush after the drain, the
 * way WebSocket frames are (wsconn.c): asking lws for a writable callback instead costs, on the
 * libuv loop, an epoll_ctl DEL and ADD to turn POLLOUT on, a pass of the loop, and the same again
 * to turn it off. Only a socket that lws still holds part of a write for, or a connection whose own
 * callback is running, waits for the writable callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/server/internal.h"

/* ---- status mapping ------------------------------------------------------------------------- */

unsigned rt_status_http(int code) {
    switch (code) {
    case ACC_OK: return 200;
    case ACC_EINVAL: return 400;
    case ACC_EPERM: return 403;
    case ACC_EBADSIG: return 400;
    case ACC_EMISMATCH: return 400;
    case ACC_ENOTFOUND: return 404;
    case ACC_EEXIST: return 409;
    case ACC_EMISUSE: return 409;
    case ACC_ELIMIT: return 429;
    case ACC_EFUNDS: return 402;
    case ACC_EBUSY: return 503;
    case ACC_ESCRIPT: return 422;
    case ACC_ECANCELLED: return 499;
    case ACC_ETIMEOUT: return 504;
    case ACC_EUPSTREAM: return 502;
    case ACC_EVERSION: return 500;
    default: return 500;
    }
}

const char *rt_status_code_name(int code) {
    switch (code) {
    case ACC_EINVAL: return "bad_request";
    case ACC_EPERM: return "unauthorized";
    case ACC_EBADSIG: return "bad_signature";
    case ACC_EMISMATCH: return "mismatch";
    case ACC_ENOTFOUND: return "not_found";
    case ACC_EEXIST: return "conflict";
    case ACC_EMISUSE: return "conflict";
    case ACC_ELIMIT: return "limit_exceeded";
    case ACC_EFUNDS: return "insufficient_funds";
    case ACC_EBUSY: return "unavailable";
    case ACC_ESCRIPT: return "agent_error";
    case ACC_ECANCELLED: return "cancelled";
    case ACC_ETIMEOUT: return "timeout";
    case ACC_EUPSTREAM: return "upstream_error";
    default: return "internal";
    }
}

/* ---- the request ------------------------------------------------------------------------------ */

static void req_free(rt_req *r) {
    if (!r) return;
    rt_wq_remove(&r->srv->http_flush, &r->flush);
    if (r->op && r->op_gone) r->op_gone(r->op);
    acc_buf_free(&r->body);
    acc_buf_free(&r->sse_queue);
    free(r->query);
    free(r->out);
    free(r);
}

/* Detaches the request from its connection: the client went, or the transaction ended. */
static void req_detach(rt_conn *conn) {
    rt_req *r = conn->req;
    if (!r) return;
    conn->req = NULL;
    r->wsi = NULL;
    req_free(r);
}

static int method_of(int lws_method) {
    switch (lws_method) {
    case LWSHUMETH_GET: return RT_GET;
    case LWSHUMETH_POST: return RT_POST;
    case LWSHUMETH_PUT: return RT_PUT;
    case LWSHUMETH_DELETE: return RT_DELETE;
    case LWSHUMETH_PATCH: return RT_PATCH;
    case LWSHUMETH_OPTIONS: return RT_OPTIONS;
    case LWSHUMETH_HEAD: return RT_HEAD;
    default: return 0;
    }
}

bool rt_req_query(const rt_req *r, const char *name, char *out, size_t outlen) {
    if (!r->query || !outlen) return false;
    size_t nlen = strlen(name);
    /* r->query holds the arguments lws decoded, "name=value" each, NUL-separated. */
    for (const char *p = r->query; p < r->query + r->query_len; p += strlen(p) + 1) {
        if (strncmp(p, name, nlen) != 0 || (p[nlen] != '=' && p[nlen] != 0)) continue;
        snprintf(out, outlen, "%s", p[nlen] ? p + nlen + 1 : "");
        return true;
    }
    return false;
}

/* ---- responses ---------------------------------------------------------------------------------- */

/* Queues r for rt_http_flush (the writes of the loop's next drain). */
static void request_write(rt_req *r) {
    if (r->wsi) rt_wq_push(&r->srv->http_flush, &r->flush);
}

/* Writes r->out (headers and body) in one lws_write and ends the transaction. Returns what the
 * lws callback must return. */
static int write_out(rt_req *r) {
    struct lws *wsi = r->wsi;
    int n = lws_write(wsi, r->out + LWS_PRE, r->out_len, LWS_WRITE_HTTP_FINAL);
    free(r->out);
    r->out = NULL;
    if (n < (int)r->out_len) return -1;
    rt_conn *conn = lws_wsi_user(wsi);
    if (conn && conn->req == r) req_detach(conn);
    if (lws_http_transaction_completed(wsi)) return -1;
    return 0;
}

void rt_respond(rt_req *r, unsigned status, const char *content_type, const char *body, size_t len,
                const char *extra_headers) {
    if (r->responded) return;
    r->responded = true;
    rt_server *srv = r->srv;
    atomic_fetch_add(&srv->m.http_requests, 1);
    if (status >= 400) atomic_fetch_add(&srv->m.http_errors, 1);
    if (!r->wsi) return;
    size_t hdr_room = 1024 + (extra_headers ? strlen(extra_headers) * 2 : 0);
    r->out = malloc(LWS_PRE + hdr_room + len);
    if (!r->out) {
        lws_callback_on_writable(r->wsi); /* the writable callback finds nothing and closes */
        return;
    }
    unsigned char *start = r->out + LWS_PRE, *p = start, *end = start + hdr_room;
    bool ok = !lws_add_http_common_headers(r->wsi, status, content_type, len, &p, end);
    ok = ok && !lws_add_http_header_by_name(r->wsi, (const unsigned char *)"x-request-id:",
                                            (const unsigned char *)r->request_id, (int)strlen(r->request_id), &p, end);
    if (ok && extra_headers) { /* "Name: value\r\n" lines */
        for (const char *h = extra_headers; *h && ok;) {
            const char *eol = strstr(h, "\r\n");
            size_t linelen = eol ? (size_t)(eol - h) : strlen(h);
            const char *colon = memchr(h, ':', linelen);
            if (colon) {
                char name[64];
                size_t nl = (size_t)(colon - h) + 1;
                if (nl < sizeof name) {
                    memcpy(name, h, nl);
                    name[nl] = 0;
                    const char *v = colon + 1;
                    while (*v == ' ') v++;
                    ok = !lws_add_http_header_by_name(r->wsi, (unsigned char *)name, (const unsigned char *)v,
                                                      (int)(linelen - (size_t)(v - h)), &p, end);
                }
            }
            h += linelen + (eol ? 2 : 0);
        }
    }
    ok = ok && !lws_finalize_http_header(r->wsi, &p, end);
    if (!ok) {
        free(r->out);
        r->out = NULL;
        lws_callback_on_writable(r->wsi);
        return;
    }
    if (len) memcpy(p, body, len);
    r->out_len = (size_t)(p - start) + len;
    request_write(r); /* or, answered in its own callback, written there (rt_http_callback) */
}

void rt_respond_json(rt_req *r, unsigned status, const acc_buf *json) {
    if (acc_buf_failed(json)) {
        rt_respond_error(r, 500, "internal", "out of memory building the response");
        return;
    }
    rt_respond(r, status, "application/json", json->data ? json->data : "", json->len, NULL);
}

void rt_error_json(acc_buf *b, const char *code, const char *msg) {
    acc_buf_puts(b, "{\"error\":{\"code\":");
    rt_json_cstr(b, code);
    acc_buf_puts(b, ",\"message\":");
    rt_json_cstr(b, msg);
    acc_buf_puts(b, "}}");
}

void rt_respond_error(rt_req *r, unsigned status, const char *code, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    acc_buf b = ACC_BUF_INIT;
    rt_error_json(&b, code, msg);
    if (acc_buf_failed(&b)) rt_respond(r, 500, "application/json", "{}", 2, NULL);
    else rt_respond(r, status, "application/json", b.data, b.len, NULL);
    acc_buf_free(&b);
}

/* ---- server-sent events ------------------------------------------------------------------------- */

void rt_sse_start(rt_req *r, const char *extra_headers) {
    (void)extra_headers;
    if (r->responded) return;
    r->responded = true;
    r->sse = true;
    atomic_fetch_add(&r->srv->m.http_requests, 1);
    request_write(r);
}

void rt_sse_send(rt_req *r, const char *data, size_t len) {
    acc_buf_append(&r->sse_queue, "data: ", 6);
    acc_buf_append(&r->sse_queue, data, len);
    acc_buf_append(&r->sse_queue, "\n\n", 2);
    request_write(r);
}

void rt_sse_end(rt_req *r) {
    r->sse_done = true;
    request_write(r);
}

/* The SSE stream's writable callback: headers first (no length: the connection closes at the
 * end), then whatever events are queued, in one write. */
static int sse_writable(rt_req *r) {
    struct lws *wsi = r->wsi;
    if (!r->sse_headers_sent) {
        unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
        if (lws_add_http_common_headers(wsi, 200, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                        (const unsigned char *)"no-cache", 8, &p, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"x-request-id:",
                                        (const unsigned char *)r->request_id, (int)strlen(r->request_id), &p,
                                        end) ||
            lws_finalize_http_header(wsi, &p, end))
            return -1;
        /* Headers and the first events in one piece when events are ready already. */
        size_t hlen = (size_t)(p - start);
        size_t n = r->sse_queue.len;
        unsigned char *out = malloc(LWS_PRE + hlen + n);
        if (!out) return -1;
        memcpy(out + LWS_PRE, start, hlen);
        if (n) memcpy(out + LWS_PRE + hlen, r->sse_queue.data, n);
        acc_buf_reset(&r->sse_queue);
        int w = lws_write(wsi, out + LWS_PRE, hlen + n, LWS_WRITE_HTTP);
        free(out);
        if (w < (int)(hlen + n)) return -1;
        r->sse_headers_sent = true;
        lws_http_mark_sse(wsi);
    } else if (r->sse_queue.len) {
        size_t n = r->sse_queue.len;
        unsigned char *out = malloc(LWS_PRE + n);
        if (!out) return -1;
        memcpy(out + LWS_PRE, r->sse_queue.data, n);
        acc_buf_reset(&r->sse_queue);
        int w = lws_write(wsi, out + LWS_PRE, n, LWS_WRITE_HTTP);
        free(out);
        if (w < (int)n) return -1;
    }
    if (r->sse_done && !r->sse_queue.len) {
        /* No Content-Length was sent: the end of the stream is the end of the connection. */
        if (lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        return -1;
    }
    return 0;
}

void rt_http_flush(rt_server *srv) {
    for (rt_wq_link *n; (n = rt_wq_pop(&srv->http_flush));) {
        rt_req *r = (rt_req *)(void *)((char *)n - offsetof(rt_req, flush));
        struct lws *wsi = r->wsi;
        if (!wsi || (!r->sse && !r->out)) continue; /* gone, or written already */
        if (wsi == srv->http_cb_wsi || lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi); /* written from lws's callback, after the one running */
            continue;
        }
        /* r may be freed by the write (its transaction over): only wsi is used after it */
        if ((r->sse ? sse_writable(r) : write_out(r)) < 0) lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

/* ---- static files ---------------------------------------------------------------------------------- */

static const char *mime_of(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".json", "application/json"},
        {".svg", "image/svg+xml"},             {".png", "image/png"},
        {".ico", "image/x-icon"},              {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},              {".map", "application/json"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return "application/octet-stream";
}

/* A file of the web page's folder, or a JSON 404. Paths with "..", hidden names or anything but
 * plain characters are refused. Small files go out in one piece like any response. */
static int serve_file(rt_req *r) {
    rt_server *srv = r->srv;
    const char *rel = r->path + 1;
    if (!*rel) rel = "index.html";
    bool ok = srv->cfg.web_dir != NULL;
    for (const char *p = rel; ok && *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.' || c == '/'))
            ok = false;
        if ((p == rel || p[-1] == '/') && c == '.') ok = false; /* "..", hidden files */
    }
    char full[PATH_MAX];
    struct stat st;
    if (ok) {
        int n = snprintf(full, sizeof full, "%s/%s", srv->cfg.web_dir, rel);
        ok = n > 0 && (size_t)n < sizeof full && stat(full, &st) == 0;
        if (ok && S_ISDIR(st.st_mode)) {
            n = snprintf(full, sizeof full, "%s/%s/index.html", srv->cfg.web_dir, rel);
            ok = n > 0 && (size_t)n < sizeof full && stat(full, &st) == 0;
        }
        ok = ok && S_ISREG(st.st_mode) && st.st_size <= (off_t)(16 << 20);
    }
    if (!ok) {
        rt_respond_error(r, 404, "not_found", "no route or file at %s", r->path);
        return 0;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    char *data = fd >= 0 ? malloc((size_t)st.st_size + 1) : NULL;
    size_t got = 0;
    while (data && got < (size_t)st.st_size) {
        ssize_t k = read(fd, data + got, (size_t)st.st_size - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    if (fd >= 0) close(fd);
    if (!data || got != (size_t)st.st_size) {
        free(data);
        rt_respond_error(r, 500, "internal", "cannot read %s", r->path);
        return 0;
    }
    rt_respond(r, 200, mime_of(full), data, got, "cache-control: no-cache\r\n");
    free(data);
    return 0;
}

/* ---- routing ------------------------------------------------------------------------------------- */

/* Matches path against pattern, filling r->params: "{}" is one path segment (up to '/' or ':'),
 * "{+}" one or more (a registry name may hold '/') and must end the pattern or be followed by a
 * ":verb" suffix; names never hold ':', so "/v1/datanets/{+}:query" and "/v1/datanets/{+}" cannot
 * both match one path. */
static bool match(rt_req *r, const char *pattern, const char *path) {
    int np = 0;
    while (*pattern) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t n = strcspn(path, "/:");
            if (n == 0 || n >= sizeof r->params[0] || np >= RT_MAX_PARAMS) return false;
            memcpy(r->params[np], path, n);
            r->params[np++][n] = 0;
            path += n;
            pattern += 2;
            continue;
        }
        if (pattern[0] == '{' && pattern[1] == '+' && pattern[2] == '}') {
            const char *rest = pattern + 3;
            size_t rl = strlen(rest), pl = strlen(path);
            if (pl <= rl || strcmp(path + pl - rl, rest) != 0) return false;
            size_t n = pl - rl;
            if (n >= sizeof r->params[0] || memchr(path, ':', n) || np >= RT_MAX_PARAMS) return false;
            memcpy(r->params[np], path, n);
            r->params[np++][n] = 0;
            return true;
        }
        if (*pattern != *path) return false;
        pattern++, path++;
    }
    return !*path;
}

static const char *method_names(int methods, char *out, size_t n) {
    static const char *names[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"};
    out[0] = 0;
    for (int i = 0; i < 7; i++)
        if (methods & (1 << i)) {
            if (out[0]) strncat(out, ", ", n - strlen(out) - 1);
            strncat(out, names[i], n - strlen(out) - 1);
        }
    return out;
}

/* The route for the request, or NULL after answering 404 or 405 (a GET outside /v1/ is a file of
 * the web page, served here too). */
static const rt_route *route(rt_req *r) {
    int allowed = 0;
    for (size_t i = 0; i < rt_nroutes; i++) {
        const rt_route *rt = &rt_routes[i];
        if (!match(r, rt->pattern, r->path)) continue;
        if (rt->methods & r->method) return rt;
        allowed |= rt->methods;
    }
    if (allowed) {
        char names[64], hdr[96];
        method_names(allowed, names, sizeof names);
        snprintf(hdr, sizeof hdr, "allow: %s\r\n", names);
        char msg[700];
        int n = snprintf(msg, sizeof msg,
                         "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"%s takes %s, not this method\"}}",
                         r->path, names);
        rt_respond(r, 405, "application/json", msg, (size_t)n, hdr);
        return NULL;
    }
    if (r->method == RT_GET && strncmp(r->path, "/v1/", 4) != 0) serve_file(r);
    else rt_respond_error(r, 404, "not_found", "no route %s", r->path);
    return NULL;
}

int rt_req_auth(rt_req *r, rt_principal *who, bool admin_only) {
    if (!r->auth[0]) {
        rt_respond_error(r, 401, "unauthorized", "no API key: send \"Authorization: Bearer KEY\"");
        return ACC_EPERM;
    }
    acc_err err = {0};
    if (rt_auth_key(r->srv, r->auth, strlen(r->auth), who, &err) != ACC_OK) {
        rt_respond_error(r, 401, "unauthorized", "%s", err.msg);
        return ACC_EPERM;
    }
    if (admin_only && !who->admin) {
        rt_respond_error(r, 403, "forbidden", "this call needs the admin key");
        return ACC_EPERM;
    }
    return ACC_OK;
}

/* ---- the lws callback ------------------------------------------------------------------------------ */

static int begin(struct lws *wsi, rt_conn *conn, rt_server *srv) {
    req_detach(conn); /* a previous transaction's leftovers */
    rt_req *r = calloc(1, sizeof *r);
    if (!r) return -1;
    r->srv = srv;
    r->wsi = wsi;
    r->start_ns = rt_now_ns();
    conn->req = r;
    char *uri = NULL;
    int ulen = 0;
    int m = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    r->method = method_of(m);
    if (!uri || ulen <= 0 || (size_t)ulen >= sizeof r->path) {
        snprintf(r->request_id, sizeof r->request_id, "req_%016" PRIx64, rt_now_ns());
        rt_respond_error(r, 414, "bad_request", "the request path is missing or longer than %zu bytes",
                         sizeof r->path - 1);
        return 0;
    }
    memcpy(r->path, uri, (size_t)ulen);
    r->path[ulen] = 0;
    int qlen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (qlen > 0) {
        /* lws keeps the arguments as decoded fragments; keep them NUL-separated. */
        acc_buf q = ACC_BUF_INIT;
        char frag[1024];
        for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++)
            acc_buf_append(&q, frag, strlen(frag) + 1);
        r->query = acc_buf_take(&q, &r->query_len);
    }
    char buf[256];
    int n = lws_hdr_custom_copy(wsi, buf, sizeof buf, "x-request-id:", 13);
    bool id_ok = n > 0 && n <= 64;
    for (int i = 0; id_ok && i < n; i++)
        if (buf[i] < 0x21 || buf[i] > 0x7e) id_ok = false;
    if (id_ok) snprintf(r->request_id, sizeof r->request_id, "%s", buf);
    else {
        char hex[33];
        rt_random_hex(hex, 12);
        snprintf(r->request_id, sizeof r->request_id, "req_%s", hex);
        r->request_id_made = true;
    }
    char auth[sizeof r->auth + 16];
    n = lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(auth, "Bearer ", 7) == 0) snprintf(r->auth, sizeof r->auth, "%s", auth + 7);

    if (srv->draining) {
        rt_respond_error(r, 503, "unavailable", "the server is shutting down");
        return 0;
    }
    if (!r->method) {
        rt_respond_error(r, 405, "method_not_allowed", "unsupported method");
        return 0;
    }
    r->route = route(r);
    if (!r->route) return 0; /* answered: 404, 405 or a file */
    if (r->method & (RT_POST | RT_PUT | RT_PATCH)) {
        char cl[32];
        if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
            rt_respond_error(r, 411, "bad_request", "a request body needs a Content-Length header");
            return 0;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno || *end || cl[0] == '-') {
            rt_respond_error(r, 400, "bad_request", "Content-Length is not a number");
            return 0;
        }
        if (srv->cfg.max_body && v > srv->cfg.max_body) {
            r->body_too_big = true;
            rt_respond_error(r, 413, "payload_too_large", "the body is %llu bytes; the limit is %" PRIu64, v,
                             srv->cfg.max_body);
            return 0;
        }
        return 0; /* the body follows; the handler runs at its completion */
    }
    r->dispatched = true; /* a body sent with a GET is read and dropped: the handler runs once */
    r->route->handler(r);
    return 0;
}

int rt_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    rt_conn *conn = user;
    rt_server *srv = lws_context_user(lws_get_context(wsi));
    rt_req *r = conn ? conn->req : NULL;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (!conn) return -1;
        if (begin(wsi, conn, srv)) return -1;
        r = conn->req;
        if (r && r->out) return write_out(r); /* answered at once: write now, in this callback */
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
        if (!r || r->responded) return 0;
        if (srv->cfg.max_body && r->body.len + len > srv->cfg.max_body) {
            r->body_too_big = true;
            return 0;
        }
        acc_buf_append(&r->body, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!r) return 0;
        if (!r->responded && !r->dispatched) {
            r->dispatched = true;
            if (r->body_too_big)
                rt_respond_error(r, 413, "payload_too_large", "the body is over %" PRIu64 " bytes", srv->cfg.max_body);
            else if (acc_buf_failed(&r->body))
                rt_respond_error(r, 503, "unavailable", "out of memory reading the body");
            else
                r->route->handler(r);
        }
        r = conn->req;
        if (r && r->out) return write_out(r);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!r) return 0;
        if (r->sse) return sse_writable(r);
        if (r->out) return write_out(r);
        if (r->responded) return -1; /* the response could not be built */
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (conn) req_detach(conn);
        return 0;
    default:
        return 0;
    }
}
