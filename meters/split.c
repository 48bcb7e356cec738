/*
 * split.c: prices, fees and largest-remainder splits, in exact integer arithmetic.
 *
 * Products of an amount (< 2^63) and a weight (< 2^64) need 127 bits, and their sum over up to
 * 65535 parts 144: the split works in unsigned __int128 (GCC and Clang's 128-bit integer; C11 has
 * none) and refuses weight totals that would not fit. Nothing here is floating point.
 */
#include <stdlib.h>

#include "meters/meters.h"
#include "runtime/base/sort.h"

typedef unsigned __int128 u128;

typedef struct rem {
    u128 r;
    uint32_t i;
} rem_t;

/* Larger remainder first; ties: the lower index first. */
static int by_remainder(const void *a, const void *b) {
    const rem_t *x = a, *y = b;
    if (x->r != y->r) return x->r > y->r ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

int meter_split(ledger_amount_t total, const uint64_t *weights, size_t n, ledger_amount_t *parts) {
    if (n == 0) return ACC_EINVAL;
    if (n > UINT32_MAX) return ACC_ELIMIT;
    u128 sum = 0;
    for (size_t i = 0; i < n; i++) sum += weights[i]; /* n < 2^32, weights < 2^64: < 2^96 */
    if (sum == 0) {
        for (size_t i = 0; i < n; i++) parts[i] = 0;
        return total == 0 ? ACC_OK : ACC_EINVAL;
    }
    /* The floor of each exact share; what the floors leave is less than one unit per part. The
     * remainders (exact, as 128-bit numerators over the same sum) are kept as they go: on the stack
     * for small splits, the usual case. */
    rem_t stack[32], *r = n <= 32 ? stack : malloc(n * sizeof *r);
    if (!r) return ACC_ENOMEM;
    ledger_amount_t given = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        u128 p = (u128)total * weights[i], q = p / sum, rem = p - q * sum;
        parts[i] = (ledger_amount_t)q;
        given += parts[i];
        if (rem) r[m++] = (rem_t){rem, (uint32_t)i};
    }
    ledger_amount_t left = total - given;
    /* One more unit each for the `left` parts with the largest remainders. */
    if (left > 0) {
        acc_sort(r, m, sizeof *r, by_remainder); /* a handful: by insertion (qsort was half the split's time) */
        for (size_t j = 0; j < left; j++) parts[r[j].i]++; /* left <= m: the remainders add up to left */
    }
    if (r != stack) free(r);
    return ACC_OK;
}

int meter_fee(ledger_amount_t amount, uint32_t bps, ledger_amount_t *out) {
    u128 f = ((u128)amount * bps + METER_BPS / 2) / METER_BPS;
    if (f > LEDGER_AMOUNT_MAX) return ACC_ELIMIT;
    *out = (ledger_amount_t)f;
    return ACC_OK;
}

int meter_price_model(const meter_model_t *m, uint64_t in_tokens, uint64_t out_tokens, ledger_amount_t *out) {
    u128 per_tokens = (u128)in_tokens * m->price_per_1k_in + (u128)out_tokens * m->price_per_1k_out;
    u128 cost = m->price_per_call + (per_tokens + 999) / 1000; /* ceil: a started thousand is paid in part */
    if (cost > LEDGER_AMOUNT_MAX) return ACC_ELIMIT;
    *out = (ledger_amount_t)cost;
    return ACC_OK;
}

int meter_price_dataset(const meter_dataset_t *d, uint64_t records, ledger_amount_t *out) {
    u128 cost = d->price_per_query + (u128)records * d->price_per_record;
    if (cost > LEDGER_AMOUNT_MAX) return ACC_ELIMIT;
    *out = (ledger_amount_t)cost;
    return ACC_OK;
}
