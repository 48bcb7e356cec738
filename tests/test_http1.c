/*
 * test_http1.c: runtime/server/http1.c, the HTTP/1.1 client's request writer and response parser.
 * Each response is fed whole and in pieces of every size from 1 byte up (a read can end anywhere:
 * inside a CR LF, a chunk size, a trailer), and must give the same status, body and verdict.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/http1.h"
#include "tests/check.h"

typedef struct parsed {
    int rc;         /* the last rt_h1_feed or rt_h1_eof result */
    int status;     /* from on_head */
    int heads;      /* on_head calls */
    acc_buf body;
    size_t used;    /* bytes rt_h1_feed took in all */
    bool reusable;
    uint32_t keep_alive_s;
    char msg[ACC_ERR_MSG_SIZE];
} parsed;

static int on_head(void *ud, int status) {
    parsed *p = ud;
    p->status = status;
    p->heads++;
    return 0;
}

static int on_body(void *ud, const char *data, size_t len) {
    acc_buf_append(&((parsed *)ud)->body, data, len);
    return 0;
}

static rt_h1_resp resp; /* 8 KiB: not on the stack of every call */

/* Feeds text in pieces of `piece` bytes (0: whole); eof: then the connection closes. */
static parsed parse(const char *text, size_t len, size_t piece, bool eof) {
    parsed p;
    memset(&p, 0, sizeof p);
    rt_h1_resp_init(&resp);
    rt_h1_sink sink = {.ud = &p, .on_head = on_head, .on_body = on_body};
    acc_err err = {0};
    size_t at = 0;
    p.rc = RT_H1_MORE;
    while (at < len && p.rc == RT_H1_MORE) {
        size_t n = piece && len - at > piece ? piece : len - at, used = 0;
        p.rc = rt_h1_feed(&resp, text + at, n, &used, &sink, &err);
        p.used += used;
        at += n;
    }
    if (eof && p.rc == RT_H1_MORE) p.rc = rt_h1_eof(&resp, &err);
    if (p.rc < 0) snprintf(p.msg, sizeof p.msg, "%s", err.msg);
    p.reusable = p.rc == RT_H1_DONE && rt_h1_reusable(&resp);
    p.keep_alive_s = resp.keep_alive_s;
    acc_buf_putc(&p.body, 0); /* a C string for the checks */
    return p;
}

/* The same verdict for every way of cutting text into reads. */
static void expect(const char *text, bool eof, int rc, int status, const char *body, bool reusable) {
    size_t len = strlen(text);
    for (size_t piece = 0; piece <= len; piece = piece < 16 ? piece + 1 : piece * 2) {
        parsed p = parse(text, len, piece, eof);
        CHECK_MSG(p.rc == rc, "pieces of %zu: rc %d, want %d (%s)", piece, p.rc, rc, p.msg);
        if (rc == RT_H1_DONE) {
            CHECK_MSG(p.status == status && p.heads == 1, "pieces of %zu: status %d (%d heads)", piece, p.status,
                      p.heads);
            CHECK_MSG(strcmp(p.body.data, body) == 0, "pieces of %zu: body \"%s\", want \"%s\"", piece, p.body.data, body);
            CHECK_MSG(p.reusable == reusable, "pieces of %zu: reusable %d", piece, p.reusable);
            CHECK_MSG(p.used == len, "pieces of %zu: used %zu of %zu", piece, p.used, len);
        }
        acc_buf_free(&p.body);
    }
}

/* An error for every way of cutting it, whose message contains want. */
static void expect_error(const char *text, bool eof, const char *want) {
    size_t len = strlen(text);
    for (size_t piece = 0; piece <= len; piece = piece < 16 ? piece + 1 : piece * 2) {
        parsed p = parse(text, len, piece, eof);
        CHECK_MSG(p.rc == ACC_EUPSTREAM, "pieces of %zu: rc %d, want an error \"%s\"", piece, p.rc, want);
        CHECK_MSG(strstr(p.msg, want) != NULL, "pieces of %zu: message \"%s\", want \"%s\"", piece, p.msg, want);
        acc_buf_free(&p.body);
    }
}

static void test_content_length_keeps_the_connection(void) {
    expect("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}", false, RT_H1_DONE,
           200, "{\"a\":1}", true);
    /* Names in any case, values with spaces around, a bare LF, no reason phrase. */
    expect("HTTP/1.1 404\ncontent-LENGTH:   3  \n\nabc", false, RT_H1_DONE, 404, "abc", true);
    expect("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, RT_H1_DONE, 200, "", true);
    expect("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", false, RT_H1_DONE, 200, "abc", true);
}

static void test_chunked_with_extensions_and_trailers(void) {
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5;ext=1;other\r\nhello\r\n1A \r\n, this is twenty-six bytes\r\n0\r\nX-Trailer: a\r\nY: b\r\n\r\n",
           false, RT_H1_DONE, 200, "hello, this is twenty-six bytes", true);
    expect("HTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\n\r\n0\r\n\r\n", false, RT_H1_DONE, 200, "", true);
    /* Framed twice: the chunks rule, and the connection is not reused (RFC 7230 3.3.3). */
    expect("HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false,
           RT_H1_DONE, 200, "ok", false);
}

static void test_what_ends_with_the_connection(void) {
    /* No length, no chunks: the body is what comes until the close. */
    expect("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", true, RT_H1_DONE, 200, "until the end",
           false);
    expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", false, RT_H1_DONE, 200, "ok", false);
    expect("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 2\r\n\r\nok", false, RT_H1_DONE, 200,
           "ok", false);
    /* HTTP/1.0 keeps the connection only when it says so. */
    expect("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, RT_H1_DONE, 200, "ok", false);
    expect("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false, RT_H1_DONE, 200, "ok", true);
    expect("HTTP/1.0 200 OK\r\n\r\nold style", true, RT_H1_DONE, 200, "old style", false);
}

static void test_interim_responses_and_empty_bodies(void) {
    expect("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\nContent-Length: 50\r\n\r\n"
           "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
           false, RT_H1_DONE, 201, "ok", true);
    expect("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", false, RT_H1_DONE, 204, "", true);
    expect("HTTP/1.1 304 Not Modified\r\n\r\n", false, RT_H1_DONE, 304, "", true);
}

static void test_keep_alive_timeout(void) {
    const char *t = "HTTP/1.1 200 OK\r\nKeep-Alive: max=5, TIMEOUT=7\r\nContent-Length: 0\r\n\r\n";
    parsed p = parse(t, strlen(t), 0, false);
    CHECK_EQ(p.rc, RT_H1_DONE);
    CHECK_EQ(p.keep_alive_s, 7);
    acc_buf_free(&p.body);
    t = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    p = parse(t, strlen(t), 0, false);
    CHECK_EQ(p.keep_alive_s, 0);
    acc_buf_free(&p.body);
}

static void test_bytes_after_the_response_are_left(void) {
    const char *t = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
    parsed p = parse(t, strlen(t), 0, false);
    CHECK_EQ(p.rc, RT_H1_DONE);
    CHECK_EQ(p.used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    acc_buf_free(&p.body);
}

static void test_malformed_responses_are_named(void) {
    expect_error("HTTP/1.1 2OO OK\r\n\r\n", false, "a malformed status line \"HTTP/1.1 2OO OK\"");
    expect_error("HTTP/2 200\r\n\r\n", false, "a malformed status line");
    expect_error("ICY 200 OK\r\n\r\n", false, "a malformed status line");
    expect_error("HTTP/1.1 99 Low\r\n\r\n", false, "a malformed status line");
    expect_error("HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", false, "a malformed header line \"Bad Header: x\"");
    expect_error("HTTP/1.1 200 OK\r\nNo-Colon\r\n\r\n", false, "a malformed header line");
    expect_error("HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\n\r\n", false, "a header folded over two lines");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", false, "a bad Content-Length \"12x\"");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, "a bad Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", false, "a bad Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", false,
                 "two different Content-Lengths");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false,
                 "an unsupported Transfer-Encoding \"gzip\"");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, "a bad chunk size \"zz\"");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", false, "a bad chunk size");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n", false, "a bad chunk size");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n", false, "a bad chunk size");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", false,
                 "a chunk longer than its size");
    expect_error("HTTP/1.1 101 Switching Protocols\r\n\r\n", false, "an unexpected 101");
    /* The close before the end. */
    expect_error("HTTP/1.1 200 OK\r\nContent-Len", true, "in its headers");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true, "7 bytes of its body missing");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true, "in its chunked body");
}

static void test_bounded_heads(void) {
    /* 40 headers of 1,000 bytes: over the 32 KiB a head may take. */
    acc_buf b = ACC_BUF_INIT;
    acc_buf_puts(&b, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 40; i++) {
        acc_buf_printf(&b, "X-Filler-%02d: ", i);
        for (int k = 0; k < 985; k++) acc_buf_putc(&b, 'y');
        acc_buf_puts(&b, "\r\n");
    }
    acc_buf_puts(&b, "Content-Length: 0\r\n\r\n");
    expect_error(b.data, false, "headers larger than 32 KiB");
    /* One line longer than 8 KiB. */
    acc_buf_reset(&b);
    acc_buf_puts(&b, "HTTP/1.1 200 OK\r\nX-Long: ");
    for (int k = 0; k < 9000; k++) acc_buf_putc(&b, 'y');
    acc_buf_puts(&b, "\r\n\r\n");
    expect_error(b.data, false, "a header line longer than 8 KiB");
    /* Each interim head has its own bound: 1xx heads of 20 KiB each, then the answer. */
    acc_buf_reset(&b);
    for (int h = 0; h < 3; h++) {
        acc_buf_puts(&b, "HTTP/1.1 103 Early Hints\r\n");
        for (int i = 0; i < 20; i++) {
            acc_buf_puts(&b, "Link: ");
            for (int k = 0; k < 1000; k++) acc_buf_putc(&b, 'l');
            acc_buf_puts(&b, "\r\n");
        }
        acc_buf_puts(&b, "\r\n");
    }
    acc_buf_puts(&b, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    parsed p = parse(b.data, b.len, 0, false);
    CHECK_MSG(p.rc == RT_H1_DONE && p.status == 200, "rc %d status %d: %s", p.rc, p.status, p.msg);
    acc_buf_free(&p.body);
    /* Trailers are bounded too. */
    acc_buf_reset(&b);
    acc_buf_puts(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
    for (int i = 0; i < 40; i++) {
        acc_buf_puts(&b, "T: ");
        for (int k = 0; k < 1000; k++) acc_buf_putc(&b, 't');
        acc_buf_puts(&b, "\r\n");
    }
    acc_buf_puts(&b, "\r\n");
    p = parse(b.data, b.len, 0, false);
    CHECK_EQ(p.rc, ACC_EUPSTREAM);
    CHECK_CONTAINS(p.msg, "trailers larger than 32 KiB");
    acc_buf_free(&p.body);
    acc_buf_free(&b);
}

static int stop_at_head(void *ud, int status) {
    (void)ud, (void)status;
    return 1;
}

static void test_a_hook_stops_the_parse(void) {
    const char *t = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    rt_h1_resp_init(&resp);
    rt_h1_sink sink = {.on_head = stop_at_head};
    size_t used = 0;
    acc_err err = {0};
    CHECK_EQ(rt_h1_feed(&resp, t, strlen(t), &used, &sink, &err), RT_H1_STOPPED);
    CHECK_EQ(used, strlen(t) - 2); /* the body was not read */
    CHECK(!rt_h1_reusable(&resp));
}

static void test_request(void) {
    acc_buf b = ACC_BUF_INIT;
    acc_err err = {0};
    CHECK_EQ(rt_h1_write_request(&b, "POST", "127.0.0.1", 8080, "/v1/chat/completions", "application/json", "sk-1",
                                 "{}", 2, &err),
             ACC_OK);
    CHECK_STREQ(b.data, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                        "Content-Type: application/json\r\nContent-Length: 2\r\nAuthorization: Bearer sk-1\r\n"
                        "Connection: keep-alive\r\n\r\n{}");
    acc_buf_reset(&b);
    CHECK_EQ(rt_h1_write_request(&b, "GET", "::1", 80, "/v1/models", NULL, NULL, NULL, 0, &err), ACC_OK);
    CHECK_STREQ(b.data, "GET /v1/models HTTP/1.1\r\nHost: [::1]\r\nConnection: keep-alive\r\n\r\n");
    acc_buf_reset(&b);
    CHECK_EQ(rt_h1_write_request(&b, "POST", "h", 80, "/", "application/json", NULL, NULL, 0, &err), ACC_OK);
    CHECK_STREQ(b.data, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
    /* Nothing that would split the request into others. */
    acc_buf_reset(&b);
    CHECK_EQ(rt_h1_write_request(&b, "POST", "h", 80, "/", "application/json", "k\r\nX-Injected: 1", "{}", 2, &err),
             ACC_EINVAL);
    CHECK_CONTAINS(err.msg, "control character");
    CHECK_EQ(rt_h1_write_request(&b, "POST", "h", 80, "/a b", "application/json", NULL, "{}", 2, &err), ACC_EINVAL);
    CHECK_EQ(b.len, 0);
    acc_buf_free(&b);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    RUN(test_content_length_keeps_the_connection);
    RUN(test_chunked_with_extensions_and_trailers);
    RUN(test_what_ends_with_the_connection);
    RUN(test_interim_responses_and_empty_bodies);
    RUN(test_keep_alive_timeout);
    RUN(test_bytes_after_the_response_are_left);
    RUN(test_malformed_responses_are_named);
    RUN(test_bounded_heads);
    RUN(test_a_hook_stops_the_parse);
    RUN(test_request);
    return check_finish("http1");
}
