"""Strict schema validation of rendered objects, offline.

* Kubernetes built-in kinds: ``kubernetes-validate`` in strict mode (unknown fields rejected), for any
  version it ships.
* Custom kinds (KEDA; Gateway API: HTTPRoute, Gateway, GatewayClass, ReferenceGrant; Prometheus
  operator: ServiceMonitor, PodMonitor, PrometheusRule): the ``openAPIV3Schema`` of the served version in
  the CRDs vendored under ``tools/crds`` (copied unchanged from kedacore/keda,
  kubernetes-sigs/gateway-api and prometheus-operator/prometheus-operator, see their SOURCE.md), made
  strict the way the API server's field validation is (unknown fields rejected wherever the schema does
  not preserve them).
  The CRDs' CEL rules (``x-kubernetes-validations``) are not evaluated here: the real API server tier
  (tests/kube_apiserver.py) does that.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "tools" / "crds"
KEDA_CRDS = CRDS / "keda-v2.20.2"
KEDA_FILES = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}
GATEWAY_API_CRDS = CRDS / "gateway-api-v1.6.1"
GATEWAY_API_FILES = {
    "HTTPRoute": "gateway.networking.k8s.io_httproutes.yaml",
    "Gateway": "gateway.networking.k8s.io_gateways.yaml",
    "GatewayClass": "gateway.networking.k8s.io_gatewayclasses.yaml",
    "ReferenceGrant": "gateway.networking.k8s.io_referencegrants.yaml",
}
PROMETHEUS_OPERATOR_CRDS = CRDS / "prometheus-operator-v0.93.0"
PROMETHEUS_OPERATOR_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
CRD_FILES: dict[tuple[str, str], Path] = {
    **{("keda.sh", kind): KEDA_CRDS / file for kind, file in KEDA_FILES.items()},
    **{("gateway.networking.k8s.io", kind): GATEWAY_API_CRDS / file for kind, file in GATEWAY_API_FILES.items()},
    **{
        ("monitoring.coreos.com", kind): PROMETHEUS_OPERATOR_CRDS / file
        for kind, file in PROMETHEUS_OPERATOR_FILES.items()
    },
}
"""(API group, kind) of every custom kind validated here -> its vendored CRD."""
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())

# kubernetes-validate reads its schema files again for every object (the definitions file is large):
# read each once. Its schemas are only read, never changed, so sharing them is safe.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


class SchemaError(ValueError):
    pass


JUNCTORS = frozenset({"allOf", "anyOf", "oneOf", "not"})
"""In a structural schema these only add value checks: the fields an object may have are the ones its
own ``properties`` list (e.g. Gateway's addresses: ``oneOf: [{properties: {type, value}}, {properties:
{type}}]``), so they are left as they are."""


def strict(schema: Any) -> Any:
    """Reject unknown fields: additionalProperties false on every object that lists its properties."""
    if isinstance(schema, dict):
        fields = cast("dict[str, Any]", schema)
        out = {k: v if k in JUNCTORS else strict(v) for k, v in fields.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in cast("list[Any]", schema)]
    return schema


GO_LEADING_FLAGS = re.compile(r"^\^\((\?[a-zA-Z]+)\)")
"""``^(?i)...``: RE2 (the API server's regexes) takes inline flags anywhere, Python only at the start."""


def python_patterns(schema: Any) -> Any:
    """The schema with each ``pattern`` written so Python's ``re`` reads it as RE2 does (e.g.
    PrometheusRule's ``partial_response_strategy``: ``^(?i)(abort|warn)?$`` -> ``(?i)^(abort|warn)?$``)."""
    if isinstance(schema, dict):
        fields = cast("dict[str, Any]", schema)
        out = {k: python_patterns(v) for k, v in fields.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str):
            out["pattern"] = GO_LEADING_FLAGS.sub(r"(\1)^", pattern)
        return out
    if isinstance(schema, list):
        return [python_patterns(v) for v in cast("list[Any]", schema)]
    return schema


def crd_path(kind: str, api_version: str) -> Path | None:
    """The vendored CRD of a custom kind, or None for a kind validated by kubernetes-validate."""
    return CRD_FILES.get((api_version.rpartition("/")[0], kind))


@functools.cache
def crd_schema(kind: str, api_version: str) -> dict[str, Any]:
    path = crd_path(kind, api_version)
    if path is None:
        raise SchemaError(f"no vendored CRD for {kind} ({api_version})")
    crd = yaml.safe_load(path.read_text())
    version = api_version.rpartition("/")[2]
    for served in crd["spec"]["versions"]:
        if served["name"] == version and served.get("served", False):
            schema = copy.deepcopy(served["schema"]["openAPIV3Schema"])
            # metadata is validated by the API server itself, not by the CRD's schema
            schema["properties"]["metadata"] = {"type": "object"}
            return python_patterns(strict(schema))
    raise SchemaError(f"{path.name} serves no version {version}")


def validate(obj: dict[str, Any], kubernetes_version: str = KUBERNETES_VERSIONS[0]) -> None:
    """Raise SchemaError naming the object, where in it (e.g. ``spec.rules[0].matches[0].path.type``)
    and the first violation."""
    kind = obj.get("kind", "?")
    name = obj.get("metadata", {}).get("name", "?")
    api_version = str(obj.get("apiVersion", ""))
    try:
        if crd_path(kind, api_version) is not None:
            validator = jsonschema.Draft7Validator(crd_schema(kind, api_version))
            validator.validate(obj)  # pyright: ignore[reportUnknownMemberType]
        else:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
        where = f"at {field_path(error.absolute_path)}: " if error.absolute_path else ""
        raise SchemaError(f"{kind}/{name} (Kubernetes {kubernetes_version}): {where}{error.message}") from error


def field_path(path: Iterable[str | int]) -> str:
    """``spec.rules[0].matches``, as the API server writes a field's path."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
