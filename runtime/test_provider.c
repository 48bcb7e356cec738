/*
 * test_provider.c: the fixed "test/..." models and dataset described in test_provider.h.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime/test_provider.h"
#include <stdio.h>

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

/* Where an answer goes: the text and whether it is a success. */
typedef struct answer {
    acc_buf *out;
    int ok;
} answer_t;

enum { MAX_WORD = 64 }; /* longer than any record */

static void answer_error(answer_t *a, const char *msg) {
    acc_buf_reset(a->out);
    acc_buf_puts(a->out, msg);
    a->ok = 0;
}

static void answer_json(answer_t *a, json_t *v) {
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!text) {
        answer_error(a, "test provider: out of memory");
        return;
    }
    acc_buf_reset(a->out);
    acc_buf_puts(a->out, text);
    a->ok = 1;
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

static void model_call(answer_t *a, const char *name, json_t *req) {
    const char *text = request_text(req);
    if (!text) {
        answer_error(a, "test provider: the request needs a prompt or messages");
        return;
    }
    char *out = strdup(text);
    if (!out) {
        answer_error(a, "test provider: out of memory");
        return;
    }
    if (strcmp(name, "test/upper") == 0)
        for (char *p = out; *p; p++) *p = (char)toupper((unsigned char)*p);
    json_t *usage = json_pack("{s:I,s:I}", "input_tokens", (json_int_t)count_words(text), "output_tokens",
                              (json_int_t)count_words(out));
    json_t *answer = json_pack("{s:s,s:s,s:o}", "model", name, "text", out, "usage", usage);
    free(out);
    answer_json(a, answer);
}

static int contains_ci(const char *hay, const char *needle, size_t n) {
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return 1;
    return 0;
}

/* Rows ranked by how many of the query's words (case-insensitive substrings) each record has.
 * The work is bounded whatever the agent sends (sandbox.h's rule for providers): the first
 * SANDBOX_QUERY_MAX_TERMS words count, and a word longer than every record cannot match. */
static void dataset_query(answer_t *a, json_t *req) {
    const char *text = json_string_value(json_object_get(req, "text"));
    json_int_t limit = 3;
    json_t *l = json_object_get(json_object_get(req, "opts"), "limit");
    if (json_is_integer(l)) limit = json_integer_value(l);
    if (!text) {
        answer_error(a, "test provider: the query needs text");
        return;
    }
    enum { NRECORDS = sizeof words / sizeof words[0] };
    int hits[NRECORDS] = {0}, nwords = 0;
    for (const char *p = text; *p && nwords < SANDBOX_QUERY_MAX_TERMS;) {
        while (*p && isspace((unsigned char)*p)) p++;
        size_t n = 0;
        while (p[n] && !isspace((unsigned char)p[n])) n++;
        if (n) {
            nwords++;
            if (n <= MAX_WORD)
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
    answer_json(a, json_pack("{s:o}", "rows", rows));
}

int test_provider_answer(sandbox_call_kind_t kind, const char *name_in, size_t name_len, const char *json,
                         size_t json_len, acc_buf *out) {
    answer_t a = {.out = out, .ok = 0};
    char name[128];
    if (name_len >= sizeof name || memchr(name_in, 0, name_len)) {
        answer_error(&a, "unknown name");
        return 0;
    }
    memcpy(name, name_in, name_len);
    name[name_len] = 0;
    json_error_t err;
    json_t *req = json_loadb(json, json_len, 0, &err);
    if (!req) {
        answer_error(&a, "test provider: bad request");
        return 0;
    }
    if (kind == SANDBOX_CALL_MODEL && (strcmp(name, "test/echo") == 0 || strcmp(name, "test/upper") == 0)) {
        model_call(&a, name, req);
    } else if (kind == SANDBOX_CALL_DATASET && strcmp(name, "test/words") == 0) {
        dataset_query(&a, req);
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "no %s named '%s' (the test provider has test/echo, test/upper, test/words)",
                 kind == SANDBOX_CALL_MODEL ? "model" : "dataset", name);
        answer_error(&a, msg);
    }
    json_decref(req);
    return a.ok;
}

static int start_call(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    (void)ud;
    acc_buf out = ACC_BUF_INIT;
    int ok = test_provider_answer(call->kind, call->name, call->name_len, call->json, call->json_len, &out);
    if (acc_buf_failed(&out)) {
        acc_buf_free(&out);
        sandbox_call_done(sb, call->id, 0, "test provider: out of memory", 28);
        return -1;
    }
    sandbox_call_done(sb, call->id, ok, out.data ? out.data : "", out.len);
    acc_buf_free(&out);
    return ok ? 0 : -1;
}

sandbox_provider_t test_provider(void) {
    sandbox_provider_t p = {.ud = NULL, .start_call = start_call, .output = NULL};
    return p;
}
