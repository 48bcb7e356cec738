/*
 * hex.h: the one hex codec of the Ethereum modules (keys, signatures, digests, Merkle proofs).
 * Lower-case output with a 0x prefix; input with or without 0x, either case.
 */
#ifndef ACCRUE_METERS_ETH_HEX_H
#define ACCRUE_METERS_ETH_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes "0x" and 2*len lower-case hex digits and a NUL into out, which must hold 2*len+3 bytes. */
void hex_encode0x(const uint8_t *data, size_t len, char *out);

/* Decodes exactly want bytes from s (s_len chars, optional 0x prefix). Returns 0, or -1 when s is
 * not hex or does not hold exactly want bytes. */
int hex_decode_exact(const char *s, size_t s_len, uint8_t *out, size_t want);

/* Decodes an 0x-prefixed hex string of any even length into a malloc'd buffer (caller frees).
 * Returns 0, or -1 when it is not "0x" followed by an even number of hex digits. *out is NULL when
 * the length is 0. */
int hex_decode_alloc(const char *s, size_t s_len, uint8_t **out, size_t *out_len);

/* The value of one hex digit, or -1. */
int hex_digit(int c);

#endif
