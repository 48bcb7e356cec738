/*
 * check.h: the test harness every tests/test_*.c uses (and tests/util.h's helpers, which it
 * includes).
 *
 * A test is a void function run by RUN(fn). A check that fails prints where and why and the test
 * goes on, so one run shows every broken expectation; the checks that compare print both sides:
 *
 *   CHECK(cond)                    CHECK_MSG(cond, fmt, ...)      the message says what was seen
 *   CHECK_EQ(got, want)            integers (any width or sign), both values printed
 *   CHECK_STREQ(got, want)         C strings (NULL allowed), both printed
 *   CHECK_CONTAINS(got, part)      got (a C string) contains part
 *   CHECK_MEMEQ(got, want, n)      n bytes, both printed in hex around the first difference
 *   CHECK_SKIP(fmt, ...)           ends the test as skipped, with the reason: counted and shown,
 *                                  never silent (a test that cannot run says so)
 *
 * Output (stdout): one line a test, "ok NAME (12.3 ms)", "not ok NAME (...)" or "skip NAME: why",
 * then check_finish's "# SUITE: N passed, N failed, N skipped", which tests/run.sh adds up. Failure
 * details go to stderr.
 *
 * Filter: ACCRUE_TEST_FILTER=a,b (or the arguments, when main passes them to check_args) runs only
 * the tests whose name contains one of the words, and -c leaves out those that contain c; the
 * others are neither run nor counted.
 *
 * Suites whose cases are data rather than functions (the corpus) use check_begin / check_end (or
 * check_end_ms with a time of their own) around each case, and check_skip_case for one not run.
 */
#ifndef ACCRUE_TESTS_CHECK_H
#define ACCRUE_TESTS_CHECK_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/util.h"

static int check_passed, check_failed, check_skipped, check_not_selected;
static int check_current_failed, check_current_skipped;
static const char *check_current = "(no test)";
static double check_current_start;
static char check_skip_reason[256];
static const char *check_filter; /* NULL: read ACCRUE_TEST_FILTER */
static int check_filter_read;

/* Takes the test-name filter from the arguments, when there are any (they replace
 * ACCRUE_TEST_FILTER; words joined by commas count as several). */
static inline void check_args(int argc, char **argv) {
    static char joined[1024];
    size_t n = 0;
    for (int i = 1; i < argc && n + 2 < sizeof joined; i++)
        n += (size_t)snprintf(joined + n, sizeof joined - n, "%s%s", n ? "," : "", argv[i]);
    if (n) {
        check_filter = joined;
        check_filter_read = 1;
    }
}

/* Is the test named name selected by the filter? Words are substrings of names; "-word" leaves out
 * the tests it matches; with no plain word, every test not left out is selected. */
static inline int check_selected(const char *name) {
    if (!check_filter_read) {
        check_filter = getenv("ACCRUE_TEST_FILTER");
        check_filter_read = 1;
    }
    if (!check_filter || !*check_filter) return 1;
    int wanted = 0, any_plain = 0;
    for (const char *p = check_filter; *p;) {
        size_t len = strcspn(p, ",");
        int exclude = len > 0 && p[0] == '-';
        if (len > (size_t)exclude) {
            char word[256];
            snprintf(word, sizeof word, "%.*s", (int)(len - (size_t)exclude), p + exclude);
            if (exclude && strstr(name, word)) return 0;
            if (!exclude) {
                any_plain = 1;
                wanted |= strstr(name, word) != NULL;
            }
        }
        p += len;
        if (*p == ',') p++;
    }
    return wanted || !any_plain;
}

/* The start of one check's failure report: "  FAIL test (file:line): " on stderr. */
static inline void check_fail_begin(const char *file, int line) {
    fflush(stdout); /* keep stdout and stderr in order when both go to one file */
    fprintf(stderr, "  FAIL %s (%s:%d): ", check_current, file, line);
    check_current_failed = 1;
}

static inline void check_failf(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void check_failf(const char *file, int line, const char *fmt, ...) {
    check_fail_begin(file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond)                                                    \
    do {                                                               \
        if (!(cond)) check_failf(__FILE__, __LINE__, "%s", #cond);     \
    } while (0)

#define CHECK_MSG(cond, ...)                                           \
    do {                                                               \
        if (!(cond)) {                                                 \
            check_fail_begin(__FILE__, __LINE__);                      \
            fprintf(stderr, "%s: ", #cond);                            \
            fprintf(stderr, __VA_ARGS__);                              \
            fputc('\n', stderr);                                       \
        }                                                              \
    } while (0)

/* 1 when x has a signed integer type (the operand is not evaluated). */
#define CHECK_IS_SIGNED_(x)                                                                           \
    _Generic((x), signed char: 1, short: 1, int: 1, long: 1, long long: 1, char: ((char)-1 < 0), \
             default: 0)

static inline void check_fail_eq(const char *file, int line, const char *got_text, const char *want_text,
                                 uintmax_t got, uintmax_t want, int is_signed) {
    check_fail_begin(file, line);
    if (is_signed)
        fprintf(stderr, "%s == %s: got %jd, want %jd\n", got_text, want_text, (intmax_t)got, (intmax_t)want);
    else
        fprintf(stderr, "%s == %s: got %ju (0x%jx), want %ju (0x%jx)\n", got_text, want_text, got, got, want, want);
}

/* Compares values, each evaluated once: int -1 and unsigned 4294967295 are different. */
#define CHECK_EQ(got, want)                                                                               \
    do {                                                                                                  \
        uintmax_t check_got_ = (uintmax_t)(got), check_want_ = (uintmax_t)(want);                        \
        if (check_got_ != check_want_)                                                                    \
            check_fail_eq(__FILE__, __LINE__, #got, #want, check_got_, check_want_,                       \
                          CHECK_IS_SIGNED_(got) || CHECK_IS_SIGNED_(want));                               \
    } while (0)

#define CHECK_STREQ(got, want)                                                                         \
    do {                                                                                               \
        const char *check_a_ = (got), *check_b_ = (want);                                              \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0)                                 \
            check_failf(__FILE__, __LINE__, "%s == %s: got \"%s\", want \"%s\"", #got, #want,          \
                        check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");               \
    } while (0)

#define CHECK_CONTAINS(got, part)                                                                      \
    do {                                                                                               \
        const char *check_a_ = (got), *check_b_ = (part);                                              \
        if (!check_a_ || !check_b_ || !strstr(check_a_, check_b_))                                     \
            check_failf(__FILE__, __LINE__, "%s contains %s: got \"%s\", which lacks \"%s\"", #got,    \
                        #part, check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");        \
    } while (0)

/* Prints bytes [from, to) of p as hex, with "..." where it is cut. */
static inline void check_hex_window(const unsigned char *p, size_t n, size_t from, size_t to) {
    fprintf(stderr, "%s", from ? "..." : "");
    for (size_t i = from; i < to; i++) fprintf(stderr, "%02x", p[i]);
    fprintf(stderr, "%s\n", to < n ? "..." : "");
}

static inline void check_memeq(const char *file, int line, const char *got_text, const char *want_text,
                               const void *got, const void *want, size_t n) {
    const unsigned char *a = got, *b = want;
    if (a && b && memcmp(a, b, n) == 0) return;
    if (!a || !b) {
        check_failf(file, line, "%s == %s: %s is NULL", got_text, want_text, a ? want_text : got_text);
        return;
    }
    size_t at = 0;
    while (a[at] == b[at]) at++;
    size_t from = at > 8 ? at - 8 : 0, to = from + 32 < n ? from + 32 : n;
    check_fail_begin(file, line);
    fprintf(stderr, "%s == %s (%zu bytes): first difference at byte %zu\n", got_text, want_text, n, at);
    fprintf(stderr, "    got  @%zu: ", from);
    check_hex_window(a, n, from, to);
    fprintf(stderr, "    want @%zu: ", from);
    check_hex_window(b, n, from, to);
}

#define CHECK_MEMEQ(got, want, n) check_memeq(__FILE__, __LINE__, #got, #want, (got), (want), (n))

/* Ends the current test as skipped (a failure already recorded in it still counts as failed). */
#define CHECK_SKIP(...)                                                                   \
    do {                                                                                  \
        snprintf(check_skip_reason, sizeof check_skip_reason, __VA_ARGS__);               \
        check_current_skipped = 1;                                                        \
        return;                                                                           \
    } while (0)

/* Starts a test named name; returns 0 (and counts nothing) when the filter leaves it out. */
static inline int check_begin(const char *name) {
    if (!check_selected(name)) {
        check_not_selected++;
        return 0;
    }
    check_current = name;
    check_current_failed = 0;
    check_current_skipped = 0;
    check_skip_reason[0] = '\0';
    check_current_start = test_now_ms();
    return 1;
}

/* Counts and reports the current test, which took ms milliseconds. */
static inline void check_end_ms(double ms) {
    if (check_current_failed) {
        check_failed++;
        printf("not ok %s (%.1f ms)\n", check_current, ms);
    } else if (check_current_skipped) {
        check_skipped++;
        printf("skip %s: %s\n", check_current, check_skip_reason);
    } else {
        check_passed++;
        printf("ok %s (%.1f ms)\n", check_current, ms);
    }
    fflush(stdout);
}

static inline void check_end(void) {
    check_end_ms(test_now_ms() - check_current_start);
}

/* Counts a case that is not run, with the reason (a known issue, a missing tool). */
static inline void check_skip_case(const char *name, const char *reason) {
    if (!check_selected(name)) {
        check_not_selected++;
        return;
    }
    check_skipped++;
    printf("skip %s: %s\n", name, reason);
    fflush(stdout);
}

/* Runs one test function, timed, if the filter selects it. */
#define RUN(fn)                       \
    do {                              \
        if (check_begin(#fn)) {       \
            fn();                     \
            check_end();              \
        }                             \
    } while (0)

/* Prints the suite's summary line and returns the exit status (1 when anything failed). */
static inline int check_finish(const char *suite) {
    if (check_not_selected)
        printf("# %s: %d tests not selected by the filter \"%s\"\n", suite, check_not_selected, check_filter);
    printf("# %s: %d passed, %d failed, %d skipped\n", suite, check_passed, check_failed, check_skipped);
    fflush(stdout);
    return check_failed ? 1 : 0;
}

#endif
