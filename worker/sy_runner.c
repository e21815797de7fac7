/* sy_runner: one cluster's jobs, driven by one thread through the cluster's driver. */
#include "sy_time.h"
#include "sy_runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "sy_log.h"

#define IDLE_WAIT_MS     1000 /* longest sleep: delivery bookkeeping runs at least this often */
#define ACK_WAIT_MS      20   /* while a job waits for Kafka's acknowledgements */
#define RETRY_BASE_MS    500  /* first retry of a failed step; doubles up to RETRY_MAX_MS */
#define RETRY_MAX_MS     30000
#define LEDGER_RETRY_MS  2000
#define FETCH_LOGS_TRIES 10    /* a remote job's final log fetch, before ending without them */
#define OWNER_CHECK_MS   10000 /* host-bound jobs re-assert their ownership this often */
#define LOGS_SAVE_MS     1000  /* remote jobs record their acknowledged log positions this often */

typedef enum stage {
    ST_SUBMIT, /* to submit (or reconcile first: needs_resume) */
    ST_RECORD, /* the backend has it: record the backend id */
    ST_RESUME, /* taken over in SUBMITTED/RUNNING: ask the backend */
    ST_ACTIVE, /* polled until it ends; kills and timeouts act here */
    ST_ENDING, /* ended: last logs, their acknowledgements, then the terminal state */
    ST_FINAL,  /* terminal in the ledger: waiting for the status to be acknowledged */
} stage_t;

typedef enum kill_class { KILL_NONE, KILL_REQUESTED, KILL_TIMEOUT, KILL_STOPPING } kill_class_t;

typedef struct rjob {
    sy_job_t *job;
    sy_emit_track_t *track;
    stage_t stage;
    sy_job_state_t state;       /* as the ledger has it */
    sy_job_state_t event_state; /* the latest event's (state has no event for SUBMITTING) */
    long long last_seq;         /* seq of the latest event (the ledger's next_seq - 1) */
    long long sent_seq;         /* latest seq handed to the producer */
    long long saved_seq;        /* emitted_seq as recorded in the ledger */
    /* the latest event's details, published again as they are if its delivery failed */
    bool has_exit_code;
    int exit_code;
    char failure_reason[64];
    char *message; /* malloc'd; NULL = "" (as kill_reason and topic: a worker holds
                      thousands of jobs, so no fixed-size text buffers here) */
    kill_class_t kill;
    char *kill_reason;
    bool cancel_sent;
    long long timeout_at; /* epoch ms; 0 = none */
    char *topic;
    int32_t partition;
    int64_t offset;
    bool durable_sent;
    long long retry_at; /* monotonic ms */
    int retries;
    bool needs_resume; /* the backend may have it already: ask before submitting */
    bool capped;       /* past worker.log.max.bytes: output is dropped */
    int fetch_tries;
    long long checked_at; /* monotonic ms of the last ownership check (host-bound jobs) or
                             record of log positions (remote jobs) */
    long long logs_saved; /* remote jobs: log bytes (all streams) the ledger has as published */
    bool done;            /* let go at the end of this round */
    bool claimed;         /* claimed by this worker (not taken over) */
    struct rjob *next;
} rjob_t;

/* The text of an optional string field ("" for NULL). */
static const char *str(const char *s)
{
    return s ? s : "";
}

/* Replaces *field with a copy of value (NULL for "" or NULL). Out of memory leaves it NULL:
 * only a message is lost, never the job. */
static void set_str(char **field, const char *value)
{
    free(*field);
    *field = value && *value ? strdup(value) : NULL;
}

typedef enum msg_type { M_ADD, M_KILL, M_DROP, M_STOP } msg_type_t;

/* A message to the runner. Small on purpose: a backlog of thousands of jobs can sit in the
 * inbox at once, and what it held would stay behind as heap fragments. */
typedef struct msg {
    msg_type_t type;
    struct rjob *rj; /* M_ADD: the job, made from its ledger row by the sender */
    char *job_id;    /* M_KILL (malloc'd, as reason and topic) */
    char *reason;    /* M_KILL, M_STOP */
    char *topic;     /* M_DROP */
    int32_t *parts;
    size_t n_parts;
    bool done; /* M_DROP: the runner has let go (the sender frees the message) */
    struct msg *next;
} msg_t;

typedef struct event_node {
    sy_runner_event_t ev;
    struct event_node *next;
} event_node_t;

struct sy_runner {
    const sy_config_t *conf;
    char cluster[128], kind[16], session[256];
    char *db_url;
    long long lease_ms, log_max;
    const sy_driver_ops_t *ops;
    void *drv;           /* NULL when ops is NULL or open failed */
    char drv_error[512]; /* why there is no driver instance */
    sy_driver_host_t host;
    sy_emit_t *emit;
    int wake_fd;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* inbox, events, cond */
    pthread_cond_t cond;
    msg_t *inbox, **inbox_tail;
    event_node_t *events, **events_tail;
    atomic_bool quit;
    atomic_size_t n_jobs;
    /* the thread's own */
    sy_ledger_t *ledger;
    long long ledger_retry_at;
    bool stopping;
    rjob_t *jobs;
    sy_job_t **active;
    size_t active_cap;
};

static void wake(sy_runner_t *r)
{
    uint64_t one = 1;
    if (write(r->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        sy_debug("worker", "wake: %s", strerror(errno));
}

static void push_event(sy_runner_t *r, sy_runner_event_type_t type, const rjob_t *rj)
{
    event_node_t *n = calloc(1, sizeof(*n));
    if (!n) {
        sy_error("worker", "out of memory: event for job %s lost", rj->job->job_id);
        return;
    }
    n->ev.type = type;
    snprintf(n->ev.job_id, sizeof(n->ev.job_id), "%s", rj->job->job_id);
    snprintf(n->ev.topic, sizeof(n->ev.topic), "%s", str(rj->topic));
    n->ev.partition = rj->partition;
    n->ev.offset = rj->offset;
    pthread_mutex_lock(&r->lock);
    *r->events_tail = n;
    r->events_tail = &n->next;
    pthread_mutex_unlock(&r->lock);
}

bool sy_runner_next_event(sy_runner_t *r, sy_runner_event_t *ev)
{
    pthread_mutex_lock(&r->lock);
    event_node_t *n = r->events;
    if (n) {
        r->events = n->next;
        if (!r->events)
            r->events_tail = &r->events;
    }
    pthread_mutex_unlock(&r->lock);
    if (!n)
        return false;
    *ev = n->ev;
    free(n);
    return true;
}

static void backoff(rjob_t *rj)
{
    long long delay = RETRY_BASE_MS << (rj->retries < 6 ? rj->retries : 6);
    rj->retry_at = sy_time_mono_ms() + (delay < RETRY_MAX_MS ? delay : RETRY_MAX_MS);
    rj->retries++;
}

/* ---- the log sink (called by the driver, on this thread) ------------------------------------- */

static void sink_log(void *opaque, sy_job_t *job, const char *stream, const void *data, size_t len)
{
    sy_runner_t *r = opaque;
    rjob_t *rj = job->runner_data;
    sy_err_t err = SY_ERR_INIT;
    int slot = sy_ledger_logs_slot(&job->logs, stream);
    if (!rj || rj->capped || !len)
        return;
    if (slot < 0) {
        sy_warn("worker", "job %s: too many log streams; \"%s\" dropped", job->job_id, stream);
        return;
    }
    long long total = sy_ledger_logs_total(&job->logs);
    size_t keep = len;
    if (total + (long long)len > r->log_max) {
        keep = total < r->log_max ? (size_t)(r->log_max - total) : 0;
        rj->capped = true;
    }
    if (keep) {
        if (sy_emit_log(r->emit, job->job_id, job->attempt, stream, job->logs.s[slot].offset, data,
                        keep, rj->track, &err) != SY_OK)
            sy_warn("worker", "job %s: log chunk lost: %s", job->job_id, err.msg);
        job->logs.s[slot].offset += (long long)keep;
    }
    if (rj->capped) {
        char notice[256];
        int n = snprintf(notice, sizeof(notice),
                         "\n[switchyard: this job's output reached worker.log.max.bytes (%lld "
                         "bytes); the rest is discarded]\n",
                         r->log_max);
        sy_warn("worker", "job %s: output past %lld bytes is discarded", job->job_id, r->log_max);
        if (sy_emit_log(r->emit, job->job_id, job->attempt, stream, job->logs.s[slot].offset,
                        notice, (size_t)n, rj->track, &err) != SY_OK)
            sy_warn("worker", "job %s: log notice lost: %s", job->job_id, err.msg);
        job->logs.s[slot].offset += n;
    }
}

static size_t sink_room(void *opaque, const sy_job_t *job)
{
    sy_runner_t *r = opaque;
    const rjob_t *rj = job->runner_data;
    if (rj && rj->capped)
        return SIZE_MAX / 2; /* read at full speed, everything is dropped */
    return sy_emit_log_room(r->emit);
}

/* ---- status events --------------------------------------------------------------------------- */

static void publish(sy_runner_t *r, rjob_t *rj)
{
    sy_job_t *job = rj->job;
    sy_err_t err = SY_ERR_INIT;
    sy_status_event_t ev = {.job_id = job->job_id,
                            .seq = rj->last_seq,
                            .state = rj->event_state,
                            .cluster = job->cluster_name,
                            .command = job->command_name,
                            .backend_id = job->backend_id,
                            .message = str(rj->message),
                            .failure_reason = rj->failure_reason,
                            .attempt = job->attempt,
                            .has_exit_code = rj->has_exit_code,
                            .exit_code = rj->exit_code,
                            .submitted_at = job->submitted_at};
    if (sy_emit_status(r->emit, &ev, rj->track, &err) != SY_OK) {
        sy_warn("worker", "job %s: status %s not published yet: %s", job->job_id,
                sy_job_state_name(rj->state), err.msg);
        return;
    }
    rj->sent_seq = rj->last_seq;
    sy_info("worker", "job %s: %s (seq %lld)%s%s", job->job_id, sy_job_state_name(rj->event_state),
            rj->last_seq, rj->message ? ": " : "", str(rj->message));
}

/* Publishes the latest event if it was not, again if its delivery failed, and records in the
 * ledger what was acknowledged. */
static void deliveries(sy_runner_t *r, rjob_t *rj)
{
    if (rj->last_seq < SY_LEDGER_FIRST_SEQ)
        return;
    long long acked = sy_emit_track_acked_seq(rj->track);
    long long delivered = acked > rj->saved_seq ? acked : rj->saved_seq; /* saved: before us */
    if (rj->sent_seq < rj->last_seq) {
        publish(r, rj);
    } else if (delivered < rj->sent_seq && sy_emit_track_pending(rj->track) == 0) {
        sy_warn("worker", "job %s: status seq %lld was not delivered; publishing it again",
                rj->job->job_id, rj->sent_seq);
        publish(r, rj);
    }
    if (acked > rj->saved_seq && r->ledger) {
        sy_err_t err = SY_ERR_INIT;
        if (sy_ledger_set_emitted(r->ledger, rj->job->job_id, acked, &err) == SY_OK)
            rj->saved_seq = acked;
        else
            sy_warn("worker", "job %s: %s", rj->job->job_id, err.msg);
    }
}

/* ---- ledger transitions ---------------------------------------------------------------------- */

/* Applies change; on success updates rj (state, seq, the event's details, kill flag). A lost job
 * (another owner, or it ended meanwhile) is let go; other failures are retried later. */
static bool record(sy_runner_t *r, rjob_t *rj, const sy_ledger_change_t *change)
{
    sy_err_t err = SY_ERR_INIT;
    sy_ledger_result_t res;
    if (!r->ledger) {
        rj->retry_at = sy_time_mono_ms() + LEDGER_RETRY_MS;
        return false;
    }
    sy_err_code_t rc = sy_ledger_transition(r->ledger, rj->job->job_id, change, &res, &err);
    if (rc == SY_ERR_CONFLICT || rc == SY_ERR_NOT_FOUND) {
        sy_warn("worker", "%s; letting go of it", err.msg);
        rj->done = true;
        return false;
    }
    if (rc != SY_OK) {
        sy_warn("worker", "job %s: recording %s: %s; retrying", rj->job->job_id,
                sy_job_state_name(change->state), err.msg);
        backoff(rj);
        return false;
    }
    rj->retries = 0;
    rj->retry_at = 0;
    rj->state = change->state;
    if (change->emit) {
        rj->event_state = change->state;
        rj->last_seq = res.seq;
        rj->has_exit_code = change->has_exit_code;
        rj->exit_code = change->exit_code;
        snprintf(rj->failure_reason, sizeof(rj->failure_reason), "%s",
                 change->failure_reason ? change->failure_reason : "");
        set_str(&rj->message, change->message);
    }
    if (change->emit)
        publish(r, rj); /* each event, in order (deliveries() retries a failed one) */
    if (res.kill_requested && rj->kill == KILL_NONE) {
        rj->kill = KILL_REQUESTED;
        set_str(&rj->kill_reason, res.kill_reason);
    }
    if (!rj->durable_sent && (rj->state == SY_JOB_SUBMITTED || rj->state == SY_JOB_RUNNING ||
                              sy_job_state_terminal(rj->state))) {
        rj->durable_sent = true;
        push_event(r, SY_RUNNER_DURABLE, rj);
    }
    return true;
}

/* Ends a job that never reached its backend (or cannot be run): terminal at once. */
static void end_early(sy_runner_t *r, rjob_t *rj, sy_job_state_t state, const char *reason,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void end_early(sy_runner_t *r, rjob_t *rj, sy_job_state_t state, const char *reason,
                      const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sy_utf8_scrub(msg); /* to PostgreSQL text and an Avro string: cut short, still UTF-8 */
    sy_ledger_change_t ch = {
        .state = state, .emit = true, .failure_reason = reason, .message = msg};
    if (record(r, rj, &ch))
        rj->stage = ST_FINAL;
}

/* ---- the stages ------------------------------------------------------------------------------ */

static void step_active(sy_runner_t *r, rjob_t *rj);

static void step_record(sy_runner_t *r, rjob_t *rj)
{
    sy_job_t *job = rj->job;
    if (!rj->timeout_at && job->timeout_ms > 0)
        rj->timeout_at = sy_time_wall_ms() + job->timeout_ms;
    sy_ledger_change_t ch = {.state = SY_JOB_SUBMITTED,
                             .emit = true,
                             .backend_id = job->backend_id,
                             .timeout_at_ms = rj->timeout_at};
    if (record(r, rj, &ch)) {
        rj->stage = ST_ACTIVE;
        step_active(r, rj); /* RUNNING right away when the backend says so */
    }
}

static void step_submit(sy_runner_t *r, rjob_t *rj)
{
    sy_job_t *job = rj->job;
    sy_err_t err = SY_ERR_INIT;
    if (!r->drv) {
        end_early(r, rj, SY_JOB_FAILED, "NO_DRIVER", "%s", r->drv_error);
        return;
    }
    if (rj->state == SY_JOB_SUBMITTING && rj->needs_resume) {
        if (r->ops->resume(r->drv, job, &err) != SY_OK) {
            sy_warn("worker", "job %s: asking %s about it: %s; retrying", job->job_id, r->cluster,
                    err.msg);
            backoff(rj);
            return;
        }
        rj->needs_resume = false;
        if (job->phase == SY_PHASE_ENDED && !*job->backend_id) {
            rj->stage = ST_ENDING; /* a host-bound job that died with its worker */
            return;
        }
        if (job->phase != SY_PHASE_NEW) {
            rj->stage = ST_RECORD;
            step_record(r, rj);
            return;
        }
    }
    if (rj->kill != KILL_NONE) {
        end_early(r, rj, SY_JOB_KILLED, "KILL_REQUESTED", "killed before it started: %s",
                  str(rj->kill_reason));
        return;
    }
    if (rj->state == SY_JOB_CLAIMED) {
        sy_ledger_change_t ch = {.state = SY_JOB_SUBMITTING};
        if (!record(r, rj, &ch))
            return;
        if (rj->kill != KILL_NONE) {
            end_early(r, rj, SY_JOB_KILLED, "KILL_REQUESTED", "killed before it started: %s",
                      str(rj->kill_reason));
            return;
        }
    }
    job->failure_reason[0] = '\0';
    if (r->ops->submit(r->drv, job, &err) != SY_OK) {
        if (err.retriable) {
            sy_warn("worker", "job %s: submitting to %s: %s; retrying", job->job_id, r->cluster,
                    err.msg);
            /* a remote backend may have it anyway: ask first next time (a host-bound one
             * knows it started nothing) */
            rj->needs_resume = !r->ops->host_bound;
            backoff(rj);
            return;
        }
        end_early(r, rj, SY_JOB_FAILED,
                  *job->failure_reason ? job->failure_reason : "SUBMIT_FAILED", "%s", err.msg);
        return;
    }
    rj->stage = ST_RECORD;
    step_record(r, rj);
}

static void step_resume(sy_runner_t *r, rjob_t *rj)
{
    sy_err_t err = SY_ERR_INIT;
    if (!r->drv) {
        end_early(r, rj, SY_JOB_FAILED, "NO_DRIVER", "%s", r->drv_error);
        return;
    }
    if (r->ops->resume(r->drv, rj->job, &err) != SY_OK) {
        sy_warn("worker", "job %s: asking %s about it: %s; retrying", rj->job->job_id, r->cluster,
                err.msg);
        backoff(rj);
        return;
    }
    if (rj->job->phase == SY_PHASE_NEW)
        sy_job_end(rj->job, SY_JOB_FAILED, "BACKEND_LOST", "%s no longer knows job %s", r->cluster,
                   rj->job->backend_id);
    rj->stage = ST_ACTIVE;
}

/* A remote job's driver publishes its logs while it runs (EMR on EKS from CloudWatch): record
 * how far, so a new owner after a crash re-publishes little. Only positions Kafka acknowledged
 * are recorded (nothing in flight for the job), so no output is skipped; what was published
 * after the last record is published again at the same offsets, which consumers drop.
 * false when the job was lost (it is let go). */
static bool save_remote_logs(sy_runner_t *r, rjob_t *rj)
{
    sy_err_t err = SY_ERR_INIT;
    long long total = sy_ledger_logs_total(&rj->job->logs);
    if (total == rj->logs_saved || sy_emit_track_pending(rj->track) > 0)
        return true;
    sy_err_code_t rc = sy_ledger_save_logs(r->ledger, rj->job->job_id, &rj->job->logs, &err);
    if (rc == SY_ERR_CONFLICT || rc == SY_ERR_NOT_FOUND) {
        sy_warn("worker", "%s; letting go of it", err.msg);
        rj->done = true;
        return false;
    }
    if (rc == SY_OK)
        rj->logs_saved = total;
    else
        sy_warn("worker", "job %s: recording log positions: %s", rj->job->job_id, err.msg);
    return true;
}

static void step_active(sy_runner_t *r, rjob_t *rj)
{
    sy_job_t *job = rj->job;
    sy_err_t err = SY_ERR_INIT;
    if (job->phase == SY_PHASE_RUNNING && rj->state == SY_JOB_SUBMITTED) {
        sy_ledger_change_t ch = {.state = SY_JOB_RUNNING, .emit = true};
        if (!record(r, rj, &ch))
            return;
    }
    if (job->phase == SY_PHASE_ENDED) {
        rj->stage = ST_ENDING;
        return;
    }
    if (rj->kill == KILL_NONE && rj->timeout_at && sy_time_wall_ms() >= rj->timeout_at) {
        rj->kill = KILL_TIMEOUT;
        char why[64];
        snprintf(why, sizeof(why), "timed out after %lld ms", job->timeout_ms);
        set_str(&rj->kill_reason, why);
        sy_info("worker", "job %s: %s; cancelling it", job->job_id, str(rj->kill_reason));
    }
    long long now = sy_time_mono_ms();
    if (r->ops->host_bound && now - rj->checked_at >= OWNER_CHECK_MS) {
        /* nobody else can stop this process: if the job was taken over (this worker was
         * thought dead), stop it now rather than when it ends */
        rj->checked_at = now;
        sy_err_code_t rc = sy_ledger_save_logs(r->ledger, job->job_id, &job->logs, &err);
        if (rc == SY_ERR_CONFLICT || rc == SY_ERR_NOT_FOUND) {
            sy_warn("worker", "%s; stopping it here", err.msg);
            rj->done = true;
            return;
        }
    }
    if (!r->ops->host_bound && now - rj->checked_at >= LOGS_SAVE_MS) {
        rj->checked_at = now;
        if (!save_remote_logs(r, rj))
            return;
    }
    if (rj->kill != KILL_NONE && !rj->cancel_sent) {
        if (r->ops->cancel(r->drv, job, &err) == SY_OK) {
            rj->cancel_sent = true;
        } else {
            sy_warn("worker", "job %s: cancel: %s; retrying", job->job_id, err.msg);
            backoff(rj);
        }
    }
}

/* The terminal state, reason and message from the backend's outcome and why we cancelled. */
static void final_change(const rjob_t *rj, sy_ledger_change_t *ch, char *msg, size_t size)
{
    const sy_job_t *job = rj->job;
    ch->state = job->outcome;
    ch->failure_reason = *job->failure_reason ? job->failure_reason : NULL;
    snprintf(msg, size, "%s", job->message);
    if (job->outcome == SY_JOB_KILLED && rj->cancel_sent) {
        static const char *const reasons[] = {"CANCELLED", "KILL_REQUESTED", "TIMEOUT",
                                              "WORKER_STOPPED"};
        ch->failure_reason = reasons[rj->kill];
        if (rj->kill == KILL_STOPPING)
            ch->state = SY_JOB_FAILED; /* not the user's doing */
        snprintf(msg, size, "%.400s (%.500s)", str(rj->kill_reason), job->message);
    } else if (job->outcome == SY_JOB_KILLED && !ch->failure_reason) {
        ch->failure_reason = "CANCELLED";
    }
    sy_utf8_scrub(msg); /* to PostgreSQL text and an Avro string: cut short, still UTF-8 */
    ch->message = msg;
    ch->emit = true;
    ch->has_exit_code = job->has_exit_code;
    ch->exit_code = job->exit_code;
    ch->logs = &job->logs;
}

static void step_ending(sy_runner_t *r, rjob_t *rj)
{
    sy_err_t err = SY_ERR_INIT;
    if (r->drv && r->ops->fetch_logs && rj->fetch_tries >= 0) {
        if (r->ops->fetch_logs(r->drv, rj->job, true, &err) == SY_OK) {
            rj->fetch_tries = -1;
        } else if (++rj->fetch_tries >= FETCH_LOGS_TRIES) {
            sy_warn("worker", "job %s: giving up on its logs: %s", rj->job->job_id, err.msg);
            rj->fetch_tries = -1;
        } else {
            backoff(rj);
            return;
        }
    }
    if (sy_emit_track_pending(rj->track) > 0)
        return; /* the terminal status follows the last log chunk */
    if (sy_emit_track_log_failures(rj->track))
        sy_warn("worker", "job %s: %ld log chunk(s) could not be delivered", rj->job->job_id,
                sy_emit_track_log_failures(rj->track));
    char msg[1024];
    sy_ledger_change_t ch = {0};
    final_change(rj, &ch, msg, sizeof(msg));
    if (record(r, rj, &ch))
        rj->stage = ST_FINAL;
}

static void step(sy_runner_t *r, rjob_t *rj, long long now)
{
    if (rj->done)
        return;
    deliveries(r, rj);
    if (now >= rj->retry_at && r->ledger) {
        switch (rj->stage) {
        case ST_SUBMIT:
            step_submit(r, rj);
            break;
        case ST_RECORD:
            step_record(r, rj);
            break;
        case ST_RESUME:
            step_resume(r, rj);
            break;
        case ST_ACTIVE:
            step_active(r, rj);
            break;
        case ST_ENDING:
            step_ending(r, rj);
            break;
        case ST_FINAL:
            break;
        }
    }
    if (rj->done)
        return;
    deliveries(r, rj);
    if (rj->stage == ST_FINAL && rj->saved_seq >= rj->last_seq)
        rj->done = true;
}

/* ---- jobs in and out ------------------------------------------------------------------------- */

/* Frees a job the runner no longer holds (its driver state already forgotten). NULL-safe. */
static void free_rjob(rjob_t *rj)
{
    if (!rj)
        return;
    sy_emit_track_release(rj->track);
    sy_job_destroy(rj->job);
    free(rj->message);
    free(rj->kill_reason);
    free(rj->topic);
    free(rj);
}

static void release(sy_runner_t *r, rjob_t *rj)
{
    if (rj->job->driver_data && r->drv)
        r->ops->forget(r->drv, rj->job);
    push_event(r, SY_RUNNER_RELEASED, rj);
    free_rjob(rj);
    atomic_fetch_sub(&r->n_jobs, 1);
}

static void free_msg(msg_t *m)
{
    if (!m)
        return;
    free_rjob(m->rj);
    free(m->job_id);
    free(m->reason);
    free(m->topic);
    free(m->parts);
    free(m);
}

static rjob_t *find(sy_runner_t *r, const char *job_id)
{
    for (rjob_t *rj = r->jobs; rj; rj = rj->next)
        if (!strcmp(rj->job->job_id, job_id))
            return rj;
    return NULL;
}

/* A job in the runner's hands, from its ledger row (any thread: nothing shared is touched).
 * NULL when out of memory (job is then destroyed). */
static rjob_t *prepare(sy_job_t *job, const sy_ledger_row_t *row, bool claimed, long long log_max)
{
    rjob_t *rj = calloc(1, sizeof(*rj));
    if (!rj || !(rj->track = sy_emit_track_new())) {
        sy_error("worker", "out of memory: job %s not taken", job->job_id);
        free(rj);
        sy_job_destroy(job);
        return NULL;
    }
    rj->job = job;
    job->runner_data = rj;
    rj->claimed = claimed;
    rj->state = row->state;
    rj->event_state = row->state == SY_JOB_SUBMITTING ? SY_JOB_CLAIMED : row->state;
    rj->last_seq = row->next_seq - 1;
    rj->saved_seq = row->emitted_seq;
    rj->sent_seq = claimed ? 0 : row->emitted_seq;
    rj->has_exit_code = row->has_exit_code;
    rj->exit_code = row->exit_code;
    snprintf(rj->failure_reason, sizeof(rj->failure_reason), "%s", row->failure_reason);
    set_str(&rj->message, row->message);
    if (row->kill_requested) {
        rj->kill = KILL_REQUESTED;
        set_str(&rj->kill_reason, row->kill_reason);
    }
    rj->timeout_at = row->timeout_at_ms;
    rj->checked_at = sy_time_mono_ms();
    set_str(&rj->topic, row->source_topic);
    rj->partition = row->source_partition;
    rj->offset = row->source_offset;
    job->logs = row->logs;
    snprintf(job->backend_id, sizeof(job->backend_id), "%s", row->backend_id);
    rj->capped = sy_ledger_logs_total(&job->logs) >= log_max;
    rj->logs_saved = sy_ledger_logs_total(&job->logs);
    switch (row->state) {
    case SY_JOB_CLAIMED:
        rj->stage = ST_SUBMIT;
        break;
    case SY_JOB_SUBMITTING:
        rj->stage = ST_SUBMIT;
        rj->needs_resume = true;
        break;
    case SY_JOB_SUBMITTED:
    case SY_JOB_RUNNING:
        rj->stage = ST_RESUME;
        rj->durable_sent = true;
        break;
    default:
        rj->stage = ST_FINAL;
        rj->durable_sent = true;
        break;
    }
    return rj;
}

static void add_job(sy_runner_t *r, msg_t *m)
{
    rjob_t *rj = m->rj;
    m->rj = NULL; /* now on the runner's list */
    if (!rj->claimed)
        sy_info("worker", "job %s: taken over in state %s (seq %lld)", rj->job->job_id,
                sy_job_state_name(rj->state), rj->last_seq);
    rj->next = r->jobs;
    r->jobs = rj;
    if (r->stopping && rj->stage <= ST_RESUME)
        rj->done = true;
}

/* Whether a job stays on M_STOP / M_DROP: host-bound ones that reached their backend. */
static bool stays(const sy_runner_t *r, const rjob_t *rj)
{
    return r->ops && r->ops->host_bound && rj->stage >= ST_RECORD;
}

static void handle(sy_runner_t *r, msg_t *m)
{
    switch (m->type) {
    case M_ADD:
        add_job(r, m);
        break;
    case M_KILL: {
        rjob_t *rj = find(r, m->job_id);
        if (rj && rj->kill == KILL_NONE && rj->stage < ST_ENDING) {
            rj->kill = KILL_REQUESTED;
            set_str(&rj->kill_reason, m->reason);
            sy_info("worker", "job %s: kill requested: %s", m->job_id, m->reason);
        }
        break;
    }
    case M_DROP:
        for (rjob_t *rj = r->jobs; rj; rj = rj->next) {
            if (strcmp(str(rj->topic), m->topic) || stays(r, rj))
                continue;
            for (size_t i = 0; i < m->n_parts; i++)
                if (m->parts[i] == rj->partition)
                    rj->done = true;
        }
        break;
    case M_STOP:
        r->stopping = true;
        for (rjob_t *rj = r->jobs; rj; rj = rj->next) {
            if (!stays(r, rj)) {
                rj->done = true;
            } else if (rj->stage <= ST_ACTIVE && rj->kill == KILL_NONE) {
                rj->kill = KILL_STOPPING;
                set_str(&rj->kill_reason, m->reason);
            }
        }
        break;
    }
}

/* Releases the jobs marked done. */
static void sweep(sy_runner_t *r)
{
    for (rjob_t **p = &r->jobs; *p;) {
        rjob_t *rj = *p;
        if (rj->done) {
            *p = rj->next;
            release(r, rj);
        } else {
            p = &rj->next;
        }
    }
}

static void process_inbox(sy_runner_t *r)
{
    uint64_t v;
    if (read(r->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        sy_debug("worker", "wake: %s", strerror(errno));
    pthread_mutex_lock(&r->lock);
    msg_t *list = r->inbox;
    r->inbox = NULL;
    r->inbox_tail = &r->inbox;
    pthread_mutex_unlock(&r->lock);
    bool dropped = false;
    while (list) {
        msg_t *m = list;
        list = m->next;
        handle(r, m);
        if (m->type == M_DROP) {
            dropped = true;
            sweep(r); /* let go before the sender carries on */
            pthread_mutex_lock(&r->lock);
            m->done = true;
            pthread_mutex_unlock(&r->lock);
        } else {
            free_msg(m);
        }
    }
    if (dropped) {
        pthread_mutex_lock(&r->lock);
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
    }
}

static void ensure_ledger(sy_runner_t *r, long long now)
{
    sy_err_t err = SY_ERR_INIT;
    if (r->ledger || now < r->ledger_retry_at)
        return;
    if (!(r->ledger = sy_ledger_open(r->db_url, r->session, r->lease_ms, &err))) {
        sy_warn("worker", "cluster %s: ledger: %s; retrying", r->cluster, err.msg);
        r->ledger_retry_at = now + LEDGER_RETRY_MS;
    }
}

static int wait_for(sy_runner_t *r, long long now)
{
    long long wait = IDLE_WAIT_MS, wall = sy_time_wall_ms();
    for (rjob_t *rj = r->jobs; rj; rj = rj->next) {
        if (rj->retry_at > now && rj->retry_at - now < wait)
            wait = rj->retry_at - now;
        if ((rj->stage == ST_ENDING || rj->stage == ST_FINAL) && rj->retry_at <= now)
            wait = wait < ACK_WAIT_MS ? wait : ACK_WAIT_MS;
        if (rj->timeout_at && rj->kill == KILL_NONE && rj->timeout_at - wall < wait)
            wait = rj->timeout_at - wall;
        if (rj->kill != KILL_NONE && !rj->cancel_sent)
            wait = 0;
    }
    if (!r->ledger)
        wait = wait < LEDGER_RETRY_MS ? wait : LEDGER_RETRY_MS;
    return wait < 0 ? 0 : (int)wait;
}

static void *run(void *arg)
{
    sy_runner_t *r = arg;
    sy_err_t err = SY_ERR_INIT;
    while (!atomic_load(&r->quit)) {
        long long now = sy_time_mono_ms();
        process_inbox(r);
        ensure_ledger(r, now);
        for (rjob_t *rj = r->jobs; rj; rj = rj->next)
            step(r, rj, now);
        sweep(r);
        size_t n = 0;
        for (rjob_t *rj = r->jobs; rj; rj = rj->next)
            if (rj->stage == ST_ACTIVE && rj->job->phase != SY_PHASE_ENDED && n < r->active_cap)
                r->active[n++] = rj->job;
        int wait = wait_for(r, sy_time_mono_ms());
        if (n && r->drv) {
            if (r->ops->poll(r->drv, r->active, n, wait, &err) != SY_OK) {
                sy_warn("worker", "cluster %s: poll: %s", r->cluster, err.msg);
                sy_driver_wait(&r->host, wait);
            }
        } else {
            sy_driver_wait(&r->host, wait);
        }
    }
    for (rjob_t *rj = r->jobs; rj; rj = rj->next)
        rj->done = true;
    sweep(r);
    return NULL;
}

/* ---- the main thread's side ------------------------------------------------------------------ */

static void post(sy_runner_t *r, msg_t *m)
{
    pthread_mutex_lock(&r->lock);
    *r->inbox_tail = m;
    r->inbox_tail = &m->next;
    pthread_mutex_unlock(&r->lock);
    wake(r);
}

sy_runner_t *sy_runner_new(const sy_runner_opts_t *o, sy_err_t *err)
{
    sy_runner_t *r = calloc(1, sizeof(*r));
    if (!r) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    r->wake_fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->inbox_tail = &r->inbox;
    r->events_tail = &r->events;
    r->conf = o->conf;
    snprintf(r->cluster, sizeof(r->cluster), "%s", o->cluster_name);
    snprintf(r->kind, sizeof(r->kind), "%s", o->backend_kind);
    snprintf(r->session, sizeof(r->session), "%s", o->session);
    r->lease_ms = o->lease_ms;
    r->log_max = sy_config_get_int(o->conf, "worker.log.max.bytes");
    r->ops = o->ops;
    r->emit = o->emit;
    r->active_cap = 4096;
    if (!(r->db_url = strdup(o->db_url ? o->db_url : "")) ||
        !(r->active = calloc(r->active_cap, sizeof(*r->active)))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto fail;
    }
    if ((r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        sy_err_set(err, SY_ERR_IO, false, "eventfd: %s", strerror(errno));
        goto fail;
    }
    r->host = (sy_driver_host_t){.conf = o->conf,
                                 .cluster_name = r->cluster,
                                 .wake_fd = r->wake_fd,
                                 .log = sink_log,
                                 .log_room = sink_room,
                                 .opaque = r};
    if (!r->ops) {
        snprintf(r->drv_error, sizeof(r->drv_error),
                 "this worker has no driver for backend kind \"%s\"", r->kind);
    } else {
        sy_err_t derr = SY_ERR_INIT;
        if (!(r->drv = r->ops->open(&r->host, &derr))) {
            snprintf(r->drv_error, sizeof(r->drv_error), "the %s driver cannot start: %.400s",
                     r->kind, derr.msg);
            sy_error("worker", "cluster %s: %s", r->cluster, r->drv_error);
        }
    }
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        sy_err_set(err, SY_ERR_INTERNAL, false, "cannot start the runner thread");
        goto fail;
    }
    r->started = true;
    return r;
fail:
    sy_runner_destroy(r);
    return NULL;
}

void sy_runner_destroy(sy_runner_t *r)
{
    if (!r)
        return;
    if (r->started) {
        atomic_store(&r->quit, true);
        wake(r);
        pthread_join(r->thread, NULL);
    }
    process_inbox(r); /* frees what arrived too late (M_DROP senders are not waiting any more) */
    for (rjob_t *rj = r->jobs; rj; rj = rj->next)
        rj->done = true;
    sweep(r);
    while (r->events) {
        event_node_t *n = r->events;
        r->events = n->next;
        free(n);
    }
    if (r->ops && r->drv)
        r->ops->close(r->drv);
    sy_ledger_close(r->ledger);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r->active);
    free(r->db_url);
    free(r);
}

const char *sy_runner_cluster(const sy_runner_t *r)
{
    return r->cluster;
}

const sy_driver_ops_t *sy_runner_ops(const sy_runner_t *r)
{
    return r->ops;
}

size_t sy_runner_jobs(const sy_runner_t *r)
{
    return atomic_load(&((sy_runner_t *)r)->n_jobs);
}

void sy_runner_add(sy_runner_t *r, sy_job_t *job, const sy_ledger_row_t *row, bool claimed)
{
    msg_t *m = calloc(1, sizeof(*m));
    if (!m) {
        sy_error("worker", "out of memory: job %s not started", job->job_id);
        sy_job_destroy(job);
        return;
    }
    if (!(m->rj = prepare(job, row, claimed, r->log_max))) {
        free(m);
        return;
    }
    m->type = M_ADD;
    atomic_fetch_add(&r->n_jobs, 1);
    post(r, m);
}

void sy_runner_kill(sy_runner_t *r, const char *job_id, const char *reason)
{
    msg_t *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    m->type = M_KILL;
    if (!(m->job_id = strdup(job_id)) || !(m->reason = strdup(reason ? reason : ""))) {
        free_msg(m);
        return;
    }
    post(r, m);
}

void sy_runner_drop(sy_runner_t *r, const char *topic, const int32_t *parts, size_t n)
{
    msg_t *m = calloc(1, sizeof(*m));
    if (!m || !(m->parts = calloc(n ? n : 1, sizeof(int32_t)))) {
        free(m);
        sy_error("worker", "out of memory: cannot let go of jobs of %s", topic);
        return;
    }
    m->type = M_DROP;
    if (!(m->topic = strdup(topic))) {
        free_msg(m);
        sy_error("worker", "out of memory: cannot let go of jobs of %s", topic);
        return;
    }
    memcpy(m->parts, parts, n * sizeof(int32_t));
    m->n_parts = n;
    post(r, m);
    pthread_mutex_lock(&r->lock);
    while (!m->done)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
    free_msg(m);
}

void sy_runner_stop_jobs(sy_runner_t *r, const char *reason)
{
    msg_t *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    m->type = M_STOP;
    if (!(m->reason = strdup(reason ? reason : ""))) {
        free_msg(m);
        return;
    }
    post(r, m);
}
