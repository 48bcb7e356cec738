/*
 * session.h: what session.c (sessions: their agents, turns and frames) and wsconn.c (the WebSocket
 * connections that carry them) share. Internal to the server.
 *
 * A session is one agent in its own sandbox, metered through its own rt_session_t
 * (runtime/metered.h), talked to over JSON text frames (ARCHITECTURE.md, Sessions). It outlives
 * its connection: a client that drops keeps its running turn, which finishes and is paid for, and a
 * new connection takes the session back with session.resume, replaying what it missed from a
 * bounded log.
 *
 * Who touches what:
 *   - The loop owns the frames (the log), the queue of waiting messages, the connection and the
 *     phase.
 *   - A worker owns the sandbox and the metered session while it runs the session's one job (load
 *     the agent, start a message, carry on after a pause, an answer or an upstream's reply), with
 *     its own registry handle set on the metered session. It reports through the mailbox, under
 *     the session's mutex, and rt_post. Its last touch of the session is releasing that mutex, and
 *     the loop frees a session only after taking it.
 *   - The ledger's writer thread posts finished calls (rt_answer_t) into the mailbox; they are
 *     delivered on the worker that runs the session next.
 */
#ifndef ACCRUE_RUNTIME_SERVER_SESSION_H
#define ACCRUE_RUNTIME_SERVER_SESSION_H

#include <jansson.h>

#include "runtime/server/internal.h"

enum rt_phase {
    PH_IDLE,    /* no job: ready for a message (or, with `loading`, about to load) */
    PH_RUNNING, /* a job is queued or running on a worker */
    PH_WAITING, /* the turn waits for an answer or an upstream (no job) */
    PH_CLOSING, /* the job closing the sandbox is queued or running */
    PH_DEAD,    /* nothing left but memory: freed once the mailbox is quiet */
};

enum rt_job_kind { JOB_LOAD, JOB_MESSAGE, JOB_RUN, JOB_CLOSE };

/* MAIL_CALLS is set without waking the loop (announce_calls): the call frames go out with the
 * worker's next report, which always wakes it (WAIT, END, FLUSH, DELTA). MAIL_FLUSH: send what
 * waits (a held run.started): the turn used up a time slice, or a lua model's call is to run. */
enum rt_mail { MAIL_DELTA = 1, MAIL_END = 2, MAIL_WAIT = 4, MAIL_ANSWER = 8, MAIL_CALLS = 16, MAIL_FLUSH = 32 };

/* A host frame being built (rt_frame_begin .. rt_frame_end): the session's one scratch frame, its
 * JSON then copied into the log. */
typedef struct rt_frame {
    uint64_t seq;
    uint64_t run; /* deltas: the run they belong to (merging) */
    bool is_delta;
    bool open;
    acc_buf b; /* the JSON text */
} rt_frame;

/* The log of a session's frames (framelog.c): records in one buffer, offsets into it. */
typedef struct rt_flog_rec {
    uint64_t seq;
    uint64_t run;  /* deltas: the run they belong to */
    uint32_t len;  /* of the JSON text that follows the header */
    bool is_delta; /* an unwritten delta more text may be merged into */
} rt_flog_rec;

typedef struct rt_flog {
    char *buf;
    size_t cap;
    size_t head, unsent, tail; /* kept: [head, tail); not yet written: [unsent, tail) */
    size_t last;               /* the newest record (when frames > 0) */
    size_t frames, bytes;      /* kept (bytes: as the bounds count them, rt_flog_cost) */
    size_t unsent_frames, unsent_bytes;
} rt_flog;

bool rt_flog_append(rt_flog *l, uint64_t seq, uint64_t run, bool is_delta, const char *json, size_t len);
/* The newest record's JSON loses its last cut bytes and gains more[0..n). false: out of memory. */
bool rt_flog_extend_last(rt_flog *l, size_t cut, const char *more, size_t n);
/* Drops the oldest written records while more than max_frames or max_bytes of them are kept. */
void rt_flog_trim(rt_flog *l, size_t max_frames, size_t max_bytes);
void rt_flog_free(rt_flog *l);
rt_flog_rec *rt_flog_at(const rt_flog *l, size_t off); /* valid until the next append */
size_t rt_flog_next(const rt_flog *l, size_t off);
size_t rt_flog_cost(const rt_flog_rec *r);
static inline const char *rt_flog_json(const rt_flog_rec *r) { return (const char *)(r + 1); }
static inline bool rt_flog_has_unsent(const rt_flog *l) { return l->unsent != l->tail; }
/* The oldest unwritten record, now counted as written (the caller writes it, or lets it go). */
rt_flog_rec *rt_flog_take_unsent(rt_flog *l);
/* Brings the oldest records' headers toward the cache: about bytes of them will be trimmed soon. */
void rt_flog_prefetch_oldest(const rt_flog *l, size_t bytes);

typedef struct rt_queued {
    struct rt_queued *next;
    char *reply_to; /* the client's id as JSON text, or NULL */
    char *text;
    size_t len;
} rt_queued;

struct rt_sess {
    char id[33];
    rt_server *srv;
    rt_principal who;
    char agent_ref[REGISTRY_NAME_MAX + REGISTRY_VERSION_MAX + 2]; /* as the client asked */
    uint64_t budget;                                              /* 0: no session cap */

    /* Loop-owned. */
    rt_ws *conn;
    enum rt_phase phase;
    bool loading;     /* the current job loads the agent */
    bool closing;     /* free once nothing is in flight */
    bool counted;     /* counts toward its key's live sessions */
    rt_flog log;
    rt_frame frame; /* the frame being built */
    uint64_t seq;
    rt_queued *q_head, *q_tail;
    unsigned q_len;
    char *start_reply_to; /* session.start's id, answered by session.ready */
    uint64_t run_no;      /* runs started; the current one is "r<run_no>" */
    char *run_reply_to;
    unsigned delta_index;
    bool run_cancelled;
    acc_buf answer;        /* the current run's streamed text (for the final message) */
    uint64_t detached_ns;  /* when its connection went; 0 while attached */
    rt_upcall *upcall;     /* the upstream call in flight, if any */
    atomic_bool cancel_req; /* run_cancelled, for the worker */
    _Atomic uint64_t sb_id; /* the sandbox's id (sandbox_cancel), set by the worker that opens it */

    /* Worker-owned during a job (read by the loop after MAIL_END). */
    rt_job job;
    enum rt_job_kind job_kind;
    char *job_text; /* the message */
    size_t job_len;
    char *job_reply_to;
    sandbox_t *sb;
    rt_session_t *ms;
    rt_call_owner owner;
    bool turn_active, turn_over, turn_is_message, funds_refused;
    bool slice_told; /* the loop was told the turn used up a time slice (MAIL_FLUSH) */
    uint64_t turn_deadline_ms, turn_time_ms;
    uint64_t spent; /* booked by this session so far */
    /* The agent (from the registry, by the load job). */
    char agent_name[REGISTRY_NAME_MAX + 1], agent_version[REGISTRY_VERSION_MAX + 1];
    char author[ETH_ADDRESS_TEXT_SIZE];
    uint64_t price_per_message, price_per_session;
    /* The end of a turn. */
    sandbox_status_t res_status;
    sandbox_limit_t res_limit;
    const char *res_code; /* a stable error name, or NULL */
    char res_err[400];
    char *res_reply;
    size_t res_reply_len;
    acc_buf usage; /* ,"calls":[...],"cost":N,"balance":M of the turn */
    acc_buf test_calls; /* usage lines of test/... calls, comma-led */
    const struct rt_receipt *shown; /* the last receipt announced (announce_calls) */
    acc_buf live_calls;             /* calls to announce: one JSON object a line */

    /* Mailbox. */
    pthread_mutex_t mu;
    unsigned mail;
    acc_buf mail_text;
    acc_buf mail_calls; /* finished calls for call frames: one JSON object a line */
    rt_answer_t *answers, *answers_tail;
    rt_upcall *upcalls; /* upstream replies waiting for a worker (through rt_upcall_link) */
    rt_event ev;
};

struct rt_ws {
    struct lws *wsi;
    rt_server *srv;
    rt_principal who;
    rt_sess *s;
    acc_buf rx;
    uint64_t tat_ns; /* rate limit: theoretical arrival time (GCRA) */
    unsigned flood;
    bool closing;
    int close_code;
    char close_reason[100];
    acc_buf loose; /* frames outside any session's log: [u32 length][JSON] records */
    size_t loose_sent;
    acc_buf wbuf;
    rt_wq_link flush; /* on srv->ws_flush (rt_ws_request_write) */
};

/* cframe.c: a client frame's fields. Strings are NUL-terminated and live until rt_cframe_free. */
typedef struct rt_cfield {
    enum { CF_ABSENT, CF_NULL, CF_STRING, CF_INTEGER, CF_OTHER } kind; /* OTHER: true, false, real, array, object */
    const char *s;
    size_t len;
    long long i;
} rt_cfield;

typedef struct rt_cfields {
    rt_cfield type, id, agent, budget, content, run, session, last_seq;
} rt_cfields;

typedef struct rt_cframe {
    rt_cfields v;
    char *id_text; /* the id as JSON text (a string of at most 200 bytes, or an integer), or NULL */
    char *owned;   /* decoded strings too big for small */
    json_t *doc;   /* jansson's reading, when the scanner left the frame to it */
    char small[512];
} rt_cframe;

/* Reads a frame: 0, -1 (not JSON: jerr says why) or -2 (JSON but not an object). Call
 * rt_cframe_free after, whatever it returned. */
int rt_cframe_read(rt_cframe *f, const char *data, size_t len, json_error_t *jerr);
void rt_cframe_free(rt_cframe *f);

/* session.c */
rt_sess *rt_sess_new(rt_ws *c, const char *agent_ref, uint64_t budget, const char *reply_to, acc_err *err);
void rt_sess_message(rt_sess *s, rt_queued *m); /* queues it (the caller checked the bound) */
bool rt_sess_cancel(rt_sess *s, const char *run); /* false: no such run under way */
void rt_sess_close(rt_sess *s);
void rt_sess_attach(rt_sess *s, rt_ws *c);
void rt_sess_detach(rt_sess *s);
/* Frames: begin (type and seq written), the caller appends ",\"key\":value" parts, end. */
rt_frame *rt_frame_begin(rt_sess *s, const char *type);
void rt_frame_end(rt_sess *s, rt_frame *f);
void rt_emit_error(rt_sess *s, const char *reply_to, const char *code, const char *msg, const char *run);
void rt_log_trim(rt_sess *s);
void rt_put_reply_to(acc_buf *b, const char *reply_to);

/* wsconn.c */
void rt_ws_request_write(rt_ws *c); /* queued: written by the next rt_ws_flush */
/* A frame for the connection alone (no session, seq 0): errors before a session, session.resumed. */
void rt_ws_loose(rt_ws *c, const char *json, size_t len);
void rt_ws_error(rt_ws *c, const char *reply_to, const char *code, const char *msg);
void rt_ws_close(rt_ws *c, int code, const char *reason);

#endif
