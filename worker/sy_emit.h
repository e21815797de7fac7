/* sy_emit: publishes a worker's JobStatus events (<ns>.status) and JobLog chunks (<ns>.logs),
 * keyed by job id, with the idempotent producer, and reports back per job what Kafka has
 * acknowledged — so a status is recorded as delivered only once it is, and a terminal status
 * can wait for the job's last log chunk. It also bounds the log bytes in flight (sent, not yet
 * acknowledged) across the worker: the back-pressure that keeps memory flat.
 *
 * Thread-safe: every runner thread publishes through the one sy_emit_t. Delivery reports are
 * served by a thread of its own. */
#ifndef SY_EMIT_H
#define SY_EMIT_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "sy_codec.h"
#include "sy_config.h"
#include "sy_err.h"
#include "sy_ledger.h"

typedef struct sy_emit sy_emit_t;

/* Delivery progress of one job's messages. Reference-counted: the job holds one reference and
 * every message in flight another, so it outlives a job that is dropped mid-flight. */
typedef struct sy_emit_track sy_emit_track_t;

/* Makes the producer (idempotent; kafka.* settings apply) and the delivery thread.
 * conf and codec are borrowed and must outlive the emitter; emitter is this worker's name, put
 * in every status event. worker.log.inflight.max.bytes bounds the log bytes in flight. */
sy_emit_t *sy_emit_new(const sy_config_t *conf, sy_codec_t *codec, const char *emitter,
                       sy_err_t *err);
/* Waits up to broker.timeout.ms for what is in flight, then drops the rest. NULL-safe. */
void sy_emit_destroy(sy_emit_t *e);

/* The producer, for creating topics and dead-lettering (borrowed). */
rd_kafka_t *sy_emit_producer(sy_emit_t *e);

sy_emit_track_t *sy_emit_track_new(void);
void sy_emit_track_release(sy_emit_track_t *t); /* NULL-safe */
/* Highest status seq acknowledged (0 = none). */
long long sy_emit_track_acked_seq(const sy_emit_track_t *t);
/* Messages sent and not yet acknowledged or failed. */
int sy_emit_track_pending(const sy_emit_track_t *t);
/* Log chunks that failed to deliver (after the producer's own retries), ever. */
long sy_emit_track_log_failures(const sy_emit_track_t *t);

/* One JobStatus event. Strings may be NULL (null in the record). */
typedef struct sy_status_event {
    const char *job_id;
    long long seq;
    sy_job_state_t state; /* CLAIMED .. KILLED (not SUBMITTING: that one is internal) */
    const char *cluster, *command, *backend_id, *message, *failure_reason, *log_uri;
    int attempt;
    bool has_exit_code;
    int exit_code;
    long long submitted_at; /* 0 = unknown */
} sy_status_event_t;

/* Publishes ev; t (may be NULL) learns when it is acknowledged. Errors: encoding (not
 * retriable) or a full producer queue (retriable). */
sy_err_code_t sy_emit_status(sy_emit_t *e, const sy_status_event_t *ev, sy_emit_track_t *t,
                             sy_err_t *err);

/* Publishes one JobLog chunk: len (≤ 64 KiB) bytes of stream at byte offset. */
sy_err_code_t sy_emit_log(sy_emit_t *e, const char *job_id, int attempt, const char *stream,
                          long long offset, const void *data, size_t len, sy_emit_track_t *t,
                          sy_err_t *err);

/* Log bytes that may be sent now before the in-flight bound is reached (0 = full). */
size_t sy_emit_log_room(const sy_emit_t *e);

/* Publishes bytes as they are (dead letters); headers are taken over, also on failure. */
sy_err_code_t sy_emit_raw(sy_emit_t *e, const char *topic, const void *key, size_t key_len,
                          const void *value, size_t len, rd_kafka_headers_t *headers,
                          sy_err_t *err);

#endif
