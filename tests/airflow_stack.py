"""The stack's control plane as real local processes, from the rendered pods: the api-server (after its
bootstrap step), dag-processor, scheduler and triggerer; and a DAG run through the REST API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from components.config import names
from tests.local_pod import LocalPod, wait_for_http
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret


@contextmanager
def components_running(
    stack: Evaluation, postgres: PostgresServer, **pod_options: Any
) -> Iterator[tuple[str, dict[str, str], list[LocalPod]]]:
    """Yields the api-server's URL, an admin's auth headers and the pods. ``pod_options`` go to every
    LocalPod (e.g. ``statsd_port``, ``pgbouncer_port``)."""
    pods: list[LocalPod] = []
    try:
        api_server = LocalPod(stack, "Deployment", names.API_SERVER, postgres.port, **pod_options)
        pods.append(api_server)
        bootstrap = api_server.run("bootstrap-admin", 600)
        assert bootstrap.returncode == 0, bootstrap.stderr[-3000:]
        process = api_server.start("api-server")
        base = f"http://127.0.0.1:{api_server.port(names.API_SERVER_PORT)}"
        assert wait_for_http(f"{base}/api/v2/monitor/health", 600, process) == 200, api_server.log("api-server")
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
