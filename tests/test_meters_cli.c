/*
 * test_meters_cli.c: the meters through the real binary: `accrue run` metered against the demo
 * registry (the receipt, --json, --user), `accrue balance`, `accrue usage` (filters, --call, --json),
 * `accrue account topup` (idempotent --id), and `accrue ledger check` holding after every run and
 * failing, naming the invariant, on a database edited behind the ledger's back.
 */
#include <jansson.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/check.h"

static char dir[128], bin[1024], db[400], out[1 << 16], err_text[8192], cwd[1024];

static int accrue(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int accrue(const char *fmt, ...) {
    char args[4096], cmd[8192], errfile[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s 2>'%s'", dir, bin, args, errfile);
    int rc = test_run(cmd, out, sizeof out);
    FILE *f = fopen(errfile, "r");
    size_t n = f ? fread(err_text, 1, sizeof err_text - 1, f) : 0;
    err_text[n] = '\0';
    if (f) fclose(f);
    return rc;
}

#define OK(...) CHECK_MSG(accrue(__VA_ARGS__) == 0, "exit not 0: %s", err_text)

static json_t *out_json(void) {
    json_error_t e;
    json_t *v = json_loads(out, 0, &e);
    CHECK_MSG(v != NULL, "not JSON (%s): %.200s", e.text, out);
    return v;
}

static void ledger_holds(void) {
    OK("ledger check --db '%s'", db);
    CHECK_CONTAINS(out, "ok    charges_have_events");
}

static void test_run_is_metered_with_a_receipt(void) {
    OK("run '%s/scripts/demo.lua' --input 'what grows on vines' --db '%s'", cwd, db);
    CHECK_CONTAINS(out, "Found 3 record(s)");
    CHECK_CONTAINS(out, "--- usage: 2 metered calls, 0.000189 credits, paid by demo (available now 99.999811 credits)");
    CHECK_CONTAINS(out, "dataset demo/orchard");
    CHECK_CONTAINS(out, "retrieval");
    /* The demo's answer comes from the model built from the datanet: its spans pay contributors. */
    CHECK_CONTAINS(out, "model   demo/orchard-ngram");
    CHECK_CONTAINS(out, "span ");
    CHECK_CONTAINS(out, "operator");
    ledger_holds();
    /* A deployed agent: its message price and markup go to its author. */
    OK("run orchard-guide --input 'how do I store apples' --json --db '%s'", db);
    json_t *v = out_json();
    json_t *calls = json_object_get(v, "calls");
    CHECK_EQ(json_array_size(calls), 3);
    const char *kinds[3] = {json_string_value(json_object_get(json_array_get(calls, 0), "resource")),
                            json_string_value(json_object_get(json_array_get(calls, 1), "resource")),
                            json_string_value(json_object_get(json_array_get(calls, 2), "resource"))};
    CHECK(kinds[0] && kinds[1] && kinds[2] && strcmp(kinds[0], "dataset") == 0 && strcmp(kinds[1], "model") == 0 &&
          strcmp(kinds[2], "message") == 0);
    json_int_t cost = json_integer_value(json_object_get(v, "cost"));
    CHECK(cost > 1000);
    CHECK(json_string_value(json_object_get(v, "reply")) && strstr(json_string_value(json_object_get(v, "reply")), "pples"));
    CHECK(strstr(json_string_value(json_object_get(v, "output")), "Found"));
    json_decref(v);
    ledger_holds();
    /* the marketplace's figures come from the ledger */
    OK("agent orchard-guide --json --db '%s'", db);
    v = out_json();
    json_t *u = json_object_get(v, "usage");
    CHECK_EQ(json_integer_value(json_object_get(u, "sessions_30d")), 1);
    CHECK_EQ(json_integer_value(json_object_get(u, "messages_7d")), 1);
    CHECK_EQ(json_integer_value(json_object_get(u, "revenue_30d")), cost);
    json_decref(v);
}

static void test_balance(void) {
    OK("balance demo --db '%s'", db);
    CHECK_CONTAINS(out, "available");
    OK("balance demo --json --db '%s'", db);
    json_t *v = out_json();
    json_int_t avail = json_integer_value(json_object_get(v, "available"));
    json_int_t debits = json_integer_value(json_object_get(v, "debits"));
    CHECK(avail + debits == 100000000 && debits > 0);
    json_decref(v);
    OK("balance @operator --json --db '%s'", db);
    v = out_json();
    CHECK(json_integer_value(json_object_get(v, "earned")) > 0);
    CHECK(json_integer_value(json_object_get(v, "accrued")) == json_integer_value(json_object_get(v, "earned")));
    json_decref(v);
    /* a contributor paid for retrieval (the receipt's first payee), in any case of its address */
    OK("usage --json --limit 50 --db '%s'", db);
    v = out_json();
    const char *payee = NULL;
    for (size_t i = 0; i < json_array_size(v) && !payee; i++) {
        json_t *lines = json_object_get(json_array_get(v, i), "lines");
        for (size_t k = 0; k < json_array_size(lines) && !payee; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(lines, k), "role")), "retrieval") == 0)
                payee = json_string_value(json_object_get(json_array_get(lines, k), "payee"));
    }
    CHECK(payee != NULL);
    char lower[64];
    snprintf(lower, sizeof lower, "%s", payee ? payee : "0x0");
    for (char *p = lower; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    OK("balance %s --json --db '%s'", lower, db);
    json_t *b = out_json();
    CHECK(json_integer_value(json_object_get(b, "accrued")) > 0);
    CHECK(strcmp(json_string_value(json_object_get(b, "account")), payee ? payee : "") == 0); /* EIP-55 */
    json_decref(b);
    OK("usage --payee %s --json --db '%s'", lower, db);
    b = out_json();
    CHECK(json_array_size(b) >= 1);
    json_decref(b);
    json_decref(v);
    CHECK(accrue("balance nobody --db '%s'", db) == 1);
    CHECK_CONTAINS(err_text, "no account nobody");
    CHECK(accrue("balance 0x123 --db '%s'", db) == 2);
    CHECK(accrue("balance @bank --db '%s'", db) == 2);
}

static void test_usage_lists_and_explains(void) {
    OK("usage --db '%s'", db);
    CHECK_CONTAINS(out, "posted message orchard-guide");
    CHECK_CONTAINS(out, "posted dataset demo/orchard");
    OK("usage --agent orchard-guide --json --db '%s'", db);
    json_t *v = out_json();
    CHECK_EQ(json_array_size(v), 3);
    const char *id = NULL; /* the agent's dataset query */
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *resource = json_string_value(json_object_get(json_array_get(v, i), "resource"));
        if (resource && strcmp(resource, "dataset") == 0) id = json_string_value(json_object_get(json_array_get(v, i), "id"));
    }
    char call[40];
    snprintf(call, sizeof call, "%s", id ? id : "");
    json_decref(v);
    OK("usage --agent nobody --db '%s'", db);
    CHECK_CONTAINS(out, "no metered calls match");
    OK("usage --since 1h --limit 1 --json --db '%s'", db);
    v = out_json();
    CHECK_EQ(json_array_size(v), 1);
    json_decref(v);
    OK("usage --since 2000-01-01 --json --db '%s'", db);
    v = out_json();
    CHECK_EQ(json_array_size(v), 5);
    json_decref(v);
    OK("usage --since 4000-01-01 --json --db '%s'", db);
    v = out_json();
    CHECK_EQ(json_array_size(v), 0);
    json_decref(v);
    CHECK(accrue("usage --since yesterday --db '%s'", db) == 2);
    /* one call explained: the query's records and each payee's part */
    OK("usage --call %s --db '%s'", call, db);
    CHECK_CONTAINS(out, "the query returned these records, paid by rank score");
    CHECK_CONTAINS(out, "their records returned by the query");
    CHECK_CONTAINS(out, "{\"records\":[");
    OK("usage --call %s --json --db '%s'", call, db);
    v = out_json();
    CHECK(json_array_size(json_object_get(json_object_get(v, "evidence"), "rows")) >= 1);
    json_decref(v);
    CHECK(accrue("usage --call 0000000000007000800000000000dead --db '%s'", db) == 1);
    CHECK_CONTAINS(err_text, "no call");
    CHECK(accrue("usage --call xyz --db '%s'", db) == 2);
}

static void test_topup_is_idempotent_by_id(void) {
    OK("account create carol --db '%s'", db);
    OK("account topup carol 2500000 --id 01a2000000007000800000000000c001 --db '%s'", db);
    CHECK_CONTAINS(out, "credited 2.500000 credits to carol");
    OK("account topup carol 2500000 --id 01a2000000007000800000000000c001 --db '%s'", db);
    CHECK_CONTAINS(out, "already credited");
    OK("balance carol --json --db '%s'", db);
    json_t *v = out_json();
    CHECK_EQ(json_integer_value(json_object_get(v, "available")), 2500000);
    json_decref(v);
    CHECK(accrue("account topup nobody 5 --db '%s'", db) == 1);
    CHECK_CONTAINS(err_text, "no account nobody");
    CHECK(accrue("account topup carol -5 --db '%s'", db) == 2);
    CHECK(accrue("account topup carol 0 --db '%s'", db) == 2);
    CHECK(accrue("account topup carol 99999999999999999999 --db '%s'", db) == 2);
    ledger_holds();
}

static void test_check_fails_naming_the_invariant(void) {
    char copy[500];
    snprintf(copy, sizeof copy, "%s/tampered.db", dir);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", db, copy);
    CHECK(system(cmd) == 0);
    sqlite3 *s;
    CHECK(sqlite3_open(copy, &s) == SQLITE_OK);
    CHECK(sqlite3_exec(s, "UPDATE ledger_accounts SET credits = credits + 7 WHERE name = 'carol'", NULL, NULL, NULL) ==
          SQLITE_OK);
    sqlite3_close(s);
    CHECK(accrue("ledger check --db '%s'", copy) == 1);
    CHECK_CONTAINS(err_text, "balanced: account carol");
    CHECK_CONTAINS(out, "FAIL  balanced");
    CHECK(accrue("ledger check --json --db '%s'", copy) == 1);
    json_t *v = out_json();
    CHECK(json_is_false(json_object_get(v, "ok")));
    CHECK(json_is_false(json_object_get(json_array_get(json_object_get(v, "invariants"), 0), "ok")));
    json_decref(v);
    CHECK(accrue("ledger check --db '%s/none.db'", dir) == 1);
    CHECK_CONTAINS(err_text, "no database");
    CHECK(accrue("ledger frob --db '%s'", db) == 2);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    if (!realpath(test_accrue_bin(), bin)) {
        fprintf(stderr, "test_meters_cli: no accrue binary at %s\n", test_accrue_bin());
        return 1;
    }
    if (!getcwd(cwd, sizeof cwd) || test_scratch_dir(dir, sizeof dir, "meters-cli") != 0) return 1;
    snprintf(db, sizeof db, "%s/accrue.db", dir);
    RUN(test_run_is_metered_with_a_receipt);
    RUN(test_balance);
    RUN(test_usage_lists_and_explains);
    RUN(test_topup_is_idempotent_by_id);
    RUN(test_check_fails_naming_the_invariant);
    test_remove_dir(dir);
    return check_finish("meters_cli");
}
