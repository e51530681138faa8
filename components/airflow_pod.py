"""What every Airflow pod shares: environment, mounts, init containers and a hardened pod spec.

Pure functions of the stack config. The environment is the single source of Airflow's configuration:
plain settings as values, credentials as ``<setting>_CMD`` reading the stack's Secrets mounted as files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from components import dags, k8s, names
from components.config import ResourcesConfig, StackConfig

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

CONFIG_VOLUME = "airflow-config"
SCRIPTS_VOLUME = "airflow-scripts"
POD_TEMPLATE_VOLUME = "pod-template"


# --- URLs -----------------------------------------------------------------------------------------


def api_server_url(config: StackConfig) -> str:
    """The api-server Service inside the cluster (by DNS name, never an IP)."""
    return f"http://{names.dns_name(names.API_SERVER, config.namespace)}:{names.API_SERVER_PORT}"


PORT_FORWARD_URL = f"http://localhost:{names.API_SERVER_PORT}"
"""Where the README's `kubectl port-forward` serves the UI, and Airflow's own default for its links."""


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
        "xcom_sidecar_container_security_context": json.dumps(k8s.container_security_context(), sort_keys=True),
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


def secret_volume(secret: str, keys: Sequence[str]) -> k8s.Manifest:
    """Only the keys a pod needs, readable by the pod's group (gid 0) and nobody else."""
    items = [{"key": key, "path": key} for key in sorted(set(keys))]
    return {"name": f"secret-{secret}", "secret": {"secretName": secret, "items": items, "defaultMode": 0o440}}


def secret_volumes(files: Sequence[SecretFile]) -> list[k8s.Manifest]:
    by_secret: dict[str, list[str]] = {}
    for file in files:
        by_secret.setdefault(file.secret, []).append(file.key)
    return [secret_volume(secret, keys) for secret, keys in sorted(by_secret.items())]


def secret_mounts(files: Sequence[SecretFile]) -> list[k8s.Manifest]:
    return [
        k8s.mount(f"secret-{secret}", f"{SECRETS_DIR}/{secret}", read_only=True)
        for secret in sorted({file.secret for file in files})
    ]


# --- environment ----------------------------------------------------------------------------------


def core_env(config: StackConfig) -> list[k8s.Manifest]:
    """Settings every Airflow process reads (api-server, scheduler, dag-processor, triggerer, workers)."""
    environment = [
        k8s.env(E.AIRFLOW_CONFIG, AIRFLOW_CFG_PATH),
        # The stack waits for the database itself (wait-for-migrations); skip the entrypoint's check.
        k8s.env(E.CONNECTION_CHECK_MAX_COUNT, "0"),
        k8s.env(E.EXECUTOR, config.executor),
        k8s.env(E.AUTH_MANAGER, FAB_AUTH_MANAGER),
        k8s.env(E.LOAD_EXAMPLES, "False"),
        k8s.env(E.DAGS_FOLDER, dags.dags_folder(config)),
        k8s.env(E.HOSTNAME_CALLABLE, HOSTNAME_CALLABLE),
        *([k8s.env(E.API_BASE_URL, public)] if (public := base_url(config)) else []),
        # Task processes always reach the execution API inside the cluster, whatever users open.
        k8s.env(E.EXECUTION_API_SERVER_URL, execution_api_url(config)),
        # Airflow runs `<setting>_CMD` (no shell) and uses its output: the value stays in a file.
        *(k8s.env(f"{file.variable}_CMD", f"cat {file.path}") for file in secret_files(config)),
        k8s.env(E.KUBERNETES_CONNECTION, kubernetes_connection(config)),
        # What DAGs may know about the stack (dags/stack_context.py).
        k8s.env(E.NAMESPACE, config.namespace),
        k8s.env(E.TASK_SERVICE_ACCOUNT, names.TASK_POD),
        k8s.env(E.API_SERVER_URL, api_server_url(config)),
        k8s.env(E.EXAMPLE_SECRET, names.EXAMPLE_SECRET),
        k8s.env(E.EXAMPLE_CONFIG_MAP, names.EXAMPLE_CONFIG_MAP),
    ]
    environment += [k8s.env(name, value) for name, value in sorted(config.extra_env.items())]
    return environment


def env_from(config: StackConfig) -> list[k8s.Manifest]:
    """Whole Secrets as environment: the user's connections and any extra Secrets they name."""
    sources: list[k8s.Manifest] = []
    if config.connections:
        sources.append({"secretRef": {"name": names.CONNECTIONS_SECRET}})
    sources += [{"secretRef": {"name": secret}} for secret in config.extra_env_from_secrets]
    return sources


# --- volumes --------------------------------------------------------------------------------------


def base_volumes(config: StackConfig) -> list[k8s.Manifest]:
    return [
        {"name": CONFIG_VOLUME, "configMap": {"name": names.AIRFLOW_CONFIG_MAP}},
        {"name": SCRIPTS_VOLUME, "configMap": {"name": names.SCRIPTS_CONFIG_MAP, "defaultMode": 0o444}},
        *secret_volumes(secret_files(config)),
        k8s.empty_dir("tmp", "1Gi"),
        k8s.empty_dir("logs", "2Gi"),
    ]


def base_mounts(config: StackConfig) -> list[k8s.Manifest]:
    return [
        k8s.mount(CONFIG_VOLUME, CONFIG_DIR, read_only=True),
        k8s.mount(SCRIPTS_VOLUME, SCRIPTS_DIR, read_only=True),
        *secret_mounts(secret_files(config)),
        k8s.mount("tmp", "/tmp"),
        k8s.mount("logs", LOGS_DIR),
    ]


# --- containers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AirflowContainer:
    """One Airflow process. ``args`` go to the image's entrypoint (dumb-init, then `airflow ...`)."""

    name: str
    args: list[str]
    resources: ResourcesConfig
    extra_env: list[k8s.Manifest] = field(default_factory=lambda: [])
    ports: list[k8s.Manifest] = field(default_factory=lambda: [])
    probes: dict[str, k8s.Manifest] = field(default_factory=lambda: {})
    lifecycle: k8s.Manifest | None = None
    dags: bool = True


def container(config: StackConfig, spec: AirflowContainer, extra_mounts: Sequence[k8s.Manifest] = ()) -> k8s.Manifest:
    built: k8s.Manifest = {
        "name": spec.name,
        "image": config.image.reference,
        "imagePullPolicy": config.image.pull_policy,
        "args": spec.args,
        "env": [*core_env(config), *spec.extra_env],
        "resources": k8s.resources(spec.resources),
        "securityContext": k8s.container_security_context(),
        "volumeMounts": [*base_mounts(config), *(dags.mounts(config) if spec.dags else []), *extra_mounts],
    }
    sources = env_from(config)
    if sources:
        built["envFrom"] = sources
    if spec.ports:
        built["ports"] = spec.ports
    built.update(spec.probes)
    if spec.lifecycle is not None:
        built["lifecycle"] = spec.lifecycle
    return built


def wait_for_migrations(config: StackConfig, resources: ResourcesConfig) -> k8s.Manifest:
    """Init container: hold the pod until the database is reachable and migrated (bounded)."""
    return container(
        config,
        AirflowContainer(
            name="wait-for-migrations",
            args=["bash", WAIT_FOR_MIGRATIONS],
            resources=resources,
            extra_env=[k8s.env(E.MIGRATION_WAIT_TIMEOUT, str(config.migration_wait_timeout_seconds))],
            dags=False,
        ),
    )


def migrate_database(config: StackConfig, resources: ResourcesConfig) -> k8s.Manifest:
    """Init container: `airflow db migrate` (Airflow holds a database lock; a second runner waits)."""
    return container(
        config,
        AirflowContainer(name="migrate-database", args=["airflow", "db", "migrate"], resources=resources, dags=False),
    )


def exec_probe(command: list[str], period: int, timeout: int, failures: int) -> k8s.Manifest:
    return {
        "exec": {"command": command},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def http_probe(path: str, port: str, period: int, timeout: int, failures: int) -> k8s.Manifest:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def tcp_probe(port: str, period: int, timeout: int, failures: int) -> k8s.Manifest:
    return {
        "tcpSocket": {"port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def jobs_check_probes(job_type: str) -> dict[str, k8s.Manifest]:
    """Liveness through `airflow jobs check`: the CLI needs 4-5 s to start, more under a CPU limit."""
    command = ["airflow", "jobs", "check", "--job-type", job_type, "--local"]
    return {
        "startupProbe": exec_probe(command, period=15, timeout=45, failures=20),
        "livenessProbe": exec_probe(command, period=60, timeout=45, failures=5),
    }


def pod_spec(
    config: StackConfig,
    service_account: str,
    mounts_api_token: bool,
    containers: Sequence[k8s.Manifest],
    init_containers: Sequence[k8s.Manifest] = (),
    extra_volumes: Sequence[k8s.Manifest] = (),
    termination_grace_period_seconds: int = 60,
    dag_paths: Mapping[str, str] | None = None,
    dag_sidecar: bool = True,
) -> k8s.Manifest:
    """A hardened Airflow pod: uid 50000/gid 0, token only where the API is called.

    ``dag_paths`` maps the DAG ConfigMap's keys to file paths (ConfigMap delivery). ``dag_sidecar``
    False leaves out the container that keeps the DAGs current (pods that run to completion).
    """
    spec: k8s.Manifest = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": mounts_api_token,
        "securityContext": k8s.pod_security_context(k8s.AIRFLOW_UID, k8s.AIRFLOW_GID, k8s.AIRFLOW_GID),
        "terminationGracePeriodSeconds": termination_grace_period_seconds,
        # One DAG checkout first; the sidecar that keeps it current starts after the other init steps.
        "initContainers": [
            *dags.init_containers(config),
            *init_containers,
            *(dags.sidecars(config) if dag_sidecar else []),
        ],
        "containers": list(containers),
        "volumes": [*base_volumes(config), *dags.volumes(config, dag_paths), *extra_volumes],
    }
    if not spec["initContainers"]:
        del spec["initContainers"]
    return spec


def deployment_manifest(
    config: StackConfig,
    name: str,
    component: str,
    spec: k8s.Manifest,
    replicas: int | None,
    template_annotations: dict[str, Any],
    max_unavailable: int | str = 0,
    worker_set: str | None = None,
) -> k8s.Manifest:
    """A Deployment; ``replicas`` None leaves the field to an autoscaler (KEDA)."""
    namespace = config.namespace
    labels = {**names.labels(component, namespace, worker_set), "app.kubernetes.io/version": config.image.tag}
    template_meta: k8s.Manifest = {"labels": labels}
    if template_annotations:
        template_meta["annotations"] = template_annotations
    deployment_spec: k8s.Manifest = {
        "selector": {"matchLabels": names.selector_labels(component, namespace, worker_set)},
        "revisionHistoryLimit": 5,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": max_unavailable}},
        "template": {"metadata": template_meta, "spec": spec},
    }
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": k8s.metadata(name, component, namespace, namespace, extra_labels=labels),
        "spec": deployment_spec,
    }


def disruption_budget_manifest(
    config: StackConfig, name: str, component: str, worker_set: str | None = None
) -> k8s.Manifest:
    """At most one pod of a multi-replica workload down for voluntary disruptions (drains, upgrades)."""
    namespace = config.namespace
    selector = names.selector_labels(component, namespace, worker_set)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": k8s.metadata(name, component, namespace, namespace, extra_labels=selector),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
