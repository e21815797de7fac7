/* Integration test of the client library (sy_client) against the real broker, Schema Registry,
 * PostgreSQL and router, with the fake worker of itest_client.h: a submitted JobRequest reaches
 * the router and comes out as a RoutedJob carrying every field; following a job reads only the
 * one partition of <ns>.status and <ns>.logs its id maps to (decoy events for the same id in the
 * other partitions are never seen); a resubmitted id is routed and run once and its second
 * follower re-attaches; async submission, kill, deadlines, cancellation, unknown ids and an
 * unreachable broker. */
#include "sy_time.h"
#include "itest_client.h"

static itc_env_t env;
static itc_worker_t worker;
static sy_client_t *client;

static const char *prod[] = {"env:nowhere"}, *test[] = {"env:test", "spark:3.5"};
static const char *echo[] = {"type:echo"};
static sy_client_criterion_t crit[] = {{prod, 1}, {test, 2}};

static sy_client_job_t job_with(const char *id, const char *const *args, size_t n_args)
{
    sy_client_job_t j = {.job_id = id,
                         .cluster_criteria = crit,
                         .n_cluster_criteria = 2,
                         .command_criterion = {echo, 1},
                         .args = args,
                         .n_args = n_args};
    return j;
}

typedef struct collected {
    char out[4096];
    char states[512];
    int statuses;
} collected_t;

static int collect_status(void *opaque, const sy_client_status_t *s)
{
    collected_t *c = opaque;
    if (*c->states)
        strncat(c->states, " ", sizeof(c->states) - strlen(c->states) - 1);
    strncat(c->states, s->status, sizeof(c->states) - strlen(c->states) - 1);
    c->statuses++;
    return 0;
}

static int collect_log(void *opaque, const sy_client_log_t *l)
{
    collected_t *c = opaque;
    if (!strcmp(l->stream, "stdout"))
        strncat(c->out, (const char *)l->chunk,
                l->len < sizeof(c->out) - strlen(c->out) - 1 ? l->len
                                                             : sizeof(c->out) - strlen(c->out) - 1);
    return 0;
}

static void test_submit_routed(void)
{
    sy_err_t err = SY_ERR_INIT;
    const char *args[] = {"ok", "2", "--conf", "spark.x=1 2"};
    sy_client_kv_t envv[] = {{"SPARK_HOME", "/opt/spark"}}, meta[] = {{"airflow.task", "t1"}};
    sy_client_job_t j = job_with(NULL, args, 4);
    j.name = "nightly";
    j.user = "alice";
    j.grouping = "dag1";
    j.grouping_instance = "run-7";
    j.env = envv;
    j.n_env = 1;
    j.meta = meta;
    j.n_meta = 1;
    j.timeout_ms = 3600000;
    sy_client_receipt_t r;
    CHECK(sy_client_submit(client, &j, &r, &err) == SY_OK);
    CHECK(sy_client_job_id_valid(r.job_id, &err));
    CHECK(r.partition == sy_kafka_partition_for_key(r.job_id, strlen(r.job_id), ITC_PARTITIONS));
    CHECK(r.offset >= 0 && r.submitted_at > 0);

    /* the RoutedJob on the cluster topic carries the request unchanged */
    char topic[256];
    sy_kafka_opts_t o = {.group_id = "itc-lib", .read_committed = true};
    rd_kafka_t *rk = sy_kafka_new(env.conf, SY_KAFKA_CONSUMER, &o, &err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(
        l, itc_topic(&env, "cluster." ITC_CLUSTER, topic),
        sy_kafka_partition_for_key(r.job_id, strlen(r.job_id), ITC_PARTITIONS))
        ->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    avro_value_t v;
    sy_codec_value_new(env.codec, SY_TYPE_ROUTED_JOB, &v, &err);
    bool found = false;
    long long until = itc_ms() + 20000;
    while (!found && itc_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err && m->key_len == strlen(r.job_id) && !memcmp(m->key, r.job_id, m->key_len) &&
            sy_codec_decode(env.codec, SY_TYPE_ROUTED_JOB, m->payload, m->len, &v, &err) == SY_OK)
            found = true;
        rd_kafka_message_destroy(m);
    }
    CHECK(found);
    if (found) {
        CHECK_STR(sy_avro_get_string(&v, "request.job_id"), r.job_id);
        CHECK_STR(sy_avro_get_string(&v, "request.name"), "nightly");
        CHECK_STR(sy_avro_get_string(&v, "request.user"), "alice");
        CHECK_STR(sy_avro_get_string(&v, "request.grouping"), "dag1");
        CHECK_STR(sy_avro_get_string(&v, "request.grouping_instance"), "run-7");
        CHECK(sy_avro_array_size(&v, "request.arguments") == 4);
        CHECK_STR(sy_avro_array_get_string(&v, "request.arguments", 3), "spark.x=1 2");
        CHECK_STR(sy_avro_map_get_string(&v, "request.environment", "SPARK_HOME"), "/opt/spark");
        CHECK_STR(sy_avro_map_get_string(&v, "request.metadata", "airflow.task"), "t1");
        CHECK(sy_avro_get_long(&v, "request.timeout_ms", 0) == 3600000);
        CHECK(sy_avro_get_long(&v, "request.submitted_at", 0) == r.submitted_at);
        CHECK(sy_avro_array_size(&v, "request.cluster_criteria") == 2);
        CHECK(sy_avro_array_size(&v, "request.command_criterion.tags") == 1);
        CHECK_STR(sy_avro_get_string(&v, "cluster_name"), ITC_CLUSTER);
        CHECK_STR(sy_avro_get_string(&v, "command_name"), "echo");
    }
    avro_value_decref(&v);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* Decoys: events for the same job id, written into every *other* partition of <ns>.status and
 * <ns>.logs: a terminal FAILED and a log chunk. A follower that read them would end FAILED or
 * print "DECOY". */
static void plant_decoys(const char *id)
{
    sy_err_t err = SY_ERR_INIT;
    char t_status[256], t_logs[256];
    avro_value_t st, lg;
    int32_t home = sy_kafka_partition_for_key(id, strlen(id), ITC_PARTITIONS);
    sy_codec_value_new(env.codec, SY_TYPE_JOB_STATUS, &st, &err);
    sy_codec_value_new(env.codec, SY_TYPE_JOB_LOG, &lg, &err);
    sy_avro_set_string(&st, "job_id", id);
    sy_avro_set_long(&st, "seq", 99);
    sy_avro_set_enum(&st, "status", "FAILED");
    sy_avro_set_long(&st, "emitted_at", sy_time_wall_ms());
    sy_avro_set_string(&lg, "job_id", id);
    sy_avro_set_string(&lg, "stream", "stdout");
    sy_avro_set_long(&lg, "offset", 0);
    sy_avro_set_bytes(&lg, "chunk", "DECOY\n", 6);
    sy_avro_set_long(&lg, "emitted_at", sy_time_wall_ms());
    for (int32_t p = 0; p < ITC_PARTITIONS; p++) {
        if (p == home)
            continue;
        itc_produce(&env, env.admin, SY_TYPE_JOB_STATUS, itc_topic(&env, "status", t_status), p, id,
                    &st);
        itc_produce(&env, env.admin, SY_TYPE_JOB_LOG, itc_topic(&env, "logs", t_logs), p, id, &lg);
    }
    CHECK(rd_kafka_flush(env.admin, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    avro_value_decref(&st);
    avro_value_decref(&lg);
}

static int64_t high_watermark(const char *suffix, int32_t p)
{
    char topic[256];
    int64_t lo = 0, hi = -1;
    rd_kafka_query_watermark_offsets(env.admin, itc_topic(&env, suffix, topic), p, &lo, &hi, 10000);
    return hi;
}

static void test_follow_one_partition(void)
{
    sy_err_t err = SY_ERR_INIT;
    const char *id = "lib-onepart-1";
    const char *args[] = {"ok", "4"};
    plant_decoys(id);
    sy_client_job_t j = job_with(id, args, 2);
    sy_client_receipt_t r;
    CHECK(sy_client_submit(client, &j, &r, &err) == SY_OK);
    collected_t c = {0};
    sy_client_follow_opts_t fo = {.submitted_at = r.submitted_at,
                                  .deadline_ms = itc_ms() + 30000,
                                  .logs = true,
                                  .on_status = collect_status,
                                  .on_log = collect_log,
                                  .opaque = &c};
    sy_client_outcome_t o;
    CHECK(sy_client_follow(client, id, &fo, &o, &err) == SY_OK);
    CHECK(o.end == SY_CLIENT_END_TERMINAL);
    CHECK_STR(o.status, "SUCCEEDED");
    CHECK(o.exit_code == 0);
    CHECK_STR(c.out, "line 1\nline 2\nline 3\nline 4\n"); /* no DECOY, chunk 2 once */
    CHECK_STR(c.states, "ACCEPTED RESOLVED CLAIMED SUBMITTED RUNNING SUCCEEDED");
    int32_t home = sy_kafka_partition_for_key(id, strlen(id), ITC_PARTITIONS);
    CHECK(o.status_partition == home && o.logs_partition == home);
    /* it consumed no more records than those two partitions hold */
    CHECK(o.messages_read <= high_watermark("status", home) + high_watermark("logs", home));
    CHECK(!o.duplicate);

    /* `status`: caught up, no logs */
    collected_t s = {0};
    sy_client_follow_opts_t so = {
        .until_caught_up = true, .on_status = collect_status, .opaque = &s};
    CHECK(sy_client_follow(client, id, &so, &o, &err) == SY_OK);
    CHECK(o.end == SY_CLIENT_END_TERMINAL);
    CHECK_STR(o.status, "SUCCEEDED");
    CHECK(o.logs_partition == -1);
}

static void test_resubmit_runs_once(void)
{
    sy_err_t err = SY_ERR_INIT;
    const char *id = "lib-dup-1";
    const char *args[] = {"slow", "1500", "3"};
    sy_client_job_t j = job_with(id, args, 3);
    sy_client_receipt_t r1, r2;
    CHECK(sy_client_submit(client, &j, &r1, &err) == SY_OK);
    CHECK(sy_client_submit(client, &j, &r2, &err) == SY_OK);
    CHECK(r1.partition == r2.partition);      /* same key, same partition: the router sees both */
    CHECK(r2.submitted_at > r1.submitted_at); /* tells the two answers apart */
    collected_t c = {0};
    sy_client_follow_opts_t fo = {.submitted_at = r2.submitted_at,
                                  .lookback_ms = 3600000,
                                  .deadline_ms = itc_ms() + 30000,
                                  .logs = true,
                                  .on_status = collect_status,
                                  .on_log = collect_log,
                                  .opaque = &c};
    sy_client_outcome_t o;
    CHECK(sy_client_follow(client, id, &fo, &o, &err) == SY_OK);
    CHECK(o.duplicate);
    CHECK_STR(o.status, "SUCCEEDED");
    CHECK_STR(c.out, "line 1\nline 2\nline 3\n");
    CHECK(strstr(c.states, "DUPLICATE") != NULL);
    char topic[256];
    CHECK(itc_count_records(&env, itc_topic(&env, "cluster." ITC_CLUSTER, topic), id, 2, 5000) ==
          1);
    CHECK(itc_worker_job(&worker, id).runs == 1);
}

typedef struct acks {
    int ok, failed;
    bool bad_receipt;
} acks_t;

static void on_ack(void *opaque, const sy_client_receipt_t *r, const sy_err_t *err)
{
    acks_t *a = opaque;
    if (err)
        a->failed++;
    else
        a->ok++;
    if (!err && (r->partition < 0 || r->offset < 0 || strncmp(r->job_id, "lib-async-", 10)))
        a->bad_receipt = true;
}

static void test_async(void)
{
    sy_err_t err = SY_ERR_INIT;
    acks_t a = {0};
    const char *args[] = {"ok", "1"};
    for (int i = 0; i < 200; i++) {
        char id[64];
        snprintf(id, sizeof(id), "lib-async-%d", i);
        sy_client_job_t j = job_with(id, args, 2);
        sy_client_receipt_t r;
        CHECK(sy_client_submit_async(client, &j, on_ack, &a, &r, &err) == SY_OK);
        CHECK_STR(r.job_id, id);
    }
    CHECK(sy_client_flush(client, 20000, &err) == SY_OK);
    CHECK(a.ok == 200 && a.failed == 0 && !a.bad_receipt);
    /* an invalid job is refused before anything is sent */
    const char *bad[] = {"not a tag"};
    sy_client_job_t j = job_with("lib-async-bad", args, 2);
    j.command_criterion = (sy_client_criterion_t){bad, 1};
    CHECK(sy_client_submit_async(client, &j, on_ack, &a, NULL, &err) == SY_ERR_INVALID_ARG);
}

static bool cancel_after(void *opaque)
{
    return itc_ms() >= *(long long *)opaque;
}

static void test_kill_deadline_cancel(void)
{
    sy_err_t err = SY_ERR_INIT;
    const char *id = "lib-hang-1";
    const char *args[] = {"hang"};
    sy_client_job_t j = job_with(id, args, 1);
    sy_client_receipt_t r;
    CHECK(sy_client_submit(client, &j, &r, &err) == SY_OK);
    sy_client_outcome_t o;
    sy_client_follow_opts_t fo = {.submitted_at = r.submitted_at, .deadline_ms = itc_ms() + 4000};
    CHECK(sy_client_follow(client, id, &fo, &o, &err) == SY_OK);
    CHECK(o.end == SY_CLIENT_END_DEADLINE);
    CHECK_STR(o.status, "RUNNING");

    long long at = itc_ms() + 1000;
    sy_client_follow_opts_t co = {.cancelled = cancel_after, .opaque = &at};
    CHECK(sy_client_follow(client, id, &co, &o, &err) == SY_OK);
    CHECK(o.end == SY_CLIENT_END_CANCELLED);

    CHECK(sy_client_kill(client, id, "lib test", "tester", &err) == SY_OK);
    sy_client_follow_opts_t ko = {.deadline_ms = itc_ms() + 20000};
    CHECK(sy_client_follow(client, id, &ko, &o, &err) == SY_OK);
    CHECK(o.end == SY_CLIENT_END_TERMINAL);
    CHECK_STR(o.status, "KILLED");
    CHECK_STR(o.message, "lib test");

    ko.deadline_ms = itc_ms() + 20000;
    CHECK(sy_client_follow(client, "lib-no-such-job", &ko, &o, &err) == SY_ERR_NOT_FOUND);
    CHECK(sy_client_follow(client, "bad id", &ko, &o, &err) == SY_ERR_INVALID_ARG);
}

static void test_unreachable(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_config_t *conf = sy_config_new();
    char *over[] = {"bootstrap.servers=127.0.0.1:1", "broker.timeout.ms=1000", "log.level=error"};
    CHECK(sy_config_load(conf, NULL, environ, over, 3, &err) == SY_OK);
    sy_client_t *c = sy_client_new(conf, &err);
    CHECK(c != NULL);
    const char *args[] = {"ok"};
    sy_client_job_t j = job_with("lib-unreachable-1", args, 1);
    sy_client_receipt_t r;
    long long t0 = itc_ms();
    CHECK(sy_client_submit(c, &j, &r, &err) == SY_ERR_TIMEOUT);
    CHECK(err.retriable && strstr(err.msg, "unreachable within 1000 ms"));
    CHECK_STR(r.job_id, "lib-unreachable-1");
    sy_client_outcome_t o;
    sy_client_follow_opts_t fo = {0};
    CHECK(sy_client_follow(c, "lib-unreachable-1", &fo, &o, &err) == SY_ERR_TIMEOUT);
    CHECK(sy_client_kill(c, "lib-unreachable-1", NULL, NULL, &err) == SY_ERR_TIMEOUT);
    CHECK(itc_ms() - t0 < 15000);
    sy_client_destroy(c); /* the unacknowledged requests are purged, nothing leaks */
    sy_config_destroy(conf);
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    if (!itc_env_up(&env, "lib") || !itc_worker_start(&worker, &env) ||
        !(client = sy_client_new(env.conf, &err))) {
        fprintf(stderr, "environment not up: %s\n", err.msg);
        return 1;
    }
    test_submit_routed();
    test_follow_one_partition();
    test_resubmit_runs_once();
    test_kill_deadline_cancel();
    test_async();
    test_unreachable();
    sy_client_destroy(client);
    itc_worker_stop(&worker);
    itc_env_down(&env);
    SY_TEST_DONE();
}
