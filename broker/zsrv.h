/*  zsrv.h: the broker's ZeroMQ sockets, spoken by its own loop.
 *
 *  A ROUTER (ingest, sync) and an XPUB (fanout) on listening TCP or IPC
 *  sockets, speaking ZMTP 3.0 with the NULL mechanism (common/zmtp.c) to
 *  any ZeroMQ peer: libzmq DEALER, REQ and ROUTER workers, SUB and XSUB
 *  gateways and tools, in any language. What libzmq did with an I/O thread
 *  and a queue between it and the broker, this does in the broker's own
 *  loop: no second thread to wake for every message, no message copied
 *  into a queue, one send per peer per loop turn however many answers or
 *  events it gets.
 *
 *  ROUTER: a message is handed over as frames pointing into the peer's
 *  read buffer (valid until the next bk_zsock_fill() of that socket) with
 *  the peer it came from; an answer is appended to that peer's output. A
 *  peer that is gone keeps its record while answers for it are held
 *  (references), and they are dropped.
 *  XPUB: subscriptions (0x01/0x00 messages, or ZMTP 3.1 SUBSCRIBE/CANCEL
 *  commands) are kept per peer; a topic's first subscriber and its last
 *  leaving are reported to the broker (libzmq's XPUB does the same), and
 *  publishing sends to every peer with a subscription that is a prefix of
 *  the topic, once.
 *
 *  Bounded: a frame over the socket's limit, or bytes that are not ZMTP,
 *  end the peer's connection; a peer that does not read (more than
 *  BK_ZPEER_OUT_MAX unsent) loses what is sent to it meanwhile (counted),
 *  as libzmq's ROUTER and XPUB drop at their high-water mark.
 */
#ifndef TC_BROKER_ZSRV_H
#define TC_BROKER_ZSRV_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define BK_ZPEER_OUT_MAX (64u << 20) /* unsent bytes to a peer before we drop */
#define BK_ZMSG_FRAMES   8           /* frames of a message kept (more: truncated) */

typedef struct broker broker_t;
typedef struct bk_zsock bk_zsock_t;
typedef struct bk_zpeer bk_zpeer_t;

/*  What an epoll event points to: the loop dispatches on kind. */
typedef enum { BK_POLL_LISTENER = 1, BK_POLL_PEER, BK_POLL_FD } bk_poll_kind_t;
typedef struct bk_poll {
    uint8_t kind; /* bk_poll_kind_t */
    int tag;      /* BK_POLL_FD: which descriptor (loop.c) */
} bk_poll_t;

typedef struct bk_zframe {
    const uint8_t *p;
    uint32_t len;
} bk_zframe_t;

typedef struct bk_zmsg {
    bk_zpeer_t *peer; /* it came from there (borrowed: bk_zpeer_ref() to keep) */
    uint32_t count;   /* frames kept (at most BK_ZMSG_FRAMES) */
    int truncated;    /* it had more */
    bk_zframe_t frames[BK_ZMSG_FRAMES];
} bk_zmsg_t;

/*  An XPUB's first subscriber to a topic, or its last one leaving. */
typedef void (*bk_zsub_fn)(broker_t *bk, const uint8_t *topic, size_t len, int subscribe);

/*  What the broker keeps for all its sockets (in broker_t). */
typedef struct bk_zsrv {
    bk_zpeer_t *dirty, *dirty_tail;     /* peers with output to write */
    bk_zpeer_t *shaking, *shaking_tail; /* peers in their handshake, oldest first */
    bk_zpeer_t *closed, *closed_tail;   /* closed this turn: freed after it (frames may
                                           still point into their buffers) */
    uint32_t next_id;
} bk_zsrv_t;

typedef struct bk_zstats {
    uint64_t peers, accepted, dropped, protocol_errors;
} bk_zstats_t;

/*  Binds endpoint (tcp://HOST:PORT, HOST "*" for every interface, or
 *  ipc://PATH) as a ROUTER, or an XPUB when on_sub is given; frames over
 *  max_frame end a peer's connection. name ("ingest", ...) is for log
 *  lines. NULL with a sentence in err. */
bk_zsock_t *bk_zsock_bind(broker_t *bk, int epfd, const char *endpoint, const char *name,
                          uint64_t max_frame, bk_zsub_fn on_sub, char *err, size_t errlen);
void bk_zsock_close(bk_zsock_t **s_p);
const bk_zstats_t *bk_zsock_stats(const bk_zsock_t *s);

/*  ROUTER: reads from peers with data waiting. Frames handed out by
 *  bk_zsock_next() before this call are no longer valid. */
void bk_zsock_fill(bk_zsock_t *s);
/*  ROUTER: 1 and the next whole message read, or 0. No system call. */
int bk_zsock_next(bk_zsock_t *s, bk_zmsg_t *m);
/*  1 if messages may be waiting (read or unread). */
int bk_zsock_ready(const bk_zsock_t *s);

/*  XPUB: sends [topic][data] to every peer subscribed to a prefix of the
 *  topic. Returns how many peers it was queued for. */
int bk_zsock_publish(bk_zsock_t *s, const void *topic, size_t tlen, const void *data, size_t len);
/*  XPUB: 1 if publishing topic would reach anyone. */
int bk_zsock_has_subscriber(const bk_zsock_t *s, const void *topic, size_t tlen);

/*  The output of a peer to append frames to (zmtp_put_frame()), or NULL if
 *  it is gone or not reading (then drop what was meant for it), or p is
 *  NULL (an entry with no one to answer: a job's event). */
buf_t *bk_zpeer_out(bk_zpeer_t *p);
bk_zpeer_t *bk_zpeer_ref(bk_zpeer_t *p);
/*  Its address ("127.0.0.1:40312"), for log lines. */
const char *bk_zpeer_addr(const bk_zpeer_t *p);
void bk_zpeer_unref(bk_zpeer_t **p_p);

/*  The loop: an epoll event for a listener or a peer. */
void bk_zsrv_event(broker_t *bk, bk_poll_t *what, uint32_t events);
/*  Writes what was appended for every peer (one send each). */
void bk_zsrv_flush(broker_t *bk);
/*  Ends connections that did not finish their handshake in time. */
void bk_zsrv_check(broker_t *bk, int64_t now_ms);

#endif
