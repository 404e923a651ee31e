"""Processes coming and going: readiness, broker restarts under connected
clients, gateway shutdown, the status route and metrics."""
import asyncio
import json
import re
import signal
import time

import pytest

from conftest import event, http_get


def wait_status(gw, path, status, within):
    """Polls GET path until it answers status; returns the seconds it took."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < within:
        last = gw.get(path)[0]
        if last == status:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"GET {path} still {last} after {within}s, expected {status}")


def stop_broker(broker, how):
    if how == "SIGKILL":
        broker.kill()
    else:
        broker.stop(signal.SIGTERM)  # asserts exit status 0


# ---------------------------------------------------------------- readiness


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_ready_follows_the_broker(tc, how):
    broker = tc.broker()
    gw = tc.gateway(broker)
    assert gw.get("/ready")[0] == 200
    stop_broker(broker, how)
    wait_status(gw, "/ready", 503, within=5)
    status, headers, body = gw.get("/ready")
    assert status == 503
    assert gw.get("/health")[0] == 200, "liveness must not depend on the broker"
    broker2 = broker.restart()
    wait_status(gw, "/ready", 200, within=5)
    assert broker2.alive()


def test_ready_is_503_when_the_broker_was_never_there(tc):
    gw = tc.gateway(None)  # waits for /health only
    assert gw.get("/health")[0] == 200
    time.sleep(0.5)
    status, _, body = gw.get("/ready")
    assert status == 503, (status, body)


# ---------------------------------------------------------------- broker restart


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_clients_survive_a_broker_restart_and_get_a_new_hello(tc, how):
    broker = tc.broker()
    gw = tc.gateway(broker)
    w = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, "2")
        epoch1 = ws.hello["epoch"]
        for i in range(3):
            w.publish_ok(event("before", "2", progress=i))
        assert [f["seq"] for f in await ws.recv_tasks(3)] == [1, 2, 3]

        stop_broker(broker, how)
        broker2 = broker.restart()
        w2 = tc.worker(broker2)
        # published at once: before the gateway may even have noticed
        seq_x = w2.publish_ok(event("after", "2", "running", progress=7, ts=42))
        assert seq_x == 1, "a broker without journal starts over"
        hello = await ws.recv(timeout=12)  # the connection stays open
        assert hello.get("type") == "hello", f"expected a new hello, got {hello!r}"
        assert hello["user_id"] == "2" and hello["epoch"] != epoch1, (epoch1, hello)
        frame = await ws.recv_task(timeout=8)
        assert frame == {"type": "task", "seq": 1, "task_id": "after", "status": "running",
                         "progress": 7, "ts": 42}, frame
        seq_y = w2.publish_ok(event("after", "2", "succeeded"))
        frame = await ws.recv_task()
        assert frame["seq"] == seq_y == 2 and frame["status"] == "succeeded", frame
        await ws.quiet(0.3)
        assert gw.get("/ready")[0] == 200

    tc.run(main)


def test_client_connecting_while_the_broker_is_down_is_served_once_it_is_back(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    broker.kill()
    wait_status(gw, "/ready", 503, within=5)

    async def main():
        ws = await tc.ws(gw.url("5", tc.token("5")))  # handshake + auth need no broker
        await asyncio.sleep(0.5)
        broker2 = broker.restart()
        seq = tc.worker(broker2).publish_ok(event("t", "5", "queued", ts=9))
        hello = await ws.recv(timeout=9)
        assert hello.get("type") == "hello" and hello["user_id"] == "5", hello
        frame = await ws.recv_task(timeout=8)
        assert frame == {"type": "task", "seq": seq, "task_id": "t", "status": "queued",
                         "ts": 9}, frame

    tc.run(main)


def test_broker_journal_keeps_state_and_epoch_across_a_restart(tc):
    """Contract: TASKCAST_JOURNAL / --journal, "so a restart loses nothing"."""
    journal = tc.tmp / "journal.bin"
    broker = tc.broker(args=["--journal", str(journal)])
    gw = tc.gateway(broker)
    w = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, "2")
        epoch = ws.hello["epoch"]
        for i in range(3):
            w.publish_ok(event("kept", "2", progress=i * 10))
        await ws.recv_tasks(3)
        broker.stop()
        broker2 = broker.restart(args=["--journal", str(journal)])
        seq = tc.worker(broker2).publish_ok(event("kept", "2", progress=99))
        assert seq == 4, "the journal should keep the user's seq"
        frame = await ws.recv(timeout=10)
        assert frame.get("type") == "task" and frame["seq"] == 4, \
            f"expected the next event, not a new epoch: {frame!r}"
        ws2 = await tc.connect(gw, "2", since=3, epoch=epoch, token_last=True)
        assert ws2.hello["epoch"] == epoch
        assert (await ws2.recv_task())["seq"] == 4

    tc.run(main)


# ---------------------------------------------------------------- gateway shutdown


def test_sigterm_to_the_gateway_closes_every_client_with_1001_and_exits_0(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)

    async def main():
        clients = [await tc.connect(gw, u) for u in ("2", "2", "3")]
        gw.p.send_signal(signal.SIGTERM)
        for ws in clients:
            frames, code, _ = await ws.expect_close(timeout=5)
            assert code != 1006, f"reset instead of a close frame; frames {frames!r}"
            assert len(frames) == 1, frames
            assert frames[0].get("type") == "error" and frames[0].get("code") == "shutdown", \
                frames
            assert code == 1001, code
        assert gw.wait_exit(5) == 0, gw.log()

    tc.run(main)
    with pytest.raises(OSError):
        http_get(gw.port, "/health", timeout=1)


def test_sigterm_to_an_idle_gateway_exits_0_quickly(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    t0 = time.monotonic()
    gw.stop(signal.SIGTERM)
    assert time.monotonic() - t0 < 2.5


def test_sigterm_to_the_broker_exits_0(tc):
    broker = tc.broker()
    tc.worker(broker).publish_ok(event("t", "2"))
    broker.stop(signal.SIGTERM)


# ---------------------------------------------------------------- status route


def get_json(gw, path):
    status, headers, body = gw.get(path)
    assert headers.get("content-type", "").startswith("application/json"), (status, headers)
    return status, json.loads(body), body.decode()


def test_status_route_requires_a_valid_token(tc, stack):
    _, gw = stack
    for path in ("/api/v1/ws/status", "/api/v1/ws/status?token=",
                 "/api/v1/ws/status?token=garbage",
                 f"/api/v1/ws/status?token={tc.token('2', key='x' * 40)}",
                 f"/api/v1/ws/status?token={tc.token('2', exp_in=-3600)}",
                 f"/api/v1/ws/status?token={tc.token('ops', role='admin', exp_in=-3600)}"):
        status, body, text = get_json(gw, path)
        assert status == 401, (path, status, text)
        assert isinstance(body, dict), text
        assert "connections" not in body and "users" not in body, text


def test_status_route_user_sees_own_connections_admin_sees_all(tc, stack):
    _, gw = stack
    other = "other-user-7f3a"

    async def main():
        a1 = await tc.connect(gw, "2")
        await tc.connect(gw, "2")
        await tc.connect(gw, other)
        await tc.connect(gw, "2x")

        status, body, text = get_json(gw, f"/api/v1/ws/status?token={tc.token('2')}")
        assert status == 200, text
        assert body.get("user_id") == "2", text
        assert body.get("connections") == 2, text
        assert other not in text and "2x" not in text, f"another user's data shown: {text}"
        assert "users" not in body, f"a user token sees gateway-wide data: {text}"

        status, body, text = get_json(gw, f"/api/v1/ws/status?token={tc.token('nobody')}")
        assert status == 200 and body.get("user_id") == "nobody", text
        assert body.get("connections") == 0, text

        admin = tc.token("ops", role="admin")
        status, body, text = get_json(gw, f"/api/v1/ws/status?token={admin}")
        assert status == 200, text
        assert body.get("connections") == 4, text
        assert body.get("users") == 3, text

        # counts follow closes
        await a1.close()
        deadline = time.monotonic() + 3
        while True:
            _, body, text = get_json(gw, f"/api/v1/ws/status?token={tc.token('2')}")
            if body.get("connections") == 1:
                break
            assert time.monotonic() < deadline, f"count did not drop after a close: {text}"
            time.sleep(0.05)
        _, body, text = get_json(gw, f"/api/v1/ws/status?token={admin}")
        assert body.get("connections") == 3 and body.get("users") == 3, text

    tc.run(main)


def test_status_route_role_other_than_admin_is_a_user_view(tc, stack):
    _, gw = stack

    async def main():
        await tc.connect(gw, "9")
        status, body, text = get_json(gw, f"/api/v1/ws/status?token="
                                          f"{tc.token('2', role='superuser')}")
        assert status == 200 and body.get("user_id") == "2", text
        assert body.get("connections") == 0 and "users" not in body, text

    tc.run(main)


# ---------------------------------------------------------------- metrics

PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+-]+|NaN|[+-]Inf$')


def metrics(gw):
    status, headers, body = gw.get("/metrics")
    assert status == 200, body
    assert headers.get("content-type", "").startswith("text/plain"), headers
    text = body.decode()
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert not line or line.startswith(("# HELP ", "# TYPE ")), line
            continue
        assert PROM_LINE.match(line), f"not Prometheus text: {line!r}"
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return text, values


def test_metrics_is_prometheus_text_with_the_connection_gauge(tc, stack):
    _, gw = stack

    async def main():
        text, values = metrics(gw)
        assert "# TYPE taskcast_gateway_connections gauge" in text, text
        assert values.get("taskcast_gateway_connections") == 0, text
        a = await tc.connect(gw, "2")
        await tc.connect(gw, "3")
        _, values = metrics(gw)
        assert values["taskcast_gateway_connections"] == 2
        await a.close()
        deadline = time.monotonic() + 3
        while metrics(gw)[1]["taskcast_gateway_connections"] != 1:
            assert time.monotonic() < deadline, "gauge did not drop after a close"
            time.sleep(0.05)

    tc.run(main)
