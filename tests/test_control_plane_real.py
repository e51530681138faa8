"""The control plane's commands, exactly as the program builds them, run with real Airflow 3.3 against
a real PostgreSQL: migration, wait-for-migrations, admin bootstrap and login, and the probes.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.airflow_pods import environment
from components.config import names
from components.config.loading import load_stack_config
from tests import postgres_server
from tests.airflow_stack import DEV_API_SERVER_CONFIG, RunningApiServer
from tests.local_pod import (
    LocalPod,
    copy_migrated_database,
    create_metadata_database,
    template_migration,
    wait_for_http,
)
from tests.support import Evaluation, decoded_secret, evaluate_ok
from tools.mock_engine import stack_config

pytestmark = pytest.mark.real

WAIT_LIMIT = 5
"""migrationWaitTimeoutSeconds for these tests (the stack's default is 600)."""


@pytest.fixture(scope="module")
def stack() -> Evaluation:
    return evaluate_ok("dev", migrationWaitTimeoutSeconds=WAIT_LIMIT)


@pytest.fixture
def pods() -> Iterator[list[LocalPod]]:
    started: list[LocalPod] = []
    yield started
    for pod in started:
        pod.stop()


def pod(pods: list[LocalPod], evaluation: Evaluation, name: str, port: int) -> LocalPod:
    local = LocalPod(evaluation, "Deployment", name, port)
    pods.append(local)
    return local


@pytest.fixture(scope="module")
def migrated(postgres: postgres_server.PostgresServer, stack: Evaluation) -> str:
    """The scheduler's migrate-database init container, run for real on an empty database: the run that
    made the server's template database (the dev stack's step; tests/local_pod.py). This module's
    database is a copy of its result; its output is returned."""
    output = template_migration(postgres)
    copy_migrated_database(stack, postgres)
    return output


def test_migration_init_container_creates_the_schema_at_head(
    migrated: str, postgres: postgres_server.PostgresServer, stack: Evaluation, pods: list[LocalPod]
) -> None:
    assert "Database migration done!" in migrated
    assert "alembic_version" in postgres.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", "airflow")
    scheduler = pod(pods, stack, names.SCHEDULER, postgres.port)
    check = scheduler.run("scheduler", 120, ["airflow", "db", "check-migrations", "--migration-wait-timeout", "1"])
    assert check.returncode == 0, check.stderr[-2000:]


def test_migration_is_idempotent_when_a_second_scheduler_runs_it(
    migrated: str, postgres: postgres_server.PostgresServer, stack: Evaluation, pods: list[LocalPod]
) -> None:
    second = pod(pods, stack, names.SCHEDULER, postgres.port).run("migrate-database", timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]


def test_a_migrated_database_is_recognised_without_starting_airflow(
    migrated: str, postgres: postgres_server.PostgresServer, stack: Evaluation, pods: list[LocalPod]
) -> None:
    """Every rollout that keeps the Airflow version: the migration and wait steps read the version tables
    (core and FAB) with one query, and Airflow is never imported."""
    scheduler = pod(pods, stack, names.SCHEDULER, postgres.port)
    result, imported = run_recording_airflow(scheduler, "migrate-database")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "nothing to migrate; Airflow not started" in result.stdout
    assert not imported
    for workload in (names.API_SERVER, names.DAG_PROCESSOR, names.TRIGGERER):
        waited, imported = run_recording_airflow(pod(pods, stack, workload, postgres.port), "wait-for-migrations")
        assert waited.returncode == 0 and "schema at head" in waited.stdout, waited.stderr[-2000:]
        assert not imported, workload


def test_a_database_one_revision_behind_is_migrated(
    postgres: postgres_server.PostgresServer, pods: list[LocalPod]
) -> None:
    evaluation = evaluate_ok("dev", migrationWaitTimeoutSeconds=WAIT_LIMIT, database={"databaseName": "behind"})
    copy_migrated_database(evaluation, postgres)
    # the FAB tables one revision behind this image's head
    postgres.sql(f"UPDATE alembic_version_fab SET version_num = '{previous_fab_revision()}'", "behind")
    scheduler = pod(pods, evaluation, names.SCHEDULER, postgres.port)
    waited = pod(pods, evaluation, names.TRIGGERER, postgres.port).run("wait-for-migrations", WAIT_LIMIT + 300)
    assert waited.returncode == 1 and f"alembic_version_fab {previous_fab_revision()}" in waited.stderr, waited.stderr
    result = scheduler.run("migrate-database", 600)
    # the version differs, so `airflow db migrate` runs
    output = result.stdout + result.stderr
    assert f"alembic_version_fab {previous_fab_revision()}" in output, output[-3000:]
    assert "Migrating the Airflow database" in output, output[-3000:]
    assert (
        "schema at head" in pod(pods, evaluation, names.TRIGGERER, postgres.port).run("wait-for-migrations", 300).stdout
    )


def previous_fab_revision() -> str:
    """The revision the newest FAB migration of this Airflow builds on, from the migration files."""
    spec = importlib.util.find_spec("airflow")  # found, not imported: Airflow stays out of this process
    assert spec is not None and spec.submodule_search_locations
    versions = Path(next(iter(spec.submodule_search_locations))) / "providers" / "fab" / "migrations" / "versions"
    newest = sorted(versions.glob("0*.py"))[-1].read_text()
    found = re.search(r'^down_revision = "([0-9a-f]+)"', newest, re.MULTILINE)
    assert found is not None
    return found.group(1)


def test_a_database_migrated_by_a_newer_airflow_is_refused_and_left_unchanged(
    postgres: postgres_server.PostgresServer, pods: list[LocalPod]
) -> None:
    """A downgrade: the database's revision is one this image's migrations do not contain."""
    evaluation = evaluate_ok("dev", migrationWaitTimeoutSeconds=WAIT_LIMIT, database={"databaseName": "newer"})
    copy_migrated_database(evaluation, postgres)
    postgres.sql("UPDATE alembic_version SET version_num = 'f0e1d2c3b4a5'", "newer")
    counts = "SELECT (SELECT count(*) FROM job), (SELECT count(*) FROM ab_user), (SELECT count(*) FROM log)"
    before = postgres.sql(counts, "newer")
    result = pod(pods, evaluation, names.SCHEDULER, postgres.port).run("migrate-database", 600)
    assert result.returncode == 3, (result.stdout[-2000:], result.stderr[-2000:])
    assert "refusing to start" in result.stderr and "revision f0e1d2c3b4a5" in result.stderr
    assert "Airflow 3.3.2 does not know" in result.stderr
    # nothing written: the same revision, the same rows
    assert postgres.sql("SELECT version_num FROM alembic_version", "newer") == "[('f0e1d2c3b4a5',)]"
    assert postgres.sql(counts, "newer") == before
    # and no other component starts against that schema: the wait step refuses at once
    waited = pod(pods, evaluation, names.API_SERVER, postgres.port).run("wait-for-migrations", WAIT_LIMIT + 300)
    assert waited.returncode == 3 and "refusing to start" in waited.stderr, waited.stderr[-2000:]


RECORD_AIRFLOW = """
import atexit, os, sys
atexit.register(lambda: "airflow" in sys.modules and open(os.environ["RECORD_AIRFLOW_TO"], "a").write("imported\n"))
"""


def run_recording_airflow(local: LocalPod, container: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run an init container; whether any Python process it started imported airflow."""
    site = local.root / "record-airflow"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(RECORD_AIRFLOW)
    record = site / "imported"
    record.write_text("")
    result = local.run(container, 600, None, {"PYTHONPATH": str(site), "RECORD_AIRFLOW_TO": str(record)})
    return result, bool(record.read_text())


def test_wait_for_migrations_succeeds_once_the_schema_is_at_head(
    migrated: str, postgres: postgres_server.PostgresServer, stack: Evaluation, pods: list[LocalPod]
) -> None:
    for workload in (names.API_SERVER, names.DAG_PROCESSOR, names.TRIGGERER):
        result = pod(pods, stack, workload, postgres.port).run("wait-for-migrations", timeout=WAIT_LIMIT + 300)
        assert result.returncode == 0, (workload, result.stdout[-2000:], result.stderr[-2000:])
        assert "schema at head" in result.stdout


def test_wait_for_migrations_fails_within_its_timeout_on_an_unmigrated_database(
    postgres: postgres_server.PostgresServer, pods: list[LocalPod]
) -> None:
    evaluation = evaluate_ok(
        "dev", migrationWaitTimeoutSeconds=WAIT_LIMIT, database={"storageSize": "2Gi", "databaseName": "unmigrated"}
    )
    create_metadata_database(evaluation, postgres)
    # it gives up on its own (the subprocess bound is only a generous backstop)
    result = pod(pods, evaluation, names.API_SERVER, postgres.port).run("wait-for-migrations", timeout=WAIT_LIMIT + 300)
    assert result.returncode != 0
    assert f"gave up after {WAIT_LIMIT}s" in result.stderr


def test_wait_for_migrations_retries_an_unreachable_database_until_its_timeout(
    stack: Evaluation, pods: list[LocalPod]
) -> None:
    nobody_listens = postgres_server.free_port()
    result = pod(pods, stack, names.DAG_PROCESSOR, nobody_listens).run("wait-for-migrations", timeout=WAIT_LIMIT + 300)
    assert result.returncode != 0
    # more than one attempt: an unreachable database is retried, not given up on at once
    attempts = int(result.stderr.split(" attempts")[0].rsplit(" ", 1)[-1])
    assert attempts >= 2
    assert f"gave up after {WAIT_LIMIT}s" in result.stderr


def test_admin_bootstrap_creates_the_generated_login_and_is_idempotent(
    migrated: str, postgres: postgres_server.PostgresServer, stack: Evaluation, pods: list[LocalPod]
) -> None:
    api_server = pod(pods, stack, names.API_SERVER, postgres.port)
    first = api_server.run("bootstrap-admin", timeout=180)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "created user 'admin'" in first.stdout or "is up to date" in first.stdout
    second, imported = run_recording_airflow(api_server, "bootstrap-admin")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "user 'admin' is up to date; Airflow not started" in second.stdout
    assert not imported


def post_json(url: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return int(error.code), {}


def test_api_server_serves_health_and_accepts_only_the_generated_admin_password(
    dev_api_server: RunningApiServer,
) -> None:
    """The session's dev api-server (tests/airflow_stack.py): started after its init steps, as rendered."""
    api_server, stack = dev_api_server.pod, dev_api_server.stack
    base = f"http://127.0.0.1:{dev_api_server.port}"
    health = api_server.container("api-server")["livenessProbe"]["httpGet"]["path"]
    config, secret_keys = stack_config(stack.stack, DEV_API_SERVER_CONFIG)
    assert health == environment.health_path(load_stack_config(config, secret_keys))
    assert wait_for_http(base + health, timeout=120) == 200, api_server.log("api-server")[-3000:]
    # the readiness probe: the execution API answers, without credentials
    ready = api_server.container("api-server")["readinessProbe"]["httpGet"]["path"]
    assert ready == "/execution/health"
    assert wait_for_http(base + ready, timeout=120) == 200
    admin = decoded_secret(stack, names.ADMIN_SECRET)
    ok, body = post_json(base + "/auth/token", {"username": admin["username"], "password": admin["password"]})
    assert ok == 201, api_server.log("api-server")[-3000:]
    assert isinstance(body.get("access_token"), str)
    rejected, _ = post_json(base + "/auth/token", {"username": admin["username"], "password": "admin"})
    assert rejected == 401
    # nothing was written outside the emptyDir mounts (the image's filesystem is read-only)
    assert all(path.is_symlink() for path in api_server.airflow_home.iterdir())


def test_scheduler_health_check_probe_passes_on_a_running_scheduler(
    migrated: str, postgres: postgres_server.PostgresServer, stack: Evaluation, pods: list[LocalPod]
) -> None:
    scheduler = pod(pods, stack, names.SCHEDULER, postgres.port)
    process = scheduler.start("scheduler")
    probe = scheduler.container("scheduler")["livenessProbe"]["httpGet"]
    assert probe["port"] == "health"
    url = f"http://127.0.0.1:{scheduler.port(names.SCHEDULER_HEALTH_PORT)}{probe['path']}"
    deadline = time.monotonic() + 120
    status = 0
    while time.monotonic() < deadline:
        status = wait_for_http(url, timeout=120, process=process)
        if status == 200:
            break
        time.sleep(2)
    assert status == 200, scheduler.log("scheduler")[-3000:]


@pytest.mark.parametrize(
    ("workload", "container"), [(names.DAG_PROCESSOR, "dag-processor"), (names.TRIGGERER, "triggerer")]
)
def test_jobs_check_liveness_probe_passes_against_the_running_process_within_its_timeout(
    workload: str,
    container: str,
    migrated: str,
    postgres: postgres_server.PostgresServer,
    stack: Evaluation,
    pods: list[LocalPod],
) -> None:
    local = pod(pods, stack, workload, postgres.port)
    process = local.start(container)
    probe = local.container(container)["livenessProbe"]
    deadline = time.monotonic() + 120
    result = None
    while time.monotonic() < deadline:
        assert process.poll() is None, local.log(container)[-3000:]
        # how long the probe takes is for the start-up benchmark; here it must pass
        result = local.exec_probe(container, "livenessProbe", timeout=max(300, probe["timeoutSeconds"]))
        if result.returncode == 0:
            break
        time.sleep(3)
    assert result is not None and result.returncode == 0, (
        result and result.stdout[-2000:],
        local.log(container)[-3000:],
    )
