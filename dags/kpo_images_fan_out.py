"""Example 2: one start task fans out to pod tasks in different images.

Each task brings its own runtime (Python, a JVM, a plain Linux userland): nothing but Airflow needs
to be installed in the Airflow image. See kpo_failure_demo for what a failing pod looks like.
"""

# pyright: reportUnusedExpression=false
# (`a >> b` is how Airflow declares dependencies: a statement, by design)
from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, task
from pod_defaults import ALPINE, JVM, PYTHON, hardened, resources
from stack_context import StackContext

stack = StackContext.from_env()

JAVA_PROGRAM = """
public class Hello {
    public static void main(String[] args) {
        System.out.println("hello from Java " + Runtime.version());
    }
}
"""

with DAG(
    dag_id="kpo_images_fan_out",
    description="A start task fanning out to Python, JVM and plain Linux pods",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "kubernetes-pod-operator"],
):

    @task
    def plan() -> list[str]:
        """Runs in the Airflow worker, needs no cluster: decides what the pods will do."""
        runtimes = ["python", "jvm", "linux"]
        print(f"fanning out to {len(runtimes)} runtimes: {', '.join(runtimes)}")
        return runtimes

    python_task = KubernetesPodOperator(
        task_id="python_runtime",
        name="python-runtime",
        image=PYTHON,
        cmds=["python", "-c", "import platform; print('hello from Python', platform.python_version())"],
        **hardened(stack),
    )
    jvm_task = KubernetesPodOperator(
        task_id="jvm_runtime",
        name="jvm-runtime",
        image=JVM,
        # The JDK runs a single source file directly; /tmp is the task's writable emptyDir.
        cmds=["sh", "-c", 'printf "%s" "$PROGRAM" > /tmp/Hello.java && java /tmp/Hello.java'],
        env_vars={"PROGRAM": JAVA_PROGRAM, "JAVA_TOOL_OPTIONS": "-XX:MaxRAMPercentage=75"},
        **hardened(stack, container_resources=resources("250m", "384Mi", "1", "768Mi")),
    )
    linux_task = KubernetesPodOperator(
        task_id="linux_runtime",
        name="linux-runtime",
        image=ALPINE,
        cmds=["sh", "-c", "echo hello from $(cat /etc/alpine-release 2>/dev/null && echo Alpine) $(uname -sm)"],
        **hardened(stack),
    )
    plan() >> [python_task, jvm_task, linux_task]
