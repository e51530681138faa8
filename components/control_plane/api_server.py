"""The api-server: UI, public REST API and the execution API that task processes call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pulumi

from components.airflow_pods import containers as pods
from components.airflow_pods import environment as env
from components.airflow_pods.workload import AirflowPodHandles, WorkloadSpec, register_workload
from components.config import names
from components.config.model import StackConfig
from components.control_plane import sso
from components.control_plane.exposure import Exposure, ExposureArgs
from components.foundation.config_maps import config_map_manifest, register_config_map
from components.foundation.identities import identities
from components.kube import builders, objects
from components.kube.wiring import ConfigMapHandle, IdentityHandle, SecretHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        EnvVar,
        HorizontalPodAutoscalerManifest,
        MetricSpec,
        PodSpec,
        ServiceManifest,
    )

E = names.AirflowEnv
C = names.Component
PORT_NAME = "http"
CONTAINER = "api-server"

ADMIN_PASSWORD = env.SecretFile(
    E.ADMIN_PASSWORD_FILE, names.ADMIN_SECRET, names.ADMIN_PASSWORD_KEY, airflow_setting=False
)


def bootstrap_admin(config: StackConfig) -> pods.AirflowContainer:
    """Init container: make the generated admin login work (create the user, or reset its password),
    or, with ``auth.adminLogin: false``, deactivate that user.

    Only this container mounts the admin password.
    """
    password = (ADMIN_PASSWORD,) if config.auth.admin_login else ()
    return pods.AirflowContainer(
        name="bootstrap-admin",
        args=["python", env.BOOTSTRAP_ADMIN],
        resources=config.api_server.resources,
        credentials=(*env.api_server_credentials(config), *password),
        extra_env=[
            builders.env(E.ADMIN_USERNAME, config.auth.admin_username),
            builders.env(E.ADMIN_EMAIL, config.auth.admin_email),
            *sso.api_server_env(config),
        ],
        extra_mounts=sso.mounts(config),
        dags=False,
    )


def proxy_env(config: StackConfig) -> list[EnvVar]:
    """Behind an Ingress or a Gateway, trust one proxy's X-Forwarded-* headers (the NetworkPolicy admits
    only the controller's pods), so sign-in redirects and secure cookies follow the public https URL."""
    return [builders.env(E.FAB_PROXY_FIX, "True")] if config.api_server.exposed else []


def probes(config: StackConfig) -> pods.Probes:
    health = env.health_path(config)
    return {
        "startupProbe": pods.http_probe(health, PORT_NAME, period=5, timeout=5, failures=60),
        # ready once the execution API answers too: tasks call it, and its first answer is the slow one
        "readinessProbe": pods.http_probe(
            env.execution_health_path(config), PORT_NAME, period=10, timeout=5, failures=3
        ),
        "livenessProbe": pods.http_probe(health, PORT_NAME, period=20, timeout=10, failures=5),
    }


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> PodSpec:
    resources = config.api_server.resources
    server = pods.AirflowContainer(
        name=CONTAINER,
        args=["airflow", "api-server"],
        resources=resources,
        credentials=(*env.api_server_credentials(config), *sso.credentials(config)),
        extra_env=[
            builders.env(E.API_WORKERS, str(config.api_server.workers)),
            *sso.api_server_env(config),
            *proxy_env(config),
            *env.remote_log_connection(config),
        ],
        extra_mounts=sso.mounts(config),
        ports=[{"name": PORT_NAME, "containerPort": names.API_SERVER_PORT, "protocol": "TCP"}],
        probes=probes(config),
    )
    identity = identities(config)[names.API_SERVER]
    return pods.pod_spec(
        config,
        identity=identity,
        containers=[server],
        init_containers=[pods.wait_for_migrations(config, resources), bootstrap_admin(config)],
        extra_volumes=sso.volumes(config),
        dag_paths=dag_paths,
    )


def service_manifest(config: StackConfig) -> ServiceManifest:
    namespace = config.namespace
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.metadata(names.API_SERVER, names.Component.API_SERVER, namespace, namespace),
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": PORT_NAME, "port": names.API_SERVER_PORT, "protocol": "TCP", "targetPort": PORT_NAME}],
            "selector": names.selector_labels(names.Component.API_SERVER, namespace),
        },
    }


def workload(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> WorkloadSpec:
    return WorkloadSpec(
        name=names.API_SERVER,
        component=names.Component.API_SERVER,
        pod_spec=pod_spec(config, dag_paths),
        replicas=config.api_server.replicas,
        autoscaled=config.api_server_autoscaled,
        placement=config.api_server.placement,
    )


def autoscaler_manifest(config: StackConfig) -> HorizontalPodAutoscalerManifest:
    """The api-server's HorizontalPodAutoscaler: on the api-server container's CPU (and memory) use, in
    percent of its requests (``containerResource``: the sidecars' use does not count)."""
    scaling = config.api_server.autoscaling
    namespace = config.namespace
    targets = [("cpu", scaling.cpu_utilization), ("memory", scaling.memory_utilization)]
    metrics: list[MetricSpec] = [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": resource,
                "container": CONTAINER,
                "target": {"type": "Utilization", "averageUtilization": percent},
            },
        }
        for resource, percent in targets
        if percent is not None
    ]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": names.metadata(names.API_SERVER, C.API_SERVER, namespace, namespace),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": names.API_SERVER},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": metrics,
        },
    }


def port_forward_command(config: StackConfig) -> str:
    """Serves the api-server on localhost:8080, the URL ``environment.ui_url`` gives when not exposed."""
    port = names.API_SERVER_PORT
    local = urlsplit(env.PORT_FORWARD_URL).port
    return f"kubectl port-forward --namespace {config.namespace} service/{names.API_SERVER} {local}:{port}"


def in_cluster_url(service_metadata: Mapping[str, Any]) -> str:
    """The Service's in-cluster URL, from its metadata as the cluster returns it."""
    service = names.dns_name(str(service_metadata["name"]), str(service_metadata["namespace"]))
    return f"http://{service}:{names.API_SERVER_PORT}"


@dataclass(frozen=True)
class ApiServerArgs:
    config: StackConfig
    pods: AirflowPodHandles
    identity: IdentityHandle
    admin: SecretHandle | None
    """The generated admin login (None with auth.adminLogin false)."""
    oidc: SecretHandle | None = None
    """The OIDC client secret (auth.oidc)."""
    dag_paths: Mapping[str, str] | None = None


class ApiServer(pulumi.ComponentResource):
    deployment: objects.KubernetesObject
    service: objects.KubernetesObject
    url: pulumi.Output[str]
    """The Service's in-cluster URL, read from the registered Service."""

    def __init__(self, name: str, args: ApiServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:ApiServer", name, None, opts)
        config = args.config
        shared = args.pods
        webserver_config: ConfigMapHandle | None = None
        if sso.enabled(config):
            content = {names.WEBSERVER_CONFIG_KEY: sso.webserver_config(config)}
            manifest = config_map_manifest(names.WEBSERVER_CONFIG_MAP, C.CONFIG, config.namespace, content)
            webserver_config = register_config_map(self, manifest, [shared.namespace.resource])
        registered = register_workload(
            self,
            config,
            workload(config, args.dag_paths),
            shared.namespace,
            args.identity,
            [*shared.content(), args.admin, args.oidc, webserver_config],
        )
        self.deployment = registered.deployment
        if config.api_server_autoscaled:
            objects.register(autoscaler_manifest(config), objects.child_opts(self, [self.deployment]))
        self.service = objects.register(service_manifest(config), objects.child_opts(self, [shared.namespace.resource]))
        if config.api_server.exposed:
            Exposure(
                "exposure",
                ExposureArgs(config, shared.namespace, self.service),
                pulumi.ResourceOptions(parent=self),
            )
        self.url = self.service.output("metadata").apply(in_cluster_url)
        self.register_outputs({"url": self.url})
