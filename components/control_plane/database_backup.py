"""A backup before each migration: a Job, one per Airflow image, that pg_dumps the metadata database onto a
retained volume claim when that image would migrate it, before any scheduler pod of the image starts.

Why a Job and not a step of the scheduler pods: several schedulers cannot share a ReadWriteOnce claim,
and `pulumi up` waits for a Job to complete before it rolls what depends on it (the scheduler, and so
the migration). The Job's name carries a digest of the image, so a new image runs a new Job and the same
image never runs it again (a finished Job is left in place: deleting it would only make Pulumi create
it again).

Two containers, in order: ``backup-needed`` (the Airflow image; one query, no Airflow start) writes the
current revision to a flag file when a migration is pending, or refuses a downgrade (exit 3: the Job
fails, `pulumi up` stops before any pod changes); ``db-backup`` (the Postgres image, whose pg_dump
matches the in-cluster server) dumps when the flag is there and keeps the newest ``backup.keep``.
Both connect directly (not through PgBouncer), with the metadata URL file only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.airflow_pods import containers as pods
from components.airflow_pods import environment as env
from components.airflow_pods.workload import AirflowPodHandles
from components.config import names
from components.config.model import StackConfig
from components.foundation.identities import identities
from components.foundation.placement import placed
from components.kube import builders, objects
from components.kube.wiring import IdentityHandle, wire

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        Container,
        JobManifest,
        PersistentVolumeClaimManifest,
        PersistentVolumeClaimSpec,
        PodSpec,
    )

C = names.Component
WORK_DIR = "/work"
BACKUPS_DIR = "/backups"
FLAG = f"{WORK_DIR}/migration-pending"
DB_BACKUP = f"{env.SCRIPTS_DIR}/db-backup.sh"
BACKUP_NEEDED = f"{env.SCRIPTS_DIR}/backup-needed.py"
JOB_DEADLINE_SECONDS = 2 * 3600
E_WAIT = names.AirflowEnv.MIGRATION_WAIT_TIMEOUT


def job_name(config: StackConfig) -> str:
    """One Job per Airflow image: a new image (tag or digest) backs up again, the same one never."""
    digest = hashlib.sha256(config.image.reference.encode()).hexdigest()[:10]
    return f"{names.DATABASE_BACKUP}-{digest}"


def dump_container(config: StackConfig) -> Container:
    backup = config.backup
    return {
        "name": "db-backup",
        "image": config.database.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["sh", DB_BACKUP],
        "env": [
            builders.env("AIRFLOW_K8S_BACKUP_FLAG", FLAG),
            builders.env("AIRFLOW_K8S_BACKUP_DIR", BACKUPS_DIR),
            builders.env("AIRFLOW_K8S_BACKUP_KEEP", str(backup.keep)),
            builders.env("AIRFLOW_K8S_DATABASE_URL_FILE", env.METADATA_URL.path),
        ],
        "resources": builders.resources(backup.resources.requests, backup.resources.limits),
        "securityContext": builders.container_security_context(),
        "volumeMounts": [
            builders.mount(pods.SCRIPTS_VOLUME, env.SCRIPTS_DIR, read_only=True),
            builders.mount("work", WORK_DIR, read_only=True),
            builders.mount("backups", BACKUPS_DIR),
            builders.mount("tmp", "/tmp"),
            env.METADATA_URL.mount(),
        ],
    }


def pod_spec(config: StackConfig) -> PodSpec:
    backup = config.backup
    check = pods.AirflowContainer(
        name="backup-needed",
        args=["python", BACKUP_NEEDED],
        resources=backup.resources,
        # directly, like the migration: the URL that does not go through PgBouncer
        credentials=(env.METADATA_URL,),
        extra_env=[
            {"name": "AIRFLOW_K8S_BACKUP_FLAG", "value": FLAG},
            {"name": E_WAIT, "value": str(config.migration_wait_timeout_seconds)},
        ],
        extra_mounts=[builders.mount("work", WORK_DIR)],
        dags=False,
    )
    identity = identities(config)[names.DATABASE_BACKUP]
    spec = pods.pod_spec(
        config,
        identity=identity,
        containers=[check],
        extra_volumes=[
            builders.empty_dir("work", "1Mi"),
            {"name": "backups", "persistentVolumeClaim": {"claimName": names.BACKUPS_CLAIM}},
        ],
        dags=False,
    )
    # the check runs first, as an init container; the dump is the Job's main container. The check reads
    # the database URL and nothing else: not the user's connections either.
    for container in spec["containers"]:
        container.pop("envFrom", None)
    spec["initContainers"] = spec["containers"]
    spec["containers"] = [dump_container(config)]
    spec["restartPolicy"] = "Never"
    return spec


def job_manifest(config: StackConfig, template_annotations: dict[str, str | pulumi.Output[str]]) -> JobManifest:
    namespace = config.namespace
    labels = names.labels(C.DATABASE_BACKUP, namespace)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": names.metadata(job_name(config), C.DATABASE_BACKUP, namespace, namespace),
        "spec": {
            # a failed backup is not retried behind the user's back: `pulumi up` reports it
            "backoffLimit": 0,
            "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": labels, "annotations": template_annotations},
                "spec": placed(config, pod_spec(config), config.database.placement),
            },
        },
    }


def claim_manifest(config: StackConfig) -> PersistentVolumeClaimManifest:
    backup = config.backup
    spec: PersistentVolumeClaimSpec = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": builders.storage_request(backup.size)},
    }
    if backup.storage_class:
        spec["storageClassName"] = backup.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": names.metadata(names.BACKUPS_CLAIM, C.DATABASE_BACKUP, config.namespace, config.namespace),
        "spec": spec,
    }


@dataclass(frozen=True)
class DatabaseBackupArgs:
    config: StackConfig
    pods: AirflowPodHandles
    identity: IdentityHandle
    database: list[pulumi.Resource]
    """What must be up first (the in-cluster Postgres)."""


class DatabaseBackup(pulumi.ComponentResource):
    job: objects.KubernetesObject

    def __init__(self, name: str, args: DatabaseBackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:DatabaseBackup", name, None, opts)
        config = args.config
        shared = args.pods
        # the backups outlive every update; protectData also refuses their deletion
        claim = objects.register(
            claim_manifest(config),
            objects.child_opts(self, [shared.namespace.resource], protect=config.protect_data, retain_on_delete=True),
        )
        wiring = wire(pod_spec(config), shared.namespace, args.identity, shared.content(), config.external_secrets)
        self.job = objects.register(
            job_manifest(config, wiring.annotations),
            objects.child_opts(self, [*wiring.depends_on, claim, *args.database]),
        )
        self.register_outputs({})
