/*
 * agents.c: agents and the marketplace: signed deploys of immutable versions, listing and
 * unlisting, lookup by name[@version], and the marketplace's search and sort (registry.h).
 *
 * An agent's name belongs to the author of its first version: every later version must recover to
 * the same address. A version's row holds the canonical manifest that was signed, the script, its
 * hash and the signature, so anyone can re-check a deploy from the store alone; the columns beside
 * them (description, prices) are copies for searching and sorting. Only the listed flag ever
 * changes, and only by the author's signature.
 *
 * The marketplace's filtering and sorting happen here in C over the listed agents: a registry has
 * agents by the hundreds or thousands, and the usage figures that sort them come from the ledger,
 * not from SQL.
 */
#include <stdlib.h>
#include <string.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "registry/manifest.h"

static const char sql_agent_by_name[] = "SELECT id, author FROM agents WHERE name = ?1";
static const char sql_agent_insert[] = "INSERT INTO agents (name, author, created_ms) VALUES (?1, ?2, ?3)";
static const char sql_version_insert[] =
    "INSERT INTO agent_versions (agent_id, version, description, price_per_message, price_per_session, markup_bps, "
    "manifest, script, script_hash, signature, listed, created_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1, ?11)";
static const char sql_tag_insert[] = "INSERT INTO agent_tags (version_id, tag) VALUES (?1, ?2)";
static const char sql_version_exists[] = "SELECT 1 FROM agent_versions WHERE agent_id = ?1 AND version = ?2";
static const char sql_versions[] =
    "SELECT v.version, v.listed FROM agent_versions v WHERE v.agent_id = ?1";
static const char sql_version_get[] =
    "SELECT v.id, v.manifest, v.script_hash, v.signature, v.listed, v.created_ms FROM agent_versions v "
    "WHERE v.agent_id = ?1 AND v.version = ?2";
static const char sql_version_script[] = "SELECT script FROM agent_versions WHERE agent_id = ?1 AND version = ?2";
static const char sql_set_listed_all[] = "UPDATE agent_versions SET listed = ?2 WHERE agent_id = ?1";
static const char sql_set_listed_one[] = "UPDATE agent_versions SET listed = ?2 WHERE agent_id = ?1 AND version = ?3";
static const char sql_listed_agents[] =
    "SELECT a.name FROM agents a WHERE EXISTS (SELECT 1 FROM agent_versions v WHERE v.agent_id = a.id AND v.listed = 1) "
    "ORDER BY a.name";

int registry_usage_none(void *ud, const char *agent, registry_agent_usage_t *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    return ACC_OK;
}

/* The agent's id and author; ACC_ENOTFOUND when there is none. */
static int agent_row(registry_t *reg, const char *name, int64_t *id, uint8_t author[20], acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_agent_by_name, &st, err);
    if (rc) return rc;
    store_bind_str(st, 1, name);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        if (author) store_column_blob(st, 1, author, 20);
    } else {
        rc = src == SQLITE_DONE ? acc_fail(err, ACC_ENOTFOUND, "agent '%s': no such agent", name)
                                : store_fail(reg, src, err, "agent");
    }
    sqlite3_reset(st);
    return rc;
}

/* Does a name an agent may call exist? The test provider's test/... names always do. */
static int check_callable(registry_t *reg, const registry_agent_t *a, acc_err *err) {
    for (size_t i = 0; i < a->n_models; i++) {
        if (strncmp(a->models[i], "test/", 5) == 0) continue;
        if (registry_model_get(reg, a->models[i], NULL, NULL) != ACC_OK)
            return acc_fail(err, ACC_ENOTFOUND, "manifest: models: no model named '%s'", a->models[i]);
    }
    for (size_t i = 0; i < a->n_datanets; i++) {
        if (strncmp(a->datanets[i], "test/", 5) == 0) continue;
        if (registry_datanet_get(reg, a->datanets[i], NULL, NULL) != ACC_OK)
            return acc_fail(err, ACC_ENOTFOUND, "manifest: datanets: no datanet named '%s'", a->datanets[i]);
    }
    return ACC_OK;
}

static int insert_version(registry_t *reg, int64_t agent_id, const registry_agent_t *a, const char *canonical,
                          const char *script, size_t script_len, const uint8_t script_hash[32],
                          const uint8_t signature[65], acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_version_insert, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, agent_id);
    store_bind_str(st, 2, a->version);
    store_bind_str(st, 3, a->description);
    sqlite3_bind_int64(st, 4, (int64_t)a->price_per_message);
    sqlite3_bind_int64(st, 5, (int64_t)a->price_per_session);
    sqlite3_bind_int64(st, 6, a->markup_bps);
    store_bind_str(st, 7, canonical);
    store_bind_text(st, 8, script, script_len);
    store_bind_blob(st, 9, script_hash, 32);
    store_bind_blob(st, 10, signature, 65);
    sqlite3_bind_int64(st, 11, store_now(reg));
    if ((rc = store_exec(reg, st, err, "agent version"))) return rc;
    int64_t version_id = sqlite3_last_insert_rowid(reg->db);
    for (size_t i = 0; rc == ACC_OK && i < a->n_tags; i++) {
        if ((rc = store_stmt(reg, sql_tag_insert, &st, err))) return rc;
        sqlite3_bind_int64(st, 1, version_id);
        store_bind_str(st, 2, a->tags[i]);
        rc = store_exec(reg, st, err, "tags");
    }
    return rc;
}

int registry_agent_deploy(registry_t *reg, const char *manifest_json, size_t manifest_len, const char *script,
                          size_t script_len, const uint8_t signature[65], registry_script_check_fn check,
                          void *check_ud, registry_agent_t *out, acc_err *err) {
    if (!check) return acc_fail(err, ACC_EMISUSE, "deploy: no script check given");
    if (!script || script_len == 0) return acc_fail(err, ACC_EINVAL, "script: empty");
    if (script_len > REGISTRY_SCRIPT_MAX)
        return acc_fail(err, ACC_EINVAL, "script: %zu bytes, over %u", script_len, REGISTRY_SCRIPT_MAX);
    if (memchr(script, 0, script_len) || !registry_utf8_valid(script, script_len))
        return acc_fail(err, ACC_EINVAL, "script: not UTF-8 text");
    registry_agent_t *a = malloc(sizeof *a);
    if (!a) return acc_fail(err, ACC_ENOMEM, "deploy: out of memory");
    char *canonical = NULL;
    int rc = registry_manifest_parse(manifest_json, manifest_len, a, &canonical, err);
    uint8_t digest[32], script_hash[32];
    if (rc == ACC_OK) {
        registry_deploy_digest_canonical(canonical, script, script_len, digest);
        rc = registry_verify_signer(digest, signature, a->author, "deploy", "manifest's author", err);
    }
    /* The signature holds before any of the author's code runs. */
    if (rc == ACC_OK && (rc = check(check_ud, a->name, script, script_len, err)) != ACC_OK) acc_err_prefix(err, "script");
    if (rc == ACC_OK) rc = store_tx_begin(reg, err);
    if (rc) goto out;

    int64_t agent_id = 0;
    uint8_t author[20];
    int found = agent_row(reg, a->name, &agent_id, author, NULL);
    if (found == ACC_OK && memcmp(author, a->author, 20) != 0) {
        char owner[ETH_ADDRESS_TEXT_SIZE];
        eth_address_to_text(author, owner);
        rc = acc_fail(err, ACC_EPERM, "agent '%s' belongs to %s: its versions come from that author only", a->name, owner);
    } else if (found == ACC_OK) {
        sqlite3_stmt *st;
        if ((rc = store_stmt(reg, sql_version_exists, &st, err)) == ACC_OK) {
            sqlite3_bind_int64(st, 1, agent_id);
            store_bind_str(st, 2, a->version);
            if (sqlite3_step(st) == SQLITE_ROW)
                rc = acc_fail(err, ACC_EEXIST, "agent %s@%s exists already: a version never changes (deploy a new version)",
                              a->name, a->version);
            sqlite3_reset(st);
        }
    } else if (found == ACC_ENOTFOUND) {
        sqlite3_stmt *st;
        if ((rc = store_stmt(reg, sql_agent_insert, &st, err)) == ACC_OK) {
            store_bind_str(st, 1, a->name);
            store_bind_blob(st, 2, a->author, 20);
            sqlite3_bind_int64(st, 3, store_now(reg));
            rc = store_exec(reg, st, err, "agent");
            agent_id = sqlite3_last_insert_rowid(reg->db);
        }
    } else {
        rc = agent_row(reg, a->name, &agent_id, author, err);
    }
    if (rc == ACC_OK) rc = check_callable(reg, a, err);
    if (rc == ACC_OK) {
        keccak256(script, script_len, script_hash);
        rc = insert_version(reg, agent_id, a, canonical, script, script_len, script_hash, signature, err);
    }
    if (rc == ACC_OK && out) rc = registry_agent_get(reg, a->name, a->version, out, err);
    rc = store_tx_end(reg, rc, err);
out:
    free(canonical);
    free(a);
    return rc;
}

/* Fills a from the version row st points at (columns of sql_version_get). */
static int read_version(registry_t *reg, sqlite3_stmt *st, registry_agent_t *a, acc_err *err) {
    const char *manifest = (const char *)sqlite3_column_text(st, 1);
    int rc = registry_manifest_parse(manifest ? manifest : "", manifest ? (size_t)sqlite3_column_bytes(st, 1) : 0, a,
                                     NULL, err);
    if (rc) return acc_fail(err, ACC_ECORRUPT, "stored manifest: %s", err ? err->msg : "unreadable");
    a->id = sqlite3_column_int64(st, 0);
    store_column_blob(st, 2, a->script_hash, 32);
    store_column_blob(st, 3, a->signature, 65);
    a->listed = sqlite3_column_int(st, 4) != 0;
    a->created_ms = sqlite3_column_int64(st, 5);
    (void)reg;
    return ACC_OK;
}

typedef struct version_list {
    size_t n, cap;
    char (*v)[REGISTRY_VERSION_MAX + 1];
    bool *listed;
} version_list_t;

static int by_precedence_desc(const void *a, const void *b) {
    return registry_semver_compare((const char *)b, (const char *)a);
}

/* Every version string of an agent, highest precedence first. */
static int list_versions(registry_t *reg, int64_t agent_id, version_list_t *out, acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_versions, &st, err), src;
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, agent_id);
    memset(out, 0, sizeof *out);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 8;
            void *v = realloc(out->v, cap * sizeof *out->v);
            if (v) out->v = v;
            void *l = realloc(out->listed, cap * sizeof *out->listed);
            if (l) out->listed = l;
            if (!v || !l) {
                rc = acc_fail(err, ACC_ENOMEM, "agent versions: out of memory");
                break;
            }
            out->cap = cap;
        }
        store_column_text(st, 0, out->v[out->n], sizeof out->v[0]);
        out->listed[out->n] = sqlite3_column_int(st, 1) != 0;
        out->n++;
    }
    sqlite3_reset(st);
    if (rc == ACC_OK && src != SQLITE_DONE) rc = store_fail(reg, src, err, "agent versions");
    /* Sort the strings and their flags together: sort an index. */
    if (rc == ACC_OK && out->n > 1) {
        for (size_t i = 1; i < out->n; i++) /* insertion sort: versions of one agent are few */
            for (size_t j = i; j > 0 && by_precedence_desc(out->v[j - 1], out->v[j]) > 0; j--) {
                char t[REGISTRY_VERSION_MAX + 1];
                memcpy(t, out->v[j], sizeof t);
                memcpy(out->v[j], out->v[j - 1], sizeof t);
                memcpy(out->v[j - 1], t, sizeof t);
                bool l = out->listed[j];
                out->listed[j] = out->listed[j - 1];
                out->listed[j - 1] = l;
            }
    }
    return rc;
}

static void free_versions(version_list_t *l) {
    free(l->v);
    free(l->listed);
}

/* The latest listed version: the highest release, else the highest pre-release; NULL when none. */
static const char *latest_listed(const version_list_t *l, size_t *listed_count) {
    const char *best = NULL, *best_pre = NULL;
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (!l->listed[i]) continue;
        n++;
        if (registry_semver_is_prerelease(l->v[i])) {
            if (!best_pre) best_pre = l->v[i];
        } else if (!best) {
            best = l->v[i];
        }
    }
    if (listed_count) *listed_count = n;
    return best ? best : best_pre;
}

static int get_version(registry_t *reg, int64_t agent_id, const char *name, const char *version, registry_agent_t *a,
                       acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_version_get, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, agent_id);
    store_bind_str(st, 2, version);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) rc = read_version(reg, st, a, err);
    else if (src == SQLITE_DONE) rc = acc_fail(err, ACC_ENOTFOUND, "agent %s@%s: no such version", name, version);
    else rc = store_fail(reg, src, err, "agent");
    sqlite3_reset(st);
    return rc;
}

int registry_agent_get(registry_t *reg, const char *name, const char *version, registry_agent_t *out, acc_err *err) {
    int rc = registry_name_check(name, "agent", err);
    if (rc) return rc;
    int64_t id;
    if ((rc = agent_row(reg, name, &id, NULL, err))) return rc;
    version_list_t l;
    if ((rc = list_versions(reg, id, &l, err))) return rc;
    size_t listed = 0;
    const char *latest = latest_listed(&l, &listed);
    if (version && *version) {
        rc = get_version(reg, id, name, version, out, err);
    } else if (!latest) {
        rc = acc_fail(err, ACC_ENOTFOUND, "agent '%s': unlisted by its author (name a version to see it)", name);
    } else {
        rc = get_version(reg, id, name, latest, out, err);
    }
    if (rc == ACC_OK) out->n_versions = listed;
    free_versions(&l);
    return rc;
}

int registry_agent_script(registry_t *reg, const char *name, const char *version, char **script, size_t *len,
                          acc_err *err) {
    *script = NULL;
    registry_agent_t *a = malloc(sizeof *a);
    if (!a) return acc_fail(err, ACC_ENOMEM, "agent: out of memory");
    int64_t id;
    int rc = registry_agent_get(reg, name, version, a, err);
    if (rc == ACC_OK) rc = agent_row(reg, name, &id, NULL, err);
    sqlite3_stmt *st;
    if (rc == ACC_OK && (rc = store_stmt(reg, sql_version_script, &st, err)) == ACC_OK) {
        sqlite3_bind_int64(st, 1, id);
        store_bind_str(st, 2, a->version);
        if (sqlite3_step(st) == SQLITE_ROW) {
            size_t n = (size_t)sqlite3_column_bytes(st, 0);
            *script = malloc(n + 1);
            if (!*script) {
                rc = acc_fail(err, ACC_ENOMEM, "agent: out of memory");
            } else {
                memcpy(*script, sqlite3_column_text(st, 0), n);
                (*script)[n] = '\0';
                if (len) *len = n;
            }
        } else {
            rc = store_fail(reg, sqlite3_errcode(reg->db), err, "agent script");
        }
        sqlite3_reset(st);
    }
    free(a);
    return rc;
}

int registry_agent_versions(registry_t *reg, const char *name, int (*fn)(void *ud, const registry_agent_t *a),
                            void *ud, acc_err *err) {
    int rc = registry_name_check(name, "agent", err);
    if (rc) return rc;
    int64_t id;
    if ((rc = agent_row(reg, name, &id, NULL, err))) return rc;
    version_list_t l;
    if ((rc = list_versions(reg, id, &l, err))) return rc;
    registry_agent_t *a = malloc(sizeof *a);
    if (!a) rc = acc_fail(err, ACC_ENOMEM, "agent: out of memory");
    for (size_t i = 0; rc == ACC_OK && i < l.n; i++)
        if ((rc = get_version(reg, id, name, l.v[i], a, err)) == ACC_OK) rc = fn(ud, a);
    free(a);
    free_versions(&l);
    return rc;
}

int registry_agent_set_listed(registry_t *reg, const char *name, const char *version, bool listed,
                              const uint8_t signature[65], acc_err *err) {
    int rc = registry_name_check(name, "agent", err);
    if (rc) return rc;
    bool one = version && *version;
    int64_t id;
    uint8_t author[20], digest[32];
    if ((rc = agent_row(reg, name, &id, author, err))) return rc;
    registry_listing_digest(name, one ? version : "", listed, digest);
    if ((rc = registry_verify_signer(digest, signature, author, listed ? "list" : "unlist", "agent's author", err))) return rc;
    if ((rc = store_tx_begin(reg, err))) return rc;
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, one ? sql_set_listed_one : sql_set_listed_all, &st, err)) == ACC_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, listed);
        if (one) store_bind_str(st, 3, version);
        rc = store_exec(reg, st, err, "listing");
        if (rc == ACC_OK && one && sqlite3_changes(reg->db) == 0)
            rc = acc_fail(err, ACC_ENOTFOUND, "agent %s@%s: no such version", name, version);
    }
    return store_tx_end(reg, rc, err);
}

/* ------------------------------------------------------------------------------ marketplace */

typedef struct market_entry {
    registry_agent_t agent;
    registry_agent_usage_t usage;
} market_entry_t;

static int cmp_u64_desc(uint64_t a, uint64_t b) { return a > b ? -1 : a < b; }

static int by_sort(const void *pa, const void *pb, void *mode) {
    const market_entry_t *a = pa, *b = pb;
    registry_agent_sort_t sort_mode = *(const registry_agent_sort_t *)mode;
    int c = 0;
    if (sort_mode == REGISTRY_SORT_USAGE) {
        c = cmp_u64_desc(a->usage.sessions_30d, b->usage.sessions_30d);
        if (!c) c = cmp_u64_desc(a->usage.messages_30d, b->usage.messages_30d);
    } else if (sort_mode == REGISTRY_SORT_REVENUE) {
        c = cmp_u64_desc(a->usage.revenue_30d, b->usage.revenue_30d);
    }
    if (!c) c = cmp_u64_desc((uint64_t)a->agent.created_ms, (uint64_t)b->agent.created_ms);
    if (!c) c = strcmp(a->agent.name, b->agent.name);
    return c;
}

static bool contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    if (n == 0) return true;
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return true;
    return false;
}

static bool matches(const registry_agent_t *a, const registry_agent_query_t *q) {
    if (q->tag && *q->tag) {
        bool has = false;
        for (size_t i = 0; i < a->n_tags && !has; i++) has = strcmp(a->tags[i], q->tag) == 0;
        if (!has) return false;
    }
    if (q->search && *q->search) {
        if (contains_ci(a->name, q->search) || contains_ci(a->description, q->search)) return true;
        for (size_t i = 0; i < a->n_tags; i++)
            if (contains_ci(a->tags[i], q->search)) return true;
        return false;
    }
    return true;
}

int registry_agents_list(registry_t *reg, const registry_agent_query_t *q,
                         int (*fn)(void *ud, const registry_agent_t *a, const registry_agent_usage_t *u), void *ud,
                         acc_err *err) {
    registry_usage_fn usage = q->usage ? q->usage : registry_usage_none;
    /* Names first: registry_agent_get uses statements of its own. */
    store_name_t *names;
    size_t n;
    int rc = store_names(reg, sql_listed_agents, &names, &n, err);
    if (rc) return rc;
    market_entry_t *entries = rc == ACC_OK ? calloc(n ? n : 1, sizeof *entries) : NULL;
    if (rc == ACC_OK && !entries) rc = acc_fail(err, ACC_ENOMEM, "agents: out of memory");
    size_t kept = 0;
    for (size_t i = 0; rc == ACC_OK && i < n; i++) {
        market_entry_t *e = &entries[kept];
        if ((rc = registry_agent_get(reg, names[i], NULL, &e->agent, err))) break;
        if (!matches(&e->agent, q)) continue;
        if ((rc = usage(q->usage_ud, e->agent.name, &e->usage, err))) break;
        kept++;
    }
    if (rc == ACC_OK) {
        registry_agent_sort_t mode = q->sort;
        qsort_r(entries, kept, sizeof *entries, by_sort, &mode);
        size_t limit = q->limit && q->limit < kept ? q->limit : kept;
        for (size_t i = 0; rc == ACC_OK && i < limit; i++) rc = fn(ud, &entries[i].agent, &entries[i].usage);
    }
    free(entries);
    free(names);
    return rc;
}
