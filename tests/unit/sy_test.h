/* sy_test: the few assertion macros the unit tests share; a failed check is reported and
 * counted, and SY_TEST_DONE() exits non-zero if any failed. */
#ifndef SY_TEST_H
#define SY_TEST_H

#include <stdio.h>
#include <stdlib.h>
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

/* The bytes of file dir/name (captured answers, fixtures), NUL-terminated, malloc'd (the caller
 * frees); *len (may be NULL) receives their count. A missing file ends the test (exit 2). */
__attribute__((unused)) static char *sy_test_slurp(const char *dir, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        exit(2);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

#define SY_TEST_DONE()                                                                             \
    do {                                                                                           \
        fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, sy_test_checks, sy_test_failures); \
        return sy_test_failures ? 1 : 0;                                                           \
    } while (0)

#endif
