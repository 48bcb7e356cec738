/*
 * hex.c: the hex codec (hex.h).
 */
#include "meters/eth/hex.h"

#include <stdio.h>
#include <stdlib.h>

int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void hex_encode0x(const uint8_t *data, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        out[2 + 2 * i] = digits[data[i] >> 4];
        out[3 + 2 * i] = digits[data[i] & 15];
    }
    out[2 + 2 * len] = '\0';
}

/* The digits after the prefix, checked for shape: ACC_OK with *digits and *n, or ACC_EINVAL whose
 * message starts with what was expected (`want` digits, or any even number when want_any). */
static int split(const char *s, size_t len, size_t want, int want_any, const char **digits, size_t *n,
                 acc_err *err) {
    char expected[64];
    if (want_any)
        snprintf(expected, sizeof expected, "expected 0x and an even number of hex digits");
    else
        snprintf(expected, sizeof expected, "expected 0x and %zu hex digits", 2 * want);
    if (len < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return acc_fail(err, ACC_EINVAL, "%s, got no 0x prefix", expected);
    *digits = s + 2;
    *n = len - 2;
    if (want_any ? *n % 2 != 0 : *n != 2 * want) return acc_fail(err, ACC_EINVAL, "%s, got %zu", expected, *n);
    for (size_t i = 0; i < *n; i++)
        if (hex_digit((unsigned char)(*digits)[i]) < 0)
            return acc_fail(err, ACC_EINVAL, "%s; character %zu is not a hex digit", expected, i + 3);
    return ACC_OK;
}

static void decode(const char *digits, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n / 2; i++)
        out[i] = (uint8_t)(hex_digit((unsigned char)digits[2 * i]) << 4 | hex_digit((unsigned char)digits[2 * i + 1]));
}

int hex_parse0x(const char *s, size_t len, uint8_t *out, size_t want, acc_err *err) {
    const char *digits;
    size_t n;
    int rc = split(s, len, want, 0, &digits, &n, err);
    if (rc != ACC_OK) return rc;
    decode(digits, n, out);
    return ACC_OK;
}

int hex_parse0x_alloc(const char *s, size_t len, uint8_t **out, size_t *out_len, acc_err *err) {
    *out = NULL;
    *out_len = 0;
    const char *digits;
    size_t n;
    int rc = split(s, len, 0, 1, &digits, &n, err);
    if (rc != ACC_OK || n == 0) return rc;
    uint8_t *buf = malloc(n / 2);
    if (!buf) return acc_fail(err, ACC_ENOMEM, "out of memory for %zu bytes of hex", n / 2);
    decode(digits, n, buf);
    *out = buf;
    *out_len = n / 2;
    return ACC_OK;
}
