/* cli: the switchyard command-line tool's shared pieces — subcommand table and exit codes. */
#ifndef SY_CLI_H
#define SY_CLI_H

#include "sy_config.h"

/* Exit codes of the switchyard CLI (documented in README "Exit codes"). */
enum {
    SY_EXIT_OK = 0,
    SY_EXIT_ERROR = 1,       /* generic failure, message on stderr */
    SY_EXIT_USAGE = 2,       /* bad arguments or config */
    SY_EXIT_BAD_INPUT = 3,   /* input that does not decode / encode (encode, decode) */
    SY_EXIT_NOT_FOUND = 4,   /* the named cluster / command / job does not exist */
    SY_EXIT_UNAVAILABLE = 5, /* the database or Kafka broker (or another service) is unreachable */
    SY_EXIT_REGISTRY_UNAVAILABLE = 6, /* the Schema Registry is unreachable */
    /* the Kafka broker or PostgreSQL refused our credentials or certificate, or we did not
     * trust its certificate (SY_ERR_AUTH): retrying will not help until the config changes */
    SY_EXIT_REFUSED = 7,
    /* submit --wait / logs -f: how the job ended (0 = SUCCEEDED) */
    SY_EXIT_JOB_FAILED = 10,
    SY_EXIT_JOB_KILLED = 11,
    SY_EXIT_JOB_INVALID = 12,  /* the router could not route it (bad tags, no matching cluster) */
    SY_EXIT_WAIT_TIMEOUT = 13, /* --wait-timeout passed before the job ended (it keeps running) */
    SY_EXIT_INTERRUPTED = 128, /* + signal number: 130 Ctrl-C, 143 SIGTERM (job left running) */
};

/* A subcommand: argv[0] is the subcommand name; conf is loaded and owned by main. */
typedef int (*sy_cli_fn)(sy_config_t *conf, int argc, char **argv);

/* Subcommands, one file each (cmd_<name>.c). */
int sy_cmd_encode(sy_config_t *conf, int argc, char **argv);
int sy_cmd_decode(sy_config_t *conf, int argc, char **argv);
int sy_cmd_schemas(sy_config_t *conf, int argc, char **argv);
/* cmd_admin.c: the registry (clusters, commands, links) and database migrations. */
int sy_cmd_admin(sy_config_t *conf, int argc, char **argv);
int sy_cmd_clusters(sy_config_t *conf, int argc, char **argv);
int sy_cmd_commands(sy_config_t *conf, int argc, char **argv);
int sy_cmd_link(sy_config_t *conf, int argc, char **argv);
int sy_cmd_unlink(sy_config_t *conf, int argc, char **argv);
/* cmd_submit.c: jobs — submit (and --wait), status, logs, kill. */
int sy_cmd_submit(sy_config_t *conf, int argc, char **argv);
int sy_cmd_status(sy_config_t *conf, int argc, char **argv);
int sy_cmd_logs(sy_config_t *conf, int argc, char **argv);
int sy_cmd_kill(sy_config_t *conf, int argc, char **argv);

#endif
