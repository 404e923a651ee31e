#!/usr/bin/python3
"""The benchmark's trivial job as a kept taskcast-worker child: one job JSON
line in, one result line out ({"result": args["i"] + 1}). Celery runs the
same function (bench/peers/celery/tasks.py)."""
import json
import sys


def trivial(i):
    return i + 1


def main():
    out = sys.stdout
    for line in sys.stdin:
        job = json.loads(line)
        out.write(json.dumps({"result": trivial((job.get("args") or {}).get("i", 0))}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
