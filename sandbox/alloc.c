/*
 * alloc.c: the allocator of every sandbox's Lua heap.
 *
 * Lua tells the allocator the size of the block it frees or resizes, so jemalloc's sized calls
 * (sdallocx, rallocx) skip the size lookup, and the cap can be kept exactly on the sizes Lua asked
 * for. A refused allocation makes Lua collect garbage and try once more (lmem.c, tryagain). When
 * that second request is refused too, the script has hit its cap for good: the allocator records
 * the memory limit (sbx_heap_exhausted arms the stop, which no pcall or __close can catch) and,
 * rather than fail, grants the request from a reserve of SBX_HEAP_RESERVE bytes past the cap.
 * Lua must never see an allocation fail where it has no protected call to raise in (a message
 * for resuming a dead coroutine, "error in error handling" in lua_resetthread, the registry's own
 * slots): there it would call abort() and take the host down. The reserve is open only until the
 * turn ends, and the script itself never runs another instruction once it is open.
 *
 * Invariant: heap->used is the sum of the sizes of the blocks Lua holds; it never exceeds cap
 * while the reserve is closed, and never exceeds cap + SBX_HEAP_RESERVE. (ACC_INVARIANT checks
 * that no block given back is bigger than the count, and sandbox_close that the count ends at 0.)
 * Resident memory. The cap counts the bytes Lua asks for, not the pages the allocator holds: a
 * script that keeps one small object per page, size class after size class, pinned 152 MiB of
 * pages under a 16 MiB cap with 5.6 MiB live, and a thread cache or a shared arena would hold
 * freed pages for other sandboxes too. So each sandbox has a jemalloc arena and an explicit thread
 * cache of its own (the thread's cache would mix objects of different arenas), both emptied at
 * the end of every turn (sbx_heap_trim: an idle sandbox holds no free pages), and a capped
 * sandbox's arena takes its pages only from a region of address space reserved for it at
 * SBX_PAGES_PER_CAP times the cap (extent hooks below, a bump allocator: jemalloc keeps and reuses
 * what it frees, and returns the pages to the system with MADV_DONTNEED). The region is the hard
 * bound on the sandbox's resident pages: when fragmentation has used it up, allocations fail as
 * at the cap, which is the memory limit. jemalloc has no page statistics in Debian's build
 * (config.stats is off), so the bound is kept by construction rather than by measuring. Dirty
 * pages keep jemalloc's default decay during a turn: purging at once made allocation-heavy
 * scripts up to 9x slower, and the region bounds them anyway.
 *
 * Small blocks. jemalloc's path for an explicit arena and cache (mallocx/sdallocx with flags) costs
 * about 150 instructions a call, three times its malloc/free fast path, and Lua allocates and frees
 * a small block for nearly every string and table it makes: that alone made allocation-heavy
 * scripts 15-20% slower than stock Lua. So during a turn each heap keeps the blocks of up to
 * SBX_SMALL_MAX bytes that Lua frees (an eighth of the cap's worth at most, between 256 KiB and
 * 4 MiB: the collector frees in bursts of thousands; measured on the mixed workload, 256 KiB kept
 * it 5% slower than stock Lua, 4 MiB within noise) on a free list per 16-byte class, and hands them out again before asking
 * jemalloc. A small block is always given jemalloc's size for its class (its size rounded up to 16:
 * jemalloc's own classes are those up to 128 bytes and contain them past it), so any block of a
 * class serves any request of that class, and is freed with that size. A small block resized to
 * another small size moves between the lists (jemalloc would copy it too: its small classes never
 * grow in place). The lists live in the
 * heap, like the arena: no lock. The end of every turn (sbx_heap_trim) and sbx_heap_close hand
 * them back to jemalloc, so an idle sandbox keeps none; a block kept costs no more than freeing it
 * at once would have, and a block reused saves a malloc and a free.
 *
 * Built with ACCRUE_SYSTEM_MALLOC (valgrind and ASan runs), it uses glibc malloc instead, and keeps
 * no blocks, so that every use after free stays visible to those tools.
 */
#include <string.h>

#include "runtime/base/invariant.h"
#include "sandbox/internal.h"

#ifdef ACCRUE_SYSTEM_MALLOC
#include <stdlib.h>
#define heap_malloc(n) malloc(n)
#define heap_realloc(p, n) realloc(p, n)
#define heap_free(p, n) free(p)
#define heap_free_unsized(p) free(p)
#define KEEP_SMALL 0
#define SIZE_MATCHES(p, n) ((void)(p), (void)(n), 1)

int sbx_heap_open(sbx_heap_t *heap) {
    (void)heap;
    return 0;
}
void sbx_heap_trim(sbx_heap_t *heap) { (void)heap; }
void sbx_heap_close(sbx_heap_t *heap) { (void)heap; }
size_t sbx_heap_region_used(const sbx_heap_t *heap) {
    (void)heap;
    return 0;
}
#else
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <jemalloc/jemalloc.h>
#define heap_malloc(n) mallocx(n, heap->flags)
#define heap_realloc(p, n) rallocx(p, n, heap->flags)
#define heap_free(p, n) sdallocx(p, n, heap->flags)
#define heap_free_unsized(p) dallocx(p, heap->flags)
#define KEEP_SMALL 1
/* A sized free must name the size class the block has (Debug builds check it). */
#define SIZE_MATCHES(p, n) (sallocx(p, heap->flags) == nallocx(n, heap->flags))

/* Gives the kept small blocks back to jemalloc. */
static void small_release(sbx_heap_t *heap) {
    if (heap->small_bytes == 0) return;
    for (int c = 0; c < SBX_SMALL_CLASSES; c++) {
        while (heap->small[c]) {
            void *p = heap->small[c];
            heap->small[c] = *(void **)p;
            heap_free(p, (size_t)(c + 1) * 16);
        }
    }
    heap->small_bytes = 0;
}

/* ---- a sandbox's arena and the region behind it ------------------------------------------- */

/* One jemalloc arena with its explicit thread cache and, for a capped heap, the region its pages
 * come from. Allocated on its own: jemalloc keeps a pointer to the hooks, and the arena outlives
 * its sandbox while it waits in the pool. */
struct sbx_arena {
    extent_hooks_t hooks; /* first: the hooks find their arena from their own address */
    char *base;           /* the region (NULL: no cap, jemalloc's own hooks) */
    size_t size, used;    /* used: bump offset; pages past it were never touched */
    unsigned index, tcache;
    bool has_tcache;
    int flags; /* mallocx flags: this arena, this cache */
};

static sbx_arena_t *arena_of(extent_hooks_t *hooks) { return (sbx_arena_t *)hooks; }

/* New extents come from the region only, bump-allocated: fresh pages, hence zeroed. NULL when the
 * region is used up; jemalloc then fails the allocation. */
static void *region_alloc(extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment, bool *zero,
                          bool *commit, unsigned arena_ind) {
    (void)arena_ind;
    sbx_arena_t *r = arena_of(hooks);
    if (new_addr) return NULL; /* jemalloc asking for a given address: never ours to promise */
    if (alignment == 0) alignment = 1;
    uintptr_t base = (uintptr_t)r->base, at = (base + r->used + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (at - base > r->size || size > r->size - (at - base)) return NULL;
    r->used = at - base + size;
    *zero = true;
    *commit = true;
    return (void *)at;
}

/* Freed extents stay in the arena (jemalloc retains and reuses them); their pages are purged. */
static bool region_dalloc(extent_hooks_t *h, void *a, size_t s, bool c, unsigned i) {
    (void)h, (void)a, (void)s, (void)c, (void)i;
    return true; /* opt out: retain */
}
static void region_destroy(extent_hooks_t *h, void *a, size_t s, bool c, unsigned i) {
    (void)h, (void)a, (void)s, (void)c, (void)i; /* the whole region is unmapped with its arena */
}
static bool region_commit(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned i) {
    (void)h, (void)a, (void)s, (void)o, (void)l, (void)i;
    return false; /* always committed */
}
static bool region_decommit(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned i) {
    (void)h, (void)a, (void)s, (void)o, (void)l, (void)i;
    return true; /* opt out */
}
static bool region_purge(extent_hooks_t *h, void *addr, size_t size, size_t offset, size_t length, unsigned i) {
    (void)h, (void)size, (void)i;
    return madvise((char *)addr + offset, length, MADV_DONTNEED) != 0;
}
static bool region_split(extent_hooks_t *h, void *a, size_t s, size_t sa, size_t sb, bool c, unsigned i) {
    (void)h, (void)a, (void)s, (void)sa, (void)sb, (void)c, (void)i;
    return false;
}
static bool region_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool c, unsigned i) {
    (void)h, (void)a, (void)sa, (void)b, (void)sb, (void)c, (void)i;
    return false; /* one mapping: any two extents of it can merge */
}

static const extent_hooks_t region_hooks = {
    region_alloc, region_dalloc, region_destroy, region_commit, region_decommit,
    NULL, /* purge_lazy: opt out, so freed pages leave at once when purged */
    region_purge, region_split, region_merge,
};

static int arena_ctl(unsigned arena, const char *what, void *value, size_t len) {
    char name[64];
    snprintf(name, sizeof name, "arena.%u.%s", arena, what);
    return mallctl(name, NULL, NULL, value, len);
}

static void arena_trim(sbx_arena_t *a) {
    if (a->has_tcache) mallctl("tcache.flush", NULL, NULL, &a->tcache, sizeof a->tcache);
    arena_ctl(a->index, "purge", NULL, 0);
}

static void arena_destroy(sbx_arena_t *a) {
    if (a->has_tcache) mallctl("tcache.destroy", NULL, NULL, &a->tcache, sizeof a->tcache);
    arena_ctl(a->index, "destroy", NULL, 0);
    if (a->base) munmap(a->base, a->size);
    free(a);
}

static sbx_arena_t *arena_create(size_t region_size) {
    sbx_arena_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    extent_hooks_t *hooks = NULL;
    if (region_size) {
        a->size = region_size;
        a->base = mmap(NULL, region_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (a->base == MAP_FAILED) {
            free(a);
            return NULL;
        }
        a->hooks = region_hooks;
        hooks = &a->hooks;
    }
    size_t len = sizeof a->index;
    if (mallctl("arenas.create", &a->index, &len, hooks ? (void *)&hooks : NULL, hooks ? sizeof hooks : 0) != 0) {
        if (a->base) munmap(a->base, a->size);
        free(a);
        return NULL;
    }
    len = sizeof a->tcache;
    a->has_tcache = mallctl("tcache.create", &a->tcache, &len, NULL, 0) == 0;
    a->flags = MALLOCX_ARENA(a->index) | (a->has_tcache ? MALLOCX_TCACHE(a->tcache) : MALLOCX_TCACHE_NONE);
    return a;
}

/* Creating and destroying a jemalloc arena costs about 200 µs, ten times the rest of a sandbox's
 * creation. A closed sandbox's arena is empty (lua_close freed everything in it) and its region
 * keeps its bound, so it waits here, trimmed, for the next sandbox with the same cap. */
#define POOL_MAX 16
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static sbx_arena_t *pool[POOL_MAX];
static int npool;

static size_t region_size_for(size_t cap) { return cap ? cap * SBX_PAGES_PER_CAP + SBX_REGION_SLACK : 0; }

int sbx_heap_open(sbx_heap_t *heap) {
    size_t want = region_size_for(heap->cap);
    sbx_arena_t *a = NULL;
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < npool; i++)
        if (pool[i]->size == want) {
            a = pool[i];
            pool[i] = pool[--npool];
            break;
        }
    pthread_mutex_unlock(&pool_lock);
    if (!a) a = arena_create(want);
    if (!a) return -1;
    heap->arena = a;
    heap->flags = a->flags;
    size_t keep = heap->cap ? heap->cap / 8 : SBX_SMALL_BYTES_MAX;
    heap->small_limit = keep < SBX_SMALL_BYTES_MIN ? SBX_SMALL_BYTES_MIN : keep > SBX_SMALL_BYTES_MAX ? SBX_SMALL_BYTES_MAX : keep;
    return 0;
}

void sbx_heap_close(sbx_heap_t *heap) {
    small_release(heap);
    sbx_arena_t *a = heap->arena;
    if (!a) return;
    heap->arena = NULL;
    if (heap->freed >= SBX_TRIM_BYTES) arena_trim(a); /* a small sandbox leaves little: keep it */
    bool pooled = false;
    if (heap->used == 0 && !heap->unsized) { /* empty for certain: the next sandbox may have it */
        pthread_mutex_lock(&pool_lock);
        if (npool < POOL_MAX) {
            pool[npool++] = a;
            pooled = true;
        }
        pthread_mutex_unlock(&pool_lock);
    }
    if (!pooled) arena_destroy(a);
}

void sbx_heap_trim(sbx_heap_t *heap) {
    small_release(heap);
    /* A purge costs tens of µs even with nothing to purge: only after a MiB was freed. */
    if (heap->arena && heap->freed >= SBX_TRIM_BYTES) {
        arena_trim(heap->arena);
        heap->freed = 0;
    }
}

size_t sbx_heap_region_used(const sbx_heap_t *heap) { return heap->arena ? heap->arena->used : 0; }
#endif

/* Can the heap grow by grow bytes and stay within limit? */
static inline bool fits(const sbx_heap_t *heap, size_t grow, size_t limit) {
    return heap->used <= limit && grow <= limit - heap->used;
}

/* A small block's class (0 .. SBX_SMALL_CLASSES-1) and the size jemalloc is asked for. */
static inline size_t small_class(size_t n) { return (n + 15) / 16 - 1; }
static inline size_t small_size(size_t n) { return (n + 15) & ~(size_t)15; }

/* Frees a block Lua held with size osize (not 0). */
static inline void block_free(sbx_heap_t *heap, void *ptr, size_t osize) {
    if (heap->unsized) {
        heap_free_unsized(ptr);
        return;
    }
    if (KEEP_SMALL && osize <= SBX_SMALL_MAX) {
        ACC_INVARIANT(SIZE_MATCHES(ptr, small_size(osize)), "small block of %zu bytes in the wrong class", osize);
        size_t size = small_size(osize);
        if (heap->small_bytes + size <= heap->small_limit) {
            size_t c = small_class(osize);
            *(void **)ptr = heap->small[c];
            heap->small[c] = ptr;
            heap->small_bytes += size;
            return;
        }
        heap_free(ptr, size);
        return;
    }
    ACC_INVARIANT(SIZE_MATCHES(ptr, osize), "block of %zu bytes freed with another size class", osize);
    heap_free(ptr, osize);
}

/* A new block of nsize bytes (not 0), or NULL. */
static inline void *block_new(sbx_heap_t *heap, size_t nsize) {
    if (KEEP_SMALL && nsize <= SBX_SMALL_MAX) {
        size_t c = small_class(nsize);
        void *p = heap->small[c];
        if (p) {
            heap->small[c] = *(void **)p;
            heap->small_bytes -= (c + 1) * 16;
            return p;
        }
        return heap_malloc(small_size(nsize));
    }
    return heap_malloc(nsize);
}

void *sbx_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sbx_heap_t *heap = ud;
    if (ptr == NULL) osize = 0; /* then osize only says what kind of object Lua is making */
    ACC_INVARIANT(osize <= heap->used, "sandbox heap: Lua gives back a %zu-byte block, only %zu bytes are counted",
                  osize, heap->used);

    if (nsize == 0) {
        if (ptr) {
            block_free(heap, ptr, osize);
            heap->used -= osize;
            heap->freed += osize;
            /* Dirty pages are held for jemalloc's decay (seconds): a script churning big blocks
             * would keep up to the whole region resident. Once a cap's worth was freed, purge. */
            if (heap->freed >= (heap->cap > SBX_TRIM_BYTES * 4 ? heap->cap : SBX_TRIM_BYTES * 4)) sbx_heap_trim(heap);
        }
        return NULL;
    }
    size_t grow = nsize > osize ? nsize - osize : 0;
    if (grow && heap->cap && !fits(heap, grow, heap->cap)) {
        if (!heap->over) {
            if (!heap->refused_last) { /* Lua collects garbage and asks once more */
                heap->refused_last = true;
                heap->refusals++;
                return NULL;
            }
            heap->over = true; /* still too big after a full collection: the limit is hit */
            sbx_heap_exhausted(heap);
        }
        if (!fits(heap, grow, heap->cap + SBX_HEAP_RESERVE)) {
            heap->refusals++;
            return NULL;
        }
    }
    void *p;
    if (ptr == NULL) {
        p = block_new(heap, nsize);
    } else if (KEEP_SMALL && osize <= SBX_SMALL_MAX && nsize <= SBX_SMALL_MAX && !heap->unsized) {
        if (small_size(nsize) == small_size(osize)) {
            p = ptr; /* the block has room already */
        } else {
            p = block_new(heap, nsize);
            if (p) {
                memcpy(p, ptr, osize < nsize ? osize : nsize);
                block_free(heap, ptr, osize);
            }
        }
    } else {
        p = heap_realloc(ptr, KEEP_SMALL && nsize <= SBX_SMALL_MAX && !heap->unsized ? small_size(nsize) : nsize);
    }
    if (p == NULL) {
        if (nsize <= osize) {
            /* Lua assumes a shrink cannot fail. Keep the old block; its true size is now unknown
             * to Lua, so sized frees would lie: switch this heap to unsized frees. */
            heap->unsized = true;
            heap->used = heap->used - osize + nsize;
            return ptr;
        }
        heap->refusals++;
        return NULL;
    }
    heap->used = heap->used - osize + nsize;
    if (grow) heap->refused_last = false;
    if (heap->used > heap->peak && !heap->over) heap->peak = heap->used; /* the script's own peak */
    ACC_INVARIANT(!grow || !heap->cap || heap->used <= heap->cap + (heap->over ? SBX_HEAP_RESERVE : 0),
                  "sandbox heap: %zu bytes used past cap %zu", heap->used, heap->cap);
    return p;
}
