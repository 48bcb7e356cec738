/*
 * test_merkle.c: OpenZeppelin StandardMerkleTree: OZ's own test tree (leaves "a".."f", leaf
 * encoding ["string"]) node for node, the README's [address, uint256] example root, proofs that
 * verify for every value of random trees, tampering that fails, the values and uint256 parsers,
 * and `accrue merkle root|proof|verify`.
 */
#include <pthread.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "meters/eth/merkle.h"
#include "meters/eth/uint256.h"
#include "tests/check.h"
#include "tests/eth_test_util.h"

/* keccak256(keccak256(abi.encode(string s))): head offset 0x20, length, data padded to 32. */
static void string_leaf(const char *s, uint8_t out[32]) {
    uint8_t enc[128] = {0}, inner[32];
    size_t n = strlen(s);
    enc[31] = 0x20;
    enc[63] = (uint8_t)n;
    memcpy(enc + 64, s, n);
    keccak256(enc, 64 + ((n + 31) / 32) * 32, inner);
    keccak256(inner, 32, out);
}

/* OZ merkle-tree test/dumps/standard-v1.sorted.1_0_6.json: StandardMerkleTree.of("abcdef" as
 * [c], ["string"]) -- the whole array and each value's treeIndex. */
static void openzeppelin_own_test_tree(void) {
    static const char *want[11] = {
        "0x6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8",
        "0x52426e0f1f65ff7e209a13b8c29cffe82e3acaf3dad0a9b9088f3b9a61a929c3",
        "0xfd3cf45654e88d1cc5d663578c82c76f4b5e3826bacaa1216441443504538f51",
        "0x8076923e76cf01a7c048400a2304c9a9c23bbbdac3a98ea3946340fdafbba34f",
        "0x965b92c6cf08303cc4feb7f3e0819c436c2cec17c6f0688a6af139c9a368707c",
        "0xeba909cf4bb90c6922771d7f126ad0fd11dfde93f3937a196274e1ac20fd2f5b",
        "0xc62a8cfa41edc0ef6f6ae27a2985b7d39c7fea770787d7e104696c6e81f64848",
        "0x9cf5a63718145ba968a01c1d557020181c5b252f665cf7386d370eddb176517b",
        "0x9c15a6a0eaeed500fd9eed4cbeab71f797cefcc67bfd46683e4d2e6ff7f06d1c",
        "0x9a4f64e953595df82d1b4f570d34c4f4f0cfaf729a61e9d60e83e579e1aa283e",
        "0x19ba6c6333e0e9a15bf67523e0676e2f23eb8e574092552d5e888c64a4bb3681",
    };
    static const size_t want_index[6] = {8, 10, 7, 5, 9, 6};
    uint8_t leaves[6][32];
    const char *names[6] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) string_leaf(names[i], leaves[i]);
    merkle_tree *t;
    acc_err err = {0};
    CHECK(merkle_build_from_leaves((const uint8_t(*)[32])leaves, 6, &t, &err) == 0);
    if (!t) return;
    for (int i = 0; i < 11; i++) CHECK_MSG(test_hex_eq(merkle_node(t, (size_t)i), 32, want[i]), "node %d", i);
    for (int i = 0; i < 6; i++) CHECK_MSG(merkle_tree_index(t, (size_t)i) == want_index[i], "treeIndex of %s", names[i]);
    uint8_t proof[8][32], root[32];
    merkle_root(t, root);
    for (int i = 0; i < 6; i++) {
        size_t n = merkle_proof(t, (size_t)i, proof);
        CHECK(merkle_verify(root, leaves[i], (const uint8_t(*)[32])proof, n, NULL) == 0);
    }
    merkle_free(t);
}

/* The README's [address, uint256] example; the root is the one OZ's docs print. */
static void readme_address_amount_example(void) {
    merkle_value v[2];
    acc_err err = {0};
    CHECK(eth_address_parse("0x1111111111111111111111111111111111111111", 42, v[0].address, &err) == 0);
    CHECK(eth_address_parse("0x2222222222222222222222222222222222222222", 42, v[1].address, &err) == 0);
    CHECK(uint256_from_decimal("5000000000000000000", 19, v[0].amount, NULL) == 0);
    CHECK(uint256_from_decimal("2500000000000000000", 19, v[1].amount, NULL) == 0);
    merkle_tree *t;
    CHECK(merkle_build(v, 2, &t, &err) == 0);
    uint8_t root[32], proof[4][32];
    merkle_root(t, root);
    CHECK(test_hex_eq(root, 32, "0xd4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"));
    CHECK(merkle_proof(t, 0, proof) == 1 && test_hex_eq(proof[0], 32, "0xb92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc"));
    CHECK(merkle_proof(t, 1, proof) == 1 && test_hex_eq(proof[0], 32, "0xeb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283"));
    merkle_free(t);
}

static void single_value_tree_is_its_leaf(void) {
    merkle_value v;
    test_rand_bytes(v.address, 20);
    test_rand_bytes(v.amount, 32);
    merkle_tree *t;
    uint8_t root[32], leaf[32], proof[1][32];
    CHECK(merkle_build(&v, 1, &t, NULL) == 0);
    merkle_root(t, root);
    merkle_leaf_hash(&v, leaf);
    CHECK(memcmp(root, leaf, 32) == 0);
    CHECK(merkle_proof(t, 0, proof) == 0);
    CHECK(merkle_verify(root, leaf, (const uint8_t(*)[32])proof, 0, NULL) == 0);
    merkle_free(t);
    acc_err err = {0};
    CHECK(merkle_build(&v, 0, &t, &err) == ACC_EINVAL);
}

static void every_proof_verifies_and_tampering_fails(void) {
    int bad = 0;
    for (size_t n = 1; n <= 300 && bad < 5; n += 1 + n / 8) {
        merkle_value *v = malloc(n * sizeof *v);
        for (size_t i = 0; i < n; i++) {
            test_rand_bytes(v[i].address, 20);
            memset(v[i].amount, 0, 32);
            test_rand_bytes(v[i].amount + 24, 8);
        }
        merkle_tree *t;
        CHECK(merkle_build(v, n, &t, NULL) == 0);
        uint8_t root[32], leaf[32], proof[32][32];
        merkle_root(t, root);
        for (size_t i = 0; i < n && bad < 5; i++) {
            size_t len = merkle_proof(t, i, proof);
            merkle_leaf_hash(&v[i], leaf);
            if (merkle_verify(root, leaf, (const uint8_t(*)[32])proof, len, NULL) != 0) {
                CHECK_MSG(0, "n=%zu value %zu: proof fails", n, i);
                bad++;
            }
            if (len > 0) {
                /* a flipped bit anywhere in the proof */
                size_t j = test_rand() % len, b = test_rand() % 32;
                proof[j][b] ^= (uint8_t)(1u << (test_rand() % 8));
                if (merkle_verify(root, leaf, (const uint8_t(*)[32])proof, len, NULL) == 0) { bad++; CHECK_MSG(0, "tampered proof passes"); }
                len = merkle_proof(t, i, proof);
                if (merkle_verify(root, leaf, (const uint8_t(*)[32])proof, len - 1, NULL) == 0) { bad++; CHECK_MSG(0, "short proof passes"); }
            }
            merkle_value w = v[i];
            w.amount[31] ^= 1;
            merkle_leaf_hash(&w, leaf);
            if (merkle_verify(root, leaf, (const uint8_t(*)[32])proof, len, NULL) == 0) { bad++; CHECK_MSG(0, "other amount passes"); }
            w = v[i];
            w.address[test_rand() % 20] ^= 0x10;
            merkle_leaf_hash(&w, leaf);
            if (merkle_verify(root, leaf, (const uint8_t(*)[32])proof, len, NULL) == 0) { bad++; CHECK_MSG(0, "other address passes"); }
            uint8_t root2[32];
            memcpy(root2, root, 32);
            root2[test_rand() % 32] ^= 4;
            merkle_leaf_hash(&v[i], leaf);
            if (merkle_verify(root2, leaf, (const uint8_t(*)[32])proof, len, NULL) == 0) { bad++; CHECK_MSG(0, "other root passes"); }
        }
        /* an inner node is not a leaf: the double hash keeps a 64-byte node from passing as a value */
        if (n >= 3) {
            uint8_t node_as_value[64];
            memcpy(node_as_value, merkle_node(t, 1), 32);
            memcpy(node_as_value + 32, merkle_node(t, 2), 32);
            merkle_value fake;
            memcpy(fake.address, node_as_value + 12, 20);
            memcpy(fake.amount, node_as_value + 32, 32);
            merkle_leaf_hash(&fake, leaf);
            CHECK(memcmp(leaf, root, 32) != 0);
        }
        merkle_free(t);
        free(v);
    }
}

static void uint256_decimal_parser_is_exact(void) {
    uint8_t v[32];
    char back[80];
    const char *max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    CHECK(uint256_from_decimal(max, strlen(max), v, NULL) == 0);
    for (int i = 0; i < 32; i++) CHECK(v[i] == 0xff);
    uint256_to_decimal(v, back);
    CHECK_STREQ(back, max);
    const char *over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
    acc_err err = {0};
    CHECK_EQ(uint256_from_decimal(over, strlen(over), v, &err), ACC_EINVAL);
    CHECK_STREQ(err.msg, "larger than 2^256-1");
    CHECK_EQ(uint256_from_decimal("12x4", 4, v, &err), ACC_EINVAL);
    CHECK_STREQ(err.msg, "not a decimal number of digits only (character 3)");
    CHECK_EQ(uint256_from_hex("0x", 2, v, &err), ACC_EINVAL);
    CHECK_STREQ(err.msg, "expected 0x and 1 to 64 hex digits");
    CHECK_EQ(uint256_from_hex("0x1ff", 5, v, &err), ACC_OK);
    CHECK(v[30] == 1 && v[31] == 0xff && uint256_bit_length(v) == 9);
    CHECK(uint256_from_decimal("1157920892373161954235709850086879078532699846656405640394575840079131296399350", 79, v, NULL) != 0);
    static const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1a", "0x10", "1.0", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_MSG(uint256_from_decimal(bad[i], strlen(bad[i]), v, NULL) != 0, "'%s'", bad[i]);
    CHECK(uint256_from_decimal("0000", 4, v, NULL) == 0);
    uint256_to_decimal(v, back);
    CHECK_STREQ(back, "0");
    CHECK(uint256_from_decimal("18446744073709551616", 20, v, NULL) == 0); /* 2^64 */
    CHECK(v[23] == 1 && uint256_bit_length(v) == 65);
    for (int i = 0; i < 200; i++) {
        uint8_t r[32], r2[32];
        test_rand_bytes(r, 32);
        memset(r, 0, test_rand() % 32);
        uint256_to_decimal(r, back);
        CHECK(uint256_from_decimal(back, strlen(back), r2, NULL) == 0 && memcmp(r, r2, 32) == 0);
    }
}

static void values_parser_names_the_entry(void) {
    static const struct { const char *json, *want; } cases[] = {
        {"{}", "expected a JSON array"},
        {"[]", "the array is empty"},
        {"[[\"0x1111111111111111111111111111111111111111\",\"1\"],[1,\"2\"]]", "values[1][0]: the address must be a string"},
        {"[[\"0x1111111111111111111111111111111111111111\"]]", "values[0]: expected an [address, amount] pair"},
        {"[[\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD\",\"1\"]]", "values[0][0]: address"},
        {"[[\"0x1111111111111111111111111111111111111111\",\"-1\"]]", "values[0][1]: amount: not a decimal number of digits only (character 1)"},
        {"[[\"0x1111111111111111111111111111111111111111\",-1]]", "values[0][1]: the amount must be a non-negative"},
        {"[[\"0x1111111111111111111111111111111111111111\",1.5]]", "values[0][1]"},
        {"[[\"0x1111111111111111111111111111111111111111\",\"115792089237316195423570985008687907853269984665640564039457584007913129639936\"]]",
         "values[0][1]: amount: larger than 2^256-1"},
        {"[[\"0x11\",\"1\"]", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        merkle_value *v = NULL;
        size_t n;
        acc_err err = {0};
        int rc = merkle_values_parse_json(cases[i].json, strlen(cases[i].json), &v, &n, &err);
        CHECK_MSG(rc == ACC_EINVAL && v == NULL && strstr(err.msg, cases[i].want), "case %zu: \"%s\"", i, err.msg);
    }
    const char *ok = "[[\"0x1111111111111111111111111111111111111111\",\"5000000000000000000\"],"
                     "[\"0x2222222222222222222222222222222222222222\",2500000000000000000]]";
    merkle_value *v;
    size_t n;
    CHECK(merkle_values_parse_json(ok, strlen(ok), &v, &n, NULL) == 0 && n == 2);
    free(v);
}

static void cli_root_proof_verify(void) {
    char dir[256], cmd[4096], out[4096], path[512];
    const char *bin = test_accrue_bin();
    if (test_scratch_dir(dir, sizeof dir, "merkle") != 0) {
        CHECK(!"a scratch directory");
        return;
    }
    snprintf(path, sizeof path, "%s/values.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(0);
        return;
    }
    fprintf(f, "[[\"0x1111111111111111111111111111111111111111\",\"5000000000000000000\"],"
               "[\"0x2222222222222222222222222222222222222222\",\"2500000000000000000\"]]\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s merkle root %s", bin, path);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    test_chomp(out);
    CHECK_STREQ(out, "0xd4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77");
    snprintf(cmd, sizeof cmd, "%s merkle proof %s 0x2222222222222222222222222222222222222222", bin, path);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    test_chomp(out);
    CHECK_STREQ(out, "0xeb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283");
    snprintf(cmd, sizeof cmd, "%s merkle proof %s 0x2222222222222222222222222222222222222222 --json", bin, path);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, "\"amount\":\"2500000000000000000\"") && strstr(out, "\"proof\":[\"0xeb02c421"));
    snprintf(cmd, sizeof cmd,
             "%s merkle verify --root 0xd4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77 --address "
             "0x2222222222222222222222222222222222222222 --amount 2500000000000000000 --proof "
             "0xeb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283",
             bin);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd,
             "%s merkle verify --root 0xd4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77 --address "
             "0x2222222222222222222222222222222222222222 --amount 2500000000000000001 --proof "
             "0xeb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283 2>/dev/null",
             bin);
    CHECK(test_run(cmd, out, sizeof out) == 1);
    snprintf(cmd, sizeof cmd, "%s merkle proof %s 0x3333333333333333333333333333333333333333 2>/dev/null", bin, path);
    CHECK(test_run(cmd, out, sizeof out) == 1);
    snprintf(cmd, sizeof cmd, "%s merkle verify --root 0x12 --address 0x2222222222222222222222222222222222222222 --amount 1 2>/dev/null", bin);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "echo '[[\"0x1111111111111111111111111111111111111111\",\"x\"]]' > %s/bad.json && %s merkle root %s/bad.json 2>&1",
             dir, bin, dir);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    CHECK_MSG(strstr(out, "values[0][1]") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s merkle frob 2>/dev/null", bin);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    /* a larger set through the binary: every proof it prints verifies through the binary */
    snprintf(path, sizeof path, "%s/big.json", dir);
    f = fopen(path, "w");
    merkle_value v[40];
    if (f) {
        fputc('[', f);
        for (int i = 0; i < 40; i++) {
            char a[43], dec[80];
            test_rand_bytes(v[i].address, 20);
            memset(v[i].amount, 0, 32);
            test_rand_bytes(v[i].amount + 10, 22);
            eth_address_to_text(v[i].address, a);
            uint256_to_decimal(v[i].amount, dec);
            fprintf(f, "%s[\"%s\",\"%s\"]", i ? "," : "", a, dec);
        }
        fputs("]\n", f);
        fclose(f);
    }
    char root[80];
    snprintf(cmd, sizeof cmd, "%s merkle root %s", bin, path);
    CHECK(test_run(cmd, root, sizeof root) == 0);
    test_chomp(root);
    for (int i = 0; i < 40; i += 7) {
        char a[43], dec[80], proof[2048];
        eth_address_to_text(v[i].address, a);
        uint256_to_decimal(v[i].amount, dec);
        snprintf(cmd, sizeof cmd, "%s merkle proof %s %s", bin, path, a);
        CHECK(test_run(cmd, proof, sizeof proof) == 0);
        test_chomp(proof);
        snprintf(cmd, sizeof cmd, "%s merkle verify --root %s --address %s --amount %s --proof %s", bin, root, a, dec, proof);
        CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "value %d", i);
    }
    test_remove_dir(dir);
}

static int descending(const void *a, const void *b) {
    return memcmp(b, a, 32);
}

/* Past 8192 nodes a level is hashed by the pool's threads: the tree must still be the plain
 * layout, written here the slow, obvious way. */
#define LARGE 17011
static merkle_value large_values[LARGE];

static void large_tree_equals_the_plain_layout(void) {
    for (size_t i = 0; i < LARGE; i++) {
        test_rand_bytes(large_values[i].address, 20);
        memset(large_values[i].amount, 0, 32);
        test_rand_bytes(large_values[i].amount + 20, 12);
    }
    large_values[7] = large_values[3]; /* a repeated entry is two leaves */
    merkle_tree *t;
    acc_err err = {0};
    CHECK_EQ(merkle_build(large_values, LARGE, &t, &err), ACC_OK);
    if (!t) return;
    uint8_t(*nodes)[32] = malloc((2 * LARGE - 1) * sizeof *nodes), (*leaves)[32] = malloc(LARGE * sizeof *leaves);
    for (size_t i = 0; i < LARGE; i++) merkle_leaf_hash(&large_values[i], leaves[i]);
    memcpy(nodes + LARGE - 1, leaves, LARGE * sizeof *leaves);
    qsort(nodes + LARGE - 1, LARGE, 32, descending);
    for (size_t i = LARGE - 1; i-- > 0;) merkle_hash_pair(nodes[2 * i + 1], nodes[2 * i + 2], nodes[i]);
    size_t differ = 0;
    for (size_t i = 0; i < 2 * LARGE - 1; i++) differ += memcmp(merkle_node(t, i), nodes[i], 32) != 0;
    CHECK_EQ(differ, 0);
    CHECK_MEMEQ(merkle_node(t, 0), nodes[0], 32);
    for (size_t i = 0; i < LARGE; i += 97) CHECK_MEMEQ(merkle_node(t, merkle_tree_index(t, i)), leaves[i], 32);
    merkle_tree *t2;
    CHECK_EQ(merkle_build_from_leaves((const uint8_t(*)[32])leaves, LARGE, &t2, &err), ACC_OK);
    if (t2) CHECK_MEMEQ(merkle_node(t2, 0), nodes[0], 32);
    merkle_free(t2);
    merkle_free(t);
    free(nodes);
    free(leaves);
}

/* Settlement builds trees from a server's threads: builds at the same time share the pool (or run
 * by themselves when it is busy) and all get the same tree. */
static void *build_root(void *out) {
    merkle_tree *t;
    for (int i = 0; i < 2; i++) {
        if (merkle_build(large_values, LARGE, &t, NULL) != ACC_OK) return NULL;
        merkle_root(t, (uint8_t *)out + 32 * i);
        merkle_free(t);
    }
    return out;
}

static void concurrent_builds_agree(void) {
    merkle_tree *t;
    CHECK_EQ(merkle_build(large_values, LARGE, &t, NULL), ACC_OK);
    if (!t) return;
    uint8_t want[32], got[2][2 * 32];
    merkle_root(t, want);
    merkle_free(t);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK_EQ(pthread_create(&th[i], NULL, build_root, got[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *r = NULL;
        pthread_join(th[i], &r);
        CHECK(r == got[i]);
        for (int k = 0; k < 2; k++) CHECK_MEMEQ(got[i] + 32 * k, want, 32);
    }
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    RUN(openzeppelin_own_test_tree);
    RUN(readme_address_amount_example);
    RUN(single_value_tree_is_its_leaf);
    RUN(every_proof_verifies_and_tampering_fails);
    RUN(uint256_decimal_parser_is_exact);
    RUN(values_parser_names_the_entry);
    RUN(cli_root_proof_verify);
    RUN(large_tree_equals_the_plain_layout);
    RUN(concurrent_builds_agree);
    return check_finish("merkle");
}
