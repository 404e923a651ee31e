/*  main.c: taskcast-broker: configuration, sockets, start and stop (the
 *  event loop is loop.c). */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "broker.h"
#include "cfg.h"
#include "clock.h"
#include "version.h"

/*  Bigger worker messages are not read at all (ZeroMQ drops the connection);
 *  anything between EVENT_WIRE_MAX and this gets a too_large answer. */
#define S_INGEST_MSG_MAX (32 << 20)

enum {
    O_INGEST,
    O_FANOUT,
    O_SYNC,
    O_JOBS,
    O_MAX_QUEUED,
    O_LOG_LEVEL,
    O_RETENTION,
    O_HISTORY,
    O_HISTORY_BYTES,
    O_STATE_BYTES,
    O_TASKS_PER_USER,
    O_MAX_USERS,
    O_DEDUP,
    O_JOURNAL,
    O_JOURNAL_COMPACT,
    O_FSYNC,
    O_VERSION,
    O_COUNT
};

/*  The option table (defaults); main() resolves a copy that the context
 *  points to. */
static const cfg_opt_t s_options[O_COUNT] = {
    [O_INGEST] = {"ingest", "TASKCAST_INGEST", "tcp://127.0.0.1:5555",
                  "ZeroMQ endpoint to bind for workers (ROUTER)"},
    [O_FANOUT] = {"fanout", "TASKCAST_FANOUT", "tcp://127.0.0.1:5556",
                  "ZeroMQ endpoint to bind for gateways' subscriptions (XPUB)"},
    [O_SYNC] = {"sync", "TASKCAST_SYNC", "tcp://127.0.0.1:5557",
                "ZeroMQ endpoint to bind for gateways' snapshot/replay requests (ROUTER)"},
    [O_JOBS] = {"jobs", "TASKCAST_JOBS", "tcp://127.0.0.1:5558",
                "ZeroMQ endpoint to bind for job submitters and pool workers (ROUTER)"},
    [O_MAX_QUEUED] = {"max-queued", "TASKCAST_MAX_QUEUED", "100000",
                      "jobs queued (all kinds together) before submits are refused (queue_full)"},
    [O_LOG_LEVEL] = {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug"},
    [O_RETENTION] = {"retention", "TASKCAST_RETENTION", "3600",
                     "seconds a finished task (and an idle user) stays in the state"},
    [O_HISTORY] = {"history", "TASKCAST_HISTORY", "1000",
                   "events kept per user for resuming clients (0: none)"},
    [O_HISTORY_BYTES] = {"history-bytes", "TASKCAST_HISTORY_BYTES", "268435456",
                         "bytes of history kept for all users together"},
    [O_STATE_BYTES] = {"state-bytes", "TASKCAST_STATE_BYTES", "1073741824",
                       "bytes of task state before new events are refused (overloaded)"},
    [O_TASKS_PER_USER] = {"max-tasks-per-user", "TASKCAST_MAX_TASKS_PER_USER", "10000",
                          "live tasks one user may have (too_many_tasks past it)"},
    [O_MAX_USERS] = {"max-users", "TASKCAST_MAX_USERS", "1000000",
                     "users kept in the state (idle users make room first)"},
    [O_DEDUP] = {"dedup-window", "TASKCAST_DEDUP_WINDOW", "1048576",
                 "(producer, pseq) pairs remembered to recognise resends"},
    [O_JOURNAL] = {"journal", "TASKCAST_JOURNAL", NULL,
                   "append-only journal file: a restart loses nothing (default: memory only)"},
    [O_JOURNAL_COMPACT] = {"journal-compact-bytes", "TASKCAST_JOURNAL_COMPACT_BYTES", "67108864",
                           "compact the journal once it is this big and twice its compact size"},
    [O_FSYNC] = {"fsync", "TASKCAST_FSYNC", "batch",
                 "with a journal, when an event is acknowledged: batch[:US] (once on disk; US: "
                 "group-commit delay, default 0), interval[:MS] (once written; synced every MS, default 1000) or never "
                 "(once written)"},
    [O_VERSION] = {"version", NULL, NULL, "print the version and libraries and exit", 1},
};

static int
s_u64(const broker_t *bk, const char *flag, uint64_t min, uint64_t max, uint64_t *out, char *err,
      size_t errlen)
{
    const char *v = cfg_value(bk->opt, O_COUNT, flag);
    if (cfg_parse_u64(v, min, max, out) != 0) {
        snprintf(err, errlen, "--%s must be a whole number from %llu to %llu, not '%s'", flag,
                 (unsigned long long)min, (unsigned long long)max, v ? v : "");
        return -1;
    }
    return 0;
}

static int
s_configure(broker_t *bk, bk_limits_t *lim, uint64_t *dedup, uint64_t *max_queued, char *err,
            size_t errlen)
{
    log_level_t level;
    if (log_parse_level(bk->opt[O_LOG_LEVEL].value, &level) != 0) {
        snprintf(err, errlen, "--log-level must be error, warn, info or debug");
        return -1;
    }
    log_init(&bk->log, "taskcast-broker", level);
    uint64_t retention_s, history, tasks;
    if (s_u64(bk, "retention", 0, 10ull * 365 * 86400, &retention_s, err, errlen) ||
        s_u64(bk, "history", 0, 1000000, &history, err, errlen) ||
        s_u64(bk, "history-bytes", 0, UINT64_MAX / 2, &lim->history_bytes, err, errlen) ||
        s_u64(bk, "state-bytes", 1, UINT64_MAX / 2, &lim->state_bytes, err, errlen) ||
        s_u64(bk, "max-tasks-per-user", 1, UINT32_MAX, &tasks, err, errlen) ||
        s_u64(bk, "max-users", 1, UINT64_MAX / 2, &lim->max_users, err, errlen) ||
        s_u64(bk, "dedup-window", 1, 1u << 28, dedup, err, errlen) ||
        s_u64(bk, "max-queued", 1, 100000000, max_queued, err, errlen) ||
        s_u64(bk, "journal-compact-bytes", 4096, UINT64_MAX / 4, &bk->journal_min, err, errlen))
        return -1;
    if (bk_commit_parse_policy(bk->opt[O_FSYNC].value, &bk->commit.policy,
                               &bk->commit.interval_ms, &bk->commit.delay_us) != 0) {
        snprintf(err, errlen, "--fsync must be batch, batch:US (US from 0 to 10000), never, "
                 "interval or interval:MS (MS from 1 to 3600000), not '%s'",
                 bk->opt[O_FSYNC].value ? bk->opt[O_FSYNC].value : "");
        return -1;
    }
    lim->tasks_per_user = (uint32_t)tasks;
    lim->retention_ms = retention_s * 1000;
    lim->history_per_user = (uint32_t)history;
    return 0;
}

static int
s_bind(broker_t *bk, bk_zsock_t **sock, const char *name, uint64_t max_frame, bk_zsub_fn on_sub,
       const char *endpoint)
{
    char err[256];
    *sock = bk_zsock_bind(bk, bk->epfd, endpoint, name, max_frame, on_sub, err, sizeof err);
    if (!*sock) {
        log_error(&bk->log, "--%s: %s", name, err);
        return -1;
    }
    return 0;
}

static int
s_open(broker_t *bk)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD); /* a compaction's child ended */
    /* Blocked before ZeroMQ (and the syncer) start their threads, so they
     * inherit the mask and the signals arrive only through the signalfd. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (bk->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        log_error(&bk->log, "signalfd: %s", strerror(errno));
        return -1;
    }
    bk->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (bk->epfd < 0) {
        log_error(&bk->log, "epoll: %s", strerror(errno));
        return -1;
    }
    if (s_bind(bk, &bk->ingest, "ingest", S_INGEST_MSG_MAX, NULL, bk->opt[O_INGEST].value) ||
        s_bind(bk, &bk->fanout, "fanout", 4096, bk_fanout_on_sub, bk->opt[O_FANOUT].value) ||
        s_bind(bk, &bk->sync, "sync", 4096, NULL, bk->opt[O_SYNC].value) ||
        s_bind(bk, &bk->jobsock, "jobs", S_INGEST_MSG_MAX, NULL, bk->opt[O_JOBS].value))
        return -1;
    return 0;
}

static int
s_start_syncer(broker_t *bk, char *err, size_t errlen)
{
    if (bk_syncer_start(&bk->syncer, (int64_t)bk->commit.delay_us, err, errlen) != 0)
        return -1;
    if (bk_syncer_files(bk->syncer, bk_journal_fd(bk->journal), -1) != 0) {
        snprintf(err, errlen, "syncer: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/*  A clean stop: what waits for the disk is synced here and answered. */
static void
s_finish(broker_t *bk)
{
    if (!bk->journal || bk->exit_code != 0 || bk->commit.count == 0)
        return;
    if (bk_journal_flush(bk->journal) != 0 || bk_journal_sync(bk->journal) != 0) {
        log_error(&bk->log, "journal sync failed at exit: %s", strerror(errno));
        bk->exit_code = 1;
        return;
    }
    bk->commit.written = bk->commit.durable = bk_journal_written(bk->journal);
    bk_commit_release(bk);
    bk_zsrv_flush(bk); /* best effort: what the kernel takes now */
}

static void
s_close(broker_t *bk)
{
    /* The compaction's child first, then the syncer (a rename it may be
     * doing finishes), then the journal, which knows what to keep. */
    bk_compact_abort(bk);
    bk_syncer_stop(&bk->syncer);
    bk_commit_destroy(&bk->commit);
    bk_zsock_close(&bk->ingest);
    bk_zsock_close(&bk->fanout);
    bk_zsock_close(&bk->sync);
    bk_zsock_close(&bk->jobsock);
    bk_jobs_destroy(&bk->jobs);
    if (bk->epfd >= 0)
        close(bk->epfd);
    if (bk->sigfd >= 0)
        close(bk->sigfd);
    bk_journal_close(&bk->journal);
    bk_dedup_destroy(&bk->dedup);
    bk_state_destroy(&bk->state);
    buf_free(&bk->scratch);
}

int
main(int argc, char **argv)
{
    broker_t bk;
    memset(&bk, 0, sizeof bk);
    bk.sigfd = bk.epfd = -1;
    log_init(&bk.log, "taskcast-broker", LOG_INFO);
    char err[256];
    cfg_opt_t opt[O_COUNT];
    memcpy(opt, s_options, sizeof opt);
    bk.opt = opt;
    int rc =
        cfg_parse_main(opt, O_COUNT, argc, argv, 1, "taskcast-broker", "taskcast-broker [options]",
                       "Receives task events from workers, numbers them per user, keeps the "
                       "latest state\nof every task and a bounded history, and publishes "
                       "them to gateways.");
    if (rc >= 0)
        return rc;
    if (version_check_libs(err, sizeof err) != 0) {
        fprintf(stderr, "taskcast-broker: %s\n", err);
        return 1;
    }
    if (opt[O_VERSION].value) {
        version_describe(err, sizeof err);
        printf("%s\n", err);
        return 0;
    }
    bk_limits_t limits;
    uint64_t dedup = 0, max_queued = 0;
    if (s_configure(&bk, &limits, &dedup, &max_queued, err, sizeof err) != 0) {
        fprintf(stderr, "taskcast-broker: %s\n", err);
        return 2;
    }
    bk.started_ms = clock_mono_ms();
    if (bk_state_init(&bk.state, &limits) != 0 ||
        !(bk.jobs = bk_jobs_new((uint32_t)max_queued))) {
        log_error(&bk.log, "out of memory at start");
        s_close(&bk);
        return 1;
    }
    unsigned char boot[8];
    randombytes_buf(boot, sizeof boot);
    sodium_bin2hex(bk.boot, sizeof bk.boot, boot, sizeof boot);
    const char *journal = opt[O_JOURNAL].value;
    if (journal ? bk_persist_open(&bk, journal, (uint32_t)dedup, err, sizeof err) != 0
                : !(bk.dedup = bk_dedup_new((uint32_t)dedup, NULL))) {
        if (!journal)
            snprintf(err, sizeof err, "out of memory at start");
        log_error(&bk.log, "%s", err);
        s_close(&bk);
        return 1;
    }
    if (journal && s_start_syncer(&bk, err, sizeof err) != 0) {
        log_error(&bk.log, "%s", err);
        s_close(&bk);
        return 1;
    }
    if (s_open(&bk) != 0) {
        s_close(&bk);
        return 1;
    }
    version_describe(err, sizeof err);
    log_info(&bk.log, "%s started: ingest %s, fanout %s, sync %s, jobs %s, epoch %s", err,
             opt[O_INGEST].value, opt[O_FANOUT].value, opt[O_SYNC].value, opt[O_JOBS].value,
             bk.state.epoch);
    if (journal)
        log_info(&bk.log, "journal %s, --fsync %s", journal, opt[O_FSYNC].value);
    bk_loop_run(&bk);
    s_finish(&bk);
    log_info(&bk.log,
             "stopped: %llu events accepted, %llu rejected, %llu duplicates; %llu journal syncs, "
             "%llu compactions",
             (unsigned long long)bk.stats.accepted, (unsigned long long)bk.stats.rejected,
             (unsigned long long)bk.stats.duplicates, (unsigned long long)bk.stats.fsyncs,
             (unsigned long long)bk.stats.compactions);
    s_close(&bk);
    return bk.exit_code;
}
