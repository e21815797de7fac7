/* itest_testenv_postgres: the test environment's database is a real PostgreSQL 15 reached
 * through libpq at SWITCHYARD_DATABASE_URL — a round trip through a temporary table, a
 * rolled-back insert that must not stay, and LISTEN/NOTIFY (which the routers rely on to
 * refresh their registry copy). */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "sy_test.h"

/* Runs sql; true if it returned the expected status. Prints the server's message if not. */
static bool exec_ok(PGconn *db, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(db, sql);
    bool ok = PQresultStatus(r) == want;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(db));
    PQclear(r);
    return ok;
}

static long count_rows(PGconn *db, const char *sql)
{
    PGresult *r = PQexec(db, sql);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

int main(void)
{
    const char *url = getenv("SWITCHYARD_DATABASE_URL");
    if (!url) {
        fprintf(stderr, "SWITCHYARD_DATABASE_URL is not set: run under scripts/testenv\n");
        return 1;
    }
    PGconn *db = PQconnectdb(url);
    CHECK(PQstatus(db) == CONNECTION_OK);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(db));
        PQfinish(db);
        SY_TEST_DONE();
    }
    CHECK(PQserverVersion(db) >= 150000 && PQserverVersion(db) < 160000);
    CHECK_STR(PQdb(db), "switchyard");
    CHECK_STR(PQuser(db), "switchyard");

    CHECK(exec_ok(db,
                  "CREATE TEMP TABLE itest_jobs (job_id text PRIMARY KEY, attempt int NOT NULL,"
                  " created timestamptz NOT NULL DEFAULT now())",
                  PGRES_COMMAND_OK));
    const char *params[2] = {"job-\xc3\xa9t\xc3\xa9-1", "3"}; /* UTF-8 survives the trip */
    PGresult *r = PQexecParams(db, "INSERT INTO itest_jobs (job_id, attempt) VALUES ($1, $2)", 2,
                               NULL, params, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    CHECK_STR(PQcmdTuples(r), "1");
    PQclear(r);

    r = PQexecParams(db, "SELECT job_id, attempt + 1 FROM itest_jobs WHERE job_id = $1", 1, NULL,
                     params, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1);
    if (PQntuples(r) == 1) {
        CHECK_STR(PQgetvalue(r, 0, 0), params[0]);
        CHECK_STR(PQgetvalue(r, 0, 1), "4");
    }
    PQclear(r);

    /* A duplicate key is refused, and a rolled-back insert leaves nothing behind. */
    r = PQexecParams(db, "INSERT INTO itest_jobs (job_id, attempt) VALUES ($1, $2)", 2, NULL,
                     params, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
    CHECK_STR(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
    PQclear(r);
    CHECK(exec_ok(db, "BEGIN", PGRES_COMMAND_OK));
    CHECK(exec_ok(db, "INSERT INTO itest_jobs (job_id, attempt) VALUES ('rolled-back', 1)",
                  PGRES_COMMAND_OK));
    CHECK(exec_ok(db, "ROLLBACK", PGRES_COMMAND_OK));
    CHECK(count_rows(db, "SELECT count(*) FROM itest_jobs") == 1);

    /* LISTEN/NOTIFY from a second connection. */
    CHECK(exec_ok(db, "LISTEN itest_testenv", PGRES_COMMAND_OK));
    PGconn *other = PQconnectdb(url);
    CHECK(PQstatus(other) == CONNECTION_OK);
    CHECK(exec_ok(other, "SELECT pg_notify('itest_testenv', 'registry-changed')", PGRES_TUPLES_OK));
    PQfinish(other);
    PGnotify *note = NULL;
    for (int i = 0; i < 50 && !note; i++) {
        int sock = PQsocket(db);
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(sock, &fds);
        struct timeval tv = {0, 100000};
        if (select(sock + 1, &fds, NULL, NULL, &tv) < 0)
            break;
        PQconsumeInput(db);
        note = PQnotifies(db);
    }
    CHECK(note != NULL);
    if (note) {
        CHECK_STR(note->relname, "itest_testenv");
        CHECK_STR(note->extra, "registry-changed");
        PQfreemem(note);
    }

    PQfinish(db);
    SY_TEST_DONE();
}
