/*  taskcast.c: the worker client. One DEALER to the broker's ingest ROUTER,
 *  one request in flight, resent on a fresh socket when the answer is late
 *  (the ZeroMQ guide's lazy pirate pattern).
 */
#include "taskcast.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "buf.h"
#include "clock.h"
#include "taskcast_link.h"
#include "taskcast_pack.h"
#include "zmsg.h"

#define S_DEFAULT_ENDPOINT   "tcp://127.0.0.1:5555"
#define S_DEFAULT_TIMEOUT_MS 2000
#define S_DEFAULT_RETRIES    5
#define S_TIMEOUT            1 /* internal: this attempt got no answer */

struct tc_client {
    tc_link_t link; /* the DEALER (taskcast_link.c) */
    char producer[TC_PRODUCER_MAX + 1];
    int timeout_ms;
    int retries;   /* resends after the first attempt */
    uint64_t pseq; /* last one used */
    buf_t out;     /* the request being sent, kept for resends */
};

/* tc_client_new: see taskcast.h */
int
tc_client_new(tc_client_t **out, const tc_options_t *opts)
{
    static const tc_options_t defaults = {0};
    if (!out)
        return TC_EINVAL;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (opts->timeout_ms < 0 || opts->retries < -1)
        return TC_EINVAL;
    if (opts->producer && !tc_producer_valid(opts->producer))
        return TC_EINVAL;
    if (sodium_init() < 0) {
        errno = ENOSYS;
        return TC_ESYS;
    }
    const char *endpoint = opts->endpoint;
    if (!endpoint) {
        endpoint = getenv("TASKCAST_INGEST");
        if (!endpoint || !*endpoint)
            endpoint = S_DEFAULT_ENDPOINT;
    }

    tc_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return TC_ESYS;
    buf_init(&self->out);
    self->timeout_ms = opts->timeout_ms ? opts->timeout_ms : S_DEFAULT_TIMEOUT_MS;
    self->retries = opts->retries == 0 ? S_DEFAULT_RETRIES : opts->retries < 0 ? 0 : opts->retries;
    if (opts->producer)
        strcpy(self->producer, opts->producer); /* length checked above */
    else
        tc_link_random_id(self->producer, sizeof self->producer, "w-");
    int rc = tc_link_init(&self->link, endpoint);
    if (rc != TC_OK) {
        tc_client_destroy(&self);
        return rc;
    }
    *out = self;
    return TC_OK;
}

/* tc_client_destroy: see taskcast.h */
void
tc_client_destroy(tc_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tc_client_t *self = *self_p;
    tc_link_fini(&self->link);
    buf_free(&self->out);
    free(self);
    *self_p = NULL;
}

/*  Waits up to timeout_ms for the answer to pseq, skipping stale answers.
 *  Returns TC_OK, TC_EREJECTED, TC_EPROTO, TC_ESYS or S_TIMEOUT. */
static int
s_await(tc_client_t *self, uint64_t pseq, tc_reply_t *reply)
{
    int64_t deadline = clock_mono_ms() + self->timeout_ms;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            return S_TIMEOUT;
        zmq_pollitem_t item = {.socket = self->link.sock, .events = ZMQ_POLLIN};
        int n = zmq_poll(&item, 1, (long)left);
        if (n < 0 && errno == EINTR)
            continue; /* a signal: keep the promise of one answer per event */
        if (n < 0)
            return TC_ESYS;
        if (n == 0 || !(item.revents & ZMQ_POLLIN))
            continue;
        zmsg_t msg;
        if (zmsg_recv(&msg, self->link.sock, ZMQ_DONTWAIT) != 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return TC_ESYS;
        }
        /* The contract's answer is one frame: anything else is not understood. */
        int has_pseq = 0;
        int parsed = msg.count == 1 && !msg.truncated &&
                     tc_reply_parse(zmsg_data(&msg, 0), zmsg_size(&msg, 0), reply, &has_pseq) == 0;
        zmsg_close(&msg);
        if (!parsed)
            return TC_EPROTO;
        if (has_pseq && reply->pseq != pseq)
            continue; /* the answer to an earlier request: not ours */
        if (!has_pseq)
            reply->pseq = pseq; /* a rejection of an event it could not read */
        return reply->ok ? TC_OK : TC_EREJECTED;
    }
}

/* tc_publish: see taskcast.h */
int
tc_publish(tc_client_t *self, const tc_event_t *ev, tc_reply_t *reply)
{
    tc_reply_t local;
    if (!reply)
        reply = &local;
    memset(reply, 0, sizeof *reply);
    if (!self || tc_event_check(ev) != 0)
        return TC_EINVAL;
    uint64_t pseq = self->pseq + 1;
    buf_reset(&self->out);
    if (tc_pack_event(ev, self->producer, pseq, &self->out) != 0) {
        errno = ENOMEM;
        return TC_ESYS;
    }
    self->pseq = pseq;
    reply->pseq = pseq;
    for (int attempt = 0;; attempt++) {
        if (!self->link.sock) {
            int rc = tc_link_open(&self->link);
            if (rc != TC_OK)
                return rc;
        }
        /* With no connected peer the DEALER queues the frame; EAGAIN (queue
         * full) just lets this attempt time out. */
        if (zmq_send(self->link.sock, self->out.data, self->out.len, ZMQ_DONTWAIT) < 0 &&
            errno != EAGAIN && errno != EINTR) {
            tc_link_close(&self->link);
            return TC_ESYS;
        }
        int rc = s_await(self, pseq, reply);
        if (rc != S_TIMEOUT) {
            if (rc == TC_ESYS)
                tc_link_close(&self->link);
            return rc;
        }
        /* Lazy pirate: the old socket may hold a dead connection or a late
         * answer; drop it and resend the identical bytes on a new one. */
        tc_link_close(&self->link);
        memset(reply, 0, sizeof *reply);
        reply->pseq = pseq;
        if (attempt >= self->retries)
            return TC_ETIMEOUT;
    }
}

/* tc_client_producer: see taskcast.h */
const char *
tc_client_producer(const tc_client_t *self)
{
    return self ? self->producer : NULL;
}

/* tc_strerror: see taskcast.h */
const char *
tc_strerror(int code)
{
    switch (code) {
    case TC_OK:
        return "the broker recorded the event";
    case TC_EREJECTED:
        return "the broker rejected the event";
    case TC_ETIMEOUT:
        return "the broker did not answer in time, after every retry";
    case TC_EINVAL:
        return "invalid argument: a required field is missing or a value is out of range";
    case TC_ESYS:
        return "system or ZeroMQ failure";
    case TC_EPROTO:
        return "the broker's answer was not understood";
    default:
        return "unknown error";
    }
}
