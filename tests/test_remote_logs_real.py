"""Remote task logs in S3, proven with real Airflow 3.3 processes and a real S3 API (moto's server on loopback).

The stack is rendered with remote logging turned on the way a user would: ``logging.remote`` (the
``[logging]`` settings in every Airflow container) and the S3 connection, with its endpoint and dummy
keys, through the secret ``connections`` key (``AIRFLOW_CONN_AWS_LOGS`` from the airflow-connections Secret).
A KubernetesExecutor task pod, from the stack's pod template, runs a task; its supervisor uploads the
task's log to the bucket when the task ends and deletes the local copy. The pod is then gone, and the
api-server serves the log from the bucket through the public REST API.

A second task pod has no connection at all (no envFrom): the supervisor fetches the log connection
through the execution API (the api-server resolves it from its own environment) and still uploads.
So the task side needs no Secret of its own for S3 logs; but any task can read that connection the same
way (the execution API grants every connection to every task in 3.3): scope its credentials to the logs.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from components.airflow_pods import dag_sources
from components.config import names
from tests.airflow_stack import reserialize_dags, start_api_server
from tests.local_pod import LocalPod, copy_migrated_database, run_harness, run_workload, task_instance, task_pod
from tests.moto_s3 import MotoS3
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret, evaluate_ok

pytestmark = pytest.mark.real

BUCKET = "airflow-logs"
PREFIX = "task-logs"
CONN_ID = "aws_logs"
DAG_ID = "remote_log_probe"
TASK_ID = "say_something"
MARKER = "remote-log-probe: this line was written by the task"

DAG_FILE = f'''"""A DAG for tests/test_moto_s3_real.py: its task writes one recognisable line to its log."""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import DAG, task

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):

    @task
    def {TASK_ID}() -> str:
        logging.getLogger(__name__).info("{MARKER}")
        return "said"

    {TASK_ID}()
'''

REMOTE_LOGGING = {"remote": {"enabled": True, "baseFolder": f"s3://{BUCKET}/{PREFIX}", "connectionId": CONN_ID}}


@dataclass
class Stack:
    evaluation: Evaluation
    postgres: PostgresServer
    s3: MotoS3
    api_server: LocalPod
    scheduler: LocalPod
    """Stands in for the scheduler's side: it creates runs and signs task tokens."""


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    server = MotoS3.start(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer, s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("dags")
    (folder / f"{DAG_ID}.py").write_text(DAG_FILE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dag_sources, "REPOSITORY_DAGS", folder)
        evaluation = evaluate_ok(
            "dev",
            secret_overrides={"connections": {CONN_ID: s3.connection_json()}},
            executor="KubernetesExecutor",
            database={"databaseName": "remotelogs"},
            logging=REMOTE_LOGGING,
        )
    started: list[LocalPod] = []
    try:
        copy_migrated_database(evaluation, postgres, with_admin=True)
        reserialize_dags(evaluation, postgres)
        api_server = start_api_server(evaluation, postgres, init=["bootstrap-admin"], health="/api/v2/monitor/health")
        started.append(api_server)
        scheduler = LocalPod(evaluation, "Deployment", names.SCHEDULER, postgres.port)
        started.append(scheduler)
        yield Stack(evaluation, postgres, s3, api_server, scheduler)
    finally:
        for pod in started:
            pod.stop()


def pod_template(stack: Stack) -> dict[str, Any]:
    return json.loads(stack.evaluation.find("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP)["data"][names.POD_TEMPLATE_KEY])


@dataclass
class Ran:
    queued: dict[str, Any]
    try_number: int
    log_path: str
    local_log_left: bool
    supervisor_output: str


def run_task_in_a_pod(stack: Stack, template: dict[str, Any]) -> Ran:
    """Queue the task as the scheduler would, run it in a task pod as the KubernetesExecutor would, then
    remove the pod (its logs emptyDir with it)."""
    pod = task_pod(stack.evaluation, stack.postgres.port, stack.api_server.port(names.API_SERVER_PORT), template)
    try:
        queued = run_harness(stack.scheduler, "scheduler", "queue-task", DAG_ID, TASK_ID)
        ran = run_workload(pod, queued["workload"])
        assert ran.returncode == 0, (ran.stdout[-3000:], ran.stderr[-3000:])
        state = task_instance(stack.evaluation, stack.postgres, queued["ti_id"])
        assert state["state"] == "success", (state, ran.stderr[-3000:])
        log_path = json.loads(queued["workload"])["log_path"]
        local_log = pod.volume_dir("logs") / log_path
        assert pod.volume_dir("logs").is_dir()
        return Ran(queued, state["try_number"], log_path, local_log.exists(), ran.stdout + ran.stderr)
    finally:
        pod.stop()
        assert not pod.root.exists()


def read_log_through_the_api(stack: Stack, ran: Ran) -> httpx.Response:
    admin = decoded_secret(stack.evaluation, names.ADMIN_SECRET)
    base = f"http://127.0.0.1:{stack.api_server.port(names.API_SERVER_PORT)}"
    token = httpx.post(f"{base}/auth/token", json={"username": admin["username"], "password": admin["password"]})
    assert token.status_code == 201, token.text
    return httpx.get(
        f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{quote(ran.queued['run_id'], safe='')}"
        f"/taskInstances/{TASK_ID}/logs/{ran.try_number}",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        params={"full_content": "true"},
        timeout=120,
    )


def connection_requests(stack: Stack) -> list[str]:
    """The status of every execution API request for the log connection, from the api-server's access log."""
    pattern = rf"method=GET path=/execution/connections/{CONN_ID} query=\S* status_code=(\d+)"
    return re.findall(pattern, stack.api_server.log("api-server"))


def assert_uploaded(stack: Stack, ran: Ran) -> str:
    key = f"{PREFIX}/{ran.log_path}"
    assert stack.s3.list_keys(BUCKET, f"{PREFIX}/dag_id={DAG_ID}/") and key in stack.s3.list_keys(BUCKET, key), (
        stack.s3.list_keys(BUCKET),
        ran.supervisor_output[-3000:],
    )
    text = stack.s3.get(BUCKET, key)
    assert MARKER in text, text[:3000]
    # delete_local_logs: the supervisor removed the local copy once it was uploaded
    assert not ran.local_log_left
    return key


def test_a_task_pods_log_goes_to_s3_and_the_api_server_serves_it_after_the_pod_is_gone(stack: Stack) -> None:
    before = len(connection_requests(stack))
    ran = run_task_in_a_pod(stack, pod_template(stack))
    # the supervisor found the connection in its own environment (AIRFLOW_CONN_AWS_LOGS)
    assert connection_requests(stack)[before:] == []
    key = assert_uploaded(stack, ran)
    served = read_log_through_the_api(stack, ran)
    assert served.status_code == 200, served.text[:2000]
    assert MARKER in served.text, served.text[:3000]
    # read from the bucket (the source is named in the log's header), not from a local file
    assert f"s3://{BUCKET}/{key}" in served.text, served.text[:3000]
    # the api-server keeps no copy: its own logs volume has no task log
    assert not list(stack.api_server.volume_dir("logs").rglob("*.log"))


def test_a_task_pod_without_the_connection_still_uploads_through_the_execution_api(stack: Stack) -> None:
    template = copy.deepcopy(pod_template(stack))
    for container in template["spec"]["containers"]:
        container.pop("envFrom", None)
    assert "airflow-connections" not in json.dumps(template)
    before = len(connection_requests(stack))
    ran = run_task_in_a_pod(stack, template)
    assert_uploaded(stack, ran)
    # Asked before the task starts (to build the log processors), the workload token is refused (403);
    # asked again at upload time, with the task's execution token, the api-server hands it over.
    asked = connection_requests(stack)[before:]
    assert asked and asked[-1] == "200", asked
    served = read_log_through_the_api(stack, ran)
    assert served.status_code == 200 and MARKER in served.text, served.text[:3000]


def test_the_helper_lists_and_reads_what_a_client_wrote(s3: MotoS3) -> None:
    s3.client().put_object(Bucket=BUCKET, Key="helper/check.txt", Body=b"written over HTTP")
    assert s3.list_keys(BUCKET, "helper/") == ["helper/check.txt"]
    assert s3.get(BUCKET, "helper/check.txt") == "written over HTTP"
