"""Database hygiene for real: the CronJob's own pod, run against a migrated PostgreSQL with old and new rows.

The job runs as the rendered CronJob describes it (its wait-for-migrations step, then `db-clean.sh` with
the database URL from the mounted Secret file); it must delete exactly the rows older than the
configured retention, and leave no archive tables behind.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.config import names
from tests.local_pod import LocalPod, copy_migrated_database
from tests.postgres_server import PostgresServer
from tests.support import containers, env_of, evaluate_ok
from tools.mock_engine import reveal

pytestmark = pytest.mark.real

DATABASE = "dbclean"
RETENTION_DAYS = 30


def job_pod(stack: Any, postgres: PostgresServer) -> LocalPod:
    cron = reveal(stack.find("CronJob", names.DATABASE_CLEANUP))
    template = cron["spec"]["jobTemplate"]["spec"]["template"]
    manifest = {
        "metadata": {**cron["metadata"], "namespace": cron["metadata"]["namespace"]},
        "spec": {"template": template},
    }
    return LocalPod(stack, "CronJob", names.DATABASE_CLEANUP, postgres.port, manifest=manifest)


def count(postgres: PostgresServer, statement: str) -> int:
    return int(postgres.sql(statement, DATABASE).strip("[](),"))


def test_db_clean_deletes_exactly_the_rows_older_than_the_retention(postgres: PostgresServer) -> None:
    stack = evaluate_ok(
        "dev",
        database={"storageSize": "1Gi", "databaseName": DATABASE},
        databaseCleanup={"enabled": True, "retentionDays": RETENTION_DAYS},
    )
    copy_migrated_database(stack, postgres)
    for age in (400, 31, 29, 1):
        postgres.sql(
            f"INSERT INTO log (dttm, event, owner) VALUES (now() - interval '{age} days', 'age-{age}', 'test')",
            DATABASE,
        )
        postgres.sql(
            "INSERT INTO job (dag_id, state, job_type, start_date, end_date, latest_heartbeat, hostname, unixname) "
            f"VALUES ('d', 'success', 'SchedulerJob', now() - interval '{age} days', now() - interval '{age} days', "
            f"now() - interval '{age} days', 'h-{age}', 'u')",
            DATABASE,
        )
    [clean] = containers(reveal(stack.find("CronJob", names.DATABASE_CLEANUP)["spec"]["jobTemplate"]))
    assert env_of(clean)[names.AirflowEnv.DB_CLEAN_RETENTION_DAYS] == str(RETENTION_DAYS)

    pod = job_pod(stack, postgres)
    try:
        for step in ("wait-for-migrations", "db-clean"):
            result = pod.run(step, timeout=600)
            assert result.returncode == 0, (step, result.stdout[-2000:], result.stderr[-3000:])
    finally:
        pod.stop()

    kept_events = postgres.sql("SELECT event FROM log WHERE event LIKE 'age-%' ORDER BY event", DATABASE)
    assert kept_events == "[('age-1',), ('age-29',)]"
    kept_jobs = postgres.sql("SELECT hostname FROM job WHERE hostname LIKE 'h-%' ORDER BY hostname", DATABASE)
    assert kept_jobs == "[('h-1',), ('h-29',)]"
    # --skip-archive: nothing copied aside, so the database really shrinks
    assert count(postgres, "SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_airflow\\_deleted\\_\\_%'") == 0
