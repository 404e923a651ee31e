/*  pub_zmq.c: taskcast through libzmq (--proto libzmq): DEALER sockets to
 *  the broker's ingest, one msgpack event per message, pipelined; answers
 *  are matched to their events by pseq (docs/protocol.md, section 1).
 *
 *  The default driver speaks ZMTP itself (pub_sock.c); this one exists to
 *  cross-check it. It costs the publisher more CPU: every message crosses
 *  libzmq's I/O thread, a few thread wake-ups per event at low rates.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "pub.h"

typedef struct s_zmq {
    void *ctx;
    void *socks[PUB_CONNS_MAX];
    int n, next;
    uint64_t pseq; /* of the last event sent */
    int64_t *due;  /* bt by pseq & mask: the window is smaller than the ring */
    uint64_t mask;
} s_zmq_t;

static int
s_open(pub_worker_t *w, char *err, size_t errlen)
{
    const pub_cfg_t *cfg = w->cfg;
    s_zmq_t *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->drv = z;
    uint64_t ring = 1;
    while (ring < (uint64_t)cfg->window * 2)
        ring <<= 1;
    z->mask = ring - 1;
    z->due = calloc(ring, sizeof *z->due);
    z->ctx = zmq_ctx_new();
    if (!z->due || !z->ctx) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < cfg->conns; i++) {
        void *s = zmq_socket(z->ctx, ZMQ_DEALER);
        if (!s) {
            snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
            return -1;
        }
        z->socks[z->n++] = s;
        int zero = 0, hwm = (int)cfg->window * 2 + 1000;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (zmq_connect(s, cfg->endpoint) != 0) {
            snprintf(err, errlen, "zmq_connect %s: %s", cfg->endpoint, zmq_strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int
s_send(pub_worker_t *w, const pub_ev_t *ev)
{
    s_zmq_t *z = w->drv;
    buf_t *b = &w->scratch;
    buf_reset(b);
    uint64_t pseq = z->pseq + 1;
    pub_render_msgpack(w, ev, pseq, b);
    if (!buf_ok(b))
        return -1;
    if (zmq_send(z->socks[z->next], b->data, b->len, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? 0 : -1;
    z->pseq = pseq;
    z->due[pseq & z->mask] = ev->bt;
    z->next = z->next + 1 == z->n ? 0 : z->next + 1;
    return 1;
}

static int
s_wait(pub_worker_t *w, int timeout_ms, int answers)
{
    s_zmq_t *z = w->drv;
    if (timeout_ms > 0) {
        zmq_pollitem_t items[PUB_CONNS_MAX + 1];
        items[0] = (zmq_pollitem_t){.fd = w->tfd, .events = ZMQ_POLLIN};
        for (int i = 0; i < z->n; i++)
            items[i + 1] = (zmq_pollitem_t){.socket = z->socks[i], .events = ZMQ_POLLIN};
        if (zmq_poll(items, answers ? z->n + 1 : 1, timeout_ms) < 0 && errno != EINTR)
            return -1;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    char error[TALLY_KEYLEN];
    for (int i = 0; i < z->n; i++)
        for (int k = 0; k < 4096 && zmq_msg_recv(&msg, z->socks[i], ZMQ_DONTWAIT) >= 0; k++) {
            uint64_t pseq;
            int ok = pub_parse_answer(zmq_msg_data(&msg), zmq_msg_size(&msg), &pseq, error,
                                      sizeof error);
            int64_t bt = pseq && pseq <= z->pseq ? z->due[pseq & z->mask] : procs_now_ns();
            pub_answered(w, bt, ok ? NULL : error, 0);
        }
    zmq_msg_close(&msg);
    return 0;
}

static void
s_close(pub_worker_t *w)
{
    s_zmq_t *z = w->drv;
    if (!z)
        return;
    for (int i = 0; i < z->n; i++)
        zmq_close(z->socks[i]);
    if (z->ctx)
        zmq_ctx_term(z->ctx);
    free(z->due);
    free(z);
    w->drv = NULL;
}

const pub_driver_t pub_zmq_driver = {s_open, s_send, s_wait, s_close};
