/*  test_keepalive.c: the gateway's heap of silent connections
 *  (gateway/keepalive.c): a ping after ping-interval of silence, nothing
 *  while the client talks, an answer moving the next ping, a hang-up after
 *  2.5 intervals without one, a closing session dropped at its deadline
 *  whatever it sends, removal from any position; a randomised run
 *  of thousands of sessions checks every decision against a direct
 *  computation and the heap's order after every step. The session
 *  callbacks record what the heap asked for. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gateway.h"

static int s_pings, s_hangups, s_expired;
static gw_session_t *s_last_hung, *s_last_expired;

void
gw_session_ping(gateway_t *gw, gw_session_t *s)
{
    s_pings++;
    s->ping_due = 1;
}

void
gw_session_hang_up(gateway_t *gw, gw_session_t *s, int64_t silent_ms)
{
    s_hangups++;
    s_last_hung = s;
}

void
gw_session_close_expired(gateway_t *gw, gw_session_t *s)
{
    s_expired++;
    s_last_expired = s;
}

static int
heap_ok(const gw_keepalive_t *k)
{
    for (uint32_t i = 0; i < k->n; i++) {
        if (k->heap[i]->ka_index != i + 1)
            return 0;
        if (i && k->heap[(i - 1) / 2]->ka_due_ms > k->heap[i]->ka_due_ms)
            return 0;
    }
    return 1;
}

static void
test_one_session(void)
{
    gateway_t gw;
    memset(&gw, 0, sizeof gw);
    gw.keepalive.ping_ms = 1000;
    gw.keepalive.hangup_ms = 2500;
    gw_session_t s;
    memset(&s, 0, sizeof s);
    s_pings = s_hangups = 0;
    CHECK(gw_keepalive_add(&gw, &s, 0) == 0 && s.ka_index == 1);
    gw_keepalive_check(&gw, 999);
    CHECK(s_pings == 0);
    gw_keepalive_seen(&gw, &s, 500); /* talked: the ping moves to 1500 */
    gw_keepalive_check(&gw, 1000);
    CHECK(s_pings == 0);
    gw_keepalive_check(&gw, 1500);
    CHECK(s_pings == 1 && s.ka_pinged);
    gw_keepalive_check(&gw, 2999); /* silent 2499 ms: not yet */
    CHECK(s_hangups == 0);
    gw_keepalive_seen(&gw, &s, 2000); /* the pong */
    CHECK(!s.ka_pinged && s.ka_due_ms == 3000);
    gw_keepalive_check(&gw, 3000);
    CHECK(s_pings == 2);
    gw_keepalive_check(&gw, 4499);
    CHECK(s_hangups == 0);
    gw_keepalive_check(&gw, 4500); /* silent 2.5 intervals after the last word */
    CHECK(s_hangups == 1 && s_last_hung == &s && s.ka_index == 0 && gw.keepalive.n == 0);
    gw_keepalive_remove(&gw, &s); /* not in it: nothing */
    gw_keepalive_free(&gw);
}

static void
test_closing(void)
{
    gateway_t gw;
    memset(&gw, 0, sizeof gw);
    gw.keepalive.ping_ms = 1000;
    gw.keepalive.hangup_ms = 2500;
    gw_session_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    s_pings = s_hangups = s_expired = 0;
    CHECK(gw_keepalive_add(&gw, &a, 0) == 0 && gw_keepalive_add(&gw, &b, 0) == 0);
    gw_keepalive_check(&gw, 1000); /* both pinged */
    CHECK(s_pings == 2 && a.ka_pinged);
    /* a closes at 1200: dropped at 3200, neither pinged nor hung up; b,
     * silent, is hung up at 2500 as before */
    gw_keepalive_closing(&gw, &a, 3200);
    CHECK(a.ka_closing && !a.ka_pinged && a.ka_due_ms == 3200 && heap_ok(&gw.keepalive));
    gw_keepalive_closing(&gw, &a, 9000); /* a second close keeps the first deadline */
    CHECK(a.ka_due_ms == 3200);
    gw_keepalive_seen(&gw, &a, 2000); /* anything but its close frame: no change */
    CHECK(a.ka_due_ms == 3200);
    gw_keepalive_check(&gw, 3199);
    CHECK(s_expired == 0 && s_hangups == 1 && s_last_hung == &b);
    gw_keepalive_check(&gw, 3200);
    CHECK(s_expired == 1 && s_last_expired == &a && a.ka_index == 0 && s_hangups == 1);
    CHECK(gw.keepalive.n == 0);
    gw_keepalive_closing(&gw, &b, 4000); /* not in the heap: nothing */
    CHECK(!b.ka_closing);
    gw_keepalive_free(&gw);
}

static void
test_random_against_model(void)
{
    enum { N = 3000, STEPS = 60000 };
    gateway_t gw;
    memset(&gw, 0, sizeof gw);
    gw.keepalive.ping_ms = 300;
    gw.keepalive.hangup_ms = 750;
    gw_session_t *s = calloc(N, sizeof *s);
    int64_t now = 0;
    srand(11);
    for (int step = 0; step < STEPS; step++) {
        gw_session_t *x = &s[rand() % N];
        int op = rand() % 10;
        if (!x->ka_index && op < 5) {
            memset(x, 0, sizeof *x);
            CHECK(gw_keepalive_add(&gw, x, now) == 0);
        }
        else if (x->ka_index && op < 7)
            gw_keepalive_seen(&gw, x, now);
        else if (x->ka_index && op < 8)
            gw_keepalive_remove(&gw, x);
        if (step % 20 == 0) {
            now += rand() % 40;
            s_pings = s_hangups = 0;
            gw_keepalive_check(&gw, now);
            /* nobody still in the heap is overdue, everybody silent long
             * enough was pinged, nobody heard from recently is pinged */
            for (uint32_t i = 0; i < gw.keepalive.n; i++) {
                gw_session_t *y = gw.keepalive.heap[i];
                CHECK(y->ka_due_ms > now);
                int64_t silent = now - y->ka_last_rx_ms;
                CHECK(!(silent >= 300 && !y->ka_pinged));
                CHECK(!(y->ka_pinged && silent < 300));
                CHECK(silent < 750);
            }
        }
        CHECK(heap_ok(&gw.keepalive));
    }
    gw_keepalive_free(&gw);
    free(s);
}

int
main(void)
{
    test_one_session();
    test_closing();
    test_random_against_model();
    return check_report();
}
