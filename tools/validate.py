"""Strict schema validation of rendered objects, offline.

* Kubernetes built-in kinds: ``kubernetes-validate`` in strict mode (unknown fields rejected), for any
  version it ships.
* KEDA kinds: the ``openAPIV3Schema`` of the served version in the CRDs vendored under ``tools/crds``
  (copied unchanged from kedacore/keda, see its SOURCE.md), made strict the way the API server's field
  validation is (unknown fields rejected wherever the schema does not preserve them).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
KEDA_CRDS = ROOT / "tools" / "crds" / "keda-v2.20.2"
KEDA_FILES = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())

# kubernetes-validate reads its schema files again for every object (the definitions file is large):
# read each once. Its schemas are only read, never changed, so sharing them is safe.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


class SchemaError(ValueError):
    pass


def strict(schema: Any) -> Any:
    """Reject unknown fields: additionalProperties false on every object that lists its properties."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}  # pyright: ignore[reportUnknownVariableType]
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out  # pyright: ignore[reportUnknownVariableType]
    if isinstance(schema, list):
        return [strict(v) for v in schema]  # pyright: ignore[reportUnknownVariableType]
    return schema


@functools.cache
def crd_schema(kind: str, api_version: str) -> dict[str, Any]:
    path = KEDA_CRDS / KEDA_FILES[kind]
    crd = yaml.safe_load(path.read_text())
    version = api_version.split("/")[1]
    for served in crd["spec"]["versions"]:
        if served["name"] == version and served.get("served", False):
            schema = copy.deepcopy(served["schema"]["openAPIV3Schema"])
            # metadata is validated by the API server itself, not by the CRD's schema
            schema["properties"]["metadata"] = {"type": "object"}
            return strict(schema)
    raise SchemaError(f"{path.name} serves no version {version}")


def validate(obj: dict[str, Any], kubernetes_version: str = KUBERNETES_VERSIONS[0]) -> None:
    """Raise SchemaError naming the object and the first violation."""
    kind = obj.get("kind", "?")
    name = obj.get("metadata", {}).get("name", "?")
    try:
        if kind in KEDA_FILES:
            jsonschema.Draft7Validator(crd_schema(kind, obj["apiVersion"])).validate(obj)
        else:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
        raise SchemaError(f"{kind}/{name} (Kubernetes {kubernetes_version}): {error.message}") from error
