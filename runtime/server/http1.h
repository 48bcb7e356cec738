/*
 * http1.h: HTTP/1.1 as a client speaks it to a model endpoint (http1.c): a request written in one
 * piece, and a response parsed as its bytes arrive, for the kept-alive upstream connections
 * (keepalive.c). No I/O and no allocation: the caller reads the socket and feeds the bytes in.
 *
 * The parser reads a status line and headers (names case-insensitive; each head, 1xx ones too,
 * at most RT_H1_MAX_HEAD bytes, each line at most RT_H1_MAX_LINE), skips 1xx interim responses,
 * and frames the body by Transfer-Encoding: chunked (extensions and trailers read and ignored),
 * else Content-Length, else the connection's close (an HTTP/1.0-style body). 204 and 304 have
 * none. Body bytes go to the sink as they are found, without copying. When the response is
 * complete it says whether the connection may carry another request (HTTP/1.1 without
 * "Connection: close", HTTP/1.0 only with "Connection: keep-alive", and a body framed by its
 * length or chunks) and how long the server keeps it open (Keep-Alive: timeout=N).
 *
 * Anything malformed is an error with a message naming it (ACC_EUPSTREAM): the response is then
 * void and its connection must be closed.
 */
#ifndef ACCRUE_RUNTIME_SERVER_HTTP1_H
#define ACCRUE_RUNTIME_SERVER_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base/buf.h"
#include "runtime/base/status.h"

#define RT_H1_MAX_HEAD (32u << 10) /* a status line and its headers, or the trailers */
#define RT_H1_MAX_LINE (8u << 10)  /* one header, status, chunk-size or trailer line */

/* Appends a request: "METHOD PATH HTTP/1.1", Host (host, with :port unless 80; an IPv6 address in
 * brackets), Content-Type (with a body) and Content-Length (unless a GET without one),
 * "Authorization: Bearer KEY" when bearer is set, "Connection: keep-alive", then the body.
 * ACC_EINVAL when a field would break the request (a space or control character in the method,
 * path or host, a control character in the content type or key), ACC_ENOMEM. */
int rt_h1_write_request(acc_buf *out, const char *method, const char *host, int port, const char *path,
                        const char *content_type, const char *bearer, const char *body, size_t body_len,
                        acc_err *err);

/* What rt_h1_feed returns besides an error. */
enum { RT_H1_MORE = 0, RT_H1_DONE = 1, RT_H1_STOPPED = 2 };

typedef struct rt_h1_sink {
    void *ud;
    /* The final (non-1xx) status, once its headers are in; nonzero stops the parse. */
    int (*on_head)(void *ud, int status);
    /* Body bytes, de-chunked; nonzero stops the parse. */
    int (*on_body)(void *ud, const char *data, size_t len);
} rt_h1_sink;

typedef struct rt_h1_resp {
    int state;
    int status;
    bool http10, conn_close, conn_keep_alive, chunked, has_length, until_close;
    uint64_t left;         /* body bytes left: of the Content-Length, or of the current chunk */
    uint32_t keep_alive_s; /* Keep-Alive: timeout=N, 0 when the server named none */
    size_t head_len;       /* bytes of the head (or trailers) read so far */
    size_t line_len;       /* bytes of the line being read, in line[] */
    char line[RT_H1_MAX_LINE];
} rt_h1_resp;

/* Ready for a new response (each request on a connection starts one). */
void rt_h1_resp_init(rt_h1_resp *r);

/* Parses data[0..len): RT_H1_MORE (all used, the response goes on), RT_H1_DONE (the response is
 * complete; *used says how many bytes it took: more after it are not ours), RT_H1_STOPPED (a sink
 * hook returned nonzero; *used bytes were parsed), or ACC_EUPSTREAM with err naming the problem. */
int rt_h1_feed(rt_h1_resp *r, const char *data, size_t len, size_t *used, const rt_h1_sink *sink, acc_err *err);

/* The server closed the connection: RT_H1_DONE if that ends the response (a body read to the
 * close), else ACC_EUPSTREAM (err says what was missing). */
int rt_h1_eof(rt_h1_resp *r, acc_err *err);

/* After RT_H1_DONE: may the connection carry another request? */
bool rt_h1_reusable(const rt_h1_resp *r);

#endif
