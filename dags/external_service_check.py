"""Example 7: a task reaches a service outside the cluster by its stable in-cluster name, never by IP.

The stack config's `externalServices` gives example-warehouse a Service in the stack's namespace (with
an EndpointSlice of its IP addresses, or as an ExternalName for a DNS name), and the NetworkPolicy lets
task pods reach exactly those addresses and ports. Point it at a service of your network in
Pulumi.<stack>.yaml; this task then opens a TCP connection to it by name.
"""

from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from pod_defaults import PYTHON, hardened
from stack_context import EXAMPLE_EXTERNAL_SERVICE, EXAMPLE_EXTERNAL_SERVICE_PORT, StackContext

stack = StackContext.from_env()

CONNECT = """
import os, socket, urllib.parse
target = urllib.parse.urlsplit(os.environ["TARGET_URL"])
with socket.create_connection((target.hostname, target.port), timeout=10) as connection:
    print(f"connected to {target.hostname}:{target.port} ({connection.getpeername()[0]})")
"""

with DAG(
    dag_id="external_service_check",
    description="A task reaching a service outside the cluster by its Service name",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "kubernetes-pod-operator", "networking"],
):
    KubernetesPodOperator(
        task_id="connect_to_example_warehouse",
        name="connect-to-example-warehouse",
        image=PYTHON,
        cmds=["python", "-c", CONNECT],
        env_vars={
            "TARGET_URL": f"tcp://{stack.service_host(EXAMPLE_EXTERNAL_SERVICE)}:{EXAMPLE_EXTERNAL_SERVICE_PORT}"
        },
        **hardened(stack),
    )
