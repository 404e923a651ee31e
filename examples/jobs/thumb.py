#!/usr/bin/python3
"""A kept child for taskcast-worker: takes one job JSON line after another
on stdin; answers progress lines and ends each job with one result line
(or an error line when args has "fail"). Its pid in the result shows that
the same process took several jobs."""
import json
import os
import sys
import time

for line in sys.stdin:
    job = json.loads(line)
    args = job.get("args") or {}
    print(json.dumps({"progress": 50, "message": "halfway"}), flush=True)
    time.sleep(float(args.get("delay", 0)))
    if args.get("fail"):
        print(json.dumps({"error": str(args["fail"])}), flush=True)
    else:
        print(json.dumps({"result": {"pid": os.getpid(), "task_id": job["task_id"]}}),
              flush=True)
