/*
 * check.h: the tiny test harness every tests/test_*.c uses.
 *
 * A test is a function; CHECK records a failure with its line and goes on, so one run shows every
 * broken expectation. check_finish() prints "<file>: N passed, N failed" for tests/run.sh to add up
 * and returns the exit status.
 */
#ifndef ACCRUE_TESTS_CHECK_H
#define ACCRUE_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed, check_current_failed;
static const char *check_current;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "  FAIL %s (%s:%d): %s\n", check_current, __FILE__, __LINE__, \
                    #cond);                                                              \
            check_current_failed = 1;                                                    \
        }                                                                                \
    } while (0)

#define CHECK_MSG(cond, ...)                                                             \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "  FAIL %s (%s:%d): %s: ", check_current, __FILE__, __LINE__, \
                    #cond);                                                              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            check_current_failed = 1;                                                    \
        }                                                                                \
    } while (0)

#define CHECK_STREQ(a, b)                                                                \
    do {                                                                                 \
        const char *check_a_ = (a), *check_b_ = (b);                                     \
        CHECK_MSG(check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0,               \
                  "got \"%s\", want \"%s\"", check_a_ ? check_a_ : "(null)",            \
                  check_b_ ? check_b_ : "(null)");                                       \
    } while (0)

/* Runs one test function and counts it. */
#define RUN(fn)                                                   \
    do {                                                          \
        check_current = #fn;                                      \
        check_current_failed = 0;                                 \
        fn();                                                     \
        if (check_current_failed) {                               \
            check_failed++;                                       \
            fprintf(stderr, "not ok %s\n", #fn);                  \
        } else {                                                  \
            check_passed++;                                       \
        }                                                         \
    } while (0)

static inline int check_finish(const char *suite) {
    printf("# %s: %d passed, %d failed\n", suite, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
