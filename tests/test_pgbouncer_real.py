"""PgBouncer for real: Debian's pgbouncer, configured from the stack's rendered Secret, in front of the tests'
PostgreSQL, and Airflow 3.3's api-server, dag-processor, scheduler (LocalExecutor) and triggerer, run from
their rendered pods with the pooled URL, running a DAG to success.

The rendered ``pgbouncer.ini`` is used as rendered but for the cluster's addresses and paths
(tests/pgbouncer_server.py). The scheduler's real migration step first sets the role's SCRAM verifier, as in
the cluster; PgBouncer then logs in to PostgreSQL by SCRAM pass-through with the verifier alone. While the
DAG runs, PostgreSQL's own view (pg_stat_activity) and PgBouncer's (SHOW SERVERS) never show more server
connections than the configured pool.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import pytest

from components.airflow_pods import dag_sources
from components.config import names
from tests import pgbouncer_server
from tests.local_pod import LocalPod, copy_migrated_database
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret, evaluate_ok

pytestmark = pytest.mark.real

POOL_SIZE = 5
DATABASE = "pgbouncer-real"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    folder = tmp_path_factory.mktemp("dags")
    (folder / f"{pgbouncer_server.DAG_ID}.py").write_text(pgbouncer_server.DAG_FILE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dag_sources, "REPOSITORY_DAGS", folder)
        return evaluate_ok(
            "dev",
            database={"databaseName": DATABASE},
            pgbouncer={"enabled": True, "replicas": 1, "poolSize": POOL_SIZE},
        )


@pytest.fixture(scope="module")
def bouncer(postgres: PostgresServer, stack: Evaluation) -> Iterator[pgbouncer_server.PgBouncerServer]:
    try:
        pgbouncer_server.binary()
    except pgbouncer_server.BinaryMissing as missing:
        if os.environ.get("AIRFLOW_K8S_REQUIRE_REAL_TIERS"):
            raise
        pytest.skip(str(missing))
    copy_migrated_database(stack, postgres)
    # the migration step, for real: it connects directly and gives the role PgBouncer's SCRAM verifier
    scheduler = LocalPod(stack, "Deployment", names.SCHEDULER, postgres.port)
    try:
        migrated = scheduler.run("migrate-database", timeout=300)
    finally:
        scheduler.stop()
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    server = pgbouncer_server.start(stack, postgres.port)
    try:
        yield server
    finally:
        server.stop()


def login(stack: Evaluation) -> dict[str, str]:
    metadata = decoded_secret(stack, names.METADATA_SECRET)
    from urllib.parse import unquote, urlsplit

    pooled = urlsplit(metadata[names.METADATA_POOLED_CONNECTION_KEY])
    return {"user": unquote(pooled.username or ""), "password": unquote(pooled.password or "")}


def show(bouncer: pgbouncer_server.PgBouncerServer, stack: Evaluation, command: str) -> list[dict[str, Any]]:
    """PgBouncer's admin console, as the stack's user (its stats_users)."""
    connection = psycopg2.connect(host="127.0.0.1", port=bouncer.port, dbname="pgbouncer", **login(stack))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(command)
            columns = [column.name for column in cursor.description or []]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


@dataclass
class Ran:
    run_state: str
    backends: pgbouncer_server.Sampler
    servers: pgbouncer_server.Sampler
    clients: pgbouncer_server.Sampler


@pytest.fixture(scope="module")
def ran(postgres: PostgresServer, stack: Evaluation, bouncer: pgbouncer_server.PgBouncerServer) -> Ran:
    backends = pgbouncer_server.Sampler(lambda: pgbouncer_server.backend_count(postgres, DATABASE))
    servers = pgbouncer_server.Sampler(lambda: len(show(bouncer, stack, "SHOW SERVERS")))
    clients = pgbouncer_server.Sampler(
        lambda: sum(1 for c in show(bouncer, stack, "SHOW CLIENTS") if c["database"] == DATABASE)
    )
    with (
        pgbouncer_server.components_running(stack, postgres, bouncer.port) as (base, headers, _),
        backends.running(),
        servers.running(),
        clients.running(),
    ):
        state = pgbouncer_server.run_dag(base, headers)
    return Ran(state, backends, servers, clients)


def test_the_dag_runs_to_success_through_pgbouncer(ran: Ran) -> None:
    assert ran.run_state == "success"


def test_postgresql_never_carries_more_connections_than_the_pool(ran: Ran) -> None:
    assert ran.backends.samples, "no sample of pg_stat_activity"
    assert 0 < ran.backends.peak <= POOL_SIZE, ran.backends.samples


def test_pgbouncer_opens_no_more_server_connections_than_the_pool(ran: Ran) -> None:
    assert 0 < ran.servers.peak <= POOL_SIZE, ran.servers.samples


def test_airflow_had_more_clients_than_the_pool_had_servers(ran: Ran) -> None:
    """The point of it: many client connections shared a few server connections."""
    assert ran.clients.peak > POOL_SIZE, ran.clients.samples


def test_the_rendered_config_is_what_ran(bouncer: pgbouncer_server.PgBouncerServer, stack: Evaluation) -> None:
    rendered = decoded_secret(stack, names.PGBOUNCER_SECRET)[names.PGBOUNCER_INI_KEY]
    rewritten = ("listen_", "auth_file", "max_prepared", f"{DATABASE} =")
    kept = [line for line in rendered.splitlines() if not line.startswith(rewritten)]
    ran_lines = bouncer.ini.splitlines()
    assert [line for line in kept if line not in ran_lines] == []
    assert f"default_pool_size = {POOL_SIZE}" in ran_lines


def test_clients_log_in_with_scram_and_a_wrong_password_is_refused(
    bouncer: pgbouncer_server.PgBouncerServer, stack: Evaluation, postgres: PostgresServer
) -> None:
    credentials = login(stack)
    connection = psycopg2.connect(host="127.0.0.1", port=bouncer.port, dbname=DATABASE, **credentials)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_database()")
            assert cursor.fetchone() == (credentials["user"], DATABASE)
    finally:
        connection.close()
    with pytest.raises(psycopg2.OperationalError, match="SASL authentication failed"):
        psycopg2.connect(
            host="127.0.0.1",
            port=bouncer.port,
            dbname=DATABASE,
            user=credentials["user"],
            password=credentials["password"] + "x",
        )
    # PgBouncer itself was offered no plaintext: its files hold only the verifier
    assert credentials["password"] not in bouncer.ini
    assert credentials["password"] not in (bouncer.directory / names.PGBOUNCER_USERLIST_KEY).read_text()
    stored = postgres.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{credentials['user']}'")
    assert decoded_secret(stack, names.METADATA_SECRET)[names.METADATA_SCRAM_VERIFIER_KEY] in stored
