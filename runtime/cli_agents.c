/*
 * cli_agents.c: `accrue deploy`, `accrue agents` and `accrue agent`: publishing signed agent
 * versions and reading the marketplace. The registry checks the signature and keeps versions
 * immutable; the runtime adds the sandbox check that the script loads (runtime/agents.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/agents.h"
#include "runtime/cli.h"
#include "runtime/cli_util.h"

#define MANIFEST_MAX (64u << 10)

static const char deploy_usage[] =
    "usage: accrue deploy SCRIPT.lua --manifest MANIFEST.json (--key FILE | --signature 0xSIG)\n"
    "                     [--db PATH] [--json]\n"
    "       accrue deploy SCRIPT.lua --manifest MANIFEST.json --print-digest\n"
    "\n"
    "Publishes one version of an agent. MANIFEST.json is a JSON object:\n"
    "  name, version (semver), author \"0x...\"        required\n"
    "  description, tags [...], price_per_message, price_per_session, markup_bps (on model and\n"
    "  data costs), limits {memory_bytes, instructions, time_ms, output_bytes}, models [...],\n"
    "  datanets [...] (what the agent may call; each must exist)\n"
    "The author signs keccak256(canonical manifest || keccak256(script)) as an EIP-191 personal\n"
    "message (the canonical manifest is its RFC 8785 form: keys sorted, no spaces): --key signs with\n"
    "the author's key file; --print-digest prints that hash, to sign elsewhere and pass as\n"
    "--signature. The deploy is accepted only when the signature recovers the manifest's author, the\n"
    "script loads in a sandbox, and the version is new (a version never changes; an agent's later\n"
    "versions come from its first author).\n"
    "--db names the registry's file (default ./accrue.db).\n"
    "Exit status: 0 ok; 1 refused (a bad signature, a version that exists, a script that does not\n"
    "load); 2 usage error (a bad flag, an unreadable file, a malformed manifest).\n";

int cli_deploy(int argc, char **argv) {
    const char *db = NULL, *manifest_path = NULL, *key = NULL, *sig_text = NULL, *pos[1];
    bool json = false, print_digest = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),
                          CLI_FLAG("--manifest", CLI_STRING, &manifest_path),
                          CLI_FLAG("--key", CLI_STRING, &key),
                          CLI_FLAG("--signature", CLI_STRING, &sig_text),
                          CLI_FLAG("--print-digest", CLI_BOOL, &print_digest),
                          CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "deploy";
    int rc = cli_parse(cmd, argc, argv, flags, sizeof flags / sizeof *flags, pos, 1, 1, deploy_usage);
    if (rc) return rc < 0 ? 0 : rc;
    if (!manifest_path) return cli_fail(cmd, 2, "--manifest MANIFEST.json is required");
    char *script = NULL, *manifest = NULL;
    size_t script_len, manifest_len;
    if (cli_read(cmd, pos[0], REGISTRY_SCRIPT_MAX, &script, &script_len) ||
        cli_read(cmd, manifest_path, MANIFEST_MAX, &manifest, &manifest_len)) {
        free(script);
        return 2;
    }
    uint8_t digest[32], sig[65];
    acc_err err = {0};
    registry_t *reg = NULL;
    if ((rc = registry_deploy_digest(manifest, manifest_len, script, script_len, digest, &err))) {
        rc = cli_fail(cmd, cli_status_exit(rc), "%s: %s", manifest_path, err.msg);
        goto done;
    }
    if (print_digest) {
        if (key || sig_text) {
            rc = cli_fail(cmd, 2, "--print-digest deploys nothing: leave out --key and --signature");
            goto done;
        }
        char *hex = cli_hex(digest, 32);
        printf("%s\n", hex);
        free(hex);
        goto done;
    }
    if ((rc = cli_sign_or_take(cmd, key, sig_text, digest, sig, NULL))) goto done;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_CREATE, &reg))) goto done;
    registry_agent_t *a = malloc(sizeof *a);
    rc = a ? registry_agent_deploy(reg, manifest, manifest_len, script, script_len, sig, rt_script_check, NULL, a, &err)
           : acc_fail(&err, ACC_ENOMEM, "out of memory");
    if (rc) rc = cli_fail_status(cmd, rc, &err);
    else if (json) cli_print_json(cli_json_agent(a, NULL));
    else printf("deployed %s@%s (author %s)\n", a->name, a->version, cli_addr(a->author));
    free(a);
done:
    registry_close(reg);
    free(script);
    free(manifest);
    return rc;
}

/* --------------------------------------------------------------------------------- agents */

static const char agents_usage[] =
    "usage: accrue agents [--search TEXT] [--tag T] [--sort usage|revenue|new] [--limit N]\n"
    "                     [--db PATH] [--json]\n"
    "\n"
    "The marketplace: every listed agent (its latest listed version) with its author, price,\n"
    "description, tags, number of versions and usage (sessions, messages and revenue over 7 and 30\n"
    "days, from the ledger). --search matches name, description and tags (any case); --tag one tag\n"
    "exactly; --sort usage (default), revenue or new; --limit N shows the first N.\n"
    "--db names the registry's file (default ./accrue.db).\n"
    "Exit status: 0 ok; 1 no registry; 2 usage error.\n";

static int agent_line(void *ud, const registry_agent_t *a, const registry_agent_usage_t *u) {
    if (ud) {
        json_t *o = cli_json_agent(a, u);
        json_object_set_new(o, "versions", json_integer((json_int_t)a->n_versions));
        json_array_append_new(ud, o);
        return 0;
    }
    printf("%s@%s  by %s  %llu/message %llu/session  %llu sessions, %llu messages, %llu revenue (30 days)\n", a->name,
           a->version, cli_addr(a->author), (unsigned long long)a->price_per_message,
           (unsigned long long)a->price_per_session, (unsigned long long)u->sessions_30d,
           (unsigned long long)u->messages_30d, (unsigned long long)u->revenue_30d);
    printf("    %s", a->description[0] ? a->description : "(no description)");
    if (a->n_tags) {
        printf("  [");
        for (size_t i = 0; i < a->n_tags; i++) printf("%s%s", i ? ", " : "", a->tags[i]);
        printf("]");
    }
    printf("\n");
    return 0;
}

int cli_agents(int argc, char **argv) {
    const char *db = NULL, *search = NULL, *tag = NULL, *sort = "usage";
    uint64_t limit = 0;
    bool json = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),       CLI_FLAG("--search", CLI_STRING, &search),
                          CLI_FLAG("--tag", CLI_STRING, &tag),     CLI_FLAG("--sort", CLI_STRING, &sort),
                          CLI_FLAG("--limit", CLI_AMOUNT, &limit), CLI_FLAG("--json", CLI_BOOL, &json)};
    const char *cmd = "agents";
    int rc = cli_parse(cmd, argc, argv, flags, sizeof flags / sizeof *flags, NULL, 0, 0, agents_usage);
    if (rc) return rc < 0 ? 0 : rc;
    registry_agent_query_t q = {.search = search, .tag = tag, .limit = (size_t)limit, .usage = rt_agent_usage};
    if (strcmp(sort, "usage") == 0) q.sort = REGISTRY_SORT_USAGE;
    else if (strcmp(sort, "revenue") == 0) q.sort = REGISTRY_SORT_REVENUE;
    else if (strcmp(sort, "new") == 0) q.sort = REGISTRY_SORT_NEW;
    else return cli_fail(cmd, 2, "--sort: usage, revenue or new, got '%s'", sort);
    if (flags[4].seen && limit == 0) return cli_fail(cmd, 2, "--limit: at least 1");
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    json_t *arr = json ? json_array() : NULL;
    acc_err err = {0};
    rt_usage_t *usage = NULL;
    if (rt_usage_load(db, &usage, &err) == ACC_OK) q.usage_ud = usage; /* no ledger yet: no usage */
    rc = registry_agents_list(reg, &q, agent_line, arr, &err);
    rt_usage_free(usage);
    registry_close(reg);
    return cli_end_list(cmd, rc, arr, &err);
}

/* ---------------------------------------------------------------------------------- agent */

static const char agent_usage[] =
    "usage: accrue agent NAME[@VERSION] [--db PATH] [--json]\n"
    "       accrue agent NAME[@VERSION] (--unlist | --list) (--key FILE | --signature 0xSIG) [--db PATH]\n"
    "\n"
    "One agent: its author, price, description, tags, limits, what it may call, its versions and its\n"
    "usage. NAME alone is its latest listed version. --unlist takes the agent (or, with @VERSION,\n"
    "that version) off the marketplace, --list puts it back; either is signed by the author's key:\n"
    "EIP-191 over keccak256(\"accrue listing\" 0x00 NAME 0x00 VERSION-or-empty 0x00 \"list\"|\"unlist\").\n"
    "--db names the registry's file (default ./accrue.db).\n"
    "Exit status: 0 ok; 1 no such agent or version, or a bad signature; 2 usage error.\n";

static int version_json(void *ud, const registry_agent_t *a) {
    json_array_append_new(ud, json_pack("{s:s, s:b, s:s}", "version", a->version, "listed", a->listed, "deployed",
                                        cli_time(a->created_ms)));
    return 0;
}

static void print_agent(const registry_agent_t *a, const registry_agent_usage_t *u, json_t *versions) {
    printf("%s@%s%s\n", a->name, a->version, a->listed ? "" : " (unlisted)");
    printf("  author       %s\n", cli_addr(a->author));
    printf("  deployed     %s\n", cli_time(a->created_ms));
    printf("  description  %s\n", a->description);
    printf("  tags        ");
    for (size_t i = 0; i < a->n_tags; i++) printf(" %s", a->tags[i]);
    printf("\n  price        %llu per message, %llu per session, markup %u bps\n",
           (unsigned long long)a->price_per_message, (unsigned long long)a->price_per_session, a->markup_bps);
    printf("  models      ");
    for (size_t i = 0; i < a->n_models; i++) printf(" %s", a->models[i]);
    printf("\n  datanets    ");
    for (size_t i = 0; i < a->n_datanets; i++) printf(" %s", a->datanets[i]);
    printf("\n  usage        %llu sessions, %llu messages, %llu revenue over 7 days; %llu, %llu, %llu over 30\n",
           (unsigned long long)u->sessions_7d, (unsigned long long)u->messages_7d, (unsigned long long)u->revenue_7d,
           (unsigned long long)u->sessions_30d, (unsigned long long)u->messages_30d,
           (unsigned long long)u->revenue_30d);
    printf("  versions    ");
    for (size_t i = 0; i < json_array_size(versions); i++) {
        json_t *v = json_array_get(versions, i);
        printf(" %s%s", json_string_value(json_object_get(v, "version")),
               json_is_true(json_object_get(v, "listed")) ? "" : " (unlisted)");
    }
    printf("\n");
}

int cli_agent(int argc, char **argv) {
    const char *db = NULL, *key = NULL, *sig_text = NULL, *pos[1];
    bool json = false, unlist = false, list = false;
    cli_flag_t flags[] = {CLI_FLAG("--db", CLI_STRING, &db),        CLI_FLAG("--json", CLI_BOOL, &json),
                          CLI_FLAG("--unlist", CLI_BOOL, &unlist),  CLI_FLAG("--list", CLI_BOOL, &list),
                          CLI_FLAG("--key", CLI_STRING, &key),      CLI_FLAG("--signature", CLI_STRING, &sig_text)};
    const char *cmd = "agent";
    int rc = cli_parse(cmd, argc, argv, flags, sizeof flags / sizeof *flags, pos, 1, 1, agent_usage);
    if (rc) return rc < 0 ? 0 : rc;
    char name[REGISTRY_NAME_MAX + 1], version[REGISTRY_VERSION_MAX + 1];
    acc_err err = {0};
    if ((rc = rt_agent_ref(pos[0], name, version, &err))) return cli_fail_status(cmd, rc, &err);
    if (unlist && list) return cli_fail(cmd, 2, "--list or --unlist, not both");
    if (!unlist && !list && (key || sig_text)) return cli_fail(cmd, 2, "--key and --signature go with --list or --unlist");
    uint8_t sig[65];
    if (unlist || list) {
        uint8_t digest[32];
        registry_listing_digest(name, version, list, digest);
        if ((rc = cli_sign_or_take(cmd, key, sig_text, digest, sig, NULL))) return rc;
    }
    registry_t *reg;
    if ((rc = cli_open(cmd, db, REGISTRY_OPEN_EXISTING, &reg))) return rc;
    if (unlist || list) {
        rc = registry_agent_set_listed(reg, name, version, list, sig, &err);
        registry_close(reg);
        if (rc) return cli_fail_status(cmd, rc, &err);
        printf("%s%s%s %s\n", name, version[0] ? "@" : "", version, list ? "listed" : "unlisted");
        return 0;
    }
    registry_agent_t *a = malloc(sizeof *a);
    registry_agent_usage_t u;
    json_t *versions = json_array();
    rc = a ? registry_agent_get(reg, name, version, a, &err) : acc_fail(&err, ACC_ENOMEM, "out of memory");
    if (rc == ACC_OK) rc = registry_agent_versions(reg, name, version_json, versions, &err);
    rt_usage_t *usage = NULL;
    if (rc == ACC_OK && rt_usage_load(db, &usage, NULL) != ACC_OK) usage = NULL; /* no ledger yet: no usage */
    if (rc == ACC_OK) rc = rt_agent_usage(usage, name, &u, &err);
    rt_usage_free(usage);
    registry_close(reg);
    if (rc) {
        rc = cli_fail_status(cmd, rc, &err);
    } else if (json) {
        json_t *o = cli_json_agent(a, &u);
        json_object_set_new(o, "versions", json_incref(versions));
        cli_print_json(o);
    } else {
        print_agent(a, &u, versions);
    }
    json_decref(versions);
    free(a);
    return rc;
}
