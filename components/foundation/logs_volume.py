"""A shared task-logs volume (``logging.volume``): logs outlive the pods that wrote them.

ReadWriteMany, because every Airflow pod writes or reads task logs; a cluster without such a
StorageClass should use remote logging instead (see docs/observability.md). The claim's storage class
cannot change in place; its size can grow where the class allows expansion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.config.model import StackConfig
from components.kube import objects
from components.kube.quantities import canonical_quantity
from components.kube.wiring import NamespaceHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import PersistentVolumeClaimManifest, PersistentVolumeClaimSpec


def enabled(config: StackConfig) -> bool:
    return config.logging.volume.enabled and not config.logging.remote.enabled


def claim_manifest(config: StackConfig) -> PersistentVolumeClaimManifest:
    volume = config.logging.volume
    spec: PersistentVolumeClaimSpec = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": canonical_quantity(volume.size)}},
    }
    if volume.storage_class is not None:
        spec["storageClassName"] = volume.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": names.metadata(names.LOGS_CLAIM, names.Component.LOGS, config.namespace, config.namespace),
        "spec": spec,
    }


@dataclass(frozen=True)
class LogsVolumeArgs:
    config: StackConfig
    namespace: NamespaceHandle


class LogsVolume(pulumi.ComponentResource):
    claim: objects.KubernetesObject

    def __init__(self, name: str, args: LogsVolumeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:foundation:LogsVolume", name, None, opts)
        self.claim = objects.register(
            claim_manifest(args.config),
            objects.child_opts(self, [args.namespace.resource], protect=args.config.protect_data),
        )
        self.register_outputs({})
