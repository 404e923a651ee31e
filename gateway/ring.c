/*  ring.c: a user's rendered events and the cursors that walk them. */
#include <stdlib.h>

#include "dlist.h"
#include "ring.h"

#define S_MIN_CAP 16

void
gw_ring_init(gw_ring_t *r, uint32_t max_frames, size_t max_bytes)
{
    *r = (gw_ring_t){.max_frames = max_frames, .max_bytes = max_bytes};
}

static gw_frame_t **
s_slot(gw_ring_t *r, uint64_t i)
{
    return &r->slot[i & (r->cap - 1)];
}

static void
s_drop_oldest(gw_ring_t *r)
{
    gw_frame_t **slot = s_slot(r, r->tail);
    r->bytes -= (*slot)->len;
    gw_frame_unref(slot);
    r->tail++;
}

void
gw_ring_clear(gw_ring_t *r)
{
    while (r->tail < r->head)
        s_drop_oldest(r);
    free(r->slot);
    r->slot = NULL;
    r->cap = 0;
    r->bytes = 0;
}

/*  Drops the frames every cursor has passed. */
static void
s_trim(gw_ring_t *r)
{
    if (r->behind == 0) {
        /* Everyone is at head: nothing held is needed any more. A small
         * slot array stays for the next event; a big one goes. */
        while (r->tail < r->head)
            s_drop_oldest(r);
        if (r->cap > S_MIN_CAP)
            gw_ring_clear(r);
        return;
    }
    uint64_t min = r->head;
    for (gw_cursor_t *c = r->first; c; c = c->next)
        if (c->pos < min)
            min = c->pos;
    while (r->tail < min)
        s_drop_oldest(r);
}

static void
s_move(gw_ring_t *r, gw_cursor_t *c, uint64_t pos)
{
    int was_behind = c->pos < r->head;
    c->pos = pos;
    if (was_behind && pos >= r->head && r->behind > 0 && --r->behind == 0)
        s_trim(r);
}

void
gw_ring_join(gw_ring_t *r, gw_cursor_t *c)
{
    DLIST_PREPEND(r->first, r->last, c, prev, next);
    r->ncursors++;
    c->pos = r->head;
}

void
gw_ring_park(gw_ring_t *r, gw_cursor_t *c)
{
    if (c->pos == GW_RING_PARKED)
        return;
    r->nparked++;
    s_move(r, c, GW_RING_PARKED);
}

void
gw_ring_leave(gw_ring_t *r, gw_cursor_t *c)
{
    gw_ring_park(r, c);
    DLIST_REMOVE(r->first, r->last, c, prev, next);
    r->ncursors--;
    r->nparked--;
}

/*  Makes room for one more frame of len bytes. 0, or -1 on OOM. */
static int
s_reserve(gw_ring_t *r, size_t len)
{
    if (r->head - r->tail == r->cap && r->cap < r->max_frames) {
        uint32_t cap = r->cap ? r->cap * 2 : S_MIN_CAP;
        gw_frame_t **slot = malloc(cap * sizeof *slot);
        if (!slot)
            return -1;
        for (uint64_t i = r->tail; i < r->head; i++)
            slot[i & (cap - 1)] = *s_slot(r, i);
        free(r->slot);
        r->slot = slot;
        r->cap = cap;
    }
    if (r->head - r->tail == r->cap || r->bytes + len > r->max_bytes)
        s_trim(r);
    if (!r->slot) { /* trimmed to nothing: start again */
        r->slot = malloc(S_MIN_CAP * sizeof *r->slot);
        if (!r->slot)
            return -1;
        r->cap = S_MIN_CAP;
    }
    /* Still full: the slowest cursors lose their place (gw_ring_next()
     * tells them GW_RING_LOST). */
    while (r->tail < r->head && (r->head - r->tail == r->cap || r->bytes + len > r->max_bytes))
        s_drop_oldest(r);
    return 0;
}

int
gw_ring_push(gw_ring_t *r, gw_frame_t *f)
{
    if (r->ncursors == r->nparked || s_reserve(r, f->len) != 0) {
        gw_frame_unref(&f);
        return r->ncursors == r->nparked ? 0 : -1; /* nobody would read it */
    }
    *s_slot(r, r->head) = f;
    r->head++;
    r->bytes += f->len;
    r->behind = r->ncursors - r->nparked; /* every reading cursor is now below head */
    return 0;
}

gw_ring_step_t
gw_ring_next(gw_ring_t *r, gw_cursor_t *c, uint32_t gen, uint64_t last_seq, gw_frame_t **out)
{
    *out = NULL;
    for (;;) {
        if (c->pos < r->tail)
            return GW_RING_LOST;
        if (c->pos >= r->head)
            return GW_RING_END;
        gw_frame_t *f = *s_slot(r, c->pos);
        if (f->gen > gen)
            return GW_RING_EPOCH;
        if (f->gen == gen && f->seq > last_seq + 1)
            return GW_RING_GAP;
        int wanted = f->gen == gen && f->seq > last_seq;
        if (wanted)
            *out = gw_frame_ref(f); /* moving on may free the ring's reference */
        s_move(r, c, c->pos + 1);
        if (wanted)
            return GW_RING_FRAME;
    }
}

void
gw_ring_catch_up(gw_ring_t *r, gw_cursor_t *c)
{
    if (c->pos < r->tail)
        s_move(r, c, r->tail);
}
