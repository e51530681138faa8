"""Metrics, proven end to end with real components: Airflow 3.3's api-server, dag-processor, scheduler and
triggerer, each run from its rendered pod (environment, arguments, mounted files), send StatsD to the real
statsd_exporter 0.30.0 (the version the stack deploys) running the mapping file the stack renders.

A DAG runs with a task that succeeds, one that fails and one that defers to the triggerer, beside a DAG
file that fails to import. Then every metric an alert rule or a dashboard panel names is on the
exporter's /metrics, with the labels the rules and panels group by, and no metric name carries a DAG id.

The control plane is the session's observed one (tests/observed_stack.py): the PgBouncer tests' DAG runs
beside this one, through the same components.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

import pytest

from components.config import names
from tests import observed_stack, pgbouncer_server, statsd_exporter
from tests.support import Evaluation

pytestmark = pytest.mark.real

DAG_ID = observed_stack.METRICS_DAG_ID


@dataclass
class Ran:
    evaluation: Evaluation
    exporter: statsd_exporter.StatsdExporter
    run_state: str


@pytest.fixture(scope="module")
def ran(observed_control_plane: observed_stack.Observed) -> Ran:
    seen = observed_control_plane
    return Ran(seen.evaluation, seen.exporter, seen.metrics_run_state)


@pytest.fixture(scope="module")
def stack(ran: Ran) -> Evaluation:
    return ran.evaluation


@pytest.fixture(scope="module")
def exporter(ran: Ran) -> statsd_exporter.StatsdExporter:
    return ran.exporter


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
    missing = observed_stack.referenced_metrics(ran.evaluation) - observed_stack.sample_names(ran.exporter)
    assert not missing, f"not on the exporter's /metrics: {sorted(missing)}"


def test_task_outcomes_are_counted_with_their_dag_task_and_state(ran: Ran) -> None:
    finished = {
        (labels["dag_id"], labels["task_id"], labels["state"]): value
        for labels, value in ran.exporter.samples("airflow_ti_finish_total")
        if labels["dag_id"] == DAG_ID  # the PgBouncer tests' DAG ran beside it
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
    assert sorted((labels["dag_id"], labels["state"]) for labels, _ in counts) == [
        (pgbouncer_server.DAG_ID, "success"),
        (DAG_ID, "failed"),
    ]


def test_no_metric_name_carries_a_dag_task_or_pool_name(ran: Ran) -> None:
    exposed = ran.exporter.types()
    carried = (DAG_ID, pgbouncer_server.DAG_ID, "default_pool", "Operator")
    assert not [name for name in exposed if any(part in name for part in carried)]


def test_every_mapped_metric_is_a_metric_airflow_sent(ran: Ran) -> None:
    """The mapping names no metric Airflow 3.3 does not send."""
    assert not observed_stack.never_sent(ran.exporter)


def test_dashboard_queries_select_the_stack_namespace(ran: Ran) -> None:
    board = json.loads(ran.evaluation.find("ConfigMap", names.DASHBOARD)["data"][names.DASHBOARD_KEY])
    expressions = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    assert expressions and all('namespace="airflow-dev"' in expression for expression in expressions)
