/*  gateway.h: the gateway's private face: its context, users, sessions and
 *  the modules that act on them.
 *
 *  One process, one event loop (loop.c): libev over epoll, so a wake-up
 *  costs the same whatever the number of connections. libwebsockets runs
 *  in it as a guest (its libev plugin, with our loop as its foreign loop);
 *  the listening socket, the ZeroMQ sockets, a signalfd and the timers are
 *  our own watchers in the same loop. No threads of ours.
 *
 *  The modules call in one direction: loop -> link -> user -> session.
 *  Sessions and users never call the link: they queue what they need
 *  (a subscription, an unsubscription, a sync request) in the context, and
 *  the loop's before-sleep hook has the link send it all at once.
 *
 *  The hot path, top to bottom:
 *    loop.c     s_before_sleep()     once per loop pass: gw_link_pump()
 *    link.c     gw_link_pump()       read [user NUL][event] from the SUB socket
 *    user.c     gw_user_deliver()    render it to JSON once, push it on the
 *                                    user's ring, wake that user's sessions
 *    session.c  gw_session_writeable()  each session walks the ring from its
 *                                    own cursor; what is ready goes out in
 *                                    one send
 *  A session never owns a copy of a live event: the ring (ring.c) holds one
 *  frame per event, and a session is a cursor into it plus its last seq.
 *
 *  Joining (and every repair) follows the Clone pattern: subscribe to the
 *  user's topic, wait until the broker confirms the subscription is in
 *  effect, ask sync for a snapshot or a replay, send it, then continue on
 *  the ring with every event whose seq is above the answer's seq. A session
 *  that meets a gap in seq, or a new epoch, asks again.
 */
#ifndef TC_GATEWAY_H
#define TC_GATEWAY_H

#include <ev.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "cfg.h"
#include "errors.h"
#include "event.h"
#include "frame.h"
#include "jwt.h"
#include "log.h"
#include "ring.h"
#include "strmap.h"
#include "zconn.h"

/* ---------------------------------------------------------------- limits */

#define GW_CLIENT_MSG_MAX 512 /* bytes a browser may send in one message */
#define GW_RX_BUFFER                                                                               \
    64                                  /* lws's receive buffer per connection: bigger             \
                                           messages arrive in pieces (session.c) */
#define GW_TX_PACKET_MAX   (512 * 1024) /* one send() may carry a whole frame */
#define GW_RING_MAX        4096         /* events kept per user for its sessions */
#define GW_RING_BYTES_MAX  (8u << 20)   /* bytes kept per user for its sessions */
#define GW_SYNC_RETRY_MS   2000         /* resend a sync request not answered */
#define GW_SYNC_GIVE_UP_MS 10000        /* close a session that cannot sync */
#define GW_BROKER_DEAD_MS  2000         /* no heartbeat for this long: broker down */
#define GW_TICK_MS         100          /* timeouts, heartbeat check, safety-net drain */
#define GW_SHUTDOWN_MS     3000         /* SIGTERM: time given to close clients */
#define GW_CLOSE_ACK_MS    2000         /* after our close frame: wait for the client's */

/* ---------------------------------------------------------------- users, sessions */

typedef struct gw_session gw_session_t;
typedef struct gw_user gw_user_t;

typedef enum {
    GW_U_JOINING = 0, /* queued: its topic is not subscribed yet */
    GW_U_CONFIRMING,  /* subscribed, waiting for the broker's confirmation */
    GW_U_CONFIRMED,   /* its events reach us */
    GW_U_LEAVING      /* no session left: queued to unsubscribe and go */
} gw_user_state_t;

struct gw_user {
    gw_ring_t ring;           /* its rendered events; the cursors are its sessions */
    gw_user_t *qprev, *qnext; /* the join, confirm or leave queue its state says */
    uint64_t confirm_n;       /* the confirmation that covers its subscription */
    uint64_t last_seq;        /* highest seq seen live */
    gw_frame_t *hello;        /* hello frame for the current epoch, NULL until known */
    uint32_t gen;             /* epoch generation: bumps when the epoch changes */
    uint8_t state;            /* gw_user_state_t */
    uint8_t epoch_len;
    uint8_t id_len;
    char epoch[EVENT_EPOCH_MAX + 1];
    char id[]; /* id_len bytes and a NUL: the topic is id_len + 1 bytes */
};

typedef enum {
    GW_S_HTTP = 0,     /* a plain HTTP request */
    GW_S_WAIT_CONFIRM, /* authenticated; the user's subscription is not confirmed yet */
    GW_S_SYNC_WANTED,  /* queued for the link to send a sync request */
    GW_S_SYNCING,      /* a sync request is out */
    GW_S_LIVE,         /* following the user's ring */
    GW_S_CLOSING       /* an error frame is out; close after it */
} gw_state_t;

struct gw_session {
    struct lws *wsi;
    gw_user_t *user;
    gw_cursor_t cursor;          /* in user->ring: the user's sessions */
    gw_session_t *pnext, *pprev; /* sessions waiting to sync (timeouts) */
    gw_session_t *qnext, *qprev; /* the sync queue, or the wake queue (queued says) */
    uint64_t last_seq;           /* highest seq delivered (or known to the client) */
    uint64_t req;                /* sync request out, 0 if none */
    uint64_t since;              /* resume point asked by the client (has_since) */
    gw_batch_t *batch;           /* sync answer being sent */
    gw_frame_t *ctl;             /* control frame to send next (hello or error) */
    char *resume_epoch;          /* epoch asked by the client, NULL if none */
    char *rx;                    /* a client message arriving in pieces, NULL if none */
    struct gw_submit *submit;    /* POST /api/v1/jobs being served (jobs.c), or NULL */
    int64_t connected_ms;        /* wall clock */
    int64_t wait_since_ms;       /* when this session began waiting to sync */
    int64_t req_sent_ms;
    uint32_t id;
    uint32_t gen; /* epoch generation announced in our last hello, 0: none */
    uint16_t close_code;
    uint16_t rx_len;
    uint8_t state; /* gw_state_t */
    uint8_t pongs; /* pongs owed */
    uint8_t has_since;
    uint8_t queued;     /* 0, GW_Q_SYNC or GW_Q_WAKE */
    uint8_t ping_due;   /* a WebSocket ping is to be sent */
    uint8_t close_sent; /* our close is lws's to send: wait for the client's */
    uint8_t ka_pinged;  /* keepalive.c: pinged, no answer yet */
    uint8_t ka_closing; /* keepalive.c: ka_due_ms ends the close handshake */
    uint32_t ka_index;  /* keepalive.c: heap position + 1, 0 if not in it */
    int64_t ka_due_ms, ka_last_rx_ms;
};

#define GW_Q_SYNC 1 /* gw->syncq: a sync request is to be sent */
#define GW_Q_WAKE 2 /* gw->wakeq: new frames are to be written */

/* ---------------------------------------------------------------- broker connections */

typedef struct gateway gateway_t;
typedef struct gw_zconn gw_zconn_t;

/*  What a connection to the broker is and whom it tells (zconn.c). */
typedef struct gw_zconn_spec {
    const char *name;      /* "fanout" or "sync": its option, in log lines */
    const char *endpoint;  /* tcp://HOST:PORT or ipc://PATH */
    const char *type;      /* our ZeroMQ socket type: "SUB", "DEALER" */
    const char *peer_type; /* the broker's: "XPUB", "ROUTER" */
    uint64_t max_frame;    /* a bigger frame resets the connection */
    /*  The handshake is done (again, after a reconnect). */
    void (*on_up)(gateway_t *gw, gw_zconn_t *c);
    /*  One frame of a message (data points into the read buffer, valid
     *  until it returns): first tells a message's first frame, more that
     *  others follow. */
    void (*on_frame)(gateway_t *gw, gw_zconn_t *c, const uint8_t *data, size_t len, int first,
                     int more);
} gw_zconn_spec_t;

struct gw_zconn {
    zconn_t z; /* common/zconn.c does the work; z.last_rx_ms: when bytes last came */
    gateway_t *gw;
    void (*on_up)(gateway_t *gw, gw_zconn_t *c);
    void (*on_frame)(gateway_t *gw, gw_zconn_t *c, const uint8_t *data, size_t len, int first,
                     int more);
    ev_io rw, ww;
    ev_timer timer; /* the connection's deadline: the next attempt, or the handshake's end */
};

/* ---------------------------------------------------------------- context */

/*  Sessions by the time keepalive.c must next look at them. */
typedef struct gw_keepalive {
    gw_session_t **heap;
    uint32_t n, cap;
    int64_t ping_ms;   /* silence before a ping (--ping-interval) */
    int64_t hangup_ms; /* silence before the end: 2.5 intervals */
} gw_keepalive_t;

typedef struct gw_stats {
    uint64_t connections_total, auth_failures, events_received, frames_sent, gaps, syncs,
        sync_timeouts, slow_consumers, http_requests, not_found, bad_broker_messages;
} gw_stats_t;

struct gateway {
    log_t log;
    const cfg_opt_t *opt;                      /* the resolved options (main.c's table) */
    const char *fanout_ep, *sync_ep, *jobs_ep; /* the broker's endpoints */
    jwt_keys_t keys;
    char name[128];
    char host[256];
    int port;
    gw_keepalive_t keepalive;

    /* loop.c */
    struct ev_loop *loop;
    struct lws_context *lws;
    struct lws_vhost *vhost;
    ev_io w_listen, w_signal;
    lws_sorted_usec_list_t sul_tick;
    ev_prepare w_prepare;
    int listen_fd;
    int spare_fd;
    int sigfd;
    int stopping;
    int64_t stop_deadline_ms;

    /* link.c */
    gw_zconn_t fanout; /* SUB to the broker's XPUB: user topics, heartbeats, confirmations */
    gw_zconn_t sync;   /* DEALER to the broker's ROUTER: snapshot/replay requests */
    int fanout_ever_up;
    uint8_t sub_part; /* 0: a topic is next, 1: its body, 2: skip to the end */
    uint8_t sub_topic_len;
    char sub_topic[EVENT_USER_ID_MAX + 2 + 64];
    uint64_t answer_req; /* the sync answer being read */
    uint32_t answer_gen;
    gw_batch_t *answer_batch; /* NULL: the rest of the answer is skipped */
    char answer_user[EVENT_USER_ID_MAX + 1];
    int broker_up;
    int64_t last_heartbeat_ms;
    char broker_epoch[EVENT_EPOCH_MAX + 1];
    char broker_boot[EVENT_EPOCH_MAX + 1]; /* changes at every broker start */
    char token[24];                        /* random: our confirmation topics are ours alone */
    uint64_t confirm_sent;                 /* the last confirmation asked for */
    int confirm_wanted;                    /* a confirmation must go out in the next pump */
    int relink; /* the link came back: resync live sessions once confirmed */
    uint64_t relink_confirm;
    uint64_t next_req;

    /* jobs.c */
    gw_zconn_t jobs; /* DEALER to the broker's jobs ROUTER: clients' cancels */
    struct gw_cancel *cancels, *cancels_tail; /* waiting for an answer, oldest first */
    uint32_t ncancels;
    uint64_t next_cancel;

    /* the queues the link serves (user.c and session.c fill them) */
    gw_user_t *joinq, *joinq_tail;       /* users to subscribe */
    gw_user_t *confirmq, *confirmq_tail; /* users waiting for a confirmation */
    gw_user_t *leaveq, *leaveq_tail;     /* users to unsubscribe and free */
    gw_session_t *syncq, *syncq_tail;    /* sessions to send a sync request for */
    gw_session_t *wakeq, *wakeq_tail;    /* live sessions with new frames on their ring */

    strmap_t *users;
    uint32_t nsessions;
    gw_session_t *pending, *pending_tail; /* sessions waiting to sync (timeouts) */
    uint32_t next_session_id;
    int64_t started_ms;

    buf_t scratch;
    gw_frame_t *pong; /* {"type":"pong"}, shared */
    gw_stats_t stats;
};

/*  The gateway behind any wsi. */
static inline gateway_t *
gw_from_wsi(struct lws *wsi)
{
    return (gateway_t *)lws_context_user(lws_get_context(wsi));
}

/* ---------------------------------------------------------------- loop.c */

/*  Creates the loop and the lws context in it, watches the signalfd,
 *  opens the listener and the broker link, starts the tick. 0, or -1 with
 *  the reason logged. */
int gw_loop_open(gateway_t *gw);
/*  Runs until the gateway has stopped. */
void gw_loop_run(gateway_t *gw);
/*  Destroys the lws context (closing every connection) and the loop. */
void gw_loop_close(gateway_t *gw);

/* ---------------------------------------------------------------- listen.c */

/*  Opens the listening socket (SO_REUSEPORT, so several gateways can share
 *  a port) in gw->listen_fd. 0, or -1 with the reason logged. */
int gw_listen_open(gateway_t *gw);
/*  Accepts every pending connection and hands it to lws. */
void gw_listen_accept(gateway_t *gw);
void gw_listen_close(gateway_t *gw);

/* ---------------------------------------------------------------- zconn.c */

/*  Starts connecting (and keeps reconnecting). 0, or -1 if the endpoint
 *  can never work (logged). */
int gw_zconn_open(gateway_t *gw, gw_zconn_t *c, const gw_zconn_spec_t *spec);
void gw_zconn_close(gw_zconn_t *c);
int gw_zconn_up(const gw_zconn_t *c);
/*  The buffer to append frames to while up (zmtp_put_frame(), ...), else
 *  NULL: what would be sent is dropped (a reconnect resends what matters). */
buf_t *gw_zconn_out(gw_zconn_t *c);
/*  Writes what was appended (the rest when the socket is writable). */
void gw_zconn_flush(gw_zconn_t *c);
/*  Closes the connection and reconnects soon. */
void gw_zconn_reset(gw_zconn_t *c, const char *why);

/* ---------------------------------------------------------------- jobs.c */

int gw_jobs_open(gateway_t *gw);
void gw_jobs_close(gateway_t *gw);
/*  The client of s asks to cancel its user's job task_id. */
void gw_jobs_cancel(gateway_t *gw, gw_session_t *s, const char *task_id, size_t len);
/*  s is closing: answers for it are dropped. */
void gw_jobs_forget(gateway_t *gw, gw_session_t *s);
/*  Cancels and submits unanswered too long are reported unavailable. */
void gw_jobs_check(gateway_t *gw, int64_t now_ms);
/*  POST /api/v1/jobs: the request (its token checked) starts; its body
 *  arrives in pieces; once whole it goes to the broker; the answer is
 *  written when the connection is writable; a closed one is forgotten. What
 *  an lws callback returns. */
int gw_jobs_http_start(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims);
/*  A request with a body refused before reading it (401, 403, 404, 405):
 *  the answer is kept and written once the body has been read, so the
 *  client is not reset while it is still sending. */
int gw_jobs_http_refuse(gateway_t *gw, struct lws *wsi, gw_session_t *s, unsigned int status,
                        const char *code, const char *sentence);
int gw_jobs_http_body(gateway_t *gw, struct lws *wsi, gw_session_t *s, const void *in, size_t len);
int gw_jobs_http_done(gateway_t *gw, struct lws *wsi, gw_session_t *s);
int gw_jobs_http_writeable(gateway_t *gw, struct lws *wsi, gw_session_t *s);
void gw_jobs_http_closed(gateway_t *gw, gw_session_t *s);
/*  Writes an HTTP answer (http.c; ends the transaction). */
int gw_http_respond(gateway_t *gw, struct lws *wsi, unsigned int code, const char *type,
                    const char *body, size_t len);

/* ---------------------------------------------------------------- link.c */

/*  Connects to the broker's fanout and sync endpoints. 0, or -1 (logged). */
int gw_link_open(gateway_t *gw);
void gw_link_close(gateway_t *gw);
/*  Before the loop sleeps: sends everything users and sessions queued
 *  (subscriptions, unsubscriptions, one confirmation, sync requests). */
void gw_link_pump(gateway_t *gw);
/*  Heartbeat bookkeeping, from the tick. */
void gw_link_check(gateway_t *gw, int64_t now_ms);

/* ---------------------------------------------------------------- user.c */

gw_user_t *gw_user_find(gateway_t *gw, const char *id, size_t len);
/*  An authenticated session joins user id: the user is created (and
 *  queued to subscribe) if absent, kept if it was leaving; the session
 *  syncs at once if the subscription is confirmed, else waits for it. */
void gw_user_join(gateway_t *gw, gw_session_t *s, const char *id);
/*  A session goes (closed): the last one out queues the user to leave. */
void gw_user_leave(gateway_t *gw, gw_session_t *s);
/*  A live event for the user: rendered once, pushed on its ring, its live
 *  sessions woken. */
void gw_user_deliver(gateway_t *gw, gw_user_t *u, const event_t *ev);
/*  A sync answer for request req of user u arrives: 1 if a session waits
 *  for it (then epoch is now the user's, so its frames render with the
 *  right generation), else 0 (a stale answer: drop it). */
int gw_user_sync_begin(gateway_t *gw, gw_user_t *u, uint64_t req, const char *epoch,
                       size_t epoch_len);
/*  The answer's frames, rendered (batch taken, may be empty). */
void gw_user_synced(gateway_t *gw, gw_user_t *u, uint64_t req, gw_batch_t *batch);
/*  The broker refused request req of user u. */
void gw_user_sync_refused(gateway_t *gw, gw_user_t *u, uint64_t req);
/*  Its subscription is confirmed: waiting sessions sync (a user whose
 *  sessions all left meanwhile is queued to leave). */
void gw_user_confirmed(gateway_t *gw, gw_user_t *u);
/*  The link came back: every live session catches up. */
void gw_user_resync_all(gateway_t *gw);
/*  SIGTERM: every session gets the shutdown error and closes. */
void gw_user_fail_all(gateway_t *gw);
/*  Unsubscribed by the link: frees the user. */
void gw_user_free(gateway_t *gw, gw_user_t *u);
/*  Frees every user (after lws closed every connection). */
void gw_user_free_all(gateway_t *gw);

/* ---------------------------------------------------------------- session.c */

/*  LWS_CALLBACK_ESTABLISHED: checks the route, the token and the resume
 *  arguments. 0 and the user id (id[EVENT_USER_ID_MAX + 1]) when the
 *  session may join it; -1 when it was failed (error frame, then close). */
int gw_session_established(gateway_t *gw, struct lws *wsi, gw_session_t *s, char *id);
int gw_session_receive(gateway_t *gw, struct lws *wsi, gw_session_t *s, const void *in, size_t len);
int gw_session_writeable(gateway_t *gw, struct lws *wsi, gw_session_t *s);
/*  LWS_CALLBACK_CLOSED (after gw_user_leave()). */
void gw_session_closed(gateway_t *gw, gw_session_t *s);
/*  Queues an error frame and closes with its code after it; detail
 *  replaces the table's sentence when not NULL. The session stops reading
 *  its user's ring at once. */
void gw_session_fail(gateway_t *gw, gw_session_t *s, gw_error_t e, const char *detail);
/*  Joined a user whose subscription is not confirmed yet: wait (with a
 *  time limit). */
void gw_session_wait(gateway_t *gw, gw_session_t *s);
/*  Queues a sync for the session (replay after last_seq on a resync, else
 *  what the client asked). */
void gw_session_sync(gateway_t *gw, gw_session_t *s);
/*  The link sends the request: fills *since and *epoch (NULL: a snapshot)
 *  and marks the session SYNCING with request number req. */
void gw_session_sync_sent(gateway_t *gw, gw_session_t *s, uint64_t req, uint64_t *since,
                          const char **epoch);
/*  The session's sync answer arrived (batch taken, may be empty); the
 *  user's epoch is already the answer's. */
void gw_session_synced(gateway_t *gw, gw_session_t *s, gw_batch_t *batch);
/*  New frames on the user's ring: a live session is queued to write. */
void gw_session_wake(gateway_t *gw, gw_session_t *s);
/*  Before the loop sleeps: every queued session writes what is ready at
 *  once, in one send, if lws holds nothing unsent for it (else, and for
 *  control frames, it asks lws for WRITEABLE as usual). */
void gw_session_write_woken(gateway_t *gw);
/*  LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: lws answers the close; nothing
 *  more is written. */
void gw_session_peer_closing(gateway_t *gw, gw_session_t *s);
/*  Every tick: sync retries and give-ups. */
void gw_session_check_pending(gateway_t *gw, int64_t now_ms);
/*  The sync link is back: requests that were out go again now. */
void gw_session_resend_syncs(gateway_t *gw);

/*  keepalive.c asks for a WebSocket ping. */
void gw_session_ping(gateway_t *gw, gw_session_t *s);
/*  keepalive.c found it silent for silent_ms after a ping: closed. */
void gw_session_hang_up(gateway_t *gw, gw_session_t *s, int64_t silent_ms);
/*  keepalive.c: no close frame from the client within GW_CLOSE_ACK_MS of
 *  ours: dropped. */
void gw_session_close_expired(gateway_t *gw, gw_session_t *s);

/*  The session that owns a ring cursor. */
static inline gw_session_t *
gw_session_of(gw_cursor_t *c)
{
    return lws_container_of(c, gw_session_t, cursor);
}

/* ---------------------------------------------------------------- keepalive.c */

/*  Watches a session from now. 0, or -1 on OOM. */
int gw_keepalive_add(gateway_t *gw, gw_session_t *s, int64_t now_ms);
void gw_keepalive_remove(gateway_t *gw, gw_session_t *s);
/*  The client sent something (a pong, a message). */
void gw_keepalive_seen(gateway_t *gw, gw_session_t *s, int64_t now_ms);
/*  The gateway closed the session: drop it at deadline_ms unless the
 *  client's close frame ends it first. No more pings. */
void gw_keepalive_closing(gateway_t *gw, gw_session_t *s, int64_t deadline_ms);
/*  From the tick: pings, hang-ups and close deadlines that are due. */
void gw_keepalive_check(gateway_t *gw, int64_t now_ms);
void gw_keepalive_free(gateway_t *gw);

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
/*  Verifies the request's token (?token= or Authorization: Bearer) and
 *  wipes every copy of it. */
jwt_status_t gw_http_verify_token(gateway_t *gw, struct lws *wsi, jwt_claims_t *claims);

/* ---------------------------------------------------------------- status.c */

/*  Appends the status JSON for one user (user_id) or the whole gateway. */
void gw_status_render(gateway_t *gw, const char *user_id, buf_t *out);
/*  Appends the Prometheus metrics text. */
void gw_status_metrics(gateway_t *gw, buf_t *out);

#endif
