/*
 * manifest.c: an agent's manifest: what it may contain, and its canonical text (the bytes the
 * author signs). No SQL here.
 *
 * The canonical text is RFC 8785 (JSON Canonicalization Scheme) restricted to what a manifest may
 * hold (objects, arrays, strings, non-negative integers up to 2^53 - 1): keys sorted, no
 * whitespace, strings escaped only where JSON requires (", \, and control characters as \b \f \n
 * \r \t or \u00xx), everything else as UTF-8, integers in decimal. A browser reproduces it with
 * any JCS library, or with JSON.stringify over a key-sorted copy, so an author can sign a deploy
 * anywhere. Fields are kept exactly as given: a field left out is left out of the signed text.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "registry/manifest.h"
#include "runtime/base/buf.h"

#define SAFE_INTEGER_MAX ((json_int_t)9007199254740991) /* 2^53 - 1: exact in every JSON reader */
#define MARKUP_BPS_MAX 1000000                          /* 100x */

static int get_uint(json_t *v, const char *what, json_int_t max, uint64_t *out, acc_err *err) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return acc_fail(err, ACC_EINVAL, "manifest: %s: a whole number from 0 to %lld", what, (long long)max);
    *out = (uint64_t)json_integer_value(v);
    return ACC_OK;
}

static int get_names(json_t *v, const char *what, char (*out)[REGISTRY_NAME_MAX + 1], size_t *n, acc_err *err) {
    if (!json_is_array(v)) return acc_fail(err, ACC_EINVAL, "manifest: %s: an array of names", what);
    if (json_array_size(v) > REGISTRY_LIST_MAX)
        return acc_fail(err, ACC_EINVAL, "manifest: %s: at most %d", what, REGISTRY_LIST_MAX);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        const char *s = json_string_value(e);
        char label[64];
        snprintf(label, sizeof label, "manifest: %s", what);
        if (!s) return acc_fail(err, ACC_EINVAL, "%s: item %zu is not a string", label, i + 1);
        int rc = registry_name_check(s, label, err);
        if (rc) return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(out[j], s) == 0) return acc_fail(err, ACC_EINVAL, "%s: '%s' named twice", label, s);
        strcpy(out[i], s);
    }
    *n = json_array_size(v);
    return ACC_OK;
}

static int get_tags(json_t *v, registry_agent_t *a, acc_err *err) {
    if (!json_is_array(v)) return acc_fail(err, ACC_EINVAL, "manifest: tags: an array of strings");
    if (json_array_size(v) > REGISTRY_TAGS_MAX) return acc_fail(err, ACC_EINVAL, "manifest: tags: at most %d", REGISTRY_TAGS_MAX);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        const char *s = json_string_value(e);
        size_t n = s ? strlen(s) : 0;
        bool ok = n > 0 && n <= REGISTRY_TAG_MAX;
        for (size_t k = 0; ok && k < n; k++) ok = (s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9') || s[k] == '-';
        if (!ok)
            return acc_fail(err, ACC_EINVAL, "manifest: tags: item %zu: 1 to %d of a-z 0-9 -", i + 1, REGISTRY_TAG_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->tags[j], s) == 0) return acc_fail(err, ACC_EINVAL, "manifest: tags: '%s' twice", s);
        strcpy(a->tags[i], s);
    }
    a->n_tags = json_array_size(v);
    return ACC_OK;
}

static int get_limits(json_t *v, registry_agent_limits_t *l, acc_err *err) {
    if (!json_is_object(v)) return acc_fail(err, ACC_EINVAL, "manifest: limits: an object");
    const char *key;
    json_t *e;
    json_object_foreach(v, key, e) {
        uint64_t *slot = strcmp(key, "memory_bytes") == 0   ? &l->memory_bytes
                         : strcmp(key, "instructions") == 0 ? &l->instructions
                         : strcmp(key, "time_ms") == 0      ? &l->time_ms
                         : strcmp(key, "output_bytes") == 0 ? &l->output_bytes
                                                            : NULL;
        if (!slot)
            return acc_fail(err, ACC_EINVAL,
                            "manifest: limits: unknown key '%.40s' (memory_bytes, instructions, time_ms, output_bytes)", key);
        char what[64];
        snprintf(what, sizeof what, "limits.%s", key);
        int rc = get_uint(e, what, SAFE_INTEGER_MAX, slot, err);
        if (rc) return rc;
    }
    return ACC_OK;
}

static void put_string(acc_buf *b, const char *s, size_t n) {
    acc_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': acc_buf_puts(b, "\\\""); break;
        case '\\': acc_buf_puts(b, "\\\\"); break;
        case '\b': acc_buf_puts(b, "\\b"); break;
        case '\f': acc_buf_puts(b, "\\f"); break;
        case '\n': acc_buf_puts(b, "\\n"); break;
        case '\r': acc_buf_puts(b, "\\r"); break;
        case '\t': acc_buf_puts(b, "\\t"); break;
        default:
            if (c < 0x20) acc_buf_printf(b, "\\u%04x", c);
            else acc_buf_putc(b, (char)c);
        }
    }
    acc_buf_putc(b, '"');
}

static int by_key(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Appends v's canonical text; only the types a valid manifest holds occur. */
static void put_canonical(acc_buf *b, json_t *v) {
    if (json_is_object(v)) {
        size_t n = json_object_size(v), i = 0;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (!keys) {
            b->failed = true;
            return;
        }
        const char *key;
        json_t *e;
        json_object_foreach(v, key, e) keys[i++] = key;
        qsort(keys, n, sizeof *keys, by_key);
        acc_buf_putc(b, '{');
        for (i = 0; i < n; i++) {
            if (i) acc_buf_putc(b, ',');
            put_string(b, keys[i], strlen(keys[i]));
            acc_buf_putc(b, ':');
            put_canonical(b, json_object_get(v, keys[i]));
        }
        acc_buf_putc(b, '}');
        free(keys);
    } else if (json_is_array(v)) {
        acc_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) acc_buf_putc(b, ',');
            put_canonical(b, json_array_get(v, i));
        }
        acc_buf_putc(b, ']');
    } else if (json_is_string(v)) {
        put_string(b, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        acc_buf_printf(b, "%lld", (long long)json_integer_value(v));
    }
}

int registry_manifest_parse(const char *json, size_t len, registry_agent_t *a, char **canonical, acc_err *err) {
    if (canonical) *canonical = NULL;
    memset(a, 0, sizeof *a);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return acc_fail(err, ACC_EINVAL, "manifest: bad JSON at line %d: %s", jerr.line, jerr.text);
    int rc = ACC_OK;
    if (!json_is_object(root)) rc = acc_fail(err, ACC_EINVAL, "manifest: not a JSON object");
    bool have_name = false, have_version = false, have_author = false;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (rc) break;
        const char *s = json_string_value(v);
        if (strcmp(key, "name") == 0) {
            if (!s) rc = acc_fail(err, ACC_EINVAL, "manifest: name: a string");
            else if ((rc = registry_name_check_new(s, "manifest: name", err)) == ACC_OK) strcpy(a->name, s), have_name = true;
        } else if (strcmp(key, "version") == 0) {
            if (!s || (rc = registry_semver_check(s, err)) != ACC_OK)
                rc = acc_fail(err, ACC_EINVAL, "manifest: version: '%.64s' is not a semantic version (as 1.0.0)", s ? s : "");
            else strcpy(a->version, s), have_version = true;
        } else if (strcmp(key, "description") == 0) {
            if (!s) rc = acc_fail(err, ACC_EINVAL, "manifest: description: a string");
            else if ((rc = registry_description_check(s, "manifest: description", err)) == ACC_OK) strcpy(a->description, s);
        } else if (strcmp(key, "author") == 0) {
            acc_err why = {0};
            if (!s) rc = acc_fail(err, ACC_EINVAL, "manifest: author: an address string");
            else if (eth_address_parse(s, json_string_length(v), a->author, &why) != ACC_OK)
                rc = acc_fail(err, ACC_EINVAL, "manifest: author: %s", why.msg);
            else have_author = true;
        } else if (strcmp(key, "tags") == 0) {
            rc = get_tags(v, a, err);
        } else if (strcmp(key, "price_per_message") == 0) {
            rc = get_uint(v, key, SAFE_INTEGER_MAX, &a->price_per_message, err);
        } else if (strcmp(key, "price_per_session") == 0) {
            rc = get_uint(v, key, SAFE_INTEGER_MAX, &a->price_per_session, err);
        } else if (strcmp(key, "markup_bps") == 0) {
            uint64_t m;
            if ((rc = get_uint(v, key, MARKUP_BPS_MAX, &m, err)) == ACC_OK) a->markup_bps = (uint32_t)m;
        } else if (strcmp(key, "limits") == 0) {
            rc = get_limits(v, &a->limits, err);
        } else if (strcmp(key, "models") == 0) {
            rc = get_names(v, "models", a->models, &a->n_models, err);
        } else if (strcmp(key, "datanets") == 0) {
            rc = get_names(v, "datanets", a->datanets, &a->n_datanets, err);
        } else {
            rc = acc_fail(err, ACC_EINVAL,
                          "manifest: unknown key '%.40s' (name, version, description, tags, author, price_per_message, "
                          "price_per_session, markup_bps, limits, models, datanets)",
                          key);
        }
    }
    if (rc == ACC_OK && !have_name) rc = acc_fail(err, ACC_EINVAL, "manifest: name: missing");
    if (rc == ACC_OK && !have_version) rc = acc_fail(err, ACC_EINVAL, "manifest: version: missing");
    if (rc == ACC_OK && !have_author) rc = acc_fail(err, ACC_EINVAL, "manifest: author: missing");
    if (rc == ACC_OK && canonical) {
        acc_buf b = ACC_BUF_INIT;
        put_canonical(&b, root);
        *canonical = acc_buf_take(&b, NULL);
        if (!*canonical) rc = acc_fail(err, ACC_ENOMEM, "manifest: out of memory");
    }
    json_decref(root);
    return rc;
}

int registry_deploy_digest(const char *manifest_json, size_t manifest_len, const char *script, size_t script_len,
                           uint8_t digest[32], acc_err *err) {
    registry_agent_t *a = malloc(sizeof *a);
    if (!a) return acc_fail(err, ACC_ENOMEM, "manifest: out of memory");
    char *canonical;
    int rc = registry_manifest_parse(manifest_json, manifest_len, a, &canonical, err);
    free(a);
    if (rc) return rc;
    registry_deploy_digest_canonical(canonical, script, script_len, digest);
    free(canonical);
    return ACC_OK;
}

void registry_deploy_digest_canonical(const char *canonical, const char *script, size_t script_len, uint8_t digest[32]) {
    uint8_t script_hash[32];
    keccak256(script, script_len, script_hash);
    keccak256_ctx c;
    keccak256_init(&c);
    keccak256_update(&c, canonical, strlen(canonical));
    keccak256_update(&c, script_hash, 32);
    keccak256_final(&c, digest);
}
