/* sy_test: the few assertion macros the unit tests share; a failed check is reported and
 * counted, and SY_TEST_DONE() exits non-zero if any failed. */
#ifndef SY_TEST_H
#define SY_TEST_H

#include <stdio.h>
#include <string.h>

static int sy_test_failures, sy_test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        sy_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            sy_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        sy_test_checks++;                                                                          \
        if (!_a || !_b || strcmp(_a, _b)) {                                                        \
            sy_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s == \"%s\", expected \"%s\"\n", __FILE__,  \
                    __LINE__, #a, _a ? _a : "(null)", _b ? _b : "(null)");                         \
        }                                                                                          \
    } while (0)

#define SY_TEST_DONE()                                                                             \
    do {                                                                                           \
        fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, sy_test_checks, sy_test_failures); \
        return sy_test_failures ? 1 : 0;                                                           \
    } while (0)

#endif
