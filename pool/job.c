/*  job.c: a job's life in the worker.
 *
 *    job in -> child (a kept one that is idle, or a new one) -> "started"
 *    stdout lines -> "progress"; the result kept (per-job) or the job ended
 *    by {"result"} / {"error"} (kept)
 *    child reaped -> "done" with the status its exit (or why we stopped it)
 *    says; "release" instead when the worker stopped it at shutdown.
 *
 *  A child is freed only when reaped (pool_job_reap, called last in a loop
 *  turn, so no pipe event of the same turn points to a freed child).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"

#define S_KILL_AFTER_SHUTDOWN_MS 1000 /* SIGKILL after SIGTERM once grace is over */
#define S_TIMEOUT_MAX_S          (366ull * 86400)

static void
s_copy(char *dst, size_t size, event_text_t t)
{
    size_t n = t.len < size - 1 ? t.len : size - 1;
    memcpy(dst, t.p, n);
    dst[n] = '\0';
}

static pool_job_t *
s_find(pool_t *p, event_text_t task_id)
{
    for (size_t i = 0; i < p->njobs; i++)
        if (strlen(p->jobs[i]->task_id) == task_id.len &&
            memcmp(p->jobs[i]->task_id, task_id.p, task_id.len) == 0)
            return p->jobs[i];
    return NULL;
}

/*  Takes the job out of the table and frees it (its child stays). */
static void
s_drop(pool_t *p, pool_job_t *job)
{
    for (size_t i = 0; i < p->njobs; i++)
        if (p->jobs[i] == job) {
            p->jobs[i] = p->jobs[--p->njobs];
            break;
        }
    if (job->child)
        job->child->job = NULL;
    buf_free(&job->result);
    free(job);
}

static void
s_send_task(pool_t *p, jobs_type_t type, const char *task_id, uint64_t attempt)
{
    buf_reset(&p->out);
    jobs_pack_task(&p->out, type, task_id, attempt);
    pool_link_send(p);
}

/*  Reports the end of a job and frees it. */
static void
s_end(pool_t *p, pool_job_t *job, const char *status, const char *reason, const char *message,
      int64_t now_ms)
{
    /* logged first: whoever sees the message finds the line written */
    log_info(&p->log, "job ended task=%s kind=%s attempt=%llu status=%s%s%s ms=%lld", job->task_id,
             job->kind, (unsigned long long)job->attempt, status, reason ? " reason=" : "",
             reason ? reason : "", (long long)(now_ms - job->started_ms));
    if (strcmp(status, "release") == 0) {
        s_send_task(p, JOBS_RELEASE, job->task_id, job->attempt);
    }
    else {
        int result = strcmp(status, "succeeded") == 0 && job->has_result;
        buf_reset(&p->out);
        jobs_pack_done(&p->out, job->task_id, job->attempt, status, reason, message,
                       result ? job->result.data : NULL, result ? job->result.len : 0);
        pool_link_send(p);
    }
    s_drop(p, job);
}

static void
s_refuse(pool_t *p, const jobs_msg_t *m, const char *reason, const char *message)
{
    char task_id[EVENT_TASK_ID_MAX + 1];
    s_copy(task_id, sizeof task_id, m->task_id);
    log_warn(&p->log, "job refused task=%s kind=%.*s attempt=%llu reason=%s: %s", task_id,
             (int)m->kind.len, m->kind.p, (unsigned long long)m->attempt, reason, message);
    buf_reset(&p->out);
    jobs_pack_done(&p->out, task_id, m->attempt, "failed", reason, message, NULL, 0);
    pool_link_send(p);
}

static pool_child_t *
s_idle_child(pool_t *p, const pool_kind_t *kind)
{
    for (size_t i = 0; i < p->nchildren; i++) {
        pool_child_t *c = p->children[i];
        if (c->kind == kind && !c->job && !c->exited && !c->term_sent && !c->broken &&
            c->in_fd >= 0)
            return c;
    }
    return NULL;
}

static int
s_add_child(pool_t *p, pool_child_t *c)
{
    if (p->nchildren == p->children_cap) {
        size_t cap = p->children_cap ? p->children_cap * 2 : 8;
        pool_child_t **grown = realloc(p->children, cap * sizeof *grown);
        if (!grown)
            return -1;
        p->children = grown;
        p->children_cap = cap;
    }
    p->children[p->nchildren++] = c;
    return 0;
}

void
pool_job_start(pool_t *p, const jobs_msg_t *m, int64_t now_ms)
{
    char task_id[EVENT_TASK_ID_MAX + 1];
    s_copy(task_id, sizeof task_id, m->task_id);
    if (p->stopping || p->njobs >= p->concurrency) {
        log_warn(&p->log, "job released task=%s attempt=%llu: %s", task_id,
                 (unsigned long long)m->attempt, p->stopping ? "stopping" : "all slots busy");
        s_send_task(p, JOBS_RELEASE, task_id, m->attempt);
        return;
    }
    if (s_find(p, m->task_id)) {
        log_warn(&p->log, "job ignored task=%s attempt=%llu: already running here", task_id,
                 (unsigned long long)m->attempt);
        return;
    }
    const pool_kind_t *kind = pool_config_find(&p->cfg, m->kind.p, m->kind.len);
    if (!kind) {
        s_refuse(p, m, "no_command", "this worker has no command for the kind");
        return;
    }
    buf_reset(&p->line);
    if (pool_job_line(&p->line, m) != 0) {
        s_refuse(p, m, "bad_args", "the args cannot be written as JSON");
        return;
    }
    pool_child_t *c = kind->kept ? s_idle_child(p, kind) : NULL;
    if (!c) {
        char err[200];
        c = pool_child_spawn(kind, err, sizeof err);
        if (!c || s_add_child(p, c) != 0) {
            if (c) { /* out of memory: it runs without a job, reaped later */
                kill(c->pid, SIGKILL);
                waitpid(c->pid, NULL, 0);
                pool_child_destroy(&c);
                snprintf(err, sizeof err, "out of memory");
            }
            s_refuse(p, m, "no_command", err);
            return;
        }
        c->close_in = !kind->kept;
        if (kind->kept)
            log_info(&p->log, "kept child started kind=%s pid=%d", kind->name, (int)c->pid);
    }
    pool_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        s_refuse(p, m, "no_command", "out of memory");
        return;
    }
    strcpy(job->task_id, task_id);
    s_copy(job->user_id, sizeof job->user_id, m->user_id);
    s_copy(job->kind, sizeof job->kind, m->kind);
    job->attempt = m->attempt;
    job->timeout_s = m->timeout_s;
    job->started_ms = now_ms;
    /* 0: none; past a year is as good as none (and cannot overflow) */
    uint64_t timeout_s = m->timeout_s < S_TIMEOUT_MAX_S ? m->timeout_s : S_TIMEOUT_MAX_S;
    job->deadline_ms = timeout_s ? now_ms + (int64_t)timeout_s * 1000 : 0;
    buf_init(&job->result);
    job->child = c;
    c->job = job;
    p->jobs[p->njobs++] = job;
    log_info(&p->log, "job started task=%s kind=%s attempt=%llu pid=%d", job->task_id, job->kind,
             (unsigned long long)job->attempt, (int)c->pid);
    s_send_task(p, JOBS_STARTED, job->task_id, job->attempt);
    pool_child_write(c, p->line.data, p->line.len);
}

/*  Stops a job's child for a reason (the first reason wins). */
static void
s_stop(pool_t *p, pool_job_t *job, const char *why, const char *message, int64_t now_ms,
       int64_t grace_ms)
{
    if (!job->end) {
        job->end = why;
        snprintf(job->end_message, sizeof job->end_message, "%s", message ? message : "");
    }
    if (job->child)
        pool_child_term(job->child, now_ms, grace_ms);
}

void
pool_job_cancel(pool_t *p, const jobs_msg_t *m, int64_t now_ms)
{
    pool_job_t *job = s_find(p, m->task_id);
    if (!job || (m->has_attempt && m->attempt != job->attempt)) {
        log_debug(&p->log, "cancel for a job not running here task=%.*s", (int)m->task_id.len,
                  m->task_id.p);
        return;
    }
    log_info(&p->log, "job cancel task=%s attempt=%llu", job->task_id,
             (unsigned long long)job->attempt);
    s_stop(p, job, "cancelled", NULL, now_ms, p->grace_ms);
}

void
pool_job_tick(pool_t *p, int64_t now_ms)
{
    for (size_t i = 0; i < p->njobs; i++) {
        pool_job_t *job = p->jobs[i];
        if (!job->end && job->deadline_ms && now_ms >= job->deadline_ms) {
            char msg[64];
            snprintf(msg, sizeof msg, "timed out after %llu s", (unsigned long long)job->timeout_s);
            log_info(&p->log, "job timeout task=%s after %llu s", job->task_id,
                     (unsigned long long)job->timeout_s);
            s_stop(p, job, "timeout", msg, now_ms, p->grace_ms);
        }
    }
    if (p->stopping && !p->killed_rest && now_ms >= p->stop_deadline_ms) {
        p->killed_rest = 1;
        if (p->njobs)
            log_warn(&p->log, "grace over: stopping %zu running jobs and releasing them", p->njobs);
        for (size_t i = 0; i < p->njobs; i++) {
            pool_job_t *job = p->jobs[i];
            if (!job->end || strcmp(job->end, "cancelled") != 0)
                job->end = "shutdown";
            if (job->child)
                pool_child_term(job->child, now_ms, S_KILL_AFTER_SHUTDOWN_MS);
        }
    }
    for (size_t i = 0; i < p->nchildren; i++) {
        pool_child_t *c = p->children[i];
        if (p->stopping && !c->job)
            pool_child_term(c, now_ms, S_KILL_AFTER_SHUTDOWN_MS);
        pool_child_tick(c, now_ms);
    }
}

/* ---------------------------------------------------------------- a child's output */

/*  The child wrote something that is not the protocol: its job fails
 *  bad_output and the child is killed. */
static void
s_broken(pool_t *p, pool_child_t *c, const char *why, int64_t now_ms)
{
    c->broken = 1;
    log_warn(&p->log, "child kind=%s pid=%d wrote bad output: %s", c->kind->name, (int)c->pid, why);
    if (c->job)
        s_stop(p, c->job, "bad_output", why, now_ms, p->grace_ms);
    else
        pool_child_term(c, now_ms, p->grace_ms);
}

static void
s_on_line(pool_t *p, pool_child_t *c, const char *line, size_t len, int64_t now_ms)
{
    pool_line_t pl;
    char err[160];
    if (pool_line_parse(line, len, &pl, &p->scratch, err, sizeof err) != 0) {
        s_broken(p, c, err, now_ms);
        return;
    }
    pool_job_t *job = c->job;
    if (!job) {
        s_broken(p, c, "a line while it had no job", now_ms);
        return;
    }
    if (job->end) /* being stopped: what it says now does not count */
        return;
    if (pl.has_progress || pl.has_message) {
        buf_reset(&p->out);
        jobs_pack_progress(&p->out, job->task_id, job->attempt,
                           pl.has_progress ? &pl.progress : NULL,
                           pl.has_message ? pl.message : NULL);
        pool_link_send(p);
    }
    if (pl.has_result) {
        buf_reset(&job->result);
        buf_append(&job->result, p->scratch.data, p->scratch.len);
        job->has_result = buf_ok(&job->result);
    }
    if (pl.has_error) {
        job->has_error = 1;
        snprintf(job->error, sizeof job->error, "%s", pl.error);
    }
    if (c->kind->kept && (pl.has_result || pl.has_error)) {
        if (pl.has_error)
            s_end(p, job, "failed", "error", job->error, now_ms);
        else
            s_end(p, job, "succeeded", NULL, NULL, now_ms);
    }
}

/*  Reads what the pipe holds; 1 at end of file, 0 otherwise. */
static int
s_read(int *fd, pool_lines_t *lr)
{
    char chunk[16384];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n > 0) {
            if (pool_lines_push(lr, chunk, (size_t)n) != 0)
                return 1;
            if (lr->buf.len - lr->head > lr->max + sizeof chunk)
                return 0; /* let the caller take lines out first */
            if ((size_t)n < sizeof chunk)
                return 0; /* drained for now: poll() says when more (or EOF) comes */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        close(*fd);
        *fd = -1;
        return 1;
    }
}

static void
s_stdout(pool_t *p, pool_child_t *c, int force_eof, int64_t now_ms)
{
    if (c->out_fd < 0)
        return;
    int eof = s_read(&c->out_fd, &c->out);
    if (force_eof && !eof) { /* something it started still holds the pipe */
        close(c->out_fd);
        c->out_fd = -1;
        eof = 1;
    }
    const char *line;
    size_t len;
    int kind;
    while ((kind = pool_lines_next(&c->out, eof, &line, &len)) != POOL_LINE_NONE) {
        if (c->broken)
            continue;
        if (kind == POOL_LINE_LONG) {
            char why[64];
            snprintf(why, sizeof why, "a line longer than %d bytes", POOL_LINE_MAX);
            s_broken(p, c, why, now_ms);
        }
        else if (len > 0)
            s_on_line(p, c, line, len, now_ms);
    }
}

void
pool_job_on_stdout(pool_t *p, pool_child_t *c, int64_t now_ms)
{
    s_stdout(p, c, 0, now_ms);
}

void
pool_job_on_stderr(pool_t *p, pool_child_t *c, int64_t now_ms)
{
    if (c->err_fd < 0)
        return;
    int eof = s_read(&c->err_fd, &c->err);
    const char *line;
    size_t len;
    while (pool_lines_next(&c->err, eof, &line, &len) != POOL_LINE_NONE) {
        if (now_ms - c->err_window_ms >= 1000) {
            if (c->err_dropped)
                log_warn(&p->log, "child kind=%s pid=%d: %u stderr lines not logged (over %d/s)",
                         c->kind->name, (int)c->pid, c->err_dropped, POOL_ERR_RATE);
            c->err_window_ms = now_ms;
            c->err_lines = c->err_dropped = 0;
        }
        if (c->err_lines++ < POOL_ERR_RATE)
            log_info(&p->log, "child kind=%s pid=%d: %.*s", c->kind->name, (int)c->pid, (int)len,
                     line);
        else
            c->err_dropped++;
    }
}

void
pool_job_on_stdin(pool_t *p, pool_child_t *c, int64_t now_ms)
{
    (void)p;
    (void)now_ms;
    pool_child_flush(c);
}

/* ---------------------------------------------------------------- reaping */

/*  The child was reaped: its job ends as its exit (or our reason) says. */
static void
s_child_gone(pool_t *p, pool_child_t *c, int64_t now_ms)
{
    /* what it wrote before it ended still counts */
    for (int i = 0; i < 64 && c->out_fd >= 0; i++)
        s_stdout(p, c, 0, now_ms);
    s_stdout(p, c, 1, now_ms);
    pool_job_on_stderr(p, c, now_ms);
    if (c->err_dropped)
        log_warn(&p->log, "child kind=%s pid=%d: %u stderr lines not logged (over %d/s)",
                 c->kind->name, (int)c->pid, c->err_dropped, POOL_ERR_RATE);
    char how[64];
    pool_child_describe(c->status, how, sizeof how);
    pool_job_t *job = c->job;
    if (job && job->end) {
        const char *msg = job->end_message[0] ? job->end_message : NULL;
        if (strcmp(job->end, "cancelled") == 0)
            s_end(p, job, "cancelled", NULL, NULL, now_ms);
        else if (strcmp(job->end, "shutdown") == 0)
            s_end(p, job, "release", NULL, NULL, now_ms);
        else
            s_end(p, job, "failed", job->end, msg, now_ms);
    }
    else if (job && !c->kind->kept && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0) {
        if (job->has_error)
            s_end(p, job, "failed", "error", job->error, now_ms);
        else
            s_end(p, job, "succeeded", NULL, NULL, now_ms);
    }
    else if (job)
        s_end(p, job, "failed", "exit_status", how, now_ms);
    if (c->kind->kept)
        log_info(&p->log, "kept child ended kind=%s pid=%d: %s", c->kind->name, (int)c->pid, how);
    if (c->term_sent)
        kill(-c->pid, SIGKILL); /* what it started and left behind */
    for (size_t i = 0; i < p->nchildren; i++)
        if (p->children[i] == c) {
            p->children[i] = p->children[--p->nchildren];
            break;
        }
    pool_child_destroy(&c);
}

void
pool_job_reap(pool_t *p, int64_t now_ms)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < p->nchildren; i++) {
            pool_child_t *c = p->children[i];
            if (c->pid == pid) {
                c->exited = 1;
                c->status = status;
                s_child_gone(p, c, now_ms);
                break;
            }
        }
    }
}

void
pool_job_shutdown(pool_t *p, int64_t now_ms)
{
    if (p->stopping) {
        p->stop_deadline_ms = now_ms; /* a second signal: no more grace */
        log_info(&p->log, "second stop signal: stopping the running jobs now");
        return;
    }
    p->stopping = 1;
    p->stop_deadline_ms = now_ms + p->grace_ms;
    buf_reset(&p->out);
    jobs_pack_simple(&p->out, JOBS_BYE);
    pool_link_send(p);
    log_info(&p->log, "stopping: bye sent, %zu jobs running, grace %lld ms", p->njobs,
             (long long)p->grace_ms);
}

void
pool_job_abandon_all(pool_t *p, int64_t now_ms)
{
    while (p->njobs > 0) {
        pool_job_t *job = p->jobs[0];
        log_warn(&p->log, "job abandoned task=%s attempt=%llu: the broker was lost", job->task_id,
                 (unsigned long long)job->attempt);
        if (job->child)
            pool_child_term(job->child, now_ms, p->grace_ms);
        s_drop(p, job); /* the child dies without a job: nothing is reported */
    }
}

void
pool_job_destroy_all(pool_t *p)
{
    while (p->njobs > 0)
        s_drop(p, p->jobs[0]);
    for (size_t i = 0; i < p->nchildren; i++)
        pool_child_destroy(&p->children[i]);
    p->nchildren = 0;
    free(p->children);
    p->children = NULL;
    free(p->jobs);
    p->jobs = NULL;
}
