#!/usr/bin/python3
"""A per-job child for taskcast-worker: reads its job (one JSON line) from
stdin, reports progress as JSON lines on stdout, ends with a result.

args: {"steps": N (default 3), "delay": seconds between steps (default 0),
       "exit": status to exit with at the end (default 0),
       "stderr_lines"/"stderr_width": that many stderr lines of about that width}
"""
import json
import os
import sys
import time

job = json.loads(sys.stdin.readline())
args = job.get("args") or {}
steps = int(args.get("steps", 3))
for i in range(1, steps + 1):
    time.sleep(float(args.get("delay", 0)))
    print(json.dumps({"progress": round(100 * i / steps), "message": f"step {i}/{steps}"}),
          flush=True)
print("a line on stderr from render.py", file=sys.stderr, flush=True)
for i in range(int(args.get("stderr_lines", 0))):  # a noisy child
    print(f"noise {i} " + "n" * int(args.get("stderr_width", 0)), file=sys.stderr)
sys.stderr.flush()
print(json.dumps({"result": {"task_id": job["task_id"], "steps": steps, "args": args,
                             "pid": os.getpid()}}), flush=True)
sys.exit(int(args.get("exit", 0)))
