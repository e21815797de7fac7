/* Integration test of the job ledger (sy_ledger) against a real PostgreSQL
 * (SWITCHYARD_DATABASE_URL): claims and redelivery, the cluster-wide capacity check under
 * concurrent claimers, transitions and their sequence numbers, ownership compare-and-set and
 * takeover, kill flags, the open-jobs scan, emitted_seq, session liveness and the roster.
 * Works in a scratch database of its own, dropped at the end. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sy_db.h"
#include "sy_ledger.h"
#include "sy_test.h"

static const char *url;
static char dbname[64], scratch_url[1024];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* url with its database name replaced by dbname. */
static void url_for(const char *base, const char *db, char *out, size_t size)
{
    const char *q = strchr(base, '?');
    size_t end = q ? (size_t)(q - base) : strlen(base);
    size_t slash = end;
    while (slash > 0 && base[slash - 1] != '/')
        slash--;
    snprintf(out, size, "%.*s%s%s", (int)slash, base, db, q ? q : "");
}

static bool run(PGconn *c, const char *sql)
{
    sy_err_t err = SY_ERR_INIT;
    if (sy_db_exec(c, sql, 0, NULL, NULL, &err) == SY_OK)
        return true;
    fprintf(stderr, "%s: %s\n", sql, err.msg);
    return false;
}

static sy_ledger_t *open_as(const char *session, long long lease_ms)
{
    sy_err_t err = SY_ERR_INIT;
    sy_ledger_t *l = sy_ledger_open(scratch_url, session, lease_ms, &err);
    if (!l)
        fprintf(stderr, "open: %s\n", err.msg);
    return l;
}

static sy_ledger_claim_t claim_of(const char *job_id, const char *cluster, int64_t offset, int max)
{
    sy_ledger_claim_t c = {.job_id = job_id,
                           .cluster_name = cluster,
                           .backend_kind = "local",
                           .attempt = 1,
                           .routed_job_json = "{\"job_id\": \"x\", \"nested\": {\"a\": [1, 2]}}",
                           .source_topic = "t.cluster.c1",
                           .source_partition = (int32_t)(offset % 3),
                           .source_offset = offset,
                           .message = "claimed by test",
                           .max_in_flight = max};
    return c;
}

static sy_ledger_claim_result_t claim(sy_ledger_t *l, const char *job_id, const char *cluster,
                                      int64_t offset, int max, sy_ledger_row_t *row)
{
    sy_err_t err = SY_ERR_INIT;
    sy_ledger_claim_result_t res = (sy_ledger_claim_result_t)-1;
    sy_ledger_claim_t c = claim_of(job_id, cluster, offset, max);
    if (sy_ledger_claim(l, &c, &res, row, &err) != SY_OK)
        fprintf(stderr, "claim %s: %s\n", job_id, err.msg);
    return res;
}

static sy_err_code_t move(sy_ledger_t *l, const char *job_id, sy_job_state_t state, bool emit,
                          sy_ledger_result_t *res, sy_err_t *err)
{
    sy_ledger_change_t ch = {.state = state, .emit = emit};
    return sy_ledger_transition(l, job_id, &ch, res, err);
}

static void test_open(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *admin = NULL;
    char other_url[1024], sql[200], other[80];
    snprintf(other, sizeof(other), "%s_empty", dbname);
    CHECK(sy_db_connect(url, 5, &admin, &err) == SY_OK);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", other);
    CHECK(run(admin, sql));
    url_for(url, other, other_url, sizeof(other_url));
    /* a database without the ledger tables: a clear error naming the versions */
    CHECK(sy_ledger_open(other_url, "s", 1000, &err) == NULL);
    CHECK(err.code == SY_ERR_CONFIG && strstr(err.msg, "migrate"));
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", other);
    CHECK(run(admin, sql));
    sy_db_close(admin);
}

static void test_claim_and_transitions(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_ledger_t *a = open_as("A", 30000), *b = open_as("B", 30000);
    sy_ledger_row_t row = {0};
    sy_ledger_result_t res;
    CHECK(sy_ledger_worker_register(a, "wa", "host-a", 11, &err) == SY_OK);
    CHECK(sy_ledger_worker_register(b, "wb", "host-b", 12, &err) == SY_OK);

    CHECK(claim(a, "job-1", "c1", 100, 0, &row) == SY_LEDGER_CLAIMED);
    CHECK(row.state == SY_JOB_CLAIMED);
    CHECK(row.next_seq == SY_LEDGER_FIRST_SEQ + 1); /* the CLAIMED event took 10 */
    CHECK_STR(row.owner, "A");
    CHECK(row.owner_alive);
    CHECK(row.source_offset == 100 && row.source_partition == 1);
    CHECK_STR(row.source_topic, "t.cluster.c1");
    CHECK_STR(row.message, "claimed by test");
    CHECK(row.routed_job && strstr(row.routed_job, "\"nested\""));
    sy_ledger_row_clear(&row);

    /* redelivery: the row as it is, whoever asks */
    CHECK(claim(b, "job-1", "c1", 100, 0, &row) == SY_LEDGER_EXISTS);
    CHECK_STR(row.owner, "A");
    CHECK(row.owner_alive); /* A has a fresh heartbeat */
    sy_ledger_row_clear(&row);

    /* intent: no seq taken */
    CHECK(move(a, "job-1", SY_JOB_SUBMITTING, false, &res, &err) == SY_OK);
    CHECK(res.seq == 0 && !res.kill_requested);
    sy_ledger_change_t sub = {.state = SY_JOB_SUBMITTED,
                              .emit = true,
                              .backend_id = "host-a:4242:99",
                              .timeout_at_ms = 4102444800000LL};
    CHECK(sy_ledger_transition(a, "job-1", &sub, &res, &err) == SY_OK);
    CHECK(res.seq == 11);
    CHECK(move(a, "job-1", SY_JOB_RUNNING, true, &res, &err) == SY_OK);
    CHECK(res.seq == 12);

    /* only the owner may move it */
    CHECK(move(b, "job-1", SY_JOB_FAILED, true, &res, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "owned by A") != NULL);
    CHECK(move(b, "nope", SY_JOB_FAILED, true, &res, &err) == SY_ERR_NOT_FOUND);

    sy_ledger_logs_t logs = {0};
    logs.s[sy_ledger_logs_slot(&logs, "stdout")].offset = 300;
    logs.s[sy_ledger_logs_slot(&logs, "stderr")].offset = 7;
    sy_ledger_change_t end = {.state = SY_JOB_FAILED,
                              .emit = true,
                              .has_exit_code = true,
                              .exit_code = 3,
                              .failure_reason = "NON_ZERO_EXIT",
                              .message = "exited with code 3",
                              .logs = &logs};
    CHECK(sy_ledger_transition(a, "job-1", &end, &res, &err) == SY_OK);
    CHECK(res.seq == 13);
    CHECK(sy_ledger_get(b, "job-1", &row, &err) == SY_OK);
    CHECK(row.state == SY_JOB_FAILED && row.next_seq == 14);
    CHECK_STR(row.backend_id, "host-a:4242:99");
    CHECK(row.timeout_at_ms == 4102444800000LL);
    CHECK(row.has_exit_code && row.exit_code == 3);
    CHECK_STR(row.failure_reason, "NON_ZERO_EXIT");
    CHECK(sy_ledger_logs_get(&row.logs, "stdout") == 300 &&
          sy_ledger_logs_get(&row.logs, "stderr") == 7);
    sy_ledger_row_clear(&row);

    /* terminal is final, even for the owner */
    CHECK(move(a, "job-1", SY_JOB_SUCCEEDED, true, &res, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "already ended") != NULL);

    /* emitted_seq only goes up; a terminal job with its last event delivered is not open */
    int32_t parts[] = {0, 1, 2};
    sy_ledger_row_t *rows = NULL;
    size_t n = 0;
    CHECK(sy_ledger_list_open(b, "t.cluster.c1", parts, 3, &rows, &n, &err) == SY_OK);
    CHECK(n == 1 && rows && !strcmp(rows[0].job_id, "job-1"));
    sy_ledger_rows_free(rows, n);
    CHECK(sy_ledger_set_emitted(a, "job-1", 13, &err) == SY_OK);
    CHECK(sy_ledger_set_emitted(a, "job-1", 11, &err) == SY_OK);
    CHECK(sy_ledger_get(a, "job-1", &row, &err) == SY_OK && row.emitted_seq == 13);
    sy_ledger_row_clear(&row);
    CHECK(sy_ledger_list_open(b, "t.cluster.c1", parts, 3, &rows, &n, &err) == SY_OK);
    CHECK(n == 0 && rows == NULL);
    sy_ledger_close(a);
    sy_ledger_close(b);
}

static void test_takeover_and_kills(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_ledger_t *a = open_as("A2", 1500), *b = open_as("B2", 1500);
    sy_ledger_row_t row = {0};
    sy_ledger_result_t res;
    CHECK(sy_ledger_worker_register(a, "wa2", "host-a", 21, &err) == SY_OK);
    CHECK(sy_ledger_worker_register(b, "wb2", "host-b", 22, &err) == SY_OK);
    CHECK(claim(a, "job-2", "c2", 3, 0, &row) == SY_LEDGER_CLAIMED);
    sy_ledger_row_clear(&row);
    CHECK(move(a, "job-2", SY_JOB_SUBMITTING, false, &res, &err) == SY_OK);

    /* any worker may flag a kill; the owner learns it with its next transition */
    CHECK(sy_ledger_request_kill(b, "job-2", "killed by alice: enough", &row, &err) == SY_OK);
    CHECK(row.kill_requested && row.state == SY_JOB_SUBMITTING);
    sy_ledger_row_clear(&row);
    CHECK(sy_ledger_request_kill(b, "job-2", "second reason", &row, &err) == SY_OK);
    CHECK_STR(row.kill_reason, "killed by alice: enough"); /* the first reason stays */
    sy_ledger_row_clear(&row);
    sy_ledger_row_t *rows = NULL;
    size_t n = 0;
    CHECK(sy_ledger_list_kills(a, &rows, &n, &err) == SY_OK);
    CHECK(n == 1 && !strcmp(rows[0].job_id, "job-2"));
    sy_ledger_rows_free(rows, n);
    CHECK(sy_ledger_list_kills(b, &rows, &n, &err) == SY_OK && n == 0);
    CHECK(sy_ledger_request_kill(b, "no-such-job", "x", &row, &err) == SY_ERR_NOT_FOUND);
    sy_ledger_row_clear(&row);
    CHECK(move(a, "job-2", SY_JOB_SUBMITTED, true, &res, &err) == SY_OK);
    CHECK(res.kill_requested && !strcmp(res.kill_reason, "killed by alice: enough"));

    /* liveness: while A beats, B sees its job as owned by a live worker */
    int32_t part[] = {0};
    CHECK(sy_ledger_list_open(b, "t.cluster.c1", part, 1, &rows, &n, &err) == SY_OK);
    CHECK(n == 1 && rows[0].owner_alive);
    sy_ledger_rows_free(rows, n);
    usleep(900 * 1000);
    CHECK(sy_ledger_worker_heartbeat(a, &err) == SY_OK);
    usleep(900 * 1000);
    CHECK(sy_ledger_list_open(b, "t.cluster.c1", part, 1, &rows, &n, &err) == SY_OK);
    CHECK(n == 1 && rows[0].owner_alive); /* 1.8 s since register, 0.9 since the beat */
    sy_ledger_rows_free(rows, n);
    long long t0 = now_ms();
    bool dead = false;
    while (!dead && now_ms() - t0 < 5000) {
        usleep(100 * 1000);
        CHECK(sy_ledger_list_open(b, "t.cluster.c1", part, 1, &rows, &n, &err) == SY_OK);
        dead = n == 1 && !rows[0].owner_alive;
        sy_ledger_rows_free(rows, n);
    }
    CHECK(dead);

    /* takeover: compare-and-set on the owner; the loser of the race is told */
    CHECK(sy_ledger_adopt(b, "job-2", "someone-else", &row, &err) == SY_ERR_CONFLICT);
    CHECK(sy_ledger_adopt(b, "job-2", "A2", &row, &err) == SY_OK);
    CHECK_STR(row.owner, "B2");
    CHECK(row.kill_requested && row.next_seq == 12); /* the flag and the seqs carry over */
    sy_ledger_row_clear(&row);
    CHECK(move(a, "job-2", SY_JOB_RUNNING, true, &res, &err) == SY_ERR_CONFLICT);
    CHECK(move(b, "job-2", SY_JOB_KILLED, true, &res, &err) == SY_OK);
    CHECK(res.seq == 12); /* continues, never reuses */
    /* a kill of a job that ended changes nothing */
    CHECK(sy_ledger_request_kill(a, "job-2", "late", &row, &err) == SY_OK);
    CHECK(row.state == SY_JOB_KILLED);
    sy_ledger_row_clear(&row);
    /* an unowned row (owner "") can be taken with expected owner "" */
    sy_ledger_close(a);
    sy_ledger_close(b);
}

typedef struct claimer {
    const char *session;
    int claimed, at_capacity, errors;
} claimer_t;

static void *claim_thread(void *arg)
{
    claimer_t *c = arg;
    sy_ledger_t *l = open_as(c->session, 30000);
    for (int i = 0; l && i < 20; i++) {
        char id[64];
        sy_ledger_row_t row = {0};
        snprintf(id, sizeof(id), "cap-%s-%d", c->session, i);
        sy_ledger_claim_result_t r = claim(l, id, "c-cap", 1000 + i, 5, &row);
        if (r == SY_LEDGER_CLAIMED)
            c->claimed++;
        else if (r == SY_LEDGER_AT_CAPACITY)
            c->at_capacity++;
        else
            c->errors++;
        sy_ledger_row_clear(&row);
    }
    sy_ledger_close(l);
    return NULL;
}

/* Concurrent claimers never exceed the cluster's limit together; a finished job frees room;
 * a redelivered job is EXISTS even when the cluster is full. */
static void test_capacity(void)
{
    claimer_t cs[4] = {{"K1", 0, 0, 0}, {"K2", 0, 0, 0}, {"K3", 0, 0, 0}, {"K4", 0, 0, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, claim_thread, &cs[i]);
    int claimed = 0, full = 0, errors = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        claimed += cs[i].claimed;
        full += cs[i].at_capacity;
        errors += cs[i].errors;
    }
    CHECK(claimed == 5 && full == 75 && errors == 0);

    sy_err_t err = SY_ERR_INIT;
    sy_ledger_t *l = open_as("K1", 30000);
    sy_ledger_row_t row = {0};
    sy_ledger_result_t res;
    CHECK(claim(l, "cap-K1-0", "c-cap", 1000, 5, &row) ==
          (cs[0].claimed ? SY_LEDGER_EXISTS : SY_LEDGER_AT_CAPACITY));
    sy_ledger_row_clear(&row);
    CHECK(claim(l, "cap-new", "c-cap", 2000, 5, &row) == SY_LEDGER_AT_CAPACITY);
    sy_ledger_row_clear(&row);
    /* finish one of K1's (or take one over) to make room */
    PGconn *c = NULL;
    CHECK(sy_db_connect(scratch_url, 5, &c, &err) == SY_OK);
    CHECK(run(c, "UPDATE jobs SET owner = 'K1' WHERE job_id = (SELECT min(job_id) FROM jobs "
                 "WHERE cluster_name = 'c-cap')"));
    PGresult *r = NULL;
    CHECK(sy_db_exec(c,
                     "SELECT min(job_id) FROM jobs WHERE owner = 'K1' AND cluster_name = "
                     "'c-cap'",
                     0, NULL, &r, &err) == SY_OK);
    char id[64];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    CHECK(move(l, id, SY_JOB_SUCCEEDED, true, &res, &err) == SY_OK);
    CHECK(claim(l, "cap-new", "c-cap", 2000, 5, &row) == SY_LEDGER_CLAIMED);
    sy_ledger_row_clear(&row);
    /* SUBMITTING counts as in flight too; the router's least-active query still runs */
    CHECK(move(l, "cap-new", SY_JOB_SUBMITTING, false, &res, &err) == SY_OK);
    CHECK(claim(l, "cap-new2", "c-cap", 2001, 5, &row) == SY_LEDGER_AT_CAPACITY);
    sy_ledger_row_clear(&row);
    CHECK(sy_db_exec(c,
                     "SELECT cluster_name, count(*) FROM jobs WHERE state IN "
                     "('CLAIMED','SUBMITTED','RUNNING') GROUP BY cluster_name",
                     0, NULL, &r, &err) == SY_OK);
    PQclear(r);
    sy_db_close(c);
    sy_ledger_close(l);
}

/* A restarted worker removes its dead predecessors' sessions, so their jobs are free at once. */
static void test_roster(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *c = NULL;
    CHECK(sy_db_connect(scratch_url, 5, &c, &err) == SY_OK);
    /* pid 0x7ffffff0 is never a live process; our own pid is "the same container restarted" */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO workers (session, instance_id, host, pid) VALUES "
             "('old-dead', 'w-roster', 'h-roster', %d), ('old-me', 'w-roster', 'h-roster', %d), "
             "('other-host', 'w-roster', 'h-elsewhere', %d)",
             0x7ffffff0, (int)getpid(), 0x7ffffff0);
    CHECK(run(c, sql));
    sy_ledger_t *l = open_as("new", 30000);
    CHECK(sy_ledger_worker_register(l, "w-roster", "h-roster", (int)getpid(), &err) == SY_OK);
    PGresult *r = NULL;
    CHECK(sy_db_exec(c,
                     "SELECT string_agg(session, ',' ORDER BY session) FROM workers WHERE "
                     "instance_id = 'w-roster'",
                     0, NULL, &r, &err) == SY_OK);
    CHECK_STR(PQgetvalue(r, 0, 0), "new,other-host");
    PQclear(r);
    /* a heartbeat brings back a session that vanished */
    CHECK(run(c, "DELETE FROM workers WHERE session = 'new'"));
    CHECK(sy_ledger_worker_heartbeat(l, &err) == SY_OK);
    CHECK(sy_db_exec(c, "SELECT count(*) FROM workers WHERE session = 'new'", 0, NULL, &r, &err) ==
          SY_OK);
    CHECK_STR(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    CHECK(sy_ledger_worker_unregister(l, &err) == SY_OK);
    CHECK(sy_db_exec(c, "SELECT count(*) FROM workers WHERE session = 'new'", 0, NULL, &r, &err) ==
          SY_OK);
    CHECK_STR(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    sy_ledger_close(l);
    sy_db_close(c);
}

/* A lost connection is re-established by the next call. */
static void test_reconnect(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *c = NULL;
    sy_ledger_t *l = open_as("R", 30000);
    sy_ledger_row_t row = {0};
    CHECK(sy_db_connect(scratch_url, 5, &c, &err) == SY_OK);
    CHECK(run(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                 "datname = current_database() AND pid <> pg_backend_pid()"));
    sy_err_code_t rc = sy_ledger_get(l, "job-1", &row, &err);
    if (rc != SY_OK) /* the first call may notice the loss */
        rc = sy_ledger_get(l, "job-1", &row, &err);
    CHECK(rc == SY_OK && row.state == SY_JOB_FAILED);
    sy_ledger_row_clear(&row);
    sy_ledger_close(l);
    sy_db_close(c);
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *admin = NULL, *c = NULL;
    url = getenv("SWITCHYARD_DATABASE_URL");
    if (!url || !*url) {
        fprintf(stderr, "itest_worker_ledger: SWITCHYARD_DATABASE_URL is not set (run under "
                        "scripts/testenv)\n");
        return 1;
    }
    if (sy_db_connect(url, 5, &admin, &err) != SY_OK) {
        fprintf(stderr, "itest_worker_ledger: %s\n", err.msg);
        return 1;
    }
    srand((unsigned)(now_ms() ^ getpid()));
    snprintf(dbname, sizeof(dbname), "sy_itest_ledger_%d_%d", (int)getpid(), rand() % 100000);
    url_for(url, dbname, scratch_url, sizeof(scratch_url));
    char sql[200];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname); /* our own name, not input */
    if (!run(admin, sql))
        return 1;
    CHECK(sy_db_connect(scratch_url, 5, &c, &err) == SY_OK);
    CHECK(c && sy_db_migrate(c, NULL, NULL, &err) == SY_OK);
    sy_db_close(c);

    test_open();
    test_claim_and_transitions();
    test_takeover_and_kills();
    test_capacity();
    test_roster();
    test_reconnect();

    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", dbname);
    CHECK(run(admin, sql));
    sy_db_close(admin);
    SY_TEST_DONE();
}
