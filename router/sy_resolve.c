/* sy_resolve: Genie-style tag resolution and cluster selection (pure, no I/O). */
#include "sy_resolve.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CANDIDATES 256

static bool matches(const char *id, const char *name, char **tags, size_t n_tags,
                    const sy_criterion_t *c)
{
    if (c->id && strcmp(c->id, id) != 0)
        return false;
    if (c->name && strcmp(c->name, name) != 0)
        return false;
    return sy_registry_resource_has_tags(id, name, tags, n_tags, c->tags, c->n_tags);
}

/* A cluster can run a command when it is UP, linked to it, and the command says what to run on
 * the cluster's kind of backend. */
static bool eligible(const sy_command_t *cmd, const sy_cluster_t *cl)
{
    if (strcmp(cl->status, "UP") != 0)
        return false;
    for (size_t i = 0; i < cmd->n_cluster_ids; i++)
        if (!strcmp(cmd->cluster_ids[i], cl->id))
            return sy_registry_command_runs_on(cmd, cl->backend_kind);
    return false;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

const char *sy_criterion_format(const sy_criterion_t *c, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "{tags=[");
    for (size_t i = 0; i < c->n_tags && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "", c->tags[i]);
    if (n < size)
        n += (size_t)snprintf(buf + n, size - n, "]");
    if (c->id && n < size)
        n += (size_t)snprintf(buf + n, size - n, ", id=%s", c->id);
    if (c->name && n < size)
        n += (size_t)snprintf(buf + n, size - n, ", name=%s", c->name);
    if (n < size)
        snprintf(buf + n, size - n, "}");
    return buf;
}

int sy_selector_parse(const char *s)
{
    if (!strcmp(s, "weighted") || !strcmp(s, "weighted-random"))
        return SY_SELECT_WEIGHTED;
    if (!strcmp(s, "least-active"))
        return SY_SELECT_LEAST_ACTIVE;
    return -1;
}

/* Weighted random among cand[0..n); weight 0 clusters are drained (chosen only if all are 0). */
static size_t pick_weighted(const sy_cluster_t **cand, size_t n, uint64_t *rng)
{
    long long total = 0;
    for (size_t i = 0; i < n; i++)
        total += cand[i]->weight > 0 ? cand[i]->weight : 0;
    if (total == 0)
        return (size_t)(xorshift(rng) % n);
    long long r = (long long)(xorshift(rng) % (uint64_t)total);
    for (size_t i = 0; i < n; i++) {
        long long w = cand[i]->weight > 0 ? cand[i]->weight : 0;
        if (r < w)
            return i;
        r -= w;
    }
    return n - 1;
}

sy_err_code_t sy_resolve(const sy_registry_snapshot_t *snap, const sy_criterion_t *crit,
                         size_t n_crit, const sy_criterion_t *cmd_crit, sy_selector_t selector,
                         sy_active_fn active, void *opaque, uint64_t *rng, sy_resolution_t *out,
                         sy_err_t *err)
{
    char buf[512];
    const sy_command_t *best_cmd = NULL;
    size_t best_idx = n_crit;
    size_t n_candidates = 0;
    char cmd_names[256] = "";
    size_t cn = 0;

    memset(out, 0, sizeof(*out));
    if (n_crit == 0)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "no cluster criteria given");

    for (size_t c = 0; c < snap->n_commands; c++) {
        const sy_command_t *cmd = &snap->commands[c];
        if (strcmp(cmd->status, "ACTIVE") != 0 ||
            !matches(cmd->id, cmd->name, cmd->tags, cmd->n_tags, cmd_crit))
            continue;
        n_candidates++;
        if (cn < sizeof(cmd_names))
            cn += (size_t)snprintf(cmd_names + cn, sizeof(cmd_names) - cn, "%s%s", cn ? "," : "",
                                   cmd->name);
        for (size_t i = 0; i < n_crit && i <= best_idx; i++) {
            bool found = false;
            for (size_t k = 0; k < snap->n_clusters && !found; k++) {
                const sy_cluster_t *cl = &snap->clusters[k];
                found =
                    eligible(cmd, cl) && matches(cl->id, cl->name, cl->tags, cl->n_tags, &crit[i]);
            }
            if (found) {
                if (i < best_idx || (i == best_idx && strcmp(cmd->name, best_cmd->name) < 0)) {
                    best_idx = i;
                    best_cmd = cmd;
                }
                break;
            }
        }
    }

    if (n_candidates == 0)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                          "no ACTIVE command matches command criterion %s",
                          sy_criterion_format(cmd_crit, buf, sizeof(buf)));
    if (!best_cmd) {
        char reason[sizeof(err->msg)];
        size_t n = (size_t)snprintf(reason, sizeof(reason),
                                    "no UP cluster linked to command(s) [%s] matches any cluster "
                                    "criterion: ",
                                    cmd_names);
        for (size_t i = 0; i < n_crit && n < sizeof(reason); i++)
            n += (size_t)snprintf(reason + n, sizeof(reason) - n, "%s#%zu %s", i ? "; " : "", i + 1,
                                  sy_criterion_format(&crit[i], buf, sizeof(buf)));
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s", reason);
    }

    const sy_cluster_t *cand[MAX_CANDIDATES];
    size_t n = 0;
    for (size_t k = 0; k < snap->n_clusters && n < MAX_CANDIDATES; k++) {
        const sy_cluster_t *cl = &snap->clusters[k];
        if (eligible(best_cmd, cl) &&
            matches(cl->id, cl->name, cl->tags, cl->n_tags, &crit[best_idx]))
            cand[n++] = cl;
    }

    size_t chosen;
    char how[160];
    if (selector == SY_SELECT_LEAST_ACTIVE && active) {
        long best = -1;
        const sy_cluster_t *tied[MAX_CANDIDATES];
        size_t n_tied = 0;
        long counts[MAX_CANDIDATES];
        for (size_t i = 0; i < n; i++) {
            counts[i] = active(cand[i]->name, opaque);
            if (best < 0 || counts[i] < best) {
                best = counts[i];
                n_tied = 0;
            }
            if (counts[i] == best)
                tied[n_tied++] = cand[i];
        }
        const sy_cluster_t *pick = tied[pick_weighted(tied, n_tied, rng)];
        for (chosen = 0; cand[chosen] != pick; chosen++)
            ;
        snprintf(how, sizeof(how), "least-active (%ld in flight, %zu tied)", best, n_tied);
    } else {
        chosen = pick_weighted(cand, n, rng);
        snprintf(how, sizeof(how), "weighted random (weight %d)", cand[chosen]->weight);
    }

    out->cluster = cand[chosen];
    out->command = best_cmd;
    out->criterion_index = (int)best_idx;
    size_t r = (size_t)snprintf(out->rationale, sizeof(out->rationale),
                                "criterion #%zu %s matched %zu cluster(s) [", best_idx + 1,
                                sy_criterion_format(&crit[best_idx], buf, sizeof(buf)), n);
    for (size_t i = 0; i < n && r < sizeof(out->rationale); i++)
        r += (size_t)snprintf(out->rationale + r, sizeof(out->rationale) - r, "%s%s", i ? "," : "",
                              cand[i]->name);
    if (r < sizeof(out->rationale))
        snprintf(out->rationale + r, sizeof(out->rationale) - r, "] for command %s; chose %s by %s",
                 best_cmd->name, cand[chosen]->name, how);
    return SY_OK;
}
