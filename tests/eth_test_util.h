/*
 * eth_test_util.h: helpers shared by the key, EIP-712, Merkle and cross-check tests: a seeded
 * random generator, hex comparison, and running the accrue binary ($ACCRUE_BIN) through a shell.
 */
#ifndef ACCRUE_TESTS_ETH_TEST_UTIL_H
#define ACCRUE_TESTS_ETH_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "meters/eth/hex.h"

/* xorshift64*: reproducible test data from a fixed seed. */
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

static inline int test_hex_eq(const uint8_t *data, size_t len, const char *want) {
    char buf[2 * 256 + 3];
    if (len > 256) return 0;
    hex_encode0x(data, len, buf);
    return strcmp(buf, want) == 0;
}

/* Runs a shell command line; its stdout goes into out (NUL-terminated, trailing newline kept).
 * Returns the exit status, or -1 when it could not run. */
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

static inline const char *test_accrue_bin(void) {
    const char *b = getenv("ACCRUE_BIN");
    return b && *b ? b : "zig-out/bin/accrue";
}

/* Removes a scratch directory a test made, with everything in it. */
static inline void test_remove_dir(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static inline void test_chomp(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
}

#endif
