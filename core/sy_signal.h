/* sy_signal: clean shutdown — SIGINT/SIGTERM set a flag the run loops poll. */
#ifndef SY_SIGNAL_H
#define SY_SIGNAL_H

#include <stdbool.h>

/* Installs SIGINT and SIGTERM handlers (and ignores SIGPIPE). A second signal while shutting
 * down restores the default action so a stuck process can still be interrupted. */
void sy_signal_install(void);
/* True once SIGINT or SIGTERM arrived (or sy_signal_request_stop was called). */
bool sy_signal_stop_requested(void);
/* The signal number that requested the stop (0 if none or programmatic). */
int sy_signal_which(void);
void sy_signal_request_stop(void);

#endif
