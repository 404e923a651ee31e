/*  gateway.h: the gateway's private face: its context, users, sessions and
 *  the modules that act on them.
 *
 *  One process, one libwebsockets event loop; the ZeroMQ sockets, the
 *  listening socket and a signalfd are adopted into it, so nothing ever
 *  blocks and there are no threads of ours.
 *
 *  The hot path, top to bottom:
 *    link.c     gw_link_drain()      read [user NUL][event] from the SUB socket
 *    user.c     gw_user_deliver()    render it to JSON once, append to the
 *                                    user's ring, wake that user's sessions
 *    session.c  gw_session_write()   each session walks the ring from its own
 *                                    cursor and lws_write()s the shared frame
 *  A session never owns a copy of a live event: the ring holds one frame per
 *  event, and a session is a cursor into it plus its last delivered seq.
 *
 *  Joining (and every repair) follows the Clone pattern: subscribe to the
 *  user's topic, wait until the broker confirms the subscription is in effect
 *  (link.c), ask sync for a snapshot or a replay, send it, then continue on
 *  the ring with every event whose seq is above the reply's seq. A session
 *  that meets a gap in seq, or a new epoch, asks again (replay, or snapshot).
 */
#ifndef TC_GATEWAY_H
#define TC_GATEWAY_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cfg.h"
#include "event.h"
#include "jwt.h"
#include "log.h"
#include "strmap.h"

/* ---------------------------------------------------------------- limits */

#define GW_CLIENT_MSG_MAX  512          /* bytes a browser may send in one message */
#define GW_TX_PACKET_MAX   (512 * 1024) /* one send() may carry a whole frame */
#define GW_RING_MAX        4096         /* events kept per user for its sessions */
#define GW_RING_BYTES_MAX  (8u << 20)   /* bytes kept per user for its sessions */
#define GW_SYNC_RETRY_MS   2000         /* resend a sync request not answered */
#define GW_SYNC_GIVE_UP_MS 10000        /* close a session that cannot sync */
#define GW_BROKER_DEAD_MS  2000         /* no heartbeat for this long: broker down */
#define GW_TICK_MS         100          /* timers and the ZeroMQ safety-net drain */
#define GW_SHUTDOWN_MS     3000         /* SIGTERM: time given to close clients */

/*  Close codes the gateway decides (each follows an error frame). Beyond
 *  1001, they are 4000 + the HTTP status that says the same: private-range
 *  codes are accepted by every client library (lws clients turn 1012-1014
 *  into 1002). */
#define GW_CLOSE_GOING_AWAY   1001 /* SIGTERM: the gateway is stopping */
#define GW_CLOSE_BAD_REQUEST  4400 /* since/epoch malformed */
#define GW_CLOSE_UNAUTHORIZED 4401 /* missing, malformed, expired or badly signed token */
#define GW_CLOSE_FORBIDDEN    4403 /* valid token for another user */
#define GW_CLOSE_TOO_SLOW     4429 /* the client fell too far behind: reconnect with since */
#define GW_CLOSE_UNAVAILABLE  4503 /* the broker did not answer: try again later */

/* ---------------------------------------------------------------- frames */

typedef enum {
    GW_FRAME_EVENT = 0, /* a task event: has seq and epoch generation */
    GW_FRAME_CONTROL    /* hello, pong, error */
} gw_frame_kind_t;

/*  A rendered JSON text frame with LWS_PRE bytes of headroom, shared by
 *  reference (single-threaded: plain counter). */
typedef struct gw_frame {
    uint32_t refs;
    uint32_t len; /* JSON bytes */
    uint64_t seq;
    uint32_t gen; /* the user's epoch generation it belongs to */
    uint8_t kind;
    unsigned char buf[]; /* LWS_PRE + len */
} gw_frame_t;

/*  Copies len bytes of JSON into a new frame (refs = 1). NULL on OOM. */
gw_frame_t *gw_frame_new(const char *json, size_t len, gw_frame_kind_t kind);
gw_frame_t *gw_frame_ref(gw_frame_t *f);
void gw_frame_unref(gw_frame_t **f_p);

static inline unsigned char *
gw_frame_payload(gw_frame_t *f)
{
    return f->buf + LWS_PRE;
}

/*  Appends {"type":"error","code":CODE,"message":MSG}: the one error shape
 *  of frames and HTTP answers alike. */
void gw_error_json(buf_t *out, const char *code, const char *message);
/*  That JSON as a frame. */
gw_frame_t *gw_frame_error(const char *code, const char *message);

/* ---------------------------------------------------------------- users, sessions */

typedef struct gw_session gw_session_t;
typedef struct gw_user gw_user_t;

/*  A sync reply rendered for one session. */
typedef struct gw_batch {
    uint64_t seq;   /* the user's seq when the broker answered */
    uint32_t count; /* frames */
    uint32_t pos;   /* next frame to send */
    gw_frame_t *frames[];
} gw_batch_t;

void gw_batch_free(gw_batch_t **batch_p);

struct gw_user {
    gw_session_t *sessions, *sessions_tail; /* linked through uprev/unext */
    uint32_t nsessions;
    uint32_t behind;    /* sessions whose cursor is below head */
    int confirmed;      /* the broker confirmed our subscription */
    uint64_t confirm_n; /* the confirmation that covers our subscription */
    gw_user_t *cnext;   /* waiting for confirmation (gateway list) */
    uint32_t gen;       /* epoch generation: bumps when the epoch changes */
    uint64_t last_seq;  /* highest seq seen live */
    gw_frame_t *hello;  /* hello frame for the current epoch, NULL until known */
    gw_frame_t **ring;  /* ring[i & (cap - 1)] for tail <= i < head */
    uint32_t ring_cap;
    uint64_t head, tail;
    size_t ring_bytes;
    uint8_t epoch_len;
    char epoch[EVENT_EPOCH_MAX + 1];
    uint8_t id_len;
    char id[EVENT_USER_ID_MAX + 2]; /* id, NUL: the topic is id_len + 1 bytes */
};

typedef enum {
    GW_S_HTTP = 0,     /* a plain HTTP request */
    GW_S_WAIT_CONFIRM, /* authenticated; the user's subscription is not confirmed yet */
    GW_S_SYNCING,      /* a sync request is out */
    GW_S_LIVE,         /* following the user's ring */
    GW_S_CLOSING       /* an error frame is out; close after it */
} gw_state_t;

struct gw_session {
    struct lws *wsi;
    gw_user_t *user;
    gw_session_t *unext, *uprev; /* the user's sessions */
    gw_session_t *pnext, *pprev; /* the gateway's sessions waiting to sync */
    uint64_t cursor;             /* next ring index to look at */
    uint64_t last_seq;           /* highest seq delivered (or known to the client) */
    uint64_t req;                /* sync request out, 0 if none */
    uint64_t since;              /* resume point asked by the client (has_since) */
    gw_batch_t *batch;           /* sync reply being sent */
    gw_frame_t *ctl;             /* control frame to send next (hello or error) */
    char *resume_epoch;          /* epoch asked by the client, NULL if none */
    int64_t connected_ms;        /* wall clock */
    int64_t wait_since_ms;       /* when this session began waiting to sync */
    int64_t req_sent_ms;
    uint32_t id;
    uint32_t gen; /* epoch generation announced in our last hello, 0: none */
    uint16_t close_code;
    uint8_t state; /* gw_state_t */
    uint8_t pongs; /* pongs owed */
    uint8_t has_since;
};

/* ---------------------------------------------------------------- context */

typedef struct gw_stats {
    uint64_t connections_total, auth_failures, events_received, frames_sent, gaps, syncs,
        sync_timeouts, slow_consumers, http_requests, not_found, bad_broker_messages;
} gw_stats_t;

typedef struct gateway {
    log_t log;
    const cfg_opt_t *opt; /* the resolved options (main.c's table) */
    struct lws_context *lws;
    struct lws_vhost *vhost;
    jwt_keys_t keys;
    char name[128];
    char host[256];
    int port;
    int listen_fd;
    int spare_fd;
    struct lws *listen_wsi;
    int sigfd;
    lws_retry_bo_t idle_policy; /* WebSocket pings to idle clients */
    int stopping;
    int done;
    int64_t stop_deadline_ms;

    void *zctx;
    void *sub;    /* SUB: user topics, heartbeats, confirmations */
    void *dealer; /* DEALER: sync requests */
    int broker_up;
    int64_t last_heartbeat_ms;
    char broker_epoch[EVENT_EPOCH_MAX + 1];
    char broker_boot[EVENT_EPOCH_MAX + 1]; /* changes at every broker start */
    char token[24];                        /* random: our confirmation topics are ours alone */
    uint64_t confirm_next;                 /* the number the next confirmation will carry */
    uint64_t confirm_sent;                 /* the last confirmation asked for */
    gw_user_t *confirm_head, *confirm_tail;
    int confirm_wanted; /* a confirmation must go out in the next flush */
    int flush_scheduled;
    int relink; /* the link came back: resync live sessions once confirmed */
    uint64_t relink_confirm;

    strmap_t *users;
    uint32_t nsessions;
    gw_session_t *pending, *pending_tail; /* sessions waiting to sync (timeouts) */
    uint64_t next_req;
    uint32_t next_session_id;
    int64_t started_ms;

    buf_t scratch;
    gw_frame_t *pong; /* {"type":"pong"}, shared */
    gw_stats_t stats;
    lws_sorted_usec_list_t sul_tick, sul_flush;
} gateway_t;

/*  The gateway behind any wsi. */
static inline gateway_t *
gw_from_wsi(struct lws *wsi)
{
    return (gateway_t *)lws_context_user(lws_get_context(wsi));
}

/* ---------------------------------------------------------------- main.c */

/*  Adopts fd (a listening socket, the signalfd, a ZeroMQ fd) into the lws
 *  loop; its readiness arrives as LWS_CALLBACK_RAW_RX_FILE. On success lws
 *  owns fd (it closes it), on failure fd is closed here. NULL on failure. */
struct lws *gw_adopt_fd(gateway_t *gw, int fd);

/* ---------------------------------------------------------------- listen.c */

/*  Opens the listening socket (SO_REUSEPORT, so several gateways can share a
 *  port) and adopts it into lws. 0, or -1 with the reason logged. */
int gw_listen_open(gateway_t *gw);
/*  Accepts every pending connection and hands it to lws. */
void gw_listen_accept(gateway_t *gw);

/* ---------------------------------------------------------------- http.c */

/*  LWS_CALLBACK_HTTP: routes a plain request. Returns what the callback
 *  should return. */
int gw_http_request(gateway_t *gw, struct lws *wsi, gw_session_t *s, const char *uri);
/*  LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: allows only the WebSocket route. */
int gw_http_confirm_upgrade(gateway_t *gw, struct lws *wsi, const char *upgrade);
/*  Parses "/api/v1/ws/tasks/{user_id}": 0 and the id (NUL-terminated in
 *  id[EVENT_USER_ID_MAX + 1]), or -1 if the path is not that route. */
int gw_http_ws_user(const char *path, char *id);
/*  Copies the query argument name ("token=") into out; 0, or -1 if absent
 *  or longer than outlen - 1. */
int gw_http_arg(struct lws *wsi, const char *name, char *out, size_t outlen);

/* ---------------------------------------------------------------- status.c */

/*  Appends the status JSON for one user (user_id) or the whole gateway. */
void gw_status_render(gateway_t *gw, const char *user_id, buf_t *out);
/*  Appends the Prometheus metrics text. */
void gw_status_metrics(gateway_t *gw, buf_t *out);

/* ---------------------------------------------------------------- session.c */

void gw_session_established(gateway_t *gw, struct lws *wsi, gw_session_t *s);
int gw_session_receive(gateway_t *gw, struct lws *wsi, gw_session_t *s, const void *in, size_t len);
int gw_session_writeable(gateway_t *gw, struct lws *wsi, gw_session_t *s);
void gw_session_closed(gateway_t *gw, gw_session_t *s);
/*  Queues an error frame and closes with code after it. */
void gw_session_fail(gateway_t *gw, gw_session_t *s, uint16_t code, const char *err_code,
                     const char *message);
/*  Starts a sync for the session (replay after last_seq if resync, else what
 *  the client asked). */
void gw_session_sync(gateway_t *gw, gw_session_t *s);
/*  The session's sync reply arrived (batch may be empty, never NULL); the
 *  user's epoch is already the reply's. */
void gw_session_synced(gateway_t *gw, gw_session_t *s, gw_batch_t *batch);
/*  Called every tick: sync retries and give-ups. */
void gw_session_check_pending(gateway_t *gw, int64_t now_ms);
void gw_session_pending_add(gateway_t *gw, gw_session_t *s);
void gw_session_pending_remove(gateway_t *gw, gw_session_t *s);

/* ---------------------------------------------------------------- user.c */

/*  The user record, created (and subscribed) if absent. NULL on OOM. */
gw_user_t *gw_user_get(gateway_t *gw, const char *id, size_t len);
gw_user_t *gw_user_find(gateway_t *gw, const char *id, size_t len);
void gw_user_attach(gateway_t *gw, gw_user_t *u, gw_session_t *s);
/*  Removes the session; the last one out unsubscribes and frees the user. */
void gw_user_detach(gateway_t *gw, gw_user_t *u, gw_session_t *s);
/*  A live event for the user (already decoded; bytes is its msgpack). */
void gw_user_deliver(gateway_t *gw, gw_user_t *u, const event_t *ev);
/*  Adopts epoch as the user's current one; returns 1 if it changed. */
int gw_user_set_epoch(gateway_t *gw, gw_user_t *u, const char *epoch, size_t len);
/*  Drops ring frames every session has passed. */
void gw_user_trim(gw_user_t *u);
/*  Moves a session's cursor (keeps the count of sessions behind head). */
void gw_user_move_cursor(gw_user_t *u, gw_session_t *s, uint64_t cursor);
/*  Subscription confirmed: sync every waiting session. */
void gw_user_confirmed(gateway_t *gw, gw_user_t *u);
void gw_user_free_all(gateway_t *gw);

/* ---------------------------------------------------------------- link.c */

int gw_link_open(gateway_t *gw, const char *fanout, const char *sync);
void gw_link_close(gateway_t *gw);
/*  Reads everything waiting on both sockets. */
void gw_link_drain(gateway_t *gw);
int gw_link_subscribe(gateway_t *gw, const char *topic, size_t len, int on);
/*  Asks for a subscription confirmation covering every subscription so far
 *  (batched: at most one per loop pass). */
void gw_link_want_confirm(gateway_t *gw, gw_user_t *u);
/*  Sends a sync request for s; sets s->req. 0, or -1. */
int gw_link_request_sync(gateway_t *gw, gw_session_t *s, uint64_t since, const char *epoch);
/*  Heartbeat bookkeeping, from the tick. */
void gw_link_check(gateway_t *gw, int64_t now_ms);

#endif
