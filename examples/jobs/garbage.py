#!/usr/bin/python3
"""A per-job child that writes a line that is not a JSON object
(args.mode: "text" (default), "array", "long" (over 64 KiB)), then sleeps."""
import json
import sys
import time

job = json.loads(sys.stdin.readline())
mode = (job.get("args") or {}).get("mode", "text")
if mode == "array":
    print("[1, 2, 3]", flush=True)
elif mode == "long":
    print(json.dumps({"message": "x" * 70000}), flush=True)
else:
    print("this is not json", flush=True)
time.sleep(60)
