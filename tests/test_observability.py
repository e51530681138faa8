"""Observability objects as the program renders them: the StatsD exporter, its Service and monitors, the
alert rules, the dashboard and the db clean CronJob; and the paths their NetworkPolicies open.

What Airflow really emits, and that the rules fire, is proven with real components in
tests/test_metrics_real.py, tests/test_alerts_real.py and tests/test_database_cleanup_real.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from components.config import names
from components.config.loading import ConfigError, load_stack_config
from components.observability import mapping, metrics
from tests.netpol import Endpoint, allowed
from tests.support import containers, env_of, evaluate_ok, pod_spec
from tests.test_security import pod, policies
from tools.mock_engine import Evaluation

C = names.Component
E = names.AirflowEnv
METRICS: dict[str, Any] = {"metrics": {"enabled": True}}
EVERYTHING: dict[str, Any] = {
    "executor": "CeleryExecutor,KubernetesExecutor",
    "metrics": {"enabled": True, "prometheus": {"enabled": True, "labels": {"release": "kps"}}},
    "alerts": {"enabled": True, "labels": {"team": "data"}},
    "dashboard": {"enabled": True},
    "databaseCleanup": {"enabled": True, "retentionDays": 30, "schedule": "5 4 * * *"},
}
OBSERVABILITY_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "CronJob"}
OBSERVABILITY_NAMES = {names.STATSD, names.ALERT_RULES, names.DASHBOARD, names.DATABASE_CLEANUP}


@pytest.fixture(scope="module")
def observed() -> Evaluation:
    return evaluate_ok("dev", **EVERYTHING)


def airflow_containers(evaluation: Evaluation) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for obj in evaluation.kubernetes_objects():
        if obj["kind"] == "CronJob":
            spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            found += [(obj["metadata"]["name"], c) for c in spec["containers"]]
        elif obj["kind"] == "Deployment" and obj["metadata"]["name"] != names.STATSD:
            found += [(obj["metadata"]["name"], c) for c in containers(obj) if c["image"].startswith("apache/")]
    template = json.loads(evaluation.find("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP)["data"][names.POD_TEMPLATE_KEY])
    found += [("pod-template", c) for c in template["spec"]["containers"] if c["name"] == "base"]
    return found


# --- off by default ---


def test_dev_has_no_observability_objects_and_sends_no_metrics() -> None:
    dev = evaluate_ok("dev")
    rendered = {(o["kind"], o["metadata"]["name"]) for o in dev.kubernetes_objects()}
    assert not [item for item in rendered if item[0] in OBSERVABILITY_KINDS or item[1] in OBSERVABILITY_NAMES]
    workloads = [o for o in dev.kubernetes_objects() if o["kind"] in ("Deployment", "StatefulSet")]
    assert all(E.STATSD_ON not in env_of(c) for obj in workloads for c in containers(obj, init=True))


def test_prod_turns_everything_on() -> None:
    prod = evaluate_ok("prod")
    assert {"ServiceMonitor", "PrometheusRule", "CronJob"} <= {o["kind"] for o in prod.kubernetes_objects()}
    assert {names.STATSD, names.ALERT_RULES, names.DASHBOARD} <= prod.names_of("ConfigMap")


# --- metrics ---


def test_every_airflow_process_and_task_pod_sends_tagged_statsd_to_the_exporter_service(observed: Evaluation) -> None:
    expected = {
        E.STATSD_ON: "True",
        E.STATSD_HOST: f"{names.STATSD}.airflow-dev.svc.cluster.local",
        E.STATSD_PORT: str(names.STATSD_PORT),
        E.STATSD_PREFIX: mapping.PREFIX,
        E.STATSD_INFLUXDB_ENABLED: "True",
    }
    found = airflow_containers(observed)
    assert {name for name, _ in found} >= {
        names.API_SERVER,
        names.SCHEDULER,
        names.DAG_PROCESSOR,
        names.TRIGGERER,
        names.worker_set("default"),
        names.DATABASE_CLEANUP,
        "pod-template",
    }
    for name, container in found:
        environment = env_of(container)
        assert {key: environment.get(key) for key in expected} == expected, (name, container["name"])


def test_the_exporter_service_names_its_statsd_and_metrics_ports(observed: Evaluation) -> None:
    service = observed.find("Service", names.STATSD)
    assert service["spec"]["ports"] == [
        {"name": "statsd", "port": names.STATSD_PORT, "protocol": "UDP", "targetPort": "statsd"},
        {"name": "metrics", "port": names.METRICS_PORT, "protocol": "TCP", "targetPort": "metrics"},
    ]
    template = observed.find("Deployment", names.STATSD)["spec"]["template"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()


def test_the_exporter_runs_the_rendered_mapping_with_its_ports(observed: Evaluation) -> None:
    spec = pod_spec(observed.find("Deployment", names.STATSD))
    [container] = spec["containers"]
    assert container["image"] == "prom/statsd-exporter:v0.30.0"
    assert container["args"] == metrics.exporter_args()
    mounted = next(m for m in container["volumeMounts"] if m["name"] == "mapping")
    source = next(v for v in spec["volumes"] if v["name"] == "mapping")["configMap"]["name"]
    rendered = observed.find("ConfigMap", source)["data"][metrics.MAPPING_FILE]
    assert f"--statsd.mapping-config={mounted['mountPath']}/{metrics.MAPPING_FILE}" in container["args"]
    assert yaml.safe_load(rendered) == mapping.mapping_config()
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == names.STATSD


def test_the_exporters_image_and_resources_come_from_config() -> None:
    resources = {"requests": {"cpu": "20m", "memory": "40Mi"}, "limits": {"cpu": "300m", "memory": "200Mi"}}
    evaluation = evaluate_ok(
        "dev",
        metrics={"enabled": True, "exporterImage": "mirror.example.com/statsd:v0.30.0", "exporterResources": resources},
    )
    [container] = pod_spec(evaluation.find("Deployment", names.STATSD))["containers"]
    assert (container["image"], container["resources"]) == ("mirror.example.com/statsd:v0.30.0", resources)


def test_a_mapping_change_rolls_the_exporter() -> None:
    annotations = evaluate_ok("dev", **METRICS).find("Deployment", names.STATSD)["spec"]["template"]["metadata"]
    assert any("checksum" in key for key in annotations.get("annotations", {})), annotations


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor"])
def test_the_chosen_monitor_scrapes_the_metrics_port_with_its_labels(kind: str) -> None:
    evaluation = evaluate_ok(
        "dev",
        metrics={
            "enabled": True,
            "prometheus": {"enabled": True, "kind": kind, "interval": "15s", "labels": {"release": "kps"}},
        },
    )
    monitor = evaluation.find(kind, names.STATSD)
    other = {"ServiceMonitor": "PodMonitor", "PodMonitor": "ServiceMonitor"}[kind]
    assert names.STATSD not in evaluation.names_of(other)
    assert monitor["metadata"]["labels"]["release"] == "kps"
    endpoints = monitor["spec"]["endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"]
    assert endpoints == [{"port": "metrics", "path": "/metrics", "interval": "15s", "honorLabels": True}]
    target = evaluation.find("Service" if kind == "ServiceMonitor" else "Deployment", names.STATSD)
    labels = (
        target["metadata"]["labels"] if kind == "ServiceMonitor" else target["spec"]["template"]["metadata"]["labels"]
    )
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_without_the_operator_there_is_no_monitor_and_no_prometheus_rule() -> None:
    evaluation = evaluate_ok("dev", metrics={"enabled": True}, alerts={"enabled": True})
    kinds = {o["kind"] for o in evaluation.kubernetes_objects()}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert names.ALERT_RULES in evaluation.names_of("ConfigMap")


# --- network paths ---


def test_airflow_reaches_the_exporter_over_udp_and_only_the_scraper_reads_metrics(observed: Evaluation) -> None:
    rules = policies(observed)
    exporter = pod(observed, C.METRICS)
    for component in (C.SCHEDULER, C.DAG_PROCESSOR, C.TRIGGERER, C.API_SERVER, C.KUBERNETES_TASK):
        assert allowed(rules, pod(observed, component), exporter, names.STATSD_PORT, "UDP"), component
    assert allowed(rules, pod(observed, C.WORKER, **{names.WORKER_SET_LABEL: "default"}), exporter, 9125, "UDP")
    assert not allowed(rules, pod(observed, C.SCHEDULER), exporter, names.STATSD_PORT, "TCP")
    monitoring = Endpoint(
        "monitoring",
        {"app.kubernetes.io/name": "prometheus"},
        namespace_labels={"kubernetes.io/metadata.name": "monitoring"},
    )
    elsewhere = Endpoint("team-b", {}, namespace_labels={"kubernetes.io/metadata.name": "team-b"})
    assert allowed(rules, monitoring, exporter, names.METRICS_PORT)
    assert not allowed(rules, elsewhere, exporter, names.METRICS_PORT)
    assert not allowed(rules, pod(observed, C.SCHEDULER), exporter, names.METRICS_PORT)
    # the exporter itself connects nowhere
    assert not allowed(rules, exporter, pod(observed, C.POSTGRES), names.POSTGRES_PORT)


def test_the_scraper_namespace_comes_from_config() -> None:
    evaluation = evaluate_ok("dev", metrics={"enabled": True, "scraperNamespace": "observability"})
    scraper = Endpoint("observability", {}, namespace_labels={"kubernetes.io/metadata.name": "observability"})
    assert allowed(policies(evaluation), scraper, pod(evaluation, C.METRICS), names.METRICS_PORT)


def test_the_cleanup_job_reaches_only_postgres(observed: Evaluation) -> None:
    rules = policies(observed)
    job = pod(observed, C.DATABASE_CLEANUP)
    assert allowed(rules, job, pod(observed, C.POSTGRES), names.POSTGRES_PORT)
    assert not allowed(rules, job, pod(observed, C.API_SERVER), names.API_SERVER_PORT)
    assert not allowed(rules, job, Endpoint(None, ip="93.184.216.34"), 443)


# --- alerts ---


def test_alert_rules_need_metrics_and_say_so() -> None:
    with pytest.raises(ConfigError) as raised:
        load_stack_config({"airflow-k8s:alerts": json.dumps({"enabled": True})}, set())
    assert "alerts.enabled" in str(raised.value) and "metrics.enabled" in str(raised.value)


def test_the_prometheus_rule_and_the_rules_file_hold_the_same_rules(observed: Evaluation) -> None:
    rule = observed.find("PrometheusRule", names.ALERT_RULES)
    plain = yaml.safe_load(observed.find("ConfigMap", names.ALERT_RULES)["data"][names.ALERT_RULES_KEY])
    assert rule["spec"] == plain
    assert rule["metadata"]["labels"]["release"] == "kps"
    for item in plain["groups"][0]["rules"]:
        assert item["labels"]["team"] == "data"
        assert item["labels"]["severity"] in ("critical", "warning")
        assert item["annotations"]["runbook"] == f"docs/observability.md#{item['alert'].lower()}"
        assert 'namespace="airflow-dev"' in item["expr"]


def test_thresholds_come_from_config() -> None:
    evaluation = evaluate_ok(
        "dev",
        executor="CeleryExecutor",
        workers=[{"name": "default", "concurrency": 5, "replicas": 3}],
        metrics={"enabled": True},
        alerts={
            "enabled": True,
            "heartbeatMissingMinutes": 7,
            "queuedMinutes": 45,
            "failureRatePercent": 35,
            "failureWindow": "2h",
            "poolStarvationMinutes": 12,
            "celeryBacklogMinutes": 25,
        },
    )
    rules = {
        r["alert"]: r
        for r in yaml.safe_load(evaluation.find("ConfigMap", names.ALERT_RULES)["data"][names.ALERT_RULES_KEY])[
            "groups"
        ][0]["rules"]
    }
    assert "[7m]" in rules["AirflowSchedulerHeartbeatMissing"]["expr"]
    assert "[45m:1m]" in rules["AirflowTasksQueuedTooLong"]["expr"]
    assert (
        rules["AirflowTaskFailureRateHigh"]["expr"].endswith("> 35")
        and "[2h]" in rules["AirflowTaskFailureRateHigh"]["expr"]
    )
    assert rules["AirflowPoolStarved"]["for"] == "12m"
    # fixed replicas without KEDA: 3 pods x 5 slots
    assert "> 15)" in rules["AirflowCeleryBacklogBeyondMaxWorkers"]["expr"]
    assert rules["AirflowCeleryBacklogBeyondMaxWorkers"]["for"] == "25m"


def test_the_celery_capacity_is_keda_maximum_times_concurrency() -> None:
    rules = yaml.safe_load(evaluate_ok("prod").find("ConfigMap", names.ALERT_RULES)["data"][names.ALERT_RULES_KEY])
    backlog = next(r for r in rules["groups"][0]["rules"] if r["alert"] == "AirflowCeleryBacklogBeyondMaxWorkers")
    # prod: default 10 x 16 + heavy 4 x 4
    assert "> 176)" in backlog["expr"]


# --- dashboard ---


def test_the_dashboard_is_labelled_for_the_grafana_sidecar(observed: Evaluation) -> None:
    config_map = observed.find("ConfigMap", names.DASHBOARD)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    custom = evaluate_ok(
        "dev", metrics={"enabled": True}, dashboard={"enabled": True, "labels": {"dashboards": "airflow"}}
    )
    labels = custom.find("ConfigMap", names.DASHBOARD)["metadata"]["labels"]
    assert labels["dashboards"] == "airflow" and "grafana_dashboard" not in labels


def test_every_dashboard_query_names_only_mapped_metrics(observed: Evaluation) -> None:
    board = json.loads(observed.find("ConfigMap", names.DASHBOARD)["data"][names.DASHBOARD_KEY])
    exported = {m.prometheus_name for m in mapping.METRICS}
    for panel in board["panels"]:
        for target in panel["targets"]:
            for metric in re.findall(r"\bairflow_[a-z0-9_]+", target["expr"]):
                assert re.sub(r"_(bucket|count|sum)$", "", metric) in exported, (panel["title"], metric)


# --- database hygiene ---


def test_db_clean_runs_on_its_schedule_with_its_retention_one_at_a_time(observed: Evaluation) -> None:
    job = observed.find("CronJob", names.DATABASE_CLEANUP)
    spec = job["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("5 4 * * *", "Etc/UTC", "Forbid")
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
    pod_template = spec["jobTemplate"]["spec"]["template"]["spec"]
    [main] = pod_template["containers"]
    assert env_of(main)[E.DB_CLEAN_RETENTION_DAYS] == "30"
    assert pod_template["restartPolicy"] == "Never"
    assert pod_template["serviceAccountName"] == names.DATABASE_CLEANUP
