/* Unit tests of sy_emr (the EMR driver's pure part: AddJobFlowSteps bodies, ListSteps answers)
 * and sy_s3log's LogUri parsing, on captured-shape JSON. */
#include <jansson.h>
#include <stdlib.h>

#include "sy_emr.h"
#include "sy_s3log.h"
#include "sy_test.h"

static json_t *parse(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    CHECK(j != NULL);
    return j;
}

static void test_build_step(void)
{
    sy_err_t err = SY_ERR_INIT;
    json_t *spec =
        parse("{\"jar\": \"command-runner.jar\", \"args\": [\"spark-submit\", \"--deploy-mode\","
              " \"cluster\"], \"main_class\": \"org.Main\", \"properties\": {\"a\": \"1\"},"
              " \"action_on_failure\": \"CANCEL_AND_WAIT\"}");
    sy_job_t *job = sy_job_new("job-42");
    CHECK(sy_job_add_arg(job, "s3://b/x.py", &err) == SY_OK);
    CHECK(sy_job_add_arg(job, "$(reboot); `id`", &err) == SY_OK);
    CHECK(sy_job_add_env(job, "HOME_DIR", "/x=y", &err) == SY_OK);
    json_t *body = NULL;
    CHECK(sy_emr_build_step(spec, job, "j-ABC", &body, &err) == SY_OK);
    char *s = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT);
    CHECK_STR(s, "{\"JobFlowId\":\"j-ABC\",\"Steps\":[{\"ActionOnFailure\":\"CANCEL_AND_WAIT\","
                 "\"HadoopJarStep\":{\"Args\":[\"spark-submit\",\"--deploy-mode\",\"cluster\","
                 "\"s3://b/x.py\",\"$(reboot); `id`\"],\"Jar\":\"command-runner.jar\","
                 "\"MainClass\":\"org.Main\",\"Properties\":[{\"Key\":\"a\",\"Value\":\"1\"},"
                 "{\"Key\":\"HOME_DIR\",\"Value\":\"/x=y\"}]},\"Name\":\"switchyard:job-42\"}]}");
    free(s);
    json_decref(body);
    json_decref(spec);

    /* defaults: CONTINUE, no MainClass, no Properties */
    spec = parse("{\"jar\": \"s3://b/app.jar\", \"args\": []}");
    CHECK(sy_emr_build_step(spec, job, "j-ABC", &body, &err) == SY_OK);
    json_t *step = json_array_get(json_object_get(body, "Steps"), 0);
    CHECK_STR(json_string_value(json_object_get(step, "ActionOnFailure")), "CONTINUE");
    CHECK(json_object_get(json_object_get(step, "HadoopJarStep"), "MainClass") == NULL);
    json_decref(body);

    /* an argument over EMR's 10240 characters is the job's fault: not retriable */
    char *big = malloc(10242);
    memset(big, 'a', 10241);
    big[10241] = '\0';
    CHECK(sy_job_add_arg(job, big, &err) == SY_OK);
    body = NULL;
    CHECK(sy_emr_build_step(spec, job, "j-ABC", &body, &err) == SY_ERR_INVALID_ARG);
    CHECK(!err.retriable && body == NULL && strstr(err.msg, "10240"));
    free(big);
    json_decref(spec);

    /* a spec without a jar */
    spec = parse("{\"args\": []}");
    CHECK(sy_emr_build_step(spec, job, "j-ABC", &body, &err) == SY_ERR_INVALID_ARG);
    json_decref(spec);
    sy_job_destroy(job);
}

static void test_parse_steps(void)
{
    sy_err_t err = SY_ERR_INIT;
    json_t *resp = parse(
        "{\"Steps\": [{\"Id\": \"s-1\", \"Name\": \"switchyard:a\", \"Status\": {\"State\": "
        "\"RUNNING\", \"Timeline\": {\"CreationDateTime\": 1763700000.5}}},"
        " {\"Id\": \"s-2\", \"Name\": \"switchyard:b\", \"Status\": {\"State\": \"FAILED\","
        " \"FailureDetails\": {\"Reason\": \"Step failed\", \"Message\": \"exit 1\", \"LogFile\":"
        " \"s3://l/j/steps/s-2/stderr.gz\"}}}, {\"Name\": \"no id\"}, {\"Id\": \"s-3\", \"Status\":"
        " {\"State\": \"WEIRD\"}}], \"Marker\": \"next-page\"}");
    sy_emr_step_t steps[4];
    size_t n = 0;
    char marker[64];
    CHECK(sy_emr_parse_steps(resp, steps, 4, &n, marker, sizeof(marker), &err) == SY_OK);
    CHECK(n == 3);
    CHECK_STR(marker, "next-page");
    CHECK_STR(steps[0].id, "s-1");
    CHECK(steps[0].state == SY_EMR_RUNNING && steps[0].created_at > 1763700000.0);
    CHECK(steps[1].state == SY_EMR_FAILED);
    CHECK_STR(steps[1].failure_log, "s3://l/j/steps/s-2/stderr.gz");
    CHECK(steps[2].state == SY_EMR_UNKNOWN);
    /* max bounds what is kept */
    CHECK(sy_emr_parse_steps(resp, steps, 1, &n, marker, sizeof(marker), &err) == SY_OK && n == 1);
    json_decref(resp);

    resp = parse("{\"Message\": \"not a ListSteps answer\"}");
    CHECK(sy_emr_parse_steps(resp, steps, 4, &n, marker, sizeof(marker), &err) == SY_ERR_JSON);
    json_decref(resp);

    /* outcomes */
    sy_job_t *job = sy_job_new("j");
    sy_emr_apply_step(&steps[0], job);
    CHECK(job->phase == SY_PHASE_RUNNING);
    resp = parse(
        "{\"Steps\": [{\"Id\": \"s-2\", \"Status\": {\"State\": \"FAILED\", \"FailureDetails\":"
        " {\"Reason\": \"Step failed\", \"Message\": \"exit 1\", \"LogFile\": \"s3://x\"}}}]}");
    CHECK(sy_emr_parse_steps(resp, steps, 4, &n, marker, sizeof(marker), &err) == SY_OK);
    CHECK_STR(marker, "");
    sy_emr_apply_step(&steps[0], job);
    CHECK(job->phase == SY_PHASE_ENDED && job->outcome == SY_JOB_FAILED);
    CHECK_STR(job->failure_reason, "STEP_FAILED");
    CHECK_STR(job->message, "step s-2 failed: Step failed: exit 1 (log: s3://x)");
    json_decref(resp);
    static const struct {
        sy_emr_step_state_t st;
        sy_job_state_t outcome;
    } ends[] = {{SY_EMR_COMPLETED, SY_JOB_SUCCEEDED},
                {SY_EMR_CANCELLED, SY_JOB_KILLED},
                {SY_EMR_INTERRUPTED, SY_JOB_FAILED}};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        sy_emr_step_t st = {.id = "s-9", .state = ends[i].st};
        job->phase = SY_PHASE_RUNNING;
        sy_emr_apply_step(&st, job);
        CHECK(job->phase == SY_PHASE_ENDED && job->outcome == ends[i].outcome);
    }
    sy_job_destroy(job);

    CHECK(sy_emr_step_state_parse("CANCEL_PENDING") == SY_EMR_CANCEL_PENDING);
    CHECK(sy_emr_step_active(SY_EMR_CANCEL_PENDING) && !sy_emr_step_active(SY_EMR_COMPLETED));
    CHECK(sy_emr_step_state_parse(NULL) == SY_EMR_UNKNOWN);
}

static void test_log_uri(void)
{
    char b[64], p[64];
    CHECK(sy_s3log_parse_uri("s3n://my-logs/emr/", b, sizeof(b), p, sizeof(p)));
    CHECK_STR(b, "my-logs");
    CHECK_STR(p, "emr/");
    CHECK(sy_s3log_parse_uri("s3://bucket", b, sizeof(b), p, sizeof(p)));
    CHECK_STR(p, "");
    CHECK(!sy_s3log_parse_uri("https://bucket/x", b, sizeof(b), p, sizeof(p)));
    CHECK(!sy_s3log_parse_uri("s3:///x", b, sizeof(b), p, sizeof(p)));
    CHECK(!sy_s3log_parse_uri(NULL, b, sizeof(b), p, sizeof(p)));
    CHECK(!sy_s3log_parse_uri(
        "s3://b/0123456789012345678901234567890123456789012345678901234567890123456789", b,
        sizeof(b), p, sizeof(p)));
}

int main(void)
{
    test_build_step();
    test_parse_steps();
    test_log_uri();
    SY_TEST_DONE();
}
