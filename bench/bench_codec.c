/* bench_codec: JobRequest encode and decode per second through sy_codec (single-object framing,
 * malloc'd output, schema resolution on decode), against plain avro-c generic avro_value_write /
 * avro_value_read of the same record with a memory writer/reader, measured in the same run on
 * one core. Prints "bench <figure> <value> <unit>" lines; the overhead ratio is the time of one
 * encode + one decode through sy_codec over the same through plain avro-c (target <= 1.25). */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sy_codec.h"
#include "sy_log.h"

#define ROUNDS  5
#define SLICE_S 0.11 /* per measurement per round: ~2.2 s in all */

static const char request_json[] =
    "{\"job_id\":\"2024-05-01T00:00:00_nightly-etl_7f3a9c\",\"name\":\"nightly-etl\","
    "\"user\":\"airflow\",\"grouping\":\"etl_dag\",\"grouping_instance\":"
    "\"scheduled__2024-05-01T00:00:00+00:00\","
    "\"cluster_criteria\":[{\"id\":null,\"name\":null,\"tags\":[\"env:prod\",\"team:data\","
    "\"sched:batch\"]},{\"id\":null,\"name\":\"emr-fallback\",\"tags\":[\"env:prod\"]}],"
    "\"command_criterion\":{\"id\":null,\"name\":null,\"tags\":[\"type:spark\",\"ver:3.5\"]},"
    "\"arguments\":[\"--class\",\"com.example.Etl\",\"s3://bucket/jars/etl.jar\",\"--date\","
    "\"2024-05-01\"],\"environment\":{\"SPARK_CONF_DIR\":\"/etc/spark/conf\",\"TZ\":\"UTC\","
    "\"ETL_MODE\":\"full\"},\"timeout_ms\":7200000,\"metadata\":{\"airflow.task\":"
    "\"run_etl\",\"airflow.try\":\"1\"},\"submitted_at\":1714521600000}";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct ctx {
    sy_codec_t *codec;
    avro_value_t value;    /* the record to encode */
    avro_value_t out;      /* decode target (made by the codec) */
    avro_value_t base_out; /* decode target of the baseline (same class) */
    avro_writer_t writer;
    avro_reader_t reader;
    char wbuf[8192];
    void *framed; /* our encoding */
    size_t framed_len;
    const char *payload; /* the Avro body alone (framed + 10) */
    size_t payload_len;
    int failed;
} ctx_t;

static void our_encode(ctx_t *c)
{
    void *buf;
    size_t len;
    if (sy_codec_encode(c->codec, SY_TYPE_JOB_REQUEST, NULL, &c->value, &buf, &len, NULL))
        c->failed = 1;
    free(buf);
}

static void our_decode(ctx_t *c)
{
    if (sy_codec_decode(c->codec, SY_TYPE_JOB_REQUEST, c->framed, c->framed_len, &c->out, NULL))
        c->failed = 1;
}

static void base_encode(ctx_t *c)
{
    avro_writer_reset(c->writer);
    if (avro_value_write(c->writer, &c->value))
        c->failed = 1;
}

static void base_decode(ctx_t *c)
{
    avro_reader_memory_set_source(c->reader, c->payload, (int64_t)c->payload_len);
    if (avro_value_read(c->reader, &c->base_out))
        c->failed = 1;
}

/* Operations per second of fn over about SLICE_S seconds. */
static double measure(void (*fn)(ctx_t *), ctx_t *c)
{
    long n = 0, batch = 256;
    double t0 = now(), t;
    do {
        for (long i = 0; i < batch; i++)
            fn(c);
        n += batch;
        t = now() - t0;
    } while (t < SLICE_S);
    return (double)n / t;
}

static int pin_one_core(void)
{
    int cpu = sched_getcpu();
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu < 0 ? 0 : cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? cpu : -1;
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    ctx_t c = {0};
    int rc = 1;
    sy_log_set_level(SY_LOG_WARN);
    sy_config_t *conf = sy_config_new(); /* no registry: single-object framing */
    json_t *j = json_loads(request_json, 0, NULL);
    int cpu = pin_one_core();

    if (!(c.codec = sy_codec_new(conf, &err)) ||
        sy_codec_value_new(c.codec, SY_TYPE_JOB_REQUEST, &c.value, &err) ||
        sy_codec_value_new(c.codec, SY_TYPE_JOB_REQUEST, &c.out, &err) ||
        sy_codec_value_new(c.codec, SY_TYPE_JOB_REQUEST, &c.base_out, &err) ||
        sy_codec_from_json(c.codec, SY_TYPE_JOB_REQUEST, j, &c.value, &err) ||
        sy_codec_encode(c.codec, SY_TYPE_JOB_REQUEST, NULL, &c.value, &c.framed, &c.framed_len,
                        &err)) {
        fprintf(stderr, "bench_codec: %s\n", err.msg);
        goto out;
    }
    c.payload = (const char *)c.framed + 10;
    c.payload_len = c.framed_len - 10;
    c.writer = avro_writer_memory(c.wbuf, sizeof(c.wbuf));
    c.reader = avro_reader_memory(c.payload, (int64_t)c.payload_len);

    /* both sides produce and read the same bytes */
    base_encode(&c);
    base_decode(&c);
    our_decode(&c);
    if (c.failed || (size_t)avro_writer_tell(c.writer) != c.payload_len ||
        memcmp(c.wbuf, c.payload, c.payload_len) || !avro_value_equal(&c.out, &c.value) ||
        !avro_value_equal(&c.base_out, &c.value)) {
        fprintf(stderr, "bench_codec: sy_codec and avro-c disagree on the record\n");
        goto out;
    }

    double best[4] = {0};
    void (*fns[4])(ctx_t *) = {our_encode, base_encode, our_decode, base_decode};
    for (int r = 0; r < ROUNDS; r++) { /* interleaved, best of rounds: drift hits both alike */
        for (int k = 0; k < 4; k++) {
            double v = measure(fns[k], &c);
            if (v > best[k])
                best[k] = v;
        }
    }
    if (c.failed) {
        fprintf(stderr, "bench_codec: an operation failed during the run\n");
        goto out;
    }
    double ours = 1 / best[0] + 1 / best[2], base = 1 / best[1] + 1 / best[3];
    printf("# JobRequest of %zu bytes (+10 header), one core (cpu %d), best of %d rounds\n",
           c.payload_len, cpu, ROUNDS);
    printf("bench codec_encode_per_s %.0f ops/s\n", best[0]);
    printf("bench codec_decode_per_s %.0f ops/s\n", best[2]);
    printf("bench codec_baseline_encode_per_s %.0f ops/s\n", best[1]);
    printf("bench codec_baseline_decode_per_s %.0f ops/s\n", best[3]);
    printf("bench codec_encode_ratio %.3f x\n", best[1] / best[0]);
    printf("bench codec_decode_ratio %.3f x\n", best[3] / best[2]);
    printf("bench codec_overhead_ratio %.3f x\n", ours / base);
    rc = 0;
out:
    if (c.writer)
        avro_writer_free(c.writer);
    if (c.reader)
        avro_reader_free(c.reader);
    if (c.value.iface)
        avro_value_decref(&c.value);
    if (c.out.iface)
        avro_value_decref(&c.out);
    if (c.base_out.iface)
        avro_value_decref(&c.base_out);
    free(c.framed);
    json_decref(j);
    sy_codec_destroy(c.codec);
    sy_config_destroy(conf);
    return rc;
}
