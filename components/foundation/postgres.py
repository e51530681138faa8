"""The in-cluster metadata database: a one-replica Postgres StatefulSet behind a headless Service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.config.model import StackConfig
from components.foundation.placement import placed
from components.kube import builders, objects
from components.kube.wiring import IdentityHandle, NamespaceHandle, SecretHandle, wire

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        Container,
        ObjectMeta,
        PersistentVolumeClaim,
        PersistentVolumeClaimSpec,
        PodSpec,
        Probe,
        ServiceManifest,
        StatefulSetManifest,
    )

POSTGRES_UID = 999
"""The official image's postgres user (Debian variant)."""
DATA_PATH = "/var/lib/postgresql/data"
PGDATA = f"{DATA_PATH}/pgdata"
"""A subdirectory, because a fresh volume's root may hold lost+found, which initdb refuses."""
DATA_VOLUME = "data"
CREDENTIALS_DIR = "/etc/postgres-credentials"
# Changing the claim template would force the StatefulSet's replacement; a resize is done on the PVC.
IGNORED_FIELDS = ["spec.volumeClaimTemplates"]


def pg_isready(config: StackConfig) -> list[str]:
    db = config.database
    return [
        "pg_isready",
        "--host",
        "127.0.0.1",
        "--port",
        str(names.POSTGRES_PORT),
        "--username",
        db.user,
        "--dbname",
        db.database_name,
    ]


def service_manifest(config: StackConfig) -> ServiceManifest:
    namespace = config.namespace
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.metadata(names.POSTGRES, names.Component.POSTGRES, namespace, namespace),
        "spec": {
            # Headless: NAME.NAMESPACE.svc.cluster.local resolves straight to the ready Postgres pod.
            "clusterIP": "None",
            "ports": [{"name": "postgres", "port": names.POSTGRES_PORT, "protocol": "TCP", "targetPort": "postgres"}],
            "selector": names.selector_labels(names.Component.POSTGRES, namespace),
        },
    }


def pod_spec(config: StackConfig) -> PodSpec:
    db = config.database
    probe_command: Probe = {"exec": {"command": pg_isready(config)}}
    container: Container = {
        "name": "postgres",
        "image": db.image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            builders.env("POSTGRES_USER", db.user),
            builders.env("POSTGRES_DB", db.database_name),
            # The image's entrypoint reads the password from a file: it never enters the environment.
            builders.env("POSTGRES_PASSWORD_FILE", f"{CREDENTIALS_DIR}/{names.POSTGRES_PASSWORD_KEY}"),
            builders.env("PGDATA", PGDATA),
        ],
        "ports": [{"name": "postgres", "containerPort": names.POSTGRES_PORT, "protocol": "TCP"}],
        "resources": builders.resources(db.resources.requests, db.resources.limits),
        "securityContext": builders.container_security_context(),
        # initdb on first start can take a while on slow volumes.
        "startupProbe": {**probe_command, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**probe_command, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe_command, "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 6},
        "volumeMounts": [
            builders.mount(DATA_VOLUME, DATA_PATH),
            builders.mount("credentials", CREDENTIALS_DIR, read_only=True),
            builders.mount("run", "/var/run/postgresql"),
            builders.mount("tmp", "/tmp"),
            builders.mount("shm", "/dev/shm"),
        ],
    }
    return {
        "serviceAccountName": names.POSTGRES,
        "automountServiceAccountToken": False,
        "securityContext": builders.pod_security_context(POSTGRES_UID, POSTGRES_UID, POSTGRES_UID),
        # Postgres shuts down cleanly on SIGTERM once it has checkpointed; give it the time.
        "terminationGracePeriodSeconds": 120,
        "containers": [container],
        "volumes": [
            {
                "name": "credentials",
                "secret": {
                    "secretName": names.POSTGRES_SECRET,
                    "items": [{"key": names.POSTGRES_PASSWORD_KEY, "path": names.POSTGRES_PASSWORD_KEY}],
                    "defaultMode": 0o440,
                },
            },
            builders.empty_dir("run", "16Mi"),
            builders.empty_dir("tmp", "256Mi"),
            builders.empty_dir("shm", "256Mi", medium="Memory"),
        ],
    }


def volume_claim_template(config: StackConfig) -> PersistentVolumeClaim:
    db = config.database
    spec: PersistentVolumeClaimSpec = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": builders.storage_request(db.storage_size)},
    }
    if db.storage_class is not None:
        spec["storageClassName"] = db.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": DATA_VOLUME, "labels": names.labels(names.Component.POSTGRES, config.namespace)},
        "spec": spec,
    }


def statefulset_manifest(
    config: StackConfig, annotations: dict[str, str | pulumi.Output[str]] | None = None
) -> StatefulSetManifest:
    namespace = config.namespace
    selector = names.selector_labels(names.Component.POSTGRES, namespace)
    template_meta: ObjectMeta = {"labels": names.labels(names.Component.POSTGRES, namespace)}
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": names.metadata(names.POSTGRES, names.Component.POSTGRES, namespace, namespace),
        "spec": {
            "serviceName": names.POSTGRES,
            "replicas": 1,
            "selector": {"matchLabels": selector},
            # The claim outlives the StatefulSet: deleting or scaling it never deletes the data.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": template_meta,
                "spec": placed(config, pod_spec(config), config.database.placement),
            },
            "volumeClaimTemplates": [volume_claim_template(config)],
        },
    }


@dataclass(frozen=True)
class PostgresArgs:
    config: StackConfig
    namespace: NamespaceHandle
    identity: IdentityHandle
    credentials: SecretHandle


class Postgres(pulumi.ComponentResource):
    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:foundation:Postgres", name, None, opts)
        config = args.config
        spec = pod_spec(config)
        wiring = wire(spec, args.namespace, args.identity, [args.credentials])
        self.service = objects.register(service_manifest(config), objects.child_opts(self, [args.namespace.resource]))
        self.statefulset = objects.register(
            statefulset_manifest(config, wiring.annotations),
            objects.child_opts(
                self,
                [*wiring.depends_on, self.service],
                protect=config.protect_data,
                ignore_changes=IGNORED_FIELDS,
            ),
        )
        self.dns_name = names.dns_name(names.POSTGRES, config.namespace)
        self.register_outputs({"dnsName": self.dns_name})
