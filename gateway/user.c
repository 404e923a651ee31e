/*  user.c: the users this gateway serves: their subscription, their epoch,
 *  and the ring of rendered events their sessions walk.
 *
 *  Ring memory: an event's frame is dropped once every session has passed
 *  it (`behind` counts sessions below head, so the common case is O(1)).
 *  A session too slow to keep within GW_RING_MAX frames or GW_RING_BYTES_MAX
 *  bytes loses its place and is closed as a slow consumer (session.c).
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

gw_user_t *
gw_user_get(gateway_t *gw, const char *id, size_t len)
{
    gw_user_t *u = gw_user_find(gw, id, len);
    if (u || len == 0 || len > EVENT_USER_ID_MAX)
        return u;
    u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    memcpy(u->id, id, len);
    u->id_len = (uint8_t)len;
    if (strmap_put(gw->users, u->id, u->id_len, u) != 0) {
        free(u);
        return NULL;
    }
    /* The topic is the id and its NUL. */
    if (gw_link_subscribe(gw, u->id, u->id_len + 1u, 1) != 0)
        log_error(&gw->log, "subscribe user=%s failed", u->id);
    gw_link_want_confirm(gw, u);
    log_debug(&gw->log, "subscribed user=%s", u->id);
    return u;
}

static void
s_ring_clear(gw_user_t *u)
{
    for (uint64_t i = u->tail; i < u->head; i++)
        gw_frame_unref(&u->ring[i & (u->ring_cap - 1)]);
    u->tail = u->head;
    u->ring_bytes = 0;
    /* An idle user keeps no ring at all. */
    if (u->ring_cap > 16) {
        free(u->ring);
        u->ring = NULL;
        u->ring_cap = 0;
    }
}

static void
s_ring_drop_oldest(gw_user_t *u)
{
    gw_frame_t **slot = &u->ring[u->tail & (u->ring_cap - 1)];
    u->ring_bytes -= (*slot)->len;
    gw_frame_unref(slot);
    u->tail++;
}

void
gw_user_trim(gw_user_t *u)
{
    if (u->tail == u->head)
        return;
    if (u->behind == 0) {
        s_ring_clear(u);
        return;
    }
    uint64_t min = u->head;
    for (gw_session_t *s = u->sessions; s; s = s->unext)
        if (s->cursor < min)
            min = s->cursor;
    while (u->tail < min)
        s_ring_drop_oldest(u);
}

/*  Makes room for one more frame of len bytes. */
static int
s_ring_reserve(gw_user_t *u, size_t len)
{
    uint64_t used = u->head - u->tail;
    if (used == u->ring_cap && u->ring_cap < GW_RING_MAX) {
        uint32_t cap = u->ring_cap ? u->ring_cap * 2 : 16;
        gw_frame_t **ring = malloc(cap * sizeof *ring);
        if (!ring)
            return -1;
        for (uint64_t i = u->tail; i < u->head; i++)
            ring[i & (cap - 1)] = u->ring[i & (u->ring_cap - 1)];
        free(u->ring);
        u->ring = ring;
        u->ring_cap = cap;
    }
    if (u->head - u->tail == u->ring_cap || u->ring_bytes + len > GW_RING_BYTES_MAX)
        gw_user_trim(u);
    /* Still full: the slowest sessions lose their place (session.c notices
     * cursor < tail and closes them as slow consumers). */
    while (u->tail < u->head &&
           (u->head - u->tail == u->ring_cap || u->ring_bytes + len > GW_RING_BYTES_MAX))
        s_ring_drop_oldest(u);
    return 0;
}

void
gw_user_deliver(gateway_t *gw, gw_user_t *u, const event_t *ev)
{
    if (gw_user_set_epoch(gw, u, ev->epoch.p, ev->epoch.len))
        log_info(&gw->log, "user=%s epoch is now %s", u->id, u->epoch);
    else if (u->last_seq && ev->seq <= u->last_seq)
        return; /* already had it (a resubscription can repeat nothing, but be sure) */
    else if (u->last_seq && ev->seq > u->last_seq + 1) {
        gw->stats.gaps++;
        log_warn(&gw->log, "user=%s missed seq %llu..%llu from the broker: sessions resync", u->id,
                 (unsigned long long)u->last_seq + 1, (unsigned long long)ev->seq - 1);
    }
    u->last_seq = ev->seq;

    buf_t *b = &gw->scratch;
    buf_reset(b);
    if (event_render_json(ev, b) != 0 || !buf_ok(b)) {
        log_error(&gw->log, "user=%s seq=%llu: out of memory rendering", u->id,
                  (unsigned long long)ev->seq);
        return;
    }
    if (u->nsessions == 0 || s_ring_reserve(u, b->len) != 0)
        return;
    gw_frame_t *f = gw_frame_new(b->data, b->len, GW_FRAME_EVENT);
    if (!f) {
        log_error(&gw->log, "user=%s seq=%llu: out of memory", u->id, (unsigned long long)ev->seq);
        return;
    }
    f->seq = ev->seq;
    f->gen = u->gen;
    u->ring[u->head & (u->ring_cap - 1)] = f;
    u->head++;
    u->ring_bytes += f->len;
    u->behind = u->nsessions; /* every session is now below head */
    for (gw_session_t *s = u->sessions; s; s = s->unext)
        if (s->state == GW_S_LIVE)
            lws_callback_on_writable(s->wsi);
}

int
gw_user_set_epoch(gateway_t *gw, gw_user_t *u, const char *epoch, size_t len)
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
gw_user_move_cursor(gw_user_t *u, gw_session_t *s, uint64_t cursor)
{
    int was_behind = s->cursor < u->head;
    s->cursor = cursor;
    if (was_behind && cursor >= u->head && u->behind > 0 && --u->behind == 0)
        gw_user_trim(u);
}

void
gw_user_attach(gateway_t *gw, gw_user_t *u, gw_session_t *s)
{
    s->user = u;
    DLIST_PREPEND(u->sessions, u->sessions_tail, s, uprev, unext);
    u->nsessions++;
    s->cursor = u->head; /* not behind: nothing before joining is for it */
    s->wait_since_ms = clock_mono_ms();
    if (u->confirmed)
        gw_session_sync(gw, s);
    else {
        s->state = GW_S_WAIT_CONFIRM;
        gw_session_pending_add(gw, s);
    }
}

static void
s_confirm_list_remove(gateway_t *gw, gw_user_t *u)
{
    gw_user_t **pp = &gw->confirm_head, *prev = NULL;
    while (*pp && *pp != u) {
        prev = *pp;
        pp = &(*pp)->cnext;
    }
    if (!*pp)
        return;
    *pp = u->cnext;
    if (gw->confirm_tail == u)
        gw->confirm_tail = prev;
    u->cnext = NULL;
}

/*  Frees u; unsubscribe: tell the broker; unmap: remove it from the map
 *  (not when the whole map goes). */
static void
s_user_free(gateway_t *gw, gw_user_t *u, int unsubscribe, int unmap)
{
    if (!u->confirmed)
        s_confirm_list_remove(gw, u);
    if (unsubscribe && gw_link_subscribe(gw, u->id, u->id_len + 1u, 0) != 0)
        log_error(&gw->log, "unsubscribe user=%s failed", u->id);
    for (uint64_t i = u->tail; i < u->head; i++)
        gw_frame_unref(&u->ring[i & (u->ring_cap - 1)]);
    free(u->ring);
    gw_frame_unref(&u->hello);
    if (unmap)
        strmap_remove(gw->users, u->id, u->id_len);
    free(u);
}

void
gw_user_detach(gateway_t *gw, gw_user_t *u, gw_session_t *s)
{
    DLIST_REMOVE(u->sessions, u->sessions_tail, s, uprev, unext);
    s->user = NULL;
    u->nsessions--;
    if (s->cursor < u->head && u->behind > 0)
        u->behind--;
    if (u->nsessions == 0) {
        log_debug(&gw->log, "unsubscribed user=%s", u->id);
        s_user_free(gw, u, 1, 1);
    }
    else if (u->behind == 0)
        gw_user_trim(u);
}

void
gw_user_confirmed(gateway_t *gw, gw_user_t *u)
{
    u->confirmed = 1;
    for (gw_session_t *s = u->sessions; s; s = s->unext)
        if (s->state == GW_S_WAIT_CONFIRM)
            gw_session_sync(gw, s);
}

void
gw_user_free_all(gateway_t *gw)
{
    size_t pos = 0;
    gw_user_t *u;
    while ((u = strmap_next(gw->users, &pos)) != NULL) {
        for (gw_session_t *s = u->sessions; s; s = s->unext)
            s->user = NULL;
        s_user_free(gw, u, 0, 0);
    }
}
