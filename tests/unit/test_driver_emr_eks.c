/* Unit tests of the EMR on EKS driver's pure parts (worker/sy_emr_eks.h), no network:
 * - job-run states and how each moves a job (phase, outcome, reason, message);
 * - ListJobRuns and DescribeJobRun answers as moto 5.2.5 sends them (moto_emrc_*.json, captured
 *   from the testenv harness with requests: two pages of maxResults=1, a FAILED job run, an error
 *   body), an answer shaped as the API reference documents it (emrc_list_jobruns_aws.json:
 *   numeric createdAt, nulls, retryPolicyExecution, an unknown future state) and malformed ones;
 * - the clientToken (checked against Python's hashlib) and the job-run name;
 * - the StartJobRun body built from a spec and a request (argv array, env as spark-defaults
 *   properties merged into the spec's, retry policy), and refused specs;
 * - the CloudWatch stream names of a job run's Spark driver. */
#include <stdlib.h>
#include <string.h>

#include "sy_emr_eks.h"
#include "sy_test.h"

#define DATA "tests/unit/data/aws/"

static char *slurp(const char *name, size_t *len)
{
    return sy_test_slurp(DATA, name, len);
}

static sy_emr_eks_run_t run_of(const char *id, sy_emr_eks_state_t st, const char *reason,
                               const char *details)
{
    sy_emr_eks_run_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.state = st;
    snprintf(r.failure_reason, sizeof(r.failure_reason), "%s", reason);
    snprintf(r.state_details, sizeof(r.state_details), "%s", details);
    return r;
}

static void test_states(void)
{
    static const char *const names[] = {"PENDING",   "SUBMITTED", "RUNNING",  "CANCEL_PENDING",
                                        "COMPLETED", "FAILED",    "CANCELLED"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        sy_emr_eks_state_t st = sy_emr_eks_state_parse(names[i]);
        CHECK(st != SY_EMR_EKS_UNKNOWN);
        CHECK_STR(sy_emr_eks_state_name(st), names[i]);
        CHECK(sy_emr_eks_state_active(st) == (i < 4));
        /* the list filter asks for exactly the active states */
        char q[64];
        snprintf(q, sizeof(q), "states=%s", names[i]);
        CHECK((strstr(SY_EMR_EKS_ACTIVE_QUERY, q) != NULL) == (i < 4));
    }
    CHECK(sy_emr_eks_state_parse("running") == SY_EMR_EKS_UNKNOWN);
    CHECK(sy_emr_eks_state_parse(NULL) == SY_EMR_EKS_UNKNOWN);
    CHECK(sy_emr_eks_state_parse("") == SY_EMR_EKS_UNKNOWN);
    CHECK_STR(sy_emr_eks_state_name((sy_emr_eks_state_t)99), "UNKNOWN");
    CHECK(!sy_emr_eks_state_active(SY_EMR_EKS_UNKNOWN));
}

static void test_apply(void)
{
    sy_job_t *job = sy_job_new("j");
    sy_emr_eks_run_t r = run_of("abc", SY_EMR_EKS_SUBMITTED, "", "");
    CHECK(sy_emr_eks_apply(job, &r) && job->phase == SY_PHASE_PENDING);
    CHECK(!sy_emr_eks_apply(job, &r)); /* no change */
    r.state = SY_EMR_EKS_UNKNOWN;      /* a state added after this build: no move */
    CHECK(!sy_emr_eks_apply(job, &r) && job->phase == SY_PHASE_PENDING);
    r.state = SY_EMR_EKS_RUNNING;
    CHECK(sy_emr_eks_apply(job, &r) && job->phase == SY_PHASE_RUNNING);
    r.state = SY_EMR_EKS_CANCEL_PENDING;
    CHECK(!sy_emr_eks_apply(job, &r) && job->phase == SY_PHASE_RUNNING);
    r = run_of("abc", SY_EMR_EKS_FAILED, "USER_ERROR", "Driver exited with code 1");
    CHECK(sy_emr_eks_apply(job, &r) && job->phase == SY_PHASE_ENDED);
    CHECK(job->outcome == SY_JOB_FAILED && !job->has_exit_code);
    CHECK_STR(job->failure_reason, "USER_ERROR");
    CHECK_STR(job->message, "Driver exited with code 1");
    r.state = SY_EMR_EKS_COMPLETED; /* an ended job stays as it ended */
    CHECK(!sy_emr_eks_apply(job, &r) && job->outcome == SY_JOB_FAILED);
    sy_job_destroy(job);

    job = sy_job_new("k");
    r = run_of("abd", SY_EMR_EKS_FAILED, "", "");
    CHECK(sy_emr_eks_apply(job, &r));
    CHECK_STR(job->failure_reason, "JOB_RUN_FAILED");
    CHECK_STR(job->message, "job run failed");
    sy_job_destroy(job);

    job = sy_job_new("l");
    r = run_of("abe", SY_EMR_EKS_CANCEL_PENDING, "", ""); /* first sight (a takeover) */
    CHECK(sy_emr_eks_apply(job, &r) && job->phase == SY_PHASE_RUNNING);
    r = run_of("abe", SY_EMR_EKS_CANCELLED, "", "JobRun CANCELLED successfully.");
    CHECK(sy_emr_eks_apply(job, &r) && job->outcome == SY_JOB_KILLED);
    CHECK_STR(job->failure_reason, ""); /* the runner names it: KILL_REQUESTED, CANCELLED, ... */
    CHECK_STR(job->message, "JobRun CANCELLED successfully.");
    sy_job_destroy(job);

    job = sy_job_new("m");
    r = run_of("abf", SY_EMR_EKS_UNKNOWN, "", "");
    CHECK(sy_emr_eks_apply(job, &r) && job->phase == SY_PHASE_PENDING);
    r = run_of("abf", SY_EMR_EKS_COMPLETED, "", "");
    CHECK(sy_emr_eks_apply(job, &r) && job->outcome == SY_JOB_SUCCEEDED);
    CHECK_STR(job->failure_reason, "");
    CHECK_STR(job->message, "job run abf completed");
    sy_job_destroy(job);
}

static void test_pages(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_emr_eks_page_t pg;
    size_t len;
    char *b = slurp("moto_emrc_list_page1.json", &len);
    CHECK(sy_emr_eks_parse_page(b, len, &pg, &err) == SY_OK);
    CHECK(pg.n == 1 && pg.next_token && strlen(pg.next_token) > 20);
    if (pg.n == 1) {
        CHECK_STR(pg.runs[0].id, "fbz4s2lfqw3vf2g5uyf");
        CHECK(pg.runs[0].state == SY_EMR_EKS_RUNNING);
        CHECK_STR(pg.runs[0].failure_reason, "");
    }
    sy_emr_eks_page_clear(&pg);
    CHECK(pg.runs == NULL && pg.n == 0 && pg.next_token == NULL);
    free(b);

    b = slurp("moto_emrc_list_page2.json", &len);
    CHECK(sy_emr_eks_parse_page(b, len, &pg, &err) == SY_OK);
    CHECK(pg.n == 1 && pg.next_token == NULL); /* the last page */
    if (pg.n == 1) {
        CHECK_STR(pg.runs[0].id, "ri03cw6elk63w9vcjfb");
        CHECK(pg.runs[0].state == SY_EMR_EKS_PENDING);
    }
    sy_emr_eks_page_clear(&pg);
    free(b);

    b = slurp("emrc_list_jobruns_aws.json", &len);
    CHECK(sy_emr_eks_parse_page(b, len, &pg, &err) == SY_OK);
    CHECK(pg.n == 4);
    CHECK_STR(pg.next_token, "AAMA-EFRSURBSGhvM2x0c2hBU2J3PT0=/next+page");
    if (pg.n == 4) {
        CHECK_STR(pg.runs[0].id, "000000033a5kq8r1t7u");
        CHECK(pg.runs[0].state == SY_EMR_EKS_RUNNING);
        CHECK_STR(pg.runs[0].state_details, ""); /* null */
        CHECK(pg.runs[1].state == SY_EMR_EKS_SUBMITTED);
        CHECK(pg.runs[2].state == SY_EMR_EKS_CANCEL_PENDING);
        CHECK_STR(pg.runs[2].state_details, "Cancellation requested by the user");
        CHECK(pg.runs[3].state == SY_EMR_EKS_UNKNOWN);
    }
    sy_emr_eks_page_clear(&pg);
    free(b);

    /* an empty answer is an empty last page; an empty nextToken is none */
    CHECK(sy_emr_eks_parse_page("{}", 2, &pg, &err) == SY_OK && pg.n == 0 && !pg.next_token);
    sy_emr_eks_page_clear(&pg);
    const char *empty = "{\"jobRuns\": [], \"nextToken\": \"\"}";
    CHECK(sy_emr_eks_parse_page(empty, strlen(empty), &pg, &err) == SY_OK && !pg.next_token);
    sy_emr_eks_page_clear(&pg);

    /* malformed: refused as a whole, nothing to free */
    static const char *const bad[] = {
        "",
        "[1]",
        "{\"jobRuns\": {}}",
        "{\"jobRuns\": [{\"state\": \"RUNNING\"}]}",
        "{\"jobRuns\": [{\"id\": \"ABC\", \"state\": \"RUNNING\"}]}",
        "{\"jobRuns\": [{\"id\": \"x/../y\"}]}",
        "{\"jobRuns\": [{\"id\": 7}]}",
        "{\"jobRuns\": [\"abc\"]}",
        "{\"jobRuns\": [], \"nextToken\": 5}",
        "{\"jobRuns\": [{\"id\": "
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}", /* 65 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sy_err_t e = SY_ERR_INIT;
        CHECK(sy_emr_eks_parse_page(bad[i], strlen(bad[i]), &pg, &e) != SY_OK);
        CHECK(pg.runs == NULL && pg.n == 0 && pg.next_token == NULL);
        CHECK(!e.retriable && e.msg[0]);
    }
    /* long details are truncated, not refused */
    char big[1200];
    int n = snprintf(big, sizeof(big),
                     "{\"jobRuns\":[{\"id\":\"abc\",\"state\":\"FAILED\","
                     "\"stateDetails\":\"");
    memset(big + n, 'x', 600);
    snprintf(big + n + 600, sizeof(big) - (size_t)n - 600, "\"}]}");
    CHECK(sy_emr_eks_parse_page(big, strlen(big), &pg, &err) == SY_OK && pg.n == 1);
    if (pg.n == 1)
        CHECK(strlen(pg.runs[0].state_details) == 256);
    sy_emr_eks_page_clear(&pg);
}

static void test_describe(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_emr_eks_run_t r;
    size_t len;
    char *b = slurp("moto_emrc_describe_failed.json", &len);
    CHECK(sy_emr_eks_parse_describe(b, len, &r, &err) == SY_OK);
    CHECK_STR(r.id, "9zk1j3xq3ho4hcxt3ee");
    CHECK(r.state == SY_EMR_EKS_FAILED);
    CHECK_STR(r.failure_reason, "USER_ERROR");
    CHECK_STR(r.state_details, "Driver exited 1");
    free(b);
    b = slurp("moto_emrc_not_found.json", &len); /* an error body is not a job run */
    CHECK(sy_emr_eks_parse_describe(b, len, &r, &err) == SY_ERR_AWS);
    free(b);
    CHECK(sy_emr_eks_parse_describe("{\"jobRun\":", 10, &r, &err) == SY_ERR_JSON);
}

static void test_names(void)
{
    char tok[SY_EMR_EKS_TOKEN_LEN + 1], tok2[SY_EMR_EKS_TOKEN_LEN + 1];
    sy_emr_eks_client_token("switchyard", "etl-2026-11-21", 1, tok);
    /* hashlib.sha256(b"switchyard/emr-eks\0switchyard\0etl-2026-11-21\0" + b"1") */
    CHECK_STR(tok, "33f0b2021bd82e43280aac0f1a0b4a15825a8aafb498dba4cc99253243d2b87f");
    sy_emr_eks_client_token("switchyard", "etl-2026-11-21", 2, tok2);
    CHECK_STR(tok2, "ffcf0b8fde823ead8170e7174aa543ebaf010498af70923f0fba01f5bf528834");
    sy_emr_eks_client_token("other", "etl-2026-11-21", 1, tok2);
    CHECK(strcmp(tok, tok2) != 0);
    sy_emr_eks_client_token("switchyard", "etl-2026-11-2", 11, tok2); /* no ambiguity */
    CHECK(strcmp(tok, tok2) != 0);

    char name[SY_EMR_EKS_NAME_MAX + 1];
    sy_emr_eks_job_name("etl-2026-11-21", name);
    CHECK_STR(name, "etl-2026-11-21");
    sy_emr_eks_job_name("sy-20240501T120000123Z:9f86d.x_y", name);
    CHECK_STR(name, "sy-20240501T120000123Z_9f86d.x_y");
    char id[130];
    memset(id, 'a', 40);
    id[40] = ':';
    memset(id + 41, 'b', 40);
    id[81] = '\0';
    sy_emr_eks_job_name(id, name);
    CHECK(strlen(name) == 64);
    CHECK(!strncmp(name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_bbbbbb-", 48));
    CHECK_STR(name + 48, "a974e79f2a0e06b5"); /* hashlib of the whole id, first 16 digits */
    memset(id, 'c', 64);
    id[64] = '\0';
    sy_emr_eks_job_name(id, name); /* exactly 64: kept whole */
    CHECK_STR(name, id);
}

static sy_job_t *eks_job(const char *spec)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job = sy_job_new("etl-2026-11-21");
    job->cluster_name = strdup("eks-prod");
    job->command_spec = strdup(spec);
    job->attempt = 1;
    sy_job_add_arg(job, "--date", &err);
    sy_job_add_arg(job, "2026-11-21; rm -rf /", &err); /* one argument, never a shell */
    sy_job_add_env(job, "TZ", "UTC", &err);
    sy_job_add_env(job, "GREETING", "hello world", &err);
    return job;
}

static const char *prop(json_t *body, const char *key)
{
    json_t *list = json_object_get(json_object_get(body, "configurationOverrides"),
                                   "applicationConfiguration");
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        if (!strcmp(json_string_value(json_object_get(c, "classification")), "spark-defaults"))
            return json_string_value(json_object_get(json_object_get(c, "properties"), key));
    }
    return NULL;
}

static void test_request(void)
{
    sy_err_t err = SY_ERR_INIT;
    json_t *body = NULL;
    const char *spec = "{\"release_label\": \"emr-6.15.0-latest\","
                       " \"execution_role_arn\": \"arn:aws:iam::123456789012:role/etl\","
                       " \"entry_point\": \"s3://etl/daily.py\","
                       " \"entry_point_arguments\": [\"--mode\", \"full\"],"
                       " \"spark_submit_parameters\": \"--conf spark.executor.instances=2\","
                       " \"configuration_overrides\": {"
                       "   \"applicationConfiguration\": [{\"classification\": \"spark-log4j\", "
                       "\"properties\": {}},"
                       "     {\"classification\": \"spark-defaults\", \"properties\":"
                       "        {\"spark.dynamicAllocation.enabled\": \"false\","
                       "         \"spark.kubernetes.driverEnv.TZ\": \"Europe/Paris\"}}],"
                       "   \"monitoringConfiguration\": {\"cloudWatchMonitoringConfiguration\":"
                       "     {\"logGroupName\": \"/emr/etl\", \"logStreamNamePrefix\": \"etl\"},"
                       "     \"s3MonitoringConfiguration\": {\"logUri\": \"s3://logs/etl/\"}}},"
                       " \"retry_policy\": {\"max_attempts\": 3}}";
    sy_job_t *job = eks_job(spec);
    CHECK(sy_emr_eks_start_request(job, "switchyard", &body, &err) == SY_OK);
    CHECK_STR(json_string_value(json_object_get(body, "name")), "etl-2026-11-21");
    CHECK_STR(json_string_value(json_object_get(body, "clientToken")),
              "33f0b2021bd82e43280aac0f1a0b4a15825a8aafb498dba4cc99253243d2b87f");
    CHECK_STR(json_string_value(json_object_get(body, "releaseLabel")), "emr-6.15.0-latest");
    CHECK_STR(json_string_value(json_object_get(body, "executionRoleArn")),
              "arn:aws:iam::123456789012:role/etl");
    json_t *drv = json_object_get(json_object_get(body, "jobDriver"), "sparkSubmitJobDriver");
    CHECK_STR(json_string_value(json_object_get(drv, "entryPoint")), "s3://etl/daily.py");
    CHECK_STR(json_string_value(json_object_get(drv, "sparkSubmitParameters")),
              "--conf spark.executor.instances=2");
    json_t *args = json_object_get(drv, "entryPointArguments");
    CHECK(json_array_size(args) == 4);
    CHECK_STR(json_string_value(json_array_get(args, 0)), "--mode");
    CHECK_STR(json_string_value(json_array_get(args, 1)), "full");
    CHECK_STR(json_string_value(json_array_get(args, 2)), "--date");
    CHECK_STR(json_string_value(json_array_get(args, 3)), "2026-11-21; rm -rf /");
    CHECK(json_integer_value(json_object_get(json_object_get(body, "retryPolicyConfiguration"),
                                             "maxAttempts")) == 3);
    /* environment: merged into the spec's spark-defaults, the request's value winning */
    CHECK_STR(prop(body, "spark.dynamicAllocation.enabled"), "false");
    CHECK_STR(prop(body, "spark.kubernetes.driverEnv.TZ"), "UTC");
    CHECK_STR(prop(body, "spark.executorEnv.TZ"), "UTC");
    CHECK_STR(prop(body, "spark.kubernetes.driverEnv.GREETING"), "hello world");
    CHECK_STR(prop(body, "spark.executorEnv.GREETING"), "hello world");
    CHECK_STR(prop(body, "spark.kubernetes.driverEnv.SWITCHYARD_JOB_ID"), "etl-2026-11-21");
    CHECK_STR(prop(body, "spark.executorEnv.SWITCHYARD_ATTEMPT"), "1");
    CHECK_STR(prop(body, "spark.kubernetes.driverEnv.SWITCHYARD_CLUSTER"), "eks-prod");
    json_t *ov = json_object_get(body, "configurationOverrides");
    CHECK(json_array_size(json_object_get(ov, "applicationConfiguration")) == 2);
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_object_get(ov, "monitoringConfiguration"),
                                                  "cloudWatchMonitoringConfiguration"),
                                  "logGroupName")),
              "/emr/etl");
    json_decref(body);

    sy_emr_eks_logs_t logs;
    CHECK(sy_emr_eks_spec_logs(spec, &logs, &err) == SY_OK);
    CHECK_STR(logs.group, "/emr/etl");
    CHECK_STR(logs.prefix, "etl");
    CHECK_STR(logs.s3_uri, "s3://logs/etl/");
    sy_emr_eks_logs_clear(&logs);
    CHECK(logs.group == NULL && logs.prefix == NULL && logs.s3_uri == NULL);
    sy_job_destroy(job);

    /* the minimal spec: no arguments template, no overrides; attempt 2 is another token */
    job = eks_job("{\"release_label\": \"emr-7.5.0-latest\", \"execution_role_arn\": \"arn:r\","
                  " \"entry_point\": \"local:///x.py\"}");
    job->attempt = 2;
    CHECK(sy_emr_eks_start_request(job, "switchyard", &body, &err) == SY_OK);
    drv = json_object_get(json_object_get(body, "jobDriver"), "sparkSubmitJobDriver");
    CHECK(json_array_size(json_object_get(drv, "entryPointArguments")) == 2);
    CHECK(json_object_get(drv, "sparkSubmitParameters") == NULL);
    CHECK(json_object_get(body, "retryPolicyConfiguration") == NULL);
    CHECK_STR(json_string_value(json_object_get(body, "clientToken")),
              "ffcf0b8fde823ead8170e7174aa543ebaf010498af70923f0fba01f5bf528834");
    CHECK_STR(prop(body, "spark.executorEnv.SWITCHYARD_ATTEMPT"), "2");
    json_decref(body);
    CHECK(sy_emr_eks_spec_logs(job->command_spec, &logs, &err) == SY_OK);
    CHECK(logs.group == NULL && logs.s3_uri == NULL);
    sy_job_destroy(job);

    /* refused specs name the field */
    static const struct {
        const char *spec, *needle;
    } bad[] = {
        {"not json", "not JSON"},
        {"[]", "not a JSON object"},
        {"{\"execution_role_arn\": \"arn:r\", \"entry_point\": \"e\"}", "release_label"},
        {"{\"release_label\": \"emr-6\", \"entry_point\": \"e\"}", "execution_role_arn"},
        {"{\"release_label\": \"emr-6\", \"execution_role_arn\": \"a\", \"entry_point\": 3}",
         "entry_point"},
        {"{\"release_label\": \"emr-6\", \"execution_role_arn\": \"a\", \"entry_point\": \"e\","
         " \"entry_point_arguments\": [1]}",
         "entry_point_arguments[0]"},
        {"{\"release_label\": \"emr-6\", \"execution_role_arn\": \"a\", \"entry_point\": \"e\","
         " \"configuration_overrides\": {\"applicationConfiguration\": {}}}",
         "applicationConfiguration"},
        {"{\"release_label\": \"emr-6\", \"execution_role_arn\": \"a\", \"entry_point\": \"e\","
         " \"retry_policy\": {}}",
         "retry_policy"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sy_err_t e = SY_ERR_INIT;
        job = eks_job(bad[i].spec);
        CHECK(sy_emr_eks_start_request(job, "ns", &body, &e) == SY_ERR_INVALID_ARG);
        CHECK(body == NULL);
        if (!strstr(e.msg, bad[i].needle))
            fprintf(stderr, "spec %zu: \"%s\" lacks \"%s\"\n", i, e.msg, bad[i].needle);
        CHECK(strstr(e.msg, bad[i].needle) != NULL);
        sy_job_destroy(job);
    }
    /* a request whose argument or environment value is not UTF-8: refused, named */
    job = eks_job("{\"release_label\": \"emr-7\", \"execution_role_arn\": \"a\","
                  " \"entry_point\": \"e\"}");
    sy_job_add_arg(job, "caf\xe9", &err);
    CHECK(sy_emr_eks_start_request(job, "ns", &body, &err) == SY_ERR_INVALID_ARG && !body);
    CHECK(strstr(err.msg, "argument is not valid UTF-8") != NULL);
    sy_job_destroy(job);
    job = eks_job("{\"release_label\": \"emr-7\", \"execution_role_arn\": \"a\","
                  " \"entry_point\": \"e\"}");
    sy_job_add_env(job, "BAD", "\xff", &err);
    CHECK(sy_emr_eks_start_request(job, "ns", &body, &err) == SY_ERR_INVALID_ARG && !body);
    CHECK(strstr(err.msg, "environment value is not valid UTF-8") != NULL);
    sy_job_destroy(job);
    CHECK(sy_emr_eks_spec_logs("{\"configuration_overrides\": {\"monitoringConfiguration\":"
                               " {\"cloudWatchMonitoringConfiguration\": {\"logGroupName\": 5}}}}",
                               &logs, &err) == SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "logGroupName") != NULL && logs.group == NULL);
}

static void test_streams(void)
{
    char buf[512];
    CHECK(sy_emr_eks_stream_prefix("etl", "vc1", "run1", buf, sizeof(buf)));
    CHECK_STR(buf, "etl/vc1/jobs/run1/containers/");
    CHECK(sy_emr_eks_stream_prefix(NULL, "vc1", "run1", buf, sizeof(buf)));
    CHECK_STR(buf, "vc1/jobs/run1/containers/");
    CHECK(
        sy_emr_eks_driver_stream("etl", "vc1", "0000000327fe50tosa4", "stdout", buf, sizeof(buf)));
    CHECK_STR(buf, "etl/vc1/jobs/0000000327fe50tosa4/containers/spark-0000000327fe50tosa4/"
                   "spark-0000000327fe50tosa4-driver/stdout");
    CHECK(sy_emr_eks_is_driver_stream(buf, "stdout"));
    CHECK(!sy_emr_eks_is_driver_stream(buf, "stderr"));
    CHECK(!sy_emr_eks_driver_stream("etl", "vc1", "run1", "stdout", buf, 40));
    CHECK(sy_emr_eks_is_driver_stream("p/vc/jobs/r/containers/spark-custom/etl-1a2b-driver/stderr",
                                      "stderr"));
    CHECK(
        !sy_emr_eks_is_driver_stream("p/vc/jobs/r/containers/spark-r/etl-exec-1/stdout", "stdout"));
    CHECK(!sy_emr_eks_is_driver_stream("p/vc/jobs/r/containers/runner-driver/stdout.gz", "stdout"));
    CHECK(!sy_emr_eks_is_driver_stream("-driver/stdout", "stdout"));
    CHECK(!sy_emr_eks_is_driver_stream("x/-driver/stdout", "stdout"));
    CHECK(!sy_emr_eks_is_driver_stream(NULL, "stdout"));
}

int main(void)
{
    test_states();
    test_apply();
    test_pages();
    test_describe();
    test_names();
    test_request();
    test_streams();
    SY_TEST_DONE();
}
