/*  cli_stats.c: `taskcast-cli stats`: the broker's counters (over its sync
 *  endpoint), or with --url a gateway's status JSON (GET
 *  /api/v1/ws/status with an admin token). Prints one JSON object. */
#include <errno.h>
#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"
#include "event.h"
#include "jwt.h"
#include "mpread.h"
#include "wire.h"
#include "zmsg.h"

static const cfg_opt_t s_cfg[] = {
    {"sync", "TASKCAST_SYNC", "tcp://127.0.0.1:5557", "broker sync endpoint (broker counters)", 0,
     NULL},
    {"url", NULL, NULL, "a gateway's http://HOST:PORT: show its status instead", 0, NULL},
    {"token", NULL, NULL, "JWT for the gateway (default: an admin token minted with the secret)", 0,
     NULL},
    {"jwt-secret", "TASKCAST_JWT_SECRET", NULL, "HS256 secret to mint the admin token with", 0,
     NULL},
    {"timeout-ms", NULL, "2000", "wait this long for an answer", 0, NULL},
    {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug", 0, NULL},
};

#define S_NOPTS (sizeof s_cfg / sizeof s_cfg[0])

/*  Prints the broker's {"stats":{...}} answer as JSON (strings and
 *  unsigned integers are all it holds). */
static int
s_print_stats(const void *data, size_t len)
{
    mp_reader_t s;
    uint32_t n;
    if (wire_read_stats(data, len, &s, &n) != 0)
        return -1;
    buf_t out;
    buf_init(&out);
    buf_append_char(&out, '{');
    for (uint32_t k = 0; k < n; k++) {
        mp_value_t name, v;
        if (mp_read_pair(&s, &name, &v, 4) != 0)
            break;
        if (k)
            buf_append_char(&out, ',');
        event_json_string(&out, name.v.s.p, name.v.s.len);
        buf_append_char(&out, ':');
        if (v.type == MP_UINT)
            buf_printf(&out, "%llu", (unsigned long long)v.v.u);
        else if (v.type == MP_STR)
            event_json_string(&out, v.v.s.p, v.v.s.len);
        else
            buf_append_str(&out, "null");
    }
    buf_append_str(&out, "}\n");
    int ok = buf_ok(&out);
    if (ok)
        fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    return ok ? 0 : -1;
}

static int
s_broker_stats(const char *endpoint, int timeout_ms)
{
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmsg_socket(ctx, ZMQ_DEALER, 10, 10, 1 << 20) : NULL;
    int rc = CLI_EXIT_FAIL;
    if (!sock || zmq_connect(sock, endpoint) != 0) {
        fprintf(stderr, "%s stats: cannot connect to %s: %s\n", CLI_NAME, endpoint,
                zmq_strerror(errno));
        goto done;
    }
    buf_t request;
    buf_init(&request);
    wire_pack_sync_req(&request, &(wire_sync_req_t){.req = 1, .stats = 1});
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    int sent = buf_ok(&request) && zmq_send(sock, request.data, request.len, 0) >= 0;
    buf_free(&request);
    if (!sent || zmq_poll(&item, 1, timeout_ms) <= 0) {
        fprintf(stderr, "%s stats: no answer from the broker at %s\n", CLI_NAME, endpoint);
        rc = CLI_EXIT_TIMEOUT;
        goto done;
    }
    zmsg_t m;
    if (zmsg_recv(&m, sock, ZMQ_DONTWAIT) == 0) {
        if (m.count == 1 && s_print_stats(zmsg_data(&m, 0), zmsg_size(&m, 0)) == 0)
            rc = CLI_EXIT_OK;
        else
            fprintf(stderr, "%s stats: the broker's answer was not understood\n", CLI_NAME);
        zmsg_close(&m);
    }
done:
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

/*  GET PATH over plain HTTP/1.1 and prints the body. */
static int
s_http_get(const char *host, int port, const char *path, int timeout_ms)
{
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, portstr, &hints, &res) != 0) {
        fprintf(stderr, "%s stats: cannot resolve %s\n", CLI_NAME, host);
        return CLI_EXIT_FAIL;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "%s stats: cannot connect to %s:%d: %s\n", CLI_NAME, host, port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return CLI_EXIT_FAIL;
    }
    freeaddrinfo(res);
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", path, host, port);
    int rc = CLI_EXIT_FAIL;
    if (buf_ok(&b) && send(fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len) {
        buf_reset(&b);
        char chunk[4096];
        ssize_t n;
        while ((n = recv(fd, chunk, sizeof chunk, 0)) > 0)
            buf_append(&b, chunk, (size_t)n);
        buf_append_char(&b, '\0');
        unsigned status = 0;
        const char *body = buf_ok(&b) ? strstr(b.data, "\r\n\r\n") : NULL;
        if (body && sscanf(b.data, "HTTP/1.%*c %u", &status) == 1) {
            printf("%s\n", body + 4);
            rc = status == 200 ? CLI_EXIT_OK : status == 401 ? CLI_EXIT_AUTH : CLI_EXIT_FAIL;
        }
        else
            fprintf(stderr, "%s stats: no HTTP answer from %s:%d\n", CLI_NAME, host, port);
    }
    buf_free(&b);
    close(fd);
    return rc;
}

static int
s_gateway_status(const char *url, const char *token, const char *secret, int timeout_ms)
{
    char host[256];
    int port = 80;
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    if (!p) {
        fprintf(stderr, "%s stats: --url must be http://HOST[:PORT]\n", CLI_NAME);
        return CLI_EXIT_USAGE;
    }
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    size_t hl = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof host || (colon && sscanf(colon + 1, "%d", &port) != 1)) {
        fprintf(stderr, "%s stats: --url must be http://HOST[:PORT]\n", CLI_NAME);
        return CLI_EXIT_USAGE;
    }
    memcpy(host, p, hl);
    host[hl] = '\0';
    char minted[JWT_TOKEN_MAX + 1], err[256];
    if (!token) {
        if (cli_mint_token(secret, "taskcast-cli", 60, 1, minted, sizeof minted, err, sizeof err) !=
            0) {
            fprintf(stderr, "%s stats: %s (or pass --token)\n", CLI_NAME, err);
            return CLI_EXIT_USAGE;
        }
        token = minted;
    }
    char path[JWT_TOKEN_MAX * 3 + 64], escaped[JWT_TOKEN_MAX * 3 + 1];
    if (cli_url_escape(token, escaped, sizeof escaped) != 0) {
        fprintf(stderr, "%s stats: the token is too long\n", CLI_NAME);
        return CLI_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/api/v1/ws/status?token=%s", escaped);
    int rc = s_http_get(host, port, path, timeout_ms);
    sodium_memzero(minted, sizeof minted);
    return rc;
}

/* cli_stats: see cli.h */
int
cli_stats(int argc, char **argv)
{
    cfg_opt_t cfg[S_NOPTS];
    log_t lg;
    memcpy(cfg, s_cfg, sizeof s_cfg);
    int rc = cli_parse(cfg, S_NOPTS, argc, argv, CLI_NAME " stats [--sync E | --url URL] [options]",
                       "Prints the broker's counters (events accepted, rejected, users, tasks,\n"
                       "memory, journal) as JSON, or with --url a gateway's status as its\n"
                       "admin sees it.",
                       &lg);
    if (rc >= 0)
        return rc;
    uint64_t timeout;
    if (cfg_parse_u64(cfg_value(cfg, S_NOPTS, "timeout-ms"), 1, 600000, &timeout) != 0) {
        fprintf(stderr, "%s stats: --timeout-ms must be 1..600000\n", CLI_NAME);
        return CLI_EXIT_USAGE;
    }
    const char *url = cfg_value(cfg, S_NOPTS, "url");
    if (url)
        return s_gateway_status(url, cfg_value(cfg, S_NOPTS, "token"),
                                cfg_value(cfg, S_NOPTS, "jwt-secret"), (int)timeout);
    return s_broker_stats(cfg_value(cfg, S_NOPTS, "sync"), (int)timeout);
}
