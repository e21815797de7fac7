/* sy_worker: the worker's main loop — consume, claim, hand to runners, commit, take over. */
#include <malloc.h>
#include "sy_time.h"
#include "sy_worker.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sy_avro.h"
#include "sy_codec.h"
#include "sy_driver.h"
#include "sy_emit.h"
#include "sy_kafka.h"
#include "sy_ledger.h"
#include "sy_log.h"
#include "sy_runner.h"
#include "sy_signal.h"

#define POLL_MS            100 /* longest wait for a message before the periodic work */
#define COMMIT_EVERY_MS    1000
#define KILLS_EVERY_MS     2000 /* kill flags in the ledger (for requests this worker missed) */
#define STATS_EVERY_MS     30000
#define PAUSE_LOG_EVERY_MS 60000 /* a cluster at capacity is paused again on every retry */
#define HELD_BUCKETS       4096
#define JOB_ID_MAX         128
#define STOP_EXTRA_MS      15000 /* a stop waits this long after the kill grace */

/* A job waiting for its backend id to become durable before its offset may be committed. */
typedef struct pending {
    char job_id[JOB_ID_MAX + 1];
    int64_t offset;
} pending_t;

/* One assigned partition of a cluster topic. */
typedef struct part {
    char topic[256];
    int32_t partition;
    int64_t next;      /* offset after the last message handled; -1 = none yet */
    int64_t committed; /* what we last committed; -1 = nothing */
    bool paused;
    pending_t *pending;
    size_t n_pending, cap_pending;
} part_t;

/* One cluster this worker has seen, with its runner. */
typedef struct cluster {
    char name[128], kind[16], topic[256];
    sy_runner_t *runner;
    int max_concurrent; /* from the latest RoutedJob */
    bool paused;
    long long paused_at, pause_logged_at;
} cluster_t;

typedef struct held {
    char *job_id;
    struct held *next;
} held_t;

struct sy_worker {
    const sy_config_t *conf;
    char instance[160], session[256], host[128];
    char ns[128], cluster_prefix[256], t_control[256], t_deadletter[256];
    long long lease_ms, heartbeat_ms, capacity_retry_ms, shutdown_grace_ms, kill_grace_ms;
    int timeout_ms;
    sy_codec_t *codec;
    sy_emit_t *emit;
    sy_ledger_t *ledger;
    rd_kafka_t *consumer, *control;
    avro_value_t routed, ctl;
    bool values_made;
    cluster_t *clusters;
    size_t n_clusters, cap_clusters;
    part_t *parts;
    size_t n_parts, cap_parts;
    held_t *held[HELD_BUCKETS];
    size_t n_held;
    sy_err_t fatal; /* set by callbacks that cannot return an error */
    long n_claimed, n_skipped, n_adopted, n_deadletter, n_kills, n_paused;
};

/* ---- jobs held by a runner ------------------------------------------------------------------- */

static unsigned held_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % HELD_BUCKETS;
}

static bool held_has(const sy_worker_t *w, const char *job_id)
{
    for (const held_t *h = w->held[held_hash(job_id)]; h; h = h->next)
        if (!strcmp(h->job_id, job_id))
            return true;
    return false;
}

static bool held_add(sy_worker_t *w, const char *job_id)
{
    held_t *h = calloc(1, sizeof(*h));
    if (!h || !(h->job_id = strdup(job_id))) {
        free(h);
        return false;
    }
    unsigned b = held_hash(job_id);
    h->next = w->held[b];
    w->held[b] = h;
    w->n_held++;
    return true;
}

static void held_remove(sy_worker_t *w, const char *job_id)
{
    for (held_t **p = &w->held[held_hash(job_id)]; *p; p = &(*p)->next) {
        if (!strcmp((*p)->job_id, job_id)) {
            held_t *h = *p;
            *p = h->next;
            free(h->job_id);
            free(h);
            w->n_held--;
            return;
        }
    }
}

/* ---- partitions ------------------------------------------------------------------------------ */

static part_t *find_part(sy_worker_t *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < w->n_parts; i++)
        if (w->parts[i].partition == partition && !strcmp(w->parts[i].topic, topic))
            return &w->parts[i];
    return NULL;
}

static part_t *add_part(sy_worker_t *w, const char *topic, int32_t partition)
{
    part_t *p = find_part(w, topic, partition);
    if (p)
        return p;
    if (w->n_parts == w->cap_parts) {
        size_t cap = w->cap_parts ? w->cap_parts * 2 : 64;
        part_t *grown = realloc(w->parts, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        w->parts = grown;
        w->cap_parts = cap;
    }
    p = &w->parts[w->n_parts++];
    memset(p, 0, sizeof(*p));
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->next = p->committed = -1;
    return p;
}

static void remove_part(sy_worker_t *w, part_t *p)
{
    free(p->pending);
    *p = w->parts[--w->n_parts];
}

static void pending_add(part_t *p, const char *job_id, int64_t offset)
{
    for (size_t i = 0; i < p->n_pending; i++)
        if (!strcmp(p->pending[i].job_id, job_id))
            return;
    if (p->n_pending == p->cap_pending) {
        size_t cap = p->cap_pending ? p->cap_pending * 2 : 16;
        pending_t *grown = realloc(p->pending, cap * sizeof(*grown));
        if (!grown) {
            sy_error("worker", "out of memory: offset of job %s may be committed early", job_id);
            return;
        }
        p->pending = grown;
        p->cap_pending = cap;
    }
    pending_t *e = &p->pending[p->n_pending++];
    snprintf(e->job_id, sizeof(e->job_id), "%s", job_id);
    e->offset = offset;
}

static void pending_remove(sy_worker_t *w, const char *topic, int32_t partition, const char *job_id)
{
    part_t *p = find_part(w, topic, partition);
    for (size_t i = 0; p && i < p->n_pending; i++)
        if (!strcmp(p->pending[i].job_id, job_id)) {
            p->pending[i] = p->pending[--p->n_pending];
            return;
        }
}

/* The offset partition p may commit: its next message, or the earliest job whose backend id is
 * not durable yet. -1 when there is nothing to commit (no message handled here yet: a job
 * taken over from the ledger only ever holds the commit back, never moves it). */
static int64_t committable(const part_t *p)
{
    int64_t c = p->next;
    for (size_t i = 0; c >= 0 && i < p->n_pending; i++)
        if (p->pending[i].offset < c)
            c = p->pending[i].offset;
    return c;
}

/* Commits what may be committed; only the partitions of `only` when not NULL. */
static void commit(sy_worker_t *w, const rd_kafka_topic_partition_list_t *only, bool sync)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < w->n_parts; i++) {
        part_t *p = &w->parts[i];
        int64_t c = committable(p);
        if (c < 0 || c == p->committed)
            continue;
        if (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
            continue;
        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = c;
        p->committed = c;
    }
    if (list->cnt) {
        rd_kafka_resp_err_t e = rd_kafka_commit(w->consumer, list, sync ? 0 : 1);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            sy_warn("worker", "commit: %s", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* ---- clusters and runners -------------------------------------------------------------------- */

static cluster_t *find_cluster(sy_worker_t *w, const char *name, const char *kind)
{
    for (size_t i = 0; i < w->n_clusters; i++)
        if (!strcmp(w->clusters[i].name, name) && (!kind || !strcmp(w->clusters[i].kind, kind)))
            return &w->clusters[i];
    return NULL;
}

static cluster_t *cluster_for(sy_worker_t *w, const char *name, const char *kind, sy_err_t *err)
{
    cluster_t *c = find_cluster(w, name, kind);
    if (c)
        return c;
    if (w->n_clusters == w->cap_clusters) {
        size_t cap = w->cap_clusters ? w->cap_clusters * 2 : 16;
        cluster_t *grown = realloc(w->clusters, cap * sizeof(*grown));
        if (!grown) {
            sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            return NULL;
        }
        w->clusters = grown;
        w->cap_clusters = cap;
    }
    sy_runner_opts_t o = {.conf = w->conf,
                          .cluster_name = name,
                          .backend_kind = kind,
                          .ops = sy_driver_find(kind),
                          .emit = w->emit,
                          .db_url = sy_config_get(w->conf, "database.url"),
                          .session = w->session,
                          .lease_ms = w->lease_ms};
    sy_runner_t *r = sy_runner_new(&o, err);
    if (!r)
        return NULL;
    c = &w->clusters[w->n_clusters++];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->kind, sizeof(c->kind), "%s", kind);
    snprintf(c->topic, sizeof(c->topic), "%s%s", w->cluster_prefix, name);
    c->runner = r;
    c->pause_logged_at = -PAUSE_LOG_EVERY_MS;
    sy_info("worker", "serving cluster %s (%s)%s", name, kind,
            o.ops ? "" : ": no driver for this kind, its jobs will fail");
    return c;
}

/* This worker's limit on the cluster's jobs (0 = none): the driver's per-worker limit, and for
 * host-bound drivers the cluster's own max concurrency too. */
static size_t worker_limit(const sy_worker_t *w, const cluster_t *c)
{
    const sy_driver_ops_t *ops = sy_runner_ops(c->runner);
    long limit = ops && ops->worker_limit ? ops->worker_limit(w->conf) : 0;
    if (ops && ops->host_bound && c->max_concurrent > 0 &&
        (limit == 0 || c->max_concurrent < limit))
        limit = c->max_concurrent;
    return limit > 0 ? (size_t)limit : 0;
}

/* Cluster-wide limit for the claim: the cluster's, else the driver's default (0 = none). */
static int cluster_limit(const cluster_t *c)
{
    const sy_driver_ops_t *ops = sy_runner_ops(c->runner);
    if (c->max_concurrent > 0)
        return c->max_concurrent;
    return ops ? ops->default_max_in_flight : 0;
}

/* Stops fetching the cluster's partitions (all we hold) and rewinds m's partition to m, so the
 * message comes again once there is room: the cluster topic is the queue. */
static void pause_cluster(sy_worker_t *w, cluster_t *c, const rd_kafka_message_t *m,
                          const char *why)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < w->n_parts; i++)
        if (!strcmp(w->parts[i].topic, c->topic)) {
            rd_kafka_topic_partition_list_add(list, c->topic, w->parts[i].partition);
            w->parts[i].paused = true;
        }
    rd_kafka_pause_partitions(w->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, c->topic, m->partition)->offset = m->offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(w->consumer, list, w->timeout_ms);
    if (e) {
        sy_error("worker", "rewinding %s[%d] to %" PRId64 ": %s", c->topic, m->partition, m->offset,
                 rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(list);
    long long now = sy_time_mono_ms();
    if (!c->paused)
        w->n_paused++;
    if (now - c->pause_logged_at >= PAUSE_LOG_EVERY_MS) {
        sy_info("worker", "cluster %s: %s; pausing its partitions", c->name, why);
        c->pause_logged_at = now;
    } else {
        sy_debug("worker", "cluster %s: %s; pausing its partitions", c->name, why);
    }
    c->paused = true;
    c->paused_at = now;
}

static void resume_cluster(sy_worker_t *w, cluster_t *c)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < w->n_parts; i++)
        if (w->parts[i].paused && !strcmp(w->parts[i].topic, c->topic)) {
            rd_kafka_topic_partition_list_add(list, c->topic, w->parts[i].partition);
            w->parts[i].paused = false;
        }
    if (list->cnt)
        rd_kafka_resume_partitions(w->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    sy_debug("worker", "cluster %s: resuming its partitions", c->name);
    c->paused = false;
}

/* ---- taking jobs over ------------------------------------------------------------------------ */

/* A job from its ledger row's RoutedJob. NULL (logged) if it cannot be read. */
static sy_job_t *job_from_row(sy_worker_t *w, const sy_ledger_row_t *row)
{
    sy_err_t err = SY_ERR_INIT;
    sy_job_t *job = NULL;
    json_error_t jerr;
    json_t *json = json_loads(row->routed_job ? row->routed_job : "", 0, &jerr);
    if (!json ||
        sy_codec_from_json(w->codec, SY_TYPE_ROUTED_JOB, json, &w->routed, &err) != SY_OK ||
        sy_job_from_routed(&w->routed, &job, &err) != SY_OK)
        sy_error("worker", "job %s: its RoutedJob in the ledger is unusable: %s", row->job_id,
                 json ? err.msg : jerr.text);
    json_decref(json);
    return job;
}

/* Decides what to do with a job of one of our partitions that the ledger knows: nothing (held
 * here already, finished and reported, or a live worker runs it on its own host), or take it
 * over and hand it to its cluster's runner. */
static sy_err_code_t consider(sy_worker_t *w, const sy_ledger_row_t *row, sy_err_t *err)
{
    if (held_has(w, row->job_id))
        return SY_OK;
    bool terminal = sy_job_state_terminal(row->state);
    bool mine = !strcmp(row->owner, w->session);
    if (terminal && row->emitted_seq >= row->next_seq - 1)
        return SY_OK; /* ended and reported */
    const sy_driver_ops_t *ops = sy_driver_find(row->backend_kind);
    if (!mine && row->owner_alive && (terminal || !ops || ops->host_bound)) {
        sy_debug("worker", "job %s: left to its owner %s", row->job_id, row->owner);
        return SY_OK;
    }
    cluster_t *c = cluster_for(w, row->cluster_name, row->backend_kind, err);
    if (!c)
        return err->code;
    sy_ledger_row_t adopted = {0};
    sy_err_code_t rc = sy_ledger_adopt(w->ledger, row->job_id, row->owner, &adopted, err);
    if (rc == SY_ERR_CONFLICT) { /* someone else was faster */
        sy_info("worker", "%s", err->msg);
        sy_err_clear(err);
        return SY_OK;
    }
    if (rc != SY_OK)
        return rc;
    sy_job_t *job = job_from_row(w, &adopted);
    if (job && held_add(w, job->job_id)) {
        if (adopted.state == SY_JOB_CLAIMED || adopted.state == SY_JOB_SUBMITTING) {
            part_t *p = find_part(w, adopted.source_topic, adopted.source_partition);
            if (p)
                pending_add(p, adopted.job_id, adopted.source_offset);
        }
        if (!mine)
            w->n_adopted++;
        sy_runner_add(c->runner, job, &adopted, false);
    } else {
        sy_job_destroy(job);
    }
    sy_ledger_row_clear(&adopted);
    return SY_OK;
}

/* Takes over what is open in the ledger for topic's partitions parts[0..n-1]. */
static sy_err_code_t scan(sy_worker_t *w, const char *topic, const int32_t *parts, size_t n,
                          sy_err_t *err)
{
    sy_ledger_row_t *rows = NULL;
    size_t n_rows = 0;
    sy_err_code_t rc = sy_ledger_list_open(w->ledger, topic, parts, n, &rows, &n_rows, err);
    for (size_t i = 0; rc == SY_OK && i < n_rows; i++)
        rc = consider(w, &rows[i], err);
    sy_ledger_rows_free(rows, n_rows);
    return rc;
}

/* Scans every assigned partition, topic by topic. */
static void scan_all(sy_worker_t *w)
{
    int32_t *parts = calloc(w->n_parts ? w->n_parts : 1, sizeof(int32_t));
    bool *done = calloc(w->n_parts ? w->n_parts : 1, sizeof(bool));
    sy_err_t err = SY_ERR_INIT;
    for (size_t i = 0; parts && done && i < w->n_parts; i++) {
        if (done[i])
            continue;
        size_t n = 0;
        for (size_t j = i; j < w->n_parts; j++)
            if (!done[j] && !strcmp(w->parts[j].topic, w->parts[i].topic)) {
                parts[n++] = w->parts[j].partition;
                done[j] = true;
            }
        if (scan(w, w->parts[i].topic, parts, n, &err) != SY_OK) {
            sy_warn("worker", "taking over jobs of %s: %s", w->parts[i].topic, err.msg);
            sy_err_clear(&err);
        }
    }
    free(parts);
    free(done);
}

/* ---- rebalancing ----------------------------------------------------------------------------- */

static void assigned(sy_worker_t *w, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        if (!add_part(w, parts->elems[i].topic, parts->elems[i].partition))
            sy_err_set(&w->fatal, SY_ERR_NOMEM, false, "out of memory");
    rd_kafka_resp_err_t e = rd_kafka_assign(w->consumer, parts);
    if (e)
        sy_err_set(&w->fatal, SY_ERR_KAFKA, false, "assign: %s", rd_kafka_err2str(e));
    /* A partition paused before a rebalance (a cluster at capacity, or its ledger unreachable)
     * and assigned again would otherwise stay paused in librdkafka while our bookkeeping, which
     * starts every assignment unpaused, never resumes it: its jobs would wait forever (seen in
     * the chaos run: a PostgreSQL restart paused a cluster, a rebalance followed). */
    rd_kafka_resume_partitions(w->consumer, parts);
    sy_info("worker", "assigned %d partition(s)", parts->cnt);
    scan_all(w);
}

static void revoked(sy_worker_t *w, rd_kafka_topic_partition_list_t *parts, bool lost)
{
    if (!lost)
        commit(w, parts, true);
    /* runners let go of the jobs another worker can now resume, before the partitions go */
    for (size_t c = 0; c < w->n_clusters; c++) {
        int32_t *list = calloc((size_t)parts->cnt + 1, sizeof(int32_t));
        size_t n = 0;
        for (int i = 0; list && i < parts->cnt; i++)
            if (!strcmp(parts->elems[i].topic, w->clusters[c].topic))
                list[n++] = parts->elems[i].partition;
        if (n)
            sy_runner_drop(w->clusters[c].runner, w->clusters[c].topic, list, n);
        free(list);
        w->clusters[c].paused = false;
    }
    for (int i = 0; i < parts->cnt; i++) {
        part_t *p = find_part(w, parts->elems[i].topic, parts->elems[i].partition);
        if (p)
            remove_part(w, p);
    }
    rd_kafka_assign(w->consumer, NULL);
    sy_info("worker", "%s %d partition(s)", lost ? "lost" : "revoked", parts->cnt);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    sy_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        assigned(w, parts);
    else
        revoked(w, parts, rd_kafka_assignment_lost(rk));
}

/* ---- input ----------------------------------------------------------------------------------- */

static void deadletter(sy_worker_t *w, const rd_kafka_message_t *m, const sy_err_t *why)
{
    rd_kafka_headers_t *orig = NULL, *h;
    sy_err_t err = SY_ERR_INIT;
    if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
        h = rd_kafka_headers_copy(orig);
    else
        h = rd_kafka_headers_new(6);
    char part[16], off[32];
    snprintf(part, sizeof(part), "%d", m->partition);
    snprintf(off, sizeof(off), "%" PRId64, m->offset);
    rd_kafka_header_add(h, "sy.error", -1, why->msg, -1);
    rd_kafka_header_add(h, "sy.error.code", -1, sy_err_code_name(why->code), -1);
    rd_kafka_header_add(h, "sy.source.topic", -1, rd_kafka_topic_name(m->rkt), -1);
    rd_kafka_header_add(h, "sy.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "sy.source.offset", -1, off, -1);
    rd_kafka_header_add(h, "sy.worker", -1, w->instance, -1);
    sy_warn("worker", "dead-lettered %s[%d]@%" PRId64 ": %s", rd_kafka_topic_name(m->rkt),
            m->partition, m->offset, why->msg);
    w->n_deadletter++;
    if (sy_emit_raw(w->emit, w->t_deadletter, m->key, m->key_len, m->payload, m->len, h, &err) !=
        SY_OK)
        sy_error("worker", "%s", err.msg);
}

static bool job_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > JOB_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("._:-", id[i]))
            return false;
    return true;
}

/* Claims the job of one RoutedJob message and hands it to its cluster's runner. Returns false
 * when the message must come again later (the cluster is full, or the ledger is away): its
 * partition is then paused and rewound. */
static bool handle_routed(sy_worker_t *w, const rd_kafka_message_t *m, part_t *p)
{
    sy_err_t err = SY_ERR_INIT;
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (sy_codec_decode(w->codec, SY_TYPE_ROUTED_JOB, m->payload, m->len, &w->routed, &err) !=
        SY_OK) {
        deadletter(w, m, &err);
        return true;
    }
    const char *job_id = sy_avro_get_string(&w->routed, "job_id");
    const char *name = sy_avro_get_string(&w->routed, "cluster_name");
    const char *kind = sy_avro_get_string(&w->routed, "backend_kind");
    if (!job_id_valid(job_id) || !name || !kind || !*kind ||
        strcmp(topic + strlen(w->cluster_prefix), name)) {
        sy_err_set(&err, SY_ERR_INVALID_ARG, false,
                   "RoutedJob with an invalid job_id, no backend_kind, or a cluster_name that "
                   "does not match its topic");
        deadletter(w, m, &err);
        return true;
    }
    cluster_t *c = cluster_for(w, name, kind, &err);
    if (!c) {
        sy_err_set(&w->fatal, err.code, false, "%s", err.msg);
        return true;
    }
    c->max_concurrent = sy_avro_get_int(&w->routed, "cluster_max_concurrent", 0);
    if (held_has(w, job_id)) {
        w->n_skipped++;
        return true;
    }
    size_t limit = worker_limit(w, c);
    if (limit && sy_runner_jobs(c->runner) >= limit) {
        pause_cluster(w, c, m, "this worker runs as many of its jobs as it may");
        return false;
    }
    sy_job_t *job = NULL;
    char *text = NULL;
    json_t *json = NULL;
    if (sy_job_from_routed(&w->routed, &job, &err) != SY_OK ||
        !(json = sy_codec_to_json(&w->routed, &err)) || !(text = json_dumps(json, JSON_COMPACT))) {
        json_decref(json);
        sy_job_destroy(job);
        if (err.code == SY_OK)
            sy_err_set(&err, SY_ERR_NOMEM, false, "out of memory");
        deadletter(w, m, &err);
        return true;
    }
    json_decref(json);
    char msg[300];
    snprintf(msg, sizeof(msg), "claimed by %s", w->instance);
    sy_ledger_claim_t claim = {.job_id = job_id,
                               .cluster_name = name,
                               .backend_kind = kind,
                               .attempt = job->attempt,
                               .routed_job_json = text,
                               .source_topic = topic,
                               .source_partition = m->partition,
                               .source_offset = m->offset,
                               .message = msg,
                               .max_in_flight = cluster_limit(c)};
    sy_ledger_claim_result_t result;
    sy_ledger_row_t row = {0};
    bool handled = true;
    if (sy_ledger_claim(w->ledger, &claim, &result, &row, &err) != SY_OK) {
        sy_warn("worker", "claiming job %s: %s", job_id, err.msg);
        pause_cluster(w, c, m, "the job ledger is unavailable");
        handled = false;
    } else if (result == SY_LEDGER_AT_CAPACITY) {
        pause_cluster(w, c, m, "the cluster is at its max concurrency");
        handled = false;
    } else if (result == SY_LEDGER_EXISTS) {
        w->n_skipped++;
        sy_debug("worker", "job %s: already in the ledger (%s, owner %s)", job_id,
                 sy_job_state_name(row.state), row.owner);
        if (consider(w, &row, &err) != SY_OK)
            sy_warn("worker", "job %s: %s", job_id, err.msg);
    } else if (!held_add(w, job_id)) {
        sy_err_set(&w->fatal, SY_ERR_NOMEM, false, "out of memory");
    } else {
        pending_add(p, job_id, m->offset);
        w->n_claimed++;
        sy_runner_add(c->runner, job, &row, true);
        job = NULL; /* now owned by the runner */
    }
    sy_job_destroy(job);
    sy_ledger_row_clear(&row);
    free(text);
    return handled;
}

static void handle_message(sy_worker_t *w, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            sy_warn("worker", "consume: %s", rd_kafka_message_errstr(m));
        return;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    part_t *p = find_part(w, topic, m->partition);
    if (!p || p->paused || strncmp(topic, w->cluster_prefix, strlen(w->cluster_prefix)))
        return; /* comes again after the resume */
    if (handle_routed(w, m, p))
        p->next = m->offset + 1;
}

/* ---- kills ----------------------------------------------------------------------------------- */

static void kill_job(sy_worker_t *w, const char *job_id, const char *reason)
{
    sy_ledger_row_t row = {0};
    sy_err_t err = SY_ERR_INIT;
    sy_err_code_t rc = sy_ledger_request_kill(w->ledger, job_id, reason, &row, &err);
    if (rc == SY_ERR_NOT_FOUND) {
        sy_info("worker", "kill request for unknown job %s ignored", job_id);
    } else if (rc != SY_OK) {
        sy_warn("worker", "kill request for job %s: %s", job_id, err.msg);
    } else if (sy_job_state_terminal(row.state)) {
        sy_info("worker", "kill request for job %s ignored: it already ended (%s)", job_id,
                sy_job_state_name(row.state));
    } else if (held_has(w, job_id)) {
        cluster_t *c = find_cluster(w, row.cluster_name, row.backend_kind);
        if (c)
            sy_runner_kill(c->runner, job_id, *row.kill_reason ? row.kill_reason : reason);
        w->n_kills++;
    }
    sy_ledger_row_clear(&row);
}

static void read_control(sy_worker_t *w)
{
    for (int i = 0; i < 100; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->control, 0);
        if (!m)
            return;
        sy_err_t err = SY_ERR_INIT;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                sy_warn("worker", "%s: %s", w->t_control, rd_kafka_message_errstr(m));
        } else if (sy_codec_decode(w->codec, SY_TYPE_JOB_CONTROL, m->payload, m->len, &w->ctl,
                                   &err) != SY_OK) {
            sy_warn("worker", "%s[%d]@%" PRId64 " ignored: %s", w->t_control, m->partition,
                    m->offset, err.msg);
        } else {
            const char *job_id = sy_avro_get_string(&w->ctl, "job_id");
            const char *action = sy_avro_get_enum(&w->ctl, "action");
            const char *by = sy_avro_get_string(&w->ctl, "requested_by");
            const char *why = sy_avro_get_string(&w->ctl, "reason");
            char reason[512];
            snprintf(reason, sizeof(reason), "killed by %s%s%s", by && *by ? by : "someone",
                     why && *why ? ": " : "", why && *why ? why : "");
            if (action && !strcmp(action, "KILL") && job_id_valid(job_id))
                kill_job(w, job_id, reason);
            else
                sy_warn("worker", "%s[%d]@%" PRId64 " ignored: not a KILL of a valid job id",
                        w->t_control, m->partition, m->offset);
        }
        rd_kafka_message_destroy(m);
    }
}

/* Kill flags set by other workers for jobs we hold (a request this worker did not read). */
static void ledger_kills(sy_worker_t *w)
{
    sy_ledger_row_t *rows = NULL;
    size_t n = 0;
    sy_err_t err = SY_ERR_INIT;
    if (sy_ledger_list_kills(w->ledger, &rows, &n, &err) != SY_OK) {
        sy_warn("worker", "reading kill requests: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cluster_t *c = find_cluster(w, rows[i].cluster_name, rows[i].backend_kind);
        if (c && held_has(w, rows[i].job_id))
            sy_runner_kill(c->runner, rows[i].job_id, rows[i].kill_reason);
    }
    sy_ledger_rows_free(rows, n);
}

/* ---- runner events --------------------------------------------------------------------------- */

static void runner_events(sy_worker_t *w)
{
    sy_runner_event_t ev;
    for (size_t i = 0; i < w->n_clusters; i++) {
        cluster_t *c = &w->clusters[i];
        bool released = false;
        while (sy_runner_next_event(c->runner, &ev)) {
            pending_remove(w, ev.topic, ev.partition, ev.job_id);
            if (ev.type == SY_RUNNER_RELEASED) {
                held_remove(w, ev.job_id);
                released = true;
            }
        }
        if (released && c->paused)
            resume_cluster(w, c);
    }
}

/* ---- the loop -------------------------------------------------------------------------------- */

static void heartbeat(sy_worker_t *w)
{
    sy_err_t err = SY_ERR_INIT;
    if (sy_ledger_worker_heartbeat(w->ledger, &err) != SY_OK)
        sy_warn("worker", "heartbeat: %s", err.msg);
    /* Bursts (a backlog claimed at once, thousands of AWS answers parsed) leave freed heap
     * pages behind; hand them back so resident memory follows the jobs actually held. A few
     * milliseconds per heartbeat. */
    malloc_trim(0);
}

static size_t jobs_held(const sy_worker_t *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_clusters; i++)
        n += sy_runner_jobs(w->clusters[i].runner);
    return n;
}

static sy_err_code_t subscribe(sy_worker_t *w, sy_err_t *err)
{
    const char *spec = sy_config_get(w->conf, "worker.clusters");
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    char topic[512];
    if (spec[0] == '^') {
        /* a regular expression over cluster names: anchor it after the topic prefix */
        size_t n = (size_t)snprintf(topic, sizeof(topic), "^");
        for (const char *s = w->cluster_prefix; *s && n + 3 < sizeof(topic); s++) {
            if (*s == '.')
                topic[n++] = '\\';
            topic[n++] = *s;
        }
        snprintf(topic + n, sizeof(topic) - n, "%s", spec + 1);
        rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
    } else {
        char *copy = strdup(spec), *save = NULL;
        for (char *name = copy ? strtok_r(copy, ", ", &save) : NULL; name;
             name = strtok_r(NULL, ", ", &save)) {
            snprintf(topic, sizeof(topic), "%s%s", w->cluster_prefix, name);
            rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
        }
        free(copy);
    }
    sy_err_code_t rc = SY_OK;
    if (list->cnt == 0) {
        rc = sy_err_set(err, SY_ERR_CONFIG, false, "worker.clusters names no cluster");
    } else {
        rd_kafka_resp_err_t e = rd_kafka_subscribe(w->consumer, list);
        if (e)
            rc = sy_err_set(err, SY_ERR_KAFKA, false, "subscribe: %s", rd_kafka_err2str(e));
        else
            sy_info("worker", "%s serving %s%s", w->instance, list->elems[0].topic,
                    list->cnt > 1 ? " and more" : "");
    }
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

/* After the loop: stop consuming, let local jobs finish (or stop them), publish what is left. */
static void stop(sy_worker_t *w)
{
    sy_info("worker", "stopping: %zu job(s) held; no new jobs are taken", jobs_held(w));
    commit(w, NULL, true);
    rd_kafka_consumer_close(w->consumer); /* revokes: runners let go of remote jobs */
    long long start = sy_time_mono_ms(), last_beat = start;
    bool stopping = false;
    long long deadline = start + w->shutdown_grace_ms;
    while (jobs_held(w) > 0) {
        long long now = sy_time_mono_ms();
        if (!stopping && now >= deadline) {
            sy_info("worker", "%zu local job(s) still running after %lld ms; stopping them",
                    jobs_held(w), w->shutdown_grace_ms);
            for (size_t i = 0; i < w->n_clusters; i++)
                sy_runner_stop_jobs(w->clusters[i].runner,
                                    "the worker running it is shutting down");
            stopping = true;
            deadline = now + w->kill_grace_ms + STOP_EXTRA_MS;
        } else if (stopping && now >= deadline) {
            sy_warn("worker", "%zu job(s) still held; leaving them to the next owner",
                    jobs_held(w));
            break;
        }
        read_control(w);
        runner_events(w);
        if (now - last_beat >= w->heartbeat_ms) {
            heartbeat(w);
            last_beat = now;
        }
        usleep(50000);
    }
}

sy_err_code_t sy_worker_run(sy_worker_t *w, sy_err_t *err)
{
    sy_err_code_t rc = subscribe(w, err);
    long long now = sy_time_mono_ms();
    long long last_beat = now, last_commit = now, last_kills = now, last_stats = now;
    if (rc != SY_OK)
        return rc;
    while (!sy_signal_stop_requested()) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, POLL_MS);
        if (m) {
            handle_message(w, m);
            rd_kafka_message_destroy(m);
        }
        if (w->fatal.code != SY_OK) {
            *err = w->fatal;
            rc = w->fatal.code;
            break;
        }
        runner_events(w);
        read_control(w);
        now = sy_time_mono_ms();
        if (now - last_commit >= COMMIT_EVERY_MS) {
            commit(w, NULL, false);
            last_commit = now;
        }
        if (now - last_beat >= w->heartbeat_ms) {
            heartbeat(w);
            scan_all(w); /* jobs whose owner died since the assignment */
            last_beat = now;
        }
        if (now - last_kills >= KILLS_EVERY_MS) {
            ledger_kills(w);
            last_kills = now;
        }
        for (size_t i = 0; i < w->n_clusters; i++)
            if (w->clusters[i].paused && now - w->clusters[i].paused_at >= w->capacity_retry_ms)
                resume_cluster(w, &w->clusters[i]);
        if (now - last_stats >= STATS_EVERY_MS) {
            sy_info("worker",
                    "stats: %zu job(s) held, claimed %ld, taken over %ld, skipped %ld, "
                    "dead-lettered %ld, kills %ld, pauses %ld",
                    jobs_held(w), w->n_claimed, w->n_adopted, w->n_skipped, w->n_deadletter,
                    w->n_kills, w->n_paused);
            last_stats = now;
        }
    }
    stop(w);
    return rc;
}

/* ---- setup ----------------------------------------------------------------------------------- */

static sy_err_code_t make_topics(sy_worker_t *w, sy_err_t *err)
{
    const char *suffixes[] = {"status", "logs", "control", "deadletter"};
    char topic[256];
    int partitions = (int)sy_config_get_int(w->conf, "topic.partitions");
    int replication = (int)sy_config_get_int(w->conf, "topic.replication.factor");
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
        if (sy_kafka_ensure_topic(sy_emit_producer(w->emit),
                                  sy_kafka_topic(w->conf, suffixes[i], topic, sizeof(topic)),
                                  partitions, replication, w->timeout_ms, err) != SY_OK)
            return err->code;
    return SY_OK;
}

/* Reads every partition of <ns>.control from (start - lease): kill requests published while
 * this worker was starting (or restarting) are seen too; replays are harmless. */
static sy_err_code_t open_control(sy_worker_t *w, sy_err_t *err)
{
    char group[400];
    snprintf(group, sizeof(group), "%s.control.%s", sy_config_get(w->conf, "worker.group.id"),
             w->session);
    sy_kafka_opts_t o = {.group_id = group, /* assign() only: never joins, never commits */
                         .read_committed = false,
                         .auto_offset_reset = "latest",
                         .client_id_suffix = "worker-control"};
    if (!(w->control = sy_kafka_new(w->conf, SY_KAFKA_CONSUMER, &o, err)))
        return err->code;
    /* make_topics() may have created it a moment ago: the first start in a new namespace */
    int n = sy_kafka_partition_count_wait(w->control, w->t_control, w->timeout_ms, err);
    if (n < 0)
        return err->code;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
    long long since = sy_time_wall_ms() - w->lease_ms;
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, w->t_control, i)->offset = since;
    if (rd_kafka_offsets_for_times(w->control, list, w->timeout_ms))
        for (int i = 0; i < n; i++)
            list->elems[i].offset = RD_KAFKA_OFFSET_END;
    for (int i = 0; i < n; i++)
        if (list->elems[i].offset < 0)
            list->elems[i].offset = RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t e = rd_kafka_assign(w->control, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e)
        return sy_err_set(err, SY_ERR_KAFKA, false, "assign %s: %s", w->t_control,
                          rd_kafka_err2str(e));
    return SY_OK;
}

sy_worker_t *sy_worker_new(const sy_config_t *conf, sy_err_t *err)
{
    sy_worker_t *w = calloc(1, sizeof(*w));
    if (!w) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    w->conf = conf;
    if (gethostname(w->host, sizeof(w->host) - 1) < 0)
        snprintf(w->host, sizeof(w->host), "localhost");
    const char *inst = sy_config_get(conf, "worker.instance.id");
    if (*inst)
        snprintf(w->instance, sizeof(w->instance), "%s", inst);
    else
        snprintf(w->instance, sizeof(w->instance), "worker-%s-%d", w->host, (int)getpid());
    snprintf(w->session, sizeof(w->session), "%.120s@%.100s:%d:%lld", w->instance, w->host,
             (int)getpid(), sy_time_wall_ms());
    snprintf(w->ns, sizeof(w->ns), "%s", sy_config_get(conf, "topic.namespace"));
    snprintf(w->cluster_prefix, sizeof(w->cluster_prefix), "%s.cluster.", w->ns);
    sy_kafka_topic(conf, "control", w->t_control, sizeof(w->t_control));
    sy_kafka_topic(conf, "deadletter", w->t_deadletter, sizeof(w->t_deadletter));
    w->lease_ms = sy_config_get_int(conf, "worker.lease.ms");
    w->heartbeat_ms = sy_config_get_int(conf, "worker.heartbeat.ms");
    w->capacity_retry_ms = sy_config_get_int(conf, "worker.capacity.retry.ms");
    w->shutdown_grace_ms = sy_config_get_int(conf, "worker.shutdown.grace.ms");
    w->kill_grace_ms = sy_config_get_int(conf, "worker.kill.grace.ms");
    w->timeout_ms = (int)sy_config_get_int(conf, "broker.timeout.ms");
    if (w->heartbeat_ms <= 0 || w->lease_ms < 2 * w->heartbeat_ms) {
        sy_err_set(err, SY_ERR_CONFIG, false,
                   "worker.lease.ms must be at least twice worker.heartbeat.ms (> 0)");
        goto fail;
    }
    if (!(w->codec = sy_codec_new(conf, err)))
        goto fail;
    if (sy_codec_value_new(w->codec, SY_TYPE_ROUTED_JOB, &w->routed, err) != SY_OK)
        goto fail;
    if (sy_codec_value_new(w->codec, SY_TYPE_JOB_CONTROL, &w->ctl, err) != SY_OK) {
        avro_value_decref(&w->routed);
        goto fail;
    }
    w->values_made = true;
    if (!(w->ledger =
              sy_ledger_open(sy_config_get(conf, "database.url"), w->session, w->lease_ms, err)) ||
        sy_ledger_worker_register(w->ledger, w->instance, w->host, (int)getpid(), err) != SY_OK)
        goto fail;
    if (!(w->emit = sy_emit_new(conf, w->codec, w->instance, err)))
        goto fail;
    if (sy_kafka_wait_broker(sy_emit_producer(w->emit), w->timeout_ms, err) != SY_OK ||
        make_topics(w, err) != SY_OK || open_control(w, err) != SY_OK)
        goto fail;
    sy_kafka_opts_t copts = {.group_id = sy_config_get(conf, "worker.group.id"),
                             .read_committed = true,
                             .rebalance_cb = rebalance_cb,
                             .opaque = w,
                             .client_id_suffix = "worker"};
    if (!(w->consumer = sy_kafka_new(conf, SY_KAFKA_CONSUMER, &copts, err)))
        goto fail;
    sy_info("worker", "%s: session %s", w->instance, w->session);
    return w;
fail:
    sy_worker_destroy(w);
    return NULL;
}

void sy_worker_destroy(sy_worker_t *w)
{
    if (!w)
        return;
    if (w->consumer)
        rd_kafka_destroy(w->consumer); /* closed by sy_worker_run's stop */
    if (w->control) {
        rd_kafka_consumer_close(w->control);
        rd_kafka_destroy(w->control);
    }
    for (size_t i = 0; i < w->n_clusters; i++)
        sy_runner_destroy(w->clusters[i].runner);
    free(w->clusters);
    sy_emit_destroy(w->emit); /* after the runners: their last events are flushed */
    for (size_t i = 0; i < w->n_parts; i++)
        free(w->parts[i].pending);
    free(w->parts);
    for (size_t b = 0; b < HELD_BUCKETS; b++)
        while (w->held[b]) {
            held_t *h = w->held[b];
            w->held[b] = h->next;
            free(h->job_id);
            free(h);
        }
    if (w->ledger) {
        sy_err_t err = SY_ERR_INIT;
        if (sy_ledger_worker_unregister(w->ledger, &err) != SY_OK)
            sy_warn("worker", "leaving the roster: %s", err.msg);
    }
    sy_ledger_close(w->ledger);
    if (w->values_made) {
        avro_value_decref(&w->routed);
        avro_value_decref(&w->ctl);
    }
    sy_codec_destroy(w->codec);
    free(w);
}
