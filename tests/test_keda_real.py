"""The KEDA queries, taken from the rendered ScaledObjects, run against a real PostgreSQL whose schema
real Airflow 3.3 created (`airflow db migrate`), with task instances in several states, queues and
executors. Each row of the table gives what the query returns and the replicas KEDA would set:
ceil(value / targetQueryValue), clamped to [minReplicaCount, maxReplicaCount].
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import pytest

from components.config import names
from tests.local_pod import copy_migrated_database, run_migration_step
from tests.postgres_server import PostgresServer
from tests.support import Evaluation, decoded_secret, evaluate_ok

pytestmark = pytest.mark.real

DATABASE = "keda"


@pytest.fixture(scope="module")
def stack() -> Evaluation:
    return evaluate_ok(
        "prod",
        database={"storageSize": "1Gi", "databaseName": DATABASE},
        triggerer={"capacity": 100, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3}},
    )


@dataclass(frozen=True)
class Connections:
    owner: Any
    """Airflow's own login: it writes the rows the scalers count."""
    keda: Any
    """KEDA's login, as its TriggerAuthentication gives it: read-only."""


def local(url: str, postgres: PostgresServer) -> str:
    return url.replace(f"{names.dns_name(names.POSTGRES, 'airflow')}:5432", f"127.0.0.1:{postgres.port}")


def keda_url(stack: Evaluation, postgres: PostgresServer) -> str:
    authentication = stack.find("TriggerAuthentication", names.KEDA_TRIGGER_AUTH)["spec"]["secretTargetRef"][0]
    return local(decoded_secret(stack, authentication["name"])[authentication["key"]], postgres)


@pytest.fixture(scope="module")
def connections(postgres: PostgresServer, stack: Evaluation) -> Iterator[Connections]:
    """A schema migrated by real Airflow (the scheduler's migration step, which also made KEDA's role)."""
    copy_migrated_database(stack, postgres)
    migration = run_migration_step(stack, postgres)
    assert migration.returncode == 0, migration.stderr[-3000:]
    assert "role 'airflow_keda' may SELECT task_instance, trigger and nothing else" in migration.stdout
    owner_url = decoded_secret(stack, names.METADATA_SECRET)[names.METADATA_CONNECTION_KEY]
    owner = psycopg2.connect(local(owner_url, postgres).replace("postgresql+psycopg2://", "postgresql://"))
    keda = psycopg2.connect(keda_url(stack, postgres))
    for connection in (owner, keda):
        connection.autocommit = True
    with owner.cursor() as cursor:
        cursor.execute(
            "INSERT INTO dag_run (dag_id, run_id, run_type, run_after) VALUES ('keda_test', 'run', 'manual', now())"
        )
    yield Connections(owner, keda)
    owner.close()
    keda.close()


@dataclass(frozen=True)
class Rows:
    count: int
    state: str
    queue: str
    executor: str | None = None


def load(connection: Any, rows: list[Rows], triggers: int = 0) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM task_instance")
        cursor.execute("DELETE FROM trigger")
        number = 0
        for group in rows:
            for _ in range(group.count):
                number += 1
                cursor.execute(
                    "INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, try_number, pool, pool_slots,"
                    " state, queue, executor) VALUES (gen_random_uuid(), %s, 'keda_test', 'run', -1, 1,"
                    " 'default_pool', 1, %s, %s, %s)",
                    (f"task_{number}", group.state, group.queue, group.executor),
                )
        for _ in range(triggers):
            cursor.execute("INSERT INTO trigger (classpath, kwargs, created_date) VALUES ('x.Trigger', '{}', now())")


def scaling(stack: Evaluation, target: str) -> tuple[str, float, int, int]:
    spec = stack.find("ScaledObject", target)["spec"]
    [trigger] = spec["triggers"]
    return (
        trigger["metadata"]["query"],
        float(trigger["metadata"]["targetQueryValue"]),
        spec["minReplicaCount"],
        spec["maxReplicaCount"],
    )


def keda_replicas(value: float, target: float, minimum: int, maximum: int) -> int:
    return max(minimum, min(maximum, math.ceil(value / target)))


def run(connection: Any, query: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute(query)
        [(value,)] = cursor.fetchall()
    return float(value)


K8S = "KubernetesExecutor"
K8S_PATH = "airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor"

# prod: default set (queue default, concurrency 16, 1..10 pods); heavy set (heavy + ml, concurrency 4, 0..4)
CASES = {
    "idle": ([], {"default": (0, 1), "heavy": (0, 0)}),
    "finished and scheduled work needs no worker": (
        [
            Rows(40, "success", "default"),
            Rows(7, "failed", "heavy"),
            Rows(9, "scheduled", "default"),
            Rows(3, "deferred", "ml"),
            Rows(2, "up_for_retry", "heavy"),
        ],
        {"default": (0, 1), "heavy": (0, 0)},
    ),
    "one queued task wakes a scaled-to-zero set": ([Rows(1, "queued", "ml")], {"default": (0, 1), "heavy": (1, 1)}),
    "queued and running count together per set": (
        [
            Rows(20, "queued", "default"),
            Rows(5, "running", "default"),
            Rows(3, "queued", "heavy"),
            Rows(2, "running", "ml"),
        ],
        {"default": (2, 2), "heavy": (2, 2)},
    ),
    "kubernetes executor tasks are not the workers' work": (
        [
            Rows(30, "running", "default", K8S),
            Rows(30, "queued", "default", K8S_PATH),
            Rows(16, "queued", "default"),
            Rows(4, "queued", "heavy", "CeleryExecutor"),
        ],
        {"default": (1, 1), "heavy": (1, 1)},
    ),
    "other queues do not count": (
        [Rows(50, "queued", "reporting"), Rows(3, "queued", "default")],
        {"default": (1, 1), "heavy": (0, 0)},
    ),
    "a burst is capped at the maximum": (
        [Rows(500, "queued", "default"), Rows(17, "queued", "heavy")],
        {"default": (32, 10), "heavy": (5, 4)},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_worker_scaled_object_query_and_replicas(case: str, connections: Connections, stack: Evaluation) -> None:
    rows, expected = CASES[case]
    load(connections.owner, rows)
    for worker_set, (value, replicas) in expected.items():
        query, target, minimum, maximum = scaling(stack, names.worker_set(worker_set))
        got = run(connections.keda, query)
        assert got == value, (worker_set, got)
        assert keda_replicas(got, target, minimum, maximum) == replicas, worker_set


@pytest.mark.parametrize(
    ("triggers", "value", "replicas"), [(0, 0, 1), (1, 1, 1), (100, 1, 1), (101, 2, 2), (1000, 10, 3)]
)
def test_triggerer_scaled_object_query_and_replicas(
    triggers: int, value: int, replicas: int, connections: Connections, stack: Evaluation
) -> None:
    load(connections.owner, [], triggers=triggers)
    query, target, minimum, maximum = scaling(stack, names.TRIGGERER)
    got = run(connections.keda, query)
    assert got == value
    assert keda_replicas(got, target, minimum, maximum) == replicas


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM connection",
        "SELECT * FROM variable",
        "SELECT * FROM dag_run",
        "SELECT * FROM ab_user",
        "INSERT INTO trigger (classpath, kwargs, created_date) VALUES ('x', '{}', now())",
        "UPDATE task_instance SET state = 'failed'",
        "DELETE FROM trigger",
        "CREATE TABLE keda_was_here (id int)",
    ],
)
def test_keda_may_read_its_two_tables_and_nothing_else(statement: str, connections: Connections) -> None:
    with connections.keda.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM task_instance")
        cursor.execute("SELECT count(*) FROM trigger")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute(statement)


def test_the_role_sync_is_idempotent_and_sets_the_stacks_password(
    connections: Connections, stack: Evaluation, postgres: PostgresServer
) -> None:
    with connections.owner.cursor() as cursor:
        cursor.execute("ALTER ROLE airflow_keda PASSWORD 'changed-behind-the-stacks-back'")
        cursor.execute("GRANT SELECT ON connection TO airflow_keda")
    again = run_migration_step(stack, postgres)
    assert again.returncode == 0, again.stderr[-3000:]
    # the stack's password works again, and the stray grant is gone
    keda = psycopg2.connect(keda_url(stack, postgres))
    keda.autocommit = True
    try:
        with keda.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM task_instance")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("SELECT * FROM connection")
    finally:
        keda.close()
