/* sy_router: the router's consume-transform-produce loop (exactly once, per batch). */
#include "sy_time.h"
#include "sy_router.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sy_avro.h"
#include "sy_codec.h"
#include "sy_kafka.h"
#include "sy_log.h"
#include "sy_regcache.h"
#include "sy_registry.h"
#include "sy_resolve.h"
#include "sy_seen.h"
#include "sy_signal.h"

#define MAX_PARTITIONS     1024
#define MAX_CRITERIA       16
#define MAX_CRITERION_TAGS 32
#define JOB_ID_MAX         128

struct sy_router {
    const sy_config_t *conf;
    sy_codec_t *codec;
    sy_regcache_t *reg;
    rd_kafka_t *consumer, *producer, *restorer;
    char instance[160];
    char t_requests[256], t_status[256], t_deadletter[256], t_seen[256];
    sy_seen_t *seen[MAX_PARTITIONS]; /* by requests partition; NULL = not assigned */
    sy_seen_t *topics_made;          /* cluster topics known to exist */
    bool revoked;                    /* set by the rebalance callback during a poll */
    uint64_t rng;
    sy_selector_t selector;
    int partitions, replication, batch_max, batch_ms, timeout_ms;
    long long max_job_timeout_ms;
    avro_value_t req, routed, status; /* reused for every message */
    bool values_made;
    long n_routed, n_invalid, n_duplicate, n_deadletter, n_batches, n_aborts;
};

/* ---- the seen-set changelog ------------------------------------------------------------- */

/* Rebuilds the seen set of one requests partition from <ns>.router.seen (same partition
 * number), reading committed records up to the end. */
static sy_err_code_t restore_seen(sy_router_t *r, int32_t partition, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    sy_seen_t *s = sy_seen_new();
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    long n = 0;
    if (!s) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    rd_kafka_topic_partition_list_add(parts, r->t_seen, partition)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(r->restorer, parts);
    if (e) {
        rc = sy_err_set(err, SY_ERR_KAFKA, true, "assign %s[%d]: %s", r->t_seen, partition,
                        rd_kafka_err2str(e));
        goto out;
    }
    long long deadline = sy_time_mono_ms() + 120000;
    for (;;) {
        if (sy_time_mono_ms() > deadline || sy_signal_stop_requested()) {
            rc = sy_err_set(err, SY_ERR_TIMEOUT, true, "restoring %s[%d] did not reach the end",
                            r->t_seen, partition);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->restorer, 500);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            break;
        }
        if (m->err) {
            sy_warn("router", "restoring %s[%d]: %s", r->t_seen, partition,
                    rd_kafka_message_errstr(m));
        } else if (m->key && m->key_len) {
            if (m->len) /* an empty value is a tombstone: forget the id */
                n += sy_seen_add(s, m->key, m->key_len);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(r->restorer, NULL);
    if (rc == SY_OK) {
        sy_seen_destroy(r->seen[partition]);
        r->seen[partition] = s;
        s = NULL;
        sy_info("router", "partition %d: %ld routed job ids restored", partition, n);
    }
out:
    sy_seen_destroy(s);
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    sy_router_t *r = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            int32_t p = parts->elems[i].partition;
            if (p < 0 || p >= MAX_PARTITIONS)
                continue;
            sy_err_t e = SY_ERR_INIT;
            /* without the seen set we could route a duplicate: keep trying */
            while (restore_seen(r, p, &e) != SY_OK && !sy_signal_stop_requested()) {
                sy_warn("router", "partition %d: %s; retrying", p, e.msg);
                sleep(1);
            }
        }
        sy_info("router", "assigned %d partition(s) of %s", parts->cnt, r->t_requests);
        rd_kafka_assign(rk, parts);
    } else {
        sy_info("router", "revoked %d partition(s)", parts->cnt);
        for (int i = 0; i < parts->cnt; i++) {
            int32_t p = parts->elems[i].partition;
            if (p >= 0 && p < MAX_PARTITIONS) {
                sy_seen_destroy(r->seen[p]);
                r->seen[p] = NULL;
            }
        }
        r->revoked = true;
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- producing ---------------------------------------------------------------------------- */

/* Produces one record into the open transaction. flags: RD_KAFKA_MSG_F_COPY, or
 * RD_KAFKA_MSG_F_FREE to hand val (malloc'd) over to librdkafka — on failure too: it is freed
 * here then. A full producer queue (a batch makes four records per request) is waited out while
 * librdkafka delivers. */
static sy_err_code_t produce(sy_router_t *r, const char *topic, int32_t partition, const char *key,
                             void *val, size_t len, int flags, sy_err_t *err)
{
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                              RD_KAFKA_V_VALUE(val, len), RD_KAFKA_V_MSGFLAGS(flags),
                              RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || sy_signal_stop_requested())
            break;
        rd_kafka_poll(r->producer, 10);
    }
    if (e) {
        if (flags & RD_KAFKA_MSG_F_FREE)
            free(val);
        if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) /* no retry makes it fit */
            return sy_err_set(err, SY_ERR_TOO_LARGE, false,
                              "produce to %s: %zu bytes, over the producer's message.max.bytes",
                              topic, len);
        return sy_err_set(err, SY_ERR_KAFKA, true, "produce to %s: %s", topic, rd_kafka_err2str(e));
    }
    return SY_OK;
}

static sy_err_code_t produce_value(sy_router_t *r, sy_type_t type, const char *topic,
                                   const char *key, avro_value_t *v, sy_err_t *err)
{
    void *buf = NULL;
    size_t len = 0;
    if (sy_codec_encode(r->codec, type, topic, v, &buf, &len, err) != SY_OK)
        return err->code;
    /* the encoded buffer is handed over rather than copied */
    return produce(r, topic, RD_KAFKA_PARTITION_UA, key, buf, len, RD_KAFKA_MSG_F_FREE, err);
}

/* One JobStatus event. seq: ACCEPTED 1, RESOLVED/INVALID 2, DUPLICATE 0 (informational). */
static sy_err_code_t emit_status(sy_router_t *r, const char *job_id, const char *state, long seq,
                                 const char *cluster, const char *command, const char *message,
                                 long long submitted_at, sy_err_t *err)
{
    avro_value_t *s = &r->status;
    avro_value_reset(s);
    if (sy_avro_set_string(s, "job_id", job_id) || sy_avro_set_long(s, "seq", seq) ||
        sy_avro_set_enum(s, "status", state) || sy_avro_set_string(s, "cluster", cluster) ||
        sy_avro_set_string(s, "command", command) || sy_avro_set_string(s, "backend_id", NULL) ||
        sy_avro_set_string(s, "message", message) || sy_avro_set_int(s, "attempt", 1) ||
        sy_avro_set_long(s, "emitted_at", sy_time_wall_ms()) ||
        (submitted_at > 0 ? sy_avro_set_long(s, "submitted_at", submitted_at)
                          : sy_avro_set_null(s, "submitted_at")) ||
        sy_avro_set_null(s, "exit_code") || sy_avro_set_string(s, "failure_reason", NULL) ||
        sy_avro_set_string(s, "log_uri", NULL) || sy_avro_set_string(s, "emitter", r->instance))
        return sy_err_set(err, SY_ERR_INTERNAL, false, "building JobStatus: %s", avro_strerror());
    return produce_value(r, SY_TYPE_JOB_STATUS, r->t_status, job_id, s, err);
}

/* The original bytes and headers to <ns>.deadletter, with headers naming the error and where the
 * message came from. A message the broker took may still be over this producer's
 * message.max.bytes (the broker's limit is higher by default, and producers may raise theirs):
 * then the copy goes without the original value, with "sy.value.omitted: <its size>", and if
 * that is still too large, without the original headers either. A dead-letter record that
 * cannot be produced would fail the transaction, and the same message would fail it again. */
static sy_err_code_t deadletter(sy_router_t *r, const rd_kafka_message_t *m, const sy_err_t *why,
                                sy_err_t *err)
{
    char part[16], off[32], omitted[32];
    snprintf(part, sizeof(part), "%d", m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    snprintf(omitted, sizeof(omitted), "%zu", m->len);
    sy_warn("router", "dead-lettered %s[%d]@%lld: %s", rd_kafka_topic_name(m->rkt), m->partition,
            (long long)m->offset, why->msg);
    r->n_deadletter++;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int level = 0; level < 3; level++) { /* 0: as is, 1: no value, 2: nor its headers */
        rd_kafka_headers_t *orig = NULL, *h;
        if (level < 2 && rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
            h = rd_kafka_headers_copy(orig);
        else
            h = rd_kafka_headers_new(8);
        rd_kafka_header_add(h, "sy.error", -1, why->msg, -1);
        rd_kafka_header_add(h, "sy.error.code", -1, sy_err_code_name(why->code), -1);
        rd_kafka_header_add(h, "sy.source.topic", -1, rd_kafka_topic_name(m->rkt), -1);
        rd_kafka_header_add(h, "sy.source.partition", -1, part, -1);
        rd_kafka_header_add(h, "sy.source.offset", -1, off, -1);
        rd_kafka_header_add(h, "sy.router", -1, r->instance, -1);
        if (level > 0)
            rd_kafka_header_add(h, "sy.value.omitted", -1, omitted, -1);
        e = rd_kafka_producev(
            r->producer, RD_KAFKA_V_TOPIC(r->t_deadletter), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(level ? NULL : m->payload, level ? 0 : m->len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (!e)
            return SY_OK;
        rd_kafka_headers_destroy(h);
        if (e != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
            break;
        sy_warn("router", "%s[%d]@%lld is too large to dead-letter %s; %s",
                rd_kafka_topic_name(m->rkt), m->partition, (long long)m->offset,
                level ? "without its value" : "as is",
                level ? "leaving out its headers too" : "leaving out its value");
    }
    return sy_err_set(err, SY_ERR_KAFKA, true, "produce to %s: %s", r->t_deadletter,
                      rd_kafka_err2str(e));
}

/* ---- validation ----------------------------------------------------------------------------- */

static bool job_id_valid(const char *id, sy_err_t *err)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > JOB_ID_MAX) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "job_id must be 1-%d characters", JOB_ID_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("._:-", id[i])) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false,
                       "job_id has a character outside [A-Za-z0-9._:-] at position %zu", i + 1);
            return false;
        }
    return true;
}

/* Reads one Criterion record into c (strings borrowed from the value; tags into tag_buf). */
static bool read_criterion(avro_value_t *rec, sy_criterion_t *c, const char **tag_buf,
                           const char *what, sy_err_t *err)
{
    memset(c, 0, sizeof(*c));
    c->id = sy_avro_get_string(rec, "id");
    c->name = sy_avro_get_string(rec, "name");
    avro_value_t tags;
    size_t n = 0;
    if (avro_value_get_by_name(rec, "tags", &tags, NULL) == 0)
        avro_value_get_size(&tags, &n);
    if (n > MAX_CRITERION_TAGS) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s has %zu tags (at most %d)", what, n,
                   MAX_CRITERION_TAGS);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        avro_value_t t;
        const char *s = NULL;
        size_t len;
        avro_value_get_by_index(&tags, i, &t, NULL);
        avro_value_get_string(&t, &s, &len);
        sy_err_t e = SY_ERR_INIT;
        if (!sy_tag_valid_criterion(s, &e)) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s: %s", what, e.msg);
            return false;
        }
        tag_buf[i] = s;
    }
    c->tags = tag_buf;
    c->n_tags = n;
    if (!c->id && !c->name && n == 0) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s is empty (give tags, id or name)", what);
        return false;
    }
    return true;
}

static bool env_name_valid(const char *k)
{
    if (!k || !(isalpha((unsigned char)*k) || *k == '_'))
        return false;
    for (; *k; k++)
        if (!isalnum((unsigned char)*k) && *k != '_')
            return false;
    return true;
}

/* ---- one request ------------------------------------------------------------------------------
 */

/* Makes sure <ns>.cluster.<name> exists (cached after the first success). */
static sy_err_code_t ensure_cluster_topic(sy_router_t *r, const char *topic, sy_err_t *err)
{
    if (sy_seen_contains(r->topics_made, topic, strlen(topic)))
        return SY_OK;
    if (sy_kafka_ensure_topic(r->producer, topic, r->partitions, r->replication, r->timeout_ms,
                              err) != SY_OK)
        return err->code;
    sy_seen_add(r->topics_made, topic, strlen(topic));
    return SY_OK;
}

static sy_err_code_t build_routed(sy_router_t *r, const char *job_id, const sy_resolution_t *res,
                                  sy_err_t *err)
{
    avro_value_t *v = &r->routed, field;
    avro_value_reset(v);
    /* precomputed at registry load; present, since the resolver checked runs_on */
    const char *backend_spec = sy_registry_command_spec(res->command, res->cluster->backend_kind);
    if (!backend_spec)
        return sy_err_set(err, SY_ERR_INTERNAL, false, "command %s has no spec for %s",
                          res->command->name, res->cluster->backend_kind);
    if (avro_value_get_by_name(v, "request", &field, NULL) || avro_value_copy(&field, &r->req) ||
        sy_avro_set_string(v, "job_id", job_id) ||
        sy_avro_set_string(v, "cluster_id", res->cluster->id) ||
        sy_avro_set_string(v, "cluster_name", res->cluster->name) ||
        sy_avro_set_string(v, "backend_kind", res->cluster->backend_kind) ||
        sy_avro_set_string(v, "backend_address", res->cluster->backend_address) ||
        sy_avro_set_string(v, "region", res->cluster->region) ||
        sy_avro_set_int(v, "cluster_max_concurrent", res->cluster->max_concurrent) ||
        sy_avro_set_string(v, "command_id", res->command->id) ||
        sy_avro_set_string(v, "command_name", res->command->name) ||
        sy_avro_set_string(v, "command_spec", backend_spec) || sy_avro_set_int(v, "attempt", 1) ||
        sy_avro_set_string(v, "rationale", res->rationale) ||
        sy_avro_set_long(v, "routed_at", sy_time_wall_ms()))
        return sy_err_set(err, SY_ERR_INTERNAL, false, "building RoutedJob: %s", avro_strerror());
    return SY_OK;
}

/* Validates the decoded request in r->req; on failure fills why (the INVALID reason). */
static bool validate(sy_router_t *r, sy_criterion_t *crit, size_t *n_crit, sy_criterion_t *cmd,
                     const char *tag_buf[][MAX_CRITERION_TAGS], sy_err_t *why)
{
    avro_value_t arr, item;
    size_t n = 0;
    const char *user = sy_avro_get_string(&r->req, "user");
    if (!user || !*user || strlen(user) > 255)
        return sy_err_set(why, SY_ERR_INVALID_ARG, false, "user must be 1-255 characters"), false;
    const char *name = sy_avro_get_string(&r->req, "name");
    if (name && strlen(name) > 1024)
        return sy_err_set(why, SY_ERR_INVALID_ARG, false, "name longer than 1024 characters"),
               false;
    avro_value_get_by_name(&r->req, "cluster_criteria", &arr, NULL);
    avro_value_get_size(&arr, &n);
    if (n == 0)
        return sy_err_set(why, SY_ERR_INVALID_ARG, false, "no cluster criteria given"), false;
    if (n > MAX_CRITERIA)
        return sy_err_set(why, SY_ERR_INVALID_ARG, false, "%zu cluster criteria (at most %d)", n,
                          MAX_CRITERIA),
               false;
    for (size_t i = 0; i < n; i++) {
        char what[48];
        snprintf(what, sizeof(what), "cluster criterion #%zu", i + 1);
        avro_value_get_by_index(&arr, i, &item, NULL);
        if (!read_criterion(&item, &crit[i], tag_buf[i], what, why))
            return false;
    }
    *n_crit = n;
    avro_value_get_by_name(&r->req, "command_criterion", &item, NULL);
    if (!read_criterion(&item, cmd, tag_buf[MAX_CRITERIA], "command criterion", why))
        return false;
    int64_t timeout = 0;
    if (sy_avro_get_long_opt(&r->req, "timeout_ms", &timeout) &&
        (timeout <= 0 || timeout > r->max_job_timeout_ms))
        return sy_err_set(why, SY_ERR_INVALID_ARG, false,
                          "timeout_ms %lld is out of range (1 ms to %lld ms)", (long long)timeout,
                          r->max_job_timeout_ms),
               false;
    avro_value_get_by_name(&r->req, "environment", &arr, NULL);
    avro_value_get_size(&arr, &n);
    for (size_t i = 0; i < n; i++) {
        const char *k = NULL;
        avro_value_get_by_index(&arr, i, &item, &k);
        if (!env_name_valid(k))
            return sy_err_set(why, SY_ERR_INVALID_ARG, false,
                              "environment variable name \"%.64s\" is not [A-Za-z_][A-Za-z0-9_]*",
                              k ? k : ""),
                   false;
    }
    return true;
}

/* Routes one request message inside the open transaction. Returns non-OK only for errors that
 * must abort the transaction (produce failures); bad input is handled here. */
static sy_err_code_t route_one(sy_router_t *r, const sy_registry_snapshot_t *snap,
                               const rd_kafka_message_t *m, sy_err_t *err)
{
    sy_err_t why = SY_ERR_INIT;
    if (sy_codec_decode(r->codec, SY_TYPE_JOB_REQUEST, m->payload, m->len, &r->req, &why) != SY_OK)
        return deadletter(r, m, &why, err);
    const char *job_id = sy_avro_get_string(&r->req, "job_id");
    if (!job_id_valid(job_id, &why))
        return deadletter(r, m, &why, err);
    int64_t submitted_at = 0;
    sy_avro_get_long_opt(&r->req, "submitted_at", &submitted_at);

    sy_seen_t *seen =
        m->partition >= 0 && m->partition < MAX_PARTITIONS ? r->seen[m->partition] : NULL;
    if (seen && sy_seen_contains(seen, job_id, strlen(job_id))) {
        r->n_duplicate++;
        sy_info("router", "job %s: duplicate submission ignored", job_id);
        return emit_status(r, job_id, "DUPLICATE", 0, NULL, NULL,
                           "duplicate submission of an already routed job id; ignored",
                           submitted_at, err);
    }

    sy_criterion_t crit[MAX_CRITERIA], cmd;
    const char *tag_buf[MAX_CRITERIA + 1][MAX_CRITERION_TAGS];
    size_t n_crit = 0;
    sy_resolution_t res;
    if (emit_status(r, job_id, "ACCEPTED", 1, NULL, NULL, NULL, submitted_at, err) != SY_OK)
        return err->code;
    if (!validate(r, crit, &n_crit, &cmd, tag_buf, &why) || !snap ||
        sy_resolve(snap, crit, n_crit, &cmd, r->selector, (sy_active_fn)sy_regcache_active, r->reg,
                   &r->rng, &res, &why) != SY_OK) {
        if (!snap)
            sy_err_set(&why, SY_ERR_INTERNAL, true, "no registry loaded");
        r->n_invalid++;
        sy_info("router", "job %s: INVALID: %s", job_id, why.msg);
        return emit_status(r, job_id, "INVALID", 2, NULL, NULL, why.msg, submitted_at, err);
    }

    char topic[300];
    snprintf(topic, sizeof(topic), "%s.cluster.%s", sy_config_get(r->conf, "topic.namespace"),
             res.cluster->name);
    if (ensure_cluster_topic(r, topic, err) != SY_OK || build_routed(r, job_id, &res, err) != SY_OK)
        return err->code;
    if (produce_value(r, SY_TYPE_ROUTED_JOB, topic, job_id, &r->routed, err) != SY_OK) {
        if (err->code != SY_ERR_TOO_LARGE)
            return err->code;
        /* the request fits a message, the request plus the routing data does not */
        sy_err_set(&why, SY_ERR_TOO_LARGE, false,
                   "request too large to route: %s (make arguments, environment or metadata "
                   "smaller)",
                   err->msg);
        sy_err_clear(err);
        r->n_invalid++;
        sy_info("router", "job %s: INVALID: %s", job_id, why.msg);
        return emit_status(r, job_id, "INVALID", 2, NULL, NULL, why.msg, submitted_at, err);
    }
    if (produce(r, r->t_seen, m->partition, job_id, (void *)res.cluster->name,
                strlen(res.cluster->name), RD_KAFKA_MSG_F_COPY, err) != SY_OK ||
        emit_status(r, job_id, "RESOLVED", 2, res.cluster->name, res.command->name, res.rationale,
                    submitted_at, err) != SY_OK)
        return err->code;
    if (seen)
        sy_seen_add(seen, job_id, strlen(job_id));
    sy_regcache_note_routed(r->reg, res.cluster->name);
    r->n_routed++;
    /* debug, not info: one line per routed job costs more than routing it, and the RESOLVED
     * event on <ns>.status already records the decision and its rationale */
    sy_debug("router", "job %s -> %s: %s", job_id, res.cluster->name, res.rationale);
    return SY_OK;
}

/* ---- the transaction loop ---------------------------------------------------------------------
 */

/* After an aborted transaction: back to the committed offsets, and the seen sets rebuilt (the
 * aborted batch may have added ids that were never committed). */
static void rewind_and_restore(sy_router_t *r)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(r->consumer, &assigned) || !assigned)
        return;
    if (rd_kafka_committed(r->consumer, assigned, r->timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < assigned->cnt; i++) {
            rd_kafka_topic_partition_t *p = &assigned->elems[i];
            if (p->offset < 0)
                p->offset = RD_KAFKA_OFFSET_BEGINNING;
        }
        rd_kafka_error_t *e = rd_kafka_seek_partitions(r->consumer, assigned, r->timeout_ms);
        if (e) {
            sy_error("router", "rewind after abort: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    for (int i = 0; i < assigned->cnt; i++) {
        sy_err_t e = SY_ERR_INIT;
        int32_t p = assigned->elems[i].partition;
        while (restore_seen(r, p, &e) != SY_OK && !sy_signal_stop_requested()) {
            sy_warn("router", "partition %d: %s; retrying", p, e.msg);
            sleep(1);
        }
    }
    rd_kafka_topic_partition_list_destroy(assigned);
}

static void destroy_batch(rd_kafka_message_t **batch, int n)
{
    for (int i = 0; i < n; i++)
        rd_kafka_message_destroy(batch[i]);
}

/* Runs one batch as one transaction. Returns SY_OK, or a fatal error. */
static sy_err_code_t run_batch(sy_router_t *r, rd_kafka_message_t **batch, int n, sy_err_t *err)
{
    long long t_begin = sy_time_mono_ms(), t_routed = 0;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(r->producer);
    if (e) {
        sy_err_set(err, SY_ERR_KAFKA, false, "begin_transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return SY_ERR_KAFKA;
    }
    const sy_registry_snapshot_t *snap = sy_regcache_acquire(r->reg);
    sy_err_t perr = SY_ERR_INIT;
    bool failed = false;
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; i < n && !failed; i++) {
        rd_kafka_message_t *m = batch[i];
        failed = route_one(r, snap, m, &perr) != SY_OK;
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offsets, rd_kafka_topic_name(m->rkt), m->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(offsets, rd_kafka_topic_name(m->rkt),
                                                  m->partition);
        p->offset = m->offset + 1;
    }
    sy_regcache_release(r->reg, snap);

    if (!failed) {
        t_routed = sy_time_mono_ms();
        rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(r->consumer);
        e = rd_kafka_send_offsets_to_transaction(r->producer, offsets, cgmd, -1);
        rd_kafka_consumer_group_metadata_destroy(cgmd);
        if (!e)
            e = rd_kafka_commit_transaction(r->producer, -1);
    } else {
        sy_warn("router", "batch failed: %s", perr.msg);
    }
    rd_kafka_topic_partition_list_destroy(offsets);

    sy_err_code_t rc = SY_OK;
    if (!failed && !e) {
        r->n_batches++;
        sy_debug("router", "transaction of %d request(s): routed in %lld ms, committed in %lld ms",
                 n, t_routed - t_begin, sy_time_mono_ms() - t_routed);
        return SY_OK;
    }
    if (e && rd_kafka_error_is_fatal(e)) {
        rc = sy_err_set(err, SY_ERR_KAFKA, false, "fatal transaction error: %s",
                        rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return rc;
    }
    if (e) {
        sy_warn("router", "transaction failed (%s); aborting and retrying the batch",
                rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    e = rd_kafka_abort_transaction(r->producer, -1);
    if (e) {
        rc =
            sy_err_set(err, SY_ERR_KAFKA, false, "abort_transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return rc;
    }
    r->n_aborts++;
    rewind_and_restore(r);
    return SY_OK;
}

sy_err_code_t sy_router_run(sy_router_t *r, sy_err_t *err)
{
    rd_kafka_message_t **batch = calloc((size_t)r->batch_max, sizeof(*batch));
    sy_err_code_t rc = SY_OK;
    long long last_stats = sy_time_mono_ms();
    if (!batch)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");

    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, r->t_requests, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(r->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (se) {
        rc = sy_err_set(err, SY_ERR_KAFKA, false, "subscribe %s: %s", r->t_requests,
                        rd_kafka_err2str(se));
        goto out;
    }
    sy_info("router", "%s routing %s (selector %s)", r->instance, r->t_requests,
            sy_config_get(r->conf, "router.selector"));

    while (!sy_signal_stop_requested()) {
        int n = 0;
        long long until = sy_time_mono_ms() + r->batch_ms;
        r->revoked = false;
        while (n < r->batch_max) {
            long long left = n ? until - sy_time_mono_ms() : 200;
            if (left <= 0)
                break;
            rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, (int)left);
            if (r->revoked) { /* what we hold may belong to partitions we no longer own */
                destroy_batch(batch, n);
                n = 0;
                r->revoked = false;
            }
            if (!m) {
                if (!n)
                    break;
                continue;
            }
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    sy_warn("router", "consume: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            batch[n++] = m;
        }
        if (n) {
            rc = run_batch(r, batch, n, err);
            destroy_batch(batch, n);
            if (rc != SY_OK)
                goto out;
        }
        if (sy_time_mono_ms() - last_stats > 10000) {
            sy_info("router",
                    "stats: routed %ld, invalid %ld, duplicate %ld, dead-lettered %ld, "
                    "transactions %ld, aborted %ld",
                    r->n_routed, r->n_invalid, r->n_duplicate, r->n_deadletter, r->n_batches,
                    r->n_aborts);
            last_stats = sy_time_mono_ms();
        }
    }
    sy_info("router", "stopping: routed %ld, invalid %ld, duplicate %ld, dead-lettered %ld",
            r->n_routed, r->n_invalid, r->n_duplicate, r->n_deadletter);
out:
    free(batch);
    return rc;
}

/* ---- setup --------------------------------------------------------------------------------------
 */

static sy_err_code_t make_topics(sy_router_t *r, sy_err_t *err)
{
    const char *suffixes[] = {"requests", "status", "logs", "control", "deadletter"};
    char topic[256];
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
        if (sy_kafka_ensure_topic(r->producer,
                                  sy_kafka_topic(r->conf, suffixes[i], topic, sizeof(topic)),
                                  r->partitions, r->replication, r->timeout_ms, err) != SY_OK)
            return err->code;
    /* the seen changelog mirrors the requests topic partition for partition */
    int n = sy_kafka_partition_count_wait(r->producer, r->t_requests, r->timeout_ms, err);
    if (n < 0)
        return err->code;
    if (n > MAX_PARTITIONS)
        return sy_err_set(err, SY_ERR_CONFIG, false, "%s has %d partitions (at most %d)",
                          r->t_requests, n, MAX_PARTITIONS);
    static const char *const compacted[] = {"cleanup.policy", "compact", NULL};
    if (sy_kafka_ensure_topic_config(r->producer, r->t_seen, n, r->replication, compacted,
                                     r->timeout_ms, err) != SY_OK)
        return err->code;
    int m = sy_kafka_partition_count_wait(r->producer, r->t_seen, r->timeout_ms, err);
    if (m < 0)
        return err->code;
    if (m < n)
        return sy_err_set(err, SY_ERR_CONFIG, false,
                          "%s has %d partitions but %s has %d: they must match", r->t_seen, m,
                          r->t_requests, n);
    return SY_OK;
}

sy_router_t *sy_router_new(const sy_config_t *conf, sy_err_t *err)
{
    sy_router_t *r = calloc(1, sizeof(*r));
    if (!r) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    r->conf = conf;
    const char *inst = sy_config_get(conf, "router.instance.id");
    if (*inst) {
        snprintf(r->instance, sizeof(r->instance), "%s", inst);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(r->instance, sizeof(r->instance), "router-%s-%d", host, (int)getpid());
    }
    sy_kafka_topic(conf, "requests", r->t_requests, sizeof(r->t_requests));
    sy_kafka_topic(conf, "status", r->t_status, sizeof(r->t_status));
    sy_kafka_topic(conf, "deadletter", r->t_deadletter, sizeof(r->t_deadletter));
    sy_kafka_topic(conf, "router.seen", r->t_seen, sizeof(r->t_seen));
    r->partitions = (int)sy_config_get_int(conf, "topic.partitions");
    r->replication = (int)sy_config_get_int(conf, "topic.replication.factor");
    r->batch_max = (int)sy_config_get_int(conf, "router.batch.max");
    r->batch_ms = (int)sy_config_get_int(conf, "router.batch.ms");
    r->timeout_ms = (int)sy_config_get_int(conf, "broker.timeout.ms");
    r->max_job_timeout_ms = sy_config_get_int(conf, "request.max.timeout");
    r->rng = (uint64_t)sy_time_wall_ms() ^ ((uint64_t)getpid() << 32);
    int sel = sy_selector_parse(sy_config_get(conf, "router.selector"));
    if (sel < 0) {
        sy_err_set(err, SY_ERR_CONFIG, false,
                   "router.selector \"%s\" is not weighted or least-active",
                   sy_config_get(conf, "router.selector"));
        goto fail;
    }
    r->selector = (sy_selector_t)sel;
    if (r->batch_max < 1 || r->batch_ms < 0) {
        sy_err_set(err, SY_ERR_CONFIG, false,
                   "router.batch.max must be >= 1, router.batch.ms >= 0");
        goto fail;
    }
    if (!(r->topics_made = sy_seen_new())) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto fail;
    }
    if (!(r->codec = sy_codec_new(conf, err)))
        goto fail;
    if (sy_codec_value_new(r->codec, SY_TYPE_JOB_REQUEST, &r->req, err) != SY_OK)
        goto fail;
    if (sy_codec_value_new(r->codec, SY_TYPE_ROUTED_JOB, &r->routed, err) != SY_OK) {
        avro_value_decref(&r->req);
        goto fail;
    }
    if (sy_codec_value_new(r->codec, SY_TYPE_JOB_STATUS, &r->status, err) != SY_OK) {
        avro_value_decref(&r->req);
        avro_value_decref(&r->routed);
        goto fail;
    }
    r->values_made = true;

    if (!(r->reg = sy_regcache_new(conf, err)))
        goto fail;
    char txid[200];
    snprintf(txid, sizeof(txid), "switchyard-%s", r->instance);
    /* linger.ms 50, not 5: a transaction's records go out in fewer, larger produce requests
     * while the batch is routed — the broker spent about half the CPU per routed request in
     * scripts/bench-router. commit_transaction flushes at once whatever linger.ms says, so it
     * adds nothing to an idle router's latency. */
    sy_kafka_opts_t popts = {
        .transactional_id = txid, .linger_ms = "50", .client_id_suffix = "router"};
    if (!(r->producer = sy_kafka_new(conf, SY_KAFKA_TRANSACTIONAL_PRODUCER, &popts, err)))
        goto fail;
    if (make_topics(r, err) != SY_OK)
        goto fail;
    /* the restorer needs end-of-partition events to know when a changelog is fully read */
    char restore_group[256];
    snprintf(restore_group, sizeof(restore_group), "%s-restore-%s",
             sy_config_get(conf, "router.group.id"), r->instance);
    sy_kafka_opts_t ropts = {.group_id = restore_group, /* assign() only; never commits */
                             .read_committed = true,
                             .partition_eof = true,
                             /* the end of a partition is known when a fetch comes back empty:
                              * not after the broker has held it for 500 ms */
                             .fetch_wait_max_ms = "10",
                             .client_id_suffix = "router-restore"};
    if (!(r->restorer = sy_kafka_new(conf, SY_KAFKA_CONSUMER, &ropts, err)))
        goto fail;
    sy_kafka_opts_t copts = {.group_id = sy_config_get(conf, "router.group.id"),
                             .read_committed = true,
                             .rebalance_cb = rebalance_cb,
                             .opaque = r,
                             .client_id_suffix = "router"};
    if (!(r->consumer = sy_kafka_new(conf, SY_KAFKA_CONSUMER, &copts, err)))
        goto fail;
    if (!sy_regcache_wait_ready(r->reg, 30000)) {
        sy_err_set(err, SY_ERR_DATABASE, true,
                   "no registry loaded from PostgreSQL within 30 s (see the warnings above)");
        goto fail;
    }
    return r;
fail:
    sy_router_destroy(r);
    return NULL;
}

void sy_router_destroy(sy_router_t *r)
{
    if (!r)
        return;
    if (r->consumer) {
        rd_kafka_consumer_close(r->consumer);
        rd_kafka_destroy(r->consumer);
    }
    if (r->restorer) {
        rd_kafka_consumer_close(r->restorer);
        rd_kafka_destroy(r->restorer);
    }
    if (r->producer)
        rd_kafka_destroy(r->producer);
    sy_regcache_destroy(r->reg);
    for (int i = 0; i < MAX_PARTITIONS; i++)
        sy_seen_destroy(r->seen[i]);
    sy_seen_destroy(r->topics_made);
    if (r->values_made) {
        avro_value_decref(&r->req);
        avro_value_decref(&r->routed);
        avro_value_decref(&r->status);
    }
    sy_codec_destroy(r->codec);
    free(r);
}
