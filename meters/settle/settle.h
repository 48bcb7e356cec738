/*
 * settle.h: settlement batches: signed, hash-chained statements of who is owed what, cut from the
 * ledger, which an Ethereum contract (meters/settle/contract/claim.vy) or any Ethereum library checks
 * with ecrecover and a Merkle proof.
 *
 * A batch covers a contiguous range of the ledger's postings, [first_transfer, last_transfer] in
 * the ledger's sequence (ledger.h: every stored posting has a seq, 1, 2, 3, ... with no gap): the
 * first batch starts at seq 1 and each later one right after the last one's range, so no posting is
 * covered twice or skipped. It nets the range per payee address: an entry (address, amount) for
 * each address account credited under a charge code (model call, data query, agent fee, operator
 * fee) in the range, amount = the sum of those credits, entries sorted by address. Settlement
 * postings in a range (earlier batches' own) and top-ups pay nobody; the "operator" system account's
 * fee is not an address and stays in the ledger. The entries are committed to by an OpenZeppelin
 * StandardMerkleTree root over [address, uint256] (meters/eth/merkle.h).
 *
 * Typed data: the batch is signed as EIP-712 (meters/eth/eip712.h digests it), in exactly the form
 * the claim contract recomputes (the contract's header comment is the other copy of this):
 *     EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
 *         name "accrue settlement", version "1"
 *     Batch(uint64 sequence,bytes32 prevHash,uint64 firstTransfer,uint64 lastTransfer,
 *           uint64 entryCount,uint256 total,bytes32 root,uint64 cutTime)
 * prevHash is the EIP-712 digest of batch sequence-1 (zero for batch 1): the chain. The domain's
 * chain id and verifying contract (the claim contract's address) give replay protection across
 * chains and contracts; the sequence and the link, within one.
 *
 * In the ledger, a batch is one settlement posting (code settlement): one transfer per entry, from
 * the address's account to the "settlement" system account (so the amount moves from the payee's
 * accrued to its settled balance), with the signed batch's header as the posting's event. Written
 * in one commit, it is there whole or not at all: a crash while cutting leaves no batch or a whole
 * one. The posting commits only if no other batch was committed since the cut began (the ledger's
 * compare-and-set on the last settlement posting), so two cutters, in one process or several,
 * never make two batches of one sequence number. The entries are not stored twice: they are the
 * posting's transfers.
 *
 * JSON (settle_batch_json; `accrue batch SEQ --json`): the fields below by their snake_case names,
 * hashes and signatures as 0x-hex, addresses in EIP-55, total and amounts as decimal strings; the
 * entries as [address, amount] pairs (the values of OZ's StandardMerkleTree.of(values,
 * ["address","uint256"])); and under "typed_data" the payload a wallet's eth_signTypedData_v4 takes
 * (types, primaryType, domain, message), with "digest", "signature" and "signer" beside it.
 *
 * Threads: every function that takes a ledger_t reads or writes the database and may wait on disk
 * and on the ledger's writer: call them from a worker thread, never from an event loop. They may run
 * on several threads at once. The others are pure computation.
 *
 * Errors: ACC_OK or a negative ACC_E* code with a one-line message in err (runtime/base/status.h).
 */
#ifndef ACCRUE_METERS_SETTLE_H
#define ACCRUE_METERS_SETTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meters/eth/keys.h"
#include "meters/eth/merkle.h"
#include "meters/ledger/ledger.h"
#include "runtime/base/buf.h"
#include "runtime/base/status.h"

#define SETTLE_DOMAIN_NAME "accrue settlement"
#define SETTLE_DOMAIN_VERSION "1"

typedef struct settle_entry {
    uint8_t address[ETH_ADDRESS_SIZE];
    uint64_t amount; /* ledger base units, > 0 */
} settle_entry_t;

/* A signed batch. Made by settle_cut, settle_batch_get or settle_batch_parse; freed with
 * settle_batch_free (which frees entries). */
typedef struct settle_batch {
    uint64_t sequence;                 /* 1, 2, 3, ... */
    uint8_t prev_hash[32];             /* digest of batch sequence-1; zero for batch 1 */
    uint64_t first_transfer;           /* the ledger seqs covered, inclusive */
    uint64_t last_transfer;
    uint64_t entry_count;
    uint64_t total;                    /* sum of the amounts */
    uint8_t root[32];                  /* StandardMerkleTree root of the entries */
    uint64_t cut_time;                 /* Unix seconds */
    uint64_t chain_id;                 /* the EIP-712 domain */
    uint8_t contract[ETH_ADDRESS_SIZE];/* verifyingContract: the claim contract */
    uint8_t signer[ETH_ADDRESS_SIZE];
    uint8_t digest[32];                /* EIP-712 digest of all of the above but signer */
    uint8_t signature[ETH_SIGNATURE_SIZE];
    uint64_t ledger_seq;               /* the settlement posting's seq (0: not read from a ledger) */
    settle_entry_t *entries;           /* entry_count entries, ascending by address */
} settle_batch_t;

void settle_batch_free(settle_batch_t *b);

/* --- Pure: typed data, digest, signature, tree, JSON ------------------------------------------ */

/* Fills entry_count, total and root from the entries (entry_count of them, which must be sorted by
 * address with no address twice and no zero amount: else ACC_EINVAL naming the entry). */
int settle_batch_commit_entries(settle_batch_t *b, acc_err *err);
/* The typed data in the eth_signTypedData_v4 shape, compact JSON appended to out. */
int settle_typed_data_json(const settle_batch_t *b, acc_buf *out, acc_err *err);
/* The EIP-712 digest of the batch's fields (through meters/eth/eip712.h). */
int settle_batch_digest(const settle_batch_t *b, uint8_t digest[32], acc_err *err);
/* Sets digest, signature and signer: key signs the digest. */
int settle_batch_sign(settle_batch_t *b, const eth_key *key, acc_err *err);
/* The batch's Merkle tree (freed with merkle_free); its value i is entry i. */
int settle_batch_tree(const settle_batch_t *b, merkle_tree **out, acc_err *err);

/* The whole batch as JSON (see the top), pretty-printed, appended to out. */
int settle_batch_json(const settle_batch_t *b, acc_buf *out, acc_err *err);
/* One line of the batch without its entries (for `accrue batches --json`), appended to out. */
int settle_batch_summary_json(const settle_batch_t *b, acc_buf *out, acc_err *err);
/* The proof of address's entry, as JSON ({sequence, address, amount, leaf, proof, root, digest,
 * chain_id, verifying_contract}) appended to out; ACC_ENOTFOUND when the batch has no entry for it. */
int settle_proof_json(const settle_batch_t *b, const merkle_tree *tree, const uint8_t address[ETH_ADDRESS_SIZE],
                      acc_buf *out, acc_err *err);

/* Parses a batch written by settle_batch_json (or by any tool in that shape). Checks the shape
 * only: every field present and well-formed (the message names the field, "entries[3][1]: ...");
 * whether the fields hold together is settle_verify's. *out is freed with settle_batch_free. */
int settle_batch_parse(const char *json, size_t len, settle_batch_t **out, acc_err *err);

/* --- Verification ------------------------------------------------------------------------------ */

/* Told each check that held, in order, as a line ("signature: recovers to the signer 0x..."). */
typedef void (*settle_report_fn)(void *ud, const char *line);

typedef struct settle_verify_opts {
    const settle_batch_t *prev; /* the batch before (for the link), or NULL */
    ledger_t *ledger;           /* re-derive from this ledger (and take prev from it), or NULL */
    settle_report_fn report;    /* may be NULL */
    void *ud;
} settle_verify_opts_t;

/* Verifies a batch file's text: its shape; entries sorted, distinct and non-zero; entry_count and
 * total; the root recomputed from the entries; typed_data (when present) equal to the fields; the
 * digest recomputed; the signature recovering to the signer; the link to the previous batch
 * (sequence, prev_hash and the transfer range following it; batch 1 needs no previous batch);
 * and, given a ledger: the same batch stored there, and its entries re-derived from the ledger's
 * postings in the range, and equal to the batch's settlement transfers. ACC_OK when all hold;
 * else the code of the first that fails (ACC_EINVAL for the shape, ACC_EBADSIG for the signature,
 * ACC_EMISMATCH for the rest, ACC_ENOTFOUND for a batch the ledger does not have) and err naming
 * it ("root: the entries give 0x..., the batch says 0x..."). *checked (may be NULL) tells whether
 * the link was checked (false without a previous batch for a batch after the first). */
int settle_verify(const char *json, size_t len, const settle_verify_opts_t *opts, bool *link_checked, acc_err *err);

/* --- The ledger side ---------------------------------------------------------------------------- */

typedef struct settle_cut_opts {
    const eth_key *key;            /* the host's signing key */
    uint64_t chain_id;             /* 0: the previous batch's (needed for the first) */
    const uint8_t *contract;       /* 20 bytes, or NULL: the previous batch's (needed for the first) */
    uint64_t cut_time;             /* Unix seconds; 0 = now */
    uint64_t max_entries;          /* cut before the range passes this many payees; 0 = as many
                                      as one posting holds (LEDGER_MAX_TRANSFERS) */
} settle_cut_opts_t;

/* Cuts the next batch: the postings after the last batch up to the ledger's last committed seq
 * (fewer when their payees pass max_entries), netted, signed and committed with its settlement
 * transfers. *out gets the batch (caller frees), or NULL when there is nothing to settle (no payee
 * earned anything since the last batch): ACC_OK either way. Cuts in one process run one at a time;
 * when a cut in another process commits first, this one starts over (a few times, then
 * ACC_EBUSY). */
int settle_cut(ledger_t *l, const settle_cut_opts_t *o, settle_batch_t **out, acc_err *err);

/* What the payees' accounts have accrued (earned and not yet settled), in all: the figure the
 * server compares with --settle-threshold. It reads the postings since the last batch (what the
 * next cut would read), so check it at the cut's cadence, not per request. */
int settle_accrued(ledger_t *l, uint64_t *total, acc_err *err);

/* The batch of that sequence number stored in the ledger (ACC_ENOTFOUND if none); sequence 0 means
 * the last one. Caller frees. */
int settle_batch_get(ledger_t *l, uint64_t sequence, settle_batch_t **out, acc_err *err);

/* Which stored batches settle_batches lists. */
typedef struct settle_list_opts {
    const uint8_t *address; /* 20 bytes: only the batches with an entry for it; NULL: every batch */
    uint64_t before;        /* only batches with a sequence below it; 0: from the last one */
    size_t limit;           /* at most this many; 0: all */
} settle_list_opts_t;

/* Told each listed batch without its entries (entries NULL; entry_count set) and, when the list is
 * an address's, that address's entry in it (else NULL). Returns ACC_OK to go on. */
typedef int (*settle_batch_fn)(void *ud, const settle_batch_t *b, const settle_entry_t *entry);
/* The stored batches, newest first, as o says (NULL: all), each read by itself from the ledger's
 * index of settlements (by account, for an address): the cost grows with what is listed, not with
 * the number of batches or their entries. fn's failure is returned as it is (err untouched). */
int settle_batches(ledger_t *l, const settle_list_opts_t *o, settle_batch_fn fn, void *ud, acc_err *err);

/* The entries the ledger's postings in [first, last] net to (as a cut would make them), malloc'd
 * into *entries (caller frees), *count of them, sorted by address. */
int settle_derive(ledger_t *l, uint64_t first, uint64_t last, settle_entry_t **entries, size_t *count, acc_err *err);

#endif
