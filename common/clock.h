/*  clock.h: the two clocks taskcast reads. */
#ifndef TC_CLOCK_H
#define TC_CLOCK_H

#include <stdint.h>
#include <time.h>

/*  Milliseconds since the Unix epoch (event timestamps, token expiry). */
static inline int64_t
clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  Milliseconds on a clock that never jumps (timeouts, intervals). */
static inline int64_t
clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
