"""Example 5: a pod returns a result through XCom; a Python task downstream consumes it.

The pod writes JSON to /airflow/xcom/return.json; KubernetesPodOperator reads it through its XCom
sidecar (hardened by the stack's kubernetes_default connection) and pushes it as the task's return
value, which the TaskFlow task receives as an argument.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, task
from pod_defaults import PYTHON, hardened
from stack_context import StackContext

stack = StackContext.from_env()

PRODUCE = """
import json, random
rows = [{"id": i, "value": round(random.Random(i).random() * 100, 2)} for i in range(5)]
json.dump({"rows": rows, "source": "pod"}, open("/airflow/xcom/return.json", "w"))
print(f"wrote {len(rows)} rows")
"""

with DAG(
    dag_id="kpo_xcom_to_python",
    description="A pod's result, through XCom, into a Python task",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "kubernetes-pod-operator", "xcom"],
):
    produce = KubernetesPodOperator(
        task_id="produce",
        name="produce",
        image=PYTHON,
        cmds=["python", "-c", PRODUCE],
        do_xcom_push=True,
        **hardened(stack),
    )

    @task
    def summarize(result: dict[str, Any]) -> str:
        rows: list[dict[str, float]] = result["rows"]
        total = sum(row["value"] for row in rows)
        summary = f"{len(rows)} rows from the {result['source']}, total {total:.2f}"
        print(summary)
        return summary

    # An XComArg: Airflow passes the pod's returned dict when the task runs.
    summarize(produce.output)  # pyright: ignore[reportArgumentType]
