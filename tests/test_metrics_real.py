"""Metrics, proven end to end with real components: Airflow 3.3's api-server, dag-processor, scheduler and
triggerer, each run from its rendered pod (environment, arguments, mounted files), send StatsD to the real
statsd_exporter 0.30.0 (the version the stack deploys) running the mapping file the stack renders.

A DAG runs with a task that succeeds, one that fails and one that defers to the triggerer, beside a DAG
file that fails to import. Then every metric an alert rule or a dashboard panel names is on the
exporter's /metrics, with the labels the rules and panels group by, and no metric name carries a DAG id.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from components.airflow_pods import dag_sources
from components.config import names
from components.observability import mapping, metrics
from tests import airflow_stack, statsd_exporter
from tests.local_pod import copy_migrated_database
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, evaluate_ok

pytestmark = pytest.mark.real

DAG_ID = "metrics_probe"
DAG_FILE = f'''"""tests/test_metrics_real.py: one task succeeds, one fails, one defers to the triggerer."""

from __future__ import annotations

import datetime

import pendulum
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, task

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):

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

ALERTING_CONFIG = {"metrics": {"enabled": True}, "alerts": {"enabled": True}, "dashboard": {"enabled": True}}
SAMPLE_SUFFIXES = ("_bucket", "_count", "_sum")


@dataclass
class Ran:
    evaluation: Evaluation
    exporter: statsd_exporter.StatsdExporter
    run_state: str


def referenced_metrics(evaluation: Evaluation) -> set[str]:
    """Every metric an alert or a panel names (histograms by their sample names, e.g. ``_bucket``)."""
    rules = evaluation.find("ConfigMap", names.ALERT_RULES)["data"][names.ALERT_RULES_KEY]
    panels = evaluation.find("ConfigMap", names.DASHBOARD)["data"][names.DASHBOARD_KEY]
    return set(re.findall(r"\bairflow_[a-z0-9_]+", rules + panels))


def sample_names(exporter: statsd_exporter.StatsdExporter) -> set[str]:
    return {sample.name for family in exporter.scrape() for sample in family.samples}


@pytest.fixture(scope="module")
def exporter(stack: Evaluation) -> Iterator[statsd_exporter.StatsdExporter]:
    rendered = stack.find("ConfigMap", names.STATSD)["data"][metrics.MAPPING_FILE]
    try:
        running = statsd_exporter.start(rendered)
    except statsd_exporter.BinariesMissing as missing:
        if os.environ.get("AIRFLOW_K8S_REQUIRE_REAL_TIERS"):
            raise
        pytest.skip(str(missing))
    with running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    folder = tmp_path_factory.mktemp("dags")
    (folder / f"{DAG_ID}.py").write_text(DAG_FILE)
    (folder / "broken.py").write_text(BROKEN_DAG_FILE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dag_sources, "REPOSITORY_DAGS", folder)
        # prod's alert rules include the Celery backlog rule; this stack's pods are the dev stack's
        return evaluate_ok("dev", database={"databaseName": "metrics"}, **ALERTING_CONFIG)


@pytest.fixture(scope="module")
def ran(postgres: PostgresServer, stack: Evaluation, exporter: statsd_exporter.StatsdExporter) -> Iterator[Ran]:
    copy_migrated_database(stack, postgres)
    with airflow_stack.components_running(stack, postgres, statsd_port=exporter.statsd_port) as (base, headers, _):
        state = airflow_stack.run_dag(base, headers, DAG_ID, timeout=300)
        # Some metrics come on their own period (the dag-processor's per-file stats, the import error
        # count after a full parse loop): wait, bounded, until all are in
        wanted = referenced_metrics(stack)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (
            wanted <= sample_names(exporter)
            and not never_sent(exporter)
            and exporter.samples("airflow_dag_processing_import_errors") == [({}, 1.0)]
        ):
            time.sleep(1)
        yield Ran(stack, exporter, state)


def test_the_stack_deploys_the_exporter_version_the_tests_run(
    stack: Evaluation, exporter: statsd_exporter.StatsdExporter
) -> None:
    deployed = stack.find("Deployment", names.STATSD)["spec"]["template"]["spec"]["containers"][0]["image"]
    version = subprocess.run(
        [str(statsd_exporter.find_binary()), "--version"], capture_output=True, text=True, timeout=30
    )
    tested = re.search(r"version (\S+)", version.stdout + version.stderr)
    assert tested is not None, version
    assert deployed == f"prom/statsd-exporter:v{tested.group(1)}"


def test_the_dag_ran_to_its_expected_end(ran: Ran) -> None:
    # `fail` fails on purpose, so the run fails; `succeed` and `defer` succeed
    assert ran.run_state == "failed"


def test_every_metric_an_alert_or_a_panel_names_is_exported(ran: Ran) -> None:
    missing = referenced_metrics(ran.evaluation) - sample_names(ran.exporter)
    assert not missing, f"not on the exporter's /metrics: {sorted(missing)}"


def test_task_outcomes_are_counted_with_their_dag_task_and_state(ran: Ran) -> None:
    finished = {
        (labels["dag_id"], labels["task_id"], labels["state"]): value
        for labels, value in ran.exporter.samples("airflow_ti_finish_total")
    }
    assert finished == {
        (DAG_ID, "succeed", "success"): 1.0,
        (DAG_ID, "fail", "failed"): 1.0,
        (DAG_ID, "defer", "success"): 1.0,
    }


def test_the_broken_dag_file_shows_as_an_import_error(ran: Ran) -> None:
    assert ran.exporter.samples("airflow_dag_processing_import_errors") == [({}, 1.0)]


def test_pools_and_triggerers_are_labelled(ran: Ran) -> None:
    assert {labels["pool_name"] for labels, _ in ran.exporter.samples("airflow_pool_open_slots")} == {"default_pool"}
    assert [labels for labels, _ in ran.exporter.samples("airflow_triggers_running")] != []
    assert all("hostname" in labels for labels, _ in ran.exporter.samples("airflow_triggers_running"))


def test_the_dag_run_duration_is_labelled_with_its_state(ran: Ran) -> None:
    counts = ran.exporter.samples("airflow_dagrun_duration_seconds_count")
    assert [(labels["dag_id"], labels["state"]) for labels, _ in counts] == [(DAG_ID, "failed")]


def test_no_metric_name_carries_a_dag_task_or_pool_name(ran: Ran) -> None:
    exposed = ran.exporter.types()
    assert not [name for name in exposed if DAG_ID in name or "default_pool" in name or "Operator" in name]


def never_sent(exporter: statsd_exporter.StatsdExporter) -> list[str]:
    """Mapped metrics the exporter has not seen (job_end is sent when a process stops)."""
    exposed = exporter.types()
    missing = {mapped.prometheus_name for mapped in mapping.METRICS if mapped.prometheus_name not in exposed}
    return sorted(missing - {"airflow_job_end_total"})


def test_every_mapped_metric_is_a_metric_airflow_sent(ran: Ran) -> None:
    """The mapping names no metric Airflow 3.3 does not send."""
    assert not never_sent(ran.exporter)


def test_dashboard_queries_select_the_stack_namespace(ran: Ran) -> None:
    board = json.loads(ran.evaluation.find("ConfigMap", names.DASHBOARD)["data"][names.DASHBOARD_KEY])
    expressions = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    assert expressions and all('namespace="airflow-dev"' in expression for expression in expressions)
