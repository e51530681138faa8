"""A small evaluator of Kubernetes NetworkPolicy semantics, to check paths through the stack's policies.

A connection from a pod to a pod (or an IP) on a port is allowed when the source's egress and the
destination's ingress both allow it; a pod selected by no policy of a direction is not isolated in it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    namespace: str | None
    labels: dict[str, str] = field(default_factory=lambda: {})
    ip: str = "10.244.0.10"
    namespace_labels: dict[str, str] = field(default_factory=lambda: {})

    @property
    def in_cluster_pod(self) -> bool:
        return self.namespace is not None


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excluded) for excluded in block.get("except", [])
        )
    if not other.in_cluster_pod:
        return False
    if "namespaceSelector" in peer:
        if not matches(
            peer["namespaceSelector"], {"kubernetes.io/metadata.name": other.namespace or "", **other.namespace_labels}
        ):
            return False
    elif other.namespace != policy_namespace:
        return False
    return matches(peer.get("podSelector", {}), other.labels)


def port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    return not ports or any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports)


def direction_allows(
    policies: list[dict[str, Any]], subject: Endpoint, other: Endpoint, port: int, protocol: str, direction: str
) -> bool:
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and direction in p["spec"]["policyTypes"]
        and matches(p["spec"]["podSelector"], subject.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            if (
                not peers or any(peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in peers)
            ) and port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def allowed(
    policies: list[dict[str, Any]], source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    egress = not source.in_cluster_pod or direction_allows(policies, source, destination, port, protocol, "Egress")
    ingress = not destination.in_cluster_pod or direction_allows(
        policies, destination, source, port, protocol, "Ingress"
    )
    return egress and ingress
