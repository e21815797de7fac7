/* sy_ledger: the job ledger in PostgreSQL — one row per job id (state, backend id, owner,
 * per-job status sequence numbers, log positions, kill flag, timeout) plus the roster of live
 * worker sessions, so submission is exactly-once and any worker can take over any job.
 *
 * Ownership rules every write follows: a worker session claims a job (insert) or adopts it
 * (compare-and-set of owner); every later change is a compare-and-set on owner = this session
 * and on a state that is not terminal. A worker that lost a job therefore gets SY_ERR_CONFLICT
 * instead of overwriting its new owner's work. Status sequence numbers are allocated by the
 * same statement that changes the state, so a takeover continues from next_seq and never
 * reuses one. Tables: core/migrations/0002_ledger.sql. */
#ifndef SY_LEDGER_H
#define SY_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sy_err.h"

/* The schema version (core/migrations) the ledger tables need. */
#define SY_LEDGER_SCHEMA_VERSION 2

/* The first seq a worker gives a job's events (the CLAIMED event); the router uses 1-3. */
#define SY_LEDGER_FIRST_SEQ 10

/* ---- States ---------------------------------------------------------------------------------- */

typedef enum sy_job_state {
    SY_JOB_CLAIMED,    /* a worker took it; nothing sent to the backend yet */
    SY_JOB_SUBMITTING, /* intent recorded: the backend may have it; reconcile before resending */
    SY_JOB_SUBMITTED,  /* the backend id is durable */
    SY_JOB_RUNNING,
    SY_JOB_SUCCEEDED,
    SY_JOB_FAILED,
    SY_JOB_KILLED,
} sy_job_state_t;

/* "CLAIMED", ...: the ledger's and JobStatus's spelling. "?" when out of range. */
const char *sy_job_state_name(sy_job_state_t state);
/* The state named s, or -1. */
int sy_job_state_parse(const char *s);
/* SUCCEEDED, FAILED, KILLED. */
bool sy_job_state_terminal(sy_job_state_t state);

/* ---- Log positions --------------------------------------------------------------------------- */

#define SY_LEDGER_STREAMS_MAX     8
#define SY_LEDGER_STREAM_NAME_MAX 32

/* Bytes of each log stream already published to <ns>.logs ({"stdout": 123, "stderr": 0}). */
typedef struct sy_ledger_logs {
    size_t n;
    struct {
        char name[SY_LEDGER_STREAM_NAME_MAX];
        long long offset;
    } s[SY_LEDGER_STREAMS_MAX];
} sy_ledger_logs_t;

/* The offset of stream name (0 when absent). */
long long sy_ledger_logs_get(const sy_ledger_logs_t *logs, const char *name);
/* Index of stream name, added with offset 0 when absent; -1 when the name is too long or all
 * SY_LEDGER_STREAMS_MAX slots are taken. */
int sy_ledger_logs_slot(sy_ledger_logs_t *logs, const char *name);
/* Sum of every stream's offset. */
long long sy_ledger_logs_total(const sy_ledger_logs_t *logs);
/* The JSON object form into buf (always NUL-terminated); false if buf is too small. */
bool sy_ledger_logs_to_json(const sy_ledger_logs_t *logs, char *buf, size_t size);
/* Parses the JSON object form. Unknown shapes (not an object, a negative or non-integer
 * offset, a name too long, too many streams) are SY_ERR_INVALID_ARG; logs is then empty. */
sy_err_code_t sy_ledger_logs_from_json(const char *json, sy_ledger_logs_t *logs, sy_err_t *err);

/* ---- Rows ------------------------------------------------------------------------------------ */

/* One jobs row as read. Fixed-size fields are truncated copies (every id fits); routed_job is
 * malloc'd and freed by sy_ledger_row_clear. */
typedef struct sy_ledger_row {
    char job_id[129];
    char cluster_name[128];
    char backend_kind[16];
    sy_job_state_t state;
    char backend_id[256]; /* "" = none yet */
    int attempt;
    char owner[256];    /* "" = none */
    bool owner_alive;   /* owner is this session, or a session with a heartbeat in the lease */
    long long next_seq; /* the last event's seq is next_seq - 1 */
    long long emitted_seq;
    sy_ledger_logs_t logs;
    bool kill_requested;
    char kill_reason[512];
    long long timeout_at_ms; /* epoch ms; 0 = no timeout */
    bool has_exit_code;
    int exit_code;
    char failure_reason[64];
    char message[1024];
    char *routed_job; /* the RoutedJob as plain JSON text */
    char source_topic[256];
    int32_t source_partition;
    int64_t source_offset;
} sy_ledger_row_t;

/* Frees routed_job and zeroes the row. NULL is a no-op. */
void sy_ledger_row_clear(sy_ledger_row_t *row);
/* Frees an array returned by a list call (each row cleared). NULL is a no-op. */
void sy_ledger_rows_free(sy_ledger_row_t *rows, size_t n);

/* ---- Connection ------------------------------------------------------------------------------ */

/* One connection for one thread (not thread-safe); each worker thread opens its own. */
typedef struct sy_ledger sy_ledger_t;

/* Connects to url (database.url) as worker session `session` (see sy_ledger_worker_register),
 * and checks that the database has the ledger tables (SY_ERR_CONFIG naming the versions
 * otherwise). lease_ms: how long a session stays alive after its last heartbeat.
 * A lost connection is re-established by the next call. NULL with err filled on failure. */
sy_ledger_t *sy_ledger_open(const char *url, const char *session, long long lease_ms,
                            sy_err_t *err);
void sy_ledger_close(sy_ledger_t *l);
const char *sy_ledger_session(const sy_ledger_t *l);

/* ---- Worker roster --------------------------------------------------------------------------- */

/* Adds this session to the roster (heartbeat now). Sessions of the same instance_id on the same
 * host whose process is gone (or whose pid is ours: a restarted container) are removed first,
 * so their jobs can be taken over at once instead of after the lease. */
sy_err_code_t sy_ledger_worker_register(sy_ledger_t *l, const char *instance_id, const char *host,
                                        int pid, sy_err_t *err);
/* Renews the heartbeat (re-registering if the row vanished). */
sy_err_code_t sy_ledger_worker_heartbeat(sy_ledger_t *l, sy_err_t *err);
/* Removes this session: its remaining jobs become adoptable at once. */
sy_err_code_t sy_ledger_worker_unregister(sy_ledger_t *l, sy_err_t *err);

/* ---- Claiming -------------------------------------------------------------------------------- */

typedef struct sy_ledger_claim {
    const char *job_id, *cluster_name, *backend_kind;
    int attempt;
    const char *routed_job_json; /* the RoutedJob's plain JSON form */
    const char *source_topic;
    int32_t source_partition;
    int64_t source_offset;
    const char *message; /* the CLAIMED event's message (may be NULL) */
    int max_in_flight;   /* cluster-wide limit on jobs in flight; 0 = none */
} sy_ledger_claim_t;

typedef enum sy_ledger_claim_result {
    SY_LEDGER_CLAIMED,     /* inserted: row->state CLAIMED, the CLAIMED event's seq is 10 */
    SY_LEDGER_EXISTS,      /* the job id has a row already: row holds it (any owner, any state) */
    SY_LEDGER_AT_CAPACITY, /* the cluster has max_in_flight jobs in flight: nothing written */
} sy_ledger_claim_result_t;

/* Claims a job for this session. An existing row wins over the capacity check (a redelivered
 * job is reported as EXISTS even when the cluster is full). The capacity check and the insert
 * are serialised per cluster (an advisory lock), so concurrent workers never exceed
 * max_in_flight together. In-flight states: CLAIMED, SUBMITTING, SUBMITTED, RUNNING. */
sy_err_code_t sy_ledger_claim(sy_ledger_t *l, const sy_ledger_claim_t *c,
                              sy_ledger_claim_result_t *result, sy_ledger_row_t *row,
                              sy_err_t *err);

/* ---- Transitions ----------------------------------------------------------------------------- */

typedef struct sy_ledger_change {
    sy_job_state_t state;
    bool emit;               /* allocate a seq for a JobStatus event (SUBMITTING: false) */
    const char *backend_id;  /* NULL = unchanged */
    long long timeout_at_ms; /* > 0 sets it; 0 = unchanged */
    bool has_exit_code;      /* exit_code is replaced: set, or NULL when false */
    int exit_code;
    const char *failure_reason; /* replaced (NULL clears): they describe the latest event */
    const char *message;
    const sy_ledger_logs_t *logs; /* NULL = unchanged */
} sy_ledger_change_t;

typedef struct sy_ledger_result {
    long long seq;       /* the event's seq when change->emit, else 0 */
    bool kill_requested; /* the row's kill flag after the change */
    char kill_reason[512];
} sy_ledger_result_t;

/* Moves job_id to change->state if this session owns it and it is not terminal yet.
 * SY_ERR_CONFLICT (not retriable) when the row belongs to another session or has ended:
 * the caller must stop touching the job. SY_ERR_NOT_FOUND when there is no such row.
 * Terminal states set finished_at. out may be NULL. */
sy_err_code_t sy_ledger_transition(sy_ledger_t *l, const char *job_id,
                                   const sy_ledger_change_t *change, sy_ledger_result_t *out,
                                   sy_err_t *err);

/* Records that events up to seq reached <ns>.status (monotonic: a lower seq is ignored). */
sy_err_code_t sy_ledger_set_emitted(sy_ledger_t *l, const char *job_id, long long seq,
                                    sy_err_t *err);

/* Records published log positions (owner only; SY_ERR_CONFLICT otherwise). */
sy_err_code_t sy_ledger_save_logs(sy_ledger_t *l, const char *job_id, const sy_ledger_logs_t *logs,
                                  sy_err_t *err);

/* ---- Kills ----------------------------------------------------------------------------------- */

/* Sets the kill flag (and the reason, if none yet) of a job that has not ended; any worker may
 * call it, so the owner — present or future — honours it. row receives the job afterwards.
 * SY_ERR_NOT_FOUND for an unknown job id; for a job that already ended nothing is written and
 * row shows its terminal state. */
sy_err_code_t sy_ledger_request_kill(sy_ledger_t *l, const char *job_id, const char *reason,
                                     sy_ledger_row_t *row, sy_err_t *err);

/* Jobs this session owns that have a kill request and have not ended. *rows is malloc'd
 * (sy_ledger_rows_free); *n may be 0 with *rows NULL. */
sy_err_code_t sy_ledger_list_kills(sy_ledger_t *l, sy_ledger_row_t **rows, size_t *n,
                                   sy_err_t *err);

/* ---- Takeover -------------------------------------------------------------------------------- */

/* Jobs that came from topic's partitions parts[0..n_parts-1] and are either not finished or
 * finished with their last event not known to be delivered (emitted_seq < next_seq - 1):
 * what a worker that holds those partitions must resume. Any owner. */
sy_err_code_t sy_ledger_list_open(sy_ledger_t *l, const char *topic, const int32_t *parts,
                                  size_t n_parts, sy_ledger_row_t **rows, size_t *n, sy_err_t *err);

/* Makes this session the owner of job_id if its owner is still expected_owner ("" = none);
 * row receives the job. SY_ERR_CONFLICT when someone else changed the owner first. */
sy_err_code_t sy_ledger_adopt(sy_ledger_t *l, const char *job_id, const char *expected_owner,
                              sy_ledger_row_t *row, sy_err_t *err);

/* The row of job_id; SY_ERR_NOT_FOUND when there is none. */
sy_err_code_t sy_ledger_get(sy_ledger_t *l, const char *job_id, sy_ledger_row_t *row,
                            sy_err_t *err);

#endif
