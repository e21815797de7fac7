/* switchyard: the command-line tool — thin main: global options, then one subcommand. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sy_app.h"
#include "sy_signal.h"

/* `config` prints the effective configuration; `config --reference` prints the table of every
 * key as Markdown (the README's configuration reference is this output). */
static int cmd_config(sy_config_t *conf, int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--reference")) {
        size_t n;
        const sy_config_def_t *t = sy_config_table(&n);
        printf("| key | environment variable | default | description |\n|---|---|---|---|\n");
        for (size_t i = 0; i < n; i++) {
            char env[128];
            size_t j = 0;
            for (const char *k = t[i].key; *k && j < sizeof(env) - 1; k++)
                env[j++] = (*k == '.' || *k == '-') ? '_' : (char)toupper((unsigned char)*k);
            env[j] = '\0';
            printf("| `%s` | `SWITCHYARD_%s` | `%s` | %s |\n", t[i].key, env,
                   *t[i].default_value ? t[i].default_value : "\"\"", t[i].description);
        }
        printf("| `kafka.<property>` | `SWITCHYARD_KAFKA_<PROPERTY>` | | any librdkafka "
               "property, passed through as is (SASL, SSL, timeouts, ...) |\n");
        return SY_EXIT_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: switchyard config [--reference]\n");
        return SY_EXIT_USAGE;
    }
    sy_config_dump(conf, stdout);
    return SY_EXIT_OK;
}

static const struct {
    const char *name;
    sy_cli_fn fn;
    const char *summary;
} commands[] = {
    {"encode", sy_cmd_encode, "JSON on stdin -> framed Avro on stdout (--type T)"},
    {"decode", sy_cmd_decode, "framed Avro on stdin -> JSON on stdout"},
    {"schemas", sy_cmd_schemas, "print the Avro schemas"},
    {"config", cmd_config, "print the effective configuration (secrets masked)"},
    {"admin", sy_cmd_admin, "database: migrate | version"},
    {"clusters", sy_cmd_clusters, "registry clusters: add, update, list, show, tag, remove, ..."},
    {"commands", sy_cmd_commands, "registry commands: add, update, list, show, tag, remove, ..."},
    {"link", sy_cmd_link, "link COMMAND CLUSTER: let the cluster run the command"},
    {"unlink", sy_cmd_unlink, "unlink COMMAND CLUSTER"},
    {"submit", sy_cmd_submit, "submit a job (--wait: follow it to its end, streaming its logs)"},
    {"status", sy_cmd_status, "status JOB_ID: the job's latest state"},
    {"logs", sy_cmd_logs, "logs JOB_ID [-f]: the job's output (-f: follow to its end)"},
    {"kill", sy_cmd_kill, "kill JOB_ID [--reason R]: ask the worker to cancel the job"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: switchyard [-c FILE] [-X key=value]... [-v|-q] <command> [args]\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nConfiguration: file (-c or $SWITCHYARD_CONFIG) < environment (SWITCHYARD_<KEY>) "
            "< -X key=value.\n");
}

int main(int argc, char **argv)
{
    sy_config_t *conf = NULL;
    int next = 0;
    if (argc >= 2 &&
        (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        usage(stdout);
        return SY_EXIT_OK;
    }
    int rc = sy_app_init(argc, argv, &conf, &next);
    if (rc)
        return rc;
    if (next >= argc) {
        usage(stderr);
        rc = SY_EXIT_USAGE;
        goto out;
    }
    sy_signal_install();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!strcmp(argv[next], commands[i].name)) {
            rc = commands[i].fn(conf, argc - next, argv + next);
            goto out;
        }
    }
    fprintf(stderr, "switchyard: unknown command \"%s\"\n", argv[next]);
    usage(stderr);
    rc = SY_EXIT_USAGE;
out:
    sy_config_destroy(conf);
    return rc;
}
