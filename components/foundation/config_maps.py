"""ConfigMaps: the manifest and its registration, returning the handle pods are wired with."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.kube import objects
from components.kube.wiring import ConfigMapHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import ConfigMapManifest


def config_map_manifest(name: str, component: str, namespace: str, data: dict[str, str]) -> ConfigMapManifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(name, component, namespace, namespace),
        "data": dict(sorted(data.items())),
    }


def register_config_map(
    parent: pulumi.Resource,
    manifest: ConfigMapManifest,
    depends_on: list[pulumi.Resource],
) -> ConfigMapHandle:
    resource = objects.register(manifest, objects.child_opts(parent, depends_on))
    return ConfigMapHandle(manifest["metadata"]["name"], manifest.get("data", {}), resource)
