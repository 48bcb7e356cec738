/*
 * keccak.c: keccak-256 as a sponge over nettle_sha3_permute. Nettle keeps the state as 25
 * little-endian 64-bit lanes; bytes are absorbed into lane i/8 at bit offset 8*(i%8), which is
 * the FIPS 202 byte order, so the only difference from SHA3-256 is the domain padding byte.
 */
#include "meters/eth/keccak.h"

#include <nettle/sha3.h>
#include <string.h>

_Static_assert(sizeof(struct sha3_state) == sizeof(uint64_t) * 25, "nettle sha3_state layout");

static void permute(keccak256_ctx *ctx) {
    sha3_permute((struct sha3_state *)(void *)ctx->lanes);
}

static inline uint64_t load64_le(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline void xor_byte(keccak256_ctx *ctx, unsigned i, uint8_t b) {
    ctx->lanes[i >> 3] ^= (uint64_t)b << (8 * (i & 7));
}

void keccak256_init(keccak256_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
}

void keccak256_update(keccak256_ctx *ctx, const void *data, size_t len) {
    const uint8_t *p = data;
    /* Finish a partial block byte by byte. */
    while (len > 0 && ctx->pos != 0) {
        xor_byte(ctx, ctx->pos++, *p++);
        len--;
        if (ctx->pos == KECCAK256_RATE) {
            permute(ctx);
            ctx->pos = 0;
        }
    }
    /* Whole blocks lane by lane. */
    while (len >= KECCAK256_RATE) {
        for (unsigned i = 0; i < KECCAK256_RATE / 8; i++) ctx->lanes[i] ^= load64_le(p + 8 * i);
        permute(ctx);
        p += KECCAK256_RATE;
        len -= KECCAK256_RATE;
    }
    /* Whole lanes of the tail, then its last bytes. */
    while (len >= 8 && (ctx->pos & 7) == 0) {
        ctx->lanes[ctx->pos >> 3] ^= load64_le(p);
        ctx->pos += 8;
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        xor_byte(ctx, ctx->pos++, *p++);
        len--;
    }
}

void keccak256_final(keccak256_ctx *ctx, uint8_t out[KECCAK256_DIGEST_SIZE]) {
    xor_byte(ctx, ctx->pos, 0x01);
    xor_byte(ctx, KECCAK256_RATE - 1, 0x80);
    permute(ctx);
    for (unsigned i = 0; i < KECCAK256_DIGEST_SIZE; i++) out[i] = (uint8_t)(ctx->lanes[i >> 3] >> (8 * (i & 7)));
    keccak256_init(ctx);
}

void keccak256(const void *data, size_t len, uint8_t out[KECCAK256_DIGEST_SIZE]) {
    keccak256_ctx ctx;
    keccak256_init(&ctx);
    keccak256_update(&ctx, data, len);
    keccak256_final(&ctx, out);
}
