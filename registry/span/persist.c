/*
 * persist.c: a span index as bytes, and back.
 *
 * Building the index of a 10M-token datanet takes seconds (tokenizing, then SA-IS); reading it back
 * takes a fraction of one (bench_span measures both), which matters to every short-lived `accrue`
 * process that attributes against a big datanet. The bytes are the vocabulary (words in id order)
 * and each corpus's arrays as they are in memory (tokens, suffix array, record starts and ids);
 * the first-token tables are rebuilt, being cheap.
 *
 * The bytes come from our own database, but a file can be damaged or edited, so loading checks
 * everything a query relies on to stay inside its arrays (every token and suffix in range, records
 * increasing and closed by separators, the sentinel last) plus a checksum of the whole; a
 * suffix array in the wrong order would give wrong answers, never a crash, and the checksum
 * catches accidental damage. Anything else is ACC_ECORRUPT and the caller rebuilds.
 *
 * Layout (little-endian): "ACCSPAN" 0x01, u32 format (1), u32 words, then each word as u32 length
 * and bytes; u32 corpora, then each as u32 len, u32 suffixes, u32 records, then tok[len],
 * sa[suffixes], rec_first[records] as u32 and rec_id[records] as i64; then u64 FNV-1a of all before.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/span/span_internal.h"

static const char MAGIC[8] = {'A', 'C', 'C', 'S', 'P', 'A', 'N', 1};
#define FORMAT 1u

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

static void put_u32(acc_buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    acc_buf_append(b, x, 4);
}

static void put_u64(acc_buf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

/* n little-endian u32 values (the machine's order when it is little-endian, as ours are). */
static void put_u32s(acc_buf *b, const uint32_t *v, size_t n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    acc_buf_append(b, v, n * sizeof *v);
#else
    for (size_t i = 0; i < n; i++) put_u32(b, v[i]);
#endif
}

int span_index_save(const span_index *x, acc_buf *out, acc_err *err) {
    if (span_index_pending(x)) return acc_fail(err, ACC_EMISUSE, "span index: commit before saving");
    size_t start = out->len;
    acc_buf_append(out, MAGIC, sizeof MAGIC);
    put_u32(out, FORMAT);
    const span_vocab *v = span_index_vocab_const(x);
    uint32_t limit = span_vocab_limit(v);
    put_u32(out, limit - SPAN_FIRST_WORD);
    for (uint32_t id = SPAN_FIRST_WORD; id < limit; id++) {
        size_t len;
        const char *w = span_vocab_word(v, id, &len);
        put_u32(out, (uint32_t)len);
        acc_buf_append(out, w, len);
    }
    size_t nc = span_index_corpora(x);
    put_u32(out, (uint32_t)nc);
    for (size_t i = 0; i < nc; i++) {
        const span_corpus *c = span_index_corpus(x, i);
        uint32_t len = span_corpus_length(c), nsuf = span_corpus_suffixes(c), nrec = (uint32_t)span_corpus_records(c);
        put_u32(out, len);
        put_u32(out, nsuf);
        put_u32(out, nrec);
        put_u32s(out, span_corpus_tokens_of(c), len);
        put_u32s(out, span_corpus_sa_of(c), nsuf);
        for (uint32_t r = 0; r < nrec; r++) {
            uint32_t first, n;
            span_corpus_record_span(c, r, &first, &n);
            put_u32(out, first);
        }
        for (uint32_t r = 0; r < nrec; r++) put_u64(out, (uint64_t)span_corpus_record_id(c, r));
    }
    if (acc_buf_failed(out)) return acc_fail(err, ACC_ENOMEM, "span index: out of memory saving");
    put_u64(out, fnv1a((const uint8_t *)out->data + start, out->len - start));
    return acc_buf_failed(out) ? acc_fail(err, ACC_ENOMEM, "span index: out of memory saving") : ACC_OK;
}

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static int get_u32(reader *r, uint32_t *v) {
    if (r->left < 4) return -1;
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    r->left -= 4;
    return 0;
}

static int get_u32s(reader *r, uint32_t *v, size_t n) {
    if (r->left / 4 < n) return -1;
    for (size_t i = 0; i < n; i++) get_u32(r, &v[i]);
    return 0;
}

#define CORRUPT(...) (rc = acc_fail(err, ACC_ECORRUPT, "span index: " __VA_ARGS__))

int span_index_load(const void *data, size_t len, span_index **out, acc_err *err) {
    *out = NULL;
    int rc = ACC_OK;
    if (len < sizeof MAGIC + 12 || memcmp(data, MAGIC, sizeof MAGIC) != 0) return CORRUPT("not a saved span index");
    uint64_t sum = 0;
    const uint8_t *end = (const uint8_t *)data + len - 8;
    for (int i = 7; i >= 0; i--) sum = sum << 8 | end[i];
    if (fnv1a(data, len - 8) != sum) return CORRUPT("checksum mismatch");
    reader r = {(const uint8_t *)data + sizeof MAGIC, len - sizeof MAGIC - 8};
    uint32_t format, nwords, ncorp;
    if (get_u32(&r, &format) || format != FORMAT) return CORRUPT("format %u, this accrue reads %u", format, FORMAT);
    span_index *x = span_index_new();
    uint32_t *tok = NULL, *sa = NULL, *first = NULL;
    int64_t *ids = NULL;
    span_record_tokens *recs = NULL;
    if (!x) return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    span_vocab *v = span_index_vocab(x);
    if (get_u32(&r, &nwords)) goto truncated;
    for (uint32_t i = 0; i < nwords; i++) {
        uint32_t wl;
        if (get_u32(&r, &wl) || r.left < wl) goto truncated;
        if (span_vocab_intern(v, (const char *)r.p, wl) != SPAN_FIRST_WORD + i) {
            CORRUPT("word %u repeats an earlier one", i);
            goto fail;
        }
        r.p += wl;
        r.left -= wl;
    }
    uint32_t limit = span_vocab_limit(v);
    if (get_u32(&r, &ncorp)) goto truncated;
    for (uint32_t k = 0; k < ncorp; k++) {
        uint32_t clen, nsuf, nrec;
        if (get_u32(&r, &clen) || get_u32(&r, &nsuf) || get_u32(&r, &nrec)) goto truncated;
        if (clen < 1 || clen > SPAN_CORPUS_MAX || nrec >= clen || nsuf != clen - nrec - 1) {
            CORRUPT("corpus %u: %u tokens, %u suffixes, %u records do not add up", k, clen, nsuf, nrec);
            goto fail;
        }
        if (r.left / 4 < (uint64_t)clen + nsuf + nrec * 3ull) goto truncated;
        tok = malloc((size_t)clen * sizeof *tok);
        sa = malloc(((size_t)nsuf + 1) * sizeof *sa);
        first = malloc(((size_t)nrec + 1) * sizeof *first);
        ids = malloc(((size_t)nrec + 1) * sizeof *ids);
        recs = malloc(((size_t)nrec + 1) * sizeof *recs);
        if (!tok || !sa || !first || !ids || !recs) {
            rc = acc_fail(err, ACC_ENOMEM, "span index: out of memory loading");
            goto fail;
        }
        get_u32s(&r, tok, clen);
        get_u32s(&r, sa, nsuf);
        get_u32s(&r, first, nrec);
        for (uint32_t i = 0; i < nrec; i++) {
            uint32_t lo, hi;
            get_u32(&r, &lo);
            get_u32(&r, &hi);
            ids[i] = (int64_t)((uint64_t)hi << 32 | lo);
        }
        /* Records: increasing starts, each closed by one separator; words in range; the sentinel. */
        if (tok[clen - 1] != SPAN_SENTINEL) {
            CORRUPT("corpus %u: no sentinel", k);
            goto fail;
        }
        uint32_t seps = 0;
        for (uint32_t i = 0; i + 1 < clen; i++) {
            if (tok[i] == SPAN_SEP) seps++;
            else if (tok[i] < SPAN_FIRST_WORD || tok[i] >= limit) {
                CORRUPT("corpus %u: token %u at %u not a word", k, tok[i], i);
                goto fail;
            }
        }
        if (seps != nrec || (nrec && tok[clen - 2] != SPAN_SEP)) {
            CORRUPT("corpus %u: %u separators for %u records", k, seps, nrec);
            goto fail;
        }
        for (uint32_t i = 0; i < nrec; i++) {
            uint32_t next = i + 1 < nrec ? first[i + 1] : clen - 1;
            if ((i == 0 && first[0] != 0) || first[i] >= next || next > clen - 1 || tok[next - 1] != SPAN_SEP) {
                CORRUPT("corpus %u: record %u misplaced", k, i);
                goto fail;
            }
            for (uint32_t p = first[i]; p + 1 < next; p++)
                if (tok[p] == SPAN_SEP) {
                    CORRUPT("corpus %u: record %u holds a separator", k, i);
                    goto fail;
                }
            recs[i] = (span_record_tokens){.record_id = ids[i], .ids = tok + first[i], .n = next - 1 - first[i]};
        }
        for (uint32_t i = 0; i < nsuf; i++)
            if (sa[i] >= clen || tok[sa[i]] < SPAN_FIRST_WORD) {
                CORRUPT("corpus %u: suffix %u out of place", k, i);
                goto fail;
            }
        span_corpus *c;
        if ((rc = span_corpus_adopt(recs, nrec, limit, tok, clen, sa, nsuf, &c, err))) goto fail;
        tok = sa = NULL; /* adopted */
        if ((rc = span_index_push_corpus(x, c, err))) {
            span_corpus_free(c);
            goto fail;
        }
        free(first), free(ids), free(recs);
        first = NULL, ids = NULL, recs = NULL;
    }
    if (r.left) {
        CORRUPT("%zu stray bytes", r.left);
        goto fail;
    }
    *out = x;
    return ACC_OK;
truncated:
    CORRUPT("truncated");
fail:
    free(tok), free(sa), free(first), free(ids), free(recs);
    span_index_free(x);
    return rc;
}
