/*  taskcast_link.c: the DEALER libtaskcast's clients share (see the header). */
#include "taskcast_link.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "taskcast.h"
#include "zmsg.h"

#define S_HWM        1000  /* one request in flight: the default is plenty */
#define S_MAX_ANSWER 65536 /* answers are small: bigger peers are dropped */

int
tc_link_open(tc_link_t *l)
{
    l->sock = zmsg_socket(l->zctx, ZMQ_DEALER, S_HWM, S_HWM, S_MAX_ANSWER);
    if (!l->sock)
        return TC_ESYS;
    if (zmq_connect(l->sock, l->endpoint) != 0) {
        int bad = errno == EINVAL || errno == EPROTONOSUPPORT || errno == ENOCOMPATPROTO;
        tc_link_close(l);
        return bad ? TC_EINVAL : TC_ESYS;
    }
    return TC_OK;
}

int
tc_link_init(tc_link_t *l, const char *endpoint)
{
    memset(l, 0, sizeof *l);
    l->endpoint = strdup(endpoint);
    l->zctx = zmq_ctx_new();
    return l->endpoint && l->zctx ? tc_link_open(l) : TC_ESYS;
}

void
tc_link_close(tc_link_t *l)
{
    if (l->sock) {
        int saved = errno;
        zmq_close(l->sock);
        l->sock = NULL;
        errno = saved;
    }
}

void
tc_link_fini(tc_link_t *l)
{
    tc_link_close(l);
    if (l->zctx)
        zmq_ctx_term(l->zctx); /* returns at once: every socket had linger 0 */
    free(l->endpoint);
    memset(l, 0, sizeof *l);
}

void
tc_link_random_id(char *out, size_t outlen, const char *prefix)
{
    size_t n = strlen(prefix);
    unsigned char bytes[8];
    randombytes_buf(bytes, sizeof bytes);
    memcpy(out, prefix, n);
    sodium_bin2hex(out + n, outlen - n, bytes, sizeof bytes);
}
