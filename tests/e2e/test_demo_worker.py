"""taskcast-demo-worker (examples/demo_worker.c) against a real broker,
gateway and taskcast-worker pool, watched by a real WebSocket client.

- --mode jobs (the default, what scripts/demo.sh and compose.yaml run): the
  demo user's tasks are real jobs: submitted with tc_submit(), run by the pool
  (render and thumb from examples/jobs), seen queued -> running -> succeeded
  with the child's result; without a pool they stay queued.
- --mode fake: the old fake events, with no pool at all.
"""
import collections
import time

from conftest import BIN, Proc, clean_env, uid

DEMO_BIN = BIN / "taskcast-demo-worker"


def demo_worker(tc, broker, user, *args):
    assert DEMO_BIN.exists(), f"{DEMO_BIN} is not built (set TASKCAST_BUILD_DIR)"
    return Proc(tc, "demo-worker", [DEMO_BIN, "--user", user, "--jobs", broker.jobs,
                                    "--ingest", broker.ingest, "--log-level", "debug", *args],
                clean_env())


def test_jobs_mode_makes_real_jobs_that_the_pool_runs(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    tc.pool(broker, "pool-a", concurrency=4, args=["--grace-s", "1"])  # a quick teardown
    user = uid("demo")

    async def main():
        ws = await tc.connect(gw, user)
        demo = demo_worker(tc, broker, user, "--every-ms", "300")  # no --mode: the default
        seen = collections.defaultdict(list)  # task_id -> its frames
        succeeded = []
        deadline = time.monotonic() + 40
        while len(succeeded) < 3:
            assert time.monotonic() < deadline, \
                f"{len(succeeded)} tasks succeeded within 40 s: {dict(seen)!r}\n{demo.log()}"
            f = await ws.recv_task(timeout=10)
            seen[f["task_id"]].append(f)
            if f["status"] == "succeeded":
                succeeded.append(f["task_id"])
        for tid in succeeded:
            frames = seen[tid]
            statuses = [f["status"] for f in frames]
            assert statuses[0] == "queued" and "running" in statuses, (tid, statuses)
            last = frames[-1]
            # a job's events (docs/protocol.md 6): kind, attempt, and the
            # result the example child printed
            assert last["data"]["kind"] in ("render", "thumb"), last
            assert last["data"]["attempt"] == 1, last
            assert last["data"]["result"]["task_id"] == tid, last
            assert tid.startswith(last["data"]["kind"] + "-"), last
            if last["data"]["kind"] == "render":
                steps = last["data"]["result"]["steps"]
                progress = [f["progress"] for f in frames if "progress" in f]
                assert len(progress) == steps and progress[-1] == 100, (steps, frames)
        assert "job submitted: task=" in demo.log(), demo.log()

    tc.run(main)


def test_jobs_mode_without_a_pool_leaves_its_jobs_queued(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid("demo")

    async def main():
        ws = await tc.connect(gw, user)
        demo = demo_worker(tc, broker, user, "--mode", "jobs", "--every-ms", "200")
        frames = await ws.recv_tasks(3, timeout=15)
        assert [f["status"] for f in frames] == ["queued"] * 3, frames
        assert len({f["task_id"] for f in frames}) == 3, frames
        more = []  # more submits come for 1.5 s: queued ones only
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            more.append(await ws.recv(timeout=5))
        assert len(more) >= 3, more
        assert all(f.get("status") == "queued" for f in more), more
        assert "job submitted: task=" in demo.log()

    tc.run(main)


def test_fake_mode_publishes_fake_tasks_without_a_pool(tc):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid("demo")

    async def main():
        ws = await tc.connect(gw, user)
        demo_worker(tc, broker, user, "--mode", "fake", "--tasks", "2", "--step-ms", "50")
        frames = await ws.collect(lambda f: f.get("status") in ("succeeded", "failed"),
                                  timeout=20)
        last = frames[-1]
        mine = [f["status"] for f in frames if f["task_id"] == last["task_id"]]
        assert mine[0] == "queued" and "running" in mine, mine
        assert "attempt" not in last.get("data", {}), last  # not a job

    tc.run(main)
