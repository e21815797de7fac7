/* sy_driver: the table of backend drivers. */
#include "sy_driver.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

/* One line per driver. */
static const sy_driver_ops_t *const drivers[] = {
    &sy_driver_local,
    &sy_driver_emr,
    &sy_driver_emr_eks,
};

const sy_driver_ops_t *sy_driver_find(const char *backend_kind)
{
    for (size_t i = 0; backend_kind && i < sizeof(drivers) / sizeof(drivers[0]); i++)
        if (!strcmp(drivers[i]->kind, backend_kind))
            return drivers[i];
    return NULL;
}

void sy_driver_wait(const sy_driver_host_t *host, int ms)
{
    struct pollfd p = {.fd = host->wake_fd, .events = POLLIN};
    if (ms < 0)
        ms = 0;
    while (poll(&p, 1, ms) < 0 && errno == EINTR)
        ;
}
