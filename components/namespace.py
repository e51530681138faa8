"""The stack's namespace, labelled for Pod Security admission."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import k8s, names

POD_SECURITY_VERSION = "latest"


def namespace_manifest(namespace: str, pod_security_level: str) -> k8s.Manifest:
    meta = k8s.metadata(namespace, names.Component.NAMESPACE, namespace)
    # enforce rejects non-conforming pods; audit and warn make violations visible even when relaxed.
    for mode in ("enforce", "audit", "warn"):
        level = pod_security_level if mode == "enforce" else "restricted"
        meta["labels"][f"pod-security.kubernetes.io/{mode}"] = level
        meta["labels"][f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


@dataclass(frozen=True)
class NamespaceArgs:
    name: str
    pod_security_level: str
    protect: bool


class Namespace(pulumi.ComponentResource):
    resource: pulumi.CustomResource

    def __init__(self, name: str, args: NamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:core:Namespace", name, None, opts)
        # Deleting the namespace deletes the database volume claim in it: prod protects it.
        self.resource = k8s.register(
            namespace_manifest(args.name, args.pod_security_level),
            k8s.child_opts(self, protect=args.protect),
        )
        self.name = args.name
        self.register_outputs({"name": args.name})
