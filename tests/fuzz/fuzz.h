/* fuzz.h: what the fuzz targets share — quiet logging, NUL-terminated copies of the input,
 * splitting an input in two, and FUZZ_ASSERT for invariants (a failed one aborts, which
 * libFuzzer reports as a crash with the input saved). */
#ifndef SY_FUZZ_H
#define SY_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Errors and warnings stay visible; the info/debug chatter of the modules would drown the
 * fuzzer's own output. */
static inline void fuzz_quiet(void)
{
    sy_log_set_level(SY_LOG_ERROR);
}

/* A malloc'd NUL-terminated copy of data[0..size) (the parsers that take C strings stop at an
 * embedded NUL, as they would on a real answer). Never NULL: out of memory aborts. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits data at the first occurrence of the n bytes at sep (n >= 1; not included in either
 * part): *head is a malloc'd C string of what comes before, *tail and *tail_len what comes
 * after (pointing into data). Without sep, everything is the head and the tail is empty. */
static inline void fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t n,
                              char **head, const uint8_t **tail, size_t *tail_len)
{
    size_t cut = size;
    for (size_t i = 0; i + n <= size; i++) {
        if (!memcmp(data + i, sep, n)) {
            cut = i;
            break;
        }
    }
    *head = fuzz_cstr(data, cut);
    *tail = cut < size ? data + cut + n : data + size;
    *tail_len = cut < size ? size - cut - n : 0;
}

/* The contents of a file of the source tree (SY_SOURCE_DIR/rel), malloc'd and NUL-terminated;
 * NULL when it cannot be read. For seeding targets with the repository's own data at start. */
static inline char *fuzz_read_source_file(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", SY_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *b = realloc(buf, cap = cap * 2 + 8192);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

#endif
