/*
 * eip712.h: EIP-712 typed structured data hashing, from the JSON a wallet's eth_signTypedData_v4
 * takes: {"types": {...}, "primaryType": "...", "domain": {...}, "message": {...}}.
 *
 * The whole type system: uint8..uint256, int8..int256, address, bool, bytes1..bytes32, bytes,
 * string, structs, fixed and dynamic arrays of any of these (multi-dimensional too). encodeType lists
 * the primary type, then every struct it depends on sorted by name; a struct may hold itself through
 * a dynamic array (as the EIP and MetaMask hash it). Refused, with an error naming the place
 * (e.g. "message.to.wallet"): an unknown type, a value out of range, a wrong length, a missing field,
 * a type that can never end (a struct that always holds itself, directly or through fixed arrays).
 *
 * Values: integers as JSON integers or as decimal ("-5" for intN) or 0x-hex strings (integers past
 * 2^63 must be strings: the JSON parser refuses larger numbers); addresses as 0x-hex (all lower, all
 * upper or EIP-55); bool as true/false; bytesN and bytes as 0x-hex of exactly the right length;
 * string as a JSON string (U+0000 included). Every declared field must be present; a null or
 * missing struct is refused (MetaMask v4 and eth-account hash it as 32 zero bytes). Keys of a value
 * object that its type does not declare are ignored, as MetaMask and eth-account do. When types has
 * no EIP712Domain it is inferred from the domain's keys in the canonical order (name, version,
 * chainId, verifyingContract, salt).
 *
 * Errors: runtime/base/status.h: ACC_EINVAL with a message naming the place, or ACC_ENOMEM.
 */
#ifndef ACCRUE_METERS_ETH_EIP712_H
#define ACCRUE_METERS_ETH_EIP712_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

typedef struct eip712_doc eip712_doc;

/* Parses and checks the typed data (types and values both). *out is freed with eip712_free. */
int eip712_parse(const char *json, size_t len, eip712_doc **out, acc_err *err);
void eip712_free(eip712_doc *doc);

/* keccak256("\x19\x01" || domainSeparator || hashStruct(primaryType, message)); for primaryType
 * "EIP712Domain" the message hash is left out (as MetaMask does). */
void eip712_digest(const eip712_doc *doc, uint8_t digest[32]);
void eip712_domain_separator(const eip712_doc *doc, uint8_t out[32]);
/* hashStruct(primaryType, message). */
void eip712_message_hash(const eip712_doc *doc, uint8_t out[32]);
/* encodeType of a struct named in types (NUL-terminated, malloc'd: caller frees), or NULL. */
char *eip712_encode_type(const eip712_doc *doc, const char *type_name);

/* Parse and digest in one call. */
int eip712_digest_json(const char *json, size_t len, uint8_t digest[32], acc_err *err);

#endif
