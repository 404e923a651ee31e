"""taskcast-worker (the pool process) against a broker played by this test:
a real ZeroMQ ROUTER bound on loopback speaks the pool side of the jobs
protocol (docs/protocol.md, section 6, "Pool workers") to a real taskcast-worker, whose
children are the scripts in examples/jobs/.

Every test ends with the harness's teardown: SIGTERM to the worker must
end it with status 0, and its log must hold no sanitizer report."""
import os
import signal
import time

import msgpack
import pytest
import zmq

from conftest import BIN, REPO, RECV_TIMEOUT, START_TIMEOUT, Proc, clean_env, free_ports

WORKER_BIN = BIN / "taskcast-worker"
PY = "/usr/bin/python3"
JOBS = REPO / "examples" / "jobs"
ARGS_SECRET = "args-must-not-be-logged-7f3a9c"

CONFIG = f"""# the kinds the tests use
render   per-job  {PY} {JOBS}/render.py
fail     per-job  {PY} {JOBS}/fail.py
garbage  per-job  {PY} {JOBS}/garbage.py
sleep    per-job  {PY} {JOBS}/sleep.py
thumb    kept     {PY} {JOBS}/thumb.py
dies     kept     {PY} {JOBS}/fail.py
missing  per-job  /nonexistent/taskcast-no-such-program
"""


class FakeBroker:
    """The broker's jobs ROUTER. It answers heartbeats with heartbeats (every
    hb_ms) so the worker keeps it alive, unless silent is set."""

    def __init__(self, tc, hb_ms=300):
        self.port = free_ports(1)[0]
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)
        tc.sockets.append(self.sock)
        self.hb_ms = hb_ms
        self.peer = None
        self.silent = False
        self.last_hb = 0.0
        self.seen = []  # every message received, in order (heartbeats too)

    def send(self, msg, peer=None):
        self.sock.send_multipart([peer or self.peer, msgpack.packb(msg, use_bin_type=True)])

    def _beat(self):
        now = time.monotonic()
        if self.peer and not self.silent and now - self.last_hb >= self.hb_ms / 1000:
            self.send({"type": "heartbeat"})
            self.last_hb = now

    def recv(self, timeout=RECV_TIMEOUT, skip=("heartbeat",)):
        """The next message whose type is not in skip: (peer, dict)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._beat()
            if self.sock.poll(50, zmq.POLLIN):
                frames = self.sock.recv_multipart()
                assert len(frames) == 2, f"{len(frames)} frames: {frames!r}"
                msg = msgpack.unpackb(frames[1], raw=False)
                assert isinstance(msg, dict) and isinstance(msg.get("type"), str), msg
                self.seen.append(msg)
                if msg["type"] not in skip:
                    return frames[0], msg
        raise AssertionError(f"nothing but {skip} from the worker within {timeout}s; "
                             f"seen: {self.seen[-10:]}")

    def expect(self, mtype, timeout=RECV_TIMEOUT, skip=("heartbeat",), **fields):
        peer, msg = self.recv(timeout, skip)
        assert msg["type"] == mtype, f"expected {mtype}, got {msg}"
        for k, v in fields.items():
            assert msg.get(k) == v, f"{mtype}.{k}: expected {v!r}, got {msg}"
        return peer, msg

    def hello(self, heartbeat_ms=None, liveness=4, timeout=START_TIMEOUT):
        peer, msg = self.expect("hello", timeout)
        self.peer = peer
        self.send({"type": "welcome", "heartbeat_ms": heartbeat_ms or self.hb_ms,
                   "liveness": liveness})
        return msg

    def job(self, task_id, kind, args=None, attempt=1, timeout_s=60, user_id="7"):
        self.send({"type": "job", "task_id": task_id, "user_id": user_id, "kind": kind,
                   "args": args if args is not None else {}, "attempt": attempt,
                   "timeout_s": timeout_s})

    def run_to_done(self, task_id, timeout=RECV_TIMEOUT * 2):
        """Messages about task_id up to and including its done/release."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            _, msg = self.recv(max(0.1, deadline - time.monotonic()))
            assert msg.get("task_id") == task_id, f"a message about another task: {msg}"
            got.append(msg)
            if msg["type"] in ("done", "release"):
                return got


def start_worker(tc, broker, *args, config=CONFIG, name="pool-test", concurrency=2):
    conf = tc.tmp / "pool.conf"
    conf.write_text(config)
    argv = [WORKER_BIN, "--config", conf, "--jobs", broker.endpoint, "--name", name,
            "--concurrency", str(concurrency), "--log-level", "debug", *args]
    return Proc(tc, "worker", argv, clean_env())


@pytest.fixture
def pool(tc):
    if not WORKER_BIN.exists():
        raise AssertionError(f"{WORKER_BIN} is not built (set TASKCAST_BUILD_DIR)")
    broker = FakeBroker(tc)
    return tc, broker


# ---------------------------------------------------------------- hello, per-job children


def test_hello_then_a_per_job_child_reports_progress_and_result(pool):
    tc, broker = pool
    w = start_worker(tc, broker, concurrency=3)
    hello = broker.hello()
    assert hello["name"] == "pool-test"
    assert hello["kinds"] == ["render", "fail", "garbage", "sleep", "thumb", "dies", "missing"]
    assert hello["concurrency"] == 3
    args = {"steps": 3, "secret": ARGS_SECRET, "n": [1, 2.5, None, True], "s": "\u00e9\n\""}
    broker.job("r-1", "render", args, attempt=2)
    msgs = broker.run_to_done("r-1")
    assert [m["type"] for m in msgs] == ["started", "progress", "progress", "progress", "done"]
    assert all(m["attempt"] == 2 for m in msgs)
    assert [m.get("progress") for m in msgs[1:4]] == [33, 67, 100]
    assert [m.get("message") for m in msgs[1:4]] == ["step 1/3", "step 2/3", "step 3/3"]
    done = msgs[-1]
    assert done["status"] == "succeeded" and "reason" not in done, done
    result = done["result"]
    assert result["task_id"] == "r-1" and result["steps"] == 3
    assert result["args"] == args  # msgpack -> JSON -> child -> JSON -> msgpack, exactly
    log = w.log()
    assert "a line on stderr from render.py" in log  # the child's stderr, in the log
    assert "job started task=r-1" in log and "job ended task=r-1" in log
    assert ARGS_SECRET not in log


def test_child_stderr_is_logged_bounded_in_rate_and_width(pool):
    tc, broker = pool
    w = start_worker(tc, broker)
    broker.hello()
    broker.job("e-1", "render", {"steps": 1, "stderr_lines": 300, "stderr_width": 6000})
    assert broker.run_to_done("e-1")[-1]["status"] == "succeeded"
    lines = [ln for ln in w.log().splitlines() if ": noise " in ln]
    assert 50 <= len(lines) <= 100, len(lines)  # at most 100 per second
    assert all(len(ln) < 4096 + 200 for ln in lines), max(map(len, lines))
    assert "stderr lines not logged (over 100/s)" in w.log()


def test_non_zero_exit_fails_exit_status(pool):
    tc, broker = pool
    start_worker(tc, broker)
    broker.hello()
    broker.job("f-1", "fail")
    msgs = broker.run_to_done("f-1")
    assert [m["type"] for m in msgs] == ["started", "progress", "done"]
    done = msgs[-1]
    assert (done["status"], done.get("reason"), done.get("message")) == (
        "failed", "exit_status", "exit status 3"), done
    assert "result" not in done


@pytest.mark.parametrize("mode", ["text", "array", "long"])
def test_garbage_on_stdout_fails_bad_output_and_kills_the_child(pool, mode):
    tc, broker = pool
    start_worker(tc, broker, "--grace-s", "2")
    broker.hello()
    t0 = time.monotonic()
    broker.job("g-1", "garbage", {"mode": mode})
    msgs = broker.run_to_done("g-1")
    done = msgs[-1]
    assert (done["type"], done["status"], done.get("reason")) == ("done", "failed", "bad_output")
    assert time.monotonic() - t0 < 5, "the child (sleeping 60 s) was not killed"


def test_unknown_kind_fails_no_command_and_unstartable_command_too(pool):
    tc, broker = pool
    start_worker(tc, broker)
    broker.hello()
    broker.job("n-1", "nosuchkind")
    _, done = broker.expect("done", task_id="n-1", status="failed", reason="no_command")
    broker.job("n-2", "missing")
    _, done = broker.expect("done", task_id="n-2", status="failed", reason="no_command")
    assert "nonexistent" in done.get("message", ""), done


# ---------------------------------------------------------------- kept children


def test_kept_child_takes_job_after_job_and_is_replaced_when_it_dies(pool):
    tc, broker = pool
    w = start_worker(tc, broker)
    broker.hello()
    pids = []
    for i in range(2):
        broker.job(f"k-{i}", "thumb")
        msgs = broker.run_to_done(f"k-{i}")
        assert [m["type"] for m in msgs] == ["started", "progress", "done"], msgs
        assert msgs[1]["progress"] == 50 and msgs[1]["message"] == "halfway"
        assert msgs[-1]["status"] == "succeeded", msgs[-1]
        pids.append(msgs[-1]["result"]["pid"])
    assert pids[0] == pids[1], "the kept child was not reused"
    broker.job("k-err", "thumb", {"fail": "no such image"})
    msgs = broker.run_to_done("k-err")
    assert (msgs[-1]["status"], msgs[-1].get("reason"), msgs[-1].get("message")) == (
        "failed", "error", "no such image")
    broker.job("k-3", "thumb")
    assert broker.run_to_done("k-3")[-1]["result"]["pid"] == pids[0]
    # a kept child that exits during its job fails it, and a new one takes the next
    broker.job("d-1", "dies")
    done = broker.run_to_done("d-1")[-1]
    assert (done["status"], done.get("reason"), done.get("message")) == (
        "failed", "exit_status", "exit status 3")
    broker.job("d-2", "dies")
    assert broker.run_to_done("d-2")[-1].get("reason") == "exit_status"
    assert w.log().count("kept child started kind=dies") == 2


# ---------------------------------------------------------------- timeout, cancel, concurrency


def test_timeout_fails_the_job_with_reason_timeout(pool):
    tc, broker = pool
    start_worker(tc, broker)
    broker.hello()
    t0 = time.monotonic()
    broker.job("t-1", "sleep", {"seconds": 30}, timeout_s=1)
    msgs = broker.run_to_done("t-1")
    done = msgs[-1]
    assert (done["status"], done.get("reason")) == ("failed", "timeout"), done
    assert 0.9 < time.monotonic() - t0 < 5


@pytest.mark.parametrize("ignore_term", [False, True])
def test_cancel_ends_the_job_cancelled(pool, ignore_term):
    tc, broker = pool
    start_worker(tc, broker, "--grace-s", "1")
    broker.hello()
    broker.job("c-1", "sleep", {"seconds": 30, "ignore_term": ignore_term})
    broker.expect("started", task_id="c-1")
    broker.expect("progress", task_id="c-1")
    t0 = time.monotonic()
    broker.send({"type": "cancel", "task_id": "c-1", "attempt": 1})
    _, done = broker.expect("done", task_id="c-1", status="cancelled")
    took = time.monotonic() - t0
    if ignore_term:  # SIGKILL after the grace period
        assert 0.9 < took < 4, took
    else:
        assert took < 1, took


def test_never_more_jobs_than_concurrency(pool):
    tc, broker = pool
    start_worker(tc, broker, concurrency=2)
    broker.hello()
    for i in range(3):
        broker.job(f"p-{i}", "sleep", {"seconds": 1})
    got = [broker.recv()[1] for _ in range(3)]
    got += [broker.recv()[1] for _ in range(2)]  # the two progress lines
    types = sorted((m["type"], m["task_id"]) for m in got)
    assert types == [("progress", "p-0"), ("progress", "p-1"), ("release", "p-2"),
                     ("started", "p-0"), ("started", "p-1")], types
    done = {broker.expect("done")[1]["task_id"] for _ in range(2)}
    assert done == {"p-0", "p-1"}
    broker.job("p-2", "sleep", {"seconds": 0})  # a slot is free again
    assert broker.run_to_done("p-2")[-1]["status"] == "succeeded"


# ---------------------------------------------------------------- stopping, the broker lost


def test_sigterm_says_bye_lets_the_job_finish_and_exits_0(pool):
    tc, broker = pool
    w = start_worker(tc, broker, "--grace-s", "5")
    broker.hello()
    broker.job("s-1", "sleep", {"seconds": 1.5})
    broker.expect("started", task_id="s-1")
    broker.expect("progress", task_id="s-1")
    w.p.send_signal(signal.SIGTERM)
    broker.expect("bye")
    broker.job("s-2", "render")  # no new jobs after bye
    broker.expect("release", task_id="s-2")
    _, done = broker.expect("done", task_id="s-1", timeout=5)
    assert done["status"] == "succeeded", done
    assert w.wait_exit() == 0


def test_sigterm_releases_what_outlives_the_grace(pool):
    tc, broker = pool
    w = start_worker(tc, broker, "--grace-s", "1")
    broker.hello()
    broker.job("s-3", "sleep", {"seconds": 60, "ignore_term": True})
    broker.expect("started", task_id="s-3")
    broker.expect("progress", task_id="s-3")
    t0 = time.monotonic()
    w.p.send_signal(signal.SIGTERM)
    broker.expect("bye")
    broker.expect("release", task_id="s-3", attempt=1, timeout=5)
    assert w.wait_exit() == 0
    assert time.monotonic() - t0 < 5


def test_a_silent_broker_is_left_and_hello_is_said_again(pool):
    tc, broker = pool
    w = start_worker(tc, broker)
    first = broker.hello(heartbeat_ms=200, liveness=2)
    peer1 = broker.peer
    broker.job("l-1", "sleep", {"seconds": 30})
    broker.expect("started", task_id="l-1")
    broker.silent = True  # no more heartbeats: dead after 400 ms
    t0 = time.monotonic()
    peer2, again = broker.expect("hello", timeout=5, skip=("heartbeat", "progress"))
    assert time.monotonic() - t0 < 3
    assert peer2 != peer1, "the same socket was reused"
    assert again["kinds"] == first["kinds"]
    assert "broker lost" in w.log() and "job abandoned task=l-1" in w.log()
    broker.silent = False
    broker.peer = peer2
    broker.send({"type": "welcome", "heartbeat_ms": 300, "liveness": 4})
    broker.job("l-2", "render", {"steps": 1})  # the new connection works
    assert broker.run_to_done("l-2")[-1]["status"] == "succeeded"


def test_bad_config_is_refused_with_its_line(tc):
    conf = tc.tmp / "bad.conf"
    conf.write_text("# ok\nrender per-job /bin/true\nthumb sometimes /bin/true\n")
    import subprocess
    r = subprocess.run([str(WORKER_BIN), "--config", str(conf)], capture_output=True, text=True,
                       env=clean_env(), timeout=10)
    assert r.returncode == 2
    assert "line 3: mode must be per-job or kept, not 'sometimes'" in r.stderr, r.stderr
