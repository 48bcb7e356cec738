/*
 * request.c: a built-in model behind models.call: request JSON in, answer JSON out.
 *
 * The request is what an agent passes to models.call (and, later, what the OpenAI-compatible
 * endpoint receives): a prompt to continue, or chat messages whose last user message is answered.
 * Every field is checked and a bad one named; usage counts the model's own normalised words, the
 * tokens the meters price (prompt_tokens over every message's content, as chat models count).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "registry/factory/factory_internal.h"

static uint32_t count_words(const char *s, size_t n, span_tokens *tk) {
    return span_tokenize(s, n, tk, NULL) == ACC_OK ? (uint32_t)tk->n : 0;
}

void factory_request_free(factory_request *r) {
    json_decref((json_t *)r->root);
    r->root = NULL;
}

int factory_request_parse(const char *request, size_t len, factory_request *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *req = json_loadb(request, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req) return acc_fail(err, ACC_EINVAL, "request: bad JSON: %s", jerr.text);
    out->root = req;
    int rc = ACC_OK;
    span_tokens tk = SPAN_TOKENS_INIT;
    if (!json_is_object(req)) {
        rc = acc_fail(err, ACC_EINVAL, "request: not a JSON object");
        goto out;
    }
    out->max_tokens = FACTORY_DEFAULT_MAX_TOKENS;
    json_t *mt = json_object_get(req, "max_tokens");
    if (mt && !json_is_null(mt)) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1 || json_integer_value(mt) > FACTORY_MAX_TOKENS) {
            rc = acc_fail(err, ACC_EINVAL, "max_tokens: needs a whole number from 1 to %d", FACTORY_MAX_TOKENS);
            goto out;
        }
        out->max_tokens = (uint32_t)json_integer_value(mt);
    }
    json_t *prompt = json_object_get(req, "prompt"), *messages = json_object_get(req, "messages");
    if (prompt && messages) {
        rc = acc_fail(err, ACC_EINVAL, "request: give prompt or messages, not both");
        goto out;
    }
    if (prompt) {
        if (!json_is_string(prompt)) {
            rc = acc_fail(err, ACC_EINVAL, "prompt: needs a string");
            goto out;
        }
        out->text = json_string_value(prompt);
        out->text_len = json_string_length(prompt);
        out->prompt_tokens = count_words(out->text, out->text_len, &tk);
        out->answer = false;
    } else if (messages) {
        if (!json_is_array(messages) || json_array_size(messages) == 0) {
            rc = acc_fail(err, ACC_EINVAL, "messages: needs a non-empty array");
            goto out;
        }
        size_t i;
        json_t *msg;
        json_array_foreach(messages, i, msg) {
            json_t *content = json_object_get(msg, "content"), *role = json_object_get(msg, "role");
            if (!json_is_object(msg) || !json_is_string(content) || (role && !json_is_string(role))) {
                rc = acc_fail(err, ACC_EINVAL, "messages[%zu]: needs {\"role\": \"...\", \"content\": \"...\"}", i);
                goto out;
            }
            out->prompt_tokens += count_words(json_string_value(content), json_string_length(content), &tk);
            if (!role || strcmp(json_string_value(role), "user") == 0) {
                out->text = json_string_value(content);
                out->text_len = json_string_length(content);
            }
        }
        if (!out->text) {
            rc = acc_fail(err, ACC_EINVAL, "messages: no user message to answer");
            goto out;
        }
        out->answer = true;
        out->messages = true;
    } else {
        rc = acc_fail(err, ACC_EINVAL, "request: needs prompt or messages");
        goto out;
    }
    json_t *mode = json_object_get(req, "mode");
    if (mode) {
        const char *s = json_string_value(mode);
        if (s && strcmp(s, "continue") == 0) out->answer = false;
        else if (s && strcmp(s, "answer") == 0) out->answer = true;
        else {
            rc = acc_fail(err, ACC_EINVAL, "mode: needs \"continue\" or \"answer\"");
            goto out;
        }
    }
out:
    span_tokens_free(&tk);
    if (rc) factory_request_free(out);
    return rc;
}

int factory_run(const factory_model *m, const factory_request *r, factory_output *out, acc_err *err) {
    int rc = r->answer ? factory_answer(m, r->text, r->text_len, r->max_tokens, out, err)
                       : factory_continue(m, r->text, r->text_len, r->max_tokens, out, err);
    if (!rc && r->messages) out->prompt_tokens = r->prompt_tokens;
    return rc;
}

int factory_respond(const factory_model *m, const char *request, size_t len, acc_buf *out, acc_err *err) {
    factory_request r;
    int rc = factory_request_parse(request, len, &r, err);
    if (rc) return rc;
    factory_output o = {0};
    rc = factory_run(m, &r, &o, err);
    if (rc) goto out;
    json_t *resp = json_pack("{s:s%,s:{s:I,s:I},s:s,s:s}", "text", o.text, o.len, "usage", "prompt_tokens",
                             (json_int_t)o.prompt_tokens, "completion_tokens", (json_int_t)o.completion_tokens,
                             "finish_reason", o.finish == FACTORY_FINISH_STOP ? "stop" : "length", "mode",
                             r.answer ? "answer" : "continue");
    char *s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    json_decref(resp);
    if (!s) {
        rc = acc_fail(err, ACC_ENOMEM, "model: out of memory writing the answer");
        goto out;
    }
    acc_buf_puts(out, s);
    free(s);
out:
    factory_output_free(&o);
    factory_request_free(&r);
    return rc;
}
