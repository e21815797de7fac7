/* sy_kafka: the one place Kafka clients are made — producers, idempotent and transactional
 * producers, consumers — from a sy_config, plus topic names and the key partitioner. */
#ifndef SY_KAFKA_H
#define SY_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "sy_config.h"
#include "sy_err.h"

typedef enum sy_kafka_role {
    SY_KAFKA_PRODUCER,               /* plain, acks=all */
    SY_KAFKA_IDEMPOTENT_PRODUCER,    /* enable.idempotence: a retried send is not duplicated */
    SY_KAFKA_TRANSACTIONAL_PRODUCER, /* transactional.id from opts; init_transactions done */
    SY_KAFKA_CONSUMER,               /* group.id from opts, manual commits, eager assignor */
} sy_kafka_role_t;

typedef struct sy_kafka_opts {
    const char *transactional_id;  /* TRANSACTIONAL_PRODUCER */
    const char *group_id;          /* CONSUMER; NULL = no group (assign() only) */
    bool read_committed;           /* CONSUMER: isolation.level=read_committed (default true) */
    const char *auto_offset_reset; /* CONSUMER: "earliest" (default) or "latest" */
    bool partition_eof;            /* CONSUMER: deliver RD_KAFKA_RESP_ERR__PARTITION_EOF events */
    /* CONSUMER: a fetch.wait.max.ms default (NULL = librdkafka's 500): how long the broker holds
     * a fetch that finds no new data. Short for a consumer that reads to the end and stops. */
    const char *fetch_wait_max_ms;
    /* CONSUMER: optional rebalance callback; NULL = librdkafka's default assign/unassign. */
    void (*rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *partitions, void *opaque);
    /* Producers: a delivery-report callback (NULL = none), or instead delivery reports as
     * events on the main queue (enabled_events, e.g. RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR;
     * 0 = librdkafka's default), and a linger.ms default (NULL = librdkafka's). Like every
     * setting here, a kafka.* key in the config wins. */
    void (*dr_msg_cb)(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);
    int enabled_events;
    const char *linger_ms;
    /* Producers: more librdkafka defaults, "key", "value", ..., NULL (NULL = none). */
    const char *const *producer_defaults;
    void *opaque;                 /* rd_kafka opaque, passed to callbacks */
    const char *client_id_suffix; /* appended to client.id ("router", "worker", ...) */
} sy_kafka_opts_t;

/* Makes a client. Order: our defaults, then role settings, then every kafka.* passthrough
 * key from conf (so users can override anything: SASL, SSL, timeouts). The client logs through
 * sy_log. A transactional producer has already run init_transactions (within
 * broker.timeout.ms; a broker that cannot be reached gives a retriable SY_ERR_TIMEOUT).
 * Returns NULL and fills err on failure; the caller owns the result (rd_kafka_destroy). */
rd_kafka_t *sy_kafka_new(const sy_config_t *conf, sy_kafka_role_t role, const sy_kafka_opts_t *opts,
                         sy_err_t *err);

/* "<ns>.<suffix>" into buf; returns buf. */
const char *sy_kafka_topic(const sy_config_t *conf, const char *suffix, char *buf, size_t size);

/* The partition a key maps to: murmur2 as in Java's default partitioner, which is also what
 * every Switchyard producer is configured with (partitioner=murmur2_random), so readers can
 * find a job's events in exactly one partition. */
int32_t sy_kafka_partition_for_key(const void *key, size_t keylen, int32_t partition_cnt);

/* Creates topics that do not exist yet (existing ones are fine). replication -1 = broker
 * default. */
sy_err_code_t sy_kafka_ensure_topic(rd_kafka_t *rk, const char *topic, int partitions,
                                    int replication, int timeout_ms, sy_err_t *err);
/* The same with topic configs for a new topic: NULL-terminated name, value, name, value, ...
 * (e.g. "cleanup.policy", "compact", NULL). An existing topic is left as it is. */
sy_err_code_t sy_kafka_ensure_topic_config(rd_kafka_t *rk, const char *topic, int partitions,
                                           int replication, const char *const *configs,
                                           int timeout_ms, sy_err_t *err);

/* Number of partitions of topic, or -1 with err filled. */
int sy_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, sy_err_t *err);
/* The same for a topic just created (sy_kafka_ensure_topic): the broker's metadata can lag the
 * creation for a moment and report it unknown, so retriable answers are asked again every
 * 200 ms for up to 10 s. A timeout (timeout_ms per request), an answer that is not retriable or
 * a stop request (sy_signal) ends the wait at once. Returns -1 with err filled, as above. */
int sy_kafka_partition_count_wait(rd_kafka_t *rk, const char *topic, int timeout_ms, sy_err_t *err);

/* Waits until the broker answers a metadata request or timeout_ms passes. */
sy_err_code_t sy_kafka_wait_broker(rd_kafka_t *rk, int timeout_ms, sy_err_t *err);

/* Refusals. A broker that refuses us — SASL authentication failed, our client certificate
 * rejected or missing, its certificate not trusted — is retried by librdkafka like one that is
 * down: requests just time out, and why is only in librdkafka's log. Every client made by
 * sy_kafka_new logs through a callback that remembers the last refusal (process-wide).
 *
 * sy_kafka_explain: if err holds a retriable timeout or Kafka error of a wait that lasted
 * waited_ms and a refusal was logged during it (or shortly before: librdkafka logs a repeated
 * failure once per 30 s), err becomes a non-retriable SY_ERR_AUTH that quotes the refusal and
 * keeps the original message in parentheses. Otherwise err is left as it is. NULL-safe.
 * The functions in this module that wait for the broker call it already. */
void sy_kafka_explain(sy_err_t *err, int waited_ms);
/* The last refusal logged within waited_ms (+ the 30 s repeat interval) into buf; false if
 * none. */
bool sy_kafka_last_refusal(int waited_ms, char *buf, size_t size);
/* Whether a librdkafka log line (facility fac, text msg) reports a refusal. */
bool sy_kafka_is_refusal(const char *fac, const char *msg);
/* The log callback of every client sy_kafka_new makes: the line goes to sy_log
 * (sy_log_rdkafka_cb) and a refusal is remembered. librdkafka calls it from its threads. */
void sy_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
