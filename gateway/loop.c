/*  loop.c: the gateway's one event loop, and libwebsockets inside it.
 *
 *  libev over epoll: a wake-up costs the same whatever the number of
 *  connections (lws's own loop poll()s every descriptor at every wake-up,
 *  which made the kernel's poll 89 % of the gateway's CPU at 5,000 events/s
 *  and 1,000 connections). lws runs as a guest: LWS_SERVER_OPTION_LIBEV
 *  with this loop as its foreign loop (Debian builds the libev support as a
 *  run-time plugin, package libwebsockets-evlib-ev). Our own watchers sit
 *  in the same loop:
 *    - the listening socket (listen.c accepts and hands sockets to lws),
 *    - the signalfd (SIGTERM/SIGINT: orderly shutdown),
 *    - the two connections to the broker (zconn.c: ZMTP spoken by this
 *      loop, no libzmq I/O thread in between),
 *    - a 100 ms tick: timeouts, the broker's heartbeat. It is
 *      an lws_sul, not an ev_timer, on purpose: lws 4.1.6's libev plugin
 *      arms its one ev_timer for the earliest lws timer, but cannot move an
 *      armed ev_timer earlier (ev_timer_set on an active watcher), so a
 *      timer added later (a ping after --ping-interval, a close timeout)
 *      would wait for the armed one. A 100 ms lws timer keeps the armed one
 *      at most 100 ms away, so every lws timer fires within 100 ms of its
 *      time.
 *  The before-sleep hook (an ev_prepare, as Redis's beforeSleep) runs once
 *  per pass: sessions with new frames write them straight away (one send
 *  each, no round trip through EPOLLOUT), then gw_link_pump() sends what
 *  sessions and users queued for the broker, in one batch. Nothing waits
 *  on a timer: an event that arrives leaves in the same pass.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clock.h"
#include "gateway.h"

/* ---------------------------------------------------------------- lws callbacks */

static int
s_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    gateway_t *gw = gw_from_wsi(wsi);
    gw_session_t *s = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return gw_http_request(gw, wsi, s, in);
    case LWS_CALLBACK_HTTP_BODY:
        return gw_jobs_http_body(gw, wsi, s, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return gw_jobs_http_done(gw, wsi, s);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return gw_jobs_http_writeable(gw, wsi, s);
    case LWS_CALLBACK_CLOSED_HTTP:
        gw_jobs_http_closed(gw, s);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return gw_http_confirm_upgrade(gw, wsi, in);
    case LWS_CALLBACK_ESTABLISHED: {
        char uid[EVENT_USER_ID_MAX + 1];
        if (gw_session_established(gw, wsi, s, uid) == 0)
            gw_user_join(gw, s, uid);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        return gw_session_receive(gw, wsi, s, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return gw_session_writeable(gw, wsi, s);
    case LWS_CALLBACK_RECEIVE_PONG:
        gw_keepalive_seen(gw, s, clock_mono_ms());
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        gw_session_peer_closing(gw, s);
        return 0;
    case LWS_CALLBACK_CLOSED:
        gw_user_leave(gw, s);
        gw_session_closed(gw, s);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols s_protocols[] = {
    {"taskcast", s_callback, sizeof(gw_session_t), GW_RX_BUFFER, 0, NULL, GW_TX_PACKET_MAX},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/*  lws's own lines go through our logger (and its token redaction). */
static void
s_lws_log(int level, const char *line)
{
    const log_t lg = {"taskcast-gateway", LOG_DEBUG};
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_write(&lg,
              (level & LLL_ERR)    ? LOG_ERROR
              : (level & LLL_WARN) ? LOG_WARN
                                   : LOG_DEBUG,
              "lws: %.*s", (int)n, line);
}

/* ---------------------------------------------------------------- watchers */

static gateway_t *
s_gw(struct ev_loop *loop)
{
    return ev_userdata(loop);
}

static void
s_begin_shutdown(gateway_t *gw, const char *why)
{
    if (gw->stopping)
        return;
    gw->stopping = 1;
    gw->stop_deadline_ms = clock_mono_ms() + GW_SHUTDOWN_MS;
    log_info(&gw->log, "received %s: closing %u connections (1001) and stopping", why,
             gw->nsessions);
    ev_io_stop(gw->loop, &gw->w_listen);
    gw_listen_close(gw);
    gw_user_fail_all(gw);
}

static void
s_on_signal(struct ev_loop *loop, ev_io *w, int revents)
{
    gateway_t *gw = s_gw(loop);
    struct signalfd_siginfo si;
    while (read(gw->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        s_begin_shutdown(gw, strsignal((int)si.ssi_signo));
}

static void
s_on_listen(struct ev_loop *loop, ev_io *w, int revents)
{
    gw_listen_accept(s_gw(loop));
}

static void
s_on_tick(lws_sorted_usec_list_t *sul)
{
    gateway_t *gw = lws_container_of(sul, gateway_t, sul_tick);
    int64_t now = clock_mono_ms();
    gw_link_check(gw, now);
    gw_jobs_check(gw, now);
    gw_session_check_pending(gw, now);
    gw_keepalive_check(gw, now);
    if (gw->stopping && (gw->nsessions == 0 || now >= gw->stop_deadline_ms)) {
        ev_break(gw->loop, EVBREAK_ALL);
        return;
    }
    lws_sul_schedule(gw->lws, 0, &gw->sul_tick, s_on_tick, GW_TICK_MS * LWS_US_PER_MS);
}

static void
s_before_sleep(struct ev_loop *loop, ev_prepare *w, int revents)
{
    gateway_t *gw = s_gw(loop);
    gw_session_write_woken(gw); /* may queue sync requests (a gap) */
    gw_link_pump(gw);
}

static void
s_watch(gateway_t *gw, ev_io *w, int fd, void (*cb)(struct ev_loop *, ev_io *, int))
{
    ev_io_init(w, cb, fd, EV_READ);
    ev_io_start(gw->loop, w);
}

/* ---------------------------------------------------------------- setup */

static int
s_signals(gateway_t *gw)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    /* Blocked before ZeroMQ starts its threads; delivered via the signalfd. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (gw->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        log_error(&gw->log, "signalfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int
s_lws_open(gateway_t *gw)
{
    lws_set_log_level(log_enabled(&gw->log, LOG_DEBUG) ? LLL_ERR | LLL_WARN | LLL_NOTICE
                                                       : LLL_ERR | LLL_WARN,
                      s_lws_log);
    void *foreign[1] = {gw->loop};
    /* No lws idle policy (its default pings after 300 s): keepalive.c does
     * it, because lws 4.1 keeps each connection's validity timer in one
     * sorted list and inserting one walks them all. A policy without a
     * hang-up time is lws's way to say "none". */
    static const lws_retry_bo_t no_validity = {0};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = s_protocols;
    info.user = gw;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = foreign;
    info.retry_and_idle_policy = &no_validity;
    info.max_http_header_data = 8192;
    info.max_http_header_pool = 256;
    info.timeout_secs = 10;
    info.vhost_name = "taskcast";
    gw->lws = lws_create_context(&info);
    if (!gw->lws) {
        log_error(&gw->log, "libwebsockets context creation failed (its libev support is a "
                            "plugin: is the Debian package libwebsockets-evlib-ev installed?)");
        return -1;
    }
    gw->vhost = lws_get_vhost_by_name(gw->lws, "taskcast");
    if (!gw->vhost) {
        log_error(&gw->log, "libwebsockets vhost missing");
        return -1;
    }
    return 0;
}

int
gw_loop_open(gateway_t *gw)
{
    if (s_signals(gw) != 0)
        return -1;
    gw->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!gw->loop) {
        log_error(&gw->log, "cannot create the event loop (epoll)");
        return -1;
    }
    ev_set_userdata(gw->loop, gw);
    if (s_lws_open(gw) != 0)
        return -1;
    s_watch(gw, &gw->w_signal, gw->sigfd, s_on_signal);
    if (gw_listen_open(gw) != 0 || gw_link_open(gw) != 0 || gw_jobs_open(gw) != 0)
        return -1;
    s_watch(gw, &gw->w_listen, gw->listen_fd, s_on_listen);
    ev_prepare_init(&gw->w_prepare, s_before_sleep);
    ev_prepare_start(gw->loop, &gw->w_prepare);
    lws_sul_schedule(gw->lws, 0, &gw->sul_tick, s_on_tick, GW_TICK_MS * LWS_US_PER_MS);
    return 0;
}

void
gw_loop_run(gateway_t *gw)
{
    ev_run(gw->loop, 0);
}

void
gw_loop_close(gateway_t *gw)
{
    struct lws_context *ctx = gw->lws;
    gw->lws = NULL;
    if (ctx)
        lws_context_destroy(ctx); /* closes every connection */
    gw_listen_close(gw);
    if (gw->loop) {
        ev_loop_destroy(gw->loop);
        gw->loop = NULL;
    }
    if (gw->sigfd >= 0)
        close(gw->sigfd);
    gw->sigfd = -1;
}
