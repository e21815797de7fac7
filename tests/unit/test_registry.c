/* Unit tests of sy_registry's pure parts (tag rules, implicit tags, names, addresses, command
 * specs) and of sy_db's offline behaviour (embedded migrations, URL errors without secrets).
 * No network: everything that talks to PostgreSQL is in tests/integration/itest_registry.c. */
#include <stdlib.h>

#include "sy_db.h"
#include "sy_registry.h"
#include "sy_test.h"

static bool tag_ok(const char *t)
{
    sy_err_t err = SY_ERR_INIT;
    return sy_tag_valid(t, &err);
}

/* The spec validator's verdict; on rejection the message must contain want_in_msg. */
static bool spec_rejected_with(const char *spec, const char *want_in_msg)
{
    sy_err_t err = SY_ERR_INIT;
    if (sy_registry_spec_valid(spec, &err))
        return false;
    if (err.code != SY_ERR_INVALID_ARG || !strstr(err.msg, want_in_msg)) {
        fprintf(stderr, "  spec %s: message \"%s\" lacks \"%s\"\n", spec, err.msg, want_in_msg);
        return false;
    }
    return true;
}

static void test_tags(void)
{
    sy_err_t err = SY_ERR_INIT;
    CHECK(tag_ok("env:prod"));
    CHECK(tag_ok("spark:3.5"));
    CHECK(tag_ok("type:spark-submit"));
    CHECK(tag_ok("a.b_c-D9:x/y=z:w")); /* value may hold ':' '/' '=' */
    CHECK(tag_ok("q:\"quoted\"{}\\"));
    CHECK(!tag_ok(""));
    CHECK(!tag_ok(NULL));
    CHECK(!tag_ok("env"));
    CHECK(!tag_ok(":prod"));
    CHECK(!tag_ok("env:"));
    CHECK(!tag_ok("env: prod"));
    CHECK(!tag_ok("env:pr\tod"));
    CHECK(!tag_ok("en v:prod"));
    CHECK(!tag_ok("env:a,b"));
    CHECK(!tag_ok("a/b:c"));
    CHECK(!tag_ok("k\xc3\xa9:v")); /* non-ASCII */
    CHECK(!tag_ok("k:v\x7f"));

    /* bounded length: 255 ok, 256 not */
    char t[300];
    memset(t, 'v', sizeof(t));
    memcpy(t, "k:", 2);
    t[255] = '\0';
    CHECK(tag_ok(t));
    t[255] = 'v';
    t[256] = '\0';
    CHECK(!sy_tag_valid(t, &err));
    CHECK(err.code == SY_ERR_INVALID_ARG && strstr(err.msg, "255"));

    /* the switchyard. prefix is reserved, in any case */
    CHECK(!sy_tag_valid("switchyard.id:cl-0123456789ab", &err));
    CHECK(strstr(err.msg, "reserved") != NULL);
    CHECK(!tag_ok("switchyard.name:x"));
    CHECK(!tag_ok("Switchyard.Name:x"));
    CHECK(!tag_ok("switchyard.anything:x"));
    CHECK(tag_ok("switchyardx:y")); /* only the "switchyard." prefix */

    sy_tag_valid("nocolon", &err);
    CHECK(strstr(err.msg, "key:value") != NULL);

    /* a request may ask for the implicit tags, but not for other reserved ones */
    CHECK(sy_tag_valid_criterion("switchyard.id:cl-0123456789ab", &err));
    CHECK(sy_tag_valid_criterion("switchyard.name:emr-prod-1", &err));
    CHECK(sy_tag_valid_criterion("env:prod", &err));
    CHECK(!sy_tag_valid_criterion("switchyard.other:x", &err));
    CHECK(!sy_tag_valid_criterion("switchyard.id:", &err));
}

static void test_has_tag(void)
{
    char *tags[] = {"env:prod", "spark:3.5"};
    const char *id = "cl-0123456789ab", *name = "emr-prod-1";
    CHECK(sy_registry_resource_has_tag(id, name, tags, 2, "env:prod"));
    CHECK(sy_registry_resource_has_tag(id, name, tags, 2, "spark:3.5"));
    CHECK(!sy_registry_resource_has_tag(id, name, tags, 2, "env:dev"));
    CHECK(!sy_registry_resource_has_tag(id, name, tags, 2, "ENV:prod")); /* case-sensitive */
    CHECK(!sy_registry_resource_has_tag(id, name, tags, 2, "env:pro"));
    /* implicit tags */
    CHECK(sy_registry_resource_has_tag(id, name, tags, 2, "switchyard.id:cl-0123456789ab"));
    CHECK(sy_registry_resource_has_tag(id, name, tags, 2, "switchyard.name:emr-prod-1"));
    CHECK(sy_registry_resource_has_tag(id, name, NULL, 0, "switchyard.name:emr-prod-1"));
    CHECK(!sy_registry_resource_has_tag(id, name, tags, 2, "switchyard.id:cl-0123456789ac"));
    CHECK(!sy_registry_resource_has_tag(id, name, tags, 2, "switchyard.name:emr-prod"));
    CHECK(!sy_registry_resource_has_tag(id, name, tags, 2, "switchyard.name:emr-prod-10"));
    CHECK(!sy_registry_resource_has_tag(id, name, tags, 2, "switchyard.id:emr-prod-1"));
    CHECK(!sy_registry_resource_has_tag(id, name, tags, 2, NULL));
    /* an explicit tag that merely looks implicit does not count (it cannot be stored anyway) */
    char *sneaky[] = {"switchyard.name:other"};
    CHECK(!sy_registry_resource_has_tag(id, name, sneaky, 1, "switchyard.name:other"));

    const char *want[] = {"env:prod", "switchyard.name:emr-prod-1"};
    CHECK(sy_registry_resource_has_tags(id, name, tags, 2, want, 2));
    const char *want2[] = {"env:prod", "queue:etl"};
    CHECK(!sy_registry_resource_has_tags(id, name, tags, 2, want2, 2));
    CHECK(sy_registry_resource_has_tags(id, name, tags, 2, NULL, 0));
}

static void test_fields(void)
{
    sy_err_t err = SY_ERR_INIT;
    CHECK(sy_registry_name_valid("cluster", "emr-prod-1", &err));
    CHECK(sy_registry_name_valid("cluster", "a", &err));
    CHECK(sy_registry_name_valid("cluster", "Spark_3.5-x", &err));
    CHECK(!sy_registry_name_valid("cluster", "", &err));
    CHECK(!sy_registry_name_valid("cluster", "-x", &err));
    CHECK(!sy_registry_name_valid("cluster", ".x", &err));
    CHECK(!sy_registry_name_valid("cluster", "a b", &err));
    CHECK(!sy_registry_name_valid("cluster", "a:b", &err));
    char longname[SY_NAME_MAX_LEN + 2];
    memset(longname, 'n', sizeof(longname));
    longname[SY_NAME_MAX_LEN] = '\0';
    CHECK(sy_registry_name_valid("cluster", longname, &err));
    longname[SY_NAME_MAX_LEN] = 'n';
    longname[SY_NAME_MAX_LEN + 1] = '\0';
    CHECK(!sy_registry_name_valid("cluster", longname, &err));
    /* a name may not look like an id of its kind */
    CHECK(!sy_registry_name_valid("cluster", "cl-0123456789ab", &err));
    CHECK(strstr(err.msg, "looks like a cluster id") != NULL);
    CHECK(sy_registry_name_valid("cluster", "cl-0123456789abc", &err));
    CHECK(sy_registry_name_valid("command", "cl-0123456789ab", &err));
    CHECK(!sy_registry_name_valid("command", "cmd-0123456789ab", &err));

    CHECK(sy_registry_backend_kind_valid("emr", &err));
    CHECK(sy_registry_backend_kind_valid("emr-eks", &err));
    CHECK(sy_registry_backend_kind_valid("local", &err));
    CHECK(!sy_registry_backend_kind_valid("EMR", &err));
    CHECK(strstr(err.msg, "emr, emr-eks, local") != NULL);
    CHECK(!sy_registry_backend_kind_valid(NULL, &err));

    CHECK(sy_registry_cluster_status_valid("OUT_OF_SERVICE", &err));
    CHECK(!sy_registry_cluster_status_valid("DOWN", &err));
    CHECK(sy_registry_command_status_valid("DEPRECATED", &err));
    CHECK(!sy_registry_command_status_valid("UP", &err));

    CHECK(sy_registry_address_valid("emr", "j-ABC123", &err));
    CHECK(!sy_registry_address_valid("emr", "ABC123", &err));
    CHECK(!sy_registry_address_valid("emr", "j-", &err));
    CHECK(!sy_registry_address_valid("emr", "j-AB C", &err));
    CHECK(!sy_registry_address_valid("emr", NULL, &err));
    CHECK(strstr(err.msg, "needs a backend address") != NULL);
    CHECK(sy_registry_address_valid("emr-eks", "abcdefghij0123456789klmno", &err));
    CHECK(!sy_registry_address_valid("emr-eks", "vc/1", &err));
    CHECK(sy_registry_address_valid("local", NULL, &err));
    CHECK(!sy_registry_address_valid("local", "x", &err));

    CHECK(sy_registry_region_valid("us-east-1", &err));
    CHECK(!sy_registry_region_valid("US-EAST-1", &err));
    CHECK(!sy_registry_region_valid("", &err));
}

static void test_specs(void)
{
    sy_err_t err = SY_ERR_INIT;
    const char *local = "{\"local\":{\"argv\":[\"/usr/bin/env\",\"spark-submit\"]}}";
    const char *emr = "{\"emr\":{\"jar\":\"command-runner.jar\",\"args\":[\"spark-submit\","
                      "\"--deploy-mode\",\"cluster\"],\"properties\":{\"k\":\"v\"},"
                      "\"action_on_failure\":\"CONTINUE\"}}";
    const char *eks = "{\"emr-eks\":{\"release_label\":\"emr-6.15.0-latest\","
                      "\"execution_role_arn\":\"arn:aws:iam::123456789012:role/job\","
                      "\"entry_point\":\"s3://b/app.py\",\"entry_point_arguments\":[\"a\"],"
                      "\"spark_submit_parameters\":\"--conf spark.executor.instances=2\","
                      "\"configuration_overrides\":{\"monitoringConfiguration\":{}},"
                      "\"retry_policy\":{\"max_attempts\":2}}}";
    CHECK(sy_registry_spec_valid(local, &err));
    CHECK(sy_registry_spec_valid(emr, &err));
    CHECK(sy_registry_spec_valid(eks, &err));
    CHECK(sy_registry_spec_valid("{\"emr\":{\"jar\":\"x.jar\",\"args\":[]},"
                                 "\"local\":{\"argv\":[\"true\"]}}",
                                 &err));
    CHECK(sy_registry_spec_has_backend(local, "local"));
    CHECK(!sy_registry_spec_has_backend(local, "emr"));
    CHECK(sy_registry_spec_has_backend(eks, "emr-eks"));
    CHECK(!sy_registry_spec_has_backend("not json", "emr"));
    CHECK(!sy_registry_spec_has_backend(NULL, "emr"));
    sy_command_t cmd = {.backends = SY_BACKEND_EMR_EKS};
    CHECK(sy_registry_command_runs_on(&cmd, "emr-eks"));
    CHECK(!sy_registry_command_runs_on(&cmd, "emr"));
    CHECK(!sy_registry_command_runs_on(NULL, "emr-eks"));

    CHECK(spec_rejected_with(NULL, "empty"));
    CHECK(spec_rejected_with("", "empty"));
    CHECK(spec_rejected_with("{\"local\":", "not valid JSON"));
    CHECK(spec_rejected_with("[1]", "JSON object"));
    CHECK(spec_rejected_with("{}", "JSON object"));
    CHECK(spec_rejected_with("{\"yarn\":{}}", "unknown backend \"yarn\""));
    CHECK(spec_rejected_with("{\"local\":[\"x\"]}", "spec.local must be an object"));
    CHECK(spec_rejected_with("{\"local\":{}}", "spec.local.argv is missing"));
    CHECK(spec_rejected_with("{\"local\":{\"argv\":[]}}", "non-empty array"));
    CHECK(spec_rejected_with("{\"local\":{\"argv\":\"ls\"}}", "non-empty array"));
    CHECK(spec_rejected_with("{\"local\":{\"argv\":[\"ls\",1]}}", "spec.local.argv[1]"));
    CHECK(spec_rejected_with("{\"local\":{\"argv\":[\"\"]}}", "spec.local.argv[0]"));
    CHECK(spec_rejected_with("{\"local\":{\"argv\":[\"ls\"],\"argz\":1}}", "unknown key \"argz\""));
    CHECK(spec_rejected_with("{\"local\":{\"argv\":[\"a\"]},\"local\":{\"argv\":[\"b\"]}}",
                             "duplicate"));
    CHECK(spec_rejected_with("{\"emr\":{\"args\":[]}}", "spec.emr.jar is missing"));
    CHECK(spec_rejected_with("{\"emr\":{\"jar\":\"x\"}}", "spec.emr.args is missing"));
    CHECK(spec_rejected_with("{\"emr\":{\"jar\":\"x\",\"args\":\"a b\"}}", "spec.emr.args"));
    CHECK(spec_rejected_with("{\"emr\":{\"jar\":\"x\",\"args\":[],\"properties\":{\"k\":1}}}",
                             "spec.emr.properties.k"));
    CHECK(
        spec_rejected_with("{\"emr\":{\"jar\":\"x\",\"args\":[],\"action_on_failure\":\"RETRY\"}}",
                           "CONTINUE, CANCEL_AND_WAIT, TERMINATE_CLUSTER"));
    CHECK(spec_rejected_with("{\"emr-eks\":{\"release_label\":\"emr-6.15.0-latest\","
                             "\"entry_point\":\"s3://b/a.py\"}}",
                             "spec.emr-eks.execution_role_arn is missing"));
    CHECK(spec_rejected_with("{\"emr-eks\":{\"release_label\":\"6.15\","
                             "\"execution_role_arn\":\"arn:x\",\"entry_point\":\"e\"}}",
                             "spec.emr-eks.release_label must start with \"emr-\""));
    CHECK(spec_rejected_with("{\"emr-eks\":{\"release_label\":\"emr-6\","
                             "\"execution_role_arn\":\"arn:x\",\"entry_point\":\"e\","
                             "\"retry_policy\":{\"max_attempts\":0}}}",
                             "spec.emr-eks.retry_policy"));

    /* EMR's 10240-character limit on step strings, and the overall size bound */
    size_t big = 10241;
    char *s = malloc(big + 100);
    snprintf(s, big + 100, "{\"emr\":{\"jar\":\"x\",\"args\":[\"%0*d\"]}}", (int)big, 0);
    CHECK(spec_rejected_with(s, "spec.emr.args[0] is longer than 10240"));
    free(s);
    s = malloc(SY_SPEC_MAX_LEN + 100);
    snprintf(s, SY_SPEC_MAX_LEN + 100, "{\"local\":{\"argv\":[\"%0*d\"]}}", SY_SPEC_MAX_LEN, 0);
    CHECK(spec_rejected_with(s, "larger than"));
    free(s);
}

static void test_db_offline(void)
{
    sy_err_t err = SY_ERR_INIT;
    PGconn *conn = (PGconn *)1;

    /* embedded migrations: 1, 2, 3, ... with a digest; the registry is the first */
    CHECK(sy_db_migration_count >= 1);
    for (int i = 0; i < sy_db_migration_count; i++) {
        CHECK(sy_db_migrations[i].version == i + 1);
        CHECK(strlen(sy_db_migrations[i].sha256) == 64);
        CHECK(strlen(sy_db_migrations[i].sql) > 0);
    }
    CHECK_STR(sy_db_migrations[0].name, "registry");
    CHECK_STR(sy_db_migrations[0].file, "0001_registry.sql");
    CHECK(strstr(sy_db_migrations[0].sql, "CREATE TABLE clusters") != NULL);
    CHECK(sy_db_latest_version() >= SY_REGISTRY_SCHEMA_VERSION);

    /* no URL: a config error, not libpq's PG* defaults */
    CHECK(sy_db_connect("", 1, &conn, &err) == SY_ERR_CONFIG);
    CHECK(conn == NULL);
    CHECK(strstr(err.msg, "database.url") != NULL);

    /* a URL that does not parse: the error never shows the password */
    CHECK(sy_db_connect("postgresql://alice:s3cr%zzet@db.example:5432/sy", 1, &conn, &err) ==
          SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "s3cr") == NULL);
    CHECK(strstr(err.msg, "does not parse") != NULL);
    CHECK(sy_db_connect("host=h password='hunter22 dbname=x", 1, &conn, &err) == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "hunter22") == NULL);

    /* snapshot helpers are NULL-safe */
    sy_registry_snapshot_destroy(NULL);
    CHECK(sy_registry_find_cluster(NULL, "x") == NULL);
    CHECK(sy_registry_find_command(NULL, "x") == NULL);
    sy_db_close(NULL);
}

int main(void)
{
    test_tags();
    test_has_tag();
    test_fields();
    test_specs();
    test_db_offline();
    SY_TEST_DONE();
}
