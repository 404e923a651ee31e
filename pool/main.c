/*  main.c: taskcast-worker: options, the kinds file, signals and the
 *  timer, the ZeroMQ context; the loop is loop.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cfg.h"
#include "clock.h"
#include "pool.h"
#include "version.h"

#define S_TICK_MS 50

enum { O_CONFIG, O_JOBS, O_NAME, O_CONCURRENCY, O_GRACE, O_HEARTBEAT, O_LOG_LEVEL, O_COUNT };

static const cfg_opt_t s_options[O_COUNT] = {
    [O_CONFIG] = {"config", "TASKCAST_POOL_CONFIG", NULL,
                  "the kinds file: one 'kind mode command...' per line (required)"},
    [O_JOBS] = {"jobs", "TASKCAST_JOBS", "tcp://127.0.0.1:5558",
                "the broker's jobs endpoint to connect (DEALER)"},
    [O_NAME] = {"name", "TASKCAST_POOL_NAME", NULL,
                "this worker's name in hello (default: HOST-PID)"},
    [O_CONCURRENCY] = {"concurrency", "TASKCAST_POOL_CONCURRENCY", "1",
                       "jobs run at once (1 to 1024)"},
    [O_GRACE] = {"grace-s", "TASKCAST_POOL_GRACE_S", "10",
                 "seconds from SIGTERM to SIGKILL for a child, and for running jobs to "
                 "finish when the worker stops"},
    [O_HEARTBEAT] = {"heartbeat-ms", "TASKCAST_POOL_HEARTBEAT_MS", "1000",
                     "heartbeat interval until the broker's welcome sets it (10 to 600000)"},
    [O_LOG_LEVEL] = {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug"},
};

static int
s_configure(pool_t *p, cfg_opt_t *opt, char *err, size_t errlen)
{
    log_level_t level;
    if (log_parse_level(opt[O_LOG_LEVEL].value, &level) != 0) {
        snprintf(err, errlen, "--log-level must be error, warn, info or debug");
        return -1;
    }
    log_init(&p->log, "taskcast-worker", level);
    uint64_t grace;
    if (cfg_parse_u64(opt[O_CONCURRENCY].value, 1, 1024, &p->concurrency) != 0) {
        snprintf(err, errlen, "--concurrency must be a whole number from 1 to 1024");
        return -1;
    }
    if (cfg_parse_u64(opt[O_GRACE].value, 0, 3600, &grace) != 0) {
        snprintf(err, errlen, "--grace-s must be a whole number from 0 to 3600");
        return -1;
    }
    if (cfg_parse_u64(opt[O_HEARTBEAT].value, 10, 600000, &p->hb_ms) != 0) {
        snprintf(err, errlen, "--heartbeat-ms must be a whole number from 10 to 600000");
        return -1;
    }
    p->grace_ms = (int64_t)grace * 1000;
    p->liveness = 3;
    p->endpoint = opt[O_JOBS].value;
    if (opt[O_NAME].value) {
        if (strlen(opt[O_NAME].value) == 0 || strlen(opt[O_NAME].value) >= 256) {
            snprintf(err, errlen, "--name must be 1 to 255 bytes");
            return -1;
        }
        snprintf(p->name, sizeof p->name, "%s", opt[O_NAME].value);
    }
    else {
        char host[200] = "worker";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(p->name, sizeof p->name, "%s-%d", host, (int)getpid());
    }
    if (!opt[O_CONFIG].value) {
        snprintf(err, errlen, "--config FILE is required (the kinds this worker runs)");
        return -1;
    }
    if (pool_config_load(&p->cfg, opt[O_CONFIG].value, err, errlen) != 0)
        return -1;
    p->jobs = calloc(p->concurrency, sizeof *p->jobs);
    if (!p->jobs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int
s_open(pool_t *p)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (p->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        log_error(&p->log, "signalfd: %s", strerror(errno));
        return -1;
    }
    p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {{0, S_TICK_MS * 1000000L}, {0, S_TICK_MS * 1000000L}};
    if (p->tfd < 0 || timerfd_settime(p->tfd, 0, &its, NULL) != 0) {
        log_error(&p->log, "timerfd: %s", strerror(errno));
        return -1;
    }
    if (pool_link_open(p, clock_mono_ms()) != 0) {
        log_error(&p->log, "--jobs %s", p->errbuf);
        return -1;
    }
    return 0;
}

static void
s_close(pool_t *p)
{
    pool_link_close(p, 1000); /* bye, release and done get a second to leave */
    if (p->sigfd >= 0)
        close(p->sigfd);
    if (p->tfd >= 0)
        close(p->tfd);
    pool_job_destroy_all(p);
    pool_config_free(&p->cfg);
    buf_free(&p->out);
    buf_free(&p->line);
    buf_free(&p->scratch);
}

int
main(int argc, char **argv)
{
    pool_t p;
    memset(&p, 0, sizeof p);
    p.sigfd = p.tfd = -1;
    buf_init(&p.out);
    buf_init(&p.line);
    buf_init(&p.scratch);
    log_init(&p.log, "taskcast-worker", LOG_INFO);
    cfg_opt_t opt[O_COUNT];
    memcpy(opt, s_options, sizeof opt);
    int rc = cfg_parse_main(opt, O_COUNT, argc, argv, 1, "taskcast-worker",
                            "taskcast-worker --config FILE [options]",
                            "Takes jobs from the broker's jobs endpoint and runs each as a child "
                            "process,\nreporting started, progress and done.");
    if (rc >= 0)
        return rc;
    char err[512];
    if (version_check_libs(err, sizeof err) != 0) {
        fprintf(stderr, "taskcast-worker: %s\n", err);
        return 1;
    }
    if (s_configure(&p, opt, err, sizeof err) != 0) {
        fprintf(stderr, "taskcast-worker: %s\n", err);
        pool_config_free(&p.cfg);
        free(p.jobs);
        return 2;
    }
    if (s_open(&p) != 0) {
        s_close(&p);
        return 1;
    }
    log_info(&p.log, "started name=%s jobs=%s kinds=%zu concurrency=%llu", p.name, p.endpoint,
             p.cfg.n, (unsigned long long)p.concurrency);
    rc = pool_loop_run(&p);
    log_info(&p.log, "stopped");
    s_close(&p);
    return rc == 0 ? 0 : 1;
}
