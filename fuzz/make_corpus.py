#!/usr/bin/python3
"""Writes the seed corpus of every fuzz target (fuzz/corpus/NAME/) from real
inputs: the events, tokens and client messages of the end-to-end tests, and
what a real broker (BUILD/bin/taskcast-broker, started here on loopback)
writes: its journal, the ZMTP bytes libzmq sends on its fanout and sync
sockets, its published events, heartbeats, sync and stats answers.

Run after a build, when an input format changes:
    /usr/bin/python3 fuzz/make_corpus.py [BUILD_DIR]     (default: build)
The output is deterministic but for what the broker adds (epochs, times).
"""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt
import msgpack
import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BUILD = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build").resolve()
OUT = HERE / "corpus"

# The keys of fuzz_jwt.c.
NOW = 1_700_000_000
SECRET = "fuzz-hs256-secret-0123456789abcdef"
ED_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


class Corpus:
    """A target's seeds, written anew; regress_* files (inputs of past
    findings, added by hand) are kept."""

    def __init__(self, name):
        self.dir = OUT / name
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in self.dir.iterdir():
            if not f.name.startswith("regress_"):
                f.unlink()

    def add(self, label, data):
        if isinstance(data, str):
            data = data.encode()
        (self.dir / label).write_bytes(data)


# ---------------------------------------------------------------- the broker


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def zmtp_greeting():
    return b"\xff" + b"\0" * 7 + b"\x01\x7f\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" * 32


def zmtp_frame(body, flags=0):
    if len(body) < 256:
        return bytes([flags, len(body)]) + body
    return bytes([flags | 2]) + struct.pack(">Q", len(body)) + body


def zmtp_ready(socket_type):
    body = b"\x05READY\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return zmtp_frame(body, 4)


class RawPeer:
    """A ZMTP peer written by hand: greeting, READY, the given frames. It
    waits for libzmq's greeting first (libzmq 4.3.4 dropped a connection
    whose first packet held a message too)."""

    def __init__(self, port, socket_type, frames):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(zmtp_greeting())
        self.got = b""
        while len(self.got) < 64:
            chunk = self.sock.recv(64 - len(self.got))
            if not chunk:
                sys.exit("libzmq closed the connection during the greeting")
            self.got += chunk
        self.sock.sendall(zmtp_ready(socket_type) + b"".join(frames))

    def drain(self, seconds):
        data = drain(self.sock, seconds, self.got)
        self.sock.close()
        return data


def drain(s, seconds, data=b""):
    s.settimeout(0.1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    return data


def split_frames(stream):
    """(flags, body) of every whole frame after the greeting."""
    out, off = [], 64
    while off + 2 <= len(stream):
        flags = stream[off]
        if flags & 2:
            size = struct.unpack(">Q", stream[off + 1:off + 9])[0]
            head = 9
        else:
            size, head = stream[off + 1], 2
        if off + head + size > len(stream):
            break
        out.append((flags, stream[off + head:off + head + size]))
        off += head + size
    return out


WORKER_EVENTS = [
    {"task_id": "t1", "user_id": "u1", "status": "queued"},
    {"task_id": "t1", "user_id": "u1", "status": "running", "progress": 42,
     "message": "resizing", "producer": "w1", "pseq": 1},
    {"task_id": "t1", "user_id": "u1", "status": "running", "progress": 99.5,
     "data": {"step": 3, "of": 7, "files": ["a.png", "b.png"], "ok": True, "none": None},
     "producer": "w1", "pseq": 2},
    {"task_id": "report-2024", "user_id": "u1", "status": "succeeded", "progress": 100,
     "message": "done \u2713 \"quoted\"\n", "data": {"url": "https://example.test/r.pdf",
                                                   "size": 123456789012, "ratio": -0.25},
     "ts": 1700000000123, "producer": "w1", "pseq": 3},
    {"task_id": "t2", "user_id": "user.two-2_", "status": "failed",
     "message": "disk full", "data": {"code": -28, "bytes": b"\x00\xff\x10"}, "pseq": 9},
    {"task_id": "t3", "user_id": "u1", "status": "cancelled",
     "data": [1, -1, 2**63, -2**63, 1.5, [], {}, [[["deep"]]]]},
]


def run_broker(tmp):
    """Starts a broker with a journal, feeds it the events, captures what it
    sends. Returns a dict of captured bytes."""
    bin_ = BUILD / "bin" / "taskcast-broker"
    if not bin_.exists():
        sys.exit(f"{bin_} not built: run scripts/build.sh first")
    ports = [free_port() for _ in range(3)]
    journal = tmp / "journal.bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCAST_")}
    proc = subprocess.Popen(
        [str(bin_), "--ingest", f"tcp://127.0.0.1:{ports[0]}",
         "--fanout", f"tcp://127.0.0.1:{ports[1]}", "--sync", f"tcp://127.0.0.1:{ports[2]}",
         "--journal", str(journal), "--journal-compact-bytes", "4096", "--history", "4",
         "--dedup-window", "64", "--log-level", "error"],
        env=env)
    got = {}
    ctx = zmq.Context.instance()
    try:
        worker = ctx.socket(zmq.DEALER)
        worker.setsockopt(zmq.LINGER, 0)
        worker.connect(f"tcp://127.0.0.1:{ports[0]}")
        worker.send(pack({}))  # answered when the broker is up
        if not worker.poll(15000):
            sys.exit("the broker does not answer")
        worker.recv()
        sub = RawPeer(ports[1], b"SUB", [zmtp_frame(b"\x01u1\0"), zmtp_frame(b"\x01\0hb"),
                                           zmtp_frame(b"\x01\xffconfirm:seed")])
        time.sleep(0.3)
        for ev in WORKER_EVENTS:
            worker.send(pack(ev))
            if worker.poll(5000):
                worker.recv()
        # enough events for a compaction (S, H, U, D records in the journal)
        for i in range(250):
            worker.send(pack({"task_id": f"bulk{i % 12}", "user_id": f"b{i % 5}",
                              "status": "succeeded" if i % 3 == 0 else "running",
                              "message": "x" * 20, "producer": "bulk", "pseq": 100 + i}))
            if worker.poll(5000):
                worker.recv()
        got["fanout"] = sub.drain(1.2)
        sync = RawPeer(ports[2], b"DEALER", [
            zmtp_frame(pack({"req": 1, "user_id": "u1"})),
            zmtp_frame(pack({"req": 2, "user_id": "u1", "since": 2, "epoch": "unknown"})),
            zmtp_frame(pack({"req": 3, "op": "stats"})),
            zmtp_frame(pack({"req": 4, "user_id": "not valid!"})),
            zmtp_frame(b"\x93\x01\x02"),
        ])
        got["sync"] = sync.drain(1.0)
        # a resume request with the real epoch: a replay answer
        frames = split_frames(got["sync"])
        head = msgpack.unpackb(next(body for flags, body in frames if not flags & 4), raw=False)
        sync = RawPeer(ports[2], b"DEALER", [zmtp_frame(pack(
            {"req": 5, "user_id": "u1", "since": 1, "epoch": head["epoch"]}))])
        got["sync_replay"] = sync.drain(0.6)
        time.sleep(1.5)  # the broker compacts on a timer
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    got["journal"] = journal.read_bytes()
    return got


# ---------------------------------------------------------------- the corpora


def corpus_event(cap):
    c = Corpus("event")
    for i, ev in enumerate(WORKER_EVENTS):
        c.add(f"worker_{i}", pack(ev))
    fanout = split_frames(cap["fanout"])
    published = [body for flags, body in fanout if body[:1] in (b"\x87", b"\x88", b"\x89")]
    for i, body in enumerate(published[:8]):
        c.add(f"published_{i}", body)
    c.add("float32_progress", b"\x84\xa7task_id\xa1t\xa7user_id\xa1u\xa6status\xa7running"
          b"\xa8progress\xca\x3f\x8c\xcc\xcd")
    c.add("bad_unknown_field", pack({"task_id": "t", "user_id": "u", "status": "queued", "x": 1}))
    c.add("bad_nil_required", pack({"task_id": None, "user_id": "u", "status": "queued"}))
    c.add("bad_deep_data", pack({"task_id": "t", "user_id": "u", "status": "queued",
                                 "data": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}))
    c.add("bad_truncated", pack(WORKER_EVENTS[3])[:-3])
    return published


def corpus_mpread(published):
    c = Corpus("mpread")
    c.add("event", pack(WORKER_EVENTS[3]))
    c.add("published", published[0])
    c.add("scalars", pack([None, True, False, 0, 127, 128, 255, 256, 65535, 65536, 2**32,
                           2**64 - 1, -1, -32, -33, -128, -129, -2**15 - 1, -2**31 - 1,
                           -2**63, 1.5, "s", "x" * 40, "y" * 300, b"b", b"z" * 300]))
    c.add("float32", b"\xca\x3f\xc0\x00\x00")
    c.add("ext", b"\x92\xd4\x01\x02\xc7\x03\x05abc")
    c.add("deep_70", b"\x91" * 70 + b"\xc0")
    c.add("map_pairs", pack({"a": 1, "b": [1, 2], "c": {"d": {"e": None}}}))
    c.add("lying_count", b"\xdd\xff\xff\xff\xff\x01")


def corpus_json():
    c = Corpus("json")
    c.add("ping", '{"type":"ping"}')
    c.add("ping_spaces", ' { "type" : "ping" , "n": 1 } \n')
    c.add("unknown_type", '{"type":"subscribe","task":"t1"}')
    c.add("jwt_header", '{"alg":"HS256","typ":"JWT"}')
    c.add("jwt_claims", '{"sub":"u1","iat":1700000000,"exp":1700000300,"role":"admin"}')
    c.add("escapes", '["\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/", "\u00e9\U0001f600"]')
    c.add("numbers", '[0,-0,1e5,-1.25E-3,123456789012345678901234567890,9223372036854775807,'
                     '-9223372036854775808,1e999]')
    c.add("nested", '{"a":[{"b":[[],{}]},null,true,false]}')
    c.add("cli_data", '{"step":3,"of":7,"files":["a.png"],"ok":true}')
    c.add("bad_trailing", '{"type":"ping"}x')


def token_parts(tok):
    h, p, _ = tok.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)
    return base64.urlsafe_b64decode(pad(h)), base64.urlsafe_b64decode(pad(p))


def corpus_jwt():
    c = Corpus("jwt")
    base = {"sub": "u1", "iat": NOW, "exp": NOW + 300}
    tokens = {
        "hs256": jwt.encode(base, SECRET, algorithm="HS256"),
        "hs256_admin": jwt.encode({**base, "role": "admin"}, SECRET, algorithm="HS256"),
        "hs256_nbf": jwt.encode({**base, "nbf": NOW - 10, "sub": 12345}, SECRET, algorithm="HS256"),
        "hs256_expired": jwt.encode({**base, "exp": NOW - 1}, SECRET, algorithm="HS256"),
        "eddsa": jwt.encode(base, ED_KEY, algorithm="EdDSA"),
        "eddsa_kid": jwt.encode(base, ED_KEY, algorithm="EdDSA", headers={"kid": "k1"}),
        "other_key": jwt.encode(base, "not the fuzz secret, but 32 bytes long", algorithm="HS256"),
    }
    for label, tok in tokens.items():
        c.add(f"raw_{label}", b"\x00" + tok.encode())
    c.add("raw_none", b"\x00" + b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.")
    for label in ("hs256", "hs256_admin", "hs256_nbf"):
        h, p = token_parts(tokens[label])
        c.add(f"signed_{label}", b"\x01" + h + b"\0" + p)
        c.add(f"changed_{label}", b"\x03\x00\x10A" + h + b"\0" + p)
    h, p = token_parts(tokens["eddsa"])
    c.add("signed_eddsa", b"\x02" + h + b"\0" + p)
    c.add("changed_eddsa", b"\x07\x01\x00_" + h + b"\0" + p)
    c.add("signed_crit", b"\x01" + b'{"alg":"HS256","crit":["x"]}\0' + p)
    c.add("signed_dup", b"\x01" + b'{"alg":"HS256","alg":"HS256"}\0' + p)
    c.add("minted", b"\x04u1")
    c.add("minted_escapes", b"\x04" + "\"\\\x01\u00e9".encode())


def corpus_wire(cap):
    c = Corpus("wire")
    fanout = split_frames(cap["fanout"])
    # after each topic frame comes its message
    for i in range(len(fanout) - 1):
        topic, body = fanout[i][1], fanout[i + 1][1]
        if topic == b"\0hb" and "heartbeat" not in {p.name for p in c.dir.iterdir()}:
            c.add("heartbeat", body)
        if topic.startswith(b"\xffconfirm:"):
            c.add("confirmation", body)
    sync = [body for flags, body in split_frames(cap["sync"]) if not flags & 4]
    replay = [body for flags, body in split_frames(cap["sync_replay"]) if not flags & 4]
    c.add("sync_head_snapshot", sync[0])
    for i, body in enumerate(sync):
        if body.startswith(b"\x82\xa3req") and b"stats" in body:
            c.add("stats", body)
        if b"error" in body:
            c.add(f"sync_error_{i}", body)
    c.add("sync_head_replay", replay[0])
    c.add("sync_req", pack({"req": 1, "user_id": "u1"}))
    c.add("sync_req_resume", pack({"req": 2, "user_id": "u1", "since": 5, "epoch": "e.1"}))
    c.add("sync_req_stats", pack({"req": 3, "op": "stats"}))


def corpus_jobs_wire():
    """The jobs socket's messages: a pool worker's, the broker's, and a
    submitter's (which only jobs_wire_type() reads)."""
    c = Corpus("jobs_wire")
    t = {"task_id": "j-00000000000000a1", "attempt": 1}
    c.add("hello", pack({"type": "hello", "name": "host-1", "kinds": ["render", "thumb.v2"],
                         "concurrency": 2}))
    c.add("heartbeat", pack({"type": "heartbeat"}))
    c.add("bye", pack({"type": "bye"}))
    c.add("started", pack({"type": "started", **t}))
    c.add("progress", pack({"type": "progress", **t, "progress": 42, "message": "frame 1 of 3"}))
    c.add("progress_float", pack({"type": "progress", **t, "progress": 12.5}))
    c.add("done_succeeded", pack({"type": "done", **t, "status": "succeeded",
                                  "result": {"url": "/out.mp4", "frames": [1, 2.5, None]}}))
    c.add("done_failed", pack({"type": "done", **t, "status": "failed", "reason": "exit_status",
                               "message": "exit status 3"}))
    c.add("release", pack({"type": "release", **t}))
    c.add("welcome", pack({"type": "welcome", "heartbeat_ms": 1000, "liveness": 3}))
    c.add("job", pack({"type": "job", **t, "user_id": "2", "kind": "render",
                       "args": {"frames": 3}, "timeout_s": 3600}))
    c.add("cancel", pack({"type": "cancel", **t}))
    c.add("type_last", pack({"attempt": 2, "task_id": "t", "future": {"k": []}, "type": "started"}))
    c.add("submit", pack({"type": "submit", "kind": "render", "user_id": "2", "args": [1],
                          "producer": "backend-1", "pseq": 7}))
    c.add("bad_attempt", pack({"type": "started", "task_id": "t", "attempt": "1"}))


def corpus_zmtp(cap):
    c = Corpus("zmtp")
    fanout, sync, replay = cap["fanout"], cap["sync"], cap["sync_replay"]
    c.add("xpub_handshake", fanout[:64 + 2 + 28])
    c.add("xpub_stream", fanout[:3000])
    c.add("router_stream", sync[:3000])
    c.add("router_replay", replay[:3000])
    ping = zmtp_frame(b"\x04PING\x00\x64ctx-1234", 4)
    c.add("ping_error", fanout[:64 + 30] + ping + zmtp_frame(b"\x05ERROR\x04oops", 4))
    c.add("long_frame", fanout[:64 + 30] + zmtp_frame(b"L" * 300, 1) + zmtp_frame(b"e"))
    c.add("bad_greeting", b"\xff" + b"\0" * 8 + b"\x7f\x03\x00CURVE" + b"\0" * 48)


def corpus_journal(cap):
    c = Corpus("journal")
    raw = cap["journal"]
    c.add("raw_real", b"\x00" + raw)
    c.add("raw_torn", b"\x00" + raw[:-7])
    c.add("raw_not_a_journal", b"\x00" + b"TCJ0\n\0\0\0")
    # the same records for the harness to checksum: [u16 length][record]
    framed, off, kinds = b"\x01", 8, []
    while off + 8 <= len(raw):
        length = struct.unpack("<I", raw[off:off + 4])[0]
        record = raw[off + 8:off + 8 + length]
        kinds.append(record[:1])
        framed += struct.pack("<H", len(record)) + record
        off += 8 + length
    c.add("framed_real", framed)
    c.add("framed_meta_only", framed[:3 + 1 + 16 + 32 + 8])
    return sorted(set(kinds))


def main():
    tmp = Path(tempfile.mkdtemp(prefix="taskcast-corpus-"))
    try:
        cap = run_broker(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    published = corpus_event(cap)
    corpus_mpread(published)
    corpus_json()
    corpus_jwt()
    corpus_wire(cap)
    corpus_jobs_wire()
    corpus_zmtp(cap)
    kinds = corpus_journal(cap)
    print(f"journal record kinds: {b''.join(kinds).decode()}")
    for d in sorted(OUT.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
