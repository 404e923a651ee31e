/*  pub.h: tc-pub, the publisher for every system under test.
 *
 *  main (pub_main.c) reads the options, forks --procs workers and merges
 *  their results. A worker owns the users u with u % procs == idx and
 *  publishes to them round-robin, each event for task t<k> with k cycling
 *  over --tasks-per-user, either on a fixed schedule (--rate R: event i of
 *  a worker is due at t0 + i / (R / procs)) or unthrottled (--rate 0:
 *  keeping --window events unanswered). Each event carries "bt": its due
 *  time on the fixed schedule, its send time when unthrottled
 *  (CLOCK_MONOTONIC ns), so latency measured from it includes any delay in
 *  sending (no coordinated omission). A driver speaks the target's
 *  protocol: pub_sock.c over plain non-blocking sockets (taskcast: a
 *  DEALER speaking ZMTP 3.0 itself, one msgpack event per message; Redis:
 *  RESP PUBLISH; Nchan: HTTP/1.1 POST; all pipelined), or pub_zmq.c
 *  (taskcast through libzmq, --proto libzmq, to cross-check the first).
 *  What to send and how to read taskcast's answers is in pub_render.c.
 */
#ifndef TC_BENCH_PUB_H
#define TC_BENCH_PUB_H

#include <netinet/in.h>
#include <stdint.h>

#include "buf.h"
#include "hist.h"
#include "procs.h"
#include "tally.h"

#define PUB_PROG      "tc-pub"
#define PUB_CONNS_MAX 64

typedef enum { PUB_TASKCAST, PUB_REDIS, PUB_NCHAN } pub_target_t;
typedef enum { PUB_PROTO_ZMTP, PUB_PROTO_LIBZMQ, PUB_PROTO_RESP, PUB_PROTO_HTTP } pub_proto_t;

typedef struct pub_cfg {
    pub_target_t target;
    pub_proto_t proto;
    const char *endpoint;   /* taskcast: a ZeroMQ endpoint; else HOST:PORT */
    struct sockaddr_in dst; /* redis, nchan */
    char host[64];
    int port;
    const char *prefix;     /* redis channel prefix ("tasks:") or nchan path ("/pub/") */
    uint32_t users, tasks_per_user, conns, procs, payload, window;
    double rate, duration_s, drain_s;
    int lazy_acks;          /* fixed rate: read answers when waking up to send */
    int64_t batch_ns;       /* fixed rate: least time between wake-ups (--batch-us) */
    uint64_t count;
} pub_cfg_t;

typedef struct pub_result {
    uint64_t sent, acked, no_receivers, reconnects;
    tally_t errors;             /* error code -> answers that refused an event */
    int64_t t0, t_send_end, t_last_ack;
    int64_t t_last_send; /* due time of the last event (fixed rate), else its send time */
    double cpu_s;
    hist_t ack;                 /* ns from "bt" to the answer */
    hist_t lag;                 /* ns from due time to send (fixed rate only) */
} pub_result_t;

typedef struct pub_ev {
    uint32_t user, task;
    uint64_t useq; /* this worker's count of events for the user, from 1 */
    int64_t bt;
} pub_ev_t;

typedef struct pub_worker pub_worker_t;

/*  A protocol driver. send queues one event: 1 queued, 0 not now (the
 *  transport is full; try again after wait), -1 fatal. wait writes what is
 *  queued, blocks up to timeout_ms for the worker's timer fd, room to send
 *  and, if answers, for an answer, then handles every answer that arrived
 *  (pub_answered). With --lazy-acks on a fixed schedule the worker waits
 *  for its timer only and reads the answers when it wakes up for the next
 *  event: half the wake-ups, an ack latency late by up to one interval. */
typedef struct pub_driver {
    int (*open)(pub_worker_t *w, char *err, size_t errlen);
    int (*send)(pub_worker_t *w, const pub_ev_t *ev);
    int (*wait)(pub_worker_t *w, int timeout_ms, int answers);
    void (*close)(pub_worker_t *w);
} pub_driver_t;

struct pub_worker {
    const pub_cfg_t *cfg;
    pub_result_t *res;
    int idx;
    int tfd;             /* timerfd: the next due time on the fixed schedule */
    uint64_t inflight;   /* sent, not answered */
    char *pad;           /* --payload bytes of 'x', NUL-terminated */
    char producer[32];   /* "bench-<pid>": taskcast's idempotency key with pseq */
    void *drv;           /* the driver's state */
    buf_t scratch;       /* rendering */
};

extern const pub_driver_t pub_zmq_driver;  /* libzmq DEALER */
extern const pub_driver_t pub_sock_driver; /* ZMTP, RESP or HTTP over plain sockets */

/*  taskcast's answers carry the pseq of their event: the due time (bt) of
 *  each event sent, by pseq, in a ring twice the window (an event's slot is
 *  not reused while it can still be answered). */
typedef struct pub_due {
    int64_t *bt;
    uint64_t mask;
    uint64_t pseq; /* of the last event pushed */
} pub_due_t;

int pub_due_init(pub_due_t *d, uint32_t window); /* 0, or -1: out of memory */
/*  Records bt for the next pseq and returns that pseq. */
uint64_t pub_due_push(pub_due_t *d, int64_t bt);
/*  The bt of pseq, or now if pseq was never sent (a malformed answer). */
int64_t pub_due_get(const pub_due_t *d, uint64_t pseq);
void pub_due_free(pub_due_t *d);

/*  Drivers call this once per answer: error is NULL for a success;
 *  no_receivers when the target said nobody was subscribed. */
void pub_answered(pub_worker_t *w, int64_t bt, const char *error, int no_receivers);
/*  The frame a browser receives for ev (what Redis and Nchan forward). */
void pub_render_json(pub_worker_t *w, const pub_ev_t *ev, buf_t *out);
/*  The msgpack event taskcast's broker takes, with w->producer and pseq. */
void pub_render_msgpack(pub_worker_t *w, const pub_ev_t *ev, uint64_t pseq, buf_t *out);
/*  Reads a broker answer: 1 if ok, else 0 with its error code in error
 *  ("malformed_answer" if it is not a map). *pseq is 0 if absent. */
int pub_parse_answer(const void *data, size_t len, uint64_t *pseq, char *error, size_t errlen);

#endif
