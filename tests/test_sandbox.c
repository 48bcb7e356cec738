/*
 * test_sandbox.c: the sandbox's contract, through its public API (sandbox/sandbox.h).
 *
 * Limits end turns and cannot be caught; host calls wait and resume, in the agent's own coroutines
 * too; time slicing pauses and resumes a long turn; sandboxes share nothing; a sandbox stays usable
 * after a turn hit a limit.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "sandbox/sandbox.h"
#include "tests/check.h"

/* A provider that records what the agent asked and answers at once or later. */
typedef struct fake_host {
    int answer_later; /* 0: answer inside start_call */
    int calls;
    uint64_t last_id;
    sandbox_call_kind_t last_kind;
    char last_name[64], last_json[256];
    char out[4096];
    size_t out_len;
} fake_host_t;

static int fake_start(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    fake_host_t *h = ud;
    h->calls++;
    h->last_id = call->id;
    h->last_kind = call->kind;
    snprintf(h->last_name, sizeof h->last_name, "%.*s", (int)call->name_len, call->name);
    snprintf(h->last_json, sizeof h->last_json, "%.*s", (int)call->json_len, call->json);
    if (strcmp(h->last_name, "refuse") == 0) {
        sandbox_call_done(sb, call->id, 0, "no such model", 13);
        return -1;
    }
    if (!h->answer_later) {
        const char *a = "{\"text\":\"answer\",\"n\":42}";
        sandbox_call_done(sb, call->id, 1, a, strlen(a));
    }
    return 0;
}

static sandbox_output_verdict_t fake_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *s,
                                            size_t len) {
    fake_host_t *h = ud;
    (void)sb, (void)kind;
    if (h->out_len + len < sizeof h->out) {
        memcpy(h->out + h->out_len, s, len);
        h->out_len += len;
        h->out[h->out_len] = 0;
    }
    return SANDBOX_OUTPUT_OK;
}

static sandbox_limits_t tight(void) {
    sandbox_limits_t l = sandbox_default_limits();
    l.memory_bytes = 8u << 20;
    l.turn.instructions = 2000000;
    l.turn.time_ms = 2000;
    l.turn.output_bytes = 4096;
    return l;
}

static sandbox_t *open_with(const sandbox_limits_t *l, fake_host_t *h) {
    sandbox_provider_t p = {.ud = h, .start_call = fake_start, .output = fake_output};
    return sandbox_open(l, &p, NULL);
}

/* Loads src; returns the load turn's status. */
static sandbox_status_t load(sandbox_t *sb, const char *src) {
    if (sandbox_start_load(sb, "=agent", src, strlen(src), NULL) != ACC_OK) return SANDBOX_FAILED;
    return sandbox_run_to_end(sb);
}

static sandbox_status_t message(sandbox_t *sb, const char *text) {
    if (sandbox_start_message(sb, text, strlen(text), NULL) != ACC_OK) return SANDBOX_FAILED;
    return sandbox_run_to_end(sb);
}

static const char *reply(sandbox_t *sb) {
    const char *r = sandbox_reply(sb, NULL);
    return r ? r : "(none)";
}

/* Runs the load turn of src under l and checks it fails on `want`, within max_ms. */
static void expect_limit(const sandbox_limits_t *limits, const char *src, sandbox_limit_t want, double max_ms) {
    fake_host_t h = {0};
    sandbox_limits_t slow = *limits;
    const sandbox_limits_t *l = limits;
    if (test_slow_tool() && want != SANDBOX_LIMIT_TIME && slow.turn.time_ms) {
        slow.turn.time_ms = (uint64_t)test_scaled_ms((double)slow.turn.time_ms); /* the other limits still come first */
        l = &slow;
    }
    sandbox_t *sb = open_with(l, &h);
    double t0 = test_now_ms();
    sandbox_status_t st = load(sb, src);
    double ms = test_now_ms() - t0;
    CHECK_MSG(st == SANDBOX_FAILED && sandbox_limit_hit(sb) == want, "script %s: status %d, limit '%s', error '%s'",
              src, st, sandbox_limit_name(sandbox_limit_hit(sb)), sandbox_errmsg(sb));
    CHECK_MSG(ms <= test_scaled_ms(max_ms), "script %s took %.1f ms", src, ms);
    sandbox_stats_t s;
    sandbox_stats(sb, &s);
    CHECK(l->memory_bytes == 0 || s.memory_peak <= l->memory_bytes);
    sandbox_close(sb);
}

static void test_message_round_trip(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "local greeting = 'hi ' return {on_message = function(s, t) return greeting .. t end}") ==
          SANDBOX_DONE);
    CHECK(message(sb, "bob") == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "hi bob");
    CHECK(message(sb, "ann") == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "hi ann");
    sandbox_close(sb);
}

static void test_script_must_return_agent(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return 42") == SANDBOX_FAILED);
    CHECK(strstr(sandbox_errmsg(sb), "on_message") != NULL);
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_EMISUSE); /* nothing loaded */
    sandbox_close(sb);
}

static void test_errors_name_their_line(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "local x = 1\nerror('boom')") == SANDBOX_FAILED);
    CHECK_STREQ(sandbox_errmsg(sb), "agent:2: boom");
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_NONE);
    sandbox_close(sb);
    sb = open_with(&l, &h);
    CHECK(sandbox_start_load(sb, "=agent", "x = = 1", 7, NULL) == ACC_ESCRIPT);
    CHECK(strstr(sandbox_errmsg(sb), "unexpected symbol") != NULL);
    sandbox_close(sb);
}

static void test_error_objects_are_never_stringified_by_the_host(void) {
    sandbox_limits_t l = tight();
    fake_host_t h = {0};
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "error(setmetatable({}, {__tostring = function() while true do end end}))") == SANDBOX_FAILED);
    CHECK_STREQ(sandbox_errmsg(sb), "(error object is a table value)");
    sandbox_close(sb);
}

static void test_instruction_limit(void) {
    sandbox_limits_t l = tight();
    expect_limit(&l, "while true do end", SANDBOX_LIMIT_INSTRUCTIONS, 1000);
    expect_limit(&l, "while true do pcall(function() while true do end end) end", SANDBOX_LIMIT_INSTRUCTIONS, 1000);
    expect_limit(&l, "xpcall(function() while true do end end, function() while true do end end)",
                 SANDBOX_LIMIT_INSTRUCTIONS, 1000);
    expect_limit(&l, "local co = coroutine.wrap(function() while true do end end) while true do pcall(co) end",
                 SANDBOX_LIMIT_INSTRUCTIONS, 1000);
    expect_limit(&l, "print(('a'):rep(300):find('.-.-.-.-.-b'))", SANDBOX_LIMIT_INSTRUCTIONS, 1000);
    /* Linear library functions pay per byte: 100 upper-casings of 1 MiB are ~3.2M units. */
    expect_limit(&l, "local s = ('x'):rep(1 << 20) for i = 1, 100 do local u = s:upper() end",
                 SANDBOX_LIMIT_INSTRUCTIONS, 1000);
    /* The count is close to the truth: a 100k-iteration loop is about 300k instructions. */
    fake_host_t h = {0};
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "local s = 0 for i = 1, 100000 do s = s + i end return {on_message = print}") == SANDBOX_DONE);
    sandbox_stats_t st;
    sandbox_stats(sb, &st);
    CHECK_MSG(st.instructions >= 190000 && st.instructions <= 420000, "counted %llu", (unsigned long long)st.instructions);
    sandbox_close(sb);
}

static void test_time_limit_without_instruction_counting(void) {
    sandbox_limits_t l = tight();
    l.turn.instructions = 0;
    l.turn.time_ms = 150;
    expect_limit(&l, "while true do end", SANDBOX_LIMIT_TIME, 400);
    expect_limit(&l, "while true do pcall(function() while true do end end) end", SANDBOX_LIMIT_TIME, 400);
    expect_limit(&l, "xpcall(function() while true do end end, function() while true do end end)", SANDBOX_LIMIT_TIME, 400);
    expect_limit(&l, "local t = {} for i = 1, 2e5 do t[i] = (i * 7919) % 1000 end "
                     "while true do table.sort(t, function(a, b) return a < b end) end",
                 SANDBOX_LIMIT_TIME, 400);
    expect_limit(&l, "print(('a'):rep(300):find('.-.-.-.-.-b'))", SANDBOX_LIMIT_TIME, 400);
    expect_limit(&l, "local co = coroutine.wrap(function() local c2 = coroutine.wrap(function() while true do end end) c2() end) co()",
                 SANDBOX_LIMIT_TIME, 400);
}

static void test_memory_limit_is_exact_and_uncatchable(void) {
    sandbox_limits_t l = tight();
    l.memory_bytes = 4u << 20;
    expect_limit(&l, "local t = {} while true do t[#t + 1] = ('x'):rep(100) .. #t end", SANDBOX_LIMIT_MEMORY, 1000);
    expect_limit(&l, "local t = {} pcall(function() while true do t[#t + 1] = {} end end) t = nil "
                     "while true do end",
                 SANDBOX_LIMIT_MEMORY, 1000);
    expect_limit(&l, "local s = 'x' while true do s = s .. s end", SANDBOX_LIMIT_MEMORY, 1000);
    expect_limit(&l, "local ok = coroutine.resume(coroutine.create(function() local t = {} while true do t[#t+1] = {} end end)) "
                     "while true do end",
                 SANDBOX_LIMIT_MEMORY, 1000);
    expect_limit(&l, "local f = load(function() return ('x = 1 '):rep(1e5) end) while true do end",
                 SANDBOX_LIMIT_MEMORY, 1000);
}

static void test_output_limit(void) {
    sandbox_limits_t l = tight();
    l.turn.output_bytes = 100;
    expect_limit(&l, "for i = 1, 1000 do print(i) end", SANDBOX_LIMIT_OUTPUT, 1000);
    expect_limit(&l, "while true do pcall(session.send, ('y'):rep(50)) end", SANDBOX_LIMIT_OUTPUT, 1000);
    /* The reply counts too. */
    fake_host_t h = {0};
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function() session.send(('a'):rep(60)) return ('b'):rep(60) end}") ==
          SANDBOX_DONE);
    CHECK(message(sb, "x") == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_OUTPUT);
    sandbox_close(sb);
}

static void test_sandbox_usable_after_a_limit(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function(s, t) if t == 'spin' then while true do end end return 'ok' end}") ==
          SANDBOX_DONE);
    CHECK(message(sb, "spin") == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_INSTRUCTIONS);
    CHECK(message(sb, "hello") == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "ok");
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_NONE);
    sandbox_close(sb);
}

/* A turn runs in the last turn's thread when that one returned cleanly and the agent never held it
 * (sandbox.c, turn_thread_for). Nothing of that shows: a thread the agent kept is dead in the next
 * turn, a turn after an error or a pending __close runs as before, and the same work counts the same
 * instructions in a reused thread as in a new one. */
static void test_turn_threads_are_reused_unseen(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "local kept\n"
                   "return {on_message = function(s, t)\n"
                   "  if t == 'keep' then kept = coroutine.running() return 'kept' end\n"
                   "  if t == 'status' then return kept and coroutine.status(kept) or 'none' end\n"
                   "  if t == 'fail' then error('boom') end\n"
                   "  if t == 'close' then local c <close> = setmetatable({}, {__close = function() end}) end\n"
                   "  local n = 0 for i = 1, 20017 do n = n + i end return tostring(n) end}") == SANDBOX_DONE);
    uint64_t counts[6];
    const char *before[6] = {"work", "work", "fail", "work", "close", "work"};
    for (int i = 0; i < 6; i++) {
        sandbox_status_t st = message(sb, before[i]);
        if (strcmp(before[i], "fail") == 0) {
            CHECK(st == SANDBOX_FAILED);
            CHECK(message(sb, "work") == SANDBOX_DONE); /* after an error: a new thread */
        } else {
            CHECK_MSG(st == SANDBOX_DONE, "turn %s: %s", before[i], sandbox_errmsg(sb));
        }
        sandbox_stats_t s;
        sandbox_stats(sb, &s);
        counts[i] = s.instructions;
    }
    CHECK(counts[0] > 0 && counts[0] == counts[1] && counts[1] == counts[2] && counts[2] == counts[3] &&
          counts[3] == counts[5]);
    CHECK(message(sb, "keep") == SANDBOX_DONE);
    CHECK(message(sb, "status") == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "dead");
    CHECK(message(sb, "status") == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "dead");
    sandbox_close(sb);
}

static void test_host_call_answered_later(void) {
    fake_host_t h = {.answer_later = 1};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function(s, t)\n"
                   "  local r = models.call('m1', {prompt = t, max_tokens = 5})\n"
                   "  local co = coroutine.wrap(function() return datasets.query('d1', 'q', {limit = 2}).n end)\n"
                   "  return r.text .. ':' .. co() end}") == SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "hey", 3, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    CHECK(h.calls == 1 && h.last_kind == SANDBOX_CALL_MODEL);
    CHECK_STREQ(h.last_name, "m1");
    CHECK_STREQ(h.last_json, "{\"max_tokens\":5,\"prompt\":\"hey\"}");
    CHECK(sandbox_run(sb) == SANDBOX_WAITING); /* nothing answered yet */
    const char *a = "{\"text\":\"first\"}";
    CHECK(sandbox_call_done(sb, h.last_id + 1, 1, a, strlen(a)) == ACC_EMISUSE); /* not the waiting call */
    CHECK(sandbox_call_done(sb, h.last_id, 1, a, strlen(a)) == ACC_OK);
    CHECK(sandbox_call_done(sb, h.last_id, 1, a, strlen(a)) == ACC_EMISUSE); /* once */
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);       /* now inside the agent's coroutine */
    CHECK(h.calls == 2 && h.last_kind == SANDBOX_CALL_DATASET);
    CHECK_STREQ(h.last_json, "{\"opts\":{\"limit\":2},\"text\":\"q\"}");
    a = "{\"n\":7}";
    CHECK(sandbox_call_done(sb, h.last_id, 1, a, strlen(a)) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "first:7");
    sandbox_close(sb);
}

/* Prefetching is a hint: before a script, between turns, while a call waits (its warm list full,
 * from an answer with more short strings than it holds) and after a failure, on a capped heap
 * and on an uncapped one, it changes no outcome. */
static void test_prefetch_changes_nothing(void) {
    for (int capped = 0; capped < 2; capped++) {
        fake_host_t h = {.answer_later = 1};
        sandbox_limits_t l = tight();
        if (!capped) l.memory_bytes = 0;
        sandbox_t *sb = open_with(&l, &h);
        sandbox_prefetch_handle(sb);
        sandbox_prefetch(sb);
        CHECK(load(sb, "return {on_message = function(s, t)\n"
                       "  local a = models.call('m', {prompt = t})\n"
                       "  local b = models.call('m', {prompt = t})\n"
                       "  if t == 'fail' then error('asked to') end\n"
                       "  return a.k1 .. b.k20 .. b.text end}") == SANDBOX_DONE);
        sandbox_prefetch(sb);
        char answer[2048];
        size_t len = (size_t)snprintf(answer, sizeof answer, "{");
        for (int k = 1; k <= 20; k++)
            len += (size_t)snprintf(answer + len, sizeof answer - len, "\"k%d\":\"value number %d of the answer\",", k, k);
        snprintf(answer + len, sizeof answer - len, "\"text\":\"end\"}");
        for (int turn = 0; turn < 2; turn++) {
            CHECK(sandbox_start_message(sb, turn ? "fail" : "go", turn ? 4 : 2, NULL) == ACC_OK);
            for (int call = 0; call < 2; call++) {
                CHECK(sandbox_run(sb) == SANDBOX_WAITING);
                sandbox_prefetch_handle(sb);
                sandbox_prefetch(sb);
                CHECK(sandbox_call_done(sb, h.last_id, 1, answer, strlen(answer)) == ACC_OK);
                sandbox_prefetch(sb);
            }
            sandbox_status_t st = sandbox_run(sb);
            sandbox_prefetch_handle(sb);
            sandbox_prefetch(sb);
            if (turn == 0) {
                CHECK(st == SANDBOX_DONE);
                CHECK_STREQ(reply(sb), "value number 1 of the answervalue number 20 of the answerend");
            } else {
                CHECK(st == SANDBOX_FAILED);
                CHECK(strstr(sandbox_errmsg(sb), "asked to") != NULL);
            }
        }
        sandbox_close(sb);
    }
}

/* A provider that answers each call with the next text of a script, and keeps every request. */
typedef struct scripted_host {
    const char *const *answers;
    int n, calls;
    char requests[8][8192];
    size_t request_len[8];
} scripted_host_t;

static int scripted_start(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    scripted_host_t *h = ud;
    if (h->calls < 8 && call->json_len < sizeof h->requests[0]) {
        memcpy(h->requests[h->calls], call->json, call->json_len);
        h->request_len[h->calls] = call->json_len;
    }
    const char *a = h->answers[h->calls++ % h->n];
    sandbox_call_done(sb, call->id, 1, a, strlen(a));
    return 0;
}

static sandbox_t *open_scripted(scripted_host_t *h) {
    sandbox_limits_t l = tight();
    sandbox_provider_t p = {.ud = h, .start_call = scripted_start};
    return sandbox_open(&l, &p, NULL);
}

/* The sandbox reuses the short strings of the last answer where the next one has the same ones
 * at the same places (a speed-up: sandbox/json.c): whatever the answers' shapes, the agent gets
 * each answer as json.decode would give it. The answers are in json.encode's canonical form, so
 * the agent's json.encode of what it got must give each one back. */
static void test_answers_decode_alike_whatever_their_shapes(void) {
    static const char *const answers[] = {
        "{\"a\":\"x\",\"b\":\"y\"}",
        "{\"a\":\"x\",\"b\":\"z\"}", /* a value changes in its place */
        "{\"a\":\"y\",\"b\":\"x\"}", /* two swap */
        "{\"b\":\"x\"}",                 /* fewer */
        "{\"k01\":\"v01\",\"k02\":\"v02\",\"k03\":\"v03\",\"k04\":\"v04\",\"k05\":\"v05\",\"k06\":\"v06\","
        "\"k07\":\"v07\",\"k08\":\"v08\",\"k09\":\"v09\",\"k10\":\"v10\",\"k11\":\"v11\",\"k12\":\"v12\","
        "\"k13\":\"v13\",\"k14\":\"v14\",\"k15\":\"v15\",\"k16\":\"v16\",\"k17\":\"v17\",\"k18\":\"v18\","
        "\"k19\":\"v19\",\"k20\":\"v20\"}", /* more short strings than the list keeps */
        "{\"s\":\"0123456789012345678901234567890123456789\",\"t\":\"01234567890123456789012345678901234567890\"}",
        "{\"e\":\"a\\\"b\",\"f\":\"\u00e9\"}", /* escapes: built in a buffer, never from the list */
        "{\"rows\":[{\"id\":1,\"t\":\"x\"},{\"id\":2,\"t\":\"x\"}],\"usage\":{\"n\":2}}",
        "{\"a\":\"x\",\"b\":\"y\"}",
        "{\"a\":\"x\",\"b\":\"y\"}",
    };
    int n = (int)(sizeof answers / sizeof *answers);
    scripted_host_t h = {.answers = answers, .n = n};
    sandbox_t *sb = open_scripted(&h);
    char src[512];
    snprintf(src, sizeof src,
             "return {on_message = function(s, t)\n"
             "  local out = {}\n"
             "  for i = 1, %d do\n"
             "    local r = models.call('m', {})\n"
             "    if r.rows then assert(getmetatable(r.rows) == getmetatable(json.decode('[]'))) end\n"
             "    if r.a then assert(r.a == ('x'):rep(1) or r.a == ('y'):rep(1)) end\n"
             "    out[#out + 1] = json.encode(r)\n"
             "  end\n"
             "  return table.concat(out, '\\n') end}",
             2 * n);
    CHECK(load(sb, src) == SANDBOX_DONE);
    CHECK(message(sb, "go") == SANDBOX_DONE);
    char want[4096] = "";
    for (int i = 0; i < 2 * n; i++) {
        if (i) strcat(want, "\n");
        strcat(want, answers[i % n]);
    }
    CHECK_STREQ(reply(sb), want);
    sandbox_close(sb);
}

/* An answer's arrays get json.decode's array metatable, which the codec refuses to attach once a
 * script gave it a __gc field: checked when the answer has an array. */
static void test_answer_arrays_refuse_a_poisoned_metatable(void) {
    static const char *const answers[] = {"{\"text\":\"ok\"}", "{\"rows\":[1,2]}"};
    scripted_host_t h = {.answers = answers, .n = 2};
    sandbox_t *sb = open_scripted(&h);
    CHECK(load(sb, "return {on_message = function(s, t)\n"
                   "  local amt = getmetatable(json.decode('[]'))\n"
                   "  amt.__gc = function() end\n"
                   "  local text = models.call('m', {}).text\n"
                   "  local ok, err = pcall(models.call, 'm', {})\n"
                   "  amt.__gc = nil\n"
                   "  return text .. '|' .. tostring(ok) .. '|' .. tostring(err) end}") == SANDBOX_DONE);
    CHECK_MSG(message(sb, "go") == SANDBOX_DONE, "%s", sandbox_errmsg(sb));
    CHECK_MSG(strstr(reply(sb), "ok|false|") == reply(sb) && strstr(reply(sb), "array metatable has been given a __gc"),
              "%s", reply(sb));
    sandbox_close(sb);
}

/* Requests are encoded into a buffer the sandbox keeps from call to call, a bigger one when a
 * request needs it: each one reaches the provider whole, whatever came before it. */
static void test_requests_reach_the_host_whole_whatever_their_sizes(void) {
    static const char *const answers[] = {"{}"};
    static const int sizes[] = {3, 300, 5000, 2, 3000, 1};
    int n = (int)(sizeof sizes / sizeof *sizes);
    scripted_host_t h = {.answers = answers, .n = 1};
    sandbox_t *sb = open_scripted(&h);
    CHECK(load(sb, "return {on_message = function(s, t)\n"
                   "  for _, n in ipairs({3, 300, 5000, 2, 3000, 1}) do models.call('m', {p = ('a'):rep(n)}) end\n"
                   "end}") == SANDBOX_DONE);
    CHECK(message(sb, "go") == SANDBOX_DONE);
    CHECK(h.calls == n);
    for (int i = 0; i < n; i++) {
        char want[8192];
        int len = snprintf(want, sizeof want, "{\"p\":\"");
        memset(want + len, 'a', (size_t)sizes[i]);
        len += sizes[i];
        len += snprintf(want + len, sizeof want - (size_t)len, "\"}");
        CHECK_MSG(h.request_len[i] == (size_t)len && memcmp(h.requests[i], want, (size_t)len) == 0,
                  "request %d (%d bytes of text): %zu bytes, %.40s", i, sizes[i], h.request_len[i], h.requests[i]);
    }
    sandbox_close(sb);
}

static void test_host_call_errors_reach_the_agent(void) {
    fake_host_t h = {.answer_later = 1};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function(s, t)\n"
                   "  local ok, e = pcall(models.call, 'refuse', {})\n"
                   "  local ok2, e2 = pcall(models.call, 'm', {prompt = 'x'})\n"
                   "  return tostring(e) .. '|' .. tostring(e2) end}") == SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    CHECK(sandbox_call_done(sb, h.last_id, 0, "upstream timed out", 18) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "models.call: no such model|models.call: upstream timed out");
    sandbox_close(sb);
}

static void test_host_call_inside_c_boundary_is_a_clear_error(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function()\n"
                   "  local ok, e = pcall(table.sort, {3, 1, 2}, function(a, b) models.call('m', {}) return a < b end)\n"
                   "  return e end}") == SANDBOX_DONE);
    CHECK(message(sb, "x") == SANDBOX_DONE);
    CHECK(strstr(reply(sb), "cannot wait here") != NULL);
    CHECK(h.calls == 0); /* refused before anything was started */
    sandbox_close(sb);
}

static void test_wait_counts_against_time_and_cancel(void) {
    fake_host_t h = {.answer_later = 1};
    sandbox_limits_t l = tight();
    l.turn.time_ms = 50;
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function() return models.call('m', {}).text end}") == SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    struct timespec ts = {0, 80 * 1000000};
    nanosleep(&ts, NULL);
    CHECK(sandbox_run(sb) == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_TIME);
    uint64_t late = h.last_id;

    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    CHECK(sandbox_call_done(sb, late, 1, "{}", 2) == ACC_EMISUSE); /* the failed turn's call: dropped */
    CHECK(sandbox_cancel(sandbox_id(sb)) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_CANCELLED);
    sandbox_close(sb);
}

static void *cancel_later(void *arg) {
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    sandbox_cancel(*(uint64_t *)arg);
    return NULL;
}

/* A turn spinning in Lua with no instruction counting and a distant deadline is cancellable from
 * another thread. */
static void test_cancel_from_another_thread(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    l.turn.instructions = 0;
    l.turn.time_ms = 600000;
    sandbox_t *sb = open_with(&l, &h);
    CHECK(sandbox_start_load(sb, "=agent", "while true do end", 17, NULL) == ACC_OK);
    pthread_t t;
    uint64_t id = sandbox_id(sb);
    pthread_create(&t, NULL, cancel_later, &id);
    double t0 = test_now_ms();
    CHECK(sandbox_run(sb) == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_CANCELLED);
    CHECK(test_now_ms() - t0 < test_scaled_ms(1000));
    pthread_join(t, NULL);
    sandbox_close(sb);
}

static void test_time_slices_interleave_two_agents(void) {
    sandbox_limits_t l = tight();
    /* Under a slow tool: fewer iterations, a later deadline. */
    long long iterations = (long long)(30000000 / test_time_scale());
    l.turn.instructions = 0;
    l.turn.time_ms = (uint64_t)test_scaled_ms(5000);
    l.turn.slice_ms = 5;
    fake_host_t ha = {0}, hb = {0};
    sandbox_t *a = open_with(&l, &ha), *b = open_with(&l, &hb);
    char src[300];
    snprintf(src, sizeof src,
             "return {on_message = function(s, t)\n"
             "  local co = coroutine.wrap(function() local n = 0 for i = 1, %lld do n = n + i %% 7 end return n end)\n"
             "  return tostring(co()) end}", iterations);
    CHECK(load(a, src) == SANDBOX_DONE && load(b, src) == SANDBOX_DONE);
    CHECK(sandbox_start_message(a, "x", 1, NULL) == ACC_OK && sandbox_start_message(b, "x", 1, NULL) == ACC_OK);
    int pauses_a = 0, pauses_b = 0, done_a = 0, done_b = 0, order_switches = 0, last = -1;
    while (!(done_a && done_b)) {
        if (!done_a) {
            sandbox_status_t st = sandbox_run(a);
            CHECK(st == SANDBOX_PAUSED || st == SANDBOX_DONE);
            if (st != SANDBOX_PAUSED) done_a = 1;
            else pauses_a++;
            if (last != 0) order_switches++;
            last = 0;
        }
        if (!done_b) {
            sandbox_status_t st = sandbox_run(b);
            CHECK(st == SANDBOX_PAUSED || st == SANDBOX_DONE);
            if (st != SANDBOX_PAUSED) done_b = 1;
            else pauses_b++;
            if (last != 1) order_switches++;
            last = 1;
        }
    }
    long long want = 0;
    for (long long i = 1; i <= iterations; i++) want += i % 7;
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", want);
    CHECK_STREQ(reply(a), buf);
    CHECK_STREQ(reply(b), buf);
    if (test_slow_tool()) {
        /* valgrind runs one thread at a time in long stretches: the watchdog gets few chances. */
        CHECK_MSG(pauses_a + pauses_b >= 1, "pauses %d %d", pauses_a, pauses_b);
    } else {
        CHECK_MSG(pauses_a >= 3 && pauses_b >= 3, "pauses %d %d", pauses_a, pauses_b);
        CHECK(order_switches >= 6);
    }
    sandbox_close(a);
    sandbox_close(b);
}

static void test_sandboxes_share_nothing(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *a = open_with(&l, &h), *b = open_with(&l, &h);
    CHECK(load(a, "leaked = 'a' string.upper = function() return 'pwned' end "
                  "return {on_message = function() return 'a' end}") == SANDBOX_DONE);
    CHECK(load(b, "return {on_message = function() return tostring(leaked) .. ('x'):upper() end}") == SANDBOX_DONE);
    CHECK(message(b, "x") == SANDBOX_DONE);
    CHECK_STREQ(reply(b), "nilX");
    sandbox_close(a);
    sandbox_close(b);
}

static void test_removed_functions_are_gone(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "local names = {'io', 'debug', 'package', 'require', 'dofile', 'loadfile', 'warn'}\n"
                   "for _, n in ipairs(names) do assert(_G[n] == nil and _ENV[n] == nil and rawget(_G, n) == nil, n) end\n"
                   "assert(string.dump == nil and os.execute == nil and os.getenv == nil and os.remove == nil)\n"
                   "assert(os.exit == nil and os.tmpname == nil and os.rename == nil)\n"
                   "assert(getmetatable('') == false)\n"
                   "assert(load(string.char(27) .. 'Lua') == nil)\n"
                   "assert(not pcall(collectgarbage, 'generational'))\n"
                   "assert(not pcall(setmetatable, {}, {__gc = true}))\n"
                   "assert(load('return _ENV')() == _G)\n"
                   "return {on_message = print}") == SANDBOX_DONE);
    CHECK_MSG(sandbox_limit_hit(sb) == SANDBOX_LIMIT_NONE, "%s", sandbox_errmsg(sb));
    sandbox_close(sb);
}

/* Each ends the turn with the error (or limit) it must: never a crash, never a hang. */
static void test_stack_bombs_end_in_errors(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    l.turn.instructions = 0;
    static const struct {
        const char *src;
        sandbox_limit_t limit;
        const char *message; /* a part of sandbox_errmsg */
    } bombs[] = {
        /* Lua's stack would reach 1M slots (16 MB): the 8 MiB cap ends it first. */
        {"local function f() return 1 + f() end f()", SANDBOX_LIMIT_MEMORY, "memory limit"},
        /* pcall catches the C stack overflow; the script goes on to its own error. */
        {"local function f() return pcall(f) end f() error('x')", SANDBOX_LIMIT_NONE, "agent:1: x"},
        /* Each coroutine level adds its position (the message is cut at the sandbox's bound)... */
        {"local co co = function() return coroutine.wrap(co)() end co()", SANDBOX_LIMIT_NONE,
         "agent:1: agent:1: agent:1: "},
        /* ...and the innermost error is the C stack's. */
        {"local co co = function() return coroutine.wrap(co)() end local ok, e = pcall(co) error(e:sub(-16), 0)",
         SANDBOX_LIMIT_NONE, "C stack overflow"},
        {"assert(load(('('):rep(1e5) .. 'x' .. (')'):rep(1e5)))", SANDBOX_LIMIT_NONE, "agent:1: C stack overflow"},
        {"local s = ('{'):rep(1e5) assert(load('return ' .. s))", SANDBOX_LIMIT_NONE, "agent:1: C stack overflow"},
        /* The error object's __index would spin forever: the host never touches it. */
        {"string.gsub(('x'):rep(100), 'x', function() error(setmetatable({}, {__index = function() while true do end end})) end)",
         SANDBOX_LIMIT_NONE, "(error object is a table value)"},
    };
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        sandbox_t *sb = open_with(&l, &h);
        CHECK_MSG(load(sb, bombs[i].src) == SANDBOX_FAILED, "%s", bombs[i].src);
        CHECK_MSG(sandbox_limit_hit(sb) == bombs[i].limit, "%s: limit '%s'", bombs[i].src,
                  sandbox_limit_name(sandbox_limit_hit(sb)));
        CHECK_CONTAINS(sandbox_errmsg(sb), bombs[i].message);
        sandbox_close(sb);
    }
}

static void test_idle_sandbox_is_small(void) {
    sandbox_limits_t l = tight();
    sandbox_t *sb = sandbox_open(&l, NULL, NULL);
    sandbox_stats_t st;
    sandbox_stats(sb, &st);
    CHECK_MSG(st.memory_bytes <= 64 * 1024, "idle sandbox uses %zu bytes", st.memory_bytes);
    sandbox_close(sb);
}

static void test_too_small_memory_cap_fails_cleanly(void) {
    sandbox_limits_t l = tight();
    l.memory_bytes = 4096;
    acc_err err = {0};
    CHECK(sandbox_open(&l, NULL, &err) == NULL);
    CHECK(err.code == ACC_ELIMIT);
    CHECK_MSG(strstr(err.msg, "memory cap of 4096 bytes") != NULL, "%s", err.msg);
}


/* ---- the API a server builds on: setup, codes, backpressure, per-turn limits, threads ---- */

static void host_handler(int sig) { (void)sig; }

/* Runs first, before any sandbox exists. */
static void test_setup_claims_one_free_signal(void) {
    acc_err err = {0};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = host_handler;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGRTMIN + 5, &sa, NULL) == 0); /* the host's own */
    CHECK(sandbox_setup(&(sandbox_setup_t){.watchdog_signal = SIGRTMIN + 5}, &err) == ACC_EBUSY);
    CHECK_MSG(strstr(err.msg, "already has a handler") != NULL, "%s", err.msg);
    CHECK(sandbox_setup(&(sandbox_setup_t){.watchdog_signal = SIGUSR1}, &err) == ACC_EINVAL);
    CHECK(sandbox_setup(NULL, &err) == ACC_OK);
    CHECK(sandbox_setup(&(sandbox_setup_t){.watchdog_signal = SIGRTMIN + 3}, &err) == ACC_OK); /* the same */
    CHECK(sandbox_setup(&(sandbox_setup_t){.watchdog_signal = SIGRTMIN + 4}, &err) == ACC_EMISUSE);
    struct sigaction now;
    CHECK(sigaction(SIGRTMIN + 3, NULL, &now) == 0 && now.sa_handler != SIG_DFL);
    CHECK(sigaction(SIGRTMIN + 5, NULL, &now) == 0 && now.sa_handler == host_handler); /* untouched */
}

static void test_distinct_failures_have_distinct_codes(void) {
    fake_host_t h = {.answer_later = 1};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(sandbox_run(sb) == SANDBOX_FAILED && sandbox_errcode(sb) == ACC_EMISUSE); /* no turn */
    CHECK(sandbox_start_load(sb, "=agent", "x = = 1", 7, NULL) == ACC_ESCRIPT);
    CHECK(sandbox_errcode(sb) == ACC_ESCRIPT);
    CHECK(load(sb, "error('boom')") == SANDBOX_FAILED);
    CHECK(sandbox_errcode(sb) == ACC_ESCRIPT && sandbox_limit_hit(sb) == SANDBOX_LIMIT_NONE);
    CHECK(load(sb, "return {on_message = function(s, t)\n"
                   "  if t == 'spin' then while true do end end\n"
                   "  return models.call('m', {}).text end}") == SANDBOX_DONE);
    CHECK(sandbox_errcode(sb) == ACC_OK);
    CHECK(sandbox_start_load(sb, "=again", "return {}", 9, NULL) == ACC_EMISUSE);
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    CHECK(sandbox_start_message(sb, "y", 1, NULL) == ACC_EMISUSE); /* a turn is under way */
    CHECK_STREQ(sandbox_errmsg(sb), "a turn is already under way");
    CHECK(sandbox_run_to_end(sb) == SANDBOX_FAILED); /* the provider never answered */
    CHECK(sandbox_errcode(sb) == ACC_EMISUSE);
    CHECK(sandbox_call_done(sb, h.last_id, 1, "{}", 2) == ACC_EMISUSE); /* late */
    CHECK(message(sb, "spin") == SANDBOX_FAILED);
    CHECK(sandbox_errcode(sb) == ACC_ELIMIT && sandbox_limit_hit(sb) == SANDBOX_LIMIT_INSTRUCTIONS);
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK && sandbox_run(sb) == SANDBOX_WAITING);
    CHECK(sandbox_cancel(sandbox_id(sb)) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_FAILED);
    CHECK(sandbox_errcode(sb) == ACC_ECANCELLED && sandbox_limit_hit(sb) == SANDBOX_LIMIT_CANCELLED);
    sandbox_close(sb);

    /* Compiling past the memory cap is a limit, not a script error. */
    l.memory_bytes = 1u << 20;
    sb = open_with(&l, &h);
    size_t n = 600000;
    char *src = malloc(n * 2 + 16);
    strcpy(src, "return {");
    for (size_t i = 0; i < n; i++) memcpy(src + 8 + 2 * i, "1,", 2);
    strcpy(src + 8 + 2 * n, "}");
    CHECK(sandbox_start_load(sb, "=big", src, strlen(src), NULL) == ACC_ELIMIT);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_MEMORY);
    free(src);
    sandbox_close(sb);
}

/* A call answered with text that cannot be copied fails in the agent at once, not at the deadline. */
static void test_call_done_out_of_memory_does_not_leave_the_turn_waiting(void) {
    fake_host_t h = {.answer_later = 1};
    sandbox_limits_t l = tight();
    l.turn.time_ms = 60000;
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function()\n"
                   "  local ok, e = pcall(models.call, 'm', {}) return tostring(e) end}") == SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK && sandbox_run(sb) == SANDBOX_WAITING);
    double t0 = test_now_ms();
    CHECK(sandbox_call_done(sb, h.last_id, 1, "x", (size_t)1 << 50) == ACC_ENOMEM); /* malloc fails */
    CHECK(sandbox_call_done(sb, h.last_id, 1, "{}", 2) == ACC_EMISUSE);             /* answered */
    CHECK(sandbox_run(sb) == SANDBOX_DONE);
    CHECK(test_now_ms() - t0 < test_scaled_ms(5000));
    CHECK_MSG(strstr(reply(sb), "out of host memory") != NULL, "%s", reply(sb));
    sandbox_close(sb);
}

/* An output callback that pauses after every piece, or refuses. */
typedef struct queue_host {
    sandbox_output_verdict_t verdict;
    char out[256];
    size_t len;
} queue_host_t;

static sandbox_output_verdict_t queue_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *s,
                                             size_t len) {
    queue_host_t *q = ud;
    (void)sb, (void)kind;
    if (q->len + len < sizeof q->out) {
        memcpy(q->out + q->len, s, len);
        q->len += len;
        q->out[q->len] = 0;
    }
    return q->verdict;
}

static sandbox_t *open_queue(queue_host_t *q) {
    sandbox_limits_t l = tight();
    sandbox_provider_t p = {.ud = q, .output = queue_output};
    return sandbox_open(&l, &p, NULL);
}

static void test_output_backpressure_pauses_the_turn(void) {
    queue_host_t q = {.verdict = SANDBOX_OUTPUT_PAUSE};
    sandbox_t *sb = open_queue(&q);
    CHECK(load(sb, "return {on_message = function(s, t)\n"
                   "  if t == 'plain' then for i = 1, 3 do session.send('p' .. i) end return 'r' end\n"
                   "  if t == 'nested' then\n"
                   "    coroutine.wrap(function() session.send('a') session.send('b') end)() return 'r' end\n"
                   "  table.sort({3, 2, 1}, function(a, b) session.send('c') return a < b end)\n"
                   "  session.send('after') return 'r' end}") == SANDBOX_DONE);
    /* Plain Lua: the turn stops right after each piece. */
    CHECK(sandbox_start_message(sb, "plain", 5, NULL) == ACC_OK);
    const char *want[] = {"p1", "p1p2", "p1p2p3"};
    for (int i = 0; i < 3; i++) {
        CHECK(sandbox_run(sb) == SANDBOX_BLOCKED);
        CHECK_STREQ(q.out, want[i]);
    }
    CHECK(sandbox_run(sb) == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "r");
    /* Inside the agent's own coroutine: the block passes through it to the host. */
    q.len = 0;
    q.out[0] = 0;
    CHECK(sandbox_start_message(sb, "nested", 6, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_BLOCKED);
    CHECK_STREQ(q.out, "a");
    CHECK(sandbox_run(sb) == SANDBOX_BLOCKED);
    CHECK_STREQ(q.out, "ab");
    CHECK(sandbox_run(sb) == SANDBOX_DONE);
    /* Inside a sort comparator nothing can yield: the turn stops soon after the sort returns. */
    q.len = 0;
    q.out[0] = 0;
    CHECK(sandbox_start_message(sb, "sort", 4, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_BLOCKED);
    CHECK_MSG(strspn(q.out, "c") >= 2, "%s", q.out);
    sandbox_status_t st = SANDBOX_BLOCKED;
    for (int i = 0; i < 3 && st == SANDBOX_BLOCKED; i++) st = sandbox_run(sb);
    CHECK(st == SANDBOX_DONE);
    CHECK_MSG(q.len > 5 && strcmp(q.out + q.len - 5, "after") == 0, "%s", q.out);
    /* A host with no queue to wait for runs to the end through the blocks. */
    CHECK(message(sb, "plain") == SANDBOX_DONE);
    sandbox_stats_t stats;
    sandbox_stats(sb, &stats);
    CHECK(stats.pauses >= 8);
    sandbox_close(sb);
}

static void test_output_refused_fails_the_turn(void) {
    queue_host_t q = {.verdict = SANDBOX_OUTPUT_REFUSE};
    sandbox_t *sb = open_queue(&q);
    CHECK(load(sb, "return {on_message = function()\n"
                   "  for i = 1, 3 do pcall(session.send, 'x') pcall(print, 'y') end return 'survived' end}") ==
          SANDBOX_DONE);
    CHECK(message(sb, "go") == SANDBOX_FAILED);
    CHECK(sandbox_errcode(sb) == ACC_EBUSY && sandbox_limit_hit(sb) == SANDBOX_LIMIT_REFUSED);
    CHECK_STREQ(q.out, "x"); /* nothing after the refusal */
    q.verdict = SANDBOX_OUTPUT_OK; /* the queue drained: the next turn runs */
    CHECK(message(sb, "go") == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "survived");
    sandbox_close(sb);
}

static void test_each_turn_has_its_own_limits(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function(s, t)\n"
                   "  if t == 'spin' then while true do end end\n"
                   "  local n = 0 for i = 1, 100000 do n = n + i end\n"
                   "  session.send(('o'):rep(200)) return tostring(n) end}") == SANDBOX_DONE);
    sandbox_turn_limits_t poor = l.turn;
    poor.instructions = 10000; /* what this account can pay for */
    CHECK(sandbox_start_message(sb, "x", 1, &poor) == ACC_OK);
    CHECK(sandbox_run_to_end(sb) == SANDBOX_FAILED && sandbox_limit_hit(sb) == SANDBOX_LIMIT_INSTRUCTIONS);
    sandbox_stats_t st;
    sandbox_stats(sb, &st);
    CHECK_MSG(st.instructions < 20000, "%llu", (unsigned long long)st.instructions);
    CHECK(message(sb, "x") == SANDBOX_DONE); /* NULL: the sandbox's own limits again */
    CHECK_STREQ(reply(sb), "5000050000");
    sandbox_turn_limits_t quiet = l.turn;
    quiet.output_bytes = 100;
    CHECK(sandbox_start_message(sb, "x", 1, &quiet) == ACC_OK);
    CHECK(sandbox_run_to_end(sb) == SANDBOX_FAILED && sandbox_limit_hit(sb) == SANDBOX_LIMIT_OUTPUT);
    sandbox_turn_limits_t brief = l.turn;
    brief.instructions = 0;
    brief.time_ms = 100;
    uint64_t before = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    before = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    CHECK(sandbox_start_message(sb, "spin", 4, &brief) == ACC_OK);
    uint64_t deadline = sandbox_turn_deadline_ns(sb);
    CHECK(deadline >= before + 100000000u && deadline < before + 1000000000u);
    CHECK(sandbox_run_to_end(sb) == SANDBOX_FAILED && sandbox_limit_hit(sb) == SANDBOX_LIMIT_TIME);
    CHECK(sandbox_turn_deadline_ns(sb) == 0); /* no turn */
    sandbox_turn_limits_t endless = l.turn;
    endless.time_ms = 0; /* every turn needs a wall-time bound */
    CHECK(sandbox_start_message(sb, "x", 1, &endless) == ACC_EINVAL);
    sandbox_close(sb);
    acc_err err = {0};
    l.turn.time_ms = 0;
    CHECK(sandbox_open(&l, NULL, &err) == NULL && err.code == ACC_EINVAL);
}

/* A provider that tries everything the rules forbid from inside its callbacks. */
typedef struct rude_host {
    int refused, calls;
    sandbox_t *other;
    sandbox_status_t other_ran;
    int other_code;
} rude_host_t;

static void try_forbidden(rude_host_t *r, sandbox_t *sb) {
    r->refused += sandbox_run(sb) == SANDBOX_FAILED && sandbox_errcode(sb) == ACC_EMISUSE;
    r->refused += sandbox_run_to_end(sb) == SANDBOX_FAILED && sandbox_errcode(sb) == ACC_EMISUSE;
    r->refused += sandbox_start_message(sb, "x", 1, NULL) == ACC_EMISUSE;
    r->refused += sandbox_start_load(sb, "=x", "return {}", 9, NULL) == ACC_EMISUSE;
    r->refused += sandbox_close(sb) == ACC_EMISUSE;
}

static int rude_start(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    rude_host_t *r = ud;
    r->calls++;
    try_forbidden(r, sb);
    if (r->other) { /* another sandbox's turn, run from inside this one's callback */
        r->other_ran = sandbox_run(r->other);
        r->other_code = sandbox_errcode(r->other);
    }
    sandbox_stats_t st;
    sandbox_stats(sb, &st); /* allowed */
    return sandbox_call_done(sb, call->id, 1, "{\"n\":1}", 7) == ACC_OK ? 0 : -1;
}

static sandbox_output_verdict_t rude_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *s,
                                            size_t len) {
    (void)kind, (void)s, (void)len;
    try_forbidden(ud, sb);
    return SANDBOX_OUTPUT_OK;
}

static void test_callbacks_cannot_reenter(void) {
    rude_host_t r = {0};
    sandbox_limits_t l = tight();
    sandbox_provider_t p = {.ud = &r, .start_call = rude_start, .output = rude_output};
    sandbox_t *sb = sandbox_open(&l, &p, NULL);
    CHECK(load(sb, "return {on_message = function() print('hi') return tostring(models.call('m', {}).n) end}") ==
          SANDBOX_DONE);
    CHECK(message(sb, "x") == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "1");
    CHECK(r.calls == 1 && r.refused == 10);
    /* Nor can a callback run another sandbox's turn on the thread: the first turn's time limit
     * would go unwatched. Refused; the first turn still stops at its limit; the other still runs
     * once called properly. */
    fake_host_t h = {0};
    sandbox_t *other = open_with(&l, &h);
    const char *other_src = "return {on_message = function() return 'other' end}";
    CHECK(sandbox_start_load(other, "=other", other_src, strlen(other_src), NULL) == ACC_OK);
    r.other = other;
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK);
    CHECK(sandbox_run_to_end(sb) == SANDBOX_DONE);
    CHECK(r.other_ran == SANDBOX_FAILED && r.other_code == ACC_EMISUSE);
    r.other = NULL;
    CHECK(sandbox_run_to_end(other) == SANDBOX_DONE);
    CHECK(message(other, "y") == SANDBOX_DONE);
    CHECK_STREQ(reply(other), "other");
    sandbox_close(other);
    sandbox_close(sb);
    l.turn.instructions = 0;
    l.turn.time_ms = 200;
    r = (rude_host_t){0};
    sandbox_provider_t p2 = {.ud = &r, .start_call = rude_start};
    sb = sandbox_open(&l, &p2, NULL);
    other = open_with(&l, &h);
    CHECK(load(other, "return {on_message = function() return 'x' end}") == SANDBOX_DONE);
    CHECK(sandbox_start_message(other, "y", 1, NULL) == ACC_OK);
    r.other = other;
    CHECK(load(sb, "return {on_message = function() models.call('m', {}) while true do end end}") == SANDBOX_DONE);
    double t0 = test_now_ms();
    CHECK(message(sb, "x") == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_TIME);
    CHECK_MSG(test_now_ms() - t0 < test_scaled_ms(5000), "stopped after %.0f ms", test_now_ms() - t0);
    CHECK(r.other_ran == SANDBOX_FAILED && r.other_code == ACC_EMISUSE);
    sandbox_close(other);
    sandbox_close(sb);
}

/* Answers every call from a thread of its own, at once, racing the owner's sandbox_run. */
typedef struct thread_host {
    sandbox_t *sb;
    uint64_t id;
    pthread_t answerer;
    int started;
    _Atomic int answered;
} thread_host_t;

static void *answer_from_thread(void *arg) {
    thread_host_t *t = arg;
    sandbox_call_done(t->sb, t->id, 1, "{\"n\":1}", 7);
    atomic_store(&t->answered, 1);
    return NULL;
}

static int thread_start(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    thread_host_t *t = ud;
    if (t->started) pthread_join(t->answerer, NULL);
    t->sb = sb;
    t->id = call->id;
    atomic_store(&t->answered, 0);
    t->started = pthread_create(&t->answerer, NULL, answer_from_thread, t) == 0;
    return t->started ? 0 : -1;
}

static void test_call_done_from_another_thread(void) {
    thread_host_t t = {0};
    sandbox_limits_t l = tight();
    l.turn.time_ms = 120000;
    sandbox_provider_t p = {.ud = &t, .start_call = thread_start};
    sandbox_t *sb = sandbox_open(&l, &p, NULL);
    CHECK(load(sb, "return {on_message = function()\n"
                   "  local n = 0 for i = 1, 200 do n = n + models.call('m', {}).n end return tostring(n) end}") ==
          SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK);
    sandbox_status_t st;
    while ((st = sandbox_run(sb)) == SANDBOX_WAITING)
        while (!atomic_load(&t.answered)) sched_yield();
    CHECK_MSG(st == SANDBOX_DONE, "%s", sandbox_errmsg(sb));
    CHECK_STREQ(reply(sb), "200");
    if (t.started) pthread_join(t.answerer, NULL);
    sandbox_close(sb);
}

/* Cancels by id, as fast as it can, until told to stop; counts what it was told. */
typedef struct canceller {
    uint64_t id;
    _Atomic int stop;
    _Atomic long ok, not_found;
} canceller_t;

static void *cancel_loop(void *arg) {
    canceller_t *c = arg;
    while (!atomic_load(&c->stop)) {
        if (sandbox_cancel(c->id) == ACC_OK) atomic_fetch_add(&c->ok, 1);
        else atomic_fetch_add(&c->not_found, 1);
        /* A lock taken back to back would starve the owner's open and close (glibc's mutex is not
         * fair); a server cancels far less often than every 20 µs. */
        nanosleep(&(struct timespec){0, 20000}, NULL);
    }
    return NULL;
}

/* sandbox_cancel against sandbox_close (run under `zig build tsan`): a cancel spinning on another
 * thread before, during and after the close never touches freed memory, and a stale id never
 * reaches the sandbox opened next (which may well reuse the address). */
static void test_cancel_races_close(void) {
    sandbox_limits_t l = tight();
    l.turn.instructions = 0;
    l.turn.time_ms = 10000;
    int rounds = test_slow_tool() ? 5 : 40;
    for (int r = 0; r < rounds; r++) {
        fake_host_t h = {0};
        sandbox_t *sb = open_with(&l, &h);
        CHECK(load(sb, "return {on_message = function() while true do end end}") == SANDBOX_DONE);
        canceller_t c = {.id = sandbox_id(sb)};
        pthread_t t;
        pthread_create(&t, NULL, cancel_loop, &c);
        CHECK(message(sb, "spin") == SANDBOX_FAILED);
        CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_CANCELLED);
        if (r % 2) CHECK(sandbox_start_message(sb, "spin", 4, NULL) == ACC_OK); /* close with a turn under way */
        CHECK(sandbox_close(sb) == ACC_OK);
        long seen = atomic_load(&c.not_found);
        sandbox_t *next = open_with(&l, &h);
        CHECK(load(next, "return {on_message = function() return 'untouched' end}") == SANDBOX_DONE);
        CHECK(message(next, "x") == SANDBOX_DONE);
        CHECK_STREQ(reply(next), "untouched");
        while (atomic_load(&c.not_found) == seen) sched_yield(); /* it did see the id gone */
        atomic_store(&c.stop, 1);
        pthread_join(t, NULL);
        CHECK(atomic_load(&c.ok) > 0);
        CHECK(sandbox_close(next) == ACC_OK);
    }
    /* A cancel between turns does nothing to the next turn. */
    fake_host_t h = {0};
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function() return 'ok' end}") == SANDBOX_DONE);
    CHECK(sandbox_cancel(sandbox_id(sb)) == ACC_OK);
    CHECK(message(sb, "x") == SANDBOX_DONE);
    uint64_t id = sandbox_id(sb);
    sandbox_close(sb);
    CHECK(sandbox_cancel(id) == ACC_ENOTFOUND);
    CHECK(sandbox_cancel(0) == ACC_ENOTFOUND);
}

/* More turns executing at once than the old fixed table held (256), half of them on threads that
 * block every signal: every one is stopped at its time limit. */
#define CROWD 300
typedef struct crowd_member {
    int block_signals;
    sandbox_status_t status;
    sandbox_limit_t limit;
    double ms;
} crowd_member_t;

static _Atomic int crowd_ready;

static void *crowd_turn(void *arg) {
    crowd_member_t *m = arg;
    if (m->block_signals) {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
    }
    sandbox_limits_t l = tight();
    l.memory_bytes = 1u << 20;
    l.turn.instructions = 0;
    l.turn.time_ms = 300;
    fake_host_t h = {0};
    sandbox_t *sb = open_with(&l, &h);
    m->status = SANDBOX_DONE;
    if (!sb) return NULL;
    atomic_fetch_add(&crowd_ready, 1);
    while (atomic_load(&crowd_ready) < CROWD) sched_yield(); /* all at once */
    double t0 = test_now_ms();
    m->status = load(sb, "while true do end");
    m->ms = test_now_ms() - t0;
    m->limit = sandbox_limit_hit(sb);
    sandbox_close(sb);
    return NULL;
}

static void test_every_executing_turn_is_watched(void) {
    static crowd_member_t crowd[CROWD];
    pthread_t threads[CROWD];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1u << 20);
    atomic_store(&crowd_ready, 0);
    int started = 0;
    for (int i = 0; i < CROWD; i++) {
        crowd[i] = (crowd_member_t){.block_signals = i % 2};
        if (pthread_create(&threads[i], &attr, crowd_turn, &crowd[i]) != 0) break;
        started++;
    }
    pthread_attr_destroy(&attr);
    CHECK(started == CROWD);
    if (started < CROWD) atomic_store(&crowd_ready, CROWD); /* let the started ones go */
    double worst = 0;
    int stopped = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        stopped += crowd[i].status == SANDBOX_FAILED && crowd[i].limit == SANDBOX_LIMIT_TIME;
        if (crowd[i].ms > worst) worst = crowd[i].ms;
    }
    CHECK_MSG(stopped == CROWD, "%d of %d turns stopped by their time limit", stopped, CROWD);
    CHECK_MSG(worst < test_scaled_ms(10000), "worst %.0f ms", worst);
    printf("# sandbox: %d turns spinning at once (300 ms limit) on %ld cores: the last stopped after %.0f ms\n",
           CROWD, sysconf(_SC_NPROCESSORS_ONLN), worst);
}

int main(void) {
    RUN(test_setup_claims_one_free_signal);
    RUN(test_message_round_trip);
    RUN(test_script_must_return_agent);
    RUN(test_errors_name_their_line);
    RUN(test_error_objects_are_never_stringified_by_the_host);
    RUN(test_instruction_limit);
    RUN(test_time_limit_without_instruction_counting);
    RUN(test_memory_limit_is_exact_and_uncatchable);
    RUN(test_output_limit);
    RUN(test_sandbox_usable_after_a_limit);
    RUN(test_turn_threads_are_reused_unseen);
    RUN(test_host_call_answered_later);
    RUN(test_prefetch_changes_nothing);
    RUN(test_answers_decode_alike_whatever_their_shapes);
    RUN(test_answer_arrays_refuse_a_poisoned_metatable);
    RUN(test_requests_reach_the_host_whole_whatever_their_sizes);
    RUN(test_host_call_errors_reach_the_agent);
    RUN(test_host_call_inside_c_boundary_is_a_clear_error);
    RUN(test_wait_counts_against_time_and_cancel);
    RUN(test_cancel_from_another_thread);
    RUN(test_time_slices_interleave_two_agents);
    RUN(test_sandboxes_share_nothing);
    RUN(test_removed_functions_are_gone);
    RUN(test_stack_bombs_end_in_errors);
    RUN(test_idle_sandbox_is_small);
    RUN(test_too_small_memory_cap_fails_cleanly);
    RUN(test_distinct_failures_have_distinct_codes);
    RUN(test_call_done_out_of_memory_does_not_leave_the_turn_waiting);
    RUN(test_output_backpressure_pauses_the_turn);
    RUN(test_output_refused_fails_the_turn);
    RUN(test_each_turn_has_its_own_limits);
    RUN(test_callbacks_cannot_reenter);
    RUN(test_call_done_from_another_thread);
    RUN(test_cancel_races_close);
    RUN(test_every_executing_turn_is_watched);
    return check_finish("sandbox");
}
