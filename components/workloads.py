"""Registering an Airflow Deployment: checksum annotations, disruption budget, autoscaler ownership."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import airflow_pod, k8s, rollout
from components.config import StackConfig

REPLICAS_FIELD = "spec.replicas"


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    component: str
    pod_spec: k8s.Manifest
    replicas: int
    autoscaled: bool = False
    """KEDA owns the replica count: the manifest has no replicas and `pulumi up` ignores the field."""
    max_unavailable: int | str = 0
    worker_set: str | None = None


def deployment_manifest(config: StackConfig, spec: WorkloadSpec, registry: rollout.ContentRegistry) -> k8s.Manifest:
    return airflow_pod.deployment_manifest(
        config,
        spec.name,
        spec.component,
        spec.pod_spec,
        replicas=None if spec.autoscaled else spec.replicas,
        template_annotations=rollout.checksum_annotations(spec.pod_spec, registry),
        max_unavailable=spec.max_unavailable,
        worker_set=spec.worker_set,
    )


def needs_disruption_budget(spec: WorkloadSpec) -> bool:
    return spec.autoscaled or spec.replicas > 1


def register_deployment(
    parent: pulumi.ComponentResource,
    config: StackConfig,
    spec: WorkloadSpec,
    registry: rollout.ContentRegistry,
) -> list[pulumi.CustomResource]:
    """The Deployment waits for exactly what its pods reference; its budget only for the namespace."""
    options = k8s.child_opts(
        parent,
        registry.dependencies(spec.pod_spec),
        ignore_changes=[REPLICAS_FIELD] if spec.autoscaled else None,
    )
    deployment = k8s.register(deployment_manifest(config, spec, registry), options)
    registry.add("Deployment", spec.name, deployment)
    registered = [deployment]
    if needs_disruption_budget(spec):
        budget = airflow_pod.disruption_budget_manifest(config, spec.name, spec.component, spec.worker_set)
        registered.append(k8s.register(budget, k8s.child_opts(parent, registry.dependencies({}))))
    return registered
