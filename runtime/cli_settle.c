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
#include "runtime/cli.h"
#include "runtime/cli_util.h"

#define BATCH_FILE_MAX (256u << 20)

/* A batch's sequence number as typed: a whole number from 1. */
static int parse_seq(const char *cmd, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-' || *s == '+' || v == 0)
        return cli_fail(cmd, 2, "SEQ: want a batch number from 1, got '%s'", s);
    *out = v;
    return 0;
}

static int open_ledger(const char *cmd, const char *db, bool readonly, ledger_t **out) {
    acc_err err = {0};
    ledger_opts_t o = {.readonly = readonly};
    if (!db) db = REGISTRY_DEFAULT_PATH;
    if (ledger_open(db, &o, out, &err) != ACC_OK) return cli_fail(cmd, 1, "%s: %s", db, err.msg);
    return 0;
}

static void print_time(uint64_t t, char out[32]) {
    snprintf(out, 32, "%.19sZ", cli_time((int64_t)t * 1000)); /* to the second */
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
    "--db defaults to " REGISTRY_DEFAULT_PATH ".\n";

int cli_settle(int argc, char **argv) {
    const char *db = NULL, *key_path = NULL, *contract_text = NULL;
    uint64_t chain_id = 0, max_entries = 0;
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--key", CLI_STRING, &key_path),
                          CLI_FLAG("--contract", CLI_STRING, &contract_text),
                          CLI_FLAG("--chain-id", CLI_AMOUNT, &chain_id),
                          CLI_FLAG("--max-entries", CLI_AMOUNT, &max_entries), CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse("settle", argc, argv, flags, sizeof flags / sizeof flags[0], NULL, 0, 0, settle_help);
    if (rc) return rc < 0 ? 0 : rc;
    if (!key_path)
        return cli_fail("settle", 2, "--key FILE is required (the host's signing key; accrue keygen makes one)");
    uint8_t contract[ETH_ADDRESS_SIZE];
    if (contract_text && cli_parse_address("settle", "--contract", contract_text, contract)) return 2;
    eth_key *key;
    if (cli_key("settle", "--key", key_path, &key)) return 2;
    ledger_t *l;
    if (open_ledger("settle", db, false, &l)) {
        eth_key_free(key);
        return 1;
    }
    settle_cut_opts_t o = {.key = key, .chain_id = chain_id, .contract = contract_text ? contract : NULL,
                           .max_entries = max_entries};
    settle_batch_t *b = NULL;
    acc_err err = {0};
    rc = settle_cut(l, &o, &b, &err);
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
    "usage: accrue batches [--db PATH] [--json] [--limit N] [--before SEQ] [--address ADDRESS]\n"
    "Lists the settlement batches, newest first (with --json: one JSON array of their headers).\n"
    "--limit N lists N at most; --before SEQ only those below batch SEQ (the next page: the last\n"
    "sequence listed); --address only those with an entry for ADDRESS, with its amount.\n";

typedef struct list_ctx {
    int json;
    size_t count;
    acc_buf out;
    acc_err err;
} list_ctx;

static int list_one(void *ud, const settle_batch_t *b, const settle_entry_t *e) {
    list_ctx *c = ud;
    if (c->json) {
        acc_buf_puts(&c->out, c->count ? ",\n " : "[\n ");
        int rc = settle_batch_summary_json(b, &c->out, &c->err);
        if (rc != ACC_OK) return rc;
        if (e) { /* the summary's closing brace gives way to the address's amount */
            c->out.len--;
            acc_buf_printf(&c->out, ",\"amount\":\"%" PRIu64 "\"}", e->amount);
        }
    } else {
        char digest[67], when[32];
        hex_encode0x(b->digest, 32, digest);
        print_time(b->cut_time, when);
        acc_buf_printf(&c->out, "%8llu  %10llu..%-10llu %8llu %16llu  %s  %s", (unsigned long long)b->sequence,
                       (unsigned long long)b->first_transfer, (unsigned long long)b->last_transfer,
                       (unsigned long long)b->entry_count, (unsigned long long)b->total, when, digest);
        if (e) acc_buf_printf(&c->out, "  %16" PRIu64, e->amount);
        acc_buf_putc(&c->out, '\n');
    }
    c->count++;
    return ACC_OK;
}

int cli_batches(int argc, char **argv) {
    const char *db = NULL, *address = NULL;
    list_ctx c = {0};
    bool json = false;
    uint64_t limit = 0, before = 0;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--json", CLI_BOOL, &json),
                          CLI_FLAG("--limit", CLI_AMOUNT, &limit), CLI_FLAG("--before", CLI_AMOUNT, &before),
                          CLI_FLAG("--address", CLI_STRING, &address)};
    int rc = cli_parse("batches", argc, argv, flags, 5, NULL, 0, 0, batches_help);
    if (rc) return rc < 0 ? 0 : rc;
    if (flags[2].seen && limit == 0) return cli_fail("batches", 2, "--limit: want a number of batches from 1, got 0");
    if (flags[3].seen && before == 0) return cli_fail("batches", 2, "--before: want a batch number from 1, got 0");
    uint8_t addr[ETH_ADDRESS_SIZE];
    if (address && (rc = cli_parse_address("batches", "--address", address, addr))) return rc;
    c.json = json;
    ledger_t *l;
    if (open_ledger("batches", db, true, &l)) return 1;
    if (!c.json) {
        acc_buf_printf(&c.out, "%8s  %22s %8s %16s  %-20s  %s", "batch", "transfers", "entries", "total", "cut",
                       "digest");
        if (address) acc_buf_printf(&c.out, "%60s  %16s", "", "amount"); /* past the digest column */
        acc_buf_putc(&c.out, '\n');
    }
    settle_list_opts_t o = {.address = address ? addr : NULL, .before = before, .limit = (size_t)limit};
    rc = settle_batches(l, &o, list_one, &c, &c.err);
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
    const char *db = NULL, *seq_text = NULL;
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse("batch", argc, argv, flags, 2, &seq_text, 1, 1, batch_help);
    if (rc) return rc < 0 ? 0 : rc;
    uint64_t seq;
    if (parse_seq("batch", seq_text, &seq)) return 2;
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
    const char *db = NULL, *pos[2];
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse("proof", argc, argv, flags, 2, pos, 2, 2, proof_help);
    if (rc) return rc < 0 ? 0 : rc;
    uint64_t seq;
    uint8_t address[ETH_ADDRESS_SIZE];
    if (parse_seq("proof", pos[0], &seq) || cli_parse_address("proof", "ADDRESS", pos[1], address)) return 2;
    settle_batch_t *b;
    if (load_batch("proof", db, seq, &b)) return 1;
    merkle_tree *tree = NULL;
    acc_buf out = ACC_BUF_INIT;
    acc_err err = {0};
    rc = settle_batch_tree(b, &tree, &err);
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
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--prev", CLI_STRING, &prev_path)};
    int rc = cli_parse("verify", argc, argv, flags, 2, &path, 1, 1, verify_help);
    if (rc) return rc < 0 ? 0 : rc;
    char *text = NULL, *prev_text = NULL;
    size_t len, prev_len;
    acc_err err = {0};
    if (cli_read("verify", path, BATCH_FILE_MAX, &text, &len)) return 2;
    settle_batch_t *prev = NULL;
    if (prev_path) {
        if (cli_read("verify", prev_path, BATCH_FILE_MAX, &prev_text, &prev_len)) {
            free(text);
            return 2;
        }
        rc = settle_batch_parse(prev_text, prev_len, &prev, &err);
        free(prev_text);
        if (rc != ACC_OK) {
            free(text);
            return cli_fail("verify", 2, "--prev %s: %s", prev_path, err.msg);
        }
    }
    ledger_t *l = NULL;
    if (db && open_ledger("verify", db, true, &l)) {
        free(text);
        settle_batch_free(prev);
        return 1;
    }
    settle_verify_opts_t o = {.prev = prev, .ledger = l, .report = print_line};
    bool linked;
    rc = settle_verify(text, len, &o, &linked, &err);
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
