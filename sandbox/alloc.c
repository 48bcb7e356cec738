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
 * Built with ACCRUE_SYSTEM_MALLOC (valgrind and ASan runs), it uses glibc malloc instead.
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
#else
#include <jemalloc/jemalloc.h>
#define heap_malloc(n) mallocx(n, 0)
#define heap_realloc(p, n) rallocx(p, n, 0)
#define heap_free(p, n) sdallocx(p, n, 0)
#define heap_free_unsized(p) dallocx(p, 0)
#endif

/* Can the heap grow by grow bytes and stay within limit? */
static inline bool fits(const sbx_heap_t *heap, size_t grow, size_t limit) {
    return heap->used <= limit && grow <= limit - heap->used;
}

void *sbx_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sbx_heap_t *heap = ud;
    if (ptr == NULL) osize = 0; /* then osize only says what kind of object Lua is making */
    ACC_INVARIANT(osize <= heap->used, "sandbox heap: Lua gives back a %zu-byte block, only %zu bytes are counted",
                  osize, heap->used);

    if (nsize == 0) {
        if (ptr) {
            if (heap->unsized) heap_free_unsized(ptr);
            else heap_free(ptr, osize);
            heap->used -= osize;
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
    void *p = ptr ? heap_realloc(ptr, nsize) : heap_malloc(nsize);
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
