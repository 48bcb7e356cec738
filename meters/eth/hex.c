/*
 * hex.c: hex encoding and decoding for the Ethereum modules.
 */
#include "meters/eth/hex.h"

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

static int decode_into(const char *s, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit((unsigned char)s[2 * i]), lo = hex_digit((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int hex_decode_exact(const char *s, size_t s_len, uint8_t *out, size_t want) {
    if (s_len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        s_len -= 2;
    }
    if (s_len != 2 * want) return -1;
    return decode_into(s, s_len, out);
}

int hex_decode_alloc(const char *s, size_t s_len, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (s_len < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || (s_len % 2) != 0) return -1;
    size_t n = (s_len - 2) / 2;
    if (n == 0) return 0;
    uint8_t *buf = malloc(n);
    if (!buf) return -1;
    if (decode_into(s + 2, s_len - 2, buf) != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = n;
    return 0;
}
