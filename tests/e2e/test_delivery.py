"""Event delivery, worker -> broker -> gateway -> browser: isolation per
user, order, exact field values, late joiners, resume, ping, limits."""
import asyncio
import threading
import time

import pytest

from conftest import event, now_ms, uid, Worker

CONTRACT_TASK_KEYS = {"type", "seq", "task_id", "status", "progress", "message", "data", "ts"}


def strict_eq(a, b):
    """== that also compares types (1 vs 1.0 vs True differ), recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_eq(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_eq(x, y) for x, y in zip(a, b))
    return a == b


def expected_frame(ev, seq):
    """The browser frame the contract promises for worker event ev."""
    f = {"type": "task", "seq": seq}
    for k in ("task_id", "status", "progress", "message", "data", "ts"):
        if k in ev:
            f[k] = ev[k]
    return f


def check_frame(frame, ev, seq, ts_stamped=False):
    exp = expected_frame(ev, seq)
    got = dict(frame)
    if ts_stamped:
        assert isinstance(got.get("ts"), int), got
        exp["ts"] = got["ts"]
    assert strict_eq(got, exp), f"frame differs from what the worker sent:\n got {got!r}\n" \
                                f" expected {exp!r}"


# ---------------------------------------------------------------- isolation


@pytest.mark.parametrize("connected", [("2",), ("23",), ("2", "23")], ids="-".join)
def test_user_never_receives_another_users_events(tc, stack, connected):
    """SUB matches by prefix: "2" must not get "23"'s events, nor the reverse."""
    broker, gw = stack
    w = tc.worker(broker)
    n = 30

    async def main():
        clients = {u: await tc.connect(gw, u) for u in connected}
        for i in range(n):  # interleaved: 2, 23, 2, 23, ...
            for u in ("2", "23"):
                w.publish_ok(event(f"for-{u}-{i}", u, progress=i, message=f"to {u}"))
        for u, ws in clients.items():
            frames = await ws.recv_tasks(n)
            assert [f["task_id"] for f in frames] == [f"for-{u}-{i}" for i in range(n)], u
            assert all(f["message"] == f"to {u}" for f in frames), frames
            assert [f["seq"] for f in frames] == list(range(1, n + 1)), frames
            await ws.quiet(0.5)

    tc.run(main)


# ---------------------------------------------------------------- order, tabs


def test_two_tabs_of_one_user_both_get_every_event_in_order(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)
    n = 200

    async def main():
        tab1 = await tc.connect(gw, user)
        tab2 = await tc.connect(gw, user)
        assert tab1.hello["epoch"] == tab2.hello["epoch"]
        sent = []
        for i in range(n):
            ev = event(f"job-{i % 7}", user, "running", progress=i % 101, message=f"step {i}",
                       data={"i": i, "tag": "x" * (i % 13)})
            sent.append((ev, w.publish_ok(ev)))
        seqs = [s for _, s in sent]
        assert seqs == list(range(seqs[0], seqs[0] + n)), "broker seqs are not consecutive"
        got1 = await tab1.recv_tasks(n, timeout=20)
        got2 = await tab2.recv_tasks(n, timeout=20)
        assert [f["seq"] for f in got1] == seqs
        assert [f["seq"] for f in got2] == seqs
        assert got1 == got2
        for f, (ev, seq) in zip(got1, sent):
            check_frame(f, ev, seq, ts_stamped=True)
        await tab1.quiet(0.3)
        await tab2.quiet(0.1)

    tc.run(main)


def test_seq_is_per_user_strictly_increasing_by_one(shared):
    tc = shared
    broker, gw = tc.stack
    a, b = uid("a"), uid("b")
    w = tc.worker(broker)

    async def main():
        wa = await tc.connect(gw, a)
        wb = await tc.connect(gw, b)
        seqs = {a: [], b: []}
        for i in range(25):
            for u in (a, b) if i % 3 else (a, a, b):
                seqs[u].append(w.publish_ok(event(f"t{i % 4}", u)))
        for u, ws in ((a, wa), (b, wb)):
            assert seqs[u] == list(range(1, len(seqs[u]) + 1)), (u, seqs[u])
            frames = await ws.recv_tasks(len(seqs[u]))
            assert [f["seq"] for f in frames] == seqs[u]

    tc.run(main)


# ---------------------------------------------------------------- fidelity

DATA = {
    "max_i64": 2**63 - 1,
    "min_i64": -2**63,
    "max_u64": 2**64 - 1,
    "beyond_double": 2**53 + 1,
    "zero": 0,
    "neg": -1,
    "float": 3.141592653589793,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "whole_float": 2.0,
    "neg_float": -0.5,
    "t": True,
    "f": False,
    "nil": None,
    "text": "h\u00e9llo w\u00f6rld \u2014 \u2713 \u65e5\u672c\u8a9e \U0001f389",
    "escapes": "quote\" backslash\\ slash/ nl\n tab\t cr\r nul\x00 ctl\x01\x1f del\x7f </script>",
    "bin": b"\x00\x01\x02\xfe\xff",
    "bin_empty": b"",
    "empty_map": {},
    "empty_list": [],
    "nested": {"a": {"b": {"c": [1, [2, [3, {"d": "e"}]], {"f": None}]}}},
    "list": [1, -1, 1.5, "s", None, True, b"\xff", {"k": [2**64 - 1]}],
    "\u00fcnicode key": "v",
}


def expected_data():
    """DATA as the browser must see it: binary as standard base64."""
    import base64

    def conv(v):
        if isinstance(v, bytes):
            return base64.b64encode(v).decode()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(DATA)


def test_frame_fields_equal_what_the_worker_sent(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)
    ts = 1_700_000_000_123
    ev = event("render-\u00e9-7", user, "running", progress=42.5,
               message="\u00e9tape 3/10 \u2014 \u2713 \U0001f389 \"quoted\" \\ </b>",
               data=DATA, ts=ts)

    async def main():
        ws = await tc.connect(gw, user)
        seq = w.publish_ok(ev)
        frame = await ws.recv_task()
        check_frame(frame, dict(ev, data=expected_data()), seq)

    tc.run(main)


@pytest.mark.parametrize("progress", [0, 100, 7, 0.5, 99.9, 1.1, 33.333333333333336])
def test_progress_values_pass_through(shared, progress):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, user)
        seq = w.publish_ok(event("p", user, progress=progress, ts=1))
        frame = await ws.recv_task()
        check_frame(frame, event("p", user, progress=progress, ts=1), seq)

    tc.run(main)


@pytest.mark.parametrize("status", ["queued", "running", "succeeded", "failed", "cancelled"])
def test_every_status_is_delivered(shared, status):
    tc = shared
    broker, gw = tc.stack
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        seq = tc.worker(broker).publish_ok(event("s", user, status, ts=5))
        check_frame(await ws.recv_task(), event("s", user, status, ts=5), seq)

    tc.run(main)


def test_ts_is_stamped_by_the_broker_when_absent(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, user)
        before = now_ms()
        seq = w.publish_ok(event("no-ts", user, "queued"))
        after = now_ms()
        frame = await ws.recv_task()
        assert frame["seq"] == seq
        assert isinstance(frame.get("ts"), int), frame
        assert before - 2000 <= frame["ts"] <= after + 2000, (before, frame["ts"], after)
        # absent optional fields are not invented
        for k in ("progress", "message", "data"):
            assert frame.get(k) is None, frame
        assert set(frame) <= CONTRACT_TASK_KEYS, frame

    tc.run(main)


# ---------------------------------------------------------------- late joiners


def test_late_joiner_gets_current_state_of_each_task_after_hello(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)
    history = [
        event("t1", user, "queued", ts=1),
        event("t2", user, "queued", ts=2),
        event("t1", user, "running", progress=50, message="half", ts=3),
        event("t3", user, "running", progress=10, ts=4),
        event("t2", user, "failed", message="boom", data={"code": 7}, ts=5),
        event("t1", user, "succeeded", progress=100, data={"url": "/r/1"}, ts=6),
        event("t3", user, "running", progress=80, ts=7),
    ]
    latest = {}
    for ev in history:
        latest[ev["task_id"]] = (ev, w.publish_ok(ev))

    async def main():
        ws = await tc.connect(gw, user)
        snap = await ws.recv_tasks(len(latest))
        await ws.quiet(0.5)  # nothing more: one frame per task, not the history
        by_task = {f["task_id"]: f for f in snap}
        assert set(by_task) == set(latest), snap
        for task, (ev, seq) in latest.items():
            check_frame(by_task[task], ev, seq)
        # then live events, seq going on from the snapshot
        seq = w.publish_ok(event("t4", user, "queued", ts=8))
        assert seq == len(history) + 1
        check_frame(await ws.recv_task(), event("t4", user, "queued", ts=8), seq)

    tc.run(main)


def test_terminal_task_is_still_shown_to_a_late_joiner(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)
    w.publish_ok(event("done", user, "running", progress=90))
    seq_done = w.publish_ok(event("done", user, "succeeded", progress=100, message="ok", ts=10))
    seq_cancel = w.publish_ok(event("stopped", user, "cancelled", ts=11))
    seq_fail = w.publish_ok(event("broken", user, "failed", message="disk full", ts=12))

    async def main():
        ws = await tc.connect(gw, user)
        snap = {f["task_id"]: f for f in await ws.recv_tasks(3)}
        check_frame(snap["done"], event("done", user, "succeeded", progress=100, message="ok",
                                        ts=10), seq_done)
        check_frame(snap["stopped"], event("stopped", user, "cancelled", ts=11), seq_cancel)
        check_frame(snap["broken"], event("broken", user, "failed", message="disk full",
                                          ts=12), seq_fail)
        await ws.quiet(0.3)

    tc.run(main)


# ---------------------------------------------------------------- resume


TOKEN_ORDER = pytest.mark.parametrize("token_last", [False, True],
                                      ids=["token_first", "token_last"])


@TOKEN_ORDER
def test_resume_gets_exactly_the_missed_events_then_live(shared, token_last):
    """?token=...&since=S&epoch=E (the order a browser app naturally writes)
    and ?since=S&epoch=E&token=... must both resume."""
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)
    sent = {}

    def pub(i):
        ev = event("job", user, "running", progress=i, message=f"m{i}", ts=1000 + i)
        sent[w.publish_ok(ev)] = ev

    async def main():
        ws = await tc.connect(gw, user)
        epoch = ws.hello["epoch"]
        for i in range(10):
            pub(i)
        first = await ws.recv_tasks(4)  # read some, not all
        last = first[-1]["seq"]
        assert [f["seq"] for f in first] == [1, 2, 3, 4]
        await ws.close()
        for i in range(10, 15):
            pub(i)
        ws2 = await tc.connect(gw, user, since=last, epoch=epoch, token_last=token_last)
        assert ws2.hello["epoch"] == epoch
        missed = await ws2.recv_tasks(15 - last)
        assert [f["seq"] for f in missed] == list(range(last + 1, 16)), missed
        for f in missed:
            check_frame(f, sent[f["seq"]], f["seq"])
        await ws2.quiet(0.3)
        pub(15)
        pub(16)
        live = await ws2.recv_tasks(2)
        assert [f["seq"] for f in live] == [16, 17]
        await ws2.quiet(0.3)

    tc.run(main)


@TOKEN_ORDER
def test_resume_while_events_keep_coming_has_no_gap_and_no_duplicate(shared, token_last):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    total = 400
    stop = threading.Event()
    errors = []

    def producer():
        wk = Worker(tc, broker.ingest)  # own socket, this thread only
        try:
            for i in range(total):
                if stop.is_set():
                    return
                a = wk.publish(event(f"job-{i % 3}", user, "running", message=f"{i}"))
                if a.get("seq") != i + 1:
                    errors.append(a)
                time.sleep(0.002)
        except Exception as e:  # reported below
            errors.append(repr(e))

    async def main():
        ws = await tc.connect(gw, user)
        epoch = ws.hello["epoch"]
        t = threading.Thread(target=producer, daemon=True)
        t.start()
        try:
            seen = []
            for _ in range(3):  # disconnect and resume three times mid-stream
                frames = await ws.recv_tasks(40, timeout=15)
                seen += [f["seq"] for f in frames]
                await ws.close()
                ws = await tc.connect(gw, user, since=seen[-1], epoch=epoch,
                                      token_last=token_last)
                assert ws.hello["epoch"] == epoch
            while seen[-1] < total:
                f = await ws.recv_task(10)
                seen.append(f["seq"])
            assert seen == list(range(1, total + 1)), \
                [s for i, s in enumerate(seen) if s != i + 1][:10]
            await ws.quiet(0.3)
        finally:
            stop.set()
            await asyncio.get_running_loop().run_in_executor(None, t.join, 10)
        assert not errors, errors

    tc.run(main)


@TOKEN_ORDER
def test_resume_with_nothing_missed_gets_no_frames(shared, token_last):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, user)
        epoch = ws.hello["epoch"]
        for i in range(3):
            w.publish_ok(event("a", user, progress=i))
        await ws.recv_tasks(3)
        await ws.close()
        ws = await tc.connect(gw, user, since=3, epoch=epoch, token_last=token_last)
        await ws.quiet(0.5)
        seq = w.publish_ok(event("a", user, progress=50))
        assert (await ws.recv_task())["seq"] == seq == 4

    tc.run(main)


def test_resume_with_an_unknown_epoch_gets_the_current_state(shared):
    """since/epoch of another broker life: no replay is possible, so the
    client gets a hello with the real epoch and the current state."""
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)
    latest = {}
    for i in range(6):
        ev = event(f"t{i % 2}", user, "running", progress=i * 10, ts=100 + i)
        latest[ev["task_id"]] = (ev, w.publish_ok(ev))

    async def main():
        ws = await tc.connect(gw, user, since=2, epoch="not-the-epoch.1")
        assert ws.hello["epoch"] != "not-the-epoch.1"
        snap = {f["task_id"]: f for f in await ws.recv_tasks(2)}
        for task, (ev, seq) in latest.items():
            check_frame(snap[task], ev, seq)
        await ws.quiet(0.3)

    tc.run(main)


@pytest.mark.parametrize("query", [{"since": "abc"}, {"since": "-1"},
                                   {"since": "1", "epoch": "has%20space"}])
@TOKEN_ORDER
def test_malformed_resume_arguments_get_an_error_frame_and_a_4xxx_close(shared, query,
                                                                         token_last):
    tc = shared
    _, gw = tc.stack
    user = uid()

    async def main():
        ws = await tc.ws(gw.url(user, tc.token(user), token_last=token_last, **query))
        frames, code, _ = await ws.expect_close()
        assert code != 1006, f"reset instead of a close frame; frames {frames!r}"
        assert frames and frames[-1].get("type") == "error", frames
        assert 4000 <= code <= 4999, code

    tc.run(main)


# ---------------------------------------------------------------- client messages


def test_text_ping_gets_pong(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        await ws.send_json({"type": "ping"})
        assert await ws.recv() == {"type": "pong"}
        for _ in range(3):
            await ws.send_json({"type": "ping"})
        for _ in range(3):
            assert await ws.recv() == {"type": "pong"}
        await ws.quiet(0.3)
        # the connection still carries events afterwards
        seq = tc.worker(broker).publish_ok(event("after-ping", user))
        assert (await ws.recv_task())["seq"] == seq

    tc.run(main)


def test_oversized_client_message_closes_with_1009_after_an_error_frame(shared):
    tc = shared
    _, gw = tc.stack
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        await ws.conn.send('{"type":"ping","pad":"' + "x" * 10240 + '"}')
        frames, code, _ = await ws.expect_close()
        assert frames and frames[-1].get("type") == "error", frames
        assert code == 1009, code

    tc.run(main)


def test_client_messages_up_to_the_limit_are_read_whole_even_in_pieces(shared):
    """A message of up to 512 bytes is read whole however it arrives (lws
    hands it over in pieces, or the client fragments it: RFC 6455 5.4);
    513 bytes get 1009, also when only the fragments together are over."""
    tc = shared
    _, gw = tc.stack

    def ping(size):
        msg = '{"type":"ping","pad":"' + "x" * (size - 24) + '"}'
        assert len(msg) == size
        return msg

    async def main():
        ws = await tc.connect(gw, uid())
        await ws.conn.send(ping(512))
        assert (await ws.recv())["type"] == "pong"
        big = ping(400)
        await ws.conn.send([big[:150], big[150:300], big[300:]])  # three frames, one message
        assert (await ws.recv())["type"] == "pong"
        await ws.conn.send('{"type":"nope"}')
        assert (await ws.recv())["code"] == "bad_request"
        await ws.conn.send(ping(100))  # a piece gathered before does not linger
        assert (await ws.recv())["type"] == "pong"
        over = ping(513)
        await ws.conn.send([over[:300], over[300:]])
        frames, code, _ = await ws.expect_close()
        assert frames and frames[-1].get("code") == "message_too_big", frames
        assert code == 1009, code

    tc.run(main)


# ---------------------------------------------------------------- replicas


def test_two_gateways_on_one_broker_both_deliver_to_the_same_user(tc):
    broker = tc.broker()
    gw1 = tc.gateway(broker)
    gw2 = tc.gateway(broker)
    w = tc.worker(broker)
    n = 25

    async def main():
        a = await tc.connect(gw1, "2")
        b = await tc.connect(gw2, "2")
        assert a.hello["epoch"] == b.hello["epoch"]
        seqs = [w.publish_ok(event(f"t{i % 3}", "2", progress=i)) for i in range(n)]
        fa = await a.recv_tasks(n)
        fb = await b.recv_tasks(n)
        assert [f["seq"] for f in fa] == seqs == [f["seq"] for f in fb]
        assert fa == fb
        # one gateway's client leaving does not stop the other's stream
        await a.close()
        seq = w.publish_ok(event("t-last", "2"))
        assert (await b.recv_task())["seq"] == seq

    tc.run(main)


def test_slow_browser_is_closed_with_a_clear_code_and_resumes(tc, stack):
    """Bounded everything: a client that stops reading is closed (error
    frame, then a close code other than a reset) instead of growing the
    gateway's memory, and a resume then brings it to the current state."""
    broker, gw = stack
    w = tc.worker(broker)
    user = "slow"
    pad = "p" * 16384
    n = 1500  # 24 MiB of frames: more than the socket buffers and the ring hold

    async def main():
        ws = await tc.ws(gw.url(user, tc.token(user)), max_queue=1, read_limit=16384)
        hello = await ws.recv()
        assert hello["type"] == "hello"
        for i in range(n):
            w.publish_ok(event("big", user, "running", progress=i * 100 // n, data=pad,
                               message=str(i)))
        frames, code, _ = await ws.expect_close(timeout=30)
        tasks = [f for f in frames if f.get("type") == "task"]
        assert frames and frames[-1].get("type") == "error", frames[-1:]
        assert frames[-1].get("code") == "slow_consumer", frames[-1]
        assert code == 4429, code
        seqs = [f["seq"] for f in tasks]
        assert seqs == list(range(1, len(seqs) + 1)), "gap before the close"
        assert len(seqs) < n, "the client was never too slow: the test proves nothing"
        last = seqs[-1] if seqs else 0
        ws2 = await tc.connect(gw, user, since=last, epoch=hello["epoch"], token_last=True)
        rest = await ws2.collect(lambda f: f.get("seq") == n, timeout=30)
        got = [f["seq"] for f in rest]
        # either the missed events (still in history) or the current state
        assert got == list(range(last + 1, n + 1)) or got == [n], got[:5]
        assert rest[-1]["message"] == str(n - 1)

    tc.run(main)
