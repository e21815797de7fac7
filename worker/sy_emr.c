/* sy_emr: AddJobFlowSteps requests and ListSteps answers, without I/O (see sy_emr.h). */
#include "sy_emr.h"

#include <stdio.h>
#include <string.h>

#define EMR_MAX_STRING 10240 /* every HadoopJarStep string, per EMR's API */

static const char *const state_names[] = {
    [SY_EMR_UNKNOWN] = "UNKNOWN",
    [SY_EMR_PENDING] = "PENDING",
    [SY_EMR_CANCEL_PENDING] = "CANCEL_PENDING",
    [SY_EMR_RUNNING] = "RUNNING",
    [SY_EMR_COMPLETED] = "COMPLETED",
    [SY_EMR_CANCELLED] = "CANCELLED",
    [SY_EMR_FAILED] = "FAILED",
    [SY_EMR_INTERRUPTED] = "INTERRUPTED",
};

sy_emr_step_state_t sy_emr_step_state_parse(const char *s)
{
    for (size_t i = 1; s && i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (!strcmp(s, state_names[i]))
            return (sy_emr_step_state_t)i;
    return SY_EMR_UNKNOWN;
}

const char *sy_emr_step_state_name(sy_emr_step_state_t st)
{
    return (size_t)st < sizeof(state_names) / sizeof(state_names[0]) ? state_names[st] : "UNKNOWN";
}

bool sy_emr_step_active(sy_emr_step_state_t st)
{
    return st == SY_EMR_PENDING || st == SY_EMR_CANCEL_PENDING || st == SY_EMR_RUNNING;
}

void sy_emr_step_name(const char *job_id, char *buf, size_t size)
{
    snprintf(buf, size, SY_EMR_STEP_PREFIX "%s", job_id ? job_id : "");
}

static sy_err_code_t too_long(const char *what, sy_err_t *err)
{
    return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                      "%s is longer than EMR's limit of %d characters", what, EMR_MAX_STRING);
}

/* Appends a new string to arr, checking EMR's length limit. */
static sy_err_code_t push(json_t *arr, const char *s, const char *what, sy_err_t *err)
{
    if (strlen(s) > EMR_MAX_STRING)
        return too_long(what, err);
    if (json_array_append_new(arr, json_string(s)) != 0)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s is not valid UTF-8", what);
    return SY_OK;
}

static sy_err_code_t push_property(json_t *props, const char *key, size_t key_len,
                                   const char *value, sy_err_t *err)
{
    if (key_len > EMR_MAX_STRING || strlen(value) > EMR_MAX_STRING)
        return too_long("a step property", err);
    json_t *kv = json_object();
    if (!kv || json_object_set_new(kv, "Key", json_stringn(key, key_len)) ||
        json_object_set_new(kv, "Value", json_string(value)) || json_array_append_new(props, kv)) {
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "step property %.*s is not valid UTF-8",
                          (int)(key_len > 64 ? 64 : key_len), key);
    }
    return SY_OK;
}

sy_err_code_t sy_emr_build_step(const json_t *spec, const sy_job_t *job, const char *cluster_id,
                                json_t **body, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    json_t *b = json_object(), *step = json_object(), *hjs = json_object(), *args = json_array(),
           *props = json_array(), *steps = json_array();
    char name[300];
    *body = NULL;
    if (!b || !step || !hjs || !args || !props || !steps) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    const char *jar = json_string_value(json_object_get(spec, "jar"));
    if (!jar || !*jar) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "the command's emr spec has no \"jar\"");
        goto out;
    }
    if (strlen(jar) > EMR_MAX_STRING) {
        rc = too_long("the jar", err);
        goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(spec, "args"), i, v)
    {
        if (json_is_string(v) && (rc = push(args, json_string_value(v), "a spec arg", err)))
            goto out;
    }
    for (i = 0; i < job->n_args; i++)
        if ((rc = push(args, job->args[i], "a job argument", err)) != SY_OK)
            goto out;
    const char *key;
    json_object_foreach((json_t *)json_object_get(spec, "properties"), key, v)
    {
        if (json_is_string(v) &&
            (rc = push_property(props, key, strlen(key), json_string_value(v), err)) != SY_OK)
            goto out;
    }
    for (i = 0; i < job->n_env; i++) {
        const char *eq = strchr(job->env[i], '=');
        if (!eq)
            continue;
        if ((rc = push_property(props, job->env[i], (size_t)(eq - job->env[i]), eq + 1, err)) !=
            SY_OK)
            goto out;
    }
    json_object_set_new(hjs, "Jar", json_string(jar));
    const char *main_class = json_string_value(json_object_get(spec, "main_class"));
    if (main_class && *main_class)
        json_object_set_new(hjs, "MainClass", json_string(main_class));
    json_object_set(hjs, "Args", args);
    if (json_array_size(props))
        json_object_set(hjs, "Properties", props);
    const char *action = json_string_value(json_object_get(spec, "action_on_failure"));
    sy_emr_step_name(job->job_id, name, sizeof(name));
    json_object_set_new(step, "Name", json_string(name));
    json_object_set_new(step, "ActionOnFailure", json_string(action ? action : "CONTINUE"));
    json_object_set(step, "HadoopJarStep", hjs);
    json_array_append(steps, step);
    json_object_set_new(b, "JobFlowId", json_string(cluster_id ? cluster_id : ""));
    json_object_set(b, "Steps", steps);
    *body = b;
    b = NULL; /* now the caller's */
out:
    json_decref(b);
    json_decref(step);
    json_decref(hjs);
    json_decref(args);
    json_decref(props);
    json_decref(steps);
    return rc;
}

static void copy_str(char *dst, size_t size, const json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, size, "%s", s ? s : "");
}

sy_err_code_t sy_emr_parse_steps(const json_t *resp, sy_emr_step_t *out, size_t max, size_t *n,
                                 char *marker, size_t size, sy_err_t *err)
{
    *n = 0;
    if (size)
        marker[0] = '\0';
    json_t *steps = json_object_get(resp, "Steps");
    if (!json_is_array(steps))
        return sy_err_set(err, SY_ERR_JSON, true, "ListSteps answer without a Steps array");
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s)
    {
        if (*n >= max)
            break;
        const char *id = json_string_value(json_object_get(s, "Id"));
        if (!id || !*id)
            continue;
        sy_emr_step_t *st = &out[(*n)++];
        memset(st, 0, sizeof(*st));
        snprintf(st->id, sizeof(st->id), "%s", id);
        copy_str(st->name, sizeof(st->name), json_object_get(s, "Name"));
        json_t *status = json_object_get(s, "Status");
        st->state = sy_emr_step_state_parse(json_string_value(json_object_get(status, "State")));
        json_t *created = json_object_get(json_object_get(status, "Timeline"), "CreationDateTime");
        st->created_at = json_is_number(created) ? json_number_value(created) : 0;
        json_t *fd = json_object_get(status, "FailureDetails");
        copy_str(st->failure_reason, sizeof(st->failure_reason), json_object_get(fd, "Reason"));
        copy_str(st->failure_message, sizeof(st->failure_message), json_object_get(fd, "Message"));
        copy_str(st->failure_log, sizeof(st->failure_log), json_object_get(fd, "LogFile"));
        copy_str(st->state_message, sizeof(st->state_message),
                 json_object_get(json_object_get(status, "StateChangeReason"), "Message"));
    }
    copy_str(marker, size, json_object_get(resp, "Marker"));
    return SY_OK;
}

void sy_emr_apply_step(const sy_emr_step_t *step, sy_job_t *job)
{
    switch (step->state) {
    case SY_EMR_PENDING:
        job->phase = SY_PHASE_PENDING;
        break;
    case SY_EMR_RUNNING:
    case SY_EMR_CANCEL_PENDING:
        job->phase = SY_PHASE_RUNNING;
        break;
    case SY_EMR_COMPLETED:
        sy_job_end(job, SY_JOB_SUCCEEDED, NULL, "step %s completed", step->id);
        break;
    case SY_EMR_CANCELLED:
        sy_job_end(job, SY_JOB_KILLED, "CANCELLED", "step %s was cancelled%s%s", step->id,
                   *step->state_message ? ": " : "", step->state_message);
        break;
    case SY_EMR_FAILED: {
        const char *msg = *step->failure_message ? step->failure_message : step->state_message;
        sy_job_end(job, SY_JOB_FAILED, "STEP_FAILED", "step %s failed%s%s%s%s%s%s", step->id,
                   *step->failure_reason ? ": " : "", step->failure_reason, *msg ? ": " : "", msg,
                   *step->failure_log ? " (log: " : "",
                   *step->failure_log ? step->failure_log : "");
        if (*step->failure_log)
            strncat(job->message, ")", sizeof(job->message) - strlen(job->message) - 1);
        break;
    }
    case SY_EMR_INTERRUPTED:
        sy_job_end(job, SY_JOB_FAILED, "INTERRUPTED", "step %s was interrupted%s%s", step->id,
                   *step->state_message ? ": " : "", step->state_message);
        break;
    case SY_EMR_UNKNOWN:
        break; /* an answer we do not understand: keep what we knew */
    }
}
