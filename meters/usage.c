/*
 * usage.c: the marketplace's figures per agent (sessions, messages, revenue over 7 and 30 days),
 * read from the usage events in one pass over the ledger's last 30 days, newest first.
 *
 * Distinct sessions and messages are counted with a set of "agent \0 session [\0 request]" keys:
 * the first time a key is met (newest first) is its latest event, which decides whether it falls
 * in the last 7 days too.
 */
#include <stdlib.h>
#include <string.h>

#include "meters/internal.h"

#define DAY_MS UINT64_C(86400000)

typedef struct set {
    char **keys;
    size_t n, cap;
} set_t;

static uint64_t hash(const char *k, size_t len) {
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)k[i]) * UINT64_C(1099511628211);
    return h;
}

/* Adds the key (len bytes, NULs allowed); 1 when it is new, 0 when present, -1 out of memory. */
static int set_add(set_t *s, const char *k, size_t len) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        char **keys = calloc(cap, sizeof *keys);
        if (!keys) return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->keys[i]) {
                size_t klen;
                memcpy(&klen, s->keys[i], sizeof klen);
                size_t j = hash(s->keys[i] + sizeof klen, klen) & (cap - 1);
                while (keys[j]) j = (j + 1) & (cap - 1);
                keys[j] = s->keys[i];
            }
        free(s->keys);
        s->keys = keys;
        s->cap = cap;
    }
    size_t j = hash(k, len) & (s->cap - 1);
    for (; s->keys[j]; j = (j + 1) & (s->cap - 1)) {
        size_t klen;
        memcpy(&klen, s->keys[j], sizeof klen);
        if (klen == len && memcmp(s->keys[j] + sizeof klen, k, len) == 0) return 0;
    }
    char *e = malloc(sizeof len + len);
    if (!e) return -1;
    memcpy(e, &len, sizeof len);
    memcpy(e + sizeof len, k, len);
    s->keys[j] = e;
    s->n++;
    return 1;
}

static void set_free(set_t *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->keys[i]);
    free(s->keys);
}

typedef struct walk {
    uint64_t since7, since30;
    set_t seen;
    meter_agent_usage_t *v;
    size_t n, cap;
    int oom;
} walk_t;

static meter_agent_usage_t *slot(walk_t *w, const char *agent) {
    for (size_t i = 0; i < w->n; i++) /* agents are few */
        if (strcmp(w->v[i].agent, agent) == 0) return &w->v[i];
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        meter_agent_usage_t *v = realloc(w->v, cap * sizeof *v);
        if (!v) return NULL;
        w->v = v;
        w->cap = cap;
    }
    meter_agent_usage_t *u = &w->v[w->n++];
    memset(u, 0, sizeof *u);
    strncpy(u->agent, agent, METER_NAME_MAX);
    return u;
}

static int one(void *ud, const ledger_entry_t *e) {
    walk_t *w = ud;
    if (e->time_ms < w->since30) return ACC_ECANCELLED; /* older from here on */
    if (!ledger_code_is_charge(e->code) || !e->event_len || e->state != LEDGER_POSTED) return ACC_OK;
    meter_event_t ev;
    if (meter_event_decode(e->event, e->event_len, &ev, NULL) != ACC_OK) return ACC_OK;
    if (ev.agent[0]) {
        meter_agent_usage_t *u = slot(w, ev.agent);
        bool recent = e->time_ms >= w->since7;
        char key[3 * (METER_NAME_MAX + 1)];
        size_t a = strlen(ev.agent), s = strlen(ev.session), r = strlen(ev.request_id);
        memcpy(key, ev.agent, a + 1);
        memcpy(key + a + 1, ev.session, s + 1);
        memcpy(key + a + s + 2, ev.request_id, r);
        int new_session = ev.session[0] ? set_add(&w->seen, key, a + s + 1) : 0;
        int new_message = ev.request_id[0] ? set_add(&w->seen, key, a + s + r + 2) : 0;
        if (!u || new_session < 0 || new_message < 0) {
            w->oom = 1;
        } else {
            u->sessions_30d += (uint64_t)new_session;
            u->messages_30d += (uint64_t)new_message;
            u->revenue_30d += ev.cost;
            if (recent) {
                u->sessions_7d += (uint64_t)new_session;
                u->messages_7d += (uint64_t)new_message;
                u->revenue_7d += ev.cost;
            }
        }
    }
    meter_event_free(&ev);
    return w->oom ? ACC_ENOMEM : ACC_OK;
}

static int by_agent(const void *a, const void *b) {
    return strcmp(((const meter_agent_usage_t *)a)->agent, ((const meter_agent_usage_t *)b)->agent);
}

int meter_usage_by_agent(ledger_t *l, uint64_t now_ms, meter_agent_usage_t **out, size_t *n, acc_err *err) {
    walk_t w = {.since7 = now_ms > 7 * DAY_MS ? now_ms - 7 * DAY_MS : 0,
                .since30 = now_ms > 30 * DAY_MS ? now_ms - 30 * DAY_MS : 0};
    uint64_t from = 1;
    int rc = ledger_seq_at_time(l, w.since30, &from, err);
    if (!rc) rc = ledger_scan(l, from, 0, true, one, &w, err);
    if (rc == ACC_ECANCELLED) rc = ACC_OK;
    if (rc == ACC_ENOMEM) acc_fail(err, rc, "usage: out of memory");
    set_free(&w.seen);
    if (rc) {
        free(w.v);
        return rc;
    }
    if (w.n) qsort(w.v, w.n, sizeof *w.v, by_agent);
    *out = w.v;
    *n = w.n;
    return ACC_OK;
}

const meter_agent_usage_t *meter_agent_usage_find(const meter_agent_usage_t *v, size_t n, const char *agent) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid].agent, agent);
        if (c == 0) return &v[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
