/* sy_resolve: Genie-style tag resolution of one request against a registry snapshot, and the
 * selectors that pick one cluster among the matches. Pure: no I/O, no allocation that outlives
 * the call except what the caller passes in. */
#ifndef SY_RESOLVE_H
#define SY_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "sy_err.h"
#include "sy_registry.h"

/* One criterion of a request: all of id (if set), name (if set) and tags must match. */
typedef struct sy_criterion {
    const char *id;
    const char *name;
    const char *const *tags;
    size_t n_tags;
} sy_criterion_t;

typedef enum sy_selector {
    SY_SELECT_WEIGHTED = 0, /* weighted random by the clusters' registry weights */
    SY_SELECT_LEAST_ACTIVE, /* fewest jobs in flight; ties broken by weighted random */
} sy_selector_t;

/* Jobs in flight on a cluster (by cluster name), for SY_SELECT_LEAST_ACTIVE. */
typedef long (*sy_active_fn)(const char *cluster_name, void *opaque);

typedef struct sy_resolution {
    const sy_cluster_t *cluster; /* borrowed from the snapshot */
    const sy_command_t *command; /* borrowed from the snapshot */
    int criterion_index;         /* 0-based index of the cluster criterion that matched */
    char rationale[1024];        /* human-readable: criterion, candidates, selector choice */
} sy_resolution_t;

/* Resolves per ../shared/architecture.md "Routing semantics":
 *  1. candidate commands: ACTIVE commands matching the command criterion;
 *  2. per candidate command, the first cluster criterion (in request order) that matches at
 *     least one UP cluster linked to that command; the command whose winning criterion comes
 *     earliest wins (ties: command name order);
 *  3. the selector picks one of that criterion's clusters.
 * On success fills out and returns SY_OK. When nothing matches returns SY_ERR_INVALID_ARG with
 * err->msg naming the unmet criteria (the INVALID reason). rng_state is a xorshift state the
 * caller keeps (non-zero). active/opaque are used only by SY_SELECT_LEAST_ACTIVE (may be NULL
 * otherwise). */
sy_err_code_t sy_resolve(const sy_registry_snapshot_t *snap, const sy_criterion_t *cluster_criteria,
                         size_t n_cluster_criteria, const sy_criterion_t *command_criterion,
                         sy_selector_t selector, sy_active_fn active, void *opaque,
                         uint64_t *rng_state, sy_resolution_t *out, sy_err_t *err);

/* Formats a criterion as "{tags=[a:b,c:d], name=x}" into buf. */
const char *sy_criterion_format(const sy_criterion_t *c, char *buf, size_t size);

/* Parses "weighted" / "least-active"; -1 if neither. */
int sy_selector_parse(const char *s);

#endif
