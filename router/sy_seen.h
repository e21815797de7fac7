/* sy_seen: the set of job ids a router has already routed, per requests partition — the
 * router's duplicate guard. Rebuilt from the compacted changelog topic <ns>.router.seen on
 * partition assignment; every routed job id is added to that changelog inside the same Kafka
 * transaction as the routing output, so set and output never disagree. */
#ifndef SY_SEEN_H
#define SY_SEEN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sy_seen sy_seen_t;

sy_seen_t *sy_seen_new(void);
void sy_seen_destroy(sy_seen_t *s);
/* Adds job_id (copied). Returns true if it was new, false if already present or out of memory
 * (check sy_seen_contains first when the difference matters). */
bool sy_seen_add(sy_seen_t *s, const char *job_id, size_t len);
bool sy_seen_contains(const sy_seen_t *s, const char *job_id, size_t len);
size_t sy_seen_count(const sy_seen_t *s);

#endif
