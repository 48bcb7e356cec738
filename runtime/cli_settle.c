/*
 * cli_settle.c: the settlement subcommands: settle, batches, batch, proof, verify. Thin wrappers
 * over meters/settle/settle.h: they parse flags, open the ledger, print. Exit 0 ok, 1 when the work
 * failed or a check does not hold, 2 for a usage error (a bad flag, an unreadable file).
 */
#include <errno.h>
#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meters/eth/hex.h"
#include "meters/eth/keys.h"
#include "meters/ledger/ledger.h"
#include "meters/settle/settle.h"
#include "runtime/base/buf.h"
#include "runtime/base/file.h"
#include "runtime/cli.h"

#define DEFAULT_DB "./accrue.db" /* the registry's default too (REGISTRY_DEFAULT_PATH) */
#define BATCH_FILE_MAX (256u << 20)

static int is_help(const char *a) {
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int need_value(const char *cmd, int argc, char **argv, int *i, const char **val) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "accrue %s: %s needs a value\n", cmd, argv[*i]);
        return -1;
    }
    *val = argv[++*i];
    return 0;
}

/* A whole number from 1 to 2^64-1 (0 allowed when zero_ok). */
static int parse_u64(const char *cmd, const char *what, const char *s, int zero_ok, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-' || *s == '+' || (!zero_ok && v == 0)) {
        fprintf(stderr, "accrue %s: %s: want a whole number%s, got '%s'\n", cmd, what, zero_ok ? "" : " from 1", s);
        return -1;
    }
    *out = v;
    return 0;
}

static int open_ledger(const char *cmd, const char *db, bool readonly, ledger_t **out) {
    acc_err err = {0};
    ledger_opts_t o = {.readonly = readonly};
    if (ledger_open(db, &o, out, &err) != ACC_OK) {
        fprintf(stderr, "accrue %s: %s: %s\n", cmd, db, err.msg);
        return -1;
    }
    return 0;
}

static void print_time(uint64_t t, char out[32]) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm))
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(out, 32, "%llu", (unsigned long long)t);
}

static void print_summary(const settle_batch_t *b) {
    char digest[67], when[32];
    hex_encode0x(b->digest, 32, digest);
    print_time(b->cut_time, when);
    printf("batch %llu: %llu entries, total %llu %s, transfers %llu..%llu, cut %s\n  digest %s\n",
           (unsigned long long)b->sequence, (unsigned long long)b->entry_count, (unsigned long long)b->total,
           LEDGER_UNIT_NAME "s", (unsigned long long)b->first_transfer, (unsigned long long)b->last_transfer, when,
           digest);
}

static int print_buf(acc_buf *out) {
    if (acc_buf_failed(out)) {
        fprintf(stderr, "accrue: out of memory\n");
        acc_buf_free(out);
        return 1;
    }
    fwrite(out->data, 1, out->len, stdout);
    acc_buf_free(out);
    return 0;
}

/* ---------------------------------------------------------------- settle */

static const char settle_help[] =
    "usage: accrue settle --key FILE [--db PATH] [--chain-id N] [--contract ADDRESS]\n"
    "                     [--max-entries N] [--json]\n"
    "Cuts the next settlement batch now: the ledger's postings since the last batch, netted per\n"
    "payee address, Merkle root, signed (EIP-712) with the host key in FILE, and booked: each\n"
    "payee's amount moves from accrued to settled. The first batch needs --chain-id and --contract\n"
    "(the claim contract's address, the EIP-712 verifyingContract); later ones reuse the last\n"
    "batch's unless given. --max-entries cuts earlier when more payees would be in the batch.\n"
    "Prints the batch (with --json: its header as JSON, or {\"batch\":null} when nothing is owed).\n"
    "--db defaults to " DEFAULT_DB ".\n";

int cli_settle(int argc, char **argv) {
    const char *db = DEFAULT_DB, *key_path = NULL, *contract_text = NULL;
    uint64_t chain_id = 0, max_entries = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (is_help(argv[i])) {
            fputs(settle_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--db") == 0) {
            if (need_value("settle", argc, argv, &i, &db)) return 2;
        } else if (strcmp(argv[i], "--key") == 0) {
            if (need_value("settle", argc, argv, &i, &key_path)) return 2;
        } else if (strcmp(argv[i], "--contract") == 0) {
            if (need_value("settle", argc, argv, &i, &contract_text)) return 2;
        } else if (strcmp(argv[i], "--chain-id") == 0) {
            if (need_value("settle", argc, argv, &i, &v) || parse_u64("settle", "--chain-id", v, 0, &chain_id)) return 2;
        } else if (strcmp(argv[i], "--max-entries") == 0) {
            if (need_value("settle", argc, argv, &i, &v) || parse_u64("settle", "--max-entries", v, 0, &max_entries))
                return 2;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            fprintf(stderr, "accrue settle: unknown argument '%s'\n%s", argv[i], settle_help);
            return 2;
        }
    }
    if (!key_path) {
        fprintf(stderr, "accrue settle: --key FILE is required (the host's signing key; accrue keygen makes one)\n");
        return 2;
    }
    uint8_t contract[ETH_ADDRESS_SIZE];
    acc_err kerr = {0};
    if (contract_text && eth_address_parse(contract_text, strlen(contract_text), contract, &kerr) != ACC_OK) {
        fprintf(stderr, "accrue settle: --contract: %s\n", kerr.msg);
        return 2;
    }
    eth_key *key;
    if (eth_key_read_file(&key, key_path, &kerr) != ACC_OK) {
        fprintf(stderr, "accrue settle: --key: %s\n", kerr.msg);
        return 2;
    }
    ledger_t *l;
    if (open_ledger("settle", db, false, &l)) {
        eth_key_free(key);
        return 1;
    }
    settle_cut_opts_t o = {.key = key, .chain_id = chain_id, .contract = contract_text ? contract : NULL,
                           .max_entries = max_entries};
    settle_batch_t *b = NULL;
    acc_err err = {0};
    int rc = settle_cut(l, &o, &b, &err);
    eth_key_free(key);
    int status = 0;
    if (rc != ACC_OK) {
        fprintf(stderr, "accrue settle: %s\n", err.msg);
        status = rc == ACC_EINVAL ? 2 : 1;
    } else if (!b) {
        if (json)
            printf("{\"batch\":null}\n");
        else
            printf("nothing to settle: no payee has earned anything since the last batch\n");
    } else if (json) {
        acc_buf out = ACC_BUF_INIT;
        if (settle_batch_summary_json(b, &out, &err) != ACC_OK) {
            fprintf(stderr, "accrue settle: %s\n", err.msg);
            acc_buf_free(&out);
            status = 1;
        } else {
            acc_buf_putc(&out, '\n');
            status = print_buf(&out);
        }
    } else {
        print_summary(b);
    }
    settle_batch_free(b);
    ledger_close(l);
    return status;
}

/* ---------------------------------------------------------------- batches */

static const char batches_help[] =
    "usage: accrue batches [--db PATH] [--json]\n"
    "Lists the settlement batches, newest first (with --json: one JSON array of their headers).\n";

typedef struct list_ctx {
    int json;
    size_t count;
    acc_buf out;
    acc_err err;
} list_ctx;

static int list_one(void *ud, const settle_batch_t *b) {
    list_ctx *c = ud;
    if (c->json) {
        acc_buf_puts(&c->out, c->count ? ",\n " : "[\n ");
        int rc = settle_batch_summary_json(b, &c->out, &c->err);
        if (rc != ACC_OK) return rc;
    } else {
        char digest[67], when[32];
        hex_encode0x(b->digest, 32, digest);
        print_time(b->cut_time, when);
        acc_buf_printf(&c->out, "%8llu  %10llu..%-10llu %8llu %16llu  %s  %s\n", (unsigned long long)b->sequence,
                       (unsigned long long)b->first_transfer, (unsigned long long)b->last_transfer,
                       (unsigned long long)b->entry_count, (unsigned long long)b->total, when, digest);
    }
    c->count++;
    return ACC_OK;
}

int cli_batches(int argc, char **argv) {
    const char *db = DEFAULT_DB;
    list_ctx c = {0};
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(batches_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--db") == 0) {
            if (need_value("batches", argc, argv, &i, &db)) return 2;
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = 1;
        } else {
            fprintf(stderr, "accrue batches: unknown argument '%s'\n%s", argv[i], batches_help);
            return 2;
        }
    }
    ledger_t *l;
    if (open_ledger("batches", db, true, &l)) return 1;
    if (!c.json)
        acc_buf_printf(&c.out, "%8s  %22s %8s %16s  %-20s  %s\n", "batch", "transfers", "entries", "total", "cut",
                       "digest");
    int rc = settle_batches(l, list_one, &c, &c.err);
    ledger_close(l);
    if (rc != ACC_OK) {
        fprintf(stderr, "accrue batches: %s\n", c.err.msg);
        acc_buf_free(&c.out);
        return 1;
    }
    if (c.json) acc_buf_puts(&c.out, c.count ? "\n]\n" : "[]\n");
    return print_buf(&c.out);
}

/* ---------------------------------------------------------------- batch, proof */

static const char batch_help[] =
    "usage: accrue batch SEQ [--db PATH] [--json]\n"
    "Shows batch SEQ. With --json, the whole signed batch as Ethereum tools take it: the fields,\n"
    "the entries as [address, amount] pairs (OpenZeppelin StandardMerkleTree values), and under\n"
    "typed_data the eth_signTypedData_v4 payload, with digest, signature and signer beside it.\n";

static int load_batch(const char *cmd, const char *db, uint64_t seq, settle_batch_t **out) {
    ledger_t *l;
    if (open_ledger(cmd, db, true, &l)) return 1;
    acc_err err = {0};
    int rc = settle_batch_get(l, seq, out, &err);
    ledger_close(l);
    if (rc != ACC_OK) {
        fprintf(stderr, "accrue %s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}

int cli_batch(int argc, char **argv) {
    const char *db = DEFAULT_DB, *seq_text = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(batch_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--db") == 0) {
            if (need_value("batch", argc, argv, &i, &db)) return 2;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (!seq_text && argv[i][0] != '-') {
            seq_text = argv[i];
        } else {
            fprintf(stderr, "accrue batch: unknown argument '%s'\n%s", argv[i], batch_help);
            return 2;
        }
    }
    uint64_t seq;
    if (!seq_text) {
        fprintf(stderr, "accrue batch: which batch? (SEQ)\n%s", batch_help);
        return 2;
    }
    if (parse_u64("batch", "SEQ", seq_text, 0, &seq)) return 2;
    settle_batch_t *b;
    if (load_batch("batch", db, seq, &b)) return 1;
    acc_buf out = ACC_BUF_INIT;
    acc_err err = {0};
    int status = 0;
    if (json) {
        if (settle_batch_json(b, &out, &err) != ACC_OK) {
            fprintf(stderr, "accrue batch: %s\n", err.msg);
            status = 1;
        }
    } else {
        char text[67], signer[ETH_ADDRESS_TEXT_SIZE], contract[ETH_ADDRESS_TEXT_SIZE];
        print_summary(b);
        hex_encode0x(b->prev_hash, 32, text);
        eth_address_to_text(b->signer, signer);
        eth_address_to_text(b->contract, contract);
        acc_buf_printf(&out, "  prev    %s\n", text);
        hex_encode0x(b->root, 32, text);
        acc_buf_printf(&out, "  root    %s\n  signer  %s\n  chain   %llu, contract %s\n", text, signer,
                       (unsigned long long)b->chain_id, contract);
        for (uint64_t i = 0; i < b->entry_count; i++) {
            eth_address_to_text(b->entries[i].address, signer);
            acc_buf_printf(&out, "  %s %llu\n", signer, (unsigned long long)b->entries[i].amount);
        }
    }
    settle_batch_free(b);
    if (status) {
        acc_buf_free(&out);
        return status;
    }
    return print_buf(&out);
}

static const char proof_help[] =
    "usage: accrue proof SEQ ADDRESS [--db PATH] [--json]\n"
    "The entry of ADDRESS in batch SEQ, its Merkle leaf and proof (what the claim contract's\n"
    "claim(sequence, account, amount, proof) takes).\n";

int cli_proof(int argc, char **argv) {
    const char *db = DEFAULT_DB, *pos[2] = {NULL, NULL};
    int json = 0, npos = 0;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(proof_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--db") == 0) {
            if (need_value("proof", argc, argv, &i, &db)) return 2;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (npos < 2 && argv[i][0] != '-') {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "accrue proof: unknown argument '%s'\n%s", argv[i], proof_help);
            return 2;
        }
    }
    if (npos < 2) {
        fprintf(stderr, "accrue proof: want SEQ and ADDRESS\n%s", proof_help);
        return 2;
    }
    uint64_t seq;
    uint8_t address[ETH_ADDRESS_SIZE];
    acc_err kerr = {0};
    if (parse_u64("proof", "SEQ", pos[0], 0, &seq)) return 2;
    if (eth_address_parse(pos[1], strlen(pos[1]), address, &kerr) != ACC_OK) {
        fprintf(stderr, "accrue proof: ADDRESS: %s\n", kerr.msg);
        return 2;
    }
    settle_batch_t *b;
    if (load_batch("proof", db, seq, &b)) return 1;
    merkle_tree *tree = NULL;
    acc_buf out = ACC_BUF_INIT;
    acc_err err = {0};
    int rc = settle_batch_tree(b, &tree, &err);
    if (rc == ACC_OK) rc = settle_proof_json(b, tree, address, &out, &err);
    merkle_free(tree);
    settle_batch_free(b);
    if (rc != ACC_OK) {
        fprintf(stderr, "accrue proof: %s\n", err.msg);
        acc_buf_free(&out);
        return 1;
    }
    if (json) return print_buf(&out);
    /* The human form: the same facts, one a line. */
    json_t *o = json_loadb(out.data, out.len, 0, NULL);
    acc_buf_free(&out);
    if (!o) return 1;
    printf("batch %lld: %s is owed %s\n  leaf  %s\n", (long long)json_integer_value(json_object_get(o, "sequence")),
           json_string_value(json_object_get(o, "address")), json_string_value(json_object_get(o, "amount")),
           json_string_value(json_object_get(o, "leaf")));
    json_t *p = json_object_get(o, "proof");
    for (size_t i = 0; i < json_array_size(p); i++)
        printf("  %s %s\n", i ? "     " : "proof", json_string_value(json_array_get(p, i)));
    printf("  root  %s\n", json_string_value(json_object_get(o, "root")));
    json_decref(o);
    return 0;
}

/* ---------------------------------------------------------------- verify */

static const char verify_help[] =
    "usage: accrue verify BATCH.json [--db PATH] [--prev PREV.json]\n"
    "Checks a batch (as `accrue batch SEQ --json` writes it): its entries, total and root, its\n"
    "typed data and EIP-712 digest, its signature, its link to the batch before (from --prev, or\n"
    "from the ledger), and with --db the batch the ledger stored and the entries its postings give.\n"
    "Prints each check that holds; exits 1 naming the first that does not.\n";

static void print_line(void *ud, const char *line) {
    (void)ud;
    printf("ok    %s\n", line);
}

int cli_verify(int argc, char **argv) {
    const char *db = NULL, *path = NULL, *prev_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(verify_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--db") == 0) {
            if (need_value("verify", argc, argv, &i, &db)) return 2;
        } else if (strcmp(argv[i], "--prev") == 0) {
            if (need_value("verify", argc, argv, &i, &prev_path)) return 2;
        } else if (!path && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
            path = argv[i];
        } else {
            fprintf(stderr, "accrue verify: unknown argument '%s'\n%s", argv[i], verify_help);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "accrue verify: which batch file? (BATCH.json, or - for standard input)\n%s", verify_help);
        return 2;
    }
    char *text = NULL, *prev_text = NULL;
    size_t len, prev_len;
    acc_err err = {0};
    if (acc_read_file(path, BATCH_FILE_MAX, &text, &len, &err) != ACC_OK) {
        fprintf(stderr, "accrue verify: %s\n", err.msg);
        return 2;
    }
    settle_batch_t *prev = NULL;
    if (prev_path) {
        if (acc_read_file(prev_path, BATCH_FILE_MAX, &prev_text, &prev_len, &err) != ACC_OK ||
            settle_batch_parse(prev_text, prev_len, &prev, &err) != ACC_OK) {
            fprintf(stderr, "accrue verify: --prev %s: %s\n", prev_path, err.msg);
            free(text);
            free(prev_text);
            return 2;
        }
        free(prev_text);
    }
    ledger_t *l = NULL;
    if (db && open_ledger("verify", db, true, &l)) {
        free(text);
        settle_batch_free(prev);
        return 1;
    }
    settle_verify_opts_t o = {.prev = prev, .ledger = l, .report = print_line};
    bool linked;
    int rc = settle_verify(text, len, &o, &linked, &err);
    free(text);
    settle_batch_free(prev);
    if (l) ledger_close(l);
    if (rc != ACC_OK) {
        printf("FAIL  %s\n", err.msg);
        fprintf(stderr, "accrue verify: %s\n", err.msg);
        return 1;
    }
    printf("verified%s\n", linked ? "" : " (all but the link: give --prev or --db to check it)");
    return 0;
}
