/*  zconn.h: one ZeroMQ connection spoken from a process's own event loop
 *  (ZMTP 3.0, NULL mechanism: zmtp.h), with no loop of its own.
 *
 *  libzmq puts an I/O thread between a socket and its user: every message
 *  crosses it, and every wake-up costs a second thread's wake-up and an
 *  eventfd write (43 % of the gateway's CPU at 5,000 events/s; in the pool
 *  worker ~25 system calls per job). A process whose sockets only connect
 *  (the gateway's SUB and DEALERs, the pool worker's DEALER) speaks ZMTP
 *  itself here: one non-blocking TCP (or ipc) socket per link, watched by
 *  the owner's loop like any other descriptor. On the wire nothing changes.
 *
 *  A connection: connect (non-blocking) -> send greeting and READY -> read
 *  the peer's greeting and READY (it must be the expected socket type) ->
 *  up: frames in and out. Any error, end of stream or malformed input
 *  closes it, and it reconnects after 100 ms, doubling up to 1 s, as
 *  libzmq would (ZMQ_RECONNECT_IVL, ZMQ_RECONNECT_IVL_MAX). The owner hears
 *  of every "up" (to resend its subscriptions or its hello) and every frame.
 *
 *  The owner's loop watches zconn_fd() for reading, and for writing while
 *  zconn_wants_write(); it calls zconn_timeout() once clock_mono_ms()
 *  reaches zconn_deadline_ms() (the next attempt, or the handshake's end).
 *  A loop that arms watchers (libev) re-arms them in on_watch, called
 *  whenever one of the three changes; a poll() loop reads them every turn.
 *
 *  Reading: what arrives is read into one buffer and parsed in place; a
 *  frame is handed over as a pointer into it. Writing: frames are appended
 *  to zconn_out() and written by zconn_flush(); what the kernel does not
 *  take waits for the socket to be writable. Both buffers are bounded: a
 *  frame over max_frame, or a peer that stops reading, resets the
 *  connection. One warning is logged per outage, one info line per "up".
 */
#ifndef TC_ZCONN_H
#define TC_ZCONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "log.h"

typedef struct zconn zconn_t;

typedef struct zconn_spec {
    const char *name;      /* in log lines: the option naming the endpoint ("fanout") */
    const char *endpoint;  /* tcp://HOST:PORT or ipc://PATH */
    const char *type;      /* our ZeroMQ socket type: "SUB", "DEALER" */
    const char *peer_type; /* the peer's: "XPUB", "ROUTER" */
    uint64_t max_frame;    /* a bigger frame resets the connection */
    log_t *log;
    void *owner;
    /*  The handshake is done (again, after a reconnect). */
    void (*on_up)(void *owner, zconn_t *c);
    /*  One frame of a message (data points into the read buffer, valid
     *  until it returns): first tells a message's first frame, more that
     *  others follow. */
    void (*on_frame)(void *owner, zconn_t *c, const uint8_t *data, size_t len, int first, int more);
    /*  The descriptor, the wish to write or the deadline changed (NULL:
     *  the owner reads them every turn). */
    void (*on_watch)(void *owner, zconn_t *c);
} zconn_spec_t;

struct zconn {
    zconn_spec_t spec;
    int fd;
    int state;
    int want_write;
    int quiet;      /* the outage was logged */
    int in_message; /* the last frame had MORE */
    double retry_s;
    int64_t deadline_ms; /* 0: none */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint8_t *in; /* bytes read and not yet parsed */
    size_t in_len, in_cap;
    buf_t out; /* bytes to send from out_off */
    size_t out_off;
    int64_t last_rx_ms; /* when bytes last arrived */
};

/*  Starts connecting. -1 with a sentence for an endpoint that can never
 *  work (a name that does not resolve yet is retried, not refused). */
int zconn_open(zconn_t *c, const zconn_spec_t *spec, const char **why);
/*  Closes the descriptor and frees the buffers; nothing more happens. */
void zconn_close(zconn_t *c);
int zconn_up(const zconn_t *c);
/*  The buffer to append frames to (zmtp_put_frame), or NULL while not up:
 *  what is sent while the link is down is dropped, as libzmq's DEALER
 *  with ZMQ_DONTWAIT and no peer would. */
buf_t *zconn_out(zconn_t *c);
/*  Writes what zconn_out() holds, as far as the kernel takes it. */
void zconn_flush(zconn_t *c);
/*  Bytes waiting to be written. */
size_t zconn_pending(const zconn_t *c);
/*  Closes the connection (logging why) and schedules a reconnect. */
void zconn_reset(zconn_t *c, const char *why);

int zconn_fd(const zconn_t *c);
int zconn_wants_write(const zconn_t *c);
int64_t zconn_deadline_ms(const zconn_t *c);

/*  The owner's loop saw the descriptor readable / writable, or the
 *  deadline pass. */
void zconn_on_readable(zconn_t *c);
void zconn_on_writable(zconn_t *c);
void zconn_on_timeout(zconn_t *c);

#endif
