/*
 * session.c: sessions: their agents, their turns on the workers, and their frames (session.h).
 *
 * A turn's way: the loop queues the client's message and, when the session is idle, starts a run
 * (run.started) and submits the session's job. The worker reserves the agent's message fee
 * (rt_session_begin_message: an account that cannot pay gets insufficient_funds and no turn), runs
 * the sandbox in time slices (a paused turn goes to the back of the pool's queue), and handles
 * host calls: test/... names at once, everything else through the meters (runtime/metered.h),
 * whose answers arrive from the ledger's writer once durable. A turn that waits leaves the worker
 * (phase WAITING); the next answer brings a job back. When the turn is over and nothing of it is in
 * flight (its fee's posting included), the worker writes the run's usage (each call, its cost and
 * payees, the account's balance) and the loop sends message, usage and run.done.
 *
 * Frames out: every host frame gets the next seq and goes into the log; the unwritten ones are its
 * tail, written when the socket is writable (wsconn.c). When many wait, streamed text is merged into
 * the last unwritten delta frame. Written frames stay in the log (LOG_FRAMES / LOG_BYTES) for resume.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/agents.h"
#include "runtime/base/prefetch.h"
#include "runtime/server/session.h"
#include "runtime/test_provider.h"

#define LOG_FRAMES 512
#define LOG_BYTES (1u << 20)
#define UNSENT_COALESCE 32
#define FRAME_SCRATCH_KEEP (64u << 10)
#define UNSENT_MAX_BYTES (16u << 20)
#define DETACHED_TTL_NS (120ull * 1000000000ull)

static void session_event(rt_server *srv, rt_event *ev);
static void maybe_start_next(rt_sess *s);
static void free_if_quiet(rt_sess *s);
static void cancel_current(rt_sess *s);

/* ---- frames ------------------------------------------------------------------------------------ */

/* The session's scratch frame, begun. Frames are built one at a time: a begin while one is open
 * would be a caller's bug, and gets NULL (the frame is lost) rather than a frame spoilt. */
rt_frame *rt_frame_begin(rt_sess *s, const char *type) {
    rt_frame *f = &s->frame;
    if (f->open) return NULL;
    acc_buf_reset(&f->b);
    f->open = true;
    f->is_delta = false;
    f->run = 0;
    f->seq = ++s->seq;
    /* puts, not printf: a frame is built on every message, and printf costs more than the rest */
    acc_buf_puts(&f->b, "{\"type\":\"");
    acc_buf_puts(&f->b, type);
    acc_buf_puts(&f->b, "\",\"seq\":");
    acc_buf_put_u64(&f->b, f->seq);
    return f;
}

/* ,"run":"rN" */
static void put_run(acc_buf *b, uint64_t run_no) {
    acc_buf_puts(b, ",\"run\":\"r");
    acc_buf_put_u64(b, run_no);
    acc_buf_putc(b, '"');
}

void rt_log_trim(rt_sess *s) { rt_flog_trim(&s->log, LOG_FRAMES, LOG_BYTES); }

/* Closes the frame's JSON object, appends it to the log unwritten, and asks for a write unless
 * write_now is false (the frame then waits for company, or for a timer). */
static void frame_append(rt_sess *s, rt_frame *f, bool write_now) {
    acc_buf_putc(&f->b, '}');
    f->open = false;
    rt_flog *l = &s->log;
    bool ok = !acc_buf_failed(&f->b) && rt_flog_append(l, f->seq, f->run, f->is_delta, f->b.data, f->b.len);
    if (f->b.cap > FRAME_SCRATCH_KEEP) acc_buf_free(&f->b); /* a big frame's room is not kept */
    if (!ok) return;                                        /* out of memory: the frame is lost, its seq too */
    atomic_fetch_add(&s->srv->m.ws_frames_out, 1);
    if (s->conn) {
        if (l->unsent_bytes > UNSENT_MAX_BYTES) rt_ws_close(s->conn, LWS_CLOSE_STATUS_POLICY_VIOLATION, "client reads too slowly");
        else if (write_now) rt_ws_request_write(s->conn);
    } else if (l->unsent_bytes > UNSENT_MAX_BYTES) {
        /* Detached and far behind: the oldest unwritten frames go (a resume reports the gap). */
        while (l->unsent_bytes > UNSENT_MAX_BYTES / 2 && l->unsent != l->last) rt_flog_take_unsent(l);
    }
    rt_log_trim(s);
}

void rt_frame_end(rt_sess *s, rt_frame *f) { frame_append(s, f, true); }

/* Streamed text of the current run: a new delta frame, or merged into the last unwritten one when
 * many frames wait already. */
static void emit_delta(rt_sess *s, const char *text, size_t len) {
    if (!len) return;
    acc_buf_append(&s->answer, text, len);
    rt_flog *l = &s->log;
    rt_flog_rec *last = l->frames ? rt_flog_at(l, l->last) : NULL;
    if (last && last->is_delta && last->run == s->run_no && rt_flog_has_unsent(l) &&
        l->unsent_frames >= UNSENT_COALESCE && !s->frame.open) {
        acc_buf *more = &s->frame.b; /* the scratch frame's room, free between frames */
        acc_buf_reset(more);
        rt_json_escape(more, text, len);
        acc_buf_append(more, "\"}", 2);
        /* reopen the string (the frame ends with "}) and close it again after the text */
        if (!acc_buf_failed(more)) rt_flog_extend_last(l, 2, more->data, more->len);
        if (more->cap > FRAME_SCRATCH_KEEP) acc_buf_free(more);
        return;
    }
    rt_frame *f = rt_frame_begin(s, "delta");
    if (!f) return;
    f->is_delta = true;
    f->run = s->run_no;
    put_run(&f->b, s->run_no);
    acc_buf_puts(&f->b, ",\"index\":");
    acc_buf_put_u64(&f->b, s->delta_index++);
    acc_buf_puts(&f->b, ",\"text\":\"");
    rt_json_escape(&f->b, text, len);
    acc_buf_putc(&f->b, '"');
    rt_frame_end(s, f);
}

void rt_put_reply_to(acc_buf *b, const char *reply_to) {
    if (!reply_to) return;
    acc_buf_puts(b, ",\"reply_to\":");
    acc_buf_puts(b, reply_to);
}

void rt_emit_error(rt_sess *s, const char *reply_to, const char *code, const char *msg, const char *run) {
    rt_frame *f = rt_frame_begin(s, "error");
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
    rt_frame_end(s, f);
}

/* ---- the mailbox: other threads -> the loop ---------------------------------------------------- */

static void mail_locked(rt_sess *s, unsigned flag) {
    s->mail |= flag;
    rt_post(s->srv, &s->ev);
}

/* Worker: streamed output of the agent. */
/* Worker: streamed output of the agent. The loop takes it out of the mailbox as it comes (and
 * merges deltas when the client is slow); only when the loop itself falls this far behind does the
 * turn stop (SANDBOX_BLOCKED) and go to the back of the pool's queue. */
#define MAIL_TEXT_HIGH (1u << 20)
static sandbox_output_verdict_t on_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *text,
                                          size_t len) {
    rt_sess *s = ud;
    (void)sb;
    if (kind != SANDBOX_OUTPUT_DELTA || !len) return SANDBOX_OUTPUT_OK; /* print() is counted, not shown */
    pthread_mutex_lock(&s->mu);
    acc_buf_append(&s->mail_text, text, len);
    if (!(s->mail & MAIL_DELTA)) mail_locked(s, MAIL_DELTA);
    bool full = s->mail_text.len > MAIL_TEXT_HIGH;
    pthread_mutex_unlock(&s->mu);
    return full ? SANDBOX_OUTPUT_PAUSE : SANDBOX_OUTPUT_OK;
}

/* The ledger's writer (or a worker): a call of this session is finished. */
static void on_answer(void *ud, rt_answer_t *a) {
    rt_sess *s = ud;
    a->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->answers_tail) s->answers_tail->next = a;
    else s->answers = a;
    s->answers_tail = a;
    /* a lua model's call runs on a worker now, for up to its time limit: run.started goes first */
    mail_locked(s, a->work ? MAIL_ANSWER | MAIL_FLUSH : MAIL_ANSWER);
    pthread_mutex_unlock(&s->mu);
}

/* Loop: an upstream call for this session started, streamed, or ended. */
static void on_up_start(void *ud, rt_upcall *u) {
    rt_sess *s = ud;
    s->upcall = u;
    if (s->conn && rt_flog_has_unsent(&s->log)) rt_ws_request_write(s->conn); /* a held run.started (start_run) */
    if (s->run_cancelled || s->closing) rt_upcall_cancel(u, s->closing ? "the session closed" : "the turn was cancelled");
}

static void flush_deltas(rt_sess *s, bool final);

static void on_up_chunk(void *ud, const char *text, size_t len) {
    rt_sess *s = ud;
    flush_deltas(s, false); /* what the agent sent before the call goes first */
    emit_delta(s, text, len);
}

static void on_up_done(void *ud, rt_upcall *u) {
    rt_sess *s = ud;
    if (s->upcall == u) s->upcall = NULL;
    pthread_mutex_lock(&s->mu);
    *rt_upcall_link(u) = s->upcalls;
    s->upcalls = u;
    mail_locked(s, MAIL_ANSWER);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the provider: host calls, on the worker --------------------------------------------------- */

static void test_call_line(rt_sess *s, const sandbox_call_t *call, bool ok) {
    acc_buf line = ACC_BUF_INIT;
    acc_buf_printf(&line, "{\"resource\":\"%s\",\"name\":", call->kind == SANDBOX_CALL_MODEL ? "model" : "dataset");
    rt_json_str(&line, call->name, call->name_len);
    acc_buf_printf(&line, ",\"status\":\"%s\",\"cost\":0,\"metered\":false,\"payees\":[]}", ok ? "ok" : "failed");
    if (!acc_buf_failed(&line)) {
        acc_buf_putc(&s->test_calls, ',');
        acc_buf_append(&s->test_calls, line.data, line.len);
        if (s->turn_is_message) { /* shown at once too (announce_calls) */
            acc_buf_append(&s->live_calls, line.data, line.len);
            acc_buf_putc(&s->live_calls, '\n');
        }
    }
    acc_buf_free(&line);
}

static int sess_start_call(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    rt_sess *s = ud;
    /* test/... names: the built-in test provider, free and unmetered, answered at once. */
    if (call->name_len > 5 && memcmp(call->name, "test/", 5) == 0) {
        acc_buf out = ACC_BUF_INIT;
        int ok = test_provider_answer(call->kind, call->name, call->name_len, call->json, call->json_len, &out);
        if (acc_buf_failed(&out)) ok = 0;
        sandbox_call_done(sb, call->id, ok, ok || !acc_buf_failed(&out) ? out.data : "out of memory",
                          acc_buf_failed(&out) ? 13 : out.len);
        acc_buf_free(&out);
        test_call_line(s, call, ok);
        atomic_fetch_add(call->kind == SANDBOX_CALL_MODEL ? &s->srv->m.model_calls : &s->srv->m.dataset_calls, 1);
        return ok ? 0 : -1;
    }
    if (s->budget && s->spent >= s->budget) {
        char msg[160];
        snprintf(msg, sizeof msg, "limit_exceeded: this session's budget of %" PRIu64 " is spent", s->budget);
        sandbox_call_done(sb, call->id, 0, msg, strlen(msg));
        return -1;
    }
    /* The agent may ask for the model's answer as it is made: models.call(name, {stream = true}). */
    json_t *rq = call->kind == SANDBOX_CALL_MODEL ? json_loadb(call->json, call->json_len, 0, NULL) : NULL;
    s->owner.stream = json_is_true(json_object_get(rq, "stream"));
    json_decref(rq);
    s->owner.deadline_ms = s->turn_deadline_ms;
    atomic_fetch_add(call->kind == SANDBOX_CALL_MODEL ? &s->srv->m.model_calls : &s->srv->m.dataset_calls, 1);
    sandbox_provider_t mp = rt_session_provider(s->ms);
    rt_tl_owner = &s->owner;
    int rc = mp.start_call(mp.ud, sb, call);
    rt_tl_owner = NULL;
    return rc;
}

/* ---- jobs -------------------------------------------------------------------------------------- */

static const char *limit_or_script(sandbox_t *sb) {
    return sandbox_limit_hit(sb) != SANDBOX_LIMIT_NONE ? "limit_exceeded" : "agent_error";
}

static void fail_load(rt_sess *s, const char *code, const acc_err *err) {
    s->res_status = SANDBOX_FAILED;
    s->res_limit = SANDBOX_LIMIT_NONE;
    s->res_code = code;
    snprintf(s->res_err, sizeof s->res_err, "%s", err->msg);
}

/* The load job's first half: the agent from the registry, its metered session and its sandbox. */
static bool open_agent(rt_sess *s, registry_t *reg) {
    rt_server *srv = s->srv;
    acc_err err = {0};
    char name[REGISTRY_NAME_MAX + 1], version[REGISTRY_VERSION_MAX + 1];
    registry_agent_t a;
    char *script = NULL;
    size_t len = 0;
    int rc = rt_agent_ref(s->agent_ref, name, version, &err);
    if (rc == ACC_OK) rc = registry_agent_get(reg, name, version, &a, &err);
    if (rc == ACC_OK && !a.listed) rc = acc_fail(&err, ACC_ENOTFOUND, "%s@%s is unlisted by its author", a.name, a.version);
    if (rc == ACC_OK) rc = registry_agent_script(reg, a.name, a.version, &script, &len, &err);
    if (rc != ACC_OK) {
        fail_load(s, rc == ACC_EINVAL || rc == ACC_ENOTFOUND ? "not_found" : rt_status_code_name(rc), &err);
        return false;
    }
    snprintf(s->agent_name, sizeof s->agent_name, "%s", a.name);
    snprintf(s->agent_version, sizeof s->agent_version, "%s", a.version);
    eth_address_to_text(a.author, s->author);
    s->price_per_message = a.price_per_message;
    s->price_per_session = a.price_per_session;
    meter_agent_t ma = {.price_per_message = a.price_per_message,
                        .price_per_session = a.price_per_session,
                        .markup_bps = a.markup_bps};
    snprintf(ma.name, sizeof ma.name, "%s", a.name);
    snprintf(ma.version, sizeof ma.version, "%s", a.version);
    memcpy(ma.author, s->author, sizeof ma.author);
    const char *models[REGISTRY_LIST_MAX], *datanets[REGISTRY_LIST_MAX];
    for (size_t i = 0; i < a.n_models; i++) models[i] = a.models[i];
    for (size_t i = 0; i < a.n_datanets; i++) datanets[i] = a.datanets[i];
    rt_session_config_t mc = {.reg = reg,
                              .payer = s->who.account,
                              .session = s->id,
                              .agent = &ma,
                              .models = models,
                              .nmodels = a.n_models,
                              .datanets = datanets,
                              .ndatanets = a.n_datanets,
                              .poster = {.ud = s, .post = on_answer}};
    if (rt_session_open(srv->metered, &mc, &s->ms, &err) != ACC_OK) {
        free(script);
        fail_load(s, "internal", &err);
        return false;
    }
    sandbox_limits_t limits = sandbox_default_limits();
    limits.turn.time_ms = srv->cfg.turn_time_ms ? srv->cfg.turn_time_ms : limits.turn.time_ms;
    limits.turn.slice_ms = srv->cfg.slice_ms;
    if (a.limits.memory_bytes) limits.memory_bytes = (size_t)a.limits.memory_bytes;
    if (a.limits.instructions) limits.turn.instructions = a.limits.instructions;
    if (a.limits.time_ms) limits.turn.time_ms = a.limits.time_ms;
    if (a.limits.output_bytes) limits.turn.output_bytes = (size_t)a.limits.output_bytes;
    sandbox_provider_t prov = {.ud = s, .start_call = sess_start_call, .output = on_output};
    acc_err e2 = {0};
    s->sb = sandbox_open(&limits, &prov, &e2);
    if (s->sb) atomic_store(&s->sb_id, sandbox_id(s->sb));
    char chunk[REGISTRY_NAME_MAX + 2];
    snprintf(chunk, sizeof chunk, "=%s", a.name);
    if (!s->sb || sandbox_start_load(s->sb, chunk, script, len, NULL) != ACC_OK) {
        if (s->sb) acc_fail(&e2, sandbox_errcode(s->sb), "%s", sandbox_errmsg(s->sb));
        /* No sandbox: out of memory (or of address space for its heap) is the server at capacity. */
        fail_load(s, s->sb ? limit_or_script(s->sb) : e2.code == ACC_ENOMEM ? "unavailable" : "internal", &e2);
        if (s->sb) s->res_limit = sandbox_limit_hit(s->sb);
        free(script);
        return false;
    }
    free(script);
    sandbox_set_userdata(s->sb, s);
    s->turn_active = true;
    s->turn_is_message = false;
    s->turn_time_ms = limits.turn.time_ms;
    s->turn_deadline_ms = rt_now_ns() / 1000000 + limits.turn.time_ms;
    return true;
}

/* One call of a usage frame (and of its call frame): resource, name, call id, status, units, cost,
 * payees, and the error of a failed one, or how a call charged though cut short ended ("cut"). */
static void receipt_json(acc_buf *u, const rt_receipt_t *r) {
    char hex[33];
    ledger_id_hex(&r->id, hex);
    acc_buf_puts(u, "{\"resource\":\"");
    acc_buf_puts(u, meter_resource_name(r->resource));
    acc_buf_puts(u, "\",\"name\":");
    acc_buf_json_string(u, r->name, strlen(r->name));
    acc_buf_puts(u, ",\"call\":\"");
    acc_buf_puts(u, ledger_id_is_zero(&r->id) ? "" : hex);
    acc_buf_puts(u, "\",\"status\":\"");
    acc_buf_puts(u, r->status == ACC_OK ? "ok" : rt_status_code_name(r->status));
    acc_buf_puts(u, "\",\"units_in\":");
    acc_buf_put_u64(u, r->units_in);
    acc_buf_puts(u, ",\"units_out\":");
    acc_buf_put_u64(u, r->units_out);
    acc_buf_puts(u, ",\"cost\":");
    acc_buf_put_u64(u, r->cost);
    acc_buf_puts(u, ",\"payees\":[");
    for (size_t i = 0; i < r->nlines; i++) {
        acc_buf_puts(u, i ? ",{\"role\":\"" : "{\"role\":\"");
        acc_buf_puts(u, meter_role_name(r->lines[i].role));
        acc_buf_puts(u, "\",\"payee\":\"");
        acc_buf_puts(u, r->lines[i].payee);
        acc_buf_puts(u, "\",\"amount\":");
        acc_buf_put_u64(u, r->lines[i].amount);
        acc_buf_putc(u, '}');
    }
    acc_buf_putc(u, ']');
    if (r->cut) { /* charged for what it had passed on before it was cancelled (or timed out) */
        acc_buf_puts(u, ",\"cut\":\"");
        acc_buf_puts(u, rt_status_code_name(r->cut));
        acc_buf_putc(u, '"');
    }
    if ((r->status != ACC_OK || r->cut) && r->error[0]) {
        acc_buf_puts(u, ",\"error\":");
        acc_buf_json_string(u, r->error, strlen(r->error));
    }
    acc_buf_putc(u, '}');
}

/* Worker: the calls of the turn finished since the last look go to the loop, which sends each as a
 * call frame at once (the meter as it is booked; the usage frame sums them up at the end). A
 * load's calls are not shown. */
static void announce_calls(rt_sess *s) {
    const rt_receipt_t *r = s->shown ? s->shown->next : rt_session_receipts(s->ms);
    if (!r && !s->live_calls.len) return;
    for (; r; r = r->next) {
        if (s->turn_is_message) {
            receipt_json(&s->live_calls, r);
            acc_buf_putc(&s->live_calls, '\n');
        }
        s->shown = r;
    }
    if (!s->live_calls.len) return;
    if (!s->turn_is_message) {
        acc_buf_reset(&s->live_calls);
        return;
    }
    pthread_mutex_lock(&s->mu);
    acc_buf_append(&s->mail_calls, s->live_calls.data, s->live_calls.len);
    /* No wake-up of its own: the worker's next report (the turn waiting, streaming, pausing or
     * ending, all soon) carries it, so a call booked just before its turn ends leaves in the
     * same write as the turn's last frames. */
    s->mail |= MAIL_CALLS;
    pthread_mutex_unlock(&s->mu);
    acc_buf_reset(&s->live_calls);
}

/* The turn's usage frame body: every call of the turn with its cost and payees, and the balance. */
static void build_usage(rt_sess *s) {
    rt_server *srv = s->srv;
    announce_calls(s);
    acc_buf *u = &s->usage;
    acc_buf_reset(u);
    acc_buf_puts(u, ",\"calls\":[");
    uint64_t cost = 0;
    bool first = true;
    for (const rt_receipt_t *r = rt_session_receipts(s->ms); r; r = r->next) {
        if (!first) acc_buf_putc(u, ',');
        first = false;
        receipt_json(u, r);
        if (r->status == ACC_OK) cost += r->cost;
        if (r->status == ACC_EFUNDS) s->funds_refused = true;
    }
    if (s->test_calls.len) acc_buf_append(u, s->test_calls.data + (first ? 1 : 0), s->test_calls.len - (first ? 1 : 0));
    acc_buf_reset(&s->test_calls);
    rt_session_clear_receipts(s->ms);
    s->shown = NULL;
    s->spent += cost;
    acc_buf_puts(u, "],\"cost\":");
    acc_buf_put_u64(u, cost);
    ledger_account_t *acct;
    ledger_balance_t bal;
    if (ledger_account(srv->ledger, LEDGER_ACCOUNT_USER, s->who.account, &acct, NULL) == ACC_OK &&
        ledger_balance(srv->ledger, acct, false, &bal, NULL) == ACC_OK) {
        acc_buf_puts(u, ",\"balance\":");
        acc_buf_put_u64(u, bal.available);
    }
}

/* Takes the mailbox's answers and upstream replies and hands them over, on this worker. */
static bool take_mail(rt_sess *s) {
    pthread_mutex_lock(&s->mu);
    rt_answer_t *a = s->answers;
    rt_upcall *d = s->upcalls;
    s->answers = s->answers_tail = NULL;
    s->upcalls = NULL;
    pthread_mutex_unlock(&s->mu);
    if (!a && !d) return false;
    while (d) {
        rt_upcall *n = *rt_upcall_link(d);
        rt_tl_owner = &s->owner;
        rt_upcall_finish(d); /* may answer the sandbox at once (a failed call), or post later */
        rt_tl_owner = NULL;
        d = n;
    }
    while (a) {
        rt_answer_t *n = a->next;
        rt_answer_deliver(a);
        a = n;
    }
    return true;
}

/* A worker took this session's job ahead (pool.c): the session is its own until the job has run.
 * What the job touches first starts loading: the session's worker lines and its mailbox, and the
 * metering session and the sandbox (rt_session_prefetch: the lines its resume reads). */
static void job_ahead(rt_job *job) {
    rt_sess *s = (rt_sess *)((char *)job - offsetof(rt_sess, job));
    acc_prefetch_lines(job, (size_t)((const char *)(&s->spent + 1) - (const char *)job));
    __builtin_prefetch(&s->mu, 1, 3);
    __builtin_prefetch(&s->answers, 1, 3);
    if (s->ms) rt_session_prefetch(s->ms);
}

/* Queues the session's job. Only a turn's job may be taken ahead (job_ahead): it delivers answers
 * or resumes a paused turn, what sandbox_prefetch loads lines for; a new message's start reads
 * other lines, and its worker gained nothing from them (BENCHMARKS.md). */
static void enqueue(rt_sess *s) {
    s->job.ahead = s->job_kind == JOB_RUN ? job_ahead : NULL;
    rt_pool_submit(s->srv->pool, &s->job);
}

/* Runs the session's turn as far as it goes on this worker. */
static void advance(rt_sess *s) {
    for (;;) {
        if (s->turn_active && !s->turn_over) {
            sandbox_status_t st = sandbox_run(s->sb);
            announce_calls(s); /* refused at once, or test/... */
            if (st == SANDBOX_PAUSED || st == SANDBOX_BLOCKED) {
                /* the loop sends what waits: run.started at the first pause, call frames */
                pthread_mutex_lock(&s->mu);
                if (!s->slice_told || (s->mail & MAIL_CALLS)) mail_locked(s, MAIL_FLUSH);
                pthread_mutex_unlock(&s->mu);
                s->slice_told = true;
                s->job_kind = JOB_RUN;
                enqueue(s); /* to the back of the queue */
                return;
            }
            if (st != SANDBOX_WAITING) {
                s->turn_over = true;
                s->res_status = st;
                s->res_limit = st == SANDBOX_FAILED ? sandbox_limit_hit(s->sb) : SANDBOX_LIMIT_NONE;
                if (st == SANDBOX_FAILED) snprintf(s->res_err, sizeof s->res_err, "%s", sandbox_errmsg(s->sb));
                free(s->res_reply);
                s->res_reply = NULL;
                s->res_reply_len = 0;
                if (st == SANDBOX_DONE && s->turn_is_message) {
                    size_t len;
                    const char *reply = sandbox_reply(s->sb, &len);
                    if (reply && len && (s->res_reply = malloc(len))) {
                        memcpy(s->res_reply, reply, len);
                        s->res_reply_len = len;
                    }
                }
                acc_err err = {0};
                if (s->turn_is_message) rt_session_end_message(s->ms, st == SANDBOX_DONE, &err);
            }
        }
        if (take_mail(s)) { /* delivered: the sandbox may run again */
            announce_calls(s);
            continue;
        }
        if (s->turn_over && rt_session_in_flight(s->ms) == 0) break;
        /* Nothing to hand over: wait, unless something arrived since the look above. */
        pthread_mutex_lock(&s->mu);
        if (s->answers || s->upcalls) {
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        mail_locked(s, MAIL_WAIT);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    /* The turn is over and settled. */
    s->turn_active = false;
    build_usage(s); /* a load's usage is not shown (its calls, if any, were booked all the same) */
    pthread_mutex_lock(&s->mu);
    mail_locked(s, MAIL_END);
    pthread_mutex_unlock(&s->mu);
}

static void job_run(rt_job *job) {
    rt_sess *s = (rt_sess *)((char *)job - offsetof(rt_sess, job));
    rt_server *srv = s->srv;
    acc_err err = {0};
    if (s->job_kind == JOB_CLOSE) {
        if (s->sb) sandbox_close(s->sb);
        s->sb = NULL;
        rt_session_close(s->ms);
        s->ms = NULL;
        pthread_mutex_lock(&s->mu);
        mail_locked(s, MAIL_END);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    registry_t *reg = rt_worker_registry(srv, &err);
    if (!reg) {
        fail_load(s, "unavailable", &err);
        s->turn_over = true;
        s->turn_active = false;
        pthread_mutex_lock(&s->mu);
        mail_locked(s, MAIL_END);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->job_kind == JOB_LOAD) {
        s->res_code = NULL;
        s->turn_over = false;
        s->slice_told = false;
        if (!open_agent(s, reg)) {
            s->turn_over = true;
            s->turn_active = false;
            pthread_mutex_lock(&s->mu);
            mail_locked(s, MAIL_END);
            pthread_mutex_unlock(&s->mu);
            return;
        }
        rt_session_set_registry(s->ms, reg);
        /* A cancel between turns does nothing: one that came before the turn started is made again. */
        if (atomic_load(&s->cancel_req)) sandbox_cancel(sandbox_id(s->sb));
    } else {
        rt_session_set_registry(s->ms, reg);
    }
    if (s->job_kind == JOB_MESSAGE) {
        s->res_code = NULL;
        s->funds_refused = false;
        s->turn_over = false;
        s->slice_told = false;
        s->turn_is_message = true;
        rt_session_set_request_id(s->ms, s->job_reply_to ? s->job_reply_to : "");
        if (s->budget && s->spent >= s->budget) {
            s->turn_over = true;
            s->res_status = SANDBOX_FAILED;
            s->res_limit = SANDBOX_LIMIT_NONE;
            s->res_code = "limit_exceeded";
            snprintf(s->res_err, sizeof s->res_err, "this session's budget of %" PRIu64 " is spent", s->budget);
        } else if (rt_session_begin_message(s->ms, &err) != ACC_OK) {
            s->turn_over = true;
            s->res_status = SANDBOX_FAILED;
            s->res_limit = SANDBOX_LIMIT_NONE;
            s->res_code = err.code == ACC_EFUNDS ? "insufficient_funds" : rt_status_code_name(err.code);
            snprintf(s->res_err, sizeof s->res_err, "%s", err.msg);
        } else if (sandbox_start_message(s->sb, s->job_text, s->job_len, NULL) != ACC_OK) {
            acc_err e2 = {0};
            rt_session_end_message(s->ms, false, &e2);
            s->turn_over = true;
            s->res_status = SANDBOX_FAILED;
            s->res_limit = SANDBOX_LIMIT_NONE;
            snprintf(s->res_err, sizeof s->res_err, "%s", sandbox_errmsg(s->sb));
        } else {
            s->turn_active = true;
            s->turn_deadline_ms = rt_now_ns() / 1000000 + s->turn_time_ms;
            /* A cancel between turns does nothing: one that came before the start is made again. */
            if (atomic_load(&s->cancel_req)) sandbox_cancel(sandbox_id(s->sb));
        }
        free(s->job_text);
        s->job_text = NULL;
        if (s->turn_over) s->turn_active = true; /* nothing ran; advance settles and reports */
    }
    advance(s);
}

static void submit(rt_sess *s, enum rt_job_kind kind) {
    s->job_kind = kind;
    s->phase = PH_RUNNING;
    enqueue(s);
}

/* ---- runs, on the loop -------------------------------------------------------------------------- */

static void run_id(const rt_sess *s, char out[24]) { /* "r<run_no>", without printf: every run makes one */
    char digits[21];
    size_t n = 0;
    uint64_t v = s->run_no;
    do digits[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    out[0] = 'r';
    for (size_t i = 0; i < n; i++) out[1 + i] = digits[n - 1 - i];
    out[1 + n] = 0;
}

/* Moves the streamed text from the mailbox into delta frames. A piece ending inside a character
 * keeps that tail for the next piece, but at the end of the turn. */
static void flush_deltas(rt_sess *s, bool final) {
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
    if (!final && n < text.len && !tail) n = text.len; /* invalid, not incomplete: send it, escaped */
    emit_delta(s, text.data, n);
    if (n < text.len) {
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

/* Moves the calls booked (or refused) so far into call frames, one per call, in the order they
 * finished: {"type":"call","seq":N,"run":"rK", then the call's fields as in the usage frame}. */
static void flush_calls(rt_sess *s) {
    pthread_mutex_lock(&s->mu);
    acc_buf calls = s->mail_calls;
    s->mail_calls = (acc_buf)ACC_BUF_INIT;
    s->mail &= ~(unsigned)MAIL_CALLS;
    pthread_mutex_unlock(&s->mu);
    const char *p = calls.data, *end = calls.data ? calls.data + calls.len : NULL;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        if (nl - p >= 2 && *p == '{') {
            rt_frame *f = rt_frame_begin(s, "call");
            if (f) {
                put_run(&f->b, s->run_no);
                acc_buf_putc(&f->b, ',');
                acc_buf_append(&f->b, p + 1, (size_t)(nl - p - 2)); /* the fields (rt_frame_end closes) */
                rt_frame_end(s, f);
            }
        }
        p = nl + 1;
    }
    acc_buf_free(&calls);
}

static void emit_session_ready(rt_sess *s) {
    rt_frame *f = rt_frame_begin(s, "session.ready");
    if (!f) return;
    acc_buf_puts(&f->b, ",\"session\":");
    rt_json_cstr(&f->b, s->id);
    acc_buf_puts(&f->b, ",\"agent\":");
    rt_json_cstr(&f->b, s->agent_name);
    acc_buf_puts(&f->b, ",\"version\":");
    rt_json_cstr(&f->b, s->agent_version);
    acc_buf_printf(&f->b, ",\"author\":\"%s\",\"price\":{\"per_message\":%" PRIu64 ",\"per_session\":%" PRIu64
                          "},\"budget\":%" PRIu64,
                   s->author, s->price_per_message, s->price_per_session, s->budget);
    rt_put_reply_to(&f->b, s->start_reply_to);
    rt_frame_end(s, f);
    free(s->start_reply_to);
    s->start_reply_to = NULL;
}

static void start_run(rt_sess *s, rt_queued *m) {
    s->run_no++;
    s->delta_index = 0;
    s->run_cancelled = false;
    atomic_store(&s->cancel_req, false);
    acc_buf_reset(&s->answer);
    free(s->run_reply_to);
    s->run_reply_to = m->reply_to;
    /* run.started is held until the run has something else to send or may take a while: its
     * first output or call frame, its end, an upstream (http) or lua model call starting, its
     * first used-up time slice. A waiting built-in model or dataset call does not send it: that
     * wait is one ledger commit, and the run's frames then leave in one write (one TCP segment)
     * instead of two. (Not on a timer: lws 4.1.6 polls with millisecond timeouts rounded down,
     * so a timer due within the next millisecond makes the loop spin in poll(0) until it fires;
     * a short timer per run kept the loop spinning under load.) A run queued behind a busy pool,
     * or waiting on a commit slowed by the disk, is announced by the tick at the latest. */
    rt_frame *f = rt_frame_begin(s, "run.started");
    if (f) {
        put_run(&f->b, s->run_no);
        rt_put_reply_to(&f->b, s->run_reply_to);
        frame_append(s, f, false);
    }
    s->job_text = m->text;
    s->job_len = m->len;
    /* The usage events carry the client's message id (or the run id when it gave none). */
    free(s->job_reply_to);
    s->job_reply_to = NULL;
    size_t idn = m->reply_to ? strlen(m->reply_to) : 0;
    if (idn >= 2 && m->reply_to[0] == '"' && !memchr(m->reply_to, '\\', idn)) { /* a string without escapes */
        s->job_reply_to = strndup(m->reply_to + 1, idn - 2);
    } else if (m->reply_to) {
        json_t *id = json_loads(m->reply_to, JSON_DECODE_ANY, NULL);
        s->job_reply_to = json_is_string(id) ? strdup(json_string_value(id)) : strdup(m->reply_to);
        json_decref(id);
    } else {
        char rid[24];
        run_id(s, rid);
        s->job_reply_to = strdup(rid);
    }
    free(m);
    atomic_fetch_add(&s->srv->m.turns, 1);
    submit(s, JOB_MESSAGE);
}

static void maybe_start_next(rt_sess *s) {
    if (s->phase != PH_IDLE || s->loading || !s->q_head || s->closing) return;
    rt_queued *m = s->q_head;
    s->q_head = m->next;
    if (!s->q_head) s->q_tail = NULL;
    s->q_len--;
    start_run(s, m);
}

void rt_sess_message(rt_sess *s, rt_queued *m) {
    if (s->q_tail) s->q_tail->next = m;
    else s->q_head = m;
    s->q_tail = m;
    s->q_len++;
    maybe_start_next(s);
}

static const char *failure_code(const rt_sess *s) {
    if (s->res_code) return s->res_code;
    /* A call refused for want of money fails in the agent with metered.c's message, which starts
     * with the code's name; a turn that ends on it (the agent did not catch it) says so. */
    if (s->funds_refused || (s->res_limit == SANDBOX_LIMIT_NONE && strstr(s->res_err, "insufficient_funds: ")))
        return "insufficient_funds";
    return s->res_limit == SANDBOX_LIMIT_NONE ? "agent_error" : "limit_exceeded";
}

static void end_run(rt_sess *s) {
    char rid[24];
    run_id(s, rid);
    flush_deltas(s, true);
    const char *status = "completed";
    if (s->res_status == SANDBOX_DONE) {
        rt_frame *f = rt_frame_begin(s, "message");
        if (f) {
            put_run(&f->b, s->run_no);
            rt_put_reply_to(&f->b, s->run_reply_to);
            acc_buf_puts(&f->b, ",\"content\":\"");
            rt_json_escape(&f->b, s->answer.data ? s->answer.data : "", s->answer.len);
            rt_json_escape(&f->b, s->res_reply ? s->res_reply : "", s->res_reply_len);
            acc_buf_putc(&f->b, '"');
            rt_frame_end(s, f);
        }
    } else if (s->res_limit == SANDBOX_LIMIT_CANCELLED) {
        status = "cancelled";
    } else {
        status = "failed";
        atomic_fetch_add(&s->srv->m.turns_failed, 1);
        if (s->res_limit != SANDBOX_LIMIT_NONE) atomic_fetch_add(&s->srv->m.limit_hits[s->res_limit], 1);
        char msg[480];
        if (s->res_limit != SANDBOX_LIMIT_NONE && !s->res_code)
            snprintf(msg, sizeof msg, "the agent's turn hit its %s", sandbox_limit_name(s->res_limit));
        else snprintf(msg, sizeof msg, "%s", s->res_err);
        rt_emit_error(s, s->run_reply_to, failure_code(s), msg, rid);
    }
    rt_frame *u = rt_frame_begin(s, "usage");
    if (u) {
        put_run(&u->b, s->run_no);
        if (s->usage.len) acc_buf_append(&u->b, s->usage.data, s->usage.len);
        else acc_buf_puts(&u->b, ",\"calls\":[],\"cost\":0");
        rt_frame_end(s, u);
    }
    rt_frame *d = rt_frame_begin(s, "run.done");
    if (d) {
        put_run(&d->b, s->run_no);
        acc_buf_puts(&d->b, ",\"status\":\"");
        acc_buf_puts(&d->b, status);
        acc_buf_putc(&d->b, '"');
        rt_put_reply_to(&d->b, s->run_reply_to);
        rt_frame_end(s, d);
    }
    free(s->run_reply_to);
    s->run_reply_to = NULL;
    free(s->res_reply);
    s->res_reply = NULL;
    acc_buf_reset(&s->usage);
}

/* The load is over: session.ready, or the error and the end of the session. */
static void end_load(rt_sess *s) {
    s->loading = false;
    if (s->res_status == SANDBOX_DONE) {
        emit_session_ready(s);
        acc_buf_free(&s->frame.b); /* a session that stays idle keeps no frame's room */
        return;
    }
    char msg[480];
    if (s->res_code) snprintf(msg, sizeof msg, "%s", s->res_err);
    else if (s->res_limit != SANDBOX_LIMIT_NONE)
        snprintf(msg, sizeof msg, "the agent's script hit its %s while loading", sandbox_limit_name(s->res_limit));
    else snprintf(msg, sizeof msg, "the agent's script failed to load: %s", s->res_err);
    rt_emit_error(s, s->start_reply_to, failure_code(s), msg, NULL);
    s->closing = true;
}

static void session_event(rt_server *srv, rt_event *ev) {
    rt_sess *s = (rt_sess *)((char *)ev - offsetof(rt_sess, ev));
    (void)srv;
    pthread_mutex_lock(&s->mu);
    unsigned mail = s->mail;
    s->mail &= ~(unsigned)(MAIL_END | MAIL_WAIT | MAIL_ANSWER | MAIL_FLUSH);
    pthread_mutex_unlock(&s->mu);
    if ((mail & MAIL_FLUSH) && s->conn && rt_flog_has_unsent(&s->log)) rt_ws_request_write(s->conn); /* run.started */

    if (mail & MAIL_DELTA) flush_deltas(s, false);
    if (mail & MAIL_CALLS) flush_calls(s);
    if (mail & MAIL_WAIT) s->phase = PH_WAITING;
    if (mail & MAIL_END) {
        if (s->phase == PH_CLOSING) s->phase = PH_DEAD;
        else {
            s->phase = PH_IDLE;
            if (s->loading) end_load(s);
            else end_run(s);
        }
    }
    if (s->phase == PH_WAITING) { /* answers that came while the worker was leaving */
        pthread_mutex_lock(&s->mu);
        bool more = s->answers || s->upcalls;
        pthread_mutex_unlock(&s->mu);
        if (more) submit(s, JOB_RUN);
    }
    if (s->closing) {
        free_if_quiet(s);
        return;
    }
    maybe_start_next(s);
}

/* ---- life and death ---------------------------------------------------------------------------- */

static void key_count(rt_server *srv, const char *key_id, int delta) {
    uintptr_t n = (uintptr_t)rt_map_get(&srv->key_sessions, key_id);
    n = (uintptr_t)((intptr_t)n + delta);
    if (n) rt_map_put(&srv->key_sessions, key_id, (void *)n);
    else rt_map_del(&srv->key_sessions, key_id);
}

rt_sess *rt_sess_new(rt_ws *c, const char *agent_ref, uint64_t budget, const char *reply_to, acc_err *err) {
    rt_server *srv = c->srv;
    rt_sess *s = calloc(1, sizeof *s);
    if (!s) {
        acc_fail(err, ACC_ENOMEM, "out of memory");
        return NULL;
    }
    s->srv = srv;
    s->who = c->who;
    rt_random_hex(s->id, 16);
    snprintf(s->agent_ref, sizeof s->agent_ref, "%s", agent_ref);
    s->budget = budget;
    s->job.fn = job_run;
    s->ev.fn = session_event;
    s->owner = (rt_call_owner){.ud = s, .on_start = on_up_start, .on_chunk = on_up_chunk, .on_done = on_up_done};
    pthread_mutex_init(&s->mu, NULL);
    if (rt_map_put(&srv->sessions, s->id, s) != ACC_OK) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        acc_fail(err, ACC_ENOMEM, "out of memory");
        return NULL;
    }
    s->start_reply_to = reply_to ? strdup(reply_to) : NULL;
    key_count(srv, s->who.key_id, +1);
    s->counted = true;
    srv->sessions_alive++;
    atomic_fetch_add(&srv->m.sessions_opened, 1);
    atomic_fetch_add(&srv->m.sessions_live, 1);
    rt_sess_attach(s, c);
    s->loading = true;
    submit(s, JOB_LOAD);
    return s;
}

static void free_frames(rt_sess *s) {
    rt_flog_free(&s->log);
    acc_buf_free(&s->frame.b);
    for (rt_queued *m = s->q_head, *n; m; m = n) {
        n = m->next;
        free(m->reply_to);
        free(m->text);
        free(m);
    }
    s->q_head = s->q_tail = NULL;
    s->q_len = 0;
}

/* Frees the session once nothing is in flight. A running turn is cancelled first; an open sandbox
 * and metered session are closed on a worker (lua_close of a big heap takes time). */
static void free_if_quiet(rt_sess *s) {
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
        rt_sess_detach(s);
    }
    if (s->sb || s->ms) {
        s->phase = PH_CLOSING;
        s->job_kind = JOB_CLOSE;
        enqueue(s);
        return;
    }
    /* The mailbox must be quiet: no event of ours queued, and the worker's last unlock done. */
    pthread_mutex_lock(&srv->net.inbox_mu);
    bool queued = s->ev.queued;
    pthread_mutex_unlock(&srv->net.inbox_mu);
    pthread_mutex_lock(&s->mu);
    pthread_mutex_unlock(&s->mu);
    if (queued) return; /* session_event runs again and comes back here */
    free_frames(s);
    acc_buf_free(&s->answer);
    acc_buf_free(&s->usage);
    acc_buf_free(&s->test_calls);
    acc_buf_free(&s->mail_text);
    acc_buf_free(&s->mail_calls);
    acc_buf_free(&s->live_calls);
    free(s->start_reply_to);
    free(s->run_reply_to);
    free(s->res_reply);
    free(s->job_text);
    free(s->job_reply_to);
    pthread_mutex_destroy(&s->mu);
    srv->sessions_alive--;
    free(s);
}

void rt_sess_close(rt_sess *s) {
    s->closing = true;
    free_if_quiet(s);
}

void rt_sess_attach(rt_sess *s, rt_ws *c) {
    if (s->conn && s->conn != c) { /* taken over: the old connection goes */
        rt_ws *old = s->conn;
        old->s = NULL;
        rt_ws_close(old, LWS_CLOSE_STATUS_NORMAL, "session resumed elsewhere");
    }
    s->conn = c;
    s->detached_ns = 0;
    c->s = s;
    if (rt_flog_has_unsent(&s->log)) rt_ws_request_write(c);
}

/* The session leaves its connection: what the connection has not written yet goes with it. */
void rt_sess_detach(rt_sess *s) {
    rt_ws *c = s->conn;
    if (!c) return;
    while (rt_flog_has_unsent(&s->log)) {
        const rt_flog_rec *r = rt_flog_take_unsent(&s->log);
        rt_ws_loose(c, rt_flog_json(r), r->len);
    }
    c->s = NULL;
    s->conn = NULL;
    rt_ws_request_write(c);
}

static void cancel_current(rt_sess *s) {
    s->run_cancelled = true;
    atomic_store(&s->cancel_req, true);
    uint64_t id = atomic_load(&s->sb_id); /* 0 while the worker has yet to open it: cancel_req does it */
    if (id) sandbox_cancel(id);             /* by id: any thread, any time */
    if (s->upcall) rt_upcall_cancel(s->upcall, s->closing ? "the session closed" : "the turn was cancelled");
    /* A turn waiting for a reply: run it now, so it sees the cancel. */
    if (s->phase == PH_WAITING) submit(s, JOB_RUN);
}

bool rt_sess_cancel(rt_sess *s, const char *run) {
    char cur[24];
    run_id(s, cur);
    bool running = (s->phase == PH_RUNNING || s->phase == PH_WAITING) && !s->loading;
    if (!running || (run && strcmp(run, cur) != 0)) return false;
    if (!s->run_cancelled) cancel_current(s);
    return true;
}

/* ---- upkeep and shutdown -------------------------------------------------------------------------- */

void rt_sessions_tick(rt_server *srv) {
    uint64_t now = rt_now_ns();
    rt_sess *expired[64];
    size_t n = 0;
    rt_map_entry *e;
    for (size_t i = 0; n < 64 && rt_map_next(&srv->sessions, &i, &e);) {
        rt_sess *s = e->value;
        if (s->conn && rt_flog_has_unsent(&s->log)) rt_ws_request_write(s->conn); /* a run.started still held (start_run) */
        if (!s->conn && s->detached_ns && now - s->detached_ns > DETACHED_TTL_NS && s->phase == PH_IDLE && !s->q_head)
            expired[n++] = s;
    }
    for (size_t i = 0; i < n; i++) rt_sess_close(expired[i]);
}

bool rt_sessions_drain(rt_server *srv) {
    bool quiet = true;
    rt_map_entry *e;
    for (size_t i = 0; rt_map_next(&srv->sessions, &i, &e);) {
        rt_sess *s = e->value;
        for (rt_queued *m = s->q_head, *nx; m; m = nx) { /* waiting messages never start */
            nx = m->next;
            free(m->reply_to);
            free(m->text);
            free(m);
        }
        s->q_head = s->q_tail = NULL;
        s->q_len = 0;
        if (s->phase == PH_RUNNING || s->phase == PH_WAITING) {
            if (!s->run_cancelled && !s->loading) cancel_current(s);
            quiet = false;
        }
    }
    return quiet;
}

void rt_sessions_close_all(rt_server *srv) {
    rt_sess *all[256];
    for (;;) {
        size_t n = 0;
        rt_map_entry *e;
        for (size_t i = 0; n < 256 && rt_map_next(&srv->sessions, &i, &e);) all[n++] = e->value;
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            rt_sess *s = all[i];
            if (s->conn) rt_ws_close(s->conn, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
            rt_sess_close(s);
            if (s->counted) { /* still running: it leaves the table now, and goes when quiet */
                s->counted = false;
                key_count(srv, s->who.key_id, -1);
                rt_map_del(&srv->sessions, s->id);
                atomic_fetch_sub(&srv->m.sessions_live, 1);
            }
        }
    }
}
