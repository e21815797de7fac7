/* sy_registry: the cluster/command registry — model, validation, CRUD in PostgreSQL, and the
 * immutable in-memory snapshot the router routes on. */
#include "sy_registry.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "sy_db.h"

/* ==== Validation (pure) ==================================================================== */

static bool key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

/* The shared part of sy_tag_valid / sy_tag_valid_criterion: form, charset, length. */
static bool tag_form_valid(const char *tag, sy_err_t *err)
{
    if (!tag || !*tag) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "empty tag");
        return false;
    }
    size_t len = strlen(tag);
    if (len > SY_TAG_MAX_LEN) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "tag \"%.40s...\" is longer than %d characters",
                   tag, SY_TAG_MAX_LEN);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)tag[i];
        if (c <= ' ' || c > '~') {
            sy_err_set(err, SY_ERR_INVALID_ARG, false,
                       "tag \"%s\": only printable ASCII without spaces is allowed", tag);
            return false;
        }
        if (c == ',') {
            sy_err_set(err, SY_ERR_INVALID_ARG, false, "tag \"%s\": commas are not allowed", tag);
            return false;
        }
    }
    const char *colon = strchr(tag, ':');
    if (!colon || colon == tag || !colon[1]) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false,
                   "tag \"%s\" is not of the form key:value (both non-empty)", tag);
        return false;
    }
    for (const char *p = tag; p < colon; p++) {
        if (!key_char(*p)) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false,
                       "tag \"%s\": the key may contain only letters, digits, '_', '.' and '-'",
                       tag);
            return false;
        }
    }
    return true;
}

bool sy_tag_valid(const char *tag, sy_err_t *err)
{
    if (!tag_form_valid(tag, err))
        return false;
    if (!strncasecmp(tag, "switchyard.", 11)) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false,
                   "tag \"%s\": keys starting with \"switchyard.\" are reserved (switchyard.id and "
                   "switchyard.name are implicit on every resource)",
                   tag);
        return false;
    }
    return true;
}

bool sy_tag_valid_criterion(const char *tag, sy_err_t *err)
{
    if (!tag_form_valid(tag, err))
        return false;
    if (!strncmp(tag, SY_TAG_ID_PREFIX, strlen(SY_TAG_ID_PREFIX)) ||
        !strncmp(tag, SY_TAG_NAME_PREFIX, strlen(SY_TAG_NAME_PREFIX)))
        return true;
    return sy_tag_valid(tag, err);
}

bool sy_registry_resource_has_tag(const char *id, const char *name, char **tags, size_t n_tags,
                                  const char *tag)
{
    size_t lid = strlen(SY_TAG_ID_PREFIX), lname = strlen(SY_TAG_NAME_PREFIX);
    if (!tag)
        return false;
    if (!strncmp(tag, SY_TAG_ID_PREFIX, lid))
        return id && !strcmp(tag + lid, id);
    if (!strncmp(tag, SY_TAG_NAME_PREFIX, lname))
        return name && !strcmp(tag + lname, name);
    for (size_t i = 0; i < n_tags; i++)
        if (tags[i] && !strcmp(tags[i], tag))
            return true;
    return false;
}

bool sy_registry_resource_has_tags(const char *id, const char *name, char **tags, size_t n_tags,
                                   const char *const *want, size_t n_want)
{
    for (size_t i = 0; i < n_want; i++)
        if (!sy_registry_resource_has_tag(id, name, tags, n_tags, want[i]))
            return false;
    return true;
}

/* True if s is prefix + exactly 12 lower-case hex digits (the shape of our ids). */
static bool id_shaped(const char *s, const char *prefix)
{
    size_t lp = strlen(prefix);
    if (strncmp(s, prefix, lp) != 0 || strlen(s) != lp + 12)
        return false;
    for (const char *p = s + lp; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

bool sy_registry_name_valid(const char *kind, const char *name, sy_err_t *err)
{
    bool cluster = !strcmp(kind, "cluster");
    if (!name || !*name) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s name is empty", kind);
        return false;
    }
    size_t len = strlen(name);
    bool ok = len <= SY_NAME_MAX_LEN && isalnum((unsigned char)name[0]);
    for (size_t i = 0; ok && i < len; i++)
        ok = key_char(name[i]);
    if (!ok) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false,
                   "%s name \"%.120s\": use letters, digits, '_', '.' and '-', starting with a "
                   "letter or digit, at most %d characters",
                   kind, name, SY_NAME_MAX_LEN);
        return false;
    }
    if (id_shaped(name, cluster ? "cl-" : "cmd-")) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false,
                   "%s name \"%s\" looks like a %s id; choose another name", kind, name, kind);
        return false;
    }
    return true;
}

static bool one_of(const char *what, const char *value, const char *const *allowed, sy_err_t *err)
{
    char list[200] = "";
    for (const char *const *a = allowed; *a; a++) {
        if (value && !strcmp(value, *a))
            return true;
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "", *a);
    }
    sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s \"%s\" is not one of %s", what,
               value ? value : "", list);
    return false;
}

static const char *const backend_kinds[] = {"emr", "emr-eks", "local", NULL};
static const char *const cluster_statuses[] = {"UP", "OUT_OF_SERVICE", "TERMINATED", NULL};
static const char *const command_statuses[] = {"ACTIVE", "DEPRECATED", "INACTIVE", NULL};

bool sy_registry_backend_kind_valid(const char *kind, sy_err_t *err)
{
    return one_of("backend kind", kind, backend_kinds, err);
}

bool sy_registry_cluster_status_valid(const char *status, sy_err_t *err)
{
    return one_of("cluster status", status, cluster_statuses, err);
}

bool sy_registry_command_status_valid(const char *status, sy_err_t *err)
{
    return one_of("command status", status, command_statuses, err);
}

bool sy_registry_address_valid(const char *kind, const char *address, sy_err_t *err)
{
    if (!strcmp(kind, "local")) {
        if (address)
            sy_err_set(err, SY_ERR_INVALID_ARG, false, "a local cluster has no backend address");
        return address == NULL;
    }
    bool emr = !strcmp(kind, "emr");
    if (!address || !*address) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "an %s cluster needs a backend address (%s)",
                   kind, emr ? "the EMR cluster id, j-..." : "the EMR on EKS virtual cluster id");
        return false;
    }
    size_t len = strlen(address);
    bool ok = len <= 64 && (!emr || (len > 2 && !strncmp(address, "j-", 2)));
    for (size_t i = emr ? 2 : 0; ok && i < len; i++)
        ok = isalnum((unsigned char)address[i]);
    if (!ok)
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "backend address \"%.80s\" is not %s", address,
                   emr ? "an EMR cluster id (j- followed by letters and digits)"
                       : "an EMR on EKS virtual cluster id (letters and digits)");
    return ok;
}

bool sy_registry_region_valid(const char *region, sy_err_t *err)
{
    size_t len = region ? strlen(region) : 0;
    bool ok = len > 0 && len <= 32;
    for (size_t i = 0; ok && i < len; i++)
        ok = islower((unsigned char)region[i]) || isdigit((unsigned char)region[i]) ||
             region[i] == '-';
    if (!ok)
        sy_err_set(err, SY_ERR_INVALID_ARG, false,
                   "region \"%.40s\" is not an AWS region name (like us-east-1)",
                   region ? region : "");
    return ok;
}

/* ---- Command specs ---- */

typedef enum spec_type {
    T_STRING,     /* non-empty string */
    T_STRINGS,    /* array of strings */
    T_ARGV,       /* non-empty array of strings, the first non-empty */
    T_STRING_MAP, /* object of string values */
    T_OBJECT,     /* any object */
    T_RETRY,      /* {"max_attempts": integer >= 1} */
} spec_type_t;

typedef struct spec_field {
    const char *key;
    spec_type_t type;
    bool required;
    size_t max_len;            /* of every string in the value */
    const char *prefix;        /* a T_STRING must start with it */
    const char *const *one_of; /* a T_STRING must be one of them */
} spec_field_t;

static const char *const emr_actions[] = {"CONTINUE", "CANCEL_AND_WAIT", "TERMINATE_CLUSTER", NULL};

/* What each backend's entry may hold. Adding a key is one row here (and the driver using it). */
static const spec_field_t emr_fields[] = {
    {"jar", T_STRING, true, 10240, NULL, NULL},
    {"args", T_STRINGS, true, 10240, NULL, NULL},
    {"main_class", T_STRING, false, 10240, NULL, NULL},
    {"properties", T_STRING_MAP, false, 10240, NULL, NULL},
    {"action_on_failure", T_STRING, false, 64, NULL, emr_actions},
    {NULL, 0, false, 0, NULL, NULL},
};
static const spec_field_t emr_eks_fields[] = {
    {"release_label", T_STRING, true, 64, "emr-", NULL},
    {"execution_role_arn", T_STRING, true, 2048, "arn:", NULL},
    {"entry_point", T_STRING, true, 256, NULL, NULL},
    {"entry_point_arguments", T_STRINGS, false, 10280, NULL, NULL},
    {"spark_submit_parameters", T_STRING, false, 102400, NULL, NULL},
    {"configuration_overrides", T_OBJECT, false, 0, NULL, NULL},
    {"retry_policy", T_RETRY, false, 0, NULL, NULL},
    {NULL, 0, false, 0, NULL, NULL},
};
static const spec_field_t local_fields[] = {
    {"argv", T_ARGV, true, 65536, NULL, NULL},
    {NULL, 0, false, 0, NULL, NULL},
};
static const struct {
    const char *kind;
    const spec_field_t *fields;
    unsigned bit; /* in sy_command_t.backends */
} spec_backends[] = {
    {"emr", emr_fields, SY_BACKEND_EMR},
    {"emr-eks", emr_eks_fields, SY_BACKEND_EMR_EKS},
    {"local", local_fields, SY_BACKEND_LOCAL},
};
#define N_SPEC_BACKENDS (sizeof(spec_backends) / sizeof(spec_backends[0]))
_Static_assert(N_SPEC_BACKENDS == sizeof(((sy_command_t *)0)->backend_spec) / sizeof(char *),
               "one backend_spec slot per backend kind");

static bool spec_string(const char *path, json_t *v, const spec_field_t *f, bool nonempty,
                        sy_err_t *err)
{
    if (!json_is_string(v)) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s must be a string", path);
        return false;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (nonempty && len == 0) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s must not be empty", path);
        return false;
    }
    if (f->max_len && len > f->max_len) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s is longer than %zu characters", path,
                   f->max_len);
        return false;
    }
    if (f->prefix && strncmp(s, f->prefix, strlen(f->prefix)) != 0) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s must start with \"%s\"", path, f->prefix);
        return false;
    }
    if (f->one_of && !one_of(path, s, f->one_of, err))
        return false;
    return true;
}

static bool spec_value(const char *path, json_t *v, const spec_field_t *f, sy_err_t *err)
{
    char sub[160];
    size_t i;
    json_t *item;
    const char *k;
    switch (f->type) {
    case T_STRING:
        return spec_string(path, v, f, true, err);
    case T_STRINGS:
    case T_ARGV:
        if (!json_is_array(v) || (f->type == T_ARGV && json_array_size(v) == 0)) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s must be a %sarray of strings", path,
                       f->type == T_ARGV ? "non-empty " : "");
            return false;
        }
        json_array_foreach(v, i, item)
        {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            if (!spec_string(sub, item, f, f->type == T_ARGV && i == 0, err))
                return false;
        }
        return true;
    case T_STRING_MAP:
        if (!json_is_object(v)) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s must be an object of strings", path);
            return false;
        }
        json_object_foreach(v, k, item)
        {
            snprintf(sub, sizeof(sub), "%s.%s", path, k);
            if (!spec_string(sub, item, f, false, err))
                return false;
        }
        return true;
    case T_OBJECT:
        if (!json_is_object(v)) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s must be an object", path);
            return false;
        }
        return true;
    case T_RETRY:
        item = json_object_get(v, "max_attempts"); /* borrowed */
        if (!json_is_object(v) || json_object_size(v) != 1 || !json_is_integer(item) ||
            json_integer_value(item) < 1) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false,
                       "%s must be {\"max_attempts\": <integer >= 1>}", path);
            return false;
        }
        return true;
    }
    return false;
}

static bool spec_backend(const char *kind, json_t *entry, const spec_field_t *fields, sy_err_t *err)
{
    char path[128], keys[256] = "";
    const char *k;
    json_t *v;
    if (!json_is_object(entry)) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "spec.%s must be an object", kind);
        return false;
    }
    for (const spec_field_t *f = fields; f->key; f++) {
        size_t n = strlen(keys);
        snprintf(keys + n, sizeof(keys) - n, "%s%s", n ? ", " : "", f->key);
        v = json_object_get(entry, f->key); /* borrowed */
        snprintf(path, sizeof(path), "spec.%s.%s", kind, f->key);
        if (!v) {
            if (f->required) {
                sy_err_set(err, SY_ERR_INVALID_ARG, false, "%s is missing", path);
                return false;
            }
            continue;
        }
        if (!spec_value(path, v, f, err))
            return false;
    }
    json_object_foreach(entry, k, v)
    {
        const spec_field_t *f = fields;
        while (f->key && strcmp(f->key, k) != 0)
            f++;
        if (!f->key) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false,
                       "spec.%s: unknown key \"%.60s\" (expected %s)", kind, k, keys);
            return false;
        }
    }
    return true;
}

bool sy_registry_spec_valid(const char *spec_json, sy_err_t *err)
{
    bool ok = false;
    json_error_t jerr;
    json_t *root = NULL;
    const char *k;
    json_t *v;
    if (!spec_json || !*spec_json) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "spec is empty");
        goto out;
    }
    if (strlen(spec_json) > SY_SPEC_MAX_LEN) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false, "spec is larger than %d bytes", SY_SPEC_MAX_LEN);
        goto out;
    }
    root = json_loads(spec_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false,
                   "spec is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                   jerr.column);
        goto out;
    }
    if (!json_is_object(root) || json_object_size(root) == 0) {
        sy_err_set(err, SY_ERR_INVALID_ARG, false,
                   "spec must be a JSON object with one or more of \"emr\", \"emr-eks\", "
                   "\"local\"");
        goto out;
    }
    json_object_foreach(root, k, v)
    {
        size_t b = 0;
        while (b < N_SPEC_BACKENDS && strcmp(spec_backends[b].kind, k) != 0)
            b++;
        if (b == N_SPEC_BACKENDS) {
            sy_err_set(err, SY_ERR_INVALID_ARG, false,
                       "spec: unknown backend \"%.60s\" (expected emr, emr-eks or local)", k);
            goto out;
        }
        if (!spec_backend(k, v, spec_backends[b].fields, err))
            goto out;
    }
    ok = true;
out:
    json_decref(root);
    return ok;
}

bool sy_registry_spec_has_backend(const char *spec_json, const char *backend_kind)
{
    json_t *root = spec_json ? json_loads(spec_json, 0, NULL) : NULL;
    bool has = json_is_object(json_object_get(root, backend_kind)); /* borrowed */
    json_decref(root);
    return has;
}

/* ==== Snapshot ============================================================================= */

static void free_strings(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sy_registry_snapshot_destroy(sy_registry_snapshot_t *snap)
{
    if (!snap)
        return;
    for (size_t i = 0; snap->clusters && i < snap->n_clusters; i++) {
        sy_cluster_t *c = &snap->clusters[i];
        free(c->id);
        free(c->name);
        free(c->backend_kind);
        free(c->backend_address);
        free(c->region);
        free(c->status);
        free_strings(c->tags, c->n_tags);
        free(c->created_at);
        free(c->updated_at);
    }
    for (size_t i = 0; snap->commands && i < snap->n_commands; i++) {
        sy_command_t *m = &snap->commands[i];
        free(m->id);
        free(m->name);
        free(m->status);
        free_strings(m->tags, m->n_tags);
        free(m->spec_json);
        for (size_t b = 0; b < 3; b++)
            free(m->backend_spec[b]);
        free_strings(m->cluster_ids, m->n_cluster_ids);
        free(m->created_at);
        free(m->updated_at);
    }
    free(snap->clusters);
    free(snap->commands);
    free(snap);
}

/* A copy of a result field, NULL for SQL NULL. Sets *oom when the copy fails. */
static char *field(const PGresult *res, int row, int col, bool *oom)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *s = strdup(PQgetvalue(res, row, col));
    if (!s)
        *oom = true;
    return s;
}

/* Parses a JSON array of strings (array_to_json / json_agg output; NULL = empty) into a new
 * vector the caller frees with free_strings. */
static sy_err_code_t string_vector(const char *json, char ***out, size_t *n_out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    json_t *arr = NULL, *item;
    char **v = NULL;
    size_t n = 0, i;
    *out = NULL;
    *n_out = 0;
    if (!json)
        goto out;
    arr = json_loads(json, JSON_DECODE_ANY, NULL);
    if (!json_is_array(arr)) {
        rc = sy_err_set(err, SY_ERR_INTERNAL, false, "database returned a malformed array");
        goto out;
    }
    v = calloc(json_array_size(arr) + 1, sizeof(char *));
    if (!v) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    json_array_foreach(arr, i, item)
    {
        if (!json_is_string(item) || !(v[n] = strdup(json_string_value(item)))) {
            rc = sy_err_set(err, SY_ERR_INTERNAL, false, "database returned a malformed array");
            goto out;
        }
        n++;
    }
    *out = v;
    *n_out = n;
    v = NULL; /* now owned by the caller */
out:
    free_strings(v, n);
    json_decref(arr);
    return rc;
}

#define TS_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

sy_err_code_t sy_registry_load(PGconn *conn, sy_registry_snapshot_t **out, sy_err_t *err)
{
    sy_err_code_t rc;
    PGresult *res = NULL;
    sy_registry_snapshot_t *snap = NULL;
    bool oom = false, in_tx = false;
    *out = NULL;
    rc = sy_db_begin(conn, "ISOLATION LEVEL REPEATABLE READ, READ ONLY", err);
    if (rc != SY_OK)
        goto out;
    in_tx = true;
    snap = calloc(1, sizeof(*snap));
    if (!snap) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }

    rc = sy_db_exec(conn, "SELECT version FROM registry_version", 0, NULL, &res, err);
    if (rc != SY_OK)
        goto out;
    snap->version = PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);

    rc = sy_db_exec(
        conn,
        "SELECT id, name, backend_kind, backend_address, region, status,"
        " array_to_json(tags)::text, weight, max_concurrent, " TS_UTC("created_at") ", " TS_UTC(
            "updated_at") " FROM clusters ORDER BY name COLLATE \"C\"",
        0, NULL, &res, err);
    if (rc != SY_OK)
        goto out;
    size_t n = (size_t)PQntuples(res);
    snap->clusters = calloc(n + 1, sizeof(sy_cluster_t));
    if (!snap->clusters) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++, snap->n_clusters++) {
        sy_cluster_t *c = &snap->clusters[i];
        int r = (int)i;
        c->id = field(res, r, 0, &oom);
        c->name = field(res, r, 1, &oom);
        c->backend_kind = field(res, r, 2, &oom);
        c->backend_address = field(res, r, 3, &oom);
        c->region = field(res, r, 4, &oom);
        c->status = field(res, r, 5, &oom);
        c->weight = atoi(PQgetvalue(res, r, 7));
        c->max_concurrent = atoi(PQgetvalue(res, r, 8));
        c->created_at = field(res, r, 9, &oom);
        c->updated_at = field(res, r, 10, &oom);
        rc = string_vector(PQgetvalue(res, r, 6), &c->tags, &c->n_tags, err);
        if (rc != SY_OK)
            goto out;
    }
    PQclear(res);

    /* links come with their command, ordered by cluster name */
    rc = sy_db_exec(conn,
                    "SELECT m.id, m.name, m.status, array_to_json(m.tags)::text, m.spec::text,"
                    " (SELECT json_agg(l.cluster_id ORDER BY c.name COLLATE \"C\")::text"
                    "    FROM command_clusters l JOIN clusters c ON c.id = l.cluster_id"
                    "   WHERE l.command_id = m.id), " TS_UTC("m.created_at") ", " TS_UTC(
                        "m.updated_at") " FROM commands m ORDER BY m.name COLLATE \"C\"",
                    0, NULL, &res, err);
    if (rc != SY_OK)
        goto out;
    n = (size_t)PQntuples(res);
    snap->commands = calloc(n + 1, sizeof(sy_command_t));
    if (!snap->commands) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++, snap->n_commands++) {
        sy_command_t *m = &snap->commands[i];
        int r = (int)i;
        m->id = field(res, r, 0, &oom);
        m->name = field(res, r, 1, &oom);
        m->status = field(res, r, 2, &oom);
        m->spec_json = field(res, r, 4, &oom);
        m->created_at = field(res, r, 6, &oom);
        m->updated_at = field(res, r, 7, &oom);
        json_t *spec = m->spec_json ? json_loads(m->spec_json, 0, NULL) : NULL;
        for (size_t b = 0; spec && b < N_SPEC_BACKENDS; b++) {
            json_t *entry = json_object_get(spec, spec_backends[b].kind);
            if (!json_is_object(entry))
                continue;
            m->backends |= spec_backends[b].bit;
            if (!(m->backend_spec[b] = json_dumps(entry, JSON_COMPACT)))
                oom = true;
        }
        json_decref(spec);
        rc = string_vector(PQgetvalue(res, r, 3), &m->tags, &m->n_tags, err);
        if (rc == SY_OK)
            rc = string_vector(PQgetisnull(res, r, 5) ? NULL : PQgetvalue(res, r, 5),
                               &m->cluster_ids, &m->n_cluster_ids, err);
        if (rc != SY_OK)
            goto out;
    }
    if (oom) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    rc = sy_db_commit(conn, err);
    if (rc != SY_OK)
        goto out;
    *out = snap;
    snap = NULL; /* now owned by the caller */
out:
    PQclear(res);
    if (in_tx && rc != SY_OK)
        sy_db_rollback(conn);
    sy_registry_snapshot_destroy(snap);
    if (rc != SY_OK)
        sy_err_prefix(err, "loading the registry");
    return rc;
}

bool sy_registry_command_runs_on(const sy_command_t *cmd, const char *backend_kind)
{
    for (size_t b = 0; cmd && backend_kind && b < N_SPEC_BACKENDS; b++)
        if (!strcmp(spec_backends[b].kind, backend_kind))
            return (cmd->backends & spec_backends[b].bit) != 0;
    return false;
}

const char *sy_registry_command_spec(const sy_command_t *cmd, const char *backend_kind)
{
    for (size_t b = 0; cmd && backend_kind && b < N_SPEC_BACKENDS; b++)
        if (!strcmp(spec_backends[b].kind, backend_kind))
            return cmd->backend_spec[b];
    return NULL;
}

const sy_cluster_t *sy_registry_find_cluster(const sy_registry_snapshot_t *snap, const char *ref)
{
    for (size_t i = 0; snap && ref && i < snap->n_clusters; i++)
        if (!strcmp(snap->clusters[i].id, ref) || !strcmp(snap->clusters[i].name, ref))
            return &snap->clusters[i];
    return NULL;
}

const sy_command_t *sy_registry_find_command(const sy_registry_snapshot_t *snap, const char *ref)
{
    for (size_t i = 0; snap && ref && i < snap->n_commands; i++)
        if (!strcmp(snap->commands[i].id, ref) || !strcmp(snap->commands[i].name, ref))
            return &snap->commands[i];
    return NULL;
}

/* ==== CRUD ================================================================================= */

/* The two kinds of resource share most of their SQL; only table, id prefix and words differ.
 * Table and column names below are constants of this file, never input. */
typedef struct kind {
    const char *word; /* "cluster" */
    const char *id_prefix;
    const char *select; /* ref -> id, name, tags (JSON), locked */
    const char *set_tags;
    const char *remove;
    const char *links; /* id -> linked names of the other kind */
    const char *unlink_all;
} kind_t;

static const kind_t CLUSTER = {
    "cluster",
    "cl-",
    "SELECT id, name, array_to_json(tags)::text, backend_kind FROM clusters"
    " WHERE id = $1 OR name = $1 FOR UPDATE",
    "UPDATE clusters SET tags = $2::text[] WHERE id = $1",
    "DELETE FROM clusters WHERE id = $1",
    "SELECT m.name FROM command_clusters l JOIN commands m ON m.id = l.command_id"
    " WHERE l.cluster_id = $1 ORDER BY m.name COLLATE \"C\"",
    "DELETE FROM command_clusters WHERE cluster_id = $1",
};
static const kind_t COMMAND = {
    "command",
    "cmd-",
    "SELECT id, name, array_to_json(tags)::text, spec::text FROM commands"
    " WHERE id = $1 OR name = $1 FOR UPDATE",
    "UPDATE commands SET tags = $2::text[] WHERE id = $1",
    "DELETE FROM commands WHERE id = $1",
    "SELECT c.name FROM command_clusters l JOIN clusters c ON c.id = l.cluster_id"
    " WHERE l.command_id = $1 ORDER BY c.name COLLATE \"C\"",
    "DELETE FROM command_clusters WHERE command_id = $1",
};

/* "cl-" + 12 random lower-case hex digits (48 bits) into buf. */
static sy_err_code_t new_id(const char *prefix, char *buf, size_t size, sy_err_t *err)
{
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return sy_err_set(err, SY_ERR_IO, true, "getrandom failed");
    snprintf(buf, size, "%s%02x%02x%02x%02x%02x%02x", prefix, rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5]);
    return SY_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Validates tags and writes them as a PostgreSQL array literal ({"a:b","c:d"}), sorted and
 * without duplicates, into a new string (caller frees). The literal is a parameter value, never
 * SQL text; elements are quoted and '"' and '\' escaped all the same. */
static sy_err_code_t tags_literal(const char *const *tags, size_t n, char **out, sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    const char **sorted = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = NULL;
    *out = NULL;
    sorted = calloc(n + 1, sizeof(char *));
    if (!sorted) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sy_tag_valid(tags[i], err)) {
            rc = SY_ERR_INVALID_ARG;
            goto out;
        }
        sorted[i] = tags[i];
    }
    qsort(sorted, n, sizeof(char *), cmp_str);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0)
            sorted[distinct++] = sorted[i];
    if (distinct > SY_TAGS_MAX) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "more than %d tags on one resource",
                        SY_TAGS_MAX);
        goto out;
    }
    f = open_memstream(&buf, &len);
    if (!f) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    fputc('{', f);
    for (size_t i = 0; i < distinct; i++) {
        fputs(i ? ",\"" : "\"", f);
        for (const char *p = sorted[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                fputc('\\', f);
            fputc(*p, f);
        }
        fputc('"', f);
    }
    fputc('}', f);
    if (fclose(f) != 0) {
        f = NULL;
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    f = NULL;
    *out = buf;
    buf = NULL; /* now owned by the caller */
out:
    if (f)
        fclose(f);
    free(buf);
    free(sorted);
    return rc;
}

/* A locked row of one resource, resolved from an id or a name. */
typedef struct row {
    char *id, *name;
    char **tags;
    size_t n_tags;
    char *extra; /* cluster: backend_kind; command: spec JSON */
} row_t;

static void row_clear(row_t *r)
{
    free(r->id);
    free(r->name);
    free_strings(r->tags, r->n_tags);
    free(r->extra);
    memset(r, 0, sizeof(*r));
}

/* Finds ref (id or name) and locks the row FOR UPDATE (inside the caller's transaction). */
static sy_err_code_t lock_row(PGconn *conn, const kind_t *k, const char *ref, row_t *row,
                              sy_err_t *err)
{
    sy_err_code_t rc;
    PGresult *res = NULL;
    bool oom = false;
    const char *params[] = {ref};
    memset(row, 0, sizeof(*row));
    if (!ref || !*ref) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "no %s given", k->word);
        goto out;
    }
    rc = sy_db_exec(conn, k->select, 1, params, &res, err);
    if (rc != SY_OK)
        goto out;
    if (PQntuples(res) == 0) {
        rc = sy_err_set(err, SY_ERR_NOT_FOUND, false, "no %s with id or name \"%.100s\"", k->word,
                        ref);
        goto out;
    }
    row->id = field(res, 0, 0, &oom);
    row->name = field(res, 0, 1, &oom);
    row->extra = field(res, 0, 3, &oom);
    if (oom) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    rc = string_vector(PQgetvalue(res, 0, 2), &row->tags, &row->n_tags, err);
out:
    PQclear(res);
    if (rc != SY_OK)
        row_clear(row);
    return rc;
}

/* Names of the other kind linked to id, as "a, b, c" (at most ~200 characters) into buf; returns
 * how many there are. */
static sy_err_code_t linked_names(PGconn *conn, const kind_t *k, const char *id, char *buf,
                                  size_t size, int *count, sy_err_t *err)
{
    PGresult *res = NULL;
    const char *params[] = {id};
    sy_err_code_t rc = sy_db_exec(conn, k->links, 1, params, &res, err);
    buf[0] = '\0';
    *count = 0;
    if (rc != SY_OK)
        goto out;
    *count = PQntuples(res);
    for (int i = 0; i < *count; i++) {
        size_t n = strlen(buf);
        if (n + 64 >= size) {
            snprintf(buf + n, size - n, ", ...");
            break;
        }
        snprintf(buf + n, size - n, "%s%s", i ? ", " : "", PQgetvalue(res, i, 0));
    }
out:
    PQclear(res);
    return rc;
}

/* Ends the transaction this file began (in_tx): commits, or rolls back on error. Never touches
 * a transaction it did not begin. */
static sy_err_code_t finish(PGconn *conn, bool in_tx, sy_err_code_t rc, sy_err_t *err)
{
    if (!in_tx)
        return rc;
    if (rc == SY_OK)
        rc = sy_db_commit(conn, err);
    if (rc != SY_OK)
        sy_db_rollback(conn);
    return rc;
}

static sy_err_code_t retag(PGconn *conn, const kind_t *k, const char *ref, const char *const *tags,
                           size_t n_tags, bool add, bool *changed, sy_err_t *err)
{
    sy_err_code_t rc;
    bool in_tx = false;
    row_t row = {0};
    const char **merged = NULL;
    char *literal = NULL;
    size_t n = 0;
    if (changed)
        *changed = false;
    if (n_tags == 0) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "no tags given");
        goto out;
    }
    for (size_t i = 0; i < n_tags; i++) /* also for untag: a malformed tag is a mistake */
        if (!sy_tag_valid(tags[i], err)) {
            rc = SY_ERR_INVALID_ARG;
            goto out;
        }
    rc = sy_db_begin(conn, NULL, err);
    if (rc != SY_OK)
        goto out;
    in_tx = true;
    rc = lock_row(conn, k, ref, &row, err);
    if (rc != SY_OK)
        goto out;
    merged = calloc(row.n_tags + n_tags + 1, sizeof(char *));
    if (!merged) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < row.n_tags; i++) {
        bool drop = false;
        for (size_t j = 0; !add && j < n_tags; j++)
            drop = drop || !strcmp(row.tags[i], tags[j]);
        if (!drop)
            merged[n++] = row.tags[i];
    }
    for (size_t j = 0; add && j < n_tags; j++) {
        bool have = false;
        for (size_t i = 0; i < n; i++)
            have = have || !strcmp(merged[i], tags[j]);
        if (!have)
            merged[n++] = tags[j];
    }
    if (n == row.n_tags)
        goto out; /* nothing to do */
    rc = tags_literal(merged, n, &literal, err);
    if (rc != SY_OK)
        goto out;
    const char *params[] = {row.id, literal};
    rc = sy_db_exec(conn, k->set_tags, 2, params, NULL, err);
    if (rc == SY_OK && changed)
        *changed = true;
out:
    rc = finish(conn, in_tx, rc, err);
    free(literal);
    free(merged);
    row_clear(&row);
    return rc;
}

static sy_err_code_t remove_row(PGconn *conn, const kind_t *k, const char *ref, bool force,
                                sy_err_t *err)
{
    sy_err_code_t rc;
    bool in_tx = false;
    row_t row = {0};
    char names[256];
    int n_links = 0;
    const char *params[1];
    rc = sy_db_begin(conn, NULL, err);
    if (rc != SY_OK)
        goto out;
    in_tx = true;
    rc = lock_row(conn, k, ref, &row, err);
    if (rc != SY_OK)
        goto out;
    params[0] = row.id;
    /* The row lock keeps new links out (inserting one takes a share lock on both rows). */
    rc = linked_names(conn, k, row.id, names, sizeof(names), &n_links, err);
    if (rc != SY_OK)
        goto out;
    if (n_links && !force) {
        rc = sy_err_set(err, SY_ERR_CONFLICT, false,
                        "%s %s is linked to %d %s%s (%s): unlink first, or remove with --force to "
                        "unlink and remove",
                        k->word, row.name, n_links, k == &CLUSTER ? "command" : "cluster",
                        n_links == 1 ? "" : "s", names);
        goto out;
    }
    if (n_links) {
        rc = sy_db_exec(conn, k->unlink_all, 1, params, NULL, err);
        if (rc != SY_OK)
            goto out;
    }
    rc = sy_db_exec(conn, k->remove, 1, params, NULL, err);
out:
    rc = finish(conn, in_tx, rc, err);
    row_clear(&row);
    return rc;
}

/* ---- clusters ---- */

static sy_err_code_t check_cluster_fields(const sy_cluster_input_t *in, const char *kind,
                                          sy_err_t *err)
{
    if (in->backend_address && !sy_registry_address_valid(kind, in->backend_address, err))
        return SY_ERR_INVALID_ARG;
    if (in->region && *in->region && !sy_registry_region_valid(in->region, err))
        return SY_ERR_INVALID_ARG;
    if (in->status && !sy_registry_cluster_status_valid(in->status, err))
        return SY_ERR_INVALID_ARG;
    return SY_OK;
}

sy_err_code_t sy_registry_cluster_add(PGconn *conn, const sy_cluster_input_t *in, char **id_out,
                                      sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    PGresult *res = NULL;
    char *literal = NULL, id[32], weight[16], maxc[16];
    if (id_out)
        *id_out = NULL;
    if (!sy_registry_name_valid("cluster", in->name, err) ||
        !sy_registry_backend_kind_valid(in->backend_kind, err) ||
        !sy_registry_address_valid(in->backend_kind, in->backend_address, err)) {
        rc = SY_ERR_INVALID_ARG;
        goto out;
    }
    rc = check_cluster_fields(in, in->backend_kind, err);
    if (rc != SY_OK)
        goto out;
    rc = tags_literal(in->set_tags ? in->tags : NULL, in->set_tags ? in->n_tags : 0, &literal, err);
    if (rc != SY_OK)
        goto out;
    rc = new_id("cl-", id, sizeof(id), err);
    if (rc != SY_OK)
        goto out;
    snprintf(weight, sizeof(weight), "%d", in->weight >= 0 ? in->weight : 1);
    snprintf(maxc, sizeof(maxc), "%d", in->max_concurrent >= 0 ? in->max_concurrent : 0);
    const char *params[] = {id,
                            in->name,
                            in->backend_kind,
                            in->backend_address,
                            in->region && *in->region ? in->region : NULL,
                            in->status ? in->status : "UP",
                            literal,
                            weight,
                            maxc};
    rc = sy_db_exec(conn,
                    "INSERT INTO clusters (id, name, backend_kind, backend_address, region, status,"
                    " tags, weight, max_concurrent)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7::text[], $8::integer, $9::integer)"
                    " ON CONFLICT (name) DO NOTHING RETURNING id",
                    9, params, &res, err);
    if (rc != SY_OK)
        goto out;
    if (PQntuples(res) == 0) {
        rc = sy_err_set(err, SY_ERR_CONFLICT, false, "a cluster named %s already exists", in->name);
        goto out;
    }
    if (id_out && !(*id_out = strdup(id)))
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
out:
    PQclear(res);
    free(literal);
    return rc;
}

sy_err_code_t sy_registry_cluster_update(PGconn *conn, const char *ref,
                                         const sy_cluster_input_t *in, sy_err_t *err)
{
    sy_err_code_t rc;
    bool in_tx = false;
    row_t row = {0};
    char *literal = NULL, weight[16], maxc[16];
    if (in->name || in->backend_kind) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false,
                        "a cluster's name and backend kind cannot change (the name is its topic "
                        "name); add a new cluster instead");
        goto out;
    }
    if (!in->backend_address && !in->region && !in->status && !in->set_tags && in->weight < 0 &&
        in->max_concurrent < 0) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "nothing to update");
        goto out;
    }
    if (in->set_tags) {
        rc = tags_literal(in->tags, in->n_tags, &literal, err);
        if (rc != SY_OK)
            goto out;
    }
    rc = sy_db_begin(conn, NULL, err);
    if (rc != SY_OK)
        goto out;
    in_tx = true;
    rc = lock_row(conn, &CLUSTER, ref, &row, err);
    if (rc != SY_OK)
        goto out;
    rc = check_cluster_fields(in, row.extra, err);
    if (rc != SY_OK)
        goto out;
    snprintf(weight, sizeof(weight), "%d", in->weight);
    snprintf(maxc, sizeof(maxc), "%d", in->max_concurrent);
    const char *params[] = {row.id,
                            in->backend_address,
                            in->region,
                            in->status,
                            literal,
                            in->weight >= 0 ? weight : NULL,
                            in->max_concurrent >= 0 ? maxc : NULL};
    rc = sy_db_exec(conn,
                    "UPDATE clusters SET"
                    " backend_address = coalesce($2, backend_address),"
                    " region = CASE WHEN $3::text IS NULL THEN region ELSE nullif($3, '') END,"
                    " status = coalesce($4, status),"
                    " tags = coalesce($5::text[], tags),"
                    " weight = coalesce($6::integer, weight),"
                    " max_concurrent = coalesce($7::integer, max_concurrent)"
                    " WHERE id = $1",
                    7, params, NULL, err);
out:
    rc = finish(conn, in_tx, rc, err);
    free(literal);
    row_clear(&row);
    return rc;
}

sy_err_code_t sy_registry_cluster_set_status(PGconn *conn, const char *ref, const char *status,
                                             sy_err_t *err)
{
    sy_cluster_input_t in = SY_CLUSTER_INPUT_INIT;
    if (!sy_registry_cluster_status_valid(status, err))
        return SY_ERR_INVALID_ARG;
    in.status = status;
    return sy_registry_cluster_update(conn, ref, &in, err);
}

sy_err_code_t sy_registry_cluster_tag(PGconn *conn, const char *ref, const char *const *tags,
                                      size_t n_tags, bool *changed, sy_err_t *err)
{
    return retag(conn, &CLUSTER, ref, tags, n_tags, true, changed, err);
}

sy_err_code_t sy_registry_cluster_untag(PGconn *conn, const char *ref, const char *const *tags,
                                        size_t n_tags, bool *changed, sy_err_t *err)
{
    return retag(conn, &CLUSTER, ref, tags, n_tags, false, changed, err);
}

sy_err_code_t sy_registry_cluster_remove(PGconn *conn, const char *ref, bool force, sy_err_t *err)
{
    return remove_row(conn, &CLUSTER, ref, force, err);
}

/* ---- commands ---- */

sy_err_code_t sy_registry_command_add(PGconn *conn, const sy_command_input_t *in, char **id_out,
                                      sy_err_t *err)
{
    sy_err_code_t rc = SY_OK;
    PGresult *res = NULL;
    char *literal = NULL, id[32];
    if (id_out)
        *id_out = NULL;
    if (!sy_registry_name_valid("command", in->name, err) ||
        (in->status && !sy_registry_command_status_valid(in->status, err)) ||
        !sy_registry_spec_valid(in->spec_json, err)) {
        rc = SY_ERR_INVALID_ARG;
        goto out;
    }
    rc = tags_literal(in->set_tags ? in->tags : NULL, in->set_tags ? in->n_tags : 0, &literal, err);
    if (rc != SY_OK)
        goto out;
    rc = new_id("cmd-", id, sizeof(id), err);
    if (rc != SY_OK)
        goto out;
    const char *params[] = {id, in->name, in->status ? in->status : "ACTIVE", literal,
                            in->spec_json};
    rc = sy_db_exec(conn,
                    "INSERT INTO commands (id, name, status, tags, spec)"
                    " VALUES ($1, $2, $3, $4::text[], $5::jsonb)"
                    " ON CONFLICT (name) DO NOTHING RETURNING id",
                    5, params, &res, err);
    if (rc != SY_OK)
        goto out;
    if (PQntuples(res) == 0) {
        rc = sy_err_set(err, SY_ERR_CONFLICT, false, "a command named %s already exists", in->name);
        goto out;
    }
    if (id_out && !(*id_out = strdup(id)))
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
out:
    PQclear(res);
    free(literal);
    return rc;
}

sy_err_code_t sy_registry_command_update(PGconn *conn, const char *ref,
                                         const sy_command_input_t *in, sy_err_t *err)
{
    sy_err_code_t rc;
    bool in_tx = false;
    row_t row = {0};
    PGresult *res = NULL;
    char *literal = NULL;
    if (!in->name && !in->status && !in->spec_json && !in->set_tags) {
        rc = sy_err_set(err, SY_ERR_INVALID_ARG, false, "nothing to update");
        goto out;
    }
    if ((in->name && !sy_registry_name_valid("command", in->name, err)) ||
        (in->status && !sy_registry_command_status_valid(in->status, err)) ||
        (in->spec_json && !sy_registry_spec_valid(in->spec_json, err))) {
        rc = SY_ERR_INVALID_ARG;
        goto out;
    }
    if (in->set_tags) {
        rc = tags_literal(in->tags, in->n_tags, &literal, err);
        if (rc != SY_OK)
            goto out;
    }
    rc = sy_db_begin(conn, NULL, err);
    if (rc != SY_OK)
        goto out;
    in_tx = true;
    rc = lock_row(conn, &COMMAND, ref, &row, err);
    if (rc != SY_OK)
        goto out;
    if (in->spec_json) {
        /* the new spec must still run on every linked cluster */
        const char *p1[] = {row.id};
        rc = sy_db_exec(conn,
                        "SELECT c.name, c.backend_kind FROM command_clusters l"
                        " JOIN clusters c ON c.id = l.cluster_id WHERE l.command_id = $1"
                        " ORDER BY c.name COLLATE \"C\"",
                        1, p1, &res, err);
        if (rc != SY_OK)
            goto out;
        for (int i = 0; i < PQntuples(res); i++) {
            if (!sy_registry_spec_has_backend(in->spec_json, PQgetvalue(res, i, 1))) {
                rc = sy_err_set(err, SY_ERR_CONFLICT, false,
                                "command %s is linked to cluster %s (kind %s) but the new spec "
                                "has no \"%s\" entry: unlink it first or keep that entry",
                                row.name, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                PQgetvalue(res, i, 1));
                goto out;
            }
        }
    }
    const char *params[] = {row.id, in->name, in->status, literal, in->spec_json};
    PQclear(res);
    rc = sy_db_exec(conn,
                    "UPDATE commands SET name = coalesce($2, name), status = coalesce($3, status),"
                    " tags = coalesce($4::text[], tags), spec = coalesce($5::jsonb, spec)"
                    " WHERE id = $1",
                    5, params, &res, err);
    if (rc == SY_ERR_CONFLICT) /* the only unique column an update can hit is the name */
        rc = sy_err_set(err, SY_ERR_CONFLICT, false, "a command named %s already exists",
                        in->name ? in->name : row.name);
out:
    rc = finish(conn, in_tx, rc, err);
    PQclear(res);
    free(literal);
    row_clear(&row);
    return rc;
}

sy_err_code_t sy_registry_command_set_status(PGconn *conn, const char *ref, const char *status,
                                             sy_err_t *err)
{
    sy_command_input_t in = SY_COMMAND_INPUT_INIT;
    if (!sy_registry_command_status_valid(status, err))
        return SY_ERR_INVALID_ARG;
    in.status = status;
    return sy_registry_command_update(conn, ref, &in, err);
}

sy_err_code_t sy_registry_command_tag(PGconn *conn, const char *ref, const char *const *tags,
                                      size_t n_tags, bool *changed, sy_err_t *err)
{
    return retag(conn, &COMMAND, ref, tags, n_tags, true, changed, err);
}

sy_err_code_t sy_registry_command_untag(PGconn *conn, const char *ref, const char *const *tags,
                                        size_t n_tags, bool *changed, sy_err_t *err)
{
    return retag(conn, &COMMAND, ref, tags, n_tags, false, changed, err);
}

sy_err_code_t sy_registry_command_remove(PGconn *conn, const char *ref, bool force, sy_err_t *err)
{
    return remove_row(conn, &COMMAND, ref, force, err);
}

/* ---- links ---- */

static sy_err_code_t set_link(PGconn *conn, const char *command_ref, const char *cluster_ref,
                              bool link, bool *changed, sy_err_t *err)
{
    sy_err_code_t rc;
    bool in_tx = false;
    row_t cmd = {0}, cl = {0};
    PGresult *res = NULL;
    if (changed)
        *changed = false;
    rc = sy_db_begin(conn, NULL, err);
    if (rc != SY_OK)
        goto out;
    in_tx = true;
    /* always command first, then cluster: one lock order, no deadlock between link calls */
    rc = lock_row(conn, &COMMAND, command_ref, &cmd, err);
    if (rc == SY_OK)
        rc = lock_row(conn, &CLUSTER, cluster_ref, &cl, err);
    if (rc != SY_OK)
        goto out;
    if (link && !sy_registry_spec_has_backend(cmd.extra, cl.extra)) {
        rc = sy_err_set(err, SY_ERR_CONFLICT, false,
                        "command %s has no \"%s\" entry in its spec, so it cannot run on cluster "
                        "%s (kind %s): add one with switchyard commands update %s --spec ...",
                        cmd.name, cl.extra, cl.name, cl.extra, cmd.name);
        goto out;
    }
    const char *params[] = {cmd.id, cl.id};
    rc = sy_db_exec(conn,
                    link ? "INSERT INTO command_clusters (command_id, cluster_id) VALUES ($1, $2)"
                           " ON CONFLICT DO NOTHING"
                         : "DELETE FROM command_clusters WHERE command_id = $1 AND cluster_id = $2",
                    2, params, &res, err);
    if (rc == SY_OK && changed)
        *changed = !strcmp(PQcmdTuples(res), "1");
out:
    rc = finish(conn, in_tx, rc, err);
    PQclear(res);
    row_clear(&cmd);
    row_clear(&cl);
    return rc;
}

sy_err_code_t sy_registry_link(PGconn *conn, const char *command_ref, const char *cluster_ref,
                               bool *changed, sy_err_t *err)
{
    return set_link(conn, command_ref, cluster_ref, true, changed, err);
}

sy_err_code_t sy_registry_unlink(PGconn *conn, const char *command_ref, const char *cluster_ref,
                                 bool *changed, sy_err_t *err)
{
    return set_link(conn, command_ref, cluster_ref, false, changed, err);
}
