/*
 * event.c: usage events: their stored bytes, their JSON, and the check that they add up.
 *
 * Stored form (version 1), compact because it is written once per call on the hot path and the
 * ledger's speed is rows and bytes (ledger/store_sqlite.c):
 *   u8 version, 16 id, u8 state, u8 resource,
 *   varints: start_ms, latency_us, units_in, units_out, reserved, cost, zigzag(error_code),
 *   strings (varint length, bytes): resource_name, payer, request_id, session, agent,
 *            agent_version, error, evidence,
 *   varint nlines, each: u8 role, u8 payee_kind, string payee, varint weight, varint amount,
 *            string evidence.
 * A decoder that meets a version it does not know says so (ACC_ECORRUPT names it).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "meters/internal.h"

#define EVENT_VERSION 1

const char *meter_role_name(meter_role_t role) {
    switch (role) {
    case METER_ROLE_OWNER: return "owner";
    case METER_ROLE_SHARE: return "share";
    case METER_ROLE_SPAN: return "span";
    case METER_ROLE_RETRIEVAL: return "retrieval";
    case METER_ROLE_AUTHOR: return "author";
    case METER_ROLE_OPERATOR: return "operator";
    }
    return "unknown";
}

const char *meter_resource_name(meter_resource_t r) {
    switch (r) {
    case METER_MODEL: return "model";
    case METER_DATASET: return "dataset";
    case METER_MESSAGE: return "message";
    }
    return "unknown";
}

ledger_code_t meter__line_code(meter_resource_t resource, meter_role_t role) {
    switch (role) {
    case METER_ROLE_OWNER: return resource == METER_DATASET ? LEDGER_CODE_DATA_QUERY : LEDGER_CODE_MODEL_CALL;
    case METER_ROLE_SHARE:
    case METER_ROLE_SPAN: return LEDGER_CODE_MODEL_CALL;
    case METER_ROLE_RETRIEVAL: return LEDGER_CODE_DATA_QUERY;
    case METER_ROLE_AUTHOR: return LEDGER_CODE_AGENT_FEE;
    case METER_ROLE_OPERATOR: return LEDGER_CODE_OPERATOR_FEE;
    }
    return LEDGER_CODE_OPERATOR_FEE;
}

ledger_code_t meter__resource_code(meter_resource_t r) {
    return r == METER_MODEL ? LEDGER_CODE_MODEL_CALL : r == METER_DATASET ? LEDGER_CODE_DATA_QUERY : LEDGER_CODE_AGENT_FEE;
}

/* --- encoding --- */

static void put_varint(acc_buf *b, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    acc_buf_append(b, tmp, n);
}

static void put_str(acc_buf *b, const char *s, size_t len) {
    put_varint(b, len);
    acc_buf_append(b, s, len);
}

static void put_cstr(acc_buf *b, const char *s) { put_str(b, s ? s : "", s ? strlen(s) : 0); }

void meter__event_encode(const meter_event_t *e, acc_buf *b) {
    uint8_t head[19];
    head[0] = EVENT_VERSION;
    memcpy(head + 1, e->id.b, 16);
    head[17] = (uint8_t)e->state;
    head[18] = (uint8_t)e->resource;
    acc_buf_append(b, head, sizeof head);
    put_varint(b, e->start_ms);
    put_varint(b, e->latency_us);
    put_varint(b, e->units_in);
    put_varint(b, e->units_out);
    put_varint(b, e->reserved);
    put_varint(b, e->cost);
    put_varint(b, ((uint64_t)(int64_t)e->error_code << 1) ^ (uint64_t)((int64_t)e->error_code >> 63));
    put_cstr(b, e->resource_name);
    put_cstr(b, e->payer);
    put_cstr(b, e->request_id);
    put_cstr(b, e->session);
    put_cstr(b, e->agent);
    put_cstr(b, e->agent_version);
    put_cstr(b, e->error);
    put_str(b, e->evidence ? e->evidence : "", e->evidence ? e->evidence_len : 0);
    put_varint(b, e->nlines);
    for (size_t i = 0; i < e->nlines; i++) {
        const meter_line_t *l = &e->lines[i];
        uint8_t rk[2] = {(uint8_t)l->role, (uint8_t)l->payee_kind};
        acc_buf_append(b, rk, 2);
        put_cstr(b, l->payee);
        put_varint(b, l->weight);
        put_varint(b, l->amount);
        put_str(b, l->evidence ? l->evidence : "", l->evidence ? l->evidence_len : 0);
    }
}

/* --- decoding --- */

typedef struct rd {
    const uint8_t *p, *end;
    char *strs; /* where decoded strings are copied, NUL-terminated */
    int bad;
} rd_t;

static uint64_t get_varint(rd_t *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) break;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    r->bad = 1;
    return 0;
}

static const char *get_str(rd_t *r, size_t *len_out) {
    uint64_t len = get_varint(r);
    if (r->bad || len > (uint64_t)(r->end - r->p)) {
        r->bad = 1;
        if (len_out) *len_out = 0;
        return "";
    }
    char *s = r->strs;
    memcpy(s, r->p, len);
    s[len] = '\0';
    r->strs += len + 1;
    r->p += len;
    if (len_out) *len_out = len;
    return s;
}

int meter_event_decode(const void *data, size_t len, meter_event_t *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    const uint8_t *p = data;
    if (len < 19) return acc_fail(err, ACC_ECORRUPT, "usage event: %zu bytes, too short", len);
    if (p[0] != EVENT_VERSION)
        return acc_fail(err, ACC_ECORRUPT, "usage event: format version %u (this accrue reads %d)", p[0], EVENT_VERSION);
    /* Strings and lines fit in: every string's bytes plus a NUL each (at most one per byte), and
     * at most one line per 6 bytes. */
    size_t max_lines = len / 6 + 1;
    char *block = malloc(2 * len + 16 + max_lines * sizeof(meter_line_t));
    if (!block) return acc_fail(err, ACC_ENOMEM, "usage event: out of memory");
    meter_line_t *lines = (meter_line_t *)block;
    rd_t r = {.p = p + 19, .end = p + len, .strs = block + max_lines * sizeof(meter_line_t)};
    memcpy(out->id.b, p + 1, 16);
    out->state = (ledger_state_t)p[17];
    out->resource = (meter_resource_t)p[18];
    out->start_ms = get_varint(&r);
    out->latency_us = get_varint(&r);
    out->units_in = get_varint(&r);
    out->units_out = get_varint(&r);
    out->reserved = get_varint(&r);
    out->cost = get_varint(&r);
    uint64_t z = get_varint(&r);
    out->error_code = (int)(int64_t)((z >> 1) ^ (~(z & 1) + 1));
    out->resource_name = get_str(&r, NULL);
    out->payer = get_str(&r, NULL);
    out->request_id = get_str(&r, NULL);
    out->session = get_str(&r, NULL);
    out->agent = get_str(&r, NULL);
    out->agent_version = get_str(&r, NULL);
    out->error = get_str(&r, NULL);
    out->evidence = get_str(&r, &out->evidence_len);
    uint64_t n = get_varint(&r);
    if (!r.bad && n > max_lines) r.bad = 1;
    for (uint64_t i = 0; !r.bad && i < n; i++) {
        meter_line_t *l = &lines[i];
        if (r.end - r.p < 2) {
            r.bad = 1;
            break;
        }
        l->role = (meter_role_t)*r.p++;
        l->payee_kind = (ledger_account_kind_t)*r.p++;
        size_t plen;
        const char *payee = get_str(&r, &plen);
        if (plen >= sizeof l->payee) r.bad = 1;
        else memcpy(l->payee, payee, plen + 1);
        l->weight = get_varint(&r);
        l->amount = get_varint(&r);
        l->evidence = get_str(&r, &l->evidence_len);
        if (l->role < 1 || l->role > METER_ROLE_MAX) r.bad = 1;
    }
    if (!r.bad && r.p != r.end) r.bad = 1;
    if (!r.bad && (out->state != LEDGER_POSTED && out->state != LEDGER_VOIDED)) r.bad = 1;
    if (!r.bad && (out->resource < METER_MODEL || out->resource > METER_MESSAGE)) r.bad = 1;
    if (r.bad) {
        free(block);
        memset(out, 0, sizeof *out);
        return acc_fail(err, ACC_ECORRUPT, "usage event: malformed (%zu bytes)", len);
    }
    out->nlines = (size_t)n;
    out->lines = lines;
    return ACC_OK;
}

void meter_event_free(meter_event_t *e) {
    if (!e) return;
    free(e->lines);
    e->lines = NULL;
    e->nlines = 0;
}

/* --- JSON --- */

static void json_key_str(acc_buf *b, const char *key, const char *s) {
    acc_buf_printf(b, ",\"%s\":", key);
    acc_buf_json_string(b, s, strlen(s));
}

void meter_event_json(const meter_event_t *e, uint64_t seq, acc_buf *b) {
    char hex[33];
    ledger_id_hex(&e->id, hex);
    acc_buf_printf(b, "{\"id\":\"%s\"", hex);
    if (seq) acc_buf_printf(b, ",\"seq\":%" PRIu64, seq);
    acc_buf_printf(b, ",\"state\":\"%s\",\"resource\":\"%s\"", ledger_state_name(e->state),
                   meter_resource_name(e->resource));
    json_key_str(b, "name", e->resource_name);
    json_key_str(b, "payer", e->payer);
    json_key_str(b, "request_id", e->request_id);
    json_key_str(b, "session", e->session);
    json_key_str(b, "agent", e->agent);
    json_key_str(b, "agent_version", e->agent_version);
    acc_buf_printf(b,
                   ",\"start_ms\":%" PRIu64 ",\"latency_us\":%" PRIu64 ",\"units_in\":%" PRIu64
                   ",\"units_out\":%" PRIu64 ",\"reserved\":%" PRIu64 ",\"cost\":%" PRIu64,
                   e->start_ms, e->latency_us, e->units_in, e->units_out, e->reserved, e->cost);
    if (e->error_code) {
        acc_buf_printf(b, ",\"error_code\":\"%s\"", acc_status_name(e->error_code));
        json_key_str(b, "error", e->error);
    }
    acc_buf_puts(b, ",\"evidence\":");
    if (e->evidence_len) acc_buf_append(b, e->evidence, e->evidence_len);
    else acc_buf_puts(b, "null");
    acc_buf_puts(b, ",\"lines\":[");
    for (size_t i = 0; i < e->nlines; i++) {
        const meter_line_t *l = &e->lines[i];
        acc_buf_printf(b, "%s{\"payee\":", i ? "," : "");
        acc_buf_json_string(b, l->payee, strlen(l->payee));
        acc_buf_printf(b, ",\"role\":\"%s\",\"weight\":%" PRIu64 ",\"amount\":%" PRIu64 ",\"evidence\":",
                       meter_role_name(l->role), l->weight, l->amount);
        if (l->evidence_len) acc_buf_append(b, l->evidence, l->evidence_len);
        else acc_buf_puts(b, "null");
        acc_buf_putc(b, '}');
    }
    acc_buf_puts(b, "]}");
}

/* --- the ledger check's event checker --- */

typedef struct sum {
    uint64_t account;
    ledger_code_t code;
    ledger_amount_t from_lines, from_legs;
} sum_t;

static sum_t *sum_slot(sum_t *sums, size_t *n, size_t cap, uint64_t account, ledger_code_t code) {
    for (size_t i = 0; i < *n; i++)
        if (sums[i].account == account && sums[i].code == code) return &sums[i];
    if (*n == cap) return NULL;
    sums[*n] = (sum_t){account, code, 0, 0};
    return &sums[(*n)++];
}

int meter_check_event(void *ud, const ledger_entry_t *e, acc_err *err) {
    ledger_t *l = ud;
    meter_event_t ev;
    int rc = meter_event_decode(e->event, e->event_len, &ev, err);
    if (rc) return rc;
    if (memcmp(ev.id.b, e->id.b, 16) != 0) rc = acc_fail(err, ACC_ECORRUPT, "the usage event's id is not the posting's");
    else if (ev.state != e->state)
        rc = acc_fail(err, ACC_ECORRUPT, "the usage event is %s, the posting %s", ledger_state_name(ev.state),
                      ledger_state_name(e->state));
    else if (meter__resource_code(ev.resource) != e->code)
        rc = acc_fail(err, ACC_ECORRUPT, "a %s event in a %s posting", meter_resource_name(ev.resource),
                      ledger_code_name(e->code));
    ledger_amount_t lines_total = 0, legs_total = 0;
    for (size_t i = 0; !rc && i < ev.nlines; i++)
        if (__builtin_add_overflow(lines_total, ev.lines[i].amount, &lines_total))
            rc = acc_fail(err, ACC_ECORRUPT, "the usage event's lines overflow");
    for (size_t i = 0; !rc && i < e->nlegs; i++) legs_total += e->legs[i].amount;
    if (!rc && (lines_total != ev.cost || legs_total != ev.cost))
        rc = acc_fail(err, ACC_ECORRUPT,
                      "cost %" PRIu64 ", but its attribution lines add up to %" PRIu64 " and its transfers to %" PRIu64,
                      ev.cost, lines_total, legs_total);
    if (!rc && ev.state == LEDGER_VOIDED && ev.cost)
        rc = acc_fail(err, ACC_ECORRUPT, "a voided call with a cost of %" PRIu64, ev.cost);
    if (!rc && ev.cost > ev.reserved)
        rc = acc_fail(err, ACC_ECORRUPT, "cost %" PRIu64 " above its reservation of %" PRIu64, ev.cost, ev.reserved);
    /* Per (payee account, code): the lines' amounts are the transfers'. */
    size_t cap = ev.nlines + e->nlegs, n = 0;
    sum_t stack[64], *sums = cap <= 64 ? stack : malloc(cap * sizeof *sums);
    if (!rc && !sums) rc = acc_fail(err, ACC_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < ev.nlines; i++) {
        const meter_line_t *ln = &ev.lines[i];
        if (!ln->amount) continue;
        ledger_account_t *a;
        if (ledger_account(l, ln->payee_kind, ln->payee, &a, err) != ACC_OK) {
            rc = ACC_ECORRUPT;
            break;
        }
        ledger_balance_t b;
        ledger_balance(l, a, false, &b, NULL);
        sum_t *s = sum_slot(sums, &n, cap, b.id, meter__line_code(ev.resource, ln->role));
        s->from_lines += ln->amount;
    }
    for (size_t i = 0; !rc && i < e->nlegs; i++) {
        sum_t *s = sum_slot(sums, &n, cap, e->legs[i].credit, e->legs[i].code);
        s->from_legs += e->legs[i].amount;
    }
    for (size_t i = 0; !rc && i < n; i++)
        if (sums[i].from_lines != sums[i].from_legs) {
            ledger_account_t *a = NULL;
            ledger_account_by_id(l, sums[i].account, &a, NULL);
            rc = acc_fail(err, ACC_ECORRUPT, "%s to %s: attribution lines say %" PRIu64 ", transfers %" PRIu64,
                          ledger_code_name(sums[i].code), a ? ledger_account_name(a) : "an unknown account",
                          sums[i].from_lines, sums[i].from_legs);
        }
    if (sums && sums != stack) free(sums);
    meter_event_free(&ev);
    return rc;
}
