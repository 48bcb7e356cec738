/*
 * merkle.h: OpenZeppelin StandardMerkleTree for [address, uint256] values, the tree a settlement
 * batch commits its entries to.
 *
 * leaf  = keccak256(keccak256(abi.encode(address, amount)))   (double hash: no inner node is a leaf)
 * inner = keccak256(min(a,b) || max(a,b))                     (sorted pair, as MerkleProof.verify)
 * Leaves are sorted by hash and laid out as OZ's flat array: node 0 is the root, the children of
 * node i are 2i+1 and 2i+2, and sorted leaf k sits at index 2n-2-k. So the root equals
 * StandardMerkleTree.of(values, ["address","uint256"]).root and every proof equals its getProof().
 *
 * Errors: runtime/base/status.h (ACC_OK or a negative ACC_E* code, a message in err, which may be
 * NULL): ACC_EINVAL for malformed input, ACC_ENOMEM, ACC_EMISMATCH for a proof that does not lead to
 * the root.
 */
#ifndef ACCRUE_METERS_ETH_MERKLE_H
#define ACCRUE_METERS_ETH_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

typedef struct merkle_value {
    uint8_t address[20];
    uint8_t amount[32]; /* uint256, big-endian */
} merkle_value;

typedef struct merkle_tree merkle_tree;

/* Parses a JSON array of [address, amount] pairs, amounts as decimal strings (or non-negative JSON
 * integers). On success *out is a malloc'd array of *count values (caller frees with free()). The
 * error names the entry at fault, e.g. "values[3][1]: ...". */
int merkle_values_parse_json(const char *json, size_t len, merkle_value **out, size_t *count, acc_err *err);

/* The leaf hash of one value. */
void merkle_leaf_hash(const merkle_value *value, uint8_t out[32]);
/* The sorted-pair hash of two nodes. */
void merkle_hash_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[32]);

/* Builds the tree of count >= 1 values (uses the machine's cores for large trees). *out is freed
 * with merkle_free. */
int merkle_build(const merkle_value *values, size_t count, merkle_tree **out, acc_err *err);
/* The same tree over leaf hashes computed elsewhere (any leaf encoding OZ's StandardMerkleTree
 * supports); leaves are only read. */
int merkle_build_from_leaves(const uint8_t (*leaves)[32], size_t count, merkle_tree **out, acc_err *err);
void merkle_free(merkle_tree *tree);

void merkle_root(const merkle_tree *tree, uint8_t root[32]);
size_t merkle_count(const merkle_tree *tree);
/* The most hashes a proof of this tree can hold (its height). */
size_t merkle_max_proof_len(const merkle_tree *tree);
/* The node index (OZ treeIndex) of input value i. */
size_t merkle_tree_index(const merkle_tree *tree, size_t value_index);
/* Node i of the flat array (0 is the root), i < 2*count-1. */
const uint8_t *merkle_node(const merkle_tree *tree, size_t node_index);

/* Writes the proof of input value i (sibling hashes from the leaf up) into proof, which holds at
 * least merkle_max_proof_len() entries; returns the number written. */
size_t merkle_proof(const merkle_tree *tree, size_t value_index, uint8_t (*proof)[32]);

/* ACC_OK when proof leads from leaf to root (MerkleProof.verify), else ACC_EMISMATCH. */
int merkle_verify(const uint8_t root[32], const uint8_t leaf[32], const uint8_t (*proof)[32], size_t proof_len,
                  acc_err *err);

#endif
