/*
 * bench_factory.c: the model factory's built-in models: loading an artifact, and answering calls.
 *
 * Two training sets: a demo-sized datanet (300 records of about 30 words) and a 1M-token one
 * (records of 20..200 words drawn from a Zipf(1) vocabulary of 50k words, as bench_span does).
 * For each: the time to load (rebuild) the model from its artifact, and calls per second through
 * factory_respond (the JSON request and answer included, as models.call makes them) for
 * continuations of 32 words and for answers of up to 64 words. One thread; calls are independent,
 * so a server's workers multiply it. Run with `zig build bench -Doptimize=ReleaseFast -Dbench=factory`.
 * Times are the thread's CPU time unless ACCRUE_BENCH_WALL=1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/factory/factory.h"

/* The thread's CPU time: on a shared machine (2 cores, several engineers) wall time mostly
 * measures the others; ACCRUE_BENCH_WALL=1 measures wall time instead. */
static double now(void) {
    struct timespec ts;
    clock_gettime(getenv("ACCRUE_BENCH_WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x6a09e667f3bcc908u;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double *cdf;
static char (*word)[12];
static int nvocab;

static void make_vocab(int n) {
    nvocab = n;
    cdf = malloc((size_t)n * sizeof *cdf);
    word = malloc((size_t)n * sizeof *word);
    double sum = 0, acc = 0;
    for (int r = 0; r < n; r++) sum += 1.0 / (r + 1);
    for (int r = 0; r < n; r++) {
        acc += 1.0 / (r + 1) / sum;
        cdf[r] = acc;
        uint64_t h = (uint64_t)r * 0x9E3779B97F4A7C15u + 7;
        int len = 2 + (int)(h % 8);
        for (int i = 0; i < len; i++) {
            h = h * 6364136223846793005u + 1442695040888963407u;
            word[r][i] = (char)('a' + (h >> 33) % 26);
        }
        word[r][len] = 0;
    }
}

static const char *zipf_word(void) {
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    int lo = 0, hi = nvocab - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return word[lo];
}

/* A record of n words in sentences of 6..14 words. */
static char *make_record(int n) {
    acc_buf b = ACC_BUF_INIT;
    int until = 6 + (int)(rnd() % 9);
    for (int i = 0; i < n; i++) {
        const char *w = zipf_word();
        if (i) acc_buf_putc(&b, ' ');
        if (i == 0 || until == 0) acc_buf_printf(&b, "%c%s", w[0] - 32, w + 1);
        else acc_buf_puts(&b, w);
        if (--until <= 0 || i + 1 == n) {
            acc_buf_putc(&b, '.');
            until = 6 + (int)(rnd() % 9);
        }
    }
    return acc_buf_take(&b, NULL);
}

static void run(const char *name, size_t nrec, int minw, int spread, int vocab) {
    make_vocab(vocab);
    factory_record *recs = malloc(nrec * sizeof *recs);
    size_t words = 0;
    for (size_t i = 0; i < nrec; i++) {
        int n = minw + (int)(rnd() % (unsigned)spread);
        char *t = make_record(n);
        recs[i] = (factory_record){.id = (int64_t)i + 1, .text = t, .len = strlen(t)};
        words += (size_t)n;
    }
    acc_buf art = ACC_BUF_INIT;
    factory_artifact_encode(recs, nrec, FACTORY_DEFAULT_ORDER, 1, nrec, &art, NULL);
    factory_model *m = NULL;
    double best = 1e9;
    for (int round = 0; round < 3; round++) {
        factory_model_free(m);
        double a = now();
        if (factory_model_load(art.data, art.len, &m, NULL)) {
            fprintf(stderr, "load failed\n");
            exit(1);
        }
        double t = now() - a;
        if (t < best) best = t;
    }
    printf("%s: %zu records, %zu words, artifact %.1f MB: load %.1f ms (%.1f M words/s)\n", name, nrec, words,
           art.len / 1e6, best * 1e3, words / best / 1e6);
    /* Requests: prompts are the first three words of random records; questions five random words. */
    enum { N = 2000 };
    char (*req)[512] = malloc(2 * N * sizeof *req);
    for (int i = 0; i < N; i++) {
        const factory_record *r = &recs[rnd() % nrec];
        int sp = 0;
        size_t cut = 0;
        while (cut < r->len && sp < 3) sp += r->text[cut++] == ' ';
        snprintf(req[i], sizeof req[i], "{\"prompt\":\"%.*s\",\"max_tokens\":32}", (int)(cut ? cut - 1 : 0), r->text);
        snprintf(req[N + i], sizeof req[N + i], "{\"messages\":[{\"role\":\"user\",\"content\":\"%s %s %s %s %s?\"}],\"max_tokens\":64}",
                 zipf_word(), zipf_word(), word[rnd() % 2000], word[rnd() % 2000], word[rnd() % 200]);
    }
    const char *kind[2] = {"continue 32 words", "answer <= 64 words"};
    for (int k = 0; k < 2; k++) {
        acc_buf out = ACC_BUF_INIT;
        size_t outbytes = 0;
        double a = now();
        for (int i = 0; i < N; i++) {
            acc_buf_reset(&out);
            if (factory_respond(m, req[k * N + i], strlen(req[k * N + i]), &out, NULL)) {
                fprintf(stderr, "respond failed: %s\n", req[k * N + i]);
                exit(1);
            }
            outbytes += out.len;
        }
        double t = now() - a;
        printf("  %s: %.0f calls/s (%.1f us each, %.0f bytes of JSON out on average)\n", kind[k], N / t, t / N * 1e6,
               (double)outbytes / N);
        acc_buf_free(&out);
    }
    free(req);
    factory_model_free(m);
    acc_buf_free(&art);
    for (size_t i = 0; i < nrec; i++) free((void *)recs[i].text);
    free(recs);
    free(cdf);
    free(word);
}

int main(void) {
    run("demo-sized datanet", 300, 20, 21, 3000);
    run("1M-token datanet", 9000, 20, 181, 50000);
    return 0;
}
