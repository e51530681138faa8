"""The metadata database, read cheaply: without starting Airflow (its import and CLI take seconds, more under a
CPU limit), so the pods' start-up steps and probes return fast when there is nothing to do.

Used by wait-for-migrations.py, migrate-database.py, bootstrap-admin.py and job-alive.py (shipped in the
same folder, so ``import metadata_db`` finds it). Only psycopg2, which the image ships, is imported.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

VERSION_TABLES = {
    # alembic version table -> where its migrations live, below the airflow package
    "alembic_version": ("migrations", "versions"),
    "alembic_version_fab": ("providers", "fab", "migrations", "versions"),
}


def airflow_package() -> Path:
    """Where the airflow package is, found without importing it."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("airflow is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]+)?=\s*(.+)$", re.MULTILINE)


def revisions_of(versions: Path) -> tuple[str, set[str]]:
    """The head this image's `airflow db migrate` reaches (the one revision no other migration builds on),
    and every revision the image knows.

    Read from the migration files' ``revision = "..."`` and ``down_revision = ...`` lines (a literal
    string, tuple or None), not by importing them."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        found = dict(_ASSIGNMENT.findall(path.read_text()))
        if "revision" not in found:
            continue
        revisions.add(ast.literal_eval(found["revision"]))
        down = ast.literal_eval(found.get("down_revision", "None"))
        parents.update([down] if isinstance(down, str) else list(down or ()))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"{versions}: expected one head revision, found {sorted(heads)}")
    return heads.pop(), revisions


def head_revision(versions: Path) -> str:
    return revisions_of(versions)[0]


def image_revisions() -> dict[str, tuple[str, set[str]]]:
    """Per version table: this image's head and every revision it knows."""
    package = airflow_package()
    found: dict[str, tuple[str, set[str]]] = {}
    for table, parts in VERSION_TABLES.items():
        versions = package.joinpath(*parts)
        if versions.is_dir():
            found[table] = revisions_of(versions)
    return found


def expected_heads() -> dict[str, str]:
    return {table: head for table, (head, _) in image_revisions().items()}


def airflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow-core")
    except PackageNotFoundError:
        return version("apache-airflow")


def newer_schema(connection: Any) -> str | None:
    """Why this image must not run against the database, when a newer Airflow migrated it (a downgrade):
    a version table holds a revision this image's migrations do not contain. None otherwise."""
    current = current_revisions(connection)
    for table, (head, known) in image_revisions().items():
        revision = current.get(table)
        if revision is not None and revision not in known:
            return (
                f"the database's {table} is at revision {revision}, which this image's Airflow "
                f"{airflow_version()} does not know (its newest is {head}): a newer Airflow migrated it. "
                "Airflow's migrations are one-way, so this image must not run against it. Set image.tag back "
                "to the version that migrated it, or restore the backup taken before that upgrade "
                "(docs/operations.md)."
            )
    return None


def database_url() -> str:
    """Airflow's SQLAlchemy URL, from the file its ``_CMD`` setting reads (``cat <file>``)."""
    command = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD")
    if command:
        words = shlex.split(command)
        if len(words) == 2 and words[0] == "cat":
            return Path(words[1]).read_text().strip()
        import subprocess

        return subprocess.run(words, capture_output=True, text=True, check=True).stdout.strip()
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def connect(url: str, timeout: int = 10) -> Any:
    """A psycopg2 connection from a SQLAlchemy URL (postgresql+psycopg2://user:password@host:port/db?...)."""
    import psycopg2
    from psycopg2.extensions import make_dsn

    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    dsn = make_dsn(
        host=parts.hostname,
        port=parts.port or 5432,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname=parts.path.lstrip("/"),
        connect_timeout=timeout,
        application_name=os.environ.get("AIRFLOW_K8S_STEP", "airflow-k8s"),
        **options,
    )
    return psycopg2.connect(dsn)


def current_revisions(connection: Any) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    with connection.cursor() as cursor:
        for table in VERSION_TABLES:
            cursor.execute("SELECT to_regclass(%s)", (table,))
            if cursor.fetchone()[0] is None:
                found[table] = None
                continue
            cursor.execute(f"SELECT version_num FROM {table}")  # a fixed table name from VERSION_TABLES
            row = cursor.fetchone()
            found[table] = row[0] if row else None
    return found


def schema_at_head(connection: Any) -> tuple[bool, str]:
    """Whether every version table is at this image's head, and what differs."""
    expected = expected_heads()
    current = current_revisions(connection)
    behind = {table: (current.get(table), head) for table, head in expected.items() if current.get(table) != head}
    detail = ", ".join(f"{table} {now or 'missing'} (head {head})" for table, (now, head) in behind.items())
    return not behind, detail or "at head"
