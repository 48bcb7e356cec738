/*
 * session.c: WebSocket sessions at /v1/sessions.
 *
 * A session is one agent in its own sandbox, talked to over JSON text frames (ARCHITECTURE.md,
 * Sessions). It outlives its connection: a client that drops keeps its running turn, which
 * finishes and is paid for, and a new connection can take the session back with session.resume,
 * replaying from a bounded log what it missed.
 *
 * Who touches what:
 *   - The loop owns the session's frames (the log), its queue of waiting messages, its
 *     connection and its phase.
 *   - A worker owns the sandbox while it runs the session's one job (load the script, start a
 *     message, continue after a pause or a host call). It reports through the mailbox: streamed
 *     text and flags under the session's mutex, then rt_post. Its last touch of the session is
 *     releasing that mutex, and the loop frees a session only after taking it.
 *
 * Frames out: every host frame gets the next seq and goes into the log. Frames not yet written
 * are the log's tail; they are written when the socket is writable, several per callback while
 * the kernel takes them whole (lws_partial_buffered). When too many wait, streamed text is
 * merged into the last unwritten delta frame instead of making new ones. Written frames stay in
 * the log (up to LOG_FRAMES / LOG_BYTES) for resume.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/calls.h"
#include "runtime/server/internal.h"

#define LOG_FRAMES 512              /* written frames kept for resume */
#define LOG_BYTES (1u << 20)        /* ... and at most this many bytes of them */
#define UNSENT_COALESCE 32          /* unwritten frames past which deltas merge */
#define UNSENT_MAX_BYTES (16u << 20) /* a client this far behind is dropped */
#define MAX_QUEUED 32               /* messages waiting behind the running one */
#define DETACHED_TTL_NS (120ull * 1000000000ull)
#define FLOOD_CLOSE 200
#define STARTED_WAIT_US 2000 /* run.started waits this long for company (start_run) */ /* rate-limited frames in a row before the connection is closed */

enum phase {
    PH_IDLE,    /* no job: ready for a message (or, with `loading` set, not yet started) */
    PH_RUNNING, /* a job is queued or running on a worker */
    PH_WAITING, /* the turn waits for a host call the loop is making */
    PH_CLOSING, /* the job closing the sandbox is queued or running */
    PH_DEAD,    /* no sandbox, no job: freed once its mailbox is quiet */
};

enum job_kind { JOB_LOAD, JOB_MESSAGE, JOB_CONTINUE, JOB_ANSWER, JOB_CLOSE };

enum mail_flag { MAIL_DELTA = 1, MAIL_END = 2, MAIL_CALL = 4 };

typedef struct frame {
    struct frame *next;
    uint64_t seq;
    uint64_t run; /* for deltas: the run they belong to (coalescing) */
    bool is_delta;
    acc_buf b; /* LWS_PRE bytes of headroom, then the JSON text */
} frame;

typedef struct queued_msg {
    struct queued_msg *next;
    char *reply_to; /* the client's id as JSON text, or NULL */
    char *text;
    size_t len;
} queued_msg;

struct rt_session {
    char id[33];
    rt_server *srv;
    rt_principal who;
    char agent_name[128], agent_version[32];
    uint64_t price_per_message, price_per_session;
    uint64_t budget; /* 0 = the account's balance is the only bound */
    uint64_t spent;
    sandbox_t *sb;
    uint64_t sb_id; /* sandbox_cancel's key: safe from the loop whatever the worker is doing */

    /* Loop-owned. */
    rt_ws *conn;
    enum phase phase;
    bool loading;  /* the current turn runs the script's top-level code */
    bool closing;  /* free once no job or call is in flight */
    bool counted;  /* counts toward its key's live sessions */
    frame *log_head, *log_tail, *unsent;
    size_t log_frames, log_bytes, unsent_frames, unsent_bytes;
    uint64_t seq;
    queued_msg *q_head, *q_tail;
    unsigned q_len;
    char *start_reply_to;   /* session.start's id, answered by session.ready */
    uint64_t run_no;        /* runs started so far; the current run is "r<run_no>" */
    char *run_reply_to;     /* the message id the current run answers */
    unsigned delta_index;
    bool run_cancelled;
    atomic_bool cancel_req; /* run_cancelled, for the worker: a turn starting after it is cancelled */
    acc_buf answer;         /* the current run's streamed text (for the final message) */
    uint64_t detached_ns;   /* when its connection went, 0 while attached */
    rt_call *call;          /* the host call the loop is making for the turn */
    lws_sorted_usec_list_t started_sul; /* run.started's deadline */

    /* Worker-owned during a job. */
    rt_job job;
    enum job_kind job_kind;
    char *job_text;
    size_t job_len;
    char *script; /* until loaded */
    size_t script_len;
    rt_call_req pending; /* a host call the turn made, for the loop to start */
    bool has_pending;
    acc_buf calls_json; /* the usage lines of the current run (one JSON object each, comma-led) */
    uint64_t run_cost;

    /* The result of the job's turn, read by the loop after MAIL_END. */
    sandbox_status_t res_status;
    sandbox_limit_t res_limit;
    char *res_reply;
    size_t res_reply_len;
    char res_err[400];

    /* Mailbox. */
    pthread_mutex_t mu;
    unsigned mail;
    acc_buf mail_text;
    rt_event ev;
};

struct rt_ws {
    struct lws *wsi;
    rt_server *srv;
    rt_principal who;
    rt_session *s;
    acc_buf rx;
    bool rx_too_big;
    uint64_t tat_ns; /* rate limit: theoretical arrival time (GCRA) */
    unsigned flood;
    bool closing;
    int close_code;
    char close_reason[100];
    /* Frames for a connection with no session (errors before a start): their own small queue. */
    acc_buf loose;
    size_t loose_sent;
    acc_buf wbuf; /* the frames of one write */
};

static void session_event(rt_server *srv, rt_event *ev);
static void loose_append(rt_ws *c, const char *json, size_t len);
static void maybe_start_next(rt_session *s);
static void session_free_if_quiet(rt_session *s);
static void ws_request_write(rt_ws *c);
static void cancel_current(rt_session *s);

/* ---- frames ------------------------------------------------------------------------------ */

static frame *frame_begin(rt_session *s, const char *type) {
    frame *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    char *p = acc_buf_reserve(&f->b, LWS_PRE);
    if (!p) {
        free(f);
        return NULL;
    }
    memset(p, 0, LWS_PRE);
    acc_buf_commit(&f->b, LWS_PRE);
    f->seq = ++s->seq;
    acc_buf_printf(&f->b, "{\"type\":\"%s\",\"seq\":%" PRIu64, type, f->seq);
    return f;
}

static void log_trim(rt_session *s) {
    while (s->log_head && s->log_head != s->unsent && (s->log_frames - s->unsent_frames > LOG_FRAMES ||
                                                       s->log_bytes - s->unsent_bytes > LOG_BYTES)) {
        frame *f = s->log_head;
        s->log_head = f->next;
        if (!s->log_head) s->log_tail = NULL;
        s->log_frames--;
        s->log_bytes -= f->b.len;
        acc_buf_free(&f->b);
        free(f);
    }
}

/* Closes the frame's JSON object and appends it to the log, unwritten, and asks for a write
 * (frame_end_later: the frame waits for the next write of another frame, or a timer). */
static void frame_append(rt_session *s, frame *f, bool write_now);
static void frame_end(rt_session *s, frame *f) { frame_append(s, f, true); }
static void frame_end_later(rt_session *s, frame *f) { frame_append(s, f, false); }

static void frame_append(rt_session *s, frame *f, bool write_now) {
    acc_buf_putc(&f->b, '}');
    if (acc_buf_failed(&f->b)) { /* out of memory: the frame is lost, its seq too */
        acc_buf_free(&f->b);
        free(f);
        return;
    }
    if (s->log_tail) s->log_tail->next = f;
    else s->log_head = f;
    s->log_tail = f;
    if (!s->unsent) s->unsent = f;
    s->log_frames++;
    s->log_bytes += f->b.len;
    s->unsent_frames++;
    s->unsent_bytes += f->b.len;
    atomic_fetch_add(&s->srv->m.ws_frames_out, 1);
    if (s->conn) {
        if (s->unsent_bytes > UNSENT_MAX_BYTES && !s->conn->closing) {
            s->conn->closing = true;
            s->conn->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
            snprintf(s->conn->close_reason, sizeof s->conn->close_reason, "client reads too slowly");
        }
        if (write_now) ws_request_write(s->conn);
    } else if (s->unsent_bytes > UNSENT_MAX_BYTES) {
        /* Detached and far behind: the oldest unwritten frames go (resume reports the gap). */
        while (s->unsent && s->unsent_bytes > UNSENT_MAX_BYTES / 2 && s->unsent != s->log_tail) {
            s->unsent_frames--;
            s->unsent_bytes -= s->unsent->b.len;
            s->unsent = s->unsent->next;
        }
    }
    log_trim(s);
}

/* Streamed text for the current run: a new delta frame, or merged into the last unwritten one
 * when many frames wait already. */
static void emit_delta(rt_session *s, const char *text, size_t len) {
    if (!len) return;
    acc_buf_append(&s->answer, text, len);
    frame *last = s->log_tail;
    if (last && last->is_delta && last->run == s->run_no && s->unsent && s->unsent_frames >= UNSENT_COALESCE) {
        /* The frame ends with "}; reopen the string, append, close again. */
        size_t before = last->b.len;
        last->b.len -= 2;
        rt_json_escape(&last->b, text, len);
        acc_buf_append(&last->b, "\"}", 2);
        s->log_bytes += last->b.len - before;
        s->unsent_bytes += last->b.len - before;
        return;
    }
    frame *f = frame_begin(s, "delta");
    if (!f) return;
    f->is_delta = true;
    f->run = s->run_no;
    acc_buf_printf(&f->b, ",\"run\":\"r%" PRIu64 "\",\"index\":%u,\"text\":\"", s->run_no, s->delta_index++);
    rt_json_escape(&f->b, text, len);
    acc_buf_putc(&f->b, '"');
    frame_end(s, f);
}

static void put_reply_to(acc_buf *b, const char *reply_to) {
    if (!reply_to) return;
    acc_buf_puts(b, ",\"reply_to\":");
    acc_buf_puts(b, reply_to);
}

/* An error frame: code, message and the client id that caused it. For a connection without a
 * session, the frame goes to the connection's own queue with seq 0. */
static void emit_error_conn(rt_ws *c, const char *reply_to, const char *code, const char *msg, const char *run);

static void emit_error(rt_session *s, const char *reply_to, const char *code, const char *msg, const char *run) {
    frame *f = frame_begin(s, "error");
    if (!f) return;
    acc_buf_puts(&f->b, ",\"code\":");
    rt_json_cstr(&f->b, code);
    acc_buf_puts(&f->b, ",\"message\":");
    rt_json_cstr(&f->b, msg);
    if (reply_to) {
        acc_buf_puts(&f->b, ",\"id\":");
        acc_buf_puts(&f->b, reply_to);
    }
    if (run) acc_buf_printf(&f->b, ",\"run\":\"%s\"", run);
    frame_end(s, f);
}

/* ---- the mailbox: workers -> loop ---------------------------------------------------------- */

/* Worker: streamed output. */
static sandbox_output_verdict_t on_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *text,
                                          size_t len) {
    rt_session *s = sandbox_userdata(sb);
    (void)ud;
    if (kind != SANDBOX_OUTPUT_DELTA || !len) return SANDBOX_OUTPUT_OK; /* print() is counted, not shown */
    pthread_mutex_lock(&s->mu);
    acc_buf_append(&s->mail_text, text, len);
    if (!(s->mail & MAIL_DELTA)) {
        s->mail |= MAIL_DELTA;
        rt_post(s->srv, &s->ev);
    }
    pthread_mutex_unlock(&s->mu);
    return SANDBOX_OUTPUT_OK;
}

/* Worker: a host call. Calls answered at once (built-in models) are answered here; the others
 * are handed to the loop when the turn comes back WAITING. */
static int on_start_call(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    rt_session *s = sandbox_userdata(sb);
    (void)ud;
    rt_call_req req = {
        .kind = call->kind == SANDBOX_CALL_MODEL ? RT_CALL_MODEL : RT_CALL_DATASET,
        .name = call->name,
        .name_len = call->name_len,
        .json = call->json,
        .json_len = call->json_len,
        .sandbox_call_id = call->id,
    };
    snprintf(req.payer, sizeof req.payer, "%s", s->who.account);
    snprintf(req.session, sizeof req.session, "%s", s->id);
    snprintf(req.agent, sizeof req.agent, "%s@%s", s->agent_name, s->agent_version);
    snprintf(req.request_id, sizeof req.request_id, "%s/r%" PRIu64, s->id, s->run_no);
    rt_call_result res;
    int rc = rt_call_try_now(s->srv, &req, &res);
    if (rc == RT_CALL_DONE) {
        if (res.usage_line.len) {
            acc_buf_putc(&s->calls_json, ',');
            acc_buf_append(&s->calls_json, res.usage_line.data, res.usage_line.len);
        }
        s->run_cost += res.cost;
        bool ok = res.ok;
        sandbox_call_done(sb, call->id, ok, res.text.data ? res.text.data : "", res.text.len);
        rt_call_result_free(&res);
        return ok ? 0 : -1;
    }
    /* RT_CALL_ASYNC: copy what the loop needs; the pointers in call die with this callback. */
    rt_call_req_copy(&s->pending, &req);
    s->has_pending = true;
    return 0;
}

static void job_run(rt_job *job) {
    rt_session *s = (rt_session *)((char *)job - offsetof(rt_session, job));
    sandbox_t *sb = s->sb;
    if (s->job_kind == JOB_CLOSE) {
        sandbox_close(sb);
        s->sb = NULL;
        pthread_mutex_lock(&s->mu);
        s->mail |= MAIL_END;
        rt_post(s->srv, &s->ev);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    bool started = true;
    s->has_pending = false;
    if (s->job_kind == JOB_ANSWER) {
        sandbox_call_done(sb, s->pending.sandbox_call_id, s->pending.ok, s->job_text ? s->job_text : "",
                          s->job_len);
        free(s->job_text);
        s->job_text = NULL;
        rt_call_req_free(&s->pending);
    } else if (s->job_kind == JOB_LOAD) {
        char chunk[160];
        snprintf(chunk, sizeof chunk, "=%s@%s", s->agent_name, s->agent_version);
        started = sandbox_start_load(sb, chunk, s->script, s->script_len, NULL) == ACC_OK;
        free(s->script);
        s->script = NULL;
    } else if (s->job_kind == JOB_MESSAGE) {
        started = sandbox_start_message(sb, s->job_text, s->job_len, NULL) == ACC_OK;
        free(s->job_text);
        s->job_text = NULL;
    }
    /* Starting a turn clears the sandbox's interrupts: a cancel that came before is made again. */
    if (started && (s->job_kind == JOB_LOAD || s->job_kind == JOB_MESSAGE) && atomic_load(&s->cancel_req))
        sandbox_cancel(s->sb_id);
    sandbox_status_t st = started ? sandbox_run(sb) : SANDBOX_FAILED;
    if (st == SANDBOX_PAUSED || st == SANDBOX_BLOCKED) { /* on_output never blocks today */
        s->job_kind = JOB_CONTINUE;
        rt_pool_submit(s->srv->pool, &s->job); /* to the back of the queue: others get a turn */
        return;
    }
    if (st == SANDBOX_WAITING && !s->has_pending) {
        /* Waiting for an answer that is on its way (cannot happen with today's providers). */
        st = SANDBOX_FAILED;
    }
    s->res_status = st;
    s->res_limit = st == SANDBOX_FAILED ? sandbox_limit_hit(sb) : SANDBOX_LIMIT_NONE;
    if (st == SANDBOX_FAILED) snprintf(s->res_err, sizeof s->res_err, "%s", sandbox_errmsg(sb));
    free(s->res_reply);
    s->res_reply = NULL;
    s->res_reply_len = 0;
    if (st == SANDBOX_DONE) {
        size_t len;
        const char *reply = sandbox_reply(sb, &len);
        if (reply && len) {
            s->res_reply = malloc(len);
            if (s->res_reply) {
                memcpy(s->res_reply, reply, len);
                s->res_reply_len = len;
            }
        }
    }
    pthread_mutex_lock(&s->mu);
    s->mail |= st == SANDBOX_WAITING ? MAIL_CALL : MAIL_END;
    rt_post(s->srv, &s->ev);
    pthread_mutex_unlock(&s->mu);
}

static void submit(rt_session *s, enum job_kind kind) {
    s->job_kind = kind;
    s->phase = PH_RUNNING;
    rt_pool_submit(s->srv->pool, &s->job);
}

/* ---- runs ---------------------------------------------------------------------------------- */

static void run_id(const rt_session *s, char out[24]) { snprintf(out, 24, "r%" PRIu64, s->run_no); }

/* Takes the streamed text out of the mailbox and into delta frames. At the end of a turn the
 * incomplete tail of a character goes out too (escaped as U+FFFD). */
static void flush_deltas(rt_session *s, bool final) {
    pthread_mutex_lock(&s->mu);
    acc_buf text = s->mail_text;
    s->mail_text = (acc_buf)ACC_BUF_INIT;
    s->mail &= ~(unsigned)MAIL_DELTA;
    pthread_mutex_unlock(&s->mu);
    if (!text.len) {
        acc_buf_free(&text);
        return;
    }
    bool tail;
    size_t n = final ? text.len : rt_utf8_prefix(text.data, text.len, &tail);
    if (!final && n < text.len && !tail) n = text.len; /* invalid, not incomplete: send, escaped */
    emit_delta(s, text.data, n);
    if (n < text.len) { /* keep the incomplete character for the next piece */
        pthread_mutex_lock(&s->mu);
        acc_buf rest = ACC_BUF_INIT;
        acc_buf_append(&rest, text.data + n, text.len - n);
        acc_buf_append(&rest, s->mail_text.data ? s->mail_text.data : "", s->mail_text.len);
        acc_buf_free(&s->mail_text);
        s->mail_text = rest;
        pthread_mutex_unlock(&s->mu);
    }
    acc_buf_free(&text);
}

static void emit_session_ready(rt_session *s) {
    frame *f = frame_begin(s, "session.ready");
    if (!f) return;
    acc_buf_puts(&f->b, ",\"session\":");
    rt_json_cstr(&f->b, s->id);
    acc_buf_puts(&f->b, ",\"agent\":");
    rt_json_cstr(&f->b, s->agent_name);
    acc_buf_puts(&f->b, ",\"version\":");
    rt_json_cstr(&f->b, s->agent_version);
    acc_buf_printf(&f->b, ",\"price\":{\"per_message\":%" PRIu64 ",\"per_session\":%" PRIu64 "}",
                   s->price_per_message, s->price_per_session);
    acc_buf_printf(&f->b, ",\"budget\":%" PRIu64, s->budget);
    put_reply_to(&f->b, s->start_reply_to);
    frame_end(s, f);
    free(s->start_reply_to);
    s->start_reply_to = NULL;
}

static void on_started_due(lws_sorted_usec_list_t *sul) {
    rt_session *s = (rt_session *)((char *)sul - offsetof(rt_session, started_sul));
    if (s->conn && s->unsent) ws_request_write(s->conn);
}

static void start_run(rt_session *s, queued_msg *m) {
    s->run_no++;
    s->delta_index = 0;
    s->run_cancelled = false;
    atomic_store(&s->cancel_req, false);
    s->run_cost = 0;
    acc_buf_reset(&s->answer);
    acc_buf_reset(&s->calls_json);
    free(s->run_reply_to);
    s->run_reply_to = m->reply_to;
    /* run.started goes out with the run's first output, or STARTED_WAIT_US after the start at the
     * latest: a short run's frames then leave in one write (one TCP segment) instead of two. */
    frame *f = frame_begin(s, "run.started");
    if (f) {
        acc_buf_printf(&f->b, ",\"run\":\"r%" PRIu64 "\"", s->run_no);
        put_reply_to(&f->b, s->run_reply_to);
        frame_end_later(s, f);
        lws_sul_schedule(s->srv->ctx, 0, &s->started_sul, on_started_due, STARTED_WAIT_US);
    }
    s->job_text = m->text;
    s->job_len = m->len;
    free(m);
    atomic_fetch_add(&s->srv->m.turns, 1);
    submit(s, JOB_MESSAGE);
}

static void maybe_start_next(rt_session *s) {
    if (s->phase != PH_IDLE || !s->q_head || s->closing) return;
    queued_msg *m = s->q_head;
    s->q_head = m->next;
    if (!s->q_head) s->q_tail = NULL;
    s->q_len--;
    start_run(s, m);
}

static const char *limit_code(sandbox_limit_t l) {
    return l == SANDBOX_LIMIT_NONE ? "agent_error" : "limit_exceeded";
}

static void end_run(rt_session *s) {
    char rid[24];
    run_id(s, rid);
    flush_deltas(s, true);
    const char *status = "completed";
    if (s->res_status == SANDBOX_DONE) {
        frame *f = frame_begin(s, "message");
        if (f) {
            acc_buf_printf(&f->b, ",\"run\":\"%s\"", rid);
            put_reply_to(&f->b, s->run_reply_to);
            acc_buf_puts(&f->b, ",\"content\":\"");
            rt_json_escape(&f->b, s->answer.data ? s->answer.data : "", s->answer.len);
            rt_json_escape(&f->b, s->res_reply ? s->res_reply : "", s->res_reply_len);
            acc_buf_putc(&f->b, '"');
            frame_end(s, f);
        }
    } else if (s->res_limit == SANDBOX_LIMIT_CANCELLED) {
        status = "cancelled";
    } else {
        status = "failed";
        atomic_fetch_add(&s->srv->m.turns_failed, 1);
        if (s->res_limit != SANDBOX_LIMIT_NONE) atomic_fetch_add(&s->srv->m.limit_hits[s->res_limit], 1);
        char msg[480];
        if (s->res_limit != SANDBOX_LIMIT_NONE)
            snprintf(msg, sizeof msg, "the agent's turn hit its %s", sandbox_limit_name(s->res_limit));
        else
            snprintf(msg, sizeof msg, "%s", s->res_err);
        emit_error(s, s->run_reply_to, limit_code(s->res_limit), msg, rid);
    }
    frame *u = frame_begin(s, "usage");
    if (u) {
        acc_buf_printf(&u->b, ",\"run\":\"%s\",\"calls\":[", rid);
        if (s->calls_json.len > 1) acc_buf_append(&u->b, s->calls_json.data + 1, s->calls_json.len - 1);
        acc_buf_printf(&u->b, "],\"cost\":%" PRIu64, s->run_cost);
        rt_call_balance_json(s->srv, s->who.account, &u->b);
        frame_end(s, u);
    }
    s->spent += s->run_cost;
    frame *d = frame_begin(s, "run.done");
    if (d) {
        acc_buf_printf(&d->b, ",\"run\":\"%s\",\"status\":\"%s\"", rid, status);
        put_reply_to(&d->b, s->run_reply_to);
        frame_end(s, d);
    }
    free(s->run_reply_to);
    s->run_reply_to = NULL;
    free(s->res_reply);
    s->res_reply = NULL;
    s->phase = PH_IDLE;
}

/* Streamed text of the turn's model call, on the loop. */
static void on_call_chunk(rt_call *call, void *ud, const char *text, size_t len) {
    rt_session *s = ud;
    (void)call;
    flush_deltas(s, false); /* what the agent sent before the call goes first */
    emit_delta(s, text, len);
}

/* The answer to the turn's host call, from the loop's side (calls.c). */
static void on_call_done(rt_call *call, void *ud, const rt_call_result *res) {
    rt_session *s = ud;
    (void)call;
    s->call = NULL;
    if (res->usage_line.len) {
        acc_buf_putc(&s->calls_json, ',');
        acc_buf_append(&s->calls_json, res->usage_line.data, res->usage_line.len);
    }
    s->run_cost += res->cost;
    /* The worker answers the sandbox (it owns it): hand it the text. */
    s->job_text = malloc(res->text.len + 1);
    if (s->job_text) {
        memcpy(s->job_text, res->text.data ? res->text.data : "", res->text.len);
        s->job_text[res->text.len] = 0;
    }
    s->job_len = res->text.len;
    s->pending.ok = res->ok && s->job_text;
    submit(s, JOB_ANSWER);
}

/* ---- the loop's side of the mailbox ---------------------------------------------------------- */

static void session_event(rt_server *srv, rt_event *ev) {
    rt_session *s = (rt_session *)((char *)ev - offsetof(rt_session, ev));
    (void)srv;
    pthread_mutex_lock(&s->mu);
    unsigned mail = s->mail;
    s->mail &= ~(unsigned)(MAIL_END | MAIL_CALL);
    pthread_mutex_unlock(&s->mu);

    if (mail & MAIL_DELTA) flush_deltas(s, false);
    if (mail & MAIL_CALL) {
        s->phase = PH_WAITING;
        if (s->run_cancelled || s->closing) {
            /* Cancelled while the worker was finishing: answer nothing, let the turn fail. */
            s->pending.ok = false;
            s->job_text = strdup("cancelled");
            s->job_len = s->job_text ? strlen(s->job_text) : 0;
            submit(s, JOB_ANSWER);
        } else {
            /* models.call(name, {stream = true, ...}): the model's text goes out as deltas of the
             * run while it is made, and the whole answer still goes back to the agent. */
            json_t *rq = json_loadb(s->pending.json, s->pending.json_len, 0, NULL);
            bool stream = s->pending.kind == RT_CALL_MODEL && json_is_true(json_object_get(rq, "stream"));
            json_decref(rq);
            s->call = rt_call_start_streaming(s->srv, &s->pending, on_call_done, stream ? on_call_chunk : NULL, s);
        }
    }
    if (mail & MAIL_END) {
        if (s->phase == PH_CLOSING) {
            s->phase = PH_DEAD;
        } else if (s->loading) {
            s->loading = false;
            s->phase = PH_IDLE;
            if (s->res_status == SANDBOX_DONE) {
                emit_session_ready(s);
            } else {
                char msg[480];
                if (s->res_limit != SANDBOX_LIMIT_NONE)
                    snprintf(msg, sizeof msg, "the agent's script hit its %s while loading",
                             sandbox_limit_name(s->res_limit));
                else
                    snprintf(msg, sizeof msg, "the agent's script failed to load: %s", s->res_err);
                emit_error(s, s->start_reply_to, limit_code(s->res_limit), msg, NULL);
                s->closing = true;
            }
        } else if (s->phase == PH_RUNNING) {
            end_run(s);
        }
    }
    if (s->closing) {
        session_free_if_quiet(s);
        return;
    }
    maybe_start_next(s);
}

/* ---- life and death ----------------------------------------------------------------------------- */

static void key_count(rt_server *srv, const char *key_id, int delta) {
    uintptr_t n = (uintptr_t)rt_map_get(&srv->key_sessions, key_id);
    n = (uintptr_t)((intptr_t)n + delta);
    if (n) rt_map_put(&srv->key_sessions, key_id, (void *)n);
    else rt_map_del(&srv->key_sessions, key_id);
}

static rt_session *session_new(rt_ws *c, const rt_agent *agent, uint64_t budget, acc_err *err) {
    rt_server *srv = c->srv;
    rt_session *s = calloc(1, sizeof *s);
    if (!s) {
        acc_fail(err, ACC_ENOMEM, "out of memory");
        return NULL;
    }
    s->srv = srv;
    s->who = c->who;
    rt_random_hex(s->id, 16);
    snprintf(s->agent_name, sizeof s->agent_name, "%s", agent->name);
    snprintf(s->agent_version, sizeof s->agent_version, "%s", agent->version);
    s->price_per_message = agent->price_per_message;
    s->price_per_session = agent->price_per_session;
    s->budget = budget;
    s->job.fn = job_run;
    s->ev.fn = session_event;
    pthread_mutex_init(&s->mu, NULL);
    sandbox_limits_t limits = sandbox_default_limits();
    if (srv->cfg.turn_time_ms) limits.turn.time_ms = srv->cfg.turn_time_ms;
    limits.turn.slice_ms = srv->cfg.slice_ms;
    sandbox_provider_t prov = {.ud = s, .start_call = on_start_call, .output = on_output};
    s->sb = sandbox_open(&limits, &prov, NULL);
    if (s->sb) s->sb_id = sandbox_id(s->sb);
    s->script = malloc(agent->script_len + 1);
    if (!s->sb || !s->script || rt_map_put(&srv->sessions, s->id, s) != ACC_OK) {
        if (s->sb) sandbox_close(s->sb);
        free(s->script);
        pthread_mutex_destroy(&s->mu);
        free(s);
        acc_fail(err, ACC_ENOMEM, "out of memory opening a sandbox");
        return NULL;
    }
    memcpy(s->script, agent->script, agent->script_len);
    s->script[agent->script_len] = 0;
    s->script_len = agent->script_len;
    sandbox_set_userdata(s->sb, s);
    key_count(srv, s->who.key_id, +1);
    s->counted = true;
    srv->sessions_alive++;
    atomic_fetch_add(&srv->m.sessions_opened, 1);
    atomic_fetch_add(&srv->m.sessions_live, 1);
    return s;
}

static void free_frames(rt_session *s) {
    for (frame *f = s->log_head, *n; f; f = n) {
        n = f->next;
        acc_buf_free(&f->b);
        free(f);
    }
    s->log_head = s->log_tail = s->unsent = NULL;
    for (queued_msg *m = s->q_head, *n; m; m = n) {
        n = m->next;
        free(m->reply_to);
        free(m->text);
        free(m);
    }
    s->q_head = s->q_tail = NULL;
}

/* Frees the session once nothing is in flight: no job, no call, no queued event. A sandbox
 * still open is closed on a worker first (lua_close of a big heap takes time). */
static void session_free_if_quiet(rt_session *s) {
    if (s->phase == PH_RUNNING || s->phase == PH_WAITING) {
        if (!s->run_cancelled) cancel_current(s);
        return;
    }
    if (s->phase == PH_CLOSING) return;
    rt_server *srv = s->srv;
    if (s->counted) {
        s->counted = false;
        key_count(srv, s->who.key_id, -1);
        rt_map_del(&srv->sessions, s->id);
        atomic_fetch_add(&srv->m.sessions_closed, 1);
        atomic_fetch_sub(&srv->m.sessions_live, 1);
        if (s->conn) {
            /* The connection outlives the session: what it has not written yet goes with it. */
            for (frame *f = s->unsent; f; f = f->next)
                loose_append(s->conn, f->b.data + LWS_PRE, f->b.len - LWS_PRE);
            s->unsent = NULL;
            s->unsent_frames = s->unsent_bytes = 0;
            s->conn->s = NULL;
            ws_request_write(s->conn);
        }
        s->conn = NULL;
    }
    if (s->sb) {
        s->phase = PH_CLOSING;
        s->job_kind = JOB_CLOSE;
        rt_pool_submit(srv->pool, &s->job);
        return;
    }
    /* The mailbox must be quiet: no event of ours queued, and the worker's last unlock done. */
    pthread_mutex_lock(&srv->inbox_mu);
    bool queued = s->ev.queued;
    pthread_mutex_unlock(&srv->inbox_mu);
    pthread_mutex_lock(&s->mu);
    pthread_mutex_unlock(&s->mu);
    if (queued) return; /* session_event runs again and comes back here */
    lws_sul_cancel(&s->started_sul);
    free_frames(s);
    acc_buf_free(&s->answer);
    acc_buf_free(&s->calls_json);
    acc_buf_free(&s->mail_text);
    free(s->start_reply_to);
    free(s->run_reply_to);
    free(s->res_reply);
    free(s->job_text);
    free(s->script);
    rt_call_req_free(&s->pending);
    pthread_mutex_destroy(&s->mu);
    srv->sessions_alive--;
    free(s);
}

static void session_close(rt_session *s) {
    s->closing = true;
    session_free_if_quiet(s);
}

/* ---- connections ---------------------------------------------------------------------------------- */

static void ws_request_write(rt_ws *c) {
    if (c->wsi) lws_callback_on_writable(c->wsi);
}

static void emit_error_conn(rt_ws *c, const char *reply_to, const char *code, const char *msg, const char *run) {
    if (c->s) {
        emit_error(c->s, reply_to, code, msg, run);
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
    if (!acc_buf_failed(&b)) loose_append(c, b.data, b.len);
    acc_buf_free(&b);
    ws_request_write(c);
}

/* Loose frames (not in a session's log) are stored as [u32 length][text] records. */
static void loose_append(rt_ws *c, const char *json, size_t len) {
    uint32_t n = (uint32_t)len;
    acc_buf_append(&c->loose, &n, sizeof n);
    acc_buf_append(&c->loose, json, len);
}

static void attach(rt_session *s, rt_ws *c) {
    if (s->conn && s->conn != c) { /* taken over: the old connection goes */
        rt_ws *old = s->conn;
        old->s = NULL;
        old->closing = true;
        old->close_code = LWS_CLOSE_STATUS_NORMAL;
        snprintf(old->close_reason, sizeof old->close_reason, "session resumed elsewhere");
        ws_request_write(old);
    }
    s->conn = c;
    s->detached_ns = 0;
    c->s = s;
    if (s->unsent) ws_request_write(c);
}

/* The client's id as JSON text (a string or a number), or NULL. */
static char *id_text(json_t *msg) {
    json_t *id = json_object_get(msg, "id");
    if (!id || !(json_is_string(id) || json_is_integer(id))) return NULL;
    if (json_is_string(id) && json_string_length(id) > 200) return NULL;
    return json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
}

static void handle_start(rt_ws *c, json_t *msg, char *reply_to) {
    rt_server *srv = c->srv;
    if (c->s) {
        emit_error_conn(c, reply_to, "bad_request", "this connection already carries a session", NULL);
        return;
    }
    json_t *agent = json_object_get(msg, "agent");
    if (!json_is_string(agent)) {
        emit_error_conn(c, reply_to, "bad_request", "session.start needs \"agent\": \"NAME[@VERSION]\"", NULL);
        return;
    }
    json_t *jb = json_object_get(msg, "budget");
    uint64_t budget = 0;
    if (jb && !json_is_null(jb)) {
        if (!json_is_integer(jb) || json_integer_value(jb) < 0) {
            emit_error_conn(c, reply_to, "bad_request", "\"budget\" must be a whole number of base units", NULL);
            return;
        }
        budget = (uint64_t)json_integer_value(jb);
    }
    uintptr_t live = (uintptr_t)rt_map_get(&srv->key_sessions, c->who.key_id);
    if (srv->cfg.sessions_per_key && live >= srv->cfg.sessions_per_key) {
        char m[160];
        snprintf(m, sizeof m, "this API key has %u sessions open, its limit", srv->cfg.sessions_per_key);
        emit_error_conn(c, reply_to, "limit_exceeded", m, NULL);
        return;
    }
    rt_agent a = {0};
    acc_err err = {0};
    if (rt_backend_agent(srv, json_string_value(agent), &a, &err) != ACC_OK) {
        emit_error_conn(c, reply_to, rt_status_code_name(err.code), err.msg, NULL);
        return;
    }
    rt_session *s = session_new(c, &a, budget, &err);
    rt_agent_clear(&a);
    if (!s) {
        emit_error_conn(c, reply_to, "internal", err.msg, NULL);
        return;
    }
    s->start_reply_to = reply_to ? strdup(reply_to) : NULL;
    attach(s, c);
    s->loading = true;
    submit(s, JOB_LOAD);
}

static void handle_message(rt_ws *c, json_t *msg, char *reply_to) {
    rt_session *s = c->s;
    if (!s) {
        emit_error_conn(c, reply_to, "bad_request", "no session: send session.start or session.resume first", NULL);
        return;
    }
    json_t *content = json_object_get(msg, "content");
    if (!json_is_string(content)) {
        emit_error(s, reply_to, "bad_request", "a message needs \"content\": a string", NULL);
        return;
    }
    if (s->q_len >= MAX_QUEUED) {
        emit_error(s, reply_to, "limit_exceeded", "too many messages wait for this session's running turn", NULL);
        return;
    }
    queued_msg *m = calloc(1, sizeof *m);
    size_t len = json_string_length(content);
    if (!m || !(m->text = malloc(len + 1))) {
        free(m);
        emit_error(s, reply_to, "internal", "out of memory", NULL);
        return;
    }
    memcpy(m->text, json_string_value(content), len + 1);
    m->len = len;
    m->reply_to = reply_to ? strdup(reply_to) : NULL;
    if (s->q_tail) s->q_tail->next = m;
    else s->q_head = m;
    s->q_tail = m;
    s->q_len++;
    maybe_start_next(s);
}

static void cancel_current(rt_session *s) {
    s->run_cancelled = true;
    atomic_store(&s->cancel_req, true);
    sandbox_cancel(s->sb_id); /* by id: a closed sandbox is simply not found */
    if (s->call) rt_call_cancel(s->call); /* its completion resumes the turn, which then fails */
}

static void handle_cancel(rt_ws *c, json_t *msg, char *reply_to) {
    rt_session *s = c->s;
    if (!s) {
        emit_error_conn(c, reply_to, "bad_request", "no session to cancel in", NULL);
        return;
    }
    json_t *run = json_object_get(msg, "run");
    char cur[24];
    run_id(s, cur);
    bool running = s->phase == PH_RUNNING || s->phase == PH_WAITING;
    if (run && !json_is_string(run)) {
        emit_error(s, reply_to, "bad_request", "\"run\" must be a run id such as \"r3\"", NULL);
        return;
    }
    if (!running || (run && strcmp(json_string_value(run), cur) != 0)) {
        char m[120];
        snprintf(m, sizeof m, "no run %s is under way", run ? json_string_value(run) : "");
        emit_error(s, reply_to, "not_found", m, NULL);
        return;
    }
    cancel_current(s);
}

static void handle_resume(rt_ws *c, json_t *msg, char *reply_to) {
    rt_server *srv = c->srv;
    if (c->s) {
        emit_error_conn(c, reply_to, "bad_request", "this connection already carries a session", NULL);
        return;
    }
    json_t *sid = json_object_get(msg, "session"), *last = json_object_get(msg, "last_seq");
    if (!json_is_string(sid) || (last && !json_is_integer(last)) || (last && json_integer_value(last) < 0)) {
        emit_error_conn(c, reply_to, "bad_request",
                        "session.resume needs \"session\": ID and \"last_seq\": the last seq received", NULL);
        return;
    }
    rt_session *s = rt_map_get(&srv->sessions, json_string_value(sid));
    if (!s || s->closing || strcmp(s->who.account, c->who.account) != 0) {
        emit_error_conn(c, reply_to, "not_found", "no such session (it may have expired)", NULL);
        return;
    }
    uint64_t want = last ? (uint64_t)json_integer_value(last) + 1 : 1;
    uint64_t oldest = s->log_head ? s->log_head->seq : s->seq + 1;
    if (want > s->seq + 1) {
        emit_error_conn(c, reply_to, "bad_request", "last_seq is ahead of the session", NULL);
        return;
    }
    if (want < oldest) {
        char m[200];
        snprintf(m, sizeof m,
                 "frames %" PRIu64 " to %" PRIu64 " are no longer kept; resume with last_seq %" PRIu64
                 " to accept the gap",
                 want, oldest - 1, oldest - 1);
        emit_error_conn(c, reply_to, "resume_gap", m, NULL);
        return;
    }
    /* Everything after last_seq is written again, from the log. */
    frame *f = s->log_head;
    while (f && f->seq < want) f = f->next;
    size_t frames = 0, bytes = 0;
    for (frame *g = f; g; g = g->next) frames++, bytes += g->b.len;
    s->unsent = f;
    s->unsent_frames = frames;
    s->unsent_bytes = bytes;
    /* session.resumed goes first, outside the log (seq 0), then the frames replayed. */
    acc_buf b = ACC_BUF_INIT;
    acc_buf_puts(&b, "{\"type\":\"session.resumed\",\"seq\":0,\"session\":");
    rt_json_cstr(&b, s->id);
    acc_buf_printf(&b, ",\"replayed\":%zu,\"last_seq\":%" PRIu64, frames, s->seq);
    put_reply_to(&b, reply_to);
    acc_buf_putc(&b, '}');
    if (!acc_buf_failed(&b)) loose_append(c, b.data, b.len);
    acc_buf_free(&b);
    attach(s, c);
    ws_request_write(c);
}

/* One complete client message. */
static void handle_frame(rt_ws *c, const char *data, size_t len) {
    rt_server *srv = c->srv;
    atomic_fetch_add(&srv->m.ws_frames_in, 1);
    uint64_t now = rt_now_ns();
    if (srv->cfg.messages_per_sec) {
        uint64_t interval = 1000000000ull / srv->cfg.messages_per_sec, burst = 2 * interval * srv->cfg.messages_per_sec / 1;
        if (burst > 2000000000ull) burst = 2000000000ull;
        if (c->tat_ns < now) c->tat_ns = now;
        if (c->tat_ns - now > burst) {
            if (++c->flood >= FLOOD_CLOSE) {
                c->closing = true;
                c->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
                snprintf(c->close_reason, sizeof c->close_reason, "message rate limit exceeded repeatedly");
                ws_request_write(c);
                return;
            }
            char m[120];
            snprintf(m, sizeof m, "more than %u messages per second on this connection; the frame was dropped",
                     srv->cfg.messages_per_sec);
            emit_error_conn(c, NULL, "limit_exceeded", m, NULL);
            return;
        }
        c->tat_ns += interval;
        c->flood = 0;
    }
    json_error_t jerr;
    json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!msg || !json_is_object(msg)) {
        char m[300];
        if (!msg) snprintf(m, sizeof m, "the frame is not JSON: %s (at byte %d)", jerr.text, jerr.position);
        else snprintf(m, sizeof m, "a frame must be a JSON object with a \"type\"");
        emit_error_conn(c, NULL, "bad_request", m, NULL);
        json_decref(msg);
        return;
    }
    char *reply_to = id_text(msg);
    json_t *jt = json_object_get(msg, "type");
    const char *type = json_string_value(jt);
    if (json_object_get(msg, "id") && !reply_to) {
        emit_error_conn(c, NULL, "bad_request", "\"id\" must be a string (at most 200 bytes) or an integer", NULL);
    } else if (!type) {
        emit_error_conn(c, reply_to, "bad_request", "the frame has no \"type\" string", NULL);
    } else if (srv->draining) {
        emit_error_conn(c, reply_to, "unavailable", "the server is shutting down", NULL);
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
        snprintf(m, sizeof m,
                 "unknown frame type \"%.60s\" (session.start, message, cancel, session.resume)", type);
        emit_error_conn(c, reply_to, "bad_request", m, NULL);
    }
    free(reply_to);
    json_decref(msg);
}

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

/* Writes what is waiting, the loose frames and then the session's unwritten frames, framed here
 * and handed to lws in one write: one send() and, on loopback, one TCP segment for the frames of
 * a whole run instead of one each (each segment costs the kernel's whole TCP path on both ends).
 * lws passes LWS_WRITE_HTTP through on a WebSocket connection unframed; no extension is ever
 * negotiated here (none is offered), so the frames go out exactly as built. */
#define WRITE_BATCH_BYTES (256u << 10)
static int ws_writable(rt_ws *c) {
    struct lws *wsi = c->wsi;
    if (lws_partial_buffered(wsi)) { /* lws is still sending the last batch */
        lws_callback_on_writable(wsi);
        return 0;
    }
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
        acc_buf_reset(&c->loose);
        c->loose_sent = 0;
    }
    rt_session *s = c->s;
    while (s && s->unsent && out->len < WRITE_BATCH_BYTES) {
        frame *f = s->unsent;
        batch_frame(out, f->b.data + LWS_PRE, f->b.len - LWS_PRE);
        s->unsent = f->next;
        s->unsent_frames--;
        s->unsent_bytes -= f->b.len;
        f->is_delta = false; /* handed over: no more merging into it */
    }
    if (acc_buf_failed(out)) return -1;
    size_t n = out->len - LWS_PRE;
    if (n && lws_write(wsi, (unsigned char *)out->data + LWS_PRE, n, LWS_WRITE_HTTP) < (int)n) return -1;
    acc_buf_free(out); /* idle connections keep no write buffer */
    if (s) log_trim(s);
    if (c->closing && c->loose_sent == c->loose.len && (!s || !s->unsent)) {
        lws_close_reason(wsi, (enum lws_close_status)c->close_code, (unsigned char *)c->close_reason,
                         strlen(c->close_reason));
        return -1;
    }
    if ((s && s->unsent) || c->loose_sent < c->loose.len) lws_callback_on_writable(wsi);
    return 0;
}

static void ws_closed(rt_ws *c) {
    rt_server *srv = c->srv;
    if (c->s) {
        rt_session *s = c->s;
        s->conn = NULL;
        s->detached_ns = rt_now_ns();
        /* Frames not written stay unwritten: a resume sends them. */
        c->s = NULL;
    }
    atomic_fetch_sub(&srv->m.connections_ws, 1);
    acc_buf_free(&c->rx);
    acc_buf_free(&c->loose);
    acc_buf_free(&c->wbuf);
    free(c);
}

/* A refused upgrade: an HTTP status with a JSON error body, written in one piece. The status
 * line is ours: lws would write "HTTP/1.0" here (the request's version is not parsed yet on the
 * upgrade path), which WebSocket clients refuse to read. */
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
 * subprotocols (browsers cannot set headers on a WebSocket). */
static bool upgrade_key(struct lws *wsi, char *key, size_t keylen) {
    char buf[512];
    int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0) {
        snprintf(key, keylen, "%s", buf + 7);
        return true;
    }
    n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_PROTOCOL);
    if (n > 0) {
        for (char *tok = strtok(buf, ", "); tok; tok = strtok(NULL, ", "))
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
        char key[200];
        if (!upgrade_key(wsi, key, sizeof key))
            return refuse_upgrade(wsi, 401, "unauthorized",
                                  "no API key: send \"Authorization: Bearer KEY\" or offer the subprotocols "
                                  "\"accrue.v1, bearer.KEY\"");
        rt_principal who;
        acc_err err = {0};
        if (rt_backend_auth(srv, key, strlen(key), &who, &err) != ACC_OK)
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
            if (c->rx.cap > 64 * 1024) acc_buf_free(&c->rx);
            else acc_buf_reset(&c->rx);
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

/* ---- upkeep and shutdown ---------------------------------------------------------------------------- */

void rt_sessions_tick(rt_server *srv) {
    uint64_t now = rt_now_ns();
    rt_session *expired[64];
    size_t n = 0;
    rt_map_entry *e;
    for (size_t i = 0; n < 64 && rt_map_next(&srv->sessions, &i, &e);) {
        rt_session *s = e->value;
        if (!s->conn && s->detached_ns && now - s->detached_ns > DETACHED_TTL_NS && s->phase == PH_IDLE && !s->q_head)
            expired[n++] = s;
    }
    for (size_t i = 0; i < n; i++) session_close(expired[i]);
}

bool rt_sessions_drain(rt_server *srv) {
    bool quiet = true;
    rt_map_entry *e;
    for (size_t i = 0; rt_map_next(&srv->sessions, &i, &e);) {
        rt_session *s = e->value;
        for (queued_msg *m = s->q_head, *nx; m; m = nx) { /* waiting messages never start */
            nx = m->next;
            free(m->reply_to);
            free(m->text);
            free(m);
        }
        s->q_head = s->q_tail = NULL;
        s->q_len = 0;
        if (s->phase == PH_RUNNING || s->phase == PH_WAITING) {
            if (!s->run_cancelled) cancel_current(s);
            quiet = false;
        }
    }
    return quiet;
}

void rt_sessions_close_all(rt_server *srv) {
    rt_session *all[256];
    for (;;) {
        size_t n = 0;
        rt_map_entry *e;
        for (size_t i = 0; n < 256 && rt_map_next(&srv->sessions, &i, &e);) all[n++] = e->value;
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            rt_session *s = all[i];
            if (s->conn) {
                s->conn->closing = true;
                s->conn->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
                snprintf(s->conn->close_reason, sizeof s->conn->close_reason, "server shutting down");
                ws_request_write(s->conn);
            }
            session_close(s);
        }
    }
}
