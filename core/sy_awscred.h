/* sy_awscred: AWS credentials from the standard provider chain — environment, web identity
 * (STS AssumeRoleWithWebIdentity: EKS IRSA), shared credentials/config files with profiles,
 * container endpoint (ECS, EKS Pod Identity), EC2 instance metadata (IMDSv2) — cached and
 * refreshed before they expire; plus the pure parsers the providers use, exposed for tests. */
#ifndef SY_AWSCRED_H
#define SY_AWSCRED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "sy_err.h"

/* One set of credentials. The strings are owned by the struct: release them with
 * sy_awscred_clear, which also overwrites them. Never pass any of them to the logger. */
typedef struct sy_awscred {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL for long-term keys; sent as X-Amz-Security-Token */
    time_t expiration;   /* 0: does not expire */
    const char *source;  /* static provider name ("env", ...), safe to log; may be NULL */
} sy_awscred_t;

#define SY_AWSCRED_INIT                                                                            \
    {                                                                                              \
        NULL, NULL, NULL, 0, NULL                                                                  \
    }

/* Wipes and frees the strings; NULL-safe; leaves *c as SY_AWSCRED_INIT. */
void sy_awscred_clear(sy_awscred_t *c);
/* Deep copy into dst (cleared first). SY_ERR_NOMEM on failure. */
sy_err_code_t sy_awscred_copy(sy_awscred_t *dst, const sy_awscred_t *src, sy_err_t *err);

/* True when c should be refreshed at time now: it expires and fewer than before_s seconds
 * remain. */
bool sy_awscred_needs_refresh(const sy_awscred_t *c, time_t now, long before_s);

/* The provider chain. Which provider is used is decided once, in _new, from the environment
 * and the shared files alone (no network), in this order — the first that is configured wins,
 * and a configured provider that then fails reports its error rather than falling through:
 *   "env"          AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]
 *   "web-identity" AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN [+ AWS_ROLE_SESSION_NAME]:
 *                  STS AssumeRoleWithWebIdentity (unsigned; endpoint per sy_aws_endpoint
 *                  "sts"); the token file is re-read on every refresh (it is rotated)
 *   "profile"      profile AWS_PROFILE (else "default") with aws_access_key_id in
 *                  AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials, "[name]") or else in
 *                  AWS_CONFIG_FILE (~/.aws/config, "[profile name]" / "[default]")
 *   "container"    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2<uri>) or
 *                  AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback address,
 *                  169.254.170.2 or the EKS Pod Identity agent 169.254.170.23 / fd00:ec2::23),
 *                  with Authorization from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read each
 *                  time) or AWS_CONTAINER_AUTHORIZATION_TOKEN
 *   "imds"         EC2 instance metadata, IMDSv2 only (token PUT, then the role's credentials);
 *                  AWS_EC2_METADATA_SERVICE_ENDPOINT overrides http://169.254.169.254
 *                  (AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6: http://[fd00:ec2::254]);
 *                  AWS_METADATA_SERVICE_TIMEOUT (s, default 1) and
 *                  AWS_METADATA_SERVICE_NUM_ATTEMPTS (default 1) keep it from stalling off EC2
 *   "none"         AWS_EC2_METADATA_DISABLED=true and nothing else configured: every get fails
 * Temporary credentials are refreshed when less than refresh_before_ms remains; when a refresh
 * fails while the cached credentials are still valid they keep being used (with a warning) and
 * the refresh is retried at most every 10 s.
 *
 * Thread-safe: get and invalidate may be called from several threads (a mutex guards the cache
 * and the provider's own curl handle). */
typedef struct sy_awscred_provider sy_awscred_provider_t;

typedef struct sy_awscred_opts {
    const char *region;     /* for the STS endpoint; NULL = from the environment / profile */
    long timeout_ms;        /* STS and container requests; <= 0 = 5000 */
    long refresh_before_ms; /* <= 0 = 300000 (5 minutes) */
} sy_awscred_opts_t;

/* envp: NULL-terminated "NAME=value" strings, copied (NULL = the process environment).
 * opts may be NULL. Fails (NULL, err filled, SY_ERR_CONFIG) when AWS_PROFILE names a profile
 * that no file defines, when only one of AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY is set, or
 * when a container URI is not allowed. Free with sy_awscred_provider_destroy. */
sy_awscred_provider_t *sy_awscred_provider_new(char *const *envp, const sy_awscred_opts_t *opts,
                                               sy_err_t *err);
void sy_awscred_provider_destroy(sy_awscred_provider_t *p);

/* The chosen provider's name (see above); static, safe to log. */
const char *sy_awscred_provider_source(const sy_awscred_provider_t *p);

/* The region from the environment or the profile (AWS_REGION, AWS_DEFAULT_REGION, the
 * profile's `region` in the config file); NULL when none. Owned by p. */
const char *sy_awscred_provider_region(const sy_awscred_provider_t *p);

/* Fills *out with a copy of valid credentials (fetching or refreshing them when needed); the
 * caller releases it with sy_awscred_clear. Errors: SY_ERR_CONFIG when no provider is
 * configured; a provider's failure otherwise (retriable when the endpoint was unreachable,
 * timed out, answered 5xx or throttled). */
sy_err_code_t sy_awscred_provider_get(sy_awscred_provider_t *p, sy_awscred_t *out, sy_err_t *err);

/* Forgets cached temporary credentials so that the next get fetches fresh ones (after a
 * service answered ExpiredToken). No effect on static credentials. */
void sy_awscred_provider_invalidate(sy_awscred_provider_t *p);

/* ---- Pure parsers (no I/O), exposed for tests ---- */

/* ISO-8601 UTC time: "2024-05-01T12:34:56Z", with optional fractional seconds and either 'Z'
 * or a "+hh:mm" / "-hh:mm" offset. SY_ERR_INVALID_ARG when it does not parse. */
sy_err_code_t sy_awscred_parse_time(const char *s, time_t *out, sy_err_t *err);

/* The <Credentials> of an STS AssumeRole* answer (XML) into out (cleared first).
 * An <ErrorResponse> yields SY_ERR_AWS naming its code. */
sy_err_code_t sy_awscred_parse_sts(const char *xml, size_t len, sy_awscred_t *out, sy_err_t *err);

/* A container-endpoint or IMDS answer {"AccessKeyId", "SecretAccessKey", "Token",
 * "Expiration", ["Code": "Success"]} into out (cleared first). A "Code" other than "Success"
 * is an error (SY_ERR_AWS, retriable: IMDS says so while it rotates credentials). */
sy_err_code_t sy_awscred_parse_json(const char *json, size_t len, sy_awscred_t *out, sy_err_t *err);

/* The answer of IMDSv2's PUT /latest/api/token: the token, trailing whitespace removed, into
 * *token (malloc'd; the caller wipes and frees it). It is sent back as a header value, so an
 * empty token, one over 4096 bytes, or one holding any byte outside printable ASCII (a CR or LF
 * would inject a header) fails with SY_ERR_AWS and *token NULL. */
sy_err_code_t sy_awscred_parse_imds_token(const char *body, size_t len, char **token,
                                          sy_err_t *err);

/* The answer of IMDS GET /latest/meta-data/iam/security-credentials/: the role name on its
 * first line (trailing whitespace removed) into role (size bytes, NUL-terminated). No line, an
 * empty one, or one that does not fit fails with SY_ERR_AWS (role ""). */
sy_err_code_t sy_awscred_parse_imds_role(const char *body, size_t len, char *role, size_t size,
                                         sy_err_t *err);

/* The value of key (case-insensitive) in section [section] of an ini text as the AWS shared
 * files use it: lines ending in "\n", "\r\n" or a lone "\r", '#' and ';' comment lines,
 * "key = value", indented continuation lines (nested settings) ignored, a later duplicate
 * overriding an earlier one. config_file selects the
 * section naming of ~/.aws/config ("[profile name]", and "[default]" for default) instead of
 * ~/.aws/credentials ("[name]"). Returns a malloc'd string (caller frees) or NULL. */
char *sy_awscred_ini_get(const char *text, const char *profile, bool config_file, const char *key);
/* True when the text has a section for profile (same naming rules). */
bool sy_awscred_ini_has_profile(const char *text, const char *profile, bool config_file);

/* The URL of the container provider from envp, validated as described above, into url.
 * Returns SY_ERR_NOT_FOUND when neither container variable is set, SY_ERR_CONFIG when the URI
 * is not allowed. (The authorization token is read at each fetch; one containing CR or LF is
 * refused then.) */
sy_err_code_t sy_awscred_container_url(char *const *envp, char *url, size_t url_size,
                                       sy_err_t *err);

#endif
