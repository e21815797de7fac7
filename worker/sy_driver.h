/* sy_driver: the interface between a cluster's runner and its backend — submit, resume after a
 * takeover, poll every job of the cluster in one go, cancel, fetch logs — and the table of
 * drivers by backend kind. One file per driver (sy_driver_<kind>.c); adding a backend is that
 * file plus one line in sy_driver.c.
 *
 * Threading: a runner opens one driver instance per cluster and calls it from its own thread
 * only, so an instance needs no locking; instances of the same driver in other runners run
 * concurrently (no shared mutable state between instances).
 *
 * Exactly-once: the runner records the intent (ledger state SUBMITTING) before submit() and
 * the backend id after it. A driver whose backend has an idempotency token derives it from
 * job_id + attempt; one without (EMR steps) names the work after job_id so that resume() can
 * find it again. */
#ifndef SY_DRIVER_H
#define SY_DRIVER_H

#include <stdbool.h>
#include <stddef.h>

#include "sy_config.h"
#include "sy_err.h"
#include "sy_job.h"

/* What a runner gives the driver instance it opens. Borrowed: valid until close(). */
typedef struct sy_driver_host {
    const sy_config_t *conf;
    const char *cluster_name;
    /* Readable when the runner has work (a new job, a kill): poll() must return early. Drivers
     * only wait on it, never read it. */
    int wake_fd;
    /* The log sink: the next len bytes of job's stream (e.g. "stdout"), in order, at most
     * SY_DRIVER_CHUNK_MAX at a time. It publishes them and advances job->logs. */
    void (*log)(void *opaque, sy_job_t *job, const char *stream, const void *data, size_t len);
    /* How many bytes the sink takes for job right now: 0 = it is full (stop reading output;
     * the job's writes then block, which is the back-pressure); large when the job's output is
     * being discarded (past its cap). */
    size_t (*log_room)(void *opaque, const sy_job_t *job);
    void *opaque;
} sy_driver_host_t;

/* Largest piece of output handed to the sink at once (one JobLog chunk). */
#define SY_DRIVER_CHUNK_MAX 65536

typedef struct sy_driver_ops {
    const char *kind; /* "local", "emr", "emr-eks": the registry's backend_kind */
    /* Jobs live inside this worker process: nobody else can resume them (see resume()). */
    bool host_bound;
    /* Cluster-wide limit on jobs in flight when the cluster sets none (EMR: 256); 0 = none. */
    int default_max_in_flight;
    /* Limit on this worker's jobs of one cluster (local: CPUs); NULL or 0 = none. */
    int (*worker_limit)(const sy_config_t *conf);

    /* An instance for one cluster; NULL with err filled on failure. */
    void *(*open)(const sy_driver_host_t *host, sy_err_t *err);
    /* Releases the instance; every job has been forgotten before. NULL-safe. */
    void (*close)(void *d);

    /* Starts job on the backend. On success job->backend_id is set and job->phase is PENDING,
     * RUNNING or ENDED. On failure: retriable errors may be retried (after resume(), since the
     * backend may have the job anyway); others end the job — the driver may fill
     * job->failure_reason / job->message to say why (else the runner uses SUBMIT_FAILED). */
    sy_err_code_t (*submit)(void *d, sy_job_t *job, sy_err_t *err);

    /* Picks up a job another worker (or an earlier run of this one) started: job->backend_id is
     * the ledger's ("" when only the intent was recorded), job->logs what was already
     * published. Sets job->phase from the backend; PHASE_NEW with no backend id means the
     * backend never got it and the runner submits it. A host-bound driver cannot re-attach and
     * ends the job (FAILED, WORKER_LOST). */
    sy_err_code_t (*resume)(void *d, sy_job_t *job, sy_err_t *err);

    /* Refreshes the phase of every job in jobs[0..n-1] (all this instance's jobs that have
     * not ended) in as few backend calls as possible, and hands new output to the log sink.
     * Returns when something changed, when the wake fd is readable, or after at most wait_ms;
     * a driver with nothing to wait on waits with sy_driver_wait(). Errors are about the whole
     * poll (e.g. the backend is unreachable): the runner logs them and polls again later. */
    sy_err_code_t (*poll)(void *d, sy_job_t *const *jobs, size_t n, int wait_ms, sy_err_t *err);

    /* Asks the backend to stop job. Asynchronous: the job ends (KILLED) in a later poll. */
    sy_err_code_t (*cancel)(void *d, sy_job_t *job, sy_err_t *err);

    /* Optional (NULL when logs stream through poll): publishes logs beyond job->logs, for
     * backends whose logs appear elsewhere (S3, CloudWatch). final: the job has ended and this
     * is the last call; return SY_OK once everything there is has been handed to the sink. */
    sy_err_code_t (*fetch_logs)(void *d, sy_job_t *job, bool final, sy_err_t *err);

    /* Drops the driver's state for job (it ended, or the runner lets go of it). Must not block
     * for long; a host-bound driver stops a job that is still running. */
    void (*forget)(void *d, sy_job_t *job);
} sy_driver_ops_t;

/* The driver for backend_kind, or NULL when this build has none. */
const sy_driver_ops_t *sy_driver_find(const char *backend_kind);

/* Waits until host->wake_fd is readable or ms pass (for drivers with nothing else to wait on). */
void sy_driver_wait(const sy_driver_host_t *host, int ms);

/* The drivers (one file each). */
extern const sy_driver_ops_t sy_driver_local;
extern const sy_driver_ops_t sy_driver_emr;
extern const sy_driver_ops_t sy_driver_emr_eks;

#endif
