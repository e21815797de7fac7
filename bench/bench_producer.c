/* bench_producer: the client library's submit path against a real broker and router.
 *   producer_submit_per_s         jobs per second submitted through sy_client_submit_async and
 *                                 acknowledged by the broker (acks=all, idempotent), pipelined
 *   producer_submit_sync_per_s    the same, one sy_client_submit at a time (each waits for its
 *                                 acknowledgement: what one `switchyard submit` does)
 *   producer_to_resolved_p50_ms / _p99_ms
 *                                 from the submit call to the router's RESOLVED event seen by a
 *                                 consumer of <ns>.status, jobs paced at BENCH_RATE per second
 * Needs a running router over a registry where tags env:bench / type:bench resolve (set up by
 * scripts/bench-producer) and the SWITCHYARD_* environment. Sizes: BENCH_JOBS (throughput,
 * default 20000), BENCH_SYNC_JOBS (default 500), BENCH_LATENCY_JOBS (default 2000),
 * BENCH_RATE (default 200); the first 50 latency jobs warm up and are not counted. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sy_time.h"
#include "sy_avro.h"
#include "sy_client.h"
#include "sy_config.h"
#include "sy_kafka.h"
#include "sy_log.h"

extern char **environ;

static const char *cluster_tags[] = {"env:bench"}, *command_tags[] = {"type:bench"};
static const sy_client_criterion_t crit = {cluster_tags, 1};

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

static sy_client_job_t bench_job(const char *id)
{
    static const char *args[] = {"--date", "2024-05-01", "--input", "s3://bucket/path/part-*"};
    sy_client_job_t j = {.job_id = id,
                         .name = "bench",
                         .cluster_criteria = &crit,
                         .n_cluster_criteria = 1,
                         .command_criterion = {command_tags, 1},
                         .args = args,
                         .n_args = 4};
    return j;
}

/* ---- throughput -------------------------------------------------------------------------------
 */

typedef struct counts {
    long ok, failed;
} counts_t;

static void on_ack(void *opaque, const sy_client_receipt_t *r, const sy_err_t *err)
{
    counts_t *c = opaque;
    if (err)
        c->failed++;
    else
        c->ok++;
}

static int throughput(sy_client_t *client, const char *run, long n, double *per_s)
{
    sy_err_t err = SY_ERR_INIT;
    counts_t c = {0};
    char id[128];
    long long t0 = sy_time_mono_ms();
    for (long i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "bench-%s-tp-%ld", run, i);
        sy_client_job_t j = bench_job(id);
        while (sy_client_submit_async(client, &j, on_ack, &c, NULL, &err) != SY_OK) {
            if (!err.retriable) { /* queue full is retriable: serve acks, try again */
                fprintf(stderr, "bench_producer: submit: %s\n", err.msg);
                return -1;
            }
            sy_client_poll(client, 10);
        }
        sy_client_poll(client, 0);
    }
    if (sy_client_flush(client, 60000, &err) != SY_OK) {
        fprintf(stderr, "bench_producer: %s\n", err.msg);
        return -1;
    }
    long long ms = sy_time_mono_ms() - t0;
    if (c.failed || c.ok != n) {
        fprintf(stderr, "bench_producer: %ld acknowledged, %ld failed of %ld\n", c.ok, c.failed, n);
        return -1;
    }
    *per_s = (double)n * 1000.0 / (double)(ms > 0 ? ms : 1);
    return 0;
}

static int throughput_sync(sy_client_t *client, const char *run, long n, double *per_s)
{
    sy_err_t err = SY_ERR_INIT;
    char id[128];
    long long t0 = sy_time_mono_ms();
    for (long i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "bench-%s-sync-%ld", run, i);
        sy_client_job_t j = bench_job(id);
        sy_client_receipt_t r;
        if (sy_client_submit(client, &j, &r, &err) != SY_OK) {
            fprintf(stderr, "bench_producer: submit: %s\n", err.msg);
            return -1;
        }
    }
    long long ms = sy_time_mono_ms() - t0;
    *per_s = (double)n * 1000.0 / (double)(ms > 0 ? ms : 1);
    return 0;
}

/* ---- latency ------------------------------------------------------------------------------------
 */

typedef struct watcher {
    const sy_config_t *conf;
    sy_codec_t *codec;
    char prefix[64]; /* job ids "bench-<run>-lat-<i>" */
    long n;
    double *submitted_us, *resolved_us; /* by job number, CLOCK_MONOTONIC µs; 0 = not yet */
    long resolved;
    volatile int stop;
    int ready; /* partitions assigned */
    pthread_mutex_t lock;
} watcher_t;

static double mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Reads every partition of <ns>.status from its current end and notes when each bench job's
 * RESOLVED arrives. */
static void *watch(void *arg)
{
    watcher_t *w = arg;
    sy_err_t err = SY_ERR_INIT;
    char topic[256];
    avro_value_t st;
    sy_kafka_opts_t o = {.group_id = "bench-producer-watch", .read_committed = true};
    rd_kafka_t *rk = sy_kafka_new(w->conf, SY_KAFKA_CONSUMER, &o, &err);
    if (!rk || sy_codec_value_new(w->codec, SY_TYPE_JOB_STATUS, &st, &err) != SY_OK) {
        fprintf(stderr, "bench_producer: watcher: %s\n", err.msg);
        pthread_mutex_lock(&w->lock);
        w->ready = -1;
        pthread_mutex_unlock(&w->lock);
        if (rk)
            rd_kafka_destroy(rk);
        return NULL;
    }
    sy_kafka_topic(w->conf, "status", topic, sizeof(topic));
    int n = sy_kafka_partition_count(rk, topic, 10000, &err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int p = 0; p < n; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    pthread_mutex_lock(&w->lock);
    w->ready = 1;
    pthread_mutex_unlock(&w->lock);
    size_t plen = strlen(w->prefix);
    while (!w->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m)
            continue;
        double now = mono_us();
        if (!m->err && m->key_len > plen && !memcmp(m->key, w->prefix, plen) &&
            sy_codec_decode(w->codec, SY_TYPE_JOB_STATUS, m->payload, m->len, &st, &err) == SY_OK) {
            const char *s = sy_avro_get_enum(&st, "status");
            char num[32];
            size_t k = m->key_len - plen < sizeof(num) - 1 ? m->key_len - plen : sizeof(num) - 1;
            memcpy(num, (const char *)m->key + plen, k);
            num[k] = '\0';
            long i = atol(num);
            pthread_mutex_lock(&w->lock);
            if (s && !strcmp(s, "RESOLVED") && i >= 0 && i < w->n && w->resolved_us[i] == 0) {
                w->resolved_us[i] = now;
                w->resolved++;
            }
            pthread_mutex_unlock(&w->lock);
        }
        rd_kafka_message_destroy(m);
    }
    avro_value_decref(&st);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define WARMUP 50 /* latency jobs not measured */

static int latency(sy_client_t *client, const sy_config_t *conf, const char *run, long n, long rate,
                   double *p50, double *p99)
{
    watcher_t w = {.conf = conf, .codec = sy_client_codec(client), .n = n};
    pthread_t th;
    int rc = -1;
    snprintf(w.prefix, sizeof(w.prefix), "bench-%s-lat-", run);
    n += WARMUP;
    w.n = n;
    w.submitted_us = calloc((size_t)n, sizeof(double));
    w.resolved_us = calloc((size_t)n, sizeof(double));
    pthread_mutex_init(&w.lock, NULL);
    if (!w.submitted_us || !w.resolved_us || pthread_create(&th, NULL, watch, &w))
        goto out_free;
    for (int ready = 0; !ready;) {
        pthread_mutex_lock(&w.lock);
        ready = w.ready;
        pthread_mutex_unlock(&w.lock);
        if (ready < 0)
            goto out_join;
        usleep(10000);
    }
    usleep(500000); /* let the fetchers start at the ends before the first job is routed */
    sy_err_t err = SY_ERR_INIT;
    char id[128];
    double t0 = mono_us(), step = 1e6 / (double)(rate > 0 ? rate : 1);
    for (long i = 0; i < n; i++) {
        if (i == WARMUP) { /* first connections, schema ids, cluster topic: not measured */
            long long until = sy_time_mono_ms() + 30000;
            for (long got = 0; got < WARMUP && sy_time_mono_ms() < until; usleep(10000)) {
                pthread_mutex_lock(&w.lock);
                got = w.resolved;
                pthread_mutex_unlock(&w.lock);
            }
            t0 = mono_us() - (double)i * step;
        }
        double due = t0 + (double)i * step, now = mono_us();
        if (due > now)
            usleep((useconds_t)(due - now));
        snprintf(id, sizeof(id), "%s%ld", w.prefix, i);
        sy_client_job_t j = bench_job(id);
        pthread_mutex_lock(&w.lock);
        w.submitted_us[i] = mono_us();
        pthread_mutex_unlock(&w.lock);
        if (sy_client_submit_async(client, &j, NULL, NULL, NULL, &err) != SY_OK) {
            fprintf(stderr, "bench_producer: submit: %s\n", err.msg);
            goto out_join;
        }
        sy_client_poll(client, 0);
    }
    sy_client_flush(client, 30000, &err);
    long long until = sy_time_mono_ms() + 60000;
    for (long got = 0; got < n && sy_time_mono_ms() < until;) {
        pthread_mutex_lock(&w.lock);
        got = w.resolved;
        pthread_mutex_unlock(&w.lock);
        usleep(20000);
    }
    pthread_mutex_lock(&w.lock);
    long got = 0;
    for (long i = WARMUP; i < n; i++)
        if (w.resolved_us[i] > 0)
            w.resolved_us[got++] = (w.resolved_us[i] - w.submitted_us[i]) / 1000.0;
    pthread_mutex_unlock(&w.lock);
    if (got < n - WARMUP) {
        fprintf(stderr, "bench_producer: only %ld of %ld jobs RESOLVED within 60 s\n", got,
                n - WARMUP);
        goto out_join;
    }
    qsort(w.resolved_us, (size_t)got, sizeof(double), cmp_double);
    *p50 = w.resolved_us[(got - 1) / 2];
    *p99 = w.resolved_us[(long)((double)(got - 1) * 0.99)];
    rc = 0;
out_join:
    w.stop = 1;
    pthread_join(th, NULL);
out_free:
    pthread_mutex_destroy(&w.lock);
    free(w.submitted_us);
    free(w.resolved_us);
    return rc;
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_config_t *conf = sy_config_new();
    sy_client_t *client = NULL;
    int rc = 1;
    char run[32];
    double tp = 0, tp_sync = 0, p50 = 0, p99 = 0;
    snprintf(run, sizeof(run), "%lx", (unsigned long)time(NULL) ^ (unsigned long)getpid());
    if (!conf || sy_config_load(conf, NULL, environ, NULL, 0, &err) != SY_OK) {
        fprintf(stderr, "bench_producer: %s\n", err.msg);
        goto out;
    }
    sy_log_set_level(SY_LOG_WARN);
    if (!(client = sy_client_new(conf, &err))) {
        fprintf(stderr, "bench_producer: %s\n", err.msg);
        goto out;
    }
    /* latency first, while the router is idle; then the throughput runs */
    if (latency(client, conf, run, env_long("BENCH_LATENCY_JOBS", 2000),
                env_long("BENCH_RATE", 200), &p50, &p99) ||
        throughput_sync(client, run, env_long("BENCH_SYNC_JOBS", 500), &tp_sync) ||
        throughput(client, run, env_long("BENCH_JOBS", 20000), &tp))
        goto out;
    printf("bench producer_submit_per_s %.0f jobs/s\n", tp);
    printf("bench producer_submit_sync_per_s %.0f jobs/s\n", tp_sync);
    printf("bench producer_to_resolved_p50_ms %.1f ms\n", p50);
    printf("bench producer_to_resolved_p99_ms %.1f ms\n", p99);
    rc = 0;
out:
    sy_client_destroy(client);
    sy_config_destroy(conf);
    return rc;
}
