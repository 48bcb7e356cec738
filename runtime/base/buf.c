/*
 * buf.c: the growable buffer (buf.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

char *acc_buf_reserve(acc_buf *b, size_t n) {
    if (b->failed) return NULL;
    if (n >= SIZE_MAX - b->len) goto fail;
    size_t need = b->len + n + 1; /* the NUL */
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *p = realloc(b->data, cap);
        if (!p) goto fail;
        b->data = p;
        b->cap = cap;
    }
    return b->data + b->len;
fail:
    b->failed = true;
    return NULL;
}

void acc_buf_commit(acc_buf *b, size_t n) {
    b->len += n;
    b->data[b->len] = '\0';
}

void acc_buf_append(acc_buf *b, const void *data, size_t len) {
    char *p = acc_buf_reserve(b, len);
    if (!p) return;
    if (len) memcpy(p, data, len);
    acc_buf_commit(b, len);
}

void acc_buf_puts(acc_buf *b, const char *s) { acc_buf_append(b, s, strlen(s)); }

void acc_buf_putc(acc_buf *b, char c) { acc_buf_append(b, &c, 1); }

void acc_buf_printf(acc_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    char *p = acc_buf_reserve(b, (size_t)n);
    if (!p) return;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    acc_buf_commit(b, (size_t)n);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if there is none: no overlongs,
 * no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void acc_buf_json_string(acc_buf *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    acc_buf_putc(b, '"');
    size_t run = 0; /* bytes copied as they are, flushed in one append */
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            run++, i++;
            continue;
        }
        size_t seq = c >= 0x80 ? utf8_seq(p + i, len - i) : 0;
        if (seq) {
            run += seq, i += seq;
            continue;
        }
        acc_buf_append(b, p + i - run, run);
        run = 0;
        char esc[7] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (c < 0x20) {
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                n = 6;
            } else {
                memcpy(esc, "\xef\xbf\xbd", 3); /* U+FFFD for a byte that is not UTF-8 */
                n = 3;
            }
        }
        acc_buf_append(b, esc, n);
        i++;
    }
    acc_buf_append(b, p + len - run, run);
    acc_buf_putc(b, '"');
}

void acc_buf_put_u64(acc_buf *b, unsigned long long v) {
    char tmp[20];
    size_t n = 0;
    do tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    acc_buf_append(b, tmp + sizeof tmp - n, n);
}

void acc_buf_put_i64(acc_buf *b, long long v) {
    if (v < 0) {
        acc_buf_putc(b, '-');
        acc_buf_put_u64(b, 0ULL - (unsigned long long)v);
    } else {
        acc_buf_put_u64(b, (unsigned long long)v);
    }
}

void acc_buf_reset(acc_buf *b) {
    b->len = 0;
    b->failed = false;
    if (b->data) b->data[0] = '\0';
}

void acc_buf_free(acc_buf *b) {
    free(b->data);
    *b = (acc_buf)ACC_BUF_INIT;
}

char *acc_buf_take(acc_buf *b, size_t *len) {
    if (b->failed) {
        acc_buf_free(b);
        return NULL;
    }
    if (!b->data) {
        if (!acc_buf_reserve(b, 0)) return NULL;
        acc_buf_commit(b, 0);
    }
    char *d = b->data;
    if (len) *len = b->len;
    *b = (acc_buf)ACC_BUF_INIT;
    return d;
}
