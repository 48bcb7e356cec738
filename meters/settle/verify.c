/*
 * verify.c: checks a published batch with nothing but its own text, and, given the ledger, against
 * the postings it claims to cover.
 *
 * The checks run in the order a reader would trust them: the file's shape, what the entries add up
 * to (count, total, root), the typed data and the digest those fields give, the signature over that
 * digest, the link to the batch before, then the ledger. The first that fails is named, with what
 * was expected and what was found, so a tampered field, entry, signature or link points at itself.
 */
#include "meters/settle/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/hex.h"
#include "meters/eth/uint256.h"

static void say(const settle_verify_opts_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const settle_verify_opts_t *o, const char *fmt, ...) {
    if (!o || !o->report) return;
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->report(o->ud, line);
}

static void hex32(const uint8_t h[32], char out[67]) {
    hex_encode0x(h, 32, out);
}

/* The typed data's scalar as text, for comparing values another tool may write as a number, a
 * decimal string or a hex string. */
static int scalar_text(const json_t *v, const char *type, char *out, size_t n) {
    if (strncmp(type, "uint", 4) == 0) { /* a JSON number, a decimal string or a 0x-hex string */
        uint8_t big[32];
        char dec[79];
        if (json_is_integer(v) && json_integer_value(v) >= 0)
            return snprintf(out, n, "%lld", (long long)json_integer_value(v)), 0;
        if (!json_is_string(v)) return -1;
        const char *t = json_string_value(v);
        size_t len = json_string_length(v);
        int rc = len > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') ? uint256_from_hex(t, len, big, NULL)
                                                                         : uint256_from_decimal(t, len, big, NULL);
        if (rc != ACC_OK) return -1;
        uint256_to_decimal(big, dec);
        return snprintf(out, n, "%s", dec), 0;
    }
    if (!json_is_string(v)) return -1;
    snprintf(out, n, "%s", json_string_value(v));
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a'); /* hex and addresses: any case */
    return 0;
}

/* Names the first place where the file's typed data differs from the one its fields give. */
static int typed_data_difference(const json_t *given, const json_t *want, acc_err *err) {
    if (!json_is_object(given)) return acc_fail(err, ACC_EINVAL, "typed_data: not an object");
    if (!json_equal(json_object_get(given, "types"), json_object_get(want, "types")))
        return acc_fail(err, ACC_EMISMATCH, "typed_data.types: not the Batch types of %s v%s", SETTLE_DOMAIN_NAME,
                        SETTLE_DOMAIN_VERSION);
    if (!json_equal(json_object_get(given, "primaryType"), json_object_get(want, "primaryType")))
        return acc_fail(err, ACC_EMISMATCH, "typed_data.primaryType: not \"Batch\"");
    static const char *const parts[] = {"domain", "message"};
    const json_t *types = json_object_get(want, "types");
    for (int k = 0; k < 2; k++) {
        const json_t *g = json_object_get(given, parts[k]), *w = json_object_get(want, parts[k]);
        if (!json_is_object(g)) return acc_fail(err, ACC_EINVAL, "typed_data.%s: not an object", parts[k]);
        const json_t *fields = json_object_get(types, k == 0 ? "EIP712Domain" : "Batch");
        for (size_t i = 0; i < json_array_size(fields); i++) {
            const json_t *f = json_array_get(fields, i);
            const char *name = json_string_value(json_object_get(f, "name"));
            const char *type = json_string_value(json_object_get(f, "type"));
            char gt[200], wt[200];
            const json_t *gv = json_object_get(g, name);
            if (!gv) return acc_fail(err, ACC_EMISMATCH, "typed_data.%s.%s: missing", parts[k], name);
            if (scalar_text(gv, type, gt, sizeof gt) != 0 || scalar_text(json_object_get(w, name), type, wt, sizeof wt) != 0 ||
                strcmp(gt, wt) != 0)
                return acc_fail(err, ACC_EMISMATCH, "typed_data.%s.%s: %s, but the batch's fields give %s", parts[k], name,
                                json_is_string(gv) || json_is_integer(gv) ? gt : "(not a scalar)", wt);
        }
    }
    return ACC_OK;
}

/* Compares the batch's entries with the ones the ledger's postings give. */
static int compare_derived(const settle_batch_t *b, size_t n, const settle_entry_t *d, size_t dn, acc_err *err) {
    size_t i = 0, j = 0;
    char a[ETH_ADDRESS_TEXT_SIZE];
    unsigned long long first = (unsigned long long)b->first_transfer, last = (unsigned long long)b->last_transfer;
    while (i < n || j < dn) {
        int c = i == n ? 1 : j == dn ? -1 : settle_address_cmp(b->entries[i].address, d[j].address);
        if (c == 0 && b->entries[i].amount == d[j].amount) {
            i++, j++;
            continue;
        }
        if (c == 0) {
            eth_address_to_text(d[j].address, a);
            return acc_fail(err, ACC_EMISMATCH, "ledger: %s earned %llu in transfers %llu..%llu, the batch says %llu", a,
                            (unsigned long long)d[j].amount, first, last, (unsigned long long)b->entries[i].amount);
        }
        if (c > 0) {
            eth_address_to_text(d[j].address, a);
            return acc_fail(err, ACC_EMISMATCH, "ledger: %s earned %llu in transfers %llu..%llu and is missing from the batch",
                            a, (unsigned long long)d[j].amount, first, last);
        }
        eth_address_to_text(b->entries[i].address, a);
        return acc_fail(err, ACC_EMISMATCH, "ledger: %s is in the batch but earned nothing in transfers %llu..%llu", a,
                        first, last);
    }
    return ACC_OK;
}

static bool same_entries(const settle_entry_t *a, size_t an, const settle_entry_t *b, size_t bn) {
    if (an != bn) return false;
    for (size_t i = 0; i < an; i++)
        if (a[i].amount != b[i].amount || settle_address_cmp(a[i].address, b[i].address) != 0) return false;
    return true;
}

static int check_link(const settle_batch_t *b, const settle_batch_t *prev, const settle_verify_opts_t *o,
                      bool *checked, acc_err *err) {
    char h[67], w[67];
    *checked = false;
    if (b->sequence == 1) {
        static const uint8_t zero[32];
        if (memcmp(b->prev_hash, zero, 32) != 0)
            return acc_fail(err, ACC_EMISMATCH, "link: batch 1 has no batch before it, so prev_hash must be zero");
        if (b->first_transfer != 1)
            return acc_fail(err, ACC_EMISMATCH, "link: batch 1 must start at transfer 1, not %llu",
                            (unsigned long long)b->first_transfer);
        *checked = true;
        say(o, "link: batch 1 starts the chain (zero prev_hash, from transfer 1)");
        return ACC_OK;
    }
    if (!prev) {
        say(o, "link: not checked (no previous batch given)");
        return ACC_OK;
    }
    if (prev->sequence + 1 != b->sequence)
        return acc_fail(err, ACC_EMISMATCH, "link: sequence %llu does not follow batch %llu",
                        (unsigned long long)b->sequence, (unsigned long long)prev->sequence);
    if (memcmp(prev->digest, b->prev_hash, 32) != 0) {
        hex32(b->prev_hash, h);
        hex32(prev->digest, w);
        return acc_fail(err, ACC_EMISMATCH, "link: prev_hash %s is not batch %llu's digest %s", h,
                        (unsigned long long)prev->sequence, w);
    }
    if (prev->last_transfer + 1 != b->first_transfer)
        return acc_fail(err, ACC_EMISMATCH, "link: first_transfer %llu does not follow batch %llu's last transfer %llu",
                        (unsigned long long)b->first_transfer, (unsigned long long)prev->sequence,
                        (unsigned long long)prev->last_transfer);
    *checked = true;
    say(o, "link: follows batch %llu (prev_hash is its digest, transfers continue from %llu)",
        (unsigned long long)prev->sequence, (unsigned long long)prev->last_transfer + 1);
    return ACC_OK;
}

static int verify_batch(const json_t *root, const settle_batch_t *b, size_t n, const settle_verify_opts_t *o,
                        bool *link_checked, acc_err *err) {
    char h[67], w[67], sa[ETH_ADDRESS_TEXT_SIZE], sb[ETH_ADDRESS_TEXT_SIZE];
    int rc;

    /* What the entries add up to. */
    if (settle_entries_check(b->entries, n, err) != ACC_OK) {
        if (err) err->code = ACC_EMISMATCH;
        return ACC_EMISMATCH;
    }
    if (n != b->entry_count)
        return acc_fail(err, ACC_EMISMATCH, "entry_count: %llu, but the batch lists %zu entries",
                        (unsigned long long)b->entry_count, n);
    uint64_t total;
    if ((rc = settle_entries_total(b->entries, n, &total, err)) != ACC_OK) return rc;
    if (total != b->total)
        return acc_fail(err, ACC_EMISMATCH, "total: %llu, but the entries sum to %llu", (unsigned long long)b->total,
                        (unsigned long long)total);
    uint8_t root_c[32];
    if ((rc = settle_entries_root(b->entries, n, NULL, root_c, err)) != ACC_OK) return rc;
    if (memcmp(root_c, b->root, 32) != 0) {
        hex32(root_c, h);
        hex32(b->root, w);
        return acc_fail(err, ACC_EMISMATCH, "root: the entries give %s, the batch says %s", h, w);
    }
    say(o, "entries: %zu, ascending by address, distinct, none zero; total %llu; root %s", n,
        (unsigned long long)total, (hex32(root_c, h), h));

    /* The typed data and the digest the fields give. */
    json_t *want = settle_typed_data(b);
    if (!want) return acc_fail(err, ACC_ENOMEM, "out of memory building typed data");
    uint8_t digest[32];
    rc = settle_typed_data_digest(want, digest, err);
    const json_t *given = json_object_get(root, "typed_data");
    if (rc == ACC_OK && given) {
        rc = typed_data_difference(given, want, err);
        uint8_t gd[32];
        if (rc == ACC_OK) rc = settle_typed_data_digest(given, gd, err);
        if (rc == ACC_OK && memcmp(gd, digest, 32) != 0) /* not reached unless the comparison above misses a case */
            rc = acc_fail(err, ACC_EMISMATCH, "typed_data: its digest differs from the fields'");
        if (rc == ACC_OK) say(o, "typed_data: the eth_signTypedData_v4 payload matches the fields");
    }
    json_decref(want);
    if (rc != ACC_OK) return rc;
    if (memcmp(digest, b->digest, 32) != 0) {
        hex32(digest, h);
        hex32(b->digest, w);
        return acc_fail(err, ACC_EMISMATCH, "digest: the fields give %s, the batch says %s", h, w);
    }
    say(o, "digest: %s is the EIP-712 digest of the fields (chain %llu, contract %s)", (hex32(digest, h), h),
        (unsigned long long)b->chain_id, (eth_address_to_text(b->contract, sa), sa));

    /* The signature. */
    uint8_t who[ETH_ADDRESS_SIZE];
    if (eth_recover(b->digest, b->signature, who, err) != ACC_OK) {
        acc_err_prefix(err, "signature");
        if (err) err->code = ACC_EBADSIG;
        return ACC_EBADSIG;
    }
    eth_address_to_text(b->signer, sb);
    if (memcmp(who, b->signer, ETH_ADDRESS_SIZE) != 0)
        return acc_fail(err, ACC_EBADSIG, "signature: recovers to %s, not the signer %s", (eth_address_to_text(who, sa), sa),
                        sb);
    say(o, "signature: recovers to the signer %s", sb);

    if (b->sequence == 0) return acc_fail(err, ACC_EMISMATCH, "sequence: 0, but batches count from 1");
    if (b->last_transfer < b->first_transfer)
        return acc_fail(err, ACC_EMISMATCH, "transfer range: last_transfer %llu is before first_transfer %llu",
                        (unsigned long long)b->last_transfer, (unsigned long long)b->first_transfer);

    /* The link. */
    settle_batch_t *from_ledger = NULL;
    const settle_batch_t *prev = o ? o->prev : NULL;
    if (!prev && o && o->ledger && b->sequence > 1) {
        rc = settle_batch_get(o->ledger, b->sequence - 1, &from_ledger, err);
        if (rc == ACC_ENOTFOUND)
            return acc_fail(err, ACC_EMISMATCH, "link: the ledger has no batch %llu before this one",
                            (unsigned long long)b->sequence - 1);
        if (rc != ACC_OK) return rc;
        prev = from_ledger;
    }
    bool checked;
    rc = check_link(b, prev, o, &checked, err);
    settle_batch_free(from_ledger);
    if (link_checked) *link_checked = checked;
    if (rc != ACC_OK || !o || !o->ledger) return rc;

    /* The ledger: the entries its postings give, and the batch it stored. */
    settle_entry_t *d = NULL;
    size_t dn = 0;
    if ((rc = settle_derive(o->ledger, b->first_transfer, b->last_transfer, &d, &dn, err)) != ACC_OK) return rc;
    rc = compare_derived(b, n, d, dn, err);
    free(d);
    if (rc != ACC_OK) return rc;
    say(o, "ledger: transfers %llu..%llu net to exactly these %zu entries", (unsigned long long)b->first_transfer,
        (unsigned long long)b->last_transfer, n);
    settle_batch_t *stored;
    rc = settle_batch_get(o->ledger, b->sequence, &stored, err);
    if (rc == ACC_ENOTFOUND)
        return acc_fail(err, ACC_ENOTFOUND, "ledger: no batch %llu in the database", (unsigned long long)b->sequence);
    if (rc != ACC_OK) return rc;
    if (memcmp(stored->digest, b->digest, 32) != 0) {
        rc = acc_fail(err, ACC_EMISMATCH, "ledger: batch %llu in the database has digest %s, this one %s",
                      (unsigned long long)b->sequence, (hex32(stored->digest, h), h), (hex32(b->digest, w), w));
    } else if (!same_entries(stored->entries, stored->entry_count, b->entries, n)) {
        rc = acc_fail(err, ACC_EMISMATCH, "ledger: batch %llu's settlement transfers differ from its entries",
                      (unsigned long long)b->sequence);
    } else {
        say(o, "ledger: batch %llu is stored (posting %llu) with these entries as its settlement transfers",
            (unsigned long long)b->sequence, (unsigned long long)stored->ledger_seq);
    }
    settle_batch_free(stored);
    return rc;
}

int settle_verify(const char *json, size_t len, const settle_verify_opts_t *opts, bool *link_checked, acc_err *err) {
    if (link_checked) *link_checked = false;
    json_t *root = settle_json_load(json, len, err);
    if (!root) return ACC_EINVAL;
    settle_batch_t *b;
    size_t n;
    int rc = settle_batch_from_json(root, &b, &n, err);
    if (rc == ACC_OK) {
        say(opts, "shape: every field present and well-formed (batch %llu, %zu entries)", (unsigned long long)b->sequence,
            n);
        rc = verify_batch(root, b, n, opts, link_checked, err);
        settle_batch_free(b);
    }
    json_decref(root);
    return rc;
}
