"""What the airflow-k8s stack tells DAGs about itself, through environment variables.

The stack injects these variables into every pod that parses or runs DAGs; DAGs read them here instead
of repeating names. The Pulumi program imports the variable names from this file too, so the contract
has a single source. Standard library only: this file ships with the DAGs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from typing import Any

ENV_NAMESPACE = "AIRFLOW_K8S_NAMESPACE"
ENV_TASK_SERVICE_ACCOUNT = "AIRFLOW_K8S_TASK_SERVICE_ACCOUNT"
ENV_API_SERVER_URL = "AIRFLOW_K8S_API_SERVER_URL"
ENV_EXAMPLE_SECRET = "AIRFLOW_K8S_EXAMPLE_SECRET"
ENV_EXAMPLE_CONFIG_MAP = "AIRFLOW_K8S_EXAMPLE_CONFIG_MAP"
ENV_TASK_POD_PLACEMENT = "AIRFLOW_K8S_TASK_POD_PLACEMENT"

EXAMPLE_EXTERNAL_SERVICE = "example-warehouse"
"""The external service (stack config `externalServices`) the example DAG external_service_check reaches."""
EXAMPLE_EXTERNAL_SERVICE_PORT = 5432


@dataclass(frozen=True)
class StackContext:
    namespace: str
    """Namespace the stack (and every task pod) lives in."""
    task_service_account: str
    """ServiceAccount for task pods: no RBAC, no API token."""
    api_server_url: str
    """In-cluster URL of the api-server Service (a name, never an IP)."""
    example_secret: str
    """Secret the example DAGs read credentials from."""
    example_config_map: str
    """ConfigMap the example DAGs read settings from."""
    task_pod_placement: str = "{}"
    """Pod spec fields (JSON: nodeSelector, tolerations, affinity, ...) for the pods tasks launch
    (stack config `taskPods.placement` over `placement`); "{}" when none."""

    def task_pod_placement_fields(self) -> dict[str, Any]:
        """The placement as pod spec fields, camelCase as the Kubernetes API takes them."""
        found: dict[str, Any] = json.loads(self.task_pod_placement)
        return found

    def service_host(self, service: str) -> str:
        """The cluster DNS name of a Service in the stack's namespace (an external one included)."""
        return f"{service}.{self.namespace}.svc.cluster.local"

    @classmethod
    def from_env(cls) -> StackContext:
        missing = [name for name in ENV_BY_FIELD.values() if not os.environ.get(name)]
        if missing:
            raise RuntimeError(
                f"{', '.join(missing)} not set: this DAG expects to run in a pod of the airflow-k8s stack"
            )
        return cls(**{field: os.environ[env] for field, env in ENV_BY_FIELD.items()})


ENV_BY_FIELD = {
    "namespace": ENV_NAMESPACE,
    "task_service_account": ENV_TASK_SERVICE_ACCOUNT,
    "api_server_url": ENV_API_SERVER_URL,
    "example_secret": ENV_EXAMPLE_SECRET,
    "example_config_map": ENV_EXAMPLE_CONFIG_MAP,
    "task_pod_placement": ENV_TASK_POD_PLACEMENT,
}
assert set(ENV_BY_FIELD) == {f.name for f in fields(StackContext)}
