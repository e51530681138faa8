"""Start-up benchmark (not a test): the dev stack's Airflow pods as real local processes, from the rendered
pods, all started at once, each running its init containers in order, then its main container, with its
probes run as rendered (startup probe every periodSeconds until it passes, then the readiness probe).

It prints, for a cold start (an empty database) and for a rollout with nothing to migrate (the same pods
started again on the migrated database): the seconds until every pod is healthy, the CPU seconds spent
(every process it started), and the Airflow starts (Python processes that imported airflow) before the
main processes, by pod; then the seconds from triggering a one-task DAG to its success.

    uv run --frozen --group test python -m tools.bench_startup [--runs N]

Needs what the real tests need (Debian's PostgreSQL; Airflow from the `airflow` dependency group).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from components.airflow_pods import dag_sources
from components.config import names
from tests import postgres_server
from tests.local_pod import LocalPod, create_metadata_database
from tests.support import decoded_secret, evaluate_ok
from tools.mock_engine import Evaluation

PODS = (
    (names.API_SERVER, "api-server"),
    (names.SCHEDULER, "scheduler"),
    (names.DAG_PROCESSOR, "dag-processor"),
    (names.TRIGGERER, "triggerer"),
)
DAG_ID = "bench_startup"
DAG_FILE = f'''"""tools/bench_startup.py: one task."""
import pendulum
from airflow.sdk import DAG, task

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):

    @task
    def hello() -> int:
        return 1

    hello()
'''
# Every Python process that imported airflow appends its command line here when it exits.
SITECUSTOMIZE = """
import atexit, json, os, sys
def _record():
    if "airflow" in sys.modules and os.environ.get("BENCH_AIRFLOW_STARTS"):
        with open(os.environ["BENCH_AIRFLOW_STARTS"], "a") as f:
            f.write(json.dumps({"pod": os.environ.get("BENCH_POD", ""), "argv": sys.argv}) + "\\n")
atexit.register(_record)
"""


@dataclass
class PodRun:
    pod: LocalPod
    container: str
    healthy_after: float | None = None
    error: str | None = None
    init_seconds: dict[str, float] = field(default_factory=lambda: {})


def probe_passes(pod: LocalPod, container: dict[str, Any], probe: dict[str, Any], extra: dict[str, str]) -> bool:
    timeout = probe.get("timeoutSeconds", 1)
    try:
        if "exec" in probe:
            command = pod.command({**container, "args": probe["exec"]["command"], "command": []})
            result = pod.run(container["name"], timeout, command, extra)
            return result.returncode == 0
        if "httpGet" in probe:
            port = named_port(container, probe["httpGet"]["port"])
            url = f"http://127.0.0.1:{pod.port(port)}{probe['httpGet']['path']}"
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return 200 <= response.status < 400
        port = named_port(container, probe["tcpSocket"]["port"])
        with socket.create_connection(("127.0.0.1", pod.port(port)), timeout=timeout):
            return True
    except Exception:
        return False


def named_port(container: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container.get("ports", []) if p["name"] == port)


def run_pod(run: PodRun, started: float, extra: dict[str, str]) -> None:
    pod = run.pod
    try:
        for init in pod.spec.get("initContainers", []):
            if init.get("restartPolicy") == "Always":
                continue  # native sidecars (log-cleanup, git-sync): not on the start-up path here
            began = time.monotonic()
            result = pod.run(init["name"], 900, None, extra)
            run.init_seconds[init["name"]] = time.monotonic() - began
            if result.returncode != 0:
                run.error = f"{init['name']} failed: {result.stderr[-2000:]}"
                return
        main = pod.container(run.container)
        pod.start(run.container, extra)
        startup = main.get("startupProbe")
        readiness = main.get("readinessProbe")
        for probe in [p for p in (startup, readiness) if p]:
            while not probe_passes(pod, main, probe, extra):
                if time.monotonic() - started > 1800:
                    run.error = f"{run.container}: probe never passed"
                    return
                time.sleep(probe.get("periodSeconds", 10))
        run.healthy_after = time.monotonic() - started
    except Exception as error:  # reported, not raised: the other pods keep running
        run.error = repr(error)


def cpu_seconds() -> float:
    finished = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = finished.ru_utime + finished.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


@dataclass
class Phase:
    seconds: float
    cpu: float
    starts: dict[str, int]
    init_seconds: dict[str, dict[str, float]]
    pods: list[LocalPod]
    healthy: dict[str, float]


def start_all(evaluation: Evaluation, postgres: postgres_server.PostgresServer, starts_file: Path, site: Path) -> Phase:
    starts_file.write_text("")
    api_server = LocalPod(evaluation, "Deployment", names.API_SERVER, postgres.port)
    runs = [PodRun(api_server, "api-server")]
    for name, container in PODS[1:]:
        pod = LocalPod(
            evaluation, "Deployment", name, postgres.port, api_server_port=api_server.port(names.API_SERVER_PORT)
        )
        runs.append(PodRun(pod, container))
    cpu_before = cpu_seconds()
    started = time.monotonic()
    threads: list[threading.Thread] = []
    for run in runs:
        extra = {"PYTHONPATH": str(site), "BENCH_AIRFLOW_STARTS": str(starts_file), "BENCH_POD": run.container}
        threads.append(threading.Thread(target=run_pod, args=(run, started, extra)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    cpu = cpu_seconds() - cpu_before
    errors = [run.error for run in runs if run.error]
    if errors:
        for run in runs:
            run.pod.stop()
        raise RuntimeError("; ".join(errors))
    starts: dict[str, int] = {run.container: 0 for run in runs}
    for line in starts_file.read_text().splitlines():
        record = json.loads(line)
        starts[record["pod"]] = starts.get(record["pod"], 0) + 1
    healthy = {run.container: run.healthy_after or 0.0 for run in runs}
    return Phase(
        seconds, cpu, starts, {run.container: run.init_seconds for run in runs}, [run.pod for run in runs], healthy
    )


def first_task_seconds(evaluation: Evaluation, api_server: LocalPod) -> float:
    base = f"http://127.0.0.1:{api_server.port(names.API_SERVER_PORT)}"
    admin = decoded_secret(evaluation, names.ADMIN_SECRET)
    http = httpx.Client(timeout=120)
    token = http.post(f"{base}/auth/token", json={"username": admin["username"], "password": admin["password"]})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    deadline = time.monotonic() + 600
    while http.get(f"{base}/api/v2/dags/{DAG_ID}", headers=headers).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the DAG was never parsed")
        time.sleep(1)
    http.patch(f"{base}/api/v2/dags/{DAG_ID}", headers=headers, json={"is_paused": False})
    began = time.monotonic()
    run = http.post(f"{base}/api/v2/dags/{DAG_ID}/dagRuns", headers=headers, json={"logical_date": None}).json()
    while True:
        state = http.get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", headers=headers).json()["state"]
        if state == "success":
            return time.monotonic() - began
        if state == "failed" or time.monotonic() - began > 600:
            raise RuntimeError(f"the DAG run ended {state}")
        time.sleep(0.5)


def stop(pods: list[LocalPod]) -> None:
    for pod in pods:
        pod.stop()


def measure_once(evaluate: Callable[[], Evaluation]) -> dict[str, Any]:
    postgres = postgres_server.start()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    site = work / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    try:
        evaluation = evaluate()
        create_metadata_database(evaluation, postgres)
        cold = start_all(evaluation, postgres, work / "starts-cold.jsonl", site)
        report("cold start (this run)", [cold])
        try:
            task = first_task_seconds(evaluation, cold.pods[0])
        finally:
            stop(cold.pods)
        rollout = start_all(evaluation, postgres, work / "starts-rollout.jsonl", site)
        stop(rollout.pods)
        return {"cold": cold, "rollout": rollout, "first_task": task}
    finally:
        postgres.stop()


def report(label: str, phases: list[Phase]) -> None:
    seconds = [p.seconds for p in phases]
    cpu = [p.cpu for p in phases]
    runs = ", ".join(f"{value:.1f}" for value in seconds)
    print(f"{label}: all healthy after {statistics.median(seconds):.1f} s (runs: {runs})")
    print(f"  CPU seconds: {statistics.median(cpu):.1f} (runs: {', '.join(f'{c:.1f}' for c in cpu)})")
    last = phases[-1]
    print(f"  Airflow starts in init containers and probes (main processes excluded): {last_starts(last)}")
    for pod, steps in last.init_seconds.items():
        shown = ", ".join(f"{step} {value:.1f} s" for step, value in steps.items()) or "none"
        print(f"  {pod}: init containers {shown}; healthy after {last.healthy[pod]:.1f} s")


def last_starts(phase: Phase) -> str:
    return ", ".join(f"{pod} {count}" for pod, count in phase.starts.items()) + f" (total {sum(phase.starts.values())})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-dags-"))
    (folder / f"{DAG_ID}.py").write_text(DAG_FILE)
    dag_sources.REPOSITORY_DAGS = folder  # the stack ships this folder's DAG (a module attribute, read at render)

    def evaluate() -> Evaluation:
        return evaluate_ok("dev", database={"databaseName": "bench"})

    results = [measure_once(evaluate) for _ in range(args.runs)]
    print(f"dev stack, {os.cpu_count()} cores, {args.runs} run(s); probes and init containers as rendered")
    report("cold start", [r["cold"] for r in results])
    report("rollout, nothing to migrate", [r["rollout"] for r in results])
    tasks = [r["first_task"] for r in results]
    runs = ", ".join(f"{value:.1f}" for value in tasks)
    print(f"first task: triggered to success in {statistics.median(tasks):.1f} s (runs: {runs})")


if __name__ == "__main__":
    main()
