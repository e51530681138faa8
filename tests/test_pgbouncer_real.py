"""PgBouncer for real: Debian's pgbouncer, configured from the stack's rendered Secret, in front of the tests'
PostgreSQL, and Airflow 3.3's api-server, dag-processor, scheduler (LocalExecutor) and triggerer, run from
their rendered pods with the pooled URL, running a DAG to success. (The control plane is the session's
observed one, tests/observed_stack.py: the metrics tests' DAG runs beside this one.)

The rendered ``pgbouncer.ini`` is used as rendered but for the cluster's addresses and paths
(tests/pgbouncer_server.py). The scheduler's real migration step first sets the role's SCRAM verifier, as in
the cluster; PgBouncer then logs in to PostgreSQL by SCRAM pass-through with the verifier alone. While the
DAG runs, PostgreSQL's own view (pg_stat_activity) and PgBouncer's (SHOW SERVERS) never show more server
connections than the configured pool.
"""

from __future__ import annotations

import psycopg2
import pytest

from components.config import names
from tests import observed_stack, pgbouncer_server
from tests.observed_stack import DATABASE, POOL_SIZE, Observed
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def ran(observed_control_plane: Observed) -> Observed:
    return observed_control_plane


@pytest.fixture(scope="module")
def stack(observed_control_plane: Observed) -> Evaluation:
    return observed_control_plane.evaluation


@pytest.fixture(scope="module")
def bouncer(observed_control_plane: Observed) -> pgbouncer_server.PgBouncerServer:
    return observed_control_plane.bouncer


def test_the_dag_runs_to_success_through_pgbouncer(ran: Observed) -> None:
    assert ran.load_run_state == "success"


def test_postgresql_never_carries_more_connections_than_the_pool(ran: Observed) -> None:
    assert ran.backends.samples, "no sample of pg_stat_activity"
    assert 0 < ran.backends.peak <= POOL_SIZE, ran.backends.samples


def test_pgbouncer_opens_no_more_server_connections_than_the_pool(ran: Observed) -> None:
    assert 0 < ran.servers.peak <= POOL_SIZE, ran.servers.samples


def test_airflow_had_more_clients_than_the_pool_had_servers(ran: Observed) -> None:
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
    credentials = observed_stack.pooled_login(stack)
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
