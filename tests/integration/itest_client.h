/* itest_client: what the client's integration tests share — a scratch topic namespace and
 * database with a registry (one local cluster, one command), the real router as a child process,
 * a fake worker (a thread that plays the worker's side of the protocol: consumes RoutedJobs and
 * JobControl kills, publishes JobStatus and JobLog events as the docs say a worker does), and the
 * switchyard CLI run as a child process with stdout and stderr captured in files.
 *
 * The fake worker lets the client be tested against the documented protocol while the real
 * worker is being written; itest_client_e2e.sh runs the same flows through the real one.
 * Jobs tell the fake worker what to do through their arguments:
 *   ok [N]          N (default 5) stdout lines "line <i>", one stderr line, SUCCEEDED exit 0;
 *                   the second stdout chunk is published twice (a follower must drop it)
 *   fail            two stdout lines, FAILED exit_code 3
 *   hang            RUNNING until a KILL arrives on <ns>.control, then KILLED
 *   slow MS [N]     N (default 5) lines spread over MS milliseconds, then SUCCEEDED */
#ifndef ITEST_CLIENT_H
#define ITEST_CLIENT_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sy_time.h"
#include "sy_avro.h"
#include "sy_client.h"
#include "sy_codec.h"
#include "sy_config.h"
#include "sy_db.h"
#include "sy_kafka.h"
#include "sy_registry.h"
#include "sy_test.h"

extern char **environ;

#define ITC_PARTITIONS 3
#define ITC_CLUSTER    "local1"

static inline long long itc_ms(void)
{
    return sy_time_mono_ms();
}

static inline void itc_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The whole file, NUL-terminated (caller frees); "" when missing. */
static inline char *itc_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (f) {
        char tmp[4096];
        size_t n;
        while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
            if (len + n + 1 > cap) {
                cap = (len + n + 1) * 2;
                buf = realloc(buf, cap);
            }
            memcpy(buf + len, tmp, n);
            len += n;
        }
        fclose(f);
    }
    if (!buf)
        buf = calloc(1, 1);
    else
        buf[len] = '\0';
    return buf;
}

static inline bool itc_file_has(const char *path, const char *text)
{
    char *s = itc_slurp(path);
    bool has = strstr(s, text) != NULL;
    free(s);
    return has;
}

static inline bool itc_wait_file_has(const char *path, const char *text, long timeout_ms)
{
    long long until = itc_ms() + timeout_ms;
    while (itc_ms() < until) {
        if (itc_file_has(path, text))
            return true;
        itc_sleep_ms(100);
    }
    return false;
}

/* ---- environment ---------------------------------------------------------------------------- */

typedef struct itc_env {
    char name[32];
    char ns[64], db[64];
    char bin[PATH_MAX], dir[PATH_MAX];
    char *db_url;
    sy_config_t *conf;
    rd_kafka_t *admin; /* a producer, for topic creation and test records */
    sy_codec_t *codec;
    pid_t router;
    char router_log[PATH_MAX + 32];
} itc_env_t;

/* SWITCHYARD_DATABASE_URL with its database replaced by db (malloc'd). */
static inline char *itc_db_url(const char *url, const char *db)
{
    const char *scheme = strstr(url, "://");
    const char *path = scheme ? strchr(scheme + 3, '/') : NULL;
    const char *query = path ? strchr(path, '?') : NULL;
    size_t n = strlen(url) + strlen(db) + 2;
    char *out = malloc(n);
    if (!path)
        snprintf(out, n, "%s", url);
    else
        snprintf(out, n, "%.*s/%s%s", (int)(path - url), url, db, query ? query : "");
    return out;
}

/* Runs path with argv as a child whose stdout and stderr go to the files out and err (appended
 * when append), and that dies with the test (PR_SET_PDEATHSIG) even if the test is killed
 * before it cleans up. Only async-signal-safe calls between fork and exec. 0 on failure. */
static inline pid_t itc_fork_exec(const char *path, char *const argv[], const char *out,
                                  const char *err, bool append)
{
    int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        int o = open(out, flags, 0644), e = strcmp(out, err) ? open(err, flags, 0644) : o;
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        execve(path, argv, environ);
        _exit(127);
    }
    return pid;
}

static inline bool itc_spawn_router(itc_env_t *e)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/switchyard-router", e->bin);
    char *argv[] = {path, NULL};
    return (e->router = itc_fork_exec(path, argv, e->router_log, e->router_log, true)) > 0;
}

/* Starts the router and waits until it owns the requests partitions. A router that exits
 * instead (e.g. racing a topic's metadata at its first start) fails the test. */
static inline bool itc_start_router(itc_env_t *e)
{
    if (!itc_spawn_router(e))
        return false;
    long long until = itc_ms() + 60000;
    while (itc_ms() < until) {
        int st;
        if (waitpid(e->router, &st, WNOHANG) == e->router) {
            e->router = 0;
            break;
        }
        if (itc_file_has(e->router_log, "assigned "))
            return true;
        itc_sleep_ms(200);
    }
    if (e->router) {
        kill(e->router, SIGKILL);
        waitpid(e->router, NULL, 0);
        e->router = 0;
    }
    char *log = itc_slurp(e->router_log);
    fprintf(stderr, "router did not start; its log:\n%s\n", log);
    free(log);
    return false;
}

static inline void itc_stop_router(itc_env_t *e)
{
    if (e->router > 0) {
        kill(e->router, SIGTERM);
        waitpid(e->router, NULL, 0);
        e->router = 0;
    }
}

static inline bool itc_ensure_topics(itc_env_t *e)
{
    const char *suffixes[] = {"requests", "status",     "logs",
                              "control",  "deadletter", "cluster." ITC_CLUSTER};
    char topic[256];
    sy_err_t err = SY_ERR_INIT;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
        if (sy_kafka_ensure_topic(e->admin, sy_kafka_topic(e->conf, suffixes[i], topic, 256),
                                  ITC_PARTITIONS, -1, 10000, &err) != SY_OK) {
            fprintf(stderr, "ensure topic %s: %s\n", topic, err.msg);
            return false;
        }
    /* wait until the metadata shows them all */
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        long long until = itc_ms() + 20000;
        sy_kafka_topic(e->conf, suffixes[i], topic, sizeof(topic));
        while (sy_kafka_partition_count(e->admin, topic, 2000, &err) != ITC_PARTITIONS)
            if (itc_ms() > until)
                return false;
            else
                itc_sleep_ms(100);
    }
    return true;
}

/* Registry: cluster local1 (env:test, spark:3.5), command echo (type:echo), linked. */
static inline bool itc_setup_registry(itc_env_t *e)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *admin = NULL, *c = NULL;
    char sql[128];
    bool ok = false;
    const char *url = getenv("SWITCHYARD_DATABASE_URL");
    const char *ctags[] = {"env:test", "spark:3.5"}, *mtags[] = {"type:echo"};
    sy_cluster_input_t cl = SY_CLUSTER_INPUT_INIT;
    sy_command_input_t cmd = SY_COMMAND_INPUT_INIT;
    if (!url || sy_db_connect(url, 5, &admin, &err) != SY_OK)
        goto out;
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", e->db); /* our own name, not input */
    if (sy_db_exec(admin, sql, 0, NULL, NULL, &err) != SY_OK ||
        sy_db_connect_to(url, e->db, 5, &c, &err) != SY_OK ||
        sy_db_migrate(c, NULL, NULL, &err) != SY_OK)
        goto out;
    cl.name = ITC_CLUSTER;
    cl.backend_kind = "local";
    cl.tags = ctags;
    cl.n_tags = 2;
    cl.set_tags = true;
    cmd.name = "echo";
    cmd.spec_json = "{\"local\":{\"argv\":[\"/bin/echo\"]}}";
    cmd.tags = mtags;
    cmd.n_tags = 1;
    cmd.set_tags = true;
    if (sy_registry_cluster_add(c, &cl, NULL, &err) != SY_OK ||
        sy_registry_command_add(c, &cmd, NULL, &err) != SY_OK ||
        sy_registry_link(c, "echo", ITC_CLUSTER, NULL, &err) != SY_OK)
        goto out;
    ok = true;
out:
    if (!ok)
        fprintf(stderr, "registry setup: %s\n", err.msg);
    sy_db_close(c);
    sy_db_close(admin);
    return ok;
}

/* Everything up: namespace, database, topics, registry, router. name: a short test name. */
static inline bool itc_env_up(itc_env_t *e, const char *name)
{
    char exe[PATH_MAX];
    sy_err_t err = SY_ERR_INIT;
    unsigned r = (unsigned)getpid() ^ (unsigned)itc_ms();
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->ns, sizeof(e->ns), "tcli%s%08x", name, r);
    snprintf(e->db, sizeof(e->db), "sy_cli_%s_%08x", name, r);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(e->bin, sizeof(e->bin), "%.*s/../bin", (int)(sizeof(e->bin) - 8), exe);
    snprintf(e->dir, sizeof(e->dir), "/tmp/itest-client-%s-XXXXXX", name);
    if (!mkdtemp(e->dir))
        return false;
    snprintf(e->router_log, sizeof(e->router_log), "%s/router.log", e->dir);
    const char *url = getenv("SWITCHYARD_DATABASE_URL");
    if (!url || !getenv("SWITCHYARD_BOOTSTRAP_SERVERS")) {
        fprintf(stderr, "SWITCHYARD_BOOTSTRAP_SERVERS / SWITCHYARD_DATABASE_URL not set: run "
                        "under scripts/testenv\n");
        return false;
    }
    if (!itc_setup_registry(e))
        return false;
    e->db_url = itc_db_url(url, e->db);
    setenv("SWITCHYARD_TOPIC_NAMESPACE", e->ns, 1);
    setenv("SWITCHYARD_TOPIC_PARTITIONS", "3", 1);
    setenv("SWITCHYARD_DATABASE_URL", e->db_url, 1);
    setenv("SWITCHYARD_ROUTER_BATCH_MS", "5", 1);
    if (!(e->conf = sy_config_new()) ||
        sy_config_load(e->conf, NULL, environ, NULL, 0, &err) != SY_OK ||
        !(e->admin = sy_kafka_new(e->conf, SY_KAFKA_IDEMPOTENT_PRODUCER, NULL, &err)) ||
        !(e->codec = sy_codec_new(e->conf, &err))) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return false;
    }
    if (!itc_ensure_topics(e))
        return false;
    return itc_start_router(e);
}

static inline int itc_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Stops the router and frees everything; the scratch directory (CLI outputs, router log) is
 * removed when every check passed and kept for a post-mortem otherwise. */
static inline void itc_env_down(itc_env_t *e)
{
    itc_stop_router(e);
    if (e->admin) {
        rd_kafka_flush(e->admin, 5000);
        rd_kafka_destroy(e->admin);
    }
    sy_codec_destroy(e->codec);
    sy_config_destroy(e->conf);
    free(e->db_url);
    if (sy_test_failures == 0 && e->dir[0])
        nftw(e->dir, itc_rm, 16, FTW_DEPTH | FTW_PHYS);
    else if (e->dir[0])
        fprintf(stderr, "outputs kept in %s\n", e->dir);
}

static inline const char *itc_topic(itc_env_t *e, const char *suffix, char *buf)
{
    return sy_kafka_topic(e->conf, suffix, buf, 256);
}

/* Encodes v (type) and produces it to topic[partition] (RD_KAFKA_PARTITION_UA = by key). */
static inline bool itc_produce(itc_env_t *e, rd_kafka_t *rk, sy_type_t type, const char *topic,
                               int32_t partition, const char *key, avro_value_t *v)
{
    void *buf = NULL;
    size_t len = 0;
    sy_err_t err = SY_ERR_INIT;
    if (sy_codec_encode(e->codec, type, topic, v, &buf, &len, &err) != SY_OK) {
        fprintf(stderr, "encode: %s\n", err.msg);
        return false;
    }
    rd_kafka_resp_err_t ke =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
    if (ke) {
        free(buf);
        fprintf(stderr, "produce: %s\n", rd_kafka_err2str(ke));
        return false;
    }
    return true;
}

/* Every record of topic (all partitions, committed only) whose key is key, decoded as type,
 * read until `want` were found or timeout_ms passed. Returns how many were found. */
static inline int itc_count_records(itc_env_t *e, const char *topic, const char *key, int want,
                                    long timeout_ms)
{
    sy_err_t err = SY_ERR_INIT;
    sy_kafka_opts_t o = {.group_id = "itc-reader", .read_committed = true, .partition_eof = true};
    rd_kafka_t *rk = sy_kafka_new(e->conf, SY_KAFKA_CONSUMER, &o, &err);
    int n = sy_kafka_partition_count(rk, topic, 5000, &err), found = 0, eofs = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    long long until = itc_ms() + timeout_ms;
    while (itc_ms() < until && (found < want || eofs < n)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eofs++;
        else if (!m->err && m->key_len == strlen(key) && !memcmp(m->key, key, m->key_len))
            found++;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return found;
}

/* ---- the fake worker ---------------------------------------------------------------------- */

#define ITC_MAX_JOBS 128

typedef struct itc_job {
    char id[SY_CLIENT_JOB_ID_MAX + 1];
    char cluster[64], command[64];
    long long submitted_at;
    int runs;  /* RoutedJobs received for this id */
    int kills; /* KILLs received */
    char kill_reason[256];
    char mode[16];
    int lines, next_line;
    long long next_at; /* when the next line is due (slow) */
    long step_ms;
    long long seq;
    long long off[2]; /* bytes published per stream */
    bool running, done;
} itc_job_t;

typedef struct itc_worker {
    itc_env_t *env;
    pthread_t thread;
    volatile int stop;
    rd_kafka_t *consumer, *producer;
    avro_value_t routed, ctl, st, lg;
    pthread_mutex_t lock;
    itc_job_t jobs[ITC_MAX_JOBS];
    int n_jobs;
} itc_worker_t;

static inline itc_job_t *itc_job_find(itc_worker_t *w, const char *id)
{
    for (int i = 0; i < w->n_jobs; i++)
        if (!strcmp(w->jobs[i].id, id))
            return &w->jobs[i];
    return NULL;
}

static inline void itc_emit_status(itc_worker_t *w, itc_job_t *j, const char *state, int exit_code,
                                   const char *message)
{
    char topic[256];
    avro_value_t *v = &w->st;
    avro_value_reset(v);
    sy_avro_set_string(v, "job_id", j->id);
    sy_avro_set_long(v, "seq", ++j->seq);
    sy_avro_set_enum(v, "status", state);
    sy_avro_set_string(v, "cluster", j->cluster);
    sy_avro_set_string(v, "command", j->command);
    sy_avro_set_string(v, "backend_id", "fake-1");
    sy_avro_set_string(v, "message", message);
    sy_avro_set_int(v, "attempt", 1);
    sy_avro_set_long(v, "emitted_at", sy_time_wall_ms());
    sy_avro_set_long(v, "submitted_at", j->submitted_at);
    if (exit_code >= 0)
        sy_avro_set_int(v, "exit_code", exit_code);
    else
        sy_avro_set_null(v, "exit_code");
    sy_avro_set_string(v, "failure_reason", exit_code > 0 ? "EXIT_CODE" : NULL);
    sy_avro_set_string(v, "log_uri", NULL);
    sy_avro_set_string(v, "emitter", "itest-fake-worker");
    /* a worker publishes a job's logs before its terminal status */
    if (sy_client_state_terminal(state))
        rd_kafka_flush(w->producer, 10000);
    itc_produce(w->env, w->producer, SY_TYPE_JOB_STATUS, itc_topic(w->env, "status", topic),
                RD_KAFKA_PARTITION_UA, j->id, v);
    rd_kafka_poll(w->producer, 0);
}

static inline void itc_emit_log(itc_worker_t *w, itc_job_t *j, int stream, const char *text,
                                long long offset)
{
    char topic[256];
    avro_value_t *v = &w->lg;
    avro_value_reset(v);
    sy_avro_set_string(v, "job_id", j->id);
    sy_avro_set_string(v, "stream", stream ? "stderr" : "stdout");
    sy_avro_set_long(v, "offset", offset);
    sy_avro_set_bytes(v, "chunk", text, strlen(text));
    sy_avro_set_int(v, "attempt", 1);
    sy_avro_set_long(v, "emitted_at", sy_time_wall_ms());
    itc_produce(w->env, w->producer, SY_TYPE_JOB_LOG, itc_topic(w->env, "logs", topic),
                RD_KAFKA_PARTITION_UA, j->id, v);
}

static inline void itc_line(itc_worker_t *w, itc_job_t *j)
{
    char line[64];
    snprintf(line, sizeof(line), "line %d\n", ++j->next_line);
    long long at = j->off[0];
    itc_emit_log(w, j, 0, line, at);
    j->off[0] += (long long)strlen(line);
    if (!strcmp(j->mode, "ok") && j->next_line == 3) { /* chunk 2 again: a duplicate */
        snprintf(line, sizeof(line), "line %d\n", 2);
        itc_emit_log(w, j, 0, line, (long long)strlen("line 1\n"));
    }
}

static inline void itc_on_routed(itc_worker_t *w, const rd_kafka_message_t *m)
{
    sy_err_t err = SY_ERR_INIT;
    if (sy_codec_decode(w->env->codec, SY_TYPE_ROUTED_JOB, m->payload, m->len, &w->routed, &err) !=
        SY_OK) {
        fprintf(stderr, "fake worker: RoutedJob: %s\n", err.msg);
        return;
    }
    const char *id = sy_avro_get_string(&w->routed, "job_id");
    pthread_mutex_lock(&w->lock);
    itc_job_t *j = itc_job_find(w, id);
    if (!j && w->n_jobs < ITC_MAX_JOBS) {
        j = &w->jobs[w->n_jobs++];
        memset(j, 0, sizeof(*j));
        snprintf(j->id, sizeof(j->id), "%s", id);
    }
    if (!j) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    j->runs++;
    if (j->runs > 1) { /* what a real worker's ledger prevents; counted for the tests */
        pthread_mutex_unlock(&w->lock);
        return;
    }
    bool killed_early = j->kills > 0; /* a KILL for a job still queued */
    snprintf(j->cluster, sizeof(j->cluster), "%s", sy_avro_get_string(&w->routed, "cluster_name"));
    snprintf(j->command, sizeof(j->command), "%s", sy_avro_get_string(&w->routed, "command_name"));
    int64_t sub = 0;
    sy_avro_get_long_opt(&w->routed, "request.submitted_at", &sub);
    j->submitted_at = sub;
    const char *mode = sy_avro_array_get_string(&w->routed, "request.arguments", 0);
    const char *a1 = sy_avro_array_get_string(&w->routed, "request.arguments", 1);
    const char *a2 = sy_avro_array_get_string(&w->routed, "request.arguments", 2);
    snprintf(j->mode, sizeof(j->mode), "%s", mode ? mode : "ok");
    j->seq = 9;
    if (killed_early) {
        itc_emit_status(w, j, "KILLED", -1, j->kill_reason);
        j->done = true;
        pthread_mutex_unlock(&w->lock);
        return;
    }
    itc_emit_status(w, j, "CLAIMED", -1, NULL);
    itc_emit_status(w, j, "SUBMITTED", -1, NULL);
    itc_emit_status(w, j, "RUNNING", -1, NULL);
    j->running = true;
    if (!strcmp(j->mode, "ok")) {
        j->lines = a1 ? atoi(a1) : 5;
        for (int i = 0; i < j->lines; i++)
            itc_line(w, j);
        itc_emit_log(w, j, 1, "err line\n", 0);
        itc_emit_status(w, j, "SUCCEEDED", 0, "exit code 0");
        j->running = false;
        j->done = true;
    } else if (!strcmp(j->mode, "fail")) {
        itc_line(w, j);
        itc_line(w, j);
        itc_emit_status(w, j, "FAILED", 3, "exit code 3");
        j->running = false;
        j->done = true;
    } else if (!strcmp(j->mode, "slow")) {
        long ms = a1 ? atol(a1) : 2000;
        j->lines = a2 ? atoi(a2) : 5;
        j->step_ms = ms / (j->lines > 0 ? j->lines : 1);
        j->next_at = itc_ms() + j->step_ms;
    } /* hang: nothing until a KILL */
    pthread_mutex_unlock(&w->lock);
}

static inline void itc_on_control(itc_worker_t *w, const rd_kafka_message_t *m)
{
    sy_err_t err = SY_ERR_INIT;
    if (sy_codec_decode(w->env->codec, SY_TYPE_JOB_CONTROL, m->payload, m->len, &w->ctl, &err) !=
        SY_OK) {
        fprintf(stderr, "fake worker: JobControl: %s\n", err.msg);
        return;
    }
    const char *id = sy_avro_get_string(&w->ctl, "job_id");
    const char *reason = sy_avro_get_string(&w->ctl, "reason");
    pthread_mutex_lock(&w->lock);
    itc_job_t *j = itc_job_find(w, id);
    if (!j && w->n_jobs < ITC_MAX_JOBS) { /* not here yet: killed when it arrives */
        j = &w->jobs[w->n_jobs++];
        memset(j, 0, sizeof(*j));
        snprintf(j->id, sizeof(j->id), "%s", id);
    }
    if (j) {
        j->kills++;
        snprintf(j->kill_reason, sizeof(j->kill_reason), "%s", reason ? reason : "");
        if (j->running) {
            itc_emit_status(w, j, "KILLED", -1, reason ? reason : "killed");
            j->running = false;
            j->done = true;
        }
    }
    pthread_mutex_unlock(&w->lock);
}

static inline void itc_tick(itc_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->n_jobs; i++) {
        itc_job_t *j = &w->jobs[i];
        if (!j->running || strcmp(j->mode, "slow") || itc_ms() < j->next_at)
            continue;
        itc_line(w, j);
        rd_kafka_poll(w->producer, 0);
        j->next_at = itc_ms() + j->step_ms;
        if (j->next_line >= j->lines) {
            itc_emit_status(w, j, "SUCCEEDED", 0, "exit code 0");
            j->running = false;
            j->done = true;
        }
    }
    pthread_mutex_unlock(&w->lock);
}

static inline void *itc_worker_main(void *arg)
{
    itc_worker_t *w = arg;
    char t_cluster[256];
    itc_topic(w->env, "cluster." ITC_CLUSTER, t_cluster);
    while (!w->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 50);
        if (m) {
            if (!m->err && !strcmp(rd_kafka_topic_name(m->rkt), t_cluster))
                itc_on_routed(w, m);
            else if (!m->err)
                itc_on_control(w, m);
            rd_kafka_message_destroy(m);
        }
        itc_tick(w);
    }
    return NULL;
}

static inline bool itc_worker_start(itc_worker_t *w, itc_env_t *e)
{
    sy_err_t err = SY_ERR_INIT;
    char t_cluster[256], t_control[256];
    memset(w, 0, sizeof(*w));
    w->env = e;
    pthread_mutex_init(&w->lock, NULL);
    sy_kafka_opts_t o = {.group_id = "itc-fake-worker", .read_committed = true};
    if (!(w->consumer = sy_kafka_new(e->conf, SY_KAFKA_CONSUMER, &o, &err)) ||
        !(w->producer = sy_kafka_new(e->conf, SY_KAFKA_IDEMPOTENT_PRODUCER, NULL, &err)) ||
        sy_codec_value_new(e->codec, SY_TYPE_ROUTED_JOB, &w->routed, &err) ||
        sy_codec_value_new(e->codec, SY_TYPE_JOB_CONTROL, &w->ctl, &err) ||
        sy_codec_value_new(e->codec, SY_TYPE_JOB_STATUS, &w->st, &err) ||
        sy_codec_value_new(e->codec, SY_TYPE_JOB_LOG, &w->lg, &err)) {
        fprintf(stderr, "fake worker: %s\n", err.msg);
        return false;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2 * ITC_PARTITIONS);
    for (int p = 0; p < ITC_PARTITIONS; p++) {
        rd_kafka_topic_partition_list_add(l, itc_topic(e, "cluster." ITC_CLUSTER, t_cluster), p)
            ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_topic_partition_list_add(l, itc_topic(e, "control", t_control), p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(w->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    return pthread_create(&w->thread, NULL, itc_worker_main, w) == 0;
}

static inline void itc_worker_stop(itc_worker_t *w)
{
    w->stop = 1;
    pthread_join(w->thread, NULL);
    rd_kafka_consumer_close(w->consumer);
    rd_kafka_destroy(w->consumer);
    rd_kafka_flush(w->producer, 5000);
    rd_kafka_destroy(w->producer);
    avro_value_decref(&w->routed);
    avro_value_decref(&w->ctl);
    avro_value_decref(&w->st);
    avro_value_decref(&w->lg);
    pthread_mutex_destroy(&w->lock);
}

/* A copy of the fake worker's record of job id (zeroed when it never saw it). */
static inline itc_job_t itc_worker_job(itc_worker_t *w, const char *id)
{
    itc_job_t copy;
    memset(&copy, 0, sizeof(copy));
    pthread_mutex_lock(&w->lock);
    itc_job_t *j = itc_job_find(w, id);
    if (j)
        copy = *j;
    pthread_mutex_unlock(&w->lock);
    return copy;
}

/* ---- the CLI as a child process -------------------------------------------------------------- */

typedef struct itc_proc {
    pid_t pid;
    char out[PATH_MAX + 64], err[PATH_MAX + 64];
    int code; /* exit code; 128+n when killed by signal n; -1 still running / timed out */
} itc_proc_t;

/* Starts `switchyard ARGS...` (argv NULL-terminated, without the program name). */
static inline bool itc_spawn(itc_env_t *e, itc_proc_t *p, const char *const *args)
{
    static int seq;
    char path[PATH_MAX + 32];
    const char *argv[64];
    int n = 0;
    snprintf(path, sizeof(path), "%s/switchyard", e->bin);
    argv[n++] = path;
    for (; args[n - 1] && n < 63; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    seq++;
    snprintf(p->out, sizeof(p->out), "%s/cli%03d.out", e->dir, seq);
    snprintf(p->err, sizeof(p->err), "%s/cli%03d.err", e->dir, seq);
    p->code = -1;
    p->pid = itc_fork_exec(path, (char *const *)argv, p->out, p->err, false);
    return p->pid > 0;
}

/* Waits for it to end (killing it after timeout_ms); returns its exit code. */
static inline int itc_wait(itc_proc_t *p, long timeout_ms)
{
    long long until = itc_ms() + timeout_ms;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid)
            break;
        if (itc_ms() > until) {
            fprintf(stderr, "%s: still running after %ld ms; killing it\n", p->err, timeout_ms);
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            return p->code = -1;
        }
        itc_sleep_ms(20);
    }
    p->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return p->code;
}

/* Runs `switchyard ARGS...` to its end (at most 60 s). */
static inline int itc_run(itc_env_t *e, itc_proc_t *p, const char *const *args)
{
    if (!itc_spawn(e, p, args))
        return -1;
    return itc_wait(p, 60000);
}

/* Shows a failed process's output (for a failing CHECK's context). */
static inline void itc_dump(const itc_proc_t *p)
{
    char *o = itc_slurp(p->out), *e = itc_slurp(p->err);
    fprintf(stderr, "---- exit %d; stdout (%s):\n%s---- stderr:\n%s----\n", p->code, p->out, o, e);
    free(o);
    free(e);
}

#define CHECK_EXIT(proc, want)                                                                     \
    do {                                                                                           \
        CHECK((proc).code == (want));                                                              \
        if ((proc).code != (want))                                                                 \
            itc_dump(&(proc));                                                                     \
    } while (0)

#endif
