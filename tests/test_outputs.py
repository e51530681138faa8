"""Stack outputs: what operators need, with anything sensitive marked secret."""

from __future__ import annotations

from components.config import names
from tests.support import Evaluation, Secret, evaluate_ok

EXTERNAL_URL = "postgresql+psycopg2://airflow:extpassw0rd99@pg.example.com:5432/airflow"


def test_outputs_name_the_namespace_database_host_and_secrets(dev: Evaluation) -> None:
    assert dev.outputs["namespace"] == "airflow-dev"
    assert dev.outputs["databaseHost"] == "airflow-postgres.airflow-dev.svc.cluster.local"
    assert set(dev.outputs["secretNames"]) == dev.names_of("Secret")
    assert names.METADATA_SECRET in dev.outputs["secretNames"]


def test_external_database_host_is_a_secret_output() -> None:
    evaluation = evaluate_ok(database={"mode": "external"}, secret_overrides={"externalDatabaseUrl": EXTERNAL_URL})
    assert isinstance(evaluation.outputs["databaseHost"], Secret)
    assert evaluation.outputs["databaseHost"].value == "pg.example.com"
