"""A DAG for tests/test_task_isolation_real.py: its task reports what task code can see.

It reads its whole environment and every file it can read in its container's filesystem (in the
tests, the folders in ISOLATION_PROBE_PATHS stand for it: the image's and the container's mounts), and
writes that to $TMPDIR/isolation-report.json. The test then looks for the stack's secret values there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

with DAG(
    dag_id="isolation_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
):

    @task
    def look_around() -> str:
        files: dict[str, str] = {}
        for root in os.environ["ISOLATION_PROBE_PATHS"].split(os.pathsep):
            for path in [Path(root), *Path(root).rglob("*")]:
                try:
                    if path.is_file() and path.stat().st_size < 1_000_000:
                        files[str(path)] = path.read_text(errors="replace")
                except OSError:
                    continue  # not readable by task code: not visible
        report = {"environment": dict(os.environ), "files": files}
        (Path(os.environ["TMPDIR"]) / "isolation-report.json").write_text(json.dumps(report))
        return "looked"

    look_around()
