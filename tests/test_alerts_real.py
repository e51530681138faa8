"""The stack's Prometheus alert rules, proved with the real ``promtool``.

The rules file is the one the stack renders (the ConfigMap ``names.ALERT_RULES``, from
components/observability/alerts.py). ``promtool check rules`` accepts it, and for every alert a
``promtool test rules`` unit test feeds input series that represent the alert's failure and expects the
alert, with its exact labels and annotations, then feeds a healthy series and expects silence.
A test checks that every alert of the rendered file has both cases, so an alert added without a test fails.

The tests run a real binary (Debian's ``prometheus`` package ships ``promtool``): without it they are
skipped, or fail when AIRFLOW_K8S_REQUIRE_REAL_TIERS is set (as in CI).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import names
from components.config.loading import load_stack_config
from components.config.model import StackConfig
from components.observability import alerts
from tests.support import evaluate_ok
from tools.mock_engine import stack_config

pytestmark = pytest.mark.real

NAMESPACE = "airflow"
"""The prod stack's namespace: every expression selects it."""
PROD: dict[str, Any] = {"metrics": {"enabled": True}, "alerts": {"enabled": True}}
"""Overrides that turn the alert rules on in a stack file."""
MISSING = "promtool not found: apt-get install prometheus (Debian's package ships promtool)"


def config_of(stack: str, overrides: dict[str, Any]) -> StackConfig:
    """The StackConfig the program reads from a stack file with these overrides (config parsing only)."""
    return load_stack_config(*stack_config(stack, overrides))


PROD_CONFIG = config_of("prod", PROD)
CAPACITY = alerts.celery_capacity(PROD_CONFIG)
"""Task slots of prod's Celery workers at KEDA's maximum (the backlog alert's threshold)."""


# --- promtool -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("AIRFLOW_K8S_REQUIRE_REAL_TIERS"):
            pytest.fail(MISSING)  # CI installs it: a missing binary is a failure there, not a skip
        pytest.skip(MISSING)
    return found


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"promtool exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


# --- the rendered rules -------------------------------------------------------------------------------


def rendered_rules(stack: str = "prod", **overrides: Any) -> str:
    """The rules file the stack puts in its ConfigMap."""
    evaluation = evaluate_ok(stack, **overrides)
    text = evaluation.find("ConfigMap", names.ALERT_RULES)["data"][names.ALERT_RULES_KEY]
    assert isinstance(text, str)
    return text


def rules_by_name(text: str) -> dict[str, dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(text)["groups"]
    assert [group["name"] for group in groups] == [alerts.GROUP]
    return {rule["alert"]: rule for rule in groups[0]["rules"]}


@pytest.fixture(scope="module")
def prod_rules() -> str:
    return rendered_rules(**PROD)


# --- promtool unit tests ------------------------------------------------------------------------------

Labels = dict[str, str]


@dataclasses.dataclass(frozen=True)
class Case:
    """One ``promtool test rules`` case: input series (1m apart) and the alerts expected at eval_time."""

    id: str
    alert: str
    series: dict[str, str]
    """Series selector -> promtool expanding notation ('0+12x10 120x20')."""
    eval_time: str
    firing: tuple[Labels, ...] = ()
    """Labels (alertname aside) of each alert expected to fire; none: the alert stays silent."""


def series(metric: str, namespace: str = NAMESPACE, **labels: str) -> str:
    selector = ",".join(f'{key}="{value}"' for key, value in {"namespace": namespace, **labels}.items())
    return f"{metric}{{{selector}}}"


TEMPLATE_LABEL = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")


def annotations_of(rule: dict[str, Any], labels: Labels) -> Labels:
    """The rule's annotations with their ``{{ $labels.x }}`` filled in, as Prometheus renders them."""
    annotations: Labels = rule["annotations"]
    return {key: TEMPLATE_LABEL.sub(lambda found: labels[found.group(1)], text) for key, text in annotations.items()}


def unit_test(rules_file: Path, case: Case, annotations: list[Labels]) -> dict[str, Any]:
    return {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in case.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": case.eval_time,
                        "alertname": case.alert,
                        "exp_alerts": [
                            {"exp_labels": labels, "exp_annotations": expected}
                            for labels, expected in zip(case.firing, annotations, strict=True)
                        ],
                    }
                ],
            }
        ],
    }


def assert_promtool_passes(
    promtool: str, tmp_path: Path, rules_text: str, case: Case, annotations: list[Labels] | None = None
) -> None:
    """Run the case with ``promtool test rules``; annotations default to the rule's, rendered."""
    rules_file = tmp_path / names.ALERT_RULES_KEY
    rules_file.write_text(rules_text)
    if annotations is None:
        rule = rules_by_name(rules_text)[case.alert]
        annotations = [annotations_of(rule, labels) for labels in case.firing]
    test_file = tmp_path / "test.yaml"
    test_file.write_text(yaml.safe_dump(unit_test(rules_file, case, annotations), sort_keys=False))
    result = run(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, f"{output_of(result)}\n--- {test_file.name}\n{test_file.read_text()}"


# Severity labels as the rules put them: a stopped and an absent heartbeat fire as the same alert.
CRITICAL: Labels = {"severity": "critical"}
WARNING: Labels = {"severity": "warning"}

HEARTBEATS = {
    "AirflowSchedulerHeartbeatMissing": "airflow_scheduler_heartbeat_total",
    "AirflowDagProcessorStopped": "airflow_dag_processor_heartbeat_total",
    "AirflowTriggererStopped": "airflow_triggerer_heartbeat_total",
}
BEATING = "0+12x30"
"""12 heartbeats a minute for 30 minutes."""
STOPPED = "0+12x10 120x20"
"""Heartbeats for 10 minutes, then none for 20 (flat past the 5m window plus the 1m `for`)."""
VANISHING = "0+12x10 120x10 _x20"
"""Heartbeats for 10 minutes, flat for 10, then no samples at all."""
EXPORTER_UP = {series("airflow_pool_open_slots", pool_name="default_pool"): "128x20"}
"""Another metric of the namespace: the exporter is scraped, the heartbeat series is not there."""


def heartbeat_cases(alert: str, metric: str) -> list[Case]:
    other = series(metric, namespace="other")
    return [
        Case(f"{alert}-stopped", alert, {series(metric): STOPPED}, "20m", (CRITICAL,)),
        Case(f"{alert}-absent", alert, EXPORTER_UP, "10m", (CRITICAL,)),
        Case(
            f"{alert}-stopped-while-another-namespace-beats",
            alert,
            {series(metric): STOPPED, other: BEATING},
            "20m",
            (CRITICAL,),
        ),
        Case(f"{alert}-absent-while-another-namespace-beats", alert, {other: BEATING}, "10m", (CRITICAL,)),
        Case(f"{alert}-beating", alert, {series(metric): BEATING}, "20m"),
        # stopped, then the series goes (a restarted exporter): it keeps firing throughout, never resolving
        # between the flat counter and the absent series
        *(
            Case(f"{alert}-stopped-then-gone-at-{at}", alert, {series(metric): VANISHING}, at, (CRITICAL,))
            for at in ("16m", "26m", "28m")
        ),
    ]


QUEUED = series("airflow_pool_queued_slots", pool_name="default_pool")
RUNNING = series("airflow_pool_running_slots", pool_name="default_pool")
STARTED = series("airflow_ti_start_total", dag_id="etl", task_id="load")
OPEN = series("airflow_pool_open_slots", pool_name="p")
SCHEDULED = series("airflow_pool_scheduled_slots", pool_name="p")


def finished(state: str) -> str:
    return series("airflow_ti_finish_total", dag_id="etl", task_id="load", state=state)


CASES: list[Case] = [
    *(case for alert, metric in HEARTBEATS.items() for case in heartbeat_cases(alert, metric)),
    Case(
        "AirflowDagImportErrors-failing",
        "AirflowDagImportErrors",
        {series("airflow_dag_processing_import_errors"): "1x15"},
        "10m",
        (WARNING,),
    ),
    Case(
        "AirflowDagImportErrors-none",
        "AirflowDagImportErrors",
        {series("airflow_dag_processing_import_errors"): "0x15"},
        "10m",
    ),
    # three tasks queued for 45 minutes, the start counter flat
    Case(
        "AirflowTasksQueuedTooLong-stuck",
        "AirflowTasksQueuedTooLong",
        {QUEUED: "3x45", STARTED: "7x45"},
        "40m",
        (WARNING,),
    ),
    Case(
        "AirflowTasksQueuedTooLong-tasks-start", "AirflowTasksQueuedTooLong", {QUEUED: "3x45", STARTED: "0+1x45"}, "40m"
    ),
    # a new stack: tasks queued for 10 minutes only, less than the 30-minute window
    Case("AirflowTasksQueuedTooLong-new-stack", "AirflowTasksQueuedTooLong", {QUEUED: "3x10", STARTED: "7x10"}, "9m"),
    Case(
        "AirflowTasksQueuedTooLong-queue-empties-once",
        "AirflowTasksQueuedTooLong",
        {QUEUED: "3x20 0 3x24", STARTED: "7x45"},
        "40m",
    ),
    Case(
        "AirflowTaskFailureRateHigh-half-fail",
        "AirflowTaskFailureRateHigh",
        {finished("failed"): "0+1x40", finished("success"): "0+1x40"},
        "30m",
        (WARNING,),
    ),
    Case(
        "AirflowTaskFailureRateHigh-five-percent-fail",
        "AirflowTaskFailureRateHigh",
        {finished("failed"): "0+1x40", finished("success"): "0+19x40"},
        "30m",
    ),
    Case(
        "AirflowPoolStarved-no-open-slot-tasks-scheduled",
        "AirflowPoolStarved",
        {OPEN: "0x20", SCHEDULED: "3x20"},
        "15m",
        ({**WARNING, "pool_name": "p"},),
    ),
    Case(
        "AirflowPoolStarved-no-open-slot-nothing-scheduled",
        "AirflowPoolStarved",
        {OPEN: "0x20", SCHEDULED: "0x20"},
        "15m",
    ),
    Case("AirflowPoolStarved-open-slots", "AirflowPoolStarved", {OPEN: "2x20", SCHEDULED: "3x20"}, "15m"),
    # ten queued plus enough running to pass the capacity by one; then exactly at capacity
    Case(
        "AirflowCeleryBacklogBeyondMaxWorkers-over-capacity",
        "AirflowCeleryBacklogBeyondMaxWorkers",
        {QUEUED: "10x30", RUNNING: f"{CAPACITY - 10 + 1}x30"},
        "25m",
        (WARNING,),
    ),
    Case(
        "AirflowCeleryBacklogBeyondMaxWorkers-at-capacity",
        "AirflowCeleryBacklogBeyondMaxWorkers",
        {QUEUED: "10x30", RUNNING: f"{CAPACITY - 10}x30"},
        "25m",
    ),
    Case(
        "AirflowCeleryBacklogBeyondMaxWorkers-over-capacity-nothing-queued",
        "AirflowCeleryBacklogBeyondMaxWorkers",
        {QUEUED: "0x30", RUNNING: f"{CAPACITY + 5}x30"},
        "25m",
    ),
]
FIRING = [pytest.param(case, id=case.id) for case in CASES if case.firing]
SILENT = [pytest.param(case, id=case.id) for case in CASES if not case.firing]


def case_named(case_id: str) -> Case:
    return next(case for case in CASES if case.id == case_id)


# --- the tests ----------------------------------------------------------------------------------------


def test_promtool_check_rules_accepts_the_rendered_file_with_one_rule_per_alert(
    promtool: str, prod_rules: str, tmp_path: Path
) -> None:
    rules_file = tmp_path / names.ALERT_RULES_KEY
    rules_file.write_text(prod_rules)
    result = run(promtool, "check", "rules", str(rules_file))
    assert result.returncode == 0, output_of(result)
    found = re.search(r"SUCCESS: (\d+) rules found", result.stdout)
    assert found is not None, output_of(result)
    assert int(found.group(1)) == len(alerts.alerts(PROD_CONFIG)) == len(rules_by_name(prod_rules))


def test_the_config_read_here_is_the_one_the_stack_renders(prod_rules: str) -> None:
    # so the celery capacity the cases use is the threshold in the deployed rule
    assert alerts.rules_yaml(PROD_CONFIG) == prod_rules
    assert f"> {CAPACITY})" in rules_by_name(prod_rules)["AirflowCeleryBacklogBeyondMaxWorkers"]["expr"]


@pytest.mark.parametrize("case", FIRING)
def test_alert_fires_on_its_failure(promtool: str, prod_rules: str, tmp_path: Path, case: Case) -> None:
    assert_promtool_passes(promtool, tmp_path, prod_rules, case)


@pytest.mark.parametrize("case", SILENT)
def test_alert_stays_silent_on_a_healthy_series(promtool: str, prod_rules: str, tmp_path: Path, case: Case) -> None:
    assert_promtool_passes(promtool, tmp_path, prod_rules, case)


@pytest.mark.parametrize(
    ("case_id", "annotations"),
    [
        pytest.param(
            "AirflowSchedulerHeartbeatMissing-stopped",
            {
                "summary": "No scheduler in airflow has sent a heartbeat for 5m.",
                "runbook": "docs/observability.md#airflowschedulerheartbeatmissing",
            },
            id="scheduler",
        ),
        pytest.param(
            "AirflowPoolStarved-no-open-slot-tasks-scheduled",
            {
                "summary": "Pool p in airflow has had no open slot while tasks wait for 10m.",
                "runbook": "docs/observability.md#airflowpoolstarved",
            },
            id="pool-templated-summary",
        ),
    ],
)
def test_a_firing_alert_carries_its_rendered_summary_and_runbook(
    promtool: str, prod_rules: str, tmp_path: Path, case_id: str, annotations: Labels
) -> None:
    assert_promtool_passes(promtool, tmp_path, prod_rules, case_named(case_id), [annotations])


def test_every_rendered_alert_has_a_firing_and_a_silent_case(prod_rules: str) -> None:
    rendered = set(rules_by_name(prod_rules))
    assert rendered == {alert.name for alert in alerts.alerts(PROD_CONFIG)}
    assert {case.alert for case in CASES if case.firing} == rendered
    assert {case.alert for case in CASES if not case.firing} == rendered


def test_a_local_executor_stack_has_no_celery_backlog_alert(prod_rules: str) -> None:
    dev = rules_by_name(rendered_rules("dev", **PROD))
    assert PROD_CONFIG.uses_celery
    assert not config_of("dev", PROD).uses_celery
    assert set(dev) == set(rules_by_name(prod_rules)) - {"AirflowCeleryBacklogBeyondMaxWorkers"}


TEN_MINUTE_SILENCE = Case(
    "heartbeat-silent-10m",
    "AirflowSchedulerHeartbeatMissing",
    {series("airflow_scheduler_heartbeat_total"): "0+12x10 120x10"},  # flat from minute 10 to 20
    "20m",
)


def test_a_ten_minute_heartbeat_silence_fires_with_the_default_five_minutes(
    promtool: str, prod_rules: str, tmp_path: Path
) -> None:
    assert PROD_CONFIG.alerts.heartbeat_missing_minutes == 5
    case = dataclasses.replace(TEN_MINUTE_SILENCE, firing=(CRITICAL,))
    assert_promtool_passes(promtool, tmp_path, prod_rules, case)


def test_a_ten_minute_heartbeat_silence_does_not_fire_with_heartbeat_missing_minutes_15(
    promtool: str, tmp_path: Path
) -> None:
    rules = rendered_rules("prod", metrics={"enabled": True}, alerts={"enabled": True, "heartbeatMissingMinutes": 15})
    assert_promtool_passes(promtool, tmp_path, rules, TEN_MINUTE_SILENCE)
