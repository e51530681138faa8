"""Kubernetes building blocks: pure helpers for manifests, and the one place objects are registered.

Spec builders across ``components/`` return plain, Kubernetes-shaped dicts (camelCase, exactly what
``kubectl apply`` would take); :func:`register` registers such a manifest with Pulumi.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components import names
from components.config import ResourcesConfig

Manifest = dict[str, Any]

SECRET_FIELDS = {("v1", "Secret"): ["data", "stringData"]}
"""Fields the pulumi-kubernetes SDK always treats as secret for a kind, as inputs and as outputs."""


def type_token(api_version: str, kind: str) -> str:
    """The Pulumi type of a Kubernetes object, as pulumi-kubernetes names it (core group: "core")."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


class KubernetesObject(pulumi.CustomResource):
    """Any Kubernetes object, registered as the pulumi-kubernetes class of its kind registers it.

    Same type token, same properties, same secret outputs, handled by the same provider (the stack's
    explicit one) with the same semantics; only the generated SDK modules are not imported: importing
    them costs more CPU than evaluating the whole program. tests/test_k8s.py checks the parity with the
    SDK classes kind by kind.
    """

    def __init__(self, resource_name: str, manifest: Manifest, opts: pulumi.ResourceOptions) -> None:
        key = (manifest["apiVersion"], manifest["kind"])
        props = dict(manifest)
        if key in SECRET_FIELDS:
            for field in SECRET_FIELDS[key]:
                if props.get(field) is not None:
                    props[field] = pulumi.Output.secret(props[field])
            secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=SECRET_FIELDS[key])
            opts = pulumi.ResourceOptions.merge(opts, secret_outputs)
        super().__init__(type_token(*key), resource_name, props, opts)


def register(manifest: Manifest, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register one Kubernetes object. Its Pulumi name is its Kubernetes name (unique per kind)."""
    return KubernetesObject(manifest["metadata"]["name"], manifest, opts)


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
