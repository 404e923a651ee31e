/*  zconn.c: the gateway's broker connections on its libev loop: each is a
 *  common/zconn.c connection (ZMTP spoken by the gateway itself) whose
 *  descriptor and deadline are watched by libev.
 */
#include "clock.h"
#include "gateway.h"

static void
s_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    gw_zconn_t *c = w->data;
    zconn_on_readable(&c->z);
}

static void
s_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    gw_zconn_t *c = w->data;
    zconn_on_writable(&c->z);
}

static void
s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    gw_zconn_t *c = w->data;
    zconn_on_timeout(&c->z);
}

/*  The connection's descriptor, wish to write or deadline changed. A new
 *  descriptor always follows a -1 (a reset or a failed attempt is
 *  reported first), so a reused descriptor number is still re-armed. */
static void
s_on_watch(void *owner, zconn_t *z)
{
    gw_zconn_t *c = owner;
    struct ev_loop *loop = c->gw->loop;
    int fd = zconn_fd(z);
    if (fd != c->rw.fd) {
        ev_io_stop(loop, &c->rw);
        ev_io_stop(loop, &c->ww);
        ev_io_set(&c->rw, fd, EV_READ);
        ev_io_set(&c->ww, fd, EV_WRITE);
        if (fd >= 0)
            ev_io_start(loop, &c->rw);
    }
    if (fd >= 0 && zconn_wants_write(z))
        ev_io_start(loop, &c->ww);
    else
        ev_io_stop(loop, &c->ww);
    ev_timer_stop(loop, &c->timer);
    int64_t due = zconn_deadline_ms(z);
    if (due) {
        int64_t ms = due - clock_mono_ms();
        ev_timer_set(&c->timer, ms > 0 ? (double)ms / 1e3 : 0, 0);
        ev_timer_start(loop, &c->timer);
    }
}

static void
s_on_up(void *owner, zconn_t *z)
{
    gw_zconn_t *c = owner;
    c->on_up(c->gw, c);
}

static void
s_on_frame(void *owner, zconn_t *z, const uint8_t *data, size_t len, int first, int more)
{
    gw_zconn_t *c = owner;
    c->on_frame(c->gw, c, data, len, first, more);
}

int
gw_zconn_open(gateway_t *gw, gw_zconn_t *c, const gw_zconn_spec_t *spec)
{
    memset(c, 0, sizeof *c);
    c->gw = gw;
    c->on_up = spec->on_up;
    c->on_frame = spec->on_frame;
    ev_io_init(&c->rw, s_on_read, -1, EV_READ);
    ev_io_init(&c->ww, s_on_write, -1, EV_WRITE);
    ev_timer_init(&c->timer, s_on_timer, 0, 0);
    c->rw.data = c->ww.data = c->timer.data = c;
    const zconn_spec_t zs = {
        .name = spec->name,
        .endpoint = spec->endpoint,
        .type = spec->type,
        .peer_type = spec->peer_type,
        .max_frame = spec->max_frame,
        .log = &gw->log,
        .owner = c,
        .on_up = s_on_up,
        .on_frame = s_on_frame,
        .on_watch = s_on_watch,
    };
    const char *why = NULL;
    if (zconn_open(&c->z, &zs, &why) != 0) {
        log_error(&gw->log, "--%s %s: %s", spec->name, spec->endpoint, why);
        return -1;
    }
    return 0;
}

void
gw_zconn_close(gw_zconn_t *c)
{
    if (c->gw && c->gw->loop) {
        ev_io_stop(c->gw->loop, &c->rw);
        ev_io_stop(c->gw->loop, &c->ww);
        ev_timer_stop(c->gw->loop, &c->timer);
    }
    zconn_close(&c->z);
}

int
gw_zconn_up(const gw_zconn_t *c)
{
    return zconn_up(&c->z);
}

buf_t *
gw_zconn_out(gw_zconn_t *c)
{
    return zconn_out(&c->z);
}

void
gw_zconn_flush(gw_zconn_t *c)
{
    zconn_flush(&c->z);
}

void
gw_zconn_reset(gw_zconn_t *c, const char *why)
{
    zconn_reset(&c->z, why);
}
