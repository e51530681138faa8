"""Small, pure builders of Kubernetes-shaped data shared by every layer above."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.kube.quantities import canonical_quantity

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        EmptyDirVolumeSource,
        EnvVar,
        PodSecurityContext,
        ResourceRequirements,
        SecurityContext,
        Volume,
        VolumeMount,
    )


def container_security_context(read_only_root: bool = True) -> SecurityContext:
    """Restricted Pod Security Standard, plus a read-only root filesystem where the process allows it."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(run_as_user: int, run_as_group: int, fs_group: int) -> PodSecurityContext:
    return {
        "fsGroup": fs_group,
        "fsGroupChangePolicy": "OnRootMismatch",
        "runAsGroup": run_as_group,
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(requests: Mapping[str, str], limits: Mapping[str, str]) -> ResourceRequirements:
    """Requests and limits, each quantity in the form the API server stores."""
    return {
        "limits": {name: canonical_quantity(value) for name, value in sorted(limits.items())},
        "requests": {name: canonical_quantity(value) for name, value in sorted(requests.items())},
    }


def storage_request(size: str) -> dict[str, str]:
    """A volume claim's ``resources.requests``: its size in the form the API server stores."""
    return {"storage": canonical_quantity(size)}


def env(name: str, value: str) -> EnvVar:
    return {"name": name, "value": value}


def env_from_secret(name: str, secret: str, key: str) -> EnvVar:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def empty_dir(name: str, size_limit: str = "1Gi", medium: str | None = None) -> Volume:
    source: EmptyDirVolumeSource = {"sizeLimit": canonical_quantity(size_limit)}
    if medium is not None:
        source["medium"] = medium
    return {"name": name, "emptyDir": source}


def mount(name: str, path: str, read_only: bool = False, sub_path: str | None = None) -> VolumeMount:
    volume_mount: VolumeMount = {"name": name, "mountPath": path}
    if read_only:
        volume_mount["readOnly"] = True
    if sub_path is not None:
        volume_mount["subPath"] = sub_path
    return volume_mount


def content_hash(data: Any) -> str:
    """A stable digest of JSON-able content (key order does not matter)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
