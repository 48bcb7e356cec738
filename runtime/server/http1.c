/*
 * http1.c: the client's side of HTTP/1.1 (http1.h): a request written in one piece, and a
 * response parsed incrementally, by a state machine that keeps only the line it is reading.
 *
 * What the upstreams we talk to send (llama.cpp's server, vLLM behind uvicorn, Ollama, another
 * accrue serve, Python's http.server) decides what is accepted: CRLF or a bare LF at the end of a
 * line, 1xx interim responses (skipped), chunk extensions and trailers (read, ignored), HTTP/1.0
 * answers that end with the connection. What would make the body's end ambiguous is refused:
 * two different Content-Lengths, a transfer coding other than chunked, a header folded over two
 * lines (RFC 7230 3.2.4), a chunk whose data runs past its size. A body framed by both
 * Transfer-Encoding and Content-Length is read by its chunks and its connection not reused
 * (RFC 7230 3.3.3).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "runtime/base/invariant.h"
#include "runtime/server/http1.h"

enum { S_STATUS, S_HEADER, S_BODY_LEN, S_BODY_CLOSE, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_END, S_TRAILER, S_DONE };

/* ---- the request --------------------------------------------------------------------------- */

static bool has_ctl(const char *s, bool space_too) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || (space_too && *s == ' ')) return true;
    return false;
}

int rt_h1_write_request(acc_buf *out, const char *method, const char *host, int port, const char *path,
                        const char *content_type, const char *bearer, const char *body, size_t body_len,
                        acc_err *err) {
    if (has_ctl(method, true) || has_ctl(path, true) || has_ctl(host, true))
        return acc_fail(err, ACC_EINVAL, "the URL holds a space or a control character");
    if ((content_type && has_ctl(content_type, false)) || (bearer && has_ctl(bearer, false)))
        return acc_fail(err, ACC_EINVAL, "the API key or content type holds a control character");
    acc_buf_puts(out, method);
    acc_buf_putc(out, ' ');
    acc_buf_puts(out, path);
    acc_buf_puts(out, " HTTP/1.1\r\nHost: ");
    bool v6 = strchr(host, ':') != NULL;
    if (v6) acc_buf_putc(out, '[');
    acc_buf_puts(out, host);
    if (v6) acc_buf_putc(out, ']');
    if (port != 80) {
        acc_buf_putc(out, ':');
        acc_buf_put_u64(out, (unsigned long long)port);
    }
    acc_buf_puts(out, "\r\n");
    if (body_len || strcmp(method, "GET") != 0) {
        if (body_len && content_type) {
            acc_buf_puts(out, "Content-Type: ");
            acc_buf_puts(out, content_type);
            acc_buf_puts(out, "\r\n");
        }
        acc_buf_puts(out, "Content-Length: ");
        acc_buf_put_u64(out, (unsigned long long)body_len);
        acc_buf_puts(out, "\r\n");
    }
    if (bearer) {
        acc_buf_puts(out, "Authorization: Bearer ");
        acc_buf_puts(out, bearer);
        acc_buf_puts(out, "\r\n");
    }
    acc_buf_puts(out, "Connection: keep-alive\r\n\r\n");
    acc_buf_append(out, body, body_len);
    return acc_buf_failed(out) ? acc_fail(err, ACC_ENOMEM, "out of memory") : ACC_OK;
}

/* ---- the response ---------------------------------------------------------------------------- */

void rt_h1_resp_init(rt_h1_resp *r) {
    /* Everything but the line buffer, which line_len says is empty. */
    memset(r, 0, offsetof(rt_h1_resp, line));
    r->state = S_STATUS;
}

/* s[0..n) for a message: at most 60 characters, control and non-ASCII bytes as '?'. */
static const char *shown(char out[64], const char *s, size_t n) {
    size_t k = n < 60 ? n : 60;
    for (size_t i = 0; i < k; i++) out[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e ? '?' : s[i];
    out[k] = 0;
    return out;
}

/* Reads up to the end of a line into r->line. 1: a line is there (*s, *n, without its CR LF),
 * 0: data ran out first, <0: too long. head: the bytes count against RT_H1_MAX_HEAD. */
static int read_line(rt_h1_resp *r, const char *data, size_t len, size_t *i, const char *kind, bool head,
                     const char **s, size_t *n, acc_err *err) {
    const char *p = data + *i;
    size_t avail = len - *i;
    const char *nl = memchr(p, '\n', avail);
    size_t take = nl ? (size_t)(nl - p) + 1 : avail;
    if (r->line_len + take > RT_H1_MAX_LINE)
        return acc_fail(err, ACC_EUPSTREAM, "a %s line longer than %u KiB", kind, RT_H1_MAX_LINE >> 10);
    if (head && (r->head_len += take) > RT_H1_MAX_HEAD)
        return acc_fail(err, ACC_EUPSTREAM, "%s larger than %u KiB",
                        r->state == S_TRAILER ? "trailers" : "headers", RT_H1_MAX_HEAD >> 10);
    memcpy(r->line + r->line_len, p, take);
    r->line_len += take;
    *i += take;
    if (!nl) return 0;
    size_t k = r->line_len - 1;
    if (k && r->line[k - 1] == '\r') k--;
    *s = r->line;
    *n = k;
    r->line_len = 0;
    return 1;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_status(rt_h1_resp *r, const char *s, size_t n, acc_err *err) {
    char show[64];
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || !is_digit(s[7]) || s[8] != ' ' || !is_digit(s[9]) ||
        !is_digit(s[10]) || !is_digit(s[11]) || (n > 12 && s[12] != ' '))
        return acc_fail(err, ACC_EUPSTREAM, "a malformed status line \"%s\"", shown(show, s, n));
    int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (status < 100 || status > 599)
        return acc_fail(err, ACC_EUPSTREAM, "a malformed status line \"%s\"", shown(show, s, n));
    r->status = status;
    r->http10 = s[7] == '0';
    return ACC_OK;
}

/* RFC 7230 tchar */
static bool is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit((char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool name_is(const char *s, size_t n, const char *want) {
    return strlen(want) == n && strncasecmp(s, want, n) == 0;
}

/* Calls fn for each comma-separated element of v[0..n), trimmed; stops at a nonzero return. */
static int each_token(const char *v, size_t n, int (*fn)(rt_h1_resp *r, const char *t, size_t tn, acc_err *err),
                      rt_h1_resp *r, acc_err *err) {
    size_t a = 0;
    while (a <= n) {
        size_t b = a;
        while (b < n && v[b] != ',') b++;
        size_t s = a, e = b;
        while (s < e && (v[s] == ' ' || v[s] == '\t')) s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e > s) {
            int rc = fn(r, v + s, e - s, err);
            if (rc) return rc;
        }
        a = b + 1;
    }
    return ACC_OK;
}

static int connection_token(rt_h1_resp *r, const char *t, size_t n, acc_err *err) {
    (void)err;
    if (name_is(t, n, "close")) r->conn_close = true;
    else if (name_is(t, n, "keep-alive")) r->conn_keep_alive = true;
    return ACC_OK;
}

static int coding_token(rt_h1_resp *r, const char *t, size_t n, acc_err *err) {
    char show[64];
    if (!name_is(t, n, "chunked"))
        return acc_fail(err, ACC_EUPSTREAM, "an unsupported Transfer-Encoding \"%s\"", shown(show, t, n));
    if (r->chunked) return acc_fail(err, ACC_EUPSTREAM, "Transfer-Encoding chunked twice");
    r->chunked = true;
    return ACC_OK;
}

static int keep_alive_param(rt_h1_resp *r, const char *t, size_t n, acc_err *err) {
    (void)err;
    if (n > 8 && strncasecmp(t, "timeout=", 8) == 0) {
        uint32_t v = 0;
        size_t k = 8;
        for (; k < n && is_digit(t[k]); k++) v = v < 100000 ? v * 10 + (uint32_t)(t[k] - '0') : v;
        if (k == n) r->keep_alive_s = v ? v : 1; /* timeout=0: as short as can be */
    }
    return ACC_OK;
}

static int parse_header(rt_h1_resp *r, const char *s, size_t n, acc_err *err) {
    char show[64];
    if (s[0] == ' ' || s[0] == '\t')
        return acc_fail(err, ACC_EUPSTREAM, "a header folded over two lines (\"%s\")", shown(show, s, n));
    const char *colon = memchr(s, ':', n);
    size_t nl = colon ? (size_t)(colon - s) : 0;
    bool ok = nl > 0;
    for (size_t k = 0; ok && k < nl; k++) ok = is_tchar((unsigned char)s[k]);
    if (!ok) return acc_fail(err, ACC_EUPSTREAM, "a malformed header line \"%s\"", shown(show, s, n));
    const char *v = colon + 1;
    size_t vn = n - nl - 1;
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
    if (name_is(s, nl, "content-length")) {
        uint64_t len = 0;
        bool good = vn > 0 && vn <= 18;
        for (size_t k = 0; good && k < vn; k++) {
            good = is_digit(v[k]);
            len = len * 10 + (uint64_t)(v[k] - '0');
        }
        if (!good) return acc_fail(err, ACC_EUPSTREAM, "a bad Content-Length \"%s\"", shown(show, v, vn));
        if (r->has_length && r->left != len) return acc_fail(err, ACC_EUPSTREAM, "two different Content-Lengths");
        r->has_length = true;
        r->left = len;
    } else if (name_is(s, nl, "transfer-encoding")) {
        return each_token(v, vn, coding_token, r, err);
    } else if (name_is(s, nl, "connection")) {
        return each_token(v, vn, connection_token, r, err);
    } else if (name_is(s, nl, "keep-alive")) {
        return each_token(v, vn, keep_alive_param, r, err);
    }
    return ACC_OK;
}

/* The empty line after the headers: what comes next. */
static int end_of_head(rt_h1_resp *r, const rt_h1_sink *sink, acc_err *err) {
    if (r->status < 200) {
        if (r->status == 101) return acc_fail(err, ACC_EUPSTREAM, "an unexpected 101 Switching Protocols");
        rt_h1_resp_init(r); /* an interim response: the real one follows */
        return RT_H1_MORE;
    }
    if (sink && sink->on_head && sink->on_head(sink->ud, r->status)) {
        r->state = S_DONE; /* nothing more will be parsed, and the connection is not reused */
        r->conn_close = true;
        return RT_H1_STOPPED;
    }
    if (r->status == 204 || r->status == 304) {
        r->state = S_DONE;
        return RT_H1_DONE;
    }
    if (r->chunked) {
        if (r->has_length) r->conn_close = true; /* framed twice: read by its chunks, then closed */
        r->state = S_CHUNK_SIZE;
    } else if (r->has_length) {
        r->state = r->left ? S_BODY_LEN : S_DONE;
    } else {
        r->until_close = true;
        r->state = S_BODY_CLOSE;
    }
    return r->state == S_DONE ? RT_H1_DONE : RT_H1_MORE;
}

static int parse_chunk_size(rt_h1_resp *r, const char *s, size_t n, acc_err *err) {
    char show[64];
    uint64_t v = 0;
    size_t k = 0;
    for (; k < n; k++) {
        char c = s[k];
        int d = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) break;
        if (v >> 56) return acc_fail(err, ACC_EUPSTREAM, "a bad chunk size \"%s\"", shown(show, s, n));
        v = v * 16 + (uint64_t)d;
    }
    size_t digits = k;
    while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
    if (!digits || (k < n && s[k] != ';'))
        return acc_fail(err, ACC_EUPSTREAM, "a bad chunk size \"%s\"", shown(show, s, n));
    if (v == 0) {
        r->state = S_TRAILER;
        r->head_len = 0;
    } else {
        r->left = v;
        r->state = S_CHUNK_DATA;
    }
    return ACC_OK;
}

int rt_h1_feed(rt_h1_resp *r, const char *data, size_t len, size_t *used, const rt_h1_sink *sink, acc_err *err) {
    ACC_INVARIANT(r->state != S_DONE, "rt_h1_feed after the response's end");
    size_t i = 0;
    int rc = RT_H1_MORE;
    const char *s;
    size_t n;
    while (i < len && rc == RT_H1_MORE) {
        switch (r->state) {
        case S_STATUS:
            if ((rc = read_line(r, data, len, &i, "status", true, &s, &n, err)) == 1) {
                rc = parse_status(r, s, n, err);
                if (!rc) r->state = S_HEADER;
            }
            break;
        case S_HEADER:
            if ((rc = read_line(r, data, len, &i, "header", true, &s, &n, err)) == 1)
                rc = n ? parse_header(r, s, n, err) : end_of_head(r, sink, err);
            break;
        case S_BODY_LEN:
        case S_CHUNK_DATA:
        case S_BODY_CLOSE: {
            size_t take = len - i;
            if (r->state != S_BODY_CLOSE && take > r->left) take = (size_t)r->left;
            if (r->state != S_BODY_CLOSE) r->left -= take;
            const char *p = data + i;
            i += take;
            if (r->state == S_BODY_LEN && !r->left) r->state = S_DONE;
            else if (r->state == S_CHUNK_DATA && !r->left) r->state = S_CHUNK_END;
            if (sink && sink->on_body && sink->on_body(sink->ud, p, take)) {
                r->state = S_DONE;
                r->conn_close = true;
                rc = RT_H1_STOPPED;
            } else {
                rc = r->state == S_DONE ? RT_H1_DONE : RT_H1_MORE;
            }
            break;
        }
        case S_CHUNK_SIZE:
            if ((rc = read_line(r, data, len, &i, "chunk-size", false, &s, &n, err)) == 1)
                rc = parse_chunk_size(r, s, n, err);
            break;
        case S_CHUNK_END:
            if ((rc = read_line(r, data, len, &i, "chunk", false, &s, &n, err)) == 1) {
                if (n) rc = acc_fail(err, ACC_EUPSTREAM, "a chunk longer than its size");
                else rc = RT_H1_MORE, r->state = S_CHUNK_SIZE;
            }
            break;
        case S_TRAILER:
            if ((rc = read_line(r, data, len, &i, "trailer", true, &s, &n, err)) == 1) {
                rc = n ? RT_H1_MORE : RT_H1_DONE; /* trailers are read and left */
                if (!n) r->state = S_DONE;
            }
            break;
        default:
            ACC_INVARIANT(0, "parser state %d", r->state);
            rc = acc_fail(err, ACC_EUPSTREAM, "the parser lost its place");
        }
    }
    *used = i;
    return rc;
}

int rt_h1_eof(rt_h1_resp *r, acc_err *err) {
    switch (r->state) {
    case S_BODY_CLOSE:
        r->state = S_DONE;
        return RT_H1_DONE;
    case S_STATUS:
    case S_HEADER:
        return acc_fail(err, ACC_EUPSTREAM, "in its headers");
    case S_BODY_LEN:
        return acc_fail(err, ACC_EUPSTREAM, "%llu bytes of its body missing", (unsigned long long)r->left);
    default:
        return acc_fail(err, ACC_EUPSTREAM, "in its chunked body");
    }
}

bool rt_h1_reusable(const rt_h1_resp *r) {
    return r->state == S_DONE && !r->until_close && !r->conn_close && (!r->http10 || r->conn_keep_alive);
}
