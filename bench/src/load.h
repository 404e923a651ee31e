/*  load.h: tc-load, the WebSocket load client.
 *
 *  main (load_main.c) reads the options, forks the worker processes and
 *  coordinates the two phases through the shared header: connecting (until
 *  every connection is ready or failed), then measuring (until --duration
 *  has passed, --expect event frames arrived, or a signal). Each worker
 *  (load_conn.c) runs one epoll loop over its share of the connections and
 *  leaves its counts and histograms in its slot; main merges the slots and
 *  prints one JSON object on stdout and one line on stderr.
 */
#ifndef TC_BENCH_LOAD_H
#define TC_BENCH_LOAD_H

#include <netinet/in.h>
#include <stdint.h>

#include "hist.h"
#include "procs.h"
#include "tally.h"

#define LOAD_PROG "tc-load"

/* Shared counters (procs_hdr_t.ctr). */
enum { LOAD_CTR_SETTLED, LOAD_CTR_READY, LOAD_CTR_FRAMES, LOAD_CTR_OPEN };
/* Phases (procs_hdr_t.phase). */
enum { LOAD_PHASE_CONNECT, LOAD_PHASE_MEASURE };

typedef struct load_cfg {
    struct sockaddr_in dst;
    char host[64];
    int port;
    const char *path;            /* URL path before the user id */
    const char *secret;          /* HS256 secret, or NULL: no token */
    uint32_t users, conns, procs;
    int ready_upgrade;           /* 1: ready at the 101, 0: at the hello frame */
    int idle;
    double duration_s, connect_rate, connect_timeout_s;
    uint32_t inflight;           /* connects in flight, all processes together */
    uint32_t src_base, src_count; /* source addresses (host order), 0: no bind */
    uint64_t expect;
    int64_t start_ns;            /* frames with an older "bt" are stale */
} load_cfg_t;

typedef struct load_result {
    uint64_t attempted, established, ready, closed_after_ready;
    uint64_t frames, other_frames, stale_frames, pings;
    uint64_t open_at_end;
    int64_t t_first_connect, t_last_ready, t_first_frame, t_last_frame;
    double cpu_s, cpu_measure_s, wall_measure_s;
    tally_t failed;  /* reason -> connections that never became ready */
    tally_t closes;  /* close code -> connections the server closed (1006: no close frame) */
    hist_t latency;  /* ns from "bt" to receipt */
    hist_t connect;  /* ns from connect() to ready */
} load_result_t;

/*  The worker process idx of procs.h: holds connections
 *  [idx*conns/procs, (idx+1)*conns/procs). arg is the load_cfg_t. */
int load_conn_run(int idx, procs_hdr_t *hdr, void *slot, void *arg);

#endif
