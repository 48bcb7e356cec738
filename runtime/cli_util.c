/*
 * cli_util.c: flags, the registry from --db, keys and signatures, and JSON output for the
 * registry's subcommands (cli_util.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meters/eth/hex.h"
#include "meters/ledger/ledger.h"
#include "runtime/base/file.h"
#include "runtime/cli_util.h"

int cli_fail(const char *cmd, int exit, const char *fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "accrue %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One line, whatever the message holds. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "%s\n", line);
    return exit;
}

int cli_status_exit(int rc) { return rc == ACC_OK ? 0 : rc == ACC_EINVAL ? 2 : 1; }

int cli_fail_status(const char *cmd, int rc, const acc_err *err) {
    return cli_fail(cmd, cli_status_exit(rc), "%s", err && err->msg[0] ? err->msg : acc_status_name(rc));
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || *s < '0' || *s > '9') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

int cli_whole_number(const char *cmd, const char *flag, const char *s, uint64_t max, uint64_t *out) {
    if (cli_parse_u64(s, max, out) == 0) return 0;
    if (max == UINT64_MAX) return cli_fail(cmd, 2, "%s needs a whole number, got '%s'", flag, s ? s : "");
    return cli_fail(cmd, 2, "%s: a whole number from 0 to %llu, got '%s'", flag, (unsigned long long)max, s ? s : "");
}

int cli_parse(const char *cmd, int argc, char **argv, cli_flag_t *flags, size_t n_flags, const char **pos,
              size_t min_pos, size_t max_pos, const char *usage) {
    size_t n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return -1;
        }
        if (a[0] == '-' && a[1]) {
            cli_flag_t *f = NULL;
            for (size_t k = 0; k < n_flags && !f; k++)
                if (strcmp(flags[k].name, a) == 0) f = &flags[k];
            if (!f) {
                cli_fail(cmd, 2, "unknown flag '%s' (see accrue %s --help)", a, cmd);
                return 2;
            }
            if (f->seen && f->kind != CLI_LIST) return cli_fail(cmd, 2, "%s given twice", a);
            f->seen = true;
            if (f->kind == CLI_BOOL) {
                *(bool *)f->out = true;
                continue;
            }
            if (i + 1 == argc) return cli_fail(cmd, 2, "%s needs a value", a);
            const char *v = argv[++i];
            if (f->kind == CLI_STRING) {
                *(const char **)f->out = v;
            } else if (f->kind == CLI_AMOUNT) {
                if (cli_whole_number(cmd, a, v, INT64_MAX, (uint64_t *)f->out)) return 2;
            } else {
                cli_list_t *l = f->out;
                if (l->n == CLI_LIST_MAX) return cli_fail(cmd, 2, "%s: at most %d times", a, CLI_LIST_MAX);
                l->v[l->n++] = v;
            }
            continue;
        }
        if (n_pos == max_pos) return cli_fail(cmd, 2, "unexpected argument '%s' (see accrue %s --help)", a, cmd);
        pos[n_pos++] = a;
    }
    if (n_pos < min_pos) return cli_fail(cmd, 2, "missing arguments (see accrue %s --help)", cmd);
    for (size_t k = n_pos; k < max_pos; k++) pos[k] = NULL;
    return 0;
}

int cli_open(const char *cmd, const char *db, unsigned flags, registry_t **reg) {
    acc_err err = {0};
    int rc = registry_open(db ? db : REGISTRY_DEFAULT_PATH, flags, reg, &err);
    if (rc == ACC_ENOTFOUND && (flags & REGISTRY_OPEN_EXISTING))
        return cli_fail(cmd, 1, "%s (--db names the registry's file; `accrue run` makes the demo one)", err.msg);
    return rc ? cli_fail(cmd, 1, "%s", err.msg) : 0;
}

int cli_parse_address(const char *cmd, const char *flag, const char *text, uint8_t out[20]) {
    acc_err err = {0};
    if (eth_address_parse(text, strlen(text), out, &err) != ACC_OK) return cli_fail(cmd, 2, "%s: %s", flag, err.msg);
    return 0;
}

int cli_signature(const char *cmd, const char *flag, const char *text, uint8_t out[65]) {
    acc_err err = {0};
    if (hex_parse0x(text, strlen(text), out, 65, &err) != ACC_OK)
        return cli_fail(cmd, 2, "%s: %s (a 65-byte signature)", flag, err.msg);
    return 0;
}

int cli_key(const char *cmd, const char *flag, const char *path, eth_key **key) {
    acc_err err = {0};
    if (eth_key_read_file(key, path, &err) != ACC_OK) return cli_fail(cmd, 2, "%s: %s", flag, err.msg);
    return 0;
}

int cli_sign_or_take(const char *cmd, const char *key_path, const char *sig_text, const uint8_t digest[32],
                     uint8_t sig[65], uint8_t address[20]) {
    if (!!key_path == !!sig_text) return cli_fail(cmd, 2, "give --key FILE or --signature 0xSIG (one of them)");
    if (sig_text) return cli_signature(cmd, "--signature", sig_text, sig);
    eth_key *key;
    if (cli_key(cmd, "--key", key_path, &key)) return 2;
    uint8_t to_sign[32];
    acc_err err = {0};
    registry_signed_digest(digest, to_sign);
    int rc = eth_key_sign_digest(key, to_sign, sig, &err);
    if (address) eth_key_address(key, address);
    eth_key_free(key);
    return rc ? cli_fail(cmd, 1, "--key: %s", err.msg) : 0;
}

int cli_read(const char *cmd, const char *path, size_t max, char **data, size_t *len) {
    acc_err err = {0};
    int rc = acc_read_file(path, max, data, len, &err);
    return rc ? cli_fail(cmd, 2, "%s", err.msg) : 0;
}

const char *cli_credits(uint64_t v) {
    static char buf[4][32];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 32, "%" PRIu64 ".%06" PRIu64, v / LEDGER_UNITS_PER_CREDIT, v % LEDGER_UNITS_PER_CREDIT);
    return b;
}

const char *cli_addr(const uint8_t a[20]) {
    static char text[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(a, text);
    return text;
}

const char *cli_time(int64_t ms) {
    static char text[40];
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return text;
}

char *cli_hex(const uint8_t *p, size_t n) {
    char *out = malloc(2 * n + 3);
    if (out) hex_encode0x(p, n, out);
    return out;
}

void cli_print_json(json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(v);
    if (!s) {
        fputs("accrue: out of memory\n", stderr);
        return;
    }
    puts(s);
    free(s);
}

int cli_end_list(const char *cmd, int rc, json_t *arr, const acc_err *err) {
    if (rc) {
        json_decref(arr);
        return cli_fail_status(cmd, rc, err);
    }
    if (arr) cli_print_json(arr);
    return 0;
}

/* ------------------------------------------------------------------------------ objects */

static json_t *hex_json(const uint8_t *p, size_t n) {
    char *h = cli_hex(p, n);
    json_t *v = h ? json_string(h) : json_null();
    free(h);
    return v;
}

static json_t *amount_json(uint64_t v) { return json_integer((json_int_t)v); }

json_t *cli_json_datanet(const registry_datanet_t *d) {
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:I, s:s}", "name", d->name, "owner", cli_addr(d->owner),
                     "description", d->description, "price_per_query", amount_json(d->price_per_query),
                     "price_per_record", amount_json(d->price_per_record), "curation",
                     d->curation == REGISTRY_CURATION_REVIEW ? "review" : "auto", "version", (json_int_t)d->version,
                     "pending", (json_int_t)d->pending, "rejected", (json_int_t)d->rejected, "created",
                     cli_time(d->created_ms));
}

json_t *cli_json_model(const registry_model_t *m) {
    json_t *lineage = json_array(), *shares = json_array();
    for (size_t i = 0; i < m->n_lineage; i++) json_array_append_new(lineage, json_string(m->lineage[i]));
    for (size_t i = 0; i < m->n_shares; i++)
        json_array_append_new(shares, json_pack("{s:s, s:i}", "address", cli_addr(m->shares[i].address), "bps",
                                                (int)m->shares[i].bps));
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:i, s:i, s:o, s:o, s:s}", "name", m->name, "kind",
                          registry_model_kind_name(m->kind), "owner", cli_addr(m->owner), "price_per_call",
                          amount_json(m->price_per_call), "price_per_1k_in", amount_json(m->price_per_1k_in),
                          "price_per_1k_out", amount_json(m->price_per_1k_out), "owner_share_bps",
                          (int)m->owner_share_bps, "span_k", (int)m->span_k, "lineage", lineage, "shares", shares,
                          "created", cli_time(m->created_ms));
    if (!o) return NULL;
    if (m->kind == REGISTRY_MODEL_HTTP) {
        json_object_set_new(o, "url", json_string(m->url));
        json_object_set_new(o, "upstream", json_string(m->upstream));
        json_object_set_new(o, "api_key_env", m->api_key_env[0] ? json_string(m->api_key_env) : json_null());
    }
    if (m->kind == REGISTRY_MODEL_LUA) json_object_set_new(o, "script_hash", hex_json(m->script_hash, 32));
    json_t *params = json_loads(m->params, 0, NULL);
    json_object_set_new(o, "params", params ? params : json_object());
    return o;
}

json_t *cli_json_agent(const registry_agent_t *a, const registry_agent_usage_t *u) {
    json_t *tags = json_array(), *models = json_array(), *datanets = json_array();
    for (size_t i = 0; i < a->n_tags; i++) json_array_append_new(tags, json_string(a->tags[i]));
    for (size_t i = 0; i < a->n_models; i++) json_array_append_new(models, json_string(a->models[i]));
    for (size_t i = 0; i < a->n_datanets; i++) json_array_append_new(datanets, json_string(a->datanets[i]));
    json_t *limits = json_pack("{s:I, s:I, s:I, s:I}", "memory_bytes", (json_int_t)a->limits.memory_bytes,
                               "instructions", (json_int_t)a->limits.instructions, "time_ms",
                               (json_int_t)a->limits.time_ms, "output_bytes", (json_int_t)a->limits.output_bytes);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:b, s:s}", "name",
                          a->name, "version", a->version, "author", cli_addr(a->author), "description", a->description,
                          "tags", tags, "price_per_message", amount_json(a->price_per_message), "price_per_session",
                          amount_json(a->price_per_session), "markup_bps", (int)a->markup_bps, "limits", limits,
                          "models", models, "datanets", datanets, "script_hash", hex_json(a->script_hash, 32),
                          "signature", hex_json(a->signature, 65), "listed", a->listed, "deployed",
                          cli_time(a->created_ms));
    if (o && u) {
        json_object_set_new(o, "usage",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "sessions_7d", (json_int_t)u->sessions_7d,
                                      "sessions_30d", (json_int_t)u->sessions_30d, "messages_7d",
                                      (json_int_t)u->messages_7d, "messages_30d", (json_int_t)u->messages_30d,
                                      "revenue_7d", (json_int_t)u->revenue_7d, "revenue_30d",
                                      (json_int_t)u->revenue_30d));
    }
    return o;
}

json_t *cli_json_record(const registry_record_t *r) {
    json_t *prov = json_loads(r->provenance, 0, NULL);
    json_t *o = json_pack("{s:I, s:s, s:s%, s:s, s:o, s:s, s:o, s:o}", "id", (json_int_t)r->id, "contributor",
                          cli_addr(r->contributor), "text", r->text, r->text_len, "status",
                          registry_record_status_name(r->status), "content_hash", hex_json(r->content_hash, 32),
                          "time", cli_time(r->created_ms), "signature",
                          r->is_signed ? hex_json(r->signature, 65) : json_null(), "provenance",
                          prov ? prov : json_object());
    if (o && r->status == REGISTRY_RECORD_ACCEPTED) json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
    return o;
}
