/* switchyard-worker: thin main — global options, config, signals, run loop. */
#include <stdio.h>

#include "sy_app.h"
#include "sy_log.h"
#include "sy_signal.h"

int main(int argc, char **argv)
{
    sy_config_t *conf = NULL;
    int next = 0;
    int rc = sy_app_init(argc, argv, &conf, &next);
    if (rc)
        return rc;
    sy_signal_install();
    sy_error("worker", "the worker run loop is not implemented yet");
    sy_config_destroy(conf);
    return 1;
}
