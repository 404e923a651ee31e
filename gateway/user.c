/*  user.c: the users this gateway serves: their subscription, their epoch,
 *  and the ring of rendered events their sessions walk (ring.c).
 *
 *  A user's life: JOINING (queued for the link to subscribe its topic),
 *  CONFIRMING (subscribed; the broker's confirmation will say when it is in
 *  effect), CONFIRMED, and LEAVING once its last session went (queued for
 *  the link to unsubscribe and free it; a session that comes back before
 *  that finds it still subscribed and confirmed). The three queues live in
 *  the context; the link serves them once per loop pass.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlist.h"
#include "gateway.h"

gw_user_t *
gw_user_find(gateway_t *gw, const char *id, size_t len)
{
    return strmap_get(gw->users, id, len);
}

static gw_user_t *
s_user_new(gateway_t *gw, const char *id, size_t len)
{
    gw_user_t *u = calloc(1, sizeof *u + len + 1); /* the id follows, NUL-terminated */
    if (!u)
        return NULL;
    memcpy(u->id, id, len);
    u->id_len = (uint8_t)len;
    gw_ring_init(&u->ring, GW_RING_MAX, GW_RING_BYTES_MAX);
    if (strmap_put(gw->users, u->id, u->id_len, u) != 0) {
        free(u);
        return NULL;
    }
    u->state = GW_U_JOINING;
    DLIST_APPEND(gw->joinq, gw->joinq_tail, u, qprev, qnext);
    return u;
}

void
gw_user_join(gateway_t *gw, gw_session_t *s, const char *id)
{
    size_t len = strlen(id);
    gw_user_t *u = gw_user_find(gw, id, len);
    if (u && u->state == GW_U_LEAVING) { /* came back before the link let it go */
        DLIST_REMOVE(gw->leaveq, gw->leaveq_tail, u, qprev, qnext);
        u->state = GW_U_CONFIRMED;
    }
    if (!u && !(u = s_user_new(gw, id, len))) {
        gw_session_fail(gw, s, GW_E_INTERNAL, NULL);
        return;
    }
    s->user = u;
    gw_ring_join(&u->ring, &s->cursor); /* nothing before joining is for it */
    if (u->state == GW_U_CONFIRMED)
        gw_session_sync(gw, s);
    else
        gw_session_wait(gw, s);
}

static void
s_leave_if_empty(gateway_t *gw, gw_user_t *u)
{
    if (u->ring.ncursors == 0 && u->state == GW_U_CONFIRMED) {
        u->state = GW_U_LEAVING;
        gw_ring_clear(&u->ring);
        DLIST_APPEND(gw->leaveq, gw->leaveq_tail, u, qprev, qnext);
    }
}

void
gw_user_leave(gateway_t *gw, gw_session_t *s)
{
    gw_user_t *u = s->user;
    if (!u)
        return;
    gw_ring_leave(&u->ring, &s->cursor);
    s->user = NULL;
    /* Not confirmed yet: it leaves once its confirmation arrived (it is in
     * the link's join or confirm queue until then). */
    s_leave_if_empty(gw, u);
}

void
gw_user_confirmed(gateway_t *gw, gw_user_t *u)
{
    u->state = GW_U_CONFIRMED;
    for (gw_cursor_t *c = u->ring.first; c; c = c->next) {
        gw_session_t *s = gw_session_of(c);
        if (s->state == GW_S_WAIT_CONFIRM)
            gw_session_sync(gw, s);
    }
    s_leave_if_empty(gw, u);
}

/*  Adopts epoch as the user's current one; returns 1 if it changed. */
static int
s_set_epoch(gateway_t *gw, gw_user_t *u, const char *epoch, size_t len)
{
    if (len > EVENT_EPOCH_MAX || (len == u->epoch_len && memcmp(epoch, u->epoch, len) == 0))
        return 0;
    memcpy(u->epoch, epoch, len);
    u->epoch[len] = '\0';
    u->epoch_len = (uint8_t)len;
    u->gen++;
    u->last_seq = 0;

    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "{\"type\":\"hello\",\"user_id\":");
    event_json_string(&b, u->id, u->id_len);
    buf_append_str(&b, ",\"epoch\":");
    event_json_string(&b, u->epoch, u->epoch_len);
    buf_append_str(&b, ",\"gateway\":");
    event_json_string(&b, gw->name, strlen(gw->name));
    buf_append_char(&b, '}');
    gw_frame_unref(&u->hello);
    if (buf_ok(&b))
        u->hello = gw_frame_new(b.data, b.len, GW_FRAME_CONTROL);
    buf_free(&b);
    return 1;
}

void
gw_user_deliver(gateway_t *gw, gw_user_t *u, const event_t *ev)
{
    if (s_set_epoch(gw, u, ev->epoch.p, ev->epoch.len))
        log_info(&gw->log, "user=%s epoch is now %s", u->id, u->epoch);
    else if (u->last_seq && ev->seq <= u->last_seq)
        return; /* already had it (a resubscription can repeat nothing, but be sure) */
    else if (u->last_seq && ev->seq > u->last_seq + 1) {
        gw->stats.gaps++;
        log_warn(&gw->log, "user=%s missed seq %llu..%llu from the broker: sessions resync", u->id,
                 (unsigned long long)u->last_seq + 1, (unsigned long long)ev->seq - 1);
    }
    u->last_seq = ev->seq;
    if (u->ring.ncursors == u->ring.nparked)
        return; /* nobody reads: not even rendered */

    buf_t *b = &gw->scratch;
    buf_reset(b);
    gw_frame_t *f = NULL;
    if (event_render_json(ev, b) != 0 || !buf_ok(b) ||
        !(f = gw_frame_new(b->data, b->len, GW_FRAME_EVENT))) {
        log_error(&gw->log, "user=%s seq=%llu: out of memory rendering", u->id,
                  (unsigned long long)ev->seq);
        return;
    }
    f->seq = ev->seq;
    f->gen = u->gen;
    if (gw_ring_push(&u->ring, f) != 0) {
        log_error(&gw->log, "user=%s seq=%llu: out of memory", u->id, (unsigned long long)ev->seq);
        return;
    }
    for (gw_cursor_t *c = u->ring.first; c; c = c->next)
        gw_session_wake(gw, gw_session_of(c));
}

static gw_session_t *
s_waiting(gw_user_t *u, uint64_t req)
{
    for (gw_cursor_t *c = u->ring.first; c; c = c->next) {
        gw_session_t *s = gw_session_of(c);
        if (s->state == GW_S_SYNCING && s->req == req)
            return s;
    }
    return NULL;
}

int
gw_user_sync_begin(gateway_t *gw, gw_user_t *u, uint64_t req, const char *epoch, size_t epoch_len)
{
    if (!s_waiting(u, req))
        return 0;
    s_set_epoch(gw, u, epoch, epoch_len);
    return 1;
}

void
gw_user_synced(gateway_t *gw, gw_user_t *u, uint64_t req, gw_batch_t *batch)
{
    gw_session_t *s = s_waiting(u, req);
    if (!s) {
        gw_batch_free(&batch);
        return;
    }
    gw_ring_catch_up(&u->ring, &s->cursor);
    gw_session_synced(gw, s, batch);
}

void
gw_user_sync_refused(gateway_t *gw, gw_user_t *u, uint64_t req)
{
    gw_session_t *s = s_waiting(u, req);
    if (!s)
        return;
    log_warn(&gw->log, "conn=%u user=%s: the broker refused the sync", s->id, u->id);
    gw_session_fail(gw, s, GW_E_UNAVAILABLE,
                    "the broker cannot serve this user now; try again later");
}

/*  Calls fn for every session of every user. Failing a session does not
 *  change the sessions or users (it parks the cursor), so the walk is
 *  safe for fn = a failure. */
static void
s_each_session(gateway_t *gw, void (*fn)(gateway_t *, gw_session_t *))
{
    size_t pos = 0;
    gw_user_t *u;
    while ((u = strmap_next(gw->users, &pos)) != NULL)
        for (gw_cursor_t *c = u->ring.first; c; c = c->next)
            fn(gw, gw_session_of(c));
}

static void
s_resync(gateway_t *gw, gw_session_t *s)
{
    if (s->state == GW_S_LIVE)
        gw_session_sync(gw, s);
}

void
gw_user_resync_all(gateway_t *gw)
{
    s_each_session(gw, s_resync);
}

static void
s_fail_shutdown(gateway_t *gw, gw_session_t *s)
{
    gw_session_fail(gw, s, GW_E_SHUTDOWN, NULL);
}

void
gw_user_fail_all(gateway_t *gw)
{
    s_each_session(gw, s_fail_shutdown);
}

void
gw_user_free(gateway_t *gw, gw_user_t *u)
{
    strmap_remove(gw->users, u->id, u->id_len);
    gw_ring_clear(&u->ring);
    gw_frame_unref(&u->hello);
    free(u);
}

void
gw_user_free_all(gateway_t *gw)
{
    size_t pos = 0;
    gw_user_t *u;
    while ((u = strmap_next(gw->users, &pos)) != NULL) {
        gw_ring_clear(&u->ring);
        gw_frame_unref(&u->hello);
        free(u);
    }
    gw->joinq = gw->joinq_tail = gw->confirmq = gw->confirmq_tail = NULL;
    gw->leaveq = gw->leaveq_tail = NULL;
}
