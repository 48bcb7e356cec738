/*
 * demo.c: seeding the demo registry (demo.h) from the files built into the binary.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "meters/eth/keccak.h"
#include "registry/factory/factory.h"
#include "runtime/agents.h"
#include "runtime/demo.h"
#include "runtime/embedded.h"
#include "runtime/luamodel.h"

#define N_CONTRIBUTORS 5

static const struct {
    const char *script, *manifest;
} demo_agents[] = {
    {"scripts/demo.lua", "scripts/demo/orchard-guide.json"},
    {"scripts/demo/orchard-sources.lua", "scripts/demo/orchard-sources.json"},
};

const rt_embedded_t *rt_embedded_find(const rt_embedded_t *files, const char *name) {
    for (; files->name; files++)
        if (strcmp(files->name, name) == 0) return files;
    return NULL;
}

eth_key *rt_demo_key(const char *who) {
    char text[64];
    uint8_t secret[32];
    snprintf(text, sizeof text, "accrue demo key: %s", who);
    keccak256(text, strlen(text), secret);
    eth_key *k = NULL;
    if (eth_key_from_secret(&k, secret, NULL) != 0) k = NULL;
    memset(secret, 0, sizeof secret);
    return k;
}

static const rt_embedded_t *demo_file(const char *name, acc_err *err) {
    const rt_embedded_t *f = rt_embedded_find(rt_demo_files, name);
    if (!f) acc_fail(err, ACC_ECORRUPT, "demo: %s is not built in", name);
    return f;
}

static void sign_with(const eth_key *k, const uint8_t digest[32], uint8_t sig[65]) {
    uint8_t to_sign[32];
    registry_signed_digest(digest, to_sign);
    eth_key_sign_digest(k, to_sign, sig, NULL);
}

/* Every line of orchard.jsonl, signed by its contributor's demo key. */
static int seed_records(registry_t *reg, eth_key *const contributors[N_CONTRIBUTORS], acc_err *err) {
    const rt_embedded_t *f = demo_file("scripts/demo/orchard.jsonl", err);
    if (!f) return ACC_ECORRUPT;
    uint8_t addrs[N_CONTRIBUTORS][20];
    for (int i = 0; i < N_CONTRIBUTORS; i++) eth_key_address(contributors[i], addrs[i]);
    int rc = ACC_OK;
    size_t line_no = 0;
    for (const char *p = f->data, *end = f->data + f->len; rc == ACC_OK && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line_no++;
        json_t *line = len ? json_loadb(p, len, 0, NULL) : NULL;
        p += len + 1;
        if (!len) continue;
        const char *text = json_string_value(json_object_get(line, "text"));
        const char *who = json_string_value(json_object_get(line, "contributor"));
        uint8_t addr[20], digest[32], sig[65];
        int k = -1;
        if (text && who && eth_address_parse(who, strlen(who), addr, NULL) == ACC_OK)
            for (int i = 0; i < N_CONTRIBUTORS && k < 0; i++)
                if (memcmp(addr, addrs[i], 20) == 0) k = i;
        if (k < 0) {
            rc = acc_fail(err, ACC_ECORRUPT, "demo: orchard.jsonl line %zu: no text or not a demo contributor", line_no);
        } else {
            registry_contribution_digest(RT_DEMO_DATANET, text, strlen(text), digest);
            sign_with(contributors[k], digest, sig);
            rc = registry_record_add(reg, RT_DEMO_DATANET, text, strlen(text), addr, sig, NULL, err);
        }
        json_decref(line);
    }
    return rc;
}

static int seed_agents(registry_t *reg, const eth_key *author, acc_err *err) {
    int rc = ACC_OK;
    for (size_t i = 0; rc == ACC_OK && i < sizeof demo_agents / sizeof *demo_agents; i++) {
        const rt_embedded_t *script = demo_file(demo_agents[i].script, err);
        const rt_embedded_t *manifest = demo_file(demo_agents[i].manifest, err);
        if (!script || !manifest) return ACC_ECORRUPT;
        uint8_t digest[32], sig[65];
        rc = registry_deploy_digest(manifest->data, manifest->len, script->data, script->len, digest, err);
        if (rc == ACC_OK) {
            sign_with(author, digest, sig);
            rc = registry_agent_deploy(reg, manifest->data, manifest->len, script->data, script->len, sig,
                                       rt_script_check, NULL, NULL, err);
        }
        if (rc) acc_err_prefix(err, "demo: %s", demo_agents[i].manifest);
    }
    return rc;
}

/* Registers m, owned by owner, with the demo datanet as its lineage. */
static int register_model(registry_t *reg, registry_model_t *m, const eth_key *owner, const rt_embedded_t *script,
                          acc_err *err) {
    m->n_lineage = 1;
    strcpy(m->lineage[0], RT_DEMO_DATANET);
    eth_key_address(owner, m->owner);
    return registry_model_register(reg, m, script ? script->data : NULL, script ? script->len : 0, NULL, err);
}

static int seed(registry_t *reg, eth_key *owner, eth_key *author, eth_key *const contributors[N_CONTRIBUTORS],
                char demo_key[REGISTRY_API_KEY_TEXT_SIZE], acc_err *err) {
    registry_datanet_spec_t d = {
        .name = RT_DEMO_DATANET,
        .description = "Notes on growing fruit at home: orchards, soft fruit, vines and citrus, storing and "
                       "preserving (the demo registry's datanet).",
        .price_per_query = 100,
        .price_per_record = 20,
        .curation = REGISTRY_CURATION_AUTO,
    };
    eth_key_address(owner, d.owner);
    int rc = registry_datanet_create(reg, &d, NULL, err);
    if (rc == ACC_OK) rc = seed_records(reg, contributors, err);
    if (rc) return rc;

    /* The model built from it: what the http entry's endpoint serves (another `accrue serve`). */
    registry_model_t built = {
        .name = "demo/orchard-ngram",
        .price_per_call = 20,
        .price_per_1k_in = 50,
        .price_per_1k_out = 200,
        .owner_share_bps = 2000,
    };
    eth_key_address(owner, built.owner);
    if ((rc = factory_build(reg, &built, RT_DEMO_DATANET, FACTORY_DEFAULT_ORDER, NULL, err))) return rc;

    registry_model_t m = {
        .name = "demo/orchard-chat",
        .kind = REGISTRY_MODEL_HTTP,
        .price_per_call = 50,
        .price_per_1k_in = 100,
        .price_per_1k_out = 400,
        .owner_share_bps = 3000,
        .url = "http://127.0.0.1:8081/v1",
        .upstream = "demo/orchard-ngram",
        .api_key_env = "ACCRUE_UPSTREAM_KEY",
    };
    if ((rc = register_model(reg, &m, owner, NULL, err))) return rc;

    /* A lua model: an extractive summary of the text it is given (scripts/models/extract.lua). Its
     * lineage is the datanet, so summarising retrieved records pays their contributors. */
    const rt_embedded_t *extract = demo_file("scripts/models/extract.lua", err);
    if (!extract) return ACC_ECORRUPT;
    if ((rc = rt_lua_model_check(NULL, "demo/orchard-extract", extract->data, extract->len, err))) return rc;
    registry_model_t x = {.name = "demo/orchard-extract", .kind = REGISTRY_MODEL_LUA, .price_per_call = 10,
                          .price_per_1k_in = 20, .price_per_1k_out = 200, .owner_share_bps = 2000};
    if ((rc = register_model(reg, &x, owner, extract, err))) return rc;
    if ((rc = seed_agents(reg, author, err))) return rc;

    char key[REGISTRY_API_KEY_TEXT_SIZE];
    if (registry_account_get(reg, RT_DEMO_ACCOUNT, NULL, NULL) == ACC_ENOTFOUND) {
        if ((rc = registry_account_create(reg, RT_DEMO_ACCOUNT, false, key, NULL, err))) return rc;
        if (demo_key) memcpy(demo_key, key, sizeof key);
        memset(key, 0, sizeof key);
    }
    return ACC_OK;
}

int rt_demo_seed(registry_t *reg, bool *seeded, char demo_key[REGISTRY_API_KEY_TEXT_SIZE], acc_err *err) {
    if (seeded) *seeded = false;
    if (demo_key) demo_key[0] = '\0';
    int rc = registry_begin(reg, err);
    if (rc) return rc;
    if (!registry_is_empty(reg)) return registry_commit(reg, err);
    eth_key *owner = rt_demo_key("owner"), *author = rt_demo_key("author"), *contributors[N_CONTRIBUTORS];
    bool keys_ok = owner && author;
    for (int i = 0; i < N_CONTRIBUTORS; i++) {
        char who[32];
        snprintf(who, sizeof who, "contributor %d", i + 1);
        contributors[i] = rt_demo_key(who);
        keys_ok = keys_ok && contributors[i];
    }
    rc = keys_ok ? seed(reg, owner, author, contributors, demo_key, err) : acc_fail(err, ACC_ENOMEM, "demo: keys");
    eth_key_free(owner);
    eth_key_free(author);
    for (int i = 0; i < N_CONTRIBUTORS; i++) eth_key_free(contributors[i]);
    if (rc) {
        registry_rollback(reg);
        if (demo_key) memset(demo_key, 0, REGISTRY_API_KEY_TEXT_SIZE);
        return rc;
    }
    rc = registry_commit(reg, err);
    if (rc == ACC_OK && seeded) *seeded = true;
    return rc;
}
