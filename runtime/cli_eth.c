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

/* cli_parse's answer as the command's exit status: -1 (--help printed) is 0. */
#define PARSED(rc) ((rc) < 0 ? 0 : (rc))

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
    bool json = false;
    acc_err err = {0};
    cli_flag_t flags[] = {CLI_FLAG("--out", CLI_STRING, &out), CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse("keygen", argc, argv, flags, 2, NULL, 0, 0, keygen_help);
    if (rc) return PARSED(rc);
    if (!out) return cli_fail("keygen", 2, "--out FILE is required (see accrue keygen --help)");
    eth_key *key;
    if (eth_key_generate(&key, &err) != ACC_OK) return report("keygen", &err, 1);
    rc = eth_key_write_file(key, out, &err);
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
    cli_flag_t flags[] = {CLI_FLAG("--key", CLI_STRING, &path)};
    int rc = cli_parse("address", argc, argv, flags, 1, NULL, 0, 0, address_help);
    if (rc) return PARSED(rc);
    if (!path) return cli_fail("address", 2, "--key FILE is required (see accrue address --help)");
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

/* The four flags that name what is signed, for a cli_flag_t table. */
#define DIGEST_FLAGS(s)                                                                          \
    CLI_FLAG("--message", CLI_STRING, &(s).message), CLI_FLAG("--message-file", CLI_STRING, &(s).message_file), \
        CLI_FLAG("--typed-data", CLI_STRING, &(s).typed_data), CLI_FLAG("--digest", CLI_STRING, &(s).digest)

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
    bool json = false;
    acc_err err = {0};
    cli_flag_t flags[] = {DIGEST_FLAGS(src), CLI_FLAG("--key", CLI_STRING, &key_path), CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse("sign", argc, argv, flags, sizeof flags / sizeof *flags, NULL, 0, 0, sign_help);
    if (rc) return PARSED(rc);
    if (!key_path) return cli_fail("sign", 2, "--key FILE is required (see accrue sign --help)");
    uint8_t digest[32], sig[65], addr[20];
    if (compute_digest(&src, digest, &err) != ACC_OK) return report("sign", &err, 2);
    eth_key *key;
    if (cli_key("sign", "--key", key_path, &key)) return 2;
    rc = eth_key_sign_digest(key, digest, sig, &err);
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
    cli_flag_t flags[] = {DIGEST_FLAGS(src), CLI_FLAG("--signature", CLI_STRING, &sig_text),
                          CLI_FLAG("--address", CLI_STRING, &expect_text)};
    int rc = cli_parse("recover", argc, argv, flags, sizeof flags / sizeof *flags, NULL, 0, 0, recover_help);
    if (rc) return PARSED(rc);
    if (!sig_text) return cli_fail("recover", 2, "--signature 0xSIG is required (see accrue recover --help)");
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
    if (rc != ACC_OK) {
        acc_err_prefix(err, "%s", path);
        return rc;
    }
    if ((rc = merkle_build(*vals, *n, tree, err)) != ACC_OK) free(*vals);
    return rc;
}

static int merkle_root_cmd(int argc, char **argv) {
    const char *pos[1];
    int rc = cli_parse("merkle root", argc, argv, NULL, 0, pos, 1, 1, merkle_help);
    if (rc) return PARSED(rc);
    merkle_value *vals;
    size_t n;
    merkle_tree *tree;
    acc_err err = {0};
    if (load_tree(pos[0], &vals, &n, &tree, &err) != ACC_OK) return report("merkle", &err, 2);
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
    const char *pos[2];
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse("merkle proof", argc, argv, flags, 1, pos, 2, 2, merkle_help);
    if (rc) return PARSED(rc);
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
    cli_flag_t flags[] = {CLI_FLAG("--root", CLI_STRING, &root_text), CLI_FLAG("--address", CLI_STRING, &addr_text),
                          CLI_FLAG("--amount", CLI_STRING, &amount_text), CLI_FLAG("--proof", CLI_STRING, &proof_text)};
    int rc = cli_parse("merkle verify", argc, argv, flags, 4, NULL, 0, 0, merkle_help);
    if (rc) return PARSED(rc);
    if (!root_text || !addr_text || !amount_text)
        return cli_fail("merkle verify", 2, "--root, --address and --amount are required (see accrue merkle --help)");
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
    rc = parse_proof(proof_text, &proof, &n, &err);
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
    if (argc >= 2 && strcmp(argv[1], "root") == 0) return merkle_root_cmd(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "proof") == 0) return merkle_proof_cmd(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "verify") == 0) return merkle_verify_cmd(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(merkle_help, stdout);
        return 0;
    }
    if (argc < 2) return cli_fail("merkle", 2, "which subcommand? root, proof or verify (see accrue merkle --help)");
    return cli_fail("merkle", 2, "unknown subcommand '%s' (see accrue merkle --help)", argv[1]);
}
