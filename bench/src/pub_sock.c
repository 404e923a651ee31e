/*  pub_sock.c: tc-pub's driver over plain non-blocking TCP sockets: a few
 *  connections, requests pipelined, one epoll loop, no thread.
 *    zmtp:  taskcast's broker. A DEALER speaking ZMTP 3.0 (NULL mechanism,
 *           rfc.zeromq.org/spec/23) itself: the greeting and READY at
 *           connect, then one frame per msgpack event; the answers are
 *           matched to their events by pseq.
 *    resp:  Redis. PUBLISH {prefix}{user} {frame}; ":N" counts the
 *           receivers (":0": nobody subscribed), "-ERR ..." is an error.
 *    http:  Nchan. POST {prefix}{user} with the frame as body, HTTP/1.1
 *           keep-alive; 201 = delivered to subscribers, 202 = accepted with
 *           no subscriber, anything else is an error.
 *  Redis and HTTP answer in order: each connection keeps the events it has
 *  no answer for yet, oldest first. If the server closes such a connection
 *  (nginx ends a keep-alive connection after keepalive_requests), it is
 *  opened again and those events are sent again. Requests are queued by
 *  send and written by wait: a batch of events costs one write.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pub.h"

#define S_OUT_MAX    (1u << 20) /* queued bytes per connection before send says "not now" */
#define S_RECONNECTS 20         /* in a row without an answer; then its events count as errors */

typedef struct s_conn {
    int fd; /* -1: given up */
    int want_out;
    buf_t out, in;
    size_t out_off;
    pub_ev_t *fifo; /* resp, http: sent, not answered, oldest first */
    uint32_t head, count, cap; /* zmtp: count only */
    int failures; /* reconnections in a row without an answer in between */
} s_conn_t;

typedef struct s_sock {
    pub_proto_t proto;
    int ep;       /* the timer and every connection */
    int ep_timer; /* the timer only: waits that skip answers */
    int n, next;
    pub_due_t due; /* zmtp: bt by pseq */
    s_conn_t conns[PUB_CONNS_MAX];
} s_sock_t;

/* ------------------------------------------------------------------ ZMTP */

/*  ZMTP 3.0 greeting: signature, version 3.0, mechanism NULL, as-server 0. */
static const uint8_t s_greeting[64] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0, 'N', 'U', 'L', 'L'};
/*  READY command with the property Socket-Type = DEALER. */
static const uint8_t s_ready[] = {0x04, 28,  5,   'R', 'E', 'A', 'D', 'Y', 11,  'S',
                                  'o',  'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e',
                                  0,    0,   0,   6,   'D', 'E', 'A', 'L', 'E', 'R'};

static int
s_recv_all(int fd, void *p, size_t len)
{
    return recv(fd, p, len, MSG_WAITALL) == (ssize_t)len ? 0 : -1;
}

/*  The handshake on the still blocking socket (loopback: immediate). */
static int
s_zmtp_handshake(int fd)
{
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t hello[sizeof s_greeting + sizeof s_ready];
    memcpy(hello, s_greeting, sizeof s_greeting);
    memcpy(hello + sizeof s_greeting, s_ready, sizeof s_ready);
    if (send(fd, hello, sizeof hello, MSG_NOSIGNAL) != (ssize_t)sizeof hello)
        return -1;
    uint8_t peer[64], head[9];
    if (s_recv_all(fd, peer, sizeof peer) != 0 || peer[0] != 0xFF || peer[9] != 0x7F ||
        peer[10] < 3 || memcmp(peer + 12, "NULL", 5) != 0)
        return -1;
    /* The peer's READY: a command frame, short or long. */
    if (s_recv_all(fd, head, 2) != 0 || !(head[0] & 0x04))
        return -1;
    uint64_t size = head[1];
    if (head[0] & 0x02) {
        if (s_recv_all(fd, head + 2, 7) != 0)
            return -1;
        size = 0;
        for (int i = 1; i < 9; i++)
            size = size << 8 | head[i];
    }
    uint8_t body[512];
    if (size < 6 || size > sizeof body || s_recv_all(fd, body, (size_t)size) != 0 ||
        memcmp(body, "\x05READY", 6) != 0)
        return -1;
    tv.tv_sec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return 0;
}

/*  One frame at p: its length, 0 if incomplete. A final data frame is an
 *  answer: handled here. */
static long
s_zmtp_frame(pub_worker_t *w, s_sock_t *s, s_conn_t *c, const uint8_t *p, size_t len)
{
    if (len < 2)
        return 0;
    size_t hdr = 2;
    uint64_t size = p[1];
    if (p[0] & 0x02) {
        if (len < 9)
            return 0;
        size = 0;
        for (int i = 1; i < 9; i++)
            size = size << 8 | p[i];
        hdr = 9;
    }
    if (size > len - hdr)
        return 0;
    if (!(p[0] & 0x05)) { /* not a command, not followed by MORE */
        char error[TALLY_KEYLEN];
        uint64_t pseq;
        int ok = pub_parse_answer(p + hdr, (size_t)size, &pseq, error, sizeof error);
        if (c->count)
            c->count--;
        pub_answered(w, pub_due_get(&s->due, pseq), ok ? NULL : error, 0);
    }
    return (long)(hdr + size);
}

/* ------------------------------------------------------------ Redis, HTTP */

/*  Length of one Redis answer line at p, 0 if incomplete. */
static long
s_resp_answer(const char *p, size_t len, const char **error, int *none)
{
    const char *eol = memmem(p, len, "\r\n", 2);
    if (!eol)
        return 0;
    *error = NULL;
    *none = 0;
    if (p[0] == ':')
        *none = p[1] == '0' && eol == p + 2;
    else if (p[0] == '-')
        *error = "redis_error";
    else if (p[0] != '+')
        *error = "unexpected_answer";
    return eol - p + 2;
}

/*  Length of one HTTP response at p (head and body), 0 if incomplete, -1
 *  if it is not one. */
static long
s_http_answer(const char *p, size_t len, const char **error, int *none)
{
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (!end)
        return len > 65536 ? -1 : 0;
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    int status = atoi(p + 9);
    size_t head = (size_t)(end - p) + 4, body = 0;
    int chunked = 0;
    for (const char *l = memchr(p, '\n', head); l && l < end;
         l = memchr(l + 1, '\n', (size_t)(end - l))) {
        if (strncasecmp(l + 1, "Content-Length:", 15) == 0)
            body = (size_t)strtoul(l + 16, NULL, 10);
        else if (strncasecmp(l + 1, "Transfer-Encoding:", 18) == 0)
            chunked = memmem(l + 19, (size_t)(end - l - 19), "chunked", 7) != NULL;
    }
    size_t pos = head;
    if (chunked) {
        for (;;) { /* size line, data, CRLF; no trailers */
            const char *eol = memmem(p + pos, len - pos, "\r\n", 2);
            if (!eol)
                return 0;
            size_t n = (size_t)strtoul(p + pos, NULL, 16);
            pos = (size_t)(eol - p) + 2 + n + 2;
            if (pos > len)
                return 0;
            if (n == 0)
                break;
        }
    }
    else if ((pos += body) > len)
        return 0;
    *none = status == 202;
    *error = NULL;
    if (status < 200 || status > 299)
        *error = status >= 400 && status < 500 ? "http_4xx" : status >= 500 ? "http_5xx"
                                                                            : "http_other";
    return (long)pos;
}

/* ------------------------------------------------------------- the driver */

static void
s_render(pub_worker_t *w, s_sock_t *s, const pub_ev_t *ev, buf_t *out)
{
    const pub_cfg_t *cfg = w->cfg;
    buf_t *body = &w->scratch;
    buf_reset(body);
    if (s->proto == PUB_PROTO_ZMTP) {
        pub_render_msgpack(w, ev, s->due.pseq + 1, body);
        uint8_t hdr[9] = {0x02};
        size_t n = body->len;
        if (n <= 255) {
            hdr[0] = 0x00;
            hdr[1] = (uint8_t)n;
            buf_append(out, hdr, 2);
        }
        else {
            for (int i = 8; i >= 1; i--, n >>= 8)
                hdr[i] = (uint8_t)n;
            buf_append(out, hdr, 9);
        }
        buf_append(out, body->data, body->len);
        return;
    }
    pub_render_json(w, ev, body);
    char chan[64];
    int clen = snprintf(chan, sizeof chan, "%su%u", cfg->prefix, ev->user);
    if (s->proto == PUB_PROTO_HTTP)
        buf_printf(out, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n", chan, cfg->host, cfg->port, body->len);
    else
        buf_printf(out, "*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%zu\r\n", clen, chan, body->len);
    buf_append(out, body->data, body->len);
    if (s->proto == PUB_PROTO_RESP)
        buf_append(out, "\r\n", 2);
}

/*  Loopback: a blocking connect is immediate; the socket is then made
 *  non-blocking for the pipelined traffic. */
static int
s_connect(pub_worker_t *w, s_sock_t *s, s_conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    c->want_out = 0;
    if (connect(c->fd, (const struct sockaddr *)&w->cfg->dst, sizeof w->cfg->dst) != 0 ||
        (s->proto == PUB_PROTO_ZMTP && s_zmtp_handshake(c->fd) != 0) ||
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0 ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        errno = e ? e : EPROTO;
        return -1;
    }
    return 0;
}

static void
s_give_up(pub_worker_t *w, s_conn_t *c)
{
    int64_t now = procs_now_ns();
    for (; c->count; c->count--) {
        pub_answered(w, c->fifo ? c->fifo[c->head].bt : now, "connection_lost", 0);
        if (c->fifo)
            c->head = (c->head + 1) % c->cap;
    }
}

/*  The connection broke: open it again and send its unanswered events
 *  again (Redis, HTTP), or give up on it (ZMTP; or after S_RECONNECTS
 *  attempts in a row that brought no answer). */
static void
s_reconnect(pub_worker_t *w, s_sock_t *s, s_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buf_reset(&c->in);
    buf_reset(&c->out);
    c->out_off = 0;
    while (s->proto != PUB_PROTO_ZMTP && c->failures++ < S_RECONNECTS) {
        w->res->reconnects++;
        if (s_connect(w, s, c) == 0) {
            for (uint32_t k = 0; k < c->count; k++)
                s_render(w, s, &c->fifo[(c->head + k) % c->cap], &c->out);
            return;
        }
        usleep(10000);
    }
    s_give_up(w, c);
}

static void
s_want_out(s_sock_t *s, s_conn_t *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void
s_flush(pub_worker_t *w, s_sock_t *s, s_conn_t *c)
{
    while (c->fd >= 0 && c->out_off < c->out.len) {
        ssize_t r = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (r > 0)
            c->out_off += (size_t)r;
        else if (r < 0 && errno == EAGAIN) {
            s_want_out(s, c, 1);
            return;
        }
        else if (!(r < 0 && errno == EINTR)) {
            s_reconnect(w, s, c);
            return;
        }
    }
    if (c->fd >= 0) {
        buf_reset(&c->out);
        c->out_off = 0;
        s_want_out(s, c, 0);
    }
}

/*  Reads what arrived and handles every complete answer. */
static void
s_readable(pub_worker_t *w, s_sock_t *s, s_conn_t *c)
{
    for (;;) {
        if (buf_reserve(&c->in, 65536) != 0)
            return;
        ssize_t r = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (r <= 0) {
            s_reconnect(w, s, c);
            return;
        }
        c->in.len += (size_t)r;
        if ((size_t)r < 65536)
            break;
    }
    size_t pos = 0;
    while (pos < c->in.len) {
        const char *p = c->in.data + pos, *error = NULL;
        size_t len = c->in.len - pos;
        int none = 0;
        long n;
        if (s->proto == PUB_PROTO_ZMTP)
            n = s_zmtp_frame(w, s, c, (const uint8_t *)p, len);
        else if (!c->count)
            n = -1; /* an answer to nothing */
        else
            n = s->proto == PUB_PROTO_HTTP ? s_http_answer(p, len, &error, &none)
                                           : s_resp_answer(p, len, &error, &none);
        if (n < 0) {
            s_reconnect(w, s, c);
            return;
        }
        if (n == 0)
            break;
        pos += (size_t)n;
        c->failures = 0;
        if (s->proto != PUB_PROTO_ZMTP) {
            pub_answered(w, c->fifo[c->head].bt, error, none);
            c->head = (c->head + 1) % c->cap;
            c->count--;
        }
    }
    memmove(c->in.data, c->in.data + pos, c->in.len - pos);
    c->in.len -= pos;
}

static int
s_send(pub_worker_t *w, const pub_ev_t *ev)
{
    s_sock_t *s = w->drv;
    for (int tries = 0; tries < s->n; tries++) {
        s_conn_t *c = &s->conns[s->next];
        s->next = s->next + 1 == s->n ? 0 : s->next + 1;
        if (c->fd < 0)
            continue;
        if (c->out.len - c->out_off > S_OUT_MAX)
            return 0;
        s_render(w, s, ev, &c->out);
        if (!buf_ok(&c->out))
            return -1;
        if (s->proto == PUB_PROTO_ZMTP)
            pub_due_push(&s->due, ev->bt);
        else
            c->fifo[(c->head + c->count) % c->cap] = *ev;
        c->count++;
        return 1;
    }
    return -1; /* every connection was given up */
}

static int
s_wait(pub_worker_t *w, int timeout_ms, int answers)
{
    s_sock_t *s = w->drv;
    int want_out = 0;
    for (int i = 0; i < s->n; i++) {
        s_flush(w, s, &s->conns[i]);
        want_out |= s->conns[i].want_out;
    }
    struct epoll_event evs[PUB_CONNS_MAX + 1];
    int n = epoll_wait(answers || want_out ? s->ep : s->ep_timer, evs, PUB_CONNS_MAX + 1,
                       timeout_ms);
    if (n < 0 && errno != EINTR)
        return -1;
    for (int i = 0; i < n; i++) {
        s_conn_t *c = evs[i].data.ptr;
        if (c && c->fd >= 0 && (evs[i].events & EPOLLOUT))
            s_flush(w, s, c);
    }
    /* Every connection, readable or not: on the timer-only wait, answers
     * are read here, when the worker wakes up for its next event. */
    for (int i = 0; i < s->n; i++)
        if (s->conns[i].fd >= 0)
            s_readable(w, s, &s->conns[i]);
    return 0;
}

static int
s_open(pub_worker_t *w, char *err, size_t errlen)
{
    const pub_cfg_t *cfg = w->cfg;
    s_sock_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->drv = s;
    s->proto = cfg->proto;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->ep_timer = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (s->ep < 0 || s->ep_timer < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, w->tfd, &ev) != 0 ||
        epoll_ctl(s->ep_timer, EPOLL_CTL_ADD, w->tfd, &ev) != 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        return -1;
    }
    if (s->proto == PUB_PROTO_ZMTP && pub_due_init(&s->due, cfg->window) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < cfg->conns; i++) {
        s_conn_t *c = &s->conns[s->n++];
        c->fd = -1;
        buf_init(&c->out);
        buf_init(&c->in);
        c->cap = cfg->window + 1;
        if (s->proto != PUB_PROTO_ZMTP && !(c->fifo = calloc(c->cap, sizeof *c->fifo))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (s_connect(w, s, c) != 0) {
            snprintf(err, errlen, "connect to %s: %s", cfg->endpoint, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void
s_close(pub_worker_t *w)
{
    s_sock_t *s = w->drv;
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        s_conn_t *c = &s->conns[i];
        if (c->fd >= 0)
            close(c->fd);
        buf_free(&c->out);
        buf_free(&c->in);
        free(c->fifo);
    }
    if (s->ep >= 0)
        close(s->ep);
    if (s->ep_timer >= 0)
        close(s->ep_timer);
    pub_due_free(&s->due);
    free(s);
    w->drv = NULL;
}

const pub_driver_t pub_sock_driver = {s_open, s_send, s_wait, s_close};
