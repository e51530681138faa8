"""Metrics: Airflow sends StatsD to a statsd_exporter in the stack, which serves Prometheus metrics.

Why StatsD and not OpenTelemetry: Airflow's StatsD metrics are its long-standing, documented set (every
metric the alerts and dashboard use exists there), the official chart ships the same exporter, and a
statsd_exporter is one small static binary with no state; an OpenTelemetry collector would be a second
pipeline to operate for the same numbers. The exporter's mapping, generated here from one table
(``mapping.py``), turns Airflow's dotted names into ``airflow_*`` metrics with labels.

The exporter runs hardened (nobody, read-only root, no token), listens for StatsD on UDP 9125 and
serves ``/metrics`` on the named port ``metrics`` (9102). Optional: a ServiceMonitor or PodMonitor for
the Prometheus operator.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import yaml

from components.config import names
from components.config.model import StackConfig
from components.foundation.config_maps import config_map_manifest, register_config_map
from components.foundation.identities import identities
from components.foundation.placement import placed
from components.kube import builders, objects
from components.kube.wiring import IdentityHandle, NamespaceHandle, wire
from components.observability import mapping

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        Container,
        DeploymentManifest,
        Manifest,
        PodMonitorManifest,
        PodMonitorSpecPodMetricsEndpointsItem,
        PodSpec,
        ServiceManifest,
        ServiceMonitorManifest,
        ServiceMonitorSpecEndpointsItem,
    )

C = names.Component
NOBODY = 65534
CONFIG_DIR = "/etc/statsd-exporter"
MAPPING_FILE = "mapping.yaml"
STATSD_PORT_NAME = "statsd"
METRICS_PORT_NAME = "metrics"


@functools.cache
def mapping_yaml() -> str:
    # the same text for every stack (no config in it), and the largest YAML document the program writes
    return yaml.safe_dump(mapping.mapping_config(), sort_keys=False, width=200)


def exporter_args() -> list[str]:
    return [
        f"--statsd.mapping-config={CONFIG_DIR}/{MAPPING_FILE}",
        f"--statsd.listen-udp=:{names.STATSD_PORT}",
        # Airflow sends UDP only: no TCP listener
        "--statsd.listen-tcp=",
        f"--web.listen-address=:{names.METRICS_PORT}",
    ]


def pod_spec(config: StackConfig) -> PodSpec:
    metrics = config.metrics
    probe_path = "/metrics"
    container: Container = {
        "name": "statsd-exporter",
        "image": metrics.exporter_image,
        "imagePullPolicy": "IfNotPresent",
        "args": exporter_args(),
        "ports": [
            {"name": STATSD_PORT_NAME, "containerPort": names.STATSD_PORT, "protocol": "UDP"},
            {"name": METRICS_PORT_NAME, "containerPort": names.METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": builders.resources(metrics.exporter_resources.requests, metrics.exporter_resources.limits),
        "securityContext": builders.container_security_context(),
        "readinessProbe": {
            "httpGet": {"path": probe_path, "port": METRICS_PORT_NAME, "scheme": "HTTP"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": probe_path, "port": METRICS_PORT_NAME, "scheme": "HTTP"},
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 5,
        },
        "volumeMounts": [builders.mount("mapping", CONFIG_DIR, read_only=True)],
    }
    identity = identities(config)[names.STATSD]
    return {
        "serviceAccountName": identity.name,
        "automountServiceAccountToken": False,
        "securityContext": builders.pod_security_context(NOBODY, NOBODY, NOBODY),
        "containers": [container],
        "volumes": [{"name": "mapping", "configMap": {"name": names.STATSD, "defaultMode": 0o444}}],
    }


def deployment_manifest(
    config: StackConfig, template_annotations: dict[str, str | pulumi.Output[str]]
) -> DeploymentManifest:
    namespace = config.namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names.metadata(names.STATSD, C.METRICS, namespace, namespace),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": names.selector_labels(C.METRICS, namespace)},
            "template": {
                "metadata": {"labels": names.labels(C.METRICS, namespace), "annotations": template_annotations},
                "spec": placed(config, pod_spec(config), config.metrics.placement),
            },
        },
    }


def service_manifest(config: StackConfig) -> ServiceManifest:
    namespace = config.namespace
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.metadata(names.STATSD, C.METRICS, namespace, namespace),
        "spec": {
            "type": "ClusterIP",
            "ports": [
                {
                    "name": STATSD_PORT_NAME,
                    "port": names.STATSD_PORT,
                    "protocol": "UDP",
                    "targetPort": STATSD_PORT_NAME,
                },
                {
                    "name": METRICS_PORT_NAME,
                    "port": names.METRICS_PORT,
                    "protocol": "TCP",
                    "targetPort": METRICS_PORT_NAME,
                },
            ],
            "selector": names.selector_labels(C.METRICS, namespace),
        },
    }


def monitor_manifest(config: StackConfig) -> ServiceMonitorManifest | PodMonitorManifest:
    prometheus = config.metrics.prometheus
    namespace = config.namespace
    metadata = names.metadata(names.STATSD, C.METRICS, namespace, namespace, extra_labels=prometheus.labels)
    match_labels = names.selector_labels(C.METRICS, namespace)
    # honorLabels: the exporter's labels (dag_id, task_id, ...) stay as they are, never renamed by Prometheus
    if prometheus.kind == "PodMonitor":
        pod_endpoint: PodMonitorSpecPodMetricsEndpointsItem = {
            "port": METRICS_PORT_NAME,
            "path": "/metrics",
            "interval": prometheus.interval,
            "honorLabels": True,
        }
        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": metadata,
            "spec": {"selector": {"matchLabels": match_labels}, "podMetricsEndpoints": [pod_endpoint]},
        }
    endpoint: ServiceMonitorSpecEndpointsItem = {
        "port": METRICS_PORT_NAME,
        "path": "/metrics",
        "interval": prometheus.interval,
        "honorLabels": True,
    }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata,
        "spec": {"selector": {"matchLabels": match_labels}, "endpoints": [endpoint]},
    }


def manifests(config: StackConfig) -> list[Manifest]:
    """The objects besides the Deployment (whose checksum annotations need the registered ConfigMap)."""
    found: list[Manifest] = [
        config_map_manifest(names.STATSD, C.METRICS, config.namespace, {MAPPING_FILE: mapping_yaml()}),
        service_manifest(config),
    ]
    if config.metrics.prometheus.enabled:
        found.append(monitor_manifest(config))
    return found


@dataclass(frozen=True)
class MetricsArgs:
    config: StackConfig
    namespace: NamespaceHandle
    identity: IdentityHandle


class Metrics(pulumi.ComponentResource):
    deployment: objects.KubernetesObject

    def __init__(self, name: str, args: MetricsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:observability:Metrics", name, None, opts)
        config = args.config
        namespace = config.namespace
        mapping_config = register_config_map(
            self,
            config_map_manifest(names.STATSD, C.METRICS, namespace, {MAPPING_FILE: mapping_yaml()}),
            [args.namespace.resource],
        )
        wiring = wire(pod_spec(config), args.namespace, args.identity, [mapping_config])
        self.deployment = objects.register(
            deployment_manifest(config, wiring.annotations), objects.child_opts(self, wiring.depends_on)
        )
        for manifest in manifests(config)[1:]:
            objects.register(manifest, objects.child_opts(self, [args.namespace.resource]))
        self.register_outputs({})
