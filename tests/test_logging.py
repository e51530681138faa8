"""Task logs, offline: remote logging settings and who holds the connection, the logs volume, retention."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from components.config import names
from components.config.loading import ConfigError, load_stack_config
from components.control_plane.settings import SCRIPTS
from tests.support import containers, env_of, evaluate_ok, pod_spec
from tools.mock_engine import Evaluation, reveal

E = names.AirflowEnv
S3: dict[str, Any] = {
    "remote": {
        "enabled": True,
        "baseFolder": "s3://airflow-logs/prod",
        "connectionSecret": "airflow-log-store",
        "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/airflow-logs"},
    }
}
AIRFLOW_WORKLOADS = (names.API_SERVER, names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER)


@pytest.fixture(scope="module")
def remote() -> Evaluation:
    return evaluate_ok("dev", executor="CeleryExecutor,KubernetesExecutor", logging=S3)


def all_containers(evaluation: Evaluation, workload: str) -> list[dict[str, Any]]:
    deployment = reveal(evaluation.find("Deployment", workload))
    return [*containers(deployment, init=True), *containers(deployment)]


def test_every_airflow_process_gets_the_remote_logging_settings(remote: Evaluation) -> None:
    for workload in (*AIRFLOW_WORKLOADS, names.worker_set("default")):
        server = next(iter(containers(reveal(remote.find("Deployment", workload)))))
        environment = env_of(server)
        assert environment[E.REMOTE_LOGGING] == "True", workload
        assert environment[E.REMOTE_BASE_LOG_FOLDER] == "s3://airflow-logs/prod"
        assert environment[E.REMOTE_LOG_CONN_ID] == "remote_logs"
        assert environment[E.DELETE_LOCAL_LOGS] == "True"
    template = remote.find("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP)["data"][names.POD_TEMPLATE_KEY]
    assert "s3://airflow-logs/prod" in template


def test_only_the_api_server_and_the_triggerer_hold_the_log_stores_connection(remote: Evaluation) -> None:
    """Task processes fetch it through the execution API when they upload (tests/test_remote_logs_real.py)."""
    holders: set[str] = set()
    for workload in (*AIRFLOW_WORKLOADS, names.worker_set("default")):
        for container in all_containers(remote, workload):
            source = env_of(container).get("AIRFLOW_CONN_REMOTE_LOGS")
            if source is not None:
                assert source == {"secretKeyRef": {"name": "airflow-log-store", "key": "connection"}}
                holders.add(f"{workload}/{container['name']}")
    assert holders == {f"{names.API_SERVER}/api-server", f"{names.TRIGGERER}/triggerer"}
    template = remote.find("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP)["data"][names.POD_TEMPLATE_KEY]
    assert "airflow-log-store" not in template


def test_workload_identity_annotates_exactly_the_accounts_that_write_or_read_logs(remote: Evaluation) -> None:
    annotated = {
        account["metadata"]["name"]
        for account in (reveal(o) for o in remote.kubernetes_objects() if o["kind"] == "ServiceAccount")
        if "eks.amazonaws.com/role-arn" in account["metadata"].get("annotations", {})
    }
    assert annotated == {names.API_SERVER, names.TRIGGERER, names.WORKER}
    local = evaluate_ok("dev", logging=S3)
    accounts = {o["metadata"]["name"]: reveal(o) for o in local.kubernetes_objects() if o["kind"] == "ServiceAccount"}
    # LocalExecutor: the scheduler runs the tasks, so it uploads their logs
    assert "annotations" in accounts[names.SCHEDULER]["metadata"]


def test_gcs_is_the_second_backend() -> None:
    evaluation = evaluate_ok(
        "dev", logging={"remote": {"enabled": True, "backend": "gcs", "baseFolder": "gs://logs/a"}}
    )
    environment = env_of(next(iter(containers(reveal(evaluation.find("Deployment", names.API_SERVER))))))
    assert environment[E.REMOTE_BASE_LOG_FOLDER] == "gs://logs/a"
    assert "AIRFLOW_CONN_REMOTE_LOGS" not in environment  # no Secret: workload identity


def test_without_remote_logging_nothing_is_set() -> None:
    environment = env_of(next(iter(containers(reveal(evaluate_ok("dev").find("Deployment", names.SCHEDULER))))))
    assert E.REMOTE_LOGGING not in environment


# --- the logs volume -------------------------------------------------------------------------------------


def test_a_shared_logs_volume_replaces_every_pods_empty_dir() -> None:
    evaluation = evaluate_ok(
        "dev",
        executor="KubernetesExecutor",
        logging={"volume": {"enabled": True, "size": "20Gi", "storageClass": "efs"}},
    )
    claim = reveal(evaluation.find("PersistentVolumeClaim", names.LOGS_CLAIM))
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "efs",
    }
    for workload in AIRFLOW_WORKLOADS:
        [logs] = [
            v for v in pod_spec(reveal(evaluation.find("Deployment", workload)))["volumes"] if v["name"] == "logs"
        ]
        assert logs == {"name": "logs", "persistentVolumeClaim": {"claimName": names.LOGS_CLAIM}}, workload
    template = evaluation.find("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP)["data"][names.POD_TEMPLATE_KEY]
    assert names.LOGS_CLAIM in template


def test_remote_logging_and_a_logs_volume_are_one_or_the_other() -> None:
    raw = {"airflow-k8s:logging": json.dumps({**S3, "volume": {"enabled": True}})}
    with pytest.raises(ConfigError) as caught:
        load_stack_config(raw, set())
    assert [str(p) for p in caught.value.problems] == [
        "airflow-k8s:logging.volume.enabled = true: choose one: remote logging, or a shared logs volume"
    ]


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ({"enabled": True}, "airflow-k8s:logging.remote.baseFolder = (not set): required when remote logging is on"),
        (
            {"enabled": True, "baseFolder": "gs://bucket"},
            'airflow-k8s:logging.remote.baseFolder = "gs://bucket": must be s3://BUCKET[/PREFIX] for backend s3',
        ),
        (
            {"enabled": True, "backend": "azure", "baseFolder": "wasb-logs"},
            'airflow-k8s:logging.remote.backend = "azure": must be one of "s3", "gcs"',
        ),
    ],
)
def test_bad_remote_logging_is_named(remote: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config({"airflow-k8s:logging": json.dumps({"remote": remote})}, set())
    assert str(caught.value.problems[0]).startswith(expected)


# --- retention ---------------------------------------------------------------------------------------------


def test_long_lived_pods_that_write_logs_run_the_cleanup_sidecar() -> None:
    evaluation = evaluate_ok("dev", executor="CeleryExecutor", logging={"retentionDays": 7})
    for workload in (names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER, names.worker_set("default")):
        init = pod_spec(reveal(evaluation.find("Deployment", workload)))["initContainers"]
        [sidecar] = [c for c in init if c["name"] == "log-cleanup"]
        assert sidecar["restartPolicy"] == "Always"
        assert env_of(sidecar)[E.LOG_RETENTION_DAYS] == "7"
        assert not [m for m in sidecar["volumeMounts"] if m["mountPath"].startswith("/opt/airflow-k8s/secrets")]
    api_init = pod_spec(reveal(evaluation.find("Deployment", names.API_SERVER)))["initContainers"]
    assert "log-cleanup" not in [c["name"] for c in api_init]


def test_the_cleanup_deletes_files_older_than_the_retention_and_the_folders_they_leave(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    old = logs / "dag_id=a" / "run_id=r1" / "task_id=t" / "attempt=1.log"
    recent = logs / "dag_id=a" / "run_id=r2" / "task_id=t" / "attempt=1.log"
    for path, age_days in ((old, 8), (recent, 6)):
        path.parent.mkdir(parents=True)
        path.write_text("log\n")
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))
    result = subprocess.run(
        ["bash", str(SCRIPTS / "log-cleanup.sh"), "--once"],
        env={"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(tmp_path), E.LOG_RETENTION_DAYS: "7"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert not old.exists() and not old.parent.parent.exists()
    assert recent.exists()
    assert f"log-cleanup: deleted {old}" in result.stdout
