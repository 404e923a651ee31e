#!/usr/bin/python3
"""End-to-end check of the benchmark peers (a few seconds each).

    /usr/bin/python3 bench/peers/test_peers.py [nchan] [fastapi] [node]   (default: all)
    /usr/bin/python3 -m pytest bench/peers/test_peers.py

For each peer: start.sh on free ports with a fresh secret and a pidfile, then
  - the listed server processes are alive;
  - a good token is accepted (hello frame; nchan: the 101) and a frame published
    right after that arrives byte for byte;
  - a badly signed, an expired and a missing token are refused, and a good token
    of another user is refused (the close code or HTTP status is printed), and
    no request header can stand in for the token in the URI;
  - two tabs of one user both get each frame, in order;
  - a user gets none of another user's frames;
  - a user whose last tab closed gets frames again when it comes back;
  - SIGTERM to start.sh stops every listed process and start.sh exits 0.
Publishing: Redis PUBLISH on "tasks:{user}" (FastAPI, Node) or HTTP POST
/pub/{user} (Nchan), over raw sockets. Exit status 0 when every check passed.
"""

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

import jwt
import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ("nchan", "fastapi", "node")
START_TIMEOUT_S = 120  # the first start may apt-get or npm ci
QUIET_S = 0.3          # how long "nothing arrives" is watched


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(secret: str, sub: str, exp_in: int = 3600) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + exp_in}, secret,
                      algorithm="HS256")


def frame(seq: int, user: str) -> bytes:
    """An event frame as taskcast renders it, with a publisher timestamp."""
    return json.dumps({
        "type": "task", "seq": seq, "task_id": f"t{seq}", "status": "running",
        "progress": 50, "data": {"bt": time.monotonic_ns(), "pad": "x" * 100,
                                 "user": user, "utf8": "\u00e9\u2713"},
        "ts": int(time.time() * 1000)}, separators=(",", ":"),
        ensure_ascii=False).encode()


class Publisher:
    """Publishes a frame to a user the way the peer's publisher does."""

    def __init__(self, peer: str, port: int, redis_port: int) -> None:
        self.peer = peer
        addr = ("127.0.0.1", port if peer == "nchan" else redis_port)
        self.sock = socket.create_connection(addr, timeout=5)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("publisher connection closed")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def publish(self, user: str, body: bytes) -> str:
        """Returns the peer's answer: subscribers reached (Redis) or HTTP status."""
        if self.peer == "nchan":
            self.sock.sendall(b"POST /pub/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Content-Length: %d\r\n\r\n%s"
                              % (user.encode(), len(body), body))
            head = self._read_until(b"\r\n\r\n").decode()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(self.buf) < length:
                self.buf += self.sock.recv(65536)
            self.buf = self.buf[length:]
            return "HTTP " + head.split(" ")[1]
        channel = b"tasks:" + user.encode()
        self.sock.sendall(b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                          % (len(channel), channel, len(body), body))
        return "reached " + self._read_until(b"\r\n").decode().lstrip(":")


class Peer:
    """A running peer: start.sh in the foreground, its PID list, its clients."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.redis_port = free_port()
        self.secret = secrets.token_urlsafe(32)
        self.tmp = tempfile.TemporaryDirectory(prefix=f"peer-{name}-")
        os.chmod(self.tmp.name, 0o755)  # nginx workers run as www-data under root
        self.pidfile = os.path.join(self.tmp.name, "pids")
        self.output = os.path.join(self.tmp.name, "start.out")
        env = dict(os.environ, TASKCAST_PEER_RUNDIR=os.path.join(self.tmp.name, "run"))
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [os.path.join(HERE, name, "start.sh"), str(self.port),
                 str(self.redis_port), self.secret, self.pidfile],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not os.path.exists(self.pidfile):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                with open(self.output, errors="replace") as f:
                    err = f.read().strip()
                self.tmp.cleanup()
                raise RuntimeError(f"{name}: start.sh failed: {err}")
            time.sleep(0.05)
        with open(self.pidfile) as f:
            self.pids = [(int(p), n) for p, n in (line.split() for line in f)]

    def url(self, user: str, tok: str) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws/tasks/{user}?token={tok}"

    def stop(self, show_logs: bool) -> int:
        """SIGTERM to start.sh; returns its exit status. Prints the peer's logs
        first when show_logs."""
        if show_logs:
            rundir = os.path.join(self.tmp.name, "run")
            logs = [self.output] + [os.path.join(rundir, n) for n in sorted(os.listdir(rundir))
                                    if n.endswith(".log")]
            for path in logs:
                name = os.path.basename(path)
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-20:]
                print(f"  --- {name} (last {len(tail)} lines)")
                print("".join("  | " + line for line in tail), end="")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = -1
        self.tmp.cleanup()
        return rc


async def connect(peer: Peer, user: str, tok: str, headers=None):
    """Opens a tab; returns (ws, None) once ready, or (None, how it was refused)."""
    try:
        ws = await websockets.connect(peer.url(user, tok), compression=None,
                                      open_timeout=5, extra_headers=headers)
    except websockets.exceptions.InvalidStatusCode as e:
        return None, f"HTTP {e.status_code}"
    if peer.name == "nchan":
        return ws, None  # the 101 is nchan's ready signal
    first = await asyncio.wait_for(ws.recv(), 5)
    if first.startswith('{"type":"hello"'):
        return ws, None
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except websockets.exceptions.ConnectionClosed as e:
        return None, f"{first} then close {e.rcvd.code if e.rcvd else None}"
    return None, f"unexpected {first}"


async def recv_bytes(ws) -> bytes:
    msg = await asyncio.wait_for(ws.recv(), 5)
    if not isinstance(msg, str):
        raise AssertionError("binary frame, expected text")
    return msg.encode()


async def quiet(ws) -> bool:
    """True when nothing arrives on ws within QUIET_S."""
    try:
        await asyncio.wait_for(ws.recv(), QUIET_S)
    except asyncio.TimeoutError:
        return True
    return False


async def checks(peer: Peer, report) -> None:
    pub = Publisher(peer.name, peer.port, peer.redis_port)
    s = peer.secret
    try:
        alive = all(os.path.exists(f"/proc/{p}") for p, _ in peer.pids)
        report("server processes listed and alive",
               alive and len(peer.pids) >= 3, ", ".join(f"{n} {p}" for p, n in peer.pids))

        ws, why = await connect(peer, "u1", token(s, "u1"))
        report("good token accepted", ws is not None, why or "ready")
        if ws is None:
            return
        body = frame(1, "u1")
        answer = pub.publish("u1", body)
        got = await recv_bytes(ws)
        report("frame published right after ready arrives verbatim", got == body, answer)

        for label, tok, expect in (
                ("badly signed token refused", token("y" * 43, "u1"), ("4401", "401")),
                ("expired token refused", token(s, "u1", -60), ("4401", "401")),
                ("missing token refused", "", ("4401", "401")),
                ("another user's token refused", token(s, "u2"), ("4403", "403"))):
            bad, why = await connect(peer, "u1", tok)
            if bad is not None:
                await bad.close()
            report(label, bad is None and why.endswith(expect), why or "accepted")
        # A header must not stand in for the URI (nchan's auth subrequest sees the
        # client's headers).
        forged = {"X-Original-URI": f"/api/v1/ws/tasks/u2?token={token(s, 'u2')}"}
        bad, why = await connect(peer, "u1", "", forged)
        if bad is not None:
            await bad.close()
        report("a forged X-Original-URI header changes nothing",
               bad is None and why.endswith(("4401", "401")), why or "accepted")

        ws2, why = await connect(peer, "u1", token(s, "u1"))
        report("second tab of the same user accepted", ws2 is not None, why or "ready")
        bodies = [frame(n, "u1") for n in (2, 3)]
        for b in bodies:
            pub.publish("u1", b)
        got1 = [await recv_bytes(ws) for _ in bodies]
        got2 = [await recv_bytes(ws2) for _ in bodies]
        report("both tabs get every frame, in order", got1 == bodies and got2 == bodies, "")

        other, why = await connect(peer, "u2", token(s, "u2"))
        report("another user accepted", other is not None, why or "ready")
        answer = pub.publish("u2", frame(4, "u2"))
        got_other = await recv_bytes(other)
        report("a user gets none of another user's frames",
               await quiet(ws) and await quiet(ws2) and b'"user":"u2"' in got_other,
               f"u2's frame: {answer}")

        await ws.close()
        await ws2.close()
        await asyncio.sleep(0.1)  # the peer unsubscribes with the last tab
        back, why = await connect(peer, "u1", token(s, "u1"))
        body = frame(5, "u1")
        answer = pub.publish("u1", body) if back is not None else "-"
        ok = back is not None and await recv_bytes(back) == body
        report("a user who left and came back gets frames again", ok, answer)
        for c in (back, other):
            if c is not None:
                await c.close()
    finally:
        pub.close()


def run_peer(name: str) -> bool:
    failures = []

    def report(label: str, ok: bool, detail: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {label}" + (f"  [{detail}]" if detail else ""))
        if not ok:
            failures.append(label)

    print(f"{name}:")
    t0 = time.monotonic()
    peer = Peer(name)
    try:
        asyncio.run(checks(peer, report))
    except Exception as e:  # a check that could not even complete
        report("checks completed", False, f"{type(e).__name__}: {e}")
    finally:
        rc = peer.stop(show_logs=bool(failures))
        left = [p for p, _ in peer.pids if os.path.exists(f"/proc/{p}/stat")
                and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
        report("SIGTERM to start.sh stops every process, exit 0",
               rc == 0 and not left, f"exit {rc}" + (f", left {left}" if left else ""))
    print(f"  ({time.monotonic() - t0:.1f} s)")
    return not failures


def test_nchan() -> None:
    assert run_peer("nchan")


def test_fastapi() -> None:
    assert run_peer("fastapi")


def test_node() -> None:
    assert run_peer("node")


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(PEERS)
    unknown = [n for n in chosen if n not in PEERS]
    if unknown:
        sys.exit(f"unknown peer(s): {' '.join(unknown)}; choose from {' '.join(PEERS)}")
    results = [run_peer(n) for n in chosen]
    sys.exit(0 if all(results) else 1)
