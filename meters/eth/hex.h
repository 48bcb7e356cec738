/*
 * hex.h: the one hex codec of accrue (keys, signatures, digests, Merkle proofs, EIP-712 bytes, CLI
 * flags). Output is lower case with a 0x prefix; input is "0x" (or "0X") followed by hex digits of
 * either case, and nothing else: no spaces, no missing prefix.
 *
 * Errors follow runtime/base/status.h. The messages describe the text's shape ("expected 0x and 64
 * hex digits, got 62") and never quote it, since it may be a secret; callers prefix what it was
 * (acc_err_prefix: "--digest: ...").
 */
#ifndef ACCRUE_METERS_ETH_HEX_H
#define ACCRUE_METERS_ETH_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

/* Writes "0x" and 2*len lower-case hex digits and a NUL into out, which must hold 2*len+3 bytes. */
void hex_encode0x(const uint8_t *data, size_t len, char *out);

/* Parses exactly want bytes from s (len chars): "0x" and 2*want hex digits. ACC_OK, or ACC_EINVAL
 * (out is then unspecified). */
int hex_parse0x(const char *s, size_t len, uint8_t *out, size_t want, acc_err *err);

/* Parses "0x" and any even number of hex digits into a malloc'd buffer (caller frees; *out is NULL
 * when there are no digits). ACC_OK, ACC_EINVAL or ACC_ENOMEM. */
int hex_parse0x_alloc(const char *s, size_t len, uint8_t **out, size_t *out_len, acc_err *err);

/* The value of one hex digit, or -1. */
int hex_digit(int c);

#endif
