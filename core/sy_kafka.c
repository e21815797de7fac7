/* sy_kafka: the one place Kafka clients are made. */
#include "sy_kafka.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sy_log.h"
#include "sy_signal.h"
#include "sy_time.h"

/* ---- refusals ------------------------------------------------------------------------------ */

/* The last refusal any client of this process logged, and when (sy_time_mono_ms; 0 = none).
 * Process-wide: every client of a process is made from the same kafka.* settings. */
static pthread_mutex_t refusal_lock = PTHREAD_MUTEX_INITIALIZER;
static char refusal_msg[300];
static long long refusal_at_ms;

/* librdkafka logs an identical broker failure at most once per 30 s (it counts the repeats it
 * suppressed): a refusal still in force was logged at most this long before a wait began. */
#define REFUSAL_REPEAT_MS 35000

bool sy_kafka_is_refusal(const char *fac, const char *msg)
{
    /* Broker connection failures are logged under facility FAIL. What marks a refusal:
     * "SASL authentication error: ... invalid credentials", "SASL PLAIN mechanism handshake
     * failed: ... Unsupported SASL mechanism", "SSL handshake failed: ... certificate verify
     * failed", and TLS alerts the broker sends when it rejects our certificate (or has none of
     * ours): "... SSL routines::sslv3 alert bad certificate", "tlsv13 alert certificate
     * required". A connection that is merely lost ("unexpected eof", "Connection refused",
     * "Disconnected") is not one. */
    static const char *const markers[] = {"SASL authentication",  "mechanism handshake failed",
                                          "SSL handshake failed", "alert",
                                          "certificate",          NULL};
    if (!fac || !msg || strcmp(fac, "FAIL") != 0)
        return false;
    for (const char *const *m = markers; *m; m++)
        if (strstr(msg, *m))
            return true;
    return false;
}

void sy_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    sy_log_rdkafka_cb(rk, level, fac, buf);
    if (!sy_kafka_is_refusal(fac, buf))
        return;
    /* "[thrd:sasl_ssl://host:port/bootstrap]: sasl_ssl://host:port/bootstrap: SASL ... (after
     * 326ms in state AUTH_REQ)" → from the broker's name on, without the timing */
    const char *text = strstr(buf, "]: ");
    text = text ? text + 3 : buf;
    pthread_mutex_lock(&refusal_lock);
    snprintf(refusal_msg, sizeof(refusal_msg), "%s", text);
    char *after = strstr(refusal_msg, " (after ");
    if (after)
        *after = '\0';
    refusal_at_ms = sy_time_mono_ms();
    pthread_mutex_unlock(&refusal_lock);
}

bool sy_kafka_last_refusal(int waited_ms, char *buf, size_t size)
{
    bool found;
    pthread_mutex_lock(&refusal_lock);
    found = refusal_at_ms > 0 &&
            sy_time_mono_ms() - refusal_at_ms <= (long long)waited_ms + REFUSAL_REPEAT_MS;
    if (found && buf && size)
        snprintf(buf, size, "%s", refusal_msg);
    pthread_mutex_unlock(&refusal_lock);
    return found;
}

void sy_kafka_explain(sy_err_t *err, int waited_ms)
{
    char why[sizeof(refusal_msg)], was[sizeof(err->msg)];
    if (!err || !err->retriable || (err->code != SY_ERR_TIMEOUT && err->code != SY_ERR_KAFKA))
        return;
    if (!sy_kafka_last_refusal(waited_ms, why, sizeof(why)))
        return;
    snprintf(was, sizeof(was), "%s", err->msg);
    sy_err_set(err, SY_ERR_AUTH, false,
               "the Kafka broker refused the connection (authentication or TLS): %s; check "
               "kafka.security.protocol, kafka.sasl.* and kafka.ssl.* (%s)",
               why, was);
}

/* ---- clients ------------------------------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *kc, const char *k, const char *v, sy_err_t *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(kc, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        sy_err_set(err, SY_ERR_CONFIG, false, "kafka.%s: %s", k, errstr);
        return -1;
    }
    return 0;
}

typedef struct passthrough_ctx {
    rd_kafka_conf_t *kc;
    sy_err_t *err;
} passthrough_ctx_t;

static int passthrough_cb(const char *prop, const char *value, void *opaque)
{
    passthrough_ctx_t *ctx = opaque;
    return conf_set(ctx->kc, prop, value, ctx->err);
}

rd_kafka_t *sy_kafka_new(const sy_config_t *conf, sy_kafka_role_t role, const sy_kafka_opts_t *opts,
                         sy_err_t *err)
{
    static const sy_kafka_opts_t no_opts = {.read_committed = true};
    if (!opts)
        opts = &no_opts;
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    char client_id[256];
    snprintf(client_id, sizeof(client_id), "%s%s%s", sy_config_get(conf, "client.id"),
             opts->client_id_suffix ? "-" : "",
             opts->client_id_suffix ? opts->client_id_suffix : "");
    rd_kafka_conf_set_log_cb(kc, sy_kafka_log_cb);
    if (conf_set(kc, "bootstrap.servers", sy_config_get(conf, "bootstrap.servers"), err) ||
        conf_set(kc, "client.id", client_id, err))
        goto fail;

    rd_kafka_type_t type = RD_KAFKA_PRODUCER;
    switch (role) {
    case SY_KAFKA_PRODUCER:
        if (conf_set(kc, "acks", "all", err) || conf_set(kc, "partitioner", "murmur2_random", err))
            goto fail;
        break;
    case SY_KAFKA_IDEMPOTENT_PRODUCER:
        if (conf_set(kc, "enable.idempotence", "true", err) ||
            conf_set(kc, "partitioner", "murmur2_random", err))
            goto fail;
        break;
    case SY_KAFKA_TRANSACTIONAL_PRODUCER:
        if (!opts->transactional_id) {
            sy_err_set(err, SY_ERR_INTERNAL, false, "transactional producer needs an id");
            goto fail;
        }
        if (conf_set(kc, "transactional.id", opts->transactional_id, err) ||
            conf_set(kc, "partitioner", "murmur2_random", err) ||
            conf_set(kc, "linger.ms", "5", err))
            goto fail;
        break;
    case SY_KAFKA_CONSUMER:
        type = RD_KAFKA_CONSUMER;
        if ((opts->group_id && conf_set(kc, "group.id", opts->group_id, err)) ||
            conf_set(kc, "enable.auto.commit", "false", err) ||
            conf_set(kc, "enable.auto.offset.store", "false", err) ||
            /* eager assignor: cooperative-sticky is unsafe on librdkafka 2.0.2 (field notes) */
            conf_set(kc, "partition.assignment.strategy", "range,roundrobin", err) ||
            conf_set(kc, "isolation.level",
                     opts->read_committed ? "read_committed" : "read_uncommitted", err) ||
            conf_set(kc, "auto.offset.reset",
                     opts->auto_offset_reset ? opts->auto_offset_reset : "earliest", err) ||
            conf_set(kc, "enable.partition.eof", opts->partition_eof ? "true" : "false", err) ||
            /* regex subscriptions (the worker's ^<ns>\.cluster\..*) see new cluster topics
             * within seconds, not librdkafka's default 5 minutes */
            conf_set(kc, "topic.metadata.refresh.interval.ms", "5000", err))
            goto fail;
        if (opts->fetch_wait_max_ms &&
            conf_set(kc, "fetch.wait.max.ms", opts->fetch_wait_max_ms, err))
            goto fail;
        if (opts->rebalance_cb)
            rd_kafka_conf_set_rebalance_cb(kc, opts->rebalance_cb);
        break;
    }
    if (type == RD_KAFKA_PRODUCER) {
        if (opts->dr_msg_cb)
            rd_kafka_conf_set_dr_msg_cb(kc, opts->dr_msg_cb);
        if (opts->enabled_events)
            rd_kafka_conf_set_events(kc, opts->enabled_events);
        if (opts->linger_ms && conf_set(kc, "linger.ms", opts->linger_ms, err))
            goto fail;
        for (const char *const *d = opts->producer_defaults; d && d[0] && d[1]; d += 2)
            if (conf_set(kc, d[0], d[1], err))
                goto fail;
    }
    if (opts->opaque)
        rd_kafka_conf_set_opaque(kc, opts->opaque);

    passthrough_ctx_t ctx = {kc, err};
    if (sy_config_kafka_foreach(conf, passthrough_cb, &ctx))
        goto fail;

    char errstr[512];
    rk = rd_kafka_new(type, kc, errstr, sizeof(errstr));
    if (!rk) {
        sy_err_set(err, SY_ERR_KAFKA, false, "cannot create Kafka client: %s", errstr);
        goto fail;
    }
    kc = NULL; /* now owned by rk */

    if (role == SY_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk);

    if (role == SY_KAFKA_TRANSACTIONAL_PRODUCER) {
        rd_kafka_error_t *e =
            rd_kafka_init_transactions(rk, (int)sy_config_get_int(conf, "broker.timeout.ms"));
        if (e) {
            bool retriable = rd_kafka_error_is_retriable(e) ||
                             rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT;
            sy_err_set(err, retriable ? SY_ERR_TIMEOUT : SY_ERR_KAFKA, retriable,
                       "init_transactions: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            sy_kafka_explain(err, (int)sy_config_get_int(conf, "broker.timeout.ms"));
            goto fail;
        }
    }
    return rk;

fail:
    if (kc)
        rd_kafka_conf_destroy(kc);
    if (rk)
        rd_kafka_destroy(rk);
    return NULL;
}

const char *sy_kafka_topic(const sy_config_t *conf, const char *suffix, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%s", sy_config_get(conf, "topic.namespace"), suffix);
    return buf;
}

int32_t sy_kafka_partition_for_key(const void *key, size_t keylen, int32_t partition_cnt)
{
    return rd_kafka_msg_partitioner_murmur2(NULL, key, keylen, partition_cnt, NULL, NULL);
}

sy_err_code_t sy_kafka_ensure_topic(rd_kafka_t *rk, const char *topic, int partitions,
                                    int replication, int timeout_ms, sy_err_t *err)
{
    return sy_kafka_ensure_topic_config(rk, topic, partitions, replication, NULL, timeout_ms, err);
}

sy_err_code_t sy_kafka_ensure_topic_config(rd_kafka_t *rk, const char *topic, int partitions,
                                           int replication, const char *const *configs,
                                           int timeout_ms, sy_err_t *err)
{
    char errstr[512];
    sy_err_code_t rc = SY_OK;
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, replication, errstr, sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev = NULL;
    if (!nt) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "topic %s: %s", topic, errstr);
        goto out;
    }
    for (size_t i = 0; configs && configs[i] && configs[i + 1]; i += 2)
        rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
    rd_kafka_AdminOptions_set_request_timeout(ao, timeout_ms, errstr, sizeof(errstr));
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    if (!ev) {
        rc = sy_err_set(err, SY_ERR_TIMEOUT, true, "create topic %s: timed out", topic);
        sy_kafka_explain(err, timeout_ms);
        rc = err ? err->code : rc;
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        rc = sy_err_set(err, SY_ERR_KAFKA, true, "create topic %s: %s", topic,
                        rd_kafka_event_error_string(ev));
        sy_kafka_explain(err, timeout_ms);
        rc = err ? err->code : rc;
        goto out;
    }
    size_t n;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            rc = sy_err_set(err, SY_ERR_KAFKA, false, "create topic %s: %s", topic,
                            rd_kafka_topic_result_error_string(res[i]));
            goto out;
        }
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    return rc;
}

int sy_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, sy_err_t *err)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (e) {
        sy_err_set(err, e == RD_KAFKA_RESP_ERR__TIMED_OUT ? SY_ERR_TIMEOUT : SY_ERR_KAFKA, true,
                   "metadata for %s: %s", topic, rd_kafka_err2str(e));
        sy_kafka_explain(err, timeout_ms);
        goto out;
    }
    if (md->topic_cnt != 1 || md->topics[0].err) {
        sy_err_set(err, SY_ERR_NOT_FOUND, true, "topic %s: %s", topic,
                   md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not found");
        goto out;
    }
    n = md->topics[0].partition_cnt;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

int sy_kafka_partition_count_wait(rd_kafka_t *rk, const char *topic, int timeout_ms, sy_err_t *err)
{
    int n = -1;
    for (int i = 0; i < 50 && n < 0 && !sy_signal_stop_requested(); i++) {
        n = sy_kafka_partition_count(rk, topic, timeout_ms, err);
        if (n < 0 && (!err->retriable || err->code == SY_ERR_TIMEOUT))
            break;
        if (n < 0)
            usleep(200 * 1000);
    }
    return n;
}

sy_err_code_t sy_kafka_wait_broker(rd_kafka_t *rk, int timeout_ms, sy_err_t *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (e) {
        sy_err_set(err, SY_ERR_TIMEOUT, true, "Kafka broker unreachable within %d ms: %s",
                   timeout_ms, rd_kafka_err2str(e));
        sy_kafka_explain(err, timeout_ms);
        return err ? err->code : SY_ERR_TIMEOUT;
    }
    return SY_OK;
}
