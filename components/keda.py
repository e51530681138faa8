"""KEDA autoscaling: a ScaledObject per Celery worker set (and optionally the triggerer).

Each ScaledObject's postgresql trigger asks the metadata database how many worker pods the set's work
needs: queued and running task instances on the set's queues, divided by the set's
worker_concurrency (the same value the workers run with), against a target of 1 per pod. The
credentials come from a TriggerAuthentication that reads the plain postgresql:// URL from the core
Secret; no connection string or password appears in a ScaledObject. KEDA itself must be installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import k8s, names, rollout
from components.config import AutoscalingConfig, StackConfig, WorkerSetConfig

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


def trigger_authentication_manifest(config: StackConfig) -> k8s.Manifest:
    namespace = config.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": k8s.metadata(names.KEDA_TRIGGER_AUTH, names.Component.AUTOSCALING, namespace, namespace),
        "spec": {
            "secretTargetRef": [
                {
                    "parameter": names.KEDA_CONNECTION_PARAMETER,
                    "name": names.METADATA_SECRET,
                    "key": names.METADATA_KEDA_CONNECTION_KEY,
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


def scaled_object_manifest(config: StackConfig, scaling: Scaling) -> k8s.Manifest:
    namespace = config.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "ScaledObject",
        "metadata": k8s.metadata(scaling.target, names.Component.AUTOSCALING, namespace, namespace),
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
    if config.uses_celery:
        for worker_set in config.workers:
            target = names.worker_set(worker_set.name)
            found.append(Scaling.of(target, worker_query(config, worker_set), worker_set.autoscaling))
    if config.triggerer.autoscaling.enabled:
        found.append(Scaling.of(names.TRIGGERER, triggerer_query(config), config.triggerer.autoscaling))
    return found


@dataclass(frozen=True)
class AutoscalingArgs:
    config: StackConfig
    registry: rollout.ContentRegistry


class Autoscaling(pulumi.ComponentResource):
    """The TriggerAuthentication and ScaledObjects (the keda.sh CRDs must be installed)."""

    def __init__(self, name: str, args: AutoscalingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:executor:Autoscaling", name, None, opts)
        registry = args.registry
        self.resources: list[pulumi.CustomResource] = []
        found = scalings(args.config)
        if found:
            # KEDA reads the metadata Secret through the TriggerAuthentication
            metadata = registry.resources[("Secret", names.METADATA_SECRET)]
            authentication = k8s.register(
                trigger_authentication_manifest(args.config),
                k8s.child_opts(self, [*registry.dependencies({}), metadata]),
            )
            self.resources.append(authentication)
            for scaling in found:
                target = registry.resources[("Deployment", scaling.target)]
                manifest = scaled_object_manifest(args.config, scaling)
                self.resources.append(k8s.register(manifest, k8s.child_opts(self, [authentication, target])))
        self.register_outputs({"scaledObjects": [s.target for s in found]})
