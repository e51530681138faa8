"""Roll pods when the Secrets or ConfigMaps they use change, without replacing their workloads.

Every Secret and ConfigMap the stack creates records its content here. A workload's pod template then
gets two annotations: a digest of the ConfigMaps it references (plain) and a digest of the Secrets it
references (a Pulumi secret, since it is derived from secret values). A content change alters the
annotation, so Kubernetes rolls the pods in place; untouched workloads keep their annotation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pulumi

from components import k8s

SECRETS_ANNOTATION = "airflow-k8s/secrets-checksum"
CONFIG_ANNOTATION = "airflow-k8s/config-checksum"


class ContentRegistry:
    """What each stack-managed Secret and ConfigMap contains, and the registered objects by kind and name.

    Workloads depend on exactly the objects their pods reference (found here), not on everything.
    """

    def __init__(self) -> None:
        self.secrets: dict[str, pulumi.Output[dict[str, str]]] = {}
        self.config_maps: dict[str, dict[str, str]] = {}
        self.resources: dict[tuple[str, str], pulumi.Resource] = {}
        self.namespace: pulumi.Resource | None = None

    def add(self, kind: str, name: str, resource: pulumi.Resource) -> None:
        self.resources[(kind, name)] = resource

    def add_secret(self, name: str, content: pulumi.Output[dict[str, str]], resource: pulumi.Resource) -> None:
        self.secrets[name] = content
        self.add("Secret", name, resource)

    def add_config_map(self, name: str, content: dict[str, str], resource: pulumi.Resource) -> None:
        self.config_maps[name] = content
        self.add("ConfigMap", name, resource)

    def dependencies(self, pod_spec: k8s.Manifest) -> list[pulumi.Resource]:
        """The namespace and the stack's objects a pod spec references: identity, Secrets, ConfigMaps."""
        secrets, config_maps = referenced(pod_spec)
        wanted = [("ServiceAccount", pod_spec.get("serviceAccountName", ""))]
        wanted += [("Secret", name) for name in sorted(secrets)] + [("ConfigMap", name) for name in sorted(config_maps)]
        found = [self.resources[key] for key in wanted if key in self.resources]
        return [self.namespace, *found] if self.namespace is not None else found


def referenced(pod_spec: k8s.Manifest) -> tuple[set[str], set[str]]:
    """Names of the Secrets and ConfigMaps a pod spec uses (env, envFrom, volumes)."""
    secrets: set[str] = set()
    config_maps: set[str] = set()
    for key, value in _walk(pod_spec):
        if key in ("secretKeyRef", "secretRef"):
            secrets.add(value["name"])
        elif key in ("configMapKeyRef", "configMapRef"):
            config_maps.add(value["name"])
        elif key == "secret":
            secrets.add(value["secretName"])
        elif key == "configMap":
            config_maps.add(value["name"])
    return secrets, config_maps


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():  # pyright: ignore[reportUnknownVariableType]
            if isinstance(v, dict):
                yield str(k), v  # pyright: ignore[reportUnknownArgumentType]
            yield from _walk(v)
    elif isinstance(value, list):
        for item in value:  # pyright: ignore[reportUnknownVariableType]
            yield from _walk(item)


def checksum_annotations(pod_spec: k8s.Manifest, registry: ContentRegistry) -> dict[str, Any]:
    """Annotations for a pod template: digests of the stack-managed content it references."""
    secrets, config_maps = referenced(pod_spec)
    annotations: dict[str, Any] = {}
    managed_config = {name: registry.config_maps[name] for name in sorted(config_maps & registry.config_maps.keys())}
    if managed_config:
        annotations[CONFIG_ANNOTATION] = k8s.content_hash(managed_config)
    managed_secrets = sorted(secrets & registry.secrets.keys())
    if managed_secrets:
        contents = pulumi.Output.all(*(registry.secrets[name] for name in managed_secrets))
        annotations[SECRETS_ANNOTATION] = pulumi.Output.secret(
            contents.apply(lambda values: k8s.content_hash(dict(zip(managed_secrets, values, strict=True))))
        )
    return annotations
