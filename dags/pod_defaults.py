"""Hardened KubernetesPodOperator settings for tasks in the airflow-k8s stack (a helper, not a DAG).

Every pod task runs in the stack's namespace under its task identity (no RBAC, no API token), as a
non-root user with a read-only root filesystem and a writable /tmp, with requests and limits, and says
what happens to its pod when it finishes, and lands where the stack places task pods (stack config
`taskPods.placement` over `placement`: node selector, tolerations, affinity, spread, priority class).
Pass an image that is pinned to a version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client import models as k8s
from stack_context import StackContext

NOBODY = 65534
"""Images such as python or busybox run as root by default; tasks run as nobody instead."""

BUSYBOX = "busybox:1.37.0"
ALPINE = "alpine:3.21.0"
PYTHON = "python:3.13.1-slim-bookworm"
JVM = "eclipse-temurin:21.0.5_11-jdk"

RUNTIME_DEFAULT = k8s.V1SeccompProfile(type="RuntimeDefault")


def resources(
    cpu: str = "50m", memory: str = "64Mi", cpu_limit: str = "250m", memory_limit: str = "128Mi"
) -> k8s.V1ResourceRequirements:
    return k8s.V1ResourceRequirements(
        requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu_limit, "memory": memory_limit}
    )


def placement(stack: StackContext) -> dict[str, Any]:
    """The stack's placement for pod tasks, as KubernetesPodOperator's ``full_pod_spec``: the operator
    starts from it, so a field a task sets itself (``node_selector=``, ``tolerations=``, ``affinity=``,
    ``priority_class_name=``) wins over the stack's."""
    fields = stack.task_pod_placement_fields()
    if not fields:
        return {}
    # camelCase JSON to client models, with the client's own deserializer (as Airflow's converters do)
    deserialize: Callable[[Any, str], k8s.V1PodSpec] = getattr(ApiClient(), "_ApiClient__deserialize")  # noqa: B009
    return {"full_pod_spec": k8s.V1Pod(spec=deserialize({"containers": [], **fields}, "V1PodSpec"))}


def hardened(
    stack: StackContext,
    *,
    container_resources: k8s.V1ResourceRequirements | None = None,
    on_finish_action: str = "delete_pod",
    volumes: list[k8s.V1Volume] | None = None,
    volume_mounts: list[k8s.V1VolumeMount] | None = None,
) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments every example task shares."""
    return {
        "namespace": stack.namespace,
        "service_account_name": stack.task_service_account,
        "automount_service_account_token": False,
        "in_cluster": True,
        "image_pull_policy": "IfNotPresent",
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=NOBODY,
            run_as_group=NOBODY,
            fs_group=NOBODY,
            seccomp_profile=RUNTIME_DEFAULT,
        ),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
            privileged=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            seccomp_profile=RUNTIME_DEFAULT,
        ),
        "container_resources": container_resources or resources(),
        "volumes": [
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="256Mi")),
            *(volumes or []),
        ],
        "volume_mounts": [k8s.V1VolumeMount(name="tmp", mount_path="/tmp"), *(volume_mounts or [])],
        # delete_pod: remove the pod whatever happened; delete_succeeded_pod keeps failures to inspect.
        "on_finish_action": on_finish_action,
        "get_logs": True,
        "startup_timeout_seconds": 300,
        "labels": {"app.kubernetes.io/part-of": "airflow", "app.kubernetes.io/component": "task-pod"},
        **placement(stack),
    }
