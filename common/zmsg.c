/*  zmsg.c: multipart receive into a fixed frame array. */
#include "zmsg.h"

#include <errno.h>
#include <string.h>

int
zmsg_recv(zmsg_t *m, void *socket, int flags)
{
    m->count = 0;
    m->truncated = 0;
    for (;;) {
        zmq_msg_t scratch, *f = m->count < ZMSG_MAX_FRAMES ? &m->frames[m->count] : &scratch;
        zmq_msg_init(f);
        /* Only the first frame may be absent; the rest of a multipart message
         * is already here once its first frame is. */
        if (zmq_msg_recv(f, socket, m->count == 0 && !m->truncated ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(f);
            zmsg_close(m);
            errno = e;
            return -1;
        }
        int more = zmq_msg_more(f);
        if (f == &scratch) {
            zmq_msg_close(f);
            m->truncated = 1;
        }
        else
            m->count++;
        if (!more)
            return 0;
    }
}

void
zmsg_close(zmsg_t *m)
{
    for (size_t i = 0; i < m->count; i++)
        zmq_msg_close(&m->frames[i]);
    m->count = 0;
}

void *
zmsg_socket(void *ctx, int type, int sndhwm, int rcvhwm, long long maxmsgsize)
{
    void *s = zmq_socket(ctx, type);
    if (!s)
        return NULL;
    int zero = 0;
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsgsize, sizeof maxmsgsize) != 0) {
        int e = errno;
        zmq_close(s);
        errno = e;
        return NULL;
    }
    return s;
}
