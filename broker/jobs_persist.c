/*  jobs_persist.c: jobs in the journal, so a broker restart loses no
 *  queued or running job.
 *
 *  Records (after the kind byte; integers little-endian):
 *    'J' job   [u8 state: 0 queued, 1 running][u32 attempt][u32 max_retries]
 *              [u32 timeout_s][u32 args length][u8 task id length]
 *              [u8 user id length][u8 kind length][u8 idempotency key length]
 *              [task id][user id][kind][args][idempotency key]
 *    'K' gone  [task id]
 *  A 'J' is written when a job is submitted, given to a worker, or queued
 *  again; a 'K' when it ends. Replay keeps the last 'J' of every job
 *  without a later 'K', in the order the jobs were first recorded (each
 *  kind's queue comes back in submit order). A job that was running comes
 *  back running with no worker: the first pool worker that reports on it
 *  with the same attempt adopts it (workers keep their children across a
 *  broker restart and say hello again); if none does within a grace
 *  period, it is retried as if its worker had been lost. A compaction
 *  writes a 'J' for every live job.
 *
 *  A job is given to a worker only once its 'J' may be acknowledged under
 *  the --fsync policy (its lsn, commit.c): a job never runs that a
 *  restarted broker would not know.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlist.h"
#include "jobs.h"

#define S_HEAD 21

enum { S_REC_JOB = 'J', S_REC_GONE = 'K' };

static void
s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
s_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
s_append(bk_journal_t *out, const bk_job_t *j)
{
    size_t klen = strlen(j->kind->name);
    unsigned char h[S_HEAD];
    h[0] = j->state == BK_JOB_RUNNING || j->state == BK_JOB_CANCELLING ? 1 : 0;
    s_put32(h + 1, j->attempt);
    s_put32(h + 5, j->max_retries);
    s_put32(h + 9, j->timeout_s);
    s_put32(h + 13, j->args_len);
    h[17] = (unsigned char)j->tid_len;
    h[18] = j->uid_len;
    h[19] = (unsigned char)klen;
    h[20] = j->idem_len;
    /* the body in one piece: ids, kind, args, key */
    size_t blen = (size_t)j->tid_len + j->uid_len + klen + j->args_len + j->idem_len;
    unsigned char *body = malloc(blen ? blen : 1);
    if (!body)
        return; /* the journal cannot hold it: a restart would lose this job */
    unsigned char *p = body;
    memcpy(p, bk_job_tid(j), j->tid_len), p += j->tid_len;
    memcpy(p, bk_job_uid(j), j->uid_len), p += j->uid_len;
    memcpy(p, j->kind->name, klen), p += klen;
    if (j->args_len)
        memcpy(p, j->args, j->args_len), p += j->args_len;
    if (j->idem_len)
        memcpy(p, j->idem, j->idem_len);
    bk_journal_append(out, S_REC_JOB, h, sizeof h, body, blen);
    free(body);
}

void
bk_job_persist(broker_t *bk, bk_job_t *j)
{
    if (!bk->journal)
        return;
    s_append(bk->journal, j);
    j->lsn = bk_journal_appended(bk->journal);
}

void
bk_job_persist_gone(broker_t *bk, const bk_job_t *j)
{
    if (bk->journal)
        bk_journal_append(bk->journal, S_REC_GONE, bk_job_tid(j), j->tid_len, NULL, 0);
}

int
bk_job_durable(const broker_t *bk, const bk_job_t *j)
{
    return !bk->journal || bk_commit_ready(bk, j->lsn);
}

/*  Replay: a job record. */
static int
s_replay_job(broker_t *bk, const uint8_t *b, size_t len)
{
    bk_jobs_t *self = bk->jobs;
    if (len < S_HEAD)
        return -1;
    uint32_t args_len = s_get32(b + 13);
    size_t tl = b[17], ul = b[18], kl = b[19], il = b[20];
    if (len != S_HEAD + tl + ul + kl + args_len + il || !tl || !ul || !kl ||
        il > BK_JOBS_IDEM_KEY_MAX)
        return -1;
    const char *tid = (const char *)b + S_HEAD, *uid = tid + tl, *kind = uid + ul;
    const uint8_t *args = (const uint8_t *)kind + kl, *idem = args + args_len;
    bk_jkind_t *k = bk_job_kind(self, kind, kl);
    bk_job_t *j = strmap_get(self->jobs, tid, tl);
    if (!j) {
        j = calloc(1, sizeof *j + tl + 1 + ul + 1);
        if (!j || !k || (args_len && !(j->args = malloc(args_len)))) {
            if (j)
                bk_job_free(j);
            return -1;
        }
        memcpy(j->ids, tid, tl);
        memcpy(j->ids + tl + 1, uid, ul);
        j->tid_len = (uint16_t)tl;
        j->uid_len = (uint8_t)ul;
        if (args_len)
            memcpy(j->args, args, args_len);
        j->args_len = args_len;
        if (strmap_put(self->jobs, j->ids, tl, j) != 0) {
            bk_job_free(j);
            return -1;
        }
        DLIST_APPEND(self->rhead, self->rtail, j, prev, next); /* first recorded, first out */
    }
    j->kind = k;
    j->state = b[0] ? BK_JOB_RUNNING : BK_JOB_QUEUED;
    j->attempt = s_get32(b + 1);
    j->max_retries = s_get32(b + 5);
    j->timeout_s = s_get32(b + 9);
    j->idem_len = (uint8_t)il;
    memcpy(j->idem, idem, il);
    return 0;
}

/*  Replay: a job's end. */
static int
s_replay_gone(broker_t *bk, const uint8_t *b, size_t len)
{
    bk_jobs_t *self = bk->jobs;
    bk_job_t *j = strmap_remove(self->jobs, b, len);
    if (j) {
        DLIST_REMOVE(self->rhead, self->rtail, j, prev, next);
        bk_job_free(j);
    }
    return 0;
}

int
bk_jobs_replay(broker_t *bk, int kind, const uint8_t *body, size_t len)
{
    if (kind == S_REC_JOB)
        return s_replay_job(bk, body, len);
    if (kind == S_REC_GONE)
        return s_replay_gone(bk, body, len);
    return 1; /* not a job record */
}

void
bk_jobs_restored(broker_t *bk, int64_t now_ms)
{
    bk_jobs_t *self = bk->jobs;
    uint32_t queued = 0, running = 0;
    bk_job_t *j;
    while ((j = self->rhead) != NULL) {
        DLIST_REMOVE(self->rhead, self->rtail, j, prev, next);
        if (j->idem_len)
            bk_job_remember(self, j->idem, j->idem_len, bk_job_tid(j), j->tid_len);
        if (j->state == BK_JOB_QUEUED) {
            bk_job_enqueue(self, j);
            queued++;
            continue;
        }
        /* running when the broker stopped: waits for its worker to come back */
        j->worker = NULL;
        j->since_ms = now_ms;
        j->due_ms = now_ms + BK_JOBS_ORPHAN_MS;
        running++;
    }
    if (queued || running)
        log_info(&bk->log, "journal: %u queued and %u running jobs restored", queued, running);
}

int
bk_jobs_write_all(broker_t *bk, bk_journal_t *out)
{
    /* every kind's queue in order (a replay rebuilds it from the record
     * order), then the jobs that are running or waiting for a retry */
    size_t pos = 0;
    const bk_jkind_t *k;
    while ((k = strmap_next(bk->jobs->kinds, &pos)) != NULL)
        for (const bk_job_t *j = k->head; j; j = j->next)
            s_append(out, j);
    pos = 0;
    const bk_job_t *j;
    while ((j = strmap_next(bk->jobs->jobs, &pos)) != NULL)
        if (j->state != BK_JOB_QUEUED)
            s_append(out, j);
    return 0;
}
