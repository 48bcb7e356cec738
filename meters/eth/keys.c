/*
 * keys.c: secp256k1 keys, EIP-55 addresses, recoverable signatures and EIP-191 digests over
 * Debian's libsecp256k1 (0.2: recovery module present, signatures always low-s).
 *
 * The secret lives only in eth_key and in stack buffers that are wiped with explicit_bzero; error
 * messages name the file and the problem, never content.
 */
#include "meters/eth/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meters/eth/hex.h"
#include "meters/eth/keccak.h"

struct eth_key {
    uint8_t secret[32];
    uint8_t address[ETH_ADDRESS_SIZE];
};

/* Half the group order n; a signature's s must not exceed it (EIP-2). */
static const uint8_t half_order[32] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4,
                                       0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};


static secp256k1_context *ctx_global;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_make(void) {
    secp256k1_context *c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (!c) return;
    /* Blinding for side-channel resistance; it does not change signatures. */
    uint8_t seed[32];
    if (getrandom(seed, sizeof seed, 0) == (ssize_t)sizeof seed) {
        if (!secp256k1_context_randomize(c, seed)) { /* keep the unblinded context: still correct */
        }
    }
    explicit_bzero(seed, sizeof seed);
    ctx_global = c;
}

static secp256k1_context *ctx_get(void) {
    pthread_once(&ctx_once, ctx_make);
    return ctx_global;
}

const void *eth_secp256k1_context(void) {
    return ctx_get();
}

static void pubkey_to_address(const secp256k1_context *c, const secp256k1_pubkey *pk, uint8_t address[20]) {
    uint8_t ser[65], h[32];
    size_t n = sizeof ser;
    secp256k1_ec_pubkey_serialize(c, ser, &n, pk, SECP256K1_EC_UNCOMPRESSED);
    keccak256(ser + 1, 64, h);
    memcpy(address, h + 12, 20);
}

/* The context, or ACC_ENOMEM when it could not be made. */
static int ctx_or_fail(secp256k1_context **c, acc_err *err) {
    *c = ctx_get();
    return *c ? ACC_OK : acc_fail(err, ACC_ENOMEM, "cannot create the secp256k1 context");
}

int eth_key_from_secret(eth_key **out, const uint8_t secret[32], acc_err *err) {
    *out = NULL;
    secp256k1_context *c;
    int rc = ctx_or_fail(&c, err);
    if (rc != ACC_OK) return rc;
    if (!secp256k1_ec_seckey_verify(c, secret))
        return acc_fail(err, ACC_EINVAL, "the secret is not a valid secp256k1 key (zero or not below the group order)");
    eth_key *k = malloc(sizeof *k);
    if (!k) return acc_fail(err, ACC_ENOMEM, "out of memory");
    memcpy(k->secret, secret, 32);
    secp256k1_pubkey pk;
    if (!secp256k1_ec_pubkey_create(c, &pk, k->secret)) {
        eth_key_free(k);
        return acc_fail(err, ACC_EINVAL, "cannot derive the public key");
    }
    pubkey_to_address(c, &pk, k->address);
    *out = k;
    return ACC_OK;
}

int eth_key_generate(eth_key **out, acc_err *err) {
    *out = NULL;
    uint8_t secret[32];
    /* A uniformly random 32 bytes is a valid secret except with probability ~2^-128; retry then. */
    for (int attempt = 0; attempt < 16; attempt++) {
        size_t got = 0;
        while (got < sizeof secret) {
            ssize_t r = getrandom(secret + got, sizeof secret - got, 0);
            if (r < 0) {
                if (errno == EINTR) continue;
                explicit_bzero(secret, sizeof secret);
                return acc_fail(err, ACC_EIO, "getrandom failed: %s", strerror(errno));
            }
            got += (size_t)r;
        }
        int rc = eth_key_from_secret(out, secret, err);
        explicit_bzero(secret, sizeof secret);
        if (rc != ACC_EINVAL) return rc; /* made, or out of memory */
    }
    return acc_fail(err, ACC_EIO, "could not draw a valid secret in 16 attempts (is getrandom broken?)");
}

void eth_key_free(eth_key *key) {
    if (!key) return;
    explicit_bzero(key, sizeof *key);
    free(key);
}

int eth_key_write_file(const eth_key *key, const char *path, acc_err *err) {
    char text[2 + 64 + 2];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return acc_fail(err, ACC_EEXIST, "cannot create key file %s: it already exists (a key is never overwritten)",
                            path);
        return acc_fail(err, ACC_EIO, "cannot create key file %s: %s", path, strerror(errno));
    }
    /* The umask can only remove bits, but make the mode exact whatever it is. */
    if (fchmod(fd, 0600) != 0) {
        int rc = acc_fail(err, ACC_EIO, "cannot set mode 0600 on key file %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return rc;
    }
    hex_encode0x(key->secret, 32, text);
    text[66] = '\n';
    size_t off = 0;
    int failed = 0;
    while (off < 67) {
        ssize_t w = write(fd, text + off, 67 - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            failed = errno;
            break;
        }
        off += (size_t)w;
    }
    explicit_bzero(text, sizeof text);
    if (!failed && fsync(fd) != 0) failed = errno;
    if (close(fd) != 0 && !failed) failed = errno;
    if (failed) {
        unlink(path);
        return acc_fail(err, ACC_EIO, "cannot write key file %s: %s", path, strerror(failed));
    }
    return ACC_OK;
}

/* Not runtime/base/file.h's reader: the secret must stay out of stdio's buffers and a growing
 * heap buffer (neither is wiped), and the mode is checked on the descriptor that is read. */
int eth_key_read_file(eth_key **out, const char *path, acc_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return acc_fail(err, ACC_EIO, "cannot open key file %s: %s", path, strerror(errno));
    struct stat st;
    int rc = ACC_OK;
    if (fstat(fd, &st) != 0)
        rc = acc_fail(err, ACC_EIO, "cannot stat key file %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = acc_fail(err, ACC_EINVAL, "key file %s is not a regular file", path);
    else if (st.st_mode & 0077)
        /* Readable is what the issue names; any group or other access at all is refused, as ssh does. */
        rc = acc_fail(err, ACC_EPERM, "key file %s is %s by group or others (mode %04o); run chmod 600 %s", path,
                      (st.st_mode & 0044) ? "readable" : "writable or executable", (unsigned)(st.st_mode & 07777), path);
    if (rc != ACC_OK) {
        close(fd);
        return rc;
    }
    char buf[80];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = acc_fail(err, ACC_EIO, "cannot read key file %s: %s", path, strerror(errno));
            explicit_bzero(buf, sizeof buf);
            close(fd);
            return rc;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == sizeof buf) break;
    }
    close(fd);
    /* Exactly "0x" + 64 hex digits, then an optional newline (CRLF tolerated). */
    size_t len = n;
    if (len > 0 && buf[len - 1] == '\n') len--;
    if (len > 0 && buf[len - 1] == '\r') len--;
    uint8_t secret[32];
    if ((rc = hex_parse0x(buf, len, secret, 32, err)) != ACC_OK)
        acc_err_prefix(err, "key file %s is malformed", path);
    else if ((rc = eth_key_from_secret(out, secret, err)) == ACC_EINVAL)
        acc_fail(err, rc, "key file %s does not hold a valid secp256k1 secret", path);
    explicit_bzero(buf, sizeof buf);
    explicit_bzero(secret, sizeof secret);
    return rc;
}

void eth_key_address(const eth_key *key, uint8_t address[ETH_ADDRESS_SIZE]) {
    memcpy(address, key->address, ETH_ADDRESS_SIZE);
}

int eth_key_sign_digest(const eth_key *key, const uint8_t digest[32], uint8_t sig[ETH_SIGNATURE_SIZE], acc_err *err) {
    secp256k1_context *c;
    int rc = ctx_or_fail(&c, err);
    if (rc != ACC_OK) return rc;
    secp256k1_ecdsa_recoverable_signature rs;
    /* NULL nonce function and data: RFC 6979, the same nonce ethers and eth-account derive. */
    if (!secp256k1_ecdsa_sign_recoverable(c, &rs, digest, key->secret, NULL, NULL))
        return acc_fail(err, ACC_EINVAL, "signing failed");
    int recid = 0;
    secp256k1_ecdsa_recoverable_signature_serialize_compact(c, sig, &recid, &rs);
    sig[64] = (uint8_t)(27 + recid);
    return ACC_OK;
}

int eth_recover(const uint8_t digest[32], const uint8_t sig[ETH_SIGNATURE_SIZE], uint8_t address[ETH_ADDRESS_SIZE],
                acc_err *err) {
    secp256k1_context *c;
    int rc = ctx_or_fail(&c, err);
    if (rc != ACC_OK) return rc;
    int v = sig[64], recid;
    if (v == 27 || v == 28)
        recid = v - 27;
    else if (v == 0 || v == 1)
        recid = v;
    else
        return acc_fail(err, ACC_EINVAL, "signature v is %d; only 27, 28, 0 or 1 are accepted", v);
    if (memcmp(sig + 32, half_order, 32) > 0)
        return acc_fail(err, ACC_EINVAL,
                        "signature s is in the upper half of the curve order (a high-s signature is refused)");
    secp256k1_ecdsa_recoverable_signature rs;
    if (!secp256k1_ecdsa_recoverable_signature_parse_compact(c, &rs, sig, recid))
        return acc_fail(err, ACC_EINVAL, "signature r or s is not below the curve order");
    secp256k1_pubkey pk;
    if (!secp256k1_ecdsa_recover(c, &pk, &rs, digest))
        return acc_fail(err, ACC_EBADSIG, "the signature does not recover to any public key");
    pubkey_to_address(c, &pk, address);
    return ACC_OK;
}

int eth_verify(const uint8_t digest[32], const uint8_t sig[ETH_SIGNATURE_SIZE], const uint8_t address[ETH_ADDRESS_SIZE],
               acc_err *err) {
    uint8_t got[20];
    int rc = eth_recover(digest, sig, got, err);
    if (rc != ACC_OK) return rc;
    if (memcmp(got, address, 20) != 0) {
        char a[ETH_ADDRESS_TEXT_SIZE];
        eth_address_to_text(got, a);
        return acc_fail(err, ACC_EBADSIG, "the signature was made by %s, not the expected address", a);
    }
    return ACC_OK;
}

/* EIP-55: hex digit i is upper-cased when nibble i of keccak256(lower-case hex) is >= 8. */
void eth_address_to_text(const uint8_t address[ETH_ADDRESS_SIZE], char out[ETH_ADDRESS_TEXT_SIZE]) {
    uint8_t h[32];
    hex_encode0x(address, 20, out);
    keccak256(out + 2, 40, h);
    for (int i = 0; i < 40; i++) {
        int nibble = (h[i / 2] >> (i % 2 ? 0 : 4)) & 15;
        char ch = out[2 + i];
        if (ch >= 'a' && ch <= 'f' && nibble >= 8) out[2 + i] = (char)(ch - 'a' + 'A');
    }
}

int eth_address_parse(const char *s, size_t len, uint8_t address[ETH_ADDRESS_SIZE], acc_err *err) {
    /* The prefix is "0x" exactly: EIP-55 gives meaning to case, and ethers refuses "0X". */
    if ((len >= 2 && s[1] == 'X') || hex_parse0x(s, len, address, ETH_ADDRESS_SIZE, err) != ACC_OK)
        return acc_fail(err, ACC_EINVAL, "an address is 0x followed by 40 hex digits");
    int lower = 0, upper = 0;
    for (size_t i = 2; i < 42; i++) {
        if (s[i] >= 'a' && s[i] <= 'f') lower = 1;
        if (s[i] >= 'A' && s[i] <= 'F') upper = 1;
    }
    if (lower && upper) {
        char want[ETH_ADDRESS_TEXT_SIZE];
        eth_address_to_text(address, want);
        if (memcmp(want, s, 42) != 0)
            return acc_fail(err, ACC_EINVAL, "address %.42s has a wrong EIP-55 checksum (expected %s)", s, want);
    }
    return ACC_OK;
}

void eth_personal_digest(const void *message, size_t len, uint8_t digest[32]) {
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix, "\x19" "Ethereum Signed Message:\n%zu", len);
    keccak256_ctx k;
    keccak256_init(&k);
    keccak256_update(&k, prefix, (size_t)n);
    keccak256_update(&k, message, len);
    keccak256_final(&k, digest);
}
