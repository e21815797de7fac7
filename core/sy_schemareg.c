/* sy_schemareg: a Confluent Schema Registry client over libcurl, plus its pure parsers. */
#include "sy_schemareg.h"
#include "sy_log.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry answers are small (a schema is a few KB); anything larger is not a registry. */
#define MAX_RESPONSE_BYTES (16u << 20)

struct sy_schemareg {
    char **urls; /* base URLs without trailing '/' */
    size_t n_urls;
    size_t preferred; /* index of the URL that answered last */
    char *username;   /* from basic_auth, NULL when none */
    char *password;
    long timeout_ms;
    pthread_mutex_t lock; /* serializes requests: guards curl, preferred */
    CURL *curl;
    struct curl_slist *headers;
    sy_schemareg_transport_fn transport;
    void *transport_opaque;
};

/* ---------------------------------------------------------------------------------------- */
/* Pure parsers */

char *sy_schemareg_request_body(const char *schema_json)
{
    json_t *o = json_pack("{s:s}", "schema", schema_json);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

sy_err_code_t sy_schemareg_parse_id(const char *body, size_t len, int32_t *id, sy_err_t *err)
{
    json_error_t jerr;
    json_t *o = json_loadb(body ? body : "", body ? len : 0, 0, &jerr);
    sy_err_code_t rc = SY_OK;
    if (!o || !json_is_object(o)) {
        rc = sy_err_set(err, SY_ERR_REGISTRY, false,
                        "Schema Registry answer is not a JSON object: %s",
                        o ? "another JSON value" : jerr.text);
        goto out;
    }
    json_t *v = json_object_get(o, "id");
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
        rc = sy_err_set(err, SY_ERR_REGISTRY, false,
                        "Schema Registry answer has no valid \"id\" (a schema id 0..2^31-1)");
        goto out;
    }
    *id = (int32_t)json_integer_value(v);
out:
    json_decref(o);
    return rc;
}

void sy_schemareg_refs_free(sy_schemareg_ref_t *refs, size_t n)
{
    for (size_t i = 0; refs && i < n; i++) {
        free(refs[i].name);
        free(refs[i].subject);
    }
    free(refs);
}

/* The "references" of an answer: [{"name": ..., "subject": ..., "version": N}, ...]. */
static sy_err_code_t parse_refs(json_t *arr, sy_schemareg_ref_t **refs, size_t *n_refs,
                                sy_err_t *err)
{
    size_t n = json_array_size(arr);
    if (n > SY_SCHEMAREG_MAX_REFS)
        return sy_err_set(err, SY_ERR_UNKNOWN_SCHEMA, false,
                          "the registry's schema has %zu schema references (at most %d)", n,
                          SY_SCHEMAREG_MAX_REFS);
    if (!(*refs = calloc(n ? n : 1, sizeof(**refs))))
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(arr, i), *name = json_object_get(r, "name"),
               *subject = json_object_get(r, "subject"), *version = json_object_get(r, "version");
        if (!json_is_string(name) || !*json_string_value(name) || !json_is_string(subject) ||
            !*json_string_value(subject) || !json_is_integer(version) ||
            json_integer_value(version) < 1 || json_integer_value(version) > INT32_MAX) {
            sy_schemareg_refs_free(*refs, *n_refs);
            *refs = NULL;
            *n_refs = 0;
            return sy_err_set(err, SY_ERR_REGISTRY, false,
                              "Schema Registry answer: reference %zu is not {\"name\": string, "
                              "\"subject\": string, \"version\": positive integer}",
                              i + 1);
        }
        sy_schemareg_ref_t *x = &(*refs)[(*n_refs)++];
        x->name = strdup(json_string_value(name));
        x->subject = strdup(json_string_value(subject));
        x->version = (int)json_integer_value(version);
        if (!x->name || !x->subject) {
            sy_schemareg_refs_free(*refs, *n_refs);
            *refs = NULL;
            *n_refs = 0;
            return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        }
    }
    return SY_OK;
}

sy_err_code_t sy_schemareg_parse_schema_refs(const char *body, size_t len, char **schema_json,
                                             sy_schemareg_ref_t **refs, size_t *n_refs,
                                             sy_err_t *err)
{
    json_error_t jerr;
    json_t *o = json_loadb(body ? body : "", body ? len : 0, 0, &jerr);
    sy_err_code_t rc = SY_OK;
    *schema_json = NULL;
    if (refs) {
        *refs = NULL;
        *n_refs = 0;
    }
    if (!o || !json_is_object(o)) {
        rc = sy_err_set(err, SY_ERR_REGISTRY, false,
                        "Schema Registry answer is not a JSON object: %s",
                        o ? "another JSON value" : jerr.text);
        goto out;
    }
    json_t *type = json_object_get(o, "schemaType");
    if (type && !json_is_null(type) &&
        (!json_is_string(type) || strcmp(json_string_value(type), "AVRO") != 0)) {
        rc = sy_err_set(err, SY_ERR_UNKNOWN_SCHEMA, false,
                        "the registry's schema is of type %s, not AVRO",
                        json_is_string(type) ? json_string_value(type) : "(not a string)");
        goto out;
    }
    json_t *s = json_object_get(o, "schema");
    if (!json_is_string(s)) {
        rc = sy_err_set(err, SY_ERR_REGISTRY, false,
                        "Schema Registry answer has no \"schema\" string");
        goto out;
    }
    json_t *arr = json_object_get(o, "references");
    if (arr && !json_is_null(arr) && !json_is_array(arr)) {
        rc = sy_err_set(err, SY_ERR_REGISTRY, false,
                        "Schema Registry answer: \"references\" is not an array");
        goto out;
    }
    if (json_array_size(arr) > 0) {
        if (!refs) {
            rc = sy_err_set(err, SY_ERR_UNKNOWN_SCHEMA, false,
                            "the registry's schema uses %zu schema reference(s), which are not "
                            "fetched here (register self-contained schemas)",
                            json_array_size(arr));
            goto out;
        }
        if ((rc = parse_refs(arr, refs, n_refs, err)) != SY_OK)
            goto out;
    }
    *schema_json = strdup(json_string_value(s));
    if (!*schema_json)
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
out:
    if (rc != SY_OK && refs) {
        sy_schemareg_refs_free(*refs, *n_refs);
        *refs = NULL;
        *n_refs = 0;
    }
    json_decref(o);
    return rc;
}

sy_err_code_t sy_schemareg_parse_schema(const char *body, size_t len, char **schema_json,
                                        sy_err_t *err)
{
    return sy_schemareg_parse_schema_refs(body, len, schema_json, NULL, NULL, err);
}

/* Copies at most 200 bytes of a non-JSON body, printable characters only. */
static void body_excerpt(const char *body, size_t len, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; body && i < len && n + 1 < size && n < 200; i++)
        out[n++] = isprint((unsigned char)body[i]) ? body[i] : ' ';
    out[n] = '\0';
}

sy_err_code_t sy_schemareg_parse_error(long status, const char *body, size_t len, const char *what,
                                       sy_err_t *err)
{
    long code = status;
    char message[300] = "";
    json_t *o = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    if (json_is_object(o)) {
        json_t *c = json_object_get(o, "error_code");
        json_t *m = json_object_get(o, "message");
        if (json_is_integer(c))
            code = (long)json_integer_value(c);
        if (json_is_string(m))
            snprintf(message, sizeof(message), "%s", json_string_value(m));
    } else {
        body_excerpt(body, len, message, sizeof(message));
    }
    json_decref(o);
    /* error_code is either the HTTP status or the status followed by two digits (40403) */
    long klass = code >= 10000 ? code / 100 : code;
    if (klass < 100 || klass > 599)
        klass = status;
    sy_err_code_t rc = SY_ERR_REGISTRY;
    bool retriable = false;
    const char *hint = "";
    if (status == 404 || klass == 404) {
        rc = SY_ERR_NOT_FOUND;
    } else if (status == 409 || klass == 409) {
        rc = SY_ERR_CONFLICT;
        hint = " (the schema is incompatible with the subject's compatibility setting)";
    } else if (status == 422 || klass == 422) {
        rc = SY_ERR_SCHEMA;
    } else if (status == 401 || status == 403) {
        hint = " (check schema.registry.basic.auth)";
    } else if (status >= 500 || status == 429 || status == 408) {
        retriable = true;
    }
    if (code != status)
        sy_err_set(err, rc, retriable, "%s: HTTP %ld (error_code %ld): %s%s", what, status, code,
                   message[0] ? message : "(no message)", hint);
    else
        sy_err_set(err, rc, retriable, "%s: HTTP %ld: %s%s", what, status,
                   message[0] ? message : "(no message)", hint);
    return rc;
}

void sy_schemareg_redact_url(const char *url, char *out, size_t size)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    if (at && (!slash || at < slash))
        snprintf(out, size, "%.*s***@%s", (int)(host - url), url, at + 1);
    else
        snprintf(out, size, "%s", url);
}

/* ---------------------------------------------------------------------------------------- */
/* libcurl transport */

typedef struct growbuf {
    char *data;
    size_t len, cap;
    bool overflow;
} growbuf_t;

static size_t curl_write_cb(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    growbuf_t *b = opaque;
    size_t n = size * nmemb;
    if (b->len + n + 1 > MAX_RESPONSE_BYTES) {
        b->overflow = true;
        return 0; /* aborts the transfer */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The default transport: one reused easy handle (keep-alive), called with reg->lock held. */
static sy_err_code_t curl_transport(void *opaque, const char *method, const char *url,
                                    const char *body, long *status, char **resp, size_t *resp_len,
                                    sy_err_t *err)
{
    sy_schemareg_t *reg = opaque;
    growbuf_t b = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    sy_err_code_t rc = SY_OK;
    CURL *c = reg->curl;
    *resp = NULL;
    *resp_len = 0;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, reg->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (reg->username) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, reg->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, reg->password);
    }
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        bool timeout = cc == CURLE_OPERATION_TIMEDOUT;
        rc = sy_err_set(err, timeout ? SY_ERR_TIMEOUT : SY_ERR_HTTP, !b.overflow, "%s",
                        b.overflow  ? "answer larger than 16 MiB"
                        : errbuf[0] ? errbuf
                                    : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (!b.data && !(b.data = calloc(1, 1))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    *resp = b.data;
    *resp_len = b.len;
    b.data = NULL; /* now owned by the caller */
out:
    free(b.data);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Client */

void sy_schemareg_destroy(sy_schemareg_t *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_urls; i++)
        free(reg->urls[i]);
    free(reg->urls);
    if (reg->password) /* do not leave the secret in freed memory */
        memset(reg->password, 0, strlen(reg->password));
    free(reg->username);
    free(reg->password);
    if (reg->curl)
        curl_easy_cleanup(reg->curl);
    curl_slist_free_all(reg->headers);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

sy_schemareg_t *sy_schemareg_new(const char *urls, const char *basic_auth, long timeout_ms,
                                 sy_err_t *err)
{
    sy_schemareg_t *reg = calloc(1, sizeof(*reg));
    char *copy = NULL;
    bool ok = false;
    if (!reg || !(copy = strdup(urls ? urls : ""))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    pthread_mutex_init(&reg->lock, NULL);
    reg->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    reg->transport = curl_transport;
    reg->transport_opaque = reg;
    for (char *save = NULL, *tok = strtok_r(copy, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save)) {
        size_t n = strlen(tok);
        while (n > 0 && tok[n - 1] == '/')
            tok[--n] = '\0';
        if (!n)
            continue;
        char **u = realloc(reg->urls, (reg->n_urls + 1) * sizeof(*u));
        if (u)
            reg->urls = u;
        if (!u || !(reg->urls[reg->n_urls] = strdup(tok))) {
            sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
        reg->n_urls++;
    }
    if (!reg->n_urls) {
        sy_err_set(err, SY_ERR_CONFIG, false, "schema.registry.url holds no URL");
        goto out;
    }
    if (basic_auth && *basic_auth) {
        const char *colon = strchr(basic_auth, ':');
        if (!colon) {
            sy_err_set(err, SY_ERR_CONFIG, false,
                       "schema.registry.basic.auth must be user:password");
            goto out;
        }
        reg->username = strndup(basic_auth, (size_t)(colon - basic_auth));
        reg->password = strdup(colon + 1);
    }
    pthread_once(&curl_once, curl_init_once);
    reg->curl = curl_easy_init();
    reg->headers = curl_slist_append(NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
    if (reg->headers)
        reg->headers = curl_slist_append(reg->headers,
                                         "Accept: application/vnd.schemaregistry.v1+json, "
                                         "application/vnd.schemaregistry+json, application/json");
    if (!reg->curl || !reg->headers ||
        (basic_auth && *basic_auth && (!reg->username || !reg->password))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    ok = true;
out:
    free(copy);
    if (!ok) {
        sy_schemareg_destroy(reg);
        reg = NULL;
    }
    return reg;
}

void sy_schemareg_set_transport(sy_schemareg_t *reg, sy_schemareg_transport_fn fn, void *opaque)
{
    pthread_mutex_lock(&reg->lock);
    reg->transport = fn ? fn : curl_transport;
    reg->transport_opaque = fn ? opaque : reg;
    pthread_mutex_unlock(&reg->lock);
}

/* Sends method path (+ body) to the URLs in turn, starting with the preferred one, until one
 * answers with a status below 500. On SY_OK *status and *resp hold that answer (caller frees
 * *resp). When every URL fails, the error is the last one seen, marked retriable. */
static sy_err_code_t request(sy_schemareg_t *reg, const char *method, const char *path,
                             const char *body, long *status, char **resp, size_t *resp_len,
                             sy_err_t *err)
{
    sy_err_code_t rc = SY_ERR_REGISTRY;
    sy_err_t last = SY_ERR_INIT;
    char what[300];
    pthread_mutex_lock(&reg->lock);
    size_t start = reg->preferred;
    for (size_t k = 0; k < reg->n_urls; k++) {
        size_t i = (start + k) % reg->n_urls;
        char *url = NULL, shown[512];
        if (asprintf(&url, "%s%s", reg->urls[i], path) < 0) {
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
        sy_schemareg_redact_url(url, shown, sizeof(shown));
        snprintf(what, sizeof(what), "%s %.280s", method, shown);
        *resp = NULL;
        sy_err_t terr = SY_ERR_INIT;
        sy_err_code_t trc =
            reg->transport(reg->transport_opaque, method, url, body, status, resp, resp_len, &terr);
        free(url);
        if (trc != SY_OK) {
            sy_warn("schemareg", "%s: %s", what, terr.msg);
            sy_err_set(&last, SY_ERR_REGISTRY, true, "%s: %s", what, terr.msg);
            continue;
        }
        sy_debug("schemareg", "%s -> HTTP %ld", what, *status);
        if (*status >= 500) {
            sy_schemareg_parse_error(*status, *resp, *resp_len, what, &last);
            sy_warn("schemareg", "%s", last.msg);
            free(*resp);
            *resp = NULL;
            continue;
        }
        reg->preferred = i;
        rc = SY_OK;
        goto out;
    }
    rc = sy_err_set(err, SY_ERR_REGISTRY, true, "Schema Registry unavailable (%zu URL%s tried): %s",
                    reg->n_urls, reg->n_urls == 1 ? "" : "s", last.msg);
out:
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

/* Percent-encodes a subject for use as one path segment. */
static char *encode_segment(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1), *p = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            *p++ = (char)c;
        else
            p += sprintf(p, "%%%02X", c);
    }
    *p = '\0';
    return out;
}

/* POST path with {"schema": ...}; parses the id of a 200 answer. */
static sy_err_code_t post_schema(sy_schemareg_t *reg, const char *path, const char *what,
                                 const char *schema_json, int32_t *id, sy_err_t *err)
{
    char *body = sy_schemareg_request_body(schema_json);
    char *resp = NULL;
    size_t resp_len = 0;
    long status = 0;
    sy_err_code_t rc;
    if (!body) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    if ((rc = request(reg, "POST", path, body, &status, &resp, &resp_len, err)) != SY_OK)
        goto out;
    if (status / 100 == 2)
        rc = sy_schemareg_parse_id(resp, resp_len, id, err);
    else
        rc = sy_schemareg_parse_error(status, resp, resp_len, what, err);
out:
    free(body);
    free(resp);
    return rc;
}

sy_err_code_t sy_schemareg_register(sy_schemareg_t *reg, const char *subject,
                                    const char *schema_json, int32_t *id, sy_err_t *err)
{
    char *seg = encode_segment(subject), *path = NULL, what[300];
    sy_err_code_t rc;
    if (!seg || asprintf(&path, "/subjects/%s/versions", seg) < 0) {
        path = NULL;
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    snprintf(what, sizeof(what), "registering a schema under subject %s", subject);
    rc = post_schema(reg, path, what, schema_json, id, err);
out:
    free(seg);
    free(path);
    return rc;
}

sy_err_code_t sy_schemareg_lookup(sy_schemareg_t *reg, const char *subject, const char *schema_json,
                                  int32_t *id, sy_err_t *err)
{
    char *seg = encode_segment(subject), *path = NULL, what[300];
    sy_err_code_t rc;
    if (!seg || asprintf(&path, "/subjects/%s", seg) < 0) {
        path = NULL;
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    snprintf(what, sizeof(what), "looking up our schema under subject %s", subject);
    rc = post_schema(reg, path, what, schema_json, id, err);
out:
    free(seg);
    free(path);
    return rc;
}

sy_err_code_t sy_schemareg_get_schema(sy_schemareg_t *reg, int32_t id, char **schema_json,
                                      sy_err_t *err)
{
    char path[64], what[64];
    char *resp = NULL;
    size_t resp_len = 0;
    long status = 0;
    sy_err_code_t rc;
    *schema_json = NULL;
    snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
    snprintf(what, sizeof(what), "fetching schema id %d", (int)id);
    if ((rc = request(reg, "GET", path, NULL, &status, &resp, &resp_len, err)) != SY_OK)
        goto out;
    if (status / 100 == 2) {
        rc = sy_schemareg_parse_schema(resp, resp_len, schema_json, err);
        if (rc != SY_OK)
            sy_err_prefix(err, "schema id %d", (int)id);
        goto out;
    }
    rc = sy_schemareg_parse_error(status, resp, resp_len, what, err);
    if (rc == SY_ERR_NOT_FOUND) {
        if (err)
            err->code = SY_ERR_UNKNOWN_SCHEMA;
        rc = SY_ERR_UNKNOWN_SCHEMA;
    }
out:
    free(resp);
    return rc;
}

/* GET path: a schema answer (what names it for messages). */
static sy_err_code_t get_schema_answer(sy_schemareg_t *reg, const char *path, const char *what,
                                       char **schema_json, sy_schemareg_ref_t **refs,
                                       size_t *n_refs, sy_err_t *err)
{
    char *resp = NULL;
    size_t resp_len = 0;
    long status = 0;
    sy_err_code_t rc = request(reg, "GET", path, NULL, &status, &resp, &resp_len, err);
    if (rc == SY_OK && status / 100 == 2) {
        if ((rc = sy_schemareg_parse_schema_refs(resp, resp_len, schema_json, refs, n_refs, err)) !=
            SY_OK)
            sy_err_prefix(err, "%s", what);
    } else if (rc == SY_OK) {
        rc = sy_schemareg_parse_error(status, resp, resp_len, what, err);
    }
    free(resp);
    return rc;
}

sy_err_code_t sy_schemareg_get_schema_refs(sy_schemareg_t *reg, int32_t id, char **schema_json,
                                           char ***ref_schemas, size_t *n_ref_schemas,
                                           sy_err_t *err)
{
    char path[64], what[64];
    sy_schemareg_ref_t *queue = NULL, *more = NULL;
    size_t n_queue = 0, n_more = 0, done = 0;
    *schema_json = NULL;
    *ref_schemas = NULL;
    *n_ref_schemas = 0;
    snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
    snprintf(what, sizeof(what), "fetching schema id %d", (int)id);
    sy_err_code_t rc = get_schema_answer(reg, path, what, schema_json, &queue, &n_queue, err);
    if (rc == SY_ERR_NOT_FOUND) {
        if (err)
            err->code = SY_ERR_UNKNOWN_SCHEMA;
        rc = SY_ERR_UNKNOWN_SCHEMA;
    }
    /* breadth first over the references of references; each subject version fetched once */
    while (rc == SY_OK && done < n_queue) {
        sy_schemareg_ref_t *ref = &queue[done++];
        bool seen = false;
        for (size_t i = 0; i + 1 < done && !seen; i++)
            seen = queue[i].version == ref->version && !strcmp(queue[i].subject, ref->subject);
        if (seen)
            continue;
        if (*n_ref_schemas == SY_SCHEMAREG_MAX_REFS) {
            rc = sy_err_set(err, SY_ERR_UNKNOWN_SCHEMA, false,
                            "schema id %d: more than %d schema references, directly or not",
                            (int)id, SY_SCHEMAREG_MAX_REFS);
            break;
        }
        char *seg = encode_segment(ref->subject), *p = NULL, w[400], *text = NULL;
        if (!seg || asprintf(&p, "/subjects/%s/versions/%d", seg, ref->version) < 0) {
            p = NULL;
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        } else {
            snprintf(w, sizeof(w),
                     "schema id %d: fetching its reference %.100s (subject %.150s "
                     "version %d)",
                     (int)id, ref->name, ref->subject, ref->version);
            rc = get_schema_answer(reg, p, w, &text, &more, &n_more, err);
        }
        free(seg);
        free(p);
        if (rc == SY_ERR_NOT_FOUND && err)
            err->code = rc = SY_ERR_UNKNOWN_SCHEMA;
        if (rc != SY_OK)
            break;
        char **texts = realloc(*ref_schemas, (*n_ref_schemas + 1) * sizeof(*texts));
        sy_schemareg_ref_t *q = n_more ? realloc(queue, (n_queue + n_more) * sizeof(*q)) : queue;
        if (!texts || !q) {
            if (texts)
                *ref_schemas = texts;
            if (q)
                queue = q;
            free(text);
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            break;
        }
        *ref_schemas = texts;
        texts[(*n_ref_schemas)++] = text;
        queue = q;
        if (n_more) /* the strings move over */
            memcpy(queue + n_queue, more, n_more * sizeof(*more));
        n_queue += n_more;
        free(more);
        more = NULL;
        n_more = 0;
    }
    sy_schemareg_refs_free(more, n_more);
    sy_schemareg_refs_free(queue, n_queue);
    if (rc != SY_OK) {
        free(*schema_json);
        *schema_json = NULL;
        for (size_t i = 0; i < *n_ref_schemas; i++)
            free((*ref_schemas)[i]);
        free(*ref_schemas);
        *ref_schemas = NULL;
        *n_ref_schemas = 0;
    }
    return rc;
}
