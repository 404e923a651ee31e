/*  syncer.c: fdatasync() off the loop, and group commit.
 *
 *  fdatasync() takes a fraction of a millisecond to many milliseconds, and
 *  the loop must not stop for it: it keeps reading, validating, recording
 *  and writing later batches meanwhile. So one thread of ours does the
 *  syncing. The loop says which journal position it wants on disk
 *  (bk_syncer_want(), after the write() that put it in the file); the thread
 *  takes the highest position asked for, syncs the file(s), and hands the
 *  position back through an eventfd the loop's epoll watches. Batches
 *  written during one sync share the next one: under load the number of
 *  syncs follows the disk's speed, not the event rate (group commit).
 *
 *  The thread also does the last step of a compaction (compact.c): after a
 *  sync of both files, rename the new file over the journal and fsync the
 *  directory, so the rename itself is durable before the loop stops writing
 *  the old file.
 *
 *  The thread never touches the broker's state: it sees only its own dup()s
 *  of the files (each round dup()s them again, so the loop may replace them
 *  at any time), positions and paths, under one mutex. A failed sync is
 *  reported and sticks: the loop then stops without acknowledging anything
 *  more (after a failed fsync the page cache cannot be trusted to reach the
 *  disk later).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker.h"
#include "clock.h"

struct bk_syncer {
    pthread_t thread;
    int started;
    int efd; /* eventfd: a sync finished */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    int fds[2];      /* dups of the files to sync, -1: none */
    uint64_t want;   /* the position asked for */
    uint64_t done;   /* the position on disk */
    char *from, *to; /* a rename to do after the next sync, or NULL */
    int dir_retry;   /* renamed; the directory sync failed, retry it */
    int renamed;     /* a rename done (and its directory synced) */
    int error;       /* errno of a failed sync, sticky; 0: none */
    uint64_t rounds;
    int stop;
    int64_t delay_us, last_end_us;
};

/*  One round: sync the files, then the rename if one waits. Called without
 *  the lock, with the round's own descriptors. */
static int
s_round(const int fds[2], const char *from, const char *to, int *dir_retry, int *renamed)
{
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0 && fdatasync(fds[i]) != 0)
            return errno ? errno : EIO;
    if (*dir_retry && bk_journal_sync_dir(to) == 0) {
        *dir_retry = 0;
        *renamed = 1;
    }
    if (from) {
        int rc = bk_journal_install(from, to);
        if (rc < 0)
            return errno ? errno : EIO;
        *dir_retry = rc == 1; /* renamed; tell the loop once it lasts */
        *renamed = rc == 0;
    }
    return 0;
}

static void *
s_thread(void *arg)
{
    bk_syncer_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int work = !s->error && (s->want > s->done || s->from || s->dir_retry);
        if (s->stop)
            break;
        if (!work) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        int64_t delay = s->delay_us;
        if (delay > 0 && clock_mono_us() - s->last_end_us < delay) {
            /* back to back: let the next records join this sync */
            pthread_mutex_unlock(&s->mu);
            usleep((useconds_t)delay);
            pthread_mutex_lock(&s->mu);
        }
        uint64_t target = s->want;
        int fds[2] = {-1, -1}, error = 0;
        for (int i = 0; i < 2 && !error; i++)
            if (s->fds[i] >= 0 && (fds[i] = dup(s->fds[i])) < 0)
                error = errno;
        char *from = s->from, *to = s->to ? strdup(s->to) : NULL;
        if (s->to && !to)
            error = ENOMEM;
        int dir_retry = s->dir_retry, renamed = 0;
        s->from = NULL;
        pthread_mutex_unlock(&s->mu);

        if (!error)
            error = s_round(fds, from, to, &dir_retry, &renamed);
        for (int i = 0; i < 2; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        free(from);
        free(to);

        pthread_mutex_lock(&s->mu);
        s->last_end_us = clock_mono_us();
        if (error)
            s->error = error;
        else if (target > s->done)
            s->done = target;
        s->rounds++;
        s->dir_retry = dir_retry;
        if (renamed)
            s->renamed = 1;
        if (dir_retry && !error) {
            /* Retry the directory after a pause, not in a tight loop. */
            pthread_mutex_unlock(&s->mu);
            usleep(100000);
            pthread_mutex_lock(&s->mu);
        }
        uint64_t one = 1;
        (void)!write(s->efd, &one, sizeof one);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int
bk_syncer_start(bk_syncer_t **out, int64_t delay_us, char *err, size_t errlen)
{
    *out = NULL;
    bk_syncer_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->fds[0] = s->fds[1] = -1;
    s->delay_us = delay_us;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        bk_syncer_stop(&s);
        return -1;
    }
    /* The thread takes no signals: the loop reads them from its signalfd
     * (the mask is inherited; set here too in case the caller's is not). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, s_thread, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the syncer thread: %s", strerror(rc));
        bk_syncer_stop(&s);
        return -1;
    }
    pthread_setname_np(s->thread, "tc-syncer");

    s->started = 1;
    *out = s;
    return 0;
}

void
bk_syncer_stop(bk_syncer_t **s_p)
{
    bk_syncer_t *s = *s_p;
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (s->fds[i] >= 0)
            close(s->fds[i]);
    if (s->efd >= 0)
        close(s->efd);
    free(s->from);
    free(s->to);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    *s_p = NULL;
}

int
bk_syncer_fd(const bk_syncer_t *s)
{
    return s->efd;
}

int
bk_syncer_files(bk_syncer_t *s, int fd, int fd2)
{
    int a = fd >= 0 ? dup(fd) : -1, b = fd2 >= 0 ? dup(fd2) : -1;
    if ((fd >= 0 && a < 0) || (fd2 >= 0 && b < 0)) {
        int e = errno;
        if (a >= 0)
            close(a);
        if (b >= 0)
            close(b);
        errno = e;
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < 2; i++) /* a round in progress holds its own dups */
        if (s->fds[i] >= 0)
            close(s->fds[i]);
    s->fds[0] = a;
    s->fds[1] = b;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void
bk_syncer_want(bk_syncer_t *s, uint64_t lsn)
{
    pthread_mutex_lock(&s->mu);
    if (lsn > s->want) {
        s->want = lsn;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void
bk_syncer_rename(bk_syncer_t *s, const char *from, const char *to)
{
    char *f = strdup(from), *t = strdup(to);
    pthread_mutex_lock(&s->mu);
    free(s->from);
    free(s->to);
    s->from = f;
    s->to = t;
    if (!f || !t) {
        free(s->from);
        s->from = NULL;
        s->error = ENOMEM;
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int
bk_syncer_poll(bk_syncer_t *s, bk_synced_t *out)
{
    uint64_t n;
    (void)!read(s->efd, &n, sizeof n);
    pthread_mutex_lock(&s->mu);
    out->durable = s->done;
    out->rounds = s->rounds;
    out->renamed = s->renamed;
    s->renamed = 0;
    int error = s->error;
    pthread_mutex_unlock(&s->mu);
    if (error) {
        errno = error;
        return -1;
    }
    return 0;
}
