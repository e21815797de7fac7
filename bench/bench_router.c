/* bench_router: the real switchyard-router against a real broker, and a kcat pipe as baseline.
 *   router_routed_per_s    requests routed per second, transactions on: a new router works
 *                          through a backlog of BENCH_ROUTER_JOBS JobRequests pre-loaded into
 *                          <ns>.requests, timed from the first RESOLVED event it produced (that
 *                          record's timestamp) until the last one is visible to a
 *                          read_committed consumer
 *   router_kcat_per_s      the baseline: `kcat -C -e | kcat -P` moving the same records (same
 *                          keys, same partition count) from one topic to another over the same
 *                          broker, timed the same way (first output record's timestamp to the
 *                          last one consumed); a round fails unless exactly BENCH_ROUTER_JOBS
 *                          records arrive
 *   router_vs_kcat_ratio   router_routed_per_s / router_kcat_per_s
 *   router_resolve_p50_ms / _p99_ms
 *                          with the router idle, BENCH_ROUTER_LATENCY_JOBS requests produced one
 *                          at a time at BENCH_ROUTER_RATE per second (linger.ms=0): from the
 *                          produce call to their RESOLVED event read by a read_committed consumer
 * Before measuring, a first router routes 100 requests and stops (cluster topics, changelog and
 * schema ids then exist, as in any deployment). Then BENCH_ROUTER_ROUNDS rounds of: a fresh
 * backlog, the kcat pipe over its copy, a new router over it; each throughput figure is the best
 * of its rounds (on a shared machine other work only ever slows a round down), every round's is
 * printed on stderr. The latency is measured after the last round.
 * usage: bench_router ROUTER_BINARY ROUTER_LOG
 * Needs the SWITCHYARD_* environment of a fresh namespace and consumer group whose registry
 * resolves cluster tags env:bench,spark:3.5 and command tags type:spark-submit (set up by
 * scripts/bench-router). Defaults: BENCH_ROUTER_JOBS 100000, BENCH_ROUTER_ROUNDS 3,
 * BENCH_ROUTER_LATENCY_JOBS 1000, BENCH_ROUTER_RATE 100; BENCH_KCAT names kcat (default kcat). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sy_avro.h"
#include "sy_codec.h"
#include "sy_config.h"
#include "sy_kafka.h"
#include "sy_log.h"
#include "sy_time.h"

extern char **environ;

/* kcat frames messages by delimiter strings: records are generated so that neither occurs in
 * them (framed Avro often holds 0x0a — a string of 5 characters has the length byte 0x0a — so
 * kcat's default newline framing would split records). */
#define KCAT_MSG_DELIM     "\xfe\x1e\xfe\x1e"
#define KCAT_MSG_DELIM_ARG "\\xfe\\x1e\\xfe\\x1e"
#define KCAT_KEY_DELIM_ARG "\\t"
#define WARMUP             20 /* latency requests not measured */

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

static double mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---- records ---------------------------------------------------------------------------------
 */

typedef struct record {
    char key[64];
    void *val;
    size_t len;
} record_t;

/* True when kcat splitting "<val><delimiter>" finds the delimiter only at its end (none
 * inside val, none starting in val's last bytes). */
static bool delim_free(const void *val, size_t len)
{
    size_t dl = sizeof(KCAT_MSG_DELIM) - 1;
    char *s = malloc(len + dl);
    if (!s)
        return false;
    memcpy(s, val, len);
    memcpy(s + len, KCAT_MSG_DELIM, dl);
    const char *at = memmem(s, len + dl, KCAT_MSG_DELIM, dl);
    bool ok = at == s + len;
    free(s);
    return ok;
}

/* Encodes the request of job id into r: a realistic request (a first cluster criterion that
 * matches nothing, so resolution falls back to the second; arguments; environment). When the
 * bytes contain the kcat delimiter, submitted_at moves by a millisecond and it is tried again. */
static int make_record(sy_codec_t *codec, const char *topic, avro_value_t *v, const char *job_id,
                       record_t *r, sy_err_t *err)
{
    long long at = sy_time_wall_ms();
    snprintf(r->key, sizeof(r->key), "%s", job_id);
    for (int attempt = 0; attempt < 1000; attempt++, at++) {
        json_t *doc = json_pack(
            "{s:s, s:s, s:s, s:s, s:[{s:[s]}, {s:[s,s]}], s:{s:[s]}, s:[s,s,s,s], s:{s:s}, s:I}",
            "job_id", job_id, "name", job_id, "user", "bench", "grouping", "bench_dag",
            "cluster_criteria", "tags", "queue:none", "tags", "env:bench", "spark:3.5",
            "command_criterion", "tags", "type:spark-submit", "arguments", "--date", "2024-05-01",
            "--input", "s3://bucket/path/part-*", "environment", "SPARK_CONF_DIR", "/etc/spark",
            "submitted_at", (json_int_t)at);
        if (!doc)
            return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory"), -1;
        sy_err_code_t ec = sy_codec_from_json(codec, SY_TYPE_JOB_REQUEST, doc, v, err);
        json_decref(doc);
        free(r->val);
        r->val = NULL;
        if (ec != SY_OK ||
            sy_codec_encode(codec, SY_TYPE_JOB_REQUEST, topic, v, &r->val, &r->len, err) != SY_OK)
            return -1;
        if (delim_free(r->val, r->len))
            return 0;
    }
    sy_err_set(err, SY_ERR_INTERNAL, false, "every encoding of %s holds the kcat delimiter",
               job_id);
    return -1;
}

/* ---- watching output ---------------------------------------------------------------------------
 */

/* CPU time of processes and of the machine, in clock ticks (from /proc). */
typedef struct cpu_sample {
    long long proc[2];     /* utime + stime of each process, all threads; -1 unknown */
    long long busy, total; /* the machine: ticks not idle, all ticks (all CPUs) */
} cpu_sample_t;

static long long proc_ticks(pid_t pid)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
     */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

static void cpu_sample(const pid_t pid[2], cpu_sample_t *s)
{
    for (int i = 0; i < 2; i++)
        s->proc[i] = proc_ticks(pid[i]);
    s->busy = s->total = 0;
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            s->total += (long long)v[i];
        s->busy = s->total - (long long)(v[3] + v[4]); /* less idle and iowait */
    }
    if (f)
        fclose(f);
}

/* "router 9.8 us/request, broker 7.1 us/request, machine 93% busy" over n items from a to b. */
static void cpu_report(const char *what, const cpu_sample_t *a, const cpu_sample_t *b, long n)
{
    static const char *const names[2] = {"router", "broker"};
    double us_per_tick = 1e6 / (double)sysconf(_SC_CLK_TCK);
    char line[256];
    int len = 0;
    for (int i = 0; i < 2 && n > 0; i++)
        if (a->proc[i] >= 0 && b->proc[i] >= 0)
            len += snprintf(line + len, sizeof(line) - (size_t)len, "%s %.1f us, ", names[i],
                            (double)(b->proc[i] - a->proc[i]) * us_per_tick / (double)n);
    long long total = b->total - a->total;
    snprintf(line + len, sizeof(line) - (size_t)len, "machine %.0f%% busy (%ld CPUs)",
             total > 0 ? 100.0 * (double)(b->busy - a->busy) / (double)total : 0.0,
             sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(stderr, "bench_router: CPU per %s over the last %ld: %s\n", what, n, line);
}

/* The broker's pid, from the test environment's state directory (0 when unknown). */
static pid_t broker_pid(void)
{
    const char *dir = getenv("SY_TESTENV_DIR");
    char path[1024];
    int pid = 0;
    if (!dir)
        return 0;
    snprintf(path, sizeof(path), "%s/kafka.pid", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

typedef struct watcher {
    const sy_config_t *conf;
    sy_codec_t *codec;
    char topic[256];
    bool from_end;       /* start at the partitions' ends (else their beginnings) */
    bool resolved;       /* count RESOLVED JobStatus events (else every record) */
    char tp_prefix[64];  /* throughput job ids "<prefix><n>", n < n_tp */
    char lat_prefix[64]; /* latency job ids "<prefix><n>", n < n_lat */
    long n_tp, n_lat;
    pthread_mutex_t lock;
    /* under lock */
    int ready;                                 /* 1 assigned, -1 failed */
    char *tp_seen;                             /* by throughput job number: seen yet */
    long tp_count, tp_dups;                    /* distinct jobs seen; records seen again */
    long long tp_first_ts_ms, tp_last_wall_ms; /* first output's record timestamp; last arrival */
    double *lat_us;                            /* RESOLVED arrival by latency job number */
    double *lat_in_ms; /* by latency job number: the RESOLVED event's emitted_at - submitted_at */
    long lat_count;
    /* CPU accounting over the window: sampled when the first output arrives (cpu_pid[0], the
     * router, and cpu_pid[1], the broker, set by the caller; 0 = none) */
    pid_t cpu_pid[2];
    cpu_sample_t cpu0;
    long count0; /* outputs seen when cpu0 was taken */
    volatile int stop;
} watcher_t;

/* The n of a job id "<prefix><n>" (prefix_len bytes of prefix), or -1. */
static long job_number(const char *key, size_t len, size_t prefix_len)
{
    char num[24], *end;
    size_t k = len - prefix_len;
    if (k == 0 || k >= sizeof(num))
        return -1;
    memcpy(num, key + prefix_len, k);
    num[k] = '\0';
    long i = strtol(num, &end, 10);
    return *end ? -1 : i;
}

/* The watcher's thread: reads w->topic (read_committed) and notes the records of the throughput
 * and latency jobs. */
static void *watch(void *arg)
{
    watcher_t *w = arg;
    sy_err_t err = SY_ERR_INIT;
    avro_value_t st = {NULL, NULL};
    char group[128];
    snprintf(group, sizeof(group), "bench-router-watch-%d", (int)getpid());
    sy_kafka_opts_t o = {.group_id = group, .read_committed = true}; /* assign() only */
    rd_kafka_t *rk = sy_kafka_new(w->conf, SY_KAFKA_CONSUMER, &o, &err);
    int n = rk ? sy_kafka_partition_count(rk, w->topic, 10000, &err) : -1;
    if (n <= 0 || sy_codec_value_new(w->codec, SY_TYPE_JOB_STATUS, &st, &err) != SY_OK) {
        fprintf(stderr, "bench_router: watching %s: %s\n", w->topic, err.msg);
        pthread_mutex_lock(&w->lock);
        w->ready = -1;
        pthread_mutex_unlock(&w->lock);
        goto out;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++) {
        int64_t lo = 0, hi = 0;
        if (w->from_end)
            rd_kafka_query_watermark_offsets(rk, w->topic, p, &lo, &hi, 10000);
        rd_kafka_topic_partition_list_add(l, w->topic, p)->offset =
            w->from_end ? hi : RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    pthread_mutex_lock(&w->lock);
    w->ready = 1;
    pthread_mutex_unlock(&w->lock);
    size_t tpl = strlen(w->tp_prefix), latl = strlen(w->lat_prefix);
    while (!w->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m)
            continue;
        long long wall = sy_time_wall_ms();
        double now = mono_us();
        const char *key = m->key;
        if (m->err || !key) {
            rd_kafka_message_destroy(m);
            continue;
        }
        double in_ms = 0;
        bool tp = m->key_len > tpl && !memcmp(key, w->tp_prefix, tpl);
        bool lat = latl && m->key_len > latl && !memcmp(key, w->lat_prefix, latl);
        if (w->resolved && (tp || lat)) {
            const char *s = NULL;
            if (sy_codec_decode(w->codec, SY_TYPE_JOB_STATUS, m->payload, m->len, &st, &err) ==
                SY_OK)
                s = sy_avro_get_enum(&st, "status");
            if (!s || strcmp(s, "RESOLVED"))
                tp = lat = false;
            else
                in_ms = (double)(sy_avro_get_long(&st, "emitted_at", 0) -
                                 sy_avro_get_long(&st, "submitted_at", 0));
        }
        rd_kafka_timestamp_type_t tt;
        long long ts = rd_kafka_message_timestamp(m, &tt);
        long i = tp    ? job_number(key, m->key_len, tpl)
                 : lat ? job_number(key, m->key_len, latl)
                       : -1;
        pthread_mutex_lock(&w->lock);
        if (tp && i >= 0 && i < w->n_tp) {
            if (w->tp_seen[i]) {
                w->tp_dups++;
            } else {
                w->tp_seen[i] = 1;
                if (w->tp_count == 0 || ts < w->tp_first_ts_ms)
                    w->tp_first_ts_ms = ts;
                w->tp_last_wall_ms = wall;
                w->tp_count++;
                if ((w->cpu_pid[0] > 0 || w->cpu_pid[1] > 0) && !w->count0) {
                    cpu_sample(w->cpu_pid, &w->cpu0);
                    w->count0 = w->tp_count;
                }
            }
        } else if (lat) {
            if (i >= 0 && i < w->n_lat && w->lat_us[i] == 0) {
                w->lat_us[i] = now;
                w->lat_in_ms[i] = in_ms;
                w->lat_count++;
            }
        }
        pthread_mutex_unlock(&w->lock);
        rd_kafka_message_destroy(m);
    }
out:
    if (st.iface)
        avro_value_decref(&st);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return NULL;
}

/* Starts the watcher (n_tp and n_lat set) and waits until it has its partitions. 0, or -1
 * with nothing left to stop. */
static int watcher_start(watcher_t *w, pthread_t *th)
{
    if (!(w->tp_seen = calloc((size_t)w->n_tp + 1, 1)))
        return -1;
    pthread_mutex_init(&w->lock, NULL);
    if (pthread_create(th, NULL, watch, w)) {
        pthread_mutex_destroy(&w->lock);
        free(w->tp_seen);
        return -1;
    }
    for (;; usleep(10000)) {
        pthread_mutex_lock(&w->lock);
        int ready = w->ready;
        pthread_mutex_unlock(&w->lock);
        if (ready > 0)
            return 0;
        if (ready < 0) {
            pthread_join(*th, NULL);
            pthread_mutex_destroy(&w->lock);
            free(w->tp_seen);
            return -1;
        }
    }
}

static void watcher_stop(watcher_t *w, pthread_t th)
{
    w->stop = 1;
    pthread_join(th, NULL);
    pthread_mutex_destroy(&w->lock);
    free(w->tp_seen);
}

/* Waits until the watcher counted n throughput records; false after timeout_s or when
 * still_going (if given) says the producing side gave up. */
static bool wait_count(watcher_t *w, long n, int timeout_s, bool (*still_going)(void *), void *arg)
{
    long long until = sy_time_mono_ms() + timeout_s * 1000LL;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        long got = w->tp_count;
        pthread_mutex_unlock(&w->lock);
        if (got >= n)
            return true;
        if (sy_time_mono_ms() > until || (still_going && !still_going(arg)))
            return false;
        usleep(20000);
    }
}

/* ---- child processes ---------------------------------------------------------------------------
 */

/* Starts argv with stdout and stderr appended to log (NULL: inherited) in a process group of
 * its own, so that it and its children can be stopped together. */
static pid_t spawn(char *const argv[], const char *log)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    pid_t pid = -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    if (log) {
        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
    }
    int e = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    if (e) {
        fprintf(stderr, "bench_router: cannot start %s: %s\n", argv[0], strerror(e));
        pid = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return pid;
}

/* Stops a process group: SIGTERM, then SIGKILL after grace_ms. Returns the wait status. */
static int stop_group(pid_t pid, int grace_ms)
{
    int status = 0;
    kill(-pid, SIGTERM);
    for (int waited = 0; waited < grace_ms; waited += 20) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || w < 0) /* < 0: already reaped */
            return status;
        usleep(20000);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

static bool alive(void *arg)
{
    pid_t pid = *(pid_t *)arg;
    int status;
    return waitpid(pid, &status, WNOHANG) == 0;
}

/* ---- phases ------------------------------------------------------------------------------------
 */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    if (m->err)
        (*(long *)opaque)++;
}

/* Produces recs to topic and waits for every acknowledgement (librdkafka does not copy the
 * values: recs must live until this returns). */
static int load(const sy_config_t *conf, const char *topic, record_t *recs, long n)
{
    sy_err_t err = SY_ERR_INIT;
    long failed = 0;
    sy_kafka_opts_t o = {.dr_msg_cb = on_delivery, .opaque = &failed, .linger_ms = "20"};
    rd_kafka_t *p = sy_kafka_new(conf, SY_KAFKA_IDEMPOTENT_PRODUCER, &o, &err);
    if (!p) {
        fprintf(stderr, "bench_router: %s\n", err.msg);
        return -1;
    }
    for (long i = 0; i < n; i++) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_KEY(recs[i].key, strlen(recs[i].key)),
                                      RD_KAFKA_V_VALUE(recs[i].val, recs[i].len),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 10);
        if (e) {
            fprintf(stderr, "bench_router: produce: %s\n", rd_kafka_err2str(e));
            failed++;
            break;
        }
        rd_kafka_poll(p, 0);
    }
    rd_kafka_resp_err_t fe = rd_kafka_flush(p, 120000);
    rd_kafka_destroy(p);
    if (fe || failed) {
        fprintf(stderr, "bench_router: loading the backlog: %ld failed%s\n", failed,
                fe ? ", flush timed out" : "");
        return -1;
    }
    return 0;
}

/* The baseline: kcat moves the n records of src to dst. Fails unless exactly n arrive. */
static int kcat_baseline(const sy_config_t *conf, sy_codec_t *codec, const char *src,
                         const char *dst, const char *prefix, long n, double *per_s)
{
    const char *kcat =
        getenv("BENCH_KCAT") && *getenv("BENCH_KCAT") ? getenv("BENCH_KCAT") : "kcat";
    const char *b = sy_config_get(conf, "bootstrap.servers");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s -C -b '%s' -t '%s' -o beginning -e -q -K '%s' -D '%s' | "
             "%s -P -b '%s' -t '%s' -K '%s' -D '%s'",
             kcat, b, src, KCAT_KEY_DELIM_ARG, KCAT_MSG_DELIM_ARG, kcat, b, dst, KCAT_KEY_DELIM_ARG,
             KCAT_MSG_DELIM_ARG);
    watcher_t w = {.conf = conf, .codec = codec, .from_end = false, .resolved = false, .n_tp = n};
    snprintf(w.topic, sizeof(w.topic), "%s", dst);
    snprintf(w.tp_prefix, sizeof(w.tp_prefix), "%s", prefix);
    pthread_t th;
    int rc = -1;
    if (watcher_start(&w, &th))
        return -1;
    char *argv[] = {"sh", "-c", cmd, NULL};
    pthread_mutex_lock(&w.lock);
    w.cpu_pid[1] = broker_pid(); /* the kcat processes are not counted, only broker and machine */
    pthread_mutex_unlock(&w.lock);
    long long t0 = sy_time_mono_ms();
    pid_t pid = spawn(argv, NULL);
    if (pid < 0)
        goto out;
    int status = 0;
    long long until = t0 + 300000;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (sy_time_mono_ms() > until) {
            fprintf(stderr, "bench_router: the kcat pipe did not finish within 300 s\n");
            stop_group(pid, 1000);
            goto out;
        }
        usleep(20000);
    }
    long long wall = sy_time_mono_ms() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "bench_router: the kcat pipe failed (status %d)\n", status);
        goto out;
    }
    wait_count(&w, n, 60, NULL, NULL);
    cpu_sample_t cpu1;
    cpu_sample(w.cpu_pid, &cpu1);
    usleep(500000); /* anything beyond n would show up now */
    pthread_mutex_lock(&w.lock);
    cpu_sample_t cpu0 = w.cpu0;
    long count0 = w.count0;
    long got = w.tp_count, dups = w.tp_dups;
    long long ms = w.tp_last_wall_ms - w.tp_first_ts_ms;
    pthread_mutex_unlock(&w.lock);
    if (got != n || dups) {
        fprintf(stderr, "bench_router: the kcat pipe moved %ld of %ld records (and %ld twice)\n",
                got, n, dups);
        goto out;
    }
    *per_s = (double)n * 1000.0 / (double)(ms > 0 ? ms : 1);
    fprintf(stderr,
            "bench_router: kcat moved %ld records in %lld ms: %.0f/s (the pipe ran %lld ms)\n", n,
            ms, *per_s, wall);
    if (count0 > 0)
        cpu_report("moved record", &cpu0, &cpu1, n - count0);
    rc = 0;
out:
    watcher_stop(&w, th);
    return rc;
}

typedef struct bench {
    const sy_config_t *conf;
    sy_codec_t *codec;
    const char *router_bin, *log;
    char t_requests[256], t_status[256];
} bench_t;

/* Produces n requests "<prefix><i>" to <ns>.requests, paced at rate per second (0: at once),
 * with linger.ms=0; sent (if given) gets each one's send time (mono µs). */
static int send_requests(bench_t *b, const char *prefix, long n, long rate, double *sent)
{
    sy_err_t err = SY_ERR_INIT;
    sy_kafka_opts_t o = {.linger_ms = "0"};
    rd_kafka_t *p = sy_kafka_new(b->conf, SY_KAFKA_IDEMPOTENT_PRODUCER, &o, &err);
    avro_value_t v = {NULL, NULL};
    record_t r = {0};
    int rc = -1;
    if (!p || sy_codec_value_new(b->codec, SY_TYPE_JOB_REQUEST, &v, &err) != SY_OK) {
        fprintf(stderr, "bench_router: %s\n", err.msg);
        goto out;
    }
    double step = rate > 0 ? 1e6 / (double)rate : 0, t0 = mono_us();
    for (long i = 0; i < n; i++) {
        char id[160];
        snprintf(id, sizeof(id), "%s%ld", prefix, i);
        double due = t0 + (double)i * step, now = mono_us();
        if (due > now)
            usleep((useconds_t)(due - now));
        if (sent)
            sent[i] = mono_us();
        if (make_record(b->codec, b->t_requests, &v, id, &r, &err)) {
            fprintf(stderr, "bench_router: %s\n", err.msg);
            goto out;
        }
        rd_kafka_resp_err_t e =
            rd_kafka_producev(p, RD_KAFKA_V_TOPIC(b->t_requests), RD_KAFKA_V_KEY(id, strlen(id)),
                              RD_KAFKA_V_VALUE(r.val, r.len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e) {
            fprintf(stderr, "bench_router: produce: %s\n", rd_kafka_err2str(e));
            goto out;
        }
        rd_kafka_poll(p, 0);
    }
    if (rd_kafka_flush(p, 30000)) {
        fprintf(stderr, "bench_router: requests not acknowledged within 30 s\n");
        goto out;
    }
    rc = 0;
out:
    free(r.val);
    if (v.iface)
        avro_value_decref(&v);
    if (p)
        rd_kafka_destroy(p);
    return rc;
}

/* Starts the router and waits until w has counted n RESOLVED throughput requests. A router's
 * first start in a new namespace may exit while topics propagate: it gets up to three starts.
 * Returns the running router's pid (*started: when it was started, epoch ms), or -1. */
static pid_t run_router(bench_t *b, watcher_t *w, long n, long long *started)
{
    char *argv[] = {(char *)b->router_bin, NULL};
    for (int attempt = 1;; attempt++) {
        *started = sy_time_wall_ms();
        pid_t router = spawn(argv, b->log);
        if (router < 0)
            return -1;
        pthread_mutex_lock(&w->lock);
        w->cpu_pid[0] = router;
        w->cpu_pid[1] = broker_pid();
        pthread_mutex_unlock(&w->lock);
        if (wait_count(w, n, 900, alive, &router))
            return router;
        pthread_mutex_lock(&w->lock);
        long got = w->tp_count;
        pthread_mutex_unlock(&w->lock);
        bool died = !alive(&router);
        if (!died)
            stop_group(router, 10000);
        if (got || !died || attempt == 3) {
            fprintf(stderr, "bench_router: the router %s after routing %ld of %ld (see %s)\n",
                    died ? "exited" : "did not finish", got, n, b->log);
            return -1;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Warm-up: a first router routes a few requests, so that the cluster topics, the changelog and
 * the schema ids exist (once per deployment, not per run), then stops. */
static int warm_up(bench_t *b, const char *prefix, long n)
{
    watcher_t w = {
        .conf = b->conf, .codec = b->codec, .from_end = true, .resolved = true, .n_tp = n};
    snprintf(w.topic, sizeof(w.topic), "%s", b->t_status);
    snprintf(w.tp_prefix, sizeof(w.tp_prefix), "%s", prefix);
    pthread_t th;
    long long started;
    int rc = -1;
    if (watcher_start(&w, &th))
        return -1;
    if (send_requests(b, prefix, n, 0, NULL) == 0) {
        pid_t router = run_router(b, &w, n, &started);
        if (router > 0) {
            fprintf(stderr, "bench_router: warm-up: %ld requests routed, %lld ms after the start\n",
                    n, sy_time_wall_ms() - started);
            stop_group(router, 15000);
            rc = 0;
        }
    }
    watcher_stop(&w, th);
    return rc;
}

/* One measured round: a new router routes the backlog of n requests "<tp_prefix><i>"; then,
 * when lat_prefix is given, the idle router gets n_lat + WARMUP requests at rate per second. */
static int measure(bench_t *b, const char *tp_prefix, long n, const char *lat_prefix, long n_lat,
                   long rate, double *per_s, double *p50, double *p99)
{
    if (!lat_prefix)
        lat_prefix = "", n_lat = 0;
    watcher_t w = {.conf = b->conf,
                   .codec = b->codec,
                   .from_end = true,
                   .resolved = true,
                   .n_tp = n,
                   .n_lat = n_lat + WARMUP};
    snprintf(w.topic, sizeof(w.topic), "%s", b->t_status);
    snprintf(w.tp_prefix, sizeof(w.tp_prefix), "%s", tp_prefix);
    snprintf(w.lat_prefix, sizeof(w.lat_prefix), "%s", lat_prefix);
    pthread_t th;
    pid_t router = -1;
    long long started;
    int rc = -1;
    double *sent = calloc((size_t)w.n_lat, sizeof(double));
    w.lat_us = calloc((size_t)w.n_lat, sizeof(double));
    w.lat_in_ms = calloc((size_t)w.n_lat, sizeof(double));
    if (!sent || !w.lat_us || !w.lat_in_ms || watcher_start(&w, &th)) {
        free(sent);
        free(w.lat_us);
        free(w.lat_in_ms);
        return -1;
    }
    if ((router = run_router(b, &w, n, &started)) < 0)
        goto out;
    pthread_mutex_lock(&w.lock);
    long long ms = w.tp_last_wall_ms - w.tp_first_ts_ms;
    long long startup = w.tp_first_ts_ms - started;
    cpu_sample_t cpu0 = w.cpu0, cpu1;
    long count0 = w.count0;
    pthread_mutex_unlock(&w.lock);
    cpu_sample(w.cpu_pid, &cpu1);
    *per_s = (double)n * 1000.0 / (double)(ms > 0 ? ms : 1);
    fprintf(stderr,
            "bench_router: the router routed %ld requests in %lld ms: %.0f/s (its first RESOLVED "
            "%lld ms after its start)\n",
            n, ms, *per_s, startup);
    if (count0 > 0)
        cpu_report("routed request", &cpu0, &cpu1, n - count0);
    if (!n_lat)
        goto check;
    if (send_requests(b, lat_prefix, w.n_lat, rate, sent))
        goto out;
    long long until = sy_time_mono_ms() + 60000;
    for (long got = 0; got < w.n_lat && sy_time_mono_ms() < until && alive(&router);) {
        usleep(20000);
        pthread_mutex_lock(&w.lock);
        got = w.lat_count;
        pthread_mutex_unlock(&w.lock);
    }
    pthread_mutex_lock(&w.lock);
    long k = 0;
    for (long i = WARMUP; i < w.n_lat; i++)
        if (w.lat_us[i] > 0) {
            w.lat_in_ms[k] = w.lat_in_ms[i];
            sent[k++] = (w.lat_us[i] - sent[i]) / 1000.0;
        }
    pthread_mutex_unlock(&w.lock);
    if (k < n_lat) {
        fprintf(stderr, "bench_router: only %ld of %ld latency requests RESOLVED within 60 s\n", k,
                n_lat);
        goto out;
    }
    qsort(sent, (size_t)k, sizeof(double), cmp_double);
    qsort(w.lat_in_ms, (size_t)k, sizeof(double), cmp_double);
    *p50 = sent[(k - 1) / 2];
    *p99 = sent[(long)((double)(k - 1) * 0.99)];
    /* where the time goes: until the router built the RESOLVED event (produce, fetch, batch
     * wait, routing: its emitted_at - submitted_at), and after (commit, the reader's fetch) */
    fprintf(stderr,
            "bench_router: latency over %ld requests at %ld/s: p50 %.1f ms, p99 %.1f ms; of which "
            "until the RESOLVED event was built: p50 %.0f ms, p99 %.0f ms\n",
            k, rate, *p50, *p99, w.lat_in_ms[(k - 1) / 2],
            w.lat_in_ms[(long)((double)(k - 1) * 0.99)]);
check:
    pthread_mutex_lock(&w.lock);
    long dups = w.tp_dups;
    pthread_mutex_unlock(&w.lock);
    if (dups) {
        fprintf(stderr, "bench_router: %ld requests RESOLVED more than once\n", dups);
        goto out;
    }
    rc = 0;
out:
    if (router > 0)
        stop_group(router, 15000);
    watcher_stop(&w, th);
    free(sent);
    free(w.lat_us);
    free(w.lat_in_ms);
    return rc;
}

/* Creates topic (when missing) and waits until the broker's metadata shows it: a topic just
 * created may be unknown to the next request for a moment. */
static int make_topic(const sy_config_t *conf, rd_kafka_t *rk, const char *topic)
{
    sy_err_t err = SY_ERR_INIT;
    int tmo = (int)sy_config_get_int(conf, "broker.timeout.ms");
    if (sy_kafka_ensure_topic(rk, topic, (int)sy_config_get_int(conf, "topic.partitions"),
                              (int)sy_config_get_int(conf, "topic.replication.factor"), tmo,
                              &err) == SY_OK)
        for (int i = 0; i < 100; i++) {
            if (sy_kafka_partition_count(rk, topic, tmo, &err) > 0)
                return 0;
            usleep(100000);
        }
    fprintf(stderr, "bench_router: %s\n", err.msg);
    return -1;
}

static double best(const double *v, long n)
{
    double b = v[0];
    for (long i = 1; i < n; i++)
        b = v[i] > b ? v[i] : b;
    return b;
}

/* Encodes n requests "<prefix><i>" and loads them into <ns>.requests (the router's backlog) and
 * into kcat_in (the baseline's), the same records with the same keys. */
static int load_backlog(bench_t *b, const char *prefix, long n, const char *kcat_in)
{
    sy_err_t err = SY_ERR_INIT;
    avro_value_t v = {NULL, NULL};
    record_t *recs = calloc((size_t)n, sizeof(*recs));
    int rc = -1;
    if (!recs || sy_codec_value_new(b->codec, SY_TYPE_JOB_REQUEST, &v, &err) != SY_OK) {
        fprintf(stderr, "bench_router: %s\n", recs ? err.msg : "out of memory");
        goto out;
    }
    for (long i = 0; i < n; i++) {
        char id[160];
        snprintf(id, sizeof(id), "%s%ld", prefix, i);
        if (make_record(b->codec, b->t_requests, &v, id, &recs[i], &err)) {
            fprintf(stderr, "bench_router: %s\n", err.msg);
            goto out;
        }
    }
    if (load(b->conf, b->t_requests, recs, n) || load(b->conf, kcat_in, recs, n))
        goto out;
    rc = 0;
out:
    for (long i = 0; recs && i < n; i++)
        free(recs[i].val);
    free(recs);
    if (v.iface)
        avro_value_decref(&v);
    return rc;
}

#define MAX_ROUNDS 9

int main(int argc, char **argv)
{
    sy_err_t err = SY_ERR_INIT;
    sy_config_t *conf = sy_config_new();
    bench_t b = {.conf = conf};
    rd_kafka_t *admin = NULL;
    int rc = 1;
    long n = env_long("BENCH_ROUTER_JOBS", 100000);
    long rounds = env_long("BENCH_ROUTER_ROUNDS", 3);
    long n_lat = env_long("BENCH_ROUTER_LATENCY_JOBS", 1000);
    long rate = env_long("BENCH_ROUTER_RATE", 100);
    double router[MAX_ROUNDS], kcat[MAX_ROUNDS], p50 = 0, p99 = 0;
    char run[32], prefix[64], lat_prefix[64];
    if (argc != 3) {
        fprintf(stderr, "usage: bench_router ROUTER_BINARY ROUTER_LOG\n");
        return 2;
    }
    if (n < 1 || rounds < 1 || rounds > MAX_ROUNDS || n_lat < 1) {
        fprintf(stderr,
                "bench_router: BENCH_ROUTER_JOBS and BENCH_ROUTER_LATENCY_JOBS must be "
                ">= 1, BENCH_ROUTER_ROUNDS 1-%d\n",
                MAX_ROUNDS);
        return 2;
    }
    b.router_bin = argv[1];
    b.log = argv[2];
    snprintf(run, sizeof(run), "%lx", (unsigned long)time(NULL) ^ (unsigned long)getpid());
    if (!conf || sy_config_load(conf, NULL, environ, NULL, 0, &err) != SY_OK) {
        fprintf(stderr, "bench_router: %s\n", err.msg);
        goto out;
    }
    sy_log_set_level(SY_LOG_WARN);
    sy_kafka_topic(conf, "requests", b.t_requests, sizeof(b.t_requests));
    sy_kafka_topic(conf, "status", b.t_status, sizeof(b.t_status));
    /* the topics the watchers and the backlog need before a router makes the rest */
    if (!(b.codec = sy_codec_new(conf, &err)) ||
        !(admin = sy_kafka_new(conf, SY_KAFKA_PRODUCER, NULL, &err))) {
        fprintf(stderr, "bench_router: %s\n", err.msg);
        goto out;
    }
    if (make_topic(conf, admin, b.t_requests) || make_topic(conf, admin, b.t_status))
        goto out;
    snprintf(prefix, sizeof(prefix), "rw-%s-", run);
    if (warm_up(&b, prefix, 100))
        goto out;

    /* rounds of: a fresh backlog, the kcat baseline over it, a new router over it. The best
     * round of each counts: whatever else runs on the machine can only slow a round down, so
     * the fastest is the closest to what the software itself can do. */
    for (long k = 0; k < rounds; k++) {
        char kin[256], kout[256], s[64];
        snprintf(s, sizeof(s), "bench.kcat-in.%ld", k);
        sy_kafka_topic(conf, s, kin, sizeof(kin));
        snprintf(s, sizeof(s), "bench.kcat-out.%ld", k);
        sy_kafka_topic(conf, s, kout, sizeof(kout));
        snprintf(prefix, sizeof(prefix), "rb-%s-%ld-", run, k);
        snprintf(lat_prefix, sizeof(lat_prefix), "rl-%s-", run);
        bool last = k == rounds - 1;
        if (make_topic(conf, admin, kin) || make_topic(conf, admin, kout))
            goto out;
        fprintf(stderr, "bench_router: round %ld of %ld: %ld requests\n", k + 1, rounds, n);
        if (load_backlog(&b, prefix, n, kin) ||
            kcat_baseline(conf, b.codec, kin, kout, prefix, n, &kcat[k]) ||
            measure(&b, prefix, n, last ? lat_prefix : NULL, n_lat, rate, &router[k], &p50, &p99))
            goto out;
    }
    double router_per_s = best(router, rounds), kcat_per_s = best(kcat, rounds);
    printf("bench router_routed_per_s %.0f req/s\n", router_per_s);
    printf("bench router_kcat_per_s %.0f msg/s\n", kcat_per_s);
    printf("bench router_vs_kcat_ratio %.2f x\n", router_per_s / kcat_per_s);
    printf("bench router_resolve_p50_ms %.1f ms\n", p50);
    printf("bench router_resolve_p99_ms %.1f ms\n", p99);
    rc = 0;
out:
    if (admin)
        rd_kafka_destroy(admin);
    sy_codec_destroy(b.codec);
    sy_config_destroy(conf);
    return rc;
}
