"""Helpers shared by the tests: evaluate the program under mocks and look into what it registered."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from typing import Any

from components.airflow_pods import dag_sources
from tools.mock_engine import Evaluation, Secret, evaluate_stack, reveal

__all__ = [
    "Evaluation",
    "Secret",
    "canonical",
    "command_secret",
    "containers",
    "decoded_secret",
    "env_of",
    "evaluate_ok",
    "pod_spec",
    "reveal",
    "secret_file_source",
]


def evaluate_ok(stack: str = "dev", secret_overrides: dict[str, Any] | None = None, **overrides: Any) -> Evaluation:
    """Evaluate a stack file with some keys replaced; fail the test if the program raised.

    The same arguments give the same evaluation (the program is deterministic, tests/test_determinism.py),
    so it is made once per test process and shared: tests read it, and copy (``reveal``) to change it.
    """
    key = json.dumps([stack, overrides, secret_overrides, str(dag_sources.REPOSITORY_DAGS)], sort_keys=True)
    return _evaluate_once(key)


@functools.cache
def _evaluate_once(key: str) -> Evaluation:
    stack, overrides, secret_overrides, _ = json.loads(key)
    evaluation = evaluate_stack(stack, overrides, secret_overrides)
    if evaluation.error is not None:
        raise AssertionError(f"program failed: {evaluation.error}") from evaluation.error
    return evaluation


def decoded_secret(evaluation: Evaluation, name: str) -> dict[str, str]:
    data = evaluation.find("Secret", name)["data"]
    assert isinstance(data, Secret), f"Secret {name} data is not a Pulumi secret"
    return {k: base64.b64decode(v).decode() for k, v in reveal(data).items()}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"] if obj.get("kind") == "Pod" else obj["spec"]["template"]["spec"]


def containers(obj: dict[str, Any], init: bool = False) -> Iterator[dict[str, Any]]:
    spec = pod_spec(obj)
    if init:
        yield from spec.get("initContainers", [])
    yield from spec["containers"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or -> the valueFrom source."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def canonical(evaluation: Evaluation) -> str:
    """Every registration, secrets marked, as one JSON text (for byte comparisons)."""

    def encode(value: Any) -> Any:
        if isinstance(value, Secret):
            return {"<secret>": encode(value.value)}
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    rows = [  # registration order follows async resolution; identity is the URN
        {
            "type": r.type,
            "name": r.name,
            "parent": r.parent,
            "inputs": encode(r.inputs),
            "protect": r.protect,
            "ignoreChanges": r.ignore_changes,
            "dependencies": r.dependencies,
        }
        for r in sorted(evaluation.registrations, key=lambda r: r.urn)
    ]
    return json.dumps({"resources": rows, "outputs": encode(evaluation.outputs)}, sort_keys=True)


def secret_file_source(obj: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret name, key) behind a file path in a container: mount -> volume -> item."""
    volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})  # claim templates have no volume entry
        if "subPath" in mount and path == mount["mountPath"] and "secret" in volume:
            # one file of the volume, mounted on its own
            assert mount.get("readOnly") is True, mount
            items = volume["secret"].get("items") or []
            keys = [item["key"] for item in items if item["path"] == mount["subPath"]] or [mount["subPath"]]
            return volume["secret"]["secretName"], keys[0]
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix) and "secret" in volume:
            assert mount.get("readOnly") is True, mount
            relative = path[len(prefix) :]
            items = volume["secret"].get("items") or []
            keys = [item["key"] for item in items if item["path"] == relative] or [relative]
            return volume["secret"]["secretName"], keys[0]
    raise AssertionError(f"{path} is not in a mounted Secret of {container['name']}")


def command_secret(obj: dict[str, Any], container: dict[str, Any], variable: str) -> tuple[str, str]:
    """The Secret and key an Airflow ``<variable>_CMD`` setting reads (``cat <file>``)."""
    command = env_of(container)[f"{variable}_CMD"]
    assert isinstance(command, str) and command.startswith("cat /"), command
    assert variable not in env_of(container), f"{variable} must not be in the environment"
    return secret_file_source(obj, container, command.removeprefix("cat "))


def assert_registers_as_the_sdk_custom_resource(manifest: Any) -> None:
    """Our registration of a custom resource equals pulumi-kubernetes' ``CustomResource``: the same type
    token, name, inputs and aliases (so switching between them changes nothing)."""
    import pulumi

    from components.kube.objects import register
    from tools.mock_engine import evaluate

    obj: dict[str, Any] = json.loads(json.dumps(manifest))

    def through_sdk() -> None:
        from pulumi_kubernetes.apiextensions import CustomResource  # pyright: ignore[reportMissingTypeStubs]

        extra = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        CustomResource(
            obj["metadata"]["name"], api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"], **extra
        )

    def through_program() -> None:
        register(manifest, pulumi.ResourceOptions())

    sdk, ours = evaluate({}, program=through_sdk), evaluate({}, program=through_program)
    assert sdk.error is None and ours.error is None, (sdk.error, ours.error)
    token = f"kubernetes:{obj['apiVersion']}:{obj['kind']}"
    [expected] = sdk.of_type(token)
    [actual] = ours.of_type(token)
    assert (actual.name, actual.inputs, actual.aliases) == (expected.name, expected.inputs, expected.aliases)
