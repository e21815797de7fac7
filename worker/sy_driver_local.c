/* sy_driver_local: the "local" backend — runs the command's argv template plus the request's
 * arguments as a child process of the worker (fork + execve, no shell) in its own process
 * group, with the request's environment, in a private working directory per job; streams its
 * stdout and stderr to the log sink while it runs (poll on non-blocking pipes, one fixed
 * buffer per stream, never the whole output in memory); kill = SIGTERM to the process group,
 * SIGKILL after worker.kill.grace.ms.
 *
 * The child gets PR_SET_PDEATHSIG(SIGKILL): if the worker dies, its jobs die with it (nothing
 * keeps running unwatched), and the worker that takes the job over reports it FAILED with
 * failure_reason WORKER_LOST — a local job is never re-run by another worker (see
 * docs/worker.md). When the job's main process exits, whatever is left of its process group is
 * killed too, and output still in the pipes is read for up to DRAIN_MS. */
#include "sy_time.h"
#include "sy_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sy_log.h"

#define DRAIN_MS         5000 /* output read after the main process exited, at most */
#define NO_PIDFD_POLL_MS 50   /* exit checks when pidfd_open is unavailable */
#define BUDGET_POLL_MS   20   /* re-check of the sink's room while it is full */
#define DEFAULT_PATH     "/usr/local/bin:/usr/bin:/bin"

static const char *const stream_names[2] = {"stdout", "stderr"};

typedef struct local_job {
    pid_t pid;
    int pidfd;    /* -1 when unavailable */
    int fd[2];    /* read ends of stdout and stderr; -1 after EOF */
    char *buf[2]; /* coalescing buffers, SY_DRIVER_CHUNK_MAX each (lazily made) */
    size_t len[2];
    long long since[2]; /* when the oldest buffered byte arrived (monotonic ms) */
    bool exited;        /* the main process exited (not reaped yet: its pid stays ours) */
    long long exited_at;
    bool cancelled, sigkilled;
    long long kill_at; /* SIGKILL deadline after the SIGTERM */
    bool reaped;
    char workdir[PATH_MAX];
} local_job_t;

typedef struct local_driver {
    sy_driver_host_t host;
    char base[PATH_MAX];
    char hostname[128];
    char default_path[2048];
    long long grace_ms;
    int linger_ms;
    bool keep_workdir;
    int max_fd;
    struct pollfd *pfds;     /* scratch for poll(), grown as needed */
    int *pfd_job, *pfd_what; /* per pollfd: index into jobs, and 0/1 stream or 2 pidfd */
    size_t pfds_cap;
} local_driver_t;

/* Everything the child needs, prepared before fork (after it only async-signal-safe calls). */
typedef struct spawn {
    const char *path, *workdir;
    char **argv, **envp;
    int devnull, out, err, errp;
    pid_t parent;
    int max_fd;
} spawn_t;

static int worker_limit(const sy_config_t *conf)
{
    long long n = sy_config_get_int(conf, "worker.local.max.concurrent");
    if (n > 0)
        return n > INT_MAX ? INT_MAX : (int)n;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (int)(2 * cpus) : 2;
}

/* ---- working directories --------------------------------------------------------------------- */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
        sy_debug("local", "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static sy_err_code_t mkdirs(const char *path, sy_err_t *err)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return sy_err_set(err, SY_ERR_IO, false, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return sy_err_set(err, SY_ERR_IO, false, "cannot create %s: %s", buf, strerror(errno));
    return SY_OK;
}

static bool job_dir(const local_driver_t *d, const sy_job_t *job, char *buf, size_t size)
{
    const char *id = job->job_id;
    if (!id || !*id || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, ".."))
        return false;
    return (size_t)snprintf(buf, size, "%s/%s.%d", d->base, id, job->attempt) < size;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static void *local_open(const sy_driver_host_t *host, sy_err_t *err)
{
    local_driver_t *d = calloc(1, sizeof(*d));
    if (!d) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    d->host = *host;
    const char *base = sy_config_get(host->conf, "worker.local.workdir");
    if (*base) {
        snprintf(d->base, sizeof(d->base), "%s", base);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(d->base, sizeof(d->base), "%s/switchyard-jobs", tmp && *tmp ? tmp : "/tmp");
    }
    if (d->base[0] != '/') {
        sy_err_set(err, SY_ERR_CONFIG, false, "worker.local.workdir must be an absolute path");
        goto fail;
    }
    if (mkdirs(d->base, err) != SY_OK)
        goto fail;
    if (gethostname(d->hostname, sizeof(d->hostname) - 1) < 0)
        snprintf(d->hostname, sizeof(d->hostname), "localhost");
    const char *path = getenv("PATH");
    snprintf(d->default_path, sizeof(d->default_path), "%s", path && *path ? path : DEFAULT_PATH);
    d->grace_ms = sy_config_get_int(host->conf, "worker.kill.grace.ms");
    d->linger_ms = (int)sy_config_get_int(host->conf, "worker.log.flush.ms");
    d->keep_workdir = sy_config_get_bool(host->conf, "worker.local.keep.workdir");
    struct rlimit rl;
    d->max_fd =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536
            ? (int)rl.rlim_cur
            : 65536;
    return d;
fail:
    free(d);
    return NULL;
}

static void local_close(void *dv)
{
    local_driver_t *d = dv;
    if (!d)
        return;
    free(d->pfds);
    free(d->pfd_job);
    free(d->pfd_what);
    free(d);
}

/* ---- spawning -------------------------------------------------------------------------------- */

/* Sets or replaces NAME=value in the NULL-terminated list env (capacity cap). */
static bool env_put(char **env, size_t *n, size_t cap, char *entry)
{
    if (!entry)
        return false;
    size_t nlen = strcspn(entry, "=");
    for (size_t i = 0; i < *n; i++)
        if (!strncmp(env[i], entry, nlen) && env[i][nlen] == '=') {
            free(env[i]);
            env[i] = entry;
            return true;
        }
    if (*n + 1 >= cap) {
        free(entry);
        return false;
    }
    env[(*n)++] = entry;
    env[*n] = NULL;
    return true;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    if (vasprintf(&s, f, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static void free_strv(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* The job's environment: PATH (the worker's), HOME and PWD (the working directory), then the
 * request's variables (which may replace those), then SWITCHYARD_JOB_ID, SWITCHYARD_ATTEMPT
 * and SWITCHYARD_CLUSTER. Nothing else of the worker's environment (its secrets) is passed. */
static char **build_env(const local_driver_t *d, const sy_job_t *job, const char *workdir)
{
    size_t cap = job->n_env + 8, n = 0;
    char **env = calloc(cap, sizeof(char *));
    bool ok = env && env_put(env, &n, cap, fmt("PATH=%s", d->default_path)) &&
              env_put(env, &n, cap, fmt("HOME=%s", workdir)) &&
              env_put(env, &n, cap, fmt("PWD=%s", workdir));
    for (size_t i = 0; ok && i < job->n_env; i++)
        ok = env_put(env, &n, cap, strdup(job->env[i]));
    ok = ok && env_put(env, &n, cap, fmt("SWITCHYARD_JOB_ID=%s", job->job_id)) &&
         env_put(env, &n, cap, fmt("SWITCHYARD_ATTEMPT=%d", job->attempt)) &&
         env_put(env, &n, cap,
                 fmt("SWITCHYARD_CLUSTER=%s", job->cluster_name ? job->cluster_name : ""));
    if (!ok) {
        free_strv(env);
        return NULL;
    }
    return env;
}

/* argv: the spec's "argv" template, then the request's arguments. */
static sy_err_code_t build_argv(const sy_job_t *job, char ***out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    json_error_t jerr;
    json_t *spec = json_loads(job->command_spec ? job->command_spec : "", 0, &jerr);
    json_t *tmpl = json_object_get(spec, "argv"); /* borrowed */
    size_t n = json_array_size(tmpl), i;
    json_t *item;
    char **argv = NULL;
    *out = NULL;
    if (!json_is_array(tmpl) || n == 0) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false,
                        "the command's local spec has no \"argv\" array: %s",
                        spec ? "expected {\"argv\": [\"/path/prog\", ...]}" : jerr.text);
        goto out;
    }
    if (!(argv = calloc(n + job->n_args + 1, sizeof(char *)))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    json_array_foreach(tmpl, i, item)
    {
        if (!json_is_string(item) || (i == 0 && !*json_string_value(item))) {
            rc = sy_err_set(err, SY_ERR_INVALID_ARG, false,
                            "the command's local spec: argv[%zu] is not a usable string", i);
            goto out;
        }
        if (!(argv[i] = strdup(json_string_value(item)))) {
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
    }
    for (size_t j = 0; j < job->n_args; j++)
        if (!(argv[n + j] = strdup(job->args[j]))) {
            rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
    *out = argv;
    argv = NULL; /* now owned by the caller */
out:
    free_strv(argv);
    json_decref(spec);
    return rc;
}

/* The program to execve: argv0 itself when it holds a '/', else the first executable match in
 * the job's PATH (looked up here so "not found" is a clear failure, not an exit code 127). */
static bool resolve(const char *argv0, char *const *envp, char *buf, size_t size)
{
    if (strchr(argv0, '/')) {
        snprintf(buf, size, "%s", argv0);
        return true;
    }
    const char *path = DEFAULT_PATH;
    for (char *const *e = envp; *e; e++)
        if (!strncmp(*e, "PATH=", 5))
            path = *e + 5;
    while (*path) {
        size_t len = strcspn(path, ":");
        if ((size_t)snprintf(buf, size, "%.*s/%s", (int)len, len ? path : ".", argv0) < size &&
            access(buf, X_OK) == 0)
            return true;
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

/* In the child, between fork and execve: async-signal-safe calls only. Never returns. */
static void child(const spawn_t *s)
{
    int ep = s->errp, e;
    struct sigaction dfl;
    sigset_t none;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&none);
    if (setpgid(0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        goto fail;
    if (getppid() != s->parent) { /* the worker died before PDEATHSIG was armed */
        errno = ESRCH;
        goto fail;
    }
    for (int sig = 1; sig < NSIG; sig++) /* ignored signals (SIGPIPE) would survive execve */
        sigaction(sig, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(s->devnull, 0) < 0 || dup2(s->out, 1) < 0 || dup2(s->err, 2) < 0)
        goto fail;
    if (ep != 3) {
        if (dup3(ep, 3, O_CLOEXEC) < 0)
            goto fail;
        ep = 3;
    }
    if (close_range(4, ~0U, 0) < 0)
        for (int fd = 4; fd < s->max_fd; fd++)
            close(fd);
    if (chdir(s->workdir) < 0)
        goto fail;
    execve(s->path, s->argv, s->envp);
fail:
    e = errno;
    if (write(ep, &e, sizeof(e)) < 0) {
        /* nothing left to report with */
    }
    _exit(127);
}

/* Moves fd above the standard descriptors (a worker started with 0-2 closed), CLOEXEC. */
static int high_fd(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return h;
}

/* "start time" of pid in clock ticks since boot (/proc/<pid>/stat field 22), 0 if unknown. */
static unsigned long long proc_start(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return 0;
    p++;
    for (int field = 3; field < 22 && p; field++) { /* p is before field `field` */
        p = strchr(p + 1, ' ');
    }
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static sy_err_code_t local_submit(void *dv, sy_job_t *job, sy_err_t *err)
{
    local_driver_t *d = dv;
    sy_err_code_t rc = SY_OK;
    char **argv = NULL, **envp = NULL, path[PATH_MAX];
    int out[2] = {-1, -1}, errs[2] = {-1, -1}, errp[2] = {-1, -1}, devnull = -1;
    local_job_t *lj = calloc(1, sizeof(*lj));
    bool made_dir = false;
    if (!lj) {
        rc = sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
        goto out;
    }
    lj->fd[0] = lj->fd[1] = lj->pidfd = -1;
    if (!job_dir(d, job, lj->workdir, sizeof(lj->workdir))) {
        snprintf(job->failure_reason, sizeof(job->failure_reason), "INVALID_JOB_ID");
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "job id unusable as a directory name");
        goto out;
    }
    if ((rc = build_argv(job, &argv, err)) != SY_OK) {
        snprintf(job->failure_reason, sizeof(job->failure_reason), "INVALID_SPEC");
        goto out;
    }
    if (!(envp = build_env(d, job, lj->workdir))) {
        rc = sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
        goto out;
    }
    if (!resolve(argv[0], envp, path, sizeof(path))) {
        snprintf(job->failure_reason, sizeof(job->failure_reason), "EXEC_FAILED");
        rc = sy_err_set(err, SY_ERR_NOT_FOUND, false, "%s: command not found in PATH", argv[0]);
        goto out;
    }
    remove_tree(lj->workdir); /* a leftover of an earlier run of this attempt */
    if (mkdir(lj->workdir, 0700) < 0) {
        rc = sy_err_set(err, SY_ERR_IO, true, "cannot create %s: %s", lj->workdir, strerror(errno));
        goto out;
    }
    made_dir = true;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errs, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        rc = sy_err_set(err, SY_ERR_IO, true, "pipes for %s: %s", job->job_id, strerror(errno));
        goto out;
    }
    out[0] = high_fd(out[0]);
    out[1] = high_fd(out[1]);
    errs[0] = high_fd(errs[0]);
    errs[1] = high_fd(errs[1]);
    errp[0] = high_fd(errp[0]);
    errp[1] = high_fd(errp[1]);
    devnull = high_fd(devnull);
    spawn_t s = {.path = path,
                 .workdir = lj->workdir,
                 .argv = argv,
                 .envp = envp,
                 .devnull = devnull,
                 .out = out[1],
                 .err = errs[1],
                 .errp = errp[1],
                 .parent = getpid(),
                 .max_fd = d->max_fd};
    pid_t pid = fork();
    if (pid < 0) {
        rc = sy_err_set(err, SY_ERR_IO, true, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        child(&s);
    setpgid(pid, pid); /* also here, so a kill right after submit reaches the group */
    close_fd(&out[1]);
    close_fd(&errs[1]);
    close_fd(&errp[1]);
    int e = 0;
    ssize_t n;
    while ((n = read(errp[0], &e, sizeof(e))) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof(e)) { /* execve failed in the child */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        snprintf(job->failure_reason, sizeof(job->failure_reason), "EXEC_FAILED");
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "cannot execute %s: %s", path, strerror(e));
        goto out;
    }
    lj->pid = pid;
    lj->fd[0] = out[0];
    lj->fd[1] = errs[0];
    out[0] = errs[0] = -1; /* now owned by lj */
    fcntl(lj->fd[0], F_SETFL, O_NONBLOCK);
    fcntl(lj->fd[1], F_SETFL, O_NONBLOCK);
    lj->pidfd = pidfd_open(pid, 0);
    snprintf(job->backend_id, sizeof(job->backend_id), "%s:%d:%llu", d->hostname, (int)pid,
             proc_start(pid));
    job->phase = SY_PHASE_RUNNING;
    job->driver_data = lj;
    lj = NULL; /* now owned by the job */
    sy_debug("local", "job %s: started %s as pid %d in %s", job->job_id, path, (int)pid,
             ((local_job_t *)job->driver_data)->workdir);
out:
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&errs[0]);
    close_fd(&errs[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    close_fd(&devnull);
    if (lj && made_dir && !d->keep_workdir)
        remove_tree(lj->workdir);
    free(lj);
    free_strv(argv);
    free_strv(envp);
    return rc;
}

/* ---- output ---------------------------------------------------------------------------------- */

static void flush_stream(local_driver_t *d, sy_job_t *job, local_job_t *lj, int s)
{
    if (lj->len[s]) {
        d->host.log(d->host.opaque, job, stream_names[s], lj->buf[s], lj->len[s]);
        lj->len[s] = 0;
    }
}

/* One read of stream s into its buffer; hands the buffer on when full. EOF closes the pipe. */
static void read_stream(local_driver_t *d, sy_job_t *job, local_job_t *lj, int s, long long now)
{
    if (!lj->buf[s] && !(lj->buf[s] = malloc(SY_DRIVER_CHUNK_MAX)))
        return; /* out of memory: try again next round */
    ssize_t n = read(lj->fd[s], lj->buf[s] + lj->len[s], SY_DRIVER_CHUNK_MAX - lj->len[s]);
    if (n > 0) {
        if (!lj->len[s])
            lj->since[s] = now;
        lj->len[s] += (size_t)n;
        if (lj->len[s] == SY_DRIVER_CHUNK_MAX)
            flush_stream(d, job, lj, s);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        flush_stream(d, job, lj, s);
        close_fd(&lj->fd[s]);
    }
}

/* ---- ending ---------------------------------------------------------------------------------- */

/* Reaps the main process and fills the job's outcome. */
static void finish(local_driver_t *d, sy_job_t *job, local_job_t *lj)
{
    int st = 0;
    for (int s = 0; s < 2; s++) {
        flush_stream(d, job, lj, s);
        close_fd(&lj->fd[s]);
    }
    while (waitpid(lj->pid, &st, 0) < 0 && errno == EINTR)
        ;
    close_fd(&lj->pidfd);
    lj->reaped = true;
    if (WIFEXITED(st)) {
        job->has_exit_code = true;
        job->exit_code = WEXITSTATUS(st);
    }
    if (lj->cancelled) {
        if (WIFSIGNALED(st))
            sy_job_end(job, SY_JOB_KILLED, NULL, "terminated by SIG%s%s",
                       sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?",
                       lj->sigkilled ? " after the grace period" : "");
        else
            sy_job_end(job, SY_JOB_KILLED, NULL, "exited with code %d after SIGTERM",
                       WEXITSTATUS(st));
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        sy_job_end(job, SY_JOB_SUCCEEDED, NULL, "exited with code 0");
    } else if (WIFEXITED(st)) {
        sy_job_end(job, SY_JOB_FAILED, "NON_ZERO_EXIT", "exited with code %d", WEXITSTATUS(st));
    } else {
        char reason[32];
        snprintf(reason, sizeof(reason), "SIGNAL_%d", WTERMSIG(st));
        sy_job_end(job, SY_JOB_FAILED, reason, "killed by signal %d (SIG%s)%s", WTERMSIG(st),
                   sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?",
                   WCOREDUMP(st) ? ", core dumped" : "");
    }
    sy_debug("local", "job %s: pid %d %s", job->job_id, (int)lj->pid, job->message);
}

/* Exit detection without reaping: the zombie keeps the pid (and the process group id) ours, so
 * killing the rest of the group cannot hit a recycled id. */
static void check_exit(local_job_t *lj, long long now)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)lj->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == lj->pid) {
        lj->exited = true;
        lj->exited_at = now;
        kill(-lj->pid, SIGKILL); /* what the job left behind in its group */
    }
}

static void step_job(local_driver_t *d, sy_job_t *job, local_job_t *lj, long long now)
{
    for (int s = 0; s < 2; s++)
        if (lj->len[s] && (now - lj->since[s] >= d->linger_ms || lj->fd[s] < 0))
            flush_stream(d, job, lj, s);
    if (!lj->exited)
        check_exit(lj, now);
    if (!lj->exited && lj->cancelled && !lj->sigkilled && now >= lj->kill_at) {
        sy_info("local", "job %s: still running %lld ms after SIGTERM; sending SIGKILL",
                job->job_id, d->grace_ms);
        kill(-lj->pid, SIGKILL);
        lj->sigkilled = true;
    }
    if (lj->exited && ((lj->fd[0] < 0 && lj->fd[1] < 0) || now - lj->exited_at >= DRAIN_MS))
        finish(d, job, lj);
}

static bool grow_pfds(local_driver_t *d, size_t need)
{
    if (need <= d->pfds_cap)
        return true;
    size_t cap = need * 2;
    struct pollfd *p = realloc(d->pfds, cap * sizeof(*p));
    if (p)
        d->pfds = p;
    int *j = realloc(d->pfd_job, cap * sizeof(int));
    if (j)
        d->pfd_job = j;
    int *w = realloc(d->pfd_what, cap * sizeof(int));
    if (w)
        d->pfd_what = w;
    if (!p || !j || !w)
        return false;
    d->pfds_cap = cap;
    return true;
}

static int min_wait(int current, long long ms)
{
    if (ms < 0)
        ms = 0;
    return ms < current ? (int)ms : current;
}

static sy_err_code_t local_poll(void *dv, sy_job_t *const *jobs, size_t n, int wait_ms,
                                sy_err_t *err)
{
    local_driver_t *d = dv;
    long long now = sy_time_mono_ms();
    int timeout = wait_ms < 0 ? 0 : wait_ms;
    size_t np = 0;
    if (!grow_pfds(d, 1 + 3 * n))
        return sy_err_set(err, SY_ERR_NOMEM, true, "out of memory");
    d->pfds[np] = (struct pollfd){.fd = d->host.wake_fd, .events = POLLIN};
    d->pfd_job[np] = -1;
    d->pfd_what[np++] = -1;
    for (size_t i = 0; i < n; i++) {
        local_job_t *lj = jobs[i]->driver_data;
        if (!lj || lj->reaped)
            continue;
        size_t room = d->host.log_room(d->host.opaque, jobs[i]);
        for (int s = 0; s < 2; s++) {
            if (lj->fd[s] < 0)
                continue;
            if (lj->len[s])
                timeout = min_wait(timeout, lj->since[s] + d->linger_ms - now);
            if (room > 0) {
                d->pfds[np] = (struct pollfd){.fd = lj->fd[s], .events = POLLIN};
                d->pfd_job[np] = (int)i;
                d->pfd_what[np++] = s;
            } else {
                timeout = min_wait(timeout, BUDGET_POLL_MS);
            }
        }
        if (!lj->exited && lj->pidfd >= 0) {
            d->pfds[np] = (struct pollfd){.fd = lj->pidfd, .events = POLLIN};
            d->pfd_job[np] = (int)i;
            d->pfd_what[np++] = 2;
        } else if (!lj->exited) {
            timeout = min_wait(timeout, NO_PIDFD_POLL_MS);
        }
        if (lj->cancelled && !lj->sigkilled && !lj->exited)
            timeout = min_wait(timeout, lj->kill_at - now);
        if (lj->exited)
            timeout = min_wait(timeout, lj->exited_at + DRAIN_MS - now);
    }
    int ready = poll(d->pfds, (nfds_t)np, timeout);
    if (ready < 0 && errno != EINTR)
        return sy_err_set(err, SY_ERR_IO, true, "poll: %s", strerror(errno));
    now = sy_time_mono_ms();
    for (size_t k = 1; ready > 0 && k < np; k++) {
        if (!d->pfds[k].revents || d->pfd_what[k] > 1)
            continue;
        sy_job_t *job = jobs[d->pfd_job[k]];
        read_stream(d, job, job->driver_data, d->pfd_what[k], now);
    }
    for (size_t i = 0; i < n; i++) {
        local_job_t *lj = jobs[i]->driver_data;
        if (lj && !lj->reaped)
            step_job(d, jobs[i], lj, now);
    }
    return SY_OK;
}

/* ---- kill, forget, resume -------------------------------------------------------------------- */

static sy_err_code_t local_cancel(void *dv, sy_job_t *job, sy_err_t *err)
{
    local_driver_t *d = dv;
    local_job_t *lj = job->driver_data;
    if (!lj || lj->exited || lj->cancelled)
        return SY_OK;
    lj->cancelled = true;
    if (d->grace_ms <= 0) {
        kill(-lj->pid, SIGKILL);
        lj->sigkilled = true;
    } else {
        kill(-lj->pid, SIGTERM);
        lj->kill_at = sy_time_mono_ms() + d->grace_ms;
    }
    sy_debug("local", "job %s: SIG%s sent to process group %d", job->job_id,
             lj->sigkilled ? "KILL" : "TERM", (int)lj->pid);
    return SY_OK;
}

static void local_forget(void *dv, sy_job_t *job)
{
    local_driver_t *d = dv;
    local_job_t *lj = job->driver_data;
    if (!lj)
        return;
    if (!lj->reaped) {
        sy_warn("local", "job %s: stopping process group %d (the worker lets go of the job)",
                job->job_id, (int)lj->pid);
        kill(-lj->pid, SIGKILL);
        while (waitpid(lj->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close_fd(&lj->fd[0]);
    close_fd(&lj->fd[1]);
    close_fd(&lj->pidfd);
    free(lj->buf[0]);
    free(lj->buf[1]);
    if (!d->keep_workdir)
        remove_tree(lj->workdir);
    free(lj);
    job->driver_data = NULL;
}

/* A local job cannot be re-attached: its process was a child of the worker that died (and
 * died with it, PR_SET_PDEATHSIG). If it is somehow still alive on this host (same pid and
 * start time), it is stopped, since nobody can report on it any more. */
static sy_err_code_t local_resume(void *dv, sy_job_t *job, sy_err_t *err)
{
    local_driver_t *d = dv;
    char host[128] = "", dir[PATH_MAX];
    int pid = 0;
    unsigned long long start = 0;
    if (sscanf(job->backend_id, "%127[^:]:%d:%llu", host, &pid, &start) == 3 &&
        !strcmp(host, d->hostname) && pid > 1 && start && proc_start(pid) == start) {
        sy_warn("local", "job %s: process %d outlived its worker; killing its process group",
                job->job_id, pid);
        kill(-pid, SIGKILL);
    }
    if (!d->keep_workdir && job_dir(d, job, dir, sizeof(dir)))
        remove_tree(dir);
    sy_job_end(job, SY_JOB_FAILED, "WORKER_LOST",
               "the worker that ran this local job (%s) stopped; local jobs are not re-run",
               *job->backend_id ? job->backend_id : "before its process started");
    return SY_OK;
}

const sy_driver_ops_t sy_driver_local = {
    .kind = "local",
    .host_bound = true,
    .default_max_in_flight = 0,
    .worker_limit = worker_limit,
    .open = local_open,
    .close = local_close,
    .submit = local_submit,
    .resume = local_resume,
    .poll = local_poll,
    .cancel = local_cancel,
    .fetch_logs = NULL,
    .forget = local_forget,
};
