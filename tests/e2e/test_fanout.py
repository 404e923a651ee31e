"""The broker's fanout (XPUB) seen by a raw SUB socket, as docs/protocol.md
section 2 describes it: a subscription confirmed by a confirmation topic
receives every later event of its users; a prefix subscription ("" or the
start of user ids) receives the events of every user it matches, also of
users no gateway follows (the broker skips sending only events nobody can
receive)."""
import msgpack
import zmq

from conftest import event

CONFIRM = b"\xffconfirm:"


class Sub:
    """A SUB socket on the broker's fanout."""

    def __init__(self, tc, broker):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(broker.fanout)
        tc.sockets.append(self.sock)
        self.n = 0

    def subscribe(self, *topics, unsubscribe=False):
        """Changes the subscriptions, then waits for the broker's confirmation
        (so they are in effect)."""
        for t in topics:
            self.sock.setsockopt(zmq.UNSUBSCRIBE if unsubscribe else zmq.SUBSCRIBE, t)
        self.n += 1
        confirm = CONFIRM + b"test-%x-%d" % (id(self), self.n)  # new for every call
        self.sock.setsockopt(zmq.SUBSCRIBE, confirm)
        while True:
            assert self.sock.poll(5000), "no confirmation"
            topic, body = self.sock.recv_multipart()
            if topic == confirm:
                assert "epoch" in msgpack.unpackb(body, raw=False)
                return

    def events(self, wait_ms=300):
        """The events received within wait_ms: [(user, seq)], heartbeats left out."""
        out = []
        while self.sock.poll(wait_ms):
            topic, body = self.sock.recv_multipart()
            if topic.startswith(b"\0") or topic.startswith(CONFIRM):
                continue
            ev = msgpack.unpackb(body, raw=False)
            assert topic == ev["user_id"].encode() + b"\0", (topic, ev)
            out.append((ev["user_id"], ev["seq"]))
        return out


def test_user_topic_gets_exactly_its_user(tc):
    broker = tc.broker()
    sub = Sub(tc, broker)
    sub.subscribe(b"fa\0")
    w = tc.worker(broker)
    for u in ("fa", "fab", "fb", "fa"):
        w.publish_ok(event("t", u, "running"))
    assert sub.events() == [("fa", 1), ("fa", 2)]


def test_prefix_subscriptions_get_every_user_they_match(tc):
    broker = tc.broker()
    w = tc.worker(broker)
    everything = Sub(tc, broker)
    everything.subscribe(b"")
    for u in ("pa", "pb"):
        w.publish_ok(event("t", u, "running"))
    assert everything.events() == [("pa", 1), ("pb", 1)]

    prefix = Sub(tc, broker)
    prefix.subscribe(b"q")
    everything.subscribe(b"", unsubscribe=True)
    for u in ("qa", "pa", "qb"):
        w.publish_ok(event("t", u, "running"))
    assert prefix.events() == [("qa", 1), ("qb", 1)]
    assert everything.events(100) == []

    # when the prefix goes too, a user topic still gets its events
    prefix.subscribe(b"qa\0")
    prefix.subscribe(b"q", unsubscribe=True)
    for u in ("qa", "qb"):
        w.publish_ok(event("t", u, "running"))
    assert prefix.events() == [("qa", 2)]
