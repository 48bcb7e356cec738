/*
 * test_settle_chain.c: settlement through the accrue binary, checked by independent code, and the
 * claim contract (meters/settle/contract/claim.vy) on a real EVM.
 *
 * tests/settle_chain.py runs the contract on titanoboa (py-evm, in process) and checks batches with
 * eth-account and OpenZeppelin's StandardMerkleTree algorithm, never with our C code:
 * - contract: every rule of the contract with batches signed by eth-account: batches posted in
 *   order, only when the registered signer signed them, linked, covering the transfers right after
 *   the last; each entry paid once, in full, to its own address; every refusal with its reason (a
 *   second claim, a wrong amount, a wrong proof, a batch never posted, tampered fields, another
 *   key, chain or contract, a high-s twin); rotation and ownership only by the owner.
 * - check: batches cut by `accrue settle` and printed by `accrue batch --json` and `accrue proof
 *   --json`: eth-account's digest of their typed data and of their fields, the signer it recovers,
 *   OZ's root and every proof.
 * - e2e: real metered activity round after round (`accrue run` of the demo agents: the demo
 *   datanet's contributors, the agents' author and the operator are paid), `accrue settle`,
 *   `accrue batch --json`, the contract accepting each batch, every payee claiming with `accrue
 *   proof` output, the chain's balances matching the batches and the ledger's settled balances,
 *   `accrue verify --db`, `accrue ledger check`, and each refusal.
 * Each check the script prints is one check here. The CLI's own behaviour (verify's failures, usage
 * errors, listings) is checked here directly.
 *
 * The cross-check and the CLI tests want more payees than the demo has: their activity comes from
 * this binary run as `test_settle_chain --book DB ROUND`, calls booked into the ledger as the
 * meters book them (a payer, several payees under charge codes, the operator's fee).
 *
 * Missing titanoboa, vyper or eth-account is a failure, not a skip: run
 * ACCRUE_SETUP_ETH=1 bash tools/setup.sh (or set ACCRUE_PYTHON to a python that has them).
 */
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>

#include "meters/eth/keys.h"
#include "meters/ledger/ledger.h"
#include "tests/check.h"

static char dir[128];
static char self[PATH_MAX];

static const char *python(void) {
    const char *p = getenv("ACCRUE_PYTHON");
    return p && *p ? p : "/opt/accrue-venv/bin/python3";
}

/* ---------------------------------------------------------------- booking activity */

/* Round r: 150 calls by "payer" over 40 payees (a new few each round), amounts from the round. */
static int book_round(const char *db, int round) {
    ledger_t *l;
    acc_err err = {0};
    ledger_opts_t o = {.no_sync = true};
    if (ledger_open(db, &o, &l, &err) != ACC_OK) {
        fprintf(stderr, "book: %s\n", err.msg);
        return 3;
    }
    ledger_account_t *u;
    if (ledger_account(l, LEDGER_ACCOUNT_USER, "payer", &u, &err) != ACC_OK) return 3;
    ledger_result_t res;
    if (round == 1) {
        ledger_transfer_t t = {ledger_system(l, LEDGER_SYSTEM_EXTERNAL), u, UINT64_C(1) << 50, LEDGER_CODE_TOPUP};
        ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &t, .ntransfers = 1};
        ledger_id_new(&p.id);
        if (ledger_submit_wait(l, &p, &res, &err) != ACC_OK) return 4;
    }
    test_rng_state = 0x5e771e00u + (uint64_t)round;
    for (int call = 0; call < 150; call++) {
        ledger_transfer_t t[4];
        ledger_account_t *seen[3] = {0};
        size_t n = 0;
        for (int j = 0; j < 3; j++) {
            uint8_t a[20] = {0xac, 0xc2, 0x0e};
            a[19] = (uint8_t)(test_rand() % 40 + (uint64_t)round * 3);
            char text[ETH_ADDRESS_TEXT_SIZE];
            eth_address_to_text(a, text);
            ledger_account_t *p;
            if (ledger_account(l, LEDGER_ACCOUNT_ADDRESS, text, &p, &err) != ACC_OK) return 3;
            if (p == seen[0] || p == seen[1]) continue;
            seen[j] = p;
            t[n++] = (ledger_transfer_t){u, p, 1 + test_rand() % 5000, j == 2 ? LEDGER_CODE_DATA_QUERY : LEDGER_CODE_MODEL_CALL};
        }
        t[n++] = (ledger_transfer_t){u, ledger_system(l, LEDGER_SYSTEM_OPERATOR), 3, LEDGER_CODE_OPERATOR_FEE};
        ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_MODEL_CALL, .transfers = t, .ntransfers = n,
                              .event = "usage", .event_len = 5};
        ledger_id_new(&p.id);
        if (ledger_submit_wait(l, &p, &res, &err) != ACC_OK) {
            fprintf(stderr, "book: %s\n", err.msg);
            return 4;
        }
    }
    ledger_close(l);
    return 0;
}

/* ---------------------------------------------------------------- running things */

/* Runs a command line; each "FAIL ..." line it prints becomes a failed check here, other lines that
 * are not "ok ..." go to stderr. */
static void run_checks(const char *what, const char *cmdline, int min_checks) {
    static char out[1 << 20];
    int rc = test_run(cmdline, out, sizeof out);
    int passed = -1, failed = -1;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "FAIL ", 5) == 0) CHECK_MSG(0, "%s", line + 5);
        if (sscanf(line, "# settle_chain: %d passed, %d failed", &passed, &failed) == 2) continue;
        if (strncmp(line, "ok ", 3) != 0 && strncmp(line, "FAIL ", 5) != 0) fprintf(stderr, "  | %s\n", line);
    }
    CHECK_MSG(rc == 0, "%s exited %d%s", what, rc,
              rc == 3 ? ": titanoboa, vyper or eth-account missing (ACCRUE_SETUP_ETH=1 bash tools/setup.sh)" : "");
    CHECK_MSG(failed == 0 && passed >= min_checks, "%s: %d passed, %d failed (want at least %d checks)", what, passed,
              failed, min_checks);
}

static void script(const char *args, int min_checks) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s tests/settle_chain.py %s 2>&1", python(), args);
    run_checks(args, cmd, min_checks);
}

/* Runs `accrue ARGS`; stdout into out; returns the exit status. stderr goes into out too when
 * with_stderr. */
static int accrue(char *out, size_t outlen, int with_stderr, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int accrue(char *out, size_t outlen, int with_stderr, const char *fmt, ...) {
    char args[4096], cmd[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s%s", test_accrue_bin(), args, with_stderr ? " 2>&1" : " 2>/dev/null");
    return test_run(cmd, out, outlen);
}

static void make_key(const char *path) {
    char out[256];
    CHECK(accrue(out, sizeof out, 1, "keygen --out %s", path) == 0);
}

static void book(const char *db, int round) {
    char cmd[1024], out[2048];
    snprintf(cmd, sizeof cmd, "%s --book %s %d 2>&1", self, db, round);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "booking round %d: %s", round, out);
}

/* ---------------------------------------------------------------- tests */

static void test_contract_rules(void) {
    script("contract", 50);
}

/* accrue's batches and proofs, cut by the binary, checked with eth-account and OZ's algorithm. */
static void test_batches_checked_independently(void) {
    char db[256], key[256], cmd[8192], out[1 << 16];
    snprintf(db, sizeof db, "%s/x.db", dir);
    snprintf(key, sizeof key, "%s/x.key", dir);
    make_key(key);
    size_t len = (size_t)snprintf(cmd, sizeof cmd, "%s tests/settle_chain.py check", python());
    for (int r = 1; r <= 3; r++) {
        book(db, r);
        CHECK(accrue(out, sizeof out, 1, "settle --key %s --db %s%s", key, db,
                     r == 1 ? " --chain-id 8453 --contract 0x00000000000000000000000000000000000c1a1e" : "") == 0);
        char path[300];
        snprintf(path, sizeof path, "%s/x%d.json", dir, r);
        CHECK(accrue(out, sizeof out, 0, "batch %d --db %s --json > %s", r, db, path) == 0);
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %s", path);
        /* the proofs of every payee of the batch */
        char list[1 << 16];
        CHECK(accrue(list, sizeof list, 0, "batch %d --db %s", r, db) == 0);
        int k = 0;
        for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
            char addr[64];
            if (sscanf(line, " 0x%40s", addr) != 1 || strlen(addr) != 40) continue;
            snprintf(path, sizeof path, "%s/x%d-%d.json", dir, r, k++);
            CHECK(accrue(out, sizeof out, 0, "proof %d 0x%s --db %s --json > %s", r, addr, db, path) == 0);
            if (len + 300 < sizeof cmd) len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %s", path);
        }
        CHECK_MSG(k >= 30, "batch %d: %d payees", r, k);
    }
    snprintf(cmd + len, sizeof cmd - len, " 2>&1");
    run_checks("check", cmd, 3 * 6);
}

static void test_end_to_end_on_chain(void) {
    char db[256], key[256], plan[256], work[256];
    snprintf(db, sizeof db, "%s/e2e.db", dir);
    snprintf(key, sizeof key, "%s/host.key", dir);
    snprintf(plan, sizeof plan, "%s/plan.json", dir);
    snprintf(work, sizeof work, "%s", dir);
    make_key(key);
    FILE *f = fopen(plan, "w");
    if (!f) {
        CHECK_MSG(0, "cannot write %s", plan);
        return;
    }
    char bin[PATH_MAX];
    if (!realpath(test_accrue_bin(), bin)) snprintf(bin, sizeof bin, "%s", test_accrue_bin());
    /* Three rounds of real metered calls: the demo agents query the demo datanet (paying the
     * contributors of the records they return) and pay their author; the operator takes a fee. */
    fprintf(f, "{\"accrue\": \"%s\", \"db\": \"%s\", \"key\": \"%s\", \"workdir\": \"%s\", \"rounds\": 3,\n"
               " \"calls\": [[[\"orchard-sources\", \"what grows on vines\"], [\"orchard-guide\", \"how do I prune apple trees\"],\n"
               "             [\"orchard-sources\", \"citrus and frost\"]],\n"
               "            [[\"orchard-guide\", \"when to pick pears\"], [\"orchard-sources\", \"berries in acid soil\"]],\n"
               "            [[\"orchard-sources\", \"kiwi pollination\"], [\"orchard-guide\", \"watering young trees\"],\n"
               "             [\"orchard-sources\", \"apples\"], [\"orchard-guide\", \"plums\"]]]}\n",
            bin, db, key, work);
    fclose(f);
    char args[512];
    snprintf(args, sizeof args, "e2e %s", plan);
    script(args, 3 * 15 + 3);
}

/* The commands themselves: what they print, how they fail. */
static void test_cli(void) {
    char db[256], key[256], out[1 << 16], path[300];
    snprintf(db, sizeof db, "%s/cli.db", dir);
    snprintf(key, sizeof key, "%s/cli.key", dir);
    make_key(key);
    book(db, 1);
    CHECK(accrue(out, sizeof out, 1, "settle --key %s --db %s", key, db) == 2);
    CHECK_CONTAINS(out, "--chain-id");
    CHECK(accrue(out, sizeof out, 1, "settle --db %s", db) == 2);
    CHECK_CONTAINS(out, "--key FILE is required");
    CHECK(accrue(out, sizeof out, 1, "settle --key %s --db %s --contract 0x12 --chain-id 1", key, db) == 2);
    CHECK_CONTAINS(out, "--contract");
    CHECK(accrue(out, sizeof out, 1, "settle --key %s --db %s --chain-id 1 --contract 0x%040d", key, db, 7) == 0);
    CHECK_CONTAINS(out, "batch 1: ");
    CHECK(accrue(out, sizeof out, 1, "settle --key %s --db %s --json", key, db) == 0);
    CHECK_STREQ(out, "{\"batch\":null}\n");
    CHECK(accrue(out, sizeof out, 1, "settle --key %s --db %s", key, db) == 0);
    CHECK_CONTAINS(out, "nothing to settle");
    book(db, 2);
    CHECK(accrue(out, sizeof out, 1, "settle --key %s --db %s --json", key, db) == 0);
    CHECK_CONTAINS(out, "\"sequence\":2");
    CHECK(accrue(out, sizeof out, 0, "batches --db %s --json", db) == 0);
    json_t *list = json_loads(out, 0, NULL);
    CHECK(json_array_size(list) == 2 &&
          json_integer_value(json_object_get(json_array_get(list, 0), "sequence")) == 2);
    json_decref(list);
    CHECK(accrue(out, sizeof out, 0, "batches --db %s", db) == 0);
    CHECK_CONTAINS(out, "transfers");
    /* A page at a time; an address's batches with its amount. */
    CHECK(accrue(out, sizeof out, 0, "batches --db %s --json --limit 1", db) == 0);
    list = json_loads(out, 0, NULL);
    CHECK(json_array_size(list) == 1 && json_integer_value(json_object_get(json_array_get(list, 0), "sequence")) == 2);
    json_decref(list);
    CHECK(accrue(out, sizeof out, 0, "batches --db %s --json --before 2", db) == 0);
    list = json_loads(out, 0, NULL);
    CHECK(json_array_size(list) == 1 && json_integer_value(json_object_get(json_array_get(list, 0), "sequence")) == 1);
    json_decref(list);
    CHECK(accrue(out, sizeof out, 0, "batch 1 --db %s --json", db) == 0);
    json_t *b1 = json_loads(out, 0, NULL), *entry = json_array_get(json_object_get(b1, "entries"), 0);
    char payee[64] = "", amount[32] = "";
    snprintf(payee, sizeof payee, "%s", json_string_value(json_array_get(entry, 0)));
    snprintf(amount, sizeof amount, "%s", json_string_value(json_array_get(entry, 1)));
    json_decref(b1);
    CHECK(accrue(out, sizeof out, 0, "batches --db %s --json --before 2 --address %s", db, payee) == 0);
    list = json_loads(out, 0, NULL);
    json_t *first = json_array_get(list, 0);
    CHECK_MSG(json_array_size(list) == 1 && json_integer_value(json_object_get(first, "sequence")) == 1 &&
                  strcmp(json_string_value(json_object_get(first, "amount")), amount) == 0,
              "%s", out);
    json_decref(list);
    CHECK(accrue(out, sizeof out, 0, "batches --db %s --before 2 --address %s", db, payee) == 0);
    CHECK_CONTAINS(out, "amount");
    CHECK_CONTAINS(out, amount);
    CHECK(accrue(out, sizeof out, 0, "batches --db %s --json --address 0x%040d", db, 5) == 0);
    CHECK_STREQ(out, "[]\n");
    CHECK(accrue(out, sizeof out, 1, "batches --db %s --limit 0", db) == 2);
    CHECK_CONTAINS(out, "--limit");
    CHECK(accrue(out, sizeof out, 1, "batches --db %s --address 0xzz", db) == 2);
    CHECK_CONTAINS(out, "--address");
    CHECK(accrue(out, sizeof out, 1, "batch 3 --db %s --json", db) == 1);
    CHECK_CONTAINS(out, "no batch 3: the last batch is 2");
    CHECK(accrue(out, sizeof out, 1, "batch x --db %s", db) == 2);
    CHECK(accrue(out, sizeof out, 1, "proof 1 0x%040d --db %s", 5, db) == 1);
    CHECK_CONTAINS(out, "batch 1 has no entry for");
    CHECK(accrue(out, sizeof out, 1, "batches --db %s/missing.db", dir) == 1);

    /* verify: holds, then names what was tampered. */
    snprintf(path, sizeof path, "%s/cli2.json", dir);
    CHECK(accrue(out, sizeof out, 0, "batch 2 --db %s --json > %s", db, path) == 0);
    CHECK(accrue(out, sizeof out, 1, "verify %s --db %s", path, db) == 0);
    CHECK_CONTAINS(out, "ok    signature: recovers to the signer");
    CHECK_CONTAINS(out, "ok    ledger: transfers");
    CHECK_CONTAINS(out, "verified\n");
    CHECK(accrue(out, sizeof out, 1, "verify %s", path) == 0);
    CHECK_CONTAINS(out, "verified (all but the link");
    char sed[1024];
    snprintf(sed, sizeof sed, "sed -i 's/\"total\": \"\\([0-9]*\\)\"/\"total\": \"1\\1\"/' %s", path);
    CHECK(system(sed) == 0);
    CHECK(accrue(out, sizeof out, 1, "verify %s --db %s", path, db) == 1);
    CHECK_CONTAINS(out, "FAIL  total: 1");
    CHECK(accrue(out, sizeof out, 1, "verify %s/nonexistent.json", dir) == 2);
    CHECK(accrue(out, sizeof out, 1, "verify") == 2);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--book") == 0) return book_round(argv[2], atoi(argv[3]));
    check_args(argc, argv);
    if (!realpath(argv[0], self)) snprintf(self, sizeof self, "%s", argv[0]);
    if (test_scratch_dir(dir, sizeof dir, "settle-chain") != 0) return 1;
    RUN(test_contract_rules);
    RUN(test_batches_checked_independently);
    RUN(test_end_to_end_on_chain);
    RUN(test_cli);
    test_remove_dir(dir);
    return check_finish("settle_chain");
}
