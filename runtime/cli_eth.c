/*
 * cli_eth.c: the key, signature and Merkle subcommands: keygen, address, sign, recover, merkle.
 * Thin wrappers over meters/eth/keys.h, eip712.h and merkle.h: they parse flags, read files and
 * print; exit 0 ok, 1 when a signature, proof or check does not hold, 2 for a usage error
 * (including unreadable or malformed inputs). The secret is never printed. Every message is the
 * library's (runtime/base/status.h) with the command, and the flag or file, in front.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/eip712.h"
#include "meters/eth/hex.h"
#include "meters/eth/keys.h"
#include "meters/eth/merkle.h"
#include "meters/eth/uint256.h"
#include "runtime/base/file.h"
#include "runtime/cli.h"
#include "runtime/cli_util.h"

#define INPUT_MAX ((size_t)512 << 20) /* the largest input file read, 512 MiB */

/* A failure the library described in err: "accrue CMD: MESSAGE" (cli_fail); returns exit_code. */
static int report(const char *cmd, const acc_err *err, int exit_code) {
    return cli_fail(cmd, exit_code, "%s", err->msg);
}

/* A usage error: cli_fail's line, then the command's help; returns 2. */
static int usage(const char *cmd, const char *help, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int usage(const char *cmd, const char *help, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cli_fail(cmd, 2, "%s", line);
    fputs(help, stderr);
    return 2;
}

static int is_help(const char *a) {
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Takes the value of flag argv[*i] into *val; ACC_EINVAL when it is missing. */
static int flag_value(int argc, char **argv, int *i, const char **val, acc_err *err) {
    if (*i + 1 >= argc) return acc_fail(err, ACC_EINVAL, "%s needs a value", argv[*i]);
    *val = argv[++*i];
    return ACC_OK;
}

/* Parses flag's 0x-hex text of exactly want bytes; the message names the flag. */
static int hex_flag(const char *flag, const char *text, uint8_t *out, size_t want, acc_err *err) {
    int rc = hex_parse0x(text, strlen(text), out, want, err);
    if (rc != ACC_OK) acc_err_prefix(err, "%s", flag);
    return rc;
}

/* ---------------------------------------------------------------- keygen, address */

static const char keygen_help[] =
    "usage: accrue keygen --out FILE [--json]\n"
    "Creates a new secp256k1 key in FILE (which must not exist; mode 0600, \"0x<64 hex>\\n\")\n"
    "and prints its EIP-55 address (with --json: {\"address\", \"key_file\"}).\n";

int cli_keygen(int argc, char **argv) {
    const char *out = NULL;
    int json = 0;
    acc_err err = {0};
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(keygen_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (flag_value(argc, argv, &i, &out, &err) != ACC_OK) return report("keygen", &err, 2);
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return usage("keygen", keygen_help, "unknown argument '%s'", argv[i]);
        }
    }
    if (!out) return usage("keygen", keygen_help, "--out FILE is required");
    eth_key *key;
    if (eth_key_generate(&key, &err) != ACC_OK) return report("keygen", &err, 1);
    int rc = eth_key_write_file(key, out, &err);
    uint8_t addr[20];
    eth_key_address(key, addr);
    eth_key_free(key);
    if (rc != ACC_OK) return report("keygen", &err, 2);
    char text[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(addr, text);
    if (json) {
        json_t *path = json_string(out); /* NULL when the name is not UTF-8: JSON cannot hold it */
        if (!path) return cli_fail("keygen", 1, "--json: the key file's name is not UTF-8 (its key's address: %s)", text);
        cli_print_json(json_pack("{s:s,s:o}", "address", text, "key_file", path));
    } else {
        printf("%s\n", text);
    }
    return 0;
}

static const char address_help[] =
    "usage: accrue address --key FILE\n"
    "Prints the EIP-55 address of the key in FILE.\n";

int cli_address(int argc, char **argv) {
    const char *path = NULL;
    acc_err err = {0};
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(address_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--key") == 0) {
            if (flag_value(argc, argv, &i, &path, &err) != ACC_OK) return report("address", &err, 2);
        } else {
            return usage("address", address_help, "unknown argument '%s'", argv[i]);
        }
    }
    if (!path) return usage("address", address_help, "--key FILE is required");
    eth_key *key;
    if (cli_key("address", "--key", path, &key)) return 2;
    uint8_t addr[20];
    char text[ETH_ADDRESS_TEXT_SIZE];
    eth_key_address(key, addr);
    eth_key_free(key);
    eth_address_to_text(addr, text);
    printf("%s\n", text);
    return 0;
}

/* ---------------------------------------------------------------- sign, recover */

/* The digest of whichever of --message, --message-file, --typed-data, --digest was given. */
typedef struct digest_source {
    const char *message, *message_file, *typed_data, *digest;
} digest_source;

/* Takes argv[*i] when it is one of the digest flags (*matched says whether it was). */
static int take_digest_flag(int argc, char **argv, int *i, digest_source *s, int *matched, acc_err *err) {
    const char **slot = NULL;
    if (strcmp(argv[*i], "--message") == 0) slot = &s->message;
    else if (strcmp(argv[*i], "--message-file") == 0) slot = &s->message_file;
    else if (strcmp(argv[*i], "--typed-data") == 0) slot = &s->typed_data;
    else if (strcmp(argv[*i], "--digest") == 0) slot = &s->digest;
    *matched = slot != NULL;
    if (!slot) return ACC_OK;
    return flag_value(argc, argv, i, slot, err);
}

static int compute_digest(const digest_source *s, uint8_t digest[32], acc_err *err) {
    int given = !!s->message + !!s->message_file + !!s->typed_data + !!s->digest;
    if (given != 1) return acc_fail(err, ACC_EINVAL, "give exactly one of --message, --message-file, --typed-data, --digest");
    if (s->message) {
        eth_personal_digest(s->message, strlen(s->message), digest);
        return ACC_OK;
    }
    if (s->digest) return hex_flag("--digest", s->digest, digest, 32, err);
    char *buf;
    size_t len;
    int rc = acc_read_file(s->message_file ? s->message_file : s->typed_data, INPUT_MAX, &buf, &len, err);
    if (rc != ACC_OK) return rc;
    if (s->message_file)
        eth_personal_digest(buf, len, digest);
    else if ((rc = eip712_digest_json(buf, len, digest, err)) != ACC_OK)
        acc_err_prefix(err, "%s", s->typed_data);
    free(buf);
    return rc;
}

static const char sign_help[] =
    "usage: accrue sign --key FILE (--message TEXT | --message-file F | --typed-data FILE.json | --digest 0xHASH)\n"
    "                   [--json]\n"
    "Signs with the key in FILE and prints the 65-byte signature r||s||v (v = 27/28) in hex.\n"
    "--message and --message-file sign an EIP-191 personal message; --typed-data signs EIP-712 typed\n"
    "data (eth_signTypedData_v4 JSON); --digest signs a 32-byte hash as is.\n"
    "--json prints {\"digest\", \"signature\", \"signer\"}.\n";

int cli_sign(int argc, char **argv) {
    const char *key_path = NULL;
    digest_source src = {0};
    int json = 0;
    acc_err err = {0};
    for (int i = 1; i < argc; i++) {
        int matched;
        if (is_help(argv[i])) {
            fputs(sign_help, stdout);
            return 0;
        }
        if (take_digest_flag(argc, argv, &i, &src, &matched, &err) != ACC_OK) return report("sign", &err, 2);
        if (matched) continue;
        if (strcmp(argv[i], "--key") == 0) {
            if (flag_value(argc, argv, &i, &key_path, &err) != ACC_OK) return report("sign", &err, 2);
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return usage("sign", sign_help, "unknown argument '%s'", argv[i]);
        }
    }
    if (!key_path) return usage("sign", sign_help, "--key FILE is required");
    uint8_t digest[32], sig[65], addr[20];
    if (compute_digest(&src, digest, &err) != ACC_OK) return report("sign", &err, 2);
    eth_key *key;
    if (cli_key("sign", "--key", key_path, &key)) return 2;
    int rc = eth_key_sign_digest(key, digest, sig, &err);
    eth_key_address(key, addr);
    eth_key_free(key);
    if (rc != ACC_OK) return report("sign", &err, 1);
    char sig_hex[2 * 65 + 3], digest_hex[67], addr_text[ETH_ADDRESS_TEXT_SIZE];
    hex_encode0x(sig, 65, sig_hex);
    if (json) {
        hex_encode0x(digest, 32, digest_hex);
        eth_address_to_text(addr, addr_text);
        cli_print_json(json_pack("{s:s,s:s,s:s}", "digest", digest_hex, "signature", sig_hex, "signer", addr_text));
    } else {
        printf("%s\n", sig_hex);
    }
    return 0;
}

static const char recover_help[] =
    "usage: accrue recover (--message TEXT | --message-file F | --typed-data FILE.json | --digest 0xHASH)\n"
    "                      --signature 0xSIG [--address 0xADDR]\n"
    "Prints the EIP-55 address that made the signature. Exit 1 when the signature is invalid (v not\n"
    "27/28/0/1, high s, nothing recovers) or, with --address, when it was made by another address.\n";

int cli_recover(int argc, char **argv) {
    const char *sig_text = NULL, *expect_text = NULL;
    digest_source src = {0};
    acc_err err = {0};
    for (int i = 1; i < argc; i++) {
        int matched;
        if (is_help(argv[i])) {
            fputs(recover_help, stdout);
            return 0;
        }
        if (take_digest_flag(argc, argv, &i, &src, &matched, &err) != ACC_OK) return report("recover", &err, 2);
        if (matched) continue;
        if (strcmp(argv[i], "--signature") == 0) {
            if (flag_value(argc, argv, &i, &sig_text, &err) != ACC_OK) return report("recover", &err, 2);
        } else if (strcmp(argv[i], "--address") == 0) {
            if (flag_value(argc, argv, &i, &expect_text, &err) != ACC_OK) return report("recover", &err, 2);
        } else {
            return usage("recover", recover_help, "unknown argument '%s'", argv[i]);
        }
    }
    if (!sig_text) return usage("recover", recover_help, "--signature 0xSIG is required");
    uint8_t sig[65], digest[32], addr[20], expect[20];
    if (cli_signature("recover", "--signature", sig_text, sig)) return 2;
    if (expect_text && cli_parse_address("recover", "--address", expect_text, expect)) return 2;
    if (compute_digest(&src, digest, &err) != ACC_OK) return report("recover", &err, 2);
    if (eth_recover(digest, sig, addr, &err) != ACC_OK) return report("recover", &err, 1);
    char text[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(addr, text);
    printf("%s\n", text);
    if (expect_text && memcmp(addr, expect, 20) != 0) {
        fprintf(stderr, "accrue recover: the signature was made by %s, not by %s\n", text, expect_text);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- merkle */

static const char merkle_help[] =
    "usage: accrue merkle root VALUES.json\n"
    "       accrue merkle proof VALUES.json ADDRESS [--json]\n"
    "       accrue merkle verify --root 0xROOT --address A --amount N [--proof 0xH1,0xH2,...]\n"
    "VALUES.json is a JSON array of [address, amount] pairs, amounts as decimal strings. The tree is\n"
    "OpenZeppelin's StandardMerkleTree of [\"address\", \"uint256\"]: the root and proofs equal\n"
    "StandardMerkleTree.of(values, [\"address\",\"uint256\"]) and pass MerkleProof.verify.\n"
    "proof proves the first entry of ADDRESS and prints the proof as 0xH1,0xH2,... (the form verify\n"
    "takes); --json prints\n"
    "{\"root\", \"address\", \"amount\", \"leaf\", \"proof\": [...]}. verify exits 1 when the proof does not hold.\n";

/* Reads VALUES.json at path and builds its tree (*vals and *tree are the caller's to free). */
static int load_tree(const char *path, merkle_value **vals, size_t *n, merkle_tree **tree, acc_err *err) {
    char *buf;
    size_t len;
    int rc = acc_read_file(path, INPUT_MAX, &buf, &len, err);
    if (rc != ACC_OK) return rc;
    rc = merkle_values_parse_json(buf, len, vals, n, err);
    free(buf);
    if (rc != ACC_OK) return acc_err_prefix(err, "%s", path);
    if ((rc = merkle_build(*vals, *n, tree, err)) != ACC_OK) free(*vals);
    return rc;
}

static int merkle_root_cmd(int argc, char **argv) {
    if (argc != 2) return usage("merkle root", merkle_help, "expected one VALUES.json");
    merkle_value *vals;
    size_t n;
    merkle_tree *tree;
    acc_err err = {0};
    if (load_tree(argv[1], &vals, &n, &tree, &err) != ACC_OK) return report("merkle", &err, 2);
    uint8_t root[32];
    char hex[67];
    merkle_root(tree, root);
    hex_encode0x(root, 32, hex);
    printf("%s\n", hex);
    merkle_free(tree);
    free(vals);
    return 0;
}

static int merkle_proof_cmd(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL};
    int npos = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (npos < 2 && strncmp(argv[i], "--", 2) != 0)
            pos[npos++] = argv[i];
        else
            return usage("merkle proof", merkle_help, "unexpected argument '%s'", argv[i]);
    }
    if (npos != 2) return usage("merkle proof", merkle_help, "expected VALUES.json and ADDRESS");
    uint8_t want[20];
    acc_err err = {0};
    if (cli_parse_address("merkle proof", "ADDRESS", pos[1], want)) return 2;
    merkle_value *vals;
    size_t n;
    merkle_tree *tree;
    if (load_tree(pos[0], &vals, &n, &tree, &err) != ACC_OK) return report("merkle", &err, 2);
    size_t at = n;
    for (size_t i = 0; i < n && at == n; i++)
        if (memcmp(vals[i].address, want, 20) == 0) at = i; /* the first entry of that address */
    int rc = 0;
    if (at == n) {
        fprintf(stderr, "accrue merkle proof: %s is not in %s\n", pos[1], pos[0]);
        rc = 1;
    } else {
        uint8_t(*proof)[32] = malloc((merkle_max_proof_len(tree) + 1) * sizeof *proof);
        if (!proof) {
            fprintf(stderr, "accrue merkle proof: out of memory\n");
            rc = 1;
        } else {
            size_t len = merkle_proof(tree, at, proof);
            uint8_t root[32], leaf[32];
            char hex[67], addr_text[ETH_ADDRESS_TEXT_SIZE], amount[79];
            merkle_root(tree, root);
            merkle_leaf_hash(&vals[at], leaf);
            if (json) {
                json_t *hashes = json_array();
                for (size_t i = 0; i < len; i++) {
                    hex_encode0x(proof[i], 32, hex);
                    json_array_append_new(hashes, json_string(hex));
                }
                char root_hex[67], leaf_hex[67];
                hex_encode0x(root, 32, root_hex);
                hex_encode0x(leaf, 32, leaf_hex);
                eth_address_to_text(vals[at].address, addr_text);
                uint256_to_decimal(vals[at].amount, amount);
                cli_print_json(json_pack("{s:s,s:s,s:s,s:s,s:o}", "root", root_hex, "address", addr_text, "amount",
                                         amount, "leaf", leaf_hex, "proof", hashes));
            } else {
                for (size_t i = 0; i < len; i++) {
                    hex_encode0x(proof[i], 32, hex);
                    printf("%s%s", i ? "," : "", hex);
                }
                printf("\n");
            }
            free(proof);
        }
    }
    merkle_free(tree);
    free(vals);
    return rc;
}

/* The proof flag: comma-separated 32-byte hashes, possibly none. *proof is the caller's to free. */
static int parse_proof(const char *text, uint8_t (**proof)[32], size_t *n, acc_err *err) {
    size_t cap = 1, len = strlen(text);
    for (size_t i = 0; i < len; i++) cap += text[i] == ',';
    *n = 0;
    *proof = malloc(cap * sizeof **proof);
    if (!*proof) return acc_fail(err, ACC_ENOMEM, "--proof: out of memory");
    for (const char *p = text; len > 0;) {
        const char *comma = strchr(p, ',');
        size_t plen = comma ? (size_t)(comma - p) : strlen(p);
        if (hex_parse0x(p, plen, (*proof)[*n], 32, err) != ACC_OK) return acc_err_prefix(err, "--proof: element %zu", *n);
        ++*n;
        if (!comma) break;
        p = comma + 1;
        if (!*p) return acc_fail(err, ACC_EINVAL, "--proof ends with a comma");
    }
    return ACC_OK;
}

static int merkle_verify_cmd(int argc, char **argv) {
    const char *root_text = NULL, *addr_text = NULL, *amount_text = NULL, *proof_text = "";
    acc_err err = {0};
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--root") == 0) slot = &root_text;
        else if (strcmp(argv[i], "--address") == 0) slot = &addr_text;
        else if (strcmp(argv[i], "--amount") == 0) slot = &amount_text;
        else if (strcmp(argv[i], "--proof") == 0) slot = &proof_text;
        if (!slot) return usage("merkle verify", merkle_help, "unknown argument '%s'", argv[i]);
        if (flag_value(argc, argv, &i, slot, &err) != ACC_OK) return report("merkle verify", &err, 2);
    }
    if (!root_text || !addr_text || !amount_text)
        return usage("merkle verify", merkle_help, "--root, --address and --amount are required");
    uint8_t root[32], leaf[32];
    merkle_value v;
    if (hex_flag("--root", root_text, root, 32, &err) != ACC_OK) return report("merkle verify", &err, 2);
    if (cli_parse_address("merkle verify", "--address", addr_text, v.address)) return 2;
    if (uint256_from_decimal(amount_text, strlen(amount_text), v.amount, &err) != ACC_OK) {
        acc_err_prefix(&err, "--amount (a whole number from 0 to 2^256-1)");
        return report("merkle verify", &err, 2);
    }
    uint8_t(*proof)[32];
    size_t n;
    int rc = parse_proof(proof_text, &proof, &n, &err);
    if (rc == ACC_OK) {
        merkle_leaf_hash(&v, leaf);
        rc = merkle_verify(root, leaf, (const uint8_t(*)[32])proof, n, &err);
        printf(rc == ACC_OK ? "valid\n" : "invalid\n");
    }
    free(proof);
    if (rc == ACC_OK) return 0;
    return report("merkle verify", &err, rc == ACC_EMISMATCH ? 1 : 2);
}

int cli_merkle(int argc, char **argv) {
    if (argc < 2) return usage("merkle", merkle_help, "which subcommand? (root, proof or verify)");
    for (int i = 1; i < argc; i++)
        if (is_help(argv[i])) {
            fputs(merkle_help, stdout);
            return 0;
        }
    if (strcmp(argv[1], "root") == 0) return merkle_root_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "proof") == 0) return merkle_proof_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "verify") == 0) return merkle_verify_cmd(argc - 1, argv + 1);
    return usage("merkle", merkle_help, "unknown subcommand '%s'", argv[1]);
}
