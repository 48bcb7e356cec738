/*
 * test_cframe.c: runtime/server/cframe.c, a client frame's fields. Its scanner reads the common
 * frames itself and leaves the rest to jansson; either way every frame must read exactly as jansson
 * alone reads it (the fields, the id's JSON text, the error and its position). Checked on frames
 * written out, and on many more made from them by changing, inserting or cutting bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/session.h"
#include "tests/check.h"

static const char *const fields[] = {"type", "id", "agent", "budget", "content", "run", "session", "last_seq"};

static const rt_cfield *field_at(const rt_cfields *v, size_t i) {
    const rt_cfield *all[] = {&v->type, &v->id, &v->agent, &v->budget, &v->content, &v->run, &v->session, &v->last_seq};
    return all[i];
}

/* Reads data with rt_cframe_read and with jansson alone; false (and a message) if they differ. */
static bool reads_as_jansson(const char *data, size_t len, bool *fast) {
    rt_cframe f;
    json_error_t e1, e2;
    int rc = rt_cframe_read(&f, data, len, &e1);
    json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e2);
    bool same = true;
    *fast = rc == 0 && !f.doc;
    if (!doc) {
        same = rc == -1 && strcmp(e1.text, e2.text) == 0 && e1.position == e2.position;
    } else if (!json_is_object(doc)) {
        same = rc == -2;
    } else if (rc != 0) {
        same = false;
    } else {
        for (size_t i = 0; i < sizeof fields / sizeof *fields && same; i++) {
            json_t *v = json_object_get(doc, fields[i]);
            const rt_cfield *g = field_at(&f.v, i);
            if (!v) same = g->kind == CF_ABSENT;
            else if (json_is_null(v)) same = g->kind == CF_NULL;
            else if (json_is_string(v))
                same = g->kind == CF_STRING && g->len == json_string_length(v) &&
                       memcmp(g->s, json_string_value(v), g->len + 1) == 0;
            else if (json_is_integer(v)) same = g->kind == CF_INTEGER && g->i == json_integer_value(v);
            else same = g->kind == CF_OTHER;
        }
        json_t *id = json_object_get(doc, "id");
        char *want = id && (json_is_integer(id) || (json_is_string(id) && json_string_length(id) <= 200))
                         ? json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT)
                         : NULL;
        if (same) same = (!want && !f.id_text) || (want && f.id_text && strcmp(want, f.id_text) == 0);
        free(want);
    }
    if (!same) CHECK_MSG(false, "frame %.*s reads otherwise than with jansson (rc %d)", (int)len, data, rc);
    json_decref(doc);
    rt_cframe_free(&f);
    return same;
}

static const char *const frames[] = {
    "{\"type\":\"message\",\"id\":\"m1\",\"content\":\"hello\"}",
    "{\"type\":\"session.start\",\"id\":7,\"agent\":\"echo@1.0.0\",\"budget\":1000}",
    "{\"type\":\"session.resume\",\"session\":\"0123456789abcdef0123456789abcdef\",\"last_seq\":12}",
    "{\"type\":\"cancel\",\"run\":\"r3\",\"id\":-42}",
    " \r\n\t{ \"type\" : \"message\" , \"content\" : \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\te\" , \"id\" : \"x\\ny\\\"\" } \n",
    "{\"type\":\"message\",\"id\":\"\",\"content\":\"\"}",
    "{}",
    "{\"type\":null,\"id\":null,\"budget\":null,\"last_seq\":null,\"run\":null}",
    "{\"type\":true,\"id\":false,\"budget\":1.5,\"last_seq\":1e3,\"run\":[1],\"content\":{\"a\":1}}",
    "{\"id\":-0,\"budget\":0,\"last_seq\":-7}",
    "{\"id\":123456789012345678,\"last_seq\":1234567890123456789}",
    "{\"id\":9223372036854775807}",
    "{\"id\":99999999999999999999}",
    "{\"id\":01}",
    "{\"id\":-}",
    "{\"type\":\"message\",\"type\":\"cancel\"}",
    "{\"other\":1,\"other\":2}",
    "{\"ty\\u0070e\":\"message\",\"content\":\"caf\\u00e9 \\ud83d\\ude00\"}",
    "{\"type\":\"message\",\"content\":\"caf\xc3\xa9\"}",
    "{\"type\":\"message\",\"content\":\"bad \xff byte\"}",
    "{\"type\":\"message\",\"content\":\"nul \\u0000\"}",
    "{\"type\":\"message\",\"content\":\"tab\tinside\"}",
    "{\"type\":\"message\",\"content\":\"\\x\"}",
    "{\"type\":\"message\"",
    "{\"type\":\"message\",}",
    "{\"type\" \"message\"}",
    "{\"type\":\"message\"} x",
    "[1,2]",
    "\"message\"",
    "42",
    "",
    "   ",
    "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,"
    "\"o\":15,\"p\":16,\"q\":17,\"type\":\"message\"}",
    "{\"type\":\"message\",\"id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
    "{\"type\":\"message\",\"id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
};

static void test_frames_read_as_jansson_reads_them(void) {
    bool fast;
    for (size_t i = 0; i < sizeof frames / sizeof *frames; i++) reads_as_jansson(frames[i], strlen(frames[i]), &fast);
}

static void test_common_frames_are_read_without_jansson(void) {
    bool fast;
    for (size_t i = 0; i < 5; i++) {
        CHECK(reads_as_jansson(frames[i], strlen(frames[i]), &fast));
        CHECK_MSG(fast, "frame %s went to jansson", frames[i]);
    }
}

static void test_a_long_message_is_read_too(void) {
    acc_buf b = ACC_BUF_INIT;
    acc_buf_puts(&b, "{\"type\":\"message\",\"id\":\"m\",\"content\":\"");
    for (int i = 0; i < 5000; i++) acc_buf_puts(&b, i % 7 ? "word " : "\\n\\\"q\\\" ");
    acc_buf_puts(&b, "\"}");
    bool fast;
    CHECK(reads_as_jansson(b.data, b.len, &fast));
    CHECK(fast);
    acc_buf_free(&b);
}

/* Every frame above, changed at random: a byte replaced (by one that matters to a JSON reader more
 * often than not), a byte inserted, or the end cut. */
static void test_changed_frames_read_as_jansson_reads_them(void) {
    static const char interesting[] = "{}[]\":,\\ -0123456789.eEtrufalsn\t\n\x01\x7f\x80\xc3\xff";
    uint64_t seed = 20261204;
    size_t cases = 0, fast_cases = 0, failures = 0;
    for (int round = 0; round < 4000 && failures < 5; round++)
        for (size_t i = 0; i < sizeof frames / sizeof *frames && failures < 5; i++) {
            char buf[1024];
            size_t len = strlen(frames[i]);
            if (len + 2 > sizeof buf) continue;
            memcpy(buf, frames[i], len);
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = len ? (size_t)(seed >> 33) % len : 0;
            char ch = interesting[(seed >> 20) % (sizeof interesting - 1)];
            switch ((seed >> 8) % 3) {
            case 0:
                if (len) buf[at] = ch;
                break;
            case 1:
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = ch;
                len++;
                break;
            default: len = at; break;
            }
            bool fast;
            if (!reads_as_jansson(buf, len, &fast)) failures++;
            cases++;
            fast_cases += fast;
        }
    printf("# cframe: %zu changed frames, %zu read by the scanner\n", cases, fast_cases);
    CHECK(fast_cases > cases / 10);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    RUN(test_frames_read_as_jansson_reads_them);
    RUN(test_common_frames_are_read_without_jansson);
    RUN(test_a_long_message_is_read_too);
    RUN(test_changed_frames_read_as_jansson_reads_them);
    return check_finish("cframe");
}
