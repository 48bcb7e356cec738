/*
 * prefetch.h: starts loading memory a thread is about to touch into the cache (a host that knows
 * which sandbox or session it runs next: sandbox_prefetch, the server's pool). Hints only.
 */
#ifndef ACCRUE_BASE_PREFETCH_H
#define ACCRUE_BASE_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

/* Every cache line of [p, p + len), len >= 1, whatever p's alignment, for writing. */
static inline void acc_prefetch_lines(const void *p, size_t len) {
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, last = ((uintptr_t)p + len - 1) & ~(uintptr_t)63;
    for (; line <= last; line += 64) __builtin_prefetch((const void *)line, 1, 3);
}

#endif
