/*  fuzz_zsrv.c: the broker's own ZeroMQ sockets (broker/zsrv.c) on what a
 *  peer sends: a real connection (a unix socket) to a real listener, the
 *  bytes written by the "peer", the broker's side driven as its loop does
 *  (epoll events, fill, next, flush).
 *
 *  The first input byte picks:
 *    bit 0  the socket: a ROUTER (messages handed to the broker) or an
 *           XPUB (subscriptions taken on the way);
 *    bit 1  a valid greeting and READY go first (so frames are reached),
 *           or the input is the whole stream.
 *  Checks: no crash or sanitizer report; a message handed over keeps at
 *  most BK_ZMSG_FRAMES frames, each within the socket's frame limit; an
 *  answer to it can be queued; and every topic the XPUB reported as
 *  subscribed is reported unsubscribed once the peer is gone (none left
 *  behind), with nothing leaked when the peer's record is freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "fuzz.h"
#include "zmtp.h"

#define S_FRAME_MAX 1024

static broker_t s_bk;
static bk_zsock_t *s_router, *s_xpub;
static char s_dir[96], s_rpath[128], s_xpath[128];
static long s_subscribed; /* topics reported subscribed minus unsubscribed */

static void
s_on_sub(broker_t *bk, const uint8_t *topic, size_t len, int subscribe)
{
    FUZZ_CHECK(len <= 4096);
    s_subscribed += subscribe ? 1 : -1;
}

static void
s_cleanup(void)
{
    bk_zsock_close(&s_router);
    bk_zsock_close(&s_xpub);
    if (s_bk.epfd >= 0)
        close(s_bk.epfd);
    rmdir(s_dir);
}

static void
s_setup(void)
{
    if (s_router)
        return;
    log_init(&s_bk.log, "fuzz_zsrv", LOG_ERROR);
    s_bk.epfd = epoll_create1(EPOLL_CLOEXEC);
    snprintf(s_dir, sizeof s_dir, "/tmp/taskcast-fuzz-zsrv-XXXXXX");
    FUZZ_CHECK(s_bk.epfd >= 0 && mkdtemp(s_dir));
    char ep[160], err[256];
    snprintf(s_rpath, sizeof s_rpath, "%s/router", s_dir);
    snprintf(s_xpath, sizeof s_xpath, "%s/xpub", s_dir);
    snprintf(ep, sizeof ep, "ipc://%s", s_rpath);
    s_router = bk_zsock_bind(&s_bk, s_bk.epfd, ep, "router", S_FRAME_MAX, NULL, err, sizeof err);
    snprintf(ep, sizeof ep, "ipc://%s", s_xpath);
    s_xpub = bk_zsock_bind(&s_bk, s_bk.epfd, ep, "xpub", S_FRAME_MAX, s_on_sub, err, sizeof err);
    FUZZ_CHECK(s_router && s_xpub);
    atexit(s_cleanup);
}

/*  The broker's side: events, then what the loop does with them. Returns
 *  how many messages were handed over. */
static int
s_pump(bk_zsock_t *z)
{
    struct epoll_event evs[16];
    int n = epoll_wait(s_bk.epfd, evs, 16, 0), got = 0;
    for (int i = 0; i < n; i++)
        bk_zsrv_event(&s_bk, evs[i].data.ptr, evs[i].events);
    if (bk_zsock_ready(z)) {
        bk_zsock_fill(z);
        bk_zmsg_t m;
        while (z == s_router && bk_zsock_next(z, &m)) {
            FUZZ_CHECK(m.count >= 1 && m.count <= BK_ZMSG_FRAMES && m.peer);
            for (uint32_t i = 0; i < m.count; i++)
                FUZZ_CHECK(m.frames[i].len <= S_FRAME_MAX && (m.frames[i].p || !m.frames[i].len));
            buf_t *out = bk_zpeer_out(m.peer);
            if (out)
                zmtp_put_frame(out, "ok", 2, 0);
            got++;
        }
    }
    bk_zsrv_flush(&s_bk);
    return got;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    s_setup();
    int xpub = data[0] & 1, greet = data[0] & 2;
    bk_zsock_t *z = xpub ? s_xpub : s_router;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s", xpub ? s_xpath : s_rpath);
    FUZZ_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&un, sizeof un) == 0);
    int rcv = 1 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    if (greet) {
        buf_t b;
        buf_init(&b);
        zmtp_put_greeting(&b);
        zmtp_put_ready(&b, xpub ? "SUB" : "DEALER");
        FUZZ_CHECK(send(fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len);
        buf_free(&b);
    }
    /* the rest in two pieces, the broker reading in between */
    size_t half = (size - 1) / 2;
    if (half)
        (void)send(fd, data + 1, half, MSG_NOSIGNAL | MSG_DONTWAIT);
    for (int i = 0; i < 4; i++)
        s_pump(z);
    if (size - 1 > half) /* the broker may have closed it already */
        (void)send(fd, data + 1 + half, size - 1 - half, MSG_NOSIGNAL | MSG_DONTWAIT);
    for (int i = 0; i < 4; i++)
        s_pump(z);
    /* what the broker answered is read and dropped; then the peer goes */
    char sink[4096];
    while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
    close(fd);
    for (int i = 0; i < 8; i++)
        s_pump(z);
    FUZZ_CHECK(s_subscribed == 0); /* the peer's subscriptions all went with it */
    return 0;
}
