/* sy_emr: the pure part of the EMR steps driver — the AddJobFlowSteps request built from a
 * command's `emr` spec and a job, and the parsers of ListSteps answers — with no I/O, so unit
 * tests and fuzz targets reach them on captured bytes. sy_driver_emr.c does the calls. */
#ifndef SY_EMR_H
#define SY_EMR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sy_err.h"
#include "sy_job.h"

/* Step names are "switchyard:<job_id>": what resume() looks for after a crash. */
#define SY_EMR_STEP_PREFIX "switchyard:"

typedef enum sy_emr_step_state {
    SY_EMR_UNKNOWN = 0,
    SY_EMR_PENDING,
    SY_EMR_CANCEL_PENDING,
    SY_EMR_RUNNING,
    SY_EMR_COMPLETED,
    SY_EMR_CANCELLED,
    SY_EMR_FAILED,
    SY_EMR_INTERRUPTED,
} sy_emr_step_state_t;

/* One step of a ListSteps answer. Strings are truncated copies. */
typedef struct sy_emr_step {
    char id[64];
    char name[300];
    sy_emr_step_state_t state;
    double created_at; /* Status.Timeline.CreationDateTime, epoch seconds; 0 when absent */
    /* FailureDetails and StateChangeReason, cut to what a status message can show (a worker
     * keeps a page of these per cluster) */
    char failure_reason[96], failure_message[256], failure_log[256];
    char state_message[160];
} sy_emr_step_t;

/* The state named s (EMR's spelling), SY_EMR_UNKNOWN for anything else (NULL included). */
sy_emr_step_state_t sy_emr_step_state_parse(const char *s);
const char *sy_emr_step_state_name(sy_emr_step_state_t st);
/* PENDING, CANCEL_PENDING, RUNNING: what ListSteps' active filter returns. */
bool sy_emr_step_active(sy_emr_step_state_t st);

/* The step name for job_id into buf (always NUL-terminated). */
void sy_emr_step_name(const char *job_id, char *buf, size_t size);

/* The AddJobFlowSteps body for job on cluster_id: one step named sy_emr_step_name(job_id),
 * HadoopJarStep {Jar, MainClass, Args = spec "args" + job->args (an argv array: no shell),
 * Properties = spec "properties" + the job's environment (EMR has no per-step environment; the
 * step's main class reads them as Java properties)}, ActionOnFailure = spec
 * "action_on_failure" or CONTINUE. spec: the command's `emr` object (as the registry
 * validated it). On success *body is a new reference. SY_ERR_INVALID_ARG (not retriable) for a
 * spec or argument EMR would refuse (a string over 10240 characters). */
sy_err_code_t sy_emr_build_step(const json_t *spec, const sy_job_t *job, const char *cluster_id,
                                json_t **body, sy_err_t *err);

/* Parses a ListSteps answer: up to max steps into out (*n of them) and the paging Marker into
 * marker (size bytes; "" on the last page). Steps without an Id are skipped. SY_ERR_JSON when
 * resp is not a ListSteps answer (no "Steps" array). */
sy_err_code_t sy_emr_parse_steps(const json_t *resp, sy_emr_step_t *out, size_t max, size_t *n,
                                 char *marker, size_t size, sy_err_t *err);

/* How a step that left the active set ended, into job (sy_job_end): COMPLETED → SUCCEEDED;
 * FAILED → FAILED with FailureDetails (reason STEP_FAILED or EMR's Reason, message and log
 * file); CANCELLED → KILLED; INTERRUPTED → FAILED (INTERRUPTED: the cluster went away or
 * was resized under it). An active step sets job->phase PENDING or RUNNING instead. */
void sy_emr_apply_step(const sy_emr_step_t *step, sy_job_t *job);

#endif
