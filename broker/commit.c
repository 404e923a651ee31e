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
#include "zmtp.h"

#define S_MIN_CAP 1024

/*  Doubles the ring, moving what waits to its start (in order). */
static int
s_grow(bk_commit_t *c)
{
    size_t cap = c->cap ? c->cap * 2 : S_MIN_CAP;
    bk_out_t *ring = malloc(cap * sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < c->count; i++)
        ring[i] = c->ring[(c->head + i) % c->cap];
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
    memset(o, 0, offsetof(bk_out_t, answer));
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

/*  Sends [""...][answer] to the worker (as it came: a REQ peer's delimiter
 *  comes back). */
static void
s_answer(bk_out_t *o)
{
    buf_t *out = bk_zpeer_out(o->peer);
    if (!out)
        return; /* the worker is gone, or not reading: nothing to answer */
    for (unsigned i = 0; i < o->empties; i++)
        zmtp_put_frame(out, "", 0, 1);
    const char *data = o->big ? o->big : o->answer;
    size_t len = o->big ? o->big_len : o->answer_len;
    zmtp_put_frame(out, data, len, 0);
}

/*  Sends one entry and releases what it held. */
static void
s_send(broker_t *bk, bk_out_t *o)
{
    if (o->blob) {
        bk_fanout_publish(bk, o->user, o->blob);
        bk_blob_unref(&o->blob);
        bk_state_unpin(&bk->state, o->user, bk->now_ms);
    }
    if (o->held)
        bk_sync_release(bk, o);
    else
        s_answer(o);
    bk_zpeer_unref(&o->peer);
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
        log_error(&bk->log,
                  "journal sync failed: %s; stopping so that no unrecorded event is "
                  "acknowledged",
                  strerror(errno));
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
        bk_zpeer_unref(&o->peer);
        free(o->big);
    }
    free(c->ring);
    c->ring = NULL;
    c->cap = c->count = c->head = 0;
}

int
bk_commit_parse_policy(const char *text, bk_fsync_t *policy, uint64_t *interval_ms,
                       uint64_t *delay_us)
{
    if (!text)
        return -1;
    *delay_us = 0;
    if (strncmp(text, "batch", 5) == 0 && (text[5] == '\0' || text[5] == ':')) {
        *policy = BK_FSYNC_BATCH;
        return text[5] == ':' ? cfg_parse_u64(text + 6, 0, 10000, delay_us) : 0;
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
