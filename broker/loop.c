/*  loop.c: the broker's event loop (epoll).
 *
 *  One epoll set, edge-triggered, over: the ZMQ_FD of the three sockets, the
 *  signalfd (SIGINT, SIGTERM, SIGCHLD from a compaction's child), a timerfd
 *  for heartbeats, sweeps and the fsync interval, and the syncer's eventfd.
 *
 *  A ZMQ_FD is not a readable-data descriptor: it signals, once (an edge),
 *  that the socket's state may have changed, and any call into the socket
 *  (a send too) may consume that signal. So a socket is read until EAGAIN
 *  when its descriptor fires, and read again before the loop sleeps if we
 *  sent on it since (bk->sent): otherwise a message that arrived during the
 *  send would wait for the next, unrelated, wake-up. Each of those reads to
 *  EAGAIN costs libzmq a getpid() and a poll() (its fork check and its
 *  mailbox); the loop pays them once per socket per turn, never per event,
 *  and there is no zmq_poll() (which costs them for every socket, twice,
 *  on every wake-up).
 *
 *  A turn reads subscriptions first (a gateway's confirmation must not wait
 *  behind a burst of events), then sync requests, then a batch of worker
 *  messages; a socket with more than a batch waiting stays ready, so the
 *  next turn comes without sleeping and none starves the others.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "broker.h"
#include "clock.h"

#define S_SWEEP_MS   1000
#define S_COMMIT_MAX 262144 /* answers waiting for the disk before ingest pauses */

enum { S_EV_INGEST = 1, S_EV_FANOUT, S_EV_SYNC, S_EV_SIGNAL, S_EV_TIMER, S_EV_SYNCER };

typedef struct {
    int ep;
    int timer;
    unsigned ready; /* BK_SOCK_*: sockets to read (to EAGAIN) */
} s_loop_t;

static int
s_watch(s_loop_t *l, int fd, uint32_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = tag};
    return epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev);
}

static int
s_zmq_fd(void *socket)
{
    int fd = -1;
    size_t len = sizeof fd;
    return zmq_getsockopt(socket, ZMQ_FD, &fd, &len) == 0 ? fd : -1;
}

static int
s_open(broker_t *bk, s_loop_t *l)
{
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (l->ep < 0 || l->timer < 0)
        return -1;
    if (s_watch(l, s_zmq_fd(bk->ingest), S_EV_INGEST) || s_watch(l, s_zmq_fd(bk->fanout), S_EV_FANOUT) ||
        s_watch(l, s_zmq_fd(bk->sync), S_EV_SYNC) || s_watch(l, bk->sigfd, S_EV_SIGNAL) ||
        s_watch(l, l->timer, S_EV_TIMER))
        return -1;
    if (bk->syncer && s_watch(l, bk_syncer_fd(bk->syncer), S_EV_SYNCER))
        return -1;
    l->ready = BK_SOCK_INGEST | BK_SOCK_FANOUT | BK_SOCK_SYNC;
    return 0;
}

/*  Heartbeats, sweeps, the fsync interval; then the timer is set for the
 *  next of them. */
static void
s_timers(broker_t *bk, s_loop_t *l)
{
    int64_t now = clock_mono_ms();
    bk->now_ms = now;
    if (now >= bk->next_heartbeat_ms) {
        bk_fanout_heartbeat(bk, clock_wall_ms());
        bk->next_heartbeat_ms = now + TOPIC_HEARTBEAT_MS;
    }
    if (now >= bk->next_sweep_ms) {
        bk_state_sweep(&bk->state, now);
        bk->next_sweep_ms = now + S_SWEEP_MS;
    }
    int64_t next = bk->next_heartbeat_ms < bk->next_sweep_ms ? bk->next_heartbeat_ms
                                                             : bk->next_sweep_ms;
    if (bk->syncer && bk->commit.policy == BK_FSYNC_INTERVAL) {
        if (now >= bk->next_sync_ms) {
            if (bk->commit.written > bk->commit.asked) {
                bk_syncer_want(bk->syncer, bk->commit.written);
                bk->commit.asked = bk->commit.written;
            }
            bk->next_sync_ms = now + (int64_t)bk->commit.interval_ms;
        }
        if (bk->next_sync_ms < next)
            next = bk->next_sync_ms;
    }
    int64_t at_ms = next - CLOCK_MONO_ORIGIN_MS; /* on CLOCK_MONOTONIC itself */
    struct itimerspec at = {.it_value = {.tv_sec = at_ms / 1000, .tv_nsec = at_ms % 1000 * 1000000}};
    if (timerfd_settime(l->timer, TFD_TIMER_ABSTIME, &at, NULL) != 0)
        log_error(&bk->log, "timerfd: %s", strerror(errno));
}

static void
s_signals(broker_t *bk)
{
    struct signalfd_siginfo si;
    while (read(bk->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            bk_compact_reap(bk);
            continue;
        }
        log_info(&bk->log, "received %s, stopping", strsignal((int)si.ssi_signo));
        bk->stop = 1;
    }
}

/*  Reads what is ready, once each. */
static void
s_turn(broker_t *bk, s_loop_t *l)
{
    if (l->ready & BK_SOCK_FANOUT && bk_fanout_drain(bk, BK_BATCH) < BK_BATCH)
        l->ready &= ~BK_SOCK_FANOUT;
    if (l->ready & BK_SOCK_SYNC && bk_sync_drain(bk, BK_BATCH) < BK_BATCH)
        l->ready &= ~BK_SOCK_SYNC;
    if (l->ready & BK_SOCK_INGEST && bk->commit.count < S_COMMIT_MAX) {
        if (bk_ingest_drain(bk, BK_BATCH) < BK_BATCH)
            l->ready &= ~BK_SOCK_INGEST;
        bk_compact_maybe(bk);
    }
    bk_compact_step(bk);
    l->ready |= bk->sent;
    bk->sent = 0;
}

void
bk_loop_run(broker_t *bk)
{
    s_loop_t l = {.ep = -1, .timer = -1};
    if (s_open(bk, &l) != 0) {
        log_error(&bk->log, "event loop: %s", strerror(errno));
        bk->exit_code = 1;
        bk->stop = 1;
    }
    else
        s_timers(bk, &l);
    while (!bk->stop) {
        /* Ingest paused (too much waiting for the disk) is not "ready". */
        unsigned ready = l.ready;
        if (bk->commit.count >= S_COMMIT_MAX)
            ready &= ~BK_SOCK_INGEST;
        struct epoll_event evs[8];
        int n = epoll_wait(l.ep, evs, 8, ready ? 0 : -1);
        if (n < 0 && errno != EINTR) {
            log_error(&bk->log, "epoll_wait: %s", strerror(errno));
            bk->exit_code = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            switch (evs[i].data.u32) {
            case S_EV_INGEST:
                l.ready |= BK_SOCK_INGEST;
                break;
            case S_EV_FANOUT:
                l.ready |= BK_SOCK_FANOUT;
                break;
            case S_EV_SYNC:
                l.ready |= BK_SOCK_SYNC;
                break;
            case S_EV_SIGNAL:
                s_signals(bk);
                break;
            case S_EV_TIMER: {
                uint64_t expirations;
                (void)!read(l.timer, &expirations, sizeof expirations);
                s_timers(bk, &l);
                break;
            }
            case S_EV_SYNCER:
                bk->now_ms = clock_mono_ms();
                bk_commit_synced(bk);
                break;
            }
        }
        /* What the timer or the syncer sent on needs reading again. */
        l.ready |= bk->sent;
        bk->sent = 0;
        /* Several turns before sleeping again: epoll_wait() only when no
         * socket is ready (a turn reads each at most a batch). */
        for (int turns = 0; l.ready && turns < 16 && !bk->stop; turns++) {
            unsigned before = l.ready;
            s_turn(bk, &l);
            if (bk->commit.count >= S_COMMIT_MAX && l.ready == before)
                break; /* waiting for the syncer */
        }
    }
    if (l.ep >= 0)
        close(l.ep);
    if (l.timer >= 0)
        close(l.timer);
}
