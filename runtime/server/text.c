/*
 * text.c: the server's text at its trust boundary: UTF-8 checks, JSON string escaping, random ids.
 *
 * Everything an agent or a remote model produces is bytes (Lua strings are), while a WebSocket
 * text frame and a JSON string must be UTF-8. Output is escaped by acc_buf_json_string (every
 * invalid sequence becomes U+FFFD); a streamed piece that ends inside a character keeps its tail
 * back until the rest arrives (rt_utf8_prefix), so a character split across two deltas is not
 * turned into two replacement characters.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "runtime/server/internal.h"

/* Length of the valid character starting at s[0..n): 1..4, 0 when invalid, -1 when s ends
 * before a character that is valid so far. */
static int utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F; /* no surrogates */
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return 0;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -1;
        unsigned d = s[i];
        if (i == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return 0;
    }
    return len;
}

size_t rt_utf8_prefix(const char *str, size_t n, bool *incomplete_tail) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    *incomplete_tail = false;
    while (i < n) {
        int k = utf8_char(s + i, n - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        *incomplete_tail = k < 0;
        break;
    }
    return i;
}

bool rt_utf8_valid(const char *s, size_t n) {
    bool tail;
    return rt_utf8_prefix(s, n, &tail) == n;
}

void rt_json_escape(acc_buf *b, const char *s, size_t n) {
    /* acc_buf_json_string's text without its quotes: the inside of a string that stays open. */
    size_t at = b->len;
    acc_buf_json_string(b, s, n);
    if (acc_buf_failed(b)) return;
    memmove(b->data + at, b->data + at + 1, b->len - at - 2);
    b->len -= 2;
    b->data[b->len] = 0;
}

void rt_random_hex(char *out, size_t nbytes) {
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    if (nbytes > sizeof raw) nbytes = sizeof raw;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(raw + got, nbytes - got, 0);
        if (r > 0) got += (size_t)r;
    }
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = 0;
}

uint64_t rt_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rt_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
