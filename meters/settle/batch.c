/*
 * batch.c: a settlement batch as data: its entries' tree, its EIP-712 typed data and digest, its
 * signature, and its JSON, written and read. No ledger here (cut.c reads and writes the ledger).
 *
 * The digest goes through meters/eth/eip712.h from the very typed-data JSON the batch publishes,
 * so what we sign is, by construction, what a wallet or eth-account recomputes from
 * `accrue batch --json`; there is no second EIP-712 encoder to drift from the first.
 */
#include "meters/settle/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/eip712.h"
#include "meters/eth/hex.h"
#include "meters/eth/uint256.h"

void settle_batch_free(settle_batch_t *b) {
    if (!b) return;
    free(b->entries);
    free(b);
}

void settle_amount_u256(uint64_t v, uint8_t out[32]) {
    memset(out, 0, 24);
    for (int i = 0; i < 8; i++) out[31 - i] = (uint8_t)(v >> (8 * i));
}

int settle_address_cmp(const uint8_t a[ETH_ADDRESS_SIZE], const uint8_t b[ETH_ADDRESS_SIZE]) {
    return memcmp(a, b, ETH_ADDRESS_SIZE);
}

int settle_entries_check(const settle_entry_t *e, size_t n, acc_err *err) {
    for (size_t i = 0; i < n; i++) {
        if (e[i].amount == 0) return acc_fail(err, ACC_EINVAL, "entries[%zu]: amount is zero", i);
        if (i > 0 && settle_address_cmp(e[i - 1].address, e[i].address) >= 0) {
            char a[ETH_ADDRESS_TEXT_SIZE];
            eth_address_to_text(e[i].address, a);
            return acc_fail(err, ACC_EINVAL, "entries[%zu]: %s %s", i, a,
                            settle_address_cmp(e[i - 1].address, e[i].address) == 0
                                ? "appears twice"
                                : "is not in ascending address order");
        }
    }
    return ACC_OK;
}

int settle_entries_total(const settle_entry_t *e, size_t n, uint64_t *total, acc_err *err) {
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        if (__builtin_add_overflow(t, e[i].amount, &t))
            return acc_fail(err, ACC_EINVAL, "entries: the amounts sum past 2^64-1");
    *total = t;
    return ACC_OK;
}

int settle_entries_root(const settle_entry_t *e, size_t n, merkle_tree **tree_out, uint8_t root[32],
                        acc_err *err) {
    if (n == 0) return acc_fail(err, ACC_EINVAL, "entries: a batch needs at least one entry");
    merkle_value *vals = malloc(n * sizeof *vals);
    if (!vals) return acc_fail(err, ACC_ENOMEM, "entries: out of memory for %zu Merkle values", n);
    for (size_t i = 0; i < n; i++) {
        memcpy(vals[i].address, e[i].address, ETH_ADDRESS_SIZE);
        settle_amount_u256(e[i].amount, vals[i].amount);
    }
    merkle_tree *tree;
    int rc = merkle_build(vals, n, &tree, err);
    free(vals);
    if (rc != ACC_OK) return acc_err_prefix(err, "entries: Merkle tree");
    merkle_root(tree, root);
    if (tree_out)
        *tree_out = tree;
    else
        merkle_free(tree);
    return ACC_OK;
}

int settle_batch_commit_entries(settle_batch_t *b, acc_err *err) {
    int rc = settle_entries_check(b->entries, b->entry_count, err);
    if (rc == ACC_OK) rc = settle_entries_total(b->entries, b->entry_count, &b->total, err);
    if (rc == ACC_OK) rc = settle_entries_root(b->entries, b->entry_count, NULL, b->root, err);
    return rc;
}

int settle_batch_tree(const settle_batch_t *b, merkle_tree **out, acc_err *err) {
    uint8_t root[32];
    return settle_entries_root(b->entries, b->entry_count, out, root, err);
}

/* ---------------------------------------------------------------- JSON helpers */

static json_t *json_hex(const uint8_t *data, size_t len) {
    char text[2 * ETH_SIGNATURE_SIZE + 3];
    hex_encode0x(data, len, text);
    return json_string(text);
}

static json_t *json_address(const uint8_t a[ETH_ADDRESS_SIZE]) {
    char text[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(a, text);
    return json_string(text);
}

static json_t *json_decimal(uint64_t v) {
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    return json_string(text);
}

/* A uint64 as a JSON number when JavaScript holds it exactly (below 2^53), else a decimal string,
 * as eth_signTypedData_v4 callers expect. */
static json_t *json_u64(uint64_t v) {
    return v < (UINT64_C(1) << 53) ? json_integer((json_int_t)v) : json_decimal(v);
}

/* Sets key to value on o; value NULL (an allocation failed) makes the whole object fail. */
static int put(json_t *o, const char *key, json_t *value) {
    return value && json_object_set_new(o, key, value) == 0 ? 0 : -1;
}

static json_t *typed_field(const char *name, const char *type) {
    json_t *f = json_object();
    if (f && (put(f, "name", json_string(name)) || put(f, "type", json_string(type)))) {
        json_decref(f);
        return NULL;
    }
    return f;
}

static const char *const batch_fields[][2] = {
    {"sequence", "uint64"},      {"prevHash", "bytes32"},   {"firstTransfer", "uint64"},
    {"lastTransfer", "uint64"},  {"entryCount", "uint64"},  {"total", "uint256"},
    {"root", "bytes32"},         {"cutTime", "uint64"},
};
static const char *const domain_fields[][2] = {
    {"name", "string"}, {"version", "string"}, {"chainId", "uint256"}, {"verifyingContract", "address"}};

static json_t *typed_fields(const char *const (*fields)[2], size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, typed_field(fields[i][0], fields[i][1])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* The eth_signTypedData_v4 object of the batch, or NULL when out of memory. */
json_t *settle_typed_data(const settle_batch_t *b) {
    json_t *td = json_object(), *types = json_object(), *domain = json_object(), *msg = json_object();
    int bad = !td || !types || !domain || !msg;
    bad = bad || put(types, "EIP712Domain", typed_fields(domain_fields, 4)) ||
          put(types, "Batch", typed_fields(batch_fields, sizeof batch_fields / sizeof batch_fields[0]));
    bad = bad || put(domain, "name", json_string(SETTLE_DOMAIN_NAME)) ||
          put(domain, "version", json_string(SETTLE_DOMAIN_VERSION)) ||
          put(domain, "chainId", json_u64(b->chain_id)) ||
          put(domain, "verifyingContract", json_address(b->contract));
    bad = bad || put(msg, "sequence", json_u64(b->sequence)) || put(msg, "prevHash", json_hex(b->prev_hash, 32)) ||
          put(msg, "firstTransfer", json_u64(b->first_transfer)) ||
          put(msg, "lastTransfer", json_u64(b->last_transfer)) ||
          put(msg, "entryCount", json_u64(b->entry_count)) || put(msg, "total", json_decimal(b->total)) ||
          put(msg, "root", json_hex(b->root, 32)) || put(msg, "cutTime", json_u64(b->cut_time));
    if (!bad) {
        bad = json_object_set_new(td, "types", types) || json_object_set_new(td, "primaryType", json_string("Batch")) ||
              json_object_set_new(td, "domain", domain) || json_object_set_new(td, "message", msg);
        types = domain = msg = NULL; /* td owns them now, even when a later set failed */
    }
    json_decref(types);
    json_decref(domain);
    json_decref(msg);
    if (bad) {
        json_decref(td);
        return NULL;
    }
    return td;
}

static int dump_into(const json_t *j, size_t flags, acc_buf *out, acc_err *err) {
    char *text = json_dumps(j, flags | JSON_PRESERVE_ORDER);
    if (!text) return acc_fail(err, ACC_ENOMEM, "out of memory writing JSON");
    acc_buf_puts(out, text);
    free(text);
    return acc_buf_failed(out) ? acc_fail(err, ACC_ENOMEM, "out of memory writing JSON") : ACC_OK;
}

int settle_typed_data_json(const settle_batch_t *b, acc_buf *out, acc_err *err) {
    json_t *td = settle_typed_data(b);
    if (!td) return acc_fail(err, ACC_ENOMEM, "out of memory building typed data");
    int rc = dump_into(td, JSON_COMPACT, out, err);
    json_decref(td);
    return rc;
}

int settle_typed_data_digest(const json_t *td, uint8_t digest[32], acc_err *err) {
    char *text = json_dumps(td, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) return acc_fail(err, ACC_ENOMEM, "out of memory writing typed data");
    int rc = eip712_digest_json(text, strlen(text), digest, err);
    free(text);
    if (rc != ACC_OK) return acc_err_prefix(err, "typed_data");
    return ACC_OK;
}

int settle_batch_digest(const settle_batch_t *b, uint8_t digest[32], acc_err *err) {
    json_t *td = settle_typed_data(b);
    if (!td) return acc_fail(err, ACC_ENOMEM, "out of memory building typed data");
    int rc = settle_typed_data_digest(td, digest, err);
    json_decref(td);
    return rc;
}

int settle_batch_sign(settle_batch_t *b, const eth_key *key, acc_err *err) {
    int rc = settle_batch_digest(b, b->digest, err);
    if (rc != ACC_OK) return rc;
    if ((rc = eth_key_sign_digest(key, b->digest, b->signature, err)) != ACC_OK)
        return acc_err_prefix(err, "signing the batch");
    eth_key_address(key, b->signer);
    return ACC_OK;
}

/* ---------------------------------------------------------------- writing */

/* The header fields shared by the full JSON, the summary and the ledger's stored header. */
static json_t *header_json(const settle_batch_t *b) {
    json_t *o = json_object();
    int bad = !o || put(o, "sequence", json_integer((json_int_t)b->sequence)) ||
              put(o, "prev_hash", json_hex(b->prev_hash, 32)) ||
              put(o, "first_transfer", json_integer((json_int_t)b->first_transfer)) ||
              put(o, "last_transfer", json_integer((json_int_t)b->last_transfer)) ||
              put(o, "entry_count", json_integer((json_int_t)b->entry_count)) ||
              put(o, "total", json_decimal(b->total)) || put(o, "root", json_hex(b->root, 32)) ||
              put(o, "cut_time", json_integer((json_int_t)b->cut_time)) ||
              put(o, "chain_id", json_integer((json_int_t)b->chain_id)) ||
              put(o, "verifying_contract", json_address(b->contract)) || put(o, "signer", json_address(b->signer)) ||
              put(o, "digest", json_hex(b->digest, 32)) || put(o, "signature", json_hex(b->signature, 65));
    if (!bad && b->ledger_seq) bad = put(o, "ledger_seq", json_integer((json_int_t)b->ledger_seq));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int settle_header_json(const settle_batch_t *b, acc_buf *out, acc_err *err) {
    json_t *o = header_json(b);
    if (!o) return acc_fail(err, ACC_ENOMEM, "out of memory writing the batch");
    int rc = dump_into(o, JSON_COMPACT, out, err);
    json_decref(o);
    return rc;
}

int settle_batch_summary_json(const settle_batch_t *b, acc_buf *out, acc_err *err) {
    return settle_header_json(b, out, err);
}

int settle_batch_json(const settle_batch_t *b, acc_buf *out, acc_err *err) {
    json_t *o = header_json(b);
    json_t *entries = json_array();
    int bad = !o || !entries;
    for (uint64_t i = 0; !bad && i < b->entry_count; i++) {
        json_t *pair = json_array();
        bad = !pair || json_array_append_new(pair, json_address(b->entries[i].address)) ||
              json_array_append_new(pair, json_decimal(b->entries[i].amount)) || json_array_append_new(entries, pair);
    }
    if (!bad) {
        bad = json_object_set_new(o, "entries", entries) != 0;
        entries = NULL;
    }
    if (!bad) bad = put(o, "typed_data", settle_typed_data(b));
    json_decref(entries);
    int rc = bad ? acc_fail(err, ACC_ENOMEM, "out of memory writing the batch") : dump_into(o, JSON_INDENT(1), out, err);
    json_decref(o);
    if (rc == ACC_OK) acc_buf_putc(out, '\n');
    return rc;
}

ptrdiff_t settle_find_entry(const settle_batch_t *b, const uint8_t address[ETH_ADDRESS_SIZE]) {
    size_t lo = 0, hi = b->entry_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = settle_address_cmp(b->entries[mid].address, address);
        if (c == 0) return (ptrdiff_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int settle_proof_json(const settle_batch_t *b, const merkle_tree *tree, const uint8_t address[ETH_ADDRESS_SIZE],
                      acc_buf *out, acc_err *err) {
    ptrdiff_t i = settle_find_entry(b, address);
    if (i < 0) {
        char a[ETH_ADDRESS_TEXT_SIZE];
        eth_address_to_text(address, a);
        return acc_fail(err, ACC_ENOTFOUND, "batch %llu has no entry for %s", (unsigned long long)b->sequence, a);
    }
    merkle_value v;
    memcpy(v.address, b->entries[i].address, ETH_ADDRESS_SIZE);
    settle_amount_u256(b->entries[i].amount, v.amount);
    uint8_t leaf[32];
    merkle_leaf_hash(&v, leaf);
    size_t cap = merkle_max_proof_len(tree);
    uint8_t (*proof)[32] = malloc((cap ? cap : 1) * sizeof *proof);
    if (!proof) return acc_fail(err, ACC_ENOMEM, "out of memory for a proof");
    size_t n = merkle_proof(tree, (size_t)i, proof);
    json_t *o = json_object(), *p = json_array();
    int bad = !o || !p;
    for (size_t k = 0; !bad && k < n; k++) bad = json_array_append_new(p, json_hex(proof[k], 32)) != 0;
    free(proof);
    bad = bad || put(o, "sequence", json_integer((json_int_t)b->sequence)) ||
          put(o, "address", json_address(b->entries[i].address)) ||
          put(o, "amount", json_decimal(b->entries[i].amount)) || put(o, "leaf", json_hex(leaf, 32));
    if (!bad) {
        bad = json_object_set_new(o, "proof", p) != 0;
        p = NULL;
    }
    bad = bad || put(o, "root", json_hex(b->root, 32)) || put(o, "digest", json_hex(b->digest, 32)) ||
          put(o, "chain_id", json_integer((json_int_t)b->chain_id)) ||
          put(o, "verifying_contract", json_address(b->contract));
    json_decref(p);
    int rc = bad ? acc_fail(err, ACC_ENOMEM, "out of memory writing the proof") : dump_into(o, JSON_INDENT(1), out, err);
    json_decref(o);
    if (rc == ACC_OK) acc_buf_putc(out, '\n');
    return rc;
}

/* ---------------------------------------------------------------- reading */

/* A non-negative integer: a JSON integer, or a decimal string up to 2^64-1. */
int settle_json_u64(const json_t *v, uint64_t *out) {
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) return -1;
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v)) return -1;
    uint8_t big[32];
    if (uint256_from_decimal(json_string_value(v), json_string_length(v), big, NULL) != ACC_OK) return -1;
    for (int i = 0; i < 24; i++)
        if (big[i]) return -1;
    uint64_t x = 0;
    for (int i = 24; i < 32; i++) x = (x << 8) | big[i];
    *out = x;
    return 0;
}

static int get_u64(const json_t *o, const char *key, uint64_t *out, acc_err *err) {
    const json_t *v = json_object_get(o, key);
    if (!v) return acc_fail(err, ACC_EINVAL, "%s: missing", key);
    if (settle_json_u64(v, out) != 0)
        return acc_fail(err, ACC_EINVAL, "%s: not a whole number from 0 to 2^64-1", key);
    return ACC_OK;
}

static int get_hex(const json_t *o, const char *key, uint8_t *out, size_t want, acc_err *err) {
    const json_t *v = json_object_get(o, key);
    if (!v) return acc_fail(err, ACC_EINVAL, "%s: missing", key);
    if (!json_is_string(v) || hex_parse0x(json_string_value(v), json_string_length(v), out, want, NULL) != ACC_OK)
        return acc_fail(err, ACC_EINVAL, "%s: not 0x followed by %zu hex bytes", key, want);
    return ACC_OK;
}

static int get_address(const json_t *o, const char *key, uint8_t out[ETH_ADDRESS_SIZE], acc_err *err) {
    const json_t *v = json_object_get(o, key);
    if (!v) return acc_fail(err, ACC_EINVAL, "%s: missing", key);
    if (!json_is_string(v)) return acc_fail(err, ACC_EINVAL, "%s: not an address string", key);
    if (eth_address_parse(json_string_value(v), json_string_length(v), out, err) != ACC_OK)
        return acc_err_prefix(err, "%s", key);
    return ACC_OK;
}

int settle_header_from_json(const json_t *o, settle_batch_t *b, acc_err *err) {
    if (!json_is_object(o)) return acc_fail(err, ACC_EINVAL, "the batch is not a JSON object");
    int rc = get_u64(o, "sequence", &b->sequence, err);
    if (rc == ACC_OK) rc = get_hex(o, "prev_hash", b->prev_hash, 32, err);
    if (rc == ACC_OK) rc = get_u64(o, "first_transfer", &b->first_transfer, err);
    if (rc == ACC_OK) rc = get_u64(o, "last_transfer", &b->last_transfer, err);
    if (rc == ACC_OK) rc = get_u64(o, "entry_count", &b->entry_count, err);
    if (rc == ACC_OK) rc = get_u64(o, "total", &b->total, err);
    if (rc == ACC_OK) rc = get_hex(o, "root", b->root, 32, err);
    if (rc == ACC_OK) rc = get_u64(o, "cut_time", &b->cut_time, err);
    if (rc == ACC_OK) rc = get_u64(o, "chain_id", &b->chain_id, err);
    if (rc == ACC_OK) rc = get_address(o, "verifying_contract", b->contract, err);
    if (rc == ACC_OK) rc = get_address(o, "signer", b->signer, err);
    if (rc == ACC_OK) rc = get_hex(o, "digest", b->digest, 32, err);
    if (rc == ACC_OK) rc = get_hex(o, "signature", b->signature, 65, err);
    if (rc == ACC_OK && json_object_get(o, "ledger_seq")) rc = get_u64(o, "ledger_seq", &b->ledger_seq, err);
    return rc;
}

/* The entries array: each [address, amount]. Sets b->entries and returns their number in *n. */
static int entries_from_json(const json_t *a, settle_batch_t *b, size_t *n, acc_err *err) {
    if (!a) return acc_fail(err, ACC_EINVAL, "entries: missing");
    if (!json_is_array(a)) return acc_fail(err, ACC_EINVAL, "entries: not an array of [address, amount] pairs");
    size_t count = json_array_size(a);
    b->entries = calloc(count ? count : 1, sizeof *b->entries);
    if (!b->entries) return acc_fail(err, ACC_ENOMEM, "entries: out of memory for %zu entries", count);
    for (size_t i = 0; i < count; i++) {
        const json_t *pair = json_array_get(a, i);
        if (!json_is_array(pair) || json_array_size(pair) != 2)
            return acc_fail(err, ACC_EINVAL, "entries[%zu]: not an [address, amount] pair", i);
        const json_t *addr = json_array_get(pair, 0), *amount = json_array_get(pair, 1);
        if (!json_is_string(addr)) return acc_fail(err, ACC_EINVAL, "entries[%zu][0]: not an address string", i);
        if (eth_address_parse(json_string_value(addr), json_string_length(addr), b->entries[i].address, err) != ACC_OK)
            return acc_err_prefix(err, "entries[%zu][0]", i);
        if (settle_json_u64(amount, &b->entries[i].amount) != 0)
            return acc_fail(err, ACC_EINVAL, "entries[%zu][1]: not a whole number from 0 to 2^64-1", i);
    }
    *n = count;
    return ACC_OK;
}

int settle_batch_from_json(const json_t *o, settle_batch_t **out, size_t *nentries, acc_err *err) {
    settle_batch_t *b = calloc(1, sizeof *b);
    if (!b) return acc_fail(err, ACC_ENOMEM, "out of memory reading a batch");
    size_t n = 0;
    int rc = settle_header_from_json(o, b, err);
    if (rc == ACC_OK) rc = entries_from_json(json_object_get(o, "entries"), b, &n, err);
    if (rc != ACC_OK) {
        settle_batch_free(b);
        return rc;
    }
    *nentries = n;
    *out = b;
    return ACC_OK;
}

json_t *settle_json_load(const char *json, size_t len, acc_err *err) {
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) acc_fail(err, ACC_EINVAL, "not JSON: line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    return o;
}

int settle_batch_parse(const char *json, size_t len, settle_batch_t **out, acc_err *err) {
    json_t *o = settle_json_load(json, len, err);
    if (!o) return ACC_EINVAL;
    size_t n;
    settle_batch_t *b;
    int rc = settle_batch_from_json(o, &b, &n, err);
    json_decref(o);
    if (rc != ACC_OK) return rc;
    if (n != b->entry_count) {
        rc = acc_fail(err, ACC_EINVAL, "entry_count: %llu, but the batch lists %zu entries",
                      (unsigned long long)b->entry_count, n);
        settle_batch_free(b);
        return rc;
    }
    *out = b;
    return ACC_OK;
}
