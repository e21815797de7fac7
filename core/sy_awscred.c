/* sy_awscred: AWS credentials from the standard provider chain, cached and refreshed. */
#include "sy_awscred.h"
#include "sy_aws.h"
#include "sy_http.h"
#include "sy_log.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

extern char **environ;

#define LOG                          "awscred"
#define MAX_FILE_BYTES               (1024 * 1024)
#define RETRY_AFTER_FAILED_REFRESH_S 10
#define FETCH_ATTEMPTS               3 /* STS and container endpoint */
#define MAX_IMDS_TOKEN               4096

typedef enum kind { K_NONE, K_ENV, K_WEB_IDENTITY, K_PROFILE, K_CONTAINER, K_IMDS } kind_t;
static const char *const kind_names[] = {"none",    "env",       "web-identity",
                                         "profile", "container", "imds"};

struct sy_awscred_provider {
    pthread_mutex_t lock;
    bool lock_ready;
    kind_t kind;
    char **env; /* AWS_* and HOME, copied */
    char *region;
    long timeout_ms;
    long refresh_before_s;
    sy_awscred_t cached; /* valid when access_key_id is set */
    time_t next_try;     /* after a failed refresh, no new attempt before this */
    CURL *curl;          /* created on first use; guarded by lock */
    char url[2048];      /* STS endpoint, container URL or IMDS base */
    long imds_timeout_ms;
    int imds_attempts;
};

/* ------------------------------------------------------------------------------------------ */
/* Credentials values                                                                         */

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void sy_awscred_clear(sy_awscred_t *c)
{
    if (!c)
        return;
    wipe_free(c->access_key_id);
    wipe_free(c->secret_access_key);
    wipe_free(c->session_token);
    *c = (sy_awscred_t)SY_AWSCRED_INIT;
}

sy_err_code_t sy_awscred_copy(sy_awscred_t *dst, const sy_awscred_t *src, sy_err_t *err)
{
    sy_awscred_clear(dst);
    dst->access_key_id = src->access_key_id ? strdup(src->access_key_id) : NULL;
    dst->secret_access_key = src->secret_access_key ? strdup(src->secret_access_key) : NULL;
    dst->session_token = src->session_token ? strdup(src->session_token) : NULL;
    dst->expiration = src->expiration;
    dst->source = src->source;
    if ((src->access_key_id && !dst->access_key_id) ||
        (src->secret_access_key && !dst->secret_access_key) ||
        (src->session_token && !dst->session_token)) {
        sy_awscred_clear(dst);
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    }
    return SY_OK;
}

bool sy_awscred_needs_refresh(const sy_awscred_t *c, time_t now, long before_s)
{
    return c->expiration != 0 && now + before_s >= c->expiration;
}

/* ------------------------------------------------------------------------------------------ */
/* Parsers                                                                                    */

sy_err_code_t sy_awscred_parse_time(const char *s, time_t *out, sy_err_t *err)
{
    struct tm tm = {0};
    int n = 0;
    /* digits where the format has them: sscanf's %2d alone would take "-1" for an hour */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; s && i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            goto bad;
    if (!s ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n != 19)
        goto bad;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        goto bad;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p))
            p++;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm, k = 0;
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
            !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]) ||
            sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &k) != 2 || k != 5 || hh > 23 || mm > 59)
            goto bad;
        offset = (*p == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
        p += 6;
    } else {
        goto bad;
    }
    if (*p)
        goto bad;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm) - offset;
    return SY_OK;
bad:
    return sy_err_set(err, SY_ERR_INVALID_ARG, false, "not an ISO-8601 UTC time: \"%.40s\"",
                      s ? s : "(null)");
}

sy_err_code_t sy_awscred_parse_sts(const char *xml, size_t len, sy_awscred_t *out, sy_err_t *err)
{
    const char *end = xml + len, *cend;
    char *expiration = NULL;
    sy_err_code_t rc = SY_OK;
    sy_awscred_clear(out);
    const char *c = sy_aws_xml_find(xml, end, "Credentials", &cend);
    if (!c) {
        char code[128], msg[256];
        sy_aws_parse_error(xml, len, NULL, code, sizeof(code), msg, sizeof(msg));
        if (code[0])
            return sy_err_set(err, SY_ERR_AWS, sy_aws_is_retriable(0, code), "STS %s: %s", code,
                              msg);
        return sy_err_set(err, SY_ERR_AWS, false, "STS answer without <Credentials>");
    }
    out->access_key_id = sy_aws_xml_text(c, cend, "AccessKeyId");
    out->secret_access_key = sy_aws_xml_text(c, cend, "SecretAccessKey");
    out->session_token = sy_aws_xml_text(c, cend, "SessionToken");
    expiration = sy_aws_xml_text(c, cend, "Expiration");
    if (!out->access_key_id || !out->secret_access_key || !out->session_token || !expiration) {
        rc = sy_err_set(err, SY_ERR_AWS, false,
                        "STS <Credentials> lacks AccessKeyId, SecretAccessKey, SessionToken or "
                        "Expiration");
        goto out;
    }
    if ((rc = sy_awscred_parse_time(expiration, &out->expiration, err)) != SY_OK)
        sy_err_prefix(err, "STS Expiration");
out:
    free(expiration);
    if (rc != SY_OK)
        sy_awscred_clear(out);
    return rc;
}

sy_err_code_t sy_awscred_parse_json(const char *json, size_t len, sy_awscred_t *out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    json_t *j = json_loadb(json, len, 0, NULL);
    sy_awscred_clear(out);
    if (!json_is_object(j)) {
        rc = sy_err_set(err, SY_ERR_JSON, false, "credentials answer is not a JSON object");
        goto out;
    }
    const char *code = json_string_value(json_object_get(j, "Code"));
    if (code && strcmp(code, "Success") != 0) {
        const char *msg = json_string_value(json_object_get(j, "Message"));
        rc = sy_err_set(err, SY_ERR_AWS, true, "credentials endpoint says %.64s: %.200s", code,
                        msg ? msg : "");
        goto out;
    }
    const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
    const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
    const char *token = json_string_value(json_object_get(j, "Token"));
    const char *expiration = json_string_value(json_object_get(j, "Expiration"));
    if (!id || !secret || !*id || !*secret) {
        rc = sy_err_set(err, SY_ERR_JSON, false,
                        "credentials answer lacks AccessKeyId or SecretAccessKey");
        goto out;
    }
    if (expiration && (rc = sy_awscred_parse_time(expiration, &out->expiration, err)) != SY_OK) {
        sy_err_prefix(err, "credentials Expiration");
        goto out;
    }
    out->access_key_id = strdup(id);
    out->secret_access_key = strdup(secret);
    out->session_token = token && *token ? strdup(token) : NULL;
    if (!out->access_key_id || !out->secret_access_key || (token && *token && !out->session_token))
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
out:
    json_decref(j);
    if (rc != SY_OK)
        sy_awscred_clear(out);
    return rc;
}

sy_err_code_t sy_awscred_parse_imds_token(const char *body, size_t len, char **token, sy_err_t *err)
{
    *token = NULL;
    while (len && isspace((unsigned char)body[len - 1]))
        len--;
    if (!len)
        return sy_err_set(err, SY_ERR_AWS, false, "instance metadata: empty IMDSv2 token");
    /* It goes into a request header: a byte outside printable ASCII could end the header and
     * inject another one. Real tokens are base64. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)body[i] <= ' ' || (unsigned char)body[i] >= 0x7f)
            return sy_err_set(err, SY_ERR_AWS, false,
                              "instance metadata: IMDSv2 token holds byte 0x%02x",
                              (unsigned char)body[i]);
    if (len > MAX_IMDS_TOKEN)
        return sy_err_set(err, SY_ERR_AWS, false,
                          "instance metadata: IMDSv2 token of %zu bytes (at most %d expected)", len,
                          MAX_IMDS_TOKEN);
    if (!(*token = strndup(body, len)))
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    return SY_OK;
}

sy_err_code_t sy_awscred_parse_imds_role(const char *body, size_t len, char *role, size_t size,
                                         sy_err_t *err)
{
    size_t n = 0;
    if (size)
        role[0] = '\0';
    while (n < len && body[n] != '\n' && body[n] != '\r' && body[n] != '\0')
        n++;
    while (n && isspace((unsigned char)body[n - 1]))
        n--;
    if (!n)
        return sy_err_set(err, SY_ERR_AWS, false, "instance metadata: no role name");
    if (n >= size)
        return sy_err_set(err, SY_ERR_AWS, false,
                          "instance metadata: role name of %zu bytes is too long", n);
    memcpy(role, body, n);
    role[n] = '\0';
    return SY_OK;
}

/* [name] in the credentials file; [profile name] (and [default]) in the config file. */
static bool section_matches(const char *name, size_t len, const char *profile, bool config_file)
{
    while (len && isspace((unsigned char)*name)) {
        name++;
        len--;
    }
    while (len && isspace((unsigned char)name[len - 1]))
        len--;
    size_t plen = strlen(profile);
    if (config_file && len > 8 && !strncmp(name, "profile", 7) &&
        (name[7] == ' ' || name[7] == '\t')) {
        const char *p = name + 8;
        while (p < name + len && isspace((unsigned char)*p))
            p++;
        return (size_t)(name + len - p) == plen && !strncmp(p, profile, plen);
    }
    if (config_file && strcmp(profile, "default") != 0)
        return false;
    return len == plen && !strncmp(name, profile, plen);
}

/* Walks the ini text; for each "key = value" line of the profile's sections calls cb. */
static void ini_walk(const char *text, const char *profile, bool config_file,
                     void (*cb)(const char *key, size_t klen, const char *value, size_t vlen,
                                void *opaque),
                     bool *has_section, void *opaque)
{
    bool in = false, have_key = false;
    for (const char *line = text; line && *line;) {
        /* "\n", "\r\n" and a lone "\r" all end a line, as in the SDKs (Python's configparser
         * reads with universal newlines): a stray CR must not end up inside a key or value */
        const char *eol = strpbrk(line, "\r\n");
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        const char *next = eol ? eol + (eol[0] == '\r' && eol[1] == '\n' ? 2 : 1) : NULL;
        while (len && (line[len - 1] == '\r' || isspace((unsigned char)line[len - 1])))
            len--;
        bool indented = len && isspace((unsigned char)line[0]);
        const char *s = line;
        size_t slen = len;
        while (slen && isspace((unsigned char)*s)) {
            s++;
            slen--;
        }
        if (!slen || *s == '#' || *s == ';') {
            line = next;
            continue;
        }
        if (*s == '[' && !indented) {
            const char *close = memchr(s, ']', slen);
            in = close && section_matches(s + 1, (size_t)(close - s - 1), profile, config_file);
            if (in && has_section)
                *has_section = true;
            have_key = false;
        } else if (in && !(indented && have_key)) { /* indented after a key: nested setting */
            const char *eq = memchr(s, '=', slen);
            if (eq) {
                const char *k = s, *ke = eq, *v = eq + 1, *ve = s + slen;
                while (ke > k && isspace((unsigned char)ke[-1]))
                    ke--;
                while (v < ve && isspace((unsigned char)*v))
                    v++;
                cb(k, (size_t)(ke - k), v, (size_t)(ve - v), opaque);
                have_key = true;
            }
        }
        line = next;
    }
}

typedef struct ini_lookup {
    const char *key;
    char *value;
} ini_lookup_t;

static void ini_lookup_cb(const char *key, size_t klen, const char *value, size_t vlen,
                          void *opaque)
{
    ini_lookup_t *l = opaque;
    if (klen != strlen(l->key) || strncasecmp(key, l->key, klen))
        return;
    char *v = strndup(value, vlen);
    if (v) { /* a later line overrides an earlier one */
        wipe_free(l->value);
        l->value = v;
    }
}

char *sy_awscred_ini_get(const char *text, const char *profile, bool config_file, const char *key)
{
    ini_lookup_t l = {key, NULL};
    if (text)
        ini_walk(text, profile, config_file, ini_lookup_cb, NULL, &l);
    return l.value;
}

static void ini_nop_cb(const char *key, size_t klen, const char *value, size_t vlen, void *opaque)
{
}

bool sy_awscred_ini_has_profile(const char *text, const char *profile, bool config_file)
{
    bool has = false;
    if (text)
        ini_walk(text, profile, config_file, ini_nop_cb, &has, NULL);
    return has;
}

static bool container_host_allowed(const char *url)
{
    if (!strncmp(url, "https://", 8))
        return true;
    if (strncmp(url, "http://", 7))
        return false;
    const char *h = url + 7, *e;
    char host[64];
    const char *authority_end = h + strcspn(h, "/?#");
    if (memchr(h, '@', (size_t)(authority_end - h)))
        return false; /* no userinfo tricks: "http://127.0.0.1@evil.example/" */
    if (*h == '[') {
        e = memchr(h, ']', (size_t)(authority_end - h));
        if (!e)
            return false;
        e++;
    } else {
        e = h + strcspn(h, ":/?#");
    }
    if ((size_t)(e - h) >= sizeof(host))
        return false;
    memcpy(host, h, (size_t)(e - h));
    host[e - h] = '\0';
    if (!strcmp(host, "localhost") || !strcmp(host, "169.254.170.2") ||
        !strcmp(host, "169.254.170.23") || !strcasecmp(host, "[fd00:ec2::23]") ||
        !strcmp(host, "[::1]"))
        return true;
    unsigned a, b, c, d;
    char tail;
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

sy_err_code_t sy_awscred_container_url(char *const *envp, char *url, size_t url_size, sy_err_t *err)
{
    const char *rel = sy_aws_getenv(envp, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = sy_aws_getenv(envp, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    int n;
    if (rel) {
        if (rel[0] != '/')
            return sy_err_set(err, SY_ERR_CONFIG, false,
                              "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'");
        n = snprintf(url, url_size, "http://169.254.170.2%s", rel);
    } else if (full) {
        if (!container_host_allowed(full))
            return sy_err_set(err, SY_ERR_CONFIG, false,
                              "AWS_CONTAINER_CREDENTIALS_FULL_URI \"%s\": only https, or http to "
                              "a loopback address, 169.254.170.2 or 169.254.170.23, is allowed",
                              full);
        n = snprintf(url, url_size, "%s", full);
    } else {
        return sy_err_set(err, SY_ERR_NOT_FOUND, false, "no container credentials variables");
    }
    if (n < 0 || (size_t)n >= url_size)
        return sy_err_set(err, SY_ERR_CONFIG, false, "container credentials URI too long");
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ')
            return sy_err_set(err, SY_ERR_CONFIG, false,
                              "container credentials URI contains whitespace");
    return SY_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Files and environment                                                                      */

/* Reads a whole (small) file; SY_ERR_NOT_FOUND when it does not exist. */
static sy_err_code_t read_file(const char *path, char **out, sy_err_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return sy_err_set(err, errno == ENOENT ? SY_ERR_NOT_FOUND : SY_ERR_IO, false, "%s: %s",
                          path, strerror(errno));
    sy_err_code_t rc = SY_OK;
    char *buf = malloc(MAX_FILE_BYTES + 1);
    if (!buf) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f) || n > MAX_FILE_BYTES) {
        rc = sy_err_set(err, SY_ERR_IO, false, "%s: %s", path,
                        n > MAX_FILE_BYTES ? "larger than 1 MiB" : "read error");
        explicit_bzero(buf, n < MAX_FILE_BYTES ? n : MAX_FILE_BYTES);
        free(buf);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
out:
    fclose(f);
    return rc;
}

/* The path of a shared file: the variable, else ~/.aws/<name>; "~/" expanded with HOME. */
static void shared_path(char *const *env, const char *var, const char *name, char *out, size_t size)
{
    const char *v = sy_aws_getenv(env, var);
    const char *home = sy_aws_getenv(env, "HOME");
    if (!v)
        snprintf(out, size, "%s/.aws/%s", home ? home : "", name);
    else if (!strncmp(v, "~/", 2))
        snprintf(out, size, "%s%s", home ? home : "", v + 1);
    else
        snprintf(out, size, "%s", v);
}

static void trim_end(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Provider                                                                                   */

void sy_awscred_provider_destroy(sy_awscred_provider_t *p)
{
    if (!p)
        return;
    sy_awscred_clear(&p->cached);
    for (char **e = p->env; e && *e; e++)
        wipe_free(*e);
    free(p->env);
    free(p->region);
    if (p->curl)
        curl_easy_cleanup(p->curl);
    if (p->lock_ready)
        pthread_mutex_destroy(&p->lock);
    free(p);
}

static char **copy_env(char *const *envp)
{
    size_t n = 0;
    for (char *const *e = envp; e && *e; e++)
        n++;
    char **env = calloc(n + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t i = 0;
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, "AWS_", 4) && strncmp(*e, "HOME=", 5))
            continue;
        if (!(env[i++] = strdup(*e))) {
            for (size_t j = 0; j + 1 < i; j++)
                wipe_free(env[j]);
            free(env);
            return NULL;
        }
    }
    return env;
}

/* Static keys from the profile in the shared files into p->cached; *found tells whether the
 * profile exists in either file. */
static sy_err_code_t load_profile(sy_awscred_provider_t *p, const char *profile, bool *found,
                                  char **config_text, sy_err_t *err)
{
    char path[1024];
    char *creds_text = NULL, *id = NULL, *secret = NULL, *token = NULL;
    sy_err_code_t rc = SY_OK;
    *found = false;
    sy_err_t ferr = SY_ERR_INIT; /* a missing file is no error: keep err clean for it */
    shared_path(p->env, "AWS_SHARED_CREDENTIALS_FILE", "credentials", path, sizeof(path));
    if ((rc = read_file(path, &creds_text, &ferr)) == SY_OK || rc == SY_ERR_NOT_FOUND) {
        shared_path(p->env, "AWS_CONFIG_FILE", "config", path, sizeof(path));
        rc = read_file(path, config_text, &ferr);
    }
    if (rc != SY_OK && rc != SY_ERR_NOT_FOUND) {
        sy_err_set(err, ferr.code, ferr.retriable, "%s", ferr.msg);
        goto out;
    }
    rc = SY_OK;
    /* The credentials file wins over the config file, as in every AWS SDK. */
    const char *texts[] = {creds_text, *config_text};
    for (int i = 0; i < 2 && !id; i++) {
        if (!texts[i] || !sy_awscred_ini_has_profile(texts[i], profile, i == 1))
            continue;
        *found = true;
        id = sy_awscred_ini_get(texts[i], profile, i == 1, "aws_access_key_id");
        secret = sy_awscred_ini_get(texts[i], profile, i == 1, "aws_secret_access_key");
        token = sy_awscred_ini_get(texts[i], profile, i == 1, "aws_session_token");
        if (id && !secret) {
            rc = sy_err_set(err, SY_ERR_CONFIG, false,
                            "profile \"%s\" has aws_access_key_id but no aws_secret_access_key",
                            profile);
            goto out;
        }
        if (!id) {
            wipe_free(secret);
            wipe_free(token);
            secret = token = NULL;
        }
    }
    if (id) {
        p->cached.access_key_id = id;
        p->cached.secret_access_key = secret;
        p->cached.session_token = token;
        p->cached.source = kind_names[K_PROFILE];
        id = secret = token = NULL; /* now owned by p->cached */
    }
out:
    wipe_free(id);
    wipe_free(secret);
    wipe_free(token);
    wipe_free(creds_text);
    return rc;
}

/* Decides p->kind (and what it needs) from p->env and the shared files; see the header. */
static sy_err_code_t choose_provider(sy_awscred_provider_t *p, const sy_awscred_opts_t *opts,
                                     char **config_text, sy_err_t *err)
{
    char *const *env = p->env;
    const char *profile = sy_aws_getenv(env, "AWS_PROFILE");
    if (!profile)
        profile = sy_aws_getenv(env, "AWS_DEFAULT_PROFILE");
    bool explicit_profile = profile != NULL;
    if (!profile)
        profile = "default";
    const char *id = sy_aws_getenv(env, "AWS_ACCESS_KEY_ID");
    const char *secret = sy_aws_getenv(env, "AWS_SECRET_ACCESS_KEY");
    if (!!id != !!secret)
        return sy_err_set(err, SY_ERR_CONFIG, false,
                          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    bool profile_found = false;
    if (load_profile(p, profile, &profile_found, config_text, err) != SY_OK)
        return err ? err->code : SY_ERR_CONFIG;

    const char *region = opts && opts->region ? opts->region : sy_aws_getenv(env, "AWS_REGION");
    if (!region)
        region = sy_aws_getenv(env, "AWS_DEFAULT_REGION");
    if (region)
        p->region = strdup(region);
    else if (*config_text)
        p->region = sy_awscred_ini_get(*config_text, profile, true, "region");
    if (region && !p->region)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");

    /* 1. environment */
    if (id) {
        const char *token = sy_aws_getenv(env, "AWS_SESSION_TOKEN");
        if (!token)
            token = sy_aws_getenv(env, "AWS_SECURITY_TOKEN");
        sy_awscred_clear(&p->cached); /* the environment wins over a profile */
        p->kind = K_ENV;
        p->cached.access_key_id = strdup(id);
        p->cached.secret_access_key = strdup(secret);
        p->cached.session_token = token ? strdup(token) : NULL;
        p->cached.source = kind_names[K_ENV];
        if (!p->cached.access_key_id || !p->cached.secret_access_key ||
            (token && !p->cached.session_token))
            return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return SY_OK;
    }
    /* 2. web identity */
    if (sy_aws_getenv(env, "AWS_WEB_IDENTITY_TOKEN_FILE") && sy_aws_getenv(env, "AWS_ROLE_ARN")) {
        sy_awscred_clear(&p->cached);
        p->kind = K_WEB_IDENTITY;
        return sy_aws_endpoint(env, "sts", p->region ? p->region : "us-east-1", p->url,
                               sizeof(p->url), NULL, err);
    }
    /* 3. shared files */
    if (p->cached.access_key_id) {
        p->kind = K_PROFILE;
        return SY_OK;
    }
    if (explicit_profile)
        return sy_err_set(err, SY_ERR_CONFIG, false,
                          profile_found
                              ? "profile \"%s\" has no aws_access_key_id (role_arn, sso and "
                                "credential_process profiles are not supported)"
                              : "profile \"%s\" is not defined in the shared credentials or "
                                "config file",
                          profile);
    /* 4. container */
    sy_err_t cerr = SY_ERR_INIT;
    sy_err_code_t rc = sy_awscred_container_url(env, p->url, sizeof(p->url), &cerr);
    if (rc == SY_OK) {
        p->kind = K_CONTAINER;
        return SY_OK;
    }
    if (rc != SY_ERR_NOT_FOUND)
        return sy_err_set(err, cerr.code, cerr.retriable, "%s", cerr.msg);
    /* 5. instance metadata */
    const char *disabled = sy_aws_getenv(env, "AWS_EC2_METADATA_DISABLED");
    if (disabled && !strcasecmp(disabled, "true")) {
        p->kind = K_NONE;
        return SY_OK;
    }
    const char *ep = sy_aws_getenv(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *mode = sy_aws_getenv(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    if (!ep)
        ep =
            mode && !strcasecmp(mode, "IPv6") ? "http://[fd00:ec2::254]" : "http://169.254.169.254";
    size_t eplen = strlen(ep);
    while (eplen > 8 && ep[eplen - 1] == '/')
        eplen--;
    if (eplen >= sizeof(p->url) || (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)))
        return sy_err_set(err, SY_ERR_CONFIG, false,
                          "AWS_EC2_METADATA_SERVICE_ENDPOINT is not an http(s) URL");
    memcpy(p->url, ep, eplen);
    p->url[eplen] = '\0';
    const char *t = sy_aws_getenv(env, "AWS_METADATA_SERVICE_TIMEOUT");
    const char *a = sy_aws_getenv(env, "AWS_METADATA_SERVICE_NUM_ATTEMPTS");
    double ts = t ? strtod(t, NULL) : 1.0;
    p->imds_timeout_ms = ts > 0 && ts < 3600 ? (long)(ts * 1000) : 1000;
    p->imds_attempts = a && atoi(a) > 0 && atoi(a) <= 10 ? atoi(a) : 1;
    p->kind = K_IMDS;
    return SY_OK;
}

sy_awscred_provider_t *sy_awscred_provider_new(char *const *envp, const sy_awscred_opts_t *opts,
                                               sy_err_t *err)
{
    sy_awscred_provider_t *p = calloc(1, sizeof(*p));
    char *config_text = NULL;
    bool ok = false;
    if (!p) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        sy_err_set(err, SY_ERR_INTERNAL, false, "pthread_mutex_init failed");
        goto out;
    }
    p->lock_ready = true;
    p->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    p->refresh_before_s =
        (opts && opts->refresh_before_ms > 0 ? opts->refresh_before_ms : 300000) / 1000;
    if (!(p->env = copy_env(envp ? envp : environ))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    if (choose_provider(p, opts, &config_text, err) != SY_OK)
        goto out;
    sy_debug(LOG, "credentials provider: %s", kind_names[p->kind]);
    ok = true;
out:
    wipe_free(config_text);
    if (!ok) {
        sy_awscred_provider_destroy(p);
        p = NULL;
    }
    return p;
}

const char *sy_awscred_provider_source(const sy_awscred_provider_t *p)
{
    return kind_names[p->kind];
}

const char *sy_awscred_provider_region(const sy_awscred_provider_t *p)
{
    return p->region;
}

/* One HTTP exchange on the provider's handle (lock held). headers may carry a token: wiped. */
static sy_err_code_t http(sy_awscred_provider_t *p, const char *method, const char *url,
                          const char *const *headers, const char *body, long timeout_ms,
                          sy_http_response_t *resp, sy_err_t *err)
{
    struct curl_slist *l = NULL, *t;
    sy_err_code_t rc;
    if (!p->curl && !(p->curl = sy_http_handle_new(err)))
        return err ? err->code : SY_ERR_HTTP;
    for (const char *const *h = headers; h && *h; h++) {
        if (!(t = curl_slist_append(l, *h))) {
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
        l = t;
    }
    sy_http_request_t req = {.method = method,
                             .url = url,
                             .headers = l,
                             .body = body,
                             .body_len = body ? strlen(body) : 0,
                             .timeout_ms = timeout_ms,
                             .connect_timeout_ms = timeout_ms,
                             .max_body = 256 * 1024};
    rc = sy_http_perform(p->curl, &req, resp, err);
out:
    for (struct curl_slist *q = l; q; q = q->next)
        explicit_bzero(q->data, strlen(q->data));
    curl_slist_free_all(l);
    return rc;
}

static void sleep_backoff(int attempt)
{
    struct timespec ts = {0, (long)(rand() % 200 + 100) * 1000000L * attempt};
    nanosleep(&ts, NULL);
}

/* An error answer from a credentials endpoint into err (its body is not echoed: it might
 * carry what it was asked to keep secret). */
static sy_err_code_t answer_error(const char *what, const sy_http_response_t *resp, sy_err_t *err)
{
    char code[128], msg[256];
    sy_aws_parse_error(resp->body, resp->body_len, NULL, code, sizeof(code), msg, sizeof(msg));
    return sy_err_set(err, SY_ERR_AWS, sy_aws_is_retriable(resp->status, code),
                      "%s: HTTP %ld%s%s%s%s", what, resp->status, code[0] ? " " : "", code,
                      msg[0] ? ": " : "", msg);
}

static sy_err_code_t fetch_web_identity(sy_awscred_provider_t *p, sy_awscred_t *out, sy_err_t *err)
{
    const char *path = sy_aws_getenv(p->env, "AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *role = sy_aws_getenv(p->env, "AWS_ROLE_ARN");
    const char *session = sy_aws_getenv(p->env, "AWS_ROLE_SESSION_NAME");
    char *token = NULL, *etoken = NULL, *erole = NULL, *esession = NULL, *body = NULL;
    char session_buf[64], url[2100];
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    sy_err_code_t rc;
    if ((rc = read_file(path, &token, err)) != SY_OK) {
        sy_err_prefix(err, "AWS_WEB_IDENTITY_TOKEN_FILE");
        goto out;
    }
    trim_end(token);
    if (!session) {
        snprintf(session_buf, sizeof(session_buf), "switchyard-%lld", (long long)time(NULL));
        session = session_buf;
    }
    etoken = sy_http_url_encode(token, false);
    erole = sy_http_url_encode(role, false);
    esession = sy_http_url_encode(session, false);
    size_t n = (etoken ? strlen(etoken) : 0) + (erole ? strlen(erole) : 0) +
               (esession ? strlen(esession) : 0) + 128;
    if (!etoken || !erole || !esession || !(body = malloc(n))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    snprintf(body, n,
             "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s&RoleSessionName=%s"
             "&WebIdentityToken=%s",
             erole, esession, etoken);
    snprintf(url, sizeof(url), "%s/", p->url);
    /* Unsigned: the web identity token is the proof. */
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
                             "Expect:", NULL};
    for (int attempt = 1;; attempt++) {
        rc = http(p, "POST", url, headers, body, p->timeout_ms, &resp, err);
        if (rc == SY_OK && resp.status == 200) {
            rc = sy_awscred_parse_sts(resp.body, resp.body_len, out, err);
            break;
        }
        if (rc == SY_OK)
            rc = answer_error("STS AssumeRoleWithWebIdentity", &resp, err);
        else
            sy_err_prefix(err, "STS AssumeRoleWithWebIdentity");
        if (!err || !err->retriable || attempt >= FETCH_ATTEMPTS)
            break;
        sleep_backoff(attempt);
    }
out:
    wipe_free(token);
    wipe_free(etoken);
    wipe_free(body);
    free(erole);
    free(esession);
    if (resp.body) /* it carried the credentials */
        explicit_bzero(resp.body, resp.body_len);
    sy_http_response_clear(&resp);
    return rc;
}

static sy_err_code_t fetch_container(sy_awscred_provider_t *p, sy_awscred_t *out, sy_err_t *err)
{
    const char *token_file = sy_aws_getenv(p->env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *token_env = sy_aws_getenv(p->env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char *token = NULL, *auth = NULL;
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    sy_err_code_t rc = SY_OK;
    if (token_file) {
        if ((rc = read_file(token_file, &token, err)) != SY_OK) {
            sy_err_prefix(err, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
            goto out;
        }
        trim_end(token);
    } else if (token_env && !(token = strdup(token_env))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    if (token && strpbrk(token, "\r\n")) {
        rc = sy_err_set(err, SY_ERR_CONFIG, false,
                        "container authorization token contains a line break");
        goto out;
    }
    if (token) {
        size_t n = strlen(token) + 32;
        if (!(auth = malloc(n))) {
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
        snprintf(auth, n, "Authorization: %s", token);
    }
    const char *headers[] = {"Accept: application/json", auth, NULL};
    for (int attempt = 1;; attempt++) {
        rc = http(p, "GET", p->url, headers, NULL, p->timeout_ms, &resp, err);
        if (rc == SY_OK && resp.status == 200) {
            rc = sy_awscred_parse_json(resp.body, resp.body_len, out, err);
            break;
        }
        if (rc == SY_OK)
            rc = answer_error("container credentials endpoint", &resp, err);
        else
            sy_err_prefix(err, "container credentials endpoint");
        if (!err || !err->retriable || attempt >= FETCH_ATTEMPTS)
            break;
        sleep_backoff(attempt);
    }
out:
    wipe_free(token);
    wipe_free(auth);
    if (resp.body) /* it carried the credentials */
        explicit_bzero(resp.body, resp.body_len);
    sy_http_response_clear(&resp);
    return rc;
}

static sy_err_code_t fetch_imds_once(sy_awscred_provider_t *p, sy_awscred_t *out, sy_err_t *err)
{
    char url[2300], *token = NULL, *token_hdr = NULL, role[256];
    sy_http_response_t resp = SY_HTTP_RESPONSE_INIT;
    sy_err_code_t rc;
    snprintf(url, sizeof(url), "%s/latest/api/token", p->url);
    const char *put_headers[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    if ((rc = http(p, "PUT", url, put_headers, "", p->imds_timeout_ms, &resp, err)) != SY_OK) {
        sy_err_prefix(err, "instance metadata (not on EC2?)");
        goto out;
    }
    if (resp.status != 200) {
        rc = answer_error("instance metadata token (IMDSv2)", &resp, err);
        goto out;
    }
    if ((rc = sy_awscred_parse_imds_token(resp.body, resp.body_len, &token, err)) != SY_OK)
        goto out;
    size_t n = strlen(token) + 40;
    if (!(token_hdr = malloc(n))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    snprintf(token_hdr, n, "X-aws-ec2-metadata-token: %s", token);
    const char *headers[] = {token_hdr, NULL};
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", p->url);
    if ((rc = http(p, "GET", url, headers, NULL, p->imds_timeout_ms, &resp, err)) != SY_OK)
        goto out;
    if (resp.status == 404) {
        rc = sy_err_set(err, SY_ERR_CONFIG, false,
                        "instance metadata: no IAM role is attached to this instance");
        goto out;
    }
    if (resp.status != 200) {
        rc = answer_error("instance metadata role", &resp, err);
        goto out;
    }
    if ((rc = sy_awscred_parse_imds_role(resp.body, resp.body_len, role, sizeof(role), err)) !=
        SY_OK)
        goto out;
    char *erole = sy_http_url_encode(role, false);
    if (!erole) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", p->url, erole);
    free(erole);
    if ((rc = http(p, "GET", url, headers, NULL, p->imds_timeout_ms, &resp, err)) != SY_OK)
        goto out;
    if (resp.status != 200) {
        rc = answer_error("instance metadata credentials", &resp, err);
        goto out;
    }
    rc = sy_awscred_parse_json(resp.body, resp.body_len, out, err);
out:
    wipe_free(token);
    wipe_free(token_hdr);
    if (resp.body)
        explicit_bzero(resp.body, resp.body_len);
    sy_http_response_clear(&resp);
    return rc;
}

static sy_err_code_t fetch_imds(sy_awscred_provider_t *p, sy_awscred_t *out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    for (int attempt = 1; attempt <= p->imds_attempts; attempt++) {
        if ((rc = fetch_imds_once(p, out, err)) == SY_OK || !err || !err->retriable)
            break;
    }
    return rc;
}

static sy_err_code_t fetch(sy_awscred_provider_t *p, sy_awscred_t *out, sy_err_t *err)
{
    sy_err_code_t rc;
    switch (p->kind) {
    case K_WEB_IDENTITY:
        rc = fetch_web_identity(p, out, err);
        break;
    case K_CONTAINER:
        rc = fetch_container(p, out, err);
        break;
    case K_IMDS:
        rc = fetch_imds(p, out, err);
        break;
    default:
        return sy_err_set(err, SY_ERR_INTERNAL, false, "no fetch for %s", kind_names[p->kind]);
    }
    if (rc == SY_OK)
        out->source = kind_names[p->kind];
    return rc;
}

static void format_time(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

sy_err_code_t sy_awscred_provider_get(sy_awscred_provider_t *p, sy_awscred_t *out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    sy_awscred_t fresh = SY_AWSCRED_INIT;
    sy_err_t ferr = SY_ERR_INIT;
    char when[32];
    pthread_mutex_lock(&p->lock);
    time_t now = time(NULL);
    if (p->kind == K_NONE) {
        rc = sy_err_set(err, SY_ERR_CONFIG, false,
                        "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                        "AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN, a profile, or the container "
                        "credentials variables (instance metadata is disabled)");
        goto out;
    }
    bool have = p->cached.access_key_id != NULL;
    /* Usable: not yet due for refresh, or a refresh failed moments ago and these still work. */
    bool usable = have && (!sy_awscred_needs_refresh(&p->cached, now, p->refresh_before_s) ||
                           (now < p->next_try && now < p->cached.expiration));
    if (!usable) {
        if (fetch(p, &fresh, &ferr) == SY_OK) {
            sy_awscred_clear(&p->cached);
            p->cached = fresh;
            fresh = (sy_awscred_t)SY_AWSCRED_INIT; /* now owned by p->cached */
            p->next_try = 0;
            format_time(p->cached.expiration, when, sizeof(when));
            sy_debug(LOG, "credentials from %s, valid until %s", kind_names[p->kind],
                     p->cached.expiration ? when : "revoked");
        } else if (have && now + 10 < p->cached.expiration) {
            format_time(p->cached.expiration, when, sizeof(when));
            sy_warn(LOG,
                    "refreshing credentials from %s failed (%s); using the current ones, valid "
                    "until %s",
                    kind_names[p->kind], ferr.msg, when);
            p->next_try = now + RETRY_AFTER_FAILED_REFRESH_S;
        } else {
            rc = sy_err_set(err, ferr.code, ferr.retriable, "AWS credentials from %s: %s",
                            kind_names[p->kind], ferr.msg);
            goto out;
        }
    }
    rc = sy_awscred_copy(out, &p->cached, err);
out:
    pthread_mutex_unlock(&p->lock);
    sy_awscred_clear(&fresh);
    return rc;
}

void sy_awscred_provider_invalidate(sy_awscred_provider_t *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->kind != K_ENV && p->kind != K_PROFILE) {
        sy_awscred_clear(&p->cached);
        p->next_try = 0;
    }
    pthread_mutex_unlock(&p->lock);
}
