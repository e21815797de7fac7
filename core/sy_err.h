/* sy_err: error objects shared by every module — a code, a retriable flag and a message. */
#ifndef SY_ERR_H
#define SY_ERR_H

#include <stdbool.h>
#include <stddef.h>

/* Error codes. Each names one class of failure a caller may act on differently. */
typedef enum sy_err_code {
    SY_OK = 0,
    SY_ERR_INVALID_ARG, /* bad input from a user or a message: not retriable */
    SY_ERR_CONFIG,      /* unknown key, bad value */
    SY_ERR_IO,          /* file or socket */
    SY_ERR_NOMEM,
    SY_ERR_TRUNCATED,      /* record shorter than its schema needs */
    SY_ERR_BAD_MAGIC,      /* framing byte(s) neither Confluent nor single-object */
    SY_ERR_UNKNOWN_SCHEMA, /* schema id or fingerprint we cannot resolve */
    SY_ERR_WRONG_TYPE,     /* a schema of another record type than expected */
    SY_ERR_TOO_LARGE,      /* string, bytes, array or map beyond the configured limit */
    SY_ERR_SCHEMA,         /* a schema failed to parse or resolve */
    SY_ERR_JSON,           /* invalid JSON, or JSON that does not fit the schema */
    SY_ERR_REGISTRY,       /* Schema Registry said no, or answered garbage */
    SY_ERR_KAFKA,
    SY_ERR_DATABASE,
    SY_ERR_HTTP,
    SY_ERR_AWS,
    SY_ERR_TIMEOUT,
    SY_ERR_AUTH, /* a service refused our credentials or certificate, or we did not trust its
                  * certificate (Kafka SASL/TLS, PostgreSQL password/TLS): not retriable until
                  * the configuration changes */
    SY_ERR_NOT_FOUND,
    SY_ERR_CONFLICT,
    SY_ERR_INTERNAL,
} sy_err_code_t;

/* An error: callers allocate it (usually on the stack) and pass a pointer down;
 * a callee that fails fills it. A NULL sy_err_t * is accepted everywhere and ignored. */
typedef struct sy_err {
    sy_err_code_t code;
    bool retriable; /* the same call may succeed later (timeouts, throttling, broker down) */
    char msg[512];
} sy_err_t;

#define SY_ERR_INIT                                                                                \
    {                                                                                              \
        SY_OK, false,                                                                              \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* Fills err (if not NULL) and returns code, so `return sy_err_set(...)` works. The message is
 * valid UTF-8 whatever was cut short to fit it (sy_utf8_scrub): it travels in Avro strings
 * (INVALID reasons, status messages) and PostgreSQL text. */
sy_err_code_t sy_err_set(sy_err_t *err, sy_err_code_t code, bool retriable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes the existing message with context: "context: previous message". */
void sy_err_prefix(sy_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sy_err_clear(sy_err_t *err);

/* Makes s valid UTF-8 in place: a character cut short (a lead byte without all of its
 * continuation bytes, as "%.40s" or a full buffer leaves it) is dropped; any other byte that is
 * not valid UTF-8 (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF)
 * becomes '?'. Returns the new length. */
size_t sy_utf8_scrub(char *s);

/* The length (1-4) of the valid UTF-8 character (RFC 3629: no overlong form, no surrogate,
 * nothing beyond U+10FFFF) that s[0..avail) starts with; 0 when it starts with none. Reads no
 * byte past the first one that is not a continuation of the character. */
size_t sy_utf8_char_len(const void *s, size_t avail);

/* Stable lower-case name of a code ("truncated", "bad_magic", ...), used in dead-letter headers. */
const char *sy_err_code_name(sy_err_code_t code);

#endif
