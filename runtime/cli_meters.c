/*
 * cli_meters.c: the ledger and the meters on the command line: `accrue ledger check`, `accrue
 * balance`, `accrue usage` and `accrue account topup`.
 *
 * Reading commands open the ledger read-only (they can run beside a server writing the same
 * file); amounts are shown in credits with the base units beside them (1 credit = 10^6
 * micro-credits). Exit status as cli.h: 0 ok, 1 refused or failed (an invariant that does not
 * hold, no such account or call), 2 usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meters/eth/keys.h"
#include "meters/ledger/ledger.h"
#include "meters/meters.h"
#include "runtime/cli.h"
#include "runtime/cli_util.h"

static int open_ledger(const char *cmd, const char *db, bool readonly, ledger_t **l) {
    acc_err err = {0};
    ledger_opts_t o = {.readonly = readonly};
    int rc = ledger_open(db ? db : REGISTRY_DEFAULT_PATH, &o, l, &err);
    if (rc) return cli_fail(cmd, 1, "%s", err.msg);
    return 0;
}

/* ------------------------------------------------------------------------------ ledger check */

static const char ledger_usage[] =
    "usage: accrue ledger check [--db PATH] [--json]\n"
    "\n"
    "Reads the whole ledger in one snapshot and checks its invariants:\n"
    "  balanced              each account's totals are the sums of its transfers; debits = credits\n"
    "  no_overdraft          no account below zero beyond its credit limit\n"
    "  charges_have_events   every posted charge belongs to a usage event whose attribution lines\n"
    "                        add up to its transfers, payee by payee\n"
    "  posted_xor_voided     each id stored once, posted or voided; a voided call moves no money\n"
    "  no_stale_pending      nothing pending is stored (reservations live in memory only)\n"
    "  contiguous_sequence   postings numbered 1..N with no gap, commit times in order\n"
    "  settlement_index      the index of batches by address agrees with the settlement transfers\n"
    "--db names the database (default ./accrue.db).\n"
    "Exit status: 0 all hold; 1 one does not (stderr names the first); 2 usage error.\n";

static int ledger_check_cmd(int argc, char **argv) {
    const char *db = NULL;
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--json", CLI_BOOL, &json)};
    int prc = cli_parse("ledger check", argc, argv, flags, 2, NULL, 0, 0, ledger_usage);
    if (prc) return prc < 0 ? 0 : prc;
    ledger_t *l;
    if (open_ledger("ledger check", db, true, &l)) return 1;
    ledger_check_report_t rep;
    acc_err err = {0};
    int rc = ledger_check(l, meter_check_event, l, &rep, &err);
    if (rc && rc != ACC_ECORRUPT) {
        ledger_close(l);
        return cli_fail("ledger check", 1, "%s", err.msg);
    }
    if (json) {
        json_t *inv = json_array();
        for (int i = 0; i < LEDGER_INV_COUNT; i++)
            json_array_append_new(inv, json_pack("{s:s,s:b,s:s}", "name", ledger_invariant_name((ledger_invariant_t)i),
                                                 "ok", rep.ok[i], "detail", rep.detail[i]));
        cli_print_json(json_pack("{s:b,s:o,s:I,s:I,s:I,s:s}", "ok", rc == ACC_OK, "invariants", inv, "postings",
                                 (json_int_t)rep.postings, "transfers", (json_int_t)rep.transfers, "accounts",
                                 (json_int_t)rep.accounts, "first_failure", rc ? err.msg : ""));
    } else {
        for (int i = 0; i < LEDGER_INV_COUNT; i++)
            printf("%-5s %s%s%s\n", rep.ok[i] ? "ok" : "FAIL", ledger_invariant_name((ledger_invariant_t)i),
                   rep.ok[i] ? "" : ": ", rep.detail[i]);
        printf("%" PRIu64 " postings, %" PRIu64 " transfers, %" PRIu64 " accounts\n", rep.postings, rep.transfers,
               rep.accounts);
    }
    ledger_close(l);
    if (rc) return cli_fail("ledger check", 1, "%s", err.msg);
    return 0;
}

int cli_ledger(int argc, char **argv) {
    if (argc < 2) return cli_fail("ledger", 2, "which one? (accrue ledger check; see accrue ledger --help)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ledger_usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "check") == 0) return ledger_check_cmd(argc - 1, argv + 1);
    return cli_fail("ledger", 2, "unknown command '%s' (see accrue ledger --help)", argv[1]);
}

/* ----------------------------------------------------------------------------------- balance */

static const char balance_usage[] =
    "usage: accrue balance ADDRESS|ACCOUNT [--db PATH] [--json]\n"
    "\n"
    "An account's balance: ADDRESS (0x..., what a contributor, owner or author earns) or the name\n"
    "of an API-key account (what it may spend). The system accounts are @operator (the operator's\n"
    "fees), @external (where top-ups come from) and @settlement (what batches settled).\n"
    "  available  what it may spend: credits + credit limit - debits - pending\n"
    "  pending    reserved by calls under way (in this process; a CLI sees none)\n"
    "  accrued    earned and not yet settled\n"
    "  settled    moved out in settlement batches\n"
    "Amounts in credits (1 credit = 1,000,000 micro-credits, the base unit).\n"
    "Exit status: 0 ok; 1 no such account; 2 usage error.\n";

/* The ledger account a command-line name means. */
static int resolve_account(const char *cmd, ledger_t *l, const char *db, const char *what, ledger_account_t **out) {
    acc_err err = {0};
    int rc;
    if (what[0] == '0' && (what[1] == 'x' || what[1] == 'X')) {
        uint8_t a[20];
        char text[ETH_ADDRESS_TEXT_SIZE];
        acc_err e = {0};
        if (eth_address_parse(what, strlen(what), a, &e) != ACC_OK)
            return cli_fail(cmd, 2, "%s: not an address: %s", what, e.msg);
        eth_address_to_text(a, text);
        rc = ledger_account(l, LEDGER_ACCOUNT_ADDRESS, text, out, &err);
    } else if (what[0] == '@') {
        *out = ledger_system(l, what + 1);
        if (!*out) return cli_fail(cmd, 2, "%s: the system accounts are @operator, @external and @settlement", what);
        return 0;
    } else {
        rc = ledger_account(l, LEDGER_ACCOUNT_USER, what, out, &err);
        ledger_balance_t b;
        if (!rc && ledger_balance(l, *out, false, &b, NULL) == ACC_OK && b.id == 0) {
            /* never booked: is it an account at all? */
            registry_t *reg;
            if (registry_open(db ? db : REGISTRY_DEFAULT_PATH, REGISTRY_OPEN_EXISTING, &reg, &err) != ACC_OK)
                return cli_fail(cmd, 1, "no account %s", what);
            registry_account_t ra;
            rc = registry_account_get(reg, what, &ra, &err);
            registry_close(reg);
            if (rc == ACC_ENOTFOUND) return cli_fail(cmd, 1, "no account %s (accrue account create %s)", what, what);
        }
    }
    if (rc) return cli_fail(cmd, cli_status_exit(rc), "%s", err.msg);
    return 0;
}

int cli_balance(int argc, char **argv) {
    const char *db = NULL, *pos[1];
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--json", CLI_BOOL, &json)};
    int prc = cli_parse("balance", argc, argv, flags, 2, pos, 1, 1, balance_usage);
    if (prc) return prc < 0 ? 0 : prc;
    ledger_t *l;
    if (open_ledger("balance", db, true, &l)) return 1;
    ledger_account_t *a;
    int rc = resolve_account("balance", l, db, pos[0], &a);
    if (rc) {
        ledger_close(l);
        return rc;
    }
    ledger_balance_t b;
    acc_err err = {0};
    if ((rc = ledger_balance(l, a, false, &b, &err))) {
        ledger_close(l);
        return cli_fail("balance", 1, "%s", err.msg);
    }
    const char *name = ledger_account_name(a);
    if (json) {
        cli_print_json(json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "account", name, "kind",
                                 ledger_account_kind(a) == LEDGER_ACCOUNT_ADDRESS ? "address"
                                 : ledger_account_kind(a) == LEDGER_ACCOUNT_USER  ? "user"
                                                                                  : "system",
                                 "available", (json_int_t)b.available, "pending", (json_int_t)b.pending, "accrued",
                                 (json_int_t)b.accrued, "settled", (json_int_t)b.settled, "earned", (json_int_t)b.earned,
                                 "debits", (json_int_t)b.debits, "credits", (json_int_t)b.credits, "credit_limit",
                                 (json_int_t)b.credit_limit, "unit", LEDGER_UNIT_NAME));
    } else {
        printf("%s\n", name);
        printf("  available %20s credits (%" PRIu64 " micro-credits)\n", cli_credits(b.available), b.available);
        printf("  pending   %20s\n", cli_credits(b.pending));
        printf("  accrued   %20s\n", cli_credits(b.accrued));
        printf("  settled   %20s\n", cli_credits(b.settled));
        printf("  (credits in %s, debits %s, earned %s, credit limit %s)\n", cli_credits(b.credits), cli_credits(b.debits),
               cli_credits(b.earned), b.credit_limit == LEDGER_AMOUNT_MAX ? "none" : cli_credits(b.credit_limit));
    }
    ledger_close(l);
    return 0;
}

/* ----------------------------------------------------------------------------- account topup */

int cli_account_topup(int argc, char **argv) {
    static const char usage[] =
        "usage: accrue account topup NAME AMOUNT [--id ID] [--db PATH] [--json]\n"
        "\n"
        "Credits the API-key account NAME with AMOUNT micro-credits (1 credit = 1000000), booked as a\n"
        "transfer from the ledger's external account (an operator action). --id (32 hex digits, time-\n"
        "ordered, as the ledger makes them) makes a retry safe: the same id twice credits once.\n"
        "Exit status: 0 ok; 1 no such account; 2 usage error.\n";
    const char *db = NULL, *id_text = NULL, *pos[2];
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db), CLI_FLAG("--id", CLI_STRING, &id_text),
                          CLI_FLAG("--json", CLI_BOOL, &json)};
    int prc = cli_parse("account topup", argc, argv, flags, 3, pos, 2, 2, usage);
    if (prc) return prc < 0 ? 0 : prc;
    char *end;
    errno = 0;
    unsigned long long amount = strtoull(pos[1], &end, 10);
    if (pos[1][0] < '0' || pos[1][0] > '9' || errno || *end || amount == 0 || amount > LEDGER_AMOUNT_MAX)
        return cli_fail("account topup", 2, "AMOUNT: a whole number of micro-credits from 1 to %" PRIu64 ", got '%s'",
                        LEDGER_AMOUNT_MAX, pos[1]);
    ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP};
    acc_err err = {0};
    if (id_text && ledger_id_parse(id_text, strlen(id_text), &p.id, &err))
        return cli_fail("account topup", 2, "--id: %s", err.msg);
    if (!id_text) ledger_id_new(&p.id);
    registry_t *reg;
    int rc = cli_open("account topup", db, REGISTRY_OPEN_EXISTING, &reg);
    if (rc) return rc;
    registry_account_t ra;
    rc = registry_account_get(reg, pos[0], &ra, &err);
    registry_close(reg);
    if (rc == ACC_ENOTFOUND) return cli_fail("account topup", 1, "no account %s (accrue account create %s)", pos[0], pos[0]);
    if (rc) return cli_fail_status("account topup", rc, &err);
    ledger_t *l;
    if (open_ledger("account topup", db, false, &l)) return 1;
    ledger_account_t *a;
    if ((rc = ledger_account(l, LEDGER_ACCOUNT_USER, pos[0], &a, &err))) {
        ledger_close(l);
        return cli_fail_status("account topup", rc, &err);
    }
    ledger_transfer_t t = {ledger_system(l, LEDGER_SYSTEM_EXTERNAL), a, (ledger_amount_t)amount, LEDGER_CODE_TOPUP};
    p.transfers = &t;
    p.ntransfers = 1;
    ledger_result_t res;
    rc = ledger_submit_wait(l, &p, &res, &err);
    ledger_balance_t b = {0};
    if (!rc) ledger_balance(l, a, true, &b, NULL);
    ledger_close(l);
    if (rc) return cli_fail_status("account topup", rc, &err);
    char hex[33];
    ledger_id_hex(&p.id, hex);
    if (json)
        cli_print_json(json_pack("{s:s,s:I,s:s,s:I,s:b,s:I}", "account", pos[0], "amount", (json_int_t)amount, "id", hex,
                                 "seq", (json_int_t)res.seq, "duplicate", res.duplicate, "available",
                                 (json_int_t)b.available));
    else
        printf("%s %s credits to %s (posting %" PRIu64 ", id %s); available now %s credits\n",
               res.duplicate ? "already credited:" : "credited", cli_credits((ledger_amount_t)amount), pos[0], res.seq, hex,
               cli_credits(b.available));
    return 0;
}

/* ------------------------------------------------------------------------------------- usage */

static const char usage_usage[] =
    "usage: accrue usage [--agent A] [--session S] [--payee ADDR] [--since T] [--limit N] [--db PATH] [--json]\n"
    "       accrue usage --call ID [--db PATH] [--json]\n"
    "\n"
    "Metered calls, newest first, each with who was paid what (its attribution lines). --since takes\n"
    "Unix milliseconds, a date (2026-12-03 or 2026-12-03T10:00:00Z) or an age (30m, 12h, 7d);\n"
    "--limit defaults to 20. --call explains one call: its spans or records, and each payee's part.\n"
    "Exit status: 0 ok; 1 no such call; 2 usage error.\n";

/* --since: ms, a date, or an age. 0 on success. */
static int parse_since(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!errno && end != s && (*end == 'm' || *end == 'h' || *end == 'd') && !end[1]) {
        uint64_t unit = *end == 'm' ? 60000 : *end == 'h' ? 3600000 : 86400000;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000;
        *out = v * unit > now ? 0 : now - v * unit;
        return 0;
    }
    if (!errno && end != s && !*end) {
        *out = v;
        return 0;
    }
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%d", &tm);
    if (rest && *rest == 'T') rest = strptime(rest + 1, "%H:%M:%S", &tm);
    if (rest && *rest == 'Z') rest++;
    if (!rest || *rest) return -1;
    *out = (uint64_t)timegm(&tm) * 1000;
    return 0;
}

typedef struct usage_walk {
    const char *agent, *session, *payee;
    uint64_t since;
    uint64_t limit, shown;
    bool json;
    acc_buf out;
} usage_walk_t;

static void print_event_line(const meter_event_t *e, uint64_t seq) {
    char hex[33];
    ledger_id_hex(&e->id, hex);
    time_t t = (time_t)(e->start_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s  #%" PRIu64 "  %s  %-6s %-7s %s  payer %s  %s%s%s  units %" PRIu64 "/%" PRIu64 "  cost %s\n", hex, seq,
           when, ledger_state_name(e->state), meter_resource_name(e->resource), e->resource_name, e->payer,
           e->agent[0] ? "agent " : "", e->agent, e->agent[0] ? "  " : "", e->units_in, e->units_out, cli_credits(e->cost));
    for (size_t i = 0; i < e->nlines; i++)
        printf("    %-9s %-42s %s\n", meter_role_name(e->lines[i].role), e->lines[i].payee, cli_credits(e->lines[i].amount));
    if (e->error_code) printf("    %s: %s\n", e->state == LEDGER_POSTED ? "cut short" : "failed", e->error);
}

static int usage_one(void *ud, const ledger_entry_t *e) {
    usage_walk_t *w = ud;
    if (!ledger_code_is_charge(e->code) || !e->event_len) return ACC_OK;
    if (e->time_ms < w->since) return ACC_ECANCELLED; /* older from here on */
    meter_event_t ev;
    if (meter_event_decode(e->event, e->event_len, &ev, NULL) != ACC_OK) return ACC_OK;
    bool keep = (!w->agent || strcmp(ev.agent, w->agent) == 0) && (!w->session || strcmp(ev.session, w->session) == 0);
    if (keep && w->payee) {
        keep = false;
        for (size_t i = 0; i < ev.nlines && !keep; i++) keep = strcasecmp(ev.lines[i].payee, w->payee) == 0;
    }
    if (keep) {
        if (w->json) {
            if (w->shown) acc_buf_putc(&w->out, ',');
            meter_event_json(&ev, e->seq, &w->out);
        } else {
            print_event_line(&ev, e->seq);
        }
        w->shown++;
    }
    meter_event_free(&ev);
    return w->shown >= w->limit ? ACC_ECANCELLED : ACC_OK;
}

typedef struct explain {
    bool json;
    int found;
} explain_t;

static int explain_one(void *ud, const ledger_entry_t *e) {
    explain_t *x = ud;
    meter_event_t ev;
    acc_err err = {0};
    if (!e->event_len || meter_event_decode(e->event, e->event_len, &ev, &err) != ACC_OK) {
        x->found = -1;
        return ACC_OK;
    }
    x->found = 1;
    if (x->json) {
        acc_buf b = ACC_BUF_INIT;
        meter_event_json(&ev, e->seq, &b);
        fwrite(b.data, 1, b.len, stdout);
        fputc('\n', stdout);
        acc_buf_free(&b);
        meter_event_free(&ev);
        return ACC_OK;
    }
    print_event_line(&ev, e->seq);
    printf("\nwhy:\n");
    if (ev.request_id[0] || ev.session[0])
        printf("  request %s, session %s\n", ev.request_id[0] ? ev.request_id : "-", ev.session[0] ? ev.session : "-");
    printf("  reserved %s before the call, charged %s after it (latency %.3f ms)\n", cli_credits(ev.reserved),
           cli_credits(ev.cost), (double)ev.latency_us / 1000);
    if (ev.evidence_len) {
        json_t *evj = json_loadb(ev.evidence, ev.evidence_len, 0, NULL);
        json_t *spans = json_object_get(evj, "spans"), *rows = json_object_get(evj, "rows");
        if (spans) {
            printf("  the output has %" JSON_INTEGER_FORMAT " tokens; %" JSON_INTEGER_FORMAT
                   " of them are in spans copied from contributed records:\n",
                   json_integer_value(json_object_get(evj, "output_tokens")),
                   json_integer_value(json_object_get(evj, "covered_tokens")));
            size_t i;
            json_t *s;
            json_array_foreach(spans, i, s) {
                char *recs = json_dumps(json_object_get(s, "records"), JSON_COMPACT);
                printf("    bytes %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
                       " tokens, in records %s: \"%s\"\n",
                       json_integer_value(json_object_get(s, "start")), json_integer_value(json_object_get(s, "end")),
                       json_integer_value(json_object_get(s, "tokens")), recs ? recs : "[]",
                       json_string_value(json_object_get(s, "text")));
                free(recs);
            }
        }
        if (rows) {
            printf("  the query returned these records, paid by rank score:\n");
            size_t i;
            json_t *r;
            json_array_foreach(rows, i, r)
                printf("    record %" JSON_INTEGER_FORMAT ", score %g\n", json_integer_value(json_object_get(r, "record")),
                       json_real_value(json_object_get(r, "score")));
        }
        json_decref(evj);
    } else if (ev.resource == METER_MODEL && ev.state == LEDGER_POSTED) {
        printf("  no span of the output was found in the model's lineage: its data share went to the owner\n");
    }
    printf("  who was paid, and why:\n");
    for (size_t i = 0; i < ev.nlines; i++) {
        const meter_line_t *l = &ev.lines[i];
        const char *why = l->role == METER_ROLE_OWNER      ? "the owner's share (and any data share no span earned)"
                          : l->role == METER_ROLE_SHARE    ? "a declared fixed share"
                          : l->role == METER_ROLE_SPAN     ? "their records' text in the output"
                          : l->role == METER_ROLE_RETRIEVAL ? "their records returned by the query"
                          : l->role == METER_ROLE_AUTHOR   ? "the agent's price and markup"
                                                           : "the operator's fee";
        printf("    %s  %-9s %s: %s%s%.*s\n", cli_credits(l->amount), meter_role_name(l->role), l->payee, why,
               l->evidence_len ? " " : "", (int)l->evidence_len, l->evidence ? l->evidence : "");
    }
    meter_event_free(&ev);
    return ACC_OK;
}

int cli_usage(int argc, char **argv) {
    const char *db = NULL, *agent = NULL, *session = NULL, *payee = NULL, *since = NULL, *call = NULL;
    uint64_t limit = 20;
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),          CLI_FLAG("--agent", CLI_STRING, &agent),
                          CLI_FLAG("--session", CLI_STRING, &session), CLI_FLAG("--payee", CLI_STRING, &payee),
                          CLI_FLAG("--since", CLI_STRING, &since),     CLI_FLAG("--limit", CLI_AMOUNT, &limit),
                          CLI_FLAG("--call", CLI_STRING, &call),       CLI_FLAG("--json", CLI_BOOL, &json)};
    int prc = cli_parse("usage", argc, argv, flags, sizeof flags / sizeof *flags, NULL, 0, 0, usage_usage);
    if (prc) return prc < 0 ? 0 : prc;
    uint64_t since_ms = 0;
    if (since && parse_since(since, &since_ms)) return cli_fail("usage", 2, "--since: '%s' is not a time", since);
    char payee_text[ETH_ADDRESS_TEXT_SIZE];
    if (payee) {
        uint8_t a[20];
        if (cli_parse_address("usage", "--payee", payee, a)) return 2;
        eth_address_to_text(a, payee_text);
        payee = payee_text;
    }
    ledger_t *l;
    if (open_ledger("usage", db, true, &l)) return 1;
    acc_err err = {0};
    int rc;
    if (call) {
        ledger_id_t id;
        if (ledger_id_parse(call, strlen(call), &id, &err)) {
            ledger_close(l);
            return cli_fail("usage", 2, "--call: %s", err.msg);
        }
        explain_t x = {.json = json};
        rc = ledger_find(l, &id, explain_one, &x, &err);
        ledger_close(l);
        if (rc == ACC_ENOTFOUND) return cli_fail("usage", 1, "no call %s", call);
        if (rc) return cli_fail("usage", 1, "%s", err.msg);
        if (x.found < 0) return cli_fail("usage", 1, "%s is a posting without a usage event", call);
        return 0;
    }
    usage_walk_t w = {.agent = agent, .session = session, .payee = payee, .since = since_ms,
                      .limit = limit ? limit : UINT64_MAX, .json = json, .out = ACC_BUF_INIT};
    uint64_t from = 1;
    if (since_ms && (rc = ledger_seq_at_time(l, since_ms, &from, &err))) {
        ledger_close(l);
        return cli_fail("usage", 1, "%s", err.msg);
    }
    if (json) acc_buf_putc(&w.out, '[');
    rc = ledger_scan(l, from, 0, true, usage_one, &w, &err);
    ledger_close(l);
    if (rc && rc != ACC_ECANCELLED) {
        acc_buf_free(&w.out);
        return cli_fail("usage", 1, "%s", err.msg);
    }
    if (json) {
        acc_buf_puts(&w.out, "]\n");
        fwrite(w.out.data, 1, w.out.len, stdout);
    } else if (!w.shown) {
        printf("no metered calls%s\n", agent || session || payee || since ? " match" : " yet");
    }
    acc_buf_free(&w.out);
    return 0;
}
