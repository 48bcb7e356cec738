/*
 * keccak.h: Ethereum's keccak-256 (the original Keccak padding 0x01..0x80, not SHA3-256's 0x06),
 * a sponge of rate 136 bytes over Nettle's Keccak-f[1600] permutation. Used for addresses, EIP-191
 * and EIP-712 digests and the Merkle trees of settlement batches.
 *
 * Streaming: keccak256_init, any number of keccak256_update, keccak256_final. The context is a plain
 * struct (no heap), so it can live on the stack; keccak256() hashes one buffer.
 */
#ifndef ACCRUE_METERS_ETH_KECCAK_H
#define ACCRUE_METERS_ETH_KECCAK_H

#include <stddef.h>
#include <stdint.h>

#define KECCAK256_DIGEST_SIZE 32
#define KECCAK256_RATE 136

typedef struct keccak256_ctx {
    uint64_t lanes[25]; /* Keccak-f[1600] state, lane order and layout as nettle's sha3_state */
    unsigned pos;       /* bytes absorbed into the current block, < KECCAK256_RATE */
} keccak256_ctx;

void keccak256_init(keccak256_ctx *ctx);
void keccak256_update(keccak256_ctx *ctx, const void *data, size_t len);
/* Writes the 32-byte digest and leaves ctx re-initialised for a new message. */
void keccak256_final(keccak256_ctx *ctx, uint8_t out[KECCAK256_DIGEST_SIZE]);

/* One-shot hash of len bytes. */
void keccak256(const void *data, size_t len, uint8_t out[KECCAK256_DIGEST_SIZE]);

/* Four one-shot hashes of four messages of the same length (keccak_x4.c): vectorised when
 * len < KECCAK256_RATE and the CPU has AVX2, else four calls of keccak256. in and out may alias. */
void keccak256_x4(const uint8_t *const in[4], size_t len, uint8_t *const out[4]);
/* 0 when keccak256_x4 runs scalar, 1 with AVX2, 2 with AVX-512VL rotates. */
int keccak256_x4_vectorised(void);
/* Caps the path keccak256_x4 takes (0 scalar, 1 AVX2, 2 AVX-512VL) at what the CPU has; returns the
 * level in force. For tests of each path; safe while other threads hash (each call takes one path,
 * and every path gives the same digests). */
int keccak256_x4_limit(int level);

#endif
