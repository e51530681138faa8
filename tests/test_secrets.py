"""Generated credentials: valid, stable, secret everywhere they are used, delivered by Secret only."""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit

import pulumi
import pulumi_random
import pytest
from cryptography.fernet import Fernet

from components.config import names
from components.foundation.credentials import (
    DatabaseEndpoint,
    database_urls,
    external_database_urls,
    keda_database_secret,
)
from tests.support import Evaluation, Secret, decoded_secret, evaluate_ok, reveal
from tools.mock_engine import evaluate, walk

GENERATED = {
    "random:index/randomPassword:RandomPassword": "result",
    "random:index/randomBytes:RandomBytes": "base64",
}


def test_mock_engine_applies_additional_secret_outputs_like_the_real_engine() -> None:
    # Without this, a value derived from RandomPassword.result would look plain under mocks.
    def program() -> None:
        password = pulumi_random.RandomPassword("probe", length=12)
        pulumi.export("derived", password.result.apply(lambda p: f"x{p}"))

    evaluation = evaluate({}, program=program)
    assert evaluation.error is None
    assert isinstance(evaluation.outputs["derived"], Secret)


def test_fernet_key_is_a_valid_fernet_key(dev: Evaluation) -> None:
    key = decoded_secret(dev, names.KEYS_SECRET)[names.FERNET_KEY]
    assert len(key) == 44
    token = Fernet(key.encode()).encrypt(b"connection password")
    assert Fernet(key.encode()).decrypt(token) == b"connection password"


def test_fernet_key_comes_from_32_random_bytes(dev: Evaluation) -> None:
    [fernet] = [r for r in dev.registrations if r.name == "fernet-key"]
    assert fernet.type == "random:index/randomBytes:RandomBytes"
    assert fernet.inputs["length"] == 32


def test_jwt_secret_is_at_least_64_bytes_and_one_value_for_all(dev: Evaluation) -> None:
    jwt = decoded_secret(dev, names.KEYS_SECRET)[names.JWT_SECRET_KEY]
    assert len(base64.b64decode(jwt)) >= 64
    assert len(jwt.encode()) >= 64


def test_every_generated_value_is_a_pulumi_secret_where_it_is_used(dev: Evaluation) -> None:
    generated = [r for r in dev.registrations if r.type in GENERATED]
    assert {r.name for r in generated} == {
        "fernet-key",
        "jwt-secret",
        "api-secret-key",
        "admin-password",
        "database-password",
        "example-password",
    }
    for registration in generated:
        assert GENERATED[registration.type] in registration.additional_secret_outputs
    # wherever a generated value (plain or base64) appears in an input, it is marked secret
    keys = decoded_secret(dev, names.KEYS_SECRET)
    values = [
        keys[names.FERNET_KEY],
        keys[names.API_SECRET_KEY],
        keys[names.JWT_SECRET_KEY],
        decoded_secret(dev, names.ADMIN_SECRET)[names.ADMIN_PASSWORD_KEY],
        decoded_secret(dev, names.POSTGRES_SECRET)[names.POSTGRES_PASSWORD_KEY],
        decoded_secret(dev, names.EXAMPLE_SECRET)["password"],
    ]
    forms = values + [base64.b64encode(v.encode()).decode() for v in values]
    seen = 0
    for registration in dev.registrations:
        for path, leaf, is_secret in walk(registration.inputs):
            if isinstance(leaf, str) and any(form in leaf for form in forms):
                seen += 1
                assert is_secret, (registration.name, path)
    assert seen >= len(values)


def test_secrets_are_delivered_as_base64_data_not_string_data(dev: Evaluation) -> None:
    for obj in dev.kubernetes_objects():
        if obj["kind"] == "Secret":
            assert "stringData" not in obj
            assert isinstance(obj["data"], Secret)


def test_metadata_secret_points_airflow_at_the_headless_service(dev: Evaluation) -> None:
    urls = decoded_secret(dev, names.METADATA_SECRET)
    password = decoded_secret(dev, names.POSTGRES_SECRET)[names.POSTGRES_PASSWORD_KEY]
    airflow = urlsplit(urls[names.METADATA_CONNECTION_KEY])
    assert airflow.scheme == "postgresql+psycopg2"
    assert airflow.hostname == "airflow-postgres.airflow-dev.svc.cluster.local"
    assert airflow.port == 5432
    assert airflow.path == "/airflow"
    assert (airflow.username, unquote(airflow.password or "")) == ("airflow", password)
    # Airflow's own URL only: KEDA has its own login, Celery keeps results in Redis
    assert set(urls) == {names.METADATA_CONNECTION_KEY}


def test_user_and_password_are_url_quoted() -> None:
    endpoint = DatabaseEndpoint(host="db.ns.svc.cluster.local", port=5432, database="airflow", user="air@flow")
    password = "p@ss:w/rd%?#"
    for url in database_urls(endpoint, password).values():
        parts = urlsplit(url)
        assert unquote(parts.password or "") == password
        assert unquote(parts.username or "") == "air@flow"
        assert parts.hostname == "db.ns.svc.cluster.local"


def test_external_urls_are_derived_from_the_given_url() -> None:
    urls = external_database_urls("postgresql://u:p%40ss@db.example.com:6432/meta?sslmode=require")
    assert urls == {
        names.METADATA_CONNECTION_KEY: "postgresql+psycopg2://u:p%40ss@db.example.com:6432/meta?sslmode=require"
    }
    keda = keda_database_secret(urls[names.METADATA_CONNECTION_KEY], "airflow_keda", "k3da/pw")
    assert (
        keda[names.KEDA_CONNECTION_KEY]
        == "postgresql://airflow_keda:k3da%2Fpw@db.example.com:6432/meta?sslmode=require"
    )
    in_cluster = keda_database_secret(
        "postgresql+psycopg2://a:b@airflow-postgres.ns.svc.cluster.local:5432/airflow", "r", "p"
    )
    assert in_cluster[names.KEDA_CONNECTION_KEY].endswith(
        "@airflow-postgres.ns.svc.cluster.local:5432/airflow?sslmode=disable"
    )


EXTERNAL_URL = "postgresql+psycopg2://airflow:extpassw0rd99@pg.example.com:5432/airflow"


def test_external_database_mode_creates_no_postgres_and_uses_the_secret_url() -> None:
    evaluation = evaluate_ok(database={"mode": "external"}, secret_overrides={"externalDatabaseUrl": EXTERNAL_URL})
    assert "StatefulSet" not in {o["kind"] for o in evaluation.kubernetes_objects()}
    assert names.POSTGRES not in evaluation.names_of("ServiceAccount")
    assert names.POSTGRES_SECRET not in evaluation.names_of("Secret")
    assert "database-password" not in {r.name for r in evaluation.registrations}
    urls = decoded_secret(evaluation, names.METADATA_SECRET)
    assert urls[names.METADATA_CONNECTION_KEY] == EXTERNAL_URL
    for registration in evaluation.registrations:
        for path, leaf, is_secret in walk(registration.inputs):
            if isinstance(leaf, str) and "extpassw0rd99" in leaf:
                assert is_secret, (registration.name, path)


def test_admin_login_secret_holds_the_configured_username(dev: Evaluation) -> None:
    admin = decoded_secret(dev, names.ADMIN_SECRET)
    assert admin[names.ADMIN_USERNAME_KEY] == "admin"
    assert len(admin[names.ADMIN_PASSWORD_KEY]) == 24


@pytest.mark.parametrize("name", ["fernet-key", "database-password"])
def test_prod_protects_the_keys_the_data_depends_on(name: str, dev: Evaluation, prod: Evaluation) -> None:
    assert [r.protect for r in prod.registrations if r.name == name] == [True]
    assert [r.protect for r in dev.registrations if r.name == name] == [False]


def test_generated_values_are_stable_resources_without_changing_keepers(dev: Evaluation) -> None:
    # pulumi-random regenerates only when its inputs change; ours are constants of the program
    for registration in dev.registrations:
        if registration.type in GENERATED:
            assert "keepers" not in registration.inputs
            assert set(reveal(registration.inputs)) <= {"length", "special", "lower", "upper", "numeric"}
