/*  zconn.c: one ZeroMQ connection spoken from the owner's loop (see
 *  zconn.h).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cfg.h"
#include "clock.h"
#include "zconn.h"
#include "zmtp.h"

#define S_IN_MIN      (256 * 1024) /* read buffer, grown for a bigger frame */
#define S_READ_BUDGET (1 << 20)    /* bytes read per wake-up, so others get their turn */
#define S_OUT_MAX     (64u << 20)  /* unsent bytes before the peer counts as stuck */
#define S_RETRY_MIN   0.1          /* seconds */
#define S_RETRY_MAX   1.0
#define S_HANDSHAKE_S 5.0

static const char S_NO_NAME[] = "the host name does not resolve";

enum { S_DOWN = 0, S_CONNECTING, S_HANDSHAKE, S_UP };

/*  Sets what the owner's loop must watch (timer_s 0: no deadline), and
 *  tells it. */
static void
s_watch(zconn_t *c, int want_write, double timer_s)
{
    c->want_write = c->fd >= 0 && want_write;
    c->deadline_ms = timer_s > 0 ? clock_mono_ms() + (int64_t)(timer_s * 1000) : 0;
    if (c->spec.on_watch)
        c->spec.on_watch(c->spec.owner, c);
}

/*  Sets only the wish to write, telling the owner if it changed. */
static void
s_want_write(zconn_t *c, int on)
{
    on = c->fd >= 0 && on;
    if (on == c->want_write)
        return;
    c->want_write = on;
    if (c->spec.on_watch)
        c->spec.on_watch(c->spec.owner, c);
}

/* ---------------------------------------------------------------- addresses */

/*  tcp://HOST:PORT (HOST may be [v6]) or ipc://PATH into c->addr. 0, or -1
 *  with a sentence. Resolved at every attempt: a restarted broker
 *  container may come back at another address. */
static int
s_resolve(zconn_t *c, const char **why)
{
    const char *ep = c->spec.endpoint;
    if (strncmp(ep, "ipc://", 6) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&c->addr;
        size_t n = strlen(ep + 6);
        if (n == 0 || n >= sizeof un->sun_path) {
            *why = "the ipc path is empty or too long";
            return -1;
        }
        memset(un, 0, sizeof *un);
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, ep + 6, n);
        c->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
    if (strncmp(ep, "tcp://", 6) != 0) {
        *why = "only tcp:// and ipc:// endpoints can be connected to";
        return -1;
    }
    char host[256], port_text[8];
    int port;
    if (cfg_parse_listen(ep + 6, host, sizeof host, &port) != 0 || host[0] == '\0') {
        *why = "a tcp endpoint must be tcp://HOST:PORT";
        return -1;
    }
    snprintf(port_text, sizeof port_text, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port_text, &hints, &res) != 0 || !res) {
        *why = S_NO_NAME;
        return -1;
    }
    memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
    c->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* ---------------------------------------------------------------- life cycle */

static void
s_close_fd(zconn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_len = 0;
    buf_reset(&c->out);
    c->out_off = 0;
    c->in_message = 0;
}

/*  The next attempt in retry_s, which doubles up to S_RETRY_MAX. */
static void
s_retry_later(zconn_t *c)
{
    s_watch(c, 0, c->retry_s);
    c->retry_s = c->retry_s * 2 > S_RETRY_MAX ? S_RETRY_MAX : c->retry_s * 2;
}

/*  Connects now; on failure schedules the next attempt. */
static void
s_connect(zconn_t *c)
{
    const char *why = NULL;
    int fd = -1;
    if (s_resolve(c, &why) == 0) {
        fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            why = strerror(errno);
    }
    if (fd >= 0 && c->addr.ss_family != AF_UNIX) {
        int one = 1, idle = 10, intvl = 2, cnt = 3;
        /* A peer host that vanishes without closing is found in ~16 s. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }
    if (fd >= 0 && connect(fd, (struct sockaddr *)&c->addr, c->addrlen) != 0 &&
        errno != EINPROGRESS) {
        why = strerror(errno);
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        if (!c->quiet)
            log_warn(c->spec.log, "%s link to %s: %s; retrying", c->spec.name, c->spec.endpoint,
                     why);
        c->quiet = 1; /* one line per outage, not one per attempt */
        s_retry_later(c);
        return;
    }
    c->fd = fd;
    c->state = S_CONNECTING;
    zmtp_put_greeting(&c->out);
    zmtp_put_ready(&c->out, c->spec.type);
    /* writable: connected (or failed); the handshake's deadline */
    s_watch(c, 1, S_HANDSHAKE_S);
}

void
zconn_reset(zconn_t *c, const char *why)
{
    int was_up = c->state == S_UP;
    if (was_up || !c->quiet)
        log_warn(c->spec.log, "%s link to %s lost: %s; reconnecting", c->spec.name,
                 c->spec.endpoint, why);
    c->quiet = 1;
    s_close_fd(c);
    c->state = S_DOWN;
    if (was_up)
        c->retry_s = S_RETRY_MIN;
    s_retry_later(c);
}

void
zconn_on_timeout(zconn_t *c)
{
    if (c->state == S_DOWN)
        s_connect(c);
    else if (c->state != S_UP)
        zconn_reset(c, "no ZeroMQ handshake within 5 s");
}

int
zconn_open(zconn_t *c, const zconn_spec_t *spec, const char **why)
{
    memset(c, 0, sizeof *c);
    c->spec = *spec;
    c->fd = -1;
    c->retry_s = S_RETRY_MIN;
    buf_init(&c->out);
    if (s_resolve(c, why) != 0 && *why != S_NO_NAME)
        return -1; /* a name that does not resolve yet is retried, a bad endpoint is not */
    s_connect(c);
    return 0;
}

void
zconn_close(zconn_t *c)
{
    s_close_fd(c);
    buf_free(&c->out);
    free(c->in);
    c->in = NULL;
    c->state = S_DOWN;
    c->want_write = 0;
    c->deadline_ms = 0;
}

int
zconn_up(const zconn_t *c)
{
    return c->state == S_UP;
}

/* ---------------------------------------------------------------- writing */

buf_t *
zconn_out(zconn_t *c)
{
    return c->state == S_UP ? &c->out : NULL;
}

/*  Writes what is buffered; 0, or -1 after a reset. */
static int
s_write(zconn_t *c)
{
    int r = buf_send(&c->out, c->fd, &c->out_off);
    if (r == 0) {
        if (c->out.len - c->out_off > S_OUT_MAX) {
            zconn_reset(c, "the peer stopped reading");
            return -1;
        }
        s_want_write(c, 1);
        return 0;
    }
    if (r < 0) {
        zconn_reset(c, errno ? strerror(errno) : "send failed");
        return -1;
    }
    buf_reset(&c->out);
    c->out_off = 0;
    s_want_write(c, 0);
    return 0;
}

void
zconn_flush(zconn_t *c)
{
    if (c->state == S_UP && c->out.len > c->out_off) {
        if (!buf_ok(&c->out))
            zconn_reset(c, "out of memory");
        else
            (void)s_write(c);
    }
}

size_t
zconn_pending(const zconn_t *c)
{
    return c->out.len - c->out_off;
}

int
zconn_fd(const zconn_t *c)
{
    return c->fd;
}

int
zconn_wants_write(const zconn_t *c)
{
    return c->want_write;
}

int64_t
zconn_deadline_ms(const zconn_t *c)
{
    return c->deadline_ms;
}

void
zconn_on_writable(zconn_t *c)
{
    if (c->fd < 0)
        return;
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            zconn_reset(c, strerror(err ? err : errno));
            return;
        }
        c->state = S_HANDSHAKE;
    }
    (void)s_write(c);
}

/* ---------------------------------------------------------------- reading */

/*  The peer's greeting and READY. 1 when up, 0 if more bytes are needed,
 *  -1 after a reset. *used: bytes taken. */
static int
s_handshake(zconn_t *c, const uint8_t *p, size_t n, size_t *used)
{
    const char *why = NULL;
    zmtp_frame_t ready;
    *used = 0;
    long long k = zmtp_read_handshake(p, n, c->spec.peer_type, &ready, &why);
    if (k == 0)
        return 0;
    if (k < 0) {
        zconn_reset(c, why);
        return -1;
    }
    *used = (size_t)k;
    c->state = S_UP;
    c->quiet = 0;
    c->retry_s = S_RETRY_MIN;
    s_watch(c, c->want_write, 0); /* no deadline while up */
    log_info(c->spec.log, "%s link to %s up", c->spec.name, c->spec.endpoint);
    c->spec.on_up(c->spec.owner, c);
    return c->state == S_UP ? 1 : -1;
}

/*  A command while up: PING gets a PONG, ERROR resets, others are ignored.
 *  0, or -1 after a reset. */
static int
s_command(zconn_t *c, const zmtp_frame_t *f)
{
    if (zmtp_command_is(f->body, f->len, "PING")) {
        zmtp_put_pong(&c->out, f->body, f->len);
        return 0;
    }
    if (zmtp_command_is(f->body, f->len, "ERROR")) {
        zconn_reset(c, "the peer sent an ERROR command");
        return -1;
    }
    return 0;
}

/*  Parses what the buffer holds. 0, or -1 after a reset. */
static int
s_parse(zconn_t *c)
{
    size_t off = 0;
    while (off < c->in_len) {
        if (c->state != S_UP) {
            size_t used;
            int rc = s_handshake(c, c->in + off, c->in_len - off, &used);
            if (rc <= 0)
                return rc;
            off += used;
            continue;
        }
        zmtp_frame_t f;
        uint64_t need;
        long long k = zmtp_read_frame(c->in + off, c->in_len - off, c->spec.max_frame, &f, &need);
        if (k < 0) {
            zconn_reset(c, "a malformed or oversized frame");
            return -1;
        }
        if (k == 0) {
            if (need > c->in_cap) { /* grow for this frame (at most max_frame + head) */
                size_t cap = need < 2 * c->in_cap ? 2 * c->in_cap : (size_t)need;
                uint8_t *in = realloc(c->in, cap);
                if (!in) {
                    zconn_reset(c, "out of memory for a frame");
                    return -1;
                }
                c->in = in;
                c->in_cap = cap;
            }
            break;
        }
        off += (size_t)k;
        if (f.flags & ZMTP_COMMAND) {
            if (c->in_message || s_command(c, &f) != 0) {
                if (c->state == S_UP)
                    zconn_reset(c, "a command inside a message");
                return -1;
            }
            continue;
        }
        int more = f.flags & ZMTP_MORE;
        c->spec.on_frame(c->spec.owner, c, f.body, (size_t)f.len, !c->in_message, more);
        c->in_message = more;
        if (c->state != S_UP)
            return -1; /* the owner reset it */
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return 0;
}

void
zconn_on_readable(zconn_t *c)
{
    if (c->fd < 0 || c->state == S_CONNECTING)
        return; /* writability says when the connect is done */
    size_t budget = S_READ_BUDGET;
    while (budget > 0) {
        if (!c->in) {
            c->in = malloc(S_IN_MIN);
            if (!c->in) {
                zconn_reset(c, "out of memory");
                return;
            }
            c->in_cap = S_IN_MIN;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            zconn_reset(c, n == 0 ? "the peer closed the connection" : strerror(errno));
            return;
        }
        size_t room = c->in_cap - c->in_len;
        c->in_len += (size_t)n;
        c->last_rx_ms = clock_mono_ms();
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        if (s_parse(c) != 0)
            return;
        if ((size_t)n < room)
            break; /* drained (most likely): no recv just to hear EAGAIN */
    }
    /* Level-triggered: bytes left unread (budget, or a short read that was
     * not the end) wake the loop again at once. */
    zconn_flush(c); /* PONGs, and what the frames made the owner send */
}
