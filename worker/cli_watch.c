/*  cli_watch.c: `taskcast-cli watch`: follows a user's task stream exactly
 *  as a browser does (one WebSocket, token in the query, text pings) and
 *  prints every text frame on its own line.
 *
 *  libwebsockets client, lws's own poll loop, timers with lws_sul (Debian's
 *  lws 4.1.6 ignores the lws_service() timeout).
 */
#include <libwebsockets.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "event.h"
#include "json.h"
#include "jwt.h"
#include "version.h"

#define S_PROTOCOL    "taskcast-watch"
#define S_ROUTE       "/api/v1/ws/tasks/"
#define S_PING        "{\"type\":\"ping\"}"
#define S_PING_US     (20 * LWS_US_PER_SEC)
#define S_GRACE_US    (2 * LWS_US_PER_SEC) /* wait for the close handshake */
#define S_FRAME_MAX   (1024 * 1024)        /* a task frame is at most a few 100 KiB */
#define S_JSON_DEPTH  64
#define S_PATH_MAX    (JWT_TOKEN_MAX * 3 + 1024)
#define S_TOKEN_TTL_S 3600
#define S_RX_BUFFER   16384

static const cfg_opt_t s_cfg[] = {
    {"user", NULL, NULL, "user id whose tasks to follow (required)", 0, NULL},
    {"token", NULL, NULL, "JWT for the user (default: minted with TASKCAST_JWT_SECRET)", 0, NULL},
    {"url", NULL, "ws://127.0.0.1:8000", "gateway base URL (ws:// or wss://)", 0, NULL},
    {"since", NULL, NULL, "resume after this seq (with --epoch)", 0, NULL},
    {"epoch", NULL, NULL, "epoch of --since, from the hello frame", 0, NULL},
    {"count", NULL, NULL, "exit 0 after this many task frames", 0, NULL},
    {"timeout", NULL, NULL, "exit 3 after this many seconds", 0, NULL},
    {"jwt-secret", "TASKCAST_JWT_SECRET", NULL, "HS256 secret to mint a token with", 0, NULL},
    {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug", 0, NULL},
};

#define S_NOPTS (sizeof s_cfg / sizeof s_cfg[0])

typedef struct {
    log_t log;
    cfg_opt_t cfg[S_NOPTS]; /* a copy of s_cfg that cfg_parse fills */
    cli_url_t url;
    char path[S_PATH_MAX];  /* route and query, token included */
    char shown[S_PATH_MAX]; /* the same with the token redacted, for messages */
    char token[JWT_TOKEN_MAX + 1];
    uint64_t count;     /* task frames to wait for; 0: no limit */
    uint64_t tasks;     /* task frames seen */
    uint64_t timeout_s; /* 0: none */
    struct lws_context *lws;
    struct lws *wsi;
    lws_sorted_usec_list_t sul_ping, sul_timeout, sul_grace;
    buf_t rx; /* the message being received */
    json_tok_t *toks;
    size_t ntoks;
    unsigned http_status; /* of the upgrade answer, 0 if none came */
    int want_ping;
    int closing; /* we started the close (--count or --timeout) */
    int done;
    int exit_code;
} s_watch_t;

/*  Reads the JSON "type" of a frame: 1 if it is "task". */
static int
s_is_task(s_watch_t *self, const char *text, size_t len)
{
    size_t need = len / 2 + 2; /* every token takes at least two bytes but the last */
    if (need > self->ntoks) {
        json_tok_t *toks = realloc(self->toks, need * sizeof *toks);
        if (!toks)
            return 0;
        self->toks = toks;
        self->ntoks = need;
    }
    if (json_parse(text, len, self->toks, self->ntoks, S_JSON_DEPTH) < 1 ||
        self->toks[0].type != JSON_OBJECT) {
        log_warn(&self->log, "a frame is not a JSON object (%zu bytes)", len);
        return 0;
    }
    int i = json_object_get(text, self->toks, 0, "type");
    return i > 0 && self->toks[i].type == JSON_STRING &&
           json_string_eq(text, &self->toks[i], "task");
}

static void
s_finish(s_watch_t *self, int exit_code)
{
    if (self->done)
        return;
    self->done = 1;
    self->exit_code = exit_code;
    lws_sul_cancel(&self->sul_ping);
    lws_sul_cancel(&self->sul_timeout);
    lws_sul_cancel(&self->sul_grace);
}

static void
s_on_ping(lws_sorted_usec_list_t *sul)
{
    s_watch_t *self = lws_container_of(sul, s_watch_t, sul_ping);
    if (self->wsi && !self->closing) {
        self->want_ping = 1;
        lws_callback_on_writable(self->wsi);
    }
    lws_sul_schedule(self->lws, 0, &self->sul_ping, s_on_ping, S_PING_US);
}

static void
s_on_grace(lws_sorted_usec_list_t *sul)
{
    s_watch_t *self = lws_container_of(sul, s_watch_t, sul_grace);
    s_finish(self, self->exit_code);
}

/*  Closes with 1000 and exits with exit_code once the close handshake is
 *  done (or after a grace period). */
static void
s_begin_close(s_watch_t *self, int exit_code)
{
    if (self->closing)
        return;
    self->closing = 1;
    self->exit_code = exit_code;
    if (!self->wsi) {
        s_finish(self, exit_code);
        return;
    }
    lws_callback_on_writable(self->wsi);
    lws_sul_schedule(self->lws, 0, &self->sul_grace, s_on_grace, S_GRACE_US);
}

static void
s_on_timeout(lws_sorted_usec_list_t *sul)
{
    s_watch_t *self = lws_container_of(sul, s_watch_t, sul_timeout);
    if (self->closing)
        return; /* --count was reached just before */
    fprintf(stderr, "timeout after %llu s (%llu task frames)\n",
            (unsigned long long)self->timeout_s, (unsigned long long)self->tasks);
    s_begin_close(self, CLI_EXIT_TIMEOUT);
}

static int
s_receive(s_watch_t *self, struct lws *wsi, const void *in, size_t len)
{
    if (self->rx.len + len > S_FRAME_MAX) {
        fprintf(stderr, "error: the gateway sent a message over %d bytes\n", S_FRAME_MAX);
        s_finish(self, CLI_EXIT_FAIL);
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    buf_append(&self->rx, in, len);
    if (!buf_ok(&self->rx)) {
        fprintf(stderr, "error: out of memory\n");
        s_finish(self, CLI_EXIT_FAIL);
        return -1;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0; /* more of this message to come */
    const char *text = self->rx.data ? self->rx.data : "";
    size_t n = self->rx.len;
    buf_reset(&self->rx);
    if (lws_frame_is_binary(wsi)) {
        log_debug(&self->log, "ignoring a binary frame of %zu bytes", n);
        return 0;
    }
    if (self->closing)
        return 0; /* --count reached (or --timeout): print nothing more */
    fwrite(text, 1, n, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (s_is_task(self, text, n) && ++self->tasks == self->count)
        s_begin_close(self, CLI_EXIT_OK);
    return 0;
}

static int
s_writeable(s_watch_t *self, struct lws *wsi)
{
    if (self->closing) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
        return -1;
    }
    if (!self->want_ping)
        return 0;
    self->want_ping = 0;
    unsigned char frame[LWS_PRE + sizeof S_PING];
    size_t n = sizeof S_PING - 1;
    memcpy(frame + LWS_PRE, S_PING, n);
    if (lws_write(wsi, frame + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n) {
        fprintf(stderr, "error: could not send a ping\n");
        s_finish(self, CLI_EXIT_FAIL);
        return -1;
    }
    log_debug(&self->log, "sent a ping");
    return 0;
}

/*  The server's close frame: print the code and reason, pick the exit. */
static void
s_peer_close(s_watch_t *self, const unsigned char *in, size_t len)
{
    if (self->done || self->closing)
        return; /* we are closing already: this answers ours */
    int code = len >= 2 ? (in[0] << 8) | in[1] : 1005; /* 1005: no status */
    char reason[124];
    size_t rl = len > 2 ? len - 2 : 0;
    if (rl > sizeof reason - 1)
        rl = sizeof reason - 1;
    for (size_t i = 0; i < rl; i++)
        reason[i] = (in[2 + i] < 0x20 || in[2 + i] == 0x7f) ? '?' : (char)in[2 + i];
    reason[rl] = '\0';
    fprintf(stderr, "closed %d%s%s\n", code, rl ? " " : "", reason);
    int exit_code = code == 1000 || code == 1001   ? CLI_EXIT_OK
                    : code >= 4000 && code <= 4999 ? CLI_EXIT_AUTH
                                                   : CLI_EXIT_FAIL;
    /* lws answers the close frame; finish once it is sent (CLIENT_CLOSED). */
    self->closing = 1;
    self->exit_code = exit_code;
    lws_sul_schedule(self->lws, 0, &self->sul_grace, s_on_grace, S_GRACE_US);
}

static void
s_connection_error(s_watch_t *self, const char *why, size_t len)
{
    if (self->done)
        return;
    const char *scheme = self->url.tls ? "wss" : "ws";
    if (self->http_status && self->http_status != 101)
        fprintf(stderr, "error: %s://%s%s refused the WebSocket upgrade: HTTP %u\n", scheme,
                self->url.host_header, self->shown, self->http_status);
    else
        fprintf(stderr, "error: cannot connect to %s://%s%s: %.*s\n", scheme, self->url.host_header,
                self->shown, why ? (int)len : 7, why ? why : "unknown");
    s_finish(self, CLI_EXIT_FAIL);
}

static int
s_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    s_watch_t *self = wsi ? lws_context_user(lws_get_context(wsi)) : NULL;
    if (!self)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        /* the only moment the upgrade answer's status is still readable */
        self->http_status = lws_http_client_http_response(wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        self->wsi = NULL;
        s_connection_error(self, in, len);
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        log_debug(&self->log, "connected to %s%s", self->url.host_header, self->shown);
        lws_sul_schedule(self->lws, 0, &self->sul_ping, s_on_ping, S_PING_US);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return s_receive(self, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return s_writeable(self, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        s_peer_close(self, in, len);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        self->wsi = NULL;
        if (self->closing)
            s_finish(self, self->exit_code);
        else if (!self->done) {
            fprintf(stderr, "closed 1006 connection lost without a close frame\n");
            s_finish(self, CLI_EXIT_FAIL);
        }
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols s_protocols[] = {
    {S_PROTOCOL, s_callback, 0, S_RX_BUFFER, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/*  lws's own log lines, redacted like ours (a URL may carry the token). */
static void
s_lws_log(int level, const char *line)
{
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", line);
    size_t n = log_redact_tokens(copy);
    while (n > 0 && (copy[n - 1] == '\n' || copy[n - 1] == '\r'))
        copy[--n] = '\0';
    fprintf(stderr, "lws: %s\n", copy);
}

static int s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
s_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s watch: ", CLI_NAME);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

/*  Resolves the token: --token, else minted with the secret, else none
 *  (the gateway will then close with 4401, which is worth seeing too). */
static int
s_token(s_watch_t *self, const char *user)
{
    const char *given = cfg_value(self->cfg, S_NOPTS, "token");
    if (given && *given) {
        if (strlen(given) > JWT_TOKEN_MAX)
            return s_usage_error("--token is longer than %d bytes", JWT_TOKEN_MAX);
        snprintf(self->token, sizeof self->token, "%s", given);
        return -1;
    }
    const char *secret = cfg_value(self->cfg, S_NOPTS, "jwt-secret");
    if (!secret || !*secret) {
        log_warn(&self->log, "no --token and no TASKCAST_JWT_SECRET: connecting without a "
                             "token (the gateway will refuse with 4401)");
        return -1;
    }
    char err[256];
    if (cli_mint_token(secret, user, S_TOKEN_TTL_S, 0, self->token, sizeof self->token, err,
                       sizeof err) != 0)
        return s_usage_error("%s", err);
    log_debug(&self->log, "minted a token for user=%s (1 h)", user);
    return -1;
}

/*  Builds the route and query: PREFIX/api/v1/ws/tasks/USER?token=..&since=..&epoch=.. */
static int
s_build_path(s_watch_t *self, const char *user, const char *since, const char *epoch)
{
    char tok[JWT_TOKEN_MAX * 3 + 1], ep[EVENT_EPOCH_MAX * 3 + 1];
    if (cli_url_escape(self->token, tok, sizeof tok) != 0)
        return s_usage_error("the token is too long");
    if (epoch && cli_url_escape(epoch, ep, sizeof ep) != 0)
        return s_usage_error("--epoch is longer than %d bytes", EVENT_EPOCH_MAX);
    buf_t b;
    for (int shown = 0; shown < 2; shown++) {
        buf_init(&b);
        buf_printf(&b, "%s%s%s", self->url.prefix, S_ROUTE, user);
        char sep = '?';
        if (*self->token) {
            buf_printf(&b, "%ctoken=%s", sep, shown ? "[redacted]" : tok);
            sep = '&';
        }
        if (since)
            buf_printf(&b, "%csince=%s&epoch=%s", sep, since, ep);
        char *dst = shown ? self->shown : self->path;
        int fits = buf_ok(&b) && b.len < S_PATH_MAX;
        if (fits) {
            memcpy(dst, b.data, b.len);
            dst[b.len] = '\0';
        }
        sodium_memzero(b.data, b.cap);
        buf_free(&b);
        if (!fits)
            return s_usage_error("the URL is too long");
    }
    return -1;
}

/*  Checks every flag and prepares the URL. Returns -1, or an exit status. */
static int
s_configure(s_watch_t *self)
{
    const cfg_opt_t *opts = self->cfg;
    const char *user = cfg_value(opts, S_NOPTS, "user");
    if (!user || !*user)
        return s_usage_error("--user is required (see --help)");
    if (!event_user_id_valid(user, strlen(user)))
        return s_usage_error("--user must be 1..%d characters of A-Z a-z 0-9 _ . -",
                             EVENT_USER_ID_MAX);
    char err[256];
    if (cli_url_parse(cfg_value(opts, S_NOPTS, "url"), &self->url, err, sizeof err) != 0)
        return s_usage_error("--url: %s", err);
    const char *since = cfg_value(opts, S_NOPTS, "since");
    const char *epoch = cfg_value(opts, S_NOPTS, "epoch");
    uint64_t v;
    if (!since != !epoch)
        return s_usage_error("--since and --epoch go together (both from a previous stream)");
    if (since && cfg_parse_u64(since, 0, UINT64_MAX, &v) != 0)
        return s_usage_error("--since must be a sequence number, not '%s'", since);
    const char *text = cfg_value(opts, S_NOPTS, "count");
    if (text && cfg_parse_u64(text, 1, UINT64_MAX, &self->count) != 0)
        return s_usage_error("--count must be a positive number, not '%s'", text);
    text = cfg_value(opts, S_NOPTS, "timeout");
    if (text && cfg_parse_u64(text, 1, 31 * 24 * 3600, &self->timeout_s) != 0)
        return s_usage_error("--timeout must be 1..2678400 seconds, not '%s'", text);
    int rc = s_token(self, user);
    if (rc >= 0)
        return rc;
    return s_build_path(self, user, since, epoch);
}

/*  Connects and serves until done. Returns the exit status. */
static int
s_run(s_watch_t *self)
{
    lws_set_log_level(
        log_enabled(&self->log, LOG_DEBUG) ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR, s_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = s_protocols;
    info.user = self;
    info.gid = -1;
    info.uid = -1;
    info.max_http_header_data = 8192; /* the request line carries the token */
    info.fd_limit_per_thread = 16;
    if (self->url.tls)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    self->lws = lws_create_context(&info);
    if (!self->lws) {
        fprintf(stderr, "error: could not create the libwebsockets context\n");
        return CLI_EXIT_FAIL;
    }
    struct lws_client_connect_info cc;
    memset(&cc, 0, sizeof cc);
    cc.context = self->lws;
    cc.address = self->url.host;
    cc.port = self->url.port;
    cc.ssl_connection = self->url.tls ? LCCSCF_USE_SSL : 0;
    cc.path = self->path;
    cc.host = self->url.host_header;
    cc.origin = self->url.host_header; /* lws writes "Origin: http://" and this */
    cc.protocol = NULL;                /* like a browser: no subprotocol */
    cc.local_protocol_name = S_PROTOCOL;
    cc.pwsi = &self->wsi;
    log_debug(&self->log, "connecting to %s%s", self->url.host_header, self->shown);
    if (!lws_client_connect_via_info(&cc))
        s_connection_error(self, NULL, 0);
    if (self->timeout_s)
        lws_sul_schedule(self->lws, 0, &self->sul_timeout, s_on_timeout,
                         (lws_usec_t)self->timeout_s * LWS_US_PER_SEC);
    while (!self->done)
        if (lws_service(self->lws, 0) < 0)
            break;
    s_finish(self, self->exit_code);
    lws_context_destroy(self->lws);
    self->lws = NULL;
    return self->exit_code;
}

/* cli_watch: see cli.h */
int
cli_watch(int argc, char **argv)
{
    s_watch_t *self = calloc(1, sizeof *self); /* large: keep it off the stack */
    if (!self) {
        fprintf(stderr, "error: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    memcpy(self->cfg, s_cfg, sizeof s_cfg);
    buf_init(&self->rx);
    char err[256];
    if (version_check_lws(err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", CLI_NAME, err);
        free(self);
        return CLI_EXIT_FAIL;
    }
    int rc = cli_parse(
        self->cfg, S_NOPTS, argc, argv, CLI_NAME " watch --user U [options]",
        "Connects to GET /api/v1/ws/tasks/{user}?token=JWT like a browser and prints\n"
        "every text frame on its own line (pongs included; a ping is sent every 20 s).\n"
        "Exits 0 after --count task frames or when the gateway closes with 1000/1001,\n"
        "3 after --timeout seconds, 4 on a 4xxx close (4401 bad token, 4403 other user),\n"
        "1 on any other close or a failed connection ('closed CODE REASON' on stderr).",
        &self->log);
    if (rc < 0)
        rc = s_configure(self);
    if (rc < 0)
        rc = s_run(self);
    sodium_memzero(self->token, sizeof self->token);
    sodium_memzero(self->path, sizeof self->path);
    buf_free(&self->rx);
    free(self->toks);
    free(self);
    return rc;
}
