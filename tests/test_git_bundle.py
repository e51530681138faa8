"""dags.delivery: git-bundle: Airflow's own GitDagBundle, configured through
[dag_processor] dag_bundle_config_list. Every Airflow process knows the bundle; only the processes that
clone (the dag-processor, and where tasks run) get the clone directory, the Git connection from the
user's Secret (secretKeyRef, never a value) and the network path to the Git server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.airflow_pods import dag_sources
from components.config import names
from tests.netpol import Endpoint, allowed
from tests.support import Evaluation, evaluate_ok, reveal
from tools.mock_engine import evaluate_stack

E = names.AirflowEnv
C = names.Component
REPO = "https://git.example.com/team/dags.git"
CONNECTION = "AIRFLOW_CONN_AIRFLOW_K8S_DAGS_GIT"
PUBLIC: dict[str, Any] = {"delivery": "git-bundle", "gitBundle": {"repo": REPO}}
PRIVATE: dict[str, Any] = {
    "delivery": "git-bundle",
    "gitBundle": {
        "repo": REPO,
        "ref": "release",
        "subPath": "/airflow/dags/",
        "credentialsSecret": "dags-git",
        "refreshInterval": 120,
    },
}
GIT_SERVER = Endpoint(None, ip="10.20.30.40")
"""A Git server in a private range: task egress (network.taskEgressTo) does not reach it, only gitEgressTo."""
NETWORK: dict[str, Any] = {"gitEgressTo": [{"ipBlock": {"cidr": "10.20.30.0/24"}}], "gitEgressPorts": [9418]}


def pod_specs(evaluation: Evaluation) -> dict[str, dict[str, Any]]:
    """Every Airflow pod the stack runs, by workload name (the KubernetesExecutor's template included)."""
    found: dict[str, dict[str, Any]] = {}
    for obj in evaluation.kubernetes_objects():
        if obj["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob"):
            template = (
                obj["spec"]["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else obj["spec"]["template"]
            )
            found[obj["metadata"]["name"]] = reveal(template["spec"])
        elif obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == names.POD_TEMPLATE_CONFIG_MAP:
            text = reveal(obj["data"])[names.POD_TEMPLATE_KEY]
            found["task-pod"] = json.loads(text)["spec"]
    return found


def containers_with(evaluation: Evaluation, wanted: Any) -> set[tuple[str, str]]:
    return {
        (workload, container["name"])
        for workload, spec in pod_specs(evaluation).items()
        for container in [*spec.get("initContainers", []), *spec["containers"]]
        if wanted(container, spec)
    }


def env_entry(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in container.get("env", []) if e["name"] == name), None)


def mounts_clone_dir(container: dict[str, Any], spec: dict[str, Any]) -> bool:
    return any(m["name"] == dag_sources.BUNDLE_VOLUME for m in container.get("volumeMounts", []))


def has_connection(container: dict[str, Any], spec: dict[str, Any]) -> bool:
    return env_entry(container, CONNECTION) is not None


def test_the_bundle_config_list_holds_one_git_bundle_with_the_settings() -> None:
    evaluation = evaluate_ok(dags=PRIVATE)
    spec = pod_specs(evaluation)[names.DAG_PROCESSOR]
    entry = env_entry(spec["containers"][0], E.DAG_BUNDLE_CONFIG_LIST)
    assert entry is not None
    assert json.loads(entry["value"]) == [
        {
            "name": "dags",
            "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
            "kwargs": {
                "repo_url": REPO,
                "tracking_ref": "release",
                "subdir": "airflow/dags",
                "git_conn_id": "airflow_k8s_dags_git",
                "refresh_interval": 120,
            },
        }
    ]


def test_every_airflow_process_knows_the_same_bundle_and_storage_path() -> None:
    evaluation = evaluate_ok(dags=PUBLIC)
    values = {
        (entry["value"], storage["value"])
        for spec in pod_specs(evaluation).values()
        for container in spec["containers"]
        if (entry := env_entry(container, E.DAG_BUNDLE_CONFIG_LIST))
        and (storage := env_entry(container, E.DAG_BUNDLE_STORAGE_PATH))
    }
    assert len(values) == 1
    [(config_list, storage_path)] = values
    assert storage_path == dag_sources.BUNDLE_STORAGE
    # a public repository: the URL alone, no connection
    assert json.loads(config_list)[0]["kwargs"] == {"repo_url": REPO, "tracking_ref": "main", "refresh_interval": 300}
    assert not containers_with(evaluation, has_connection)


def test_dev_clones_in_the_dag_processor_and_the_scheduler_that_runs_tasks() -> None:
    evaluation = evaluate_ok(dags=PRIVATE)
    cloning = {(names.DAG_PROCESSOR, "dag-processor"), (names.SCHEDULER, "scheduler")}
    assert containers_with(evaluation, has_connection) == cloning
    assert containers_with(evaluation, mounts_clone_dir) == cloning


def test_prod_clones_in_the_dag_processor_workers_and_task_pods_only() -> None:
    evaluation = evaluate_ok("prod", dags=PRIVATE)
    cloning = containers_with(evaluation, has_connection)
    assert (names.DAG_PROCESSOR, "dag-processor") in cloning
    assert ("task-pod", "base") in cloning
    workers = {workload for workload, container in cloning if workload.startswith(names.WORKER)}
    assert workers and all(container == "worker" for workload, container in cloning if workload in workers)
    assert {workload for workload, _ in cloning} == {names.DAG_PROCESSOR, "task-pod", *workers}
    assert containers_with(evaluation, mounts_clone_dir) == cloning


def test_the_connection_comes_only_from_the_users_secret() -> None:
    evaluation = evaluate_ok("prod", dags=PRIVATE)
    for workload, spec in pod_specs(evaluation).items():
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            entry = env_entry(container, CONNECTION)
            if entry is not None:
                assert entry == {
                    "name": CONNECTION,
                    "valueFrom": {"secretKeyRef": {"name": "dags-git", "key": "connection"}},
                }, (workload, container["name"])
            # nothing of the Secret is mounted as a file
            for volume in spec.get("volumes", []):
                assert volume.get("secret", {}).get("secretName") != "dags-git"


def test_the_clone_dir_is_a_writable_empty_dir_and_no_git_sync_runs() -> None:
    evaluation = evaluate_ok(dags=PUBLIC)
    spec = pod_specs(evaluation)[names.DAG_PROCESSOR]
    volume = next(v for v in spec["volumes"] if v["name"] == dag_sources.BUNDLE_VOLUME)
    assert "emptyDir" in volume
    [mount] = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == dag_sources.BUNDLE_VOLUME]
    assert mount["mountPath"] == dag_sources.BUNDLE_STORAGE and not mount.get("readOnly")
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    names_of_containers = {c["name"] for s in pod_specs(evaluation).values() for c in s.get("initContainers", [])}
    assert not {"git-sync", "git-sync-init"} & names_of_containers
    assert names.DAGS_CONFIG_MAP not in evaluation.names_of("ConfigMap")
    # pods that never clone get no clone directory
    for workload in (names.API_SERVER, names.TRIGGERER):
        assert dag_sources.BUNDLE_VOLUME not in {v["name"] for v in pod_specs(evaluation)[workload]["volumes"]}


@pytest.mark.parametrize(
    ("bundle", "key", "fragment"),
    [
        ({}, "dags.gitBundle.repo", "required when delivery is git-bundle"),
        ({"repo": "ftp://git.example.com/dags.git"}, "dags.gitBundle.repo", "a Git URL starting with"),
        (
            {"repo": "git://git.example.com/dags.git", "credentialsSecret": "dags-git"},
            "dags.gitBundle.credentialsSecret",
            "no authentication",
        ),
        ({"repo": REPO, "refreshInterval": -1}, "dags.gitBundle.refreshInterval", "non-negative integer"),
        ({"repo": REPO, "ref": " "}, "dags.gitBundle.ref", "a branch, tag or commit"),
    ],
)
def test_invalid_settings_are_refused_by_key(bundle: dict[str, Any], key: str, fragment: str) -> None:
    evaluation = evaluate_stack("dev", {"dags": {"delivery": "git-bundle", "gitBundle": bundle}})
    message = str(evaluation.error)
    assert f"airflow-k8s:{key}" in message, message
    assert fragment in message, message
    assert evaluation.registrations == []


def network_policies(evaluation: Evaluation) -> list[dict[str, Any]]:
    return [reveal(o) for o in evaluation.kubernetes_objects() if o["kind"] == "NetworkPolicy"]


def pod(evaluation: Evaluation, component: str) -> Endpoint:
    namespace = evaluation.outputs["namespace"]
    return Endpoint(namespace, names.labels(component, namespace))


@pytest.mark.parametrize(
    ("stack", "component", "expected"),
    [
        ("dev", C.DAG_PROCESSOR, True),
        ("dev", C.SCHEDULER, True),  # LocalExecutor tasks
        ("dev", C.API_SERVER, False),
        ("dev", C.TRIGGERER, False),
        ("prod", C.DAG_PROCESSOR, True),
        ("prod", C.WORKER, True),
        ("prod", C.KUBERNETES_TASK, True),
        ("prod", C.SCHEDULER, False),
        ("prod", C.API_SERVER, False),
        ("prod", C.TRIGGERER, False),
    ],
)
def test_the_pods_that_clone_reach_the_git_server(stack: str, component: str, expected: bool) -> None:
    evaluation = evaluate_ok(stack, dags=PUBLIC, network={"enabled": True, **NETWORK})
    assert allowed(network_policies(evaluation), pod(evaluation, component), GIT_SERVER, 9418) == expected


def test_git_sync_egress_is_not_opened_for_the_git_bundle() -> None:
    evaluation = evaluate_ok(dags=PUBLIC, network={"enabled": True, **NETWORK})
    assert "airflow-git-sync" not in evaluation.names_of("NetworkPolicy")
