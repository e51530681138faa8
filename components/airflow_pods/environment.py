"""What every Airflow process is told: its URLs, its settings and where its credentials are.

The environment is the single source of Airflow's configuration: plain settings as values,
credentials as ``<setting>_CMD`` reading the stack's Secrets mounted as files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from components.airflow_pods import dag_sources
from components.config import names
from components.config.model import StackConfig
from components.foundation import placement
from components.kube import builders

if TYPE_CHECKING:
    from components.kube.manifest_types import EnvFromSource, EnvVar, KeyToPath, Volume, VolumeMount

E = names.AirflowEnv

AIRFLOW_HOME = "/opt/airflow"
LOGS_DIR = f"{AIRFLOW_HOME}/logs"
CONFIG_DIR = "/opt/airflow-k8s/config"
SCRIPTS_DIR = "/opt/airflow-k8s/scripts"
POD_TEMPLATE_DIR = "/opt/airflow-k8s/pod-template"
SECRETS_DIR = "/opt/airflow-k8s/secrets"
AIRFLOW_CFG_PATH = f"{CONFIG_DIR}/{names.AIRFLOW_CFG_KEY}"
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
# Task logs are fetched from the pod that ran the task; pod names do not resolve in DNS, pod IPs do.
HOSTNAME_CALLABLE = "airflow.utils.net.get_host_ip_address"
WAIT_FOR_MIGRATIONS = f"{SCRIPTS_DIR}/wait-for-migrations.py"
JOB_ALIVE = f"{SCRIPTS_DIR}/job-alive.py"
EXECUTION_API_TIMEOUT_SECONDS = 60
"""[workers] execution_api_timeout: how long a task's supervisor waits for one execution API answer."""
BOOTSTRAP_ADMIN = f"{SCRIPTS_DIR}/bootstrap-admin.py"
MIGRATE_DATABASE = f"{SCRIPTS_DIR}/migrate-database.py"
LOG_SERVER = f"{SCRIPTS_DIR}/log-server.py"
DB_CLEAN = f"{SCRIPTS_DIR}/db-clean.sh"
LOG_CLEANUP = f"{SCRIPTS_DIR}/log-cleanup.sh"
XCOM_SIDECAR_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}


# --- URLs -----------------------------------------------------------------------------------------

PORT_FORWARD_URL = f"http://localhost:{names.API_SERVER_PORT}"
"""Where the README's `kubectl port-forward` serves the UI, and Airflow's own default for its links."""


def api_server_url(config: StackConfig) -> str:
    """The api-server Service inside the cluster (by DNS name, never an IP)."""
    return f"http://{names.dns_name(names.API_SERVER, config.namespace)}:{names.API_SERVER_PORT}"


def base_url(config: StackConfig) -> str | None:
    """[api] base_url: the public URL users open, or None when the api-server is not exposed.

    Unset, Airflow's login and logout redirects are relative, so the UI works through
    `kubectl port-forward` on any local host and port; an in-cluster URL here would send the
    browser to a name it cannot resolve.
    """
    return config.api_server.base_url


def ui_url(config: StackConfig) -> str:
    """The URL users should open: the public URL, or the port-forward one."""
    return base_url(config) or PORT_FORWARD_URL


def base_path(config: StackConfig) -> str:
    """The path prefix Airflow serves under ("" at the root), from [api] base_url."""
    return urlsplit(base_url(config) or "").path.rstrip("/")


def execution_api_url(config: StackConfig) -> str:
    return f"{api_server_url(config)}{base_path(config)}/execution/"


def health_path(config: StackConfig) -> str:
    return f"{base_path(config)}/api/v2/monitor/health"


def execution_health_path(config: StackConfig) -> str:
    return f"{base_path(config)}/execution/health"


def kubernetes_connection(config: StackConfig) -> str:
    """The kubernetes_default connection: in-cluster, in the stack's namespace, hardened XCom sidecar."""
    extra = {
        "in_cluster": True,
        "namespace": config.namespace,
        "xcom_sidecar_container_image": config.task_pods.xcom_sidecar_image,
        "xcom_sidecar_container_resources": json.dumps(XCOM_SIDECAR_RESOURCES, sort_keys=True),
        "xcom_sidecar_container_security_context": json.dumps(builders.container_security_context(), sort_keys=True),
    }
    return json.dumps({"conn_type": "kubernetes", "extra": extra}, sort_keys=True)


# --- credentials, as read-only files ----------------------------------------------------------------


@dataclass(frozen=True)
class SecretFile:
    """One Secret key a process reads, mounted read-only as a file (its own subPath: nothing else of
    the Secret is visible). Airflow settings read it through their ``_CMD`` variant (``cat <path>``);
    other variables get the path itself."""

    variable: str
    secret: str
    key: str
    airflow_setting: bool = True

    @property
    def path(self) -> str:
        return f"{SECRETS_DIR}/{self.secret}/{self.key}"

    @property
    def volume(self) -> str:
        return f"secret-{self.secret}"

    def env(self) -> EnvVar:
        if self.airflow_setting:
            # Airflow runs `<setting>_CMD` (no shell) and uses its output: the value stays in a file.
            return builders.env(f"{self.variable}_CMD", f"cat {self.path}")
        return builders.env(self.variable, self.path)

    def mount(self) -> VolumeMount:
        return builders.mount(self.volume, self.path, read_only=True, sub_path=self.key)


METADATA_URL = SecretFile(E.SQL_ALCHEMY_CONN, names.METADATA_SECRET, names.METADATA_CONNECTION_KEY)
"""The database itself: the migration step (its advisory lock needs a session of its own)."""
POOLED_METADATA_URL = SecretFile(E.SQL_ALCHEMY_CONN, names.METADATA_SECRET, names.METADATA_POOLED_CONNECTION_KEY)
"""Through PgBouncer (pgbouncer.enabled)."""
SCRAM_VERIFIER = SecretFile(
    E.SCRAM_VERIFIER_FILE, names.METADATA_SECRET, names.METADATA_SCRAM_VERIFIER_KEY, airflow_setting=False
)
"""The database user's SCRAM verifier, which the migration step sets on the role (pgbouncer.enabled)."""
FERNET_KEY = SecretFile(E.FERNET_KEY, names.KEYS_SECRET, names.FERNET_KEY)
API_SECRET_KEY = SecretFile(E.API_SECRET_KEY, names.KEYS_SECRET, names.API_SECRET_KEY)
JWT_SECRET = SecretFile(E.JWT_SECRET, names.KEYS_SECRET, names.JWT_SECRET_KEY)
CELERY_BROKER = SecretFile(E.CELERY_BROKER_URL, names.REDIS_SECRET, names.REDIS_BROKER_URL_KEY)
# Celery keeps task results in Redis too: Celery workers then need no database credentials at all.
CELERY_RESULTS = SecretFile(E.CELERY_RESULT_BACKEND, names.REDIS_SECRET, names.REDIS_BROKER_URL_KEY)


def database_url(config: StackConfig) -> SecretFile:
    """The URL Airflow's processes use: through PgBouncer when it is on, else the database itself."""
    return POOLED_METADATA_URL if config.uses_pgbouncer else METADATA_URL


def migration_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """`airflow db migrate` connects directly: it holds a PostgreSQL advisory lock for the whole migration,
    which lives in a server session (transaction pooling would hand that session to others). With PgBouncer
    it also sets the role's SCRAM verifier, which PgBouncer's pass-through needs."""
    return (METADATA_URL, SCRAM_VERIFIER) if config.uses_pgbouncer else (METADATA_URL,)


def celery(config: StackConfig) -> tuple[SecretFile, ...]:
    return (CELERY_BROKER, CELERY_RESULTS) if config.uses_celery else ()


def api_server_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """Serves the UI (sessions: the API secret key), the REST API (connections: Fernet) and the
    execution API (task tokens: the JWT secret); signs the tokens it fetches task logs with."""
    return (database_url(config), FERNET_KEY, API_SECRET_KEY, JWT_SECRET)


def scheduler_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """Signs the task tokens executors hand out (JWT); with LocalExecutor it also serves task logs."""
    log_server = (API_SECRET_KEY,) if config.runs_tasks_in_scheduler else ()
    return (database_url(config), FERNET_KEY, JWT_SECRET, *log_server, *celery(config))


def dag_processor_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """Parses DAGs against the database through its in-process execution API: no token to sign."""
    return (database_url(config), FERNET_KEY)


def triggerer_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """Runs triggers against the database (in-process execution API); serves the trigger logs."""
    return (database_url(config), FERNET_KEY, API_SECRET_KEY)


def log_server_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """The log server beside a Celery worker: checks the api-server's log tokens (the API secret key)."""
    return (API_SECRET_KEY,)


def celery_worker_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """Runs task code: only the broker. Tasks reach Airflow through the execution API with the token
    the scheduler gave them."""
    return celery(config)


def task_pod_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """A KubernetesExecutor task pod runs task code: nothing but the token in its workload."""
    return ()


def migration_wait_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    return (database_url(config),)


def database_cleanup_credentials(config: StackConfig) -> tuple[SecretFile, ...]:
    """`airflow db clean` deletes rows: the database URL, nothing to decrypt or sign."""
    return (database_url(config),)


def secret_volumes(files: Sequence[SecretFile]) -> list[Volume]:
    """One volume per Secret, holding only the keys some container of the pod reads, readable by the
    pod's group (gid 0) and nobody else."""
    by_secret: dict[str, set[str]] = {}
    for file in files:
        by_secret.setdefault(file.secret, set()).add(file.key)
    volumes: list[Volume] = []
    for secret, keys in sorted(by_secret.items()):
        items: list[KeyToPath] = [{"key": key, "path": key} for key in sorted(keys)]
        volumes.append(
            {"name": f"secret-{secret}", "secret": {"secretName": secret, "items": items, "defaultMode": 0o440}}
        )
    return volumes


# --- environment ----------------------------------------------------------------------------------


def core_env(config: StackConfig) -> list[EnvVar]:
    """Settings every Airflow process reads (api-server, scheduler, dag-processor, triggerer, workers)."""
    environment = [
        builders.env(E.AIRFLOW_CONFIG, AIRFLOW_CFG_PATH),
        # The stack waits for the database itself (wait-for-migrations); skip the entrypoint's check.
        builders.env(E.CONNECTION_CHECK_MAX_COUNT, "0"),
        builders.env(E.EXECUTOR, config.executor),
        builders.env(E.AUTH_MANAGER, FAB_AUTH_MANAGER),
        builders.env(E.LOAD_EXAMPLES, "False"),
        builders.env(E.DAGS_FOLDER, dag_sources.dags_folder(config)),
        *dag_sources.bundle_env(config),
        builders.env(E.HOSTNAME_CALLABLE, HOSTNAME_CALLABLE),
        *([builders.env(E.API_BASE_URL, public)] if (public := base_url(config)) else []),
        # Task processes always reach the execution API inside the cluster, whatever users open.
        builders.env(E.EXECUTION_API_SERVER_URL, execution_api_url(config)),
        # The task SDK's default (5 s) is shorter than a cold api-server worker's first answer under load
        # (28-47 s measured on 2 cores); a timed-out call is retried, but a whole try could fail.
        builders.env(E.EXECUTION_API_TIMEOUT, str(EXECUTION_API_TIMEOUT_SECONDS)),
        builders.env(E.KUBERNETES_CONNECTION, kubernetes_connection(config)),
        # What DAGs may know about the stack (dags/stack_context.py).
        builders.env(E.NAMESPACE, config.namespace),
        builders.env(E.TASK_SERVICE_ACCOUNT, names.TASK_POD),
        builders.env(E.API_SERVER_URL, api_server_url(config)),
        builders.env(E.EXAMPLE_SECRET, names.EXAMPLE_SECRET),
        builders.env(E.EXAMPLE_CONFIG_MAP, names.EXAMPLE_CONFIG_MAP),
        builders.env(E.TASK_POD_PLACEMENT, task_pod_placement(config)),
    ]
    environment += metrics_env(config)
    environment += remote_logging_env(config)
    environment += [builders.env(name, value) for name, value in sorted(config.extra_env.items())]
    return environment


def task_pod_placement(config: StackConfig) -> str:
    """Where KubernetesPodOperator pods run (``taskPods.placement`` over ``placement``), as pod spec fields
    in JSON: ``dags/pod_defaults.py`` hands them to the operator."""
    fields = placement.effective_fields(config, config.task_pods.placement)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def remote_logging_env(config: StackConfig) -> list[EnvVar]:
    """Where task logs go (logging.remote). Every process gets the settings; the connection itself only
    the processes that hold it (``remote_log_connection``): a task's supervisor fetches it through the
    execution API when it uploads the log."""
    remote = config.logging.remote
    if not remote.enabled:
        return []
    assert remote.base_folder is not None, "validated: remote logging has a base folder"
    return [
        builders.env(E.REMOTE_LOGGING, "True"),
        builders.env(E.REMOTE_BASE_LOG_FOLDER, remote.base_folder),
        builders.env(E.REMOTE_LOG_CONN_ID, remote.connection_id),
        builders.env(E.DELETE_LOCAL_LOGS, str(remote.delete_local_logs)),
    ]


def remote_log_connection(config: StackConfig) -> list[EnvVar]:
    """The log store's connection, for the processes that read (api-server) or upload in their own name
    (triggerer): ``AIRFLOW_CONN_<ID>`` from the user's Secret (Airflow has no file form for connections)."""
    remote = config.logging.remote
    if not remote.enabled or remote.connection_secret is None:
        return []
    return [
        {
            "name": f"AIRFLOW_CONN_{remote.connection_id.upper()}",
            "valueFrom": {"secretKeyRef": {"name": remote.connection_secret, "key": names.REMOTE_LOG_CONNECTION_KEY}},
        }
    ]


STATSD_PREFIX = "airflow"


def metrics_env(config: StackConfig) -> list[EnvVar]:
    """StatsD to the stack's exporter (metrics.enabled)."""
    if not config.metrics.enabled:
        return []
    return [
        builders.env(E.STATSD_ON, "True"),
        builders.env(E.STATSD_HOST, names.dns_name(names.STATSD, config.namespace)),
        builders.env(E.STATSD_PORT, str(names.STATSD_PORT)),
        builders.env(E.STATSD_PREFIX, STATSD_PREFIX),
        # tags as `name,dag_id=...,task_id=...`: the exporter turns them into labels (without it, Airflow
        # sends only names with the ids inside, one metric name per DAG and task)
        builders.env(E.STATSD_INFLUXDB_ENABLED, "True"),
    ]


def env_from(config: StackConfig) -> list[EnvFromSource]:
    """Whole Secrets as environment: the user's connections and any extra Secrets they name."""
    sources: list[EnvFromSource] = []
    if config.connections:
        sources.append({"secretRef": {"name": names.CONNECTIONS_SECRET}})
    extra: list[EnvFromSource] = [{"secretRef": {"name": secret}} for secret in config.extra_env_from_secrets]
    sources += extra
    return sources
