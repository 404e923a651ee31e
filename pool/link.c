/*  link.c: the DEALER to the broker's jobs ROUTER, spoken by the worker's
 *  own loop (common/zconn.c: ZMTP without libzmq's I/O thread, which cost
 *  ~25 system calls and several thread wake-ups per job).
 *
 *  Paranoid Pirate: hello on every new link; a heartbeat whenever nothing
 *  was sent for heartbeat_ms; the broker is alive while anything arrived
 *  from it within heartbeat_ms x liveness. When it is silent that long the
 *  link is closed (what was queued for the dead peer is dropped), its
 *  running jobs are abandoned (the broker retries them), and a new link
 *  says hello again. A TCP connection that merely drops is reconnected by
 *  zconn, as libzmq would; messages sent while it is down are dropped.
 *
 *  Messages are appended to the link's buffer and written once per turn of
 *  the loop (pool_link_flush), so a job's started and done often leave in
 *  one write.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "pool.h"
#include "zmtp.h"

#define S_MSG_MAX (EVENT_WIRE_MAX * 2) /* a job: args <= 64 KiB plus fields */

static void s_on_frame(void *owner, zconn_t *z, const uint8_t *data, size_t len, int first,
                       int more);

static void
s_on_up(void *owner, zconn_t *z)
{
    pool_t *p = owner;
    if (!p->hello_due)
        return; /* a reconnect of the same link, as libzmq's: no new hello */
    p->hello_due = 0;
    const char *kinds[p->cfg.n];
    for (size_t i = 0; i < p->cfg.n; i++)
        kinds[i] = p->cfg.kinds[i].name;
    buf_reset(&p->out);
    jobs_pack_hello(&p->out, p->name, kinds, p->cfg.n, p->concurrency);
    pool_link_send(p);
    log_debug(&p->log, "hello sent to %s (link %llu)", p->endpoint,
              (unsigned long long)p->connects);
}

int
pool_link_open(pool_t *p, int64_t now_ms)
{
    const zconn_spec_t spec = {
        .name = "jobs",
        .endpoint = p->endpoint,
        .type = "DEALER",
        .peer_type = "ROUTER",
        .max_frame = S_MSG_MAX,
        .log = &p->log,
        .owner = p,
        .on_up = s_on_up,
        .on_frame = s_on_frame,
    };
    const char *why = NULL;
    p->hello_due = 1;
    if (zconn_open(&p->link, &spec, &why) != 0) {
        snprintf(p->errbuf, sizeof p->errbuf, "%s: %s", p->endpoint, why);
        return -1;
    }
    p->link_open = 1;
    p->connects++;
    p->last_recv_ms = now_ms;
    return 0;
}

void
pool_link_close(pool_t *p, int linger_ms)
{
    if (!p->link_open)
        return;
    /* what is buffered (bye, release, done) gets linger_ms to leave */
    int64_t end = clock_mono_ms() + linger_ms;
    pool_link_flush(p);
    while (zconn_up(&p->link) && zconn_pending(&p->link) > 0) {
        int64_t left = end - clock_mono_ms();
        if (left <= 0)
            break;
        struct pollfd f = {zconn_fd(&p->link), POLLOUT, 0};
        if (poll(&f, 1, (int)left) < 0 && errno != EINTR)
            break;
        zconn_on_writable(&p->link);
    }
    zconn_close(&p->link);
    p->link_open = 0;
}

void
pool_link_send(pool_t *p)
{
    buf_t *out = p->link_open ? zconn_out(&p->link) : NULL;
    if (!buf_ok(&p->out))
        return;
    if (!out) {
        log_debug(&p->log, "message to the broker dropped: the link is down");
        return;
    }
    zmtp_put_frame(out, p->out.data, p->out.len, 0);
    p->last_send_ms = clock_mono_ms();
}

void
pool_link_flush(pool_t *p)
{
    if (p->link_open)
        zconn_flush(&p->link);
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

/*  A message is one frame, after an optional empty REQ-style delimiter;
 *  any further frames are not the protocol and are dropped. */
static void
s_on_frame(void *owner, zconn_t *z, const uint8_t *data, size_t len, int first, int more)
{
    pool_t *p = owner;
    int64_t now_ms = clock_mono_ms();
    if (first) {
        p->rx_body_seen = 0;
        p->last_recv_ms = now_ms;
        if (p->lost) {
            p->lost = 0;
            log_info(&p->log, "broker back at %s", p->endpoint);
        }
        if (more && len == 0)
            return; /* the delimiter */
    }
    if (!p->rx_body_seen && !more)
        s_handle(p, data, len, now_ms);
    p->rx_body_seen = 1;
}

void
pool_link_tick(pool_t *p, int64_t now_ms)
{
    if (!p->link_open)
        return;
    int64_t due = zconn_deadline_ms(&p->link);
    if (due && now_ms >= due)
        zconn_on_timeout(&p->link);
    int64_t silent = now_ms - p->last_recv_ms;
    if (!p->stopping && silent > (int64_t)(p->hb_ms * p->liveness)) {
        if (!p->lost)
            log_warn(&p->log, "broker lost: nothing from %s for %lld ms; reconnecting", p->endpoint,
                     (long long)silent);
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
