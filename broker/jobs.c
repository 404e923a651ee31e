/*  jobs.c: the jobs endpoint (ROUTER): jobs submitted, queued per kind,
 *  dispatched to pool workers, and their lives told to the user as task
 *  events.
 *
 *  One socket carries three kinds of peer, told apart by what they send:
 *  submitters ("submit", "cancel": each gets one answer), and pool workers
 *  ("hello" with their kinds and concurrency, then heartbeats, "started",
 *  "progress", "done", "release", "bye"). A job is queued FIFO per kind and
 *  goes to the least recently used worker that serves its kind and has a
 *  free slot (the ZeroMQ guide's load-balancing pattern). Workers and the
 *  broker hear from each other every heartbeat; a worker silent for
 *  BK_JOBS_LIVENESS heartbeats is dead (the guide's Paranoid Pirate), and its
 *  jobs are retried with backoff up to their max_retries, or fail
 *  "worker_lost".
 *
 *  Every change a user should see is an ordinary task event, recorded,
 *  journaled and published through the same path as a worker's (state.c,
 *  persist.c, commit.c): queued, running (with progress), succeeded,
 *  failed (with a reason), cancelled. A submit's answer waits in commit.c
 *  behind its "queued" event, so an ok means the user's browsers will see
 *  the task.
 *
 *  The queue itself lives in memory: a broker restart loses queued and
 *  running jobs (their tasks stay as their last event left them). The
 *  journal records of jobs are not written yet (issue 6 is open on it).
 *  jobs.h lists the files; this one holds the socket, the workers, the
 *  queue and dispatch, retries and the tick.
 */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlist.h"
#include "jobs.h"
#include "jobs_wire.h"
#include "wire.h"
#include "zmtp.h"

/* ---------------------------------------------------------------- setup */

static uint64_t
s_count_delayed(const bk_jobs_t *self)
{
    uint64_t n = 0;
    for (const bk_job_t *j = self->dhead; j; j = j->next)
        n++;
    return n;
}

bk_jobs_t *
bk_jobs_new(uint32_t max_queued)
{
    bk_jobs_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->jobs = strmap_new();
    self->kinds = strmap_new();
    self->peers = strmap_new();
    self->idem = strmap_new();
    self->ring = calloc(BK_JOBS_IDEM_MAX, sizeof *self->ring);
    self->max_queued = max_queued;
    randombytes_buf(&self->next_id, sizeof self->next_id);
    if (!self->jobs || !self->kinds || !self->peers || !self->idem || !self->ring)
        bk_jobs_destroy(&self);
    return self;
}

void
bk_job_free(bk_job_t *j)
{
    free(j->args);
    free(j);
}

void
bk_jobs_destroy(bk_jobs_t **self_p)
{
    bk_jobs_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    void *v;
    size_t pos = 0;
    while (self->jobs && (v = strmap_next(self->jobs, &pos)) != NULL)
        bk_job_free(v);
    pos = 0;
    while (self->kinds && (v = strmap_next(self->kinds, &pos)) != NULL)
        free(v);
    for (bk_jworker_t *w = self->whead, *next; w; w = next) {
        next = w->next;
        bk_zpeer_unref(&w->peer);
        free(w);
    }
    for (uint32_t i = 0; self->ring && i < BK_JOBS_IDEM_MAX; i++)
        free(self->ring[i]);
    free(self->ring);
    strmap_destroy(&self->jobs);
    strmap_destroy(&self->kinds);
    strmap_destroy(&self->peers);
    strmap_destroy(&self->idem);
    free(self);
    *self_p = NULL;
}

const bk_jobs_stats_t *
bk_jobs_stats(const bk_jobs_t *self)
{
    return &self->stats;
}

#define S_FIXED_PAIRS 13

uint32_t
bk_jobs_stats_pairs(const bk_jobs_t *self)
{
    return S_FIXED_PAIRS + (uint32_t)strmap_size(self->kinds) + 2 * (BK_JOBS_HIST + 1);
}

static void
s_pack_hist(msgpack_packer *pk, const char *name, const uint64_t *hist, uint64_t sum)
{
    char key[64];
    uint64_t le = 1, cumulative = 0;
    for (int b = 0; b < BK_JOBS_HIST; b++, le *= 4) {
        cumulative += hist[b];
        if (b < BK_JOBS_HIST - 1)
            snprintf(key, sizeof key, "%s_ms_le_%llu", name, (unsigned long long)le);
        else
            snprintf(key, sizeof key, "%s_ms_le_inf", name);
        wire_pack_kv_u64(pk, key, cumulative);
    }
    snprintf(key, sizeof key, "%s_ms_sum", name);
    wire_pack_kv_u64(pk, key, sum);
}

void
bk_jobs_pack_stats(const bk_jobs_t *self, msgpack_packer *pk)
{
    const bk_jobs_stats_t *st = &self->stats;
    uint32_t running = 0, workers = 0;
    for (const bk_jworker_t *w = self->whead; w; w = w->next, workers++)
        running += w->running;
    wire_pack_kv_u64(pk, "jobs_queued", self->queued);
    wire_pack_kv_u64(pk, "jobs_running", running);
    wire_pack_kv_u64(pk, "jobs_workers", workers);
    wire_pack_kv_u64(pk, "jobs_submitted", st->submitted);
    wire_pack_kv_u64(pk, "jobs_duplicates", st->duplicates);
    wire_pack_kv_u64(pk, "jobs_refused", st->refused);
    wire_pack_kv_u64(pk, "jobs_dispatched", st->dispatched);
    wire_pack_kv_u64(pk, "jobs_succeeded", st->succeeded);
    wire_pack_kv_u64(pk, "jobs_failed", st->failed);
    wire_pack_kv_u64(pk, "jobs_cancelled", st->cancelled);
    wire_pack_kv_u64(pk, "jobs_retried", st->retried);
    wire_pack_kv_u64(pk, "jobs_workers_lost", st->workers_lost);
    wire_pack_kv_u64(pk, "jobs_delayed", s_count_delayed(self));
    size_t pos = 0;
    const bk_jkind_t *k;
    char key[BK_JOBS_KIND_MAX + 32];
    while ((k = strmap_next(self->kinds, &pos)) != NULL) {
        snprintf(key, sizeof key, "jobs_queued_kind_%s", k->name);
        wire_pack_kv_u64(pk, key, k->queued);
    }
    s_pack_hist(pk, "jobs_queued", st->queued_hist, st->queued_ms_sum);
    s_pack_hist(pk, "jobs_running", st->running_hist, st->running_ms_sum);
}

/* ---------------------------------------------------------------- queue and dispatch */

bk_jkind_t *
bk_job_kind(bk_jobs_t *self, const char *name, size_t len)
{
    bk_jkind_t *k = strmap_get(self->kinds, name, len);
    if (k || len == 0 || len > BK_JOBS_KIND_MAX)
        return k;
    k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    memcpy(k->name, name, len);
    if (strmap_put(self->kinds, k->name, len, k) != 0) {
        free(k);
        return NULL;
    }
    return k;
}

/*  Counts ms in a histogram of BK_JOBS_HIST buckets (<= 4^i ms, the last
 *  for more). */
static void
s_observe(uint64_t *hist, uint64_t *sum, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    int b = 0;
    for (int64_t le = 1; b < BK_JOBS_HIST - 1 && ms > le; le *= 4)
        b++;
    hist[b]++;
    *sum += (uint64_t)ms;
}

void
bk_job_enqueue(bk_jobs_t *self, bk_job_t *j)
{
    j->state = BK_JOB_QUEUED;
    j->worker = NULL;
    j->since_ms = clock_mono_ms();
    DLIST_APPEND(j->kind->head, j->kind->tail, j, prev, next);
    j->kind->queued++;
    self->queued++;
}

static void
s_dequeue(bk_jobs_t *self, bk_job_t *j)
{
    DLIST_REMOVE(j->kind->head, j->kind->tail, j, prev, next);
    j->kind->queued--;
    self->queued--;
}

/*  Forgets a job that ended (its last event is out). */
static void
s_drop(bk_jobs_t *self, bk_job_t *j)
{
    if (j->state == BK_JOB_QUEUED)
        s_dequeue(self, j);
    else if (j->state == BK_JOB_DELAYED)
        DLIST_REMOVE(self->dhead, self->dtail, j, prev, next);
    else if (j->worker)
        j->worker->running--;
    strmap_remove(self->jobs, bk_job_tid(j), j->tid_len);
    bk_job_free(j);
}

static int
s_serves(const bk_jworker_t *w, const bk_jkind_t *k)
{
    for (uint32_t i = 0; i < w->nkinds; i++)
        if (w->kinds[i] == k)
            return 1;
    return 0;
}

/*  The least recently used worker with a free slot for kind k, or NULL. */
static bk_jworker_t *
s_pick(bk_jobs_t *self, const bk_jkind_t *k)
{
    bk_jworker_t *best = NULL;
    for (bk_jworker_t *w = self->whead; w; w = w->next)
        if (!w->leaving && w->running < w->concurrency && s_serves(w, k) &&
            (!best || w->dispatch_ms < best->dispatch_ms))
            best = w;
    return best;
}

/*  Gives queued jobs of kind k to workers while both are there. */
void
bk_job_dispatch_kind(broker_t *bk, bk_jkind_t *k)
{
    bk_jobs_t *self = bk->jobs;
    bk_jworker_t *w;
    while (k->head && bk_job_durable(bk, k->head) && (w = s_pick(self, k)) != NULL) {
        bk_job_t *j = k->head;
        s_dequeue(self, j);
        j->state = BK_JOB_RUNNING;
        j->worker = w;
        j->attempt++;
        j->due_ms = bk->now_ms + (int64_t)j->timeout_s * 1000 + BK_JOBS_TIMEOUT_SLACK_MS;
        s_observe(self->stats.queued_hist, &self->stats.queued_ms_sum, bk->now_ms - j->since_ms);
        j->since_ms = bk->now_ms;
        bk_job_persist(bk, j); /* running, this attempt */
        w->running++;
        w->dispatch_ms = bk->now_ms;
        /* dispatch order among workers of equal age: move it to the tail */
        DLIST_REMOVE(self->whead, self->wtail, w, prev, next);
        DLIST_APPEND(self->whead, self->wtail, w, prev, next);
        bk_job_send_job(j, w);
        self->stats.dispatched++;
        log_info(&bk->log, "job %s (%s, attempt %u) to worker %s", bk_job_tid(j), k->name,
                 j->attempt, w->name);
    }
}

static void
s_dispatch(broker_t *bk)
{
    size_t pos = 0;
    bk_jkind_t *k;
    while ((k = strmap_next(bk->jobs->kinds, &pos)) != NULL)
        if (k->head)
            bk_job_dispatch_kind(bk, k);
}

/*  A running job's end, told to the user; the job is forgotten. */
void
bk_job_finish(broker_t *bk, bk_job_t *j, const char *status, const char *reason,
              const char *message, size_t mlen, const bk_jraw_t *result)
{
    bk_jwhy_t why;
    int rc;
    if (result)
        rc = bk_job_emit(bk, j, status, message, mlen, NULL, 1, bk_job_pack_result, result, NULL,
                         NULL, &why);
    else if (reason)
        rc = bk_job_emit(bk, j, status, message, mlen, NULL, 1, bk_job_pack_reason, reason, NULL,
                         NULL, &why);
    else
        rc = bk_job_emit(bk, j, status, message, mlen, NULL, 0, NULL, NULL, NULL, NULL, &why);
    if (rc != 0 && result) {
        /* a result the contract does not take (too large, not JSON-able) */
        char m[300];
        int n = snprintf(m, sizeof m, "the job's result was refused: %s", why.detail);
        reason = "bad_output";
        status = "failed";
        rc = bk_job_emit(bk, j, status, m, (size_t)n, NULL, 1, bk_job_pack_reason, reason, NULL,
                         NULL, &why);
    }
    if (rc != 0)
        log_error(&bk->log, "job %s: its %s event was refused: %s: %s", bk_job_tid(j), status,
                  why.code, why.detail);
    if (j->state == BK_JOB_RUNNING || j->state == BK_JOB_CANCELLING)
        s_observe(bk->jobs->stats.running_hist, &bk->jobs->stats.running_ms_sum,
                  clock_mono_ms() - j->since_ms);
    if (strcmp(status, "succeeded") == 0)
        bk->jobs->stats.succeeded++;
    else if (strcmp(status, "cancelled") == 0)
        bk->jobs->stats.cancelled++;
    else
        bk->jobs->stats.failed++;
    log_info(&bk->log, "job %s %s%s%s", bk_job_tid(j), status, reason ? ": " : "",
             reason ? reason : "");
    bk_job_persist_gone(bk, j);
    s_drop(bk->jobs, j);
}

/*  A running job whose worker is gone: retried after a backoff while it
 *  has retries left, else failed worker_lost. */
static void
s_lost(broker_t *bk, bk_job_t *j, const char *why)
{
    bk_jobs_t *self = bk->jobs;
    if (j->worker)
        j->worker->running--;
    j->worker = NULL;
    if (j->state == BK_JOB_CANCELLING) {
        j->state = BK_JOB_RUNNING; /* in no list, no worker: s_drop only forgets it */
        bk_job_finish(bk, j, "cancelled", NULL, NULL, 0, NULL);
        return;
    }
    if (j->attempt > j->max_retries) {
        char m[200];
        int n = snprintf(m, sizeof m, "%s; %u attempts made", why, j->attempt);
        j->state = BK_JOB_RUNNING;
        bk_job_finish(bk, j, "failed", "worker_lost", m, (size_t)n, NULL);
        return;
    }
    int64_t backoff = BK_JOBS_BACKOFF_MS;
    for (uint32_t i = 1; i < j->attempt && backoff < BK_JOBS_BACKOFF_MAX_MS; i++)
        backoff *= 2;
    if (backoff > BK_JOBS_BACKOFF_MAX_MS)
        backoff = BK_JOBS_BACKOFF_MAX_MS;
    j->state = BK_JOB_DELAYED;
    j->due_ms = bk->now_ms + backoff;
    DLIST_APPEND(self->dhead, self->dtail, j, prev, next);
    bk_job_persist(bk, j); /* queued again, this attempt counted */
    self->stats.retried++;
    bk_jwhy_t w;
    if (bk_job_emit(bk, j, "queued", why, strlen(why), NULL, 0, NULL, NULL, NULL, NULL, &w) != 0)
        log_error(&bk->log, "job %s: its queued event was refused: %s", bk_job_tid(j), w.detail);
    log_info(&bk->log, "job %s: %s; retry %u in %lld ms", bk_job_tid(j), why, j->attempt,
             (long long)backoff);
}

static void
s_worker_gone(broker_t *bk, bk_jworker_t *w, const char *why)
{
    bk_jobs_t *self = bk->jobs;
    log_warn(&bk->log, "worker %s (%s) lost: %s; %u jobs running", w->name, bk_zpeer_addr(w->peer),
             why, w->running);
    size_t pos = 0;
    bk_job_t *j;
    /* collect first: s_lost may free jobs (the map must not change while walked) */
    bk_job_t **mine = w->running ? calloc(w->running, sizeof *mine) : NULL;
    uint32_t n = 0;
    while (mine && (j = strmap_next(self->jobs, &pos)) != NULL)
        if (j->worker == w && n < w->running)
            mine[n++] = j;
    char sentence[160];
    snprintf(sentence, sizeof sentence, "worker %s lost (%s)", w->name, why);
    for (uint32_t i = 0; i < n; i++)
        s_lost(bk, mine[i], sentence);
    free(mine);
    strmap_remove(self->peers, &w->peer, sizeof w->peer);
    DLIST_REMOVE(self->whead, self->wtail, w, prev, next);
    bk_zpeer_unref(&w->peer);
    free(w);
    self->stats.workers_lost++;
}

/* ---------------------------------------------------------------- workers */

static void
s_welcome(bk_jworker_t *w)
{
    buf_t b;
    buf_init(&b);
    jobs_pack_welcome(&b, BK_JOBS_HEARTBEAT_MS, BK_JOBS_LIVENESS);
    bk_job_send(w->peer, &b);
    buf_free(&b);
}

static void
s_hello(broker_t *bk, bk_zpeer_t *peer, const jobs_msg_t *m)
{
    bk_jobs_t *self = bk->jobs;
    bk_jworker_t *old = strmap_get(self->peers, &peer, sizeof peer);
    if (old)
        s_worker_gone(bk, old, "it said hello again");
    bk_jworker_t *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->concurrency = m->concurrency >= 1 && m->concurrency <= 10000 ? (uint32_t)m->concurrency : 1;
    if (m->name.p) /* cut at BK_JOBS_NAME_MAX */
        snprintf(w->name, sizeof w->name, "%.*s", (int)m->name.len, m->name.p);
    else
        snprintf(w->name, sizeof w->name, "%s", bk_zpeer_addr(peer));
    size_t at = 0;
    event_text_t kind;
    while (jobs_kind_next(m, &at, &kind)) {
        bk_jkind_t *k = bk_job_kind(self, kind.p, kind.len);
        if (k && w->nkinds < BK_JOBS_KINDS_PER_WORKER && !s_serves(w, k))
            w->kinds[w->nkinds++] = k;
    }
    w->peer = bk_zpeer_ref(peer);
    w->seen_ms = bk->now_ms;
    if (strmap_put(self->peers, &w->peer, sizeof w->peer, w) != 0) {
        bk_zpeer_unref(&w->peer);
        free(w);
        return;
    }
    DLIST_APPEND(self->whead, self->wtail, w, prev, next);
    s_welcome(w);
    log_info(&bk->log, "worker %s (%s) joined: %u kinds, concurrency %u", w->name,
             bk_zpeer_addr(peer), w->nkinds, w->concurrency);
    s_dispatch(bk);
}

/*  The job a worker's message is about, if it is running on that worker in
 *  that attempt (a late message of an earlier attempt is ignored). */
static bk_job_t *
s_its_job(bk_jobs_t *self, bk_jworker_t *w, const jobs_msg_t *m)
{
    bk_job_t *j = strmap_get(self->jobs, m->task_id.p, m->task_id.len);
    if (!j || m->attempt != j->attempt ||
        (j->state != BK_JOB_RUNNING && j->state != BK_JOB_CANCELLING))
        return NULL;
    if (!j->worker) {
        /* running when the broker restarted (jobs_persist.c): its worker is back */
        j->worker = w;
        w->running++;
        j->due_ms = clock_mono_ms() + (int64_t)j->timeout_s * 1000 + BK_JOBS_TIMEOUT_SLACK_MS;
    }
    return j->worker == w ? j : NULL;
}

/*  "done": the job ends as its worker says (an unknown status is a failure). */
static void
s_done(broker_t *bk, bk_job_t *j, const jobs_msg_t *m)
{
    char st[16] = "failed", rs[48] = "";
    if (m->status.len < sizeof st)
        snprintf(st, sizeof st, "%.*s", (int)m->status.len, m->status.p);
    if (m->reason.len) /* cut at 47 bytes */
        snprintf(rs, sizeof rs, "%.*s", (int)m->reason.len, m->reason.p);
    if (j->state == BK_JOB_CANCELLING)
        snprintf(st, sizeof st, "cancelled");
    bk_jraw_t result = {m->result, m->result_len};
    if (strcmp(st, "succeeded") == 0)
        bk_job_finish(bk, j, st, NULL, m->message.p, m->message.len, m->result ? &result : NULL);
    else if (strcmp(st, "cancelled") == 0)
        bk_job_finish(bk, j, st, NULL, m->message.p, m->message.len, NULL);
    else
        bk_job_finish(bk, j, "failed", rs[0] ? rs : "failed", m->message.p, m->message.len, NULL);
}

/*  started, progress, done, release from worker w. */
static void
s_report(broker_t *bk, bk_jworker_t *w, const jobs_msg_t *m)
{
    bk_job_t *j = s_its_job(bk->jobs, w, m);
    if (!j)
        return;
    bk_jwhy_t why;
    if (m->type == JOBS_STARTED) {
        if (j->state == BK_JOB_RUNNING && bk_job_emit(bk, j, "running", NULL, 0, NULL, 1,
                                                      bk_job_pack_worker, w, NULL, NULL, &why) != 0)
            log_warn(&bk->log, "job %s: running refused: %s", bk_job_tid(j), why.detail);
    }
    else if (m->type == JOBS_PROGRESS) {
        if (j->state == BK_JOB_RUNNING &&
            bk_job_emit(bk, j, "running", m->message.p, m->message.len,
                        m->has_progress ? &m->progress : NULL, 1, bk_job_pack_worker, w, NULL, NULL,
                        &why) != 0)
            log_warn(&bk->log, "job %s: progress refused: %s", bk_job_tid(j), why.detail);
    }
    else if (m->type == JOBS_DONE)
        s_done(bk, j, m);
    else if (m->type == JOBS_RELEASE) {
        /* handed back (the worker is stopping): queued again, no retry used */
        w->running--;
        j->attempt--;
        if (j->state == BK_JOB_CANCELLING) {
            j->worker = NULL;
            j->state = BK_JOB_RUNNING;
            bk_job_finish(bk, j, "cancelled", NULL, NULL, 0, NULL);
            return;
        }
        bk_job_enqueue(bk->jobs, j);
        bk_job_persist(bk, j);
        if (bk_job_emit(bk, j, "queued", "handed back by its worker", 25, NULL, 0, NULL, NULL, NULL,
                        NULL, &why) != 0)
            log_warn(&bk->log, "job %s: queued refused: %s", bk_job_tid(j), why.detail);
        log_info(&bk->log, "job %s handed back by worker %s", bk_job_tid(j), w->name);
    }
    s_dispatch(bk);
}

/*  A pool worker's message, read by jobs_wire_read() (w: NULL if its peer
 *  has not said hello). One jobs_wire refuses is ignored; the broker does
 *  not answer workers but with welcome, job, cancel and heartbeat. */
static void
s_worker(broker_t *bk, bk_jworker_t *w, bk_zpeer_t *peer, const uint8_t *data, size_t len)
{
    jobs_msg_t m;
    char err[160];
    int rc = jobs_wire_read(data, len, &m, err, sizeof err);
    switch (m.type) {
    case JOBS_HELLO:
    case JOBS_HEARTBEAT:
    case JOBS_STARTED:
    case JOBS_PROGRESS:
    case JOBS_DONE:
    case JOBS_RELEASE:
    case JOBS_BYE:
        break;
    default: /* unknown, or what only the broker sends */
        bk_job_refuse(bk, peer, "unknown_type",
                      "type must be submit, cancel, or a pool worker's message", 0, 0);
        return;
    }
    if (!w && m.type != JOBS_HELLO)
        return; /* a worker we do not know (the broker restarted): its hello will come */
    if (rc != 0)
        log_warn(&bk->log, "%s from %s ignored: %s", jobs_type_name(m.type), bk_zpeer_addr(peer),
                 err);
    else if (m.type == JOBS_HELLO)
        s_hello(bk, peer, &m);
    else if (m.type == JOBS_BYE) {
        w->leaving = 1;
        log_info(&bk->log, "worker %s is leaving; %u jobs running", w->name, w->running);
    }
    else if (m.type != JOBS_HEARTBEAT)
        s_report(bk, w, &m);
}

/* ---------------------------------------------------------------- the socket */

/*  One message: a submitter's (submit, cancel: jobs_submit.c) or a pool
 *  worker's. */
static void
s_message(broker_t *bk, bk_zmsg_t *m)
{
    size_t at = 0;
    while (at + 1 < m->count && m->frames[at].len == 0)
        at++; /* a REQ's delimiter */
    if (m->truncated || at + 1 != m->count) {
        bk_job_refuse(bk, m->peer, EVENT_E_MALFORMED,
                      "a message must be one msgpack map in one frame", 0, 0);
        return;
    }
    const uint8_t *data = m->frames[at].p;
    size_t len = m->frames[at].len;
    event_text_t type;
    int is_map;
    char err[160];
    int rc = jobs_wire_type(data, len, &type, &is_map, err, sizeof err);
    if (!is_map) {
        bk_job_refuse(bk, m->peer, EVENT_E_MALFORMED, "a message must be one msgpack map", 0, 0);
        return;
    }
    bk_jworker_t *w = strmap_get(bk->jobs->peers, &m->peer, sizeof m->peer);
    if (w)
        w->seen_ms = bk->now_ms;
    if (rc != 0)
        bk_job_refuse(bk, m->peer, EVENT_E_MISSING_FIELD, "field 'type' (a string) is required", 0,
                      0);
    else if (type.len == 6 && memcmp(type.p, "submit", 6) == 0)
        bk_job_submit(bk, m->peer, data, len);
    else if (type.len == 6 && memcmp(type.p, "cancel", 6) == 0)
        bk_job_cancel(bk, m->peer, data, len);
    else
        s_worker(bk, w, m->peer, data, len);
}

/*  Writes what was recorded (events, job records) to the journal; then what
 *  became durable may be dispatched, and its records written too. */
static void
s_flush(broker_t *bk)
{
    for (int pass = 0; pass < 2 && !bk->stop; pass++) {
        if (bk_commit_flush(bk) != 0) {
            log_error(&bk->log, "journal write failed: %s; stopping", strerror(errno));
            bk->stop = 1;
            bk->exit_code = 1;
            return;
        }
        if (pass == 0)
            s_dispatch(bk);
    }
}

void
bk_jobs_dispatch(broker_t *bk)
{
    if (bk->jobs)
        s_dispatch(bk);
}

int
bk_jobs_drain(broker_t *bk, int max)
{
    int n = 0;
    bk_zmsg_t m;
    bk->now_ms = clock_mono_ms();
    bk->wall_ms = clock_wall_ms();
    bk_zsock_fill(bk->jobsock);
    while (n < max && bk_zsock_next(bk->jobsock, &m)) {
        s_message(bk, &m);
        n++;
    }
    if (n)
        s_flush(bk);
    return n;
}

int64_t
bk_jobs_tick(broker_t *bk, int64_t now)
{
    bk_jobs_t *self = bk->jobs;
    bk->now_ms = now;
    bk->wall_ms = clock_wall_ms();
    int64_t next = now + BK_JOBS_HEARTBEAT_MS;
    /* workers: dead ones, and heartbeats to the live */
    int beat = now >= self->next_beat_ms;
    if (beat)
        self->next_beat_ms = now + BK_JOBS_HEARTBEAT_MS;
    for (bk_jworker_t *w = self->whead, *wn; w; w = wn) {
        wn = w->next;
        if (now - w->seen_ms > (int64_t)BK_JOBS_HEARTBEAT_MS * BK_JOBS_LIVENESS) {
            s_worker_gone(bk, w, "no heartbeat");
            continue;
        }
        if (beat) {
            buf_t b;
            buf_init(&b);
            jobs_pack_simple(&b, JOBS_HEARTBEAT);
            bk_job_send(w->peer, &b);
            buf_free(&b);
        }
    }
    /* delayed retries due, running jobs past their backstop */
    for (bk_job_t *j = self->dhead, *jn; j; j = jn) {
        jn = j->next;
        if (j->due_ms <= now) {
            DLIST_REMOVE(self->dhead, self->dtail, j, prev, next);
            bk_job_enqueue(self, j);
        }
        else if (j->due_ms < next)
            next = j->due_ms;
    }
    size_t pos = 0, n = 0;
    bk_job_t *j, *late[64];
    while ((j = strmap_next(self->jobs, &pos)) != NULL && n < 64)
        if ((j->state == BK_JOB_RUNNING || j->state == BK_JOB_CANCELLING) && j->due_ms <= now)
            late[n++] = j;
    for (size_t i = 0; i < n; i++) {
        j = late[i];
        if (!j->worker) { /* running when the broker restarted; no worker came back for it */
            s_lost(bk, j, "its worker did not come back after the broker restarted");
            continue;
        }
        bk_job_send_cancel(j);
        if (j->state == BK_JOB_CANCELLING)
            bk_job_finish(bk, j, "cancelled", NULL, "its worker did not confirm the cancel", 37,
                          NULL);
        else
            bk_job_finish(bk, j, "failed", "timeout", "the job ran past its timeout_s", 30, NULL);
    }
    s_flush(bk);
    return next;
}
