/* cmd_submit: switchyard submit | status | logs | kill — the job commands, on sy_client. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sy_time.h"
#include "cli.h"
#include "sy_client.h"
#include "sy_log.h"
#include "sy_signal.h"

#define DEFAULT_KILL_GRACE_MS 30000

/* ---- errors and exit codes ------------------------------------------------------------------ */

/* The exit code for a library error (docs/cli.md "Exit codes"). */
static int exit_for_error(const sy_err_t *e)
{
    switch (e->code) {
    case SY_ERR_INVALID_ARG:
    case SY_ERR_CONFIG:
        return SY_EXIT_USAGE;
    case SY_ERR_NOT_FOUND:
        return SY_EXIT_NOT_FOUND;
    case SY_ERR_TIMEOUT:
        return SY_EXIT_UNAVAILABLE;
    case SY_ERR_AUTH:
        return SY_EXIT_REFUSED;
    case SY_ERR_REGISTRY:
        return e->retriable ? SY_EXIT_REGISTRY_UNAVAILABLE : SY_EXIT_ERROR;
    default:
        return SY_EXIT_ERROR;
    }
}

/* The exit code for how a job ended. */
static int exit_for_state(const char *state)
{
    if (!strcmp(state, "SUCCEEDED"))
        return SY_EXIT_OK;
    if (!strcmp(state, "FAILED"))
        return SY_EXIT_JOB_FAILED;
    if (!strcmp(state, "KILLED"))
        return SY_EXIT_JOB_KILLED;
    if (!strcmp(state, "INVALID"))
        return SY_EXIT_JOB_INVALID;
    return SY_EXIT_ERROR;
}

static int fail(const char *cmd, const sy_err_t *e)
{
    fprintf(stderr, "switchyard %s: %s\n", cmd, e->msg);
    return exit_for_error(e);
}

static int usage_error(const char *cmd, const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "switchyard %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: %s", usage);
    return SY_EXIT_USAGE;
}

/* getopt_long's complaint for the option at argv[optind - 1]. */
static int bad_option(const char *cmd, const char *usage, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    return usage_error(cmd, usage, c == ':' ? "option %s needs a value" : "unknown option %s", arg);
}

static long long parse_duration(const char *s)
{
    return s ? sy_config_parse_duration_ms(s) : -1;
}

/* ---- printing events --------------------------------------------------------------------------
 */

typedef struct printer {
    const char *cmd;
    const char *job_id;
    bool json;
    bool status_lines;      /* print status changes (to stderr, or as JSON lines) */
    bool logs;              /* print log chunks */
    long long submitted_at; /* submit --wait: our request's submitted_at */
    sy_client_t *client;
    /* --kill-on-interrupt */
    bool kill_on_interrupt;
    bool kill_sent, kill_failed;
    long long kill_grace_ms, kill_deadline;
    /* status: the latest event that is not DUPLICATE */
    json_t *latest;
    int failures;
} printer_t;

static void json_line(json_t *obj)
{
    if (obj) {
        json_dumpf(obj, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        fflush(stdout);
        json_decref(obj);
    }
}

static char *base64(const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static void print_status_text(const sy_client_status_t *s, long long our_submission)
{
    fprintf(stderr, "switchyard: job %s %s", s->job_id, s->status);
    if (s->cluster)
        fprintf(stderr, " cluster=%s", s->cluster);
    if (s->command)
        fprintf(stderr, " command=%s", s->command);
    if (s->backend_id)
        fprintf(stderr, " backend_id=%s", s->backend_id);
    if (s->attempt > 1)
        fprintf(stderr, " attempt=%d", s->attempt);
    if (s->has_exit_code)
        fprintf(stderr, " exit_code=%d", s->exit_code);
    if (s->failure_reason)
        fprintf(stderr, " failure_reason=%s", s->failure_reason);
    if (s->message)
        fprintf(stderr, ": %s", s->message);
    if (!strcmp(s->status, "DUPLICATE") && our_submission && s->submitted_at == our_submission)
        fprintf(stderr, " (this submission; following the run already routed)");
    if (s->log_uri)
        fprintf(stderr, " (logs: %s)", s->log_uri);
    fputc('\n', stderr);
}

static int on_status(void *opaque, const sy_client_status_t *s)
{
    printer_t *p = opaque;
    if (strcmp(s->status, "DUPLICATE")) {
        sy_err_t e = SY_ERR_INIT;
        json_t *j = sy_codec_to_json(s->record, &e);
        if (j) {
            json_decref(p->latest);
            p->latest = j;
        }
    }
    if (!p->status_lines)
        return 0;
    if (!p->json) {
        print_status_text(s, p->submitted_at);
        return 0;
    }
    sy_err_t e = SY_ERR_INIT;
    json_t *j = sy_codec_to_json(s->record, &e);
    if (j) {
        json_object_set_new(j, "type", json_string("status"));
        json_line(j);
    }
    return 0;
}

static int on_log(void *opaque, const sy_client_log_t *l)
{
    printer_t *p = opaque;
    if (!p->logs)
        return 0;
    if (!p->json) {
        FILE *to = !strcmp(l->stream, "stdout") ? stdout : stderr;
        if (fwrite(l->chunk, 1, l->len, to) != l->len)
            p->failures++;
        fflush(to);
        return 0;
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:i}", "type", "log", "job_id", l->job_id, "stream",
                          l->stream, "offset", (json_int_t)l->offset, "attempt", l->attempt);
    json_t *text = json_stringn(l->chunk, l->len); /* NULL when not UTF-8 */
    if (j && text) {
        json_object_set_new(j, "data", text);
    } else if (j) {
        char *b = base64(l->chunk, l->len);
        json_object_set_new(j, "data_base64", json_string(b ? b : ""));
        free(b);
    }
    json_line(j);
    return 0;
}

/* Polled by follow: on SIGINT/SIGTERM stop — or with --kill-on-interrupt, send the KILL first
 * and keep following (up to the grace period) so the KILLED status is seen. A second signal
 * ends the process at once (sy_signal restores the default action). */
static bool wait_cancelled(void *opaque)
{
    printer_t *p = opaque;
    if (!sy_signal_stop_requested())
        return false;
    if (!p->kill_on_interrupt)
        return true;
    if (!p->kill_sent) {
        int sig = sy_signal_which();
        char reason[96];
        sy_err_t e = SY_ERR_INIT;
        p->kill_sent = true;
        snprintf(reason, sizeof(reason), "switchyard submit --kill-on-interrupt: %s",
                 sig ? strsignal(sig) : "interrupted");
        fprintf(stderr, "switchyard: %s: killing job %s\n", sig ? strsignal(sig) : "interrupted",
                p->job_id);
        if (sy_client_kill(p->client, p->job_id, reason, NULL, &e) != SY_OK) {
            fprintf(stderr, "switchyard: could not send the kill: %s\n", e.msg);
            p->kill_failed = true;
            return true;
        }
        p->kill_deadline = sy_time_mono_ms() + p->kill_grace_ms;
        return false;
    }
    return sy_time_mono_ms() >= p->kill_deadline;
}

/* Turns a follow's outcome into messages and an exit code. */
static int follow_exit(printer_t *p, const sy_client_outcome_t *o, long long wait_ms)
{
    int rc = SY_EXIT_ERROR;
    const char *why = "";
    int sig = sy_signal_which();
    switch (o->end) {
    case SY_CLIENT_END_TERMINAL:
    case SY_CLIENT_END_CAUGHT_UP:
        rc = exit_for_state(o->status);
        break;
    case SY_CLIENT_END_DEADLINE:
        rc = SY_EXIT_WAIT_TIMEOUT;
        fprintf(stderr,
                "switchyard: gave up waiting after %lld ms (--wait-timeout); job %s is %s and "
                "keeps running (follow it: switchyard logs -f %s)\n",
                wait_ms, p->job_id, *o->status ? o->status : "not routed yet", p->job_id);
        why = "wait timed out";
        break;
    case SY_CLIENT_END_CANCELLED:
        rc = SY_EXIT_INTERRUPTED + (sig ? sig : 2);
        if (p->kill_sent && !p->kill_failed)
            fprintf(stderr, "switchyard: KILL sent; job %s did not report KILLED within %lld ms\n",
                    p->job_id, p->kill_grace_ms);
        else if (!p->kill_sent)
            fprintf(stderr,
                    "switchyard: interrupted; job %s keeps running (follow it: switchyard logs -f "
                    "%s; stop it: switchyard kill %s)\n",
                    p->job_id, p->job_id, p->job_id);
        why = "interrupted";
        break;
    case SY_CLIENT_END_STOPPED:
        break;
    }
    if (p->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:i}", "type", "result", "job_id", p->job_id,
                              "status", o->status, "switchyard_exit", rc);
        if (j) {
            json_object_set_new(j, "exit_code",
                                o->exit_code >= 0 ? json_integer(o->exit_code) : json_null());
            json_object_set_new(j, "message", json_string(*why ? why : o->message));
            json_object_set_new(j, "duplicate", json_boolean(o->duplicate));
        }
        json_line(j);
    }
    if (p->failures)
        fprintf(stderr, "switchyard: %d log chunk(s) could not be written\n", p->failures);
    return rc;
}

/* ---- submit -----------------------------------------------------------------------------------
 */

static const char SUBMIT_USAGE[] =
    "switchyard submit --cluster-tags TAG[,TAG...] [--cluster-tags TAG,... (fallback)]...\n"
    "                  --command-tags TAG[,TAG...] [--name N] [--job-id ID] [--user U]\n"
    "                  [--grouping G] [--grouping-instance I] [--timeout DURATION]\n"
    "                  [--env K=V]... [--meta K=V]... [--json]\n"
    "                  [--wait [--wait-timeout DURATION] [--kill-on-interrupt]\n"
    "                   [--kill-grace DURATION] [--lookback DURATION]] [--] ARGS...\n"
    "Prints the job id. With --wait, streams the job's logs (stdout/stderr) and status changes\n"
    "(stderr) and exits with the job's outcome: 0 SUCCEEDED, 10 FAILED, 11 KILLED, 12 INVALID,\n"
    "13 --wait-timeout passed. See docs/cli.md.\n";

/* What the command line gave; strings point into argv or into `owned`. */
typedef struct submit_args {
    sy_client_job_t job;
    sy_client_criterion_t *crit;
    sy_client_kv_t *env, *meta;
    char **owned; /* strdup'd copies to free */
    size_t n_owned;
    bool command_given, wait, json, kill_on_interrupt;
    long long wait_timeout_ms, kill_grace_ms, lookback_ms;
} submit_args_t;

static char *own(submit_args_t *a, const char *s)
{
    char *c = strdup(s);
    if (c)
        a->owned[a->n_owned++] = c;
    return c;
}

/* "a:b,c:d" into a criterion; NULL on an empty element. */
static const char *split_tags(submit_args_t *a, const char *arg, sy_client_criterion_t *c)
{
    size_t n = 1;
    for (const char *q = arg; *q; q++)
        n += *q == ',';
    char *copy = own(a, arg);
    const char **tags = copy ? calloc(n, sizeof(*tags)) : NULL;
    if (!tags)
        return "out of memory";
    a->owned[a->n_owned++] = (char *)tags;
    char *save = NULL, *t;
    size_t i = 0;
    for (t = copy; t; t = save) {
        save = strchr(t, ',');
        if (save)
            *save++ = '\0';
        if (!*t)
            return "empty tag in \"%s\" (tags are separated by single commas)";
        tags[i++] = t;
    }
    c->tags = tags;
    c->n_tags = i;
    return NULL;
}

static const char *split_kv(submit_args_t *a, const char *arg, sy_client_kv_t *kv)
{
    char *copy = own(a, arg);
    if (!copy)
        return "out of memory";
    char *eq = strchr(copy, '=');
    if (!eq || eq == copy)
        return "\"%s\" is not KEY=VALUE";
    *eq = '\0';
    kv->key = copy;
    kv->value = eq + 1;
    return NULL;
}

static void submit_args_free(submit_args_t *a)
{
    for (size_t i = 0; i < a->n_owned; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->crit);
    free(a->env);
    free(a->meta);
}

enum {
    OPT_CLUSTER_TAGS = 1000,
    OPT_COMMAND_TAGS,
    OPT_NAME,
    OPT_JOB_ID,
    OPT_USER,
    OPT_GROUPING,
    OPT_GROUPING_INSTANCE,
    OPT_TIMEOUT,
    OPT_ENV,
    OPT_META,
    OPT_WAIT,
    OPT_WAIT_TIMEOUT,
    OPT_KILL_ON_INTERRUPT,
    OPT_KILL_GRACE,
    OPT_LOOKBACK,
    OPT_JSON,
    OPT_REASON,
    OPT_FORCE,
};

static int parse_submit(int argc, char **argv, submit_args_t *a)
{
    static const struct option opts[] = {
        {"cluster-tags", required_argument, NULL, OPT_CLUSTER_TAGS},
        {"command-tags", required_argument, NULL, OPT_COMMAND_TAGS},
        {"name", required_argument, NULL, OPT_NAME},
        {"job-id", required_argument, NULL, OPT_JOB_ID},
        {"user", required_argument, NULL, OPT_USER},
        {"grouping", required_argument, NULL, OPT_GROUPING},
        {"grouping-instance", required_argument, NULL, OPT_GROUPING_INSTANCE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"env", required_argument, NULL, OPT_ENV},
        {"meta", required_argument, NULL, OPT_META},
        {"wait", no_argument, NULL, OPT_WAIT},
        {"wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT},
        {"kill-on-interrupt", no_argument, NULL, OPT_KILL_ON_INTERRUPT},
        {"kill-grace", required_argument, NULL, OPT_KILL_GRACE},
        {"lookback", required_argument, NULL, OPT_LOOKBACK},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    size_t cap = (size_t)argc + 1;
    a->crit = calloc(cap, sizeof(*a->crit));
    a->env = calloc(cap, sizeof(*a->env));
    a->meta = calloc(cap, sizeof(*a->meta));
    a->owned = calloc(cap * 2, sizeof(*a->owned));
    a->kill_grace_ms = DEFAULT_KILL_GRACE_MS;
    if (!a->crit || !a->env || !a->meta || !a->owned) {
        fprintf(stderr, "switchyard submit: out of memory\n");
        return SY_EXIT_ERROR;
    }
    a->job.cluster_criteria = a->crit;
    a->job.env = a->env;
    a->job.meta = a->meta;
    optind = 0; /* GNU: start over (main may have used getopt) */
    opterr = 0;
    int c;
    const char *bad = NULL, *bad_arg = optarg;
    /* "+": stop at the first argument that is not an option, so ARGS need no "--" */
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        bad_arg = optarg;
        switch (c) {
        case OPT_CLUSTER_TAGS:
            bad = split_tags(a, optarg, &a->crit[a->job.n_cluster_criteria++]);
            break;
        case OPT_COMMAND_TAGS:
            if (a->command_given)
                return usage_error("submit", SUBMIT_USAGE,
                                   "--command-tags given twice; put all of the command's tags "
                                   "in one comma-separated list%s",
                                   "");
            a->command_given = true;
            bad = split_tags(a, optarg, &a->job.command_criterion);
            break;
        case OPT_NAME:
            a->job.name = optarg;
            break;
        case OPT_JOB_ID:
            a->job.job_id = optarg;
            break;
        case OPT_USER:
            a->job.user = optarg;
            break;
        case OPT_GROUPING:
            a->job.grouping = optarg;
            break;
        case OPT_GROUPING_INSTANCE:
            a->job.grouping_instance = optarg;
            break;
        case OPT_TIMEOUT:
            if ((a->job.timeout_ms = parse_duration(optarg)) <= 0)
                bad = "--timeout \"%s\" is not a positive duration (e.g. 90m, 2h, 3600s)";
            break;
        case OPT_ENV:
            bad = split_kv(a, optarg, &a->env[a->job.n_env++]);
            break;
        case OPT_META:
            bad = split_kv(a, optarg, &a->meta[a->job.n_meta++]);
            break;
        case OPT_WAIT:
            a->wait = true;
            break;
        case OPT_WAIT_TIMEOUT:
            if ((a->wait_timeout_ms = parse_duration(optarg)) <= 0)
                bad = "--wait-timeout \"%s\" is not a positive duration";
            break;
        case OPT_KILL_ON_INTERRUPT:
            a->kill_on_interrupt = true;
            break;
        case OPT_KILL_GRACE:
            if ((a->kill_grace_ms = parse_duration(optarg)) < 0)
                bad = "--kill-grace \"%s\" is not a duration";
            break;
        case OPT_LOOKBACK:
            if ((a->lookback_ms = parse_duration(optarg)) <= 0)
                bad = "--lookback \"%s\" is not a positive duration";
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case 'h':
            fputs(SUBMIT_USAGE, stdout);
            return -1;
        default:
            return bad_option("submit", SUBMIT_USAGE, c, argv);
        }
        if (bad)
            return usage_error("submit", SUBMIT_USAGE, bad, bad_arg);
    }
    if (optind < argc && !strcmp(argv[optind], "--"))
        optind++;
    a->job.args = (const char *const *)argv + optind;
    a->job.n_args = (size_t)(argc - optind);
    if (a->job.n_cluster_criteria == 0)
        return usage_error("submit", SUBMIT_USAGE, "--cluster-tags is required%s", "");
    if (!a->command_given)
        return usage_error("submit", SUBMIT_USAGE, "--command-tags is required%s", "");
    if ((a->kill_on_interrupt || a->wait_timeout_ms) && !a->wait)
        return usage_error("submit", SUBMIT_USAGE,
                           "--kill-on-interrupt and --wait-timeout need --wait%s", "");
    return 0;
}

int sy_cmd_submit(sy_config_t *conf, int argc, char **argv)
{
    submit_args_t a = {0};
    sy_client_t *client = NULL;
    sy_err_t err = SY_ERR_INIT;
    sy_client_receipt_t r = {0};
    printer_t p = {.cmd = "submit"};
    int rc = parse_submit(argc, argv, &a);
    if (rc) {
        rc = rc < 0 ? SY_EXIT_OK : rc;
        goto out;
    }
    if (sy_client_job_check(&a.job, &err) != SY_OK) {
        rc = usage_error("submit", SUBMIT_USAGE, "%s", err.msg);
        goto out;
    }
    if (!(client = sy_client_new(conf, &err))) {
        rc = fail("submit", &err);
        goto out;
    }
    if (sy_client_submit(client, &a.job, &r, &err) != SY_OK) {
        /* "not found" here is the schema (auto.register off), not a job */
        rc = err.code == SY_ERR_NOT_FOUND ? (fail("submit", &err), SY_EXIT_ERROR)
                                          : fail("submit", &err);
        goto out;
    }
    if (a.json) {
        json_t *j = json_pack("{s:s, s:I, s:i, s:I}", "job_id", r.job_id, "submitted_at",
                              (json_int_t)r.submitted_at, "partition", r.partition, "offset",
                              (json_int_t)r.offset);
        if (j && a.wait)
            json_object_set_new(j, "type", json_string("submitted"));
        json_line(j);
    } else {
        printf("%s\n", r.job_id);
        fflush(stdout);
    }
    if (!a.wait) {
        rc = SY_EXIT_OK;
        goto out;
    }

    p.job_id = r.job_id;
    p.submitted_at = r.submitted_at;
    p.json = a.json;
    p.status_lines = p.logs = true;
    p.client = client;
    p.kill_on_interrupt = a.kill_on_interrupt;
    p.kill_grace_ms = a.kill_grace_ms;
    /* A caller-chosen id may have run before (a retried Airflow task): read its history back
     * to the lookback so that a DUPLICATE answer re-attaches to that run. A fresh id cannot
     * have a history. */
    bool chosen = a.job.job_id && *a.job.job_id;
    sy_client_follow_opts_t fo = {
        .from_ms = chosen ? 0 : r.submitted_at,
        .lookback_ms = a.lookback_ms,
        .submitted_at = r.submitted_at,
        .deadline_ms = a.wait_timeout_ms ? sy_time_mono_ms() + a.wait_timeout_ms : 0,
        .logs = true,
        .on_status = on_status,
        .on_log = on_log,
        .cancelled = wait_cancelled,
        .opaque = &p,
    };
    sy_client_outcome_t o;
    if (sy_client_follow(client, r.job_id, &fo, &o, &err) != SY_OK) {
        rc = fail("submit", &err);
        goto out;
    }
    rc = follow_exit(&p, &o, a.wait_timeout_ms);
out:
    json_decref(p.latest);
    sy_client_destroy(client);
    submit_args_free(&a);
    return rc;
}

/* ---- status, logs, kill -------------------------------------------------------------------------
 */

static const char STATUS_USAGE[] =
    "switchyard status JOB_ID [--lookback DURATION] [--json]\n"
    "Prints the job's latest state (exit 0), or exits 4 when no job with that id has a status "
    "event\nwithin the lookback (default 7d).\n";
static const char LOGS_USAGE[] =
    "switchyard logs JOB_ID [-f|--follow] [--wait-timeout DURATION] [--lookback DURATION] "
    "[--json]\n"
    "Prints the job's output so far (stream stdout to stdout, every other stream to stderr);\n"
    "-f follows it to the job's end and exits with its outcome like submit --wait.\n";
static const char KILL_USAGE[] = "switchyard kill JOB_ID [--reason R] [--force] [--lookback "
                                 "DURATION] [--json]\n"
                                 "Asks the worker running the job to cancel it (it ends "
                                 "KILLED). Exits 4 when the job is unknown\n(--force: send the "
                                 "kill without looking the job up).\n";

typedef struct job_args {
    const char *job_id, *reason;
    bool follow, json, force;
    long long lookback_ms, wait_timeout_ms;
} job_args_t;

/* Options of status / logs / kill, and exactly one JOB_ID. */
static int parse_job_args(const char *cmd, const char *usage, int argc, char **argv, job_args_t *a)
{
    static const struct option opts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"lookback", required_argument, NULL, OPT_LOOKBACK},
        {"wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"reason", required_argument, NULL, OPT_REASON},
        {"force", no_argument, NULL, OPT_FORCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool is_logs = !strcmp(cmd, "logs"), is_kill = !strcmp(cmd, "kill");
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (!is_logs)
                return bad_option(cmd, usage, '?', argv);
            a->follow = true;
            break;
        case OPT_LOOKBACK:
            if ((a->lookback_ms = parse_duration(optarg)) <= 0)
                return usage_error(cmd, usage, "--lookback \"%s\" is not a positive duration",
                                   optarg);
            break;
        case OPT_WAIT_TIMEOUT:
            if (!is_logs)
                return bad_option(cmd, usage, '?', argv);
            if ((a->wait_timeout_ms = parse_duration(optarg)) <= 0)
                return usage_error(cmd, usage, "--wait-timeout \"%s\" is not a positive duration",
                                   optarg);
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_REASON:
        case OPT_FORCE:
            if (!is_kill)
                return bad_option(cmd, usage, '?', argv);
            if (c == OPT_REASON)
                a->reason = optarg;
            else
                a->force = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return bad_option(cmd, usage, c, argv);
        }
    }
    if (optind != argc - 1)
        return usage_error(cmd, usage, "expected exactly one JOB_ID%s", "");
    a->job_id = argv[optind];
    sy_err_t e = SY_ERR_INIT;
    if (!sy_client_job_id_valid(a->job_id, &e))
        return usage_error(cmd, usage, "%s", e.msg);
    return 0;
}

static void print_latest_text(json_t *st)
{
    static const char *const keys[] = {"job_id",     "status",  "cluster",    "command",
                                       "backend_id", "attempt", "exit_code",  "failure_reason",
                                       "message",    "log_uri", "emitted_at", "submitted_at",
                                       "emitter"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(st, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (json_is_string(v)) {
            printf("%-15s %s\n", keys[i], json_string_value(v));
        } else if (json_is_integer(v) && strstr(keys[i], "_at")) {
            char iso[32];
            long long ms = (long long)json_integer_value(v);
            time_t secs = (time_t)(ms / 1000);
            struct tm tm;
            gmtime_r(&secs, &tm);
            strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
            printf("%-15s %s.%03lldZ\n", keys[i], iso, ms % 1000);
        } else if (json_is_integer(v)) {
            printf("%-15s %lld\n", keys[i], (long long)json_integer_value(v));
        }
    }
}

int sy_cmd_status(sy_config_t *conf, int argc, char **argv)
{
    job_args_t a = {0};
    sy_err_t err = SY_ERR_INIT;
    sy_client_t *client = NULL;
    printer_t p = {.cmd = "status"};
    int rc = parse_job_args("status", STATUS_USAGE, argc, argv, &a);
    if (rc)
        return rc < 0 ? SY_EXIT_OK : rc;
    if (!(client = sy_client_new(conf, &err))) {
        rc = fail("status", &err);
        goto out;
    }
    sy_client_follow_opts_t fo = {.lookback_ms = a.lookback_ms,
                                  .until_caught_up = true,
                                  .on_status = on_status,
                                  .opaque = &p};
    sy_client_outcome_t o;
    if (sy_client_follow(client, a.job_id, &fo, &o, &err) != SY_OK) {
        rc = fail("status", &err);
        goto out;
    }
    if (!p.latest) { /* cannot happen: a run has at least one event that is not DUPLICATE */
        fprintf(stderr, "switchyard status: job %s: no status to show\n", a.job_id);
        rc = SY_EXIT_NOT_FOUND;
        goto out;
    }
    if (a.json)
        json_line(json_incref(p.latest));
    else
        print_latest_text(p.latest);
    rc = SY_EXIT_OK;
out:
    json_decref(p.latest);
    sy_client_destroy(client);
    return rc;
}

int sy_cmd_logs(sy_config_t *conf, int argc, char **argv)
{
    job_args_t a = {0};
    sy_err_t err = SY_ERR_INIT;
    sy_client_t *client = NULL;
    printer_t p = {.cmd = "logs"};
    int rc = parse_job_args("logs", LOGS_USAGE, argc, argv, &a);
    if (rc)
        return rc < 0 ? SY_EXIT_OK : rc;
    if (a.wait_timeout_ms && !a.follow)
        return usage_error("logs", LOGS_USAGE, "--wait-timeout needs -f%s", "");
    if (!(client = sy_client_new(conf, &err))) {
        rc = fail("logs", &err);
        goto out;
    }
    p.job_id = a.job_id;
    p.json = a.json;
    p.logs = true;
    p.status_lines = a.follow;
    sy_client_follow_opts_t fo = {
        .lookback_ms = a.lookback_ms,
        .deadline_ms = a.wait_timeout_ms ? sy_time_mono_ms() + a.wait_timeout_ms : 0,
        .logs = true,
        .until_caught_up = !a.follow,
        .on_status = on_status,
        .on_log = on_log,
        .cancelled = wait_cancelled,
        .opaque = &p,
    };
    sy_client_outcome_t o;
    if (sy_client_follow(client, a.job_id, &fo, &o, &err) != SY_OK) {
        rc = fail("logs", &err);
        goto out;
    }
    if (!a.follow) {
        rc =
            o.end == SY_CLIENT_END_CANCELLED ? SY_EXIT_INTERRUPTED + sy_signal_which() : SY_EXIT_OK;
        goto out;
    }
    rc = follow_exit(&p, &o, a.wait_timeout_ms);
out:
    json_decref(p.latest);
    sy_client_destroy(client);
    return rc;
}

int sy_cmd_kill(sy_config_t *conf, int argc, char **argv)
{
    job_args_t a = {0};
    sy_err_t err = SY_ERR_INIT;
    sy_client_t *client = NULL;
    printer_t p = {.cmd = "kill"};
    const char *outcome = "requested";
    int rc = parse_job_args("kill", KILL_USAGE, argc, argv, &a);
    if (rc)
        return rc < 0 ? SY_EXIT_OK : rc;
    if (!(client = sy_client_new(conf, &err))) {
        rc = fail("kill", &err);
        goto out;
    }
    if (!a.force) {
        sy_client_follow_opts_t fo = {.lookback_ms = a.lookback_ms,
                                      .until_caught_up = true,
                                      .on_status = on_status,
                                      .opaque = &p};
        sy_client_outcome_t o;
        if (sy_client_follow(client, a.job_id, &fo, &o, &err) != SY_OK) {
            rc = fail("kill", &err);
            goto out;
        }
        if (sy_client_state_terminal(o.status)) {
            fprintf(stderr, "switchyard kill: job %s already ended %s; nothing to kill\n", a.job_id,
                    o.status);
            outcome = "already-ended";
        }
    }
    if (!strcmp(outcome, "requested") &&
        sy_client_kill(client, a.job_id, a.reason, NULL, &err) != SY_OK) {
        rc = fail("kill", &err);
        goto out;
    }
    if (a.json)
        json_line(json_pack("{s:s, s:s}", "job_id", a.job_id, "kill", outcome));
    else if (!strcmp(outcome, "requested"))
        printf("kill requested for job %s\n", a.job_id);
    rc = SY_EXIT_OK;
out:
    json_decref(p.latest);
    sy_client_destroy(client);
    return rc;
}
