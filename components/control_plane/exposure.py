"""The way in: the api-server (UI, REST API, login) behind an Ingress and/or a Gateway API HTTPRoute.

Both route ``apiServer.baseUrl``'s host(s) and path to the api-server Service, unchanged: Airflow serves
under the base URL's path itself (``[api] base_url``), so nothing strips the prefix. TLS is the
Ingress's (an existing Secret, or cert-manager's from an issuer annotation) or the Gateway listener's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pulumi

from components.config import names
from components.config.model import StackConfig
from components.kube import objects
from components.kube.wiring import NamespaceHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        HTTPRouteManifest,
        HTTPRouteSpecParentRefsItem,
        IngressManifest,
        IngressRule,
        IngressSpec,
        IngressTLS,
        Manifest,
    )

C = names.Component
HTTP_PORT_NAME = "http"
CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
ISSUER_ANNOTATION = "cert-manager.io/issuer"
GATEWAY_GROUP = "gateway.networking.k8s.io"


def public_host(config: StackConfig) -> str:
    assert config.api_server.base_url is not None, "validated: exposure needs apiServer.baseUrl"
    return urlsplit(config.api_server.base_url).hostname or ""


def public_path(config: StackConfig) -> str:
    """The path prefix routed to Airflow: the base URL's path, "/" at the root."""
    assert config.api_server.base_url is not None, "validated: exposure needs apiServer.baseUrl"
    return urlsplit(config.api_server.base_url).path.rstrip("/") or "/"


def ingress_hosts(config: StackConfig) -> list[str]:
    return list(dict.fromkeys([public_host(config), *config.api_server.ingress.extra_hosts]))


def route_hostnames(config: StackConfig) -> list[str]:
    return list(dict.fromkeys([public_host(config), *config.api_server.http_route.extra_hostnames]))


def tls_secret_name(config: StackConfig) -> str | None:
    tls = config.api_server.ingress.tls
    if tls is None:
        return None
    return tls.secret_name or names.API_SERVER_TLS_SECRET


def ingress_manifest(config: StackConfig) -> IngressManifest:
    ingress = config.api_server.ingress
    annotations = dict(sorted(ingress.annotations.items()))
    if ingress.tls is not None and ingress.tls.cluster_issuer:
        annotations[CLUSTER_ISSUER_ANNOTATION] = ingress.tls.cluster_issuer
    if ingress.tls is not None and ingress.tls.issuer:
        annotations[ISSUER_ANNOTATION] = ingress.tls.issuer
    path = public_path(config)
    rules: list[IngressRule] = [
        {
            "host": host,
            "http": {
                "paths": [
                    {
                        "path": path,
                        "pathType": "Prefix",
                        "backend": {"service": {"name": names.API_SERVER, "port": {"name": HTTP_PORT_NAME}}},
                    }
                ]
            },
        }
        for host in ingress_hosts(config)
    ]
    spec: IngressSpec = {"rules": rules}
    if ingress.class_name is not None:
        spec["ingressClassName"] = ingress.class_name
    secret = tls_secret_name(config)
    if secret is not None:
        tls: list[IngressTLS] = [{"hosts": ingress_hosts(config), "secretName": secret}]
        spec["tls"] = tls
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": names.metadata(names.API_SERVER, C.EXPOSURE, config.namespace, config.namespace, annotations),
        "spec": spec,
    }


def http_route_manifest(config: StackConfig) -> HTTPRouteManifest:
    route = config.api_server.http_route
    parents: list[HTTPRouteSpecParentRefsItem] = []
    for parent in route.parent_refs:
        ref: HTTPRouteSpecParentRefsItem = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": parent.name}
        if parent.namespace is not None:
            ref["namespace"] = parent.namespace
        if parent.section_name is not None:
            ref["sectionName"] = parent.section_name
        parents.append(ref)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": names.metadata(names.API_SERVER, C.EXPOSURE, config.namespace, config.namespace),
        "spec": {
            "parentRefs": parents,
            "hostnames": route_hostnames(config),
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": public_path(config)}}],
                    "backendRefs": [
                        {"group": "", "kind": "Service", "name": names.API_SERVER, "port": names.API_SERVER_PORT}
                    ],
                }
            ],
        },
    }


def manifests(config: StackConfig) -> list[Manifest]:
    found: list[Manifest] = []
    if config.api_server.ingress.enabled:
        found.append(ingress_manifest(config))
    if config.api_server.http_route.enabled:
        found.append(http_route_manifest(config))
    return found


@dataclass(frozen=True)
class ExposureArgs:
    config: StackConfig
    namespace: NamespaceHandle
    service: pulumi.Resource
    """The api-server Service the routes point at."""


class Exposure(pulumi.ComponentResource):
    def __init__(self, name: str, args: ExposureArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:Exposure", name, None, opts)
        found = manifests(args.config)
        for manifest in found:
            objects.register(manifest, objects.child_opts(self, [args.namespace.resource, args.service]))
        self.register_outputs({"objects": [f"{m['kind']}/{m['metadata']['name']}" for m in found]})
