/*  procs.h: forked worker processes with a shared result area, and the
 *  clocks and limits both tools need.
 *
 *  A tool that must hold more than one process can (file descriptors) or
 *  use more than one core forks n children. The parent maps one shared area
 *  before forking: a header (a stop flag, a phase, a few counters every
 *  child adds to) and one slot per child where the child leaves its
 *  results (flat structs: counters and histograms). The parent only
 *  coordinates: it calls a tick function every 10 ms, turns SIGINT/SIGTERM
 *  into the stop flag, and merges the slots once every child has exited.
 */
#ifndef TC_BENCH_PROCS_H
#define TC_BENCH_PROCS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROCS_MAX      64
#define PROCS_COUNTERS 8

typedef struct procs_hdr {
    atomic_int stop;  /* set by the parent: children finish and write their slot */
    atomic_int phase; /* tool-defined, set by the parent */
    atomic_uint_fast64_t ctr[PROCS_COUNTERS]; /* tool-defined, children add */
} procs_hdr_t;

typedef int (*procs_child_fn)(int idx, procs_hdr_t *hdr, void *slot, void *arg);
typedef int (*procs_tick_fn)(procs_hdr_t *hdr, void *arg); /* 1: set stop */

typedef struct procs {
    int n;
    size_t slot_size;
    void *map;
    size_t map_len;
    int sigfd;
    pid_t pids[PROCS_MAX];
    int status[PROCS_MAX]; /* exit status of each child, -1 if killed */
} procs_t;

/*  Maps the shared area and forks n children, each running child(idx, hdr,
 *  slot, arg) and exiting with its return value. SIGINT and SIGTERM are
 *  blocked in all of them (the parent reads them). 0, or -1 with err. */
int procs_start(procs_t *self, int n, size_t slot_size, procs_child_fn child, void *arg,
                char *err, size_t errlen);
/*  Coordinates until every child has exited: tick every 10 ms (stop when it
 *  returns 1), stop on SIGINT/SIGTERM, SIGKILL children still alive
 *  grace_s seconds after stop. Returns the number of children that did not
 *  exit with status 0. */
int procs_wait(procs_t *self, procs_tick_fn tick, void *arg, double grace_s);
/*  procs_start then procs_wait. Returns the number of children that did
 *  not exit 0, or -1 with err if they could not all be started (those that
 *  were are stopped and reaped). The slots stay readable until procs_end. */
int procs_run(procs_t *self, int n, size_t slot_size, procs_child_fn child, void *arg,
              procs_tick_fn tick, void *tick_arg, double grace_s, char *err, size_t errlen);
procs_hdr_t *procs_hdr(procs_t *self);
void *procs_slot(procs_t *self, int idx);
/*  Unmaps the area. */
void procs_end(procs_t *self);

/*  CLOCK_MONOTONIC in nanoseconds (the clock of the "bt" timestamps). */
int64_t procs_now_ns(void);
/*  CPU seconds (user + system) this process used so far. */
double procs_cpu_s(void);
/*  Raises RLIMIT_NOFILE's soft limit to need (at most the hard limit).
 *  Returns the resulting soft limit. */
long procs_raise_nofile(long need);

#endif
