/* sy_registry: the cluster/command registry — model, validation, CRUD in PostgreSQL, and the
 * immutable in-memory snapshot the router routes on. */
#ifndef SY_REGISTRY_H
#define SY_REGISTRY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "sy_err.h"

/* The schema version (core/migrations) the registry tables need; check with
 * sy_db_check_version(conn, SY_REGISTRY_SCHEMA_VERSION, err) at start. */
#define SY_REGISTRY_SCHEMA_VERSION 1
/* Every committed registry change sends NOTIFY on this channel (empty payload; one per
 * transaction) and bumps the snapshot version. */
#define SY_REGISTRY_CHANNEL "switchyard_registry"

#define SY_TAG_MAX_LEN  255 /* bytes of one tag, key:value */
#define SY_TAGS_MAX     64  /* explicit tags on one resource */
#define SY_NAME_MAX_LEN 100 /* cluster and command names */
#define SY_SPEC_MAX_LEN 65536
/* Implicit tags every resource carries; never stored, never settable. */
#define SY_TAG_ID_PREFIX   "switchyard.id:"
#define SY_TAG_NAME_PREFIX "switchyard.name:"

/* ---- Snapshot: the registry as of one consistent read ----------------------------------- */

/* Every string and array below is owned by the snapshot that holds the struct and lives until
 * sy_registry_snapshot_destroy. A snapshot is never modified after sy_registry_load returns, so
 * any number of threads may read one at the same time. */
typedef struct sy_cluster {
    char *id, *name;
    char *backend_kind;    /* "emr" | "emr-eks" | "local" */
    char *backend_address; /* EMR cluster id, virtual cluster id; NULL for local */
    char *region;          /* may be NULL (the worker's default region) */
    char *status;          /* "UP" | "OUT_OF_SERVICE" | "TERMINATED" */
    char **tags;           /* explicit tags only, sorted */
    size_t n_tags;
    int weight;                    /* >= 0; 0 = never picked by weighted random */
    int max_concurrent;            /* >= 0; 0 = backend limit only */
    char *created_at, *updated_at; /* ISO 8601, UTC */
} sy_cluster_t;

typedef struct sy_command {
    char *id, *name;
    char *status; /* "ACTIVE" | "DEPRECATED" | "INACTIVE" */
    char **tags;  /* explicit tags only, sorted */
    size_t n_tags;
    /* {"emr": {...step template...}, "emr-eks": {...job driver...}, "local": {"argv": [...]}},
     * at least one key; valid per sy_registry_spec_valid. */
    char *spec_json;
    char **cluster_ids; /* linked clusters, by cluster name order */
    size_t n_cluster_ids;
    char *created_at, *updated_at; /* ISO 8601, UTC */
    unsigned backends;             /* SY_BACKEND_* bits: the kinds spec_json has an entry for */
    /* spec_json's entry for each kind as compact JSON (NULL where absent), indexed emr,
     * emr-eks, local; filled once by sy_registry_load so routing never parses JSON per
     * message. Read it with sy_registry_command_spec. */
    char *backend_spec[3];
} sy_command_t;

/* Bits of sy_command_t.backends. */
#define SY_BACKEND_EMR     1u
#define SY_BACKEND_EMR_EKS 2u
#define SY_BACKEND_LOCAL   4u

typedef struct sy_registry_snapshot {
    sy_cluster_t *clusters; /* ordered by name */
    size_t n_clusters;
    sy_command_t *commands; /* ordered by name */
    size_t n_commands;
    long long version; /* bumps on every change */
} sy_registry_snapshot_t;

/* Reads the whole registry in one REPEATABLE READ, READ ONLY transaction, so clusters, commands,
 * links and version are from the same instant. conn must not be in a transaction.
 * On success *out is a new snapshot the caller owns. Errors: SY_ERR_DATABASE (retriable when the
 * connection is lost: keep using the previous snapshot). */
sy_err_code_t sy_registry_load(PGconn *conn, sy_registry_snapshot_t **out, sy_err_t *err);

/* Frees a snapshot and everything in it; NULL is a no-op. */
void sy_registry_snapshot_destroy(sy_registry_snapshot_t *snap);

/* True if the command can run on a cluster of backend_kind ("emr", "emr-eks", "local"): the same
 * answer as sy_registry_spec_has_backend(cmd->spec_json, kind), without parsing JSON. */
bool sy_registry_command_runs_on(const sy_command_t *cmd, const char *backend_kind);
/* The command's spec for backend_kind as compact JSON (what a RoutedJob carries), or NULL when
 * the spec has no entry for it. Borrowed from the snapshot. */
const char *sy_registry_command_spec(const sy_command_t *cmd, const char *backend_kind);

/* The cluster / command whose id or name is ref, or NULL. Borrowed from snap. */
const sy_cluster_t *sy_registry_find_cluster(const sy_registry_snapshot_t *snap, const char *ref);
const sy_command_t *sy_registry_find_command(const sy_registry_snapshot_t *snap, const char *ref);

/* ---- Tags --------------------------------------------------------------------------------- */

/* True if the resource with this id, name and explicit tags carries tag: one of the explicit
 * tags, or the implicit switchyard.id:<id> / switchyard.name:<name>. Exact, case-sensitive. */
bool sy_registry_resource_has_tag(const char *id, const char *name, char **tags, size_t n_tags,
                                  const char *tag);
/* True if it carries every one of want[0..n_want-1] (a criterion); true for n_want == 0. */
bool sy_registry_resource_has_tags(const char *id, const char *name, char **tags, size_t n_tags,
                                   const char *const *want, size_t n_want);

/* A tag a user may set: Genie's key:value form, at most SY_TAG_MAX_LEN bytes, printable ASCII
 * without whitespace; key [A-Za-z0-9_.-]+; value non-empty, no comma (commas separate tags on
 * the command line). Keys starting "switchyard." (any case) are reserved. On false, err
 * (SY_ERR_INVALID_ARG) says which rule the tag breaks. */
bool sy_tag_valid(const char *tag, sy_err_t *err);

/* A tag a request may ask for: anything sy_tag_valid accepts, plus the implicit
 * switchyard.id:<id> and switchyard.name:<name>. */
bool sy_tag_valid_criterion(const char *tag, sy_err_t *err);

/* ---- Validation of the other fields (pure; also enforced by database constraints) -------- */

/* [A-Za-z0-9][A-Za-z0-9_.-]*, at most SY_NAME_MAX_LEN: names end up in Kafka topic names
 * (<ns>.cluster.<name>). A name may not look like an id of the same kind ("cl-" / "cmd-" + 12
 * hex), so a reference is never ambiguous. kind is "cluster" or "command". */
bool sy_registry_name_valid(const char *kind, const char *name, sy_err_t *err);
bool sy_registry_backend_kind_valid(const char *kind, sy_err_t *err);
bool sy_registry_cluster_status_valid(const char *status, sy_err_t *err);
bool sy_registry_command_status_valid(const char *status, sy_err_t *err);
/* emr: j-[A-Za-z0-9]+; emr-eks: [A-Za-z0-9]+; local: must be NULL. At most 64 characters. */
bool sy_registry_address_valid(const char *backend_kind, const char *address, sy_err_t *err);
/* An AWS region name: [a-z0-9-]+, at most 32 characters. */
bool sy_registry_region_valid(const char *region, sy_err_t *err);

/* A command spec: a JSON object of at most SY_SPEC_MAX_LEN bytes with one or more of
 *   "local":   {"argv": [non-empty array of strings, argv[0] non-empty]}
 *   "emr":     {"jar": string, "args": [strings], "main_class"?: string,
 *               "properties"?: {string: string},
 *               "action_on_failure"?: "CONTINUE"|"CANCEL_AND_WAIT"|"TERMINATE_CLUSTER"}
 *              (every string at most 10240 characters, EMR's HadoopJarStep limit)
 *   "emr-eks": {"release_label": "emr-...", "execution_role_arn": "arn:...",
 *               "entry_point": string, "entry_point_arguments"?: [strings],
 *               "spark_submit_parameters"?: string, "configuration_overrides"?: object,
 *               "retry_policy"?: {"max_attempts": integer >= 1}}
 * Unknown keys are errors (a typo must not silently drop a setting). On false, err
 * (SY_ERR_INVALID_ARG) names the offending path, e.g. spec.emr-eks.entry_point. */
bool sy_registry_spec_valid(const char *spec_json, sy_err_t *err);
/* True if the (valid) spec has an entry for backend_kind. */
bool sy_registry_spec_has_backend(const char *spec_json, const char *backend_kind);

/* ---- CRUD (used by `switchyard clusters|commands|link|unlink`) --------------------------- */
/* Every function below runs in its own transaction on conn (which must not be in one), takes
 * `ref` as an id or a name, and fails with:
 *   SY_ERR_INVALID_ARG  a field breaks a rule above (message names the field)
 *   SY_ERR_NOT_FOUND    no cluster / command with that id or name
 *   SY_ERR_CONFLICT     name taken; links in the way (see remove, link, command update)
 *   SY_ERR_DATABASE     (retriable when the connection is lost)
 * Every change bumps the registry version and notifies SY_REGISTRY_CHANNEL (database
 * triggers, so changes made with psql do too). */

/* Fields for add and update. NULL pointers / negative numbers / set_tags false = not given. */
typedef struct sy_cluster_input {
    const char *name;            /* add: required; update: must be NULL (names are topic names) */
    const char *backend_kind;    /* add: required; update: must be NULL (kind is fixed) */
    const char *backend_address; /* required for emr / emr-eks, absent for local */
    const char *region;          /* update: "" clears it */
    const char *status;          /* add: default UP */
    const char *const *tags;     /* with set_tags: the full set of explicit tags (replaces) */
    size_t n_tags;
    bool set_tags;
    int weight;         /* add: default 1 */
    int max_concurrent; /* add: default 0 */
} sy_cluster_input_t;
/* clang-format off */
#define SY_CLUSTER_INPUT_INIT {.weight = -1, .max_concurrent = -1}
/* clang-format on */

typedef struct sy_command_input {
    const char *name;      /* add: required; update: NULL, or a new name */
    const char *status;    /* add: default ACTIVE */
    const char *spec_json; /* add: required; update: replaces the whole spec */
    const char *const *tags;
    size_t n_tags;
    bool set_tags;
} sy_command_input_t;
/* clang-format off */
#define SY_COMMAND_INPUT_INIT {0}
/* clang-format on */

/* Adds a cluster. *id_out (may be NULL) receives the new id ("cl-" + 12 hex; caller frees). */
sy_err_code_t sy_registry_cluster_add(PGconn *conn, const sy_cluster_input_t *in, char **id_out,
                                      sy_err_t *err);
/* Changes the given fields of a cluster (address, region, status, tags, weight, max_concurrent). */
sy_err_code_t sy_registry_cluster_update(PGconn *conn, const char *ref,
                                         const sy_cluster_input_t *in, sy_err_t *err);
sy_err_code_t sy_registry_cluster_set_status(PGconn *conn, const char *ref, const char *status,
                                             sy_err_t *err);
/* Adds / removes explicit tags. Idempotent: *changed (may be NULL) is false when the set of tags
 * was already as asked. */
sy_err_code_t sy_registry_cluster_tag(PGconn *conn, const char *ref, const char *const *tags,
                                      size_t n_tags, bool *changed, sy_err_t *err);
sy_err_code_t sy_registry_cluster_untag(PGconn *conn, const char *ref, const char *const *tags,
                                        size_t n_tags, bool *changed, sy_err_t *err);
/* Removes a cluster. A cluster still linked to commands is refused (SY_ERR_CONFLICT naming the
 * commands) unless force, which unlinks it from them in the same transaction. */
sy_err_code_t sy_registry_cluster_remove(PGconn *conn, const char *ref, bool force, sy_err_t *err);

/* Adds a command. *id_out (may be NULL) receives the new id ("cmd-" + 12 hex; caller frees). */
sy_err_code_t sy_registry_command_add(PGconn *conn, const sy_command_input_t *in, char **id_out,
                                      sy_err_t *err);
/* Changes name, status, spec and/or tags. A new spec must still cover the backend kind of every
 * linked cluster (SY_ERR_CONFLICT naming the cluster otherwise). */
sy_err_code_t sy_registry_command_update(PGconn *conn, const char *ref,
                                         const sy_command_input_t *in, sy_err_t *err);
sy_err_code_t sy_registry_command_set_status(PGconn *conn, const char *ref, const char *status,
                                             sy_err_t *err);
sy_err_code_t sy_registry_command_tag(PGconn *conn, const char *ref, const char *const *tags,
                                      size_t n_tags, bool *changed, sy_err_t *err);
sy_err_code_t sy_registry_command_untag(PGconn *conn, const char *ref, const char *const *tags,
                                        size_t n_tags, bool *changed, sy_err_t *err);
/* Same rule as sy_registry_cluster_remove. */
sy_err_code_t sy_registry_command_remove(PGconn *conn, const char *ref, bool force, sy_err_t *err);

/* Links a command to a cluster it may run on. The command's spec must have an entry for the
 * cluster's backend kind (SY_ERR_CONFLICT otherwise). Idempotent: *changed (may be NULL) is
 * false if the link existed. */
sy_err_code_t sy_registry_link(PGconn *conn, const char *command_ref, const char *cluster_ref,
                               bool *changed, sy_err_t *err);
/* Removes a link; *changed is false if there was none. */
sy_err_code_t sy_registry_unlink(PGconn *conn, const char *command_ref, const char *cluster_ref,
                                 bool *changed, sy_err_t *err);

#endif
