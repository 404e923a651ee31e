/*  link.c: what the gateway says to the broker and what it hears.
 *
 *  Two connections (zconn.c, ZMTP spoken by our own loop):
 *    fanout  SUB to the broker's XPUB: [user NUL][event], heartbeats on
 *            "\0hb", confirmations on "\xffconfirm:TOKEN:N"
 *    sync    DEALER to the broker's ROUTER: snapshot/replay requests, and
 *            their answers [header][event]...
 *
 *  Frames arrive as the connections read them and are handled at once.
 *  What users and sessions queue (subscriptions, unsubscriptions, sync
 *  requests) goes out in gw_link_pump(), once per loop pass before the loop
 *  sleeps: every subscription of the pass, then one confirmation covering
 *  them, then every sync request, each connection written with one send.
 *
 *  Subscriptions are confirmed, not assumed: after subscribing users the
 *  gateway subscribes a made-up confirmation topic; when the broker
 *  publishes on it, every earlier subscription is in effect (topic.h).
 *  After a reconnect every subscription is sent again and confirmed, and
 *  then every live session catches up on what it may have missed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlist.h"
#include "gateway.h"
#include "topic.h"
#include "wire.h"
#include "zmtp.h"

#define S_FANOUT_FRAME_MAX (4u << 20)  /* an event is at most ~72 KiB */
#define S_SYNC_FRAME_MAX   (16u << 20) /* one frame of a sync answer */
#define S_SILENCE_MS       5000        /* fanout up but nothing heard: reconnect */

static void s_on_fanout_up(gateway_t *gw, gw_zconn_t *c);
static void s_on_fanout_frame(gateway_t *gw, gw_zconn_t *c, const uint8_t *data, size_t len,
                              int first, int more);
static void s_on_sync_up(gateway_t *gw, gw_zconn_t *c);
static void s_on_sync_frame(gateway_t *gw, gw_zconn_t *c, const uint8_t *data, size_t len,
                            int first, int more);

int
gw_link_open(gateway_t *gw)
{
    const gw_zconn_spec_t fanout = {"fanout",         gw->fanout_ep,      "SUB",
                                    "XPUB",           S_FANOUT_FRAME_MAX, s_on_fanout_up,
                                    s_on_fanout_frame};
    const gw_zconn_spec_t sync = {"sync",           gw->sync_ep,  "DEALER",       "ROUTER",
                                  S_SYNC_FRAME_MAX, s_on_sync_up, s_on_sync_frame};
    return gw_zconn_open(gw, &gw->fanout, &fanout) == 0 && gw_zconn_open(gw, &gw->sync, &sync) == 0
               ? 0
               : -1;
}

void
gw_link_close(gateway_t *gw)
{
    gw_zconn_close(&gw->fanout);
    gw_zconn_close(&gw->sync);
    gw_batch_free(&gw->answer_batch);
}

/* ---------------------------------------------------------------- sending */

/*  "\xffconfirm:" TOKEN ":" N */
static size_t
s_confirm_topic(const gateway_t *gw, uint64_t n, char *out, size_t outlen)
{
    int len = snprintf(out, outlen, "%s%s:%" PRIu64, TOPIC_CONFIRM_PREFIX, gw->token, n);
    return len > 0 && (size_t)len < outlen ? (size_t)len : 0;
}

/*  Leaving users first (a user that left and came back in one pass was
 *  kept, not queued), then joining ones, then one confirmation after them
 *  all. Nothing while the fanout is down: its "up" sends every
 *  subscription again. */
static void
s_send_subscriptions(gateway_t *gw)
{
    buf_t *out = gw_zconn_out(&gw->fanout);
    gw_user_t *u;
    while ((u = gw->leaveq) != NULL) {
        DLIST_REMOVE(gw->leaveq, gw->leaveq_tail, u, qprev, qnext);
        if (out)
            zmtp_put_subscription(out, u->id, u->id_len + 1u, 0); /* the id and its NUL */
        log_debug(&gw->log, "unsubscribed user=%s", u->id);
        gw_user_free(gw, u);
    }
    if (!out)
        return;
    while ((u = gw->joinq) != NULL) {
        DLIST_REMOVE(gw->joinq, gw->joinq_tail, u, qprev, qnext);
        zmtp_put_subscription(out, u->id, u->id_len + 1u, 1);
        log_debug(&gw->log, "subscribed user=%s", u->id);
        u->state = GW_U_CONFIRMING;
        u->confirm_n = gw->confirm_sent + 1;
        DLIST_APPEND(gw->confirmq, gw->confirmq_tail, u, qprev, qnext);
        gw->confirm_wanted = 1;
    }
    if (gw->confirm_wanted) {
        char topic[96];
        gw->confirm_wanted = 0;
        size_t len = s_confirm_topic(gw, ++gw->confirm_sent, topic, sizeof topic);
        zmtp_put_subscription(out, topic, len, 1);
    }
}

static void
s_send_sync_requests(gateway_t *gw)
{
    buf_t *out = gw_zconn_out(&gw->sync);
    gw_session_t *s;
    while (out && (s = gw->syncq) != NULL) {
        DLIST_REMOVE(gw->syncq, gw->syncq_tail, s, qprev, qnext);
        s->queued = 0;
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
        zmtp_put_frame(out, gw->scratch.data, gw->scratch.len, 0);
    }
}

void
gw_link_pump(gateway_t *gw)
{
    s_send_subscriptions(gw);
    s_send_sync_requests(gw);
    gw_zconn_flush(&gw->fanout);
    gw_zconn_flush(&gw->sync);
    gw_zconn_flush(&gw->jobs); /* clients' cancels (jobs.c) */
}

/* ---------------------------------------------------------------- fanout */

/*  (Re)connected: every subscription again, then a confirmation; after a
 *  reconnect, live sessions catch up once it arrives. */
static void
s_on_fanout_up(gateway_t *gw, gw_zconn_t *c)
{
    buf_t *out = gw_zconn_out(c);
    gw->sub_part = 0;
    zmtp_put_subscription(out, TOPIC_HEARTBEAT, TOPIC_HEARTBEAT_LEN, 1);
    size_t pos = 0;
    gw_user_t *u;
    while ((u = strmap_next(gw->users, &pos)) != NULL)
        if (u->state == GW_U_CONFIRMING || u->state == GW_U_CONFIRMED)
            zmtp_put_subscription(out, u->id, u->id_len + 1u, 1);
    gw->confirm_wanted = 1;
    if (gw->fanout_ever_up) {
        gw->relink = 1;
        gw->relink_confirm = gw->confirm_sent + 1;
    }
    gw->fanout_ever_up = 1;
}

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
    if (was_known && !gw->relink) {
        /* The heartbeats stopped for a while, or the broker restarted (the
         * connection may never have dropped: a broker behind a proxy):
         * events may have been published while we could not hear them.
         * Once a confirmation shows our subscriptions are in effect, every
         * live session catches up (a replay, or the new state if the epoch
         * changed). */
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
    buf_t *out = gw_zconn_out(&gw->fanout);
    if (out)
        zmtp_put_subscription(out, topic, len, 0);
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

/*  [topic][body]: the topic is kept (it may be read apart from its body),
 *  then the body handled. Anything else is counted and skipped. */
static void
s_on_fanout_frame(gateway_t *gw, gw_zconn_t *c, const uint8_t *data, size_t len, int first,
                  int more)
{
    if (first)
        gw->sub_part = 0;
    if (gw->sub_part == 0) {
        if (!more || len > sizeof gw->sub_topic) {
            gw->stats.bad_broker_messages++;
            gw->sub_part = 2;
            return;
        }
        memcpy(gw->sub_topic, data, len);
        gw->sub_topic_len = (uint8_t)len;
        gw->sub_part = 1;
        return;
    }
    if (gw->sub_part == 2)
        return;
    gw->sub_part = 2;
    if (more) {
        gw->stats.bad_broker_messages++;
        return;
    }
    const char *topic = gw->sub_topic;
    size_t tlen = gw->sub_topic_len;
    gw->last_heartbeat_ms = gw->broker_up ? clock_mono_ms() : gw->last_heartbeat_ms;
    if (tlen == TOPIC_HEARTBEAT_LEN && memcmp(topic, TOPIC_HEARTBEAT, tlen) == 0)
        s_on_heartbeat(gw, data, len);
    else if (tlen > TOPIC_CONFIRM_PREFIX_LEN &&
             memcmp(topic, TOPIC_CONFIRM_PREFIX, TOPIC_CONFIRM_PREFIX_LEN) == 0)
        s_on_confirm(gw, topic, tlen);
    else if (tlen >= 2 && topic[tlen - 1] == '\0')
        s_on_event(gw, topic, tlen, data, len);
    else
        gw->stats.bad_broker_messages++;
}

/* ---------------------------------------------------------------- sync */

static void
s_on_sync_up(gateway_t *gw, gw_zconn_t *c)
{
    gw_batch_free(&gw->answer_batch);
    gw_session_resend_syncs(gw);
}

/*  The header of an answer: if a session waits for it, start its batch. */
static void
s_answer_begin(gateway_t *gw, const uint8_t *data, size_t len)
{
    wire_sync_head_t h;
    gw_user_t *u = NULL;
    gw_batch_free(&gw->answer_batch);
    if (wire_read_sync_head(data, len, &h) != 0) {
        gw->stats.bad_broker_messages++; /* the retry timer asks again */
        return;
    }
    if (!(u = gw_user_find(gw, h.user_id.p, h.user_id.len)))
        return; /* every session of that user left meanwhile */
    if (h.error) {
        gw_user_sync_refused(gw, u, h.req);
        return;
    }
    if (!gw_user_sync_begin(gw, u, h.req, h.epoch.p, h.epoch.len))
        return; /* stale: that session asked again, or went */
    if (!(gw->answer_batch = gw_batch_new(h.seq))) {
        log_error(&gw->log, "user=%s: out of memory for a sync answer", u->id);
        return;
    }
    gw->answer_req = h.req;
    gw->answer_gen = u->gen;
    memcpy(gw->answer_user, u->id, (size_t)u->id_len + 1);
}

/*  One event of an answer, rendered into the batch. */
static void
s_answer_event(gateway_t *gw, const uint8_t *data, size_t len)
{
    event_t ev;
    event_error_t err;
    size_t ulen = strlen(gw->answer_user);
    if (event_decode(&ev, data, len, EVENT_FROM_BROKER, &err) != 0 || ev.user_id.len != ulen ||
        memcmp(ev.user_id.p, gw->answer_user, ulen) != 0) {
        gw->stats.bad_broker_messages++;
        return; /* skip it; the seq check will ask again if it mattered */
    }
    buf_reset(&gw->scratch);
    gw_frame_t *f = NULL;
    if (event_render_json(&ev, &gw->scratch) != 0 ||
        !(f = gw_frame_new(gw->scratch.data, gw->scratch.len, GW_FRAME_EVENT)) ||
        (f->seq = ev.seq, f->gen = gw->answer_gen, gw_batch_add(&gw->answer_batch, f) != 0)) {
        log_error(&gw->log, "user=%s: out of memory rendering a snapshot", gw->answer_user);
        gw_batch_free(&gw->answer_batch); /* the retry timer asks again */
    }
}

static void
s_on_sync_frame(gateway_t *gw, gw_zconn_t *c, const uint8_t *data, size_t len, int first, int more)
{
    if (first)
        s_answer_begin(gw, data, len);
    else if (gw->answer_batch)
        s_answer_event(gw, data, len);
    if (more || !gw->answer_batch)
        return;
    /* The whole answer: the user may have gone while it arrived. */
    gw_batch_t *batch = gw->answer_batch;
    gw->answer_batch = NULL;
    gw_user_t *u = gw_user_find(gw, gw->answer_user, strlen(gw->answer_user));
    if (u)
        gw_user_synced(gw, u, gw->answer_req, batch);
    else
        gw_batch_free(&batch);
}

void
gw_link_check(gateway_t *gw, int64_t now_ms)
{
    if (gw->broker_up && now_ms - gw->last_heartbeat_ms > GW_BROKER_DEAD_MS) {
        gw->broker_up = 0;
        log_warn(&gw->log, "broker link down: no heartbeat for %d ms", GW_BROKER_DEAD_MS);
    }
    if (gw_zconn_up(&gw->fanout) && now_ms - gw->fanout.z.last_rx_ms > S_SILENCE_MS)
        gw_zconn_reset(&gw->fanout, "nothing from the broker for 5 s");
}
