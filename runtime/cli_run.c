/*
 * cli_run.c: `accrue run SCRIPT.lua`: one agent script, once, in a fresh sandbox.
 *
 * Runs the script's top-level code, then on_message with --input if given, and prints the reply.
 * print() and session.send() output goes to stdout as it comes. On failure, exactly one line on
 * stderr names the limit or gives the script's error with its line; exit 1. Usage errors exit 2.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cli.h"
#include "runtime/test_provider.h"
#include "sandbox/sandbox.h"

static const char run_usage[] =
    "usage: accrue run SCRIPT.lua [--input TEXT] [--mem-limit BYTES] [--instr-limit N]\n"
    "                  [--time-limit MS] [--output-limit BYTES] [--slice-ms MS] [--stats]\n"
    "\n"
    "Loads SCRIPT.lua in a fresh sandbox and runs its top-level code, which must return a table\n"
    "with on_message(session, text). With --input, calls on_message with TEXT and prints the reply.\n"
    "print() and session.send() output is printed as it comes.\n"
    "\n"
    "Limits (per turn; memory for the sandbox's life; 0 turns a limit off, but for the time limit):\n"
    "  --mem-limit BYTES     Lua heap cap                     (default 67108864 = 64 MiB)\n"
    "  --instr-limit N       Lua instructions plus C work     (default 100000000)\n"
    "  --time-limit MS       wall time                        (default 5000)\n"
    "  --output-limit BYTES  print, session.send and reply    (default 1048576 = 1 MiB)\n"
    "  --slice-ms MS         pause and resume the turn every MS (time slicing; default off)\n"
    "  --stats               after the run, one JSON line of usage on stderr\n"
    "\n"
    "Models and datasets come from the built-in test provider: models test/echo and test/upper,\n"
    "dataset test/words.\n"
    "\n"
    "Exit status: 0 ok; 1 the script failed or hit a limit (one line on stderr names it);\n"
    "2 usage error.\n";

/* Parses a whole decimal number for flag; 0 on success, else prints the error. */
static int parse_u64(const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "accrue run: %s needs a whole number, got '%s'\n", flag, s ? s : "");
    return -1;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) free(buf);
            buf = bigger;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void print_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *text, size_t len) {
    (void)ud, (void)sb, (void)kind;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static void print_stats(sandbox_t *sb) {
    sandbox_stats_t st;
    sandbox_stats(sb, &st);
    fprintf(stderr,
            "{\"instructions\":%" PRIu64 ",\"turn_ms\":%.3f,\"output_bytes\":%zu,\"memory_bytes\":%zu,"
            "\"memory_peak\":%zu,\"host_calls\":%" PRIu64 ",\"pauses\":%" PRIu64 "}\n",
            st.instructions, (double)st.turn_ns / 1e6, st.output_bytes, st.memory_bytes, st.memory_peak,
            st.host_calls, st.pauses);
}

/* Length of the UTF-8 sequence at s (n bytes left) if it is valid and not a C1 control character
 * (U+0080..U+009F, which some terminals obey), else 0. */
static size_t printable_utf8(const unsigned char *s, size_t n) {
    size_t k = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (k == 0 || k > n || s[0] > 0xF4) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    uint32_t cp = k == 2 ? (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F)
                : k == 3 ? (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F)
                         : (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
                               (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    uint32_t least = k == 2 ? 0x80 : k == 3 ? 0x800 : 0x10000;
    if (cp < least || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp <= 0x9F) return 0;
    return k;
}

/* Writes agent-controlled text on one line: control characters, backslashes and bytes that are
 * not printable UTF-8 as escapes (\n, \xNN), so the text can neither break the line, drive the
 * terminal, nor pass for the host's own words. */
static void put_escaped(const char *text, FILE *out) {
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            fputc(c, out);
            i++;
        } else if (c >= 0x80 && printable_utf8(s + i, n - i)) {
            size_t k = printable_utf8(s + i, n - i);
            fwrite(s + i, 1, k, out);
            i += k;
        } else {
            if (c == '\n') fputs("\\n", out);
            else if (c == '\\') fputs("\\\\", out);
            else fprintf(out, "\\x%02X", c);
            i++;
        }
    }
}

/* The host's verdict, one line on stderr: "accrue: LIMIT exceeded" for a limit, which only the
 * host writes, or "accrue: script error: MESSAGE" with the script's message escaped, so a script
 * cannot print a line that reads like a limit. */
static int fail(sandbox_t *sb) {
    fflush(stdout);
    sandbox_limit_t limit = sandbox_limit_hit(sb);
    if (limit != SANDBOX_LIMIT_NONE) fprintf(stderr, "accrue: %s exceeded\n", sandbox_limit_name(limit));
    else {
        fputs("accrue: script error: ", stderr);
        put_escaped(sandbox_errmsg(sb), stderr);
        fputc('\n', stderr);
    }
    return 1;
}

int cli_run(int argc, char **argv) {
    const char *script = NULL, *input = NULL;
    int stats = 0;
    sandbox_limits_t limits = sandbox_default_limits();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(run_usage, stdout);
            return 0;
        } else if (strcmp(a, "--stats") == 0) {
            stats = 1;
        } else if (strcmp(a, "--input") == 0) {
            if (++i == argc) goto missing;
            input = argv[i];
        } else if (strcmp(a, "--mem-limit") == 0 || strcmp(a, "--instr-limit") == 0 ||
                   strcmp(a, "--time-limit") == 0 || strcmp(a, "--output-limit") == 0 ||
                   strcmp(a, "--slice-ms") == 0) {
            if (++i == argc) goto missing;
            if (parse_u64(a, argv[i], &v)) return 2;
            if (a[2] == 'm') limits.memory_bytes = (size_t)v;
            else if (a[2] == 'i') limits.instructions = v;
            else if (a[2] == 't' && v == 0) {
                fputs("accrue run: --time-limit 0 is refused: every turn needs a wall-time limit (the "
                      "instruction limit does not see the C work inside Lua's VM; see README)\n", stderr);
                return 2;
            } else if (a[2] == 't') limits.time_ms = v;
            else if (a[2] == 'o') limits.output_bytes = (size_t)v;
            else if (v > UINT32_MAX) {
                fprintf(stderr, "accrue run: --slice-ms is at most %u\n", UINT32_MAX);
                return 2;
            } else limits.slice_ms = (uint32_t)v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "accrue run: unknown flag '%s' (see accrue run --help)\n", a);
            return 2;
        } else if (!script) {
            script = a;
        } else {
            fprintf(stderr, "accrue run: one script at a time ('%s' is extra)\n", a);
            return 2;
        }
        continue;
    missing:
        fprintf(stderr, "accrue run: %s needs a value\n", a);
        return 2;
    }
    if (!script) {
        fputs("accrue run: which script? (accrue run SCRIPT.lua; see --help)\n", stderr);
        return 2;
    }
    size_t len;
    char *src = read_file(script, &len);
    if (!src) {
        fprintf(stderr, "accrue run: cannot read %s: %s\n", script, strerror(errno));
        return 2;
    }

    sandbox_provider_t provider = test_provider();
    provider.output = print_output;
    sandbox_t *sb = sandbox_open(&limits, &provider);
    if (!sb) {
        free(src);
        fputs("accrue: cannot create a sandbox (out of memory, or --mem-limit too small)\n", stderr);
        return 1;
    }
    /* Chunk name "@path" makes errors read "path:LINE: message". */
    size_t nlen = strlen(script) + 2;
    char *chunkname = malloc(nlen);
    snprintf(chunkname, nlen, "@%s", script);
    int rc = 0;
    if (sandbox_start_load(sb, chunkname, src, len) != 0 || sandbox_run_to_end(sb) != SANDBOX_DONE) {
        rc = fail(sb);
    } else if (input) {
        if (sandbox_start_message(sb, input, strlen(input)) != 0 || sandbox_run_to_end(sb) != SANDBOX_DONE) {
            rc = fail(sb);
        } else {
            size_t rlen;
            const char *reply = sandbox_reply(sb, &rlen);
            if (reply) {
                fwrite(reply, 1, rlen, stdout);
                fputc('\n', stdout);
            }
        }
    }
    fflush(stdout);
    if (stats) print_stats(sb);
    sandbox_close(sb);
    free(chunkname);
    free(src);
    return rc;
}
