/* testlib.h: the assertions of the C unit tests. Each test file includes it
 * once; a failed check prints where and what, and counting goes on, so one
 * run reports every failure. main ends with `return testlib_report();`. */
#ifndef HA_TESTLIB_H
#define HA_TESTLIB_H

#include <stdio.h>
#include <string.h>

static int passed, failed; /* checks so far */

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* got is a string (NULL fails) equal to want. */
#define CHECK_STR(got, want)                                                           \
    do {                                                                               \
        const char *g_ = (got), *w_ = (want);                                          \
        if (g_ != NULL && strcmp(g_, w_) == 0) {                                       \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: %s\n  got:  %s\n  want: %s\n", __FILE__, __LINE__, \
                    #got, g_ ? g_ : "(null)", w_);                                     \
        }                                                                              \
    } while (0)

#define CHECK_U64(got, want)                                                           \
    do {                                                                               \
        unsigned long long g_ = (got), w_ = (want);                                    \
        if (g_ == w_) {                                                                \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: %s = %llu, want %llu\n", __FILE__, __LINE__, #got, \
                    g_, w_);                                                           \
        }                                                                              \
    } while (0)

#define CHECK_INT(got, want)                                                                  \
    do {                                                                                      \
        long long g_ = (got), w_ = (want);                                                    \
        if (g_ == w_) {                                                                       \
            passed++;                                                                         \
        } else {                                                                              \
            failed++;                                                                         \
            fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, g_, w_); \
        }                                                                                     \
    } while (0)

/* Prints "N passed, M failed"; returns main's exit status. */
static inline int testlib_report(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

#endif
