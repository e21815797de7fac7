/* Integration test of the AWS client against moto behind the testenv harness (scripts/testenv:
 * AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of moto's IAM user,
 * SY_AWS_CONTROL_URL). With moto's SigV4 verification switched ON: RunJobFlow and
 * AddJobFlowSteps signed by libcurl are accepted, a wrong secret key and an unknown key are
 * rejected (so verification is really on), ListSteps filters by StepStates and pages with
 * Marker, DescribeStep; temporary credentials from web identity (moto's STS) and from a
 * container endpoint this test serves on 127.0.0.1 are accepted too; EMR on EKS job runs
 * (REST-JSON with a query string), S3 listing and ranged reads, CloudWatch Logs; and throttling
 * injected by the harness is retried inside the client. */
#include <stdarg.h>
#include <unistd.h>

#include "itest_aws_server.h"
#include "sy_aws.h"
#include "sy_config.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_test.h"

extern char **environ;

static const char *control_url;
static CURL *control_curl;

/* A call to the harness' control API; returns the parsed answer (caller decrefs) or NULL. */
static json_t *control(const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", control_url, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    sy_http_request_t req = {.method = method,
                             .url = url,
                             .headers = h,
                             .body = body,
                             .body_len = body ? strlen(body) : 0,
                             .timeout_ms = 10000};
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    sy_err_t err = SY_ERR_INIT;
    json_t *j = NULL;
    if (sy_http_perform(control_curl, &req, &resp, &err) != SY_OK || resp.status != 200)
        fprintf(stderr, "control %s %s: %s %ld %s\n", method, path, err.msg, resp.status,
                resp.body ? resp.body : "");
    else
        j = json_loadb(resp.body, resp.body_len, 0, NULL);
    sy_http_response_clear(&resp);
    curl_slist_free_all(h);
    return j;
}

static bool auth_enabled(void)
{
    json_t *j = control("GET", "/control/auth", NULL);
    bool on = json_is_true(json_object_get(j, "enabled"));
    json_decref(j);
    return on;
}

static void set_auth(bool on)
{
    json_decref(
        control("POST", "/control/auth", on ? "{\"enabled\":true}" : "{\"enabled\":false}"));
    CHECK(auth_enabled() == on);
}

/* A JSON 1.1 EMR call; body is stolen. Returns the answer or NULL (error printed). */
static json_t *emr(sy_aws_t *aws, const char *op, json_t *body)
{
    char target[128];
    snprintf(target, sizeof(target), "ElasticMapReduce.%s", op);
    json_t *resp = NULL;
    sy_err_t err = SY_ERR_INIT;
    if (sy_aws_json_call(aws, "emr", target, body, &resp, &err) != SY_OK)
        fprintf(stderr, "  %s\n", err.msg);
    json_decref(body);
    return resp;
}

static json_t *logs(sy_aws_t *aws, const char *op, json_t *body)
{
    char target[128];
    snprintf(target, sizeof(target), "Logs_20140328.%s", op);
    json_t *resp = NULL;
    sy_err_t err = SY_ERR_INIT;
    if (sy_aws_json_call(aws, "logs", target, body, &resp, &err) != SY_OK)
        fprintf(stderr, "  %s\n", err.msg);
    json_decref(body);
    return resp;
}

static json_t *steps(const char *prefix, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s-%d", prefix, i);
        json_array_append_new(a, json_pack("{s:s,s:s,s:{s:s,s:[s,s]}}", "Name", name,
                                           "ActionOnFailure", "CONTINUE", "HadoopJarStep", "Jar",
                                           "command-runner.jar", "Args", "spark-submit",
                                           "s3://bucket/job.py"));
    }
    return a;
}

/* The environment with some variables replaced or added ("NAME=value" each). */
static char **env_with(int n, ...)
{
    size_t count = 0;
    for (char **e = environ; *e; e++)
        count++;
    char **env = calloc(count + (size_t)n + 1, sizeof(*env));
    const char *repl[8];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < 8; i++)
        repl[i] = va_arg(ap, const char *);
    va_end(ap);
    size_t k = 0;
    for (char **e = environ; *e; e++) {
        bool replaced = false;
        for (int i = 0; i < n; i++) {
            size_t nl = strcspn(repl[i], "=");
            if (!strncmp(*e, repl[i], nl + 1))
                replaced = true;
        }
        if (!replaced)
            env[k++] = *e;
    }
    for (int i = 0; i < n; i++)
        env[k++] = (char *)repl[i];
    return env;
}

static size_t count_steps(sy_aws_t *aws, const char *cluster, const char *states_json, int *pages,
                          json_t *ids)
{
    size_t total = 0;
    char *marker = NULL;
    *pages = 0;
    do {
        json_t *body = json_pack("{s:s,s:o}", "ClusterId", cluster, "StepStates",
                                 json_loads(states_json, 0, NULL));
        if (marker)
            json_object_set_new(body, "Marker", json_string(marker));
        free(marker);
        marker = NULL;
        json_t *resp = emr(aws, "ListSteps", body);
        if (!resp)
            break;
        (*pages)++;
        json_t *list = json_object_get(resp, "Steps"), *s;
        size_t i;
        json_array_foreach(list, i, s)
        {
            if (ids)
                json_object_set_new(ids, json_string_value(json_object_get(s, "Id")), json_true());
            total++;
        }
        const char *m = json_string_value(json_object_get(resp, "Marker"));
        marker = m ? strdup(m) : NULL;
        json_decref(resp);
    } while (marker && *pages < 50);
    free(marker);
    return total;
}

/* ---- container credentials endpoint served by this test ---- */

static struct {
    pthread_mutex_t lock;
    const char *key, *secret;
    int hits;
} box = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void serve_creds(void *opaque, const ts_req_t *req, ts_resp_t *resp)
{
    char auth[256];
    pthread_mutex_lock(&box.lock);
    box.hits++;
    if (!ts_header(req, "Authorization", auth, sizeof(auth)) || strcmp(auth, "itest-token")) {
        resp->status = 401;
        snprintf(resp->body, sizeof(resp->body), "{\"message\":\"unauthorized\"}");
    } else {
        /* long-term IAM user keys served as if temporary: the endpoint decides */
        time_t exp = time(NULL) + 3600;
        struct tm tm;
        char when[32];
        gmtime_r(&exp, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(resp->body, sizeof(resp->body),
                 "{\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\",\"Expiration\":\"%s\"}",
                 box.key, box.secret, when);
    }
    pthread_mutex_unlock(&box.lock);
}

/* ---- the test ---- */

static void test_emr(sy_aws_t *aws, sy_config_t *conf, char **cluster_out)
{
    sy_err_t err = SY_ERR_INIT;
    /* RunJobFlow, verified */
    json_t *resp =
        emr(aws, "RunJobFlow",
            json_pack("{s:s,s:s,s:s,s:s,s:{s:i,s:s,s:s,s:b},s:s,s:s}", "Name",
                      "switchyard-itest-aws", "ReleaseLabel", "emr-6.15.0", "LogUri",
                      "s3://switchyard-itest-logs/emr/", "VisibleToAllUsers", "true", "Instances",
                      "InstanceCount", 1, "MasterInstanceType", "m5.xlarge", "SlaveInstanceType",
                      "m5.xlarge", "KeepJobFlowAliveWhenNoSteps", 1, "JobFlowRole",
                      "EMR_EC2_DefaultRole", "ServiceRole", "EMR_DefaultRole"));
    const char *cluster = json_string_value(json_object_get(resp, "JobFlowId"));
    CHECK(cluster && !strncmp(cluster, "j-", 2));
    if (!cluster) {
        json_decref(resp);
        return;
    }
    *cluster_out = strdup(cluster);
    json_decref(resp);
    cluster = *cluster_out;

    /* AddJobFlowSteps signed by libcurl's SigV4: accepted */
    json_t *add = json_pack("{s:s,s:o}", "JobFlowId", cluster, "Steps", steps("job-a", 1));
    resp = NULL;
    sy_err_code_t rc = sy_aws_json_call_ex(aws, "emr", "ElasticMapReduce.AddJobFlowSteps", add,
                                           &resp, SY_AWS_NO_AMBIGUOUS_RETRY, &err);
    CHECK(rc == SY_OK);
    if (rc)
        fprintf(stderr, "  AddJobFlowSteps: %s\n", err.msg);
    json_t *ids = json_object_get(resp, "StepIds");
    CHECK(json_array_size(ids) == 1);
    char *first_step =
        json_array_size(ids) ? strdup(json_string_value(json_array_get(ids, 0))) : NULL;
    json_decref(resp);
    fprintf(stderr, "AddJobFlowSteps with verification on: accepted, step %s\n",
            first_step ? first_step : "?");

    /* the same call with a wrong secret key: rejected by the signature check */
    char *bad_secret = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGWRONG";
    char **env = env_with(1, bad_secret);
    sy_aws_t *bad = sy_aws_new_env(conf, env, &err);
    CHECK(bad != NULL);
    resp = NULL;
    if (bad) {
        sy_err_clear(&err);
        CHECK(sy_aws_json_call(bad, "emr", "ElasticMapReduce.AddJobFlowSteps", add, &resp, &err) ==
              SY_ERR_AWS);
        CHECK_STR(sy_aws_last_error_code(bad), "SignatureDoesNotMatch");
        CHECK(sy_aws_last_status(bad) == 403 && !err.retriable);
        CHECK(strstr(err.msg, "emr AddJobFlowSteps: HTTP 403 SignatureDoesNotMatch") != NULL);
        CHECK(strstr(err.msg, "WRONGWRONG") == NULL);
        fprintf(stderr, "AddJobFlowSteps with a wrong secret: %s\n", err.msg);
    }
    sy_aws_destroy(bad);
    free(env);
    /* ... and an access key moto's IAM does not know */
    env = env_with(1, "AWS_ACCESS_KEY_ID=AKIAUNKNOWNKEY000000");
    bad = sy_aws_new_env(conf, env, &err);
    if (bad) {
        CHECK(sy_aws_json_call(bad, "emr", "ElasticMapReduce.ListClusters", NULL, NULL, &err) ==
              SY_ERR_AWS);
        CHECK_STR(sy_aws_last_error_code(bad), "InvalidClientTokenId");
        fprintf(stderr, "ListClusters with an unknown key: %s\n", err.msg);
    }
    sy_aws_destroy(bad);
    free(env);
    json_decref(add);

    /* 120 steps in all (the rejected call added none); ListSteps pages with Marker */
    json_decref(emr(aws, "AddJobFlowSteps",
                    json_pack("{s:s,s:o}", "JobFlowId", cluster, "Steps", steps("job-b", 119))));
    int pages;
    json_t *seen = json_object();
    size_t active = count_steps(aws, cluster, "[\"PENDING\",\"RUNNING\"]", &pages, seen);
    CHECK(active == 120);
    CHECK(json_object_size(seen) == 120); /* no step twice across pages */
    CHECK(pages >= 2);
    fprintf(stderr, "ListSteps PENDING|RUNNING: %zu steps in %d pages\n", active, pages);
    json_decref(seen);
    CHECK(count_steps(aws, cluster, "[\"RUNNING\"]", &pages, NULL) == 1);
    CHECK(count_steps(aws, cluster, "[\"COMPLETED\",\"FAILED\",\"CANCELLED\"]", &pages, NULL) == 0);

    /* DescribeStep */
    if (first_step) {
        resp = emr(aws, "DescribeStep",
                   json_pack("{s:s,s:s}", "ClusterId", cluster, "StepId", first_step));
        json_t *step = json_object_get(resp, "Step");
        CHECK_STR(json_string_value(json_object_get(step, "Id")), first_step);
        CHECK_STR(json_string_value(json_object_get(step, "Name")), "job-a-0");
        const char *state =
            json_string_value(json_object_get(json_object_get(step, "Status"), "State"));
        CHECK(state && (!strcmp(state, "RUNNING") || !strcmp(state, "PENDING")));
        json_decref(resp);
    }
    free(first_step);

    /* throttling injected by the harness is retried inside the client and counted */
    json_decref(control("POST", "/control/faults",
                        "{\"service\":\"emr\",\"operation\":\"DescribeCluster\","
                        "\"kind\":\"throttle\",\"count\":2}"));
    sy_aws_stats_reset(aws);
    resp = emr(aws, "DescribeCluster", json_pack("{s:s}", "ClusterId", cluster));
    CHECK(resp != NULL);
    json_decref(resp);
    sy_aws_op_stats_t st[8];
    size_t n = sy_aws_stats(aws, st, 8);
    CHECK(n == 1 && st[0].calls == 1 && st[0].attempts == 3 && st[0].throttles == 2 &&
          st[0].retries == 2);
    json_decref(control("DELETE", "/control/faults", NULL));
}

static void test_web_identity(sy_aws_t *aws, sy_config_t *conf, const char *cluster,
                              const char *dir)
{
    sy_err_t err = SY_ERR_INIT;
    /* a role the web identity may assume (IAM through our query-protocol call) */
    char role[64], params[1024], *xml = NULL;
    snprintf(role, sizeof(role), "switchyard-itest-%d", (int)getpid());
    char *trust = sy_http_url_encode(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":"
        "{\"Federated\":\"arn:aws:iam::123456789012:oidc-provider/oidc.example\"},"
        "\"Action\":\"sts:AssumeRoleWithWebIdentity\"}]}",
        false);
    snprintf(params, sizeof(params), "RoleName=%s&AssumeRolePolicyDocument=%s", role, trust);
    free(trust);
    CHECK(sy_aws_query_call(aws, "iam", "CreateRole", params, &xml, NULL, &err) == SY_OK);
    char *arn = xml ? sy_aws_xml_text(xml, xml + strlen(xml), "Arn") : NULL;
    CHECK(arn && strstr(arn, role));
    free(xml);
    char *policy = sy_http_url_encode("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
                                      "\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}",
                                      false);
    snprintf(params, sizeof(params), "RoleName=%s&PolicyName=all&PolicyDocument=%s", role, policy);
    free(policy);
    CHECK(sy_aws_query_call(aws, "iam", "PutRolePolicy", params, &xml, NULL, &err) == SY_OK);
    free(xml);
    if (!arn)
        return;

    char tokfile[256], tokvar[300], rolevar[300];
    snprintf(tokfile, sizeof(tokfile), "%s/web-identity-token", dir);
    FILE *f = fopen(tokfile, "w");
    fputs("eyJhbGciOiJSUzI1NiIsImtpZCI6Iml0ZXN0In0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6"
          "c3c6d29ya2VyIn0.c2lnbmF0dXJl\n",
          f);
    fclose(f);
    snprintf(tokvar, sizeof(tokvar), "AWS_WEB_IDENTITY_TOKEN_FILE=%s", tokfile);
    snprintf(rolevar, sizeof(rolevar), "AWS_ROLE_ARN=%s", arn);
    char **env = env_with(5, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", tokvar, rolevar,
                          "AWS_ROLE_SESSION_NAME=switchyard-itest");
    sy_aws_t *wi = sy_aws_new_env(conf, env, &err);
    CHECK(wi && !strcmp(sy_aws_credentials_source(wi), "web-identity"));
    if (wi) {
        /* STS AssumeRoleWithWebIdentity is unsigned, which moto only serves with verification
         * off: fetch the credentials first, then use them with verification on. */
        set_auth(false);
        CHECK(sy_aws_json_call(wi, "emr", "ElasticMapReduce.ListClusters", NULL, NULL, &err) ==
              SY_OK);
        set_auth(true);
        json_t *resp = NULL;
        json_t *body = json_pack("{s:s}", "ClusterId", cluster);
        sy_err_code_t rc =
            sy_aws_json_call(wi, "emr", "ElasticMapReduce.DescribeCluster", body, &resp, &err);
        CHECK(rc == SY_OK);
        if (rc)
            fprintf(stderr, "  web identity DescribeCluster: %s\n", err.msg);
        CHECK_STR(json_string_value(json_object_get(json_object_get(resp, "Cluster"), "Id")),
                  cluster);
        fprintf(stderr,
                "DescribeCluster with web-identity (STS) session credentials, "
                "verification on: %s\n",
                rc ? "rejected" : "accepted");
        json_decref(resp);
        json_decref(body);
    }
    sy_aws_destroy(wi);
    free(env);
    free(arn);
}

static void test_container(sy_config_t *conf, const char *cluster)
{
    sy_err_t err = SY_ERR_INIT;
    ts_server_t srv;
    box.key = getenv("AWS_ACCESS_KEY_ID");
    box.secret = getenv("AWS_SECRET_ACCESS_KEY");
    CHECK(ts_start(&srv, serve_creds, NULL) == 0);
    char uri[128];
    snprintf(uri, sizeof(uri), "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:%d/v1/creds",
             srv.port);
    char **env = env_with(4, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", uri,
                          "AWS_CONTAINER_AUTHORIZATION_TOKEN=itest-token");
    sy_aws_t *c = sy_aws_new_env(conf, env, &err);
    CHECK(c && !strcmp(sy_aws_credentials_source(c), "container"));
    if (c) {
        json_t *resp = NULL, *body = json_pack("{s:s}", "ClusterId", cluster);
        sy_err_code_t rc = SY_OK;
        for (int i = 0; i < 3 && rc == SY_OK; i++) {
            json_decref(resp);
            resp = NULL;
            rc = sy_aws_json_call(c, "emr", "ElasticMapReduce.ListSteps", body, &resp, &err);
        }
        CHECK(rc == SY_OK);
        CHECK(json_array_size(json_object_get(resp, "Steps")) > 0);
        CHECK(box.hits == 1); /* fetched once, cached */
        fprintf(stderr, "ListSteps with container-endpoint credentials, verification on: %s\n",
                rc ? err.msg : "accepted");
        json_decref(resp);
        json_decref(body);
    }
    sy_aws_destroy(c);
    free(env);
    ts_stop(&srv);
}

static void test_emr_containers(sy_aws_t *aws)
{
    sy_err_t err = SY_ERR_INIT;
    json_t *resp = NULL;
    char ns[64];
    snprintf(ns, sizeof(ns), "spark-%d", (int)getpid()); /* one virtual cluster per namespace */
    json_t *vc =
        json_pack("{s:s,s:{s:s,s:s,s:{s:{s:s}}}}", "name", "switchyard-itest", "containerProvider",
                  "id", "eks-itest", "type", "EKS", "info", "eksInfo", "namespace", ns);
    CHECK(sy_aws_rest_call(aws, "emr-containers", "CreateVirtualCluster", "POST",
                           "/virtualclusters", vc, &resp, &err) == SY_OK);
    json_decref(vc);
    char *vc_id = json_string_value(json_object_get(resp, "id"))
                      ? strdup(json_string_value(json_object_get(resp, "id")))
                      : NULL;
    json_decref(resp);
    CHECK(vc_id != NULL);
    if (!vc_id) {
        fprintf(stderr, "  CreateVirtualCluster: %s\n", err.msg);
        return;
    }
    char path[512];
    snprintf(path, sizeof(path), "/virtualclusters/%s/jobruns", vc_id);
    json_t *run =
        json_pack("{s:s,s:s,s:s,s:s,s:{s:{s:s,s:[s],s:s}}}", "name", "job-1", "clientToken",
                  "job-1.1", "executionRoleArn", "arn:aws:iam::123456789012:role/spark",
                  "releaseLabel", "emr-6.15.0-latest", "jobDriver", "sparkSubmitJobDriver",
                  "entryPoint", "s3://bucket/job.py", "entryPointArguments", "--day=2024-05-01",
                  "sparkSubmitParameters", "--conf spark.executor.instances=2");
    resp = NULL;
    CHECK(sy_aws_rest_call(aws, "emr-containers", "StartJobRun", "POST", path, run, &resp, &err) ==
          SY_OK);
    char *run_id = json_string_value(json_object_get(resp, "id"))
                       ? strdup(json_string_value(json_object_get(resp, "id")))
                       : NULL;
    json_decref(resp);
    json_decref(run);
    CHECK(run_id != NULL);
    /* a GET with a multi-valued query, signed: the client sorts it into canonical order */
    snprintf(path, sizeof(path),
             "/virtualclusters/%s/jobruns?states=RUNNING&maxResults=10&states=PENDING&"
             "states=SUBMITTED",
             vc_id);
    resp = NULL;
    sy_err_clear(&err);
    CHECK(sy_aws_rest_call(aws, "emr-containers", "ListJobRuns", "GET", path, NULL, &resp, &err) ==
          SY_OK);
    if (err.code)
        fprintf(stderr, "  ListJobRuns: %s\n", err.msg);
    json_t *runs = json_object_get(resp, "jobRuns");
    CHECK(json_array_size(runs) == 1);
    json_decref(resp);
    if (run_id) {
        snprintf(path, sizeof(path), "/virtualclusters/%s/jobruns/%s", vc_id, run_id);
        resp = NULL;
        CHECK(sy_aws_rest_call(aws, "emr-containers", "DescribeJobRun", "GET", path, NULL, &resp,
                               &err) == SY_OK);
        const char *state =
            json_string_value(json_object_get(json_object_get(resp, "jobRun"), "state"));
        CHECK(state && (!strcmp(state, "RUNNING") || !strcmp(state, "PENDING") ||
                        !strcmp(state, "SUBMITTED")));
        json_decref(resp);
        sy_err_clear(&err);
        CHECK(sy_aws_rest_call(aws, "emr-containers", "CancelJobRun", "DELETE", path, NULL, NULL,
                               &err) == SY_OK);
        if (err.code)
            fprintf(stderr, "  CancelJobRun: %s\n", err.msg);
        snprintf(path, sizeof(path), "/virtualclusters/%s/jobruns/0000000000000000000", vc_id);
        CHECK(sy_aws_rest_call(aws, "emr-containers", "DescribeJobRun", "GET", path, NULL, NULL,
                               &err) == SY_ERR_AWS);
        CHECK_STR(sy_aws_last_error_code(aws), "ResourceNotFoundException");
    }
    fprintf(stderr, "emr-containers with verification on: StartJobRun, ListJobRuns (query), "
                    "DescribeJobRun, CancelJobRun done\n");
    free(run_id);
    free(vc_id);
}

/* S3 objects are put with verification off (the client has no PutObject), read with it on. */
static void s3_put(CURL *curl, const char *url, const char *body)
{
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    h = curl_slist_append(h, "Content-Type: application/octet-stream");
    sy_http_request_t req = {.method = "PUT",
                             .url = url,
                             .headers = h,
                             .body = body,
                             .body_len = body ? strlen(body) : 0,
                             .timeout_ms = 10000,
                             .aws_sigv4 = "aws:amz:us-east-1:s3",
                             .userpwd = "setup:setup"};
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    sy_err_t err = SY_ERR_INIT;
    CHECK(sy_http_perform(curl, &req, &resp, &err) == SY_OK && resp.status == 200);
    sy_http_response_clear(&resp);
    curl_slist_free_all(h);
}

static void test_s3(sy_aws_t *aws)
{
    sy_err_t err = SY_ERR_INIT;
    const char *base = getenv("AWS_ENDPOINT_URL");
    char bucket[64], url[512];
    snprintf(bucket, sizeof(bucket), "switchyard-itest-%d", (int)getpid());
    const char *keys[] = {"j-1/steps/s-1/controller", "j-1/steps/s-1/std%20err%26x",
                          "j-1/steps/s-1/stdout",     "j-1/steps/s-1/syslog",
                          "j-1/steps/s-2/stdout",     NULL};
    set_auth(false);
    snprintf(url, sizeof(url), "%s/%s", base, bucket);
    s3_put(control_curl, url, NULL);
    for (const char **k = keys; *k; k++) {
        snprintf(url, sizeof(url), "%s/%s/%s", base, bucket, *k);
        s3_put(control_curl, url, "0123456789abcdefghij");
    }
    set_auth(true);

    sy_aws_s3_listing_t l;
    char *token = NULL;
    int pages = 0;
    size_t total = 0;
    bool saw_special = false;
    do {
        sy_err_clear(&err);
        CHECK(sy_aws_s3_list(aws, bucket, "j-1/steps/s-1/", token, 2, &l, &err) == SY_OK);
        if (err.code) {
            fprintf(stderr, "  ListObjectsV2: %s\n", err.msg);
            break;
        }
        pages++;
        total += l.n;
        for (size_t i = 0; i < l.n; i++) {
            saw_special |= !strcmp(l.objects[i].key, "j-1/steps/s-1/std err&x");
            CHECK(l.objects[i].size == 20);
        }
        free(token);
        token = l.next_token ? strdup(l.next_token) : NULL;
        sy_aws_s3_listing_clear(&l);
    } while (token && pages < 10);
    free(token);
    CHECK(total == 4 && pages == 2 && saw_special);

    sy_aws_s3_data_t d;
    CHECK(sy_aws_s3_get(aws, bucket, "j-1/steps/s-1/std err&x", 10, 4, &d, &err) == SY_OK);
    CHECK(d.len == 4 && !memcmp(d.data, "abcd", 4) && d.object_size == 20);
    sy_aws_s3_data_clear(&d);
    CHECK(sy_aws_s3_get(aws, bucket, "j-1/steps/s-1/stdout", 15, 0, &d, &err) == SY_OK);
    CHECK(d.len == 5 && !strcmp(d.data, "fghij"));
    sy_aws_s3_data_clear(&d);
    CHECK(sy_aws_s3_get(aws, bucket, "j-1/steps/s-1/stdout", 20, 0, &d, &err) == SY_OK);
    CHECK(d.len == 0 && d.object_size == 20); /* nothing new yet */
    sy_aws_s3_data_clear(&d);
    CHECK(sy_aws_s3_get(aws, bucket, "j-1/steps/s-9/stdout", 0, 0, &d, &err) == SY_ERR_AWS);
    CHECK_STR(sy_aws_last_error_code(aws), "NoSuchKey");
    CHECK(!err.retriable);
    fprintf(stderr, "S3 with verification on: %zu keys in %d pages, ranged reads done\n", total,
            pages);
}

static void test_logs(sy_aws_t *aws)
{
    sy_err_t err = SY_ERR_INIT;
    char group[64];
    snprintf(group, sizeof(group), "/switchyard/itest-%d", (int)getpid());
    json_decref(logs(aws, "CreateLogGroup", json_pack("{s:s}", "logGroupName", group)));
    json_decref(logs(aws, "CreateLogStream",
                     json_pack("{s:s,s:s}", "logGroupName", group, "logStreamName", "driver")));
    long long now = (long long)time(NULL) * 1000;
    json_decref(logs(aws, "PutLogEvents",
                     json_pack("{s:s,s:s,s:[{s:I,s:s},{s:I,s:s},{s:I,s:s}]}", "logGroupName", group,
                               "logStreamName", "driver", "logEvents", "timestamp", now, "message",
                               "line 1", "timestamp", now + 1, "message", "line 2", "timestamp",
                               now + 2, "message", "line 3")));
    json_t *events = NULL;
    char *next = NULL;
    CHECK(sy_aws_logs_get_events(aws, group, "driver", NULL, 0, &events, &next, &err) == SY_OK);
    CHECK(json_array_size(events) == 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(events, 0), "message")), "line 1");
    CHECK(next != NULL);
    json_decref(events);
    events = NULL;
    char *next2 = NULL;
    CHECK(sy_aws_logs_get_events(aws, group, "driver", next, 0, &events, &next2, &err) == SY_OK);
    CHECK(json_array_size(events) == 0); /* nothing new since the token */
    json_decref(events);
    free(next);
    free(next2);
    CHECK(sy_aws_logs_get_events(aws, "/no/such/group", "x", NULL, 0, &events, &next, &err) ==
          SY_ERR_AWS);
    CHECK_STR(sy_aws_last_error_code(aws), "ResourceNotFoundException");

    /* DescribeLogStreams by prefix, two per page */
    const char *names[] = {"p/a/stdout", "p/b/stderr", "p/b/stdout", "q/other"};
    for (size_t i = 0; i < 4; i++)
        json_decref(logs(aws, "CreateLogStream",
                         json_pack("{s:s,s:s}", "logGroupName", group, "logStreamName", names[i])));
    json_t *streams = NULL;
    char *token = NULL;
    size_t seen = 0;
    int pages = 0;
    do {
        char *prev = token;
        token = NULL;
        CHECK(sy_aws_logs_describe_streams(aws, group, "p/", prev, 2, &streams, &token, &err) ==
              SY_OK);
        free(prev);
        for (size_t i = 0; i < json_array_size(streams); i++, seen++)
            CHECK_STR(
                json_string_value(json_object_get(json_array_get(streams, i), "logStreamName")),
                seen < 3 ? names[seen] : "?");
        json_decref(streams);
        streams = NULL;
        pages++;
    } while (token && pages < 5);
    CHECK(seen == 3 && pages == 2);
    CHECK(sy_aws_logs_describe_streams(aws, "/no/such/group", NULL, NULL, 0, &streams, &token,
                                       &err) == SY_ERR_AWS);
    CHECK_STR(sy_aws_last_error_code(aws), "ResourceNotFoundException");
    CHECK(streams == NULL && token == NULL);
}

int main(void)
{
    control_url = getenv("SY_AWS_CONTROL_URL");
    if (!getenv("AWS_ENDPOINT_URL") || !control_url || !getenv("AWS_ACCESS_KEY_ID")) {
        fprintf(stderr, "itest_aws_emr needs the AWS test endpoint: source scripts/testenv env "
                        "(AWS_ENDPOINT_URL, SY_AWS_CONTROL_URL, AWS_ACCESS_KEY_ID)\n");
        return 1;
    }
    sy_err_t err = SY_ERR_INIT;
    control_curl = sy_http_handle_new(&err);
    char dir[] = "/tmp/itest_aws_emr_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    bool auth_before = auth_enabled();
    sy_config_t *conf = sy_config_new();
    sy_config_set(conf, "aws.retry.base.ms", "20", &err);
    sy_aws_t *aws = sy_aws_new(conf, &err);
    CHECK(aws != NULL);
    if (!aws) {
        fprintf(stderr, "sy_aws_new: %s\n", err.msg);
        SY_TEST_DONE();
    }
    CHECK_STR(sy_aws_credentials_source(aws), "env");
    char *cluster = NULL;

    set_auth(true);
    test_emr(aws, conf, &cluster);
    if (cluster) {
        test_web_identity(aws, conf, cluster, dir);
        test_container(conf, cluster);
    }
    test_emr_containers(aws);
    test_s3(aws);
    test_logs(aws);
    set_auth(auth_before);

    sy_aws_op_stats_t st[32];
    size_t n = sy_aws_stats(aws, st, 32);
    fprintf(stderr, "%-36s %6s %8s %8s %9s %8s\n", "operation", "calls", "attempts", "retries",
            "throttles", "failures");
    for (size_t i = 0; i < n && i < 32; i++)
        fprintf(stderr, "%-36s %6lu %8lu %8lu %9lu %8lu\n", st[i].op, st[i].calls, st[i].attempts,
                st[i].retries, st[i].throttles, st[i].failures);
    fprintf(stderr, "connections opened: %lu\n", sy_aws_connections(aws));
    sy_aws_destroy(aws);
    sy_config_destroy(conf);
    free(cluster);
    curl_easy_cleanup(control_curl);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    SY_TEST_DONE();
}
