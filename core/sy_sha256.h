/* sy_sha256: SHA-256 (FIPS 180-4), for identifiers derived from names — idempotency tokens,
 * shortened names — where a collision would merge two things. Not for secrets: no constant-time
 * guarantees, no HMAC. */
#ifndef SY_SHA256_H
#define SY_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SY_SHA256_LEN 32

/* Incremental hashing: init, any number of updates, final. */
typedef struct sy_sha256 {
    uint32_t h[8];
    uint64_t bytes;        /* message length so far */
    unsigned char buf[64]; /* a partial block */
    size_t used;
} sy_sha256_t;

void sy_sha256_init(sy_sha256_t *s);
void sy_sha256_update(sy_sha256_t *s, const void *data, size_t len);
/* Writes the digest; s must be initialised again before reuse. */
void sy_sha256_final(sy_sha256_t *s, unsigned char out[SY_SHA256_LEN]);

/* One-shot: the digest of data as 64 lowercase hex digits and a NUL. */
void sy_sha256_hex(const void *data, size_t len, char out[2 * SY_SHA256_LEN + 1]);

#endif
