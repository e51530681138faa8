"""One control plane that several real test modules watch without changing it: the metrics tests
(tests/test_metrics_real.py) read what its components sent to the real statsd_exporter, the PgBouncer tests
(tests/test_pgbouncer_real.py) what PostgreSQL and PgBouncer carried while it ran.

Starting Airflow's api-server, dag-processor, scheduler and triggerer costs about 25 s of CPU, and a DAG
run about half a minute more. So the stack has both features on (metrics with its alerts and dashboard,
and PgBouncer), its components start once per test session and run two DAGs side by side:

* ``metrics_probe``: one task succeeds, one fails, one defers to the triggerer; beside it a DAG file that
  fails to import;
* ``connection_load`` (tests/pgbouncer_server.py): eight mapped tasks that each take a moment, while
  pg_stat_activity and PgBouncer's SHOW SERVERS / SHOW CLIENTS are sampled.

``MODULES`` run on one pytest-xdist worker (tests/conftest.py), so the session fixture starts once.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg2
import pytest

from components.airflow_pods import dag_sources
from components.config import names
from components.observability import mapping, metrics
from tests import airflow_stack, pgbouncer_server, statsd_exporter
from tests.local_pod import copy_migrated_database, run_migration_step
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret, evaluate_ok

MODULES = ("tests/test_metrics_real.py", "tests/test_pgbouncer_real.py")
"""The modules that share the session's observed control plane (one xdist scope)."""

DATABASE = "observed"
POOL_SIZE = 5

METRICS_DAG_ID = "metrics_probe"
METRICS_DAG_FILE = f'''"""tests/observed_stack.py: one task succeeds, one fails, one defers to the triggerer."""

from __future__ import annotations

import datetime

import pendulum
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, task

with DAG(dag_id="{METRICS_DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):

    @task
    def succeed() -> int:
        return 1

    @task(retries=0)
    def fail() -> None:
        raise RuntimeError("metrics probe: this task fails on purpose")

    succeed()
    fail()
    TimeDeltaSensor(task_id="defer", delta=datetime.timedelta(seconds=2), deferrable=True)
'''
# The dag-processor parses only files that mention both "airflow" and "dag" (safe mode).
BROKEN_DAG_FILE = "from airflow.sdk import DAG\n\nraise ImportError('metrics probe: a DAG file that fails')\n"

# prod's alert rules include the Celery backlog rule; this stack's pods are the dev stack's
STACK_CONFIG: dict[str, Any] = {
    "database": {"databaseName": DATABASE},
    "metrics": {"enabled": True},
    "alerts": {"enabled": True},
    "dashboard": {"enabled": True},
    "pgbouncer": {"enabled": True, "replicas": 1, "poolSize": POOL_SIZE},
}


@dataclass
class Observed:
    evaluation: Evaluation
    exporter: statsd_exporter.StatsdExporter
    """Still running: it keeps every metric the components sent."""
    bouncer: pgbouncer_server.PgBouncerServer
    """Still running, in front of the test's PostgreSQL."""
    metrics_run_state: str
    load_run_state: str
    backends: pgbouncer_server.Sampler
    """pg_stat_activity's client backends on the metadata database, sampled while both DAGs ran."""
    servers: pgbouncer_server.Sampler
    """PgBouncer's server connections, sampled while both DAGs ran."""
    clients: pgbouncer_server.Sampler
    """PgBouncer's client connections to the metadata database, sampled while both DAGs ran."""


def render(dags: Path) -> Evaluation:
    (dags / f"{METRICS_DAG_ID}.py").write_text(METRICS_DAG_FILE)
    (dags / "broken.py").write_text(BROKEN_DAG_FILE)
    (dags / f"{pgbouncer_server.DAG_ID}.py").write_text(pgbouncer_server.DAG_FILE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dag_sources, "REPOSITORY_DAGS", dags)
        return evaluate_ok("dev", **STACK_CONFIG)


def pooled_login(evaluation: Evaluation) -> dict[str, str]:
    """The user and password Airflow's pooled URL logs in to PgBouncer with."""
    pooled = urlsplit(decoded_secret(evaluation, names.METADATA_SECRET)[names.METADATA_POOLED_CONNECTION_KEY])
    return {"user": unquote(pooled.username or ""), "password": unquote(pooled.password or "")}


def console_connection(bouncer: pgbouncer_server.PgBouncerServer, evaluation: Evaluation) -> Any:
    """A connection to PgBouncer's admin console, as the stack's user (its stats_users)."""
    return psycopg2.connect(host="127.0.0.1", port=bouncer.port, dbname="pgbouncer", **pooled_login(evaluation))


def sample_names(exporter: statsd_exporter.StatsdExporter) -> set[str]:
    return {sample.name for family in exporter.scrape() for sample in family.samples}


def start_exporter(evaluation: Evaluation) -> statsd_exporter.StatsdExporter:
    rendered = evaluation.find("ConfigMap", names.STATSD)["data"][metrics.MAPPING_FILE]
    try:
        return statsd_exporter.start(rendered)
    except statsd_exporter.BinariesMissing as missing:
        if os.environ.get("AIRFLOW_K8S_REQUIRE_REAL_TIERS"):
            raise
        pytest.skip(str(missing))


def start_bouncer(evaluation: Evaluation, postgres: PostgresServer) -> pgbouncer_server.PgBouncerServer:
    try:
        pgbouncer_server.binary()
    except pgbouncer_server.BinaryMissing as missing:
        if os.environ.get("AIRFLOW_K8S_REQUIRE_REAL_TIERS"):
            raise
        pytest.skip(str(missing))
    # the migration step, for real: it connects directly and gives the role PgBouncer's SCRAM verifier
    migrated = run_migration_step(evaluation, postgres, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return pgbouncer_server.start(evaluation, postgres.port)


def referenced_metrics(evaluation: Evaluation) -> set[str]:
    """Every metric an alert or a panel names (histograms by their sample names, e.g. ``_bucket``)."""
    rules = evaluation.find("ConfigMap", names.ALERT_RULES)["data"][names.ALERT_RULES_KEY]
    panels = evaluation.find("ConfigMap", names.DASHBOARD)["data"][names.DASHBOARD_KEY]
    return set(re.findall(r"\bairflow_[a-z0-9_]+", rules + panels))


SENT_ONLY_AT_TIMES = {"airflow_job_end_total", *(f"airflow_ti_{state}" for state in mapping.TI_STATE_GAUGES)}
"""Mapped metrics a run need not show: job_end is sent when a process stops; a ti.<state> gauge only when
the scheduler's 30 s count finds a task instance in that state (``airflow_ti_queued`` was seen here, with
its queue, dag_id and task_id labels, when the PgBouncer DAG's tasks waited)."""


def never_sent(exporter: statsd_exporter.StatsdExporter) -> list[str]:
    """Mapped metrics the exporter has not seen, but for SENT_ONLY_AT_TIMES."""
    exposed = exporter.types()
    missing = {mapped.prometheus_name for mapped in mapping.METRICS if mapped.prometheus_name not in exposed}
    return sorted(missing - SENT_ONLY_AT_TIMES)


def metrics_complete(evaluation: Evaluation, exporter: statsd_exporter.StatsdExporter) -> bool:
    """Every metric the metrics tests read is in (some come on their own period: the dag-processor's
    per-file stats, the import error count after a full parse loop)."""
    return (
        referenced_metrics(evaluation) <= sample_names(exporter)
        and not never_sent(exporter)
        and exporter.samples("airflow_dag_processing_import_errors") == [({}, 1.0)]
    )


@contextmanager
def observed(postgres: PostgresServer, dags: Path) -> Iterator[Observed]:
    """Runs both DAGs to their end on the stack's components and waits, bounded, until the metrics are
    complete; then stops the components and yields what was observed. The exporter and PgBouncer run
    until the context ends."""
    evaluation = render(dags)
    copy_migrated_database(evaluation, postgres, with_admin=True)
    with ExitStack() as servers:
        exporter = servers.enter_context(start_exporter(evaluation))
        bouncer = start_bouncer(evaluation, postgres)
        servers.callback(bouncer.stop)
        database = pgbouncer_server.KeptConnection(lambda: postgres.connect(DATABASE))
        console = pgbouncer_server.KeptConnection(lambda: console_connection(bouncer, evaluation))
        servers.callback(database.close)
        servers.callback(console.close)
        backends = pgbouncer_server.Sampler(lambda: int(database.rows(pgbouncer_server.BACKENDS)[0]["count"]))
        servers_sampler = pgbouncer_server.Sampler(lambda: len(console.rows("SHOW SERVERS")))
        clients = pgbouncer_server.Sampler(
            lambda: sum(1 for c in console.rows("SHOW CLIENTS") if c["database"] == DATABASE)
        )
        with (
            airflow_stack.components_running(
                evaluation, postgres, statsd_port=exporter.statsd_port, pgbouncer_port=bouncer.port
            ) as (base, headers, _),
            backends.running(),
            servers_sampler.running(),
            clients.running(),
        ):
            with ThreadPoolExecutor(2) as runs:
                metrics_run = runs.submit(airflow_stack.run_dag, base, headers, METRICS_DAG_ID, 300)
                load_run = runs.submit(airflow_stack.run_dag, base, headers, pgbouncer_server.DAG_ID, 300)
                metrics_state, load_state = metrics_run.result(), load_run.result()
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not metrics_complete(evaluation, exporter):
                time.sleep(1)
        yield Observed(evaluation, exporter, bouncer, metrics_state, load_state, backends, servers_sampler, clients)
