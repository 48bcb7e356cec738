/*
 * wsconn.c: the WebSocket connections at /v1/sessions: the upgrade (an API key, or a refusal with
 * its HTTP status), client frames (size, rate, JSON, the four types), and writing host frames.
 *
 * Client -> host: session.start {agent, budget?}, message {content}, cancel {run?},
 * session.resume {session, last_seq}; each may carry an "id" (a string or an integer) that the
 * host's answers and errors name. Host -> client: see session.c; frames before any session (errors)
 * and session.resumed carry seq 0.
 *
 * Writing: the waiting frames of a connection are framed here and handed to lws in one write, so a
 * run's frames leave in one send() and, on loopback, one TCP segment (each segment costs the
 * kernel's whole TCP path on both ends). lws passes LWS_WRITE_HTTP through unframed on a WebSocket
 * connection, and no extension is ever negotiated here (none is offered).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/session.h"

#define MAX_QUEUED 32   /* messages waiting behind a session's running one */
#define FLOOD_CLOSE 200 /* rate-limited frames in a row before the connection is closed */
#define WRITE_BATCH_BYTES (256u << 10)

/* Writes are gathered: a connection with something to send is queued, and rt_ws_flush (the loop,
 * after each drain of the inbox) writes each queued connection's frames at once, in one batch.
 * Only a connection whose socket is full (lws holds part of its last write), or that is closing,
 * waits for lws's writable callback: on the libuv loop, asking for it costs two epoll_ctl calls to
 * turn POLLOUT on and two to turn it off again. */
void rt_ws_request_write(rt_ws *c) {
    if (c->wsi) rt_wq_push(&c->srv->ws_flush, &c->flush);
}

void rt_ws_loose(rt_ws *c, const char *json, size_t len) {
    uint32_t n = (uint32_t)len;
    acc_buf_append(&c->loose, &n, sizeof n);
    acc_buf_append(&c->loose, json, len);
}

void rt_ws_close(rt_ws *c, int code, const char *reason) {
    if (c->closing) return;
    c->closing = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    rt_ws_request_write(c);
}

/* An error for the connection: in its session's log when it has one, else loose with seq 0. */
void rt_ws_error(rt_ws *c, const char *reply_to, const char *code, const char *msg) {
    if (c->s) {
        rt_emit_error(c->s, reply_to, code, msg, NULL);
        return;
    }
    if (c->loose.len > 64 * 1024) return; /* a client ignoring its errors gets no more */
    acc_buf b = ACC_BUF_INIT;
    acc_buf_puts(&b, "{\"type\":\"error\",\"seq\":0,\"code\":");
    rt_json_cstr(&b, code);
    acc_buf_puts(&b, ",\"message\":");
    rt_json_cstr(&b, msg);
    if (reply_to) {
        acc_buf_puts(&b, ",\"id\":");
        acc_buf_puts(&b, reply_to);
    }
    acc_buf_putc(&b, '}');
    if (!acc_buf_failed(&b)) rt_ws_loose(c, b.data, b.len);
    acc_buf_free(&b);
    rt_ws_request_write(c);
}

static void handle_start(rt_ws *c, const rt_cfields *msg, char *reply_to) {
    rt_server *srv = c->srv;
    if (c->s) {
        rt_ws_error(c, reply_to, "bad_request", "this connection already carries a session");
        return;
    }
    const rt_cfield *agent = &msg->agent;
    if (agent->kind != CF_STRING || !agent->len || agent->len > REGISTRY_NAME_MAX + REGISTRY_VERSION_MAX + 1) {
        rt_ws_error(c, reply_to, "bad_request", "session.start needs \"agent\": \"NAME[@VERSION]\"");
        return;
    }
    const rt_cfield *jb = &msg->budget;
    uint64_t budget = 0;
    if (jb->kind != CF_ABSENT && jb->kind != CF_NULL) {
        if (jb->kind != CF_INTEGER || jb->i < 0) {
            rt_ws_error(c, reply_to, "bad_request", "\"budget\" must be a whole number of base units");
            return;
        }
        budget = (uint64_t)jb->i;
    }
    uintptr_t live = (uintptr_t)rt_map_get(&srv->key_sessions, c->who.key_id);
    if (srv->cfg.sessions_per_key && live >= srv->cfg.sessions_per_key) {
        char m[160];
        snprintf(m, sizeof m, "this API key has %u sessions open, its limit", srv->cfg.sessions_per_key);
        rt_ws_error(c, reply_to, "limit_exceeded", m);
        return;
    }
    acc_err err = {0};
    if (!rt_sess_new(c, agent->s, budget, reply_to, &err)) rt_ws_error(c, reply_to, "internal", err.msg);
}

static void handle_message(rt_ws *c, const rt_cfields *msg, char *reply_to) {
    rt_sess *s = c->s;
    if (!s) {
        rt_ws_error(c, reply_to, "bad_request", "no session: send session.start or session.resume first");
        return;
    }
    const rt_cfield *content = &msg->content;
    if (content->kind != CF_STRING) {
        rt_emit_error(s, reply_to, "bad_request", "a message needs \"content\": a string", NULL);
        return;
    }
    if (s->q_len >= MAX_QUEUED) {
        rt_emit_error(s, reply_to, "limit_exceeded", "too many messages wait for this session's running turn", NULL);
        return;
    }
    rt_queued *m = calloc(1, sizeof *m);
    size_t len = content->len;
    if (!m || !(m->text = malloc(len + 1))) {
        free(m);
        rt_emit_error(s, reply_to, "internal", "out of memory", NULL);
        return;
    }
    memcpy(m->text, content->s, len + 1);
    m->len = len;
    m->reply_to = reply_to ? strdup(reply_to) : NULL;
    rt_sess_message(s, m);
}

static void handle_cancel(rt_ws *c, const rt_cfields *msg, char *reply_to) {
    rt_sess *s = c->s;
    if (!s) {
        rt_ws_error(c, reply_to, "bad_request", "no session to cancel in");
        return;
    }
    const char *run = msg->run.kind == CF_STRING ? msg->run.s : NULL;
    if (msg->run.kind != CF_ABSENT && !run) {
        rt_emit_error(s, reply_to, "bad_request", "\"run\" must be a run id such as \"r3\"", NULL);
        return;
    }
    if (!rt_sess_cancel(s, run)) {
        char m[120];
        snprintf(m, sizeof m, "no run %.40s is under way", run ? run : "");
        rt_emit_error(s, reply_to, "not_found", m, NULL);
    }
}

static void handle_resume(rt_ws *c, const rt_cfields *msg, char *reply_to) {
    rt_server *srv = c->srv;
    if (c->s) {
        rt_ws_error(c, reply_to, "bad_request", "this connection already carries a session");
        return;
    }
    const rt_cfield *sid = &msg->session, *last = &msg->last_seq;
    bool has_last = last->kind != CF_ABSENT;
    if (sid->kind != CF_STRING || (has_last && last->kind != CF_INTEGER) || (has_last && last->i < 0)) {
        rt_ws_error(c, reply_to, "bad_request",
                    "session.resume needs \"session\": ID and \"last_seq\": the last seq received");
        return;
    }
    rt_sess *s = rt_map_get(&srv->sessions, sid->s);
    if (!s || s->closing || strcmp(s->who.account, c->who.account) != 0) {
        rt_ws_error(c, reply_to, "not_found", "no such session (it may have expired)");
        return;
    }
    uint64_t want = has_last ? (uint64_t)last->i + 1 : 1;
    rt_flog *l = &s->log;
    uint64_t oldest = l->frames ? rt_flog_at(l, l->head)->seq : s->seq + 1;
    if (want > s->seq + 1) {
        rt_ws_error(c, reply_to, "bad_request", "last_seq is ahead of the session");
        return;
    }
    if (want < oldest) {
        char m[200];
        snprintf(m, sizeof m,
                 "frames %" PRIu64 " to %" PRIu64 " are no longer kept; resume with last_seq %" PRIu64
                 " to accept the gap",
                 want, oldest - 1, oldest - 1);
        rt_ws_error(c, reply_to, "resume_gap", m);
        return;
    }
    if (s->conn) { /* taken over: the old connection goes; the new one gets the frames */
        rt_ws *old = s->conn;
        old->s = NULL;
        s->conn = NULL;
        rt_ws_close(old, LWS_CLOSE_STATUS_NORMAL, "session resumed elsewhere");
    }
    /* Everything after last_seq is written again, from the log. */
    size_t from = l->head;
    while (from != l->tail && rt_flog_at(l, from)->seq < want) from = rt_flog_next(l, from);
    size_t frames = 0, bytes = 0;
    for (size_t o = from; o != l->tail; o = rt_flog_next(l, o)) frames++, bytes += rt_flog_cost(rt_flog_at(l, o));
    l->unsent = from;
    l->unsent_frames = frames;
    l->unsent_bytes = bytes;
    /* session.resumed goes first, outside the log (seq 0), then the frames replayed. */
    acc_buf b = ACC_BUF_INIT;
    acc_buf_puts(&b, "{\"type\":\"session.resumed\",\"seq\":0,\"session\":");
    rt_json_cstr(&b, s->id);
    acc_buf_printf(&b, ",\"replayed\":%zu,\"last_seq\":%" PRIu64, frames, s->seq);
    rt_put_reply_to(&b, reply_to);
    acc_buf_putc(&b, '}');
    if (!acc_buf_failed(&b)) rt_ws_loose(c, b.data, b.len);
    acc_buf_free(&b);
    rt_sess_attach(s, c);
    rt_ws_request_write(c);
}

/* One complete client message. */
static void handle_frame(rt_ws *c, const char *data, size_t len) {
    rt_server *srv = c->srv;
    atomic_fetch_add(&srv->m.ws_frames_in, 1);
    if (srv->cfg.messages_per_sec) { /* GCRA: a rate with a burst of twice the rate */
        uint64_t now = rt_now_ns(), interval = 1000000000ull / srv->cfg.messages_per_sec;
        uint64_t burst = 2 * interval * srv->cfg.messages_per_sec;
        if (burst > 2000000000ull) burst = 2000000000ull;
        if (c->tat_ns < now) c->tat_ns = now;
        if (c->tat_ns - now > burst) {
            if (++c->flood >= FLOOD_CLOSE) {
                rt_ws_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "message rate limit exceeded repeatedly");
                return;
            }
            char m[120];
            snprintf(m, sizeof m, "more than %u messages per second on this connection; the frame was dropped",
                     srv->cfg.messages_per_sec);
            rt_ws_error(c, NULL, "limit_exceeded", m);
            return;
        }
        c->tat_ns += interval;
        c->flood = 0;
    }
    json_error_t jerr;
    rt_cframe f;
    int rc = rt_cframe_read(&f, data, len, &jerr);
    if (rc != 0) {
        char m[300];
        if (rc == -1) snprintf(m, sizeof m, "the frame is not JSON: %s (at byte %d)", jerr.text, jerr.position);
        else snprintf(m, sizeof m, "a frame must be a JSON object with a \"type\"");
        rt_ws_error(c, NULL, "bad_request", m);
        rt_cframe_free(&f);
        return;
    }
    const rt_cfields *msg = &f.v;
    char *reply_to = f.id_text;
    const char *type = msg->type.kind == CF_STRING ? msg->type.s : NULL;
    if (msg->id.kind != CF_ABSENT && !reply_to) {
        rt_ws_error(c, NULL, "bad_request", "\"id\" must be a string (at most 200 bytes) or an integer");
    } else if (!type) {
        rt_ws_error(c, reply_to, "bad_request", "the frame has no \"type\" string");
    } else if (srv->draining) {
        rt_ws_error(c, reply_to, "unavailable", "the server is shutting down");
    } else if (strcmp(type, "session.start") == 0) {
        handle_start(c, msg, reply_to);
    } else if (strcmp(type, "message") == 0) {
        handle_message(c, msg, reply_to);
    } else if (strcmp(type, "cancel") == 0) {
        handle_cancel(c, msg, reply_to);
    } else if (strcmp(type, "session.resume") == 0) {
        handle_resume(c, msg, reply_to);
    } else {
        char m[200];
        snprintf(m, sizeof m, "unknown frame type \"%.60s\" (session.start, message, cancel, session.resume)", type);
        rt_ws_error(c, reply_to, "bad_request", m);
    }
    rt_cframe_free(&f);
}

/* ---- writing ------------------------------------------------------------------------------------- */

/* A server frame's header (FIN, text, unmasked) for a payload of n bytes: 2, 4 or 10 bytes. */
static size_t ws_header(unsigned char *h, size_t n) {
    h[0] = 0x81;
    if (n < 126) {
        h[1] = (unsigned char)n;
        return 2;
    }
    if (n < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    return 10;
}

static void batch_frame(acc_buf *out, const char *json, size_t n) {
    unsigned char h[10];
    acc_buf_append(out, h, ws_header(h, n));
    acc_buf_append(out, json, n);
}

/* The close frame (code and reason, at most 125 bytes) that ends a connection we close. It goes out
 * with the last batch, written by us like every other frame: when a writable callback returns -1
 * after lws_close_reason, lws's libuv loop closes the socket without sending lws's own. */
static void batch_close(acc_buf *out, int code, const char *reason) {
    size_t n = strlen(reason);
    if (n > 123) n = 123;
    unsigned char h[4] = {0x88, (unsigned char)(2 + n), (unsigned char)(code >> 8), (unsigned char)code};
    acc_buf_append(out, h, sizeof h);
    acc_buf_append(out, reason, n);
}

/* Writes one batch of what the connection has to send (its loose frames, then its session's),
 * ending with the close frame when it is closing and nothing else is left. Returns -1 when the
 * write failed, SENT_MORE when more is left (for the next writable callback), SENT_CLOSE when the
 * close frame went out (the caller ends the connection), SENT_ALL when all was written. */
enum { SENT_ALL = 0, SENT_MORE = 1, SENT_CLOSE = 2 };

static int ws_send(rt_ws *c) {
    acc_buf *out = &c->wbuf;
    acc_buf_reset(out);
    char *pre = acc_buf_reserve(out, LWS_PRE);
    if (!pre) return -1;
    acc_buf_commit(out, LWS_PRE);
    while (c->loose_sent < c->loose.len && out->len < WRITE_BATCH_BYTES) {
        uint32_t n;
        memcpy(&n, c->loose.data + c->loose_sent, sizeof n);
        batch_frame(out, c->loose.data + c->loose_sent + sizeof n, n);
        c->loose_sent += sizeof n + n;
    }
    if (c->loose_sent == c->loose.len) {
        acc_buf_free(&c->loose);
        c->loose_sent = 0;
    }
    rt_sess *s = c->s;
    if (s) rt_flog_prefetch_oldest(&s->log, s->log.unsent_bytes); /* for rt_log_trim after the write */
    while (s && rt_flog_has_unsent(&s->log) && out->len < WRITE_BATCH_BYTES) {
        const rt_flog_rec *r = rt_flog_take_unsent(&s->log);
        batch_frame(out, rt_flog_json(r), r->len);
    }
    bool last = c->closing && c->loose_sent == c->loose.len && (!s || !rt_flog_has_unsent(&s->log));
    if (last) batch_close(out, c->close_code, c->close_reason);
    if (acc_buf_failed(out)) return -1;
    size_t n = out->len - LWS_PRE;
    int w = n ? lws_write(c->wsi, (unsigned char *)out->data + LWS_PRE, n, LWS_WRITE_HTTP) : 0;
    acc_buf_free(out); /* idle connections keep no write buffer */
    if (w < (int)n) return -1;
    if (s) rt_log_trim(s);
    if (last) return SENT_CLOSE;
    return (s && rt_flog_has_unsent(&s->log)) || c->loose_sent < c->loose.len ? SENT_MORE : SENT_ALL;
}

void rt_ws_flush(rt_server *srv) {
    for (rt_wq_link *n; (n = rt_wq_pop(&srv->ws_flush));) {
        rt_ws *c = (rt_ws *)(void *)((char *)n - offsetof(rt_ws, flush));
        if (c->closing || lws_partial_buffered(c->wsi)) { /* lws's callback ends it, or sends the rest */
            lws_callback_on_writable(c->wsi);
            continue;
        }
        int r = ws_send(c);
        if (r < 0) lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        else if (r == SENT_MORE) lws_callback_on_writable(c->wsi);
    }
}

static int ws_writable(rt_ws *c) {
    if (lws_partial_buffered(c->wsi)) { /* lws is still sending the last batch */
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    int r = ws_send(c);
    if (r < 0 || r == SENT_CLOSE) return -1; /* what lws still holds is flushed before the socket closes */
    if (r == SENT_MORE) lws_callback_on_writable(c->wsi);
    return 0;
}

static void ws_closed(rt_ws *c) {
    rt_server *srv = c->srv;
    rt_wq_remove(&c->srv->ws_flush, &c->flush);
    if (c->s) {
        rt_sess *s = c->s;
        s->conn = NULL;
        s->detached_ns = rt_now_ns();
        c->s = NULL; /* frames not written stay unwritten: a resume sends them */
    }
    atomic_fetch_sub(&srv->m.connections_ws, 1);
    acc_buf_free(&c->rx);
    acc_buf_free(&c->loose);
    acc_buf_free(&c->wbuf);
    free(c);
}

/* ---- the upgrade ------------------------------------------------------------------------------- */

/* A refused upgrade: an HTTP status with a JSON error body, written in one piece. The status line is
 * ours: lws would write "HTTP/1.0" here (the request's version is not parsed yet on the upgrade
 * path), which WebSocket clients refuse to read. */
static int refuse_upgrade(struct lws *wsi, unsigned status, const char *code, const char *msg) {
    const char *reason = status == 401 ? "Unauthorized" : status == 404 ? "Not Found" : "Service Unavailable";
    acc_buf body = ACC_BUF_INIT;
    rt_error_json(&body, code, msg);
    acc_buf out = ACC_BUF_INIT;
    char *pre = acc_buf_reserve(&out, LWS_PRE);
    if (pre) {
        memset(pre, 0, LWS_PRE);
        acc_buf_commit(&out, LWS_PRE);
    }
    acc_buf_printf(&out,
                   "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
                   "connection: close\r\n\r\n",
                   status, reason, body.len);
    acc_buf_append(&out, body.data, body.len);
    if (!acc_buf_failed(&out) && !acc_buf_failed(&body))
        lws_write(wsi, (unsigned char *)out.data + LWS_PRE, out.len - LWS_PRE, LWS_WRITE_HTTP_FINAL);
    acc_buf_free(&out);
    acc_buf_free(&body);
    return 1;
}

/* The API key of an upgrade: "Authorization: Bearer KEY", or "bearer.KEY" among the offered
 * subprotocols (browsers cannot set headers on a WebSocket; they offer "accrue.v1, bearer.KEY"
 * and the host picks accrue.v1). */
static bool upgrade_key(struct lws *wsi, char *key, size_t keylen) {
    char buf[512];
    int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0) {
        snprintf(key, keylen, "%s", buf + 7);
        return true;
    }
    n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_PROTOCOL);
    if (n > 0) {
        char *save = NULL;
        for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
            if (strncmp(tok, "bearer.", 7) == 0) {
                snprintf(key, keylen, "%s", tok + 7);
                return true;
            }
    }
    return false;
}

int rt_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    rt_conn *conn = user;
    rt_server *srv = lws_context_user(lws_get_context(wsi));
    rt_ws *c = conn ? conn->ws : NULL;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[256];
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/v1/sessions") != 0)
            return refuse_upgrade(wsi, 404, "not_found", "WebSocket sessions are at /v1/sessions");
        if (srv->draining) return refuse_upgrade(wsi, 503, "unavailable", "the server is shutting down");
        char key[256];
        if (!upgrade_key(wsi, key, sizeof key))
            return refuse_upgrade(wsi, 401, "unauthorized",
                                  "no API key: send \"Authorization: Bearer KEY\" or offer the subprotocols "
                                  "\"accrue.v1, bearer.KEY\"");
        rt_principal who;
        acc_err err = {0};
        if (rt_auth_key(srv, key, strlen(key), &who, &err) != ACC_OK)
            return refuse_upgrade(wsi, 401, "unauthorized", err.msg);
        c = calloc(1, sizeof *c);
        if (!c) return refuse_upgrade(wsi, 503, "unavailable", "out of memory");
        c->wsi = wsi;
        c->srv = srv;
        c->who = who;
        conn->ws = c;
        atomic_fetch_add(&srv->m.connections_ws, 1);
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        return 0;
    case LWS_CALLBACK_RECEIVE: {
        if (!c) return -1;
        if (lws_frame_is_binary(wsi)) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)"text frames only", 16);
            return -1;
        }
        uint64_t limit = srv->cfg.max_frame;
        if (limit && (c->rx.len + len > limit || lws_remaining_packet_payload(wsi) > limit - c->rx.len - len)) {
            char m[80];
            int ml = snprintf(m, sizeof m, "message over %" PRIu64 " bytes", limit);
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)m, (size_t)ml);
            return -1;
        }
        acc_buf_append(&c->rx, in, len);
        if (acc_buf_failed(&c->rx)) return -1;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            handle_frame(c, c->rx.data ? c->rx.data : "", c->rx.len);
            acc_buf_free(&c->rx); /* idle connections keep no read buffer either */
        }
        return 0;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* A close payload of one byte is malformed (RFC 6455 5.5.1); lws would echo it. */
        if (len == 1) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"bad close payload", 17);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c) return -1;
        return ws_writable(c);
    case LWS_CALLBACK_CLOSED:
        if (c) {
            ws_closed(c);
            conn->ws = NULL;
        }
        return 0;
    default:
        return 0;
    }
}
