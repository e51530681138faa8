"""The dag-processor: parses DAG files and stores them serialized in the metadata database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.airflow_pods import containers as pods
from components.airflow_pods import environment as env
from components.airflow_pods.workload import AirflowPodHandles, WorkloadSpec, register_workload
from components.config import names
from components.config.model import StackConfig
from components.foundation.identities import identities
from components.kube import objects
from components.kube.wiring import IdentityHandle

if TYPE_CHECKING:
    from components.kube.manifest_types import PodSpec


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> PodSpec:
    resources = config.dag_processor.resources
    processor = pods.AirflowContainer(
        name="dag-processor",
        args=["airflow", "dag-processor"],
        resources=resources,
        credentials=env.dag_processor_credentials(config),
        probes=pods.jobs_check_probes("DagProcessorJob"),
        clones_dags=True,
    )
    identity = identities(config)[names.DAG_PROCESSOR]
    return pods.pod_spec(
        config,
        identity=identity,
        containers=[processor],
        init_containers=[pods.wait_for_migrations(config, resources)],
        dag_paths=dag_paths,
        writes_logs=True,
    )


def workload(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> WorkloadSpec:
    return WorkloadSpec(
        name=names.DAG_PROCESSOR,
        component=names.Component.DAG_PROCESSOR,
        pod_spec=pod_spec(config, dag_paths),
        replicas=config.dag_processor.replicas,
        placement=config.dag_processor.placement,
    )


@dataclass(frozen=True)
class DagProcessorArgs:
    config: StackConfig
    pods: AirflowPodHandles
    identity: IdentityHandle
    dag_paths: Mapping[str, str] | None = None


class DagProcessor(pulumi.ComponentResource):
    deployment: objects.KubernetesObject

    def __init__(self, name: str, args: DagProcessorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:controlplane:DagProcessor", name, None, opts)
        shared = args.pods
        self.deployment = register_workload(
            self, args.config, workload(args.config, args.dag_paths), shared.namespace, args.identity, shared.content()
        ).deployment
        self.register_outputs({})
