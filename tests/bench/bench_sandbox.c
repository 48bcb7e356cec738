/*
 * bench_sandbox.c: what a sandbox costs, beside bare Lua doing the same.
 *
 *  1. create + close of a sandbox with the agent API loaded, vs luaL_newstate + luaL_openlibs, and a
 *     whole turn (start + run) of an agent that answers at once;
 *  2. memory of an idle sandbox, vs the bare state;
 *  3. a host call from Lua (models.call answered at once, JSON both ways), vs a bare Lua -> C call;
 *  4. a CPU-bound script: bare Lua, sandbox timed by the watchdog only (--instr-limit 0), and
 *     sandbox counting instructions (the default), on a tight loop and on a mixed workload;
 *  5. resident memory (RSS) per sandbox: idle after loading an agent, and after a script that
 *     pins one object per page in size class after size class (the fragmentation attack of issue
 *     15), against the bound: the region reserved for the heap, 3x the cap plus 1/64 and 128 KiB;
 *  6. each bounded string and table function in a loop of its own, against stock Lua's;
 *  7. the Lua heap's allocator (sandbox/region.c) against jemalloc: the same sandbox on its region
 *     and on jemalloc (no cap) on allocation-heavy scripts and on turns that each drop 100 KiB,
 *     create + close, and idle sandboxes by the ten thousand, all open at once.
 * Run: zig build bench -Doptimize=ReleaseFast (BENCH_ALLOC_ONLY=1: the rows of 7 alone, or some of
 * them: BENCH_ALLOC_ONLY=create,work,turns,idle;
 * BENCH_RSS_ONLY=1: those of 5; BENCH_BOUNDED_ONLY=1: those of 6).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "sandbox/sandbox.h"
#include "tests/util.h"

/* What run_script and run_bare time: wall time, or this thread's CPU time for the rows that
 * compare two pieces of code doing the same work (other load on the machine then cannot land in
 * one of them). */
static bool bench_cpu_time;

static double bench_now_s(void) { return bench_cpu_time ? test_thread_cpu_s() : test_now_s(); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

#define ROUNDS 3000

static void bench_create(void) {
    static double t[ROUNDS];
    sandbox_limits_t l = sandbox_default_limits();
    for (int i = 0; i < ROUNDS; i++) {
        double t0 = test_now_s();
        sandbox_t *sb = sandbox_open(&l, NULL, NULL);
        sandbox_close(sb);
        t[i] = test_now_s() - t0;
    }
    double sandbox_us = median(t, ROUNDS) * 1e6;
    for (int i = 0; i < ROUNDS; i++) {
        double t0 = test_now_s();
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        lua_close(L);
        t[i] = test_now_s() - t0;
    }
    double bare_us = median(t, ROUNDS) * 1e6;
    printf("| create + close, median of %d | %.1f µs | %.1f µs | %.2fx |\n", ROUNDS, sandbox_us, bare_us,
           sandbox_us / bare_us);

    sandbox_t *sb = sandbox_open(&l, NULL, NULL);
    sandbox_stats_t st;
    sandbox_stats(sb, &st);
    sandbox_close(sb);
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    size_t bare = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    lua_close(L);
    printf("| idle memory (Lua heap) | %.1f KiB | %.1f KiB | %.2fx |\n", (double)st.memory_bytes / 1024,
           (double)bare / 1024, (double)st.memory_bytes / (double)bare);
}

static int answer_now(void *ud, sandbox_t *sb, const sandbox_call_t *call) {
    (void)ud;
    static const char a[] = "{\"text\":\"ok\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}";
    sandbox_call_done(sb, call->id, 1, a, sizeof a - 1);
    return 0;
}

static double run_script(const sandbox_limits_t *l, const char *src) {
    sandbox_provider_t p = {.start_call = answer_now};
    sandbox_t *sb = sandbox_open(l, &p, NULL);
    double t0 = bench_now_s();
    if (sandbox_start_load(sb, "=bench", src, strlen(src), NULL) != ACC_OK || sandbox_run_to_end(sb) != SANDBOX_DONE) {
        fprintf(stderr, "bench script failed: %s\n", sandbox_errmsg(sb));
        exit(1);
    }
    double t = bench_now_s() - t0;
    sandbox_close(sb);
    return t;
}

static double run_bare(const char *src) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    double t0 = bench_now_s();
    if (luaL_loadstring(L, src) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "bare script failed: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    double t = bench_now_s() - t0;
    lua_close(L);
    return t;
}

static int bare_c_function(lua_State *L) {
    lua_pushinteger(L, luaL_checkinteger(L, 1) + 1);
    return 1;
}

#define CALLS 200000
#define TURNS 200000

/* What a server pays per message: start a turn, run it to its end (the watchdog watches it while it
 * executes), read the reply. The agent answers with what it got. */
static void bench_turn(void) {
    sandbox_limits_t l = sandbox_default_limits();
    sandbox_t *sb = sandbox_open(&l, NULL, NULL);
    const char *src = "return {on_message = function(s, t) return t end}";
    if (!sb || sandbox_start_load(sb, "=bench", src, strlen(src), NULL) != ACC_OK ||
        sandbox_run_to_end(sb) != SANDBOX_DONE) {
        fprintf(stderr, "bench: the echo agent failed to load\n");
        exit(1);
    }
    double t0 = test_now_s();
    for (int i = 0; i < TURNS; i++) {
        size_t len;
        if (sandbox_start_message(sb, "hello", 5, NULL) != ACC_OK || sandbox_run(sb) != SANDBOX_DONE ||
            !sandbox_reply(sb, &len) || len != 5) {
            fprintf(stderr, "bench: a turn failed: %s\n", sandbox_errmsg(sb));
            exit(1);
        }
    }
    double t = test_now_s() - t0;
    sandbox_close(sb);
    printf("| a turn: sandbox_start_message + sandbox_run of an echo agent, %d turns | %.2f µs | | |\n", TURNS,
           t / TURNS * 1e6);
}

static void bench_host_call(void) {
    sandbox_limits_t l = sandbox_default_limits();
    l.turn.instructions = 0;
    l.turn.time_ms = 600000;
    char src[256];
    snprintf(src, sizeof src,
             "local n = 0 for i = 1, %d do n = n + #models.call('m', {prompt = 'hi'}).text end "
             "return {on_message = print}", CALLS);
    double t = run_script(&l, src);

    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "cfn", bare_c_function);
    snprintf(src, sizeof src, "local n = 0 for i = 1, %d do n = cfn(n) end", CALLS);
    double t0 = test_now_s();
    luaL_dostring(L, src);
    double bare = test_now_s() - t0;
    lua_close(L);
    printf("| host call from Lua (models.call, JSON both ways, yield + resume) | %.2f µs | %.3f µs (Lua -> C call) | %.0fx |\n",
           t / CALLS * 1e6, bare / CALLS * 1e6, t / bare);
}

static void bench_hook(const char *name, const char *body) {
    char src[1024];
    snprintf(src, sizeof src, "%s return {on_message = print}", body);
    sandbox_limits_t timed = sandbox_default_limits(), counted = sandbox_default_limits();
    timed.turn.instructions = 0;
    timed.turn.time_ms = 60000;
    counted.turn.instructions = UINT64_MAX / 2;
    counted.turn.time_ms = 60000;
    double best_bare = 1e9, best_timed = 1e9, best_counted = 1e9;
    for (int r = 0; r < 3; r++) {
        double b = run_bare(body), t = run_script(&timed, src), c = run_script(&counted, src);
        if (b < best_bare) best_bare = b;
        if (t < best_timed) best_timed = t;
        if (c < best_counted) best_counted = c;
    }
    printf("| %s: watchdog only (instr limit 0) | %.3f s | %.3f s | %+.1f%% |\n", name, best_timed, best_bare,
           (best_timed / best_bare - 1) * 100);
    printf("| %s: counting instructions (default); the hook adds %+.1f%% to watchdog only | %.3f s | %.3f s | %+.1f%% |\n",
           name, (best_counted / best_timed - 1) * 100, best_counted, best_bare, (best_counted / best_bare - 1) * 100);
}

/* Resident bytes of this process. */
static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (size_t)resident * 4096;
}

static const char fragmenting[] =
    "local keep = {}\n"
    "for size = 8, 4000, 40 do\n"
    "  local tmp, base = {}, ('q'):rep(size - 7)\n"
    "  for i = 1, (10 << 20) // (size + 40) do tmp[i] = base .. (1000000 + i) end\n"
    "  for i = 1, #tmp, math.max(1, 4096 // (size + 25)) do keep[#keep + 1] = tmp[i] end\n"
    "  tmp = nil collectgarbage()\n"
    "  if collectgarbage('count') > 8 * 1024 then break end\n"
    "end\n"
    "return {on_message = function() end}";

/* Opens n sandboxes with a 16 MiB cap and runs src's load turn in each (its outcome does not
 * matter: a limit is fine), keeping them all open; prints the RSS they add, per sandbox. */
static void bench_rss(const char *what, const char *src, int n) {
    sandbox_limits_t l = sandbox_default_limits();
    l.memory_bytes = 16u << 20;
    l.turn.instructions = 0;
    l.turn.time_ms = 60000;
    sandbox_t **sbs = calloc((size_t)n, sizeof *sbs);
    size_t before = rss_bytes(), live = 0;
    for (int i = 0; i < n; i++) {
        sbs[i] = sandbox_open(&l, NULL, NULL);
        if (!sbs[i]) {
            fprintf(stderr, "bench: sandbox_open failed\n");
            exit(1);
        }
        if (sandbox_start_load(sbs[i], "=bench", src, strlen(src), NULL) == ACC_OK) sandbox_run_to_end(sbs[i]);
        sandbox_stats_t st;
        sandbox_stats(sbs[i], &st);
        live += st.memory_bytes;
    }
    size_t after = rss_bytes();
    printf("| RSS per sandbox, %s (%d sandboxes, 16 MiB caps) | %.2f MiB resident, %.2f MiB Lua heap | "
           "bound %.1f MiB | |\n",
           what, n, (double)(after - before) / n / (1 << 20), (double)live / n / (1 << 20), 16.0 * 3 * (1 + 1.0 / 64) + 0.125);
    for (int i = 0; i < n; i++) sandbox_close(sbs[i]);
    free(sbs);
}

#define MIXED_WORKLOAD                                                                              \
    "local t = {} for i = 1, 3e5 do t[#t + 1] = ('k' .. i):upper() end "                          \
    "local n = 0 for _, v in ipairs(t) do if v:find('99', 1, true) then n = n + #v end end "     \
    "table.sort(t) local s = table.concat(t, ',', 1, 1000) "                                      \
    "local m = {} for i = 1, 3e5 do m[i % 1000] = (m[i % 1000] or 0) + i end"

/* Each of our bounded functions (sandbox/bounded_*.c) in a loop of its own, against stock Lua's
 * function in the same loop, instruction counting off so that only the function's own cost shows.
 * Timed in the thread's CPU time; rounds alternate sandbox and bare, and the best of each is kept,
 * so other load on the machine (cache, frequency) only ever adds time to the rounds it hits. */
static const struct {
    const char *name, *body;
} bounded_micro[] = {
    {"find, plain", "local s = ('x'):rep(60) .. 'needle' local n = 0 for i = 1, 2e6 do if s:find('needle', 1, true) then n = n + 1 end end"},
    {"find, pattern", "local s = 'abc def 12345 ghi' local n = 0 for i = 1, 1e6 do if s:find('%d+') then n = n + 1 end end"},
    {"match, two captures", "local s = 'key=value' local n = 0 for i = 1, 1e6 do local k, v = s:match('(%w+)=(%w+)') n = n + #k end"},
    {"gmatch, 20 words", "local s = ('word '):rep(20) local n = 0 for i = 1, 1e5 do for w in s:gmatch('%a+') do n = n + 1 end end"},
    {"gsub, runs of spaces", "local s = 'a  b   c    d     e' local n = 0 for i = 1, 5e5 do local r, k = s:gsub('%s+', ' ') n = n + k end"},
    {"gsub, captures in the replacement", "local s = 'x=1, y=2, z=3' local n = 0 for i = 1, 5e5 do local r = s:gsub('(%w+)=(%w+)', '%2=%1') n = n + #r end"},
    {"rep", "local n = 0 for i = 1, 1e6 do n = n + #('ab'):rep(20) end"},
    {"rep with a separator", "local n = 0 for i = 1, 1e6 do n = n + #('ab'):rep(10, ',') end"},
    {"format", "local n = 0 for i = 1, 1e6 do n = n + #('%d:%s'):format(i, 'x') end"},
    {"upper", "local s = 'hello world' local n = 0 for i = 1, 2e6 do n = n + #s:upper() end"},
    {"sub", "local s = 'hello world' local n = 0 for i = 1, 3e6 do n = n + #s:sub(2, 5) end"},
    {"byte", "local s = 'hello world' local n = 0 for i = 1, 3e6 do n = n + s:byte(3) end"},
    {"sort, 1000 numbers", "local n = 0 for r = 1, 200 do local t = {} for i = 1, 1000 do t[i] = (i * 7919) % 1009 end table.sort(t) n = n + t[1] end"},
    {"sort, 1000 strings", "local n = 0 for r = 1, 100 do local t = {} for i = 1, 1000 do t[i] = 'k' .. ((i * 7919) % 1009) end table.sort(t) n = n + #t[1] end"},
    {"sort, with a comparator", "local n = 0 for r = 1, 100 do local t = {} for i = 1, 1000 do t[i] = (i * 7919) % 1009 end table.sort(t, function(a, b) return a > b end) n = n + t[1] end"},
    {"concat, 100 strings", "local t = {} for i = 1, 100 do t[i] = 'item' .. i end local n = 0 for i = 1, 3e4 do n = n + #table.concat(t, ',') end"},
    {"insert at the end", "local n = 0 for r = 1, 1000 do local t = {} for i = 1, 1000 do table.insert(t, i) end n = n + #t end"},
    {"insert at the front", "local n = 0 for r = 1, 2000 do local t = {} for i = 1, 50 do table.insert(t, 1, i) end n = n + #t end"},
    {"remove from the end", "local n = 0 for r = 1, 1000 do local t = {} for i = 1, 1000 do t[i] = i end for i = 1, 1000 do n = n + table.remove(t) end end"},
    {"move, 100 elements", "local a = {} for i = 1, 100 do a[i] = i end local n = 0 for r = 1, 3e4 do local b = table.move(a, 1, 100, 1, {}) n = n + #b end"},
    {"unpack, 8 values", "local t = {1, 2, 3, 4, 5, 6, 7, 8} local n = 0 for i = 1, 1e6 do local a, b, c = table.unpack(t) n = n + a + c end"},
    {"the mixed workload (all of the above at once)", MIXED_WORKLOAD},
};

#define BOUNDED_ROUNDS 11

static void bench_bounded(void) {
    bench_cpu_time = true;
    sandbox_limits_t timed = sandbox_default_limits();
    timed.turn.instructions = 0;
    timed.turn.time_ms = 60000;
    double worst = 0;
    for (size_t i = 0; i < sizeof bounded_micro / sizeof bounded_micro[0]; i++) {
        char src[1024];
        snprintf(src, sizeof src, "%s return {on_message = print}", bounded_micro[i].body);
        double best_bare = 1e9, best_sandbox = 1e9;
        for (int r = 0; r < BOUNDED_ROUNDS; r++) {
            double t = run_script(&timed, src), b = run_bare(bounded_micro[i].body);
            if (t < best_sandbox) best_sandbox = t;
            if (b < best_bare) best_bare = b;
        }
        double ratio = best_sandbox / best_bare;
        if (ratio > worst) worst = ratio;
        printf("| bounded: %s | %.1f ms | %.1f ms | %.3fx |\n", bounded_micro[i].name, best_sandbox * 1e3,
               best_bare * 1e3, ratio);
    }
    printf("| bounded: the highest ratio above | | | %.3fx |\n", worst);
    bench_cpu_time = false;
}

/* ---- the Lua heap's allocator (sandbox/region.c) against jemalloc --------------------------- */

#define ALLOC_ROUNDS 5

/* The same sandbox with its heap in a region (the default 64 MiB cap) and on jemalloc (no cap:
 * the process's malloc), beside bare Lua (jemalloc too); thread CPU time, rounds alternating, the
 * best of each kept. */
static void bench_alloc_workload(const char *name, const char *body) {
    char src[2048];
    snprintf(src, sizeof src, "%s return {on_message = print}", body);
    sandbox_limits_t region = sandbox_default_limits(), jemalloc;
    region.turn.instructions = 0;
    region.turn.time_ms = 600000;
    jemalloc = region;
    jemalloc.memory_bytes = 0;
    double best_r = 1e9, best_j = 1e9, best_b = 1e9;
    bench_cpu_time = true;
    for (int i = 0; i < ALLOC_ROUNDS; i++) {
        double r = run_script(&region, src), j = run_script(&jemalloc, src), b = run_bare(body);
        if (r < best_r) best_r = r;
        if (j < best_j) best_j = j;
        if (b < best_b) best_b = b;
    }
    bench_cpu_time = false;
    printf("| %s: sandbox on its region / on jemalloc / bare Lua | %.1f ms | %.1f ms / %.1f ms | %+.1f%% vs jemalloc |\n",
           name, best_r * 1e3, best_j * 1e3, best_b * 1e3, (best_r / best_j - 1) * 100);
}

static void bench_alloc_create(void) {
    static double t[ROUNDS];
    sandbox_limits_t l = sandbox_default_limits();
    double med[3];
    for (int kind = 0; kind < 3; kind++) {
        l.memory_bytes = kind == 0 ? SANDBOX_DEFAULT_MEMORY_BYTES : 0;
        for (int i = 0; i < ROUNDS; i++) {
            double t0 = test_now_s();
            if (kind < 2) {
                sandbox_t *sb = sandbox_open(&l, NULL, NULL);
                sandbox_close(sb);
            } else {
                lua_State *L = luaL_newstate();
                luaL_openlibs(L);
                lua_close(L);
            }
            t[i] = test_now_s() - t0;
        }
        med[kind] = median(t, ROUNDS) * 1e6;
    }
    printf("| create + close, median of %d: sandbox on its region / on jemalloc / bare Lua | %.1f µs | %.1f µs / %.1f µs | %.2fx bare |\n",
           ROUNDS, med[0], med[1], med[2], med[0] / med[2]);
}

static size_t mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    size_t n = 0;
    int c;
    if (!f) return 0;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static const char agent[] = "local greeting = 'hi' return {on_message = function(s, t) return greeting .. t end}";

/* n sandboxes with the default limits, each with the agent loaded and one message answered, all
 * open at once: the RSS they add, per sandbox. */
static void bench_idle_many(int n) {
    sandbox_limits_t l = sandbox_default_limits();
    sandbox_t **sbs = calloc((size_t)n, sizeof *sbs);
    size_t before = rss_bytes(), live = 0;
    double t0 = test_now_s();
    for (int i = 0; i < n; i++) {
        sbs[i] = sandbox_open(&l, NULL, NULL);
        if (!sbs[i] || sandbox_start_load(sbs[i], "=agent", agent, strlen(agent), NULL) != ACC_OK ||
            sandbox_run_to_end(sbs[i]) != SANDBOX_DONE || sandbox_start_message(sbs[i], "x", 1, NULL) != ACC_OK ||
            sandbox_run_to_end(sbs[i]) != SANDBOX_DONE) {
            fprintf(stderr, "bench: sandbox %d of %d failed: %s\n", i, n, sbs[i] ? sandbox_errmsg(sbs[i]) : "open");
            exit(1);
        }
        sandbox_stats_t st;
        sandbox_stats(sbs[i], &st);
        live += st.memory_bytes;
    }
    double t = test_now_s() - t0;
    size_t after = rss_bytes();
    printf("| %d idle sandboxes open at once (64 MiB caps, agent loaded, one message answered) | %.1f KiB RSS each, %.1f KiB Lua heap | %.0f MiB in all; %.1f µs per open + load + message; %zu mappings in the process | |\n",
           n, (double)(after - before) / n / 1024, (double)live / n / 1024, (double)(after - before) / (1 << 20),
           t / n * 1e6, mappings());
    for (int i = 0; i < n; i++) sandbox_close(sbs[i]);
    free(sbs);
}

/* Turns of an agent that makes and drops about 100 KiB each: what returning free pages at the end
 * of every turn costs (a purge, and page faults when the next turn takes them again). */
static void bench_alloc_turns(void) {
    static const char src[] = "return {on_message = function(s, m) local t = {} "
                              "for i = 1, 1000 do t[i] = ('x'):rep(90) .. i end return #t end}";
    enum { ALLOC_TURNS = 3000 };
    double best[2] = {1e9, 1e9};
    for (int round = 0; round < ALLOC_ROUNDS; round++) {
        for (int kind = 0; kind < 2; kind++) {
            sandbox_limits_t l = sandbox_default_limits();
            l.turn.instructions = 0;
            l.memory_bytes = kind == 0 ? SANDBOX_DEFAULT_MEMORY_BYTES : 0;
            sandbox_t *sb = sandbox_open(&l, NULL, NULL);
            if (sandbox_start_load(sb, "=agent", src, sizeof src - 1, NULL) != ACC_OK || sandbox_run_to_end(sb) != SANDBOX_DONE) {
                fprintf(stderr, "bench: agent failed: %s\n", sandbox_errmsg(sb));
                exit(1);
            }
            double t0 = test_thread_cpu_s();
            for (int i = 0; i < ALLOC_TURNS; i++)
                if (sandbox_start_message(sb, "x", 1, NULL) != ACC_OK || sandbox_run_to_end(sb) != SANDBOX_DONE) exit(1);
            double t = (test_thread_cpu_s() - t0) / ALLOC_TURNS;
            if (t < best[kind]) best[kind] = t;
            sandbox_close(sb);
        }
    }
    printf("| a turn that makes and drops ~100 KiB (best of %d x %d turns): sandbox on its region / on jemalloc | %.1f µs | %.1f µs | %+.1f%% |\n",
           ALLOC_ROUNDS, ALLOC_TURNS, best[0] * 1e6, best[1] * 1e6, (best[0] / best[1] - 1) * 100);
}

/* The Lua heap's allocator: speed against jemalloc, creation, idle sandboxes by the thousand. */
/* The parts named in `parts` (create, work, turns, idle; NULL: all). */
static void bench_alloc(const char *parts) {
    if (!parts || strstr(parts, "create")) bench_alloc_create();
    if (!parts || strstr(parts, "work")) {
        bench_alloc_workload("string building", "local parts = {} for i = 1, 2e5 do parts[#parts + 1] = 'item' .. i .. ',' end "
                                                "local s = table.concat(parts) local t = '' for i = 1, 2e4 do t = t .. 'x' end");
        bench_alloc_workload("table churn", "local n = 0 for r = 1, 3e5 do local t = {r, r + 1, x = r} n = n + #t end "
                                            "for r = 1, 100 do local t = {} for i = 1, 1000 do t[i] = i t['k' .. i] = i end end");
        bench_alloc_workload("mixed workload", MIXED_WORKLOAD);
    }
    if (!parts || strstr(parts, "turns")) bench_alloc_turns();
    if (!parts || strstr(parts, "idle")) {
        bench_idle_many(10000);
        bench_idle_many(30000);
    }
}

/* BENCH_RSS_ONLY=1 runs the memory rows alone, BENCH_BOUNDED_ONLY=1 the bounded functions' rows,
 * BENCH_HOST_CALL_ONLY=1 the host call's. */
int main(void) {
    printf("| what | sandbox | bare Lua 5.4 | ratio |\n|---|---|---|---|\n");
    if (getenv("BENCH_ALLOC_ONLY")) {
        bench_alloc(strcmp(getenv("BENCH_ALLOC_ONLY"), "1") ? getenv("BENCH_ALLOC_ONLY") : NULL);
        return 0;
    }
    if (getenv("BENCH_RSS_ONLY")) { /* the memory rows alone, quickly */
        bench_rss("idle after loading an agent", "local greeting = 'hi' return {on_message = function(s, t) return greeting .. t end}", 1000);
        bench_rss("after the fragmenting script", fragmenting, 8);
        return 0;
    }
    if (getenv("BENCH_HOST_CALL_ONLY")) { /* the host call's row alone */
        bench_host_call();
        return 0;
    }
    if (getenv("BENCH_BOUNDED_ONLY")) {
        bench_bounded();
        return 0;
    }
    bench_create();
    bench_turn();
    bench_host_call();
    bench_hook("tight loop `s = s + i`, 5e7", "local s = 0 for i = 1, 5e7 do s = s + i end");
    bench_hook("mixed string/table workload", MIXED_WORKLOAD);
    bench_hook("function calls (fib 30)", "local function fib(n) if n < 2 then return n end return fib(n-1) + fib(n-2) end fib(30)");
    bench_rss("idle after loading an agent", "local greeting = 'hi' return {on_message = function(s, t) return greeting .. t end}", 1000);
    bench_rss("after the fragmenting script", fragmenting, 8);
    bench_bounded();
    bench_alloc(NULL);
    return 0;
}
