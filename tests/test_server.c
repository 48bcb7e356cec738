/*
 * test_server.c: runs the server's integration suites (tests/server/test_*.py) against the real
 * binary ($ACCRUE_BIN), with /opt/accrue-venv/bin/python3 or $ACCRUE_PYTHON. Each suite starts
 * `accrue serve` processes of its own on loopback ports the kernel picks, and speaks real HTTP and
 * WebSocket to them (PyPI's requests, websockets, openai and eth-hash; test_page.py drives the web
 * page in Debian's chromium with PyPI's selenium: `ACCRUE_SETUP_TESTS=1 bash tools/setup.sh`
 * installs them all). The suites print tests/check.h's lines; this program passes them
 * on and adds their counts into one summary.
 *
 * Missing Python packages are a failure, not a skip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const suites[] = {
    "test_sessions.py",
    "test_openai.py",
    "test_protocol.py",
    "test_money.py",
    "test_api.py",
    "test_page.py",
    "test_run_http.py",
    "test_keepalive.py",
    "test_output_limit.py",
    "test_stream_cancel.py",
};

int main(void) {
    const char *py = getenv("ACCRUE_PYTHON");
    if (!py || !*py) py = "/opt/accrue-venv/bin/python3";
    int passed = 0, failed = 0, skipped = 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -c 'import websockets, openai, requests, eth_hash.auto, selenium' 2>&1", py);
    if (system(cmd) != 0) {
        fprintf(stderr,
                "  FAIL: %s lacks websockets, openai, requests, eth-hash or selenium: run ACCRUE_SETUP_TESTS=1 bash tools/setup.sh\n",
                py);
        printf("not ok python_packages (0.0 ms)\n# server: 0 passed, 1 failed, 0 skipped\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s -u tests/server/%s", py, suites[i]);
        fflush(stdout);
        FILE *p = popen(cmd, "r");
        if (!p) {
            printf("not ok %s (0.0 ms)\n", suites[i]);
            failed++;
            continue;
        }
        char line[4096];
        int saw_summary = 0;
        while (fgets(line, sizeof line, p)) {
            int a, b, c;
            char name[128];
            if (sscanf(line, "# %127[^:]: %d passed, %d failed, %d skipped", name, &a, &b, &c) == 4) {
                passed += a, failed += b, skipped += c;
                saw_summary = 1;
                continue;
            }
            fputs(line, stdout);
            fflush(stdout);
        }
        int rc = pclose(p);
        if (!saw_summary) {
            printf("not ok %s: crashed or printed no summary (status %d)\n", suites[i], rc);
            failed++;
        }
    }
    printf("# server: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
