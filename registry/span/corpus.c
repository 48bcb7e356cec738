/*
 * corpus.c: one immutable suffix array over a list of records, and the two questions asked of it:
 * where does this run of words occur (span_corpus_find), and how long a run starting at each
 * position of this text occurs somewhere (span_corpus_longest, the matching statistics).
 *
 * The records' word ids are laid end to end, each record closed by SPAN_SEP, the whole closed by
 * the sentinel. A query never holds SPAN_SEP, so no match runs from one record into the next. The
 * suffix array keeps only the suffixes that start at a word (separators start no match).
 *
 * Both questions are binary searches in the suffix array. Query time is dominated by cache misses
 * (each step reads a suffix-array entry and the token it points at, both random in a 10M-token
 * corpus), so: a first-token table (the range of suffixes starting with each word) replaces the
 * first ~log2(n / occurrences of that word) steps and answers "this word is nowhere" with one
 * read; and each step starts comparing at the common prefix its two boundaries already share with
 * the query (Manber and Myers), so a long match is not re-read at every step. The longest match
 * of a query with any suffix is with one of the two suffixes around its insertion point.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/span/span_internal.h"

struct span_corpus {
    uint32_t *tok; /* len tokens: records, each + SPAN_SEP, then SPAN_SENTINEL */
    uint32_t len;
    uint32_t *sa; /* nsuf word suffixes, sorted */
    uint32_t nsuf;
    uint32_t *rec_first; /* per record: its first position */
    int64_t *rec_id;
    uint32_t nrec;
    /* First-token table, or NULL when the corpus is small beside the alphabet: the suffixes that
     * start with word w are ranks [first[w - SPAN_FIRST_WORD], first[w - SPAN_FIRST_WORD + 1]),
     * for SPAN_FIRST_WORD <= w < first_limit. */
    uint32_t *first;
    uint32_t first_limit;
};

void span_corpus_free(span_corpus *c) {
    if (!c) return;
    free(c->tok);
    free(c->sa);
    free(c->rec_first);
    free(c->rec_id);
    free(c->first);
    free(c);
}

/* The first-token table, when it pays for itself: once the corpus is not tiny beside the alphabet. */
static int first_token_table(span_corpus *c, uint32_t alphabet, acc_err *err) {
    if (c->nsuf < 4096 || (uint64_t)c->nsuf * 2 < alphabet - SPAN_FIRST_WORD) return ACC_OK;
    c->first_limit = alphabet;
    c->first = calloc((size_t)(alphabet - SPAN_FIRST_WORD) + 1, sizeof *c->first);
    if (!c->first) return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    for (uint32_t r = 0; r < c->nsuf; r++) c->first[c->tok[c->sa[r]] - SPAN_FIRST_WORD + 1]++;
    for (uint32_t w = 1; w <= alphabet - SPAN_FIRST_WORD; w++) c->first[w] += c->first[w - 1];
    ACC_INVARIANT(c->first[alphabet - SPAN_FIRST_WORD] == c->nsuf, "first-token table sums to %u of %u",
                  c->first[alphabet - SPAN_FIRST_WORD], c->nsuf);
    return ACC_OK;
}

int span_corpus_build(const span_record_tokens *records, size_t nrecords, uint32_t alphabet, span_corpus **out,
                      acc_err *err) {
    *out = NULL;
    if (alphabet < SPAN_FIRST_WORD) alphabet = SPAN_FIRST_WORD;
    uint64_t total = 1;
    for (size_t r = 0; r < nrecords; r++) total += (uint64_t)records[r].n + 1;
    if (total > SPAN_CORPUS_MAX || nrecords > SPAN_CORPUS_MAX)
        return acc_fail(err, ACC_ELIMIT, "span index: %llu tokens in one corpus, at most %u",
                        (unsigned long long)total, SPAN_CORPUS_MAX);
    span_corpus *c = calloc(1, sizeof *c);
    if (!c) return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    c->len = (uint32_t)total;
    c->nrec = (uint32_t)nrecords;
    c->tok = malloc((size_t)c->len * sizeof *c->tok);
    c->sa = malloc((size_t)c->len * sizeof *c->sa);
    c->rec_first = malloc((nrecords ? nrecords : 1) * sizeof *c->rec_first);
    c->rec_id = malloc((nrecords ? nrecords : 1) * sizeof *c->rec_id);
    if (!c->tok || !c->sa || !c->rec_first || !c->rec_id) goto nomem;

    uint32_t pos = 0;
    for (size_t r = 0; r < nrecords; r++) {
        c->rec_first[r] = pos;
        c->rec_id[r] = records[r].record_id;
        for (uint32_t i = 0; i < records[r].n; i++) {
            uint32_t w = records[r].ids[i];
            if (w < SPAN_FIRST_WORD || w >= alphabet) {
                span_corpus_free(c);
                return acc_fail(err, ACC_EINVAL, "span index: record %lld: word id %u outside 2..%u",
                                (long long)records[r].record_id, w, alphabet - 1);
            }
            c->tok[pos++] = w;
        }
        c->tok[pos++] = SPAN_SEP;
    }
    c->tok[pos++] = SPAN_SENTINEL;
    ACC_INVARIANT(pos == c->len, "laid out %u of %u tokens", pos, c->len);

    int rc = span_suffix_array(c->tok, c->len, alphabet, c->sa, err);
    if (rc) {
        span_corpus_free(c);
        return rc;
    }
    /* Keep the word suffixes only; they are the len - nrec - 1 last ranks (SPAN_SENTINEL and
     * SPAN_SEP sort first), already in order. */
    c->nsuf = c->len - c->nrec - 1;
    memmove(c->sa, c->sa + (c->len - c->nsuf), (size_t)c->nsuf * sizeof *c->sa);
    uint32_t *shrunk = realloc(c->sa, (c->nsuf ? c->nsuf : 1) * sizeof *c->sa);
    if (shrunk) c->sa = shrunk;

    if ((rc = first_token_table(c, alphabet, err))) {
        span_corpus_free(c);
        return rc;
    }
    *out = c;
    return ACC_OK;
nomem:
    span_corpus_free(c);
    return acc_fail(err, ACC_ENOMEM, "span index: out of memory for %llu tokens", (unsigned long long)total);
}

int span_corpus_adopt(const span_record_tokens *records, uint32_t nrecords, uint32_t alphabet, uint32_t *tok,
                      uint32_t len, uint32_t *sa, uint32_t nsuf, span_corpus **out, acc_err *err) {
    *out = NULL;
    span_corpus *c = calloc(1, sizeof *c);
    if (!c) return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    c->rec_first = malloc(((size_t)nrecords + 1) * sizeof *c->rec_first);
    c->rec_id = malloc(((size_t)nrecords + 1) * sizeof *c->rec_id);
    if (!c->rec_first || !c->rec_id) {
        span_corpus_free(c);
        return acc_fail(err, ACC_ENOMEM, "span index: out of memory");
    }
    for (uint32_t r = 0; r < nrecords; r++) {
        c->rec_first[r] = (uint32_t)(records[r].ids - tok);
        c->rec_id[r] = records[r].record_id;
    }
    c->nrec = nrecords;
    c->tok = tok;
    c->len = len;
    c->sa = sa;
    c->nsuf = nsuf;
    int rc = first_token_table(c, alphabet, err);
    if (rc) {
        c->tok = c->sa = NULL; /* not adopted after all */
        span_corpus_free(c);
        return rc;
    }
    *out = c;
    return ACC_OK;
}

size_t span_corpus_records(const span_corpus *c) { return c->nrec; }
size_t span_corpus_tokens(const span_corpus *c) { return c->nsuf; }
uint32_t span_corpus_length(const span_corpus *c) { return c->len; }
uint32_t span_corpus_token(const span_corpus *c, uint32_t pos) { return c->tok[pos]; }
uint32_t span_corpus_suffixes(const span_corpus *c) { return c->nsuf; }
uint32_t span_corpus_suffix(const span_corpus *c, uint32_t rank) { return c->sa[rank]; }
int64_t span_corpus_record_id(const span_corpus *c, uint32_t record_index) { return c->rec_id[record_index]; }

void span_corpus_record_span(const span_corpus *c, uint32_t record_index, uint32_t *first, uint32_t *n) {
    uint32_t end = record_index + 1 < c->nrec ? c->rec_first[record_index + 1] : c->len - 1;
    *first = c->rec_first[record_index];
    *n = end - *first - 1; /* less the separator */
}

uint32_t span_corpus_record_at(const span_corpus *c, uint32_t pos, uint32_t *first) {
    /* The last record whose first position is <= pos. */
    uint32_t lo = 0, hi = c->nrec;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->rec_first[mid] <= pos) lo = mid;
        else hi = mid;
    }
    if (first) *first = c->rec_first[lo];
    return lo;
}

/* The ranks whose suffixes can start with word w (all of them without a table). */
static void first_range(const span_corpus *c, uint32_t w, uint32_t *lo, uint32_t *hi, uint32_t *known) {
    if (c->first) {
        if (w < SPAN_FIRST_WORD || w >= c->first_limit) {
            *lo = *hi = 0;
        } else {
            *lo = c->first[w - SPAN_FIRST_WORD];
            *hi = c->first[w - SPAN_FIRST_WORD + 1];
        }
        *known = 1; /* every suffix in the range starts with w */
    } else {
        *lo = 0;
        *hi = c->nsuf;
        *known = 0;
    }
}

/* The common prefix of q[0..m) and the suffix at pos, knowing the first `from` tokens agree. */
static inline uint32_t lcp_at(const span_corpus *c, uint32_t pos, const uint32_t *q, uint32_t m, uint32_t from) {
    const uint32_t *s = c->tok + pos;
    uint32_t d = from;
    while (d < m && s[d] == q[d]) d++; /* stops at SPAN_SEP at the latest: q holds none */
    return d;
}

/* The first rank in [lo, hi) whose suffix is >= q[0..m) (upper = 0: a suffix that starts with q
 * counts as >=) or > q[0..m) (upper = 1: a suffix that starts with q counts as smaller), given
 * that every suffix in [lo, hi) agrees with q on its first llcp tokens and its first rlcp tokens
 * (the common prefixes of q with the suffixes just outside the range, or what the caller knows of
 * the range): every suffix between two shares the smaller one with q, so a comparison starts
 * there. */
static uint32_t bound(const span_corpus *c, const uint32_t *q, uint32_t m, uint32_t lo, uint32_t hi, uint32_t llcp,
                      uint32_t rlcp, int upper) {
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t from = llcp < rlcp ? llcp : rlcp;
        uint32_t pos = c->sa[mid];
        uint32_t d = lcp_at(c, pos, q, m, from);
        if (d == m ? !upper : c->tok[pos + d] > q[d]) {
            hi = mid;
            rlcp = d;
        } else {
            lo = mid + 1;
            llcp = d;
        }
    }
    return lo;
}

/* The length of q's prefix that can match at all: up to the first id no word has (a query never
 * holds separators; stopping there keeps every comparison inside the token array). */
static uint32_t matchable(const uint32_t *q, size_t m) {
    if (m > UINT32_MAX) m = UINT32_MAX;
    for (size_t i = 0; i < m; i++)
        if (q[i] < SPAN_FIRST_WORD) return (uint32_t)i;
    return (uint32_t)m;
}

/* The lower bound of q's occurrences (bound with upper = 0) in one pass that also narrows where
 * the upper bound is: each suffix it compares is either below q (below both bounds), or starts
 * with q (below the upper one), or above q (above both), so the upper bound's search starts from
 * the range and common prefixes the lower one left it instead of from [lower bound, b) again. */
void span_corpus_find(const span_corpus *c, const uint32_t *q, size_t m, uint32_t *lo, uint32_t *hi) {
    uint32_t a, b, known;
    *lo = *hi = 0;
    if (matchable(q, m) < m || m == 0 || c->nsuf == 0) return; /* a separator occurs nowhere */
    first_range(c, q[0], &a, &b, &known);
    if (a == b) return;
    uint32_t n = (uint32_t)m, llcp = known, rlcp = known;         /* the lower bound's search */
    uint32_t ulo = a, uhi = b, ullcp = known, urlcp = known;      /* the upper bound's range */
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        uint32_t pos = c->sa[mid];
        uint32_t d = lcp_at(c, pos, q, n, llcp < rlcp ? llcp : rlcp);
        bool above = d < n && c->tok[pos + d] > q[d];
        if (d == n || above) b = mid, rlcp = d; /* at or above the lower bound */
        else a = mid + 1, llcp = d;
        if (above) { /* above both */
            if (mid < uhi) uhi = mid, urlcp = d;
        } else if (mid + 1 > ulo) { /* below q, or starts with q: below the upper bound */
            ulo = mid + 1, ullcp = d;
        }
    }
    *lo = a;
    *hi = bound(c, q, n, ulo, uhi, ullcp, urlcp, 1);
}

/* Does the suffix at rank x start with q[0..m)? */
static inline bool starts_with(const span_corpus *c, uint32_t x, const uint32_t *q, uint32_t m) {
    return lcp_at(c, c->sa[x], q, m, 0) == m;
}

void span_corpus_find_around(const span_corpus *c, uint32_t r, uint32_t m, uint32_t *lo, uint32_t *hi) {
    const uint32_t *q = c->tok + c->sa[r];
    /* Down: gallop while the ranks below still start with q, then bisect [a, in). */
    uint32_t in = r, a = 0, step = 1; /* in: the lowest rank known to start with q */
    for (;;) {
        if (step > in) break; /* a = 0 */
        uint32_t x = in - step;
        if (!starts_with(c, x, q, m)) {
            a = x + 1;
            break;
        }
        in = x;
        step *= 2;
    }
    while (a < in) {
        uint32_t mid = a + (in - a) / 2;
        if (starts_with(c, mid, q, m)) in = mid;
        else a = mid + 1;
    }
    *lo = in;
    /* Up: the same from r to the end. */
    step = 1, in = r;
    while (in + step < c->nsuf && starts_with(c, in + step, q, m)) {
        in += step;
        step *= 2;
    }
    uint32_t b = in + step < c->nsuf ? in + step : c->nsuf; /* the first rank known not to, or the end */
    uint32_t x = in + 1;
    while (x < b) {
        uint32_t mid = x + (b - x) / 2;
        if (starts_with(c, mid, q, m)) x = mid + 1;
        else b = mid;
    }
    *hi = x;
}

uint32_t span_corpus_longest_at(const span_corpus *c, const uint32_t *q, uint32_t m) {
    uint32_t a, b, known;
    if (m == 0 || c->nsuf == 0) return 0;
    first_range(c, q[0], &a, &b, &known);
    if (a == b) return 0;
    uint32_t p = bound(c, q, m, a, b, known, known, 0);
    uint32_t best = 0;
    if (p > a) best = lcp_at(c, c->sa[p - 1], q, m, known);
    if (p < b) {
        uint32_t d = lcp_at(c, c->sa[p], q, m, known);
        if (d > best) best = d;
    }
    return best;
}

void span_corpus_longest_max(const span_corpus *c, const uint32_t *q, size_t m, uint32_t *ms) {
    size_t i = 0;
    while (i < m) {
        uint32_t run = matchable(q + i, m - i);
        for (uint32_t j = 0; j < run; j++) {
            uint32_t len = span_corpus_longest_at(c, q + i + j, run - j);
            if (len > ms[i + j]) ms[i + j] = len;
        }
        i += run + 1; /* past the id that matches nothing */
    }
}

void span_corpus_longest(const span_corpus *c, const uint32_t *q, size_t m, uint32_t *ms) {
    memset(ms, 0, m * sizeof *ms);
    span_corpus_longest_max(c, q, m, ms);
}

const uint32_t *span_corpus_tokens_of(const span_corpus *c) { return c->tok; }
const uint32_t *span_corpus_sa_of(const span_corpus *c) { return c->sa; }
