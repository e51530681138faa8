"""The stack configuration: one typed model, validated as a whole before anything is registered.

Every field is a Pulumi config key under the ``airflow-k8s:`` namespace (the camelCase of the field
name). The defaults suit a laptop cluster (kind, minikube, Docker Desktop): a stack file may set
nothing at all. ``Pulumi.prod.yaml`` overrides them for production. The configuration reference
(docs/configuration.md) and the JSON Schema for stack files are generated from this module.

The derived facts the program needs (which executors run, what is autoscaled, how DAGs arrive) are
properties of :class:`StackConfig`, each defined once here.
"""

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config import checks
from components.config.base import Rule, Section, show, valid
from components.kube.quantities import QUANTITY_HELP, mebibytes, parse_quantity

Executor = Literal[
    "LocalExecutor",
    "KubernetesExecutor",
    "CeleryExecutor",
    "CeleryExecutor,KubernetesExecutor",
]
DagDelivery = Literal["configmap", "git-sync", "image"]
PodSecurityLevel = Literal["restricted", "baseline", "privileged"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
DatabaseMode = Literal["in-cluster", "external"]

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


class ApiServerConfig(Section):
    replicas: checks.NonNegative = Field(default=1, description="api-server pods.")
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


class SchedulerConfig(Section):
    replicas: checks.NonNegative = Field(default=1, description="Scheduler pods (2 or more for HA).")
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("500m", "1Gi", "1", "2Gi"),
        description="Scheduler container resources (with LocalExecutor, tasks run here too).",
    )


class DagProcessorConfig(Section):
    replicas: checks.NonNegative = Field(default=1, description="dag-processor pods.")
    resources: ResourcesConfig = Field(
        default_factory=lambda: resources("250m", "768Mi", "1", "1536Mi"),
        description="dag-processor container resources.",
    )


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


class DagsConfig(Section):
    delivery: DagDelivery = Field(
        default="configmap",
        description="How DAGs reach the pods: a ConfigMap of ./dags, a git-sync sidecar, or baked into the image.",
    )
    git_sync: GitSyncConfig = Field(default_factory=GitSyncConfig, description="git-sync settings (delivery git-sync).")
    example_resources: bool = Field(default=True, description="Create the Secret and ConfigMap the example DAGs read.")

    def rules(self) -> Iterator[Rule]:
        if self.delivery == "git-sync" and valid(self.git_sync) and not self.git_sync.repo:
            yield Rule(("gitSync", "repo"), "(not set)", "required when delivery is git-sync")


class TaskPodsConfig(Section):
    xcom_sidecar_image: checks.ImageReference = Field(
        default="alpine:3.24.2",
        description="Image of the KubernetesPodOperator's XCom sidecar (pinned; it runs hardened with tiny resources).",
    )


class AuthConfig(Section):
    admin_username: checks.DnsLabel = Field(default="admin", description="Login of the generated admin user.")
    admin_email: str = Field(default="admin@example.com", description="Email of the admin user.")


class NetworkConfig(Section):
    enabled: bool = Field(
        default=True, description="Create NetworkPolicies (default deny, then only the needed paths)."
    )
    api_server_ingress_from: checks.NetworkPeers = Field(
        default_factory=lambda: [{"namespaceSelector": {}}],
        description=(
            "Who may reach the api-server (NetworkPolicy peers). "
            "Default: pods in any namespace (e.g. an ingress controller)."
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
        default_factory=lambda: [443, 22], description="Ports git-sync may reach (https and ssh)."
    )
    git_egress_to: checks.NetworkPeers = Field(
        default_factory=lambda: [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        description=(
            "Where git-sync may connect (your Git server's addresses). The whole pod gets this path: "
            "NetworkPolicies cannot tell a sidecar from its pod."
        ),
    )


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
    redis: RedisConfig = Field(default_factory=RedisConfig, description="Celery broker.")
    dags: DagsConfig = Field(default_factory=DagsConfig, description="DAG delivery.")
    task_pods: TaskPodsConfig = Field(default_factory=TaskPodsConfig, description="Pods launched by DAG tasks.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="The generated admin login (FAB auth manager).")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="NetworkPolicies.")
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

    def rules(self) -> Iterator[Rule]:
        yield from self._autoscaling_rules()
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
    def dags_in_config_map(self) -> bool:
        return self.dags.delivery == "configmap"

    @property
    def uses_git_sync(self) -> bool:
        return self.dags.delivery == "git-sync"

    @property
    def external_secrets(self) -> frozenset[str]:
        """Secrets the user creates and the stack's pods reference by name (not managed here)."""
        found = set(self.extra_env_from_secrets)
        if self.uses_git_sync and self.dags.git_sync.credentials_secret:
            found.add(self.dags.git_sync.credentials_secret)
        return frozenset(found)

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
