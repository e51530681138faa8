"""Database hygiene: a CronJob that runs `airflow db clean`, so the metadata database does not grow forever.

The job's pod is an Airflow pod like the others (hardened, the database URL mounted as a file and read
through its ``_CMD`` setting, nothing else), under its own identity with no RBAC and no API token; its
NetworkPolicy lets it reach Postgres and nothing else. It waits for the schema first, like every
Airflow pod, so a run during an upgrade does not clean a half-migrated database.
"""

from __future__ import annotations

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
from components.kube import objects
from components.kube.wiring import IdentityHandle, wire

if TYPE_CHECKING:
    from components.kube.manifest_types import CronJobManifest, PodSpec

E = names.AirflowEnv
C = names.Component
CONTAINER = "db-clean"
JOB_DEADLINE_SECONDS = 3 * 3600
"""A run that takes longer is stopped (and retried at the next schedule), never left holding locks."""


def pod_spec(config: StackConfig) -> PodSpec:
    cleanup = config.database_cleanup
    clean = pods.AirflowContainer(
        name=CONTAINER,
        args=["bash", env.DB_CLEAN],
        resources=cleanup.resources,
        credentials=env.database_cleanup_credentials(config),
        extra_env=[{"name": E.DB_CLEAN_RETENTION_DAYS, "value": str(cleanup.retention_days)}],
        dags=False,
    )
    identity = identities(config)[names.DATABASE_CLEANUP]
    spec = pods.pod_spec(
        config,
        identity=identity,
        containers=[clean],
        init_containers=[pods.wait_for_migrations(config, cleanup.resources)],
        dags=False,
    )
    spec["restartPolicy"] = "Never"
    return spec


def cron_job_manifest(
    config: StackConfig, template_annotations: dict[str, str | pulumi.Output[str]]
) -> CronJobManifest:
    cleanup = config.database_cleanup
    namespace = config.namespace
    labels = names.labels(C.DATABASE_CLEANUP, namespace)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": names.metadata(names.DATABASE_CLEANUP, C.DATABASE_CLEANUP, namespace, namespace),
        "spec": {
            "schedule": cleanup.schedule,
            "timeZone": "Etc/UTC",
            # one run at a time: a slow clean is not joined by the next one
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
                    "template": {
                        "metadata": {"labels": labels, "annotations": template_annotations},
                        "spec": placed(config, pod_spec(config), cleanup.placement),
                    },
                },
            },
        },
    }


@dataclass(frozen=True)
class DatabaseCleanupArgs:
    config: StackConfig
    pods: AirflowPodHandles
    identity: IdentityHandle


class DatabaseCleanup(pulumi.ComponentResource):
    cron_job: objects.KubernetesObject

    def __init__(self, name: str, args: DatabaseCleanupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:DatabaseCleanup", name, None, opts)
        config = args.config
        shared = args.pods
        wiring = wire(pod_spec(config), shared.namespace, args.identity, shared.content(), config.external_secrets)
        self.cron_job = objects.register(
            cron_job_manifest(config, wiring.annotations), objects.child_opts(self, wiring.depends_on)
        )
        self.register_outputs({})
