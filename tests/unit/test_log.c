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

/* in, redacted, is exactly want (what is not secret is kept). The copy is exactly as large as
 * the string, so under ASan a redaction that wrote past the end would be caught. */
static void redacts_to(const char *in, const char *want)
{
    char *buf = strdup(in);
    sy_log_redact(buf);
    CHECK_STR(buf, want);
    free(buf);
}

int main(void)
{
    redacts("sasl.password=hunter2 other=1", "hunter2");
    redacts("connect postgresql://switchyard:s3cr3t@127.0.0.1:5432/db failed", "s3cr3t");
    redacts("{\"SecretAccessKey\": \"AKIAabc/xyz\"}", "AKIAabc/xyz");
    redacts("X-Amz-Security-Token: FQoGZXIvYXdzEPT", "FQoGZXIvYXdzEPT");
    redacts("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz");
    /* every secret the security guide names (docs/security.md) */
    redacts_to("kafka.sasl.password=hunter2 kafka.sasl.mechanism=SCRAM-SHA-512",
               "kafka.sasl.password=*** kafka.sasl.mechanism=SCRAM-SHA-512");
    redacts_to("kafka.ssl.key.password = k3y-pass", "kafka.ssl.key.password = ***");
    redacts_to("ssl.keystore.password: st0re, ssl.keystore.location: /etc/c.p12",
               "ssl.keystore.password: ***, ssl.keystore.location: /etc/c.p12");
    redacts_to("postgresql://sy:pa55@db:5432/sy?sslmode=verify-full",
               "postgresql://sy:***@db:5432/sy?sslmode=verify-full");
    redacts_to("postgresql://db/sy?user=sy&password=pa55&sslmode=require",
               "postgresql://db/sy?user=sy&password=***&sslmode=require");
    redacts_to("host=db user=sy password=pa55 sslmode=require",
               "host=db user=sy password=*** sslmode=require");
    /* libpq keyword form: a quoted value may hold spaces, and \' */
    redacts_to("host=db password = 'corr ect h\\'orse' dbname=sy",
               "host=db password = '***' dbname=sy");
    redacts_to("{\"password\": \"correct horse battery\", \"user\": \"sy\"}",
               "{\"password\": \"***\", \"user\": \"sy\"}");
    redacts_to("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG AWS_REGION=us-east-1",
               "AWS_SECRET_ACCESS_KEY=*** AWS_REGION=us-east-1");
    redacts_to("aws_session_token = IQoJb3JpZ2luX2Vj", "aws_session_token = ***");
    redacts_to("{\"AccessKeyId\":\"ASIAX\",\"SecretAccessKey\":\"wJalr\",\"Token\":\"IQoJb\"}",
               "{\"AccessKeyId\":\"***\",\"SecretAccessKey\":\"***\",\"Token\":\"***\"}");
    /* short secrets: masked without the string growing (a full buffer stays in bounds) */
    redacts_to("password=a", "password=*");
    redacts_to("postgresql://u:p@h/d", "postgresql://u:*@h/d");
    redacts_to("password=ab,token=cd", "password=**,token=**");
    char keep[] = "job j-1 routed to cluster emr-prod-1";
    sy_log_redact(keep);
    CHECK_STR(keep, "job j-1 routed to cluster emr-prod-1");
    CHECK(sy_log_level_parse("debug") == SY_LOG_DEBUG);
    CHECK(sy_log_level_parse("nope") == -1);
    SY_TEST_DONE();
}
