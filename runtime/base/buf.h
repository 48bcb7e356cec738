/*
 * buf.h: a growable byte buffer, the one every module appends text and bytes to (JSON replies,
 * receipts, SQL-free strings). Its data is always NUL-terminated after len bytes, so it can be
 * handed to functions that want a C string, and it may hold NULs inside.
 *
 * A failed growth leaves the buffer as it was and sets `failed`; later appends do nothing, so a
 * caller appends freely and checks once at the end (acc_buf_failed). Memory comes from malloc (the
 * process's allocator, jemalloc); acc_buf_free releases it, acc_buf_take hands it to the caller.
 */
#ifndef ACCRUE_BASE_BUF_H
#define ACCRUE_BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct acc_buf {
    char *data; /* NULL until the first append */
    size_t len, cap;
    bool failed;
} acc_buf;

#define ACC_BUF_INIT {0}

void acc_buf_append(acc_buf *b, const void *data, size_t len);
void acc_buf_puts(acc_buf *b, const char *s);
void acc_buf_putc(acc_buf *b, char c);
void acc_buf_printf(acc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes room for n more bytes; returns where they go (then acc_buf_commit(b, written)) or NULL. */
char *acc_buf_reserve(acc_buf *b, size_t n);
void acc_buf_commit(acc_buf *b, size_t n);
static inline bool acc_buf_failed(const acc_buf *b) { return b->failed; }
/* Appends s[0..len) as a JSON string, quotes included: '"' and '\\' escaped, control characters as
 * \n, \t, ... or \u00XX, UTF-8 passed through, and each byte that is not part of valid UTF-8 (a
 * model's output, a client's text) replaced by U+FFFD, so the result is always valid JSON. */
void acc_buf_json_string(acc_buf *b, const char *s, size_t len);
/* Appends a number in decimal (no printf: these are on hot paths). */
void acc_buf_put_u64(acc_buf *b, unsigned long long v);
void acc_buf_put_i64(acc_buf *b, long long v);
void acc_buf_reset(acc_buf *b); /* len = 0, keeps the memory, clears failed */
void acc_buf_free(acc_buf *b);
/* The data, NUL-terminated (never NULL unless failed), now the caller's to free(); the buffer is
 * left empty. */
char *acc_buf_take(acc_buf *b, size_t *len);

#endif
