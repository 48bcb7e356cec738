/*
 * metered.c: the metered provider (metered.h): host calls through the registry and the meters.
 *
 * The order of a call is the contract of the meters issue: resolve, price the most it can cost
 * and reserve it (no model runs on an account that cannot pay), run, count the real units,
 * attribute, post, and answer the agent only once the posting is durable. Everything the call
 * needs from the registry beyond the call itself is cached here, because a registry read is a
 * SQLite query and a metered call should cost microseconds: models and datanets (which never
 * change once registered), record contributors, and the span index of every lineage datanet,
 * built from its accepted records and caught up when the datanet's version grows (checked at most
 * once a second per datanet).
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meters/eth/keys.h"
#include "registry/factory/factory.h"
#include "registry/span/span.h"
#include "registry/spans.h"
#include "runtime/luamodel.h"
#include "runtime/metered.h"

#define INDEX_CHECK_MS 1000
#define HTTP_TOKENS_PER_MESSAGE 8
/* A lineage's span index is trusted this long after it was found current: checking is a read
 * transaction per call, which cost more than the attribution itself (BENCHMARKS.md). A record
 * accepted elsewhere earns from the calls made after this delay. */
#define RT_SPANS_MAX_AGE_MS 250 /* chat formats add a few tokens per message; a generous bound */

/* --- caches --- */

typedef struct model_entry {
    struct model_entry *next;
    registry_model_t rm;
    meter_model_t mm;
    _Atomic(factory_model *) fm; /* a builtin model, loaded (the factory's cache keeps it until
                                    factory_cache_clear, which must not run while this is open) */
    char *script;                /* a lua model's script, read with the entry */
    size_t script_len;
} model_entry_t;

typedef struct dataset_entry {
    struct dataset_entry *next;
    int64_t id;
    meter_dataset_t md;
} dataset_entry_t;

/* address -> EIP-55 text: the checksum is a keccak-256 per address, and the same few contributors
 * are paid call after call. */
typedef struct addr_text {
    uint8_t a[20];
    bool used;
    char text[METER_ADDRESS_SIZE];
} addr_text_t;
#define ADDR_CACHE 1024 /* a cache: a full one is simply bypassed */

struct rt_metered {
    meter_t *meter;
    rt_http_t http;
    uint32_t http_max_tokens;
    pthread_mutex_t mu; /* the lists */
    model_entry_t *models;
    dataset_entry_t *datasets;
    addr_text_t addrs[ADDR_CACHE];
    size_t naddrs;
};

/* What every call reads comes first, the names right after: a host with many sessions finds each
 * cold when its next call comes, and these fit in two or three cache lines (not the six, over 900
 * bytes, they took before). */
struct rt_session {
    /* What delivering an answer reads, first: one cache line (prefetch_ahead). */
    sandbox_t *sb;             /* the sandbox whose provider this is (set at the first call) */
    size_t in_flight;
    rt_receipt_t *receipts, *receipts_tail;
    rt_metered_t *m;
    registry_t *reg;
    rt_poster_t poster;
    char **models, **datanets; /* allow lists, or NULL */
    size_t nmodels, ndatanets;
    meter_call_t *message;     /* the turn's message fee, while the turn runs */
    bool has_agent, first_message;
    uint16_t session_at, request_at; /* in names */
    /* the payer, the session id and the request id, each NUL-terminated, one after the other (the
     * request id last: it changes) */
    char names[3 * (METER_NAME_MAX + 1)];
    meter_agent_t agent;
};

/* Copies src (at most METER_NAME_MAX bytes of it) to dst; returns the bytes written with the NUL. */
static size_t put_name(char *dst, const char *src) {
    size_t n = strnlen(src ? src : "", METER_NAME_MAX);
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
    return n + 1;
}

/* Who pays for a call of s, and for what. */
static meter_ctx_t session_ctx(const rt_session_t *s) {
    return (meter_ctx_t){.payer = s->names, .request_id = s->names + s->request_at, .session = s->names + s->session_at,
                         .agent = s->has_agent ? &s->agent : NULL};
}

int rt_metered_open(const rt_metered_config_t *cfg, rt_metered_t **out, acc_err *err) {
    rt_metered_t *m = calloc(1, sizeof *m);
    if (!m) return acc_fail(err, ACC_ENOMEM, "out of memory");
    m->meter = cfg->meter;
    m->http = cfg->http;
    m->http_max_tokens = cfg->default_max_tokens_http ? cfg->default_max_tokens_http : 1024;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return ACC_OK;
}

void rt_metered_close(rt_metered_t *m) {
    if (!m) return;
    for (model_entry_t *e = m->models, *n; e; e = n) n = e->next, free(e->script), free(e);
    for (dataset_entry_t *e = m->datasets, *n; e; e = n) n = e->next, free(e);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void address_text(const uint8_t a[20], char out[METER_ADDRESS_SIZE]) { eth_address_to_text(a, out); }

/* address_text through m's cache. */
static void address_text_cached(rt_metered_t *m, const uint8_t a[20], char out[METER_ADDRESS_SIZE]) {
    uint64_t h;
    memcpy(&h, a, 8);
    size_t j = (size_t)(h * UINT64_C(0x9e3779b97f4a7c15) >> 40) & (ADDR_CACHE - 1);
    pthread_mutex_lock(&m->mu);
    for (size_t k = 0; k < ADDR_CACHE && m->addrs[j].used; k++, j = (j + 1) & (ADDR_CACHE - 1))
        if (memcmp(m->addrs[j].a, a, 20) == 0) {
            memcpy(out, m->addrs[j].text, METER_ADDRESS_SIZE);
            pthread_mutex_unlock(&m->mu);
            return;
        }
    pthread_mutex_unlock(&m->mu);
    address_text(a, out);
    pthread_mutex_lock(&m->mu);
    if (m->naddrs < ADDR_CACHE / 2 && !m->addrs[j].used) {
        memcpy(m->addrs[j].a, a, 20);
        memcpy(m->addrs[j].text, out, METER_ADDRESS_SIZE);
        m->addrs[j].used = true;
        m->naddrs++;
    }
    pthread_mutex_unlock(&m->mu);
}

static void to_meter_model(const registry_model_t *r, meter_model_t *mm) {
    memset(mm, 0, sizeof *mm);
    snprintf(mm->name, sizeof mm->name, "%s", r->name);
    address_text(r->owner, mm->owner);
    mm->price_per_call = r->price_per_call;
    mm->price_per_1k_in = r->price_per_1k_in;
    mm->price_per_1k_out = r->price_per_1k_out;
    mm->owner_share_bps = r->owner_share_bps;
    mm->nshares = r->n_shares < METER_SHARES_MAX ? r->n_shares : METER_SHARES_MAX;
    for (size_t i = 0; i < mm->nshares; i++) {
        address_text(r->shares[i].address, mm->shares[i].address);
        mm->shares[i].bps = r->shares[i].bps;
    }
}

/* The cached model (read from the registry the first time). The entry lives as long as m. */
static int model_lookup(rt_metered_t *m, registry_t *reg, const char *name, const model_entry_t **out, acc_err *err) {
    pthread_mutex_lock(&m->mu);
    for (model_entry_t *e = m->models; e; e = e->next)
        if (strcmp(e->rm.name, name) == 0) {
            pthread_mutex_unlock(&m->mu);
            *out = e;
            return ACC_OK;
        }
    pthread_mutex_unlock(&m->mu);
    model_entry_t *e = calloc(1, sizeof *e);
    if (!e) return acc_fail(err, ACC_ENOMEM, "out of memory");
    int rc = registry_model_get(reg, name, &e->rm, err);
    if (!rc && e->rm.kind == REGISTRY_MODEL_LUA) rc = registry_model_script(reg, name, &e->script, &e->script_len, err);
    if (rc) {
        free(e->script);
        free(e);
        return rc;
    }
    to_meter_model(&e->rm, &e->mm);
    pthread_mutex_lock(&m->mu);
    e->next = m->models;
    m->models = e;
    pthread_mutex_unlock(&m->mu);
    *out = e;
    return ACC_OK;
}

static int dataset_lookup(rt_metered_t *m, registry_t *reg, const char *name, const dataset_entry_t **out,
                          acc_err *err) {
    pthread_mutex_lock(&m->mu);
    for (dataset_entry_t *e = m->datasets; e; e = e->next)
        if (strcmp(e->md.name, name) == 0) {
            pthread_mutex_unlock(&m->mu);
            *out = e;
            return ACC_OK;
        }
    pthread_mutex_unlock(&m->mu);
    registry_datanet_t d;
    int rc = registry_datanet_get(reg, name, &d, err);
    if (rc) return rc;
    dataset_entry_t *e = calloc(1, sizeof *e);
    if (!e) return acc_fail(err, ACC_ENOMEM, "out of memory");
    e->id = d.id;
    snprintf(e->md.name, sizeof e->md.name, "%s", d.name);
    address_text(d.owner, e->md.owner);
    e->md.price_per_query = d.price_per_query;
    e->md.price_per_record = d.price_per_record;
    pthread_mutex_lock(&m->mu);
    e->next = m->datasets;
    m->datasets = e;
    pthread_mutex_unlock(&m->mu);
    *out = e;
    return ACC_OK;
}

/* --- sessions --- */

static char **copy_list(const char *const *v, size_t n) {
    if (!v) return NULL;
    char **c = calloc(n + 1, sizeof *c);
    for (size_t i = 0; c && i < n; i++) c[i] = strdup(v[i]);
    return c;
}

static void free_list(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static bool allowed(char **list, size_t n, const char *name) {
    if (!list) return true;
    for (size_t i = 0; i < n; i++)
        if (list[i] && strcmp(list[i], name) == 0) return true;
    return false;
}

static int start_call(void *ud, sandbox_t *sb, const sandbox_call_t *call);

int rt_session_open(rt_metered_t *m, const rt_session_config_t *cfg, rt_session_t **out, acc_err *err) {
    if (!cfg->payer || !*cfg->payer || strlen(cfg->payer) > METER_NAME_MAX)
        return acc_fail(err, ACC_EINVAL, "session: a payer account is needed");
    rt_session_t *s = calloc(1, sizeof *s);
    if (!s) return acc_fail(err, ACC_ENOMEM, "out of memory");
    s->m = m;
    s->reg = cfg->reg;
    s->session_at = (uint16_t)put_name(s->names, cfg->payer);
    s->request_at = (uint16_t)(s->session_at + put_name(s->names + s->session_at, cfg->session));
    s->names[s->request_at] = '\0';
    if (cfg->agent) s->agent = *cfg->agent, s->has_agent = true;
    s->first_message = true;
    s->models = copy_list(cfg->models, cfg->nmodels);
    s->nmodels = cfg->nmodels;
    s->datanets = copy_list(cfg->datanets, cfg->ndatanets);
    s->ndatanets = cfg->ndatanets;
    s->poster = cfg->poster;
    *out = s;
    return ACC_OK;
}

void rt_session_clear_receipts(rt_session_t *s) {
    for (rt_receipt_t *r = s->receipts, *n; r; r = n) n = r->next, free(r);
    s->receipts = s->receipts_tail = NULL;
}

void rt_session_close(rt_session_t *s) {
    if (!s) return;
    if (s->message) meter_fail(s->message, ACC_ECANCELLED, "the session closed");
    rt_session_clear_receipts(s);
    free_list(s->models, s->nmodels);
    free_list(s->datanets, s->ndatanets);
    free(s);
}

sandbox_provider_t rt_session_provider(rt_session_t *s) {
    return (sandbox_provider_t){.ud = s, .start_call = start_call, .output = NULL};
}

void rt_session_set_request_id(rt_session_t *s, const char *request_id) {
    put_name(s->names + s->request_at, request_id);
}

size_t rt_session_in_flight(const rt_session_t *s) { return s->in_flight; }
sandbox_t *rt_session_sandbox(const rt_session_t *s) { return s->sb; }

void rt_session_set_registry(rt_session_t *s, registry_t *reg) { s->reg = reg; }

int rt_session_call(rt_session_t *s, const sandbox_call_t *call) { return start_call(s, NULL, call); }
const rt_receipt_t *rt_session_receipts(const rt_session_t *s) { return s->receipts; }

static void add_receipt(rt_session_t *s, rt_receipt_t *r) {
    if (!r) return;
    r->next = NULL;
    if (s->receipts_tail) s->receipts_tail->next = r;
    else s->receipts = r;
    s->receipts_tail = r;
}

/* A receipt and its strings in one allocation: one per call, kept for the turn (or the run). */
static rt_receipt_t *new_receipt(size_t nlines, const char *name, const char *error) {
    size_t nlen = strnlen(name, METER_NAME_MAX), elen = strnlen(error, 199);
    size_t lines = sizeof(rt_receipt_t) + nlines * sizeof(rt_receipt_line_t);
    rt_receipt_t *r = calloc(1, lines + nlen + elen + 2);
    if (!r) return NULL;
    char *strs = (char *)r + lines;
    memcpy(strs, name, nlen);
    memcpy(strs + nlen + 1, error, elen);
    r->name = strs;
    r->error = strs + nlen + 1;
    return r;
}

/* The receipt of a call whose event is e, as it reads once the call is booked (on_booked makes
 * another if the commit fails). */
static rt_receipt_t *receipt_of(const meter_event_t *e) {
    /* a call charged though cut short says how it ended (its event's error) */
    rt_receipt_t *r = new_receipt(e->nlines, e->resource_name, e->error ? e->error : "");
    if (!r) return NULL;
    r->id = e->id;
    r->status = ACC_OK;
    r->cut = e->error_code;
    r->resource = e->resource;
    r->units_in = e->units_in;
    r->units_out = e->units_out;
    r->cost = e->cost;
    r->nlines = e->nlines;
    for (size_t i = 0; i < e->nlines; i++) {
        r->lines[i].role = e->lines[i].role;
        memcpy(r->lines[i].payee, e->lines[i].payee, METER_ADDRESS_SIZE);
        r->lines[i].amount = e->lines[i].amount;
    }
    return r;
}

/* The receipt of a call whose posting failed: ok's, charged nothing, saying why. */
static rt_receipt_t *failed_commit_receipt(const rt_receipt_t *ok, const meter_receipt_t *mr) {
    rt_receipt_t *r = new_receipt(ok->nlines, ok->name, mr->err.msg);
    if (!r) return NULL;
    const char *name = r->name, *error = r->error; /* its own copies */
    memcpy(r, ok, sizeof *r + ok->nlines * sizeof *r->lines);
    r->next = NULL;
    r->name = name;
    r->error = error;
    r->status = mr->status;
    r->duplicate = mr->duplicate;
    r->cut = 0;
    r->cost = 0;
    return r;
}

/* A receipt for a call refused or failed before its posting (nothing charged). */
static rt_receipt_t *failed_receipt(meter_resource_t resource, const char *name, int status, const char *why) {
    rt_receipt_t *r = new_receipt(0, name, why);
    if (!r) return NULL;
    r->status = status;
    r->resource = resource;
    return r;
}

/* --- one call in flight --- */

typedef struct pending {
    rt_session_t *s;
    uint64_t call_id;
    meter_resource_t resource;
    char name[METER_NAME_MAX + 1];
    meter_call_t *mc;
    const model_entry_t *model;
    uint64_t prompt_words; /* our own count, for an HTTP model that reports no usage, and a lua model */
    uint64_t max_tokens;   /* a lua or an HTTP model's: its output is cut there (rt_output_cut) */
    int cut_code;          /* an HTTP model's call cut short after it delivered output (rt_http_cut) */
    char cut_why[160];
    acc_buf answer; /* the result's JSON, without its closing brace and usage */
    rt_answer_t *booked; /* what the writer posts once the call is booked (prepare_booking) */
} pending_t;

struct rt_http_call {
    pending_t p;
};

static void answer_now(rt_session_t *s, sandbox_t *sb, uint64_t id, const char *msg) {
    if (sb) {
        sandbox_call_done(sb, id, 0, msg, strlen(msg));
        return;
    }
    /* A call made for no sandbox (rt_session_call): its refusal goes the way every answer goes. */
    rt_answer_t *a = calloc(1, sizeof *a);
    if (!a || !(a->text = strdup(msg))) {
        free(a);
        return;
    }
    a->session = s;
    a->call_id = id;
    a->len = strlen(msg);
    s->in_flight++;
    s->poster.post(s->poster.ud, a);
}

/* The sandbox's thread, inside meter_finish_*, the call's event at hand: the answer and the
 * receipt as they read once the call is booked, so that the writer only posts them (on_booked). */
static void on_ready(void *ud, const meter_event_t *e) {
    pending_t *p = ud;
    rt_answer_t *a = p->booked;
    a->receipt = receipt_of(e);
    if (p->call_id) {
        char hex[33];
        ledger_id_hex(&e->id, hex);
        acc_buf *b = &p->answer;
        if (p->resource == METER_MODEL) {
            acc_buf_puts(b, ",\"usage\":{\"prompt_tokens\":");
            acc_buf_put_u64(b, e->units_in);
            acc_buf_puts(b, ",\"completion_tokens\":");
        } else {
            acc_buf_puts(b, ",\"usage\":{\"records\":");
        }
        acc_buf_put_u64(b, e->units_out);
        acc_buf_puts(b, ",\"cost\":");
        acc_buf_put_u64(b, e->cost);
        acc_buf_puts(b, ",\"call\":\"");
        acc_buf_append(b, hex, 32);
        acc_buf_puts(b, "\"}}");
    }
    a->text = acc_buf_take(&p->answer, &a->len);
}

/* The writer thread: the posting is durable (or failed). Hands the answer to the host. */
static void on_booked(void *ud, const meter_receipt_t *mr) {
    rt_answer_t *a = ud;
    if (mr->status == ACC_OK) {
        a->ok = 1;
        if (mr->duplicate && a->receipt) a->receipt->duplicate = true; /* the receipt, gone cold, is left alone */
    } else {
        a->ok = 0;
        free(a->text);
        acc_buf b = ACC_BUF_INIT;
        acc_buf_printf(&b, "%s: the call could not be booked: %s", acc_status_name(mr->status), mr->err.msg);
        a->text = acc_buf_take(&b, &a->len);
        rt_receipt_t *r = a->receipt ? failed_commit_receipt(a->receipt, mr) : NULL;
        free(a->receipt);
        a->receipt = r;
    }
    a->session->poster.post(a->session->poster.ud, a);
}

/* Before meter_finish_*: the answer on_booked will post, filled by on_ready while the call's event
 * is at hand. Returns -1 when out of memory (nothing prepared). */
static int prepare_booking(pending_t *p, meter_call_t *mc) {
    rt_answer_t *a = calloc(1, sizeof *a);
    if (!a) return -1;
    a->session = p->s;
    a->call_id = p->call_id;
    p->booked = a;
    meter_call_set_ready(mc, on_ready, p);
    return 0;
}

/* After meter_finish_*: on success on_booked has the answer and p is done with; on failure the
 * answer prepared goes (p stays the caller's, to fail). */
static void finish_booking(pending_t *p, int rc) {
    if (rc) {
        rt_answer_t *a = p->booked;
        free(a->text);
        free(a->receipt);
        free(a);
        p->booked = NULL;
        return;
    }
    acc_buf_free(&p->answer);
    free(p);
}

static int run_lua(pending_t *p, const char *request, size_t len, sandbox_t *sb);

/* A host that delivers a list of answers to many sandboxes (the bench's driver: a commit's worth
 * for a thousand of them) finds each one's session and sandbox cold. The next ones are loaded
 * while this one runs, each step reading only what the step before loaded: the session three
 * answers ahead, the sandbox's handle two ahead, and one ahead what its resume touches first and
 * the session's last receipt. Answers to the same session (the server's mailbox) skip it. */
static void prefetch_ahead(const rt_answer_t *a) {
    const rt_answer_t *a1 = a->next, *a2 = a1 ? a1->next : NULL, *a3 = a2 ? a2->next : NULL;
    if (!a1 || a1->session == a->session) return;
    if (a3) __builtin_prefetch(a3->session, 1, 3);
    if (a2 && a2->session->sb) sandbox_prefetch_handle(a2->session->sb);
    rt_session_prefetch(a1->session);
}

void rt_session_prefetch(rt_session_t *s) {
    __builtin_prefetch(s, 1, 3);
    if (s->sb) sandbox_prefetch(s->sb);
    if (s->receipts_tail) __builtin_prefetch(s->receipts_tail, 1, 3);
}

int rt_answer_deliver(rt_answer_t *a) {
    rt_session_t *s = a->session;
    int rc = -1;
    prefetch_ahead(a);
    if (a->work) { /* a lua model's call, now that the agent's turn is not executing */
        pending_t *p = a->work;
        char *request = a->text;
        size_t len = a->len;
        free(a);
        s->in_flight--;
        rc = run_lua(p, request, len, s->sb);
        free(request);
        return rc;
    }
    if (a->call_id && s->sb) {
        const char *text = a->text ? a->text : "out of memory";
        rc = sandbox_call_done(s->sb, a->call_id, a->ok, text, a->text ? a->len : strlen(text));
    }
    add_receipt(s, a->receipt);
    s->in_flight--;
    free(a->text);
    free(a);
    return rc;
}

void rt_answer_drop(rt_answer_t *a) {
    a->session->in_flight--;
    if (a->work) { /* a lua model's call that never ran: nothing charged */
        meter_fail(a->work->mc, ACC_ECANCELLED, "the session closed before the model ran");
        acc_buf_free(&a->work->answer);
        free(a->work);
    }
    free(a->receipt);
    free(a->text);
    free(a);
}

/* Counts the normalised words of text (the factory's token). */
static uint64_t count_tokens(const char *text, size_t len) {
    span_tokens t = SPAN_TOKENS_INIT;
    uint64_t n = span_tokenize(text, len, &t, NULL) == ACC_OK ? t.n : len;
    span_tokens_free(&t);
    return n;
}

typedef struct request {
    json_t *root;
    uint64_t max_tokens;        /* 0 when not given */
    uint64_t prompt_words, prompt_bytes, messages;
} request_t;

static int parse_request(const char *json, size_t len, request_t *r, char *msg, size_t msglen) {
    memset(r, 0, sizeof *r);
    json_error_t je;
    r->root = json_loadb(json, len, 0, &je);
    if (!json_is_object(r->root)) {
        snprintf(msg, msglen, "models.call: the request must be an object");
        return ACC_EINVAL;
    }
    json_t *mt = json_object_get(r->root, "max_tokens");
    if (mt) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1) {
            snprintf(msg, msglen, "models.call: max_tokens must be a whole number >= 1");
            return ACC_EINVAL;
        }
        r->max_tokens = (uint64_t)json_integer_value(mt);
    }
    const char *prompt = json_string_value(json_object_get(r->root, "prompt"));
    json_t *messages = json_object_get(r->root, "messages");
    if (prompt) {
        size_t n = json_string_length(json_object_get(r->root, "prompt"));
        r->prompt_words = count_tokens(prompt, n);
        r->prompt_bytes = n;
        r->messages = 1;
    } else if (json_is_array(messages) && json_array_size(messages)) {
        size_t i;
        json_t *mv;
        json_array_foreach(messages, i, mv) {
            json_t *c = json_object_get(mv, "content");
            if (!json_is_string(c)) {
                snprintf(msg, msglen, "models.call: messages[%zu].content must be a string", i + 1);
                return ACC_EINVAL;
            }
            r->prompt_words += count_tokens(json_string_value(c), json_string_length(c));
            r->prompt_bytes += json_string_length(c);
            r->messages++;
        }
    } else {
        snprintf(msg, msglen, "models.call: the request needs a prompt or messages");
        return ACC_EINVAL;
    }
    return ACC_OK;
}

void rt_attribution_free(rt_attribution_t *a) {
    if (a->spans != a->span_stack) free(a->spans);
    if (a->credits != a->credit_stack) free(a->credits);
    free(a->records);
    memset(a, 0, sizeof *a);
}

int rt_attribution_view(const span_attribution *at, const char *text, size_t len, rt_contributor_fn contributor,
                        void *ud, rt_attribution_t *a, acc_err *err) {
    memset(a, 0, sizeof *a);
    a->norm_tokens = at->ntokens || !len ? at->ntokens : count_tokens(text, len);
    a->covered = at->covered_tokens;
    if (!at->nspans) return ACC_OK;
    a->spans = at->nspans <= RT_ATTR_STACK ? a->span_stack : malloc(at->nspans * sizeof *a->spans);
    a->credits = at->ncredits <= RT_ATTR_STACK ? a->credit_stack : malloc(at->ncredits * sizeof *a->credits);
    size_t nrecs = 0;
    for (size_t i = 0; i < at->nspans; i++) nrecs += at->spans[i].nsources;
    a->records = malloc((nrecs ? nrecs : 1) * sizeof *a->records);
    if (!a->spans || !a->credits || !a->records) {
        rt_attribution_free(a);
        return acc_fail(err, ACC_ENOMEM, "out of memory");
    }
    for (size_t i = 0, j = 0; i < at->nspans; i++) {
        const span_match *sm = &at->spans[i];
        a->spans[i] = (meter_span_t){sm->byte_start, sm->byte_end, sm->ntokens, sm->nsources, a->records + j};
        for (size_t r = 0; r < sm->nsources; r++) a->records[j++] = sm->sources[r].record_id;
    }
    for (size_t i = 0; i < at->ncredits; i++) {
        a->credits[i].record = at->credits[i].source.record_id;
        a->credits[i].weight = at->credits[i].weight;
        int rc = contributor(ud, i, a->credits[i].record, a->credits[i].contributor, err);
        if (rc) {
            rt_attribution_free(a);
            return rc;
        }
    }
    a->ncredits = at->ncredits;
    a->nspans = at->nspans;
    return ACC_OK;
}

void rt_attribution_outcome(const rt_attribution_t *a, const char *text, size_t len, meter_model_outcome_t *o) {
    o->output = text;
    o->output_len = len;
    o->output_norm_tokens = a->norm_tokens;
    o->covered_tokens = a->covered;
    o->nspans = a->nspans;
    o->spans = a->spans;
    o->ncredits = a->ncredits;
    o->credits = a->credits;
}

/* The registry's attribution names each credited record's contributor. */
typedef struct contributor_ctx {
    rt_metered_t *m;
    const registry_attribution_t *ra;
} contributor_ctx_t;

static int registry_contributor(void *ud, size_t i, int64_t record, char out[METER_ADDRESS_SIZE], acc_err *err) {
    const contributor_ctx_t *c = ud;
    (void)record, (void)err;
    address_text_cached(c->m, c->ra->credits[i].contributor, out);
    return ACC_OK;
}

/* Attributes a model's output over its lineage's span indexes (registry_attribute: kept current
 * with the datanets' accepted records, whoever accepted them) and finishes the metered call. On
 * failure the call is failed (voided) and the message is in err, and p is the caller's (to fail);
 * on success p is consumed (the answer goes through on_booked). */
static int finish_model(pending_t *p, const char *text, size_t len, uint64_t in_tokens, uint64_t out_tokens,
                        bool counted_out, acc_err *err) {
    rt_session_t *s = p->s;
    registry_attribution_t ra;
    rt_attribution_t a;
    memset(&a, 0, sizeof a);
    if (!s->reg) return acc_fail(err, ACC_EIO, "model %s: no registry to attribute its output with", p->name);
    int rc = registry_attribute_within(s->reg, &p->model->rm, text, len, RT_SPANS_MAX_AGE_MS, &ra, err);
    contributor_ctx_t cc = {s->m, &ra};
    if (!rc) rc = rt_attribution_view(&ra.spans, text, len, registry_contributor, &cc, &a, err);
    if (!rc) {
        meter_model_outcome_t o = {.in_tokens = in_tokens, .out_tokens = counted_out ? a.norm_tokens : out_tokens,
                                   .cut_code = p->cut_code, .cut_why = p->cut_why};
        rt_attribution_outcome(&a, text, len, &o);
        meter_call_t *mc = p->mc;
        if (prepare_booking(p, mc)) {
            rc = acc_fail(err, ACC_ENOMEM, "out of memory");
        } else {
            p->mc = NULL;
            rc = meter_finish_model(mc, &o, on_booked, p->booked, err); /* consumes mc */
            finish_booking(p, rc); /* on ACC_OK, p too */
        }
    }
    rt_attribution_free(&a);
    registry_attribution_free(&ra);
    return rc;
}

/* The call failed before its posting: void it, answer the agent, and, when it had reserved (it
 * was under way), note it in the receipt. A call refused before that is only the agent's error. */
static void fail_pending(pending_t *p, sandbox_t *sb, int code, const char *msg) {
    if (p->mc) {
        meter_fail(p->mc, code, msg);
        add_receipt(p->s, failed_receipt(p->resource, p->name, code, msg));
    }
    answer_now(p->s, sb, p->call_id, msg); /* with no sandbox (rt_session_call), posted as an answer */
    acc_buf_free(&p->answer);
    free(p);
}

static void begin_answer_model(pending_t *p, const char *text, size_t len, const char *finish) {
    size_t nlen = strlen(p->name);
    /* room for the whole answer at once, its usage (on_booked) included: one allocation */
    (void)acc_buf_reserve(&p->answer, len + len / 8 + nlen + 192);
    acc_buf_puts(&p->answer, "{\"text\":");
    acc_buf_json_string(&p->answer, text, len);
    acc_buf_puts(&p->answer, ",\"model\":");
    acc_buf_json_string(&p->answer, p->name, nlen);
    acc_buf_puts(&p->answer, ",\"finish_reason\":\"");
    acc_buf_puts(&p->answer, finish);
    acc_buf_putc(&p->answer, '"');
}

/* A model's output: the answer begun, the call attributed and finished (booked; on_booked answers
 * the agent); on failure it is voided and the agent answered with the cause. Consumes p. */
static int answer_model(pending_t *p, sandbox_t *sb, const char *text, size_t len, const char *finish,
                        uint64_t in_tokens, uint64_t out_tokens, bool counted_out) {
    rt_session_t *s = p->s;
    acc_err err = {0};
    begin_answer_model(p, text, len, finish);
    s->in_flight++;
    int rc = finish_model(p, text, len, in_tokens, out_tokens, counted_out, &err);
    if (rc) {
        char msg[300];
        s->in_flight--;
        snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
        fail_pending(p, sb, rc, msg);
    }
    return rc;
}

static int model_call(rt_session_t *s, sandbox_t *sb, const sandbox_call_t *call, pending_t *p) {
    rt_metered_t *m = s->m;
    char msg[300];
    acc_err err = {0};
    const model_entry_t *e;
    int rc = model_lookup(m, s->reg, p->name, &e, &err);
    if (rc) snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
    else if (!allowed(s->models, s->nmodels, p->name))
        rc = ACC_EPERM, snprintf(msg, sizeof msg, "permission: agent %s may not call model '%s' (not in its manifest)",
                                 s->agent.name, p->name);
    request_t req = {0};
    factory_request fr = {0};
    factory_model *fm = NULL;
    uint64_t max_tokens = 0, prompt_bound = 0;
    if (!rc) {
        p->model = e;
        if (e->rm.kind == REGISTRY_MODEL_BUILTIN) {
            /* the factory's own parse: its checks, and its exact count of the prompt's tokens */
            rc = factory_request_parse(call->json, call->json_len, &fr, &err);
            if (rc) snprintf(msg, sizeof msg, "models.call: %s", err.msg);
            else if (!(fm = atomic_load(&((model_entry_t *)e)->fm))) {
                if ((rc = factory_model_of(s->reg, &e->rm, &fm, &err)))
                    snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
                else atomic_store(&((model_entry_t *)e)->fm, fm);
            }
            max_tokens = fr.max_tokens;
            prompt_bound = fr.prompt_tokens;
        } else if (e->rm.kind == REGISTRY_MODEL_HTTP) {
            rc = parse_request(call->json, call->json_len, &req, msg, sizeof msg);
            max_tokens = req.max_tokens ? req.max_tokens : m->http_max_tokens;
            prompt_bound = req.prompt_bytes + HTTP_TOKENS_PER_MESSAGE * (req.messages + 1);
            if (!rc && !m->http.start)
                rc = ACC_EUPSTREAM,
                snprintf(msg, sizeof msg, "upstream: model '%s' is served over HTTP, and this host has no HTTP client",
                         p->name);
        } else {
            /* a lua model: tokens are counted as the factory counts them, the prompt's exactly */
            rc = parse_request(call->json, call->json_len, &req, msg, sizeof msg);
            max_tokens = req.max_tokens ? req.max_tokens : m->http_max_tokens;
            prompt_bound = req.prompt_words;
        }
    }
    meter_ctx_t ctx = session_ctx(s);
    if (!rc) {
        rc = meter_begin_model(m->meter, &ctx, &e->mm, prompt_bound, max_tokens, &p->mc, &err);
        /* "insufficient_funds: account demo has ...": the code's name first, so an agent can
         * recognise the error it catches */
        if (rc) snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
    }
    if (rc) {
        json_decref(req.root);
        factory_request_free(&fr);
        fail_pending(p, sb, rc, msg);
        return 0;
    }
    if (e->rm.kind == REGISTRY_MODEL_HTTP) {
        json_t *up = json_object();
        json_object_set_new(up, "model", json_string(e->rm.upstream));
        json_t *msgs = json_object_get(req.root, "messages");
        if (msgs) json_object_set(up, "messages", msgs);
        else json_object_set_new(up, "messages", json_pack("[{s:s,s:O}]", "role", "user", "content",
                                                            json_object_get(req.root, "prompt")));
        json_object_set_new(up, "max_tokens", json_integer((json_int_t)max_tokens));
        json_object_set_new(up, "stream", json_false());
        char *body = json_dumps(up, JSON_COMPACT);
        json_decref(up);
        json_decref(req.root);
        rt_http_call_t *hc = malloc(sizeof *hc);
        if (!body || !hc) {
            free(body);
            free(hc);
            fail_pending(p, sb, ACC_ENOMEM, "out of memory");
            return 0;
        }
        p->prompt_words = req.prompt_words;
        p->max_tokens = max_tokens;
        hc->p = *p;
        free(p);
        s->in_flight++;
        int started = m->http.start(m->http.ud, &e->rm, body, strlen(body), hc);
        free(body);
        if (started != 0) { /* refused at once (the host will not call rt_http_done) */
            s->in_flight--;
            p = malloc(sizeof *p);
            if (p) *p = hc->p;
            else meter_fail(hc->p.mc, ACC_EUPSTREAM, "the host refused the call");
            free(hc);
            snprintf(msg, sizeof msg, "upstream: model '%s': the host could not start the call", e->rm.name);
            if (p) fail_pending(p, sb, ACC_EUPSTREAM, msg);
            else answer_now(s, sb, call->id, msg);
        }
        return 0;
    }
    if (e->rm.kind == REGISTRY_MODEL_LUA) {
        json_object_set_new(req.root, "max_tokens", json_integer((json_int_t)max_tokens));
        char *request = json_dumps(req.root, JSON_COMPACT);
        json_decref(req.root);
        p->prompt_words = req.prompt_words;
        p->max_tokens = max_tokens;
        rt_answer_t *a = sb && request ? calloc(1, sizeof *a) : NULL;
        if (!request || (sb && !a)) {
            free(request);
            fail_pending(p, sb, ACC_ENOMEM, "out of memory");
            return 0;
        }
        if (!sb) { /* no turn executes on this thread (rt_session_call): run it now */
            run_lua(p, request, strlen(request), NULL);
            free(request);
            return 0;
        }
        /* Inside the agent's turn no other sandbox may run on this thread: the call goes to the
         * host's queue and runs when the host delivers it (rt_answer_deliver, on this thread). */
        a->session = s;
        a->call_id = call->id;
        a->work = p;
        a->text = request;
        a->len = strlen(request);
        s->in_flight++;
        s->poster.post(s->poster.ud, a);
        return 0;
    }
    /* built-in: run it here, on the sandbox's thread */
    factory_output out = {0};
    rc = factory_run(fm, &fr, &out, &err);
    factory_request_free(&fr);
    if (rc) {
        snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
        fail_pending(p, sb, rc, msg);
        return 0;
    }
    answer_model(p, sb, out.text, out.len, out.finish == FACTORY_FINISH_STOP ? "stop" : "length", out.prompt_tokens,
                 out.completion_tokens, false);
    factory_output_free(&out);
    return 0;
}

size_t rt_output_cut(const char *text, size_t len, uint64_t max) {
    span_tokens t = SPAN_TOKENS_INIT;
    size_t keep = len;
    if (max && span_tokenize(text, len, &t, NULL) == ACC_OK && t.n > max) keep = t.v[max - 1].end;
    span_tokens_free(&t);
    return keep;
}

/* A token of span_tokenize is a run of word characters that nothing before it can join (the
 * character before its start is a separator, or nothing), so tokenizing from a token's start
 * finds the same tokens as tokenizing from the beginning; only the last one may grow as more of
 * the text arrives, so counting resumes at its start. */
size_t rt_output_limit_feed(rt_output_limit_t *l, const char *text, size_t len) {
    if (l->reached) return l->from;
    if (!l->max || len <= l->from) return len;
    span_tokens t = SPAN_TOKENS_INIT;
    size_t keep = len;
    if (span_tokenize(text + l->from, len - l->from, &t, NULL) == ACC_OK && t.n) {
        if (l->counted + t.n > l->max) { /* counted < max: the last token before was not past it */
            keep = l->from + t.v[l->max - l->counted - 1].end;
            l->from = keep;
            l->reached = true;
        } else {
            /* At exactly max, what follows the last token waits: a token after it would cut there. */
            if (l->counted + t.n == l->max) keep = l->from + t.v[t.n - 1].end;
            l->counted += t.n - 1;
            l->from += t.v[t.n - 1].start;
        }
    }
    span_tokens_free(&t);
    return keep;
}

/* Runs a lua model's call, reserved already, in the model's own sandbox, and finishes it the way
 * a built-in model's is finished (its output counted, attributed over its lineage, booked). A
 * failure voids the reservation and answers the agent with the cause. On the sandbox's thread,
 * outside any turn. Consumes p. Returns 0 when the agent was answered now (a failure), else -1. */
static int run_lua(pending_t *p, const char *request, size_t len, sandbox_t *sb) {
    const model_entry_t *e = p->model;
    char msg[300];
    acc_err err = {0};
    if (sb && !sandbox_turn_deadline_ns(sb)) { /* the agent's turn ended before its call ran */
        fail_pending(p, sb, ACC_ECANCELLED, "cancelled: the turn ended before the model ran");
        return -1;
    }
    acc_buf out = ACC_BUF_INIT;
    int rc = rt_lua_model_run(e->rm.name, e->script, e->script_len, request, len, &out, &err);
    if (rc) {
        acc_buf_free(&out);
        snprintf(msg, sizeof msg, "%s: model '%s': %s%s", acc_status_name(rc), p->name,
                 rc == ACC_ESCRIPT ? "script error: " : rc == ACC_ELIMIT ? "the script hit " : "", err.msg);
        fail_pending(p, sb, rc, msg);
        return 0;
    }
    const char *text = out.data ? out.data : "";
    size_t n = rt_output_cut(text, out.len, p->max_tokens);
    rc = answer_model(p, sb, text, n, n < out.len ? "length" : "stop", p->prompt_words, 0, true);
    acc_buf_free(&out);
    return rc ? 0 : -1;
}

uint64_t rt_http_call_deadline_ns(const rt_http_call_t *hc) {
    const sandbox_t *sb = hc->p.s->sb;
    return sb ? sandbox_turn_deadline_ns(sb) : 0;
}

/* The host is done with the call: its pending part, or NULL (out of memory: voided, dropped). */
static pending_t *http_pending(rt_http_call_t *hc) {
    pending_t *p = malloc(sizeof *p);
    rt_session_t *s = hc->p.s;
    s->in_flight--;
    if (!p) { /* nothing can be done without memory; void and drop */
        meter_fail(hc->p.mc, ACC_ENOMEM, "out of memory");
        acc_buf_free(&hc->p.answer);
        free(hc);
        return NULL;
    }
    *p = hc->p;
    free(hc);
    return p;
}

void rt_http_done(rt_http_call_t *hc, int ok, const char *response, size_t len) {
    sandbox_t *sb = hc->p.s->sb;
    pending_t *p = http_pending(hc);
    if (!p) return;
    char msg[300];
    if (!ok) {
        snprintf(msg, sizeof msg, "upstream: model '%s': %.*s", p->name, (int)(len > 200 ? 200 : len), response);
        fail_pending(p, sb, ACC_EUPSTREAM, msg);
        return;
    }
    json_t *res = json_loadb(response, len, 0, NULL);
    json_t *choice = json_array_get(json_object_get(res, "choices"), 0);
    json_t *content = json_object_get(json_object_get(choice, "message"), "content");
    if (!json_is_string(content)) {
        json_decref(res);
        snprintf(msg, sizeof msg, "upstream: model '%s' answered without choices[0].message.content", p->name);
        fail_pending(p, sb, ACC_EUPSTREAM, msg);
        return;
    }
    json_t *usage = json_object_get(res, "usage");
    json_t *pt = json_object_get(usage, "prompt_tokens"), *ct = json_object_get(usage, "completion_tokens");
    const char *text = json_string_value(content);
    size_t tlen = json_string_length(content);
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    /* no reported usage: our own tokenizer counts (a prompt bound was reserved, output counted) */
    uint64_t in = json_is_integer(pt) ? (uint64_t)json_integer_value(pt) : p->prompt_words;
    /* An upstream may ignore max_tokens. The caller reserved for max_tokens and gets no more: the
     * text is cut at max_tokens of our tokens (as a lua model's is; a streamed answer was cut the
     * same way as it arrived, upstream.c). The output charged is the upstream's reported count, at
     * most max_tokens: one that says it wrote more wrote more than the caller gets, and the caller
     * pays for max_tokens, the most it could receive. Without a reported count, ours of what the
     * caller gets is charged. Either way finish_reason says "length" when the limit cut it. */
    bool reported = json_is_integer(ct) && json_integer_value(ct) >= 0;
    uint64_t out = reported ? (uint64_t)json_integer_value(ct) : 0;
    size_t keep = rt_output_cut(text, tlen, p->max_tokens);
    if (keep < tlen || (reported && out > p->max_tokens)) finish = "length";
    if (reported && out > p->max_tokens) out = p->max_tokens;
    answer_model(p, sb, text, keep, finish ? finish : "stop", in, out, !reported);
    json_decref(res);
}

void rt_http_cut(rt_http_call_t *hc, int code, const char *why, const char *text, size_t len) {
    if (!len) { /* nothing reached the caller: void it whole, as any failure */
        rt_http_done(hc, 0, why, strlen(why));
        return;
    }
    sandbox_t *sb = hc->p.s->sb;
    pending_t *p = http_pending(hc);
    if (!p) return;
    /* What was passed on was cut at max_tokens as it came (rt_output_limit_feed); cutting again
     * changes nothing, and keeps the charge within the reservation whatever the host sent. The
     * upstream's usage comes at its stream's end, never reached: both counts are ours. */
    size_t keep = rt_output_cut(text, len, p->max_tokens);
    uint64_t out = count_tokens(text, keep);
    p->cut_code = code ? code : ACC_ECANCELLED;
    snprintf(p->cut_why, sizeof p->cut_why, "%s: charged for the %" PRIu64 " tokens passed on before it ended: %s",
             acc_status_name(p->cut_code), out, why);
    answer_model(p, sb, text, keep, p->cut_code == ACC_ETIMEOUT ? "timeout" : "cancelled", p->prompt_words, 0, true);
}

static int dataset_call(rt_session_t *s, sandbox_t *sb, const sandbox_call_t *call, pending_t *p) {
    rt_metered_t *m = s->m;
    char msg[300];
    acc_err err = {0};
    const dataset_entry_t *e;
    int rc = dataset_lookup(m, s->reg, p->name, &e, &err);
    if (rc) snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
    else if (!allowed(s->datanets, s->ndatanets, p->name))
        rc = ACC_EPERM, snprintf(msg, sizeof msg, "permission: agent %s may not query dataset '%s' (not in its manifest)",
                                 s->agent.name, p->name);
    json_t *req = rc ? NULL : json_loadb(call->json, call->json_len, 0, NULL);
    json_t *jt = json_object_get(req, "text");
    json_int_t limit = 3;
    json_t *jl = json_object_get(json_object_get(req, "opts"), "limit");
    if (!rc && !json_is_string(jt)) rc = ACC_EINVAL, snprintf(msg, sizeof msg, "datasets.query: the query needs text");
    if (!rc && jl) {
        if (!json_is_integer(jl) || json_integer_value(jl) < 1 || json_integer_value(jl) > REGISTRY_QUERY_LIMIT_MAX)
            rc = ACC_EINVAL, snprintf(msg, sizeof msg, "datasets.query: limit must be 1 to %d", REGISTRY_QUERY_LIMIT_MAX);
        else limit = json_integer_value(jl);
    }
    meter_ctx_t ctx = session_ctx(s);
    if (!rc && (rc = meter_begin_dataset(m->meter, &ctx, &e->md, (uint64_t)limit, &p->mc, &err)))
        snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
    registry_hits_t *hits = NULL;
    if (!rc && (rc = registry_query(s->reg, p->name, json_string_value(jt), json_string_length(jt), (size_t)limit,
                                    &hits, &err)))
        snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
    json_decref(req);
    if (rc) {
        fail_pending(p, sb, rc, msg);
        return 0;
    }
    meter_row_t stack[16], *rows = hits->n <= 16 ? stack : malloc(hits->n * sizeof *rows);
    if (!rows) {
        free(hits);
        fail_pending(p, sb, ACC_ENOMEM, "out of memory");
        return 0;
    }
    acc_buf_puts(&p->answer, "{\"rows\":[");
    for (size_t i = 0; i < hits->n; i++) {
        const registry_hit_t *h = &hits->hit[i];
        rows[i].record = h->id;
        address_text_cached(m, h->contributor, rows[i].contributor);
        rows[i].score = h->score;
        acc_buf_printf(&p->answer, "%s{\"id\":%" PRId64 ",\"contributor\":\"%s\",\"score\":%.6g,\"text\":",
                       i ? "," : "", h->id, rows[i].contributor, h->score);
        acc_buf_json_string(&p->answer, h->text, h->text_len);
        acc_buf_putc(&p->answer, '}');
    }
    acc_buf_putc(&p->answer, ']');
    meter_dataset_outcome_t o = {.nrows = hits->n, .rows = rows};
    meter_call_t *mc = p->mc;
    if (prepare_booking(p, mc)) {
        rc = acc_fail(&err, ACC_ENOMEM, "out of memory");
    } else {
        p->mc = NULL;
        s->in_flight++;
        rc = meter_finish_dataset(mc, &o, on_booked, p->booked, &err);
        finish_booking(p, rc);
        if (rc) s->in_flight--;
    }
    if (rows != stack) free(rows);
    free(hits);
    if (rc) {
        snprintf(msg, sizeof msg, "%s: %s", acc_status_name(rc), err.msg);
        fail_pending(p, sb, rc, msg);
    }
    return 0;
}

static int start_call(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    rt_session_t *s = ud;
    s->sb = sb;
    pending_t *p = calloc(1, sizeof *p);
    if (!p || call->name_len > METER_NAME_MAX || memchr(call->name, 0, call->name_len)) {
        free(p);
        answer_now(s, sb, call->id, p ? "not_found: no such name" : "out of memory");
        return -1;
    }
    p->s = s;
    p->call_id = call->id;
    memcpy(p->name, call->name, call->name_len);
    p->name[call->name_len] = '\0';
    if (call->kind == SANDBOX_CALL_MODEL) {
        p->resource = METER_MODEL;
        return model_call(s, sb, call, p);
    }
    p->resource = METER_DATASET;
    return dataset_call(s, sb, call, p);
}

/* --- the message fee --- */

int rt_session_begin_message(rt_session_t *s, acc_err *err) {
    if (!s->has_agent || s->message) return ACC_OK;
    if (!s->agent.price_per_message && !(s->first_message && s->agent.price_per_session)) return ACC_OK;
    meter_ctx_t ctx = session_ctx(s);
    int rc = meter_begin_message(s->m->meter, &ctx, s->first_message, &s->message, err);
    if (rc == ACC_EFUNDS) acc_err_prefix(err, "insufficient_funds");
    return rc;
}

int rt_session_end_message(rt_session_t *s, bool ok, acc_err *err) {
    meter_call_t *mc = s->message;
    s->message = NULL;
    if (!mc) {
        if (ok) s->first_message = false;
        return ACC_OK;
    }
    if (!ok) {
        meter_fail(mc, ACC_ECANCELLED, "the turn failed");
        return ACC_OK;
    }
    s->first_message = false;
    pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        meter_fail(mc, ACC_ENOMEM, "out of memory");
        return acc_fail(err, ACC_ENOMEM, "out of memory");
    }
    p->s = s;
    p->resource = METER_MESSAGE;
    snprintf(p->name, sizeof p->name, "%s", s->agent.name);
    if (prepare_booking(p, mc)) {
        free(p);
        meter_fail(mc, ACC_ENOMEM, "out of memory");
        return acc_fail(err, ACC_ENOMEM, "out of memory");
    }
    s->in_flight++;
    int rc = meter_finish_message(mc, on_booked, p->booked, err);
    finish_booking(p, rc);
    if (rc) {
        s->in_flight--;
        free(p);
    }
    return rc;
}

/* --- a waiting host's queue --- */

struct rt_queue {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    rt_answer_t *head, *tail;
    void (*wait)(void *ud, int timeout_ms); /* the waiter, under mu */
    void (*wake)(void *ud);
    void *waiter_ud;
};

void rt_queue_set_waiter(rt_queue_t *q, void (*wait)(void *ud, int timeout_ms), void (*wake)(void *ud), void *ud) {
    pthread_mutex_lock(&q->mu);
    q->wait = wait;
    q->wake = wait ? wake : NULL;
    q->waiter_ud = ud;
    pthread_mutex_unlock(&q->mu);
}

rt_queue_t *rt_queue_new(void) {
    rt_queue_t *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cond, NULL);
    return q;
}

void rt_queue_free(rt_queue_t *q) {
    if (!q) return;
    for (rt_answer_t *a = q->head, *n; a; a = n) n = a->next, rt_answer_drop(a);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static void queue_post(void *ud, rt_answer_t *a) {
    rt_queue_t *q = ud;
    a->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail) q->tail->next = a;
    else q->head = a;
    q->tail = a;
    pthread_cond_signal(&q->cond);
    void (*wake)(void *) = q->wake;
    void *wud = q->waiter_ud;
    pthread_mutex_unlock(&q->mu);
    if (wake) wake(wud);
}

rt_poster_t rt_queue_poster(rt_queue_t *q) { return (rt_poster_t){.ud = q, .post = queue_post}; }

rt_answer_t *rt_queue_take(rt_queue_t *q, int timeout_ms) {
    pthread_mutex_lock(&q->mu);
    if (!q->head && timeout_ms != 0 && q->wait) {
        void (*wait)(void *, int) = q->wait;
        void *wud = q->waiter_ud;
        pthread_mutex_unlock(&q->mu);
        wait(wud, timeout_ms < 0 ? 100 : timeout_ms);
        pthread_mutex_lock(&q->mu);
    } else if (!q->head && timeout_ms != 0) {
        if (timeout_ms < 0) {
            while (!q->head) pthread_cond_wait(&q->cond, &q->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += timeout_ms / 1000;
            ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            while (!q->head && pthread_cond_timedwait(&q->cond, &q->mu, &ts) == 0) {
            }
        }
    }
    rt_answer_t *a = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    return a;
}

sandbox_status_t rt_run_turn(sandbox_t *sb, rt_session_t *const *sp, rt_queue_t *q) {
    sandbox_status_t st = sandbox_run(sb);
    for (;;) {
        if (st == SANDBOX_PAUSED || st == SANDBOX_BLOCKED) {
            st = sandbox_run(sb);
            continue;
        }
        rt_session_t *s = *sp; /* a host may open its session at the turn's first call */
        if (st != SANDBOX_WAITING && (!s || s->in_flight == 0)) return st;
        /* Wait for answers, but not for ever: a waiting turn is run again every 100 ms so that its
         * time limit and a cancel are seen even when nothing answers. */
        rt_answer_t *a = s && s->in_flight ? rt_queue_take(q, 100) : NULL;
        while (a) {
            rt_answer_t *next = a->next;
            rt_answer_deliver(a);
            a = next;
        }
        if (st == SANDBOX_WAITING && !(s && s->in_flight)) {
            struct timespec nap = {0, 1000000}; /* nothing can answer it: let its time limit come */
            nanosleep(&nap, NULL);
        }
        if (st == SANDBOX_WAITING) st = sandbox_run(sb);
    }
}

void rt_session_drain(rt_session_t *s, rt_queue_t *q) {
    while (s->in_flight) {
        rt_answer_t *a = rt_queue_take(q, -1);
        while (a) {
            rt_answer_t *next = a->next;
            rt_answer_deliver(a);
            a = next;
        }
    }
}
