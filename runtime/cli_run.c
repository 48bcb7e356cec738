/*
 * cli_run.c: `accrue run SCRIPT.lua|AGENT[@VERSION]`: one agent, once, in a fresh sandbox, against
 * the local registry (runtime/provider.h).
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

#include <sys/stat.h>

#include <jansson.h>

#include "runtime/agents.h"
#include "runtime/base/file.h"
#include "runtime/cli.h"
#include "runtime/cli_util.h"
#include "runtime/provider.h"
#include "sandbox/sandbox.h"

#define SCRIPT_MAX ((size_t)256 << 20) /* the largest script read (its text also counts in --mem-limit) */

static const char run_usage[] =
    "usage: accrue run SCRIPT.lua|AGENT[@VERSION] [--input TEXT] [--db PATH] [--user API_KEY]\n"
    "                  [--json] [--no-demo] [--operator-fee BPS]\n"
    "                  [--upstream-connect-timeout MS] [--upstream-timeout MS]\n"
    "                  [--mem-limit BYTES] [--instr-limit N] [--time-limit MS]\n"
    "                  [--output-limit BYTES] [--slice-ms MS] [--stats]\n"
    "\n"
    "Loads SCRIPT.lua (or the deployed agent AGENT, its latest listed version unless @VERSION\n"
    "names one) in a fresh sandbox and runs its top-level code, which must return a table with\n"
    "on_message(session, text). With --input, calls on_message with TEXT and prints the reply.\n"
    "print() and session.send() output is printed as it comes.\n"
    "\n"
    "models.call(name, request) and datasets.query(name, text, {limit = N}) go to the registry in\n"
    "--db (default ./accrue.db) and are metered: each is priced, its most reserved on the paying\n"
    "account before it runs (a short balance is an insufficient_funds error the agent can catch),\n"
    "attributed to the people who earned it, and booked in the ledger before its answer is given.\n"
    "The account of --user API_KEY pays; without it the demo account does (it starts with 100\n"
    "credits). Queries: full-text search, N from 1 to 100, default 3. Before the script runs, the\n"
    "registry is opened (made when missing) and, when it holds nothing yet, seeded with the demo\n"
    "registry (the datanet demo/orchard, its models, the agents orchard-guide and orchard-sources),\n"
    "so no turn's time limit pays for that; --no-demo seeds nothing and opens the registry only\n"
    "when a call needs it.\n"
    "A deployed agent runs with the limits its manifest names (flags given here win), may call\n"
    "only the models and datanets its manifest lists, and each message pays its price.\n"
    "After the reply, a usage receipt: each metered call, its cost and who was paid (accrue usage\n"
    "--call ID explains one). --json prints one JSON object instead: output, reply, calls, cost.\n"
    "--operator-fee BPS: the operator's fee on every call, in basis points (default 100 = 1%).\n"
    "A model registered with --kind http is called at its URL (OpenAI chat completions), metered the\n"
    "same way; a failure (no connection, a timeout, an error status, a bad answer) is an upstream\n"
    "error the agent can catch, and costs nothing. --upstream-connect-timeout MS (until the answer\n"
    "starts, default 5000) and --upstream-timeout MS (until it is complete, default 60000) bound\n"
    "each such call, and the turn's time limit bounds both.\n"
    "\n"
    "Limits (per turn; memory for the sandbox's life; 0 turns a limit off, but for the time limit):\n"
    "  --mem-limit BYTES     Lua heap cap                     (default 67108864 = 64 MiB)\n"
    "  --instr-limit N       Lua instructions plus C work     (default 100000000)\n"
    "  --time-limit MS       wall time                        (default 5000)\n"
    "  --output-limit BYTES  print, session.send and reply    (default 1048576 = 1 MiB)\n"
    "  --slice-ms MS         pause and resume the turn every MS (time slicing; default off)\n"
    "  --stats               after the run, one JSON line of usage on stderr\n"
    "\n"
    "The built-in test provider answers test/echo, test/upper and test/words, unmetered.\n"
    "\n"
    "Exit status: 0 ok; 1 the script failed or hit a limit (one line on stderr names it);\n"
    "2 usage error.\n";

/* With --json, streamed output is kept here for the JSON object instead of printed. */
static acc_buf *json_stream;

/* Streamed output: to stdout as it comes, or (--json) into json_stream. stdout is the queue here:
 * a blocking write waits for room, so there is never a reason to pause. */
static sandbox_output_verdict_t print_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *text,
                                             size_t len) {
    (void)ud, (void)sb, (void)kind;
    if (json_stream) {
        acc_buf_append(json_stream, text, len);
        return SANDBOX_OUTPUT_OK;
    }
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return SANDBOX_OUTPUT_OK;
}

/* The usage receipt: each metered call with its cost and payees, as text or into a JSON object. */
static void print_receipt(rt_provider_t *p, json_t *obj) {
    const rt_receipt_t *r = p->session ? rt_session_receipts(p->session) : NULL;
    ledger_amount_t total = 0;
    size_t n = 0;
    for (const rt_receipt_t *x = r; x; x = x->next) total += x->cost, n++;
    ledger_balance_t b = {0};
    ledger_account_t *payer;
    if (p->ledger && ledger_account(p->ledger, LEDGER_ACCOUNT_USER, p->payer, &payer, NULL) == ACC_OK)
        ledger_balance(p->ledger, payer, false, &b, NULL);
    if (obj) {
        json_t *calls = json_array();
        for (const rt_receipt_t *x = r; x; x = x->next) {
            char hex[33];
            ledger_id_hex(&x->id, hex);
            json_t *lines = json_array();
            for (size_t i = 0; i < x->nlines; i++)
                json_array_append_new(lines, json_pack("{s:s,s:s,s:I}", "payee", x->lines[i].payee, "role",
                                                       meter_role_name(x->lines[i].role), "amount",
                                                       (json_int_t)x->lines[i].amount));
            json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:o}", "call", x->status == ACC_OK ? hex : "", "resource",
                                  meter_resource_name(x->resource), "name", x->name, "status",
                                  acc_status_name(x->status), "cost", (json_int_t)x->cost, "units_in",
                                  (json_int_t)x->units_in, "units_out", (json_int_t)x->units_out, "lines", lines);
            if (x->status) json_object_set_new(c, "error", json_string(x->error));
            json_array_append_new(calls, c);
        }
        json_object_set_new(obj, "calls", calls);
        json_object_set_new(obj, "cost", json_integer((json_int_t)total));
        json_object_set_new(obj, "payer", json_string(p->payer));
        if (p->ledger) json_object_set_new(obj, "available", json_integer((json_int_t)b.available));
        return;
    }
    if (!n) return;
    printf("--- usage: %zu metered call%s, %s credits, paid by %s (available now %s credits)\n", n, n == 1 ? "" : "s",
           cli_credits(total), p->payer, cli_credits(b.available));
    for (const rt_receipt_t *x = r; x; x = x->next) {
        char hex[33];
        ledger_id_hex(&x->id, hex);
        if (x->status) {
            printf("  %-7s %-24s not charged: %s\n", meter_resource_name(x->resource), x->name, x->error);
            continue;
        }
        printf("  %-7s %-24s %s credits  call %s\n", meter_resource_name(x->resource), x->name, cli_credits(x->cost), hex);
        for (size_t i = 0; i < x->nlines; i++)
            printf("      %-9s %-42s %s\n", meter_role_name(x->lines[i].role), x->lines[i].payee,
                   cli_credits(x->lines[i].amount));
    }
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

static void say_seeded(void *ud, const char *path) {
    (void)ud;
    fprintf(stderr, "accrue: made the demo registry in %s (--no-demo skips it)\n", path);
}

/* Is target a script file (it exists, or ends in .lua) rather than an agent's name? */
static int is_file(const char *target) {
    struct stat st;
    size_t n = strlen(target);
    return stat(target, &st) == 0 || (n > 4 && strcmp(target + n - 4, ".lua") == 0);
}

/* Loads the deployed agent ref from the registry: its script (malloc'd), its manifest into agent,
 * and the manifest's limits into limits where no flag set them (set: bit per flag m, i, t, o). */
static int load_agent(rt_provider_t *p, const char *ref, registry_agent_t *agent, sandbox_limits_t *limits,
                      unsigned set, char **src, size_t *len) {
    char name[REGISTRY_NAME_MAX + 1], version[REGISTRY_VERSION_MAX + 1];
    acc_err err = {0};
    registry_t *reg;
    int rc = rt_agent_ref(ref, name, version, &err);
    if (rc) {
        fprintf(stderr, "accrue run: %s is neither a script file nor an agent: %s\n", ref, err.msg);
        return 2;
    }
    if ((rc = rt_provider_registry(p, true, &reg, &err)) == ACC_OK && (rc = registry_agent_get(reg, name, version, agent, &err)) == ACC_OK)
        rc = registry_agent_script(reg, name, agent->version, src, len, &err);
    if (rc) {
        fprintf(stderr, "accrue run: %s\n", err.msg);
        return 1;
    }
    if (!agent->listed) {
        fprintf(stderr, "accrue run: %s@%s is unlisted by its author\n", agent->name, agent->version);
        free(*src);
        return 1;
    }
    const registry_agent_limits_t *l = &agent->limits;
    if (l->memory_bytes && !(set & 1)) limits->memory_bytes = (size_t)l->memory_bytes;
    if (l->instructions && !(set & 2)) limits->turn.instructions = l->instructions;
    if (l->time_ms && !(set & 4)) limits->turn.time_ms = l->time_ms;
    if (l->output_bytes && !(set & 8)) limits->turn.output_bytes = (size_t)l->output_bytes;
    return 0;
}

int cli_run(int argc, char **argv) {
    const char *script = NULL, *input = NULL;
    int stats = 0;
    unsigned set = 0; /* limits given as flags: 1 memory, 2 instructions, 4 time, 8 output */
    rt_provider_t rp = {.seeded = say_seeded, .operator_fee_bps = 100};
    int json = 0;
    sandbox_limits_t limits = sandbox_default_limits();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(run_usage, stdout);
            return 0;
        } else if (strcmp(a, "--stats") == 0) {
            stats = 1;
        } else if (strcmp(a, "--no-demo") == 0) {
            rp.no_demo = true;
        } else if (strcmp(a, "--db") == 0) {
            if (++i == argc) goto missing;
            rp.db_path = argv[i];
        } else if (strcmp(a, "--user") == 0) {
            if (++i == argc) goto missing;
            rp.user_key = argv[i];
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--operator-fee") == 0) {
            if (++i == argc) goto missing;
            if (cli_whole_number("run", a, argv[i], UINT64_MAX, &v)) return 2;
            if (v > 10000) {
                fputs("accrue run: --operator-fee is at most 10000 bps (the whole)\n", stderr);
                return 2;
            }
            rp.operator_fee_bps = (uint32_t)v;
        } else if (strcmp(a, "--upstream-connect-timeout") == 0 || strcmp(a, "--upstream-timeout") == 0) {
            if (++i == argc) goto missing;
            if (cli_whole_number("run", a, argv[i], UINT64_MAX, &v)) return 2;
            if (v < 1 || v > 3600000) {
                fprintf(stderr, "accrue run: %s is 1 to 3600000 ms\n", a);
                return 2;
            }
            if (a[11] == 'c') rp.upstream_connect_ms = (uint32_t)v;
            else rp.upstream_total_ms = (uint32_t)v;
        } else if (strcmp(a, "--input") == 0) {
            if (++i == argc) goto missing;
            input = argv[i];
        } else if (strcmp(a, "--mem-limit") == 0 || strcmp(a, "--instr-limit") == 0 ||
                   strcmp(a, "--time-limit") == 0 || strcmp(a, "--output-limit") == 0 ||
                   strcmp(a, "--slice-ms") == 0) {
            if (++i == argc) goto missing;
            if (cli_whole_number("run", a, argv[i], UINT64_MAX, &v)) return 2;
            set |= a[2] == 'm' ? 1 : a[2] == 'i' ? 2 : a[2] == 't' ? 4 : a[2] == 'o' ? 8 : 0;
            if (a[2] == 'm') limits.memory_bytes = (size_t)v;
            else if (a[2] == 'i') limits.turn.instructions = v;
            else if (a[2] == 't' && v == 0) {
                fputs("accrue run: --time-limit 0 is refused: every turn needs a wall-time limit (the "
                      "instruction limit does not see the C work inside Lua's VM; see README)\n", stderr);
                return 2;
            } else if (a[2] == 't') limits.turn.time_ms = v;
            else if (a[2] == 'o') limits.turn.output_bytes = (size_t)v;
            else if (v > UINT32_MAX) {
                fprintf(stderr, "accrue run: --slice-ms is at most %u\n", UINT32_MAX);
                return 2;
            } else limits.turn.slice_ms = (uint32_t)v;
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
        fputs("accrue run: which script? (accrue run SCRIPT.lua|AGENT[@VERSION]; see --help)\n", stderr);
        return 2;
    }
    size_t len;
    char *src = NULL, *chunkname;
    registry_agent_t *agent = NULL;
    if (is_file(script)) {
        acc_err err = {0};
        if (acc_read_file(script, SCRIPT_MAX, &src, &len, &err) != ACC_OK) {
            fprintf(stderr, "accrue run: cannot read %s\n", err.msg);
            return 2;
        }
        /* Chunk name "@path" makes errors read "path:LINE: message". */
        size_t nlen = strlen(script) + 2;
        chunkname = malloc(nlen);
        if (chunkname) snprintf(chunkname, nlen, "@%s", script);
    } else {
        agent = malloc(sizeof *agent);
        int lrc = agent ? load_agent(&rp, script, agent, &limits, set, &src, &len) : 1;
        if (lrc) {
            free(agent);
            rt_provider_close(&rp);
            return lrc;
        }
        rp.agent = agent;
        /* Chunk name "=name@version" makes errors read "name@version:LINE: message". */
        size_t nlen = strlen(agent->name) + strlen(agent->version) + 3;
        chunkname = malloc(nlen);
        if (chunkname) snprintf(chunkname, nlen, "=%s@%s", agent->name, agent->version);
    }

    /* The registry and the ledger are made (and the demo seeded) now, not inside a turn; after the
     * agent is known, since its metering session carries its prices. */
    acc_err err = {0};
    if (rt_provider_prepare(&rp, &err) != ACC_OK) {
        fprintf(stderr, "accrue run: %s\n", err.msg);
        free(src);
        free(chunkname);
        free(agent);
        rt_provider_close(&rp);
        return 1;
    }
    sandbox_provider_t provider = rt_provider(&rp);
    provider.output = print_output;
    acc_buf streamed = ACC_BUF_INIT;
    if (json) json_stream = &streamed;
    sandbox_t *sb = chunkname ? sandbox_open(&limits, &provider, &err) : NULL;
    if (!sb) {
        fprintf(stderr, "accrue: %s\n", chunkname ? err.msg : "out of memory");
        free(src);
        free(chunkname);
        free(agent);
        rt_provider_close(&rp);
        return 1;
    }
    int rc = 0;
    const char *reply = NULL;
    size_t rlen = 0;
    if (sandbox_start_load(sb, chunkname, src, len, NULL) != ACC_OK || rt_provider_run_turn(&rp, sb) != SANDBOX_DONE) {
        rc = fail(sb);
    } else if (input) {
        /* A deployed agent's message pays its price: reserved now, posted if the turn ends well. */
        rt_session_t *s = NULL;
        if (agent && (agent->price_per_message || agent->price_per_session)) {
            rc = rt_provider_meter(&rp, &s, &err);
            if (!rc) {
                ledger_id_t rid;
                char rid_hex[33];
                ledger_id_new(&rid);
                ledger_id_hex(&rid, rid_hex);
                rt_session_set_request_id(s, rid_hex);
                rc = rt_session_begin_message(s, &err);
            }
            if (rc) {
                fflush(stdout);
                fprintf(stderr, "accrue: %s\n", err.msg);
                rc = 1;
            }
        }
        if (rc) {
        } else if (sandbox_start_message(sb, input, strlen(input), NULL) != ACC_OK || rt_provider_run_turn(&rp, sb) != SANDBOX_DONE) {
            if (s) rt_session_end_message(s, false, NULL);
            rc = fail(sb);
        } else {
            if (s && rt_session_end_message(s, true, &err) == ACC_OK) rt_session_drain(s, rp.queue);
            reply = sandbox_reply(sb, &rlen);
            if (reply && !json) {
                fwrite(reply, 1, rlen, stdout);
                fputc('\n', stdout);
            }
        }
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "output", json_stringn(streamed.data ? streamed.data : "", streamed.len));
        json_object_set_new(o, "reply", reply ? json_stringn(reply, rlen) : json_null());
        print_receipt(&rp, o);
        char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (text) puts(text);
        free(text);
        json_decref(o);
    } else {
        print_receipt(&rp, NULL);
    }
    json_stream = NULL;
    acc_buf_free(&streamed);
    fflush(stdout);
    if (stats) print_stats(sb);
    sandbox_close(sb);
    rt_provider_close(&rp);
    free(agent);
    free(chunkname);
    free(src);
    return rc;
}
