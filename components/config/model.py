"""The stack configuration: one typed model, validated as a whole before anything is registered.

Every field is a Pulumi config key under the ``airflow-k8s:`` namespace (the camelCase of the field
name). The defaults suit a laptop cluster (kind, minikube, Docker Desktop): a stack file may set
nothing at all. ``Pulumi.prod.yaml`` overrides them for production. The configuration reference
(docs/configuration.md) and the JSON Schema for stack files are generated from this module.

The derived facts the program needs (which executors run, what is autoscaled, how DAGs arrive) are
properties of :class:`StackConfig`, each defined once here.
"""

import ipaddress
import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, SecretStr

from components.config import checks, names
from components.config.base import Rule, Section, show, valid
from components.config.scheduling import ComponentPlacementConfig, PlacementConfig, component_placement
from components.kube.quantities import QUANTITY_HELP, mebibytes, parse_quantity

Executor = Literal[
    "LocalExecutor",
    "KubernetesExecutor",
    "CeleryExecutor",
    "CeleryExecutor,KubernetesExecutor",
]
DagDelivery = Literal["configmap", "git-sync", "git-bundle", "image"]
PodSecurityLevel = Literal["restricted", "baseline", "privileged"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
DatabaseMode = Literal["in-cluster", "external"]
FabRole = Literal["Admin", "Op", "User", "Viewer", "Public"]
FAB_ROLES: tuple[str, ...] = ("Admin", "Op", "User", "Viewer", "Public")
"""The FAB auth manager's built-in roles."""

_QUEUE = re.compile(r"^[A-Za-z0-9_.-]+$")
OFFICIAL_REPOSITORIES = ("apache/airflow", "docker.io/apache/airflow", "index.docker.io/apache/airflow")
_OFFICIAL_TAG = re.compile(
    r"^(?:slim-)?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?(?:(?:rc|b|a)\d+)?(?:-python3\.\d+)?$"
)
_RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
_LOCAL_MEMORY_HEADROOM_MIB = 1024
_LOCAL_MEMORY_PER_TASK_MIB = 256
_PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


class ResourcesConfig(Section):
    requests: dict[str, str] = Field(description="Requested cpu and memory (Kubernetes quantities).")
    limits: dict[str, str] = Field(description="cpu and memory limits; each at least its request.")

    def rules(self) -> Iterator[Rule]:
        for part in ("requests", "limits"):
            given: dict[str, str] = getattr(self, part)
            if not valid(given):
                continue
            for name, text in sorted(given.items()):
                if name not in _RESOURCE_NAMES:
                    yield Rule((part, name), show(text), f"resource must be one of {', '.join(_RESOURCE_NAMES)}")
                elif parse_quantity(text) is None:
                    yield Rule((part, name), show(text), f"must be {QUANTITY_HELP}")
                elif name == "memory" and text.endswith("m"):
                    yield Rule(
                        (part, name), show(text), "memory in millibytes is almost certainly a typo; use Mi or Gi"
                    )
            for name in ("cpu", "memory"):
                if name not in given:
                    yield Rule(
                        (part, name), "(not set)", "required: every container gets cpu and memory requests and limits"
                    )
        if not valid(self.requests, self.limits):
            return
        for name, limit_text in sorted(self.limits.items()):
            request_text = self.requests.get(name)
            if request_text is None:
                continue
            request, limit = parse_quantity(request_text), parse_quantity(limit_text)
            if request is not None and limit is not None and limit < request:
                yield Rule(("limits", name), show(limit_text), f"must be at least the request ({request_text})")


def resources(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str) -> ResourcesConfig:
    return ResourcesConfig(
        requests={"cpu": cpu_request, "memory": memory_request},
        limits={"cpu": cpu_limit, "memory": memory_limit},
    )


class ImageConfig(Section):
    repository: checks.ImageRepository = Field(default="apache/airflow", description="Airflow image repository.")
    tag: checks.ImageTag = Field(
        default="3.3.2",
        description="Airflow image tag: an Airflow 3.3.x tag, or your own image's tag (DAGs baked in).",
    )
    digest: checks.ImageDigest | None = Field(
        default=None, description="Optional digest (sha256:...) pinning the exact image behind the tag."
    )
    pull_policy: PullPolicy = Field(default="IfNotPresent", description="imagePullPolicy of every Airflow container.")

    @property
    def reference(self) -> str:
        pinned = f"{self.repository}:{self.tag}"
        return f"{pinned}@{self.digest}" if self.digest else pinned

    @property
    def official(self) -> bool:
        return self.repository in OFFICIAL_REPOSITORIES

    @property
    def airflow_version(self) -> tuple[int, int, int] | None:
        """The Airflow release an official image's tag names (None for other repositories)."""
        if not self.official:
            return None
        match = _OFFICIAL_TAG.match(self.tag)
        return (int(match["major"]), int(match["minor"]), int(match["patch"] or 0)) if match else None

    def rules(self) -> Iterator[Rule]:
        if not valid(self.repository, self.tag) or not self.official:
            return
        version = self.airflow_version
        if version is None or version[0] != 3:
            yield Rule(
                ("tag",),
                show(self.tag),
                f'{self.repository} tags must name an Airflow 3 release, e.g. "3.3.2" or "3.3.2-python3.12": '
                "the stack runs Airflow 3 commands (`airflow api-server`, `dag-processor`) and its execution API. "
                "Your own image (another repository) may use any tag.",
            )


class IngressTlsConfig(Section):
    secret_name: checks.DnsLabel | None = Field(
        default=None,
        description=(
            "TLS Secret (kubernetes.io/tls) in the stack's namespace: an existing one, or, with a cert-manager "
            "issuer, the one cert-manager writes (default airflow-api-server-tls)."
        ),
    )
    cluster_issuer: checks.DnsLabel | None = Field(
        default=None,
        description="cert-manager ClusterIssuer that issues the certificate (cert-manager.io/cluster-issuer).",
    )
    issuer: checks.DnsLabel | None = Field(
        default=None, description="cert-manager Issuer in the stack's namespace (cert-manager.io/issuer)."
    )

    @property
    def from_cert_manager(self) -> bool:
        return bool(self.cluster_issuer or self.issuer)

    def rules(self) -> Iterator[Rule]:
        if not valid(self.secret_name, self.cluster_issuer, self.issuer):
            return
        if self.cluster_issuer and self.issuer:
            yield Rule(("issuer",), show(self.issuer), "set clusterIssuer or issuer, not both")
        if not (self.secret_name or self.cluster_issuer or self.issuer):
            yield Rule(
                ("secretName",),
                "(not set)",
                "TLS needs a certificate: secretName (an existing TLS Secret) or clusterIssuer/issuer (cert-manager)",
            )


class IngressConfig(Section):
    enabled: bool = Field(
        default=False, description="Expose the UI and REST API through an Ingress at apiServer.baseUrl."
    )
    class_name: checks.DnsLabel | None = Field(
        default=None, description="ingressClassName (the cluster's default class if unset)."
    )
    extra_hosts: list[checks.Hostname] = Field(
        default_factory=list, description="More host names to serve besides apiServer.baseUrl's host."
    )
    annotations: checks.Annotations = Field(
        default_factory=dict, description="Extra annotations for the controller (not cert-manager's: use tls)."
    )
    tls: IngressTlsConfig | None = Field(
        default=None, description="TLS for the Ingress: required when apiServer.baseUrl is https."
    )
    controller_namespace: checks.DnsLabel | None = Field(
        default=None,
        description="Namespace of the ingress controller's pods: the NetworkPolicy admits them to the api-server.",
    )

    def rules(self) -> Iterator[Rule]:
        if not valid(self.annotations, self.tls) or self.tls is None:
            return
        for key in sorted(self.annotations):
            if key.startswith("cert-manager.io/"):
                yield Rule(
                    ("annotations", key),
                    show(self.annotations[key]),
                    "set the issuer with tls.clusterIssuer or tls.issuer",
                )


class GatewayParentConfig(Section):
    name: checks.DnsLabel = Field(description="Name of the Gateway.")
    namespace: checks.DnsLabel | None = Field(
        default=None, description="Namespace of the Gateway (the stack's namespace if unset)."
    )
    section_name: checks.DnsLabel | None = Field(
        default=None, description="Listener of the Gateway to attach to (e.g. https); all listeners if unset."
    )


class HttpRouteConfig(Section):
    enabled: bool = Field(
        default=False, description="Expose the UI and REST API through a Gateway API HTTPRoute at apiServer.baseUrl."
    )
    parent_refs: list[GatewayParentConfig] = Field(
        default_factory=lambda: list[GatewayParentConfig](),
        description="Gateways (and listeners) the route attaches to; TLS is the listener's.",
    )
    extra_hostnames: list[checks.Hostname] = Field(
        default_factory=list, description="More host names to match besides apiServer.baseUrl's host."
    )
    gateway_namespace: checks.DnsLabel | None = Field(
        default=None,
        description=(
            "Namespace of the pods that carry the Gateway's traffic (e.g. envoy-gateway-system): "
            "the NetworkPolicy admits them to the api-server."
        ),
    )

    def rules(self) -> Iterator[Rule]:
        if valid(self.enabled, self.parent_refs) and self.enabled and not self.parent_refs:
            yield Rule(("parentRefs",), "[]", "name at least one Gateway: [{name: GATEWAY, namespace: NAMESPACE}]")


class ApiServerAutoscalingConfig(Section):
    enabled: bool = Field(
        default=False,
        description=(
            "Scale the api-server with a HorizontalPodAutoscaler (autoscaling/v2) on CPU (and memory) use; "
            "the Deployment then has no replicas of its own (leave apiServer.replicas unset)."
        ),
    )
    min_replicas: checks.Positive = Field(default=2, description="HorizontalPodAutoscaler minReplicas.")
    max_replicas: checks.Positive = Field(default=4, description="HorizontalPodAutoscaler maxReplicas.")
    cpu_utilization: checks.Positive = Field(
        default=70, description="Target average CPU use, in percent of the api-server's CPU request."
    )
    memory_utilization: checks.Positive | None = Field(
        default=None, description="Optional target average memory use, in percent of its memory request."
    )

    def rules(self) -> Iterator[Rule]:
        if valid(self.min_replicas, self.max_replicas) and self.min_replicas > self.max_replicas:
            yield Rule(("minReplicas",), show(self.min_replicas), f"must be at most maxReplicas ({self.max_replicas})")


class ApiServerConfig(Section):
    replicas: checks.NonNegative = Field(default=1, description="api-server pods (when not autoscaled).")
    workers: checks.Positive = Field(default=2, description="uvicorn worker processes per api-server pod.")
    base_url: checks.HttpUrl | None = Field(
        default=None,
        description=(
            "Public URL users reach Airflow on ([api] base_url), e.g. https://airflow.example.com. "
            "Unset: no base_url, so login redirects are relative and the UI works through "
            "`kubectl port-forward` on any local port (open http://localhost:8080)."
        ),
    )
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("250m", "1Gi", "1", "2Gi"), description="api-server container resources."
    )
    ingress: IngressConfig = Field(default_factory=IngressConfig, description="Expose through an Ingress.")
    http_route: HttpRouteConfig = Field(
        default_factory=HttpRouteConfig, description="Expose through a Gateway API HTTPRoute."
    )
    autoscaling: ApiServerAutoscalingConfig = Field(
        default_factory=ApiServerAutoscalingConfig, description="Optional HorizontalPodAutoscaler."
    )
    placement: ComponentPlacementConfig = component_placement("Where api-server pods run")

    @property
    def exposed(self) -> bool:
        return self.ingress.enabled or self.http_route.enabled

    def rules(self) -> Iterator[Rule]:
        if valid(self.replicas, self.autoscaling) and self.autoscaling.enabled and "replicas" in self.model_fields_set:
            yield Rule(
                ("replicas",),
                show(self.replicas),
                "leave unset with autoscaling.enabled: the HorizontalPodAutoscaler owns the replica count "
                f"(between autoscaling.minReplicas {self.autoscaling.min_replicas} "
                f"and maxReplicas {self.autoscaling.max_replicas})",
            )
        if not valid(self.base_url, self.ingress, self.http_route):
            return
        for key, enabled in (("ingress", self.ingress.enabled), ("httpRoute", self.http_route.enabled)):
            if enabled and self.base_url is None:
                yield Rule(
                    ("baseUrl",),
                    "(not set)",
                    f"required with {key}.enabled: the public URL it serves, e.g. https://airflow.example.com",
                )
        if self.base_url is None or not self.ingress.enabled:
            return
        https = self.base_url.startswith("https://")
        if https and self.ingress.tls is None:
            yield Rule(
                ("ingress", "tls"),
                "(not set)",
                "required when baseUrl is https: secretName, or clusterIssuer/issuer for cert-manager",
            )
        if not https and self.ingress.tls is not None:
            yield Rule(("baseUrl",), show(self.base_url), "must be https when ingress.tls is set")


class SchedulerConfig(Section):
    replicas: checks.NonNegative = Field(default=1, description="Scheduler pods (2 or more for HA).")
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("500m", "1Gi", "1", "2Gi"),
        description="Scheduler container resources (with LocalExecutor, tasks run here too).",
    )
    placement: ComponentPlacementConfig = component_placement("Where scheduler pods run")


class DagProcessorConfig(Section):
    replicas: checks.NonNegative = Field(default=1, description="dag-processor pods.")
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("250m", "768Mi", "1", "1536Mi"),
        description="dag-processor container resources.",
    )
    placement: ComponentPlacementConfig = component_placement("Where dag-processor pods run")


class AutoscalingConfig(Section):
    min_replicas: checks.NonNegative = Field(
        default=0, description="KEDA minReplicaCount (0 scales to zero when idle)."
    )
    max_replicas: checks.Positive = Field(default=3, description="KEDA maxReplicaCount.")
    polling_interval: checks.Positive = Field(default=15, description="KEDA pollingInterval in seconds.")
    cooldown_period: checks.NonNegative = Field(
        default=300, description="KEDA cooldownPeriod in seconds (wait before scaling to zero)."
    )

    def rules(self) -> Iterator[Rule]:
        if valid(self.min_replicas, self.max_replicas) and self.min_replicas > self.max_replicas:
            yield Rule(("minReplicas",), show(self.min_replicas), f"must be at most maxReplicas ({self.max_replicas})")


class TriggererAutoscalingConfig(AutoscalingConfig):
    min_replicas: checks.NonNegative = Field(default=1, description="KEDA minReplicaCount.")
    polling_interval: checks.Positive = Field(default=30, description="KEDA pollingInterval in seconds.")
    enabled: bool = Field(default=False, description="Scale triggerers with KEDA on the number of triggers.")


class TriggererConfig(Section):
    replicas: checks.NonNegative = Field(default=1, description="Triggerer pods (when not autoscaled).")
    capacity: checks.Positive = Field(
        default=1000, description="Triggers one triggerer runs at once ([triggerer] capacity)."
    )
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("250m", "512Mi", "1", "1Gi"), description="Triggerer container resources."
    )
    autoscaling: TriggererAutoscalingConfig = Field(
        default_factory=TriggererAutoscalingConfig, description="Optional KEDA ScaledObject for the triggerer."
    )
    placement: ComponentPlacementConfig = component_placement("Where triggerer pods run")


class WorkerSetConfig(Section):
    name: checks.ShortDnsLabel = Field(description="Worker set name; the workload is airflow-worker-NAME.")
    queues: list[str] = Field(default_factory=lambda: ["default"], description="Celery queues this set consumes.")
    concurrency: checks.Positive = Field(
        default=8, description="Task slots per worker pod (Celery worker_concurrency; also the KEDA divisor)."
    )
    replicas: checks.NonNegative = Field(default=1, description="Worker pods when KEDA is off.")
    termination_grace_period_seconds: checks.NonNegative = Field(
        default=600, description="How long a stopping worker may drain its running tasks."
    )
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("500m", "1Gi", "2", "3Gi"), description="Worker container resources."
    )
    log_server_resources: ResourcesConfig = Field(
        default_factory=lambda: resources("50m", "256Mi", "500m", "384Mi"),
        description="Resources of the log-server sidecar (it serves task logs; the worker itself holds no key).",
    )
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig, description="KEDA settings for this set.")
    placement: ComponentPlacementConfig = component_placement("Where this set's worker pods run")

    def rules(self) -> Iterator[Rule]:
        if not valid(self.queues):
            return
        if not self.queues:
            yield Rule(("queues",), "[]", "must list at least one queue")
        for i, queue in enumerate(self.queues):
            if not _QUEUE.match(queue):
                yield Rule(("queues", i), show(queue), "queue names use only letters, digits, '_', '.' and '-'")


class KedaConfig(Section):
    enabled: bool = Field(default=False, description="Autoscale Celery workers with KEDA (KEDA must be installed).")
    operator_namespace: checks.DnsLabel = Field(
        default="keda", description="Namespace of the KEDA operator (allowed to reach Postgres)."
    )
    database_role: checks.DatabaseRole = Field(
        default="airflow_keda",
        description=(
            "Read-only database role KEDA logs in as: the migration step creates it and keeps it to "
            "SELECT on task_instance and trigger (the database user needs CREATEROLE)."
        ),
    )


class KubernetesExecutorConfig(Section):
    delete_worker_pods: bool = Field(default=True, description="Delete task pods when they finish.")
    delete_worker_pods_on_failure: bool = Field(
        default=False, description="Also delete task pods that failed (keep them to debug)."
    )
    max_task_pods: checks.Positive = Field(
        default=16, description="Task pods the KubernetesExecutor runs at once (part of [core] parallelism)."
    )
    worker_resources: ResourcesConfig = Field(
        default_factory=lambda: resources("250m", "512Mi", "1", "1Gi"),
        description="Resources of each KubernetesExecutor task pod.",
    )
    placement: ComponentPlacementConfig = component_placement(
        "Where KubernetesExecutor task pods run (the pod template)"
    )


class DatabaseConfig(Section):
    mode: DatabaseMode = Field(
        default="in-cluster",
        description="Where the metadata database lives. `external` needs the secret externalDatabaseUrl.",
    )
    storage_size: checks.Quantity = Field(
        default="8Gi",
        description=(
            "Size of the Postgres volume (in-cluster); set once: later changes are ignored (see docs/operations.md)."
        ),
    )
    storage_class: str | None = Field(
        default=None, description="StorageClass of the Postgres volume (cluster default if unset)."
    )
    image: checks.ImageReference = Field(default="postgres:17.7", description="Postgres image, pinned.")
    database_name: checks.DnsLabel = Field(default="airflow", description="Database name.")
    user: checks.DnsLabel = Field(default="airflow", description="Database user.")
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("250m", "256Mi", "1", "1Gi"), description="Postgres container resources."
    )
    placement: ComponentPlacementConfig = component_placement("Where the Postgres pod runs (in-cluster)")


PoolMode = Literal["transaction", "session"]
PGBOUNCER_IMAGE = "apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1"
"""Apache Airflow's own PgBouncer image (the official chart's): PgBouncer 1.23.1 on Alpine, run as nobody."""
_PGBOUNCER_TAG = re.compile(r"airflow-pgbouncer-[0-9.]+-(?P<major>\d+)\.(?P<minor>\d+)\.\d+$")
PGBOUNCER_MIN_VERSION = (1, 21)
"""Protocol-level prepared statements in transaction pooling (``max_prepared_statements``), which Airflow's
asyncpg engine uses; SCRAM pass-through needs 1.14."""

# The connections each Airflow process may open to the metadata database: SQLAlchemy's pool_size plus
# max_overflow per engine. The stack leaves Airflow's defaults ([database] sql_alchemy_pool_size 5 and
# sql_alchemy_max_overflow 10; tests/test_pgbouncer.py reads them from Airflow itself).
AIRFLOW_POOL_SIZE = 5
AIRFLOW_MAX_OVERFLOW = 10
ENGINE_CONNECTIONS = AIRFLOW_POOL_SIZE + AIRFLOW_MAX_OVERFLOW
API_SERVER_ENGINES = 2
"""The api-server's worker processes have a sync and an async (asyncpg) engine; the others use the sync one."""
POD_HEADROOM = 2
"""Per pod, beside its main process: a CLI probe (`airflow jobs check`) or an init step (wait-for-migrations)."""
SUPERUSER_RESERVED_CONNECTIONS = 3
"""PostgreSQL's superuser_reserved_connections default: ordinary logins cannot use these."""
ADMIN_CONNECTIONS = 5
"""Kept free for operators (psql, pg_dump) and monitoring."""
MIGRATION_CONNECTIONS = 2
"""Per scheduler pod: its migrate-database step connects directly (`airflow db migrate`, the role sync)."""
KEDA_CONNECTIONS = 10
"""With KEDA: its scalers' queries, as KEDA's own role. A fixed allowance, so adding a worker set (a scaler)
does not resize PgBouncer's pools (and roll its pods)."""


class PgBouncerConfig(Section):
    enabled: bool = Field(
        default=False,
        description=(
            "Put PgBouncer between Airflow's processes and the metadata database: they share a few server "
            "connections instead of opening their own. Migrations and KEDA connect directly."
        ),
    )
    replicas: checks.Positive = Field(
        default=2, description="PgBouncer pods (2 or more: a disruption budget keeps one)."
    )
    image: checks.ImageReference = Field(
        default=PGBOUNCER_IMAGE,
        description=(
            "PgBouncer image, pinned: PgBouncer 1.21 or later, with `pgbouncer` on the PATH, running as uid 65534 "
            "(the default is Apache Airflow's own image, the one the official chart uses)."
        ),
    )
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("50m", "64Mi", "500m", "256Mi"), description="PgBouncer container resources."
    )
    pool_mode: PoolMode = Field(
        default="transaction",
        description=(
            "transaction: a server connection per transaction (the most sharing; Airflow works with it). "
            "session: one per client connection (for your own session-level features; little sharing)."
        ),
    )
    max_client_connections: checks.Positive | None = Field(
        default=None,
        description="max_client_conn of each PgBouncer pod; unset derives it (docs/operations.md#pgbouncer).",
    )
    pool_size: checks.Positive | None = Field(
        default=None,
        description=(
            "Server connections of each PgBouncer pod to the database (default_pool_size and max_db_connections); "
            "unset derives it from databaseMaxConnections (docs/operations.md#pgbouncer)."
        ),
    )
    database_max_connections: checks.Positive = Field(
        default=100,
        description=(
            "max_connections of the PostgreSQL server (in-cluster: PostgreSQL's default, 100; external: yours). "
            "PgBouncer's pools and the direct connections must fit under it."
        ),
    )
    placement: ComponentPlacementConfig = component_placement("Where the PgBouncer pods run")

    def rules(self) -> Iterator[Rule]:
        if not valid(self.image):
            return
        tag = self.image.split("@")[0].rsplit(":", 1)[-1]
        match = _PGBOUNCER_TAG.match(tag)
        if match and (int(match["major"]), int(match["minor"])) < PGBOUNCER_MIN_VERSION:
            yield Rule(
                ("image",),
                show(self.image),
                "must be PgBouncer 1.21 or later (Airflow's asyncpg engine needs max_prepared_statements in "
                f"transaction pooling), e.g. {PGBOUNCER_IMAGE!r}",
            )


class PersistenceConfig(Section):
    enabled: bool = Field(default=False, description="Keep Redis data on a volume (else an emptyDir).")
    size: checks.Quantity = Field(default="1Gi", description="Volume size.")
    storage_class: str | None = Field(default=None, description="StorageClass (cluster default if unset).")


class RedisConfig(Section):
    image: checks.ImageReference = Field(
        default="redis:7.4.2", description="Redis image, pinned (used with the CeleryExecutor)."
    )
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("100m", "128Mi", "500m", "256Mi"), description="Redis container resources."
    )
    persistence: PersistenceConfig = Field(default_factory=PersistenceConfig, description="Redis persistence.")
    placement: ComponentPlacementConfig = component_placement("Where the Redis pod runs")


class GitSyncConfig(Section):
    repo: str | None = Field(default=None, description="Repository URL (https or ssh).")
    ref: str = Field(default="main", description="Branch, tag or commit to check out.")
    period: checks.Duration = Field(default="60s", description="How often to pull.")
    sub_path: str = Field(default="", description="Folder of the repository that holds the DAGs.")
    credentials_secret: str | None = Field(
        default=None,
        description="Existing Secret with GITSYNC_USERNAME and GITSYNC_PASSWORD (https) or ssh-key (ssh).",
    )
    image: checks.ImageReference = Field(
        default="registry.k8s.io/git-sync/git-sync:v4.7.0", description="git-sync image, pinned."
    )
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("50m", "64Mi", "200m", "256Mi"), description="git-sync container resources."
    )


GIT_BUNDLE_SCHEMES = ("https://", "http://", "ssh://", "git://", "git@")


class GitBundleConfig(Section):
    repo: str | None = Field(
        default=None, description="Repository URL Airflow clones (https, ssh, git@host:path or git://)."
    )
    ref: str = Field(default="main", description="Tracking ref: the branch, tag or commit new DAG versions come from.")
    sub_path: str = Field(default="", description="Folder of the repository that holds the DAGs.")
    credentials_secret: str | None = Field(
        default=None,
        description=(
            "Existing Secret whose key `connection` holds an Airflow git connection (JSON or URI) with the "
            "token (password) or the SSH key (extra private_key); unset for a public repository."
        ),
    )
    refresh_interval: int = Field(
        default=300, ge=0, description="Seconds between checks of the tracking ref for new commits."
    )

    def rules(self) -> Iterator[Rule]:
        if self.repo is not None and not self.repo.startswith(GIT_BUNDLE_SCHEMES):
            yield Rule(("repo",), show(self.repo), f"a Git URL starting with one of {', '.join(GIT_BUNDLE_SCHEMES)}")
        if self.repo is not None and self.credentials_secret and self.repo.startswith("git://"):
            yield Rule(
                ("credentialsSecret",),
                show(self.credentials_secret),
                "not set for a git:// repository (the git protocol has no authentication); use https or ssh",
            )
        if not self.ref.strip():
            yield Rule(("ref",), show(self.ref), "a branch, tag or commit")


class DagsConfig(Section):
    delivery: DagDelivery = Field(
        default="configmap",
        description=(
            "How DAGs reach the pods: a ConfigMap of ./dags, a git-sync sidecar, Airflow's own versioned "
            "Git DAG bundle (git-bundle), or baked into the image."
        ),
    )
    git_sync: GitSyncConfig = Field(default_factory=GitSyncConfig, description="git-sync settings (delivery git-sync).")
    git_bundle: GitBundleConfig = Field(
        default_factory=GitBundleConfig, description="Git DAG bundle settings (delivery git-bundle)."
    )
    example_resources: bool = Field(default=True, description="Create the Secret and ConfigMap the example DAGs read.")

    def rules(self) -> Iterator[Rule]:
        if self.delivery == "git-sync" and valid(self.git_sync) and not self.git_sync.repo:
            yield Rule(("gitSync", "repo"), "(not set)", "required when delivery is git-sync")
        if self.delivery == "git-bundle" and valid(self.git_bundle) and not self.git_bundle.repo:
            yield Rule(("gitBundle", "repo"), "(not set)", "required when delivery is git-bundle")


class TaskPodsConfig(Section):
    xcom_sidecar_image: checks.ImageReference = Field(
        default="alpine:3.24.2",
        description="Image of the KubernetesPodOperator's XCom sidecar (pinned; it runs hardened with tiny resources).",
    )
    placement: ComponentPlacementConfig = component_placement(
        "Defaults for KubernetesPodOperator pods built with dags/pod_defaults.py (a DAG's own settings win)"
    )


class OidcConfig(Section):
    enabled: bool = Field(default=False, description="Sign users in with an OpenID Connect provider (FAB AUTH_OAUTH).")
    issuer_url: checks.HttpUrl | None = Field(
        default=None,
        description=(
            "The provider's issuer URL (its /.well-known/openid-configuration is read at sign-in); "
            "https unless the UI itself is served over plain http (a dev setup)."
        ),
    )
    client_id: str | None = Field(default=None, description="OAuth client ID registered with the provider.")
    client_secret: SecretStr | None = Field(
        default=None,
        description=(
            "OAuth client secret (secret: `pulumi config set --secret --path auth.oidc.clientSecret ...`); "
            "only the api-server mounts it, as a file."
        ),
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        description="Scopes to request; must include openid (add groups if your provider needs it for the claim).",
    )
    roles_claim: str = Field(default="groups", description="Claim (ID token or userinfo) whose values map to roles.")
    username_claim: str = Field(
        default="preferred_username", description="Claim that becomes the Airflow user name (email if absent)."
    )
    role_mapping: dict[str, list[FabRole]] = Field(
        default_factory=dict,
        description='Claim value -> Airflow roles, e.g. {"airflow-admins": ["Admin"], "data-team": ["User"]}.',
    )
    default_role: FabRole = Field(
        default="Public",
        description="Role of users whose claim maps to no role (Public: signed in, but may see nothing).",
    )
    provider_name: checks.DnsLabel = Field(
        default="sso", description="Name of the provider in Airflow (the sign-in button and callback path)."
    )

    def rules(self) -> Iterator[Rule]:
        if not self.enabled:
            return
        for key, value in (
            ("issuerUrl", self.issuer_url),
            ("clientId", self.client_id),
            ("clientSecret", self.client_secret),
        ):
            if value is None:
                yield Rule((key,), "(not set)", "required when auth.oidc.enabled is true")
        if valid(self.role_mapping):
            if not self.role_mapping:
                yield Rule(
                    ("roleMapping",),
                    "{}",
                    'must map at least one claim value to roles, e.g. {"airflow-admins": ["Admin"]}',
                )
            for value, roles in sorted(self.role_mapping.items()):
                if not roles:
                    yield Rule(("roleMapping", value), "[]", f"must list at least one of {', '.join(FAB_ROLES)}")
        if valid(self.scopes) and "openid" not in self.scopes:
            yield Rule(("scopes",), show(self.scopes), "must include openid (the provider is OpenID Connect)")


class AuthConfig(Section):
    admin_username: checks.DnsLabel = Field(default="admin", description="Login of the generated admin user.")
    admin_email: str = Field(default="admin@example.com", description="Email of the admin user.")
    admin_login: bool = Field(
        default=True,
        description=(
            "Keep the generated admin login. With OIDC it signs in to the REST API (POST /auth/token) and the "
            "CLI; browsers sign in through the provider. false: no admin Secret, and an existing admin is deactivated."
        ),
    )
    oidc: OidcConfig = Field(default_factory=OidcConfig, description="Single sign-on with OpenID Connect.")

    def rules(self) -> Iterator[Rule]:
        if valid(self.admin_login, self.oidc) and not self.admin_login and not self.oidc.enabled:
            yield Rule(
                ("adminLogin",),
                "false",
                "nobody could sign in: keep the admin login, or enable auth.oidc",
            )


class ExternalServiceConfig(Section):
    name: checks.DnsLabel = Field(description="Service name tasks use: NAME.NAMESPACE.svc.cluster.local.")
    addresses: list[str] = Field(
        description="IP addresses (a Service with an EndpointSlice), or one DNS name (an ExternalName Service)."
    )
    ports: checks.Ports = Field(description="TCP ports tasks may reach.")
    egress_cidrs: checks.Cidrs = Field(
        default_factory=list,
        description=(
            "For a DNS name: the CIDRs it resolves to, which the NetworkPolicy opens on these ports "
            "(unset: only what network.taskEgressTo allows, i.e. public addresses)."
        ),
    )

    @property
    def ips(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address(address) for address in self.addresses if _is_ip(address)]

    @property
    def dns_name(self) -> str | None:
        return self.addresses[0] if self.addresses and not _is_ip(self.addresses[0]) else None

    def rules(self) -> Iterator[Rule]:
        if valid(self.ports) and not self.ports:
            yield Rule(("ports",), "[]", "must list at least one port (1-65535)")
        if not valid(self.addresses):
            return
        if not self.addresses:
            yield Rule(("addresses",), "[]", "must list IP addresses or one DNS name")
        ips = [a for a in self.addresses if _is_ip(a)]
        for i, address in enumerate(self.addresses):
            if _is_ip(address):
                ip = ipaddress.ip_address(address)
                if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
                    yield Rule(
                        ("addresses", i),
                        show(address),
                        "loopback, link-local, unspecified and multicast addresses cannot be Service endpoints",
                    )
            elif checks.hostname(address) is not None:
                yield Rule(
                    ("addresses", i), show(address), "must be an IP address or a DNS name such as db.corp.example.com"
                )
            elif ips or len(self.addresses) > 1:
                yield Rule(
                    ("addresses", i), show(address), "a DNS name must be the only address (an ExternalName Service)"
                )
        if valid(self.egress_cidrs) and self.egress_cidrs and ips:
            yield Rule(
                ("egressCidrs",), show(self.egress_cidrs), "only for a DNS name: IP addresses are opened exactly"
            )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class NetworkConfig(Section):
    enabled: bool = Field(
        default=True, description="Create NetworkPolicies (default deny, then only the needed paths)."
    )
    api_server_ingress_from: checks.NetworkPeers = Field(
        default_factory=list,
        description=(
            "Who else may reach the api-server's port 8080 (NetworkPolicy peers), besides the stack's own pods "
            "and the ingress controller or gateway of apiServer.ingress/httpRoute. Default: nobody "
            "(`kubectl port-forward` does not pass through NetworkPolicies)."
        ),
    )
    task_egress_to: checks.NetworkPeers = Field(
        default_factory=lambda: [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(_PRIVATE_RANGES)}}],
        description=(
            "Where task pods, workers and triggerers may connect besides the stack's own services. "
            "Default: the internet, not private ranges."
        ),
    )
    kube_api_server_cidrs: checks.Cidrs = Field(
        default_factory=lambda: list(_PRIVATE_RANGES),
        description=(
            "Where the Kubernetes API server's endpoints are, for pods that launch pods "
            "(`kubectl get endpoints kubernetes -n default`). Default: the private ranges."
        ),
    )
    kube_api_server_ports: checks.Ports = Field(
        default_factory=lambda: [443, 6443], description="Kubernetes API server ports."
    )
    git_egress_ports: checks.Ports = Field(
        default_factory=lambda: [443, 22],
        description="Ports git-sync or the Git DAG bundle may reach (https and ssh; 9418 for git://).",
    )
    git_egress_to: checks.NetworkPeers = Field(
        default_factory=lambda: [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        description=(
            "Where git-sync or the Git DAG bundle may connect (your Git server's addresses). The whole pod "
            "gets this path: NetworkPolicies cannot tell a sidecar from its pod."
        ),
    )


MonitorKind = Literal["ServiceMonitor", "PodMonitor"]
RemoteLogBackend = Literal["s3", "gcs"]
_REMOTE_SCHEMES = {"s3": "s3://", "gcs": "gs://"}
_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z]+$")


class PrometheusMonitorConfig(Section):
    enabled: bool = Field(
        default=False, description="Create a Prometheus operator monitor (the operator's CRDs must be installed)."
    )
    kind: MonitorKind = Field(default="ServiceMonitor", description="ServiceMonitor or PodMonitor.")
    interval: checks.Duration = Field(default="30s", description="Scrape interval.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels your Prometheus selects monitors and rules by (e.g. release: kube-prometheus-stack).",
    )


class MetricsConfig(Section):
    enabled: bool = Field(
        default=False,
        description=(
            "Airflow sends StatsD metrics to a statsd_exporter in the stack, which serves them to Prometheus "
            "with labels (dag_id, task_id, pool, ...)."
        ),
    )
    exporter_image: checks.ImageReference = Field(
        default="prom/statsd-exporter:v0.30.0", description="statsd_exporter image, pinned (the tested 0.30.0)."
    )
    exporter_resources: ResourcesConfig = Field(
        default_factory=lambda: resources("50m", "64Mi", "250m", "128Mi"), description="statsd_exporter resources."
    )
    scraper_namespace: checks.DnsLabel = Field(
        default="monitoring", description="Namespace of Prometheus: the NetworkPolicy lets it reach the metrics port."
    )
    prometheus: PrometheusMonitorConfig = Field(
        default_factory=PrometheusMonitorConfig, description="ServiceMonitor/PodMonitor and rule labels."
    )
    placement: ComponentPlacementConfig = component_placement("Where the StatsD exporter pod runs")


class AlertsConfig(Section):
    enabled: bool = Field(
        default=False,
        description=(
            "Alert rules on Airflow's metrics: a ConfigMap holding a plain Prometheus rules file, and a "
            "PrometheusRule with metrics.prometheus.enabled. Needs metrics.enabled."
        ),
    )
    heartbeat_missing_minutes: checks.Positive = Field(
        default=5, description="Alert when the scheduler, dag-processor or triggerer sent no heartbeat this long."
    )
    queued_minutes: checks.Positive = Field(
        default=30, description="Alert when tasks have waited in the queued state for longer than this."
    )
    failure_rate_percent: checks.Positive = Field(
        default=20, description="Alert when more than this share of finished tasks failed (over failureWindow)."
    )
    failure_window: checks.Duration = Field(default="30m", description="Window of the task failure rate.")
    pool_starvation_minutes: checks.Positive = Field(
        default=10, description="Alert when a pool has had no open slot while tasks wait, this long."
    )
    celery_backlog_minutes: checks.Positive = Field(
        default=15,
        description="Alert when Celery tasks queue beyond what the worker sets can run at KEDA's maximum, this long.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every alert (e.g. team: data-platform) for routing."
    )

    def rules(self) -> Iterator[Rule]:
        if valid(self.failure_rate_percent) and self.failure_rate_percent > 100:
            yield Rule(("failureRatePercent",), show(self.failure_rate_percent), "must be a percentage, 1-100")


class DashboardConfig(Section):
    enabled: bool = Field(
        default=False, description="A Grafana dashboard (JSON in a ConfigMap) on the exporter's metrics."
    )
    labels: dict[str, str] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description='Labels the Grafana sidecar looks for (the Grafana chart\'s convention: grafana_dashboard: "1").',
    )


class RemoteLoggingConfig(Section):
    enabled: bool = Field(default=False, description="Ship task logs to object storage; the UI reads them there.")
    backend: RemoteLogBackend = Field(default="s3", description="s3 (or an S3-compatible store) or gcs.")
    base_folder: str | None = Field(
        default=None, description="Where logs go: s3://BUCKET/PREFIX or gs://BUCKET/PREFIX."
    )
    connection_id: checks.ConnectionId = Field(
        default="remote_logs", description="Airflow connection id the log handler uses."
    )
    connection_secret: checks.DnsSubdomainName | None = Field(
        default=None,
        description=(
            "Existing Secret whose key `connection` holds the connection (URI or JSON), e.g. "
            '{"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}. Unset: a connection with no '
            "credentials, for workload identity (IRSA, GKE Workload Identity)."
        ),
    )
    service_account_annotations: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Annotations for the ServiceAccounts that write or read logs, e.g. "
            "eks.amazonaws.com/role-arn or iam.gke.io/gcp-service-account (workload identity)."
        ),
    )
    delete_local_logs: bool = Field(default=True, description="Delete a task's local log once it is uploaded.")

    def rules(self) -> Iterator[Rule]:
        if not self.enabled or not valid(self.backend, self.base_folder):
            return
        scheme = _REMOTE_SCHEMES[self.backend]
        if self.base_folder is None:
            yield Rule(("baseFolder",), "(not set)", f"required when remote logging is on: {scheme}BUCKET/PREFIX")
        elif not self.base_folder.startswith(scheme) or len(self.base_folder) <= len(scheme):
            yield Rule(
                ("baseFolder",), show(self.base_folder), f"must be {scheme}BUCKET[/PREFIX] for backend {self.backend}"
            )


class LogsVolumeConfig(Section):
    enabled: bool = Field(
        default=False,
        description=(
            "Without remote logging: keep task logs on a shared volume (ReadWriteMany), so they outlive the pods. "
            "See docs/observability.md for the trade-offs."
        ),
    )
    size: checks.Quantity = Field(default="10Gi", description="Volume size.")
    storage_class: str | None = Field(
        default=None, description="A StorageClass with ReadWriteMany (NFS, EFS, Filestore, Azure Files, CephFS)."
    )


class LoggingConfig(Section):
    remote: RemoteLoggingConfig = Field(default_factory=RemoteLoggingConfig, description="Remote task logs.")
    volume: LogsVolumeConfig = Field(default_factory=LogsVolumeConfig, description="A shared logs volume.")
    retention_days: checks.Positive = Field(
        default=15, description="Local task logs older than this are deleted (a log-cleanup sidecar)."
    )

    def rules(self) -> Iterator[Rule]:
        if valid(self.remote, self.volume) and self.remote.enabled and self.volume.enabled:
            yield Rule(("volume", "enabled"), "true", "choose one: remote logging, or a shared logs volume")


class BackupConfig(Section):
    enabled: bool = Field(
        default=True,
        description=(
            "Before a new Airflow image migrates the metadata database, a Job takes a pg_dump of it onto a "
            "retained volume claim (only when a migration is pending). Required with protectData."
        ),
    )
    keep: checks.Positive = Field(default=5, description="How many backups the claim keeps (the newest).")
    size: checks.Quantity = Field(default="20Gi", description="Size of the backups' volume claim.")
    storage_class: str | None = Field(default=None, description="StorageClass of the backups' claim.")
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("100m", "256Mi", "1", "1Gi"), description="The backup job's resources."
    )


class DatabaseCleanupConfig(Section):
    enabled: bool = Field(
        default=False, description="A CronJob runs `airflow db clean` to keep the metadata database from growing."
    )
    schedule: str = Field(default="17 3 * * *", description="Cron schedule (UTC).")
    retention_days: checks.Positive = Field(default=90, description="Rows older than this many days are deleted.")
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("100m", "512Mi", "1", "1Gi"), description="The job's resources."
    )
    placement: ComponentPlacementConfig = component_placement("Where the `db clean` job's pods run")

    def rules(self) -> Iterator[Rule]:
        if valid(self.schedule):
            fields = self.schedule.split()
            if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
                yield Rule(("schedule",), show(self.schedule), 'must be a 5-field cron schedule, e.g. "17 3 * * *"')


class RotationConfig(Section):
    api_secret_key: checks.NonNegative = Field(
        default=0, description="Raise to generate a new API secret key (signs sessions out)."
    )
    jwt_secret: checks.NonNegative = Field(
        default=0, description="Raise to generate a new JWT secret (running tasks get new tokens)."
    )
    admin_password: checks.NonNegative = Field(default=0, description="Raise to generate a new admin password.")
    redis_password: checks.NonNegative = Field(
        default=0, description="Raise to generate a new broker password (Redis and the Celery pods restart)."
    )
    example_password: checks.NonNegative = Field(
        default=0, description="Raise to generate a new password in the example Secret."
    )


class StackConfig(Section):
    """The whole stack: every ``airflow-k8s:`` key of a ``Pulumi.<stack>.yaml``."""

    namespace: checks.DnsLabel = Field(default="airflow", description="Namespace that holds the whole stack.")
    kube_context: str | None = Field(
        default=None,
        description=(
            "kubeconfig context to deploy to; unset uses the current context. Changing it on an existing "
            "stack replaces the Kubernetes provider and with it every object (deleted from the old "
            "cluster, created in the new one): make a new stack instead."
        ),
    )
    pod_security_level: PodSecurityLevel = Field(
        default="restricted", description="Pod Security Standard enforced on the namespace."
    )
    image: ImageConfig = Field(default_factory=ImageConfig, description="The Airflow image.")
    executor: Executor = Field(default="LocalExecutor", description="Airflow executor.")
    api_server: ApiServerConfig = Field(default_factory=ApiServerConfig, description="api-server.")
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig, description="Scheduler.")
    dag_processor: DagProcessorConfig = Field(default_factory=DagProcessorConfig, description="dag-processor.")
    triggerer: TriggererConfig = Field(default_factory=TriggererConfig, description="Triggerer.")
    workers: list[WorkerSetConfig] = Field(
        default_factory=lambda: [WorkerSetConfig(name="default")],
        description="Celery worker sets, one workload (and ScaledObject) per set.",
    )
    keda: KedaConfig = Field(default_factory=KedaConfig, description="KEDA autoscaling of Celery workers.")
    kubernetes_executor: KubernetesExecutorConfig = Field(
        default_factory=KubernetesExecutorConfig, description="KubernetesExecutor task pods."
    )
    database: DatabaseConfig = Field(default_factory=DatabaseConfig, description="Metadata database.")
    external_database_url: checks.ExternalDatabaseUrl | None = Field(
        default=None, description="SQLAlchemy URL of an external PostgreSQL (database mode external)."
    )
    pgbouncer: PgBouncerConfig = Field(
        default_factory=PgBouncerConfig, description="PgBouncer in front of the metadata database."
    )
    redis: RedisConfig = Field(default_factory=RedisConfig, description="Celery broker.")
    dags: DagsConfig = Field(default_factory=DagsConfig, description="DAG delivery.")
    placement: PlacementConfig = Field(
        default_factory=PlacementConfig,
        description=(
            "Where every workload's pods run (nodeSelector, tolerations, affinity, topologySpreadConstraints, "
            "priorityClassName); each component's `placement` replaces fields of it. See docs/operations.md."
        ),
    )
    task_pods: TaskPodsConfig = Field(default_factory=TaskPodsConfig, description="Pods launched by DAG tasks.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="The generated admin login (FAB auth manager).")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="NetworkPolicies.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Metrics (StatsD exporter).")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Prometheus alert rules.")
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig, description="Grafana dashboard.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Task logs.")
    backup: BackupConfig = Field(
        default_factory=BackupConfig, description="A pg_dump of the metadata database before each migration."
    )
    database_cleanup: DatabaseCleanupConfig = Field(
        default_factory=DatabaseCleanupConfig, description="Metadata database hygiene (`airflow db clean`)."
    )
    rotation: RotationConfig = Field(
        default_factory=RotationConfig,
        description=(
            "Secret rotation counters: raising one replaces that generated value; pods using it roll. "
            "The database password and the Fernet key are not rotated this way (see docs/operations.md)."
        ),
    )
    protect_data: bool = Field(
        default=False,
        description="Protect the database, its keys and the namespace from `pulumi up`/`destroy` accidents (prod).",
    )
    migration_wait_timeout_seconds: checks.Positive = Field(
        default=600, description="How long pods wait for the database schema to be migrated before failing."
    )
    parallelism: checks.Positive | None = Field(
        default=None, description="[core] parallelism; unset derives it from the executor's capacity."
    )
    extra_env: checks.EnvNames = Field(
        default_factory=dict, description="Extra plain environment variables for every Airflow container (no secrets)."
    )
    extra_env_from_secrets: checks.SecretNames = Field(
        default_factory=list,
        description="Existing Secrets whose keys become environment variables in every Airflow container.",
    )
    connections: checks.ConnectionIds = Field(
        default_factory=dict, description="Airflow connections, id -> URI or JSON, injected as AIRFLOW_CONN_<ID>."
    )
    external_services: list[ExternalServiceConfig] = Field(
        default_factory=lambda: list[ExternalServiceConfig](),
        description=(
            "Services outside the cluster that tasks reach by a stable in-cluster name; task pods, workers and "
            "triggerers get NetworkPolicy egress to exactly these addresses and ports."
        ),
    )

    def rules(self) -> Iterator[Rule]:
        yield from self._autoscaling_rules()
        yield from self._exposure_rules()
        yield from self._observability_rules()
        yield from self._backup_rules()
        yield from self._external_service_rules()
        yield from self._pgbouncer_rules()
        if valid(self.database) and self.database.mode == "external" and self.external_database_url is None:
            yield Rule(
                ("externalDatabaseUrl",),
                "(not set)",
                "required when database.mode is external: "
                "pulumi config set --secret externalDatabaseUrl postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB",
            )
        if not valid(self.workers):
            return
        seen_names: set[str] = set()
        queue_owner: dict[str, str] = {}
        for i, worker_set in enumerate(self.workers):
            if worker_set.name in seen_names:
                yield Rule(("workers", i, "name"), show(worker_set.name), "worker set names must be unique")
            seen_names.add(worker_set.name)
            for queue in worker_set.queues:
                owner = queue_owner.setdefault(queue, worker_set.name)
                if owner != worker_set.name:
                    yield Rule(
                        ("workers", i, "queues"),
                        show(queue),
                        f"queue already consumed by worker set {owner!r}; each queue belongs to one set "
                        "(otherwise KEDA counts its tasks twice)",
                    )
        if valid(self.executor) and self.uses_celery and not self.workers:
            yield Rule(("workers",), "[]", "the CeleryExecutor needs at least one worker set")

    def _pgbouncer_rules(self) -> Iterator[Rule]:
        if not valid(self.pgbouncer, self.scheduler, self.keda):
            return
        bouncer = self.pgbouncer
        if not bouncer.enabled:
            return
        available = bouncer.database_max_connections - self.direct_database_connections
        if bouncer.pool_size is not None:
            used = bouncer.pool_size * bouncer.replicas
            if used > available:
                yield Rule(
                    ("pgbouncer", "poolSize"),
                    show(bouncer.pool_size),
                    f"at most {available // bouncer.replicas}: {bouncer.replicas} PgBouncer pods x poolSize must fit "
                    f"in databaseMaxConnections ({bouncer.database_max_connections}) less "
                    f"{self.direct_database_connections} kept for direct connections",
                )
        elif available // bouncer.replicas < 1:
            yield Rule(
                ("pgbouncer", "databaseMaxConnections"),
                show(bouncer.database_max_connections),
                f"at least {self.direct_database_connections + bouncer.replicas}: "
                f"{self.direct_database_connections} connections are kept for direct connections and each of the "
                f"{bouncer.replicas} PgBouncer pods needs one",
            )

    def _backup_rules(self) -> Iterator[Rule]:
        if valid(self.backup, self.protect_data) and self.protect_data and not self.backup.enabled:
            yield Rule(("backup", "enabled"), "false", "must be true with protectData: true (migrations are one-way)")

    def _observability_rules(self) -> Iterator[Rule]:
        if not valid(self.metrics, self.alerts, self.dashboard):
            return
        for key, enabled in (("alerts", self.alerts.enabled), ("dashboard", self.dashboard.enabled)):
            if enabled and not self.metrics.enabled:
                yield Rule(
                    (key, "enabled"), "true", "needs metrics.enabled: true (the rules and panels query its metrics)"
                )

    def _exposure_rules(self) -> Iterator[Rule]:
        if not valid(self.api_server, self.network, self.auth):
            return
        if self.network.enabled:
            if self.api_server.ingress.enabled and self.api_server.ingress.controller_namespace is None:
                yield Rule(
                    ("apiServer", "ingress", "controllerNamespace"),
                    "(not set)",
                    "required with network.enabled: the namespace of the ingress controller's pods "
                    "(e.g. ingress-nginx), which the NetworkPolicy admits to the api-server",
                )
            if self.api_server.http_route.enabled and self.api_server.http_route.gateway_namespace is None:
                yield Rule(
                    ("apiServer", "httpRoute", "gatewayNamespace"),
                    "(not set)",
                    "required with network.enabled: the namespace of the pods that carry the Gateway's traffic "
                    "(e.g. envoy-gateway-system), which the NetworkPolicy admits to the api-server",
                )
        oidc = self.auth.oidc
        plain_issuer = oidc.issuer_url is not None and not oidc.issuer_url.startswith("https://")
        if oidc.enabled and plain_issuer and (self.api_server.base_url or "").startswith("https://"):
            yield Rule(
                ("auth", "oidc", "issuerUrl"),
                show(oidc.issuer_url),
                "must be https: the UI is served over https (apiServer.baseUrl); plain http is for dev setups only",
            )

    def _external_service_rules(self) -> Iterator[Rule]:
        if not valid(self.external_services):
            return
        taken = {name: "a Service of the stack" for name in names.STACK_SERVICES}
        for i, service in enumerate(self.external_services):
            owner = taken.get(service.name)
            if owner is not None:
                yield Rule(("externalServices", i, "name"), show(service.name), f"already taken by {owner}")
            taken.setdefault(service.name, f"externalServices[{i}]")

    def _autoscaling_rules(self) -> Iterator[Rule]:
        if not valid(self.keda, self.triggerer, self.executor):
            return
        triggerer_scaled = self.triggerer.autoscaling.enabled
        if triggerer_scaled and not self.keda.enabled:
            yield Rule(
                ("triggerer", "autoscaling", "enabled"),
                "true",
                "needs keda.enabled: true (and KEDA installed in the cluster)",
            )
        if self.keda.enabled and not self.uses_celery and not triggerer_scaled:
            yield Rule(
                ("keda", "enabled"),
                "true",
                "nothing to autoscale: KEDA scales Celery worker sets (executor with CeleryExecutor) "
                "and, with triggerer.autoscaling.enabled, the triggerer",
            )

    # --- derived facts, one place for each -------------------------------------------------------------

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
    def runs_tasks_in_scheduler(self) -> bool:
        """LocalExecutor: tasks run as processes of the scheduler pod."""
        return self.executor == "LocalExecutor"

    @property
    def in_cluster_database(self) -> bool:
        return self.database.mode == "in-cluster"

    @property
    def celery_autoscaled(self) -> bool:
        """KEDA owns the Celery worker sets' replica counts."""
        return self.keda.enabled and self.uses_celery

    @property
    def triggerer_autoscaled(self) -> bool:
        return self.keda.enabled and self.triggerer.autoscaling.enabled

    @property
    def api_server_autoscaled(self) -> bool:
        """A HorizontalPodAutoscaler owns the api-server's replica count."""
        return self.api_server.autoscaling.enabled

    def placement_of(self, own: PlacementConfig) -> PlacementConfig:
        """A component's placement: its own fields, the global ``placement`` for those it leaves unset."""
        return own.merged_over(self.placement)

    @property
    def dags_in_config_map(self) -> bool:
        return self.dags.delivery == "configmap"

    @property
    def uses_git_sync(self) -> bool:
        return self.dags.delivery == "git-sync"

    @property
    def uses_git_bundle(self) -> bool:
        return self.dags.delivery == "git-bundle"

    @property
    def external_secrets(self) -> frozenset[str]:
        """Secrets the user creates and the stack's pods reference by name (not managed here)."""
        found = set(self.extra_env_from_secrets)
        if self.logging.remote.enabled and self.logging.remote.connection_secret:
            found.add(self.logging.remote.connection_secret)
        if self.uses_git_sync and self.dags.git_sync.credentials_secret:
            found.add(self.dags.git_sync.credentials_secret)
        if self.uses_git_bundle and self.dags.git_bundle.credentials_secret:
            found.add(self.dags.git_bundle.credentials_secret)
        return frozenset(found)

    @property
    def uses_pgbouncer(self) -> bool:
        return self.pgbouncer.enabled

    @property
    def database_clients(self) -> dict[str, int]:
        """Connections each component may open to the metadata database at most (docs/operations.md#pgbouncer):
        pods x (processes x engines x (pool_size + max_overflow) + POD_HEADROOM)."""
        per_process = ENGINE_CONNECTIONS
        triggerers = self.triggerer.autoscaling.max_replicas if self.triggerer_autoscaled else self.triggerer.replicas
        # an autoscaled api-server counts at its HorizontalPodAutoscaler's maximum
        scaling = self.api_server.autoscaling
        api_servers = scaling.max_replicas if scaling.enabled else self.api_server.replicas
        clients = {
            names.API_SERVER: api_servers * (self.api_server.workers * API_SERVER_ENGINES * per_process + POD_HEADROOM),
            names.SCHEDULER: self.scheduler.replicas * (per_process + POD_HEADROOM),
            names.DAG_PROCESSOR: self.dag_processor.replicas * (per_process + POD_HEADROOM),
            names.TRIGGERER: triggerers * (per_process + POD_HEADROOM),
        }
        if self.database_cleanup.enabled:
            clients[names.DATABASE_CLEANUP] = per_process + POD_HEADROOM
        return clients

    @property
    def direct_database_connections(self) -> int:
        """Kept free on the server beside PgBouncer's pools: superuser-reserved, operators, the migration
        steps, and KEDA's scalers (KEDA's own role)."""
        keda = KEDA_CONNECTIONS if self.keda.enabled else 0
        migrations = max(1, self.scheduler.replicas) * MIGRATION_CONNECTIONS
        return SUPERUSER_RESERVED_CONNECTIONS + ADMIN_CONNECTIONS + migrations + keda

    @property
    def pgbouncer_max_client_connections(self) -> int:
        """max_client_conn of each PgBouncer pod: every client may land on one pod (a Service picks one per
        connection), so each admits them all."""
        if self.pgbouncer.max_client_connections is not None:
            return self.pgbouncer.max_client_connections
        return sum(self.database_clients.values())

    @property
    def pgbouncer_pool_size(self) -> int:
        """Server connections per PgBouncer pod: the server's max_connections less the direct connections,
        shared by the PgBouncer pods (never more than the clients could use)."""
        if self.pgbouncer.pool_size is not None:
            return self.pgbouncer.pool_size
        available = self.pgbouncer.database_max_connections - self.direct_database_connections
        return max(1, min(available // self.pgbouncer.replicas, self.pgbouncer_max_client_connections))

    @property
    def effective_parallelism(self) -> int:
        """[core] parallelism per scheduler, sized to what the executors can actually run."""
        if self.parallelism is not None:
            return self.parallelism
        capacity = 0
        if self.runs_tasks_in_scheduler:
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
