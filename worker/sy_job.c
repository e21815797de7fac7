/* sy_job: one job as a worker holds it. */
#include "sy_job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_avro.h"

sy_job_t *sy_job_new(const char *job_id)
{
    sy_job_t *job = calloc(1, sizeof(*job));
    if (!job || !(job->job_id = strdup(job_id))) {
        free(job);
        return NULL;
    }
    job->attempt = 1;
    return job;
}

void sy_job_destroy(sy_job_t *job)
{
    if (!job)
        return;
    free(job->job_id);
    free(job->cluster_name);
    free(job->backend_kind);
    free(job->command_name);
    free(job->backend_address);
    free(job->region);
    free(job->command_spec);
    for (size_t i = 0; i < job->n_args; i++)
        free(job->args[i]);
    free(job->args);
    for (size_t i = 0; i < job->n_env; i++)
        free(job->env[i]);
    free(job->env);
    free(job);
}

/* Appends s (taken over) to *v; frees s on failure. */
static sy_err_code_t push(char ***v, size_t *n, char *s, sy_err_t *err)
{
    char **grown = s ? realloc(*v, (*n + 1) * sizeof(char *)) : NULL;
    if (!grown) {
        free(s);
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    }
    grown[(*n)++] = s;
    *v = grown;
    return SY_OK;
}

sy_err_code_t sy_job_add_arg(sy_job_t *job, const char *arg, sy_err_t *err)
{
    return push(&job->args, &job->n_args, strdup(arg), err);
}

sy_err_code_t sy_job_add_env(sy_job_t *job, const char *name, const char *value, sy_err_t *err)
{
    char *entry = NULL;
    if (asprintf(&entry, "%s=%s", name, value) < 0)
        entry = NULL;
    return push(&job->env, &job->n_env, entry, err);
}

/* A copy of a string field (NULL stays NULL); false when out of memory. */
static bool dup_field(avro_value_t *rec, const char *path, char **out)
{
    const char *s = sy_avro_get_string(rec, path);
    *out = s ? strdup(s) : NULL;
    return !s || *out;
}

typedef struct env_ctx {
    sy_job_t *job;
    sy_err_t *err;
} env_ctx_t;

static int env_cb(const char *key, const char *value, void *opaque)
{
    env_ctx_t *ctx = opaque;
    return sy_job_add_env(ctx->job, key, value, ctx->err) != SY_OK;
}

sy_err_code_t sy_job_from_routed(avro_value_t *routed, sy_job_t **out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    const char *job_id = sy_avro_get_string(routed, "job_id");
    sy_job_t *job = NULL;
    *out = NULL;
    if (!job_id || !*job_id)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "RoutedJob without a job_id");
    if (!(job = sy_job_new(job_id)) || !dup_field(routed, "cluster_name", &job->cluster_name) ||
        !dup_field(routed, "backend_kind", &job->backend_kind) ||
        !dup_field(routed, "command_name", &job->command_name) ||
        !dup_field(routed, "backend_address", &job->backend_address) ||
        !dup_field(routed, "region", &job->region) ||
        !dup_field(routed, "command_spec", &job->command_spec)) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    if (!job->cluster_name || !job->backend_kind || !job->command_spec) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false,
                        "RoutedJob %s lacks cluster_name, backend_kind or command_spec", job_id);
        goto out;
    }
    job->attempt = sy_avro_get_int(routed, "attempt", 1);
    if (job->attempt < 1)
        job->attempt = 1;
    job->max_concurrent = sy_avro_get_int(routed, "cluster_max_concurrent", 0);
    int64_t v = 0;
    if (sy_avro_get_long_opt(routed, "request.timeout_ms", &v) && v > 0)
        job->timeout_ms = v;
    if (sy_avro_get_long_opt(routed, "request.submitted_at", &v) && v > 0)
        job->submitted_at = v;
    size_t n = sy_avro_array_size(routed, "request.arguments");
    for (size_t i = 0; i < n; i++) {
        const char *a = sy_avro_array_get_string(routed, "request.arguments", i);
        if ((rc = sy_job_add_arg(job, a ? a : "", err)) != SY_OK)
            goto out;
    }
    env_ctx_t ctx = {job, err};
    if (sy_avro_map_foreach(routed, "request.environment", env_cb, &ctx)) {
        rc = err ? err->code : SY_ERR_NOMEM;
        goto out;
    }
    *out = job;
    job = NULL; /* now owned by the caller */
out:
    sy_job_destroy(job);
    return rc;
}

void sy_job_end(sy_job_t *job, sy_job_state_t outcome, const char *failure_reason, const char *fmt,
                ...)
{
    job->phase = SY_PHASE_ENDED;
    job->outcome = outcome;
    snprintf(job->failure_reason, sizeof(job->failure_reason), "%s",
             failure_reason ? failure_reason : "");
    job->message[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(job->message, sizeof(job->message), fmt, ap);
        sy_utf8_scrub(job->message); /* a status message: cut short, still UTF-8 */
        va_end(ap);
    }
}
