"""A Grafana dashboard on the exporter's metrics, in a ConfigMap the Grafana sidecar picks up by its labels
(``dashboard.labels``; the Grafana chart's convention is ``grafana_dashboard: "1"``).

Every query names only metrics the exporter produces from Airflow 3.3 (tests/test_metrics_real.py runs
a DAG on real Airflow and checks each one exists), and selects the stack's namespace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pulumi

from components.config import names
from components.config.model import StackConfig
from components.foundation.config_maps import config_map_manifest, register_config_map
from components.kube.wiring import NamespaceHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import ConfigMapManifest

C = names.Component
PanelKind = Literal["timeseries", "stat"]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24
PANEL_WIDTH = 8
PANEL_HEIGHT = 8


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]
    """(PromQL with {ns} for the namespace selector, legend)."""
    kind: PanelKind = "timeseries"
    unit: str = "short"


def p95(histogram: str, by: str, window: str) -> str:
    grouping = f"{by}, le" if by else "le"
    return f"histogram_quantile(0.95, sum by ({grouping}) (rate({histogram}_bucket{{ns}}[{window}])))"


PANELS: tuple[Panel, ...] = (
    Panel(
        "Heartbeats per minute",
        (
            ("sum(rate(airflow_scheduler_heartbeat_total{ns}[5m])) * 60", "scheduler"),
            ("sum(rate(airflow_dag_processor_heartbeat_total{ns}[5m])) * 60", "dag-processor"),
            ("sum(rate(airflow_triggerer_heartbeat_total{ns}[5m])) * 60", "triggerer"),
        ),
    ),
    Panel("DAG import errors", (("max(airflow_dag_processing_import_errors{ns})", "import errors"),), "stat"),
    Panel("DAGs parsed", (("max(airflow_dagbag_size{ns})", "DAGs"),), "stat"),
    Panel(
        "Tasks finished per minute, by state",
        (("sum by (state) (rate(airflow_ti_finish_total{ns}[5m])) * 60", "{{state}}"),),
    ),
    Panel(
        "Task failure rate",
        (
            (
                "sum(rate(airflow_ti_finish_total{ns_state_failed}[30m]))"
                " / sum(rate(airflow_ti_finish_total{ns}[30m]))",
                "failed share",
            ),
        ),
        unit="percentunit",
    ),
    Panel(
        "Task duration p95, by DAG",
        (
            (
                p95("airflow_task_duration_seconds", "dag_id", "30m"),
                "{{dag_id}}",
            ),
        ),
        unit="s",
    ),
    Panel(
        "Pool slots",
        (
            ("sum by (pool_name) (airflow_pool_open_slots{ns})", "{{pool_name}} open"),
            ("sum by (pool_name) (airflow_pool_queued_slots{ns})", "{{pool_name}} queued"),
            ("sum by (pool_name) (airflow_pool_running_slots{ns})", "{{pool_name}} running"),
            ("sum by (pool_name) (airflow_pool_scheduled_slots{ns})", "{{pool_name}} waiting for a slot"),
            ("sum by (pool_name) (airflow_pool_deferred_slots{ns})", "{{pool_name}} deferred"),
        ),
    ),
    Panel(
        "Executor slots",
        (
            ("sum by (executor_class_name) (airflow_executor_open_slots{ns})", "{{executor_class_name}} open"),
            ("sum by (executor_class_name) (airflow_executor_queued_tasks{ns})", "{{executor_class_name}} queued"),
            ("sum by (executor_class_name) (airflow_executor_running_tasks{ns})", "{{executor_class_name}} running"),
        ),
    ),
    Panel(
        "Time from scheduled to queued, p95",
        (
            (
                p95("airflow_task_scheduled_duration_seconds", "", "30m"),
                "p95",
            ),
        ),
        unit="s",
    ),
    Panel(
        "Scheduler loop duration, p95",
        (
            (
                p95("airflow_scheduler_scheduler_loop_duration_seconds", "", "10m"),
                "loop",
            ),
            (
                p95("airflow_scheduler_critical_section_duration_seconds", "", "10m"),
                "critical section",
            ),
        ),
        unit="s",
    ),
    Panel(
        "Tasks starving, DAG runs running",
        (
            ("max(airflow_scheduler_tasks_starving{ns})", "starving"),
            ("max(airflow_scheduler_dagruns_running{ns})", "DAG runs running"),
        ),
    ),
    Panel(
        "DAG parsing",
        (
            ("max(airflow_dag_processing_total_parse_time{ns})", "total parse time"),
            ("max(airflow_dag_processing_file_path_queue_size{ns})", "files queued"),
        ),
        unit="s",
    ),
    Panel(
        "Triggers",
        (
            ("sum by (hostname) (airflow_triggers_running{ns})", "{{hostname}} running"),
            ("sum by (hostname) (airflow_triggerer_capacity_left{ns})", "{{hostname}} capacity left"),
        ),
    ),
    Panel(
        "DAG run duration p95, by state",
        (
            (
                p95("airflow_dagrun_duration_seconds", "state", "1h"),
                "{{state}}",
            ),
        ),
        unit="s",
    ),
)


def queries(config: StackConfig) -> list[str]:
    """Every panel's PromQL, with the namespace filled in."""
    selector = f'namespace="{config.namespace}"'
    return [
        expression.replace("{ns}", f"{{{selector}}}").replace("{ns_state_failed}", f'{{{selector},state="failed"}}')
        for panel in PANELS
        for expression, _ in panel.queries
    ]


def dashboard(config: StackConfig) -> dict[str, object]:
    expressions = iter(queries(config))
    panels: list[dict[str, object]] = []
    per_row = WIDTH // PANEL_WIDTH
    for index, panel in enumerate(PANELS):
        targets = [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": next(expressions), "legendFormat": legend}
            for i, (_, legend) in enumerate(panel.queries)
        ]
        panels.append(
            {
                "id": index + 1,
                "type": panel.kind,
                "title": panel.title,
                "datasource": DATASOURCE,
                "gridPos": {
                    "x": (index % per_row) * PANEL_WIDTH,
                    "y": (index // per_row) * PANEL_HEIGHT,
                    "w": PANEL_WIDTH,
                    "h": PANEL_HEIGHT,
                },
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": targets,
            }
        )
    return {
        "uid": f"airflow-{config.namespace}"[:40],
        "title": f"Airflow ({config.namespace})",
        "tags": ["airflow", "airflow-k8s"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": panels,
    }


def config_map(config: StackConfig) -> ConfigMapManifest:
    body = json.dumps(dashboard(config), indent=2, sort_keys=True)
    manifest = config_map_manifest(names.DASHBOARD, C.DASHBOARD, config.namespace, {names.DASHBOARD_KEY: body})
    manifest["metadata"]["labels"] = {**manifest["metadata"].get("labels", {}), **config.dashboard.labels}
    return manifest


@dataclass(frozen=True)
class DashboardArgs:
    config: StackConfig
    namespace: NamespaceHandle


class Dashboard(pulumi.ComponentResource):
    def __init__(self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:observability:Dashboard", name, None, opts)
        register_config_map(self, config_map(args.config), [args.namespace.resource])
        self.register_outputs({})
