/*  fanout.c: broker -> gateways over XPUB.
 *
 *  Data: [user id + NUL][published event]. The NUL ends every user topic so
 *  the prefix match of SUB never lets user "2" see user "23".
 *  Control topics (common/topic.h):
 *    heartbeat     {"epoch":E,"boot":B,"ts":MS} every TOPIC_HEARTBEAT_MS
 *    confirmation  a gateway subscribes to a topic it made up after its user
 *                  topics; XPUB hands us that subscription only after the
 *                  earlier ones from the same connection took effect, so
 *                  publishing on it tells the gateway "from here on you
 *                  receive those users' events".
 *  XPUB is lossy at its high-water mark by design (a slow gateway must not
 *  stall the others); per-user seq numbers make any gap visible and the
 *  gateway repairs it with a replay from sync.c.
 *
 *  An event of a user no gateway subscribes to is not sent at all (XPUB
 *  would match it against no subscription and drop it, at the cost of a
 *  thousand instructions): the state knows who is subscribed, from the
 *  notifications read here. A subscription that could match users the
 *  state does not mark (a prefix such as "" or "2", or one for a user the
 *  state could not keep) turns that off while it lasts. Skipping an event
 *  before its user's subscription is read takes nothing from a gateway:
 *  it counts only on events after the confirmation, which comes later.
 */
#include <errno.h>
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "wire.h"
#include "zmsg.h"

int
bk_fanout_publish(broker_t *bk, const bk_user_t *u, const bk_blob_t *blob)
{
    if (!u->subscribed && bk->broad_subs == 0)
        return 0; /* nobody would receive it */
    /* u->id is NUL-terminated: the topic includes that NUL. */
    bk->sent |= BK_SOCK_FANOUT; /* the loop reads the XPUB again */
    if (zmq_send(bk->fanout, u->id, u->id_len + 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(bk->fanout, blob->data, blob->len, ZMQ_DONTWAIT) < 0)
        return -1;
    bk->stats.published++;
    return 0;
}

/*  A subscription that may match users the state does not mark subscribed
 *  came or went. */
static void
s_broad(broker_t *bk, int subscribe)
{
    if (subscribe)
        bk->broad_subs++;
    else if (bk->broad_subs > 0)
        bk->broad_subs--;
}

/*  Sends [topic]{"epoch":E} (confirmations) or, with wall_ms,
 *  {"epoch":E,"boot":B,"ts":MS} (heartbeats: boot changes at every start). */
static void
s_send_control(broker_t *bk, const void *topic, size_t topic_len, int64_t wall_ms)
{
    buf_reset(&bk->scratch);
    wire_pack_control(&bk->scratch, bk->state.epoch, wall_ms ? bk->boot : NULL, wall_ms);
    if (!buf_ok(&bk->scratch) ||
        zmq_send(bk->fanout, topic, topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(bk->fanout, bk->scratch.data, bk->scratch.len, ZMQ_DONTWAIT) < 0)
        log_warn(&bk->log, "control message not sent: %s", zmq_strerror(errno));
    bk->sent |= BK_SOCK_FANOUT; /* the loop reads the XPUB again */
}

void
bk_fanout_heartbeat(broker_t *bk, int64_t wall_ms)
{
    s_send_control(bk, TOPIC_HEARTBEAT, TOPIC_HEARTBEAT_LEN, wall_ms);
}

int
bk_fanout_drain(broker_t *bk, int max)
{
    int n = 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (n < max && zmq_msg_recv(&msg, bk->fanout, ZMQ_DONTWAIT) >= 0) {
        n++;
        const char *d = zmq_msg_data(&msg);
        size_t len = zmq_msg_size(&msg);
        if (len < 1 || (d[0] != 0 && d[0] != 1))
            continue;
        int subscribe = d[0] == 1;
        const char *topic = d + 1;
        size_t tlen = len - 1;
        if (tlen >= TOPIC_CONFIRM_PREFIX_LEN &&
            memcmp(topic, TOPIC_CONFIRM_PREFIX, TOPIC_CONFIRM_PREFIX_LEN) == 0) {
            if (subscribe)
                s_send_control(bk, topic, tlen, 0);
            continue;
        }
        if (tlen >= 2 && topic[tlen - 1] == '\0' && event_user_id_valid(topic, tlen - 1)) {
            if (bk_state_set_subscribed(&bk->state, topic, tlen - 1, subscribe, clock_mono_ms()))
                s_broad(bk, subscribe);
            if (subscribe)
                bk->stats.subscribes++;
            log_debug(&bk->log, "%s user=%.*s", subscribe ? "subscribed" : "unsubscribed",
                      (int)(tlen - 1), topic);
        }
        else if (tlen == 0 || event_user_id_valid(topic, tlen))
            s_broad(bk, subscribe); /* a prefix of user topics */
    }
    zmq_msg_close(&msg);
    return n;
}
