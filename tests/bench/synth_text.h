/*
 * synth_text.h: synthetic English-like text for the benchmarks (bench_span, bench_meters): words
 * drawn from a Zipf(1) distribution over a 200k-word vocabulary (so a few words are everywhere and
 * most are rare, as in real text), in records with punctuation and mixed case. Deterministic: the
 * same calls give the same text.
 */
#ifndef ACCRUE_TESTS_BENCH_SYNTH_TEXT_H
#define ACCRUE_TESTS_BENCH_SYNTH_TEXT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x243F6A8885A308D3u;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define VOCAB 200000
static double *zipf_cdf;
static char (*word_text)[12];

static void make_vocab(void) {
    zipf_cdf = malloc(VOCAB * sizeof *zipf_cdf);
    word_text = malloc(VOCAB * sizeof *word_text);
    double sum = 0;
    for (int r = 0; r < VOCAB; r++) sum += 1.0 / (r + 1);
    double acc = 0;
    for (int r = 0; r < VOCAB; r++) {
        acc += 1.0 / (r + 1) / sum;
        zipf_cdf[r] = acc;
        uint64_t h = (uint64_t)r * 0x9E3779B97F4A7C15u + 12345;
        int len = 2 + (int)(h % 8) + (r > 1000);
        for (int i = 0; i < len && i < 11; i++) {
            h = h * 6364136223846793005u + 1442695040888963407u;
            word_text[r][i] = (char)('a' + (h >> 33) % 26);
        }
        word_text[r][len < 11 ? len : 11] = 0;
    }
}

static int zipf(void) {
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* A record of n words as text, into buf; returns its length. */
static size_t make_text(char *buf, int n) {
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        const char *w = word_text[zipf()];
        if (i) {
            uint64_t r = rnd() % 20;
            buf[o++] = r == 0 ? ',' : r == 1 ? '.' : ' ';
            if (r < 2) buf[o++] = ' ';
        }
        size_t l = strlen(w);
        memcpy(buf + o, w, l);
        if (rnd() % 10 == 0) buf[o] = (char)(buf[o] - 32);
        o += l;
    }
    buf[o++] = '.';
    buf[o] = 0;
    return o;
}

#endif
