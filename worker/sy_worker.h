/* sy_worker: the worker's main loop — a consumer group on the cluster topics it serves (a list
 * or a pattern), claims in the job ledger, one runner thread per cluster, capacity by pausing a
 * cluster's partitions, offsets committed only once a job's backend id is durable, takeover of
 * the jobs of newly assigned partitions, kill requests from <ns>.control, and the session
 * heartbeat that tells other workers this one is alive. */
#ifndef SY_WORKER_H
#define SY_WORKER_H

#include "sy_config.h"
#include "sy_err.h"

typedef struct sy_worker sy_worker_t;

/* Connects everything (ledger, Kafka consumer and producer, the control topic reader),
 * registers this worker's session in the ledger and creates the Switchyard topics that are
 * missing. conf is borrowed and must outlive the worker. NULL with err filled on failure. */
sy_worker_t *sy_worker_new(const sy_config_t *conf, sy_err_t *err);

/* Works until sy_signal_stop_requested(), then stops cleanly: stops consuming (remote jobs are
 * left for the next owner), gives running local jobs worker.shutdown.grace.ms to finish,
 * cancels the rest (they end FAILED, WORKER_STOPPED), publishes what is pending and leaves the
 * roster. Returns SY_OK on a clean stop, or a fatal error. */
sy_err_code_t sy_worker_run(sy_worker_t *w, sy_err_t *err);

/* NULL-safe. */
void sy_worker_destroy(sy_worker_t *w);

#endif
