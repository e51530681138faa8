"""Least-privilege RBAC: the exact pod-launcher rules, bindings only where pods are launched."""

from __future__ import annotations

import pytest

from components.config import names
from tests.support import Evaluation, evaluate_ok

EXPECTED_POD_LAUNCHER_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
]


def bound_identities(evaluation: Evaluation, role: str) -> set[str]:
    bound: set[str] = set()
    for obj in evaluation.kubernetes_objects():
        if obj["kind"] == "RoleBinding" and obj["roleRef"]["name"] == role:
            assert obj["roleRef"]["kind"] == "Role"
            bound |= {s["name"] for s in obj["subjects"]}
    return bound


def test_pod_launcher_role_has_exactly_the_rules_pod_launching_needs(dev: Evaluation) -> None:
    role = dev.find("Role", names.POD_LAUNCHER_ROLE)
    assert role["rules"] == EXPECTED_POD_LAUNCHER_RULES


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_cluster_roles_and_no_wildcards(stack: str, dev: Evaluation, prod: Evaluation) -> None:
    evaluation = dev if stack == "dev" else prod
    kinds = {obj["kind"] for obj in evaluation.kubernetes_objects()}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    for obj in evaluation.kubernetes_objects():
        for rule in obj.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (obj["metadata"]["name"], rule)


@pytest.mark.parametrize(
    ("executor", "launchers"),
    [
        # LocalExecutor: tasks (KubernetesPodOperator included) run inside the scheduler
        ("LocalExecutor", {names.SCHEDULER, names.TRIGGERER}),
        ("KubernetesExecutor", {names.SCHEDULER, names.TRIGGERER, names.WORKER}),
        ("CeleryExecutor", {names.TRIGGERER, names.WORKER}),
        ("CeleryExecutor,KubernetesExecutor", {names.SCHEDULER, names.TRIGGERER, names.WORKER}),
    ],
)
def test_only_pod_launching_identities_are_bound_to_the_pod_launcher(executor: str, launchers: set[str]) -> None:
    evaluation = evaluate_ok(executor=executor)
    assert bound_identities(evaluation, names.POD_LAUNCHER_ROLE) == launchers


@pytest.mark.parametrize("executor", ["LocalExecutor", "KubernetesExecutor", "CeleryExecutor,KubernetesExecutor"])
def test_token_is_mounted_only_for_identities_that_call_the_kubernetes_api(executor: str) -> None:
    evaluation = evaluate_ok(executor=executor)
    calls_api = bound_identities(evaluation, names.POD_LAUNCHER_ROLE) | bound_identities(
        evaluation, names.POD_LOG_READER_ROLE
    )
    accounts = {
        obj["metadata"]["name"]: obj["automountServiceAccountToken"]
        for obj in evaluation.kubernetes_objects()
        if obj["kind"] == "ServiceAccount"
    }
    assert {name for name, mounted in accounts.items() if mounted} == calls_api
    assert accounts[names.DAG_PROCESSOR] is False
    assert accounts[names.TASK_POD] is False


def test_api_server_may_read_pod_logs_only_with_the_kubernetes_executor() -> None:
    with_pods = evaluate_ok(executor="KubernetesExecutor")
    assert bound_identities(with_pods, names.POD_LOG_READER_ROLE) == {names.API_SERVER}
    assert with_pods.find("Role", names.POD_LOG_READER_ROLE)["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    without = evaluate_ok(executor="LocalExecutor")
    assert names.POD_LOG_READER_ROLE not in without.names_of("Role")


def test_bindings_name_service_accounts_in_the_stack_namespace(prod: Evaluation) -> None:
    accounts = prod.names_of("ServiceAccount")
    for obj in prod.kubernetes_objects():
        if obj["kind"] == "RoleBinding":
            for subject in obj["subjects"]:
                assert subject == {"kind": "ServiceAccount", "name": subject["name"], "namespace": "airflow"}
                assert subject["name"] in accounts
