"""The namespace: explicit name, recommended labels, Pod Security admission, protection in prod."""

from __future__ import annotations

import pytest

from tests.support import Evaluation, evaluate_ok

RECOMMENDED = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)


def test_namespace_has_the_configured_name_and_recommended_labels(dev: Evaluation) -> None:
    namespace = dev.find("Namespace", "airflow-dev")
    for label in RECOMMENDED:
        assert namespace["metadata"]["labels"][label]


def test_pod_security_restricted_is_enforced_by_default(dev: Evaluation) -> None:
    labels = dev.find("Namespace", "airflow-dev")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_pod_security_enforcement_level_is_configurable() -> None:
    labels = evaluate_ok(podSecurityLevel="baseline").find("Namespace", "airflow-dev")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    # violations of restricted still show up as warnings and in the audit log
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_object_has_an_explicit_name_and_recommended_labels(
    stack: str, dev: Evaluation, prod: Evaluation
) -> None:
    evaluation = dev if stack == "dev" else prod
    for obj in evaluation.kubernetes_objects():
        meta = obj["metadata"]
        assert meta.get("name"), obj
        for label in RECOMMENDED:
            assert label in meta["labels"], (obj["kind"], meta["name"], label)


def waits_for(evaluation: Evaluation, urn: str) -> set[str]:
    """Every URN a resource waits for, directly or through what it waits for."""
    by_urn = {r.urn: r for r in evaluation.registrations}
    seen: set[str] = set()
    pending = list(by_urn[urn].dependencies)
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending += by_urn[current].dependencies if current in by_urn else []
    return seen


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_namespaced_object_is_in_the_stack_namespace_and_waits_for_it(
    stack: str, dev: Evaluation, prod: Evaluation
) -> None:
    evaluation = dev if stack == "dev" else prod
    [namespace] = evaluation.of_type("kubernetes:core/v1:Namespace")
    for registration in evaluation.registrations:
        if not registration.type.startswith("kubernetes:") or registration is namespace:
            continue
        if registration.type.startswith("pulumi:providers"):
            continue
        assert registration.inputs["metadata"]["namespace"] == namespace.inputs["metadata"]["name"]
        assert namespace.urn in waits_for(evaluation, registration.urn), registration.name


def test_workloads_wait_for_exactly_the_objects_their_pods_use(prod: Evaluation) -> None:
    scheduler = prod.registration_for("Deployment", "airflow-scheduler")
    # (the checksum annotation also makes it wait for the generated values it digests)
    waited = {urn.split("::")[-1] for urn in scheduler.dependencies if "$kubernetes:" in urn}
    assert waited == {
        "airflow",  # the namespace
        "airflow-scheduler",  # its ServiceAccount
        "airflow-metadata",
        "airflow-keys",
        "airflow-redis",
        "airflow-config",
        "airflow-scripts",
        "airflow-pod-template",
        "airflow-keda-database",  # its migration step keeps KEDA's role in sync
    }


def test_prod_protects_the_namespace_and_dev_does_not(dev: Evaluation, prod: Evaluation) -> None:
    # deleting a namespace deletes the database's volume claim with it
    assert prod.registration_for("Namespace", "airflow").protect
    assert not dev.registration_for("Namespace", "airflow-dev").protect
