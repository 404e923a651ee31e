"""The broker's jobs endpoint, end to end: real broker and gateway, a real
WebSocket client, submitters and pool workers that are ZeroMQ DEALERs
written from the jobs protocol (any language may run a pool worker; the
C pool, taskcast-worker, is tested in test_pool.py).

What is checked: a submit is answered with its task id and the user's
browsers see it queued at once; dispatch to a pool worker, running,
progress and the end (succeeded with the result, failed with the reason,
cancelled); cancel of a queued and of a running job, and no cancel of
another user's job; a worker that dies mid-job: the job is retried on
another worker and finished once; least-recently-used dispatch within
each worker's concurrency; idempotent submits; refusals (bad fields,
queue_full) with clear codes, the broker healthy after them.
"""
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from conftest import RECV_TIMEOUT, uid


class Dealer:
    """A DEALER on the broker's jobs endpoint (submitter or pool worker)."""

    def __init__(self, broker):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(broker.jobs)

    def send(self, **msg):
        self.sock.send(msgpack.packb(msg, use_bin_type=True))

    def send_raw(self, raw):
        self.sock.send(raw)

    def idle(self):
        """Called at least every 0.5 s while waiting (a pool worker beats)."""

    def _wait(self, seconds):
        """1 if a message is there within seconds."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.idle()
            if self.sock.poll(int(min(left, 0.5) * 1000), zmq.POLLIN):
                return 1
        return 0

    def recv(self, timeout=RECV_TIMEOUT, skip_heartbeats=True):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0 and self._wait(left), f"no message within {timeout}s"
            m = msgpack.unpackb(self.sock.recv(), raw=False)
            if skip_heartbeats and m.get("type") == "heartbeat":
                continue
            return m

    def quiet(self, seconds):
        """No message but heartbeats for that long."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._wait(left):
                m = msgpack.unpackb(self.sock.recv(), raw=False)
                assert m.get("type") == "heartbeat", f"unexpected {m!r}"

    def close(self):
        self.sock.close(linger=0)


class PoolWorker(Dealer):
    """A pool worker: it heartbeats while the test waits on it (a silent
    one is dead to the broker after liveness x heartbeat_ms)."""

    def __init__(self, broker, kinds, concurrency=1, name=None):
        super().__init__(broker)
        self.beat = 0
        self.send(type="hello", name=name or uid("w"), kinds=kinds, concurrency=concurrency)
        w = self.recv()
        assert w["type"] == "welcome" and w["heartbeat_ms"] > 0 and w["liveness"] >= 2, w

    def idle(self):
        if time.monotonic() - self.beat >= 0.5:
            self.send(type="heartbeat")
            self.beat = time.monotonic()

    def job(self, timeout=RECV_TIMEOUT):
        m = self.recv(timeout)
        assert m["type"] == "job", m
        return m

    def report(self, type, job, **fields):
        self.send(type=type, task_id=job["task_id"], attempt=job["attempt"], **fields)


def submit(broker, **msg):
    d = Dealer(broker)
    try:
        d.send(type="submit", **msg)
        return d.recv()
    finally:
        d.close()


def cancel(broker, task_id, user_id):
    d = Dealer(broker)
    try:
        d.send(type="cancel", task_id=task_id, user_id=user_id)
        return d.recv()
    finally:
        d.close()


def test_submit_run_progress_succeed_seen_by_the_browser(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        a = submit(broker, kind="render", user_id=user, args={"frames": 3})
        assert a["ok"] is True and a["task_id"].startswith("j-"), a
        tid = a["task_id"]
        f = await ws.recv_task()
        assert (f["task_id"], f["status"]) == (tid, "queued"), f
        assert f["data"] == {"kind": "render", "attempt": 0}, f
        w = PoolWorker(broker, ["render"])
        job = w.job()
        assert (job["task_id"], job["user_id"], job["kind"], job["args"], job["attempt"]) == \
            (tid, user, "render", {"frames": 3}, 1), job
        assert job["timeout_s"] == 3600, job
        w.report("started", job)
        f = await ws.recv_task()
        assert f["status"] == "running" and f["data"]["attempt"] == 1, f
        w.report("progress", job, progress=42, message="frame 1 of 3")
        f = await ws.recv_task()
        assert (f["status"], f["progress"], f["message"]) == ("running", 42, "frame 1 of 3"), f
        w.report("done", job, status="succeeded", result={"url": "/out.mp4"})
        f = await ws.recv_task()
        assert f["status"] == "succeeded" and f["data"]["result"] == {"url": "/out.mp4"}, f
        # the job is gone: a cancel now finds nothing
        assert cancel(broker, tid, user)["error"] == "not_found"
        w.close()

    tc.run(main)


def test_failed_job_carries_its_reason(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        w = PoolWorker(broker, ["k"])
        tid = submit(broker, kind="k", user_id=user, task_id="t-fail")["task_id"]
        assert tid == "t-fail"
        job = w.job()
        w.report("started", job)
        w.report("done", job, status="failed", reason="exit_status", message="exit status 3")
        frames = await ws.collect(lambda f: f.get("status") == "failed")
        f = frames[-1]
        assert f["data"]["reason"] == "exit_status" and f["message"] == "exit status 3", f
        w.close()

    tc.run(main)


def test_worker_messages_out_of_shape_are_ignored(tc):
    """A worker's message that common/jobs_wire refuses (a field of the wrong
    type, a required one missing), or about another attempt, makes no event
    and no answer; a type only the broker sends is unknown_type."""
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        w = PoolWorker(broker, ["k"])
        tid = submit(broker, kind="k", user_id=user)["task_id"]
        f = await ws.recv_task()
        assert (f["task_id"], f["status"]) == (tid, "queued"), f
        job = w.job()
        w.send(type="started", task_id=tid, attempt=str(job["attempt"]))
        w.send(type="started", task_id=tid, attempt=job["attempt"] + 1)
        w.report("progress", job, progress=101)
        w.report("done", job)  # no status
        w.quiet(0.5)
        w.send(type="job", task_id=tid, user_id=user, kind="k", args=None, attempt=1,
               timeout_s=5)
        a = w.recv()
        assert (a["ok"], a["error"]) == (False, "unknown_type"), a
        w.report("done", job, status="succeeded")
        f = await ws.recv_task()
        assert (f["task_id"], f["status"]) == (tid, "succeeded"), f
        w.close()

    tc.run(main)


def test_cancel_queued_and_running_and_not_another_users(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user, other = uid(), uid()

    async def main():
        ws = await tc.connect(gw, user)
        q = submit(broker, kind="nobody-serves-this", user_id=user)["task_id"]
        await ws.recv_task()  # queued
        assert cancel(broker, q, other) == {
            "ok": False, "error": "not_found",
            "detail": "no queued or running job has this task_id"}
        assert cancel(broker, q, user) == {"ok": True, "was": "queued"}
        f = await ws.recv_task()
        assert (f["task_id"], f["status"]) == (q, "cancelled"), f

        w = PoolWorker(broker, ["slow"])
        r = submit(broker, kind="slow", user_id=user)["task_id"]
        job = w.job()
        w.report("started", job)
        await ws.collect(lambda f: f.get("task_id") == r and f.get("status") == "running")
        assert cancel(broker, r, other)["error"] == "not_found"
        assert cancel(broker, r, user) == {"ok": True, "was": "running"}
        c = w.recv()
        assert c == {"type": "cancel", "task_id": r, "attempt": 1}, c
        w.report("done", job, status="cancelled")
        f = await ws.recv_task()
        assert (f["task_id"], f["status"]) == (r, "cancelled"), f
        w.close()

    tc.run(main)


def test_worker_death_retries_on_another_worker_once(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        a = PoolWorker(broker, ["k"], name="a")
        tid = submit(broker, kind="k", user_id=user, max_retries=2)["task_id"]
        job = a.job()
        a.report("started", job)
        await ws.collect(lambda f: f.get("status") == "running")
        b = PoolWorker(broker, ["k"], name="b")
        a.close()  # dies: no more heartbeats, its job is retried on b
        job2 = b.job(timeout=10)
        assert job2["task_id"] == tid and job2["attempt"] == 2, job2
        frames = await ws.collect(lambda f: f.get("status") == "queued", timeout=10)
        assert "worker a lost" in frames[-1].get("message", ""), frames[-1]
        b.report("started", job2)
        b.report("done", job2, status="succeeded")
        frames = await ws.collect(lambda f: f.get("status") == "succeeded")
        assert frames[-1]["data"]["attempt"] == 2
        b.quiet(1.5)  # never given the job again
        b.close()

    tc.run(main)


def test_worker_loss_past_max_retries_fails_worker_lost(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        a = PoolWorker(broker, ["k"])
        submit(broker, kind="k", user_id=user, max_retries=0)
        a.job()
        a.close()
        frames = await ws.collect(lambda f: f.get("status") == "failed", timeout=10)
        assert frames[-1]["data"]["reason"] == "worker_lost", frames[-1]

    tc.run(main)


def test_dispatch_least_recently_used_within_concurrency(tc):
    broker = tc.broker()
    user = uid()
    ws_ = [PoolWorker(broker, ["k"], concurrency=1, name=f"w{i}") for i in range(2)]
    tids = [submit(broker, kind="k", user_id=user)["task_id"] for _ in range(4)]
    first = [w.job() for w in ws_]  # one each, none gets a second while busy
    assert sorted(j["task_id"] for j in first) == sorted(tids[:2])
    for w in ws_:
        w.quiet(0.3)
    # the one that finishes first gets the next
    ws_[1].report("done", first[1], status="succeeded")
    assert ws_[1].job()["task_id"] == tids[2]
    ws_[0].quiet(0.3)
    ws_[0].report("done", first[0], status="succeeded")
    assert ws_[0].job()["task_id"] == tids[3]
    for w in ws_:
        w.close()


def test_idempotent_submit(tc):
    broker = tc.broker()
    user = uid()
    a = submit(broker, kind="k", user_id=user, producer="backend-1", pseq=7)
    b = submit(broker, kind="k", user_id=user, producer="backend-1", pseq=7)
    assert a["ok"] and b == {"ok": True, "task_id": a["task_id"], "pseq": 7, "duplicate": True}
    w = PoolWorker(broker, ["k"])
    w.job()
    w.quiet(0.5)  # one job, not two
    w.close()


@pytest.mark.parametrize("msg,code", [
    ({"type": "submit", "user_id": "u1"}, "missing_field"),
    ({"type": "submit", "kind": "a b", "user_id": "u1"}, "invalid_value"),
    ({"type": "submit", "kind": "k", "user_id": "u 1"}, "invalid_value"),
    ({"type": "submit", "kind": "k", "user_id": "u1", "colour": 1}, "unknown_field"),
    ({"type": "submit", "kind": "k", "user_id": "u1", "timeout_s": 0}, "invalid_value"),
    ({"type": "submit", "kind": "k", "user_id": "u1", "args": "x" * 70000}, "too_large"),
    ({"type": "submit", "kind": 5, "user_id": "u1"}, "wrong_type"),
    ({"type": "launch"}, "unknown_type"),
    ({"kind": "k"}, "missing_field"),
])
def test_bad_submits_are_refused_clearly(tc, msg, code):
    broker = tc.broker()
    d = Dealer(broker)
    d.send(**msg)
    a = d.recv()
    assert a["ok"] is False and a["error"] == code and a["detail"], a
    d.send_raw(b"\xc1")  # not msgpack
    assert d.recv()["error"] == "malformed"
    d.close()
    # healthy after it
    assert submit(broker, kind="k", user_id="u1")["ok"] is True


def test_queue_full(tc):
    broker = tc.broker(args=["--max-queued", "2"])
    user = uid()
    assert submit(broker, kind="k", user_id=user)["ok"]
    assert submit(broker, kind="k", user_id=user)["ok"]
    a = submit(broker, kind="k", user_id=user)
    assert a["ok"] is False and a["error"] == "queue_full", a
    # a worker takes one: there is room again
    w = PoolWorker(broker, ["k"])
    w.job()
    assert submit(broker, kind="k", user_id=user)["ok"]
    w.close()


def test_task_exists(tc):
    broker = tc.broker()
    assert submit(broker, kind="k", user_id="u1", task_id="same")["ok"]
    a = submit(broker, kind="k", user_id="u1", task_id="same")
    assert a["error"] == "task_exists", a


def test_cli_submit_and_cancel(tc):
    """taskcast-cli submit/cancel (libtaskcast's tc_submit/tc_cancel)."""
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        r = tc.cli("submit", "--jobs", broker.jobs, "--kind", "render", "--user", user,
                   "--args", '{"frames": 2}', "--timeout-s", "60", "--max-retries", "1")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("ok task_id=j-"), r.stdout
        tid = r.stdout.split("=", 1)[1].strip()
        f = await ws.recv_task()
        assert (f["task_id"], f["status"]) == (tid, "queued"), f
        w = PoolWorker(broker, ["render"])
        job = w.job()
        assert (job["args"], job["timeout_s"]) == ({"frames": 2}, 60), job
        w.report("started", job)
        await ws.collect(lambda f: f.get("status") == "running")
        r = tc.cli("cancel", "--jobs", broker.jobs, "--user", "someone-else", "--task", tid)
        assert r.returncode == 1 and r.stderr.startswith("error: not_found:"), r
        r = tc.cli("cancel", "--jobs", broker.jobs, "--user", user, "--task", tid)
        assert (r.returncode, r.stdout) == (0, "ok was=running\n"), r
        assert w.recv()["type"] == "cancel"
        w.report("done", job, status="cancelled")
        f = (await ws.collect(lambda f: f.get("status") == "cancelled"))[-1]
        assert f["task_id"] == tid
        # a queued one, cancelled from the CLI too
        r = tc.cli("submit", "--jobs", broker.jobs, "--kind", "none", "--user", user,
                   "--task", "q-1")
        assert r.stdout == "ok task_id=q-1\n", r
        r = tc.cli("cancel", "--jobs", broker.jobs, "--user", user, "--task", "q-1")
        assert (r.returncode, r.stdout) == (0, "ok was=queued\n"), r
        w.close()

    tc.run(main)


def test_cli_submit_refusals(tc):
    broker = tc.broker()
    r = tc.cli("submit", "--jobs", broker.jobs, "--kind", "bad kind", "--user", "u1")
    assert r.returncode == 1 and r.stderr.startswith("error: invalid_value:"), r
    r = tc.cli("submit", "--jobs", broker.jobs, "--user", "u1")
    assert r.returncode == 2 and "--kind" in r.stderr, r
    r = tc.cli("submit", "--jobs", broker.jobs, "--kind", "k", "--user", "u1", "--args", "{")
    assert r.returncode == 2 and "--args" in r.stderr, r
    port = broker.jobs.rsplit(":", 1)[1]
    broker.stop()
    r = tc.cli("submit", "--jobs", f"tcp://127.0.0.1:{port}", "--kind", "k", "--user", "u1",
               "--timeout-ms", "200")
    assert r.returncode == 3 and "no answer" in r.stderr, r


def test_browser_cancels_its_own_job_not_anothers(tc):
    """{"type":"cancel","task_id":...} on the WebSocket: the gateway asks the
    broker with the connection's own user; another user's job, or none, is
    an error frame and the connection stays open."""
    broker = tc.broker()
    gw = tc.gateway(broker)
    user, other = uid(), uid()

    async def main():
        ws = await tc.connect(gw, user)
        ws_other = await tc.connect(gw, other)
        w = PoolWorker(broker, ["slow"])
        tid = submit(broker, kind="slow", user_id=user)["task_id"]
        job = w.job()
        w.report("started", job)
        await ws.collect(lambda f: f.get("status") == "running")
        # another user's client: refused, its connection stays open
        await ws_other.send_json({"type": "cancel", "task_id": tid})
        e = await ws_other.recv()
        assert e["type"] == "error" and e["code"] == "not_found", e
        await ws_other.send_json({"type": "ping"})
        assert (await ws_other.recv())["type"] == "pong"
        w.quiet(0.3)  # the worker was not told anything
        # the owner's client
        await ws.send_json({"type": "cancel", "task_id": tid})
        c = w.recv()
        assert c == {"type": "cancel", "task_id": tid, "attempt": 1}, c
        w.report("done", job, status="cancelled")
        f = (await ws.collect(lambda f: f.get("status") == "cancelled"))[-1]
        assert f["task_id"] == tid
        # a queued one
        q = submit(broker, kind="nobody", user_id=user)["task_id"]
        await ws.collect(lambda f: f.get("task_id") == q)
        await ws.send_json({"type": "cancel", "task_id": q})
        f = await ws.recv_task()
        assert (f["task_id"], f["status"]) == (q, "cancelled"), f
        # malformed cancels are bad_request, still no close
        await ws.send_json({"type": "cancel"})
        e = await ws.recv()
        assert e["type"] == "error" and e["code"] == "bad_request", e
        w.close()

    tc.run(main)


def test_browser_cancel_without_jobs_endpoint_is_unavailable(tc):
    broker = tc.broker()
    gw = tc.gateway(broker, args=["--jobs", "tcp://127.0.0.1:9"])  # nobody there

    async def main():
        ws = await tc.connect(gw, "u1")
        await ws.send_json({"type": "cancel", "task_id": "t1"})
        e = await ws.recv(timeout=10)
        assert e["type"] == "error" and e["code"] == "unavailable", e

    tc.run(main)


def test_jobs_metrics_in_the_brokers_stats(tc):
    """Queue depth per kind, running jobs, outcomes, and histograms of the
    time queued and the time running (cumulative buckets in ms)."""
    import json
    broker = tc.broker()
    user = uid()
    for _ in range(2):
        submit(broker, kind="render", user_id=user)
    submit(broker, kind="thumb", user_id=user)

    def stats():
        p = tc.cli("stats", "--sync", broker.sync)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    s = stats()
    assert (s["jobs_queued"], s["jobs_queued_kind_render"], s["jobs_queued_kind_thumb"]) == \
        (3, 2, 1), s
    assert s["jobs_submitted"] == 3 and s["jobs_running"] == 0, s
    w = PoolWorker(broker, ["render"], concurrency=2)
    a, b = w.job(), w.job()
    time.sleep(0.05)
    w.report("done", a, status="succeeded")
    w.report("done", b, status="failed", reason="exit_status")
    w.quiet(0.3)
    s = stats()
    assert (s["jobs_queued"], s["jobs_queued_kind_render"], s["jobs_running"]) == (1, 0, 0), s
    assert (s["jobs_dispatched"], s["jobs_succeeded"], s["jobs_failed"]) == (2, 1, 1), s
    assert s["jobs_workers"] == 1, s
    assert s["jobs_queued_ms_le_inf"] == 2 and s["jobs_running_ms_le_inf"] == 2, s
    assert s["jobs_running_ms_le_1"] < 2 and s["jobs_running_ms_sum"] >= 50, s
    w.close()


@pytest.mark.parametrize("policy", ["batch", "never"])
def test_sigkill_broker_loses_no_queued_or_running_job(tc, policy):
    """kill -9 the broker (journal on) with jobs queued and running: after
    the restart every queued job is dispatched, the running one is adopted by
    its worker when it reports, nothing runs twice once acknowledged done,
    and the idempotency of submits survives."""
    journal = tc.tmp / "journal.bin"
    args = ["--journal", str(journal), "--fsync", policy]
    broker = tc.broker(args=args)
    user = uid()
    sub = [submit(broker, kind="k", user_id=user, producer="backend", pseq=i, args={"n": i})
           for i in range(4)]
    tids = [a["task_id"] for a in sub]
    w = PoolWorker(broker, ["k"], concurrency=1, name="w1")
    running = w.job()
    assert running["task_id"] == tids[0]
    w.report("started", running)
    w.quiet(0.3)
    broker.kill()
    w.close()
    broker = broker.restart(args=args)
    assert "1 running jobs restored" in broker.log() and "3 queued" in broker.log(), broker.log()
    # a resend of a submit that was answered: the same job, not a new one
    again = submit(broker, kind="k", user_id=user, producer="backend", pseq=1, args={"n": 1})
    assert again == {"ok": True, "task_id": tids[1], "pseq": 1, "duplicate": True}, again
    # the worker comes back (a new connection) and reports on its running job
    w = PoolWorker(broker, ["k"], concurrency=2, name="w1")
    w.report("done", running, status="succeeded")  # adopted: attempt 1 matches
    done = {tids[0]: 1}
    got = []
    for _ in range(3):
        j = w.job()
        assert j["attempt"] == 1, j
        got.append(j["task_id"])
        w.report("done", j, status="succeeded")
    assert got == tids[1:], got  # the queue kept its order
    w.quiet(1.0)  # nothing more: none ran twice
    for t in got:
        done[t] = done.get(t, 0) + 1
    assert done == {t: 1 for t in tids}, done
    w.close()
    # all finished: after one more restart, nothing comes back
    broker.stop()
    broker = broker.restart(args=args)
    assert "jobs restored" not in broker.log(), broker.log()


def test_running_job_whose_worker_never_returns_is_retried_after_restart(tc):
    journal = tc.tmp / "journal.bin"
    args = ["--journal", str(journal)]
    broker = tc.broker(args=args)
    user = uid()
    tid = submit(broker, kind="k", user_id=user)["task_id"]
    w = PoolWorker(broker, ["k"], name="gone")
    assert w.job()["task_id"] == tid
    broker.kill()
    w.close()
    broker = broker.restart(args=args)
    other = PoolWorker(broker, ["k"], name="other")
    j = other.job(timeout=15)  # after the orphan grace (6 s) and the backoff
    assert (j["task_id"], j["attempt"]) == (tid, 2), j
    other.close()


def test_python_client_submits_cancels_and_publishes(tc):
    """clients/python (written from the protocol): submit, idempotent
    resend after a lost answer, cancel, refusal as an exception, events."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
    import taskcast
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()

    async def main():
        ws = await tc.connect(gw, user)
        with taskcast.Jobs(broker.jobs) as jobs:
            tid = jobs.submit("render", user, args={"frames": 1}, timeout_s=30)
            f = await ws.recv_task()
            assert (f["task_id"], f["status"]) == (tid, "queued"), f
            assert jobs.cancel(tid, user) == "queued"
            f = await ws.recv_task()
            assert f["status"] == "cancelled", f
            with pytest.raises(taskcast.Refused) as e:
                jobs.cancel(tid, user)
            assert e.value.code == "not_found"
            with pytest.raises(taskcast.Refused) as e:
                jobs.submit("bad kind", user)
            assert e.value.code == "invalid_value"
        with taskcast.Events(broker.ingest) as events:
            seq = events.publish("t-py", user, "running", progress=5)
            f = await ws.recv_task()
            assert (f["task_id"], f["seq"], f["progress"]) == ("t-py", seq, 5), f
        with taskcast.Jobs("tcp://127.0.0.1:9", timeout=0.1, retries=1) as nobody:
            with pytest.raises(taskcast.NoAnswer):
                nobody.submit("k", user)

    tc.run(main)


def http_post(port, path, body, token=None, raw=None):
    import http.client
    import json
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=RECV_TIMEOUT)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    c.request("POST", path, body=raw if raw is not None else json.dumps(body), headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data else None)


def test_http_submit_with_the_users_token_or_a_service_token(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user, other = uid(), uid()

    async def main():
        ws = await tc.connect(gw, user)
        st, body = http_post(gw.port, "/api/v1/jobs", {"kind": "render", "args": {"f": [1, 2]}},
                             token=tc.token(user))
        assert st == 202 and body["task_id"].startswith("j-"), (st, body)
        f = await ws.recv_task()
        assert (f["task_id"], f["status"]) == (body["task_id"], "queued"), f
        w = PoolWorker(broker, ["render"])
        job = w.job()
        assert (job["user_id"], job["args"]) == (user, {"f": [1, 2]}), job
        # a user's token cannot submit for another user
        st, e = http_post(gw.port, "/api/v1/jobs", {"kind": "k", "user_id": other},
                          token=tc.token(user))
        assert st == 403 and e["code"] == "forbidden", (st, e)
        # a service token can, for anyone
        svc = tc.token("backend-1", role="service")
        st, body = http_post(gw.port, "/api/v1/jobs",
                             {"kind": "k", "user_id": user, "task_id": "from-backend"}, token=svc)
        assert (st, body) == (202, {"task_id": "from-backend"}), (st, body)
        f = await ws.recv_task()
        assert f["task_id"] == "from-backend", f
        # refusals
        st, e = http_post(gw.port, "/api/v1/jobs", {"kind": "k"}, token=None)
        assert st == 401 and e["code"] == "unauthorized", (st, e)
        st, e = http_post(gw.port, "/api/v1/jobs", {"kind": "bad kind"}, token=tc.token(user))
        assert st == 400 and e["code"] == "invalid_value", (st, e)
        st, e = http_post(gw.port, "/api/v1/jobs", None, raw="[1,", token=tc.token(user))
        assert st == 400 and e["code"] == "bad_request", (st, e)
        st, e = http_post(gw.port, "/api/v1/jobs", {"kind": "k", "task_id": "from-backend"},
                          token=tc.token(user))
        assert st == 409 and e["code"] == "task_exists", (st, e)
        st, e = http_post(gw.port, "/api/v1/jobs", None, raw="x" * 100000, token=tc.token(user))
        assert st == 413, (st, e)
        # GET on the route: 405; the gateway is healthy after all of it
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=RECV_TIMEOUT)
        c.request("GET", "/api/v1/jobs")
        assert c.getresponse().status == 405
        c.close()
        await ws.send_json({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"
        w.close()

    tc.run(main)
