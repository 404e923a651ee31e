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
 *  S_LIVENESS heartbeats is dead (the guide's Paranoid Pirate), and its
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
 */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "dlist.h"
#include "mpread.h"
#include "wire.h"
#include "zmtp.h"

#define S_HEARTBEAT_MS     1000
#define S_LIVENESS         3     /* heartbeats a peer may miss */
#define S_CANCEL_WAIT_MS   10000 /* a running job's worker has this long to confirm */
#define S_TIMEOUT_SLACK_MS 10000 /* the broker's backstop past a job's timeout */
#define S_BACKOFF_MS       1000  /* first retry; doubled each time */
#define S_BACKOFF_MAX_MS   60000
#define S_KIND_MAX         64
#define S_KINDS_PER_WORKER 32
#define S_NAME_MAX         64
#define S_IDEM_MAX         65536 /* (producer, pseq) of submits remembered */
#define S_TIMEOUT_DEFAULT  3600
#define S_TIMEOUT_MAX      604800
#define S_RETRIES_DEFAULT  3
#define S_RETRIES_MAX      100

typedef struct s_kind s_kind_t;
typedef struct s_worker s_worker_t;
typedef struct s_job s_job_t;

struct s_kind {
    s_job_t *head, *tail; /* queued, oldest first */
    uint32_t queued;
    char name[S_KIND_MAX + 1];
};

struct s_worker {
    s_worker_t *prev, *next;
    bk_zpeer_t *peer;
    s_kind_t *kinds[S_KINDS_PER_WORKER];
    uint32_t nkinds, concurrency, running;
    int64_t seen_ms;     /* last message from it */
    int64_t dispatch_ms; /* last job given to it (least recently used first) */
    int leaving;         /* "bye": no new jobs */
    char name[S_NAME_MAX + 1];
};

typedef enum { S_QUEUED, S_DELAYED, S_RUNNING, S_CANCELLING } s_state_t;

struct s_job {
    s_job_t *prev, *next; /* its kind's queue, or the delayed list */
    s_kind_t *kind;
    s_worker_t *worker; /* S_RUNNING, S_CANCELLING */
    s_state_t state;
    uint32_t attempt, max_retries, timeout_s;
    int64_t due_ms; /* DELAYED: queued again; RUNNING: backstop; CANCELLING: give up */
    uint8_t *args;
    uint32_t args_len;
    uint16_t tid_len;
    uint8_t uid_len;
    char ids[]; /* task_id NUL user_id NUL */
};

typedef struct {
    char key[EVENT_PRODUCER_MAX + 24]; /* producer NUL pseq (decimal) */
    size_t key_len;
    char task_id[EVENT_TASK_ID_MAX + 1];
} s_idem_t;

struct bk_jobs {
    strmap_t *jobs;  /* task_id -> s_job_t, live jobs */
    strmap_t *kinds; /* name -> s_kind_t, never freed while the broker runs */
    strmap_t *peers; /* peer pointer -> s_worker_t */
    s_worker_t *whead, *wtail;
    s_job_t *dhead, *dtail; /* delayed retries */
    uint32_t queued, max_queued;
    int64_t next_beat_ms;
    strmap_t *idem; /* key -> s_idem_t */
    s_idem_t **ring;
    uint32_t ring_next;
    uint64_t next_id;
    bk_jobs_stats_t stats;
};

static const char *
s_tid(const s_job_t *j)
{
    return j->ids;
}

static const char *
s_uid(const s_job_t *j)
{
    return j->ids + j->tid_len + 1;
}

/* ---------------------------------------------------------------- setup */

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
    self->ring = calloc(S_IDEM_MAX, sizeof *self->ring);
    self->max_queued = max_queued;
    randombytes_buf(&self->next_id, sizeof self->next_id);
    if (!self->jobs || !self->kinds || !self->peers || !self->idem || !self->ring)
        bk_jobs_destroy(&self);
    return self;
}

static void
s_free_job(s_job_t *j)
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
        s_free_job(v);
    pos = 0;
    while (self->kinds && (v = strmap_next(self->kinds, &pos)) != NULL)
        free(v);
    for (s_worker_t *w = self->whead, *next; w; w = next) {
        next = w->next;
        bk_zpeer_unref(&w->peer);
        free(w);
    }
    for (uint32_t i = 0; self->ring && i < S_IDEM_MAX; i++)
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

/* ---------------------------------------------------------------- task events */

/*  Why s_emit() could not record an event: a code and a sentence. */
typedef struct {
    const char *code;
    char detail[200];
} s_why_t;

/*  Adds more pairs to an event's "data" map. */
typedef void (*s_pack_fn)(msgpack_packer *pk, const void *arg);

/*  Records and publishes a task event for j through the normal event path
 *  (validated as a worker's event would be), and queues answer (if any) to
 *  peer behind it in commit.c. data holds kind, attempt and extra_pairs
 *  more from extra(). 0, or -1 with why. */
static int
s_emit(broker_t *bk, const s_job_t *j, const char *status, const char *message, size_t mlen,
       const mp_value_t *progress, uint32_t extra_pairs, s_pack_fn extra, const void *arg,
       bk_zpeer_t *peer, const buf_t *answer, s_why_t *why)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 4 + (message ? 1 : 0) + (progress ? 1 : 0));
    wire_pack_kv_str(&pk, "task_id", s_tid(j), j->tid_len);
    wire_pack_kv_str(&pk, "user_id", s_uid(j), j->uid_len);
    wire_pack_kv_str(&pk, "status", status, strlen(status));
    if (message)
        wire_pack_kv_str(&pk, "message", message, mlen);
    if (progress) {
        wire_pack_str(&pk, "progress");
        if (progress->type == MP_FLOAT)
            msgpack_pack_double(&pk, progress->v.f);
        else if (progress->type == MP_INT)
            msgpack_pack_int64(&pk, progress->v.i);
        else
            msgpack_pack_uint64(&pk, progress->v.u);
    }
    wire_pack_str(&pk, "data");
    msgpack_pack_map(&pk, 2 + extra_pairs);
    wire_pack_kv_str(&pk, "kind", j->kind->name, strlen(j->kind->name));
    wire_pack_kv_u64(&pk, "attempt", j->attempt);
    if (extra)
        extra(&pk, arg);
    int rc = -1;
    event_t ev;
    event_error_t err;
    bk_user_t *u = NULL;
    bk_blob_t *blob = NULL;
    why->code = "internal";
    snprintf(why->detail, sizeof why->detail, "the broker ran out of memory");
    if (!buf_ok(&b))
        goto done;
    if (event_decode(&ev, b.data, b.len, EVENT_FROM_WORKER, &err) != 0) {
        why->code = err.code;
        snprintf(why->detail, sizeof why->detail, "%s", err.detail);
        goto done;
    }
    switch (bk_state_record(&bk->state, &ev, bk->now_ms, bk->wall_ms, &u, &blob)) {
    case BK_RECORD_OK:
        break;
    case BK_RECORD_TOO_MANY_TASKS:
        why->code = "too_many_tasks";
        snprintf(why->detail, sizeof why->detail,
                 "this user has too many live tasks; finish some first");
        goto done;
    case BK_RECORD_OVERLOADED:
        why->code = "overloaded";
        snprintf(why->detail, sizeof why->detail,
                 "the broker is at its memory limit; retry later");
        goto done;
    case BK_RECORD_NOMEM:
        goto done;
    }
    rc = 0;
    if (bk->journal)
        bk_persist_event(bk, blob, NULL, bk->wall_ms);
    bk->stats.accepted++;
    bk_out_t *o = bk_commit_hold(bk);
    if (!o) {
        log_error(&bk->log, "out of memory for a job's event");
        goto done; /* recorded: a gateway repairs the gap with a replay */
    }
    o->user = u;
    o->blob = blob;
    blob->refs++;
    bk_state_pin(u);
    if (peer && answer && buf_ok(answer) && (o->big = malloc(answer->len)) != NULL) {
        o->peer = bk_zpeer_ref(peer);
        memcpy(o->big, answer->data, answer->len);
        o->big_len = answer->len;
    }
done:
    buf_free(&b);
    return rc;
}

static void
s_pack_worker(msgpack_packer *pk, const void *arg)
{
    const s_worker_t *w = arg;
    wire_pack_kv_str(pk, "worker", w->name, strlen(w->name));
}

static void
s_pack_reason(msgpack_packer *pk, const void *arg)
{
    wire_pack_kv_str(pk, "reason", arg, strlen(arg));
}

typedef struct {
    const uint8_t *p;
    size_t len;
} s_raw_t;

/*  "result": the worker's msgpack value as it came (validated with the
 *  event, as data). */
static void
s_pack_result(msgpack_packer *pk, const void *arg)
{
    const s_raw_t *r = arg;
    wire_pack_str(pk, "result");
    pk->callback(pk->data, (const char *)r->p, r->len);
}

/* ---------------------------------------------------------------- answers */

static void
s_send(bk_zpeer_t *peer, const buf_t *msg)
{
    buf_t *out = bk_zpeer_out(peer);
    if (out && buf_ok(msg))
        zmtp_put_frame(out, msg->data, msg->len, 0);
}

/*  {"ok":false,"error":code,"detail":detail[,"pseq":N]} to peer, now. */
static void
s_refuse(broker_t *bk, bk_zpeer_t *peer, const char *code, const char *detail, int has_pseq,
         uint64_t pseq)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 3 + (has_pseq ? 1 : 0));
    wire_pack_str(&pk, "ok");
    msgpack_pack_false(&pk);
    wire_pack_kv_str(&pk, "error", code, strlen(code));
    wire_pack_kv_str(&pk, "detail", detail, strlen(detail));
    if (has_pseq)
        wire_pack_kv_u64(&pk, "pseq", pseq);
    s_send(peer, &b);
    buf_free(&b);
    bk->jobs->stats.refused++;
    log_info(&bk->log, "job refused for %s: %s: %s", bk_zpeer_addr(peer), code, detail);
}

/* ---------------------------------------------------------------- queue and dispatch */

static s_kind_t *
s_kind(bk_jobs_t *self, const char *name, size_t len)
{
    s_kind_t *k = strmap_get(self->kinds, name, len);
    if (k || len == 0 || len > S_KIND_MAX)
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

static void
s_enqueue(bk_jobs_t *self, s_job_t *j)
{
    j->state = S_QUEUED;
    j->worker = NULL;
    DLIST_APPEND(j->kind->head, j->kind->tail, j, prev, next);
    j->kind->queued++;
    self->queued++;
}

static void
s_dequeue(bk_jobs_t *self, s_job_t *j)
{
    DLIST_REMOVE(j->kind->head, j->kind->tail, j, prev, next);
    j->kind->queued--;
    self->queued--;
}

/*  Forgets a job that ended (its last event is out). */
static void
s_drop(bk_jobs_t *self, s_job_t *j)
{
    if (j->state == S_QUEUED)
        s_dequeue(self, j);
    else if (j->state == S_DELAYED)
        DLIST_REMOVE(self->dhead, self->dtail, j, prev, next);
    else if (j->worker)
        j->worker->running--;
    strmap_remove(self->jobs, s_tid(j), j->tid_len);
    s_free_job(j);
}

/*  {"type":"job",...} to its worker. */
static void
s_send_job(const s_job_t *j, s_worker_t *w)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 7);
    wire_pack_kv_str(&pk, "type", "job", 3);
    wire_pack_kv_str(&pk, "task_id", s_tid(j), j->tid_len);
    wire_pack_kv_str(&pk, "user_id", s_uid(j), j->uid_len);
    wire_pack_kv_str(&pk, "kind", j->kind->name, strlen(j->kind->name));
    wire_pack_str(&pk, "args");
    if (j->args_len)
        pk.callback(pk.data, (const char *)j->args, j->args_len);
    else
        msgpack_pack_nil(&pk);
    wire_pack_kv_u64(&pk, "attempt", j->attempt);
    wire_pack_kv_u64(&pk, "timeout_s", j->timeout_s);
    s_send(w->peer, &b);
    buf_free(&b);
}

static int
s_serves(const s_worker_t *w, const s_kind_t *k)
{
    for (uint32_t i = 0; i < w->nkinds; i++)
        if (w->kinds[i] == k)
            return 1;
    return 0;
}

/*  The least recently used worker with a free slot for kind k, or NULL. */
static s_worker_t *
s_pick(bk_jobs_t *self, const s_kind_t *k)
{
    s_worker_t *best = NULL;
    for (s_worker_t *w = self->whead; w; w = w->next)
        if (!w->leaving && w->running < w->concurrency && s_serves(w, k) &&
            (!best || w->dispatch_ms < best->dispatch_ms))
            best = w;
    return best;
}

/*  Gives queued jobs of kind k to workers while both are there. */
static void
s_dispatch_kind(broker_t *bk, s_kind_t *k)
{
    bk_jobs_t *self = bk->jobs;
    s_worker_t *w;
    while (k->head && (w = s_pick(self, k)) != NULL) {
        s_job_t *j = k->head;
        s_dequeue(self, j);
        j->state = S_RUNNING;
        j->worker = w;
        j->attempt++;
        j->due_ms = bk->now_ms + (int64_t)j->timeout_s * 1000 + S_TIMEOUT_SLACK_MS;
        w->running++;
        w->dispatch_ms = bk->now_ms;
        /* dispatch order among workers of equal age: move it to the tail */
        DLIST_REMOVE(self->whead, self->wtail, w, prev, next);
        DLIST_APPEND(self->whead, self->wtail, w, prev, next);
        s_send_job(j, w);
        self->stats.dispatched++;
        log_info(&bk->log, "job %s (%s, attempt %u) to worker %s", s_tid(j), k->name, j->attempt,
                 w->name);
    }
}

static void
s_dispatch(broker_t *bk)
{
    size_t pos = 0;
    s_kind_t *k;
    while ((k = strmap_next(bk->jobs->kinds, &pos)) != NULL)
        if (k->head)
            s_dispatch_kind(bk, k);
}

/*  A running job's end, told to the user; the job is forgotten. */
static void
s_finish(broker_t *bk, s_job_t *j, const char *status, const char *reason, const char *message,
         size_t mlen, const s_raw_t *result)
{
    s_why_t why;
    int rc;
    if (result)
        rc = s_emit(bk, j, status, message, mlen, NULL, 1, s_pack_result, result, NULL, NULL, &why);
    else if (reason)
        rc = s_emit(bk, j, status, message, mlen, NULL, 1, s_pack_reason, reason, NULL, NULL, &why);
    else
        rc = s_emit(bk, j, status, message, mlen, NULL, 0, NULL, NULL, NULL, NULL, &why);
    if (rc != 0 && result) {
        /* a result the contract does not take (too large, not JSON-able) */
        char m[300];
        int n = snprintf(m, sizeof m, "the job's result was refused: %s", why.detail);
        reason = "bad_output";
        status = "failed";
        rc = s_emit(bk, j, status, m, (size_t)n, NULL, 1, s_pack_reason, reason, NULL, NULL, &why);
    }
    if (rc != 0)
        log_error(&bk->log, "job %s: its %s event was refused: %s: %s", s_tid(j), status, why.code,
                  why.detail);
    if (strcmp(status, "succeeded") == 0)
        bk->jobs->stats.succeeded++;
    else if (strcmp(status, "cancelled") == 0)
        bk->jobs->stats.cancelled++;
    else
        bk->jobs->stats.failed++;
    log_info(&bk->log, "job %s %s%s%s", s_tid(j), status, reason ? ": " : "", reason ? reason : "");
    s_drop(bk->jobs, j);
}

/*  A running job whose worker is gone: retried after a backoff while it
 *  has retries left, else failed worker_lost. */
static void
s_lost(broker_t *bk, s_job_t *j, const char *why)
{
    bk_jobs_t *self = bk->jobs;
    if (j->worker)
        j->worker->running--;
    j->worker = NULL;
    if (j->state == S_CANCELLING) {
        j->state = S_RUNNING; /* in no list, no worker: s_drop only forgets it */
        s_finish(bk, j, "cancelled", NULL, NULL, 0, NULL);
        return;
    }
    if (j->attempt > j->max_retries) {
        char m[200];
        int n = snprintf(m, sizeof m, "%s; %u attempts made", why, j->attempt);
        j->state = S_RUNNING;
        s_finish(bk, j, "failed", "worker_lost", m, (size_t)n, NULL);
        return;
    }
    int64_t backoff = S_BACKOFF_MS;
    for (uint32_t i = 1; i < j->attempt && backoff < S_BACKOFF_MAX_MS; i++)
        backoff *= 2;
    if (backoff > S_BACKOFF_MAX_MS)
        backoff = S_BACKOFF_MAX_MS;
    j->state = S_DELAYED;
    j->due_ms = bk->now_ms + backoff;
    DLIST_APPEND(self->dhead, self->dtail, j, prev, next);
    self->stats.retried++;
    s_why_t w;
    if (s_emit(bk, j, "queued", why, strlen(why), NULL, 0, NULL, NULL, NULL, NULL, &w) != 0)
        log_error(&bk->log, "job %s: its queued event was refused: %s", s_tid(j), w.detail);
    log_info(&bk->log, "job %s: %s; retry %u in %lld ms", s_tid(j), why, j->attempt,
             (long long)backoff);
}

static void
s_worker_gone(broker_t *bk, s_worker_t *w, const char *why)
{
    bk_jobs_t *self = bk->jobs;
    log_warn(&bk->log, "worker %s (%s) lost: %s; %u jobs running", w->name, bk_zpeer_addr(w->peer),
             why, w->running);
    size_t pos = 0;
    s_job_t *j;
    /* collect first: s_lost may free jobs (the map must not change while walked) */
    s_job_t **mine = w->running ? calloc(w->running, sizeof *mine) : NULL;
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

/* ---------------------------------------------------------------- submit and cancel */

/*  A submit's fields, pointing into the message. */
typedef struct {
    mp_value_t kind, user_id, task_id, producer;
    const uint8_t *args;
    size_t args_len;
    int has_kind, has_user, has_task, has_producer, has_pseq, has_timeout, has_retries;
    uint64_t pseq, timeout_s, max_retries;
} s_submit_t;

/*  Reads a submit; 0, or -1 with why (code, detail). */
static int
s_read_submit(mp_reader_t *r, uint32_t pairs, s_submit_t *s, s_why_t *why)
{
    for (uint32_t i = 0; i < pairs; i++) {
        mp_value_t k, v;
        const uint8_t *at = r->p;
        if (mp_read_pair(r, &k, &v, EVENT_DEPTH_MAX + 1) != 0) {
            why->code = EVENT_E_MALFORMED;
            snprintf(why->detail, sizeof why->detail, "the message is not valid msgpack");
            return -1;
        }
        (void)at;
#define S_IS(name) mp_str_eq(&k, name)
        if (S_IS("type"))
            continue;
        if (S_IS("args")) {
            /* the value's bytes: everything after the key */
            const uint8_t *end = r->p;
            mp_reader_t kr;
            mp_reader_init(&kr, at, (size_t)(end - at));
            mp_value_t kk;
            (void)mp_read(&kr, &kk); /* past the key */
            s->args = kr.p;
            s->args_len = (size_t)(end - kr.p);
            if (v.type == MP_NIL)
                s->args = NULL, s->args_len = 0;
            continue;
        }
        int is_str = v.type == MP_STR, is_uint = v.type == MP_UINT;
        if (v.type == MP_NIL)
            continue; /* nil: absent */
        if ((S_IS("kind") || S_IS("user_id") || S_IS("task_id") || S_IS("producer")) && !is_str) {
            why->code = EVENT_E_WRONG_TYPE;
            snprintf(why->detail, sizeof why->detail, "field '%.*s' must be a string",
                     (int)k.v.s.len, k.v.s.p);
            return -1;
        }
        if ((S_IS("pseq") || S_IS("timeout_s") || S_IS("max_retries")) && !is_uint) {
            why->code = EVENT_E_WRONG_TYPE;
            snprintf(why->detail, sizeof why->detail,
                     "field '%.*s' must be a non-negative integer", (int)k.v.s.len, k.v.s.p);
            return -1;
        }
        if (S_IS("kind"))
            s->kind = v, s->has_kind = 1;
        else if (S_IS("user_id"))
            s->user_id = v, s->has_user = 1;
        else if (S_IS("task_id"))
            s->task_id = v, s->has_task = 1;
        else if (S_IS("producer"))
            s->producer = v, s->has_producer = 1;
        else if (S_IS("pseq"))
            s->pseq = v.v.u, s->has_pseq = 1;
        else if (S_IS("timeout_s"))
            s->timeout_s = v.v.u, s->has_timeout = 1;
        else if (S_IS("max_retries"))
            s->max_retries = v.v.u, s->has_retries = 1;
        else {
            why->code = EVENT_E_UNKNOWN_FIELD;
            snprintf(why->detail, sizeof why->detail, "unknown field '%.*s'",
                     k.v.s.len > 64 ? 64 : (int)k.v.s.len, k.v.s.p);
            return -1;
        }
#undef S_IS
    }
    why->code = EVENT_E_MISSING_FIELD;
    if (!s->has_kind || !s->has_user) {
        snprintf(why->detail, sizeof why->detail, "field '%s' is required",
                 s->has_kind ? "user_id" : "kind");
        return -1;
    }
    why->code = EVENT_E_INVALID_VALUE;
    int kind_ok = s->kind.v.s.len >= 1 && s->kind.v.s.len <= S_KIND_MAX;
    for (uint32_t i = 0; kind_ok && i < s->kind.v.s.len; i++) {
        char c = s->kind.v.s.p[i];
        kind_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
    }
    if (!kind_ok) {
        snprintf(why->detail, sizeof why->detail,
                 "field 'kind' must be 1..%d bytes of [A-Za-z0-9_.-]", S_KIND_MAX);
        return -1;
    }
    if (s->has_producer && !s->has_pseq) {
        why->code = EVENT_E_MISSING_FIELD;
        snprintf(why->detail, sizeof why->detail, "field 'pseq' is required with 'producer'");
        return -1;
    }
    if (s->has_producer && (s->producer.v.s.len < 1 || s->producer.v.s.len > EVENT_PRODUCER_MAX)) {
        snprintf(why->detail, sizeof why->detail, "field 'producer' must be 1..%d bytes",
                 EVENT_PRODUCER_MAX);
        return -1;
    }
    if (s->has_timeout && (s->timeout_s < 1 || s->timeout_s > S_TIMEOUT_MAX)) {
        snprintf(why->detail, sizeof why->detail, "field 'timeout_s' must be 1..%d", S_TIMEOUT_MAX);
        return -1;
    }
    if (s->has_retries && s->max_retries > S_RETRIES_MAX) {
        snprintf(why->detail, sizeof why->detail, "field 'max_retries' must be 0..%d",
                 S_RETRIES_MAX);
        return -1;
    }
    if (s->args_len > EVENT_DATA_MAX) {
        why->code = EVENT_E_TOO_LARGE;
        snprintf(why->detail, sizeof why->detail, "field 'args' is %zu bytes; the limit is %d",
                 s->args_len, EVENT_DATA_MAX);
        return -1;
    }
    return 0;
}

/*  The idempotency key of a submit, in key (NUL-free bytes + decimal). */
static size_t
s_idem_key(const s_submit_t *s, char *key, size_t cap)
{
    int n = snprintf(key, cap, "%.*s%c%" PRIu64, (int)s->producer.v.s.len, s->producer.v.s.p, 0,
                     s->pseq);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static void
s_idem_put(bk_jobs_t *self, const char *key, size_t klen, const char *tid, size_t tlen)
{
    s_idem_t *e = self->ring[self->ring_next];
    if (e)
        strmap_remove(self->idem, e->key, e->key_len);
    else if (!(e = malloc(sizeof *e)))
        return;
    memcpy(e->key, key, klen);
    e->key_len = klen;
    memcpy(e->task_id, tid, tlen);
    e->task_id[tlen] = '\0';
    if (strmap_put(self->idem, e->key, e->key_len, e) != 0) {
        free(e);
        e = NULL;
    }
    self->ring[self->ring_next] = e;
    self->ring_next = (self->ring_next + 1) % S_IDEM_MAX;
}

/*  {"ok":true,"task_id":..[,"pseq":N][,"duplicate":true]} into b. */
static void
s_pack_accepted(buf_t *b, const char *tid, size_t tlen, const s_submit_t *s, int duplicate)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, buf_msgpack_write);
    msgpack_pack_map(&pk, 2 + (s->has_pseq ? 1 : 0) + (duplicate ? 1 : 0));
    wire_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    wire_pack_kv_str(&pk, "task_id", tid, tlen);
    if (s->has_pseq)
        wire_pack_kv_u64(&pk, "pseq", s->pseq);
    if (duplicate) {
        wire_pack_str(&pk, "duplicate");
        msgpack_pack_true(&pk);
    }
}

static void
s_submit(broker_t *bk, bk_zpeer_t *peer, mp_reader_t *r, uint32_t pairs)
{
    bk_jobs_t *self = bk->jobs;
    s_submit_t s = {0};
    s_why_t why;
    if (s_read_submit(r, pairs, &s, &why) != 0) {
        s_refuse(bk, peer, why.code, why.detail, s.has_pseq, s.pseq);
        return;
    }
    char key[EVENT_PRODUCER_MAX + 24];
    size_t klen = s.has_producer ? s_idem_key(&s, key, sizeof key) : 0;
    s_idem_t *seen = klen ? strmap_get(self->idem, key, klen) : NULL;
    if (seen) {
        buf_t b;
        buf_init(&b);
        s_pack_accepted(&b, seen->task_id, strlen(seen->task_id), &s, 1);
        s_send(peer, &b);
        buf_free(&b);
        self->stats.duplicates++;
        return;
    }
    char made[24];
    const char *tid = made;
    size_t tlen;
    if (s.has_task) {
        tid = s.task_id.v.s.p;
        tlen = s.task_id.v.s.len;
    }
    else
        tlen = (size_t)snprintf(made, sizeof made, "j-%016" PRIx64, self->next_id++);
    if (tlen == 0 || tlen > EVENT_TASK_ID_MAX || s.user_id.v.s.len == 0 ||
        s.user_id.v.s.len > EVENT_USER_ID_MAX) {
        s_refuse(bk, peer, EVENT_E_INVALID_VALUE,
                 tlen == 0 || tlen > EVENT_TASK_ID_MAX ? "field 'task_id' must be 1..128 bytes"
                                                       : "field 'user_id' must be 1..64 bytes",
                 s.has_pseq, s.pseq);
        return;
    }
    if (strmap_get(self->jobs, tid, tlen)) {
        s_refuse(bk, peer, "task_exists", "a job with this task_id is queued or running",
                 s.has_pseq, s.pseq);
        return;
    }
    if (self->queued >= self->max_queued) {
        char d[120];
        snprintf(d, sizeof d, "%u jobs are queued, the broker's limit (--max-queued)",
                 self->queued);
        s_refuse(bk, peer, "queue_full", d, s.has_pseq, s.pseq);
        return;
    }
    s_kind_t *kind = s_kind(self, s.kind.v.s.p, s.kind.v.s.len);
    s_job_t *j = calloc(1, sizeof *j + tlen + 1 + s.user_id.v.s.len + 1);
    if (!kind || !j || (s.args_len && !(j->args = malloc(s.args_len)))) {
        if (j)
            s_free_job(j);
        s_refuse(bk, peer, "internal", "the broker ran out of memory", s.has_pseq, s.pseq);
        return;
    }
    memcpy(j->ids, tid, tlen);
    memcpy(j->ids + tlen + 1, s.user_id.v.s.p, s.user_id.v.s.len);
    j->tid_len = (uint16_t)tlen;
    j->uid_len = (uint8_t)s.user_id.v.s.len;
    j->kind = kind;
    if (s.args_len)
        memcpy(j->args, s.args, s.args_len);
    j->args_len = (uint32_t)s.args_len;
    j->timeout_s = s.has_timeout ? (uint32_t)s.timeout_s : S_TIMEOUT_DEFAULT;
    j->max_retries = s.has_retries ? (uint32_t)s.max_retries : S_RETRIES_DEFAULT;
    /* The args must be what an event's data may be: checked by the event
     * path itself (an event carrying them is decoded, never recorded). */
    if (j->args_len) {
        buf_t probe;
        buf_init(&probe);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &probe, buf_msgpack_write);
        msgpack_pack_map(&pk, 4);
        wire_pack_kv_str(&pk, "task_id", s_tid(j), j->tid_len);
        wire_pack_kv_str(&pk, "user_id", s_uid(j), j->uid_len);
        wire_pack_kv_str(&pk, "status", "queued", 6);
        wire_pack_str(&pk, "data");
        pk.callback(pk.data, (const char *)j->args, j->args_len);
        event_t ev;
        event_error_t err;
        int oom = !buf_ok(&probe);
        int bad = oom || event_decode(&ev, probe.data, probe.len, EVENT_FROM_WORKER, &err) != 0;
        buf_free(&probe);
        if (bad) {
            char d[240];
            snprintf(d, sizeof d, "args: %s", oom ? "out of memory" : err.detail);
            s_refuse(bk, peer, oom ? "internal" : err.code, d, s.has_pseq, s.pseq);
            s_free_job(j);
            return;
        }
    }
    buf_t answer;
    buf_init(&answer);
    s_pack_accepted(&answer, s_tid(j), j->tid_len, &s, 0);
    if (s_emit(bk, j, "queued", NULL, 0, NULL, 0, NULL, NULL, peer, &answer, &why) != 0) {
        buf_free(&answer);
        s_refuse(bk, peer, why.code, why.detail, s.has_pseq, s.pseq);
        s_free_job(j);
        return;
    }
    buf_free(&answer);
    if (strmap_put(self->jobs, j->ids, j->tid_len, j) != 0) {
        log_error(&bk->log, "out of memory for job %s", s_tid(j)); /* its task stays queued */
        s_free_job(j);
        return;
    }
    if (klen)
        s_idem_put(self, key, klen, s_tid(j), j->tid_len);
    s_enqueue(self, j);
    self->stats.submitted++;
    log_info(&bk->log, "job %s submitted: kind %s, user %s", s_tid(j), kind->name, s_uid(j));
    s_dispatch_kind(bk, kind);
}

/*  {"type":"cancel","task_id":..,"attempt":N} to a running job's worker. */
static void
s_send_cancel(const s_job_t *j)
{
    if (!j->worker)
        return;
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    wire_pack_kv_str(&pk, "type", "cancel", 6);
    wire_pack_kv_str(&pk, "task_id", s_tid(j), j->tid_len);
    wire_pack_kv_u64(&pk, "attempt", j->attempt);
    s_send(j->worker->peer, &b);
    buf_free(&b);
}

/*  {"type":"cancel","task_id":..,"user_id":..}: only the job's own user. */
static void
s_cancel(broker_t *bk, bk_zpeer_t *peer, mp_reader_t *r, uint32_t pairs)
{
    mp_value_t tid = {0}, uid = {0};
    for (uint32_t i = 0; i < pairs; i++) {
        mp_value_t k, v;
        if (mp_read_pair(r, &k, &v, 4) != 0) {
            s_refuse(bk, peer, EVENT_E_MALFORMED, "the message is not valid msgpack", 0, 0);
            return;
        }
        if (mp_str_eq(&k, "task_id") && v.type == MP_STR)
            tid = v;
        else if (mp_str_eq(&k, "user_id") && v.type == MP_STR)
            uid = v;
        else if (!mp_str_eq(&k, "type")) {
            s_refuse(bk, peer, EVENT_E_UNKNOWN_FIELD,
                     "a cancel carries type, task_id and user_id (strings)", 0, 0);
            return;
        }
    }
    if (tid.type != MP_STR || uid.type != MP_STR) {
        s_refuse(bk, peer, EVENT_E_MISSING_FIELD, "a cancel needs task_id and user_id", 0, 0);
        return;
    }
    s_job_t *j = strmap_get(bk->jobs->jobs, tid.v.s.p, tid.v.s.len);
    if (!j) {
        s_refuse(bk, peer, "not_found", "no queued or running job has this task_id", 0, 0);
        return;
    }
    if (j->uid_len != uid.v.s.len || memcmp(s_uid(j), uid.v.s.p, uid.v.s.len) != 0) {
        /* not this user's: the same answer as for no job, so ids do not leak */
        s_refuse(bk, peer, "not_found", "no queued or running job has this task_id", 0, 0);
        return;
    }
    const char *was = j->state == S_RUNNING || j->state == S_CANCELLING ? "running" : "queued";
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 2);
    wire_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    wire_pack_kv_str(&pk, "was", was, strlen(was));
    s_send(peer, &b);
    buf_reset(&b);
    log_info(&bk->log, "job %s: cancel asked (%s)", s_tid(j), was);
    if (j->state == S_RUNNING) {
        s_send_cancel(j);
        j->state = S_CANCELLING;
        j->due_ms = bk->now_ms + S_CANCEL_WAIT_MS;
    }
    else if (j->state != S_CANCELLING)
        s_finish(bk, j, "cancelled", NULL, NULL, 0, NULL);
    buf_free(&b);
}

/* ---------------------------------------------------------------- workers */

static void
s_welcome(s_worker_t *w)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    wire_pack_kv_str(&pk, "type", "welcome", 7);
    wire_pack_kv_u64(&pk, "heartbeat_ms", S_HEARTBEAT_MS);
    wire_pack_kv_u64(&pk, "liveness", S_LIVENESS);
    s_send(w->peer, &b);
    buf_free(&b);
}

static void
s_hello(broker_t *bk, bk_zpeer_t *peer, mp_reader_t *r, uint32_t pairs)
{
    bk_jobs_t *self = bk->jobs;
    s_worker_t *old = strmap_get(self->peers, &peer, sizeof peer);
    if (old)
        s_worker_gone(bk, old, "it said hello again");
    s_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->concurrency = 1;
    snprintf(w->name, sizeof w->name, "%s", bk_zpeer_addr(peer));
    for (uint32_t i = 0; i < pairs; i++) {
        mp_value_t k, v;
        const uint8_t *at = r->p;
        if (mp_read_pair(r, &k, &v, 4) != 0)
            break;
        if (mp_str_eq(&k, "name") && v.type == MP_STR)
            snprintf(w->name, sizeof w->name, "%.*s", (int)(v.v.s.len > S_NAME_MAX ? S_NAME_MAX
                                                                                   : v.v.s.len),
                     v.v.s.p);
        else if (mp_str_eq(&k, "concurrency") && v.type == MP_UINT && v.v.u >= 1 && v.v.u <= 10000)
            w->concurrency = (uint32_t)v.v.u;
        else if (mp_str_eq(&k, "kinds") && v.type == MP_ARRAY) {
            mp_reader_t kr;
            mp_reader_init(&kr, at, (size_t)(r->p - at));
            mp_value_t skip;
            (void)mp_read(&kr, &skip); /* the key */
            (void)mp_read(&kr, &skip); /* the array header */
            for (uint32_t n = 0; n < skip.v.n; n++) {
                mp_value_t kind;
                if (mp_read(&kr, &kind) != 0)
                    break;
                s_kind_t *kk = kind.type == MP_STR ? s_kind(self, kind.v.s.p, kind.v.s.len) : NULL;
                if (kk && w->nkinds < S_KINDS_PER_WORKER && !s_serves(w, kk))
                    w->kinds[w->nkinds++] = kk;
            }
        }
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
static s_job_t *
s_its_job(bk_jobs_t *self, s_worker_t *w, const mp_value_t *tid, uint64_t attempt)
{
    s_job_t *j = tid->type == MP_STR ? strmap_get(self->jobs, tid->v.s.p, tid->v.s.len) : NULL;
    if (!j || j->worker != w || (attempt && attempt != j->attempt) ||
        (j->state != S_RUNNING && j->state != S_CANCELLING))
        return NULL;
    return j;
}

/*  started, progress, done, release from worker w. */
static void
s_report(broker_t *bk, s_worker_t *w, const mp_value_t *type, mp_reader_t *r, uint32_t pairs)
{
    mp_value_t tid = {0}, status = {0}, reason = {0}, message = {0}, progress = {0};
    uint64_t attempt = 0;
    s_raw_t result = {0};
    for (uint32_t i = 0; i < pairs; i++) {
        mp_value_t k, v;
        const uint8_t *at = r->p;
        if (mp_read_pair(r, &k, &v, EVENT_DEPTH_MAX + 1) != 0)
            return;
        if (mp_str_eq(&k, "task_id"))
            tid = v;
        else if (mp_str_eq(&k, "attempt") && v.type == MP_UINT)
            attempt = v.v.u;
        else if (mp_str_eq(&k, "status") && v.type == MP_STR)
            status = v;
        else if (mp_str_eq(&k, "reason") && v.type == MP_STR)
            reason = v;
        else if (mp_str_eq(&k, "message") && v.type == MP_STR)
            message = v;
        else if (mp_str_eq(&k, "progress"))
            progress = v;
        else if (mp_str_eq(&k, "result")) {
            mp_reader_t kr;
            mp_reader_init(&kr, at, (size_t)(r->p - at));
            mp_value_t key;
            (void)mp_read(&kr, &key);
            result.p = kr.p;
            result.len = (size_t)(r->p - kr.p);
        }
    }
    s_job_t *j = s_its_job(bk->jobs, w, &tid, attempt);
    if (!j)
        return;
    const char *msg = message.type == MP_STR ? message.v.s.p : NULL;
    size_t mlen = message.type == MP_STR ? message.v.s.len : 0;
    s_why_t why;
    if (mp_str_eq(type, "started")) {
        if (j->state == S_RUNNING &&
            s_emit(bk, j, "running", NULL, 0, NULL, 1, s_pack_worker, w, NULL, NULL, &why) != 0)
            log_warn(&bk->log, "job %s: running refused: %s", s_tid(j), why.detail);
    }
    else if (mp_str_eq(type, "progress")) {
        int has_p = progress.type == MP_UINT || progress.type == MP_INT ||
                    progress.type == MP_FLOAT;
        if (j->state == S_RUNNING && s_emit(bk, j, "running", msg, mlen, has_p ? &progress : NULL,
                                            1, s_pack_worker, w, NULL, NULL, &why) != 0)
            log_warn(&bk->log, "job %s: progress refused: %s", s_tid(j), why.detail);
    }
    else if (mp_str_eq(type, "done")) {
        char st[16] = "failed", rs[48] = "";
        if (status.type == MP_STR && status.v.s.len < sizeof st)
            snprintf(st, sizeof st, "%.*s", (int)status.v.s.len, status.v.s.p);
        if (reason.type == MP_STR)
            snprintf(rs, sizeof rs, "%.*s", (int)(reason.v.s.len < 47 ? reason.v.s.len : 47),
                     reason.v.s.p);
        if (j->state == S_CANCELLING)
            snprintf(st, sizeof st, "cancelled");
        if (strcmp(st, "succeeded") == 0)
            s_finish(bk, j, st, NULL, msg, mlen, result.p ? &result : NULL);
        else if (strcmp(st, "cancelled") == 0)
            s_finish(bk, j, st, NULL, msg, mlen, NULL);
        else
            s_finish(bk, j, "failed", rs[0] ? rs : "failed", msg, mlen, NULL);
    }
    else if (mp_str_eq(type, "release")) {
        /* handed back (the worker is stopping): queued again, no retry used */
        w->running--;
        j->attempt--;
        if (j->state == S_CANCELLING) {
            j->worker = NULL;
            j->state = S_RUNNING;
            s_finish(bk, j, "cancelled", NULL, NULL, 0, NULL);
            return;
        }
        s_enqueue(bk->jobs, j);
        if (s_emit(bk, j, "queued", "handed back by its worker", 25, NULL, 0, NULL, NULL, NULL,
                   NULL, &why) != 0)
            log_warn(&bk->log, "job %s: queued refused: %s", s_tid(j), why.detail);
        log_info(&bk->log, "job %s handed back by worker %s", s_tid(j), w->name);
    }
    s_dispatch(bk);
}

/* ---------------------------------------------------------------- the socket */

static void
s_message(broker_t *bk, bk_zmsg_t *m)
{
    size_t at = 0;
    while (at + 1 < m->count && m->frames[at].len == 0)
        at++; /* a REQ's delimiter */
    if (m->truncated || at + 1 != m->count) {
        s_refuse(bk, m->peer, EVENT_E_MALFORMED, "a message must be one msgpack map in one frame",
                 0, 0);
        return;
    }
    mp_reader_t r;
    mp_value_t top, k, type = {0};
    mp_reader_init(&r, m->frames[at].p, m->frames[at].len);
    if (!mp_check(m->frames[at].p, m->frames[at].len, EVENT_DEPTH_MAX + 2) ||
        mp_read(&r, &top) != 0 || top.type != MP_MAP) {
        s_refuse(bk, m->peer, EVENT_E_MALFORMED, "a message must be one msgpack map", 0, 0);
        return;
    }
    /* find "type" first (anywhere in the map) */
    mp_reader_t scan = r;
    for (uint32_t i = 0; i < top.v.n; i++) {
        mp_value_t v;
        if (mp_read_pair(&scan, &k, &v, EVENT_DEPTH_MAX + 1) != 0)
            break;
        if (mp_str_eq(&k, "type") && v.type == MP_STR)
            type = v;
    }
    s_worker_t *w = strmap_get(bk->jobs->peers, &m->peer, sizeof m->peer);
    if (w)
        w->seen_ms = bk->now_ms;
    if (type.type != MP_STR) {
        s_refuse(bk, m->peer, EVENT_E_MISSING_FIELD, "field 'type' (a string) is required", 0, 0);
        return;
    }
    if (mp_str_eq(&type, "submit"))
        s_submit(bk, m->peer, &r, top.v.n);
    else if (mp_str_eq(&type, "cancel"))
        s_cancel(bk, m->peer, &r, top.v.n);
    else if (mp_str_eq(&type, "hello"))
        s_hello(bk, m->peer, &r, top.v.n);
    else if (w && mp_str_eq(&type, "heartbeat"))
        ;
    else if (w && mp_str_eq(&type, "bye")) {
        w->leaving = 1;
        log_info(&bk->log, "worker %s is leaving; %u jobs running", w->name, w->running);
    }
    else if (w && (mp_str_eq(&type, "started") || mp_str_eq(&type, "progress") ||
                   mp_str_eq(&type, "done") || mp_str_eq(&type, "release")))
        s_report(bk, w, &type, &r, top.v.n);
    else if (!w && (mp_str_eq(&type, "heartbeat") || mp_str_eq(&type, "started") ||
                    mp_str_eq(&type, "progress") || mp_str_eq(&type, "done") ||
                    mp_str_eq(&type, "release") || mp_str_eq(&type, "bye")))
        ; /* a worker we do not know (the broker restarted): its hello will come */
    else
        s_refuse(bk, m->peer, "unknown_type",
                 "type must be submit, cancel, or a pool worker's message", 0, 0);
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
    if (n && bk_commit_flush(bk) != 0) {
        log_error(&bk->log, "journal write failed: %s; stopping", strerror(errno));
        bk->stop = 1;
        bk->exit_code = 1;
    }
    return n;
}

int64_t
bk_jobs_tick(broker_t *bk, int64_t now)
{
    bk_jobs_t *self = bk->jobs;
    bk->now_ms = now;
    bk->wall_ms = clock_wall_ms();
    int64_t next = now + S_HEARTBEAT_MS;
    /* workers: dead ones, and heartbeats to the live */
    int beat = now >= self->next_beat_ms;
    if (beat)
        self->next_beat_ms = now + S_HEARTBEAT_MS;
    for (s_worker_t *w = self->whead, *wn; w; w = wn) {
        wn = w->next;
        if (now - w->seen_ms > (int64_t)S_HEARTBEAT_MS * S_LIVENESS) {
            s_worker_gone(bk, w, "no heartbeat");
            continue;
        }
        if (beat) {
            buf_t b;
            buf_init(&b);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &b, buf_msgpack_write);
            msgpack_pack_map(&pk, 1);
            wire_pack_kv_str(&pk, "type", "heartbeat", 9);
            s_send(w->peer, &b);
            buf_free(&b);
        }
    }
    /* delayed retries due, running jobs past their backstop */
    for (s_job_t *j = self->dhead, *jn; j; j = jn) {
        jn = j->next;
        if (j->due_ms <= now) {
            DLIST_REMOVE(self->dhead, self->dtail, j, prev, next);
            s_enqueue(self, j);
        }
        else if (j->due_ms < next)
            next = j->due_ms;
    }
    size_t pos = 0, n = 0;
    s_job_t *j, *late[64];
    while ((j = strmap_next(self->jobs, &pos)) != NULL && n < 64)
        if ((j->state == S_RUNNING || j->state == S_CANCELLING) && j->due_ms <= now)
            late[n++] = j;
    for (size_t i = 0; i < n; i++) {
        j = late[i];
        s_send_cancel(j);
        if (j->state == S_CANCELLING)
            s_finish(bk, j, "cancelled", NULL, "its worker did not confirm the cancel", 37,
                     NULL);
        else
            s_finish(bk, j, "failed", "timeout", "the job ran past its timeout_s", 30, NULL);
    }
    s_dispatch(bk);
    if (bk_commit_flush(bk) != 0) {
        log_error(&bk->log, "journal write failed: %s; stopping", strerror(errno));
        bk->stop = 1;
        bk->exit_code = 1;
    }
    return next;
}
