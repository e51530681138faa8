"""The KubernetesExecutor's pod template: how every task pod it launches looks.

Shipped as a ConfigMap mounted into the scheduler (``[kubernetes_executor] pod_template_file``). The
executor fills in the container's command; everything else (identity, namespace, hardening,
resources, the same database and Secret wiring as the control plane, DAG access) comes from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components import airflow_pod, k8s, names, rollout
from components.config import StackConfig
from components.rbac import identities

E = names.AirflowEnv
BASE_CONTAINER = "base"
"""The executor runs the task in the container with this name."""
TEMPLATE_PATH = f"{airflow_pod.POD_TEMPLATE_DIR}/{names.POD_TEMPLATE_KEY}"


def pod_manifest(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> k8s.Manifest:
    identity = identities(config)[names.WORKER]
    worker = airflow_pod.AirflowContainer(
        name=BASE_CONTAINER,
        args=[],
        resources=config.kubernetes_executor.worker_resources,
    )
    container = airflow_pod.container(config, worker)
    del container["args"]
    spec = airflow_pod.pod_spec(
        config,
        service_account=identity.name,
        mounts_api_token=identity.calls_kubernetes_api,
        containers=[container],
        dag_paths=dag_paths,
        # A task pod runs to completion: a long-running DAG sidecar would keep it alive forever.
        dag_sidecar=False,
    )
    spec["restartPolicy"] = "Never"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "airflow-task",
            "namespace": config.namespace,
            "labels": names.labels(names.Component.KUBERNETES_TASK, config.namespace),
        },
        "spec": spec,
    }


def config_map_manifest(config: StackConfig, pod: k8s.Manifest) -> k8s.Manifest:
    """The ConfigMap that ships ``pod`` (from :func:`pod_manifest`) as the pod template file."""
    # JSON is YAML: Airflow loads the file with yaml.safe_load; the program needs no YAML library.
    template = json.dumps(pod, indent=2, sort_keys=True) + "\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": k8s.metadata(
            names.POD_TEMPLATE_CONFIG_MAP, names.Component.KUBERNETES_TASK, config.namespace, config.namespace
        ),
        "data": {names.POD_TEMPLATE_KEY: template},
    }


def scheduler_env(config: StackConfig) -> list[k8s.Manifest]:
    if not config.uses_kubernetes_executor:
        return []
    executor = config.kubernetes_executor
    return [
        k8s.env(E.KUBERNETES_NAMESPACE, config.namespace),
        k8s.env(E.POD_TEMPLATE_FILE, TEMPLATE_PATH),
        k8s.env(E.DELETE_WORKER_PODS, str(executor.delete_worker_pods)),
        k8s.env(E.DELETE_WORKER_PODS_ON_FAILURE, str(executor.delete_worker_pods_on_failure)),
    ]


def scheduler_volumes(config: StackConfig) -> list[k8s.Manifest]:
    if not config.uses_kubernetes_executor:
        return []
    return [{"name": airflow_pod.POD_TEMPLATE_VOLUME, "configMap": {"name": names.POD_TEMPLATE_CONFIG_MAP}}]


def scheduler_mounts(config: StackConfig) -> list[k8s.Manifest]:
    if not config.uses_kubernetes_executor:
        return []
    return [k8s.mount(airflow_pod.POD_TEMPLATE_VOLUME, airflow_pod.POD_TEMPLATE_DIR, read_only=True)]


@dataclass(frozen=True)
class PodTemplateArgs:
    config: StackConfig
    registry: rollout.ContentRegistry
    dag_paths: Mapping[str, str] | None = None


class PodTemplate(pulumi.ComponentResource):
    def __init__(self, name: str, args: PodTemplateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:executor:PodTemplate", name, None, opts)
        pod = pod_manifest(args.config, args.dag_paths)
        manifest = config_map_manifest(args.config, pod)
        # The template's pods need their Secrets and ConfigMaps too; the scheduler creates them.
        self.resource = k8s.register(manifest, k8s.child_opts(self, args.registry.dependencies(pod["spec"])))
        args.registry.add_config_map(names.POD_TEMPLATE_CONFIG_MAP, manifest["data"], self.resource)
        self.register_outputs({})
