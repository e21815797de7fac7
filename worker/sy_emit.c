/* sy_emit: status events and log chunks out, delivery acknowledgements back. */
#include "sy_time.h"
#include "sy_emit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sy_avro.h"
#include "sy_kafka.h"
#include "sy_log.h"

struct sy_emit_track {
    atomic_int refs;
    atomic_int pending;
    atomic_llong acked_seq;
    atomic_long log_failures;
};

/* The opaque of one message in flight. */
typedef struct ack {
    sy_emit_track_t *t; /* NULL: nobody waits for it */
    long long seq;      /* a status event's seq; 0 for a log chunk */
    size_t log_bytes;   /* counted against the in-flight bound */
} ack_t;

struct sy_emit {
    const sy_config_t *conf;
    sy_codec_t *codec;
    rd_kafka_t *producer;
    rd_kafka_queue_t *events; /* delivery reports */
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    atomic_llong inflight_log_bytes;
    long long inflight_max;
    char emitter[160];
    char t_status[256], t_logs[256];
    pthread_mutex_t lock; /* the two reusable values */
    avro_value_t status, log;
    bool values_made;
};

/* ---- tracks ---------------------------------------------------------------------------------- */

sy_emit_track_t *sy_emit_track_new(void)
{
    sy_emit_track_t *t = calloc(1, sizeof(*t));
    if (t)
        atomic_init(&t->refs, 1);
    return t;
}

void sy_emit_track_release(sy_emit_track_t *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

long long sy_emit_track_acked_seq(const sy_emit_track_t *t)
{
    return atomic_load(&t->acked_seq);
}

int sy_emit_track_pending(const sy_emit_track_t *t)
{
    return atomic_load(&t->pending);
}

long sy_emit_track_log_failures(const sy_emit_track_t *t)
{
    return atomic_load(&t->log_failures);
}

/* ---- delivery reports ------------------------------------------------------------------------ */

static void delivered(sy_emit_t *e, const rd_kafka_message_t *m)
{
    ack_t *a = m->_private;
    if (!a)
        return;
    if (a->log_bytes)
        atomic_fetch_sub(&e->inflight_log_bytes, (long long)a->log_bytes);
    if (m->err)
        sy_warn("worker", "delivery to %s failed: %s", m->rkt ? rd_kafka_topic_name(m->rkt) : "?",
                rd_kafka_err2str(m->err));
    if (a->t) {
        if (!m->err && a->seq) {
            long long cur = atomic_load(&a->t->acked_seq);
            while (cur < a->seq && !atomic_compare_exchange_weak(&a->t->acked_seq, &cur, a->seq))
                ;
        } else if (m->err && !a->seq) {
            atomic_fetch_add(&a->t->log_failures, 1);
        }
        atomic_fetch_sub(&a->t->pending, 1);
        sy_emit_track_release(a->t);
    }
    free(a);
}

static void *delivery_thread(void *arg)
{
    sy_emit_t *e = arg;
    while (!atomic_load(&e->stop)) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(e->events, 100);
        if (!ev)
            continue;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) {
            const rd_kafka_message_t *m;
            while ((m = rd_kafka_event_message_next(ev)))
                delivered(e, m);
        } else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_ERROR) {
            sy_warn("worker", "producer: %s", rd_kafka_event_error_string(ev));
        }
        rd_kafka_event_destroy(ev);
    }
    return NULL;
}

/* ---- setup ----------------------------------------------------------------------------------- */

sy_emit_t *sy_emit_new(const sy_config_t *conf, sy_codec_t *codec, const char *emitter,
                       sy_err_t *err)
{
    sy_emit_t *e = calloc(1, sizeof(*e));
    if (!e) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    e->conf = conf;
    e->codec = codec;
    pthread_mutex_init(&e->lock, NULL);
    snprintf(e->emitter, sizeof(e->emitter), "%s", emitter);
    sy_kafka_topic(conf, "status", e->t_status, sizeof(e->t_status));
    sy_kafka_topic(conf, "logs", e->t_logs, sizeof(e->t_logs));
    e->inflight_max = sy_config_get_int(conf, "worker.log.inflight.max.bytes");
    if (e->inflight_max < SY_LEDGER_STREAMS_MAX * 65536LL)
        e->inflight_max = SY_LEDGER_STREAMS_MAX * 65536LL;
    if (sy_codec_value_new(codec, SY_TYPE_JOB_STATUS, &e->status, err) != SY_OK)
        goto fail;
    if (sy_codec_value_new(codec, SY_TYPE_JOB_LOG, &e->log, err) != SY_OK) {
        avro_value_decref(&e->status);
        goto fail;
    }
    e->values_made = true;
    /* delivery reports as events, read by the delivery thread */
    sy_kafka_opts_t opts = {.client_id_suffix = "worker",
                            .enabled_events = RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR};
    if (!(e->producer = sy_kafka_new(conf, SY_KAFKA_IDEMPOTENT_PRODUCER, &opts, err)))
        goto fail;
    e->events = rd_kafka_queue_get_main(e->producer);
    if (pthread_create(&e->thread, NULL, delivery_thread, e) != 0) {
        sy_err_set(err, SY_ERR_INTERNAL, false, "cannot start the delivery thread");
        goto fail;
    }
    e->thread_started = true;
    return e;
fail:
    sy_emit_destroy(e);
    return NULL;
}

void sy_emit_destroy(sy_emit_t *e)
{
    if (!e)
        return;
    if (e->producer && e->thread_started) {
        int timeout = (int)sy_config_get_int(e->conf, "broker.timeout.ms");
        if (rd_kafka_flush(e->producer, timeout) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            sy_warn("worker", "%d message(s) not delivered before stopping",
                    rd_kafka_outq_len(e->producer));
            rd_kafka_purge(e->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(e->producer, 1000); /* the purged reports free their acks */
        }
    }
    if (e->thread_started) {
        atomic_store(&e->stop, true);
        pthread_join(e->thread, NULL);
    }
    if (e->events)
        rd_kafka_queue_destroy(e->events);
    if (e->producer)
        rd_kafka_destroy(e->producer);
    if (e->values_made) {
        avro_value_decref(&e->status);
        avro_value_decref(&e->log);
    }
    pthread_mutex_destroy(&e->lock);
    free(e);
}

rd_kafka_t *sy_emit_producer(sy_emit_t *e)
{
    return e->producer;
}

size_t sy_emit_log_room(const sy_emit_t *e)
{
    long long left = e->inflight_max - atomic_load(&((sy_emit_t *)e)->inflight_log_bytes);
    return left > 0 ? (size_t)left : 0;
}

/* ---- producing ------------------------------------------------------------------------------- */

/* Sends buf (malloc'd, taken over) keyed by job_id, with an ack for t. */
static sy_err_code_t produce(sy_emit_t *e, const char *topic, const char *job_id, void *buf,
                             size_t len, sy_emit_track_t *t, long long seq, bool is_log,
                             sy_err_t *err)
{
    ack_t *a = calloc(1, sizeof(*a));
    if (!a) {
        free(buf);
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    }
    a->seq = seq;
    a->log_bytes = is_log ? len : 0;
    if (t) {
        atomic_fetch_add(&t->refs, 1);
        atomic_fetch_add(&t->pending, 1);
        a->t = t;
    }
    if (is_log)
        atomic_fetch_add(&e->inflight_log_bytes, (long long)len);
    rd_kafka_resp_err_t re = rd_kafka_producev(
        e->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(job_id, strlen(job_id)),
        RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_OPAQUE(a),
        RD_KAFKA_V_END);
    if (re) {
        rd_kafka_message_t fake = {.err = re, ._private = a};
        delivered(e, &fake); /* undoes the accounting */
        free(buf);
        return sy_err_set(err, SY_ERR_KAFKA, re == RD_KAFKA_RESP_ERR__QUEUE_FULL,
                          "produce to %s: %s", topic, rd_kafka_err2str(re));
    }
    return SY_OK;
}

sy_err_code_t sy_emit_status(sy_emit_t *e, const sy_status_event_t *ev, sy_emit_track_t *t,
                             sy_err_t *err)
{
    void *buf = NULL;
    size_t len = 0;
    sy_err_code_t rc = SY_OK;
    pthread_mutex_lock(&e->lock);
    avro_value_t *s = &e->status;
    avro_value_reset(s);
    if (sy_avro_set_string(s, "job_id", ev->job_id) || sy_avro_set_long(s, "seq", ev->seq) ||
        sy_avro_set_enum(s, "status", sy_job_state_name(ev->state)) ||
        sy_avro_set_string(s, "cluster", ev->cluster) ||
        sy_avro_set_string(s, "command", ev->command) ||
        sy_avro_set_string(s, "backend_id",
                           ev->backend_id && *ev->backend_id ? ev->backend_id : NULL) ||
        sy_avro_set_string(s, "message", ev->message && *ev->message ? ev->message : NULL) ||
        sy_avro_set_int(s, "attempt", ev->attempt > 0 ? ev->attempt : 1) ||
        sy_avro_set_long(s, "emitted_at", sy_time_wall_ms()) ||
        (ev->submitted_at > 0 ? sy_avro_set_long(s, "submitted_at", ev->submitted_at)
                              : sy_avro_set_null(s, "submitted_at")) ||
        (ev->has_exit_code ? sy_avro_set_int(s, "exit_code", ev->exit_code)
                           : sy_avro_set_null(s, "exit_code")) ||
        sy_avro_set_string(s, "failure_reason",
                           ev->failure_reason && *ev->failure_reason ? ev->failure_reason : NULL) ||
        sy_avro_set_string(s, "log_uri", ev->log_uri) ||
        sy_avro_set_string(s, "emitter", e->emitter)) {
        rc = sy_err_set(err, SY_ERR_INTERNAL, false, "building JobStatus: %s", avro_strerror());
    } else {
        rc = sy_codec_encode(e->codec, SY_TYPE_JOB_STATUS, e->t_status, s, &buf, &len, err);
    }
    pthread_mutex_unlock(&e->lock);
    if (rc != SY_OK)
        return rc;
    return produce(e, e->t_status, ev->job_id, buf, len, t, ev->seq, false, err);
}

sy_err_code_t sy_emit_log(sy_emit_t *e, const char *job_id, int attempt, const char *stream,
                          long long offset, const void *data, size_t len, sy_emit_track_t *t,
                          sy_err_t *err)
{
    void *buf = NULL;
    size_t blen = 0;
    sy_err_code_t rc = SY_OK;
    pthread_mutex_lock(&e->lock);
    avro_value_t *v = &e->log;
    avro_value_reset(v);
    if (sy_avro_set_string(v, "job_id", job_id) || sy_avro_set_string(v, "stream", stream) ||
        sy_avro_set_long(v, "offset", offset) || sy_avro_set_bytes(v, "chunk", data, len) ||
        sy_avro_set_int(v, "attempt", attempt > 0 ? attempt : 1) ||
        sy_avro_set_long(v, "emitted_at", sy_time_wall_ms())) {
        rc = sy_err_set(err, SY_ERR_INTERNAL, false, "building JobLog: %s", avro_strerror());
    } else {
        rc = sy_codec_encode(e->codec, SY_TYPE_JOB_LOG, e->t_logs, v, &buf, &blen, err);
    }
    pthread_mutex_unlock(&e->lock);
    if (rc != SY_OK)
        return rc;
    return produce(e, e->t_logs, job_id, buf, blen, t, 0, true, err);
}

sy_err_code_t sy_emit_raw(sy_emit_t *e, const char *topic, const void *key, size_t key_len,
                          const void *value, size_t len, rd_kafka_headers_t *headers, sy_err_t *err)
{
    rd_kafka_resp_err_t re = rd_kafka_producev(
        e->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
    if (re) {
        rd_kafka_headers_destroy(headers);
        return sy_err_set(err, SY_ERR_KAFKA, true, "produce to %s: %s", topic,
                          rd_kafka_err2str(re));
    }
    return SY_OK;
}
