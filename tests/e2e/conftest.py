"""End-to-end fixtures: real taskcast processes on loopback, real clients.

Everything here talks to the processes exactly as the contract
(the project's DESIGN.md, "The contract", and docs/protocol.md) describes: ZeroMQ DEALER/REQ workers
sending msgpack events, WebSocket clients (python3-websockets, legacy asyncio
API), plain HTTP. No mocks.

The `tc` fixture is the harness of one test:

    def test_x(tc):
        broker = tc.broker()
        gw = tc.gateway(broker)
        token = tc.token("2")
        async def main():
            ws = await tc.connect(gw, "2")          # hello already read
            tc.worker(broker).publish(event("t1", "2"))
            frame = await ws.recv_task()
        tc.run(main)

At teardown it stops every process it started (SIGTERM; exit status must be
0), and fails the test if any process log contains a sanitizer report or any
token / secret the test used.

Binaries: $TASKCAST_BUILD_DIR/bin (default <repo>/build/bin).
Run: TASKCAST_BUILD_DIR=build /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
"""
import asyncio
import base64
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import jwt
import msgpack
import pytest
from pytest import fail
import websockets
import websockets.exceptions
import zmq

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TASKCAST_BUILD_DIR") or (REPO / "build"))
BIN = BUILD / "bin"
BROKER_BIN = BIN / "taskcast-broker"
GATEWAY_BIN = BIN / "taskcast-gateway"
CLI_BIN = BIN / "taskcast-cli"
WORKER_BIN = BIN / "taskcast-worker"
EXAMPLES = REPO / "examples"
PY = "/usr/bin/python3"  # Debian's, for the example job children

# Every wait is bounded by one of these (seconds).
START_TIMEOUT = 15.0  # a process becomes ready (sanitizer builds start slowly)
STOP_TIMEOUT = 10.0  # a process exits after SIGTERM
RECV_TIMEOUT = 5.0  # a frame / an answer arrives
TEST_TIMEOUT = 90  # hard limit for one test (SIGALRM)

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
RESERVED_PORTS = set(range(5555, 5559)) | {8000, 8001}

# The HS256 secret of the default gateway: >= 32 raw bytes, random per run.
SECRET = "e2e-hs256-" + secrets.token_hex(24)


# ---------------------------------------------------------------- small helpers


_handed_out = set()


def free_ports(n):
    """n distinct free loopback ports (bound to port 0 to find them), never
    one handed out before in this run, never one of the demo ports."""
    ports = []
    socks = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port in _handed_out or port in RESERVED_PORTS:
                continue
            _handed_out.add(port)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def now_ms():
    return int(time.time() * 1000)


def event(task_id, user_id, status="running", **fields):
    """A worker event dict (msgpack map with string keys)."""
    ev = {"task_id": task_id, "user_id": user_id, "status": status}
    ev.update(fields)
    return ev


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def clean_env(**extra):
    """The environment for a child: ours without any TASKCAST_* variable,
    plus extra (None values are left out)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCAST_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    for k, v in extra.items():
        if v is not None:
            env[k] = v
    return env


def http_get(port, path, headers=None, timeout=RECV_TIMEOUT):
    """GET http://127.0.0.1:port/path -> (status, headers dict lowercased, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


# ---------------------------------------------------------------- processes


class Proc:
    """A child process with its stdout and stderr in a log file."""

    def __init__(self, tc, name, argv, env):
        self.tc = tc
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = env
        self.log_path = tc.tmp / f"{name}.log"
        self.expected_dead = False  # killed on purpose: no exit status check
        self.expect_failure = False  # a non-zero exit is what the test wants
        self.returncode = None
        with open(self.log_path, "ab") as logf:
            self.p = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                      stderr=logf, start_new_session=True)
        tc.procs.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Waits for the process to end by itself; returns its status."""
        try:
            self.returncode = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            fail(f"{self.name} did not exit within {timeout}s\n--- log ---\n{self.log()}")
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT, expect=0):
        """Sends sig and waits; asserts the exit status is expect (unless
        expect is None). Returns the status."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.returncode = self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                fail(f"{self.name} did not exit within {timeout}s of signal {sig}\n"
                            f"--- log ---\n{self.log()}")
        else:
            self.returncode = self.p.returncode
        if expect is not None:
            assert self.returncode == expect, (
                f"{self.name} exited with status {self.returncode}, expected {expect}\n"
                f"--- log ---\n{self.log()}")
        return self.returncode

    def kill(self):
        """SIGKILL, on purpose: its exit status is not checked."""
        self.expected_dead = True
        if self.p.poll() is None:
            self.p.kill()
        self.returncode = self.p.wait(timeout=STOP_TIMEOUT)
        return self.returncode


class Broker(Proc):
    def __init__(self, tc, ports=None, args=(), env=None, wait=True, name=None, via_env=False):
        """via_env: endpoints in TASKCAST_INGEST/FANOUT/SYNC/JOBS instead of flags."""
        self.ports = list(ports) if ports else free_ports(4)
        self.ingest, self.fanout, self.sync, self.jobs = (
            f"tcp://127.0.0.1:{p}" for p in self.ports)
        tc.nbrokers += 1
        envd = {"TASKCAST_LOG_LEVEL": "debug"}
        if via_env:
            argv = [BROKER_BIN, *args]
            envd.update(TASKCAST_INGEST=self.ingest, TASKCAST_FANOUT=self.fanout,
                        TASKCAST_SYNC=self.sync, TASKCAST_JOBS=self.jobs)
        else:
            argv = [BROKER_BIN, "--ingest", self.ingest, "--fanout", self.fanout, "--sync",
                    self.sync, "--jobs", self.jobs, *args]
        envd.update(env or {})
        super().__init__(tc, name or f"broker{tc.nbrokers}", argv, clean_env(**envd))
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=START_TIMEOUT):
        """Ready when a message on ingest is answered. The probe is an empty
        map: answered with an error, so it leaves no state behind."""
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.ingest)
        deadline = time.monotonic() + timeout
        try:
            sock.send(msgpack.packb({}))
            while time.monotonic() < deadline:
                if not self.alive():
                    self.expect_failure = True  # reported here, not again at teardown
                    fail(f"{self.name} exited with status {self.p.returncode} at start\n"
                                f"--- log ---\n{self.log()}")
                if sock.poll(100, zmq.POLLIN):
                    answer = msgpack.unpackb(sock.recv(), raw=False)
                    assert isinstance(answer, dict) and answer.get("ok") is False, answer
                    return
            fail(f"{self.name} did not answer on {self.ingest} within {timeout}s\n"
                        f"--- log ---\n{self.log()}")
        finally:
            sock.close(linger=0)

    def restart(self, **kw):
        """A new broker on the same ports (this one must be stopped)."""
        assert not self.alive()
        return Broker(self.tc, ports=self.ports, **kw)


class Gateway(Proc):
    """taskcast-gateway on 127.0.0.1:port. secret: HS256 secret (default
    SECRET; None for none); public_key: --jwt-public-key value."""

    def __init__(self, tc, broker, secret=SECRET, public_key=None, port=None, args=(), env=None,
                 wait=True, name=None, broker_ports=None, via_env=False):
        self.port = port or free_ports(1)[0]
        if broker is not None:
            fanout, sync, jobs = broker.fanout, broker.sync, broker.jobs
        else:  # no broker: endpoints nobody listens on
            bp = broker_ports or free_ports(3)
            if len(bp) < 3:
                bp = list(bp) + free_ports(1)
            fanout, sync, jobs = (f"tcp://127.0.0.1:{p}" for p in bp[:3])
        self.fanout, self.sync, self.jobs = fanout, sync, jobs
        if secret:
            tc.secret(secret)
        tc.ngateways += 1
        envd = {"TASKCAST_LOG_LEVEL": "debug", "TASKCAST_JWT_SECRET": secret or None}
        if via_env:  # addresses and key from TASKCAST_* only
            argv = [GATEWAY_BIN]
            envd.update(TASKCAST_LISTEN=f"127.0.0.1:{self.port}", TASKCAST_FANOUT=fanout,
                        TASKCAST_SYNC=sync, TASKCAST_JOBS=jobs, TASKCAST_JWT_PUBLIC_KEY=public_key)
        else:
            argv = [GATEWAY_BIN, "--listen", f"127.0.0.1:{self.port}", "--fanout", fanout,
                    "--sync", sync, "--jobs", jobs]
            if public_key is not None:
                argv += ["--jwt-public-key", public_key]
        argv += list(args)
        envd.update(env or {})
        super().__init__(tc, name or f"gateway{tc.ngateways}", argv, clean_env(**envd))
        if wait == "ready":
            self.wait_http("/ready", 200)
        elif wait:
            self.wait_http("/health", 200)
            if broker is not None:
                self.wait_http("/ready", 200)

    def wait_http(self, path, status, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                self.expect_failure = True  # reported here, not again at teardown
                fail(f"{self.name} exited with status {self.p.returncode}\n"
                            f"--- log ---\n{self.log()}")
            try:
                last = http_get(self.port, path, timeout=2)[0]
                if last == status:
                    return
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        fail(f"{self.name}: GET {path} did not become {status} within {timeout}s "
                    f"(last: {last})\n--- log ---\n{self.log()}")

    def get(self, path, **kw):
        return http_get(self.port, path, **kw)

    def url(self, user, token=None, path=None, token_last=False, **query):
        """ws URL of the task route of user (or of path): token= in the query
        unless token is None, first (or last if token_last), and the other
        query arguments in order."""
        q = [f"{k}={v}" for k, v in query.items()]
        if token is not None:
            q.insert(len(q) if token_last else 0, f"token={token}")
        p = path if path is not None else f"/api/v1/ws/tasks/{user}"
        return f"ws://127.0.0.1:{self.port}{p}" + ("?" + "&".join(q) if q else "")


# ---------------------------------------------------------------- workers


class Worker:
    """A worker socket (DEALER by default, or REQ) on the broker's ingest."""

    def __init__(self, tc, endpoint, kind=zmq.DEALER):
        self.kind = kind
        self.sock = zmq.Context.instance().socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        tc.sockets.append(self.sock)

    def send_frames(self, frames, timeout=RECV_TIMEOUT):
        """Sends one message of raw frames and returns the answer dict."""
        self.sock.send_multipart(frames)
        return self.answer(timeout)

    def answer(self, timeout=RECV_TIMEOUT):
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise AssertionError(f"no answer from the broker within {timeout}s")
        frames = self.sock.recv_multipart()
        assert len(frames) == 1, f"the answer has {len(frames)} frames: {frames!r}"
        answer = msgpack.unpackb(frames[0], raw=False)
        assert isinstance(answer, dict), f"the answer is not a map: {answer!r}"
        return answer

    def send_raw(self, raw, timeout=RECV_TIMEOUT):
        return self.send_frames([raw], timeout)

    def publish(self, ev, timeout=RECV_TIMEOUT):
        return self.send_raw(msgpack.packb(ev, use_bin_type=True), timeout)

    def publish_ok(self, ev, timeout=RECV_TIMEOUT):
        """Publishes and asserts the broker accepted it; returns the seq."""
        answer = self.publish(ev, timeout)
        assert answer.get("ok") is True and isinstance(answer.get("seq"), int), answer
        return answer["seq"]


# ---------------------------------------------------------------- WebSocket clients


class Closed(Exception):
    pass


class WS:
    """A WebSocket client: JSON text frames in, with timeouts."""

    def __init__(self, conn, url):
        self.conn = conn
        self.url = url
        self.hello = None
        self.frames = []  # every frame received, in order

    async def recv(self, timeout=RECV_TIMEOUT):
        """The next frame as a dict. Raises AssertionError on timeout; lets
        websockets' ConnectionClosed through."""
        try:
            raw = await asyncio.wait_for(self.conn.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no frame within {timeout}s on {redact(self.url)} "
                                 f"(received so far: {self.frames!r})") from None
        assert isinstance(raw, str), f"a binary frame: {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict), f"a frame that is not a JSON object: {raw!r}"
        self.frames.append(frame)
        return frame

    async def recv_task(self, timeout=RECV_TIMEOUT):
        frame = await self.recv(timeout)
        assert frame.get("type") == "task", f"expected a task frame, got {frame!r}"
        return frame

    async def recv_tasks(self, n, timeout=RECV_TIMEOUT * 2):
        """Exactly the next n frames, all task frames."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"only {len(out)} of {n} task frames within {timeout}s: "
                                     f"{out[-3:]!r}")
            out.append(await self.recv_task(left))
        return out

    async def collect(self, until, timeout=RECV_TIMEOUT * 2):
        """Frames until until(frame) is true (that frame included)."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"condition not met within {timeout}s; got {out!r}")
            frame = await self.recv(left)
            out.append(frame)
            if until(frame):
                return out

    async def quiet(self, seconds=0.5):
        """Asserts no frame arrives for seconds."""
        try:
            raw = await asyncio.wait_for(self.conn.recv(), seconds)
        except asyncio.TimeoutError:
            return
        except websockets.exceptions.ConnectionClosed as e:
            raise AssertionError(f"connection closed unexpectedly: {describe_close(e)}") from None
        raise AssertionError(f"unexpected frame: {raw!r}")

    async def expect_close(self, timeout=RECV_TIMEOUT):
        """Reads until the connection closes; returns (frames read before the
        close, close code received, reason). Fails on a timeout; the code is
        1006 when no close frame arrived (a reset)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not closed within {timeout}s; frames: {frames!r}")
            try:
                frames.append(await self.recv(left))
            except websockets.exceptions.ConnectionClosed as e:
                if e.rcvd is None:
                    return frames, 1006, None
                return frames, e.rcvd.code, e.rcvd.reason

    async def send_json(self, obj):
        await self.conn.send(json.dumps(obj))

    async def close(self):
        await self.conn.close()


def describe_close(e):
    if e.rcvd is None:
        return "no close frame received (1006: connection lost / reset)"
    return f"close code {e.rcvd.code} reason {e.rcvd.reason!r}"


def redact(url):
    i = url.find("token=")
    if i < 0:
        return url
    j = url.find("&", i)
    return url[:i + 6] + "[redacted]" + (url[j:] if j >= 0 else "")


# ---------------------------------------------------------------- the harness


class Harness:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.sockets = []
        self.clients = []
        self.secrets = set()  # tokens and keys that must never appear in a log
        self.nbrokers = 0
        self.ngateways = 0

    # processes
    def broker(self, **kw):
        return Broker(self, **kw)

    def gateway(self, broker, **kw):
        return Gateway(self, broker, **kw)

    def worker(self, broker_or_endpoint, kind=zmq.DEALER):
        ep = getattr(broker_or_endpoint, "ingest", broker_or_endpoint)
        return Worker(self, ep, kind)

    def pool(self, broker, name, concurrency=2, config=None, args=()):
        """A taskcast-worker on broker's jobs endpoint; config: its kinds file
        (default: render and thumb from examples/jobs); args: more flags."""
        if not WORKER_BIN.exists():
            fail(f"{WORKER_BIN} is not built (set TASKCAST_BUILD_DIR)")
        conf = self.tmp / f"{name}.conf"
        conf.write_text(config or f"render per-job {PY} {EXAMPLES}/jobs/render.py\n"
                                  f"thumb kept {PY} {EXAMPLES}/jobs/thumb.py\n")
        return Proc(self, name, [WORKER_BIN, "--config", conf, "--jobs", broker.jobs, "--name",
                                 name, "--concurrency", str(concurrency), "--log-level", "info",
                                 *args], clean_env())

    def cli(self, *args, env=None, timeout=20):
        """Runs taskcast-cli; returns CompletedProcess (text)."""
        if not CLI_BIN.exists():
            fail(f"{CLI_BIN} is not built")
        return subprocess.run([str(CLI_BIN), *map(str, args)], env=clean_env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    # secrets and tokens
    def secret(self, value):
        """Registers something that must never be logged."""
        if value and len(value) >= 12:
            self.secrets.add(value)
        return value

    def token(self, sub, key=SECRET, alg="HS256", exp_in=300, headers=None, **claims):
        """Mints a JWT with PyJWT (iat now, exp now + exp_in; exp_in None
        leaves exp out), registers it as a secret."""
        now = int(time.time())
        payload = {"sub": sub, "iat": now}
        if exp_in is not None:
            payload["exp"] = now + exp_in
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        tok = jwt.encode(payload, key, algorithm=alg, headers=headers)
        return self.register_token(tok)

    def register_token(self, tok):
        """The whole token and its signature (the part that makes it a
        credential) must never be logged."""
        self.secret(tok)
        sig = tok.rsplit(".", 1)[-1]
        if len(sig) >= 16:
            self.secrets.add(sig)
        return tok

    # WebSockets
    async def ws(self, url, **kw):
        """Opens a WebSocket (no frame read)."""
        kw.setdefault("open_timeout", RECV_TIMEOUT)
        kw.setdefault("close_timeout", 2)
        kw.setdefault("ping_interval", None)
        kw.setdefault("max_size", 4 << 20)
        conn = await websockets.connect(url, **kw)
        client = WS(conn, url)
        self.clients.append(client)
        return client

    async def connect(self, gw, user, token=None, hello=True, token_last=False, **query):
        """A client of user's task route with a fresh valid token (or the one
        given), hello read and checked."""
        if token is None:
            token = self.token(user)
        ws = await self.ws(gw.url(user, token, token_last=token_last, **query))
        if hello:
            frame = await ws.recv()
            assert frame.get("type") == "hello", f"first frame is not hello: {frame!r}"
            assert frame.get("user_id") == user, frame
            ws.hello = frame
        return ws

    def run(self, fn, timeout=TEST_TIMEOUT - 10):
        """Runs the coroutine function fn in a fresh event loop; closes every
        client it opened."""

        async def main():
            try:
                return await asyncio.wait_for(fn(), timeout)
            finally:
                clients, self.clients = self.clients, []
                for c in clients:
                    try:
                        await asyncio.wait_for(c.conn.close(), 3)
                    except Exception:
                        pass

        return asyncio.run(main())

    # teardown
    def stop_all(self, problems):
        """Stops every process (gateways first, newest first), SIGTERM, and
        notes any exit status that is not 0."""
        for s in self.sockets:
            s.close(linger=0)
        self.sockets = []
        order = [p for p in reversed(self.procs) if isinstance(p, Gateway)] + \
                [p for p in reversed(self.procs) if not isinstance(p, Gateway)]
        for p in order:
            if p.expected_dead:
                continue
            try:
                if p.p.poll() is None:
                    p.p.send_signal(signal.SIGTERM)
                    try:
                        p.returncode = p.p.wait(timeout=STOP_TIMEOUT)
                    except subprocess.TimeoutExpired:
                        p.p.kill()
                        p.p.wait(timeout=STOP_TIMEOUT)
                        problems.append(f"{p.name} (pid {p.pid}) did not exit within "
                                        f"{STOP_TIMEOUT}s of SIGTERM")
                        continue
                rc = p.p.returncode
                if rc != 0 and not p.expect_failure:
                    problems.append(f"{p.name} (pid {p.pid}) exited with status {rc}")
            except Exception as e:  # never leave a process behind
                if p.p.poll() is None:
                    p.p.kill()
                problems.append(f"{p.name}: {e!r}")
        for p in self.procs:
            if p.p.poll() is None:  # belt and braces
                p.p.kill()
                p.p.wait()

    def check_logs(self, problems):
        """Sanitizer reports and leaked tokens/secrets in any process log."""
        for p in self.procs:
            text = p.log()
            for mark in SANITIZER_MARKS:
                if mark in text:
                    problems.append(f"{p.name} log contains {mark!r}")
            for sec in sorted(self.secrets):
                if sec in text:
                    problems.append(f"{p.name} log contains a token or secret the test used "
                                    f"({sec[:6]}...{sec[-4:]}, {len(sec)} chars)")

    def report(self, problems):
        if problems:
            logs = "\n".join(f"--- {p.name} log ({p.log_path}) ---\n{p.log()}"
                             for p in self.procs)
            fail("teardown checks failed:\n  " + "\n  ".join(problems) + "\n" + logs,
                        pytrace=False)

    def finish(self):
        problems = []
        try:
            self.stop_all(problems)
        finally:
            self.check_logs(problems)
        self.report(problems)


@pytest.fixture
def tc(tmp_path):
    for b in (BROKER_BIN, GATEWAY_BIN):
        if not b.exists():
            fail(f"{b} is not built (set TASKCAST_BUILD_DIR)")
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.finish()


@pytest.fixture(autouse=True)
def _hard_timeout():
    """No test may hang: SIGALRM after TEST_TIMEOUT seconds."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def stack(tc):
    """The usual setup: one broker, one gateway (HS256, SECRET)."""
    broker = tc.broker()
    gw = tc.gateway(broker)
    return broker, gw


@pytest.fixture(scope="module")
def _module_stack(tmp_path_factory):
    for b in (BROKER_BIN, GATEWAY_BIN):
        if not b.exists():
            fail(f"{b} is not built (set TASKCAST_BUILD_DIR)")
    h = Harness(tmp_path_factory.mktemp("shared"))
    try:
        h.stack = (h.broker(), None)
        h.stack = (h.stack[0], h.gateway(h.stack[0]))
        yield h
    finally:
        h.finish()


@pytest.fixture
def shared(_module_stack):
    """A harness whose broker and gateway (shared.stack) serve every test of
    the module that uses it, for tests that only talk to them. Use a
    distinct user id per test (uid()). After each test: both processes must
    still run, and the logs must hold no sanitizer report and no token."""
    h = _module_stack
    yield h
    problems = []
    for p in h.stack:
        if not p.alive():
            problems.append(f"{p.name} is no longer running (status {p.p.returncode})")
    h.check_logs(problems)
    h.report(problems)


_uid_counter = [0]


def uid(prefix="u"):
    """A user id no other test uses."""
    _uid_counter[0] += 1
    return f"{prefix}{_uid_counter[0]}-{secrets.token_hex(3)}"


def load_python_worker():
    """examples/python_worker.py as a module."""
    import importlib.util
    path = EXAMPLES / "python_worker.py"
    if not path.exists():
        fail(f"{path} does not exist")
    spec = importlib.util.spec_from_file_location("python_worker", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
