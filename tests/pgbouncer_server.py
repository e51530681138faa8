"""A real PgBouncer (Debian's package) for the tests, configured from the stack's rendered Secret, and a
load that runs one DAG with the dev stack's components from their rendered pods (direct or through it).

The rendered ``pgbouncer.ini`` and ``userlist.txt`` are used as they are, except what only exists in the
cluster: the database's host and port (the test's PostgreSQL), the listening address and port (127.0.0.1
and a free port) and the auth_file path. ``max_prepared_statements`` (PgBouncer 1.21+; the stack's image
has 1.23) is dropped when the installed PgBouncer is older, as Debian 12's 1.18 is.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import names
from tests import airflow_stack
from tests.local_pod import LocalPod
from tests.postgres_server import PostgresServer, free_port
from tests.support import Evaluation, decoded_secret

INSTALL_HINT = "PgBouncer is not installed (Debian: apt-get install pgbouncer; then service pgbouncer stop)"


class BinaryMissing(RuntimeError):
    pass


def binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        raise BinaryMissing(INSTALL_HINT)
    return found


def version() -> tuple[int, int]:
    output = subprocess.run([binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"PgBouncer (\d+)\.(\d+)", output)
    assert match, output
    return int(match[1]), int(match[2])


@dataclass
class PgBouncerServer:
    port: int
    directory: Path
    process: subprocess.Popen[str]
    ini: str

    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)


def local_ini(rendered: str, namespace: str, database_port: int, port: int, auth_file: Path) -> str:
    """The rendered pgbouncer.ini with only the cluster's addresses and paths replaced."""
    text = rendered.replace(
        f"host={names.dns_name(names.POSTGRES, namespace)} port={names.POSTGRES_PORT}",
        f"host=127.0.0.1 port={database_port}",
    )
    text = re.sub(r"(?m)^listen_addr = \*$", "listen_addr = 127.0.0.1", text)
    text = re.sub(rf"(?m)^listen_port = {names.PGBOUNCER_PORT}$", f"listen_port = {port}", text)
    text = re.sub(r"(?m)^auth_file = .*$", f"auth_file = {auth_file}", text)
    if version() < (1, 21):
        text = re.sub(r"(?m)^max_prepared_statements = .*\n", "", text)
    return text


def start(evaluation: Evaluation, database_port: int) -> PgBouncerServer:
    config = decoded_secret(evaluation, names.PGBOUNCER_SECRET)
    namespace = evaluation.outputs["namespace"]
    directory = Path(tempfile.mkdtemp(prefix="airflow-k8s-pgbouncer-"))
    directory.chmod(0o755)
    port = free_port()
    userlist = directory / names.PGBOUNCER_USERLIST_KEY
    userlist.write_text(config[names.PGBOUNCER_USERLIST_KEY])
    ini = local_ini(config[names.PGBOUNCER_INI_KEY], namespace, database_port, port, userlist)
    (directory / names.PGBOUNCER_INI_KEY).write_text(ini)
    for path in directory.iterdir():
        path.chmod(0o644)
    # PgBouncer refuses to run as root; in the cluster it runs as nobody (65534) too
    prefix = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    log = (directory / "pgbouncer.log").open("w")
    process = subprocess.Popen(
        [*prefix, binary(), str(directory / names.PGBOUNCER_INI_KEY)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=directory,
    )
    server = PgBouncerServer(port, directory, process, ini)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.1)


# --- a load: the dev stack's components run one DAG ----------------------------------------------------


DAG_ID = "connection_load"
DAG_FILE = f'''"""tests/pgbouncer_server.py: parallel tasks that each finish after a moment."""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import DAG, task

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):

    @task
    def work(number: int) -> int:
        time.sleep(2)
        return number

    work.expand(number=list(range(8)))
'''


BACKENDS = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND datname = current_database() AND pid <> pg_backend_pid()"
)
"""Client backends connected to the current database, but the asking one (PostgreSQL's own view)."""


class KeptConnection:
    """One connection for many samples, reopened after an error (a sample may race a server's start or
    stop). A new connection per sample costs ~9 ms of CPU: a backend, and a SCRAM exchange on both sides."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._connection: Any = None
        self._lock = threading.Lock()

    def rows(self, statement: str) -> list[dict[str, Any]]:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._connect()
                    self._connection.autocommit = True
                with self._connection.cursor() as cursor:
                    cursor.execute(statement)
                    columns = [column.name for column in cursor.description or []]
                    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            except Exception:
                self.close()
                raise

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


@dataclass
class Sampler:
    """Samples a number in a thread until stopped; keeps every sample."""

    sample: Callable[[], int]
    interval: float = 0.2
    samples: list[int] = field(default_factory=lambda: [])
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a sample may race a server's start or stop
                self.samples.append(self.sample())
            self._stop.wait(self.interval)

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)


def components_running(
    stack: Evaluation, postgres: PostgresServer, pgbouncer_port: int | None
) -> AbstractContextManager[tuple[str, dict[str, str], list[LocalPod]]]:
    """The stack's control plane (tests/airflow_stack.py), its database connections through PgBouncer."""
    return airflow_stack.components_running(stack, postgres, pgbouncer_port=pgbouncer_port)


def run_dag(base: str, headers: dict[str, str], timeout: float = 600) -> str:
    return airflow_stack.run_dag(base, headers, DAG_ID, timeout)
