/* sy_emr_eks: the pure parts of the EMR on EKS driver — states, parsers, request, names. */
#include "sy_emr_eks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_sha256.h"

/* ---- States ---------------------------------------------------------------------------------- */

static const char *const state_names[] = {"UNKNOWN",        "PENDING",   "SUBMITTED", "RUNNING",
                                          "CANCEL_PENDING", "COMPLETED", "FAILED",    "CANCELLED"};
#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))

const char SY_EMR_EKS_ACTIVE_QUERY[] =
    "states=PENDING&states=SUBMITTED&states=RUNNING&states=CANCEL_PENDING";

sy_emr_eks_state_t sy_emr_eks_state_parse(const char *s)
{
    for (size_t i = 1; s && i < N_STATES; i++)
        if (!strcmp(s, state_names[i]))
            return (sy_emr_eks_state_t)i;
    return SY_EMR_EKS_UNKNOWN;
}

const char *sy_emr_eks_state_name(sy_emr_eks_state_t state)
{
    return (size_t)state < N_STATES ? state_names[state] : state_names[0];
}

bool sy_emr_eks_state_active(sy_emr_eks_state_t state)
{
    return state == SY_EMR_EKS_PENDING || state == SY_EMR_EKS_SUBMITTED ||
           state == SY_EMR_EKS_RUNNING || state == SY_EMR_EKS_CANCEL_PENDING;
}

static bool set_phase(sy_job_t *job, sy_job_phase_t phase)
{
    bool changed = job->phase != phase;
    job->phase = phase;
    return changed;
}

bool sy_emr_eks_apply(sy_job_t *job, const sy_emr_eks_run_t *run)
{
    if (job->phase == SY_PHASE_ENDED)
        return false;
    switch (run->state) {
    case SY_EMR_EKS_PENDING:
    case SY_EMR_EKS_SUBMITTED:
        return set_phase(job, SY_PHASE_PENDING);
    case SY_EMR_EKS_RUNNING:
        return set_phase(job, SY_PHASE_RUNNING);
    case SY_EMR_EKS_CANCEL_PENDING:
        return job->phase == SY_PHASE_NEW ? set_phase(job, SY_PHASE_RUNNING) : false;
    case SY_EMR_EKS_UNKNOWN:
        return job->phase == SY_PHASE_NEW ? set_phase(job, SY_PHASE_PENDING) : false;
    case SY_EMR_EKS_COMPLETED:
        sy_job_end(job, SY_JOB_SUCCEEDED, NULL, "job run %s completed%s%s", run->id,
                   *run->state_details ? ": " : "", run->state_details);
        return true;
    case SY_EMR_EKS_FAILED:
        sy_job_end(job, SY_JOB_FAILED,
                   *run->failure_reason ? run->failure_reason : "JOB_RUN_FAILED", "%s",
                   *run->state_details ? run->state_details : "job run failed");
        return true;
    case SY_EMR_EKS_CANCELLED:
        sy_job_end(job, SY_JOB_KILLED, NULL, "%s",
                   *run->state_details ? run->state_details : "job run cancelled");
        return true;
    }
    return false;
}

/* ---- Parsers --------------------------------------------------------------------------------- */

bool sy_emr_eks_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SY_EMR_EKS_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return false;
    return true;
}

/* A string member copied (truncated) into buf; "" when absent or not a string. */
static void copy_member(const json_t *obj, const char *key, char *buf, size_t size)
{
    const char *s = json_string_value(json_object_get(obj, key)); /* borrowed */
    snprintf(buf, size, "%s", s ? s : "");
}

sy_err_code_t sy_emr_eks_run_from_json(const json_t *jobrun, sy_emr_eks_run_t *out, sy_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(jobrun))
        return sy_err_set(err, SY_ERR_AWS, false,
                          "emr-containers: a job run that is not an object");
    const char *id = json_string_value(json_object_get(jobrun, "id")); /* borrowed */
    if (!sy_emr_eks_id_valid(id))
        return sy_err_set(err, SY_ERR_AWS, false,
                          "emr-containers: a job run without a valid id (%.80s)", id ? id : "none");
    snprintf(out->id, sizeof(out->id), "%s", id);
    out->state = sy_emr_eks_state_parse(json_string_value(json_object_get(jobrun, "state")));
    copy_member(jobrun, "failureReason", out->failure_reason, sizeof(out->failure_reason));
    copy_member(jobrun, "stateDetails", out->state_details, sizeof(out->state_details));
    return SY_OK;
}

sy_err_code_t sy_emr_eks_parse_describe(const char *body, size_t len, sy_emr_eks_run_t *out,
                                        sy_err_t *err)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root)
        return sy_err_set(err, SY_ERR_JSON, false, "DescribeJobRun: invalid JSON: %s", jerr.text);
    sy_err_code_t rc = sy_emr_eks_run_from_json(json_object_get(root, "jobRun"), out, err);
    json_decref(root);
    return rc;
}

void sy_emr_eks_page_clear(sy_emr_eks_page_t *page)
{
    if (!page)
        return;
    free(page->runs);
    free(page->next_token);
    memset(page, 0, sizeof(*page));
}

sy_err_code_t sy_emr_eks_page_from_json(const json_t *answer, sy_emr_eks_page_t *out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(answer))
        return sy_err_set(err, SY_ERR_AWS, false, "ListJobRuns: the answer is not an object");
    const json_t *runs = json_object_get(answer, "jobRuns"); /* borrowed */
    const json_t *next = json_object_get(answer, "nextToken");
    if ((runs && !json_is_array(runs) && !json_is_null(runs)) ||
        (next && !json_is_string(next) && !json_is_null(next)))
        return sy_err_set(err, SY_ERR_AWS, false,
                          "ListJobRuns: jobRuns is not an array or nextToken not a string");
    size_t n = json_array_size(runs);
    if (n && !(out->runs = calloc(n, sizeof(*out->runs)))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++, out->n++) {
        if ((rc = sy_emr_eks_run_from_json(json_array_get(runs, i), &out->runs[i], err)) != SY_OK)
            goto out;
    }
    const char *tok = json_string_value(next);
    if (tok && *tok && !(out->next_token = strdup(tok)))
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
out:
    if (rc != SY_OK)
        sy_emr_eks_page_clear(out);
    return rc;
}

sy_err_code_t sy_emr_eks_parse_page(const char *body, size_t len, sy_emr_eks_page_t *out,
                                    sy_err_t *err)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root)
        return sy_err_set(err, SY_ERR_JSON, false, "ListJobRuns: invalid JSON: %s", jerr.text);
    sy_err_code_t rc = sy_emr_eks_page_from_json(root, out, err);
    json_decref(root);
    return rc;
}

/* ---- Names ----------------------------------------------------------------------------------- */

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void sy_emr_eks_client_token(const char *ns, const char *job_id, int attempt,
                             char out[SY_EMR_EKS_TOKEN_LEN + 1])
{
    static const char domain[] = "switchyard/emr-eks";
    char num[16];
    unsigned char d[SY_SHA256_LEN];
    sy_sha256_t s;
    int n = snprintf(num, sizeof(num), "%d", attempt);
    sy_sha256_init(&s);
    sy_sha256_update(&s, domain, sizeof(domain)); /* with its NUL */
    sy_sha256_update(&s, ns ? ns : "", strlen(ns ? ns : "") + 1);
    sy_sha256_update(&s, job_id ? job_id : "", strlen(job_id ? job_id : "") + 1);
    sy_sha256_update(&s, num, (size_t)n);
    sy_sha256_final(&s, d);
    hex(d, sizeof(d), out);
}

static bool name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == '/' || c == '#';
}

void sy_emr_eks_job_name(const char *job_id, char out[SY_EMR_EKS_NAME_MAX + 1])
{
    const char *id = job_id && *job_id ? job_id : "_";
    size_t len = strlen(id), keep = len <= SY_EMR_EKS_NAME_MAX ? len : 47;
    for (size_t i = 0; i < keep; i++)
        out[i] = name_char(id[i]) ? id[i] : '_';
    out[keep] = '\0';
    if (keep < len) {
        char digest[2 * SY_SHA256_LEN + 1];
        sy_sha256_hex(id, len, digest);
        snprintf(out + keep, SY_EMR_EKS_NAME_MAX + 1 - keep, "-%.16s", digest);
    }
}

/* ---- The StartJobRun request ----------------------------------------------------------------- */

void sy_emr_eks_logs_clear(sy_emr_eks_logs_t *logs)
{
    if (!logs)
        return;
    free(logs->group);
    free(logs->prefix);
    free(logs->s3_uri);
    memset(logs, 0, sizeof(*logs));
}

/* *out = a copy of the string member key of obj (NULL when absent or null); false when it is of
 * another type or out of memory (err filled, naming path). */
static bool opt_string(const json_t *obj, const char *key, const char *path, char **out,
                       sy_err_t *err)
{
    const json_t *v = json_object_get(obj, key); /* borrowed */
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s must be a string", path);
        return false;
    }
    if (!(*out = strdup(json_string_value(v)))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return false;
    }
    return true;
}

static sy_err_code_t logs_from_overrides(const json_t *overrides, sy_emr_eks_logs_t *logs,
                                         sy_err_t *err)
{
    memset(logs, 0, sizeof(*logs));
    const json_t *mon = json_object_get(overrides, "monitoringConfiguration"); /* borrowed */
    const json_t *cw = json_object_get(mon, "cloudWatchMonitoringConfiguration");
    const json_t *s3 = json_object_get(mon, "s3MonitoringConfiguration");
    const char *base = "spec.emr-eks.configuration_overrides.monitoringConfiguration";
    char path[160];
    snprintf(path, sizeof(path), "%s.cloudWatchMonitoringConfiguration.logGroupName", base);
    bool ok = opt_string(cw, "logGroupName", path, &logs->group, err);
    snprintf(path, sizeof(path), "%s.cloudWatchMonitoringConfiguration.logStreamNamePrefix", base);
    ok = ok && opt_string(cw, "logStreamNamePrefix", path, &logs->prefix, err);
    snprintf(path, sizeof(path), "%s.s3MonitoringConfiguration.logUri", base);
    ok = ok && opt_string(s3, "logUri", path, &logs->s3_uri, err);
    if (!ok) {
        sy_emr_eks_logs_clear(logs);
        return err ? err->code : SY_ERR_INVALID_ARG;
    }
    if (logs->group && !*logs->group) { /* an empty group names nothing */
        free(logs->group);
        logs->group = NULL;
    }
    return SY_OK;
}

static json_t *load_spec(const char *spec_json, sy_err_t *err)
{
    json_error_t jerr;
    json_t *spec = json_loads(spec_json ? spec_json : "", 0, &jerr);
    if (!json_is_object(spec)) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "the command's emr-eks spec is %s%s",
                   spec ? "not a JSON object" : "not JSON: ", spec ? "" : jerr.text);
        json_decref(spec);
        return NULL;
    }
    return spec;
}

sy_err_code_t sy_emr_eks_spec_logs(const char *spec_json, sy_emr_eks_logs_t *logs, sy_err_t *err)
{
    memset(logs, 0, sizeof(*logs));
    json_t *spec = load_spec(spec_json, err);
    if (!spec)
        return SY_ERR_INVALID_ARG;
    const json_t *ov = json_object_get(spec, "configuration_overrides"); /* borrowed */
    sy_err_code_t rc = SY_OK;
    if (ov && !json_is_object(ov))
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false,
                        "spec.emr-eks.configuration_overrides must be an object");
    else
        rc = logs_from_overrides(ov, logs, err);
    json_decref(spec);
    return rc;
}

/* A required non-empty string of the spec, or NULL with err naming it. Borrowed. */
static const char *need_string(const json_t *spec, const char *key, sy_err_t *err)
{
    const char *s = json_string_value(json_object_get(spec, key)); /* borrowed */
    if (!s || !*s)
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "spec.emr-eks.%s is missing or not a string",
                   key);
    return s && *s ? s : NULL;
}

/* The "spark-defaults" classification's properties in overrides.applicationConfiguration, made
 * when absent. Borrowed from overrides; NULL with err filled on a malformed list. */
static json_t *spark_defaults(json_t *overrides, sy_err_t *err)
{
    json_t *list = json_object_get(overrides, "applicationConfiguration"); /* borrowed */
    size_t i;
    json_t *c;
    if (!list) {
        list = json_array();
        if (!list || json_object_set_new(overrides, "applicationConfiguration", list)) {
            sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            return NULL;
        }
    }
    if (!json_is_array(list)) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false,
                   "spec.emr-eks.configuration_overrides.applicationConfiguration must be an "
                   "array");
        return NULL;
    }
    json_array_foreach(list, i, c)
    {
        const char *cls = json_string_value(json_object_get(c, "classification"));
        if (!cls || strcmp(cls, "spark-defaults"))
            continue;
        json_t *props = json_object_get(c, "properties"); /* borrowed */
        if (!props) {
            props = json_object();
            if (!props || json_object_set_new(c, "properties", props)) {
                sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
                return NULL;
            }
        }
        if (!json_is_object(props)) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false,
                       "spec.emr-eks.configuration_overrides.applicationConfiguration"
                       "[%zu].properties must be an object",
                       i);
            return NULL;
        }
        return props;
    }
    json_t *props = json_object();
    json_t *entry =
        props ? json_pack("{s:s,s:o}", "classification", "spark-defaults", "properties", props)
              : NULL; /* "o" steals props */
    if (!entry || json_array_append_new(list, entry)) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    return props;
}

/* A JSON string of s, or NULL with err filled (what: for the message). */
static json_t *text(const char *s, const char *what, sy_err_t *err)
{
    json_t *v = json_string(s);
    if (!v) /* (or memory ran out, which the message does not tell apart) */
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s is not valid UTF-8", what);
    return v;
}

/* Sets NAME for the driver and the executors. */
static sy_err_code_t put_env(json_t *props, const char *name, size_t name_len, const char *value,
                             sy_err_t *err)
{
    char key[512];
    static const char *const prefixes[] = {"spark.kubernetes.driverEnv.", "spark.executorEnv."};
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof(key), "%s%.*s", prefixes[i], (int)name_len, name);
        json_t *v = text(value, "an environment value", err);
        if (!v)
            return SY_ERR_INVALID_ARG;
        if (json_object_set_new(props, key, v)) /* also a key that is not UTF-8 */
            return sy_err_set(err, SY_ERR_INVALID_ARG, false, "environment name %.*s is not usable",
                              (int)name_len, name);
    }
    return SY_OK;
}

static sy_err_code_t add_env(const sy_job_t *job, json_t *overrides, sy_err_t *err)
{
    json_t *props = spark_defaults(overrides, err);
    char attempt[16];
    sy_err_code_t rc = SY_OK;
    if (!props)
        return err ? err->code : SY_ERR_INVALID_ARG;
    for (size_t i = 0; rc == SY_OK && i < job->n_env; i++) {
        const char *eq = strchr(job->env[i], '=');
        size_t n = eq ? (size_t)(eq - job->env[i]) : strlen(job->env[i]);
        if (n == 0 || n > 256)
            continue; /* not a name (the router only routes [A-Za-z_][A-Za-z0-9_]*) */
        rc = put_env(props, job->env[i], n, eq ? eq + 1 : "", err);
    }
    snprintf(attempt, sizeof(attempt), "%d", job->attempt);
    if (rc == SY_OK)
        rc = put_env(props, "SWITCHYARD_JOB_ID", 17, job->job_id, err);
    if (rc == SY_OK)
        rc = put_env(props, "SWITCHYARD_ATTEMPT", 18, attempt, err);
    if (rc == SY_OK)
        rc = put_env(props, "SWITCHYARD_CLUSTER", 18, job->cluster_name ? job->cluster_name : "",
                     err);
    return rc;
}

sy_err_code_t sy_emr_eks_start_request(const sy_job_t *job, const char *ns, json_t **body,
                                       sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    json_t *spec = load_spec(job->command_spec, err), *req = NULL, *args = NULL, *driver = NULL,
           *overrides = NULL;
    char token[SY_EMR_EKS_TOKEN_LEN + 1], name[SY_EMR_EKS_NAME_MAX + 1];
    *body = NULL;
    if (!spec)
        return SY_ERR_INVALID_ARG;
    const char *release = need_string(spec, "release_label", err);
    const char *role = release ? need_string(spec, "execution_role_arn", err) : NULL;
    const char *entry = role ? need_string(spec, "entry_point", err) : NULL;
    if (!entry) {
        rc = SY_ERR_INVALID_ARG;
        goto out;
    }
    const json_t *tmpl = json_object_get(spec, "entry_point_arguments"); /* borrowed */
    const json_t *ssp = json_object_get(spec, "spark_submit_parameters");
    const json_t *ov = json_object_get(spec, "configuration_overrides");
    const json_t *retry = json_object_get(spec, "retry_policy");
    const json_t *max_attempts = json_object_get(retry, "max_attempts");
    if ((tmpl && !json_is_array(tmpl)) || (ssp && !json_is_string(ssp)) ||
        (ov && !json_is_object(ov)) || (retry && !json_is_integer(max_attempts))) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false,
                        "spec.emr-eks: entry_point_arguments must be an array, "
                        "spark_submit_parameters a string, configuration_overrides an object "
                        "and retry_policy {\"max_attempts\": n}");
        goto out;
    }
    if (!(args = json_array()) || !(driver = json_object()) ||
        !(overrides = ov ? json_deep_copy(ov) : json_object())) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    size_t i;
    json_t *a;
    json_array_foreach(tmpl, i, a)
    {
        if (!json_is_string(a)) {
            rc = sy_err_set(err, SY_ERR_INVALID_ARG, false,
                            "spec.emr-eks.entry_point_arguments[%zu] is not a string", i);
            goto out;
        }
        json_array_append(args, a);
    }
    for (i = 0; i < job->n_args; i++) {
        json_t *v = text(job->args[i], "an argument", err);
        if (!v) {
            rc = SY_ERR_INVALID_ARG;
            goto out;
        }
        if (json_array_append_new(args, v)) {
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
    }
    if ((rc = add_env(job, overrides, err)) != SY_OK)
        goto out;
    json_object_set_new(driver, "entryPoint", json_string(entry));
    if (json_array_size(args))
        json_object_set(driver, "entryPointArguments", args);
    if (ssp && *json_string_value(ssp))
        json_object_set_new(driver, "sparkSubmitParameters", json_string(json_string_value(ssp)));
    sy_emr_eks_job_name(job->job_id, name);
    sy_emr_eks_client_token(ns, job->job_id, job->attempt, token);
    req = json_pack("{s:s,s:s,s:s,s:s,s:{s:O},s:O}", "name", name, "clientToken", token,
                    "releaseLabel", release, "executionRoleArn", role, "jobDriver",
                    "sparkSubmitJobDriver", driver, "configurationOverrides", overrides);
    if (req && retry &&
        json_object_set_new(
            req, "retryPolicyConfiguration",
            json_pack("{s:I}", "maxAttempts", (json_int_t)json_integer_value(max_attempts))) != 0) {
        json_decref(req);
        req = NULL;
    }
    if (!req) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    *body = req;
out:
    json_decref(spec);
    json_decref(args);
    json_decref(driver);
    json_decref(overrides);
    return rc;
}

/* ---- CloudWatch Logs streams ----------------------------------------------------------------- */

bool sy_emr_eks_stream_prefix(const char *prefix, const char *vc, const char *run, char *buf,
                              size_t size)
{
    bool has = prefix && *prefix;
    int n = snprintf(buf, size, "%s%s%s/jobs/%s/containers/", has ? prefix : "", has ? "/" : "", vc,
                     run);
    return n > 0 && (size_t)n < size;
}

bool sy_emr_eks_driver_stream(const char *prefix, const char *vc, const char *run,
                              const char *stream, char *buf, size_t size)
{
    if (!sy_emr_eks_stream_prefix(prefix, vc, run, buf, size))
        return false;
    size_t used = strlen(buf);
    int n = snprintf(buf + used, size - used, "spark-%s/spark-%s-driver/%s", run, run, stream);
    return n > 0 && (size_t)n < size - used;
}

bool sy_emr_eks_is_driver_stream(const char *name, const char *stream)
{
    static const char tail[] = "-driver/";
    size_t n = name ? strlen(name) : 0, s = strlen(stream), t = sizeof(tail) - 1;
    if (n < s + t + 2 || strcmp(name + n - s, stream) != 0)
        return false;
    const char *pod_end = name + n - s; /* just after "-driver/" */
    if (strncmp(pod_end - t, tail, t) != 0)
        return false;
    /* the pod name must be a whole path component: ".../<pod>-driver/<stream>" */
    const char *pod = pod_end - t;
    while (pod > name && pod[-1] != '/')
        pod--;
    return pod > name && pod < pod_end - t;
}
