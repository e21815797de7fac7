/* Integration test of the AWS client against a tiny HTTP server this test runs on 127.0.0.1
 * (no AWS emulator needed): container credentials (ECS / EKS Pod Identity style, token file
 * re-read) and their refresh before expiry, IMDSv2, retries with backoff on throttling and 5xx,
 * non-idempotent calls, timeouts, the retry budget, connection reuse, the canonical query on
 * REST calls, S3 ranged reads past the end, ExpiredToken → fresh credentials, and that no secret
 * reaches the log even at debug level. */
#include <stdarg.h>
#include <sys/time.h>

#include "itest_aws_server.h"
#include "sy_aws.h"
#include "sy_awscred.h"
#include "sy_config.h"
#include "sy_log.h"
#include "sy_test.h"

#define SECRET           "localSecretKeyExample0123456789abcdefghij"
#define SESSION          "localSessionTokenExample/+="
#define CONTAINER_SECRET "containerSecretExample0123456789abcdefgh"
#define IMDS_SECRET      "imdsSecretExample0123456789abcdefghijklm"

typedef struct planned {
    int status;
    const char *body;
    const char *extra; /* extra header lines */
    int delay_ms;
} planned_t;

static struct {
    pthread_mutex_t lock;
    planned_t plan[16];
    int n_plan, next_plan;
    int api_hits;
    char last_method[16], last_target[4096], last_auth[1024], last_token[512], last_amz_target[128],
        last_ctype[128], last_sha[128], last_range[64];
    bool secret_seen; /* a secret key travelled in a request: must never happen */
    char container_token[128];
    int container_hits, container_serial;
    long creds_ttl_s;
    bool creds_fail;
    int imds_puts, imds_gets, imds_stall_ms;
    bool imds_bad_token;
} sc = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void plan(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    pthread_mutex_lock(&sc.lock);
    for (int i = 0; i < n; i++)
        sc.plan[i] = va_arg(ap, planned_t);
    sc.n_plan = n;
    sc.next_plan = 0;
    sc.api_hits = 0;
    pthread_mutex_unlock(&sc.lock);
    va_end(ap);
}

static void iso(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void keep_header(const ts_req_t *req, const char *name, char *dst, size_t size)
{
    if (!ts_header(req, name, dst, size))
        dst[0] = '\0';
}

static void handle(void *opaque, const ts_req_t *req, ts_resp_t *resp)
{
    char h[4096], exp[32];
    pthread_mutex_lock(&sc.lock);
    if (strstr(req->headers, SECRET) || strstr(req->headers, CONTAINER_SECRET) ||
        strstr(req->headers, IMDS_SECRET) || (req->body && strstr(req->body, SECRET)))
        sc.secret_seen = true;
    if (!strncmp(req->target, "/creds", 6)) { /* container credentials endpoint */
        sc.container_hits++;
        const char *auth = ts_header(req, "Authorization", h, sizeof(h));
        if (sc.creds_fail) {
            resp->status = 500;
            snprintf(resp->body, sizeof(resp->body), "{\"message\":\"agent unavailable\"}");
        } else if (!auth || strcmp(auth, sc.container_token)) {
            resp->status = 401;
            snprintf(resp->body, sizeof(resp->body), "{\"message\":\"bad token\"}");
        } else {
            iso(time(NULL) + sc.creds_ttl_s, exp, sizeof(exp));
            sc.container_serial++;
            snprintf(resp->body, sizeof(resp->body),
                     "{\"AccessKeyId\":\"ASIACONTAINER%07d\",\"SecretAccessKey\":\"%s\","
                     "\"Token\":\"containerToken%d\",\"AccountId\":\"123456789012\","
                     "\"Expiration\":\"%s\"}",
                     sc.container_serial, CONTAINER_SECRET, sc.container_serial, exp);
        }
    } else if (!strncmp(req->target, "/latest/", 8)) { /* IMDSv2 */
        resp->content_type[0] = '\0';
        snprintf(resp->content_type, sizeof(resp->content_type), "text/plain");
        resp->delay_ms = sc.imds_stall_ms;
        if (!strcmp(req->target, "/latest/api/token")) {
            sc.imds_puts++;
            if (strcmp(req->method, "PUT") ||
                !ts_header(req, "X-aws-ec2-metadata-token-ttl-seconds", h, sizeof(h))) {
                resp->status = 400;
            } else {
                snprintf(resp->body, sizeof(resp->body), "imds-session-token==");
            }
        } else {
            sc.imds_gets++;
            const char *tok = ts_header(req, "X-aws-ec2-metadata-token", h, sizeof(h));
            if (!tok || strcmp(tok, "imds-session-token==")) {
                sc.imds_bad_token = true;
                resp->status = 401;
            } else if (!strcmp(req->target, "/latest/meta-data/iam/security-credentials/")) {
                snprintf(resp->body, sizeof(resp->body), "switchyard-node\n");
            } else if (!strcmp(req->target,
                               "/latest/meta-data/iam/security-credentials/switchyard-node")) {
                iso(time(NULL) + 6 * 3600, exp, sizeof(exp));
                snprintf(
                    resp->body, sizeof(resp->body),
                    "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2024-05-01T00:00:00Z\","
                    "\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAIMDSLOCAL0000001\","
                    "\n  \"SecretAccessKey\" : \"%s\",\n  \"Token\" : \"imdsToken\",\n"
                    "  \"Expiration\" : \"%s\"\n}",
                    IMDS_SECRET, exp);
            } else {
                resp->status = 404;
            }
        }
    } else { /* an AWS API */
        sc.api_hits++;
        snprintf(sc.last_method, sizeof(sc.last_method), "%s", req->method);
        snprintf(sc.last_target, sizeof(sc.last_target), "%s", req->target);
        keep_header(req, "Authorization", sc.last_auth, sizeof(sc.last_auth));
        keep_header(req, "X-Amz-Security-Token", sc.last_token, sizeof(sc.last_token));
        keep_header(req, "X-Amz-Target", sc.last_amz_target, sizeof(sc.last_amz_target));
        keep_header(req, "Content-Type", sc.last_ctype, sizeof(sc.last_ctype));
        keep_header(req, "x-amz-content-sha256", sc.last_sha, sizeof(sc.last_sha));
        keep_header(req, "Range", sc.last_range, sizeof(sc.last_range));
        planned_t p = {200, "{}", NULL, 0};
        if (sc.next_plan < sc.n_plan)
            p = sc.plan[sc.next_plan++];
        resp->status = p.status;
        resp->delay_ms = p.delay_ms;
        snprintf(resp->body, sizeof(resp->body), "%s", p.body ? p.body : "");
        snprintf(resp->extra_headers, sizeof(resp->extra_headers), "%s", p.extra ? p.extra : "");
        if (p.body && p.body[0] == '<')
            snprintf(resp->content_type, sizeof(resp->content_type), "application/xml");
    }
    pthread_mutex_unlock(&sc.lock);
}

static ts_server_t srv;
static char base_url[64], tmpdir[64];

static long long ms_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void write_token(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_container_credentials(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_awscred_t c = SY_AWSCRED_INIT;
    char uri[128], tfile[160];
    snprintf(uri, sizeof(uri), "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s/creds/v1", base_url);
    snprintf(tfile, sizeof(tfile), "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s/pod-token", tmpdir);
    write_token("pod-token", "pod-identity-token-1\n");
    snprintf(sc.container_token, sizeof(sc.container_token), "pod-identity-token-1");
    sc.creds_ttl_s = 3600;
    char *env[] = {uri, tfile, "HOME=/nonexistent", "AWS_EC2_METADATA_DISABLED=true", NULL};
    sy_awscred_provider_t *p = sy_awscred_provider_new(env, NULL, &err);
    CHECK(p != NULL);
    if (!p)
        return;
    CHECK_STR(sy_awscred_provider_source(p), "container");
    int hits0 = sc.container_hits;
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK(c.access_key_id && !strncmp(c.access_key_id, "ASIACONTAINER", 13));
    CHECK_STR(c.secret_access_key, CONTAINER_SECRET);
    CHECK(c.session_token && !strncmp(c.session_token, "containerToken", 14));
    CHECK(c.expiration > time(NULL) + 3500);
    CHECK(sc.container_hits == hits0 + 1);
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK); /* cached: far from expiry */
    CHECK(sc.container_hits == hits0 + 1);

    /* the token file is re-read: a rotated token is used on the next fetch */
    write_token("pod-token", "pod-identity-token-2\n");
    snprintf(sc.container_token, sizeof(sc.container_token), "pod-identity-token-2");
    sy_awscred_provider_invalidate(p);
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK(sc.container_hits == hits0 + 2);

    /* credentials that expire within the refresh window (5 min) are refreshed on every get */
    sc.creds_ttl_s = 120;
    sy_awscred_provider_invalidate(p);
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK(sc.container_hits == hits0 + 3);
    char *first = strdup(c.access_key_id);
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK(sc.container_hits == hits0 + 4);
    CHECK(strcmp(first, c.access_key_id) != 0); /* fresh keys */
    free(first);

    /* the endpoint fails: the still-valid credentials keep working, without hammering it */
    sc.creds_fail = true;
    int before = sc.container_hits;
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK(sc.container_hits == before + 3); /* one refresh, three attempts */
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK(sc.container_hits == before + 3); /* no new attempt for 10 s */
    /* ... but once forgotten, the failure is reported (retriable: HTTP 500) */
    sy_awscred_provider_invalidate(p);
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_ERR_AWS);
    CHECK(err.retriable);
    CHECK(strstr(err.msg, "container") && strstr(err.msg, "500"));
    sc.creds_fail = false;

    /* a wrong token: refused, not retriable */
    snprintf(sc.container_token, sizeof(sc.container_token), "something-else");
    before = sc.container_hits;
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_ERR_AWS);
    CHECK(!err.retriable && strstr(err.msg, "401"));
    CHECK(sc.container_hits == before + 1);
    CHECK(strstr(err.msg, "pod-identity-token") == NULL);
    sy_awscred_clear(&c);
    sy_awscred_provider_destroy(p);

    /* the token straight from AWS_CONTAINER_AUTHORIZATION_TOKEN */
    char *env2[] = {uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN=ecs-token", "HOME=/nonexistent", NULL};
    snprintf(sc.container_token, sizeof(sc.container_token), "ecs-token");
    sc.creds_ttl_s = 3600;
    p = sy_awscred_provider_new(env2, NULL, &err);
    CHECK(p && sy_awscred_provider_get(p, &c, &err) == SY_OK);
    sy_awscred_clear(&c);
    sy_awscred_provider_destroy(p);
    char *env3[] = {uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN=bad\r\nX-Injected: 1",
                    "HOME=/nonexistent", NULL};
    p = sy_awscred_provider_new(env3, NULL, &err);
    CHECK(p && sy_awscred_provider_get(p, &c, &err) == SY_ERR_CONFIG);
    sy_awscred_provider_destroy(p);
}

static void test_imds(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_awscred_t c = SY_AWSCRED_INIT;
    char ep[128];
    snprintf(ep, sizeof(ep), "AWS_EC2_METADATA_SERVICE_ENDPOINT=%s/", base_url);
    char *env[] = {ep, "HOME=/nonexistent", NULL};
    sy_awscred_provider_t *p = sy_awscred_provider_new(env, NULL, &err);
    CHECK(p && !strcmp(sy_awscred_provider_source(p), "imds"));
    if (!p)
        return;
    CHECK(sy_awscred_provider_get(p, &c, &err) == SY_OK);
    CHECK_STR(c.access_key_id, "ASIAIMDSLOCAL0000001");
    CHECK_STR(c.secret_access_key, IMDS_SECRET);
    CHECK_STR(c.session_token, "imdsToken");
    CHECK(sc.imds_puts == 1 && sc.imds_gets == 2 && !sc.imds_bad_token);
    sy_awscred_clear(&c);
    sy_awscred_provider_destroy(p);

    /* a metadata service that does not answer in time: fails fast, does not stall */
    sc.imds_stall_ms = 1500;
    char *env2[] = {ep, "HOME=/nonexistent", "AWS_METADATA_SERVICE_TIMEOUT=0.3", NULL};
    p = sy_awscred_provider_new(env2, NULL, &err);
    long long t0 = ms_now();
    CHECK(p && sy_awscred_provider_get(p, &c, &err) == SY_ERR_TIMEOUT);
    CHECK(ms_now() - t0 < 1000);
    CHECK(err.retriable && strstr(err.msg, "instance metadata"));
    sy_awscred_provider_destroy(p);
    sc.imds_stall_ms = 0;
}

/* A config for fast retries. */
static sy_config_t *fast_config(const char *attempts, const char *timeout, const char *budget)
{
    sy_err_t err = SY_ERR_INIT;
    sy_config_t *conf = sy_config_new();
    sy_config_set(conf, "aws.retry.base.ms", "10", &err);
    sy_config_set(conf, "aws.retry.max.backoff.ms", "40", &err);
    sy_config_set(conf, "aws.max.attempts", attempts, &err);
    sy_config_set(conf, "aws.timeout.ms", timeout, &err);
    sy_config_set(conf, "aws.retry.budget.ms", budget, &err);
    return conf;
}

static sy_aws_op_stats_t op_stats(sy_aws_t *aws, const char *op)
{
    sy_aws_op_stats_t st[16], none = {{0}, 0, 0, 0, 0, 0, 0};
    size_t n = sy_aws_stats(aws, st, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (!strcmp(st[i].op, op))
            return st[i];
    return none;
}

static void test_client(void)
{
    sy_err_t err = SY_ERR_INIT;
    char emr[128], emrc[128], s3[128];
    snprintf(emr, sizeof(emr), "AWS_ENDPOINT_URL_EMR=%s", base_url);
    snprintf(emrc, sizeof(emrc), "AWS_ENDPOINT_URL_EMR_CONTAINERS=%s/", base_url);
    snprintf(s3, sizeof(s3), "AWS_ENDPOINT_URL_S3=%s", base_url);
    char *env[] = {emr,
                   emrc,
                   s3,
                   "AWS_ACCESS_KEY_ID=AKIALOCALTEST0000001",
                   "AWS_SECRET_ACCESS_KEY=" SECRET,
                   "AWS_SESSION_TOKEN=" SESSION,
                   "AWS_REGION=eu-west-1",
                   "AWS_EC2_METADATA_DISABLED=true",
                   "HOME=/nonexistent",
                   "AWS_ENDPOINT_URL=http://127.0.0.1:9",
                   NULL};
    sy_config_t *conf = fast_config("4", "1000", "10000");
    sy_aws_t *aws = sy_aws_new_env(conf, env, &err);
    CHECK(aws != NULL);
    if (!aws)
        return;
    json_t *resp = NULL, *body = json_pack("{s:s}", "ClusterId", "j-LOCAL");

    /* throttled twice, then answered: retried inside the client, counted */
    const char *throttle = "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}";
    plan(3, (planned_t){400, throttle, NULL, 0}, (planned_t){400, throttle, NULL, 0},
         (planned_t){200, "{\"Clusters\":[]}", NULL, 0});
    CHECK(sy_aws_json_call(aws, "emr", "ElasticMapReduce.ListClusters", NULL, &resp, &err) ==
          SY_OK);
    CHECK(json_is_array(json_object_get(resp, "Clusters")));
    json_decref(resp);
    sy_aws_op_stats_t st = op_stats(aws, "emr:ListClusters");
    CHECK(st.calls == 1 && st.attempts == 3 && st.retries == 2 && st.throttles == 2 &&
          st.failures == 0);
    /* what went over the wire: SigV4 by libcurl, with our session token signed */
    CHECK_STR(sc.last_method, "POST");
    CHECK_STR(sc.last_target, "/");
    CHECK_STR(sc.last_amz_target, "ElasticMapReduce.ListClusters");
    CHECK_STR(sc.last_ctype, "application/x-amz-json-1.1");
    CHECK_STR(sc.last_token, SESSION);
    const char *cred_prefix = "AWS4-HMAC-SHA256 Credential=AKIALOCALTEST0000001/";
    CHECK(!strncmp(sc.last_auth, cred_prefix, strlen(cred_prefix)));
    CHECK(strstr(sc.last_auth, "/eu-west-1/elasticmapreduce/aws4_request") != NULL);
    CHECK(strstr(sc.last_auth, "x-amz-security-token") && strstr(sc.last_auth, "x-amz-target") &&
          strstr(sc.last_auth, "content-type"));

    /* a client error: not retried, named */
    plan(1, (planned_t){400,
                        "{\"__type\":\"ValidationException\",\"message\":\"Cluster j-LOCAL is "
                        "terminated\"}",
                        "x-amzn-RequestId: req-123\r\n", 0});
    CHECK(sy_aws_json_call(aws, "emr", "ElasticMapReduce.AddJobFlowSteps", body, &resp, &err) ==
          SY_ERR_AWS);
    CHECK(resp == NULL && !err.retriable && sc.api_hits == 1);
    CHECK(strstr(err.msg, "emr AddJobFlowSteps: HTTP 400 ValidationException: Cluster j-LOCAL is "
                          "terminated (request id req-123)") != NULL);
    CHECK_STR(sy_aws_last_error_code(aws), "ValidationException");
    CHECK(sy_aws_last_status(aws) == 400);

    /* 5xx every time: max attempts, then a retriable error */
    const char *unavailable = "{\"__type\":\"InternalFailure\",\"message\":\"oops\"}";
    plan(4, (planned_t){503, unavailable, NULL, 0}, (planned_t){500, unavailable, NULL, 0},
         (planned_t){502, "", NULL, 0}, (planned_t){500, unavailable, NULL, 0});
    CHECK(sy_aws_json_call(aws, "emr", "ElasticMapReduce.DescribeCluster", body, &resp, &err) ==
          SY_ERR_AWS);
    CHECK(err.retriable && sc.api_hits == 4 && strstr(err.msg, "gave up after retries"));
    CHECK(strstr(err.msg, "emr DescribeCluster: HTTP 500 InternalFailure") != NULL);
    st = op_stats(aws, "emr:DescribeCluster");
    CHECK(st.attempts == 4 && st.retries == 3 && st.failures == 1 && st.throttles == 0);

    /* not idempotent: a 5xx may have been carried out, so it comes back at once ... */
    plan(2, (planned_t){500, unavailable, NULL, 0}, (planned_t){200, "{}", NULL, 0});
    CHECK(sy_aws_json_call_ex(aws, "emr", "ElasticMapReduce.AddJobFlowSteps", body, &resp,
                              SY_AWS_NO_AMBIGUOUS_RETRY, &err) == SY_ERR_AWS);
    CHECK(err.retriable && sc.api_hits == 1);
    /* ... while throttling proves nothing was done: retried */
    plan(2, (planned_t){400, throttle, NULL, 0},
         (planned_t){200, "{\"StepIds\":[\"s-1\"]}", NULL, 0});
    CHECK(sy_aws_json_call_ex(aws, "emr", "ElasticMapReduce.AddJobFlowSteps", body, &resp,
                              SY_AWS_NO_AMBIGUOUS_RETRY, &err) == SY_OK);
    CHECK(sc.api_hits == 2);
    json_decref(resp);
    sy_aws_destroy(aws);
    sy_config_destroy(conf);

    /* timeouts: retried, then SY_ERR_TIMEOUT (retriable); non-idempotent: one attempt only */
    conf = fast_config("3", "300", "10000");
    aws = sy_aws_new_env(conf, env, &err);
    plan(3, (planned_t){200, "{}", NULL, 800}, (planned_t){200, "{}", NULL, 800},
         (planned_t){200, "{}", NULL, 800});
    long long t0 = ms_now();
    CHECK(sy_aws_json_call(aws, "emr", "ElasticMapReduce.ListClusters", NULL, &resp, &err) ==
          SY_ERR_TIMEOUT);
    CHECK(err.retriable && ms_now() - t0 < 2000);
    CHECK(op_stats(aws, "emr:ListClusters").attempts == 3);
    plan(2, (planned_t){200, "{}", NULL, 800}, (planned_t){200, "{}", NULL, 0});
    CHECK(sy_aws_json_call_ex(aws, "emr", "ElasticMapReduce.AddJobFlowSteps", body, &resp,
                              SY_AWS_NO_AMBIGUOUS_RETRY, &err) == SY_ERR_TIMEOUT);
    CHECK(op_stats(aws, "emr:AddJobFlowSteps").attempts == 1);
    sy_aws_destroy(aws);
    sy_config_destroy(conf);

    /* the total budget bounds a call even when attempts remain */
    conf = fast_config("50", "1000", "600");
    sy_config_set(conf, "aws.retry.base.ms", "200", &err);
    sy_config_set(conf, "aws.retry.max.backoff.ms", "200", &err);
    aws = sy_aws_new_env(conf, env, &err);
    planned_t fail500 = {500, unavailable, NULL, 0};
    plan(16, fail500, fail500, fail500, fail500, fail500, fail500, fail500, fail500, fail500,
         fail500, fail500, fail500, fail500, fail500, fail500, fail500);
    t0 = ms_now();
    CHECK(sy_aws_json_call(aws, "emr", "ElasticMapReduce.ListSteps", body, &resp, &err) ==
          SY_ERR_AWS);
    CHECK(ms_now() - t0 < 900);
    CHECK(op_stats(aws, "emr:ListSteps").attempts < 16);
    sy_aws_destroy(aws);
    sy_config_destroy(conf);

    /* connection reuse: many calls, one connection */
    conf = fast_config("3", "2000", "10000");
    aws = sy_aws_new_env(conf, env, &err);
    plan(0);
    int conns = ts_connections(&srv);
    bool all_ok = true;
    for (int i = 0; i < 25; i++) {
        all_ok &= sy_aws_json_call(aws, "emr", "ElasticMapReduce.ListClusters", NULL, NULL, &err) ==
                  SY_OK;
    }
    CHECK(all_ok);
    CHECK(sy_aws_connections(aws) == 1);
    CHECK(ts_connections(&srv) == conns + 1);

    /* REST: the query goes out in canonical order, no body on GET, JSON on POST */
    plan(1, (planned_t){200, "{\"jobRuns\":[],\"nextToken\":null}", NULL, 0});
    CHECK(sy_aws_rest_call(aws, "emr-containers", "ListJobRuns", "GET",
                           "/virtualclusters/vc-1/jobruns?states=RUNNING&maxResults=50&"
                           "states=PENDING&nextToken=a%2Bb",
                           NULL, &resp, &err) == SY_OK);
    CHECK_STR(sc.last_target,
              "/virtualclusters/vc-1/jobruns?maxResults=50&nextToken=a%2Bb&states=PENDING&"
              "states=RUNNING");
    CHECK_STR(sc.last_method, "GET");
    CHECK_STR(sc.last_ctype, "");
    CHECK(strstr(sc.last_auth, "/eu-west-1/emr-containers/aws4_request") != NULL);
    json_decref(resp);
    json_t *start = json_pack("{s:s,s:s}", "name", "job-1", "clientToken", "job-1.1");
    plan(1, (planned_t){200, "{\"id\":\"jr-1\",\"virtualClusterId\":\"vc-1\"}", NULL, 0});
    CHECK(sy_aws_rest_call(aws, "emr-containers", "StartJobRun", "POST",
                           "/virtualclusters/vc-1/jobruns", start, &resp, &err) == SY_OK);
    CHECK_STR(json_string_value(json_object_get(resp, "id")), "jr-1");
    CHECK_STR(sc.last_ctype, "application/json");
    json_decref(resp);
    json_decref(start);
    /* REST-JSON error named only by the header */
    plan(1, (planned_t){404, "{\"message\":\"Job run jr-9 not found\"}",
                        "x-amzn-ErrorType: ResourceNotFoundException:http://internal/\r\n", 0});
    CHECK(sy_aws_rest_call(aws, "emr-containers", "DescribeJobRun", "GET",
                           "/virtualclusters/vc-1/jobruns/jr-9", NULL, &resp, &err) == SY_ERR_AWS);
    CHECK_STR(sy_aws_last_error_code(aws), "ResourceNotFoundException");
    CHECK(!err.retriable && strstr(err.msg, "emr-containers DescribeJobRun: HTTP 404"));

    /* S3: path style on a configured endpoint, key encoded, ranges, past the end */
    sy_aws_s3_data_t d;
    plan(1, (planned_t){206, "world", "Content-Range: bytes 6-10/22\r\n", 0});
    CHECK(sy_aws_s3_get(aws, "emr-logs", "j-1/steps/s-1/std err.gz", 6, 5, &d, &err) == SY_OK);
    CHECK_STR(sc.last_target, "/emr-logs/j-1/steps/s-1/std%20err.gz");
    CHECK_STR(sc.last_range, "bytes=6-10");
    CHECK(strlen(sc.last_sha) == 64);
    CHECK(d.len == 5 && !memcmp(d.data, "world", 5) && d.object_size == 22);
    sy_aws_s3_data_clear(&d);
    plan(1, (planned_t){200, "x", NULL, 0});
    CHECK(sy_aws_s3_get(aws, "emr-logs", "odd/../key/./x", 0, 0, &d, &err) == SY_OK);
    CHECK_STR(sc.last_target, "/emr-logs/odd/../key/./x"); /* a key, not dot segments */
    sy_aws_s3_data_clear(&d);
    plan(1, (planned_t){416,
                        "<Error><Code>InvalidRange</Code><Message>The requested range is not "
                        "satisfiable</Message><ActualObjectSize>22</ActualObjectSize></Error>",
                        "Content-Range: bytes */22\r\n", 0});
    CHECK(sy_aws_s3_get(aws, "emr-logs", "k", 22, 0, &d, &err) == SY_OK);
    CHECK_STR(sc.last_range, "bytes=22-");
    CHECK(d.len == 0 && d.object_size == 22);
    sy_aws_s3_data_clear(&d);
    plan(1, (planned_t){200, "whole", NULL, 0});
    CHECK(sy_aws_s3_get(aws, "emr-logs", "k", 0, 0, &d, &err) == SY_OK);
    CHECK_STR(sc.last_range, ""); /* no Range for the whole object */
    CHECK(d.len == 5 && d.object_size == 5);
    sy_aws_s3_data_clear(&d);
    plan(1, (planned_t){200,
                        "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a b"
                        "</Key><Size>3</Size></Contents></ListBucketResult>",
                        NULL, 0});
    sy_aws_s3_listing_t l;
    CHECK(sy_aws_s3_list(aws, "emr-logs", "j-1/steps/", "tok/=", 7, &l, &err) == SY_OK);
    CHECK_STR(sc.last_target, "/emr-logs/?continuation-token=tok%2F%3D&list-type=2&max-keys=7&"
                              "prefix=j-1%2Fsteps%2F");
    CHECK(l.n == 1 && !strcmp(l.objects[0].key, "a b"));
    sy_aws_s3_listing_clear(&l);
    sy_aws_destroy(aws);
    sy_config_destroy(conf);
    json_decref(body);
}

/* An ExpiredToken answer makes the client fetch fresh credentials and try again. */
static void test_expired_token(void)
{
    sy_err_t err = SY_ERR_INIT;
    char emr[128], uri[128];
    snprintf(emr, sizeof(emr), "AWS_ENDPOINT_URL_EMR=%s", base_url);
    snprintf(uri, sizeof(uri), "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s/creds", base_url);
    snprintf(sc.container_token, sizeof(sc.container_token), "t");
    sc.creds_ttl_s = 3600;
    char *env[] = {emr,
                   uri,
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN=t",
                   "AWS_REGION=us-east-1",
                   "HOME=/nonexistent",
                   NULL};
    sy_config_t *conf = fast_config("3", "2000", "10000");
    sy_aws_t *aws = sy_aws_new_env(conf, env, &err);
    CHECK(aws && !strcmp(sy_aws_credentials_source(aws), "container"));
    if (!aws)
        return;
    int hits = sc.container_hits;
    plan(2,
         (planned_t){400,
                     "{\"__type\":\"ExpiredTokenException\",\"message\":\"The security token "
                     "included in the request is expired\"}",
                     NULL, 0},
         (planned_t){200, "{}", NULL, 0});
    CHECK(sy_aws_json_call(aws, "emr", "ElasticMapReduce.ListClusters", NULL, NULL, &err) == SY_OK);
    CHECK(sc.container_hits == hits + 2); /* first fetch, then the forced refresh */
    char want[64];
    snprintf(want, sizeof(want), "Credential=ASIACONTAINER%07d/", sc.container_serial);
    CHECK(strstr(sc.last_auth, want) != NULL); /* the retry used the fresh keys */
    sy_aws_destroy(aws);
    sy_config_destroy(conf);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/itest_aws_local_XXXXXX");
    if (!mkdtemp(tmpdir) || ts_start(&srv, handle, NULL) != 0) {
        fprintf(stderr, "cannot start the local server\n");
        return 1;
    }
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", srv.port);

    /* Everything at debug level goes to a file that is then searched for secrets. */
    char logpath[128];
    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    int saved = dup(2);
    FILE *logf = fopen(logpath, "w+");
    dup2(fileno(logf), 2);
    sy_log_set_level(SY_LOG_DEBUG);

    test_container_credentials();
    test_imds();
    test_client();
    test_expired_token();

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(logf, 0, SEEK_END);
    long n = ftell(logf);
    char *log = calloc(1, (size_t)n + 1);
    fseek(logf, 0, SEEK_SET);
    CHECK(fread(log, 1, (size_t)n, logf) == (size_t)n);
    fclose(logf);
    fputs(log, stderr); /* the test's own output, CHECK failures included */
    const char *secrets[] = {SECRET,
                             SESSION,
                             CONTAINER_SECRET,
                             IMDS_SECRET,
                             "containerToken",
                             "imdsToken",
                             "pod-identity-token",
                             "imds-session-token",
                             NULL};
    for (const char **s = secrets; *s; s++) {
        if (strstr(log, *s))
            fprintf(stderr, "SECRET IN LOG: %s\n", *s);
        CHECK(strstr(log, *s) == NULL);
    }
    CHECK(strstr(log, "retry 1/") != NULL); /* the log was captured at all */
    CHECK(!sc.secret_seen);
    free(log);
    ts_stop(&srv);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
    SY_TEST_DONE();
}
