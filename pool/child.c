/*  child.c: a job's process. posix_spawnp (glibc reports a failed exec as
 *  an error, and it is safe beside ZeroMQ's threads), no shell, three
 *  pipes whose worker ends are non-blocking, its own process group so that
 *  SIGTERM/SIGKILL reach what it started too, and the default signal mask
 *  and dispositions (the worker blocks SIGTERM/SIGCHLD for its signalfd and
 *  ignores SIGPIPE).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"

extern char **environ;

static void
s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

pool_child_t *
pool_child_spawn(const pool_kind_t *kind, char *err, size_t errlen)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
    pool_child_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    /* dup2 clears close-on-exec on the copies; the originals close at exec */
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, er[1], 2);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    int rc = posix_spawnp(&c->pid, kind->argv[0], &fa, &at, kind->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start %s: %s", kind->argv[0], strerror(rc));
        goto fail;
    }
    close(in[0]);
    close(out[1]);
    close(er[1]);
    c->in_fd = in[1];
    c->out_fd = out[0];
    c->err_fd = er[0];
    fcntl(c->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
    c->kind = kind;
    buf_init(&c->in);
    pool_lines_init(&c->out, POOL_LINE_MAX);
    pool_lines_init(&c->err, POOL_ERR_LINE_MAX);
    return c;
fail:
    for (int i = 0; i < 2; i++) {
        s_close(&in[i]);
        s_close(&out[i]);
        s_close(&er[i]);
    }
    free(c);
    return NULL;
}

int
pool_child_flush(pool_child_t *c)
{
    while (c->in_fd >= 0 && c->in_off < c->in.len) {
        ssize_t n = write(c->in_fd, c->in.data + c->in_off, c->in.len - c->in_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0) {
            s_close(&c->in_fd); /* EPIPE: the child closed its stdin or ended */
            buf_reset(&c->in);
            c->in_off = 0;
            return -1;
        }
        c->in_off += (size_t)n;
    }
    if (c->in_off == c->in.len) {
        buf_reset(&c->in);
        c->in_off = 0;
        if (c->close_in)
            s_close(&c->in_fd);
    }
    return 0;
}

void
pool_child_write(pool_child_t *c, const void *p, size_t n)
{
    if (c->in_fd < 0)
        return;
    buf_append(&c->in, p, n);
    pool_child_flush(c);
}

static void
s_signal(pool_child_t *c, int sig)
{
    if (kill(-c->pid, sig) != 0)
        kill(c->pid, sig);
}

void
pool_child_term(pool_child_t *c, int64_t now_ms, int64_t grace_ms)
{
    if (c->exited || c->term_sent)
        return;
    c->term_sent = 1;
    s_close(&c->in_fd);
    s_signal(c, SIGTERM);
    c->kill_at_ms = now_ms + (grace_ms > 0 ? grace_ms : 1);
}

void
pool_child_tick(pool_child_t *c, int64_t now_ms)
{
    if (c->kill_at_ms && now_ms >= c->kill_at_ms && !c->exited) {
        s_signal(c, SIGKILL);
        c->kill_at_ms = 0;
    }
}

void
pool_child_describe(int status, char *out, size_t n)
{
    if (WIFSIGNALED(status))
        snprintf(out, n, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, n, "exit status %d", WEXITSTATUS(status));
}

void
pool_child_destroy(pool_child_t **pc)
{
    pool_child_t *c = *pc;
    if (!c)
        return;
    s_close(&c->in_fd);
    s_close(&c->out_fd);
    s_close(&c->err_fd);
    buf_free(&c->in);
    pool_lines_free(&c->out);
    pool_lines_free(&c->err);
    free(c);
    *pc = NULL;
}
