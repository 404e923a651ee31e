/*  zmsg.h: receiving a whole ZeroMQ multipart message into a fixed array of
 *  frames, and the socket options every taskcast socket sets.
 */
#ifndef TC_ZMSG_H
#define TC_ZMSG_H

#include <stddef.h>
#include <zmq.h>

#define ZMSG_MAX_FRAMES 8

typedef struct zmsg {
    zmq_msg_t frames[ZMSG_MAX_FRAMES];
    size_t count;  /* frames held (at most ZMSG_MAX_FRAMES) */
    int truncated; /* 1: the message had more frames; they were dropped */
} zmsg_t;

/*  Receives one whole message (all its frames) with flags (e.g.
 *  ZMQ_DONTWAIT). Returns 0, or -1 with errno (EAGAIN: nothing waiting).
 *  On 0 the caller must zmsg_close(). */
int zmsg_recv(zmsg_t *m, void *socket, int flags);

/*  Releases the frames. */
void zmsg_close(zmsg_t *m);

/*  Frame i's bytes and size. */
static inline const void *
zmsg_data(zmsg_t *m, size_t i)
{
    return zmq_msg_data(&m->frames[i]);
}

static inline size_t
zmsg_size(zmsg_t *m, size_t i)
{
    return zmq_msg_size(&m->frames[i]);
}

/*  Creates a socket with LINGER 0 and the given send/receive high-water
 *  marks and maximum inbound message size (-1: unlimited). NULL on error. */
void *zmsg_socket(void *ctx, int type, int sndhwm, int rcvhwm, long long maxmsgsize);

#endif
