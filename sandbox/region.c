/*
 * region.c: a two-level segregated fit allocator (TLSF, after Masmano, Ripoll, Crespo and Real,
 * 2004) over address space reserved for one sandbox's heap.
 *
 * Why our own. The bound on a sandbox's resident pages must hold whatever the script allocates,
 * which only a heap of its own can give: a shared allocator's pages are everyone's. jemalloc can
 * give each sandbox an arena, but an arena keeps a slab per size class it has seen (an idle
 * sandbox's 17 KiB of objects sat in ~20 of them, 190 KiB resident), it needs an explicit thread
 * cache, and MALLOCX_ARENA takes a 12-bit index (about 4,000 sandboxes per process). This file
 * keeps none of that: a sandbox is a reservation and a page of control data, an idle one holds
 * about its live bytes, and there are as many as the address space has room for.
 *
 * The facts it is built on:
 * - Lua says the size of every block it frees or resizes, so a block needs no header: the
 *   allocator only has to know, at a block's two ends, whether the neighbour there is free. One
 *   bit per 8-byte granule says so (set on the first and the last granule of each free block: a
 *   set bit just before a block can only be a free block's last granule, one just after it only a
 *   free block's first), in a bitmap at the start of the region, 1/64 of what it covers.
 * - Free blocks hold their own bookkeeping: their size in their first and last 4 bytes, and two
 *   list links after the size. A free block of one granule (8 bytes, too small for links) is in no
 *   list; it only waits to be merged. Offsets are 32-bit counts of granules from the region's start.
 * - TLSF: free blocks of 16 bytes and more sit in lists by size class, 16 classes per power of two
 *   (exact below 256 bytes), with a bitmap of non-empty lists per level and one of non-empty
 *   levels, so finding a block that fits is two bit scans, and freeing merges with both neighbours
 *   at once. Any block of the class a request rounds up to fits it, so the search never walks a
 *   list (a request first tries the head of its own class, which may fit it exactly); the part of
 *   the block not needed goes back as a free block. Time per call is constant.
 * - Each pool grows by a top: blocks come from the lists first, and from the untouched space above
 *   the top only when no list has one. A block freed next to the top lowers the top, so a heap
 *   that shrinks gives back its upper pages in one piece.
 * - Quick lists. Merging costs a few cache misses a free (the neighbours' sizes and links live in
 *   their own memory), and Lua frees and makes small objects by the thousand: a bare TLSF made
 *   allocation-heavy scripts 20-25% slower than jemalloc. So a freed block of up to 256 bytes
 *   first waits, unmerged, on a list of its exact size (LIFO: the next request of that size takes
 *   the block freed last, still in cache), up to 1/8 of the pool. The lists are given back to the
 *   pool, merged, by every purge (the end of a turn) and before an allocation could fail.
 * - Pages come from the kernel when first touched (MAP_NORESERVE: no commit charge for what is
 *   never used), and go back with MADV_DONTNEED in sbx_region_purge: those above the top, and the
 *   whole pages inside free blocks, each free block once (it carries a flag saying its inside was
 *   returned, kept when it is split, dropped when it is merged).
 * - A region has a second pool, the reserve, with its own lists, that only a caller who asks for
 *   it draws from: room that fragmentation of the main pool cannot take away.
 * - Creating a region is an mmap, closing one an munmap. Closed empty regions are kept (16) for
 *   the next open of the same size, a small heap's pages with them: the system calls and the page
 *   faults cost as much as the rest of a small sandbox's creation.
 */
#include "sandbox/region.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/base/invariant.h"
#include "runtime/base/prefetch.h"

#define GRAN SBX_REGION_ALIGN
#define SL_LOG2 4
#define SL_COUNT (1u << SL_LOG2)
/* Levels: 0 holds sizes below SL_COUNT granules, one class each; level k - 3 the sizes in
 * [2^k, 2^(k+1)) granules. Sizes stay below 2^31 granules (the top bit of a size is a flag). */
#define FL_COUNT 28
#define SIZE_MASK 0x7fffffffu
#define CLEAN 0x80000000u /* in a free block's size word: its inside pages were returned */

typedef uint32_t gran_t; /* an offset from the region's start, or a size, in granules */

/* Quick lists: a freed block of up to QUICK_MAX granules waits, unmerged, on a list of its exact
 * size for the next request of that size, while the lists hold less than 1/QUICK_SHARE of the
 * main pool. */
#define QUICK_MAX 32
#define QUICK_SHARE 8

typedef struct pool {
    gran_t base, top, limit; /* blocks and free blocks in [base, top); never touched: [hwm, limit) */
    gran_t hwm;              /* the highest top since the pages above the top were last returned */
    gran_t free_g;           /* granules in free blocks */
    uint32_t nfree;          /* free blocks */
    uint32_t fl_map;         /* bit fl: some list of level fl is not empty */
    uint16_t sl_map[FL_COUNT];
    gran_t heads[FL_COUNT][SL_COUNT];
} pool_t;

struct sbx_region {
    size_t size;  /* bytes mapped, from this struct on */
    size_t page;  /* the kernel's page size */
    uint64_t *bits;   /* one bit a granule, from granule bits_base on */
    gran_t bits_base;
    gran_t reserve_base, reserve_limit; /* the reserve pool's space (empty: none) */
    size_t reserve_at; /* where its control data goes: past the bitmap */
    pool_t *reserve;   /* that control data; NULL until the reserve is first used */
    gran_t touched;    /* the main pool's highest top since the region was opened */
    gran_t quick_g, quick_max_g;     /* granules in the quick lists, and the most they may hold */
    gran_t quick[QUICK_MAX + 1];     /* freed main-pool blocks of g granules, linked by their first word */
    pool_t main;
};

void sbx_region_prefetch(const sbx_region_t *r) {
    /* up to the lists of the sizes below 64 granules (512 bytes), which Lua's small objects use */
    acc_prefetch_lines(r, (size_t)((const char *)&r->main.heads[3][0] - (const char *)r));
}

/* ---- addresses, sizes and boundary bits -------------------------------------------------- */

static inline char *at(const sbx_region_t *r, gran_t g) { return (char *)r + (size_t)g * GRAN; }
static inline gran_t gran_of(const sbx_region_t *r, const void *p) {
    return (gran_t)(((const char *)p - (const char *)r) / GRAN);
}
static inline uint32_t *word(const sbx_region_t *r, gran_t g, unsigned i) { return (uint32_t *)at(r, g) + i; }
/* A free block's words: 0 its size (and CLEAN), 1 next, 2 previous; its last word its size. */
static inline uint32_t *footer(const sbx_region_t *r, gran_t end) { return (uint32_t *)at(r, end) - 1; }

uintptr_t sbx_region_base(const sbx_region_t *r) { return (uintptr_t)at(r, r->main.base); }

/* Granules for n bytes; 0 when n is too big for any pool. */
static inline gran_t granules(size_t n) { return n > SBX_REGION_MAX_HEAP ? 0 : (gran_t)((n + GRAN - 1) / GRAN); }

static inline bool bit_get(const sbx_region_t *r, gran_t g) {
    size_t i = g - r->bits_base;
    return r->bits[i >> 6] >> (i & 63) & 1;
}
static inline void bit_set(sbx_region_t *r, gran_t g) {
    size_t i = g - r->bits_base;
    r->bits[i >> 6] |= (uint64_t)1 << (i & 63);
}
static inline void bit_clear(sbx_region_t *r, gran_t g) {
    size_t i = g - r->bits_base;
    r->bits[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* ---- size classes and lists -------------------------------------------------------------- */

static inline unsigned log2_floor(uint32_t x) { return 31u - (unsigned)__builtin_clz(x); }

/* The class of a free block of s granules (s >= 2). */
static inline void class_of(uint32_t s, unsigned *fl, unsigned *sl) {
    if (s < SL_COUNT) {
        *fl = 0;
        *sl = s;
        return;
    }
    unsigned k = log2_floor(s);
    *fl = k - (SL_LOG2 - 1);
    *sl = (s >> (k - SL_LOG2)) - SL_COUNT;
}

/* The first list whose every block holds g granules: g's class, rounded up. False past the last. */
static inline bool class_for_request(uint32_t g, unsigned *fl, unsigned *sl) {
    uint64_t s = g;
    if (s >= SL_COUNT) s += ((uint64_t)1 << (log2_floor(g) - SL_LOG2)) - 1;
    if (s > SIZE_MASK) return false;
    class_of((uint32_t)s, fl, sl);
    return *fl < FL_COUNT;
}

/* Makes [b, b+s) a free block (not touching the top) and lists it. */
static void insert_free(sbx_region_t *r, pool_t *p, gran_t b, uint32_t s, uint32_t clean) {
    *word(r, b, 0) = s | clean;
    *footer(r, b + s) = s;
    bit_set(r, b);
    bit_set(r, b + s - 1);
    p->free_g += s;
    p->nfree++;
    if (s < 2) return; /* one granule: no room for links */
    unsigned fl, sl;
    class_of(s, &fl, &sl);
    gran_t head = p->heads[fl][sl];
    *word(r, b, 1) = head;
    *word(r, b, 2) = 0;
    if (head) *word(r, head, 2) = b;
    p->heads[fl][sl] = b;
    p->fl_map |= 1u << fl;
    p->sl_map[fl] |= (uint16_t)(1u << sl);
}

/* Unlists free block b of s granules; its granules become the caller's. */
static void remove_free(sbx_region_t *r, pool_t *p, gran_t b, uint32_t s) {
    bit_clear(r, b);
    bit_clear(r, b + s - 1);
    p->free_g -= s;
    p->nfree--;
    if (s < 2) return;
    gran_t next = *word(r, b, 1), prev = *word(r, b, 2);
    if (next) *word(r, next, 2) = prev;
    if (prev) {
        *word(r, prev, 1) = next;
        return;
    }
    unsigned fl, sl;
    class_of(s, &fl, &sl);
    ACC_INVARIANT(p->heads[fl][sl] == b, "region: free block %u not at the head of its list", b);
    p->heads[fl][sl] = next;
    if (!next) {
        p->sl_map[fl] &= (uint16_t)~(1u << sl);
        if (!p->sl_map[fl]) p->fl_map &= ~(1u << fl);
    }
}

/* ---- a pool: take and give blocks ---------------------------------------------------------- */

/* A block of g granules from p, or 0 when p has none. */
static gran_t take(sbx_region_t *r, pool_t *p, gran_t g) {
    unsigned fl, sl;
    if (g >= SL_COUNT) { /* a class of several sizes: its first block may fit all the same */
        class_of(g, &fl, &sl);
        gran_t b = p->heads[fl][sl];
        if (b) {
            uint32_t w = *word(r, b, 0), s = w & SIZE_MASK;
            if (s >= g) {
                remove_free(r, p, b, s);
                if (s > g) insert_free(r, p, b + g, s - g, w & CLEAN);
                return b;
            }
        }
    }
    if (class_for_request(g, &fl, &sl)) {
        uint32_t sl_bits = p->sl_map[fl] & (~0u << sl);
        if (!sl_bits) {
            uint32_t fl_bits = fl + 1 < FL_COUNT ? p->fl_map & (~0u << (fl + 1)) : 0;
            if (fl_bits) {
                fl = (unsigned)__builtin_ctz(fl_bits);
                sl_bits = p->sl_map[fl];
            }
        }
        if (sl_bits) {
            gran_t b = p->heads[fl][__builtin_ctz(sl_bits)];
            uint32_t w = *word(r, b, 0), s = w & SIZE_MASK;
            remove_free(r, p, b, s);
            if (s > g) insert_free(r, p, b + g, s - g, w & CLEAN); /* its inside is a part of b's */
            return b;
        }
    }
    if (p->limit - p->top < g) return 0;
    gran_t b = p->top;
    p->top += g;
    if (p->top > p->hwm) p->hwm = p->top;
    return b;
}

/* Frees [b, b+g): merges it with a free neighbour on either side, or into the top. */
static void give(sbx_region_t *r, pool_t *p, gran_t b, gran_t g) {
    ACC_INVARIANT(b >= p->base && g <= p->top - b, "region: block %u+%u is not in its pool [%u, %u)", b, g, p->base,
                  p->top);
    ACC_INVARIANT(!bit_get(r, b) && !bit_get(r, b + g - 1), "region: block %u+%u is free already", b, g);
    gran_t e = b + g;
    if (e != p->top && bit_get(r, e)) { /* the next block is free */
        uint32_t s = *word(r, e, 0) & SIZE_MASK;
        remove_free(r, p, e, s);
        e += s;
    }
    if (b > p->base && bit_get(r, b - 1)) { /* the previous block is free: its size ends it */
        uint32_t s = *footer(r, b);
        b -= s;
        remove_free(r, p, b, s);
    }
    if (e == p->top) p->top = b;
    else insert_free(r, p, b, e - b, 0);
}

/* Grows block b from og to ng granules where it is, if the space after it is free. */
static bool grow_in_place(sbx_region_t *r, pool_t *p, gran_t b, gran_t og, gran_t ng) {
    gran_t e = b + og, need = ng - og;
    if (e == p->top) {
        if (p->limit - p->top < need) return false;
        p->top += need;
        if (p->top > p->hwm) p->hwm = p->top;
        return true;
    }
    if (!bit_get(r, e)) return false;
    uint32_t w = *word(r, e, 0), s = w & SIZE_MASK;
    if (s < need) return false;
    remove_free(r, p, e, s);
    if (s > need) insert_free(r, p, e + need, s - need, w & CLEAN);
    return true;
}

static void pool_reset(pool_t *p, gran_t base, gran_t limit) {
    memset(p, 0, sizeof *p);
    p->base = p->top = p->hwm = base;
    p->limit = limit;
}

static pool_t *reserve_pool(sbx_region_t *r) {
    if (!r->reserve && r->reserve_limit > r->reserve_base) {
        /* Past the bitmap, in pages nothing else touches: an unused reserve costs no page. */
        r->reserve = (pool_t *)((char *)r + r->reserve_at);
        pool_reset(r->reserve, r->reserve_base, r->reserve_limit);
    }
    return r->reserve;
}

static inline pool_t *pool_of(sbx_region_t *r, gran_t b) { return b < r->main.limit ? &r->main : r->reserve; }

/* ---- the interface ------------------------------------------------------------------------- */

/* Gives every block of the quick lists back to the main pool. */
static void quick_flush(sbx_region_t *r) {
    if (!r->quick_g) return;
    for (gran_t g = 1; g <= QUICK_MAX; g++) {
        for (gran_t b = r->quick[g]; b;) {
            gran_t next = *word(r, b, 0);
            give(r, &r->main, b, g);
            b = next;
        }
        r->quick[g] = 0;
    }
    r->quick_g = 0;
}

void *sbx_region_alloc(sbx_region_t *r, size_t n, bool reserve) {
    gran_t g = granules(n), b;
    if (g == 0) return NULL;
    if (g <= QUICK_MAX && (b = r->quick[g]) != 0) {
        r->quick[g] = *word(r, b, 0);
        r->quick_g -= g;
        return at(r, b);
    }
    b = take(r, &r->main, g);
    if (!b && r->quick_g) { /* merged, the quick lists' blocks may make room */
        quick_flush(r);
        b = take(r, &r->main, g);
    }
    if (!b && reserve && reserve_pool(r)) b = take(r, r->reserve, g);
    return b ? at(r, b) : NULL;
}

void *sbx_region_realloc(sbx_region_t *r, void *ptr, size_t old, size_t n, bool reserve) {
    gran_t b = gran_of(r, ptr), og = granules(old), ng = granules(n);
    pool_t *p = pool_of(r, b);
    ACC_INVARIANT(og > 0 && p != NULL, "region: realloc of a block of %zu bytes at granule %u", old, b);
    if (ng == 0) return NULL; /* too big for any pool */
    if (ng <= og) {
        if (ng < og) give(r, p, b + ng, og - ng);
        return ptr;
    }
    if (grow_in_place(r, p, b, og, ng)) return ptr;
    void *q = sbx_region_alloc(r, n, reserve);
    if (!q) return NULL;
    memcpy(q, ptr, old);
    give(r, p, b, og);
    return q;
}

void sbx_region_free(sbx_region_t *r, void *ptr, size_t n) {
    gran_t b = gran_of(r, ptr), g = granules(n);
    pool_t *p = pool_of(r, b);
    ACC_INVARIANT(p != NULL && n > 0, "region: free of %zu bytes at granule %u", n, b);
    if (g <= QUICK_MAX && p == &r->main && r->quick_max_g - r->quick_g >= g) {
        *word(r, b, 0) = r->quick[g];
        r->quick[g] = b;
        r->quick_g += g;
        return;
    }
    give(r, p, b, g);
}

/* ---- returning pages ----------------------------------------------------------------------- */

static inline uintptr_t page_up(const sbx_region_t *r, uintptr_t a) { return (a + r->page - 1) & ~(uintptr_t)(r->page - 1); }
static inline uintptr_t page_down(const sbx_region_t *r, uintptr_t a) { return a & ~(uintptr_t)(r->page - 1); }

static void dontneed(uintptr_t from, uintptr_t to) {
    if (to > from) madvise((void *)from, to - from, MADV_DONTNEED);
}

/* The whole pages inside free block b of s granules: past its first three words, before its last. */
static void block_inside(const sbx_region_t *r, gran_t b, uint32_t s, uintptr_t *from, uintptr_t *to) {
    *from = page_up(r, (uintptr_t)at(r, b) + 12);
    *to = page_down(r, (uintptr_t)at(r, b + s) - 4);
}

/* The byte of the bitmap that holds granule g's bit. */
static inline uintptr_t bit_byte(const sbx_region_t *r, gran_t g) { return (uintptr_t)r->bits + (g - r->bits_base) / 8; }

static void purge_pool(sbx_region_t *r, pool_t *p) {
    dontneed(page_up(r, (uintptr_t)at(r, p->top)), page_up(r, (uintptr_t)at(r, p->hwm)));
    if (p == &r->main) {
        /* The bitmap's pages wholly above the top's bit hold zeros only: they go too. */
        if (p->hwm > r->touched) r->touched = p->hwm;
        uintptr_t end = page_up(r, bit_byte(r, p->hwm) + 1), limit = page_down(r, bit_byte(r, p->limit));
        dontneed(page_up(r, bit_byte(r, p->top) + 1), end < limit ? end : limit);
    }
    p->hwm = p->top;
    /* Only levels whose blocks can hold a whole page. */
    unsigned fl, sl, first;
    class_of((uint32_t)(r->page / GRAN), &first, &sl);
    for (uint32_t levels = p->fl_map & (~0u << first); levels; levels &= levels - 1) {
        fl = (unsigned)__builtin_ctz(levels);
        for (uint32_t lists = p->sl_map[fl]; lists; lists &= lists - 1) {
            for (gran_t b = p->heads[fl][__builtin_ctz(lists)]; b; b = *word(r, b, 1)) {
                uint32_t *w = word(r, b, 0);
                if (*w & CLEAN) continue;
                uintptr_t from, to;
                block_inside(r, b, *w & SIZE_MASK, &from, &to);
                dontneed(from, to);
                *w |= CLEAN;
            }
        }
    }
}

void sbx_region_purge(sbx_region_t *r) {
    quick_flush(r);
    purge_pool(r, &r->main);
    if (r->reserve) purge_pool(r, r->reserve);
}

/* ---- opening and closing; closed regions kept for reuse ------------------------------------ */

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

/* Closed empty regions, their pages returned, for the next open of the same size. */
#define CACHE_MAX 16
#define CACHE_KEEP ((size_t)64 << 10)
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static sbx_region_t *cache[CACHE_MAX];
static int ncache;

static int ncache_hint(void) {
    pthread_mutex_lock(&cache_lock);
    int n = ncache;
    pthread_mutex_unlock(&cache_lock);
    return n;
}

sbx_region_t *sbx_region_open(size_t heap_bytes, size_t reserve_bytes) {
    if (heap_bytes == 0 || heap_bytes > SBX_REGION_MAX_HEAP || reserve_bytes > SBX_REGION_MAX_HEAP) return NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t heap = round_up(heap_bytes, page), reserve = round_up(reserve_bytes, page);
    size_t body = heap + reserve;
    size_t bitmap = round_up(body / GRAN / 8, 64), ctl = round_up(sizeof(sbx_region_t), 64);
    size_t head = round_up(ctl + bitmap + (reserve ? sizeof(pool_t) : 0), page);
    size_t size = head + body;

    sbx_region_t *r = NULL;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < ncache; i++)
        if (cache[i]->size == size) {
            r = cache[i];
            cache[i] = cache[--ncache];
            break;
        }
    pthread_mutex_unlock(&cache_lock);
    if (!r) {
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return NULL;
        r = m;
    }
    /* A fresh mapping is zero. A kept one's bitmap is zero too (it held no free block when it was
     * closed); its heap pages may hold old bytes, which nothing reads before writing them. */
    r->size = size;
    r->page = page;
    r->bits = (uint64_t *)((char *)r + ctl);
    r->bits_base = (gran_t)(head / GRAN);
    r->reserve_base = (gran_t)((head + heap) / GRAN);
    r->reserve_limit = (gran_t)(size / GRAN);
    r->reserve_at = ctl + bitmap;
    r->reserve = NULL;
    r->touched = r->bits_base;
    r->quick_g = 0;
    r->quick_max_g = (gran_t)(heap / GRAN / QUICK_SHARE);
    memset(r->quick, 0, sizeof r->quick);
    pool_reset(&r->main, r->bits_base, r->reserve_base);
    return r;
}

void sbx_region_close(sbx_region_t *r) {
    if (!r) return;
    quick_flush(r);
    /* Empty: no block, hence no free block and no boundary bit either (those lie below the top). */
    bool empty = r->main.top == r->main.base && (!r->reserve || r->reserve->top == r->reserve->base);
    if (empty && ncache_hint() < CACHE_MAX) {
        /* A small heap's pages stay for the next one (they hold nothing it reads: it writes a
         * block before it reads it); a bigger one's go back, everything but the control page. */
        if (r->main.hwm > r->touched) r->touched = r->main.hwm;
        if (r->reserve || (size_t)(r->touched - r->main.base) * GRAN > CACHE_KEEP)
            dontneed((uintptr_t)r + r->page, (uintptr_t)r + r->size);
        pthread_mutex_lock(&cache_lock);
        bool kept = ncache < CACHE_MAX;
        if (kept) cache[ncache++] = r;
        pthread_mutex_unlock(&cache_lock);
        if (kept) return;
    }
    munmap(r, r->size);
}

/* ---- statistics and checks ------------------------------------------------------------------ */

static void pool_stats(const sbx_region_t *r, const pool_t *p, sbx_region_stats_t *out) {
    out->spanned += (size_t)(p->top - p->base) * GRAN;
    out->free += (size_t)p->free_g * GRAN;
    out->free_blocks += p->nfree;
    size_t dirty = page_up(r, (uintptr_t)at(r, p->hwm)) - (uintptr_t)at(r, p->base);
    for (unsigned fl = 0; fl < FL_COUNT; fl++)
        for (unsigned sl = 0; sl < SL_COUNT; sl++)
            for (gran_t b = p->heads[fl][sl]; b; b = *word(r, b, 1)) {
                uint32_t w = *word(r, b, 0);
                if (!(w & CLEAN)) continue;
                uintptr_t from, to;
                block_inside(r, b, w & SIZE_MASK, &from, &to);
                if (to > from) dirty -= to - from;
            }
    out->dirty += dirty;
}

void sbx_region_stats(const sbx_region_t *r, sbx_region_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->reserved = r->size;
    /* The control data, and the bitmap up to the main pool's highest top since the last purge
     * (which returned the bitmap's pages above the top). */
    out->dirty = page_up(r, bit_byte(r, r->main.hwm) + 1) - (uintptr_t)r;
    if (r->reserve) out->dirty += 2 * r->page; /* its control data and its bits */
    out->cached = (size_t)r->quick_g * GRAN;
    pool_stats(r, &r->main, out);
    if (r->reserve) pool_stats(r, r->reserve, out);
}

static int broken(char *why, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (why && len) vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* The next set bit at or after g and below end, or end. */
static gran_t next_bit(const sbx_region_t *r, gran_t g, gran_t end) {
    while (g < end) {
        size_t i = g - r->bits_base;
        uint64_t w = r->bits[i >> 6] >> (i & 63);
        if (w) {
            gran_t at_bit = g + (gran_t)__builtin_ctzll(w);
            return at_bit < end ? at_bit : end;
        }
        g += 64 - (gran_t)(i & 63);
    }
    return end;
}

static int check_pool(const sbx_region_t *r, const pool_t *p, const char *name, char *why, size_t len) {
    if (!(p->base <= p->top && p->top <= p->hwm && p->hwm <= p->limit))
        return broken(why, len, "%s: base %u, top %u, hwm %u, limit %u out of order", name, p->base, p->top, p->hwm,
                      p->limit);
    /* The lists: every block in the class of its list, linked both ways, inside the pool. */
    uint64_t listed = 0, listed_g = 0;
    for (unsigned fl = 0; fl < FL_COUNT; fl++) {
        for (unsigned sl = 0; sl < SL_COUNT; sl++) {
            gran_t prev = 0;
            bool nonempty = p->heads[fl][sl] != 0;
            if (nonempty != !!(p->sl_map[fl] >> sl & 1))
                return broken(why, len, "%s: list %u/%u and its map bit disagree", name, fl, sl);
            for (gran_t b = p->heads[fl][sl]; b; prev = b, b = *word(r, b, 1)) {
                uint32_t s = *word(r, b, 0) & SIZE_MASK;
                unsigned f, c;
                if (b < p->base || s < 2 || s > p->top - b)
                    return broken(why, len, "%s: listed block %u of %u granules outside [%u, %u)", name, b, s, p->base,
                                  p->top);
                class_of(s, &f, &c);
                if (f != fl || c != sl)
                    return broken(why, len, "%s: block %u of %u granules in list %u/%u, not %u/%u", name, b, s, fl, sl,
                                  f, c);
                if (*word(r, b, 2) != prev) return broken(why, len, "%s: block %u's back link is wrong", name, b);
                if (++listed > p->nfree) return broken(why, len, "%s: more listed blocks than %u", name, p->nfree);
                listed_g += s;
            }
        }
        if (!!(p->fl_map >> fl & 1) != (p->sl_map[fl] != 0))
            return broken(why, len, "%s: level %u and its map bit disagree", name, fl);
    }
    /* The bits: walking the pool's free blocks from the bitmap alone finds every listed block and
     * every one-granule block, none touching another or the top, each with its size at both ends,
     * and no bit set anywhere else up to the highest top. */
    uint64_t found = 0, found_g = 0, singles = 0;
    gran_t prev_end = 0;
    for (gran_t b = next_bit(r, p->base, p->hwm); b < p->hwm; b = next_bit(r, b, p->hwm)) {
        if (b >= p->top) return broken(why, len, "%s: boundary bit %u at or above the top %u", name, b, p->top);
        uint32_t s = *word(r, b, 0) & SIZE_MASK;
        if (s == 0 || s > p->top - b) return broken(why, len, "%s: free block %u has size %u", name, b, s);
        if (*footer(r, b + s) != s) return broken(why, len, "%s: free block %u's footer says %u, not %u", name, b,
                                                  *footer(r, b + s), s);
        if (!bit_get(r, b + s - 1)) return broken(why, len, "%s: free block %u+%u has no end bit", name, b, s);
        if (s > 2 && next_bit(r, b + 1, b + s - 1) != b + s - 1)
            return broken(why, len, "%s: a boundary bit inside free block %u+%u", name, b, s);
        if (prev_end && prev_end == b) return broken(why, len, "%s: free blocks meet at %u unmerged", name, b);
        if (b + s == p->top) return broken(why, len, "%s: free block %u+%u touches the top", name, b, s);
        found++;
        found_g += s;
        if (s == 1) singles++;
        prev_end = b + s;
        b += s;
    }
    if (found != p->nfree || found_g != p->free_g || found - singles != listed || found_g - singles != listed_g)
        return broken(why, len, "%s: %llu free blocks (%llu granules) by the bits, %llu listed (%llu), counted %u (%u)",
                      name, (unsigned long long)found, (unsigned long long)found_g, (unsigned long long)listed,
                      (unsigned long long)listed_g, p->nfree, p->free_g);
    return 0;
}

int sbx_region_check(const sbx_region_t *r, char *why, size_t len) {
    if (check_pool(r, &r->main, "main pool", why, len) != 0) return -1;
    if (r->reserve && check_pool(r, r->reserve, "reserve pool", why, len) != 0) return -1;
    return 0;
}
