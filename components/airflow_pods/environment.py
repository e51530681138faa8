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
WAIT_FOR_MIGRATIONS = f"{SCRIPTS_DIR}/wait-for-migrations.sh"
BOOTSTRAP_ADMIN = f"{SCRIPTS_DIR}/bootstrap-admin.py"
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
    """One Airflow setting read from a mounted Secret key through its ``_CMD`` variant."""

    variable: str
    secret: str
    key: str

    @property
    def path(self) -> str:
        return f"{SECRETS_DIR}/{self.secret}/{self.key}"


def secret_files(config: StackConfig) -> list[SecretFile]:
    """Airflow's credentials: mounted read-only, never in the environment (which task processes inherit)."""
    files = [
        SecretFile(E.SQL_ALCHEMY_CONN, names.METADATA_SECRET, names.METADATA_CONNECTION_KEY),
        SecretFile(E.FERNET_KEY, names.KEYS_SECRET, names.FERNET_KEY),
        SecretFile(E.API_SECRET_KEY, names.KEYS_SECRET, names.API_SECRET_KEY),
        SecretFile(E.JWT_SECRET, names.KEYS_SECRET, names.JWT_SECRET_KEY),
    ]
    if config.uses_celery:
        files += [
            SecretFile(E.CELERY_BROKER_URL, names.REDIS_SECRET, names.REDIS_BROKER_URL_KEY),
            SecretFile(E.CELERY_RESULT_BACKEND, names.METADATA_SECRET, names.METADATA_RESULT_BACKEND_KEY),
        ]
    return files


def secret_volume(secret: str, keys: Sequence[str]) -> Volume:
    """Only the keys a pod needs, readable by the pod's group (gid 0) and nobody else."""
    items: list[KeyToPath] = [{"key": key, "path": key} for key in sorted(set(keys))]
    return {"name": f"secret-{secret}", "secret": {"secretName": secret, "items": items, "defaultMode": 0o440}}


def secret_volumes(files: Sequence[SecretFile]) -> list[Volume]:
    by_secret: dict[str, list[str]] = {}
    for file in files:
        by_secret.setdefault(file.secret, []).append(file.key)
    return [secret_volume(secret, keys) for secret, keys in sorted(by_secret.items())]


def secret_mounts(files: Sequence[SecretFile]) -> list[VolumeMount]:
    return [
        builders.mount(f"secret-{secret}", f"{SECRETS_DIR}/{secret}", read_only=True)
        for secret in sorted({file.secret for file in files})
    ]


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
        builders.env(E.HOSTNAME_CALLABLE, HOSTNAME_CALLABLE),
        *([builders.env(E.API_BASE_URL, public)] if (public := base_url(config)) else []),
        # Task processes always reach the execution API inside the cluster, whatever users open.
        builders.env(E.EXECUTION_API_SERVER_URL, execution_api_url(config)),
        # Airflow runs `<setting>_CMD` (no shell) and uses its output: the value stays in a file.
        *(builders.env(f"{file.variable}_CMD", f"cat {file.path}") for file in secret_files(config)),
        builders.env(E.KUBERNETES_CONNECTION, kubernetes_connection(config)),
        # What DAGs may know about the stack (dags/stack_context.py).
        builders.env(E.NAMESPACE, config.namespace),
        builders.env(E.TASK_SERVICE_ACCOUNT, names.TASK_POD),
        builders.env(E.API_SERVER_URL, api_server_url(config)),
        builders.env(E.EXAMPLE_SECRET, names.EXAMPLE_SECRET),
        builders.env(E.EXAMPLE_CONFIG_MAP, names.EXAMPLE_CONFIG_MAP),
    ]
    environment += [builders.env(name, value) for name, value in sorted(config.extra_env.items())]
    return environment


def env_from(config: StackConfig) -> list[EnvFromSource]:
    """Whole Secrets as environment: the user's connections and any extra Secrets they name."""
    sources: list[EnvFromSource] = []
    if config.connections:
        sources.append({"secretRef": {"name": names.CONNECTIONS_SECRET}})
    extra: list[EnvFromSource] = [{"secretRef": {"name": secret}} for secret in config.extra_env_from_secrets]
    sources += extra
    return sources
