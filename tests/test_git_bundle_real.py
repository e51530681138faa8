"""The Git DAG bundle, proven with real components: a bare Git repository served on loopback by
`git daemon`, and Airflow 3.3's api-server, dag-processor and scheduler (LocalExecutor: tasks run in the
scheduler's pod) run from their rendered pods (dags.delivery: git-bundle).

Commit v1 of a DAG: the dag-processor clones it and the DAG appears. A run is created on v1 (the DAG is
paused, so it waits). Commit v2 (the task's command changes): a second DAG version is recorded, with the
new commit as its bundle version. Then the run made on v1 runs v1's code, and a new run runs v2's.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.config import names
from tests.local_pod import LocalPod, copy_migrated_database, wait_for_http
from tests.postgres_server import PostgresServer, free_port
from tests.support import Evaluation, decoded_secret, evaluate_ok

pytestmark = pytest.mark.real

DAG_ID = "git_bundle_probe"
TASK_ID = "say"
GIT = [
    "git",
    "-c",
    "user.name=airflow-k8s test",
    "-c",
    "user.email=test@example.invalid",
    "-c",
    "init.defaultBranch=main",
]


def dag_file(version: str) -> str:
    return f'''"""tests/test_git_bundle_real.py: a DAG whose task prints its version (from the Git DAG bundle)."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    BashOperator(task_id="{TASK_ID}", bash_command="echo {version}")
'''


@dataclass
class Repository:
    """A working copy that pushes to a bare repository served by `git daemon` on 127.0.0.1."""

    work: Path
    url: str

    def commit(self, version: str) -> str:
        (self.work / "dags").mkdir(exist_ok=True)
        (self.work / "dags" / f"{DAG_ID}.py").write_text(dag_file(version))
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", f"DAG {version}")
        git(self.work, "push", "-q", "origin", "main")
        return git(self.work, "rev-parse", "HEAD").strip()


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = tmp_path_factory.mktemp("git-server")
    git(base, "init", "-q", "--bare", "dags.git")
    work = tmp_path_factory.mktemp("git-work")
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(base / "dags.git"))
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            "--reuseaddr",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield Repository(work, f"git://127.0.0.1:{port}/dags.git")
    finally:
        daemon.terminate()
        daemon.wait(10)


def render(url: str) -> Evaluation:
    return evaluate_ok(
        "dev",
        database={"databaseName": "gitbundle"},
        dags={"delivery": "git-bundle", "gitBundle": {"repo": url, "subPath": "dags", "refreshInterval": 5}},
        # Airflow's defaults re-parse a file, and store a changed DAG, at most every 30 s. v2 is in the
        # bundle after one refresh; these make it a version within seconds, not half a minute
        extraEnv={
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
        },
    )


@dataclass
class Api:
    base: str
    headers: dict[str, str]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}/api/v2{path}", headers=self.headers, timeout=30)

    def wait(self, what: str, check: Any, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(1)

    def versions(self) -> list[dict[str, Any]]:
        response = self.get(f"/dags/{DAG_ID}/dagVersions")
        return response.json()["dag_versions"] if response.status_code == 200 else []

    def run_state(self, run_id: str) -> str:
        return self.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]

    def said(self, run_id: str) -> str:
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/return_value"
        return self.get(path).json()["value"]

    def trigger(self) -> str:
        created = httpx.post(
            f"{self.base}/api/v2/dags/{DAG_ID}/dagRuns", headers=self.headers, json={"logical_date": None}, timeout=30
        )
        assert created.status_code == 200, created.text
        return created.json()["dag_run_id"]


@dataclass
class Outcome:
    commits: list[str]
    versions: list[dict[str, Any]]
    first_run: tuple[str, str]
    second_run: tuple[str, str]


@pytest.fixture(scope="module")
def outcome(postgres: PostgresServer, repository: Repository) -> Iterator[Outcome]:
    stack = render(repository.url)
    copy_migrated_database(stack, postgres, with_admin=True)
    pods: list[LocalPod] = []
    try:
        api_server = LocalPod(stack, "Deployment", names.API_SERVER, postgres.port)
        pods.append(api_server)
        assert api_server.run("bootstrap-admin", 600).returncode == 0
        process = api_server.start("api-server")
        base = f"http://127.0.0.1:{api_server.port(names.API_SERVER_PORT)}"
        assert wait_for_http(f"{base}/api/v2/monitor/health", 600, process) == 200, api_server.log("api-server")
        commits = [repository.commit("v1")]
        for name, container in ((names.DAG_PROCESSOR, "dag-processor"), (names.SCHEDULER, "scheduler")):
            pod = LocalPod(
                stack, "Deployment", name, postgres.port, api_server_port=api_server.port(names.API_SERVER_PORT)
            )
            pods.append(pod)
            pod.start(container)
        processor = pods[1]
        admin = decoded_secret(stack, names.ADMIN_SECRET)
        token = httpx.post(f"{base}/auth/token", json={"username": admin["username"], "password": admin["password"]})
        api = Api(base, {"Authorization": f"Bearer {token.json()['access_token']}"})
        try:
            api.wait("the dag-processor to parse v1", lambda: api.get(f"/dags/{DAG_ID}").status_code == 200)
        except AssertionError:
            raise AssertionError(processor.log("dag-processor")[-5000:]) from None
        # made while the DAG is paused: it waits, pinned to v1
        first = api.trigger()
        commits.append(repository.commit("v2"))
        versions = api.wait("a second DAG version", lambda: api.versions() if len(api.versions()) >= 2 else None)
        httpx.patch(f"{base}/api/v2/dags/{DAG_ID}", headers=api.headers, json={"is_paused": False}, timeout=30)
        api.wait("the first run", lambda: api.run_state(first) in ("success", "failed"))
        second = api.trigger()
        api.wait("the second run", lambda: api.run_state(second) in ("success", "failed"))
        yield Outcome(
            commits,
            versions,
            (api.run_state(first), api.said(first)),
            (api.run_state(second), api.said(second)),
        )
    finally:
        for pod in pods:
            pod.stop()


def test_each_commit_is_a_dag_version(outcome: Outcome) -> None:
    recorded = [(v["version_number"], v["bundle_name"], v["bundle_version"]) for v in outcome.versions]
    assert recorded == [
        (1, names.GIT_BUNDLE_NAME, outcome.commits[0]),
        (2, names.GIT_BUNDLE_NAME, outcome.commits[1]),
    ]


def test_a_run_made_on_v1_runs_v1s_code(outcome: Outcome) -> None:
    assert outcome.first_run == ("success", "v1")


def test_a_new_run_runs_the_new_code(outcome: Outcome) -> None:
    assert outcome.second_run == ("success", "v2")
