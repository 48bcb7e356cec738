/*
 * util.h: the helpers every test shares (check.h includes it): a clock, the one time scale for slow
 * tools, a seeded random generator, scratch directories, and running the accrue binary.
 *
 * Time scale. Under valgrind, ASan or TSan everything runs several to tens of times slower, so a test
 * that bounds wall time stretches its bound by test_time_scale(), which reads ACCRUE_TIME_SCALE
 * (tools/sanitize.sh and tools/valgrind.sh set it; unset means 1, a native run). It is the only
 * signal a test may use to know it runs under a slow tool: test_slow_tool() is "scale > 1", for the
 * few checks that mean nothing there at all (a speed ratio, a process's peak RSS).
 */
#ifndef ACCRUE_TESTS_UTIL_H
#define ACCRUE_TESTS_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- clock ---- */

/* Seconds, and milliseconds, on the monotonic clock (for differences only). */
static inline double test_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static inline double test_now_ms(void) {
    return test_now_s() * 1e3;
}

/* Seconds of CPU time this thread has used: what a benchmark comparing two pieces of code reads,
 * so that other processes on the machine do not land in one side's time. */
static inline double test_thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- time scale ---- */

/* ACCRUE_TIME_SCALE (a number >= 1; unset, empty or invalid means 1, invalid with a warning). */
static inline double test_time_scale(void) {
    static double scale = 0;
    if (scale == 0) {
        const char *s = getenv("ACCRUE_TIME_SCALE");
        char *end = NULL;
        double v = s && *s ? strtod(s, &end) : 1;
        if (s && *s && (*end || !(v >= 1 && v <= 1000))) {
            fprintf(stderr, "# ACCRUE_TIME_SCALE='%s' is not a number from 1 to 1000; using 1\n", s);
            v = 1;
        }
        scale = v;
    }
    return scale;
}

/* A wall-time bound stretched for the tool the test runs under. */
static inline double test_scaled_ms(double ms) {
    return ms * test_time_scale();
}

/* Under valgrind or a sanitizer: timings and peak memory say nothing about the code. */
static inline int test_slow_tool(void) {
    return test_time_scale() > 1;
}

/* ---- random numbers ---- */

/* xorshift64*: reproducible test data from a seed (test_seed). */
static uint64_t test_rng_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t test_rand(void) {
    uint64_t x = test_rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    test_rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}
static inline void test_rand_bytes(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(test_rand() >> 56);
}

/* Seeds test_rand from the environment variable env: unset means `fixed` (so CI runs are
 * repeatable), "random" a fresh seed, anything else a number (decimal or 0x-hex). Prints the seed
 * and how to repeat it; returns it. An unparsable value exits the test with status 2. */
static inline uint64_t test_seed(const char *env, uint64_t fixed) {
    const char *s = getenv(env);
    uint64_t seed = fixed;
    if (s && strcmp(s, "random") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    } else if (s && *s) {
        char *end;
        errno = 0;
        seed = strtoull(s, &end, 0);
        if (errno || *end || *s == '-') {
            fprintf(stderr, "%s='%s': want a number or \"random\"\n", env, s);
            exit(2);
        }
    }
    if (seed == 0) seed = 1; /* xorshift's one fixed point */
    test_rng_state = seed;
    printf("# seed %llu (%s=%llu repeats it; %s=random draws a new one)\n", (unsigned long long)seed, env,
           (unsigned long long)seed, env);
    return seed;
}

/* Mutates buf (len bytes, room for cap) in place with 1 to max_edits random edits from test_rand:
 * flip a bit, overwrite a byte, delete a run, insert one of tokens (an empty token is one NUL
 * byte), duplicate a run (deeper nesting, longer arrays), change a hex digit, truncate. Returns
 * the new length. The fuzzers' one mutator. */
static inline size_t test_mutate(char *buf, size_t len, size_t cap, const char *const *tokens, size_t ntokens,
                                 int max_edits) {
    int edits = 1 + (int)(test_rand() % (uint64_t)max_edits);
    for (int e = 0; e < edits; e++) {
        size_t at = len ? test_rand() % len : 0, pos = test_rand() % (len + 1);
        switch (test_rand() % 7) {
        case 0: /* flip a bit */
            if (len) buf[at] ^= (char)(1u << (test_rand() % 8));
            break;
        case 1: /* overwrite with a random byte */
            if (len) buf[at] = (char)test_rand();
            break;
        case 2: { /* delete a run */
            size_t k = 1 + test_rand() % 16;
            if (at + k > len) k = len - at;
            memmove(buf + at, buf + at + k, len - at - k);
            len -= k;
            break;
        }
        case 3: { /* insert a token */
            const char *t = tokens[test_rand() % ntokens];
            size_t k = t[0] ? strlen(t) : 1;
            if (len + k > cap) break;
            memmove(buf + pos + k, buf + pos, len - pos);
            memcpy(buf + pos, t, k);
            len += k;
            break;
        }
        case 4: { /* duplicate a run somewhere else */
            size_t k = 1 + test_rand() % 64;
            char run[64];
            if (at + k > len) k = len - at;
            if (len + k > cap || k == 0) break;
            memcpy(run, buf + at, k);
            memmove(buf + pos + k, buf + pos, len - pos);
            memcpy(buf + pos, run, k);
            len += k;
            break;
        }
        case 5: /* replace a (hex) digit with another */
            if (len && ((buf[at] >= '0' && buf[at] <= '9') || (buf[at] >= 'a' && buf[at] <= 'f')))
                buf[at] = "0123456789abcdefABCDEF"[test_rand() % 22];
            break;
        default: /* truncate */
            len = at;
        }
    }
    return len;
}

/* ---- scratch directories ---- */

/* Makes a fresh private directory /tmp/accrue-NAME-XXXXXX and writes its path into out (at least
 * 64 bytes). Returns 0, or -1 with the reason on stderr. Remove it with test_remove_dir. */
static inline int test_scratch_dir(char *out, size_t out_len, const char *name) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    if ((size_t)snprintf(out, out_len, "%s/accrue-%s-XXXXXX", tmp, name) >= out_len || !mkdtemp(out)) {
        fprintf(stderr, "test_scratch_dir %s: %s\n", name, strerror(errno));
        return -1;
    }
    return 0;
}

/* Removes dir and everything below it (directories made read-only inside it too). Symbolic links
 * are removed, never followed. */
static inline void test_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d && chmod(dir, 0700) == 0) d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char path[4096];
            if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                chmod(path, 0700);
                test_remove_dir(path);
            } else {
                unlink(path);
            }
        }
        closedir(d);
    }
    if (rmdir(dir) != 0 && errno != ENOENT) fprintf(stderr, "could not remove %s: %s\n", dir, strerror(errno));
}

/* ---- the accrue binary ---- */

/* The binary under test: $ACCRUE_BIN (tests/run.sh sets it), else zig-out/bin/accrue. */
static inline const char *test_accrue_bin(void) {
    const char *b = getenv("ACCRUE_BIN");
    return b && *b ? b : "zig-out/bin/accrue";
}

/* Runs a shell command line; its stdout goes into out (NUL-terminated, trailing newline kept; the
 * rest is read and dropped). Returns the exit status, or -1 when it could not run or was killed. */
static inline int test_run(const char *cmdline, char *out, size_t outlen) {
    FILE *p = popen(cmdline, "r");
    if (!p) return -1;
    size_t n = 0;
    if (out && outlen) {
        n = fread(out, 1, outlen - 1, p);
        out[n] = '\0';
    }
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Drops trailing newlines (and carriage returns). */
static inline void test_chomp(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
}

#ifdef SQLITE_VERSION /* for a test that includes <sqlite3.h> */
/* Runs sql on the database at path, as a test breaking or aging a file on purpose: 0, or -1 with
 * the reason on stderr. */
static inline int test_sql_exec(const char *path, const char *sql) {
    sqlite3 *db;
    char *msg = NULL;
    int rc = sqlite3_open(path, &db) == SQLITE_OK ? sqlite3_exec(db, sql, NULL, NULL, &msg) : SQLITE_CANTOPEN;
    if (rc != SQLITE_OK) fprintf(stderr, "%s: %s: %s\n", path, sql, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}
#endif

#endif
