/* sy_time: wall and monotonic clocks in milliseconds. */
#include "sy_time.h"

#include <time.h>

static long long clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long sy_time_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

long long sy_time_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}
