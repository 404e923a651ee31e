/*  http.c: the gateway's HTTP surface, exactly the routes of the contract,
 *  in one table (s_routes below):
 *
 *    GET /api/v1/ws/tasks/{user_id}   the one WebSocket route (upgrade only)
 *    GET /api/v1/ws/status?token=JWT  JSON status (user: own connections;
 *                                     admin: the whole gateway)
 *    GET /health                      liveness
 *    GET /ready                       200 only while the broker link is up
 *    GET /metrics                     Prometheus text
 *    POST /api/v1/jobs                submit a job (Bearer token of the user, or a
 *                                     service token; jobs.c)
 *    anything else                    404, upgrade or not
 *
 *  Paths are compared whole and exactly: there is no prefix mounting, so
 *  "/api/v1/api/v1/ws/tasks/2" cannot exist. Every error answer comes from
 *  the one table of errors (errors.h).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "gateway.h"

#define S_WS_PREFIX "/api/v1/ws/tasks/"

/* ---------------------------------------------------------------- request parts */

int
gw_http_ws_user(const char *path, char *id)
{
    size_t plen = strlen(S_WS_PREFIX);
    if (strncmp(path, S_WS_PREFIX, plen) != 0)
        return -1;
    const char *u = path + plen;
    size_t n = strlen(u);
    if (!event_user_id_valid(u, n))
        return -1;
    memcpy(id, u, n + 1);
    return 0;
}

int
gw_http_arg(struct lws *wsi, const char *name, char *out, size_t outlen)
{
    /* Walk the query's fragments ourselves: lws_get_urlarg_by_name() stops
     * at the first argument too long for the caller's buffer, so a long
     * token= before since= would hide since=. */
    size_t nlen = strlen(name);
    for (int i = 0;; i++) {
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0)
            return -1;
        if ((size_t)flen < nlen || (size_t)flen - nlen >= outlen)
            continue; /* not this one, or too long for out */
        char frag[JWT_TOKEN_MAX + 64];
        if ((size_t)flen >= sizeof frag ||
            lws_hdr_copy_fragment(wsi, frag, (int)sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
            continue;
        if (strncmp(frag, name, nlen) == 0) {
            memcpy(out, frag + nlen, (size_t)flen - nlen + 1);
            sodium_memzero(frag, sizeof frag);
            return 0;
        }
    }
}

jwt_status_t
gw_http_verify_token(gateway_t *gw, struct lws *wsi, jwt_claims_t *claims)
{
    /* ?token= (browsers cannot set headers on a WebSocket), or
     * Authorization: Bearer for clients that can. */
    char token[JWT_TOKEN_MAX + 1], auth[JWT_TOKEN_MAX + 16];
    size_t len = 0;
    if (gw_http_arg(wsi, "token=", token, sizeof token) == 0)
        len = strlen(token);
    else if (lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
             strncasecmp(auth, "Bearer ", 7) == 0 && strlen(auth + 7) < sizeof token) {
        strcpy(token, auth + 7);
        len = strlen(token);
    }
    jwt_status_t st = jwt_verify(&gw->keys, token, len, clock_wall_ms() / 1000, claims);
    sodium_memzero(token, sizeof token);
    sodium_memzero(auth, sizeof auth);
    return st;
}

/* ---------------------------------------------------------------- answers */

static const char *
s_reason(unsigned int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 409:
        return "Conflict";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/*  Writes a whole HTTP/1.1 response in one write and ends the transaction,
 *  except while confirming an upgrade (lws ends it then, and the connection
 *  closes). The head is written by hand: while an upgrade is being
 *  confirmed, lws has not read the request's version yet and would answer
 *  "HTTP/1.0", which WebSocket clients refuse to read. Any origin may read
 *  the answers (a web app shows /ready or its user's status; the token in
 *  the query, not a cookie, is what authorises). Returns what the callback
 *  returns. */
int
gw_http_respond(gateway_t *gw, struct lws *wsi, unsigned int code, const char *type,
                const char *body, size_t len)
{
    int upgrading = lws_hdr_total_length(wsi, WSI_TOKEN_UPGRADE) > 0;
    buf_t *b = &gw->scratch;
    buf_reset(b);
    if (buf_reserve(b, LWS_PRE) != 0)
        return -1;
    b->len = LWS_PRE;
    buf_printf(b,
               "HTTP/1.1 %u %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
               "cache-control: no-store\r\naccess-control-allow-origin: *\r\n%s\r\n",
               code, s_reason(code), type, len, upgrading ? "connection: close\r\n" : "");
    buf_append(b, body, len);
    if (!buf_ok(b))
        return -1;
    size_t n = b->len - LWS_PRE;
    if (lws_write(wsi, (unsigned char *)b->data + LWS_PRE, n, LWS_WRITE_HTTP) < (int)n)
        return -1;
    if (upgrading)
        return 1; /* HTTP_CONFIRM_UPGRADE: "answered; lws completes it" */
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int
s_respond_json(gateway_t *gw, struct lws *wsi, unsigned int code, buf_t *body)
{
    int rc = buf_ok(body)
                 ? gw_http_respond(gw, wsi, code, "application/json", body->data, body->len)
                 : -1;
    buf_free(body);
    return rc;
}

static int
s_respond_error(gateway_t *gw, struct lws *wsi, gw_error_t e, const char *detail)
{
    const gw_error_info_t *info = gw_error_info(e);
    buf_t b;
    buf_init(&b);
    gw_error_json(&b, info->code, detail ? detail : info->sentence);
    return s_respond_json(gw, wsi, info->http, &b);
}

/* ---------------------------------------------------------------- routes */

static int
s_health(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    return gw_http_respond(gw, wsi, 200, "application/json", ok, sizeof ok - 1);
}

static int
s_ready(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims)
{
    if (gw->broker_up && !gw->stopping) {
        static const char ready[] = "{\"status\":\"ready\"}";
        return gw_http_respond(gw, wsi, 200, "application/json", ready, sizeof ready - 1);
    }
    return s_respond_error(gw, wsi, GW_E_UNAVAILABLE,
                           gw->stopping ? "the gateway is shutting down"
                                        : "the broker is unreachable");
}

static int
s_metrics(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims)
{
    buf_t b;
    buf_init(&b);
    gw_status_metrics(gw, &b);
    int rc =
        buf_ok(&b) ? gw_http_respond(gw, wsi, 200, "text/plain; version=0.0.4", b.data, b.len) : -1;
    buf_free(&b);
    return rc;
}

/*  The token decides what is shown, and without a valid token nothing is. */
static int
s_status(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims)
{
    buf_t b;
    buf_init(&b);
    gw_status_render(gw, claims->admin ? NULL : claims->sub, &b);
    return s_respond_json(gw, wsi, 200, &b);
}

/*  A plain GET of the WebSocket route. */
static int
s_ws_plain(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims)
{
    return s_respond_error(gw, wsi, GW_E_UPGRADE_REQUIRED, NULL);
}

/*  POST /api/v1/jobs (jobs.c serves the body and the answer). */
static int
s_jobs_submit(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims)
{
    return gw_jobs_http_start(gw, wsi, s, claims);
}

typedef struct {
    const char *path; /* the whole path, or with user_id its prefix */
    int post;         /* 1: POST, else GET */
    int user_id;      /* 1: path is followed by a valid user id, and that is all */
    int token;        /* 1: the handler runs only with a valid token (else 401) */
    int (*handler)(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims);
} s_route_t;

/*  Every route there is. Only GET is served (405 otherwise). The WebSocket
 *  route authenticates after its handshake (session.c), never before. */
static const s_route_t s_routes[] = {
    {"/health", 0, 0, 0, s_health},           {"/ready", 0, 0, 0, s_ready},
    {"/metrics", 0, 0, 0, s_metrics},         {"/api/v1/ws/status", 0, 0, 1, s_status},
    {"/api/v1/jobs", 1, 0, 1, s_jobs_submit}, {S_WS_PREFIX, 0, 1, 0, s_ws_plain},
};

static const s_route_t *
s_route(const char *path)
{
    char id[EVENT_USER_ID_MAX + 1];
    for (size_t i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++) {
        const s_route_t *r = &s_routes[i];
        if (r->user_id ? gw_http_ws_user(path, id) == 0 : strcmp(path, r->path) == 0)
            return r;
    }
    return NULL;
}

/*  An error answer to a request; one that carries a body is answered once
 *  the body is read (jobs.c), or the client would be reset mid-send. */
static int
s_refuse(gateway_t *gw, struct lws *wsi, gw_session_t *s, gw_error_t e, const char *detail)
{
    char cl[24] = "";
    if (s && lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && atoll(cl) > 0) {
        const gw_error_info_t *info = gw_error_info(e);
        return gw_jobs_http_refuse(gw, wsi, s, info->http, info->code,
                                   detail ? detail : info->sentence);
    }
    return s_respond_error(gw, wsi, e, detail);
}

int
gw_http_request(gateway_t *gw, struct lws *wsi, gw_session_t *s, const char *uri)
{
    if (s)
        s->state = GW_S_HTTP;
    gw->stats.http_requests++;
    int is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    int is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    const char *path = uri ? uri : "";
    const s_route_t *r = s_route(path);
    log_debug(&gw->log, "http %s %s", is_get ? "GET" : "(not GET)", path);
    if (!r) {
        gw->stats.not_found++;
        return s_refuse(gw, wsi, s, GW_E_NO_ROUTE, NULL);
    }
    if (r->post ? !is_post : !is_get)
        return s_refuse(gw, wsi, s, r->post ? GW_E_METHOD_POST : GW_E_METHOD, NULL);
    jwt_claims_t claims;
    memset(&claims, 0, sizeof claims);
    if (r->token) {
        jwt_status_t st = gw_http_verify_token(gw, wsi, &claims);
        if (st != JWT_OK) {
            gw->stats.auth_failures++;
            log_info(&gw->log, "%s refused: %s (401)", r->path, jwt_status_message(st));
            return s_refuse(gw, wsi, s, GW_E_UNAUTHORIZED, jwt_status_message(st));
        }
    }
    return r->handler(gw, wsi, s, &claims);
}

int
gw_http_confirm_upgrade(gateway_t *gw, struct lws *wsi, const char *upgrade)
{
    char path[512] = "", id[EVENT_USER_ID_MAX + 1];
    if (!upgrade || strcasecmp(upgrade, "websocket") != 0)
        return s_respond_error(gw, wsi, GW_E_NOT_WEBSOCKET, NULL);
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0 ||
        gw_http_ws_user(path, id) != 0) {
        gw->stats.not_found++;
        log_info(&gw->log, "upgrade refused: no route %.200s (404)", path);
        return s_respond_error(gw, wsi, GW_E_NO_ROUTE, NULL);
    }
    return 0;
}
