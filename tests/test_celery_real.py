"""The Celery executor for real: the Redis broker from its rendered config Secret, a Celery worker with
the rendered command and environment (broker and result backend read from mounted files), its
liveness probe, and the preStop drain against the running worker.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from components.config import names
from components.executors.celery_workers import CELERY_APP
from tests.local_pod import CELERY_READY, LocalPod, wait_for_log
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret, evaluate_ok

pytestmark = pytest.mark.real

WORKER = names.worker_set("default")


@pytest.fixture(scope="module")
def stack() -> Evaluation:
    return evaluate_ok(
        "dev",
        executor="CeleryExecutor",
        database={"storageSize": "1Gi", "databaseName": "celery"},
        workers=[
            {"name": "default", "queues": ["default", "reports"], "concurrency": 2, "terminationGracePeriodSeconds": 90}
        ],
    )


def wait_for_probe(pod: LocalPod, container: str, probe: str, timeout: float) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while True:
        result = pod.exec_probe(container, probe, timeout=60)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(2)


@pytest.fixture(scope="module")
def broker(stack: Evaluation, postgres: PostgresServer) -> Iterator[LocalPod]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server not found: install it (Debian: apt-get install redis-server)")
    # Redis listens on a free port of this machine: its config file's `port` line is mapped (LocalPod)
    pod = LocalPod(stack, "StatefulSet", names.REDIS, postgres.port)
    pod.start("redis")
    try:
        ready = wait_for_probe(pod, "redis", "readinessProbe", timeout=30)
        assert ready.returncode == 0, pod.log("redis")[-2000:]
        yield pod
    finally:
        pod.stop()


@pytest.fixture(scope="module")
def started_worker(
    stack: Evaluation, postgres: PostgresServer, broker: LocalPod
) -> Iterator[tuple[LocalPod, subprocess.CompletedProcess[str]]]:
    """The worker, once its liveness probe passed; and that probe's run (it starts Airflow: seconds of CPU)."""
    # a Celery worker never touches the metadata database: nothing to migrate for it
    pod = LocalPod(stack, "Deployment", WORKER, postgres.port, redis_port=broker.port(names.REDIS_PORT))
    process = pod.start("worker")
    try:
        assert wait_for_log(pod, "worker", CELERY_READY, process, timeout=150), pod.log("worker")[-3000:]
        alive = wait_for_probe(pod, "worker", "livenessProbe", timeout=150)
        assert process.poll() is None and alive.returncode == 0, pod.log("worker")[-3000:]
        yield pod, alive
    finally:
        pod.stop()


@pytest.fixture(scope="module")
def worker(started_worker: tuple[LocalPod, subprocess.CompletedProcess[str]]) -> LocalPod:
    return started_worker[0]


def test_broker_answers_its_probe_with_the_generated_password_only(broker: LocalPod, stack: Evaluation) -> None:
    assert broker.exec_probe("redis", "livenessProbe", timeout=30).returncode == 0
    port = str(broker.port(names.REDIS_PORT))
    anonymous = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", port, "ping"], capture_output=True, text=True)
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    password = decoded_secret(stack, names.REDIS_SECRET)[names.REDIS_PASSWORD_KEY]
    authenticated = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", port, "ping"],
        env={"REDISCLI_AUTH": password},
        capture_output=True,
        text=True,
    )
    assert authenticated.stdout.strip() == "PONG"


def active_queues(pod: LocalPod) -> list[str]:
    command = ["celery", "--app", CELERY_APP, "inspect", "active_queues", "--json", "--timeout", "10"]
    result = pod.run("worker", 120, command)
    assert result.returncode == 0, result.stderr[-2000:]
    replies = json.loads(result.stdout.strip().splitlines()[-1])
    return sorted(queue["name"] for queues in replies.values() for queue in queues)


def test_worker_liveness_probe_pings_the_running_worker(
    started_worker: tuple[LocalPod, subprocess.CompletedProcess[str]],
) -> None:
    worker, probe = started_worker
    assert worker.processes[0].poll() is None
    assert probe.returncode == 0
    assert "pong" in probe.stdout.lower()


def test_worker_consumes_exactly_its_queues(worker: LocalPod) -> None:
    assert active_queues(worker) == ["default", "reports"]


def test_pre_stop_drain_stops_consuming_without_stopping_the_worker(worker: LocalPod) -> None:
    container = worker.container("worker")
    command = worker.command({**container, "args": container["lifecycle"]["preStop"]["exec"]["command"]})
    drained = worker.run("worker", 300, command)
    assert drained.returncode == 0, drained.stderr[-2000:]
    assert "stopped consuming 'default'" in drained.stdout and "has no running task" in drained.stdout
    assert active_queues(worker) == []
    # the worker itself keeps running until Kubernetes sends SIGTERM, then stops on its own
    [process] = worker.processes
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) is not None
