"""Connections over time: idle ones are kept alive with WebSocket pings, dead
ones are closed, and a gateway subscribes to the broker only while it has a
connection for the user. A connection the gateway closes completes the
closing handshake: the gateway waits for the client's close frame (up to
CLOSE_ACK seconds) before it closes TCP, and drops a client that never sends
one, also at shutdown.

The ping interval is shortened with --ping-interval so the test takes seconds;
the default (30 s, hang up after 75 s) is the same code path.
"""
import asyncio
import base64
import os
import signal
import socket
import struct
import time

from conftest import event, http_get, uid

PING_INTERVAL = 1  # seconds: ping after 1 s of silence, hang up after 2.5 s
CLOSE_ACK = 2.0  # seconds the gateway waits for the client's close frame (GW_CLOSE_ACK_MS)
TICK = 0.1  # the gateway's timers are within a tick


def raw_ws(gw, user, token):
    """A bare TCP WebSocket client: completes the handshake, then lets the
    test decide whether to answer pings."""
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /api/v1/ws/tasks/{user}?token={token} HTTP/1.1\r\nHost: t\r\n"
              f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, head.split(b"\r\n\r\n", 1)[1]


def read_frame(s, buf):
    """(opcode, payload, rest of buf) of the next frame; None at EOF."""
    while True:
        if len(buf) >= 2:
            n, h = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, h = struct.unpack(">H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, h = struct.unpack(">Q", buf[2:10])[0], 10
            if n < 126 or h > 2:
                if len(buf) >= h + n:
                    return buf[0] & 0x0F, buf[h:h + n], buf[h + n:]
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk


def send_pong(s, payload):
    send_control(s, 0xA, payload)


def send_control(s, opcode, payload):
    """A masked control frame (a client's)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body)


def until_close(s, buf):
    """Reads to the gateway's close frame: (text frames before it, its code,
    the time it arrived)."""
    texts = []
    while True:
        frame = read_frame(s, buf)
        assert frame is not None, f"EOF before a close frame; frames {texts!r}"
        op, payload, buf = frame
        if op == 0x8:
            return texts, struct.unpack(">H", payload[:2])[0], time.monotonic()
        if op == 0x1:
            texts.append(payload)


def eof_after(s, timeout):
    """Seconds until the gateway closes TCP (EOF or reset), reading and
    dropping whatever comes; None if it is still open after timeout."""
    t0 = time.monotonic()
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
    except socket.timeout:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def connections(gw):
    body = http_get(gw.port, "/metrics")[2].decode()
    for line in body.splitlines():
        if line.startswith("taskcast_gateway_connections "):
            return int(float(line.split()[1]))
    raise AssertionError(body)


def test_idle_connection_is_pinged_and_kept_while_it_answers(tc):
    broker = tc.broker()
    gw = tc.gateway(broker, args=["--ping-interval", str(PING_INTERVAL)])
    s, buf = raw_ws(gw, "2", tc.token("2"))
    pings, deadline = 0, time.monotonic() + 6 * PING_INTERVAL
    s.settimeout(3 * PING_INTERVAL)
    while time.monotonic() < deadline:
        frame = read_frame(s, buf)
        assert frame is not None, "the gateway closed a connection that answered its pings"
        op, payload, buf = frame
        if op == 0x9:
            pings += 1
            send_pong(s, payload)
        assert op != 0x8, f"closed although it answered every ping: {payload!r}"
    assert pings >= 3, f"expected a ping every {PING_INTERVAL} s of silence, got {pings}"
    s.close()


def test_dead_connection_is_closed(tc):
    broker = tc.broker()
    gw = tc.gateway(broker, args=["--ping-interval", str(PING_INTERVAL)])
    s, buf = raw_ws(gw, "2", tc.token("2"))
    s.settimeout(2)
    start = time.monotonic()
    closed = False
    while time.monotonic() - start < 10 * PING_INTERVAL:
        try:
            frame = read_frame(s, buf)  # never answers a ping
        except socket.timeout:
            continue
        if frame is None or frame[0] == 0x8:
            closed = True
            break
        buf = frame[2]
    took = time.monotonic() - start
    assert closed, "a client that never answers pings was not closed"
    assert took >= 2 * PING_INTERVAL, f"closed after {took:.1f} s, before the hangup time"
    s.close()
    deadline = time.monotonic() + 3
    while b"taskcast_gateway_connections 0" not in gw.get("/metrics")[2]:
        assert time.monotonic() < deadline, gw.get("/metrics")[2]
        time.sleep(0.05)


def metric(gw, name):
    for line in gw.get("/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_gateway_unsubscribes_when_the_last_connection_of_a_user_closes(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()
    w = tc.worker(broker)

    async def main():
        a = await tc.connect(gw, user)
        b = await tc.connect(gw, user)
        w.publish_ok(event("t", user))
        await a.recv_task()
        await b.recv_task()
        assert metric(gw, "taskcast_gateway_events_received_total") == 1
        await a.close()
        # One connection left: still subscribed.
        w.publish_ok(event("t", user, progress=1))
        await b.recv_task()
        assert metric(gw, "taskcast_gateway_events_received_total") == 2
        await b.close()
        deadline = time.monotonic() + 3
        while metric(gw, "taskcast_gateway_users") != 0:
            assert time.monotonic() < deadline, "the user stayed after its last connection"
            await asyncio.sleep(0.05)
        # Unsubscribed: the broker sends this gateway nothing more for the user.
        for i in range(5):
            w.publish_ok(event("t", user, progress=10 + i))
        await asyncio.sleep(0.5)
        assert metric(gw, "taskcast_gateway_events_received_total") == 2
        # A new connection subscribes again and gets the current state.
        c = await tc.connect(gw, user)
        frame = await c.recv_task()
        assert frame["progress"] == 14 and frame["seq"] == 7, frame

    tc.run(main)
    assert f"unsubscribed user={user}" in broker.log()


def test_refused_client_that_answers_the_close_is_closed_after_its_close_frame(tc):
    gw = tc.gateway(tc.broker())
    s, buf = raw_ws(gw, "2", "not-a-jwt")
    texts, code, _ = until_close(s, buf)
    assert code == 4401 and len(texts) == 1 and b'"unauthorized"' in texts[0], (code, texts)
    # The gateway waits for our close frame: TCP stays open meanwhile.
    assert eof_after(s, 0.5) is None, "the gateway closed TCP before the client's close frame"
    send_control(s, 0x8, struct.pack(">H", 4401))
    took = eof_after(s, CLOSE_ACK)
    assert took is not None and took < 1.0, f"TCP not closed after the close frames ({took})"
    s.close()
    deadline = time.monotonic() + 3
    while connections(gw) != 0:
        assert time.monotonic() < deadline, "the session outlived its connection"
        time.sleep(0.05)


def test_refused_client_that_never_answers_the_close_is_dropped_after_the_wait(tc):
    gw = tc.gateway(tc.broker())
    socks = []
    for _ in range(3):
        s, buf = raw_ws(gw, "2", "not-a-jwt")
        _, code, closed_at = until_close(s, buf)
        assert code == 4401, code
        socks.append((s, closed_at))
    for s, closed_at in socks:
        took = eof_after(s, CLOSE_ACK + 3)
        assert took is not None, f"still open {CLOSE_ACK + 3:.0f} s after the close frame"
        since_close = time.monotonic() - closed_at
        assert CLOSE_ACK - 0.5 <= since_close <= CLOSE_ACK + 1.5, \
            f"dropped {since_close:.2f} s after the close frame, expected about {CLOSE_ACK} s"
        s.close()
    assert connections(gw) == 0
    assert "no close frame from the client within" in gw.log(), gw.log()[-2000:]


def test_sigterm_with_a_client_that_never_answers_the_close_exits_0_within_the_wait(tc):
    gw = tc.gateway(tc.broker())
    s, buf = raw_ws(gw, "2", tc.token("2"))
    op, payload, buf = read_frame(s, buf)
    assert op == 0x1 and b'"hello"' in payload, payload
    t0 = time.monotonic()
    gw.p.send_signal(signal.SIGTERM)
    texts, code, _ = until_close(s, buf)
    assert code == 1001 and b'"shutdown"' in texts[0], (code, texts)
    assert gw.wait_exit(CLOSE_ACK + 3) == 0, gw.log()
    took = time.monotonic() - t0
    assert took < CLOSE_ACK + 1.5, f"the gateway took {took:.2f} s to stop"
    assert eof_after(s, 1) is not None
    s.close()
