/*  main.c: taskcast-gateway: configuration, then the loop (loop.c) until
 *  an orderly shutdown.
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
    O_JOBS,
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
    [O_JOBS] = {"jobs", "TASKCAST_JOBS", "tcp://127.0.0.1:5558",
                "broker endpoint for clients' job cancels (ROUTER)"},
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
    gw->keepalive.ping_ms = (int64_t)ping * 1000;
    gw->keepalive.hangup_ms = (int64_t)ping * 2500;
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

static void
s_close(gateway_t *gw)
{
    gw_loop_close(gw); /* lws closes every connection: each leaves its user */
    gw_user_free_all(gw);
    gw_keepalive_free(gw);
    strmap_destroy(&gw->users);
    gw_link_close(gw);
    gw_jobs_close(gw);
    jwt_keys_clear(&gw->keys);
    gw_frame_unref(&gw->pong);
    buf_free(&gw->scratch);
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
    gw.fanout_ep = opt[O_FANOUT].value;
    gw.sync_ep = opt[O_SYNC].value;
    gw.jobs_ep = opt[O_JOBS].value;
    if (!gw.users || !gw.pong || gw_loop_open(&gw) != 0) {
        s_close(&gw);
        return 1;
    }
    version_describe(err, sizeof err);
    log_info(&gw.log, "%s started as %s: listening on %s:%d, broker fanout %s, sync %s", err,
             gw.name, gw.host, gw.port, opt[O_FANOUT].value, opt[O_SYNC].value);
    gw_loop_run(&gw);
    log_info(&gw.log, "stopped");
    s_close(&gw);
    return 0;
}
