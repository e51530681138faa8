"""NetworkPolicies: deny everything in the namespace, then allow only the paths in :func:`allowed_paths`.

The table of allowed paths is the whole design: each row says who may connect to whom, on which
ports, when, and why. The policies are derived from it: every group of pods gets one policy whose
egress lists the rows it starts and whose ingress lists the rows it receives, and whose
``airflow-k8s/allows`` annotation repeats their reasons. Kubelet probes are not affected (traffic from
a pod's own node is always allowed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.config.model import StackConfig
from components.foundation import external_services
from components.foundation.identities import identities
from components.kube import objects
from components.kube.wiring import NamespaceHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        LabelSelector,
        NetworkPolicyEgressRule,
        NetworkPolicyIngressRule,
        NetworkPolicyManifest,
        NetworkPolicyPeer,
        NetworkPolicyPort,
        NetworkPolicySpec,
    )

C = names.Component
ALLOWS = "airflow-k8s/allows"
KUBERNETES_POD_OPERATOR_LABEL = {"kubernetes_pod_operator": "True"}
"""Set by the KubernetesPodOperator on every pod it launches, whichever DAG wrote it."""
AIRFLOW_SERVERS = (C.API_SERVER, C.SCHEDULER, C.DAG_PROCESSOR, C.TRIGGERER, C.WORKER)


# --- who: groups of the stack's pods, and peers outside them ------------------------------------------


@dataclass(frozen=True)
class Pods:
    """A group of the stack's pods; the policy that selects them is named after the group."""

    policy: str
    components: tuple[str, ...] = ()
    """Selected by app.kubernetes.io/component (with the stack's name and instance labels)."""
    labels: tuple[tuple[str, str], ...] = ()
    """Or selected by these labels alone (pods the stack does not create itself)."""
    every_pod: bool = False

    def selector(self, instance: str) -> LabelSelector:
        if self.every_pod:
            return {}
        if self.labels:
            return {"matchLabels": dict(self.labels)}
        if len(self.components) == 1:
            return {"matchLabels": names.selector_labels(self.components[0], instance)}
        return {
            "matchLabels": {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/instance": instance},
            "matchExpressions": [
                {"key": "app.kubernetes.io/component", "operator": "In", "values": sorted(self.components)}
            ],
        }


API_SERVER = Pods("airflow-api-server", (C.API_SERVER,))
SCHEDULER = Pods("airflow-scheduler", (C.SCHEDULER,))
DAG_PROCESSOR = Pods("airflow-dag-processor", (C.DAG_PROCESSOR,))
TRIGGERER = Pods("airflow-triggerer", (C.TRIGGERER,))
WORKERS = Pods("airflow-workers", (C.WORKER,))
TASK_PODS = Pods("airflow-kubernetes-executor-tasks", (C.KUBERNETES_TASK,))
OPERATOR_PODS = Pods("airflow-pod-operator-tasks", labels=tuple(KUBERNETES_POD_OPERATOR_LABEL.items()))
POSTGRES = Pods("airflow-postgres", (C.POSTGRES,))
REDIS = Pods("airflow-redis", (C.REDIS,))
DATABASE_CLEANUP = Pods("airflow-database-cleanup", (C.DATABASE_CLEANUP,))
DATABASE_BACKUP = Pods("airflow-database-backup", (C.DATABASE_BACKUP,))
STATSD = Pods("airflow-statsd", (C.METRICS,))
PGBOUNCER = Pods("airflow-pgbouncer", (C.PGBOUNCER,))
EVERY_POD = Pods("airflow-allow-dns", every_pod=True)
GIT_SYNC_PODS = Pods("airflow-git-sync", (*AIRFLOW_SERVERS, C.KUBERNETES_TASK))
"""NetworkPolicies cannot tell a sidecar from its pod: every pod running git-sync."""

GROUPS = (
    POSTGRES,
    PGBOUNCER,
    REDIS,
    API_SERVER,
    SCHEDULER,
    DAG_PROCESSOR,
    TRIGGERER,
    WORKERS,
    TASK_PODS,
    OPERATOR_PODS,
    DATABASE_CLEANUP,
    DATABASE_BACKUP,
    STATSD,
    EVERY_POD,
    GIT_SYNC_PODS,
)
"""The order the policies are rendered in."""


@dataclass(frozen=True)
class Outside:
    """Peers outside the stack: addresses or namespaces; or anywhere at all."""

    peers: tuple[NetworkPolicyPeer, ...]
    anywhere: bool = False
    """Only DNS goes anywhere. Without it, no peers means no path (an empty list in a rule would allow all)."""


Endpoint = Pods | Outside | tuple[Pods, ...]


@dataclass(frozen=True)
class Path:
    source: Endpoint
    destination: Endpoint
    ports: tuple[NetworkPolicyPort, ...]
    why: str
    when: bool = True


def tcp(*port_numbers: int) -> tuple[NetworkPolicyPort, ...]:
    return tuple({"port": port, "protocol": "TCP"} for port in port_numbers)


def udp(*port_numbers: int) -> tuple[NetworkPolicyPort, ...]:
    return tuple({"port": port, "protocol": "UDP"} for port in port_numbers)


DNS_PORTS: tuple[NetworkPolicyPort, ...] = ({"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"})


# --- what: the table --------------------------------------------------------------------------------------


def allowed_paths(config: StackConfig) -> list[Path]:
    """Every connection the stack needs, and nothing else."""
    network = config.network
    database = config.in_cluster_database
    pooled = config.uses_pgbouncer
    celery = config.uses_celery
    local_tasks = config.runs_tasks_in_scheduler
    calls_api = {name for name, identity in identities(config).items() if identity.calls_kubernetes_api}
    kube_api = Outside(tuple({"ipBlock": {"cidr": cidr}} for cidr in network.kube_api_server_cidrs))
    kube_api_ports = tcp(*network.kube_api_server_ports)
    task_egress = Outside(tuple(network.task_egress_to))
    users = Outside(tuple(network.api_server_ingress_from))
    keda = _namespace(config.keda.operator_namespace)
    anywhere = Outside((), anywhere=True)
    # Pods that run task code (Celery workers, task pods, KubernetesPodOperator pods) have no path to
    # the database: tasks reach Airflow through the execution API.
    servers = (API_SERVER, SCHEDULER, DAG_PROCESSOR, TRIGGERER)
    api = tcp(names.API_SERVER_PORT)
    task_code = (
        (SCHEDULER, TRIGGERER, WORKERS, TASK_PODS, OPERATOR_PODS)
        if local_tasks
        else (TRIGGERER, WORKERS, TASK_PODS, OPERATOR_PODS)
    )
    ingress = config.api_server.ingress
    route = config.api_server.http_route
    paths = [
        Path(EVERY_POD, anywhere, DNS_PORTS, "every pod to DNS (port 53) to resolve Service names"),
        # the metadata database and the broker
        Path(
            servers,
            POSTGRES,
            tcp(names.POSTGRES_PORT),
            "the api-server, scheduler, dag-processor and triggerer to Postgres 5432 (the metadata database)",
            when=database and not pooled,
        ),
        Path(
            DATABASE_CLEANUP,
            POSTGRES,
            tcp(names.POSTGRES_PORT),
            "the database-cleanup job to Postgres 5432 (airflow db clean)",
            when=database and config.database_cleanup.enabled and not pooled,
        ),
        Path(
            DATABASE_BACKUP,
            POSTGRES,
            tcp(names.POSTGRES_PORT),
            "the pre-upgrade backup job to Postgres 5432 (pg_dump connects directly, like migrations)",
            when=database and config.backup.enabled,
        ),
        # With PgBouncer, Airflow's processes reach the database through it. The scheduler keeps its own
        # path: its migration step connects directly, and a policy cannot tell an init container from its pod.
        Path(
            servers,
            PGBOUNCER,
            tcp(names.PGBOUNCER_PORT),
            "the api-server, scheduler, dag-processor and triggerer to PgBouncer 6432 (the metadata database)",
            when=pooled,
        ),
        Path(
            DATABASE_CLEANUP,
            PGBOUNCER,
            tcp(names.PGBOUNCER_PORT),
            "the database-cleanup job to PgBouncer 6432 (airflow db clean)",
            when=pooled and config.database_cleanup.enabled,
        ),
        Path(
            PGBOUNCER,
            POSTGRES,
            tcp(names.POSTGRES_PORT),
            "PgBouncer to Postgres 5432 (its pooled server connections)",
            when=database and pooled,
        ),
        Path(
            SCHEDULER,
            POSTGRES,
            tcp(names.POSTGRES_PORT),
            "the scheduler's migrate-database step to Postgres 5432 (migrations connect directly)",
            when=database and pooled,
        ),
        Path(
            keda,
            POSTGRES,
            tcp(names.POSTGRES_PORT),
            f"the KEDA operator (namespace {config.keda.operator_namespace}) to Postgres 5432 for its queries",
            when=database and config.keda.enabled,
        ),
        Path(
            (SCHEDULER, WORKERS),
            REDIS,
            tcp(names.REDIS_PORT),
            "the scheduler (sends tasks) and Celery workers (take tasks) to Redis 6379",
            when=celery,
        ),
        # the UI, the REST API and the execution API
        Path(users, API_SERVER, api, "users to the UI/API on 8080 from network.apiServerIngressFrom"),
        Path(
            _namespace(ingress.controller_namespace),
            API_SERVER,
            api,
            f"the ingress controller (namespace {ingress.controller_namespace}) to the UI/API on 8080 "
            "(apiServer.ingress)",
            when=ingress.enabled,
        ),
        Path(
            _namespace(route.gateway_namespace),
            API_SERVER,
            api,
            f"the gateway's proxies (namespace {route.gateway_namespace}) to the UI/API on 8080 (apiServer.httpRoute)",
            when=route.enabled,
        ),
        Path(
            (SCHEDULER, DAG_PROCESSOR, TRIGGERER, WORKERS, TASK_PODS),
            API_SERVER,
            api,
            "Airflow components and KubernetesExecutor task pods to the execution API on 8080",
        ),
        Path(
            OPERATOR_PODS,
            API_SERVER,
            api,
            "KubernetesPodOperator pods to 8080: the example DAG kpo_service_dns calls the health endpoint "
            "by Service name",
        ),
        # metrics
        Path(
            (*servers, WORKERS, TASK_PODS),
            STATSD,
            udp(names.STATSD_PORT),
            "Airflow's processes (and KubernetesExecutor task pods) send StatsD metrics to the exporter (UDP 9125)",
            when=config.metrics.enabled,
        ),
        Path(
            _namespace(config.metrics.scraper_namespace),
            STATSD,
            tcp(names.METRICS_PORT),
            f"Prometheus (namespace {config.metrics.scraper_namespace}) scrapes the exporter's metrics port 9102",
            when=config.metrics.enabled,
        ),
        # task logs, fetched by the api-server from where the task ran
        Path(
            API_SERVER,
            SCHEDULER,
            tcp(names.WORKER_LOG_PORT),
            "the api-server to the scheduler's task log server (8793): LocalExecutor tasks",
            when=local_tasks,
        ),
        Path(
            API_SERVER, TRIGGERER, tcp(names.TRIGGERER_LOG_PORT), "the api-server to the triggerer's log server (8794)"
        ),
        Path(
            API_SERVER,
            WORKERS,
            tcp(names.WORKER_LOG_PORT),
            "the api-server to the Celery workers' log servers (8793)",
            when=celery,
        ),
        # the Kubernetes API, for the identities RBAC lets call it
        Path(
            API_SERVER,
            kube_api,
            kube_api_ports,
            "the api-server to the Kubernetes API, to read the logs of running task pods",
            when=names.API_SERVER in calls_api,
        ),
        Path(
            SCHEDULER,
            kube_api,
            kube_api_ports,
            "the scheduler to the Kubernetes API, to launch task pods",
            when=names.SCHEDULER in calls_api,
        ),
        Path(TRIGGERER, kube_api, kube_api_ports, "the triggerer to the Kubernetes API (deferrable pod tasks)"),
        Path(
            (WORKERS, TASK_PODS),
            kube_api,
            kube_api_ports,
            "Celery workers and KubernetesExecutor task pods to the Kubernetes API (KubernetesPodOperator)",
        ),
        # where task code may go
        Path(task_code, task_egress, (), "pods that run task code or triggers to network.taskEgressTo"),
        Path(
            GIT_SYNC_PODS,
            Outside(tuple(network.git_egress_to)),
            tcp(*network.git_egress_ports),
            "git-sync in Airflow pods to the DAG repository (network.gitEgressTo, network.gitEgressPorts)",
            when=config.uses_git_sync,
        ),
        Path(
            (DAG_PROCESSOR, WORKERS, TASK_PODS, *((SCHEDULER,) if config.runs_tasks_in_scheduler else ())),
            Outside(tuple(network.git_egress_to)),
            tcp(*network.git_egress_ports),
            "the processes that clone the Git DAG bundle (the dag-processor and where tasks run) to the DAG "
            "repository (network.gitEgressTo, network.gitEgressPorts)",
            when=config.uses_git_bundle,
        ),
    ]
    for service in config.external_services:
        paths.append(
            Path(
                task_code,
                Outside(tuple({"ipBlock": {"cidr": cidr}} for cidr in external_services.egress_peers(service))),
                tcp(*service.ports),
                f"pods that run task code or triggers to the external service {service.name} "
                f"({', '.join(service.addresses)}) on {', '.join(map(str, service.ports))}",
            )
        )
    return paths


def _namespace(name: str | None) -> Outside:
    """Pods of one namespace; none when the namespace is not set (the path is then closed)."""
    if name is None:
        return Outside(())
    return Outside(({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}},))


# --- the policies, derived ---------------------------------------------------------------------------------


def _groups(endpoint: Endpoint) -> tuple[Pods, ...]:
    if isinstance(endpoint, Pods):
        return (endpoint,)
    if isinstance(endpoint, Outside):
        return ()
    return endpoint


def _peers(endpoint: Endpoint, instance: str) -> list[NetworkPolicyPeer]:
    if isinstance(endpoint, Outside):
        return list(endpoint.peers)
    groups = _groups(endpoint)
    if len(groups) == 1:
        return [{"podSelector": groups[0].selector(instance)}]
    components = tuple(component for group in groups for component in group.components)
    return [{"podSelector": Pods("", components).selector(instance)}]


@dataclass
class _Policy:
    pods: Pods
    ingress: list[NetworkPolicyIngressRule] = field(default_factory=lambda: [])
    egress: list[NetworkPolicyEgressRule] = field(default_factory=lambda: [])
    why: list[str] = field(default_factory=lambda: [])


def manifests(config: StackConfig) -> list[NetworkPolicyManifest]:
    if not config.network.enabled:
        return []
    instance = config.namespace
    present = {group.policy: group for group in GROUPS if _present(config, group)}
    policies = {name: _Policy(group) for name, group in present.items()}
    for path in allowed_paths(config):
        if not path.when or _nowhere(path.source) or _nowhere(path.destination):
            continue
        ports = list(path.ports)
        for group in _groups(path.source):
            if group.policy not in policies:
                continue
            rule: NetworkPolicyEgressRule = {"ports": ports} if ports else {}
            if not (isinstance(path.destination, Outside) and path.destination.anywhere):
                rule = {"to": _peers(path.destination, instance), **rule}
            policies[group.policy].egress.append(rule)
            policies[group.policy].why.append(path.why)
        for group in _groups(path.destination):
            if group.policy not in policies:
                continue
            incoming: NetworkPolicyIngressRule = {"from": _peers(path.source, instance)}
            if ports:
                incoming["ports"] = ports
            policies[group.policy].ingress.append(incoming)
            policies[group.policy].why.append(path.why)
    found = [_default_deny(config)]
    found += [_manifest(config, policy) for policy in policies.values() if policy.ingress or policy.egress]
    return found


def _nowhere(endpoint: Endpoint) -> bool:
    """An outside peer list the user left empty: that path is closed."""
    return isinstance(endpoint, Outside) and not endpoint.peers and not endpoint.anywhere


def _present(config: StackConfig, group: Pods) -> bool:
    """Whether this stack runs the group's pods at all."""
    if group is POSTGRES:
        return config.in_cluster_database
    if group in (REDIS, WORKERS):
        return config.uses_celery
    if group is TASK_PODS:
        return config.uses_kubernetes_executor
    if group is DATABASE_CLEANUP:
        return config.database_cleanup.enabled
    if group is DATABASE_BACKUP:
        return config.backup.enabled
    if group is STATSD:
        return config.metrics.enabled
    if group is PGBOUNCER:
        return config.uses_pgbouncer
    return True


def _default_deny(config: StackConfig) -> NetworkPolicyManifest:
    # No `ingress: []` / `egress: []`: the API server drops empty lists, so sending them would change
    # the object again on every apply. Listing both policy types with no rules denies both ways.
    spec: NetworkPolicySpec = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    return _policy_manifest(config, "airflow-default-deny", spec, ["nothing: every other policy adds a path"])


def _manifest(config: StackConfig, policy: _Policy) -> NetworkPolicyManifest:
    spec: NetworkPolicySpec = {"podSelector": policy.pods.selector(config.namespace), "policyTypes": []}
    types: list[str] = []
    if policy.ingress:
        types.append("Ingress")
        spec["ingress"] = policy.ingress
    if policy.egress:
        types.append("Egress")
        spec["egress"] = policy.egress
    spec["policyTypes"] = types
    return _policy_manifest(config, policy.pods.policy, spec, list(dict.fromkeys(policy.why)))


def _policy_manifest(
    config: StackConfig, name: str, spec: NetworkPolicySpec, allows: Sequence[str]
) -> NetworkPolicyManifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names.metadata(
            name, C.NETWORK, config.namespace, config.namespace, annotations={ALLOWS: "; ".join(allows)}
        ),
        "spec": spec,
    }


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    config: StackConfig
    namespace: NamespaceHandle


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:foundation:NetworkPolicies", name, None, opts)
        found = manifests(args.config)
        for manifest in found:
            objects.register(manifest, objects.child_opts(self, [args.namespace.resource]))
        self.register_outputs({"policies": [m["metadata"]["name"] for m in found]})
