"""The stack's namespace, labelled for Pod Security admission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.kube import objects
from components.kube.wiring import NamespaceHandle

if TYPE_CHECKING:
    from components.config.model import PodSecurityLevel
    from components.kube.manifest_types import NamespaceManifest

POD_SECURITY_VERSION = "latest"


def namespace_manifest(namespace: str, pod_security_level: PodSecurityLevel) -> NamespaceManifest:
    pod_security: dict[str, str] = {}
    # enforce rejects non-conforming pods; audit and warn make violations visible even when relaxed.
    for mode in ("enforce", "audit", "warn"):
        level = pod_security_level if mode == "enforce" else "restricted"
        pod_security[f"pod-security.kubernetes.io/{mode}"] = level
        pod_security[f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION
    meta = names.metadata(namespace, names.Component.NAMESPACE, namespace, extra_labels=pod_security)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


@dataclass(frozen=True)
class NamespaceArgs:
    name: str
    pod_security_level: PodSecurityLevel
    protect: bool


class Namespace(pulumi.ComponentResource):
    handle: NamespaceHandle

    def __init__(self, name: str, args: NamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:foundation:Namespace", name, None, opts)
        # Deleting the namespace deletes the database volume claim in it: prod protects it.
        resource = objects.register(
            namespace_manifest(args.name, args.pod_security_level),
            objects.child_opts(self, protect=args.protect),
        )
        self.handle = NamespaceHandle(args.name, resource)
        self.register_outputs({"name": args.name})
