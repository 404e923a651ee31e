"""The Celery side of bench/jobs.py: the same trivial job as taskcast's
(bench/jobs/trivial.py), on Redis as broker and result backend.

The worker: CELERY_BROKER=redis://127.0.0.1:PORT/0 /usr/bin/python3 -m celery
-A tasks worker --pool prefork --concurrency N (run from this directory).
"""
import os
import time

from celery import Celery

_url = os.environ.get("CELERY_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("taskcast_bench", broker=_url, backend=_url)
app.conf.update(
    task_serializer="json", result_serializer="json", accept_content=["json"],
    worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
)


@app.task(name="trivial")
def trivial(i):
    return i + 1


@app.task(name="stamped")
def stamped(i):
    """The trivial job, answering when it started (CLOCK_MONOTONIC, the
    clock the client timed the submit with): submit -> running."""
    return time.monotonic_ns()
