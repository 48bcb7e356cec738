/*
 * keccak_x4.c: four independent keccak-256 hashes of one-block messages at once, for the Merkle
 * tree (64-byte leaf encodings and node pairs, 32-byte inner leaf hashes), where the permutation is
 * nearly all of the time. The scalar path is Nettle's permutation (keccak.c); on x86-64 with AVX2
 * the four states live side by side in 256-bit registers, one lane of each state per register, so
 * one pass of the Keccak-f[1600] rounds permutes all four. With AVX-512VL the rotations are single
 * instructions (vprolvq). The CPU is checked once with cpuid/xgetbv; the vector code is compiled
 * with target attributes (a clang/gcc extension: the rest of the build stays baseline x86-64).
 */
#include <stdatomic.h>
#include <string.h>

#include "meters/eth/keccak.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define KECCAK_X4_VECTOR 1
#include <cpuid.h>
#include <immintrin.h>

static const uint64_t round_constants[24] = {
    0x0000000000000001ull, 0x0000000000008082ull, 0x800000000000808aull, 0x8000000080008000ull,
    0x000000000000808bull, 0x0000000080000001ull, 0x8000000080008081ull, 0x8000000000008009ull,
    0x000000000000008aull, 0x0000000000000088ull, 0x0000000080008009ull, 0x000000008000000aull,
    0x000000008000808bull, 0x800000000000008bull, 0x8000000000008089ull, 0x8000000000008003ull,
    0x8000000000008002ull, 0x8000000000000080ull, 0x000000000000800aull, 0x800000008000000aull,
    0x8000000080008081ull, 0x8000000000008080ull, 0x0000000080000001ull, 0x8000000080008008ull,
};
/* One Keccak-f[1600] on four states, unrolled (generated from the FIPS 202 step definitions:
 * theta, rho and pi into b, chi back into a, iota) so that every lane stays in a register. */
#define KECCAK_X4_PERMUTE(ROL) \
    do { \
        __m256i b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19, b20; \
        __m256i b21, b22, b23, b24; \
        __m256i c0, c1, c2, c3, c4, d0, d1, d2, d3, d4; \
        for (int round = 0; round < 24; round++) { \
            c0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a0, a5), _mm256_xor_si256(a10, a15)), a20); \
            c1 = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a1, a6), _mm256_xor_si256(a11, a16)), a21); \
            c2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a2, a7), _mm256_xor_si256(a12, a17)), a22); \
            c3 = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a3, a8), _mm256_xor_si256(a13, a18)), a23); \
            c4 = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a4, a9), _mm256_xor_si256(a14, a19)), a24); \
            d0 = _mm256_xor_si256(c4, ROL(c1, 1)); \
            d1 = _mm256_xor_si256(c0, ROL(c2, 1)); \
            d2 = _mm256_xor_si256(c1, ROL(c3, 1)); \
            d3 = _mm256_xor_si256(c2, ROL(c4, 1)); \
            d4 = _mm256_xor_si256(c3, ROL(c0, 1)); \
            a0 = _mm256_xor_si256(a0, d0); \
            a1 = _mm256_xor_si256(a1, d1); \
            a2 = _mm256_xor_si256(a2, d2); \
            a3 = _mm256_xor_si256(a3, d3); \
            a4 = _mm256_xor_si256(a4, d4); \
            a5 = _mm256_xor_si256(a5, d0); \
            a6 = _mm256_xor_si256(a6, d1); \
            a7 = _mm256_xor_si256(a7, d2); \
            a8 = _mm256_xor_si256(a8, d3); \
            a9 = _mm256_xor_si256(a9, d4); \
            a10 = _mm256_xor_si256(a10, d0); \
            a11 = _mm256_xor_si256(a11, d1); \
            a12 = _mm256_xor_si256(a12, d2); \
            a13 = _mm256_xor_si256(a13, d3); \
            a14 = _mm256_xor_si256(a14, d4); \
            a15 = _mm256_xor_si256(a15, d0); \
            a16 = _mm256_xor_si256(a16, d1); \
            a17 = _mm256_xor_si256(a17, d2); \
            a18 = _mm256_xor_si256(a18, d3); \
            a19 = _mm256_xor_si256(a19, d4); \
            a20 = _mm256_xor_si256(a20, d0); \
            a21 = _mm256_xor_si256(a21, d1); \
            a22 = _mm256_xor_si256(a22, d2); \
            a23 = _mm256_xor_si256(a23, d3); \
            a24 = _mm256_xor_si256(a24, d4); \
            b0 = a0; \
            b16 = ROL(a5, 36); \
            b7 = ROL(a10, 3); \
            b23 = ROL(a15, 41); \
            b14 = ROL(a20, 18); \
            b10 = ROL(a1, 1); \
            b1 = ROL(a6, 44); \
            b17 = ROL(a11, 10); \
            b8 = ROL(a16, 45); \
            b24 = ROL(a21, 2); \
            b20 = ROL(a2, 62); \
            b11 = ROL(a7, 6); \
            b2 = ROL(a12, 43); \
            b18 = ROL(a17, 15); \
            b9 = ROL(a22, 61); \
            b5 = ROL(a3, 28); \
            b21 = ROL(a8, 55); \
            b12 = ROL(a13, 25); \
            b3 = ROL(a18, 21); \
            b19 = ROL(a23, 56); \
            b15 = ROL(a4, 27); \
            b6 = ROL(a9, 20); \
            b22 = ROL(a14, 39); \
            b13 = ROL(a19, 8); \
            b4 = ROL(a24, 14); \
            a0 = _mm256_xor_si256(b0, _mm256_andnot_si256(b1, b2)); \
            a1 = _mm256_xor_si256(b1, _mm256_andnot_si256(b2, b3)); \
            a2 = _mm256_xor_si256(b2, _mm256_andnot_si256(b3, b4)); \
            a3 = _mm256_xor_si256(b3, _mm256_andnot_si256(b4, b0)); \
            a4 = _mm256_xor_si256(b4, _mm256_andnot_si256(b0, b1)); \
            a5 = _mm256_xor_si256(b5, _mm256_andnot_si256(b6, b7)); \
            a6 = _mm256_xor_si256(b6, _mm256_andnot_si256(b7, b8)); \
            a7 = _mm256_xor_si256(b7, _mm256_andnot_si256(b8, b9)); \
            a8 = _mm256_xor_si256(b8, _mm256_andnot_si256(b9, b5)); \
            a9 = _mm256_xor_si256(b9, _mm256_andnot_si256(b5, b6)); \
            a10 = _mm256_xor_si256(b10, _mm256_andnot_si256(b11, b12)); \
            a11 = _mm256_xor_si256(b11, _mm256_andnot_si256(b12, b13)); \
            a12 = _mm256_xor_si256(b12, _mm256_andnot_si256(b13, b14)); \
            a13 = _mm256_xor_si256(b13, _mm256_andnot_si256(b14, b10)); \
            a14 = _mm256_xor_si256(b14, _mm256_andnot_si256(b10, b11)); \
            a15 = _mm256_xor_si256(b15, _mm256_andnot_si256(b16, b17)); \
            a16 = _mm256_xor_si256(b16, _mm256_andnot_si256(b17, b18)); \
            a17 = _mm256_xor_si256(b17, _mm256_andnot_si256(b18, b19)); \
            a18 = _mm256_xor_si256(b18, _mm256_andnot_si256(b19, b15)); \
            a19 = _mm256_xor_si256(b19, _mm256_andnot_si256(b15, b16)); \
            a20 = _mm256_xor_si256(b20, _mm256_andnot_si256(b21, b22)); \
            a21 = _mm256_xor_si256(b21, _mm256_andnot_si256(b22, b23)); \
            a22 = _mm256_xor_si256(b22, _mm256_andnot_si256(b23, b24)); \
            a23 = _mm256_xor_si256(b23, _mm256_andnot_si256(b24, b20)); \
            a24 = _mm256_xor_si256(b24, _mm256_andnot_si256(b20, b21)); \
            a0 = _mm256_xor_si256(a0, _mm256_set1_epi64x((long long)round_constants[round])); \
        } \
    } while (0)

#define ROL_AVX2(x, n) _mm256_or_si256(_mm256_slli_epi64((x), (n)), _mm256_srli_epi64((x), 64 - (n)))
#define ROL_AVX512(x, n) _mm256_rol_epi64((x), (n))

/* Loads four padded 136-byte blocks as lanes, permutes, writes the four 32-byte digests. */
/* Lane j of each of the four padded blocks, side by side. */
__attribute__((target("avx2"))) static inline __m256i load_lanes(uint8_t blocks[4][KECCAK256_RATE], int j) {
    uint64_t l0, l1, l2, l3;
    memcpy(&l0, blocks[0] + 8 * j, 8);
    memcpy(&l1, blocks[1] + 8 * j, 8);
    memcpy(&l2, blocks[2] + 8 * j, 8);
    memcpy(&l3, blocks[3] + 8 * j, 8);
    return _mm256_set_epi64x((long long)l3, (long long)l2, (long long)l1, (long long)l0);
}

/* The first four lanes of each state are its digest (little-endian lanes, as on this CPU). */
__attribute__((target("avx2"))) static inline void store_digests(__m256i a0, __m256i a1, __m256i a2, __m256i a3,
                                                                 uint8_t *const out[4]) {
    uint64_t lanes[4][4];
    _mm256_storeu_si256((__m256i *)(void *)lanes[0], a0);
    _mm256_storeu_si256((__m256i *)(void *)lanes[1], a1);
    _mm256_storeu_si256((__m256i *)(void *)lanes[2], a2);
    _mm256_storeu_si256((__m256i *)(void *)lanes[3], a3);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) memcpy(out[k] + 8 * j, &lanes[j][k], 8);
}

#define KECCAK_X4_BODY(ROL) \
    __m256i a0 = load_lanes(blocks, 0); \
    __m256i a1 = load_lanes(blocks, 1); \
    __m256i a2 = load_lanes(blocks, 2); \
    __m256i a3 = load_lanes(blocks, 3); \
    __m256i a4 = load_lanes(blocks, 4); \
    __m256i a5 = load_lanes(blocks, 5); \
    __m256i a6 = load_lanes(blocks, 6); \
    __m256i a7 = load_lanes(blocks, 7); \
    __m256i a8 = load_lanes(blocks, 8); \
    __m256i a9 = load_lanes(blocks, 9); \
    __m256i a10 = load_lanes(blocks, 10); \
    __m256i a11 = load_lanes(blocks, 11); \
    __m256i a12 = load_lanes(blocks, 12); \
    __m256i a13 = load_lanes(blocks, 13); \
    __m256i a14 = load_lanes(blocks, 14); \
    __m256i a15 = load_lanes(blocks, 15); \
    __m256i a16 = load_lanes(blocks, 16); \
    __m256i a17 = _mm256_setzero_si256(), a18 = a17, a19 = a17, a20 = a17, a21 = a17, a22 = a17, a23 = a17, \
            a24 = a17; \
    KECCAK_X4_PERMUTE(ROL); \
    store_digests(a0, a1, a2, a3, out);

__attribute__((target("avx2"))) static void permute_x4_avx2(uint8_t blocks[4][KECCAK256_RATE], uint8_t *const out[4]) {
    KECCAK_X4_BODY(ROL_AVX2)
}

__attribute__((target("avx2,avx512f,avx512vl"))) static void permute_x4_avx512(uint8_t blocks[4][KECCAK256_RATE],
                                                                                 uint8_t *const out[4]) {
    KECCAK_X4_BODY(ROL_AVX512)
}

/* 0 scalar, 1 AVX2, 2 AVX-512VL; -1 until the first call decides. Atomic: the Merkle pool's threads
 * read it while another thread may be setting it (the first call, or keccak256_x4_limit); every
 * level computes the same digests, so relaxed order is enough. */
static _Atomic int vector_level = -1;

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static int detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27)) || !(c & (1u << 28))) return 0; /* OSXSAVE, AVX */
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 6) != 6) return 0; /* the OS saves XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 5))) return 0; /* AVX2 */
    int avx512 = (b & (1u << 16)) && (b & (1u << 31)) && (xcr0 & 0xe6) == 0xe6; /* F, VL, opmask+ZMM state */
    return avx512 ? 2 : 1;
}
#endif

int keccak256_x4_vectorised(void) {
#ifdef KECCAK_X4_VECTOR
    int level = atomic_load_explicit(&vector_level, memory_order_relaxed);
    if (level < 0) {
        level = detect();
        atomic_store_explicit(&vector_level, level, memory_order_relaxed);
    }
    return level;
#else
    return 0;
#endif
}

int keccak256_x4_limit(int level) {
#ifdef KECCAK_X4_VECTOR
    int best = detect();
    level = level < best ? (level < 0 ? 0 : level) : best;
    atomic_store_explicit(&vector_level, level, memory_order_relaxed);
    return level;
#else
    (void)level;
    return 0;
#endif
}

void keccak256_x4(const uint8_t *const in[4], size_t len, uint8_t *const out[4]) {
#ifdef KECCAK_X4_VECTOR
    int level = keccak256_x4_vectorised();
    if (level > 0 && len < KECCAK256_RATE) {
        uint8_t blocks[4][KECCAK256_RATE];
        for (int k = 0; k < 4; k++) {
            memcpy(blocks[k], in[k], len);
            memset(blocks[k] + len, 0, KECCAK256_RATE - len);
            blocks[k][len] ^= 0x01;
            blocks[k][KECCAK256_RATE - 1] ^= 0x80;
        }
        if (level == 2)
            permute_x4_avx512(blocks, out);
        else
            permute_x4_avx2(blocks, out);
        return;
    }
#endif
    for (int k = 0; k < 4; k++) keccak256(in[k], len, out[k]);
}
