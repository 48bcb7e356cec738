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
    if (r->tokens) span_tokens_free(r->tokens);
    free(r->tokens);
    r->tokens = NULL;
}

/* The fields of a request object, as either reader found them. */
typedef enum { F_ABSENT, F_NULL, F_STRING, F_INTEGER, F_OTHER } field_kind;
typedef struct fields {
    field_kind prompt, max_tokens, mode;
    const char *prompt_text, *mode_text;
    size_t prompt_len;
    long long max_value;
    json_t *messages; /* the full reader only */
} fields;

static field_kind kind_of(const json_t *v) {
    return !v ? F_ABSENT : json_is_null(v) ? F_NULL : json_is_string(v) ? F_STRING : json_is_integer(v) ? F_INTEGER : F_OTHER;
}

/* The usual request is a flat object of a few plain values, {"max_tokens":16,"prompt":"..."}, and
 * building a jansson tree for it was most of what parsing a metered call's request cost (about 9k
 * of 11k instructions, BENCHMARKS.md). This reads exactly that shape: the keys prompt, max_tokens
 * and mode, each at most once, with values that are strings of printable ASCII without escapes,
 * whole numbers of at most 18 digits, or null. Anything else (messages, other keys, escapes,
 * non-ASCII text, nesting, fractions) returns false, and the request takes the full parse: both
 * readers feed the same checks (check_fields), so they accept and refuse the same requests with
 * the same messages. Strings point into the request. */
static bool read_flat(const char *s, size_t len, fields *f) {
    memset(f, 0, sizeof *f);
    size_t i = 0;
#define WS() while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++
    WS();
    if (i >= len || s[i++] != '{') return false;
    WS();
    bool first = true;
    for (;;) {
        if (i < len && s[i] == '}' && first) {
            i++;
            break;
        }
        /* a key */
        if (i >= len || s[i++] != '"') return false;
        size_t k0 = i;
        while (i < len && s[i] != '"') {
            unsigned char c = (unsigned char)s[i++];
            if (c < 0x20 || c >= 0x7f || c == '\\') return false;
        }
        if (i >= len) return false;
        size_t klen = i++ - k0;
        field_kind *kind;
        if (klen == 6 && memcmp(s + k0, "prompt", 6) == 0) kind = &f->prompt;
        else if (klen == 10 && memcmp(s + k0, "max_tokens", 10) == 0) kind = &f->max_tokens;
        else if (klen == 4 && memcmp(s + k0, "mode", 4) == 0) kind = &f->mode;
        else return false;
        if (*kind != F_ABSENT) return false; /* twice: the full parse names it */
        WS();
        if (i >= len || s[i++] != ':') return false;
        WS();
        if (i >= len) return false;
        if (s[i] == '"') {
            size_t v0 = ++i;
            while (i < len && s[i] != '"') {
                unsigned char c = (unsigned char)s[i++];
                if (c < 0x20 || c >= 0x7f || c == '\\') return false;
            }
            if (i >= len) return false;
            *kind = F_STRING;
            if (kind == &f->prompt) f->prompt_text = s + v0, f->prompt_len = i - v0;
            else if (kind == &f->mode) f->mode_text = s + v0; /* compared up to its quote below */
            i++;
        } else if (len - i >= 4 && memcmp(s + i, "null", 4) == 0) {
            *kind = F_NULL;
            i += 4;
        } else {
            bool neg = s[i] == '-';
            size_t d0 = i + neg, d = d0;
            long long v = 0;
            while (d < len && s[d] >= '0' && s[d] <= '9' && d - d0 < 18) v = v * 10 + (s[d++] - '0');
            if (d == d0 || (s[d0] == '0' && d - d0 > 1)) return false;
            if (d < len && ((s[d] >= '0' && s[d] <= '9') || s[d] == '.' || s[d] == 'e' || s[d] == 'E')) return false;
            *kind = F_INTEGER;
            if (kind == &f->max_tokens) f->max_value = neg ? -v : v;
            i = d;
        }
        WS();
        if (i >= len) return false;
        first = false;
        if (s[i] == ',') {
            i++;
            WS();
            continue;
        }
        if (s[i++] != '}') return false;
        break;
    }
    WS();
#undef WS
    if (i != len) return false;
    /* a mode string read here ends at its quote: make it a C string's worth of comparison */
    if (f->mode == F_STRING) {
        size_t n = (size_t)(strchr(f->mode_text, '"') - f->mode_text);
        f->mode_text = n == 8 && memcmp(f->mode_text, "continue", 8) == 0 ? "continue"
                       : n == 6 && memcmp(f->mode_text, "answer", 6) == 0 ? "answer"
                                                                         : "";
    }
    return true;
}

/* The checks every request goes through, whichever reader found its fields. */
static int check_fields(const fields *f, factory_request *out, span_tokens *tk, acc_err *err) {
    out->max_tokens = FACTORY_DEFAULT_MAX_TOKENS;
    if (f->max_tokens != F_ABSENT && f->max_tokens != F_NULL) {
        if (f->max_tokens != F_INTEGER || f->max_value < 1 || f->max_value > FACTORY_MAX_TOKENS)
            return acc_fail(err, ACC_EINVAL, "max_tokens: needs a whole number from 1 to %d", FACTORY_MAX_TOKENS);
        out->max_tokens = (uint32_t)f->max_value;
    }
    if (f->prompt != F_ABSENT && f->messages)
        return acc_fail(err, ACC_EINVAL, "request: give prompt or messages, not both");
    if (f->prompt != F_ABSENT) {
        if (f->prompt != F_STRING) return acc_fail(err, ACC_EINVAL, "prompt: needs a string");
        out->text = f->prompt_text;
        out->text_len = f->prompt_len;
        out->prompt_tokens = count_words(out->text, out->text_len, tk);
        out->answer = false;
    } else if (f->messages) {
        json_t *messages = f->messages;
        if (!json_is_array(messages) || json_array_size(messages) == 0)
            return acc_fail(err, ACC_EINVAL, "messages: needs a non-empty array");
        size_t i;
        json_t *msg;
        json_array_foreach(messages, i, msg) {
            json_t *content = json_object_get(msg, "content"), *role = json_object_get(msg, "role");
            if (!json_is_object(msg) || !json_is_string(content) || (role && !json_is_string(role)))
                return acc_fail(err, ACC_EINVAL, "messages[%zu]: needs {\"role\": \"...\", \"content\": \"...\"}", i);
            out->prompt_tokens += count_words(json_string_value(content), json_string_length(content), tk);
            if (!role || strcmp(json_string_value(role), "user") == 0) {
                out->text = json_string_value(content);
                out->text_len = json_string_length(content);
            }
        }
        if (!out->text) return acc_fail(err, ACC_EINVAL, "messages: no user message to answer");
        out->answer = true;
        out->messages = true;
    } else {
        return acc_fail(err, ACC_EINVAL, "request: needs prompt or messages");
    }
    if (f->mode != F_ABSENT) {
        const char *m = f->mode == F_STRING ? f->mode_text : NULL;
        if (m && strcmp(m, "continue") == 0) out->answer = false;
        else if (m && strcmp(m, "answer") == 0) out->answer = true;
        else return acc_fail(err, ACC_EINVAL, "mode: needs \"continue\" or \"answer\"");
    }
    return ACC_OK;
}

int factory_request_parse(const char *request, size_t len, factory_request *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    fields f;
    if (!read_flat(request, len, &f)) {
        json_error_t jerr;
        json_t *req = json_loadb(request, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!req) return acc_fail(err, ACC_EINVAL, "request: bad JSON: %s", jerr.text);
        out->root = req;
        if (!json_is_object(req)) {
            factory_request_free(out);
            return acc_fail(err, ACC_EINVAL, "request: not a JSON object");
        }
        json_t *prompt = json_object_get(req, "prompt"), *mt = json_object_get(req, "max_tokens"),
               *mode = json_object_get(req, "mode");
        f = (fields){.prompt = kind_of(prompt), .max_tokens = kind_of(mt), .mode = kind_of(mode),
                     .prompt_text = json_string_value(prompt), .prompt_len = prompt ? json_string_length(prompt) : 0,
                     .mode_text = json_string_value(mode),
                     .max_value = json_is_integer(mt) ? (long long)json_integer_value(mt) : 0,
                     .messages = json_object_get(req, "messages")};
    }
    span_tokens *tk = malloc(sizeof *tk);
    if (!tk) {
        factory_request_free(out);
        return acc_fail(err, ACC_ENOMEM, "request: out of memory");
    }
    *tk = (span_tokens)SPAN_TOKENS_INIT;
    int rc = check_fields(&f, out, tk, err);
    if (!rc && !out->messages && !out->answer) {
        out->tokens = tk; /* the prompt's: factory_run continues from them */
    } else {
        span_tokens_free(tk);
        free(tk);
    }
    if (rc) factory_request_free(out);
    return rc;
}

int factory_run(const factory_model *m, const factory_request *r, factory_output *out, acc_err *err) {
    int rc = r->answer   ? factory_answer(m, r->text, r->text_len, r->max_tokens, out, err)
             : r->tokens ? factory_continue_tokens(m, r->tokens, r->max_tokens, out, err)
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
