"""taskcast for Python: submit and cancel jobs, publish task events.

Written from docs/protocol.md (sections 1 and 6) with pyzmq and msgpack
(Debian: python3-zmq, python3-msgpack); no other dependency.

    from taskcast import Jobs
    jobs = Jobs("tcp://127.0.0.1:5558")          # or $TASKCAST_JOBS
    task_id = jobs.submit("render", user_id="2", args={"frames": 100})
    jobs.cancel(task_id, user_id="2")            # "queued" or "running"

Every submit carries an idempotency key (producer, pseq); when no answer comes
within `timeout` seconds it is resent with the same key on a fresh socket (the
ZeroMQ guide's lazy pirate), up to `retries` times, so a lost answer never
makes two jobs. A refusal raises Refused(code, detail); no answer at all raises
NoAnswer. Not thread-safe: one object per thread.
"""
import os
import secrets

import msgpack
import zmq

__all__ = ["Jobs", "Events", "Refused", "NoAnswer"]


class Refused(Exception):
    """The broker answered ok: false."""

    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class NoAnswer(Exception):
    """No answer after every resend."""


class _Client:
    def __init__(self, endpoint, timeout, retries, producer):
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.producer = producer or "py-" + secrets.token_hex(8)
        self.pseq = 0
        self.ctx = zmq.Context.instance()
        self.sock = None

    def _open(self):
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, msg, pseq=None):
        """Sends msg, returns the answer (a dict with ok true) or raises."""
        raw = msgpack.packb(msg, use_bin_type=True)
        for _ in range(self.retries + 1):
            if self.sock is None:
                self._open()
            self.sock.send(raw)
            while self.sock.poll(int(self.timeout * 1000), zmq.POLLIN):
                answer = msgpack.unpackb(self.sock.recv(), raw=False)
                if not isinstance(answer, dict):
                    continue
                if pseq is not None and answer.get("pseq", pseq) != pseq:
                    continue  # a late answer to an earlier request
                if answer.get("ok") is True:
                    return answer
                raise Refused(answer.get("error", "unknown"), answer.get("detail", ""))
            self.close()  # lazy pirate: a fresh socket, the same bytes
        raise NoAnswer(f"no answer from {self.endpoint}")


class Jobs(_Client):
    """A client of the broker's jobs endpoint."""

    def __init__(self, endpoint=None, timeout=2.0, retries=5, producer=None):
        super().__init__(endpoint or os.environ.get("TASKCAST_JOBS") or "tcp://127.0.0.1:5558",
                         timeout, retries, producer)

    def submit(self, kind, user_id, args=None, task_id=None, timeout_s=None, max_retries=None):
        """Submits a job; returns its task id (the task shows as queued to the
        user's browsers once this returns)."""
        self.pseq += 1
        msg = {"type": "submit", "kind": kind, "user_id": user_id,
               "producer": self.producer, "pseq": self.pseq}
        for key, value in (("args", args), ("task_id", task_id), ("timeout_s", timeout_s),
                           ("max_retries", max_retries)):
            if value is not None:
                msg[key] = value
        return self.request(msg, pseq=self.pseq)["task_id"]

    def cancel(self, task_id, user_id):
        """Cancels user_id's job; returns "queued" or "running" (what it was).
        Refused("not_found", ...) when there is no such job of that user."""
        self.pseq += 1
        msg = {"type": "cancel", "task_id": task_id, "user_id": user_id, "pseq": self.pseq}
        return self.request(msg, pseq=self.pseq)["was"]


class Events(_Client):
    """A client of the broker's ingest endpoint: task events from your own
    workers (section 1 of docs/protocol.md)."""

    def __init__(self, endpoint=None, timeout=2.0, retries=5, producer=None):
        super().__init__(endpoint or os.environ.get("TASKCAST_INGEST") or "tcp://127.0.0.1:5555",
                         timeout, retries, producer)

    def publish(self, task_id, user_id, status, **fields):
        """Publishes one event (progress, message, data, ts as keywords);
        returns the user's seq it got."""
        self.pseq += 1
        msg = {"task_id": task_id, "user_id": user_id, "status": status,
               "producer": self.producer, "pseq": self.pseq, **fields}
        return self.request(msg, pseq=self.pseq)["seq"]
