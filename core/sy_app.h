/* sy_app: what every binary's main does first — global options, config precedence, logging. */
#ifndef SY_APP_H
#define SY_APP_H

#include "sy_config.h"

/* Parses leading global options from argv:
 *   -c, --config FILE     config file (else $SWITCHYARD_CONFIG)
 *   -X, --set KEY=VALUE   set a config key (repeatable; wins over file and environment)
 *   -v, --verbose         log.level=debug
 *   -q, --quiet           log.level=warn
 * stopping at the first argument that is not one of them. Loads the config with the usual
 * precedence (file < environment < command line) and applies log.level / log.format.
 * On success returns 0, sets *conf_out (caller owns, sy_config_destroy) and *next to the index
 * of the first unparsed argument. On error prints a message to stderr and returns 2 (usage). */
int sy_app_init(int argc, char **argv, sy_config_t **conf_out, int *next);

/* Returns 1 if argv[i] is a global option taking a value, 2 if a flag, 0 otherwise. */
int sy_app_is_global_option(const char *arg);

#endif
