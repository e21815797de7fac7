/* switchyard-worker: thin main — global options, config, signals, run loop. */
#include <malloc.h>
#include <stdio.h>

#include "sy_app.h"
#include "sy_log.h"
#include "sy_signal.h"
#include "sy_worker.h"

int main(int argc, char **argv)
{
    sy_config_t *conf = NULL;
    sy_worker_t *worker = NULL;
    sy_err_t err = SY_ERR_INIT;
    int next = 0;
    int rc = sy_app_init(argc, argv, &conf, &next);
    if (rc)
        return rc;
    if (next < argc) {
        fprintf(stderr, "usage: switchyard-worker [-c FILE] [-X key=value]... [-v|-q]\n");
        rc = 2;
        goto out;
    }
    /* A worker runs a thread per cluster (I/O-bound: waiting on AWS, PostgreSQL, Kafka) and
     * holds thousands of small jobs: glibc's default of up to 8 malloc arenas per core costs
     * far more resident memory in fragmentation than two arenas cost in contention. */
    mallopt(M_ARENA_MAX, 2);
    sy_signal_install();
    if (!(worker = sy_worker_new(conf, &err)) || sy_worker_run(worker, &err) != SY_OK) {
        sy_error("worker", "%s", err.msg);
        rc = 1;
    }
out:
    sy_worker_destroy(worker);
    sy_config_destroy(conf);
    return rc;
}
