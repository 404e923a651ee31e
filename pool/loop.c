/*  loop.c: the worker's one loop. poll() over a signalfd (SIGTERM, SIGINT,
 *  SIGCHLD), a timerfd ticking every 50 ms (main.c; heartbeats, liveness,
 *  timeouts, SIGKILLs due, the link's reconnects), the link to the broker
 *  (link.c), and each child's stdout, stderr and (while bytes wait for it)
 *  stdin. The set is rebuilt every turn: a handful of descriptors, and no
 *  stale pointer survives a turn.
 *
 *  Order within a turn: the children's pipes, the timer, signals (reaping
 *  frees children, so it comes after every pipe event of the turn), the
 *  broker's messages (a job may start a child: after the pipes, whose
 *  references it would outdate); last, what the turn sent to the broker
 *  is written in one go.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clock.h"
#include "pool.h"

enum { S_SIG, S_TIMER, S_LINK, S_FIXED };
enum { S_OUT, S_ERR, S_IN };

typedef struct s_ref {
    pool_child_t *child;
    int which;
} s_ref_t;

static void
s_signals(pool_t *p, int64_t now_ms)
{
    struct signalfd_siginfo si;
    int reap = 0;
    while (read(p->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            reap = 1;
        else
            pool_job_shutdown(p, now_ms);
    }
    if (reap)
        pool_job_reap(p, now_ms);
}

int
pool_loop_run(pool_t *p)
{
    size_t cap = 0;
    struct pollfd *fds = NULL;
    s_ref_t *refs = NULL;
    int rc = 0;
    while (!(p->stopping && p->njobs == 0 && p->nchildren == 0)) {
        size_t need = S_FIXED + 3 * p->nchildren;
        if (need > cap) {
            struct pollfd *f2 = realloc(fds, need * sizeof *f2);
            if (f2)
                fds = f2;
            s_ref_t *r2 = f2 ? realloc(refs, need * sizeof *r2) : NULL;
            if (!r2) {
                log_error(&p->log, "out of memory in the loop");
                rc = -1;
                break;
            }
            refs = r2;
            cap = need;
        }
        size_t n = 0;
        fds[n++] = (struct pollfd){p->sigfd, POLLIN, 0};
        fds[n++] = (struct pollfd){p->tfd, POLLIN, 0};
        int lfd = p->link_open ? zconn_fd(&p->link) : -1;
        short lev = (short)(POLLIN | (lfd >= 0 && zconn_wants_write(&p->link) ? POLLOUT : 0));
        fds[n++] = (struct pollfd){lfd, lev, 0};
        for (size_t i = 0; i < p->nchildren; i++) {
            pool_child_t *c = p->children[i];
            int fd[3] = {c->out_fd, c->err_fd, c->in.len > c->in_off ? c->in_fd : -1};
            for (int w = 0; w < 3; w++) {
                if (fd[w] < 0)
                    continue;
                refs[n] = (s_ref_t){c, w};
                fds[n++] = (struct pollfd){fd[w], w == S_IN ? POLLOUT : POLLIN, 0};
            }
        }
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error(&p->log, "poll: %s", strerror(errno));
            rc = -1;
            break;
        }
        int64_t now = clock_mono_ms();
        for (size_t i = S_FIXED; i < n; i++) {
            if (!fds[i].revents)
                continue;
            pool_child_t *c = refs[i].child;
            if (refs[i].which == S_OUT)
                pool_job_on_stdout(p, c, now);
            else if (refs[i].which == S_ERR)
                pool_job_on_stderr(p, c, now);
            else
                pool_job_on_stdin(p, c, now);
        }
        if (fds[S_TIMER].revents) {
            uint64_t ticks;
            if (read(p->tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                log_warn(&p->log, "timerfd: %s", strerror(errno));
            pool_link_tick(p, now);
            pool_job_tick(p, now);
        }
        if (fds[S_SIG].revents)
            s_signals(p, now);
        /* the link after the pipes: a job it starts may add a child */
        short lre = fds[S_LINK].revents;
        if (lre && p->link_open && zconn_fd(&p->link) == fds[S_LINK].fd) {
            if (lre & (POLLOUT | POLLERR | POLLHUP))
                zconn_on_writable(&p->link);
            if ((lre & (POLLIN | POLLERR | POLLHUP)) && zconn_fd(&p->link) == fds[S_LINK].fd)
                zconn_on_readable(&p->link);
        }
        pool_link_flush(p); /* last: every send of this turn (see the banner) */
    }
    free(fds);
    free(refs);
    return rc;
}
