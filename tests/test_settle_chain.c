/*
 * test_settle_chain.c: the claim contract (meters/settle/contract/claim.vy) on a real EVM.
 *
 * tests/settle_chain.py runs the contract on titanoboa (py-evm, in process) with batches signed by
 * eth-account and trees built by OpenZeppelin's algorithm, independently of our C code, and checks
 * every rule: batches posted in order, only when the registered signer signed them, linked to the
 * previous one, covering the transfers right after it; each entry paid once, in full, to its own
 * address; every refusal with its reason (a second claim, a wrong amount, a wrong proof, a batch
 * never posted, tampered fields, another key, chain or contract, a high-s twin); rotation and
 * ownership only by the owner. Each of its checks is one check here.
 *
 * Missing titanoboa, vyper or eth-account is a failure, not a skip: run
 * ACCRUE_SETUP_ETH=1 bash tools/setup.sh (or set ACCRUE_PYTHON to a python that has them).
 */
#include <stdlib.h>

#include "tests/check.h"

static const char *python(void) {
    const char *p = getenv("ACCRUE_PYTHON");
    return p && *p ? p : "/opt/accrue-venv/bin/python3";
}

/* Runs settle_chain.py with args; each "FAIL ..." line it prints becomes a failed check here. */
static void run_script(const char *args, int min_checks) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s tests/settle_chain.py %s 2>&1", python(), args);
    static char out[1 << 20];
    int rc = test_run(cmd, out, sizeof out);
    int passed = -1, failed = -1;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "FAIL ", 5) == 0) CHECK_MSG(0, "%s", line + 5);
        if (sscanf(line, "# settle_chain: %d passed, %d failed", &passed, &failed) == 2) continue;
        if (strncmp(line, "ok ", 3) != 0 && strncmp(line, "FAIL ", 5) != 0) fprintf(stderr, "  | %s\n", line);
    }
    CHECK_MSG(rc == 0, "settle_chain.py %s exited %d%s", args, rc,
              rc == 3 ? ": titanoboa, vyper or eth-account missing (ACCRUE_SETUP_ETH=1 bash tools/setup.sh)" : "");
    CHECK_MSG(failed == 0 && passed >= min_checks, "%d passed, %d failed (want at least %d checks)", passed, failed,
              min_checks);
}

static void test_contract_rules(void) {
    run_script("contract", 50);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    RUN(test_contract_rules);
    return check_finish("settle_chain");
}
