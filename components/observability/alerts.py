"""Alert rules on the exporter's metrics: one table, written as a plain Prometheus rules file (a ConfigMap,
for any Prometheus) and as a PrometheusRule (for the Prometheus operator, metrics.prometheus.enabled).

Every expression selects the stack's namespace (``namespace="..."``, the label a ServiceMonitor, a
PodMonitor or the usual kubernetes_sd relabelling puts on the exporter's series), so two stacks in one
Prometheus never mix. Thresholds come from ``alerts``. Each alert's meaning and first response are in
docs/observability.md, under the alert's name; ``promtool test rules`` proves each fires on its failure
and stays silent on a healthy series (tests/test_alerts_real.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pulumi
import yaml

from components.config import names
from components.config.model import StackConfig
from components.foundation.config_maps import config_map_manifest, register_config_map
from components.kube import objects
from components.kube.wiring import NamespaceHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        ConfigMapManifest,
        PrometheusRuleManifest,
        PrometheusRuleSpecGroupsItemRulesItem,
    )

C = names.Component
RUNBOOK = "docs/observability.md"
"""Where each alert's meaning and first response are: the project's docs, under the alert's name."""
GROUP = "airflow"

Severity = Literal["critical", "warning"]


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str

    def rule(self, extra_labels: dict[str, str]) -> PrometheusRuleSpecGroupsItemRulesItem:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, **extra_labels},
            "annotations": {"summary": self.summary, "runbook": f"{RUNBOOK}#{self.name.lower()}"},
        }


def celery_capacity(config: StackConfig) -> int:
    """Task slots of every Celery worker set at its largest: KEDA's maxReplicas (or the fixed replicas)."""
    return sum(
        (worker.autoscaling.max_replicas if config.celery_autoscaled else worker.replicas) * worker.concurrency
        for worker in config.workers
    )


def alerts(config: StackConfig) -> list[Alert]:
    settings = config.alerts
    ns = f'namespace="{config.namespace}"'
    heartbeat = f"{settings.heartbeat_missing_minutes}m"
    queued = f"{settings.queued_minutes}m"

    def stopped(metric: str, component: str, name: str) -> Alert:
        # `or vector(0)`: no series at all (never started, or gone) counts as no heartbeat, under the same
        # (empty) label set, so the alert never resolves and fires again as another alert when it goes
        return Alert(
            name,
            f"(sum(increase({metric}{{{ns}}}[{heartbeat}])) or vector(0)) == 0",
            "1m",
            "critical",
            f"No {component} in {config.namespace} has sent a heartbeat for {heartbeat}.",
        )

    queued_slots = f"sum(airflow_pool_queued_slots{{{ns}}})[{queued}:1m]"
    found = [
        stopped("airflow_scheduler_heartbeat_total", "scheduler", "AirflowSchedulerHeartbeatMissing"),
        stopped("airflow_dag_processor_heartbeat_total", "dag-processor", "AirflowDagProcessorStopped"),
        stopped("airflow_triggerer_heartbeat_total", "triggerer", "AirflowTriggererStopped"),
        Alert(
            "AirflowDagImportErrors",
            f"max(airflow_dag_processing_import_errors{{{ns}}}) > 0",
            "5m",
            "warning",
            f"DAG files in {config.namespace} fail to import: their DAGs are not scheduled.",
        ),
        Alert(
            "AirflowTasksQueuedTooLong",
            # Airflow 3.3 emits no age of queued tasks: the queue has not been empty once in the window,
            # and no task started in it; count_over_time: the whole window has data (a new stack does not
            # fire after its first minute)
            f"(min_over_time({queued_slots}) > 0 and count_over_time({queued_slots}) >= {settings.queued_minutes})"
            f" unless (sum(increase(airflow_ti_start_total{{{ns}}}[{queued}])) > 0)",
            "1m",
            "warning",
            f"Tasks in {config.namespace} have waited in the queued state for {queued} and none started.",
        ),
        Alert(
            "AirflowTaskFailureRateHigh",
            f'100 * sum(increase(airflow_ti_finish_total{{{ns},state="failed"}}[{settings.failure_window}]))'
            f' / sum(increase(airflow_ti_finish_total{{{ns},state=~"success|failed"}}[{settings.failure_window}]))'
            f" > {settings.failure_rate_percent}",
            "5m",
            "warning",
            f"More than {settings.failure_rate_percent}% of the tasks that finished in {config.namespace} "
            f"in the last {settings.failure_window} failed.",
        ),
        Alert(
            "AirflowPoolStarved",
            f"(max by (pool_name) (airflow_pool_open_slots{{{ns}}}) <= 0)"
            f" and on (pool_name) (max by (pool_name) (airflow_pool_scheduled_slots{{{ns}}}) > 0)",
            f"{settings.pool_starvation_minutes}m",
            "warning",
            f"Pool {{{{ $labels.pool_name }}}} in {config.namespace} has had no open slot while tasks wait for "
            f"{settings.pool_starvation_minutes}m.",
        ),
    ]
    if config.uses_celery:
        capacity = celery_capacity(config)
        tasks = f"sum(airflow_pool_queued_slots{{{ns}}}) + sum(airflow_pool_running_slots{{{ns}}})"
        found.append(
            Alert(
                "AirflowCeleryBacklogBeyondMaxWorkers",
                f"({tasks} > {capacity}) and (sum(airflow_pool_queued_slots{{{ns}}}) > 0)",
                f"{settings.celery_backlog_minutes}m",
                "warning",
                f"More tasks wait and run in {config.namespace} than the Celery workers can hold at their "
                f"maximum ({capacity} slots).",
            )
        )
    return found


def rules(config: StackConfig) -> list[PrometheusRuleSpecGroupsItemRulesItem]:
    labels = dict(sorted(config.alerts.labels.items()))
    return [alert.rule(labels) for alert in alerts(config)]


def rules_file(config: StackConfig) -> dict[str, object]:
    """The rules in Prometheus' rule file format (the PrometheusRule's spec holds the same groups)."""
    return {"groups": [{"name": GROUP, "rules": rules(config)}]}


def rules_yaml(config: StackConfig) -> str:
    return yaml.safe_dump(rules_file(config), sort_keys=False, width=200)


def config_map(config: StackConfig) -> ConfigMapManifest:
    return config_map_manifest(
        names.ALERT_RULES, C.ALERTS, config.namespace, {names.ALERT_RULES_KEY: rules_yaml(config)}
    )


def prometheus_rule_manifest(config: StackConfig) -> PrometheusRuleManifest:
    prometheus = config.metrics.prometheus
    namespace = config.namespace
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": names.metadata(names.ALERT_RULES, C.ALERTS, namespace, namespace, extra_labels=prometheus.labels),
        "spec": {"groups": [{"name": GROUP, "rules": rules(config)}]},
    }


@dataclass(frozen=True)
class AlertsArgs:
    config: StackConfig
    namespace: NamespaceHandle


class Alerts(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:observability:Alerts", name, None, opts)
        config = args.config
        register_config_map(self, config_map(config), [args.namespace.resource])
        if config.metrics.prometheus.enabled:
            objects.register(prometheus_rule_manifest(config), objects.child_opts(self, [args.namespace.resource]))
        self.register_outputs({})
