/*
 * test_factory.c: the model factory (registry/factory/factory.h).
 *
 * The artifact round trip and refusals; continuation copying a record with its own punctuation,
 * attributed exactly to it by the span index; determinism (same artifact, same prompt, same text;
 * a rebuilt artifact is byte-identical); max_tokens; no loops on repetitive data; back-off from
 * unknown words; the extractive answerer; the request/answer JSON and its refusals; and, with a
 * real registry, `model build` (registered, stored, refused cleanly) and calls answered the same
 * after the registry is closed, reopened and the cache emptied.
 */
#include <jansson.h>

#include "registry/factory/factory.h"
#include "registry/span/span.h"
#include "tests/check.h"

static char dir[256];

static const char *const fruit[] = {
    "Apples grow on trees in temperate orchards across the northern hemisphere. They are picked in autumn.",
    "Bananas are berries, botanically speaking, while strawberries are not berries at all!",
    "Cherries ripen early in the summer and must be picked by hand within a few days.",
    "Dates grow on palm trees in hot and dry climates. A single palm can yield a hundred kilograms.",
    "Elderberries must be cooked before eating; raw ones can upset the stomach.",
    "Figs are pollinated by tiny wasps that live inside the fruit.",
    "Grapes grow in clusters on vines, and most of the world's grapes become wine.",
    "Honeydew melons grow on trailing vines and keep for weeks in a cool cellar.",
    "Apples keep for months in cold storage, which is why they are sold all year.",
    "Kiwi fruit came from China and was renamed in New Zealand.",
};
#define NFRUIT (sizeof fruit / sizeof fruit[0])

static factory_model *fruit_model(uint32_t order, acc_buf *artifact_out) {
    factory_record recs[NFRUIT];
    for (size_t i = 0; i < NFRUIT; i++) recs[i] = (factory_record){.id = 100 + (int64_t)i, .text = fruit[i], .len = strlen(fruit[i])};
    acc_buf art = ACC_BUF_INIT;
    acc_err err = {0};
    CHECK(factory_artifact_encode(recs, NFRUIT, order, 7, NFRUIT, &art, &err) == ACC_OK);
    factory_model *m = NULL;
    CHECK_MSG(factory_model_load(art.data, art.len, &m, &err) == ACC_OK, "%s", err.msg);
    if (artifact_out) *artifact_out = art;
    else acc_buf_free(&art);
    return m;
}

static char *cont(const factory_model *m, const char *prompt, uint32_t max, factory_output *o) {
    acc_err err = {0};
    int rc = factory_continue(m, prompt, strlen(prompt), max, o, &err);
    CHECK_MSG(rc == ACC_OK, "%s", err.msg);
    return rc ? NULL : o->text;
}

static void artifact_round_trip_and_refusals(void) {
    acc_buf art;
    factory_model *m = fruit_model(4, &art);
    CHECK(m && factory_model_records(m) == NFRUIT && factory_model_order(m) == 4 && factory_model_datanet(m) == 7 &&
          factory_model_seq(m) == NFRUIT);
    CHECK(factory_model_sentences(m) == 12); /* two records hold two sentences */
    CHECK(factory_model_tokens(m) > 100);
    factory_model *bad = NULL;
    acc_err err = {0};
    CHECK(factory_model_load("nonsense", 8, &bad, &err) == ACC_ECORRUPT && bad == NULL);
    CHECK(factory_model_load(art.data, art.len - 1, &bad, &err) == ACC_ECORRUPT && strstr(err.msg, "truncated"));
    acc_buf longer = ACC_BUF_INIT;
    acc_buf_append(&longer, art.data, art.len);
    acc_buf_putc(&longer, 'x');
    CHECK(factory_model_load(longer.data, longer.len, &bad, &err) == ACC_ECORRUPT && strstr(err.msg, "stray"));
    art.data[12] = 0; /* order 0 */
    CHECK(factory_model_load(art.data, art.len, &bad, &err) == ACC_ECORRUPT);
    factory_record r = {.id = 1, .text = "x", .len = 1};
    acc_buf b = ACC_BUF_INIT;
    CHECK(factory_artifact_encode(&r, 1, 0, 1, 1, &b, &err) == ACC_EINVAL && strstr(err.msg, "--order"));
    CHECK(factory_artifact_encode(&r, 1, FACTORY_MAX_ORDER + 1, 1, 1, &b, &err) == ACC_EINVAL);
    acc_buf_free(&b);
    acc_buf_free(&longer);
    acc_buf_free(&art);
    factory_model_free(m);
}

static void continuation_copies_the_record_it_follows(void) {
    factory_model *m = fruit_model(FACTORY_DEFAULT_ORDER, NULL);
    factory_output o;
    const char *t = cont(m, "Tell me: honeydew melons grow on", 64, &o);
    CHECK_STREQ(t, "trailing vines and keep for weeks in a cool cellar.");
    CHECK(o.finish == FACTORY_FINISH_STOP && o.completion_tokens == 10 && o.prompt_tokens == 6);
    factory_output_free(&o);
    /* The record's own punctuation and case, and its sentence breaks. */
    t = cont(m, "DATES GROW ON PALM", 64, &o);
    CHECK_STREQ(t, "trees in hot and dry climates. A single palm can yield a hundred kilograms.");
    factory_output_free(&o);
    t = cont(m, "bananas are", 64, &o);
    CHECK_STREQ(t, "berries, botanically speaking, while strawberries are not berries at all!");
    factory_output_free(&o);

    /* The output is attributed, exactly, to the record it copies. */
    span_index *x = span_index_new();
    for (size_t i = 0; i < NFRUIT; i++) CHECK(span_index_add(x, 100 + (int64_t)i, fruit[i], strlen(fruit[i]), NULL) == ACC_OK);
    CHECK(span_index_commit(x, NULL) == ACC_OK);
    t = cont(m, "Elderberries must", 64, &o);
    span_attribution a;
    const span_index *xs[1] = {x};
    CHECK(span_attribute(xs, 1, o.text, o.len, NULL, &a, NULL) == ACC_OK);
    CHECK(a.nspans == 1 && a.ncredits == 1 && a.credits[0].source.record_id == 104 && a.span_tokens == o.completion_tokens);
    span_attribution_free(&a);
    factory_output_free(&o);
    span_index_free(x);
    factory_model_free(m);
}

static void same_artifact_same_output(void) {
    acc_buf a1, a2;
    factory_model *m1 = fruit_model(3, &a1), *m2 = fruit_model(3, &a2);
    CHECK(a1.len == a2.len && memcmp(a1.data, a2.data, a1.len) == 0); /* a rebuild is byte-identical */
    char h1[67], h2[67];
    factory_artifact_hash(a1.data, a1.len, h1);
    factory_artifact_hash(a2.data, a2.len, h2);
    CHECK_STREQ(h1, h2);
    const char *prompts[] = {"apples", "the world's", "grow on", "zzz unknown words", "", "in a", "picked by hand", "vines"};
    for (size_t i = 0; i < sizeof prompts / sizeof *prompts; i++) {
        factory_output o1, o2, o3;
        cont(m1, prompts[i], 40, &o1);
        cont(m2, prompts[i], 40, &o2);
        cont(m1, prompts[i], 40, &o3);
        CHECK_MSG(o1.text && o2.text && strcmp(o1.text, o2.text) == 0 && strcmp(o1.text, o3.text) == 0, "prompt \"%s\"", prompts[i]);
        CHECK_MSG(o1.completion_tokens > 0, "prompt \"%s\" gave nothing", prompts[i]);
        factory_output_free(&o1);
        factory_output_free(&o2);
        factory_output_free(&o3);
    }
    acc_buf_free(&a1);
    acc_buf_free(&a2);
    factory_model_free(m1);
    factory_model_free(m2);
}

static void max_tokens_and_no_loops(void) {
    factory_model *m = fruit_model(2, NULL);
    factory_output o;
    const char *t = cont(m, "apples", 3, &o);
    CHECK(t && o.completion_tokens == 3 && o.finish == FACTORY_FINISH_LENGTH);
    span_tokens tk = SPAN_TOKENS_INIT;
    CHECK(span_tokenize(o.text, o.len, &tk, NULL) == ACC_OK && tk.n == 3);
    factory_output_free(&o);
    acc_err err = {0};
    CHECK(factory_continue(m, "x", 1, 0, &o, &err) == ACC_EINVAL && strstr(err.msg, "max_tokens"));
    CHECK(factory_continue(m, "x", 1, FACTORY_MAX_TOKENS + 1, &o, &err) == ACC_EINVAL);
    factory_model_free(m);

    /* A record that repeats itself: greedy decoding would cycle; no n-gram comes out twice. */
    const char *loop = "one two three one two three one two three one two four one two three";
    factory_record r = {.id = 1, .text = loop, .len = strlen(loop)};
    for (uint32_t order = 2; order <= 4; order++) {
        acc_buf art = ACC_BUF_INIT;
        CHECK(factory_artifact_encode(&r, 1, order, 1, 1, &art, NULL) == ACC_OK);
        CHECK(factory_model_load(art.data, art.len, &m, NULL) == ACC_OK);
        t = cont(m, "one two", 200, &o);
        CHECK(t != NULL);
        CHECK(span_tokenize(o.text, o.len, &tk, NULL) == ACC_OK);
        /* prompt + output ids as words: no n-gram of size order twice */
        char words[64][8];
        size_t n = 0;
        strcpy(words[n++], "one");
        strcpy(words[n++], "two");
        for (size_t i = 0; i < tk.n && n < 64; i++, n++) snprintf(words[n], sizeof words[n], "%.*s", (int)tk.v[i].norm_len, tk.norm + tk.v[i].norm);
        for (size_t i = 0; i + order <= n; i++)
            for (size_t j = i + 1; j + order <= n; j++) {
                size_t k = 0;
                while (k < order && strcmp(words[i + k], words[j + k]) == 0) k++;
                CHECK_MSG(k < order, "order %u: n-gram at %zu repeats at %zu in \"%s\"", order, i, j, o.text);
            }
        CHECK(o.completion_tokens < 200);
        factory_output_free(&o);
        factory_model_free(m);
        acc_buf_free(&art);
    }
    span_tokens_free(&tk);
}

static void answers_are_record_sentences(void) {
    factory_model *m = fruit_model(FACTORY_DEFAULT_ORDER, NULL);
    factory_output o;
    acc_err err = {0};
    const char *q = "Which fruit is pollinated by wasps?";
    CHECK(factory_answer(m, q, strlen(q), 64, &o, &err) == ACC_OK);
    CHECK(strncmp(o.text, "Figs are pollinated by tiny wasps that live inside the fruit.", 61) == 0);
    CHECK(o.prompt_tokens == 6 && o.completion_tokens <= 64);
    factory_output_free(&o);
    /* The second sentence of a record, alone. */
    q = "How much can a single palm yield?";
    CHECK(factory_answer(m, q, strlen(q), 12, &o, &err) == ACC_OK);
    CHECK_STREQ(o.text, "A single palm can yield a hundred kilograms.");
    factory_output_free(&o);
    /* Too long for max_tokens: its first words. */
    CHECK(factory_answer(m, q, strlen(q), 4, &o, &err) == ACC_OK);
    CHECK_STREQ(o.text, "A single palm can");
    CHECK(o.finish == FACTORY_FINISH_LENGTH && o.completion_tokens == 4);
    factory_output_free(&o);
    /* Nothing in common: nothing said. */
    q = "quantum chromodynamics";
    CHECK(factory_answer(m, q, strlen(q), 64, &o, &err) == ACC_OK && o.len == 0 && o.completion_tokens == 0);
    factory_output_free(&o);
    factory_model_free(m);
}

static json_t *respond(const factory_model *m, const char *req, int want_rc, acc_err *err) {
    acc_buf b = ACC_BUF_INIT;
    int rc = factory_respond(m, req, strlen(req), &b, err);
    CHECK_MSG(rc == want_rc, "%s: rc %d (%s)", req, rc, err->msg);
    json_t *j = rc ? NULL : json_loadb(b.data, b.len, 0, NULL);
    acc_buf_free(&b);
    return j;
}

static void requests_and_refusals(void) {
    factory_model *m = fruit_model(FACTORY_DEFAULT_ORDER, NULL);
    acc_err err = {0};
    json_t *j = respond(m, "{\"prompt\":\"Figs are pollinated by\",\"max_tokens\":4}", ACC_OK, &err);
    CHECK_STREQ(json_string_value(json_object_get(j, "text")), "tiny wasps that live");
    CHECK(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")) == 4);
    CHECK(json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens")) == 4);
    CHECK_STREQ(json_string_value(json_object_get(j, "finish_reason")), "length");
    CHECK_STREQ(json_string_value(json_object_get(j, "mode")), "continue");
    json_decref(j);
    j = respond(m,
                "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                "{\"role\":\"user\",\"content\":\"Where did kiwi fruit come from?\"}]}",
                ACC_OK, &err);
    CHECK(strncmp(json_string_value(json_object_get(j, "text")), "Kiwi fruit came from China", 26) == 0);
    CHECK(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")) == 8);
    CHECK_STREQ(json_string_value(json_object_get(j, "mode")), "answer");
    json_decref(j);
    j = respond(m, "{\"prompt\":\"kiwi fruit\",\"mode\":\"answer\",\"max_tokens\":null}", ACC_OK, &err);
    CHECK(strncmp(json_string_value(json_object_get(j, "text")), "Kiwi fruit came from China", 26) == 0);
    json_decref(j);
    const struct {
        const char *req, *msg;
    } bad[] = {
        {"{\"prompt\":", "bad JSON"},
        {"[1,2]", "not a JSON object"},
        {"{}", "needs prompt or messages"},
        {"{\"prompt\":1}", "prompt: needs a string"},
        {"{\"prompt\":\"a\",\"messages\":[]}", "not both"},
        {"{\"messages\":[]}", "non-empty array"},
        {"{\"messages\":[{\"role\":\"user\"}]}", "messages[0]"},
        {"{\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "no user message"},
        {"{\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens"},
        {"{\"prompt\":\"a\",\"max_tokens\":4097}", "max_tokens"},
        {"{\"prompt\":\"a\",\"max_tokens\":\"5\"}", "max_tokens"},
        {"{\"prompt\":\"a\",\"mode\":\"sing\"}", "mode"},
        {"{\"prompt\":\"a\",\"prompt\":\"b\"}", "bad JSON"},
        /* the flat reader's edges: each refused as the full parse refuses it */
        {"{\"max_tokens\":4,\"max_tokens\":5,\"prompt\":\"a\"}", "bad JSON"},
        {"{\"prompt\":\"a\",\"max_tokens\":016}", "bad JSON"},
        {"{\"prompt\":\"a\",\"max_tokens\":16.0}", "max_tokens"},
        {"{\"prompt\":\"a\",\"max_tokens\":-3}", "max_tokens"},
        {"{\"prompt\":\"a\",\"max_tokens\":123456789012345678901234}", "too big"},
        {"{\"prompt\":\"a\"} x", "bad JSON"},
        {"{\"prompt\":\"a\",}", "bad JSON"},
        {"{\"prompt\":\"a\tb\"}", "bad JSON"},
        {"{\"prompt\":\"a\",\"mode\":\"continu\"}", "mode"},
        {"{\"prompt\":\"a\",\"mode\":null}", "mode"},
        {"{\"prompt\":null}", "prompt: needs a string"},
        {"{\"prompt\":\"\xff\"}", "bad JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        respond(m, bad[i].req, ACC_EINVAL, &err);
        CHECK_MSG(strstr(err.msg, bad[i].msg) != NULL, "%s: \"%s\" lacks \"%s\"", bad[i].req, err.msg, bad[i].msg);
    }
    /* The same request in the shapes either reader takes (spacing, key order, null, escapes,
     * non-ASCII text, keys it does not know) is the same request. */
    const char *same[] = {
        "{\"prompt\":\"Figs are pollinated by\",\"max_tokens\":4}",
        " { \"max_tokens\" : 4 ,\n\t\"prompt\" : \"Figs are pollinated by\" } ",
        "{\"prompt\":\"Figs are pollinated by\",\"max_tokens\":4,\"mode\":\"continue\"}",
        "{\"prompt\":\"Figs \\u0061re pollinated by\",\"max_tokens\":4}",
        "{\"prompt\":\"Figs are pollinated by\",\"max_tokens\":4,\"temperature\":0.5,\"stop\":[\"x\"]}",
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        factory_request r;
        CHECK_MSG(factory_request_parse(same[i], strlen(same[i]), &r, &err) == ACC_OK, "%s: %s", same[i], err.msg);
        CHECK_MSG(r.max_tokens == 4 && r.prompt_tokens == 4 && !r.answer && !r.messages, "%s", same[i]);
        CHECK_MSG(r.text_len == 22 && memcmp(r.text, "Figs are pollinated by", 22) == 0, "%s: %.*s", same[i],
                  (int)r.text_len, r.text);
        factory_request_free(&r);
    }
    {
        const char *req = "{\"prompt\":\"caf\xc3\xa9 au lait\",\"max_tokens\":null}";
        factory_request r;
        CHECK(factory_request_parse(req, strlen(req), &r, &err) == ACC_OK);
        CHECK(r.max_tokens == FACTORY_DEFAULT_MAX_TOKENS && r.prompt_tokens == 3 && r.text_len == 13);
        factory_request_free(&r);
    }
    factory_model_free(m);
}

/* ---- with a registry ---- */

static registry_t *open_registry(const char *name, char *path, size_t n) {
    snprintf(path, n, "%s/%s", dir, name);
    registry_t *reg = NULL;
    acc_err err = {0};
    CHECK_MSG(registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err) == ACC_OK, "%s", err.msg);
    return reg;
}

static void import_fruit(registry_t *reg, const char *datanet) {
    registry_datanet_spec_t spec = {.name = datanet, .description = "fruit facts"};
    memset(spec.owner, 0x11, 20);
    acc_err err = {0};
    CHECK_MSG(registry_datanet_create(reg, &spec, NULL, &err) == ACC_OK, "%s", err.msg);
    acc_buf jl = ACC_BUF_INIT;
    for (size_t i = 0; i < NFRUIT; i++) {
        json_t *line = json_pack("{s:s,s:s}", "text", fruit[i], "contributor",
                                 i % 2 ? "0x2222222222222222222222222222222222222222" : "0x3333333333333333333333333333333333333333");
        char *s = json_dumps(line, JSON_COMPACT);
        acc_buf_puts(&jl, s);
        acc_buf_putc(&jl, '\n');
        free(s);
        json_decref(line);
    }
    registry_import_result_t res;
    CHECK_MSG(registry_import_jsonl(reg, datanet, jl.data, jl.len, "fruit.jsonl", NULL, NULL, &res, &err) == ACC_OK, "%s", err.msg);
    acc_buf_free(&jl);
}

static char *call(registry_t *reg, const char *model, const char *req) {
    registry_model_t m;
    acc_err err = {0};
    CHECK_MSG(registry_model_get(reg, model, &m, &err) == ACC_OK, "%s", err.msg);
    acc_buf b = ACC_BUF_INIT;
    int rc = factory_call(reg, &m, req, strlen(req), &b, &err);
    CHECK_MSG(rc == ACC_OK, "%s", err.msg);
    json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    char *t = strdup(json_string_value(json_object_get(j, "text")) ? json_string_value(json_object_get(j, "text")) : "");
    json_decref(j);
    acc_buf_free(&b);
    return t;
}

static void build_in_the_registry(void) {
    char path[512];
    registry_t *reg = open_registry("build.db", path, sizeof path);
    import_fruit(reg, "demo/fruit");
    registry_model_t spec = {.name = "demo/fruit-ngram", .price_per_call = 3, .owner_share_bps = 2000};
    memset(spec.owner, 0x44, 20);
    registry_model_t got;
    acc_err err = {0};
    CHECK_MSG(factory_build(reg, &spec, "demo/fruit", 4, &got, &err) == ACC_OK, "%s", err.msg);
    CHECK(got.kind == REGISTRY_MODEL_BUILTIN && got.n_lineage == 1 && strcmp(got.lineage[0], "demo/fruit") == 0);
    CHECK(got.price_per_call == 3 && got.owner_share_bps == 2000);
    json_t *params = json_loads(got.params, 0, NULL);
    CHECK(json_integer_value(json_object_get(params, "order")) == 4);
    CHECK(json_integer_value(json_object_get(params, "records")) == (json_int_t)NFRUIT);
    CHECK(json_integer_value(json_object_get(params, "seq")) == (json_int_t)NFRUIT);
    char hash1[67];
    snprintf(hash1, sizeof hash1, "%s", json_string_value(json_object_get(params, "artifact")));
    json_decref(params);
    char *a1 = call(reg, "demo/fruit-ngram", "{\"prompt\":\"Grapes grow in\"}");
    CHECK_STREQ(a1, "clusters on vines, and most of the world's grapes become wine.");

    /* Built again from the same datanet: the same artifact, the same answers. */
    snprintf(spec.name, sizeof spec.name, "demo/fruit-ngram2");
    CHECK(factory_build(reg, &spec, "demo/fruit", 4, &got, &err) == ACC_OK);
    params = json_loads(got.params, 0, NULL);
    CHECK_STREQ(json_string_value(json_object_get(params, "artifact")), hash1);
    json_decref(params);
    char *a2 = call(reg, "demo/fruit-ngram2", "{\"prompt\":\"Grapes grow in\"}");
    CHECK_STREQ(a2, a1);
    free(a2);

    /* Refusals change nothing. */
    CHECK(factory_build(reg, &spec, "demo/fruit", 4, NULL, &err) == ACC_EEXIST);
    snprintf(spec.name, sizeof spec.name, "demo/other");
    CHECK(factory_build(reg, &spec, "demo/none", 4, NULL, &err) == ACC_ENOTFOUND);
    CHECK(factory_build(reg, &spec, "demo/fruit", 0, NULL, &err) == ACC_EINVAL && strstr(err.msg, "--order"));
    registry_datanet_spec_t empty = {.name = "demo/empty"};
    memset(empty.owner, 0x11, 20);
    CHECK(registry_datanet_create(reg, &empty, NULL, &err) == ACC_OK);
    CHECK(factory_build(reg, &spec, "demo/empty", 4, NULL, &err) == ACC_EMISUSE && strstr(err.msg, "no accepted record"));
    CHECK(registry_model_get(reg, "demo/other", &got, &err) == ACC_ENOTFOUND);
    /* Not builtin: refused by the caller. */
    registry_model_t http = {.name = "x/http", .kind = REGISTRY_MODEL_HTTP};
    snprintf(http.url, sizeof http.url, "http://127.0.0.1:1/v1");
    snprintf(http.upstream, sizeof http.upstream, "up");
    CHECK(registry_model_register(reg, &http, NULL, 0, &got, &err) == ACC_OK);
    acc_buf b = ACC_BUF_INIT;
    CHECK(factory_call(reg, &got, "{}", 2, &b, &err) == ACC_EINVAL && strstr(err.msg, "not builtin"));
    registry_close(reg);

    /* Across a restart: closed, the cache emptied, opened again: the same answer. */
    factory_cache_clear();
    registry_t *again = NULL;
    CHECK(registry_open(path, REGISTRY_OPEN_EXISTING, &again, &err) == ACC_OK);
    char *a3 = call(again, "demo/fruit-ngram", "{\"prompt\":\"Grapes grow in\"}");
    CHECK_STREQ(a3, a1);
    free(a3);
    free(a1);
    registry_close(again);
    factory_cache_clear();
}

/* Golden outputs: random records over a few words (so contexts repeat, back off and branch), models
 * of orders 1-5, and continuations of record slices and random words, all hashed. The hash was
 * taken from the model as it was before its searches started from the last word's rank (h/h31):
 * any change to what it writes changes it. */
static uint64_t golden_rng = 0x9E3779B97F4A7C15u;
static uint32_t golden_below(uint32_t n) {
    golden_rng ^= golden_rng << 13;
    golden_rng ^= golden_rng >> 7;
    golden_rng ^= golden_rng << 17;
    return (uint32_t)(golden_rng % n);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3u;
    return h;
}

static void golden_outputs(void) {
    static const char *const words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to",
                                        "red", "big", "house", "it", "was", "of", "in", "we", "saw", "sun"};
    static const char *const glue[] = {" ", " ", " ", ", ", ". ", " (", ") ", "; ", " \"", "\" "};
    enum { NW = sizeof words / sizeof words[0], NREC = 120 };
    uint64_t h = 0xcbf29ce484222325u;
    for (uint32_t order = 1; order <= 5; order++) {
        char *texts[NREC];
        factory_record recs[NREC];
        for (int r = 0; r < NREC; r++) {
            acc_buf b = ACC_BUF_INIT;
            uint32_t n = 1 + golden_below(40), nw = 4 + golden_below(NW - 4);
            for (uint32_t i = 0; i < n; i++) {
                if (i) acc_buf_printf(&b, "%s", glue[golden_below(sizeof glue / sizeof glue[0])]);
                acc_buf_printf(&b, "%s", words[golden_below(nw)]);
            }
            texts[r] = acc_buf_take(&b, NULL);
            recs[r] = (factory_record){.id = r, .text = texts[r], .len = strlen(texts[r])};
        }
        acc_buf art = ACC_BUF_INIT;
        acc_err err = {0};
        factory_model *m = NULL;
        CHECK(factory_artifact_encode(recs, NREC, order, 1, NREC, &art, &err) == ACC_OK);
        CHECK_MSG(factory_model_load(art.data, art.len, &m, &err) == ACC_OK, "%s", err.msg);
        for (int q = 0; m && q < 400; q++) {
            char prompt[256];
            const char *t = texts[golden_below(NREC)];
            size_t len = strlen(t), from = golden_below((uint32_t)len), n = 1 + golden_below(40);
            if (from + n > len) n = len - from;
            if (golden_below(4) == 0) {
                uint32_t w1 = golden_below(NW), w2 = golden_below(NW); /* drawn in order, not as arguments */
                n = (size_t)snprintf(prompt, sizeof prompt, "%s %s", words[w1], words[w2]);
            }
            else memcpy(prompt, t + from, n), prompt[n] = 0;
            if (golden_below(8) == 0) n = (size_t)snprintf(prompt, sizeof prompt, "unknown words");
            factory_output o;
            char *text = cont(m, prompt, (uint32_t)n ? 1 + golden_below(64) : 1, &o);
            if (!text) continue;
            h = fnv(h, text, o.len + 1);
            uint32_t meta[3] = {o.prompt_tokens, o.completion_tokens, (uint32_t)o.finish};
            h = fnv(h, meta, sizeof meta);
            factory_output_free(&o);
        }
        factory_model_free(m);
        acc_buf_free(&art);
        for (int r = 0; r < NREC; r++) free(texts[r]);
    }
    CHECK_MSG(h == UINT64_C(0x45f59817d84b7ed5), "golden outputs' hash %016llx", (unsigned long long)h);
}

int main(void) {
    if (test_scratch_dir(dir, sizeof dir, "factory") != 0) return 1;
    RUN(artifact_round_trip_and_refusals);
    RUN(continuation_copies_the_record_it_follows);
    RUN(same_artifact_same_output);
    RUN(max_tokens_and_no_loops);
    RUN(answers_are_record_sentences);
    RUN(requests_and_refusals);
    RUN(build_in_the_registry);
    RUN(golden_outputs);
    test_remove_dir(dir);
    return check_finish("factory");
}
