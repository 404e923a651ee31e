/*  ring.h: a user's rendered events, walked by the cursors of its sessions.
 *
 *  One frame per event, whatever the number of sessions: a session is a
 *  cursor (the next index it looks at) plus the epoch generation and last
 *  seq it delivered, never a queue of its own. A frame leaves the ring as
 *  soon as every cursor passed it (`behind` counts cursors below head, so
 *  the common case is O(1)); an idle user keeps no ring memory at all.
 *
 *  The ring is bounded (frames and bytes). When it is full, frames no
 *  cursor needs go first; if that is not enough, the oldest frames go and
 *  the cursors still below them have lost their place (GW_RING_LOST: the
 *  session is a slow consumer).
 *
 *  gw_ring_next() is also the gap check: for a reader at (gen, last_seq) it
 *  skips frames already delivered, and stops without moving at a frame of
 *  a newer epoch generation or at a seq beyond last_seq + 1, so the reader
 *  can sync first and come back to that frame.
 */
#ifndef TC_GATEWAY_RING_H
#define TC_GATEWAY_RING_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define GW_RING_PARKED UINT64_MAX /* the position of a parked cursor */

typedef struct gw_cursor {
    uint64_t pos; /* the next ring index to look at */
    struct gw_cursor *prev, *next;
} gw_cursor_t;

typedef struct gw_ring {
    gw_frame_t **slot; /* slot[i & (cap - 1)] for tail <= i < head */
    uint32_t cap;      /* a power of two, at most max_frames */
    uint32_t max_frames;
    size_t max_bytes;
    uint64_t head, tail;
    size_t bytes;       /* JSON bytes of the frames held */
    uint32_t ncursors;  /* cursors joined (parked ones too) */
    uint32_t nparked;   /* cursors parked */
    uint32_t behind;    /* cursors with pos < head */
    gw_cursor_t *first, *last; /* the cursors, newest first */
} gw_ring_t;

typedef enum {
    GW_RING_END = 0, /* caught up */
    GW_RING_FRAME,   /* *out is the next frame to deliver (a reference) */
    GW_RING_GAP,     /* the next frame's seq is beyond last_seq + 1 */
    GW_RING_EPOCH,   /* the next frame belongs to a newer epoch generation */
    GW_RING_LOST     /* frames this cursor needed were dropped */
} gw_ring_step_t;

/*  max_frames: a power of two >= 16. */
void gw_ring_init(gw_ring_t *r, uint32_t max_frames, size_t max_bytes);
/*  Drops every frame and the slot memory (cursors stay joined). */
void gw_ring_clear(gw_ring_t *r);

/*  Joins at head: nothing already in the ring is for the new cursor. */
void gw_ring_join(gw_ring_t *r, gw_cursor_t *c);
void gw_ring_leave(gw_ring_t *r, gw_cursor_t *c);
/*  Stops a cursor from holding frames without leaving (its session is
 *  closing): from now on it reads nothing. */
void gw_ring_park(gw_ring_t *r, gw_cursor_t *c);

/*  Appends f, taking the reference (dropped at once if no cursor is
 *  joined: nobody would read it). Makes room first (see above). 0, or -1
 *  on OOM (f dropped). */
int gw_ring_push(gw_ring_t *r, gw_frame_t *f);

/*  The next step for a reader at (gen, last_seq); see above. Frames at or
 *  below last_seq, or of an older generation, are passed over. */
gw_ring_step_t gw_ring_next(gw_ring_t *r, gw_cursor_t *c, uint32_t gen, uint64_t last_seq,
                            gw_frame_t **out);

/*  Moves a cursor that lost its place up to the oldest frame held (after a
 *  sync made up for what it missed). */
void gw_ring_catch_up(gw_ring_t *r, gw_cursor_t *c);

#endif
