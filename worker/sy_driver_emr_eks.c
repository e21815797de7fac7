/* sy_driver_emr_eks: the "emr-eks" backend — Spark jobs as EMR on EKS job runs (AWS
 * emr-containers) on the cluster's virtual cluster (the cluster's backend_address), in the
 * cluster's region.
 *
 * - submit: StartJobRun with the request sy_emr_eks_start_request builds, whose clientToken is
 *   derived from the job id and attempt: sending it again (a retry, or a new owner after a crash
 *   between the recorded intent and the recorded id) returns the same job run.
 * - resume: DescribeJobRun when the ledger has the job run id; with only the intent recorded,
 *   StartJobRun again with the same clientToken — the reconciliation.
 * - poll: one round per worker.poll.interval.ms for all jobs of the instance, however often the
 *   runner calls: per virtual cluster, ListJobRuns filtered by the active states (paged), then
 *   DescribeJobRun only for the jobs that left the active set; then the jobs' new log events.
 * - cancel: CancelJobRun (asynchronous; the next round, scheduled at once, sees CANCELLED).
 * - logs: with configuration_overrides.monitoringConfiguration.cloudWatchMonitoringConfiguration,
 *   the Spark driver's stdout and stderr streams (see sy_emr_eks_driver_stream) are read with
 *   GetLogEvents and forward tokens while the job runs, and handed to the sink as streams
 *   "stdout" and "stderr": each event's message, plus "\n" unless it ends with one.
 *   Resuming (a new owner, a restart, an expired token) re-reads a stream from its head and skips
 *   the bytes the ledger says were published (job->logs): nothing is stored besides the byte
 *   offsets the ledger already keeps. With only s3MonitoringConfiguration, the driver pod's
 *   stdout/stderr files under the logUri are followed with sy_s3log (see s3_logs()).
 *
 * One sy_aws_t per region the instance's jobs use (normally one: the cluster's), made on first
 * use; every call is made on the runner's thread. */
#include "sy_driver.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_aws.h"
#include "sy_emr_eks.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_s3log.h"
#include "sy_time.h"

#define LOG                 "emr-eks"
#define LIST_PAGE_SIZE      50   /* ListJobRuns maxResults */
#define LIST_MAX_PAGES      2000 /* a round gives up past 100 000 active job runs */
#define LOG_PAGE_EVENTS     1000 /* GetLogEvents limit (an answer is at most 1 MB anyway) */
#define LOG_PAGES_PER_ROUND 8    /* per stream and round while the job runs */
#define LOG_PAGES_FINAL     64   /* per stream and call once it ended (the runner calls again) */
#define LOG_SHORT_PAGE      (LOG_PAGE_EVENTS / 2) /* fewer events: caught up for this round */
#define LOG_BACKLOG_MS      200   /* a stream with more to read is read again this soon */
#define LOG_SETTLE_MS       3000  /* after a job ended, late log events are waited for this long */
#define DISCOVER_PAGES      4     /* DescribeLogStreams pages per job and attempt */
#define DISCOVER_MAX_MS     60000 /* streams not found yet are looked for at most this rarely */
#define LOST_AFTER_MISSES   2     /* DescribeJobRun not finding a job run this often: lost */
#define MAX_REGIONS         4

static const char *const stream_names[2] = {"stdout", "stderr"};

/* One CloudWatch stream being followed. */
typedef struct cw_stream {
    char *name;     /* the CloudWatch stream; NULL until found */
    char *token;    /* forward token of the page that starts at base; NULL = the stream's head */
    long long base; /* bytes of the stream before that page */
} cw_stream_t;

typedef struct eks_job {
    sy_emr_eks_logs_t logs; /* where the job run's logs go (from the command's spec) */
    cw_stream_t cw[2];      /* stdout, stderr */
    long long discover_at;  /* monotonic ms of the next look for streams not found yet */
    long long discover_ms;  /* the wait before the one after (doubles up to DISCOVER_MAX_MS) */
    bool backlog;           /* more log events are waiting than the last read took */
    int misses;             /* rounds in a row DescribeJobRun did not find the job run */
    long long ended_at;     /* monotonic ms the driver saw the job end; 0 = not yet */
    unsigned long seen;     /* the round whose ListJobRuns listed the job run */
    sy_s3log_t *s3;         /* the S3 monitoring logs' follower (made on first use) */
    long long s3_at;        /* monotonic ms of the last S3 read */
} eks_job_t;

typedef struct eks_driver {
    sy_driver_host_t host;
    char ns[256];
    long long interval_ms, log_max;
    long long s3_interval_ms, s3_wait_ms; /* worker.emr.logs.interval.ms / .wait.ms */
    long long next_round;                 /* monotonic ms of the next backend round */
    long long next_logs; /* of the next round for streams with a backlog; 0 = none */
    unsigned long round;
    struct {
        char region[64]; /* "" = the worker's default region */
        sy_aws_t *aws;
    } clients[MAX_REGIONS];
    size_t n_clients;
    char *chunk; /* SY_DRIVER_CHUNK_MAX bytes on their way to the sink */
    size_t chunk_len;
    sy_job_t **sorted; /* scratch: the jobs of a round, by region, virtual cluster, job run */
    size_t sorted_cap;
} eks_driver_t;

/* ---- lifetime -------------------------------------------------------------------------------- */

static void *eks_open(const sy_driver_host_t *host, sy_err_t *err)
{
    eks_driver_t *d = calloc(1, sizeof(*d));
    if (!d || !(d->chunk = malloc(SY_DRIVER_CHUNK_MAX))) {
        free(d);
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    d->host = *host;
    snprintf(d->ns, sizeof(d->ns), "%s", sy_config_get(host->conf, "topic.namespace"));
    d->interval_ms = sy_config_get_int(host->conf, "worker.poll.interval.ms");
    if (d->interval_ms < 100)
        d->interval_ms = 100;
    d->log_max = sy_config_get_int(host->conf, "worker.log.max.bytes");
    d->s3_interval_ms = sy_config_get_int(host->conf, "worker.emr.logs.interval.ms");
    d->s3_wait_ms = sy_config_get_int(host->conf, "worker.emr.logs.wait.ms");
    return d;
}

static void eks_close(void *dv)
{
    eks_driver_t *d = dv;
    if (!d)
        return;
    for (size_t i = 0; i < d->n_clients; i++)
        sy_aws_destroy(d->clients[i].aws);
    free(d->chunk);
    free(d->sorted);
    free(d);
}

/* The client for job's region, made on first use from the worker's aws.* settings with
 * aws.region = the cluster's region (when it has one). */
static sy_aws_t *aws_for(eks_driver_t *d, const sy_job_t *job, sy_err_t *err)
{
    const char *region = job->region && *job->region ? job->region : "";
    for (size_t i = 0; i < d->n_clients; i++)
        if (!strcmp(d->clients[i].region, region))
            return d->clients[i].aws;
    if (d->n_clients == MAX_REGIONS || strlen(region) >= sizeof(d->clients[0].region)) {
        sy_err_set(err, SY_ERR_CONFIG, false, "cluster %s: more than %d regions, or region %.40s",
                   d->host.cluster_name, MAX_REGIONS, region);
        return NULL;
    }
    sy_config_t *conf = sy_config_new();
    size_t n = 0;
    const sy_config_def_t *defs = sy_config_table(&n);
    sy_aws_t *aws = NULL;
    if (!conf) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!strncmp(defs[i].key, "aws.", 4) &&
            sy_config_set(conf, defs[i].key, sy_config_get(d->host.conf, defs[i].key), err) !=
                SY_OK)
            goto out;
    if (*region && sy_config_set(conf, "aws.region", region, err) != SY_OK)
        goto out;
    if (!(aws = sy_aws_new(conf, err)))
        goto out;
    snprintf(d->clients[d->n_clients].region, sizeof(d->clients[0].region), "%s", region);
    d->clients[d->n_clients++].aws = aws;
    sy_debug(LOG, "cluster %s: AWS client for region %s, credentials from %s", d->host.cluster_name,
             sy_aws_region(aws), sy_aws_credentials_source(aws));
out:
    sy_config_destroy(conf);
    return aws;
}

/* The driver's state of job, made on first use (NULL when out of memory). */
static eks_job_t *job_state(eks_driver_t *d, sy_job_t *job)
{
    eks_job_t *ej = job->driver_data;
    if (ej)
        return ej;
    if (!(ej = calloc(1, sizeof(*ej))))
        return NULL;
    sy_err_t err = SY_ERR_INIT;
    if (sy_emr_eks_spec_logs(job->command_spec, &ej->logs, &err) != SY_OK)
        sy_warn(LOG, "job %s: its logs cannot be followed: %s", job->job_id, err.msg);
    ej->discover_ms = d->interval_ms;
    job->driver_data = ej;
    return ej;
}

static void eks_forget(void *dv, sy_job_t *job)
{
    (void)dv;
    eks_job_t *ej = job->driver_data;
    if (!ej)
        return;
    sy_emr_eks_logs_clear(&ej->logs);
    sy_s3log_destroy(ej->s3);
    for (int s = 0; s < 2; s++) {
        free(ej->cw[s].name);
        free(ej->cw[s].token);
    }
    free(ej);
    job->driver_data = NULL;
}

/* ---- calls ----------------------------------------------------------------------------------- */

/* "/virtualclusters/<vc>/jobruns[/<run>]" into buf; false when the job has no virtual cluster. */
static bool run_path(const sy_job_t *job, const char *run, char *buf, size_t size)
{
    char *vc = job->backend_address ? sy_http_url_encode(job->backend_address, false) : NULL;
    char *id = run ? sy_http_url_encode(run, false) : NULL;
    bool ok = vc && *vc && (!run || id) &&
              (size_t)snprintf(buf, size, "/virtualclusters/%s/jobruns%s%s", vc, run ? "/" : "",
                               run ? id : "") < size;
    free(vc);
    free(id);
    return ok;
}

static bool error_is(sy_aws_t *aws, const char *code)
{
    return !strcmp(sy_aws_last_error_code(aws), code);
}

/* DescribeJobRun of job's run into *run. SY_ERR_NOT_FOUND when the service does not know it. */
static sy_err_code_t describe(eks_driver_t *d, sy_aws_t *aws, const sy_job_t *job,
                              sy_emr_eks_run_t *run, sy_err_t *err)
{
    (void)d;
    char path[512];
    json_t *resp = NULL;
    if (!run_path(job, job->backend_id, path, sizeof(path)))
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "job %s: no virtual cluster or job run",
                          job->job_id);
    sy_err_code_t rc =
        sy_aws_rest_call(aws, "emr-containers", "DescribeJobRun", "GET", path, NULL, &resp, err);
    if (rc == SY_ERR_AWS && error_is(aws, "ResourceNotFoundException"))
        rc = sy_err_set(err, SY_ERR_NOT_FOUND, false, "%s", err ? err->msg : "not found");
    if (rc == SY_OK)
        rc = sy_emr_eks_run_from_json(json_object_get(resp, "jobRun"), run, err);
    json_decref(resp);
    return rc;
}

/* ---- submit, resume, cancel ------------------------------------------------------------------ */

/* A refusal worth its own failure_reason; NULL for the runner's SUBMIT_FAILED. */
static const char *refusal_reason(sy_aws_t *aws)
{
    if (error_is(aws, "ValidationException"))
        return "VALIDATION_ERROR";
    if (error_is(aws, "ResourceNotFoundException"))
        return "RESOURCE_NOT_FOUND"; /* the virtual cluster, or the release label */
    if (error_is(aws, "AccessDeniedException"))
        return "ACCESS_DENIED";
    return NULL;
}

static sy_err_code_t eks_submit(void *dv, sy_job_t *job, sy_err_t *err)
{
    eks_driver_t *d = dv;
    json_t *body = NULL, *resp = NULL;
    char path[512];
    sy_err_code_t rc;
    sy_aws_t *aws;
    if (!job_state(d, job))
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    if (!(aws = aws_for(d, job, err)))
        return err ? err->code : SY_ERR_CONFIG;
    if (!run_path(job, NULL, path, sizeof(path))) {
        snprintf(job->failure_reason, sizeof(job->failure_reason), "INVALID_CLUSTER");
        return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                          "cluster %s has no EMR on EKS virtual cluster id", d->host.cluster_name);
    }
    if ((rc = sy_emr_eks_start_request(job, d->ns, &body, err)) != SY_OK) {
        if (rc == SY_ERR_INVALID_ARG)
            snprintf(job->failure_reason, sizeof(job->failure_reason), "INVALID_SPEC");
        return rc;
    }
    rc = sy_aws_rest_call(aws, "emr-containers", "StartJobRun", "POST", path, body, &resp, err);
    if (rc == SY_ERR_AWS && err && !err->retriable && refusal_reason(aws))
        snprintf(job->failure_reason, sizeof(job->failure_reason), "%s", refusal_reason(aws));
    if (rc != SY_OK)
        goto out;
    const char *id = json_string_value(json_object_get(resp, "id")); /* borrowed */
    if (!sy_emr_eks_id_valid(id)) {
        rc = sy_err_set(err, SY_ERR_AWS, true, "StartJobRun answered without a valid job run id");
        goto out;
    }
    snprintf(job->backend_id, sizeof(job->backend_id), "%s", id);
    job->phase = SY_PHASE_PENDING;
    sy_info(LOG, "job %s: job run %s on virtual cluster %s", job->job_id, job->backend_id,
            job->backend_address);
out:
    json_decref(body);
    json_decref(resp);
    return rc;
}

static sy_err_code_t eks_resume(void *dv, sy_job_t *job, sy_err_t *err)
{
    eks_driver_t *d = dv;
    eks_job_t *ej = job_state(d, job);
    sy_aws_t *aws;
    sy_emr_eks_run_t run;
    if (!ej)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    if (!*job->backend_id) {
        /* Only the intent was recorded: the same clientToken returns the job run if the backend
         * got it, and starts it otherwise — either way the job has exactly one. */
        sy_err_t serr = SY_ERR_INIT;
        sy_err_code_t rc = eks_submit(d, job, &serr);
        if (rc == SY_OK || serr.retriable) {
            if (rc != SY_OK && err)
                *err = serr;
            return rc;
        }
        /* Refused: the backend has nothing; submit() ends the job with the reason. */
        job->phase = SY_PHASE_NEW;
        job->failure_reason[0] = '\0';
        return SY_OK;
    }
    if (!(aws = aws_for(d, job, err)))
        return err ? err->code : SY_ERR_CONFIG;
    sy_err_code_t rc = describe(d, aws, job, &run, err);
    if (rc == SY_ERR_NOT_FOUND) {
        job->phase = SY_PHASE_NEW; /* the runner ends it: BACKEND_LOST */
        return SY_OK;
    }
    if (rc != SY_OK)
        return rc;
    job->phase = SY_PHASE_NEW;
    sy_emr_eks_apply(job, &run);
    if (job->phase == SY_PHASE_ENDED)
        ej->ended_at = sy_time_mono_ms();
    sy_info(LOG, "job %s: job run %s is %s", job->job_id, job->backend_id,
            sy_emr_eks_state_name(run.state));
    return SY_OK;
}

static sy_err_code_t eks_cancel(void *dv, sy_job_t *job, sy_err_t *err)
{
    eks_driver_t *d = dv;
    char path[512];
    sy_aws_t *aws = aws_for(d, job, err);
    if (!aws)
        return err ? err->code : SY_ERR_CONFIG;
    if (!run_path(job, job->backend_id, path, sizeof(path)))
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "job %s: no job run to cancel",
                          job->job_id);
    sy_err_code_t rc =
        sy_aws_rest_call(aws, "emr-containers", "CancelJobRun", "DELETE", path, NULL, NULL, err);
    if (rc == SY_ERR_AWS &&
        (error_is(aws, "ValidationException") || error_is(aws, "ResourceNotFoundException"))) {
        /* not cancellable (it ended or is being cancelled) or gone: the next round tells */
        sy_info(LOG, "job %s: CancelJobRun: %s", job->job_id, err ? err->msg : "");
        rc = SY_OK;
    }
    if (rc == SY_OK) {
        d->next_round = sy_time_mono_ms(); /* see CANCELLED without waiting a whole interval */
        sy_info(LOG, "job %s: cancelling job run %s", job->job_id, job->backend_id);
    }
    return rc;
}

/* ---- logs: CloudWatch ------------------------------------------------------------------------ */

/* Hands the buffered bytes to the sink; false (bytes dropped: they are read again later, since
 * job->logs did not move) when the sink has no room. */
static bool flush_chunk(eks_driver_t *d, sy_job_t *job, const char *stream)
{
    if (!d->chunk_len)
        return true;
    bool room = d->host.log_room(d->host.opaque, job) > 0;
    if (room)
        d->host.log(d->host.opaque, job, stream, d->chunk, d->chunk_len);
    d->chunk_len = 0;
    return room;
}

/* Appends the stream bytes [*pos, *pos + len) that lie at or beyond `published`; *pos advances
 * over all of them. false when the sink had no room for a full chunk. */
static bool put_bytes(eks_driver_t *d, sy_job_t *job, const char *stream, const char *p, size_t len,
                      long long *pos, long long published)
{
    if (*pos < published) {
        long long skip = published - *pos < (long long)len ? published - *pos : (long long)len;
        p += skip;
        len -= (size_t)skip;
        *pos += skip;
    }
    while (len > 0) {
        size_t take =
            SY_DRIVER_CHUNK_MAX - d->chunk_len < len ? SY_DRIVER_CHUNK_MAX - d->chunk_len : len;
        memcpy(d->chunk + d->chunk_len, p, take);
        d->chunk_len += take;
        p += take;
        len -= take;
        *pos += (long long)take;
        if (d->chunk_len == SY_DRIVER_CHUNK_MAX && !flush_chunk(d, job, stream))
            return false;
    }
    return true;
}

/* Reads cw's stream from its page onward, at most max_pages pages, handing on what job->logs does
 * not have yet. *more: stopped before the end (page budget, or the sink is full). */
static sy_err_code_t read_stream(eks_driver_t *d, sy_aws_t *aws, sy_job_t *job, eks_job_t *ej,
                                 int s, int max_pages, bool drain, bool *more, sy_err_t *err)
{
    cw_stream_t *cw = &ej->cw[s];
    const char *stream = stream_names[s];
    for (int page = 0;; page++) {
        long long published = sy_ledger_logs_get(&job->logs, stream);
        if (page >= max_pages || d->host.log_room(d->host.opaque, job) == 0) {
            *more = true;
            return SY_OK;
        }
        if (published < cw->base) { /* cannot happen unless the offsets were reset: restart */
            free(cw->token);
            cw->token = NULL;
            cw->base = 0;
        }
        json_t *events = NULL;
        char *next = NULL;
        sy_err_code_t rc = sy_aws_logs_get_events(aws, ej->logs.group, cw->name, cw->token,
                                                  LOG_PAGE_EVENTS, &events, &next, err);
        if (rc == SY_ERR_AWS && cw->token && error_is(aws, "InvalidParameterException")) {
            /* forward tokens expire after 24 hours: read again from the head, skipping */
            sy_info(LOG, "job %s: %s token refused (%s); reading %s from its start", job->job_id,
                    stream, err ? err->msg : "", cw->name);
            free(cw->token);
            cw->token = NULL;
            cw->base = 0;
            continue;
        }
        if (rc != SY_OK)
            return rc;
        size_t n = json_array_size(events), i;
        json_t *ev;
        long long pos = cw->base;
        bool whole = true;
        d->chunk_len = 0;
        json_array_foreach(events, i, ev)
        {
            json_t *m = json_object_get(ev, "message"); /* borrowed */
            const char *msg = json_string_value(m);
            size_t len = msg ? json_string_length(m) : 0;
            if (!put_bytes(d, job, stream, msg ? msg : "", len, &pos, published) ||
                ((len == 0 || msg[len - 1] != '\n') &&
                 !put_bytes(d, job, stream, "\n", 1, &pos, published))) {
                whole = false;
                break;
            }
        }
        whole = whole && flush_chunk(d, job, stream);
        json_decref(events);
        if (!whole) { /* the page is read again from its start next time, skipping what went */
            free(next);
            *more = true;
            return SY_OK;
        }
        bool end = !next || (cw->token && !strcmp(next, cw->token));
        free(cw->token);
        cw->token = next;
        cw->base = pos;
        /* The service may answer empty pages before the end; only the same token again proves
         * the end. While the job runs a short page is end enough for this round. */
        if (end || (!drain && n > 0 && n < LOG_SHORT_PAGE))
            return SY_OK;
    }
}

/* Looks for the driver's streams not found yet: the default names first, then any
 * "<pod>-driver/<stream>" under the job run's containers (a custom Spark application id). */
static sy_err_code_t discover(eks_driver_t *d, sy_aws_t *aws, sy_job_t *job, eks_job_t *ej,
                              sy_err_t *err)
{
    char pfx[1200], narrow[1400];
    if (!sy_emr_eks_stream_prefix(ej->logs.prefix, job->backend_address, job->backend_id, pfx,
                                  sizeof(pfx)) ||
        !sy_emr_eks_driver_stream(ej->logs.prefix, job->backend_address, job->backend_id, "",
                                  narrow, sizeof(narrow)))
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "job %s: log stream names too long",
                          job->job_id);
    const char *where[2] = {narrow, pfx};
    sy_err_code_t rc = SY_OK;
    for (int w = 0; w < 2 && (!ej->cw[0].name || !ej->cw[1].name); w++) {
        char *token = NULL;
        for (int page = 0; page < DISCOVER_PAGES && (!ej->cw[0].name || !ej->cw[1].name); page++) {
            json_t *streams = NULL;
            char *next = NULL;
            rc = sy_aws_logs_describe_streams(aws, ej->logs.group, where[w], token, 50, &streams,
                                              &next, err);
            free(token);
            token = next;
            if (rc == SY_ERR_AWS && error_is(aws, "ResourceNotFoundException"))
                rc = SY_OK; /* the group does not exist yet */
            if (rc != SY_OK)
                break;
            size_t i;
            json_t *st;
            json_array_foreach(streams, i, st)
            {
                const char *name = json_string_value(json_object_get(st, "logStreamName"));
                for (int s = 0; name && s < 2; s++) {
                    if (ej->cw[s].name || !sy_emr_eks_is_driver_stream(name, stream_names[s]))
                        continue;
                    if (!(ej->cw[s].name = strdup(name))) {
                        rc = sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
                        break;
                    }
                    sy_info(LOG, "job %s: following %s in CloudWatch Logs %s:%s", job->job_id,
                            stream_names[s], ej->logs.group, name);
                }
            }
            json_decref(streams);
            if (rc != SY_OK || !token)
                break;
        }
        free(token);
        if (rc != SY_OK)
            break;
    }
    return rc;
}

static sy_err_code_t cloudwatch_logs(eks_driver_t *d, sy_job_t *job, eks_job_t *ej, bool final,
                                     sy_err_t *err)
{
    long long now = sy_time_mono_ms();
    sy_aws_t *aws;
    sy_err_code_t rc = SY_OK;
    ej->backlog = false;
    if (!*job->backend_id || sy_ledger_logs_total(&job->logs) >= d->log_max)
        return SY_OK; /* nothing started, or past the cap: nothing more is published */
    if (!(aws = aws_for(d, job, err)))
        return err ? err->code : SY_ERR_CONFIG;
    if ((!ej->cw[0].name || !ej->cw[1].name) && (final || now >= ej->discover_at)) {
        rc = discover(d, aws, job, ej, err);
        ej->discover_at = now + ej->discover_ms;
        ej->discover_ms =
            ej->discover_ms * 2 < DISCOVER_MAX_MS ? ej->discover_ms * 2 : DISCOVER_MAX_MS;
        if (rc != SY_OK)
            return rc;
    }
    for (int s = 0; s < 2; s++) {
        bool more = false;
        if (!ej->cw[s].name)
            continue;
        rc = read_stream(d, aws, job, ej, s, final ? LOG_PAGES_FINAL : LOG_PAGES_PER_ROUND, final,
                         &more, err);
        if (rc != SY_OK)
            return rc;
        ej->backlog = ej->backlog || more;
    }
    return SY_OK;
}

/* ---- logs: S3 -------------------------------------------------------------------------------- */

/* Logs of a job run whose command names no CloudWatch group but an S3 logUri
 * (s3MonitoringConfiguration): EMR on EKS uploads the containers' stdout.gz / stderr.gz under
 * <logUri>/<virtual cluster>/jobs/<job run>/containers/<spark app>/<driver pod>/, which the
 * shared S3 follower (sy_s3log, as for EMR steps) reads — the driver pod's files only. While the
 * run is active every worker.emr.logs.interval.ms (0: only at the end); at the end once more,
 * the terminal status waiting up to worker.emr.logs.wait.ms for the files to appear. */
static sy_err_code_t s3_logs(eks_driver_t *d, sy_job_t *job, eks_job_t *ej, bool final,
                             sy_err_t *err)
{
    static const char *const streams[] = {"stdout", "stderr", NULL};
    long long now = sy_time_mono_ms();
    sy_aws_t *aws;
    if (!*job->backend_id || sy_ledger_logs_total(&job->logs) >= d->log_max)
        return SY_OK;
    if (!final && (d->s3_interval_ms <= 0 || now - ej->s3_at < d->s3_interval_ms))
        return SY_OK;
    if (!(aws = aws_for(d, job, err)))
        return err ? err->code : SY_ERR_CONFIG;
    if (!ej->s3) {
        char bucket[256], prefix[1024], full[1400];
        if (!sy_s3log_parse_uri(ej->logs.s3_uri, bucket, sizeof(bucket), prefix, sizeof(prefix)))
            return SY_OK; /* the registry checked the spec; nothing to follow */
        size_t len = strlen(prefix);
        snprintf(full, sizeof(full), "%s%s%s/jobs/%s/containers/", prefix,
                 len && prefix[len - 1] != '/' ? "/" : "", job->backend_address, job->backend_id);
        if (!(ej->s3 = sy_s3log_new(bucket, full, streams, "-driver/", err)))
            return err->code;
    }
    ej->s3_at = now;
    bool found = false;
    sy_err_code_t rc = sy_s3log_fetch(ej->s3, aws, &d->host, job, &found, err);
    if (rc != SY_OK || !final || found)
        return rc;
    if (!ej->ended_at)
        ej->ended_at = now;
    if (now - ej->ended_at < d->s3_wait_ms)
        return sy_err_set(err, SY_ERR_NOT_FOUND, true, "job %s: no driver logs under %s yet",
                          job->job_id, ej->logs.s3_uri);
    return SY_OK;
}

static sy_err_code_t job_logs(eks_driver_t *d, sy_job_t *job, bool final, sy_err_t *err)
{
    eks_job_t *ej = job_state(d, job);
    if (!ej)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    if (ej->logs.group)
        return cloudwatch_logs(d, job, ej, final, err);
    if (ej->logs.s3_uri)
        return s3_logs(d, job, ej, final, err);
    return SY_OK;
}

static sy_err_code_t eks_fetch_logs(void *dv, sy_job_t *job, bool final, sy_err_t *err)
{
    eks_driver_t *d = dv;
    eks_job_t *ej = job_state(d, job);
    long long now = sy_time_mono_ms();
    if (!ej)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    sy_err_code_t rc = job_logs(d, job, final, err);
    if (rc != SY_OK || !final || !ej->logs.group)
        return rc;
    if (ej->backlog)
        return sy_err_set(err, SY_ERR_TIMEOUT, true,
                          "job %s: more log events wait (the log sink "
                          "is full)",
                          job->job_id);
    if (!ej->ended_at)
        ej->ended_at = now;
    if (now - ej->ended_at < LOG_SETTLE_MS) /* the last events may still be on their way */
        return sy_err_set(err, SY_ERR_TIMEOUT, true, "job %s: waiting %d ms for late log events",
                          job->job_id, LOG_SETTLE_MS);
    return SY_OK;
}

/* ---- poll ------------------------------------------------------------------------------------ */

static int str_cmp(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

/* Region, then virtual cluster, then job run id. */
static int job_cmp(const void *a, const void *b)
{
    const sy_job_t *x = *(sy_job_t *const *)a, *y = *(sy_job_t *const *)b;
    int c = str_cmp(x->region, y->region);
    if (!c)
        c = str_cmp(x->backend_address, y->backend_address);
    return c ? c : strcmp(x->backend_id, y->backend_id);
}

static bool same_cluster(const sy_job_t *x, const sy_job_t *y)
{
    return !str_cmp(x->region, y->region) && !str_cmp(x->backend_address, y->backend_address);
}

/* The job of jobs[0..n-1] (sorted by job_cmp within one cluster) running job run id. */
static sy_job_t *find_run(sy_job_t **jobs, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(jobs[mid]->backend_id, id);
        if (!c)
            return jobs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Every active job run of one virtual cluster, page by page; marks ours as seen and moves them. */
static sy_err_code_t list_active(eks_driver_t *d, sy_aws_t *aws, sy_job_t **jobs, size_t n,
                                 bool *changed, sy_err_t *err)
{
    char base[512], *path = NULL, *next = NULL;
    sy_err_code_t rc = SY_OK;
    if (!run_path(jobs[0], NULL, base, sizeof(base)))
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "cluster %s: no virtual cluster id",
                          d->host.cluster_name);
    for (int page = 0; page < LIST_MAX_PAGES; page++) {
        char *tok = next ? sy_http_url_encode(next, false) : NULL;
        json_t *resp = NULL;
        sy_emr_eks_page_t pg;
        free(path);
        path = NULL;
        if ((next && !tok) ||
            asprintf(&path, "%s?%s&maxResults=%d%s%s", base, SY_EMR_EKS_ACTIVE_QUERY,
                     LIST_PAGE_SIZE, tok ? "&nextToken=" : "", tok ? tok : "") < 0) {
            path = NULL;
            free(tok);
            rc = sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
            break;
        }
        free(tok);
        rc = sy_aws_rest_call(aws, "emr-containers", "ListJobRuns", "GET", path, NULL, &resp, err);
        if (rc == SY_OK)
            rc = sy_emr_eks_page_from_json(resp, &pg, err);
        json_decref(resp);
        if (rc != SY_OK)
            break;
        for (size_t i = 0; i < pg.n; i++) {
            sy_job_t *job = find_run(jobs, n, pg.runs[i].id);
            eks_job_t *ej = job ? job->driver_data : NULL;
            if (!ej)
                continue; /* not one of ours */
            ej->seen = d->round;
            ej->misses = 0;
            if (sy_emr_eks_apply(job, &pg.runs[i]))
                *changed = true;
        }
        free(next);
        next = pg.next_token;
        pg.next_token = NULL; /* now ours */
        sy_emr_eks_page_clear(&pg);
        if (!next)
            break;
    }
    if (rc == SY_OK && next)
        rc = sy_err_set(err, SY_ERR_AWS, true, "ListJobRuns: more than %d pages", LIST_MAX_PAGES);
    free(next);
    free(path);
    return rc;
}

/* One backend round for the jobs of one virtual cluster. */
static sy_err_code_t cluster_round(eks_driver_t *d, sy_job_t **jobs, size_t n, bool *changed,
                                   sy_err_t *err)
{
    sy_aws_t *aws = aws_for(d, jobs[0], err);
    sy_err_code_t rc, first = SY_OK;
    long long now = sy_time_mono_ms();
    if (!aws)
        return err ? err->code : SY_ERR_CONFIG;
    if ((rc = list_active(d, aws, jobs, n, changed, err)) != SY_OK)
        return rc; /* without the whole list nobody can be said to have left it */
    for (size_t i = 0; i < n; i++) {
        sy_job_t *job = jobs[i];
        eks_job_t *ej = job->driver_data;
        sy_emr_eks_run_t run;
        sy_err_t jerr = SY_ERR_INIT;
        if (ej->seen == d->round || job->phase == SY_PHASE_ENDED)
            continue;
        rc = describe(d, aws, job, &run, &jerr); /* it left the active set */
        if (rc == SY_ERR_NOT_FOUND && ++ej->misses >= LOST_AFTER_MISSES) {
            sy_job_end(job, SY_JOB_FAILED, "BACKEND_LOST",
                       "virtual cluster %s no longer knows "
                       "job run %s",
                       job->backend_address, job->backend_id);
            *changed = true;
        } else if (rc == SY_OK) {
            ej->misses = 0;
            if (sy_emr_eks_apply(job, &run))
                *changed = true;
        } else if (rc != SY_ERR_NOT_FOUND && first == SY_OK) {
            first = rc;
            if (err)
                *err = jerr;
        }
        if (job->phase == SY_PHASE_ENDED && !ej->ended_at)
            ej->ended_at = now;
    }
    return first;
}

/* The logs of every running job (only those with a backlog when backlog_only). */
static void logs_round(eks_driver_t *d, sy_job_t *const *jobs, size_t n, bool backlog_only)
{
    d->next_logs = 0;
    for (size_t i = 0; i < n; i++) {
        sy_job_t *job = jobs[i];
        eks_job_t *ej = job->driver_data;
        sy_err_t err = SY_ERR_INIT;
        if (!ej || job->phase != SY_PHASE_RUNNING || (backlog_only && !ej->backlog))
            continue;
        if (job_logs(d, job, false, &err) != SY_OK)
            sy_warn(LOG, "job %s: logs: %s", job->job_id, err.msg);
        if (ej->backlog)
            d->next_logs = sy_time_mono_ms() + LOG_BACKLOG_MS;
    }
}

static sy_err_code_t round_all(eks_driver_t *d, sy_job_t *const *jobs, size_t n, bool *changed,
                               sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    if (n > d->sorted_cap) {
        sy_job_t **grown = realloc(d->sorted, n * sizeof(*grown));
        if (!grown)
            return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
        d->sorted = grown;
        d->sorted_cap = n;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (*jobs[i]->backend_id && job_state(d, jobs[i]))
            d->sorted[m++] = jobs[i];
    qsort(d->sorted, m, sizeof(*d->sorted), job_cmp);
    d->round++;
    for (size_t i = 0, j; i < m; i = j) {
        for (j = i + 1; j < m && same_cluster(d->sorted[i], d->sorted[j]); j++)
            ;
        sy_err_t cerr = SY_ERR_INIT;
        sy_err_code_t c = cluster_round(d, d->sorted + i, j - i, changed, &cerr);
        if (c != SY_OK && rc == SY_OK) {
            rc = c;
            if (err)
                *err = cerr;
        }
    }
    logs_round(d, jobs, n, false);
    return rc;
}

static sy_err_code_t eks_poll(void *dv, sy_job_t *const *jobs, size_t n, int wait_ms, sy_err_t *err)
{
    eks_driver_t *d = dv;
    long long now = sy_time_mono_ms();
    bool changed = false;
    sy_err_code_t rc = SY_OK;
    if (now >= d->next_round) {
        d->next_round = now + d->interval_ms; /* also after a failed round: no hammering */
        rc = round_all(d, jobs, n, &changed, err);
    } else if (d->next_logs && now >= d->next_logs) {
        logs_round(d, jobs, n, true);
    }
    if (changed || rc != SY_OK)
        return rc;
    now = sy_time_mono_ms();
    long long wait = wait_ms < 0 ? 0 : wait_ms;
    if (d->next_round - now < wait)
        wait = d->next_round - now;
    if (d->next_logs && d->next_logs - now < wait)
        wait = d->next_logs - now;
    sy_driver_wait(&d->host, (int)(wait > 0 ? wait : 0));
    return SY_OK;
}

const sy_driver_ops_t sy_driver_emr_eks = {
    .kind = "emr-eks",
    .host_bound = false,
    .default_max_in_flight = 0,
    .worker_limit = NULL,
    .open = eks_open,
    .close = eks_close,
    .submit = eks_submit,
    .resume = eks_resume,
    .poll = eks_poll,
    .cancel = eks_cancel,
    .fetch_logs = eks_fetch_logs,
    .forget = eks_forget,
};
