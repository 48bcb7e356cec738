/*
 * invariant.h: invariants that execute.
 *
 * ACC_INVARIANT(cond, fmt, ...) states a property the code keeps (the allocator's byte count, a
 * Merkle layout, debits = credits). In Debug builds (ACCRUE_DEBUG, which build.zig defines for
 * -Doptimize=Debug and the asan/valgrind scripts define too, so every test run checks them) a false
 * invariant prints where and why and aborts: a broken invariant is a bug, never an input error, so
 * it must never be reachable from anything a user or an agent sends. In release builds the
 * condition is not evaluated; keep it free of side effects.
 */
#ifndef ACCRUE_BASE_INVARIANT_H
#define ACCRUE_BASE_INVARIANT_H

/* ACC_INVARIANTS_ON is 1 when invariants execute: `if (ACC_INVARIANTS_ON) check_whole_tree(t);` for a
 * check that needs a loop (the compiler drops it in release builds, and still type-checks it). */
#ifdef ACCRUE_DEBUG
#define ACC_INVARIANTS_ON 1
#include <stdio.h>
#include <stdlib.h>
#define ACC_INVARIANT(cond, ...)                                                               \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            abort();                                                                           \
        }                                                                                      \
    } while (0)
#else
#define ACC_INVARIANTS_ON 0
#define ACC_INVARIANT(cond, ...) ((void)sizeof(cond))
#endif

#endif
