/* Unit tests of sy_aws (no network): endpoint resolution from the environment, retry
 * classification, backoff bounds, AWS error bodies, S3 listings and the XML reader on captured
 * and documented answers, the canonical query, and a client that fails cleanly without
 * credentials. */
#include <math.h>
#include <stdlib.h>

#include "sy_aws.h"
#include "sy_config.h"
#include "sy_http.h"
#include "sy_test.h"

#define DATA "tests/unit/data/aws/"

static char *slurp(const char *name, size_t *len)
{
    return sy_test_slurp(DATA, name, len);
}

static void test_endpoint_names(void)
{
    char buf[96];
    CHECK_STR(sy_aws_endpoint_env_name("emr", buf, sizeof(buf)), "AWS_ENDPOINT_URL_EMR");
    CHECK_STR(sy_aws_endpoint_env_name("emr-containers", buf, sizeof(buf)),
              "AWS_ENDPOINT_URL_EMR_CONTAINERS");
    CHECK_STR(sy_aws_endpoint_env_name("logs", buf, sizeof(buf)),
              "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS");
    CHECK_STR(sy_aws_endpoint_env_name("s3", buf, sizeof(buf)), "AWS_ENDPOINT_URL_S3");
    CHECK_STR(sy_aws_endpoint_env_name("sts", buf, sizeof(buf)), "AWS_ENDPOINT_URL_STS");
    CHECK(sy_aws_endpoint_env_name("elasticmapreduce", buf, sizeof(buf)) == NULL);
    CHECK(sy_aws_endpoint_env_name("emr", buf, 10) == NULL); /* does not fit */
}

static void test_endpoints(void)
{
    char url[256];
    bool custom = true;
    sy_err_t err = SY_ERR_INIT;

    /* defaults from the endpoint prefix, not the service name */
    char *none[] = {"PATH=/bin", NULL};
    CHECK(sy_aws_endpoint(none, "emr", "eu-west-1", url, sizeof(url), &custom, &err) == SY_OK);
    CHECK_STR(url, "https://elasticmapreduce.eu-west-1.amazonaws.com");
    CHECK(!custom);
    CHECK(sy_aws_endpoint(none, "emr-containers", "us-east-1", url, sizeof(url), NULL, &err) ==
          SY_OK);
    CHECK_STR(url, "https://emr-containers.us-east-1.amazonaws.com");
    CHECK(sy_aws_endpoint(none, "logs", "cn-north-1", url, sizeof(url), NULL, &err) == SY_OK);
    CHECK_STR(url, "https://logs.cn-north-1.amazonaws.com.cn");
    CHECK(sy_aws_endpoint(none, "iam", "eu-west-1", url, sizeof(url), NULL, &err) == SY_OK);
    CHECK_STR(url, "https://iam.amazonaws.com");
    CHECK(sy_aws_endpoint(none, "emr", NULL, url, sizeof(url), NULL, &err) == SY_ERR_CONFIG);
    CHECK(sy_aws_endpoint(none, "ec2", "us-east-1", url, sizeof(url), NULL, &err) ==
          SY_ERR_INVALID_ARG);

    /* global variable, then the service-specific one wins; trailing '/' dropped */
    char *global[] = {"AWS_ENDPOINT_URL=http://127.0.0.1:5000/", NULL};
    CHECK(sy_aws_endpoint(global, "s3", "us-east-1", url, sizeof(url), &custom, &err) == SY_OK);
    CHECK_STR(url, "http://127.0.0.1:5000");
    CHECK(custom);
    char *both[] = {"AWS_ENDPOINT_URL=http://127.0.0.1:5000",
                    "AWS_ENDPOINT_URL_EMR_CONTAINERS=http://localhost:6000/prefix",
                    "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=https://logs.example", NULL};
    CHECK(sy_aws_endpoint(both, "emr-containers", "us-east-1", url, sizeof(url), NULL, &err) ==
          SY_OK);
    CHECK_STR(url, "http://localhost:6000/prefix");
    CHECK(sy_aws_endpoint(both, "logs", "us-east-1", url, sizeof(url), NULL, &err) == SY_OK);
    CHECK_STR(url, "https://logs.example");
    CHECK(sy_aws_endpoint(both, "emr", "us-east-1", url, sizeof(url), NULL, &err) == SY_OK);
    CHECK_STR(url, "http://127.0.0.1:5000");
    /* the old guess AWS_ENDPOINT_URL_ELASTICMAPREDUCE is not the variable's name */
    char *wrong[] = {"AWS_ENDPOINT_URL_ELASTICMAPREDUCE=http://127.0.0.1:1", NULL};
    CHECK(sy_aws_endpoint(wrong, "emr", "us-east-1", url, sizeof(url), &custom, &err) == SY_OK);
    CHECK_STR(url, "https://elasticmapreduce.us-east-1.amazonaws.com");
    /* an empty variable counts as unset */
    char *empty[] = {"AWS_ENDPOINT_URL_STS=", "AWS_ENDPOINT_URL=http://h:1", NULL};
    CHECK(sy_aws_endpoint(empty, "sts", "us-east-1", url, sizeof(url), NULL, &err) == SY_OK);
    CHECK_STR(url, "http://h:1");
    /* ignore switch */
    char *ignored[] = {"AWS_ENDPOINT_URL=http://h:1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true",
                       NULL};
    CHECK(sy_aws_endpoint(ignored, "sts", "us-east-2", url, sizeof(url), NULL, &err) == SY_OK);
    CHECK_STR(url, "https://sts.us-east-2.amazonaws.com");
    /* not a URL */
    char *bad[] = {"AWS_ENDPOINT_URL_S3=localhost:9000", NULL};
    CHECK(sy_aws_endpoint(bad, "s3", "us-east-1", url, sizeof(url), NULL, &err) == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "AWS_ENDPOINT_URL_S3") != NULL);
    CHECK(sy_aws_getenv(both, "AWS_ENDPOINT_UR") == NULL); /* whole names only */
}

static void test_classification(void)
{
    const char *throttles[] = {"Throttling",
                               "ThrottlingException",
                               "TooManyRequestsException",
                               "RequestLimitExceeded",
                               "SlowDown",
                               NULL};
    for (const char **c = throttles; *c; c++) {
        CHECK(sy_aws_is_throttle(400, *c));
        CHECK(sy_aws_is_retriable(400, *c));
    }
    CHECK(sy_aws_is_throttle(429, NULL));
    CHECK(sy_aws_is_retriable(429, ""));
    CHECK(!sy_aws_is_throttle(503, "ServiceUnavailable"));
    for (long s = 500; s <= 504; s++)
        CHECK(sy_aws_is_retriable(s, NULL));
    CHECK(sy_aws_is_retriable(400, "RequestTimeout"));
    CHECK(!sy_aws_is_retriable(400, "ValidationException"));
    CHECK(!sy_aws_is_retriable(400, "InvalidRequestException"));
    CHECK(!sy_aws_is_retriable(403, "SignatureDoesNotMatch"));
    CHECK(!sy_aws_is_retriable(404, "NoSuchKey"));
    CHECK(!sy_aws_is_throttle(400, "throttling")); /* codes are case-sensitive */
}

static void test_backoff(void)
{
    /* r = 0 → no wait; r → 1 approaches the ceiling min(cap, base * 2^(n-1)) from below */
    for (int n = 1; n <= 12; n++) {
        double ceiling = fmin(20000.0, 100.0 * pow(2, n - 1));
        CHECK(sy_aws_backoff_ms(n, 100, 20000, 0.0) == 0);
        long hi = sy_aws_backoff_ms(n, 100, 20000, 0.9999999);
        CHECK(hi < ceiling && hi >= ceiling * 0.999 - 1);
        CHECK(sy_aws_backoff_ms(n, 100, 20000, 0.5) == (long)(ceiling / 2));
    }
    CHECK(sy_aws_backoff_ms(1, 100, 20000, 0.5) == 50);
    CHECK(sy_aws_backoff_ms(3, 100, 20000, 0.5) == 200);
    CHECK(sy_aws_backoff_ms(60, 100, 20000, 0.999) < 20000); /* no overflow for huge n */
    CHECK(sy_aws_backoff_ms(2, 100, 150, 0.999) < 150);      /* the cap binds */
    CHECK(sy_aws_backoff_ms(0, 100, 20000, 0.5) == 50);      /* n < 1 treated as 1 */
    CHECK(sy_aws_backoff_ms(1, 100, 20000, 1.5) < 100);      /* r out of range clamped */
    /* full jitter: many draws spread over [0, ceiling) */
    long lo = 1 << 30, hi = 0;
    unsigned seed = 7;
    for (int i = 0; i < 1000; i++) {
        long d = sy_aws_backoff_ms(4, 100, 20000, rand_r(&seed) / ((double)RAND_MAX + 1.0));
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    CHECK(lo >= 0 && lo < 80);
    CHECK(hi < 800 && hi > 720);
}

static void check_error(const char *file, const char *type_header, const char *code,
                        const char *message_part)
{
    size_t len;
    char *body = slurp(file, &len);
    char c[128], m[256];
    sy_aws_parse_error(body, len, type_header, c, sizeof(c), m, sizeof(m));
    CHECK_STR(c, code);
    if (!strstr(m, message_part))
        fprintf(stderr, "  %s: message \"%s\" lacks \"%s\"\n", file, m, message_part);
    CHECK(strstr(m, message_part) != NULL);
    free(body);
}

static void test_errors(void)
{
    check_error("emr_invalid_request.json", NULL, "InvalidRequestException", "is not valid");
    check_error("emr_throttling.json", NULL, "ThrottlingException", "Rate exceeded");
    check_error("moto_emrc_not_found.json", "ResourceNotFoundException",
                "ResourceNotFoundException", "doesn't exist");
    check_error("emrc_body_without_type.json",
                "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazon.emr/",
                "ResourceNotFoundException", "not found");
    check_error("logs_not_found.json", NULL, "ResourceNotFoundException", "log group");
    check_error("moto_s3_nosuchkey.xml", NULL, "NoSuchKey", "does not exist");
    check_error("s3_error_slowdown.xml", NULL, "SlowDown", "reduce your request rate");
    check_error("sts_error.xml", NULL, "InvalidIdentityToken", "OpenIDConnect");
    check_error("moto_signature_mismatch.xml", NULL, "SignatureDoesNotMatch", "signature");

    char c[16], m[16];
    sy_aws_parse_error("<html>500</html>", 16, NULL, c, sizeof(c), m, sizeof(m));
    CHECK_STR(c, "");
    sy_aws_parse_error("", 0, "", c, sizeof(c), m, sizeof(m));
    CHECK_STR(c, "");
    CHECK_STR(m, "");
    const char *longmsg =
        "{\"__type\":\"ValidationException\",\"message\":\"a very long message\"}";
    sy_aws_parse_error(longmsg, strlen(longmsg), NULL, c, sizeof(c), m, sizeof(m));
    CHECK_STR(c, "ValidationExcep");
    CHECK_STR(m, "a very long mes"); /* truncated, terminated */
    const char *twolines = "{\"__type\":\"X\",\"message\":\"line1\\nline2\"}";
    sy_aws_parse_error(twolines, strlen(twolines), NULL, c, sizeof(c), m, sizeof(m));
    CHECK_STR(m, "line1 line2"); /* one line, for logs */
    sy_aws_parse_error("not json {", 10, NULL, c, sizeof(c), m, sizeof(m));
    CHECK_STR(c, "");
}

static void test_s3_listing(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_aws_s3_listing_t l;
    size_t len;
    char *xml = slurp("s3_list_truncated.xml", &len);
    CHECK(sy_aws_s3_parse_listing(xml, len, &l, &err) == SY_OK);
    CHECK(l.n == 3);
    CHECK(l.truncated);
    CHECK_STR(l.next_token, "1w41l63U0xa8q7smH50vCxyTQqdxo69O3EmK28Bi5PcROI4wI/EyIJg==");
    if (l.n == 3) {
        CHECK_STR(l.objects[0].key, "j-2AXXXXXXGAPLF/steps/s-1234/controller.gz");
        CHECK(l.objects[0].size == 857);
        CHECK_STR(l.objects[0].last_modified, "2024-05-01T12:00:01.000Z");
        CHECK_STR(l.objects[1].key, "j-2AXXXXXXGAPLF/steps/s-1234/std<err> & \xc3\xa9t\xc3\xa9.gz");
        CHECK(l.objects[1].size == 0);
        CHECK(l.objects[2].size == 5368709120LL); /* > 4 GiB */
    }
    sy_aws_s3_listing_clear(&l);
    free(xml);

    xml = slurp("moto_s3_list_page1.xml", &len);
    CHECK(sy_aws_s3_parse_listing(xml, len, &l, &err) == SY_OK);
    CHECK(l.n == 2 && l.truncated);
    CHECK_STR(l.next_token, "485edc44c90c03122d7ad3d9950848f2");
    if (l.n == 2) {
        CHECK_STR(l.objects[0].key, "a/b c.txt");
        CHECK_STR(l.objects[1].key, "a/x&y.gz");
        CHECK(l.objects[1].size == 22);
    }
    sy_aws_s3_listing_clear(&l);
    free(xml);

    xml = slurp("moto_s3_list_page2.xml", &len);
    CHECK(sy_aws_s3_parse_listing(xml, len, &l, &err) == SY_OK);
    CHECK(l.n == 1 && !l.truncated && l.next_token == NULL);
    sy_aws_s3_listing_clear(&l);
    free(xml);

    xml = slurp("s3_list_empty.xml", &len);
    CHECK(sy_aws_s3_parse_listing(xml, len, &l, &err) == SY_OK);
    CHECK(l.n == 0 && !l.truncated && l.objects == NULL);
    sy_aws_s3_listing_clear(&l);
    free(xml);

    xml = slurp("moto_s3_nosuchkey.xml", &len);
    CHECK(sy_aws_s3_parse_listing(xml, len, &l, &err) == SY_ERR_AWS);
    CHECK(l.n == 0 && l.objects == NULL);
    free(xml);

    const char *no_token = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>k"
                           "</Key><Size>1</Size></Contents></ListBucketResult>";
    CHECK(sy_aws_s3_parse_listing(no_token, strlen(no_token), &l, &err) == SY_ERR_AWS);
    CHECK(l.objects == NULL); /* nothing leaks on failure */
    const char *no_key = "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>";
    CHECK(sy_aws_s3_parse_listing(no_key, strlen(no_key), &l, &err) == SY_ERR_AWS);
    /* truncated input: an unclosed element is not found rather than read past the end */
    xml = slurp("moto_s3_list_page1.xml", &len);
    CHECK(sy_aws_s3_parse_listing(xml, len / 2, &l, &err) == SY_ERR_AWS);
    free(xml);
}

static void test_xml(void)
{
    const char *x = "<?xml version=\"1.0\"?><!-- <Key>no</Key> --><R a=\"1\"><KeyCount>2</KeyCount>"
                    "<Key>k1</Key><N><N>inner</N></N><E/><F attr='x'>f</F><C><![CDATA[a<b&c]]>"
                    "</C><Amp>&amp;amp; &#65;&#x42; &bogus; &#0; a&b</Amp></R>";
    const char *end = x + strlen(x), *ce;
    char *t = sy_aws_xml_text(x, end, "Key");
    CHECK_STR(t, "k1"); /* not KeyCount, not the comment */
    free(t);
    t = sy_aws_xml_text(x, end, "KeyCount");
    CHECK_STR(t, "2");
    free(t);
    const char *n = sy_aws_xml_find(x, end, "N", &ce);
    CHECK(n && (size_t)(ce - n) == strlen("<N>inner</N>")); /* nested same name */
    t = sy_aws_xml_text(x, end, "E");
    CHECK_STR(t, "");
    free(t);
    t = sy_aws_xml_text(x, end, "F");
    CHECK_STR(t, "f");
    free(t);
    t = sy_aws_xml_text(x, end, "C");
    CHECK_STR(t, "a<b&c");
    free(t);
    t = sy_aws_xml_text(x, end, "Amp");
    CHECK_STR(t, "&amp; AB &bogus; &#0; a&b");
    free(t);
    CHECK(sy_aws_xml_text(x, end, "Missing") == NULL);
    t = sy_aws_xml_text(x, end, "R");
    CHECK(t && !strncmp(t, "<KeyCount>", 10)); /* content with children comes back raw */
    free(t);
    const char *unclosed = "<A><B>x</B>";
    CHECK(sy_aws_xml_find(unclosed, unclosed + strlen(unclosed), "A", &ce) == NULL);
}

static void test_query(void)
{
    char *q = sy_aws_canonical_query("prefix=a%2F&list-type=2");
    CHECK_STR(q, "list-type=2&prefix=a%2F");
    free(q);
    q = sy_aws_canonical_query("states=RUNNING&maxResults=50&states=PENDING&nextToken=a%2Bb%3D");
    CHECK_STR(q, "maxResults=50&nextToken=a%2Bb%3D&states=PENDING&states=RUNNING");
    free(q);
    q = sy_aws_canonical_query("b=x y&a=1+1&flag&c=%7e%2d&&");
    CHECK_STR(q, "a=1%2B1&b=x%20y&c=~-&flag=");
    free(q);
    q = sy_aws_canonical_query("");
    CHECK_STR(q, "");
    free(q);
    q = sy_aws_canonical_query("B=1&a=2"); /* byte order: upper case first */
    CHECK_STR(q, "B=1&a=2");
    free(q);
}

static void test_url_encoding(void)
{
    char *e = sy_http_url_encode("a b/c~d_e.f-g+h&é", false);
    CHECK_STR(e, "a%20b%2Fc~d_e.f-g%2Bh%26%C3%A9");
    free(e);
    e = sy_http_url_encode("logs/j-1/steps/s-1/std err.gz", true);
    CHECK_STR(e, "logs/j-1/steps/s-1/std%20err.gz");
    free(e);
    /* response header look-up: case-insensitive, trimmed, whole names only */
    char hdrs[] = "HTTP/1.1 400 Bad Request\r\nx-amzn-RequestId: r-1 \r\n"
                  "X-Amzn-ErrorType:ThrottlingException\r\nContent-Range: bytes */22\r\n\r\n";
    sy_http_response_t r = SY_HTTP_RESPONSE_INIT;
    r.headers = hdrs;
    char v[32];
    CHECK(sy_http_response_header(&r, "x-amzn-requestid", v, sizeof(v)) && !strcmp(v, "r-1"));
    CHECK(sy_http_response_header(&r, "x-amzn-ErrorType", v, sizeof(v)) &&
          !strcmp(v, "ThrottlingException"));
    CHECK(sy_http_response_header(&r, "content-range", v, sizeof(v)) && !strcmp(v, "bytes */22"));
    CHECK(!sy_http_response_header(&r, "Content", v, sizeof(v)) && v[0] == '\0');
    CHECK(!sy_http_response_header(&r, "x-amzn-ErrorType", v, 5)); /* does not fit */
    const char *enc = "a%20b%2fc%zz%4";
    e = sy_http_url_decode(enc, strlen(enc));
    CHECK_STR(e, "a b/c%zz%4");
    free(e);
}

/* A client without credentials: made without network I/O, and a call fails with a
 * non-retriable config error naming the operation, before any request is sent. */
static void test_client_without_credentials(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_config_t *conf = sy_config_new();
    CHECK(sy_config_get_int(conf, "aws.max.attempts") == 5);
    CHECK(sy_config_get_int(conf, "aws.timeout.ms") == 10000);
    CHECK(sy_config_get_int(conf, "aws.connect.timeout.ms") == 3000);
    char *no_region[] = {"HOME=/nonexistent", "AWS_EC2_METADATA_DISABLED=true", NULL};
    CHECK(sy_aws_new_env(conf, no_region, &err) == NULL);
    CHECK(err.code == SY_ERR_CONFIG && strstr(err.msg, "region"));

    char *env[] = {"HOME=/nonexistent", "AWS_EC2_METADATA_DISABLED=true",
                   "AWS_DEFAULT_REGION=eu-west-1", "AWS_ENDPOINT_URL=http://127.0.0.1:9", NULL};
    sy_aws_t *aws = sy_aws_new_env(conf, env, &err);
    CHECK(aws != NULL);
    if (aws) {
        CHECK_STR(sy_aws_region(aws), "eu-west-1");
        CHECK_STR(sy_aws_credentials_source(aws), "none");
        json_t *resp = (json_t *)1;
        sy_err_clear(&err);
        CHECK(sy_aws_json_call(aws, "emr", "ElasticMapReduce.ListClusters", NULL, &resp, &err) ==
              SY_ERR_CONFIG);
        CHECK(resp == NULL);
        CHECK(!err.retriable);
        CHECK(strstr(err.msg, "emr ListClusters") != NULL);
        CHECK(strstr(err.msg, "no AWS credentials") != NULL);
        CHECK(sy_aws_json_call(aws, "ec2", "X.Y", NULL, NULL, &err) == SY_ERR_INVALID_ARG);
        CHECK(sy_aws_rest_call(aws, "emr-containers", "ListJobRuns", "GET", "no-slash", NULL, NULL,
                               &err) == SY_ERR_INVALID_ARG);
        sy_aws_op_stats_t st[4];
        CHECK(sy_aws_stats(aws, st, 4) == 1);
        CHECK_STR(st[0].op, "emr:ListClusters");
        CHECK(st[0].calls == 1 && st[0].failures == 1 && st[0].attempts == 0);
        CHECK(sy_aws_connections(aws) == 0);
        sy_aws_stats_reset(aws);
        CHECK(sy_aws_stats(aws, st, 4) == 0);
    }
    sy_aws_destroy(aws);

    /* aws.region wins over the environment */
    CHECK(sy_config_set(conf, "aws.region", "ap-southeast-2", &err) == SY_OK);
    aws = sy_aws_new_env(conf, env, &err);
    CHECK(aws && !strcmp(sy_aws_region(aws), "ap-southeast-2"));
    sy_aws_destroy(aws);
    /* malformed endpoint variable: refused up front */
    char *bad[] = {"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
                   "AWS_ENDPOINT_URL_EMR=ftp://x", NULL};
    CHECK(sy_aws_new_env(conf, bad, &err) == NULL && err.code == SY_ERR_CONFIG);
    sy_aws_destroy(NULL);
    sy_config_destroy(conf);
}

int main(void)
{
    test_endpoint_names();
    test_endpoints();
    test_classification();
    test_backoff();
    test_errors();
    test_s3_listing();
    test_xml();
    test_query();
    test_url_encoding();
    test_client_without_credentials();
    SY_TEST_DONE();
}
