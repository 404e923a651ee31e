/*  zsrv.c: ROUTER and XPUB sockets in the broker's own loop (zsrv.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "clock.h"
#include "dlist.h"
#include "strmap.h"
#include "zmtp.h"

#define S_IN_MIN       (16 * 1024) /* a peer's read buffer to start with */
#define S_IN_GROW      (1u << 20)  /* it grows while reads fill it, up to this */
#define S_READ_BUDGET  (1u << 20)  /* bytes read from one peer per fill */
#define S_ACCEPTS      256         /* connections taken per wake-up */
#define S_HANDSHAKE_MS 10000       /* greeting and READY within this */
#define S_SUB_MAX      4096        /* bytes of a subscription topic */

enum { S_SHAKE = 0, S_UP, S_CLOSED };

typedef struct s_topic s_topic_t;

/*  One subscription of one peer to one topic. */
typedef struct s_sub {
    struct s_sub *tprev, *tnext; /* the topic's subscribers */
    struct s_sub *pprev, *pnext; /* the peer's subscriptions */
    bk_zpeer_t *peer;
    s_topic_t *topic;
} s_sub_t;

struct s_topic {
    s_sub_t *subs, *subs_tail;
    s_topic_t *lprev, *lnext; /* the socket's prefix topics (not exact) */
    uint32_t nsubs;
    uint32_t len;
    uint8_t exact; /* only ever matches itself: a user topic (id NUL) */
    uint8_t key[];
};

struct bk_zpeer {
    bk_poll_t poll; /* first: what epoll points to */
    bk_zsock_t *sock;
    broker_t *bk;
    int fd;
    uint32_t refs; /* the socket's while connected, one per answer held */
    uint32_t id;
    uint8_t state;
    uint8_t readable; /* the kernel may hold bytes (edge seen, no EAGAIN since) */
    uint8_t dirty;    /* in bk->zsrv.dirty */
    uint8_t in_msg;   /* parsing stopped inside a message (more frames due) */
    uint8_t *in;      /* read, from in_pos not parsed yet */
    size_t in_len, in_pos, in_cap;
    size_t need; /* bytes from in_pos the message being read needs in all */
    buf_t out;
    size_t out_off;
    int64_t since_ms; /* accepted at (handshake deadline) */
    char addr[64];    /* for log lines */
    uint64_t pub_mark;
    bk_zpeer_t *aprev, *anext; /* the socket's peers */
    bk_zpeer_t *rprev, *rnext; /* the socket's peers with something to read */
    bk_zpeer_t *dprev, *dnext; /* bk->zsrv.dirty */
    bk_zpeer_t *hprev, *hnext; /* bk->zsrv.shaking */
    s_sub_t *subs, *subs_tail; /* XPUB: its subscriptions */
};

struct bk_zsock {
    bk_poll_t poll; /* first: the listener */
    broker_t *bk;
    int fd, epfd, spare_fd;
    const char *name;
    char *endpoint;
    uint64_t max_frame;
    bk_zsub_fn on_sub; /* XPUB when set */
    bk_zpeer_t *peers, *peers_tail;
    bk_zpeer_t *ready, *ready_tail;
    strmap_t *topics;                    /* XPUB: topic -> s_topic_t */
    s_topic_t *prefixes, *prefixes_tail; /* XPUB: topics that match longer ones */
    uint64_t pub_seq;
    bk_zstats_t stats;
    char path[108]; /* ipc: unlinked at close */
};

static int
s_in_list(const void *prev, const void *head, const void *self)
{
    return prev || head == self;
}

/* ---------------------------------------------------------------- addresses */

static int
s_listen(bk_zsock_t *s, const char *ep, char *err, size_t errlen)
{
    int fd;
    if (strncmp(ep, "ipc://", 6) == 0) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        size_t n = strlen(ep + 6);
        if (n == 0 || n >= sizeof un.sun_path) {
            snprintf(err, errlen, "%s: the ipc path is empty or too long", ep);
            return -1;
        }
        memcpy(un.sun_path, ep + 6, n);
        (void)unlink(un.sun_path); /* a socket file left by a killed broker */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof un) != 0 || listen(fd, 1024) != 0) {
            snprintf(err, errlen, "cannot bind %s: %s", ep, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        memcpy(s->path, un.sun_path, n + 1);
        return fd;
    }
    if (strncmp(ep, "tcp://", 6) != 0) {
        snprintf(err, errlen, "%s: only tcp:// and ipc:// endpoints can be bound", ep);
        return -1;
    }
    char host[256], port_text[8];
    int port;
    if (cfg_parse_listen(ep + 6, host, sizeof host, &port) != 0 || host[0] == '\0') {
        snprintf(err, errlen, "%s: a tcp endpoint must be tcp://HOST:PORT", ep);
        return -1;
    }
    snprintf(port_text, sizeof port_text, "%d", port);
    int any = strcmp(host, "*") == 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    if (getaddrinfo(any ? NULL : host, port_text, &hints, &res) != 0 || !res) {
        snprintf(err, errlen, "%s: cannot resolve the address", ep);
        return -1;
    }
    int one = 1;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "cannot bind %s: %s", ep, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* ---------------------------------------------------------------- XPUB topics */

/*  A subscription that can only match itself: an id and its NUL (the id
 *  has no NUL, so no longer topic starts with it). Anything else is a
 *  prefix, tried against every topic published. */
static int
s_exact(const uint8_t *t, size_t len)
{
    return len >= 2 && t[len - 1] == '\0' && t[0] != '\0' && !memchr(t, '\0', len - 1);
}

static void
s_subscribe(bk_zpeer_t *p, const uint8_t *t, size_t len)
{
    bk_zsock_t *s = p->sock;
    s_topic_t *tp = strmap_get(s->topics, t, len);
    if (tp) /* already subscribed by this peer: nothing (as libzmq) */
        for (s_sub_t *x = tp->subs; x; x = x->tnext)
            if (x->peer == p)
                return;
    int created = !tp;
    if (created) {
        tp = calloc(1, sizeof *tp + len);
        if (!tp)
            return;
        memcpy(tp->key, t, len);
        tp->len = (uint32_t)len;
        tp->exact = (uint8_t)s_exact(t, len);
        if (strmap_put(s->topics, tp->key, tp->len, tp) != 0) {
            free(tp);
            return;
        }
        if (!tp->exact)
            DLIST_APPEND(s->prefixes, s->prefixes_tail, tp, lprev, lnext);
    }
    s_sub_t *x = calloc(1, sizeof *x);
    if (!x) {
        if (created) {
            strmap_remove(s->topics, tp->key, tp->len);
            if (!tp->exact)
                DLIST_REMOVE(s->prefixes, s->prefixes_tail, tp, lprev, lnext);
            free(tp);
        }
        return;
    }
    x->peer = p;
    x->topic = tp;
    DLIST_APPEND(tp->subs, tp->subs_tail, x, tprev, tnext);
    DLIST_APPEND(p->subs, p->subs_tail, x, pprev, pnext);
    if (tp->nsubs++ == 0)
        s->on_sub(p->bk, tp->key, tp->len, 1);
}

static void
s_unsub(bk_zsock_t *s, s_sub_t *x)
{
    s_topic_t *tp = x->topic;
    DLIST_REMOVE(tp->subs, tp->subs_tail, x, tprev, tnext);
    DLIST_REMOVE(x->peer->subs, x->peer->subs_tail, x, pprev, pnext);
    free(x);
    if (--tp->nsubs > 0)
        return;
    strmap_remove(s->topics, tp->key, tp->len);
    if (!tp->exact)
        DLIST_REMOVE(s->prefixes, s->prefixes_tail, tp, lprev, lnext);
    s->on_sub(s->bk, tp->key, tp->len, 0);
    free(tp);
}

static void
s_unsubscribe(bk_zpeer_t *p, const uint8_t *t, size_t len)
{
    s_topic_t *tp = strmap_get(p->sock->topics, t, len);
    for (s_sub_t *x = tp ? tp->subs : NULL; x; x = x->tnext)
        if (x->peer == p) {
            s_unsub(p->sock, x);
            return;
        }
}

static int
s_starts(const uint8_t *t, size_t tlen, const s_topic_t *prefix)
{
    return prefix->len <= tlen && memcmp(t, prefix->key, prefix->len) == 0;
}

int
bk_zsock_has_subscriber(const bk_zsock_t *s, const void *topic, size_t tlen)
{
    const s_topic_t *tp = strmap_get(s->topics, topic, tlen);
    if (tp && tp->exact)
        return 1;
    for (const s_topic_t *p = s->prefixes; p; p = p->lnext)
        if (s_starts(topic, tlen, p))
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- peers */

static void
s_dirty(bk_zpeer_t *p)
{
    if (!p->dirty) {
        p->dirty = 1;
        DLIST_APPEND(p->bk->zsrv.dirty, p->bk->zsrv.dirty_tail, p, dprev, dnext);
    }
}

static void
s_ready(bk_zpeer_t *p)
{
    bk_zsock_t *s = p->sock;
    if (p->state != S_CLOSED && !s_in_list(p->rprev, s->ready, p))
        DLIST_APPEND(s->ready, s->ready_tail, p, rprev, rnext);
}

static void
s_not_ready(bk_zpeer_t *p)
{
    bk_zsock_t *s = p->sock;
    if (s_in_list(p->rprev, s->ready, p))
        DLIST_REMOVE(s->ready, s->ready_tail, p, rprev, rnext);
}

const char *
bk_zpeer_addr(const bk_zpeer_t *p)
{
    return p->addr;
}

bk_zpeer_t *
bk_zpeer_ref(bk_zpeer_t *p)
{
    p->refs++;
    return p;
}

void
bk_zpeer_unref(bk_zpeer_t **p_p)
{
    bk_zpeer_t *p = *p_p;
    *p_p = NULL;
    if (!p || --p->refs > 0)
        return;
    buf_free(&p->out);
    free(p->in);
    free(p);
}

/*  Ends the connection; the record stays while references are held. */
static void
s_close(bk_zpeer_t *p, const char *why)
{
    if (p->state == S_CLOSED)
        return;
    bk_zsock_t *s = p->sock;
    broker_t *bk = p->bk;
    if (why)
        log_debug(&bk->log, "%s peer %u closed: %s", s->name, p->id, why);
    while (p->subs)
        s_unsub(s, p->subs);
    s_not_ready(p);
    DLIST_REMOVE(s->peers, s->peers_tail, p, aprev, anext);
    if (p->dirty) {
        DLIST_REMOVE(bk->zsrv.dirty, bk->zsrv.dirty_tail, p, dprev, dnext);
        p->dirty = 0;
    }
    if (s_in_list(p->hprev, bk->zsrv.shaking, p))
        DLIST_REMOVE(bk->zsrv.shaking, bk->zsrv.shaking_tail, p, hprev, hnext);
    close(p->fd); /* leaves the epoll set with it */
    p->fd = -1;
    p->state = S_CLOSED;
    s->stats.peers--;
    /* The socket's reference goes after the turn: messages read from this
     * peer earlier in it may still point into its buffer. */
    DLIST_APPEND(bk->zsrv.closed, bk->zsrv.closed_tail, p, dprev, dnext);
}

static void
s_protocol_error(bk_zpeer_t *p, const char *why)
{
    p->sock->stats.protocol_errors++;
    log_warn(&p->bk->log, "%s peer %u: %s; closing it", p->sock->name, p->id, why);
    s_close(p, NULL);
}

buf_t *
bk_zpeer_out(bk_zpeer_t *p)
{
    if (!p || p->state != S_UP)
        return NULL;
    if (p->out.len - p->out_off > BK_ZPEER_OUT_MAX) {
        p->sock->stats.dropped++;
        return NULL;
    }
    s_dirty(p);
    return &p->out;
}

/*  Writes what is buffered. 0, or -1 if the peer was closed. */
static int
s_write(bk_zpeer_t *p)
{
    int r = buf_send(&p->out, p->fd, &p->out_off);
    if (r == 0)
        return 0; /* EPOLLOUT (edge-triggered, always watched) says when */
    if (r < 0) {
        s_close(p, errno ? strerror(errno) : "send failed");
        return -1;
    }
    buf_reset(&p->out);
    p->out_off = 0;
    return 0;
}

void
bk_zsrv_flush(broker_t *bk)
{
    bk_zpeer_t *p;
    while ((p = bk->zsrv.dirty) != NULL) {
        DLIST_REMOVE(bk->zsrv.dirty, bk->zsrv.dirty_tail, p, dprev, dnext);
        p->dirty = 0;
        if (!buf_ok(&p->out))
            s_protocol_error(p, "out of memory for its output");
        else
            (void)s_write(p);
    }
    while ((p = bk->zsrv.closed) != NULL) {
        DLIST_REMOVE(bk->zsrv.closed, bk->zsrv.closed_tail, p, dprev, dnext);
        bk_zpeer_unref(&p); /* the socket's */
    }
}

static void
s_peer_address(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "";
    snprintf(out, outlen, "?");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        snprintf(out, outlen, "ipc");
        return;
    }
    if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(out, outlen, "%s:%s", host, port);
}

static void
s_accept(bk_zsock_t *s)
{
    broker_t *bk = s->bk;
    for (int i = 0; i < S_ACCEPTS; i++) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
                close(s->spare_fd); /* take it and close it, instead of spinning on it */
                fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                    close(fd);
                s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                log_warn(&bk->log, "%s: at the open-file limit: refused a connection", s->name);
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn(&bk->log, "%s: accept: %s", s->name, strerror(errno));
            return;
        }
        bk_zpeer_t *p = calloc(1, sizeof *p);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
        ev.data.ptr = p;
        if (!p || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            log_warn(&bk->log, "%s: cannot take a connection: %s", s->name,
                     p ? strerror(errno) : "out of memory");
            free(p);
            close(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s_peer_address(fd, p->addr, sizeof p->addr);
        p->poll.kind = BK_POLL_PEER;
        p->sock = s;
        p->bk = bk;
        p->fd = fd;
        p->refs = 1;
        p->id = ++bk->zsrv.next_id;
        p->state = S_SHAKE;
        p->readable = 1;
        p->since_ms = clock_mono_ms();
        buf_init(&p->out);
        DLIST_APPEND(s->peers, s->peers_tail, p, aprev, anext);
        DLIST_APPEND(bk->zsrv.shaking, bk->zsrv.shaking_tail, p, hprev, hnext);
        s->stats.peers++;
        s->stats.accepted++;
        /* Our greeting and READY at once: a libzmq peer reads our version
         * (3.0, so its SUB sends subscriptions as messages) and goes on. */
        zmtp_put_greeting(&p->out);
        zmtp_put_ready(&p->out, s->on_sub ? "XPUB" : "ROUTER");
        s_dirty(p);
        s_ready(p);
    }
}

/* ---------------------------------------------------------------- reading */

/*  Makes room in the read buffer for at least the message being read (and
 *  more while reads keep filling it). Only between drains: frames handed
 *  out point into the buffer. 0, or -1 if closed. */
static int
s_room(bk_zpeer_t *p)
{
    if (p->in_pos > 0) { /* what was parsed goes */
        memmove(p->in, p->in + p->in_pos, p->in_len - p->in_pos);
        p->in_len -= p->in_pos;
        p->in_pos = 0;
    }
    size_t want = p->in_cap ? p->in_cap : S_IN_MIN;
    if (p->in_len == p->in_cap && want < S_IN_GROW)
        want = p->in_cap ? p->in_cap * 2 : S_IN_MIN; /* reads fill it: a bigger one */
    while (want < p->need)
        want *= 2;
    if (want > p->in_cap) {
        uint8_t *in = realloc(p->in, want);
        if (!in) {
            s_protocol_error(p, "out of memory for its input");
            return -1;
        }
        p->in = in;
        p->in_cap = want;
    }
    return 0;
}

/*  Reads what the kernel holds (up to a budget). 0, or -1 if closed. */
static int
s_read(bk_zpeer_t *p)
{
    size_t budget = S_READ_BUDGET;
    if (s_room(p) != 0)
        return -1;
    while (p->readable && budget > 0 && p->in_len < p->in_cap) {
        size_t room = p->in_cap - p->in_len;
        ssize_t n = recv(p->fd, p->in + p->in_len, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            p->readable = 0;
            break;
        }
        if (n <= 0) {
            s_close(p, n == 0 ? "end of stream" : strerror(errno));
            return -1;
        }
        p->in_len += (size_t)n;
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        if ((size_t)n < room)
            p->readable = 0; /* drained (most likely); the next edge says if not */
    }
    return 0;
}

/*  The peer's greeting and READY. 1 when done, 0 if more bytes are due,
 *  -1 if closed. */
static int
s_handshake(bk_zpeer_t *p)
{
    const char *why = NULL;
    zmtp_frame_t f;
    long long k = zmtp_read_handshake(p->in + p->in_pos, p->in_len - p->in_pos, NULL, &f, &why);
    if (k == 0)
        return 0;
    if (k < 0) {
        s_protocol_error(p, why);
        return -1;
    }
    const char *types = p->sock->on_sub ? "SUB XSUB" : "DEALER REQ ROUTER";
    /* The peer's socket type must fit ours. */
    int fits = 0;
    for (const char *t = types; *t;) {
        size_t n = strcspn(t, " ");
        char type[8];
        memcpy(type, t, n);
        type[n] = '\0';
        fits |= zmtp_check_ready(f.body, f.len, type, &why) == 0;
        t += n + (t[n] == ' ');
    }
    if (!fits) {
        s_protocol_error(p, "its socket type cannot talk to this one");
        return -1;
    }
    p->in_pos += (size_t)k;
    p->state = S_UP;
    broker_t *bk = p->bk;
    DLIST_REMOVE(bk->zsrv.shaking, bk->zsrv.shaking_tail, p, hprev, hnext);
    log_debug(&bk->log, "%s peer %u up", p->sock->name, p->id);
    return 1;
}

/*  A command: PING gets a PONG, SUBSCRIBE/CANCEL (ZMTP 3.1 peers) on an
 *  XPUB, ERROR ends the connection, others are ignored. 0, or -1 if closed. */
static int
s_command(bk_zpeer_t *p, const zmtp_frame_t *f)
{
    if (zmtp_command_is(f->body, f->len, "PING")) {
        buf_t *out = bk_zpeer_out(p);
        if (out)
            zmtp_put_pong(out, f->body, f->len);
        return 0;
    }
    if (p->sock->on_sub && zmtp_command_is(f->body, f->len, "SUBSCRIBE"))
        s_subscribe(p, f->body + 10, f->len - 10);
    else if (p->sock->on_sub && zmtp_command_is(f->body, f->len, "CANCEL"))
        s_unsubscribe(p, f->body + 7, f->len - 7);
    else if (zmtp_command_is(f->body, f->len, "ERROR")) {
        s_close(p, "it sent an ERROR command");
        return -1;
    }
    return 0;
}

/*  Parses the next message from the peer's buffer into m (frames point
 *  into it). 1: a message; 0: none complete yet; -1: closed. Commands are
 *  handled on the way. */
static int
s_parse(bk_zpeer_t *p, bk_zmsg_t *m)
{
    if (p->state == S_SHAKE) {
        int rc = s_handshake(p);
        if (rc <= 0)
            return rc;
    }
    size_t pos = p->in_pos;
    m->peer = p;
    m->count = 0;
    m->truncated = 0;
    for (;;) {
        zmtp_frame_t f;
        uint64_t need;
        long long k = zmtp_read_frame(p->in + pos, p->in_len - pos, p->sock->max_frame, &f, &need);
        if (k < 0) {
            s_protocol_error(p, "a malformed or oversized frame");
            return -1;
        }
        if (k == 0) {
            /* incomplete: the next fill makes room for the whole message,
             * which may not be much more than one frame's limit */
            p->need = (size_t)need + (pos - p->in_pos);
            if (p->need > 2 * p->sock->max_frame + 4096) {
                s_protocol_error(p, "a message over the size limit");
                return -1;
            }
            return 0;
        }
        pos += (size_t)k;
        if (f.flags & ZMTP_COMMAND) {
            if (m->count) {
                s_protocol_error(p, "a command inside a message");
                return -1;
            }
            p->in_pos = pos;
            if (s_command(p, &f) != 0)
                return -1;
            continue;
        }
        if (m->count < BK_ZMSG_FRAMES)
            m->frames[m->count++] = (bk_zframe_t){f.body, (uint32_t)f.len};
        else
            m->truncated = 1;
        if (!(f.flags & ZMTP_MORE)) {
            p->in_pos = pos;
            p->need = 0;
            return 1;
        }
    }
}

/*  XPUB: what a peer sends is subscriptions. */
static void
s_take_subscriptions(bk_zpeer_t *p)
{
    bk_zmsg_t m;
    int rc;
    while ((rc = s_parse(p, &m)) == 1) {
        /* one frame: 0x01 topic or 0x00 topic; anything else is ignored,
         * as libzmq's XPUB does */
        if (m.count != 1 || m.truncated || m.frames[0].len < 1 || m.frames[0].len > S_SUB_MAX + 1)
            continue;
        const uint8_t *d = m.frames[0].p;
        if (d[0] == 1)
            s_subscribe(p, d + 1, m.frames[0].len - 1);
        else if (d[0] == 0)
            s_unsubscribe(p, d + 1, m.frames[0].len - 1);
    }
}

void
bk_zsock_fill(bk_zsock_t *s)
{
    for (bk_zpeer_t *p = s->ready, *next; p; p = next) {
        next = p->rnext;
        if (p->readable && s_read(p) != 0)
            continue;
        if (s->on_sub) {
            s_take_subscriptions(p);
            if (p->state != S_CLOSED && !p->readable)
                s_not_ready(p); /* all taken: nothing waits for the app */
        }
    }
}

int
bk_zsock_next(bk_zsock_t *s, bk_zmsg_t *m)
{
    for (bk_zpeer_t *p = s->ready, *next; p; p = next) {
        next = p->rnext;
        int rc = s_parse(p, m);
        if (rc == 1) {
            /* the next message from the next peer: round robin */
            DLIST_REMOVE(s->ready, s->ready_tail, p, rprev, rnext);
            DLIST_APPEND(s->ready, s->ready_tail, p, rprev, rnext);
            return 1;
        }
        if (rc == 0 && !p->readable)
            s_not_ready(p); /* nothing whole left, nothing more in the kernel */
        /* else more to read first (the next fill), or closed */
    }
    return 0;
}

int
bk_zsock_ready(const bk_zsock_t *s)
{
    return s->ready != NULL;
}

/* ---------------------------------------------------------------- publishing */

static void
s_queue(bk_zsock_t *s, bk_zpeer_t *p, const void *topic, size_t tlen, const void *data, size_t len,
        int *n)
{
    if (p->pub_mark == s->pub_seq)
        return; /* already has it (two of its subscriptions match) */
    p->pub_mark = s->pub_seq;
    buf_t *out = bk_zpeer_out(p);
    if (!out)
        return; /* not reading: this one is dropped, a gap the gateway repairs */
    zmtp_put_frame(out, topic, tlen, 1);
    zmtp_put_frame(out, data, len, 0);
    (*n)++;
}

int
bk_zsock_publish(bk_zsock_t *s, const void *topic, size_t tlen, const void *data, size_t len)
{
    int n = 0;
    s->pub_seq++;
    const s_topic_t *tp = strmap_get(s->topics, topic, tlen);
    if (tp && tp->exact)
        for (const s_sub_t *x = tp->subs; x; x = x->tnext)
            s_queue(s, x->peer, topic, tlen, data, len, &n);
    for (const s_topic_t *pre = s->prefixes; pre; pre = pre->lnext)
        if (s_starts(topic, tlen, pre))
            for (const s_sub_t *x = pre->subs; x; x = x->tnext)
                s_queue(s, x->peer, topic, tlen, data, len, &n);
    return n;
}

/* ---------------------------------------------------------------- the loop */

void
bk_zsrv_event(broker_t *bk, bk_poll_t *what, uint32_t events)
{
    if (what->kind == BK_POLL_LISTENER) {
        s_accept((bk_zsock_t *)what);
        return;
    }
    bk_zpeer_t *p = (bk_zpeer_t *)what;
    if (p->state == S_CLOSED)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        p->readable = 1; /* a read finds out which (data, end, error) */
        s_ready(p);
    }
    if (events & EPOLLOUT && p->out_off < p->out.len)
        (void)s_write(p);
}

void
bk_zsrv_check(broker_t *bk, int64_t now_ms)
{
    bk_zpeer_t *p;
    while ((p = bk->zsrv.shaking) != NULL && now_ms - p->since_ms >= S_HANDSHAKE_MS)
        s_protocol_error(p, "no ZeroMQ handshake within 10 s");
}

/* ---------------------------------------------------------------- sockets */

bk_zsock_t *
bk_zsock_bind(broker_t *bk, int epfd, const char *endpoint, const char *name, uint64_t max_frame,
              bk_zsub_fn on_sub, char *err, size_t errlen)
{
    bk_zsock_t *s = calloc(1, sizeof *s);
    if (!s || !(s->endpoint = strdup(endpoint)) || (on_sub && !(s->topics = strmap_new()))) {
        snprintf(err, errlen, "out of memory");
        bk_zsock_close(&s);
        return NULL;
    }
    s->poll.kind = BK_POLL_LISTENER;
    s->bk = bk;
    s->epfd = epfd;
    s->name = name;
    s->max_frame = max_frame;
    s->on_sub = on_sub;
    s->spare_fd = -1;
    s->fd = s_listen(s, endpoint, err, errlen);
    if (s->fd < 0) {
        bk_zsock_close(&s);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.ptr = s;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        bk_zsock_close(&s);
        return NULL;
    }
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return s;
}

void
bk_zsock_close(bk_zsock_t **s_p)
{
    bk_zsock_t *s = *s_p;
    if (!s)
        return;
    broker_t *bk = s->bk;
    while (s->peers)
        s_close(s->peers, NULL);
    bk_zpeer_t *p;
    while ((p = bk->zsrv.closed) != NULL) {
        DLIST_REMOVE(bk->zsrv.closed, bk->zsrv.closed_tail, p, dprev, dnext);
        bk_zpeer_unref(&p);
    }
    if (s->fd >= 0)
        close(s->fd);
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    if (s->path[0])
        (void)unlink(s->path);
    strmap_destroy(&s->topics);
    free(s->endpoint);
    free(s);
    *s_p = NULL;
}

const bk_zstats_t *
bk_zsock_stats(const bk_zsock_t *s)
{
    return &s->stats;
}
