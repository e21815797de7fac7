/* switchyard-router: thin main — global options, config, signals, run loop. */
#include <malloc.h>
#include <stdio.h>

#include "sy_app.h"
#include "sy_log.h"
#include "sy_router.h"
#include "sy_signal.h"

int main(int argc, char **argv)
{
    sy_config_t *conf = NULL;
    sy_router_t *router = NULL;
    sy_err_t err = SY_ERR_INIT;
    int next = 0;
    int rc = sy_app_init(argc, argv, &conf, &next);
    if (rc)
        return rc;
    if (next < argc) {
        fprintf(stderr, "usage: switchyard-router [-c FILE] [-X key=value]... [-v|-q]\n");
        rc = 2;
        goto out;
    }
    /* Each batch allocates tens of MiB of encoded records that librdkafka frees once they are
     * delivered: with glibc's default 128 KiB trim threshold the heap shrank after every batch
     * and the next one faulted its pages back in (a tenth of the routing thread's time). */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    sy_signal_install();
    if (!(router = sy_router_new(conf, &err)) || sy_router_run(router, &err) != SY_OK) {
        sy_error("router", "%s", err.msg);
        rc = 1;
    }
out:
    sy_router_destroy(router);
    sy_config_destroy(conf);
    return rc;
}
