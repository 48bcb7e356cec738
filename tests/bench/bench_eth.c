/*
 * bench_eth.c: keccak-256 throughput beside Nettle's SHA3-256; signatures and recoveries per second
 * beside raw libsecp256k1 calls; a 1M-value Merkle tree with all its proofs. Each pair is measured
 * in alternating rounds in the same run and the best round is kept, so a busy machine skews both
 * sides alike. Run with `zig build bench -Doptimize=ReleaseFast`.
 */
#include <nettle/sha3.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "meters/eth/merkle.h"
#include "tests/util.h"

static volatile uint8_t sink;

#define BUF (1u << 20)
#define ROUNDS 5

static double keccak_mbs(const uint8_t *buf, int reps) {
    uint8_t d[32];
    double t = test_now_s();
    for (int i = 0; i < reps; i++) keccak256(buf, BUF, d);
    t = test_now_s() - t;
    sink ^= d[0];
    return (double)BUF * reps / t / 1e6;
}

static double sha3_mbs(const uint8_t *buf, int reps) {
    uint8_t d[32];
    struct sha3_256_ctx c;
    double t = test_now_s();
    for (int i = 0; i < reps; i++) {
        sha3_256_init(&c);
        sha3_256_update(&c, BUF, buf);
        sha3_256_digest(&c, 32, d);
    }
    t = test_now_s() - t;
    sink ^= d[0];
    return (double)BUF * reps / t / 1e6;
}

/* Millions of 64-byte hashes per second (the Merkle tree's inner nodes), one at a time and four-way. */
static double small_scalar(void) {
    uint8_t b[64] = {1};
    double t = test_now_s();
    for (int i = 0; i < 400000; i++) keccak256(b, 64, b);
    t = test_now_s() - t;
    sink ^= b[0];
    return 0.4 / t;
}

static double small_x4(void) {
    uint8_t b[4][64] = {{1}, {2}, {3}, {4}};
    const uint8_t *in[4] = {b[0], b[1], b[2], b[3]};
    uint8_t *out[4] = {b[0], b[1], b[2], b[3]};
    double t = test_now_s();
    for (int i = 0; i < 100000; i++) keccak256_x4(in, 64, out);
    t = test_now_s() - t;
    sink ^= b[0][0];
    return 0.4 / t;
}

#define NSIG 2000

static double ours_sign(eth_key *k, uint8_t (*digests)[32]) {
    uint8_t sig[65];
    double t = test_now_s();
    for (int i = 0; i < NSIG; i++) eth_key_sign_digest(k, digests[i], sig, NULL);
    t = test_now_s() - t;
    sink ^= sig[0];
    return NSIG / t;
}

static double raw_sign(const secp256k1_context *c, const uint8_t *secret, uint8_t (*digests)[32]) {
    secp256k1_ecdsa_recoverable_signature rs;
    uint8_t sig[64];
    int recid;
    double t = test_now_s();
    for (int i = 0; i < NSIG; i++) {
        if (!secp256k1_ecdsa_sign_recoverable(c, &rs, digests[i], secret, NULL, NULL)) sink++;
        secp256k1_ecdsa_recoverable_signature_serialize_compact(c, sig, &recid, &rs);
    }
    t = test_now_s() - t;
    sink ^= sig[0];
    return NSIG / t;
}

static double ours_recover(uint8_t (*digests)[32], uint8_t (*sigs)[65]) {
    uint8_t a[20];
    double t = test_now_s();
    for (int i = 0; i < NSIG; i++) eth_recover(digests[i], sigs[i], a, NULL);
    t = test_now_s() - t;
    sink ^= a[0];
    return NSIG / t;
}

static double raw_recover(const secp256k1_context *c, uint8_t (*digests)[32], uint8_t (*sigs)[65]) {
    secp256k1_ecdsa_recoverable_signature rs;
    secp256k1_pubkey pk;
    uint8_t ser[65];
    size_t n = 65;
    double t = test_now_s();
    for (int i = 0; i < NSIG; i++) {
        if (!secp256k1_ecdsa_recoverable_signature_parse_compact(c, &rs, sigs[i], sigs[i][64] - 27)) sink++;
        if (!secp256k1_ecdsa_recover(c, &pk, &rs, digests[i])) sink++;
        secp256k1_ec_pubkey_serialize(c, ser, &n, &pk, SECP256K1_EC_UNCOMPRESSED);
    }
    t = test_now_s() - t;
    sink ^= ser[1];
    return NSIG / t;
}

static double best(double a, double b) {
    return a > b ? a : b;
}

int main(void) {
    printf("accrue bench: keys, signatures and Merkle trees\n\n");
    uint8_t *buf = malloc(BUF);
    for (size_t i = 0; i < BUF; i++) buf[i] = (uint8_t)(i * 31 + 7);
    double k = 0, s = 0;
    for (int r = 0; r < ROUNDS; r++) {
        k = best(k, keccak_mbs(buf, 40));
        s = best(s, sha3_mbs(buf, 40));
    }
    printf("%-44s %10.1f MB/s\n", "keccak-256 (ours, 1 MiB buffers)", k);
    printf("%-44s %10.1f MB/s   (ours / nettle = %.2f)\n", "SHA3-256 (nettle, 1 MiB buffers)", s, k / s);
    double h1 = 0, h4 = 0;
    for (int r = 0; r < ROUNDS; r++) {
        h1 = best(h1, small_scalar());
        h4 = best(h4, small_x4());
    }
    int level = keccak256_x4_vectorised();
    printf("%-44s %10.2f M/s\n", "keccak-256 of 64 bytes, one at a time", h1);
    printf("%-44s %10.2f M/s   (%s, %.1fx)\n", "keccak-256 of 64 bytes, four-way", h4,
           level == 2 ? "AVX-512VL" : level == 1 ? "AVX2" : "scalar", h4 / h1);

    /* Signatures: the same secret and digests on both sides. Raw calls use a context of their own,
     * randomised like ours. */
    uint8_t secret[32], (*digests)[32] = malloc(NSIG * 32), (*sigs)[65] = malloc(NSIG * 65);
    eth_key *key = NULL;
    for (int i = 0; i < 32; i++) secret[i] = (uint8_t)(i + 1);
    eth_key_from_secret(&key, secret, NULL);
    for (int i = 0; i < NSIG; i++) {
        keccak256(&i, sizeof i, digests[i]);
        eth_key_sign_digest(key, digests[i], sigs[i], NULL);
    }
    secp256k1_context *c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    uint8_t seed[32] = {9};
    if (!secp256k1_context_randomize(c, seed)) fprintf(stderr, "randomize failed\n");
    double os = 0, rsg = 0, orc = 0, rrc = 0;
    for (int r = 0; r < ROUNDS; r++) {
        os = best(os, ours_sign(key, digests));
        rsg = best(rsg, raw_sign(c, secret, digests));
        orc = best(orc, ours_recover(digests, sigs));
        rrc = best(rrc, raw_recover(c, digests, sigs));
    }
    printf("%-44s %10.0f /s\n", "sign (eth_key_sign_digest)", os);
    printf("%-44s %10.0f /s   (ours / raw = %.3f)\n", "sign (raw secp256k1_ecdsa_sign_recoverable)", rsg, os / rsg);
    printf("%-44s %10.0f /s\n", "recover to address (eth_recover)", orc);
    printf("%-44s %10.0f /s   (ours / raw = %.3f)\n", "recover (raw secp256k1_ecdsa_recover)", rrc, orc / rrc);
    eth_key_free(key);
    secp256k1_context_destroy(c);

    /* A tree of 1M values and every proof. */
    size_t n = 1000000;
    merkle_value *v = malloc(n * sizeof *v);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < 20; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v[i].address[j] = (uint8_t)x;
        }
        memset(v[i].amount, 0, 32);
        for (int j = 24; j < 32; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v[i].amount[j] = (uint8_t)x;
        }
    }
    double best_build = 1e9, best_total = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = test_now_s();
        merkle_tree *t;
        if (merkle_build(v, n, &t, NULL) != 0) {
            fprintf(stderr, "merkle_build failed\n");
            return 1;
        }
        double t1 = test_now_s();
        uint8_t(*proof)[32] = malloc((merkle_max_proof_len(t) + 1) * 32);
        size_t hashes = 0;
        for (size_t i = 0; i < n; i++) {
            size_t len = merkle_proof(t, i, proof);
            hashes += len;
            sink ^= proof[0][0];
        }
        double t2 = test_now_s();
        if (t1 - t0 < best_build) best_build = t1 - t0;
        if (t2 - t0 < best_total) best_total = t2 - t0;
        if (r == 0) printf("%-44s %10zu hashes in all proofs\n", "merkle: 1M values", hashes);
        free(proof);
        merkle_free(t);
    }
    printf("%-44s %10.3f s\n", "merkle: build 1M-value tree", best_build);
    printf("%-44s %10.3f s   (target <= 1 s)\n", "merkle: build + all 1M proofs", best_total);
    /* A batch-sized tree, built again and again as a server would: past 8192 leaves its levels go
     * to the pool's threads, made once per process, not once per level. */
    double best_small = 1e9;
    for (int r = 0; r < 200; r++) {
        double t0 = test_now_s();
        merkle_tree *t;
        if (merkle_build(v, 20000, &t, NULL) != 0) return 1;
        double dt = test_now_s() - t0;
        if (dt < best_small) best_small = dt;
        merkle_free(t);
    }
    printf("%-44s %10.3f ms\n", "merkle: build 20,000-value tree (best of 200)", best_small * 1e3);
    free(v);
    free(buf);
    free(digests);
    free(sigs);
    return 0;
}
