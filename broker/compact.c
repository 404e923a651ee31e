/*  compact.c: rewriting the journal without stopping ingest.
 *
 *  The journal grows by one record per event. Once it is twice the size it
 *  had after its last rewrite, twice the size a rewrite would leave (the
 *  state's size: no rewrite that reclaims less than half), and over
 *  --journal-compact-bytes, it is rewritten as the current state: the idempotency window, users, task
 *  states and history (persist.c). That state can be hundreds of megabytes
 *  and writing it takes seconds, so the loop does not write it. As Redis
 *  rewrites its append-only file, a fork()ed child gets a copy-on-write image
 *  of the state at one moment, the journal's end F at that moment, and
 *  writes the image into PATH.compact and syncs it, while the parent goes
 *  on recording and appending to the journal. The phases (bk_compact_t):
 *
 *    CHILD  the child writes the snapshot as of F;
 *    TAIL   the parent copies the journal's records after F into the new
 *           file, a few MiB per loop turn (copy_file_range: the kernel
 *           copies from the page cache), until it has caught up;
 *    DUAL   every batch is written to both files; the syncer syncs both,
 *           renames the new file over the journal and syncs the directory;
 *           then the new file is the journal and the old one is closed.
 *
 *  A crash (kill -9, power) at any point restarts from a complete journal:
 *  until the rename, PATH is the old journal, which got every record, and
 *  PATH.compact is removed at start; the rename is atomic, and from the
 *  moment it can be seen PATH is the new file: the state as of F, every
 *  record after F, and (written to both) everything since. Under --fsync
 *  batch, answers wait for a sync covering both files, so whichever file
 *  the directory names after a machine crash holds every acknowledged event.
 *
 *  Why fork and not a thread: a thread would need a frozen view of a state
 *  the loop keeps changing (copying it would stop the loop as long as
 *  writing it does); fork gives one for the price of its page tables, and
 *  the pages the parent changes meanwhile are copied lazily by the kernel.
 *  The child touches nothing it shares with the parent but the new file: no
 *  ZeroMQ (its threads do not exist in the child; its descriptors are left
 *  alone), no syncer, no logging; it leaves with _exit() (no atexit
 *  handlers, no leak check under LeakSanitizer). It dies with the parent
 *  (PR_SET_PDEATHSIG), so a killed broker's restart never meets it.
 */
#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "clock.h"

#define S_COPY_STEP  (8u << 20) /* bytes of tail copied per loop turn */
#define S_RETRY_MS   30000      /* after a failure, the next attempt */
#define S_IOPRIO_WHO_PROCESS 1
#define S_IOPRIO_IDLE        (3 << 13) /* class idle (linux/ioprio.h) */

/*  The child: write the state, sync it, leave. Never returns. */
static void
s_child(broker_t *bk, pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(2);
    /* Below the broker: the child takes the CPU and the disk the broker
     * leaves (on a busy machine a compaction takes longer, ingest does not
     * wait for it). */
    struct sched_param idle = {0};
    if (sched_setscheduler(0, SCHED_IDLE, &idle) != 0)
        (void)setpriority(PRIO_PROCESS, 0, 19);
    (void)syscall(SYS_ioprio_set, S_IOPRIO_WHO_PROCESS, 0, S_IOPRIO_IDLE);
    /* The journal's lock is shared with the parent's descriptor: let go of
     * it, so only the parent holds the journal. */
    close(bk_journal_fd(bk->journal));
    bk_journal_t *w = bk_journal_next_writer(bk->journal);
    int ok = w && bk_persist_write_state(bk, w) == 0;
    if (w && bk_journal_writer_close(&w) != 0)
        ok = 0;
    _exit(ok ? 0 : 1);
}

static void
s_fail(broker_t *bk, const char *what)
{
    bk_compact_t *c = &bk->compact;
    log_error(&bk->log, "journal compaction failed: %s (the journal keeps growing; retrying in "
              "%d s)", what, S_RETRY_MS / 1000);
    bk_journal_next_abort(bk->journal);
    c->phase = BK_COMPACT_IDLE;
    c->pid = 0;
    c->not_before_ms = clock_mono_ms() + S_RETRY_MS;
}

static void
s_start(broker_t *bk)
{
    bk_compact_t *c = &bk->compact;
    char err[256];
    /* The snapshot holds every record written so far: the copy of the
     * tail starts after them. */
    if (bk_journal_flush(bk->journal) != 0)
        return s_fail(bk, strerror(errno));
    if (bk_journal_next_open(bk->journal, err, sizeof err) != 0)
        return s_fail(bk, err);
    c->before = c->copied = bk_journal_size(bk->journal);
    c->started_ms = clock_mono_ms();
    pid_t parent = getpid();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0)
        return s_fail(bk, strerror(errno));
    if (pid == 0)
        s_child(bk, parent);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c->pid = pid;
    c->phase = BK_COMPACT_CHILD;
    log_info(&bk->log, "journal compaction started: %" PRIu64 " bytes, child %d (fork: %.1f ms)",
             c->before, (int)pid,
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

void
bk_compact_maybe(broker_t *bk)
{
    bk_compact_t *c = &bk->compact;
    if (!bk->journal || c->phase != BK_COMPACT_IDLE || bk->now_ms < c->not_before_ms ||
        !bk_journal_wants_rewrite(bk->journal, bk->journal_min))
        return;
    /* Only if it frees at least half the file: when the state (mostly the
     * history) is as large as the journal, a rewrite would cost a full
     * write and reclaim nothing. */
    if (bk_journal_size(bk->journal) < 2 * bk_persist_estimate(bk))
        return;
    s_start(bk);
}

/*  Caught up: from now on every batch goes to both files; the syncer makes
 *  the new file durable and renames it. */
static void
s_dual(broker_t *bk)
{
    bk_compact_t *c = &bk->compact;
    bk_journal_t *j = bk->journal;
    bk_journal_next_dual(j);
    c->phase = BK_COMPACT_DUAL;
    if (bk->syncer) {
        if (bk_syncer_files(bk->syncer, bk_journal_fd(j), bk_journal_next_fd(j)) != 0)
            return s_fail(bk, strerror(errno));
        bk_syncer_rename(bk->syncer, bk_journal_next_path(j), bk_journal_path(j));
        return;
    }
    /* No syncer (tests): on this thread. */
    if (fdatasync(bk_journal_next_fd(j)) != 0 ||
        bk_journal_install(bk_journal_next_path(j), bk_journal_path(j)) < 0)
        return s_fail(bk, strerror(errno));
    bk_compact_renamed(bk);
}

void
bk_compact_step(broker_t *bk)
{
    bk_compact_t *c = &bk->compact;
    if (c->phase != BK_COMPACT_TAIL)
        return;
    int rc = bk_journal_next_copy(bk->journal, &c->copied, S_COPY_STEP);
    if (rc < 0)
        return s_fail(bk, strerror(errno));
    if (rc == 1)
        s_dual(bk);
}

void
bk_compact_reap(broker_t *bk)
{
    bk_compact_t *c = &bk->compact;
    int status;
    if (c->phase != BK_COMPACT_CHILD || waitpid(c->pid, &status, WNOHANG) != c->pid)
        return;
    c->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char what[80];
        snprintf(what, sizeof what, "the child writing it %s %d",
                 WIFEXITED(status) ? "exited with" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return s_fail(bk, what);
    }
    c->phase = BK_COMPACT_TAIL;
    bk_compact_step(bk);
}

void
bk_compact_renamed(broker_t *bk)
{
    bk_compact_t *c = &bk->compact;
    if (c->phase != BK_COMPACT_DUAL)
        return;
    bk_journal_next_switch(bk->journal);
    if (bk->syncer && bk_syncer_files(bk->syncer, bk_journal_fd(bk->journal), -1) != 0) {
        log_error(&bk->log, "journal: cannot hand the new file to the syncer: %s; stopping",
                  strerror(errno));
        bk->stop = 1;
        bk->exit_code = 1;
    }
    c->phase = BK_COMPACT_IDLE;
    bk->stats.compactions++;
    log_info(&bk->log, "journal compacted: %" PRIu64 " -> %" PRIu64 " bytes in %lld ms", c->before,
             bk_journal_size(bk->journal), (long long)(clock_mono_ms() - c->started_ms));
}

void
bk_compact_abort(broker_t *bk)
{
    bk_compact_t *c = &bk->compact;
    if (c->phase == BK_COMPACT_CHILD && c->pid > 0) {
        kill(c->pid, SIGKILL);
        (void)waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
    /* DUAL: the journal's close removes the new file if it was not renamed
     * yet; both files got every record, so either way PATH is complete. */
    if (c->phase != BK_COMPACT_DUAL && bk->journal)
        bk_journal_next_abort(bk->journal);
    c->phase = BK_COMPACT_IDLE;
}

int
bk_compact_busy(const broker_t *bk)
{
    return bk->compact.phase != BK_COMPACT_IDLE;
}
