"""Airflow containers and the hardened pod around them: mounts, init containers, probes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from components.airflow_pods import dag_sources
from components.airflow_pods import environment as env
from components.config import names
from components.config.model import ResourcesConfig, StackConfig
from components.foundation.identities import Identity
from components.kube import builders

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        Container,
        ContainerPort,
        EnvVar,
        Lifecycle,
        PodSpec,
        Probe,
        Volume,
        VolumeMount,
    )

E = names.AirflowEnv

AIRFLOW_UID = 50000
AIRFLOW_GID = 0
CONFIG_VOLUME = "airflow-config"
SCRIPTS_VOLUME = "airflow-scripts"
POD_TEMPLATE_VOLUME = "pod-template"
LOGS_VOLUME = "logs"
LOG_CLEANUP_RESOURCES = ResourcesConfig(
    requests={"cpu": "10m", "memory": "32Mi"}, limits={"cpu": "100m", "memory": "64Mi"}
)

Probes = dict[str, "Probe"]
"""startupProbe / readinessProbe / livenessProbe -> probe."""


# --- volumes --------------------------------------------------------------------------------------


def logs_volume(config: StackConfig) -> Volume:
    """Task logs: the shared claim when ``logging.volume`` is on, else the pod's own emptyDir."""
    if config.logging.volume.enabled and not config.logging.remote.enabled:
        return {"name": LOGS_VOLUME, "persistentVolumeClaim": {"claimName": names.LOGS_CLAIM}}
    return builders.empty_dir(LOGS_VOLUME, "2Gi")


def base_volumes(config: StackConfig) -> list[Volume]:
    return [
        {"name": CONFIG_VOLUME, "configMap": {"name": names.AIRFLOW_CONFIG_MAP}},
        {"name": SCRIPTS_VOLUME, "configMap": {"name": names.SCRIPTS_CONFIG_MAP, "defaultMode": 0o444}},
        builders.empty_dir("tmp", "1Gi"),
        logs_volume(config),
    ]


def base_mounts(config: StackConfig, logs_read_only: bool = False) -> list[VolumeMount]:
    return [
        builders.mount(CONFIG_VOLUME, env.CONFIG_DIR, read_only=True),
        builders.mount(SCRIPTS_VOLUME, env.SCRIPTS_DIR, read_only=True),
        builders.mount("tmp", "/tmp"),
        builders.mount(LOGS_VOLUME, env.LOGS_DIR, read_only=logs_read_only),
    ]


# --- containers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AirflowContainer:
    """One Airflow process. ``args`` go to the image's entrypoint (dumb-init, then `airflow ...`);
    None leaves them to whoever runs the pod (the KubernetesExecutor fills them in)."""

    name: str
    args: list[str] | None
    resources: ResourcesConfig
    credentials: tuple[env.SecretFile, ...]
    """Exactly the Secret keys this process reads; nothing else of any Secret is mounted."""
    extra_env: list[EnvVar] = field(default_factory=lambda: [])
    extra_mounts: list[VolumeMount] = field(default_factory=lambda: [])
    ports: list[ContainerPort] = field(default_factory=lambda: [])
    probes: Probes = field(default_factory=lambda: {})
    lifecycle: Lifecycle | None = None
    dags: bool = True
    logs_read_only: bool = False
    sidecar: bool = False
    """A native sidecar (an init container that keeps running beside the main containers)."""
    clones_dags: bool = False
    """Parses or runs DAG code: with the Git DAG bundle, it clones the repository (the clone directory and
    the Git connection)."""


def container(config: StackConfig, spec: AirflowContainer) -> Container:
    built: Container = {
        "name": spec.name,
        "image": config.image.reference,
        "imagePullPolicy": config.image.pull_policy,
        "env": [
            *env.core_env(config),
            *(file.env() for file in spec.credentials),
            *(dag_sources.bundle_credentials(config) if spec.clones_dags else []),
            *spec.extra_env,
        ],
        "resources": builders.resources(spec.resources.requests, spec.resources.limits),
        "securityContext": builders.container_security_context(),
        "volumeMounts": [
            *base_mounts(config, spec.logs_read_only),
            # one mount per file, even when two settings read the same one (Celery's broker and results)
            *{file.path: file.mount() for file in spec.credentials}.values(),
            *(dag_sources.mounts(config) if spec.dags else []),
            *(dag_sources.bundle_mounts(config) if spec.clones_dags else []),
            *spec.extra_mounts,
        ],
    }
    if spec.args is not None:
        built["args"] = spec.args
    if spec.sidecar:
        built["restartPolicy"] = "Always"
    sources = env.env_from(config)
    if sources:
        built["envFrom"] = sources
    if spec.ports:
        built["ports"] = spec.ports
    for probe_field, probe in spec.probes.items():
        if probe_field == "startupProbe":
            built["startupProbe"] = probe
        elif probe_field == "readinessProbe":
            built["readinessProbe"] = probe
        elif probe_field == "livenessProbe":
            built["livenessProbe"] = probe
        else:
            raise ValueError(f"not a probe field: {probe_field}")
    if spec.lifecycle is not None:
        built["lifecycle"] = spec.lifecycle
    return built


def log_cleanup(config: StackConfig) -> AirflowContainer:
    """Native sidecar: delete local task logs older than ``logging.retentionDays`` (no credentials)."""
    return AirflowContainer(
        name="log-cleanup",
        args=["bash", env.LOG_CLEANUP],
        resources=LOG_CLEANUP_RESOURCES,
        credentials=(),
        extra_env=[builders.env(E.LOG_RETENTION_DAYS, str(config.logging.retention_days))],
        dags=False,
        sidecar=True,
    )


def wait_for_migrations(config: StackConfig, resources: ResourcesConfig) -> AirflowContainer:
    """Init container: hold the pod until the database is reachable and migrated (bounded)."""
    return AirflowContainer(
        name="wait-for-migrations",
        args=["python", env.WAIT_FOR_MIGRATIONS],
        resources=resources,
        credentials=env.migration_wait_credentials(config),
        extra_env=[builders.env(E.MIGRATION_WAIT_TIMEOUT, str(config.migration_wait_timeout_seconds))],
        dags=False,
    )


# --- probes -----------------------------------------------------------------------------------------


def exec_probe(command: list[str], period: int, timeout: int, failures: int) -> Probe:
    return {
        "exec": {"command": command},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def http_probe(path: str, port: str, period: int, timeout: int, failures: int) -> Probe:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def tcp_probe(port: str, period: int, timeout: int, failures: int) -> Probe:
    return {
        "tcpSocket": {"port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def jobs_check_probes(job_type: str) -> Probes:
    """Liveness as `airflow jobs check --job-type TYPE --local` decides it, in one query (job-alive.py):
    the CLI needed 4-5 s of CPU per probe, and up to 63 s on a loaded machine."""
    command = ["python", env.JOB_ALIVE, job_type]
    return {
        "startupProbe": exec_probe(command, period=5, timeout=10, failures=60),
        "livenessProbe": exec_probe(command, period=30, timeout=10, failures=5),
    }


# --- the pod ------------------------------------------------------------------------------------------


def pod_spec(
    config: StackConfig,
    identity: Identity,
    containers: Sequence[AirflowContainer],
    init_containers: Sequence[AirflowContainer] = (),
    extra_volumes: Sequence[Volume] = (),
    termination_grace_period_seconds: int = 60,
    dag_paths: Mapping[str, str] | None = None,
    dag_sidecar: bool = True,
    dags: bool = True,
    writes_logs: bool = False,
) -> PodSpec:
    """A hardened Airflow pod: uid 50000/gid 0, running as ``identity``'s service account with its token
    mounted only where that identity calls the API, and each container mounting exactly the Secret keys
    it reads.

    ``dag_paths`` maps the DAG ConfigMap's keys to file paths (ConfigMap delivery). ``dag_sidecar``
    False leaves out the container that keeps the DAGs current (pods that run to completion); ``dags``
    False leaves the DAGs out altogether (pods that never read them; their containers say ``dags=False``).
    ``writes_logs``: a long-lived pod that keeps task logs locally gets the log-cleanup sidecar.
    Airflow sidecars (``AirflowContainer.sidecar``) among ``init_containers`` start after the others.
    """
    if writes_logs:
        init_containers = [*init_containers, log_cleanup(config)]
    steps = [spec for spec in init_containers if not spec.sidecar]
    sidecars = [spec for spec in init_containers if spec.sidecar]
    # One DAG checkout first; the sidecars that keep running start after the other init steps.
    init = [
        *(dag_sources.init_containers(config) if dags else []),
        *(container(config, spec) for spec in steps),
        *(dag_sources.sidecars(config) if dags and dag_sidecar else []),
        *(container(config, spec) for spec in sidecars),
    ]
    credentials = [file for spec in (*containers, *init_containers) for file in spec.credentials]
    spec: PodSpec = {
        "serviceAccountName": identity.name,
        "automountServiceAccountToken": identity.calls_kubernetes_api,
        "securityContext": builders.pod_security_context(AIRFLOW_UID, AIRFLOW_GID, AIRFLOW_GID),
        "terminationGracePeriodSeconds": termination_grace_period_seconds,
        "containers": [container(config, spec) for spec in containers],
        "volumes": [
            *base_volumes(config),
            *env.secret_volumes(credentials),
            *(dag_sources.volumes(config, dag_paths) if dags else []),
            *(
                dag_sources.bundle_volumes(config)
                if any(c.clones_dags for c in (*containers, *init_containers))
                else []
            ),
            *extra_volumes,
        ],
    }
    if init:
        spec["initContainers"] = init
    return spec
