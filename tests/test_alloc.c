/*
 * test_alloc.c: the allocator of the sandboxes' Lua heaps (sandbox/region.c, sandbox/alloc.c).
 *
 * The region allocator against a model: random sequences of allocations, frees and resizes keep
 * every block's bytes (each block is filled with its own pattern and checked when it is freed or
 * moved), never overlap, and account for every granule of the pool (blocks + free + cached =
 * spanned); sbx_region_check walks the free lists and the boundary bits after each stretch.
 * Boundaries (exact fits, one byte more, alignment, merging with both neighbours, the top), the
 * reserve pool, the quick lists giving way, pages returned to the kernel (mincore says which are
 * resident), closed regions reused, and open/close from many threads.
 *
 * The heap on top (alloc.c), driven the way Lua drives it (a refused request is asked once more
 * after a collection): the cap exact to the byte, the reserve past it, a region used up by
 * fragmentation before the cap ending in the memory limit with the reserve still there; and real
 * sandboxes: an idle one's resident pages, a turn's freed pages returned at its end, a script that
 * fragments the region on purpose.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sandbox/internal.h"
#include "sandbox/region.h"
#include "sandbox/sandbox.h"
#include "tests/check.h"

#if defined(ACCRUE_SYSTEM_MALLOC) && !defined(__SANITIZE_THREAD__)
#define HEAPS_ON_REGIONS 0 /* alloc.c gives Lua malloc's blocks, for ASan and valgrind */
#else
#define HEAPS_ON_REGIONS 1
#endif

/* ---- helpers ------------------------------------------------------------------------------ */

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Pages of [p, p + len) resident now, by mincore. */
static size_t resident_pages(const void *p, size_t len) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page, count = 0;
    unsigned char *vec = malloc(n);
    if (!vec || mincore((void *)p, len, vec) != 0) {
        free(vec);
        return SIZE_MAX;
    }
    for (size_t i = 0; i < n; i++) count += vec[i] & 1;
    free(vec);
    return count;
}

static size_t region_resident(const sbx_region_t *r) {
    sbx_region_stats_t st;
    sbx_region_stats(r, &st);
    return resident_pages(r, st.reserved) * (size_t)sysconf(_SC_PAGESIZE);
}

static void check_region(const sbx_region_t *r, const char *when) {
    char why[256];
    int rc = sbx_region_check(r, why, sizeof why);
    CHECK_MSG(rc == 0, "%s: %s", when, why);
}

/* A block's bytes: a pattern from its id, so that any overlap or stray write shows. */
static unsigned char pattern(uint32_t id, size_t i) { return (unsigned char)(id * 131u + i * 7u + 1u); }
static void fill(unsigned char *p, uint32_t id, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) p[i] = pattern(id, i);
}
static int intact(const unsigned char *p, uint32_t id, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(id, i)) return 0;
    return 1;
}

/* ---- the region allocator against a model ---------------------------------------------------- */

typedef struct live {
    unsigned char *p;
    size_t n;
    uint32_t id;
} live_t;

static size_t random_size(void) {
    uint64_t k = test_rand() % 100;
    if (k < 70) return 1 + test_rand() % 256;  /* Lua's strings, tables, closures */
    if (k < 95) return 257 + test_rand() % 8000; /* arrays and hash parts */
    return 8192 + test_rand() % (256 << 10);    /* big strings and tables */
}

static void model_run(uint64_t seed, int ops) {
    test_rng_state = seed;
    const size_t heap = 8u << 20;
    sbx_region_t *r = sbx_region_open(heap, 128 << 10);
    CHECK(r != NULL);
    if (!r) return;
    live_t *lv = calloc((size_t)ops, sizeof *lv);
    size_t nlive = 0, live_bytes = 0, refused = 0;
    uint32_t next_id = 1;
    for (int op = 0; op < ops; op++) {
        uint64_t k = test_rand() % 100;
        bool reserve = test_rand() % 10 == 0;
        if (k < 55 || nlive == 0) {
            size_t n = random_size();
            unsigned char *p = sbx_region_alloc(r, n, reserve);
            if (!p) {
                refused++;
                /* Only when the pool's top is near its end: never while the top has room. */
                sbx_region_stats_t st;
                sbx_region_stats(r, &st);
                CHECK_MSG(st.spanned + round8(n) > heap, "op %d: %zu bytes refused with %zu spanned", op, n,
                          st.spanned);
                continue;
            }
            CHECK_MSG(((uintptr_t)p & 7) == 0, "block at %p not 8-aligned", (void *)p);
            fill(p, next_id, 0, n);
            lv[nlive++] = (live_t){p, n, next_id++};
            live_bytes += round8(n);
        } else if (k < 85) {
            size_t i = test_rand() % nlive;
            CHECK_MSG(intact(lv[i].p, lv[i].id, lv[i].n), "op %d: block %u (%zu bytes) changed", op, lv[i].id,
                      lv[i].n);
            sbx_region_free(r, lv[i].p, lv[i].n);
            live_bytes -= round8(lv[i].n);
            lv[i] = lv[--nlive];
        } else {
            size_t i = test_rand() % nlive, n = random_size();
            if (test_rand() % 3 == 0) n = lv[i].n + test_rand() % 64; /* small growths, often in place */
            if (n == 0) n = 1;
            unsigned char *q = sbx_region_realloc(r, lv[i].p, lv[i].n, n, reserve);
            if (!q) {
                CHECK_MSG(n > lv[i].n, "op %d: a shrink from %zu to %zu failed", op, lv[i].n, n);
                CHECK_MSG(intact(lv[i].p, lv[i].id, lv[i].n), "op %d: refused resize changed block %u", op, lv[i].id);
                refused++;
                continue;
            }
            size_t keep = n < lv[i].n ? n : lv[i].n;
            CHECK_MSG(intact(q, lv[i].id, keep), "op %d: resize of block %u from %zu to %zu lost its bytes", op,
                      lv[i].id, lv[i].n, n);
            fill(q, lv[i].id, keep, n);
            live_bytes += round8(n);
            live_bytes -= round8(lv[i].n);
            lv[i].p = q;
            lv[i].n = n;
        }
        if (test_rand() % 2000 == 0) {
            sbx_region_purge(r);
            for (size_t i = 0; i < nlive; i++)
                CHECK_MSG(intact(lv[i].p, lv[i].id, lv[i].n), "op %d: purge changed block %u", op, lv[i].id);
        }
        if (op % 2039 == 0 || op == ops - 1) {
            check_region(r, "model");
            sbx_region_stats_t st;
            sbx_region_stats(r, &st);
            CHECK_MSG(st.spanned == live_bytes + st.free + st.cached,
                      "op %d: %zu spanned, %zu in blocks + %zu free + %zu cached", op, st.spanned, live_bytes, st.free,
                      st.cached);
            if (check_current_failed) break;
        }
    }
    for (size_t i = 0; i < nlive; i++) {
        CHECK_MSG(intact(lv[i].p, lv[i].id, lv[i].n), "block %u changed", lv[i].id);
        sbx_region_free(r, lv[i].p, lv[i].n);
    }
    sbx_region_purge(r); /* flushes the quick lists: everything merges back into the tops */
    sbx_region_stats_t st;
    sbx_region_stats(r, &st);
    CHECK_MSG(st.spanned == 0 && st.free == 0 && st.cached == 0, "all freed: %zu spanned, %zu free, %zu cached",
              st.spanned, st.free, st.cached);
    check_region(r, "all freed");
    printf("# alloc: seed %llu: %d operations, %zu refused for room\n", (unsigned long long)seed, ops, refused);
    free(lv);
    sbx_region_close(r);
}

static void test_random_sequences_match_the_model(void) {
    uint64_t seed = test_seed("ALLOC_SEED", 20261204);
    int ops = test_slow_tool() ? 10000 : 50000;
    for (int i = 0; i < 4; i++) model_run(seed + (uint64_t)i * 7919, ops);
}

/* ---- boundaries ------------------------------------------------------------------------------ */

static void test_exact_fits_and_one_byte_more(void) {
    const size_t heap = 1u << 20;
    sbx_region_t *r = sbx_region_open(heap, 0);
    unsigned char *all = sbx_region_alloc(r, heap, false);
    CHECK(all != NULL);
    CHECK(sbx_region_alloc(r, 1, false) == NULL);
    CHECK(sbx_region_alloc(r, 1, true) == NULL); /* no reserve pool */
    /* A shrink never fails, and gives the rest back at once. */
    CHECK(sbx_region_realloc(r, all, heap, 16, false) == all);
    unsigned char *rest = sbx_region_alloc(r, heap - 16, false);
    CHECK(rest == all + 16);
    CHECK(sbx_region_realloc(r, all, 16, 17, false) == NULL); /* no room to grow: refused, in place */
    sbx_region_free(r, rest, heap - 16);
    CHECK(sbx_region_realloc(r, all, 16, heap, false) == all); /* grows into the top */
    sbx_region_free(r, all, heap);
    CHECK(sbx_region_alloc(r, heap + 1, false) == NULL);
    CHECK(sbx_region_alloc(r, SBX_REGION_MAX_HEAP + 1, false) == NULL);
    CHECK(sbx_region_alloc(r, SIZE_MAX, false) == NULL);
    /* Sizes round up to 8: blocks of 1 to 8 bytes sit 8 apart, 9 bytes take 16. */
    unsigned char *a = sbx_region_alloc(r, 1, false), *b = sbx_region_alloc(r, 8, false),
                  *c = sbx_region_alloc(r, 9, false), *d = sbx_region_alloc(r, 1, false);
    CHECK(b == a + 8 && c == b + 8 && d == c + 16);
    sbx_region_free(r, a, 1);
    sbx_region_free(r, b, 8);
    sbx_region_free(r, c, 9);
    sbx_region_free(r, d, 1);
    sbx_region_purge(r);
    sbx_region_stats_t st;
    sbx_region_stats(r, &st);
    CHECK_EQ(st.spanned, 0);
    check_region(r, "boundaries");
    CHECK(sbx_region_open(0, 0) == NULL);
    CHECK(sbx_region_open(SBX_REGION_MAX_HEAP + 1, 0) == NULL);
    sbx_region_close(r);
}

static void test_free_merges_both_neighbours_and_the_top(void) {
    sbx_region_t *r = sbx_region_open(1u << 20, 0);
    const size_t n = 1000; /* past the quick lists: merged at once */
    unsigned char *a = sbx_region_alloc(r, n, false), *b = sbx_region_alloc(r, n, false),
                  *c = sbx_region_alloc(r, n, false), *pin = sbx_region_alloc(r, 8, false);
    sbx_region_free(r, a, n);
    sbx_region_free(r, c, n);
    sbx_region_stats_t st;
    sbx_region_stats(r, &st);
    CHECK_EQ(st.free_blocks, 2);
    sbx_region_free(r, b, n); /* merges with a before it and c after it */
    sbx_region_stats(r, &st);
    CHECK_EQ(st.free_blocks, 1);
    CHECK_EQ(st.free, 3 * n);
    check_region(r, "merged");
    unsigned char *m = sbx_region_alloc(r, 3 * n, false);
    CHECK(m == a); /* the merged block fits exactly: taken, though its class holds smaller ones too */
    sbx_region_free(r, m, 3 * n);
    sbx_region_free(r, pin, 8); /* the last block: the top comes down past the free block too */
    sbx_region_purge(r);
    sbx_region_stats(r, &st);
    CHECK(st.spanned == 0 && st.free == 0 && st.free_blocks == 0);
    check_region(r, "top");
    sbx_region_close(r);
}

static void test_reserve_pool_only_when_asked(void) {
    const size_t heap = 256u << 10, reserve = 64u << 10;
    sbx_region_t *r = sbx_region_open(heap, reserve);
    unsigned char *all = sbx_region_alloc(r, heap, false);
    CHECK(all != NULL);
    CHECK(sbx_region_alloc(r, 100, false) == NULL);
    unsigned char *x = sbx_region_alloc(r, 100, true);
    CHECK(x != NULL && (x < all || x >= all + heap));
    fill(x, 1, 0, 100);
    /* A main-pool block resized with the reserve open moves there when the main pool is full. */
    unsigned char *y = sbx_region_realloc(r, all, heap, heap - 4096, false);
    CHECK(y == all);
    unsigned char *z = sbx_region_alloc(r, 4096, false); /* fills the main pool again */
    CHECK(z != NULL);
    fill(z, 2, 0, 4096);
    unsigned char *z2 = sbx_region_realloc(r, z, 4096, 8192, false);
    CHECK(z2 == NULL);
    z2 = sbx_region_realloc(r, z, 4096, 8192, true);
    CHECK(z2 != NULL && z2 != z && intact(z2, 2, 4096));
    CHECK(sbx_region_alloc(r, reserve, true) == NULL); /* the reserve has less than that left */
    CHECK(intact(x, 1, 100));
    sbx_region_free(r, x, 100);
    sbx_region_free(r, z2, 8192);
    check_region(r, "reserve");
    unsigned char *big = sbx_region_alloc(r, reserve, true); /* all of it again, once freed */
    CHECK(big != NULL);
    sbx_region_free(r, big, reserve);
    sbx_region_free(r, all, heap - 4096);
    sbx_region_purge(r);
    sbx_region_stats_t st;
    sbx_region_stats(r, &st);
    CHECK_EQ(st.spanned, 0);
    check_region(r, "reserve emptied");
    sbx_region_close(r);
}

static void test_quick_lists_give_way_when_room_runs_out(void) {
    const size_t heap = 1u << 20;
    sbx_region_t *r = sbx_region_open(heap, 0);
    size_t n = heap / 64;
    unsigned char **p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = sbx_region_alloc(r, 64, false);
    CHECK(p[n - 1] != NULL);
    CHECK(sbx_region_alloc(r, 8, false) == NULL);
    for (size_t i = 0; i < n; i++) sbx_region_free(r, p[i], 64);
    sbx_region_stats_t st;
    sbx_region_stats(r, &st);
    CHECK_MSG(st.cached > 0 && st.cached < heap, "freed 64-byte blocks wait on a quick list (%zu bytes)", st.cached);
    /* All but 64 bytes of the pool in one block: only with the quick lists' blocks merged back. */
    unsigned char *most = sbx_region_alloc(r, heap - 64, false);
    CHECK(most != NULL);
    sbx_region_stats(r, &st);
    CHECK_EQ(st.cached, 0);
    check_region(r, "after the quick lists gave way");
    sbx_region_free(r, most, heap - 64);
    free(p);
    sbx_region_close(r);
}

/* ---- pages ------------------------------------------------------------------------------------ */

static void test_purge_returns_free_pages_only(void) {
    const size_t mib = 1u << 20;
    sbx_region_t *r = sbx_region_open(16 * mib, 128 << 10);
    unsigned char *b[8];
    for (uint32_t i = 0; i < 8; i++) {
        b[i] = sbx_region_alloc(r, mib, false);
        fill(b[i], i, 0, mib);
    }
    size_t before = region_resident(r);
    CHECK_MSG(before >= 8 * mib, "8 MiB written, %zu bytes resident", before);
    /* Free every other one (holes between live blocks) and the last (the top comes down). */
    for (int i = 1; i < 8; i += 2) sbx_region_free(r, b[i], mib);
    /* A free alone returns nothing (and may touch a page of the bitmap). */
    CHECK_MSG(region_resident(r) >= before && region_resident(r) <= before + 16 * 4096, "%zu resident, %zu before",
              region_resident(r), before);
    sbx_region_purge(r);
    size_t after = region_resident(r);
    CHECK_MSG(after <= before - 4 * mib + 16 * 4096 && after >= 4 * mib, "resident %zu before, %zu after the purge",
              before, after);
    for (uint32_t i = 0; i < 8; i += 2) CHECK_MSG(intact(b[i], i, mib), "live block %u changed by the purge", i);
    sbx_region_stats_t st;
    sbx_region_stats(r, &st);
    CHECK_MSG(st.dirty >= after && st.dirty <= after + 64 * 4096, /* the bitmap counted whole */ "stats say %zu dirty, %zu resident", st.dirty,
              after);
    /* A purged free block reused: its pages come back zero, the allocator's words intact. */
    unsigned char *again = sbx_region_alloc(r, mib, false);
    CHECK(again != NULL);
    fill(again, 99, 0, mib);
    check_region(r, "purged and reused");
    /* Many small blocks freed sit on quick lists; a purge merges them and returns their pages. */
    sbx_region_free(r, again, mib);
    for (int i = 0; i < 8; i += 2) sbx_region_free(r, b[i], mib);
    unsigned char *small[4096];
    for (int i = 0; i < 4096; i++) {
        small[i] = sbx_region_alloc(r, 200, false);
        memset(small[i], 0xAB, 200);
    }
    for (int i = 0; i < 4096; i++) sbx_region_free(r, small[i], 200);
    sbx_region_purge(r);
    CHECK_MSG(region_resident(r) <= 2 * 4096, "%zu bytes resident with nothing allocated", region_resident(r));
    check_region(r, "emptied");
    sbx_region_close(r);
}

static void test_closed_regions_are_reused_clean(void) {
    for (int round = 0; round < 40; round++) {
        size_t heap = (size_t)(1 + round % 3) << 20;
        sbx_region_t *r = sbx_region_open(heap, 128 << 10);
        CHECK(r != NULL);
        if (!r) return;
        sbx_region_stats_t st;
        sbx_region_stats(r, &st);
        CHECK(st.spanned == 0 && st.free == 0 && st.cached == 0);
        check_region(r, "reopened");
        unsigned char *p[64];
        for (uint32_t i = 0; i < 64; i++) {
            size_t n = 16 + (i * 977) % 20000;
            p[i] = sbx_region_alloc(r, n, i % 8 == 0);
            CHECK(p[i] != NULL);
            fill(p[i], i, 0, n);
        }
        for (uint32_t i = 0; i < 64; i++) {
            size_t n = 16 + (i * 977) % 20000;
            CHECK(intact(p[i], i, n));
            if (round % 5 != 4) sbx_region_free(r, p[i], n); /* every fifth closes with blocks in it */
        }
        sbx_region_close(r);
    }
}

typedef struct thread_arg {
    int id, ok;
} thread_arg_t;

static void *open_close_many(void *arg) {
    thread_arg_t *a = arg;
    sandbox_limits_t l = sandbox_default_limits();
    l.memory_bytes = (size_t)(1 + a->id % 2) << 20;
    l.turn.instructions = 0;
    l.turn.time_ms = (uint64_t)test_scaled_ms(10000);
    static const char src[] = "local t = {} for i = 1, 2000 do t[i] = ('x'):rep(i % 50) .. i end "
                              "return {on_message = function(s, m) return m .. #t end}";
    int rounds = test_slow_tool() ? 20 : 100;
    for (int i = 0; i < rounds; i++) {
        sandbox_t *sb = sandbox_open(&l, NULL, NULL);
        if (!sb) return NULL;
        int ok = sandbox_start_load(sb, "=t", src, sizeof src - 1, NULL) == ACC_OK &&
                 sandbox_run_to_end(sb) == SANDBOX_DONE && sandbox_start_message(sb, "n", 1, NULL) == ACC_OK &&
                 sandbox_run_to_end(sb) == SANDBOX_DONE;
        size_t len = 0;
        const char *reply = ok ? sandbox_reply(sb, &len) : NULL;
        ok = reply && len == 5 && memcmp(reply, "n2000", 5) == 0;
        sandbox_close(sb);
        if (!ok) return NULL;
        /* And regions alone, of sizes that others close and reopen meanwhile. */
        sbx_region_t *r = sbx_region_open((size_t)(1 + (a->id + i) % 3) << 20, 64 << 10);
        if (!r) return NULL;
        unsigned char *p = sbx_region_alloc(r, 5000, false);
        fill(p, (uint32_t)i, 0, 5000);
        if (!intact(p, (uint32_t)i, 5000)) return NULL;
        sbx_region_free(r, p, 5000);
        sbx_region_close(r);
    }
    a->ok = 1;
    return NULL;
}

static void test_sandboxes_open_and_close_on_many_threads(void) {
    enum { N = 8 };
    pthread_t t[N];
    thread_arg_t a[N];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 4u << 20);
    for (int i = 0; i < N; i++) {
        a[i] = (thread_arg_t){i, 0};
        CHECK(pthread_create(&t[i], &attr, open_close_many, &a[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(a[i].ok, "thread %d failed", i);
    }
    pthread_attr_destroy(&attr);
}

/* ---- the heap: cap, reserve and the region, the way Lua asks ---------------------------------- */

/* A sandbox struct with nothing but a heap: sbx_heap_exhausted records the limit in it. */
static sandbox_t *bare_sandbox(size_t cap) {
    sandbox_t *sb = calloc(1, sizeof *sb);
    sb->heap.cap = cap;
    CHECK(sbx_heap_open(&sb->heap) == 0);
    return sb;
}

/* Asks as Lua does (lmem.c): a refused request is asked once more, after a collection. */
static void *ask(sandbox_t *sb, void *p, size_t o, size_t n) {
    void *q = sbx_lua_alloc(&sb->heap, p, o, n);
    if (!q && n > 0) q = sbx_lua_alloc(&sb->heap, p, o, n);
    return q;
}

static void test_cap_exact_then_reserve(void) {
    const size_t cap = 100000;
    sandbox_t *sb = bare_sandbox(cap);
    void *a = ask(sb, NULL, 0, cap - 10);
    void *b = ask(sb, NULL, 0, 10); /* exactly the cap */
    CHECK(a && b);
    CHECK(sb->stop == SANDBOX_LIMIT_NONE && !sb->heap.over);
    CHECK_EQ(sb->heap.used, cap);
    /* One byte more: refused once (Lua collects), then the memory limit, granted from the reserve. */
    CHECK(sbx_lua_alloc(&sb->heap, NULL, 0, 1) == NULL);
    CHECK(sb->stop == SANDBOX_LIMIT_NONE);
    void *c = sbx_lua_alloc(&sb->heap, NULL, 0, 1);
    CHECK(c != NULL);
    CHECK(sb->stop == SANDBOX_LIMIT_MEMORY && sb->heap.over);
    /* The reserve's bytes, to the byte, and not one more. */
    void *d = sbx_lua_alloc(&sb->heap, NULL, 0, SBX_HEAP_RESERVE - 1);
    CHECK(d != NULL);
    CHECK_EQ(sb->heap.used, cap + SBX_HEAP_RESERVE);
    CHECK(sbx_lua_alloc(&sb->heap, NULL, 0, 1) == NULL);
    CHECK_EQ(sb->heap.peak, cap); /* the script's own peak never counts the reserve */
    /* A shrink never fails (in place on a region; malloc's realloc may move it); freeing brings
     * the count down to zero. */
    void *d2 = sbx_lua_alloc(&sb->heap, d, SBX_HEAP_RESERVE - 1, 8);
    CHECK(d2 != NULL && (d2 == d || !HEAPS_ON_REGIONS));
    CHECK_EQ(sb->heap.used, cap + 1 + 8);
    sbx_lua_alloc(&sb->heap, d2, 8, 0);
    sbx_lua_alloc(&sb->heap, c, 1, 0);
    sbx_lua_alloc(&sb->heap, b, 10, 0);
    sbx_lua_alloc(&sb->heap, a, cap - 10, 0);
    CHECK_EQ(sb->heap.used, 0);
    sbx_heap_close(&sb->heap);
    free(sb);
}

static void test_region_used_up_is_the_memory_limit(void) {
    if (!HEAPS_ON_REGIONS) CHECK_SKIP("heaps are on malloc in this build (ASan, valgrind)");
    const size_t cap = 4u << 20;
    sandbox_t *sb = bare_sandbox(cap);
    /* A region whose main pool is smaller than the cap stands for one that fragmentation has used
     * up: the heap must end in the memory limit there, exactly as at the cap. */
    sbx_region_close(sb->heap.region);
    sb->heap.region = sbx_region_open(cap / 2, 2 * SBX_HEAP_RESERVE);
    enum { N = 1024 };
    static void *blocks[N];
    size_t n = 0;
    while (n < N && (blocks[n] = sbx_lua_alloc(&sb->heap, NULL, 0, 4096)) != NULL) n++;
    /* The first refusal lets Lua collect and ask again, and sets no limit. */
    CHECK_MSG(n > 0 && n < N && sb->stop == SANDBOX_LIMIT_NONE, "%zu blocks, limit '%s'", n,
              sandbox_limit_name(sb->stop));
    CHECK(sb->heap.used < cap && sb->heap.refused_last);
    /* Asked again: the memory limit, and the reserve pool serves it and what unwinding needs. */
    void *again = sbx_lua_alloc(&sb->heap, NULL, 0, 4096);
    CHECK(again != NULL);
    CHECK(sb->stop == SANDBOX_LIMIT_MEMORY && sb->heap.over);
    void *unwind[16];
    for (int i = 0; i < 16; i++) {
        unwind[i] = sbx_lua_alloc(&sb->heap, NULL, 0, 1000);
        CHECK(unwind[i] != NULL);
    }
    /* The reserve pool is twice the reserve's bytes: a request past what is left of it fails. */
    CHECK(sbx_lua_alloc(&sb->heap, NULL, 0, 2 * SBX_HEAP_RESERVE) == NULL);
    check_region(sb->heap.region, "used up");
    for (int i = 0; i < 16; i++)
        if (unwind[i]) sbx_lua_alloc(&sb->heap, unwind[i], 1000, 0);
    if (again) sbx_lua_alloc(&sb->heap, again, 4096, 0);
    while (n > 0) sbx_lua_alloc(&sb->heap, blocks[--n], 4096, 0);
    CHECK_EQ(sb->heap.used, 0);
    sbx_heap_close(&sb->heap);
    free(sb);
}

/* ---- real sandboxes -------------------------------------------------------------------------- */

static sandbox_limits_t limits(size_t cap) {
    sandbox_limits_t l = sandbox_default_limits();
    l.memory_bytes = cap;
    l.turn.instructions = 0;
    l.turn.time_ms = (uint64_t)test_scaled_ms(20000);
    return l;
}

static sandbox_status_t run_load(sandbox_t *sb, const char *src) {
    if (sandbox_start_load(sb, "=t", src, strlen(src), NULL) != ACC_OK) return SANDBOX_FAILED;
    return sandbox_run_to_end(sb);
}

static void test_idle_sandbox_holds_few_pages(void) {
    if (!HEAPS_ON_REGIONS) CHECK_SKIP("heaps are on malloc in this build (ASan, valgrind)");
    sandbox_limits_t l = limits(SANDBOX_DEFAULT_MEMORY_BYTES);
    sandbox_t *sb = sandbox_open(&l, NULL, NULL);
    /* A load turn that builds and drops a few hundred KiB, then an agent that keeps little. */
    CHECK(run_load(sb, "local t = {} for i = 1, 5000 do t[i] = ('x'):rep(50) .. i end t = nil "
                       "local greeting = 'hi' return {on_message = function(s, m) collectgarbage() return greeting .. m end}") ==
          SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "!", 1, NULL) == ACC_OK && sandbox_run_to_end(sb) == SANDBOX_DONE);
    sandbox_stats_t st;
    sandbox_stats(sb, &st);
    size_t resident = region_resident(sb->heap.region);
    printf("# alloc: idle sandbox: %zu bytes of Lua heap, %zu resident in its region\n", st.memory_bytes, resident);
    /* The 400 KiB the load turn dropped went back; the survivors sit on a few pages of it. */
    CHECK_MSG(resident <= st.memory_bytes + (48u << 10), "%zu resident for %zu bytes of heap", resident,
              st.memory_bytes);
    sandbox_close(sb);
}

static void test_turn_returns_freed_pages_at_its_end(void) {
    if (!HEAPS_ON_REGIONS) CHECK_SKIP("heaps are on malloc in this build (ASan, valgrind)");
    sandbox_limits_t l = limits(32u << 20);
    sandbox_t *sb = sandbox_open(&l, NULL, NULL);
    /* 8 MiB made and dropped, and collected: the turn's end returns the pages. */
    CHECK(run_load(sb, "return {on_message = function(s, m) local t = {} for i = 1, 20000 do t[i] = ('y'):rep(400) .. i end "
                       "t = nil collectgarbage() return 'done' end}") == SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "!", 1, NULL) == ACC_OK && sandbox_run_to_end(sb) == SANDBOX_DONE);
    size_t resident = region_resident(sb->heap.region);
    sbx_region_stats_t rs;
    sbx_region_stats(sb->heap.region, &rs);
    sandbox_stats_t st;
    sandbox_stats(sb, &st);
    /* What survived sits on a few dozen of the 2,000 pages the turn wrote. */
    CHECK_MSG(resident < (512u << 10), "%zu bytes resident after the turn, %zu of Lua heap; %zu spanned, %zu free in %zu blocks, %zu dirty",
              resident, st.memory_bytes, rs.spanned, rs.free, rs.free_blocks, rs.dirty);
    sandbox_close(sb);
}

/* The corpus's fragmenting scripts (mem_fragment_*) against one sandbox's region: one small string
 * kept per page of garbage, size after size, under pcall. */
static void test_fragmenting_script_stays_within_its_region(void) {
    sandbox_limits_t l = limits(4u << 20);
    sandbox_t *sb = sandbox_open(&l, NULL, NULL);
    const char *src = "local keep = {}\n"
                      "for size = 8, 4000, 40 do\n"
                      "  pcall(function()\n"
                      "    local tmp, base = {}, ('q'):rep(size - 7)\n"
                      "    for i = 1, (3 << 20) // (size + 40) do tmp[i] = base .. (1000000 + i) end\n"
                      "    for i = 1, #tmp, math.max(1, 4096 // (size + 25)) do keep[#keep + 1] = tmp[i] end\n"
                      "  end)\n"
                      "  collectgarbage()\n"
                      "end\n";
    CHECK(run_load(sb, src) == SANDBOX_FAILED);
    CHECK_MSG(sandbox_limit_hit(sb) == SANDBOX_LIMIT_MEMORY, "limit '%s': %s", sandbox_limit_name(sandbox_limit_hit(sb)),
              sandbox_errmsg(sb));
    if (HEAPS_ON_REGIONS) {
        size_t resident = region_resident(sb->heap.region);
        printf("# alloc: fragmenting script under a %zu cap: %zu bytes resident in its region at the limit\n",
               l.memory_bytes, resident);
        CHECK_MSG(resident <= SBX_PAGES_PER_CAP * l.memory_bytes + (1u << 20), "%zu bytes resident", resident);
        check_region(sb->heap.region, "fragmented");
    }
    sandbox_close(sb);
}

int main(void) {
    RUN(test_random_sequences_match_the_model);
    RUN(test_exact_fits_and_one_byte_more);
    RUN(test_free_merges_both_neighbours_and_the_top);
    RUN(test_reserve_pool_only_when_asked);
    RUN(test_quick_lists_give_way_when_room_runs_out);
    RUN(test_purge_returns_free_pages_only);
    RUN(test_closed_regions_are_reused_clean);
    RUN(test_sandboxes_open_and_close_on_many_threads);
    RUN(test_cap_exact_then_reserve);
    RUN(test_region_used_up_is_the_memory_limit);
    RUN(test_idle_sandbox_holds_few_pages);
    RUN(test_turn_returns_freed_pages_at_its_end);
    RUN(test_fragmenting_script_stays_within_its_region);
    return check_finish("alloc");
}
