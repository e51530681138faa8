"""The scheduler: runs `airflow db migrate` first, then schedules (and, with LocalExecutor, runs) tasks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components import airflow_pod, k8s, names, pod_template, rollout, workloads
from components.config import StackConfig
from components.rbac import identities

E = names.AirflowEnv
HEALTH_PORT_NAME = "health"


def probes() -> dict[str, k8s.Manifest]:
    # The scheduler's own health-check server answers 200 while its heartbeat is recent.
    return {
        "startupProbe": airflow_pod.http_probe("/health", HEALTH_PORT_NAME, period=10, timeout=5, failures=30),
        "readinessProbe": airflow_pod.http_probe("/health", HEALTH_PORT_NAME, period=15, timeout=5, failures=3),
        "livenessProbe": airflow_pod.http_probe("/health", HEALTH_PORT_NAME, period=30, timeout=10, failures=5),
    }


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> k8s.Manifest:
    resources = config.scheduler.resources
    ports = [{"name": HEALTH_PORT_NAME, "containerPort": names.SCHEDULER_HEALTH_PORT, "protocol": "TCP"}]
    if config.executor == "LocalExecutor":
        # Tasks run here; the api-server fetches their logs from this port.
        ports.append({"name": "task-logs", "containerPort": names.WORKER_LOG_PORT, "protocol": "TCP"})
    scheduler = airflow_pod.AirflowContainer(
        name="scheduler",
        args=["airflow", "scheduler"],
        resources=resources,
        extra_env=[
            # Only the scheduler (its executor) reads [core] parallelism; elsewhere it would roll pods
            # for nothing when the capacity changes.
            k8s.env(E.PARALLELISM, str(config.effective_parallelism)),
            k8s.env(E.SCHEDULER_HEALTH_CHECK, "True"),
            k8s.env(E.SCHEDULER_HEALTH_PORT, str(names.SCHEDULER_HEALTH_PORT)),
            *pod_template.scheduler_env(config),
        ],
        ports=ports,
        probes=probes(),
    )
    identity = identities(config)[names.SCHEDULER]
    return airflow_pod.pod_spec(
        config,
        service_account=identity.name,
        mounts_api_token=identity.calls_kubernetes_api,
        containers=[airflow_pod.container(config, scheduler, pod_template.scheduler_mounts(config))],
        # Every scheduler pod migrates first: an image upgrade migrates before new pods serve.
        init_containers=[airflow_pod.migrate_database(config, resources)],
        extra_volumes=pod_template.scheduler_volumes(config),
        dag_paths=dag_paths,
    )


def workload(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> workloads.WorkloadSpec:
    return workloads.WorkloadSpec(
        name=names.SCHEDULER,
        component=names.Component.SCHEDULER,
        pod_spec=pod_spec(config, dag_paths),
        replicas=config.scheduler.replicas,
    )


@dataclass(frozen=True)
class SchedulerArgs:
    config: StackConfig
    registry: rollout.ContentRegistry
    dag_paths: Mapping[str, str] | None = None


class Scheduler(pulumi.ComponentResource):
    def __init__(self, name: str, args: SchedulerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:airflow:Scheduler", name, None, opts)
        self.resources = workloads.register_deployment(
            self, args.config, workload(args.config, args.dag_paths), args.registry
        )
        self.register_outputs({})
