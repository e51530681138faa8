"""A real PostgreSQL server for the tests, on 127.0.0.1, started from the installed server binaries.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the `postgres`
user (runuser). Authentication is scram-sha-256: a wrong password fails, as it would in the cluster.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPERUSER_PASSWORD = "test-superuser-password"


def server_binaries() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    port: int
    directory: Path
    bin_dir: Path
    as_user: str | None

    def _run(self, *command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        return subprocess.run([*prefix, *command], check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]

    def connect(self, database: str = "postgres") -> Any:
        """A new psycopg2 connection as the superuser."""
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", password=SUPERUSER_PASSWORD, dbname=database
        )

    def sql(self, statement: str, database: str = "postgres") -> str:
        found = self._execute(statement, database, ())
        return "" if found is None else str(found)

    def rows(self, statement: str, database: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A query's rows, with bound parameters (as the superuser)."""
        found = self._execute(statement, database, parameters)
        assert found is not None, f"not a query: {statement}"
        return found

    def _execute(
        self, statement: str, database: str, parameters: tuple[object, ...]
    ) -> list[tuple[object, ...]] | None:
        """The statement's rows, or None for a statement that returns none (autocommit, as the superuser)."""
        connection = self.connect(database)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, parameters or None)
                return list(cursor.fetchall()) if cursor.description else None
        finally:
            connection.close()

    def create_database(self, name: str, owner: str, password: str, superuser: bool = False) -> None:
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'")
        verb = "ALTER" if exists not in ("", "[]") else "CREATE"
        power = "SUPERUSER" if superuser else "NOSUPERUSER"
        self.sql(f"{verb} ROLE \"{owner}\" LOGIN {power} PASSWORD '{password}'")
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.sql(f'CREATE DATABASE "{name}" OWNER "{owner}"')

    def clone(self, template: str, name: str, owner: str) -> None:
        """A new database copied from ``template`` (PostgreSQL copies the files: milliseconds)."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER "{owner}"')

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


def start() -> PostgresServer:
    bin_dir = server_binaries()
    as_user = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="airflow-k8s-pg-"))
    (directory / "pwfile").write_text(SUPERUSER_PASSWORD + "\n")
    if as_user:
        shutil.chown(directory, as_user)
        shutil.chown(directory / "pwfile", as_user)
    server = PostgresServer(port=free_port(), directory=directory, bin_dir=bin_dir, as_user=as_user)
    server._run(
        str(bin_dir / "initdb"),
        "-D",
        str(directory / "data"),
        "--username=postgres",
        "--auth=scram-sha-256",
        f"--pwfile={directory / 'pwfile'}",
        "--encoding=UTF8",
    )
    options = f"-p {server.port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    server._run(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(directory / "data"),
        "-o",
        options,
        "-l",
        str(directory / "log"),
        "-w",
        "start",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            server.sql("SELECT 1")
            return server
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
