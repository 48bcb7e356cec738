/*
 * bench_span.c: the span index on a 10M-token datanet.
 *
 * The datanet is synthetic English-like text: words drawn from a Zipf(1) distribution over a
 * 200k-word vocabulary (so a few words are everywhere and most are rare, as in real text), in
 * records of 20..200 words with punctuation and mixed case. Measured:
 *   - build: tokenizing + interning, and the suffix array (SA-IS), in tokens per second;
 *   - saving the built index as bytes and loading them back (checked), the alternative to building;
 *   - accepting one record into the built index (commit with merges), median and worst;
 *   - the longest-match query (matching statistics) for 200-token outputs: copied (five pieces
 *     of records, ~40 tokens each) and novel (fresh Zipf text), per output;
 *   - attribution of the same outputs (tokenize, look up, match, find records, weights);
 *   - beside them, the physical floor of one query: 200 x (binary search of 24 steps) random
 *     reads in a 40 MB array, measured as dependent loads.
 * Run with `zig build bench -Doptimize=ReleaseFast -Dbench=span`; SPAN_BENCH_TOKENS overrides the size.
 * Times are the thread's CPU time unless ACCRUE_BENCH_WALL=1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/span/span.h"

/* The thread's CPU time: on a shared machine (2 cores, several engineers) wall time mostly
 * measures the others; ACCRUE_BENCH_WALL=1 measures wall time instead. */
static double now(void) {
    struct timespec ts;
    clock_gettime(getenv("ACCRUE_BENCH_WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#include "tests/bench/synth_text.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    const char *env = getenv("SPAN_BENCH_TOKENS");
    size_t target = env ? strtoull(env, NULL, 10) : 10000000;
    make_vocab();
    /* The datanet's text, generated up front (not timed). */
    size_t cap = target * 9 + 4096, len = 0;
    char *text = malloc(cap);
    size_t nrec = 0, rcap = target / 20 + 16;
    size_t *off = malloc(rcap * sizeof *off), *rlen = malloc(rcap * sizeof *rlen);
    size_t words = 0;
    while (words < target) {
        int n = 20 + (int)(rnd() % 181);
        off[nrec] = len;
        rlen[nrec] = make_text(text + len, n);
        len += rlen[nrec] + 1;
        words += (size_t)n;
        nrec++;
    }
    printf("# span index bench: %zu records, %zu words, %.1f MB of text, vocabulary %d (Zipf 1)\n", nrec, words,
           len / 1e6, VOCAB);

    acc_err err = {0};
    span_index *x = span_index_new();
    double t0 = now();
    for (size_t r = 0; r < nrec; r++)
        if (span_index_add(x, (int64_t)r + 1, text + off[r], rlen[r], &err)) {
            fprintf(stderr, "add: %s\n", err.msg);
            return 1;
        }
    double t1 = now();
    if (span_index_commit(x, &err)) {
        fprintf(stderr, "commit: %s\n", err.msg);
        return 1;
    }
    double t2 = now();
    size_t ntok = span_index_tokens(x);
    printf("build: %zu tokens, %u distinct; tokenize+intern %.2f s (%.2f M tokens/s, %.0f MB/s), suffix array %.2f s "
           "(%.2f M tokens/s); total %.2f s = %.2f M tokens/s\n",
           ntok, span_vocab_limit(span_index_vocab(x)) - SPAN_FIRST_WORD, t1 - t0, ntok / (t1 - t0) / 1e6,
           len / (t1 - t0) / 1e6, t2 - t1, ntok / (t2 - t1) / 1e6, t2 - t0, ntok / (t2 - t0) / 1e6);

    /* Saved and loaded (what a short-lived process does instead of building). */
    {
        acc_buf b = ACC_BUF_INIT;
        double a = now();
        span_index_save(x, &b, NULL);
        double s1 = now();
        span_index *y = NULL;
        if (span_index_load(b.data, b.len, &y, &err)) {
            fprintf(stderr, "load: %s\n", err.msg);
            return 1;
        }
        double s2 = now();
        printf("save: %.0f MB in %.2f s; load (checked): %.2f s = %.1f M tokens/s\n", b.len / 1e6, s1 - a, s2 - s1,
               ntok / (s2 - s1) / 1e6);
        span_index_free(y);
        acc_buf_free(&b);
    }

    /* Outputs: copied (five 40-token pieces of random records) and novel. */
    enum { NQ = 400, QLEN = 200 };
    char (*outs)[4096] = malloc(2 * NQ * sizeof *outs);
    size_t *outlen = malloc(2 * NQ * sizeof *outlen);
    span_tokens tk = SPAN_TOKENS_INIT;
    for (int q = 0; q < NQ; q++) {
        size_t o = 0;
        int have = 0;
        while (have < QLEN) {
            size_t r = rnd() % nrec;
            span_tokenize(text + off[r], rlen[r], &tk, NULL);
            if (tk.n < 45) continue;
            size_t p = rnd() % (tk.n - 40), end = tk.v[p + 39].end;
            if (have + 40 > QLEN) end = tk.v[p + (size_t)(QLEN - have) - 1].end;
            size_t l = end - tk.v[p].start;
            if (o) outs[q][o++] = ' ';
            memcpy(outs[q] + o, text + off[r] + tk.v[p].start, l);
            o += l;
            have += 40;
        }
        outs[q][o] = 0;
        outlen[q] = o;
        outlen[NQ + q] = make_text(outs[NQ + q], QLEN - 1);
    }
    uint32_t *ids = malloc(QLEN * 2 * sizeof *ids), *ms = malloc(QLEN * 2 * sizeof *ms);
    const span_vocab *v = span_index_vocab_const(x);
    const char *kind[2] = {"copied", "novel"};
    for (int k = 0; k < 2; k++) {
        double *lat = malloc(NQ * sizeof *lat);
        size_t toks = 0, matched = 0;
        for (int round = 0; round < 2; round++) /* the first round warms the caches */
            for (int q = 0; q < NQ; q++) {
                span_tokenize(outs[k * NQ + q], outlen[k * NQ + q], &tk, NULL);
                span_vocab_find_ids(v, &tk, ids);
                double a = now();
                span_index_longest(x, ids, tk.n, ms);
                lat[q] = now() - a;
                if (round) {
                    toks += tk.n;
                    for (size_t i = 0; i < tk.n; i++) matched += ms[i] >= 8;
                }
            }
        qsort(lat, NQ, sizeof *lat, cmp_double);
        printf("longest match, %s 200-token outputs: median %.1f us, p99 %.1f us (%zu tokens/output, %.0f%% at >= 8)\n",
               kind[k], lat[NQ / 2] * 1e6, lat[NQ * 99 / 100] * 1e6, toks / NQ, 100.0 * matched / (toks ? toks : 1));
        double spans = 0;
        for (int q = 0; q < NQ; q++) {
            span_attribution at;
            double a = now();
            span_attribute((const span_index *const[]){x}, 1, outs[k * NQ + q], outlen[k * NQ + q], NULL, &at, NULL);
            lat[q] = now() - a;
            spans += (double)at.nspans;
            span_attribution_free(&at);
        }
        qsort(lat, NQ, sizeof *lat, cmp_double);
        printf("attribution, %s 200-token outputs: median %.1f us, p99 %.1f us (%.1f spans/output)\n", kind[k],
               lat[NQ / 2] * 1e6, lat[NQ * 99 / 100] * 1e6, spans / NQ);
        free(lat);
    }

    /* The floor: 200 binary searches of 24 dependent random reads each, in a 40 MB array. */
    {
        size_t n = (size_t)1 << 23; /* 8M uint32 = 32 MB, ~ the suffix array */
        uint32_t *arr = malloc(n * sizeof *arr);
        for (size_t i = 0; i < n; i++) arr[i] = (uint32_t)i;
        volatile uint32_t sink = 0;
        double best = 1e9;
        for (int round = 0; round < 5; round++) {
            double a = now();
            for (int s = 0; s < 200; s++) {
                uint32_t key = (uint32_t)(rnd() % n), lo = 0, hi = (uint32_t)n;
                while (lo < hi) {
                    uint32_t mid = lo + (hi - lo) / 2;
                    if (arr[mid] < key) lo = mid + 1;
                    else hi = mid;
                }
                sink += lo;
            }
            double t = now() - a;
            if (t < best) best = t;
        }
        printf("floor: 200 binary searches in a 32 MB array: %.1f us\n", best * 1e6);
        free(arr);
    }

    /* Accepting records one at a time into the built index. */
    {
        enum { N = 300 };
        double *lat = malloc(N * sizeof *lat);
        char rec[4096];
        for (int i = 0; i < N; i++) {
            size_t l = make_text(rec, 20 + (int)(rnd() % 181));
            double a = now();
            span_index_add(x, (int64_t)(nrec + 1 + (size_t)i), rec, l, NULL);
            span_index_commit(x, NULL);
            lat[i] = now() - a;
        }
        double total = 0;
        for (int i = 0; i < N; i++) total += lat[i];
        qsort(lat, N, sizeof *lat, cmp_double);
        printf("accept one record (add + commit): median %.1f us, max %.1f ms, mean %.1f us; %zu corpora now\n",
               lat[N / 2] * 1e6, lat[N - 1] * 1e3, total / N * 1e6, span_index_corpora(x));
        free(lat);
    }
    span_tokens_free(&tk);
    span_index_free(x);
    free(text);
    free(outs);
    return 0;
}
