"""taskcast-cli: stats (the broker's counters over its sync endpoint, a
gateway's status with an admin token minted from the secret) and watch
--count (the other commands are exercised in test_workers.py and
test_config.py)."""
import json

from conftest import SECRET, event


def stats(tc, broker):
    p = tc.cli("stats", "--sync", broker.sync)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_stats_reports_the_brokers_counters(tc):
    broker = tc.broker()
    before = stats(tc, broker)  # the harness's readiness probe may have counted
    w = tc.worker(broker)
    for i in range(3):
        w.publish_ok(event(f"t{i}", "2"))
    w.send_raw(b"\xc1")  # one rejection
    after = stats(tc, broker)
    assert after["accepted"] - before["accepted"] == 3, (before, after)
    assert after["rejected"] - before["rejected"] == 1, (before, after)
    assert after["users"] == 1 and after["tasks"] == 3, after
    assert after["epoch"] == before["epoch"] and after["boot"], after
    assert "journal_bytes" not in after and "journal_fsyncs" not in after, after


def test_stats_with_a_journal_counts_its_size_and_syncs(tc):
    broker = tc.broker(args=["--journal", str(tc.tmp / "journal.bin")])
    before = stats(tc, broker)
    w = tc.worker(broker)
    for i in range(3):
        w.publish_ok(event(f"t{i}", "2"))  # each ok waits for a sync (--fsync batch)
    after = stats(tc, broker)
    assert after["journal_bytes"] > before["journal_bytes"], (before, after)
    assert 1 <= after["journal_fsyncs"] - before["journal_fsyncs"], (before, after)


def test_stats_of_a_gateway_uses_an_admin_token(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    p = tc.cli("stats", "--url", f"http://127.0.0.1:{gw.port}",
               env={"TASKCAST_JWT_SECRET": SECRET})
    assert p.returncode == 0, p.stderr
    status = json.loads(p.stdout)
    assert status["role"] == "admin" and status["broker"]["up"] is True, status


def test_stats_without_a_broker_times_out_with_status_3(tc):
    p = tc.cli("stats", "--sync", "tcp://127.0.0.1:1", "--timeout-ms", "300")
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "no answer" in p.stderr


def test_watch_count_prints_exactly_that_many_task_frames(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    w = tc.worker(broker)
    for i in range(5):  # five tasks: a snapshot of five frames arrives at once
        w.publish_ok(event(f"t{i}", "2"))
    p = tc.cli("watch", "--user", "2", "--url", f"ws://127.0.0.1:{gw.port}", "--count", "2",
               "--timeout", "10", env={"TASKCAST_JWT_SECRET": SECRET})
    assert p.returncode == 0, p.stderr
    frames = [json.loads(line) for line in p.stdout.splitlines()]
    assert [f["type"] for f in frames] == ["hello", "task", "task"], frames
    assert [f["task_id"] for f in frames[1:]] == ["t0", "t1"], frames
