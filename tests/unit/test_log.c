/* Unit tests of sy_log: secrets are redacted from every line, levels parse. */
#include <stdlib.h>

#include "sy_log.h"
#include "sy_test.h"

static void redacts(const char *in, const char *secret)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", in);
    sy_log_redact(buf);
    CHECK(strstr(buf, secret) == NULL);
    if (strstr(buf, secret))
        fprintf(stderr, "  not redacted: %s\n", buf);
}

int main(void)
{
    redacts("sasl.password=hunter2 other=1", "hunter2");
    redacts("connect postgresql://switchyard:s3cr3t@127.0.0.1:5432/db failed", "s3cr3t");
    redacts("{\"SecretAccessKey\": \"AKIAabc/xyz\"}", "AKIAabc/xyz");
    redacts("X-Amz-Security-Token: FQoGZXIvYXdzEPT", "FQoGZXIvYXdzEPT");
    redacts("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz");
    redacts("password = 'a b'", "'a");
    char keep[] = "job j-1 routed to cluster emr-prod-1";
    sy_log_redact(keep);
    CHECK_STR(keep, "job j-1 routed to cluster emr-prod-1");
    CHECK(sy_log_level_parse("debug") == SY_LOG_DEBUG);
    CHECK(sy_log_level_parse("nope") == -1);
    SY_TEST_DONE();
}
