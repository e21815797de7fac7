/* sy_router: the router's consume-transform-produce loop — JobRequests in, RoutedJobs and
 * JobStatus events out, in one Kafka transaction per batch together with the input offsets. */
#ifndef SY_ROUTER_H
#define SY_ROUTER_H

#include "sy_config.h"
#include "sy_err.h"

typedef struct sy_router sy_router_t;

/* Connects everything (Kafka consumer, transactional producer, registry cache, codec) and
 * creates the Switchyard topics that are missing. conf is borrowed and must outlive the router.
 * NULL with err filled on failure. */
sy_router_t *sy_router_new(const sy_config_t *conf, sy_err_t *err);

/* Routes until sy_signal_stop_requested(). Returns SY_OK on a clean stop, or a fatal error
 * (e.g. the producer was fenced by a newer instance with the same transactional.id). */
sy_err_code_t sy_router_run(sy_router_t *r, sy_err_t *err);

void sy_router_destroy(sy_router_t *r);

#endif
