/*  jobs.h: what the jobs modules share (private to broker/jobs*.c).
 *
 *    jobs.c         the socket: messages in, workers (hello, heartbeats,
 *                   reports, read by common/jobs_wire.c), queue and
 *                   dispatch, retries, the tick
 *    jobs_submit.c  submit (with its idempotency window) and cancel
 *    jobs_out.c     what leaves: task events through the normal path,
 *                   answers, job and cancel messages to workers
 */
#ifndef TC_BROKER_JOBS_H
#define TC_BROKER_JOBS_H

#include <msgpack.h>
#include <stdint.h>

#include "broker.h"
#include "jobs_wire.h"

#define BK_JOBS_HEARTBEAT_MS     1000
#define BK_JOBS_LIVENESS         3     /* heartbeats a peer may miss */
#define BK_JOBS_CANCEL_WAIT_MS   10000 /* a running job's worker has this long to confirm */
#define BK_JOBS_TIMEOUT_SLACK_MS 10000 /* the broker's backstop past a job's timeout */
#define BK_JOBS_BACKOFF_MS       1000  /* first retry; doubled each time */
#define BK_JOBS_BACKOFF_MAX_MS   60000
#define BK_JOBS_KIND_MAX         JOBS_KIND_MAX
#define BK_JOBS_KINDS_PER_WORKER 32
#define BK_JOBS_NAME_MAX         64
#define BK_JOBS_IDEM_MAX         65536 /* (producer, pseq) of submits remembered */
#define BK_JOBS_TIMEOUT_DEFAULT  3600
#define BK_JOBS_TIMEOUT_MAX      604800
#define BK_JOBS_RETRIES_DEFAULT  3
#define BK_JOBS_RETRIES_MAX      100
#define BK_JOBS_IDEM_KEY_MAX     (EVENT_PRODUCER_MAX + 24)
/*  A job running when the broker restarted waits this long for a worker to
 *  report on it (workers reconnect within their liveness period). */
#define BK_JOBS_ORPHAN_MS (BK_JOBS_HEARTBEAT_MS * BK_JOBS_LIVENESS * 2)

typedef struct bk_jkind bk_jkind_t;
typedef struct bk_jworker bk_jworker_t;
typedef struct bk_job bk_job_t;

struct bk_jkind {
    bk_job_t *head, *tail; /* queued, oldest first */
    uint32_t queued;
    char name[BK_JOBS_KIND_MAX + 1];
};

struct bk_jworker {
    bk_jworker_t *prev, *next;
    bk_zpeer_t *peer;
    bk_jkind_t *kinds[BK_JOBS_KINDS_PER_WORKER];
    uint32_t nkinds, concurrency, running;
    int64_t seen_ms;     /* last message from it */
    int64_t dispatch_ms; /* last job given to it (least recently used first) */
    int leaving;         /* "bye": no new jobs */
    char name[BK_JOBS_NAME_MAX + 1];
};

typedef enum { BK_JOB_QUEUED, BK_JOB_DELAYED, BK_JOB_RUNNING, BK_JOB_CANCELLING } bk_jstate_t;

struct bk_job {
    bk_job_t *prev, *next; /* its kind's queue, or the delayed list */
    bk_jkind_t *kind;
    bk_jworker_t *worker; /* BK_JOB_RUNNING, BK_JOB_CANCELLING */
    bk_jstate_t state;
    uint32_t attempt, max_retries, timeout_s;
    int64_t due_ms;   /* DELAYED: queued again; RUNNING: backstop; CANCELLING: give up */
    int64_t since_ms; /* QUEUED: when it was queued; RUNNING: when it was dispatched */
    uint64_t lsn;     /* journal position of its last 'J' (jobs_persist.c) */
    uint8_t idem_len; /* its submit's (producer, pseq) key, 0: none */
    char idem[BK_JOBS_IDEM_KEY_MAX];
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
} bk_jidem_t;

struct bk_jobs {
    strmap_t *jobs;  /* task_id -> bk_job_t, live jobs */
    strmap_t *kinds; /* name -> bk_jkind_t, never freed while the broker runs */
    strmap_t *peers; /* peer pointer -> bk_jworker_t */
    bk_jworker_t *whead, *wtail;
    bk_job_t *dhead, *dtail; /* delayed retries */
    bk_job_t *rhead, *rtail; /* while the journal is replayed, in record order */
    uint32_t queued, max_queued;
    int64_t next_beat_ms;
    strmap_t *idem; /* key -> bk_jidem_t */
    bk_jidem_t **ring;
    uint32_t ring_next;
    uint64_t next_id;
    bk_jobs_stats_t stats;
};

static inline const char *
bk_job_tid(const bk_job_t *j)
{
    return j->ids;
}

static inline const char *
bk_job_uid(const bk_job_t *j)
{
    return j->ids + j->tid_len + 1;
}

/*  Why bk_job_emit() could not record an event: a code and a sentence. */
typedef struct {
    const char *code;
    char detail[200];
} bk_jwhy_t;

/*  Adds more pairs to an event's "data" map. */
typedef void (*bk_jpack_fn)(msgpack_packer *pk, const void *arg);

typedef struct {
    const uint8_t *p;
    size_t len;
} bk_jraw_t;

/* jobs_out.c */
/*  Records and publishes a task event for j through the normal event path
 *  (validated as a worker's event would be), and queues answer (if any) to
 *  peer behind it in commit.c. "data" holds kind, attempt and extra_pairs
 *  more from extra(arg). 0, or -1 with why. */
int bk_job_emit(broker_t *bk, const bk_job_t *j, const char *status, const char *message,
                size_t mlen, const jobs_progress_t *progress, uint32_t extra_pairs,
                bk_jpack_fn extra, const void *arg, bk_zpeer_t *peer, const buf_t *answer,
                bk_jwhy_t *why);
void bk_job_pack_worker(msgpack_packer *pk, const void *arg); /* arg: bk_jworker_t */
void bk_job_pack_reason(msgpack_packer *pk, const void *arg); /* arg: a string */
void bk_job_pack_result(msgpack_packer *pk, const void *arg); /* arg: bk_jraw_t */
/*  One frame to peer now (dropped if it is gone). */
void bk_job_send(bk_zpeer_t *peer, const buf_t *msg);
/*  {"ok":false,"error":code,"detail":detail[,"pseq":N]} to peer, now. */
void bk_job_refuse(broker_t *bk, bk_zpeer_t *peer, const char *code, const char *detail,
                   int has_pseq, uint64_t pseq);
void bk_job_send_job(const bk_job_t *j, bk_jworker_t *w);
void bk_job_send_cancel(const bk_job_t *j);

/* jobs.c */
void bk_job_free(bk_job_t *j);
/*  The kind of that name, made on first use; NULL if the name is too long
 *  or memory ran out. */
bk_jkind_t *bk_job_kind(bk_jobs_t *self, const char *name, size_t len);
void bk_job_enqueue(bk_jobs_t *self, bk_job_t *j);
/*  Gives queued jobs of kind k to workers while both are there. */
void bk_job_dispatch_kind(broker_t *bk, bk_jkind_t *k);
/*  A job's end, told to the user (result or reason); the job is freed. */
void bk_job_finish(broker_t *bk, bk_job_t *j, const char *status, const char *reason,
                   const char *message, size_t mlen, const bk_jraw_t *result);

/* jobs_persist.c */
/*  Appends j's 'J' record (its current state) and notes its lsn. */
void bk_job_persist(broker_t *bk, bk_job_t *j);
/*  Appends j's 'K' record (it ended). */
void bk_job_persist_gone(broker_t *bk, const bk_job_t *j);
/*  1 if j's last record may be acknowledged (--fsync): it may be dispatched. */
int bk_job_durable(const broker_t *bk, const bk_job_t *j);

/* jobs_submit.c */
/*  Remembers a submit's idempotency key for the job task id. */
void bk_job_remember(bk_jobs_t *self, const char *key, size_t klen, const char *tid, size_t tlen);
/*  A submit / a cancel (data: one well-formed msgpack map), answered. */
void bk_job_submit(broker_t *bk, bk_zpeer_t *peer, const uint8_t *data, size_t len);
void bk_job_cancel(broker_t *bk, bk_zpeer_t *peer, const uint8_t *data, size_t len);

#endif
