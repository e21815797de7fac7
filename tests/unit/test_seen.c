/* Unit tests of sy_seen, the router's duplicate guard: membership by exact bytes (not by prefix,
 * not by a NUL inside), through many growths, for ids short and longer than a chunk. */
#include <stdio.h>
#include <stdlib.h>

#include "sy_seen.h"
#include "sy_test.h"

int main(void)
{
    sy_seen_t *s = sy_seen_new();
    CHECK(s != NULL);
    CHECK(sy_seen_count(s) == 0);
    CHECK(!sy_seen_contains(s, "job-1", 5));

    CHECK(sy_seen_add(s, "job-1", 5));
    CHECK(!sy_seen_add(s, "job-1", 5)); /* already there */
    CHECK(sy_seen_contains(s, "job-1", 5));
    CHECK(!sy_seen_contains(s, "job-", 4)); /* a prefix is another id */
    CHECK(!sy_seen_contains(s, "job-10", 6));
    CHECK(sy_seen_add(s, "job-10xyz", 6)); /* only len bytes count */
    CHECK(sy_seen_contains(s, "job-10", 6));
    CHECK(!sy_seen_contains(s, "job-10xyz", 9));
    CHECK(sy_seen_count(s) == 2);

    /* 100,000 ids: the table grows many times; each is found, and only once */
    char id[64];
    int missing = 0, readded = 0;
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(id, sizeof(id), "bulk-%d", i);
        if (!sy_seen_add(s, id, (size_t)n))
            readded++;
    }
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(id, sizeof(id), "bulk-%d", i);
        missing += !sy_seen_contains(s, id, (size_t)n);
        readded += sy_seen_add(s, id, (size_t)n);
    }
    CHECK(missing == 0 && readded == 0);
    CHECK(!sy_seen_contains(s, "bulk-100000", 11));
    CHECK(sy_seen_count(s) == 100002);

    /* an id longer than a chunk of copies */
    size_t big = 100000;
    char *long_id = malloc(big);
    CHECK(long_id != NULL);
    if (long_id) {
        memset(long_id, 'x', big);
        CHECK(sy_seen_add(s, long_id, big));
        CHECK(sy_seen_contains(s, long_id, big));
        CHECK(!sy_seen_contains(s, long_id, big - 1));
        CHECK(sy_seen_add(s, "after-long", 10)); /* copies go on after it */
        CHECK(sy_seen_contains(s, "after-long", 10));
        free(long_id);
    }
    sy_seen_destroy(s);
    sy_seen_destroy(NULL);
    SY_TEST_DONE();
}
