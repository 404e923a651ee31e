/*  link.c: the gateway's two ZeroMQ sockets to the broker.
 *
 *  SUB (fanout): user topics, heartbeats, subscription confirmations.
 *  DEALER (sync): snapshot/replay requests and their answers.
 *
 *  Everything happens in gw_link_pump(), which the loop runs once per pass
 *  before it sleeps: it sends what users and sessions queued (all the
 *  subscriptions of the pass, then one confirmation covering them, then
 *  the sync requests), then reads each socket that may hold messages until
 *  EAGAIN, and repeats while either made progress. ZMQ_FD only signals
 *  edges, and a send or (un)subscribe may consume one, so a socket "may
 *  hold messages" when its fd fired, when we sent on it, or when the last
 *  read stopped on the budget; otherwise it is not touched (an EAGAIN read
 *  costs libzmq a poll() and a getpid()).
 *
 *  Subscriptions are confirmed, not assumed: after subscribing users the
 *  gateway subscribes a made-up confirmation topic; when the broker
 *  publishes on it, every earlier subscription is in effect (topic.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlist.h"
#include "gateway.h"
#include "topic.h"
#include "wire.h"
#include "zmsg.h"

#define S_READ_BUDGET 4096 /* messages read per pump, so writes are not starved */

static int
s_setint(void *socket, int option, int value)
{
    return zmq_setsockopt(socket, option, &value, sizeof value);
}

static int
s_fd(void *socket, int *fd)
{
    size_t len = sizeof *fd;
    return zmq_getsockopt(socket, ZMQ_FD, fd, &len);
}

int
gw_link_open(gateway_t *gw)
{
    gw->zctx = zmq_ctx_new();
    if (!gw->zctx)
        return -1;
    zmq_ctx_set(gw->zctx, ZMQ_IO_THREADS, 1);
    gw->sub = zmsg_socket(gw->zctx, ZMQ_SUB, 1000, 200000, 4 << 20);
    gw->dealer = zmsg_socket(gw->zctx, ZMQ_DEALER, 10000, 10000, -1);
    if (!gw->sub || !gw->dealer)
        goto fail;
    /* A broker host that vanishes without closing is found by TCP
     * keepalive (about 16 s), not by ZMTP heartbeats: libzmq 4.3.4 aborts
     * (_input_stopped, stream_engine_base.cpp:417; libzmq issue 3937) when
     * a heartbeat timeout ends a connection whose input is stopped on a
     * full pipe, which is exactly when a heartbeat times out under load.
     * The broker's own heartbeat topic tells /ready whether it lives. */
    void *socks[] = {gw->sub, gw->dealer};
    for (size_t i = 0; i < 2; i++)
        if (s_setint(socks[i], ZMQ_RECONNECT_IVL, 100) ||
            s_setint(socks[i], ZMQ_RECONNECT_IVL_MAX, 1000) ||
            s_setint(socks[i], ZMQ_TCP_KEEPALIVE, 1) ||
            s_setint(socks[i], ZMQ_TCP_KEEPALIVE_IDLE, 10) ||
            s_setint(socks[i], ZMQ_TCP_KEEPALIVE_INTVL, 2) ||
            s_setint(socks[i], ZMQ_TCP_KEEPALIVE_CNT, 3))
            goto fail;
    if (zmq_connect(gw->sub, gw->fanout_ep) != 0) {
        log_error(&gw->log, "cannot connect to fanout %s: %s", gw->fanout_ep, zmq_strerror(errno));
        return -1;
    }
    if (zmq_connect(gw->dealer, gw->sync_ep) != 0) {
        log_error(&gw->log, "cannot connect to sync %s: %s", gw->sync_ep, zmq_strerror(errno));
        return -1;
    }
    if (zmq_setsockopt(gw->sub, ZMQ_SUBSCRIBE, TOPIC_HEARTBEAT, TOPIC_HEARTBEAT_LEN) != 0 ||
        s_fd(gw->sub, &gw->sub_fd) != 0 || s_fd(gw->dealer, &gw->dealer_fd) != 0)
        goto fail;
    gw->sub_ready = gw->dealer_ready = 1;
    return 0;
fail:
    log_error(&gw->log, "ZeroMQ setup failed: %s", zmq_strerror(errno));
    return -1;
}

void
gw_link_close(gateway_t *gw)
{
    if (gw->sub)
        zmq_close(gw->sub);
    if (gw->dealer)
        zmq_close(gw->dealer);
    gw->sub = gw->dealer = NULL;
    if (gw->zctx)
        zmq_ctx_term(gw->zctx);
    gw->zctx = NULL;
}

/* ---------------------------------------------------------------- sending */

/*  "\xffconfirm:" TOKEN ":" N */
static size_t
s_confirm_topic(const gateway_t *gw, uint64_t n, char *out, size_t outlen)
{
    int len = snprintf(out, outlen, "%s%s:%" PRIu64, TOPIC_CONFIRM_PREFIX, gw->token, n);
    return len > 0 && (size_t)len < outlen ? (size_t)len : 0;
}

static void
s_subscribe(gateway_t *gw, const void *topic, size_t len, int on)
{
    if (zmq_setsockopt(gw->sub, on ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, topic, len) != 0)
        log_error(&gw->log, "%ssubscribe failed: %s", on ? "" : "un", zmq_strerror(errno));
    gw->sub_ready = 1;
}

/*  Leaving users first (a user that left and came back in one pass was
 *  kept, not queued), then joining ones, then one confirmation after them
 *  all. Returns 1 if anything was sent. */
static int
s_send_subscriptions(gateway_t *gw)
{
    int sent = 0;
    gw_user_t *u;
    while ((u = gw->leaveq) != NULL) {
        DLIST_REMOVE(gw->leaveq, gw->leaveq_tail, u, qprev, qnext);
        s_subscribe(gw, u->id, u->id_len + 1u, 0); /* the topic is the id and its NUL */
        log_debug(&gw->log, "unsubscribed user=%s", u->id);
        gw_user_free(gw, u);
        sent = 1;
    }
    while ((u = gw->joinq) != NULL) {
        DLIST_REMOVE(gw->joinq, gw->joinq_tail, u, qprev, qnext);
        s_subscribe(gw, u->id, u->id_len + 1u, 1);
        log_debug(&gw->log, "subscribed user=%s", u->id);
        u->state = GW_U_CONFIRMING;
        u->confirm_n = gw->confirm_sent + 1;
        DLIST_APPEND(gw->confirmq, gw->confirmq_tail, u, qprev, qnext);
        gw->confirm_wanted = 1;
        sent = 1;
    }
    if (gw->confirm_wanted) {
        char topic[96];
        gw->confirm_wanted = 0;
        size_t len = s_confirm_topic(gw, ++gw->confirm_sent, topic, sizeof topic);
        s_subscribe(gw, topic, len, 1);
        sent = 1;
    }
    return sent;
}

static int
s_send_sync_requests(gateway_t *gw)
{
    int sent = 0;
    gw_session_t *s;
    while ((s = gw->syncq) != NULL) {
        DLIST_REMOVE(gw->syncq, gw->syncq_tail, s, qprev, qnext);
        wire_sync_req_t rq = {.req = ++gw->next_req};
        const char *epoch = NULL;
        gw_session_sync_sent(gw, s, rq.req, &rq.since, &epoch);
        rq.user_id = (event_text_t){s->user->id, s->user->id_len};
        if (epoch) {
            rq.has_since = 1;
            rq.epoch = (event_text_t){epoch, (uint32_t)strlen(epoch)};
        }
        buf_reset(&gw->scratch);
        wire_pack_sync_req(&gw->scratch, &rq);
        if (!buf_ok(&gw->scratch) ||
            zmq_send(gw->dealer, gw->scratch.data, gw->scratch.len, ZMQ_DONTWAIT) < 0)
            s->req = 0; /* not sent: the tick retries */
        gw->dealer_ready = 1;
        sent = 1;
    }
    return sent;
}

/* ---------------------------------------------------------------- receiving */

static void
s_on_heartbeat(gateway_t *gw, const void *data, size_t len)
{
    wire_control_t hb;
    if (wire_read_control(data, len, &hb) != 0 || hb.boot.len == 0) {
        gw->stats.bad_broker_messages++;
        return;
    }
    gw->last_heartbeat_ms = clock_mono_ms();
    int was_known = gw->broker_boot[0] != '\0';
    int restarted = was_known && (strlen(gw->broker_boot) != hb.boot.len ||
                                  memcmp(gw->broker_boot, hb.boot.p, hb.boot.len) != 0);
    memcpy(gw->broker_boot, hb.boot.p, hb.boot.len);
    gw->broker_boot[hb.boot.len] = '\0';
    memcpy(gw->broker_epoch, hb.epoch.p, hb.epoch.len);
    gw->broker_epoch[hb.epoch.len] = '\0';
    if (!gw->broker_up) {
        gw->broker_up = 1;
        log_info(&gw->log, "broker link up (epoch %s)", gw->broker_epoch);
    }
    else if (restarted)
        log_warn(&gw->log, "broker restarted (epoch %s)", gw->broker_epoch);
    else
        return;
    if (was_known) {
        /* The link was down or the broker restarted: events may have been
         * published while we could not hear them. Once a confirmation shows
         * our subscriptions are back, every live session catches up (a
         * replay, or the new state if the epoch changed). */
        gw->relink = 1;
        gw->relink_confirm = gw->confirm_sent + 1;
        gw->confirm_wanted = 1;
    }
}

static void
s_on_confirm(gateway_t *gw, const char *topic, size_t len)
{
    size_t plen = TOPIC_CONFIRM_PREFIX_LEN + strlen(gw->token);
    if (len <= plen + 1 ||
        memcmp(topic + TOPIC_CONFIRM_PREFIX_LEN, gw->token, plen - TOPIC_CONFIRM_PREFIX_LEN) != 0 ||
        topic[plen] != ':')
        return; /* not ours */
    uint64_t n = 0;
    for (size_t i = plen + 1; i < len; i++) {
        if (topic[i] < '0' || topic[i] > '9')
            return;
        n = n * 10 + (uint64_t)(topic[i] - '0');
    }
    s_subscribe(gw, topic, len, 0);
    gw_user_t *u;
    while ((u = gw->confirmq) != NULL && u->confirm_n <= n) {
        DLIST_REMOVE(gw->confirmq, gw->confirmq_tail, u, qprev, qnext);
        gw_user_confirmed(gw, u);
    }
    if (gw->relink && n >= gw->relink_confirm) {
        gw->relink = 0;
        log_info(&gw->log, "subscriptions confirmed again: live sessions catch up");
        gw_user_resync_all(gw);
    }
}

static void
s_on_event(gateway_t *gw, const char *topic, size_t tlen, const void *data, size_t len)
{
    gw_user_t *u = gw_user_find(gw, topic, tlen - 1);
    if (!u)
        return; /* unsubscribed a moment ago */
    event_t ev;
    event_error_t err;
    if (event_decode(&ev, data, len, EVENT_FROM_BROKER, &err) != 0 || ev.user_id.len != tlen - 1 ||
        memcmp(ev.user_id.p, topic, tlen - 1) != 0) {
        gw->stats.bad_broker_messages++;
        log_warn(&gw->log, "unreadable event from the broker for user=%s", u->id);
        return;
    }
    gw->stats.events_received++;
    gw_user_deliver(gw, u, &ev);
}

/*  Reads one message from SUB. 0, or -1 when there was none. */
static int
s_read_sub(gateway_t *gw)
{
    zmsg_t m;
    if (zmsg_recv(&m, gw->sub, ZMQ_DONTWAIT) != 0)
        return -1;
    const char *topic = zmsg_data(&m, 0);
    size_t tlen = zmsg_size(&m, 0);
    if (m.count != 2 || m.truncated)
        gw->stats.bad_broker_messages++;
    else if (tlen == TOPIC_HEARTBEAT_LEN && memcmp(topic, TOPIC_HEARTBEAT, tlen) == 0)
        s_on_heartbeat(gw, zmsg_data(&m, 1), zmsg_size(&m, 1));
    else if (tlen > TOPIC_CONFIRM_PREFIX_LEN &&
             memcmp(topic, TOPIC_CONFIRM_PREFIX, TOPIC_CONFIRM_PREFIX_LEN) == 0)
        s_on_confirm(gw, topic, tlen);
    else if (tlen >= 2 && topic[tlen - 1] == '\0')
        s_on_event(gw, topic, tlen, zmsg_data(&m, 1), zmsg_size(&m, 1));
    else
        gw->stats.bad_broker_messages++;
    zmsg_close(&m);
    return 0;
}

/*  Renders one event of a sync answer into the batch. */
static int
s_batch_add(gateway_t *gw, gw_user_t *u, gw_batch_t **bp, const void *data, size_t len)
{
    event_t ev;
    event_error_t err;
    if (event_decode(&ev, data, len, EVENT_FROM_BROKER, &err) != 0 || ev.user_id.len != u->id_len ||
        memcmp(ev.user_id.p, u->id, u->id_len) != 0) {
        gw->stats.bad_broker_messages++;
        return 0; /* skip it; the seq check will ask again if it mattered */
    }
    buf_reset(&gw->scratch);
    if (event_render_json(&ev, &gw->scratch) != 0)
        return -1;
    gw_frame_t *f = gw_frame_new(gw->scratch.data, gw->scratch.len, GW_FRAME_EVENT);
    if (!f)
        return -1;
    f->seq = ev.seq;
    f->gen = u->gen;
    return gw_batch_add(bp, f);
}

/*  Reads one whole sync answer (header + any number of event frames).
 *  0, or -1 when there was none. */
static int
s_read_dealer(gateway_t *gw)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, gw->dealer, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        return -1;
    }
    wire_sync_head_t h;
    gw_user_t *u = NULL;
    gw_batch_t *batch = NULL;
    if (wire_read_sync_head(zmq_msg_data(&part), zmq_msg_size(&part), &h) != 0)
        gw->stats.bad_broker_messages++; /* the retry timer asks again */
    else if ((u = gw_user_find(gw, h.user_id.p, h.user_id.len)) == NULL)
        ; /* every session of that user left meanwhile */
    else if (h.error)
        gw_user_sync_refused(gw, u, h.req);
    else if (gw_user_sync_begin(gw, u, h.req, h.epoch.p, h.epoch.len) &&
             !(batch = gw_batch_new(h.seq)))
        log_error(&gw->log, "user=%s: out of memory for a sync answer", u->id);
    while (zmq_msg_more(&part)) {
        if (zmq_msg_recv(&part, gw->dealer, 0) < 0)
            break;
        if (batch && s_batch_add(gw, u, &batch, zmq_msg_data(&part), zmq_msg_size(&part)) != 0) {
            log_error(&gw->log, "user=%s: out of memory rendering a snapshot", u->id);
            gw_batch_free(&batch); /* the retry timer asks again */
        }
    }
    zmq_msg_close(&part);
    if (batch)
        gw_user_synced(gw, u, h.req, batch);
    return 0;
}

/* ---------------------------------------------------------------- the pump */

int
gw_link_pump(gateway_t *gw)
{
    if (!gw->sub)
        return 0;
    int budget = S_READ_BUDGET, progress;
    do {
        progress = s_send_subscriptions(gw) | s_send_sync_requests(gw);
        int heard = 0;
        while (gw->sub_ready && budget > 0) {
            if (s_read_sub(gw) != 0)
                gw->sub_ready = 0;
            else
                budget--, heard = progress = 1;
        }
        while (gw->dealer_ready && budget > 0) {
            if (s_read_dealer(gw) != 0)
                gw->dealer_ready = 0;
            else
                budget--, progress = 1;
        }
        /* Anything from the broker shows the link is alive: under a burst
         * the heartbeats wait in the same queue as the events before them. */
        if (heard && gw->broker_up)
            gw->last_heartbeat_ms = clock_mono_ms();
    } while (progress && budget > 0);
    return budget == 0;
}

void
gw_link_check(gateway_t *gw, int64_t now_ms)
{
    if (gw->broker_up && now_ms - gw->last_heartbeat_ms > GW_BROKER_DEAD_MS) {
        gw->broker_up = 0;
        log_warn(&gw->log, "broker link down: no heartbeat for %d ms", GW_BROKER_DEAD_MS);
    }
}
