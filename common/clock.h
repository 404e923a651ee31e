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

/*  Its origin is arbitrary and only differences mean anything; it starts
 *  a year away from 0 so that a time computed in the past (a retention
 *  deadline, a test's "an hour ago") is never 0 or negative, even on a
 *  machine that booted a minute ago (CLOCK_MONOTONIC starts near 0). */
#define CLOCK_MONO_ORIGIN_MS ((int64_t)365 * 24 * 3600 * 1000)

/*  Milliseconds on a clock that never jumps (timeouts, intervals). */
static inline int64_t
clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return CLOCK_MONO_ORIGIN_MS + (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  Microseconds on the same clock as clock_mono_ms(). */
static inline int64_t
clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return CLOCK_MONO_ORIGIN_MS * 1000 + (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
