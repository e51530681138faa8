"""Celery workers: one Deployment per configured queue set (CeleryExecutor)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.airflow_pods import containers as pods
from components.airflow_pods import environment as env
from components.airflow_pods.workload import AirflowPodHandles, WorkloadSpec, register_workload
from components.config import names
from components.config.model import StackConfig, WorkerSetConfig
from components.foundation.identities import identities
from components.kube import builders, objects
from components.kube.wiring import IdentityHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import PodSpec

E = names.AirflowEnv
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
DRAIN_SCRIPT = f"{env.SCRIPTS_DIR}/celery-drain.py"
DRAIN_MARGIN_SECONDS = 30
"""Left of the grace period after the drain, for Celery's own warm shutdown on SIGTERM."""


def drain_seconds(worker_set: WorkerSetConfig) -> int:
    return max(0, worker_set.termination_grace_period_seconds - DRAIN_MARGIN_SECONDS)


def ping_command() -> list[str]:
    # Exec probes get no $(VAR) expansion: the shell supplies the pod's hostname (Celery's node name).
    return [
        "sh",
        "-c",
        f'exec celery --app {CELERY_APP} inspect ping --destination "celery@${{HOSTNAME}}" --timeout 20',
    ]


def probes() -> pods.Probes:
    ping = ping_command()
    return {
        "startupProbe": pods.exec_probe(ping, period=15, timeout=45, failures=20),
        "livenessProbe": pods.exec_probe(ping, period=60, timeout=45, failures=5),
    }


def log_server(config: StackConfig, worker_set: WorkerSetConfig) -> pods.AirflowContainer:
    """A native sidecar serving the worker's task logs: the only container of the pod with the API key."""
    return pods.AirflowContainer(
        name="log-server",
        args=["python", env.LOG_SERVER],
        resources=worker_set.log_server_resources,
        credentials=env.log_server_credentials(config),
        ports=[{"name": "task-logs", "containerPort": names.WORKER_LOG_PORT, "protocol": "TCP"}],
        # The log server answering is what the api-server needs from a worker.
        probes={"readinessProbe": pods.tcp_probe("task-logs", period=15, timeout=5, failures=3)},
        dags=False,
        logs_read_only=True,
        sidecar=True,
    )


def pod_spec(config: StackConfig, worker_set: WorkerSetConfig, dag_paths: Mapping[str, str] | None = None) -> PodSpec:
    queues = ",".join(worker_set.queues)
    concurrency = str(worker_set.concurrency)
    worker = pods.AirflowContainer(
        name="worker",
        args=["airflow", "celery", "worker", "--queues", queues, "--concurrency", concurrency, "--skip-serve-logs"],
        resources=worker_set.resources,
        credentials=env.celery_worker_credentials(config),
        extra_env=[
            builders.env(E.CELERY_WORKER_CONCURRENCY, concurrency),
            builders.env(E.WORKER_QUEUES, queues),
            builders.env(E.DRAIN_SECONDS, str(drain_seconds(worker_set))),
        ],
        probes=probes(),
        # Stop consuming, then wait for running tasks, before SIGTERM: scaling down kills no task.
        lifecycle={"preStop": {"exec": {"command": ["python", DRAIN_SCRIPT]}}},
        clones_dags=True,
    )
    identity = identities(config)[names.WORKER]
    return pods.pod_spec(
        config,
        identity=identity,
        containers=[worker],
        # No wait for migrations: workers never touch the database, they call the execution API.
        init_containers=[log_server(config, worker_set)],
        termination_grace_period_seconds=worker_set.termination_grace_period_seconds,
        dag_paths=dag_paths,
        writes_logs=True,
    )


def workload(
    config: StackConfig, worker_set: WorkerSetConfig, dag_paths: Mapping[str, str] | None = None
) -> WorkloadSpec:
    return WorkloadSpec(
        name=names.worker_set(worker_set.name),
        component=names.Component.WORKER,
        pod_spec=pod_spec(config, worker_set, dag_paths),
        replicas=worker_set.replicas,
        autoscaled=config.celery_autoscaled,
        worker_set=worker_set.name,
        placement=worker_set.placement,
    )


@dataclass(frozen=True)
class CeleryWorkersArgs:
    config: StackConfig
    pods: AirflowPodHandles
    identity: IdentityHandle
    dag_paths: Mapping[str, str] | None = None


class CeleryWorkers(pulumi.ComponentResource):
    deployments: dict[str, objects.KubernetesObject]
    """By Deployment name (airflow-worker-NAME)."""

    def __init__(self, name: str, args: CeleryWorkersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:executors:CeleryWorkers", name, None, opts)
        shared = args.pods
        self.deployments = {}
        for worker_set in args.config.workers:
            spec = workload(args.config, worker_set, args.dag_paths)
            registered = register_workload(self, args.config, spec, shared.namespace, args.identity, shared.content())
            self.deployments[spec.name] = registered.deployment
        self.register_outputs({"workerSets": sorted(self.deployments)})
