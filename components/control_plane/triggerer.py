"""The triggerer: runs deferred tasks' triggers (asyncio), e.g. deferrable KubernetesPodOperator waits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.airflow_pods import containers as pods
from components.airflow_pods import environment as env
from components.airflow_pods.workload import AirflowPodHandles, WorkloadSpec, register_workload
from components.config import names
from components.config.model import StackConfig
from components.foundation.identities import identities
from components.kube import builders, objects
from components.kube.wiring import IdentityHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import PodSpec

E = names.AirflowEnv


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> PodSpec:
    resources = config.triggerer.resources
    triggerer = pods.AirflowContainer(
        name="triggerer",
        args=["airflow", "triggerer"],
        resources=resources,
        credentials=env.triggerer_credentials(config),
        extra_env=[
            builders.env(E.TRIGGERER_CAPACITY, str(config.triggerer.capacity)),
            *env.remote_log_connection(config),
        ],
        ports=[{"name": "trigger-logs", "containerPort": names.TRIGGERER_LOG_PORT, "protocol": "TCP"}],
        probes={
            **pods.jobs_check_probes("TriggererJob"),
            # Cheap: the trigger log server answering means the triggerer process is up.
            "readinessProbe": pods.tcp_probe("trigger-logs", period=15, timeout=5, failures=3),
        },
    )
    identity = identities(config)[names.TRIGGERER]
    return pods.pod_spec(
        config,
        identity=identity,
        containers=[triggerer],
        init_containers=[pods.wait_for_migrations(config, resources)],
        dag_paths=dag_paths,
        writes_logs=True,
    )


def workload(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> WorkloadSpec:
    return WorkloadSpec(
        name=names.TRIGGERER,
        component=names.Component.TRIGGERER,
        pod_spec=pod_spec(config, dag_paths),
        replicas=config.triggerer.replicas,
        autoscaled=config.triggerer_autoscaled,
        placement=config.triggerer.placement,
    )


@dataclass(frozen=True)
class TriggererArgs:
    config: StackConfig
    pods: AirflowPodHandles
    identity: IdentityHandle
    dag_paths: Mapping[str, str] | None = None


class Triggerer(pulumi.ComponentResource):
    deployment: objects.KubernetesObject

    def __init__(self, name: str, args: TriggererArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:Triggerer", name, None, opts)
        shared = args.pods
        self.deployment = register_workload(
            self, args.config, workload(args.config, args.dag_paths), shared.namespace, args.identity, shared.content()
        ).deployment
        self.register_outputs({})
