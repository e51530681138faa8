"""The triggerer: runs deferred tasks' triggers (asyncio), e.g. deferrable KubernetesPodOperator waits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components import airflow_pod, k8s, names, rollout, workloads
from components.config import StackConfig
from components.rbac import identities

E = names.AirflowEnv


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> k8s.Manifest:
    resources = config.triggerer.resources
    triggerer = airflow_pod.AirflowContainer(
        name="triggerer",
        args=["airflow", "triggerer"],
        resources=resources,
        extra_env=[k8s.env(E.TRIGGERER_CAPACITY, str(config.triggerer.capacity))],
        ports=[{"name": "trigger-logs", "containerPort": names.TRIGGERER_LOG_PORT, "protocol": "TCP"}],
        probes={
            **airflow_pod.jobs_check_probes("TriggererJob"),
            # Cheap: the trigger log server answering means the triggerer process is up.
            "readinessProbe": airflow_pod.tcp_probe("trigger-logs", period=15, timeout=5, failures=3),
        },
    )
    identity = identities(config)[names.TRIGGERER]
    return airflow_pod.pod_spec(
        config,
        service_account=identity.name,
        mounts_api_token=identity.calls_kubernetes_api,
        containers=[airflow_pod.container(config, triggerer)],
        init_containers=[airflow_pod.wait_for_migrations(config, resources)],
        dag_paths=dag_paths,
    )


def workload(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> workloads.WorkloadSpec:
    return workloads.WorkloadSpec(
        name=names.TRIGGERER,
        component=names.Component.TRIGGERER,
        pod_spec=pod_spec(config, dag_paths),
        replicas=config.triggerer.replicas,
        autoscaled=config.keda.enabled and config.triggerer.autoscaling.enabled,
    )


@dataclass(frozen=True)
class TriggererArgs:
    config: StackConfig
    registry: rollout.ContentRegistry
    dag_paths: Mapping[str, str] | None = None


class Triggerer(pulumi.ComponentResource):
    def __init__(self, name: str, args: TriggererArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:airflow:Triggerer", name, None, opts)
        self.resources = workloads.register_deployment(
            self, args.config, workload(args.config, args.dag_paths), args.registry
        )
        self.register_outputs({})
