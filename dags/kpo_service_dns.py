"""Example 3: a pod reaches an in-cluster service by its Service DNS name, never by IP address.

It asks the Airflow api-server's health endpoint through the Service name the stack gives it
(AIRFLOW_K8S_API_SERVER_URL); the NetworkPolicy that lets task pods reach the api-server says so.
"""

from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from pod_defaults import BUSYBOX, hardened
from stack_context import StackContext

stack = StackContext.from_env()

with DAG(
    dag_id="kpo_service_dns",
    description="A pod reaching the api-server by its Service DNS name",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "kubernetes-pod-operator", "networking"],
):
    KubernetesPodOperator(
        task_id="call_api_server_health",
        name="call-api-server-health",
        image=BUSYBOX,
        cmds=["sh", "-c", 'wget -q -O - -T 10 "$API_SERVER_URL/api/v2/monitor/health" && echo'],
        env_vars={"API_SERVER_URL": stack.api_server_url},
        **hardened(stack),
    )
