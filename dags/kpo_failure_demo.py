"""Example 2b, FAILS ON PURPOSE: how a failing pod reaches Airflow.

The task runs a command its image does not have (Alpine ships no python3). The container exits with
127, KubernetesPodOperator streams the pod's log ("python3: not found") into the task log and fails
the task. The failed pod is kept (delete_succeeded_pod) so `kubectl logs` and `kubectl describe` work.
"""

from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from pod_defaults import ALPINE, hardened
from stack_context import StackContext

stack = StackContext.from_env()

with DAG(
    dag_id="kpo_failure_demo",
    description="FAILS ON PURPOSE: a pod runs a command its image lacks",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "kubernetes-pod-operator", "fails-on-purpose"],
    default_args={"retries": 0},
):
    KubernetesPodOperator(
        task_id="missing_command",
        name="missing-command",
        image=ALPINE,
        cmds=["sh", "-c", "python3 --version"],
        **hardened(stack, on_finish_action="delete_succeeded_pod"),
    )
