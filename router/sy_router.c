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
 * then by the committer thread (while the main thread routes the next batch). */
typedef struct out_rec {
    const char *topic; /* r->t_* or a cached cluster topic name */
    int32_t partition; /* RD_KAFKA_PARTITION_UA, or the changelog's partition */
    const char *key;   /* in the batch arena */
    const void *val;   /* in the batch arena: librdkafka is given it without a copy */
    size_t len;
    const rd_kafka_message_t *dead; /* dead-letter this input message (why: its reason) */
    sy_err_t *why;
} out_rec_t;

/* Bump allocator for what a batch writes (keys, encoded records, changelog entries). librdkafka
 * refers to the records until the batch's transaction has committed or aborted, so a batch is
 * only reset after that; its chunks are then kept for the next batch. */
typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    char data[];
} arena_chunk_t;
#define ARENA_CHUNK (1u << 20)
#define ARENA_KEEP  16    /* chunks a batch keeps for the next one */
#define ENCODE_ROOM 16384 /* free space a record is encoded into; a larger one is copied in */

/* A job id routed in the batch, for the changelog of the duplicate guard. */
typedef struct routed_id {
    int32_t partition;
    int64_t offset;
    const char *id; /* in the arena */
    size_t len;
} routed_id_t;

typedef struct batch {
    rd_kafka_message_t **msgs;
    int n;
    out_rec_t *recs;
    size_t n_recs, cap_recs;
    routed_id_t *ids;
    size_t n_ids, cap_ids;
    arena_chunk_t *arena, *spare; /* in use (the first one is being filled), kept */
    rd_kafka_topic_partition_list_t *offsets;
} batch_t;

/* What became of the last batch the committer took. */
typedef struct commit_result {
    bool failed;
    bool txn_open; /* failed with a transaction open: it must be aborted */
    bool fatal;    /* the producer cannot go on */
    sy_err_t err;
} commit_result_t;

/* The thread that produces a batch's records in a transaction of its own and commits it with
 * the batch's offsets, while the main thread routes the next batch. */
typedef struct committer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, busy, quit;
    sy_router_t *r;
    batch_t *batch; /* the batch in hand while busy (the main thread does not touch it) */
    rd_kafka_consumer_group_metadata_t *cgmd;
    commit_result_t result; /* of the last batch */
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
    batch_t batches[2]; /* routed by the main thread, committed by the committer, in turn */
    /* "<ns>.cluster.<name>" by cluster index in the registry snapshot of version
     * topics_version, made (and the topic ensured to exist) on first use */
    char **cluster_topics;
    size_t n_cluster_topics;
    char **stale_topics; /* of the version before, for the batch the committer has */
    size_t n_stale_topics;
    long long topics_version;
    long n_routed, n_invalid, n_duplicate, n_deadletter, n_batches, n_aborts;
};

static bool committer_wait(sy_router_t *r);

/* ---- the seen-set changelog ------------------------------------------------------------- */

/* <ns>.router.seen holds, per batch and requests partition, a record keyed "@<offset>" (the
 * requests offset of its first id; '@' is not allowed in a job id) whose value is the job ids
 * routed, one per line. Each record is under ROUTED_LIST_MAX bytes. Records keyed by a job id
 * itself (value: the cluster; empty: forget the id) are read too. */
#define ROUTED_LIST_MAX (256u << 10)

/* Adds the ids of a changelog record's value (one per line); returns how many were new. */
static long seen_add_list(sy_seen_t *s, const char *list, size_t len)
{
    long n = 0;
    const char *end = list ? list + len : NULL;
    while (list && list < end) {
        const char *nl = memchr(list, '\n', (size_t)(end - list));
        size_t l = (size_t)((nl ? nl : end) - list);
        if (l)
            n += sy_seen_add(s, list, l);
        list += l + 1;
    }
    return n;
}

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
        } else if (m->key_len && *(const char *)m->key == '@') {
            n += seen_add_list(s, m->payload, m->len);
        } else if (m->key_len && m->len) { /* one id per record: earlier routers */
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

/* Produces one record into the open transaction. val is not copied (nor freed) by librdkafka:
 * it must stay until the transaction has committed or aborted. A full producer queue (a batch
 * makes three records per request) is waited out while librdkafka delivers. */
static sy_err_code_t produce(sy_router_t *r, const char *topic, int32_t partition, const char *key,
                             const void *val, size_t len, sy_err_t *err)
{
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                              RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_MSGFLAGS(0),
                              RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || sy_signal_stop_requested())
            break;
        rd_kafka_poll(r->producer, 10);
    }
    if (e) {
        if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) /* no retry makes it fit */
            return sy_err_set(err, SY_ERR_TOO_LARGE, false,
                              "produce to %s: %zu bytes, over the producer's message.max.bytes",
                              topic, len);
        return sy_err_set(err, SY_ERR_KAFKA, true, "produce to %s: %s", topic, rd_kafka_err2str(e));
    }
    return SY_OK;
}

/* ---- a batch's records ------------------------------------------------------------------- */

static arena_chunk_t *chunk_new(batch_t *b, size_t need)
{
    arena_chunk_t *c;
    if (need <= ARENA_CHUNK && b->spare) {
        c = b->spare;
        b->spare = c->next;
    } else {
        size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        if (!(c = malloc(sizeof(*c) + cap)))
            return NULL;
        c->cap = cap;
    }
    c->used = 0;
    return c;
}

/* n bytes of the batch's arena. A block larger than a quarter chunk gets a chunk of its own,
 * behind the one being filled. */
static void *arena_alloc(batch_t *b, size_t n)
{
    arena_chunk_t *c = b->arena;
    if (n > ARENA_CHUNK / 4 && c) {
        arena_chunk_t *own = chunk_new(b, n);
        if (!own)
            return NULL;
        own->used = n;
        own->next = c->next;
        c->next = own;
        return own->data;
    }
    if (!c || c->cap - c->used < n) {
        if (!(c = chunk_new(b, n)))
            return NULL;
        c->next = b->arena;
        b->arena = c;
    }
    void *d = c->data + c->used;
    c->used += n;
    return d;
}

static char *arena_dup(batch_t *b, const void *data, size_t n)
{
    char *d = arena_alloc(b, n + 1);
    if (d) {
        memcpy(d, data, n);
        d[n] = 0;
    }
    return d;
}

/* Encodes a type record from fields into the batch's arena (*val, *len). */
static sy_err_code_t arena_encode(sy_router_t *r, batch_t *b, sy_type_t type, const char *topic,
                                  const sy_field_t *fields, size_t n_fields, const void **val,
                                  size_t *len, sy_err_t *err)
{
    arena_chunk_t *c = b->arena;
    if (!c || c->cap - c->used < ENCODE_ROOM) {
        if (!arena_alloc(b, ENCODE_ROOM)) /* a fresh chunk; given back below */
            return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
        c = b->arena;
        c->used -= ENCODE_ROOM;
    }
    void *dst = c->data + c->used, *buf = NULL;
    if (sy_codec_encode_fields_into(r->codec, type, topic, fields, n_fields, dst, c->cap - c->used,
                                    &buf, len, err) != SY_OK)
        return err->code;
    if (buf == dst) {
        c->used += *len;
        *val = dst;
        return SY_OK;
    }
    *val = arena_dup(b, buf, *len); /* larger than the free space */
    free(buf);
    return *val ? SY_OK : sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
}

/* Room for one more of n items of size bytes in *items (capacity *cap, doubled as needed). */
static sy_err_code_t room_for_one(void **items, size_t n, size_t *cap, size_t size, sy_err_t *err)
{
    if (n < *cap)
        return SY_OK;
    size_t c = *cap ? *cap * 2 : 1024;
    void *v = realloc(*items, c * size);
    if (!v)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    *items = v;
    *cap = c;
    return SY_OK;
}

/* Appends a record (val in the arena, or NULL). */
static sy_err_code_t add_rec(batch_t *b, const char *topic, int32_t partition, const char *key,
                             const void *val, size_t len, sy_err_t *err)
{
    if (room_for_one((void **)&b->recs, b->n_recs, &b->cap_recs, sizeof(*b->recs), err) != SY_OK)
        return err->code;
    b->recs[b->n_recs++] =
        (out_rec_t){.topic = topic, .partition = partition, .key = key, .val = val, .len = len};
    return SY_OK;
}

/* Notes a routed job id (in the arena) for the duplicate guard's changelog. */
static sy_err_code_t add_routed_id(batch_t *b, const rd_kafka_message_t *m, const char *id,
                                   size_t len, sy_err_t *err)
{
    if (room_for_one((void **)&b->ids, b->n_ids, &b->cap_ids, sizeof(*b->ids), err) != SY_OK)
        return err->code;
    b->ids[b->n_ids++] =
        (routed_id_t){.partition = m->partition, .offset = m->offset, .id = id, .len = len};
    return SY_OK;
}

/* Frees what the batch still holds (input messages, reasons) and empties it for the next one,
 * keeping up to ARENA_KEEP chunks. Only once librdkafka is done with its records: after its
 * transaction committed or aborted. */
static void batch_reset(batch_t *b)
{
    for (size_t i = 0; i < b->n_recs; i++)
        free(b->recs[i].why);
    b->n_recs = 0;
    b->n_ids = 0;
    for (int i = 0; i < b->n; i++)
        rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
    int kept = 0;
    for (arena_chunk_t *c = b->spare; c; c = c->next)
        kept++;
    while (b->arena) {
        arena_chunk_t *c = b->arena;
        b->arena = c->next;
        if (c->cap == ARENA_CHUNK && kept < ARENA_KEEP) {
            c->next = b->spare;
            b->spare = c;
            kept++;
        } else {
            free(c);
        }
    }
    if (b->offsets) {
        rd_kafka_topic_partition_list_destroy(b->offsets);
        b->offsets = NULL;
    }
}

static void batch_free(batch_t *b)
{
    batch_reset(b);
    while (b->spare) {
        arena_chunk_t *c = b->spare;
        b->spare = c->next;
        free(c);
    }
    free(b->recs);
    free(b->ids);
    free(b->msgs);
}

static int routed_id_cmp(const void *a, const void *b)
{
    const routed_id_t *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The batch's routed ids to <ns>.router.seen: per requests partition, records keyed "@<offset
 * of the first id>" listing the ids one per line, each under ROUTED_LIST_MAX bytes. */
static sy_err_code_t add_changelog(sy_router_t *r, batch_t *b, sy_err_t *err)
{
    /* librdkafka's message.max.bytes is at least 1000; the key is "@" and an offset */
    size_t limit = r->max_record - 2 * RECORD_OVERHEAD;
    if (limit > ROUTED_LIST_MAX)
        limit = ROUTED_LIST_MAX;
    if (b->n_ids > 1)
        qsort(b->ids, b->n_ids, sizeof(*b->ids), routed_id_cmp);
    for (size_t i = 0; i < b->n_ids;) {
        size_t j = i, size = 0;
        while (j < b->n_ids && b->ids[j].partition == b->ids[i].partition &&
               (j == i || size + b->ids[j].len + 1 <= limit))
            size += b->ids[j++].len + 1;
        char key[32];
        snprintf(key, sizeof(key), "@%lld", (long long)b->ids[i].offset);
        char *k = arena_dup(b, key, strlen(key)), *v = arena_alloc(b, size), *p = v;
        if (!k || !v)
            return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
        for (size_t x = i; x < j; x++) {
            memcpy(p, b->ids[x].id, b->ids[x].len);
            p += b->ids[x].len;
            *p++ = '\n';
        }
        if (add_rec(b, r->t_seen, b->ids[i].partition, k, v, size - 1, err) != SY_OK)
            return err->code;
        i = j;
    }
    return SY_OK;
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
    const void *val = NULL;
    size_t len = 0;
    if (arena_encode(r, b, SY_TYPE_JOB_STATUS, r->t_status, f, ST_COUNT, &val, &len, err) != SY_OK)
        return err->code;
    return add_rec(b, r->t_status, RD_KAFKA_PARTITION_UA, job_id, val, len, err);
}

/* Marks input message m for <ns>.deadletter (produced with the batch; see deadletter()). */
static sy_err_code_t add_deadletter(sy_router_t *r, batch_t *b, const rd_kafka_message_t *m,
                                    const sy_err_t *why, sy_err_t *err)
{
    sy_err_t *copy = malloc(sizeof(*copy));
    if (!copy)
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    *copy = *why;
    if (add_rec(b, r->t_deadletter, RD_KAFKA_PARTITION_UA, NULL, NULL, 0, err) != SY_OK) {
        free(copy);
        return err->code;
    }
    b->recs[b->n_recs - 1].dead = m;
    b->recs[b->n_recs - 1].why = copy;
    sy_warn("router", "dead-lettered %s[%d]@%lld: %s", rd_kafka_topic_name(m->rkt), m->partition,
            (long long)m->offset, why->msg);
    r->n_deadletter++;
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

static void topics_free(char ***topics, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*topics)[i]);
    free(*topics);
    *topics = NULL;
    *n = 0;
}

/* The topic of cluster c of snap, made when missing (cached: created topics for the router's
 * lifetime, names per registry version). A batch's records point to these names, and the batch
 * before may still be produced by the committer when the next one finds the registry changed:
 * the names of the previous version are kept until then (settle() frees them). */
static const char *cluster_topic(sy_router_t *r, const sy_registry_snapshot_t *snap,
                                 const sy_cluster_t *c, sy_err_t *err)
{
    size_t i = (size_t)(c - snap->clusters);
    if (r->topics_version != snap->version || r->n_cluster_topics != snap->n_clusters) {
        /* none are stale here: a settle() came between any two batches' routing */
        topics_free(&r->stale_topics, &r->n_stale_topics);
        r->stale_topics = r->cluster_topics;
        r->n_stale_topics = r->n_cluster_topics;
        r->cluster_topics = NULL;
        r->n_cluster_topics = 0;
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
    void *again = NULL;
    const void *val = NULL;
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
    sy_err_code_t rc = arena_encode(r, b, SY_TYPE_ROUTED_JOB, topic, f, RJ_COUNT, &val, len, err);
    free(again);
    if (rc != SY_OK)
        return rc;
    return add_rec(b, topic, RD_KAFKA_PARTITION_UA, job_id, val, *len, err);
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
    size_t len = 0;
    if (encode_routed(r, b, topic, job_id, &res, body, body_len, now, &len, err) != SY_OK)
        return err->code;
    if (len + id_len + RECORD_OVERHEAD > r->max_record) {
        /* the request fits a message, the request plus the routing data does not */
        b->n_recs--; /* its bytes stay in the arena until the batch is reset */
        sy_err_set(&why, SY_ERR_TOO_LARGE, false,
                   "request too large to route: the RoutedJob would be %zu bytes, over the "
                   "producer's message.max.bytes %zu (make arguments, environment or metadata "
                   "smaller)",
                   len, r->max_record);
        r->n_invalid++;
        sy_info("router", "job %s: INVALID: %s", job_id, why.msg);
        return emit_status(r, b, job_id, "INVALID", 2, NULL, NULL, why.msg, submitted_at, now, err);
    }
    if (add_routed_id(b, m, job_id, id_len, err) != SY_OK ||
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

/* Produces the batch's records into the open transaction. */
static sy_err_code_t produce_batch(sy_router_t *r, batch_t *b, sy_err_t *err)
{
    for (size_t i = 0; i < b->n_recs; i++) {
        out_rec_t *o = &b->recs[i];
        sy_err_code_t rc = o->dead
                               ? deadletter(r, o->dead, o->why, err)
                               : produce(r, o->topic, o->partition, o->key, o->val, o->len, err);
        if (rc != SY_OK)
            return rc;
    }
    return SY_OK;
}

static void fail_with(commit_result_t *res, rd_kafka_error_t *e, const char *what, bool txn_open)
{
    res->failed = true;
    res->txn_open = txn_open;
    res->fatal = rd_kafka_error_is_fatal(e);
    sy_err_set(&res->err, SY_ERR_KAFKA, false, "%s: %s", what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
}

/* One batch: a transaction opened, its records produced, its offsets sent, committed. */
static commit_result_t commit_batch(committer_t *c)
{
    sy_router_t *r = c->r;
    batch_t *b = c->batch;
    commit_result_t res = {.err = SY_ERR_INIT};
    long long t0 = sy_time_mono_ms();
    rd_kafka_error_t *e = rd_kafka_begin_transaction(r->producer);
    if (e) {
        fail_with(&res, e, "begin_transaction", false);
        return res;
    }
    if (produce_batch(r, b, &res.err) != SY_OK) {
        res.failed = res.txn_open = true;
        res.fatal = rd_kafka_fatal_error(r->producer, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
        return res;
    }
    long long t1 = sy_time_mono_ms();
    e = rd_kafka_send_offsets_to_transaction(r->producer, b->offsets, c->cgmd, -1);
    if (e) {
        fail_with(&res, e, "send_offsets_to_transaction", true);
        return res;
    }
    if ((e = rd_kafka_commit_transaction(r->producer, -1))) {
        fail_with(&res, e, "commit_transaction", true);
        return res;
    }
    sy_debug("router", "transaction of %d request(s): produced in %lld ms, committed in %lld ms",
             b->n, t1 - t0, sy_time_mono_ms() - t1);
    return res;
}

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
        commit_result_t res = commit_batch(c);
        pthread_mutex_lock(&c->mu);
        rd_kafka_consumer_group_metadata_destroy(c->cgmd);
        c->cgmd = NULL;
        c->batch = NULL;
        c->result = res;
        c->busy = false;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Waits until the batch in the committer's hands (if any) is done. True when it failed: the
 * failure stays in commit.result until recover() takes it. Also called from the rebalance
 * callback: partitions are only given up once the offsets committed for them are final. */
static bool committer_wait(sy_router_t *r)
{
    committer_t *c = &r->commit;
    if (!c->started)
        return false;
    pthread_mutex_lock(&c->mu);
    while (c->busy)
        pthread_cond_wait(&c->cv, &c->mu);
    bool failed = c->result.failed;
    pthread_mutex_unlock(&c->mu);
    return failed;
}

/* Hands batch b (routed, with its offsets) over to the committer. */
static void committer_start(sy_router_t *r, batch_t *b)
{
    committer_t *c = &r->commit;
    pthread_mutex_lock(&c->mu);
    c->batch = b;
    c->cgmd = rd_kafka_consumer_group_metadata(r->consumer);
    c->busy = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static sy_err_code_t committer_init(sy_router_t *r, sy_err_t *err)
{
    committer_t *c = &r->commit;
    c->r = r;
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
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    c->started = false;
}

/* ---- the transaction loop ------------------------------------------------------------------ */

/* Routes the batch's messages into its records and notes the offsets to commit with them.
 * Nothing is produced yet: this runs while the committer has the previous batch. */
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
    return rc == SY_OK ? add_changelog(r, b, err) : rc;
}

/* After a failed batch or transaction: abort what is open, back to the committed offsets and
 * the committed seen sets. Returns non-OK only when that is impossible (a fatal error). */
static sy_err_code_t recover(sy_router_t *r, sy_err_t *err)
{
    commit_result_t *res = &r->commit.result;
    bool txn_open = res->failed && res->txn_open;
    if (res->failed) {
        res->failed = false;
        if (res->fatal)
            return sy_err_set(err, SY_ERR_KAFKA, false, "fatal transaction error: %s",
                              res->err.msg);
        sy_warn("router", "transaction failed (%s); %s", res->err.msg,
                txn_open ? "aborting and retrying the batch" : "retrying the batch");
    }
    if (txn_open) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(r->producer, -1);
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

/* Waits for the committer's batch, other (the batch it had, if any): then recovers from its
 * failure, and empties it once librdkafka is done with its records. */
static sy_err_code_t settle(sy_router_t *r, batch_t *other, bool *failed, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    *failed = committer_wait(r);
    if (*failed)
        rc = recover(r, err); /* an abort purges its records first */
    batch_reset(other);
    topics_free(&r->stale_topics, &r->n_stale_topics); /* other's records were the last users */
    return rc;
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

/* One batch b: routed while the committer has the previous one (other), then handed to the
 * committer. Returns SY_OK, or a fatal error. */
static sy_err_code_t run_batch(sy_router_t *r, batch_t *b, batch_t *other, sy_err_t *err)
{
    sy_err_t perr = SY_ERR_INIT;
    long long t0 = sy_time_mono_ms();
    bool prepared = prepare_batch(r, b, &perr) == SY_OK, failed;
    long long t1 = sy_time_mono_ms();
    sy_err_code_t rc = settle(r, other, &failed, err);
    if (failed) { /* settle() recovered: after the rewind this batch comes again */
        batch_reset(b);
        return rc;
    }
    if (!prepared) {
        sy_warn("router", "batch failed: %s", perr.msg);
        batch_reset(b);
        return recover(r, err);
    }
    sy_debug("router",
             "batch of %d request(s): routed in %lld ms, then waited %lld ms for the "
             "previous commit",
             b->n, t1 - t0, sy_time_mono_ms() - t1);
    committer_start(r, b);
    r->n_batches++;
    return SY_OK;
}

sy_err_code_t sy_router_run(sy_router_t *r, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    bool failed;
    int cur = 0;
    long long last_stats = sy_time_mono_ms();
    for (int i = 0; i < 2; i++)
        if (!r->batches[i].msgs &&
            !(r->batches[i].msgs = calloc((size_t)r->batch_max, sizeof(*r->batches[i].msgs))))
            return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    if (committer_init(r, err) != SY_OK)
        return err->code;

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
        batch_t *b = &r->batches[cur], *other = &r->batches[1 - cur];
        collect(r, b);
        if (b->n) {
            if ((rc = run_batch(r, b, other, err)) != SY_OK)
                goto out;
            /* b is the committer's now (or was emptied after a failure): the next batch is
             * collected into other, which settle() emptied */
            cur = 1 - cur;
        } else if ((rc = settle(r, other, &failed, err)) != SY_OK) {
            /* idle: the last transaction is settled now rather than with the next request */
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
    rc = settle(r, &r->batches[1 - cur], &failed, err);
    sy_info("router", "stopping: routed %ld, invalid %ld, duplicate %ld, dead-lettered %ld",
            r->n_routed, r->n_invalid, r->n_duplicate, r->n_deadletter);
out:
    committer_wait(r);
    committer_stop(r);
    /* the batches' records may still be in librdkafka's queues (after a fatal error): they are
     * freed in sy_router_destroy, after the producer */
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
    /* the producer first: librdkafka may still refer to records in the batches (after a fatal
     * error); then the batches' input messages, before their consumer goes */
    if (r->producer)
        rd_kafka_destroy(r->producer);
    for (int i = 0; i < 2; i++)
        batch_free(&r->batches[i]);
    if (r->consumer) {
        rd_kafka_consumer_close(r->consumer);
        rd_kafka_destroy(r->consumer);
    }
    if (r->restorer) {
        rd_kafka_consumer_close(r->restorer);
        rd_kafka_destroy(r->restorer);
    }
    sy_regcache_destroy(r->reg);
    for (int i = 0; i < MAX_PARTITIONS; i++)
        sy_seen_destroy(r->seen[i]);
    sy_seen_destroy(r->topics_made);
    topics_free(&r->cluster_topics, &r->n_cluster_topics);
    topics_free(&r->stale_topics, &r->n_stale_topics);
    if (r->values_made)
        avro_value_decref(&r->req);
    sy_codec_destroy(r->codec);
    free(r);
}
