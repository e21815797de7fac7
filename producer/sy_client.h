/* sy_client: the Switchyard client library — submit jobs, follow their status and log events,
 * kill them. What `switchyard submit|status|logs|kill` are built on, and what another C service
 * links to submit jobs itself (static library switchyard-client).
 *
 * Topics (see docs/cli.md): requests go to <ns>.requests, kills to <ns>.control, both keyed by
 * job_id; status and log events are read from <ns>.status and <ns>.logs, also keyed by job_id.
 * Every producer here uses the murmur2 partitioner, so a job id always maps to the same
 * partition of each topic, and following a job reads exactly one partition of <ns>.status and
 * one of <ns>.logs (sy_kafka_partition_for_key), never a whole topic.
 *
 * Threads: sy_client_submit, sy_client_submit_async, sy_client_poll, sy_client_flush and
 * sy_client_kill may be called from several threads at once on one client. sy_client_follow
 * makes its own consumer per call, so any number of follows may run concurrently with each other
 * and with submits. Callbacks run in the thread that called the function that invokes them. */
#ifndef SY_CLIENT_H
#define SY_CLIENT_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sy_time.h"
#include "sy_codec.h"
#include "sy_config.h"
#include "sy_err.h"

#define SY_CLIENT_JOB_ID_MAX 128 /* bytes; the router refuses longer ids */
/* Status events and log chunks are looked up by their Kafka timestamps (offsets for times);
 * events written by hosts whose clocks run up to this much behind ours are still found. */
#define SY_CLIENT_CLOCK_SKEW_MS 30000
/* Default history window when looking a job up by id (status, logs, kill, submit --wait with
 * a caller-chosen id): 7 days, Kafka's default retention. */
#define SY_CLIENT_LOOKBACK_MS (7LL * 24 * 3600 * 1000)

typedef struct sy_client sy_client_t;

/* ---- Lifetime -------------------------------------------------------------------------------- */

/* A client configured from conf (bootstrap.servers, topic.namespace, broker.timeout.ms,
 * schema.registry.*, kafka.* passthrough). conf is borrowed and must outlive the client.
 * Makes the codec and an idempotent producer (enable.idempotence: a send librdkafka retries is
 * written once); no network I/O happens here — an unreachable broker shows up in the first call
 * that needs it. Returns NULL and fills err on failure (SY_ERR_CONFIG, SY_ERR_SCHEMA,
 * SY_ERR_KAFKA). */
sy_client_t *sy_client_new(const sy_config_t *conf, sy_err_t *err);

/* Gives up on requests not yet acknowledged (their ack callbacks run with SY_ERR_KAFKA
 * "purged"), then frees everything. Call sy_client_flush first to wait for them instead.
 * NULL is a no-op. */
void sy_client_destroy(sy_client_t *client);

/* The codec the client encodes and decodes with (borrowed; lives as long as the client), e.g.
 * for sy_codec_to_json on the records handed to follow callbacks. */
sy_codec_t *sy_client_codec(sy_client_t *client);

/* ---- Submit ---------------------------------------------------------------------------------- */

/* A set of tags a cluster or command must all carry ("key:value"; also the implicit
 * "switchyard.id:<id>" and "switchyard.name:<name>"). */
typedef struct sy_client_criterion {
    const char *const *tags;
    size_t n_tags;
} sy_client_criterion_t;

typedef struct sy_client_kv {
    const char *key;
    const char *value;
} sy_client_kv_t;

/* One job to submit. Every pointer is borrowed for the duration of the call only. */
typedef struct sy_client_job {
    const char *job_id; /* NULL or "" = generate one (sy_client_job_id_generate) */
    const char *name;   /* NULL = the job id */
    const char *user;   /* NULL = $USER, else the login name, else "unknown" */
    const char *grouping, *grouping_instance;      /* NULL = none (e.g. Airflow dag_id, run_id) */
    const sy_client_criterion_t *cluster_criteria; /* in order: later ones are fallbacks; >= 1 */
    size_t n_cluster_criteria;
    sy_client_criterion_t command_criterion; /* >= 1 tag */
    const char *const *args;                 /* appended to the command's argv */
    size_t n_args;
    const sy_client_kv_t *env; /* environment of the job; names [A-Za-z_][A-Za-z0-9_]* */
    size_t n_env;
    const sy_client_kv_t *meta; /* free-form metadata carried along */
    size_t n_meta;
    long long timeout_ms; /* the job is killed after this long; 0 = no limit */
} sy_client_job_t;

/* What a submission produced. */
typedef struct sy_client_receipt {
    char job_id[SY_CLIENT_JOB_ID_MAX + 1];
    long long submitted_at; /* the request's submitted_at, epoch milliseconds; strictly
                             * increasing per client, so it identifies this submission */
    int32_t partition;      /* where the request landed in <ns>.requests (-1 until acked) */
    int64_t offset;         /* (-1 until acked) */
} sy_client_receipt_t;

/* Checks job the way the router will (tag syntax with sy_tag_valid_criterion, job id syntax,
 * environment names, at least one cluster criterion and one command tag, timeout >= 0), so
 * mistakes are reported to the caller instead of becoming an INVALID status.
 * SY_ERR_INVALID_ARG with a message naming the offending value. */
sy_err_code_t sy_client_job_check(const sy_client_job_t *job, sy_err_t *err);

/* Builds a JobRequest from job, publishes it to <ns>.requests keyed by the job id, and returns
 * once the broker has acknowledged it (acks=all). *receipt (required) is filled, its job_id also
 * when the call fails after the id was chosen (so a caller can retry with the same id: the
 * router ignores a second request for a job id it has routed, emitting DUPLICATE).
 * Errors:
 *   SY_ERR_INVALID_ARG  job does not pass sy_client_job_check
 *   SY_ERR_TIMEOUT      (retriable) no acknowledgement within broker.timeout.ms: the broker is
 *                       unreachable. The request may still be delivered later by this client
 *                       (until it is destroyed) or may have been written without the ack
 *                       arriving; resubmitting with the same job id is safe either way.
 *   SY_ERR_REGISTRY     (retriable) the Schema Registry is unreachable; not retriable when it
 *                       refused (auth); SY_ERR_CONFLICT / SY_ERR_NOT_FOUND as in sy_codec_encode
 *   SY_ERR_KAFKA        the broker refused the request (e.g. topic missing, authorization) */
sy_err_code_t sy_client_submit(sy_client_t *client, const sy_client_job_t *job,
                               sy_client_receipt_t *receipt, sy_err_t *err);

/* Called once per sy_client_submit_async request when the broker acknowledged it (err NULL)
 * or it failed for good (err filled; receipt->partition/offset -1). Runs inside
 * sy_client_poll, sy_client_flush, sy_client_submit or sy_client_destroy, in that caller's
 * thread. receipt and err are valid during the call only. */
typedef void (*sy_client_ack_fn)(void *opaque, const sy_client_receipt_t *receipt,
                                 const sy_err_t *err);

/* As sy_client_submit, without waiting: the request is queued and *receipt (may be NULL) gets
 * its job id and submitted_at at once; ack (may be NULL) reports the outcome later. Many
 * requests in flight at once is how a service submits thousands of jobs per second.
 * Errors here are the synchronous ones (invalid job, registry, SY_ERR_KAFKA "queue full":
 * call sy_client_poll and retry). */
sy_err_code_t sy_client_submit_async(sy_client_t *client, const sy_client_job_t *job,
                                     sy_client_ack_fn ack, void *opaque,
                                     sy_client_receipt_t *receipt, sy_err_t *err);

/* Serves acknowledgements that have arrived (runs ack callbacks), waiting up to timeout_ms for
 * the first. Returns how many were served. */
int sy_client_poll(sy_client_t *client, int timeout_ms);

/* Waits until every queued request was acknowledged or failed (callbacks run), at most
 * timeout_ms (< 0: broker.timeout.ms). SY_ERR_TIMEOUT (retriable) when some are still pending. */
sy_err_code_t sy_client_flush(sy_client_t *client, int timeout_ms, sy_err_t *err);

/* ---- Kill ------------------------------------------------------------------------------------ */

/* Publishes a JobControl KILL for job_id to <ns>.control and waits for the broker's
 * acknowledgement. reason and requested_by may be NULL (requested_by: the default user).
 * It does not check that the job exists or still runs (sy_client_follow can): the worker that
 * runs the job cancels it on its backend and emits KILLED; a kill for a finished or unknown job
 * is ignored by the workers. Errors as for sy_client_submit. */
sy_err_code_t sy_client_kill(sy_client_t *client, const char *job_id, const char *reason,
                             const char *requested_by, sy_err_t *err);

/* ---- Follow ---------------------------------------------------------------------------------- */

/* One JobStatus event, handed to on_status. Strings are NULL when the field is null; all of it
 * is borrowed and valid during the callback only. */
typedef struct sy_client_status {
    const char *job_id;
    long long seq;
    const char *status; /* "ACCEPTED" ... "DUPLICATE" */
    const char *cluster, *command, *backend_id, *message, *failure_reason, *log_uri, *emitter;
    int attempt;
    long long emitted_at;
    long long submitted_at; /* 0 when null */
    bool has_exit_code;
    int exit_code;
    long long kafka_ts;         /* the record's Kafka timestamp, epoch ms */
    const avro_value_t *record; /* the decoded JobStatus (e.g. for sy_codec_to_json) */
} sy_client_status_t;

/* One chunk of a job's output, handed to on_log (already de-duplicated: see follow). */
typedef struct sy_client_log {
    const char *job_id;
    const char *stream; /* "stdout", "stderr", "driver", ... */
    long long offset;   /* byte offset of chunk[0] within the stream */
    const void *chunk;
    size_t len;
    int attempt;
    long long emitted_at;
} sy_client_log_t;

/* Why sy_client_follow returned SY_OK. */
typedef enum sy_client_end {
    SY_CLIENT_END_TERMINAL,  /* the job reached SUCCEEDED, FAILED, KILLED or INVALID */
    SY_CLIENT_END_CAUGHT_UP, /* until_caught_up: everything written so far was delivered */
    SY_CLIENT_END_DEADLINE,  /* deadline_ms passed first */
    SY_CLIENT_END_CANCELLED, /* cancelled() returned true */
    SY_CLIENT_END_STOPPED,   /* a callback returned non-zero */
} sy_client_end_t;

typedef struct sy_client_follow_opts {
    /* Read events from this time on (epoch ms; minus SY_CLIENT_CLOCK_SKEW_MS). 0 = now minus
     * lookback_ms. */
    long long from_ms;
    long long lookback_ms; /* 0 = SY_CLIENT_LOOKBACK_MS */
    /* > 0 right after this caller submitted the job: the submission's submitted_at. The
     * follower then waits for the router's answer to that very request (ACCEPTED or DUPLICATE
     * carrying this submitted_at) before deciding which run of the job to follow — see below. */
    long long submitted_at;
    long long deadline_ms; /* CLOCK_MONOTONIC ms (sy_time_mono_ms) to give up at; 0 = none */
    bool logs;             /* also read <ns>.logs and deliver chunks */
    /* Return once everything written so far is delivered instead of waiting for a terminal
     * status (`status`, `logs` without -f). */
    bool until_caught_up;
    /* How long after the terminal status the follower keeps reading log chunks written before
     * it (read up to the logs partition's end as of the terminal status); 0 = 5000 ms. */
    int log_drain_ms;
    int (*on_status)(void *opaque, const sy_client_status_t *status); /* non-zero: stop */
    int (*on_log)(void *opaque, const sy_client_log_t *log);          /* non-zero: stop */
    bool (*cancelled)(void *opaque); /* polled at least every 100 ms; NULL = never */
    void *opaque;
} sy_client_follow_opts_t;

typedef struct sy_client_outcome {
    sy_client_end_t end;
    char status[16];   /* latest state delivered ("" if none) */
    int exit_code;     /* the terminal event's exit_code, -1 if none */
    char message[512]; /* the latest event's message ("" if none) */
    bool duplicate;    /* the router answered our submission with DUPLICATE */
    int32_t status_partition, logs_partition; /* the partitions read (-1: not read) */
    long messages_read;                       /* records consumed, of any job (a cost measure) */
    long status_events, log_chunks;           /* delivered to the callbacks */
} sy_client_outcome_t;

/* Follows one job: delivers its status events to on_status and (with logs) its log chunks to
 * on_log, until a terminal status (or caught up, a deadline, cancellation, a callback's stop).
 *
 * Only the partition of <ns>.status and of <ns>.logs that job_id maps to are read, starting at
 * the offsets for from_ms (offsets for times), records of other jobs skipped by key. A job id
 * can have more than one *run* in that history: a run is the chain of events that starts with
 * the router's ACCEPTED (seq 1) for a request it routed. The follower delivers the newest run:
 *  - It first reads the status partition to its current end, remembering the newest run.
 *  - Without submitted_at, that run is the one delivered (replayed in order, then live). No
 *    event of the job in the window: SY_ERR_NOT_FOUND.
 *  - With submitted_at, it goes on until the router's answer to that submission: ACCEPTED
 *    starts a new run, which is followed; DUPLICATE (the id was routed before, so the router
 *    ignored the request) means the newest earlier run is the job, and it is followed — to its
 *    end, whether that lies in the past or the future. This is how a retried `submit --wait`
 *    with a stable job id re-attaches to the job started by the first try instead of running a
 *    second one. A DUPLICATE with no earlier run in the window is SY_ERR_NOT_FOUND (widen the
 *    lookback). A run that ended INVALID is never "the job" for a resubmission: the router did
 *    not record the id, so the resubmission starts a new run.
 * Status events are delivered once each in order: an event whose seq is not above the last one
 * delivered (a worker that took over a job may repeat one) is dropped; DUPLICATE (seq 0) is
 * passed on. Log chunks are read from the start of the run (its ACCEPTED time minus the clock
 * skew margin) and de-duplicated per (attempt, stream) by byte offset: a chunk wholly before
 * what was delivered is dropped, an overlapping one is trimmed, so each byte is delivered once,
 * in order. The terminal status is handed out last: first the chunks written before it (read up
 * to the end of the logs partition as it was when the terminal status arrived; at most
 * log_drain_ms), so a caller printing both shows all output before the outcome.
 *
 * Returns SY_OK with outcome->end saying why it stopped (a deadline is an outcome, not an
 * error). Errors: SY_ERR_INVALID_ARG (bad job id), SY_ERR_NOT_FOUND (above), SY_ERR_TIMEOUT
 * (retriable: the broker did not answer within broker.timeout.ms), SY_ERR_KAFKA (topic missing,
 * consumer failure), SY_ERR_REGISTRY (a writer schema could not be fetched). outcome (required)
 * is filled in every case. */
sy_err_code_t sy_client_follow(sy_client_t *client, const char *job_id,
                               const sy_client_follow_opts_t *opts, sy_client_outcome_t *outcome,
                               sy_err_t *err);

/* ---- Helpers --------------------------------------------------------------------------------- */

/* A fresh job id: "sy-" + UTC time (YYYYMMDDTHHMMSSmmmZ) + "-" + 16 random hex digits, e.g.
 * "sy-20240501T120000123Z-9f86d081884c7d65". Needs out of at least 48 bytes. */
void sy_client_job_id_generate(char *out, size_t size);

/* 1-128 characters of [A-Za-z0-9._:-] (the router's rule). */
bool sy_client_job_id_valid(const char *job_id, sy_err_t *err);

/* The default user: $USER, else the login name of the uid, else "unknown". Writes into buf. */
const char *sy_client_default_user(char *buf, size_t size);

/* SUCCEEDED, FAILED, KILLED, INVALID. */
bool sy_client_state_terminal(const char *status);

/* ---- Which run to follow (exposed for unit tests; the heart of sy_client_follow) ------------- */

/* Takes a job's status events in partition order and decides which run to deliver, by the
 * rules given at sy_client_follow. Keeps a copy of each event of the newest run. */
typedef struct sy_client_tracker sy_client_tracker_t;

/* submitted_at > 0: wait for the router's answer to the submission made at that time. */
sy_client_tracker_t *sy_client_tracker_new(long long submitted_at);
void sy_client_tracker_destroy(sy_client_tracker_t *t);

/* Adds one event of the job: its state, seq and submitted_at (0 if null), its Kafka timestamp,
 * and the record's bytes (copied). Returns 1 if kept, 0 if dropped as a repeat (seq not above
 * the last kept one), -1 when out of memory. */
int sy_client_tracker_add(sy_client_tracker_t *t, const char *status, long long seq,
                          long long submitted_at, long long ts, const void *data, size_t len);

typedef struct sy_client_track_info {
    bool decided;   /* the run to deliver is known (no submitted_at, or the answer was seen) */
    bool has_run;   /* there is a run (some event of the job was kept) */
    bool terminal;  /* the run has ended (SUCCEEDED, FAILED, KILLED, INVALID) */
    bool duplicate; /* the answer to our submission was DUPLICATE */
    long long run_start_ts; /* Kafka timestamp of the run's ACCEPTED; 0 if it lies before the
                             * window (the run was joined in the middle) */
    unsigned generation;    /* bumps whenever a new run replaces the previous one */
} sy_client_track_info_t;
void sy_client_tracker_info(const sy_client_tracker_t *t, sy_client_track_info_t *info);

/* The next event of the run not handed out yet (decided runs only): true with the bytes and
 * timestamp given to add (borrowed until the next add or destroy); false when none. */
bool sy_client_tracker_next(sy_client_tracker_t *t, const void **data, size_t *len, long long *ts);

/* ---- Log de-duplication (exposed for unit tests; used by follow) ----------------------------- */

/* Byte positions delivered so far, per (attempt, stream). */
typedef struct sy_client_logpos sy_client_logpos_t;
sy_client_logpos_t *sy_client_logpos_new(void);
void sy_client_logpos_destroy(sy_client_logpos_t *lp);
/* For a chunk [offset, offset+len) of (attempt, stream): how many leading bytes to skip because
 * they were delivered already; len when all were (drop it). Records the chunk as delivered.
 * A chunk beyond the delivered end (a gap) is delivered whole. -1 when out of memory. */
long long sy_client_logpos_accept(sy_client_logpos_t *lp, int attempt, const char *stream,
                                  long long offset, size_t len);

#endif
