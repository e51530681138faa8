"""The root component: Apache Airflow 3 on Kubernetes, everything the stack creates, wired explicitly.

    stack = AirflowStack("airflow", AirflowStackArgs(StackConfig(namespace="airflow")), opts)

Each component returns typed handles of what it created (a Secret's name, keys and content, a
ConfigMap, an identity, the namespace) and takes the handles it depends on as arguments, so the order
below is the order the dependencies allow, checked by the type checker and by ``kube.wiring``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from components.airflow_pods import dag_sources, environment
from components.airflow_pods.workload import AirflowPodHandles
from components.config import names
from components.config.model import StackConfig
from components.control_plane import api_server
from components.control_plane.api_server import ApiServer, ApiServerArgs
from components.control_plane.dag_bundle import DagConfigMap, DagConfigMapArgs
from components.control_plane.dag_processor import DagProcessor, DagProcessorArgs
from components.control_plane.database_backup import DatabaseBackup, DatabaseBackupArgs
from components.control_plane.database_cleanup import DatabaseCleanup, DatabaseCleanupArgs
from components.control_plane.examples import ExampleResources, ExampleResourcesArgs
from components.control_plane.scheduler import Scheduler, SchedulerArgs
from components.control_plane.settings import AirflowSettings, AirflowSettingsArgs
from components.control_plane.task_pod_template import TaskPodTemplate, TaskPodTemplateArgs
from components.control_plane.triggerer import Triggerer, TriggererArgs
from components.executors.autoscaling import Autoscaling, AutoscalingArgs, scalings
from components.executors.broker import Broker, BrokerArgs
from components.executors.celery_workers import CeleryWorkers, CeleryWorkersArgs
from components.foundation import logs_volume
from components.foundation.credentials import Credentials, CredentialsArgs
from components.foundation.external_services import ExternalServices, ExternalServicesArgs
from components.foundation.identities import Identities, IdentitiesArgs
from components.foundation.logs_volume import LogsVolume, LogsVolumeArgs
from components.foundation.namespace import Namespace, NamespaceArgs
from components.foundation.network_policies import NetworkPolicies, NetworkPoliciesArgs
from components.foundation.pgbouncer import PgBouncer, PgBouncerArgs
from components.foundation.postgres import Postgres, PostgresArgs
from components.kube.wiring import ConfigMapHandle, SecretHandle
from components.observability.alerts import Alerts, AlertsArgs
from components.observability.dashboard import Dashboard, DashboardArgs
from components.observability.metrics import Metrics, MetricsArgs

TYPE_TOKEN = "airflow-k8s:index:AirflowStack"


@dataclass(frozen=True)
class AirflowStackArgs:
    """What the stack is built from: a validated config, and (ConfigMap delivery) the DAG folder.

    Constructing the args reads and checks the DAG folder, so a folder that cannot ship fails here,
    before any resource is registered.
    """

    config: StackConfig
    dag_folder: Path | None = None
    """The DAGs to ship with ``dags.delivery: configmap``; default: this repository's ``dags/``."""
    dag_bundle: dag_sources.DagBundle | None = field(init=False)

    def __post_init__(self) -> None:
        bundle = dag_sources.collect(self.dag_folder) if self.config.dags_in_config_map else None
        object.__setattr__(self, "dag_bundle", bundle)


class AirflowStack(pulumi.ComponentResource):
    """Apache Airflow 3 on Kubernetes: namespace, identities, credentials, database, Airflow's services,
    executors and autoscaling, DAG delivery and network policies."""

    namespace: str
    api_server_url: pulumi.Output[str]
    """The api-server Service's in-cluster URL, read from the Service."""
    ui_url: str
    """The URL users open: the public URL, or the port-forward one."""
    port_forward_command: str
    secret_names: list[str]
    database_host: str | pulumi.Output[str]
    admin_username: str | None
    admin_password: pulumi.Output[str] | None
    """A Pulumi secret (None with auth.adminLogin false)."""

    def __init__(self, name: str, args: AirflowStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        config = args.config
        bundle = args.dag_bundle
        dag_paths = bundle.paths if bundle is not None else None
        child = pulumi.ResourceOptions(parent=self)

        namespace = Namespace(
            "namespace", NamespaceArgs(config.namespace, config.pod_security_level, config.protect_data), child
        ).handle
        NetworkPolicies("network-policies", NetworkPoliciesArgs(config, namespace), child)
        if config.external_services:
            ExternalServices("external-services", ExternalServicesArgs(config, namespace), child)
        identity = Identities("identities", IdentitiesArgs(config, namespace), child).handles
        credentials = Credentials("credentials", CredentialsArgs(config, namespace), child)
        settings = AirflowSettings("settings", AirflowSettingsArgs(namespace), child)
        if logs_volume.enabled(config):
            LogsVolume("logs-volume", LogsVolumeArgs(config, namespace), child)
        dags: ConfigMapHandle | None = None
        if bundle is not None:
            dags = DagConfigMap("dags", DagConfigMapArgs(namespace, bundle), child).handle
        secrets: list[SecretHandle] = list(credentials.handles)
        if config.dags.example_resources:
            examples = ExampleResources("examples", ExampleResourcesArgs(config, namespace), child)
            secrets.append(examples.secret)
        database: list[pulumi.Resource] = []
        if config.in_cluster_database:
            assert credentials.postgres is not None, "in-cluster mode generates the Postgres password"
            postgres = Postgres(
                "postgres", PostgresArgs(config, namespace, identity[names.POSTGRES], credentials.postgres), child
            )
            database.append(postgres.statefulset)
        if config.uses_pgbouncer:
            bouncer = PgBouncer(
                "pgbouncer",
                PgBouncerArgs(config, namespace, identity[names.PGBOUNCER], credentials.metadata),
                child,
            )
            secrets.append(bouncer.config_secret)
        broker: SecretHandle | None = None
        if config.uses_celery:
            broker = Broker("broker", BrokerArgs(config, namespace, identity[names.REDIS]), child).secret
            secrets.append(broker)

        pods = AirflowPodHandles(
            namespace=namespace,
            settings=settings.airflow_cfg,
            scripts=settings.scripts,
            metadata=credentials.metadata,
            keys=credentials.keys,
            connections=credentials.connections,
            broker=broker,
            dags=dags,
        )
        template: ConfigMapHandle | None = None
        if config.uses_kubernetes_executor:
            template = TaskPodTemplate(
                "task-pod-template", TaskPodTemplateArgs(config, pods, identity[names.WORKER], dag_paths), child
            ).handle
        server = ApiServer(
            "api-server",
            ApiServerArgs(config, pods, identity[names.API_SERVER], credentials.admin, credentials.oidc, dag_paths),
            child,
        )
        scheduler_opts = child
        if config.backup.enabled:
            backup = DatabaseBackup(
                "database-backup",
                DatabaseBackupArgs(config, pods, identity[names.DATABASE_BACKUP], database),
                child,
            )
            # the schedulers migrate: only once the backup Job for this image has completed
            scheduler_opts = pulumi.ResourceOptions(parent=self, depends_on=[backup.job])
        Scheduler(
            "scheduler",
            SchedulerArgs(config, pods, identity[names.SCHEDULER], template, credentials.keda, dag_paths),
            scheduler_opts,
        )
        DagProcessor("dag-processor", DagProcessorArgs(config, pods, identity[names.DAG_PROCESSOR], dag_paths), child)
        triggerer = Triggerer("triggerer", TriggererArgs(config, pods, identity[names.TRIGGERER], dag_paths), child)
        scaled: dict[str, pulumi.Resource] = {names.TRIGGERER: triggerer.deployment}
        if config.uses_celery:
            workers = CeleryWorkers(
                "celery-workers", CeleryWorkersArgs(config, pods, identity[names.WORKER], dag_paths), child
            )
            scaled.update(workers.deployments)
        if config.database_cleanup.enabled:
            DatabaseCleanup(
                "database-cleanup", DatabaseCleanupArgs(config, pods, identity[names.DATABASE_CLEANUP]), child
            )
        if config.metrics.enabled:
            Metrics("metrics", MetricsArgs(config, namespace, identity[names.STATSD]), child)
        if config.alerts.enabled:
            Alerts("alerts", AlertsArgs(config, namespace), child)
        if config.dashboard.enabled:
            Dashboard("dashboard", DashboardArgs(config, namespace), child)
        if scalings(config):
            assert credentials.keda is not None, "KEDA on generates its database login"
            Autoscaling("autoscaling", AutoscalingArgs(config, namespace, credentials.keda, scaled), child)

        self.namespace = config.namespace
        self.api_server_url = server.url
        self.ui_url = environment.ui_url(config)
        self.port_forward_command = api_server.port_forward_command(config)
        self.secret_names = sorted(handle.name for handle in secrets)
        self.database_host = credentials.database_host
        self.admin_username = config.auth.admin_username if config.auth.admin_login else None
        password = credentials.admin_password
        self.admin_password = pulumi.Output.secret(password) if password is not None else None
        self.register_outputs(self.outputs)

    @property
    def outputs(self) -> dict[str, object]:
        """The stack outputs, by the names `pulumi stack output` shows."""
        found: dict[str, object] = {
            "namespace": self.namespace,
            "databaseHost": self.database_host,
            "secretNames": self.secret_names,
            "apiServerUrl": self.api_server_url,
            "uiUrl": self.ui_url,
            "portForwardCommand": self.port_forward_command,
        }
        if self.admin_password is not None:
            found.update({"adminUsername": self.admin_username, "adminPassword": self.admin_password})
        return found
