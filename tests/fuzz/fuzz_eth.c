/*
 * fuzz_eth.c: a mutation fuzzer for the two parsers that take untrusted JSON in meters/: EIP-712
 * typed data (eip712_parse) and Merkle VALUES.json (merkle_values_parse_json), plus the address,
 * decimal and hex parsers under them. Built by tools/fuzz_eth.sh with gcc
 * -fsanitize=address,undefined; a fixed seed and iteration count, so a run is repeatable and ends
 * by itself. Any sanitizer report aborts the run with a non-zero status.
 *
 * usage: fuzz_eth [ITERATIONS] [SEED]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/eip712.h"
#include "meters/eth/hex.h"
#include "meters/eth/keys.h"
#include "meters/eth/merkle.h"
#include "meters/eth/uint256.h"
#include "tests/util.h"

static const char *seeds_typed[] = {
    "{\"types\":{\"EIP712Domain\":[{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"version\",\"type\":\"string\"},"
    "{\"name\":\"chainId\",\"type\":\"uint256\"},{\"name\":\"verifyingContract\",\"type\":\"address\"}],"
    "\"Person\":[{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"wallet\",\"type\":\"address\"}],"
    "\"Mail\":[{\"name\":\"from\",\"type\":\"Person\"},{\"name\":\"to\",\"type\":\"Person\"},{\"name\":\"contents\","
    "\"type\":\"string\"}]},\"primaryType\":\"Mail\",\"domain\":{\"name\":\"Ether Mail\",\"version\":\"1\",\"chainId\":1,"
    "\"verifyingContract\":\"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC\"},\"message\":{\"from\":{\"name\":\"Cow\","
    "\"wallet\":\"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826\"},\"to\":{\"name\":\"Bob\",\"wallet\":"
    "\"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB\"},\"contents\":\"Hello, Bob!\"}}",
    "{\"types\":{\"Node\":[{\"name\":\"label\",\"type\":\"string\"},{\"name\":\"kids\",\"type\":\"Node[]\"},"
    "{\"name\":\"grid\",\"type\":\"int16[2][]\"},{\"name\":\"b\",\"type\":\"bytes\"},{\"name\":\"b4\",\"type\":\"bytes4\"},"
    "{\"name\":\"ok\",\"type\":\"bool\"}]},\"primaryType\":\"Node\",\"domain\":{\"chainId\":\"0x1\",\"salt\":"
    "\"0x0000000000000000000000000000000000000000000000000000000000000001\"},\"message\":{\"label\":\"r\",\"kids\":[{\"label\":"
    "\"a\",\"kids\":[],\"grid\":[],\"b\":\"0x\",\"b4\":\"0x01020304\",\"ok\":false}],\"grid\":[[-1,2],[32767,-32768]],"
    "\"b\":\"0xdeadbeef\",\"b4\":\"0xffffffff\",\"ok\":true}}",
    "{\"types\":{\"A\":[{\"name\":\"b\",\"type\":\"B[2]\"},{\"name\":\"u\",\"type\":\"uint8[]\"}],\"B\":[{\"name\":\"a\","
    "\"type\":\"A[]\"},{\"name\":\"x\",\"type\":\"int256\"}]},\"primaryType\":\"A\",\"domain\":{},\"message\":{\"b\":"
    "[{\"a\":[],\"x\":\"-57896044618658097711785492504343953926634992332820282019728792003956564819968\"},{\"a\":[{\"b\":"
    "[{\"a\":[],\"x\":0},{\"a\":[],\"x\":1}],\"u\":[255]}],\"x\":\"0x7f\"}],\"u\":[0,1,2]}}",
};

static const char *seeds_values[] = {
    "[[\"0x1111111111111111111111111111111111111111\",\"5000000000000000000\"],"
    "[\"0x2222222222222222222222222222222222222222\",\"2500000000000000000\"]]",
    "[[\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\",\"115792089237316195423570985008687907853269984665640564039457584007913129639935\"],"
    "[\"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359\",0],[\"0xde709f2102306220921060314715629080e2fb77\",\"1\"]]",
};

static const char *tokens[] = {
    "[]", "[2]", "[0]", "[", "]", "{", "}", "\"", ",", ":", "null", "true", "false", "-", "0x", "0X", "-0x80",
    "uint256", "int8", "bytes32", "bytes", "string", "address", "bool", "uint", "bytes0", "bytes33", "uint7",
    "\"EIP712Domain\"", "\"primaryType\"", "\"types\"", "\"message\"", "\"domain\"", "\"name\"", "\"type\"",
    "99999999999999999999999999999999999999999999999999999999999999999999999999999999", "1e400", "-0", "0.5",
    "\\u0000", "\\ud800", "\xff", "\xc3\xa9", "[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]", "Mail[]", "Person[3][]",
    "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826", "9223372036854775807", "-9223372036854775808", "18446744073709551616",
};

static void check_values(const char *buf, size_t len) {
    merkle_value *v;
    size_t n;
    acc_err err = {0};
    if (merkle_values_parse_json(buf, len, &v, &n, &err) != 0) {
        if (strlen(err.msg) == 0 || err.code == ACC_OK) abort(); /* every refusal has a message */
        return;
    }
    merkle_tree *t;
    if (merkle_build(v, n, &t, &err) == 0) {
        uint8_t root[32], leaf[32], (*proof)[32] = malloc((merkle_max_proof_len(t) + 1) * 32);
        merkle_root(t, root);
        for (size_t i = 0; i < n; i++) {
            size_t plen = merkle_proof(t, i, proof);
            merkle_leaf_hash(&v[i], leaf);
            if (merkle_verify(root, leaf, (const uint8_t(*)[32])proof, plen, NULL) != 0) abort(); /* invariant */
        }
        free(proof);
        merkle_free(t);
    }
    free(v);
}

static void check_typed(const char *buf, size_t len) {
    eip712_doc *d;
    acc_err err = {0};
    if (eip712_parse(buf, len, &d, &err) != 0) {
        if (strlen(err.msg) == 0 || err.code == ACC_OK) abort();
        return;
    }
    uint8_t h[32];
    eip712_digest(d, h);
    char *enc = eip712_encode_type(d, "Mail");
    free(enc);
    eip712_free(d);
}

static void check_small_parsers(const char *buf, size_t len) {
    uint8_t out[32], *p;
    size_t n;
    acc_err err = {0};
    size_t k = len < 100 ? len : 100;
    (void)uint256_from_decimal(buf, k, out, &err);
    (void)uint256_from_hex(buf, k, out, &err);
    (void)eth_address_parse(buf, k < 42 ? k : 42, out, &err);
    if (hex_parse0x_alloc(buf, k, &p, &n, &err) == ACC_OK) free(p);
    uint8_t fixed[32];
    (void)hex_parse0x(buf, k, fixed, k > 2 ? (k - 2) / 2 % 33 : 0, &err);
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    test_rng_state = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x5eed1234abcdull;
    if (test_rng_state == 0) test_rng_state = 1;
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    size_t n_typed = sizeof seeds_typed / sizeof seeds_typed[0], n_vals = sizeof seeds_values / sizeof seeds_values[0];
    /* the seeds themselves must parse */
    for (size_t i = 0; i < n_typed; i++) {
        acc_err err = {0};
        uint8_t h[32];
        if (eip712_digest_json(seeds_typed[i], strlen(seeds_typed[i]), h, &err) != 0) {
            fprintf(stderr, "seed %zu does not parse: %s\n", i, err.msg);
            return 1;
        }
    }
    long typed_ok = 0, values_ok = 0;
    for (long it = 0; it < iters; it++) {
        int typed = (test_rand() % 3) != 0;
        const char *seed = typed ? seeds_typed[test_rand() % n_typed] : seeds_values[test_rand() % n_vals];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        /* stack a few rounds of mutation so deeper changes are reached */
        int rounds = 1 + (int)(test_rand() % 3);
        for (int r = 0; r < rounds; r++) len = test_mutate(buf, len, cap - 1, tokens, sizeof tokens / sizeof *tokens, 6);
        buf[len] = '\0';
        if (typed) {
            check_typed(buf, len);
            eip712_doc *d;
            if (eip712_parse(buf, len, &d, NULL) == 0) typed_ok++, eip712_free(d);
        } else {
            check_values(buf, len);
            merkle_value *v;
            size_t n;
            if (merkle_values_parse_json(buf, len, &v, &n, NULL) == 0) values_ok++, free(v);
        }
        check_small_parsers(buf, len);
        /* not NUL-terminated input: an exact-size heap copy, so ASan sees any read past the end */
        char *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        if (typed) check_typed(exact, len); else check_values(exact, len);
        free(exact);
    }
    printf("fuzz_eth: %ld iterations, %ld typed-data inputs and %ld value sets still valid after mutation, no "
           "sanitizer reports\n", iters, typed_ok, values_ok);
    free(buf);
    return 0;
}
