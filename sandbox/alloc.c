/*
 * alloc.c: the allocator of every sandbox's Lua heap.
 *
 * Lua tells the allocator the size of the block it frees or resizes, so jemalloc's sized calls
 * (sdallocx, rallocx) skip the size lookup, and the cap can be kept exactly on the sizes Lua asked
 * for. A refused allocation makes Lua collect garbage and try once more before it raises a memory
 * error; the sandbox turns that error into the memory limit (sbx_rethrow_if_stopped).
 *
 * Invariant: heap->used is the sum of the sizes of the blocks Lua holds, and never exceeds cap.
 * Built with ACCRUE_SYSTEM_MALLOC (valgrind and ASan runs), it uses glibc malloc instead.
 */
#include <string.h>

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

void *sbx_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sbx_heap_t *heap = ud;
    if (ptr == NULL) osize = 0; /* then osize only says what kind of object Lua is making */

    if (nsize == 0) {
        if (ptr) {
            if (heap->unsized) heap_free_unsized(ptr);
            else heap_free(ptr, osize);
            heap->used -= osize;
        }
        return NULL;
    }
    if (nsize > osize && heap->cap && nsize - osize > heap->cap - heap->used) {
        heap->refusals++;
        return NULL;
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
    if (heap->used > heap->peak) heap->peak = heap->used;
    return p;
}
