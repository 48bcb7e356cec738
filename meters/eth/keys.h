/*
 * keys.h: Ethereum-compatible secp256k1 keys, addresses and signatures.
 *
 * - A key (opaque eth_key) holds a 32-byte secret. Key files hold "0x<64 hex>\n", are created with
 *   mode 0600 and refused when group or others have any access. No function ever puts the secret, or any
 *   part of a key file, into an error message.
 * - Addresses are the last 20 bytes of keccak-256 of the 64-byte public key; they are shown with the
 *   EIP-55 checksum and parsed from all-lower, all-upper or correctly checksummed text.
 * - Signatures are 65 bytes r||s||v, recoverable ECDSA with low s and v = 27/28, deterministic
 *   (RFC 6979, libsecp256k1's default nonce, no extra data) and so identical to ethers' and
 *   eth-account's. Recovery accepts v = 27/28/0/1 and refuses a high s.
 * - EIP-191 personal messages: keccak256("\x19Ethereum Signed Message:\n" || len || message).
 *
 * Errors: runtime/base/status.h (ACC_OK or a negative ACC_E* code, a message in err, which may be
 * NULL). Codes: ACC_EINVAL for malformed input, ACC_EIO for a file (or the system's random source)
 * that could not be read or written, ACC_EEXIST for a key file that is already there, ACC_EPERM for
 * a key file that group or others can access, ACC_EBADSIG for a signature that recovers to no key
 * or to another address, ACC_ENOMEM.
 */
#ifndef ACCRUE_METERS_ETH_KEYS_H
#define ACCRUE_METERS_ETH_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

#define ETH_ADDRESS_SIZE 20
#define ETH_SIGNATURE_SIZE 65
#define ETH_ADDRESS_TEXT_SIZE 43 /* "0x" + 40 + NUL */

typedef struct eth_key eth_key;

/* A fresh key from getrandom(). *out is freed with eth_key_free. */
int eth_key_generate(eth_key **out, acc_err *err);
/* A key from a 32-byte secret (must be a valid secp256k1 secret). Freed with eth_key_free. */
int eth_key_from_secret(eth_key **out, const uint8_t secret[32], acc_err *err);
/* Creates path (it must not exist) with mode 0600 and writes the key into it. */
int eth_key_write_file(const eth_key *key, const char *path, acc_err *err);
/* Reads a key file; refuses one that group or others can read. Freed with eth_key_free. */
int eth_key_read_file(eth_key **out, const char *path, acc_err *err);
/* Wipes and frees the key; NULL is fine. */
void eth_key_free(eth_key *key);

void eth_key_address(const eth_key *key, uint8_t address[ETH_ADDRESS_SIZE]);
/* Signs a 32-byte digest as is (no prefix). */
int eth_key_sign_digest(const eth_key *key, const uint8_t digest[32], uint8_t sig[ETH_SIGNATURE_SIZE], acc_err *err);

/* The address that signed digest. ACC_EINVAL for a malformed signature (v, high s, r or s out of
 * range), ACC_EBADSIG when no key recovers. */
int eth_recover(const uint8_t digest[32], const uint8_t sig[ETH_SIGNATURE_SIZE], uint8_t address[ETH_ADDRESS_SIZE],
                acc_err *err);
/* ACC_OK when sig over digest recovers to address, else ACC_EBADSIG (another signer) or ACC_EINVAL. */
int eth_verify(const uint8_t digest[32], const uint8_t sig[ETH_SIGNATURE_SIZE],
               const uint8_t address[ETH_ADDRESS_SIZE], acc_err *err);

/* EIP-55 checksummed "0x..." text. */
void eth_address_to_text(const uint8_t address[ETH_ADDRESS_SIZE], char out[ETH_ADDRESS_TEXT_SIZE]);
/* Parses "0x" + 40 hex digits: all lower or all upper case, or mixed case with a correct EIP-55
 * checksum. */
int eth_address_parse(const char *s, size_t len, uint8_t address[ETH_ADDRESS_SIZE], acc_err *err);

/* The EIP-191 (version 0x45, "personal_sign") digest of a message. */
void eth_personal_digest(const void *message, size_t len, uint8_t digest[32]);

/* The process-wide libsecp256k1 context (made once, randomised; thread-safe to use). Returns NULL
 * only when it cannot be made. For the benchmarks that compare raw library calls. */
const void *eth_secp256k1_context(void);

#endif
