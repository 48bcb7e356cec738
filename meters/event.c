/*
 * event.c: usage events: their stored bytes, their JSON, and the check that they add up.
 *
 * An event is written once per call, on the hot path, and the ledger's speed is rows and bytes
 * (ledger/store_sqlite.c), so it is stored as compactly as it can be read back exactly, and its
 * evidence is stored as data, not JSON: the JSON a reader sees is written from it when the event
 * is decoded (the same text version 1 stored). Stored form, version 2:
 *   u8 version, 16 id, u8 state, u8 resource,
 *   varints: start_ms, latency_us, units_in, units_out, reserved, cost, zigzag(error_code),
 *   strings (varint length, bytes): resource_name, payer, request_id, session, agent,
 *            agent_version, error,
 *   the event's evidence: u8 kind, then
 *            SPANS: varint output_tokens, varint covered_tokens, varint n, each: varint start,
 *                   varint end, varint tokens, string text, varint m, m zigzag record ids;
 *            ROWS:  varint n, each: zigzag record, 8 bytes score (IEEE 754, little-endian),
 *                   varint weight;
 *   varint nlines, each: u8 role, u8 payee_kind, payee, varint weight, varint amount, the line's
 *            evidence: u8 kind, then RECORDS: varint m, m zigzag record ids; PRICE: varint
 *            per_message, varint per_session.
 * A payee is u8 form and either (form 1) an address "0x" + 40 hex digits as its 20 bytes and 40
 * bits saying which digits are upper case (its EIP-55 checksum, kept without hashing: 25 bytes
 * for 42 characters), or (form 0) a string. A call of bench_meters takes 262 bytes on average
 * where version 1 took 408.
 * Version 1 (still read): the same header, then the strings, the event's evidence as a JSON
 * string, and lines of u8 role, u8 payee_kind, string payee, varint weight, varint amount, string
 * evidence (JSON). A decoder that meets a version it does not know says so (ACC_ECORRUPT names it).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meters/internal.h"
#include "runtime/base/invariant.h"

#define EVENT_VERSION 2

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

static uint8_t *put_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzigzag(uint64_t z) { return (int64_t)((z >> 1) ^ (~(z & 1) + 1)); }

static uint8_t *put_str(uint8_t *p, const char *s, size_t len) {
    p = put_varint(p, len);
    if (len) memcpy(p, s, len);
    return p + len;
}

static uint8_t *put_cstr(uint8_t *p, const char *s) { return put_str(p, s ? s : "", s ? strlen(s) : 0); }

/* The 40 hex digits of an address as its 20 bytes, and which digits are upper case (bit i % 8 of
 * upper[i / 8] for digit i); false when one is not a hex digit. A call writes two or three of them
 * (bench_meters' profile: 0.17 us a call a digit at a time), so they are read eight at a time. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS (ONES * 0x80)

/* Per byte of x (each below 0x80): 0x80 when it is within [lo, hi], else 0. No byte carries into
 * the next: b + 0x80 - lo and b + 0x7f - hi stay below 0x100, and have their high bit set exactly
 * when b >= lo and b > hi. */
static inline uint64_t bytes_within(uint64_t x, uint8_t lo, uint8_t hi) {
    return (x + ONES * (uint8_t)(0x80 - lo)) & ~(x + ONES * (uint8_t)(0x7f - hi)) & HIGHS;
}

static bool parse_address_digits(const char *d, uint8_t bytes[20], uint8_t upper[5]) {
    uint64_t bad = 0;
    for (int k = 0; k < 5; k++) {
        uint64_t w;
        memcpy(&w, d + 8 * k, 8); /* byte j is digit 8k + j */
        uint64_t digit = bytes_within(w, '0', '9'), up = bytes_within(w, 'A', 'F'), low = bytes_within(w, 'a', 'f');
        bad |= (w & HIGHS) | ((digit | up | low) ^ HIGHS);
        uint64_t v = (w & ONES * 0x0f) + ((up | low) >> 7) * 9; /* each byte its digit's value */
        /* two digits a byte (the first the high nibble), then the four bytes together */
        uint64_t t = (v & UINT64_C(0x00ff00ff00ff00ff)) << 4 | (v >> 8 & UINT64_C(0x00ff00ff00ff00ff));
        t = (t | t >> 8) & UINT64_C(0x0000ffff0000ffff);
        t = (t | t >> 16) & UINT64_C(0xffffffff);
        uint32_t b4 = (uint32_t)t;
        memcpy(bytes + 4 * k, &b4, 4);
        upper[k] = (uint8_t)(((up >> 7) * UINT64_C(0x0102040810204080)) >> 56); /* byte j's flag as bit j */
    }
    return bad == 0;
}
#else
/* Hex digit values (0 for anything that is not one, as for the digit 0: told apart below). */
static const uint8_t hex_value[256] = {
    ['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6, ['7'] = 7, ['8'] = 8, ['9'] = 9,
    ['a'] = 10, ['b'] = 11, ['c'] = 12, ['d'] = 13, ['e'] = 14, ['f'] = 15,
    ['A'] = 10, ['B'] = 11, ['C'] = 12, ['D'] = 13, ['E'] = 14, ['F'] = 15,
};

static bool parse_address_digits(const char *d, uint8_t bytes[20], uint8_t upper[5]) {
    bool ok = true;
    memset(upper, 0, 5);
    for (size_t i = 0; i < 40; i += 2) {
        unsigned char hi = (unsigned char)d[i], lo = (unsigned char)d[i + 1];
        uint8_t vh = hex_value[hi], vl = hex_value[lo];
        /* table zeros stand for '0' only: anything else that maps to 0 is not a digit */
        ok &= (vh || hi == '0') && (vl || lo == '0');
        bytes[i / 2] = (uint8_t)(vh << 4 | vl);
        upper[i / 8] |= (uint8_t)((hi >= 'A' && hi <= 'F') << (i % 8) | (lo >= 'A' && lo <= 'F') << (i % 8 + 1));
    }
    return ok;
}
#endif

/* A payee: an address as 20 bytes and its digits' case (form 1), anything else as a string. */
static uint8_t *put_payee(uint8_t *p, const char *payee) {
    size_t n = strlen(payee);
    uint8_t bytes[20], upper[5];
    if (n == 42 && payee[0] == '0' && payee[1] == 'x' && parse_address_digits(payee + 2, bytes, upper)) {
        *p++ = 1;
        memcpy(p, bytes, 20);
        memcpy(p + 20, upper, 5);
        return p + 25;
    }
    *p++ = 0;
    return put_str(p, payee, n);
}

static uint8_t *put_records(uint8_t *p, const int64_t *r, size_t n) {
    p = put_varint(p, n);
    for (size_t i = 0; i < n; i++) p = put_varint(p, zigzag(r[i]));
    return p;
}

/* A span's byte range, within the output. */
static void span_range(const meter__evidence_t *ev, const meter_span_t *sp, uint32_t *b0, uint32_t *b1) {
    *b0 = sp->byte_start <= ev->output_len ? sp->byte_start : (uint32_t)ev->output_len;
    *b1 = sp->byte_end <= ev->output_len && sp->byte_end >= *b0 ? sp->byte_end : *b0;
}

void meter__event_encode(const meter_event_t *e, const meter__evidence_t *ev, acc_buf *b) {
    const char *strs[7] = {e->resource_name, e->payer, e->request_id, e->session, e->agent, e->agent_version, e->error};
    /* The most it can take, so that it is written in one pass with no check per byte. */
    size_t most = 19 + 7 * 10 + 1 + 10;
    for (int i = 0; i < 7; i++) most += 10 + (strs[i] ? strlen(strs[i]) : 0);
    if (ev->kind == METER__EV_SPANS) {
        most += 30;
        for (size_t i = 0; i < ev->nspans; i++) {
            uint32_t b0, b1;
            span_range(ev, &ev->spans[i], &b0, &b1);
            most += 40 + (b1 - b0) + 10 * ev->spans[i].nrecords;
        }
    } else if (ev->kind == METER__EV_ROWS) {
        most += 10 + 30 * ev->nrows;
    }
    for (size_t i = 0; i < e->nlines; i++) {
        most += 2 + 11 + strlen(e->lines[i].payee) + 20 + 21;
        if (ev->lines && ev->lines[i].kind == METER__EV_RECORDS) most += 10 * ev->lines[i].n;
    }
    uint8_t *p0 = (uint8_t *)acc_buf_reserve(b, most), *p = p0;
    if (!p) return;
    *p++ = EVENT_VERSION;
    memcpy(p, e->id.b, 16);
    p += 16;
    *p++ = (uint8_t)e->state;
    *p++ = (uint8_t)e->resource;
    p = put_varint(p, e->start_ms);
    p = put_varint(p, e->latency_us);
    p = put_varint(p, e->units_in);
    p = put_varint(p, e->units_out);
    p = put_varint(p, e->reserved);
    p = put_varint(p, e->cost);
    p = put_varint(p, zigzag(e->error_code));
    for (int i = 0; i < 7; i++) p = put_cstr(p, strs[i]);
    *p++ = (uint8_t)ev->kind;
    if (ev->kind == METER__EV_SPANS) {
        p = put_varint(p, ev->output_tokens);
        p = put_varint(p, ev->covered_tokens);
        p = put_varint(p, ev->nspans);
        for (size_t i = 0; i < ev->nspans; i++) {
            const meter_span_t *sp = &ev->spans[i];
            uint32_t b0, b1;
            span_range(ev, sp, &b0, &b1);
            p = put_varint(p, b0);
            p = put_varint(p, b1);
            p = put_varint(p, sp->ntokens);
            p = put_str(p, ev->output + b0, b1 - b0);
            p = put_records(p, sp->records, sp->nrecords);
        }
    } else if (ev->kind == METER__EV_ROWS) {
        p = put_varint(p, ev->nrows);
        for (size_t i = 0; i < ev->nrows; i++) {
            p = put_varint(p, zigzag(ev->rows[i].record));
            uint64_t bits;
            memcpy(&bits, &ev->rows[i].score, 8);
            for (int k = 0; k < 8; k++) *p++ = (uint8_t)(bits >> (8 * k));
            p = put_varint(p, meter__score_weight(ev->rows[i].score));
        }
    }
    p = put_varint(p, e->nlines);
    for (size_t i = 0; i < e->nlines; i++) {
        const meter_line_t *l = &e->lines[i];
        *p++ = (uint8_t)l->role;
        *p++ = (uint8_t)l->payee_kind;
        p = put_payee(p, l->payee);
        p = put_varint(p, l->weight);
        p = put_varint(p, l->amount);
        const meter__line_ev_t *le = ev->lines ? &ev->lines[i] : NULL;
        *p++ = (uint8_t)(le ? le->kind : METER__EV_NONE);
        if (le && le->kind == METER__EV_RECORDS) {
            p = put_records(p, ev->records + le->off, le->n);
        } else if (le && le->kind == METER__EV_PRICE) {
            p = put_varint(p, le->per_message);
            p = put_varint(p, le->per_session);
        }
    }
    ACC_INVARIANT((size_t)(p - p0) <= most, "event of %zu bytes past its bound of %zu", (size_t)(p - p0), most);
    acc_buf_commit(b, (size_t)(p - p0));
}

/* --- decoding --- */

typedef struct rd {
    const uint8_t *p, *end;
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

static uint8_t get_u8(rd_t *r) {
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

/* A string's bytes (not copied). */
static const uint8_t *get_bytes(rd_t *r, size_t *len) {
    uint64_t n = get_varint(r);
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = 1;
        *len = 0;
        return r->p;
    }
    const uint8_t *s = r->p;
    r->p += n;
    *len = (size_t)n;
    return s;
}

/* The decoded strings go into one buffer (sb), each NUL-terminated, named by offsets until it
 * stops growing. */
static size_t get_str(rd_t *r, acc_buf *sb) {
    size_t len;
    const uint8_t *s = get_bytes(r, &len);
    size_t off = sb->len;
    acc_buf_append(sb, s, len);
    acc_buf_putc(sb, '\0');
    return off;
}

static void render_records(rd_t *r, acc_buf *sb, bool render) {
    uint64_t n = get_varint(r);
    if (n > (uint64_t)(r->end - r->p)) r->bad = 1;
    if (render) acc_buf_puts(sb, "[");
    for (uint64_t i = 0; !r->bad && i < n; i++) {
        int64_t id = unzigzag(get_varint(r));
        if (!render) continue;
        if (i) acc_buf_putc(sb, ',');
        acc_buf_put_i64(sb, id);
    }
    if (render) acc_buf_puts(sb, "]");
}

/* An event's evidence (version 2) as the JSON version 1 stored: appended to sb. */
static void render_event_evidence(rd_t *r, acc_buf *sb, bool render) {
    uint8_t kind = get_u8(r);
    if (kind == METER__EV_SPANS) {
        uint64_t t = get_varint(r), c = get_varint(r), n = get_varint(r);
        if (n > (uint64_t)(r->end - r->p)) r->bad = 1;
        if (render) {
            acc_buf_puts(sb, "{\"output_tokens\":");
            acc_buf_put_u64(sb, t);
            acc_buf_puts(sb, ",\"covered_tokens\":");
            acc_buf_put_u64(sb, c);
            acc_buf_puts(sb, ",\"spans\":[");
        }
        for (uint64_t i = 0; !r->bad && i < n; i++) {
            uint64_t b0 = get_varint(r), b1 = get_varint(r), tokens = get_varint(r);
            size_t tlen;
            const uint8_t *text = get_bytes(r, &tlen);
            if (render) {
                acc_buf_puts(sb, i ? ",{\"start\":" : "{\"start\":");
                acc_buf_put_u64(sb, b0);
                acc_buf_puts(sb, ",\"end\":");
                acc_buf_put_u64(sb, b1);
                acc_buf_puts(sb, ",\"tokens\":");
                acc_buf_put_u64(sb, tokens);
                acc_buf_puts(sb, ",\"text\":");
                acc_buf_json_string(sb, (const char *)text, tlen);
                acc_buf_puts(sb, ",\"records\":");
            }
            render_records(r, sb, render);
            if (render) acc_buf_putc(sb, '}');
        }
        if (render) acc_buf_puts(sb, "]}");
    } else if (kind == METER__EV_ROWS) {
        uint64_t n = get_varint(r);
        if (n > (uint64_t)(r->end - r->p)) r->bad = 1;
        if (render) acc_buf_puts(sb, "{\"rows\":[");
        for (uint64_t i = 0; !r->bad && i < n; i++) {
            int64_t record = unzigzag(get_varint(r));
            uint64_t bits = 0;
            if (r->end - r->p < 8) r->bad = 1;
            for (int k = 0; !r->bad && k < 8; k++) bits |= (uint64_t)*r->p++ << (8 * k);
            uint64_t weight = get_varint(r);
            double score;
            memcpy(&score, &bits, 8);
            if (!render) continue;
            acc_buf_puts(sb, i ? ",{\"record\":" : "{\"record\":");
            acc_buf_put_i64(sb, record);
            if (isfinite(score)) acc_buf_printf(sb, ",\"score\":%.6g", score);
            else acc_buf_puts(sb, ",\"score\":null"); /* %g would write nan, which is not JSON */
            acc_buf_puts(sb, ",\"weight\":");
            acc_buf_put_u64(sb, weight);
            acc_buf_putc(sb, '}');
        }
        if (render) acc_buf_puts(sb, "]}");
    } else if (kind != METER__EV_NONE) {
        r->bad = 1;
    }
}

static void render_line_evidence(rd_t *r, acc_buf *sb, bool render) {
    uint8_t kind = get_u8(r);
    if (kind == METER__EV_RECORDS) {
        if (render) acc_buf_puts(sb, "{\"records\":");
        render_records(r, sb, render);
        if (render) acc_buf_putc(sb, '}');
    } else if (kind == METER__EV_PRICE) {
        uint64_t m = get_varint(r), s = get_varint(r);
        if (render) {
            acc_buf_puts(sb, "{\"per_message\":");
            acc_buf_put_u64(sb, m);
            acc_buf_puts(sb, ",\"per_session\":");
            acc_buf_put_u64(sb, s);
            acc_buf_putc(sb, '}');
        }
    } else if (kind != METER__EV_NONE) {
        r->bad = 1;
    }
}

static void get_payee(rd_t *r, char out[METER_ADDRESS_SIZE]) {
    uint8_t form = get_u8(r);
    if (form == 1) {
        if (r->end - r->p < 25) {
            r->bad = 1;
            out[0] = '\0';
            return;
        }
        static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
        out[0] = '0', out[1] = 'x';
        for (size_t i = 0; i < 40; i++) {
            unsigned d = i % 2 == 0 ? r->p[i / 2] >> 4 : r->p[i / 2] & 15;
            out[2 + i] = (r->p[20 + i / 8] >> (i % 8)) & 1 ? upper[d] : lower[d];
        }
        out[42] = '\0';
        r->p += 25;
        return;
    }
    size_t len;
    const uint8_t *s = get_bytes(r, &len);
    if (form != 0 || len >= METER_ADDRESS_SIZE) {
        r->bad = 1;
        len = 0;
    }
    memcpy(out, s, len);
    out[len] = '\0';
}

/* Decodes data; with render, the evidence is written out as JSON (else left empty: the ledger
 * check reads only the money). */
static int decode(const void *data, size_t len, bool render, meter_event_t *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    const uint8_t *p = data;
    if (len < 19) return acc_fail(err, ACC_ECORRUPT, "usage event: %zu bytes, too short", len);
    int version = p[0];
    if (version != 1 && version != 2)
        return acc_fail(err, ACC_ECORRUPT, "usage event: format version %u (this accrue reads 1 and %d)", p[0],
                        EVENT_VERSION);
    rd_t r = {.p = p + 19, .end = p + len};
    acc_buf sb = ACC_BUF_INIT;
    memcpy(out->id.b, p + 1, 16);
    out->state = (ledger_state_t)p[17];
    out->resource = (meter_resource_t)p[18];
    out->start_ms = get_varint(&r);
    out->latency_us = get_varint(&r);
    out->units_in = get_varint(&r);
    out->units_out = get_varint(&r);
    out->reserved = get_varint(&r);
    out->cost = get_varint(&r);
    out->error_code = (int)unzigzag(get_varint(&r));
    size_t so[8];
    for (int i = 0; i < 7; i++) so[i] = get_str(&r, &sb);
    size_t ev_off = sb.len;
    if (version == 1) get_str(&r, &sb);
    else render_event_evidence(&r, &sb, render), acc_buf_putc(&sb, '\0');
    so[7] = ev_off;
    uint64_t n = get_varint(&r);
    /* every line takes at least 6 bytes */
    size_t max_lines = len / 6 + 1;
    if (!r.bad && n > max_lines) r.bad = 1;
    meter_line_t *lines = r.bad ? NULL : malloc((n ? n : 1) * sizeof *lines);
    if (!r.bad && !lines) {
        acc_buf_free(&sb);
        return acc_fail(err, ACC_ENOMEM, "usage event: out of memory");
    }
    for (uint64_t i = 0; !r.bad && i < n; i++) {
        meter_line_t *l = &lines[i];
        memset(l, 0, sizeof *l);
        l->role = (meter_role_t)get_u8(&r);
        l->payee_kind = (ledger_account_kind_t)get_u8(&r);
        if (version == 1) {
            size_t plen;
            const uint8_t *payee = get_bytes(&r, &plen);
            if (plen >= sizeof l->payee) r.bad = 1;
            else memcpy(l->payee, payee, plen), l->payee[plen] = '\0';
        } else {
            get_payee(&r, l->payee);
        }
        l->weight = get_varint(&r);
        l->amount = get_varint(&r);
        size_t off = sb.len; /* an offset until the strings stop moving */
        if (version == 1) get_str(&r, &sb);
        else render_line_evidence(&r, &sb, render), acc_buf_putc(&sb, '\0');
        l->evidence = (const char *)(uintptr_t)off;
        l->evidence_len = sb.len - 1 - off;
        if (l->role < 1 || l->role > METER_ROLE_MAX) r.bad = 1;
    }
    if (!r.bad && r.p != r.end) r.bad = 1;
    if (!r.bad && (out->state != LEDGER_POSTED && out->state != LEDGER_VOIDED)) r.bad = 1;
    if (!r.bad && (out->resource < METER_MODEL || out->resource > METER_MESSAGE)) r.bad = 1;
    if (r.bad || acc_buf_failed(&sb)) {
        int oom = !r.bad;
        free(lines);
        acc_buf_free(&sb);
        memset(out, 0, sizeof *out);
        return oom ? acc_fail(err, ACC_ENOMEM, "usage event: out of memory")
                   : acc_fail(err, ACC_ECORRUPT, "usage event: malformed (%zu bytes)", len);
    }
    /* One block for the lines and the strings: meter_event_free frees it. */
    size_t lines_size = (n ? n : 1) * sizeof *lines;
    char *block = realloc(lines, lines_size + sb.len + 1);
    if (!block) {
        free(lines);
        acc_buf_free(&sb);
        memset(out, 0, sizeof *out);
        return acc_fail(err, ACC_ENOMEM, "usage event: out of memory");
    }
    lines = (meter_line_t *)block;
    char *strs = block + lines_size;
    memcpy(strs, sb.data ? sb.data : "", sb.len + 1);
    for (uint64_t i = 0; i < n; i++) lines[i].evidence = strs + (uintptr_t)lines[i].evidence;
    const char **fields[7] = {&out->resource_name, &out->payer, &out->request_id, &out->session, &out->agent,
                              &out->agent_version, &out->error};
    for (int i = 0; i < 7; i++) *fields[i] = strs + so[i];
    out->evidence = strs + so[7];
    out->evidence_len = strlen(out->evidence);
    acc_buf_free(&sb);
    out->nlines = (size_t)n;
    out->lines = lines;
    return ACC_OK;
}

int meter_event_decode(const void *data, size_t len, meter_event_t *out, acc_err *err) {
    return decode(data, len, true, out, err);
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
    int rc = decode(e->event, e->event_len, false, &ev, err); /* the money only */
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
