/* cmd_admin: switchyard admin | clusters | commands | link | unlink — the registry's CLI. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sy_db.h"
#include "sy_log.h"
#include "sy_registry.h"

/* ==== Usage ================================================================================ */

static const char admin_usage[] =
    "usage: switchyard admin migrate            apply pending database migrations\n"
    "       switchyard admin version [--json]   show the database's schema version\n"
    "\n"
    "The database is database.url (-X database.url=... or SWITCHYARD_DATABASE_URL).\n"
    "migrate is safe to run concurrently and again: each migration is applied once.\n";

static const char clusters_usage[] =
    "usage: switchyard clusters <command> [args]\n"
    "\n"
    "  add NAME --kind emr|emr-eks|local [--address ID] [--region R] [--tags T,...]\n"
    "           [--weight N] [--max-concurrent N] [--status S]\n"
    "      Registers a cluster and prints its id. --address is the EMR cluster id (j-...) or\n"
    "      the EMR on EKS virtual cluster id; a local cluster has none. --weight (default 1)\n"
    "      steers weighted-random selection; --max-concurrent 0 (default) = backend limit.\n"
    "  update CLUSTER [--address ID] [--region R|\"\"] [--tags T,...|\"\"] [--weight N]\n"
    "           [--max-concurrent N] [--status S]\n"
    "      Changes the given fields (--tags replaces all tags). Name and kind are fixed.\n"
    "  list [--tag T]... [--status S] [--json]   clusters carrying every --tag\n"
    "  show CLUSTER [--json]\n"
    "  set-status CLUSTER UP|OUT_OF_SERVICE|TERMINATED\n"
    "  tag CLUSTER TAG...        adds tags (key:value)\n"
    "  untag CLUSTER TAG...      removes tags\n"
    "  remove CLUSTER [--force]  refused while commands are linked to it; --force unlinks them\n"
    "\n"
    "CLUSTER is a cluster id (cl-...) or name. Tags are key:value, at most 255 printable\n"
    "characters without spaces or commas; every cluster also carries switchyard.id:<id> and\n"
    "switchyard.name:<name>.\n"
    "Exit codes: 0 ok, 1 error, 2 bad arguments, 4 not found, 5 database unreachable.\n";

static const char commands_usage[] =
    "usage: switchyard commands <command> [args]\n"
    "\n"
    "  add NAME (--spec JSON | --spec-file FILE) [--tags T,...] [--status S]\n"
    "      Registers a command and prints its id. The spec says what to run per backend:\n"
    "        {\"local\": {\"argv\": [\"/usr/bin/env\", \"spark-submit\"]},\n"
    "         \"emr\": {\"jar\": \"command-runner.jar\", \"args\": [\"spark-submit\"]},\n"
    "         \"emr-eks\": {\"release_label\": \"emr-6.15.0-latest\",\n"
    "                     \"execution_role_arn\": \"arn:aws:iam::...:role/...\",\n"
    "                     \"entry_point\": \"s3://...\"}}\n"
    "      (--spec-file - reads standard input)\n"
    "  update COMMAND [--name NAME] [--spec JSON | --spec-file FILE] [--tags T,...|\"\"]\n"
    "           [--status S]\n"
    "  list [--tag T]... [--status S] [--json]\n"
    "  show COMMAND [--json]\n"
    "  set-status COMMAND ACTIVE|DEPRECATED|INACTIVE\n"
    "  tag COMMAND TAG...\n"
    "  untag COMMAND TAG...\n"
    "  remove COMMAND [--force]  refused while linked to clusters; --force unlinks them\n"
    "\n"
    "COMMAND is a command id (cmd-...) or name. Link commands to the clusters that may run\n"
    "them with switchyard link COMMAND CLUSTER.\n"
    "Exit codes: 0 ok, 1 error, 2 bad arguments, 4 not found, 5 database unreachable.\n";

static const char link_usage[] =
    "usage: switchyard link COMMAND CLUSTER     let CLUSTER run COMMAND\n"
    "       switchyard unlink COMMAND CLUSTER\n"
    "\n"
    "The command's spec needs an entry for the cluster's backend kind. Both are idempotent.\n"
    "Exit codes: 0 ok, 1 error, 2 bad arguments, 4 not found, 5 database unreachable.\n";

/* ==== Argument parsing ===================================================================== */

/* The parsed words after the subcommand. Pointers borrow from argv. */
typedef struct args {
    const char *pos[8];
    int n_pos;
    const char *opt_name[32];
    const char *opt_value[32]; /* NULL for flags */
    int n_opt;
    bool help;
} args_t;

/* Splits argv into positionals and options. value_opts take a value ("--x v" or "--x=v"),
 * flag_opts do not. Unknown options, missing values and too many words are usage errors
 * (message on stderr, returns false). */
static bool parse_args(const char *what, int argc, char **argv, const char *const *value_opts,
                       const char *const *flag_opts, args_t *a)
{
    memset(a, 0, sizeof(*a));
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (only_pos || w[0] != '-' || !w[1]) {
            if (a->n_pos == (int)(sizeof(a->pos) / sizeof(a->pos[0]))) {
                fprintf(stderr, "switchyard %s: too many arguments\n", what);
                return false;
            }
            a->pos[a->n_pos++] = w;
            continue;
        }
        if (!strcmp(w, "--")) {
            only_pos = true;
            continue;
        }
        if (!strcmp(w, "-h") || !strcmp(w, "--help")) {
            a->help = true;
            continue;
        }
        if (a->n_opt == (int)(sizeof(a->opt_name) / sizeof(a->opt_name[0]))) {
            fprintf(stderr, "switchyard %s: too many options\n", what);
            return false;
        }
        const char *eq = strchr(w, '=');
        size_t nlen = eq ? (size_t)(eq - w) : strlen(w);
        bool known = false;
        for (const char *const *o = value_opts; o && *o && !known; o++) {
            if (strlen(*o) != nlen || strncmp(*o, w, nlen) != 0)
                continue;
            known = true;
            a->opt_name[a->n_opt] = *o;
            if (eq) {
                a->opt_value[a->n_opt] = eq + 1;
            } else if (i + 1 < argc) {
                a->opt_value[a->n_opt] = argv[++i];
            } else {
                fprintf(stderr, "switchyard %s: option %s needs a value\n", what, *o);
                return false;
            }
        }
        for (const char *const *o = flag_opts; o && *o && !known; o++) {
            if (!eq && !strcmp(*o, w)) {
                known = true;
                a->opt_name[a->n_opt] = *o;
            }
        }
        if (!known) {
            fprintf(stderr, "switchyard %s: unknown option %s (see --help)\n", what, w);
            return false;
        }
        a->n_opt++;
    }
    return true;
}

/* The last value given for option name, or NULL. */
static const char *opt(const args_t *a, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < a->n_opt; i++)
        if (!strcmp(a->opt_name[i], name))
            v = a->opt_value[i];
    return v;
}

static bool flag(const args_t *a, const char *name)
{
    for (int i = 0; i < a->n_opt; i++)
        if (!strcmp(a->opt_name[i], name))
            return true;
    return false;
}

/* A list of owned strings (tags from the command line). */
typedef struct strv {
    char **v;
    size_t n;
} strv_t;

static void strv_clear(strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* Appends the comma-separated items of text (each item kept as is, empty ones included, so that
 * validation reports them); an empty text adds nothing. */
static bool strv_split(strv_t *s, const char *text)
{
    if (!*text)
        return true;
    for (const char *p = text;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char **nv = realloc(s->v, (s->n + 1) * sizeof(char *));
        if (!nv)
            return false;
        s->v = nv;
        if (!(s->v[s->n] = strndup(p, len)))
            return false;
        s->n++;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

/* Parses a non-negative int option; -1 when absent, -2 (after a message) when malformed. */
static int int_opt(const char *what, const args_t *a, const char *name)
{
    const char *v = opt(a, name);
    if (!v)
        return -1;
    errno = 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 0 || n > INT_MAX) {
        fprintf(stderr, "switchyard %s: %s must be an integer >= 0, not \"%s\"\n", what, name, v);
        return -2;
    }
    return (int)n;
}

/* ==== Database and errors ================================================================== */

/* Exit code for an error from sy_db / sy_registry. */
static int exit_code(const sy_err_t *err)
{
    switch (err->code) {
    case SY_OK:
        return SY_EXIT_OK;
    case SY_ERR_INVALID_ARG:
    case SY_ERR_JSON:
        return SY_EXIT_USAGE;
    case SY_ERR_NOT_FOUND:
        return SY_EXIT_NOT_FOUND;
    case SY_ERR_DATABASE:
    case SY_ERR_TIMEOUT:
        return err->retriable ? SY_EXIT_UNAVAILABLE : SY_EXIT_ERROR;
    case SY_ERR_AUTH:
        return SY_EXIT_REFUSED;
    default:
        return SY_EXIT_ERROR;
    }
}

static int fail(const char *what, const sy_err_t *err)
{
    fprintf(stderr, "switchyard %s: %s\n", what, err->msg);
    return exit_code(err);
}

/* Connects to database.url and, with need_registry, checks that the registry tables exist.
 * Returns an exit code; on SY_EXIT_OK *conn is the caller's. */
static int open_db(sy_config_t *conf, const char *what, bool need_registry, PGconn **conn)
{
    sy_err_t err = SY_ERR_INIT;
    *conn = NULL;
    if (sy_db_connect(sy_config_get(conf, "database.url"), 0, conn, &err) != SY_OK) {
        int rc = fail(what, &err);
        return err.code == SY_ERR_CONFIG ? SY_EXIT_USAGE : rc; /* no or malformed database.url */
    }
    if (need_registry && sy_db_check_version(*conn, SY_REGISTRY_SCHEMA_VERSION, &err) != SY_OK) {
        sy_db_close(*conn);
        *conn = NULL;
        fprintf(stderr, "switchyard %s: %s\n", what, err.msg);
        return err.code == SY_ERR_CONFIG ? SY_EXIT_ERROR : exit_code(&err);
    }
    return SY_EXIT_OK;
}

static int print_json(json_t *j)
{
    int rc = SY_EXIT_OK;
    if (!j || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "switchyard: out of memory\n");
        rc = SY_EXIT_ERROR;
    }
    fputc('\n', stdout);
    json_decref(j);
    return rc;
}

static json_t *json_strv(char **v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

/* json_string, or null for NULL. */
static json_t *json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ==== admin ================================================================================= */

static int admin_version(sy_config_t *conf, const args_t *a)
{
    int rc;
    PGconn *conn = NULL;
    PGresult *res = NULL;
    sy_err_t err = SY_ERR_INIT;
    int version = 0;
    bool as_json = flag(a, "--json");
    rc = open_db(conf, "admin version", false, &conn);
    if (rc != SY_EXIT_OK)
        goto out;
    if (sy_db_schema_version(conn, &version, &err) != SY_OK) {
        rc = fail("admin version", &err);
        goto out;
    }
    if (version > 0 &&
        sy_db_exec(conn,
                   "SELECT version, name, to_char(applied_at AT TIME ZONE 'UTC',"
                   " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations ORDER BY version",
                   0, NULL, &res, &err) != SY_OK) {
        rc = fail("admin version", &err);
        goto out;
    }
    int n_rows = res ? PQntuples(res) : 0, pending = 0;
    json_t *root = json_object(), *list = json_array();
    json_object_set_new(root, "database_version", json_integer(version));
    json_object_set_new(root, "binary_version", json_integer(sy_db_latest_version()));
    json_object_set_new(root, "registry_needs", json_integer(SY_REGISTRY_SCHEMA_VERSION));
    for (int i = 0; i < sy_db_migration_count; i++) {
        const sy_db_migration_t *m = &sy_db_migrations[i];
        const char *applied = NULL;
        for (int r = 0; r < n_rows; r++)
            if (atoi(PQgetvalue(res, r, 0)) == m->version)
                applied = PQgetvalue(res, r, 2);
        pending += !applied;
        json_t *o = json_object();
        json_object_set_new(o, "version", json_integer(m->version));
        json_object_set_new(o, "name", json_string(m->name));
        json_object_set_new(o, "applied_at", json_str_or_null(applied));
        json_array_append_new(list, o);
    }
    json_object_set_new(root, "migrations", list);
    json_object_set_new(root, "pending", json_integer(pending));
    if (as_json) {
        rc = print_json(root);
        goto out;
    }
    printf("database schema version: %d\nthis binary's latest:    %d\n", version,
           sy_db_latest_version());
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *o = json_array_get(list, i); /* borrowed */
        const char *at = json_string_value(json_object_get(o, "applied_at"));
        printf("  %04d_%-24s %s%s\n", (int)json_integer_value(json_object_get(o, "version")),
               json_string_value(json_object_get(o, "name")), at ? "applied " : "pending",
               at ? at : "");
    }
    if (pending)
        printf("%d migration%s pending: run switchyard admin migrate\n", pending,
               pending == 1 ? "" : "s");
    if (version > sy_db_latest_version())
        printf("the database is newer than this binary (migrated by a newer switchyard)\n");
    json_decref(root);
    rc = SY_EXIT_OK;
out:
    PQclear(res);
    sy_db_close(conn);
    return rc;
}

static int admin_migrate(sy_config_t *conf)
{
    int rc, from = 0, to = 0;
    PGconn *conn = NULL;
    sy_err_t err = SY_ERR_INIT;
    rc = open_db(conf, "admin migrate", false, &conn);
    if (rc != SY_EXIT_OK)
        goto out;
    if (sy_db_migrate(conn, &from, &to, &err) != SY_OK) {
        rc = fail("admin migrate", &err);
        goto out;
    }
    if (from == to)
        printf("database schema at version %d: up to date\n", to);
    else
        printf("database schema at version %d (was %d)\n", to, from);
out:
    sy_db_close(conn);
    return rc;
}

int sy_cmd_admin(sy_config_t *conf, int argc, char **argv)
{
    static const char *const flags[] = {"--json", NULL};
    args_t a;
    if (!parse_args("admin", argc - 1, argv + 1, NULL, flags, &a))
        return SY_EXIT_USAGE;
    if (a.help) {
        fputs(admin_usage, stdout);
        return SY_EXIT_OK;
    }
    if (a.n_pos == 1 && !strcmp(a.pos[0], "migrate") && !flag(&a, "--json"))
        return admin_migrate(conf);
    if (a.n_pos == 1 && !strcmp(a.pos[0], "version"))
        return admin_version(conf, &a);
    fputs(admin_usage, stderr);
    return SY_EXIT_USAGE;
}

/* ==== clusters / commands: shared pieces =================================================== */

static json_t *cluster_json(const sy_registry_snapshot_t *snap, const sy_cluster_t *c)
{
    json_t *o = json_object(), *cmds = json_array();
    json_object_set_new(o, "id", json_string(c->id));
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "backend_kind", json_string(c->backend_kind));
    json_object_set_new(o, "backend_address", json_str_or_null(c->backend_address));
    json_object_set_new(o, "region", json_str_or_null(c->region));
    json_object_set_new(o, "status", json_string(c->status));
    json_object_set_new(o, "tags", json_strv(c->tags, c->n_tags));
    json_object_set_new(o, "weight", json_integer(c->weight));
    json_object_set_new(o, "max_concurrent", json_integer(c->max_concurrent));
    for (size_t i = 0; i < snap->n_commands; i++) {
        const sy_command_t *m = &snap->commands[i];
        for (size_t k = 0; k < m->n_cluster_ids; k++) {
            if (strcmp(m->cluster_ids[k], c->id) != 0)
                continue;
            json_t *ref = json_object();
            json_object_set_new(ref, "id", json_string(m->id));
            json_object_set_new(ref, "name", json_string(m->name));
            json_array_append_new(cmds, ref);
        }
    }
    json_object_set_new(o, "commands", cmds);
    json_object_set_new(o, "created_at", json_str_or_null(c->created_at));
    json_object_set_new(o, "updated_at", json_str_or_null(c->updated_at));
    return o;
}

static json_t *command_json(const sy_registry_snapshot_t *snap, const sy_command_t *m)
{
    json_t *o = json_object(), *cls = json_array();
    json_object_set_new(o, "id", json_string(m->id));
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "status", json_string(m->status));
    json_object_set_new(o, "tags", json_strv(m->tags, m->n_tags));
    json_t *spec = json_loads(m->spec_json, 0, NULL);
    json_object_set_new(o, "spec", spec ? spec : json_null());
    for (size_t k = 0; k < m->n_cluster_ids; k++) {
        const sy_cluster_t *c = sy_registry_find_cluster(snap, m->cluster_ids[k]);
        json_t *ref = json_object();
        json_object_set_new(ref, "id", json_string(m->cluster_ids[k]));
        json_object_set_new(ref, "name", json_str_or_null(c ? c->name : NULL));
        json_array_append_new(cls, ref);
    }
    json_object_set_new(o, "clusters", cls);
    json_object_set_new(o, "created_at", json_str_or_null(m->created_at));
    json_object_set_new(o, "updated_at", json_str_or_null(m->updated_at));
    return o;
}

static void print_tags(char **tags, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? "," : "", tags[i]);
    if (!n)
        fputs("-", stdout);
}

/* Collects every --tag (each may be comma-separated) and validates them as criteria. */
static int tag_filter(const char *what, const args_t *a, strv_t *want)
{
    sy_err_t err = SY_ERR_INIT;
    for (int i = 0; i < a->n_opt; i++) {
        if (!strcmp(a->opt_name[i], "--tag") && !strv_split(want, a->opt_value[i])) {
            fprintf(stderr, "switchyard %s: out of memory\n", what);
            return SY_EXIT_ERROR;
        }
    }
    for (size_t i = 0; i < want->n; i++)
        if (!sy_tag_valid_criterion(want->v[i], &err))
            return fail(what, &err);
    return SY_EXIT_OK;
}

/* Reads --spec or --spec-file (- = stdin) into *out (caller frees); NULL when neither given. */
static int read_spec(const char *what, const args_t *a, char **out)
{
    const char *inline_spec = opt(a, "--spec"), *path = opt(a, "--spec-file");
    *out = NULL;
    if (inline_spec && path) {
        fprintf(stderr, "switchyard %s: give --spec or --spec-file, not both\n", what);
        return SY_EXIT_USAGE;
    }
    if (inline_spec) {
        *out = strdup(inline_spec);
        return *out ? SY_EXIT_OK : SY_EXIT_ERROR;
    }
    if (!path)
        return SY_EXIT_OK;
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "switchyard %s: cannot open %s: %s\n", what, path, strerror(errno));
        return SY_EXIT_USAGE;
    }
    char *buf = malloc(SY_SPEC_MAX_LEN + 2);
    size_t n = buf ? fread(buf, 1, SY_SPEC_MAX_LEN + 1, f) : 0;
    bool bad = !buf || ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        fprintf(stderr, "switchyard %s: cannot read %s\n", what, path);
        free(buf);
        return SY_EXIT_USAGE;
    }
    buf[n] = '\0';
    *out = buf; /* longer than SY_SPEC_MAX_LEN: the validator says so */
    return SY_EXIT_OK;
}

/* ==== clusters ============================================================================= */

static int clusters_list_show(PGconn *conn, const char *sub, const args_t *a)
{
    int rc = SY_EXIT_OK;
    sy_err_t err = SY_ERR_INIT;
    sy_registry_snapshot_t *snap = NULL;
    strv_t want = {0};
    const char *status = opt(a, "--status");
    bool show = !strcmp(sub, "show"), as_json = flag(a, "--json");
    if (!show) {
        rc = tag_filter("clusters list", a, &want);
        if (rc != SY_EXIT_OK)
            goto out;
        if (status && !sy_registry_cluster_status_valid(status, &err)) {
            rc = fail("clusters list", &err);
            goto out;
        }
    }
    if (sy_registry_load(conn, &snap, &err) != SY_OK) {
        rc = fail(show ? "clusters show" : "clusters list", &err);
        goto out;
    }
    if (show) {
        const sy_cluster_t *c = sy_registry_find_cluster(snap, a->pos[1]);
        if (!c) {
            fprintf(stderr, "switchyard clusters show: no cluster with id or name \"%s\"\n",
                    a->pos[1]);
            rc = SY_EXIT_NOT_FOUND;
            goto out;
        }
        json_t *o = cluster_json(snap, c);
        if (as_json) {
            rc = print_json(o);
            goto out;
        }
        printf("id:              %s\nname:            %s\nkind:            %s\n"
               "address:         %s\nregion:          %s\nstatus:          %s\n"
               "weight:          %d\nmax concurrent:  %d%s\ntags:            ",
               c->id, c->name, c->backend_kind, c->backend_address ? c->backend_address : "-",
               c->region ? c->region : "-", c->status, c->weight, c->max_concurrent,
               c->max_concurrent ? "" : " (backend limit)");
        print_tags(c->tags, c->n_tags);
        printf("\nimplicit tags:   " SY_TAG_ID_PREFIX "%s," SY_TAG_NAME_PREFIX "%s\n"
               "commands:        ",
               c->id, c->name);
        json_t *cmds = json_object_get(o, "commands"); /* borrowed */
        for (size_t i = 0; i < json_array_size(cmds); i++)
            printf("%s%s", i ? "," : "",
                   json_string_value(json_object_get(json_array_get(cmds, i), "name")));
        printf("%s\ncreated:         %s\nupdated:         %s\n", json_array_size(cmds) ? "" : "-",
               c->created_at, c->updated_at);
        json_decref(o);
        goto out;
    }
    json_t *arr = json_array();
    if (!as_json)
        printf("%-24s %-16s %-8s %-14s %-22s %-10s %6s %5s  %s\n", "NAME", "ID", "KIND", "STATUS",
               "ADDRESS", "REGION", "WEIGHT", "MAX", "TAGS");
    for (size_t i = 0; i < snap->n_clusters; i++) {
        const sy_cluster_t *c = &snap->clusters[i];
        if ((status && strcmp(status, c->status) != 0) ||
            !sy_registry_resource_has_tags(c->id, c->name, c->tags, c->n_tags,
                                           (const char *const *)want.v, want.n))
            continue;
        if (as_json) {
            json_array_append_new(arr, cluster_json(snap, c));
            continue;
        }
        printf("%-24s %-16s %-8s %-14s %-22s %-10s %6d %5d  ", c->name, c->id, c->backend_kind,
               c->status, c->backend_address ? c->backend_address : "-",
               c->region ? c->region : "-", c->weight, c->max_concurrent);
        print_tags(c->tags, c->n_tags);
        putchar('\n');
    }
    if (as_json)
        rc = print_json(arr);
    else
        json_decref(arr);
out:
    strv_clear(&want);
    sy_registry_snapshot_destroy(snap);
    return rc;
}

/* Fills in from the add/update options; tags land in *tags (caller clears). */
static int cluster_input(const char *what, const args_t *a, sy_cluster_input_t *in, strv_t *tags)
{
    in->backend_kind = opt(a, "--kind");
    in->backend_address = opt(a, "--address");
    in->region = opt(a, "--region");
    in->status = opt(a, "--status");
    in->weight = int_opt(what, a, "--weight");
    in->max_concurrent = int_opt(what, a, "--max-concurrent");
    if (in->weight == -2 || in->max_concurrent == -2)
        return SY_EXIT_USAGE;
    const char *t = opt(a, "--tags");
    if (t) {
        if (!strv_split(tags, t))
            return SY_EXIT_ERROR;
        in->tags = (const char *const *)tags->v;
        in->n_tags = tags->n;
        in->set_tags = true;
    }
    return SY_EXIT_OK;
}

int sy_cmd_clusters(sy_config_t *conf, int argc, char **argv)
{
    static const char *const values[] = {"--kind",   "--address", "--region",
                                         "--tags",   "--weight",  "--max-concurrent",
                                         "--status", "--tag",     NULL};
    static const char *const flags[] = {"--json", "--force", NULL};
    int rc = SY_EXIT_OK;
    args_t a;
    PGconn *conn = NULL;
    sy_err_t err = SY_ERR_INIT;
    strv_t tags = {0};
    char *id = NULL, what[64];
    bool changed = false;
    if (!parse_args("clusters", argc - 1, argv + 1, values, flags, &a)) {
        rc = SY_EXIT_USAGE;
        goto out;
    }
    if (a.help || (a.n_pos == 1 && !strcmp(a.pos[0], "help"))) {
        fputs(clusters_usage, stdout);
        goto out;
    }
    const char *sub = a.n_pos ? a.pos[0] : "";
    snprintf(what, sizeof(what), "clusters %s", sub);
    /* arity and options per subcommand, checked before touching the database */
    static const struct {
        const char *name;
        int min_pos, max_pos; /* including the subcommand itself */
        const char *allowed;  /* options it accepts, space-separated */
    } subs[] = {
        {"add", 2, 2, " --kind --address --region --tags --weight --max-concurrent --status "},
        {"update", 2, 2, " --address --region --tags --weight --max-concurrent --status "},
        {"list", 1, 1, " --tag --status --json "},
        {"show", 2, 2, " --json "},
        {"set-status", 3, 3, " "},
        {"tag", 3, 8, " "},
        {"untag", 3, 8, " "},
        {"remove", 2, 2, " --force "},
    };
    size_t s = 0;
    while (s < sizeof(subs) / sizeof(subs[0]) && strcmp(subs[s].name, sub) != 0)
        s++;
    if (s == sizeof(subs) / sizeof(subs[0])) {
        if (*sub)
            fprintf(stderr, "switchyard clusters: unknown command \"%s\"\n", sub);
        fputs(clusters_usage, stderr);
        rc = SY_EXIT_USAGE;
        goto out;
    }
    if (a.n_pos < subs[s].min_pos || a.n_pos > subs[s].max_pos) {
        fprintf(stderr,
                "switchyard %s: wrong number of arguments (see switchyard clusters --help)\n",
                what);
        rc = SY_EXIT_USAGE;
        goto out;
    }
    for (int i = 0; i < a.n_opt; i++) {
        char key[40];
        snprintf(key, sizeof(key), " %s ", a.opt_name[i]);
        if (!strstr(subs[s].allowed, key)) {
            fprintf(stderr, "switchyard %s: option %s does not apply here\n", what, a.opt_name[i]);
            rc = SY_EXIT_USAGE;
            goto out;
        }
    }
    sy_cluster_input_t in = SY_CLUSTER_INPUT_INIT;
    if (!strcmp(sub, "add") || !strcmp(sub, "update")) {
        rc = cluster_input(what, &a, &in, &tags);
        if (rc != SY_EXIT_OK)
            goto out;
        if (!strcmp(sub, "add") && !in.backend_kind) {
            fprintf(stderr, "switchyard clusters add: --kind emr|emr-eks|local is required\n");
            rc = SY_EXIT_USAGE;
            goto out;
        }
    }
    rc = open_db(conf, what, true, &conn);
    if (rc != SY_EXIT_OK)
        goto out;
    sy_err_code_t code = SY_OK;
    if (!strcmp(sub, "add")) {
        in.name = a.pos[1];
        code = sy_registry_cluster_add(conn, &in, &id, &err);
        if (code == SY_OK)
            printf("%s\n", id);
    } else if (!strcmp(sub, "update")) {
        code = sy_registry_cluster_update(conn, a.pos[1], &in, &err);
        if (code == SY_OK)
            printf("updated cluster %s\n", a.pos[1]);
    } else if (!strcmp(sub, "list") || !strcmp(sub, "show")) {
        rc = clusters_list_show(conn, sub, &a);
        goto out;
    } else if (!strcmp(sub, "set-status")) {
        code = sy_registry_cluster_set_status(conn, a.pos[1], a.pos[2], &err);
        if (code == SY_OK)
            printf("cluster %s: %s\n", a.pos[1], a.pos[2]);
    } else if (!strcmp(sub, "tag") || !strcmp(sub, "untag")) {
        for (int i = 2; i < a.n_pos; i++)
            if (!strv_split(&tags, a.pos[i])) {
                rc = SY_EXIT_ERROR;
                goto out;
            }
        code = (sub[0] == 't' ? sy_registry_cluster_tag : sy_registry_cluster_untag)(
            conn, a.pos[1], (const char *const *)tags.v, tags.n, &changed, &err);
        if (code == SY_OK)
            printf("cluster %s: %s\n", a.pos[1],
                   changed ? (sub[0] == 't' ? "tagged" : "untagged")
                           : (sub[0] == 't' ? "already has those tags" : "has none of those tags"));
    } else if (!strcmp(sub, "remove")) {
        code = sy_registry_cluster_remove(conn, a.pos[1], flag(&a, "--force"), &err);
        if (code == SY_OK)
            printf("removed cluster %s\n", a.pos[1]);
    }
    if (code != SY_OK)
        rc = fail(what, &err);
out:
    free(id);
    strv_clear(&tags);
    sy_db_close(conn);
    return rc;
}

/* ==== commands ============================================================================= */

static int commands_list_show(PGconn *conn, const char *sub, const args_t *a)
{
    int rc = SY_EXIT_OK;
    sy_err_t err = SY_ERR_INIT;
    sy_registry_snapshot_t *snap = NULL;
    strv_t want = {0};
    const char *status = opt(a, "--status");
    bool show = !strcmp(sub, "show"), as_json = flag(a, "--json");
    if (!show) {
        rc = tag_filter("commands list", a, &want);
        if (rc != SY_EXIT_OK)
            goto out;
        if (status && !sy_registry_command_status_valid(status, &err)) {
            rc = fail("commands list", &err);
            goto out;
        }
    }
    if (sy_registry_load(conn, &snap, &err) != SY_OK) {
        rc = fail(show ? "commands show" : "commands list", &err);
        goto out;
    }
    if (show) {
        const sy_command_t *m = sy_registry_find_command(snap, a->pos[1]);
        if (!m) {
            fprintf(stderr, "switchyard commands show: no command with id or name \"%s\"\n",
                    a->pos[1]);
            rc = SY_EXIT_NOT_FOUND;
            goto out;
        }
        json_t *o = command_json(snap, m);
        if (as_json) {
            rc = print_json(o);
            goto out;
        }
        printf("id:              %s\nname:            %s\nstatus:          %s\ntags:            ",
               m->id, m->name, m->status);
        print_tags(m->tags, m->n_tags);
        printf("\nimplicit tags:   " SY_TAG_ID_PREFIX "%s," SY_TAG_NAME_PREFIX "%s\n"
               "clusters:        ",
               m->id, m->name);
        json_t *cls = json_object_get(o, "clusters"); /* borrowed */
        for (size_t i = 0; i < json_array_size(cls); i++)
            printf("%s%s", i ? "," : "",
                   json_string_value(json_object_get(json_array_get(cls, i), "name")));
        char *spec = json_dumps(json_object_get(o, "spec"), JSON_INDENT(2));
        printf("%s\ncreated:         %s\nupdated:         %s\nspec:\n%s\n",
               json_array_size(cls) ? "" : "-", m->created_at, m->updated_at,
               spec ? spec : m->spec_json);
        free(spec);
        json_decref(o);
        goto out;
    }
    json_t *arr = json_array();
    if (!as_json)
        printf("%-24s %-17s %-11s %-18s %-20s %s\n", "NAME", "ID", "STATUS", "BACKENDS", "CLUSTERS",
               "TAGS");
    for (size_t i = 0; i < snap->n_commands; i++) {
        const sy_command_t *m = &snap->commands[i];
        if ((status && strcmp(status, m->status) != 0) ||
            !sy_registry_resource_has_tags(m->id, m->name, m->tags, m->n_tags,
                                           (const char *const *)want.v, want.n))
            continue;
        if (as_json) {
            json_array_append_new(arr, command_json(snap, m));
            continue;
        }
        char backends[32] = "", clusters[16];
        static const char *const kinds[] = {"emr", "emr-eks", "local"};
        for (size_t k = 0; k < 3; k++)
            if (sy_registry_spec_has_backend(m->spec_json, kinds[k])) {
                size_t n = strlen(backends);
                snprintf(backends + n, sizeof(backends) - n, "%s%s", n ? "," : "", kinds[k]);
            }
        snprintf(clusters, sizeof(clusters), "%zu", m->n_cluster_ids);
        printf("%-24s %-17s %-11s %-18s %-20s ", m->name, m->id, m->status, backends, clusters);
        print_tags(m->tags, m->n_tags);
        putchar('\n');
    }
    if (as_json)
        rc = print_json(arr);
    else
        json_decref(arr);
out:
    strv_clear(&want);
    sy_registry_snapshot_destroy(snap);
    return rc;
}

int sy_cmd_commands(sy_config_t *conf, int argc, char **argv)
{
    static const char *const values[] = {"--spec", "--spec-file", "--tags", "--status",
                                         "--name", "--tag",       NULL};
    static const char *const flags[] = {"--json", "--force", NULL};
    int rc = SY_EXIT_OK;
    args_t a;
    PGconn *conn = NULL;
    sy_err_t err = SY_ERR_INIT;
    strv_t tags = {0};
    char *id = NULL, *spec = NULL, what[64];
    bool changed = false;
    if (!parse_args("commands", argc - 1, argv + 1, values, flags, &a)) {
        rc = SY_EXIT_USAGE;
        goto out;
    }
    if (a.help || (a.n_pos == 1 && !strcmp(a.pos[0], "help"))) {
        fputs(commands_usage, stdout);
        goto out;
    }
    const char *sub = a.n_pos ? a.pos[0] : "";
    snprintf(what, sizeof(what), "commands %s", sub);
    static const struct {
        const char *name;
        int min_pos, max_pos;
        const char *allowed;
    } subs[] = {
        {"add", 2, 2, " --spec --spec-file --tags --status "},
        {"update", 2, 2, " --name --spec --spec-file --tags --status "},
        {"list", 1, 1, " --tag --status --json "},
        {"show", 2, 2, " --json "},
        {"set-status", 3, 3, " "},
        {"tag", 3, 8, " "},
        {"untag", 3, 8, " "},
        {"remove", 2, 2, " --force "},
    };
    size_t s = 0;
    while (s < sizeof(subs) / sizeof(subs[0]) && strcmp(subs[s].name, sub) != 0)
        s++;
    if (s == sizeof(subs) / sizeof(subs[0])) {
        if (*sub)
            fprintf(stderr, "switchyard commands: unknown command \"%s\"\n", sub);
        fputs(commands_usage, stderr);
        rc = SY_EXIT_USAGE;
        goto out;
    }
    if (a.n_pos < subs[s].min_pos || a.n_pos > subs[s].max_pos) {
        fprintf(stderr,
                "switchyard %s: wrong number of arguments (see switchyard commands --help)\n",
                what);
        rc = SY_EXIT_USAGE;
        goto out;
    }
    for (int i = 0; i < a.n_opt; i++) {
        char key[40];
        snprintf(key, sizeof(key), " %s ", a.opt_name[i]);
        if (!strstr(subs[s].allowed, key)) {
            fprintf(stderr, "switchyard %s: option %s does not apply here\n", what, a.opt_name[i]);
            rc = SY_EXIT_USAGE;
            goto out;
        }
    }
    sy_command_input_t in = SY_COMMAND_INPUT_INIT;
    if (!strcmp(sub, "add") || !strcmp(sub, "update")) {
        rc = read_spec(what, &a, &spec);
        if (rc != SY_EXIT_OK)
            goto out;
        if (!strcmp(sub, "add") && !spec) {
            fprintf(stderr, "switchyard commands add: --spec or --spec-file is required\n");
            rc = SY_EXIT_USAGE;
            goto out;
        }
        in.spec_json = spec;
        in.status = opt(&a, "--status");
        in.name = opt(&a, "--name");
        const char *t = opt(&a, "--tags");
        if (t) {
            if (!strv_split(&tags, t)) {
                rc = SY_EXIT_ERROR;
                goto out;
            }
            in.tags = (const char *const *)tags.v;
            in.n_tags = tags.n;
            in.set_tags = true;
        }
    }
    rc = open_db(conf, what, true, &conn);
    if (rc != SY_EXIT_OK)
        goto out;
    sy_err_code_t code = SY_OK;
    if (!strcmp(sub, "add")) {
        in.name = a.pos[1];
        code = sy_registry_command_add(conn, &in, &id, &err);
        if (code == SY_OK)
            printf("%s\n", id);
    } else if (!strcmp(sub, "update")) {
        code = sy_registry_command_update(conn, a.pos[1], &in, &err);
        if (code == SY_OK)
            printf("updated command %s\n", in.name ? in.name : a.pos[1]);
    } else if (!strcmp(sub, "list") || !strcmp(sub, "show")) {
        rc = commands_list_show(conn, sub, &a);
        goto out;
    } else if (!strcmp(sub, "set-status")) {
        code = sy_registry_command_set_status(conn, a.pos[1], a.pos[2], &err);
        if (code == SY_OK)
            printf("command %s: %s\n", a.pos[1], a.pos[2]);
    } else if (!strcmp(sub, "tag") || !strcmp(sub, "untag")) {
        for (int i = 2; i < a.n_pos; i++)
            if (!strv_split(&tags, a.pos[i])) {
                rc = SY_EXIT_ERROR;
                goto out;
            }
        code = (sub[0] == 't' ? sy_registry_command_tag : sy_registry_command_untag)(
            conn, a.pos[1], (const char *const *)tags.v, tags.n, &changed, &err);
        if (code == SY_OK)
            printf("command %s: %s\n", a.pos[1],
                   changed ? (sub[0] == 't' ? "tagged" : "untagged")
                           : (sub[0] == 't' ? "already has those tags" : "has none of those tags"));
    } else if (!strcmp(sub, "remove")) {
        code = sy_registry_command_remove(conn, a.pos[1], flag(&a, "--force"), &err);
        if (code == SY_OK)
            printf("removed command %s\n", a.pos[1]);
    }
    if (code != SY_OK)
        rc = fail(what, &err);
out:
    free(id);
    free(spec);
    strv_clear(&tags);
    sy_db_close(conn);
    return rc;
}

/* ==== link / unlink ========================================================================= */

static int link_or_unlink(sy_config_t *conf, int argc, char **argv, bool link)
{
    int rc;
    args_t a;
    PGconn *conn = NULL;
    sy_err_t err = SY_ERR_INIT;
    bool changed = false;
    const char *what = link ? "link" : "unlink";
    if (!parse_args(what, argc - 1, argv + 1, NULL, NULL, &a)) {
        rc = SY_EXIT_USAGE;
        goto out;
    }
    if (a.help) {
        fputs(link_usage, stdout);
        rc = SY_EXIT_OK;
        goto out;
    }
    if (a.n_pos != 2) {
        fputs(link_usage, stderr);
        rc = SY_EXIT_USAGE;
        goto out;
    }
    rc = open_db(conf, what, true, &conn);
    if (rc != SY_EXIT_OK)
        goto out;
    if ((link ? sy_registry_link : sy_registry_unlink)(conn, a.pos[0], a.pos[1], &changed, &err) !=
        SY_OK) {
        rc = fail(what, &err);
        goto out;
    }
    if (link)
        printf(changed ? "linked command %s to cluster %s\n"
                       : "command %s was already linked to cluster %s\n",
               a.pos[0], a.pos[1]);
    else
        printf(changed ? "unlinked command %s from cluster %s\n"
                       : "command %s was not linked to cluster %s\n",
               a.pos[0], a.pos[1]);
out:
    sy_db_close(conn);
    return rc;
}

int sy_cmd_link(sy_config_t *conf, int argc, char **argv)
{
    return link_or_unlink(conf, argc, argv, true);
}

int sy_cmd_unlink(sy_config_t *conf, int argc, char **argv)
{
    return link_or_unlink(conf, argc, argv, false);
}
