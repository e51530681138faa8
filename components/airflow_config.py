"""The ConfigMaps every Airflow pod mounts: a placeholder airflow.cfg and the stack's scripts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from components import k8s, names, rollout
from components.config import StackConfig

SCRIPTS = Path(__file__).resolve().parent / "scripts"

AIRFLOW_CFG = """\
# Managed by airflow-k8s. Airflow is configured through the AIRFLOW__* environment variables of each
# container (credentials read from mounted Secret files). This file exists so that Airflow never generates an
# airflow.cfg of its own, which would copy those variables, secrets included, to disk.
"""


def scripts() -> dict[str, str]:
    """The scripts shipped to the pods, by file name (the same files the tests run)."""
    return {path.name: path.read_text() for path in sorted(SCRIPTS.iterdir()) if path.is_file()}


def config_map_manifest(name: str, namespace: str, data: dict[str, str]) -> k8s.Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": k8s.metadata(name, names.Component.CONFIG, namespace, namespace),
        "data": dict(sorted(data.items())),
    }


def manifests(config: StackConfig) -> list[k8s.Manifest]:
    return [
        config_map_manifest(names.AIRFLOW_CONFIG_MAP, config.namespace, {names.AIRFLOW_CFG_KEY: AIRFLOW_CFG}),
        config_map_manifest(names.SCRIPTS_CONFIG_MAP, config.namespace, scripts()),
    ]


@dataclass(frozen=True)
class AirflowConfigArgs:
    config: StackConfig
    namespace: pulumi.Resource
    registry: rollout.ContentRegistry


class AirflowConfig(pulumi.ComponentResource):
    def __init__(self, name: str, args: AirflowConfigArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:airflow:Config", name, None, opts)
        self.resources: list[pulumi.CustomResource] = []
        for manifest in manifests(args.config):
            resource = k8s.register(manifest, k8s.child_opts(self, [args.namespace]))
            args.registry.add_config_map(manifest["metadata"]["name"], manifest["data"], resource)
            self.resources.append(resource)
        self.register_outputs({})
