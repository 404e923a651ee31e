/*  link.c: the DEALER to the broker's jobs ROUTER (libzmq).
 *
 *  Paranoid Pirate: hello on every new socket; a heartbeat whenever nothing
 *  was sent for heartbeat_ms; the broker is alive while anything arrived
 *  from it within heartbeat_ms x liveness. When it is silent that long the
 *  socket is closed (linger 0: what was queued for the dead peer is
 *  dropped), its running jobs are abandoned (the broker retries them), and
 *  a new socket says hello again.
 *
 *  ZMQ_FD only signals edges: pool_link_drain() reads ZMQ_EVENTS and
 *  receives until nothing is left, and the loop calls it after every wake-up
 *  (sends included) and on every timer tick.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"
#include "pool.h"

#define S_MSG_MAX (EVENT_WIRE_MAX * 2) /* a job: args <= 64 KiB plus fields */

int
pool_link_open(pool_t *p, int64_t now_ms)
{
    p->sock = zmq_socket(p->zctx, ZMQ_DEALER);
    if (!p->sock) {
        snprintf(p->errbuf, sizeof p->errbuf, "zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }
    int linger = 0, ivl = 100, ivl_max = 2000;
    int64_t max = S_MSG_MAX;
    size_t fdlen = sizeof p->zfd;
    if (zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(p->sock, ZMQ_MAXMSGSIZE, &max, sizeof max) ||
        zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) ||
        zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) ||
        zmq_connect(p->sock, p->endpoint) ||
        zmq_getsockopt(p->sock, ZMQ_FD, &p->zfd, &fdlen)) {
        snprintf(p->errbuf, sizeof p->errbuf, "%s: %s", p->endpoint, zmq_strerror(errno));
        zmq_close(p->sock);
        p->sock = NULL;
        return -1;
    }
    p->connects++;
    p->last_recv_ms = now_ms;
    buf_reset(&p->out);
    const char *kinds[p->cfg.n];
    for (size_t i = 0; i < p->cfg.n; i++)
        kinds[i] = p->cfg.kinds[i].name;
    jobs_pack_hello(&p->out, p->name, kinds, p->cfg.n, p->concurrency);
    pool_link_send(p);
    log_debug(&p->log, "hello sent to %s (connection %llu)", p->endpoint,
              (unsigned long long)p->connects);
    return 0;
}

void
pool_link_close(pool_t *p, int linger_ms)
{
    if (!p->sock)
        return;
    zmq_setsockopt(p->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(p->sock);
    p->sock = NULL;
    p->zfd = -1;
}

void
pool_link_send(pool_t *p)
{
    if (!p->sock || !buf_ok(&p->out))
        return;
    if (zmq_send(p->sock, p->out.data, p->out.len, ZMQ_DONTWAIT) < 0)
        log_warn(&p->log, "message to the broker dropped: %s", zmq_strerror(errno));
    p->last_send_ms = clock_mono_ms();
}

static void
s_handle(pool_t *p, const void *data, size_t len, int64_t now_ms)
{
    jobs_msg_t m;
    char err[160];
    if (jobs_wire_read(data, len, &m, err, sizeof err) != 0) {
        log_warn(&p->log, "unreadable message from the broker: %s", err);
        return;
    }
    switch (m.type) {
    case JOBS_WELCOME:
        if (m.has_heartbeat_ms && m.heartbeat_ms >= 10 && m.heartbeat_ms <= 600000)
            p->hb_ms = m.heartbeat_ms;
        if (m.has_liveness && m.liveness >= 1 && m.liveness <= 100)
            p->liveness = m.liveness;
        log_info(&p->log, "welcomed by the broker at %s heartbeat_ms=%llu liveness=%llu",
                 p->endpoint, (unsigned long long)p->hb_ms, (unsigned long long)p->liveness);
        break;
    case JOBS_JOB:
        pool_job_start(p, &m, now_ms);
        break;
    case JOBS_CANCEL:
        pool_job_cancel(p, &m, now_ms);
        break;
    case JOBS_HEARTBEAT:
        break;
    default:
        log_debug(&p->log, "ignored a %s message from the broker", jobs_type_name(m.type));
        break;
    }
}

void
pool_link_drain(pool_t *p, int64_t now_ms)
{
    while (p->sock) {
        int events = 0;
        size_t elen = sizeof events;
        if (zmq_getsockopt(p->sock, ZMQ_EVENTS, &events, &elen) != 0 || !(events & ZMQ_POLLIN))
            return;
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, p->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        int more = zmq_msg_more(&msg);
        if (more && zmq_msg_size(&msg) == 0) { /* a REQ-style empty delimiter */
            zmq_msg_close(&msg);
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, p->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&msg);
                return;
            }
            more = zmq_msg_more(&msg);
        }
        p->last_recv_ms = now_ms;
        if (p->lost) {
            p->lost = 0;
            log_info(&p->log, "broker back at %s", p->endpoint);
        }
        if (!more)
            s_handle(p, zmq_msg_data(&msg), zmq_msg_size(&msg), now_ms);
        zmq_msg_close(&msg);
        while (more) { /* extra frames are not the protocol: drop them */
            zmq_msg_init(&msg);
            int rc = zmq_msg_recv(&msg, p->sock, ZMQ_DONTWAIT);
            more = rc >= 0 && zmq_msg_more(&msg);
            zmq_msg_close(&msg);
        }
    }
}

void
pool_link_tick(pool_t *p, int64_t now_ms)
{
    if (!p->sock)
        return;
    int64_t silent = now_ms - p->last_recv_ms;
    if (!p->stopping && silent > (int64_t)(p->hb_ms * p->liveness)) {
        if (!p->lost)
            log_warn(&p->log, "broker lost: nothing from %s for %lld ms; reconnecting",
                     p->endpoint, (long long)silent);
        else
            log_debug(&p->log, "broker still silent; reconnecting");
        p->lost = 1;
        pool_job_abandon_all(p, now_ms);
        pool_link_close(p, 0);
        if (pool_link_open(p, now_ms) != 0)
            log_error(&p->log, "reconnect failed: %s", p->errbuf);
        return;
    }
    if (now_ms - p->last_send_ms >= (int64_t)p->hb_ms) {
        buf_reset(&p->out);
        jobs_pack_simple(&p->out, JOBS_HEARTBEAT);
        pool_link_send(p);
    }
}
