/* fuzz_awscred: the credential providers' parsers of what credential endpoints answer — STS
 * AssumeRoleWithWebIdentity (XML; EKS IRSA), the container endpoint (ECS, EKS Pod Identity) and
 * IMDS credentials (JSON), IMDSv2's token and role-name answers, and the ISO-8601 expiration
 * times inside them. The input is one answer body, given to each parser.
 * Invariants: a parse that fails leaves the credentials empty (nothing half-filled, nothing
 * leaked — the sanitizer checks the leaks); one that succeeds fills key id and secret (STS: and
 * token and expiration); an IMDS token is printable ASCII without spaces (it becomes a header),
 * a role name one line that fits; a time that parses has digits where the format has them. */
#include <time.h>

#include "fuzz.h"
#include "sy_awscred.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static void check(sy_err_code_t rc, const sy_awscred_t *c, bool sts, const char *what)
{
    if (rc != SY_OK) {
        FUZZ_ASSERT(!c->access_key_id && !c->secret_access_key && !c->session_token,
                    "%s failed but left credentials", what);
        return;
    }
    FUZZ_ASSERT(c->access_key_id && c->secret_access_key, "%s: no key", what);
    if (sts)
        FUZZ_ASSERT(c->session_token && c->expiration, "%s: no token or expiration", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    sy_err_t err = SY_ERR_INIT;
    sy_awscred_t c = SY_AWSCRED_INIT;

    check(sy_awscred_parse_sts(body, size, &c, &err), &c, true, "parse_sts");
    sy_awscred_clear(&c);
    check(sy_awscred_parse_json(body, size, &c, &err), &c, false, "parse_json");
    sy_awscred_clear(&c);

    char *token = (char *)"untouched";
    if (sy_awscred_parse_imds_token(body, size, &token, &err) == SY_OK) {
        FUZZ_ASSERT(token && *token, "empty token");
        for (const char *p = token; *p; p++)
            FUZZ_ASSERT(*p > ' ' && *p < 0x7f, "token byte 0x%02x", (unsigned char)*p);
        free(token);
    } else {
        FUZZ_ASSERT(!token && err.msg[0], "failed token parse left %p", (void *)token);
    }
    char role[64];
    if (sy_awscred_parse_imds_role(body, size, role, sizeof(role), &err) == SY_OK)
        FUZZ_ASSERT(role[0] && strlen(role) < sizeof(role) && !strpbrk(role, "\r\n"), "role \"%s\"",
                    role);
    else
        FUZZ_ASSERT(role[0] == '\0', "failed role parse left \"%s\"", role);

    char *s = fuzz_cstr(data, size);
    time_t t;
    if (sy_awscred_parse_time(s, &t, &err) == SY_OK) {
        static const char shape[] = "dddd-dd-ddTdd:dd:dd"; /* the format, digit for digit */
        for (size_t i = 0; i < sizeof(shape) - 1; i++)
            FUZZ_ASSERT(shape[i] == 'd' ? (s[i] >= '0' && s[i] <= '9') : s[i] == shape[i],
                        "\"%s\" accepted as a time", s);
        struct tm tm;
        FUZZ_ASSERT(gmtime_r(&t, &tm) && tm.tm_year + 1900 >= 1969, "time %lld from \"%s\"",
                    (long long)t, s);
    }
    free(s);
    return 0;
}
