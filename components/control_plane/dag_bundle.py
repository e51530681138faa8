"""The DAG folder as a ConfigMap (ConfigMap delivery); git-sync and image delivery need no object."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.airflow_pods.dag_sources import DagBundle
from components.config import names
from components.foundation.config_maps import config_map_manifest, register_config_map
from components.kube.wiring import ConfigMapHandle, NamespaceHandle


@dataclass(frozen=True)
class DagConfigMapArgs:
    namespace: NamespaceHandle
    bundle: DagBundle


class DagConfigMap(pulumi.ComponentResource):
    handle: ConfigMapHandle

    def __init__(self, name: str, args: DagConfigMapArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:DagConfigMap", name, None, opts)
        manifest = config_map_manifest(
            names.DAGS_CONFIG_MAP, names.Component.DAGS, args.namespace.name, args.bundle.data
        )
        self.handle = register_config_map(self, manifest, [args.namespace.resource])
        self.register_outputs({"files": sorted(args.bundle.paths.values())})
