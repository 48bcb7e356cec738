/*
 * test_keys.c: keys, key files, EIP-55 addresses, recoverable signatures and EIP-191, through the
 * library and through the accrue binary (keygen, address, sign, recover).
 */
#include <fcntl.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "tests/check.h"
#include "tests/eth_test_util.h"

static const char *vector_secret = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
static char tmpdir[64];

static eth_key *key_from_hex(const char *hex) {
    uint8_t s[32];
    eth_key *k = NULL;
    if (hex_parse0x(hex, strlen(hex), s, 32, NULL) != ACC_OK) return NULL;
    eth_key_from_secret(&k, s, NULL);
    return k;
}

static void address_of_the_published_key(void) {
    eth_key *k = key_from_hex(vector_secret);
    CHECK(k != NULL);
    if (!k) return;
    uint8_t a[20];
    char t[ETH_ADDRESS_TEXT_SIZE];
    eth_key_address(k, a);
    eth_address_to_text(a, t);
    CHECK_STREQ(t, "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
    eth_key_free(k);
}

static void eip55_published_examples(void) {
    static const char *mixed[] = {
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        "0x52908400098527886E0F7030069857D2E4169EE7", "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77", "0x27b1fdb04752bbc536007a920d24acb045561c26",
    };
    for (size_t i = 0; i < sizeof mixed / sizeof mixed[0]; i++) {
        uint8_t a[20];
        acc_err err = {0};
        char t[ETH_ADDRESS_TEXT_SIZE];
        CHECK_MSG(eth_address_parse(mixed[i], 42, a, &err) == 0, "%s: %s", mixed[i], err.msg);
        eth_address_to_text(a, t);
        CHECK_STREQ(t, mixed[i]);
        /* all lower and all upper (after 0x) are accepted */
        char low[43], up[43];
        for (int j = 0; j < 43; j++) {
            char c = mixed[i][j];
            low[j] = (j >= 2 && c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
            up[j] = (j >= 2 && c >= 'a' && c <= 'f') ? (char)(c - 'a' + 'A') : c;
        }
        uint8_t b[20];
        CHECK(eth_address_parse(low, 42, b, &err) == 0 && memcmp(a, b, 20) == 0);
        CHECK(eth_address_parse(up, 42, b, &err) == 0 && memcmp(a, b, 20) == 0);
    }
    /* a mixed-case address with one letter's case flipped fails its checksum */
    char bad[] = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    bad[3] = 'A';
    uint8_t a[20];
    acc_err err = {0};
    CHECK(eth_address_parse(bad, 42, a, &err) == ACC_EINVAL);
    CHECK(strstr(err.msg, "checksum") != NULL);
    CHECK(eth_address_parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", 41, a, &err) == ACC_EINVAL);
    CHECK(eth_address_parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg", 42, a, &err) == ACC_EINVAL);
    CHECK(eth_address_parse("005aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", 42, a, &err) == ACC_EINVAL);
}

/* eth-account: Account.sign_message(encode_defunct(text="I♥SF"), key) for the published key. */
static void eip191_personal_message_vector(void) {
    eth_key *k = key_from_hex(vector_secret);
    const char *msg = "I\xe2\x99\xa5SF";
    uint8_t d[32], sig[65];
    eth_personal_digest(msg, strlen(msg), d);
    CHECK(test_hex_eq(d, 32, "0x1476abb745d423bf09273f1afd887d951181d25adc66c4834a70491911b7f750"));
    CHECK(eth_key_sign_digest(k, d, sig, NULL) == 0);
    CHECK(test_hex_eq(sig, 65, "0x87f6856afaa7684bc6ecccef96246c155da984e7889dbdda1ae59940bdab8e676cd3055bd38ac073cd5710e3"
                               "040f1ed08073ca026266caeb097213d52665c4c01b"));
    eth_key_free(k);
}

static void sign_and_recover_round_trips_and_tampering_fails(void) {
    int failures = 0;
    for (int round = 0; round < 200 && failures < 5; round++) {
        eth_key *k;
        acc_err err = {0};
        CHECK(eth_key_generate(&k, &err) == 0);
        uint8_t addr[20], msg[300], d[32], sig[65], sig2[65], got[20];
        eth_key_address(k, addr);
        size_t len = test_rand() % sizeof msg;
        test_rand_bytes(msg, len);
        eth_personal_digest(msg, len, d);
        CHECK(eth_key_sign_digest(k, d, sig, &err) == 0);
        CHECK(eth_key_sign_digest(k, d, sig2, &err) == 0);
        if (memcmp(sig, sig2, 65) != 0) { failures++; CHECK_MSG(0, "signing is not deterministic"); }
        if (sig[64] != 27 && sig[64] != 28) { failures++; CHECK_MSG(0, "v = %d", sig[64]); }
        if (eth_recover(d, sig, got, &err) != 0 || memcmp(got, addr, 20) != 0)
            { failures++; CHECK_MSG(0, "round %d: recovered another address", round); }
        if (eth_verify(d, sig, addr, &err) != 0) { failures++; CHECK_MSG(0, "verify: %s", err.msg); }
        /* v as 0/1 is the same signature */
        memcpy(sig2, sig, 65);
        sig2[64] -= 27;
        if (eth_verify(d, sig2, addr, &err) != 0) { failures++; CHECK_MSG(0, "v=0/1 refused: %s", err.msg); }
        /* every byte of the signature and of the digest, flipped, fails */
        for (int i = 0; i < 65; i++) {
            memcpy(sig2, sig, 65);
            sig2[i] ^= (uint8_t)(1 + test_rand() % 255);
            if (i == 64 && sig2[64] == sig[64] - 27) sig2[64] ^= 1; /* v 0/1 is an alias of 27/28: flip parity */
            if (eth_verify(d, sig2, addr, &err) == 0) { failures++; CHECK_MSG(0, "tampered sig byte %d passes", i); }
        }
        for (int i = 0; i < 32; i++) {
            uint8_t d2[32];
            memcpy(d2, d, 32);
            d2[i] ^= (uint8_t)(1 << (test_rand() % 8));
            if (eth_verify(d2, sig, addr, &err) == 0) { failures++; CHECK_MSG(0, "tampered digest byte %d passes", i); }
        }
        if (len > 0) {
            msg[test_rand() % len] ^= 1;
            uint8_t d3[32];
            eth_personal_digest(msg, len, d3);
            if (eth_verify(d3, sig, addr, &err) == 0) { failures++; CHECK_MSG(0, "tampered message passes"); }
        }
        eth_key_free(k);
    }
}

/* n - s with the other parity is the same point's other signature: valid ECDSA, refused as high-s. */
static void high_s_and_bad_v_are_refused(void) {
    static const uint8_t order[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                      0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
    eth_key *k = key_from_hex(vector_secret);
    uint8_t d[32], sig[65], hi[65], got[20];
    acc_err err = {0};
    keccak256("high s", 6, d);
    eth_key_sign_digest(k, d, sig, NULL);
    memcpy(hi, sig, 65);
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int v = order[i] - sig[32 + i] - borrow;
        borrow = v < 0;
        hi[32 + i] = (uint8_t)(v + (borrow ? 256 : 0));
    }
    hi[64] = sig[64] == 27 ? 28 : 27;
    CHECK(eth_recover(d, hi, got, &err) == ACC_EINVAL);
    CHECK(strstr(err.msg, "high-s") != NULL);
    for (int v = 0; v < 256; v++) {
        if (v == 0 || v == 1 || v == 27 || v == 28) continue;
        memcpy(hi, sig, 65);
        hi[64] = (uint8_t)v;
        if (eth_recover(d, hi, got, &err) != ACC_EINVAL) CHECK_MSG(0, "v=%d accepted", v);
    }
    memset(hi, 0, 65);
    hi[64] = 27;
    CHECK(eth_recover(d, hi, got, &err) != 0); /* r = s = 0 */
    eth_key_free(k);
}

static void key_file_mode_and_refusals(void) {
    char path[300];
    acc_err err = {0};
    snprintf(path, sizeof path, "%s/k1", tmpdir);
    eth_key *k = key_from_hex(vector_secret), *r = NULL;
    CHECK(eth_key_write_file(k, path, &err) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    FILE *f = fopen(path, "r");
    char content[100] = {0};
    if (f) {
        size_t n = fread(content, 1, sizeof content - 1, f);
        content[n] = '\0';
        fclose(f);
    }
    CHECK(strlen(content) == 67 && content[66] == '\n' && strncmp(content, vector_secret, 66) == 0);
    CHECK(eth_key_read_file(&r, path, &err) == 0);
    uint8_t a1[20], a2[20];
    eth_key_address(k, a1);
    if (r) eth_key_address(r, a2);
    CHECK(r && memcmp(a1, a2, 20) == 0);
    eth_key_free(r);
    /* never overwritten */
    CHECK_EQ(eth_key_write_file(k, path, &err), ACC_EEXIST);
    CHECK_CONTAINS(err.msg, "it already exists");
    /* group- or world-readable: refused, and the message has no secret in it */
    static const mode_t modes[] = {0640, 0604, 0660, 0644, 0640 | 0004};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        chmod(path, modes[i]);
        r = NULL;
        CHECK(eth_key_read_file(&r, path, &err) == ACC_EPERM && r == NULL);
        CHECK(strstr(err.msg, "readable by group or others") != NULL);
        CHECK(strstr(err.msg, "4c0883a6") == NULL);
    }
    chmod(path, 0620); /* not readable, but group access all the same: refused too */
    CHECK(eth_key_read_file(&r, path, &err) == ACC_EPERM && strstr(err.msg, "writable or executable") != NULL);
    chmod(path, 0600);
    /* malformed contents: refused without echoing them */
    static const char *bad[] = {"4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318\n",
                                "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f36231\n",
                                "0x0000000000000000000000000000000000000000000000000000000000000000\n",
                                "0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141\n", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p2[128];
        snprintf(p2, sizeof p2, "%s/bad%zu", tmpdir, i);
        int fd = open(p2, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            if (write(fd, bad[i], strlen(bad[i])) < 0) CHECK(0);
            close(fd);
        }
        r = NULL;
        CHECK_MSG(eth_key_read_file(&r, p2, &err) == ACC_EINVAL, "bad key %zu accepted", i);
        CHECK(strstr(err.msg, "4c0883a6") == NULL && strstr(err.msg, "ffffffff") == NULL);
        eth_key_free(r);
    }
    eth_key_free(k);
}

static void cli_keygen_address_sign_recover(void) {
    char cmd[1024], out[4096], key[128], addr[64];
    const char *bin = test_accrue_bin();
    snprintf(key, sizeof key, "%s/cli.key", tmpdir);
    snprintf(cmd, sizeof cmd, "%s keygen --out %s", bin, key);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    test_chomp(out);
    CHECK(strlen(out) == 42);
    snprintf(addr, sizeof addr, "%.63s", out);
    struct stat st;
    CHECK(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* the secret never appears in output */
    char secret[80] = {0};
    FILE *f = fopen(key, "r");
    if (f) {
        if (!fgets(secret, sizeof secret, f)) secret[0] = 0;
        fclose(f);
    }
    test_chomp(secret);
    snprintf(cmd, sizeof cmd, "%s address --key %s", bin, key);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    test_chomp(out);
    CHECK_STREQ(out, addr);
    snprintf(cmd, sizeof cmd, "%s sign --key %s --message 'hello world' --json 2>&1", bin, key);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, secret + 2) == NULL);
    CHECK(strstr(out, "\"signer\":\"") && strstr(out, addr));
    char sig[200] = {0};
    const char *s = strstr(out, "\"signature\":\"");
    if (s) snprintf(sig, sizeof sig, "%.132s", s + 13);
    snprintf(cmd, sizeof cmd, "%s recover --message 'hello world' --signature %s", bin, sig);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    test_chomp(out);
    CHECK_STREQ(out, addr);
    snprintf(cmd, sizeof cmd, "%s recover --message 'hello world' --signature %s --address %s", bin, sig, addr);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd,
             "%s recover --message 'hello world!' --signature %s --address %s 2>/dev/null", bin, sig, addr);
    CHECK(test_run(cmd, out, sizeof out) == 1);
    /* the published vector through the binary, --digest form */
    char vkey[128];
    snprintf(vkey, sizeof vkey, "%s/vector.key", tmpdir);
    int fd = open(vkey, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
        if (write(fd, vector_secret, 66) != 66 || write(fd, "\n", 1) != 1) CHECK(0);
        close(fd);
    }
    snprintf(cmd, sizeof cmd, "%s address --key %s", bin, vkey);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    test_chomp(out);
    CHECK_STREQ(out, "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
    snprintf(cmd, sizeof cmd, "%s sign --key %s --digest 0x1476abb745d423bf09273f1afd887d951181d25adc66c4834a70491911b7f750",
             bin, vkey);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    test_chomp(out);
    CHECK_STREQ(out, "0x87f6856afaa7684bc6ecccef96246c155da984e7889dbdda1ae59940bdab8e676cd3055bd38ac073cd5710e3040f1ed08"
                     "073ca026266caeb097213d52665c4c01b");
    snprintf(cmd, sizeof cmd, "printf 'I\\342\\231\\245SF' > %s/msg && %s sign --key %s --message-file %s/msg", tmpdir,
             bin, vkey, tmpdir);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK(strncmp(out, "0x87f6856afaa7684b", 18) == 0);
    /* a key file others can read: refused, exit 2, no secret in the message */
    chmod(vkey, 0644);
    snprintf(cmd, sizeof cmd, "%s sign --key %s --message x 2>&1", bin, vkey);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    CHECK(strstr(out, "readable by group or others") != NULL && strstr(out, "4c0883a6") == NULL);
    /* usage errors */
    snprintf(cmd, sizeof cmd, "%s sign --key %s 2>/dev/null", bin, key);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "%s sign --key %s --message a --digest 0x00 2>/dev/null", bin, key);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "%s recover --message a --signature 0x1234 2>/dev/null", bin);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "%s keygen --out %s 2>/dev/null", bin, key); /* exists */
    CHECK(test_run(cmd, out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "%s keygen 2>/dev/null", bin);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    const char *helps[] = {"keygen", "address", "sign", "recover", "merkle"};
    for (int i = 0; i < 5; i++) {
        snprintf(cmd, sizeof cmd, "%s %s --help", bin, helps[i]);
        CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "usage:"), "%s --help", helps[i]);
    }
    /* a high-s signature through recover: exit 1 */
    snprintf(cmd, sizeof cmd,
             "%s recover --digest 0x1476abb745d423bf09273f1afd887d951181d25adc66c4834a70491911b7f750 --signature "
             "0x87f6856afaa7684bc6ecccef96246c155da984e7889dbdda1ae59940bdab8e67"
             "ffffffffffffffffffffffffffffffff7fffffffffffffffffffffffffffffff1b 2>/dev/null",
             bin);
    CHECK(test_run(cmd, out, sizeof out) == 1);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    if (test_scratch_dir(tmpdir, sizeof tmpdir, "keys") != 0) return 1;
    RUN(address_of_the_published_key);
    RUN(eip55_published_examples);
    RUN(eip191_personal_message_vector);
    RUN(sign_and_recover_round_trips_and_tampering_fails);
    RUN(high_s_and_bad_v_are_refused);
    RUN(key_file_mode_and_refusals);
    RUN(cli_keygen_address_sign_recover);
    test_remove_dir(tmpdir);
    return check_finish("keys");
}
