/*
 * models.c: registered models: kinds, prices, the owner's share, lineage, fixed shares, and the
 * model factory's artifacts (registry.h).
 *
 * A model's lineage names the datanets its outputs are attributed against (the meters match its
 * outputs against their span indexes); fixed shares pay addresses for data it learned elsewhere.
 * The owner's share and the fixed shares together never exceed the whole (10000 bps). A model,
 * once registered, does not change; a builtin model's artifact is replaced whole when the factory
 * builds it again.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meters/eth/keccak.h"
#include "registry/store.h"

#define INT64_MAX_U ((uint64_t)INT64_MAX)

const char *registry_model_kind_name(registry_model_kind_t k) {
    switch (k) {
    case REGISTRY_MODEL_BUILTIN: return "builtin";
    case REGISTRY_MODEL_HTTP: return "http";
    case REGISTRY_MODEL_LUA: return "lua";
    }
    return "?";
}

int registry_model_kind_parse(const char *s, registry_model_kind_t *out) {
    for (int k = REGISTRY_MODEL_BUILTIN; k <= REGISTRY_MODEL_LUA; k++)
        if (s && strcmp(s, registry_model_kind_name((registry_model_kind_t)k)) == 0) {
            *out = (registry_model_kind_t)k;
            return ACC_OK;
        }
    return ACC_EINVAL;
}

#define MODEL_COLUMNS                                                                                          \
    "id, name, kind, owner, price_per_call, price_per_1k_in, price_per_1k_out, owner_share_bps, span_k, url, " \
    "upstream, api_key_env, script_hash, params, created_ms"

static const char sql_model_get[] = "SELECT " MODEL_COLUMNS " FROM models WHERE name = ?1";
static const char sql_model_list[] = "SELECT name FROM models ORDER BY name";
static const char sql_model_lineage[] =
    "SELECT d.id, d.name FROM model_lineage l JOIN datanets d ON d.id = l.datanet_id WHERE l.model_id = ?1 "
    "ORDER BY l.position";
static const char sql_model_shares[] = "SELECT address, bps FROM model_shares WHERE model_id = ?1 ORDER BY position";
static const char sql_model_insert[] =
    "INSERT INTO models (name, kind, owner, price_per_call, price_per_1k_in, price_per_1k_out, owner_share_bps, "
    "span_k, url, upstream, api_key_env, script, script_hash, params, created_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
static const char sql_lineage_insert[] = "INSERT INTO model_lineage (model_id, position, datanet_id) VALUES (?1, ?2, ?3)";
static const char sql_share_insert[] = "INSERT INTO model_shares (model_id, position, address, bps) VALUES (?1, ?2, ?3, ?4)";
static const char sql_model_script[] = "SELECT script FROM models WHERE name = ?1";
static const char sql_artifact_put[] =
    "INSERT INTO model_artifacts (model_id, data, updated_ms) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (model_id) DO UPDATE SET data = excluded.data, updated_ms = excluded.updated_ms";
static const char sql_artifact_get[] =
    "SELECT a.data FROM model_artifacts a JOIN models m ON m.id = a.model_id WHERE m.name = ?1";

static bool printable_ascii(const char *s, bool allow_space) {
    for (; *s; s++)
        if (*s < (allow_space ? 0x20 : 0x21) || *s > 0x7e) return false;
    return true;
}

static bool env_name(const char *s) {
    if (!((*s >= 'A' && *s <= 'Z') || *s == '_')) return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

int registry_model_check(const registry_model_t *m, const char *script, size_t script_len, acc_err *err) {
    int rc = registry_name_check_new(m->name, "model", err);
    if (rc) return rc;
    if (m->kind < REGISTRY_MODEL_BUILTIN || m->kind > REGISTRY_MODEL_LUA)
        return acc_fail(err, ACC_EINVAL, "kind: builtin, http or lua");
    if (m->price_per_call > INT64_MAX_U || m->price_per_1k_in > INT64_MAX_U || m->price_per_1k_out > INT64_MAX_U)
        return acc_fail(err, ACC_EINVAL, "price: at most %lld", (long long)INT64_MAX);
    if (m->owner_share_bps > REGISTRY_BPS_MAX)
        return acc_fail(err, ACC_EINVAL, "owner share: %u bps is over %u", m->owner_share_bps, REGISTRY_BPS_MAX);
    if (m->span_k > 1024) return acc_fail(err, ACC_EINVAL, "span k: %u is over 1024", m->span_k);
    if (m->n_lineage > REGISTRY_LIST_MAX) return acc_fail(err, ACC_EINVAL, "lineage: at most %d datanets", REGISTRY_LIST_MAX);
    if (m->n_shares > REGISTRY_LIST_MAX) return acc_fail(err, ACC_EINVAL, "shares: at most %d", REGISTRY_LIST_MAX);
    uint32_t total = m->owner_share_bps;
    for (size_t i = 0; i < m->n_shares; i++) {
        if (m->shares[i].bps == 0 || m->shares[i].bps > REGISTRY_BPS_MAX)
            return acc_fail(err, ACC_EINVAL, "share %zu: bps from 1 to %u", i + 1, REGISTRY_BPS_MAX);
        total += m->shares[i].bps;
    }
    if (total > REGISTRY_BPS_MAX)
        return acc_fail(err, ACC_EINVAL, "shares: the owner's share and the fixed shares add up to %u bps, over %u",
                        total, REGISTRY_BPS_MAX);
    for (size_t i = 0; i < m->n_lineage; i++) {
        if ((rc = registry_name_check(m->lineage[i], "lineage", err))) return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->lineage[i], m->lineage[j]) == 0)
                return acc_fail(err, ACC_EINVAL, "lineage: '%s' named twice", m->lineage[i]);
    }
    bool http = m->kind == REGISTRY_MODEL_HTTP, lua = m->kind == REGISTRY_MODEL_LUA;
    if (http) {
        if (strncmp(m->url, "http://", 7) != 0 && strncmp(m->url, "https://", 8) != 0)
            return acc_fail(err, ACC_EINVAL, "url: an http:// or https:// URL is needed");
        if (!printable_ascii(m->url, false) || strlen(m->url) <= 8)
            return acc_fail(err, ACC_EINVAL, "url: printable ASCII without spaces, a host after the scheme");
        if (!m->upstream[0] || !printable_ascii(m->upstream, false))
            return acc_fail(err, ACC_EINVAL, "upstream: the endpoint's model name is needed (printable, no spaces)");
        if (m->api_key_env[0] && !env_name(m->api_key_env))
            return acc_fail(err, ACC_EINVAL, "api key env: '%s' is not an environment variable name ([A-Z_][A-Z0-9_]*)",
                            m->api_key_env);
    } else if (m->url[0] || m->upstream[0] || m->api_key_env[0]) {
        return acc_fail(err, ACC_EINVAL, "url, upstream and api key env are for http models only");
    }
    if (lua) {
        if (!script || script_len == 0) return acc_fail(err, ACC_EINVAL, "script: a lua model needs its script");
        if (script_len > REGISTRY_SCRIPT_MAX)
            return acc_fail(err, ACC_EINVAL, "script: %zu bytes, over %u", script_len, REGISTRY_SCRIPT_MAX);
        if (memchr(script, 0, script_len) || !registry_utf8_valid(script, script_len))
            return acc_fail(err, ACC_EINVAL, "script: not UTF-8 text");
    } else if (script) {
        return acc_fail(err, ACC_EINVAL, "script: for lua models only");
    }
    if (m->kind == REGISTRY_MODEL_BUILTIN && m->n_lineage == 0)
        return acc_fail(err, ACC_EINVAL, "lineage: a builtin model names the datanet it is built from");
    if (m->params[0]) {
        json_error_t jerr;
        json_t *p = json_loads(m->params, JSON_REJECT_DUPLICATES, &jerr);
        bool object = json_is_object(p);
        json_decref(p);
        if (!object) return acc_fail(err, ACC_EINVAL, "params: not a JSON object");
    }
    return ACC_OK;
}

static int insert_lists(registry_t *reg, int64_t id, const registry_model_t *m, acc_err *err) {
    int rc = ACC_OK;
    for (size_t i = 0; rc == ACC_OK && i < m->n_lineage; i++) {
        registry_datanet_t d;
        sqlite3_stmt *st;
        if ((rc = registry_datanet_get(reg, m->lineage[i], &d, err))) return acc_err_prefix(err, "lineage");
        if ((rc = store_stmt(reg, sql_lineage_insert, &st, err))) return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, (int64_t)i);
        sqlite3_bind_int64(st, 3, d.id);
        rc = store_exec(reg, st, err, "lineage");
    }
    for (size_t i = 0; rc == ACC_OK && i < m->n_shares; i++) {
        sqlite3_stmt *st;
        if ((rc = store_stmt(reg, sql_share_insert, &st, err))) return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, (int64_t)i);
        store_bind_blob(st, 3, m->shares[i].address, 20);
        sqlite3_bind_int64(st, 4, m->shares[i].bps);
        rc = store_exec(reg, st, err, "shares");
    }
    return rc;
}

int registry_model_register(registry_t *reg, const registry_model_t *spec, const char *script, size_t script_len,
                            registry_model_t *out, acc_err *err) {
    int rc = registry_model_check(spec, script, script_len, err);
    if (rc) return rc;
    if ((rc = store_tx_begin(reg, err))) return rc;
    if (registry_model_get(reg, spec->name, NULL, NULL) == ACC_OK) {
        rc = acc_fail(err, ACC_EEXIST, "model '%s' exists already", spec->name);
        return store_tx_end(reg, rc, err);
    }
    sqlite3_stmt *st;
    uint8_t hash[32];
    if ((rc = store_stmt(reg, sql_model_insert, &st, err)) == ACC_OK) {
        store_bind_str(st, 1, spec->name);
        store_bind_str(st, 2, registry_model_kind_name(spec->kind));
        store_bind_blob(st, 3, spec->owner, 20);
        sqlite3_bind_int64(st, 4, (int64_t)spec->price_per_call);
        sqlite3_bind_int64(st, 5, (int64_t)spec->price_per_1k_in);
        sqlite3_bind_int64(st, 6, (int64_t)spec->price_per_1k_out);
        sqlite3_bind_int64(st, 7, spec->owner_share_bps);
        sqlite3_bind_int64(st, 8, spec->span_k ? spec->span_k : REGISTRY_SPAN_K_DEFAULT);
        store_bind_str(st, 9, spec->url);
        store_bind_str(st, 10, spec->upstream);
        store_bind_str(st, 11, spec->api_key_env);
        if (script) {
            keccak256(script, script_len, hash);
            store_bind_text(st, 12, script, script_len);
            store_bind_blob(st, 13, hash, 32);
        }
        store_bind_str(st, 14, spec->params[0] ? spec->params : "{}");
        sqlite3_bind_int64(st, 15, store_now(reg));
        rc = store_exec(reg, st, err, "model");
    }
    if (rc == ACC_OK) rc = insert_lists(reg, sqlite3_last_insert_rowid(reg->db), spec, err);
    if (rc == ACC_OK && out) rc = registry_model_get(reg, spec->name, out, err);
    if (rc) acc_err_prefix(err, "model '%s'", spec->name);
    return store_tx_end(reg, rc, err);
}

static int read_lists(registry_t *reg, registry_model_t *m, acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_model_lineage, &st, err), src;
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, m->id);
    m->n_lineage = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && m->n_lineage < REGISTRY_LIST_MAX) {
        m->lineage_id[m->n_lineage] = sqlite3_column_int64(st, 0);
        store_column_text(st, 1, m->lineage[m->n_lineage], sizeof m->lineage[0]);
        m->n_lineage++;
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE && src != SQLITE_ROW) return store_fail(reg, src, err, "lineage");
    if ((rc = store_stmt(reg, sql_model_shares, &st, err))) return rc;
    sqlite3_bind_int64(st, 1, m->id);
    m->n_shares = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && m->n_shares < REGISTRY_LIST_MAX) {
        store_column_blob(st, 0, m->shares[m->n_shares].address, 20);
        m->shares[m->n_shares].bps = (uint32_t)sqlite3_column_int64(st, 1);
        m->n_shares++;
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE && src != SQLITE_ROW) return store_fail(reg, src, err, "shares");
    return ACC_OK;
}

int registry_model_get(registry_t *reg, const char *name, registry_model_t *out, acc_err *err) {
    int rc = registry_name_check(name, "model", err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, sql_model_get, &st, err))) return rc;
    store_bind_str(st, 1, name);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        sqlite3_reset(st);
        return acc_fail(err, ACC_ENOTFOUND, "model '%s': no such model", name);
    }
    if (src != SQLITE_ROW) {
        sqlite3_reset(st);
        return store_fail(reg, src, err, "model");
    }
    if (!out) {
        sqlite3_reset(st);
        return ACC_OK;
    }
    registry_model_t *m = out;
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(st, 0);
    store_column_text(st, 1, m->name, sizeof m->name);
    char kind[16];
    store_column_text(st, 2, kind, sizeof kind);
    registry_model_kind_parse(kind, &m->kind);
    store_column_blob(st, 3, m->owner, 20);
    m->price_per_call = (uint64_t)sqlite3_column_int64(st, 4);
    m->price_per_1k_in = (uint64_t)sqlite3_column_int64(st, 5);
    m->price_per_1k_out = (uint64_t)sqlite3_column_int64(st, 6);
    m->owner_share_bps = (uint32_t)sqlite3_column_int64(st, 7);
    m->span_k = (uint32_t)sqlite3_column_int64(st, 8);
    store_column_text(st, 9, m->url, sizeof m->url);
    store_column_text(st, 10, m->upstream, sizeof m->upstream);
    store_column_text(st, 11, m->api_key_env, sizeof m->api_key_env);
    store_column_blob(st, 12, m->script_hash, 32);
    store_column_text(st, 13, m->params, sizeof m->params);
    m->created_ms = sqlite3_column_int64(st, 14);
    sqlite3_reset(st);
    return read_lists(reg, m, err);
}

int registry_models_list(registry_t *reg, int (*fn)(void *ud, const registry_model_t *m), void *ud, acc_err *err) {
    /* Names first, then each model: read_lists reuses statements a nested loop would clash with. */
    store_name_t *names;
    size_t n;
    int rc = store_names(reg, sql_model_list, &names, &n, err);
    if (rc) return rc;
    registry_model_t *m = rc == ACC_OK ? malloc(sizeof *m) : NULL;
    if (rc == ACC_OK && !m) rc = acc_fail(err, ACC_ENOMEM, "models: out of memory");
    for (size_t i = 0; rc == ACC_OK && i < n; i++)
        if ((rc = registry_model_get(reg, names[i], m, err)) == ACC_OK) rc = fn(ud, m);
    free(m);
    free(names);
    return rc;
}

/* Copies the first column of st's row into a malloc'd, NUL-terminated buffer. */
static int take_column(registry_t *reg, sqlite3_stmt *st, const char *what, const char *name, void **data,
                       size_t *len, acc_err *err) {
    int src = sqlite3_step(st), rc = ACC_OK;
    if (src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        char *p = malloc(n + 1);
        if (!p) {
            rc = acc_fail(err, ACC_ENOMEM, "%s: out of memory", what);
        } else {
            if (n) memcpy(p, sqlite3_column_blob(st, 0), n);
            p[n] = '\0';
            *data = p;
            if (len) *len = n;
        }
    } else if (src == SQLITE_ROW || src == SQLITE_DONE) {
        rc = acc_fail(err, ACC_ENOTFOUND, "model '%s': no %s", name, what);
    } else {
        rc = store_fail(reg, src, err, what);
    }
    sqlite3_reset(st);
    return rc;
}

int registry_model_script(registry_t *reg, const char *name, char **script, size_t *len, acc_err *err) {
    *script = NULL;
    int rc = registry_model_get(reg, name, NULL, err);
    sqlite3_stmt *st;
    if (rc || (rc = store_stmt(reg, sql_model_script, &st, err))) return rc;
    store_bind_str(st, 1, name);
    return take_column(reg, st, "script", name, (void **)script, len, err);
}

int registry_model_set_artifact(registry_t *reg, const char *name, const void *data, size_t len, acc_err *err) {
    registry_model_t *m = malloc(sizeof *m);
    if (!m) return acc_fail(err, ACC_ENOMEM, "artifact: out of memory");
    int rc = store_tx_begin(reg, err);
    if (rc == ACC_OK) {
        if ((rc = registry_model_get(reg, name, m, err)) == ACC_OK && m->kind != REGISTRY_MODEL_BUILTIN)
            rc = acc_fail(err, ACC_EINVAL, "model '%s' is %s: only builtin models have artifacts", name,
                          registry_model_kind_name(m->kind));
        sqlite3_stmt *st;
        if (rc == ACC_OK && (rc = store_stmt(reg, sql_artifact_put, &st, err)) == ACC_OK) {
            sqlite3_bind_int64(st, 1, m->id);
            sqlite3_bind_blob64(st, 2, data ? data : "", len, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, store_now(reg));
            rc = store_exec(reg, st, err, "artifact");
        }
        rc = store_tx_end(reg, rc, err);
    }
    free(m);
    return rc;
}

int registry_model_artifact(registry_t *reg, const char *name, void **data, size_t *len, acc_err *err) {
    *data = NULL;
    int rc = registry_model_get(reg, name, NULL, err);
    sqlite3_stmt *st;
    if (rc || (rc = store_stmt(reg, sql_artifact_get, &st, err))) return rc;
    store_bind_str(st, 1, name);
    return take_column(reg, st, "artifact", name, data, len, err);
}
