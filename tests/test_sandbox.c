/*
 * test_sandbox.c: the sandbox's contract, through its public API (sandbox/sandbox.h).
 *
 * Limits end turns and cannot be caught; host calls wait and resume, in the agent's own coroutines
 * too; time slicing pauses and resumes a long turn; sandboxes share nothing; a sandbox stays usable
 * after a turn hit a limit.
 */
#include <pthread.h>
#include <stdlib.h>
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

static void fake_output(void *ud, sandbox_t *sb, sandbox_output_kind_t kind, const char *s, size_t len) {
    fake_host_t *h = ud;
    (void)sb, (void)kind;
    if (h->out_len + len < sizeof h->out) {
        memcpy(h->out + h->out_len, s, len);
        h->out_len += len;
        h->out[h->out_len] = 0;
    }
}

static sandbox_limits_t tight(void) {
    sandbox_limits_t l = sandbox_default_limits();
    l.memory_bytes = 8u << 20;
    l.instructions = 2000000;
    l.time_ms = 2000;
    l.output_bytes = 4096;
    return l;
}

static sandbox_t *open_with(const sandbox_limits_t *l, fake_host_t *h) {
    sandbox_provider_t p = {.ud = h, .start_call = fake_start, .output = fake_output};
    return sandbox_open(l, &p);
}

/* Loads src; returns the load turn's status. */
static sandbox_status_t load(sandbox_t *sb, const char *src) {
    if (sandbox_start_load(sb, "=agent", src, strlen(src)) != 0) return SANDBOX_FAILED;
    return sandbox_run_to_end(sb);
}

static sandbox_status_t message(sandbox_t *sb, const char *text) {
    if (sandbox_start_message(sb, text, strlen(text)) != 0) return SANDBOX_FAILED;
    return sandbox_run_to_end(sb);
}

static const char *reply(sandbox_t *sb) {
    const char *r = sandbox_reply(sb, NULL);
    return r ? r : "(none)";
}

static double ms_since(struct timespec t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
}

/* Runs the load turn of src under l and checks it fails on `want`, within max_ms. */
static void expect_limit(const sandbox_limits_t *limits, const char *src, sandbox_limit_t want, double max_ms) {
    fake_host_t h = {0};
    sandbox_limits_t slow = *limits;
    const sandbox_limits_t *l = limits;
    if (test_slow_tool() && want != SANDBOX_LIMIT_TIME && slow.time_ms) {
        slow.time_ms = (uint64_t)test_scaled_ms((double)slow.time_ms); /* the other limits still come first */
        l = &slow;
    }
    sandbox_t *sb = open_with(l, &h);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sandbox_status_t st = load(sb, src);
    double ms = ms_since(t0);
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
    CHECK(sandbox_start_message(sb, "x", 1) == -1); /* nothing loaded */
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
    CHECK(sandbox_start_load(sb, "=agent", "x = = 1", 7) == -1);
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
    l.instructions = 0;
    l.time_ms = 150;
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
    l.output_bytes = 100;
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

static void test_host_call_answered_later(void) {
    fake_host_t h = {.answer_later = 1};
    sandbox_limits_t l = tight();
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function(s, t)\n"
                   "  local r = models.call('m1', {prompt = t, max_tokens = 5})\n"
                   "  local co = coroutine.wrap(function() return datasets.query('d1', 'q', {limit = 2}).n end)\n"
                   "  return r.text .. ':' .. co() end}") == SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "hey", 3) == 0);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    CHECK(h.calls == 1 && h.last_kind == SANDBOX_CALL_MODEL);
    CHECK_STREQ(h.last_name, "m1");
    CHECK_STREQ(h.last_json, "{\"max_tokens\":5,\"prompt\":\"hey\"}");
    CHECK(sandbox_run(sb) == SANDBOX_WAITING); /* nothing answered yet */
    const char *a = "{\"text\":\"first\"}";
    CHECK(sandbox_call_done(sb, h.last_id + 1, 1, a, strlen(a)) == -1); /* not the waiting call */
    CHECK(sandbox_call_done(sb, h.last_id, 1, a, strlen(a)) == 0);
    CHECK(sandbox_call_done(sb, h.last_id, 1, a, strlen(a)) == -1); /* once */
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);       /* now inside the agent's coroutine */
    CHECK(h.calls == 2 && h.last_kind == SANDBOX_CALL_DATASET);
    CHECK_STREQ(h.last_json, "{\"opts\":{\"limit\":2},\"text\":\"q\"}");
    a = "{\"n\":7}";
    CHECK(sandbox_call_done(sb, h.last_id, 1, a, strlen(a)) == 0);
    CHECK(sandbox_run(sb) == SANDBOX_DONE);
    CHECK_STREQ(reply(sb), "first:7");
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
    CHECK(sandbox_start_message(sb, "x", 1) == 0);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    CHECK(sandbox_call_done(sb, h.last_id, 0, "upstream timed out", 18) == 0);
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
    l.time_ms = 50;
    sandbox_t *sb = open_with(&l, &h);
    CHECK(load(sb, "return {on_message = function() return models.call('m', {}).text end}") == SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "x", 1) == 0);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    struct timespec ts = {0, 80 * 1000000};
    nanosleep(&ts, NULL);
    CHECK(sandbox_run(sb) == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_TIME);
    uint64_t late = h.last_id;

    CHECK(sandbox_start_message(sb, "x", 1) == 0);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING);
    CHECK(sandbox_call_done(sb, late, 1, "{}", 2) == -1); /* the failed turn's call: dropped */
    sandbox_cancel(sb);
    CHECK(sandbox_run(sb) == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_CANCELLED);
    sandbox_close(sb);
}

static void *cancel_later(void *arg) {
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    sandbox_cancel(arg);
    return NULL;
}

/* A turn spinning in Lua with no instruction counting and a distant deadline is cancellable from
 * another thread. */
static void test_cancel_from_another_thread(void) {
    fake_host_t h = {0};
    sandbox_limits_t l = tight();
    l.instructions = 0;
    l.time_ms = 600000;
    sandbox_t *sb = open_with(&l, &h);
    CHECK(sandbox_start_load(sb, "=agent", "while true do end", 17) == 0);
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, sb);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(sandbox_run(sb) == SANDBOX_FAILED);
    CHECK(sandbox_limit_hit(sb) == SANDBOX_LIMIT_CANCELLED);
    CHECK(ms_since(t0) < test_scaled_ms(1000));
    pthread_join(t, NULL);
    sandbox_close(sb);
}

static void test_time_slices_interleave_two_agents(void) {
    sandbox_limits_t l = tight();
    /* Under a slow tool: fewer iterations, a later deadline. */
    long long iterations = (long long)(30000000 / test_time_scale());
    l.instructions = 0;
    l.time_ms = (uint64_t)test_scaled_ms(5000);
    l.slice_ms = 5;
    fake_host_t ha = {0}, hb = {0};
    sandbox_t *a = open_with(&l, &ha), *b = open_with(&l, &hb);
    char src[300];
    snprintf(src, sizeof src,
             "return {on_message = function(s, t)\n"
             "  local co = coroutine.wrap(function() local n = 0 for i = 1, %lld do n = n + i %% 7 end return n end)\n"
             "  return tostring(co()) end}", iterations);
    CHECK(load(a, src) == SANDBOX_DONE && load(b, src) == SANDBOX_DONE);
    CHECK(sandbox_start_message(a, "x", 1) == 0 && sandbox_start_message(b, "x", 1) == 0);
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
    l.instructions = 0;
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
    sandbox_t *sb = sandbox_open(&l, NULL);
    sandbox_stats_t st;
    sandbox_stats(sb, &st);
    CHECK_MSG(st.memory_bytes <= 64 * 1024, "idle sandbox uses %zu bytes", st.memory_bytes);
    sandbox_close(sb);
}

static void test_too_small_memory_cap_fails_cleanly(void) {
    sandbox_limits_t l = tight();
    l.memory_bytes = 4096;
    CHECK(sandbox_open(&l, NULL) == NULL);
}

int main(void) {
    RUN(test_message_round_trip);
    RUN(test_script_must_return_agent);
    RUN(test_errors_name_their_line);
    RUN(test_error_objects_are_never_stringified_by_the_host);
    RUN(test_instruction_limit);
    RUN(test_time_limit_without_instruction_counting);
    RUN(test_memory_limit_is_exact_and_uncatchable);
    RUN(test_output_limit);
    RUN(test_sandbox_usable_after_a_limit);
    RUN(test_host_call_answered_later);
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
    return check_finish("sandbox");
}
