/* sy_emr_eks: the pure parts of the EMR on EKS driver (backend kind "emr-eks", AWS
 * emr-containers) — job-run states and how they move a job, the parsers of ListJobRuns and
 * DescribeJobRun answers, the StartJobRun request built from the command's spec and the request,
 * the clientToken and job-run name derived from the job id, and the CloudWatch Logs stream names
 * of a job run's Spark driver. No I/O and no shared state: unit tests
 * (tests/unit/test_driver_emr_eks.c) and fuzz targets call them on captured bytes. The driver
 * that does the calls is worker/sy_driver_emr_eks.c. */
#ifndef SY_EMR_EKS_H
#define SY_EMR_EKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sy_err.h"
#include "sy_job.h"

/* ---- Job-run states -------------------------------------------------------------------------- */

typedef enum sy_emr_eks_state {
    SY_EMR_EKS_UNKNOWN = 0, /* absent, or a state this build does not know */
    SY_EMR_EKS_PENDING,
    SY_EMR_EKS_SUBMITTED,
    SY_EMR_EKS_RUNNING,
    SY_EMR_EKS_CANCEL_PENDING,
    SY_EMR_EKS_COMPLETED,
    SY_EMR_EKS_FAILED,
    SY_EMR_EKS_CANCELLED,
} sy_emr_eks_state_t;

/* The state spelled s (exact, upper case); UNKNOWN for NULL or anything else. */
sy_emr_eks_state_t sy_emr_eks_state_parse(const char *s);
/* "PENDING", ...; "UNKNOWN" for UNKNOWN or out of range. */
const char *sy_emr_eks_state_name(sy_emr_eks_state_t state);
/* PENDING, SUBMITTED, RUNNING, CANCEL_PENDING: the job run has not ended. */
bool sy_emr_eks_state_active(sy_emr_eks_state_t state);

/* The ListJobRuns query filter for exactly the active states ("states=PENDING&states=..."). */
extern const char SY_EMR_EKS_ACTIVE_QUERY[];

#define SY_EMR_EKS_ID_MAX 64 /* job-run and virtual-cluster ids: [0-9a-z]{1,64} */

/* Whether s is such an id. */
bool sy_emr_eks_id_valid(const char *s);

/* One job run as an answer describes it. */
typedef struct sy_emr_eks_run {
    char id[SY_EMR_EKS_ID_MAX + 1];
    sy_emr_eks_state_t state;
    char failure_reason[32]; /* FAILED: INTERNAL_ERROR, USER_ERROR, VALIDATION_ERROR,
                                CLUSTER_UNAVAILABLE; "" when absent */
    char state_details[257]; /* "" when absent (the API allows 256 characters) */
} sy_emr_eks_run_t;

/* Moves job to what run says:
 *   PENDING, SUBMITTED → SY_PHASE_PENDING;  RUNNING → SY_PHASE_RUNNING;
 *   CANCEL_PENDING → unchanged (being cancelled; RUNNING for a job not seen before);
 *   COMPLETED → ended SUCCEEDED;
 *   FAILED → ended FAILED, failure_reason = the run's failureReason (JOB_RUN_FAILED when
 *            absent), message = its stateDetails;
 *   CANCELLED → ended KILLED, message = stateDetails (the runner supplies the reason);
 *   UNKNOWN → unchanged (PENDING for a job not seen before).
 * A job that has ended already is left alone. Returns whether job->phase changed. */
bool sy_emr_eks_apply(sy_job_t *job, const sy_emr_eks_run_t *run);

/* ---- Parsers of emr-containers answers ------------------------------------------------------- */

/* A jobRun object (DescribeJobRun's "jobRun", an item of ListJobRuns' "jobRuns") into out.
 * SY_ERR_AWS (not retriable) when it is not an object or its id is missing or not
 * [0-9a-z]{1,64}. A missing or unknown state is UNKNOWN; longer strings are truncated. */
sy_err_code_t sy_emr_eks_run_from_json(const json_t *jobrun, sy_emr_eks_run_t *out, sy_err_t *err);

/* A DescribeJobRun answer ({"jobRun": {...}}) as bytes. Errors: SY_ERR_JSON for bytes that are
 * not JSON, SY_ERR_AWS for JSON of another shape. */
sy_err_code_t sy_emr_eks_parse_describe(const char *body, size_t len, sy_emr_eks_run_t *out,
                                        sy_err_t *err);

/* One page of a ListJobRuns answer. Owned by the caller: sy_emr_eks_page_clear. */
typedef struct sy_emr_eks_page {
    sy_emr_eks_run_t *runs; /* n of them (NULL when n is 0) */
    size_t n;
    char *next_token; /* the nextToken to ask for the next page; NULL on the last page */
} sy_emr_eks_page_t;

/* A ListJobRuns answer object ({"jobRuns": [...], "nextToken": "..."}) into out (overwritten;
 * nothing to free on failure). A missing jobRuns is an empty page; an empty nextToken is none.
 * Errors: SY_ERR_AWS for another shape or a run sy_emr_eks_run_from_json refuses,
 * SY_ERR_NOMEM. */
sy_err_code_t sy_emr_eks_page_from_json(const json_t *answer, sy_emr_eks_page_t *out,
                                        sy_err_t *err);
/* The same from the answer's bytes (SY_ERR_JSON when they are not JSON). */
sy_err_code_t sy_emr_eks_parse_page(const char *body, size_t len, sy_emr_eks_page_t *out,
                                    sy_err_t *err);
void sy_emr_eks_page_clear(sy_emr_eks_page_t *page); /* NULL-safe; leaves it empty */

/* ---- Names derived from the job id ----------------------------------------------------------- */

/* StartJobRun's clientToken: 64 lowercase hex digits, the SHA-256 of
 * "switchyard/emr-eks" NUL <ns> NUL <job_id> NUL <attempt in decimal>. The same job id and
 * attempt always give the same token (a resubmission is the same job run); the topic namespace
 * keeps two Switchyard installations in one AWS account apart. */
#define SY_EMR_EKS_TOKEN_LEN 64
void sy_emr_eks_client_token(const char *ns, const char *job_id, int attempt,
                             char out[SY_EMR_EKS_TOKEN_LEN + 1]);

/* The job run's name (the API allows [.-_/#A-Za-z0-9], 1-64 characters): the job id with every
 * other character as '_'; a longer id keeps its first 47 characters, then '-' and the first 16
 * hex digits of the SHA-256 of the whole id. */
#define SY_EMR_EKS_NAME_MAX 64
void sy_emr_eks_job_name(const char *job_id, char out[SY_EMR_EKS_NAME_MAX + 1]);

/* ---- The StartJobRun request ----------------------------------------------------------------- */

/* Where a job run's logs go, from configuration_overrides.monitoringConfiguration. Every string
 * is malloc'd, NULL when absent; sy_emr_eks_logs_clear frees them. */
typedef struct sy_emr_eks_logs {
    char *group;  /* cloudWatchMonitoringConfiguration.logGroupName */
    char *prefix; /* cloudWatchMonitoringConfiguration.logStreamNamePrefix */
    char *s3_uri; /* s3MonitoringConfiguration.logUri */
} sy_emr_eks_logs_t;
void sy_emr_eks_logs_clear(sy_emr_eks_logs_t *logs); /* NULL-safe */

/* The logs part of a command's "emr-eks" spec (JSON text). logs is overwritten (nothing to free
 * on failure). SY_ERR_INVALID_ARG when the spec is not a JSON object or a monitoring field is
 * not a string. */
sy_err_code_t sy_emr_eks_spec_logs(const char *spec_json, sy_emr_eks_logs_t *logs, sy_err_t *err);

/* The StartJobRun body for job (job->command_spec is the command's "emr-eks" entry, see
 * sy_registry_spec_valid): name (sy_emr_eks_job_name), clientToken (sy_emr_eks_client_token with
 * ns), releaseLabel, executionRoleArn, jobDriver.sparkSubmitJobDriver {entryPoint,
 * entryPointArguments = the spec's followed by job->args (an array: never a shell string),
 * sparkSubmitParameters}, configurationOverrides (a copy of the spec's) and
 * retryPolicyConfiguration {maxAttempts}.
 *
 * Environment: job->env, then SWITCHYARD_JOB_ID, SWITCHYARD_ATTEMPT and SWITCHYARD_CLUSTER, go
 * into configurationOverrides.applicationConfiguration's "spark-defaults" classification (made
 * when the spec has none) as spark.kubernetes.driverEnv.<NAME> and spark.executorEnv.<NAME>
 * properties — JSON values, so no quoting of a sparkSubmitParameters string is involved. They
 * replace properties of the same name from the spec.
 *
 * *body receives a new object (json_decref). SY_ERR_INVALID_ARG, naming the spec field, when the
 * spec lacks a required field or has one of the wrong type; SY_ERR_NOMEM. */
sy_err_code_t sy_emr_eks_start_request(const sy_job_t *job, const char *ns, json_t **body,
                                       sy_err_t *err);

/* ---- CloudWatch Logs streams of a job run ---------------------------------------------------- */

/* "<prefix>/<vc>/jobs/<run>/containers/" (without "<prefix>/" when prefix is NULL or ""): the
 * stream-name prefix under which EMR on EKS writes every container's stdout and stderr of job
 * run `run` of virtual cluster `vc`. false when it does not fit in size. */
bool sy_emr_eks_stream_prefix(const char *prefix, const char *vc, const char *run, char *buf,
                              size_t size);

/* The stream of the Spark driver's `stream` ("stdout" or "stderr") as EMR on EKS names it when
 * the Spark application id is the default, spark-<run>:
 * "<stream prefix>spark-<run>/spark-<run>-driver/<stream>". false when it does not fit. */
bool sy_emr_eks_driver_stream(const char *prefix, const char *vc, const char *run,
                              const char *stream, char *buf, size_t size);

/* Whether name (a stream under sy_emr_eks_stream_prefix) is a Spark driver pod's `stream`:
 * ".../<application id>/<pod name ending in -driver>/<stream>". */
bool sy_emr_eks_is_driver_stream(const char *name, const char *stream);

#endif
