"""Celery workers: one Deployment per configured queue set (CeleryExecutor)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components import airflow_pod, k8s, names, rollout, workloads
from components.config import StackConfig, WorkerSetConfig
from components.rbac import identities

E = names.AirflowEnv
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
DRAIN_SCRIPT = f"{airflow_pod.SCRIPTS_DIR}/celery-drain.py"
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


def probes() -> dict[str, k8s.Manifest]:
    ping = ping_command()
    return {
        "startupProbe": airflow_pod.exec_probe(ping, period=15, timeout=45, failures=20),
        "livenessProbe": airflow_pod.exec_probe(ping, period=60, timeout=45, failures=5),
        # The log server answering is what the api-server needs from a worker.
        "readinessProbe": airflow_pod.tcp_probe("task-logs", period=15, timeout=5, failures=3),
    }


def pod_spec(
    config: StackConfig, worker_set: WorkerSetConfig, dag_paths: Mapping[str, str] | None = None
) -> k8s.Manifest:
    queues = ",".join(worker_set.queues)
    concurrency = str(worker_set.concurrency)
    worker = airflow_pod.AirflowContainer(
        name="worker",
        args=["airflow", "celery", "worker", "--queues", queues, "--concurrency", concurrency],
        resources=worker_set.resources,
        extra_env=[
            k8s.env(E.CELERY_WORKER_CONCURRENCY, concurrency),
            k8s.env(E.WORKER_QUEUES, queues),
            k8s.env(E.DRAIN_SECONDS, str(drain_seconds(worker_set))),
        ],
        ports=[{"name": "task-logs", "containerPort": names.WORKER_LOG_PORT, "protocol": "TCP"}],
        probes=probes(),
        # Stop consuming, then wait for running tasks, before SIGTERM: scaling down kills no task.
        lifecycle={"preStop": {"exec": {"command": ["python", DRAIN_SCRIPT]}}},
    )
    identity = identities(config)[names.WORKER]
    return airflow_pod.pod_spec(
        config,
        service_account=identity.name,
        mounts_api_token=identity.calls_kubernetes_api,
        containers=[airflow_pod.container(config, worker)],
        init_containers=[airflow_pod.wait_for_migrations(config, worker_set.resources)],
        termination_grace_period_seconds=worker_set.termination_grace_period_seconds,
        dag_paths=dag_paths,
    )


def workload(
    config: StackConfig, worker_set: WorkerSetConfig, dag_paths: Mapping[str, str] | None = None
) -> workloads.WorkloadSpec:
    return workloads.WorkloadSpec(
        name=names.worker_set(worker_set.name),
        component=names.Component.WORKER,
        pod_spec=pod_spec(config, worker_set, dag_paths),
        replicas=worker_set.replicas,
        autoscaled=config.keda.enabled,
        worker_set=worker_set.name,
    )


@dataclass(frozen=True)
class CeleryWorkersArgs:
    config: StackConfig
    registry: rollout.ContentRegistry
    dag_paths: Mapping[str, str] | None = None


class CeleryWorkers(pulumi.ComponentResource):
    def __init__(self, name: str, args: CeleryWorkersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:executor:CeleryWorkers", name, None, opts)
        self.resources: list[pulumi.CustomResource] = []
        for worker_set in args.config.workers:
            spec = workload(args.config, worker_set, args.dag_paths)
            self.resources += workloads.register_deployment(self, args.config, spec, args.registry)
        self.register_outputs({"workerSets": [names.worker_set(w.name) for w in args.config.workers]})
