/*
 * sort.h: qsort for the small arrays hot paths sort (a split's remainders, a span's records, the
 * words seen after a context): by insertion up to 32 elements of up to 64 bytes, where qsort's setup
 * and calls cost more than the sort itself, and qsort past that. The order is qsort's for a
 * comparator under which no two different elements compare equal.
 */
#ifndef ACCRUE_BASE_SORT_H
#define ACCRUE_BASE_SORT_H

#include <stdlib.h>
#include <string.h>

static inline void acc_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
    if (n > 32 || size > 64) {
        qsort(base, n, size, cmp);
        return;
    }
    char *b = base, x[64];
    for (size_t i = 1; i < n; i++) {
        memcpy(x, b + i * size, size);
        size_t j = i;
        for (; j > 0 && cmp(b + (j - 1) * size, x) > 0; j--) memcpy(b + j * size, b + (j - 1) * size, size);
        memcpy(b + j * size, x, size);
    }
}

#endif
