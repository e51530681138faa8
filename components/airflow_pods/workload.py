"""An Airflow Deployment: its manifest, its disruption budget, and its thin registration.

The Deployment depends on exactly the objects its pods use, found through their handles
(``kube.wiring``), and its pod template carries their checksums, so a content change rolls it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.config.model import StackConfig
from components.config.scheduling import PlacementConfig
from components.foundation.placement import placed
from components.kube import objects
from components.kube.wiring import (
    ConfigMapHandle,
    ContentHandle,
    IdentityHandle,
    NamespaceHandle,
    SecretHandle,
    wire,
)

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        DeploymentManifest,
        DeploymentSpec,
        ObjectMeta,
        PodDisruptionBudgetManifest,
        PodSpec,
    )

REPLICAS_FIELD = "spec.replicas"


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    component: str
    pod_spec: PodSpec
    replicas: int
    autoscaled: bool = False
    """An autoscaler owns the replica count: the manifest has no replicas and `pulumi up` ignores the field."""
    max_unavailable: int | str = 0
    worker_set: str | None = None
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    """The component's own placement (over the global one)."""

    @property
    def highly_available(self) -> bool:
        """Several pods (or an autoscaler's choice): a disruption budget, and pods spread over nodes and zones."""
        return self.autoscaled or self.replicas > 1

    @property
    def needs_disruption_budget(self) -> bool:
        return self.highly_available


def deployment_manifest(
    config: StackConfig,
    spec: WorkloadSpec,
    template_annotations: dict[str, str | pulumi.Output[str]],
) -> DeploymentManifest:
    """A Deployment; an autoscaled one leaves ``replicas`` to its autoscaler (KEDA, or the api-server's HPA)."""
    namespace = config.namespace
    labels = {**names.labels(spec.component, namespace, spec.worker_set), "app.kubernetes.io/version": config.image.tag}
    selector = names.selector_labels(spec.component, namespace, spec.worker_set)
    template_meta: ObjectMeta = {"labels": labels}
    if template_annotations:
        template_meta["annotations"] = template_annotations
    pod_spec = placed(config, spec.pod_spec, spec.placement, spread=selector if spec.highly_available else None)
    deployment_spec: DeploymentSpec = {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 5,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": spec.max_unavailable},
        },
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    if not spec.autoscaled:
        deployment_spec["replicas"] = spec.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names.metadata(spec.name, spec.component, namespace, namespace, extra_labels=labels),
        "spec": deployment_spec,
    }


def disruption_budget_manifest(
    config: StackConfig, name: str, component: str, worker_set: str | None = None
) -> PodDisruptionBudgetManifest:
    """At most one pod of a multi-replica workload down for voluntary disruptions (drains, upgrades)."""
    namespace = config.namespace
    selector = names.selector_labels(component, namespace, worker_set)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": names.metadata(name, component, namespace, namespace, extra_labels=selector),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }


@dataclass(frozen=True)
class RegisteredWorkload:
    deployment: objects.KubernetesObject
    disruption_budget: objects.KubernetesObject | None


def register_workload(
    parent: pulumi.ComponentResource,
    config: StackConfig,
    spec: WorkloadSpec,
    namespace: NamespaceHandle,
    identity: IdentityHandle,
    uses: Iterable[ContentHandle | None],
) -> RegisteredWorkload:
    """The Deployment waits for exactly what its pods use; its budget only for the namespace."""
    wiring = wire(spec.pod_spec, namespace, identity, uses, config.external_secrets)
    options = objects.child_opts(
        parent, wiring.depends_on, ignore_changes=[REPLICAS_FIELD] if spec.autoscaled else None
    )
    deployment = objects.register(deployment_manifest(config, spec, wiring.annotations), options)
    budget = None
    if spec.needs_disruption_budget:
        manifest = disruption_budget_manifest(config, spec.name, spec.component, spec.worker_set)
        budget = objects.register(manifest, objects.child_opts(parent, [namespace.resource]))
    return RegisteredWorkload(deployment, budget)


@dataclass(frozen=True)
class AirflowPodHandles:
    """What any Airflow pod may use; each pod's wiring keeps only what it references."""

    namespace: NamespaceHandle
    settings: ConfigMapHandle
    """airflow.cfg (a placeholder)."""
    scripts: ConfigMapHandle
    metadata: SecretHandle
    keys: SecretHandle
    connections: SecretHandle | None
    broker: SecretHandle | None
    """The Celery broker URL (CeleryExecutor)."""
    dags: ConfigMapHandle | None
    """The DAG folder (ConfigMap delivery)."""

    def content(self) -> list[ContentHandle | None]:
        return [self.settings, self.scripts, self.metadata, self.keys, self.connections, self.broker, self.dags]
