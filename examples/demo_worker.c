/*  demo_worker.c: taskcast-demo-worker keeps a demo user's task list busy,
 *  forever, in one of two modes:
 *
 *    --mode jobs (the default): submits a real job to the worker pool every
 *      --every-ms with tc_submit() (taskcast_jobs.h): mostly `render` (a
 *      child per job that reports its steps), now and then `thumb` (a kept
 *      child), about one in six made to fail. A taskcast-worker serving those
 *      kinds (examples/jobs/pool.conf) runs them; the user sees each one
 *      queued, running with progress, and finished.
 *    --mode fake: publishes fake task events itself: queued -> running
 *      (progress in steps of 5-15, a message each step) -> succeeded, or now
 *      and then failed. It shows what a worker does with the event API
 *      (taskcast.h); no pool needed.
 *
 *  SIGINT and SIGTERM are blocked and waited for with sigtimedwait(), which
 *  is also the sleep between steps: no handler, no global flag. On a signal
 *  the tasks still running are reported cancelled and the program exits 0.
 */
#include <errno.h>
#include <msgpack.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cfg.h"
#include "clock.h"
#include "log.h"
#include "taskcast.h"
#include "taskcast_jobs.h"
#include "version.h"
#include "wire.h"

#define S_NAME      "taskcast-demo-worker"
#define S_MAX_TASKS 100

static const cfg_opt_t s_cfg[] = {
    {"mode", NULL, "jobs", "jobs: submit real jobs to the pool; fake: publish fake events", 0,
     NULL},
    {"user", NULL, "demo", "user id the tasks belong to", 0, NULL},
    {"jobs", "TASKCAST_JOBS", "tcp://127.0.0.1:5558", "broker jobs endpoint (--mode jobs)", 0,
     NULL},
    {"every-ms", NULL, "3000", "time between two submits (--mode jobs; 100..3600000)", 0, NULL},
    {"ingest", "TASKCAST_INGEST", "tcp://127.0.0.1:5555", "broker ingest endpoint (--mode fake)", 0,
     NULL},
    {"tasks", NULL, "3", "fake tasks running at the same time (--mode fake; 1..100)", 0, NULL},
    {"step-ms", NULL, "1000", "time between two progress steps (--mode fake; 50..60000)", 0, NULL},
    {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug", 0, NULL},
};

#define S_NOPTS (sizeof s_cfg / sizeof s_cfg[0])

typedef struct {
    const char *name;   /* task id prefix */
    int units;          /* how many units the fake work has */
    const char *before; /* running message: "<before> DONE of UNITS<after>" */
    const char *after;
} s_kind_t;

static const s_kind_t s_kinds[] = {
    {"render", 240, "rendering frame", ""},
    {"import", 50000, "imported", " rows"},
    {"train", 20, "epoch", ""},
};

#define S_NKINDS (sizeof s_kinds / sizeof s_kinds[0])

static const char *const s_failures[] = {
    "simulated failure: the input file is corrupt",
    "simulated failure: out of disk space",
    "simulated failure: the upstream service timed out",
};

typedef enum { S_IDLE, S_QUEUED, S_RUNNING } s_phase_t;

typedef struct {
    char task_id[64];
    const s_kind_t *kind;
    s_phase_t phase;
    int progress;
    int wait; /* steps to stay idle before the next task */
    int64_t started_ms;
} s_task_t;

typedef struct {
    log_t log;
    cfg_opt_t cfg[S_NOPTS]; /* a copy of s_cfg that cfg_parse fills */
    const char *user;
    const char *ingest;
    const char *jobs_ep;
    int jobs_mode; /* --mode jobs */
    long every_ms;
    tc_client_t *client; /* --mode fake */
    tc_jobs_t *jobs;     /* --mode jobs */
    s_task_t tasks[S_MAX_TASKS];
    size_t ntasks;
    unsigned next_id;
    long step_ms;
    sigset_t signals; /* SIGINT, SIGTERM: blocked, waited for */
    int stop;
    int broker_ok; /* the last publish was answered */
    buf_t data;    /* msgpack of the current event's data, or of a job's args */
} s_demo_t;

/*  data: {"kind": "render", "done": 120, "total": 240} */
static void
s_pack_data(s_demo_t *self, const s_task_t *t, int done)
{
    msgpack_packer pk;
    buf_reset(&self->data);
    msgpack_packer_init(&pk, &self->data, buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    wire_pack_str(&pk, "kind");
    wire_pack_str(&pk, t->kind->name);
    wire_pack_str(&pk, "done");
    msgpack_pack_int(&pk, done);
    wire_pack_str(&pk, "total");
    msgpack_pack_int(&pk, t->kind->units);
}

/*  Sends one event for t; logs a failure and goes on (a demo never stops
 *  for a broker that is away: the next step tries again). */
static void
s_publish(s_demo_t *self, const s_task_t *t, const char *status, const char *message, int with_data)
{
    tc_event_t ev = {.task_id = t->task_id,
                     .user_id = self->user,
                     .status = status,
                     .has_progress = 1,
                     .progress = t->progress,
                     .message = message};
    if (with_data && buf_ok(&self->data) && self->data.len) {
        ev.data = self->data.data;
        ev.data_len = self->data.len;
    }
    tc_reply_t reply;
    int rc = tc_publish(self->client, &ev, &reply);
    self->broker_ok = rc == TC_OK || rc == TC_EREJECTED;
    if (rc == TC_OK)
        log_debug(&self->log, "task=%s status=%s progress=%d seq=%llu", t->task_id, status,
                  t->progress, (unsigned long long)reply.seq);
    else if (rc == TC_EREJECTED)
        log_warn(&self->log, "task=%s status=%s rejected: %s: %s", t->task_id, status, reply.error,
                 reply.detail);
    else
        log_warn(&self->log, "task=%s status=%s not published: %s", t->task_id, status,
                 tc_strerror(rc));
}

static void
s_start(s_demo_t *self, s_task_t *t)
{
    t->kind = &s_kinds[self->next_id % S_NKINDS];
    snprintf(t->task_id, sizeof t->task_id, "%s-%u", t->kind->name, self->next_id++);
    t->phase = S_QUEUED;
    t->progress = 0;
    t->started_ms = clock_mono_ms();
    log_info(&self->log, "task started: task=%s user=%s", t->task_id, self->user);
    s_publish(self, t, "queued", "waiting for a worker", 0);
}

static void
s_finish(s_demo_t *self, s_task_t *t)
{
    long secs = (long)((clock_mono_ms() - t->started_ms + 500) / 1000);
    char message[128];
    const char *status;
    if (randombytes_uniform(6) == 0) { /* about one task in six fails */
        status = "failed";
        snprintf(message, sizeof message, "%s",
                 s_failures[randombytes_uniform(sizeof s_failures / sizeof s_failures[0])]);
    }
    else {
        status = "succeeded";
        t->progress = 100;
        snprintf(message, sizeof message, "done in %ld s", secs);
    }
    s_publish(self, t, status, message, 0);
    log_info(&self->log, "task ended: task=%s status=%s after %ld s", t->task_id, status, secs);
    t->phase = S_IDLE;
    t->wait = 1 + (int)randombytes_uniform(3);
}

/*  Moves one task one step forward. */
static void
s_step(s_demo_t *self, s_task_t *t)
{
    char message[128];
    switch (t->phase) {
    case S_IDLE:
        if (t->wait > 0)
            t->wait--;
        else
            s_start(self, t);
        break;
    case S_QUEUED:
        t->phase = S_RUNNING;
        s_pack_data(self, t, 0);
        s_publish(self, t, "running", "started", 1);
        break;
    case S_RUNNING: {
        int step = 5 + (int)randombytes_uniform(11);
        if (t->progress + step >= 100) {
            s_finish(self, t);
            break;
        }
        t->progress += step;
        int done = t->kind->units * t->progress / 100;
        snprintf(message, sizeof message, "%s %d of %d%s", t->kind->before, done, t->kind->units,
                 t->kind->after);
        s_pack_data(self, t, done);
        s_publish(self, t, "running", message, 1);
        break;
    }
    }
}

/*  Waits up to ms for SIGINT/SIGTERM; sets stop if one came. */
static void
s_sleep(s_demo_t *self, long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    int sig = sigtimedwait(&self->signals, NULL, &ts);
    if (sig > 0) {
        log_info(&self->log, "stopping on %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
        self->stop = 1;
    }
}

/*  Reports the tasks still under way as cancelled (if the broker is there). */
static void
s_cancel_all(s_demo_t *self)
{
    for (size_t i = 0; i < self->ntasks && self->broker_ok; i++) {
        s_task_t *t = &self->tasks[i];
        if (t->phase == S_IDLE)
            continue;
        s_publish(self, t, "cancelled", "the demo worker stopped", 0);
        log_info(&self->log, "task ended: task=%s status=cancelled", t->task_id);
    }
}

/* ---------------------------------------------------------------- --mode jobs */

/*  args of the next job (in self->data) and its kind: render {"steps": 5..20,
 *  "delay": 0.2..0.5} three times in four, else thumb {"delay": 1..2}; about
 *  one job in six is made to fail (render exits 1, thumb reports an error). */
static const char *
s_pack_job(s_demo_t *self)
{
    int thumb = self->next_id % 4 == 3;
    int fail = randombytes_uniform(6) == 0;
    msgpack_packer pk;
    buf_reset(&self->data);
    msgpack_packer_init(&pk, &self->data, buf_msgpack_write);
    msgpack_pack_map(&pk, (thumb ? 1 : 2) + (fail ? 1 : 0));
    if (thumb) {
        wire_pack_str(&pk, "delay");
        msgpack_pack_double(&pk, 1.0 + 0.5 * randombytes_uniform(3));
        if (fail) {
            wire_pack_str(&pk, "fail");
            wire_pack_str(&pk, "simulated failure: the image is corrupt");
        }
        return "thumb";
    }
    wire_pack_str(&pk, "steps");
    msgpack_pack_int(&pk, 5 + (int)randombytes_uniform(16));
    wire_pack_str(&pk, "delay");
    msgpack_pack_double(&pk, 0.2 + 0.1 * randombytes_uniform(4));
    if (fail) {
        wire_pack_str(&pk, "exit");
        msgpack_pack_int(&pk, 1);
    }
    return "render";
}

/*  Submits one job; logs a refusal or a broker that is away and goes on
 *  (the next one tries again). */
static void
s_submit(s_demo_t *self)
{
    char task_id[64];
    const char *kind = s_pack_job(self);
    snprintf(task_id, sizeof task_id, "%s-%u", kind, self->next_id++);
    if (!buf_ok(&self->data)) {
        log_warn(&self->log, "task=%s not submitted: out of memory", task_id);
        return;
    }
    tc_job_t job = {.kind = kind,
                    .user_id = self->user,
                    .task_id = task_id,
                    .args = self->data.data,
                    .args_len = self->data.len,
                    .timeout_s = 120,
                    .max_retries = -1};
    tc_job_reply_t reply;
    int rc = tc_submit(self->jobs, &job, &reply);
    if (rc == TC_OK)
        log_info(&self->log, "job submitted: task=%s kind=%s user=%s", reply.task_id, kind,
                 self->user);
    else if (rc == TC_EREJECTED)
        log_warn(&self->log, "task=%s kind=%s refused: %s: %s", task_id, kind, reply.error,
                 reply.detail);
    else
        log_warn(&self->log, "task=%s kind=%s not submitted: %s", task_id, kind, tc_strerror(rc));
}

static int
s_run_jobs(s_demo_t *self)
{
    tc_options_t opts = {.endpoint = self->jobs_ep, .timeout_ms = 1000, .retries = 2};
    int rc = tc_jobs_new(&self->jobs, &opts);
    if (rc != TC_OK) {
        log_error(&self->log, "cannot create the jobs client for %s: %s", self->jobs_ep,
                  tc_strerror(rc));
        return rc == TC_EINVAL ? 2 : 1;
    }
    log_info(&self->log, "submitting a job every %ld ms for user=%s via %s", self->every_ms,
             self->user, self->jobs_ep);
    while (!self->stop) {
        s_submit(self);
        s_sleep(self, self->every_ms);
    }
    tc_jobs_destroy(&self->jobs);
    return 0;
}

/* ---------------------------------------------------------------- --mode fake */

static int
s_run_fake(s_demo_t *self)
{
    /* Short waits so a signal is never kept waiting for long. */
    tc_options_t opts = {.endpoint = self->ingest, .timeout_ms = 1000, .retries = 2};
    int rc = tc_client_new(&self->client, &opts);
    if (rc != TC_OK) {
        log_error(&self->log, "cannot create the client for %s: %s", self->ingest, tc_strerror(rc));
        return rc == TC_EINVAL ? 2 : 1;
    }
    log_info(&self->log, "running %zu fake tasks for user=%s via %s as producer=%s", self->ntasks,
             self->user, self->ingest, tc_client_producer(self->client));
    for (size_t i = 0; i < self->ntasks; i++)
        self->tasks[i].wait = (int)i; /* staggered starts */
    self->broker_ok = 1;
    while (!self->stop) {
        for (size_t i = 0; i < self->ntasks && !self->stop; i++) {
            s_step(self, &self->tasks[i]);
            s_sleep(self, 0); /* a publish may have waited: look for a signal */
        }
        if (!self->stop)
            s_sleep(self, self->step_ms);
    }
    s_cancel_all(self);
    tc_client_destroy(&self->client);
    return 0;
}

/* ---------------------------------------------------------------- main */

static int
s_configure(s_demo_t *self, int argc, char **argv)
{
    int rc = cfg_parse_main(self->cfg, S_NOPTS, argc, argv, 1, S_NAME, S_NAME " [options]",
                            "Keeps a demo user's tasks busy, forever: submits a real job to the "
                            "worker pool\nevery --every-ms (--mode jobs), or publishes fake "
                            "tasks' progress itself\n(--mode fake). Stops on SIGINT or SIGTERM.");
    if (rc >= 0)
        return rc;
    log_level_t level;
    const char *text = cfg_value(self->cfg, S_NOPTS, "log-level");
    if (log_parse_level(text, &level) != 0) {
        fprintf(stderr, "%s: --log-level must be error, warn, info or debug, not '%s'\n", S_NAME,
                text);
        return 2;
    }
    log_init(&self->log, S_NAME, level);
    text = cfg_value(self->cfg, S_NOPTS, "mode");
    if (strcmp(text, "jobs") != 0 && strcmp(text, "fake") != 0) {
        fprintf(stderr, "%s: --mode must be jobs or fake, not '%s'\n", S_NAME, text);
        return 2;
    }
    self->jobs_mode = strcmp(text, "jobs") == 0;
    uint64_t v;
    text = cfg_value(self->cfg, S_NOPTS, "every-ms");
    if (cfg_parse_u64(text, 100, 3600000, &v) != 0) {
        fprintf(stderr, "%s: --every-ms must be 100..3600000, not '%s'\n", S_NAME, text);
        return 2;
    }
    self->every_ms = (long)v;
    text = cfg_value(self->cfg, S_NOPTS, "tasks");
    if (cfg_parse_u64(text, 1, S_MAX_TASKS, &v) != 0) {
        fprintf(stderr, "%s: --tasks must be 1..%d, not '%s'\n", S_NAME, S_MAX_TASKS, text);
        return 2;
    }
    self->ntasks = (size_t)v;
    text = cfg_value(self->cfg, S_NOPTS, "step-ms");
    if (cfg_parse_u64(text, 50, 60000, &v) != 0) {
        fprintf(stderr, "%s: --step-ms must be 50..60000, not '%s'\n", S_NAME, text);
        return 2;
    }
    self->step_ms = (long)v;
    self->user = cfg_value(self->cfg, S_NOPTS, "user");
    self->ingest = cfg_value(self->cfg, S_NOPTS, "ingest");
    self->jobs_ep = cfg_value(self->cfg, S_NOPTS, "jobs");
    return -1;
}

static int
s_run(s_demo_t *self)
{
    /* Block before a client exists: ZeroMQ's threads inherit the mask. */
    sigemptyset(&self->signals);
    sigaddset(&self->signals, SIGINT);
    sigaddset(&self->signals, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &self->signals, NULL) != 0) {
        log_error(&self->log, "cannot block signals: %s", strerror(errno));
        return 1;
    }
    self->next_id = 1000 + randombytes_uniform(9000); /* fresh ids after a restart */
    int rc = self->jobs_mode ? s_run_jobs(self) : s_run_fake(self);
    if (rc == 0)
        log_info(&self->log, "stopped");
    return rc;
}

int
main(int argc, char **argv)
{
    char err[256];
    if (version_check_libs(err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", S_NAME, err);
        return 1;
    }
    s_demo_t self;
    memset(&self, 0, sizeof self);
    memcpy(self.cfg, s_cfg, sizeof s_cfg);
    buf_init(&self.data);
    int rc = s_configure(&self, argc, argv);
    if (rc < 0)
        rc = s_run(&self);
    buf_free(&self.data);
    return rc;
}
