/*  state.c: per-user sequence numbers, the latest state of every task, and a
 *  bounded history per user (ZeroMQ guide's Clone pattern: snapshot +
 *  sequenced updates).
 *
 *  Memory is bounded three ways: terminal tasks leave after the retention
 *  time (a FIFO, since the retention is the same for all), idle users (no
 *  task, no subscriber) likewise, and history is capped per user and in
 *  total (one global FIFO over all users' entries, so the oldest entry
 *  anywhere is dropped first). Live state is never dropped to make room:
 *  a new task past the limits is refused with a clear error instead.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "dlist.h"

/* ---------------------------------------------------------------- blobs */

void
bk_blob_unref(bk_blob_t **b_p)
{
    bk_blob_t *b = *b_p;
    if (b && --b->refs == 0)
        free(b);
    *b_p = NULL;
}

/* ---------------------------------------------------------------- idle users */

static void
s_idle_unlink(bk_state_t *st, bk_user_t *u)
{
    if (!u->idle_ms)
        return;
    DLIST_REMOVE(st->ihead, st->itail, u, iprev, inext);
    u->idle_ms = 0;
}

/*  A user with no task and no subscriber is idle: it goes to the tail of the
 *  idle FIFO and is dropped when it has been idle for the retention time. */
static void
s_idle_update(bk_state_t *st, bk_user_t *u, int64_t now_ms)
{
    int idle = !u->subscribed && strmap_size(u->tasks) == 0 && u->pins == 0;
    if (!idle) {
        s_idle_unlink(st, u);
        return;
    }
    if (u->idle_ms)
        return;
    u->idle_ms = now_ms > 0 ? now_ms : 1;
    DLIST_APPEND(st->ihead, st->itail, u, iprev, inext);
}

/* ---------------------------------------------------------------- history */

static void
s_hist_pop_user_head(bk_state_t *st, bk_user_t *u)
{
    bk_hist_t *h = u->hhead;
    u->hhead = h->unext;
    if (!u->hhead)
        u->htail = NULL;
    u->hcount--;
    DLIST_REMOVE(st->ghead, st->gtail, h, gprev, gnext);
    bk_blob_t *b = h->blob; /* h is inside it */
    st->hist_bytes -= b->len;
    st->nhist--;
    bk_blob_unref(&b);
}

static void
s_hist_append(bk_state_t *st, bk_user_t *u, uint64_t seq, bk_blob_t *blob)
{
    if (st->limits.history_per_user == 0)
        return;
    bk_hist_t *h = &blob->hist;
    h->unext = NULL;
    h->user = u;
    h->seq = seq;
    h->blob = blob;
    blob->refs++;
    if (u->htail)
        u->htail->unext = h;
    else
        u->hhead = h;
    u->htail = h;
    u->hcount++;
    DLIST_APPEND(st->ghead, st->gtail, h, gprev, gnext);
    st->hist_bytes += blob->len;
    st->nhist++;

    while (u->hcount > st->limits.history_per_user)
        s_hist_pop_user_head(st, u);
    /* The oldest entry anywhere is always the oldest of its user. */
    while (st->hist_bytes > st->limits.history_bytes && st->ghead)
        s_hist_pop_user_head(st, st->ghead->user);
}

/* ---------------------------------------------------------------- tasks */

/*  Takes a terminal task out of the retention FIFO. */
static void
s_retention_unlink(bk_state_t *st, bk_task_t *t)
{
    if (!t->ended_ms)
        return;
    DLIST_REMOVE(st->rhead, st->rtail, t, rprev, rnext);
    t->ended_ms = 0;
}

/*  The task ended at ended_ms: it goes to the tail of the retention FIFO
 *  and no longer counts as live. */
static void
s_task_ended(bk_state_t *st, bk_task_t *t, int64_t ended_ms)
{
    if (t->ended_ms)
        s_retention_unlink(st, t);
    else
        t->user->nlive--;
    t->ended_ms = ended_ms > 0 ? ended_ms : 1;
    DLIST_APPEND(st->rhead, st->rtail, t, rprev, rnext);
}

/*  The task is live (again): out of the retention FIFO. */
static void
s_task_live(bk_state_t *st, bk_task_t *t)
{
    if (!t->ended_ms)
        return;
    s_retention_unlink(st, t);
    t->user->nlive++;
}

/*  A new task: live until an event says otherwise. */
static bk_task_t *
s_task_new(bk_state_t *st, bk_user_t *u, const event_t *ev)
{
    bk_task_t *t = calloc(1, sizeof *t + ev->task_id.len);
    if (!t)
        return NULL;
    memcpy(t->id, ev->task_id.p, ev->task_id.len);
    t->id_len = ev->task_id.len;
    t->user = u;
    if (strmap_put(u->tasks, t->id, t->id_len, t) != 0) {
        free(t);
        return NULL;
    }
    st->ntasks++;
    u->nlive++;
    return t;
}

static void
s_task_free(bk_state_t *st, bk_task_t *t)
{
    if (t->ended_ms)
        s_retention_unlink(st, t);
    else
        t->user->nlive--;
    if (t->blob) {
        st->state_bytes -= t->blob->len;
        bk_blob_unref(&t->blob);
    }
    st->ntasks--;
    free(t);
}

/* ---------------------------------------------------------------- users */

/*  Frees a user with its tasks and history; unmap: also remove it from the
 *  users map (not needed when the whole map goes). */
static void
s_user_free(bk_state_t *st, bk_user_t *u, int unmap)
{
    s_idle_unlink(st, u);
    while (u->hhead)
        s_hist_pop_user_head(st, u);
    size_t pos = 0;
    bk_task_t *t;
    while ((t = strmap_next(u->tasks, &pos)) != NULL)
        s_task_free(st, t);
    strmap_destroy(&u->tasks);
    if (unmap)
        strmap_remove(st->users, u->id, u->id_len);
    free(u);
}

bk_user_t *
bk_state_user(bk_state_t *st, const char *id, size_t len, int64_t now_ms)
{
    bk_user_t *u = strmap_get(st->users, id, len);
    if (u || len > EVENT_USER_ID_MAX)
        return u;
    if (strmap_size(st->users) >= st->limits.max_users) {
        if (!st->ihead)
            return NULL;
        s_user_free(st, st->ihead, 1); /* the longest idle user makes room */
    }
    u = calloc(1, sizeof *u + len + 1); /* the id follows, NUL-terminated */
    if (!u)
        return NULL;
    u->tasks = strmap_new();
    if (!u->tasks) {
        free(u);
        return NULL;
    }
    memcpy(u->id, id, len);
    u->id_len = (uint32_t)len;
    /* A user created again after being dropped gets a new epoch, so clients
     * and gateways know its seq started over. */
    int n = snprintf(u->epoch, sizeof u->epoch, "%s.%" PRIx64, st->epoch, ++st->user_ordinal);
    u->epoch_len = (uint8_t)n;
    if (strmap_put(st->users, u->id, u->id_len, u) != 0) {
        strmap_destroy(&u->tasks);
        free(u);
        return NULL;
    }
    s_idle_update(st, u, now_ms);
    return u;
}

void
bk_state_pin(bk_user_t *u)
{
    u->pins++;
}

void
bk_state_unpin(bk_state_t *st, bk_user_t *u, int64_t now_ms)
{
    if (--u->pins == 0)
        s_idle_update(st, u, now_ms);
}

int
bk_state_set_subscribed(bk_state_t *st, const char *id, size_t len, int subscribed, int64_t now_ms)
{
    if (!event_user_id_valid(id, len))
        return -1;
    bk_user_t *u = subscribed ? bk_state_user(st, id, len, now_ms) : strmap_get(st->users, id, len);
    if (!u || (!subscribed && !u->subscribed))
        return -1;
    u->subscribed = subscribed;
    s_idle_update(st, u, now_ms);
    return 0;
}

int
bk_state_init(bk_state_t *st, const bk_limits_t *limits)
{
    memset(st, 0, sizeof *st);
    st->limits = *limits;
    st->users = strmap_new();
    if (!st->users)
        return -1;
    unsigned char r[8];
    randombytes_buf(r, sizeof r);
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(st->epoch + 2 * i, 3, "%02x", r[i]);
    return 0;
}

void
bk_state_destroy(bk_state_t *st)
{
    if (!st->users)
        return;
    size_t pos = 0;
    bk_user_t *u;
    while ((u = strmap_next(st->users, &pos)) != NULL)
        s_user_free(st, u, 0);
    strmap_destroy(&st->users);
}

/* ---------------------------------------------------------------- record */

bk_record_t
bk_state_record(bk_state_t *st, const event_t *ev, int64_t now_ms, int64_t wall_ms,
                bk_user_t **user_out, bk_blob_t **blob_out)
{
    bk_user_t *u = bk_state_user(st, ev->user_id.p, ev->user_id.len, now_ms);
    if (!u)
        return BK_RECORD_OVERLOADED;
    bk_task_t *t = strmap_get(u->tasks, ev->task_id.p, ev->task_id.len);
    if (!t && u->nlive >= st->limits.tasks_per_user)
        return BK_RECORD_TOO_MANY_TASKS;
    if (st->state_bytes >= st->limits.state_bytes)
        return BK_RECORD_OVERLOADED;

    uint64_t seq = u->seq + 1;
    /* Packed once, straight into the blob that the task's state, the
     * history, the journal and the publish all share. */
    size_t len = event_published_size(ev, wall_ms, seq, u->epoch_len);
    bk_blob_t *blob = malloc(sizeof *blob + len);
    if (!blob)
        return BK_RECORD_NOMEM;
    blob->refs = 1;
    blob->len = (uint32_t)event_put_published(ev, wall_ms, seq, u->epoch, u->epoch_len, blob->data);

    if (!t && !(t = s_task_new(st, u, ev))) {
        free(blob);
        return BK_RECORD_NOMEM;
    }
    u->seq = seq;
    if (t->blob) {
        st->state_bytes -= t->blob->len;
        bk_blob_unref(&t->blob);
    }
    t->blob = blob;
    t->seq = seq;
    st->state_bytes += blob->len;
    if (event_status_is_terminal(ev->status))
        s_task_ended(st, t, now_ms);
    else
        s_task_live(st, t);

    s_hist_append(st, u, seq, blob);
    s_idle_update(st, u, now_ms);
    *user_out = u;
    *blob_out = blob;
    return BK_RECORD_OK;
}

/* ---------------------------------------------------------------- sweep */

void
bk_state_sweep(bk_state_t *st, int64_t now_ms)
{
    int64_t keep = (int64_t)st->limits.retention_ms;
    while (st->rhead && now_ms - st->rhead->ended_ms >= keep) {
        bk_task_t *t = st->rhead;
        bk_user_t *u = t->user;
        strmap_remove(u->tasks, t->id, t->id_len);
        s_task_free(st, t);
        s_idle_update(st, u, now_ms);
    }
    while (st->ihead && now_ms - st->ihead->idle_ms >= keep)
        s_user_free(st, st->ihead, 1);
}

/* ---------------------------------------------------------------- sync */

int
bk_state_replay(const bk_user_t *u, uint64_t since, int (*fn)(void *, const bk_blob_t *), void *arg)
{
    if (since == u->seq)
        return 1;
    if (since > u->seq || !u->hhead || u->hhead->seq > since + 1)
        return 0;
    if (!fn)
        return 1; /* a dry run: is a replay possible? */
    for (const bk_hist_t *h = u->hhead; h; h = h->unext)
        if (h->seq > since && fn(arg, h->blob) != 0)
            return 1;
    return 1;
}

static int
s_by_seq(const void *a, const void *b)
{
    uint64_t x = (*(bk_task_t *const *)a)->seq, y = (*(bk_task_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

int
bk_state_snapshot(const bk_user_t *u, int (*fn)(void *, const bk_blob_t *), void *arg)
{
    size_t n = strmap_size(u->tasks), pos = 0, i = 0;
    if (n == 0)
        return 0;
    bk_task_t **all = malloc(n * sizeof *all);
    if (!all)
        return -1;
    bk_task_t *t;
    while ((t = strmap_next(u->tasks, &pos)) != NULL)
        all[i++] = t;
    qsort(all, n, sizeof *all, s_by_seq);
    for (i = 0; i < n; i++)
        if (fn(arg, all[i]->blob) != 0)
            break;
    free(all);
    return 0;
}

/* ---------------------------------------------------------------- journal replay */

/*  Keeps user_ordinal above every ordinal a restored epoch carries, so a
 *  user created after the restart never reuses one. */
static void
s_note_ordinal(bk_state_t *st, const char *epoch, size_t len)
{
    const char *dot = memrchr(epoch, '.', len);
    if (!dot)
        return;
    uint64_t n = 0;
    for (const char *p = dot + 1; p < epoch + len; p++) {
        int d = (*p >= '0' && *p <= '9') ? *p - '0' : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10 : -1;
        if (d < 0 || n > UINT64_MAX / 16)
            return;
        n = n * 16 + (uint64_t)d;
    }
    if (n > st->user_ordinal)
        st->user_ordinal = n;
}

/*  Forgets a user's tasks and history (an older incarnation in the journal). */
static void
s_user_reset(bk_state_t *st, bk_user_t *u)
{
    while (u->hhead)
        s_hist_pop_user_head(st, u);
    size_t pos = 0;
    bk_task_t *t;
    while ((t = strmap_next(u->tasks, &pos)) != NULL)
        s_task_free(st, t);
    strmap_destroy(&u->tasks);
    u->tasks = strmap_new();
    u->seq = 0;
    u->nlive = 0;
}

/*  Puts the user in the given epoch: a different one than it has means the
 *  journal held an older incarnation first, which the newer one replaces. */
static int
s_user_epoch(bk_state_t *st, bk_user_t *u, const char *epoch, size_t len)
{
    if (u->epoch_len == len && memcmp(u->epoch, epoch, len) == 0)
        return 0;
    if (len >= sizeof u->epoch)
        return -1;
    if (u->seq || strmap_size(u->tasks) || u->hhead)
        s_user_reset(st, u);
    if (!u->tasks)
        return -1;
    memcpy(u->epoch, epoch, len);
    u->epoch[len] = '\0';
    u->epoch_len = (uint8_t)len;
    s_note_ordinal(st, u->epoch, u->epoch_len);
    return 0;
}

int
bk_state_restore_user(bk_state_t *st, const char *id, size_t len, const char *epoch,
                      size_t epoch_len, uint64_t seq, int64_t now_ms)
{
    bk_user_t *u = event_user_id_valid(id, len) ? bk_state_user(st, id, len, now_ms) : NULL;
    if (!u || s_user_epoch(st, u, epoch, epoch_len) != 0)
        return -1;
    if (seq > u->seq)
        u->seq = seq;
    return 0;
}

int
bk_state_restore(bk_state_t *st, const uint8_t *data, size_t len, bk_restore_t mode,
                 int64_t at_wall_ms, int64_t now_ms, int64_t wall_ms, uint64_t *seq_out)
{
    event_t ev;
    event_error_t err;
    if (event_decode(&ev, data, len, EVENT_FROM_BROKER, &err) != 0)
        return -1;
    bk_user_t *u = bk_state_user(st, ev.user_id.p, ev.user_id.len, now_ms);
    if (!u || s_user_epoch(st, u, ev.epoch.p, ev.epoch.len) != 0)
        return -1;
    if (ev.seq > u->seq)
        u->seq = ev.seq;
    *seq_out = ev.seq;

    bk_blob_t *blob = malloc(sizeof *blob + len);
    if (!blob)
        return -1;
    blob->refs = 1;
    blob->len = (uint32_t)len;
    memcpy(blob->data, data, len);
    bk_task_t *t = NULL;
    if (mode != BK_RESTORE_HISTORY) {
        t = strmap_get(u->tasks, ev.task_id.p, ev.task_id.len);
        if (!t && !(t = s_task_new(st, u, &ev))) {
            bk_blob_unref(&blob);
            return -1;
        }
    }
    if (t && ev.seq >= t->seq) {
        if (t->blob) {
            st->state_bytes -= t->blob->len;
            bk_blob_unref(&t->blob);
        }
        t->blob = blob;
        blob->refs++;
        t->seq = ev.seq;
        st->state_bytes += len;
        if (event_status_is_terminal(ev.status)) {
            /* Its retention counts from when it was recorded; an age past
             * the retention (or a time before 1970, from a damaged
             * journal) only means it goes at the next sweep. */
            int64_t keep = st->limits.retention_ms > (uint64_t)INT32_MAX * 1000
                               ? (int64_t)INT32_MAX * 1000
                               : (int64_t)st->limits.retention_ms;
            int64_t age = at_wall_ms < 0 ? keep : wall_ms > at_wall_ms ? wall_ms - at_wall_ms : 0;
            s_task_ended(st, t, now_ms - (age < keep ? age : keep));
        }
        else
            s_task_live(st, t);
    }
    if (mode != BK_RESTORE_STATE && (!u->htail || ev.seq > u->htail->seq))
        s_hist_append(st, u, ev.seq, blob);
    bk_blob_unref(&blob);
    s_idle_update(st, u, now_ms);
    return 0;
}

int
bk_state_each_history(const bk_state_t *st, int (*fn)(void *arg, const bk_hist_t *h), void *arg)
{
    for (const bk_hist_t *h = st->ghead; h; h = h->gnext)
        if (fn(arg, h) != 0)
            return -1;
    return 0;
}

int
bk_state_each_user(const bk_state_t *st, int (*fn)(void *arg, const bk_user_t *u), void *arg)
{
    size_t pos = 0;
    const bk_user_t *u;
    while ((u = strmap_next(st->users, &pos)) != NULL)
        if (fn(arg, u) != 0)
            return -1;
    return 0;
}

const bk_task_t *
bk_state_task(const bk_user_t *u, const char *id, size_t len)
{
    return strmap_get(u->tasks, id, len);
}
