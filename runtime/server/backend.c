/*
 * backend.c: API keys and agents as the server sees them.
 *
 * Interim, until the registry (issue 11) lands: the server accepts the one key it makes at start
 * (printed in its banner) and finds agent NAME in the folder given with --agent-dir as NAME.lua,
 * version "0.0.0", free. The registry replaces both behind these three functions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime/base/file.h"
#include "runtime/server/internal.h"

int rt_backend_auth(rt_server *srv, const char *key, size_t len, rt_principal *who, acc_err *err) {
    size_t dlen = strlen(srv->demo_key);
    if (len != dlen || memcmp(key, srv->demo_key, len) != 0) return acc_fail(err, ACC_EPERM, "unknown API key");
    memset(who, 0, sizeof *who);
    snprintf(who->account, sizeof who->account, "demo");
    snprintf(who->key_id, sizeof who->key_id, "demo-key");
    who->admin = true;
    return ACC_OK;
}

int rt_backend_agent(rt_server *srv, const char *ref, rt_agent *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    const char *at = strchr(ref, '@');
    size_t nlen = at ? (size_t)(at - ref) : strlen(ref);
    if (nlen == 0 || nlen >= sizeof out->name) return acc_fail(err, ACC_EINVAL, "bad agent name");
    for (size_t i = 0; i < nlen; i++) {
        char c = ref[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return acc_fail(err, ACC_ENOTFOUND, "no agent named '%.*s'", (int)(nlen > 100 ? 100 : nlen), ref);
    }
    if (at && strcmp(at + 1, "0.0.0") != 0)
        return acc_fail(err, ACC_ENOTFOUND, "no version %.30s of agent '%.*s'", at + 1, (int)nlen, ref);
    if (!srv->agent_dir) return acc_fail(err, ACC_ENOTFOUND, "no agent named '%.*s'", (int)nlen, ref);
    char path[4096];
    snprintf(path, sizeof path, "%s/%.*s.lua", srv->agent_dir, (int)nlen, ref);
    char *src;
    size_t len;
    if (acc_read_file(path, 1 << 20, &src, &len, NULL) != ACC_OK)
        return acc_fail(err, ACC_ENOTFOUND, "no agent named '%.*s'", (int)nlen, ref);
    memcpy(out->name, ref, nlen);
    snprintf(out->version, sizeof out->version, "0.0.0");
    out->script = src;
    out->script_len = len;
    return ACC_OK;
}

/* Interim: http models listed in $ACCRUE_AGENT_DIR/models.json as
 * {"NAME": {"url": "...", "upstream": "...", "api_key_env": "..."}}. */
int rt_backend_model(rt_server *srv, const char *name, size_t len, rt_model *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    if (len >= sizeof out->name || memchr(name, 0, len)) return acc_fail(err, ACC_ENOTFOUND, "no such model");
    memcpy(out->name, name, len);
    if (len > 5 && memcmp(name, "test/", 5) == 0) {
        out->kind = RT_MODEL_TEST;
        return ACC_OK;
    }
    int rc = acc_fail(err, ACC_ENOTFOUND, "no model named '%s'", out->name);
    if (!srv->agent_dir) return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/models.json", srv->agent_dir);
    json_t *all = json_load_file(path, 0, NULL);
    json_t *m = json_object_get(all, out->name);
    if (json_is_object(m) && json_is_string(json_object_get(m, "url"))) {
        out->kind = RT_MODEL_HTTP;
        snprintf(out->url, sizeof out->url, "%s", json_string_value(json_object_get(m, "url")));
        const char *up = json_string_value(json_object_get(m, "upstream"));
        snprintf(out->upstream, sizeof out->upstream, "%s", up ? up : out->name);
        const char *env = json_string_value(json_object_get(m, "api_key_env"));
        snprintf(out->api_key_env, sizeof out->api_key_env, "%s", env ? env : "");
        rc = ACC_OK;
    }
    json_decref(all);
    return rc;
}

void rt_agent_clear(rt_agent *a) {
    free(a->script);
    memset(a, 0, sizeof *a);
}
