/* cli: the switchyard command-line tool's shared pieces — subcommand table and exit codes. */
#ifndef SY_CLI_H
#define SY_CLI_H

#include "sy_config.h"

/* Exit codes of the switchyard CLI (documented in README "Exit codes"). */
enum {
    SY_EXIT_OK = 0,
    SY_EXIT_ERROR = 1,        /* generic failure, message on stderr */
    SY_EXIT_USAGE = 2,        /* bad arguments or config */
    SY_EXIT_BAD_INPUT = 3,    /* input that does not decode / encode (encode, decode) */
};

/* A subcommand: argv[0] is the subcommand name; conf is loaded and owned by main. */
typedef int (*sy_cli_fn)(sy_config_t *conf, int argc, char **argv);

/* Subcommands, one file each (cmd_<name>.c). */
int sy_cmd_encode(sy_config_t *conf, int argc, char **argv);
int sy_cmd_decode(sy_config_t *conf, int argc, char **argv);
int sy_cmd_schemas(sy_config_t *conf, int argc, char **argv);

#endif
