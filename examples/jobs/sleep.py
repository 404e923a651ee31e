#!/usr/bin/python3
"""A per-job child that sleeps args.seconds (default 60) and then succeeds.
With args.ignore_term it ignores SIGTERM (only SIGKILL stops it)."""
import json
import signal
import sys
import time

job = json.loads(sys.stdin.readline())
args = job.get("args") or {}
if args.get("ignore_term"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(json.dumps({"progress": 0, "message": "sleeping"}), flush=True)
time.sleep(float(args.get("seconds", 60)))
print(json.dumps({"result": "slept"}), flush=True)
