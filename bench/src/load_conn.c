/*  load_conn.c: one tc-load worker process: an epoll loop over its share of
 *  the WebSocket connections (see load.h).
 *
 *  A connection goes IDLE -> CONNECTING (non-blocking connect) ->
 *  HANDSHAKE (the upgrade request is sent, the answer is read) -> OPEN
 *  (101 with the right Sec-WebSocket-Accept) -> DONE (closed). It is ready
 *  at the 101 (--ready upgrade) or at the first hello frame (--ready hello).
 *  Reads land in one process-wide buffer; only the bytes of a frame that is
 *  not complete yet are kept per connection. Frames are not parsed as JSON:
 *  a text message is an event if it contains "bt":, whose integer is the
 *  publisher's CLOCK_MONOTONIC timestamp.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jwt.h"
#include "load.h"
#include "wsc.h"

#define S_RBUF_MIN  (256 * 1024)
#define S_RBUF_ROOM (64 * 1024)  /* free room guaranteed for each read */
#define S_PEND_MAX  (16u << 20)  /* a server frame larger than this is refused */
#define S_EVENTS    1024

enum { CS_IDLE, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_DONE };
enum { MSG_NONE, MSG_EVENT, MSG_STALE }; /* what the message in progress turned out to be */

typedef struct s_conn {
    int fd;
    uint8_t state, ready;
    uint8_t msg_op;   /* opcode of the data message in progress, 0 if none */
    uint8_t msg_kind; /* MSG_* of that message */
    uint32_t user;
    int64_t t_start;
    char *pend; /* bytes of an incomplete HTTP head or frame */
    uint32_t pend_len, pend_cap;
    char accept[WSC_ACCEPT_LEN + 1];
} s_conn_t;

typedef struct s_worker {
    const load_cfg_t *cfg;
    procs_hdr_t *hdr;
    load_result_t *res;
    int idx, ep;
    uint32_t lo, n; /* connections [lo, lo + n) of the whole run */
    s_conn_t *conns;
    char **tokens; /* by user index; NULL for users this process does not hold */
    uint32_t next, inflight, inflight_max;
    double rate; /* connects per second for this process, 0: no limit */
    int64_t t_begin, t_measure;
    double cpu_measure;
    uint64_t rng;
    char *rbuf;
    size_t rcap;
    uint64_t add_settled, add_ready, add_frames; /* not yet in the shared counters */
    int64_t add_open;
    int64_t now; /* of the current wake-up */
} s_worker_t;

static uint64_t
s_rand(s_worker_t *w)
{
    /* xorshift64*: connection keys and masks need no cryptography. */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 2685821657736338717ull;
}

static void
s_close(s_worker_t *w, s_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    if (c->state == CS_OPEN)
        w->add_open--;
    c->state = CS_DONE;
    free(c->pend);
    c->pend = NULL;
    c->pend_len = c->pend_cap = 0;
}

/*  The connection never became ready: count why and close it. */
static void
s_fail(s_worker_t *w, s_conn_t *c, const char *reason)
{
    tally_add(&w->res->failed, reason, 1);
    w->inflight--;
    w->add_settled++;
    s_close(w, c);
}

static void
s_ready(s_worker_t *w, s_conn_t *c)
{
    c->ready = 1;
    w->res->ready++;
    w->inflight--;
    w->add_ready++;
    w->add_settled++;
    hist_record(&w->res->connect, (uint64_t)(w->now - c->t_start));
    if (w->now > w->res->t_last_ready)
        w->res->t_last_ready = w->now;
}

/*  Sends a masked control frame, best effort: a full socket buffer drops
 *  it (a lost pong or close reply does not change what is measured). */
static void
s_send_ctrl(s_worker_t *w, s_conn_t *c, int op, const void *payload, size_t len)
{
    uint8_t frame[125 + WSC_FRAME_HDRMAX];
    if (len > 125)
        len = 125;
    size_t n = wsc_frame_build(frame, op, payload, len, (uint32_t)s_rand(w));
    (void)!send(c->fd, frame, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/*  The server closed the connection, with a close frame (code) or without
 *  (1006, as browsers report it). */
static void
s_server_closed(s_worker_t *w, s_conn_t *c, unsigned code, const char *reason)
{
    char key[16];
    snprintf(key, sizeof key, "%u", code);
    tally_add(&w->res->closes, key, 1);
    if (c->ready) {
        w->res->closed_after_ready++;
        s_close(w, c);
    }
    else
        s_fail(w, c, reason);
}

static void
s_start(s_worker_t *w, s_conn_t *c, uint32_t global)
{
    const load_cfg_t *cfg = w->cfg;
    c->t_start = w->now;
    c->state = CS_CONNECTING;
    w->inflight++;
    w->res->attempted++;
    if (!w->res->t_first_connect)
        w->res->t_first_connect = w->now;
    char reason[TALLY_KEYLEN];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(reason, sizeof reason, "socket_%s", strerrorname_np(errno));
        s_fail(w, c, reason);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg->src_count) {
        /* Bind the address only; the port is chosen at connect() per
         * destination, so each source address has its own ~28k ports. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(cfg->src_base + global % cfg->src_count);
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            snprintf(reason, sizeof reason, "bind_%s", strerrorname_np(errno));
            s_fail(w, c, reason);
            return;
        }
    }
    if (connect(c->fd, (const struct sockaddr *)&cfg->dst, sizeof cfg->dst) != 0 &&
        errno != EINPROGRESS) {
        snprintf(reason, sizeof reason, "connect_%s", strerrorname_np(errno));
        s_fail(w, c, reason);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)(c - w->conns)};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        snprintf(reason, sizeof reason, "epoll_%s", strerrorname_np(errno));
        s_fail(w, c, reason);
    }
}

static void
s_send_upgrade(s_worker_t *w, s_conn_t *c)
{
    const load_cfg_t *cfg = w->cfg;
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err) {
        char reason[TALLY_KEYLEN];
        snprintf(reason, sizeof reason, "connect_%s", strerrorname_np(err));
        s_fail(w, c, reason);
        return;
    }
    uint8_t raw[16];
    uint64_t r1 = s_rand(w), r2 = s_rand(w);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    char key[WSC_KEY_LEN + 1];
    wsc_key_encode(raw, key);
    wsc_accept_for(key, c->accept);
    const char *tok = w->tokens ? w->tokens[c->user] : NULL;
    char req[JWT_TOKEN_MAX + 512];
    int n = snprintf(req, sizeof req,
                     "GET %su%u%s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     cfg->path, c->user, tok ? "?token=" : "", tok ? tok : "", cfg->host,
                     cfg->port, key);
    /* A fresh socket's buffer takes a few hundred bytes whole. */
    if (n <= 0 || (size_t)n >= sizeof req ||
        send(c->fd, req, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        s_fail(w, c, "send_upgrade");
        return;
    }
    c->state = CS_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - w->conns)};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/*  A piece of a text message's payload (the first piece if first). */
static void
s_text(s_worker_t *w, s_conn_t *c, const char *p, size_t len, int first)
{
    load_result_t *res = w->res;
    if (first && !c->ready && !w->cfg->ready_upgrade && wsc_is_hello(p, len)) {
        s_ready(w, c);
        return;
    }
    uint64_t bt;
    if (c->msg_kind != MSG_NONE || w->cfg->idle || !wsc_find_bt(p, len, &bt))
        return;
    if ((int64_t)bt < w->cfg->start_ns) {
        c->msg_kind = MSG_STALE; /* a snapshot of an event published before this run */
        res->stale_frames++;
        return;
    }
    c->msg_kind = MSG_EVENT;
    res->frames++;
    w->add_frames++;
    hist_record(&res->latency, w->now > (int64_t)bt ? (uint64_t)(w->now - (int64_t)bt) : 0);
    if (!res->t_first_frame)
        res->t_first_frame = w->now;
    res->t_last_frame = w->now;
}

/*  Handles the complete frames at the start of buf; returns the bytes
 *  consumed, or -1 if the connection was closed. */
static long
s_frames(s_worker_t *w, s_conn_t *c, uint8_t *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        wsc_frame_t f;
        int rc = wsc_frame_parse(buf + pos, len - pos, &f);
        if (rc < 0) {
            s_server_closed(w, c, 1002, "protocol_error");
            return -1;
        }
        if (rc == 0 || f.payload_len > len - pos - f.hdr_len) {
            if (rc == 1 && f.hdr_len + f.payload_len > S_PEND_MAX) {
                s_server_closed(w, c, 1009, "frame_too_big");
                return -1;
            }
            break;
        }
        uint8_t *p = buf + pos + f.hdr_len;
        size_t plen = (size_t)f.payload_len;
        pos += f.hdr_len + plen;
        if (f.masked)
            wsc_unmask(p, plen, f.mask, 0);
        switch (f.opcode) {
        case WSC_OP_TEXT:
        case WSC_OP_BINARY:
            c->msg_op = (uint8_t)f.opcode;
            c->msg_kind = MSG_NONE;
            if (f.opcode == WSC_OP_TEXT)
                s_text(w, c, (const char *)p, plen, 1);
            break;
        case WSC_OP_CONT:
            if (!c->msg_op) {
                s_server_closed(w, c, 1002, "protocol_error");
                return -1;
            }
            if (c->msg_op == WSC_OP_TEXT)
                s_text(w, c, (const char *)p, plen, 0);
            break;
        case WSC_OP_PING:
            w->res->pings++;
            s_send_ctrl(w, c, WSC_OP_PONG, p, plen);
            continue;
        case WSC_OP_PONG:
            continue;
        case WSC_OP_CLOSE: {
            unsigned code = plen >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
            s_send_ctrl(w, c, WSC_OP_CLOSE, p, plen >= 2 ? 2 : 0);
            s_server_closed(w, c, code, "closed_before_ready");
            return -1;
        }
        }
        if (f.fin && c->msg_op) {
            if (c->msg_kind == MSG_NONE)
                w->res->other_frames++;
            c->msg_op = 0;
        }
    }
    return (long)pos;
}

/*  The HTTP answer to the upgrade, then any frames after it. */
static long
s_handshake(s_worker_t *w, s_conn_t *c, uint8_t *buf, size_t len)
{
    wsc_http_t http;
    long head = wsc_http_parse((const char *)buf, len, &http);
    if (head == 0)
        return 0;
    if (head < 0) {
        s_fail(w, c, "bad_http");
        return -1;
    }
    if (http.status != 101) {
        char reason[TALLY_KEYLEN];
        snprintf(reason, sizeof reason, "http_%d", http.status);
        s_fail(w, c, reason);
        return -1;
    }
    if (!http.upgrade || http.accept_len != WSC_ACCEPT_LEN ||
        memcmp(http.accept, c->accept, WSC_ACCEPT_LEN) != 0) {
        s_fail(w, c, "bad_accept");
        return -1;
    }
    c->state = CS_OPEN;
    w->res->established++;
    w->add_open++;
    if (w->cfg->ready_upgrade)
        s_ready(w, c);
    long more = s_frames(w, c, buf + head, len - (size_t)head);
    return more < 0 ? -1 : head + more;
}

/*  Keeps the unconsumed tail of a read for the next one. 0 or -1. */
static int
s_keep(s_conn_t *c, const uint8_t *p, size_t len)
{
    if (len > c->pend_cap) {
        size_t cap = len < 512 ? 512 : len * 2;
        char *np = realloc(c->pend, cap);
        if (!np)
            return -1;
        c->pend = np;
        c->pend_cap = (uint32_t)cap;
    }
    if (len)
        memcpy(c->pend, p, len);
    c->pend_len = (uint32_t)len;
    return 0;
}

static void
s_readable(s_worker_t *w, s_conn_t *c)
{
    for (;;) {
        size_t have = c->pend_len;
        if (w->rcap < have + S_RBUF_ROOM) {
            size_t cap = (have + S_RBUF_ROOM) * 2;
            char *np = realloc(w->rbuf, cap);
            if (!np) {
                s_server_closed(w, c, 1006, "out_of_memory");
                return;
            }
            w->rbuf = np;
            w->rcap = cap;
        }
        ssize_t r = recv(c->fd, w->rbuf + have, w->rcap - have, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0) {
            int reset = r < 0;
            const char *why = c->state == CS_HANDSHAKE ? (reset ? "reset_in_handshake"
                                                                : "eof_in_handshake")
                                                       : (reset ? "reset_before_ready"
                                                                : "eof_before_ready");
            s_server_closed(w, c, 1006, why);
            return;
        }
        if (have)
            memcpy(w->rbuf, c->pend, have);
        size_t total = have + (size_t)r;
        w->now = procs_now_ns();
        uint8_t *buf = (uint8_t *)w->rbuf;
        long used = c->state == CS_HANDSHAKE ? s_handshake(w, c, buf, total)
                                             : s_frames(w, c, buf, total);
        if (used < 0)
            return;
        if (s_keep(c, buf + used, total - (size_t)used) != 0) {
            s_server_closed(w, c, 1006, "out_of_memory");
            return;
        }
        if ((size_t)r < w->rcap - have)
            return; /* the socket is drained */
    }
}

static void
s_event(s_worker_t *w, s_conn_t *c, uint32_t events)
{
    if (c->state == CS_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            s_send_upgrade(w, c);
        return;
    }
    if (c->state == CS_HANDSHAKE || c->state == CS_OPEN)
        s_readable(w, c);
}

/*  Connections not ready after --connect-timeout fail as "timeout". */
static void
s_expire(s_worker_t *w)
{
    int64_t limit = (int64_t)(w->cfg->connect_timeout_s * 1e9);
    for (uint32_t i = 0; i < w->next && w->inflight > 0; i++) {
        s_conn_t *c = &w->conns[i];
        if (c->state != CS_DONE && c->state != CS_IDLE && !c->ready && w->now - c->t_start > limit)
            s_fail(w, c, "timeout");
    }
}

static void
s_publish_counts(s_worker_t *w)
{
    procs_hdr_t *hdr = w->hdr;
    if (w->add_settled)
        atomic_fetch_add(&hdr->ctr[LOAD_CTR_SETTLED], w->add_settled);
    if (w->add_ready)
        atomic_fetch_add(&hdr->ctr[LOAD_CTR_READY], w->add_ready);
    if (w->add_frames)
        atomic_fetch_add(&hdr->ctr[LOAD_CTR_FRAMES], w->add_frames);
    if (w->add_open)
        atomic_fetch_add(&hdr->ctr[LOAD_CTR_OPEN], (uint_fast64_t)w->add_open);
    w->add_settled = w->add_ready = w->add_frames = 0;
    w->add_open = 0;
}

/*  Starts what the in-flight bound and the rate allow; returns the epoll
 *  timeout (ms) until the rate allows the next one. */
static int
s_start_more(s_worker_t *w)
{
    /* Once the parent has ended the connect phase (its backstop timeout),
     * nothing new starts: what was not started is reported as such. */
    if (w->t_measure)
        return 50;
    while (w->next < w->n && w->inflight < w->inflight_max) {
        if (w->rate > 0) {
            double allowed = (double)(w->now - w->t_begin) / 1e9 * w->rate + 1;
            if ((double)w->next >= allowed)
                return 1;
        }
        s_conn_t *c = &w->conns[w->next];
        c->user = (w->lo + w->next) % w->cfg->users;
        s_start(w, c, w->lo + w->next);
        w->next++;
    }
    return 50;
}

static int
s_mint_tokens(s_worker_t *w)
{
    const load_cfg_t *cfg = w->cfg;
    if (!cfg->secret)
        return 0;
    w->tokens = calloc(cfg->users, sizeof *w->tokens);
    if (!w->tokens)
        return -1;
    int64_t now = (int64_t)time(NULL);
    for (uint32_t i = 0; i < w->n; i++) {
        uint32_t u = (w->lo + i) % cfg->users;
        if (w->tokens[u])
            continue;
        char sub[16], tok[JWT_TOKEN_MAX + 1];
        snprintf(sub, sizeof sub, "u%u", u);
        if (jwt_sign_hs256((const unsigned char *)cfg->secret, strlen(cfg->secret), sub, now,
                           now + 3600, 0, tok, sizeof tok) < 0 ||
            !(w->tokens[u] = strdup(tok)))
            return -1;
    }
    return 0;
}

static void
s_teardown(s_worker_t *w)
{
    for (uint32_t i = 0; i < w->next; i++) {
        s_conn_t *c = &w->conns[i];
        if (c->state == CS_OPEN) {
            w->res->open_at_end++;
            s_send_ctrl(w, c, WSC_OP_CLOSE, "\x03\xe8", 2); /* 1000: normal */
        }
        if (c->state != CS_DONE)
            s_close(w, c);
    }
    if (w->tokens)
        for (uint32_t u = 0; u < w->cfg->users; u++)
            free(w->tokens[u]);
    free(w->tokens);
    free(w->conns);
    free(w->rbuf);
    if (w->ep >= 0)
        close(w->ep);
}

int
load_conn_run(int idx, procs_hdr_t *hdr, void *slot, void *arg)
{
    const load_cfg_t *cfg = arg;
    s_worker_t self = {.cfg = cfg, .hdr = hdr, .res = slot, .idx = idx, .ep = -1};
    s_worker_t *w = &self;
    hist_init(&w->res->latency);
    hist_init(&w->res->connect);
    w->lo = (uint32_t)((uint64_t)idx * cfg->conns / cfg->procs);
    w->n = (uint32_t)((uint64_t)(idx + 1) * cfg->conns / cfg->procs) - w->lo;
    w->inflight_max = cfg->inflight / cfg->procs ? cfg->inflight / cfg->procs : 1;
    w->rate = cfg->connect_rate / cfg->procs;
    w->rng = (uint64_t)procs_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    procs_raise_nofile((long)w->n + 64);
    w->conns = calloc(w->n ? w->n : 1, sizeof *w->conns);
    w->rbuf = malloc(S_RBUF_MIN);
    w->rcap = S_RBUF_MIN;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = 0;
    if (!w->conns || !w->rbuf || w->ep < 0 || s_mint_tokens(w) != 0) {
        fprintf(stderr, "%s: worker %d: out of memory or descriptors\n", LOAD_PROG, idx);
        rc = 1;
        atomic_fetch_add(&hdr->ctr[LOAD_CTR_SETTLED], w->n);
        goto done;
    }
    for (uint32_t i = 0; i < w->n; i++)
        w->conns[i].fd = -1;
    double cpu0 = procs_cpu_s();
    w->t_begin = w->now = procs_now_ns();
    int64_t last_expire = w->now;
    struct epoll_event evs[S_EVENTS];
    while (!atomic_load(&hdr->stop)) {
        w->now = procs_now_ns();
        if (!w->t_measure && atomic_load(&hdr->phase) == LOAD_PHASE_MEASURE) {
            w->t_measure = w->now;
            w->cpu_measure = procs_cpu_s();
        }
        int timeout = s_start_more(w);
        s_publish_counts(w);
        int n = epoll_wait(w->ep, evs, S_EVENTS, timeout);
        w->now = procs_now_ns();
        for (int i = 0; i < n; i++)
            s_event(w, &w->conns[evs[i].data.u32], evs[i].events);
        if (w->inflight > 0 && w->now - last_expire > 100000000) {
            s_expire(w);
            last_expire = w->now;
        }
    }
    w->now = procs_now_ns();
    double cpu1 = procs_cpu_s();
    w->res->cpu_s = cpu1 - cpu0;
    if (w->t_measure) {
        w->res->cpu_measure_s = cpu1 - w->cpu_measure;
        w->res->wall_measure_s = (double)(w->now - w->t_measure) / 1e9;
    }
    /* Connections never started count as failed, so the counts add up. */
    if (w->next < w->n)
        tally_add(&w->res->failed, "not_started", w->n - w->next);
done:
    s_teardown(w);
    return rc;
}
