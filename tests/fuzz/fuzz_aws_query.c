/* fuzz_aws_query: SigV4's canonical query string (sy_aws_canonical_query), which the client
 * builds from caller-supplied query strings (EMR on EKS paths, S3 continuation tokens that came
 * back from S3 itself), and the percent-encoding under it (sy_http_url_encode/decode).
 * Invariants: canonicalising is idempotent; the result is sorted pairs "k=v" joined by '&' with
 * only unreserved characters and %XX escapes; decode(encode(s)) == s. */
#include <ctype.h>

#include "fuzz.h"
#include "sy_aws.h"
#include "sy_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static bool unreserved(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '~';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = fuzz_cstr(data, size);
    char *c = sy_aws_canonical_query(q);
    FUZZ_ASSERT(c, "canonical_query gave NULL");
    for (const char *p = c; *p; p++) {
        if (*p == '%')
            FUZZ_ASSERT(isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]),
                        "bad escape in \"%s\"", c);
        else
            FUZZ_ASSERT(unreserved(*p) || *p == '=' || *p == '&', "'%c' in \"%s\"", *p, c);
    }
    char *again = sy_aws_canonical_query(c);
    FUZZ_ASSERT(again && !strcmp(again, c), "not idempotent: \"%s\" -> \"%s\"", c,
                again ? again : "(null)");
    /* sorted: each pair >= the previous one (by key, then value) */
    char *prev = NULL;
    char *save = NULL;
    for (char *pair = strtok_r(again, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        FUZZ_ASSERT(strchr(pair, '='), "pair \"%s\" without '='", pair);
        if (prev) {
            char *pe = strchr(prev, '='), *ce = strchr(pair, '=');
            *pe = *ce = '\0';
            int k = strcmp(prev, pair);
            FUZZ_ASSERT(k < 0 || (k == 0 && strcmp(pe + 1, ce + 1) <= 0), "unsorted at \"%s\"",
                        pair);
            *pe = *ce = '=';
        }
        prev = pair;
    }
    free(again);
    free(c);

    char *enc = sy_http_url_encode(q, size && (data[0] & 1));
    FUZZ_ASSERT(enc, "url_encode gave NULL");
    char *dec = sy_http_url_decode(enc, strlen(enc));
    FUZZ_ASSERT(dec && !strcmp(dec, q), "decode(encode(s)) != s");
    free(dec);
    free(enc);
    free(sy_http_url_decode((const char *)data, size)); /* on raw bytes, not NUL-terminated */
    free(q);
    return 0;
}
