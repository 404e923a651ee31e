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
    pub_due_t due;
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
    z->ctx = zmq_ctx_new();
    if (pub_due_init(&z->due, cfg->window) != 0 || !z->ctx) {
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
    pub_render_msgpack(w, ev, z->due.pseq + 1, b);
    if (!buf_ok(b))
        return -1;
    if (zmq_send(z->socks[z->next], b->data, b->len, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? 0 : -1;
    pub_due_push(&z->due, ev->bt);
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
            pub_answered(w, pub_due_get(&z->due, pseq), ok ? NULL : error, 0);
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
    pub_due_free(&z->due);
    free(z);
    w->drv = NULL;
}

const pub_driver_t pub_zmq_driver = {s_open, s_send, s_wait, s_close};
