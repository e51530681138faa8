"""Least-privilege identities: one ServiceAccount per workload, namespace-scoped Roles, no wildcards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.config.model import StackConfig
from components.kube import objects
from components.kube.wiring import IdentityHandle, NamespaceHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        Manifest,
        PolicyRule,
        RoleBindingManifest,
        RoleManifest,
        ServiceAccountManifest,
    )

POD_LAUNCHER_RULES: list[PolicyRule] = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    # The KubernetesPodOperator reads a task's XCom through exec into its sidecar.
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
]

POD_LOG_READER_RULES: list[PolicyRule] = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


@dataclass(frozen=True)
class Identity:
    name: str
    component: str
    launches_pods: bool = False
    reads_pod_logs: bool = False
    handles_task_logs: bool = False
    """Writes or reads task logs in the log store (gets logging.remote.serviceAccountAnnotations)."""

    @property
    def calls_kubernetes_api(self) -> bool:
        return self.launches_pods or self.reads_pod_logs


def identities(config: StackConfig) -> dict[str, Identity]:
    """Every ServiceAccount the stack needs, keyed by name, with what it may do."""
    kubernetes_executor = config.uses_kubernetes_executor
    found = [
        # With the KubernetesExecutor the UI shows logs of running task pods through the API.
        Identity(
            names.API_SERVER, names.Component.API_SERVER, reads_pod_logs=kubernetes_executor, handles_task_logs=True
        ),
        # The scheduler launches task pods (KubernetesExecutor) or runs tasks itself (LocalExecutor,
        # where a KubernetesPodOperator task launches its pod from the scheduler).
        Identity(
            names.SCHEDULER,
            names.Component.SCHEDULER,
            launches_pods=kubernetes_executor or config.runs_tasks_in_scheduler,
            handles_task_logs=config.runs_tasks_in_scheduler,
        ),
        Identity(names.DAG_PROCESSOR, names.Component.DAG_PROCESSOR),
        # Deferrable KubernetesPodOperator tasks watch (and clean up) their pods from the triggerer.
        Identity(names.TRIGGERER, names.Component.TRIGGERER, launches_pods=True, handles_task_logs=True),
        # KubernetesPodOperator pods run user images and never need the API.
        Identity(names.TASK_POD, names.Component.KUBERNETES_TASK),
    ]
    if config.uses_celery or kubernetes_executor:
        found.append(Identity(names.WORKER, names.Component.WORKER, launches_pods=True, handles_task_logs=True))
    if config.in_cluster_database:
        found.append(Identity(names.POSTGRES, names.Component.POSTGRES))
    if config.uses_celery:
        found.append(Identity(names.REDIS, names.Component.REDIS))
    if config.database_cleanup.enabled:
        found.append(Identity(names.DATABASE_CLEANUP, names.Component.DATABASE_CLEANUP))
    if config.backup.enabled:
        found.append(Identity(names.DATABASE_BACKUP, names.Component.DATABASE_BACKUP))
    if config.metrics.enabled:
        found.append(Identity(names.STATSD, names.Component.METRICS))
    if config.uses_pgbouncer:
        found.append(Identity(names.PGBOUNCER, names.Component.PGBOUNCER))
    return {identity.name: identity for identity in found}


def service_account_manifest(
    identity: Identity, namespace: str, annotations: dict[str, str] | None = None
) -> ServiceAccountManifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": names.metadata(identity.name, identity.component, namespace, namespace, annotations),
        "automountServiceAccountToken": identity.calls_kubernetes_api,
    }


def annotations_of(config: StackConfig, identity: Identity) -> dict[str, str] | None:
    """Workload identity for the log store (IRSA, GKE Workload Identity) on the accounts that use it."""
    remote = config.logging.remote
    if remote.enabled and identity.handles_task_logs and remote.service_account_annotations:
        return dict(sorted(remote.service_account_annotations.items()))
    return None


def role_manifest(name: str, rules: list[PolicyRule], namespace: str) -> RoleManifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": names.metadata(name, names.Component.RBAC, namespace, namespace),
        "rules": rules,
    }


def role_binding_manifest(identity: Identity, role: str, namespace: str) -> RoleBindingManifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": names.metadata(names.role_binding(identity.name, role), names.Component.RBAC, namespace, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": identity.name, "namespace": namespace}],
    }


def rbac_manifests(config: StackConfig) -> list[Manifest]:
    namespace = config.namespace
    found = identities(config)
    manifests: list[Manifest] = [
        service_account_manifest(identity, namespace, annotations_of(config, identity)) for identity in found.values()
    ]
    launchers = [identity for identity in found.values() if identity.launches_pods]
    log_readers = [identity for identity in found.values() if identity.reads_pod_logs]
    if launchers:
        manifests.append(role_manifest(names.POD_LAUNCHER_ROLE, POD_LAUNCHER_RULES, namespace))
        manifests += [role_binding_manifest(i, names.POD_LAUNCHER_ROLE, namespace) for i in launchers]
    if log_readers:
        manifests.append(role_manifest(names.POD_LOG_READER_ROLE, POD_LOG_READER_RULES, namespace))
        manifests += [role_binding_manifest(i, names.POD_LOG_READER_ROLE, namespace) for i in log_readers]
    return manifests


@dataclass(frozen=True)
class IdentitiesArgs:
    config: StackConfig
    namespace: NamespaceHandle


class Identities(pulumi.ComponentResource):
    """The ServiceAccounts, Roles and RoleBindings; ``handles`` by ServiceAccount name."""

    handles: dict[str, IdentityHandle]

    def __init__(self, name: str, args: IdentitiesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:foundation:Identities", name, None, opts)
        registered: dict[tuple[str, str], pulumi.Resource] = {}
        for manifest in rbac_manifests(args.config):
            # A binding must not exist before the role and account it names.
            depends_on: list[pulumi.Resource] = [args.namespace.resource]
            if manifest["kind"] == "RoleBinding":
                depends_on += [registered[("Role", manifest.get("roleRef", {}).get("name", ""))]]
                depends_on += [registered[("ServiceAccount", s["name"])] for s in manifest.get("subjects", [])]
            key = (manifest["kind"], manifest["metadata"]["name"])
            registered[key] = objects.register(manifest, objects.child_opts(self, depends_on))
        self.handles = {
            identity.name: IdentityHandle(
                identity.name, identity.calls_kubernetes_api, registered[("ServiceAccount", identity.name)]
            )
            for identity in identities(args.config).values()
        }
        self.register_outputs({"serviceAccounts": sorted(self.handles)})
