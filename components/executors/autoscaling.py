"""KEDA autoscaling: a ScaledObject per Celery worker set (and optionally the triggerer).

Each ScaledObject's postgresql trigger asks the metadata database how many worker pods the set's work
needs: queued and running task instances on the set's queues, divided by the set's
worker_concurrency (the same value the workers run with), against a target of 1 per pod. KEDA logs
in as its own role, which may only SELECT task_instance and trigger (the scheduler's migration step
keeps it so); a TriggerAuthentication reads that login's URL from its own Secret, so no connection
string or password appears in a ScaledObject. KEDA itself must be installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.config.model import AutoscalingConfig, StackConfig, WorkerSetConfig
from components.kube import objects
from components.kube.wiring import NamespaceHandle, SecretHandle, WiringError

if TYPE_CHECKING:
    from components.kube.manifest_types import ScaledObjectManifest, TriggerAuthenticationManifest

API_VERSION = "keda.sh/v1alpha1"
TARGET_QUERY_VALUE = "1"
KUBERNETES_EXECUTOR_NAMES = (
    "KubernetesExecutor",
    "airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor",
)


def _sql_list(values: list[str] | tuple[str, ...]) -> str:
    # Queue names are validated to [A-Za-z0-9_.-]; quoting still doubles any quote, defensively.
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def worker_query(config: StackConfig, worker_set: WorkerSetConfig) -> str:
    """Pods the set needs now: ceil((queued + running task instances on its queues) / concurrency)."""
    conditions = ["state IN ('queued', 'running')", f"queue IN ({_sql_list(worker_set.queues)})"]
    if config.uses_kubernetes_executor:
        # Multi-executor: a task without an executor goes to the default (CeleryExecutor, listed
        # first); tasks assigned to the KubernetesExecutor never reach a Celery worker.
        conditions.append(f"(executor IS NULL OR executor NOT IN ({_sql_list(KUBERNETES_EXECUTOR_NAMES)}))")
    where = "\n  AND ".join(conditions)
    return f"SELECT ceil(COUNT(*)::decimal / {worker_set.concurrency})\nFROM task_instance\nWHERE {where}"


def triggerer_query(config: StackConfig) -> str:
    """Triggerers needed: ceil(triggers / [triggerer] capacity)."""
    return f"SELECT ceil(COUNT(*)::decimal / {config.triggerer.capacity})\nFROM trigger"


def trigger_authentication_manifest(config: StackConfig) -> TriggerAuthenticationManifest:
    namespace = config.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": names.metadata(names.KEDA_TRIGGER_AUTH, names.Component.AUTOSCALING, namespace, namespace),
        "spec": {
            "secretTargetRef": [
                {
                    "parameter": names.KEDA_CONNECTION_PARAMETER,
                    "name": names.KEDA_DATABASE_SECRET,
                    "key": names.KEDA_CONNECTION_KEY,
                }
            ]
        },
    }


@dataclass(frozen=True)
class Scaling:
    target: str
    query: str
    min_replicas: int
    max_replicas: int
    polling_interval: int
    cooldown_period: int

    @classmethod
    def of(cls, target: str, query: str, autoscaling: AutoscalingConfig) -> Scaling:
        return cls(
            target=target,
            query=query,
            min_replicas=autoscaling.min_replicas,
            max_replicas=autoscaling.max_replicas,
            polling_interval=autoscaling.polling_interval,
            cooldown_period=autoscaling.cooldown_period,
        )


def scaled_object_manifest(config: StackConfig, scaling: Scaling) -> ScaledObjectManifest:
    namespace = config.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "ScaledObject",
        "metadata": names.metadata(scaling.target, names.Component.AUTOSCALING, namespace, namespace),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": scaling.target},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": scaling.polling_interval,
            "cooldownPeriod": scaling.cooldown_period,
            "triggers": [
                {
                    "type": "postgresql",
                    "metadata": {"query": scaling.query, "targetQueryValue": TARGET_QUERY_VALUE},
                    "authenticationRef": {"name": names.KEDA_TRIGGER_AUTH},
                }
            ],
        },
    }


def scalings(config: StackConfig) -> list[Scaling]:
    if not config.keda.enabled:
        return []
    found: list[Scaling] = []
    if config.celery_autoscaled:
        for worker_set in config.workers:
            target = names.worker_set(worker_set.name)
            found.append(Scaling.of(target, worker_query(config, worker_set), worker_set.autoscaling))
    if config.triggerer_autoscaled:
        found.append(Scaling.of(names.TRIGGERER, triggerer_query(config), config.triggerer.autoscaling))
    return found


@dataclass(frozen=True)
class AutoscalingArgs:
    config: StackConfig
    namespace: NamespaceHandle
    login: SecretHandle
    """KEDA's own read-only database login, which the TriggerAuthentication reads its URL from."""
    targets: Mapping[str, pulumi.Resource]
    """The Deployments KEDA scales, by name."""


class Autoscaling(pulumi.ComponentResource):
    """The TriggerAuthentication and ScaledObjects (the keda.sh CRDs must be installed)."""

    def __init__(self, name: str, args: AutoscalingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:executors:Autoscaling", name, None, opts)
        found = scalings(args.config)
        missing = sorted(scaling.target for scaling in found if scaling.target not in args.targets)
        if missing:
            raise WiringError(f"no Deployment handle for the scaled workloads {missing}")
        if names.KEDA_CONNECTION_KEY not in args.login.keys:
            raise WiringError(f"Secret {args.login.name!r} has no key {names.KEDA_CONNECTION_KEY!r}")
        # KEDA reads its login through the TriggerAuthentication: its own role, read-only.
        authentication = objects.register(
            trigger_authentication_manifest(args.config),
            objects.child_opts(self, [args.namespace.resource, args.login.resource]),
        )
        for scaling in found:
            manifest = scaled_object_manifest(args.config, scaling)
            objects.register(manifest, objects.child_opts(self, [authentication, args.targets[scaling.target]]))
        self.register_outputs({"scaledObjects": [s.target for s in found]})
