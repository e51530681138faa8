"""Example 1: two KubernetesPodOperator tasks in sequence: one prints a value, the next sleeps.

Both pods run in the stack's namespace under the task identity, hardened, with requests and limits;
each is deleted when it finishes (logs are streamed into the Airflow task log first).
"""

# pyright: reportUnusedExpression=false
# (`a >> b` is how Airflow declares dependencies: a statement, by design)
from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from pod_defaults import BUSYBOX, hardened
from stack_context import StackContext

stack = StackContext.from_env()

with DAG(
    dag_id="kpo_print_then_sleep",
    description="Two pod tasks in sequence: print a value, then sleep",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "kubernetes-pod-operator"],
):
    print_value = KubernetesPodOperator(
        task_id="print_value",
        name="print-value",
        image=BUSYBOX,
        cmds=["sh", "-c", 'echo "the answer is 42 (namespace $NAMESPACE)"'],
        env_vars={"NAMESPACE": stack.namespace},
        **hardened(stack),
    )
    sleep = KubernetesPodOperator(
        task_id="sleep",
        name="sleep",
        image=BUSYBOX,
        cmds=["sleep", "20"],
        **hardened(stack),
    )
    print_value >> sleep
