"""The stack's control plane as real local processes, from the rendered pods: the api-server (after its
init steps), dag-processor, scheduler and triggerer; the DAGs serialized as the dag-processor stores
them; and a DAG run through the REST API."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from components.config import names
from tests.local_pod import LocalPod, wait_for_http
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret, evaluate_ok

API_SERVER_INIT = ("wait-for-migrations", "bootstrap-admin")
"""The api-server pod's init containers, in order."""


def start_api_server(
    stack: Evaluation,
    postgres: PostgresServer,
    init: Sequence[str] = API_SERVER_INIT,
    extra_env: Mapping[str, str] | None = None,
    health: str | None = None,
    **pod_options: Any,
) -> LocalPod:
    """The api-server pod: its init steps (``init``), then the server on a free port, once ``health``
    (default: its readiness probe's path) answers 200. The caller stops the pod."""
    pod = LocalPod(stack, "Deployment", names.API_SERVER, postgres.port, **pod_options)
    try:
        for step in init:
            result = pod.run(step, timeout=600)
            assert result.returncode == 0, (step, result.stdout[-2000:], result.stderr[-2000:])
        process = pod.start("api-server", extra_env)
        path = health or pod.container("api-server")["readinessProbe"]["httpGet"]["path"]
        url = f"http://127.0.0.1:{pod.port(names.API_SERVER_PORT)}{path}"
        assert wait_for_http(url, timeout=600, process=process) == 200, pod.log("api-server")[-3000:]
    except BaseException:
        pod.stop()
        raise
    return pod


def reserialize_dags(stack: Evaluation, postgres: PostgresServer) -> None:
    """Parse the stack's DAGs into the metadata database, as the dag-processor stores them."""
    processor = LocalPod(stack, "Deployment", names.DAG_PROCESSOR, postgres.port)
    try:
        parsed = processor.run("dag-processor", timeout=600, args=["airflow", "dags", "reserialize"])
        assert parsed.returncode == 0, parsed.stderr[-3000:]
    finally:
        processor.stop()


@contextmanager
def components_running(
    stack: Evaluation, postgres: PostgresServer, **pod_options: Any
) -> Iterator[tuple[str, dict[str, str], list[LocalPod]]]:
    """Yields the api-server's URL, an admin's auth headers and the pods. ``pod_options`` go to every
    LocalPod (e.g. ``statsd_port``, ``pgbouncer_port``)."""
    pods: list[LocalPod] = []
    try:
        api_server = start_api_server(
            stack, postgres, init=["bootstrap-admin"], health="/api/v2/monitor/health", **pod_options
        )
        pods.append(api_server)
        base = f"http://127.0.0.1:{api_server.port(names.API_SERVER_PORT)}"
        for name, container in (
            (names.DAG_PROCESSOR, "dag-processor"),
            (names.SCHEDULER, "scheduler"),
            (names.TRIGGERER, "triggerer"),
        ):
            pod = LocalPod(
                stack,
                "Deployment",
                name,
                postgres.port,
                api_server_port=api_server.port(names.API_SERVER_PORT),
                **pod_options,
            )
            pods.append(pod)
            pod.start(container)
        admin = decoded_secret(stack, names.ADMIN_SECRET)
        token = httpx.post(
            f"{base}/auth/token", timeout=60, json={"username": admin["username"], "password": admin["password"]}
        )
        yield base, {"Authorization": f"Bearer {token.json()['access_token']}"}, pods
    finally:
        for pod in pods:
            pod.stop()


def run_dag(base: str, headers: dict[str, str], dag_id: str, timeout: float = 600) -> str:
    """Unpause the DAG once parsed, trigger it, wait for the run to end; its state."""
    http = httpx.Client(timeout=60)
    deadline = time.monotonic() + timeout
    while http.get(f"{base}/api/v2/dags/{dag_id}", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "the dag-processor never parsed the DAG"
        time.sleep(1)
    http.patch(f"{base}/api/v2/dags/{dag_id}", headers=headers, json={"is_paused": False})
    created = http.post(f"{base}/api/v2/dags/{dag_id}/dagRuns", headers=headers, json={"logical_date": None})
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    state = "unknown"
    while time.monotonic() < deadline:
        state = http.get(f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=headers).json()["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    return state


DEV_API_SERVER_CONFIG: dict[str, Any] = {"database": {"storageSize": "1Gi", "databaseName": "portforward"}}
"""The dev stack's overrides for the session's api-server: only its own database."""
DEV_API_SERVER_MODULES = ("tests/test_ui_port_forward_real.py", "tests/test_control_plane_real.py")
"""The modules that read from the session's dev api-server (one xdist scope, tests/conftest.py)."""


@dataclass
class RunningApiServer:
    pod: LocalPod
    port: int
    """The api-server's port on this machine."""
    stack: Evaluation


@contextmanager
def dev_api_server(postgres: PostgresServer) -> Iterator[RunningApiServer]:
    """The dev stack's api-server pod as rendered: its init steps (wait-for-migrations, bootstrap-admin),
    then the server, on a database holding the stack's DAGs as the dag-processor stores them. Tests only
    read from it: log in, list DAGs, trigger a run."""
    from tests.local_pod import copy_migrated_database

    stack = evaluate_ok("dev", **DEV_API_SERVER_CONFIG)
    copy_migrated_database(stack, postgres, with_admin=True)
    reserialize_dags(stack, postgres)
    pod = start_api_server(stack, postgres)
    try:
        yield RunningApiServer(pod, pod.port(names.API_SERVER_PORT), stack)
    finally:
        pod.stop()
