/*  main.c: taskcast-gateway: configuration, the lws context and its
 *  callbacks, timers, signals and an orderly shutdown.
 */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cfg.h"
#include "clock.h"
#include "gateway.h"
#include "version.h"

enum {
    O_LISTEN,
    O_FANOUT,
    O_SYNC,
    O_SECRET,
    O_PUBKEY,
    O_LOG_LEVEL,
    O_NAME,
    O_PING,
    O_VERSION,
    O_COUNT
};

/*  The option table (defaults); main() resolves a copy that the context
 *  points to. */
static const cfg_opt_t s_options[O_COUNT] = {
    [O_LISTEN] = {"listen", "TASKCAST_LISTEN", "127.0.0.1:8000",
                  "HOST:PORT to serve HTTP and WebSockets on (shared with SO_REUSEPORT)"},
    [O_FANOUT] = {"fanout", "TASKCAST_FANOUT", "tcp://127.0.0.1:5556",
                  "broker endpoint to subscribe to (XPUB)"},
    [O_SYNC] = {"sync", "TASKCAST_SYNC", "tcp://127.0.0.1:5557",
                "broker endpoint for snapshot/replay requests"},
    [O_SECRET] = {"jwt-secret", "TASKCAST_JWT_SECRET", NULL,
                  "HS256 key: the raw bytes of the value, at least 32"},
    [O_PUBKEY] = {"jwt-public-key", "TASKCAST_JWT_PUBLIC_KEY", NULL,
                  "EdDSA (Ed25519) public key, base64 or PEM"},
    [O_LOG_LEVEL] = {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug"},
    [O_NAME] = {"name", "TASKCAST_GATEWAY_NAME", NULL,
                "name shown in hello frames and status (default HOSTNAME:PORT)"},
    [O_PING] = {"ping-interval", "TASKCAST_PING_INTERVAL", "30",
                "seconds of silence before a WebSocket ping; a connection silent for 2.5 times "
                "as long is closed"},
    [O_VERSION] = {"version", NULL, NULL, "print the version and libraries and exit", 1},
};

/* ---------------------------------------------------------------- lws callbacks */

static int
s_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    gateway_t *gw = gw_from_wsi(wsi);
    gw_session_t *s = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return gw_http_request(gw, wsi, s, in);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return gw_http_confirm_upgrade(gw, wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        gw_session_established(gw, wsi, s);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return gw_session_receive(gw, wsi, s, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return gw_session_writeable(gw, wsi, s);
    case LWS_CALLBACK_CLOSED:
        gw_session_closed(gw, s);
        return 0;
    default:
        return 0;
    }
}

static void s_begin_shutdown(gateway_t *gw, const char *why);

static void
s_on_signal(gateway_t *gw)
{
    struct signalfd_siginfo si;
    while (read(gw->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        s_begin_shutdown(gw, strsignal((int)si.ssi_signo));
}

/*  The raw descriptors: the listening socket, the signalfd, the ZeroMQ fds. */
static int
s_internal_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    gateway_t *gw = gw_from_wsi(wsi);
    int fd = lws_get_socket_fd(wsi);
    if (fd == gw->listen_fd)
        gw_listen_accept(gw);
    else if (fd == gw->sigfd)
        s_on_signal(gw);
    else
        gw_link_drain(gw);
    return 0;
}

struct lws *
gw_adopt_fd(gateway_t *gw, int fd)
{
    lws_sock_file_fd_type d;
    d.filefd = fd;
    struct lws *wsi =
        lws_adopt_descriptor_vhost(gw->vhost, LWS_ADOPT_RAW_FILE_DESC, d, "tc-internal", NULL);
    if (!wsi)
        close(fd);
    return wsi;
}

static const struct lws_protocols s_protocols[] = {
    {"taskcast", s_callback, sizeof(gw_session_t), GW_CLIENT_MSG_MAX, 0, NULL, GW_TX_PACKET_MAX},
    {"tc-internal", s_internal_callback, 0, 0, 0, NULL, 0},
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

/* ---------------------------------------------------------------- timers, shutdown */

static void
s_tick(lws_sorted_usec_list_t *sul)
{
    gateway_t *gw = lws_container_of(sul, gateway_t, sul_tick);
    int64_t now = clock_mono_ms();
    gw_link_check(gw, now);
    gw_session_check_pending(gw, now);
    gw_link_drain(gw);
    if (gw->stopping && (gw->nsessions == 0 || now >= gw->stop_deadline_ms)) {
        gw->done = 1;
        lws_cancel_service(gw->lws);
        return;
    }
    lws_sul_schedule(gw->lws, 0, &gw->sul_tick, s_tick, GW_TICK_MS * LWS_US_PER_MS);
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
    if (gw->listen_wsi)
        lws_set_timeout(gw->listen_wsi, PENDING_TIMEOUT_SHUTDOWN_FLUSH, LWS_TO_KILL_ASYNC);
    gw->listen_wsi = NULL;
    /* Failing a session detaches it (and may free its user): collect first. */
    size_t n = 0, pos = 0;
    gw_user_t *u;
    while ((u = strmap_next(gw->users, &pos)) != NULL)
        n += u->nsessions;
    gw_session_t **all = n ? calloc(n, sizeof *all) : NULL;
    size_t i = 0;
    pos = 0;
    while (all && (u = strmap_next(gw->users, &pos)) != NULL)
        for (gw_session_t *s = u->sessions; s && i < n; s = s->unext)
            all[i++] = s;
    for (size_t k = 0; k < i; k++)
        gw_session_fail(gw, all[k], GW_CLOSE_GOING_AWAY, "shutdown",
                        "the gateway is shutting down");
    free(all);
}

/* ---------------------------------------------------------------- setup */

static int
s_configure(gateway_t *gw, char *err, size_t errlen)
{
    log_level_t level;
    if (log_parse_level(gw->opt[O_LOG_LEVEL].value, &level) != 0) {
        snprintf(err, errlen, "--log-level must be error, warn, info or debug");
        return -1;
    }
    log_init(&gw->log, "taskcast-gateway", level);
    if (cfg_parse_listen(gw->opt[O_LISTEN].value, gw->host, sizeof gw->host, &gw->port) != 0) {
        snprintf(err, errlen, "--listen must be HOST:PORT, not '%s'", gw->opt[O_LISTEN].value);
        return -1;
    }
    if (jwt_keys_init(&gw->keys, gw->opt[O_SECRET].value, gw->opt[O_PUBKEY].value, err, errlen) !=
        0)
        return -1;
    uint64_t ping;
    if (cfg_parse_u64(gw->opt[O_PING].value, 1, 3600, &ping) != 0) {
        snprintf(err, errlen, "--ping-interval must be a whole number of seconds from 1 to 3600");
        return -1;
    }
    /* Browsers answer WebSocket pings by themselves (they cannot send any). */
    gw->idle_policy.secs_since_valid_ping = (uint16_t)ping;
    gw->idle_policy.secs_since_valid_hangup = (uint16_t)(ping * 5 / 2);
    if (gw->opt[O_NAME].value)
        snprintf(gw->name, sizeof gw->name, "%s", gw->opt[O_NAME].value);
    else {
        char host[64] = "gateway";
        gethostname(host, sizeof host - 1);
        snprintf(gw->name, sizeof gw->name, "%s:%d", host, gw->port);
    }
    unsigned char r[8];
    randombytes_buf(r, sizeof r);
    sodium_bin2hex(gw->token, sizeof gw->token, r, sizeof r);
    return 0;
}

static int
s_open(gateway_t *gw)
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
    lws_set_log_level(log_enabled(&gw->log, LOG_DEBUG) ? LLL_ERR | LLL_WARN | LLL_NOTICE
                                                       : LLL_ERR | LLL_WARN,
                      s_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = s_protocols;
    info.user = gw;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.max_http_header_data = 8192;
    info.max_http_header_pool = 256;
    info.retry_and_idle_policy = &gw->idle_policy;
    info.timeout_secs = 10;
    info.vhost_name = "taskcast";
    gw->lws = lws_create_context(&info);
    if (!gw->lws) {
        log_error(&gw->log, "libwebsockets context creation failed");
        return -1;
    }
    gw->vhost = lws_get_vhost_by_name(gw->lws, "taskcast");
    if (!gw->vhost) {
        log_error(&gw->log, "libwebsockets vhost missing");
        return -1;
    }
    if (!gw_adopt_fd(gw, gw->sigfd)) {
        gw->sigfd = -1;
        log_error(&gw->log, "cannot adopt the signalfd");
        return -1;
    }
    if (gw_listen_open(gw) != 0 ||
        gw_link_open(gw, gw->opt[O_FANOUT].value, gw->opt[O_SYNC].value) != 0)
        return -1;
    lws_sul_schedule(gw->lws, 0, &gw->sul_tick, s_tick, GW_TICK_MS * LWS_US_PER_MS);
    return 0;
}

static void
s_close(gateway_t *gw)
{
    struct lws_context *ctx = gw->lws;
    gw->lws = NULL; /* nothing may schedule timers while lws goes away */
    if (ctx)
        lws_context_destroy(ctx); /* closes the adopted descriptors too */
    gw_user_free_all(gw);
    strmap_destroy(&gw->users);
    gw_link_close(gw);
    jwt_keys_clear(&gw->keys);
    gw_frame_unref(&gw->pong);
    buf_free(&gw->scratch);
    if (gw->spare_fd >= 0)
        close(gw->spare_fd);
}

int
main(int argc, char **argv)
{
    gateway_t gw;
    memset(&gw, 0, sizeof gw);
    gw.listen_fd = gw.spare_fd = gw.sigfd = -1;
    log_init(&gw.log, "taskcast-gateway", LOG_INFO);
    char err[256];
    cfg_opt_t opt[O_COUNT];
    memcpy(opt, s_options, sizeof opt);
    gw.opt = opt;
    int rc = cfg_parse_main(
        opt, O_COUNT, argc, argv, 1, "taskcast-gateway", "taskcast-gateway [options]",
        "Serves WebSockets to browsers: authenticates each connection after the "
        "handshake,\nsubscribes to the broker for its users and pushes their task "
        "events as JSON.");
    if (rc >= 0)
        return rc;
    if (version_check_libs(err, sizeof err) != 0 || version_check_lws(err, sizeof err) != 0) {
        fprintf(stderr, "taskcast-gateway: %s\n", err);
        return 1;
    }
    if (opt[O_VERSION].value) {
        version_describe(err, sizeof err);
        printf("%s, libwebsockets %s\n", err, lws_get_library_version());
        return 0;
    }
    if (s_configure(&gw, err, sizeof err) != 0) {
        fprintf(stderr, "taskcast-gateway: %s\n", err);
        return 2;
    }
    gw.users = strmap_new();
    gw.pong = gw_frame_new("{\"type\":\"pong\"}", 15, GW_FRAME_CONTROL);
    gw.started_ms = clock_mono_ms();
    if (!gw.users || !gw.pong || s_open(&gw) != 0) {
        s_close(&gw);
        return 1;
    }
    version_describe(err, sizeof err);
    log_info(&gw.log, "%s started as %s: listening on %s:%d, broker fanout %s, sync %s", err,
             gw.name, gw.host, gw.port, opt[O_FANOUT].value, opt[O_SYNC].value);
    while (!gw.done && lws_service(gw.lws, 0) >= 0)
        ;
    log_info(&gw.log, "stopped");
    s_close(&gw);
    return 0;
}
