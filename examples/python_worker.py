#!/usr/bin/python3
"""python_worker.py: a taskcast worker in Python, written from the contract alone.

Needs only pyzmq and msgpack (Debian: python3-zmq, python3-msgpack); nothing
from the taskcast repository. Use it as a library:

    import zmq, python_worker
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect("tcp://127.0.0.1:5555")
    answer = python_worker.publish(sock, {"task_id": "t1", "user_id": "2",
                                          "status": "running", "progress": 10,
                                          "producer": "py-1", "pseq": 1})
    # {'ok': True, 'pseq': 1, 'seq': 17}

or, with resends on a fresh socket when the broker does not answer (the
ZeroMQ guide's lazy pirate) and the idempotency key filled in for you:

    with python_worker.Worker() as w:
        w.publish("t1", "2", "running", progress=10, message="step 1 of 10")

or from the command line:

    python_worker.py --user 2 --task t1 --status running --progress 10

which prints "ok seq=S pseq=N" (and " duplicate") and exits 0, prints
"error: CODE: DETAIL" on stderr and exits 1 when the broker rejects the
event, exits 3 when it does not answer, and 2 on bad usage.

The wire contract: one frame per event, a msgpack map with string keys
task_id, user_id, status (queued, running, succeeded, failed, cancelled),
optional progress (0..100), message, data (any value), ts (ms since the
epoch), and the idempotency key producer + pseq. The broker answers one
frame: {"ok": true, "pseq": N, "seq": S} (plus "duplicate": true for a
resend it had already) or {"ok": false, "error": CODE, "detail": TEXT}.
"""

import argparse
import json
import math
import os
import secrets
import sys
import time

import msgpack
import zmq

DEFAULT_INGEST = "tcp://127.0.0.1:5555"
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
MAX_ANSWER = 65536  # answers are small; a peer sending more is dropped


def encode(event):
    """Packs an event dict to the one-frame msgpack map (whole-number
    progress as an integer, as the contract's examples do)."""
    ev = dict(event)
    progress = ev.get("progress")
    if isinstance(progress, float) and progress.is_integer():
        ev["progress"] = int(progress)
    return msgpack.packb(ev, use_bin_type=True)


def await_answer(sock, pseq=None, timeout_ms=2000):
    """Waits for the broker's answer to pseq and returns it as a dict.
    Answers naming another pseq (late answers to earlier events) are
    skipped. Raises TimeoutError if none comes in time, ValueError if the
    answer is not the contract's shape."""
    deadline = time.monotonic() + timeout_ms / 1000.0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer within %d ms" % timeout_ms)
        if not sock.poll(max(1, int(left * 1000)), zmq.POLLIN):
            continue
        frames = sock.recv_multipart()
        if len(frames) != 1:
            raise ValueError("the answer has %d frames, not one" % len(frames))
        answer = msgpack.unpackb(frames[0], raw=False)
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise ValueError("the answer is not a map with a boolean 'ok'")
        if pseq is not None and "pseq" in answer and answer["pseq"] != pseq:
            continue
        return answer


def publish(sock, event, timeout_ms=2000):
    """Sends one event dict on a connected DEALER socket and returns the
    broker's answer dict. Raises TimeoutError if it does not answer in
    timeout_ms (resending is the caller's choice: see Worker)."""
    sock.send(encode(event))
    return await_answer(sock, event.get("pseq"), timeout_ms)


def check_event(event):
    """Raises ValueError for the obvious mistakes the broker would reject."""
    for key in ("task_id", "user_id", "status"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise ValueError("%s is required (a non-empty string)" % key)
    if event["status"] not in STATUSES:
        raise ValueError("status must be one of " + ", ".join(STATUSES))
    progress = event.get("progress")
    if progress is not None:
        if (isinstance(progress, bool) or not isinstance(progress, (int, float))
                or not math.isfinite(progress) or not 0 <= progress <= 100):
            raise ValueError("progress must be a number from 0 to 100")


class Worker:
    """A connection to the broker that resends on a fresh socket when an
    answer is late, with the same (producer, pseq) so the broker records
    the event once. Not thread-safe: one Worker per thread."""

    def __init__(self, endpoint=None, producer=None, timeout_ms=2000, retries=5,
                 context=None):
        self.endpoint = endpoint or os.environ.get("TASKCAST_INGEST") or DEFAULT_INGEST
        self.producer = producer or "py-" + secrets.token_hex(8)
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.pseq = 0
        self._ctx = context or zmq.Context.instance()
        self._sock = self._connect()

    def _connect(self):
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_ANSWER)
        sock.connect(self.endpoint)
        return sock

    def publish(self, task_id, user_id, status, progress=None, message=None, data=None,
                ts=None):
        """Sends one event and returns the broker's answer dict (check
        answer["ok"]). Raises TimeoutError after every retry."""
        event = {"task_id": task_id, "user_id": user_id, "status": status}
        for key, value in (("progress", progress), ("message", message), ("data", data),
                           ("ts", ts)):
            if value is not None:
                event[key] = value
        check_event(event)
        event["producer"] = self.producer
        event["pseq"] = self.pseq + 1
        raw = encode(event)  # before counting: an unencodable event uses no pseq
        self.pseq += 1
        for _ in range(self.retries + 1):
            self._sock.send(raw)
            try:
                return await_answer(self._sock, self.pseq, self.timeout_ms)
            except TimeoutError:
                # The old socket may hold a dead connection or a late answer.
                self._sock.close(linger=0)
                self._sock = self._connect()
        raise TimeoutError("no answer from %s after %d attempts"
                           % (self.endpoint, self.retries + 1))

    def close(self):
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _progress(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text)
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("must be from 0 to 100")
    return int(value) if value.is_integer() else value


def _json(text):
    try:
        return json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError("not valid JSON: %s" % e)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Send one task event to a taskcast broker and print its answer.")
    ap.add_argument("--user", required=True, help="user id the task belongs to")
    ap.add_argument("--task", required=True, help="task id")
    ap.add_argument("--status", required=True, choices=STATUSES)
    ap.add_argument("--progress", type=_progress, help="percent done, 0..100")
    ap.add_argument("--message", help="one line for the user")
    ap.add_argument("--data", type=_json, help="any JSON value, passed through")
    ap.add_argument("--ts", type=int, help="ms since the Unix epoch (default: broker's clock)")
    ap.add_argument("--producer", help="idempotency producer id (default: random)")
    ap.add_argument("--ingest", default=os.environ.get("TASKCAST_INGEST") or DEFAULT_INGEST,
                    help="broker ingest endpoint [env TASKCAST_INGEST] (default %(default)s)")
    ap.add_argument("--timeout-ms", type=int, default=2000,
                    help="wait this long for an answer before resending")
    ap.add_argument("--retries", type=int, default=5, help="resends after a timeout")
    args = ap.parse_args(argv)
    if args.timeout_ms < 1 or args.retries < 0:
        ap.error("--timeout-ms must be positive and --retries not negative")

    event = {"task_id": args.task, "user_id": args.user, "status": args.status}
    for key in ("progress", "message", "data", "ts"):
        if getattr(args, key) is not None:
            event[key] = getattr(args, key)
    try:
        check_event(event)
        encode(event)
    except (ValueError, OverflowError) as e:  # OverflowError: an integer over 64 bits
        print("error: %s" % e, file=sys.stderr)
        return 2
    try:
        w = Worker(args.ingest, args.producer, args.timeout_ms, args.retries)
    except zmq.ZMQError as e:
        print("error: --ingest %r: %s" % (args.ingest, e), file=sys.stderr)
        return 2
    try:
        answer = w.publish(args.task, args.user, args.status, progress=args.progress,
                           message=args.message, data=args.data, ts=args.ts)
    except TimeoutError as e:
        print("error: %s" % e, file=sys.stderr)
        return 3
    except (ValueError, zmq.ZMQError) as e:
        print("error: the broker's answer was not understood: %s" % e, file=sys.stderr)
        return 1
    finally:
        w.close()
    if answer.get("ok"):
        print("ok seq=%s pseq=%s%s" % (answer.get("seq"), answer.get("pseq"),
                                       " duplicate" if answer.get("duplicate") else ""))
        return 0
    print("error: %s: %s" % (answer.get("error"), answer.get("detail", "")), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
