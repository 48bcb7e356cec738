/*
 * index.c: a datanet's span index, current with its accepted records without rebuilding it.
 *
 * A suffix array cannot take a new record in place. Rebuilding the whole array on every accepted
 * record costs O(datanet) per record (seconds at 10M tokens); so the index is a few corpora, oldest
 * and biggest first (a log-structured merge, Bentley and Saxe's "decomposable searching"): a
 * commit builds one small corpus of the newly accepted records, then merges the two newest while
 * the older is less than twice the newer. Sizes then at least double going back, so a 10M-token
 * index has at most ~log2(10M / record) corpora, and a token is rebuilt once each time its corpus
 * at least doubles (O(log n) times in all). Queries ask every corpus and combine: the longest
 * match is the longest of any, the records are the union. Merging rebuilds the suffix array of the
 * two corpora's records with SA-IS, which is linear and faster than merging suffix by suffix.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/span/span_internal.h"
#include "runtime/base/sort.h"

typedef struct pending_record {
    int64_t id;
    size_t off; /* into pend */
    uint32_t n;
} pending_record;

struct span_index {
    span_vocab *vocab;
    span_corpus **corp; /* oldest first */
    size_t ncorp, corp_cap;
    uint32_t *pend; /* queued records' ids, back to back */
    size_t pend_len, pend_cap;
    pending_record *prec;
    size_t nprec, prec_cap;
    span_tokens scratch; /* the last tokenized record (add reuses its memory) */
    size_t ntokens, nrecords;
};

span_index *span_index_new(void) {
    span_index *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->vocab = span_vocab_new();
    if (!x->vocab) {
        free(x);
        return NULL;
    }
    return x;
}

void span_index_free(span_index *x) {
    if (!x) return;
    for (size_t i = 0; i < x->ncorp; i++) span_corpus_free(x->corp[i]);
    free(x->corp);
    free(x->pend);
    free(x->prec);
    span_tokens_free(&x->scratch);
    span_vocab_free(x->vocab);
    free(x);
}

span_vocab *span_index_vocab(span_index *x) { return x->vocab; }
const span_vocab *span_index_vocab_const(const span_index *x) { return x->vocab; }
size_t span_index_records(const span_index *x) { return x->nrecords; }
size_t span_index_tokens(const span_index *x) { return x->ntokens; }
size_t span_index_pending(const span_index *x) { return x->nprec; }
size_t span_index_corpora(const span_index *x) { return x->ncorp; }
const span_corpus *span_index_corpus(const span_index *x, size_t i) { return i < x->ncorp ? x->corp[i] : NULL; }

/* Room for one more queued record of n ids, which go to x->pend + x->pend_len. */
static int queue_record(span_index *x, int64_t id, uint32_t n, acc_err *err) {
    if (span_grow((void **)&x->pend, &x->pend_cap, x->pend_len + n + 1, sizeof *x->pend) ||
        span_grow((void **)&x->prec, &x->prec_cap, x->nprec + 1, sizeof *x->prec))
        return acc_fail(err, ACC_ENOMEM, "span index: out of memory queueing record %lld", (long long)id);
    return ACC_OK;
}

static void queued(span_index *x, int64_t id, uint32_t n) {
    x->prec[x->nprec++] = (pending_record){.id = id, .off = x->pend_len, .n = n};
    x->pend_len += n;
}

int span_index_add(span_index *x, int64_t record_id, const char *text, size_t len, acc_err *err) {
    int rc = span_tokenize(text, len, &x->scratch, err);
    if (rc) return acc_err_prefix(err, "record %lld", (long long)record_id);
    if (x->scratch.n > SPAN_CORPUS_MAX) return acc_fail(err, ACC_ELIMIT, "record %lld: too many words", (long long)record_id);
    uint32_t n = (uint32_t)x->scratch.n;
    if ((rc = queue_record(x, record_id, n, err))) return rc;
    if ((rc = span_vocab_intern_ids(x->vocab, &x->scratch, x->pend + x->pend_len, err))) return acc_err_prefix(err, "record %lld", (long long)record_id);
    queued(x, record_id, n);
    return ACC_OK;
}

int span_index_add_ids(span_index *x, int64_t record_id, const uint32_t *ids, uint32_t n, acc_err *err) {
    uint32_t limit = span_vocab_limit(x->vocab);
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] < SPAN_FIRST_WORD || ids[i] >= limit)
            return acc_fail(err, ACC_ECORRUPT, "record %lld: word id %u not in the vocabulary", (long long)record_id, ids[i]);
    int rc = queue_record(x, record_id, n, err);
    if (rc) return rc;
    if (n) memcpy(x->pend + x->pend_len, ids, (size_t)n * sizeof *ids);
    queued(x, record_id, n);
    return ACC_OK;
}

/* A corpus of the records of corpora a..b (inclusive), in order. */
static int rebuild(span_index *x, size_t a, size_t b, span_corpus **out, acc_err *err) {
    size_t n = 0;
    for (size_t i = a; i <= b; i++) n += span_corpus_records(x->corp[i]);
    span_record_tokens *recs = malloc((n ? n : 1) * sizeof *recs);
    if (!recs) return acc_fail(err, ACC_ENOMEM, "span index: out of memory merging");
    size_t k = 0;
    for (size_t i = a; i <= b; i++) {
        const span_corpus *c = x->corp[i];
        const uint32_t *tok = span_corpus_tokens_of(c);
        for (uint32_t r = 0; r < span_corpus_records(c); r++) {
            uint32_t first, len;
            span_corpus_record_span(c, r, &first, &len);
            recs[k++] = (span_record_tokens){.record_id = span_corpus_record_id(c, r), .ids = tok + first, .n = len};
        }
    }
    int rc = span_corpus_build(recs, n, span_vocab_limit(x->vocab), out, err);
    free(recs);
    return rc;
}

/* Replaces corpora a..b by one. On failure the index is unchanged. */
static int merge(span_index *x, size_t a, size_t b, acc_err *err) {
    span_corpus *m;
    int rc = rebuild(x, a, b, &m, err);
    if (rc) return rc;
    for (size_t i = a; i <= b; i++) span_corpus_free(x->corp[i]);
    x->corp[a] = m;
    memmove(x->corp + a + 1, x->corp + b + 1, (x->ncorp - b - 1) * sizeof *x->corp);
    x->ncorp -= b - a;
    return ACC_OK;
}

int span_index_commit(span_index *x, acc_err *err) {
    if (!x->nprec) return ACC_OK;
    if (span_grow((void **)&x->corp, &x->corp_cap, x->ncorp + 1, sizeof *x->corp))
        return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    span_record_tokens *recs = malloc(x->nprec * sizeof *recs);
    if (!recs) return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    for (size_t i = 0; i < x->nprec; i++)
        recs[i] = (span_record_tokens){.record_id = x->prec[i].id, .ids = x->pend + x->prec[i].off, .n = x->prec[i].n};
    span_corpus *c;
    int rc = span_corpus_build(recs, x->nprec, span_vocab_limit(x->vocab), &c, err);
    free(recs);
    if (rc) return rc;
    x->corp[x->ncorp++] = c;
    x->nrecords += x->nprec;
    x->ntokens += span_corpus_tokens(c);
    x->nprec = 0;
    x->pend_len = 0;
    /* Merge while the older of the two newest is less than twice the newer. A failed merge (out
     * of memory) leaves more corpora than planned, which answers the same; the next commit
     * tries again, so the commit itself has succeeded: the records are searchable. */
    while (x->ncorp >= 2 &&
           span_corpus_length(x->corp[x->ncorp - 2]) < 2 * (uint64_t)span_corpus_length(x->corp[x->ncorp - 1]) &&
           (uint64_t)span_corpus_length(x->corp[x->ncorp - 2]) + span_corpus_length(x->corp[x->ncorp - 1]) <= SPAN_CORPUS_MAX)
        if (merge(x, x->ncorp - 2, x->ncorp - 1, NULL)) break;
    return ACC_OK;
}

int span_index_push_corpus(span_index *x, span_corpus *c, acc_err *err) {
    if (span_grow((void **)&x->corp, &x->corp_cap, x->ncorp + 1, sizeof *x->corp))
        return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    x->corp[x->ncorp++] = c;
    x->nrecords += span_corpus_records(c);
    x->ntokens += span_corpus_tokens(c);
    return ACC_OK;
}

int span_index_compact(span_index *x, acc_err *err) {
    int rc = span_index_commit(x, err);
    if (rc) return rc;
    if (x->ncorp < 2) return ACC_OK;
    return merge(x, 0, x->ncorp - 1, err);
}

void span_index_longest(const span_index *x, const uint32_t *q, size_t m, uint32_t *ms) {
    memset(ms, 0, m * sizeof *ms);
    for (size_t i = 0; i < x->ncorp; i++) span_corpus_longest_max(x->corp[i], q, m, ms);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int span_index_find(const span_index *x, const uint32_t *q, size_t m, size_t cap, span_hits *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    if (m == 0) return ACC_OK;
    uint64_t total = 0;
    /* On the stack when small (an attribution looks up every span it finds) */
    uint32_t range_stack[2 * 17];
    int64_t id_stack[32];
    uint32_t *lo = x->ncorp < 17 ? range_stack : malloc((x->ncorp + 1) * 2 * sizeof *lo), *hi = lo ? lo + x->ncorp + 1 : NULL;
    if (!lo) return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    for (size_t i = 0; i < x->ncorp; i++) {
        span_corpus_find(x->corp[i], q, m, &lo[i], &hi[i]);
        total += hi[i] - lo[i];
    }
    out->occurrences = total;
    int64_t *ids = !total ? NULL : total <= 32 ? id_stack : malloc(total * sizeof *ids);
    if (!ids) {
        if (lo != range_stack) free(lo);
        return total ? acc_fail(err, ACC_ENOMEM, "span index: out of memory listing %llu occurrences", (unsigned long long)total) : ACC_OK;
    }
    size_t k = 0;
    for (size_t i = 0; i < x->ncorp; i++) {
        const span_corpus *c = x->corp[i];
        const uint32_t *sa = span_corpus_sa_of(c);
        for (uint32_t r = lo[i]; r < hi[i]; r++) ids[k++] = span_corpus_record_id(c, span_corpus_record_at(c, sa[r], NULL));
    }
    if (lo != range_stack) free(lo);
    acc_sort(ids, k, sizeof *ids, cmp_i64); /* a span is mostly found in one record or a handful */
    size_t d = 0;
    for (size_t i = 0; i < k; i++)
        if (i == 0 || ids[i] != ids[i - 1]) ids[d++] = ids[i];
    out->records = d;
    out->nids = d < cap ? d : cap;
    if (out->nids == 0) {
        if (ids != id_stack) free(ids);
        return ACC_OK;
    }
    if (ids == id_stack) {
        if (!(out->ids = malloc(out->nids * sizeof *ids))) {
            out->nids = 0;
            return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
        }
        memcpy(out->ids, ids, out->nids * sizeof *ids);
        return ACC_OK;
    }
    int64_t *shrunk = realloc(ids, out->nids * sizeof *ids);
    out->ids = shrunk ? shrunk : ids;
    return ACC_OK;
}
