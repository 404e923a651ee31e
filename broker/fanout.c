/*  fanout.c: broker -> gateways over the XPUB (zsrv.c).
 *
 *  Data: [user id + NUL][published event]. The NUL ends every user topic so
 *  the prefix match of SUB never lets user "2" see user "23".
 *  Control topics (common/topic.h):
 *    heartbeat     {"epoch":E,"boot":B,"ts":MS} every TOPIC_HEARTBEAT_MS
 *    confirmation  a gateway subscribes to a topic it made up after its user
 *                  topics; the XPUB hands us that subscription only after the
 *                  earlier ones from the same connection took effect, so
 *                  publishing on it tells the gateway "from here on you
 *                  receive those users' events".
 *  The XPUB is lossy for a gateway that stops reading (a slow gateway must
 *  not stall the others); per-user seq numbers make any gap visible and the
 *  gateway repairs it with a replay from sync.c. An event of a user nobody
 *  subscribes to costs one lookup and is not sent at all.
 */
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "wire.h"

void
bk_fanout_publish(broker_t *bk, const bk_user_t *u, const bk_blob_t *blob)
{
    /* u->id is NUL-terminated: the topic includes that NUL. */
    if (bk_zsock_publish(bk->fanout, u->id, u->id_len + 1u, blob->data, blob->len) > 0)
        bk->stats.published++;
}

/*  Sends [topic]{"epoch":E} (confirmations) or, with wall_ms,
 *  {"epoch":E,"boot":B,"ts":MS} (heartbeats: boot changes at every start). */
static void
s_send_control(broker_t *bk, const void *topic, size_t topic_len, int64_t wall_ms)
{
    buf_reset(&bk->scratch);
    wire_pack_control(&bk->scratch, bk->state.epoch, wall_ms ? bk->boot : NULL, wall_ms);
    if (buf_ok(&bk->scratch))
        bk_zsock_publish(bk->fanout, topic, topic_len, bk->scratch.data, bk->scratch.len);
    else
        log_warn(&bk->log, "control message not sent: out of memory");
}

void
bk_fanout_heartbeat(broker_t *bk, int64_t wall_ms)
{
    s_send_control(bk, TOPIC_HEARTBEAT, TOPIC_HEARTBEAT_LEN, wall_ms);
}

void
bk_fanout_on_sub(broker_t *bk, const uint8_t *t, size_t tlen, int subscribe)
{
    const char *topic = (const char *)t;
    if (tlen >= TOPIC_CONFIRM_PREFIX_LEN &&
        memcmp(topic, TOPIC_CONFIRM_PREFIX, TOPIC_CONFIRM_PREFIX_LEN) == 0) {
        if (subscribe)
            s_send_control(bk, topic, tlen, 0);
        return;
    }
    if (tlen >= 2 && topic[tlen - 1] == '\0' && event_user_id_valid(topic, tlen - 1)) {
        /* A subscribed user stays in the state (it is not "idle"). */
        (void)bk_state_set_subscribed(&bk->state, topic, tlen - 1, subscribe, clock_mono_ms());
        if (subscribe)
            bk->stats.subscribes++;
        log_debug(&bk->log, "%s user=%.*s", subscribe ? "subscribed" : "unsubscribed",
                  (int)(tlen - 1), topic);
    }
}
