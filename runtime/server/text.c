/*
 * text.c: the server's text at its trust boundary: UTF-8 checks, JSON string escaping, random ids.
 *
 * Everything an agent or a remote model produces is bytes (Lua strings are), while a WebSocket
 * text frame and a JSON string must be UTF-8. Output is therefore escaped here, once, with every
 * invalid sequence replaced by U+FFFD; a streamed piece that ends inside a character keeps its
 * tail back until the rest arrives (rt_utf8_prefix), so a character split across two deltas is
 * not turned into two replacement characters.
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

void rt_json_escape(acc_buf *b, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    char *out = acc_buf_reserve(b, n + 16);
    if (!out) return;
    size_t i = 0;
    while (i < n) {
        /* Copy the longest run that needs no escaping in one go. */
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\') run++;
        if (run > i) {
            acc_buf_append(b, s + i, run - i);
            i = run;
            continue;
        }
        unsigned c = s[i];
        if (c >= 0x80) {
            int k = utf8_char(s + i, n - i);
            if (k > 0) {
                acc_buf_append(b, s + i, (size_t)k);
                i += (size_t)k;
            } else {
                acc_buf_append(b, "\xEF\xBF\xBD", 3);
                i++;
            }
            continue;
        }
        char esc[7] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        acc_buf_append(b, esc, elen);
        i++;
    }
}

void rt_json_str(acc_buf *b, const char *s, size_t n) {
    acc_buf_putc(b, '"');
    rt_json_escape(b, s, n);
    acc_buf_putc(b, '"');
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
