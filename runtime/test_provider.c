/*
 * test_provider.c: the fixed "test/..." models and dataset described in test_provider.h.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime/test_provider.h"

static const char *const words[] = {
    "Apples grow on trees in temperate orchards.",
    "Bananas are berries, botanically speaking.",
    "Cherries ripen early in the summer.",
    "Dates grow on palm trees in hot climates.",
    "Elderberries must be cooked before eating.",
    "Figs are pollinated by tiny wasps.",
    "Grapes grow in clusters on vines.",
    "Honeydew melons grow on trailing vines.",
};

static void answer_error(sandbox_t *sb, uint64_t id, const char *msg) { sandbox_call_done(sb, id, 0, msg, strlen(msg)); }

static void answer_json(sandbox_t *sb, uint64_t id, json_t *v) {
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!text) {
        answer_error(sb, id, "test provider: out of memory");
        return;
    }
    sandbox_call_done(sb, id, 1, text, strlen(text));
    free(text);
}

/* The text a model request asks about: prompt, or the content of the last message. */
static const char *request_text(json_t *req) {
    const char *prompt = json_string_value(json_object_get(req, "prompt"));
    if (prompt) return prompt;
    json_t *messages = json_object_get(req, "messages");
    size_t n = json_array_size(messages);
    if (n) return json_string_value(json_object_get(json_array_get(messages, n - 1), "content"));
    return NULL;
}

static size_t count_words(const char *s) {
    size_t n = 0;
    for (int in = 0; *s; s++) {
        int w = !isspace((unsigned char)*s);
        n += w && !in;
        in = w;
    }
    return n;
}

static void model_call(sandbox_t *sb, uint64_t id, const char *name, json_t *req) {
    const char *text = request_text(req);
    if (!text) {
        answer_error(sb, id, "test provider: the request needs a prompt or messages");
        return;
    }
    char *out = strdup(text);
    if (!out) {
        answer_error(sb, id, "test provider: out of memory");
        return;
    }
    if (strcmp(name, "test/upper") == 0)
        for (char *p = out; *p; p++) *p = (char)toupper((unsigned char)*p);
    json_t *usage = json_pack("{s:I,s:I}", "input_tokens", (json_int_t)count_words(text), "output_tokens",
                              (json_int_t)count_words(out));
    json_t *answer = json_pack("{s:s,s:s,s:o}", "model", name, "text", out, "usage", usage);
    free(out);
    answer_json(sb, id, answer);
}

static int contains_ci(const char *hay, const char *needle, size_t n) {
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return 1;
    return 0;
}

/* Rows ranked by how many of the query's words (case-insensitive substrings) each record has. */
static void dataset_query(sandbox_t *sb, uint64_t id, json_t *req) {
    const char *text = json_string_value(json_object_get(req, "text"));
    json_int_t limit = 3;
    json_t *l = json_object_get(json_object_get(req, "opts"), "limit");
    if (json_is_integer(l)) limit = json_integer_value(l);
    if (!text) {
        answer_error(sb, id, "test provider: the query needs text");
        return;
    }
    enum { NRECORDS = sizeof words / sizeof words[0] };
    int hits[NRECORDS] = {0}, nwords = 0;
    for (const char *p = text; *p;) {
        while (*p && isspace((unsigned char)*p)) p++;
        size_t n = 0;
        while (p[n] && !isspace((unsigned char)p[n])) n++;
        if (n) {
            nwords++;
            for (int i = 0; i < NRECORDS; i++) hits[i] += contains_ci(words[i], p, n);
        }
        p += n;
    }
    json_t *rows = json_array();
    for (int best = nwords; best > 0; best--) /* most words first; ties in record order */
        for (int i = 0; i < NRECORDS && (json_int_t)json_array_size(rows) < limit; i++)
            if (hits[i] == best)
                json_array_append_new(rows, json_pack("{s:s,s:s,s:f}", "id", (char[]){(char)('a' + i), 0}, "text",
                                                      words[i], "score", (double)best / nwords));
    answer_json(sb, id, json_pack("{s:o}", "rows", rows));
}

static int start_call(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    (void)ud;
    uint64_t id = call->id;
    char name[128];
    if (call->name_len >= sizeof name || memchr(call->name, 0, call->name_len)) {
        answer_error(sb, id, "unknown name");
        return -1;
    }
    memcpy(name, call->name, call->name_len);
    name[call->name_len] = 0;
    json_error_t err;
    json_t *req = json_loadb(call->json, call->json_len, 0, &err);
    if (!req) {
        answer_error(sb, id, "test provider: bad request");
        return -1;
    }
    int rc = 0;
    if (call->kind == SANDBOX_CALL_MODEL && (strcmp(name, "test/echo") == 0 || strcmp(name, "test/upper") == 0)) {
        model_call(sb, id, name, req);
    } else if (call->kind == SANDBOX_CALL_DATASET && strcmp(name, "test/words") == 0) {
        dataset_query(sb, id, req);
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "no %s named '%s' (the test provider has test/echo, test/upper, test/words)",
                 call->kind == SANDBOX_CALL_MODEL ? "model" : "dataset", name);
        answer_error(sb, id, msg);
        rc = -1;
    }
    json_decref(req);
    return rc;
}

sandbox_provider_t test_provider(void) {
    sandbox_provider_t p = {.ud = NULL, .start_call = start_call, .output = NULL};
    return p;
}
