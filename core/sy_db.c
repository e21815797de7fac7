/* sy_db: PostgreSQL access shared by every binary — connect, parameterized statements,
 * transactions, versioned migrations, and LISTEN/NOTIFY. */
#include "sy_time.h"
#include "sy_db.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sy_log.h"

/* Key of the session advisory lock that serialises migrators ("SYMIGRAT" in ASCII). */
#define MIGRATE_LOCK_KEY "6003089446580012372"

/* ---- Connections ------------------------------------------------------------------------- */

/* Makes a libpq message fit for an error or a log line: one line, no trailing newline, the
 * password (if we know it) and anything that looks like a secret masked. With strip_quoted,
 * every "..." span is replaced by "..." too: libpq's connection-string parse errors quote the
 * offending fragment, which may be part of the password. */
static void scrub(char *msg, size_t size, const char *password, bool strip_quoted)
{
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
    size_t n = strlen(msg);
    while (n && msg[n - 1] == ' ')
        msg[--n] = '\0';
    if (password && strlen(password) >= 3) {
        size_t plen = strlen(password);
        for (char *hit = strstr(msg, password); hit; hit = strstr(hit + 3, password)) {
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + plen, strlen(hit + plen) + 1);
        }
    }
    if (strip_quoted) {
        char *copy = strdup(msg);
        size_t w = 0;
        bool in = false;
        for (const char *r = copy ? copy : ""; *r && w + 6 < size; r++) {
            if (*r == '"') {
                if (!in) {
                    memcpy(msg + w, "\"...\"", 5);
                    w += 5;
                }
                in = !in;
            } else if (!in) {
                msg[w++] = *r;
            }
        }
        msg[w] = '\0';
        free(copy);
    }
    sy_log_redact(msg);
}

/* libpq prints notices (e.g. "relation already exists, skipping") on stderr by default; ours go
 * to the debug log instead. */
static void notice_cb(void *arg, const char *message)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", message);
    scrub(buf, sizeof(buf), NULL, false);
    sy_debug("db", "server notice: %s", buf);
}

/* Whether a failed connection attempt may succeed later. libpq gives no SQLSTATE for these, so
 * this reads its message: no answer at all (refused, timeout, unknown host) or a server that is
 * starting, stopping, recovering or full is worth retrying; a server that answered FATAL for any
 * other reason (authentication, no such role or database, pg_hba) will say the same again. */
static bool connect_failure_retriable(const char *msg)
{
    static const char *const transient[] = {
        "starting up", "shutting down", "recovery", "too many", "remaining connection slots", NULL};
    if (!strstr(msg, "FATAL:"))
        return true;
    for (const char *const *t = transient; *t; t++)
        if (strstr(msg, *t))
            return true;
    return false;
}

/* Whether a failed connection attempt was refused — our password or role not accepted, or
 * TLS not possible as the URL demands (the server's certificate not trusted or not for this
 * host, no TLS on the server, a root certificate file missing) — rather than not answered.
 * Such a failure is SY_ERR_AUTH: trying again will not help until the configuration changes. */
static bool connect_failure_refused(const char *msg)
{
    static const char *const refused[] = {
        "authentication failed", /* FATAL: password authentication failed for user "x" */
        "pg_hba.conf",           /* FATAL: pg_hba.conf rejects ..., no pg_hba.conf entry */
        "no password supplied",  /* fe_sendauth: the URL has no password, the server wants one */
        "certificate",           /* SSL error: certificate verify failed; server certificate for
                                  * "x" does not match host name "y"; root certificate file ... */
        "does not support SSL",  /* sslmode=require against a server without TLS */
        "alert",                 /* SSL error: tlsv1 alert ...: the server refused our TLS */
        NULL};
    for (const char *const *r = refused; *r; r++)
        if (strstr(msg, *r))
            return true;
    return false;
}

sy_err_code_t sy_db_connect_to(const char *url, const char *dbname, int connect_timeout_s,
                               PGconn **out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    PQconninfoOption *parsed = NULL;
    PGconn *conn = NULL;
    char *perr = NULL;
    const char *password = NULL;
    char timeout[16], msg[sizeof(err->msg)];
    *out = NULL;
    if (!url || !*url) {
        rc = sy_err_set(err, SY_ERR_CONFIG, false,
                        "database.url is not set (set it in the config file, with -X "
                        "database.url=... or SWITCHYARD_DATABASE_URL)");
        goto out;
    }
    /* Parse first: a malformed URL gets a clear error, and we learn the password so that we can
     * make sure it never shows up in a message. */
    parsed = PQconninfoParse(url, &perr);
    if (!parsed) {
        snprintf(msg, sizeof(msg), "%s", perr ? perr : "out of memory");
        scrub(msg, sizeof(msg), NULL, true);
        rc = sy_err_set(err, SY_ERR_CONFIG, false, "database.url does not parse: %s", msg);
        goto out;
    }
    for (PQconninfoOption *o = parsed; o->keyword; o++)
        if (!strcmp(o->keyword, "password") && o->val && *o->val)
            password = o->val;

    snprintf(timeout, sizeof(timeout), "%d",
             connect_timeout_s > 0 ? connect_timeout_s : SY_DB_CONNECT_TIMEOUT_S);
    /* Later entries win; only the first dbname is expanded as a connection string. So our
     * defaults come first, the URL overrides them, and an explicit dbname overrides the URL. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", "dbname", NULL};
    const char *vals[] = {timeout, "switchyard", url, dbname, NULL};
    if (!dbname)
        keys[3] = NULL;
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory connecting to PostgreSQL");
        goto out;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        scrub(msg, sizeof(msg), password, false);
        if (connect_failure_refused(msg))
            rc = sy_err_set(err, SY_ERR_AUTH, false, "PostgreSQL refused the connection: %s", msg);
        else
            rc = sy_err_set(err, SY_ERR_DATABASE, connect_failure_retriable(msg),
                            "cannot connect to PostgreSQL: %s", msg);
        goto out;
    }
    PQsetNoticeProcessor(conn, notice_cb, NULL);
    *out = conn;
    conn = NULL; /* now owned by the caller */
out:
    PQfinish(conn);
    PQconninfoFree(parsed);
    PQfreemem(perr);
    return rc;
}

sy_err_code_t sy_db_connect(const char *url, int connect_timeout_s, PGconn **out, sy_err_t *err)
{
    return sy_db_connect_to(url, NULL, connect_timeout_s, out, err);
}

void sy_db_close(PGconn *conn)
{
    if (conn)
        PQfinish(conn);
}

const char *sy_db_describe(PGconn *conn, char *buf, size_t size)
{
    if (!conn) {
        snprintf(buf, size, "(not connected)");
        return buf;
    }
    const char *host = PQhost(conn), *port = PQport(conn), *db = PQdb(conn);
    snprintf(buf, size, "%s:%s/%s", host ? host : "?", port ? port : "?", db ? db : "?");
    return buf;
}

/* ---- Statements --------------------------------------------------------------------------- */

/* Fills err from a failed result (or the connection's error when res is NULL). */
static sy_err_code_t result_error(PGconn *conn, const PGresult *res, sy_err_t *err)
{
    char msg[400];
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(msg, sizeof(msg), "%s", primary ? primary : PQerrorMessage(conn));
    scrub(msg, sizeof(msg), NULL, false);
    if (!*msg)
        snprintf(msg, sizeof(msg), "unknown error");
    if (!state)
        state = "";
    sy_err_code_t code = SY_ERR_DATABASE;
    bool retriable = false;
    if (PQstatus(conn) != CONNECTION_OK || !strncmp(state, "08", 2)) {
        retriable = true; /* connection lost: a new connection may succeed */
    } else if (!strcmp(state, "23505") || !strcmp(state, "23503")) {
        code = SY_ERR_CONFLICT;
    } else if (!strcmp(state, "23514") || !strncmp(state, "22", 2)) {
        code = SY_ERR_INVALID_ARG;
    } else if (!strcmp(state, "55P03") || !strcmp(state, "57014")) {
        code = SY_ERR_TIMEOUT;
        retriable = true;
    } else if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strncmp(state, "57P", 3) ||
               !strcmp(state, "53300")) {
        retriable = true;
    }
    if (*state)
        return sy_err_set(err, code, retriable, "%s (SQLSTATE %s)", msg, state);
    return sy_err_set(err, code, retriable, "%s", msg);
}

static bool result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

sy_err_code_t sy_db_exec(PGconn *conn, const char *sql, int n_params, const char *const *params,
                         PGresult **res, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    PGresult *r = PQexecParams(conn, sql, n_params, NULL, params, NULL, NULL, 0);
    if (res)
        *res = NULL;
    if (!r || !result_ok(r)) {
        rc = result_error(conn, r, err);
        goto out;
    }
    if (res) {
        *res = r;
        r = NULL; /* now owned by the caller */
    }
out:
    PQclear(r);
    return rc;
}

sy_err_code_t sy_db_exec_script(PGconn *conn, const char *sql, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    PGresult *r = PQexec(conn, sql);
    if (!r || !result_ok(r))
        rc = result_error(conn, r, err);
    PQclear(r);
    return rc;
}

sy_err_code_t sy_db_begin(PGconn *conn, const char *mode, sy_err_t *err)
{
    char sql[128];
    if (PQstatus(conn) != CONNECTION_OK)
        return sy_err_set(err, SY_ERR_DATABASE, true, "connection to PostgreSQL lost");
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return sy_err_set(err, SY_ERR_INTERNAL, false, "connection is already in a transaction");
    snprintf(sql, sizeof(sql), "BEGIN%s%s", mode ? " " : "", mode ? mode : "");
    return sy_db_exec(conn, sql, 0, NULL, NULL, err);
}

sy_err_code_t sy_db_commit(PGconn *conn, sy_err_t *err)
{
    return sy_db_exec(conn, "COMMIT", 0, NULL, NULL, err);
}

void sy_db_rollback(PGconn *conn)
{
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(conn);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
        PQclear(PQexec(conn, "ROLLBACK"));
}

/* ---- Migrations ---------------------------------------------------------------------------- */

int sy_db_latest_version(void)
{
    return sy_db_migration_count > 0 ? sy_db_migrations[sy_db_migration_count - 1].version : 0;
}

sy_err_code_t sy_db_schema_version(PGconn *conn, int *version, sy_err_t *err)
{
    sy_err_code_t rc;
    PGresult *res = NULL;
    *version = 0;
    rc =
        sy_db_exec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, &res, err);
    if (rc != SY_OK)
        goto out;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        goto out; /* never migrated */
    PQclear(res);
    rc = sy_db_exec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL, &res,
                    err);
    if (rc != SY_OK)
        goto out;
    *version = atoi(PQgetvalue(res, 0, 0));
out:
    PQclear(res);
    return rc;
}

sy_err_code_t sy_db_check_version(PGconn *conn, int required, sy_err_t *err)
{
    int version = 0;
    sy_err_code_t rc = sy_db_schema_version(conn, &version, err);
    if (rc != SY_OK)
        return rc;
    if (version >= required)
        return SY_OK;
    if (version == 0)
        return sy_err_set(err, SY_ERR_CONFIG, false,
                          "the database has no Switchyard schema yet (version 0, this program "
                          "needs version %d or later): run switchyard admin migrate",
                          required);
    return sy_err_set(err, SY_ERR_CONFIG, false,
                      "the database schema is at version %d, this program needs version %d or "
                      "later: run switchyard admin migrate",
                      version, required);
}

/* Applies one migration and records it, in one transaction. */
static sy_err_code_t apply_one(PGconn *conn, const sy_db_migration_t *m, sy_err_t *err)
{
    sy_err_code_t rc;
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name, m->sha256};
    rc = sy_db_begin(conn, NULL, err);
    if (rc != SY_OK)
        goto out;
    rc = sy_db_exec_script(conn, m->sql, err);
    if (rc != SY_OK)
        goto out;
    rc = sy_db_exec(conn,
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)", 3,
                    params, NULL, err);
    if (rc != SY_OK)
        goto out;
    rc = sy_db_commit(conn, err);
out:
    if (rc != SY_OK) {
        sy_db_rollback(conn);
        sy_err_prefix(err, "migration %s", m->file);
    }
    return rc;
}

sy_err_code_t sy_db_migrate(PGconn *conn, int *from, int *to, sy_err_t *err)
{
    sy_err_code_t rc;
    PGresult *res = NULL;
    bool locked = false;
    int version = 0;
    const char *lock_params[] = {MIGRATE_LOCK_KEY};
    if (from)
        *from = 0;
    if (to)
        *to = 0;
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        rc = sy_err_set(err, SY_ERR_INTERNAL, false,
                        "migrate needs a connection that is not in a transaction");
        goto out;
    }
    /* Session lock, held across the per-migration transactions: a second migrator waits here
     * and then finds everything applied. */
    rc = sy_db_exec(conn, "SELECT pg_advisory_lock($1::bigint)", 1, lock_params, NULL, err);
    if (rc != SY_OK)
        goto out;
    locked = true;
    rc = sy_db_schema_version(conn, &version, err);
    if (rc != SY_OK)
        goto out;
    if (from)
        *from = version;
    if (version == 0) {
        rc = sy_db_exec(conn,
                        "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " version integer PRIMARY KEY,"
                        " name text NOT NULL,"
                        " sha256 text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now())",
                        0, NULL, NULL, err);
        if (rc != SY_OK)
            goto out;
    }
    rc = sy_db_exec(conn, "SELECT version, sha256 FROM schema_migrations ORDER BY version", 0, NULL,
                    &res, err);
    if (rc != SY_OK)
        goto out;
    int n_applied = PQntuples(res);
    for (int i = 0; i < sy_db_migration_count; i++) {
        const sy_db_migration_t *m = &sy_db_migrations[i];
        const char *recorded = NULL;
        for (int r = 0; r < n_applied; r++)
            if (atoi(PQgetvalue(res, r, 0)) == m->version)
                recorded = PQgetvalue(res, r, 1);
        if (recorded) {
            if (strcmp(recorded, m->sha256) != 0) {
                rc = sy_err_set(err, SY_ERR_CONFLICT, false,
                                "migration %s was changed after it was applied (recorded sha256 "
                                "%.12s..., this binary has %.12s...); add a new migration "
                                "instead of editing a released one",
                                m->file, recorded, m->sha256);
                goto out;
            }
            continue;
        }
        sy_info("db", "applying migration %s", m->file);
        rc = apply_one(conn, m, err);
        if (rc != SY_OK)
            goto out;
        if (m->version > version)
            version = m->version;
    }
    if (version > sy_db_latest_version())
        sy_warn("db", "database schema version %d is newer than this binary's (%d)", version,
                sy_db_latest_version());
    if (to)
        *to = version;
out:
    PQclear(res);
    if (locked) {
        sy_db_rollback(conn);
        sy_err_t ignore = SY_ERR_INIT;
        sy_db_exec(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, lock_params, NULL, &ignore);
    }
    return rc;
}

/* ---- LISTEN / NOTIFY -------------------------------------------------------------------- */

static bool channel_valid(const char *channel)
{
    size_t n = channel ? strlen(channel) : 0;
    if (n == 0 || n > 63 || !(islower((unsigned char)channel[0]) || channel[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)channel[i]) || isdigit((unsigned char)channel[i]) ||
              channel[i] == '_'))
            return false;
    return true;
}

sy_err_code_t sy_db_listen(PGconn *conn, const char *channel, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    char *quoted = NULL, *sql = NULL;
    if (!channel_valid(channel)) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false,
                        "channel name must be a lower-case identifier of at most 63 characters");
        goto out;
    }
    /* LISTEN takes an identifier, not a parameter: validated above and quoted by libpq. */
    quoted = PQescapeIdentifier(conn, channel, strlen(channel));
    if (!quoted || asprintf(&sql, "LISTEN %s", quoted) < 0) {
        sql = NULL;
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    rc = sy_db_exec(conn, sql, 0, NULL, NULL, err);
out:
    PQfreemem(quoted);
    free(sql);
    return rc;
}

sy_err_code_t sy_db_notify(PGconn *conn, const char *channel, const char *payload, sy_err_t *err)
{
    const char *params[] = {channel, payload ? payload : ""};
    return sy_db_exec(conn, "SELECT pg_notify($1, $2)", 2, params, NULL, err);
}

sy_err_code_t sy_db_wait_notification(PGconn *conn, int timeout_ms, PGnotify **out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    long long deadline = timeout_ms >= 0 ? sy_time_mono_ms() + timeout_ms : 0;
    *out = NULL;
    for (;;) {
        /* Read whatever already arrived, then look at libpq's queue. */
        if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK) {
            char msg[300];
            snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
            scrub(msg, sizeof(msg), NULL, false);
            rc = sy_err_set(err, SY_ERR_DATABASE, true, "connection to PostgreSQL lost: %s", msg);
            goto out;
        }
        *out = PQnotifies(conn);
        if (*out)
            goto out;
        int wait = -1;
        if (timeout_ms >= 0) {
            long long left = deadline - sy_time_mono_ms();
            if (left <= 0) {
                rc = sy_err_set(err, SY_ERR_TIMEOUT, true, "no notification within %d ms",
                                timeout_ms);
                goto out;
            }
            wait = (int)left;
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        if (pfd.fd < 0) {
            rc = sy_err_set(err, SY_ERR_DATABASE, true, "connection to PostgreSQL lost");
            goto out;
        }
        int n = poll(&pfd, 1, wait);
        if (n < 0 && errno == EINTR) {
            rc = sy_err_set(err, SY_ERR_TIMEOUT, true, "interrupted");
            goto out;
        }
        if (n < 0) {
            rc = sy_err_set(err, SY_ERR_IO, true, "poll: %s", strerror(errno));
            goto out;
        }
        /* n == 0: the loop sees the deadline; n > 0: PQconsumeInput reads it. */
    }
out:
    return rc;
}
