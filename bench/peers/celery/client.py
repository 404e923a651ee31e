#!/usr/bin/python3
"""Submits trivial Celery jobs and times them; prints one JSON object shaped
like tc-jobs' report (bench/src/jobs_main.c), one line on stderr.

  client.py --count N [--rate R]   (CELERY_BROKER as for tasks.py)

--rate 0 submits every job at once (apply_async in a loop); --rate R on a
fixed schedule, "stamped" jobs, which return when they started (CLOCK_
MONOTONIC): submit -> running is that minus the submit time. A job is done
when its result is in the backend: the client polls the result keys (MGET)
and takes each one's date_done, so that how fast this client could read
results one by one (AsyncResult.get: ~1 ms each here) does not limit
Celery. jobs/s is count / (last date_done - first submit).
"""
import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402


def pct(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def hist(ns):
    ms = [v / 1e6 for v in ns]
    if not ms:
        return {"count": 0}
    return {"count": len(ms), "mean": round(sum(ms) / len(ms), 4),
            "p50": round(pct(ms, 50), 4), "p90": round(pct(ms, 90), 4),
            "p99": round(pct(ms, 99), 4), "p999": round(pct(ms, 99.9), 4),
            "max": round(max(ms), 4), "min": round(min(ms), 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    task = tasks.stamped if a.rate > 0 else tasks.trivial
    # one round trip first: connections are made before the clock starts
    task.apply_async((0,)).get(timeout=30)
    cpu0 = time.process_time()
    t_sub, results = [], []
    t0 = time.monotonic_ns()
    for i in range(a.count):
        if a.rate > 0:
            due = t0 + int(i * 1e9 / a.rate)
            while True:
                left = due - time.monotonic_ns()
                if left <= 0:
                    break
                time.sleep(left / 1e9)
        t_sub.append(time.monotonic_ns())
        results.append(task.apply_async((i,)))
    t_last_submit = time.monotonic_ns()
    # wall clock of the first submit, to compare with the results' date_done
    wall0 = time.time() - (time.monotonic_ns() - t0) / 1e9
    to_done, to_running, values = [None] * a.count, [], {}
    client = tasks.app.backend.client
    keys = [f"celery-task-meta-{r.id}".encode() for r in results]
    pending = list(range(a.count))
    end = time.monotonic() + a.timeout
    while pending and time.monotonic() < end:
        left = []
        for at in range(0, len(pending), 1000):
            chunk = pending[at:at + 1000]
            for i, raw in zip(chunk, client.mget([keys[i] for i in chunk])):
                if raw is None:
                    left.append(i)
                    continue
                meta = json.loads(raw)
                done_at = datetime.datetime.fromisoformat(meta["date_done"]).replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                # date_done is wall clock: the job's done time on the monotonic clock
                done_ns = t0 + int((done_at - wall0) * 1e9)
                to_done[i] = max(0, done_ns - t_sub[i])
                values[i] = meta.get("result") if meta.get("status") == "SUCCESS" else None
        pending = left
        if pending:
            time.sleep(0.02)
    done = [d for d in to_done if d is not None]
    t_last = max(t_sub[i] + d for i, d in enumerate(to_done) if d is not None) if done else t0
    ok = sum(1 for i, v in values.items() if (v == i + 1 if a.rate == 0 else isinstance(v, int)))
    if a.rate > 0:
        to_running = [values[i] - t_sub[i] for i in values if isinstance(values[i], int)]
    cpu = time.process_time() - cpu0
    done_s = (t_last - t0) / 1e9
    submit_s = (t_last_submit - t0) / 1e9
    wall = (time.monotonic_ns() - t0) / 1e9
    rep = {"tool": "celery-client", "count": a.count, "offered_rate": a.rate,
           "submitted": a.count, "succeeded": ok, "failed": a.count - ok,
           "unfinished": a.count - len(done), "submit_s": round(submit_s, 3),
           "done_s": round(done_s, 3),
           "submit_rate": round(a.count / submit_s, 1) if submit_s else 0,
           "jobs_per_s": round(len(done) / done_s, 1) if done_s else 0,
           "to_running_ms": hist(to_running), "to_done_ms": hist(done),
           "running_from": "the task's own start (time.monotonic_ns() in the task)",
           "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
           "cpu_pct": round(100 * cpu / wall, 1) if wall else 0}
    print(json.dumps(rep))
    print(f"celery-client: {a.count} jobs, {ok} succeeded in {done_s:.2f} s "
          f"({rep['jobs_per_s']:.0f} jobs/s); submit->running ms p50 "
          f"{rep['to_running_ms'].get('p50', 0)} p99 {rep['to_running_ms'].get('p99', 0)}; "
          f"submit->done ms p50 {rep['to_done_ms'].get('p50', 0)} p99 "
          f"{rep['to_done_ms'].get('p99', 0)}", file=sys.stderr)
    return 0 if ok == a.count else 1


if __name__ == "__main__":
    sys.exit(main())
