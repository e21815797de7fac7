/* sy_http: one HTTP exchange on a caller-owned, reused libcurl easy handle — response body
 * collected in memory up to a limit, response headers kept for look-up, transport failures
 * classified retriable or not. Used by the AWS client and credential providers. */
#ifndef SY_HTTP_H
#define SY_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "sy_err.h"

/* A new easy handle, after curl_global_init has run exactly once in the process (guarded, so
 * concurrent first calls are safe). Free it with curl_easy_cleanup. A handle is not thread-safe:
 * one thread uses it at a time. Reusing it across requests reuses its connections. Returns NULL
 * and fills err on failure. */
CURL *sy_http_handle_new(sy_err_t *err);

typedef struct sy_http_request {
    const char *method; /* "GET" when NULL; "POST", "PUT", "DELETE", "HEAD" */
    const char *url;    /* absolute, already percent-encoded; its path is sent as is (no "../"
                         * folding) */
    const struct curl_slist *headers; /* borrowed, "Name: value" lines; NULL = none */
    const void *body;                 /* borrowed; NULL = no body */
    size_t body_len;
    long timeout_ms;         /* whole exchange; <= 0 means 30000 (never unbounded) */
    long connect_timeout_ms; /* <= 0 means timeout_ms */
    size_t max_body;         /* a longer response fails with SY_ERR_TOO_LARGE; 0 = 16 MiB */
    /* SigV4 signing by libcurl: CURLOPT_AWS_SIGV4 ("aws:amz:<region>:<service>") and the
     * "<access key id>:<secret key>" pair. Both NULL for an unsigned request. curl copies them;
     * nothing here is logged. */
    const char *aws_sigv4;
    const char *userpwd;
} sy_http_request_t;

typedef struct sy_http_response {
    long status; /* HTTP status; 0 when no response arrived */
    char *body;  /* NUL-terminated (body_len excludes the NUL); owned by the response */
    size_t body_len;
    char *headers; /* the final response's header block, "Name: value\r\n" lines; owned */
    size_t headers_len;
    long connects; /* new connections this exchange opened (0 when one was reused) */
    /* Transport failures only: true when the request certainly never reached the server
     * (name resolution or connect failed), so repeating it cannot duplicate its effect. */
    bool not_sent;
} sy_http_response_t;

#define SY_HTTP_RESPONSE_INIT                                                                      \
    {                                                                                              \
        0, NULL, 0, NULL, 0, 0, false                                                              \
    }

/* Performs req on curl (options from an earlier request are reset first; live connections are
 * kept). Returns SY_OK when an HTTP response arrived, whatever its status. Otherwise fills err:
 * SY_ERR_TIMEOUT (retriable) when the timeout expired, SY_ERR_HTTP retriable for connection
 * failures (refused, reset, DNS, TLS handshake), SY_ERR_HTTP fatal for a malformed request,
 * SY_ERR_TOO_LARGE when the body exceeds max_body. resp is cleared first and must be released
 * with sy_http_response_clear in every case. */
sy_err_code_t sy_http_perform(CURL *curl, const sy_http_request_t *req, sy_http_response_t *resp,
                              sy_err_t *err);

void sy_http_response_clear(sy_http_response_t *resp);

/* The value of the first header called name (case-insensitive) in resp, trimmed, copied into
 * out; false (and out = "") when absent or when it does not fit. */
bool sy_http_response_header(const sy_http_response_t *resp, const char *name, char *out,
                             size_t size);

/* Percent-encodes s (RFC 3986: everything but A-Z a-z 0-9 - _ . ~, and '/' when keep_slash)
 * into a malloc'd string the caller frees; NULL on allocation failure. */
char *sy_http_url_encode(const char *s, bool keep_slash);

/* Decodes %XX sequences (a '+' stays a '+') into a malloc'd string; NULL on allocation
 * failure. Malformed escapes are copied as they are. */
char *sy_http_url_decode(const char *s, size_t len);

#endif
