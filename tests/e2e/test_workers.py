"""Workers -> broker: the C worker (taskcast-cli publish), the Python worker
(examples/python_worker.py), raw DEALER/REQ sockets written from the
contract; bad input; idempotency."""
import json
import re
import subprocess
import sys

import msgpack
import pytest
import zmq

from conftest import EXAMPLES, clean_env, event, load_python_worker, uid

OK_LINE = re.compile(r"^ok seq=(\d+) pseq=(\d+)( duplicate)?$")

DATA_JSON = ('{"a": 1, "max_i64": 9223372036854775807, "min_i64": -9223372036854775808, '
             '"max_u64": 18446744073709551615, "f": 1.5, "whole": 2.0, "neg": -0.25, '
             '"s": "h\\u00e9 \\u2713 \\"q\\"", "l": [1, "two", null, true, false], '
             '"m": {"k": {"k2": []}}, "e": {}}')


def without(frame, *keys):
    return {k: v for k, v in frame.items() if k not in keys}


def cli_publish(tc, broker, *args):
    r = tc.cli("publish", "--ingest", broker.ingest, "--timeout-ms", "3000", "--retries", "1",
               *args)
    assert r.returncode == 0, f"taskcast-cli publish failed ({r.returncode}): {r.stderr}"
    m = OK_LINE.match(r.stdout.strip())
    assert m, f"unexpected output: {r.stdout!r}"
    return int(m.group(1)), int(m.group(2)), bool(m.group(3))


# ---------------------------------------------------------------- C and Python workers agree


@pytest.mark.parametrize("progress", ["42", "42.5"])
def test_c_and_python_workers_produce_identical_frames(shared, progress):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    pw = load_python_worker()
    message = "step 3/10 \u2014 \u00e9t\u00e9 \u2713"

    async def main():
        ws = await tc.connect(gw, user)
        # C worker library through taskcast-cli
        seq_c, _, dup = cli_publish(tc, broker, "--user", user, "--task", "render-1", "--status",
                                    "running", "--progress", progress, "--message", message,
                                    "--data", DATA_JSON)
        assert not dup
        # examples/python_worker.py as a library
        with pw.Worker(broker.ingest, timeout_ms=3000, retries=1) as w:
            p = json.loads(progress)
            a = w.publish("render-1", user, "running", progress=p, message=message,
                          data=json.loads(DATA_JSON))
        assert a.get("ok") is True, a
        seq_py = a["seq"]
        # examples/python_worker.py as a program
        r = subprocess.run([sys.executable, str(EXAMPLES / "python_worker.py"), "--ingest",
                            broker.ingest, "--user", user, "--task", "render-1", "--status",
                            "running", "--progress", progress, "--message", message, "--data",
                            DATA_JSON, "--timeout-ms", "3000", "--retries", "1"],
                           env=clean_env(), capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        m = OK_LINE.match(r.stdout.strip())
        assert m, r.stdout
        seq_py_cli = int(m.group(1))
        assert [seq_c, seq_py, seq_py_cli] == [1, 2, 3]

        frames = await ws.recv_tasks(3)
        assert [f["seq"] for f in frames] == [1, 2, 3]
        c, py, py_cli = (without(f, "seq", "ts") for f in frames)
        assert c == py == py_cli, f"\nC:      {c}\npython: {py}\npy cli: {py_cli}"
        # and what they agree on is what was sent
        assert c["data"] == json.loads(DATA_JSON)
        assert c["data"]["max_u64"] == 2**64 - 1 and c["data"]["min_i64"] == -2**63
        assert isinstance(c["data"]["whole"], float) and isinstance(c["data"]["a"], int)
        assert c["progress"] == json.loads(progress)
        assert type(c["progress"]) is type(json.loads(progress))
        assert c["message"] == message and c["task_id"] == "render-1"

    tc.run(main)


def test_c_worker_ts_and_minimal_event(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        seq, _, _ = cli_publish(tc, broker, "--user", user, "--task", "t", "--status", "queued",
                                "--ts", "1700000000123")
        f = await ws.recv_task()
        assert f == {"type": "task", "seq": seq, "task_id": "t", "status": "queued",
                     "ts": 1700000000123}, f

    tc.run(main)


def test_c_worker_rejection_is_reported(shared):
    """A rejection by the broker (user id with a space passes the CLI's own
    checks) prints the code and exits 1."""
    tc = shared
    broker, _ = tc.stack
    r = tc.cli("publish", "--ingest", broker.ingest, "--user", "bad user", "--task", "t",
               "--status", "running", "--timeout-ms", "3000", "--retries", "1")
    assert r.returncode in (1, 2), (r.returncode, r.stdout, r.stderr)
    assert "error" in r.stderr and r.stdout == "", (r.stdout, r.stderr)


def test_c_worker_gets_no_answer_from_a_dead_broker_and_exits_3(tc):
    broker = tc.broker()
    broker.stop()
    r = tc.cli("publish", "--ingest", broker.ingest, "--user", "2", "--task", "t", "--status",
               "running", "--timeout-ms", "300", "--retries", "1")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)


# ---------------------------------------------------------------- bad input


def _raw_map(pairs):
    """A msgpack map from (key bytes, value bytes) pairs already packed, to
    build what msgpack-python will not (duplicate keys, invalid UTF-8)."""
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")
    return head + b"".join(k + v for k, v in pairs)


def _p(v):
    return msgpack.packb(v, use_bin_type=True)


def _good(user, **kw):
    return event("bad-input-probe", user, "running", **kw)


def _ev_bytes(user, **kw):
    ev = _good(user)
    for k, v in kw.items():
        if v is _DROP:
            ev.pop(k)
        else:
            ev[k] = v
    return _p(ev)


_DROP = object()

# name -> (function user -> list of frames, accepted error codes)
BAD = {
    "not_msgpack": (lambda u: [b"\xc1\xc1 this is not msgpack"], {"malformed"}),
    "plain_text": (lambda u: [b"hello broker"], {"malformed", "not_a_map"}),
    "empty_frame": (lambda u: [b""], None),
    "truncated_msgpack": (lambda u: [_p(_good(u, message="x" * 40))[:-5]], {"malformed"}),
    "trailing_bytes": (lambda u: [_p(_good(u)) + b"\x01"], {"malformed"}),
    "msgpack_array": (lambda u: [_p(["task", u, "running"])], {"not_a_map"}),
    "msgpack_string": (lambda u: [_p("task")], {"not_a_map"}),
    "integer_keys": (lambda u: [_p({1: "t", 2: u, 3: "running"})], None),
    "missing_all_but_task_id": (lambda u: [_p({"task_id": "t"})], {"missing_field"}),
    "missing_status": (lambda u: [_ev_bytes(u, status=_DROP)], {"missing_field"}),
    "missing_user_id": (lambda u: [_ev_bytes(u, user_id=_DROP)], {"missing_field"}),
    "bad_status": (lambda u: [_ev_bytes(u, status="done")], {"invalid_value"}),
    "status_wrong_type": (lambda u: [_ev_bytes(u, status=1)], {"wrong_type"}),
    "progress_101": (lambda u: [_ev_bytes(u, progress=101)], {"invalid_value"}),
    "progress_negative": (lambda u: [_ev_bytes(u, progress=-1)], {"invalid_value"}),
    "progress_100_point_1": (lambda u: [_ev_bytes(u, progress=100.1)], {"invalid_value"}),
    "progress_nan": (lambda u: [_ev_bytes(u, progress=float("nan"))], {"invalid_value"}),
    "progress_string": (lambda u: [_ev_bytes(u, progress="50")], {"wrong_type"}),
    "task_id_too_long": (lambda u: [_ev_bytes(u, task_id="t" * 129)], {"too_large"}),
    "task_id_empty": (lambda u: [_ev_bytes(u, task_id="")], {"invalid_value"}),
    "task_id_not_printable": (lambda u: [_ev_bytes(u, task_id="a\nb")], {"invalid_value"}),
    "user_id_with_space": (lambda u: [_ev_bytes(u, user_id=u + " x")], {"invalid_value"}),
    "user_id_with_nul": (lambda u: [_ev_bytes(u, user_id=u + "\x00")], {"invalid_value"}),
    "user_id_too_long": (lambda u: [_ev_bytes(u, user_id="u" * 65)],
                         {"too_large", "invalid_value"}),
    "user_id_empty": (lambda u: [_ev_bytes(u, user_id="")], {"invalid_value"}),
    "message_too_long": (lambda u: [_ev_bytes(u, message="m" * 4097)], {"too_large"}),
    "message_not_utf8": (lambda u: [_raw_map([(_p("task_id"), _p("t")), (_p("user_id"), _p(u)),
                                              (_p("status"), _p("running")),
                                              (_p("message"), b"\xa2\xff\xfe")])],
                         {"invalid_utf8"}),
    "message_binary": (lambda u: [_ev_bytes(u, message=b"bytes")], {"wrong_type"}),
    "data_over_64k": (lambda u: [_ev_bytes(u, data="d" * 70000)], {"too_large"}),
    "data_nested_too_deep": (lambda u: [_ev_bytes(u, data=_deep(200))], {"too_large"}),
    "unknown_field": (lambda u: [_ev_bytes(u, colour="blue")], {"unknown_field"}),
    "forged_seq": (lambda u: [_ev_bytes(u, seq=1)], {"unknown_field"}),
    "forged_epoch": (lambda u: [_ev_bytes(u, epoch="x")], {"unknown_field"}),
    "duplicate_key": (lambda u: [_raw_map([(_p("task_id"), _p("t")), (_p("user_id"), _p(u)),
                                           (_p("status"), _p("running")),
                                           (_p("status"), _p("failed"))])],
                      {"duplicate_field"}),
    "ts_negative": (lambda u: [_ev_bytes(u, ts=-1)], {"invalid_value"}),
    "ts_float": (lambda u: [_ev_bytes(u, ts=1.5)], {"wrong_type"}),
    "ts_string": (lambda u: [_ev_bytes(u, ts="now")], {"wrong_type"}),
    "producer_without_pseq": (lambda u: [_ev_bytes(u, producer="p")], None),
    "pseq_negative": (lambda u: [_ev_bytes(u, producer="p", pseq=-1)], {"invalid_value"}),
    "two_frames_in_one_message": (lambda u: [_p(_good(u)), _p(_good(u))], {"malformed"}),
    "message_over_wire_limit": (lambda u: [_ev_bytes(u, data="d" * 200000)], {"too_large"}),
}


def _deep(n):
    v = []
    for _ in range(n):
        v = [v]
    return v


@pytest.mark.parametrize("case", list(BAD))
def test_bad_worker_input_gets_an_error_answer_and_the_broker_keeps_serving(shared, case):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    make, codes = BAD[case]
    w = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, user)
        answer = w.send_frames(make(user))
        assert answer.get("ok") is False, answer
        assert isinstance(answer.get("error"), str) and answer["error"], answer
        assert isinstance(answer.get("detail"), str) and answer["detail"], answer
        if codes is not None:
            assert answer["error"] in codes, f"error {answer['error']!r}, expected one of " \
                                             f"{sorted(codes)}; detail {answer['detail']!r}"
        assert set(answer) <= {"ok", "error", "detail", "pseq"}, answer
        # the broker keeps serving: a good event on the same socket is
        # accepted and delivered, and nothing of the bad one was
        seq = w.publish_ok(_good(user, message="after"))
        assert seq == 1, f"the rejected event took a seq (good event got {seq})"
        f = await ws.recv_task()
        assert f["seq"] == seq and f["message"] == "after", f
        await ws.quiet(0.2)

    tc.run(main)


def test_a_burst_of_bad_input_does_not_stall_the_broker(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    bad = tc.worker(broker)
    good = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, user)
        # single-frame cases (the empty frame has its own test), small ones
        frames = [fs[0] for fs in (make(user) for make, _ in BAD.values())
                  if len(fs) == 1 and 0 < len(fs[0]) < 100000]
        for f in frames * 5:
            bad.sock.send(f)
        seq = good.publish_ok(_good(user, message="still here"))
        for _ in range(len(frames) * 5):
            a = bad.answer()
            assert a.get("ok") is False, a
        f = await ws.recv_task()
        assert f["seq"] == seq and f["message"] == "still here", f

    tc.run(main)


def test_2mib_event_gets_a_too_large_answer_and_does_not_stall(shared):
    """A 2 MiB message: the broker must keep serving others, and (the
    contract: bad input gets a clear error answer) the worker learns why."""
    tc = shared
    broker, gw = tc.stack
    user = uid()
    big = tc.worker(broker)
    good = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, user)
        big.sock.send(_ev_bytes(user, data="d" * (2 << 20)))
        seq = good.publish_ok(_good(user, message="still here"))
        f = await ws.recv_task()
        assert f["seq"] == seq and f["message"] == "still here", f
        answered = big.sock.poll(3000, zmq.POLLIN)
        assert answered, "no answer at all to a 2 MiB event (the worker cannot tell why)"
        a = msgpack.unpackb(big.sock.recv(), raw=False)
        assert a.get("ok") is False and a.get("error") == "too_large", a

    tc.run(main)


def test_req_socket_works_like_dealer(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    req = tc.worker(broker, kind=zmq.REQ)

    async def main():
        ws = await tc.connect(gw, user)
        a = req.publish(event("via-req", user, "running", progress=5))
        assert a.get("ok") is True and a.get("seq") == 1, a
        bad = req.publish(event("via-req", user, "nope"))
        assert bad.get("ok") is False and bad.get("error") == "invalid_value", bad
        a = req.publish(event("via-req", user, "succeeded", producer="req-1", pseq=1))
        assert a == {"ok": True, "pseq": 1, "seq": 2}, a
        frames = await ws.recv_tasks(2)
        assert [(f["seq"], f["status"]) for f in frames] == [(1, "running"), (2, "succeeded")]

    tc.run(main)


def test_answer_shape_for_an_accepted_event(shared):
    tc = shared
    broker, _ = tc.stack
    user = uid()
    w = tc.worker(broker)
    a = w.publish(event("t", user, producer="shape", pseq=7))
    assert a == {"ok": True, "pseq": 7, "seq": 1}, a
    a = w.publish(event("t", user))
    assert a.get("ok") is True and a.get("seq") == 2 and "error" not in a, a


# ---------------------------------------------------------------- idempotency


def test_resend_of_same_producer_pseq_is_acknowledged_and_delivered_once(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)
    ev = event("idem", user, "running", progress=10, producer="prod-A", pseq=1)

    async def main():
        ws = await tc.connect(gw, user)
        a1 = w.publish(ev)
        a2 = w.publish(ev)
        assert a1.get("ok") is True and a1.get("pseq") == 1 and not a1.get("duplicate"), a1
        assert a2.get("ok") is True and a2.get("duplicate") is True, a2
        assert a2.get("seq") == a1["seq"] and a2.get("pseq") == 1, (a1, a2)
        # a resend from another connection (a worker that reconnected)
        a3 = tc.worker(broker).publish(ev)
        assert a3.get("ok") is True and a3.get("duplicate") is True and \
            a3.get("seq") == a1["seq"], a3
        seq2 = w.publish_ok(dict(ev, progress=20, pseq=2))
        assert seq2 == a1["seq"] + 1
        frames = await ws.recv_tasks(2)
        assert [(f["seq"], f["progress"]) for f in frames] == [(a1["seq"], 10), (seq2, 20)]
        await ws.quiet(0.3)

    tc.run(main)


def test_pseq_alone_is_echoed_but_is_no_idempotency_key(tc):
    broker = tc.broker()
    w = tc.worker(broker)
    a1 = w.publish(event("t", "2", pseq=9))
    a2 = w.publish(event("t", "2", pseq=9))
    assert a1 == {"ok": True, "pseq": 9, "seq": 1}, a1
    assert a2 == {"ok": True, "pseq": 9, "seq": 2}, a2  # published again: no producer


def test_same_producer_pseq_with_different_content_is_pseq_reused(shared):
    tc = shared
    broker, gw = tc.stack
    user = uid()
    w = tc.worker(broker)

    async def main():
        ws = await tc.connect(gw, user)
        seq1 = w.publish_ok(event("idem", user, "running", progress=10, producer="P", pseq=5))
        a = w.publish(event("idem", user, "running", progress=11, producer="P", pseq=5))
        assert a.get("ok") is False and a.get("error") == "pseq_reused", a
        assert isinstance(a.get("detail"), str) and a["detail"], a
        # another producer may use the same pseq
        seq2 = w.publish_ok(event("idem", user, "running", progress=12, producer="Q", pseq=5))
        assert seq2 == seq1 + 1
        frames = await ws.recv_tasks(2)
        assert [f["progress"] for f in frames] == [10, 12]
        await ws.quiet(0.3)

    tc.run(main)


def test_c_worker_resend_with_same_producer_is_a_duplicate(shared):
    """Two runs of taskcast-cli with the same --producer and the same event
    (pseq counts from 1 per run): the second is acknowledged as a duplicate."""
    tc = shared
    broker, gw = tc.stack
    user = uid()
    args = ("--user", user, "--task", "cli-idem", "--status", "running", "--progress", "30",
            "--producer", "cli-prod-" + user)

    async def main():
        ws = await tc.connect(gw, user)
        seq1, pseq1, dup1 = cli_publish(tc, broker, *args)
        seq2, pseq2, dup2 = cli_publish(tc, broker, *args)
        assert (seq1, pseq1, dup1) == (1, 1, False)
        assert (seq2, pseq2, dup2) == (1, 1, True)
        assert (await ws.recv_task())["seq"] == 1
        await ws.quiet(0.3)

    tc.run(main)
