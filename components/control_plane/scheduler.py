"""The scheduler: runs `airflow db migrate` first, then schedules (and, with LocalExecutor, runs) tasks."""

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
from components.control_plane import task_pod_template
from components.foundation.identities import identities
from components.kube import builders, objects
from components.kube.wiring import ConfigMapHandle, IdentityHandle, SecretHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import ContainerPort, PodSpec

E = names.AirflowEnv
HEALTH_PORT_NAME = "health"


def probes() -> pods.Probes:
    # The scheduler's own health-check server answers 200 while its heartbeat is recent.
    return {
        "startupProbe": pods.http_probe("/health", HEALTH_PORT_NAME, period=10, timeout=5, failures=30),
        "readinessProbe": pods.http_probe("/health", HEALTH_PORT_NAME, period=15, timeout=5, failures=3),
        "livenessProbe": pods.http_probe("/health", HEALTH_PORT_NAME, period=30, timeout=10, failures=5),
    }


KEDA_PASSWORD = env.SecretFile(
    E.KEDA_PASSWORD_FILE, names.KEDA_DATABASE_SECRET, names.KEDA_PASSWORD_KEY, airflow_setting=False
)


def migrate_database(config: StackConfig) -> pods.AirflowContainer:
    """Init container: `airflow db migrate` (Airflow holds a database lock; a second runner waits), then
    the KEDA role kept in sync (it may read task_instance and trigger, nothing else). It connects to the
    database directly, also with PgBouncer on, and then first sets the role's SCRAM verifier."""
    keda: tuple[env.SecretFile, ...] = ()
    keda_env = []
    if config.keda.enabled:
        keda = (KEDA_PASSWORD,)
        keda_env = [builders.env(E.KEDA_ROLE, config.keda.database_role)]
    return pods.AirflowContainer(
        name="migrate-database",
        args=["python", env.MIGRATE_DATABASE],
        resources=config.scheduler.resources,
        credentials=(*env.migration_credentials(config), *keda),
        extra_env=keda_env,
        dags=False,
    )


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> PodSpec:
    resources = config.scheduler.resources
    ports: list[ContainerPort] = [
        {"name": HEALTH_PORT_NAME, "containerPort": names.SCHEDULER_HEALTH_PORT, "protocol": "TCP"}
    ]
    if config.runs_tasks_in_scheduler:
        # Tasks run here; the api-server fetches their logs from this port.
        ports.append({"name": "task-logs", "containerPort": names.WORKER_LOG_PORT, "protocol": "TCP"})
    scheduler = pods.AirflowContainer(
        name="scheduler",
        args=["airflow", "scheduler"],
        resources=resources,
        credentials=env.scheduler_credentials(config),
        extra_mounts=task_pod_template.scheduler_mounts(config),
        extra_env=[
            # Only the scheduler (its executor) reads [core] parallelism; elsewhere it would roll pods
            # for nothing when the capacity changes.
            builders.env(E.PARALLELISM, str(config.effective_parallelism)),
            builders.env(E.SCHEDULER_HEALTH_CHECK, "True"),
            builders.env(E.SCHEDULER_HEALTH_PORT, str(names.SCHEDULER_HEALTH_PORT)),
            *task_pod_template.scheduler_env(config),
        ],
        ports=ports,
        probes=probes(),
        # tasks run here (LocalExecutor): each checks its DAG version out of the Git DAG bundle
        clones_dags=config.runs_tasks_in_scheduler,
    )
    identity = identities(config)[names.SCHEDULER]
    return pods.pod_spec(
        config,
        identity=identity,
        containers=[scheduler],
        # Every scheduler pod migrates first: an image upgrade migrates before new pods serve.
        init_containers=[migrate_database(config)],
        extra_volumes=task_pod_template.scheduler_volumes(config),
        dag_paths=dag_paths,
        writes_logs=True,
    )


def workload(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> WorkloadSpec:
    return WorkloadSpec(
        name=names.SCHEDULER,
        component=names.Component.SCHEDULER,
        pod_spec=pod_spec(config, dag_paths),
        replicas=config.scheduler.replicas,
        placement=config.scheduler.placement,
    )


@dataclass(frozen=True)
class SchedulerArgs:
    config: StackConfig
    pods: AirflowPodHandles
    identity: IdentityHandle
    task_pod_template: ConfigMapHandle | None
    """The KubernetesExecutor's pod template (None without that executor)."""
    keda_login: SecretHandle | None = None
    """KEDA's database login, whose role the migration step keeps in sync (None without KEDA)."""
    dag_paths: Mapping[str, str] | None = None


class Scheduler(pulumi.ComponentResource):
    deployment: objects.KubernetesObject

    def __init__(self, name: str, args: SchedulerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:Scheduler", name, None, opts)
        shared = args.pods
        self.deployment = register_workload(
            self,
            args.config,
            workload(args.config, args.dag_paths),
            shared.namespace,
            args.identity,
            [*shared.content(), args.task_pod_template, args.keda_login],
        ).deployment
        self.register_outputs({})
