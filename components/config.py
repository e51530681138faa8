"""The stack configuration: one typed model, validated as a whole before anything is registered.

Every field is a Pulumi config key under the ``airflow-k8s:`` namespace (camelCase of the field name).
The defaults suit a laptop cluster (kind, minikube, Docker Desktop); ``Pulumi.prod.yaml`` overrides
them for production. The README's configuration reference is generated from this module.
"""

from __future__ import annotations

import ipaddress
import json
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from components import names
from components.config_schema import (
    SecretStr,
    is_valid,
    parse_stack_config,
    setting,
    show,
)
from components.quantities import QUANTITY_HELP, mebibytes, parse_quantity

PROJECT = "airflow-k8s"

EXECUTORS = (
    "LocalExecutor",
    "KubernetesExecutor",
    "CeleryExecutor",
    "CeleryExecutor,KubernetesExecutor",
)

Issue = tuple[str, str, str]
"""(sub-key, shown value, what is allowed) — yielded by cross-field ``validate`` methods."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_]+$")
_QUEUE = re.compile(r"^[A-Za-z0-9_.-]+$")
_IMAGE = re.compile(
    r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$"
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|_CONN\b|FERNET|_KEY$")
_RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
_LOCAL_MEMORY_HEADROOM_MIB = 1024
_LOCAL_MEMORY_PER_TASK_MIB = 256


# --- value checks: None when allowed, else what is allowed ---------------------------------------


def dns_label(value: str) -> str | None:
    if len(value) <= 63 and _DNS_LABEL.match(value):
        return None
    return (
        "must be a DNS-1123 label: lowercase letters, digits and '-', "
        "starting and ending alphanumeric, at most 63 characters"
    )


def short_dns_label(value: str) -> str | None:
    if len(value) <= 30 and _DNS_LABEL.match(value):
        return None
    return "must be a DNS-1123 label of at most 30 characters (it becomes part of object names)"


def non_negative(value: int) -> str | None:
    return None if value >= 0 else "must be a non-negative integer"


def positive(value: int) -> str | None:
    return None if value >= 1 else "must be an integer of at least 1"


def quantity(value: str) -> str | None:
    return None if parse_quantity(value) is not None else f"must be {QUANTITY_HELP}"


def image_reference(value: str) -> str | None:
    if not _IMAGE.match(value):
        return 'must be an image reference with a pinned tag or digest, e.g. "postgres:17.7"'
    if value.endswith(":latest"):
        return "must pin a version: the tag 'latest' is not reproducible"
    return None


def image_repository(value: str) -> str | None:
    return None if _REPOSITORY.match(value) else 'must be an image repository such as "apache/airflow"'


def image_digest(value: str) -> str | None:
    return None if _DIGEST.match(value) else 'must be an image digest: "sha256:" and 64 hex digits'


def image_tag(value: str) -> str | None:
    if not _TAG.match(value):
        return 'must be an image tag such as "3.3.2"'
    if value == "latest":
        return "must pin a version: the tag 'latest' is not reproducible"
    return None


def http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname and not parts.query and not parts.fragment:
        return None
    return 'must be an http(s) URL without query or fragment, e.g. "https://airflow.example.com"'


def duration(value: str) -> str | None:
    return None if _DURATION.match(value) else 'must be a duration such as "30s", "1m" or "1h30m"'


def env_names(value: dict[str, str]) -> str | None:
    bad = [name for name in value if not _ENV_NAME.match(name)]
    if bad:
        return f"names {', '.join(sorted(bad))} are not valid environment variable names"
    reserved = sorted(name for name in value if name in names.STACK_MANAGED_ENV)
    if reserved:
        return f"{', '.join(reserved)} are set by the stack; use the dedicated setting instead"
    secretish = sorted(name for name in value if _SECRETISH.search(name.upper()))
    if secretish:
        return (
            f"{', '.join(secretish)} look like secrets, which must not be plain config: put them in a "
            "Kubernetes Secret and list it in extraEnvFromSecrets, or use the secret `connections` setting"
        )
    return None


def secret_names(value: list[str]) -> str | None:
    bad = [name for name in value if dns_label(name) is not None and not _is_dns_subdomain(name)]
    return f"{', '.join(bad)} are not valid Secret names" if bad else None


def connection_ids(value: dict[str, SecretStr]) -> str | None:
    bad = sorted(conn_id for conn_id in value if not _CONN_ID.match(conn_id))
    if bad:
        return f"connection ids {', '.join(bad)} must use only letters, digits and '_' (they become AIRFLOW_CONN_<ID>)"
    return None


def external_database_url(value: SecretStr) -> str | None:
    parts = urlsplit(value.reveal())
    if parts.scheme not in ("postgresql", "postgresql+psycopg2"):
        return "must be a PostgreSQL URL: postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB (value not shown)"
    if not parts.hostname or not parts.path.strip("/"):
        return "must name a host and a database: postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB (value not shown)"
    return None


def cidrs(value: list[str]) -> str | None:
    bad: list[str] = []
    for text in value:
        try:
            ipaddress.ip_network(text)
        except ValueError:
            bad.append(text)
    return f"{', '.join(bad)} are not CIDR blocks such as 10.0.0.0/8" if bad else None


def ports(value: list[int]) -> str | None:
    bad = [str(port) for port in value if not 1 <= port <= 65535]
    return f"ports {', '.join(bad)} are outside 1-65535" if bad else None


def network_peers(value: list[Any]) -> str | None:
    allowed = {"ipBlock", "namespaceSelector", "podSelector"}
    for peer in value:
        if not isinstance(peer, dict) or not peer or not set(typing.cast("dict[str, Any]", peer)) <= allowed:
            return "must be a list of NetworkPolicy peers, each with ipBlock, namespaceSelector and/or podSelector"
        block: Any = typing.cast("dict[str, Any]", peer).get("ipBlock")
        if block is not None and (
            not isinstance(block, dict) or cidrs([str(typing.cast("dict[str, Any]", block).get("cidr", ""))])
        ):
            return 'ipBlock must have a CIDR, e.g. {"ipBlock": {"cidr": "10.0.0.0/8"}}'
    return None


def _is_dns_subdomain(value: str) -> bool:
    return len(value) <= 253 and all(_DNS_LABEL.match(part) for part in value.split("."))


# --- the model ----------------------------------------------------------------------------------


def _resources(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str) -> ResourcesConfig:
    return ResourcesConfig(
        requests={"cpu": cpu_request, "memory": memory_request},
        limits={"cpu": cpu_limit, "memory": memory_limit},
    )


@dataclass(frozen=True, kw_only=True)
class ResourcesConfig:
    requests: dict[str, str] = setting("Requested cpu and memory (Kubernetes quantities).")
    limits: dict[str, str] = setting("cpu and memory limits; each at least its request.")

    def validate(self) -> Iterator[Issue]:
        for part in ("requests", "limits"):
            given: dict[str, str] = getattr(self, part)
            if not is_valid(given):
                continue
            for name, text in sorted(given.items()):
                if name not in _RESOURCE_NAMES:
                    yield f"{part}.{name}", show(text), f"resource must be one of {', '.join(_RESOURCE_NAMES)}"
                elif parse_quantity(text) is None:
                    yield f"{part}.{name}", show(text), f"must be {QUANTITY_HELP}"
                elif name == "memory" and text.endswith("m"):
                    yield f"{part}.{name}", show(text), "memory in millibytes is almost certainly a typo; use Mi or Gi"
            for name in ("cpu", "memory"):
                if name not in given:
                    yield (
                        f"{part}.{name}",
                        "(not set)",
                        "required: every container gets cpu and memory requests and limits",
                    )
        if not is_valid(self.requests, self.limits):
            return
        for name, limit_text in sorted(self.limits.items()):
            request_text = self.requests.get(name)
            if request_text is None:
                continue
            request, limit = parse_quantity(request_text), parse_quantity(limit_text)
            if request is not None and limit is not None and limit < request:
                yield f"limits.{name}", show(limit_text), f"must be at least the request ({request_text})"


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    repository: str = setting("Airflow image repository.", default="apache/airflow", check=image_repository)
    tag: str = setting(
        "Airflow image tag: an Airflow 3.3.x tag, or your own image's tag (DAGs baked in).",
        default="3.3.2",
        check=image_tag,
    )
    digest: str | None = setting(
        "Optional digest (sha256:...) pinning the exact image behind the tag.", default=None, check=image_digest
    )
    pull_policy: str = setting(
        "imagePullPolicy of every Airflow container.",
        default="IfNotPresent",
        choices=("Always", "IfNotPresent", "Never"),
    )

    @property
    def reference(self) -> str:
        pinned = f"{self.repository}:{self.tag}"
        return f"{pinned}@{self.digest}" if self.digest else pinned


@dataclass(frozen=True, kw_only=True)
class ApiServerConfig:
    replicas: int = setting("api-server pods.", default=1, check=non_negative)
    workers: int = setting("uvicorn worker processes per api-server pod.", default=2, check=positive)
    base_url: str | None = setting(
        "Public URL users reach Airflow on ([api] base_url), e.g. https://airflow.example.com. "
        "Unset: no base_url, so login redirects are relative and the UI works through "
        "`kubectl port-forward` on any local port (open http://localhost:8080).",
        default=None,
        check=http_url,
    )
    resources: ResourcesConfig = setting(
        "api-server container resources.", default_factory=lambda: _resources("250m", "1Gi", "1", "2Gi")
    )


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    replicas: int = setting("Scheduler pods (2 or more for HA).", default=1, check=non_negative)
    resources: ResourcesConfig = setting(
        "Scheduler container resources (with LocalExecutor, tasks run here too).",
        default_factory=lambda: _resources("500m", "1Gi", "1", "2Gi"),
    )


@dataclass(frozen=True, kw_only=True)
class DagProcessorConfig:
    replicas: int = setting("dag-processor pods.", default=1, check=non_negative)
    resources: ResourcesConfig = setting(
        "dag-processor container resources.", default_factory=lambda: _resources("250m", "768Mi", "1", "1536Mi")
    )


@dataclass(frozen=True, kw_only=True)
class AutoscalingConfig:
    min_replicas: int = setting("KEDA minReplicaCount (0 scales to zero when idle).", default=0, check=non_negative)
    max_replicas: int = setting("KEDA maxReplicaCount.", default=3, check=positive)
    polling_interval: int = setting("KEDA pollingInterval in seconds.", default=15, check=positive)
    cooldown_period: int = setting(
        "KEDA cooldownPeriod in seconds (wait before scaling to zero).", default=300, check=non_negative
    )

    def validate(self) -> Iterator[Issue]:
        if is_valid(self.min_replicas, self.max_replicas) and self.min_replicas > self.max_replicas:
            yield "minReplicas", show(self.min_replicas), f"must be at most maxReplicas ({self.max_replicas})"


@dataclass(frozen=True, kw_only=True)
class TriggererAutoscalingConfig(AutoscalingConfig):
    enabled: bool = setting("Scale triggerers with KEDA on the number of triggers.", default=False)
    min_replicas: int = setting("KEDA minReplicaCount.", default=1, check=non_negative)
    polling_interval: int = setting("KEDA pollingInterval in seconds.", default=30, check=positive)


@dataclass(frozen=True, kw_only=True)
class TriggererConfig:
    replicas: int = setting("Triggerer pods (when not autoscaled).", default=1, check=non_negative)
    capacity: int = setting("Triggers one triggerer runs at once ([triggerer] capacity).", default=1000, check=positive)
    resources: ResourcesConfig = setting(
        "Triggerer container resources.", default_factory=lambda: _resources("250m", "512Mi", "1", "1Gi")
    )
    autoscaling: TriggererAutoscalingConfig = setting(
        "Optional KEDA ScaledObject for the triggerer.", default_factory=TriggererAutoscalingConfig
    )


@dataclass(frozen=True, kw_only=True)
class WorkerSetConfig:
    name: str = setting("Worker set name; the workload is airflow-worker-NAME.", check=short_dns_label)
    queues: list[str] = setting("Celery queues this set consumes.", default_factory=lambda: ["default"])
    concurrency: int = setting(
        "Task slots per worker pod (Celery worker_concurrency; also the KEDA divisor).", default=8, check=positive
    )
    replicas: int = setting("Worker pods when KEDA is off.", default=1, check=non_negative)
    termination_grace_period_seconds: int = setting(
        "How long a stopping worker may drain its running tasks.", default=600, check=non_negative
    )
    resources: ResourcesConfig = setting(
        "Worker container resources.", default_factory=lambda: _resources("500m", "1Gi", "2", "3Gi")
    )
    autoscaling: AutoscalingConfig = setting("KEDA settings for this set.", default_factory=AutoscalingConfig)

    def validate(self) -> Iterator[Issue]:
        if not is_valid(self.queues):
            return
        if not self.queues:
            yield "queues", "[]", "must list at least one queue"
        for i, queue in enumerate(self.queues):
            if not _QUEUE.match(queue):
                yield f"queues[{i}]", show(queue), "queue names use only letters, digits, '_', '.' and '-'"


@dataclass(frozen=True, kw_only=True)
class KedaConfig:
    enabled: bool = setting("Autoscale Celery workers with KEDA (KEDA must be installed).", default=False)
    operator_namespace: str = setting(
        "Namespace of the KEDA operator (allowed to reach Postgres).", default="keda", check=dns_label
    )


@dataclass(frozen=True, kw_only=True)
class KubernetesExecutorConfig:
    delete_worker_pods: bool = setting("Delete task pods when they finish.", default=True)
    delete_worker_pods_on_failure: bool = setting(
        "Also delete task pods that failed (keep them to debug).", default=False
    )
    max_task_pods: int = setting(
        "Task pods the KubernetesExecutor runs at once (part of [core] parallelism).", default=16, check=positive
    )
    worker_resources: ResourcesConfig = setting(
        "Resources of each KubernetesExecutor task pod.",
        default_factory=lambda: _resources("250m", "512Mi", "1", "1Gi"),
    )


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    mode: str = setting(
        "Where the metadata database lives. `external` needs the secret externalDatabaseUrl.",
        default="in-cluster",
        choices=("in-cluster", "external"),
    )
    storage_size: str | None = setting(
        "Size of the Postgres volume (required in-cluster).", default=None, check=quantity
    )
    storage_class: str | None = setting("StorageClass of the Postgres volume (cluster default if unset).", default=None)
    image: str = setting("Postgres image, pinned.", default="postgres:17.7", check=image_reference)
    database_name: str = setting("Database name.", default="airflow", check=dns_label)
    user: str = setting("Database user.", default="airflow", check=dns_label)
    resources: ResourcesConfig = setting(
        "Postgres container resources.", default_factory=lambda: _resources("250m", "256Mi", "1", "1Gi")
    )

    def validate(self) -> Iterator[Issue]:
        if self.mode == "in-cluster" and self.storage_size is None:
            yield "storageSize", "(not set)", 'required for the in-cluster database, e.g. "10Gi"'


@dataclass(frozen=True, kw_only=True)
class PersistenceConfig:
    enabled: bool = setting("Keep Redis data on a volume (else an emptyDir).", default=False)
    size: str = setting("Volume size.", default="1Gi", check=quantity)
    storage_class: str | None = setting("StorageClass (cluster default if unset).", default=None)


@dataclass(frozen=True, kw_only=True)
class RedisConfig:
    image: str = setting(
        "Redis image, pinned (used with the CeleryExecutor).", default="redis:7.4.2", check=image_reference
    )
    resources: ResourcesConfig = setting(
        "Redis container resources.", default_factory=lambda: _resources("100m", "128Mi", "500m", "256Mi")
    )
    persistence: PersistenceConfig = setting("Redis persistence.", default_factory=PersistenceConfig)


@dataclass(frozen=True, kw_only=True)
class GitSyncConfig:
    repo: str | None = setting("Repository URL (https or ssh).", default=None)
    ref: str = setting("Branch, tag or commit to check out.", default="main")
    period: str = setting("How often to pull.", default="60s", check=duration)
    sub_path: str = setting("Folder of the repository that holds the DAGs.", default="")
    credentials_secret: str | None = setting(
        "Existing Secret with GITSYNC_USERNAME and GITSYNC_PASSWORD (https) or ssh-key (ssh).", default=None
    )
    image: str = setting(
        "git-sync image, pinned.", default="registry.k8s.io/git-sync/git-sync:v4.7.0", check=image_reference
    )
    resources: ResourcesConfig = setting(
        "git-sync container resources.", default_factory=lambda: _resources("50m", "64Mi", "200m", "256Mi")
    )


@dataclass(frozen=True, kw_only=True)
class DagsConfig:
    delivery: str = setting(
        "How DAGs reach the pods: a ConfigMap of ./dags, a git-sync sidecar, or baked into the image.",
        default="configmap",
        choices=("configmap", "git-sync", "image"),
    )
    git_sync: GitSyncConfig = setting("git-sync settings (delivery git-sync).", default_factory=GitSyncConfig)
    example_resources: bool = setting("Create the Secret and ConfigMap the example DAGs read.", default=True)

    def validate(self) -> Iterator[Issue]:
        if self.delivery == "git-sync" and is_valid(self.git_sync) and not self.git_sync.repo:
            yield "gitSync.repo", "(not set)", "required when delivery is git-sync"


@dataclass(frozen=True, kw_only=True)
class TaskPodsConfig:
    xcom_sidecar_image: str = setting(
        "Image of the KubernetesPodOperator's XCom sidecar (pinned; it runs hardened with tiny resources).",
        default="alpine:3.24.2",
        check=image_reference,
    )


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    admin_username: str = setting("Login of the generated admin user.", default="admin", check=dns_label)
    admin_email: str = setting("Email of the admin user.", default="admin@example.com")


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    enabled: bool = setting("Create NetworkPolicies (default deny, then only the needed paths).", default=True)
    api_server_ingress_from: list[Any] = setting(
        "Who may reach the api-server (NetworkPolicy peers). "
        "Default: pods in any namespace (e.g. an ingress controller).",
        default_factory=lambda: [{"namespaceSelector": {}}],
        check=network_peers,
    )
    task_egress_to: list[Any] = setting(
        "Where task pods, workers and triggerers may connect besides the stack's own services. "
        "Default: the internet, not private ranges.",
        default_factory=lambda: [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}
        ],
        check=network_peers,
    )
    kube_api_server_cidrs: list[str] = setting(
        "Where the Kubernetes API server's endpoints are, for pods that launch pods "
        "(`kubectl get endpoints kubernetes -n default`). Default: the private ranges.",
        default_factory=lambda: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        check=cidrs,
    )
    kube_api_server_ports: list[int] = setting(
        "Kubernetes API server ports.", default_factory=lambda: [443, 6443], check=ports
    )
    git_egress_ports: list[int] = setting(
        "Ports git-sync may reach (https and ssh).", default_factory=lambda: [443, 22], check=ports
    )
    git_egress_to: list[Any] = setting(
        "Where git-sync may connect (your Git server's addresses). The whole pod gets this path: "
        "NetworkPolicies cannot tell a sidecar from its pod.",
        default_factory=lambda: [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        check=network_peers,
    )


@dataclass(frozen=True, kw_only=True)
class RotationConfig:
    api_secret_key: int = setting(
        "Raise to generate a new API secret key (signs sessions out).", default=0, check=non_negative
    )
    jwt_secret: int = setting(
        "Raise to generate a new JWT secret (running tasks get new tokens).", default=0, check=non_negative
    )
    admin_password: int = setting("Raise to generate a new admin password.", default=0, check=non_negative)
    redis_password: int = setting(
        "Raise to generate a new broker password (Redis and the Celery pods restart).", default=0, check=non_negative
    )
    example_password: int = setting(
        "Raise to generate a new password in the example Secret.", default=0, check=non_negative
    )


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    namespace: str = setting("Namespace that holds the whole stack.", default="airflow", check=dns_label)
    kube_context: str | None = setting("kubeconfig context to deploy to; unset uses the current context.", default=None)
    pod_security_level: str = setting(
        "Pod Security Standard enforced on the namespace.",
        default="restricted",
        choices=("restricted", "baseline", "privileged"),
    )
    image: ImageConfig = setting("The Airflow image.", default_factory=ImageConfig)
    executor: str = setting("Airflow executor.", default="LocalExecutor", choices=EXECUTORS)
    api_server: ApiServerConfig = setting("api-server.", default_factory=ApiServerConfig)
    scheduler: SchedulerConfig = setting("Scheduler.", default_factory=SchedulerConfig)
    dag_processor: DagProcessorConfig = setting("dag-processor.", default_factory=DagProcessorConfig)
    triggerer: TriggererConfig = setting("Triggerer.", default_factory=TriggererConfig)
    workers: list[WorkerSetConfig] = setting(
        "Celery worker sets, one workload (and ScaledObject) per set.",
        default_factory=lambda: [WorkerSetConfig(name="default")],
    )
    keda: KedaConfig = setting("KEDA autoscaling of Celery workers.", default_factory=KedaConfig)
    kubernetes_executor: KubernetesExecutorConfig = setting(
        "KubernetesExecutor task pods.", default_factory=KubernetesExecutorConfig
    )
    database: DatabaseConfig = setting("Metadata database.", default_factory=DatabaseConfig)
    external_database_url: SecretStr | None = setting(
        "SQLAlchemy URL of an external PostgreSQL (database mode external).",
        default=None,
        check=external_database_url,
        secret=True,
    )
    redis: RedisConfig = setting("Celery broker.", default_factory=RedisConfig)
    dags: DagsConfig = setting("DAG delivery.", default_factory=DagsConfig)
    task_pods: TaskPodsConfig = setting("Pods launched by DAG tasks.", default_factory=TaskPodsConfig)
    auth: AuthConfig = setting("The generated admin login (FAB auth manager).", default_factory=AuthConfig)
    network: NetworkConfig = setting("NetworkPolicies.", default_factory=NetworkConfig)
    rotation: RotationConfig = setting(
        "Secret rotation counters: raising one replaces that generated value; pods using it roll. "
        "The database password and the Fernet key are not rotated this way (see README).",
        default_factory=RotationConfig,
    )
    protect_data: bool = setting(
        "Protect the database, its keys and the namespace from `pulumi up`/`destroy` accidents (prod).",
        default=False,
    )
    migration_wait_timeout_seconds: int = setting(
        "How long pods wait for the database schema to be migrated before failing.", default=600, check=positive
    )
    parallelism: int | None = setting(
        "[core] parallelism; unset derives it from the executor's capacity.", default=None, check=positive
    )
    extra_env: dict[str, str] = setting(
        "Extra plain environment variables for every Airflow container (no secrets).",
        default_factory=dict,
        check=env_names,
    )
    extra_env_from_secrets: list[str] = setting(
        "Existing Secrets whose keys become environment variables in every Airflow container.",
        default_factory=list,
        check=secret_names,
    )
    connections: dict[str, SecretStr] = setting(
        "Airflow connections, id -> URI or JSON, injected as AIRFLOW_CONN_<ID>.",
        default_factory=dict,
        check=connection_ids,
        secret=True,
    )

    def validate(self) -> Iterator[Issue]:
        yield from self.validate_autoscaling()
        if is_valid(self.database) and self.database.mode == "external" and self.external_database_url is None:
            yield (
                "externalDatabaseUrl",
                "(not set)",
                (
                    "required when database.mode is external: "
                    "pulumi config set --secret externalDatabaseUrl postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB"
                ),
            )
        if not is_valid(self.workers):
            return
        seen_names: set[str] = set()
        queue_owner: dict[str, str] = {}
        for i, worker_set in enumerate(self.workers):
            if worker_set.name in seen_names:
                yield f"workers[{i}].name", show(worker_set.name), "worker set names must be unique"
            seen_names.add(worker_set.name)
            for queue in worker_set.queues:
                owner = queue_owner.setdefault(queue, worker_set.name)
                if owner != worker_set.name:
                    yield (
                        f"workers[{i}].queues",
                        show(queue),
                        (
                            f"queue already consumed by worker set {owner!r}; each queue belongs to one set "
                            "(otherwise KEDA counts its tasks twice)"
                        ),
                    )
        if is_valid(self.executor) and "CeleryExecutor" in self.executor and not self.workers:
            yield "workers", "[]", "the CeleryExecutor needs at least one worker set"

    def validate_autoscaling(self) -> Iterator[Issue]:
        if not is_valid(self.keda, self.triggerer, self.executor):
            return
        triggerer_scaled = self.triggerer.autoscaling.enabled
        if triggerer_scaled and not self.keda.enabled:
            yield (
                "triggerer.autoscaling.enabled",
                "true",
                "needs keda.enabled: true (and KEDA installed in the cluster)",
            )
        if self.keda.enabled and not self.uses_celery and not triggerer_scaled:
            yield (
                "keda.enabled",
                "true",
                (
                    "nothing to autoscale: KEDA scales Celery worker sets (executor with CeleryExecutor) "
                    "and, with triggerer.autoscaling.enabled, the triggerer"
                ),
            )

    # --- derived facts, one place for each ---

    @property
    def executors(self) -> tuple[str, ...]:
        return tuple(self.executor.split(","))

    @property
    def uses_celery(self) -> bool:
        return "CeleryExecutor" in self.executors

    @property
    def uses_kubernetes_executor(self) -> bool:
        return "KubernetesExecutor" in self.executors

    @property
    def in_cluster_database(self) -> bool:
        return self.database.mode == "in-cluster"

    @property
    def effective_parallelism(self) -> int:
        """[core] parallelism per scheduler, sized to what the executors can actually run."""
        if self.parallelism is not None:
            return self.parallelism
        capacity = 0
        if self.executor == "LocalExecutor":
            memory = mebibytes(self.scheduler.resources.limits["memory"])
            capacity = (memory - _LOCAL_MEMORY_HEADROOM_MIB) // _LOCAL_MEMORY_PER_TASK_MIB
        if self.uses_celery:
            for worker_set in self.workers:
                pods = worker_set.autoscaling.max_replicas if self.keda.enabled else worker_set.replicas
                capacity += pods * worker_set.concurrency
        if self.uses_kubernetes_executor:
            capacity += self.kubernetes_executor.max_task_pods
        schedulers = max(1, self.scheduler.replicas)
        return max(1, -(-capacity // schedulers))


def load_stack_config(raw_config: Mapping[str, str], secret_keys: set[str]) -> StackConfig:
    """Validate Pulumi's flat config map into a StackConfig, or raise ConfigError naming every problem."""
    return parse_stack_config(StackConfig, PROJECT, raw_config, secret_keys)


def load_from_pulumi() -> StackConfig:
    """Read the running program's whole config (all keys, so typos are caught) and validate it."""
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys.update(runtime_config._SECRET_KEYS.get())  # pyright: ignore[reportPrivateUsage]
    return load_stack_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}, secret_keys)
