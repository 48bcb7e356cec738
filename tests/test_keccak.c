/*
 * test_keccak.c: keccak-256 against published vectors and the streaming API against one-shot
 * hashing at every split around the 136-byte block boundary; the hex codec every eth module uses.
 */
#include <stdlib.h>
#include <string.h>

#include "meters/eth/hex.h"
#include "meters/eth/keccak.h"
#include "tests/check.h"

static void hash_hex(const void *data, size_t len, char out[67]) {
    uint8_t d[32];
    keccak256(data, len, d);
    hex_encode0x(d, 32, out);
}

static void keccak_of_empty_is_ethereums_not_sha3(void) {
    char h[67];
    hash_hex("", 0, h);
    CHECK_STREQ(h, "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
}

static void keccak_published_vectors(void) {
    char h[67];
    hash_hex("abc", 3, h);
    CHECK_STREQ(h, "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
    const char *fox = "The quick brown fox jumps over the lazy dog";
    hash_hex(fox, strlen(fox), h);
    CHECK_STREQ(h, "0x4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15");
}

/* Lengths around the rate (values from eth_utils.keccak, bytes (7i+3) mod 256). */
static void keccak_block_boundaries(void) {
    static const struct { size_t n; const char *hex; } v[] = {
        {135, "0x00ef96af9cf4b24c7f269d922294444a197d0a33638c2e56634c57e892103a8f"},
        {136, "0x742061bcad767ed4c4f5883b1dcb1aad11afdcc140dc469d953759b127b9f9ed"},
        {137, "0xe3371f61e770abf254c34239c3b0099ad90594507415bc81dd0a10b9692bbf2a"},
        {200, "0x66d2cdf3ab4c5bd3c75add9b60b14ac5b7789534fa2da3f348853b847359a3a0"},
        {272, "0xac141fd7b0a0ffcd2e967254d508da3ec616596493c36fa304425647d90e6de5"},
        {1000, "0x80cdc8dd52cbb3dbaea8f383209893fa2bb52efbd5aedbb4b26dcfe307fcdc9b"},
    };
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        char h[67];
        hash_hex(buf, v[k].n, h);
        CHECK_MSG(strcmp(h, v[k].hex) == 0, "length %zu: %s", v[k].n, h);
    }
}

static void keccak_million_a(void) {
    size_t n = 1000000;
    char *a = malloc(n), h[67];
    CHECK(a != NULL);
    if (!a) return;
    memset(a, 'a', n);
    /* streamed in odd-sized pieces */
    keccak256_ctx c;
    keccak256_init(&c);
    for (size_t off = 0; off < n; off += 977) keccak256_update(&c, a + off, off + 977 <= n ? 977 : n - off);
    uint8_t d[32];
    keccak256_final(&c, d);
    hex_encode0x(d, 32, h);
    CHECK_STREQ(h, "0xfadae6b49f129bbb812be8407b7b2894f34aecf6dbd1f9b0f0c7e9853098fc96");
    free(a);
}

static void keccak_streaming_equals_one_shot_at_every_split(void) {
    uint8_t buf[600];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 17);
    int bad = 0;
    for (size_t len = 0; len <= sizeof buf && !bad; len += (len < 300 ? 1 : 37)) {
        uint8_t want[32];
        keccak256(buf, len, want);
        for (size_t s1 = 0; s1 <= len && !bad; s1 += 1 + (len > 150) * 6) {
            size_t s2 = s1 + (len - s1) / 3;
            keccak256_ctx c;
            uint8_t got[32];
            keccak256_init(&c);
            keccak256_update(&c, buf, s1);
            keccak256_update(&c, buf + s1, s2 - s1);
            keccak256_update(&c, buf + s2, len - s2);
            keccak256_final(&c, got);
            if (memcmp(got, want, 32) != 0) {
                CHECK_MSG(0, "len %zu split %zu/%zu differs", len, s1, s2);
                bad = 1;
            }
        }
    }
    /* final() re-initialises: the context hashes a second message correctly. */
    keccak256_ctx c;
    uint8_t d[32], e[32];
    keccak256_init(&c);
    keccak256_update(&c, "xyz", 3);
    keccak256_final(&c, d);
    keccak256_final(&c, d);
    keccak256(NULL, 0, e);
    CHECK(memcmp(d, e, 32) == 0);
}

/* The four-way hash equals four one-shot hashes on every path the CPU has, at every length below
 * the rate, with inputs and outputs aliased as the Merkle tree uses them. */
static void keccak_x4_equals_scalar_on_every_path(void) {
    int best = keccak256_x4_vectorised();
    printf("# keccak256_x4: best path on this CPU is %s\n", best == 2 ? "AVX-512VL" : best == 1 ? "AVX2" : "scalar");
    for (int level = 0; level <= best; level++) {
        CHECK(keccak256_x4_limit(level) == level);
        int bad = 0;
        for (size_t len = 0; len < KECCAK256_RATE + 20; len++) {
            uint8_t m[4][200], want[4][32], got[4][32];
            for (int k = 0; k < 4; k++) {
                for (size_t i = 0; i < len; i++) m[k][i] = (uint8_t)(k * 77 + i * 13 + len);
                keccak256(m[k], len, want[k]);
            }
            const uint8_t *in[4] = {m[0], m[1], m[2], m[3]};
            uint8_t *out[4] = {got[0], got[1], got[2], got[3]};
            keccak256_x4(in, len, out);
            for (int k = 0; k < 4; k++) bad += memcmp(got[k], want[k], 32) != 0;
            if (len == 32) { /* in place, as for the leaves' second hash */
                uint8_t *io[4] = {m[0], m[1], m[2], m[3]};
                keccak256_x4(in, len, io);
                for (int k = 0; k < 4; k++) bad += memcmp(m[k], want[k], 32) != 0;
            }
        }
        CHECK_MSG(bad == 0, "level %d: %d digests differ", level, bad);
    }
    keccak256_x4_limit(best);
}

/* The one 0x-hex parser: exact lengths, either case, and a message that says what is wrong without
 * quoting the text (it may be a secret). */
static void hex_round_trips_and_names_the_problem(void) {
    uint8_t b[4] = {0xde, 0xad, 0xbe, 0xef}, got[4];
    char text[11];
    hex_encode0x(b, 4, text);
    CHECK_STREQ(text, "0xdeadbeef");
    CHECK_EQ(hex_parse0x(text, 10, got, 4, NULL), ACC_OK);
    CHECK_MEMEQ(got, b, 4);
    CHECK_EQ(hex_parse0x("0XDEADBEEF", 10, got, 4, NULL), ACC_OK);
    CHECK_MEMEQ(got, b, 4);
    static const struct { const char *text, *want; } bad[] = {
        {"deadbeef", "expected 0x and 8 hex digits, got no 0x prefix"},
        {"0xdeadbe", "expected 0x and 8 hex digits, got 6"},
        {"0xdeadbeef00", "expected 0x and 8 hex digits, got 10"},
        {"0xdeadbeeg", "expected 0x and 8 hex digits; character 10 is not a hex digit"},
        {" 0xdeadbee", "got no 0x prefix"},
        {"", "got no 0x prefix"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        acc_err err = {0};
        CHECK_EQ(hex_parse0x(bad[i].text, strlen(bad[i].text), got, 4, &err), ACC_EINVAL);
        CHECK_CONTAINS(err.msg, bad[i].want);
    }
    uint8_t *p;
    size_t n;
    acc_err err = {0};
    CHECK_EQ(hex_parse0x_alloc("0x", 2, &p, &n, &err), ACC_OK);
    CHECK(p == NULL && n == 0);
    CHECK_EQ(hex_parse0x_alloc("0x0102ff", 8, &p, &n, &err), ACC_OK);
    CHECK_EQ(n, 3);
    CHECK_MEMEQ(p, "\x01\x02\xff", 3);
    free(p);
    CHECK_EQ(hex_parse0x_alloc("0x012", 5, &p, &n, &err), ACC_EINVAL);
    CHECK_STREQ(err.msg, "expected 0x and an even number of hex digits, got 3");
    CHECK(p == NULL);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    RUN(keccak_of_empty_is_ethereums_not_sha3);
    RUN(keccak_published_vectors);
    RUN(keccak_block_boundaries);
    RUN(keccak_million_a);
    RUN(keccak_streaming_equals_one_shot_at_every_split);
    RUN(keccak_x4_equals_scalar_on_every_path);
    RUN(hex_round_trips_and_names_the_problem);
    return check_finish("keccak");
}
