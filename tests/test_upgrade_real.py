"""Upgrades across two real Airflow versions against one real PostgreSQL: the pre-upgrade backup, the
upgrade, a restore of the backup, and the refusal of a downgrade.

The older Airflow (the newest 3.2.x from PyPI) lives in its own virtual environment, made once with uv
(``AIRFLOW_K8S_OLD_AIRFLOW_VENV`` names an existing one). It migrates the stack's database first; then
the stack's pieces, run from the rendered objects with this project's Airflow 3.3, do what a `pulumi up`
with the new image does: the backup Job (its check in the Airflow image, pg_dump in the Postgres
image's role), then the scheduler's migration step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.config import names
from components.control_plane import database_backup
from tests.local_pod import LocalPod, create_metadata_database
from tests.postgres_server import SUPERUSER_PASSWORD, PostgresServer
from tests.support import Evaluation, decoded_secret, evaluate_ok

pytestmark = pytest.mark.real

OLD_AIRFLOW = "3.2.*"
CACHE = Path.home() / ".cache" / "airflow-k8s" / "airflow-3.2-venv"
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


@pytest.fixture(scope="module")
def old_airflow() -> Path:
    """A virtual environment with the older Airflow: made once, reused."""
    if explicit := os.environ.get("AIRFLOW_K8S_OLD_AIRFLOW_VENV"):
        return Path(explicit)
    if not (CACHE / "bin" / "airflow").exists():
        uv = shutil.which("uv")
        if uv is None:
            if os.environ.get("AIRFLOW_K8S_REQUIRE_REAL_TIERS"):
                raise RuntimeError("uv is needed to build the older Airflow's environment")
            pytest.skip("uv not found: it builds the older Airflow's environment (pip install uv)")
        subprocess.run([uv, "venv", "-q", "-p", "3.11", str(CACHE)], check=True)
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(CACHE / "bin" / "python"),
                f"apache-airflow[postgres]=={OLD_AIRFLOW}",
                "apache-airflow-providers-fab",
            ],
            check=True,
            timeout=900,
        )
    return CACHE


def old_version(venv: Path) -> str:
    found = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from importlib.metadata import version; print(version('apache-airflow-core'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip()


def sql(postgres: PostgresServer, statement: str, database: str) -> list[tuple[Any, ...]]:
    import ast

    return list(ast.literal_eval(postgres.sql(statement, database) or "[]"))


def revision(postgres: PostgresServer, database: str) -> str:
    [(found,)] = sql(postgres, "SELECT version_num FROM alembic_version", database)
    return str(found)


@pytest.fixture(scope="module")
def stack() -> Evaluation:
    return evaluate_ok("dev", database={"databaseName": "upgrade"}, backup={"keep": 2}, migrationWaitTimeoutSeconds=60)


def database_url(stack: Evaluation, postgres: PostgresServer) -> str:
    url = decoded_secret(stack, names.METADATA_SECRET)[names.METADATA_CONNECTION_KEY]
    return url.replace(
        f"{names.dns_name(names.POSTGRES, 'airflow-dev')}:{names.POSTGRES_PORT}", f"127.0.0.1:{postgres.port}"
    )


def backup_job(stack: Evaluation, postgres: PostgresServer, backups: Path) -> LocalPod:
    [name] = stack.names_of("Job")  # the backup Job of this image
    job = stack.find("Job", name)
    manifest = {"metadata": job["metadata"], "spec": job["spec"]["template"]["spec"]}
    return LocalPod(stack, "Pod", "backup", postgres.port, manifest=manifest, claims={names.BACKUPS_CLAIM: backups})


@pytest.fixture(scope="module")
def upgraded(
    postgres: PostgresServer, stack: Evaluation, old_airflow: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The older Airflow migrates; then the backup Job and the new scheduler's migration step run."""
    create_metadata_database(stack, postgres)
    home = tmp_path_factory.mktemp("old-airflow-home")
    old = subprocess.run(
        [str(old_airflow / "bin" / "airflow"), "db", "migrate"],
        env={
            "PATH": f"{old_airflow / 'bin'}:/usr/bin:/bin",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(stack, postgres),
            "AIRFLOW__CORE__AUTH_MANAGER": FAB,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert old.returncode == 0, old.stderr[-3000:]
    before = revision(postgres, "upgrade")
    backups = tmp_path_factory.mktemp("backups")
    job = backup_job(stack, postgres, backups)
    scheduler = LocalPod(stack, "Deployment", names.SCHEDULER, postgres.port)
    try:
        check = job.run("backup-needed", 300)
        dump = job.run("db-backup", 300)
        migrated = scheduler.run("migrate-database", 900)
        yield {
            "old_revision": before,
            "check": check,
            "dump": dump,
            "migrated": migrated,
            "backups": backups,
            "job": job,
            "scheduler": scheduler,
        }
    finally:
        job.stop()
        scheduler.stop()


def test_a_pending_migration_is_backed_up_first(upgraded: dict[str, Any]) -> None:
    check, dump = upgraded["check"], upgraded["dump"]
    assert check.returncode == 0 and "a migration is pending" in check.stdout, check.stderr[-2000:]
    assert dump.returncode == 0, dump.stderr[-2000:]
    [written] = sorted(upgraded["backups"].glob("*.dump"))
    assert written.name.endswith(f"-{upgraded['old_revision']}.dump")
    assert written.stat().st_size > 10_000


def test_the_new_version_migrates_to_its_head(upgraded: dict[str, Any], postgres: PostgresServer) -> None:
    assert upgraded["migrated"].returncode == 0, upgraded["migrated"].stderr[-3000:]
    assert revision(postgres, "upgrade") != upgraded["old_revision"]
    assert "Migrating the Airflow database" in upgraded["migrated"].stdout + upgraded["migrated"].stderr


def test_the_backup_restores_into_a_fresh_database_at_the_old_revision(
    upgraded: dict[str, Any], postgres: PostgresServer
) -> None:
    """docs/operations.md's restore: pg_restore the dump into an empty database."""
    [written] = sorted(upgraded["backups"].glob("*.dump"))
    postgres.sql("CREATE DATABASE restored")
    restored = subprocess.run(
        [
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--dbname=postgresql://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{postgres.port}/restored",
            str(written),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert revision(postgres, "restored") == upgraded["old_revision"]
    assert sql(postgres, "SELECT count(*) FROM dag", "restored") == [(0,)]


def test_no_backup_when_nothing_is_pending_and_only_the_newest_are_kept(
    upgraded: dict[str, Any], stack: Evaluation
) -> None:
    job: LocalPod = upgraded["job"]
    flag = Path(job.local_path(job.container("backup-needed"), database_backup.FLAG))
    flag.unlink(missing_ok=True)
    again = job.run("backup-needed", 300)
    assert again.returncode == 0 and "no migration pending" in again.stdout
    assert job.run("db-backup", 300).stdout.strip() == "db-backup: nothing to back up"
    # three more dumps (as if three upgrades happened): backup.keep 2 leaves the newest two
    for index in range(3):
        flag.write_text(f"r{index}")
        made = job.run("db-backup", 300)
        assert made.returncode == 0, made.stderr
        subprocess.run(["sleep", "1.1"], check=True)  # the file names carry the second
    kept = sorted(path.name for path in upgraded["backups"].glob("*.dump"))
    assert [name.rsplit("-", 1)[1] for name in kept] == ["r1.dump", "r2.dump"]


def test_the_older_version_refuses_the_newer_schema_and_changes_nothing(
    upgraded: dict[str, Any], postgres: PostgresServer, old_airflow: Path
) -> None:
    """A downgrade: the older image's migration step (the same script, the older Airflow) against the
    upgraded database."""
    scheduler: LocalPod = upgraded["scheduler"]
    container = scheduler.container("migrate-database")
    command = scheduler.command(container)
    assert command[0] == "python"
    counts = "SELECT (SELECT count(*) FROM job), (SELECT count(*) FROM ab_user), (SELECT count(*) FROM log)"
    before = (revision(postgres, "upgrade"), sql(postgres, counts, "upgrade"))
    refused = scheduler.run("migrate-database", 600, [str(old_airflow / "bin" / "python"), *command[1:]])
    assert refused.returncode == 3, (refused.stdout[-2000:], refused.stderr[-2000:])
    assert f"Airflow {old_version(old_airflow)} does not know" in refused.stderr
    assert (revision(postgres, "upgrade"), sql(postgres, counts, "upgrade")) == before
