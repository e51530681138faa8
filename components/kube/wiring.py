"""Typed handles, and the wiring of a pod to exactly the objects it uses.

A component that creates a Secret, a ConfigMap, a ServiceAccount or the namespace returns a small,
immutable handle: the object's name, its keys, its content and its Pulumi resource. A component whose
pods use such objects takes their handles as arguments, so it cannot be built before them.
:func:`wire` then reads the pod spec itself and derives, from the handles it really references:

* ``depends_on``: the namespace, the pod's identity and every Secret and ConfigMap it references;
* checksum annotations for the pod template: a digest of the ConfigMaps (plain) and of the Secrets (a
  Pulumi secret), so a content change rolls exactly the pods that use it, in place.

A referenced object without a handle (and not declared as the user's own Secret) is a
:class:`WiringError`, raised before the pod's workload is registered, as is a key the object lacks.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pulumi

from components.kube.builders import content_hash

if TYPE_CHECKING:
    from components.kube.manifest_types import PodSpec

SECRETS_ANNOTATION = "airflow-k8s/secrets-checksum"
CONFIG_ANNOTATION = "airflow-k8s/config-checksum"


class WiringError(ValueError):
    """A pod and the handles given for it disagree."""


@dataclass(frozen=True)
class NamespaceHandle:
    name: str
    resource: pulumi.Resource


@dataclass(frozen=True)
class IdentityHandle:
    """A ServiceAccount, and whether its pods mount an API token (only those that call the API)."""

    name: str
    mounts_api_token: bool
    resource: pulumi.Resource


@dataclass(frozen=True, eq=False)
class SecretHandle:
    """Compared (and hashed) by identity: one handle per object a program run creates."""

    name: str
    keys: frozenset[str]
    content: pulumi.Output[dict[str, str]]
    """The plain values, a Pulumi secret (digested into pod annotations, never shown)."""
    resource: pulumi.Resource
    kind: Literal["Secret"] = field(default="Secret", init=False)


@dataclass(frozen=True, eq=False)
class ConfigMapHandle:
    """Compared (and hashed) by identity: one handle per object a program run creates."""

    name: str
    content: Mapping[str, str]
    resource: pulumi.Resource
    kind: Literal["ConfigMap"] = field(default="ConfigMap", init=False)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.content)


ContentHandle = SecretHandle | ConfigMapHandle


@dataclass(frozen=True)
class Reference:
    kind: Literal["Secret", "ConfigMap"]
    name: str
    keys: frozenset[str]
    """Keys the pod names explicitly (volume items, key references); empty when it takes all."""


@dataclass(frozen=True)
class PodWiring:
    depends_on: list[pulumi.Resource]
    annotations: dict[str, str | pulumi.Output[str]]


def references(pod_spec: PodSpec | Mapping[str, Any]) -> list[Reference]:
    """The Secrets and ConfigMaps a pod spec uses (env, envFrom, volumes), with the keys it names."""
    found: dict[tuple[str, str], set[str]] = {}

    def add(kind: str, name: str, keys: Iterable[str]) -> None:
        found.setdefault((kind, name), set()).update(keys)

    for key, value in _walk(pod_spec):
        if key == "secretKeyRef":
            add("Secret", value["name"], [value["key"]])
        elif key == "configMapKeyRef":
            add("ConfigMap", value["name"], [value["key"]])
        elif key == "secretRef":
            add("Secret", value["name"], [])
        elif key == "configMapRef":
            add("ConfigMap", value["name"], [])
        elif key == "secret":
            add("Secret", value["secretName"], [item["key"] for item in value.get("items", [])])
        elif key == "configMap":
            add("ConfigMap", value["name"], [item["key"] for item in value.get("items", [])])
    return [
        Reference("Secret" if kind == "Secret" else "ConfigMap", name, frozenset(keys))
        for (kind, name), keys in sorted(found.items())
    ]


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():  # pyright: ignore[reportUnknownVariableType]
            if isinstance(v, dict):
                yield str(k), v  # pyright: ignore[reportUnknownArgumentType]
            yield from _walk(v)
    elif isinstance(value, list):
        for item in value:  # pyright: ignore[reportUnknownVariableType]
            yield from _walk(item)


def wire(
    pod_spec: PodSpec,
    namespace: NamespaceHandle,
    identity: IdentityHandle | None,
    uses: Iterable[ContentHandle | None],
    external_secrets: Collection[str] = (),
) -> PodWiring:
    """Match a pod spec with the handles it uses; see the module docstring.

    ``uses`` may hold more than the pod references (the handles every Airflow pod may use come as one
    group; ``None`` stands for an object this stack does not create): only referenced ones count.
    """
    available = {(handle.kind, handle.name): handle for handle in uses if handle is not None}
    service_account = pod_spec.get("serviceAccountName")
    if identity is not None and service_account != identity.name:
        raise WiringError(f"the pod runs as {service_account!r}, but the identity handle is {identity.name!r}")
    used: list[ContentHandle] = []
    used_keys: dict[str, frozenset[str]] = {}
    problems: list[str] = []
    for reference in references(pod_spec):
        handle = available.get((reference.kind, reference.name))
        if handle is None:
            if reference.kind == "Secret" and reference.name in external_secrets:
                continue
            problems.append(f"the pod uses {reference.kind} {reference.name!r}, but no handle for it was given")
            continue
        missing = sorted(reference.keys - handle.keys)
        if missing:
            problems.append(f"the pod uses keys {missing} of {reference.kind} {reference.name!r}, which it lacks")
        used.append(handle)
        if isinstance(handle, SecretHandle):
            used_keys[handle.name] = reference.keys or handle.keys
    if problems:
        raise WiringError("; ".join(problems))
    depends_on: list[pulumi.Resource] = [namespace.resource]
    if identity is not None:
        depends_on.append(identity.resource)
    secrets = sorted((h for h in used if isinstance(h, SecretHandle)), key=lambda h: h.name)
    config_maps = sorted((h for h in used if isinstance(h, ConfigMapHandle)), key=lambda h: h.name)
    depends_on += [h.resource for h in secrets] + [h.resource for h in config_maps]
    keyed = tuple((h, used_keys[h.name]) for h in secrets)
    return PodWiring(depends_on, checksum_annotations(keyed, config_maps))


def checksum_annotations(
    secrets: Iterable[tuple[SecretHandle, frozenset[str]]], config_maps: Iterable[ConfigMapHandle]
) -> dict[str, str | pulumi.Output[str]]:
    """Digests of what a pod uses: whole ConfigMaps, and of each Secret the keys the pod reads (so
    rotating one key rolls only the pods that read that key)."""
    annotations: dict[str, str | pulumi.Output[str]] = {}
    config = tuple(sorted(config_maps, key=lambda h: h.name))
    if config:
        annotations[CONFIG_ANNOTATION] = _config_digest(config)
    managed_secrets = tuple(sorted(secrets, key=lambda pair: pair[0].name))
    if managed_secrets:
        annotations[SECRETS_ANNOTATION] = _secrets_digest(managed_secrets)
    return annotations


# Many workloads use the same objects (every Celery worker set the same Secrets and ConfigMaps): their
# digests are computed once per set of handles, not once per workload. Handles compare by identity, so
# entries never serve another program run.


@functools.lru_cache(maxsize=256)
def _config_digest(config_maps: tuple[ConfigMapHandle, ...]) -> str:
    return content_hash({h.name: dict(h.content) for h in config_maps})


@functools.lru_cache(maxsize=256)
def _secrets_digest(secrets: tuple[tuple[SecretHandle, frozenset[str]], ...]) -> pulumi.Output[str]:
    keys = {h.name: sorted(used) for h, used in secrets}
    contents = pulumi.Output.all(*(h.content for h, _ in secrets))

    def digest(values: list[dict[str, str]]) -> str:
        read = {h.name: {k: value[k] for k in keys[h.name]} for (h, _), value in zip(secrets, values, strict=True)}
        return content_hash(read)

    return pulumi.Output.secret(contents.apply(digest))
