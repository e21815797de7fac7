/* Unit tests of sy_awscred (no network): ISO-8601 times, STS / container / IMDS answers on
 * captured and documented bytes, the shared files' ini rules and profile selection, the
 * container URL allow-list, and the provider chain's order with temporary files and explicit
 * environments. */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sy_awscred.h"
#include "sy_test.h"

#define DATA "tests/unit/data/aws/"

static char *slurp(const char *name, size_t *len)
{
    return sy_test_slurp(DATA, name, len);
}

static time_t t_of(const char *s)
{
    time_t t = 0;
    sy_err_t err = SY_ERR_INIT;
    if (sy_awscred_parse_time(s, &t, &err) != SY_OK)
        return -1;
    return t;
}

static void test_time(void)
{
    CHECK(t_of("1970-01-01T00:00:00Z") == 0);
    CHECK(t_of("2024-05-01T12:34:56Z") == 1714566896);
    CHECK(t_of("2024-05-01T12:34:56.123Z") == 1714566896);
    CHECK(t_of("2026-11-21T07:43:48.294335Z") == t_of("2026-11-21T07:43:48Z"));
    CHECK(t_of("2024-05-01T18:34:56+06:00") == 1714566896);
    CHECK(t_of("2024-05-01T07:04:56-05:30") == 1714566896);
    CHECK(t_of("2024-02-29T00:00:00z") == 1709164800);
    const char *bad[] = {"", "2024-05-01", "2024-05-01T12:34:56", "2024-05-01 12:34:56Z",
                         "2024-13-01T00:00:00Z", "2024-05-01T12:34:56Zjunk", "2024-05-01T24:00:00Z",
                         "2024-05-01T12:34:56.Z", "2024-05-01T12:34:56+0600",
                         /* sscanf's %2d takes a sign: once accepted, as 11:00, 12:33:56, ... */
                         "2024-05-01T-1:00:00Z", "2024-05-01T12:-1:56Z", "2024-05-01T12:34:+6Z",
                         "+024-05-01T12:34:56Z", "2024-05-01T12:34:56+01:-1",
                         "2024-05-01T12:34:56+-1:00", NULL};
    for (const char **b = bad; *b; b++) {
        if (t_of(*b) != -1)
            fprintf(stderr, "  accepted bad time \"%s\"\n", *b);
        CHECK(t_of(*b) == -1);
    }
    sy_err_t err = SY_ERR_INIT;
    time_t t;
    CHECK(sy_awscred_parse_time(NULL, &t, &err) == SY_ERR_INVALID_ARG);
}

static void test_sts(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_awscred_t c = SY_AWSCRED_INIT;
    size_t len;
    char *xml = slurp("sts_web_identity.xml", &len);
    CHECK(sy_awscred_parse_sts(xml, len, &c, &err) == SY_OK);
    CHECK_STR(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
    CHECK_STR(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
    CHECK_STR(c.session_token, "IQoJb3JpZ2luX2VjEXAMPLETOKEN+/a&b="); /* entity decoded */
    CHECK(c.expiration == t_of("2024-10-24T23:00:23Z"));
    sy_awscred_clear(&c);
    CHECK(c.access_key_id == NULL && c.secret_access_key == NULL && c.session_token == NULL);
    free(xml);

    xml = slurp("moto_sts_web_identity.xml", &len);
    CHECK(sy_awscred_parse_sts(xml, len, &c, &err) == SY_OK);
    CHECK_STR(c.access_key_id, "ASIARZPUZDIKOKCNIPXM");
    CHECK(c.session_token && strlen(c.session_token) > 100);
    CHECK(c.expiration == t_of("2026-11-21T07:43:48Z"));
    sy_awscred_clear(&c);
    free(xml);

    xml = slurp("sts_error.xml", &len);
    CHECK(sy_awscred_parse_sts(xml, len, &c, &err) == SY_ERR_AWS);
    CHECK(strstr(err.msg, "InvalidIdentityToken") != NULL);
    CHECK(!err.retriable);
    CHECK(c.access_key_id == NULL);
    free(xml);

    const char *partial = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
                          "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S"
                          "</SecretAccessKey><SessionToken>T</SessionToken></Credentials>"
                          "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
    CHECK(sy_awscred_parse_sts(partial, strlen(partial), &c, &err) == SY_ERR_AWS);
    CHECK(c.access_key_id == NULL); /* nothing half-filled, nothing leaked */
    CHECK(sy_awscred_parse_sts("garbage", 7, &c, &err) == SY_ERR_AWS);
}

static void test_json(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_awscred_t c = SY_AWSCRED_INIT;
    size_t len;
    char *j = slurp("container_ecs.json", &len);
    CHECK(sy_awscred_parse_json(j, len, &c, &err) == SY_OK);
    CHECK_STR(c.access_key_id, "ASIAECSEXAMPLEKEYID1");
    CHECK_STR(c.secret_access_key, "ecsSecretExampleKey0123456789abcdefghijk");
    CHECK_STR(c.session_token, "ecsSessionTokenExample==");
    CHECK(c.expiration == 1714566896);
    free(j);

    j = slurp("container_pod_identity.json", &len);
    CHECK(sy_awscred_parse_json(j, len, &c, &err) == SY_OK); /* c cleared first: no leak */
    CHECK_STR(c.access_key_id, "ASIAPODIDENTITYEXAMP");
    CHECK(c.expiration == 1714566896); /* +06:00 offset */
    free(j);

    j = slurp("imds_credentials.json", &len);
    CHECK(sy_awscred_parse_json(j, len, &c, &err) == SY_OK);
    CHECK_STR(c.session_token, "imdsSessionTokenExample");
    CHECK(c.expiration == 1714566896);
    sy_awscred_clear(&c);
    free(j);

    j = slurp("imds_error.json", &len);
    CHECK(sy_awscred_parse_json(j, len, &c, &err) == SY_ERR_AWS);
    CHECK(err.retriable);
    CHECK(strstr(err.msg, "AssumeRoleUnauthorizedAccess") != NULL);
    free(j);

    const char *no_secret = "{\"AccessKeyId\":\"A\",\"Token\":\"T\"}";
    CHECK(sy_awscred_parse_json(no_secret, strlen(no_secret), &c, &err) == SY_ERR_JSON);
    const char *bad_time =
        "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":\"soon\"}";
    CHECK(sy_awscred_parse_json(bad_time, strlen(bad_time), &c, &err) != SY_OK);
    CHECK(c.access_key_id == NULL);
    const char *static_keys = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}";
    CHECK(sy_awscred_parse_json(static_keys, strlen(static_keys), &c, &err) == SY_OK);
    CHECK(c.expiration == 0 && c.session_token == NULL);
    sy_awscred_clear(&c);
    CHECK(sy_awscred_parse_json("[1]", 3, &c, &err) == SY_ERR_JSON);
    CHECK(sy_awscred_parse_json("{", 1, &c, &err) == SY_ERR_JSON);
}

static void test_refresh_window(void)
{
    sy_awscred_t c = SY_AWSCRED_INIT;
    c.expiration = 0;
    CHECK(!sy_awscred_needs_refresh(&c, 2000000000, 300)); /* static keys never */
    c.expiration = 1000000;
    CHECK(!sy_awscred_needs_refresh(&c, 1000000 - 301, 300));
    CHECK(sy_awscred_needs_refresh(&c, 1000000 - 300, 300));
    CHECK(sy_awscred_needs_refresh(&c, 1000000 + 5, 300));
}

static void test_ini(void)
{
    char *creds = slurp("credentials.ini", NULL), *config = slurp("config.ini", NULL), *v;
    v = sy_awscred_ini_get(creds, "default", false, "aws_access_key_id");
    CHECK_STR(v, "AKIADEFAULTEXAMPLE01");
    free(v);
    v = sy_awscred_ini_get(creds, "ci", false, "aws_access_key_id"); /* key upper-case in file */
    CHECK_STR(v, "AKIACIEXAMPLEKEY0001");
    free(v);
    v = sy_awscred_ini_get(creds, "ci", false, "aws_secret_access_key");
    CHECK_STR(v, "ciSecretExampleKey/0123456789+abcdefghij");
    free(v);
    v = sy_awscred_ini_get(creds, "ci", false, "aws_session_token"); /* later section wins */
    CHECK_STR(v, "ciSessionTokenExample2");
    free(v);
    CHECK(sy_awscred_ini_get(creds, "only-in-config", false, "aws_access_key_id") == NULL);
    CHECK(sy_awscred_ini_has_profile(creds, "only-in-config", false));
    CHECK(!sy_awscred_ini_has_profile(creds, "nope", false));

    v = sy_awscred_ini_get(config, "default", true, "region");
    CHECK_STR(v, "us-west-2");
    free(v);
    v = sy_awscred_ini_get(config, "ci", true, "region"); /* not the nested s3 region, not [ci] */
    CHECK_STR(v, "eu-central-1");
    free(v);
    v = sy_awscred_ini_get(config, "spaced", true, "region");
    CHECK_STR(v, "ap-south-1");
    free(v);
    v = sy_awscred_ini_get(config, "cfgkeys", true, "aws_access_key_id");
    CHECK_STR(v, "AKIACONFIGFILEKEY001");
    free(v);
    CHECK(sy_awscred_ini_get(config, "dev", true, "emr") == NULL); /* [services dev] */
    CHECK(!sy_awscred_ini_has_profile(config, "services dev", true));
    /* in the config file, [ci] is not profile ci; [default] is profile default */
    CHECK(sy_awscred_ini_has_profile(config, "default", true));
    const char *plain = "[profile default]\nregion = r1\n";
    v = sy_awscred_ini_get(plain, "default", true, "region");
    CHECK_STR(v, "r1");
    free(v);
    const char *crlf = "[default]\r\naws_access_key_id = A\r\n  \r\n#c\r\n";
    v = sy_awscred_ini_get(crlf, "default", false, "aws_access_key_id");
    CHECK_STR(v, "A");
    free(v);
    /* a lone CR ends a line too (old Mac files; the SDKs read universal newlines): it never
     * stays inside a value (found by fuzz_awscred_ini) */
    const char *cr = "[default]\raws_access_key_id = A\rregion = r\r\n[x]\rregion = no\r";
    v = sy_awscred_ini_get(cr, "default", false, "aws_access_key_id");
    CHECK_STR(v, "A");
    free(v);
    v = sy_awscred_ini_get(cr, "default", false, "region");
    CHECK_STR(v, "r");
    free(v);
    free(creds);
    free(config);
}

static void test_container_url(void)
{
    char url[256];
    sy_err_t err = SY_ERR_INIT;
    char *rel[] = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/abc",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/x", NULL};
    CHECK(sy_awscred_container_url(rel, url, sizeof(url), &err) == SY_OK);
    CHECK_STR(url, "http://169.254.170.2/v2/credentials/abc"); /* relative wins */
    const char *ok[] = {"http://127.0.0.1:8080/creds",
                        "http://127.1.2.3/creds",
                        "http://localhost:9/c",
                        "http://169.254.170.23/v1/credentials",
                        "http://[fd00:ec2::23]/v1/credentials",
                        "http://169.254.170.2/x",
                        "https://creds.example.com/x",
                        "http://[::1]:80/x",
                        NULL};
    for (const char **u = ok; *u; u++) {
        char var[200];
        snprintf(var, sizeof(var), "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s", *u);
        char *env[] = {var, NULL};
        CHECK(sy_awscred_container_url(env, url, sizeof(url), &err) == SY_OK);
        CHECK_STR(url, *u);
    }
    const char *refused[] = {"http://10.0.0.1/creds",
                             "http://evil.example/x",
                             "http://127.0.0.1@evil.example/x",
                             "http://128.0.0.1/x",
                             "http://127.0.0.256/x",
                             "ftp://127.0.0.1/x",
                             "http://169.254.169.254/",
                             NULL};
    for (const char **u = refused; *u; u++) {
        char var[200];
        snprintf(var, sizeof(var), "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s", *u);
        char *env[] = {var, NULL};
        if (sy_awscred_container_url(env, url, sizeof(url), &err) != SY_ERR_CONFIG)
            fprintf(stderr, "  allowed %s\n", *u);
        CHECK(sy_awscred_container_url(env, url, sizeof(url), &err) == SY_ERR_CONFIG);
    }
    char *badrel[] = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=v2/x", NULL};
    CHECK(sy_awscred_container_url(badrel, url, sizeof(url), &err) == SY_ERR_CONFIG);
    char *none[] = {"HOME=/", NULL};
    CHECK(sy_awscred_container_url(none, url, sizeof(url), &err) == SY_ERR_NOT_FOUND);
}

/* ---- provider chain ---- */

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Makes a provider from a NULL-terminated list of variables; checks its source. */
static sy_awscred_provider_t *provider(const char *want_source, sy_err_t *err, ...)
{
    char *env[16];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    for (char *v; (v = va_arg(ap, char *)) && n < 15;)
        env[n++] = v;
    va_end(ap);
    env[n] = NULL;
    sy_awscred_provider_t *p = sy_awscred_provider_new(env, NULL, err);
    if (want_source) {
        CHECK(p != NULL);
        if (!p) {
            fprintf(stderr, "  provider: %s\n", err->msg);
            return NULL;
        }
        if (strcmp(sy_awscred_provider_source(p), want_source))
            fprintf(stderr, "  source %s, expected %s\n", sy_awscred_provider_source(p),
                    want_source);
        CHECK_STR(sy_awscred_provider_source(p), want_source);
    } else {
        CHECK(p == NULL);
    }
    return p;
}

static void check_keys(sy_awscred_provider_t *p, const char *id, const char *token)
{
    sy_err_t err = SY_ERR_INIT;
    sy_awscred_t c = SY_AWSCRED_INIT;
    if (!p)
        return;
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK_STR(c.access_key_id, id);
    if (token)
        CHECK_STR(c.session_token, token);
    else
        CHECK(c.session_token == NULL);
    CHECK(c.expiration == 0);
    sy_awscred_clear(&c);
    sy_awscred_provider_invalidate(p); /* static keys survive an invalidate */
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK_STR(c.access_key_id, id);
    sy_awscred_clear(&c);
}

static void test_chain(void)
{
    sy_err_t err = SY_ERR_INIT;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sy_test_awscred_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    char *creds = slurp("credentials.ini", NULL), *config = slurp("config.ini", NULL);
    write_file("credentials", creds);
    write_file("config", config);
    write_file("token", "eyJhbGciOiJSUzI1NiJ9.fake.token\n");
    free(creds);
    free(config);
    char home[128], cfile[160], kfile[160], tfile[160];
    snprintf(home, sizeof(home), "HOME=%s/nohome", tmpdir);
    snprintf(cfile, sizeof(cfile), "AWS_CONFIG_FILE=%s/config", tmpdir);
    snprintf(kfile, sizeof(kfile), "AWS_SHARED_CREDENTIALS_FILE=%s/credentials", tmpdir);
    snprintf(tfile, sizeof(tfile), "AWS_WEB_IDENTITY_TOKEN_FILE=%s/token", tmpdir);
    char *id = "AWS_ACCESS_KEY_ID=AKIAENVEXAMPLE000001";
    char *secret = "AWS_SECRET_ACCESS_KEY=envSecretExampleKey0123456789abcdefghijk";
    char *role = "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/switchyard-worker";
    char *relative = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/x";
    char *no_imds = "AWS_EC2_METADATA_DISABLED=true";
    sy_awscred_provider_t *p;

    /* 1. environment beats everything */
    p = provider("env", &err, home, cfile, kfile, tfile, role, relative, id, secret,
                 "AWS_SESSION_TOKEN=envToken", NULL);
    check_keys(p, "AKIAENVEXAMPLE000001", "envToken");
    CHECK_STR(sy_awscred_provider_region(p), "us-west-2"); /* the default profile's region */
    sy_awscred_provider_destroy(p);
    p = provider(NULL, &err, home, id, NULL); /* half a key pair */
    CHECK(err.code == SY_ERR_CONFIG && strstr(err.msg, "AWS_SECRET_ACCESS_KEY"));
    p = provider(NULL, &err, home, secret, NULL);
    CHECK(strstr(err.msg, "envSecret") == NULL); /* the secret itself is never echoed */

    /* 2. web identity beats the shared files and the container */
    p = provider("web-identity", &err, home, cfile, kfile, tfile, role, relative, NULL);
    sy_awscred_provider_destroy(p);
    p = provider("profile", &err, home, cfile, kfile, tfile, NULL); /* no role: not web id */
    sy_awscred_provider_destroy(p);

    /* 3. shared files: default profile, AWS_PROFILE, config-file keys, region precedence */
    p = provider("profile", &err, home, cfile, kfile, relative, "AWS_REGION=sa-east-1", NULL);
    check_keys(p, "AKIADEFAULTEXAMPLE01", NULL);
    CHECK_STR(sy_awscred_provider_region(p), "sa-east-1");
    sy_awscred_provider_destroy(p);
    p = provider("profile", &err, home, cfile, kfile, "AWS_PROFILE=ci",
                 "AWS_DEFAULT_REGION=us-east-2", NULL);
    check_keys(p, "AKIACIEXAMPLEKEY0001", "ciSessionTokenExample2");
    CHECK_STR(sy_awscred_provider_region(p), "us-east-2");
    sy_awscred_provider_destroy(p);
    p = provider("profile", &err, home, cfile, kfile, "AWS_PROFILE=ci", NULL);
    CHECK_STR(sy_awscred_provider_region(p), "eu-central-1");
    sy_awscred_provider_destroy(p);
    p = provider("profile", &err, home, cfile, kfile, "AWS_DEFAULT_PROFILE=cfgkeys", NULL);
    check_keys(p, "AKIACONFIGFILEKEY001", NULL);
    sy_awscred_provider_destroy(p);
    p = provider(NULL, &err, home, cfile, kfile, "AWS_PROFILE=missing", relative, NULL);
    CHECK(err.code == SY_ERR_CONFIG && strstr(err.msg, "\"missing\""));
    p = provider(NULL, &err, home, cfile, kfile, "AWS_PROFILE=assumer", NULL);
    CHECK(err.code == SY_ERR_CONFIG && strstr(err.msg, "not supported"));
    /* ~/.aws/ under HOME when the variables are unset */
    char awsdir[160], homeenv[160];
    snprintf(awsdir, sizeof(awsdir), "%s/.aws", tmpdir);
    mkdir(awsdir, 0700);
    write_file(".aws/credentials", "[default]\naws_access_key_id=AKIAHOMEDIR000000001\n"
                                   "aws_secret_access_key=s\n");
    snprintf(homeenv, sizeof(homeenv), "HOME=%s", tmpdir);
    p = provider("profile", &err, homeenv, no_imds, NULL);
    check_keys(p, "AKIAHOMEDIR000000001", NULL);
    CHECK(sy_awscred_provider_region(p) == NULL);
    sy_awscred_provider_destroy(p);
    /* an ~/ path in the variable is expanded too */
    p = provider("profile", &err, homeenv, "AWS_SHARED_CREDENTIALS_FILE=~/.aws/credentials", NULL);
    sy_awscred_provider_destroy(p);

    /* 4. container, when nothing above is configured */
    p = provider("container", &err, home, relative, no_imds, NULL);
    sy_awscred_provider_destroy(p);
    p = provider(NULL, &err, home, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://evil.example/", NULL);
    CHECK(err.code == SY_ERR_CONFIG);

    /* 5. instance metadata last; disabled means no provider at all */
    p = provider("imds", &err, home, NULL);
    sy_awscred_provider_destroy(p);
    p = provider("imds", &err, home, "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1/",
                 "AWS_METADATA_SERVICE_TIMEOUT=0.2", NULL);
    sy_awscred_provider_destroy(p);
    p = provider(NULL, &err, home, "AWS_EC2_METADATA_SERVICE_ENDPOINT=169.254.169.254", NULL);
    p = provider("none", &err, home, no_imds, NULL);
    if (p) {
        sy_awscred_t c = SY_AWSCRED_INIT;
        CHECK(sy_awscred_provider_get(p, &c, &err) == SY_ERR_CONFIG);
        CHECK(!err.retriable && c.access_key_id == NULL);
        CHECK(strstr(err.msg, "no AWS credentials") != NULL);
    }
    sy_awscred_provider_destroy(p);
    sy_awscred_provider_destroy(NULL);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
}

static void test_copy(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_awscred_t a = SY_AWSCRED_INIT, b = SY_AWSCRED_INIT;
    a.access_key_id = strdup("A");
    a.secret_access_key = strdup("S");
    a.expiration = 42;
    a.source = "env";
    CHECK(sy_awscred_copy(&b, &a, &err) == SY_OK);
    CHECK_STR(b.access_key_id, "A");
    CHECK(b.access_key_id != a.access_key_id && b.session_token == NULL && b.expiration == 42);
    CHECK_STR(b.source, "env");
    sy_awscred_clear(&a);
    sy_awscred_clear(&b);
    sy_awscred_clear(NULL);
}

static void test_imds_answers(void)
{
    sy_err_t err = SY_ERR_INIT;
    char *token = NULL, role[64];
    const char *t = "AQAEAHqVR1L3QxUbDq1Twq4oUDBl6FiLj_G5N7bmrLPIDOjAt4xqfw==\n";
    CHECK(sy_awscred_parse_imds_token(t, strlen(t), &token, &err) == SY_OK);
    CHECK_STR(token, "AQAEAHqVR1L3QxUbDq1Twq4oUDBl6FiLj_G5N7bmrLPIDOjAt4xqfw==");
    free(token);
    /* it becomes a header value: a line break in it would inject another header */
    const char *inject = "tok\r\nX-Injected: 1";
    CHECK(sy_awscred_parse_imds_token(inject, strlen(inject), &token, &err) == SY_ERR_AWS);
    CHECK(token == NULL && strstr(err.msg, "0x0d"));
    CHECK(sy_awscred_parse_imds_token("tok en", 6, &token, &err) == SY_ERR_AWS);
    CHECK(sy_awscred_parse_imds_token(" \n", 2, &token, &err) == SY_ERR_AWS);
    CHECK(sy_awscred_parse_imds_token("", 0, &token, &err) == SY_ERR_AWS && token == NULL);

    CHECK(sy_awscred_parse_imds_role("node-role\nother\n", 16, role, sizeof(role), &err) == SY_OK);
    CHECK_STR(role, "node-role");
    CHECK(sy_awscred_parse_imds_role("r \r\n", 5, role, sizeof(role), &err) == SY_OK);
    CHECK_STR(role, "r");
    CHECK(sy_awscred_parse_imds_role("\nr", 2, role, sizeof(role), &err) == SY_ERR_AWS);
    CHECK_STR(role, "");
    char long_role[100];
    memset(long_role, 'r', sizeof(long_role));
    CHECK(sy_awscred_parse_imds_role(long_role, sizeof(long_role), role, sizeof(role), &err) ==
          SY_ERR_AWS);
    CHECK_STR(role, "");
}

int main(void)
{
    test_time();
    test_sts();
    test_json();
    test_refresh_window();
    test_ini();
    test_imds_answers();
    test_container_url();
    test_chain();
    test_copy();
    SY_TEST_DONE();
}
