"""The offline render: deterministic, redacted, committed as snapshots, and strictly valid."""

from __future__ import annotations

import difflib
import json
from typing import Any

import pytest
import yaml

from components.config import names
from tests.variants import VARIANTS, evaluate_variant
from tools.mock_engine import reveal, walk
from tools.render import REDACTED, SNAPSHOT_STACKS, SNAPSHOTS, render, render_stack
from tools.validate import KUBERNETES_VERSIONS, validate

REFRESH = "uv run --frozen --group test python -m tools.render --update-snapshots"


@pytest.mark.parametrize("stack", SNAPSHOT_STACKS)
def test_rendered_manifests_match_the_committed_snapshot(stack: str) -> None:
    rendered = render_stack(stack)
    committed = (SNAPSHOTS / f"{stack}.yaml").read_text()
    if rendered != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True), rendered.splitlines(keepends=True), "committed", "rendered", n=2
            )
        )
        pytest.fail(f"tests/snapshots/{stack}.yaml is stale; review the diff and run: {REFRESH}\n{diff[:6000]}")


def test_render_is_stable_yaml_with_integers_and_sorted_keys() -> None:
    text = render_stack("prod")
    documents = [d for d in yaml.safe_load_all(text) if d]
    assert len(documents) > 40
    deployment = next(
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "airflow-scheduler"
    )
    assert deployment["spec"]["replicas"] == 2 and isinstance(deployment["spec"]["replicas"], int)
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert isinstance(probe["periodSeconds"], int)
    for document in documents:
        assert list(document) == sorted(document)
    kinds = [d["kind"] for d in documents]
    assert kinds.index("Namespace") == 0
    assert kinds.index("Secret") < kinds.index("Deployment")


def test_secret_values_are_redacted_but_their_keys_stay_visible() -> None:
    evaluation = evaluate_variant("dev")
    text = render(evaluation)
    for registration in evaluation.registrations:
        for _, leaf, secret in walk(registration.inputs):
            if secret and isinstance(leaf, str) and len(leaf) >= 8:
                assert leaf not in text
    documents = [d for d in yaml.safe_load_all(text) if d]
    keys = next(d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"] == "airflow-keys")
    assert keys["data"] == {"api-secret-key": REDACTED, "fernet-key": REDACTED, "jwt-secret": REDACTED}


def test_resource_options_show_in_the_render() -> None:
    text = render_stack("prod")
    assert "# pulumi: protect\napiVersion: v1\nkind: Namespace" in text
    assert "# pulumi: protect; ignoreChanges=spec.volumeClaimTemplates\napiVersion: apps/v1\nkind: StatefulSet" in text
    # the two KEDA-scaled worker sets and the api-server (its HorizontalPodAutoscaler)
    assert text.count("# pulumi: ignoreChanges=spec.replicas") == 3


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_object_of_every_variant_validates_strictly(variant: str, version: str) -> None:
    evaluation = evaluate_variant(variant)
    objects = evaluation.kubernetes_objects()
    assert objects
    for obj in objects:
        validate(reveal(obj), version)


def test_validation_rejects_unknown_fields() -> None:
    deployment = reveal(evaluate_variant("dev").find("Deployment", "airflow-scheduler"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(ValueError, match="resource"):
        validate(deployment)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_airflow_version_runs_in_a_stack(variant: str) -> None:
    """No version skew: every container that runs Airflow (servers, workers, init steps, sidecars, the
    task pod template, the db clean job) uses the one configured image; no per-component image exists."""
    evaluation = evaluate_variant(variant)
    images: set[str] = set()
    for obj in walk_pod_specs(evaluation):
        for container in [*obj.get("initContainers", []), *obj["containers"]]:
            if any(entry["name"] == names.AirflowEnv.EXECUTOR for entry in container.get("env", [])):
                images.add(container["image"])
    assert len(images) == 1, images


def walk_pod_specs(evaluation: Any) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    for obj in (reveal(o) for o in evaluation.kubernetes_objects()):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            specs.append(obj["spec"]["template"]["spec"])
        elif obj["kind"] == "CronJob":
            specs.append(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        elif obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == names.POD_TEMPLATE_CONFIG_MAP:
            specs.append(json.loads(obj["data"][names.POD_TEMPLATE_KEY])["spec"])
    return specs
