/*
 * uint256.c: decimal and hex parsing of 256-bit unsigned integers, big-endian bytes.
 */
#include "meters/eth/uint256.h"

#include <string.h>

#include "meters/eth/hex.h"

int uint256_from_decimal(const char *s, size_t len, uint8_t out[32], acc_err *err) {
    memset(out, 0, 32);
    if (len == 0) return acc_fail(err, ACC_EINVAL, "empty, expected a decimal number");
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return acc_fail(err, ACC_EINVAL, "not a decimal number of digits only (character %zu)", i + 1);
        /* out = out * 10 + digit; a carry out of the top byte is an overflow past 2^256-1. */
        unsigned carry = (unsigned)(s[i] - '0');
        for (int b = 31; b >= 0; b--) {
            unsigned v = out[b] * 10u + carry;
            out[b] = (uint8_t)v;
            carry = v >> 8;
        }
        if (carry) return acc_fail(err, ACC_EINVAL, "larger than 2^256-1");
    }
    return ACC_OK;
}

int uint256_from_hex(const char *s, size_t len, uint8_t out[32], acc_err *err) {
    memset(out, 0, 32);
    if (len < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || len > 66)
        return acc_fail(err, ACC_EINVAL, "expected 0x and 1 to 64 hex digits");
    s += 2;
    len -= 2;
    for (size_t i = 0; i < len; i++) {
        int d = hex_digit((unsigned char)s[len - 1 - i]);
        if (d < 0) return acc_fail(err, ACC_EINVAL, "expected 0x and 1 to 64 hex digits; character %zu is not one", len - i + 2);
        out[31 - i / 2] |= (uint8_t)(d << (4 * (i & 1)));
    }
    return ACC_OK;
}

void uint256_to_decimal(const uint8_t v[32], char out[79]) {
    uint8_t n[32];
    memcpy(n, v, 32);
    char tmp[80];
    size_t k = 0;
    for (;;) {
        /* n /= 10, remainder is the next digit from the right. */
        unsigned rem = 0;
        int nonzero = 0;
        for (int b = 0; b < 32; b++) {
            unsigned cur = rem << 8 | n[b];
            n[b] = (uint8_t)(cur / 10);
            rem = cur % 10;
            nonzero |= n[b];
        }
        tmp[k++] = (char)('0' + rem);
        if (!nonzero) break;
    }
    for (size_t i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
    out[k] = '\0';
}

unsigned uint256_bit_length(const uint8_t v[32]) {
    for (int b = 0; b < 32; b++) {
        if (v[b]) {
            unsigned bits = 0;
            for (unsigned x = v[b]; x; x >>= 1) bits++;
            return (unsigned)(31 - b) * 8 + bits;
        }
    }
    return 0;
}

void uint256_negate(uint8_t v[32]) {
    unsigned carry = 1;
    for (int b = 31; b >= 0; b--) {
        unsigned x = (uint8_t)~v[b] + carry;
        v[b] = (uint8_t)x;
        carry = x >> 8;
    }
}
