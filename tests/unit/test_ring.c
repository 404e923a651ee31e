/*  test_ring.c: the gateway's per-user ring (gateway/ring.c): cursors join
 *  at head, frames leave once every cursor passed them, the gap check
 *  (skip delivered, stop at a gap or a newer epoch), bounds in frames and
 *  bytes with the slowest cursor losing its place, parked cursors, and the
 *  reference counts (every frame freed exactly once: ASan/LSan check it).
 *  A randomised run compares the ring with a simple model. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ring.h"

static gw_frame_t *
frame(uint64_t seq, uint32_t gen, size_t len)
{
    char json[256];
    memset(json, 'x', sizeof json);
    gw_frame_t *f = gw_frame_new(json, len < sizeof json ? len : sizeof json, GW_FRAME_EVENT);
    f->seq = seq;
    f->gen = gen;
    return f;
}

/*  The next step; a delivered frame's seq in *seq (and its reference dropped). */
static gw_ring_step_t
next(gw_ring_t *r, gw_cursor_t *c, uint32_t gen, uint64_t last, uint64_t *seq)
{
    gw_frame_t *f = NULL;
    gw_ring_step_t st = gw_ring_next(r, c, gen, last, &f);
    *seq = f ? f->seq : 0;
    CHECK((st == GW_RING_FRAME) == (f != NULL));
    gw_frame_unref(&f);
    return st;
}

static void
test_join_at_head_and_trim(void)
{
    gw_ring_t r;
    gw_ring_init(&r, 16, 1 << 20);
    CHECK(gw_ring_push(&r, frame(1, 1, 10)) == 0); /* nobody reads: dropped */
    CHECK(r.head == 0 && r.slot == NULL);

    gw_cursor_t a, b;
    gw_ring_join(&r, &a);
    CHECK(gw_ring_push(&r, frame(1, 1, 10)) == 0);
    gw_ring_join(&r, &b); /* joins after seq 1: not for it */
    CHECK(gw_ring_push(&r, frame(2, 1, 10)) == 0);
    CHECK(r.head == 2 && r.tail == 0 && r.behind == 2 && r.bytes == 20);

    uint64_t seq;
    CHECK(next(&r, &b, 1, 1, &seq) == GW_RING_FRAME && seq == 2);
    CHECK(next(&r, &b, 1, 2, &seq) == GW_RING_END);
    CHECK(r.behind == 1 && r.tail == 0); /* a still needs both */
    CHECK(next(&r, &a, 1, 0, &seq) == GW_RING_FRAME && seq == 1);
    CHECK(next(&r, &a, 1, 1, &seq) == GW_RING_FRAME && seq == 2);
    CHECK(r.behind == 0 && r.tail == r.head && r.bytes == 0); /* all passed: all freed */
    CHECK(next(&r, &a, 1, 2, &seq) == GW_RING_END);
    gw_ring_leave(&r, &a);
    gw_ring_leave(&r, &b);
    CHECK(r.ncursors == 0);
    gw_ring_clear(&r);
}

static void
test_gap_check(void)
{
    gw_ring_t r;
    gw_ring_init(&r, 16, 1 << 20);
    gw_cursor_t c;
    gw_ring_join(&r, &c);
    for (uint64_t s = 5; s <= 7; s++)
        gw_ring_push(&r, frame(s, 1, 8));
    gw_ring_push(&r, frame(9, 1, 8)); /* 8 is missing */
    gw_ring_push(&r, frame(1, 2, 8)); /* a new epoch */
    uint64_t seq;
    /* A session that already has 5 (a snapshot covered it): 5 is skipped. */
    CHECK(next(&r, &c, 1, 5, &seq) == GW_RING_FRAME && seq == 6);
    CHECK(next(&r, &c, 1, 6, &seq) == GW_RING_FRAME && seq == 7);
    /* 9 after 7: a gap; the cursor stays at 9 so the session comes back to it */
    CHECK(next(&r, &c, 1, 7, &seq) == GW_RING_GAP);
    CHECK(next(&r, &c, 1, 7, &seq) == GW_RING_GAP);
    /* after a replay that brought it to 8: 9 follows */
    CHECK(next(&r, &c, 1, 8, &seq) == GW_RING_FRAME && seq == 9);
    /* the newer generation stops it until it synced the new epoch */
    CHECK(next(&r, &c, 1, 9, &seq) == GW_RING_EPOCH);
    CHECK(next(&r, &c, 2, 0, &seq) == GW_RING_FRAME && seq == 1);
    CHECK(next(&r, &c, 2, 1, &seq) == GW_RING_END);

    /* frames of an older generation are passed over */
    gw_ring_push(&r, frame(10, 1, 8));
    gw_ring_push(&r, frame(2, 2, 8));
    CHECK(next(&r, &c, 2, 1, &seq) == GW_RING_FRAME && seq == 2);
    /* a snapshot covering up to 30: everything at or below is skipped */
    for (uint64_t s = 3; s <= 6; s++)
        gw_ring_push(&r, frame(s, 2, 8));
    CHECK(next(&r, &c, 2, 30, &seq) == GW_RING_END);
    gw_ring_leave(&r, &c);
    gw_ring_clear(&r);
}

static void
test_bounds_and_lost_place(void)
{
    gw_ring_t r;
    gw_ring_init(&r, 16, 100); /* 16 frames or 100 bytes */
    gw_cursor_t slow, fast;
    gw_ring_join(&r, &slow);
    gw_ring_join(&r, &fast);
    uint64_t seq;
    for (uint64_t s = 1; s <= 40; s++) {
        CHECK(gw_ring_push(&r, frame(s, 1, 10)) == 0);
        CHECK(next(&r, &fast, 1, s - 1, &seq) == GW_RING_FRAME && seq == s);
        CHECK(r.bytes <= 100 && r.head - r.tail <= 10);
    }
    /* the slow cursor never read: it lost its place, however often asked */
    CHECK(next(&r, &slow, 1, 0, &seq) == GW_RING_LOST);
    CHECK(next(&r, &slow, 1, 0, &seq) == GW_RING_LOST);
    /* after a sync it continues from the oldest frame held */
    gw_ring_catch_up(&r, &slow);
    uint64_t oldest = r.tail; /* holds seq oldest + 1 */
    CHECK(slow.pos == oldest);
    CHECK(next(&r, &slow, 1, oldest, &seq) == GW_RING_FRAME && seq == oldest + 1);

    /* a frame bigger than the byte bound still goes in (alone) */
    CHECK(gw_ring_push(&r, frame(41, 1, 200)) == 0);
    CHECK(r.head - r.tail == 1 && r.bytes == 200);
    gw_ring_leave(&r, &slow);
    gw_ring_leave(&r, &fast);
    gw_ring_clear(&r);

    /* the frame bound: 16 frames, the reader that keeps up never loses */
    gw_ring_init(&r, 16, 1 << 20);
    gw_ring_join(&r, &slow);
    for (uint64_t s = 1; s <= 16; s++)
        gw_ring_push(&r, frame(s, 1, 1));
    CHECK(r.head - r.tail == 16 && r.cap == 16);
    gw_ring_push(&r, frame(17, 1, 1));
    CHECK(r.head - r.tail == 16 && r.tail == 1);
    CHECK(next(&r, &slow, 1, 0, &seq) == GW_RING_LOST);
    gw_ring_leave(&r, &slow);
    gw_ring_clear(&r);
}

static void
test_parked_cursor_holds_nothing(void)
{
    gw_ring_t r;
    gw_ring_init(&r, 64, 1 << 20);
    gw_cursor_t live, closing;
    gw_ring_join(&r, &live);
    gw_ring_join(&r, &closing);
    gw_ring_push(&r, frame(1, 1, 10));
    gw_ring_park(&r, &closing); /* its session is closing: it reads nothing more */
    CHECK(r.nparked == 1 && r.behind == 1);
    uint64_t seq;
    CHECK(next(&r, &live, 1, 0, &seq) == GW_RING_FRAME && seq == 1);
    CHECK(r.tail == r.head); /* freed: the parked cursor did not hold it */
    gw_ring_push(&r, frame(2, 1, 10));
    CHECK(r.behind == 1);
    CHECK(next(&r, &closing, 1, 0, &seq) == GW_RING_END);
    gw_ring_leave(&r, &live);
    CHECK(r.ncursors == 1 && r.tail == r.head);
    gw_ring_push(&r, frame(3, 1, 10)); /* only a parked cursor: not kept */
    CHECK(r.tail == r.head);
    gw_ring_leave(&r, &closing);
    CHECK(r.ncursors == 0 && r.nparked == 0);
    gw_ring_clear(&r);
}

/*  A model: every cursor reads exactly the frames pushed after it joined,
 *  in order, unless it lost its place. */
static void
test_random_against_model(void)
{
    enum { N = 8, STEPS = 20000 };
    gw_ring_t r;
    gw_ring_init(&r, 64, 4096);
    gw_cursor_t c[N];
    uint64_t last[N];
    int joined[N] = {0}, lost[N] = {0};
    uint64_t pushed = 0;
    srand(7);
    for (int step = 0; step < STEPS; step++) {
        int i = rand() % N, op = rand() % 10;
        if (!joined[i]) {
            gw_ring_join(&r, &c[i]);
            joined[i] = 1;
            lost[i] = 0;
            last[i] = pushed; /* nothing before joining is for it */
        }
        else if (op < 4) {
            gw_ring_push(&r, frame(++pushed, 1, (size_t)(rand() % 200)));
        }
        else if (op < 9 && !lost[i]) {
            uint64_t seq;
            gw_ring_step_t st = next(&r, &c[i], 1, last[i], &seq);
            if (st == GW_RING_FRAME) {
                CHECK(seq == last[i] + 1);
                last[i] = seq;
            }
            else if (st == GW_RING_END)
                CHECK(last[i] == pushed);
            else {
                CHECK(st == GW_RING_LOST);
                lost[i] = 1;
            }
        }
        else {
            gw_ring_leave(&r, &c[i]);
            joined[i] = 0;
        }
        CHECK(r.head - r.tail <= 64 && r.bytes <= 4096);
        uint32_t behind = 0;
        for (int k = 0; k < N; k++)
            behind += joined[k] && c[k].pos < r.head;
        CHECK(r.behind == behind);
    }
    for (int k = 0; k < N; k++)
        if (joined[k])
            gw_ring_leave(&r, &c[k]);
    CHECK(r.tail == r.head);
    gw_ring_clear(&r);
}

int
main(void)
{
    test_join_at_head_and_trim();
    test_gap_check();
    test_bounds_and_lost_place();
    test_parked_cursor_holds_nothing();
    test_random_against_model();
    return check_report();
}
