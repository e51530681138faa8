"""Explicit wiring: a workload depends on, and carries the checksums of, exactly the objects its pods use,
found through the handles its component was given; a missing handle is an immediate, named error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
import pytest

from components.airflow_pods.workload import AirflowPodHandles
from components.config import names
from components.config.model import StackConfig
from components.control_plane.scheduler import Scheduler, SchedulerArgs
from components.kube import wiring
from components.kube.wiring import (
    ConfigMapHandle,
    IdentityHandle,
    NamespaceHandle,
    SecretHandle,
    WiringError,
    references,
    wire,
)
from tests.support import Evaluation, Secret, pod_spec
from tools.mock_engine import evaluate, evaluate_stack, reveal

if TYPE_CHECKING:
    from components.kube.manifest_types import PodSpec

POD: PodSpec = {
    "serviceAccountName": "runner",
    "containers": [
        {
            "name": "main",
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "api"}}}],
            "envFrom": [{"secretRef": {"name": "users-own"}}],
        }
    ],
    "volumes": [
        {"name": "settings", "configMap": {"name": "settings"}},
        {"name": "keys", "secret": {"secretName": "keys", "items": [{"key": "signing", "path": "signing"}]}},
    ],
}


class Stub(pulumi.CustomResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Stub", name, {})


def handles() -> dict[str, Any]:
    return {
        "namespace": NamespaceHandle("ns", Stub("ns")),
        "identity": IdentityHandle("runner", False, Stub("runner")),
        "tokens": SecretHandle("tokens", frozenset({"api"}), pulumi.Output.from_input({"api": "t"}), Stub("tokens")),
        "keys": SecretHandle("keys", frozenset({"signing"}), pulumi.Output.from_input({"signing": "s"}), Stub("keys")),
        "settings": ConfigMapHandle("settings", {"a": "1"}, Stub("settings")),
        "unused": ConfigMapHandle("unused", {"b": "2"}, Stub("unused")),
    }


def run(program: Any) -> Evaluation:
    return evaluate({}, program=program)


def test_references_name_every_secret_and_config_map_with_the_keys_the_pod_names() -> None:
    found = {(r.kind, r.name): r.keys for r in references(POD)}
    assert found == {
        ("Secret", "tokens"): frozenset({"api"}),
        ("Secret", "users-own"): frozenset(),
        ("Secret", "keys"): frozenset({"signing"}),
        ("ConfigMap", "settings"): frozenset(),
    }


def test_a_pod_depends_on_exactly_what_it_uses_in_a_fixed_order() -> None:
    result: dict[str, Any] = {}

    def program() -> None:
        h = handles()
        uses = [h["settings"], h["unused"], h["keys"], h["tokens"], None]
        result["wiring"] = wire(POD, h["namespace"], h["identity"], uses, external_secrets={"users-own"})
        result["expected"] = [h[name].resource for name in ("namespace", "identity", "keys", "tokens", "settings")]

    assert run(program).error is None
    assert result["wiring"].depends_on == result["expected"]
    assert set(result["wiring"].annotations) == {wiring.CONFIG_ANNOTATION, wiring.SECRETS_ANNOTATION}


@pytest.mark.parametrize(
    ("dropped", "message"),
    [
        ("tokens", "Secret 'tokens', but no handle"),
        ("settings", "ConfigMap 'settings', but no handle"),
        ("keys", "Secret 'keys', but no handle"),
    ],
)
def test_dropping_a_handle_the_pod_uses_is_an_error_naming_it(dropped: str, message: str) -> None:
    def program() -> None:
        h = handles()
        uses = [h[name] for name in ("tokens", "keys", "settings") if name != dropped]
        wire(POD, h["namespace"], h["identity"], uses, external_secrets={"users-own"})

    evaluation = run(program)
    assert isinstance(evaluation.error, WiringError)
    assert message in str(evaluation.error)


def test_a_secret_the_stack_does_not_manage_must_be_declared_as_the_users_own() -> None:
    def program() -> None:
        h = handles()
        wire(POD, h["namespace"], h["identity"], [h["tokens"], h["keys"], h["settings"]])

    assert "Secret 'users-own', but no handle" in str(run(program).error)


def test_a_key_the_object_lacks_is_an_error() -> None:
    def program() -> None:
        h = handles()
        keys = SecretHandle("keys", frozenset({"other"}), pulumi.Output.from_input({"other": "o"}), Stub("k2"))
        wire(POD, h["namespace"], h["identity"], [h["tokens"], keys, h["settings"]], external_secrets={"users-own"})

    assert "keys ['signing'] of Secret 'keys', which it lacks" in str(run(program).error)


def test_a_pod_running_as_another_identity_is_an_error() -> None:
    def program() -> None:
        h = handles()
        other = IdentityHandle("someone-else", False, Stub("else"))
        wire(POD, h["namespace"], other, [h["tokens"], h["keys"], h["settings"]], external_secrets={"users-own"})

    assert "runs as 'runner'" in str(run(program).error)


def test_the_scheduler_without_the_task_pod_template_handle_fails_before_registering_its_deployment() -> None:
    def program() -> None:
        h = handles()
        secret = h["tokens"]
        shared = AirflowPodHandles(
            namespace=h["namespace"],
            settings=ConfigMapHandle(names.AIRFLOW_CONFIG_MAP, {"airflow.cfg": ""}, Stub("cfg")),
            scripts=ConfigMapHandle(names.SCRIPTS_CONFIG_MAP, {}, Stub("scripts")),
            metadata=SecretHandle(names.METADATA_SECRET, frozenset({"connection"}), secret.content, Stub("m")),
            keys=SecretHandle(
                names.KEYS_SECRET, frozenset({"fernet-key", "api-secret-key", "jwt-secret"}), secret.content, Stub("k")
            ),
            connections=None,
            broker=None,
            dags=ConfigMapHandle(names.DAGS_CONFIG_MAP, {}, Stub("dags")),
        )
        config = StackConfig(executor="KubernetesExecutor")
        identity = IdentityHandle(names.SCHEDULER, True, Stub("sa"))
        Scheduler("scheduler", SchedulerArgs(config, shared, identity, task_pod_template=None))

    evaluation = run(program)
    assert isinstance(evaluation.error, WiringError)
    assert "ConfigMap 'airflow-pod-template', but no handle" in str(evaluation.error)
    assert not [r for r in evaluation.registrations if r.type.endswith("Deployment")]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_workload_depends_on_each_object_its_pods_reference(stack: str) -> None:
    evaluation = evaluate_stack(stack)
    assert evaluation.error is None
    urns = {(r.inputs.get("kind"), r.inputs.get("metadata", {}).get("name")): r.urn for r in evaluation.custom()}
    checked = 0
    for registration in evaluation.custom():
        if registration.inputs.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        spec = pod_spec(reveal(registration.inputs))
        wanted = {("ServiceAccount", spec["serviceAccountName"])}
        wanted |= {(r.kind, r.name) for r in references(spec) if (r.kind, r.name) in urns}
        for key in wanted:
            assert urns[key] in registration.dependencies, (registration.name, key)
            checked += 1
        annotations = registration.inputs["spec"]["template"]["metadata"].get("annotations", {})
        if any(kind == "Secret" for kind, _ in wanted):
            assert isinstance(annotations[wiring.SECRETS_ANNOTATION], Secret), registration.name
    assert checked > 20
