/* sy_router: the router's consume-transform-produce loop (exactly once, per batch). */
#include "sy_time.h"
#include "sy_router.h"

#include <ctype.h>
#include <pthread.h>
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
/* librdkafka refuses a record whose key + value + its per-record overhead (under 64 bytes for
 * message format v2) exceeds the producer's message.max.bytes; a RoutedJob is checked against
 * the limit minus this margin before its transaction opens. */
#define RECORD_OVERHEAD 128

/* One output record of a batch, made before the batch's transaction opens and produced into it
 * then (while the previous transaction commits, the next batch is routed). */
typedef struct out_rec {
    const char *topic; /* r->t_* or a copy in the batch arena */
    int32_t partition; /* RD_KAFKA_PARTITION_UA, or the changelog's partition */
    const char *key;   /* in the batch arena */
    void *val;         /* malloc'd, handed to librdkafka; or in the arena when copy */
    size_t len;
    bool copy;
    const rd_kafka_message_t *dead; /* dead-letter this input message (why: its reason) */
    sy_err_t *why;
} out_rec_t;

/* Bump allocator for a batch's small strings (keys, topic names), reset after each batch. */
typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    char data[];
} arena_chunk_t;

typedef struct batch {
    rd_kafka_message_t **msgs;
    int n;
    out_rec_t *recs;
    size_t n_recs, cap_recs;
    arena_chunk_t *arena;
    rd_kafka_topic_partition_list_t *offsets;
} batch_t;

/* The thread that sends a transaction's offsets and commits it, while the main thread routes
 * the next batch. */
typedef struct committer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, busy, quit;
    rd_kafka_t *producer;
    rd_kafka_topic_partition_list_t *offsets; /* owned while busy */
    rd_kafka_consumer_group_metadata_t *cgmd;
    rd_kafka_error_t *result; /* of the last commit; NULL = committed */
    int n;                    /* requests in it, for the log */
    long long t_produced;
} committer_t;

/* The fields of the records the router writes (sy_codec_encode_fields): every field of the
 * schema, found by name at start. */
enum {
    ST_JOB_ID,
    ST_SEQ,
    ST_STATUS,
    ST_CLUSTER,
    ST_COMMAND,
    ST_BACKEND_ID,
    ST_MESSAGE,
    ST_ATTEMPT,
    ST_EMITTED_AT,
    ST_SUBMITTED_AT,
    ST_EXIT_CODE,
    ST_FAILURE_REASON,
    ST_LOG_URI,
    ST_EMITTER,
    ST_COUNT
};
static const char *const st_names[ST_COUNT] = {
    "job_id",  "seq",     "status",     "cluster",      "command",   "backend_id",
    "message", "attempt", "emitted_at", "submitted_at", "exit_code", "failure_reason",
    "log_uri", "emitter"};
enum {
    RJ_JOB_ID,
    RJ_REQUEST,
    RJ_CLUSTER_ID,
    RJ_CLUSTER_NAME,
    RJ_BACKEND_KIND,
    RJ_BACKEND_ADDRESS,
    RJ_REGION,
    RJ_CLUSTER_MAX_CONCURRENT,
    RJ_COMMAND_ID,
    RJ_COMMAND_NAME,
    RJ_COMMAND_SPEC,
    RJ_ATTEMPT,
    RJ_RATIONALE,
    RJ_ROUTED_AT,
    RJ_COUNT
};
static const char *const rj_names[RJ_COUNT] = {
    "job_id",       "request",         "cluster_id",   "cluster_name",
    "backend_kind", "backend_address", "region",       "cluster_max_concurrent",
    "command_id",   "command_name",    "command_spec", "attempt",
    "rationale",    "routed_at"};

static inline sy_field_t f_str(const char *s)
{
    return s ? (sy_field_t){.kind = SY_FIELD_STRING, .s = s, .len = strlen(s)}
             : (sy_field_t){.kind = SY_FIELD_NULL};
}

static inline sy_field_t f_long(int64_t v)
{
    return (sy_field_t){.kind = SY_FIELD_LONG, .l = v};
}

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
    avro_value_t req; /* reused for every message */
    bool values_made;
    int st_idx[ST_COUNT], rj_idx[RJ_COUNT]; /* our fields' places in JobStatus / RoutedJob */
    size_t max_record;                      /* the producer's message.max.bytes */
    committer_t commit; /* at most one transaction commits while the next batch is routed */
    /* "<ns>.cluster.<name>" by cluster index in the registry snapshot of version
     * topics_version, made (and the topic ensured to exist) on first use */
    char **cluster_topics;
    size_t n_cluster_topics;
    long long topics_version;
    long n_routed, n_invalid, n_duplicate, n_deadletter, n_batches, n_aborts;
};

static bool committer_wait(sy_router_t *r);

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
        committer_wait(r); /* the offsets of the transaction in flight are for these */
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

/* ---- a batch's records ------------------------------------------------------------------- */

static char *arena_dup(batch_t *b, const char *str, size_t n)
{
    arena_chunk_t *c = b->arena;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > 65536 ? n + 1 : 65536;
        if (!(c = malloc(sizeof(*c) + cap)))
            return NULL;
        c->next = b->arena;
        c->used = 0;
        c->cap = cap;
        b->arena = c;
    }
    char *d = c->data + c->used;
    memcpy(d, str, n);
    d[n] = 0;
    c->used += n + 1;
    return d;
}

/* Appends a record; val (malloc'd unless copy) belongs to the batch from here on, also when
 * this fails. */
static sy_err_code_t add_rec(batch_t *b, const char *topic, int32_t partition, const char *key,
                             void *val, size_t len, bool copy, sy_err_t *err)
{
    if (b->n_recs == b->cap_recs) {
        size_t cap = b->cap_recs ? b->cap_recs * 2 : 1024;
        out_rec_t *recs = realloc(b->recs, cap * sizeof(*recs));
        if (!recs) {
            if (!copy)
                free(val);
            return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
        }
        b->recs = recs;
        b->cap_recs = cap;
    }
    b->recs[b->n_recs++] = (out_rec_t){
        .topic = topic, .partition = partition, .key = key, .val = val, .len = len, .copy = copy};
    return SY_OK;
}

/* Frees what the batch still owns (records not handed to librdkafka, input messages, strings)
 * and empties it for the next one. */
static void batch_reset(batch_t *b)
{
    for (size_t i = 0; i < b->n_recs; i++) {
        if (!b->recs[i].copy)
            free(b->recs[i].val);
        free(b->recs[i].why);
    }
    b->n_recs = 0;
    for (int i = 0; i < b->n; i++)
        rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
    arena_chunk_t *c = b->arena;
    while (c && c->next) { /* keep one chunk for the next batch */
        arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    if (c)
        c->used = 0;
    b->arena = c;
    if (b->offsets) {
        rd_kafka_topic_partition_list_destroy(b->offsets);
        b->offsets = NULL;
    }
}

static void batch_free(batch_t *b)
{
    batch_reset(b);
    free(b->arena);
    free(b->recs);
    free(b->msgs);
}

/* Finds our fields in type's current schema; every field of it must be one we write. */
static sy_err_code_t map_fields(sy_router_t *r, sy_type_t type, const char *const *names, int n,
                                int *idx, sy_err_t *err)
{
    size_t count = sy_codec_field_count(r->codec, type);
    if (count != (size_t)n)
        return sy_err_set(err, SY_ERR_SCHEMA, false,
                          "%s has %zu fields; this router writes %d (a schema it was not built "
                          "for)",
                          sy_type_name(type), count, n);
    for (int i = 0; i < n; i++)
        if ((idx[i] = sy_codec_field_index(r->codec, type, names[i])) < 0)
            return sy_err_set(err, SY_ERR_SCHEMA, false, "%s has no field %s", sy_type_name(type),
                              names[i]);
    return SY_OK;
}

/* One JobStatus event. seq: ACCEPTED 1, RESOLVED/INVALID 2, DUPLICATE 0 (informational). */
static sy_err_code_t emit_status(sy_router_t *r, batch_t *b, const char *job_id, const char *state,
                                 long seq, const char *cluster, const char *command,
                                 const char *message, long long submitted_at, long long now,
                                 sy_err_t *err)
{
    sy_field_t f[ST_COUNT];
    const int *x = r->st_idx;
    f[x[ST_JOB_ID]] = f_str(job_id);
    f[x[ST_SEQ]] = f_long(seq);
    f[x[ST_STATUS]] = f_str(state);
    f[x[ST_CLUSTER]] = f_str(cluster);
    f[x[ST_COMMAND]] = f_str(command);
    f[x[ST_BACKEND_ID]] = f_str(NULL);
    f[x[ST_MESSAGE]] = f_str(message);
    f[x[ST_ATTEMPT]] = f_long(1);
    f[x[ST_EMITTED_AT]] = f_long(now);
    f[x[ST_SUBMITTED_AT]] = submitted_at > 0 ? f_long(submitted_at) : f_str(NULL);
    f[x[ST_EXIT_CODE]] = f_str(NULL);
    f[x[ST_FAILURE_REASON]] = f_str(NULL);
    f[x[ST_LOG_URI]] = f_str(NULL);
    f[x[ST_EMITTER]] = f_str(r->instance);
    void *buf = NULL;
    size_t len = 0;
    if (sy_codec_encode_fields(r->codec, SY_TYPE_JOB_STATUS, r->t_status, f, ST_COUNT, &buf, &len,
                               err) != SY_OK)
        return err->code;
    return add_rec(b, r->t_status, RD_KAFKA_PARTITION_UA, job_id, buf, len, false, err);
}

/* Marks input message m for <ns>.deadletter (produced with the batch; see deadletter()). */
static sy_err_code_t add_deadletter(sy_router_t *r, batch_t *b, const rd_kafka_message_t *m,
                                    const sy_err_t *why, sy_err_t *err)
{
    sy_err_t *copy = malloc(sizeof(*copy));
    if (!copy)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    *copy = *why;
    if (add_rec(b, r->t_deadletter, RD_KAFKA_PARTITION_UA, NULL, NULL, 0, true, err) != SY_OK) {
        free(copy);
        return err->code;
    }
    b->recs[b->n_recs - 1].dead = m;
    b->recs[b->n_recs - 1].why = copy;
    return SY_OK;
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

static const char *criterion_name(size_t index, char *buf, size_t size)
{
    if (!index)
        return "command criterion";
    snprintf(buf, size, "cluster criterion #%zu", index);
    return buf;
}

/* Reads one Criterion record into c (strings borrowed from the value; tags into tag_buf).
 * index: the cluster criterion's position from 1, 0 for the command criterion. */
static bool read_criterion(avro_value_t *rec, sy_criterion_t *c, const char **tag_buf, size_t index,
                           sy_err_t *err)
{
    char what[48]; /* named only when there is something to say */
    memset(c, 0, sizeof(*c));
    c->id = sy_avro_get_string(rec, "id");
    c->name = sy_avro_get_string(rec, "name");
    avro_value_t tags;
    size_t n = 0;
    if (avro_value_get_by_name(rec, "tags", &tags, NULL) == 0)
        avro_value_get_size(&tags, &n);
    if (n > MAX_CRITERION_TAGS) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s has %zu tags (at most %d)",
                   criterion_name(index, what, sizeof(what)), n, MAX_CRITERION_TAGS);
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
            sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s: %s",
                       criterion_name(index, what, sizeof(what)), e.msg);
            return false;
        }
        tag_buf[i] = s;
    }
    c->tags = tag_buf;
    c->n_tags = n;
    if (!c->id && !c->name && n == 0) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s is empty (give tags, id or name)",
                   criterion_name(index, what, sizeof(what)));
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

static void cluster_topics_clear(sy_router_t *r)
{
    for (size_t i = 0; i < r->n_cluster_topics; i++)
        free(r->cluster_topics[i]);
    free(r->cluster_topics);
    r->cluster_topics = NULL;
    r->n_cluster_topics = 0;
}

/* The topic of cluster c of snap, made when missing (cached: created topics for the router's
 * lifetime, names per registry version). The string lives until the registry changes, which is
 * only noticed between batches. */
static const char *cluster_topic(sy_router_t *r, const sy_registry_snapshot_t *snap,
                                 const sy_cluster_t *c, sy_err_t *err)
{
    size_t i = (size_t)(c - snap->clusters);
    if (r->topics_version != snap->version || r->n_cluster_topics != snap->n_clusters) {
        cluster_topics_clear(r);
        if (!(r->cluster_topics =
                  calloc(snap->n_clusters ? snap->n_clusters : 1, sizeof(char *)))) {
            sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
            return NULL;
        }
        r->n_cluster_topics = snap->n_clusters;
        r->topics_version = snap->version;
    }
    if (r->cluster_topics[i])
        return r->cluster_topics[i];
    char topic[300];
    snprintf(topic, sizeof(topic), "%s.cluster.%s", sy_config_get(r->conf, "topic.namespace"),
             c->name);
    if (!sy_seen_contains(r->topics_made, topic, strlen(topic))) {
        if (sy_kafka_ensure_topic(r->producer, topic, r->partitions, r->replication, r->timeout_ms,
                                  err) != SY_OK)
            return NULL;
        sy_seen_add(r->topics_made, topic, strlen(topic));
    }
    if (!(r->cluster_topics[i] = strdup(topic)))
        sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    return r->cluster_topics[i];
}

/* The RoutedJob of a resolved request, encoded and appended to the batch (*len: its size). The
 * request is the bytes it came in (body) when it was written with our schema, else r->req
 * encoded again. */
static sy_err_code_t encode_routed(sy_router_t *r, batch_t *b, const char *topic,
                                   const char *job_id, const sy_resolution_t *res, const void *body,
                                   size_t body_len, long long now, size_t *len, sy_err_t *err)
{
    /* precomputed at registry load; present, since the resolver checked runs_on */
    const char *backend_spec = sy_registry_command_spec(res->command, res->cluster->backend_kind);
    if (!backend_spec)
        return sy_err_set(err, SY_ERR_INTERNAL, false, "command %s has no spec for %s",
                          res->command->name, res->cluster->backend_kind);
    void *again = NULL, *buf = NULL;
    if (!body) { /* written with another version of the schema */
        size_t n = 0;
        sy_codec_frame_t frame;
        if (sy_codec_encode(r->codec, SY_TYPE_JOB_REQUEST, NULL, &r->req, &again, &n, err) !=
                SY_OK ||
            sy_codec_peek(again, n, &frame, err) != SY_OK) {
            free(again);
            return err->code;
        }
        body = (const uint8_t *)again + frame.header_len;
        body_len = n - frame.header_len;
    }
    sy_field_t f[RJ_COUNT];
    const int *x = r->rj_idx;
    f[x[RJ_JOB_ID]] = f_str(job_id);
    f[x[RJ_REQUEST]] = (sy_field_t){
        .kind = SY_FIELD_RAW, .s = body, .len = body_len, .raw_type = SY_TYPE_JOB_REQUEST};
    f[x[RJ_CLUSTER_ID]] = f_str(res->cluster->id);
    f[x[RJ_CLUSTER_NAME]] = f_str(res->cluster->name);
    f[x[RJ_BACKEND_KIND]] = f_str(res->cluster->backend_kind);
    f[x[RJ_BACKEND_ADDRESS]] = f_str(res->cluster->backend_address);
    f[x[RJ_REGION]] = f_str(res->cluster->region);
    f[x[RJ_CLUSTER_MAX_CONCURRENT]] = f_long(res->cluster->max_concurrent);
    f[x[RJ_COMMAND_ID]] = f_str(res->command->id);
    f[x[RJ_COMMAND_NAME]] = f_str(res->command->name);
    f[x[RJ_COMMAND_SPEC]] = f_str(backend_spec);
    f[x[RJ_ATTEMPT]] = f_long(1);
    f[x[RJ_RATIONALE]] = f_str(res->rationale);
    f[x[RJ_ROUTED_AT]] = f_long(now);
    sy_err_code_t rc =
        sy_codec_encode_fields(r->codec, SY_TYPE_ROUTED_JOB, topic, f, RJ_COUNT, &buf, len, err);
    free(again);
    if (rc != SY_OK)
        return rc;
    return add_rec(b, topic, RD_KAFKA_PARTITION_UA, job_id, buf, *len, false, err);
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
        avro_value_get_by_index(&arr, i, &item, NULL);
        if (!read_criterion(&item, &crit[i], tag_buf[i], i + 1, why))
            return false;
    }
    *n_crit = n;
    avro_value_get_by_name(&r->req, "command_criterion", &item, NULL);
    if (!read_criterion(&item, cmd, tag_buf[MAX_CRITERIA], 0, why))
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

/* Routes one request message into batch b's records. Returns non-OK only for errors that must
 * fail the batch (out of memory, the registry unreachable while encoding, a cluster topic that
 * cannot be made); bad input is handled here. */
static sy_err_code_t route_one(sy_router_t *r, batch_t *b, const sy_registry_snapshot_t *snap,
                               const rd_kafka_message_t *m, sy_err_t *err)
{
    sy_err_t why = SY_ERR_INIT;
    const void *body = NULL; /* the request's Avro body, when written with our schema */
    size_t body_len = 0;
    if (sy_codec_decode_body(r->codec, SY_TYPE_JOB_REQUEST, m->payload, m->len, &r->req, &body,
                             &body_len, &why) != SY_OK)
        return add_deadletter(r, b, m, &why, err);
    const char *id = sy_avro_get_string(&r->req, "job_id");
    if (!job_id_valid(id, &why))
        return add_deadletter(r, b, m, &why, err);
    size_t id_len = strlen(id);
    const char *job_id = arena_dup(b, id, id_len); /* r->req is overwritten by the next one */
    if (!job_id)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    int64_t submitted_at = 0;
    sy_avro_get_long_opt(&r->req, "submitted_at", &submitted_at);
    long long now = sy_time_wall_ms(); /* emitted_at and routed_at of what this request makes */

    sy_seen_t *seen =
        m->partition >= 0 && m->partition < MAX_PARTITIONS ? r->seen[m->partition] : NULL;
    if (seen && sy_seen_contains(seen, job_id, id_len)) {
        r->n_duplicate++;
        sy_info("router", "job %s: duplicate submission ignored", job_id);
        return emit_status(r, b, job_id, "DUPLICATE", 0, NULL, NULL,
                           "duplicate submission of an already routed job id; ignored",
                           submitted_at, now, err);
    }

    sy_criterion_t crit[MAX_CRITERIA], cmd;
    const char *tag_buf[MAX_CRITERIA + 1][MAX_CRITERION_TAGS];
    size_t n_crit = 0;
    sy_resolution_t res;
    if (emit_status(r, b, job_id, "ACCEPTED", 1, NULL, NULL, NULL, submitted_at, now, err) != SY_OK)
        return err->code;
    if (!validate(r, crit, &n_crit, &cmd, tag_buf, &why) || !snap ||
        sy_resolve(snap, crit, n_crit, &cmd, r->selector, (sy_active_fn)sy_regcache_active, r->reg,
                   &r->rng, &res, &why) != SY_OK) {
        if (!snap)
            sy_err_set(&why, SY_ERR_INTERNAL, true, "no registry loaded");
        r->n_invalid++;
        sy_info("router", "job %s: INVALID: %s", job_id, why.msg);
        return emit_status(r, b, job_id, "INVALID", 2, NULL, NULL, why.msg, submitted_at, now, err);
    }

    const char *topic = cluster_topic(r, snap, res.cluster, err);
    if (!topic)
        return err->code;
    const char *cluster = arena_dup(b, res.cluster->name, strlen(res.cluster->name));
    if (!cluster)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    size_t len = 0;
    if (encode_routed(r, b, topic, job_id, &res, body, body_len, now, &len, err) != SY_OK)
        return err->code;
    if (len + id_len + RECORD_OVERHEAD > r->max_record) {
        /* the request fits a message, the request plus the routing data does not */
        free(b->recs[--b->n_recs].val);
        sy_err_set(&why, SY_ERR_TOO_LARGE, false,
                   "request too large to route: the RoutedJob would be %zu bytes, over the "
                   "producer's message.max.bytes %zu (make arguments, environment or metadata "
                   "smaller)",
                   len, r->max_record);
        r->n_invalid++;
        sy_info("router", "job %s: INVALID: %s", job_id, why.msg);
        return emit_status(r, b, job_id, "INVALID", 2, NULL, NULL, why.msg, submitted_at, now, err);
    }
    if (add_rec(b, r->t_seen, m->partition, job_id, (void *)cluster, strlen(cluster), true, err) !=
            SY_OK ||
        emit_status(r, b, job_id, "RESOLVED", 2, res.cluster->name, res.command->name,
                    res.rationale, submitted_at, now, err) != SY_OK)
        return err->code;
    if (seen)
        sy_seen_add(seen, job_id, id_len);
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

/* ---- the committer thread ---------------------------------------------------------------- */

static void *committer_main(void *arg)
{
    committer_t *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->busy && !c->quit)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->busy)
            break;
        pthread_mutex_unlock(&c->mu);
        long long t0 = sy_time_mono_ms();
        rd_kafka_error_t *e =
            rd_kafka_send_offsets_to_transaction(c->producer, c->offsets, c->cgmd, -1);
        if (!e)
            e = rd_kafka_commit_transaction(c->producer, -1);
        if (!e)
            sy_debug("router",
                     "transaction of %d request(s): produced in %lld ms, committed in "
                     "%lld ms",
                     c->n, c->t_produced, sy_time_mono_ms() - t0);
        pthread_mutex_lock(&c->mu);
        rd_kafka_topic_partition_list_destroy(c->offsets);
        rd_kafka_consumer_group_metadata_destroy(c->cgmd);
        c->offsets = NULL;
        c->cgmd = NULL;
        c->result = e;
        c->busy = false;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Waits until the transaction being committed (if any) is done. True when the last one failed:
 * its error stays in commit.result until recover() takes it. Also called from the rebalance
 * callback: partitions are only given up once the offsets committed for them are final. */
static bool committer_wait(sy_router_t *r)
{
    committer_t *c = &r->commit;
    if (!c->started)
        return false;
    pthread_mutex_lock(&c->mu);
    while (c->busy)
        pthread_cond_wait(&c->cv, &c->mu);
    bool failed = c->result != NULL;
    pthread_mutex_unlock(&c->mu);
    return failed;
}

/* Hands the open transaction over to the committer, with the batch's offsets (taken). */
static void committer_start(sy_router_t *r, batch_t *b, long long t_produced)
{
    committer_t *c = &r->commit;
    pthread_mutex_lock(&c->mu);
    c->offsets = b->offsets;
    b->offsets = NULL;
    c->cgmd = rd_kafka_consumer_group_metadata(r->consumer);
    c->n = b->n;
    c->t_produced = t_produced;
    c->busy = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static sy_err_code_t committer_init(sy_router_t *r, sy_err_t *err)
{
    committer_t *c = &r->commit;
    c->producer = r->producer;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        return sy_err_set(err, SY_ERR_INTERNAL, false, "cannot start the committer thread");
    }
    c->started = true;
    return SY_OK;
}

static void committer_stop(sy_router_t *r)
{
    committer_t *c = &r->commit;
    if (!c->started)
        return;
    pthread_mutex_lock(&c->mu);
    c->quit = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    if (c->result)
        rd_kafka_error_destroy(c->result);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    c->started = false;
}

/* ---- the transaction loop ------------------------------------------------------------------ */

/* Routes the batch's messages into its records and notes the offsets to commit with them.
 * Nothing is produced yet: this runs while the previous transaction commits. */
static sy_err_code_t prepare_batch(sy_router_t *r, batch_t *b, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    if (!(b->offsets = rd_kafka_topic_partition_list_new(8)))
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    const sy_registry_snapshot_t *snap = sy_regcache_acquire(r->reg);
    for (int i = 0; i < b->n && rc == SY_OK; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        rc = route_one(r, b, snap, m, err);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(
            b->offsets, rd_kafka_topic_name(m->rkt), m->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(b->offsets, rd_kafka_topic_name(m->rkt),
                                                  m->partition);
        p->offset = m->offset + 1;
    }
    sy_regcache_release(r->reg, snap);
    return rc;
}

/* Opens a transaction and produces the batch's records into it. */
static sy_err_code_t produce_batch(sy_router_t *r, batch_t *b, sy_err_t *err)
{
    rd_kafka_error_t *e = rd_kafka_begin_transaction(r->producer);
    if (e) {
        sy_err_set(err, SY_ERR_KAFKA, false, "begin_transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return SY_ERR_KAFKA;
    }
    for (size_t i = 0; i < b->n_recs; i++) {
        out_rec_t *o = &b->recs[i];
        sy_err_code_t rc;
        if (o->dead) {
            rc = deadletter(r, o->dead, o->why, err);
        } else {
            rc = produce(r, o->topic, o->partition, o->key, o->val, o->len,
                         o->copy ? RD_KAFKA_MSG_F_COPY : RD_KAFKA_MSG_F_FREE, err);
            if (!o->copy)
                o->val = NULL; /* librdkafka's now, or freed by produce() */
        }
        if (rc != SY_OK)
            return rc;
    }
    return SY_OK;
}

/* After a failed batch or transaction: abort what is open, back to the committed offsets and
 * the committed seen sets. Returns non-OK only when that is impossible (a fatal error). */
static sy_err_code_t recover(sy_router_t *r, bool txn_open, sy_err_t *err)
{
    rd_kafka_error_t *e = r->commit.result;
    r->commit.result = NULL;
    if (e && rd_kafka_error_is_fatal(e)) {
        sy_err_set(err, SY_ERR_KAFKA, false, "fatal transaction error: %s",
                   rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return SY_ERR_KAFKA;
    }
    if (e) {
        sy_warn("router", "transaction failed (%s); aborting and retrying the batch",
                rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        txn_open = true;
    }
    if (txn_open) {
        e = rd_kafka_abort_transaction(r->producer, -1);
        if (e) {
            sy_err_set(err, SY_ERR_KAFKA, false, "abort_transaction: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return SY_ERR_KAFKA;
        }
    }
    r->n_aborts++;
    rewind_and_restore(r);
    return SY_OK;
}

/* Collects up to router.batch.max messages, for at most router.batch.ms after the first. */
static void collect(sy_router_t *r, batch_t *b)
{
    long long until = sy_time_mono_ms() + r->batch_ms;
    r->revoked = false;
    while (b->n < r->batch_max) {
        long long left = b->n ? until - sy_time_mono_ms() : 200;
        if (left <= 0)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, (int)left);
        if (r->revoked) { /* what we hold may belong to partitions we no longer own */
            batch_reset(b);
            r->revoked = false;
        }
        if (!m) {
            if (!b->n)
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                sy_warn("router", "consume: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        b->msgs[b->n++] = m;
    }
}

/* One batch: routed while the previous transaction commits, then produced in a transaction of
 * its own, handed to the committer. Returns SY_OK, or a fatal error. */
static sy_err_code_t run_batch(sy_router_t *r, batch_t *b, sy_err_t *err)
{
    sy_err_t perr = SY_ERR_INIT;
    long long t0 = sy_time_mono_ms();
    bool prepared = prepare_batch(r, b, &perr) == SY_OK;
    if (committer_wait(r)) { /* the previous transaction: this batch comes again after the rewind */
        batch_reset(b);
        return recover(r, false, err);
    }
    if (!prepared) {
        sy_warn("router", "batch failed: %s", perr.msg);
        batch_reset(b);
        return recover(r, false, err);
    }
    long long t1 = sy_time_mono_ms();
    if (produce_batch(r, b, &perr) != SY_OK) {
        sy_warn("router", "batch failed: %s", perr.msg);
        batch_reset(b);
        return recover(r, true, err);
    }
    sy_debug("router",
             "batch of %d request(s): routed in %lld ms (the previous commit waited "
             "for meanwhile)",
             b->n, t1 - t0);
    committer_start(r, b, sy_time_mono_ms() - t1);
    r->n_batches++;
    batch_reset(b);
    return SY_OK;
}

sy_err_code_t sy_router_run(sy_router_t *r, sy_err_t *err)
{
    batch_t b = {0};
    sy_err_code_t rc = SY_OK;
    long long last_stats = sy_time_mono_ms();
    if (!(b.msgs = calloc((size_t)r->batch_max, sizeof(*b.msgs))))
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    if (committer_init(r, err) != SY_OK) {
        free(b.msgs);
        return err->code;
    }

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
        collect(r, &b);
        if (b.n) {
            if ((rc = run_batch(r, &b, err)) != SY_OK)
                goto out;
        } else {
            /* idle: settle the last transaction now rather than with the next request */
            if (committer_wait(r) && (rc = recover(r, false, err)) != SY_OK)
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
    if (committer_wait(r))
        rc = recover(r, false, err);
    sy_info("router", "stopping: routed %ld, invalid %ld, duplicate %ld, dead-lettered %ld",
            r->n_routed, r->n_invalid, r->n_duplicate, r->n_deadletter);
out:
    committer_wait(r);
    committer_stop(r);
    batch_free(&b);
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
    r->topics_version = -1;
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
    r->values_made = true;
    if (map_fields(r, SY_TYPE_JOB_STATUS, st_names, ST_COUNT, r->st_idx, err) != SY_OK ||
        map_fields(r, SY_TYPE_ROUTED_JOB, rj_names, RJ_COUNT, r->rj_idx, err) != SY_OK)
        goto fail;

    if (!(r->reg = sy_regcache_new(conf, err)))
        goto fail;
    char txid[200];
    snprintf(txid, sizeof(txid), "switchyard-%s", r->instance);
    /* linger.ms 50, not 5: a transaction's records go out in fewer, larger produce requests
     * while the batch is routed — the broker spent about half the CPU per routed request in
     * scripts/bench-router. commit_transaction flushes at once whatever linger.ms says, so it
     * adds nothing to an idle router's latency. */
    /* Defaults for the router's transactional producer (kafka.* settings win):
     * - retry.backoff.ms 10: the next transaction opens as soon as the previous one committed
     *   (it was routed meanwhile), often before the broker has written that one's markers; it
     *   answers CONCURRENT_TRANSACTIONS until then, and at librdkafka's default of 100 ms the
     *   retries tripled an idle router's latency.
     * - compression.type lz4: four records per request, mostly text; the broker spent less than
     *   half the CPU per routed request in scripts/bench-router (7.6 -> 3.0 us). Every Kafka
     *   client decompresses transparently. */
    static const char *const producer_defaults[] = {"retry.backoff.ms", "10", "compression.type",
                                                    "lz4", NULL};
    sy_kafka_opts_t popts = {.transactional_id = txid,
                             .linger_ms = "50",
                             .producer_defaults = producer_defaults,
                             .client_id_suffix = "router"};
    if (!(r->producer = sy_kafka_new(conf, SY_KAFKA_TRANSACTIONAL_PRODUCER, &popts, err)))
        goto fail;
    char mmb[32];
    size_t mmb_len = sizeof(mmb);
    r->max_record = 1000000; /* librdkafka's default */
    if (rd_kafka_conf_get(rd_kafka_conf(r->producer), "message.max.bytes", mmb, &mmb_len) ==
        RD_KAFKA_CONF_OK)
        r->max_record = strtoull(mmb, NULL, 10);
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
    cluster_topics_clear(r);
    if (r->values_made)
        avro_value_decref(&r->req);
    sy_codec_destroy(r->codec);
    free(r);
}
