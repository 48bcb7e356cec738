/*
 * test_registry_cli.c: the registry's commands through the real binary ($ACCRUE_BIN): account,
 * dataset, model, deploy, agents, agent, and `run` against the registry (the demo registry, deployed
 * agents by name, datasets.query). Every command's help, its output (text and --json), its exit
 * status (0 ok, 1 refused, 2 usage), its one stderr line naming the flag, file or line at fault,
 * and for every refusal a dump of the database before and after, which must be equal.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meters/eth/hex.h"
#include "meters/eth/keys.h"
#include "registry/registry.h"
#include "tests/check.h"
#include "tests/registry_test_util.h"

static char dir[256], db[320], bin[4096];
static char out[1 << 16], err_text[1 << 14];

/* Runs a shell command line in the scratch directory; stdout into out, stderr into err_text.
 * Returns the exit status. */
static int shell(const char *line) {
    char cmd[8192], errfile[300];
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s 2>'%s'", dir, line, errfile);
    int rc = test_run(cmd, out, sizeof out);
    FILE *f = fopen(errfile, "r");
    size_t n = f ? fread(err_text, 1, sizeof err_text - 1, f) : 0;
    err_text[n] = '\0';
    if (f) fclose(f);
    return rc;
}

/* Runs accrue with the arguments (a shell fragment) in the scratch directory. */
static int accrue(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int accrue(const char *fmt, ...) {
    char args[4096], line[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "'%s' %s", bin, args);
    return shell(line);
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* A refused command: exit status want, one stderr line holding part, and the database unchanged. */
#define REFUSED(want, part, ...)                                                                        \
    do {                                                                                                \
        char *before_ = dump(db);                                                                       \
        int rc_ = accrue(__VA_ARGS__);                                                                  \
        char *after_ = dump(db);                                                                        \
        CHECK_MSG(rc_ == (want), "exit %d, want %d: %s", rc_, want, err_text);                          \
        CHECK_MSG(lines(err_text) == 1 && strstr(err_text, part), "stderr '%s' lacks '%s'", err_text, part); \
        CHECK_MSG(strcmp(before_, after_) == 0, "the database changed");                               \
        free(before_);                                                                                  \
        free(after_);                                                                                   \
    } while (0)

#define OK(...)                                                                     \
    do {                                                                            \
        int rc_ = accrue(__VA_ARGS__);                                              \
        CHECK_MSG(rc_ == 0, "exit %d: %s", rc_, err_text);                          \
    } while (0)

/* Key files key-N.key for the test keys (registry_test_util.h's key_of), and their addresses. */
static char addr[10][ETH_ADDRESS_TEXT_SIZE];

static void make_keys(void) {
    for (uint8_t i = 1; i < 10; i++) {
        uint8_t a[20];
        eth_key *k = key_of(i, a);
        char path[400];
        snprintf(path, sizeof path, "%s/key-%u.key", dir, i);
        eth_key_write_file(k, path, NULL);
        eth_key_free(k);
        eth_address_to_text(a, addr[i]);
    }
}

/* The signature (0x hex) of key seed over a registry digest. */
static void sign_hex(uint8_t seed, const uint8_t digest[32], char hex[2 * 65 + 3]) {
    uint8_t to_sign[32], sig[65];
    registry_signed_digest(digest, to_sign);
    eth_key *k = key_of(seed, NULL);
    eth_key_sign_digest(k, to_sign, sig, NULL);
    eth_key_free(k);
    hex_encode0x(sig, 65, hex);
}

static void write_file(const char *name, const char *text) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* A JSON string member, "" when it is missing. */
static const char *str(json_t *v, const char *key) {
    const char *s = json_string_value(json_object_get(v, key));
    return s ? s : "";
}

static json_t *out_json(void) {
    json_error_t e;
    json_t *v = json_loads(out, 0, &e);
    CHECK_MSG(v != NULL, "not JSON: %s", out);
    return v;
}

/* ------------------------------------------------------------------------------ help */

static void test_every_command_has_help(void) {
    const char *cmds[] = {"account", "account create", "dataset", "dataset import", "dataset query", "model",
                          "model register", "model build", "deploy", "agents", "agent", "run"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        CHECK_MSG(accrue("%s --help", cmds[i]) == 0 && strstr(out, "usage: accrue"), "%s", cmds[i]);
        CHECK(err_text[0] == '\0');
    }
    CHECK(accrue("--help") == 0 && strstr(out, "dataset") && strstr(out, "deploy") && strstr(out, "agents"));
    REFUSED(2, "unknown command 'frobnicate'", "dataset frobnicate --db '%s'", db);
    REFUSED(2, "--colour", "dataset list --colour --db '%s'", db);
    REFUSED(2, "which one", "account");
}

/* ------------------------------------------------------------------------------ accounts */

static void test_account_commands(void) {
    CHECK(accrue("account list --db '%s'", db) == 1 && strstr(err_text, "no registry there"));
    CHECK(access(db, F_OK) != 0);
    OK("account create alice --db '%s'", db);
    test_chomp(out);
    CHECK(strncmp(out, "acc_", 4) == 0 && strlen(out) == 68);
    CHECK(strstr(err_text, "shown this once"));
    char key[80];
    snprintf(key, sizeof key, "%.79s", out);
    OK("account create ops --admin --json --db '%s'", db);
    json_t *v = out_json();
    CHECK(strncmp(str(v, "api_key"), "acc_", 4) == 0);
    json_decref(v);
    REFUSED(1, "exists already", "account create alice --db '%s'", db);
    REFUSED(2, "lower case", "account create Alice --db '%s'", db);
    REFUSED(2, "missing arguments", "account create --db '%s'", db);
    REFUSED(1, "no such account", "account revoke bob --db '%s'", db);
    OK("account list --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(v) == 2);
    json_t *alice = json_array_get(v, 0);
    CHECK(strcmp(str(alice, "name"), "alice") == 0);
    CHECK(json_array_size(json_object_get(alice, "keys")) == 1);
    CHECK(json_is_true(json_object_get(json_array_get(v, 1), "admin")));
    json_decref(v);
    char *d = dump(db);
    CHECK(strstr(d, key + 4) == NULL); /* only its hash is stored */
    free(d);
    OK("account revoke alice --db '%s'", db);
    CHECK(strstr(out, "revoked 1 API key"));
    REFUSED(1, "no live API key", "account revoke alice --db '%s'", db);
    OK("account key alice --db '%s'", db);
    test_chomp(out);
    CHECK(strncmp(out, "acc_", 4) == 0 && strcmp(out, key) != 0);
    OK("account list --db '%s'", db);
    CHECK(strstr(out, "alice") && strstr(out, "1 live key"));
}

/* ------------------------------------------------------------------------------ datasets */

static void test_dataset_commands(void) {
    REFUSED(2, "--owner ADDR is required", "dataset create fruit --db '%s'", db);
    char bad_case[ETH_ADDRESS_TEXT_SIZE];
    strcpy(bad_case, addr[1]);
    for (char *p = bad_case + 2; *p; p++)
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 32);
            break;
        } else if (*p >= 'A' && *p <= 'F') {
            *p = (char)(*p + 32);
            break;
        }
    REFUSED(2, "--owner", "dataset create fruit --owner %s --db '%s'", bad_case, db);
    REFUSED(2, "--price-per-query", "dataset create fruit --owner %s --price-per-query -5 --db '%s'", addr[1], db);
    REFUSED(2, "--price-per-record", "dataset create fruit --owner %s --price-per-record 9223372036854775808 --db '%s'",
            addr[1], db);
    REFUSED(2, "test/", "dataset create test/x --owner %s --db '%s'", addr[1], db);
    OK("dataset create fruit --owner %s --description 'fruit notes' --price-per-query 7 --price-per-record 2 --json --db '%s'",
       addr[1], db);
    json_t *v = out_json();
    CHECK(strcmp(str(v, "owner"), addr[1]) == 0);
    CHECK(json_integer_value(json_object_get(v, "price_per_query")) == 7);
    CHECK(strcmp(str(v, "curation"), "auto") == 0);
    json_decref(v);
    /* Any case in, EIP-55 out. */
    char lower[ETH_ADDRESS_TEXT_SIZE];
    for (size_t i = 0; i <= strlen(addr[1]); i++) lower[i] = (char)(addr[1][i] >= 'A' && addr[1][i] <= 'F' ? addr[1][i] + 32 : addr[1][i]);
    OK("dataset create curated --owner %s --review --db '%s'", lower, db);
    CHECK(strstr(out, addr[1]));
    REFUSED(1, "exists already", "dataset create fruit --owner %s --db '%s'", addr[1], db);

    /* Signed contributions: with a key file, or an address and its signature. */
    OK("dataset add fruit --text 'Grapes grow in clusters on vines.' --key key-2.key --db '%s'", db);
    CHECK(strstr(out, "accepted into fruit (version 1)"));
    REFUSED(1, "identical content is record 1", "dataset add fruit --text 'Grapes grow in clusters on vines.' --key key-3.key --db '%s'", db);
    uint8_t d[32];
    char sig[2 * 65 + 3];
    const char *text = "Figs are pollinated by tiny wasps.";
    registry_contribution_digest("fruit", text, strlen(text), d);
    sign_hex(3, d, sig);
    /* wrong key: key 3 signed, key 2's address claimed */
    REFUSED(1, "recovers", "dataset add fruit --text '%s' --contributor %s --signature %s --db '%s'", text, addr[2], sig, db);
    /* tampered record */
    REFUSED(1, "recovers", "dataset add fruit --text 'Figs are pollinated by tiny bees.' --contributor %s --signature %s --db '%s'",
            addr[3], sig, db);
    REFUSED(2, "--signature", "dataset add fruit --text x --contributor %s --signature 0x1234 --db '%s'", addr[3], db);
    REFUSED(2, "--key FILE or --signature", "dataset add fruit --text x --db '%s'", db);
    REFUSED(2, "--key", "dataset add fruit --text x --key nope.key --db '%s'", db);
    REFUSED(1, "no such datanet", "dataset add veg --text x --key key-2.key --db '%s'", db);
    OK("dataset add fruit --text '%s' --contributor %s --signature %s --json --db '%s'", text, addr[3], sig, db);
    v = out_json();
    CHECK(json_integer_value(json_object_get(v, "seq")) == 2);
    CHECK(strcmp(str(v, "contributor"), addr[3]) == 0);
    CHECK(strcmp(str(v, "signature"), sig) == 0);
    CHECK(strcmp(str(json_object_get(v, "provenance"), "kind"), "contribution") == 0);
    json_decref(v);

    /* Review: the owner (key 1) accepts or rejects; nobody else. */
    OK("dataset add curated --text 'Pending one.' --key key-4.key --db '%s'", db);
    CHECK(strstr(out, "pending"));
    long long pending_id = atoll(out + strlen("record "));
    OK("dataset add curated --text 'Pending two.' --key key-4.key --db '%s'", db);
    REFUSED(1, "owner", "dataset accept curated %lld --key key-4.key --db '%s'", pending_id, db);
    REFUSED(2, "RECORD_ID", "dataset accept curated abc --key key-1.key --db '%s'", db);
    REFUSED(1, "no such record", "dataset accept curated 9999 --key key-1.key --db '%s'", db);
    OK("dataset records curated --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(v) == 2);
    json_decref(v);
    OK("dataset accept curated %lld --key key-1.key --db '%s'", pending_id, db);
    CHECK(strstr(out, "accepted") && strstr(out, "version 1"));
    REFUSED(1, "not pending", "dataset reject curated %lld --key key-1.key --db '%s'", pending_id, db);
    OK("dataset reject curated %lld --key key-1.key --db '%s'", pending_id + 1, db);
    OK("dataset records curated --status rejected --db '%s'", db);
    CHECK(strstr(out, "Pending two.") && strstr(out, "rejected"));

    /* Import: all or nothing, the bad line named with its file. */
    char good[2048];
    snprintf(good, sizeof good,
             "{\"text\": \"Kiwi vines need a male plant nearby.\", \"contributor\": \"%s\"}\n"
             "{\"text\": \"Melons grow on trailing vines.\", \"contributor\": \"%s\"}\n"
             "{\"text\": \"Cherries ripen early in summer.\", \"contributor\": \"%s\"}\n",
             addr[4], lower, addr[5]);
    write_file("good.jsonl", good);
    char bad[4096];
    snprintf(bad, sizeof bad, "%s{\"text\": \"Plums\", \"contributor\": \"%s\"}\n", good, bad_case);
    write_file("bad-address.jsonl", bad);
    snprintf(bad, sizeof bad, "%s{\"text\": \"Kiwi vines need a male plant nearby.\", \"contributor\": \"%s\"}\n", good, addr[6]);
    write_file("dup-in-file.jsonl", bad);
    snprintf(bad, sizeof bad, "{\"text\": \"Grapes grow in clusters on vines.\", \"contributor\": \"%s\"}\n", addr[6]);
    write_file("dup-in-db.jsonl", bad);
    write_file("bad-json.jsonl", "{\"text\": \"a\", \"contributor\": \"0x0000000000000000000000000000000000000001\"}\n{oops\n");
    REFUSED(2, "bad-address.jsonl: line 4: contributor", "dataset import fruit bad-address.jsonl --db '%s'", db);
    REFUSED(1, "dup-in-file.jsonl: line 4: identical to line 1", "dataset import fruit dup-in-file.jsonl --db '%s'", db);
    REFUSED(1, "line 1: identical content is record 1", "dataset import fruit dup-in-db.jsonl --db '%s'", db);
    REFUSED(2, "bad-json.jsonl: line 2: bad JSON", "dataset import fruit bad-json.jsonl --db '%s'", db);
    REFUSED(2, "missing.jsonl", "dataset import fruit missing.jsonl --db '%s'", db);
    REFUSED(1, "no such datanet", "dataset import veg good.jsonl --db '%s'", db);
    OK("dataset import fruit good.jsonl --json --db '%s'", db);
    v = out_json();
    CHECK(json_integer_value(json_object_get(v, "records")) == 3 && json_integer_value(json_object_get(v, "version")) == 5);
    json_decref(v);
    /* No progress bar when stderr is not a terminal... */
    CHECK(err_text[0] == '\0');
    /* ...and one on a terminal (script(1), from Debian's essential bsdutils, gives the command a pty). */
    snprintf(good, sizeof good, "{\"text\": \"Quinces smell of honey.\", \"contributor\": \"%s\"}\n", addr[4]);
    write_file("tty.jsonl", good);
    char line[2048];
    snprintf(line, sizeof line, "script -qec \"'%s' dataset import fruit tty.jsonl --db '%s'\" /dev/null", bin, db);
    CHECK_EQ(shell(line), 0);
    CHECK_CONTAINS(out, "\r[########################################] 100%");
    CHECK_CONTAINS(out, "imported 1 records");

    /* Query. */
    OK("dataset query fruit 'what grows on vines?' --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(v) == 3);
    json_t *top = json_array_get(v, 0);
    CHECK(json_integer_value(json_object_get(top, "id")) > 0 && json_real_value(json_object_get(top, "score")) > 0);
    CHECK(strstr(str(top, "text"), "vines") != NULL);
    json_decref(v);
    OK("dataset query fruit vines --limit 1 --db '%s'", db);
    CHECK(lines(out) == 1 && strstr(out, "vines"));
    OK("dataset query fruit zebra --db '%s'", db);
    CHECK(strstr(out, "no records match"));
    REFUSED(2, "--limit", "dataset query fruit vines --limit 0 --db '%s'", db);
    REFUSED(2, "--limit", "dataset query fruit vines --limit 101 --db '%s'", db);
    REFUSED(1, "no such datanet", "dataset query veg vines --db '%s'", db);
    OK("dataset list --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(v) == 2);
    CHECK(json_integer_value(json_object_get(json_array_get(v, 1), "version")) == 6);
    json_decref(v);
}

/* ------------------------------------------------------------------------------ models */

static void test_model_commands(void) {
    REFUSED(2, "--kind", "model register chat --owner %s --db '%s'", addr[1], db);
    REFUSED(2, "model build", "model register chat --kind builtin --owner %s --db '%s'", addr[1], db);
    REFUSED(2, "--url", "model register chat --kind http --upstream x --owner %s --db '%s'", addr[1], db);
    REFUSED(2, "--share", "model register chat --kind http --url http://127.0.0.1:1/v1 --upstream x --owner %s --share %s --db '%s'",
            addr[1], addr[2], db);
    REFUSED(2, "10001", "model register chat --kind http --url http://127.0.0.1:1/v1 --upstream x --owner %s "
            "--owner-share-bps 9000 --share %s:1001 --db '%s'", addr[1], addr[2], db);
    REFUSED(1, "no such datanet", "model register chat --kind http --url http://127.0.0.1:1/v1 --upstream x --owner %s "
            "--lineage fruit,veg --db '%s'", addr[1], db);
    REFUSED(2, "--script", "model register tool --kind lua --owner %s --db '%s'", addr[1], db);
    OK("model register chat --kind http --url http://127.0.0.1:8081/v1 --upstream demo/ngram --api-key-env KEY_VAR "
       "--owner %s --price-per-call 5 --price-per-1k-in 100 --price-per-1k-out 300 --owner-share-bps 6000 "
       "--lineage fruit,curated --share %s:1000 --share %s:500 --json --db '%s'", addr[1], addr[2], addr[3], db);
    json_t *v = out_json();
    CHECK(json_integer_value(json_object_get(v, "price_per_1k_out")) == 300);
    CHECK(json_array_size(json_object_get(v, "lineage")) == 2 && json_array_size(json_object_get(v, "shares")) == 2);
    CHECK(strcmp(str(v, "api_key_env"), "KEY_VAR") == 0);
    json_decref(v);
    REFUSED(1, "exists already", "model register chat --kind http --url http://x/v1 --upstream y --owner %s --db '%s'", addr[1], db);
    /* a lua model's script must load in a model's sandbox: refused before the registry is touched */
    write_file("tool.lua", "return { call = function(req) return { text = 'x' } end }");
    REFUSED(1, "tool.lua: does not load as a lua model: script must return a table with an on_message function",
            "model register tool --kind lua --script tool.lua --owner %s --db '%s'", addr[1], db);
    write_file("tool.lua", "return { on_message = function(s, req) return 'x' end ");
    REFUSED(1, "does not load as a lua model: tool:1:", "model register tool --kind lua --script tool.lua --owner %s --db '%s'",
            addr[1], db);
    write_file("tool.lua", "local t = {} while true do t[#t + 1] = ('x'):rep(4096) end");
    REFUSED(1, "does not load as a lua model: the memory limit (16 MiB)",
            "model register tool --kind lua --script tool.lua --owner %s --db '%s'", addr[1], db);
    write_file("tool.lua", "return { on_message = function(s, req) return json.decode(req).prompt end }");
    OK("model register tool --kind lua --script tool.lua --owner %s --span-k 12 --db '%s'", addr[1], db);
    OK("model list --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(v) == 2);
    CHECK(json_integer_value(json_object_get(json_array_get(v, 1), "span_k")) == 12);
    json_decref(v);
}

/* `model build`: a builtin model trained on fruit's records (test_dataset_commands added them). */
static void test_model_build(void) {
    REFUSED(2, "--from DATANET is required", "model build fruit/ngram --db '%s'", db);
    REFUSED(2, "--order", "model build fruit/ngram --from fruit --order 0 --db '%s'", db);
    REFUSED(2, "--order", "model build fruit/ngram --from fruit --order 17 --db '%s'", db);
    REFUSED(2, "--owner", "model build fruit/ngram --from fruit --owner 0x12 --db '%s'", db);
    REFUSED(2, "--span-k", "model build fruit/ngram --from fruit --span-k 0 --db '%s'", db);
    REFUSED(1, "no such datanet", "model build fruit/ngram --from veg --db '%s'", db);
    OK("dataset create empty --owner %s --db '%s'", addr[4], db);
    REFUSED(1, "no accepted record", "model build fruit/ngram --from empty --db '%s'", db);
    OK("model build fruit/ngram --from fruit --order 3 --price-per-call 2 --owner-share-bps 2500 --json --db '%s'", db);
    json_t *v = out_json();
    CHECK(strcmp(str(v, "kind"), "builtin") == 0 && strcmp(str(v, "owner"), addr[1]) == 0); /* the datanet's owner */
    CHECK(json_array_size(json_object_get(v, "lineage")) == 1 &&
          strcmp(json_string_value(json_array_get(json_object_get(v, "lineage"), 0)), "fruit") == 0);
    json_t *params = json_object_get(v, "params");
    CHECK(json_integer_value(json_object_get(params, "order")) == 3);
    CHECK(json_integer_value(json_object_get(params, "records")) >= 2 && json_integer_value(json_object_get(params, "tokens")) > 5);
    CHECK(strncmp(json_string_value(json_object_get(params, "artifact")), "0x", 2) == 0);
    json_decref(v);
    REFUSED(1, "exists already", "model build fruit/ngram --from fruit --db '%s'", db);
    OK("model build fruit/ngram5 --from fruit --owner %s --db '%s'", addr[5], db);
    CHECK(strstr(out, "model fruit/ngram5 built from fruit") && strstr(out, "order 5") && strstr(out, addr[5]));
    OK("model list --db '%s'", db);
    CHECK(strstr(out, "fruit/ngram ") && strstr(out, "builtin"));
}

/* ------------------------------------------------------------------------------ agents */

static const char script_ok[] = "return { on_message = function(s, t) return 'echo: ' .. t end }";

static void write_manifest(const char *file, const char *name, const char *version, int author, const char *extra) {
    char m[2048];
    snprintf(m, sizeof m, "{\"name\": \"%s\", \"version\": \"%s\", \"author\": \"%s\"%s%s}", name, version, addr[author],
             extra ? ", " : "", extra ? extra : "");
    write_file(file, m);
}

static void test_deploy_and_marketplace(void) {
    write_file("agent.lua", script_ok);
    write_manifest("agent.json", "helper", "1.0.0", 7,
                   "\"description\": \"Echoes fruit\", \"tags\": [\"fruit\"], \"price_per_message\": 10, "
                   "\"datanets\": [\"fruit\"], \"models\": [\"test/echo\"]");
    REFUSED(2, "--manifest", "deploy agent.lua --key key-7.key --db '%s'", db);
    /* Wrong key. */
    REFUSED(1, "recovers", "deploy agent.lua --manifest agent.json --key key-8.key --db '%s'", db);
    /* A signature made over the script and manifest, then either tampered. */
    OK("deploy agent.lua --manifest agent.json --print-digest");
    test_chomp(out);
    uint8_t digest[32];
    CHECK_EQ(hex_parse0x(out, strlen(out), digest, 32, NULL), ACC_OK);
    char sig[2 * 65 + 3];
    sign_hex(7, digest, sig);
    write_file("evil.lua", "return { on_message = function(s, t) return 'pwned' end }");
    REFUSED(1, "recovers", "deploy evil.lua --manifest agent.json --signature %s --db '%s'", sig, db);
    write_manifest("evil.json", "helper", "1.0.0", 7,
                   "\"description\": \"Echoes fruit\", \"tags\": [\"fruit\"], \"price_per_message\": 1000000, "
                   "\"datanets\": [\"fruit\"], \"models\": [\"test/echo\"]");
    REFUSED(1, "recovers", "deploy agent.lua --manifest evil.json --signature %s --db '%s'", sig, db);
    /* A manifest that is not one, a script that does not load. */
    write_file("broken.json", "{\"name\": \"x\"");
    REFUSED(2, "broken.json: manifest: bad JSON", "deploy agent.lua --manifest broken.json --key key-7.key --db '%s'", db);
    write_file("syntax.lua", "return { on_message = function( end }");
    write_manifest("syntax.json", "syntax", "1.0.0", 7, NULL);
    REFUSED(1, "script: syntax:1:", "deploy syntax.lua --manifest syntax.json --key key-7.key --db '%s'", db);
    write_file("nohandler.lua", "return { }");
    REFUSED(1, "script:", "deploy nohandler.lua --manifest syntax.json --key key-7.key --db '%s'", db);
    /* The signed one, by --signature. */
    OK("deploy agent.lua --manifest agent.json --signature %s --json --db '%s'", sig, db);
    json_t *v = out_json();
    CHECK(strcmp(str(v, "version"), "1.0.0") == 0);
    CHECK(strcmp(str(v, "signature"), sig) == 0);
    json_decref(v);
    REFUSED(1, "never changes", "deploy agent.lua --manifest agent.json --key key-7.key --db '%s'", db);
    write_manifest("v2.json", "helper", "1.1.0", 8, NULL);
    REFUSED(1, "belongs to", "deploy agent.lua --manifest v2.json --key key-8.key --db '%s'", db);
    write_manifest("v2.json", "helper", "1.1.0", 7, "\"description\": \"Second\", \"tags\": [\"fruit\"], \"datanets\": [\"fruit\"]");
    write_file("agent2.lua", "return { on_message = function(s, t) return #datasets.query('fruit', t).rows .. ' rows' end }");
    OK("deploy agent2.lua --manifest v2.json --key key-7.key --db '%s'", db);
    CHECK(strstr(out, "deployed helper@1.1.0"));
    write_manifest("other.json", "other", "0.1.0", 8, "\"tags\": [\"veg\"], \"description\": \"Vegetables\"");
    OK("deploy agent.lua --manifest other.json --key key-8.key --db '%s'", db);

    /* The marketplace. */
    OK("agents --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(v) == 2);
    json_decref(v);
    OK("agents --search FRUIT --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(v) == 1);
    json_t *a = json_array_get(v, 0);
    CHECK(strcmp(str(a, "version"), "1.1.0") == 0);
    CHECK(json_integer_value(json_object_get(a, "versions")) == 2);
    CHECK(json_integer_value(json_object_get(json_object_get(a, "usage"), "sessions_30d")) == 0);
    json_decref(v);
    OK("agents --tag veg --sort new --limit 5 --db '%s'", db);
    CHECK(strstr(out, "other@0.1.0") && !strstr(out, "helper"));
    REFUSED(2, "--sort", "agents --sort best --db '%s'", db);
    OK("agent helper --db '%s'", db);
    CHECK(strstr(out, "helper@1.1.0") && strstr(out, addr[7]) && strstr(out, "1.0.0"));
    OK("agent helper@1.0.0 --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(json_object_get(v, "versions")) == 2);
    CHECK(json_integer_value(json_object_get(v, "price_per_message")) == 10);
    json_decref(v);
    REFUSED(1, "no such version", "agent helper@2.0.0 --db '%s'", db);
    REFUSED(1, "no such agent", "agent nobody --db '%s'", db);
    REFUSED(2, "semantic version", "agent helper@latest --db '%s'", db);

    /* Run by name: the latest listed version, its manifest's allow-list; metered, paid by a
     * funded account (the test registry has no demo account). */
    OK("account create runner --json --db '%s'", db);
    v = out_json();
    char key[REGISTRY_API_KEY_TEXT_SIZE];
    snprintf(key, sizeof key, "%s", str(v, "api_key"));
    json_decref(v);
    CHECK(accrue("run helper --input vines --user %s --db '%s'", key, db) == 1);
    CHECK_CONTAINS(err_text, "datasets.query: insufficient_funds: account runner has 0 micro-credits available");
    CHECK(accrue("run helper@1.0.0 --input vines --user %s --db '%s'", key, db) == 1); /* its price: 10 */
    CHECK_CONTAINS(err_text, "insufficient_funds: account runner has 0 micro-credits available, 10 needed");
    OK("account topup runner 1000000 --db '%s'", db);
    CHECK_CONTAINS(out, "credited 1.000000 credits to runner");
    OK("run helper --input vines --user %s --db '%s'", key, db);
    CHECK(strstr(out, "rows"));
    CHECK_CONTAINS(out, "--- usage: 1 metered call,");
    CHECK_CONTAINS(out, "dataset fruit");
    OK("run helper@1.0.0 --input hi --user %s --json --db '%s'", key, db);
    v = out_json();
    CHECK(strcmp(str(v, "reply"), "echo: hi") == 0);
    CHECK(strcmp(str(v, "payer"), "runner") == 0);
    CHECK(json_integer_value(json_object_get(v, "cost")) == 10);
    json_decref(v);
    CHECK(accrue("run helper --input hi --user acc_0000 --db '%s'", db) == 1);
    CHECK_CONTAINS(err_text, "--user");
    write_file("greedy.lua", "return { on_message = function(s, t) return #datasets.query('curated', t).rows end }");
    write_manifest("greedy.json", "greedy", "1.0.0", 7, "\"datanets\": [\"fruit\"]");
    OK("deploy greedy.lua --manifest greedy.json --key key-7.key --db '%s'", db);
    CHECK(accrue("run greedy --input x --user %s --db '%s'", key, db) == 1 &&
          strstr(err_text, "may not call datanet 'curated'"));

    /* Unlisting takes the author's key. */
    REFUSED(1, "author", "agent helper --unlist --key key-8.key --db '%s'", db);
    REFUSED(2, "--list or --unlist", "agent helper --unlist --list --key key-7.key --db '%s'", db);
    OK("agent helper@1.1.0 --unlist --key key-7.key --db '%s'", db);
    OK("agent helper --db '%s'", db);
    CHECK(strstr(out, "helper@1.0.0"));
    OK("agent helper --unlist --key key-7.key --db '%s'", db);
    OK("agents --json --db '%s'", db);
    v = out_json();
    CHECK(json_array_size(v) == 2); /* other and greedy */
    json_decref(v);
    CHECK(accrue("run helper --input hi --db '%s'", db) == 1 && strstr(err_text, "unlisted"));
    CHECK(accrue("run helper@1.0.0 --input hi --db '%s'", db) == 1 && strstr(err_text, "unlisted"));
    CHECK(accrue("run nobody --input hi --db '%s'", db) == 1 && strstr(err_text, "no such agent"));
    CHECK(accrue("run missing.lua --db '%s'", db) == 2 && strstr(err_text, "cannot read missing.lua"));
}

/* ------------------------------------------------------------------------------ the demo */

static void test_demo_registry(void) {
    char demo_db[400];
    snprintf(demo_db, sizeof demo_db, "%s/demo.db", dir);
    /* With --no-demo, a run that never needs the registry makes no file. */
    write_file("hello.lua", "return { on_message = function(s, t) return models.call('test/upper', t).text end }");
    OK("run hello.lua --input hi --no-demo --db '%s'", demo_db);
    CHECK(strstr(out, "HI") && access(demo_db, F_OK) != 0);
    /* Without it, the demo registry is made before the script's first turn, so no turn's time
     * limit pays for it: a script that calls nothing registered still finds it made. */
    write_file("loaded.lua", "print('top level ran') return { on_message = function(s, t) return t end }");
    OK("run loaded.lua --db '%s'", demo_db);
    CHECK_CONTAINS(out, "top level ran");
    CHECK_CONTAINS(err_text, "made the demo registry");
    OK("dataset list --db '%s'", demo_db);
    CHECK_CONTAINS(out, "demo/orchard");
    /* The README's first command, from the repository. */
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    OK("run '%s/scripts/demo.lua' --input 'what grows on vines' --db '%s'", cwd, demo_db);
    CHECK_CONTAINS(out, "Found 3 record(s)");
    CHECK_CONTAINS(out, "vines");
    CHECK(!strstr(err_text, "made the demo registry")); /* once */
    /* The seeding takes longer than this whole run's time limit: it is not inside a turn. A run on
     * a fresh file with a limit the turns need but the seeding does not fit in still succeeds. */
    char fresh_db[400];
    snprintf(fresh_db, sizeof fresh_db, "%s/fresh.db", dir);
    double t0 = test_now_ms();
    OK("run loaded.lua --input hi --db '%s'", fresh_db);
    double seed_ms = test_now_ms() - t0;
    remove(fresh_db);
    char side[420];
    snprintf(side, sizeof side, "%s-wal", fresh_db);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", fresh_db);
    remove(side);
    OK("run '%s/scripts/demo.lua' --input 'what grows on vines' --time-limit %.0f --db '%s'", cwd,
       seed_ms / 3 + test_scaled_ms(40), fresh_db);
    CHECK_CONTAINS(out, "Found 3 record(s)");
    /* The registry, that is (the ledger books each run's metered calls). */
    char *first = dump_except(demo_db, "ledger_");
    OK("run orchard-sources --input 'how do I store apples' --db '%s'", demo_db);
    CHECK_CONTAINS(out, "apples");
    CHECK(err_text[0] == '\0');
    char *second = dump_except(demo_db, "ledger_");
    CHECK_MSG(strcmp(first, second) == 0, "a second run changed the demo registry");
    free(first);
    free(second);
    OK("dataset list --json --db '%s'", demo_db);
    json_t *v = out_json();
    CHECK(json_array_size(v) == 1);
    CHECK(json_integer_value(json_object_get(json_array_get(v, 0), "version")) >= 200);
    json_decref(v);
    OK("agents --db '%s'", demo_db);
    CHECK(strstr(out, "orchard-guide") && strstr(out, "orchard-sources"));
    OK("model list --db '%s'", demo_db);
    CHECK(strstr(out, "demo/orchard-chat") && strstr(out, "http://127.0.0.1:8081/v1"));
    CHECK(strstr(out, "demo/orchard-ngram") && strstr(out, "builtin") && strstr(out, "lineage demo/orchard"));
    OK("account list --db '%s'", demo_db);
    CHECK(strstr(out, "demo"));
    /* The demo records are signed by five contributors. */
    OK("dataset query demo/orchard 'apple pear plum cherry grape strawberry soil frost jam' --limit 100 --json --db '%s'",
       demo_db);
    v = out_json();
    const char *seen[8] = {0};
    int n_seen = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *c = str(json_array_get(v, i), "contributor");
        bool known = false;
        for (int k = 0; k < n_seen; k++) known |= strcmp(seen[k], c) == 0;
        if (!known && n_seen < 8) seen[n_seen++] = c;
    }
    CHECK_EQ(n_seen, 5);
    json_decref(v);
    /* --no-demo: an empty registry stays empty. */
    char empty_db[400];
    snprintf(empty_db, sizeof empty_db, "%s/empty.db", dir);
    CHECK(accrue("run '%s/scripts/demo.lua' --input vines --no-demo --db '%s'", cwd, empty_db) == 1);
    CHECK_CONTAINS(err_text, "no such datanet");
    OK("dataset list --db '%s'", empty_db);
    CHECK(out[0] == '\0');
}

int main(void) {
    if (!realpath(test_accrue_bin(), bin)) {
        fprintf(stderr, "test_registry_cli: no accrue binary at %s\n", test_accrue_bin());
        return 1;
    }
    if (test_scratch_dir(dir, sizeof dir, "registry-cli") != 0) return 1;
    snprintf(db, sizeof db, "%s/r.db", dir);
    make_keys();
    RUN(test_every_command_has_help);
    RUN(test_account_commands);
    RUN(test_dataset_commands);
    RUN(test_model_commands);
    RUN(test_model_build);
    RUN(test_deploy_and_marketplace);
    RUN(test_demo_registry);
    test_remove_dir(dir);
    return check_finish("registry_cli");
}
