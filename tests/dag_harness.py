"""Run inside a pod-like environment (tests/local_pod.py): load the DAGs, build their pods, test them.

Invoked by tests/test_dags.py as ``python dag_harness.py MODE [ARGS]`` with the environment of a
rendered Airflow container (so DAGS_FOLDER is the DAG ConfigMap laid out as kubelet does, and the
stack's environment variables are those the stack injects). Prints one JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def dag_bag() -> Any:
    """The DAG folder parsed as the dag-processor parses a bundle (examples are off in the stack's env)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    return BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder", safe_mode=True)


def load(bag: Any) -> dict[str, Any]:
    return {
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "files": sorted(Path(dag.fileloc).name for dag in bag.dags.values()),
    }


def pods(bag: Any) -> dict[str, Any]:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import ApiClient

    api = ApiClient()
    found: dict[str, Any] = {}
    for dag_id, dag in sorted(bag.dags.items()):
        for task in dag.tasks:
            if isinstance(task, KubernetesPodOperator):
                pod = task.build_pod_request_obj(dry_run=True)
                found[f"{dag_id}.{task.task_id}"] = {
                    "pod": api.sanitize_for_serialization(pod),
                    "on_finish_action": task.on_finish_action.value,
                    "do_xcom_push": task.do_xcom_push,
                }
    return found


def kubernetes_executor_pod() -> dict[str, Any]:
    """The task pod the KubernetesExecutor builds from the stack's pod template (Airflow's own code)."""
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from kubernetes.client import ApiClient

    kube = KubeConfig()
    base = PodGenerator.deserialize_model_file(kube.pod_template_file)
    pod = PodGenerator.construct_pod(
        dag_id="kpo_print_then_sleep",
        task_id="print_value",
        pod_id="kpo-print-then-sleep-print-value",
        try_number=1,
        kube_image=kube.kube_image,
        date=None,
        args=["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"],
        pod_override_object=None,
        base_worker_pod=base,
        namespace=kube.kube_namespace,
        scheduler_job_id="1",
        run_id="manual__2026-01-01T00:00:00+00:00",
    )
    return {"pod": ApiClient().sanitize_for_serialization(pod), "template": kube.pod_template_file}


def run_pod_command_locally(task: Any) -> Any:
    """Stand-in for the cluster: run the pod's command here, with /airflow/xcom in a temp dir."""
    with tempfile.TemporaryDirectory() as xcom_dir:
        command = [part.replace("/airflow/xcom", xcom_dir) for part in [*task.cmds, *task.arguments]]
        subprocess.run(command, check=True, env=dict(os.environ))
        return json.loads((Path(xcom_dir) / "return.json").read_text())


def test_dag(dag_id: str, mark_success_pattern: str | None, run_pods_locally: str | None) -> dict[str, Any]:
    bag = dag_bag()
    dag = bag.get_dag(dag_id)
    if run_pods_locally:
        for task_id in run_pods_locally.split(","):
            task = dag.task_dict[task_id]
            object.__setattr__(task, "execute", lambda context, task=task: run_pod_command_locally(task))
    run = dag.test(mark_success_pattern=mark_success_pattern)

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
            )
        ).all()
        return {
            "state": str(run.state),
            "task_states": {ti.task_id: str(ti.state) for ti in tis},
            "returns": {x.task_id: XComModel.deserialize_value(x) for x in xcoms},
        }


def queue_task(dag_id: str, task_id: str) -> dict[str, Any]:
    """What an executor does before a task runs, done here as the scheduler would: a new run, its task
    queued, and the workload (with a task token signed by the JWT secret) for whoever runs it."""
    import pendulum
    from airflow.api_fastapi.auth.tokens import JWTGenerator, get_signing_args
    from airflow.configuration import conf
    from airflow.executors import workloads
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    generator = JWTGenerator(
        valid_for=conf.getint("execution_api", "jwt_expiration_time"),
        audience=conf.get_mandatory_list_value("execution_api", "jwt_audience")[0],
        issuer=conf.get("api_auth", "jwt_issuer", fallback=None),
        **get_signing_args(make_secret_key_if_needed=False),
    )
    with create_session() as session:
        dag = SerializedDagModel.get_dag(dag_id, session=session)
        assert dag is not None, f"{dag_id} is not serialized"
        now = pendulum.now("UTC")
        run = dag.create_dagrun(
            run_id=f"isolation__{now.isoformat()}",
            run_after=now,
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.RUNNING,
            session=session,
        )
        ti = run.get_task_instance(task_id, session=session)
        assert ti is not None
        # as the scheduler does when it schedules a task: a new try, queued
        ti.try_number += 1
        ti.state = TaskInstanceState.QUEUED
        session.flush()
        workload = workloads.ExecuteTask.make(ti, generator=generator)
        return {"workload": workload.model_dump_json(), "ti_id": str(ti.id), "run_id": run.run_id}


def send_to_celery(workload: str) -> dict[str, Any]:
    """What the CeleryExecutor does: send the workload to the queue, then wait for its result in the
    result backend (Redis)."""
    from airflow.providers.celery.executors.celery_executor_utils import execute_workload

    result = execute_workload.apply_async(args=[workload], queue="default")
    result.get(timeout=600, propagate=False)
    return {"state": result.state, "backend": type(result.backend).__name__}


def fetch_served_log(url: str, relative_path: str) -> dict[str, Any]:
    """What the api-server does to read a log a worker serves: a request signed with the API secret key."""
    from airflow.utils.log.file_task_handler import _fetch_logs_from_service

    response = _fetch_logs_from_service(url, relative_path)
    return {"status": response.status_code, "text": response.text[:2000]}


def main() -> None:
    mode = sys.argv[1]
    if mode == "pods":
        result = pods(dag_bag())
    elif mode == "load-and-pods":
        # one parse, one Airflow start-up (seconds of CPU) for both
        bag = dag_bag()
        result = {"load": load(bag), "pods": pods(bag)}
    elif mode == "kubernetes-executor-pod":
        result = kubernetes_executor_pod()
    elif mode == "queue-task":
        result = queue_task(sys.argv[2], sys.argv[3])
    elif mode == "send-to-celery":
        result = send_to_celery(sys.argv[2])
    elif mode == "fetch-served-log":
        result = fetch_served_log(sys.argv[2], sys.argv[3])
    elif mode == "test":
        result = test_dag(sys.argv[2], sys.argv[3] or None, sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("@@RESULT@@" + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
