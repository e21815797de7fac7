/* sy_aws: the AWS client — SigV4-signed calls over libcurl (JSON 1.1, REST-JSON, S3 REST-XML),
 * endpoint resolution from the standard variables, retries with backoff and full jitter on
 * throttling and transient failures, per-operation counters; plus the pure parsers it relies on
 * (AWS error bodies, S3 listings, a small XML reader), exposed for tests. */
#ifndef SY_AWS_H
#define SY_AWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sy_config.h"
#include "sy_err.h"

/* A client: one reusable curl handle (so connections are reused), the region, the credential
 * provider chain (sy_awscred), the retry settings and the counters.
 *
 * NOT thread-safe: use one sy_aws_t per thread (each worker thread makes its own). Nothing
 * in it is shared with other handles, so separate handles need no locking.
 *
 * Settings (sy_config keys): aws.region, aws.max.attempts, aws.timeout.ms,
 * aws.connect.timeout.ms, aws.retry.base.ms, aws.retry.max.backoff.ms, aws.retry.budget.ms,
 * aws.credentials.refresh.ms. Region: aws.region, else AWS_REGION, else AWS_DEFAULT_REGION,
 * else the profile's `region` in the shared config file; none is an error.
 * Endpoints: see sy_aws_endpoint. Credentials: see sy_awscred.h (resolved lazily, on the first
 * call, so making a client does no network I/O). */
typedef struct sy_aws sy_aws_t;

/* A client configured from conf and the process environment. Returns NULL and fills err
 * (SY_ERR_CONFIG: no region, an explicit AWS_PROFILE that no file defines, a malformed
 * endpoint variable). conf is read during the call only. Free with sy_aws_destroy. */
sy_aws_t *sy_aws_new(const sy_config_t *conf, sy_err_t *err);

/* The same with an explicit environment (NULL-terminated "NAME=value" strings, copied; NULL
 * means the process environment): lets tests and embedders control every AWS_* variable. */
sy_aws_t *sy_aws_new_env(const sy_config_t *conf, char **envp, sy_err_t *err);

/* A client for another region than the configured one (a cluster's own region): region
 * replaces aws.region / AWS_REGION; NULL or "" means the usual resolution. */
sy_aws_t *sy_aws_new_region(const sy_config_t *conf, const char *region, sy_err_t *err);

/* NULL-safe; safe on a half-built client. */
void sy_aws_destroy(sy_aws_t *aws);

/* The region in use; owned by aws. */
const char *sy_aws_region(const sy_aws_t *aws);

/* Which provider supplies the credentials ("env", "web-identity", "profile", "container",
 * "imds", or "none"); a static string, safe to log. */
const char *sy_aws_credentials_source(const sy_aws_t *aws);

/* Flags for the _ex calls. */
enum {
    /* For calls that are not idempotent (EMR AddJobFlowSteps has no client token): retry only
     * failures that prove the request had no effect — throttling answers, and connections that
     * never carried the request. A timeout or a 5xx after sending is returned (retriable) so the
     * caller reconciles (e.g. ListSteps by name) before trying again. */
    SY_AWS_NO_AMBIGUOUS_RETRY = 1 << 0,
};

/* A JSON 1.1 call (EMR, CloudWatch Logs): POST / with X-Amz-Target: <target> and
 * Content-Type application/x-amz-json-1.1, signed for the service's signing name.
 * service: "emr" or "logs" (see sy_aws_endpoint for the list). target: "<prefix>.<Operation>"
 * ("ElasticMapReduce.AddJobFlowSteps", "Logs_20140328.GetLogEvents").
 * body: borrowed (not stolen), NULL sends {}. On success *response (when response is not NULL)
 * receives a new reference the caller must json_decref ({} for an empty answer).
 * Errors: SY_ERR_AWS for an error answer, with a message "<service> <Operation>: HTTP <status>
 * <AwsErrorCode>: <message>" and retriable set for throttling and 5xx; SY_ERR_TIMEOUT or
 * SY_ERR_HTTP (retriable) when no answer arrived; SY_ERR_JSON for an unparsable answer;
 * SY_ERR_CONFIG (not retriable) when no credentials can be found. Retriable failures have
 * already been retried (aws.max.attempts, aws.retry.budget.ms) before they are returned. */
sy_err_code_t sy_aws_json_call(sy_aws_t *aws, const char *service, const char *target,
                               const json_t *body, json_t **response, sy_err_t *err);
sy_err_code_t sy_aws_json_call_ex(sy_aws_t *aws, const char *service, const char *target,
                                  const json_t *body, json_t **response, unsigned flags,
                                  sy_err_t *err);

/* A REST-JSON call (EMR on EKS, "emr-containers"): method ("GET", "POST", "DELETE", ...) on
 * path, which may carry a query string whose keys and values the caller percent-encoded
 * (sy_http_url_encode); the client puts it in canonical (sorted) order before signing.
 * op names the operation for errors and counters ("StartJobRun"). body as in
 * sy_aws_json_call (NULL: no body for GET/DELETE, {} otherwise); response likewise. */
sy_err_code_t sy_aws_rest_call(sy_aws_t *aws, const char *service, const char *op,
                               const char *method, const char *path, const json_t *body,
                               json_t **response, sy_err_t *err);

/* A query-protocol call (STS, IAM): POST / with the form body "Action=<action>&Version=<the
 * service's API version>[&<params>]" (params percent-encoded by the caller, may be NULL),
 * signed. On success *xml receives the raw XML answer (malloc'd, NUL-terminated, caller frees)
 * and *len its length (len may be NULL). Errors as in sy_aws_json_call. */
sy_err_code_t sy_aws_query_call(sy_aws_t *aws, const char *service, const char *action,
                                const char *params, char **xml, size_t *len, sy_err_t *err);

/* ---- S3 ---- */

typedef struct sy_aws_s3_object {
    char *key;
    long long size;
    char *last_modified; /* as S3 sent it (ISO-8601) */
} sy_aws_s3_object_t;

/* One page of ListObjectsV2. Owned by the caller: sy_aws_s3_listing_clear. */
typedef struct sy_aws_s3_listing {
    sy_aws_s3_object_t *objects;
    size_t n;
    bool truncated;
    char *next_token; /* NextContinuationToken; NULL on the last page */
} sy_aws_s3_listing_t;

/* ListObjectsV2 of bucket under prefix (NULL or "" = all), at most max_keys (<= 0: S3's
 * default, 1000) keys, continuing after token (NULL for the first page). Path-style requests
 * when an endpoint is configured, virtual-hosted on AWS for DNS-compatible bucket names. */
sy_err_code_t sy_aws_s3_list(sy_aws_t *aws, const char *bucket, const char *prefix,
                             const char *token, int max_keys, sy_aws_s3_listing_t *out,
                             sy_err_t *err);
void sy_aws_s3_listing_clear(sy_aws_s3_listing_t *l);

/* Bytes of an object, for incremental reads. Owned by the caller: sy_aws_s3_data_clear. */
typedef struct sy_aws_s3_data {
    char *data; /* NUL-terminated for convenience; len excludes the NUL */
    size_t len;
    long long object_size; /* the whole object's size, -1 when S3 did not say */
} sy_aws_s3_data_t;

/* GetObject with "Range: bytes=<offset>-[<offset+max_len-1>]" (max_len <= 0: to the end;
 * offset 0 and max_len <= 0: no Range header). At most 64 MiB come back in one call (more fails
 * with SY_ERR_TOO_LARGE: read big objects in ranges). An offset at or past the end of the object is
 * not an error: out->len is 0 and out->object_size the current size, so a reader can poll a
 * growing object. A missing key fails with SY_ERR_AWS "NoSuchKey" (see
 * sy_aws_last_error_code). */
sy_err_code_t sy_aws_s3_get(sy_aws_t *aws, const char *bucket, const char *key, long long offset,
                            long long max_len, sy_aws_s3_data_t *out, sy_err_t *err);
void sy_aws_s3_data_clear(sy_aws_s3_data_t *d);

/* ---- CloudWatch Logs ---- */

/* GetLogEvents of one stream, oldest first when token is NULL, else from token (a
 * nextForwardToken from an earlier call). limit <= 0: the service default.
 * *events receives a new reference to the events array ([{timestamp, message, ...}]), and
 * *next_token a malloc'd nextForwardToken (caller frees). When nothing new has arrived the
 * service hands back the same token and an empty array. */
sy_err_code_t sy_aws_logs_get_events(sy_aws_t *aws, const char *group, const char *stream,
                                     const char *token, int limit, json_t **events,
                                     char **next_token, sy_err_t *err);

/* DescribeLogStreams of group: streams whose name starts with prefix (NULL or "" = all), in name
 * order, at most limit (1-50; <= 0: the service default, 50) per page, continuing after token
 * (a nextToken from an earlier call; NULL for the first page). *streams receives a new
 * reference to the logStreams array ([{logStreamName, creationTime, ...}]), *next_token a
 * malloc'd nextToken (caller frees), NULL on the last page. A missing group fails with SY_ERR_AWS
 * "ResourceNotFoundException" (see sy_aws_last_error_code). */
sy_err_code_t sy_aws_logs_describe_streams(sy_aws_t *aws, const char *group, const char *prefix,
                                           const char *token, int limit, json_t **streams,
                                           char **next_token, sy_err_t *err);

/* ---- Errors and counters ---- */

/* AWS error code ("ThrottlingException", "NoSuchKey", ...) and HTTP status of the last call on
 * aws that received an error answer from the service; "" and 0 after a successful call or a
 * transport failure. Owned by aws, valid until the next call. */
const char *sy_aws_last_error_code(const sy_aws_t *aws);
long sy_aws_last_status(const sy_aws_t *aws);

/* Counters of one operation ("emr:AddJobFlowSteps", "s3:GetObject", ...). */
typedef struct sy_aws_op_stats {
    char op[64];
    unsigned long calls;         /* API calls made (each may take several attempts) */
    unsigned long attempts;      /* HTTP requests sent, retries included */
    unsigned long retries;       /* attempts beyond the first */
    unsigned long throttles;     /* answers classified as throttling */
    unsigned long failures;      /* calls that returned an error */
    unsigned long long total_ms; /* wall time spent in calls, backoff included */
} sy_aws_op_stats_t;

/* Copies up to max entries (in first-use order) into out; returns how many exist. */
size_t sy_aws_stats(const sy_aws_t *aws, sy_aws_op_stats_t *out, size_t max);
/* New TCP/TLS connections opened by the client (low when connections are reused). */
unsigned long sy_aws_connections(const sy_aws_t *aws);
void sy_aws_stats_reset(sy_aws_t *aws);

/* ---- Pure helpers (no I/O), exposed for tests and for sy_awscred ---- */

/* The value of name in envp ("NAME=value" strings), or NULL; an empty value counts as unset. */
const char *sy_aws_getenv(char *const *envp, const char *name);

/* The endpoint URL (scheme://host[:port][/path], no trailing '/') for service in region, into
 * url: AWS_ENDPOINT_URL_<SERVICE_ID> (the botocore model's serviceId upper-cased, spaces as
 * '_': AWS_ENDPOINT_URL_EMR, AWS_ENDPOINT_URL_EMR_CONTAINERS, AWS_ENDPOINT_URL_CLOUDWATCH_LOGS,
 * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_STS), else AWS_ENDPOINT_URL, else
 * https://<endpointPrefix>.<region>.amazonaws.com (.amazonaws.com.cn in cn-* regions); both
 * variables are ignored when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true. *custom (may be NULL) is
 * set when a variable supplied the URL. Services: "emr" (signing name elasticmapreduce),
 * "emr-containers", "logs", "s3", "sts", "iam". Fails with SY_ERR_INVALID_ARG for an unknown
 * service, SY_ERR_CONFIG for a variable that is not an http(s) URL. */
sy_err_code_t sy_aws_endpoint(char *const *envp, const char *service, const char *region, char *url,
                              size_t size, bool *custom, sy_err_t *err);

/* "AWS_ENDPOINT_URL_<SERVICE_ID>" for service into buf; NULL for an unknown service. */
const char *sy_aws_endpoint_env_name(const char *service, char *buf, size_t size);

/* Throttling: HTTP 429, or a code botocore's standard retry mode treats as throttling
 * (Throttling, ThrottlingException, TooManyRequestsException, RequestLimitExceeded, SlowDown,
 * ...). Retriable: throttling, any 5xx, and transient codes (RequestTimeout, InternalError,
 * ServiceUnavailable, ...). code may be NULL or "". */
bool sy_aws_is_throttle(long status, const char *code);
bool sy_aws_is_retriable(long status, const char *code);

/* Delay before retry number `retry` (1 for the first retry): full jitter,
 * r * min(cap_ms, base_ms * 2^(retry-1)) with r in [0, 1). */
long sy_aws_backoff_ms(int retry, long base_ms, long cap_ms, double r);

/* Parses an error answer — JSON {"__type"|"code"|"Code", "message"|"Message"}, the
 * x-amzn-ErrorType header (error_type_header, may be NULL), S3's <Error><Code>, or the query
 * protocol's <ErrorResponse><Error><Code> — into code ("Namespace#" prefixes and ":..."
 * suffixes removed) and message (both always NUL-terminated, truncated to size; "" when
 * absent). */
void sy_aws_parse_error(const char *body, size_t len, const char *error_type_header, char *code,
                        size_t code_size, char *message, size_t message_size);

/* Parses a ListObjectsV2 answer into out (cleared first). SY_ERR_AWS on a body that is not a
 * ListBucketResult. */
sy_err_code_t sy_aws_s3_parse_listing(const char *xml, size_t len, sy_aws_s3_listing_t *out,
                                      sy_err_t *err);

/* Puts a query string ("b=2&a=1&a=0", percent-encoded) into SigV4 canonical form: each key and
 * value decoded and re-encoded (RFC 3986), pairs sorted by key then value, "k" → "k=".
 * Returns a malloc'd string (caller frees), NULL on allocation failure. */
char *sy_aws_canonical_query(const char *query);

/* A minimal XML reader for AWS answers: finds the first element named tag (no namespace
 * prefix; attributes allowed) within [xml, end) and returns a pointer to its content, with
 * *content_end set to the start of its closing tag; NULL when absent. A self-closing element
 * has empty content. */
const char *sy_aws_xml_find(const char *xml, const char *end, const char *tag,
                            const char **content_end);
/* The text of the first element named tag within [xml, end), entities decoded (&amp; &lt;
 * &gt; &quot; &apos; &#N; &#xN;), as a malloc'd string (caller frees); NULL when absent. */
char *sy_aws_xml_text(const char *xml, const char *end, const char *tag);

#endif
