/* sy_regcache: the router's in-memory registry, refreshed by LISTEN/NOTIFY in a thread. */
#include "sy_time.h"
#include "sy_regcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sy_db.h"
#include "sy_log.h"
#include "sy_signal.h"

#define MAX_CLUSTERS_COUNTED 4096

/* A snapshot and its readers. Every snapshot with refs > 0 is on the live list; the cache's own
 * reference counts as one while it is current. */
typedef struct snap_ref {
    sy_registry_snapshot_t *snap;
    int refs;
    struct snap_ref *next;
} snap_ref_t;

typedef struct active_entry {
    char *name;
    long ledger; /* from the last refresh */
    long routed; /* routed by us since then */
} active_entry_t;

struct sy_regcache {
    char *url;
    int poll_ms, active_ms;
    bool want_active;
    pthread_t thread;
    bool started;
    volatile int stop;
    pthread_mutex_t lock;
    pthread_cond_t ready_cond;
    snap_ref_t *current;
    snap_ref_t *live;
    active_entry_t active[MAX_CLUSTERS_COUNTED];
    size_t n_active;
    long loads;
};

static void ref_drop_locked(sy_regcache_t *rc, snap_ref_t *r)
{
    if (--r->refs > 0)
        return;
    for (snap_ref_t **p = &rc->live; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    sy_registry_snapshot_destroy(r->snap);
    free(r);
}

static void swap_in(sy_regcache_t *rc, sy_registry_snapshot_t *snap)
{
    snap_ref_t *r = calloc(1, sizeof(*r));
    if (!r) {
        sy_registry_snapshot_destroy(snap);
        return;
    }
    r->snap = snap;
    r->refs = 1;
    pthread_mutex_lock(&rc->lock);
    snap_ref_t *old = rc->current;
    r->next = rc->live;
    rc->live = r;
    rc->current = r;
    rc->loads++;
    if (old)
        ref_drop_locked(rc, old);
    pthread_cond_broadcast(&rc->ready_cond);
    pthread_mutex_unlock(&rc->lock);
}

const sy_registry_snapshot_t *sy_regcache_acquire(sy_regcache_t *rc)
{
    pthread_mutex_lock(&rc->lock);
    const sy_registry_snapshot_t *s = NULL;
    if (rc->current) {
        rc->current->refs++;
        s = rc->current->snap;
    }
    pthread_mutex_unlock(&rc->lock);
    return s;
}

void sy_regcache_release(sy_regcache_t *rc, const sy_registry_snapshot_t *snap)
{
    if (!snap)
        return;
    pthread_mutex_lock(&rc->lock);
    for (snap_ref_t *r = rc->live; r; r = r->next)
        if (r->snap == snap) {
            ref_drop_locked(rc, r);
            break;
        }
    pthread_mutex_unlock(&rc->lock);
}

long sy_regcache_active(sy_regcache_t *rc, const char *cluster_name)
{
    long n = 0;
    pthread_mutex_lock(&rc->lock);
    for (size_t i = 0; i < rc->n_active; i++)
        if (!strcmp(rc->active[i].name, cluster_name)) {
            n = rc->active[i].ledger + rc->active[i].routed;
            break;
        }
    pthread_mutex_unlock(&rc->lock);
    return n;
}

static active_entry_t *active_entry_locked(sy_regcache_t *rc, const char *name)
{
    for (size_t i = 0; i < rc->n_active; i++)
        if (!strcmp(rc->active[i].name, name))
            return &rc->active[i];
    if (rc->n_active == MAX_CLUSTERS_COUNTED)
        return NULL;
    char *copy = strdup(name);
    if (!copy)
        return NULL;
    active_entry_t *e = &rc->active[rc->n_active++];
    e->name = copy;
    e->ledger = e->routed = 0;
    return e;
}

void sy_regcache_note_routed(sy_regcache_t *rc, const char *cluster_name)
{
    pthread_mutex_lock(&rc->lock);
    active_entry_t *e = active_entry_locked(rc, cluster_name);
    if (e)
        e->routed++;
    pthread_mutex_unlock(&rc->lock);
}

long sy_regcache_loads(sy_regcache_t *rc)
{
    pthread_mutex_lock(&rc->lock);
    long n = rc->loads;
    pthread_mutex_unlock(&rc->lock);
    return n;
}

/* Refreshes in-flight counts from the job ledger (if the ledger table exists yet). */
static sy_err_code_t refresh_active(sy_regcache_t *rc, PGconn *conn, sy_err_t *err)
{
    PGresult *res = NULL;
    sy_err_code_t code =
        sy_db_exec(conn,
                   "SELECT cluster_name, count(*) FROM jobs "
                   "WHERE to_regclass('jobs') IS NOT NULL AND state IN "
                   "('CLAIMED','SUBMITTING','SUBMITTED','RUNNING') GROUP BY cluster_name",
                   0, NULL, &res, err);
    if (code != SY_OK) {
        /* no ledger table yet (42P01): nothing in flight that we can see */
        if (strstr(err->msg, "42P01")) {
            sy_err_clear(err);
            code = SY_OK;
        }
        goto out;
    }
    pthread_mutex_lock(&rc->lock);
    for (size_t i = 0; i < rc->n_active; i++)
        rc->active[i].ledger = rc->active[i].routed = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        active_entry_t *e = active_entry_locked(rc, PQgetvalue(res, i, 0));
        if (e)
            e->ledger = atol(PQgetvalue(res, i, 1));
    }
    pthread_mutex_unlock(&rc->lock);
out:
    PQclear(res);
    return code;
}

static sy_err_code_t load(sy_regcache_t *rc, PGconn *conn, sy_err_t *err)
{
    sy_registry_snapshot_t *snap = NULL;
    if (sy_registry_load(conn, &snap, err) != SY_OK)
        return err->code;
    sy_info("router", "registry loaded: version %lld, %zu clusters, %zu commands", snap->version,
            snap->n_clusters, snap->n_commands);
    swap_in(rc, snap);
    return SY_OK;
}

static void *run(void *arg)
{
    sy_regcache_t *rc = arg;
    PGconn *conn = NULL;
    sy_err_t err = SY_ERR_INIT;
    int backoff_ms = 200;
    bool warned = false;
    long long last_load = 0, last_active = 0;

    while (!rc->stop) {
        if (!conn) {
            if (sy_db_connect(rc->url, 3, &conn, &err) != SY_OK ||
                sy_db_check_version(conn, SY_REGISTRY_SCHEMA_VERSION, &err) != SY_OK ||
                sy_db_listen(conn, SY_REGISTRY_CHANNEL, &err) != SY_OK ||
                load(rc, conn, &err) != SY_OK) {
                if (!warned) {
                    long loads = sy_regcache_loads(rc);
                    if (loads)
                        sy_warn("router",
                                "PostgreSQL unreachable (%s); routing continues on the last good "
                                "registry; retrying",
                                err.msg);
                    else
                        sy_warn("router", "cannot load the registry yet (%s); retrying", err.msg);
                    warned = true;
                }
                sy_db_close(conn);
                conn = NULL;
                for (int slept = 0; slept < backoff_ms && !rc->stop; slept += 50)
                    nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
                backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
                continue;
            }
            if (warned)
                sy_info("router", "PostgreSQL reachable again; registry reloaded");
            warned = false;
            backoff_ms = 200;
            last_load = sy_time_mono_ms();
        }
        int wait = rc->want_active ? rc->active_ms : 1000;
        PGnotify *n = NULL;
        sy_err_code_t code = sy_db_wait_notification(conn, wait, &n, &err);
        if (code == SY_OK) {
            PQfreemem(n);
            while (sy_db_wait_notification(conn, 0, &n, &err) == SY_OK)
                PQfreemem(n); /* coalesce a burst of changes into one reload */
            code = load(rc, conn, &err);
            last_load = sy_time_mono_ms();
        } else if (code == SY_ERR_TIMEOUT) {
            code = SY_OK;
            if (sy_time_mono_ms() - last_load >= rc->poll_ms) {
                code = load(rc, conn, &err);
                last_load = sy_time_mono_ms();
            }
        }
        if (code == SY_OK && rc->want_active && sy_time_mono_ms() - last_active >= rc->active_ms) {
            code = refresh_active(rc, conn, &err);
            last_active = sy_time_mono_ms();
        }
        if (code != SY_OK) {
            sy_warn("router",
                    "registry connection lost (%s); routing continues on the last good "
                    "registry",
                    err.msg);
            warned = true;
            sy_db_close(conn);
            conn = NULL;
        }
    }
    sy_db_close(conn);
    return NULL;
}

sy_regcache_t *sy_regcache_new(const sy_config_t *conf, sy_err_t *err)
{
    sy_regcache_t *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&rc->lock, NULL);
    pthread_cond_init(&rc->ready_cond, NULL);
    rc->url = strdup(sy_config_get(conf, "database.url"));
    rc->poll_ms = (int)sy_config_get_int(conf, "router.registry.poll.ms");
    rc->active_ms = (int)sy_config_get_int(conf, "router.active.refresh.ms");
    rc->want_active = !strcmp(sy_config_get(conf, "router.selector"), "least-active");
    if (!rc->url || !*rc->url) {
        sy_err_set(err, SY_ERR_CONFIG, false, "database.url is not set (SWITCHYARD_DATABASE_URL)");
        goto fail;
    }
    if (pthread_create(&rc->thread, NULL, run, rc) != 0) {
        sy_err_set(err, SY_ERR_INTERNAL, false, "cannot start registry thread");
        goto fail;
    }
    rc->started = true;
    return rc;
fail:
    sy_regcache_destroy(rc);
    return NULL;
}

void sy_regcache_destroy(sy_regcache_t *rc)
{
    if (!rc)
        return;
    rc->stop = 1;
    if (rc->started)
        pthread_join(rc->thread, NULL);
    if (rc->current)
        ref_drop_locked(rc, rc->current);
    for (size_t i = 0; i < rc->n_active; i++)
        free(rc->active[i].name);
    pthread_mutex_destroy(&rc->lock);
    pthread_cond_destroy(&rc->ready_cond);
    free(rc->url);
    free(rc);
}

bool sy_regcache_wait_ready(sy_regcache_t *rc, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&rc->lock);
    while (!rc->current && !sy_signal_stop_requested()) {
        struct timespec step;
        clock_gettime(CLOCK_REALTIME, &step);
        if (step.tv_sec > deadline.tv_sec ||
            (step.tv_sec == deadline.tv_sec && step.tv_nsec >= deadline.tv_nsec))
            break;
        step.tv_nsec += 200 * 1000000L;
        if (step.tv_nsec >= 1000000000L) {
            step.tv_sec++;
            step.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rc->ready_cond, &rc->lock, &step);
    }
    bool ready = rc->current != NULL;
    pthread_mutex_unlock(&rc->lock);
    return ready;
}
