/*
 * internal.h: what the settle module's files share (private to meters/settle and its tests).
 */
#ifndef ACCRUE_METERS_SETTLE_INTERNAL_H
#define ACCRUE_METERS_SETTLE_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "meters/settle/settle.h"

/* v as a uint256, big-endian. */
void settle_amount_u256(uint64_t v, uint8_t out[32]);
int settle_address_cmp(const uint8_t a[ETH_ADDRESS_SIZE], const uint8_t b[ETH_ADDRESS_SIZE]);

/* Entries ascending by address, none twice, none zero (ACC_EINVAL naming the first that is not). */
int settle_entries_check(const settle_entry_t *e, size_t n, acc_err *err);
/* Their sum, refused past 2^64-1. */
int settle_entries_total(const settle_entry_t *e, size_t n, uint64_t *total, acc_err *err);
/* Their StandardMerkleTree root; the tree too when tree_out is not NULL (caller frees). n >= 1. */
int settle_entries_root(const settle_entry_t *e, size_t n, merkle_tree **tree_out, uint8_t root[32], acc_err *err);
/* The index of address's entry, or -1. */
ptrdiff_t settle_find_entry(const settle_batch_t *b, const uint8_t address[ETH_ADDRESS_SIZE]);

/* The eth_signTypedData_v4 object of a batch (new reference), NULL when out of memory. */
json_t *settle_typed_data(const settle_batch_t *b);
/* The EIP-712 digest of a typed-data object, through meters/eth/eip712.h. */
int settle_typed_data_digest(const json_t *td, uint8_t digest[32], acc_err *err);

/* The header (every field but the entries and the typed data) as compact JSON: what a settlement
 * posting stores as its event. */
int settle_header_json(const settle_batch_t *b, acc_buf *out, acc_err *err);
int settle_header_from_json(const json_t *o, settle_batch_t *b, acc_err *err);
/* A batch object's header and entries; *nentries is the length of its entries array, which may
 * differ from the entry_count it claims. */
int settle_batch_from_json(const json_t *o, settle_batch_t **out, size_t *nentries, acc_err *err);
/* Parses JSON text (duplicate keys refused); NULL with the reason in err. */
json_t *settle_json_load(const char *json, size_t len, acc_err *err);
/* A JSON integer >= 0 or a decimal string up to 2^64-1. */
int settle_json_u64(const json_t *v, uint64_t *out);

#endif
