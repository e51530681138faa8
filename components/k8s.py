"""Kubernetes building blocks: pure helpers for manifests, and the one place objects are registered.

Spec builders across ``components/`` return plain, Kubernetes-shaped dicts (camelCase, exactly what
``kubectl apply`` would take); :func:`register` hands such a manifest to the matching pulumi-kubernetes
resource class. Classes are imported lazily, so the program only loads the API groups it uses.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components import names
from components.config import ResourcesConfig

Manifest = dict[str, Any]

# (apiVersion, kind) -> (module, class) of the typed pulumi-kubernetes resource.
_TYPED_CLASSES: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "Namespace"): ("pulumi_kubernetes.core.v1", "Namespace"),
    ("v1", "ServiceAccount"): ("pulumi_kubernetes.core.v1", "ServiceAccount"),
    ("v1", "Secret"): ("pulumi_kubernetes.core.v1", "Secret"),
    ("v1", "ConfigMap"): ("pulumi_kubernetes.core.v1", "ConfigMap"),
    ("v1", "Service"): ("pulumi_kubernetes.core.v1", "Service"),
    ("apps/v1", "Deployment"): ("pulumi_kubernetes.apps.v1", "Deployment"),
    ("apps/v1", "StatefulSet"): ("pulumi_kubernetes.apps.v1", "StatefulSet"),
    ("rbac.authorization.k8s.io/v1", "Role"): ("pulumi_kubernetes.rbac.v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("pulumi_kubernetes.rbac.v1", "RoleBinding"),
    ("policy/v1", "PodDisruptionBudget"): ("pulumi_kubernetes.policy.v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("pulumi_kubernetes.networking.v1", "NetworkPolicy"),
}

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(key: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", key).lower()


def register(manifest: Manifest, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register one Kubernetes object. Its Pulumi name is its Kubernetes name (unique per kind)."""
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    resource_name = manifest["metadata"]["name"]
    typed = _TYPED_CLASSES.get((api_version, kind))
    if typed is None:
        custom_resource = importlib.import_module("pulumi_kubernetes.apiextensions").CustomResource
        extra = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
        return custom_resource(
            resource_name, api_version=api_version, kind=kind, metadata=manifest["metadata"], opts=opts, **extra
        )
    module, class_name = typed
    resource_class = getattr(importlib.import_module(module), class_name)
    fields = {_snake(k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    return resource_class(resource_name, opts=opts, **fields)


def child_opts(
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    **options: Any,
) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), **options)


# --- metadata -------------------------------------------------------------------------------------


def metadata(
    name: str,
    component: str,
    instance: str,
    namespace: str | None = None,
    annotations: Mapping[str, str] | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> Manifest:
    meta: Manifest = {"name": name, "labels": {**names.labels(component, instance), **(extra_labels or {})}}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


# --- security -------------------------------------------------------------------------------------

AIRFLOW_UID = 50000
AIRFLOW_GID = 0


def container_security_context(read_only_root: bool = True) -> Manifest:
    """Restricted Pod Security Standard, plus a read-only root filesystem where the process allows it."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(run_as_user: int, run_as_group: int, fs_group: int) -> Manifest:
    return {
        "fsGroup": fs_group,
        "fsGroupChangePolicy": "OnRootMismatch",
        "runAsGroup": run_as_group,
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(config: ResourcesConfig) -> Manifest:
    return {"limits": dict(sorted(config.limits.items())), "requests": dict(sorted(config.requests.items()))}


# --- environment ----------------------------------------------------------------------------------


def env(name: str, value: str) -> Manifest:
    return {"name": name, "value": value}


def env_from_secret(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def env_from_field(name: str, field_path: str) -> Manifest:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


# --- volumes --------------------------------------------------------------------------------------


def empty_dir(name: str, size_limit: str = "1Gi", medium: str | None = None) -> Manifest:
    source: Manifest = {"sizeLimit": size_limit}
    if medium is not None:
        source["medium"] = medium
    return {"name": name, "emptyDir": source}


def mount(name: str, path: str, read_only: bool = False, sub_path: str | None = None) -> Manifest:
    volume_mount: Manifest = {"name": name, "mountPath": path}
    if read_only:
        volume_mount["readOnly"] = True
    if sub_path is not None:
        volume_mount["subPath"] = sub_path
    return volume_mount


# --- change detection -----------------------------------------------------------------------------


def content_hash(data: Any) -> str:
    """A stable digest of JSON-able content (key order does not matter)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
