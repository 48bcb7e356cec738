/*
 * test_eth_crosscheck.c: compares our keccak/EIP-191/EIP-712 digests, signatures, recovered
 * addresses, Merkle roots and proofs with an independent implementation: PyPI's eth-account and
 * eth-abi, run through tests/eth_crosscheck.py (with /opt/accrue-venv/bin/python3 or
 * $ACCRUE_PYTHON). Random messages, random typed data (nested structs, arrays of structs, a struct
 * holding itself in an array, multi-dimensional arrays, every atomic type) and random value sets
 * of 1 to 1,000 entries. The seed is fixed (so CI runs repeat) and printed; ACCRUE_CROSSCHECK_SEED=N
 * runs another, ACCRUE_CROSSCHECK_SEED=random a fresh one.
 *
 * Missing eth-account or eth-abi is a failure, not a skip: run ACCRUE_SETUP_ETH=1 bash tools/setup.sh.
 */
#include <jansson.h>
#include "meters/eth/eip712.h"
#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "meters/eth/merkle.h"
#include "meters/eth/uint256.h"
#include "tests/check.h"
#include "tests/eth_test_util.h"

#define N_MESSAGES 150
#define N_TYPED 250
#define N_MERKLE 24

static char dir[256];
static json_t *answers;
static json_t *cases;

/* ---------------------------------------------------------------- random values */

static void random_address_text(char out[43]) {
    uint8_t a[20];
    test_rand_bytes(a, 20);
    if (test_rand() % 2)
        eth_address_to_text(a, out);
    else
        hex_encode0x(a, 20, out);
}

static json_t *hex_value(size_t n) {
    uint8_t buf[128];
    char text[2 * 128 + 3];
    test_rand_bytes(buf, n);
    hex_encode0x(buf, n, text);
    return json_string(text);
}

static json_t *random_string(void) {
    static const char *pieces[] = {"a", "b", "Z", " ", "0", "\xc3\xa9", "\xe2\x99\xa5", "-", "_", "q", "\xf0\x9f\x98\x80"};
    char buf[256] = "";
    size_t n = test_rand() % 12;
    for (size_t i = 0; i < n; i++) strcat(buf, pieces[test_rand() % (sizeof pieces / sizeof pieces[0])]);
    return json_string(buf);
}

/* An integer of the given width: JSON integer, decimal or hex string; edges often. */
static json_t *random_int(int is_signed, unsigned bits) {
    uint8_t v[32] = {0};
    int neg = 0;
    unsigned mag_bits = is_signed ? bits - 1 : bits;
    switch (test_rand() % 6) {
    case 0: break; /* zero */
    case 1: /* max */
        for (unsigned b = 0; b < mag_bits; b++) v[31 - b / 8] |= (uint8_t)(1u << (b % 8));
        break;
    case 2: /* min of a signed type: -2^(bits-1) */
        if (is_signed) {
            v[31 - mag_bits / 8] = (uint8_t)(1u << (mag_bits % 8));
            neg = 1;
        }
        break;
    default:
        test_rand_bytes(v, 32);
        for (unsigned b = mag_bits; b < 256; b++) v[31 - b / 8] &= (uint8_t)~(1u << (b % 8));
        if (test_rand() % 4 == 0) memset(v, 0, 32 - (test_rand() % 8)); /* small values too */
        neg = is_signed && test_rand() % 2;
    }
    char dec[80];
    uint256_to_decimal(v, dec);
    int is_zero = strcmp(dec, "0") == 0;
    if (uint256_bit_length(v) < 53 && test_rand() % 2) {
        long long x = strtoll(dec, NULL, 10);
        return json_integer(neg ? -x : x);
    }
    if (!neg && test_rand() % 3 == 0) {
        char hex[80];
        hex_encode0x(v, 32, hex);
        /* strip leading zero digits, keep at least one */
        size_t k = 2;
        while (hex[k] == '0' && hex[k + 1]) k++;
        char out[80];
        snprintf(out, sizeof out, "0x%s", hex + k);
        return json_string(out);
    }
    char out[82];
    snprintf(out, sizeof out, "%s%s", neg && !is_zero ? "-" : "", dec);
    return json_string(out);
}

/* ---------------------------------------------------------------- random typed data */

typedef struct gen_field {
    char name[16];
    char type[48];
    int atomic;       /* index into atomics, or -1 for a struct */
    unsigned bits;    /* for ints / bytesN */
    int target;       /* struct index */
    unsigned ndims;
    int dims[2];      /* 0 = dynamic */
} gen_field;

typedef struct gen_struct {
    char name[16];
    gen_field fields[8];
    int nfields;
} gen_struct;

enum { A_UINT, A_INT, A_ADDRESS, A_BOOL, A_BYTESN, A_BYTES, A_STRING, A_COUNT };

static void atomic_type_name(int a, unsigned bits, char *out, size_t n) {
    switch (a) {
    case A_UINT: snprintf(out, n, "uint%u", bits); break;
    case A_INT: snprintf(out, n, "int%u", bits); break;
    case A_ADDRESS: snprintf(out, n, "address"); break;
    case A_BOOL: snprintf(out, n, "bool"); break;
    case A_BYTESN: snprintf(out, n, "bytes%u", bits); break;
    case A_BYTES: snprintf(out, n, "bytes"); break;
    default: snprintf(out, n, "string"); break;
    }
}

static json_t *gen_value(const gen_struct *s, int nstructs, const gen_field *f, unsigned dims_left, int depth);

static json_t *gen_struct_value(const gen_struct *st, int nstructs, int depth) {
    json_t *o = json_object();
    for (int i = 0; i < st->nfields; i++)
        json_object_set_new(o, st->fields[i].name, gen_value(st, nstructs, &st->fields[i], st->fields[i].ndims, depth));
    return o;
}

static const gen_struct *all_structs;

static json_t *gen_value(const gen_struct *s, int nstructs, const gen_field *f, unsigned dims_left, int depth) {
    if (dims_left > 0) {
        int n = f->dims[dims_left - 1];
        int self = f->atomic < 0 && &all_structs[f->target] == s; /* only through dynamic arrays */
        if (n == 0) n = (self && depth >= 2) ? 0 : (int)(test_rand() % (self ? 3 : 4));
        json_t *a = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(a, gen_value(s, nstructs, f, dims_left - 1, depth + 1));
        return a;
    }
    switch (f->atomic) {
    case A_UINT: return random_int(0, f->bits);
    case A_INT: return random_int(1, f->bits);
    case A_ADDRESS: {
        char a[43];
        random_address_text(a);
        return json_string(a);
    }
    case A_BOOL: return json_boolean(test_rand() % 2);
    case A_BYTESN: return hex_value(f->bits);
    case A_BYTES: return hex_value(test_rand() % 70);
    case A_STRING: return random_string();
    default: return gen_struct_value(&all_structs[f->target], nstructs, depth + 1);
    }
}

static json_t *random_typed_data(void) {
    gen_struct st[5];
    int n = 1 + (int)(test_rand() % 5);
    all_structs = st;
    for (int i = 0; i < n; i++) {
        gen_struct *s = &st[i];
        snprintf(s->name, sizeof s->name, "%c%s%d", "PMOAZ"[test_rand() % 5], (test_rand() % 2) ? "ode" : "x", i);
        s->nfields = 0;
    }
    for (int i = 0; i < n; i++) {
        gen_struct *s = &st[i];
        int nf = 1 + (int)(test_rand() % 5);
        for (int k = 0; k < nf; k++) {
            gen_field *f = &s->fields[s->nfields++];
            memset(f, 0, sizeof *f);
            snprintf(f->name, sizeof f->name, "f%d", k);
            f->atomic = (int)(test_rand() % A_COUNT);
            if (k == 0 && i + 1 < n) f->atomic = -1, f->target = i + 1; /* every struct is reachable */
            else if (test_rand() % 5 == 0 && i + 1 < n) f->atomic = -1, f->target = i + 1 + (int)(test_rand() % (unsigned)(n - i - 1));
            int self = 0;
            if (f->atomic >= 0 && test_rand() % 8 == 0) f->atomic = -1, f->target = i, self = 1; /* recursive */
            if (f->atomic == A_UINT || f->atomic == A_INT) f->bits = 8 * (1 + (unsigned)(test_rand() % 32));
            if (f->atomic == A_BYTESN) f->bits = 1 + (unsigned)(test_rand() % 32);
            f->ndims = self ? 1 : (unsigned)(test_rand() % 4 == 0 ? 1 + test_rand() % 2 : 0);
            for (unsigned d = 0; d < f->ndims; d++) f->dims[d] = self ? 0 : (test_rand() % 2 ? 0 : 1 + (int)(test_rand() % 3));
            char base[32];
            if (f->atomic >= 0)
                atomic_type_name(f->atomic, f->bits, base, sizeof base);
            else
                snprintf(base, sizeof base, "%s", st[f->target].name);
            snprintf(f->type, sizeof f->type, "%s", base);
            for (unsigned d = 0; d < f->ndims; d++) {
                size_t l = strlen(f->type);
                if (f->dims[d])
                    snprintf(f->type + l, sizeof f->type - l, "[%d]", f->dims[d]);
                else
                    snprintf(f->type + l, sizeof f->type - l, "[]");
            }
        }
    }
    json_t *types = json_object(), *domain = json_object();
    /* a random subset of the domain fields, canonical order; EIP712Domain listed or inferred */
    static const char *dn[5] = {"name", "version", "chainId", "verifyingContract", "salt"};
    static const char *dt[5] = {"string", "string", "uint256", "address", "bytes32"};
    json_t *dtypes = json_array();
    unsigned mask = (unsigned)(test_rand() % 32);
    for (int i = 0; i < 5; i++) {
        if (!(mask & (1u << i))) continue;
        json_t *f = json_object();
        json_object_set_new(f, "name", json_string(dn[i]));
        json_object_set_new(f, "type", json_string(dt[i]));
        json_array_append_new(dtypes, f);
        gen_field g = {.atomic = i < 2 ? A_STRING : i == 2 ? A_UINT : i == 3 ? A_ADDRESS : A_BYTESN, .bits = i == 2 ? 256 : 32};
        json_object_set_new(domain, dn[i], gen_value(NULL, 0, &g, 0, 0));
    }
    if (test_rand() % 4)
        json_object_set_new(types, "EIP712Domain", dtypes);
    else
        json_decref(dtypes);
    for (int i = 0; i < n; i++) {
        json_t *fields = json_array();
        for (int k = 0; k < st[i].nfields; k++) {
            json_t *f = json_object();
            json_object_set_new(f, "name", json_string(st[i].fields[k].name));
            json_object_set_new(f, "type", json_string(st[i].fields[k].type));
            json_array_append_new(fields, f);
        }
        json_object_set_new(types, st[i].name, fields);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "types", types);
    json_object_set_new(doc, "primaryType", json_string(st[0].name));
    json_object_set_new(doc, "domain", domain);
    json_object_set_new(doc, "message", gen_struct_value(&st[0], n, 0));
    return doc;
}

/* ---------------------------------------------------------------- building the cases */

static json_t *random_secret(uint8_t secret[32]) {
    char hex[67];
    eth_key *k = NULL;
    while (!k) {
        test_rand_bytes(secret, 32);
        eth_key_from_secret(&k, secret, NULL);
    }
    eth_key_free(k);
    hex_encode0x(secret, 32, hex);
    return json_string(hex);
}

typedef struct ours {
    char digest[67], signature[133], signer[43];
    int error;
    acc_err err;
} ours;

static ours our_msgs[N_MESSAGES], our_typed[N_TYPED];

static void sign_ours(const uint8_t secret[32], const uint8_t digest[32], ours *o) {
    eth_key *k;
    uint8_t sig[65], addr[20];
    eth_key_from_secret(&k, secret, NULL);
    eth_key_sign_digest(k, digest, sig, NULL);
    eth_key_address(k, addr);
    eth_key_free(k);
    hex_encode0x(digest, 32, o->digest);
    hex_encode0x(sig, 65, o->signature);
    eth_address_to_text(addr, o->signer);
}

static merkle_value *our_values[N_MERKLE];
static size_t our_counts[N_MERKLE];

static int build_cases(const char *path) {
    cases = json_object();
    json_t *msgs = json_array(), *typed = json_array(), *merkle = json_array();
    for (int i = 0; i < N_MESSAGES; i++) {
        uint8_t secret[32], msg[256], d[32];
        char hex[2 * 256 + 3];
        json_t *c = json_object();
        json_object_set_new(c, "secret", random_secret(secret));
        size_t len = test_rand() % 200;
        test_rand_bytes(msg, len);
        hex_encode0x(msg, len, hex);
        json_object_set_new(c, "message", json_string(hex));
        eth_personal_digest(msg, len, d);
        sign_ours(secret, d, &our_msgs[i]);
        json_object_set_new(c, "our_signature", json_string(our_msgs[i].signature));
        json_array_append_new(msgs, c);
    }
    for (int i = 0; i < N_TYPED; i++) {
        uint8_t secret[32], d[32];
        json_t *c = json_object(), *doc = random_typed_data();
        json_object_set_new(c, "secret", random_secret(secret));
        char *text = json_dumps(doc, JSON_COMPACT);
        if (eip712_digest_json(text, strlen(text), d, &our_typed[i].err) != ACC_OK) {
            our_typed[i].error = 1;
            memset(d, 0, 32);
        }
        free(text);
        sign_ours(secret, d, &our_typed[i]);
        json_object_set_new(c, "our_signature", json_string(our_typed[i].signature));
        json_object_set_new(c, "data", doc);
        json_array_append_new(typed, c);
    }
    for (int i = 0; i < N_MERKLE; i++) {
        size_t n = i == 0 ? 1 : i == 1 ? 2 : i == 2 ? 3 : i == 3 ? 1000 : 1 + test_rand() % 1000;
        merkle_value *v = malloc(n * sizeof *v);
        json_t *vals = json_array();
        for (size_t k = 0; k < n; k++) {
            if (k > 0 && test_rand() % 50 == 0) {
                v[k] = v[test_rand() % k]; /* a duplicate value now and then */
            } else {
                test_rand_bytes(v[k].address, 20);
                memset(v[k].amount, 0, 32);
                size_t width = 1 + test_rand() % 32;
                test_rand_bytes(v[k].amount + 32 - width, width);
            }
            char a[43], dec[80];
            eth_address_to_text(v[k].address, a);
            uint256_to_decimal(v[k].amount, dec);
            json_t *pair = json_array();
            json_array_append_new(pair, json_string(a));
            json_array_append_new(pair, json_string(dec));
            json_array_append_new(vals, pair);
        }
        json_t *c = json_object();
        json_object_set_new(c, "values", vals);
        json_array_append_new(merkle, c);
        our_values[i] = v;
        our_counts[i] = n;
    }
    json_object_set_new(cases, "messages", msgs);
    json_object_set_new(cases, "typed", typed);
    json_object_set_new(cases, "merkle", merkle);
    return json_dump_file(cases, path, JSON_COMPACT);
}

static const char *python(void) {
    const char *p = getenv("ACCRUE_PYTHON");
    return p && *p ? p : "/opt/accrue-venv/bin/python3";
}

static void eth_account_is_installed(void) {
    char cmd[512], out[512];
    snprintf(cmd, sizeof cmd, "%s -c 'import eth_account, eth_abi' 2>&1", python());
    int rc = test_run(cmd, out, sizeof out);
    CHECK_MSG(rc == 0,
              "%s cannot import eth_account and eth_abi (%s): the cross-check needs them; run "
              "ACCRUE_SETUP_ETH=1 bash tools/setup.sh (or set ACCRUE_PYTHON)",
              python(), out);
}

static void python_side_answers(void) {
    char cases_path[300], answers_path[300], cmd[1024], out[4096];
    snprintf(cases_path, sizeof cases_path, "%s/cases.json", dir);
    snprintf(answers_path, sizeof answers_path, "%s/answers.json", dir);
    CHECK(build_cases(cases_path) == 0);
    snprintf(cmd, sizeof cmd, "%s tests/eth_crosscheck.py %s %s 2>&1", python(), cases_path, answers_path);
    int rc = test_run(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "eth_crosscheck.py exit %d: %s%s", rc, out,
              rc == 3 ? " (run ACCRUE_SETUP_ETH=1 bash tools/setup.sh)" : "");
    json_error_t e;
    answers = rc == 0 ? json_load_file(answers_path, 0, &e) : NULL;
    CHECK(answers != NULL);
}

static int same(json_t *obj, const char *key, const char *ours_text) {
    const char *v = json_string_value(json_object_get(obj, key));
    return v && strcmp(v, ours_text) == 0;
}

static void compare_one(const char *what, int i, json_t *a, const ours *o) {
    if (!a) {
        CHECK_MSG(0, "%s %d: no answer", what, i);
        return;
    }
    CHECK_MSG(same(a, "digest", o->digest), "%s %d: digest ours %s, eth-account %s", what, i, o->digest,
              json_string_value(json_object_get(a, "digest")));
    CHECK_MSG(same(a, "signature", o->signature), "%s %d: signature ours %s, eth-account %s", what, i, o->signature,
              json_string_value(json_object_get(a, "signature")));
    CHECK_MSG(same(a, "signer", o->signer), "%s %d: signer differs", what, i);
    CHECK_MSG(same(a, "recovered", o->signer), "%s %d: eth-account recovers %s from our signature, want %s", what, i,
              json_string_value(json_object_get(a, "recovered")), o->signer);
}

static void messages_match_eth_account(void) {
    json_t *a = json_object_get(answers, "messages");
    CHECK(json_array_size(a) == N_MESSAGES);
    for (int i = 0; i < N_MESSAGES && i < (int)json_array_size(a); i++) compare_one("message", i, json_array_get(a, i), &our_msgs[i]);
}

static void typed_data_matches_eth_account(void) {
    json_t *a = json_object_get(answers, "typed");
    CHECK(json_array_size(a) == N_TYPED);
    int shown = 0;
    for (int i = 0; i < N_TYPED && i < (int)json_array_size(a); i++) {
        json_t *ans = json_array_get(a, i);
        json_t *err = json_object_get(ans, "error");
        if (our_typed[i].error || err) {
            if (shown++ < 5) {
                char *doc = json_dumps(json_object_get(json_array_get(json_object_get(cases, "typed"), (size_t)i), "data"), JSON_COMPACT);
                CHECK_MSG(0, "typed %d: ours: %s; eth-account: %s; data %s", i, our_typed[i].error ? our_typed[i].err.msg : "ok",
                          err ? json_string_value(err) : "ok", doc);
                free(doc);
            } else {
                CHECK(0);
            }
            continue;
        }
        int before = check_current_failed;
        check_current_failed = 0;
        compare_one("typed", i, ans, &our_typed[i]);
        if (check_current_failed && shown++ < 3) {
            char *doc = json_dumps(json_object_get(json_array_get(json_object_get(cases, "typed"), (size_t)i), "data"), JSON_COMPACT);
            fprintf(stderr, "  typed %d data: %s\n", i, doc);
            free(doc);
        }
        check_current_failed |= before;
    }
}

static void merkle_trees_match_openzeppelin(void) {
    json_t *a = json_object_get(answers, "merkle");
    CHECK(json_array_size(a) == N_MERKLE);
    size_t total = 0;
    for (int i = 0; i < N_MERKLE && i < (int)json_array_size(a); i++) {
        json_t *ans = json_array_get(a, i), *proofs = json_object_get(ans, "proofs");
        merkle_tree *t;
        acc_err err = {0};
        char hex[67];
        CHECK(merkle_build(our_values[i], our_counts[i], &t, &err) == 0);
        uint8_t root[32];
        merkle_root(t, root);
        hex_encode0x(root, 32, hex);
        CHECK_MSG(same(ans, "root", hex), "set %d (%zu values): root ours %s, OZ %s", i, our_counts[i], hex,
                  json_string_value(json_object_get(ans, "root")));
        uint8_t(*proof)[32] = malloc((merkle_max_proof_len(t) + 1) * sizeof *proof);
        int bad = 0;
        for (size_t k = 0; k < our_counts[i] && bad < 3; k++) {
            size_t len = merkle_proof(t, k, proof);
            json_t *theirs = json_array_get(proofs, k);
            int ok = json_array_size(theirs) == len;
            for (size_t j = 0; ok && j < len; j++) {
                hex_encode0x(proof[j], 32, hex);
                ok = strcmp(hex, json_string_value(json_array_get(theirs, j))) == 0;
            }
            uint8_t leaf[32];
            merkle_leaf_hash(&our_values[i][k], leaf);
            if (!ok || merkle_verify(root, leaf, (const uint8_t(*)[32])proof, len, NULL) != 0) {
                CHECK_MSG(0, "set %d value %zu: proof differs from OZ's or does not verify", i, k);
                bad++;
            }
            total++;
        }
        free(proof);
        merkle_free(t);
        free(our_values[i]);
    }
    printf("# cross-checked %d messages, %d typed data, %d trees with %zu proofs\n", N_MESSAGES, N_TYPED, N_MERKLE, total);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    /* Fixed unless asked: a CI failure repeats by itself; ACCRUE_CROSSCHECK_SEED=random explores. */
    test_seed("ACCRUE_CROSSCHECK_SEED", 0x5eedc0de);
    if (test_scratch_dir(dir, sizeof dir, "xcheck") != 0) return 1;
    RUN(eth_account_is_installed);
    RUN(python_side_answers);
    if (answers) {
        RUN(messages_match_eth_account);
        RUN(typed_data_matches_eth_account);
        RUN(merkle_trees_match_openzeppelin);
    }
    json_decref(answers);
    json_decref(cases);
    test_remove_dir(dir);
    return check_finish("eth_crosscheck");
}
