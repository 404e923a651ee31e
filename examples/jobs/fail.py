#!/usr/bin/python3
"""A per-job child that reports some progress and exits with status 3."""
import json
import sys

sys.stdin.readline()
print(json.dumps({"progress": 10}), flush=True)
sys.exit(3)
