/*
 * sais.c: suffix arrays over integer texts in linear time (SA-IS: Nong, Zhang and Chan, "Two
 * Efficient Algorithms for Linear Time Suffix Array Construction", 2009).
 *
 * A datanet's text is a string of word ids, an alphabet of hundreds of thousands of symbols, so
 * the byte-oriented suffix sorters do not apply and a comparison sort (n log n comparisons, each
 * as long as the common prefix: copied boilerplate makes that long) is too slow for the 1M
 * tokens/s the index must build at. SA-IS sorts a sample of the suffixes (the leftmost-S ones)
 * by recursion on a text at most half as long, then induces the order of all the others from them
 * in two linear scans. Memory: the suffix array itself, a byte of type per symbol, and two
 * counters per alphabet symbol; the recursion's text and suffix array live inside the caller's
 * suffix array.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/span/span.h"

#define EMPTY UINT32_MAX

/* Bucket starts (end = 0) or ends (end = 1) of each symbol, from the symbol counts. */
static void buckets(const uint32_t *cnt, uint32_t k, uint32_t *bkt, int end) {
    uint32_t sum = 0;
    for (uint32_t c = 0; c < k; c++) {
        sum += cnt[c];
        bkt[c] = end ? sum : sum - cnt[c];
    }
}

static inline int is_lms(const uint8_t *t, uint32_t i) { return i > 0 && t[i] && !t[i - 1]; }

/* Induces the L-type suffixes from the sorted ones in place (left to right), then the S-type
 * (right to left). */
static void induce(const uint32_t *T, uint32_t *SA, const uint8_t *t, uint32_t n, const uint32_t *cnt, uint32_t *bkt, uint32_t k) {
    buckets(cnt, k, bkt, 0);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = SA[i];
        if (j != EMPTY && j > 0 && !t[j - 1]) SA[bkt[T[j - 1]]++] = j - 1;
    }
    buckets(cnt, k, bkt, 1);
    for (uint32_t i = n; i-- > 0;) {
        uint32_t j = SA[i];
        if (j != EMPTY && j > 0 && t[j - 1]) SA[--bkt[T[j - 1]]] = j - 1;
    }
}

/* Whether the LMS substrings starting at a and b are equal (same symbols, same types, both end at
 * the next LMS position at the same distance). */
static int lms_equal(const uint32_t *T, const uint8_t *t, uint32_t n, uint32_t a, uint32_t b) {
    for (uint32_t d = 0;; d++) {
        if (a + d >= n || b + d >= n) return 0;
        if (T[a + d] != T[b + d] || t[a + d] != t[b + d]) return 0;
        if (d > 0) {
            int la = is_lms(t, a + d), lb = is_lms(t, b + d);
            if (la || lb) return la && lb;
        }
    }
}

static int sais(const uint32_t *T, uint32_t *SA, uint32_t n, uint32_t k) {
    if (n == 1) {
        SA[0] = 0;
        return 0;
    }
    uint8_t *t = malloc(n);
    uint32_t *cnt = calloc(k, sizeof *cnt), *bkt = malloc((size_t)k * sizeof *bkt);
    int rc = -1;
    if (!t || !cnt || !bkt) goto out;

    /* Types: S (1) when the suffix is smaller than the next one, L (0) otherwise. */
    t[n - 1] = 1;
    for (uint32_t i = n - 1; i-- > 0;) t[i] = T[i] < T[i + 1] || (T[i] == T[i + 1] && t[i + 1]);
    for (uint32_t i = 0; i < n; i++) cnt[T[i]]++;

    /* Stage 1: sort the LMS substrings by one induction from their unsorted positions. */
    memset(SA, 0xff, (size_t)n * sizeof *SA);
    buckets(cnt, k, bkt, 1);
    for (uint32_t i = 1; i < n; i++)
        if (is_lms(t, i)) SA[--bkt[T[i]]] = i;
    induce(T, SA, t, n, cnt, bkt, k);

    /* Compact the sorted LMS positions to SA[0, n1) and name them: equal substrings, equal names. */
    uint32_t n1 = 0;
    for (uint32_t i = 0; i < n; i++)
        if (is_lms(t, SA[i])) SA[n1++] = SA[i];
    memset(SA + n1, 0xff, (size_t)(n - n1) * sizeof *SA);
    uint32_t names = 0, prev = EMPTY;
    for (uint32_t i = 0; i < n1; i++) {
        uint32_t pos = SA[i];
        if (prev == EMPTY || !lms_equal(T, t, n, prev, pos)) names++;
        prev = pos;
        SA[n1 + pos / 2] = names - 1; /* LMS positions are >= 2 apart: no two share a slot */
    }
    for (uint32_t i = n, j = n; i-- > n1;)
        if (SA[i] != EMPTY) SA[--j] = SA[i];

    /* Stage 2: the order of the LMS suffixes, by recursion when two substrings share a name. */
    uint32_t *s1 = SA + n - n1, *sa1 = SA;
    if (names < n1) {
        if (sais(s1, sa1, n1, names)) goto out;
    } else {
        for (uint32_t i = 0; i < n1; i++) sa1[s1[i]] = i;
    }

    /* Stage 3: put the sorted LMS suffixes at their bucket ends and induce everything. */
    for (uint32_t i = 1, j = 0; i < n; i++)
        if (is_lms(t, i)) s1[j++] = i;
    for (uint32_t i = 0; i < n1; i++) sa1[i] = s1[sa1[i]];
    memset(SA + n1, 0xff, (size_t)(n - n1) * sizeof *SA);
    buckets(cnt, k, bkt, 1);
    for (uint32_t i = n1; i-- > 0;) {
        uint32_t j = SA[i];
        SA[i] = EMPTY;
        SA[--bkt[T[j]]] = j;
    }
    induce(T, SA, t, n, cnt, bkt, k);
    rc = 0;
out:
    free(t);
    free(cnt);
    free(bkt);
    return rc;
}

int span_suffix_array(const uint32_t *text, uint32_t n, uint32_t alphabet, uint32_t *sa, acc_err *err) {
    if (n == 0 || n >= (1u << 31)) return acc_fail(err, ACC_EINVAL, "suffix array: text length %u out of range", n);
    if (text[n - 1] != 0) return acc_fail(err, ACC_EINVAL, "suffix array: the text must end with the sentinel 0");
    for (uint32_t i = 0; i + 1 < n; i++)
        if (text[i] == 0 || text[i] >= alphabet)
            return acc_fail(err, ACC_EINVAL, "suffix array: symbol %u at %u out of range 1..%u", text[i], i, alphabet - 1);
    if (sais(text, sa, n, alphabet)) return acc_fail(err, ACC_ENOMEM, "suffix array: out of memory for %u symbols", n);
    return ACC_OK;
}
