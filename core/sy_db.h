/* sy_db: PostgreSQL access shared by every binary — connect, parameterized statements,
 * transactions, versioned migrations, and LISTEN/NOTIFY. */
#ifndef SY_DB_H
#define SY_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "sy_err.h"

/* ---- Connections ------------------------------------------------------------------------- */

/* Seconds a connection attempt may take unless the URL sets connect_timeout itself. */
#define SY_DB_CONNECT_TIMEOUT_S 5

/* Opens a connection. url is database.url: a libpq URI (postgresql://user:pw@host:port/db?...)
 * or a key=value string; its own settings win over ours (connect_timeout_s when > 0,
 * application_name=switchyard). An empty url is an SY_ERR_CONFIG error: we do not fall back to
 * libpq's PG* environment silently.
 * On success *out is a connected PGconn the caller owns (sy_db_close or PQfinish).
 * Errors never contain the connection string or the password. A refused attempt — password or
 * role not accepted (pg_hba.conf), or TLS as the URL's sslmode demands not possible (server
 * certificate not trusted or not for this host, no TLS on the server) — is SY_ERR_AUTH, not
 * retriable. Any other failed attempt is SY_ERR_DATABASE; err->retriable is true when the
 * server did not answer (down, unreachable, timeout) or is starting, stopping or full, false
 * when it refused us for another reason (unknown database). */
sy_err_code_t sy_db_connect(const char *url, int connect_timeout_s, PGconn **out, sy_err_t *err);

/* Like sy_db_connect, but to database dbname on the same server with the same credentials
 * (dbname wins over the URL's). For tools and tests that create scratch databases. */
sy_err_code_t sy_db_connect_to(const char *url, const char *dbname, int connect_timeout_s,
                               PGconn **out, sy_err_t *err);

/* PQfinish; NULL is a no-op. */
void sy_db_close(PGconn *conn);

/* "host:port/dbname" of a connection, for log lines (no user, no password). Writes into buf. */
const char *sy_db_describe(PGconn *conn, char *buf, size_t size);

/* ---- Statements --------------------------------------------------------------------------- */

/* Runs one statement with PQexecParams: text parameters params[0..n_params-1] ($1, $2, ...;
 * a NULL element is SQL NULL). Every statement goes through here or sy_db_exec_script; SQL is
 * never built from values.
 * On success returns SY_OK and, if res is not NULL, stores the result in *res (the caller
 * PQclears it); with res NULL the result is cleared here.
 * On failure *res is NULL and err says why, by SQLSTATE:
 *   unique or foreign-key violation             SY_ERR_CONFLICT
 *   check violation, invalid data (class 22)    SY_ERR_INVALID_ARG
 *   lock timeout, statement timeout             SY_ERR_TIMEOUT (retriable)
 *   connection lost, serialization failure,
 *   deadlock, server shutting down              SY_ERR_DATABASE (retriable)
 *   anything else                               SY_ERR_DATABASE
 * The message is the server's primary message and the SQLSTATE. */
sy_err_code_t sy_db_exec(PGconn *conn, const char *sql, int n_params, const char *const *params,
                         PGresult **res, sy_err_t *err);

/* Runs a trusted, parameter-free, possibly multi-statement SQL text from this program (an
 * embedded migration) with PQexec. Never pass anything that contains user input. */
sy_err_code_t sy_db_exec_script(PGconn *conn, const char *sql, sy_err_t *err);

/* Transactions. sy_db_begin runs "BEGIN" plus mode (NULL or e.g. "ISOLATION LEVEL REPEATABLE
 * READ, READ ONLY" — a constant from the caller, not user input); it fails with
 * SY_ERR_INTERNAL if the connection is already in a transaction. sy_db_rollback is best-effort,
 * does nothing outside a transaction, and is safe on a broken connection. */
sy_err_code_t sy_db_begin(PGconn *conn, const char *mode, sy_err_t *err);
sy_err_code_t sy_db_commit(PGconn *conn, sy_err_t *err);
void sy_db_rollback(PGconn *conn);

/* ---- Migrations ---------------------------------------------------------------------------- */

/* One embedded migration (core/migrations/NNNN_name.sql, see core/migrations/embed.cmake). */
typedef struct sy_db_migration {
    int version;        /* 1, 2, 3, ... without gaps */
    const char *name;   /* "registry" */
    const char *file;   /* "0001_registry.sql" */
    const char *sha256; /* hex digest of the file, recorded when applied */
    const char *sql;    /* the file's text */
} sy_db_migration_t;

extern const sy_db_migration_t sy_db_migrations[]; /* in version order */
extern const int sy_db_migration_count;

/* The highest version this binary carries. */
int sy_db_latest_version(void);

/* Brings the database up to sy_db_latest_version(). Holds a session advisory lock for the whole
 * run, so concurrent migrators wait for each other and each migration is applied exactly once;
 * each runs in its own transaction together with its row in schema_migrations (version, name,
 * sha256, applied_at), so a failure leaves the database at the previous version.
 * A migration recorded with a different sha256 than the embedded one is an SY_ERR_CONFLICT
 * error (a released migration was edited); a database newer than this binary is left alone.
 * *from / *to (either may be NULL) receive the version before and after. */
sy_err_code_t sy_db_migrate(PGconn *conn, int *from, int *to, sy_err_t *err);

/* The database's schema version: the highest applied migration, 0 if none (no
 * schema_migrations table yet). */
sy_err_code_t sy_db_schema_version(PGconn *conn, int *version, sy_err_t *err);

/* SY_OK if the database is at least at version required. Otherwise SY_ERR_CONFIG with a
 * message that names both versions and ends "run switchyard admin migrate". Routers and workers
 * call this at start with the version their tables need. */
sy_err_code_t sy_db_check_version(PGconn *conn, int required, sy_err_t *err);

/* ---- LISTEN / NOTIFY -------------------------------------------------------------------- */

/* LISTEN channel on conn. channel must be a plain identifier ([a-z_][a-z0-9_]*, ≤ 63 chars);
 * anything else is SY_ERR_INVALID_ARG (LISTEN takes no parameters, so the name is checked and
 * quoted here). */
sy_err_code_t sy_db_listen(PGconn *conn, const char *channel, sy_err_t *err);

/* Sends a notification (pg_notify($1, $2)); delivered when the current transaction commits, or
 * at once outside a transaction. payload may be NULL (empty). */
sy_err_code_t sy_db_notify(PGconn *conn, const char *channel, const char *payload, sy_err_t *err);

/* Waits up to timeout_ms (0 = just look, < 0 = forever) for one notification on any channel
 * this connection listens on. Returns SY_OK and *out = the notification (caller frees it with
 * PQfreemem), or SY_ERR_TIMEOUT and *out = NULL when none arrived in time or the wait was
 * interrupted by a signal (so callers can check their stop flag). A lost connection is
 * SY_ERR_DATABASE, retriable: notifications sent meanwhile are lost, so a caller that caches
 * state must reconnect, LISTEN again and reload. Call again with timeout 0 to drain. */
sy_err_code_t sy_db_wait_notification(PGconn *conn, int timeout_ms, PGnotify **out, sy_err_t *err);

#endif
