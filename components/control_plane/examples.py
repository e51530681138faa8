"""The Secret and ConfigMap the example DAGs read (dags/kpo_secret_and_config.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_random

from components.config import names
from components.config.model import StackConfig
from components.foundation.config_maps import register_config_map
from components.foundation.credentials import register_secret, rotation_keepers
from components.kube.wiring import ConfigMapHandle, NamespaceHandle, SecretHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import ConfigMapManifest

EXAMPLE_USERNAME = "example-user"


def config_map_manifest(config: StackConfig) -> ConfigMapManifest:
    namespace = config.namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(names.EXAMPLE_CONFIG_MAP, names.Component.EXAMPLES, namespace, namespace),
        "data": {"GREETING": "hello from airflow-k8s", "TARGET_ENVIRONMENT": namespace},
    }


@dataclass(frozen=True)
class ExampleResourcesArgs:
    config: StackConfig
    namespace: NamespaceHandle


class ExampleResources(pulumi.ComponentResource):
    secret: SecretHandle
    config_map: ConfigMapHandle

    def __init__(self, name: str, args: ExampleResourcesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:ExampleResources", name, None, opts)
        password = pulumi_random.RandomPassword(
            "example-password",
            length=24,
            special=False,
            keepers=rotation_keepers(args.config.rotation.example_password),
            opts=pulumi.ResourceOptions(parent=self),
        )
        data = password.result.apply(lambda p: {"username": EXAMPLE_USERNAME, "password": p})
        self.secret = register_secret(
            self,
            names.EXAMPLE_SECRET,
            names.Component.EXAMPLES,
            args.namespace,
            frozenset({"username", "password"}),
            data,
        )
        self.config_map = register_config_map(self, config_map_manifest(args.config), [args.namespace.resource])
        self.register_outputs({})
