/* Unit tests of sy_schemareg: the parsers on registry answers captured byte for byte
 * (tests/unit/data/schemareg: Apicurio 3.0.9 and Confluent's documented shapes), error mapping,
 * and the libcurl client against a tiny HTTP server on loopback — request shape, basic auth,
 * connection reuse, timeouts, several URLs, and secrets kept out of the logs. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sy_log.h"
#include "sy_schemareg.h"
#include "sy_test.h"

#define DATA "tests/unit/data/schemareg/"

static char *slurp(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), DATA "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s (run from the source root)\n", path);
        abort();
    }
    char *buf = calloc(1, 1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    return buf;
}

static void test_parsers(void)
{
    sy_err_t err = SY_ERR_INIT;
    size_t len;
    char *body, *schema;
    int32_t id = -1;

    /* ids: register and lookup answers */
    static const struct {
        const char *file;
        int id;
    } ids[] = {{"apicurio-3.0.9_register_200.json", 2},
               {"apicurio-3.0.9_lookup_200.json", 2},
               {"confluent_register_200.json", 1},
               {"confluent_lookup_200.json", 1}};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        body = slurp(ids[i].file, &len);
        id = -1;
        CHECK(sy_schemareg_parse_id(body, len, &id, &err) == SY_OK && id == ids[i].id);
        free(body);
    }
    CHECK(sy_schemareg_parse_id("{\"id\":\"7\"}", 10, &id, &err) == SY_ERR_REGISTRY);
    CHECK(strstr(err.msg, "\"id\"") != NULL);
    CHECK(sy_schemareg_parse_id("{\"id\":-1}", 9, &id, &err) == SY_ERR_REGISTRY);
    CHECK(sy_schemareg_parse_id("<html>", 6, &id, &err) == SY_ERR_REGISTRY);
    CHECK(sy_schemareg_parse_id(NULL, 0, &id, &err) == SY_ERR_REGISTRY);

    /* schemas by id: Apicurio adds schemaType AVRO and empty references, Confluent omits them */
    body = slurp("apicurio-3.0.9_schema_by_id_200.json", &len);
    CHECK(sy_schemareg_parse_schema(body, len, &schema, &err) == SY_OK);
    json_t *s = schema ? json_loads(schema, 0, NULL) : NULL;
    CHECK(s && !strcmp(json_string_value(json_object_get(s, "name")), "JobStatus") &&
          json_array_size(json_object_get(s, "fields")) == 14);
    json_decref(s);
    free(schema);
    free(body);
    body = slurp("confluent_schema_by_id_200.json", &len);
    CHECK(sy_schemareg_parse_schema(body, len, &schema, &err) == SY_OK);
    CHECK_STR(schema, "{\"type\": \"string\"}");
    free(schema);
    free(body);
    body = slurp("confluent_schema_by_id_protobuf_200.json", &len);
    CHECK(sy_schemareg_parse_schema(body, len, &schema, &err) == SY_ERR_UNKNOWN_SCHEMA);
    CHECK(schema == NULL && strstr(err.msg, "PROTOBUF"));
    free(body);
    body = slurp("confluent_schema_by_id_references_200.json", &len);
    CHECK(sy_schemareg_parse_schema(body, len, &schema, &err) == SY_ERR_UNKNOWN_SCHEMA);
    CHECK(strstr(err.msg, "reference") != NULL);
    free(body);
    CHECK(sy_schemareg_parse_schema("{\"schema\":5}", 12, &schema, &err) == SY_ERR_REGISTRY);
    CHECK(sy_schemareg_parse_schema("[]", 2, &schema, &err) == SY_ERR_REGISTRY);

    /* errors: the registry's message quoted, codes mapped */
    static const struct {
        const char *file;
        long status;
        sy_err_code_t code;
        bool retriable;
        const char *needle;
    } errs[] = {
        {"apicurio-3.0.9_schema_by_id_404.json", 404, SY_ERR_NOT_FOUND, false,
         "HTTP 404 (error_code 40403): No content with ID '999' was found."},
        {"apicurio-3.0.9_lookup_subject_404.json", 404, SY_ERR_NOT_FOUND, false, "40401"},
        {"apicurio-3.0.9_lookup_schema_404.json", 404, SY_ERR_NOT_FOUND, false,
         "does not match any schema"},
        {"apicurio-3.0.9_register_409.json", 409, SY_ERR_CONFLICT, false, "Incompatible artifact"},
        {"apicurio-3.0.9_register_422.json", 422, SY_ERR_SCHEMA, false, "error_code 42201"},
        {"confluent_schema_by_id_404.json", 404, SY_ERR_NOT_FOUND, false, "Schema 99 not found"},
        {"confluent_lookup_subject_404.json", 404, SY_ERR_NOT_FOUND, false, "nope-value"},
        {"confluent_register_409.json", 409, SY_ERR_CONFLICT, false, "incompatible"},
        {"confluent_register_422.json", 422, SY_ERR_SCHEMA, false, "invalid"},
        {"confluent_error_500.json", 500, SY_ERR_REGISTRY, true, "backend data store"},
        {"confluent_error_401.json", 401, SY_ERR_REGISTRY, false, "schema.registry.basic.auth"},
        {"proxy_error_502.html", 502, SY_ERR_REGISTRY, true, "502 Bad Gateway"},
    };
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        body = slurp(errs[i].file, &len);
        sy_err_clear(&err);
        sy_err_code_t rc = sy_schemareg_parse_error(errs[i].status, body, len, "GET /x", &err);
        CHECK(rc == errs[i].code && err.code == errs[i].code);
        CHECK(err.retriable == errs[i].retriable);
        CHECK(!strncmp(err.msg, "GET /x: HTTP ", 13));
        if (!strstr(err.msg, errs[i].needle)) {
            fprintf(stderr, "%s: \"%s\" lacks \"%s\"\n", errs[i].file, err.msg, errs[i].needle);
            CHECK(0);
        }
        free(body);
    }
    CHECK(sy_schemareg_parse_error(429, "", 0, "x", &err) == SY_ERR_REGISTRY && err.retriable);

    /* request bodies carry the schema as a JSON string, escapes and all */
    const char *schema_json = "{\"type\":\"record\",\"name\":\"R\",\"doc\":\"a \\\"q\\\"\\n\","
                              "\"fields\":[]}";
    char *req = sy_schemareg_request_body(schema_json);
    json_t *r = json_loads(req, 0, NULL);
    CHECK(r && json_object_size(r) == 1 &&
          !strcmp(json_string_value(json_object_get(r, "schema")), schema_json));
    json_decref(r);
    free(req);

    char red[128];
    sy_schemareg_redact_url("https://u:p%40ss@reg.example:8081/apis/ccompat/v7", red, sizeof(red));
    CHECK_STR(red, "https://***@reg.example:8081/apis/ccompat/v7");
    sy_schemareg_redact_url("http://reg:8081/a@b", red, sizeof(red));
    CHECK_STR(red, "http://reg:8081/a@b");

    CHECK(sy_schemareg_new("", NULL, 100, &err) == NULL && err.code == SY_ERR_CONFIG);
    CHECK(sy_schemareg_new(" , ", NULL, 100, &err) == NULL && err.code == SY_ERR_CONFIG);
    CHECK(sy_schemareg_new("http://a", "nocolon", 100, &err) == NULL && err.code == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "nocolon") == NULL); /* the secret is not echoed */
    sy_schemareg_destroy(NULL);
}

/* ======================================================================================== */
/* A minimal HTTP/1.1 server on loopback: one connection at a time, keep-alive, canned answer. */

typedef struct srv {
    int fd, port;
    pthread_t th;
    volatile int hang; /* accept and read, never answer */
    long status;
    char body[8192];
    char last[8192]; /* the last request: head and body */
    volatile int requests, connections, stop;
    pthread_mutex_t lock;
} srv_t;

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 8) ||
        getsockname(fd, (struct sockaddr *)&a, &al))
        abort();
    *port = ntohs(a.sin_port);
    return fd;
}

/* Reads one request (head + Content-Length body) into buf; 0 at EOF/stop. */
static size_t read_request(srv_t *s, int c, char *buf, size_t size)
{
    size_t n = 0;
    while (!s->stop && n < size - 1) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t r = read(c, buf + n, size - 1 - n);
        if (r <= 0)
            return 0;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        const char *cl = strcasestr(buf, "Content-Length:");
        size_t want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
        if (n >= want)
            return n;
    }
    return 0;
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    while (!s->stop) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        s->connections++;
        char buf[8192];
        size_t n;
        while ((n = read_request(s, c, buf, sizeof(buf))) > 0) {
            pthread_mutex_lock(&s->lock);
            memcpy(s->last, buf, n + 1);
            s->requests++;
            pthread_mutex_unlock(&s->lock);
            if (s->hang) {
                while (!s->stop && read(c, buf, sizeof(buf)) > 0)
                    ;
                break;
            }
            char head[256];
            int hl = snprintf(head, sizeof(head),
                              "HTTP/1.1 %ld X\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n",
                              s->status, strlen(s->body));
            if (write(c, head, (size_t)hl) < 0 || write(c, s->body, strlen(s->body)) < 0)
                break;
        }
        close(c);
    }
    return NULL;
}

static void srv_start(srv_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->fd = listen_any(&s->port);
    s->status = 200;
    pthread_create(&s->th, NULL, srv_main, s);
}

static void srv_stop(srv_t *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->lock);
}

static void srv_answer(srv_t *s, long status, const char *file)
{
    size_t len;
    char *b = slurp(file, &len);
    s->status = status;
    snprintf(s->body, sizeof(s->body), "%s", b);
    free(b);
}

/* A port nothing listens on. */
static int closed_port(void)
{
    int port, fd = listen_any(&port);
    close(fd);
    return port;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_http(void)
{
    srv_t s, s2;
    sy_err_t err = SY_ERR_INIT;
    char urls[256];
    int32_t id = -1;
    char *schema = NULL;
    srv_start(&s);
    srv_start(&s2);

    /* register: request line, headers, basic auth, body */
    snprintf(urls, sizeof(urls), "http://127.0.0.1:%d/apis/ccompat/v7/", s.port);
    sy_schemareg_t *reg = sy_schemareg_new(urls, "user:pa:ss", 2000, &err);
    CHECK(reg != NULL);
    srv_answer(&s, 200, "apicurio-3.0.9_register_200.json");
    CHECK(sy_schemareg_register(reg, "switchyard.requests-value", "{\"type\":\"string\"}", &id,
                                &err) == SY_OK);
    CHECK(id == 2);
    CHECK(!strncmp(s.last,
                   "POST /apis/ccompat/v7/subjects/switchyard.requests-value/versions HTTP/1.1\r\n",
                   75));
    CHECK(strstr(s.last, "Authorization: Basic dXNlcjpwYTpzcw==\r\n") != NULL);
    CHECK(strstr(s.last, "Content-Type: application/vnd.schemaregistry.v1+json\r\n") != NULL);
    CHECK(strstr(s.last, "\r\n\r\n{\"schema\":\"{\\\"type\\\":\\\"string\\\"}\"}") != NULL);

    /* lookup and fetch over the same connection */
    srv_answer(&s, 200, "apicurio-3.0.9_lookup_200.json");
    CHECK(sy_schemareg_lookup(reg, "a b/c", "{}", &id, &err) == SY_OK && id == 2);
    CHECK(!strncmp(s.last, "POST /apis/ccompat/v7/subjects/a%20b%2Fc HTTP/1.1", 48));
    srv_answer(&s, 200, "apicurio-3.0.9_schema_by_id_200.json");
    CHECK(sy_schemareg_get_schema(reg, 2, &schema, &err) == SY_OK && schema &&
          strstr(schema, "\"JobStatus\""));
    CHECK(!strncmp(s.last, "GET /apis/ccompat/v7/schemas/ids/2 HTTP/1.1", 43));
    free(schema);
    CHECK(s.connections == 1 && s.requests == 3);

    /* answers that are errors */
    srv_answer(&s, 404, "apicurio-3.0.9_schema_by_id_404.json");
    CHECK(sy_schemareg_get_schema(reg, 999, &schema, &err) == SY_ERR_UNKNOWN_SCHEMA);
    CHECK(!err.retriable && strstr(err.msg, "fetching schema id 999") &&
          strstr(err.msg, "No content with ID '999'"));
    srv_answer(&s, 409, "confluent_register_409.json");
    CHECK(sy_schemareg_register(reg, "t-value", "{}", &id, &err) == SY_ERR_CONFLICT);
    CHECK(strstr(err.msg, "subject t-value") != NULL);
    srv_answer(&s, 404, "apicurio-3.0.9_lookup_schema_404.json");
    CHECK(sy_schemareg_lookup(reg, "t-value", "{}", &id, &err) == SY_ERR_NOT_FOUND);
    sy_schemareg_destroy(reg);

    /* several URLs: one refusing, one answering 5xx, one fine */
    snprintf(urls, sizeof(urls), "http://127.0.0.1:%d,http://127.0.0.1:%d,http://127.0.0.1:%d",
             closed_port(), s2.port, s.port);
    reg = sy_schemareg_new(urls, NULL, 2000, &err);
    srv_answer(&s2, 500, "confluent_error_500.json");
    srv_answer(&s, 200, "confluent_register_200.json");
    int before = s.requests, before2 = s2.requests;
    CHECK(sy_schemareg_register(reg, "t-value", "{}", &id, &err) == SY_OK && id == 1);
    CHECK(s.requests == before + 1 && s2.requests == before2 + 1);
    CHECK(strstr(s.last, "Authorization:") == NULL);
    /* the URL that answered is asked first next time */
    CHECK(sy_schemareg_register(reg, "t-value", "{}", &id, &err) == SY_OK);
    CHECK(s.requests == before + 2 && s2.requests == before2 + 1);
    /* all down: retriable, and the message says what happened */
    s.status = 503;
    CHECK(sy_schemareg_register(reg, "t-value", "{}", &id, &err) == SY_ERR_REGISTRY);
    CHECK(err.retriable && strstr(err.msg, "3 URLs tried"));
    sy_schemareg_destroy(reg);

    /* a registry that never answers: the timeout holds */
    s.hang = 1;
    snprintf(urls, sizeof(urls), "http://127.0.0.1:%d", s.port);
    reg = sy_schemareg_new(urls, NULL, 300, &err);
    double t0 = now_s();
    CHECK(sy_schemareg_get_schema(reg, 1, &schema, &err) == SY_ERR_REGISTRY);
    double took = now_s() - t0;
    CHECK(err.retriable && took >= 0.25 && took < 3.0);
    CHECK(strstr(err.msg, "imed out") != NULL);
    sy_schemareg_destroy(reg);
    s.hang = 0;

    /* credentials never reach the log, whether in basic.auth or in the URL */
    char logpath[] = "/tmp/sy_test_schemareg_XXXXXX";
    int lfd = mkstemp(logpath);
    int saved = dup(STDERR_FILENO);
    fflush(stderr);
    dup2(lfd, STDERR_FILENO);
    sy_log_set_level(SY_LOG_DEBUG);
    snprintf(urls, sizeof(urls), "http://u:urlsecret@127.0.0.1:%d,http://127.0.0.1:%d",
             closed_port(), s.port);
    reg = sy_schemareg_new(urls, "user:hunter2secret", 1000, &err);
    srv_answer(&s, 404, "confluent_schema_by_id_404.json");
    sy_schemareg_get_schema(reg, 99, &schema, &err);
    sy_schemareg_destroy(reg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    sy_log_set_level(SY_LOG_ERROR);
    size_t len = 0;
    char logged[8192] = "";
    lseek(lfd, 0, SEEK_SET);
    ssize_t got = read(lfd, logged, sizeof(logged) - 1);
    len = got > 0 ? (size_t)got : 0;
    logged[len] = '\0';
    close(lfd);
    unlink(logpath);
    CHECK(len > 0 && strstr(logged, "schemas/ids/99"));
    CHECK(!strstr(logged, "hunter2secret") && !strstr(logged, "urlsecret"));
    CHECK(!strstr(err.msg, "urlsecret"));

    srv_stop(&s);
    srv_stop(&s2);
}

/* ======================================================================================== */
/* Schema references: parsed, and fetched transitively (each subject version once), from a
 * registry answering canned bodies by path. */

typedef struct canned {
    const char *path; /* the end of the URL */
    const char *body; /* answered with 200 */
} canned_t;

static int canned_requests;

static sy_err_code_t canned_transport(void *opaque, const char *method, const char *url,
                                      const char *body, long *status, char **resp, size_t *resp_len,
                                      sy_err_t *err)
{
    canned_requests++;
    const char *answer = "{\"error_code\":40401,\"message\":\"Subject not found.\"}";
    *status = 404;
    for (const canned_t *c = opaque; c->path; c++) {
        size_t ul = strlen(url), pl = strlen(c->path);
        if (ul >= pl && !strcmp(url + ul - pl, c->path)) {
            *status = 200;
            answer = c->body;
        }
    }
    *resp = strdup(answer);
    *resp_len = strlen(answer);
    return SY_OK;
}

#define REC(name, refs)                                                                            \
    "{\"schema\":\"{\\\"type\\\":\\\"record\\\",\\\"name\\\":\\\"" name                            \
    "\\\",\\\"fields\\\":[]}\",\"references\":[" refs "]}"
#define REF(name, subject, version)                                                                \
    "{\"name\":\"" name "\",\"subject\":\"" subject "\",\"version\":" #version "}"

static void test_refs(void)
{
    sy_err_t err = SY_ERR_INIT;
    char *schema = NULL, **texts = NULL;
    size_t n = 0, len;
    sy_schemareg_ref_t *refs = NULL;

    char *body = slurp("confluent_schema_by_id_references_200.json", &len);
    CHECK(sy_schemareg_parse_schema_refs(body, len, &schema, &refs, &n, &err) == SY_OK);
    CHECK(n == 1 && refs && !strcmp(refs[0].name, "io.switchyard.JobRequest") &&
          !strcmp(refs[0].subject, "switchyard.requests-value") && refs[0].version == 1);
    CHECK(schema && strstr(schema, "RoutedJob"));
    sy_schemareg_refs_free(refs, n);
    free(schema);
    free(body);
    static const char *const bad[] = {
        "{\"schema\":\"\\\"int\\\"\",\"references\":5}",
        "{\"schema\":\"\\\"int\\\"\",\"references\":[" REF("a", "s", 0) "]}",
        "{\"schema\":\"\\\"int\\\"\",\"references\":[{\"name\":\"a\",\"version\":1}]}",
        "{\"schema\":\"\\\"int\\\"\",\"references\":[" REF("", "s", 1) "]}",
        "{\"schema\":\"\\\"int\\\"\",\"references\":[\"a\"]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(sy_schemareg_parse_schema_refs(bad[i], strlen(bad[i]), &schema, &refs, &n, &err) ==
              SY_ERR_REGISTRY);
        CHECK(schema == NULL && refs == NULL && n == 0);
    }

    /* R refers to A and B; A to B again; B back to A: three fetches, two referenced texts */
    static const canned_t graph[] = {
        {"/schemas/ids/7", REC("R", REF("p.A", "s.a", 1) "," REF("p.B", "s%20b", 2))},
        {"/subjects/s.a/versions/1", REC("A", REF("p.B", "s%20b", 2))},
        {"/subjects/s%2520b/versions/2", REC("B", REF("p.A", "s.a", 1))},
        {"/schemas/ids/8", REC("M", REF("p.X", "gone", 3))},
        {NULL, NULL}};
    sy_schemareg_t *reg = sy_schemareg_new("http://registry.invalid", NULL, 100, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    sy_schemareg_set_transport(reg, canned_transport, (void *)graph);
    canned_requests = 0;
    CHECK(sy_schemareg_get_schema_refs(reg, 7, &schema, &texts, &n, &err) == SY_OK);
    CHECK(canned_requests == 3 && n == 2);
    CHECK(schema && strstr(schema, "\"R\"") && n == 2 && strstr(texts[0], "\"A\"") &&
          strstr(texts[1], "\"B\""));
    free(schema);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    /* a reference the registry does not have: the schema is unknown, the message says which */
    CHECK(sy_schemareg_get_schema_refs(reg, 8, &schema, &texts, &n, &err) == SY_ERR_UNKNOWN_SCHEMA);
    CHECK(schema == NULL && texts == NULL && n == 0 && strstr(err.msg, "p.X") &&
          strstr(err.msg, "gone"));
    /* without references fetched, an id whose schema has them stays refused */
    CHECK(sy_schemareg_get_schema(reg, 7, &schema, &err) == SY_ERR_UNKNOWN_SCHEMA);
    sy_schemareg_destroy(reg);
}

int main(void)
{
    sy_log_set_level(SY_LOG_ERROR);
    test_parsers();
    test_http();
    test_refs();
    SY_TEST_DONE();
}
