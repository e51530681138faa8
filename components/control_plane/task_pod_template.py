"""The KubernetesExecutor's pod template: how every task pod it launches looks.

Shipped as a ConfigMap mounted into the scheduler (``[kubernetes_executor] pod_template_file``). The
executor fills in the container's command; everything else (identity, namespace, hardening,
resources, the same database and Secret wiring as the control plane, DAG access) comes from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.airflow_pods import containers as pods
from components.airflow_pods import environment as env
from components.airflow_pods.workload import AirflowPodHandles
from components.config import names
from components.config.model import StackConfig
from components.foundation.config_maps import register_config_map
from components.foundation.identities import identities
from components.foundation.placement import placed
from components.kube import builders
from components.kube.wiring import ConfigMapHandle, IdentityHandle, wire

if TYPE_CHECKING:
    from components.kube.manifest_types import ConfigMapManifest, EnvVar, PodManifest, PodSpec, Volume, VolumeMount

E = names.AirflowEnv
BASE_CONTAINER = "base"
"""The executor runs the task in the container with this name."""
TEMPLATE_PATH = f"{env.POD_TEMPLATE_DIR}/{names.POD_TEMPLATE_KEY}"


def pod_manifest(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> PodManifest:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "airflow-task",
            "namespace": config.namespace,
            "labels": names.labels(names.Component.KUBERNETES_TASK, config.namespace),
        },
        "spec": placed(config, pod_spec(config, dag_paths), config.kubernetes_executor.placement),
    }


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> PodSpec:
    identity = identities(config)[names.WORKER]
    worker = pods.AirflowContainer(
        name=BASE_CONTAINER,
        args=None,
        resources=config.kubernetes_executor.worker_resources,
        credentials=env.task_pod_credentials(config),
        clones_dags=True,
    )
    spec = pods.pod_spec(
        config,
        identity=identity,
        containers=[worker],
        dag_paths=dag_paths,
        # A task pod runs to completion: a long-running DAG sidecar would keep it alive forever.
        dag_sidecar=False,
    )
    spec["restartPolicy"] = "Never"
    return spec


def config_map_manifest(config: StackConfig, pod: PodManifest) -> ConfigMapManifest:
    """The ConfigMap that ships ``pod`` (from :func:`pod_manifest`) as the pod template file."""
    # JSON is YAML: Airflow loads the file with yaml.safe_load; the program needs no YAML library.
    template = json.dumps(pod, indent=2, sort_keys=True) + "\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(
            names.POD_TEMPLATE_CONFIG_MAP, names.Component.KUBERNETES_TASK, config.namespace, config.namespace
        ),
        "data": {names.POD_TEMPLATE_KEY: template},
    }


def scheduler_env(config: StackConfig) -> list[EnvVar]:
    if not config.uses_kubernetes_executor:
        return []
    executor = config.kubernetes_executor
    return [
        builders.env(E.KUBERNETES_NAMESPACE, config.namespace),
        builders.env(E.POD_TEMPLATE_FILE, TEMPLATE_PATH),
        builders.env(E.DELETE_WORKER_PODS, str(executor.delete_worker_pods)),
        builders.env(E.DELETE_WORKER_PODS_ON_FAILURE, str(executor.delete_worker_pods_on_failure)),
    ]


def scheduler_volumes(config: StackConfig) -> list[Volume]:
    if not config.uses_kubernetes_executor:
        return []
    return [{"name": pods.POD_TEMPLATE_VOLUME, "configMap": {"name": names.POD_TEMPLATE_CONFIG_MAP}}]


def scheduler_mounts(config: StackConfig) -> list[VolumeMount]:
    if not config.uses_kubernetes_executor:
        return []
    return [builders.mount(pods.POD_TEMPLATE_VOLUME, env.POD_TEMPLATE_DIR, read_only=True)]


@dataclass(frozen=True)
class TaskPodTemplateArgs:
    config: StackConfig
    pods: AirflowPodHandles
    identity: IdentityHandle
    """The task pods' identity."""
    dag_paths: Mapping[str, str] | None = None


class TaskPodTemplate(pulumi.ComponentResource):
    handle: ConfigMapHandle

    def __init__(self, name: str, args: TaskPodTemplateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:TaskPodTemplate", name, None, opts)
        pod = pod_manifest(args.config, args.dag_paths)
        shared = args.pods
        # The template's pods need their Secrets and ConfigMaps too; the scheduler creates them.
        spec = pod_spec(args.config, args.dag_paths)
        wiring = wire(spec, shared.namespace, args.identity, shared.content(), args.config.external_secrets)
        self.handle = register_config_map(self, config_map_manifest(args.config, pod), wiring.depends_on)
        self.register_outputs({})
