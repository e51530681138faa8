"""The task log server beside a Celery worker, in a container of its own.

The api-server fetches a running task's log from the pod that runs it, with a token signed by the API
secret key; this server checks that token, so it needs the key. Running it apart from the worker
(`airflow celery worker --skip-serve-logs`) keeps the key out of the container where task code runs.
It reads the shared logs volume, mounted read-only here.
"""

from __future__ import annotations

from airflow.utils.serve_logs import serve_logs  # pyright: ignore[reportUnknownVariableType]

if __name__ == "__main__":
    serve_logs()
