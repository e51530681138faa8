"""The api-server: UI, public REST API and the execution API that task processes call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi

from components import airflow_pod, k8s, names, rollout, workloads
from components.config import StackConfig
from components.rbac import identities

E = names.AirflowEnv
PORT_NAME = "http"


ADMIN_PASSWORD = airflow_pod.SecretFile(E.ADMIN_PASSWORD_FILE, names.ADMIN_SECRET, names.ADMIN_PASSWORD_KEY)


def bootstrap_admin(config: StackConfig) -> k8s.Manifest:
    """Init container: make the generated admin login work (create the user, or reset its password).

    Only this container mounts the admin password.
    """
    return airflow_pod.container(
        config,
        airflow_pod.AirflowContainer(
            name="bootstrap-admin",
            args=["python", airflow_pod.BOOTSTRAP_ADMIN],
            resources=config.api_server.resources,
            extra_env=[
                k8s.env(E.ADMIN_USERNAME, config.auth.admin_username),
                k8s.env(E.ADMIN_EMAIL, config.auth.admin_email),
                k8s.env(E.ADMIN_PASSWORD_FILE, ADMIN_PASSWORD.path),
            ],
            dags=False,
        ),
        airflow_pod.secret_mounts([ADMIN_PASSWORD]),
    )


def probes(config: StackConfig) -> dict[str, k8s.Manifest]:
    health = airflow_pod.health_path(config)
    return {
        "startupProbe": airflow_pod.http_probe(health, PORT_NAME, period=10, timeout=5, failures=30),
        "readinessProbe": airflow_pod.http_probe(health, PORT_NAME, period=10, timeout=5, failures=3),
        "livenessProbe": airflow_pod.http_probe(health, PORT_NAME, period=20, timeout=10, failures=5),
    }


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> k8s.Manifest:
    resources = config.api_server.resources
    server = airflow_pod.AirflowContainer(
        name="api-server",
        args=["airflow", "api-server"],
        resources=resources,
        extra_env=[k8s.env(E.API_WORKERS, str(config.api_server.workers))],
        ports=[{"name": PORT_NAME, "containerPort": names.API_SERVER_PORT, "protocol": "TCP"}],
        probes=probes(config),
    )
    identity = identities(config)[names.API_SERVER]
    return airflow_pod.pod_spec(
        config,
        service_account=identity.name,
        mounts_api_token=identity.calls_kubernetes_api,
        containers=[airflow_pod.container(config, server)],
        init_containers=[airflow_pod.wait_for_migrations(config, resources), bootstrap_admin(config)],
        extra_volumes=airflow_pod.secret_volumes([ADMIN_PASSWORD]),
        dag_paths=dag_paths,
    )


def service_manifest(config: StackConfig) -> k8s.Manifest:
    namespace = config.namespace
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": k8s.metadata(names.API_SERVER, names.Component.API_SERVER, namespace, namespace),
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": PORT_NAME, "port": names.API_SERVER_PORT, "protocol": "TCP", "targetPort": PORT_NAME}],
            "selector": names.selector_labels(names.Component.API_SERVER, namespace),
        },
    }


def workload(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> workloads.WorkloadSpec:
    return workloads.WorkloadSpec(
        name=names.API_SERVER,
        component=names.Component.API_SERVER,
        pod_spec=pod_spec(config, dag_paths),
        replicas=config.api_server.replicas,
    )


def port_forward_command(config: StackConfig) -> str:
    """Serves the api-server on localhost:8080, the URL ``airflow_pod.ui_url`` gives when not exposed."""
    port = names.API_SERVER_PORT
    local = urlsplit(airflow_pod.PORT_FORWARD_URL).port
    return f"kubectl port-forward --namespace {config.namespace} service/{names.API_SERVER} {local}:{port}"


@dataclass(frozen=True)
class ApiServerArgs:
    config: StackConfig
    registry: rollout.ContentRegistry
    dag_paths: Mapping[str, str] | None = None


class ApiServer(pulumi.ComponentResource):
    def __init__(self, name: str, args: ApiServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:airflow:ApiServer", name, None, opts)
        config = args.config
        self.resources = workloads.register_deployment(self, config, workload(config, args.dag_paths), args.registry)
        service = k8s.register(service_manifest(config), k8s.child_opts(self, args.registry.dependencies({})))
        self.resources.append(service)
        self.url = airflow_pod.api_server_url(config)
        self.ui_url = airflow_pod.ui_url(config)
        self.register_outputs({"url": self.url, "uiUrl": self.ui_url})
