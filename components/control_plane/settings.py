"""The ConfigMaps every Airflow pod mounts: a placeholder airflow.cfg and the stack's scripts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.foundation.config_maps import config_map_manifest, register_config_map
from components.kube.wiring import ConfigMapHandle, NamespaceHandle

if TYPE_CHECKING:
    pass

SCRIPTS = Path(__file__).resolve().parent / "scripts"

AIRFLOW_CFG = """\
# Managed by airflow-k8s. Airflow is configured through the AIRFLOW__* environment variables of each
# container (credentials read from mounted Secret files). This file exists so that Airflow never generates an
# airflow.cfg of its own, which would copy those variables, secrets included, to disk.
"""


def scripts() -> dict[str, str]:
    """The scripts shipped to the pods, by file name (the same files the tests run)."""
    return {path.name: path.read_text() for path in sorted(SCRIPTS.iterdir()) if path.is_file()}


@dataclass(frozen=True)
class AirflowSettingsArgs:
    namespace: NamespaceHandle


class AirflowSettings(pulumi.ComponentResource):
    airflow_cfg: ConfigMapHandle
    scripts: ConfigMapHandle

    def __init__(self, name: str, args: AirflowSettingsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:Settings", name, None, opts)
        namespace = args.namespace
        component = names.Component.CONFIG
        self.airflow_cfg = register_config_map(
            self,
            config_map_manifest(
                names.AIRFLOW_CONFIG_MAP, component, namespace.name, {names.AIRFLOW_CFG_KEY: AIRFLOW_CFG}
            ),
            [namespace.resource],
        )
        self.scripts = register_config_map(
            self,
            config_map_manifest(names.SCRIPTS_CONFIG_MAP, component, namespace.name, scripts()),
            [namespace.resource],
        )
        self.register_outputs({})
