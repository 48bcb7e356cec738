/*
 * eth_test_util.h: what the key, EIP-712, Merkle and cross-check tests share beyond tests/util.h
 * (the clock, random generator, scratch directories and the accrue binary): hex comparison.
 */
#ifndef ACCRUE_TESTS_ETH_TEST_UTIL_H
#define ACCRUE_TESTS_ETH_TEST_UTIL_H

#include <stdint.h>
#include <string.h>

#include "meters/eth/hex.h"
#include "tests/util.h"

static inline int test_hex_eq(const uint8_t *data, size_t len, const char *want) {
    char buf[2 * 256 + 3];
    if (len > 256) return 0;
    hex_encode0x(data, len, buf);
    return strcmp(buf, want) == 0;
}

#endif
