"""The way out: stable in-cluster names for services outside the cluster (``externalServices``).

Tasks reach ``NAME.NAMESPACE.svc.cluster.local`` instead of a hard-coded address:
- IP addresses: a Service without a selector, and an EndpointSlice per IP family listing the addresses.
  The slice is labelled as the stack's (``endpointslice.kubernetes.io/managed-by``), so the EndpointSlice
  controllers leave it alone.
- A DNS name: an ExternalName Service (a CNAME; clients connect to what the name resolves to).
The NetworkPolicies open exactly these addresses and ports (``network_policies.allowed_paths``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.config.model import ExternalServiceConfig, StackConfig
from components.kube import objects
from components.kube.wiring import NamespaceHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import EndpointSliceManifest, Manifest, ServiceManifest, ServicePort

C = names.Component
SLICE_MANAGER = "airflow-k8s"
"""Value of endpointslice.kubernetes.io/managed-by: not a controller's, so none of them adopts the slice."""


def port_name(port: int) -> str:
    return f"tcp-{port}"


def service_manifest(config: StackConfig, service: ExternalServiceConfig) -> ServiceManifest:
    ports: list[ServicePort] = [
        {"name": port_name(port), "port": port, "protocol": "TCP", "targetPort": port} for port in service.ports
    ]
    metadata = names.metadata(service.name, C.EXTERNAL_SERVICE, config.namespace, config.namespace)
    if service.dns_name is not None:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {"type": "ExternalName", "externalName": service.dns_name, "ports": ports},
        }
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {"type": "ClusterIP", "ports": ports}}


def endpoint_slices(config: StackConfig, service: ExternalServiceConfig) -> list[EndpointSliceManifest]:
    by_family: dict[str, list[str]] = {}
    for ip in service.ips:
        by_family.setdefault("IPv4" if isinstance(ip, ipaddress.IPv4Address) else "IPv6", []).append(str(ip))
    found: list[EndpointSliceManifest] = []
    for family, addresses in sorted(by_family.items()):
        found.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": names.metadata(
                    f"{service.name}-{family.lower()}",
                    C.EXTERNAL_SERVICE,
                    config.namespace,
                    config.namespace,
                    extra_labels={
                        "kubernetes.io/service-name": service.name,
                        "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER,
                    },
                ),
                "addressType": family,
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}} for address in addresses],
                "ports": [{"name": port_name(port), "port": port, "protocol": "TCP"} for port in service.ports],
            }
        )
    return found


def manifests(config: StackConfig) -> list[Manifest]:
    found: list[Manifest] = []
    for service in config.external_services:
        found.append(service_manifest(config, service))
        found += endpoint_slices(config, service)
    return found


def egress_peers(service: ExternalServiceConfig) -> list[str]:
    """The CIDRs a NetworkPolicy opens for the service: each IP exactly, or the DNS name's CIDRs."""
    if service.dns_name is not None:
        return list(service.egress_cidrs)
    return [str(ipaddress.ip_network(ip)) for ip in service.ips]


@dataclass(frozen=True)
class ExternalServicesArgs:
    config: StackConfig
    namespace: NamespaceHandle


class ExternalServices(pulumi.ComponentResource):
    def __init__(self, name: str, args: ExternalServicesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:foundation:ExternalServices", name, None, opts)
        found = manifests(args.config)
        for manifest in found:
            opts_for = objects.child_opts(self, [args.namespace.resource])
            objects.register(manifest, opts_for)
        self.register_outputs({"services": [service.name for service in args.config.external_services]})
