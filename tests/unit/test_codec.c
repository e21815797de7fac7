/* Unit tests of sy_codec: round trips of every record type under both framings (Confluent, with a
 * fake Schema Registry behind the client's transport hook, and single-object), schema evolution
 * in both directions, every kind of bad input (a distinct error code and a message naming what is
 * wrong; nothing leaks under the sanitizer build), the plain JSON form, value defaults, and
 * concurrent use of one codec. No network. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sy_avro.h"
#include "sy_codec.h"
#include "sy_log.h"
#include "sy_test.h"

#define EVO "tests/unit/data/evolution/"

/* A check of an error code that prints the message when it is not the expected one. */
#define CHECK_CODE(expr, want, err)                                                                \
    do {                                                                                           \
        sy_err_code_t _rc = (expr);                                                                \
        sy_test_checks++;                                                                          \
        if (_rc != (want)) {                                                                       \
            sy_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s = %s, expected %s (%s)\n", __FILE__, __LINE__, #expr,       \
                    sy_err_code_name(_rc), sy_err_code_name(want), (err)->msg);                    \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(err, needle)                                                                     \
    do {                                                                                           \
        sy_test_checks++;                                                                          \
        if (!strstr((err)->msg, (needle))) {                                                       \
            sy_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: message \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
                    (err)->msg, (needle));                                                         \
        }                                                                                          \
    } while (0)

/* ---- Sample records: every field set, unions non-null, arrays and maps non-empty ---- */

#define REQUEST_JSON                                                                               \
    "{\"job_id\":\"job-1\",\"name\":\"nightly \\\"etl\\\"\",\"user\":\"alice\","                   \
    "\"grouping\":\"dag_a\",\"grouping_instance\":\"run_1\","                                      \
    "\"cluster_criteria\":[{\"id\":null,\"name\":\"emr-prod\",\"tags\":[\"env:prod\","             \
    "\"team:data\"]},{\"id\":\"cl-2\",\"name\":null,\"tags\":[]}],"                                \
    "\"command_criterion\":{\"id\":null,\"name\":null,\"tags\":[\"type:spark\",\"ver:3.5\"]},"     \
    "\"arguments\":[\"--date\",\"2024-05-01\",\"\\u00fcn\\u00efcode \\u2713\",\"\"],"              \
    "\"environment\":{\"A\":\"1\",\"B\":\"\"},\"timeout_ms\":9007199254740993,"                    \
    "\"metadata\":{\"k\":\"v\"},\"submitted_at\":1714564800123}"

static const char *const samples[SY_TYPE_COUNT] = {
    [SY_TYPE_JOB_REQUEST] = REQUEST_JSON,
    [SY_TYPE_ROUTED_JOB] =
        "{\"job_id\":\"job-1\",\"request\":" REQUEST_JSON ",\"cluster_id\":\"cl-1\","
        "\"cluster_name\":\"emr-prod\",\"backend_kind\":\"emr\",\"backend_address\":\"j-ABC\","
        "\"region\":\"us-east-1\",\"cluster_max_concurrent\":256,\"command_id\":\"cmd-1\","
        "\"command_name\":\"spark\",\"command_spec\":\"{\\\"emr\\\":{}}\",\"attempt\":2,"
        "\"rationale\":\"matched criterion 1\",\"routed_at\":1714564800200}",
    [SY_TYPE_JOB_STATUS] =
        "{\"job_id\":\"job-1\",\"seq\":10,\"status\":\"RUNNING\",\"cluster\":\"emr-prod\","
        "\"command\":\"spark\",\"backend_id\":\"s-123\",\"message\":\"running\",\"attempt\":1,"
        "\"emitted_at\":1714564800300,\"submitted_at\":1714564800123,\"exit_code\":-1,"
        "\"failure_reason\":null,\"log_uri\":\"s3://logs/j-ABC/\",\"emitter\":\"worker-1\"}",
    [SY_TYPE_JOB_LOG] = "{\"job_id\":\"job-1\",\"stream\":\"stdout\",\"offset\":4096,"
                        "\"chunk\":\"line 1\\nline 2\\n\",\"attempt\":1,"
                        "\"emitted_at\":1714564800400}",
    [SY_TYPE_JOB_CONTROL] = "{\"job_id\":\"job-1\",\"action\":\"KILL\",\"reason\":\"user asked\","
                            "\"requested_by\":\"alice\",\"requested_at\":1714564800500}",
};

static const char *const topics[SY_TYPE_COUNT] = {
    "switchyard.requests", "switchyard.cluster.emr-prod", "switchyard.status", "switchyard.logs",
    "switchyard.control"};

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        fprintf(stderr, "bad test JSON (%s): %s\n", e.text, text);
        abort();
    }
    return j;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s (run from the source root)\n", path);
        abort();
    }
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static sy_config_t *conf_with(const char *key, const char *value, const char *key2,
                              const char *value2)
{
    sy_config_t *conf = sy_config_new();
    sy_err_t err = SY_ERR_INIT;
    if (key && sy_config_set(conf, key, value, &err) != SY_OK)
        abort();
    if (key2 && sy_config_set(conf, key2, value2, &err) != SY_OK)
        abort();
    return conf;
}

static sy_codec_t *plain_codec(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_config_t *conf = sy_config_new();
    sy_codec_t *c = sy_codec_new(conf, &err);
    if (!c) {
        fprintf(stderr, "sy_codec_new: %s\n", err.msg);
        abort();
    }
    sy_config_destroy(conf);
    return c;
}

/* Encodes JSON text as type; NULL (and err) on failure. */
static void *encode_json(sy_codec_t *c, sy_type_t t, const char *topic, const char *text,
                         size_t *len, sy_err_t *err)
{
    avro_value_t v;
    void *buf = NULL;
    json_t *j = J(text);
    *len = 0;
    if (sy_codec_value_new(c, t, &v, err) != SY_OK)
        abort();
    if (sy_codec_from_json(c, t, j, &v, err) == SY_OK)
        sy_codec_encode(c, t, topic, &v, &buf, len, err);
    avro_value_decref(&v);
    json_decref(j);
    return buf;
}

/* Decodes into a fresh value and returns the plain JSON (caller decrefs), NULL and err. */
static json_t *decode_json(sy_codec_t *c, sy_type_t t, const void *buf, size_t len, sy_err_t *err)
{
    avro_value_t v;
    json_t *out = NULL;
    if (sy_codec_value_new(c, t, &v, err) != SY_OK)
        abort();
    if (sy_codec_decode(c, t, buf, len, &v, err) == SY_OK)
        out = sy_codec_to_json(&v, err);
    avro_value_decref(&v);
    return out;
}

static void check_json(json_t *got, const char *want_text, int line)
{
    json_t *want = J(want_text);
    sy_test_checks++;
    if (!got || !json_equal(got, want)) {
        char *g = got ? json_dumps(got, JSON_COMPACT) : NULL;
        sy_test_failures++;
        fprintf(stderr, "%s:%d: JSON differs\n  got:  %s\n  want: %s\n", __FILE__, line,
                g ? g : "(null)", want_text);
        free(g);
    }
    json_decref(want);
}
#define CHECK_JSON(got, want) check_json((got), (want), __LINE__)

/* ======================================================================================== */
/* A fake Confluent Schema Registry, answering through the client's transport hook with the
 * bodies a real one sends (see tests/unit/data/schemareg). */

typedef struct fake_reg {
    pthread_mutex_t lock;
    char *schemas[64]; /* id = index + 1 */
    int n_schemas;
    struct {
        char subject[128];
        int id;
    } subj[64];
    int n_subj;
    int calls, gets, posts;
    char down[64]; /* a base URL that refuses connections */
    bool all_down;
    char last_url[512];
} fake_reg_t;

static void fake_init(fake_reg_t *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
}

static void fake_done(fake_reg_t *f)
{
    for (int i = 0; i < f->n_schemas; i++)
        free(f->schemas[i]);
    pthread_mutex_destroy(&f->lock);
}

static sy_err_code_t fake_transport(void *opaque, const char *method, const char *url,
                                    const char *body, long *status, char **resp, size_t *resp_len,
                                    sy_err_t *err)
{
    fake_reg_t *f = opaque;
    json_t *out = NULL;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    snprintf(f->last_url, sizeof(f->last_url), "%s", url);
    if (f->all_down || (f->down[0] && !strncmp(url, f->down, strlen(f->down)))) {
        pthread_mutex_unlock(&f->lock);
        return sy_err_set(err, SY_ERR_HTTP, true, "Failed to connect: Connection refused");
    }
    const char *p;
    if (!strcmp(method, "GET") && (p = strstr(url, "/schemas/ids/"))) {
        f->gets++;
        int id = atoi(p + 13);
        if (id >= 1 && id <= f->n_schemas) {
            *status = 200;
            out = json_pack("{s:s}", "schema", f->schemas[id - 1]);
        } else {
            *status = 404;
            out = json_pack("{s:i,s:s}", "error_code", 40403, "message", "Schema not found");
        }
    } else if (!strcmp(method, "POST") && (p = strstr(url, "/subjects/"))) {
        f->posts++;
        char subject[128];
        snprintf(subject, sizeof(subject), "%s", p + 10);
        char *slash = strchr(subject, '/');
        bool reg = slash != NULL;
        if (slash)
            *slash = '\0';
        json_t *b = json_loads(body, 0, NULL);
        const char *schema = json_string_value(json_object_get(b, "schema"));
        int id = 0, known_subject = 0;
        for (int i = 0; schema && i < f->n_schemas; i++)
            if (!strcmp(f->schemas[i], schema))
                id = i + 1;
        for (int i = 0; i < f->n_subj; i++) {
            if (!strcmp(f->subj[i].subject, subject)) {
                known_subject = 1;
                if (f->subj[i].id == id)
                    known_subject = 2;
            }
        }
        if (!schema) {
            *status = 422;
            out = json_pack("{s:i,s:s}", "error_code", 42201, "message", "Invalid schema");
        } else if (reg) {
            if (!id) {
                f->schemas[f->n_schemas++] = strdup(schema);
                id = f->n_schemas;
            }
            if (known_subject < 2) {
                snprintf(f->subj[f->n_subj].subject, sizeof(f->subj[0].subject), "%s", subject);
                f->subj[f->n_subj++].id = id;
            }
            *status = 200;
            out = json_pack("{s:i}", "id", id);
        } else if (known_subject == 2) {
            *status = 200;
            out = json_pack("{s:s,s:i,s:i,s:s}", "subject", subject, "version", 1, "id", id,
                            "schema", schema);
        } else {
            *status = 404;
            out = json_pack("{s:i,s:s}", "error_code", known_subject ? 40403 : 40401, "message",
                            known_subject ? "Schema not found" : "Subject not found");
        }
        json_decref(b);
    } else {
        *status = 404;
        out = json_pack("{s:i,s:s}", "error_code", 404, "message", "HTTP 404 Not Found");
    }
    pthread_mutex_unlock(&f->lock);
    *resp = json_dumps(out, JSON_COMPACT);
    *resp_len = strlen(*resp);
    json_decref(out);
    return SY_OK;
}

static sy_codec_t *fake_codec(fake_reg_t *f, const char *urls, sy_config_t *conf)
{
    sy_err_t err = SY_ERR_INIT;
    sy_schemareg_t *reg = sy_schemareg_new(urls, "user:secret", 1000, &err);
    if (!reg)
        abort();
    sy_schemareg_set_transport(reg, fake_transport, f);
    sy_config_t *own = conf ? NULL : sy_config_new();
    sy_codec_t *c = sy_codec_new_with_registry(conf ? conf : own, reg, &err);
    sy_config_destroy(own);
    if (!c) {
        fprintf(stderr, "codec: %s\n", err.msg);
        abort();
    }
    return c;
}

/* ======================================================================================== */

static void test_types_and_schemas(sy_codec_t *c)
{
    sy_err_t err = SY_ERR_INIT;
    CHECK(sy_type_parse("JobRequest") == SY_TYPE_JOB_REQUEST);
    CHECK(sy_type_parse("io.switchyard.RoutedJob") == SY_TYPE_ROUTED_JOB);
    CHECK(sy_type_parse("jobstatus") == SY_TYPE_JOB_STATUS);
    CHECK(sy_type_parse("JobLogs") == -1);
    CHECK(sy_type_parse(NULL) == -1);
    CHECK_STR(sy_type_name(SY_TYPE_JOB_CONTROL), "JobControl");

    /* CRC-64-AVRO: vectors computed with fastavro (the first is the Avro spec's) */
    CHECK(sy_codec_crc64_avro("\"null\"", 6) == 0x63dd24e7cc258f8aULL);
    CHECK(sy_codec_crc64_avro("\"int\"", 5) == 0x7275d51a3f395c8fULL);
    const char *fixed = "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}";
    CHECK(sy_codec_crc64_avro(fixed, strlen(fixed)) == 0x18602ec3ed31a504ULL);

    /* Parsing Canonical Form: attributes dropped, full names, key order name/type/fields */
    char *pcf = sy_codec_canonical_form(
        "{\"type\":\"record\",\"namespace\":\"a.b\",\"name\":\"R\",\"doc\":\"x\",\"fields\":["
        "{\"name\":\"t\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"},"
        "\"default\":0},{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":"
        "[\"A\",\"B\"]}},{\"name\":\"f\",\"type\":\"E\"},{\"name\":\"m\",\"type\":[\"null\","
        "{\"type\":\"map\",\"values\":\"bytes\"}]}]}",
        &err);
    CHECK_STR(pcf, "{\"name\":\"a.b.R\",\"type\":\"record\",\"fields\":[{\"name\":\"t\",\"type\":"
                   "\"long\"},{\"name\":\"e\",\"type\":{\"name\":\"a.b.E\",\"type\":\"enum\","
                   "\"symbols\":[\"A\",\"B\"]}},{\"name\":\"f\",\"type\":\"a.b.E\"},{\"name\":"
                   "\"m\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"bytes\"}]}]}");
    free(pcf);
    CHECK(sy_codec_canonical_form("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":"
                                  "\"a\",\"type\":\"Nope\"}]}",
                                  &err) == NULL);
    CHECK(err.code == SY_ERR_SCHEMA);
    CHECK_MSG(&err, "Nope");
    CHECK(sy_codec_canonical_form("{\"type\":", &err) == NULL);
    CHECK(err.code == SY_ERR_SCHEMA);

    /* RoutedJob references io.switchyard.JobRequest from another file: expanded in place */
    const char *rj = sy_codec_schema_canonical(c, SY_TYPE_ROUTED_JOB);
    CHECK(strstr(rj, "{\"name\":\"request\",\"type\":{\"name\":\"io.switchyard.JobRequest\","
                     "\"type\":\"record\"") != NULL);
    CHECK(strstr(rj, "\"type\":\"io.switchyard.Criterion\"") != NULL); /* second use: a name */
    const char *rjson = sy_codec_schema_json(c, SY_TYPE_ROUTED_JOB);
    CHECK(strstr(rjson, "\"doc\"") != NULL); /* registered as written, docs included */
    CHECK(sy_codec_schema_fingerprint(c, SY_TYPE_ROUTED_JOB) ==
          sy_codec_crc64_avro(rj, strlen(rj)));
    char *x = sy_codec_expand_schema("{\"type\":\"array\",\"items\":\"io.switchyard.JobStatus\"}",
                                     false, &err);
    CHECK(x && strstr(x, "\"name\":\"JobStatus\"") && strstr(x, "\"symbols\""));
    free(x);
    CHECK(!sy_codec_has_registry(c));
}

/* Every type: encode, check the single-object header, decode with another codec, compare. */
static void test_roundtrip_single_object(sy_codec_t *a, sy_codec_t *b)
{
    for (int t = 0; t < SY_TYPE_COUNT; t++) {
        sy_err_t err = SY_ERR_INIT;
        size_t len;
        uint8_t *buf = encode_json(a, t, NULL, samples[t], &len, &err);
        CHECK(buf != NULL);
        if (!buf) {
            fprintf(stderr, "encode %s: %s\n", sy_type_name(t), err.msg);
            continue;
        }
        uint64_t fp = sy_codec_schema_fingerprint(a, t), got = 0;
        for (int i = 0; i < 8; i++)
            got |= (uint64_t)buf[2 + i] << (8 * i);
        CHECK(len > 10 && buf[0] == 0xC3 && buf[1] == 0x01 && got == fp);
        sy_codec_frame_t f;
        CHECK(sy_codec_peek(buf, len, &f, &err) == SY_OK && !f.registry && f.fingerprint == fp &&
              f.header_len == 10);
        json_t *back = decode_json(b, t, buf, len, &err);
        CHECK_JSON(back, samples[t]);
        json_decref(back);

        /* decode_any finds the type from the writer schema */
        sy_type_t found;
        avro_value_t v;
        CHECK_CODE(sy_codec_decode_any(b, buf, len, &found, &v, &err), SY_OK, &err);
        if (err.code == SY_OK) {
            CHECK(found == (sy_type_t)t);
            avro_value_decref(&v);
        }
        free(buf);
    }
    /* bytes that are not UTF-8 come back as {"base64": ...}, and go in that way too */
    sy_err_t err = SY_ERR_INIT;
    const char *bin = "{\"job_id\":\"j\",\"stream\":\"stderr\",\"offset\":0,\"chunk\":{\"base64\":"
                      "\"AP8Q3g==\"},\"attempt\":3,\"emitted_at\":1}";
    size_t len;
    void *buf = encode_json(a, SY_TYPE_JOB_LOG, NULL, bin, &len, &err);
    json_t *back = buf ? decode_json(b, SY_TYPE_JOB_LOG, buf, len, &err) : NULL;
    CHECK_JSON(back, bin);
    json_decref(back);
    free(buf);
}

static void test_roundtrip_registry(void)
{
    fake_reg_t f;
    sy_err_t err = SY_ERR_INIT;
    fake_init(&f);
    sy_codec_t *a = fake_codec(&f, "http://reg-a:8081/,http://reg-b:8081", NULL);
    sy_codec_t *b = fake_codec(&f, "http://reg-a:8081", NULL);
    sy_codec_t *plain = plain_codec();
    CHECK(sy_codec_has_registry(a));
    uint8_t *bufs[SY_TYPE_COUNT] = {0};
    size_t lens[SY_TYPE_COUNT];
    for (int t = 0; t < SY_TYPE_COUNT; t++) {
        int posts = f.posts;
        bufs[t] = encode_json(a, t, topics[t], samples[t], &lens[t], &err);
        CHECK(bufs[t] != NULL);
        if (!bufs[t]) {
            fprintf(stderr, "encode %s: %s\n", sy_type_name(t), err.msg);
            continue;
        }
        CHECK(f.posts == posts + 1); /* registered under <topic>-value */
        char want[256];
        snprintf(want, sizeof(want), "http://reg-a:8081/subjects/%s-value/versions", topics[t]);
        CHECK_STR(f.last_url, want);
        int32_t id =
            (int32_t)((uint32_t)bufs[t][1] << 24 | bufs[t][2] << 16 | bufs[t][3] << 8 | bufs[t][4]);
        CHECK(bufs[t][0] == 0x00 && id == t + 1);
        CHECK_STR(f.schemas[id - 1], sy_codec_schema_json(a, t));
    }
    /* cached: encoding again asks nothing; our own records decode without asking */
    int calls = f.calls;
    size_t len;
    void *again = encode_json(a, SY_TYPE_JOB_STATUS, topics[SY_TYPE_JOB_STATUS],
                              samples[SY_TYPE_JOB_STATUS], &len, &err);
    CHECK(again && len == lens[SY_TYPE_JOB_STATUS] &&
          !memcmp(again, bufs[SY_TYPE_JOB_STATUS], len));
    free(again);
    json_t *j = decode_json(a, SY_TYPE_JOB_STATUS, bufs[SY_TYPE_JOB_STATUS],
                            lens[SY_TYPE_JOB_STATUS], &err);
    CHECK_JSON(j, samples[SY_TYPE_JOB_STATUS]);
    json_decref(j);
    CHECK(f.calls == calls);

    /* another codec fetches each id once, then decodes from its cache */
    for (int t = 0; t < SY_TYPE_COUNT; t++) {
        if (!bufs[t])
            continue;
        int gets = f.gets;
        for (int k = 0; k < 3; k++) {
            j = decode_json(b, t, bufs[t], lens[t], &err);
            CHECK_JSON(j, samples[t]);
            json_decref(j);
        }
        CHECK(f.gets == gets + 1);
    }
    /* a second topic of the same type: one more subject, same schema id */
    void *other = encode_json(a, SY_TYPE_JOB_REQUEST, "other.requests", samples[0], &len, &err);
    CHECK(other && !memcmp(other, bufs[0], 5));
    CHECK(f.n_subj == SY_TYPE_COUNT + 1);
    free(other);

    /* a registry codec still reads single-object records */
    void *so = encode_json(plain, SY_TYPE_JOB_LOG, NULL, samples[SY_TYPE_JOB_LOG], &len, &err);
    j = so ? decode_json(b, SY_TYPE_JOB_LOG, so, len, &err) : NULL;
    CHECK_JSON(j, samples[SY_TYPE_JOB_LOG]);
    json_decref(j);
    free(so);

    /* from the config: several URLs, basic auth checked up front, no I/O when created */
    sy_config_t *rc = conf_with("schema.registry.url", "http://127.0.0.1:1,http://127.0.0.1:2",
                                "schema.registry.basic.auth", "user:pw");
    sy_codec_t *fromconf = sy_codec_new(rc, &err);
    CHECK(fromconf && sy_codec_has_registry(fromconf));
    sy_codec_destroy(fromconf);
    CHECK(sy_config_set(rc, "schema.registry.basic.auth", "nocolon", &err) == SY_OK);
    CHECK(sy_codec_new(rc, &err) == NULL && err.code == SY_ERR_CONFIG);
    sy_config_destroy(rc);

    /* with a registry a topic is needed */
    CHECK(encode_json(a, SY_TYPE_JOB_LOG, NULL, samples[SY_TYPE_JOB_LOG], &len, &err) == NULL);
    CHECK(err.code == SY_ERR_INVALID_ARG);
    CHECK_MSG(&err, "topic");

    /* no registry configured: a registry-framed record is an unknown schema, said clearly */
    avro_value_t v;
    sy_codec_value_new(plain, SY_TYPE_JOB_REQUEST, &v, &err);
    CHECK_CODE(sy_codec_decode(plain, SY_TYPE_JOB_REQUEST, bufs[0], lens[0], &v, &err),
               SY_ERR_UNKNOWN_SCHEMA, &err);
    CHECK_MSG(&err, "schema.registry.url");
    CHECK_MSG(&err, "schema id 1");

    /* an id the registry does not know */
    uint8_t unknown[16];
    memcpy(unknown, bufs[0], sizeof(unknown));
    unknown[1] = 0x00, unknown[2] = 0x00, unknown[3] = 0x10, unknown[4] = 0x92; /* 4242 */
    avro_value_t vb;
    sy_codec_value_new(b, SY_TYPE_JOB_REQUEST, &vb, &err);
    CHECK_CODE(sy_codec_decode(b, SY_TYPE_JOB_REQUEST, unknown, sizeof(unknown), &vb, &err),
               SY_ERR_UNKNOWN_SCHEMA, &err);
    CHECK_MSG(&err, "4242");
    CHECK(!err.retriable);

    /* registry unreachable: retriable REGISTRY errors, nothing cached, fine once it is back */
    f.all_down = true;
    unknown[4] = 0x03; /* id 3, not yet fetched by a fresh codec */
    sy_codec_t *c = fake_codec(&f, "http://reg-a:8081,http://reg-b:8081", NULL);
    avro_value_t vc;
    sy_codec_value_new(c, SY_TYPE_JOB_STATUS, &vc, &err);
    CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_STATUS, bufs[SY_TYPE_JOB_STATUS],
                               lens[SY_TYPE_JOB_STATUS], &vc, &err),
               SY_ERR_REGISTRY, &err);
    CHECK(err.retriable);
    CHECK_MSG(&err, "2 URLs tried");
    CHECK(encode_json(c, SY_TYPE_JOB_LOG, "t", samples[SY_TYPE_JOB_LOG], &len, &err) == NULL);
    CHECK(err.code == SY_ERR_REGISTRY && err.retriable);
    f.all_down = false;
    CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_STATUS, bufs[SY_TYPE_JOB_STATUS],
                               lens[SY_TYPE_JOB_STATUS], &vc, &err),
               SY_OK, &err);

    /* failover: the first URL refuses, the second answers, and later requests go there first */
    snprintf(f.down, sizeof(f.down), "http://reg-a:8081");
    calls = f.calls;
    void *fo = encode_json(c, SY_TYPE_JOB_LOG, "failover", samples[SY_TYPE_JOB_LOG], &len, &err);
    CHECK(fo != NULL);
    CHECK(f.calls == calls + 2);
    CHECK(!strncmp(f.last_url, "http://reg-b:8081/", 18));
    calls = f.calls;
    free(fo);
    fo = encode_json(c, SY_TYPE_JOB_LOG, "failover2", samples[SY_TYPE_JOB_LOG], &len, &err);
    CHECK(fo != NULL && f.calls == calls + 1);
    free(fo);
    f.down[0] = '\0';

    /* schema.registry.auto.register=false: look up only */
    sy_config_t *noreg = conf_with("schema.registry.auto.register", "false", NULL, NULL);
    sy_codec_t *d = fake_codec(&f, "http://reg-a:8081", noreg);
    void *lk = encode_json(d, SY_TYPE_JOB_CONTROL, topics[SY_TYPE_JOB_CONTROL],
                           samples[SY_TYPE_JOB_CONTROL], &len, &err);
    CHECK(lk && !memcmp(lk, bufs[SY_TYPE_JOB_CONTROL], 5)); /* same id as registered by a */
    free(lk);
    int n_schemas = f.n_schemas;
    CHECK(encode_json(d, SY_TYPE_JOB_CONTROL, "never.registered", samples[SY_TYPE_JOB_CONTROL],
                      &len, &err) == NULL);
    CHECK(err.code == SY_ERR_NOT_FOUND);
    CHECK_MSG(&err, "auto.register");
    CHECK(f.n_schemas == n_schemas);

    avro_value_decref(&v);
    avro_value_decref(&vb);
    avro_value_decref(&vc);
    for (int t = 0; t < SY_TYPE_COUNT; t++)
        free(bufs[t]);
    sy_codec_destroy(a);
    sy_codec_destroy(b);
    sy_codec_destroy(c);
    sy_codec_destroy(d);
    sy_codec_destroy(plain);
    sy_config_destroy(noreg);
    fake_done(&f);
}

/* A codec whose current schema of one type is a test variant. */
static sy_codec_t *variant_codec(const char *file, sy_type_t want)
{
    sy_err_t err = SY_ERR_INIT;
    sy_codec_t *c = plain_codec();
    char *json = slurp(file);
    sy_type_t t;
    if (sy_codec_set_schema(c, json, &t, &err) != SY_OK || t != want) {
        fprintf(stderr, "set_schema %s: %s\n", file, err.msg);
        abort();
    }
    free(json);
    return c;
}

static void add_schema_file(sy_codec_t *c, const char *file)
{
    sy_err_t err = SY_ERR_INIT;
    char *json = slurp(file);
    int t;
    CHECK_CODE(sy_codec_add_schema(c, json, &t, &err), SY_OK, &err);
    CHECK(t >= 0);
    free(json);
}

static void test_evolution(sy_codec_t *cur)
{
    sy_err_t err = SY_ERR_INIT;
    size_t len;
    json_t *j;
    void *buf;
    sy_codec_t *v0 = variant_codec(EVO "JobRequest.v0.avsc", SY_TYPE_JOB_REQUEST);
    sy_codec_t *st2 = variant_codec(EVO "JobStatus.v2.avsc", SY_TYPE_JOB_STATUS);
    sy_codec_t *log0 = variant_codec(EVO "JobLog.v0.avsc", SY_TYPE_JOB_LOG);
    sy_codec_t *ctl2 = variant_codec(EVO "JobControl.v2.avsc", SY_TYPE_JOB_CONTROL);
    sy_codec_t *nouser = variant_codec(EVO "JobRequest.nouser.avsc", SY_TYPE_JOB_REQUEST);
    add_schema_file(cur, EVO "JobRequest.v0.avsc");
    add_schema_file(cur, EVO "JobStatus.v2.avsc");
    add_schema_file(cur, EVO "JobLog.v0.avsc");
    add_schema_file(cur, EVO "JobControl.v2.avsc");
    add_schema_file(cur, EVO "JobRequest.nouser.avsc");
    CHECK(sy_codec_schema_fingerprint(v0, SY_TYPE_JOB_REQUEST) !=
          sy_codec_schema_fingerprint(cur, SY_TYPE_JOB_REQUEST));

    /* older writer, newer reader: the fields the writer lacks get their defaults */
    const char *old_req = "{\"job_id\":\"j0\",\"name\":\"n\",\"user\":\"u\",\"grouping\":\"g\","
                          "\"cluster_criteria\":[{\"id\":\"c1\",\"tags\":[\"a:b\"]}],"
                          "\"command_criterion\":{\"id\":null,\"tags\":[\"spark\"]},"
                          "\"arguments\":[\"x\"],\"environment\":{\"E\":\"1\"},"
                          "\"submitted_at\":5}";
    buf = encode_json(v0, SY_TYPE_JOB_REQUEST, NULL, old_req, &len, &err);
    j = buf ? decode_json(cur, SY_TYPE_JOB_REQUEST, buf, len, &err) : NULL;
    CHECK_JSON(j, "{\"job_id\":\"j0\",\"name\":\"n\",\"user\":\"u\",\"grouping\":\"g\","
                  "\"grouping_instance\":null,\"cluster_criteria\":[{\"id\":\"c1\",\"name\":null,"
                  "\"tags\":[\"a:b\"]}],\"command_criterion\":{\"id\":null,\"name\":null,"
                  "\"tags\":[\"spark\"]},\"arguments\":[\"x\"],\"environment\":{\"E\":\"1\"},"
                  "\"timeout_ms\":null,\"metadata\":{},\"submitted_at\":5}");
    json_decref(j);
    free(buf);

    /* newer writer, older reader: the fields the reader does not know are skipped */
    buf = encode_json(cur, SY_TYPE_JOB_REQUEST, NULL, samples[SY_TYPE_JOB_REQUEST], &len, &err);
    j = buf ? decode_json(v0, SY_TYPE_JOB_REQUEST, buf, len, &err) : NULL;
    CHECK_JSON(j, "{\"job_id\":\"job-1\",\"name\":\"nightly \\\"etl\\\"\",\"user\":\"alice\","
                  "\"grouping\":\"dag_a\",\"cluster_criteria\":[{\"id\":null,\"tags\":"
                  "[\"env:prod\",\"team:data\"]},{\"id\":\"cl-2\",\"tags\":[]}],"
                  "\"command_criterion\":{\"id\":null,\"tags\":[\"type:spark\",\"ver:3.5\"]},"
                  "\"arguments\":[\"--date\",\"2024-05-01\",\"\\u00fcn\\u00efcode \\u2713\",\"\"],"
                  "\"environment\":{\"A\":\"1\",\"B\":\"\"},\"submitted_at\":1714564800123}");
    json_decref(j);
    free(buf);

    /* a newer JobStatus (fields added in the middle and at the end): v1 skips them */
    const char *new_status =
        "{\"job_id\":\"j2\",\"seq\":3,\"status\":\"FAILED\",\"cluster\":\"c\",\"command\":null,"
        "\"priority\":7,\"backend_id\":null,\"message\":\"boom\",\"progress\":0.5,\"attempt\":2,"
        "\"emitted_at\":9,\"submitted_at\":null,\"exit_code\":1,\"failure_reason\":\"USER_ERROR\","
        "\"log_uri\":null,\"emitter\":\"w\",\"labels\":{\"x\":\"y\"}}";
    buf = encode_json(st2, SY_TYPE_JOB_STATUS, NULL, new_status, &len, &err);
    j = buf ? decode_json(cur, SY_TYPE_JOB_STATUS, buf, len, &err) : NULL;
    CHECK_JSON(j, "{\"job_id\":\"j2\",\"seq\":3,\"status\":\"FAILED\",\"cluster\":\"c\","
                  "\"command\":null,\"backend_id\":null,\"message\":\"boom\",\"attempt\":2,"
                  "\"emitted_at\":9,\"submitted_at\":null,\"exit_code\":1,"
                  "\"failure_reason\":\"USER_ERROR\",\"log_uri\":null,\"emitter\":\"w\"}");
    json_decref(j);
    free(buf);
    /* ... and a symbol it does not know is an error naming it, not a wrong value */
    const char *queued = "{\"job_id\":\"j3\",\"seq\":1,\"status\":\"QUEUED\",\"emitted_at\":1}";
    buf = encode_json(st2, SY_TYPE_JOB_STATUS, NULL, queued, &len, &err);
    j = buf ? decode_json(cur, SY_TYPE_JOB_STATUS, buf, len, &err) : NULL;
    CHECK(buf && !j && err.code == SY_ERR_SCHEMA);
    CHECK_MSG(&err, "QUEUED");
    CHECK_MSG(&err, "JobStatus.status");
    free(buf);

    /* the newer reader fills its added fields from their defaults */
    buf = encode_json(cur, SY_TYPE_JOB_STATUS, NULL, samples[SY_TYPE_JOB_STATUS], &len, &err);
    j = buf ? decode_json(st2, SY_TYPE_JOB_STATUS, buf, len, &err) : NULL;
    CHECK(j && json_integer_value(json_object_get(j, "priority")) == 0 &&
          json_is_null(json_object_get(j, "progress")) &&
          json_object_size(json_object_get(j, "labels")) == 0 &&
          json_integer_value(json_object_get(j, "seq")) == 10 &&
          !strcmp(json_string_value(json_object_get(j, "emitter")), "worker-1"));
    json_decref(j);
    free(buf);

    /* promotions: int → long, string → bytes */
    buf = encode_json(log0, SY_TYPE_JOB_LOG, NULL,
                      "{\"job_id\":\"j\",\"stream\":\"stdout\",\"offset\":123,\"chunk\":\"abc\","
                      "\"emitted_at\":7}",
                      &len, &err);
    j = buf ? decode_json(cur, SY_TYPE_JOB_LOG, buf, len, &err) : NULL;
    CHECK_JSON(j, "{\"job_id\":\"j\",\"stream\":\"stdout\",\"offset\":123,\"chunk\":\"abc\","
                  "\"attempt\":1,\"emitted_at\":7}");
    json_decref(j);
    free(buf);

    /* a newer enum symbol: KILL reads, PAUSE is named in the error */
    buf = encode_json(ctl2, SY_TYPE_JOB_CONTROL, NULL, samples[SY_TYPE_JOB_CONTROL], &len, &err);
    j = buf ? decode_json(cur, SY_TYPE_JOB_CONTROL, buf, len, &err) : NULL;
    CHECK_JSON(j, samples[SY_TYPE_JOB_CONTROL]);
    json_decref(j);
    free(buf);
    buf = encode_json(ctl2, SY_TYPE_JOB_CONTROL, NULL,
                      "{\"job_id\":\"j\",\"action\":\"PAUSE\",\"requested_by\":\"b\","
                      "\"requested_at\":1}",
                      &len, &err);
    j = buf ? decode_json(cur, SY_TYPE_JOB_CONTROL, buf, len, &err) : NULL;
    CHECK(buf && !j && err.code == SY_ERR_SCHEMA);
    CHECK_MSG(&err, "PAUSE");
    free(buf);

    /* a writer without a field we need (no default) cannot be read: said, not guessed */
    buf = encode_json(nouser, SY_TYPE_JOB_REQUEST, NULL,
                      "{\"job_id\":\"j\",\"name\":\"n\",\"cluster_criteria\":[],"
                      "\"command_criterion\":{\"tags\":[]},\"submitted_at\":1}",
                      &len, &err);
    j = buf ? decode_json(cur, SY_TYPE_JOB_REQUEST, buf, len, &err) : NULL;
    CHECK(buf && !j && err.code == SY_ERR_SCHEMA);
    CHECK_MSG(&err, "user");
    CHECK_MSG(&err, "no default");
    free(buf);

    /* a reader differing only in a default (same canonical form) takes its own defaults */
    sy_codec_t *d5 = plain_codec();
    char *st = strdup(sy_codec_schema_json(d5, SY_TYPE_JOB_STATUS));
    char *at = strstr(st, "\"name\":\"attempt\",\"type\":\"int\",\"default\":1");
    CHECK(at != NULL);
    if (at) {
        at[strlen("\"name\":\"attempt\",\"type\":\"int\",\"default\":")] = '5';
        uint64_t fp = sy_codec_schema_fingerprint(d5, SY_TYPE_JOB_STATUS);
        CHECK_CODE(sy_codec_set_schema(d5, st, NULL, &err), SY_OK, &err);
        CHECK(sy_codec_schema_fingerprint(d5, SY_TYPE_JOB_STATUS) == fp);
        avro_value_t dv;
        sy_codec_value_new(d5, SY_TYPE_JOB_STATUS, &dv, &err);
        CHECK(sy_avro_get_int(&dv, "attempt", 0) == 5);
        avro_value_decref(&dv);
        CHECK_CODE(sy_codec_set_schema(d5, st, NULL, &err), SY_OK, &err); /* again: same */
        sy_codec_value_new(d5, SY_TYPE_JOB_STATUS, &dv, &err);
        CHECK(sy_avro_get_int(&dv, "attempt", 0) == 5);
        avro_value_decref(&dv);
    }
    free(st);
    sy_codec_destroy(d5);

    /* evolution through the registry: the old writer registers its schema, a current reader
     * fetches it by id and resolves it; and the other way round */
    fake_reg_t f;
    fake_init(&f);
    sy_codec_t *r0 = fake_codec(&f, "http://reg:8081", NULL);
    sy_codec_t *r1 = fake_codec(&f, "http://reg:8081", NULL);
    char *json = slurp(EVO "JobRequest.v0.avsc");
    CHECK_CODE(sy_codec_set_schema(r0, json, NULL, &err), SY_OK, &err);
    free(json);
    buf = encode_json(r0, SY_TYPE_JOB_REQUEST, "evolve.requests", old_req, &len, &err);
    CHECK(buf && ((uint8_t *)buf)[0] == 0x00);
    j = buf ? decode_json(r1, SY_TYPE_JOB_REQUEST, buf, len, &err) : NULL;
    CHECK(j && json_is_null(json_object_get(j, "timeout_ms")) &&
          json_is_object(json_object_get(j, "metadata")) &&
          !strcmp(json_string_value(json_object_get(j, "grouping")), "g"));
    json_decref(j);
    free(buf);
    buf = encode_json(r1, SY_TYPE_JOB_REQUEST, "evolve.requests", samples[0], &len, &err);
    j = buf ? decode_json(r0, SY_TYPE_JOB_REQUEST, buf, len, &err) : NULL;
    CHECK(j && !json_object_get(j, "metadata") &&
          !strcmp(json_string_value(json_object_get(j, "job_id")), "job-1"));
    CHECK(f.n_schemas == 2 && f.gets == 2);
    json_decref(j);
    free(buf);
    sy_codec_destroy(r0);
    sy_codec_destroy(r1);
    fake_done(&f);

    sy_codec_destroy(v0);
    sy_codec_destroy(st2);
    sy_codec_destroy(log0);
    sy_codec_destroy(ctl2);
    sy_codec_destroy(nouser);
}

#define MINREQ(extra)                                                                              \
    "{\"job_id\":\"j\",\"name\":\"n\",\"user\":\"u\",\"cluster_criteria\":[],"                     \
    "\"command_criterion\":{}," extra "\"submitted_at\":1}"

/* ---- Bad input ---- */

static size_t put_varint(uint8_t *p, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (u >= 0x80) {
        p[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    p[n++] = (uint8_t)u;
    return n;
}

/* A single-object header for our current JobControl, then body. */
static size_t control_record(sy_codec_t *c, uint8_t *out, const uint8_t *body, size_t n)
{
    uint64_t fp = sy_codec_schema_fingerprint(c, SY_TYPE_JOB_CONTROL);
    out[0] = 0xC3;
    out[1] = 0x01;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(fp >> (8 * i));
    memcpy(out + 10, body, n);
    return 10 + n;
}

static sy_err_code_t decode_control(sy_codec_t *c, const uint8_t *body, size_t n, sy_err_t *err)
{
    uint8_t rec[256];
    avro_value_t v;
    sy_codec_value_new(c, SY_TYPE_JOB_CONTROL, &v, err);
    size_t len = control_record(c, rec, body, n);
    sy_err_code_t rc = sy_codec_decode(c, SY_TYPE_JOB_CONTROL, rec, len, &v, err);
    avro_value_decref(&v);
    return rc;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_bad_input(sy_codec_t *c)
{
    sy_err_t err = SY_ERR_INIT;
    avro_value_t v;
    sy_codec_value_new(c, SY_TYPE_JOB_REQUEST, &v, &err);

    /* framing */
    static const struct {
        const char *bytes;
        size_t len;
        sy_err_code_t code;
        const char *needle;
    } frames[] = {
        {"", 0, SY_ERR_TRUNCATED, "empty record"},
        {"\x00", 1, SY_ERR_TRUNCATED, "5-byte Schema Registry header"},
        {"\x00\x00\x00\x01", 4, SY_ERR_TRUNCATED, "5-byte"},
        {"\xC3", 1, SY_ERR_TRUNCATED, "10-byte single-object header"},
        {"\xC3\x01\x01\x02\x03", 5, SY_ERR_TRUNCATED, "10-byte"},
        {"\xC3\x02\x01\x02\x03\x04\x05\x06\x07\x08\x00", 11, SY_ERR_BAD_MAGIC,
         "0xC3 followed by 0x02"},
        {"Obj\x01", 4, SY_ERR_BAD_MAGIC, "first byte 0x4F"},
        {"{\"job_id\":1}", 12, SY_ERR_BAD_MAGIC, "looks like JSON"},
        {"\xC3\x01\x01\x02\x03\x04\x05\x06\x07\x08\x00", 11, SY_ERR_UNKNOWN_SCHEMA,
         "0807060504030201"},
    };
    for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
        CHECK_CODE(
            sy_codec_decode(c, SY_TYPE_JOB_REQUEST, frames[i].bytes, frames[i].len, &v, &err),
            frames[i].code, &err);
        CHECK_MSG(&err, frames[i].needle);
    }
    CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, NULL, 0, &v, &err), SY_ERR_TRUNCATED, &err);

    /* every proper prefix of every record is truncated — and decoding it leaks nothing */
    for (int t = 0; t < SY_TYPE_COUNT; t++) {
        size_t len;
        uint8_t *buf = encode_json(c, t, NULL, samples[t], &len, &err);
        avro_value_t tv;
        sy_codec_value_new(c, t, &tv, &err);
        int wrong = 0;
        for (size_t cut = 0; buf && cut < len; cut++) {
            if (sy_codec_decode(c, t, buf, cut, &tv, &err) != SY_ERR_TRUNCATED) {
                if (!wrong++)
                    fprintf(stderr, "%s cut at %zu: %s (%s)\n", sy_type_name(t), cut,
                            sy_err_code_name(err.code), err.msg);
            }
        }
        CHECK(buf && wrong == 0);
        /* a field path in the message */
        if (t == SY_TYPE_JOB_REQUEST && buf) {
            CHECK_CODE(sy_codec_decode(c, t, buf, len - 1, &tv, &err), SY_ERR_TRUNCATED, &err);
            CHECK_MSG(&err, "JobRequest.submitted_at");
            CHECK_MSG(&err, "record truncated");
        }
        /* trailing bytes after a complete record */
        uint8_t *longer = malloc(len + 3);
        memcpy(longer, buf, len);
        memcpy(longer + len, "\x02zz", 3);
        CHECK_CODE(sy_codec_decode(c, t, longer, len + 3, &tv, &err), SY_ERR_INVALID_ARG, &err);
        CHECK_MSG(&err, "3 unexpected bytes");
        free(longer);
        /* the value is still good for the next record */
        CHECK_CODE(sy_codec_decode(c, t, buf, len, &tv, &err), SY_OK, &err);
        avro_value_decref(&tv);
        free(buf);
    }

    /* a schema of the wrong record type */
    size_t slen;
    void *status =
        encode_json(c, SY_TYPE_JOB_STATUS, NULL, samples[SY_TYPE_JOB_STATUS], &slen, &err);
    CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, status, slen, &v, &err), SY_ERR_WRONG_TYPE,
               &err);
    CHECK_MSG(&err, "io.switchyard.JobStatus");
    CHECK_MSG(&err, "not JobRequest");
    free(status);

    /* crafted bodies */
    uint8_t body[64];
    size_t n;
    /* valid: job_id "a", KILL, reason null, requested_by "b", requested_at 1 */
    CHECK_CODE(decode_control(c,
                              (const uint8_t *)"\x02"
                                               "a"
                                               "\x00\x00\x02"
                                               "b"
                                               "\x02",
                              7, &err),
               SY_OK, &err);
    n = put_varint(body, (int64_t)1 << 40); /* a string claiming a terabyte */
    CHECK_CODE(decode_control(c, body, n, &err), SY_ERR_TOO_LARGE, &err);
    CHECK_MSG(&err, "JobControl.job_id");
    CHECK_MSG(&err, "codec.max.string.bytes");
    n = put_varint(body, 1000); /* within the limit, beyond the data */
    memcpy(body + n, "abc", 3);
    CHECK_CODE(decode_control(c, body, n + 3, &err), SY_ERR_TRUNCATED, &err);
    CHECK_MSG(&err, "1000 bytes");
    n = put_varint(body, -5);
    CHECK_CODE(decode_control(c, body, n, &err), SY_ERR_INVALID_ARG, &err);
    CHECK_MSG(&err, "negative string length");
    memset(body, 0xFF, 11);
    body[11] = 0x01;
    CHECK_CODE(decode_control(c, body, 12, &err), SY_ERR_INVALID_ARG, &err);
    CHECK_MSG(&err, "varint");
    CHECK_CODE(decode_control(c,
                              (const uint8_t *)"\x02"
                                               "a"
                                               "\x06",
                              3, &err),
               SY_ERR_INVALID_ARG, &err);
    CHECK_MSG(&err, "enum index 3");
    CHECK_MSG(&err, "JobControl.action");
    CHECK_CODE(decode_control(c,
                              (const uint8_t *)"\x02"
                                               "a"
                                               "\x00\x0e",
                              4, &err),
               SY_ERR_INVALID_ARG, &err);
    CHECK_MSG(&err, "union branch index 7");
    CHECK_MSG(&err, "JobControl.reason");

    /* oversized strings, arrays and maps against configured limits */
    sy_config_t *small = conf_with("codec.max.string.bytes", "32", "codec.max.items", "3");
    sy_codec_t *lim = sy_codec_new(small, &err);
    avro_value_t lv;
    sy_codec_value_new(lim, SY_TYPE_JOB_REQUEST, &lv, &err);
    struct {
        const char *field_json; /* replaces "arguments":[...] in the sample */
        const char *needle;
    } big[] = {
        {"\"arguments\":[\"1\",\"2\",\"3\",\"4\"]",
         "JobRequest.arguments: array of at least 4 items exceeds codec.max.items (3)"},
        {"\"arguments\":[\"0123456789012345678901234567890123456789\"]",
         "JobRequest.arguments[0]: string of 40 bytes exceeds codec.max.string.bytes (32)"},
        {"\"arguments\":[],\"environment\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}",
         "JobRequest.environment: map of at least 4 items"},
    };
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        char text[2048];
        snprintf(text, sizeof(text),
                 "{\"job_id\":\"j\",\"name\":\"n\",\"user\":\"u\",\"cluster_criteria\":[],"
                 "\"command_criterion\":{\"tags\":[]},%s,\"submitted_at\":1}",
                 big[i].field_json);
        size_t blen;
        void *b = encode_json(c, SY_TYPE_JOB_REQUEST, NULL, text, &blen, &err);
        CHECK_CODE(sy_codec_decode(lim, SY_TYPE_JOB_REQUEST, b, blen, &lv, &err), SY_ERR_TOO_LARGE,
                   &err);
        CHECK_MSG(&err, big[i].needle);
        free(b);
    }
    size_t blen; /* within the limits: fine */
    void *b = encode_json(c, SY_TYPE_JOB_REQUEST, NULL,
                          MINREQ("\"arguments\":[\"1\",\"2\",\"3\"],"), &blen, &err);
    CHECK_CODE(sy_codec_decode(lim, SY_TYPE_JOB_REQUEST, b, blen, &lv, &err), SY_OK, &err);
    free(b);
    /* nested: a criterion with too many tags */
    b = encode_json(
        c, SY_TYPE_JOB_REQUEST, NULL,
        "{\"job_id\":\"j\",\"name\":\"n\",\"user\":\"u\",\"cluster_criteria\":[{\"tags\":"
        "[]},{\"tags\":[\"a\",\"b\",\"c\",\"d\"]}],\"command_criterion\":{},"
        "\"submitted_at\":1}",
        &blen, &err);
    CHECK_CODE(sy_codec_decode(lim, SY_TYPE_JOB_REQUEST, b, blen, &lv, &err), SY_ERR_TOO_LARGE,
               &err);
    CHECK_MSG(&err, "JobRequest.cluster_criteria[1].tags");
    free(b);

    /* random corruption: any error or success, never a crash or a leak (ASan build) */
    int outcomes[SY_ERR_INTERNAL + 1] = {0};
    for (int t = 0; t < SY_TYPE_COUNT; t++) {
        size_t len;
        uint8_t *orig = encode_json(c, t, NULL, samples[t], &len, &err);
        uint8_t *m = malloc(len + 16);
        avro_value_t tv;
        sy_codec_value_new(lim, t, &tv, &err);
        for (int iter = 0; iter < 4000; iter++) {
            size_t mlen = len;
            memcpy(m, orig, len);
            int kind = (int)(rng() % 4);
            int flips = 1 + (int)(rng() % 4);
            for (int k = 0; k < flips; k++) {
                size_t at = 10 + rng() % (len - 10);
                if (kind == 0)
                    m[at] ^= (uint8_t)(1u << (rng() % 8));
                else if (kind == 1)
                    m[at] = (uint8_t)rng();
                else if (kind == 2)
                    mlen = at;
                else
                    m[at] = (uint8_t)(0x80 | rng()); /* long varints */
            }
            sy_err_code_t rc = sy_codec_decode(lim, t, m, mlen, &tv, &err);
            CHECK(rc <= SY_ERR_INTERNAL && rc != SY_ERR_INTERNAL && rc != SY_ERR_NOMEM);
            outcomes[rc]++;
            if (rc == SY_OK) { /* whatever decoded must print */
                json_t *j = sy_codec_to_json(&tv, &err);
                json_decref(j);
            }
        }
        avro_value_decref(&tv);
        free(m);
        free(orig);
    }
    CHECK(outcomes[SY_ERR_TRUNCATED] > 0 && outcomes[SY_ERR_INVALID_ARG] > 0 &&
          outcomes[SY_ERR_TOO_LARGE] > 0);

    avro_value_decref(&lv);
    sy_codec_destroy(lim);
    sy_config_destroy(small);
    avro_value_decref(&v);
}

/* ---- JSON ---- */

static sy_err_code_t from_json_text(sy_codec_t *c, sy_type_t t, const char *text, sy_err_t *err)
{
    avro_value_t v;
    sy_codec_value_new(c, t, &v, err);
    json_t *j = J(text);
    sy_err_code_t rc = sy_codec_from_json(c, t, j, &v, err);
    json_decref(j);
    avro_value_decref(&v);
    return rc;
}

/* from_json then to_json */
static json_t *json_roundtrip(sy_codec_t *c, sy_type_t t, const char *text, sy_err_t *err)
{
    avro_value_t v;
    json_t *out = NULL;
    sy_codec_value_new(c, t, &v, err);
    json_t *j = J(text);
    if (sy_codec_from_json(c, t, j, &v, err) == SY_OK)
        out = sy_codec_to_json(&v, err);
    json_decref(j);
    avro_value_decref(&v);
    return out;
}

static void test_json(sy_codec_t *c)
{
    sy_err_t err = SY_ERR_INIT;
    json_t *j;

    /* defaults fill what is left out; Avro's wrapped union form is accepted */
    j = json_roundtrip(c, SY_TYPE_JOB_REQUEST,
                       MINREQ("\"timeout_ms\":{\"long\":60},\"grouping\":{\"string\":\"g\"},"
                              "\"grouping_instance\":{\"null\":null},"),
                       &err);
    CHECK_JSON(j, "{\"job_id\":\"j\",\"name\":\"n\",\"user\":\"u\",\"grouping\":\"g\","
                  "\"grouping_instance\":null,\"cluster_criteria\":[],\"command_criterion\":"
                  "{\"id\":null,\"name\":null,\"tags\":[]},\"arguments\":[],\"environment\":{},"
                  "\"timeout_ms\":60,\"metadata\":{},\"submitted_at\":1}");
    json_decref(j);
    /* timestamps: epoch ms, or RFC 3339 */
    j = json_roundtrip(c, SY_TYPE_JOB_CONTROL,
                       "{\"job_id\":\"j\",\"action\":\"KILL\",\"requested_by\":\"b\","
                       "\"requested_at\":\"2024-05-01T14:00:00.25+02:00\"}",
                       &err);
    CHECK(j && json_integer_value(json_object_get(j, "requested_at")) == 1714564800250LL);
    json_decref(j);
    j = json_roundtrip(c, SY_TYPE_JOB_STATUS,
                       "{\"job_id\":\"j\",\"seq\":1,\"status\":\"CLAIMED\",\"emitted_at\":"
                       "\"2024-05-01T12:00:00Z\",\"submitted_at\":\"1970-01-01T00:00:01.5Z\"}",
                       &err);
    CHECK(j && json_integer_value(json_object_get(j, "emitted_at")) == 1714564800000LL &&
          json_integer_value(json_object_get(j, "submitted_at")) == 1500);
    json_decref(j);

    /* errors name the field and what is wrong */
    static const struct {
        int type;
        const char *text;
        sy_err_code_t code;
        const char *needle;
    } bad[] = {
        {SY_TYPE_JOB_REQUEST, MINREQ("\"timeout\":60,"), SY_ERR_JSON, "unknown field \"timeout\""},
        {SY_TYPE_JOB_REQUEST,
         "{\"job_id\":\"j\",\"name\":\"n\",\"cluster_criteria\":[],"
         "\"command_criterion\":{},\"submitted_at\":1}",
         SY_ERR_JSON, "missing required field \"user\""},
        {SY_TYPE_JOB_REQUEST,
         "{\"job_id\":\"j\",\"name\":\"n\",\"user\":\"u\",\"cluster_criteria\":[{\"tags\":[]},"
         "{\"tags\":[5]}],\"command_criterion\":{},\"submitted_at\":1}",
         SY_ERR_JSON, "JobRequest.cluster_criteria[1].tags[0]: expected a string, got an integer"},
        {SY_TYPE_JOB_REQUEST, MINREQ("\"timeout_ms\":\"soon\","), SY_ERR_JSON,
         "JobRequest.timeout_ms: expected null or a long (integer), got a string"},
        {SY_TYPE_JOB_REQUEST, MINREQ("\"environment\":{\"A\":null},"), SY_ERR_JSON,
         "JobRequest.environment[\"A\"]: expected a string, got null"},
        {SY_TYPE_JOB_REQUEST, "[1,2]", SY_ERR_JSON, "expected an object"},
        {SY_TYPE_JOB_STATUS, "{\"job_id\":\"j\",\"seq\":1,\"status\":\"RUNNIN\",\"emitted_at\":1}",
         SY_ERR_JSON, "\"RUNNIN\" is not a JobState (one of: ACCEPTED, RESOLVED"},
        {SY_TYPE_JOB_STATUS,
         "{\"job_id\":\"j\",\"seq\":1,\"status\":\"RUNNING\",\"emitted_at\":1,"
         "\"attempt\":1099511627776}",
         SY_ERR_JSON, "JobStatus.attempt: 1099511627776 does not fit an int"},
        {SY_TYPE_JOB_STATUS,
         "{\"job_id\":\"j\",\"seq\":1.5,\"status\":\"RUNNING\",\"emitted_at\":1}", SY_ERR_JSON,
         "JobStatus.seq: expected a long"},
        {SY_TYPE_JOB_CONTROL,
         "{\"job_id\":\"j\",\"action\":\"KILL\",\"requested_by\":\"b\","
         "\"requested_at\":\"yesterday\"}",
         SY_ERR_JSON, "\"yesterday\" is not an RFC 3339 time"},
        /* sscanf's %2d takes a sign: these were read as 11:00 and an offset of +00:59 */
        {SY_TYPE_JOB_CONTROL,
         "{\"job_id\":\"j\",\"action\":\"KILL\",\"requested_by\":\"b\","
         "\"requested_at\":\"2024-05-01T-1:00:00Z\"}",
         SY_ERR_JSON, "is not an RFC 3339 time"},
        {SY_TYPE_JOB_CONTROL,
         "{\"job_id\":\"j\",\"action\":\"KILL\",\"requested_by\":\"b\","
         "\"requested_at\":\"2024-05-01T12:00:00+01:-1\"}",
         SY_ERR_JSON, "is not an RFC 3339 time"},
        {SY_TYPE_JOB_LOG,
         "{\"job_id\":\"j\",\"stream\":\"s\",\"offset\":0,\"chunk\":{\"base64\":"
         "\"!!\"},\"emitted_at\":1}",
         SY_ERR_JSON, "JobLog.chunk: \"base64\" is not valid base64"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_CODE(from_json_text(c, bad[i].type, bad[i].text, &err), bad[i].code, &err);
        CHECK_MSG(&err, bad[i].needle);
    }
    avro_value_t v;
    sy_codec_value_new(c, SY_TYPE_JOB_LOG, &v, &err);
    CHECK_CODE(sy_codec_from_json(c, SY_TYPE_JOB_LOG, NULL, &v, &err), SY_ERR_JSON, &err);
    /* a value of another type is refused, not scribbled over */
    json_t *req = J(samples[0]);
    CHECK_CODE(sy_codec_from_json(c, SY_TYPE_JOB_REQUEST, req, &v, &err), SY_ERR_INVALID_ARG, &err);
    json_decref(req);
    avro_value_decref(&v);

    /* limits apply to JSON input too */
    sy_config_t *small = conf_with("codec.max.string.bytes", "4", "codec.max.items", "2");
    sy_codec_t *lim = sy_codec_new(small, &err);
    CHECK_CODE(from_json_text(lim, SY_TYPE_JOB_REQUEST,
                              MINREQ("\"arguments\":[\"a\",\"b\",\"c\"],"), &err),
               SY_ERR_TOO_LARGE, &err);
    CHECK_MSG(&err, "JobRequest.arguments: array of 3 items exceeds codec.max.items (2)");
    CHECK_CODE(from_json_text(lim, SY_TYPE_JOB_REQUEST, MINREQ("\"grouping\":\"abcdef\","), &err),
               SY_ERR_TOO_LARGE, &err);
    sy_codec_destroy(lim);
    sy_config_destroy(small);
}

/* ---- Values made by the codec ---- */

static void test_values(sy_codec_t *c)
{
    sy_err_t err = SY_ERR_INIT;
    avro_value_t s, r, x;
    CHECK_CODE(sy_codec_value_new(c, SY_TYPE_JOB_STATUS, &s, &err), SY_OK, &err);
    /* defaults from the schema */
    CHECK(sy_avro_get_int(&s, "attempt", -1) == 1);
    CHECK_STR(sy_avro_get_string(&s, "emitter"), "");
    CHECK(sy_avro_is_null(&s, "cluster") && sy_avro_is_null(&s, "submitted_at"));
    CHECK_CODE(sy_codec_value_new(c, SY_TYPE_JOB_REQUEST, &r, &err), SY_OK, &err);
    CHECK(sy_avro_is_null(&r, "command_criterion.name"));
    CHECK(sy_avro_array_size(&r, "command_criterion.tags") == 0);
    CHECK(sy_codec_value_new(c, SY_TYPE_COUNT, &x, &err) == SY_ERR_INVALID_ARG);

    /* built with sy_avro, encoded, decoded, equal */
    CHECK(!sy_avro_set_string(&s, "job_id", "j9") && !sy_avro_set_long(&s, "seq", 12) &&
          !sy_avro_set_enum(&s, "status", "SUCCEEDED") && !sy_avro_set_string(&s, "cluster", "c") &&
          !sy_avro_set_long(&s, "emitted_at", 99) && !sy_avro_set_int(&s, "exit_code", 0));
    size_t len;
    void *buf = NULL;
    CHECK_CODE(sy_codec_encode(c, SY_TYPE_JOB_STATUS, NULL, &s, &buf, &len, &err), SY_OK, &err);
    json_t *j = decode_json(c, SY_TYPE_JOB_STATUS, buf, len, &err);
    CHECK_JSON(j, "{\"job_id\":\"j9\",\"seq\":12,\"status\":\"SUCCEEDED\",\"cluster\":\"c\","
                  "\"command\":null,\"backend_id\":null,\"message\":null,\"attempt\":1,"
                  "\"emitted_at\":99,\"submitted_at\":null,\"exit_code\":0,\"failure_reason\":null,"
                  "\"log_uri\":null,\"emitter\":\"\"}");
    json_decref(j);
    free(buf);

    /* avro-c's reset keeps each union's branch: the string branch of "cluster" becomes "" */
    avro_value_reset(&s);
    CHECK_STR(sy_avro_get_string(&s, "cluster"), "");
    /* a union never set (a bare generic value) encodes as null when null is its first branch */
    avro_value_iface_t *iface = avro_generic_class_from_schema(avro_value_get_schema(&s));
    CHECK_CODE(sy_codec_encode(c, SY_TYPE_JOB_STATUS, NULL, &s, &buf, &len, &err), SY_OK, &err);
    free(buf);
    avro_value_t bare;
    avro_generic_value_new(iface, &bare);
    CHECK(sy_avro_is_null(&bare, "cluster"));
    CHECK_CODE(sy_codec_encode(c, SY_TYPE_JOB_STATUS, NULL, &bare, &buf, &len, &err), SY_OK, &err);
    j = decode_json(c, SY_TYPE_JOB_STATUS, buf, len, &err);
    CHECK(j && json_is_null(json_object_get(j, "cluster")) &&
          !strcmp(json_string_value(json_object_get(j, "job_id")), ""));
    json_t *bj = sy_codec_to_json(&bare, &err);
    CHECK(bj && json_is_null(json_object_get(bj, "exit_code")));
    json_decref(bj);
    json_decref(j);
    free(buf);
    avro_value_decref(&bare);
    avro_value_iface_decref(iface);

    /* a value of the wrong type: refused on encode and on decode */
    CHECK_CODE(sy_codec_encode(c, SY_TYPE_JOB_REQUEST, NULL, &s, &buf, &len, &err),
               SY_ERR_WRONG_TYPE, &err);
    CHECK(buf == NULL);
    buf = encode_json(c, SY_TYPE_JOB_REQUEST, NULL, samples[0], &len, &err);
    CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, buf, len, &s, &err), SY_ERR_INVALID_ARG,
               &err);

    /* one value reused for many records: arrays and maps do not accumulate */
    void *small =
        encode_json(c, SY_TYPE_JOB_REQUEST, NULL,
                    MINREQ("\"arguments\":[\"only\"],\"environment\":{\"Z\":\"z\"},"), &len, &err);
    size_t big_len;
    void *big = encode_json(c, SY_TYPE_JOB_REQUEST, NULL, samples[0], &big_len, &err);
    for (int i = 0; i < 50; i++) {
        CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, big, big_len, &r, &err), SY_OK, &err);
        CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, small, len, &r, &err), SY_OK, &err);
    }
    CHECK(sy_avro_array_size(&r, "arguments") == 1 && sy_avro_map_size(&r, "environment") == 1);
    CHECK(sy_avro_is_null(&r, "grouping") && sy_avro_array_size(&r, "cluster_criteria") == 0);
    j = sy_codec_to_json(&r, &err);
    CHECK_JSON(j, "{\"job_id\":\"j\",\"name\":\"n\",\"user\":\"u\",\"grouping\":null,"
                  "\"grouping_instance\":null,\"cluster_criteria\":[],\"command_criterion\":"
                  "{\"id\":null,\"name\":null,\"tags\":[]},\"arguments\":[\"only\"],"
                  "\"environment\":{\"Z\":\"z\"},\"timeout_ms\":null,\"metadata\":{},"
                  "\"submitted_at\":1}");
    json_decref(j);
    free(small);
    free(big);
    free(buf);
    avro_value_decref(&s);
    avro_value_decref(&r);
}

/* ---- Threads: one codec, fresh caches, encode and decode from several threads ---- */

typedef struct worker {
    sy_codec_t *codec;
    int id, failures;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    avro_value_t v[SY_TYPE_COUNT];
    for (int t = 0; t < SY_TYPE_COUNT; t++)
        sy_codec_value_new(w->codec, t, &v[t], NULL);
    for (int i = 0; i < 400; i++) {
        int t = (i + w->id) % SY_TYPE_COUNT;
        sy_err_t err = SY_ERR_INIT;
        size_t len;
        char topic[64];
        snprintf(topic, sizeof(topic), "%s.%d", topics[t], i % 3);
        void *buf = encode_json(w->codec, t, topic, samples[t], &len, &err);
        if (!buf || sy_codec_decode(w->codec, t, buf, len, &v[t], &err) != SY_OK) {
            if (!w->failures++)
                fprintf(stderr, "thread %d: %s\n", w->id, err.msg);
        }
        free(buf);
    }
    for (int t = 0; t < SY_TYPE_COUNT; t++)
        avro_value_decref(&v[t]);
    return NULL;
}

static void test_threads(void)
{
    fake_reg_t f;
    fake_init(&f);
    sy_codec_t *c = fake_codec(&f, "http://reg:8081", NULL);
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){c, i, 0};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    int failures = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    CHECK(failures == 0);
    CHECK(f.n_subj == SY_TYPE_COUNT * 3); /* each subject registered once */
    sy_codec_destroy(c);
    fake_done(&f);
}

/* Inputs the fuzzers found (the regress-* seeds under tests/fuzz/corpus), as unit tests. */
static void test_fuzz_regressions(sy_codec_t *c)
{
    sy_err_t err = SY_ERR_INIT;
    size_t len;

    /* Strings and map keys are text: a record with one that is not UTF-8 or that holds a NUL
     * byte does not decode (it used to, and then had no JSON form: the worker dead-lettered
     * the RoutedJob of a request the router had accepted, and the job never ended). */
    static const struct {
        const char *json, *find;
        uint8_t patch;
        const char *needle;
    } bad[] = {
        {MINREQ("\"environment\":{\"KEY\":\"v\"},"), "KEY", 0xFF, "map key is not valid UTF-8"},
        {MINREQ("\"metadata\":{\"KEY\":\"v\"},"), "KEY", 0x00, "map key holds a NUL byte"},
        {MINREQ("\"arguments\":[\"ARG\"],"), "ARG", 0xC0, "string is not valid UTF-8"},
        {MINREQ("\"arguments\":[\"ARG\"],"), "ARG", 0x00, "string holds a NUL byte"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *buf = encode_json(c, SY_TYPE_JOB_REQUEST, NULL, bad[i].json, &len, &err);
        uint8_t *k = buf ? memmem(buf, len, bad[i].find, 3) : NULL;
        CHECK(k != NULL);
        if (!k) {
            free(buf);
            continue;
        }
        k[1] = bad[i].patch;
        avro_value_t v;
        sy_codec_value_new(c, SY_TYPE_JOB_REQUEST, &v, &err);
        CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, buf, len, &v, &err), SY_ERR_INVALID_ARG,
                   &err);
        CHECK_MSG(&err, bad[i].needle);
        CHECK_MSG(&err, "[0]");
        k[1] = 0xC3; /* "\xC3\x80" followed by the rest: U+00C0, valid */
        k[2] = 0x80;
        CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, buf, len, &v, &err), SY_OK, &err);
        avro_value_decref(&v);
        free(buf);
    }
    /* A value built in C can still hold such a key: it has no JSON form, an error (the entry
     * used to vanish from the output silently: fuzz_codec_decode) */
    avro_value_t v, env, item;
    sy_codec_value_new(c, SY_TYPE_JOB_REQUEST, &v, &err);
    avro_value_get_by_name(&v, "environment", &env, NULL);
    avro_value_add(&env, "K\xFF", &item, NULL, NULL);
    avro_value_set_string(&item, "v");
    CHECK(sy_codec_to_json(&v, &err) == NULL);
    CHECK(err.code == SY_ERR_JSON);
    CHECK_MSG(&err, "environment");
    CHECK_MSG(&err, "map key is not valid UTF-8");
    avro_value_decref(&v);

    /* A block count near INT64_MAX after items already read: the error message added the two
     * (signed overflow, a UBSan abort: fuzz_codec_decode) */
    uint8_t *req = encode_json(c, SY_TYPE_JOB_REQUEST, NULL, MINREQ("\"arguments\":[\"a\",\"b\"],"),
                               &len, &err);
    uint8_t *blk = req ? memmem(req, len,
                                "\x04\x02"
                                "a\x02"
                                "b\x00",
                                6)
                       : NULL;
    CHECK(blk != NULL);
    if (blk) {
        static const uint8_t huge[] = {0x02, 0x02, 'a',  0xfe, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
        size_t head = (size_t)(blk - req);
        uint8_t *bad = malloc(head + sizeof(huge));
        memcpy(bad, req, head);
        memcpy(bad + head, huge, sizeof(huge));
        avro_value_t v2;
        sy_codec_value_new(c, SY_TYPE_JOB_REQUEST, &v2, &err);
        CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_REQUEST, bad, head + sizeof(huge), &v2, &err),
                   SY_ERR_TOO_LARGE, &err);
        CHECK_MSG(&err, "array of at least 9223372036854775808 items");
        avro_value_decref(&v2);
        free(bad);
    }
    free(req);

    /* A primitive schema is a schema: its canonical form is a JSON string that parses again
     * (it did not: schema text had to be an object or array), and a record framed with one is
     * of the wrong type, not an unparsable schema. */
    char *pcf =
        sy_codec_canonical_form("{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}", &err);
    CHECK_STR(pcf, "\"long\"");
    char *again = pcf ? sy_codec_canonical_form(pcf, &err) : NULL;
    CHECK_STR(again, "\"long\"");
    free(again);
    free(pcf);
    char *x = sy_codec_expand_schema("\"string\"", false, &err);
    CHECK_STR(x, "\"string\"");
    free(x);
    int type = 0;
    CHECK_CODE(sy_codec_add_schema(c, "\"string\"", &type, &err), SY_OK, &err);
    CHECK(type == -1);
    uint8_t rec[12] = {0xC3, 0x01};
    uint64_t fp = sy_codec_crc64_avro("\"string\"", 8);
    for (int i = 0; i < 8; i++)
        rec[2 + i] = (uint8_t)(fp >> (8 * i));
    rec[10] = 0x02; /* "a" */
    rec[11] = 'a';
    sy_codec_value_new(c, SY_TYPE_JOB_CONTROL, &v, &err);
    CHECK_CODE(sy_codec_decode(c, SY_TYPE_JOB_CONTROL, rec, sizeof(rec), &v, &err),
               SY_ERR_WRONG_TYPE, &err);
    CHECK_MSG(&err, "string");
    avro_value_decref(&v);
}

/* Fields of t by name into out (sy_field_t per schema field), from a value of t. */
static void field_str(sy_codec_t *c, sy_type_t t, sy_field_t *f, const char *name, const char *v)
{
    int i = sy_codec_field_index(c, t, name);
    CHECK(i >= 0);
    if (i >= 0)
        f[i] = v ? (sy_field_t){.kind = SY_FIELD_STRING, .s = v, .len = strlen(v)}
                 : (sy_field_t){.kind = SY_FIELD_NULL};
}

static void field_long(sy_codec_t *c, sy_type_t t, sy_field_t *f, const char *name, int64_t v)
{
    int i = sy_codec_field_index(c, t, name);
    CHECK(i >= 0);
    if (i >= 0)
        f[i] = (sy_field_t){.kind = SY_FIELD_LONG, .l = v};
}

static bool same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return a && b && alen == blen && memcmp(a, b, alen) == 0;
}

/* sy_codec_decode_body and sy_codec_encode_fields, what the router writes its records with: the
 * same bytes as sy_codec_encode of the same values, a request's body spliced in as it came. */
static void test_fields(sy_codec_t *cur)
{
    sy_err_t err = SY_ERR_INIT;
    size_t len, glen = 0, flen = 0;
    const void *body = NULL;
    size_t body_len = 0;
    avro_value_t req, routed, field;
    void *gbuf = NULL, *fbuf = NULL;
    sy_codec_value_new(cur, SY_TYPE_JOB_REQUEST, &req, &err);
    sy_codec_value_new(cur, SY_TYPE_ROUTED_JOB, &routed, &err);
    void *in = encode_json(cur, SY_TYPE_JOB_REQUEST, NULL,
                           "{\"job_id\":\"spliced-2\",\"name\":\"n\",\"user\":\"u\","
                           "\"grouping\":\"g\",\"grouping_instance\":null,"
                           "\"cluster_criteria\":[{\"id\":\"c1\",\"name\":null,"
                           "\"tags\":[\"a:b\"]}],\"command_criterion\":{\"id\":null,"
                           "\"name\":null,\"tags\":[\"spark\"]},\"arguments\":[\"x\"],"
                           "\"environment\":{\"E\":\"1\"},\"timeout_ms\":null,"
                           "\"metadata\":{},\"submitted_at\":5}",
                           &len, &err);
    CHECK(in != NULL);
    CHECK_CODE(
        sy_codec_decode_body(cur, SY_TYPE_JOB_REQUEST, in, len, &req, &body, &body_len, &err),
        SY_OK, &err);
    CHECK(body == (const uint8_t *)in + 10 && body_len == len - 10); /* after 0xC3 0x01 + 8 */

    /* a RoutedJob: the sample's values, the request above; from values and from fields */
    json_t *j = J(samples[SY_TYPE_ROUTED_JOB]);
    CHECK_CODE(sy_codec_from_json(cur, SY_TYPE_ROUTED_JOB, j, &routed, &err), SY_OK, &err);
    json_decref(j);
    avro_value_get_by_name(&routed, "request", &field, NULL);
    avro_value_copy(&field, &req);
    CHECK_CODE(sy_codec_encode(cur, SY_TYPE_ROUTED_JOB, NULL, &routed, &gbuf, &glen, &err), SY_OK,
               &err);
    size_t n = sy_codec_field_count(cur, SY_TYPE_ROUTED_JOB);
    CHECK(n == 14);
    sy_field_t f[32] = {0};
    sy_type_t rt = SY_TYPE_ROUTED_JOB;
    field_str(cur, rt, f, "job_id", "job-1");
    f[sy_codec_field_index(cur, rt, "request")] = (sy_field_t){
        .kind = SY_FIELD_RAW, .s = body, .len = body_len, .raw_type = SY_TYPE_JOB_REQUEST};
    field_str(cur, rt, f, "cluster_id", "cl-1");
    field_str(cur, rt, f, "cluster_name", "emr-prod");
    field_str(cur, rt, f, "backend_kind", "emr");
    field_str(cur, rt, f, "backend_address", "j-ABC");
    field_str(cur, rt, f, "region", "us-east-1");
    field_long(cur, rt, f, "cluster_max_concurrent", 256);
    field_str(cur, rt, f, "command_id", "cmd-1");
    field_str(cur, rt, f, "command_name", "spark");
    field_str(cur, rt, f, "command_spec", "{\"emr\":{}}");
    field_long(cur, rt, f, "attempt", 2);
    field_str(cur, rt, f, "rationale", "matched criterion 1");
    field_long(cur, rt, f, "routed_at", 1714564800200);
    CHECK_CODE(sy_codec_encode_fields(cur, rt, NULL, f, n, &fbuf, &flen, &err), SY_OK, &err);
    CHECK(same_bytes(gbuf, glen, fbuf, flen));
    json_t *got = fbuf ? decode_json(cur, rt, fbuf, flen, &err) : NULL;
    CHECK(got &&
          !strcmp(json_string_value(json_object_get(json_object_get(got, "request"), "job_id")),
                  "spliced-2"));
    json_decref(got);
    free(gbuf);
    free(fbuf);

    /* only a record field of exactly the body's type takes a body; nothing else fits wrongly */
    sy_field_t saved = f[1];
    f[1].raw_type = SY_TYPE_JOB_STATUS;
    CHECK_CODE(sy_codec_encode_fields(cur, rt, NULL, f, n, &fbuf, &flen, &err), SY_ERR_INVALID_ARG,
               &err);
    CHECK(strstr(err.msg, "request") != NULL);
    f[1] = saved;
    field_str(cur, rt, f, "attempt", "2"); /* a string into an int */
    CHECK_CODE(sy_codec_encode_fields(cur, rt, NULL, f, n, &fbuf, &flen, &err), SY_ERR_INVALID_ARG,
               &err);
    CHECK(strstr(err.msg, "attempt") != NULL);
    field_long(cur, rt, f, "attempt", (int64_t)1 << 40); /* does not fit an int */
    CHECK_CODE(sy_codec_encode_fields(cur, rt, NULL, f, n, &fbuf, &flen, &err), SY_ERR_INVALID_ARG,
               &err);
    field_str(cur, rt, f, "cluster_id", NULL); /* not nullable */
    field_long(cur, rt, f, "attempt", 2);
    CHECK_CODE(sy_codec_encode_fields(cur, rt, NULL, f, n, &fbuf, &flen, &err), SY_ERR_INVALID_ARG,
               &err);
    CHECK_CODE(sy_codec_encode_fields(cur, rt, NULL, f, n - 1, &fbuf, &flen, &err),
               SY_ERR_WRONG_TYPE, &err);
    CHECK(fbuf == NULL && flen == 0);

    /* a JobStatus with null branches, an enum and an int in a union */
    sy_type_t st = SY_TYPE_JOB_STATUS;
    gbuf = encode_json(cur, st, NULL, samples[st], &glen, &err);
    memset(f, 0, sizeof(f));
    field_str(cur, st, f, "job_id", "job-1");
    field_long(cur, st, f, "seq", 10);
    field_str(cur, st, f, "status", "RUNNING");
    field_str(cur, st, f, "cluster", "emr-prod");
    field_str(cur, st, f, "command", "spark");
    field_str(cur, st, f, "backend_id", "s-123");
    field_str(cur, st, f, "message", "running");
    field_long(cur, st, f, "attempt", 1);
    field_long(cur, st, f, "emitted_at", 1714564800300);
    field_long(cur, st, f, "submitted_at", 1714564800123);
    field_long(cur, st, f, "exit_code", -1);
    field_str(cur, st, f, "failure_reason", NULL);
    field_str(cur, st, f, "log_uri", "s3://logs/j-ABC/");
    field_str(cur, st, f, "emitter", "worker-1");
    n = sy_codec_field_count(cur, st);
    CHECK_CODE(sy_codec_encode_fields(cur, st, NULL, f, n, &fbuf, &flen, &err), SY_OK, &err);
    CHECK(same_bytes(gbuf, glen, fbuf, flen));
    free(fbuf);

    /* into the caller's memory: in place when it fits (exactly, too), else a new buffer with
     * the same bytes; never a byte past the space given */
    uint8_t space[1024];
    for (size_t cap = glen + 10; cap + 2 > glen; cap--) { /* glen + 10 ... glen - 1 */
        memset(space, 0xAB, sizeof(space));
        CHECK_CODE(sy_codec_encode_fields_into(cur, st, NULL, f, n, space, cap, &fbuf, &flen, &err),
                   SY_OK, &err);
        CHECK(same_bytes(gbuf, glen, fbuf, flen));
        CHECK(fbuf == space || cap < glen + 10); /* a varint is given room for 10 bytes */
        CHECK(space[cap] == 0xAB);
        if (fbuf != space)
            free(fbuf);
    }
    memset(space, 0xAB, sizeof(space));
    CHECK_CODE(sy_codec_encode_fields_into(cur, st, NULL, f, n, space, 3, &fbuf, &flen, &err),
               SY_OK, &err);
    CHECK(fbuf != space);
    CHECK(same_bytes(gbuf, glen, fbuf, flen));
    CHECK(space[3] == 0xAB);
    free(fbuf);
    field_str(cur, st, f, "status", "BOGUS");
    CHECK_CODE(sy_codec_encode_fields(cur, st, NULL, f, n, &fbuf, &flen, &err), SY_ERR_INVALID_ARG,
               &err);
    CHECK(strstr(err.msg, "BOGUS") && strstr(err.msg, "status"));
    CHECK_CODE(sy_codec_encode_fields_into(cur, st, NULL, f, n, space, 8, &fbuf, &flen, &err),
               SY_ERR_INVALID_ARG, &err); /* an error after the buffer moved to the heap */
    CHECK(fbuf == NULL && flen == 0);
    CHECK(sy_codec_field_index(cur, st, "no_such_field") == -1);
    free(gbuf);
    free(in);

    /* a request written with another schema (an older version) has no body to splice */
    sy_codec_t *v0 = variant_codec(EVO "JobRequest.v0.avsc", SY_TYPE_JOB_REQUEST);
    in = encode_json(v0, SY_TYPE_JOB_REQUEST, NULL,
                     "{\"job_id\":\"j0\",\"name\":\"n\",\"user\":\"u\",\"grouping\":\"g\","
                     "\"cluster_criteria\":[{\"id\":\"c1\",\"tags\":[\"a:b\"]}],"
                     "\"command_criterion\":{\"id\":null,\"tags\":[\"spark\"]},"
                     "\"arguments\":[],\"environment\":{},\"submitted_at\":5}",
                     &len, &err);
    CHECK(in != NULL);
    add_schema_file(cur, EVO "JobRequest.v0.avsc");
    CHECK_CODE(
        sy_codec_decode_body(cur, SY_TYPE_JOB_REQUEST, in, len, &req, &body, &body_len, &err),
        SY_OK, &err);
    CHECK(body == NULL && body_len == 0);
    free(in);
    sy_codec_destroy(v0);
    avro_value_decref(&req);
    avro_value_decref(&routed);
}

int main(void)
{
    sy_log_set_level(SY_LOG_ERROR);
    sy_codec_t *a = plain_codec(), *b = plain_codec();
    test_types_and_schemas(a);
    test_roundtrip_single_object(a, b);
    test_roundtrip_registry();
    test_evolution(b);
    test_fields(b);
    test_bad_input(a);
    test_json(a);
    test_values(a);
    test_threads();
    test_fuzz_regressions(a);
    sy_codec_destroy(a);
    sy_codec_destroy(b);
    sy_codec_destroy(NULL);
    SY_TEST_DONE();
}
