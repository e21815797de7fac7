/* sy_ledger: the job ledger in PostgreSQL (claims, transitions, kills, takeover, roster). */
#include "sy_ledger.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sy_db.h"
#include "sy_log.h"

struct sy_ledger {
    PGconn *conn; /* NULL or broken: reconnected by the next call */
    char *url;
    char session[256];
    char lease[24]; /* ms, as text for the statements */
    char instance_id[160], host[128];
    int pid;
    bool registered;
};

/* ---- States ---------------------------------------------------------------------------------- */

static const char *const state_names[] = {"CLAIMED",   "SUBMITTING", "SUBMITTED", "RUNNING",
                                          "SUCCEEDED", "FAILED",     "KILLED"};
#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))

const char *sy_job_state_name(sy_job_state_t state)
{
    return (unsigned)state < N_STATES ? state_names[state] : "?";
}

int sy_job_state_parse(const char *s)
{
    for (size_t i = 0; s && i < N_STATES; i++)
        if (!strcmp(s, state_names[i]))
            return (int)i;
    return -1;
}

bool sy_job_state_terminal(sy_job_state_t state)
{
    return state == SY_JOB_SUCCEEDED || state == SY_JOB_FAILED || state == SY_JOB_KILLED;
}

/* ---- Log positions --------------------------------------------------------------------------- */

long long sy_ledger_logs_get(const sy_ledger_logs_t *logs, const char *name)
{
    for (size_t i = 0; i < logs->n; i++)
        if (!strcmp(logs->s[i].name, name))
            return logs->s[i].offset;
    return 0;
}

int sy_ledger_logs_slot(sy_ledger_logs_t *logs, const char *name)
{
    for (size_t i = 0; i < logs->n; i++)
        if (!strcmp(logs->s[i].name, name))
            return (int)i;
    size_t len = strlen(name);
    if (logs->n == SY_LEDGER_STREAMS_MAX || len == 0 || len >= SY_LEDGER_STREAM_NAME_MAX)
        return -1;
    memcpy(logs->s[logs->n].name, name, len + 1);
    logs->s[logs->n].offset = 0;
    return (int)logs->n++;
}

long long sy_ledger_logs_total(const sy_ledger_logs_t *logs)
{
    long long t = 0;
    for (size_t i = 0; i < logs->n; i++)
        t += logs->s[i].offset;
    return t;
}

bool sy_ledger_logs_to_json(const sy_ledger_logs_t *logs, char *buf, size_t size)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    for (size_t i = 0; ok && i < logs->n; i++)
        ok = json_object_set_new(o, logs->s[i].name, json_integer(logs->s[i].offset)) == 0;
    size_t n = ok ? json_dumpb(o, buf, size, JSON_COMPACT | JSON_SORT_KEYS) : 0;
    ok = ok && n > 0 && n < size;
    json_decref(o);
    if (size)
        buf[ok ? n : 0] = '\0';
    return ok;
}

sy_err_code_t sy_ledger_logs_from_json(const char *json, sy_ledger_logs_t *logs, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    json_t *o = json ? json_loads(json, 0, NULL) : NULL;
    const char *k;
    json_t *v;
    memset(logs, 0, sizeof(*logs));
    if (!json_is_object(o)) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "log offsets are not a JSON object");
        goto out;
    }
    json_object_foreach(o, k, v)
    {
        int slot = sy_ledger_logs_slot(logs, k);
        if (slot < 0 || !json_is_integer(v) || json_integer_value(v) < 0) {
            rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "log offsets: bad stream \"%.40s\"", k);
            goto out;
        }
        logs->s[slot].offset = (long long)json_integer_value(v);
    }
out:
    if (rc != SY_OK)
        memset(logs, 0, sizeof(*logs));
    json_decref(o);
    return rc;
}

/* ---- Rows ------------------------------------------------------------------------------------ */

void sy_ledger_row_clear(sy_ledger_row_t *row)
{
    if (!row)
        return;
    free(row->routed_job);
    memset(row, 0, sizeof(*row));
}

void sy_ledger_rows_free(sy_ledger_row_t *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++)
        sy_ledger_row_clear(&rows[i]);
    free(rows);
}

#define TERMINAL_SQL  "('SUCCEEDED', 'FAILED', 'KILLED')"
#define IN_FLIGHT_SQL "('CLAIMED', 'SUBMITTING', 'SUBMITTED', 'RUNNING')"

/* Every row-returning statement selects these, with $1 = our session and $2 = the lease (ms). */
#define ROW_COLUMNS                                                                                \
    "job_id, cluster_name, backend_kind, state, coalesce(backend_id, ''), attempt, "               \
    "coalesce(owner, ''), "                                                                        \
    "coalesce(owner = $1 OR EXISTS (SELECT 1 FROM workers w WHERE w.session = jobs.owner AND "     \
    "w.heartbeat_at > now() - $2::bigint * interval '1 millisecond'), false), "                    \
    "next_seq, emitted_seq, log_offsets::text, kill_requested, coalesce(kill_reason, ''), "        \
    "coalesce((extract(epoch FROM timeout_at) * 1000)::bigint, 0), exit_code, "                    \
    "coalesce(failure_reason, ''), coalesce(message, ''), routed_job::text, source_topic, "        \
    "source_partition, source_offset"

static void copy_field(char *dst, size_t size, const PGresult *res, int r, int c)
{
    snprintf(dst, size, "%s", PQgetvalue(res, r, c));
}

static sy_err_code_t parse_row(const PGresult *res, int r, sy_ledger_row_t *row, sy_err_t *err)
{
    sy_ledger_row_clear(row);
    int c = 0;
    copy_field(row->job_id, sizeof(row->job_id), res, r, c++);
    copy_field(row->cluster_name, sizeof(row->cluster_name), res, r, c++);
    copy_field(row->backend_kind, sizeof(row->backend_kind), res, r, c++);
    int st = sy_job_state_parse(PQgetvalue(res, r, c++));
    if (st < 0)
        return sy_err_set(err, SY_ERR_DATABASE, false, "job %s: unknown state in the ledger",
                          row->job_id);
    row->state = (sy_job_state_t)st;
    copy_field(row->backend_id, sizeof(row->backend_id), res, r, c++);
    row->attempt = atoi(PQgetvalue(res, r, c++));
    copy_field(row->owner, sizeof(row->owner), res, r, c++);
    row->owner_alive = PQgetvalue(res, r, c++)[0] == 't';
    row->next_seq = atoll(PQgetvalue(res, r, c++));
    row->emitted_seq = atoll(PQgetvalue(res, r, c++));
    sy_err_t ignored = SY_ERR_INIT;
    if (sy_ledger_logs_from_json(PQgetvalue(res, r, c++), &row->logs, &ignored) != SY_OK)
        sy_warn("ledger", "job %s: %s; starting from 0", row->job_id, ignored.msg);
    row->kill_requested = PQgetvalue(res, r, c++)[0] == 't';
    copy_field(row->kill_reason, sizeof(row->kill_reason), res, r, c++);
    row->timeout_at_ms = atoll(PQgetvalue(res, r, c++));
    row->has_exit_code = !PQgetisnull(res, r, c);
    row->exit_code = row->has_exit_code ? atoi(PQgetvalue(res, r, c)) : 0;
    c++;
    copy_field(row->failure_reason, sizeof(row->failure_reason), res, r, c++);
    copy_field(row->message, sizeof(row->message), res, r, c++);
    row->routed_job = strdup(PQgetvalue(res, r, c++));
    copy_field(row->source_topic, sizeof(row->source_topic), res, r, c++);
    row->source_partition = (int32_t)atol(PQgetvalue(res, r, c++));
    row->source_offset = (int64_t)atoll(PQgetvalue(res, r, c++));
    if (!row->routed_job)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    return SY_OK;
}

static sy_err_code_t parse_rows(const PGresult *res, sy_ledger_row_t **rows, size_t *n,
                                sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    size_t count = (size_t)PQntuples(res);
    sy_ledger_row_t *out = NULL;
    *rows = NULL;
    *n = 0;
    if (count == 0)
        return SY_OK;
    if (!(out = calloc(count, sizeof(*out)))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < count; i++)
        if ((rc = parse_row(res, (int)i, &out[i], err)) != SY_OK)
            goto out;
    *rows = out;
    *n = count;
    out = NULL; /* now owned by the caller */
out:
    sy_ledger_rows_free(out, count);
    return rc;
}

/* ---- Connection ------------------------------------------------------------------------------ */

/* The connection, reconnected if it was lost. */
static sy_err_code_t conn_of(sy_ledger_t *l, PGconn **conn, sy_err_t *err)
{
    if (l->conn && PQstatus(l->conn) != CONNECTION_OK) {
        sy_warn("ledger", "connection to PostgreSQL lost; reconnecting");
        sy_db_close(l->conn);
        l->conn = NULL;
    }
    if (!l->conn && sy_db_connect(l->url, 0, &l->conn, err) != SY_OK)
        return err->code;
    *conn = l->conn;
    return SY_OK;
}

/* Runs sql with params ($1 = session and $2 = lease come first when with_identity). */
static sy_err_code_t exec(sy_ledger_t *l, const char *sql, bool with_identity, int n,
                          const char *const *params, PGresult **res, sy_err_t *err)
{
    const char *all[16];
    PGconn *conn;
    int k = 0;
    if (conn_of(l, &conn, err) != SY_OK)
        return err->code;
    if (with_identity) {
        all[k++] = l->session;
        all[k++] = l->lease;
    }
    for (int i = 0; i < n && k < 16; i++)
        all[k++] = params[i];
    return sy_db_exec(conn, sql, k, all, res, err);
}

/* One row (or SY_ERR_NOT_FOUND) from a row-returning statement. */
static sy_err_code_t exec_row(sy_ledger_t *l, const char *sql, int n, const char *const *params,
                              sy_ledger_row_t *row, sy_err_t *err)
{
    PGresult *res = NULL;
    sy_err_code_t rc = exec(l, sql, true, n, params, &res, err);
    if (rc != SY_OK)
        goto out;
    if (PQntuples(res) == 0) {
        rc = sy_err_set(err, SY_ERR_NOT_FOUND, false, "no such job");
        goto out;
    }
    rc = parse_row(res, 0, row, err);
out:
    PQclear(res);
    return rc;
}

static sy_err_code_t exec_rows(sy_ledger_t *l, const char *sql, int n, const char *const *params,
                               sy_ledger_row_t **rows, size_t *n_rows, sy_err_t *err)
{
    PGresult *res = NULL;
    *rows = NULL;
    *n_rows = 0;
    sy_err_code_t rc = exec(l, sql, true, n, params, &res, err);
    if (rc == SY_OK)
        rc = parse_rows(res, rows, n_rows, err);
    PQclear(res);
    return rc;
}

sy_ledger_t *sy_ledger_open(const char *url, const char *session, long long lease_ms, sy_err_t *err)
{
    sy_ledger_t *l = calloc(1, sizeof(*l));
    if (!l || !(l->url = strdup(url ? url : ""))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto fail;
    }
    snprintf(l->session, sizeof(l->session), "%s", session);
    snprintf(l->lease, sizeof(l->lease), "%lld", lease_ms);
    if (sy_db_connect(l->url, 0, &l->conn, err) != SY_OK ||
        sy_db_check_version(l->conn, SY_LEDGER_SCHEMA_VERSION, err) != SY_OK)
        goto fail;
    return l;
fail:
    sy_ledger_close(l);
    return NULL;
}

void sy_ledger_close(sy_ledger_t *l)
{
    if (!l)
        return;
    sy_db_close(l->conn);
    free(l->url);
    free(l);
}

const char *sy_ledger_session(const sy_ledger_t *l)
{
    return l->session;
}

/* ---- Worker roster --------------------------------------------------------------------------- */

static sy_err_code_t insert_session(sy_ledger_t *l, sy_err_t *err)
{
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", l->pid);
    const char *p[] = {l->session, l->instance_id, l->host, pid};
    return exec(l,
                "INSERT INTO workers (session, instance_id, host, pid) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (session) DO UPDATE SET heartbeat_at = now()",
                false, 4, p, NULL, err);
}

sy_err_code_t sy_ledger_worker_register(sy_ledger_t *l, const char *instance_id, const char *host,
                                        int pid, sy_err_t *err)
{
    PGresult *res = NULL;
    sy_err_code_t rc;
    snprintf(l->instance_id, sizeof(l->instance_id), "%s", instance_id);
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->pid = pid;
    /* sessions of this instance on this host that cannot be running any more */
    const char *p[] = {l->instance_id, l->host, l->session};
    if ((rc = exec(l,
                   "SELECT session, pid FROM workers WHERE instance_id = $1 AND host = $2 "
                   "AND session <> $3",
                   false, 3, p, &res, err)) != SY_OK)
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        int old = atoi(PQgetvalue(res, i, 1));
        if (old != pid && (kill(old, 0) == 0 || errno != ESRCH))
            continue;
        const char *d[] = {PQgetvalue(res, i, 0)};
        sy_info("ledger", "removing session %s from the roster: its process is gone", d[0]);
        if ((rc = exec(l, "DELETE FROM workers WHERE session = $1", false, 1, d, NULL, err)) !=
            SY_OK)
            goto out;
    }
    if ((rc = exec(l, "DELETE FROM workers WHERE heartbeat_at < now() - interval '7 days'", false,
                   0, NULL, NULL, err)) != SY_OK ||
        (rc = insert_session(l, err)) != SY_OK)
        goto out;
    l->registered = true;
out:
    PQclear(res);
    return rc;
}

sy_err_code_t sy_ledger_worker_heartbeat(sy_ledger_t *l, sy_err_t *err)
{
    PGresult *res = NULL;
    const char *p[] = {l->session};
    sy_err_code_t rc = exec(l, "UPDATE workers SET heartbeat_at = now() WHERE session = $1", false,
                            1, p, &res, err);
    if (rc == SY_OK && l->registered && atoi(PQcmdTuples(res)) == 0) {
        sy_warn("ledger", "session %s was missing from the roster; registering again", l->session);
        rc = insert_session(l, err);
    }
    PQclear(res);
    return rc;
}

sy_err_code_t sy_ledger_worker_unregister(sy_ledger_t *l, sy_err_t *err)
{
    const char *p[] = {l->session};
    l->registered = false;
    return exec(l, "DELETE FROM workers WHERE session = $1", false, 1, p, NULL, err);
}

/* ---- Claiming -------------------------------------------------------------------------------- */

sy_err_code_t sy_ledger_claim(sy_ledger_t *l, const sy_ledger_claim_t *c,
                              sy_ledger_claim_result_t *result, sy_ledger_row_t *row, sy_err_t *err)
{
    PGresult *res = NULL;
    PGconn *conn;
    sy_err_code_t rc;
    char attempt[16], part[16], off[24], max[16], first[24];
    snprintf(attempt, sizeof(attempt), "%d", c->attempt > 0 ? c->attempt : 1);
    snprintf(part, sizeof(part), "%" PRId32, c->source_partition);
    snprintf(off, sizeof(off), "%" PRId64, c->source_offset);
    snprintf(max, sizeof(max), "%d", c->max_in_flight);
    snprintf(first, sizeof(first), "%d", SY_LEDGER_FIRST_SEQ + 1);
    const char *id[] = {c->job_id};
    if ((rc = conn_of(l, &conn, err)) != SY_OK || (rc = sy_db_begin(conn, NULL, err)) != SY_OK)
        return rc;
    if (c->max_in_flight > 0) {
        const char *p[] = {c->cluster_name};
        if ((rc = exec(l,
                       "SELECT pg_advisory_xact_lock(hashtextextended("
                       "'switchyard.cluster:' || $1, 0))",
                       false, 1, p, NULL, err)) != SY_OK)
            goto out;
    }
    rc = exec_row(l, "SELECT " ROW_COLUMNS " FROM jobs WHERE job_id = $3", 1, id, row, err);
    if (rc == SY_OK) {
        *result = SY_LEDGER_EXISTS;
        goto out;
    }
    if (rc != SY_ERR_NOT_FOUND)
        goto out;
    sy_err_clear(err);
    if (c->max_in_flight > 0) {
        const char *p[] = {c->cluster_name, max};
        if ((rc = exec(l,
                       "SELECT count(*) >= $2::int FROM jobs WHERE cluster_name = $1 AND state "
                       "IN " IN_FLIGHT_SQL,
                       false, 2, p, &res, err)) != SY_OK)
            goto out;
        if (PQgetvalue(res, 0, 0)[0] == 't') {
            *result = SY_LEDGER_AT_CAPACITY;
            goto out;
        }
    }
    const char *ins[] = {c->job_id, c->cluster_name,    c->backend_kind, attempt,
                         first,     c->routed_job_json, c->source_topic, part,
                         off,       c->message};
    rc = exec_row(
        l,
        "INSERT INTO jobs (job_id, cluster_name, backend_kind, state, attempt, owner, "
        "next_seq, routed_job, source_topic, source_partition, source_offset, message) "
        "VALUES ($3, $4, $5, 'CLAIMED', $6::int, $1, $7::bigint, $8::jsonb, $9, "
        "$10::int, $11::bigint, $12) ON CONFLICT (job_id) DO NOTHING RETURNING " ROW_COLUMNS,
        10, ins, row, err);
    if (rc == SY_OK) {
        *result = SY_LEDGER_CLAIMED;
    } else if (rc == SY_ERR_NOT_FOUND) { /* inserted by someone else meanwhile */
        sy_err_clear(err);
        if ((rc = exec_row(l, "SELECT " ROW_COLUMNS " FROM jobs WHERE job_id = $3", 1, id, row,
                           err)) == SY_OK)
            *result = SY_LEDGER_EXISTS;
    }
out:
    PQclear(res);
    if (rc == SY_OK)
        rc = sy_db_commit(conn, err);
    if (rc != SY_OK)
        sy_db_rollback(conn);
    return rc;
}

/* ---- Transitions ----------------------------------------------------------------------------- */

/* After a compare-and-set matched no row: says why (no such job, another owner, ended). */
static sy_err_code_t why_not_ours(sy_ledger_t *l, const char *job_id, sy_err_t *err)
{
    sy_ledger_row_t row = {0};
    const char *p[] = {job_id};
    sy_err_code_t rc =
        exec_row(l, "SELECT " ROW_COLUMNS " FROM jobs WHERE job_id = $3", 1, p, &row, err);
    if (rc == SY_ERR_NOT_FOUND)
        rc = sy_err_set(err, SY_ERR_NOT_FOUND, false, "job %s is not in the ledger", job_id);
    else if (rc == SY_OK && strcmp(row.owner, l->session))
        rc = sy_err_set(err, SY_ERR_CONFLICT, false, "job %s is owned by %s now", job_id,
                        *row.owner ? row.owner : "nobody");
    else if (rc == SY_OK)
        rc = sy_err_set(err, SY_ERR_CONFLICT, false, "job %s has already ended (%s)", job_id,
                        sy_job_state_name(row.state));
    sy_ledger_row_clear(&row);
    return rc;
}

sy_err_code_t sy_ledger_transition(sy_ledger_t *l, const char *job_id, const sy_ledger_change_t *ch,
                                   sy_ledger_result_t *out, sy_err_t *err)
{
    PGresult *res = NULL;
    char timeout[24], exit_code[16], logs[1024];
    snprintf(timeout, sizeof(timeout), "%lld", ch->timeout_at_ms > 0 ? ch->timeout_at_ms : 0);
    snprintf(exit_code, sizeof(exit_code), "%d", ch->exit_code);
    if (ch->logs && !sy_ledger_logs_to_json(ch->logs, logs, sizeof(logs)))
        return sy_err_set(err, SY_ERR_INTERNAL, false, "log offsets do not fit");
    const char *p[] = {l->session,
                       job_id,
                       sy_job_state_name(ch->state),
                       ch->emit ? "1" : "0",
                       ch->backend_id,
                       timeout,
                       ch->has_exit_code ? exit_code : NULL,
                       ch->failure_reason,
                       ch->message,
                       ch->logs ? logs : NULL};
    sy_err_code_t rc =
        exec(l,
             "UPDATE jobs SET state = $3, next_seq = next_seq + $4::int, "
             "backend_id = coalesce($5, backend_id), "
             "timeout_at = CASE WHEN $6::bigint > 0 THEN to_timestamp($6::bigint / 1000.0) "
             "ELSE timeout_at END, "
             "exit_code = $7::int, failure_reason = $8, message = $9, "
             "log_offsets = coalesce($10::jsonb, log_offsets), updated_at = now(), "
             "finished_at = CASE WHEN $3 IN " TERMINAL_SQL " THEN now() END "
             "WHERE job_id = $2 AND owner = $1 AND state NOT IN " TERMINAL_SQL " "
             "RETURNING next_seq - 1, kill_requested, coalesce(kill_reason, '')",
             false, 10, p, &res, err);
    if (rc != SY_OK)
        goto out;
    if (PQntuples(res) == 0) {
        rc = why_not_ours(l, job_id, err);
        goto out;
    }
    if (out) {
        out->seq = ch->emit ? atoll(PQgetvalue(res, 0, 0)) : 0;
        out->kill_requested = PQgetvalue(res, 0, 1)[0] == 't';
        snprintf(out->kill_reason, sizeof(out->kill_reason), "%s", PQgetvalue(res, 0, 2));
    }
out:
    PQclear(res);
    return rc;
}

sy_err_code_t sy_ledger_set_emitted(sy_ledger_t *l, const char *job_id, long long seq,
                                    sy_err_t *err)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", seq);
    const char *p[] = {job_id, s};
    return exec(l,
                "UPDATE jobs SET emitted_seq = GREATEST(emitted_seq, $2::bigint) "
                "WHERE job_id = $1",
                false, 2, p, NULL, err);
}

sy_err_code_t sy_ledger_save_logs(sy_ledger_t *l, const char *job_id, const sy_ledger_logs_t *logs,
                                  sy_err_t *err)
{
    PGresult *res = NULL;
    char json[1024];
    if (!sy_ledger_logs_to_json(logs, json, sizeof(json)))
        return sy_err_set(err, SY_ERR_INTERNAL, false, "log offsets do not fit");
    const char *p[] = {l->session, job_id, json};
    sy_err_code_t rc = exec(l,
                            "UPDATE jobs SET log_offsets = $3::jsonb, updated_at = now() "
                            "WHERE job_id = $2 AND owner = $1",
                            false, 3, p, &res, err);
    if (rc == SY_OK && atoi(PQcmdTuples(res)) == 0)
        rc = why_not_ours(l, job_id, err);
    PQclear(res);
    return rc;
}

/* ---- Kills ----------------------------------------------------------------------------------- */

sy_err_code_t sy_ledger_request_kill(sy_ledger_t *l, const char *job_id, const char *reason,
                                     sy_ledger_row_t *row, sy_err_t *err)
{
    const char *p[] = {job_id, reason};
    sy_err_code_t rc =
        exec_row(l,
                 "UPDATE jobs SET kill_requested = true, "
                 "kill_reason = coalesce(kill_reason, $4), updated_at = now() "
                 "WHERE job_id = $3 AND state NOT IN " TERMINAL_SQL " RETURNING " ROW_COLUMNS,
                 2, p, row, err);
    if (rc == SY_ERR_NOT_FOUND) { /* unknown, or already ended */
        sy_err_clear(err);
        rc = sy_ledger_get(l, job_id, row, err);
    }
    return rc;
}

sy_err_code_t sy_ledger_list_kills(sy_ledger_t *l, sy_ledger_row_t **rows, size_t *n, sy_err_t *err)
{
    return exec_rows(l,
                     "SELECT " ROW_COLUMNS " FROM jobs WHERE owner = $1 AND kill_requested "
                     "AND state NOT IN " TERMINAL_SQL,
                     0, NULL, rows, n, err);
}

/* ---- Takeover -------------------------------------------------------------------------------- */

sy_err_code_t sy_ledger_list_open(sy_ledger_t *l, const char *topic, const int32_t *parts,
                                  size_t n_parts, sy_ledger_row_t **rows, size_t *n, sy_err_t *err)
{
    size_t size = 2 + n_parts * 12;
    char *arr = malloc(size);
    sy_err_code_t rc;
    if (!arr)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    size_t len = (size_t)snprintf(arr, size, "{");
    for (size_t i = 0; i < n_parts; i++)
        len += (size_t)snprintf(arr + len, size - len, "%s%" PRId32, i ? "," : "", parts[i]);
    snprintf(arr + len, size - len, "}");
    const char *p[] = {topic, arr};
    rc = exec_rows(l,
                   "SELECT " ROW_COLUMNS " FROM jobs WHERE source_topic = $3 AND "
                   "source_partition = ANY ($4::int[]) AND (state NOT IN " TERMINAL_SQL
                   " OR emitted_seq < next_seq - 1) ORDER BY source_partition, source_offset",
                   2, p, rows, n, err);
    free(arr);
    return rc;
}

sy_err_code_t sy_ledger_adopt(sy_ledger_t *l, const char *job_id, const char *expected_owner,
                              sy_ledger_row_t *row, sy_err_t *err)
{
    const char *p[] = {job_id, expected_owner ? expected_owner : ""};
    sy_err_code_t rc = exec_row(l,
                                "UPDATE jobs SET owner = $1, updated_at = now() "
                                "WHERE job_id = $3 AND coalesce(owner, '') = $4 "
                                "RETURNING " ROW_COLUMNS,
                                2, p, row, err);
    if (rc == SY_ERR_NOT_FOUND)
        rc = sy_err_set(err, SY_ERR_CONFLICT, false,
                        "job %s: its owner changed before we could take it over", job_id);
    return rc;
}

sy_err_code_t sy_ledger_get(sy_ledger_t *l, const char *job_id, sy_ledger_row_t *row, sy_err_t *err)
{
    const char *p[] = {job_id};
    sy_err_code_t rc =
        exec_row(l, "SELECT " ROW_COLUMNS " FROM jobs WHERE job_id = $3", 1, p, row, err);
    if (rc == SY_ERR_NOT_FOUND)
        rc = sy_err_set(err, SY_ERR_NOT_FOUND, false, "job %s is not in the ledger", job_id);
    return rc;
}
