/* Unit tests of sy_sha256: the FIPS 180-4 / NIST example vectors, and incremental updates
 * split at every position giving the one-shot digest. */
#include "sy_sha256.h"
#include "sy_test.h"

#include <stdlib.h>
#include <string.h>

static void hex_of(const unsigned char *d, char *out)
{
    for (int i = 0; i < SY_SHA256_LEN; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

int main(void)
{
    char hex[65];
    sy_sha256_hex("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sy_sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 448 bits */
    sy_sha256_hex(two, strlen(two), hex);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* one million 'a', fed in uneven pieces */
    sy_sha256_t s;
    unsigned char d[SY_SHA256_LEN];
    char *a = malloc(1000000);
    CHECK(a != NULL);
    if (a) {
        memset(a, 'a', 1000000);
        sy_sha256_init(&s);
        for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 % 997 + 1)
            sy_sha256_update(&s, a + off, off + step > 1000000 ? 1000000 - off : step);
        sy_sha256_final(&s, d);
        hex_of(d, hex);
        CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        free(a);
    }

    /* every split point of a two-block message agrees with the one-shot digest */
    char msg[130], want[65];
    for (int i = 0; i < 130; i++)
        msg[i] = (char)('A' + i % 26);
    sy_sha256_hex(msg, sizeof(msg), want);
    CHECK_STR(want,
              "d237eb9bdf81de98f488a58324ce84be83875c74427fa50892dcf22affcfa985"); /* hashlib */
    for (size_t cut = 0; cut <= sizeof(msg); cut++) {
        sy_sha256_init(&s);
        sy_sha256_update(&s, msg, cut);
        sy_sha256_update(&s, msg + cut, sizeof(msg) - cut);
        sy_sha256_final(&s, d);
        hex_of(d, hex);
        CHECK_STR(hex, want);
    }
    SY_TEST_DONE();
}
