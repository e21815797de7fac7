/* Unit tests of sy_resolve: Genie routing semantics on an in-memory registry snapshot —
 * fallback order, status and link filtering, implicit id/name tags, backend spec filtering,
 * INVALID reasons, weighted and least-active selection. */
#include <stdlib.h>

#include "sy_resolve.h"
#include "sy_test.h"

static char *t_prod[] = {"env:prod", "spark:3.5"};
static char *t_prod_old[] = {"env:prod", "spark:3.3"};
static char *t_test[] = {"env:test", "spark:3.5"};
static char *t_down[] = {"env:prod", "spark:3.5", "queue:etl"};

static sy_cluster_t clusters[] = {
    {.id = "cl-000000000001",
     .name = "prod-a",
     .backend_kind = "local",
     .status = "UP",
     .tags = t_prod,
     .n_tags = 2,
     .weight = 3},
    {.id = "cl-000000000002",
     .name = "prod-b",
     .backend_kind = "local",
     .status = "UP",
     .tags = t_prod,
     .n_tags = 2,
     .weight = 1},
    {.id = "cl-000000000003",
     .name = "prod-old",
     .backend_kind = "local",
     .status = "UP",
     .tags = t_prod_old,
     .n_tags = 2,
     .weight = 1},
    {.id = "cl-000000000004",
     .name = "test-a",
     .backend_kind = "local",
     .status = "UP",
     .tags = t_test,
     .n_tags = 2,
     .weight = 1},
    {.id = "cl-000000000005",
     .name = "prod-down",
     .backend_kind = "local",
     .status = "OUT_OF_SERVICE",
     .tags = t_down,
     .n_tags = 3,
     .weight = 1},
    {.id = "cl-000000000006",
     .name = "prod-emr",
     .backend_kind = "emr",
     .backend_address = "j-1",
     .status = "UP",
     .tags = t_down,
     .n_tags = 3,
     .weight = 1},
};

static char *cmd_tags[] = {"type:spark-submit", "spark:3.5"};
static char *cmd_tags_old[] = {"type:spark-submit", "spark:3.3"};
static char *inactive_tags[] = {"type:hive"};
static char *links_all[] = {"cl-000000000001", "cl-000000000002", "cl-000000000004",
                            "cl-000000000005", "cl-000000000006"};
static char *links_old[] = {"cl-000000000003"};

static sy_command_t commands[] = {
    {.id = "cmd-000000000001",
     .name = "spark35",
     .status = "ACTIVE",
     .tags = cmd_tags,
     .n_tags = 2,
     .spec_json = "{\"local\":{\"argv\":[\"/bin/true\"]}}",
     .backends = SY_BACKEND_LOCAL,
     .cluster_ids = links_all,
     .n_cluster_ids = 5},
    {.id = "cmd-000000000002",
     .name = "spark33",
     .status = "ACTIVE",
     .tags = cmd_tags_old,
     .n_tags = 2,
     .spec_json = "{\"local\":{\"argv\":[\"/bin/true\"]}}",
     .backends = SY_BACKEND_LOCAL,
     .cluster_ids = links_old,
     .n_cluster_ids = 1},
    {.id = "cmd-000000000003",
     .name = "hive",
     .status = "INACTIVE",
     .tags = inactive_tags,
     .n_tags = 1,
     .spec_json = "{\"local\":{\"argv\":[\"/bin/true\"]}}",
     .backends = SY_BACKEND_LOCAL,
     .cluster_ids = links_all,
     .n_cluster_ids = 5},
};

static sy_registry_snapshot_t snap = {clusters, 6, commands, 3, 1};

static long fake_active(const char *name, void *opaque)
{
    if (!strcmp(name, "prod-a"))
        return 10;
    if (!strcmp(name, "prod-b"))
        return 2;
    return 0;
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_resolution_t res;
    uint64_t rng = 12345;
    const char *spark35[] = {"type:spark-submit", "spark:3.5"};
    sy_criterion_t cmd = {.tags = spark35, .n_tags = 2};

    /* first criterion matches nothing UP+linked, second (fallback) matches test-a */
    const char *c_none[] = {"env:staging"};
    const char *c_test[] = {"env:test"};
    sy_criterion_t crit[] = {{.tags = c_none, .n_tags = 1}, {.tags = c_test, .n_tags = 1}};
    CHECK(sy_resolve(&snap, crit, 2, &cmd, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_OK);
    CHECK_STR(res.cluster->name, "test-a");
    CHECK(res.criterion_index == 1);
    CHECK(strstr(res.rationale, "criterion #2") != NULL);

    /* the first matching criterion wins, later ones are not consulted */
    const char *c_prod[] = {"env:prod"};
    sy_criterion_t crit2[] = {{.tags = c_prod, .n_tags = 1}, {.tags = c_test, .n_tags = 1}};
    CHECK(sy_resolve(&snap, crit2, 2, &cmd, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_OK);
    CHECK(res.criterion_index == 0);
    CHECK(!strcmp(res.cluster->name, "prod-a") || !strcmp(res.cluster->name, "prod-b"));

    /* OUT_OF_SERVICE and backend without a spec (emr) are skipped */
    const char *c_etl[] = {"queue:etl"};
    sy_criterion_t crit3[] = {{.tags = c_etl, .n_tags = 1}};
    CHECK(sy_resolve(&snap, crit3, 1, &cmd, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "queue:etl") != NULL);

    /* links: spark33 runs only on prod-old */
    const char *spark33[] = {"spark:3.3"};
    sy_criterion_t cmd33 = {.tags = spark33, .n_tags = 1};
    CHECK(sy_resolve(&snap, crit2, 2, &cmd33, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_OK);
    CHECK_STR(res.cluster->name, "prod-old");
    CHECK_STR(res.command->name, "spark33");

    /* implicit tags: switchyard.name: and switchyard.id:, and criterion id/name fields */
    const char *c_name[] = {"switchyard.name:prod-b"};
    sy_criterion_t crit4[] = {{.tags = c_name, .n_tags = 1}};
    CHECK(sy_resolve(&snap, crit4, 1, &cmd, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_OK);
    CHECK_STR(res.cluster->name, "prod-b");
    const char *c_id[] = {"switchyard.id:cl-000000000004"};
    sy_criterion_t crit5[] = {{.tags = c_id, .n_tags = 1}};
    CHECK(sy_resolve(&snap, crit5, 1, &cmd, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_OK);
    CHECK_STR(res.cluster->name, "test-a");
    sy_criterion_t crit6[] = {{.name = "prod-a"}};
    CHECK(sy_resolve(&snap, crit6, 1, &cmd, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_OK);
    CHECK_STR(res.cluster->name, "prod-a");

    /* INACTIVE commands are never candidates; the reason names the command criterion */
    const char *hive[] = {"type:hive"};
    sy_criterion_t cmdh = {.tags = hive, .n_tags = 1};
    CHECK(sy_resolve(&snap, crit2, 2, &cmdh, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "type:hive") != NULL);

    /* the reason for unmet cluster criteria names each of them */
    sy_criterion_t crit7[] = {{.tags = c_none, .n_tags = 1}, {.tags = c_etl, .n_tags = 1}};
    CHECK(sy_resolve(&snap, crit7, 2, &cmd, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err) ==
          SY_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "env:staging") && strstr(err.msg, "queue:etl"));

    /* weighted: prod-a (3) vs prod-b (1) over 20000 picks: 75% ± 2% */
    int a = 0, total = 20000;
    for (int i = 0; i < total; i++) {
        sy_resolve(&snap, crit2, 2, &cmd, SY_SELECT_WEIGHTED, NULL, NULL, &rng, &res, &err);
        a += !strcmp(res.cluster->name, "prod-a");
    }
    double share = (double)a / total;
    fprintf(stderr, "weighted share of prod-a: %.3f (expect 0.75)\n", share);
    CHECK(share > 0.73 && share < 0.77);

    /* least-active: prod-b has fewer jobs in flight */
    for (int i = 0; i < 50; i++) {
        CHECK(sy_resolve(&snap, crit2, 2, &cmd, SY_SELECT_LEAST_ACTIVE, fake_active, NULL, &rng,
                         &res, &err) == SY_OK);
        CHECK_STR(res.cluster->name, "prod-b");
    }
    CHECK(strstr(res.rationale, "least-active") != NULL);
    SY_TEST_DONE();
}
