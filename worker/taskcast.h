/*  taskcast.h: the worker API. Link libtaskcast (target tc_worker) and
 *  report task progress to a taskcast broker.
 *
 *      tc_client_t *c = NULL;
 *      tc_options_t o = {0};             // all defaults
 *      if (tc_client_new(&c, &o) != TC_OK) ...
 *      tc_event_t ev = {.task_id = "render-7", .user_id = "2",
 *                       .status = "running", .has_progress = 1, .progress = 42};
 *      tc_reply_t r;
 *      int rc = tc_publish(c, &ev, &r);  // waits for the broker's answer
 *      if (rc == TC_EREJECTED) fprintf(stderr, "%s: %s\n", r.error, r.detail);
 *      tc_client_destroy(&c);
 *
 *  Delivery: every event carries an idempotency key (producer, pseq). The
 *  producer id is random per client unless set; pseq counts from 1. If the
 *  broker does not answer within timeout_ms, tc_publish() resends the same
 *  event with the same key (on a fresh socket) up to `retries` times, so a
 *  broker restart or a lost answer neither loses the event nor publishes it
 *  twice. A client is not thread-safe: use one per thread.
 */
#ifndef TASKCAST_H
#define TASKCAST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_client tc_client_t;

typedef struct tc_options {
    const char *endpoint; /* broker ingest; NULL: $TASKCAST_INGEST or tcp://127.0.0.1:5555 */
    const char *producer; /* idempotency producer id (<= 128 bytes); NULL: random */
    int timeout_ms;       /* wait for an answer per attempt; 0: 2000 */
    int retries;          /* resends after a timeout; 0: 5, -1: none */
} tc_options_t;

typedef struct tc_event {
    const char *task_id; /* required, 1..128 bytes */
    const char *user_id; /* required, 1..64 of [A-Za-z0-9_.-] */
    const char *status;  /* required: queued running succeeded failed cancelled */
    int has_progress;    /* 1: send progress */
    double progress;     /* 0..100; sent as an integer when it is whole */
    const char *message; /* NULL: none; <= 4 KiB UTF-8 */
    const void *data;    /* raw msgpack value (any type), NULL: none; <= 64 KiB */
    size_t data_len;
    int64_t ts; /* ms since the Unix epoch; 0: the broker stamps it */
} tc_event_t;

typedef struct tc_reply {
    int ok;           /* 1: recorded and published (or a duplicate of one that was) */
    uint64_t seq;     /* per-user sequence number the broker gave the event */
    uint64_t pseq;    /* the idempotency sequence number this answer is for */
    int duplicate;    /* 1: the broker had this (producer, pseq) already */
    char error[32];   /* on rejection: the stable error code, e.g. "invalid_value" */
    char detail[256]; /* on rejection: one human sentence */
} tc_reply_t;

enum {
    TC_OK = 0,
    TC_EREJECTED = -1, /* the broker answered ok:false; see reply.error/detail */
    TC_ETIMEOUT = -2,  /* no answer after every retry */
    TC_EINVAL = -3,    /* bad argument (caught before sending) */
    TC_ESYS = -4,      /* ZeroMQ or memory failure; see errno */
    TC_EPROTO = -5     /* the broker's answer was not understood */
};

/*  Creates a client and connects it (connecting does not wait for the
 *  broker). Returns TC_OK and sets *out, or an error code. */
int tc_client_new(tc_client_t **out, const tc_options_t *opts);

/*  Closes the socket without waiting and frees the client; sets *self_p NULL. */
void tc_client_destroy(tc_client_t **self_p);

/*  Sends one event and waits for the broker's answer (see Delivery above).
 *  reply may be NULL. Returns TC_OK, TC_EREJECTED, TC_ETIMEOUT, TC_EINVAL,
 *  TC_ESYS or TC_EPROTO. */
int tc_publish(tc_client_t *self, const tc_event_t *ev, tc_reply_t *reply);

/*  The producer id this client sends. */
const char *tc_client_producer(const tc_client_t *self);

/*  A sentence for a return code. */
const char *tc_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
