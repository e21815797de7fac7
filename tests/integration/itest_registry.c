/* Integration test of sy_db and sy_registry against a real PostgreSQL (SWITCHYARD_DATABASE_URL):
 * migrations (idempotent, concurrent, version check, edited-migration detection), CRUD with its
 * error classes, snapshot loads, and NOTIFY reaching a listener within a second of a change.
 * Works in a scratch database of its own, dropped at the end. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sy_db.h"
#include "sy_registry.h"
#include "sy_test.h"

static const char *url;
static char dbname[64];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static PGconn *connect_scratch(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *c = NULL;
    if (sy_db_connect_to(url, dbname, 5, &c, &err) != SY_OK)
        fprintf(stderr, "connect: %s\n", err.msg);
    return c;
}

/* Runs a statement (test-only helper: CREATE/DROP DATABASE take identifiers). */
static bool run(PGconn *c, const char *sql)
{
    sy_err_t err = SY_ERR_INIT;
    if (sy_db_exec(c, sql, 0, NULL, NULL, &err) == SY_OK)
        return true;
    fprintf(stderr, "%s: %s\n", sql, err.msg);
    return false;
}

static char *scalar(PGconn *c, const char *sql)
{
    sy_err_t err = SY_ERR_INIT;
    PGresult *res = NULL;
    char *v = NULL;
    if (sy_db_exec(c, sql, 0, NULL, &res, &err) == SY_OK && PQntuples(res) == 1)
        v = strdup(PQgetvalue(res, 0, 0));
    else
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    PQclear(res);
    return v;
}

/* ---- migrations ---- */

typedef struct migrator {
    int from, to;
    sy_err_code_t rc;
    char msg[512];
} migrator_t;

static void *migrate_thread(void *arg)
{
    migrator_t *m = arg;
    sy_err_t err = SY_ERR_INIT;
    PGconn *c = connect_scratch();
    m->rc = c ? sy_db_migrate(c, &m->from, &m->to, &err) : SY_ERR_DATABASE;
    snprintf(m->msg, sizeof(m->msg), "%s", err.msg);
    sy_db_close(c);
    return NULL;
}

static void test_migrations(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *c = connect_scratch();
    int version = -1, from = -1, to = -1, latest = sy_db_latest_version();
    CHECK(c != NULL);
    if (!c)
        return;

    /* a fresh database: version 0, and the check names the fix */
    CHECK(sy_db_schema_version(c, &version, &err) == SY_OK && version == 0);
    CHECK(sy_db_check_version(c, SY_REGISTRY_SCHEMA_VERSION, &err) == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "run switchyard admin migrate") != NULL);
    CHECK(strstr(err.msg, "version 0") != NULL);

    /* concurrent migrators: all succeed, each migration applied exactly once */
    enum { N = 6 };
    pthread_t th[N];
    migrator_t m[N];
    memset(m, 0, sizeof(m));
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, migrate_thread, &m[i]);
    int appliers = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        CHECK(m[i].rc == SY_OK);
        if (m[i].rc != SY_OK)
            fprintf(stderr, "migrator %d: %s\n", i, m[i].msg);
        CHECK(m[i].to == latest);
        CHECK(m[i].from == 0 || m[i].from == latest);
        appliers += m[i].from == 0;
    }
    CHECK(appliers == 1);
    char *count = scalar(c, "SELECT count(*) FROM schema_migrations");
    char want[16];
    snprintf(want, sizeof(want), "%d", sy_db_migration_count);
    CHECK_STR(count, want);
    free(count);

    /* again: a no-op */
    char *before = scalar(c, "SELECT string_agg(version || sha256 || applied_at, ',') FROM "
                             "schema_migrations");
    CHECK(sy_db_migrate(c, &from, &to, &err) == SY_OK);
    CHECK(from == latest && to == latest);
    char *after = scalar(c, "SELECT string_agg(version || sha256 || applied_at, ',') FROM "
                            "schema_migrations");
    CHECK_STR(after, before);
    free(before);
    free(after);

    /* the version check now passes, and names both versions when it does not */
    CHECK(sy_db_check_version(c, SY_REGISTRY_SCHEMA_VERSION, &err) == SY_OK);
    CHECK(sy_db_check_version(c, latest + 1, &err) == SY_ERR_CONFIG);
    char expect[128];
    snprintf(expect, sizeof(expect), "is at version %d, this program needs version %d", latest,
             latest + 1);
    CHECK(strstr(err.msg, expect) != NULL);
    CHECK(strstr(err.msg, "run switchyard admin migrate") != NULL);

    /* a released migration that was edited is refused, not silently skipped */
    CHECK(run(c, "UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1"));
    CHECK(sy_db_migrate(c, NULL, NULL, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "0001_registry.sql was changed") != NULL);
    const char *p[] = {sy_db_migrations[0].sha256};
    CHECK(sy_db_exec(c, "UPDATE schema_migrations SET sha256 = $1 WHERE version = 1", 1, p, NULL,
                     &err) == SY_OK);
    /* the advisory lock was released on the error path: this does not hang */
    CHECK(sy_db_migrate(c, NULL, NULL, &err) == SY_OK);
    sy_db_close(c);
}

/* ---- CRUD and snapshots ---- */

static const char *SPEC_LOCAL_EMR =
    "{\"local\": {\"argv\": [\"/usr/bin/env\", \"spark-submit\"]},"
    " \"emr\": {\"jar\": \"command-runner.jar\", \"args\": [\"spark-submit\"]}}";

static void test_crud(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *c = connect_scratch();
    sy_registry_snapshot_t *s0 = NULL, *s1 = NULL, *s2 = NULL;
    char *emr_id = NULL, *eks_id = NULL, *local_id = NULL, *cmd_id = NULL;
    bool changed = false;
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(sy_registry_load(c, &s0, &err) == SY_OK);
    if (!s0)
        goto out;
    CHECK(s0->n_clusters == 0 && s0->n_commands == 0);

    const char *prod_tags[] = {"spark:3.5", "env:prod", "spark:3.5"}; /* dup collapses */
    sy_cluster_input_t in = SY_CLUSTER_INPUT_INIT;
    in.name = "emr-prod-1";
    in.backend_kind = "emr";
    in.backend_address = "j-ABC123";
    in.region = "us-east-1";
    in.tags = prod_tags;
    in.n_tags = 3;
    in.set_tags = true;
    in.weight = 2;
    in.max_concurrent = 50;
    CHECK(sy_registry_cluster_add(c, &in, &emr_id, &err) == SY_OK);
    CHECK(emr_id && !strncmp(emr_id, "cl-", 3) && strlen(emr_id) == 15);

    /* the same name again */
    CHECK(sy_registry_cluster_add(c, &in, NULL, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "already exists") != NULL);

    sy_cluster_input_t eks = SY_CLUSTER_INPUT_INIT;
    eks.name = "eks-1";
    eks.backend_kind = "emr-eks";
    eks.backend_address = "abcdefghij0123456789klmno";
    CHECK(sy_registry_cluster_add(c, &eks, &eks_id, &err) == SY_OK);

    sy_cluster_input_t loc = SY_CLUSTER_INPUT_INIT;
    loc.name = "local-1";
    loc.backend_kind = "local";
    CHECK(sy_registry_cluster_add(c, &loc, &local_id, &err) == SY_OK);

    /* bad input is refused before the database, with the field named */
    sy_cluster_input_t bad = loc;
    bad.name = "local-2";
    bad.backend_address = "j-X";
    CHECK(sy_registry_cluster_add(c, &bad, NULL, &err) == SY_ERR_INVALID_ARG);
    const char *bad_tags[] = {"switchyard.name:x"};
    bad = loc;
    bad.name = "local-2";
    bad.tags = bad_tags;
    bad.n_tags = 1;
    bad.set_tags = true;
    CHECK(sy_registry_cluster_add(c, &bad, NULL, &err) == SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "reserved") != NULL);

    const char *cmd_tags[] = {"type:spark-submit", "spark:3.5"};
    sy_command_input_t cin = SY_COMMAND_INPUT_INIT;
    cin.name = "spark-submit";
    cin.spec_json = SPEC_LOCAL_EMR;
    cin.tags = cmd_tags;
    cin.n_tags = 2;
    cin.set_tags = true;
    CHECK(sy_registry_command_add(c, &cin, &cmd_id, &err) == SY_OK);
    CHECK(cmd_id && !strncmp(cmd_id, "cmd-", 4));
    sy_command_input_t badcmd = cin;
    badcmd.name = "other";
    badcmd.spec_json = "{\"local\": {\"argv\": []}}";
    CHECK(sy_registry_command_add(c, &badcmd, NULL, &err) == SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "spec.local.argv") != NULL);

    /* links: by name or id, idempotent, and only where the spec can run */
    CHECK(sy_registry_link(c, "spark-submit", "emr-prod-1", &changed, &err) == SY_OK && changed);
    CHECK(sy_registry_link(c, cmd_id, emr_id, &changed, &err) == SY_OK && !changed);
    CHECK(sy_registry_link(c, "spark-submit", local_id, &changed, &err) == SY_OK && changed);
    CHECK(sy_registry_link(c, "spark-submit", "eks-1", &changed, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "no \"emr-eks\" entry") != NULL);
    CHECK(sy_registry_link(c, "nope", "eks-1", &changed, &err) == SY_ERR_NOT_FOUND);
    CHECK(sy_registry_link(c, "spark-submit", "nope", &changed, &err) == SY_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "no cluster with id or name \"nope\"") != NULL);

    CHECK(sy_registry_load(c, &s1, &err) == SY_OK);
    if (!s1)
        goto out;
    CHECK(s1->version > s0->version);
    CHECK(s1->n_clusters == 3 && s1->n_commands == 1);
    const sy_cluster_t *cl = sy_registry_find_cluster(s1, "emr-prod-1");
    CHECK(cl && sy_registry_find_cluster(s1, emr_id) == cl);
    if (cl) {
        CHECK_STR(cl->id, emr_id);
        CHECK_STR(cl->backend_kind, "emr");
        CHECK_STR(cl->backend_address, "j-ABC123");
        CHECK_STR(cl->region, "us-east-1");
        CHECK_STR(cl->status, "UP");
        CHECK(cl->weight == 2 && cl->max_concurrent == 50);
        CHECK(cl->n_tags == 2);
        if (cl->n_tags == 2) {
            CHECK_STR(cl->tags[0], "env:prod"); /* sorted, deduplicated */
            CHECK_STR(cl->tags[1], "spark:3.5");
        }
        CHECK(cl->created_at && strlen(cl->created_at) == 24);
    }
    const sy_cluster_t *lc = sy_registry_find_cluster(s1, "local-1");
    CHECK(lc && lc->backend_address == NULL && lc->region == NULL && lc->weight == 1 &&
          lc->max_concurrent == 0 && lc->n_tags == 0);
    const sy_command_t *cmd = sy_registry_find_command(s1, "spark-submit");
    CHECK(cmd != NULL);
    if (cmd) {
        CHECK_STR(cmd->id, cmd_id);
        CHECK_STR(cmd->status, "ACTIVE");
        CHECK(cmd->n_tags == 2);
        CHECK(sy_registry_spec_valid(cmd->spec_json, &err));
        CHECK(sy_registry_spec_has_backend(cmd->spec_json, "emr"));
        CHECK(cmd->backends == (SY_BACKEND_EMR | SY_BACKEND_LOCAL));
        CHECK(sy_registry_command_runs_on(cmd, "emr") && sy_registry_command_runs_on(cmd, "local"));
        CHECK(!sy_registry_command_runs_on(cmd, "emr-eks") &&
              !sy_registry_command_runs_on(cmd, "x"));
        CHECK(cmd->n_cluster_ids == 2);
        if (cmd->n_cluster_ids == 2) { /* ordered by cluster name */
            CHECK_STR(cmd->cluster_ids[0], emr_id);
            CHECK_STR(cmd->cluster_ids[1], local_id);
        }
    }

    /* tags: idempotent, flags report whether anything changed */
    const char *etl[] = {"queue:etl"};
    CHECK(sy_registry_cluster_tag(c, "emr-prod-1", etl, 1, &changed, &err) == SY_OK && changed);
    CHECK(sy_registry_cluster_tag(c, "emr-prod-1", etl, 1, &changed, &err) == SY_OK && !changed);
    CHECK(sy_registry_cluster_untag(c, emr_id, etl, 1, &changed, &err) == SY_OK && changed);
    CHECK(sy_registry_cluster_untag(c, emr_id, etl, 1, &changed, &err) == SY_OK && !changed);
    const char *badtag[] = {"no colon"};
    CHECK(sy_registry_cluster_tag(c, "emr-prod-1", badtag, 1, &changed, &err) ==
          SY_ERR_INVALID_ARG);
    CHECK(sy_registry_cluster_tag(c, "nope", etl, 1, &changed, &err) == SY_ERR_NOT_FOUND);
    CHECK(sy_registry_command_tag(c, "spark-submit", etl, 1, &changed, &err) == SY_OK && changed);
    /* quotes, braces and backslashes survive the array parameter and the JSON read-back */
    const char *odd[] = {"odd:\"a{b},c\\d\""};
    CHECK(sy_registry_cluster_tag(c, "eks-1", odd, 1, &changed, &err) == SY_ERR_INVALID_ARG);
    odd[0] = "odd:\"a{b}\\d\"";
    CHECK(sy_registry_cluster_tag(c, "eks-1", odd, 1, &changed, &err) == SY_OK && changed);
    sy_registry_snapshot_t *so = NULL;
    CHECK(sy_registry_load(c, &so, &err) == SY_OK);
    const sy_cluster_t *ek = so ? sy_registry_find_cluster(so, "eks-1") : NULL;
    CHECK(ek && ek->n_tags == 1 && !strcmp(ek->tags[0], odd[0]));
    CHECK(ek && sy_registry_resource_has_tag(ek->id, ek->name, ek->tags, ek->n_tags, odd[0]));
    sy_registry_snapshot_destroy(so);
    CHECK(sy_registry_cluster_untag(c, "eks-1", odd, 1, &changed, &err) == SY_OK && changed);

    /* status and update */
    CHECK(sy_registry_cluster_set_status(c, "emr-prod-1", "OUT_OF_SERVICE", &err) == SY_OK);
    CHECK(sy_registry_cluster_set_status(c, "emr-prod-1", "DOWN", &err) == SY_ERR_INVALID_ARG);
    sy_cluster_input_t up = SY_CLUSTER_INPUT_INIT;
    up.region = ""; /* clears */
    up.weight = 0;
    up.backend_address = "j-NEW1";
    CHECK(sy_registry_cluster_update(c, "emr-prod-1", &up, &err) == SY_OK);
    sy_cluster_input_t rename = SY_CLUSTER_INPUT_INIT;
    rename.name = "x";
    CHECK(sy_registry_cluster_update(c, "emr-prod-1", &rename, &err) == SY_ERR_INVALID_ARG);
    sy_cluster_input_t nothing = SY_CLUSTER_INPUT_INIT;
    CHECK(sy_registry_cluster_update(c, "emr-prod-1", &nothing, &err) == SY_ERR_INVALID_ARG);
    sy_cluster_input_t addr = SY_CLUSTER_INPUT_INIT;
    addr.backend_address = "j-X";
    CHECK(sy_registry_cluster_update(c, "local-1", &addr, &err) == SY_ERR_INVALID_ARG);
    CHECK(sy_registry_command_set_status(c, cmd_id, "DEPRECATED", &err) == SY_OK);

    /* a new spec must still cover every linked cluster's backend */
    sy_command_input_t cup = SY_COMMAND_INPUT_INIT;
    cup.spec_json = "{\"local\": {\"argv\": [\"true\"]}}";
    CHECK(sy_registry_command_update(c, "spark-submit", &cup, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "emr-prod-1") != NULL);
    /* rename a command; a taken name conflicts */
    sy_command_input_t other = SY_COMMAND_INPUT_INIT;
    other.name = "hive";
    other.spec_json = "{\"local\": {\"argv\": [\"hive\"]}}";
    CHECK(sy_registry_command_add(c, &other, NULL, &err) == SY_OK);
    cup = (sy_command_input_t)SY_COMMAND_INPUT_INIT;
    cup.name = "hive";
    CHECK(sy_registry_command_update(c, "spark-submit", &cup, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "already exists") != NULL);
    cup.name = "spark-submit-3";
    CHECK(sy_registry_command_update(c, "spark-submit", &cup, &err) == SY_OK);

    CHECK(sy_registry_load(c, &s2, &err) == SY_OK);
    if (!s2)
        goto out;
    CHECK(s2->version > s1->version);
    cl = sy_registry_find_cluster(s2, emr_id);
    CHECK(cl && !strcmp(cl->status, "OUT_OF_SERVICE") && cl->region == NULL && cl->weight == 0 &&
          cl->max_concurrent == 50 && !strcmp(cl->backend_address, "j-NEW1") && cl->n_tags == 2);
    cmd = sy_registry_find_command(s2, cmd_id);
    CHECK(cmd && !strcmp(cmd->name, "spark-submit-3") && !strcmp(cmd->status, "DEPRECATED") &&
          cmd->n_tags == 3);
    CHECK(s2->n_commands == 2 && !strcmp(s2->commands[0].name, "hive")); /* by name */

    /* remove: refused while linked (the message names the commands), --force unlinks */
    CHECK(sy_registry_cluster_remove(c, "local-1", false, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "spark-submit-3") != NULL && strstr(err.msg, "--force") != NULL);
    CHECK(sy_registry_cluster_remove(c, "local-1", true, &err) == SY_OK);
    CHECK(sy_registry_cluster_remove(c, "local-1", true, &err) == SY_ERR_NOT_FOUND);
    CHECK(sy_registry_unlink(c, cmd_id, "emr-prod-1", &changed, &err) == SY_OK && changed);
    CHECK(sy_registry_unlink(c, cmd_id, "emr-prod-1", &changed, &err) == SY_OK && !changed);
    CHECK(sy_registry_command_remove(c, cmd_id, false, &err) == SY_OK); /* no links left */
    CHECK(sy_registry_command_remove(c, "hive", false, &err) == SY_OK);
    char *links = scalar(c, "SELECT count(*) FROM command_clusters");
    CHECK_STR(links, "0");
    free(links);

    /* the constraints hold for writers that bypass the C checks */
    CHECK(sy_db_exec(c, "UPDATE clusters SET tags = '{switchyard.id:x}' WHERE name = 'eks-1'", 0,
                     NULL, NULL, &err) == SY_ERR_INVALID_ARG);
    CHECK(sy_db_exec(c, "UPDATE clusters SET weight = -1", 0, NULL, NULL, &err) ==
          SY_ERR_INVALID_ARG);

    /* a caller's open transaction is neither used nor rolled back */
    CHECK(run(c, "BEGIN"));
    sy_registry_snapshot_t *s3 = NULL;
    CHECK(sy_registry_load(c, &s3, &err) == SY_ERR_INTERNAL && s3 == NULL);
    CHECK(sy_registry_cluster_tag(c, "eks-1", etl, 1, &changed, &err) == SY_ERR_INTERNAL);
    CHECK(PQtransactionStatus(c) == PQTRANS_INTRANS);
    CHECK(run(c, "ROLLBACK"));
out:
    sy_registry_snapshot_destroy(s0);
    sy_registry_snapshot_destroy(s1);
    sy_registry_snapshot_destroy(s2);
    free(emr_id);
    free(eks_id);
    free(local_id);
    free(cmd_id);
    sy_db_close(c);
}

/* ---- LISTEN / NOTIFY ---- */

/* Waits for one registry notification; returns ms waited, or -1 on timeout. Drains the rest. */
static long long wait_change(PGconn *listener, int timeout_ms)
{
    sy_err_t err = SY_ERR_INIT;
    PGnotify *n = NULL;
    long long t0 = now_ms();
    if (sy_db_wait_notification(listener, timeout_ms, &n, &err) != SY_OK)
        return -1;
    long long waited = now_ms() - t0;
    CHECK_STR(n->relname, SY_REGISTRY_CHANNEL);
    PQfreemem(n);
    while (sy_db_wait_notification(listener, 0, &n, &err) == SY_OK)
        PQfreemem(n);
    return waited;
}

static void test_notify(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *writer = connect_scratch(), *listener = connect_scratch();
    sy_registry_snapshot_t *before = NULL, *after = NULL;
    PGnotify *n = NULL;
    CHECK(writer && listener);
    if (!writer || !listener)
        goto out;
    CHECK(sy_db_listen(listener, SY_REGISTRY_CHANNEL, &err) == SY_OK);
    CHECK(sy_db_listen(listener, "bad-name; DROP TABLE x", &err) == SY_ERR_INVALID_ARG);

    /* nothing happened: times out after about the time asked for */
    long long t0 = now_ms();
    CHECK(sy_db_wait_notification(listener, 200, &n, &err) == SY_ERR_TIMEOUT && n == NULL);
    long long waited = now_ms() - t0;
    CHECK(waited >= 190 && waited < 1000);

    sy_cluster_input_t a = SY_CLUSTER_INPUT_INIT, b = SY_CLUSTER_INPUT_INIT;
    a.name = "old-cluster";
    a.backend_kind = b.backend_kind = "local";
    b.name = "new-cluster";
    const char *q[] = {"queue:etl"};
    a.tags = q;
    a.n_tags = 1;
    a.set_tags = true;
    CHECK(sy_registry_cluster_add(writer, &a, NULL, &err) == SY_OK);
    CHECK(sy_registry_cluster_add(writer, &b, NULL, &err) == SY_OK);
    CHECK(wait_change(listener, 1000) >= 0);
    CHECK(sy_registry_load(listener, &before, &err) == SY_OK);

    /* move a tag from one cluster to the other: the listener hears of it within a second and
     * its next snapshot routes queue:etl to the new cluster */
    bool changed = false;
    CHECK(sy_registry_cluster_tag(writer, "new-cluster", q, 1, &changed, &err) == SY_OK);
    CHECK(sy_registry_cluster_untag(writer, "old-cluster", q, 1, &changed, &err) == SY_OK);
    waited = wait_change(listener, 1000);
    CHECK(waited >= 0 && waited < 1000);
    CHECK(sy_registry_load(listener, &after, &err) == SY_OK);
    if (before && after) {
        CHECK(after->version > before->version);
        const sy_cluster_t *o = sy_registry_find_cluster(after, "old-cluster");
        const sy_cluster_t *nw = sy_registry_find_cluster(after, "new-cluster");
        CHECK(o && !sy_registry_resource_has_tag(o->id, o->name, o->tags, o->n_tags, q[0]));
        CHECK(nw && sy_registry_resource_has_tag(nw->id, nw->name, nw->tags, nw->n_tags, q[0]));
    }

    /* a write that changes nothing neither bumps the version nor wakes anyone (first let the
     * second notification of the tag move, a transaction of its own, arrive) */
    while (wait_change(listener, 200) >= 0)
        ;
    CHECK(sy_registry_cluster_set_status(writer, "new-cluster", "UP", &err) == SY_OK);
    CHECK(wait_change(listener, 300) < 0);
    sy_registry_snapshot_t *same = NULL;
    CHECK(sy_registry_load(listener, &same, &err) == SY_OK);
    CHECK(same && after && same->version == after->version);
    sy_registry_snapshot_destroy(same);

    /* changes made with plain SQL (psql) notify too */
    CHECK(run(writer, "UPDATE clusters SET weight = 7 WHERE name = 'old-cluster'"));
    waited = wait_change(listener, 1000);
    CHECK(waited >= 0 && waited < 1000);

    /* one transaction touching many rows wakes a listener once */
    CHECK(run(writer, "UPDATE clusters SET weight = weight + 1"));
    CHECK(wait_change(listener, 1000) >= 0);
    CHECK(sy_db_wait_notification(listener, 100, &n, &err) == SY_ERR_TIMEOUT);

    /* sy_db_notify reaches listeners of other channels too */
    CHECK(sy_db_listen(listener, "sy_itest", &err) == SY_OK);
    CHECK(sy_db_notify(writer, "sy_itest", "hello", &err) == SY_OK);
    CHECK(sy_db_wait_notification(listener, 1000, &n, &err) == SY_OK);
    if (n) {
        CHECK_STR(n->relname, "sy_itest");
        CHECK_STR(n->extra, "hello");
        PQfreemem(n);
        n = NULL;
    }

    /* a dropped connection is reported as retriable, not as a timeout */
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(listener));
    const char *kp[] = {pid};
    CHECK(sy_db_exec(writer, "SELECT pg_terminate_backend($1::integer)", 1, kp, NULL, &err) ==
          SY_OK);
    sy_err_code_t code = SY_ERR_TIMEOUT;
    for (int i = 0; i < 20 && code == SY_ERR_TIMEOUT; i++)
        code = sy_db_wait_notification(listener, 100, &n, &err);
    CHECK(code == SY_ERR_DATABASE && err.retriable);
out:
    sy_registry_snapshot_destroy(before);
    sy_registry_snapshot_destroy(after);
    sy_db_close(writer);
    sy_db_close(listener);
}

/* ---- connections ---- */

static void test_connect_errors(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *c = NULL;
    long long t0 = now_ms();
    /* nothing listens on port 1: fails fast, retriable, and never shows the password */
    CHECK(sy_db_connect("postgresql://alice:Sup3rSecretPw@127.0.0.1:1/x", 2, &c, &err) ==
          SY_ERR_DATABASE);
    CHECK(c == NULL && err.retriable);
    CHECK(strstr(err.msg, "Sup3rSecretPw") == NULL);
    CHECK(strstr(err.msg, "cannot connect") != NULL);
    CHECK(now_ms() - t0 < 5000);
    /* a server that answers "no such database": not retriable */
    CHECK(sy_db_connect_to(url, "sy_itest_no_such_db", 2, &c, &err) == SY_ERR_DATABASE);
    CHECK(!err.retriable);
    CHECK(strstr(err.msg, "sy_itest_no_such_db") != NULL);
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *admin = NULL;
    url = getenv("SWITCHYARD_DATABASE_URL");
    if (!url || !*url) {
        fprintf(stderr, "itest_registry: SWITCHYARD_DATABASE_URL is not set (run under "
                        "scripts/testenv)\n");
        return 1;
    }
    if (sy_db_connect(url, 5, &admin, &err) != SY_OK) {
        fprintf(stderr, "itest_registry: %s\n", err.msg);
        return 1;
    }
    srand((unsigned)(now_ms() ^ getpid()));
    snprintf(dbname, sizeof(dbname), "sy_itest_registry_%d_%d", (int)getpid(), rand() % 100000);
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname); /* our own name, not input */
    if (!run(admin, sql))
        return 1;

    test_migrations();
    test_crud();
    test_notify();
    test_connect_errors();

    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", dbname);
    CHECK(run(admin, sql));
    sy_db_close(admin);
    SY_TEST_DONE();
}
