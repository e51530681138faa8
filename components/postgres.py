"""The in-cluster metadata database: a one-replica Postgres StatefulSet behind a headless Service."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import k8s, names, rollout
from components.config import StackConfig

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


def service_manifest(config: StackConfig) -> k8s.Manifest:
    namespace = config.namespace
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": k8s.metadata(names.POSTGRES, names.Component.POSTGRES, namespace, namespace),
        "spec": {
            # Headless: NAME.NAMESPACE.svc.cluster.local resolves straight to the ready Postgres pod.
            "clusterIP": "None",
            "ports": [{"name": "postgres", "port": names.POSTGRES_PORT, "protocol": "TCP", "targetPort": "postgres"}],
            "selector": names.selector_labels(names.Component.POSTGRES, namespace),
        },
    }


def pod_spec(config: StackConfig) -> k8s.Manifest:
    db = config.database
    probe_command = {"exec": {"command": pg_isready(config)}}
    container = {
        "name": "postgres",
        "image": db.image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            k8s.env("POSTGRES_USER", db.user),
            k8s.env("POSTGRES_DB", db.database_name),
            # The image's entrypoint reads the password from a file: it never enters the environment.
            k8s.env("POSTGRES_PASSWORD_FILE", f"{CREDENTIALS_DIR}/{names.POSTGRES_PASSWORD_KEY}"),
            k8s.env("PGDATA", PGDATA),
        ],
        "ports": [{"name": "postgres", "containerPort": names.POSTGRES_PORT, "protocol": "TCP"}],
        "resources": k8s.resources(db.resources),
        "securityContext": k8s.container_security_context(),
        # initdb on first start can take a while on slow volumes.
        "startupProbe": {**probe_command, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**probe_command, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe_command, "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 6},
        "volumeMounts": [
            k8s.mount(DATA_VOLUME, DATA_PATH),
            k8s.mount("credentials", CREDENTIALS_DIR, read_only=True),
            k8s.mount("run", "/var/run/postgresql"),
            k8s.mount("tmp", "/tmp"),
            k8s.mount("shm", "/dev/shm"),
        ],
    }
    return {
        "serviceAccountName": names.POSTGRES,
        "automountServiceAccountToken": False,
        "securityContext": k8s.pod_security_context(POSTGRES_UID, POSTGRES_UID, POSTGRES_UID),
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
            k8s.empty_dir("run", "16Mi"),
            k8s.empty_dir("tmp", "256Mi"),
            k8s.empty_dir("shm", "256Mi", medium="Memory"),
        ],
    }


def volume_claim_template(config: StackConfig) -> k8s.Manifest:
    db = config.database
    assert db.storage_size is not None, "validated: in-cluster mode has a storage size"
    spec: k8s.Manifest = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": db.storage_size}},
    }
    if db.storage_class is not None:
        spec["storageClassName"] = db.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": DATA_VOLUME, "labels": names.labels(names.Component.POSTGRES, config.namespace)},
        "spec": spec,
    }


def statefulset_manifest(config: StackConfig, annotations: dict[str, object] | None = None) -> k8s.Manifest:
    namespace = config.namespace
    selector = names.selector_labels(names.Component.POSTGRES, namespace)
    template_meta: k8s.Manifest = {"labels": names.labels(names.Component.POSTGRES, namespace)}
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": k8s.metadata(names.POSTGRES, names.Component.POSTGRES, namespace, namespace),
        "spec": {
            "serviceName": names.POSTGRES,
            "replicas": 1,
            "selector": {"matchLabels": selector},
            # The claim outlives the StatefulSet: deleting or scaling it never deletes the data.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {"metadata": template_meta, "spec": pod_spec(config)},
            "volumeClaimTemplates": [volume_claim_template(config)],
        },
    }


@dataclass(frozen=True)
class PostgresArgs:
    config: StackConfig
    registry: rollout.ContentRegistry


class Postgres(pulumi.ComponentResource):
    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:database:Postgres", name, None, opts)
        config = args.config
        spec = pod_spec(config)
        self.service = k8s.register(service_manifest(config), k8s.child_opts(self, args.registry.dependencies({})))
        annotations = rollout.checksum_annotations(spec, args.registry)
        self.statefulset = k8s.register(
            statefulset_manifest(config, annotations),
            k8s.child_opts(
                self,
                [*args.registry.dependencies(spec), self.service],
                protect=config.protect_data,
                ignore_changes=IGNORED_FIELDS,
            ),
        )
        self.dns_name = names.dns_name(names.POSTGRES, config.namespace)
        self.register_outputs({"dnsName": self.dns_name})
