"""The dag-processor: parses DAG files and stores them serialized in the metadata database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components import airflow_pod, k8s, names, rollout, workloads
from components.config import StackConfig
from components.rbac import identities


def pod_spec(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> k8s.Manifest:
    resources = config.dag_processor.resources
    processor = airflow_pod.AirflowContainer(
        name="dag-processor",
        args=["airflow", "dag-processor"],
        resources=resources,
        probes=airflow_pod.jobs_check_probes("DagProcessorJob"),
    )
    identity = identities(config)[names.DAG_PROCESSOR]
    return airflow_pod.pod_spec(
        config,
        service_account=identity.name,
        mounts_api_token=identity.calls_kubernetes_api,
        containers=[airflow_pod.container(config, processor)],
        init_containers=[airflow_pod.wait_for_migrations(config, resources)],
        dag_paths=dag_paths,
    )


def workload(config: StackConfig, dag_paths: Mapping[str, str] | None = None) -> workloads.WorkloadSpec:
    return workloads.WorkloadSpec(
        name=names.DAG_PROCESSOR,
        component=names.Component.DAG_PROCESSOR,
        pod_spec=pod_spec(config, dag_paths),
        replicas=config.dag_processor.replicas,
    )


@dataclass(frozen=True)
class DagProcessorArgs:
    config: StackConfig
    registry: rollout.ContentRegistry
    dag_paths: Mapping[str, str] | None = None


class DagProcessor(pulumi.ComponentResource):
    def __init__(self, name: str, args: DagProcessorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:airflow:DagProcessor", name, None, opts)
        self.resources = workloads.register_deployment(
            self, args.config, workload(args.config, args.dag_paths), args.registry
        )
        self.register_outputs({})
