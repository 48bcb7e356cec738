/*
 * cli_util.h: what the registry's subcommands share: one flag parser, the registry opened from
 * --db, key and signature flags, addresses and amounts as the user types them, and JSON output.
 *
 * Conventions (cli.h): exit 0 ok, 1 when the work was refused or failed, 2 for a usage error; one
 * line on stderr, "accrue COMMAND: what is wrong", naming the flag, file or line at fault. A status
 * from the registry maps to an exit code by cli_status_exit: malformed input (ACC_EINVAL) is a usage
 * error, every other refusal is 1.
 */
#ifndef ACCRUE_RUNTIME_CLI_UTIL_H
#define ACCRUE_RUNTIME_CLI_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "meters/eth/keys.h"
#include "registry/registry.h"

typedef enum cli_flag_kind {
    CLI_BOOL,   /* --flag: *(bool *)out = true */
    CLI_STRING, /* --flag VALUE: *(const char **)out */
    CLI_AMOUNT, /* --flag N: *(uint64_t *)out, a whole number up to INT64_MAX */
    CLI_LIST,   /* --flag VALUE, repeatable: appended to a cli_list_t */
} cli_flag_kind_t;

typedef struct cli_flag {
    const char *name; /* "--price-per-query" */
    cli_flag_kind_t kind;
    void *out;
    bool seen;
} cli_flag_t;

#define CLI_FLAG(name, kind, out) {name, kind, out, false}

#define CLI_LIST_MAX 16
typedef struct cli_list {
    size_t n;
    const char *v[CLI_LIST_MAX];
} cli_list_t;

/* Parses argv[1..] into flags and between min_pos and max_pos positional arguments (pos, in
 * order). --help or -h prints usage to stdout and returns -1 (exit 0); a bad argument prints one
 * line and returns 2; 0 otherwise. */
int cli_parse(const char *cmd, int argc, char **argv, cli_flag_t *flags, size_t n_flags, const char **pos,
              size_t min_pos, size_t max_pos, const char *usage);

/* A whole decimal number from 0 to max (digits only): 0, or -1 without a word. */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* The same for flag's value; when it is not one, prints why and returns 2. */
int cli_whole_number(const char *cmd, const char *flag, const char *s, uint64_t max, uint64_t *out);

/* Prints "accrue CMD: " and the message on stderr; returns exit. */
int cli_fail(const char *cmd, int exit, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints err's message for a registry status and returns cli_status_exit(rc). */
int cli_fail_status(const char *cmd, int rc, const acc_err *err);
int cli_status_exit(int rc);

/* Opens the registry at db (NULL: ./accrue.db); on failure prints why and returns the exit code. */
int cli_open(const char *cmd, const char *db, unsigned flags, registry_t **reg);

/* Parses an address given for flag; prints and returns 2 when it is not one. */
int cli_parse_address(const char *cmd, const char *flag, const char *text, uint8_t out[20]);
/* Parses "0x" + 130 hex digits for flag. */
int cli_signature(const char *cmd, const char *flag, const char *text, uint8_t out[65]);
/* Reads a key file given for flag. The key is freed with eth_key_free. */
int cli_key(const char *cmd, const char *flag, const char *path, eth_key **key);
/* The signature over a registry digest: signs it with the key file (--key) or takes --signature;
 * exactly one of them is needed. address (may be NULL) gets the key's address. */
int cli_sign_or_take(const char *cmd, const char *key_path, const char *sig_text, const uint8_t digest[32],
                     uint8_t sig[65], uint8_t address[20]);
/* Reads a whole file given for flag (or a positional name) into a malloc'd, NUL-terminated buffer. */
int cli_read(const char *cmd, const char *path, size_t max, char **data, size_t *len);

/* A ledger amount in base units as credits, "12.345678"; from four static buffers in turn (up to
 * four in one printf). */
const char *cli_credits(uint64_t base_units);

/* EIP-55 text of an address, and an RFC 3339 UTC time of Unix milliseconds, into static buffers
 * that the next call overwrites (for one printf). */
const char *cli_addr(const uint8_t a[20]);
const char *cli_time(int64_t ms);
/* 0x-hex of n bytes; malloc'd. */
char *cli_hex(const uint8_t *p, size_t n);

/* The end of a listing: on failure drops arr and prints err (returns the exit code), else prints
 * arr when it is not NULL (--json) and returns 0. */
int cli_end_list(const char *cmd, int rc, json_t *arr, const acc_err *err);

/* Prints v as one line of compact JSON on stdout and drops the reference. */
void cli_print_json(json_t *v);

/* JSON of the registry's objects, shared by the commands (and, later, the server). */
json_t *cli_json_datanet(const registry_datanet_t *d);
json_t *cli_json_model(const registry_model_t *m);
json_t *cli_json_agent(const registry_agent_t *a, const registry_agent_usage_t *u);
json_t *cli_json_record(const registry_record_t *r);

#endif
