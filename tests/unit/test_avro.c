/* Unit tests of sy_avro: field access by name and dotted path on values made by the codec and on
 * a test schema with nullable records, arrays, maps and booleans; errors (missing field, wrong
 * type, NULL for a non-nullable field, unknown enum symbol) reported, never a crash. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sy_avro.h"
#include "sy_codec.h"
#include "sy_log.h"
#include "sy_test.h"

static json_t *as_json(avro_value_t *v)
{
    sy_err_t err = SY_ERR_INIT;
    json_t *j = sy_codec_to_json(v, &err);
    if (!j)
        fprintf(stderr, "to_json: %s\n", err.msg);
    return j;
}

static void check_json(avro_value_t *v, const char *want_text, int line)
{
    json_t *got = as_json(v), *want = json_loads(want_text, 0, NULL);
    sy_test_checks++;
    if (!want || !got || !json_equal(got, want)) {
        char *g = got ? json_dumps(got, JSON_COMPACT) : NULL;
        sy_test_failures++;
        fprintf(stderr, "%s:%d: JSON differs\n  got:  %s\n  want: %s\n", __FILE__, line,
                g ? g : "(null)", want_text);
        free(g);
    }
    json_decref(got);
    json_decref(want);
}
#define CHECK_JSON(v, want) check_json((v), (want), __LINE__)

static int count_env(const char *key, const char *value, void *opaque)
{
    char *acc = opaque;
    strcat(acc, key);
    strcat(acc, "=");
    strcat(acc, value);
    strcat(acc, ";");
    return 0;
}

static int stop_at_b(const char *key, const char *value, void *opaque)
{
    (*(int *)opaque)++;
    return !strcmp(key, "B") ? 42 : 0;
}

static void test_request(sy_codec_t *c)
{
    sy_err_t err = SY_ERR_INIT;
    avro_value_t r, el;
    CHECK(sy_codec_value_new(c, SY_TYPE_JOB_REQUEST, &r, &err) == SY_OK);

    /* strings, plain and nullable */
    CHECK(sy_avro_set_string(&r, "job_id", "job-7") == 0);
    CHECK_STR(sy_avro_get_string(&r, "job_id"), "job-7");
    CHECK_STR(sy_avro_get_string(&r, "user"), ""); /* never set: empty, not NULL */
    CHECK(sy_avro_get_string(&r, "grouping") == NULL);
    CHECK(sy_avro_is_null(&r, "grouping"));
    CHECK(sy_avro_set_string(&r, "grouping", "dag") == 0);
    CHECK_STR(sy_avro_get_string(&r, "grouping"), "dag");
    CHECK(!sy_avro_is_null(&r, "grouping"));
    CHECK(sy_avro_set_string(&r, "grouping", NULL) == 0);
    CHECK(sy_avro_get_string(&r, "grouping") == NULL);
    CHECK(sy_avro_set_string(&r, "name", NULL) == EINVAL);
    CHECK(strstr(avro_strerror(), "name") && strstr(avro_strerror(), "not nullable"));
    CHECK(sy_avro_set_null(&r, "name") == EINVAL);
    /* embedded NUL bytes survive */
    CHECK(sy_avro_set_string_len(&r, "user", "a\0b", 3) == 0);
    size_t len = 0;
    const char *s = sy_avro_get_string_len(&r, "user", &len);
    CHECK(s && len == 3 && !memcmp(s, "a\0b", 3));
    CHECK(sy_avro_set_string(&r, "user", "alice") == 0);

    /* missing fields and wrong types */
    CHECK(sy_avro_set_string(&r, "nope", "x") == ENOENT);
    CHECK(strstr(avro_strerror(), "no field \"nope\"") != NULL);
    CHECK(sy_avro_get_string(&r, "nope") == NULL && sy_avro_is_null(&r, "nope"));
    CHECK(sy_avro_set_long(&r, "job_id", 5) == EINVAL);
    CHECK(strstr(avro_strerror(), "job_id") != NULL);
    CHECK(sy_avro_set_string(&r, "job_id.x", "y") == EINVAL);
    CHECK(sy_avro_set_string(&r, "", "y") == EINVAL &&
          sy_avro_set_string(&r, "command_criterion..name", "y") == EINVAL);
    CHECK(sy_avro_get_string(&r, "submitted_at") == NULL);

    /* numbers */
    CHECK(sy_avro_set_long(&r, "submitted_at", 1714564800123LL) == 0);
    CHECK(sy_avro_get_long(&r, "submitted_at", -1) == 1714564800123LL);
    int64_t t = 5;
    CHECK(!sy_avro_get_long_opt(&r, "timeout_ms", &t) && t == 5);
    CHECK(sy_avro_get_long(&r, "timeout_ms", -1) == -1);
    CHECK(sy_avro_set_long(&r, "timeout_ms", 60000) == 0);
    CHECK(sy_avro_get_long_opt(&r, "timeout_ms", &t) && t == 60000);
    int32_t i32;
    CHECK(!sy_avro_get_int_opt(&r, "submitted_at", &i32)); /* does not fit */

    /* nested records by path */
    CHECK(sy_avro_set_string(&r, "command_criterion.name", "spark") == 0);
    CHECK_STR(sy_avro_get_string(&r, "command_criterion.name"), "spark");
    CHECK(sy_avro_array_append_string(&r, "command_criterion.tags", "type:spark") == 0);
    avro_value_t crit;
    CHECK(sy_avro_get_record(&r, "command_criterion", &crit) == 0);
    CHECK_STR(sy_avro_get_string(&crit, "name"), "spark");
    CHECK(sy_avro_get_record(&r, "job_id", &crit) == EINVAL);

    /* arrays of strings and of records */
    CHECK(sy_avro_array_append_string(&r, "arguments", "--x") == 0);
    CHECK(sy_avro_array_append_string(&r, "arguments", "") == 0);
    CHECK(sy_avro_array_append_string(&r, "arguments", NULL) == EINVAL);
    /* the failed append left an element: clear and redo */
    CHECK(sy_avro_array_size(&r, "arguments") == 3);
    CHECK(sy_avro_array_clear(&r, "arguments") == 0 && sy_avro_array_size(&r, "arguments") == 0);
    CHECK(sy_avro_array_append_string(&r, "arguments", "--x") == 0);
    CHECK(sy_avro_array_append_string(&r, "arguments", "1") == 0);
    CHECK_STR(sy_avro_array_get_string(&r, "arguments", 1), "1");
    CHECK(sy_avro_array_get_string(&r, "arguments", 2) == NULL);
    CHECK(sy_avro_array_get(&r, "arguments", 9, &el) == ENOENT);
    CHECK(sy_avro_array_append(&r, "cluster_criteria", &el) == 0);
    CHECK(sy_avro_set_string(&el, "name", "emr-prod") == 0 &&
          sy_avro_array_append_string(&el, "tags", "env:prod") == 0);
    CHECK(sy_avro_array_append(&r, "cluster_criteria", &el) == 0);
    CHECK(sy_avro_set_string(&el, "id", "cl-2") == 0);
    CHECK(sy_avro_array_size(&r, "cluster_criteria") == 2);
    CHECK(sy_avro_array_get(&r, "cluster_criteria", 0, &el) == 0);
    CHECK_STR(sy_avro_get_string(&el, "name"), "emr-prod");
    CHECK(sy_avro_array_size(&r, "job_id") == 0);

    /* maps */
    CHECK(sy_avro_map_set_string(&r, "environment", "A", "1") == 0);
    CHECK(sy_avro_map_set_string(&r, "environment", "B", "2") == 0);
    CHECK(sy_avro_map_set_string(&r, "environment", "A", "one") == 0); /* replaces */
    CHECK(sy_avro_map_size(&r, "environment") == 2);
    CHECK_STR(sy_avro_map_get_string(&r, "environment", "A"), "one");
    CHECK(sy_avro_map_get_string(&r, "environment", "C") == NULL);
    const char *k, *v;
    CHECK(sy_avro_map_entry(&r, "environment", 1, &k, &v) == 0);
    CHECK_STR(k, "B");
    CHECK_STR(v, "2");
    CHECK(sy_avro_map_entry(&r, "environment", 2, &k, &v) == ENOENT);
    char acc[128] = "";
    CHECK(sy_avro_map_foreach(&r, "environment", count_env, acc) == 0);
    CHECK_STR(acc, "A=one;B=2;");
    int visited = 0;
    CHECK(sy_avro_map_foreach(&r, "environment", stop_at_b, &visited) == 42 && visited == 2);
    CHECK(sy_avro_map_set_string(&r, "metadata", "m", "x") == 0 &&
          sy_avro_map_clear(&r, "metadata") == 0 && sy_avro_map_size(&r, "metadata") == 0);
    CHECK(sy_avro_map_set_string(&r, "environment", NULL, "x") == EINVAL);

    CHECK_JSON(&r, "{\"job_id\":\"job-7\",\"name\":\"\",\"user\":\"alice\",\"grouping\":null,"
                   "\"grouping_instance\":null,\"cluster_criteria\":[{\"id\":null,\"name\":"
                   "\"emr-prod\",\"tags\":[\"env:prod\"]},{\"id\":\"cl-2\",\"name\":null,"
                   "\"tags\":[]}],\"command_criterion\":{\"id\":null,\"name\":\"spark\","
                   "\"tags\":[\"type:spark\"]},\"arguments\":[\"--x\",\"1\"],\"environment\":"
                   "{\"A\":\"one\",\"B\":\"2\"},\"timeout_ms\":60000,\"metadata\":{},"
                   "\"submitted_at\":1714564800123}");

    /* what was built encodes and decodes */
    void *buf = NULL;
    CHECK(sy_codec_encode(c, SY_TYPE_JOB_REQUEST, NULL, &r, &buf, &len, &err) == SY_OK);
    avro_value_t back;
    sy_codec_value_new(c, SY_TYPE_JOB_REQUEST, &back, &err);
    CHECK(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, buf, len, &back, &err) == SY_OK);
    CHECK_STR(sy_avro_get_string(&back, "cluster_criteria.0") ? "?" : "none", "none");
    CHECK(sy_avro_array_get(&back, "cluster_criteria", 1, &el) == 0);
    CHECK_STR(sy_avro_get_string(&el, "id"), "cl-2");
    free(buf);
    avro_value_decref(&back);

    /* RoutedJob: paths through the embedded request */
    avro_value_t rj;
    sy_codec_value_new(c, SY_TYPE_ROUTED_JOB, &rj, &err);
    CHECK(sy_avro_set_string(&rj, "request.job_id", "job-7") == 0);
    CHECK_STR(sy_avro_get_string(&rj, "request.job_id"), "job-7");
    CHECK(sy_avro_get_int(&rj, "attempt", 0) == 1);
    CHECK(sy_avro_set_int(&rj, "attempt", 3) == 0 && sy_avro_get_int(&rj, "attempt", 0) == 3);
    CHECK(sy_avro_set_long(&rj, "attempt", 1LL << 40) == EINVAL);
    CHECK(strstr(avro_strerror(), "does not fit") != NULL);
    avro_value_decref(&rj);
    avro_value_decref(&r);
}

static void test_status_log(sy_codec_t *c)
{
    sy_err_t err = SY_ERR_INIT;
    avro_value_t s, l;
    sy_codec_value_new(c, SY_TYPE_JOB_STATUS, &s, &err);
    CHECK_STR(sy_avro_get_enum(&s, "status"), "ACCEPTED");
    CHECK(sy_avro_set_enum(&s, "status", "RUNNING") == 0);
    CHECK_STR(sy_avro_get_enum(&s, "status"), "RUNNING");
    CHECK(sy_avro_set_enum(&s, "status", "RUNNIN") == EINVAL);
    CHECK(strstr(avro_strerror(), "RUNNIN") && strstr(avro_strerror(), "JobState"));
    CHECK(sy_avro_set_enum(&s, "status", NULL) == EINVAL);
    CHECK(sy_avro_set_enum(&s, "job_id", "RUNNING") == EINVAL);
    CHECK(sy_avro_get_enum(&s, "job_id") == NULL);
    CHECK(sy_avro_set_int(&s, "exit_code", -9) == 0 && sy_avro_get_int(&s, "exit_code", 0) == -9);
    CHECK(sy_avro_set_null(&s, "exit_code") == 0 && sy_avro_is_null(&s, "exit_code"));
    CHECK(sy_avro_set_long(&s, "submitted_at", 77) == 0 &&
          sy_avro_get_long(&s, "submitted_at", 0) == 77);
    avro_value_decref(&s);

    sy_codec_value_new(c, SY_TYPE_JOB_LOG, &l, &err);
    const void *data;
    size_t len;
    CHECK(sy_avro_get_bytes(&l, "chunk", &data, &len) && len == 0);
    CHECK(sy_avro_set_bytes(&l, "chunk", "\x00\xff\n", 3) == 0);
    CHECK(sy_avro_get_bytes(&l, "chunk", &data, &len) && len == 3 &&
          !memcmp(data, "\x00\xff\n", 3));
    CHECK(!sy_avro_get_bytes(&l, "stream", &data, &len));
    CHECK(sy_avro_set_bytes(&l, "stream", "x", 1) == EINVAL);
    avro_value_decref(&l);
}

/* A schema with what ours do not have (yet): booleans, nullable records, arrays and maps. */
static void test_nullable_containers(void)
{
    const char *js =
        "{\"type\":\"record\",\"name\":\"T\",\"fields\":["
        "{\"name\":\"b\",\"type\":\"boolean\"},"
        "{\"name\":\"nb\",\"type\":[\"null\",\"boolean\"]},"
        "{\"name\":\"inner\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"I\",\"fields\":["
        "{\"name\":\"x\",\"type\":\"string\"},"
        "{\"name\":\"tags\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"string\"}]}]}]},"
        "{\"name\":\"again\",\"type\":[\"null\",\"I\"]},"
        "{\"name\":\"m\",\"type\":[\"null\",{\"type\":\"map\",\"values\":[\"null\",\"string\"]}]}]"
        "}";
    avro_schema_t schema;
    CHECK(avro_schema_from_json_length(js, strlen(js), &schema) == 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t v, rec;
    avro_generic_value_new(iface, &v);

    bool b = true;
    CHECK(sy_avro_get_bool_opt(&v, "b", &b) && !b);
    CHECK(sy_avro_set_bool(&v, "b", true) == 0 && sy_avro_get_bool_opt(&v, "b", &b) && b);
    CHECK(!sy_avro_get_bool_opt(&v, "nb", &b));
    CHECK(sy_avro_set_bool(&v, "nb", false) == 0 && sy_avro_get_bool_opt(&v, "nb", &b) && !b);

    /* reads through a null record find nothing; writes select the record branch */
    CHECK(sy_avro_get_string(&v, "inner.x") == NULL);
    CHECK(sy_avro_get_record(&v, "inner", &rec) == ENOENT);
    CHECK(sy_avro_array_size(&v, "inner.tags") == 0);
    CHECK(sy_avro_set_string(&v, "inner.x", "hello") == 0);
    CHECK_STR(sy_avro_get_string(&v, "inner.x"), "hello");
    CHECK(sy_avro_array_size(&v, "inner.tags") == 0 && sy_avro_is_null(&v, "inner.tags"));
    CHECK(sy_avro_array_append_string(&v, "inner.tags", "t1") == 0);
    CHECK(sy_avro_array_size(&v, "inner.tags") == 1 && !sy_avro_is_null(&v, "inner.tags"));
    /* the second use of a named type (a link in avro-c) works the same */
    CHECK(sy_avro_set_record(&v, "again", &rec) == 0);
    CHECK(sy_avro_set_string(&rec, "x", "linked") == 0);
    CHECK_STR(sy_avro_get_string(&v, "again.x"), "linked");
    /* a map of nullable strings */
    CHECK(sy_avro_map_size(&v, "m") == 0);
    CHECK(sy_avro_map_set_string(&v, "m", "k", "v") == 0);
    CHECK_STR(sy_avro_map_get_string(&v, "m", "k"), "v");
    CHECK(sy_avro_set_null(&v, "inner") == 0 && sy_avro_get_string(&v, "inner.x") == NULL);

    CHECK_JSON(&v, "{\"b\":true,\"nb\":false,\"inner\":null,\"again\":{\"x\":\"linked\","
                   "\"tags\":null},\"m\":{\"k\":\"v\"}}");
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_log_set_level(SY_LOG_ERROR);
    sy_config_t *conf = sy_config_new();
    sy_codec_t *c = sy_codec_new(conf, &err);
    CHECK(c != NULL);
    if (c) {
        test_request(c);
        test_status_log(c);
    }
    test_nullable_containers();
    sy_codec_destroy(c);
    sy_config_destroy(conf);
    SY_TEST_DONE();
}
