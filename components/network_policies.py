"""NetworkPolicies: deny everything in the namespace, then allow only the paths the stack needs.

Each policy selects one group of pods and lists what that group may receive and send; its
``airflow-k8s/allows`` annotation says why, path by path. Kubelet probes are not affected (traffic from
a pod's own node is always allowed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components import k8s, names
from components.config import StackConfig
from components.rbac import identities

C = names.Component
ALLOWS = "airflow-k8s/allows"
KUBERNETES_POD_OPERATOR_LABEL = {"kubernetes_pod_operator": "True"}
"""Set by the KubernetesPodOperator on every pod it launches, whichever DAG wrote it."""
AIRFLOW_SERVERS = (C.API_SERVER, C.SCHEDULER, C.DAG_PROCESSOR, C.TRIGGERER, C.WORKER)


# --- selectors and rule parts -----------------------------------------------------------------------


def airflow_pods(config: StackConfig, *components: str) -> k8s.Manifest:
    return {
        "matchLabels": {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/instance": config.namespace},
        "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In", "values": sorted(components)}],
    }


def component_pods(config: StackConfig, component: str) -> k8s.Manifest:
    return {"matchLabels": names.selector_labels(component, config.namespace)}


def tcp(*port_numbers: int) -> list[k8s.Manifest]:
    return [{"port": port, "protocol": "TCP"} for port in port_numbers]


def from_pods(selector: k8s.Manifest, ports: list[k8s.Manifest]) -> k8s.Manifest:
    return {"from": [{"podSelector": selector}], "ports": ports}


def to_pods(selector: k8s.Manifest, ports: list[k8s.Manifest]) -> k8s.Manifest:
    return {"to": [{"podSelector": selector}], "ports": ports}


def kubernetes_api(config: StackConfig) -> k8s.Manifest:
    network = config.network
    return {
        "to": [{"ipBlock": {"cidr": cidr}} for cidr in network.kube_api_server_cidrs],
        "ports": tcp(*network.kube_api_server_ports),
    }


def task_egress(config: StackConfig) -> k8s.Manifest:
    return {"to": list(config.network.task_egress_to)}


def policy(
    config: StackConfig,
    name: str,
    selector: k8s.Manifest,
    allows: Sequence[str],
    ingress: list[k8s.Manifest] | None = None,
    egress: list[k8s.Manifest] | None = None,
) -> k8s.Manifest:
    types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
    spec: dict[str, Any] = {"podSelector": selector, "policyTypes": types}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": k8s.metadata(
            name, C.NETWORK, config.namespace, config.namespace, annotations={ALLOWS: "; ".join(allows)}
        ),
        "spec": spec,
    }


# --- the policies ---------------------------------------------------------------------------------------


def manifests(config: StackConfig) -> list[k8s.Manifest]:
    if not config.network.enabled:
        return []
    postgres = to_pods(component_pods(config, C.POSTGRES), tcp(names.POSTGRES_PORT))
    redis = to_pods(component_pods(config, C.REDIS), tcp(names.REDIS_PORT))
    api_server = to_pods(component_pods(config, C.API_SERVER), tcp(names.API_SERVER_PORT))
    from_api_server = airflow_pods(config, C.API_SERVER)
    # Egress to the Kubernetes API follows the identities RBAC lets call it.
    calls_api = {name for name, identity in identities(config).items() if identity.calls_kubernetes_api}
    database = [postgres] if config.in_cluster_database else []
    broker = [redis] if config.uses_celery else []
    local_tasks = config.executor == "LocalExecutor"

    found = [
        policy(config, "airflow-default-deny", {}, ["nothing: every other policy adds a path"], [], []),
        policy(
            config,
            "airflow-allow-dns",
            {},
            ["every pod to DNS (port 53) to resolve Service names"],
            egress=[{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}],
        ),
    ]
    if config.in_cluster_database:
        ingress = [from_pods(airflow_pods(config, *AIRFLOW_SERVERS), tcp(names.POSTGRES_PORT))]
        allows = ["Airflow's servers and workers to Postgres 5432 (metadata database, Celery results)"]
        if config.keda.enabled:
            ingress.append(
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": config.keda.operator_namespace}
                            }
                        }
                    ],
                    "ports": tcp(names.POSTGRES_PORT),
                }
            )
            allows.append(
                f"the KEDA operator (namespace {config.keda.operator_namespace}) to Postgres 5432 for its queries"
            )
        found.append(policy(config, "airflow-postgres", component_pods(config, C.POSTGRES), allows, ingress=ingress))
    if config.uses_celery:
        found.append(
            policy(
                config,
                "airflow-redis",
                component_pods(config, C.REDIS),
                ["the scheduler (sends tasks) and Celery workers (take tasks) to Redis 6379"],
                ingress=[from_pods(airflow_pods(config, C.SCHEDULER, C.WORKER), tcp(names.REDIS_PORT))],
            )
        )

    api_clients = [C.SCHEDULER, C.DAG_PROCESSOR, C.TRIGGERER, C.WORKER, C.KUBERNETES_TASK]
    api_egress = [*database]
    log_ports = {
        C.SCHEDULER: names.WORKER_LOG_PORT,
        C.WORKER: names.WORKER_LOG_PORT,
        C.TRIGGERER: names.TRIGGERER_LOG_PORT,
    }
    api_egress += [
        to_pods(component_pods(config, component), tcp(port)) for component, port in sorted(log_ports.items())
    ]
    api_allows = [
        "users to the UI/API on 8080 from network.apiServerIngressFrom",
        "Airflow components and KubernetesExecutor task pods to the execution API on 8080",
        "KubernetesPodOperator pods to 8080: the example DAG kpo_service_dns calls the health endpoint by Service name",
        "the api-server to Postgres, and to the log servers of the scheduler, workers (8793) and triggerer (8794)",
    ]
    if names.API_SERVER in calls_api:
        api_egress.append(kubernetes_api(config))
        api_allows.append("the api-server to the Kubernetes API, to read the logs of running task pods")
    found.append(
        policy(
            config,
            "airflow-api-server",
            component_pods(config, C.API_SERVER),
            api_allows,
            ingress=[
                {"from": list(config.network.api_server_ingress_from), "ports": tcp(names.API_SERVER_PORT)},
                from_pods(airflow_pods(config, *api_clients), tcp(names.API_SERVER_PORT)),
                from_pods({"matchLabels": KUBERNETES_POD_OPERATOR_LABEL}, tcp(names.API_SERVER_PORT)),
            ],
            egress=api_egress,
        )
    )

    scheduler_egress = [*database, *broker, api_server]
    scheduler_allows = ["the scheduler to Postgres, Redis (Celery) and the api-server"]
    if names.SCHEDULER in calls_api:
        scheduler_egress.append(kubernetes_api(config))
        scheduler_allows.append("the scheduler to the Kubernetes API, to launch task pods")
    if local_tasks:
        scheduler_egress.append(task_egress(config))
        scheduler_allows.append("LocalExecutor tasks in the scheduler to network.taskEgressTo")
    found.append(
        policy(
            config,
            "airflow-scheduler",
            component_pods(config, C.SCHEDULER),
            [*scheduler_allows, "the api-server to the scheduler's task log server (8793)"],
            ingress=[from_pods(from_api_server, tcp(names.WORKER_LOG_PORT))] if local_tasks else None,
            egress=scheduler_egress,
        )
    )
    found.append(
        policy(
            config,
            "airflow-dag-processor",
            component_pods(config, C.DAG_PROCESSOR),
            ["the dag-processor to Postgres and the api-server"],
            egress=[*database, api_server],
        )
    )
    found.append(
        policy(
            config,
            "airflow-triggerer",
            component_pods(config, C.TRIGGERER),
            [
                "the api-server to the triggerer's log server (8794)",
                "the triggerer to Postgres, the api-server, the Kubernetes API (deferrable pod tasks) "
                "and network.taskEgressTo (triggers watch external systems)",
            ],
            ingress=[from_pods(from_api_server, tcp(names.TRIGGERER_LOG_PORT))],
            egress=[*database, api_server, kubernetes_api(config), task_egress(config)],
        )
    )
    if config.uses_celery:
        found.append(
            policy(
                config,
                "airflow-workers",
                component_pods(config, C.WORKER),
                [
                    "the api-server to the workers' log servers (8793)",
                    "workers to Postgres (results), Redis, the api-server (execution API), the Kubernetes API "
                    "(KubernetesPodOperator) and network.taskEgressTo",
                ],
                ingress=[from_pods(from_api_server, tcp(names.WORKER_LOG_PORT))],
                egress=[*database, *broker, api_server, kubernetes_api(config), task_egress(config)],
            )
        )
    if config.uses_kubernetes_executor:
        found.append(
            policy(
                config,
                "airflow-kubernetes-executor-tasks",
                component_pods(config, C.KUBERNETES_TASK),
                [
                    "KubernetesExecutor task pods to the api-server (execution API), the Kubernetes API "
                    "(KubernetesPodOperator) and network.taskEgressTo"
                ],
                egress=[api_server, kubernetes_api(config), task_egress(config)],
            )
        )
    found.append(
        policy(
            config,
            "airflow-pod-operator-tasks",
            {"matchLabels": KUBERNETES_POD_OPERATOR_LABEL},
            [
                "KubernetesPodOperator pods to network.taskEgressTo",
                "KubernetesPodOperator pods to the api-server on 8080: the example DAG kpo_service_dns",
            ],
            egress=[task_egress(config), api_server],
        )
    )
    if config.dags.delivery == "git-sync":
        found.append(
            policy(
                config,
                "airflow-git-sync",
                airflow_pods(config, *AIRFLOW_SERVERS, C.KUBERNETES_TASK),
                ["git-sync in Airflow pods to the DAG repository (network.gitEgressTo, network.gitEgressPorts)"],
                egress=[{"to": list(config.network.git_egress_to), "ports": tcp(*config.network.git_egress_ports)}],
            )
        )
    return found


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    config: StackConfig
    namespace: pulumi.Resource


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:network:Policies", name, None, opts)
        found = manifests(args.config)
        self.resources = [k8s.register(m, k8s.child_opts(self, [args.namespace])) for m in found]
        self.register_outputs({"policies": [m["metadata"]["name"] for m in found]})
