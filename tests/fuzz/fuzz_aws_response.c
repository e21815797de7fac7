/* fuzz_aws_response: the AWS client's parsers of what AWS endpoints (or emulators, proxies)
 * answer — sy_aws_parse_error on JSON 1.1 / REST-JSON / S3 / query-protocol error bodies,
 * sy_aws_s3_parse_listing on ListObjectsV2 answers, the small XML reader
 * (sy_aws_xml_find, sy_aws_xml_text) they are built on, and sy_http_response_header on a
 * response header block. The input is "<body>\0<x-amzn-ErrorType header / header block>".
 * Invariants: error code and message are NUL-terminated within their buffers (whatever the
 * size, 1 byte included) and one printable line; an element's content lies inside the input
 * and its text is no longer than its content; a listing's objects all have keys, and a
 * truncated listing has a continuation token; a header value fits its buffer and is trimmed. */
#include <ctype.h>

#include "fuzz.h"
#include "sy_aws.h"
#include "sy_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static void check_line(const char *s, size_t size, const char *what)
{
    size_t n = strnlen(s, size);
    FUZZ_ASSERT(n < size, "%s not NUL-terminated within %zu bytes", what, size);
    FUZZ_ASSERT(!memchr(s, '\n', n) && !memchr(s, '\r', n), "%s has a line break", what);
}

static void parse_error(const char *body, size_t len, const char *header)
{
    static const size_t sizes[] = {1, 2, 8, 64, 256};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char code[256], msg[256];
        memset(code, 'x', sizeof(code));
        memset(msg, 'x', sizeof(msg));
        sy_aws_parse_error(body, len, header, code, sizes[i], msg, sizes[i]);
        check_line(code, sizes[i], "error code");
        check_line(msg, sizes[i], "error message");
        FUZZ_ASSERT(!strchr(code, '#') && !strchr(code, ':'), "code \"%s\" keeps a prefix/suffix",
                    code);
    }
}

static void xml(const char *body, size_t len)
{
    static const char *const tags[] = {"Error",    "Code", "Message",     "ListBucketResult",
                                       "Contents", "Key",  "Credentials", "a"};
    const char *end = body + len;
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        const char *cend = NULL;
        const char *c = sy_aws_xml_find(body, end, tags[i], &cend);
        if (c) {
            FUZZ_ASSERT(c >= body && c <= end && cend >= c && cend <= end,
                        "<%s>: content [%td, %td) outside [0, %zu)", tags[i], c - body, cend - body,
                        len);
            char *text = sy_aws_xml_text(body, end, tags[i]);
            FUZZ_ASSERT(text, "<%s> found but has no text", tags[i]);
            FUZZ_ASSERT(strlen(text) <= (size_t)(cend - c), "<%s> text longer than its content",
                        tags[i]);
            free(text);
        } else {
            FUZZ_ASSERT(!sy_aws_xml_text(body, end, tags[i]), "<%s> text without element", tags[i]);
        }
    }
    sy_aws_s3_listing_t l;
    sy_err_t err = SY_ERR_INIT;
    if (sy_aws_s3_parse_listing(body, len, &l, &err) == SY_OK) {
        for (size_t i = 0; i < l.n; i++)
            FUZZ_ASSERT(l.objects[i].key, "object %zu without a key", i);
        FUZZ_ASSERT(!l.truncated || l.next_token, "truncated without a token");
        sy_aws_s3_listing_clear(&l);
    } else {
        FUZZ_ASSERT(l.n == 0 && !l.objects && !l.next_token && err.msg[0],
                    "a failed listing left data or no message");
    }
}

static void headers(const char *block, size_t len)
{
    static const char *const names[] = {"Content-Range", "x-amzn-ErrorType", "content-length",
                                        "x-amz-request-id", "Retry-After"};
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    resp.headers = (char *)block;
    resp.headers_len = len;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char out[64];
        if (sy_http_response_header(&resp, names[i], out, sizeof(out))) {
            size_t n = strnlen(out, sizeof(out));
            FUZZ_ASSERT(n < sizeof(out), "header value not NUL-terminated");
            FUZZ_ASSERT(
                !n || (out[0] != ' ' && out[0] != '\t' && !isspace((unsigned char)out[n - 1])),
                "header value \"%s\" not trimmed", out);
        } else {
            FUZZ_ASSERT(out[0] == '\0', "absent header but out = \"%s\"", out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *header;
    const uint8_t *tail;
    size_t tail_len;
    /* the body is exactly the input's first part, in a buffer of its own size (a read past it
     * is an ASan report); the header is the rest as a C string */
    fuzz_split(data, size, "", 1, &header, &tail, &tail_len);
    size_t body_len = strlen(header);
    char *body = malloc(body_len ? body_len : 1);
    if (!body)
        abort();
    memcpy(body, data, body_len);
    char *hdr = fuzz_cstr(tail, tail_len);

    parse_error(body, body_len, hdr);
    parse_error(body, body_len, NULL);
    xml(body, body_len);
    headers(hdr, strlen(hdr));

    free(hdr);
    free(header);
    free(body);
    return 0;
}
