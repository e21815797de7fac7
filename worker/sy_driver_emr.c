/* sy_driver_emr: the "emr" backend — each job is one step on an EMR cluster (the cluster's
 * backend address, j-...).
 *
 * - submit: AddJobFlowSteps from the command's `emr` spec and the request's arguments (argv
 *   array, never a shell string), step named "switchyard:<job_id>", ActionOnFailure CONTINUE
 *   unless the spec says otherwise. AddJobFlowSteps has no idempotency token, so the call is
 *   never retried blindly: an ambiguous failure (timeout, 5xx) comes back retriable and the
 *   runner calls resume() first, which finds the step by name if EMR created it.
 * - poll: one round per worker.poll.interval.ms for the whole cluster, however many jobs:
 *   ListSteps filtered by the active states (PENDING, CANCEL_PENDING, RUNNING; 50 a page), then
 *   ListSteps by StepIds (10 a call) only for the jobs whose step left the active set.
 * - cancel: CancelSteps (SEND_INTERRUPT); the step ends CANCELLED in a later round.
 * - logs: the step's files under the cluster's LogUri (<LogUri>/<cluster-id>/steps/<step-id>/:
 *   stdout, stderr, controller, syslog, gzipped) through sy_s3log — while the step runs every
 *   worker.emr.logs.interval.ms (a few jobs per round, so the calls stay bounded), and once more
 *   when it ended, waiting up to worker.emr.logs.wait.ms for EMR to upload them.
 *
 * One instance per cluster name, on its runner's thread; its own AWS client (for the cluster's
 * region). */
#include "sy_driver.h"

#include <stdlib.h>
#include <string.h>

#include "sy_aws.h"
#include "sy_emr.h"
#include "sy_log.h"
#include "sy_s3log.h"
#include "sy_time.h"

#define LOG               "emr"
#define EMR_MAX_ACTIVE    256 /* EMR's limit of PENDING + RUNNING steps per cluster */
#define PAGE_STEPS        50  /* ListSteps' page size */
#define MAX_PAGES         64  /* safety bound on one listing (EMR holds at most 256 active) */
#define IDS_PER_CALL      10  /* ListSteps' StepIds limit */
#define LIVE_LOGS_PER_RND 4   /* running jobs whose logs one round reads, at most */
#define RECONCILE_PAGES   20  /* steps looked at by name after a crash: 1000 newest */
#define RECONCILE_SLACK_S 600 /* steps created this long before the request still count */
#define CANCEL_RECHECK_MS 1000
#define MISSING_ROUNDS                                                                             \
    3 /* a step EMR does not list this many rounds in a row is lost (a                             \
         brand-new one may not be listed at once) */

static const char *const log_streams[] = {"stdout", "stderr", "controller", "syslog", NULL};

typedef struct emr_job {
    sy_s3log_t *logs;       /* made once the cluster's LogUri is known */
    long long logs_at;      /* monotonic ms of the last live log read */
    long long ended_at;     /* monotonic ms when the step was seen ended; 0 while active */
    bool seen;              /* scratch for one round: the step is in the active set */
    int missing;            /* rounds in a row in which EMR did not know the step */
    long long reconcile_at; /* monotonic ms of the first look by name that found nothing */
} emr_job_t;

typedef struct emr_driver {
    sy_driver_host_t host;
    const sy_config_t *conf;
    sy_aws_t *aws;
    char region[64];
    /* The cluster's LogUri, from DescribeCluster once ("" = none configured). */
    char log_cluster[64];
    char log_bucket[256], log_prefix[768];
    bool log_known;
    long long log_retry_at;
    long long interval_ms, logs_interval_ms, logs_wait_ms;
    long long settle_ms; /* aws.timeout.ms: how long an AddJobFlowSteps may still be on its way */
    long long next_round;
    size_t live_cursor; /* where the next round's live log reads start */
    sy_emr_step_t *steps;
    size_t steps_cap;
} emr_driver_t;

/* ---- instance -------------------------------------------------------------------------------- */

static void *emr_open(const sy_driver_host_t *host, sy_err_t *err)
{
    emr_driver_t *d = calloc(1, sizeof(*d));
    if (!d) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    d->host = *host;
    d->conf = host->conf;
    d->interval_ms = sy_config_get_int(host->conf, "worker.poll.interval.ms");
    if (d->interval_ms < 100)
        d->interval_ms = 100;
    d->logs_interval_ms = sy_config_get_int(host->conf, "worker.emr.logs.interval.ms");
    d->logs_wait_ms = sy_config_get_int(host->conf, "worker.emr.logs.wait.ms");
    d->settle_ms = sy_config_get_int(host->conf, "aws.timeout.ms");
    d->steps_cap = PAGE_STEPS > IDS_PER_CALL ? PAGE_STEPS : IDS_PER_CALL;
    if (!(d->steps = calloc(d->steps_cap, sizeof(*d->steps)))) {
        free(d);
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    return d;
}

static void emr_close(void *dv)
{
    emr_driver_t *d = dv;
    if (!d)
        return;
    sy_aws_destroy(d->aws);
    free(d->steps);
    free(d);
}

/* The AWS client for job's region (made on first use; credentials resolve lazily). */
static sy_aws_t *client(emr_driver_t *d, const sy_job_t *job, sy_err_t *err)
{
    const char *region = job->region && *job->region ? job->region : "";
    if (d->aws && !strcmp(d->region, region))
        return d->aws;
    sy_aws_destroy(d->aws);
    d->aws = sy_aws_new_region(d->conf, region, err);
    snprintf(d->region, sizeof(d->region), "%s", d->aws ? region : "");
    return d->aws;
}

static emr_job_t *state_of(sy_job_t *job, sy_err_t *err)
{
    if (!job->driver_data && !(job->driver_data = calloc(1, sizeof(emr_job_t))))
        sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    return job->driver_data;
}

static const char *cluster_of(const sy_job_t *job)
{
    return job->backend_address ? job->backend_address : "";
}

/* An EMR answer saying the cluster itself is gone or unknown (nothing to wait for). */
static bool cluster_unusable(sy_aws_t *aws)
{
    const char *code = sy_aws_last_error_code(aws);
    return !strcmp(code, "InvalidRequestException") || !strcmp(code, "ValidationException");
}

/* ---- ListSteps ------------------------------------------------------------------------------- */

/* One ListSteps call: the steps of the page into d->steps (*n), the marker into marker. */
static sy_err_code_t list_steps(emr_driver_t *d, const char *cluster_id, const char *const *states,
                                const char *const *ids, size_t n_ids, char *marker,
                                size_t marker_size, size_t *n, sy_err_t *err)
{
    json_t *body = json_object(), *resp = NULL;
    sy_err_code_t rc;
    if (!body)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    json_object_set_new(body, "ClusterId", json_string(cluster_id));
    if (states) {
        json_t *a = json_array();
        for (size_t i = 0; states[i]; i++)
            json_array_append_new(a, json_string(states[i]));
        json_object_set_new(body, "StepStates", a);
    }
    if (n_ids) {
        json_t *a = json_array();
        for (size_t i = 0; i < n_ids; i++)
            json_array_append_new(a, json_string(ids[i]));
        json_object_set_new(body, "StepIds", a);
    }
    if (*marker)
        json_object_set_new(body, "Marker", json_string(marker));
    rc = sy_aws_json_call(d->aws, "emr", "ElasticMapReduce.ListSteps", body, &resp, err);
    if (rc == SY_OK)
        rc = sy_emr_parse_steps(resp, d->steps, d->steps_cap, n, marker, marker_size, err);
    json_decref(body);
    json_decref(resp);
    return rc;
}

static sy_job_t *job_with_step(sy_job_t *const *jobs, size_t n, const char *cluster_id,
                               const char *step_id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(jobs[i]->backend_id, step_id) && !strcmp(cluster_of(jobs[i]), cluster_id))
            return jobs[i];
    return NULL;
}

/* Ends every job of cluster_id: the cluster is gone (its error in err). */
static void fail_cluster(sy_job_t *const *jobs, size_t n, const char *cluster_id,
                         const sy_err_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cluster_of(jobs[i]), cluster_id) && jobs[i]->phase != SY_PHASE_ENDED)
            sy_job_end(jobs[i], SY_JOB_FAILED, "CLUSTER_UNAVAILABLE", "%s", err->msg);
}

static void apply(const sy_emr_step_t *st, sy_job_t *job)
{
    sy_job_phase_t before = job->phase;
    sy_emr_apply_step(st, job);
    emr_job_t *ej = job->driver_data;
    if (job->phase == SY_PHASE_ENDED && ej && !ej->ended_at)
        ej->ended_at = sy_time_mono_ms();
    if (job->phase != before)
        sy_debug(LOG, "job %s: step %s on %s is %s", job->job_id, st->id, cluster_of(job),
                 sy_emr_step_state_name(st->state));
}

/* One round for the jobs of cluster_id among jobs[0..n). */
static sy_err_code_t round_cluster(emr_driver_t *d, sy_job_t *const *jobs, size_t n,
                                   const char *cluster_id, sy_err_t *err)
{
    static const char *const active[] = {"PENDING", "CANCEL_PENDING", "RUNNING", NULL};
    char marker[1024] = "";
    sy_err_code_t rc = SY_OK;
    for (size_t i = 0; i < n; i++)
        if (jobs[i]->driver_data)
            ((emr_job_t *)jobs[i]->driver_data)->seen = false;
    for (int page = 0; page < MAX_PAGES; page++) {
        size_t got = 0;
        if ((rc = list_steps(d, cluster_id, active, NULL, 0, marker, sizeof(marker), &got, err)) !=
            SY_OK) {
            if (!err->retriable && cluster_unusable(d->aws))
                fail_cluster(jobs, n, cluster_id, err);
            return rc;
        }
        for (size_t k = 0; k < got; k++) {
            sy_job_t *job = job_with_step(jobs, n, cluster_id, d->steps[k].id);
            if (!job || !job->driver_data)
                continue;
            ((emr_job_t *)job->driver_data)->seen = true;
            ((emr_job_t *)job->driver_data)->missing = 0;
            apply(&d->steps[k], job);
        }
        if (!*marker)
            break;
    }
    /* The steps that left the active set: their outcome, ten at a time. */
    const char *ids[IDS_PER_CALL];
    size_t n_ids = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n) {
            sy_job_t *job = jobs[i];
            emr_job_t *ej = job->driver_data;
            if (!ej || ej->seen || !*job->backend_id || job->phase == SY_PHASE_ENDED ||
                strcmp(cluster_of(job), cluster_id))
                continue;
            ids[n_ids++] = job->backend_id;
            if (n_ids < IDS_PER_CALL)
                continue;
        }
        if (!n_ids)
            break;
        size_t got = 0;
        marker[0] = '\0';
        if ((rc = list_steps(d, cluster_id, NULL, ids, n_ids, marker, sizeof(marker), &got, err)) !=
            SY_OK)
            return rc;
        for (size_t k = 0; k < got; k++) {
            sy_job_t *job = job_with_step(jobs, n, cluster_id, d->steps[k].id);
            if (job && job->driver_data) {
                ((emr_job_t *)job->driver_data)->seen = true;
                apply(&d->steps[k], job);
            }
        }
        for (size_t k = 0; k < n_ids; k++) {
            sy_job_t *job = job_with_step(jobs, n, cluster_id, ids[k]);
            emr_job_t *ej = job ? job->driver_data : NULL;
            if (!ej)
                continue;
            if (ej->seen) {
                ej->missing = 0;
            } else if (++ej->missing >= MISSING_ROUNDS) {
                sy_job_end(job, SY_JOB_FAILED, "BACKEND_LOST", "step %s is not on cluster %s",
                           job->backend_id, cluster_id);
                ej->ended_at = sy_time_mono_ms();
            }
        }
        n_ids = 0;
    }
    return SY_OK;
}

/* ---- logs ------------------------------------------------------------------------------------ */

/* The cluster's LogUri, asked once per cluster (and again after a failure, not before
 * log_retry_at). false while unknown or when the cluster has none. */
static bool log_location(emr_driver_t *d, const char *cluster_id)
{
    if (d->log_known && !strcmp(d->log_cluster, cluster_id))
        return *d->log_bucket != '\0';
    long long now = sy_time_mono_ms();
    if (now < d->log_retry_at && !strcmp(d->log_cluster, cluster_id))
        return false;
    snprintf(d->log_cluster, sizeof(d->log_cluster), "%s", cluster_id);
    d->log_known = false;
    d->log_bucket[0] = d->log_prefix[0] = '\0';
    json_t *body = json_pack("{s:s}", "ClusterId", cluster_id), *resp = NULL;
    sy_err_t err = SY_ERR_INIT;
    if (!body || sy_aws_json_call(d->aws, "emr", "ElasticMapReduce.DescribeCluster", body, &resp,
                                  &err) != SY_OK) {
        sy_warn(LOG, "cluster %s: DescribeCluster: %s; its step logs wait", cluster_id, err.msg);
        d->log_retry_at = now + d->interval_ms;
        json_decref(body);
        return false;
    }
    const char *uri =
        json_string_value(json_object_get(json_object_get(resp, "Cluster"), "LogUri"));
    char prefix[sizeof(d->log_prefix)];
    d->log_known = true;
    if (!uri || !*uri) {
        sy_info(LOG, "cluster %s has no LogUri: its steps' logs are not collected", cluster_id);
    } else if (!sy_s3log_parse_uri(uri, d->log_bucket, sizeof(d->log_bucket), prefix,
                                   sizeof(prefix))) {
        sy_warn(LOG, "cluster %s: LogUri %.200s is not an s3:// location", cluster_id, uri);
        d->log_bucket[0] = '\0';
    } else {
        size_t len = strlen(prefix);
        int w = snprintf(d->log_prefix, sizeof(d->log_prefix), "%.600s%s%.63s/steps/", prefix,
                         len && prefix[len - 1] != '/' ? "/" : "", cluster_id);
        if (w < 0 || (size_t)w >= sizeof(d->log_prefix) || len > 600) {
            sy_warn(LOG, "cluster %s: LogUri %.200s is too long", cluster_id, uri);
            d->log_bucket[0] = '\0';
        }
    }
    json_decref(body);
    json_decref(resp);
    return *d->log_bucket != '\0';
}

/* Reads job's step logs. *found: some log file exists. */
static sy_err_code_t read_logs(emr_driver_t *d, sy_job_t *job, bool *found, sy_err_t *err)
{
    emr_job_t *ej = job->driver_data;
    *found = false;
    if (!*job->backend_id || !log_location(d, cluster_of(job)))
        return SY_OK;
    if (!ej->logs) {
        char prefix[sizeof(d->log_prefix) + sizeof(job->backend_id) + 2];
        snprintf(prefix, sizeof(prefix), "%s%s/", d->log_prefix, job->backend_id);
        if (!(ej->logs = sy_s3log_new(d->log_bucket, prefix, log_streams, NULL, err)))
            return err->code;
    }
    ej->logs_at = sy_time_mono_ms();
    return sy_s3log_fetch(ej->logs, d->aws, &d->host, job, found, err);
}

/* Live logs of running jobs: the ones due, LIVE_LOGS_PER_RND at most, round-robin. */
static void live_logs(emr_driver_t *d, sy_job_t *const *jobs, size_t n)
{
    if (d->logs_interval_ms <= 0 || !n)
        return;
    long long now = sy_time_mono_ms();
    int budget = LIVE_LOGS_PER_RND;
    for (size_t k = 0; k < n && budget > 0; k++) {
        sy_job_t *job = jobs[(d->live_cursor + k) % n];
        emr_job_t *ej = job->driver_data;
        if (!ej || job->phase != SY_PHASE_RUNNING)
            continue;
        if (!ej->logs_at)
            ej->logs_at = now; /* the first read is one interval after it started running */
        if (now - ej->logs_at < d->logs_interval_ms)
            continue;
        budget--;
        bool found;
        sy_err_t err = SY_ERR_INIT;
        if (read_logs(d, job, &found, &err) != SY_OK)
            sy_debug(LOG, "job %s: live logs: %s", job->job_id, err.msg);
    }
    d->live_cursor = (d->live_cursor + 1) % n;
}

static sy_err_code_t emr_fetch_logs(void *dv, sy_job_t *job, bool final, sy_err_t *err)
{
    emr_driver_t *d = dv;
    emr_job_t *ej = state_of(job, err);
    if (!ej)
        return err->code;
    if (!client(d, job, err))
        return err->code;
    bool found = false;
    sy_err_code_t rc = read_logs(d, job, &found, err);
    if (rc != SY_OK || !final || found || !log_location(d, cluster_of(job)))
        return rc;
    if (!ej->ended_at)
        ej->ended_at = sy_time_mono_ms();
    if (sy_time_mono_ms() - ej->ended_at < d->logs_wait_ms)
        return sy_err_set(err, SY_ERR_NOT_FOUND, true,
                          "step %s: no log files under s3://%s/%s%s/ yet", job->backend_id,
                          d->log_bucket, d->log_prefix, job->backend_id);
    sy_info(LOG, "job %s: no log files for step %s after %lld ms; ending without them", job->job_id,
            job->backend_id, d->logs_wait_ms);
    return SY_OK;
}

/* ---- the driver operations ------------------------------------------------------------------- */

/* EMR's answer when the cluster already holds its 256 active steps (someone else added steps
 * beside ours): a full queue, not a bad job. */
static bool at_step_limit(sy_aws_t *aws, const sy_err_t *err)
{
    return !strcmp(sy_aws_last_error_code(aws), "ValidationException") &&
           (strstr(err->msg, "active steps") || strstr(err->msg, "256"));
}

static sy_err_code_t emr_submit(void *dv, sy_job_t *job, sy_err_t *err)
{
    emr_driver_t *d = dv;
    json_t *spec = NULL, *body = NULL, *resp = NULL;
    sy_err_code_t rc;
    if (!state_of(job, err) || !client(d, job, err))
        return err->code;
    if (!*cluster_of(job)) {
        snprintf(job->failure_reason, sizeof(job->failure_reason), "BAD_CLUSTER");
        return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                          "cluster %s has no EMR cluster id (backend address)", job->cluster_name);
    }
    if (!(spec = json_loads(job->command_spec ? job->command_spec : "", 0, NULL))) {
        snprintf(job->failure_reason, sizeof(job->failure_reason), "BAD_SPEC");
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "the command's emr spec is not JSON");
    }
    if ((rc = sy_emr_build_step(spec, job, cluster_of(job), &body, err)) != SY_OK) {
        snprintf(job->failure_reason, sizeof(job->failure_reason), "BAD_SPEC");
        goto out;
    }
    rc = sy_aws_json_call_ex(d->aws, "emr", "ElasticMapReduce.AddJobFlowSteps", body, &resp,
                             SY_AWS_NO_AMBIGUOUS_RETRY, err);
    if (rc != SY_OK) {
        if (!err->retriable && at_step_limit(d->aws, err)) {
            err->retriable = true; /* wait for room, like the worker's own capacity pause */
        } else if (!err->retriable) {
            snprintf(job->failure_reason, sizeof(job->failure_reason), "%s",
                     cluster_unusable(d->aws) ? "SUBMIT_REJECTED" : "SUBMIT_FAILED");
        }
        goto out;
    }
    const char *id = json_string_value(json_array_get(json_object_get(resp, "StepIds"), 0));
    if (!id || !*id || strlen(id) >= sizeof(job->backend_id)) {
        /* EMR may have made the step: find it by name before anything is sent again */
        rc = sy_err_set(err, SY_ERR_AWS, true, "AddJobFlowSteps answered without a step id");
        goto out;
    }
    snprintf(job->backend_id, sizeof(job->backend_id), "%s", id);
    job->phase = SY_PHASE_PENDING;
    sy_info(LOG, "job %s: step %s added to %s", job->job_id, id, cluster_of(job));
out:
    json_decref(spec);
    json_decref(body);
    json_decref(resp);
    return rc;
}

/* After a takeover: the step by id, or — with only the intent recorded — by name among the
 * cluster's newest steps (created after the request, give or take clock skew). */
static sy_err_code_t emr_resume(void *dv, sy_job_t *job, sy_err_t *err)
{
    emr_driver_t *d = dv;
    if (!state_of(job, err) || !client(d, job, err))
        return err->code;
    const char *cid = cluster_of(job);
    char marker[1024] = "", name[300];
    size_t got = 0;
    sy_err_code_t rc;
    job->phase = SY_PHASE_NEW;
    if (*job->backend_id) {
        const char *ids[1] = {job->backend_id};
        if ((rc = list_steps(d, cid, NULL, ids, 1, marker, sizeof(marker), &got, err)) != SY_OK) {
            if (!err->retriable && cluster_unusable(d->aws)) {
                sy_job_end(job, SY_JOB_FAILED, "CLUSTER_UNAVAILABLE", "%s", err->msg);
                return SY_OK;
            }
            return rc;
        }
        for (size_t k = 0; k < got; k++)
            if (!strcmp(d->steps[k].id, job->backend_id))
                apply(&d->steps[k], job);
        return SY_OK;
    }
    sy_emr_step_name(job->job_id, name, sizeof(name));
    double oldest = job->submitted_at > 0 ? job->submitted_at / 1000.0 - RECONCILE_SLACK_S : 0;
    for (int page = 0; page < RECONCILE_PAGES; page++) {
        if ((rc = list_steps(d, cid, NULL, NULL, 0, marker, sizeof(marker), &got, err)) != SY_OK) {
            if (!err->retriable && cluster_unusable(d->aws)) {
                sy_job_end(job, SY_JOB_FAILED, "CLUSTER_UNAVAILABLE", "%s", err->msg);
                return SY_OK;
            }
            return rc;
        }
        bool older = false;
        for (size_t k = 0; k < got; k++) {
            if (!strcmp(d->steps[k].name, name)) {
                snprintf(job->backend_id, sizeof(job->backend_id), "%s", d->steps[k].id);
                apply(&d->steps[k], job);
                if (job->phase == SY_PHASE_NEW)
                    job->phase = SY_PHASE_PENDING;
                sy_info(LOG, "job %s: found its step %s on %s; not adding it again", job->job_id,
                        d->steps[k].id, cid);
                return SY_OK;
            }
            if (d->steps[k].created_at > 0 && d->steps[k].created_at < oldest)
                older = true; /* newest first: the rest is older still */
        }
        if (older || !*marker)
            break;
    }
    /* Not there. The previous attempt's AddJobFlowSteps may still be on its way (sent by a
     * worker that died, or timed out on our side while EMR was working on it): look once more
     * after that request's own timeout has surely passed, before adding the step. */
    emr_job_t *ej = job->driver_data;
    long long now = sy_time_mono_ms();
    if (!ej->reconcile_at)
        ej->reconcile_at = now;
    if (now - ej->reconcile_at < d->settle_ms)
        return sy_err_set(err, SY_ERR_NOT_FOUND, true,
                          "no step named %s on %s yet; looking again before adding it", name, cid);
    sy_info(LOG, "job %s: no step named %s on %s; it was never added", job->job_id, name, cid);
    return SY_OK;
}

static sy_err_code_t emr_poll(void *dv, sy_job_t *const *jobs, size_t n, int wait_ms, sy_err_t *err)
{
    emr_driver_t *d = dv;
    long long now = sy_time_mono_ms();
    if (now < d->next_round) {
        long long w = d->next_round - now;
        sy_driver_wait(&d->host, (int)(w < wait_ms ? w : wait_ms));
        return SY_OK;
    }
    d->next_round = now + d->interval_ms;
    sy_err_code_t rc = SY_OK;
    /* Each cluster id once (a runner's jobs normally share one; another only while the
     * registry's address changes under jobs in flight): the first of its jobs runs its round. */
    const char *done[8];
    size_t n_done = 0;
    for (size_t i = 0; i < n; i++) {
        if (!state_of(jobs[i], err))
            return err->code;
        const char *cid = cluster_of(jobs[i]);
        bool first = *cid != '\0';
        for (size_t j = 0; j < n_done && first; j++)
            first = strcmp(done[j], cid) != 0;
        if (first && n_done < sizeof(done) / sizeof(done[0]))
            done[n_done++] = cid;
        if (first && !client(d, jobs[i], err))
            return err->code;
        if (first) {
            sy_err_t e = SY_ERR_INIT;
            if (round_cluster(d, jobs, n, cid, &e) != SY_OK) {
                *err = e;
                rc = e.code;
            }
        }
    }
    live_logs(d, jobs, n);
    return rc;
}

static sy_err_code_t emr_cancel(void *dv, sy_job_t *job, sy_err_t *err)
{
    emr_driver_t *d = dv;
    json_t *resp = NULL;
    if (!*job->backend_id)
        return SY_OK;
    if (!client(d, job, err))
        return err->code;
    json_t *body = json_pack("{s:s, s:[s], s:s}", "ClusterId", cluster_of(job), "StepIds",
                             job->backend_id, "StepCancellationOption", "SEND_INTERRUPT");
    if (!body)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    sy_err_code_t rc =
        sy_aws_json_call(d->aws, "emr", "ElasticMapReduce.CancelSteps", body, &resp, err);
    json_decref(body);
    if (rc != SY_OK) {
        if (!err->retriable && cluster_unusable(d->aws)) {
            /* nothing left to cancel on a cluster that is gone; the next round says how it ended */
            sy_warn(LOG, "job %s: CancelSteps: %s", job->job_id, err->msg);
            rc = SY_OK;
        }
        return rc;
    }
    json_t *info = json_array_get(json_object_get(resp, "CancelStepsInfoList"), 0);
    const char *status = json_string_value(json_object_get(info, "Status"));
    if (status && strcmp(status, "SUBMITTED"))
        sy_warn(LOG, "job %s: EMR did not cancel step %s: %s", job->job_id, job->backend_id,
                json_string_value(json_object_get(info, "Reason"))
                    ? json_string_value(json_object_get(info, "Reason"))
                    : status);
    else
        sy_info(LOG, "job %s: cancelling step %s", job->job_id, job->backend_id);
    json_decref(resp);
    long long soon = sy_time_mono_ms() + CANCEL_RECHECK_MS;
    if (soon < d->next_round)
        d->next_round = soon;
    return SY_OK;
}

static void emr_forget(void *dv, sy_job_t *job)
{
    (void)dv;
    emr_job_t *ej = job->driver_data;
    if (!ej)
        return;
    sy_s3log_destroy(ej->logs);
    free(ej);
    job->driver_data = NULL;
}

const sy_driver_ops_t sy_driver_emr = {
    .kind = "emr",
    .host_bound = false,
    .default_max_in_flight = EMR_MAX_ACTIVE,
    .worker_limit = NULL,
    .open = emr_open,
    .close = emr_close,
    .submit = emr_submit,
    .resume = emr_resume,
    .poll = emr_poll,
    .cancel = emr_cancel,
    .fetch_logs = emr_fetch_logs,
    .forget = emr_forget,
};
