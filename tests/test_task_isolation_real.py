"""Task code gets no key: proven with real Airflow 3.3 processes, not by reading docs.

A task runs to success twice, each time in a process shaped like the pod that runs task code, with only
that pod's mounts and environment:

* a KubernetesExecutor task pod, from the stack's pod template: no Secret at all;
* a Celery worker, with only the broker URL (task results go to Redis too), its task sent through
  Redis as the CeleryExecutor sends it.

Both talk to a real api-server's execution API with the token the scheduler's side signed. The task
itself (tests/isolation_probe/) reports everything it can see, environment and files, and the test
looks there for the stack's secret values. Beside the Celery worker, its log-server sidecar holds the
API secret key and serves the task's log to the api-server: the one key Airflow still needs there, shown
by a log server without it refusing the api-server's request.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from components.airflow_pods import dag_sources
from components.config import names
from tests.airflow_stack import reserialize_dags
from tests.local_pod import (
    CELERY_READY,
    LocalPod,
    copy_migrated_database,
    run_harness,
    run_workload,
    task_instance,
    task_pod,
    wait_for_http,
    wait_for_log,
)
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret, evaluate_ok

pytestmark = pytest.mark.real

PROBE_DAGS = Path(__file__).resolve().parent / "isolation_probe"
DATABASE = {"databaseName": "isolation"}


@dataclass
class Stack:
    evaluation: Evaluation
    postgres: PostgresServer
    redis: LocalPod
    api_server: LocalPod
    scheduler: LocalPod
    """Stands in for the scheduler's side: it creates runs and signs task tokens."""
    worker: LocalPod
    """A Celery worker's pod (started by the `worker` fixture)."""

    def secrets_task_code_must_not_see(self) -> dict[str, str]:
        database = decoded_secret(self.evaluation, names.POSTGRES_SECRET)[names.POSTGRES_PASSWORD_KEY]
        keys = decoded_secret(self.evaluation, names.KEYS_SECRET)
        admin = decoded_secret(self.evaluation, names.ADMIN_SECRET)[names.ADMIN_PASSWORD_KEY]
        return {
            "database password": database,
            "Fernet key": keys[names.FERNET_KEY],
            "JWT secret": keys[names.JWT_SECRET_KEY],
            "API secret key": keys[names.API_SECRET_KEY],
            "admin password": admin,
        }


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("dags")
    shutil.copy(PROBE_DAGS / "isolation_probe.py", folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dag_sources, "REPOSITORY_DAGS", folder)
        evaluation = evaluate_ok("dev", executor="CeleryExecutor,KubernetesExecutor", database=DATABASE)
    started: list[LocalPod] = []
    try:
        copy_migrated_database(evaluation, postgres, with_admin=True)
        redis = LocalPod(evaluation, "StatefulSet", names.REDIS, postgres.port)
        started.append(redis)
        redis.start("redis")
        redis_port = redis.port(names.REDIS_PORT)
        reserialize_dags(evaluation, postgres)
        api_server = LocalPod(evaluation, "Deployment", names.API_SERVER, postgres.port, redis_port=redis_port)
        started.append(api_server)
        worker = LocalPod(
            evaluation,
            "Deployment",
            names.worker_set("default"),
            postgres.port,
            redis_port=redis_port,
            api_server_port=api_server.port(names.API_SERVER_PORT),
        )
        started.append(worker)
        assert api_server.run("bootstrap-admin", 600).returncode == 0
        # In a cluster every worker's log server listens on 8793 at its pod's address; here the
        # worker's listens on a port of its own, which the api-server is told.
        worker_logs = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker.port(names.WORKER_LOG_PORT))}
        process = api_server.start("api-server", worker_logs)
        health = f"http://127.0.0.1:{api_server.port(names.API_SERVER_PORT)}/api/v2/monitor/health"
        assert wait_for_http(health, timeout=600, process=process) == 200, api_server.log("api-server")[-3000:]
        scheduler = LocalPod(evaluation, "Deployment", names.SCHEDULER, postgres.port, redis_port=redis_port)
        started.append(scheduler)
        yield Stack(evaluation, postgres, redis, api_server, scheduler, worker)
    finally:
        for pod in started:
            pod.stop()


def report(pod: LocalPod) -> dict[str, Any]:
    return json.loads((pod.volume_dir("tmp") / "isolation-report.json").read_text())


def assert_sees_no_secret(seen: dict[str, Any], secrets: dict[str, str]) -> None:
    text = json.dumps(seen)
    for what, value in secrets.items():
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in text, f"task code can see the {what}"
    environment: dict[str, str] = seen["environment"]
    # nothing that reads a credential from a file, and no database URL (the task SDK sets its own
    # placeholder, which refuses database access from task code)
    credentials = ("SQL_ALCHEMY_CONN", "FERNET_KEY", "JWT_SECRET", "SECRET_KEY")
    assert not [name for name in environment if name.endswith("_CMD") and any(c in name for c in credentials)]
    for name, value in environment.items():
        if name.endswith("SQL_ALCHEMY_CONN"):
            assert not value.startswith("postgresql"), (name, value)


def probe_paths(pod: LocalPod, container: str) -> dict[str, str]:
    return {"ISOLATION_PROBE_PATHS": ":".join(str(path) for path in pod.visible_paths(container))}


def queue(stack: Stack) -> dict[str, Any]:
    return run_harness(stack.scheduler, "scheduler", "queue-task", "isolation_probe", "look_around")


def test_a_kubernetes_executor_task_pod_runs_a_task_with_no_secret_at_all(stack: Stack) -> None:
    template = json.loads(
        stack.evaluation.find("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP)["data"][names.POD_TEMPLATE_KEY]
    )
    assert not [v for v in template["spec"]["volumes"] if "secret" in v]
    pod = task_pod(stack.evaluation, stack.postgres.port, stack.api_server.port(names.API_SERVER_PORT), template)
    try:
        queued = queue(stack)
        ran = run_workload(pod, queued["workload"], extra_env=probe_paths(pod, "base"))
        assert ran.returncode == 0, (ran.stdout[-3000:], ran.stderr[-3000:])
        state = task_instance(stack.evaluation, stack.postgres, queued["ti_id"])
        assert state["state"] == "success"
        assert_sees_no_secret(report(pod), stack.secrets_task_code_must_not_see())
    finally:
        pod.stop()


@pytest.fixture(scope="module")
def worker(stack: Stack) -> LocalPod:
    pod = stack.worker
    pod.start("log-server")
    process = pod.start("worker", probe_paths(pod, "worker"))
    assert wait_for_log(pod, "worker", CELERY_READY, process, timeout=600), pod.log("worker")[-3000:]
    deadline = time.monotonic() + 600
    while pod.exec_probe("worker", "livenessProbe", timeout=300).returncode != 0:
        assert time.monotonic() < deadline, pod.log("worker")[-3000:]
        time.sleep(2)
    return pod


@dataclass
class CeleryRun:
    """One task the scheduler's side queued and sent through Redis to the worker, and what it left."""

    queued: dict[str, Any]
    sent: dict[str, Any]
    state: dict[str, Any]
    seen: dict[str, Any]
    """What the task code could see (its report)."""


@pytest.fixture(scope="module")
def celery_run(stack: Stack, worker: LocalPod) -> CeleryRun:
    # one run serves every test below: each reads it and none changes it (a run costs four Airflow processes)
    queued = queue(stack)
    sent = run_harness(stack.scheduler, "scheduler", "send-to-celery", queued["workload"])
    state = task_instance(stack.evaluation, stack.postgres, queued["ti_id"])
    return CeleryRun(queued, sent, state, report(worker))


def test_a_celery_worker_runs_a_task_with_only_the_broker(
    stack: Stack, worker: LocalPod, celery_run: CeleryRun
) -> None:
    mounted = {m.get("subPath") for m in worker.container("worker")["volumeMounts"] if m["name"].startswith("secret-")}
    assert mounted == {names.REDIS_BROKER_URL_KEY}
    # the result came back through Redis: the result backend needs no database
    assert celery_run.sent == {"state": "SUCCESS", "backend": "RedisBackend"}
    assert celery_run.state["state"] == "success"
    assert_sees_no_secret(celery_run.seen, stack.secrets_task_code_must_not_see())
    # ... though the log-server sidecar of the same pod holds the API secret key (its own mount)
    log_server = worker.container("log-server")
    assert any(m.get("subPath") == names.API_SECRET_KEY for m in log_server["volumeMounts"])


def test_the_api_server_reads_a_running_workers_log_from_its_log_server(stack: Stack, celery_run: CeleryRun) -> None:
    queued, ran = celery_run.queued, celery_run.state
    admin = decoded_secret(stack.evaluation, names.ADMIN_SECRET)
    base = f"http://127.0.0.1:{stack.api_server.port(names.API_SERVER_PORT)}"
    token = httpx.post(f"{base}/auth/token", json={"username": admin["username"], "password": admin["password"]})
    assert token.status_code == 201, token.text
    logs = httpx.get(
        f"{base}/api/v2/dags/isolation_probe/dagRuns/{quote(queued['run_id'], safe='')}"
        f"/taskInstances/look_around/logs/{ran['try_number']}",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        params={"full_content": "true"},
        timeout=120,
    )
    assert logs.status_code == 200, logs.text[:2000]
    assert "looked" in logs.text, logs.text[:3000]


def test_a_log_server_without_the_api_secret_key_refuses_the_api_servers_request(
    stack: Stack, worker: LocalPod, celery_run: CeleryRun
) -> None:
    """Why the key stays in the log-server sidecar: the api-server signs its log requests with it."""
    log_path = json.loads(celery_run.queued["workload"])["log_path"]
    with_key = f"http://127.0.0.1:{worker.port(names.WORKER_LOG_PORT)}/log/{log_path}"
    served = run_harness(stack.api_server, "api-server", "fetch-served-log", with_key, log_path)
    assert served["status"] == 200 and "looked" in served["text"], served
    keyless = LocalPod(stack.evaluation, "Deployment", names.worker_set("default"), stack.postgres.port)
    try:
        # the same sidecar with no key to read: Airflow makes up a random one
        process = keyless.start("log-server", {"AIRFLOW__API__SECRET_KEY_CMD": "cat /dev/null"})
        url = f"http://127.0.0.1:{keyless.port(names.WORKER_LOG_PORT)}/log/{log_path}"
        wait_for_http(url, timeout=600, process=process)
        refused = run_harness(stack.api_server, "api-server", "fetch-served-log", url, log_path)
        assert refused["status"] == 403, refused
    finally:
        keyless.stop()
