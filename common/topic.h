/*  topic.h: the broker -> gateway topics (docs/protocol.md).
 *
 *  A user topic is the user id followed by one NUL byte: SUB matching is by
 *  prefix, and no user id contains NUL, so "2" never matches "23".
 *  Control topics cannot collide with user topics: the heartbeat starts with
 *  NUL, confirmations with 0xFF. 0xFF also sorts after every user id, which
 *  matters: after a reconnect ZeroMQ resends a SUB socket's subscriptions in
 *  byte order, so a confirmation is resent after the user topics it covers.
 */
#ifndef TC_TOPIC_H
#define TC_TOPIC_H

/*  Heartbeat: {"epoch":E,"boot":B,"ts":MS} every TOPIC_HEARTBEAT_MS. The
 *  epoch changes when the broker lost its state; boot at every start. */
#define TOPIC_HEARTBEAT     "\0hb"
#define TOPIC_HEARTBEAT_LEN 3
#define TOPIC_HEARTBEAT_MS  500

/*  Subscription confirmation: a gateway subscribes to
 *  TOPIC_CONFIRM_PREFIX + anything (its own token and a counter); the broker
 *  answers every such new subscription by publishing {"epoch":E} on exactly
 *  that topic. */
#define TOPIC_CONFIRM_PREFIX                                                                       \
    "\xff"                                                                                         \
    "confirm:"
#define TOPIC_CONFIRM_PREFIX_LEN 9

#endif
