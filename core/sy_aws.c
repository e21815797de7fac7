/* sy_aws: the AWS client — signed calls over libcurl, endpoints, retries, counters, parsers. */
#include "sy_time.h"
#include "sy_aws.h"
#include "sy_awscred.h"
#include "sy_http.h"
#include "sy_log.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define LOG     "aws"
#define MAX_OPS 64
/* SHA-256 of the empty payload: S3 wants x-amz-content-sha256, and libcurl 7.88 does not add
 * it (it signs the header when we do). */
#define EMPTY_SHA256  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define JSON_MAX_BODY (16u * 1024 * 1024)
#define S3_MAX_BODY   (64u * 1024 * 1024)

/* The services the client knows, with the facts from their botocore models
 * (metadata.serviceId, endpointPrefix, signingName, apiVersion). */
typedef struct service {
    const char *name;            /* what callers pass */
    const char *service_id;      /* → AWS_ENDPOINT_URL_<SERVICE_ID> */
    const char *endpoint_prefix; /* https://<prefix>.<region>.amazonaws.com */
    const char *signing_name;    /* the SigV4 credential scope's service */
    const char *api_version;     /* query protocol's Version */
    bool global;                 /* one endpoint for all regions, signed for us-east-1 */
} service_t;

static const service_t services[] = {
    {"emr", "EMR", "elasticmapreduce", "elasticmapreduce", "2009-03-31", false},
    {"emr-containers", "EMR containers", "emr-containers", "emr-containers", "2020-10-01", false},
    {"logs", "CloudWatch Logs", "logs", "logs", "2014-03-28", false},
    {"s3", "S3", "s3", "s3", "2006-03-01", false},
    {"sts", "STS", "sts", "sts", "2011-06-15", false},
    {"iam", "IAM", "iam", "iam", "2010-05-08", true},
};
#define N_SERVICES (sizeof(services) / sizeof(services[0]))

struct sy_aws {
    CURL *curl;
    char **env; /* copy of the AWS_* variables */
    char *region;
    sy_awscred_provider_t *cred;
    char *endpoint[N_SERVICES];
    bool custom_endpoint[N_SERVICES];
    int max_attempts;
    long timeout_ms, connect_timeout_ms, base_ms, cap_ms, budget_ms;
    unsigned int seed; /* jitter */
    char last_code[128];
    long last_status;
    sy_aws_op_stats_t stats[MAX_OPS];
    size_t n_stats;
    unsigned long connections;
};

/* ------------------------------------------------------------------------------------------ */
/* Environment and endpoints                                                                  */

const char *sy_aws_getenv(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = envp; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=')
            return (*e)[n + 1] ? *e + n + 1 : NULL;
    return NULL;
}

static const service_t *find_service(const char *name)
{
    for (size_t i = 0; i < N_SERVICES; i++)
        if (!strcmp(services[i].name, name))
            return &services[i];
    return NULL;
}

const char *sy_aws_endpoint_env_name(const char *service, char *buf, size_t size)
{
    const service_t *s = find_service(service);
    if (!s)
        return NULL;
    int n = snprintf(buf, size, "AWS_ENDPOINT_URL_%s", s->service_id);
    if (n < 0 || (size_t)n >= size)
        return NULL;
    for (char *p = buf + 17; *p; p++)
        *p = *p == ' ' ? '_' : (char)toupper((unsigned char)*p);
    return buf;
}

static bool is_true(const char *v)
{
    return v && !strcasecmp(v, "true");
}

sy_err_code_t sy_aws_endpoint(char *const *envp, const char *service, const char *region, char *url,
                              size_t size, bool *custom, sy_err_t *err)
{
    const service_t *s = find_service(service);
    if (!s)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "unknown AWS service \"%s\"", service);
    char var[96];
    sy_aws_endpoint_env_name(service, var, sizeof(var));
    const char *from = NULL, *v = NULL;
    if (!is_true(sy_aws_getenv(envp, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))) {
        if ((v = sy_aws_getenv(envp, var)))
            from = var;
        else if ((v = sy_aws_getenv(envp, "AWS_ENDPOINT_URL")))
            from = "AWS_ENDPOINT_URL";
    }
    if (custom)
        *custom = v != NULL;
    if (v) {
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            return sy_err_set(err, SY_ERR_CONFIG, false, "%s=\"%s\" is not an http(s) URL", from,
                              v);
        size_t len = strlen(v);
        while (len > 8 && v[len - 1] == '/')
            len--;
        if (len >= size)
            return sy_err_set(err, SY_ERR_CONFIG, false, "%s is too long", from);
        memcpy(url, v, len);
        url[len] = '\0';
        return SY_OK;
    }
    int n;
    if (s->global)
        n = snprintf(url, size, "https://%s.amazonaws.com", s->endpoint_prefix);
    else if (!region || !*region)
        return sy_err_set(err, SY_ERR_CONFIG, false, "no AWS region for the %s endpoint", service);
    else
        n = snprintf(url, size, "https://%s.%s.amazonaws.com%s", s->endpoint_prefix, region,
                     strncmp(region, "cn-", 3) ? "" : ".cn");
    if (n < 0 || (size_t)n >= size)
        return sy_err_set(err, SY_ERR_CONFIG, false, "endpoint URL too long");
    return SY_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Retry classification and backoff                                                           */

static bool in_list(const char *code, const char *const *list)
{
    if (!code || !*code)
        return false;
    for (const char *const *p = list; *p; p++)
        if (!strcmp(code, *p))
            return true;
    return false;
}

/* botocore's standard retry mode lists. */
static const char *const throttle_codes[] = {"Throttling",
                                             "ThrottlingException",
                                             "ThrottledException",
                                             "RequestThrottledException",
                                             "TooManyRequestsException",
                                             "ProvisionedThroughputExceededException",
                                             "TransactionInProgressException",
                                             "RequestLimitExceeded",
                                             "BandwidthLimitExceeded",
                                             "LimitExceededException",
                                             "RequestThrottled",
                                             "SlowDown",
                                             "PriorRequestNotComplete",
                                             "EC2ThrottledException",
                                             NULL};
static const char *const transient_codes[] = {"RequestTimeout",
                                              "RequestTimeoutException",
                                              "PriorRequestNotComplete",
                                              "InternalError",
                                              "InternalFailure",
                                              "InternalServerError",
                                              "InternalServerException",
                                              "ServiceUnavailable",
                                              "ServiceUnavailableException",
                                              "IDPCommunicationError",
                                              NULL};
/* Credentials that expired between fetching and signing: refresh, then try again. */
static const char *const expired_codes[] = {"ExpiredToken", "ExpiredTokenException",
                                            "RequestExpired", NULL};

bool sy_aws_is_throttle(long status, const char *code)
{
    return status == 429 || in_list(code, throttle_codes);
}

bool sy_aws_is_retriable(long status, const char *code)
{
    return sy_aws_is_throttle(status, code) || status >= 500 || in_list(code, transient_codes);
}

long sy_aws_backoff_ms(int retry, long base_ms, long cap_ms, double r)
{
    if (retry < 1)
        retry = 1;
    double ceiling = (double)base_ms;
    for (int i = 1; i < retry && ceiling < (double)cap_ms; i++)
        ceiling *= 2;
    if (ceiling > (double)cap_ms)
        ceiling = (double)cap_ms;
    if (r < 0)
        r = 0;
    if (r >= 1)
        r = 0.999999;
    return (long)(r * ceiling);
}

/* ------------------------------------------------------------------------------------------ */
/* XML                                                                                        */

static const char *find_str(const char *s, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    for (; s + n <= end; s++)
        if (*s == *needle && !memcmp(s, needle, n))
            return s;
    return NULL;
}

static bool name_ends(char c)
{
    return c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

const char *sy_aws_xml_find(const char *xml, const char *end, const char *tag,
                            const char **content_end)
{
    size_t tlen = strlen(tag);
    for (const char *p = xml; p && p < end; p++) {
        if (*p != '<')
            continue;
        if (p + 1 < end && (p[1] == '?' || p[1] == '!')) { /* declaration, comment, CDATA */
            const char *close =
                p[1] == '!' && p + 3 < end && !memcmp(p, "<!--", 4) ? find_str(p, end, "-->")
                : p + 8 < end && !memcmp(p, "<![CDATA[", 9)         ? find_str(p, end, "]]>")
                                                            : memchr(p, '>', (size_t)(end - p));
            if (!close)
                return NULL;
            p = close;
            continue;
        }
        if (p + 1 + tlen >= end || memcmp(p + 1, tag, tlen) || !name_ends(p[1 + tlen]))
            continue;
        const char *gt = memchr(p, '>', (size_t)(end - p));
        if (!gt)
            return NULL;
        if (gt[-1] == '/') { /* <Tag/> */
            *content_end = gt + 1;
            return gt + 1;
        }
        /* Matching close tag, counting nested elements of the same name. */
        int depth = 1;
        for (const char *q = gt + 1; q < end; q++) {
            if (*q != '<')
                continue;
            if (q + 2 + tlen <= end && q[1] == '/' && !memcmp(q + 2, tag, tlen) &&
                (q + 2 + tlen == end || name_ends(q[2 + tlen]))) {
                if (--depth == 0) {
                    *content_end = q;
                    return gt + 1;
                }
            } else if (q + 1 + tlen < end && !memcmp(q + 1, tag, tlen) && name_ends(q[1 + tlen])) {
                const char *g = memchr(q, '>', (size_t)(end - q));
                if (g && g[-1] != '/')
                    depth++;
            }
        }
        return NULL; /* unclosed */
    }
    return NULL;
}

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

char *sy_aws_xml_text(const char *xml, const char *end, const char *tag)
{
    const char *cend;
    const char *s = sy_aws_xml_find(xml, end, tag, &cend);
    if (!s)
        return NULL;
    char *out = malloc((size_t)(cend - s) + 1), *o = out;
    if (!out)
        return NULL;
    while (s < cend) {
        if (*s == '<' && cend - s >= 12 && !memcmp(s, "<![CDATA[", 9)) {
            const char *ce = find_str(s, cend, "]]>");
            const char *stop = ce ? ce : cend;
            memcpy(o, s + 9, (size_t)(stop - s - 9));
            o += stop - s - 9;
            s = ce ? ce + 3 : cend;
            continue;
        }
        if (*s != '&') {
            *o++ = *s++;
            continue;
        }
        const char *semi = memchr(s, ';', (size_t)(cend - s));
        size_t n = semi ? (size_t)(semi - s) : 0;
        static const struct {
            const char *name;
            char c;
        } ents[] = {{"&amp", '&'}, {"&lt", '<'}, {"&gt", '>'}, {"&quot", '"'}, {"&apos", '\''}};
        bool done = false;
        for (size_t i = 0; semi && i < sizeof(ents) / sizeof(ents[0]); i++) {
            if (n == strlen(ents[i].name) && !memcmp(s, ents[i].name, n)) {
                *o++ = ents[i].c;
                done = true;
            }
        }
        if (!done && semi && n >= 3 && s[1] == '#') {
            char *e;
            unsigned long cp =
                s[2] == 'x' || s[2] == 'X' ? strtoul(s + 3, &e, 16) : strtoul(s + 2, &e, 10);
            /* a code point never needs more bytes than its "&#...;" spelling (>= 4) */
            if (e == semi && cp > 0 && cp <= 0x10FFFF) {
                o += put_utf8(o, cp);
                done = true;
            }
        }
        if (done) {
            s = semi + 1;
        } else {
            *o++ = *s++; /* not an entity we know: keep the '&' */
        }
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Error answers                                                                              */

static void copy_trunc(char *dst, size_t size, const char *src, size_t len)
{
    if (!size)
        return;
    if (len >= size)
        len = size - 1;
    /* Keep it one printable line: error text goes into logs and messages. */
    for (size_t i = 0; i < len; i++)
        dst[i] = (src[i] == '\n' || src[i] == '\r' || src[i] == '\t') ? ' ' : src[i];
    dst[len] = '\0';
}

/* "com.amazonaws.emr#InvalidRequestException:http://..." → "InvalidRequestException". */
static void clean_code(char *dst, size_t size, const char *code)
{
    const char *hash = strrchr(code, '#');
    if (hash)
        code = hash + 1;
    size_t len = strcspn(code, ":");
    copy_trunc(dst, size, code, len);
}

void sy_aws_parse_error(const char *body, size_t len, const char *error_type_header, char *code,
                        size_t code_size, char *message, size_t message_size)
{
    if (code_size)
        code[0] = '\0';
    if (message_size)
        message[0] = '\0';
    const char *end = body ? body + len : NULL;
    const char *p = body;
    while (p && p < end && isspace((unsigned char)*p))
        p++;
    if (p && p < end && *p == '{') {
        json_t *j = json_loadb(body, len, 0, NULL);
        if (json_is_object(j)) {
            const char *c = json_string_value(json_object_get(j, "__type"));
            if (!c)
                c = json_string_value(json_object_get(j, "code"));
            if (!c)
                c = json_string_value(json_object_get(j, "Code"));
            if (c)
                clean_code(code, code_size, c);
            const char *m = json_string_value(json_object_get(j, "message"));
            if (!m)
                m = json_string_value(json_object_get(j, "Message"));
            if (!m)
                m = json_string_value(json_object_get(j, "errorMessage"));
            if (m)
                copy_trunc(message, message_size, m, strlen(m));
        }
        json_decref(j);
    } else if (p && p < end && *p == '<') {
        /* S3: <Error><Code>; query protocol: <ErrorResponse><Error><Code>. */
        const char *eend, *e = sy_aws_xml_find(p, end, "Error", &eend);
        if (!e) {
            e = p;
            eend = end;
        }
        char *c = sy_aws_xml_text(e, eend, "Code");
        char *m = sy_aws_xml_text(e, eend, "Message");
        if (c)
            clean_code(code, code_size, c);
        if (m)
            copy_trunc(message, message_size, m, strlen(m));
        free(c);
        free(m);
    }
    /* REST-JSON services name the error in a header too; it wins when the body did not. */
    if (code_size && !code[0] && error_type_header && *error_type_header)
        clean_code(code, code_size, error_type_header);
}

/* ------------------------------------------------------------------------------------------ */
/* S3 listing and canonical query                                                             */

void sy_aws_s3_listing_clear(sy_aws_s3_listing_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->objects[i].key);
        free(l->objects[i].last_modified);
    }
    free(l->objects);
    free(l->next_token);
    memset(l, 0, sizeof(*l));
}

sy_err_code_t sy_aws_s3_parse_listing(const char *xml, size_t len, sy_aws_s3_listing_t *out,
                                      sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    memset(out, 0, sizeof(*out));
    const char *end = xml + len, *rend;
    const char *root = sy_aws_xml_find(xml, end, "ListBucketResult", &rend);
    if (!root)
        return sy_err_set(err, SY_ERR_AWS, false, "S3 ListObjectsV2: not a ListBucketResult");
    size_t cap = 0;
    const char *cend;
    for (const char *c = sy_aws_xml_find(root, rend, "Contents", &cend); c;
         c = sy_aws_xml_find(cend, rend, "Contents", &cend)) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            sy_aws_s3_object_t *o = realloc(out->objects, cap * sizeof(*o));
            if (!o) {
                rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
                goto out;
            }
            out->objects = o;
        }
        sy_aws_s3_object_t *o = &out->objects[out->n];
        memset(o, 0, sizeof(*o));
        o->key = sy_aws_xml_text(c, cend, "Key");
        if (!o->key) {
            rc = sy_err_set(err, SY_ERR_AWS, false, "S3 ListObjectsV2: <Contents> without <Key>");
            goto out;
        }
        out->n++;
        char *size = sy_aws_xml_text(c, cend, "Size");
        o->size = size ? strtoll(size, NULL, 10) : -1;
        free(size);
        o->last_modified = sy_aws_xml_text(c, cend, "LastModified");
    }
    /* Only the result's own children, not <Contents> ones (none of them has these names). */
    char *truncated = sy_aws_xml_text(root, rend, "IsTruncated");
    out->truncated = truncated && !strcmp(truncated, "true");
    free(truncated);
    out->next_token = sy_aws_xml_text(root, rend, "NextContinuationToken");
    if (out->truncated && !out->next_token)
        rc = sy_err_set(err, SY_ERR_AWS, false,
                        "S3 ListObjectsV2: truncated listing without NextContinuationToken");
out:
    if (rc != SY_OK)
        sy_aws_s3_listing_clear(out);
    return rc;
}

typedef struct qpair {
    char *k, *v;
} qpair_t;

static int qpair_cmp(const void *a, const void *b)
{
    const qpair_t *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

char *sy_aws_canonical_query(const char *query)
{
    size_t n = 0, cap = 8;
    qpair_t *pairs = calloc(cap, sizeof(*pairs));
    char *out = NULL;
    if (!pairs)
        return NULL;
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len) {
            if (n == cap) {
                qpair_t *np = realloc(pairs, 2 * cap * sizeof(*pairs));
                if (!np)
                    goto out;
                pairs = np;
                cap *= 2;
            }
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            char *k = sy_http_url_decode(p, klen);
            char *v = eq ? sy_http_url_decode(eq + 1, len - klen - 1) : strdup("");
            pairs[n].k = k ? sy_http_url_encode(k, false) : NULL;
            pairs[n].v = v ? sy_http_url_encode(v, false) : NULL;
            n++;
            free(k);
            free(v);
            if (!pairs[n - 1].k || !pairs[n - 1].v)
                goto out;
        }
        p = amp ? amp + 1 : p + len;
    }
    qsort(pairs, n, sizeof(*pairs), qpair_cmp);
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(pairs[i].k) + strlen(pairs[i].v) + 2;
    if (!(out = malloc(total)))
        goto out;
    char *o = out;
    *o = '\0';
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "%s%s=%s", i ? "&" : "", pairs[i].k, pairs[i].v);
out:
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].k);
        free(pairs[i].v);
    }
    free(pairs);
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* The client                                                                                 */

static void free_env(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}

/* The AWS_* entries of envp, copied (NULL-terminated). */
static char **copy_aws_env(char *const *envp)
{
    size_t n = 0;
    for (char *const *e = envp; e && *e; e++)
        n += !strncmp(*e, "AWS_", 4);
    char **env = calloc(n + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t i = 0;
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, "AWS_", 4))
            continue;
        if (!(env[i++] = strdup(*e))) {
            free_env(env);
            return NULL;
        }
    }
    return env;
}

void sy_aws_destroy(sy_aws_t *aws)
{
    if (!aws)
        return;
    if (aws->curl)
        curl_easy_cleanup(aws->curl);
    free_env(aws->env);
    free(aws->region);
    sy_awscred_provider_destroy(aws->cred);
    for (size_t i = 0; i < N_SERVICES; i++)
        free(aws->endpoint[i]);
    free(aws);
}

static sy_aws_t *aws_new(const sy_config_t *conf, char **envp, const char *region_override,
                         sy_err_t *err);

sy_aws_t *sy_aws_new(const sy_config_t *conf, sy_err_t *err)
{
    return aws_new(conf, NULL, NULL, err);
}

sy_aws_t *sy_aws_new_env(const sy_config_t *conf, char **envp, sy_err_t *err)
{
    return aws_new(conf, envp, NULL, err);
}

sy_aws_t *sy_aws_new_region(const sy_config_t *conf, const char *region, sy_err_t *err)
{
    return aws_new(conf, NULL, region && *region ? region : NULL, err);
}

static long clamp_long(long long v, long lo, long hi)
{
    return v < lo ? lo : v > hi ? hi : (long)v;
}

static sy_aws_t *aws_new(const sy_config_t *conf, char **envp, const char *region_override,
                         sy_err_t *err)
{
    if (!envp)
        envp = environ;
    sy_aws_t *aws = calloc(1, sizeof(*aws));
    bool ok = false;
    if (!aws) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    aws->max_attempts = (int)clamp_long(sy_config_get_int(conf, "aws.max.attempts"), 1, 100);
    aws->timeout_ms = clamp_long(sy_config_get_int(conf, "aws.timeout.ms"), 1, 3600000);
    aws->connect_timeout_ms =
        clamp_long(sy_config_get_int(conf, "aws.connect.timeout.ms"), 1, 3600000);
    aws->base_ms = clamp_long(sy_config_get_int(conf, "aws.retry.base.ms"), 1, 3600000);
    aws->cap_ms = clamp_long(sy_config_get_int(conf, "aws.retry.max.backoff.ms"), 1, 3600000);
    aws->budget_ms = clamp_long(sy_config_get_int(conf, "aws.retry.budget.ms"), 1, 86400000);
    aws->seed = (unsigned int)time(NULL) ^ (unsigned int)getpid() ^ (unsigned int)(uintptr_t)aws;
    if (!(aws->env = copy_aws_env(envp))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    const char *region = region_override ? region_override : sy_config_get(conf, "aws.region");
    sy_awscred_opts_t opts = {
        .region = *region ? region : NULL,
        .timeout_ms = aws->timeout_ms,
        .refresh_before_ms = (long)sy_config_get_int(conf, "aws.credentials.refresh.ms"),
    };
    if (!(aws->cred = sy_awscred_provider_new(envp, &opts, err)))
        goto out;
    if (!*region)
        region = sy_awscred_provider_region(aws->cred);
    if (!region) {
        sy_err_set(err, SY_ERR_CONFIG, false,
                   "no AWS region: set aws.region, AWS_REGION or the profile's region");
        goto out;
    }
    if (!(aws->region = strdup(region))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < N_SERVICES; i++) {
        char url[1024];
        if (sy_aws_endpoint(aws->env, services[i].name, aws->region, url, sizeof(url),
                            &aws->custom_endpoint[i], err) != SY_OK)
            goto out;
        if (!(aws->endpoint[i] = strdup(url))) {
            sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
    }
    if (!(aws->curl = sy_http_handle_new(err)))
        goto out;
    sy_debug(LOG, "AWS client: region %s, credentials from %s", aws->region,
             sy_awscred_provider_source(aws->cred));
    ok = true;
out:
    if (!ok) {
        sy_aws_destroy(aws);
        aws = NULL;
    }
    return aws;
}

const char *sy_aws_region(const sy_aws_t *aws)
{
    return aws->region;
}

const char *sy_aws_credentials_source(const sy_aws_t *aws)
{
    return sy_awscred_provider_source(aws->cred);
}

const char *sy_aws_last_error_code(const sy_aws_t *aws)
{
    return aws->last_code;
}

long sy_aws_last_status(const sy_aws_t *aws)
{
    return aws->last_status;
}

size_t sy_aws_stats(const sy_aws_t *aws, sy_aws_op_stats_t *out, size_t max)
{
    for (size_t i = 0; i < aws->n_stats && i < max; i++)
        out[i] = aws->stats[i];
    return aws->n_stats;
}

unsigned long sy_aws_connections(const sy_aws_t *aws)
{
    return aws->connections;
}

void sy_aws_stats_reset(sy_aws_t *aws)
{
    memset(aws->stats, 0, sizeof(aws->stats));
    aws->n_stats = 0;
    aws->connections = 0;
}

static sy_aws_op_stats_t *stats_for(sy_aws_t *aws, const char *svc, const char *op)
{
    char name[64];
    snprintf(name, sizeof(name), "%s:%s", svc, op);
    for (size_t i = 0; i < aws->n_stats; i++)
        if (!strcmp(aws->stats[i].op, name))
            return &aws->stats[i];
    /* The last slot collects operations beyond the table rather than losing their counts. */
    size_t i = aws->n_stats < MAX_OPS ? aws->n_stats++ : MAX_OPS - 1;
    if (i < MAX_OPS - 1 || !aws->stats[i].op[0]) {
        memset(&aws->stats[i], 0, sizeof(aws->stats[i]));
        snprintf(aws->stats[i].op, sizeof(aws->stats[i].op), "%s",
                 i == MAX_OPS - 1 ? "other" : name);
    }
    return &aws->stats[i];
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* Frees a header list after overwriting its contents (it may hold a session token). */
static void slist_wipe_free(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

/* One API call as the retry loop sees it. */
typedef struct call {
    const service_t *svc;
    size_t svc_index;
    const char *op;
    const char *method;
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" */
    const char *body;
    size_t body_len;
    size_t max_body;
    unsigned flags;
    bool accept_416; /* S3 ranged GET past the end */
} call_t;

/* Builds this attempt's headers (c's, then the session token) and "key:secret" for SigV4.
 * No "Expect:" suppression header: libcurl 7.88 signs it as an empty "expect" header and then
 * does not send it, so the signature cannot verify (curl only adds 100-continue for bodies over
 * 1 MiB, far above our API calls). */
static sy_err_code_t sign_setup(const call_t *c, const sy_awscred_t *cred,
                                struct curl_slist **headers, char **userpwd, sy_err_t *err)
{
    struct curl_slist *l = NULL, *t;
    char *token_hdr = NULL;
    bool ok = false;
    for (const char *const *h = c->headers; h && *h; h++) {
        if (!(t = curl_slist_append(l, *h)))
            goto out;
        l = t;
    }
    if (cred->session_token) {
        size_t n = strlen(cred->session_token) + 32;
        if (!(token_hdr = malloc(n)))
            goto out;
        snprintf(token_hdr, n, "X-Amz-Security-Token: %s", cred->session_token);
        if (!(t = curl_slist_append(l, token_hdr)))
            goto out;
        l = t;
    }
    size_t n = strlen(cred->access_key_id) + strlen(cred->secret_access_key) + 2;
    if (!(*userpwd = malloc(n)))
        goto out;
    snprintf(*userpwd, n, "%s:%s", cred->access_key_id, cred->secret_access_key);
    *headers = l;
    l = NULL; /* now owned by the caller */
    ok = true;
out:
    slist_wipe_free(l);
    wipe_free(token_hdr);
    return ok ? SY_OK : sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
}

/* One attempt of c. Returns SY_OK on a 2xx answer (or an accepted 416); otherwise fills err
 * (message without the "<service> <op>: " prefix) and *retry (whether trying again may help,
 * given c->flags). */
static sy_err_code_t attempt(sy_aws_t *aws, const call_t *c, const char *sigv4, long timeout,
                             bool *refreshed, sy_aws_op_stats_t *st, sy_http_response_t *resp,
                             bool *retry, sy_err_t *err)
{
    sy_awscred_t cred = SY_AWSCRED_INIT;
    struct curl_slist *headers = NULL;
    char *userpwd = NULL;
    char code[128] = "", message[300] = "", errtype[160], reqid[128];
    sy_err_code_t rc;
    *retry = false;
    /* Provider failures are final here: the provider already retried what it could. */
    if ((rc = sy_awscred_provider_get(aws->cred, &cred, err)) != SY_OK)
        goto out;
    if ((rc = sign_setup(c, &cred, &headers, &userpwd, err)) != SY_OK)
        goto out;
    sy_http_request_t req = {
        .method = c->method,
        .url = c->url,
        .headers = headers,
        .body = c->body,
        .body_len = c->body_len,
        .timeout_ms = timeout,
        .connect_timeout_ms = aws->connect_timeout_ms < timeout ? aws->connect_timeout_ms : timeout,
        .max_body = c->max_body,
        .aws_sigv4 = sigv4,
        .userpwd = userpwd,
    };
    st->attempts++;
    rc = sy_http_perform(aws->curl, &req, resp, err);
    aws->connections += (unsigned long)resp->connects;
    if (rc != SY_OK) {
        *retry =
            err && err->retriable && (!(c->flags & SY_AWS_NO_AMBIGUOUS_RETRY) || resp->not_sent);
        goto out;
    }
    if ((resp->status >= 200 && resp->status < 300) || (c->accept_416 && resp->status == 416))
        goto out;
    sy_http_response_header(resp, "x-amzn-ErrorType", errtype, sizeof(errtype));
    if (!sy_http_response_header(resp, "x-amzn-RequestId", reqid, sizeof(reqid)))
        sy_http_response_header(resp, "x-amz-request-id", reqid, sizeof(reqid));
    sy_aws_parse_error(resp->body, resp->body_len, errtype, code, sizeof(code), message,
                       sizeof(message));
    snprintf(aws->last_code, sizeof(aws->last_code), "%s", code);
    aws->last_status = resp->status;
    bool throttled = sy_aws_is_throttle(resp->status, code);
    if (throttled)
        st->throttles++;
    if (in_list(code, expired_codes) && !*refreshed) {
        /* Rejected before anything was done, so even non-idempotent calls may go again. */
        sy_awscred_provider_invalidate(aws->cred);
        *refreshed = true;
        *retry = true;
    } else if (c->flags & SY_AWS_NO_AMBIGUOUS_RETRY) {
        *retry = throttled; /* anything else may have been carried out */
    } else {
        *retry = sy_aws_is_retriable(resp->status, code);
    }
    rc = sy_err_set(err, SY_ERR_AWS, sy_aws_is_retriable(resp->status, code),
                    "HTTP %ld %s: %s%s%s%s", resp->status, code[0] ? code : "(no code)",
                    message[0] ? message : "(no message)", reqid[0] ? " (request id " : "", reqid,
                    reqid[0] ? ")" : "");
out:
    slist_wipe_free(headers);
    wipe_free(userpwd);
    sy_awscred_clear(&cred);
    return rc;
}

/* Performs c with retries (exponential backoff, full jitter, within aws.max.attempts and
 * aws.retry.budget.ms). On SY_OK resp holds a 2xx answer (or 416 when accepted). */
static sy_err_code_t perform(sy_aws_t *aws, const call_t *c, sy_http_response_t *resp,
                             sy_err_t *err)
{
    sy_aws_op_stats_t *st = stats_for(aws, c->svc->name, c->op);
    long long start = sy_time_mono_ms();
    char sigv4[160];
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", c->svc->global ? "us-east-1" : aws->region,
             c->svc->signing_name);
    sy_err_code_t rc;
    bool refreshed = false;
    aws->last_code[0] = '\0';
    aws->last_status = 0;
    st->calls++;
    for (int n = 1;; n++) {
        sy_err_t aerr = SY_ERR_INIT;
        bool retry;
        long long left = aws->budget_ms - (sy_time_mono_ms() - start);
        long timeout = left < aws->timeout_ms ? (long)(left > 1 ? left : 1) : aws->timeout_ms;
        if ((rc = attempt(aws, c, sigv4, timeout, &refreshed, st, resp, &retry, &aerr)) == SY_OK)
            break;
        long delay = sy_aws_backoff_ms(n, aws->base_ms, aws->cap_ms,
                                       rand_r(&aws->seed) / ((double)RAND_MAX + 1.0));
        if (retry && n < aws->max_attempts && sy_time_mono_ms() - start + delay < aws->budget_ms) {
            sy_warn(LOG, "%s %s: %s; retry %d/%d in %ld ms", c->svc->name, c->op, aerr.msg, n,
                    aws->max_attempts - 1, delay);
            st->retries++;
            sleep_ms(delay);
            continue;
        }
        /* Final: name the operation; a throttled or 5xx answer stays retriable for the caller. */
        sy_err_set(err, aerr.code, aerr.retriable, "%s %s: %s%s", c->svc->name, c->op, aerr.msg,
                   n > 1 ? " (gave up after retries)" : "");
        st->failures++;
        break;
    }
    st->total_ms += (unsigned long long)(sy_time_mono_ms() - start);
    sy_debug(LOG, "%s %s %s -> %ld in %lld ms", c->svc->name, c->op, c->method, resp->status,
             sy_time_mono_ms() - start);
    return rc;
}

static sy_err_code_t lookup_service(sy_aws_t *aws, const char *service, call_t *c, sy_err_t *err)
{
    for (size_t i = 0; i < N_SERVICES; i++) {
        if (!strcmp(services[i].name, service)) {
            c->svc = &services[i];
            c->svc_index = i;
            return SY_OK;
        }
    }
    return sy_err_set(err, SY_ERR_INVALID_ARG, false, "unknown AWS service \"%s\"", service);
}

/* Parses a JSON answer body; empty → {}. */
static sy_err_code_t parse_json_answer(const call_t *c, const sy_http_response_t *resp,
                                       json_t **response, sy_err_t *err)
{
    if (!response)
        return SY_OK;
    if (resp->body_len == 0) {
        *response = json_object();
    } else {
        json_error_t jerr;
        *response = json_loadb(resp->body, resp->body_len, 0, &jerr);
        if (!*response)
            return sy_err_set(err, SY_ERR_JSON, false, "%s %s: invalid JSON answer: %s",
                              c->svc->name, c->op, jerr.text);
    }
    return *response ? SY_OK : sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
}

sy_err_code_t sy_aws_json_call(sy_aws_t *aws, const char *service, const char *target,
                               const json_t *body, json_t **response, sy_err_t *err)
{
    return sy_aws_json_call_ex(aws, service, target, body, response, 0, err);
}

sy_err_code_t sy_aws_json_call_ex(sy_aws_t *aws, const char *service, const char *target,
                                  const json_t *body, json_t **response, unsigned flags,
                                  sy_err_t *err)
{
    call_t c = {.method = "POST", .max_body = JSON_MAX_BODY, .flags = flags};
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    char *payload = NULL, target_hdr[256], url[1100];
    sy_err_code_t rc;
    if (response)
        *response = NULL;
    if ((rc = lookup_service(aws, service, &c, err)) != SY_OK)
        goto out;
    const char *dot = strrchr(target, '.');
    c.op = dot ? dot + 1 : target;
    payload = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
    if (!payload) {
        rc = sy_err_set(err, SY_ERR_JSON, false, "%s %s: body does not serialise", service, c.op);
        goto out;
    }
    snprintf(target_hdr, sizeof(target_hdr), "X-Amz-Target: %s", target);
    snprintf(url, sizeof(url), "%s/", aws->endpoint[c.svc_index]);
    const char *headers[] = {target_hdr, "Content-Type: application/x-amz-json-1.1", NULL};
    c.url = url;
    c.headers = headers;
    c.body = payload;
    c.body_len = strlen(payload);
    if ((rc = perform(aws, &c, &resp, err)) != SY_OK)
        goto out;
    rc = parse_json_answer(&c, &resp, response, err);
out:
    free(payload);
    sy_http_response_clear(&resp);
    return rc;
}

sy_err_code_t sy_aws_rest_call(sy_aws_t *aws, const char *service, const char *op,
                               const char *method, const char *path, const json_t *body,
                               json_t **response, sy_err_t *err)
{
    call_t c = {.method = method, .op = op, .max_body = JSON_MAX_BODY};
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    char *payload = NULL, *query = NULL, *url = NULL;
    sy_err_code_t rc;
    if (response)
        *response = NULL;
    if ((rc = lookup_service(aws, service, &c, err)) != SY_OK)
        goto out;
    if (path[0] != '/') {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s %s: path must start with '/'", service,
                        op);
        goto out;
    }
    const char *q = strchr(path, '?');
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    if (q && !(query = sy_aws_canonical_query(q + 1))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    const char *base = aws->endpoint[c.svc_index];
    size_t ulen = strlen(base) + plen + (query ? strlen(query) : 0) + 2;
    if (!(url = malloc(ulen))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    snprintf(url, ulen, "%s%.*s%s%s", base, (int)plen, path, query && *query ? "?" : "",
             query ? query : "");
    bool bodyless = !strcmp(method, "GET") || !strcmp(method, "DELETE") || !strcmp(method, "HEAD");
    if (body || !bodyless) {
        payload = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
        if (!payload) {
            rc = sy_err_set(err, SY_ERR_JSON, false, "%s %s: body does not serialise", service, op);
            goto out;
        }
        c.body = payload;
        c.body_len = strlen(payload);
    }
    const char *headers[] = {"Content-Type: application/json", NULL};
    c.headers = payload ? headers : NULL;
    c.url = url;
    if ((rc = perform(aws, &c, &resp, err)) != SY_OK)
        goto out;
    rc = parse_json_answer(&c, &resp, response, err);
out:
    free(payload);
    free(query);
    free(url);
    sy_http_response_clear(&resp);
    return rc;
}

sy_err_code_t sy_aws_query_call(sy_aws_t *aws, const char *service, const char *action,
                                const char *params, char **xml, size_t *len, sy_err_t *err)
{
    call_t c = {.method = "POST", .op = action, .max_body = JSON_MAX_BODY};
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    char *payload = NULL, url[1100];
    sy_err_code_t rc;
    *xml = NULL;
    if ((rc = lookup_service(aws, service, &c, err)) != SY_OK)
        goto out;
    size_t n = strlen(action) + strlen(c.svc->api_version) + (params ? strlen(params) : 0) + 32;
    if (!(payload = malloc(n))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    snprintf(payload, n, "Action=%s&Version=%s%s%s", action, c.svc->api_version,
             params && *params ? "&" : "", params ? params : "");
    snprintf(url, sizeof(url), "%s/", aws->endpoint[c.svc_index]);
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
                             NULL};
    c.url = url;
    c.headers = headers;
    c.body = payload;
    c.body_len = strlen(payload);
    if ((rc = perform(aws, &c, &resp, err)) != SY_OK)
        goto out;
    *xml = resp.body;
    if (len)
        *len = resp.body_len;
    resp.body = NULL; /* now owned by the caller */
out:
    free(payload);
    sy_http_response_clear(&resp);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* S3                                                                                         */

static bool dns_bucket(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || b[0] == '-' || b[n - 1] == '-')
        return false;
    for (const char *p = b; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
            return false;
    return true;
}

/* "<base>/<bucket>" (path style) or "https://<bucket>.s3.<region>..." into a malloc'd string. */
static char *s3_bucket_url(const sy_aws_t *aws, size_t idx, const char *bucket)
{
    const char *base = aws->endpoint[idx];
    size_t n = strlen(base) + 3 * strlen(bucket) + 4;
    char *url = malloc(n);
    if (!url)
        return NULL;
    if (!aws->custom_endpoint[idx] && dns_bucket(bucket) && !strncmp(base, "https://", 8))
        snprintf(url, n, "https://%s.%s", bucket, base + 8);
    else {
        char *enc = sy_http_url_encode(bucket, false);
        if (!enc) {
            free(url);
            return NULL;
        }
        snprintf(url, n, "%s/%s", base, enc);
        free(enc);
    }
    return url;
}

sy_err_code_t sy_aws_s3_list(sy_aws_t *aws, const char *bucket, const char *prefix,
                             const char *token, int max_keys, sy_aws_s3_listing_t *out,
                             sy_err_t *err)
{
    call_t c = {.method = "GET", .op = "ListObjectsV2", .max_body = JSON_MAX_BODY};
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    char *burl = NULL, *url = NULL, *eprefix = NULL, *etoken = NULL, *query = NULL, *raw = NULL;
    sy_err_code_t rc;
    memset(out, 0, sizeof(*out));
    if ((rc = lookup_service(aws, "s3", &c, err)) != SY_OK)
        goto out;
    eprefix = sy_http_url_encode(prefix ? prefix : "", false);
    etoken = token ? sy_http_url_encode(token, false) : NULL;
    size_t n = (eprefix ? strlen(eprefix) : 0) + (etoken ? strlen(etoken) : 0) + 96;
    burl = s3_bucket_url(aws, c.svc_index, bucket);
    if (!eprefix || (token && !etoken) || !burl || !(raw = malloc(n))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    int k = snprintf(raw, n, "list-type=2&prefix=%s", eprefix);
    if (etoken)
        k += snprintf(raw + k, n - (size_t)k, "&continuation-token=%s", etoken);
    if (max_keys > 0)
        snprintf(raw + k, n - (size_t)k, "&max-keys=%d", max_keys);
    if (!(query = sy_aws_canonical_query(raw)) ||
        !(url = malloc(strlen(burl) + strlen(query) + 3))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    sprintf(url, "%s/?%s", burl, query);
    const char *headers[] = {"x-amz-content-sha256: " EMPTY_SHA256, NULL};
    c.url = url;
    c.headers = headers;
    if ((rc = perform(aws, &c, &resp, err)) != SY_OK)
        goto out;
    if ((rc = sy_aws_s3_parse_listing(resp.body, resp.body_len, out, err)) != SY_OK)
        sy_err_prefix(err, "s3://%s/%s", bucket, prefix ? prefix : "");
out:
    free(burl);
    free(url);
    free(eprefix);
    free(etoken);
    free(query);
    free(raw);
    sy_http_response_clear(&resp);
    return rc;
}

void sy_aws_s3_data_clear(sy_aws_s3_data_t *d)
{
    if (!d)
        return;
    free(d->data);
    d->data = NULL;
    d->len = 0;
    d->object_size = -1;
}

sy_err_code_t sy_aws_s3_get(sy_aws_t *aws, const char *bucket, const char *key, long long offset,
                            long long max_len, sy_aws_s3_data_t *out, sy_err_t *err)
{
    call_t c = {.method = "GET", .op = "GetObject", .accept_416 = true};
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    char *burl = NULL, *ekey = NULL, *url = NULL, range[80];
    sy_err_code_t rc;
    out->data = NULL;
    out->len = 0;
    out->object_size = -1;
    if ((rc = lookup_service(aws, "s3", &c, err)) != SY_OK)
        goto out;
    if (offset < 0) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "s3 GetObject: negative offset");
        goto out;
    }
    burl = s3_bucket_url(aws, c.svc_index, bucket);
    ekey = sy_http_url_encode(key, true);
    if (!burl || !ekey || !(url = malloc(strlen(burl) + strlen(ekey) + 2))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    sprintf(url, "%s/%s", burl, ekey);
    if (max_len > 0)
        snprintf(range, sizeof(range), "Range: bytes=%lld-%lld", offset, offset + max_len - 1);
    else
        snprintf(range, sizeof(range), "Range: bytes=%lld-", offset);
    const char *headers[] = {"x-amz-content-sha256: " EMPTY_SHA256,
                             offset > 0 || max_len > 0 ? range : NULL, NULL};
    c.url = url;
    c.headers = headers;
    c.max_body =
        max_len > 0 && (unsigned long long)max_len < S3_MAX_BODY ? (size_t)max_len : S3_MAX_BODY;
    if ((rc = perform(aws, &c, &resp, err)) != SY_OK)
        goto out;
    char cr[128];
    bool has_range = sy_http_response_header(&resp, "Content-Range", cr, sizeof(cr));
    const char *slash = has_range ? strrchr(cr, '/') : NULL;
    if (slash && slash[1] != '*')
        out->object_size = strtoll(slash + 1, NULL, 10);
    if (resp.status == 416) {
        /* Nothing at or past offset (yet). S3 names the size in the body too. */
        if (out->object_size < 0) {
            char *size = sy_aws_xml_text(resp.body, resp.body + resp.body_len, "ActualObjectSize");
            if (size)
                out->object_size = strtoll(size, NULL, 10);
            free(size);
        }
        out->data = calloc(1, 1);
        if (!out->data)
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    if (resp.status == 200 && out->object_size < 0)
        out->object_size = (long long)resp.body_len;
    out->data = resp.body;
    out->len = resp.body_len;
    resp.body = NULL; /* now owned by out */
out:
    free(burl);
    free(ekey);
    free(url);
    sy_http_response_clear(&resp);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* CloudWatch Logs                                                                            */

sy_err_code_t sy_aws_logs_get_events(sy_aws_t *aws, const char *group, const char *stream,
                                     const char *token, int limit, json_t **events,
                                     char **next_token, sy_err_t *err)
{
    json_t *body = json_object(), *resp = NULL;
    sy_err_code_t rc;
    *events = NULL;
    *next_token = NULL;
    if (!body)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    json_object_set_new(body, "logGroupName", json_string(group));
    json_object_set_new(body, "logStreamName", json_string(stream));
    json_object_set_new(body, "startFromHead", json_true());
    if (token)
        json_object_set_new(body, "nextToken", json_string(token));
    if (limit > 0)
        json_object_set_new(body, "limit", json_integer(limit));
    if ((rc = sy_aws_json_call(aws, "logs", "Logs_20140328.GetLogEvents", body, &resp, err)) !=
        SY_OK)
        goto out;
    json_t *ev = json_object_get(resp, "events"); /* borrowed */
    const char *next = json_string_value(json_object_get(resp, "nextForwardToken"));
    if (!json_is_array(ev)) {
        rc = sy_err_set(err, SY_ERR_AWS, false, "logs GetLogEvents: answer without events");
        goto out;
    }
    if (next && !(*next_token = strdup(next))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    *events = json_incref(ev);
out:
    json_decref(body);
    json_decref(resp);
    return rc;
}

sy_err_code_t sy_aws_logs_describe_streams(sy_aws_t *aws, const char *group, const char *prefix,
                                           const char *token, int limit, json_t **streams,
                                           char **next_token, sy_err_t *err)
{
    json_t *body = json_object(), *resp = NULL;
    sy_err_code_t rc;
    *streams = NULL;
    *next_token = NULL;
    if (!body)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    json_object_set_new(body, "logGroupName", json_string(group));
    if (prefix && *prefix)
        json_object_set_new(body, "logStreamNamePrefix", json_string(prefix));
    if (token)
        json_object_set_new(body, "nextToken", json_string(token));
    if (limit > 0)
        json_object_set_new(body, "limit", json_integer(limit > 50 ? 50 : limit));
    if ((rc = sy_aws_json_call(aws, "logs", "Logs_20140328.DescribeLogStreams", body, &resp,
                               err)) != SY_OK)
        goto out;
    json_t *st = json_object_get(resp, "logStreams"); /* borrowed */
    const char *next = json_string_value(json_object_get(resp, "nextToken"));
    if (!st)
        st = json_array(); /* an empty answer may leave the list out */
    else
        json_incref(st);
    if (!json_is_array(st)) {
        json_decref(st);
        rc = sy_err_set(err, SY_ERR_AWS, false,
                        "logs DescribeLogStreams: logStreams is not an array");
        goto out;
    }
    if (next && *next && !(*next_token = strdup(next))) {
        json_decref(st);
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    *streams = st;
out:
    json_decref(body);
    json_decref(resp);
    return rc;
}
