/* Unit tests of the local driver with real child processes (no network): success, arguments
 * and environment, non-zero exit, signals, exec failures, kill with and without the grace
 * period, process-group cleanup, a lot of output fast (no loss, chunks ≤ 64 KiB, offsets
 * contiguous), back-pressure (nothing read while the sink is full), takeover (WORKER_LOST). */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sy_config.h"
#include "sy_driver.h"
#include "sy_job.h"
#include "sy_test.h"

/* What the sink saw. */
typedef struct sink {
    char text[2][8192]; /* the start of stdout / stderr */
    long long bytes[2];
    unsigned long long hash[2]; /* FNV-1a over every byte, in order */
    size_t chunks, max_chunk;
    bool gap;    /* a chunk did not start where the previous one ended */
    size_t room; /* what log_room answers */
} sink_t;

static void sink_log(void *opaque, sy_job_t *job, const char *stream, const void *data, size_t len)
{
    sink_t *s = opaque;
    int i = strcmp(stream, "stdout") ? 1 : 0;
    int slot = sy_ledger_logs_slot(&job->logs, stream);
    if (slot < 0 || job->logs.s[slot].offset != s->bytes[i])
        s->gap = true;
    if (slot >= 0)
        job->logs.s[slot].offset += (long long)len;
    size_t have = (size_t)s->bytes[i];
    if (have < sizeof(s->text[i]) - 1) {
        size_t n = len < sizeof(s->text[i]) - 1 - have ? len : sizeof(s->text[i]) - 1 - have;
        memcpy(s->text[i] + have, data, n);
    }
    for (size_t k = 0; k < len; k++) {
        s->hash[i] ^= ((const unsigned char *)data)[k];
        s->hash[i] *= 1099511628211ULL;
    }
    s->bytes[i] += (long long)len;
    s->chunks++;
    if (len > s->max_chunk)
        s->max_chunk = len;
}

static size_t sink_room(void *opaque, const sy_job_t *job)
{
    (void)job;
    return ((sink_t *)opaque)->room;
}

static void sink_reset(sink_t *s)
{
    memset(s, 0, sizeof(*s));
    s->hash[0] = s->hash[1] = 14695981039346656037ULL;
    s->room = (size_t)1 << 30;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sy_config_t *conf;
static sink_t sink;
static int wake_fd;
static char workdir[256];

static void *open_driver(void)
{
    sy_driver_host_t host = {.conf = conf,
                             .cluster_name = "local-test",
                             .wake_fd = wake_fd,
                             .log = sink_log,
                             .log_room = sink_room,
                             .opaque = &sink};
    sy_err_t err = SY_ERR_INIT;
    void *d = sy_driver_local.open(&host, &err);
    if (!d)
        fprintf(stderr, "open: %s\n", err.msg);
    return d;
}

/* A job running spec_json (the local spec) with optional arguments. */
static sy_job_t *make_job(const char *id, const char *spec_json)
{
    sy_job_t *job = sy_job_new(id);
    job->cluster_name = strdup("local-test");
    job->backend_kind = strdup("local");
    job->command_spec = strdup(spec_json);
    return job;
}

/* Polls until the job ends or ms pass; true if it ended. */
static bool run(void *d, sy_job_t *job, long long ms)
{
    long long until = mono_ms() + ms;
    sy_err_t err = SY_ERR_INIT;
    while (job->phase != SY_PHASE_ENDED && mono_ms() < until)
        sy_driver_local.poll(d, &job, 1, 100, &err);
    return job->phase == SY_PHASE_ENDED;
}

static bool submit(void *d, sy_job_t *job, sy_err_t *err)
{
    sink_reset(&sink);
    return sy_driver_local.submit(d, job, err) == SY_OK;
}

static bool dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_success(void *d)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job = make_job("ok-1", "{\"argv\": [\"/bin/echo\", \"hello\"]}");
    sy_job_add_arg(job, "world", &err);
    CHECK(submit(d, job, &err));
    CHECK(job->phase == SY_PHASE_RUNNING);
    char host[128] = "";
    int pid = 0;
    unsigned long long start = 0;
    CHECK(sscanf(job->backend_id, "%127[^:]:%d:%llu", host, &pid, &start) == 3);
    CHECK(pid > 0 && start > 0);
    CHECK(run(d, job, 10000));
    CHECK(job->outcome == SY_JOB_SUCCEEDED);
    CHECK(job->has_exit_code && job->exit_code == 0);
    CHECK_STR(sink.text[0], "hello world\n");
    CHECK(sink.bytes[1] == 0);
    CHECK(sy_ledger_logs_get(&job->logs, "stdout") == 12);
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/ok-1.1", workdir);
    CHECK(dir_exists(dir)); /* kept until the runner lets go of the job */
    sy_driver_local.forget(d, job);
    CHECK(!dir_exists(dir));
    sy_job_destroy(job);
}

static void test_environment(void *d)
{
    sy_err_t err = SY_ERR_INIT;
    setenv("SY_TEST_WORKER_SECRET", "hunter2", 1);
    sy_job_t *job =
        make_job("env-1", "{\"argv\": [\"sh\", \"-c\", \"echo \\\"$FOO:$1:$SWITCHYARD_JOB_ID:"
                          "${SY_TEST_WORKER_SECRET:-none}\\\"; pwd; echo oops >&2; cat; "
                          "ls /proc/$$/fd | tr '\\\\n' ' '\", \"zero\"]}");
    sy_job_add_arg(job, "A B", &err);
    sy_job_add_env(job, "FOO", "bar", &err);
    CHECK(submit(d, job, &err));
    CHECK(run(d, job, 10000));
    CHECK(job->outcome == SY_JOB_SUCCEEDED);
    char want[1024];
    snprintf(want, sizeof(want), "bar:A B:env-1:none\n%s/env-1.1\n", workdir);
    CHECK(!strncmp(sink.text[0], want, strlen(want)));
    /* no descriptor of the worker leaks into the job: only 0, 1, 2 (and ls's own) */
    const char *fds = sink.text[0] + strlen(want);
    int n_fds = 0, high = 0;
    for (const char *p = fds; *p;) {
        int fd = atoi(p);
        n_fds++;
        if (fd > 3)
            high++;
        p = strchr(p, ' ');
        if (!p)
            break;
        p++;
    }
    CHECK(n_fds >= 3 && high == 0);
    if (high)
        fprintf(stderr, "  fds in the job: %s\n", fds);
    CHECK_STR(sink.text[1], "oops\n");
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);
    unsetenv("SY_TEST_WORKER_SECRET");
}

static void test_failures(void *d)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job = make_job("exit-3", "{\"argv\": [\"/bin/sh\", \"-c\", \"echo bye; exit 3\"]}");
    CHECK(submit(d, job, &err));
    CHECK(run(d, job, 10000));
    CHECK(job->outcome == SY_JOB_FAILED);
    CHECK_STR(job->failure_reason, "NON_ZERO_EXIT");
    CHECK(job->has_exit_code && job->exit_code == 3);
    CHECK_STR(sink.text[0], "bye\n");
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);

    job = make_job("segv", "{\"argv\": [\"/bin/sh\", \"-c\", \"kill -SEGV $$\"]}");
    CHECK(submit(d, job, &err));
    CHECK(run(d, job, 10000));
    CHECK(job->outcome == SY_JOB_FAILED);
    CHECK_STR(job->failure_reason, "SIGNAL_11");
    CHECK(!job->has_exit_code);
    CHECK(strstr(job->message, "SIGSEGV") != NULL);
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);

    /* not executable / not found: a clear failure at submit, no process */
    job = make_job("noexec", "{\"argv\": [\"/nonexistent/prog\"]}");
    CHECK(!submit(d, job, &err));
    CHECK_STR(job->failure_reason, "EXEC_FAILED");
    CHECK(strstr(err.msg, "No such file") != NULL);
    CHECK(job->driver_data == NULL);
    sy_job_destroy(job);

    job = make_job("notfound", "{\"argv\": [\"no-such-program-xyz\"]}");
    CHECK(!submit(d, job, &err));
    CHECK(err.code == SY_ERR_NOT_FOUND && !err.retriable);
    CHECK_STR(job->failure_reason, "EXEC_FAILED");
    sy_job_destroy(job);

    job = make_job("badspec", "{\"args\": [\"x\"]}");
    CHECK(!submit(d, job, &err));
    CHECK(err.code == SY_ERR_INVALID_ARG);
    CHECK_STR(job->failure_reason, "INVALID_SPEC");
    sy_job_destroy(job);

    job = make_job("../evil", "{\"argv\": [\"/bin/true\"]}");
    job->job_id[2] = '/'; /* the router never lets this through; the driver checks anyway */
    CHECK(!submit(d, job, &err));
    sy_job_destroy(job);
}

static void test_kill(void *d, long long grace_ms)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job = make_job("sleeper", "{\"argv\": [\"/bin/sleep\", \"30\"]}");
    CHECK(submit(d, job, &err));
    run(d, job, 200);
    CHECK(job->phase == SY_PHASE_RUNNING);
    long long t0 = mono_ms();
    CHECK(sy_driver_local.cancel(d, job, &err) == SY_OK);
    CHECK(run(d, job, 5000));
    CHECK(job->outcome == SY_JOB_KILLED);
    CHECK(strstr(job->message, "SIGTERM") != NULL);
    CHECK(mono_ms() - t0 < 2000);
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);

    /* ignores SIGTERM: SIGKILL after the grace period */
    job = make_job("stubborn", "{\"argv\": [\"/bin/sh\", \"-c\", \"trap '' TERM; echo ready; "
                               "while :; do sleep 0.05; done\"]}");
    CHECK(submit(d, job, &err));
    long long until = mono_ms() + 5000;
    while (!sink.bytes[0] && mono_ms() < until)
        sy_driver_local.poll(d, &job, 1, 50, &err);
    t0 = mono_ms();
    sy_driver_local.cancel(d, job, &err);
    CHECK(run(d, job, grace_ms + 5000));
    long long took = mono_ms() - t0;
    CHECK(job->outcome == SY_JOB_KILLED);
    CHECK(strstr(job->message, "SIGKILL") && strstr(job->message, "grace"));
    CHECK(took >= grace_ms - 50 && took < grace_ms + 3000);
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);
}

/* What a job leaves running in its process group is stopped when its main process exits. */
static void test_group_cleanup(void *d)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job = make_job("bg", "{\"argv\": [\"/bin/sh\", \"-c\", "
                                   "\"sleep 60 >/dev/null 2>&1 & echo $!\"]}");
    CHECK(submit(d, job, &err));
    CHECK(run(d, job, 10000));
    CHECK(job->outcome == SY_JOB_SUCCEEDED);
    int bg = atoi(sink.text[0]);
    CHECK(bg > 0);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", bg);
    long long until = mono_ms() + 3000;
    bool gone = false;
    while (!gone && mono_ms() < until) {
        FILE *f = fopen(path, "r");
        char buf[512] = "";
        if (f) {
            if (!fgets(buf, sizeof(buf), f))
                buf[0] = '\0';
            fclose(f);
        }
        /* gone, or a zombie waiting for its (init) parent */
        const char *st = strrchr(buf, ')');
        gone = !f || (st && st[2] == 'Z');
        if (!gone)
            usleep(20000);
    }
    CHECK(gone);
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);
}

static unsigned long long fnv_seq(long n, long long *bytes)
{
    unsigned long long h = 14695981039346656037ULL;
    char line[32];
    *bytes = 0;
    for (long i = 1; i <= n; i++) {
        int len = snprintf(line, sizeof(line), "%ld\n", i);
        for (int k = 0; k < len; k++) {
            h ^= (unsigned char)line[k];
            h *= 1099511628211ULL;
        }
        *bytes += len;
    }
    return h;
}

/* A lot of output, fast: every byte arrives, in order, in chunks of at most 64 KiB. */
static void test_big_output(void *d)
{
    sy_err_t err = SY_ERR_INIT;
    const long n = 3000000; /* ~22 MB */
    char spec[256];
    snprintf(spec, sizeof(spec), "{\"argv\": [\"/bin/sh\", \"-c\", \"seq 1 %ld; seq 1 1000 >&2\"]}",
             n);
    sy_job_t *job = make_job("big", spec);
    CHECK(submit(d, job, &err));
    CHECK(run(d, job, 60000));
    CHECK(job->outcome == SY_JOB_SUCCEEDED);
    long long want_bytes, err_bytes;
    unsigned long long want = fnv_seq(n, &want_bytes), want_err = fnv_seq(1000, &err_bytes);
    CHECK(sink.bytes[0] == want_bytes);
    CHECK(sink.hash[0] == want);
    CHECK(sink.bytes[1] == err_bytes && sink.hash[1] == want_err);
    CHECK(sink.max_chunk <= SY_DRIVER_CHUNK_MAX);
    CHECK(!sink.gap);
    CHECK(sink.chunks >= (size_t)(want_bytes / SY_DRIVER_CHUNK_MAX));
    fprintf(stderr, "  big output: %lld bytes in %zu chunks\n", sink.bytes[0], sink.chunks);
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);
}

/* While the sink is full nothing is read, so the job blocks on its pipe; once there is room
 * again everything arrives. */
static void test_backpressure(void *d)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job =
        make_job("bp", "{\"argv\": [\"/bin/sh\", \"-c\", \"head -c 10000000 /dev/zero\"]}");
    CHECK(submit(d, job, &err));
    sink.room = 0;
    long long until = mono_ms() + 1000;
    while (mono_ms() < until)
        sy_driver_local.poll(d, &job, 1, 100, &err);
    CHECK(job->phase == SY_PHASE_RUNNING);
    CHECK(sink.bytes[0] == 0);
    sink.room = (size_t)1 << 30;
    CHECK(run(d, job, 30000));
    CHECK(job->outcome == SY_JOB_SUCCEEDED);
    CHECK(sink.bytes[0] == 10000000);
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);
}

/* A job taken over from a dead worker: not re-run, FAILED with WORKER_LOST. */
static void test_resume(void *d)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job = make_job("lost", "{\"argv\": [\"/bin/true\"]}");
    snprintf(job->backend_id, sizeof(job->backend_id), "otherhost:1234:5678");
    CHECK(sy_driver_local.resume(d, job, &err) == SY_OK);
    CHECK(job->phase == SY_PHASE_ENDED && job->outcome == SY_JOB_FAILED);
    CHECK_STR(job->failure_reason, "WORKER_LOST");
    sy_driver_local.forget(d, job);
    sy_job_destroy(job);
}

/* forget() on a running job stops it and removes its directory. */
static void test_forget_running(void *d)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job = make_job("forgotten", "{\"argv\": [\"/bin/sleep\", \"30\"]}");
    CHECK(submit(d, job, &err));
    int pid = 0;
    sscanf(strchr(job->backend_id, ':') + 1, "%d", &pid);
    sy_driver_local.forget(d, job);
    CHECK(job->driver_data == NULL);
    CHECK(kill(pid, 0) < 0);
    sy_job_destroy(job);
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    conf = sy_config_new();
    snprintf(workdir, sizeof(workdir), "/tmp/sy-test-local-%d", (int)getpid());
    CHECK(sy_config_set(conf, "worker.local.workdir", workdir, &err) == SY_OK);
    CHECK(sy_config_set(conf, "worker.kill.grace.ms", "600", &err) == SY_OK);
    CHECK(sy_config_set(conf, "worker.log.flush.ms", "20", &err) == SY_OK);
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN); /* as the worker does: the child must not inherit it */
    void *d = open_driver();
    CHECK(d != NULL);
    if (d) {
        test_success(d);
        test_environment(d);
        test_failures(d);
        test_kill(d, 600);
        test_group_cleanup(d);
        test_big_output(d);
        test_backpressure(d);
        test_resume(d);
        test_forget_running(d);
        sy_driver_local.close(d);
    }
    CHECK(sy_driver_local.worker_limit(conf) >= 2);
    rmdir(workdir);
    close(wake_fd);
    sy_config_destroy(conf);
    SY_TEST_DONE();
}
