/* Unit tests of sy_client's pure parts (no network): job ids, the checks a submission passes
 * before it is sent, which run of a job a follower delivers (the tracker), and log chunk
 * de-duplication. */
#include <stdlib.h>
#include <string.h>

#include "sy_client.h"
#include "sy_test.h"

static void test_job_ids(void)
{
    char id[64], id2[64];
    sy_err_t err = SY_ERR_INIT;
    sy_client_job_id_generate(id, sizeof(id));
    sy_client_job_id_generate(id2, sizeof(id2));
    CHECK(strncmp(id, "sy-", 3) == 0);
    CHECK(strlen(id) == strlen("sy-20240501T120000123Z-9f86d081884c7d65"));
    CHECK(id[11] == 'T' && id[21] == 'Z' && id[22] == '-');
    CHECK(sy_client_job_id_valid(id, &err));
    CHECK(strcmp(id, id2) != 0); /* random part */

    CHECK(sy_client_job_id_valid("airflow.dag-1:task_2:2024-05-01", &err));
    CHECK(!sy_client_job_id_valid("", &err));
    CHECK(!sy_client_job_id_valid(NULL, &err));
    CHECK(!sy_client_job_id_valid("has space", &err));
    CHECK(strstr(err.msg, "position 4") != NULL);
    CHECK(!sy_client_job_id_valid("a/b", &err));
    char longid[200];
    memset(longid, 'x', sizeof(longid));
    longid[SY_CLIENT_JOB_ID_MAX] = '\0';
    CHECK(sy_client_job_id_valid(longid, &err));
    longid[SY_CLIENT_JOB_ID_MAX] = 'x';
    longid[SY_CLIENT_JOB_ID_MAX + 1] = '\0';
    CHECK(!sy_client_job_id_valid(longid, &err));
    CHECK(err.code == SY_ERR_INVALID_ARG);

    char user[64];
    CHECK(*sy_client_default_user(user, sizeof(user)) != '\0');
}

static void test_job_check(void)
{
    sy_err_t err = SY_ERR_INIT;
    const char *prod[] = {"env:prod", "spark:3.5"}, *fallback[] = {"env:test"};
    const char *spark[] = {"type:spark-submit"};
    sy_client_criterion_t crit[] = {{prod, 2}, {fallback, 1}};
    sy_client_kv_t env[] = {{"SPARK_HOME", "/opt/spark"}, {"_X1", ""}};
    sy_client_job_t job = {
        .cluster_criteria = crit,
        .n_cluster_criteria = 2,
        .command_criterion = {spark, 1},
        .env = env,
        .n_env = 2,
    };
    CHECK(sy_client_job_check(&job, &err) == SY_OK);

    job.job_id = "bad id";
    CHECK(sy_client_job_check(&job, &err) == SY_ERR_INVALID_ARG);
    job.job_id = "good-id";
    CHECK(sy_client_job_check(&job, &err) == SY_OK);

    /* tag syntax, with the criterion named */
    const char *bad[] = {"env:prod", "no colon"};
    crit[1] = (sy_client_criterion_t){bad, 2};
    CHECK(sy_client_job_check(&job, &err) == SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "cluster criterion #2") != NULL);
    const char *reserved[] = {"switchyard.owner:me"};
    crit[1] = (sy_client_criterion_t){reserved, 1};
    CHECK(sy_client_job_check(&job, &err) == SY_ERR_INVALID_ARG);
    const char *implicit[] = {"switchyard.name:prod-a"}; /* allowed in a request */
    crit[1] = (sy_client_criterion_t){implicit, 1};
    CHECK(sy_client_job_check(&job, &err) == SY_OK);
    crit[1] = (sy_client_criterion_t){NULL, 0};
    CHECK(sy_client_job_check(&job, &err) == SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "no tags") != NULL);
    crit[1] = (sy_client_criterion_t){fallback, 1};

    job.n_cluster_criteria = 0;
    CHECK(sy_client_job_check(&job, &err) == SY_ERR_INVALID_ARG);
    job.n_cluster_criteria = 2;

    const char *badcmd[] = {"type:spark submit"};
    job.command_criterion = (sy_client_criterion_t){badcmd, 1};
    CHECK(sy_client_job_check(&job, &err) == SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "command criterion") != NULL);
    job.command_criterion = (sy_client_criterion_t){spark, 1};

    env[1].key = "1BAD";
    CHECK(sy_client_job_check(&job, &err) == SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "1BAD") != NULL);
    env[1].key = "OK";

    job.timeout_ms = -5;
    CHECK(sy_client_job_check(&job, &err) == SY_ERR_INVALID_ARG);
    job.timeout_ms = 7200000;
    CHECK(sy_client_job_check(&job, &err) == SY_OK);
}

/* Feeds one event; data is the state name so delivery order can be checked. */
static int add(sy_client_tracker_t *t, const char *status, long long seq, long long sub,
               long long ts)
{
    return sy_client_tracker_add(t, status, seq, sub, ts, status, strlen(status) + 1);
}

/* The states handed out next, space-separated, into buf. */
static const char *drain(sy_client_tracker_t *t, char *buf, size_t size)
{
    const void *d;
    size_t len;
    long long ts;
    buf[0] = '\0';
    while (sy_client_tracker_next(t, &d, &len, &ts)) {
        if (*buf)
            strncat(buf, " ", size - strlen(buf) - 1);
        strncat(buf, d, size - strlen(buf) - 1);
    }
    return buf;
}

static void test_tracker(void)
{
    char buf[256];
    sy_client_track_info_t info;

    /* plain follow: the whole run, repeats dropped */
    sy_client_tracker_t *t = sy_client_tracker_new(0);
    CHECK(add(t, "ACCEPTED", 1, 100, 1000) == 1);
    CHECK(add(t, "RESOLVED", 2, 100, 1001) == 1);
    CHECK(add(t, "CLAIMED", 10, 100, 1100) == 1);
    CHECK(add(t, "CLAIMED", 10, 100, 1101) == 0); /* a taken-over worker repeats it */
    CHECK(add(t, "RUNNING", 11, 100, 1200) == 1);
    sy_client_tracker_info(t, &info);
    CHECK(info.decided && info.has_run && !info.terminal && info.run_start_ts == 1000);
    CHECK_STR(drain(t, buf, sizeof(buf)), "ACCEPTED RESOLVED CLAIMED RUNNING");
    CHECK(add(t, "DUPLICATE", 0, 200, 1300) == 1); /* someone resubmitted: passed on */
    CHECK(add(t, "SUCCEEDED", 12, 100, 1400) == 1);
    sy_client_tracker_info(t, &info);
    CHECK(info.terminal);
    CHECK_STR(drain(t, buf, sizeof(buf)), "DUPLICATE SUCCEEDED");
    sy_client_tracker_destroy(t);

    /* the newest run wins: an INVALID run, then a fixed resubmission */
    t = sy_client_tracker_new(0);
    add(t, "ACCEPTED", 1, 100, 1000);
    add(t, "INVALID", 2, 100, 1001);
    add(t, "ACCEPTED", 1, 500, 5000);
    add(t, "RESOLVED", 2, 500, 5001);
    sy_client_tracker_info(t, &info);
    CHECK(!info.terminal && info.run_start_ts == 5000 && info.generation == 2);
    CHECK_STR(drain(t, buf, sizeof(buf)), "ACCEPTED RESOLVED");
    sy_client_tracker_destroy(t);

    /* window starts in the middle of a run */
    t = sy_client_tracker_new(0);
    add(t, "RUNNING", 11, 100, 1200);
    add(t, "FAILED", 12, 100, 1300);
    sy_client_tracker_info(t, &info);
    CHECK(info.has_run && info.terminal && info.run_start_ts == 0);
    CHECK_STR(drain(t, buf, sizeof(buf)), "RUNNING FAILED");
    sy_client_tracker_destroy(t);

    /* only a DUPLICATE in the window: no run to show */
    t = sy_client_tracker_new(0);
    CHECK(add(t, "DUPLICATE", 0, 100, 1000) == 0);
    sy_client_tracker_info(t, &info);
    CHECK(info.decided && !info.has_run);
    sy_client_tracker_destroy(t);

    /* submit --wait, fresh id: nothing is handed out before the router's answer */
    t = sy_client_tracker_new(700);
    sy_client_tracker_info(t, &info);
    CHECK(!info.decided);
    add(t, "ACCEPTED", 1, 700, 7000);
    add(t, "RESOLVED", 2, 700, 7001);
    sy_client_tracker_info(t, &info);
    CHECK(info.decided && !info.duplicate);
    CHECK_STR(drain(t, buf, sizeof(buf)), "ACCEPTED RESOLVED");
    sy_client_tracker_destroy(t);

    /* submit --wait, retried task: the earlier run is still going; the answer is DUPLICATE,
     * so that run (replayed from its start) is the job */
    t = sy_client_tracker_new(900);
    add(t, "ACCEPTED", 1, 100, 1000);
    add(t, "RESOLVED", 2, 100, 1001);
    add(t, "RUNNING", 11, 100, 1200);
    sy_client_tracker_info(t, &info);
    CHECK(!info.decided);
    CHECK_STR(drain(t, buf, sizeof(buf)), ""); /* held back until the answer */
    add(t, "DUPLICATE", 0, 555, 8000);         /* another submission's answer: not ours */
    sy_client_tracker_info(t, &info);
    CHECK(!info.decided);
    add(t, "DUPLICATE", 0, 900, 9000);
    sy_client_tracker_info(t, &info);
    CHECK(info.decided && info.duplicate && info.has_run && !info.terminal);
    CHECK_STR(drain(t, buf, sizeof(buf)), "ACCEPTED RESOLVED RUNNING DUPLICATE DUPLICATE");
    add(t, "SUCCEEDED", 12, 100, 9500);
    CHECK_STR(drain(t, buf, sizeof(buf)), "SUCCEEDED");
    sy_client_tracker_destroy(t);

    /* retried task after the job had finished: the answer is DUPLICATE, the run is complete */
    t = sy_client_tracker_new(900);
    add(t, "ACCEPTED", 1, 100, 1000);
    add(t, "RESOLVED", 2, 100, 1001);
    add(t, "SUCCEEDED", 12, 100, 1500);
    add(t, "DUPLICATE", 0, 900, 9000);
    sy_client_tracker_info(t, &info);
    CHECK(info.decided && info.duplicate && info.terminal);
    sy_client_tracker_destroy(t);

    /* resubmission after an INVALID run: the router routes it anew, so the answer is a new
     * ACCEPTED and the old INVALID is never reported */
    t = sy_client_tracker_new(900);
    add(t, "ACCEPTED", 1, 100, 1000);
    add(t, "INVALID", 2, 100, 1001);
    sy_client_tracker_info(t, &info);
    CHECK(!info.decided && info.terminal);
    add(t, "ACCEPTED", 1, 900, 9000);
    add(t, "RESOLVED", 2, 900, 9001);
    sy_client_tracker_info(t, &info);
    CHECK(info.decided && !info.duplicate && !info.terminal && info.run_start_ts == 9000);
    CHECK_STR(drain(t, buf, sizeof(buf)), "ACCEPTED RESOLVED");
    sy_client_tracker_destroy(t);

    /* DUPLICATE answer with no run in the window */
    t = sy_client_tracker_new(900);
    add(t, "DUPLICATE", 0, 900, 9000);
    sy_client_tracker_info(t, &info);
    CHECK(info.decided && info.duplicate && !info.has_run);
    sy_client_tracker_destroy(t);
    sy_client_tracker_destroy(NULL);
}

static void test_logpos(void)
{
    sy_client_logpos_t *lp = sy_client_logpos_new();
    CHECK(sy_client_logpos_accept(lp, 1, "stdout", 0, 10) == 0);
    CHECK(sy_client_logpos_accept(lp, 1, "stdout", 10, 5) == 0);
    CHECK(sy_client_logpos_accept(lp, 1, "stdout", 0, 10) == 10); /* repeat: drop */
    CHECK(sy_client_logpos_accept(lp, 1, "stdout", 10, 5) == 5);
    CHECK(sy_client_logpos_accept(lp, 1, "stdout", 12, 8) == 3); /* overlap: skip 3 */
    CHECK(sy_client_logpos_accept(lp, 1, "stderr", 0, 4) == 0);  /* streams are separate */
    CHECK(sy_client_logpos_accept(lp, 2, "stdout", 0, 4) == 0);  /* so are attempts */
    CHECK(sy_client_logpos_accept(lp, 1, "stdout", 30, 5) == 0); /* gap: delivered whole */
    CHECK(sy_client_logpos_accept(lp, 1, "stdout", 20, 10) == 10);
    CHECK(sy_client_logpos_accept(lp, 1, "stdout", 35, 0) == 0); /* empty chunk */
    for (int i = 0; i < 20; i++) {                               /* growth */
        char s[16];
        snprintf(s, sizeof(s), "s%d", i);
        CHECK(sy_client_logpos_accept(lp, 1, s, 0, 1) == 0);
    }
    CHECK(sy_client_logpos_accept(lp, 1, "s7", 0, 1) == 1);
    sy_client_logpos_destroy(lp);
    sy_client_logpos_destroy(NULL);
}

int main(void)
{
    test_job_ids();
    test_job_check();
    test_tracker();
    test_logpos();
    CHECK(sy_client_state_terminal("SUCCEEDED") && sy_client_state_terminal("INVALID") &&
          !sy_client_state_terminal("RUNNING") && !sy_client_state_terminal("DUPLICATE") &&
          !sy_client_state_terminal(NULL));
    SY_TEST_DONE();
}
