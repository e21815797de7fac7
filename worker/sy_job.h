/* sy_job: one job as a worker holds it — what its RoutedJob asks for, what the backend reports,
 * and how much of each log stream has been handed on. The runner and the drivers share it. */
#ifndef SY_JOB_H
#define SY_JOB_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>

#include "sy_err.h"
#include "sy_ledger.h"

/* Where the backend is with the job, as the driver last saw it. */
typedef enum sy_job_phase {
    SY_PHASE_NEW,     /* not submitted yet (or not found on the backend after a takeover) */
    SY_PHASE_PENDING, /* the backend has it; not running yet */
    SY_PHASE_RUNNING,
    SY_PHASE_ENDED, /* outcome and the fields after it are filled */
} sy_job_phase_t;

/* Every string is malloc'd and owned by the job (sy_job_destroy frees them); NULL when the
 * RoutedJob has none. Drivers read the request part and write the backend part. */
typedef struct sy_job {
    /* ---- the request (set once, then read-only) ---------------------------------------------- */
    char *job_id, *cluster_name, *backend_kind, *command_name;
    char *backend_address; /* EMR cluster id, virtual cluster id; NULL for local */
    char *region;
    char *command_spec; /* JSON: the command's spec for this backend kind */
    int attempt;
    int max_concurrent;     /* the cluster's, at routing time; 0 = backend limit only */
    long long timeout_ms;   /* 0 = none */
    long long submitted_at; /* the request's, epoch ms; 0 = unknown */
    char **args;            /* request arguments, appended to the command's template */
    size_t n_args;
    char **env; /* request environment as "NAME=value" */
    size_t n_env;

    /* ---- the backend (written by the driver) ------------------------------------------------- */
    char backend_id[256]; /* "" until submitted (or reconciled) */
    sy_job_phase_t phase;
    sy_job_state_t outcome; /* phase ENDED: SY_JOB_SUCCEEDED, _FAILED or _KILLED */
    bool has_exit_code;
    int exit_code;
    char failure_reason[64]; /* machine-readable: NON_ZERO_EXIT, SIGNAL_9, EXEC_FAILED, ... */
    char message[512];       /* human-readable detail */

    /* ---- logs: bytes of each stream handed to the log sink so far (the sink advances it) ----- */
    sy_ledger_logs_t logs;

    void *driver_data; /* the driver's own per-job state; released by its forget() */
    void *runner_data; /* the runner's; drivers leave it alone */
} sy_job_t;

/* An empty job with job_id and attempt 1 (for tests and for building by hand). NULL when out of
 * memory. */
sy_job_t *sy_job_new(const char *job_id);

/* A job from a RoutedJob value (sy_codec_value_new(SY_TYPE_ROUTED_JOB)), copying everything
 * it needs: the value may be reused afterwards. SY_ERR_INVALID_ARG when job_id, cluster_name,
 * backend_kind or command_spec is missing. */
sy_err_code_t sy_job_from_routed(avro_value_t *routed, sy_job_t **out, sy_err_t *err);

/* NULL-safe. driver_data must have been released by the driver first. */
void sy_job_destroy(sy_job_t *job);

/* Appends an argument / an environment entry (copied). SY_ERR_NOMEM on failure. */
sy_err_code_t sy_job_add_arg(sy_job_t *job, const char *arg, sy_err_t *err);
sy_err_code_t sy_job_add_env(sy_job_t *job, const char *name, const char *value, sy_err_t *err);

/* For drivers: the job has ended with outcome (SUCCEEDED, FAILED or KILLED); failure_reason may
 * be NULL; the message is printf-formatted (may be NULL). Sets phase ENDED. */
void sy_job_end(sy_job_t *job, sy_job_state_t outcome, const char *failure_reason, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

#endif
