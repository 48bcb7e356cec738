/*
 * cli_eth.c: the key, signature and Merkle subcommands: keygen, address, sign, recover, merkle.
 * Thin wrappers over meters/keys.h, meters/eip712.h and meters/merkle.h: they parse flags, read
 * files and print; exit 0 ok, 1 when a signature, proof or check does not hold, 2 for a usage error
 * (including unreadable or malformed inputs). The secret is never printed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/eip712.h"
#include "meters/eth/hex.h"
#include "meters/eth/keys.h"
#include "meters/eth/merkle.h"
#include "meters/eth/uint256.h"
#include "runtime/cli.h"

#define INPUT_MAX (512u << 20) /* the largest input file read, 512 MiB */

/* Reads a whole file into a malloc'd buffer (caller frees), NUL-terminated for convenience. */
static int read_all(const char *cmd, const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "accrue %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= INPUT_MAX) {
                fprintf(stderr, "accrue %s: %s is larger than %u MiB\n", cmd, path, INPUT_MAX >> 20);
                free(buf);
                fclose(f);
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - 1 - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                fprintf(stderr, "accrue %s: cannot read %s: %s\n", cmd, path, strerror(errno));
                free(buf);
                fclose(f);
                return -1;
            }
            buf[n] = '\0';
            fclose(f);
            *out = buf;
            *len = n;
            return 0;
        }
    }
    free(buf);
    fclose(f);
    fprintf(stderr, "accrue %s: out of memory reading %s\n", cmd, path);
    return -1;
}

static int is_help(const char *a) {
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Takes the value of flag argv[*i] into *val; a usage error when it is missing. */
static int flag_value(const char *cmd, int argc, char **argv, int *i, const char **val) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "accrue %s: %s needs a value\n", cmd, argv[*i]);
        return -1;
    }
    *val = argv[++*i];
    return 0;
}

static void print_json_string_field(const char *name, const char *value, int last) {
    printf("\"%s\":\"%s\"%s", name, value, last ? "" : ",");
}

/* ---------------------------------------------------------------- keygen, address */

static const char keygen_help[] =
    "usage: accrue keygen --out FILE [--json]\n"
    "Creates a new secp256k1 key in FILE (which must not exist; mode 0600, \"0x<64 hex>\\n\")\n"
    "and prints its EIP-55 address (with --json: {\"address\", \"key_file\"}).\n";

int cli_keygen(int argc, char **argv) {
    const char *out = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(keygen_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (flag_value("keygen", argc, argv, &i, &out)) return 2;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            fprintf(stderr, "accrue keygen: unknown argument '%s'\n%s", argv[i], keygen_help);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "accrue keygen: --out FILE is required\n%s", keygen_help);
        return 2;
    }
    char err[256];
    eth_key *key;
    if (eth_key_generate(&key, err, sizeof err) != 0) {
        fprintf(stderr, "accrue keygen: %s\n", err);
        return 1;
    }
    int rc = eth_key_write_file(key, out, err, sizeof err);
    uint8_t addr[20];
    eth_key_address(key, addr);
    eth_key_free(key);
    if (rc != 0) {
        fprintf(stderr, "accrue keygen: %s\n", err);
        return 2;
    }
    char text[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(addr, text);
    if (json) {
        printf("{");
        print_json_string_field("address", text, 0);
        printf("\"key_file\":");
        /* The path is the user's own; escape the two characters JSON requires. */
        putchar('"');
        for (const char *p = out; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            if ((unsigned char)*p < 0x20)
                printf("\\u%04x", (unsigned char)*p);
            else
                putchar(*p);
        }
        printf("\"}\n");
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
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(address_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--key") == 0) {
            if (flag_value("address", argc, argv, &i, &path)) return 2;
        } else {
            fprintf(stderr, "accrue address: unknown argument '%s'\n%s", argv[i], address_help);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "accrue address: --key FILE is required\n%s", address_help);
        return 2;
    }
    char err[512];
    eth_key *key;
    if (eth_key_read_file(&key, path, err, sizeof err) != 0) {
        fprintf(stderr, "accrue address: %s\n", err);
        return 2;
    }
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

static int take_digest_flag(const char *cmd, int argc, char **argv, int *i, digest_source *s, int *matched) {
    const char **slot = NULL;
    if (strcmp(argv[*i], "--message") == 0) slot = &s->message;
    else if (strcmp(argv[*i], "--message-file") == 0) slot = &s->message_file;
    else if (strcmp(argv[*i], "--typed-data") == 0) slot = &s->typed_data;
    else if (strcmp(argv[*i], "--digest") == 0) slot = &s->digest;
    *matched = slot != NULL;
    if (!slot) return 0;
    return flag_value(cmd, argc, argv, i, slot);
}

static int compute_digest(const char *cmd, const digest_source *s, uint8_t digest[32]) {
    int given = !!s->message + !!s->message_file + !!s->typed_data + !!s->digest;
    if (given != 1) {
        fprintf(stderr, "accrue %s: give exactly one of --message, --message-file, --typed-data, --digest\n", cmd);
        return -1;
    }
    if (s->message) {
        eth_personal_digest(s->message, strlen(s->message), digest);
        return 0;
    }
    if (s->digest) {
        if (hex_decode_exact(s->digest, strlen(s->digest), digest, 32) != 0 || strncmp(s->digest, "0x", 2) != 0) {
            fprintf(stderr, "accrue %s: --digest must be 0x and 64 hex digits\n", cmd);
            return -1;
        }
        return 0;
    }
    char *buf;
    size_t len;
    if (read_all(cmd, s->message_file ? s->message_file : s->typed_data, &buf, &len) != 0) return -1;
    int rc = 0;
    if (s->message_file) {
        eth_personal_digest(buf, len, digest);
    } else {
        char err[768];
        if (eip712_digest_json(buf, len, digest, err, sizeof err) != 0) {
            fprintf(stderr, "accrue %s: %s: %s\n", cmd, s->typed_data, err);
            rc = -1;
        }
    }
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
    for (int i = 1; i < argc; i++) {
        int matched;
        if (is_help(argv[i])) {
            fputs(sign_help, stdout);
            return 0;
        }
        if (take_digest_flag("sign", argc, argv, &i, &src, &matched)) return 2;
        if (matched) continue;
        if (strcmp(argv[i], "--key") == 0) {
            if (flag_value("sign", argc, argv, &i, &key_path)) return 2;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            fprintf(stderr, "accrue sign: unknown argument '%s'\n%s", argv[i], sign_help);
            return 2;
        }
    }
    if (!key_path) {
        fprintf(stderr, "accrue sign: --key FILE is required\n%s", sign_help);
        return 2;
    }
    uint8_t digest[32], sig[65], addr[20];
    if (compute_digest("sign", &src, digest) != 0) return 2;
    char err[512];
    eth_key *key;
    if (eth_key_read_file(&key, key_path, err, sizeof err) != 0) {
        fprintf(stderr, "accrue sign: %s\n", err);
        return 2;
    }
    int rc = eth_key_sign_digest(key, digest, sig, err, sizeof err);
    eth_key_address(key, addr);
    eth_key_free(key);
    if (rc != 0) {
        fprintf(stderr, "accrue sign: %s\n", err);
        return 1;
    }
    char sig_hex[2 * 65 + 3], digest_hex[67], addr_text[ETH_ADDRESS_TEXT_SIZE];
    hex_encode0x(sig, 65, sig_hex);
    if (json) {
        hex_encode0x(digest, 32, digest_hex);
        eth_address_to_text(addr, addr_text);
        printf("{");
        print_json_string_field("digest", digest_hex, 0);
        print_json_string_field("signature", sig_hex, 0);
        print_json_string_field("signer", addr_text, 1);
        printf("}\n");
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
    for (int i = 1; i < argc; i++) {
        int matched;
        if (is_help(argv[i])) {
            fputs(recover_help, stdout);
            return 0;
        }
        if (take_digest_flag("recover", argc, argv, &i, &src, &matched)) return 2;
        if (matched) continue;
        if (strcmp(argv[i], "--signature") == 0) {
            if (flag_value("recover", argc, argv, &i, &sig_text)) return 2;
        } else if (strcmp(argv[i], "--address") == 0) {
            if (flag_value("recover", argc, argv, &i, &expect_text)) return 2;
        } else {
            fprintf(stderr, "accrue recover: unknown argument '%s'\n%s", argv[i], recover_help);
            return 2;
        }
    }
    if (!sig_text) {
        fprintf(stderr, "accrue recover: --signature 0xSIG is required\n%s", recover_help);
        return 2;
    }
    uint8_t sig[65], digest[32], addr[20], expect[20];
    if (strncmp(sig_text, "0x", 2) != 0 || hex_decode_exact(sig_text, strlen(sig_text), sig, 65) != 0) {
        fprintf(stderr, "accrue recover: --signature must be 0x and 130 hex digits (65 bytes)\n");
        return 2;
    }
    char err[256];
    if (expect_text && eth_address_parse(expect_text, strlen(expect_text), expect, err, sizeof err) != 0) {
        fprintf(stderr, "accrue recover: --address: %s\n", err);
        return 2;
    }
    if (compute_digest("recover", &src, digest) != 0) return 2;
    if (eth_recover(digest, sig, addr, err, sizeof err) != 0) {
        fprintf(stderr, "accrue recover: %s\n", err);
        return 1;
    }
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

static int load_tree(const char *path, merkle_value **vals, size_t *n, merkle_tree **tree) {
    char *buf;
    size_t len;
    char err[512];
    if (read_all("merkle", path, &buf, &len) != 0) return -1;
    int rc = merkle_values_parse_json(buf, len, vals, n, err, sizeof err);
    free(buf);
    if (rc != 0) {
        fprintf(stderr, "accrue merkle: %s: %s\n", path, err);
        return -1;
    }
    if (merkle_build(*vals, *n, tree, err, sizeof err) != 0) {
        fprintf(stderr, "accrue merkle: %s\n", err);
        free(*vals);
        return -1;
    }
    return 0;
}

static int merkle_root_cmd(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "accrue merkle root: expected one VALUES.json\n%s", merkle_help);
        return 2;
    }
    merkle_value *vals;
    size_t n;
    merkle_tree *tree;
    if (load_tree(argv[1], &vals, &n, &tree) != 0) return 2;
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
        else {
            fprintf(stderr, "accrue merkle proof: unexpected argument '%s'\n%s", argv[i], merkle_help);
            return 2;
        }
    }
    if (npos != 2) {
        fprintf(stderr, "accrue merkle proof: expected VALUES.json and ADDRESS\n%s", merkle_help);
        return 2;
    }
    uint8_t want[20];
    char err[256];
    if (eth_address_parse(pos[1], strlen(pos[1]), want, err, sizeof err) != 0) {
        fprintf(stderr, "accrue merkle proof: ADDRESS: %s\n", err);
        return 2;
    }
    merkle_value *vals;
    size_t n;
    merkle_tree *tree;
    if (load_tree(pos[0], &vals, &n, &tree) != 0) return 2;
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
                printf("{");
                hex_encode0x(root, 32, hex);
                print_json_string_field("root", hex, 0);
                eth_address_to_text(vals[at].address, addr_text);
                print_json_string_field("address", addr_text, 0);
                uint256_to_decimal(vals[at].amount, amount);
                print_json_string_field("amount", amount, 0);
                hex_encode0x(leaf, 32, hex);
                print_json_string_field("leaf", hex, 0);
                printf("\"proof\":[");
                for (size_t i = 0; i < len; i++) {
                    hex_encode0x(proof[i], 32, hex);
                    printf("%s\"%s\"", i ? "," : "", hex);
                }
                printf("]}\n");
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

static int merkle_verify_cmd(int argc, char **argv) {
    const char *root_text = NULL, *addr_text = NULL, *amount_text = NULL, *proof_text = "";
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--root") == 0) slot = &root_text;
        else if (strcmp(argv[i], "--address") == 0) slot = &addr_text;
        else if (strcmp(argv[i], "--amount") == 0) slot = &amount_text;
        else if (strcmp(argv[i], "--proof") == 0) slot = &proof_text;
        if (!slot) {
            fprintf(stderr, "accrue merkle verify: unknown argument '%s'\n%s", argv[i], merkle_help);
            return 2;
        }
        if (flag_value("merkle verify", argc, argv, &i, slot)) return 2;
    }
    if (!root_text || !addr_text || !amount_text) {
        fprintf(stderr, "accrue merkle verify: --root, --address and --amount are required\n%s", merkle_help);
        return 2;
    }
    uint8_t root[32], leaf[32];
    merkle_value v;
    char err[256];
    if (strncmp(root_text, "0x", 2) != 0 || hex_decode_exact(root_text, strlen(root_text), root, 32) != 0) {
        fprintf(stderr, "accrue merkle verify: --root must be 0x and 64 hex digits\n");
        return 2;
    }
    if (eth_address_parse(addr_text, strlen(addr_text), v.address, err, sizeof err) != 0) {
        fprintf(stderr, "accrue merkle verify: --address: %s\n", err);
        return 2;
    }
    if (uint256_from_decimal(amount_text, strlen(amount_text), v.amount) != 0) {
        fprintf(stderr, "accrue merkle verify: --amount must be a decimal integer from 0 to 2^256-1\n");
        return 2;
    }
    /* The proof: comma-separated 32-byte hashes, possibly none. */
    size_t cap = 1, n = 0, plen = strlen(proof_text);
    for (size_t i = 0; i < plen; i++) cap += proof_text[i] == ',';
    uint8_t(*proof)[32] = malloc(cap * sizeof *proof);
    if (!proof) {
        fprintf(stderr, "accrue merkle verify: out of memory\n");
        return 2;
    }
    const char *p = proof_text;
    while (plen > 0 && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len < 2 || strncmp(p, "0x", 2) != 0 || hex_decode_exact(p, len, proof[n], 32) != 0) {
            fprintf(stderr, "accrue merkle verify: --proof: element %zu is not 0x and 64 hex digits\n", n);
            free(proof);
            return 2;
        }
        n++;
        if (!comma) break;
        p = comma + 1;
        if (!*p) {
            fprintf(stderr, "accrue merkle verify: --proof ends with a comma\n");
            free(proof);
            return 2;
        }
    }
    merkle_leaf_hash(&v, leaf);
    int rc = merkle_verify(root, leaf, (const uint8_t(*)[32])proof, n);
    free(proof);
    if (rc != 0) {
        printf("invalid\n");
        fprintf(stderr, "accrue merkle verify: the proof does not lead to the root\n");
        return 1;
    }
    printf("valid\n");
    return 0;
}

int cli_merkle(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "%s", merkle_help);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (is_help(argv[i])) {
            fputs(merkle_help, stdout);
            return 0;
        }
    if (strcmp(argv[1], "root") == 0) return merkle_root_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "proof") == 0) return merkle_proof_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "verify") == 0) return merkle_verify_cmd(argc - 1, argv + 1);
    fprintf(stderr, "accrue merkle: unknown subcommand '%s'\n%s", argv[1], merkle_help);
    return 2;
}
