/* Integration test of the switchyard job commands (submit, --wait, status, logs, kill) against
 * the real broker, Schema Registry, PostgreSQL and router, with the fake worker of
 * itest_client.h: exit codes for every outcome, logs streamed in order without duplicates,
 * --kill-on-interrupt, re-attaching a resubmitted job id to its first run (it runs once),
 * --json output, and the errors a user can act on (bad tags, unknown job, broker or registry
 * unreachable). */
#include <jansson.h>

#include "itest_client.h"

static itc_env_t env;
static itc_worker_t worker;

#define SUBMIT "submit", "--cluster-tags", "env:test", "--command-tags", "type:echo"

static bool in_order(const char *text, const char *const *words)
{
    const char *at = text;
    for (; *words; words++) {
        const char *p = strstr(at, *words);
        if (!p) {
            fprintf(stderr, "not found in order: \"%s\"\n", *words);
            return false;
        }
        at = p + strlen(*words);
    }
    return true;
}

static bool file_equals(const char *path, const char *want)
{
    char *s = itc_slurp(path);
    bool eq = !strcmp(s, want);
    if (!eq)
        fprintf(stderr, "%s:\n%s\n-- expected:\n%s\n", path, s, want);
    free(s);
    return eq;
}

static const char LINES5[] = "line 1\nline 2\nline 3\nline 4\nline 5\n";
static const char LINES6[] = "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\n";

static void test_submit_routes(void)
{
    itc_proc_t p;
    itc_run(&env, &p, (const char *[]){SUBMIT, "--", "ok", NULL});
    CHECK_EXIT(p, 0);
    char *out = itc_slurp(p.out);
    size_t n = strlen(out);
    CHECK(n > 1 && out[n - 1] == '\n');
    out[n ? n - 1 : 0] = '\0';
    sy_err_t err = SY_ERR_INIT;
    CHECK(sy_client_job_id_valid(out, &err));
    CHECK(strncmp(out, "sy-", 3) == 0);
    long long until = itc_ms() + 20000;
    while (itc_worker_job(&worker, out).runs == 0 && itc_ms() < until)
        itc_sleep_ms(100);
    CHECK(itc_worker_job(&worker, out).runs == 1); /* a RoutedJob reached the cluster topic */
    free(out);
}

static void test_wait_succeeded(void)
{
    itc_proc_t p;
    /* first criterion matches nothing: the fallback routes it */
    itc_run(&env, &p,
            (const char *[]){"submit",
                             "--wait",
                             "--cluster-tags",
                             "env:nowhere",
                             "--cluster-tags",
                             "env:test,spark:3.5",
                             "--command-tags",
                             "type:echo",
                             "--name",
                             "n1",
                             "--env",
                             "A=1",
                             "--meta",
                             "k=v",
                             "--timeout",
                             "1h",
                             "--",
                             "ok",
                             "6",
                             NULL});
    CHECK_EXIT(p, 0);
    char *out = itc_slurp(p.out), *err = itc_slurp(p.err);
    /* the job id first, then the job's stdout in order, the duplicate chunk dropped */
    const char *nl = strchr(out, '\n');
    CHECK(nl && !strcmp(nl + 1, LINES6));
    CHECK(in_order(err, (const char *[]){"ACCEPTED", "RESOLVED cluster=local1 command=echo",
                                         "CLAIMED", "RUNNING", "SUCCEEDED", NULL}));
    CHECK(strstr(err, "err line\n") != NULL); /* stream stderr goes to stderr */
    CHECK(strstr(err, "criterion #2") != NULL);
    free(out);
    free(err);
}

static void test_wait_failed(void)
{
    itc_proc_t p;
    itc_run(&env, &p,
            (const char *[]){SUBMIT, "--wait", "--job-id", "cli-fail-1", "--", "fail", NULL});
    CHECK_EXIT(p, 10);
    CHECK(file_equals(p.out, "cli-fail-1\nline 1\nline 2\n"));
    CHECK(itc_file_has(p.err, "FAILED"));
    CHECK(itc_file_has(p.err, "exit_code=3"));
}

static void test_wait_invalid(void)
{
    itc_proc_t p;
    itc_run(&env, &p,
            (const char *[]){"submit", "--wait", "--cluster-tags", "env:nowhere", "--command-tags",
                             "type:echo", "--", "ok", NULL});
    CHECK_EXIT(p, 12);
    CHECK(itc_file_has(p.err, "INVALID"));
    CHECK(itc_file_has(p.err, "env:nowhere")); /* the reason names the unmet criterion */
}

static void test_wait_killed(void)
{
    itc_proc_t w, k;
    itc_spawn(&env, &w,
              (const char *[]){SUBMIT, "--wait", "--job-id", "cli-kill-1", "--", "hang", NULL});
    CHECK(itc_wait_file_has(w.err, "RUNNING", 20000));
    itc_run(&env, &k, (const char *[]){"kill", "cli-kill-1", "--reason", "testing", NULL});
    CHECK_EXIT(k, 0);
    CHECK(itc_file_has(k.out, "kill requested for job cli-kill-1"));
    itc_wait(&w, 30000);
    CHECK_EXIT(w, 11);
    CHECK(itc_file_has(w.err, "KILLED"));
    itc_job_t j = itc_worker_job(&worker, "cli-kill-1");
    CHECK(j.kills == 1 && !strcmp(j.kill_reason, "testing"));
    /* killing it again: it has ended, nothing is sent */
    itc_run(&env, &k, (const char *[]){"kill", "cli-kill-1", NULL});
    CHECK_EXIT(k, 0);
    CHECK(itc_file_has(k.err, "already ended KILLED"));
}

static void test_kill_on_interrupt(void)
{
    /* SIGTERM is what Airflow sends a BashOperator's process on task kill / timeout */
    itc_proc_t w;
    itc_spawn(&env, &w,
              (const char *[]){SUBMIT, "--wait", "--kill-on-interrupt", "--job-id", "cli-koi-1",
                               "--", "hang", NULL});
    CHECK(itc_wait_file_has(w.err, "RUNNING", 20000));
    kill(w.pid, SIGTERM);
    itc_wait(&w, 30000);
    CHECK_EXIT(w, 11);
    CHECK(itc_file_has(w.err, "killing job cli-koi-1"));
    itc_job_t j = itc_worker_job(&worker, "cli-koi-1");
    CHECK(j.kills == 1 && strstr(j.kill_reason, "kill-on-interrupt") != NULL);

    /* without the flag, Ctrl-C only detaches: the job keeps running */
    itc_spawn(&env, &w,
              (const char *[]){SUBMIT, "--wait", "--job-id", "cli-detach-1", "--", "hang", NULL});
    CHECK(itc_wait_file_has(w.err, "RUNNING", 20000));
    kill(w.pid, SIGINT);
    itc_wait(&w, 30000);
    CHECK_EXIT(w, 130);
    CHECK(itc_file_has(w.err, "keeps running"));
    itc_sleep_ms(1000);
    j = itc_worker_job(&worker, "cli-detach-1");
    CHECK(j.kills == 0 && j.running);

    /* ... and `logs -f` re-attaches to it; a kill from elsewhere ends both */
    itc_proc_t f, k;
    itc_spawn(&env, &f, (const char *[]){"logs", "-f", "cli-detach-1", NULL});
    CHECK(itc_wait_file_has(f.err, "RUNNING", 20000));
    itc_run(&env, &k, (const char *[]){"kill", "cli-detach-1", NULL});
    CHECK_EXIT(k, 0);
    itc_wait(&f, 30000);
    CHECK_EXIT(f, 11);
}

static void test_wait_timeout(void)
{
    itc_proc_t p, k;
    long long t0 = itc_ms();
    itc_run(&env, &p,
            (const char *[]){SUBMIT, "--wait", "--wait-timeout", "3s", "--job-id", "cli-timeout-1",
                             "--", "hang", NULL});
    CHECK_EXIT(p, 13);
    CHECK(itc_ms() - t0 < 20000);
    CHECK(itc_file_has(p.err, "keeps running"));
    itc_run(&env, &k, (const char *[]){"kill", "cli-timeout-1", NULL});
    CHECK_EXIT(k, 0);
}

/* An Airflow task retry: the same --job-id again while the first try still follows the job,
 * and once more after it ended. The job runs once; every try sees its whole output and its
 * outcome. */
static void test_resubmit_reattaches(void)
{
    const char *args[] = {SUBMIT, "--wait", "--job-id", "cli-retry-1", "--",
                          "slow", "3000",   "6",        NULL};
    itc_proc_t a, b, c;
    itc_spawn(&env, &a, args);
    CHECK(itc_wait_file_has(a.err, "RUNNING", 20000));
    itc_spawn(&env, &b, args);
    itc_wait(&a, 30000);
    itc_wait(&b, 30000);
    CHECK_EXIT(a, 0);
    CHECK_EXIT(b, 0);
    CHECK(file_equals(a.out, "cli-retry-1\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\n"));
    CHECK(file_equals(b.out, "cli-retry-1\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\n"));
    CHECK(itc_file_has(b.err, "DUPLICATE"));
    CHECK(itc_file_has(b.err, "this submission; following the run already routed"));
    CHECK(!itc_file_has(a.err, "this submission"));

    itc_run(&env, &c, args); /* after the end: exits with the outcome at once */
    CHECK_EXIT(c, 0);
    CHECK(file_equals(c.out, "cli-retry-1\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\n"));
    CHECK(itc_file_has(c.err, "DUPLICATE"));

    char topic[256];
    itc_topic(&env, "cluster." ITC_CLUSTER, topic);
    CHECK(itc_count_records(&env, topic, "cli-retry-1", 2, 5000) == 1); /* routed once */
    CHECK(itc_worker_job(&worker, "cli-retry-1").runs == 1);
}

static void test_status_and_logs(void)
{
    itc_proc_t p;
    itc_run(&env, &p, (const char *[]){SUBMIT, "--wait", "--job-id", "cli-ok-1", "--", "ok", NULL});
    CHECK_EXIT(p, 0);

    itc_run(&env, &p, (const char *[]){"status", "cli-ok-1", NULL});
    CHECK_EXIT(p, 0);
    CHECK(itc_file_has(p.out, "SUCCEEDED"));
    CHECK(itc_file_has(p.out, "local1"));

    itc_run(&env, &p, (const char *[]){"status", "--json", "cli-ok-1", NULL});
    CHECK_EXIT(p, 0);
    char *out = itc_slurp(p.out);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "status")), "SUCCEEDED"));
    CHECK(j && json_integer_value(json_object_get(j, "exit_code")) == 0);
    json_decref(j);
    free(out);

    itc_run(&env, &p, (const char *[]){"logs", "cli-ok-1", NULL});
    CHECK_EXIT(p, 0);
    CHECK(file_equals(p.out, LINES5));
    CHECK(itc_file_has(p.err, "err line"));
    CHECK(!itc_file_has(p.err, "SUCCEEDED")); /* no status lines without -f */

    itc_run(&env, &p, (const char *[]){"logs", "-f", "cli-ok-1", NULL});
    CHECK_EXIT(p, 0);
    CHECK(file_equals(p.out, LINES5));
    CHECK(itc_file_has(p.err, "SUCCEEDED"));

    /* unknown job ids */
    itc_run(&env, &p, (const char *[]){"status", "cli-no-such-job", NULL});
    CHECK_EXIT(p, 4);
    CHECK(itc_file_has(p.err, "no job cli-no-such-job"));
    itc_run(&env, &p, (const char *[]){"logs", "-f", "cli-no-such-job", NULL});
    CHECK_EXIT(p, 4);
    itc_run(&env, &p, (const char *[]){"kill", "cli-no-such-job", NULL});
    CHECK_EXIT(p, 4);
    itc_run(&env, &p, (const char *[]){"status", "bad id", NULL});
    CHECK_EXIT(p, 2);
}

static void test_json(void)
{
    itc_proc_t p;
    itc_run(&env, &p, (const char *[]){SUBMIT, "--json", "--", "ok", NULL});
    CHECK_EXIT(p, 0);
    char *out = itc_slurp(p.out);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    CHECK(j && json_is_string(json_object_get(j, "job_id")) &&
          json_integer_value(json_object_get(j, "partition")) >= 0 &&
          json_integer_value(json_object_get(j, "offset")) >= 0);
    json_decref(j);
    free(out);

    itc_run(&env, &p, (const char *[]){SUBMIT, "--json", "--wait", "--", "fail", NULL});
    CHECK_EXIT(p, 10);
    out = itc_slurp(p.out);
    int lines = 0, logs = 0, statuses = 0;
    json_t *last = NULL;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *x = json_loads(line, 0, &je);
        CHECK(x != NULL);
        if (!x)
            continue;
        lines++;
        const char *type = json_string_value(json_object_get(x, "type"));
        logs += type && !strcmp(type, "log");
        statuses += type && !strcmp(type, "status");
        json_decref(last);
        last = x;
    }
    CHECK(lines >= 1 + 2 + 6 + 1); /* submitted, 2 logs, 6 statuses, result */
    CHECK(logs == 2 && statuses >= 6);
    CHECK(last && !strcmp(json_string_value(json_object_get(last, "type")), "result"));
    CHECK(last && !strcmp(json_string_value(json_object_get(last, "status")), "FAILED"));
    CHECK(last && json_integer_value(json_object_get(last, "switchyard_exit")) == 10);
    CHECK(last && json_integer_value(json_object_get(last, "exit_code")) == 3);
    json_decref(last);
    free(out);
}

static void test_errors(void)
{
    itc_proc_t p;
    itc_run(&env, &p,
            (const char *[]){"submit", "--cluster-tags", "env prod", "--command-tags", "type:echo",
                             NULL});
    CHECK_EXIT(p, 2);
    CHECK(itc_file_has(p.err, "cluster criterion #1"));
    itc_run(&env, &p,
            (const char *[]){"submit", "--cluster-tags", "env:prod,,x:y", "--command-tags",
                             "type:echo", NULL});
    CHECK_EXIT(p, 2);
    itc_run(&env, &p, (const char *[]){"submit", "--cluster-tags", "env:prod", NULL});
    CHECK_EXIT(p, 2);
    CHECK(itc_file_has(p.err, "--command-tags is required"));
    itc_run(&env, &p, (const char *[]){SUBMIT, "--timeout", "soon", NULL});
    CHECK_EXIT(p, 2);
    itc_run(&env, &p, (const char *[]){SUBMIT, "--job-id", "a/b", NULL});
    CHECK_EXIT(p, 2);
    itc_run(&env, &p, (const char *[]){SUBMIT, "--env", "1X=2", NULL});
    CHECK_EXIT(p, 2);
    itc_run(&env, &p, (const char *[]){SUBMIT, "--kill-on-interrupt", NULL});
    CHECK_EXIT(p, 2);
    itc_run(&env, &p, (const char *[]){SUBMIT, "--bogus", NULL});
    CHECK_EXIT(p, 2);

    /* nothing listens on port 1 */
    long long t0 = itc_ms();
    itc_run(&env, &p,
            (const char *[]){"-X", "bootstrap.servers=127.0.0.1:1", "-X", "broker.timeout.ms=1500",
                             SUBMIT, "--", "ok", NULL});
    CHECK_EXIT(p, 5);
    CHECK(itc_file_has(p.err, "Kafka broker unreachable within 1500 ms"));
    CHECK(itc_ms() - t0 < 15000);
    itc_run(&env, &p,
            (const char *[]){"-X", "bootstrap.servers=127.0.0.1:1", "-X", "broker.timeout.ms=1500",
                             "status", "x", NULL});
    CHECK_EXIT(p, 5);
    CHECK(itc_file_has(p.err, "Kafka broker unreachable"));

    itc_run(&env, &p,
            (const char *[]){"-X", "schema.registry.url=http://127.0.0.1:1", "-X",
                             "schema.registry.timeout.ms=1000", SUBMIT, "--", "ok", NULL});
    CHECK_EXIT(p, 6);
    CHECK(itc_file_has(p.err, "Schema Registry"));
}

int main(void)
{
    if (!itc_env_up(&env, "cli") || !itc_worker_start(&worker, &env)) {
        fprintf(stderr, "environment not up\n");
        return 1;
    }
    test_submit_routes();
    test_wait_succeeded();
    test_wait_failed();
    test_wait_invalid();
    test_wait_killed();
    test_kill_on_interrupt();
    test_wait_timeout();
    test_resubmit_reattaches();
    test_status_and_logs();
    test_json();
    test_errors();
    itc_worker_stop(&worker);
    itc_env_down(&env);
    SY_TEST_DONE();
}
