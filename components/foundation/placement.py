"""Where a pod runs: its scheduling fields from the stack's placement, and the default spread of HA workloads.

Pure builders. Every workload's pod spec goes through :func:`placed` where its manifest is built (the
Airflow Deployments in ``airflow_pods.workload``, Postgres, Redis, the StatsD exporter, the ``db clean``
CronJob, the KubernetesExecutor's pod template); KubernetesPodOperator pods get :func:`pod_fields` through
the DAG contract (``dags/pod_defaults.py``).

A workload that runs more than one pod (replicas > 1, or autoscaled) spreads its pods over nodes, then
zones, unless the user set ``topologySpreadConstraints`` (globally or for the component; ``[]`` turns the
spread off): ``ScheduleAnyway``, so a small cluster still schedules every pod.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.config.model import StackConfig
from components.config.scheduling import PlacementConfig

if TYPE_CHECKING:
    from components.kube.manifest_types import PodSpec, TopologySpreadConstraint

SPREAD_TOPOLOGY_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
"""Nodes first, then zones."""
POD_TEMPLATE_HASH = "pod-template-hash"
"""The label a Deployment's ReplicaSet gives its pods: the spread counts only the current revision's."""


def default_spread(selector: Mapping[str, str], per_revision: bool = True) -> list[TopologySpreadConstraint]:
    """Spread over nodes, then zones; best effort (``ScheduleAnyway``)."""
    constraints: list[TopologySpreadConstraint] = []
    for key in SPREAD_TOPOLOGY_KEYS:
        constraint: TopologySpreadConstraint = {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(selector)},
        }
        if per_revision:
            constraint["matchLabelKeys"] = [POD_TEMPLATE_HASH]
        constraints.append(constraint)
    return constraints


def pod_fields(placement: PlacementConfig) -> dict[str, Any]:
    """The pod spec fields of a placement (camelCase, as the Kubernetes API takes them); unset ones left out."""
    fields: dict[str, Any] = {}
    if placement.node_selector is not None:
        fields["nodeSelector"] = dict(sorted(placement.node_selector.items()))
    if placement.tolerations is not None:
        fields["tolerations"] = [toleration.manifest() for toleration in placement.tolerations]
    if placement.affinity is not None:
        fields["affinity"] = placement.affinity.manifest()
    if placement.topology_spread_constraints is not None:
        fields["topologySpreadConstraints"] = [c.manifest() for c in placement.topology_spread_constraints]
    if placement.priority_class_name is not None:
        fields["priorityClassName"] = placement.priority_class_name
    return fields


def effective_fields(config: StackConfig, own: PlacementConfig) -> dict[str, Any]:
    """A component's placement (``own`` over the global one) as pod spec fields, empty ones left out."""
    fields = pod_fields(config.placement_of(own))
    return {key: value for key, value in fields.items() if value not in ({}, [])}


def placed(
    config: StackConfig,
    pod_spec: PodSpec,
    own: PlacementConfig,
    spread: Mapping[str, str] | None = None,
    per_revision: bool = True,
) -> PodSpec:
    """``pod_spec`` with the component's placement (``own`` over the global one).

    ``spread``: the selector labels of a workload that runs several pods, which then get the default
    spread unless the placement sets ``topologySpreadConstraints``. ``per_revision``: the pods carry
    ``pod-template-hash`` (a Deployment's), so the spread counts each revision's pods apart.
    """
    fields = effective_fields(config, own)
    if spread is not None and config.placement_of(own).topology_spread_constraints is None:
        fields["topologySpreadConstraints"] = default_spread(spread, per_revision)
    if not fields:
        return pod_spec
    result = copy.copy(pod_spec)
    typing.cast("dict[str, Any]", result).update(fields)
    return result
