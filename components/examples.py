"""The Secret and ConfigMap the example DAGs read (dags/kpo_secret_and_config.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random

from components import k8s, names, rollout, secrets
from components.config import StackConfig

EXAMPLE_USERNAME = "example-user"


def config_map_manifest(config: StackConfig) -> k8s.Manifest:
    namespace = config.namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": k8s.metadata(names.EXAMPLE_CONFIG_MAP, names.Component.EXAMPLES, namespace, namespace),
        "data": {"GREETING": "hello from airflow-k8s", "TARGET_ENVIRONMENT": namespace},
    }


@dataclass(frozen=True)
class ExampleResourcesArgs:
    config: StackConfig
    namespace: pulumi.Resource
    registry: rollout.ContentRegistry


class ExampleResources(pulumi.ComponentResource):
    def __init__(self, name: str, args: ExampleResourcesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:dags:ExampleResources", name, None, opts)
        config = args.config
        password = pulumi_random.RandomPassword(
            "example-password",
            length=24,
            special=False,
            keepers=secrets.rotation_keepers(config.rotation.example_password),
            opts=pulumi.ResourceOptions(parent=self),
        )
        data = pulumi.Output.secret(password.result.apply(lambda p: {"username": EXAMPLE_USERNAME, "password": p}))
        deps = [args.namespace]
        secret = k8s.register(
            secrets.secret_manifest(names.EXAMPLE_SECRET, names.Component.EXAMPLES, config.namespace, data),
            k8s.child_opts(self, deps),
        )
        settings = config_map_manifest(config)
        config_map = k8s.register(settings, k8s.child_opts(self, deps))
        args.registry.add_secret(names.EXAMPLE_SECRET, data, secret)
        args.registry.add_config_map(names.EXAMPLE_CONFIG_MAP, settings["data"], config_map)
        self.resources = [secret, config_map]
        self.register_outputs({})
