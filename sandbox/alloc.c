/*
 * alloc.c: the allocator of every sandbox's Lua heap.
 *
 * The cap. Lua tells the allocator the size of the block it frees or resizes, so the cap is kept
 * exactly on the sizes Lua asked for. A refused allocation makes Lua collect garbage and try once
 * more (lmem.c, tryagain). When that second request is refused too, the script has hit its cap for
 * good: the allocator records the memory limit (sbx_heap_exhausted arms the stop, which no pcall or
 * __close can catch) and, rather than fail, grants the request from a reserve of SBX_HEAP_RESERVE
 * bytes past the cap. Lua must never see an allocation fail where it has no protected call to raise
 * in (a message for resuming a dead coroutine, "error in error handling" in lua_resetthread, the
 * registry's own slots): there it would call abort() and take the host down. The reserve is open
 * only until the turn ends, and the script itself never runs another instruction once it is open.
 *
 * Invariant: heap->used is the sum of the sizes of the blocks Lua holds; it never exceeds cap
 * while the reserve is closed, and never exceeds cap + SBX_HEAP_RESERVE. (ACC_INVARIANT checks
 * that no block given back is bigger than the count, and sandbox_close that the count ends at 0.)
 *
 * Resident memory. The cap counts the bytes Lua asks for, not the pages an allocator holds: a
 * script that keeps one small object per page, size class after size class, pinned 152 MiB of
 * pages under a 16 MiB cap with 5.6 MiB live in the shared allocator. So a capped heap lives in a
 * region of its own (region.c: a TLSF allocator over address space reserved at SBX_PAGES_PER_CAP
 * times the cap, plus a reserve pool of twice SBX_HEAP_RESERVE and its bitmap), which is the hard
 * bound on its resident pages by construction. When fragmentation has used up the region, an
 * allocation fails as at the cap: Lua collects and asks again, then the memory limit, with the
 * reserve pool (which the main pool's fragmentation cannot touch) behind the reserve's bytes.
 * Free pages go back to the kernel at the end of every turn that freed anything (an idle sandbox
 * keeps only the pages its live blocks are on) and during a turn after each cap's worth of frees.
 *
 * A heap with no cap (tests, `accrue run --mem-limit 0`) or a cap too big for a region
 * (SBX_REGION_MAX_HEAP / SBX_PAGES_PER_CAP, about 5 GiB) has no region: its blocks come from the
 * process's malloc, jemalloc. So does every heap when built with ACCRUE_SYSTEM_MALLOC for ASan and
 * valgrind, so that those tools see each of Lua's blocks (region.c has tests of its own under
 * them); but not under ThreadSanitizer, which checks the regions' sharing between threads.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/base/invariant.h"
#include "sandbox/internal.h"
#include "sandbox/region.h"

#if defined(ACCRUE_SYSTEM_MALLOC) && !defined(__SANITIZE_THREAD__)
#define HEAPS_ON_MALLOC 1
#else
#define HEAPS_ON_MALLOC 0
#endif

/* The region's main pool for a cap, or 0 when the cap gets none. */
static size_t region_heap_for(size_t cap) {
    if (HEAPS_ON_MALLOC || cap == 0 || cap > SBX_REGION_MAX_HEAP / SBX_PAGES_PER_CAP) return 0;
    return cap * SBX_PAGES_PER_CAP;
}

int sbx_heap_open(sbx_heap_t *heap) {
    size_t size = region_heap_for(heap->cap);
    if (size == 0) return 0;
    heap->region = sbx_region_open(size, 2 * SBX_HEAP_RESERVE);
    return heap->region ? 0 : -1;
}

void sbx_heap_close(sbx_heap_t *heap) {
    sbx_region_close(heap->region);
    heap->region = NULL;
}

uintptr_t sbx_heap_base(const sbx_heap_t *heap) { return heap->region ? sbx_region_base(heap->region) : 0; }

void sbx_heap_prefetch(const sbx_heap_t *heap) {
    if (heap->region) sbx_region_prefetch(heap->region);
}

void sbx_heap_trim(sbx_heap_t *heap) {
    if (heap->region && heap->freed) sbx_region_purge(heap->region);
    heap->freed = 0;
}

/* ---- blocks --------------------------------------------------------------------------------- */

/* A new block, or block ptr of osize bytes resized, to nsize bytes (not 0); reserve: the region's
 * reserve pool may serve it. NULL when there is no room (ptr untouched). */
static inline void *block_resize(sbx_heap_t *heap, void *ptr, size_t osize, size_t nsize, bool reserve) {
    if (heap->region)
        return ptr ? sbx_region_realloc(heap->region, ptr, osize, nsize, reserve)
                   : sbx_region_alloc(heap->region, nsize, reserve);
    return realloc(ptr, nsize);
}

static inline void block_free(sbx_heap_t *heap, void *ptr, size_t osize) {
    if (heap->region) sbx_region_free(heap->region, ptr, osize);
    else free(ptr);
}

/* Can the heap grow by grow bytes and stay within limit? */
static inline bool fits(const sbx_heap_t *heap, size_t grow, size_t limit) {
    return heap->used <= limit && grow <= limit - heap->used;
}

/* A growth the cap or the region refused. The first refusal lets Lua collect and ask again; the
 * second is the memory limit, and opens the reserve. NULL when even that has no room. */
static void *at_limit(sbx_heap_t *heap, void *ptr, size_t osize, size_t nsize) {
    if (heap->cap == 0) return NULL; /* no cap: the host's malloc failed, nothing to reserve */
    if (!heap->over) {
        if (!heap->refused_last) {
            heap->refused_last = true;
            return NULL;
        }
        heap->over = true; /* still too big after a full collection: the limit is hit */
        sbx_heap_exhausted(heap);
    }
    if (!fits(heap, nsize - osize, heap->cap + SBX_HEAP_RESERVE)) return NULL;
    return block_resize(heap, ptr, osize, nsize, true);
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
            /* Free pages wait for the end of the turn, or for a cap's worth of frees. */
            if (heap->freed >= heap->cap && heap->freed >= SBX_PURGE_MIN && heap->region) sbx_heap_trim(heap);
        }
        return NULL;
    }
    if (nsize <= osize) { /* a shrink: Lua assumes it cannot fail */
        void *p = block_resize(heap, ptr, osize, nsize, false);
        heap->used -= osize - nsize;
        heap->freed += osize - nsize;
        return p ? p : ptr; /* malloc's realloc failed: the old block is still big enough */
    }
    size_t grow = nsize - osize;
    void *p = NULL;
    if (!heap->cap || fits(heap, grow, heap->cap)) p = block_resize(heap, ptr, osize, nsize, heap->over);
    if (!p) p = at_limit(heap, ptr, osize, nsize);
    if (!p) {
        heap->refusals++;
        return NULL;
    }
    heap->used += grow;
    heap->refused_last = false;
    if (heap->used > heap->peak && !heap->over) heap->peak = heap->used; /* the script's own peak */
    ACC_INVARIANT(!heap->cap || heap->used <= heap->cap + (heap->over ? SBX_HEAP_RESERVE : 0),
                  "sandbox heap: %zu bytes used past cap %zu", heap->used, heap->cap);
    return p;
}
