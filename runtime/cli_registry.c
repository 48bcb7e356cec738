/*
 * cli_registry.c: `accrue account`, `accrue dataset` and `accrue model`: the registry's accounts,
 * datanets and models from the command line (`model build` through the model factory,
 * registry/factory/factory.h). Thin wrappers over registry/registry.h: parse flags,
 * sign with a key file where authority is needed, call the registry, print (--json for programs).
 * A refused command changes nothing (each registry call is one transaction).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry/factory/factory.h"
#include "runtime/cli.h"
#include "runtime/cli_util.h"
#include "runtime/luamodel.h"

#define IMPORT_MAX ((size_t)4 << 30) /* the largest JSON Lines file imported, 4 GiB */

/* Runs the subcommand of argv[1] from table; prints usage for none or an unknown one. */
typedef struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
} subcommand_t;

static int dispatch(const char *cmd, const subcommand_t *subs, size_t n, int argc, char **argv, const char *usage) {
    if (argc < 2) {
        fprintf(stderr, "accrue %s: which one? (see accrue %s --help)\n", cmd, cmd);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(argv[1], subs[i].name) == 0) return subs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "accrue %s: unknown command '%s' (see accrue %s --help)\n", cmd, argv[1], cmd);
    return 2;
}

/* The listing commands (account list, dataset list, model list): --db and --json only; list
 * prints its rows, or gathers them into arr (not NULL with --json). */
typedef int (*lister_fn)(registry_t *reg, json_t *arr, acc_err *err);

static int list_command(const char *cmd, int argc, char **argv, const char *usage, lister_fn list) {
    const char *db = NULL;
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse(cmd, argc, argv, flags, 2, NULL, 0, 0, usage);
    if (rc) return rc < 0 ? 0 : rc;
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    json_t *arr = json ? json_array() : NULL;
    acc_err err = {0};
    rc = list(reg, arr, &err);
    registry_close(reg);
    return cli_end_list(cmd, rc, arr, &err);
}

/* ----------------------------------------------------------------------------------- account */

static const char account_usage[] =
    "usage: accrue account create NAME [--admin] [--db PATH] [--json]\n"
    "       accrue account key NAME [--db PATH] [--json]\n"
    "       accrue account list [--db PATH] [--json]\n"
    "       accrue account revoke NAME [--db PATH]\n"
    "       accrue account topup NAME AMOUNT [--id ID] [--db PATH] [--json]\n"
    "\n"
    "Accounts of end users and apps, and their API keys. create makes an account and prints its\n"
    "new API key; key gives an account one more key; the key is printed once, on stdout, and only\n"
    "its hash is kept. revoke revokes every live key of the account (the account stays: `key` gives\n"
    "it a new one). --admin makes the operator's account, whose keys may make admin calls.\n"
    "topup credits the account with AMOUNT micro-credits (see accrue account topup --help).\n"
    "--db names the registry's file (default ./accrue.db).\n"
    "Exit status: 0 ok; 1 refused (a taken name, no such account); 2 usage error.\n";

static int print_key(const char *name, const char *key, bool json, bool created) {
    if (json) {
        cli_print_json(json_pack("{s:s, s:s}", "account", name, "api_key", key));
    } else {
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "accrue: %s API key for account '%s' above: it is shown this once, keep it secret\n",
                created ? "the" : "a new", name);
    }
    return 0;
}

static int account_create(int argc, char **argv) {
    const char *db = NULL, *pos[1];
    bool admin = false, json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--admin", CLI_BOOL, &admin), CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse("account create", argc, argv, flags, 3, pos, 1, 1, account_usage);
    if (rc) return rc < 0 ? 0 : rc;
    registry_t *reg;
    if ((rc = cli_open("account create", db, REGISTRY_OPEN_CREATE, &reg))) return rc;
    char key[REGISTRY_API_KEY_TEXT_SIZE];
    acc_err err = {0};
    rc = registry_account_create(reg, pos[0], admin, key, NULL, &err);
    registry_close(reg);
    if (rc) return cli_fail_status("account create", rc, &err);
    print_key(pos[0], key, json, true);
    memset(key, 0, sizeof key);
    return 0;
}

static int account_key(int argc, char **argv) {
    const char *db = NULL, *pos[1];
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--json", CLI_BOOL, &json)};
    int rc = cli_parse("account key", argc, argv, flags, 2, pos, 1, 1, account_usage);
    if (rc) return rc < 0 ? 0 : rc;
    registry_t *reg;
    if ((rc = cli_open("account key", db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    char key[REGISTRY_API_KEY_TEXT_SIZE];
    acc_err err = {0};
    rc = registry_account_new_key(reg, pos[0], key, &err);
    registry_close(reg);
    if (rc) return cli_fail_status("account key", rc, &err);
    print_key(pos[0], key, json, false);
    memset(key, 0, sizeof key);
    return 0;
}

static int key_json(void *ud, const registry_api_key_t *k) {
    json_array_append_new(ud, json_pack("{s:s, s:s, s:o}", "id", k->id, "created", cli_time(k->created_ms), "revoked",
                                        k->revoked_ms ? json_string(cli_time(k->revoked_ms)) : json_null()));
    return 0;
}

typedef struct account_list {
    registry_t *reg;
    json_t *out; /* NULL: print lines */
} account_list_t;

static int account_row(void *ud, const registry_account_t *a) {
    account_list_t *l = ud;
    if (!l->out) {
        printf("%-24s %-6s %u live key%s, created %s\n", a->name, a->admin ? "admin" : "user", a->live_keys,
               a->live_keys == 1 ? "" : "s", cli_time(a->created_ms));
        return 0;
    }
    json_t *keys = json_array();
    int rc = registry_account_keys(l->reg, a->name, key_json, keys, NULL);
    json_array_append_new(l->out, json_pack("{s:I, s:s, s:b, s:s, s:o}", "id", (json_int_t)a->id, "name", a->name,
                                            "admin", a->admin, "created", cli_time(a->created_ms), "keys", keys));
    return rc;
}

static int list_accounts(registry_t *reg, json_t *arr, acc_err *err) {
    account_list_t l = {.reg = reg, .out = arr};
    return registry_accounts_list(reg, account_row, &l, err);
}

static int account_list(int argc, char **argv) {
    return list_command("account list", argc, argv, account_usage, list_accounts);
}

static int account_revoke(int argc, char **argv) {
    const char *db = NULL, *pos[1];
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db)};
    int rc = cli_parse("account revoke", argc, argv, flags, 1, pos, 1, 1, account_usage);
    if (rc) return rc < 0 ? 0 : rc;
    registry_t *reg;
    if ((rc = cli_open("account revoke", db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    unsigned n = 0;
    acc_err err = {0};
    rc = registry_account_revoke(reg, pos[0], &n, &err);
    registry_close(reg);
    if (rc) return cli_fail_status("account revoke", rc, &err);
    printf("revoked %u API key%s of account '%s'\n", n, n == 1 ? "" : "s", pos[0]);
    return 0;
}

int cli_account(int argc, char **argv) {
    static const subcommand_t subs[] = {
        {"create", account_create}, {"key", account_key},       {"list", account_list},
        {"revoke", account_revoke}, {"topup", cli_account_topup}};
    return dispatch("account", subs, sizeof subs / sizeof *subs, argc, argv, account_usage);
}

/* ----------------------------------------------------------------------------------- dataset */

static const char dataset_usage[] =
    "usage: accrue dataset create NAME --owner ADDR [--description T] [--price-per-query N]\n"
    "                             [--price-per-record N] [--review] [--db PATH] [--json]\n"
    "       accrue dataset import NAME FILE.jsonl [--db PATH] [--json]\n"
    "       accrue dataset add NAME --text T (--key FILE | --contributor ADDR --signature 0xSIG)\n"
    "                          [--db PATH] [--json]\n"
    "       accrue dataset accept|reject NAME RECORD_ID (--key FILE | --signature 0xSIG) [--db PATH]\n"
    "       accrue dataset query NAME TEXT [--limit N] [--db PATH] [--json]\n"
    "       accrue dataset list [--db PATH] [--json]\n"
    "       accrue dataset records NAME [--status pending|accepted|rejected] [--after ID] [--limit N]\n"
    "                              [--db PATH] [--json]\n"
    "\n"
    "Datanets: named sets of contributed records, each record kept with its contributor, content\n"
    "hash, time, status and provenance.\n"
    "  create   a datanet owned by ADDR; prices in base units (10^-6 of a credit); --review holds\n"
    "           contributions pending until the owner accepts or rejects each (default: accepted)\n"
    "  import   the owner's bulk import: JSON Lines, one {\"text\": ..., \"contributor\": \"0x...\"} a\n"
    "           line; all or nothing (a bad line is named and nothing is added); records are\n"
    "           accepted, unsigned, and their provenance says so\n"
    "  add      a contribution signed by its contributor: with --key the key file signs (EIP-191\n"
    "           over keccak256(NAME || 0x00 || TEXT)), or give the address and its signature\n"
    "  accept, reject  the owner's review of a pending record, signed with the owner's key\n"
    "  query    the accepted records sharing words with TEXT, best first (BM25); --limit 1..100,\n"
    "           default 10\n"
    "  list     every datanet; records: one datanet's records with a status (default pending)\n"
    "--db names the registry's file (default ./accrue.db).\n"
    "Exit status: 0 ok; 1 refused (a bad signature, a duplicate, no such datanet or record);\n"
    "2 usage error (a bad flag, an unreadable file, a malformed line).\n";

static int dataset_create(int argc, char **argv) {
    const char *db = NULL, *owner = NULL, *description = NULL, *pos[1];
    uint64_t per_query = 0, per_record = 0;
    bool review = false, json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),
                          CLI_FLAG("--owner", CLI_STRING, &owner),
                          CLI_FLAG("--description", CLI_STRING, &description),
                          CLI_FLAG("--price-per-query", CLI_AMOUNT, &per_query),
                          CLI_FLAG("--price-per-record", CLI_AMOUNT, &per_record),
                          CLI_FLAG("--review", CLI_BOOL, &review),
                          CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "dataset create";
    int rc = cli_parse(cmd, argc, argv, flags, sizeof flags / sizeof *flags, pos, 1, 1, dataset_usage);
    if (rc) return rc < 0 ? 0 : rc;
    if (!owner) return cli_fail(cmd, 2, "--owner ADDR is required");
    registry_datanet_spec_t spec = {.name = pos[0], .description = description, .price_per_query = per_query,
                                    .price_per_record = per_record,
                                    .curation = review ? REGISTRY_CURATION_REVIEW : REGISTRY_CURATION_AUTO};
    if (cli_parse_address(cmd, "--owner", owner, spec.owner)) return 2;
    acc_err err = {0};
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_CREATE, &reg))) return rc;
    registry_datanet_t d;
    rc = registry_datanet_create(reg, &spec, &d, &err);
    registry_close(reg);
    if (rc) return cli_fail_status(cmd, rc, &err);
    if (json) cli_print_json(cli_json_datanet(&d));
    else printf("datanet %s created (owner %s, %s curation)\n", d.name, cli_addr(d.owner), review ? "review" : "auto");
    return 0;
}

/* A progress bar on stderr, when it is a terminal: redrawn at most ten times a second. */
typedef struct progress {
    double last;
    bool drawn;
} progress_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void draw_progress(void *ud, size_t done, size_t total) {
    progress_t *p = ud;
    double t = now_s();
    if (done < total && t - p->last < 0.1) return;
    p->last = t;
    p->drawn = true;
    int width = 40, filled = total ? (int)((double)done / (double)total * width) : width;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %zu/%zu bytes", filled, "########################################",
            width - filled, "", total ? (int)((double)done * 100 / (double)total) : 100, done, total);
    fflush(stderr);
}

static int dataset_import(int argc, char **argv) {
    const char *db = NULL, *pos[2];
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "dataset import";
    int rc = cli_parse(cmd, argc, argv, flags, 2, pos, 2, 2, dataset_usage);
    if (rc) return rc < 0 ? 0 : rc;
    char *data;
    size_t len;
    if (cli_read(cmd, pos[1], IMPORT_MAX, &data, &len)) return 2;
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) {
        free(data);
        return rc;
    }
    progress_t p = {0};
    bool tty = isatty(STDERR_FILENO);
    acc_err err = {0};
    registry_import_result_t res;
    double t0 = now_s();
    rc = registry_import_jsonl(reg, pos[0], data, len, pos[1], tty ? draw_progress : NULL, &p, &res, &err);
    double secs = now_s() - t0;
    registry_close(reg);
    free(data);
    if (p.drawn) fputc('\n', stderr);
    if (rc) {
        /* Name the file with the line. */
        if (strncmp(err.msg, "line ", 5) == 0) return cli_fail(cmd, cli_status_exit(rc), "%s: %s", pos[1], err.msg);
        return cli_fail_status(cmd, rc, &err);
    }
    if (json)
        cli_print_json(json_pack("{s:s, s:I, s:I, s:I, s:f}", "datanet", pos[0], "records", (json_int_t)res.records,
                                 "lines", (json_int_t)res.lines, "version", (json_int_t)res.version, "seconds", secs));
    else
        printf("imported %zu records into %s (version %llu) in %.2f s\n", res.records, pos[0],
               (unsigned long long)res.version, secs);
    return 0;
}

static int print_record(void *ud, const registry_record_t *r) {
    json_t *arr = ud;
    if (arr) {
        json_array_append_new(arr, cli_json_record(r));
        return 0;
    }
    printf("%-8lld %-9s %s %.*s\n", (long long)r->id, registry_record_status_name(r->status), cli_addr(r->contributor),
           (int)r->text_len, r->text);
    return 0;
}

static int dataset_add(int argc, char **argv) {
    const char *db = NULL, *text = NULL, *key = NULL, *contributor = NULL, *sig_text = NULL, *pos[1];
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),
                          CLI_FLAG("--text", CLI_STRING, &text),
                          CLI_FLAG("--key", CLI_STRING, &key),
                          CLI_FLAG("--contributor", CLI_STRING, &contributor),
                          CLI_FLAG("--signature", CLI_STRING, &sig_text),
                          CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "dataset add";
    int rc = cli_parse(cmd, argc, argv, flags, sizeof flags / sizeof *flags, pos, 1, 1, dataset_usage);
    if (rc) return rc < 0 ? 0 : rc;
    if (!text) return cli_fail(cmd, 2, "--text T is required");
    if (key && contributor) return cli_fail(cmd, 2, "--contributor goes with --signature (--key signs as its own address)");
    if (sig_text && !contributor) return cli_fail(cmd, 2, "--signature needs --contributor ADDR");
    uint8_t addr[20], sig[65], digest[32];
    if (contributor && cli_parse_address(cmd, "--contributor", contributor, addr)) return 2;
    registry_contribution_digest(pos[0], text, strlen(text), digest);
    if ((rc = cli_sign_or_take(cmd, key, sig_text, digest, sig, key ? addr : NULL))) return rc;
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    registry_added_t added;
    acc_err err = {0};
    json_t *arr = json ? json_array() : NULL;
    rc = registry_record_add(reg, pos[0], text, strlen(text), addr, sig, &added, &err);
    if (rc == ACC_OK && arr) rc = registry_record_get(reg, added.id, print_record, arr, &err);
    registry_close(reg);
    if (rc) {
        json_decref(arr);
        return cli_fail_status(cmd, rc, &err);
    }
    if (arr) {
        cli_print_json(json_incref(json_array_get(arr, 0)));
        json_decref(arr);
    } else if (added.status == REGISTRY_RECORD_ACCEPTED)
        printf("record %lld accepted into %s (version %llu)\n", (long long)added.id, pos[0], (unsigned long long)added.seq);
    else
        printf("record %lld is pending the owner's review in %s\n", (long long)added.id, pos[0]);
    return 0;
}

static int parse_id(const char *cmd, const char *s, int64_t *id) {
    uint64_t v = 0;
    char *end;
    if (s && *s >= '1' && *s <= '9') v = strtoull(s, &end, 10);
    if (!v || *end || v > (uint64_t)INT64_MAX) return cli_fail(cmd, 2, "RECORD_ID: a record id (a positive number), got '%s'", s);
    *id = (int64_t)v;
    return 0;
}

static int dataset_review(int argc, char **argv, bool accept) {
    const char *db = NULL, *key = NULL, *sig_text = NULL, *pos[2];
    const char *cmd = accept ? "dataset accept" : "dataset reject";
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--key", CLI_STRING, &key), CLI_FLAG("--signature", CLI_STRING, &sig_text)};
    int rc = cli_parse(cmd, argc, argv, flags, 3, pos, 2, 2, dataset_usage);
    if (rc) return rc < 0 ? 0 : rc;
    int64_t id;
    if (parse_id(cmd, pos[1], &id)) return 2;
    uint8_t digest[32], sig[65];
    registry_review_digest(pos[0], id, accept, digest);
    if ((rc = cli_sign_or_take(cmd, key, sig_text, digest, sig, NULL))) return rc;
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    acc_err err = {0};
    rc = registry_record_review(reg, pos[0], id, accept, sig, &err);
    registry_datanet_t d;
    if (rc == ACC_OK) rc = registry_datanet_get(reg, pos[0], &d, &err);
    registry_close(reg);
    if (rc) return cli_fail_status(cmd, rc, &err);
    printf("record %lld %s (%s is at version %llu)\n", (long long)id, accept ? "accepted" : "rejected", pos[0],
           (unsigned long long)d.version);
    return 0;
}

static int dataset_accept(int argc, char **argv) { return dataset_review(argc, argv, true); }
static int dataset_reject(int argc, char **argv) { return dataset_review(argc, argv, false); }

static int dataset_query(int argc, char **argv) {
    const char *db = NULL, *pos[2];
    uint64_t limit = 10;
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--limit", CLI_AMOUNT, &limit), CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "dataset query";
    int rc = cli_parse(cmd, argc, argv, flags, 3, pos, 2, 2, dataset_usage);
    if (rc) return rc < 0 ? 0 : rc;
    if (limit < 1 || limit > REGISTRY_QUERY_LIMIT_MAX)
        return cli_fail(cmd, 2, "--limit: from 1 to %d", REGISTRY_QUERY_LIMIT_MAX);
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    registry_hits_t *hits;
    acc_err err = {0};
    rc = registry_query(reg, pos[0], pos[1], strlen(pos[1]), (size_t)limit, &hits, &err);
    registry_close(reg);
    if (rc) return cli_fail_status(cmd, rc, &err);
    json_t *arr = json ? json_array() : NULL;
    for (size_t i = 0; i < hits->n; i++) {
        const registry_hit_t *h = &hits->hit[i];
        if (arr)
            json_array_append_new(arr, json_pack("{s:I, s:s, s:s%, s:f}", "id", (json_int_t)h->id, "contributor",
                                                 cli_addr(h->contributor), "text", h->text, h->text_len, "score",
                                                 h->score));
        else
            printf("%8.3f  %-8lld %s  %.*s\n", h->score, (long long)h->id, cli_addr(h->contributor), (int)h->text_len,
                   h->text);
    }
    if (arr) cli_print_json(arr);
    else if (hits->n == 0) printf("no records match\n");
    free(hits);
    return 0;
}

static int datanet_row(void *ud, const registry_datanet_t *d) {
    if (ud) {
        json_array_append_new(ud, cli_json_datanet(d));
        return 0;
    }
    printf("%-24s %s  %-6s version %-7llu pending %-5llu %llu/query %llu/record  %s\n", d->name, cli_addr(d->owner),
           d->curation == REGISTRY_CURATION_REVIEW ? "review" : "auto", (unsigned long long)d->version,
           (unsigned long long)d->pending, (unsigned long long)d->price_per_query,
           (unsigned long long)d->price_per_record, d->description);
    return 0;
}

static int list_datanets(registry_t *reg, json_t *arr, acc_err *err) {
    return registry_datanets_list(reg, datanet_row, arr, err);
}

static int dataset_list(int argc, char **argv) {
    return list_command("dataset list", argc, argv, dataset_usage, list_datanets);
}

static int dataset_records(int argc, char **argv) {
    const char *db = NULL, *status = "pending", *pos[1];
    uint64_t after = 0, limit = 100;
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),
                          CLI_FLAG("--status", CLI_STRING, &status),
                          CLI_FLAG("--after", CLI_AMOUNT, &after),
                          CLI_FLAG("--limit", CLI_AMOUNT, &limit),
                          CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "dataset records";
    int rc = cli_parse(cmd, argc, argv, flags, sizeof flags / sizeof *flags, pos, 1, 1, dataset_usage);
    if (rc) return rc < 0 ? 0 : rc;
    registry_record_status_t st;
    if (strcmp(status, "pending") == 0) st = REGISTRY_RECORD_PENDING;
    else if (strcmp(status, "accepted") == 0) st = REGISTRY_RECORD_ACCEPTED;
    else if (strcmp(status, "rejected") == 0) st = REGISTRY_RECORD_REJECTED;
    else return cli_fail(cmd, 2, "--status: pending, accepted or rejected, got '%s'", status);
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    json_t *arr = json ? json_array() : NULL;
    acc_err err = {0};
    rc = registry_records_list(reg, pos[0], st, (int64_t)after, (size_t)limit, print_record, arr, &err);
    registry_close(reg);
    return cli_end_list(cmd, rc, arr, &err);
}

int cli_dataset(int argc, char **argv) {
    static const subcommand_t subs[] = {{"create", dataset_create}, {"import", dataset_import},
                                        {"add", dataset_add},       {"accept", dataset_accept},
                                        {"reject", dataset_reject}, {"query", dataset_query},
                                        {"list", dataset_list},     {"records", dataset_records}};
    return dispatch("dataset", subs, sizeof subs / sizeof *subs, argc, argv, dataset_usage);
}

/* ------------------------------------------------------------------------------------- model */

static const char model_usage[] =
    "usage: accrue model register NAME --kind http --url URL --upstream NAME --owner ADDR\n"
    "                             [--api-key-env VAR] [PRICES AND SHARES] [--db PATH] [--json]\n"
    "       accrue model register NAME --kind lua --script FILE --owner ADDR [PRICES AND SHARES]\n"
    "       accrue model build NAME --from DATANET [--order N] [--owner ADDR] [PRICES AND SHARES]\n"
    "       accrue model list [--db PATH] [--json]\n"
    "PRICES AND SHARES:\n"
    "  [--price-per-call N] [--price-per-1k-in N] [--price-per-1k-out N] [--owner-share-bps N]\n"
    "  [--lineage DATANET[,DATANET...]] [--share ADDR:BPS]... [--span-k N]\n"
    "\n"
    "Models agents call. http: any OpenAI-compatible chat-completions endpoint (base URL, the\n"
    "endpoint's model name, optionally the name of an environment variable holding its API key);\n"
    "several models may share one endpoint with different upstream names. lua: a model written as a\n"
    "sandboxed Lua script, written like an agent: it returns a table with on_message(session,\n"
    "request), request being the call's JSON ({\"prompt\"} or {\"messages\"}, and \"max_tokens\"), and\n"
    "answers with text; each call runs in a fresh sandbox (16 MiB, 20M instructions, 1 s, 256 KiB of\n"
    "output) with no models or datasets to call; the script must load there to be registered. build: a builtin model trained on a datanet's accepted records (an\n"
    "n-gram language model that continues a prompt and an extractive answerer, both answering in\n"
    "the contributors' own words; --order: its n-gram order, 1..16, default 5; --owner: default the\n"
    "datanet's owner; its lineage is the datanet; --lineage does not apply).\n"
    "Prices are in base units (10^-6 of a credit). --owner-share-bps: the owner's share in basis\n"
    "points; --lineage: the datanets the model was trained or tuned on (its outputs are attributed\n"
    "against them); --share: a fixed share for data it learned elsewhere (repeatable); the owner's\n"
    "share and the fixed shares add up to at most 10000. --span-k: the shortest copied span, in\n"
    "words, that pays its contributors (default 8).\n"
    "--db names the registry's file (default ./accrue.db).\n"
    "Exit status: 0 ok; 1 refused (a taken name, an unknown datanet, a lua script that does not\n"
    "load); 2 usage error.\n";

/* "ADDR:BPS" */
static int parse_share(const char *cmd, const char *s, registry_share_t *out) {
    const char *colon = strrchr(s, ':');
    char addr[64];
    if (!colon || (size_t)(colon - s) >= sizeof addr) return cli_fail(cmd, 2, "--share: ADDR:BPS, got '%s'", s);
    memcpy(addr, s, (size_t)(colon - s));
    addr[colon - s] = '\0';
    if (cli_parse_address(cmd, "--share", addr, out->address)) return 2;
    char *end;
    unsigned long bps = colon[1] >= '0' && colon[1] <= '9' ? strtoul(colon + 1, &end, 10) : 0;
    if (colon[1] < '0' || colon[1] > '9' || *end || bps == 0 || bps > REGISTRY_BPS_MAX)
        return cli_fail(cmd, 2, "--share: BPS from 1 to %u, got '%s'", REGISTRY_BPS_MAX, colon + 1);
    out->bps = (uint32_t)bps;
    return 0;
}

static int copy_field(const char *cmd, const char *flag, const char *v, char *out, size_t size) {
    if (!v) return 0;
    if (strlen(v) >= size) return cli_fail(cmd, 2, "%s: longer than %zu bytes", flag, size - 1);
    strcpy(out, v);
    return 0;
}

/* The prices, owner share, span k and fixed shares every kind of model takes; 0 or 2 (printed). */
static int model_terms(const char *cmd, registry_model_t *m, uint64_t per_call, uint64_t per_in, uint64_t per_out,
                       uint64_t share_bps, uint64_t span_k, bool span_k_given, const cli_list_t *shares) {
    if (share_bps > REGISTRY_BPS_MAX || span_k > 1024)
        return cli_fail(cmd, 2, share_bps > REGISTRY_BPS_MAX ? "--owner-share-bps: at most 10000" : "--span-k: at most 1024");
    if (span_k_given && span_k == 0) return cli_fail(cmd, 2, "--span-k: at least 1");
    m->price_per_call = per_call, m->price_per_1k_in = per_in, m->price_per_1k_out = per_out;
    m->owner_share_bps = (uint32_t)share_bps;
    m->span_k = (uint32_t)span_k;
    for (size_t i = 0; i < shares->n; i++)
        if (parse_share(cmd, shares->v[i], &m->shares[m->n_shares++])) return 2;
    return 0;
}

static int model_register(int argc, char **argv) {
    const char *db = NULL, *kind = NULL, *url = NULL, *upstream = NULL, *env = NULL, *owner = NULL, *script_path = NULL,
               *lineage = NULL, *pos[1];
    uint64_t per_call = 0, per_in = 0, per_out = 0, share_bps = 0, span_k = 0;
    cli_list_t shares = {0};
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),
                          CLI_FLAG("--kind", CLI_STRING, &kind),
                          CLI_FLAG("--url", CLI_STRING, &url),
                          CLI_FLAG("--upstream", CLI_STRING, &upstream),
                          CLI_FLAG("--api-key-env", CLI_STRING, &env),
                          CLI_FLAG("--owner", CLI_STRING, &owner),
                          CLI_FLAG("--script", CLI_STRING, &script_path),
                          CLI_FLAG("--price-per-call", CLI_AMOUNT, &per_call),
                          CLI_FLAG("--price-per-1k-in", CLI_AMOUNT, &per_in),
                          CLI_FLAG("--price-per-1k-out", CLI_AMOUNT, &per_out),
                          CLI_FLAG("--owner-share-bps", CLI_AMOUNT, &share_bps),
                          CLI_FLAG("--lineage", CLI_STRING, &lineage),
                          CLI_FLAG("--share", CLI_LIST, &shares),
                          CLI_FLAG("--span-k", CLI_AMOUNT, &span_k),
                          CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "model register";
    int rc = cli_parse(cmd, argc, argv, flags, sizeof flags / sizeof *flags, pos, 1, 1, model_usage);
    if (rc) return rc < 0 ? 0 : rc;
    registry_model_t *m = calloc(1, sizeof *m);
    char *script = NULL;
    size_t script_len = 0;
    if (!m) return cli_fail(cmd, 1, "out of memory");
    rc = 2;
    if (!kind) {
        cli_fail(cmd, 2, "--kind http|lua is required");
        goto done;
    }
    if (strcmp(kind, "builtin") == 0) {
        cli_fail(cmd, 2, "--kind: builtin models are made by `accrue model build`");
        goto done;
    }
    if (registry_model_kind_parse(kind, &m->kind) != ACC_OK) {
        cli_fail(cmd, 2, "--kind: http or lua, got '%s'", kind);
        goto done;
    }
    if (!owner) {
        cli_fail(cmd, 2, "--owner ADDR is required");
        goto done;
    }
    if (strlen(pos[0]) > REGISTRY_NAME_MAX) {
        cli_fail(cmd, 2, "NAME: longer than %d bytes", REGISTRY_NAME_MAX);
        goto done;
    }
    strcpy(m->name, pos[0]);
    if (cli_parse_address(cmd, "--owner", owner, m->owner)) goto done;
    if (m->kind == REGISTRY_MODEL_HTTP && (!url || !upstream)) {
        cli_fail(cmd, 2, "%s is required for an http model", url ? "--upstream NAME" : "--url URL");
        goto done;
    }
    if (m->kind != REGISTRY_MODEL_HTTP && (url || upstream || env)) {
        cli_fail(cmd, 2, "--url, --upstream and --api-key-env are for --kind http");
        goto done;
    }
    if (m->kind == REGISTRY_MODEL_LUA && !script_path) {
        cli_fail(cmd, 2, "--script FILE is required for a lua model");
        goto done;
    }
    if (m->kind != REGISTRY_MODEL_LUA && script_path) {
        cli_fail(cmd, 2, "--script is for --kind lua");
        goto done;
    }
    if (copy_field(cmd, "--url", url, m->url, sizeof m->url) ||
        copy_field(cmd, "--upstream", upstream, m->upstream, sizeof m->upstream) ||
        copy_field(cmd, "--api-key-env", env, m->api_key_env, sizeof m->api_key_env))
        goto done;
    if (model_terms(cmd, m, per_call, per_in, per_out, share_bps, span_k, flags[13].seen, &shares)) goto done;
    for (const char *p = lineage; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > REGISTRY_NAME_MAX || m->n_lineage == REGISTRY_LIST_MAX) {
            cli_fail(cmd, 2, "--lineage: DATANET[,DATANET...], at most %d names", REGISTRY_LIST_MAX);
            goto done;
        }
        memcpy(m->lineage[m->n_lineage], p, n);
        m->lineage[m->n_lineage++][n] = '\0';
        p += n + (p[n] == ',');
    }
    if (script_path && cli_read(cmd, script_path, REGISTRY_SCRIPT_MAX, &script, &script_len)) goto done;
    acc_err err = {0};
    if ((rc = rt_model_check(m, script, script_len, script_path, &err))) {
        rc = cli_fail_status(cmd, rc, &err);
        goto done;
    }
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_CREATE, &reg))) goto done;
    registry_model_t *got = malloc(sizeof *got);
    rc = got ? registry_model_register(reg, m, script, script_len, got, &err) : acc_fail(&err, ACC_ENOMEM, "out of memory");
    registry_close(reg);
    if (rc) {
        rc = cli_fail_status(cmd, rc, &err);
    } else if (json) {
        cli_print_json(cli_json_model(got));
    } else {
        printf("model %s registered (%s, owner %s)\n", got->name, registry_model_kind_name(got->kind), cli_addr(got->owner));
    }
    free(got);
done:
    free(script);
    free(m);
    return rc;
}

static int model_build(int argc, char **argv) {
    const char *db = NULL, *from = NULL, *owner = NULL, *pos[1];
    uint64_t order = FACTORY_DEFAULT_ORDER, per_call = 0, per_in = 0, per_out = 0, share_bps = 0, span_k = 0;
    cli_list_t shares = {0};
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),
                          CLI_FLAG("--from", CLI_STRING, &from),
                          CLI_FLAG("--order", CLI_AMOUNT, &order),
                          CLI_FLAG("--owner", CLI_STRING, &owner),
                          CLI_FLAG("--price-per-call", CLI_AMOUNT, &per_call),
                          CLI_FLAG("--price-per-1k-in", CLI_AMOUNT, &per_in),
                          CLI_FLAG("--price-per-1k-out", CLI_AMOUNT, &per_out),
                          CLI_FLAG("--owner-share-bps", CLI_AMOUNT, &share_bps),
                          CLI_FLAG("--share", CLI_LIST, &shares),
                          CLI_FLAG("--span-k", CLI_AMOUNT, &span_k),
                          CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "model build";
    int rc = cli_parse(cmd, argc, argv, flags, sizeof flags / sizeof *flags, pos, 1, 1, model_usage);
    if (rc) return rc < 0 ? 0 : rc;
    if (!from) return cli_fail(cmd, 2, "--from DATANET is required");
    if (order < 1 || order > FACTORY_MAX_ORDER) return cli_fail(cmd, 2, "--order: 1 to %d", FACTORY_MAX_ORDER);
    if (strlen(pos[0]) > REGISTRY_NAME_MAX) return cli_fail(cmd, 2, "NAME: longer than %d bytes", REGISTRY_NAME_MAX);
    registry_model_t *m = calloc(1, sizeof *m), *got = malloc(sizeof *got);
    if (!m || !got) {
        free(m);
        free(got);
        return cli_fail(cmd, 1, "out of memory");
    }
    strcpy(m->name, pos[0]);
    rc = 2;
    if ((owner && cli_parse_address(cmd, "--owner", owner, m->owner)) ||
        model_terms(cmd, m, per_call, per_in, per_out, share_bps, span_k, flags[9].seen, &shares))
        goto done;
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) goto done;
    acc_err err = {0};
    registry_datanet_t d;
    rc = registry_datanet_get(reg, from, &d, &err);
    if (rc == ACC_OK && !owner) memcpy(m->owner, d.owner, 20);
    if (rc == ACC_OK) rc = factory_build(reg, m, from, (uint32_t)order, got, &err);
    registry_close(reg);
    if (rc) {
        rc = cli_fail_status(cmd, rc, &err);
    } else if (json) {
        cli_print_json(cli_json_model(got));
    } else {
        json_t *p = json_loads(got->params, 0, NULL);
        printf("model %s built from %s at version %lld: %lld records, %lld words, %lld sentences, order %lld "
               "(builtin, owner %s)\n",
               got->name, from, (long long)json_integer_value(json_object_get(p, "seq")),
               (long long)json_integer_value(json_object_get(p, "records")),
               (long long)json_integer_value(json_object_get(p, "tokens")),
               (long long)json_integer_value(json_object_get(p, "sentences")), (long long)order, cli_addr(got->owner));
        json_decref(p);
    }
done:
    free(m);
    free(got);
    return rc;
}

static int model_row(void *ud, const registry_model_t *m) {
    if (ud) {
        json_array_append_new(ud, cli_json_model(m));
        return 0;
    }
    printf("%-24s %-7s %s  %llu/call %llu/1k in %llu/1k out  owner %u bps", m->name, registry_model_kind_name(m->kind),
           cli_addr(m->owner), (unsigned long long)m->price_per_call, (unsigned long long)m->price_per_1k_in,
           (unsigned long long)m->price_per_1k_out, m->owner_share_bps);
    if (m->n_lineage) {
        printf("  lineage ");
        for (size_t i = 0; i < m->n_lineage; i++) printf("%s%s", i ? "," : "", m->lineage[i]);
    }
    if (m->kind == REGISTRY_MODEL_HTTP) printf("  %s (%s)", m->url, m->upstream);
    putchar('\n');
    return 0;
}

static int list_models(registry_t *reg, json_t *arr, acc_err *err) {
    return registry_models_list(reg, model_row, arr, err);
}

static int model_list(int argc, char **argv) { return list_command("model list", argc, argv, model_usage, list_models); }

int cli_model(int argc, char **argv) {
    static const subcommand_t subs[] = {{"register", model_register}, {"build", model_build}, {"list", model_list}};
    return dispatch("model", subs, sizeof subs / sizeof *subs, argc, argv, model_usage);
}
