/*
 * region.h: the allocator behind a capped sandbox's Lua heap (region.c). Not for other modules.
 *
 * A region is address space reserved for one heap: a two-level segregated fit allocator (TLSF)
 * over it hands out blocks, whose pages the kernel supplies as they are first touched. Nothing a
 * heap does can make it hold more than its region, so the region's size is the bound on the
 * heap's resident memory. Free runs of whole pages go back to the kernel when the owner says
 * (sbx_region_purge), not on every free.
 *
 * The caller says the size of every block it frees or resizes (Lua does), so blocks carry no
 * header: a block of n bytes takes n rounded up to 8. A region holds a main pool of heap_bytes
 * and a reserve pool of reserve_bytes that only sbx_region_*(..., reserve = true) draws from.
 *
 * A region belongs to one thread at a time (its sandbox's); open and close may run on any thread.
 */
#ifndef ACCRUE_SANDBOX_REGION_H
#define ACCRUE_SANDBOX_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sbx_region sbx_region_t;

/* Blocks are multiples of this, and aligned to it (what Lua needs: LUAI_MAXALIGN is 8). */
#define SBX_REGION_ALIGN 8
/* The largest main pool a region can have (block offsets are 32-bit counts of 8-byte units). */
#define SBX_REGION_MAX_HEAP ((size_t)15 << 30)

/* Reserves a region for a main pool of heap_bytes and a reserve pool of reserve_bytes (both
 * rounded up to pages). NULL when heap_bytes is 0 or past SBX_REGION_MAX_HEAP, or when the address
 * space cannot be had. Close with sbx_region_close. */
sbx_region_t *sbx_region_open(size_t heap_bytes, size_t reserve_bytes);
/* Gives the region back, whatever blocks it still holds. NULL is fine. */
void sbx_region_close(sbx_region_t *r);

/* A block of n bytes (n > 0) from the main pool, or with reserve also from the reserve pool when
 * the main one has no room. NULL when there is none; nothing changed then. */
void *sbx_region_alloc(sbx_region_t *r, size_t n, bool reserve);
/* Resizes block p of old bytes to n bytes (both > 0), in place when it can, else by moving it
 * (copying old bytes), like realloc. A shrink never fails. NULL when there is no room for a
 * growth; p is untouched then. */
void *sbx_region_realloc(sbx_region_t *r, void *p, size_t old, size_t n, bool reserve);
/* Frees block p of n bytes (the size it was given or last resized to). */
void sbx_region_free(sbx_region_t *r, void *p, size_t n);

/* Returns to the kernel the whole pages that no block holds: those above each pool's top, and
 * those inside free blocks that were not returned yet. Costs one madvise per run returned. */
void sbx_region_purge(sbx_region_t *r);

/* The address of the main pool's first block (page-aligned). */
uintptr_t sbx_region_base(const sbx_region_t *r);

/* Starts loading the control data an allocation or a free reads first (the quick lists and the
 * small size classes' lists) into the cache. */
void sbx_region_prefetch(const sbx_region_t *r);

typedef struct sbx_region_stats {
    size_t reserved;  /* bytes of address space the region holds: the bound on its resident pages */
    size_t spanned;   /* bytes from each pool's start to its top: blocks and free blocks between */
    size_t free;      /* bytes in free blocks below the tops */
    size_t cached;    /* bytes in freed blocks kept unmerged for reuse (quick lists) */
    size_t dirty;     /* bytes of pages that may be resident: below the tops, or above them but not
                       * returned yet (an upper bound; free blocks already returned are left out) */
    size_t free_blocks;
} sbx_region_stats_t;
void sbx_region_stats(const sbx_region_t *r, sbx_region_stats_t *out);

/* Walks every free block and checks the allocator's invariants (lists, maps, boundary bits,
 * coalescing). 0, or -1 with a line saying what is broken in why. For tests; O(free blocks). */
int sbx_region_check(const sbx_region_t *r, char *why, size_t len);

#endif
