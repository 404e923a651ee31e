/*  keepalive.c: WebSocket pings to silent clients, and the end of clients
 *  that stay silent, in O(log n) per connection.
 *
 *  lws 4.1 has this built in (retry_and_idle_policy), but keeps every
 *  connection's timer in one sorted linked list: each connection's timer,
 *  always the latest, is inserted by walking the whole list. At 10,000
 *  connections that walk was half of the gateway's CPU while clients
 *  connected, and it grows with the square of the connections. Here the
 *  sessions sit in a binary min-heap by the time they must next be looked
 *  at. Receiving anything from a client only notes the time (no heap
 *  operation); when a session's time comes, the tick decides:
 *    - silent for --ping-interval: send a ping (browsers answer by
 *      themselves), look again when the hang-up time would be reached;
 *    - pinged, and silent for 2.5 intervals: close it;
 *    - heard from meanwhile: look again ping-interval after that;
 *    - closing (the gateway sent its close frame): the client's close
 *      frame did not come within GW_CLOSE_ACK_MS, drop the connection.
 *  The tick runs every 100 ms, so every time here is within 100 ms.
 */
#include <stdlib.h>

#include "gateway.h"

static int
s_less(const gw_session_t *a, const gw_session_t *b)
{
    return a->ka_due_ms < b->ka_due_ms;
}

static void
s_place(gw_keepalive_t *k, uint32_t i, gw_session_t *s)
{
    k->heap[i] = s;
    s->ka_index = i + 1;
}

static void
s_up(gw_keepalive_t *k, uint32_t i)
{
    gw_session_t *s = k->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!s_less(s, k->heap[parent]))
            break;
        s_place(k, i, k->heap[parent]);
        i = parent;
    }
    s_place(k, i, s);
}

static void
s_down(gw_keepalive_t *k, uint32_t i)
{
    gw_session_t *s = k->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= k->n)
            break;
        if (c + 1 < k->n && s_less(k->heap[c + 1], k->heap[c]))
            c++;
        if (!s_less(k->heap[c], s))
            break;
        s_place(k, i, k->heap[c]);
        i = c;
    }
    s_place(k, i, s);
}

int
gw_keepalive_add(gateway_t *gw, gw_session_t *s, int64_t now_ms)
{
    gw_keepalive_t *k = &gw->keepalive;
    if (s->ka_index)
        return 0;
    if (k->n == k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 1024;
        gw_session_t **heap = realloc(k->heap, cap * sizeof *heap);
        if (!heap)
            return -1;
        k->heap = heap;
        k->cap = cap;
    }
    s->ka_last_rx_ms = now_ms;
    s->ka_pinged = 0;
    s->ka_due_ms = now_ms + k->ping_ms;
    s_place(k, k->n++, s);
    s_up(k, k->n - 1);
    return 0;
}

void
gw_keepalive_remove(gateway_t *gw, gw_session_t *s)
{
    gw_keepalive_t *k = &gw->keepalive;
    if (!s->ka_index)
        return;
    uint32_t i = s->ka_index - 1;
    s->ka_index = 0;
    gw_session_t *last = k->heap[--k->n];
    if (i == k->n)
        return;
    s_place(k, i, last);
    s_down(k, i);
    s_up(k, last->ka_index - 1);
}

/*  The session's time changed: move it in the heap. */
static void
s_rekey(gw_keepalive_t *k, gw_session_t *s)
{
    s_up(k, s->ka_index - 1);
    s_down(k, s->ka_index - 1);
}

void
gw_keepalive_seen(gateway_t *gw, gw_session_t *s, int64_t now_ms)
{
    s->ka_last_rx_ms = now_ms;
    if (s->ka_index && s->ka_pinged) {
        /* the answer to a ping (or anything after it): the next ping is
         * due ping-interval from now, earlier than the hang-up it waited for */
        s->ka_pinged = 0;
        s->ka_due_ms = now_ms + gw->keepalive.ping_ms;
        s_rekey(&gw->keepalive, s);
    }
}

void
gw_keepalive_closing(gateway_t *gw, gw_session_t *s, int64_t deadline_ms)
{
    if (!s->ka_index || s->ka_closing)
        return;
    s->ka_closing = 1;
    s->ka_pinged = 0; /* gw_keepalive_seen() leaves the deadline alone */
    s->ka_due_ms = deadline_ms;
    s_rekey(&gw->keepalive, s);
}

void
gw_keepalive_check(gateway_t *gw, int64_t now_ms)
{
    gw_keepalive_t *k = &gw->keepalive;
    while (k->n > 0 && k->heap[0]->ka_due_ms <= now_ms) {
        gw_session_t *s = k->heap[0];
        if (s->ka_closing) {
            gw_keepalive_remove(gw, s);
            gw_session_close_expired(gw, s);
            continue;
        }
        int64_t silent = now_ms - s->ka_last_rx_ms;
        /* still pinged: nothing came since the ping (gw_keepalive_seen()
         * clears it) */
        if (s->ka_pinged && silent >= k->hangup_ms) {
            gw_keepalive_remove(gw, s);
            gw_session_hang_up(gw, s, silent);
            continue;
        }
        if (!s->ka_pinged && silent >= k->ping_ms) {
            s->ka_pinged = 1;
            gw_session_ping(gw, s);
        }
        s->ka_due_ms = s->ka_last_rx_ms + (s->ka_pinged ? k->hangup_ms : k->ping_ms);
        if (s->ka_due_ms <= now_ms) /* a hang-up shorter than the time since the ping */
            s->ka_due_ms = now_ms + 1;
        s_down(k, 0);
    }
}

void
gw_keepalive_free(gateway_t *gw)
{
    free(gw->keepalive.heap);
    gw->keepalive = (gw_keepalive_t){0};
}
