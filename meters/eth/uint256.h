/*
 * uint256.h: exact 256-bit unsigned integers as 32 big-endian bytes, the form ABI encoding and
 * the Merkle leaves use. Settlement amounts and EIP-712 integers can exceed 2^64, so they are
 * parsed from decimal (or 0x-hex) strings here, never through a double.
 */
#ifndef ACCRUE_METERS_ETH_UINT256_H
#define ACCRUE_METERS_ETH_UINT256_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

/* Decimal digits only (no sign, no spaces, at least one digit, leading zeros allowed), value at most
 * 2^256-1. ACC_OK, or ACC_EINVAL saying which of those it breaks (out is then unspecified). */
int uint256_from_decimal(const char *s, size_t len, uint8_t out[32], acc_err *err);

/* "0x" (or "0X") followed by 1 to 64 hex digits. ACC_OK, or ACC_EINVAL. */
int uint256_from_hex(const char *s, size_t len, uint8_t out[32], acc_err *err);

/* Writes the decimal form and a NUL into out (at least 79 bytes). */
void uint256_to_decimal(const uint8_t v[32], char out[79]);

/* The number of significant bits of v (0 for zero). */
unsigned uint256_bit_length(const uint8_t v[32]);

/* v = -v modulo 2^256 (two's complement). */
void uint256_negate(uint8_t v[32]);

#endif
