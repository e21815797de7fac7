/* Unit tests of sy_ledger's pure parts: state names, log positions and their JSON form. No
 * database: everything that talks to PostgreSQL is in tests/integration/itest_worker_ledger.c. */
#include <stdlib.h>

#include "sy_db.h"
#include "sy_ledger.h"
#include "sy_test.h"

static void test_states(void)
{
    const char *names[] = {"CLAIMED",   "SUBMITTING", "SUBMITTED", "RUNNING",
                           "SUCCEEDED", "FAILED",     "KILLED"};
    for (int i = 0; i < 7; i++) {
        CHECK_STR(sy_job_state_name((sy_job_state_t)i), names[i]);
        CHECK(sy_job_state_parse(names[i]) == i);
        CHECK(sy_job_state_terminal((sy_job_state_t)i) == (i >= SY_JOB_SUCCEEDED));
    }
    CHECK(sy_job_state_parse("running") == -1);
    CHECK(sy_job_state_parse("ACCEPTED") == -1);
    CHECK(sy_job_state_parse(NULL) == -1);
    CHECK_STR(sy_job_state_name((sy_job_state_t)42), "?");
}

static void test_logs(void)
{
    sy_ledger_logs_t logs = {0}, back;
    sy_err_t err = SY_ERR_INIT;
    char json[256];
    CHECK(sy_ledger_logs_to_json(&logs, json, sizeof(json)));
    CHECK_STR(json, "{}");
    int out = sy_ledger_logs_slot(&logs, "stdout");
    int errs = sy_ledger_logs_slot(&logs, "stderr");
    CHECK(out == 0 && errs == 1);
    CHECK(sy_ledger_logs_slot(&logs, "stdout") == 0); /* found, not added again */
    logs.s[out].offset = 1234567890123LL;
    logs.s[errs].offset = 5;
    CHECK(sy_ledger_logs_get(&logs, "stdout") == 1234567890123LL);
    CHECK(sy_ledger_logs_get(&logs, "controller") == 0);
    CHECK(sy_ledger_logs_total(&logs) == 1234567890128LL);
    CHECK(sy_ledger_logs_to_json(&logs, json, sizeof(json)));
    CHECK_STR(json, "{\"stderr\":5,\"stdout\":1234567890123}");
    CHECK(sy_ledger_logs_from_json(json, &back, &err) == SY_OK);
    CHECK(back.n == 2 && sy_ledger_logs_get(&back, "stdout") == 1234567890123LL &&
          sy_ledger_logs_get(&back, "stderr") == 5);
    /* a buffer too small is reported, not overrun */
    CHECK(!sy_ledger_logs_to_json(&logs, json, 10));
    CHECK(json[0] == '\0');

    /* bounded: at most SY_LEDGER_STREAMS_MAX streams, names shorter than the slot */
    sy_ledger_logs_t many = {0};
    char name[40];
    for (int i = 0; i < SY_LEDGER_STREAMS_MAX; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        CHECK(sy_ledger_logs_slot(&many, name) == i);
    }
    CHECK(sy_ledger_logs_slot(&many, "one-too-many") == -1);
    sy_ledger_logs_t one = {0};
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    CHECK(sy_ledger_logs_slot(&one, name) == -1);
    CHECK(sy_ledger_logs_slot(&one, "") == -1);

    /* what the ledger could hold but we refuse */
    const char *bad[] = {
        "[]", "{\"stdout\": -1}", "{\"stdout\": \"12\"}", "{\"stdout\": 1.5}", "not json", NULL};
    for (const char **b = bad; *b; b++) {
        back.n = 3;
        CHECK(sy_ledger_logs_from_json(*b, &back, &err) == SY_ERR_INVALID_ARG);
        CHECK(back.n == 0);
    }
}

/* The ledger migration is embedded, right after the registry's. */
static void test_migration(void)
{
    CHECK(sy_db_latest_version() >= SY_LEDGER_SCHEMA_VERSION);
    const sy_db_migration_t *m = &sy_db_migrations[SY_LEDGER_SCHEMA_VERSION - 1];
    CHECK(m->version == SY_LEDGER_SCHEMA_VERSION);
    CHECK_STR(m->name, "ledger");
    CHECK(strstr(m->sql, "CREATE TABLE jobs") != NULL);
    CHECK(strstr(m->sql, "CREATE TABLE workers") != NULL);
}

int main(void)
{
    test_states();
    test_logs();
    test_migration();
    SY_TEST_DONE();
}
