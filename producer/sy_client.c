/* sy_client: the Switchyard client library — submit, follow, kill (contracts in sy_client.h). */
#include "sy_time.h"
#include "sy_client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "sy_avro.h"
#include "sy_kafka.h"
#include "sy_log.h"
#include "sy_registry.h"

#define TOPIC_MAX        256
#define POLL_MS          100  /* longest a follow loop sleeps between checks */
#define DEFAULT_DRAIN_MS 5000 /* sy_client_follow_opts.log_drain_ms = 0 */

struct sy_client {
    const sy_config_t *conf;
    sy_codec_t *codec;
    rd_kafka_t *producer;
    char t_requests[TOPIC_MAX], t_control[TOPIC_MAX], t_status[TOPIC_MAX], t_logs[TOPIC_MAX];
    int timeout_ms; /* broker.timeout.ms */
    char follow_group[256];
    pthread_mutex_t lock; /* guards req, ctl and every pending_t's sync fields */
    bool lock_made;
    avro_value_t req, ctl;       /* reused for every request / control record */
    long long last_submitted_at; /* submitted_at values are strictly increasing per client */
    bool req_made, ctl_made;
};

/* One produced record waiting for its delivery report (rd_kafka message opaque). */
typedef struct pending {
    sy_client_ack_fn ack; /* async: called from the delivery report, then freed there */
    void *opaque;
    sy_client_receipt_t receipt;
    bool sync;      /* a caller waits for it (fields below under client->lock) */
    bool done;      /* the report arrived */
    bool abandoned; /* the waiter gave up: the report frees it */
    sy_err_t err;
} pending_t;

/* ---- small helpers --------------------------------------------------------------------------- */

bool sy_client_state_terminal(const char *s)
{
    return s && (!strcmp(s, "SUCCEEDED") || !strcmp(s, "FAILED") || !strcmp(s, "KILLED") ||
                 !strcmp(s, "INVALID"));
}

bool sy_client_job_id_valid(const char *id, sy_err_t *err)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > SY_CLIENT_JOB_ID_MAX) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "job id must be 1-%d characters",
                   SY_CLIENT_JOB_ID_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("._:-", id[i])) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false,
                       "job id \"%.128s\" has a character outside [A-Za-z0-9._:-] at position %zu",
                       id, i + 1);
            return false;
        }
    return true;
}

void sy_client_job_id_generate(char *out, size_t size)
{
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* no entropy source: time and pid still make a collision very unlikely */
        long long x = sy_time_mono_ms() ^ ((long long)getpid() << 20) ^ (long long)clock();
        memcpy(rnd, &x, sizeof(rnd));
    }
    long long now = sy_time_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, size, "sy-%04d%02d%02dT%02d%02d%02d%03dZ-%02x%02x%02x%02x%02x%02x%02x%02x",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(now % 1000), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
}

const char *sy_client_default_user(char *buf, size_t size)
{
    const char *u = getenv("USER");
    struct passwd pw, *res = NULL;
    char tmp[1024]; /* holds the strings res points to */
    if (!u || !*u) {
        if (getpwuid_r(getuid(), &pw, tmp, sizeof(tmp), &res) == 0 && res && res->pw_name)
            u = res->pw_name;
    }
    snprintf(buf, size, "%s", u && *u ? u : "unknown");
    return buf;
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

static bool criterion_check(const sy_client_criterion_t *c, const char *what, sy_err_t *err)
{
    if (c->n_tags == 0)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s has no tags", what), false;
    for (size_t i = 0; i < c->n_tags; i++) {
        sy_err_t e = SY_ERR_INIT;
        if (!c->tags[i] || !sy_tag_valid_criterion(c->tags[i], &e))
            return sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s: %s", what,
                              c->tags[i] ? e.msg : "NULL tag"),
                   false;
    }
    return true;
}

sy_err_code_t sy_client_job_check(const sy_client_job_t *job, sy_err_t *err)
{
    sy_err_t e = SY_ERR_INIT;
    if (job->job_id && *job->job_id && !sy_client_job_id_valid(job->job_id, &e))
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s", e.msg);
    if (job->n_cluster_criteria == 0)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                          "no cluster criterion (give at least one set of cluster tags)");
    for (size_t i = 0; i < job->n_cluster_criteria; i++) {
        char what[64];
        snprintf(what, sizeof(what), "cluster criterion #%zu", i + 1);
        if (!criterion_check(&job->cluster_criteria[i], what, err))
            return SY_ERR_INVALID_ARG;
    }
    if (!criterion_check(&job->command_criterion, "command criterion", err))
        return SY_ERR_INVALID_ARG;
    for (size_t i = 0; i < job->n_env; i++)
        if (!env_name_valid(job->env[i].key) || !job->env[i].value)
            return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                              "environment variable name \"%.64s\" is not [A-Za-z_][A-Za-z0-9_]*",
                              job->env[i].key ? job->env[i].key : "");
    for (size_t i = 0; i < job->n_meta; i++)
        if (!job->meta[i].key || !job->meta[i].value)
            return sy_err_set(err, SY_ERR_INVALID_ARG, false, "metadata entry #%zu is NULL", i + 1);
    for (size_t i = 0; i < job->n_args; i++)
        if (!job->args[i])
            return sy_err_set(err, SY_ERR_INVALID_ARG, false, "argument #%zu is NULL", i + 1);
    if (job->timeout_ms < 0)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "timeout must not be negative");
    return SY_OK;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

/* Delivery report: runs inside rd_kafka_poll / flush, in whichever thread called it. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sy_client_t *c = opaque;
    pending_t *p = m->_private;
    sy_err_t e = SY_ERR_INIT;
    if (!p)
        return;
    if (m->err) {
        bool timeout = m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
        sy_err_set(&e, timeout ? SY_ERR_TIMEOUT : SY_ERR_KAFKA,
                   timeout || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                       m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
                   "%s: %s", rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    }
    if (!p->sync) {
        if (!m->err) {
            p->receipt.partition = m->partition;
            p->receipt.offset = m->offset;
        }
        if (p->ack)
            p->ack(p->opaque, &p->receipt, m->err ? &e : NULL);
        free(p);
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (!m->err) {
        p->receipt.partition = m->partition;
        p->receipt.offset = m->offset;
    }
    bool abandoned = p->abandoned;
    p->done = true;
    p->err = e;
    pthread_mutex_unlock(&c->lock);
    if (abandoned)
        free(p);
}

/* The producer: delivery reports to dr_cb; linger.ms 0 unless kafka.linger.ms is set — a client
 * mostly sends one request and waits for it (6 ms per synchronous submit with librdkafka's
 * default of 5 ms, under 1 ms without), and librdkafka still batches whatever queues up while a
 * request is in flight. */
static rd_kafka_t *make_producer(sy_client_t *c, sy_err_t *err)
{
    sy_kafka_opts_t opts = {
        .client_id_suffix = "client", .dr_msg_cb = dr_cb, .linger_ms = "0", .opaque = c};
    return sy_kafka_new(c->conf, SY_KAFKA_IDEMPOTENT_PRODUCER, &opts, err);
}

sy_client_t *sy_client_new(const sy_config_t *conf, sy_err_t *err)
{
    sy_client_t *c = calloc(1, sizeof(*c));
    if (!c) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    c->conf = conf;
    c->timeout_ms = (int)sy_config_get_int(conf, "broker.timeout.ms");
    sy_kafka_topic(conf, "requests", c->t_requests, sizeof(c->t_requests));
    sy_kafka_topic(conf, "control", c->t_control, sizeof(c->t_control));
    sy_kafka_topic(conf, "status", c->t_status, sizeof(c->t_status));
    sy_kafka_topic(conf, "logs", c->t_logs, sizeof(c->t_logs));
    /* followers only assign() partitions: the group is never joined and nothing is committed,
     * but librdkafka needs a group.id for assign() */
    snprintf(c->follow_group, sizeof(c->follow_group), "%s-follow",
             sy_config_get(conf, "client.id"));
    if (pthread_mutex_init(&c->lock, NULL)) {
        sy_err_set(err, SY_ERR_INTERNAL, false, "pthread_mutex_init failed");
        goto fail;
    }
    c->lock_made = true;
    if (!(c->codec = sy_codec_new(conf, err)))
        goto fail;
    if (sy_codec_value_new(c->codec, SY_TYPE_JOB_REQUEST, &c->req, err) != SY_OK)
        goto fail;
    c->req_made = true;
    if (sy_codec_value_new(c->codec, SY_TYPE_JOB_CONTROL, &c->ctl, err) != SY_OK)
        goto fail;
    c->ctl_made = true;
    if (!(c->producer = make_producer(c, err)))
        goto fail;
    return c;
fail:
    sy_client_destroy(c);
    return NULL;
}

void sy_client_destroy(sy_client_t *c)
{
    if (!c)
        return;
    if (c->producer) {
        /* what was not acknowledged is given up: its reports (and frees) run here */
        rd_kafka_purge(c->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        long long until = sy_time_mono_ms() + 2000;
        while (rd_kafka_outq_len(c->producer) > 0 && sy_time_mono_ms() < until)
            rd_kafka_poll(c->producer, 50);
        rd_kafka_poll(c->producer, 0);
        rd_kafka_destroy(c->producer);
    }
    if (c->req_made)
        avro_value_decref(&c->req);
    if (c->ctl_made)
        avro_value_decref(&c->ctl);
    sy_codec_destroy(c->codec);
    if (c->lock_made)
        pthread_mutex_destroy(&c->lock);
    free(c);
}

sy_codec_t *sy_client_codec(sy_client_t *c)
{
    return c->codec;
}

/* ---- producing ------------------------------------------------------------------------------- */

/* Why nothing was acknowledged in time: a missing topic (auto-creation off) looks like a dead
 * broker from the producer's side, so ask the broker about the topic. */
static sy_err_code_t explain_timeout(sy_client_t *c, const char *topic, const char *job_id,
                                     sy_err_t *err)
{
    sy_err_t e = SY_ERR_INIT;
    int n = sy_kafka_partition_count(c->producer, topic, 1000, &e);
    if (n < 0 && e.code == SY_ERR_NOT_FOUND)
        return sy_err_set(err, SY_ERR_KAFKA, false,
                          "topic %s does not exist (is the router running, with this "
                          "topic.namespace? it creates the topics)",
                          topic);
    sy_err_set(err, SY_ERR_TIMEOUT, true,
               "Kafka broker unreachable within %d ms (%s): no acknowledgement for job %s; "
               "it may or may not have been recorded, and sending it again with the same "
               "job id is safe",
               c->timeout_ms, sy_config_get(c->conf, "bootstrap.servers"), job_id);
    sy_kafka_explain(err, c->timeout_ms); /* a refusal (SASL, TLS) is not a dead broker */
    return err ? err->code : SY_ERR_TIMEOUT;
}

/* Encodes value (type) and hands it to librdkafka, keyed by key. p (heap) becomes the
 * message's opaque on success; on failure the caller still owns it. */
static sy_err_code_t produce(sy_client_t *c, sy_type_t type, const char *topic, const char *key,
                             avro_value_t *value, pending_t *p, sy_err_t *err)
{
    void *buf = NULL;
    size_t len = 0;
    sy_err_code_t rc = sy_codec_encode(c->codec, type, topic, value, &buf, &len, err);
    if (rc != SY_OK) {
        if (rc == SY_ERR_REGISTRY)
            sy_err_prefix(err, "Schema Registry (%s)",
                          sy_config_get(c->conf, "schema.registry.url"));
        return rc;
    }
    rd_kafka_resp_err_t e =
        rd_kafka_producev(c->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                          RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
    if (e) {
        free(buf);
        return sy_err_set(err, SY_ERR_KAFKA, e == RD_KAFKA_RESP_ERR__QUEUE_FULL,
                          "produce to %s: %s", topic, rd_kafka_err2str(e));
    }
    return SY_OK; /* buf now owned by librdkafka (MSG_F_FREE) */
}

/* Waits for p's delivery report, at most broker.timeout.ms, and copies p's receipt into *out
 * (may be NULL). Frees p, or leaves it to the report when giving up. */
static sy_err_code_t wait_ack(sy_client_t *c, pending_t *p, const char *topic,
                              sy_client_receipt_t *out, sy_err_t *err)
{
    long long until = sy_time_mono_ms() + c->timeout_ms;
    sy_err_code_t rc = SY_OK;
    char job_id[SY_CLIENT_JOB_ID_MAX + 1]; /* p may be gone once abandoned */
    snprintf(job_id, sizeof(job_id), "%s", p->receipt.job_id);
    for (;;) {
        pthread_mutex_lock(&c->lock);
        bool done = p->done;
        if (!done && sy_time_mono_ms() >= until)
            p->abandoned = true;
        bool abandoned = p->abandoned;
        if (out)
            *out = p->receipt;
        pthread_mutex_unlock(&c->lock);
        if (done) {
            if (p->err.code != SY_OK) {
                rc = p->err.code;
                if (err)
                    *err = p->err;
            }
            free(p);
            return rc;
        }
        if (abandoned) /* the report frees p when (if) it comes */
            return explain_timeout(c, topic, job_id, err);
        long long left = until - sy_time_mono_ms();
        rd_kafka_poll(c->producer, left < 0 ? 0 : left > POLL_MS ? POLL_MS : (int)left);
    }
}

static void set_criterion(avro_value_t *crit, const sy_client_criterion_t *c, int *bad)
{
    *bad |= sy_avro_set_null(crit, "id") || sy_avro_set_null(crit, "name") ||
            sy_avro_array_clear(crit, "tags");
    for (size_t i = 0; i < c->n_tags; i++)
        *bad |= sy_avro_array_append_string(crit, "tags", c->tags[i]);
}

/* Fills c->req from job (caller holds c->lock). */
static sy_err_code_t build_request(sy_client_t *c, const sy_client_job_t *job, const char *job_id,
                                   long long submitted_at, sy_err_t *err)
{
    avro_value_t *v = &c->req, crit;
    char user[256];
    int bad = 0;
    avro_value_reset(v);
    bad |= sy_avro_set_string(v, "job_id", job_id);
    bad |= sy_avro_set_string(v, "name", job->name && *job->name ? job->name : job_id);
    bad |= sy_avro_set_string(v, "user",
                              job->user && *job->user ? job->user
                                                      : sy_client_default_user(user, sizeof(user)));
    bad |= sy_avro_set_string(v, "grouping", job->grouping);
    bad |= sy_avro_set_string(v, "grouping_instance", job->grouping_instance);
    bad |= sy_avro_array_clear(v, "cluster_criteria");
    for (size_t i = 0; i < job->n_cluster_criteria && !bad; i++) {
        bad |= sy_avro_array_append(v, "cluster_criteria", &crit);
        if (!bad)
            set_criterion(&crit, &job->cluster_criteria[i], &bad);
    }
    bad |= sy_avro_set_record(v, "command_criterion", &crit);
    if (!bad)
        set_criterion(&crit, &job->command_criterion, &bad);
    bad |= sy_avro_array_clear(v, "arguments");
    for (size_t i = 0; i < job->n_args; i++)
        bad |= sy_avro_array_append_string(v, "arguments", job->args[i]);
    bad |= sy_avro_map_clear(v, "environment");
    for (size_t i = 0; i < job->n_env; i++)
        bad |= sy_avro_map_set_string(v, "environment", job->env[i].key, job->env[i].value);
    bad |= sy_avro_map_clear(v, "metadata");
    for (size_t i = 0; i < job->n_meta; i++)
        bad |= sy_avro_map_set_string(v, "metadata", job->meta[i].key, job->meta[i].value);
    bad |= job->timeout_ms > 0 ? sy_avro_set_long(v, "timeout_ms", job->timeout_ms)
                               : sy_avro_set_null(v, "timeout_ms");
    bad |= sy_avro_set_long(v, "submitted_at", submitted_at);
    if (bad)
        return sy_err_set(err, SY_ERR_INTERNAL, false, "building JobRequest: %s", avro_strerror());
    return SY_OK;
}

/* Checks, builds and queues one request; *pp is the queued message's pending_t (owned by the
 * message from then on). */
static sy_err_code_t submit_queue(sy_client_t *c, const sy_client_job_t *job, bool sync,
                                  sy_client_ack_fn ack, void *opaque, sy_client_receipt_t *receipt,
                                  pending_t **pp, sy_err_t *err)
{
    sy_err_code_t rc;
    pending_t *p = calloc(1, sizeof(*p));
    if (!p)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    p->ack = ack;
    p->opaque = opaque;
    p->sync = sync;
    p->receipt.partition = -1;
    p->receipt.offset = -1;
    if (job->job_id && *job->job_id)
        snprintf(p->receipt.job_id, sizeof(p->receipt.job_id), "%s", job->job_id);
    else
        sy_client_job_id_generate(p->receipt.job_id, sizeof(p->receipt.job_id));
    /* distinct per submission, even two in one millisecond: a follower tells the router's
     * answers to them apart by it */
    pthread_mutex_lock(&c->lock);
    long long now = sy_time_wall_ms();
    p->receipt.submitted_at = c->last_submitted_at =
        now > c->last_submitted_at ? now : c->last_submitted_at + 1;
    pthread_mutex_unlock(&c->lock);
    if (receipt)
        *receipt = p->receipt;
    if ((rc = sy_client_job_check(job, err)) != SY_OK)
        goto out;
    pthread_mutex_lock(&c->lock);
    rc = build_request(c, job, p->receipt.job_id, p->receipt.submitted_at, err);
    if (rc == SY_OK)
        rc = produce(c, SY_TYPE_JOB_REQUEST, c->t_requests, p->receipt.job_id, &c->req, p, err);
    pthread_mutex_unlock(&c->lock);
    if (rc == SY_OK) {
        *pp = p;
        p = NULL; /* now owned by the message */
    }
out:
    free(p);
    return rc;
}

sy_err_code_t sy_client_submit(sy_client_t *c, const sy_client_job_t *job,
                               sy_client_receipt_t *receipt, sy_err_t *err)
{
    pending_t *p = NULL;
    sy_err_code_t rc = submit_queue(c, job, true, NULL, NULL, receipt, &p, err);
    if (rc != SY_OK)
        return rc;
    return wait_ack(c, p, c->t_requests, receipt, err); /* frees p (or leaves it to the report) */
}

sy_err_code_t sy_client_submit_async(sy_client_t *c, const sy_client_job_t *job,
                                     sy_client_ack_fn ack, void *opaque,
                                     sy_client_receipt_t *receipt, sy_err_t *err)
{
    pending_t *p = NULL;
    return submit_queue(c, job, false, ack, opaque, receipt, &p, err);
}

int sy_client_poll(sy_client_t *c, int timeout_ms)
{
    return rd_kafka_poll(c->producer, timeout_ms);
}

sy_err_code_t sy_client_flush(sy_client_t *c, int timeout_ms, sy_err_t *err)
{
    if (timeout_ms < 0)
        timeout_ms = c->timeout_ms;
    rd_kafka_resp_err_t e = rd_kafka_flush(c->producer, timeout_ms);
    if (e == RD_KAFKA_RESP_ERR__TIMED_OUT) {
        sy_err_set(err, SY_ERR_TIMEOUT, true,
                   "Kafka broker unreachable within %d ms: %d request(s) not acknowledged",
                   timeout_ms, rd_kafka_outq_len(c->producer));
        sy_kafka_explain(err, timeout_ms);
        return err ? err->code : SY_ERR_TIMEOUT;
    }
    return SY_OK;
}

sy_err_code_t sy_client_kill(sy_client_t *c, const char *job_id, const char *reason,
                             const char *requested_by, sy_err_t *err)
{
    sy_err_t e = SY_ERR_INIT;
    char user[256];
    if (!sy_client_job_id_valid(job_id, &e))
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s", e.msg);
    pending_t *p = calloc(1, sizeof(*p));
    if (!p)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    p->sync = true;
    snprintf(p->receipt.job_id, sizeof(p->receipt.job_id), "%s", job_id);
    p->receipt.submitted_at = sy_time_wall_ms();
    pthread_mutex_lock(&c->lock);
    avro_value_t *v = &c->ctl;
    avro_value_reset(v);
    sy_err_code_t rc = SY_OK;
    if (sy_avro_set_string(v, "job_id", job_id) || sy_avro_set_enum(v, "action", "KILL") ||
        sy_avro_set_string(v, "reason", reason) ||
        sy_avro_set_string(v, "requested_by",
                           requested_by && *requested_by
                               ? requested_by
                               : sy_client_default_user(user, sizeof(user))) ||
        sy_avro_set_long(v, "requested_at", p->receipt.submitted_at))
        rc = sy_err_set(err, SY_ERR_INTERNAL, false, "building JobControl: %s", avro_strerror());
    if (rc == SY_OK)
        rc = produce(c, SY_TYPE_JOB_CONTROL, c->t_control, job_id, v, p, err);
    pthread_mutex_unlock(&c->lock);
    if (rc != SY_OK) {
        free(p);
        return rc;
    }
    return wait_ack(c, p, c->t_control, NULL, err);
}

/* ---- the run tracker ------------------------------------------------------------------------- */

typedef struct tracked {
    void *data;
    size_t len;
    long long ts;
} tracked_t;

struct sy_client_tracker {
    long long submitted_at; /* > 0: the submission whose answer decides */
    bool awaiting;          /* that answer has not been seen yet */
    bool duplicate;
    tracked_t *evs; /* the newest run, in order */
    size_t n, cap, handed;
    bool has_run, terminal;
    long long run_start_ts, last_seq;
    unsigned generation;
};

sy_client_tracker_t *sy_client_tracker_new(long long submitted_at)
{
    sy_client_tracker_t *t = calloc(1, sizeof(*t));
    if (t) {
        t->submitted_at = submitted_at;
        t->awaiting = submitted_at > 0;
    }
    return t;
}

static void tracker_clear(sy_client_tracker_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->evs[i].data);
    t->n = t->handed = 0;
}

void sy_client_tracker_destroy(sy_client_tracker_t *t)
{
    if (!t)
        return;
    tracker_clear(t);
    free(t->evs);
    free(t);
}

static int tracker_push(sy_client_tracker_t *t, const void *data, size_t len, long long ts)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        tracked_t *evs = realloc(t->evs, cap * sizeof(*evs));
        if (!evs)
            return -1;
        t->evs = evs;
        t->cap = cap;
    }
    void *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, data, len);
    t->evs[t->n++] = (tracked_t){copy, len, ts};
    return 1;
}

int sy_client_tracker_add(sy_client_tracker_t *t, const char *status, long long seq,
                          long long submitted_at, long long ts, const void *data, size_t len)
{
    bool accepted = !strcmp(status, "ACCEPTED"), dup = !strcmp(status, "DUPLICATE");
    bool answer = t->awaiting && (accepted || dup) && submitted_at == t->submitted_at;
    if (answer) {
        t->awaiting = false;
        t->duplicate = dup;
    }
    if (accepted) { /* the router routed a request: a new run starts */
        tracker_clear(t);
        t->has_run = true;
        t->terminal = false;
        t->run_start_ts = ts;
        t->last_seq = seq;
        t->generation++;
        return tracker_push(t, data, len, ts);
    }
    if (dup) /* informational; part of the run it refers to, if we have one */
        return t->has_run ? tracker_push(t, data, len, ts) : 0;
    if (t->has_run && seq <= t->last_seq)
        return 0;      /* a repeat, e.g. from a worker that took the job over */
    if (!t->has_run) { /* the window starts in the middle of a run */
        t->has_run = true;
        t->run_start_ts = 0;
        t->generation++;
    }
    t->last_seq = seq;
    if (sy_client_state_terminal(status))
        t->terminal = true;
    return tracker_push(t, data, len, ts);
}

void sy_client_tracker_info(const sy_client_tracker_t *t, sy_client_track_info_t *info)
{
    info->decided = !t->awaiting;
    info->has_run = t->has_run;
    info->terminal = t->terminal;
    info->duplicate = t->duplicate;
    info->run_start_ts = t->run_start_ts;
    info->generation = t->generation;
}

bool sy_client_tracker_next(sy_client_tracker_t *t, const void **data, size_t *len, long long *ts)
{
    if (t->awaiting || t->handed >= t->n)
        return false;
    tracked_t *e = &t->evs[t->handed++];
    *data = e->data;
    *len = e->len;
    *ts = e->ts;
    return true;
}

/* ---- log positions --------------------------------------------------------------------------- */

typedef struct logpos_entry {
    int attempt;
    char *stream;
    long long end; /* first byte not delivered yet */
} logpos_entry_t;

struct sy_client_logpos {
    logpos_entry_t *e;
    size_t n, cap;
};

sy_client_logpos_t *sy_client_logpos_new(void)
{
    return calloc(1, sizeof(sy_client_logpos_t));
}

void sy_client_logpos_destroy(sy_client_logpos_t *lp)
{
    if (!lp)
        return;
    for (size_t i = 0; i < lp->n; i++)
        free(lp->e[i].stream);
    free(lp->e);
    free(lp);
}

long long sy_client_logpos_accept(sy_client_logpos_t *lp, int attempt, const char *stream,
                                  long long offset, size_t len)
{
    long long end = offset + (long long)len;
    for (size_t i = 0; i < lp->n; i++) {
        logpos_entry_t *e = &lp->e[i];
        if (e->attempt != attempt || strcmp(e->stream, stream))
            continue;
        if (end <= e->end)
            return (long long)len; /* all of it delivered already */
        long long skip = offset < e->end ? e->end - offset : 0;
        e->end = end;
        return skip;
    }
    if (lp->n == lp->cap) {
        size_t cap = lp->cap ? lp->cap * 2 : 4;
        logpos_entry_t *ne = realloc(lp->e, cap * sizeof(*ne));
        if (!ne)
            return -1;
        lp->e = ne;
        lp->cap = cap;
    }
    char *s = strdup(stream);
    if (!s)
        return -1;
    lp->e[lp->n++] = (logpos_entry_t){attempt, s, end};
    return 0;
}

/* ---- follow ---------------------------------------------------------------------------------- */

typedef struct follower {
    sy_client_t *c;
    const char *job_id;
    size_t id_len;
    const sy_client_follow_opts_t *o;
    sy_client_outcome_t *out;
    rd_kafka_t *rk;
    long long from_ms; /* where reading starts (window start minus the skew margin) */
    avro_value_t st, lg;
    bool st_made, lg_made;
    sy_client_tracker_t *tr;
    sy_client_logpos_t *lp;
    unsigned generation; /* the run lp belongs to */
    bool caught_up;      /* the status partition reached its end once */
    bool released;       /* the run is decided: events are being delivered */
    bool logs_assigned;
    bool draining; /* terminal (or caught up): reading the logs written so far */
    long long drain_until;
    int64_t drain_target; /* logs offset to reach */
    int64_t logs_next;    /* next logs offset to consume, -1 unknown */
    int64_t logs_eof;     /* offset of the last end-of-partition on logs, -1 if read since */
    bool stopped;         /* a callback returned non-zero */
    void *held;           /* the terminal event, delivered once the logs before it are */
    size_t held_len;
    long long held_ts;
} follower_t;

static void iso_time(long long ms, char *buf, size_t size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The partition a job's events are in, mapping "no such topic" and "no answer" to errors a
 * user can act on. Transient failures (a broker restarting) are retried for broker.timeout.ms. */
static int32_t job_partition(follower_t *f, const char *topic, sy_err_t *err)
{
    sy_err_t e = SY_ERR_INIT;
    long long until = sy_time_mono_ms() + f->c->timeout_ms;
    int n;
    for (;;) {
        long long left = until - sy_time_mono_ms();
        n = sy_kafka_partition_count(f->rk, topic, left > 0 ? (int)left : 1, &e);
        if (n > 0)
            return sy_kafka_partition_for_key(f->job_id, f->id_len, n);
        if (n == 0 || e.code == SY_ERR_NOT_FOUND || !e.retriable || left <= 0)
            break;
        usleep(200 * 1000);
    }
    if (n == 0)
        sy_err_set(err, SY_ERR_KAFKA, false, "topic %s has no partitions", topic);
    else if (e.code == SY_ERR_NOT_FOUND)
        sy_err_set(err, SY_ERR_KAFKA, false,
                   "topic %s does not exist (is the router running, with this topic.namespace? "
                   "it creates the topics)",
                   topic);
    else if (e.retriable)
        sy_err_set(err, SY_ERR_TIMEOUT, true, "Kafka broker unreachable within %d ms (%s): %s",
                   f->c->timeout_ms, sy_config_get(f->c->conf, "bootstrap.servers"), e.msg);
    else
        sy_err_set(err, e.code, false, "%s", e.msg);
    return -1;
}

/* Starts reading topic[partition] at the first record written at or after ts. */
static sy_err_code_t assign_from(follower_t *f, const char *topic, int32_t partition, long long ts,
                                 sy_err_t *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, topic, partition);
    sy_err_code_t rc = SY_OK;
    int64_t lo = 0, end = -1;
    /* The end first: for a read_committed consumer ListOffsets answers the last stable offset,
     * so starting there skips nothing — records written after this call are at or beyond it,
     * and a transaction still open below it is read once committed. (The logical
     * RD_KAFKA_OFFSET_END would be resolved later, when fetching starts, and could skip what
     * was written in between.) */
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(f->rk, topic, partition, &lo, &end, f->c->timeout_ms);
    if (!e) {
        tp->offset = ts;
        e = rd_kafka_offsets_for_times(f->rk, l, f->c->timeout_ms);
        if (!e)
            e = tp->err;
    }
    if (e) {
        bool timeout = e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT;
        rc = sy_err_set(err, timeout ? SY_ERR_TIMEOUT : SY_ERR_KAFKA, timeout,
                        "%s%s[%d]: list offsets: %s", timeout ? "Kafka broker unreachable: " : "",
                        topic, partition, rd_kafka_err2str(e));
        sy_kafka_explain(err, f->c->timeout_ms);
        rc = err ? err->code : rc;
        goto out;
    }
    if (tp->offset < 0) /* nothing written at or after ts (before the end was taken) */
        tp->offset = end;
    if (!strcmp(topic, f->c->t_logs))
        f->logs_next = tp->offset;
    rd_kafka_error_t *ae = rd_kafka_incremental_assign(f->rk, l);
    if (ae) {
        rc = sy_err_set(err, SY_ERR_KAFKA, false, "assign %s[%d]: %s", topic, partition,
                        rd_kafka_error_string(ae));
        rd_kafka_error_destroy(ae);
    }
out:
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static bool key_is_job(follower_t *f, const rd_kafka_message_t *m)
{
    return m->key && m->key_len == f->id_len && !memcmp(m->key, f->job_id, f->id_len);
}

static void start_drain(follower_t *f)
{
    if (f->draining)
        return;
    f->draining = true;
    f->drain_target = -1;
    if (!f->logs_assigned)
        return;
    int64_t lo = 0, hi = -1;
    int drain_ms = f->o->log_drain_ms > 0 ? f->o->log_drain_ms : DEFAULT_DRAIN_MS;
    f->drain_until = sy_time_mono_ms() + drain_ms;
    if (rd_kafka_query_watermark_offsets(f->rk, f->c->t_logs, f->out->logs_partition, &lo, &hi,
                                         drain_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
        f->drain_target = hi;
    else
        f->drain_target = INT64_MAX; /* unknown: read until drain_until */
}

static bool drain_done(follower_t *f)
{
    if (!f->draining)
        return false;
    if (!f->logs_assigned || f->drain_target < 0)
        return true;
    int64_t at = f->logs_next > f->logs_eof ? f->logs_next : f->logs_eof;
    return at >= f->drain_target || sy_time_mono_ms() >= f->drain_until;
}

/* Hands one tracked event to on_status. A terminal one is held back (final false) until the
 * log chunks written before it were delivered, then handed out with final true. */
static void deliver_status(follower_t *f, const void *data, size_t len, long long ts, bool final)
{
    sy_err_t e = SY_ERR_INIT;
    if (sy_codec_decode(f->c->codec, SY_TYPE_JOB_STATUS, data, len, &f->st, &e) != SY_OK)
        return; /* decoded once already when it was tracked */
    avro_value_t *v = &f->st;
    int32_t code = 0;
    sy_client_status_t s = {
        .job_id = sy_avro_get_string(v, "job_id"),
        .seq = sy_avro_get_long(v, "seq", 0),
        .status = sy_avro_get_enum(v, "status"),
        .cluster = sy_avro_get_string(v, "cluster"),
        .command = sy_avro_get_string(v, "command"),
        .backend_id = sy_avro_get_string(v, "backend_id"),
        .message = sy_avro_get_string(v, "message"),
        .failure_reason = sy_avro_get_string(v, "failure_reason"),
        .log_uri = sy_avro_get_string(v, "log_uri"),
        .emitter = sy_avro_get_string(v, "emitter"),
        .attempt = sy_avro_get_int(v, "attempt", 1),
        .emitted_at = sy_avro_get_long(v, "emitted_at", 0),
        .submitted_at = sy_avro_get_long(v, "submitted_at", 0),
        .has_exit_code = sy_avro_get_int_opt(v, "exit_code", &code),
        .kafka_ts = ts,
        .record = v,
    };
    s.exit_code = code;
    /* after the terminal status only DUPLICATE (e.g. the router's answer to our own
     * submission, when the run had already ended) is still worth telling */
    if (!s.status || (!final && f->draining && strcmp(s.status, "DUPLICATE")))
        return;
    if (!final && sy_client_state_terminal(s.status)) {
        if ((f->held = malloc(len ? len : 1))) {
            memcpy(f->held, data, len);
            f->held_len = len;
            f->held_ts = ts;
        } /* out of memory: it is dropped, but the run still ends */
        snprintf(f->out->status, sizeof(f->out->status), "%s", s.status);
        start_drain(f);
        return;
    }
    f->out->status_events++;
    if (strcmp(s.status, "DUPLICATE"))
        snprintf(f->out->status, sizeof(f->out->status), "%s", s.status);
    snprintf(f->out->message, sizeof(f->out->message), "%s", s.message ? s.message : "");
    if (sy_client_state_terminal(s.status))
        f->out->exit_code = s.has_exit_code ? s.exit_code : -1;
    if (f->o->on_status && f->o->on_status(f->o->opaque, &s))
        f->stopped = true;
}

/* The end of a terminal run: the held terminal event, then what queued up behind it. */
static void deliver_held(follower_t *f)
{
    const void *data;
    size_t len;
    long long ts;
    if (f->held) {
        deliver_status(f, f->held, f->held_len, f->held_ts, true);
        free(f->held);
        f->held = NULL;
    }
    while (!f->stopped && sy_client_tracker_next(f->tr, &data, &len, &ts))
        deliver_status(f, data, len, ts, false);
}

/* Once the run is decided and the history read: check there is a run, start its logs, and
 * hand out its events. */
static sy_err_code_t pump(follower_t *f, sy_err_t *err)
{
    sy_client_track_info_t info;
    sy_client_tracker_info(f->tr, &info);
    if (!f->caught_up || !info.decided)
        return SY_OK;
    if (!f->released) {
        char since[32];
        iso_time(f->from_ms, since, sizeof(since));
        if (!info.has_run && info.duplicate)
            return sy_err_set(err, SY_ERR_NOT_FOUND, false,
                              "job %s was routed before %s (the router ignored this submission "
                              "as a duplicate), so its status is not in the window read; widen "
                              "the lookback",
                              f->job_id, since);
        if (!info.has_run)
            return sy_err_set(err, SY_ERR_NOT_FOUND, false,
                              "no job %s: no status event for it in %s[%d] since %s", f->job_id,
                              f->c->t_status, f->out->status_partition, since);
        f->released = true;
        f->out->duplicate = info.duplicate;
        f->generation = info.generation;
        if (f->o->logs) {
            long long ts =
                info.run_start_ts > 0 ? info.run_start_ts - SY_CLIENT_CLOCK_SKEW_MS : f->from_ms;
            int32_t p = job_partition(f, f->c->t_logs, err);
            if (p < 0)
                return err->code;
            f->out->logs_partition = p;
            if (assign_from(f, f->c->t_logs, p, ts < 0 ? 0 : ts, err) != SY_OK)
                return err->code;
            f->logs_assigned = true;
        }
    }
    const void *data;
    size_t len;
    long long ts;
    while (!f->stopped && !f->held && sy_client_tracker_next(f->tr, &data, &len, &ts))
        deliver_status(f, data, len, ts, false);
    if (f->o->until_caught_up)
        start_drain(f);
    return SY_OK;
}

/* A record of ours that does not decode is skipped with a warning — unless the reason is that
 * the Schema Registry cannot be reached, which the user must hear about. */
static sy_err_code_t undecodable(follower_t *f, const rd_kafka_message_t *m, const char *what,
                                 const sy_err_t *e, sy_err_t *err)
{
    if (e->code == SY_ERR_REGISTRY && e->retriable)
        return sy_err_set(err, SY_ERR_REGISTRY, true, "Schema Registry (%s): %s",
                          sy_config_get(f->c->conf, "schema.registry.url"), e->msg);
    sy_warn("client", "%s[%d]@%lld: undecodable %s of job %s skipped: %s",
            rd_kafka_topic_name(m->rkt), m->partition, (long long)m->offset, what, f->job_id,
            e->msg);
    return SY_OK;
}

static sy_err_code_t on_status_record(follower_t *f, const rd_kafka_message_t *m, sy_err_t *err)
{
    sy_err_t e = SY_ERR_INIT;
    if (sy_codec_decode(f->c->codec, SY_TYPE_JOB_STATUS, m->payload, m->len, &f->st, &e) != SY_OK)
        return undecodable(f, m, "status event", &e, err);
    const char *status = sy_avro_get_enum(&f->st, "status");
    if (!status)
        return SY_OK;
    rd_kafka_timestamp_type_t tstype;
    long long ts = rd_kafka_message_timestamp(m, &tstype);
    if (sy_client_tracker_add(f->tr, status, sy_avro_get_long(&f->st, "seq", 0),
                              sy_avro_get_long(&f->st, "submitted_at", 0), ts, m->payload,
                              m->len) < 0)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory tracking job %s", f->job_id);
    return SY_OK;
}

static sy_err_code_t on_log_record(follower_t *f, const rd_kafka_message_t *m, sy_err_t *err)
{
    sy_err_t e = SY_ERR_INIT;
    if (sy_codec_decode(f->c->codec, SY_TYPE_JOB_LOG, m->payload, m->len, &f->lg, &e) != SY_OK)
        return undecodable(f, m, "log chunk", &e, err);
    sy_client_track_info_t info;
    sy_client_tracker_info(f->tr, &info);
    if (info.generation != f->generation) { /* a new run: its streams start over */
        sy_client_logpos_t *lp = sy_client_logpos_new();
        if (lp) {
            sy_client_logpos_destroy(f->lp);
            f->lp = lp;
        }
        f->generation = info.generation;
    }
    sy_client_log_t l = {
        .job_id = f->job_id,
        .stream = sy_avro_get_string(&f->lg, "stream"),
        .offset = sy_avro_get_long(&f->lg, "offset", 0),
        .attempt = sy_avro_get_int(&f->lg, "attempt", 1),
        .emitted_at = sy_avro_get_long(&f->lg, "emitted_at", 0),
    };
    if (!l.stream || !sy_avro_get_bytes(&f->lg, "chunk", &l.chunk, &l.len))
        return SY_OK;
    long long skip = sy_client_logpos_accept(f->lp, l.attempt, l.stream, l.offset, l.len);
    if (skip < 0)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    if (skip >= (long long)l.len)
        return SY_OK;
    l.chunk = (const char *)l.chunk + skip;
    l.len -= (size_t)skip;
    l.offset += skip;
    f->out->log_chunks++;
    if (f->o->on_log && f->o->on_log(f->o->opaque, &l))
        f->stopped = true;
    return SY_OK;
}

/* One consumer event. Returns an error only for what makes following impossible. */
static sy_err_code_t on_message(follower_t *f, const rd_kafka_message_t *m, sy_err_t *err)
{
    bool is_status = m->rkt && !strcmp(rd_kafka_topic_name(m->rkt), f->c->t_status);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (is_status)
            f->caught_up = true;
        else
            f->logs_eof = m->offset;
        return SY_OK;
    }
    if (m->err) {
        switch (m->err) {
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
            return sy_err_set(err, SY_ERR_KAFKA, false, "consume: %s", rd_kafka_message_errstr(m));
        default: /* transport trouble: librdkafka reconnects by itself */
            sy_debug("client", "consume: %s", rd_kafka_message_errstr(m));
            return SY_OK;
        }
    }
    f->out->messages_read++;
    if (!is_status) {
        f->logs_next = m->offset + 1;
        f->logs_eof = -1;
    }
    if (!key_is_job(f, m))
        return SY_OK;
    return is_status ? on_status_record(f, m, err) : on_log_record(f, m, err);
}

static void follower_close(follower_t *f)
{
    if (f->rk) {
        rd_kafka_consumer_close(f->rk);
        rd_kafka_destroy(f->rk);
    }
    if (f->st_made)
        avro_value_decref(&f->st);
    if (f->lg_made)
        avro_value_decref(&f->lg);
    sy_client_tracker_destroy(f->tr);
    sy_client_logpos_destroy(f->lp);
    free(f->held);
}

sy_err_code_t sy_client_follow(sy_client_t *c, const char *job_id, const sy_client_follow_opts_t *o,
                               sy_client_outcome_t *out, sy_err_t *errp)
{
    sy_err_t fe = SY_ERR_INIT, *err = &fe; /* never NULL below */
    follower_t f = {.c = c, .job_id = job_id, .o = o, .out = out, .logs_next = -1, .logs_eof = -1};
    sy_err_code_t rc = SY_OK;
    sy_err_t e = SY_ERR_INIT;
    memset(out, 0, sizeof(*out));
    out->exit_code = -1;
    out->status_partition = out->logs_partition = -1;
    if (!sy_client_job_id_valid(job_id, &e)) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s", e.msg);
        goto out;
    }
    f.id_len = strlen(job_id);
    long long lookback = o->lookback_ms > 0 ? o->lookback_ms : SY_CLIENT_LOOKBACK_MS;
    f.from_ms =
        (o->from_ms > 0 ? o->from_ms : sy_time_wall_ms() - lookback) - SY_CLIENT_CLOCK_SKEW_MS;
    if (f.from_ms < 0)
        f.from_ms = 0;
    if (!(f.tr = sy_client_tracker_new(o->submitted_at)) || !(f.lp = sy_client_logpos_new())) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    if ((rc = sy_codec_value_new(c->codec, SY_TYPE_JOB_STATUS, &f.st, err)) != SY_OK)
        goto out;
    f.st_made = true;
    if ((rc = sy_codec_value_new(c->codec, SY_TYPE_JOB_LOG, &f.lg, err)) != SY_OK)
        goto out;
    f.lg_made = true;
    sy_kafka_opts_t kopts = {.group_id = c->follow_group,
                             .read_committed = true,
                             .partition_eof = true,
                             .client_id_suffix = "follow"};
    if (!(f.rk = sy_kafka_new(c->conf, SY_KAFKA_CONSUMER, &kopts, err))) {
        rc = err->code;
        goto out;
    }
    if ((out->status_partition = job_partition(&f, c->t_status, err)) < 0) {
        rc = err->code;
        goto out;
    }
    if ((rc = assign_from(&f, c->t_status, out->status_partition, f.from_ms, err)) != SY_OK)
        goto out;

    for (;;) {
        bool deadline = o->deadline_ms > 0 && sy_time_mono_ms() >= o->deadline_ms;
        if (f.stopped) {
            out->end = SY_CLIENT_END_STOPPED;
            break;
        }
        /* the job has ended: a deadline or interrupt only cuts the log drain short */
        if (drain_done(&f) || (f.held && (deadline || (o->cancelled && o->cancelled(o->opaque))))) {
            deliver_held(&f);
            out->end = sy_client_state_terminal(out->status) ? SY_CLIENT_END_TERMINAL
                                                             : SY_CLIENT_END_CAUGHT_UP;
            break;
        }
        if (deadline) {
            out->end = SY_CLIENT_END_DEADLINE;
            break;
        }
        if (o->cancelled && o->cancelled(o->opaque)) {
            out->end = SY_CLIENT_END_CANCELLED;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(f.rk, POLL_MS);
        if (m) {
            rc = on_message(&f, m, err);
            rd_kafka_message_destroy(m);
            if (rc != SY_OK)
                goto out;
        }
        if ((rc = pump(&f, err)) != SY_OK)
            goto out;
    }
out:
    if (f.tr) {
        sy_client_track_info_t info;
        sy_client_tracker_info(f.tr, &info);
        out->duplicate = info.duplicate;
    }
    follower_close(&f);
    if (rc != SY_OK && errp)
        *errp = fe;
    return rc;
}
