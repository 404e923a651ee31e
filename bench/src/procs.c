/*  procs.c: forked workers, a shared result area, clocks and limits. */
#include "procs.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t
procs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double
procs_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

long
procs_raise_nofile(long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((rlim_t)need > rl.rlim_cur) {
        rl.rlim_cur = (rlim_t)need < rl.rlim_max ? (rlim_t)need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

static size_t
s_hdr_size(void)
{
    return (sizeof(procs_hdr_t) + 63) & ~(size_t)63;
}

procs_hdr_t *
procs_hdr(procs_t *self)
{
    return self->map;
}

void *
procs_slot(procs_t *self, int idx)
{
    return (char *)self->map + s_hdr_size() + (size_t)idx * self->slot_size;
}

int
procs_start(procs_t *self, int n, size_t slot_size, procs_child_fn child, void *arg,
            char *err, size_t errlen)
{
    memset(self, 0, sizeof *self);
    self->sigfd = -1;
    if (n < 1 || n > PROCS_MAX) {
        snprintf(err, errlen, "between 1 and %d processes, not %d", PROCS_MAX, n);
        return -1;
    }
    self->n = n;
    self->slot_size = (slot_size + 63) & ~(size_t)63;
    self->map_len = s_hdr_size() + (size_t)n * self->slot_size;
    self->map = mmap(NULL, self->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (self->map == MAP_FAILED) {
        self->map = NULL;
        snprintf(err, errlen, "mmap of %zu bytes: %s", self->map_len, strerror(errno));
        return -1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    self->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            snprintf(err, errlen, "fork: %s", strerror(errno));
            atomic_store(&procs_hdr(self)->stop, 1);
            self->n = i;
            return -1;
        }
        if (pid == 0) {
            if (self->sigfd >= 0)
                close(self->sigfd);
            int rc = child(i, procs_hdr(self), procs_slot(self, i), arg);
            fflush(NULL);
            _exit(rc);
        }
        self->pids[i] = pid;
        self->status[i] = -2; /* running */
    }
    return 0;
}

static int
s_reap(procs_t *self, int hang)
{
    int alive = 0;
    for (int i = 0; i < self->n; i++) {
        if (self->status[i] != -2)
            continue;
        int st;
        pid_t r = waitpid(self->pids[i], &st, hang ? 0 : WNOHANG);
        if (r == self->pids[i])
            self->status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        else
            alive++;
    }
    return alive;
}

int
procs_wait(procs_t *self, procs_tick_fn tick, void *arg, double grace_s)
{
    procs_hdr_t *hdr = procs_hdr(self);
    int64_t stop_at = 0;
    while (s_reap(self, 0) > 0) {
        struct pollfd pfd = {.fd = self->sigfd, .events = POLLIN};
        if (poll(&pfd, self->sigfd >= 0 ? 1 : 0, 10) > 0) {
            struct signalfd_siginfo si;
            while (read(self->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
                atomic_store(&hdr->stop, 1);
        }
        if (!atomic_load(&hdr->stop) && tick && tick(hdr, arg))
            atomic_store(&hdr->stop, 1);
        if (atomic_load(&hdr->stop)) {
            int64_t now = procs_now_ns();
            if (!stop_at)
                stop_at = now;
            else if ((double)(now - stop_at) / 1e9 > grace_s) {
                for (int i = 0; i < self->n; i++)
                    if (self->status[i] == -2)
                        kill(self->pids[i], SIGKILL);
                s_reap(self, 1);
            }
        }
    }
    /* Whoever was still running when every other child ended is gone too. */
    int bad = 0;
    for (int i = 0; i < self->n; i++)
        if (self->status[i] != 0)
            bad++;
    return bad;
}

int
procs_run(procs_t *self, int n, size_t slot_size, procs_child_fn child, void *arg,
          procs_tick_fn tick, void *tick_arg, double grace_s, char *err, size_t errlen)
{
    if (procs_start(self, n, slot_size, child, arg, err, errlen) != 0) {
        procs_wait(self, NULL, NULL, 5);
        return -1;
    }
    return procs_wait(self, tick, tick_arg, grace_s);
}

void
procs_end(procs_t *self)
{
    if (self->map)
        munmap(self->map, self->map_len);
    self->map = NULL;
    if (self->sigfd >= 0)
        close(self->sigfd);
    self->sigfd = -1;
}
