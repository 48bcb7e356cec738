/*
 * attribute.c: which contributed records a text copies from, and by how much.
 *
 * The matching statistics give, for each output token i, the longest run ms[i] starting there that
 * some record holds (across every index of the model's lineage: the longest of any). A run
 * [i, i + ms[i]) cannot be extended to the right by definition; it can be extended to the left
 * exactly when ms[i-1] > ms[i] (ms[i-1] <= ms[i] + 1 always holds, since a match at i-1 minus its
 * first token is a match at i). So the maximal copied spans are the positions with ms[i] >= k and
 * ms[i-1] <= ms[i]: found in one pass, no span inside another, and none shorter than k ever
 * counted. Each span is then looked up in each index whose own longest match at i reaches its
 * length, for the records it occurs in.
 *
 * Weights are integers: a span weighs its length in tokens; among the records credited for it the
 * weight length x SPAN_SHARE_SCALE is split equally, the remainder one unit each to the first ones
 * (earliest record ids), so every span's shares sum exactly to its weight and the result depends
 * on nothing but the text and the indexes.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "registry/span/span_internal.h"

static int cmp_source(const void *a, const void *b) {
    const span_source *x = a, *y = b;
    if (x->record_id != y->record_id) return x->record_id < y->record_id ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

typedef struct share {
    span_source source;
    uint64_t weight;
} share;

static int cmp_share(const void *a, const void *b) { return cmp_source(&((const share *)a)->source, &((const share *)b)->source); }

void span_attribution_free(span_attribution *a) {
    if (!a) return;
    free(a->source_block);
    free(a->spans);
    free(a->credits);
    memset(a, 0, sizeof *a);
}

/* Appends item to a growable array. */
static int push(void **p, size_t *n, size_t *cap, const void *item, size_t size) {
    if (span_grow(p, cap, *n + 1, size)) return -1;
    memcpy((char *)*p + *n * size, item, size);
    (*n)++;
    return 0;
}

/* A span found, and where its sources start in the source array (which moves while it grows). */
typedef struct found {
    span_match m;
    size_t first;
} found;

int span_attribute(const span_index *const *indexes, size_t nindexes, const char *text, size_t len,
                   const span_attr_options *opts, span_attribution *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    uint32_t k = opts && opts->min_tokens ? opts->min_tokens : SPAN_DEFAULT_MIN_TOKENS;
    size_t cap = opts && opts->record_cap ? opts->record_cap : SPAN_DEFAULT_RECORD_CAP;
    span_tokens toks = SPAN_TOKENS_INIT;
    int rc = span_tokenize(text, len, &toks, err);
    if (rc) return rc;
    size_t n = toks.n;
    out->ntokens = n;
    if (n < k || nindexes == 0) {
        span_tokens_free(&toks);
        return ACC_OK;
    }

    /* Per index: the text's ids in its vocabulary and its matching statistics; ms = the longest. */
    uint32_t *mem = malloc(n * (2 * nindexes + 1) * sizeof *mem);
    span_source *src = NULL;
    share *shares = NULL;
    found *spans = NULL;
    size_t nsrc = 0, src_cap = 0, nshares = 0, shares_cap = 0, nspans = 0, spans_cap = 0;
    if (!mem) goto nomem;
    uint32_t *ms = mem + n * 2 * nindexes;
    memset(ms, 0, n * sizeof *ms);
    for (size_t d = 0; d < nindexes; d++) {
        uint32_t *ids = mem + n * 2 * d, *msd = ids + n;
        span_vocab_find_ids(span_index_vocab_const(indexes[d]), &toks, ids);
        span_index_longest(indexes[d], ids, n, msd);
        for (size_t i = 0; i < n; i++)
            if (msd[i] > ms[i]) ms[i] = msd[i];
    }

    size_t reach = 0; /* the end of the spans so far, for the covered count */
    for (size_t i = 0; i < n; i++) {
        uint32_t L = ms[i];
        if (L < k || (i > 0 && ms[i - 1] > L)) continue; /* too short, or inside the span before */
        found f = {.m = {.token = (uint32_t)i, .ntokens = L, .byte_start = toks.v[i].start, .byte_end = toks.v[i + L - 1].end},
                   .first = nsrc};
        for (size_t d = 0; d < nindexes; d++) {
            const uint32_t *ids = mem + n * 2 * d, *msd = ids + n;
            if (msd[i] < L) continue;
            span_hits h;
            if ((rc = span_index_find(indexes[d], ids + i, L, cap, &h, err))) goto fail;
            ACC_INVARIANT(h.occurrences > 0, "a span of %u tokens the matching statistics found is nowhere", L);
            f.m.occurrences += h.occurrences;
            f.m.records += h.records;
            for (size_t j = 0; j < h.nids; j++) {
                span_source s = {.index = (uint32_t)d, .record_id = h.ids[j]};
                if (push((void **)&src, &nsrc, &src_cap, &s, sizeof s)) {
                    free(h.ids);
                    goto nomem;
                }
            }
            free(h.ids);
        }
        /* The earliest records across indexes, at most cap of them. */
        qsort(src + f.first, nsrc - f.first, sizeof *src, cmp_source);
        if (nsrc - f.first > cap) nsrc = f.first + cap;
        f.m.nsources = nsrc - f.first;
        ACC_INVARIANT(f.m.nsources > 0, "a span with no record");
        uint64_t w = (uint64_t)L * SPAN_SHARE_SCALE, each = w / f.m.nsources, rem = w % f.m.nsources;
        for (size_t j = 0; j < f.m.nsources; j++) {
            share sh = {.source = src[f.first + j], .weight = each + (j < rem)};
            if (push((void **)&shares, &nshares, &shares_cap, &sh, sizeof sh)) goto nomem;
        }
        if (__builtin_add_overflow(out->total_weight, w, &out->total_weight)) {
            rc = acc_fail(err, ACC_ELIMIT, "attribution: span weights overflow");
            goto fail;
        }
        out->span_tokens += L;
        if (i + L > reach) out->covered_tokens += i + L - (i > reach ? i : reach);
        reach = i + L > reach ? i + L : reach;
        if (push((void **)&spans, &nspans, &spans_cap, &f, sizeof f)) goto nomem;
    }

    /* Spans point into the final source block; credits are the shares summed per record. */
    if (nspans) {
        out->spans = malloc(nspans * sizeof *out->spans);
        if (!out->spans) goto nomem;
        for (size_t s = 0; s < nspans; s++) {
            out->spans[s] = spans[s].m;
            out->spans[s].sources = src + spans[s].first;
        }
        out->nspans = nspans;
        out->source_block = src;
        src = NULL;
        qsort(shares, nshares, sizeof *shares, cmp_share);
        out->credits = malloc(nshares * sizeof *out->credits);
        if (!out->credits) goto nomem;
        uint64_t sum = 0;
        for (size_t j = 0; j < nshares; j++) {
            span_credit *c = out->ncredits ? &out->credits[out->ncredits - 1] : NULL;
            if (!c || cmp_source(&c->source, &shares[j].source) != 0) {
                c = &out->credits[out->ncredits++];
                *c = (span_credit){.source = shares[j].source};
            }
            c->weight += shares[j].weight; /* <= total_weight: no overflow */
            c->spans++;
            sum += shares[j].weight;
        }
        ACC_INVARIANT(sum == out->total_weight, "credits sum to %llu, spans weigh %llu", (unsigned long long)sum,
                      (unsigned long long)out->total_weight);
    }
    free(mem);
    free(src);
    free(shares);
    free(spans);
    span_tokens_free(&toks);
    return ACC_OK;
nomem:
    rc = acc_fail(err, ACC_ENOMEM, "attribution: out of memory");
fail:
    free(mem);
    free(src);
    free(shares);
    free(spans);
    span_tokens_free(&toks);
    span_attribution_free(out);
    return rc;
}

/* text[0..n) as a JSON string, invalid UTF-8 bytes (separators to the tokenizer, so a span can
 * hold them) as U+FFFD. */
static json_t *json_text(const char *text, size_t n) {
    json_t *s = json_stringn(text, n);
    if (s) return s;
    acc_buf b = ACC_BUF_INIT;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = (unsigned char)text[i] < 0x80 ? 1 : span_utf8_decode((const unsigned char *)text + i, n - i, &cp);
        if (l) acc_buf_append(&b, text + i, l);
        else acc_buf_puts(&b, "\xEF\xBF\xBD");
        i += l ? l : 1;
    }
    s = acc_buf_failed(&b) ? NULL : json_stringn(b.data ? b.data : "", b.len);
    acc_buf_free(&b);
    return s;
}

void span_attribution_json(const span_attribution *a, const char *text, uint32_t min_tokens, acc_buf *out) {
    json_t *spans = json_array(), *credits = json_array();
    for (size_t s = 0; s < a->nspans; s++) {
        const span_match *m = &a->spans[s];
        json_t *sources = json_array();
        for (size_t j = 0; j < m->nsources; j++)
            json_array_append_new(sources, json_pack("{s:I,s:I}", "index", (json_int_t)m->sources[j].index, "record",
                                                     (json_int_t)m->sources[j].record_id));
        json_array_append_new(spans, json_pack("{s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:o}", "token", (json_int_t)m->token, "ntokens",
                                               (json_int_t)m->ntokens, "start", (json_int_t)m->byte_start, "end",
                                               (json_int_t)m->byte_end, "text",
                                               json_text(text + m->byte_start, m->byte_end - m->byte_start), "occurrences",
                                               (json_int_t)m->occurrences, "records", (json_int_t)m->records, "sources",
                                               sources));
    }
    for (size_t c = 0; c < a->ncredits; c++)
        json_array_append_new(credits, json_pack("{s:I,s:I,s:I,s:I}", "index", (json_int_t)a->credits[c].source.index,
                                                 "record", (json_int_t)a->credits[c].source.record_id, "weight",
                                                 (json_int_t)a->credits[c].weight, "spans", (json_int_t)a->credits[c].spans));
    json_t *root = json_pack("{s:I,s:I,s:I,s:I,s:I,s:o,s:o}", "tokens", (json_int_t)a->ntokens, "min_tokens",
                             (json_int_t)min_tokens, "span_tokens", (json_int_t)a->span_tokens, "covered_tokens",
                             (json_int_t)a->covered_tokens, "total_weight",
                             (json_int_t)a->total_weight, "spans", spans, "credits", credits);
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (s) acc_buf_puts(out, s);
    else out->failed = true;
    free(s);
    json_decref(root);
}
