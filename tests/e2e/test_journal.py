"""The broker's journal (--journal) end to end: a SIGKILL under load loses no
acknowledged event (whatever the --fsync policy, and at any point of a
compaction), resends stay duplicates across a restart, compaction keeps the
state, and a journal that is in use or not a journal stops the start with a
clear message.

Contract: "Optional append-only journal so a restart loses nothing" (DESIGN.md),
"an ok means recorded: on disk with --fsync batch, written with the others"
(protocol.md section 1), "epoch changes only if the broker lost its state"
(protocol.md section 2).
"""
import os
import re
import threading
import time

import msgpack
import pytest
import zmq

from conftest import event

TS0 = 1700000000000


def frame_of(ev, seq):
    """The browser frame of a published worker event."""
    f = {"type": "task", "seq": seq, "task_id": ev["task_id"], "status": ev["status"],
         "ts": ev["ts"]}
    if "progress" in ev:
        f["progress"] = ev["progress"]
    return f


def snapshot_of(events):
    """[(ev, seq)] -> the snapshot frames: latest per task, lowest seq first."""
    last = {}
    for ev, seq in events:
        last[ev["task_id"]] = (ev, seq)
    return sorted((frame_of(ev, seq) for ev, seq in last.values()), key=lambda f: f["seq"])


def journal_args(path, *extra):
    return ["--journal", str(path), *extra]


def broker_epoch(broker):
    """The broker epoch from its start line ("... started: ..., epoch E")."""
    m = re.search(r"started: .*, epoch ([0-9a-f]+)\s*$", broker.log(), re.M)
    assert m, broker.log()
    return m.group(1)


class Publisher(threading.Thread):
    """Publishes a stream of events (with producer/pseq), one at a time, each
    after the previous answer, until stopped or until an answer does not come
    (the broker died). Keeps what was acknowledged and what was in flight."""

    def __init__(self, endpoint, users, tasks=5, producer="crash-test"):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.users = users
        self.tasks = tasks
        self.producer = producer
        self.acked = []  # (ev, raw, seq), in order
        self.inflight = None  # (ev, raw) sent, never answered
        self.errors = []
        self.halt = threading.Event()

    def make(self, i):
        statuses = ["queued", "running", "running", "succeeded", "running", "failed",
                    "cancelled"]
        return event(f"t{(i // len(self.users)) % self.tasks}", self.users[i % len(self.users)],
                     statuses[(i // 7) % len(statuses)], progress=i % 101, ts=TS0 + i,
                     producer=self.producer, pseq=i + 1)

    def run(self):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        try:
            i = 0
            while not self.halt.is_set():
                ev = self.make(i)
                raw = msgpack.packb(ev, use_bin_type=True)
                sock.send(raw)
                if not sock.poll(2000, zmq.POLLIN):
                    self.inflight = (ev, raw)
                    return
                answer = msgpack.unpackb(sock.recv(), raw=False)
                if answer.get("ok") is not True or answer.get("duplicate"):
                    self.errors.append((ev, answer))
                    return
                self.acked.append((ev, raw, answer["seq"]))
                i += 1
        except Exception as e:  # reported by the test
            self.errors.append(("exception", repr(e)))
        finally:
            sock.close(linger=0)


def sync_state(broker, user):
    """The user's state over the broker's sync socket: (last seq, {task: event})."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(broker.sync)
    try:
        sock.send(msgpack.packb({"req": 1, "user_id": user}))
        assert sock.poll(5000), "no sync answer"
        frames = sock.recv_multipart()
        header = msgpack.unpackb(frames[0], raw=False)
        events = [msgpack.unpackb(f, raw=False) for f in frames[1:]]
        return header["seq"], {ev["task_id"]: ev for ev in events}
    finally:
        sock.close(linger=0)


FIELDS = ("task_id", "status", "progress", "ts")


def assert_has_acked(broker, users, acked, inflight):
    """Every acknowledged (ev, raw, seq) is known to the restarted broker: a
    resend is a duplicate with its seq, and each task's state is its latest
    acknowledged event (or a later one that was sent but not answered)."""
    w = broker.tc.worker(broker)
    for ev, raw, seq in acked:
        answer = w.send_raw(raw)
        assert answer == {"ok": True, "pseq": ev["pseq"], "seq": seq, "duplicate": True}, \
            (ev, seq, answer)
    for u in users:
        last_seq, tasks = sync_state(broker, u)
        mine = [(ev, seq) for ev, _, seq in acked if ev["user_id"] == u]
        assert last_seq >= max((seq for _, seq in mine), default=0), (u, last_seq)
        latest = {}
        for ev, seq in mine:
            latest[ev["task_id"]] = (ev, seq)
        for t, (ev, seq) in latest.items():
            got = tasks.get(t)
            assert got is not None, f"{u}: task {t} is lost"
            want = [{k: ev.get(k) for k in FIELDS}] + \
                [{k: e.get(k) for k in FIELDS} for e in inflight if e["user_id"] == u]
            assert {k: got.get(k) for k in FIELDS} in want and got["seq"] >= seq, (u, t, got, ev)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def gone(pid, timeout=5):
    """True once pid has exited (a zombie counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except OSError:
            return True
        time.sleep(0.01)
    return False


async def epochs_of(tc, gw, users):
    """The epoch of each user from a hello (the user gets its record)."""
    out = {}
    for u in users:
        ws = await tc.connect(gw, u)
        out[u] = ws.hello["epoch"]
        await ws.close()
    return out


# ---------------------------------------------------------------- crash under load


def test_sigkill_under_load_loses_no_acknowledged_event(tc):
    journal = tc.tmp / "journal.bin"
    broker = tc.broker(args=journal_args(journal))
    gw = tc.gateway(broker)
    users = ["ja", "jb", "jc"]
    pub = Publisher(broker.ingest, users)

    async def main():
        epochs = await epochs_of(tc, gw, users)
        pub.start()
        deadline = time.monotonic() + 20
        while len(pub.acked) < 300 and pub.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(pub.acked) >= 300 and not pub.errors, (len(pub.acked), pub.errors)
        broker.kill()  # while the publisher is sending
        pub.join(10)
        assert not pub.is_alive() and not pub.errors, pub.errors
        assert pub.inflight is not None, "the publisher should have lost an answer"
        acked = pub.acked
        inflight = pub.inflight[0]

        per_user = {u: [(ev, seq) for ev, raw, seq in acked if ev["user_id"] == u]
                    for u in users}
        for u in users:  # one at a time: every user's seqs are 1..N
            assert [seq for _, seq in per_user[u]] == list(range(1, len(per_user[u]) + 1)), u

        broker2 = broker.restart(args=journal_args(journal))
        assert "restored" in broker2.log(), broker2.log()
        assert broker_epoch(broker2) == broker_epoch(broker), "the broker epoch must survive"
        gw.wait_http("/ready", 200)

        # The in-flight event may or may not have been journaled (no answer
        # was given): both are right, but nothing acknowledged may be missing.
        for u in users:
            evs = per_user[u]
            options = [(snapshot_of(evs), [frame_of(ev, seq) for ev, seq in evs])]
            if inflight["user_id"] == u:
                more = evs + [(inflight, len(evs) + 1)]
                options.append((snapshot_of(more), [frame_of(ev, seq) for ev, seq in more]))

            ws = await tc.connect(gw, u)
            assert ws.hello["epoch"] == epochs[u], "the epoch must survive the restart"
            ntasks = len(options[0][0])
            snap = await ws.recv_tasks(ntasks)
            await ws.quiet(0.3)
            assert any(snap == o[0] for o in options), \
                f"{u}: snapshot after the restart {snap!r}\nexpected {options[0][0]!r}"
            await ws.close()

            ws = await tc.connect(gw, u, since=0, epoch=epochs[u], token_last=True)
            assert ws.hello["epoch"] == epochs[u]
            n = len(evs)
            replay = await ws.recv_tasks(n)
            if len(options) > 1:  # perhaps one more
                try:
                    replay.append(await ws.recv_task(timeout=0.5))
                except AssertionError:
                    pass
            await ws.quiet(0.3)
            assert any(replay == o[1] for o in options), \
                f"{u}: replay after the restart differs: first difference at " \
                f"{next((i for i, (a, b) in enumerate(zip(replay, options[0][1])) if a != b), None)}"
            await ws.close()

        # The worker resends what got no answer; then seqs go on, no reuse.
        w = tc.worker(broker2)
        answer = w.send_raw(pub.inflight[1])
        last = {u: len(per_user[u]) for u in users}
        assert answer.get("ok") is True and answer["seq"] == last[inflight["user_id"]] + 1, answer
        last[inflight["user_id"]] += 1
        for u in users:
            seq = w.publish_ok(event("after", u, "running", ts=TS0 - 1))
            assert seq == last[u] + 1, (u, seq, last[u])
            assert seq > max([s for _, s in per_user[u]], default=0)

        # a user new after the restart: the same broker epoch, a new ordinal
        ws = await tc.connect(gw, "jnew")
        new_epoch = ws.hello["epoch"]
        assert new_epoch.rsplit(".", 1)[0] == broker_epoch(broker), new_epoch
        assert new_epoch not in epochs.values(), (new_epoch, epochs)
        await ws.close()

        # the resent event is there exactly once
        u = inflight["user_id"]
        ws = await tc.connect(gw, u, since=last[u] - 1, epoch=epochs[u], token_last=True)
        frames = await ws.recv_tasks(2)
        await ws.quiet(0.3)
        assert frames == [frame_of(inflight, last[u]),
                          frame_of(event("after", u, "running", ts=TS0 - 1), last[u] + 1)], frames

    tc.run(main)


def test_sigkill_during_compactions_loses_no_acknowledged_event(tc):
    """Compactions every few dozen events (a forked child writes the
    snapshot, the loop copies the tail, both files are written, the new one
    is renamed): the broker is killed while a child runs, or at some moment
    after a compaction finished (perhaps during the next), and every restart
    knows every event acknowledged before."""
    journal = tc.tmp / "journal.bin"
    args = journal_args(journal, "--journal-compact-bytes", "4096", "--history", "4")
    broker = tc.broker(args=args)
    users = ["ka", "kb", "kc"]
    acked, inflight = [], []
    compactions = caught = 0
    for cycle in range(4):
        pub = Publisher(broker.ingest, users, producer=f"kill-{cycle}")
        pub.start()
        deadline = time.monotonic() + 30
        while len(pub.acked) < 150 and pub.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(pub.acked) >= 150 and not pub.errors, (len(pub.acked), pub.errors)
        child = None
        if cycle % 2 == 0:  # while a compaction's child writes
            while time.monotonic() < deadline and not child:
                child = next(iter(children(broker.pid)), None)
        else:  # once one finished, a moment later
            while time.monotonic() < deadline and "journal compacted" not in broker.log():
                time.sleep(0.005)
            time.sleep(0.001 * (cycle * 7 % 20))
        broker.kill()
        pub.halt.set()
        pub.join(10)
        assert not pub.errors, pub.errors
        if child:
            caught += 1
            assert gone(child), f"the compaction's child {child} outlived the broker"
        compactions += broker.log().count("journal compacted")
        acked += pub.acked
        if pub.inflight:
            inflight.append(pub.inflight[0])
        broker = broker.restart(args=args)
        assert not (tc.tmp / "journal.bin.compact").exists()
        assert_has_acked(broker, users, acked, inflight)
    assert caught == 2 and compactions >= 2, (caught, compactions)


@pytest.mark.parametrize("policy", ["batch", "batch:500", "interval:20", "never"])
def test_sigkill_loses_nothing_acknowledged_under_every_fsync_policy(tc, policy):
    """A crash of the broker process (not the machine) loses nothing
    acknowledged: with batch it was on disk, with the others in the page
    cache, which the kernel keeps."""
    journal = tc.tmp / "journal.bin"
    args = journal_args(journal, "--fsync", policy)
    broker = tc.broker(args=args)
    assert f"--fsync {policy}" in broker.log()
    users = ["pa", "pb"]
    pub = Publisher(broker.ingest, users, producer="p-" + policy)
    pub.start()
    deadline = time.monotonic() + 20
    while len(pub.acked) < 200 and pub.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    broker.kill()
    pub.halt.set()
    pub.join(10)
    assert len(pub.acked) >= 200 and not pub.errors, (len(pub.acked), pub.errors)
    broker = broker.restart(args=args)
    assert_has_acked(broker, users, pub.acked, [pub.inflight[0]] if pub.inflight else [])


@pytest.mark.parametrize("value", ["always", "interval:0", "interval:x", "Batch", "",
                                   "batch:10001", "batch:"])
def test_bad_fsync_policy_stops_the_start(tc, value):
    broker = tc.broker(args=journal_args(tc.tmp / "journal.bin", "--fsync", value), wait=False)
    broker.expect_failure = True
    rc = broker.wait_exit()
    assert rc == 2, broker.log()
    assert ("--fsync must be batch, batch:US (US from 0 to 10000), never, interval or "
            "interval:MS") in broker.log(), broker.log()


# ---------------------------------------------------------------- idempotency across a restart


def test_resend_after_restart_is_a_duplicate_with_the_original_seq(tc):
    journal = tc.tmp / "journal.bin"
    broker = tc.broker(args=journal_args(journal))
    w = tc.worker(broker)
    sent = []
    for i in range(6):
        ev = event(f"task{i % 2}", "dup", "running", progress=i, ts=TS0 + i, producer="p-dup",
                   pseq=100 + i)
        raw = msgpack.packb(ev, use_bin_type=True)
        answer = w.send_raw(raw)
        assert answer == {"ok": True, "pseq": 100 + i, "seq": i + 1}, answer
        sent.append((ev, raw, answer["seq"]))
    broker.kill()
    broker2 = broker.restart(args=journal_args(journal))
    w2 = tc.worker(broker2)
    for ev, raw, seq in reversed(sent):
        answer = w2.send_raw(raw)
        assert answer == {"ok": True, "pseq": ev["pseq"], "seq": seq, "duplicate": True}, answer
    # the same pair with other bytes is refused
    ev = dict(sent[0][0], status="failed")
    answer = w2.publish(ev)
    assert answer.get("ok") is False and answer.get("error") == "pseq_reused", answer
    # a new pair goes on from the last seq
    answer = w2.publish(event("task0", "dup", "succeeded", producer="p-dup", pseq=200))
    assert answer == {"ok": True, "pseq": 200, "seq": 7}, answer


def test_torn_journal_tail_is_cut_off_at_start(tc):
    journal = tc.tmp / "journal.bin"
    broker = tc.broker(args=journal_args(journal))
    w = tc.worker(broker)
    raws = []
    for i in range(3):
        ev = event("t", "torn", "running", progress=i, producer="p-torn", pseq=i + 1)
        raws.append(msgpack.packb(ev, use_bin_type=True))
        assert w.send_raw(raws[-1])["seq"] == i + 1
    broker.kill()
    size = journal.stat().st_size
    with open(journal, "ab") as f:  # a record cut short by the crash
        f.write(b"\x80\x00\x00\x00\x01\x02\x03\x04E\x00\x01")
    broker2 = broker.restart(args=journal_args(journal))
    assert "cut off 11 bytes" in broker2.log(), broker2.log()
    assert journal.stat().st_size == size
    w2 = tc.worker(broker2)
    assert w2.send_raw(raws[2]) == {"ok": True, "pseq": 3, "seq": 3, "duplicate": True}
    assert w2.publish_ok(event("t", "torn", "succeeded")) == 4


# ---------------------------------------------------------------- compaction


def test_compaction_keeps_state_history_and_idempotency(tc):
    journal = tc.tmp / "journal.bin"
    args = journal_args(journal, "--journal-compact-bytes", "4096", "--history", "20",
                        "--dedup-window", "64")
    broker = tc.broker(args=args)
    gw = tc.gateway(broker)
    users = ["ca", "cb", "cc"]
    tasks = [f"t{k}" for k in range(8)]
    terminal = {"t6": "succeeded", "t7": "failed"}  # retried, and ending again each time

    async def main():
        epochs = await epochs_of(tc, gw, users)
        w = tc.worker(broker)
        sent = {u: [] for u in users}  # [(ev, seq)]
        raws = []
        total = 0
        # tasks that end (or stall) early: older than the history at the end,
        # so a compaction keeps them as task states, not as history
        for u in users:
            for k, status in enumerate(["succeeded", "running", "cancelled"]):
                ev = event(f"early{k}", u, status, ts=TS0 - 10 + k, producer="p-early",
                           pseq=len(raws) + 1)
                raw = msgpack.packb(ev, use_bin_type=True)
                total += len(raw)
                answer = w.send_raw(raw)
                assert answer.get("ok") is True, answer
                sent[u].append((ev, answer["seq"]))
                raws.append((raw, answer["seq"]))
        for i in range(900):
            u = users[i % 3]
            t = tasks[(i // 3) % 8]
            ev = event(t, u, terminal.get(t, ["queued", "running"][(i // 24) % 2]),
                       progress=i % 101, ts=TS0 + i, producer="p-compact", pseq=i + 1)
            raw = msgpack.packb(ev, use_bin_type=True)
            total += len(raw)
            answer = w.send_raw(raw)
            assert answer.get("ok") is True and not answer.get("duplicate"), answer
            sent[u].append((ev, answer["seq"]))
            raws.append((raw, answer["seq"]))
        compactions = broker.log().count("journal compacted")
        assert compactions >= 3, f"only {compactions} compactions\n{broker.log()[-3000:]}"
        # Compactions run beside ingest: the last one may still be finishing.
        deadline = time.monotonic() + 10
        while (tc.tmp / "journal.bin.compact").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not (tc.tmp / "journal.bin.compact").exists()
        # The journal is at most twice its size after the last compaction
        # (then the next one starts), a fraction of what was written.
        compacted = int(re.findall(r"journal compacted: \d+ -> (\d+) bytes", broker.log())[-1])

        broker.kill()
        broker2 = broker.restart(args=args)
        gw.wait_http("/ready", 200)
        size = journal.stat().st_size
        # (Not "size < total / 2": how much came after the last compaction
        # depends on when the background compactions ran; on a loaded machine
        # the last one may come early and the journal approach 2x its size.)
        assert size <= 2 * compacted + 200 and compacted < total / 2, \
            f"journal {size} bytes for {total} bytes of events (last compacted to {compacted})"

        for u in users:
            evs = sent[u]
            last = evs[-1][1]
            assert last == 303
            ws = await tc.connect(gw, u)
            assert ws.hello["epoch"] == epochs[u]
            snap = await ws.recv_tasks(11)
            await ws.quiet(0.3)
            assert snap == snapshot_of(evs), f"{u}: {snap!r}"
            states = {f["task_id"]: f["status"] for f in snap}
            assert states["t6"] == "succeeded" and states["early0"] == "succeeded", states
            await ws.close()
            # the history holds the last 20: a resume from there is a replay
            ws = await tc.connect(gw, u, since=last - 20, epoch=epochs[u], token_last=True)
            replay = await ws.recv_tasks(20)
            await ws.quiet(0.3)
            assert replay == [frame_of(ev, seq) for ev, seq in evs[-20:]], f"{u}: {replay!r}"
            await ws.close()
            # one further back is not in the history: a snapshot (the gateway
            # leaves out the tasks unchanged since the client's `since`)
            ws = await tc.connect(gw, u, since=last - 21, epoch=epochs[u], token_last=True)
            want = [f for f in snapshot_of(evs) if f["seq"] > last - 21]
            assert len(want) == 8
            snap2 = await ws.recv_tasks(8)
            await ws.quiet(0.3)
            assert snap2 == want, f"{u}: {snap2!r}"
            await ws.close()

        w2 = tc.worker(broker2)
        # the newest pairs are still known
        for raw, seq in raws[-40:]:
            answer = w2.send_raw(raw)
            assert answer.get("duplicate") is True and answer["seq"] == seq, answer
        for u in users:
            assert w2.publish_ok(event("t0", u, "running", ts=TS0)) == 304

    tc.run(main)


# ---------------------------------------------------------------- refusals at start


def test_second_broker_on_the_same_journal_is_refused(tc):
    journal = tc.tmp / "journal.bin"
    broker = tc.broker(args=journal_args(journal))
    w = tc.worker(broker)
    assert w.publish_ok(event("t", "lock", "running")) == 1
    before = journal.read_bytes()
    second = tc.broker(args=journal_args(journal), wait=False)  # other ports
    second.expect_failure = True
    rc = second.wait_exit()
    assert rc != 0, second.log()
    assert "in use by another broker" in second.log(), second.log()
    assert str(journal) in second.log()
    assert journal.read_bytes() == before
    # the first one goes on, undisturbed
    assert broker.alive()
    assert w.publish_ok(event("t", "lock", "succeeded")) == 2


def test_garbage_journal_refuses_the_start_and_stays_untouched(tc):
    journal = tc.tmp / "journal.bin"
    garbage = b"# not a journal\n" + bytes(range(256)) * 8 + b"TCJ1\n\0\0\0"
    journal.write_bytes(garbage)
    broker = tc.broker(args=journal_args(journal), wait=False)
    broker.expect_failure = True
    rc = broker.wait_exit()
    assert rc != 0, broker.log()
    assert "not a taskcast journal" in broker.log(), broker.log()
    assert journal.read_bytes() == garbage
    assert not (tc.tmp / "journal.bin.compact").exists()
