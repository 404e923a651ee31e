/*  link.c: the gateway's two ZeroMQ sockets, inside the lws event loop.
 *
 *  SUB (fanout): user topics, heartbeats, subscription confirmations.
 *  DEALER (sync): snapshot/replay requests and their answers.
 *  Both sockets' ZMQ_FD are dup()ed and adopted into lws as raw files (lws
 *  closes what it adopts). ZMQ_FD only signals edges, so the sockets are
 *  drained until EAGAIN on every wake-up, again after every send or
 *  (un)subscribe (from a zero-delay lws timer, so nothing re-enters), and
 *  from the periodic tick as a safety net.
 *
 *  Subscriptions are confirmed, not assumed: after subscribing users the
 *  gateway subscribes a made-up confirmation topic; when the broker
 *  publishes on it, every earlier subscription is in effect (topic.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "gateway.h"
#include "topic.h"
#include "zmsg.h"

#define S_DRAIN_BUDGET 4096

static void s_flush_cb(lws_sorted_usec_list_t *sul);

/*  Runs s_flush_cb (confirmations, then a drain) in the next loop pass. */
static void
s_kick(gateway_t *gw)
{
    if (gw->flush_scheduled || !gw->lws)
        return;
    gw->flush_scheduled = 1;
    lws_sul_schedule(gw->lws, 0, &gw->sul_flush, s_flush_cb, 1);
}

static int
s_adopt(gateway_t *gw, void *socket)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(socket, ZMQ_FD, &fd, &len) != 0)
        return -1;
    /* A copy: lws closes what it adopts, ZeroMQ closes its own. */
    int copy = dup(fd);
    return copy >= 0 && gw_adopt_fd(gw, copy) ? 0 : -1;
}

static int
s_setint(void *socket, int option, int value)
{
    return zmq_setsockopt(socket, option, &value, sizeof value);
}

int
gw_link_open(gateway_t *gw, const char *fanout, const char *sync)
{
    gw->zctx = zmq_ctx_new();
    if (!gw->zctx)
        return -1;
    zmq_ctx_set(gw->zctx, ZMQ_IO_THREADS, 1);
    gw->sub = zmsg_socket(gw->zctx, ZMQ_SUB, 1000, 200000, 4 << 20);
    gw->dealer = zmsg_socket(gw->zctx, ZMQ_DEALER, 10000, 10000, -1);
    if (!gw->sub || !gw->dealer)
        goto fail;
    void *socks[] = {gw->sub, gw->dealer};
    for (size_t i = 0; i < 2; i++)
        if (s_setint(socks[i], ZMQ_RECONNECT_IVL, 100) ||
            s_setint(socks[i], ZMQ_RECONNECT_IVL_MAX, 1000) ||
            s_setint(socks[i], ZMQ_HEARTBEAT_IVL, 1000) ||
            s_setint(socks[i], ZMQ_HEARTBEAT_TIMEOUT, 3000))
            goto fail;
    if (zmq_connect(gw->sub, fanout) != 0) {
        log_error(&gw->log, "cannot connect to fanout %s: %s", fanout, zmq_strerror(errno));
        return -1;
    }
    if (zmq_connect(gw->dealer, sync) != 0) {
        log_error(&gw->log, "cannot connect to sync %s: %s", sync, zmq_strerror(errno));
        return -1;
    }
    if (zmq_setsockopt(gw->sub, ZMQ_SUBSCRIBE, TOPIC_HEARTBEAT, TOPIC_HEARTBEAT_LEN) != 0 ||
        s_adopt(gw, gw->sub) != 0 || s_adopt(gw, gw->dealer) != 0)
        goto fail;
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

int
gw_link_subscribe(gateway_t *gw, const char *topic, size_t len, int on)
{
    int rc = zmq_setsockopt(gw->sub, on ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, topic, len);
    s_kick(gw);
    return rc;
}

void
gw_link_want_confirm(gateway_t *gw, gw_user_t *u)
{
    gw->confirm_wanted = 1;
    if (u) {
        u->confirm_n = gw->confirm_sent + 1;
        u->cnext = NULL;
        if (gw->confirm_tail)
            gw->confirm_tail->cnext = u;
        else
            gw->confirm_head = u;
        gw->confirm_tail = u;
    }
    s_kick(gw);
}

/*  "\xffconfirm:" TOKEN ":" N */
static size_t
s_confirm_topic(const gateway_t *gw, uint64_t n, char *out, size_t outlen)
{
    int len = snprintf(out, outlen, "%s%s:%" PRIu64, TOPIC_CONFIRM_PREFIX, gw->token, n);
    return len > 0 && (size_t)len < outlen ? (size_t)len : 0;
}

static void
s_send_confirm(gateway_t *gw)
{
    char topic[96];
    gw->confirm_wanted = 0;
    size_t len = s_confirm_topic(gw, ++gw->confirm_sent, topic, sizeof topic);
    if (zmq_setsockopt(gw->sub, ZMQ_SUBSCRIBE, topic, len) != 0)
        log_error(&gw->log, "confirmation subscribe failed: %s", zmq_strerror(errno));
}

int
gw_link_request_sync(gateway_t *gw, gw_session_t *s, uint64_t since, const char *epoch)
{
    gw_user_t *u = s->user;
    msgpack_packer pk;
    buf_reset(&gw->scratch);
    msgpack_packer_init(&pk, &gw->scratch, buf_msgpack_write);
    msgpack_pack_map(&pk, epoch ? 4 : 2);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "req", 3);
    msgpack_pack_uint64(&pk, s->req = ++gw->next_req);
    msgpack_pack_str(&pk, 7);
    msgpack_pack_str_body(&pk, "user_id", 7);
    msgpack_pack_str(&pk, u->id_len);
    msgpack_pack_str_body(&pk, u->id, u->id_len);
    if (epoch) {
        msgpack_pack_str(&pk, 5);
        msgpack_pack_str_body(&pk, "since", 5);
        msgpack_pack_uint64(&pk, since);
        msgpack_pack_str(&pk, 5);
        msgpack_pack_str_body(&pk, "epoch", 5);
        msgpack_pack_str(&pk, strlen(epoch));
        msgpack_pack_str_body(&pk, epoch, strlen(epoch));
    }
    int rc = buf_ok(&gw->scratch)
                 ? zmq_send(gw->dealer, gw->scratch.data, gw->scratch.len, ZMQ_DONTWAIT)
                 : -1;
    s_kick(gw);
    return rc < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- receiving */

/*  Reads the string value of key from a control message's map. */
static int
s_control_str(const void *data, size_t len, const char *key, mp_value_t *out)
{
    mp_reader_t r;
    mp_value_t map, k, val;
    mp_reader_init(&r, data, len);
    if (mp_read(&r, &map) != 0 || map.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < map.v.n; i++) {
        if (mp_read_pair(&r, &k, &val, 4) != 0)
            return -1;
        if (mp_str_eq(&k, key) && val.type == MP_STR && val.v.s.len > 0 &&
            val.v.s.len <= EVENT_EPOCH_MAX) {
            *out = val;
            return 0;
        }
    }
    return -1;
}

/*  Copies a string value into a NUL-terminated field; 1 if it changed. */
static int
s_update(char *field, const mp_value_t *v)
{
    if (strlen(field) == v->v.s.len && memcmp(field, v->v.s.p, v->v.s.len) == 0)
        return 0;
    memcpy(field, v->v.s.p, v->v.s.len);
    field[v->v.s.len] = '\0';
    return 1;
}

static void
s_relink_resync(gateway_t *gw)
{
    size_t pos = 0;
    gw_user_t *u;
    while ((u = strmap_next(gw->users, &pos)) != NULL)
        for (gw_session_t *s = u->sessions; s; s = s->unext)
            if (s->state == GW_S_LIVE)
                gw_session_sync(gw, s);
}

static void
s_on_heartbeat(gateway_t *gw, const void *data, size_t len)
{
    mp_value_t epoch, boot;
    if (s_control_str(data, len, "epoch", &epoch) != 0 ||
        s_control_str(data, len, "boot", &boot) != 0) {
        gw->stats.bad_broker_messages++;
        return;
    }
    gw->last_heartbeat_ms = clock_mono_ms();
    int was_known = gw->broker_boot[0] != '\0';
    int restarted = s_update(gw->broker_boot, &boot) && was_known;
    s_update(gw->broker_epoch, &epoch);
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
        gw_link_want_confirm(gw, NULL);
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
    (void)zmq_setsockopt(gw->sub, ZMQ_UNSUBSCRIBE, topic, len);
    while (gw->confirm_head && gw->confirm_head->confirm_n <= n) {
        gw_user_t *u = gw->confirm_head;
        gw->confirm_head = u->cnext;
        if (!gw->confirm_head)
            gw->confirm_tail = NULL;
        u->cnext = NULL;
        gw_user_confirmed(gw, u);
    }
    if (gw->relink && n >= gw->relink_confirm) {
        gw->relink = 0;
        log_info(&gw->log, "subscriptions confirmed again: live sessions catch up");
        s_relink_resync(gw);
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

static void
s_on_sub(gateway_t *gw, zmsg_t *m)
{
    if (m->count != 2 || m->truncated) {
        gw->stats.bad_broker_messages++;
        return;
    }
    const char *topic = zmsg_data(m, 0);
    size_t tlen = zmsg_size(m, 0);
    if (tlen == TOPIC_HEARTBEAT_LEN && memcmp(topic, TOPIC_HEARTBEAT, tlen) == 0)
        s_on_heartbeat(gw, zmsg_data(m, 1), zmsg_size(m, 1));
    else if (tlen > TOPIC_CONFIRM_PREFIX_LEN &&
             memcmp(topic, TOPIC_CONFIRM_PREFIX, TOPIC_CONFIRM_PREFIX_LEN) == 0)
        s_on_confirm(gw, topic, tlen);
    else if (tlen >= 2 && topic[tlen - 1] == '\0')
        s_on_event(gw, topic, tlen, zmsg_data(m, 1), zmsg_size(m, 1));
    else
        gw->stats.bad_broker_messages++;
}

/* ---------------------------------------------------------------- sync answers */

typedef struct {
    uint64_t req, seq;
    int has_req, has_seq, error;
    mp_value_t user_id, epoch;
} s_header_t;

static int
s_parse_header(const void *data, size_t len, s_header_t *h)
{
    memset(h, 0, sizeof *h);
    mp_reader_t r;
    mp_value_t map, key, val;
    mp_reader_init(&r, data, len);
    if (mp_read(&r, &map) != 0 || map.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < map.v.n; i++) {
        if (mp_read_pair(&r, &key, &val, 4) != 0)
            return -1;
        if (mp_str_eq(&key, "req") && val.type == MP_UINT) {
            h->req = val.v.u;
            h->has_req = 1;
        }
        else if (mp_str_eq(&key, "seq") && val.type == MP_UINT) {
            h->seq = val.v.u;
            h->has_seq = 1;
        }
        else if (mp_str_eq(&key, "user_id") && val.type == MP_STR)
            h->user_id = val;
        else if (mp_str_eq(&key, "epoch") && val.type == MP_STR)
            h->epoch = val;
        else if (mp_str_eq(&key, "error"))
            h->error = 1;
    }
    return h->has_req ? 0 : -1;
}

static gw_session_t *
s_find_waiting(gw_user_t *u, uint64_t req)
{
    for (gw_session_t *s = u ? u->sessions : NULL; s; s = s->unext)
        if (s->state == GW_S_SYNCING && s->req == req)
            return s;
    return NULL;
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
    gw_batch_t *b = *bp;
    if ((b->count & (b->count - 1)) == 0 && b->count >= 8) { /* full at 8, 16, 32, ... */
        gw_batch_t *nb = realloc(b, sizeof *b + 2 * b->count * sizeof b->frames[0]);
        if (!nb)
            return -1;
        *bp = b = nb;
    }
    buf_reset(&gw->scratch);
    if (event_render_json(&ev, &gw->scratch) != 0)
        return -1;
    gw_frame_t *f = gw_frame_new(gw->scratch.data, gw->scratch.len, GW_FRAME_EVENT);
    if (!f)
        return -1;
    f->seq = ev.seq;
    f->gen = u->gen;
    b->frames[b->count++] = f;
    return 0;
}

/*  Reads one whole sync answer (header + any number of event frames). */
static int
s_on_sync_answer(gateway_t *gw)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, gw->dealer, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        return -1;
    }
    s_header_t h;
    gw_user_t *u = NULL;
    gw_session_t *s = NULL;
    gw_batch_t *batch = NULL;
    int ok = s_parse_header(zmq_msg_data(&part), zmq_msg_size(&part), &h) == 0;
    if (ok && h.user_id.type == MP_STR)
        u = gw_user_find(gw, h.user_id.v.s.p, h.user_id.v.s.len);
    s = ok ? s_find_waiting(u, h.req) : NULL;
    if (!ok)
        gw->stats.bad_broker_messages++;
    if (s && h.error) {
        log_warn(&gw->log, "conn=%u user=%s: the broker refused the sync", s->id, u->id);
        gw_session_fail(gw, s, GW_CLOSE_UNAVAILABLE, "unavailable",
                        "the broker cannot serve this user now; try again later");
        s = NULL;
    }
    else if (s && (!h.has_seq || h.epoch.type != MP_STR || h.epoch.v.s.len == 0)) {
        gw->stats.bad_broker_messages++;
        s = NULL; /* the retry timer asks again */
    }
    if (s) {
        gw_user_set_epoch(gw, u, h.epoch.v.s.p, h.epoch.v.s.len);
        batch = calloc(1, sizeof *batch + 8 * sizeof batch->frames[0]);
        if (!batch)
            s = NULL;
        else
            batch->seq = h.seq;
    }
    while (zmq_msg_more(&part)) {
        if (zmq_msg_recv(&part, gw->dealer, 0) < 0)
            break;
        if (s && s_batch_add(gw, u, &batch, zmq_msg_data(&part), zmq_msg_size(&part)) != 0) {
            log_error(&gw->log, "conn=%u: out of memory rendering a snapshot", s->id);
            s = NULL; /* the retry timer asks again */
        }
    }
    zmq_msg_close(&part);
    if (s)
        gw_session_synced(gw, s, batch);
    else
        gw_batch_free(&batch);
    return 0;
}

void
gw_link_drain(gateway_t *gw)
{
    if (!gw->sub)
        return;
    int budget = S_DRAIN_BUDGET, progress = 1, heard = 0;
    while (progress && budget-- > 0) {
        progress = 0;
        zmsg_t m;
        if (zmsg_recv(&m, gw->sub, ZMQ_DONTWAIT) == 0) {
            s_on_sub(gw, &m);
            zmsg_close(&m);
            progress = heard = 1;
        }
        if (s_on_sync_answer(gw) == 0)
            progress = 1;
    }
    /* Anything from the broker shows the link is alive: under a burst the
     * heartbeats wait in the same queue as the events before them. */
    if (heard && gw->broker_up)
        gw->last_heartbeat_ms = clock_mono_ms();
    if (progress)
        s_kick(gw); /* budget used up: go on in the next pass, after the writes */
}

static void
s_flush_cb(lws_sorted_usec_list_t *sul)
{
    gateway_t *gw = lws_container_of(sul, gateway_t, sul_flush);
    gw->flush_scheduled = 0;
    if (gw->confirm_wanted)
        s_send_confirm(gw);
    gw_link_drain(gw);
}

void
gw_link_check(gateway_t *gw, int64_t now_ms)
{
    if (gw->broker_up && now_ms - gw->last_heartbeat_ms > GW_BROKER_DEAD_MS) {
        gw->broker_up = 0;
        log_warn(&gw->log, "broker link down: no heartbeat for %d ms", GW_BROKER_DEAD_MS);
    }
}
