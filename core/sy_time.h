/* sy_time: the two clocks every module reads — wall time for timestamps in events, monotonic
 * time for deadlines and intervals — in milliseconds. */
#ifndef SY_TIME_H
#define SY_TIME_H

/* Epoch milliseconds (CLOCK_REALTIME): for timestamps other processes read. */
long long sy_time_wall_ms(void);
/* Milliseconds of CLOCK_MONOTONIC: for deadlines, timeouts and intervals within a process. */
long long sy_time_mono_ms(void);

#endif
