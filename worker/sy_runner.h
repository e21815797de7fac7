/* sy_runner: one cluster's jobs, driven by one thread through the cluster's driver — submit
 * (intent in the ledger first, backend id after), poll, kills and timeouts, logs, and the
 * status events CLAIMED (10), SUBMITTED, RUNNING, SUCCEEDED / FAILED / KILLED with the
 * ledger's sequence numbers. A terminal status is published only after every log chunk of the
 * job has been acknowledged, and recorded as delivered only once it is.
 *
 * The worker's main thread hands jobs over (claimed or taken over) and reads back events
 * (backend id durable: the input offset may be committed; job released: capacity is free).
 * Every call below is made from the main thread and never blocks on the backend, except
 * sy_runner_drop, which waits until the runner has let go. */
#ifndef SY_RUNNER_H
#define SY_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sy_config.h"
#include "sy_driver.h"
#include "sy_emit.h"
#include "sy_err.h"
#include "sy_job.h"
#include "sy_ledger.h"

typedef struct sy_runner sy_runner_t;

typedef struct sy_runner_opts {
    const sy_config_t *conf;
    const char *cluster_name;
    const char *backend_kind;
    const sy_driver_ops_t *ops; /* NULL: no driver for backend_kind here; its jobs end FAILED */
    sy_emit_t *emit;
    const char *db_url;
    const char *session; /* this worker's ledger session */
    long long lease_ms;
} sy_runner_opts_t;

/* Opens the driver instance and starts the thread (which connects to the ledger itself, and
 * keeps trying while the database is away). Strings are copied; conf and emit are borrowed and
 * must outlive the runner. NULL with err filled on failure. */
sy_runner_t *sy_runner_new(const sy_runner_opts_t *opts, sy_err_t *err);

/* Stops the thread and releases everything. Jobs still held are let go as they are (their
 * ledger rows stay, for the next owner); call sy_runner_stop_jobs first for a clean stop.
 * NULL-safe. */
void sy_runner_destroy(sy_runner_t *r);

const char *sy_runner_cluster(const sy_runner_t *r);
const sy_driver_ops_t *sy_runner_ops(const sy_runner_t *r);

/* Hands a job over (job is taken over). row is its ledger row (copied; row->routed_job is not
 * needed). claimed: this worker just claimed it (row state CLAIMED, its CLAIMED event is still
 * to be published); otherwise it was taken over and continues from the row's state. */
void sy_runner_add(sy_runner_t *r, sy_job_t *job, const sy_ledger_row_t *row, bool claimed);

/* Kill request for a job this runner may hold (ignored if it does not). reason is shown in the
 * KILLED status. */
void sy_runner_kill(sy_runner_t *r, const char *job_id, const char *reason);

/* Lets go of every job from topic's partitions parts[0..n-1] that another worker can resume
 * (host-bound jobs stay: their process lives here). Returns once the runner has let go. */
void sy_runner_drop(sy_runner_t *r, const char *topic, const int32_t *parts, size_t n);

/* Shutdown: host-bound jobs still running are cancelled and end FAILED (WORKER_STOPPED, with
 * reason as message); jobs that did not reach their backend yet, and remote ones, are let go
 * for the next owner. Asynchronous: wait for sy_runner_jobs() to reach 0. */
void sy_runner_stop_jobs(sy_runner_t *r, const char *reason);

/* Jobs held right now (any stage), and the host-bound ones among them. */
size_t sy_runner_jobs(const sy_runner_t *r);

typedef enum sy_runner_event_type {
    SY_RUNNER_DURABLE,  /* the job's backend id (or its end) is in the ledger */
    SY_RUNNER_RELEASED, /* the runner let go of the job (ended, dropped or lost) */
} sy_runner_event_type_t;

typedef struct sy_runner_event {
    sy_runner_event_type_t type;
    char job_id[129];
    char topic[256];
    int32_t partition;
    int64_t offset;
} sy_runner_event_t;

/* The next event, if any (false when there is none). */
bool sy_runner_next_event(sy_runner_t *r, sy_runner_event_t *ev);

#endif
