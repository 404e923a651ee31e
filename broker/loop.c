/*  loop.c: the broker's event loop (epoll).
 *
 *  One epoll set over: the three sockets' listeners and every peer
 *  connection (zsrv.c: edge-triggered, ZMTP spoken here), the signalfd
 *  (SIGINT, SIGTERM, SIGCHLD from a compaction's child), a timerfd for
 *  heartbeats, sweeps, handshake deadlines and the fsync interval, and the
 *  syncer's eventfd.
 *
 *  A turn reads subscriptions first (a gateway's confirmation must not wait
 *  behind a burst of events), then sync requests, then jobs (jobs.c:
 *  submits, cancels, pool workers; its tick runs with the timers), then a batch of worker
 *  messages; a socket with more than a batch waiting stays ready, so the
 *  next turn comes without sleeping and none starves the others. Before
 *  the loop sleeps, every peer with output gets one send: the answers and
 *  events of the whole turn, not one system call each.
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

enum { S_FD_SIGNAL = 1, S_FD_TIMER, S_FD_SYNCER };

typedef struct {
    int timer;
    bk_poll_t signal, tick, syncer; /* what epoll points to for them */
} s_loop_t;

static int
s_watch(broker_t *bk, int fd, bk_poll_t *what, int tag)
{
    what->kind = BK_POLL_FD;
    what->tag = tag;
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.ptr = what;
    return epoll_ctl(bk->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int
s_open(broker_t *bk, s_loop_t *l)
{
    l->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (l->timer < 0 || s_watch(bk, bk->sigfd, &l->signal, S_FD_SIGNAL) ||
        s_watch(bk, l->timer, &l->tick, S_FD_TIMER))
        return -1;
    if (bk->syncer && s_watch(bk, bk_syncer_fd(bk->syncer), &l->syncer, S_FD_SYNCER))
        return -1;
    return 0;
}

/*  Heartbeats, sweeps, handshake deadlines, the fsync interval; then the
 *  timer is set for the next of them. */
static void
s_timers(broker_t *bk, s_loop_t *l)
{
    int64_t now = clock_mono_ms();
    bk->now_ms = now;
    if (now >= bk->next_heartbeat_ms) {
        bk_fanout_heartbeat(bk, clock_wall_ms());
        bk_zsrv_check(bk, now);
        bk->next_heartbeat_ms = now + TOPIC_HEARTBEAT_MS;
    }
    if (now >= bk->next_sweep_ms) {
        bk_state_sweep(&bk->state, now);
        bk->next_sweep_ms = now + S_SWEEP_MS;
    }
    if (bk->jobs && now >= bk->next_jobs_ms)
        bk->next_jobs_ms = bk_jobs_tick(bk, now);
    int64_t next = bk->next_heartbeat_ms < bk->next_sweep_ms ? bk->next_heartbeat_ms
                                                             : bk->next_sweep_ms;
    if (bk->jobs && bk->next_jobs_ms < next)
        next = bk->next_jobs_ms;
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

static void
s_fd_event(broker_t *bk, s_loop_t *l, int tag)
{
    switch (tag) {
    case S_FD_SIGNAL:
        s_signals(bk);
        break;
    case S_FD_TIMER: {
        uint64_t expirations;
        (void)!read(l->timer, &expirations, sizeof expirations);
        s_timers(bk, l);
        break;
    }
    case S_FD_SYNCER:
        bk->now_ms = clock_mono_ms();
        bk_commit_synced(bk);
        bk_jobs_dispatch(bk); /* jobs whose records are now on disk */
        (void)bk_commit_flush(bk);
        break;
    }
}

/*  1 if ingest may read: it is paused while too much waits for the disk. */
static int
s_ingest_open(const broker_t *bk)
{
    return bk->commit.count < S_COMMIT_MAX;
}

/*  1 if a socket holds something to read now. */
static int
s_ready(const broker_t *bk)
{
    return bk_zsock_ready(bk->fanout) || bk_zsock_ready(bk->sync) ||
           (bk->jobsock && bk_zsock_ready(bk->jobsock)) ||
           (s_ingest_open(bk) && bk_zsock_ready(bk->ingest));
}

/*  Reads what is ready, a batch each. */
static void
s_turn(broker_t *bk)
{
    if (bk_zsock_ready(bk->fanout))
        bk_zsock_fill(bk->fanout); /* subscriptions take effect as they are read */
    if (bk_zsock_ready(bk->sync))
        (void)bk_sync_drain(bk, BK_BATCH);
    if (bk->jobsock && bk_zsock_ready(bk->jobsock))
        (void)bk_jobs_drain(bk, BK_BATCH);
    if (s_ingest_open(bk) && bk_zsock_ready(bk->ingest)) {
        (void)bk_ingest_drain(bk, BK_BATCH);
        bk_compact_maybe(bk);
    }
    bk_compact_step(bk);
}

void
bk_loop_run(broker_t *bk)
{
    s_loop_t l = {.timer = -1};
    if (s_open(bk, &l) != 0) {
        log_error(&bk->log, "event loop: %s", strerror(errno));
        bk->exit_code = 1;
        bk->stop = 1;
    }
    else
        s_timers(bk, &l);
    while (!bk->stop) {
        /* Several turns before sleeping again: epoll_wait() only when no
         * socket has anything to read (a turn reads each at most a batch). */
        for (int turns = 0; s_ready(bk) && turns < 16 && !bk->stop; turns++)
            s_turn(bk);
        bk_zsrv_flush(bk);
        struct epoll_event evs[64];
        int n = epoll_wait(bk->epfd, evs, 64, s_ready(bk) ? 0 : -1);
        if (n < 0 && errno != EINTR) {
            log_error(&bk->log, "epoll_wait: %s", strerror(errno));
            bk->exit_code = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            bk_poll_t *what = evs[i].data.ptr;
            if (what->kind == BK_POLL_FD)
                s_fd_event(bk, &l, what->tag);
            else
                bk_zsrv_event(bk, what, evs[i].events);
        }
    }
    bk_zsrv_flush(bk);
    if (l.timer >= 0)
        close(l.timer);
}
