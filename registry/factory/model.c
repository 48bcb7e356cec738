/*
 * model.c: a built-in model's artifact, and the model it loads into.
 *
 * The artifact is the training set itself (records' ids and texts, in order) with the n-gram order:
 * a model is a deterministic function of it, so storing what the model was trained on is storing
 * the model, exactly, at the size of its text. Loading rebuilds what decoding reads:
 *   - the records' normalised words as one span corpus (suffix array): n-gram counts of any order
 *     are the sizes of suffix-array ranges;
 *   - each word's byte range in its record's text, so output is written with the record's own
 *     surface forms, spacing and punctuation;
 *   - the words by frequency (the back-off's last level);
 *   - the records' sentences with an inverted index (word -> sentences and term counts) for BM25.
 *
 * Layout (little-endian): "ACCRUEM" 0x01, u32 format (1), u32 order, i64 datanet id, u64 seq,
 * u64 record count, then per record i64 id, u32 length, the text.
 */
#include <stdlib.h>
#include <string.h>

#include "meters/eth/hex.h"
#include "meters/eth/keccak.h"
#include "registry/factory/factory_internal.h"

static const char MAGIC[8] = {'A', 'C', 'C', 'R', 'U', 'E', 'M', 1};
#define FORMAT 1u

static void put(acc_buf *b, const void *p, size_t n) { acc_buf_append(b, p, n); }
static void put_u32(acc_buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void put_u64(acc_buf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

int factory_artifact_encode(const factory_record *records, size_t n, uint32_t order, int64_t datanet_id,
                            uint64_t seq, acc_buf *out, acc_err *err) {
    if (order < 1 || order > FACTORY_MAX_ORDER) return acc_fail(err, ACC_EINVAL, "--order: %u is not 1..%d", order, FACTORY_MAX_ORDER);
    put(out, MAGIC, sizeof MAGIC);
    put_u32(out, FORMAT);
    put_u32(out, order);
    put_u64(out, (uint64_t)datanet_id);
    put_u64(out, seq);
    put_u64(out, n);
    for (size_t i = 0; i < n; i++) {
        if (records[i].len > UINT32_MAX) return acc_fail(err, ACC_ELIMIT, "record %lld: too long", (long long)records[i].id);
        put_u64(out, (uint64_t)records[i].id);
        put_u32(out, (uint32_t)records[i].len);
        put(out, records[i].text, records[i].len);
    }
    return acc_buf_failed(out) ? acc_fail(err, ACC_ENOMEM, "model artifact: out of memory") : ACC_OK;
}

void factory_artifact_hash(const void *artifact, size_t len, char hex[67]) {
    uint8_t d[32];
    keccak256(artifact, len, d);
    hex_encode0x(d, sizeof d, hex);
}

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static int get(reader *r, void *out, size_t n) {
    if (r->left < n) return -1;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}
static int get_u32(reader *r, uint32_t *v) {
    uint8_t x[4];
    if (get(r, x, 4)) return -1;
    *v = (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
    return 0;
}
static int get_u64(reader *r, uint64_t *v) {
    uint32_t lo, hi;
    if (get_u32(r, &lo) || get_u32(r, &hi)) return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

void factory_model_free(factory_model *m) {
    if (!m) return;
    free(m->rec_id);
    free(m->rec_off);
    free(m->rec_first);
    free(m->text);
    free(m->tstart);
    free(m->tend);
    free(m->rank);
    free(m->lcp);
    free(m->unigram);
    free(m->sent);
    free(m->post_off);
    free(m->post);
    span_corpus_free(m->corpus);
    span_vocab_free(m->vocab);
    free(m);
}

uint32_t factory_model_order(const factory_model *m) { return m->order; }
size_t factory_model_records(const factory_model *m) { return m->nrec; }
size_t factory_model_tokens(const factory_model *m) { return span_corpus_tokens(m->corpus); }
size_t factory_model_sentences(const factory_model *m) { return m->nsent; }
int64_t factory_model_datanet(const factory_model *m) { return m->datanet; }
uint64_t factory_model_seq(const factory_model *m) { return m->seq; }

/* Reads the header and the records (texts copied into m->text). */
static int parse(factory_model *m, const void *artifact, size_t len, acc_err *err) {
    reader r = {artifact, len};
    char magic[8];
    uint32_t format;
    uint64_t datanet, n;
    if (get(&r, magic, 8) || memcmp(magic, MAGIC, 8) != 0) return acc_fail(err, ACC_ECORRUPT, "model artifact: not an accrue model");
    if (get_u32(&r, &format) || format != FORMAT)
        return acc_fail(err, ACC_ECORRUPT, "model artifact: format %u, this accrue reads %u", format, FORMAT);
    if (get_u32(&r, &m->order) || get_u64(&r, &datanet) || get_u64(&r, &m->seq) || get_u64(&r, &n))
        return acc_fail(err, ACC_ECORRUPT, "model artifact: truncated header");
    if (m->order < 1 || m->order > FACTORY_MAX_ORDER) return acc_fail(err, ACC_ECORRUPT, "model artifact: order %u", m->order);
    if (n > r.left / 12) return acc_fail(err, ACC_ECORRUPT, "model artifact: %llu records in %zu bytes", (unsigned long long)n, r.left);
    m->datanet = (int64_t)datanet;
    m->nrec = (size_t)n;
    m->rec_id = malloc((m->nrec + 1) * sizeof *m->rec_id);
    m->rec_off = malloc((m->nrec + 1) * sizeof *m->rec_off);
    m->text = malloc(r.left + 1);
    if (!m->rec_id || !m->rec_off || !m->text) return acc_fail(err, ACC_ENOMEM, "model artifact: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < m->nrec; i++) {
        uint64_t id;
        uint32_t l;
        if (get_u64(&r, &id) || get_u32(&r, &l) || get(&r, m->text + o, l))
            return acc_fail(err, ACC_ECORRUPT, "model artifact: record %zu truncated", i);
        m->rec_id[i] = (int64_t)id;
        m->rec_off[i] = o;
        o += l;
    }
    m->rec_off[m->nrec] = o;
    m->text[o] = 0;
    if (r.left) return acc_fail(err, ACC_ECORRUPT, "model artifact: %zu stray bytes at the end", r.left);
    return ACC_OK;
}

/* Is there a sentence end in text[a, b) (the gap between two words)? A terminator followed by
 * space, a newline, or a CJK full stop. */
static bool sentence_break(const char *text, size_t a, size_t b) {
    for (size_t i = a; i < b; i++) {
        char c = text[i];
        if (c == '\n') return true;
        if ((c == '.' || c == '!' || c == '?') && (i + 1 == b || text[i + 1] == ' ' || text[i + 1] == '\t' ||
                                                   text[i + 1] == '\n' || text[i + 1] == '"' || text[i + 1] == '\''))
            return true;
        if (i + 3 <= b && (memcmp(text + i, "\xe3\x80\x82", 3) == 0 || memcmp(text + i, "\xef\xbc\x81", 3) == 0 ||
                           memcmp(text + i, "\xef\xbc\x9f", 3) == 0))
            return true;
    }
    return false;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

size_t factory_trailing_end(const factory_model *m, uint32_t pos, uint32_t *hint) {
    uint32_t r = factory_record_of(m, pos, hint);
    const char *t = m->text + m->rec_off[r];
    size_t limit = span_corpus_token(m->corpus, pos + 1) == SPAN_SEP ? m->rec_off[r + 1] - m->rec_off[r] : m->tstart[pos + 1];
    size_t e = m->tend[pos];
    while (e < limit && !is_space(t[e])) e++;
    return e;
}

size_t factory_leading_start(const factory_model *m, uint32_t pos, uint32_t *hint) {
    uint32_t r = factory_record_of(m, pos, hint), first = m->rec_first[r];
    const char *t = m->text + m->rec_off[r];
    size_t limit = pos == first ? 0 : m->tend[pos - 1];
    size_t s = m->tstart[pos];
    while (s > limit && !is_space(t[s - 1])) s--;
    return s;
}

static int cmp_unigram(const void *a, const void *b, void *counts) {
    const uint32_t *c = counts;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (c[x] != c[y]) return c[x] > c[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* The tokens, the corpus and the per-position byte ranges. */
static int index_records(factory_model *m, acc_err *err) {
    span_tokens tk = SPAN_TOKENS_INIT;
    uint32_t *ids = NULL;
    span_record_tokens *recs = calloc(m->nrec + 1, sizeof *recs);
    size_t total = 0, cap = 0;
    int rc = ACC_OK;
    m->vocab = span_vocab_new();
    m->rec_first = malloc((m->nrec + 1) * sizeof *m->rec_first);
    if (!recs || !m->vocab || !m->rec_first) goto nomem;
    size_t *start = malloc((m->nrec + 1) * sizeof *start); /* each record's first id in ids */
    if (!start) goto nomem;
    for (size_t r = 0; r < m->nrec; r++) {
        if ((rc = span_tokenize(m->text + m->rec_off[r], m->rec_off[r + 1] - m->rec_off[r], &tk, err))) break;
        if (total + tk.n + 1 > cap) {
            size_t c = cap ? cap : 1024;
            while (c < total + tk.n + 1) c *= 2;
            uint32_t *q = realloc(ids, c * sizeof *q);
            if (!q) {
                free(start);
                goto nomem;
            }
            ids = q;
            cap = c;
        }
        if ((rc = span_vocab_intern_ids(m->vocab, &tk, ids + total, err))) break;
        start[r] = total;
        m->rec_first[r] = (uint32_t)(total + r);
        recs[r] = (span_record_tokens){.record_id = m->rec_id[r], .n = (uint32_t)tk.n};
        total += tk.n;
        if (total + m->nrec + 1 > (1u << 31) - 2) {
            rc = acc_fail(err, ACC_ELIMIT, "model: more than 2^31 words");
            break;
        }
    }
    if (rc) {
        free(start);
        goto out;
    }
    for (size_t r = 0; r < m->nrec; r++) recs[r].ids = ids ? ids + start[r] : NULL;
    free(start);
    if ((rc = span_corpus_build(recs, m->nrec, span_vocab_limit(m->vocab), &m->corpus, err))) goto out;

    /* Byte ranges per corpus position (tokenizing again: cheaper than keeping every record's tokens). */
    uint32_t len = span_corpus_length(m->corpus);
    m->tstart = malloc((size_t)len * sizeof *m->tstart);
    m->tend = malloc((size_t)len * sizeof *m->tend);
    if (!m->tstart || !m->tend) goto nomem;
    for (size_t r = 0; r < m->nrec; r++) {
        uint32_t first, n;
        span_corpus_record_span(m->corpus, (uint32_t)r, &first, &n);
        ACC_INVARIANT(first == m->rec_first[r], "record %zu at %u, expected %u", r, first, m->rec_first[r]);
        if ((rc = span_tokenize(m->text + m->rec_off[r], m->rec_off[r + 1] - m->rec_off[r], &tk, err))) goto out;
        for (uint32_t i = 0; i < n; i++) {
            m->tstart[first + i] = tk.v[i].start;
            m->tend[first + i] = tk.v[i].end;
        }
        m->tstart[first + n] = m->tend[first + n] = (uint32_t)(m->rec_off[r + 1] - m->rec_off[r]);
    }
    m->tstart[len - 1] = m->tend[len - 1] = 0;

    /* Each word's rank, so that a context that occurs where the last word was found is looked up
     * from there (generate.c). Separators' entries are unused. */
    m->rank = calloc(len, sizeof *m->rank);
    if (!m->rank) goto nomem;
    uint32_t nsuf = span_corpus_suffixes(m->corpus);
    m->lcp = calloc(nsuf + 1, 1);
    if (!m->lcp) goto nomem;
    for (uint32_t r = 0; r < nsuf; r++) {
        uint32_t p = span_corpus_suffix(m->corpus, r);
        m->rank[p] = r;
        if (r == 0) continue;
        uint32_t q = span_corpus_suffix(m->corpus, r - 1), d = 0; /* two suffixes differ by the sentinel at the latest */
        while (d < m->order && span_corpus_token(m->corpus, q + d) == span_corpus_token(m->corpus, p + d)) d++;
        m->lcp[r] = (uint8_t)d;
    }

    /* Words by frequency, for the back-off's unigram level. */
    uint32_t limit = span_vocab_limit(m->vocab);
    uint32_t *count = calloc(limit, sizeof *count);
    m->unigram = malloc((size_t)(limit - SPAN_FIRST_WORD + 1) * sizeof *m->unigram);
    if (!count || !m->unigram) {
        free(count);
        goto nomem;
    }
    for (size_t i = 0; i < total; i++) count[ids[i]]++;
    m->nuni = limit - SPAN_FIRST_WORD;
    for (uint32_t w = 0; w < m->nuni; w++) m->unigram[w] = w + SPAN_FIRST_WORD;
    qsort_r(m->unigram, m->nuni, sizeof *m->unigram, cmp_unigram, count);
    free(count);
    goto out;
nomem:
    rc = acc_fail(err, ACC_ENOMEM, "model: out of memory");
out:
    span_tokens_free(&tk);
    free(ids);
    free(recs);
    return rc;
}

/* Sentences and their inverted index. */
static int index_sentences(factory_model *m, acc_err *err) {
    size_t cap = 0;
    for (size_t r = 0; r < m->nrec; r++) {
        uint32_t first, n;
        span_corpus_record_span(m->corpus, (uint32_t)r, &first, &n);
        const char *t = m->text + m->rec_off[r];
        uint32_t s0 = 0;
        for (uint32_t i = 0; i < n; i++) {
            bool last = i + 1 == n;
            if (!last && !sentence_break(t, m->tend[first + i], m->tstart[first + i + 1])) continue;
            if (m->nsent == cap) {
                cap = cap ? cap * 2 : 256;
                factory_sentence *q = realloc(m->sent, cap * sizeof *q);
                if (!q) return acc_fail(err, ACC_ENOMEM, "model: out of memory");
                m->sent = q;
            }
            m->sent[m->nsent++] = (factory_sentence){
                .rec = (uint32_t)r,
                .first = first + s0,
                .n = i + 1 - s0,
                .bstart = (uint32_t)factory_leading_start(m, first + s0, NULL),
                .bend = (uint32_t)factory_trailing_end(m, first + i, NULL),
            };
            s0 = i + 1;
        }
    }
    /* Postings by counting sort on word id: sentence ids come out ascending within each word. */
    uint32_t limit = span_vocab_limit(m->vocab), nw = limit - SPAN_FIRST_WORD;
    m->post_off = calloc((size_t)nw + 1, sizeof *m->post_off);
    size_t ntok = span_corpus_tokens(m->corpus);
    m->post = malloc((ntok ? ntok : 1) * sizeof *m->post);
    if (!m->post_off || !m->post) return acc_fail(err, ACC_ENOMEM, "model: out of memory");
    uint64_t words = 0;
    for (size_t s = 0; s < m->nsent; s++)
        for (uint32_t i = 0; i < m->sent[s].n; i++) m->post_off[span_corpus_token(m->corpus, m->sent[s].first + i) - SPAN_FIRST_WORD + 1]++;
    for (uint32_t w = 1; w <= nw; w++) m->post_off[w] += m->post_off[w - 1];
    uint32_t *fill = malloc(((size_t)nw + 1) * sizeof *fill);
    if (!fill) return acc_fail(err, ACC_ENOMEM, "model: out of memory");
    memcpy(fill, m->post_off, ((size_t)nw + 1) * sizeof *fill);
    for (size_t s = 0; s < m->nsent; s++) {
        words += m->sent[s].n;
        for (uint32_t i = 0; i < m->sent[s].n; i++) {
            uint32_t w = span_corpus_token(m->corpus, m->sent[s].first + i) - SPAN_FIRST_WORD;
            /* The same word again in this sentence: count it on its posting. */
            if (fill[w] > m->post_off[w] && m->post[fill[w] - 1].sent == s) {
                m->post[fill[w] - 1].tf++;
            } else {
                m->post[fill[w]++] = (factory_posting){.sent = (uint32_t)s, .tf = 1};
            }
        }
    }
    /* Close the gaps left by repeated words: compact each word's list in place. */
    uint32_t o = 0;
    for (uint32_t w = 0; w < nw; w++) {
        uint32_t a = m->post_off[w], b = fill[w];
        m->post_off[w] = o;
        memmove(m->post + o, m->post + a, (size_t)(b - a) * sizeof *m->post);
        o += b - a;
    }
    m->post_off[nw] = o;
    free(fill);
    m->avg_len_milli = m->nsent ? words * 1000 / m->nsent : 1000;
    return ACC_OK;
}

int factory_model_load(const void *artifact, size_t len, factory_model **out, acc_err *err) {
    *out = NULL;
    factory_model *m = calloc(1, sizeof *m);
    if (!m) return acc_fail(err, ACC_ENOMEM, "model: out of memory");
    int rc = parse(m, artifact, len, err);
    if (!rc) rc = index_records(m, err);
    if (!rc) rc = index_sentences(m, err);
    if (rc) {
        factory_model_free(m);
        return rc;
    }
    *out = m;
    return ACC_OK;
}

void factory_output_free(factory_output *o) {
    free(o->text);
    memset(o, 0, sizeof *o);
}
