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
