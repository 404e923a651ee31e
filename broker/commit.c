/*  commit.c: what waits for the journal before it may leave.
 *
 *  Every answer to a worker (with the event it publishes, if accepted) and
 *  every sync answer that shows recorded state go through one FIFO. Each
 *  entry carries a journal position: everything recorded before it had been
 *  appended up to there. An entry leaves once the journal holds its
 *  position as the fsync policy (--fsync) requires:
 *    batch     on disk: the syncer's fdatasync() covered it (group commit);
 *    interval  written (in the page cache); synced every interval;
 *    never     written; the OS writes it back.
 *  Without a journal an entry leaves right after its batch. So an ok means
 *  exactly what docs/protocol.md says for the policy, and a gateway never
 *  sees an event that a restarted broker would not know (with batch, after
 *  any crash; with the others, after a crash of the broker process).
 *
 *  The FIFO keeps the order things were recorded in: a user's events are
 *  published in seq order, a worker's answers come back in the order it
 *  sent, and a resend of an event that is not yet on disk is answered
 *  (duplicate) only after the original is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "clock.h"

#define S_MIN_CAP 1024

/*  Doubles the ring, moving what waits to its start (in order). */
static int
s_grow(bk_commit_t *c)
{
    size_t cap = c->cap ? c->cap * 2 : S_MIN_CAP;
    bk_out_t *ring = malloc(cap * sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < c->count; i++) {
        bk_out_t *from = &c->ring[(c->head + i) % c->cap], *to = &ring[i];
        *to = *from;
        zmq_msg_init(&to->identity);
        zmq_msg_move(&to->identity, &from->identity);
        zmq_msg_close(&from->identity);
    }
    free(c->ring);
    c->ring = ring;
    c->cap = cap;
    c->head = 0;
    return 0;
}

bk_out_t *
bk_commit_hold(broker_t *bk)
{
    bk_commit_t *c = &bk->commit;
    if (c->count == c->cap && s_grow(c) != 0)
        return NULL;
    bk_out_t *o = &c->ring[(c->head + c->count) % c->cap];
    c->count++;
    memset(o, 0, offsetof(bk_out_t, identity));
    zmq_msg_init(&o->identity);
    o->empties = 0;
    o->answer_len = 0;
    o->big = NULL;
    o->big_len = 0;
    o->lsn = bk->journal ? bk_journal_appended(bk->journal) : 0;
    return o;
}

/*  The position up to which entries may leave. */
static uint64_t
s_limit(const broker_t *bk)
{
    if (!bk->journal)
        return UINT64_MAX;
    return bk->commit.policy == BK_FSYNC_BATCH ? bk->commit.durable : bk->commit.written;
}

int
bk_commit_ready(const broker_t *bk, uint64_t lsn)
{
    return lsn <= s_limit(bk);
}

/*  Sends [identity][""...][answer] to the worker. */
static void
s_answer(broker_t *bk, bk_out_t *o)
{
    if (zmq_msg_send(&o->identity, bk->ingest, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return; /* the worker is gone: nothing to answer */
    for (unsigned i = 0; i < o->empties; i++)
        if (zmq_send(bk->ingest, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return;
    const char *data = o->big ? o->big : o->answer;
    size_t len = o->big ? o->big_len : o->answer_len;
    (void)zmq_send(bk->ingest, data, len, ZMQ_DONTWAIT);
}

/*  Sends one entry and releases what it held. */
static void
s_send(broker_t *bk, bk_out_t *o)
{
    if (o->blob) {
        if (bk_fanout_publish(bk, o->user, o->blob) != 0)
            log_error(&bk->log, "publish failed for user %.*s: %s", (int)o->user->id_len,
                      o->user->id, zmq_strerror(errno));
        bk_blob_unref(&o->blob);
        bk_state_unpin(&bk->state, o->user, bk->now_ms);
    }
    if (o->held) {
        bk_sync_release(bk, o);
        bk->sent |= BK_SOCK_SYNC;
    }
    else {
        s_answer(bk, o);
        bk->sent |= BK_SOCK_INGEST;
    }
    zmq_msg_close(&o->identity);
    free(o->big);
    o->big = NULL;
}

void
bk_commit_release(broker_t *bk)
{
    bk_commit_t *c = &bk->commit;
    uint64_t limit = s_limit(bk);
    while (c->count > 0 && bk->exit_code == 0) { /* nothing leaves after a journal error */
        bk_out_t *o = &c->ring[c->head];
        if (o->lsn > limit)
            break;
        s_send(bk, o);
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
}

int
bk_commit_flush(broker_t *bk)
{
    bk_commit_t *c = &bk->commit;
    if (bk->journal) {
        if (bk_journal_flush(bk->journal) != 0)
            return -1;
        c->written = bk_journal_written(bk->journal);
        if (c->policy == BK_FSYNC_BATCH && c->written > c->asked) {
            if (bk->syncer)
                bk_syncer_want(bk->syncer, c->written);
            else if (bk_journal_sync(bk->journal) == 0) /* no syncer (tests): now */
                c->durable = c->written;
            else
                return -1;
            c->asked = c->written;
        }
    }
    bk_commit_release(bk);
    return 0;
}

void
bk_commit_synced(broker_t *bk)
{
    bk_synced_t done;
    if (bk_syncer_poll(bk->syncer, &done) != 0) {
        /* The data may never reach the disk, whatever a retry says later
         * (the kernel may have dropped the dirty pages): stop without
         * acknowledging anything more. */
        log_error(&bk->log, "journal sync failed: %s; stopping so that no unrecorded event is "
                  "acknowledged", strerror(errno));
        bk->stop = 1;
        bk->exit_code = 1;
        return;
    }
    bk->stats.fsyncs = done.rounds;
    if (done.durable > bk->commit.durable)
        bk->commit.durable = done.durable;
    if (done.renamed)
        bk_compact_renamed(bk);
    bk_commit_release(bk);
}

void
bk_commit_destroy(bk_commit_t *c)
{
    for (size_t i = 0; i < c->count; i++) {
        bk_out_t *o = &c->ring[(c->head + i) % c->cap];
        bk_blob_unref(&o->blob);
        bk_sync_free_held(&o->held);
        zmq_msg_close(&o->identity);
        free(o->big);
    }
    free(c->ring);
    c->ring = NULL;
    c->cap = c->count = c->head = 0;
}

int
bk_commit_parse_policy(const char *text, bk_fsync_t *policy, uint64_t *interval_ms)
{
    if (!text)
        return -1;
    if (strcmp(text, "batch") == 0) {
        *policy = BK_FSYNC_BATCH;
        return 0;
    }
    if (strcmp(text, "never") == 0) {
        *policy = BK_FSYNC_NEVER;
        return 0;
    }
    if (strncmp(text, "interval", 8) != 0)
        return -1;
    *policy = BK_FSYNC_INTERVAL;
    *interval_ms = 1000;
    if (text[8] == '\0')
        return 0;
    return text[8] == ':' ? cfg_parse_u64(text + 9, 1, 3600000, interval_ms) : -1;
}
