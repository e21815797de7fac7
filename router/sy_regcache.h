/* sy_regcache: the router's in-memory copy of the cluster/command registry, kept fresh by a
 * background thread (LISTEN switchyard_registry + a periodic safety reload), plus the jobs in
 * flight per cluster for the least-active selector. Routing never waits on the database: when
 * PostgreSQL is unreachable the last good snapshot stays in use and the thread says so. */
#ifndef SY_REGCACHE_H
#define SY_REGCACHE_H

#include <stdbool.h>

#include "sy_config.h"
#include "sy_err.h"
#include "sy_registry.h"

typedef struct sy_regcache sy_regcache_t;

/* Starts the thread; it connects to database.url on its own. Returns NULL on allocation or
 * thread failure. */
sy_regcache_t *sy_regcache_new(const sy_config_t *conf, sy_err_t *err);
/* Stops the thread and frees everything. Snapshots must have been released. NULL is a no-op. */
void sy_regcache_destroy(sy_regcache_t *rc);

/* Waits until a first snapshot is loaded (or timeout_ms passes, or stop is requested):
 * true if one is there. */
bool sy_regcache_wait_ready(sy_regcache_t *rc, int timeout_ms);

/* The current snapshot (NULL before the first load). Borrowed: valid until the matching
 * sy_regcache_release, even if a newer one is swapped in meanwhile. */
const sy_registry_snapshot_t *sy_regcache_acquire(sy_regcache_t *rc);
void sy_regcache_release(sy_regcache_t *rc, const sy_registry_snapshot_t *snap);

/* Jobs in flight on cluster_name: the ledger's count at the last refresh (router.active.refresh.ms)
 * plus what this router routed there since. */
long sy_regcache_active(sy_regcache_t *rc, const char *cluster_name);
/* Records one job routed to cluster_name (until the next ledger refresh). */
void sy_regcache_note_routed(sy_regcache_t *rc, const char *cluster_name);

/* Number of successful loads so far (tests and logs). */
long sy_regcache_loads(sy_regcache_t *rc);

#endif
