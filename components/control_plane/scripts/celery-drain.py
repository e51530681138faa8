"""preStop hook of a Celery worker: stop taking new tasks, then wait for the running ones to finish.

Kubernetes runs this before it sends SIGTERM, within terminationGracePeriodSeconds. Scaling a worker
set down (KEDA) or rolling it therefore never kills a running task: the worker first leaves its
queues, then this hook waits until it reports no active task, and only then does the worker stop.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any


def active_tasks(app: Any, destination: list[str]) -> int | None:
    """How many tasks the worker is running; None when it did not answer."""
    replies = app.control.inspect(destination=destination, timeout=10).active()
    if not replies:
        return None
    return sum(len(tasks) for tasks in replies.values())


def drain(app: Any, worker: str, queues: list[str], deadline_seconds: float, poll_seconds: float = 10) -> bool:
    destination = [worker]
    for queue in queues:
        app.control.cancel_consumer(queue, destination=destination, reply=True, timeout=10)
        print(f"celery-drain: {worker} stopped consuming {queue!r}", flush=True)
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        running = active_tasks(app, destination)
        if running == 0:
            print(f"celery-drain: {worker} has no running task", flush=True)
            return True
        # No answer is not "idle": keep waiting rather than risk killing a task.
        print(f"celery-drain: waiting for {running if running is not None else 'unknown'} running task(s)", flush=True)
        time.sleep(poll_seconds)
    print(f"celery-drain: still busy after {deadline_seconds:.0f}s", file=sys.stderr, flush=True)
    return False


def main() -> int:
    from airflow.providers.celery.executors.celery_executor import app  # pyright: ignore[reportAttributeAccessIssue]

    queues = [q for q in os.environ["AIRFLOW_K8S_WORKER_QUEUES"].split(",") if q]
    deadline = float(os.environ["AIRFLOW_K8S_DRAIN_SECONDS"])
    return 0 if drain(app, f"celery@{socket.gethostname()}", queues, deadline) else 1


if __name__ == "__main__":
    sys.exit(main())
