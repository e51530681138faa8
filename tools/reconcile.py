"""What a config change does to the stack: which objects change, and whether any change forces a replacement.

Two evaluations (before, after) are compared object by object. A changed path forces a replacement
when pulumi-kubernetes says so (provider/pkg/provider/diff.go, forceNewProperties), unless the
resource ignores it (ignoreChanges) or the provider is configured to update it in place
(enableConfigMapMutable / enableSecretMutable). A pulumi-random resource is replaced whenever any of
its inputs changes: that is how a value is regenerated on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.mock_engine import Evaluation, Registration, reveal

# pulumi-kubernetes provider/pkg/provider/diff.go: fields whose change replaces the object.
FORCE_NEW: dict[str, tuple[str, ...]] = {
    "*": ("metadata.name", "metadata.namespace"),
    "Deployment": ("spec.selector",),
    "DaemonSet": ("spec.selector",),
    "StatefulSet": (
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.selector",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    "Service": ("spec.clusterIP",),
    "RoleBinding": ("roleRef",),
    "ClusterRoleBinding": ("roleRef",),
    "PersistentVolumeClaim": ("spec",),
    "ConfigMap": ("binaryData", "data"),
    "Secret": ("type", "stringData", "data"),
}
MUTABLE_WITH = {"ConfigMap": "enableConfigMapMutable", "Secret": "enableSecretMutable"}
PROVIDER_TARGET = ("context", "cluster", "kubeconfig")
"""Provider inputs that choose the cluster: a change replaces the provider, and with it every object it
manages (deleted from the old cluster, created in the new one)."""
PROVIDER_TYPE = "pulumi:providers:kubernetes"


@dataclass(frozen=True)
class Change:
    key: str
    """Kind/name for Kubernetes objects, type/name otherwise."""
    action: str
    """added, removed, changed or replaced"""
    paths: tuple[str, ...] = ()
    forcing: tuple[str, ...] = ()
    """Changed paths that force a replacement."""


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        paths: list[str] = []
        for key in sorted(set(before) | set(after)):  # pyright: ignore[reportUnknownArgumentType]
            path = f"{prefix}.{key}" if prefix else str(key)  # pyright: ignore[reportUnknownArgumentType]
            if key not in before or key not in after:
                paths.append(path)
            else:
                paths += changed_paths(before[key], after[key], path)
        return paths
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):  # pyright: ignore[reportUnknownArgumentType]
        paths = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
            paths += changed_paths(old, new, f"{prefix}[{index}]")
        return paths
    return [] if before == after else [prefix]


def _under(path: str, field: str) -> bool:
    return path == field or path.startswith(field + ".") or path.startswith(field + "[")


def key_of(registration: Registration) -> str:
    kind = registration.inputs.get("kind")
    if kind and registration.type.startswith("kubernetes:"):
        return f"{kind}/{registration.inputs['metadata']['name']}"
    return f"{registration.type.split(':')[-1]}/{registration.name}"


def provider_flags(evaluation: Evaluation) -> dict[str, bool]:
    flags: dict[str, bool] = {}
    for registration in evaluation.registrations:
        if registration.type == "pulumi:providers:kubernetes":
            flags.update({k: str(v).lower() == "true" for k, v in reveal(registration.inputs).items()})
    return flags


def forcing_paths(registration: Registration, paths: list[str], flags: dict[str, bool]) -> list[str]:
    if registration.type.startswith("random:"):
        return paths
    kind = registration.inputs.get("kind", "")
    fields = [*FORCE_NEW["*"], *FORCE_NEW.get(kind, ())]
    if kind in MUTABLE_WITH and flags.get(MUTABLE_WITH[kind]):
        fields = [f for f in fields if f not in ("data", "binaryData", "stringData")]
    return [p for p in paths if any(_under(p, f) for f in fields)]


def diff(before: Evaluation, after: Evaluation) -> dict[str, Change]:
    old = {key_of(r): r for r in before.registrations if r.custom}
    new = {key_of(r): r for r in after.registrations if r.custom}
    flags = provider_flags(after)
    changes: dict[str, Change] = {}
    for key in sorted(set(old) | set(new)):
        if key not in old:
            changes[key] = Change(key, "added")
        elif key not in new:
            changes[key] = Change(key, "removed")
        else:
            registration = new[key]
            # secret values compare by content: a rotated secret is a change
            paths = changed_paths(reveal(old[key].inputs), reveal(registration.inputs))
            effective = [p for p in paths if not any(_under(p, f) for f in registration.ignore_changes)]
            if not effective:
                continue
            if registration.type == PROVIDER_TYPE:
                forcing = [p for p in effective if p.split(".")[0] in PROVIDER_TARGET]
            else:
                forcing = forcing_paths(registration, effective, flags)
            changes[key] = Change(key, "replaced" if forcing else "changed", tuple(effective), tuple(forcing))
    replaced_providers = {
        new[key].urn
        for key, change in changes.items()
        if change.action == "replaced" and new[key].type == PROVIDER_TYPE
    }
    for key, registration in new.items():
        # a provider reference is "<provider URN>::<provider id>"
        if key in old and any(registration.provider.startswith(f"{urn}::") for urn in replaced_providers):
            previous = changes.get(key)
            paths = previous.paths if previous is not None else ()
            forcing = (*(previous.forcing if previous is not None else ()), "provider")
            changes[key] = Change(key, "replaced", paths, forcing)
    return changes
