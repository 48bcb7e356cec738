/*
 * build.c: the factory with the registry: training a model on a datanet and answering for it.
 *
 * Building reads the datanet's accepted records, makes the artifact, loads it once (so a model that
 * cannot load is never stored), and registers the model with the artifact in one transaction: the
 * records it read are exactly the datanet's at the version it records, and a failure leaves the
 * registry as it was. Calling keeps each loaded model in a process-wide cache keyed by its
 * artifact's keccak-256 (which the model's params carry): the key names the content, so a model
 * is loaded once per process however many registries or handles ask for it, and a changed
 * artifact can never be served from a stale entry. The hash is checked against the stored bytes
 * when they are loaded.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "registry/factory/factory_internal.h"

typedef struct collected {
    acc_buf texts;
    factory_record *recs;
    size_t n, cap;
} collected;

static int collect(void *ud, const registry_record_t *r) {
    collected *c = ud;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        factory_record *q = realloc(c->recs, cap * sizeof *q);
        if (!q) return ACC_ENOMEM;
        c->recs = q;
        c->cap = cap;
    }
    /* Texts live in one buffer that may move: keep offsets now, pointers at the end. */
    c->recs[c->n++] = (factory_record){.id = r->id, .text = (const char *)(uintptr_t)c->texts.len, .len = r->text_len};
    acc_buf_append(&c->texts, r->text, r->text_len);
    return acc_buf_failed(&c->texts) ? ACC_ENOMEM : 0;
}

int factory_build(registry_t *reg, const registry_model_t *spec, const char *datanet, uint32_t order,
                  registry_model_t *out, acc_err *err) {
    if (order < 1 || order > FACTORY_MAX_ORDER) return acc_fail(err, ACC_EINVAL, "--order: %u is not 1..%d", order, FACTORY_MAX_ORDER);
    collected c = {.texts = ACC_BUF_INIT};
    acc_buf art = ACC_BUF_INIT;
    factory_model *m = NULL;
    registry_datanet_t d;
    int rc = registry_begin(reg, err);
    if (rc) return rc;
    if ((rc = registry_datanet_get(reg, datanet, &d, err))) goto out;
    if (d.version == 0) {
        rc = acc_fail(err, ACC_EMISUSE, "--from: datanet %s has no accepted record to train on", datanet);
        goto out;
    }
    rc = registry_records_accepted(reg, d.id, 0, 0, collect, &c, err);
    if (rc == ACC_ENOMEM) acc_fail(err, rc, "model build: out of memory reading %s", datanet);
    if (rc) goto out;
    for (size_t i = 0; i < c.n; i++) c.recs[i].text = c.texts.data + (uintptr_t)c.recs[i].text;
    if ((rc = factory_artifact_encode(c.recs, c.n, order, d.id, d.version, &art, err))) goto out;
    if ((rc = factory_model_load(art.data, art.len, &m, err))) goto out;

    registry_model_t s = *spec;
    s.kind = REGISTRY_MODEL_BUILTIN;
    s.n_lineage = 1;
    snprintf(s.lineage[0], sizeof s.lineage[0], "%s", d.name);
    char hash[67];
    factory_artifact_hash(art.data, art.len, hash);
    json_t *params = json_pack("{s:I,s:s,s:I,s:I,s:I,s:I,s:s}", "order", (json_int_t)order, "datanet", d.name, "seq",
                               (json_int_t)d.version, "records", (json_int_t)c.n, "tokens",
                               (json_int_t)factory_model_tokens(m), "sentences", (json_int_t)factory_model_sentences(m),
                               "artifact", hash);
    char *p = params ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(params);
    if (!p || strlen(p) > REGISTRY_PARAMS_MAX) {
        free(p);
        rc = acc_fail(err, ACC_ENOMEM, "model build: out of memory");
        goto out;
    }
    snprintf(s.params, sizeof s.params, "%s", p);
    free(p);
    if ((rc = registry_model_register(reg, &s, NULL, 0, out, err))) goto out;
    rc = registry_model_set_artifact(reg, s.name, art.data, art.len, err);
out:
    if (rc) registry_rollback(reg);
    else rc = registry_commit(reg, err);
    factory_model_free(m);
    acc_buf_free(&art);
    acc_buf_free(&c.texts);
    free(c.recs);
    return rc;
}

/* ---- the process-wide cache of loaded models ---- */

typedef struct cached {
    char hash[67];
    factory_model *m;
    struct cached *next;
} cached;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cached *cache;

static factory_model *cache_find(const char *hash) {
    for (cached *e = cache; e; e = e->next)
        if (strcmp(e->hash, hash) == 0) return e->m;
    return NULL;
}

void factory_cache_clear(void) {
    pthread_mutex_lock(&cache_lock);
    while (cache) {
        cached *e = cache;
        cache = e->next;
        factory_model_free(e->m);
        free(e);
    }
    pthread_mutex_unlock(&cache_lock);
}

/* The loaded model for a builtin model of the registry (cached; owned by the cache). */
static int model_for(registry_t *reg, const registry_model_t *model, factory_model **out, acc_err *err) {
    json_t *params = json_loads(model->params, 0, NULL);
    const char *want = json_string_value(json_object_get(params, "artifact"));
    char hash[67] = {0};
    if (want) snprintf(hash, sizeof hash, "%s", want);
    json_decref(params);
    if (strlen(hash) != 66) return acc_fail(err, ACC_ECORRUPT, "model %s: params name no artifact", model->name);
    pthread_mutex_lock(&cache_lock);
    *out = cache_find(hash);
    pthread_mutex_unlock(&cache_lock);
    if (*out) return ACC_OK;

    void *data;
    size_t len;
    int rc = registry_model_artifact(reg, model->name, &data, &len, err);
    if (rc) return rc;
    char got[67];
    factory_artifact_hash(data, len, got);
    factory_model *m = NULL;
    if (strcmp(got, hash) != 0) rc = acc_fail(err, ACC_ECORRUPT, "model %s: artifact hash %s, params say %s", model->name, got, hash);
    else rc = factory_model_load(data, len, &m, err);
    free(data);
    if (rc) return acc_err_prefix(err, "model %s", model->name);

    cached *e = calloc(1, sizeof *e);
    if (!e) {
        factory_model_free(m);
        return acc_fail(err, ACC_ENOMEM, "model %s: out of memory", model->name);
    }
    memcpy(e->hash, hash, sizeof e->hash);
    pthread_mutex_lock(&cache_lock);
    *out = cache_find(hash); /* another thread may have loaded it meanwhile */
    if (!*out) {
        e->m = m;
        e->next = cache;
        cache = e;
        *out = m;
        m = NULL;
        e = NULL;
    }
    pthread_mutex_unlock(&cache_lock);
    factory_model_free(m);
    free(e);
    return ACC_OK;
}

int factory_call(registry_t *reg, const registry_model_t *model, const char *request, size_t len, acc_buf *out,
                 acc_err *err) {
    if (model->kind != REGISTRY_MODEL_BUILTIN)
        return acc_fail(err, ACC_EINVAL, "model %s: a %s model, not builtin", model->name, registry_model_kind_name(model->kind));
    factory_model *m;
    int rc = model_for(reg, model, &m, err);
    if (rc) return rc;
    return factory_respond(m, request, len, out, err);
}

int factory_model_of(registry_t *reg, const registry_model_t *model, factory_model **out, acc_err *err) {
    if (model->kind != REGISTRY_MODEL_BUILTIN)
        return acc_fail(err, ACC_EINVAL, "model %s: a %s model, not builtin", model->name, registry_model_kind_name(model->kind));
    return model_for(reg, model, out, err);
}
