"""PgBouncer (pgbouncer.enabled): its objects, their hardening, the pool formula, the SCRAM verifier that
replaces the password in its config, and which Airflow containers connect through it."""

from __future__ import annotations

import base64
import configparser
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

import pytest

from components.config import model, names
from components.config.model import StackConfig
from components.foundation import credentials, pgbouncer
from components.kube.wiring import SECRETS_ANNOTATION
from tests.postgres_server import PostgresServer
from tests.support import (
    Evaluation,
    command_secret,
    containers,
    decoded_secret,
    env_of,
    evaluate_ok,
    pod_spec,
    secret_file_source,
)
from tests.test_config_validation import only_problem

E = names.AirflowEnv
ON: dict[str, Any] = {"pgbouncer": {"enabled": True}}
EXTERNAL_URL = "postgresql+psycopg2://dbuser:s3cr%40t@db.example.com:5433/warehouse?sslmode=require"


@pytest.fixture(scope="module")
def dev_on() -> Evaluation:
    return evaluate_ok("dev", **DEV_ON)


@pytest.fixture(scope="module")
def prod() -> Evaluation:
    return evaluate_ok("prod")


def config_of(stack: str, **overrides: Any) -> StackConfig:
    from components.config.loading import load_stack_config
    from tools.mock_engine import stack_config

    return load_stack_config(*stack_config(stack, overrides))


DEV_ON = {**ON, "databaseCleanup": {"enabled": True}}


def ini_of(evaluation: Evaluation) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(decoded_secret(evaluation, names.PGBOUNCER_SECRET)[names.PGBOUNCER_INI_KEY])
    return parser


# --- objects ----------------------------------------------------------------------------------------------


def test_pgbouncer_is_off_by_default_and_creates_nothing() -> None:
    evaluation = evaluate_ok("dev")
    found = [o for o in evaluation.kubernetes_objects() if "pgbouncer" in o["metadata"]["name"]]
    assert found == []
    assert set(decoded_secret(evaluation, names.METADATA_SECRET)) == {names.METADATA_CONNECTION_KEY}


def test_prod_runs_pgbouncer_with_two_replicas_a_budget_a_service_and_its_identity(prod: Evaluation) -> None:
    deployment = prod.find("Deployment", names.PGBOUNCER)
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = prod.find("PodDisruptionBudget", names.PGBOUNCER)
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    service = prod.find("Service", names.PGBOUNCER)
    assert service["spec"]["ports"] == [
        {"name": "pgbouncer", "port": 6432, "protocol": "TCP", "targetPort": "pgbouncer"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    account = prod.find("ServiceAccount", names.PGBOUNCER)
    assert account["automountServiceAccountToken"] is False
    for obj in (deployment, budget, service, account):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "pgbouncer"
        assert labels["app.kubernetes.io/name"] == "pgbouncer"
        assert labels["app.kubernetes.io/part-of"] == "airflow"


def test_one_replica_has_no_disruption_budget() -> None:
    evaluation = evaluate_ok("dev", pgbouncer={"enabled": True, "replicas": 1})
    assert evaluation.find("Deployment", names.PGBOUNCER)["spec"]["replicas"] == 1
    assert not [o for o in evaluation.kubernetes_objects() if o["kind"] == "PodDisruptionBudget"]


def test_the_pod_is_hardened_like_every_pod(prod: Evaluation) -> None:
    deployment = prod.find("Deployment", names.PGBOUNCER)
    spec = pod_spec(deployment)
    assert spec["serviceAccountName"] == names.PGBOUNCER
    assert spec["automountServiceAccountToken"] is False
    context = spec["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 65534
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = containers(deployment)
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["image"] == model.PGBOUNCER_IMAGE
    assert container["command"] == ["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert writable == {"/tmp"} and all(
        "emptyDir" in volumes[m["name"]] for m in container["volumeMounts"] if not m.get("readOnly")
    )
    assert {p: container[p]["tcpSocket"]["port"] for p in ("readinessProbe", "livenessProbe")} == {
        "readinessProbe": "pgbouncer",
        "livenessProbe": "pgbouncer",
    }


def test_the_pods_roll_when_the_config_secret_changes(prod: Evaluation) -> None:
    template = prod.find("Deployment", names.PGBOUNCER)["spec"]["template"]["metadata"]
    before = template["annotations"][SECRETS_ANNOTATION]
    after = evaluate_ok("prod", pgbouncer={"enabled": True, "poolSize": 20}).find("Deployment", names.PGBOUNCER)
    assert after["spec"]["template"]["metadata"]["annotations"][SECRETS_ANNOTATION] != before


def test_the_config_secret_holds_no_plaintext_password(prod: Evaluation) -> None:
    password = decoded_secret(prod, names.POSTGRES_SECRET)[names.POSTGRES_PASSWORD_KEY]
    config = decoded_secret(prod, names.PGBOUNCER_SECRET)
    assert set(config) == {names.PGBOUNCER_INI_KEY, names.PGBOUNCER_USERLIST_KEY}
    for text in config.values():
        assert password not in text
    user, verifier = config[names.PGBOUNCER_USERLIST_KEY].split()
    assert user == '"airflow"'
    assert verifier.strip('"') == credentials.scram_sha256_verifier(password)
    ini = ini_of(prod)
    assert ini["pgbouncer"]["auth_type"] == "scram-sha-256"
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    # no user= in the database entry: SCRAM pass-through as the client's user
    assert ini["databases"]["airflow"] == "host=airflow-postgres.airflow.svc.cluster.local port=5432 dbname=airflow"
    assert ini["pgbouncer"]["server_tls_sslmode"] == "disable"


# --- the pool formula ---------------------------------------------------------------------------------------


def expected_clients(config: StackConfig) -> int:
    """docs/operations.md#pgbouncer, written out again: pods x (processes x engines x (5 + 10) + 2)."""
    scaling = config.api_server.autoscaling
    api_pods = scaling.max_replicas if scaling.enabled else config.api_server.replicas
    api = api_pods * (config.api_server.workers * 2 * 15 + 2)
    others = (config.scheduler.replicas + config.dag_processor.replicas + config.triggerer.replicas) * 17
    cleanup = 17 if config.database_cleanup.enabled else 0
    return api + others + cleanup


def expected_pool(config: StackConfig) -> int:
    direct = 3 + 5 + 2 * config.scheduler.replicas + (10 if config.keda.enabled else 0)
    available = config.pgbouncer.database_max_connections - direct
    return min(available // config.pgbouncer.replicas, expected_clients(config))


@pytest.mark.parametrize("stack", ["dev-on", "prod"])
def test_pool_sizes_follow_the_documented_formula(stack: str, dev_on: Evaluation, prod: Evaluation) -> None:
    evaluation = dev_on if stack == "dev-on" else prod
    config = config_of("dev", **DEV_ON) if stack == "dev-on" else config_of("prod")
    ini = ini_of(evaluation)["pgbouncer"]
    assert int(ini["max_client_conn"]) == expected_clients(config)
    assert int(ini["default_pool_size"]) == int(ini["max_db_connections"]) == expected_pool(config)
    assert int(ini["reserve_pool_size"]) == 0
    # every PgBouncer pod's server connections and the direct ones fit in the server's max_connections
    assert (
        int(ini["default_pool_size"]) * config.pgbouncer.replicas + config.direct_database_connections
        <= config.pgbouncer.database_max_connections
    )


def test_prod_numbers() -> None:
    """The numbers docs/operations.md quotes for Pulumi.prod.yaml."""
    config = config_of("prod")
    assert config.database_clients == {
        names.API_SERVER: 732,  # autoscaled: at its maximum, 6 pods
        names.SCHEDULER: 34,
        names.DAG_PROCESSOR: 34,
        names.TRIGGERER: 34,
        names.DATABASE_CLEANUP: 17,
    }
    assert (config.pgbouncer_max_client_connections, config.direct_database_connections) == (851, 22)
    assert config.pgbouncer_pool_size == 39


def test_overrides_win() -> None:
    evaluation = evaluate_ok("dev", pgbouncer={"enabled": True, "maxClientConnections": 1000, "poolSize": 7})
    ini = ini_of(evaluation)["pgbouncer"]
    assert (ini["max_client_conn"], ini["default_pool_size"], ini["max_db_connections"]) == ("1000", "7", "7")


def test_the_formula_uses_airflows_own_pool_defaults() -> None:
    """The stack does not set [database] sql_alchemy_pool_size / max_overflow: Airflow's defaults apply."""
    from airflow.configuration import conf

    assert conf.get_default_value("database", "sql_alchemy_pool_size") == str(model.AIRFLOW_POOL_SIZE)
    assert conf.get_default_value("database", "sql_alchemy_max_overflow") == str(model.AIRFLOW_MAX_OVERFLOW)
    for obj in evaluate_ok("prod").kubernetes_objects():
        for container in containers(obj, init=True) if obj["kind"] in ("Deployment", "StatefulSet") else ():
            assert not [k for k in env_of(container) if "SQL_ALCHEMY_POOL" in k or "MAX_OVERFLOW" in k]


# --- SCRAM -----------------------------------------------------------------------------------------------------


def scram_login(verifier: str, password: str) -> bool:
    """A SCRAM-SHA-256 exchange (RFC 5802): the client's proof from ``password``, checked as the server checks
    it with only the verifier."""
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256"
    iterations_salt, keys = rest.split("$")
    iterations, salt_b64 = iterations_salt.split(":")
    stored_key_b64, server_key_b64 = keys.split(":")
    salt, stored_key = base64.b64decode(salt_b64), base64.b64decode(stored_key_b64)
    server_key = base64.b64decode(server_key_b64)
    nonce = secrets.token_urlsafe(18)
    auth_message = f"n=,r={nonce},r={nonce}srv,s={salt_b64},i={iterations},c=biws,r={nonce}srv".encode()
    # client side
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_signature_seen = hmac.new(
        hmac.new(salted, b"Server Key", hashlib.sha256).digest(), auth_message, hashlib.sha256
    ).digest()
    # server side
    expected_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    recovered_client_key = bytes(a ^ b for a, b in zip(proof, expected_signature, strict=True))
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    return hashlib.sha256(recovered_client_key).digest() == stored_key and server_signature == server_signature_seen


def test_the_verifier_has_postgresqls_format_and_checks_the_password() -> None:
    verifier = credentials.scram_sha256_verifier("correct horse")
    method, iterations_salt, keys = verifier.split("$")
    assert method == "SCRAM-SHA-256"
    iterations, salt = iterations_salt.split(":")
    assert iterations == "4096" and len(base64.b64decode(salt)) == 16
    assert [len(base64.b64decode(k)) for k in keys.split(":")] == [32, 32]
    assert scram_login(verifier, "correct horse")
    assert not scram_login(verifier, "wrong horse")


def test_the_verifier_is_deterministic_and_salted_per_password() -> None:
    first = credentials.scram_sha256_verifier("one password")
    assert credentials.scram_sha256_verifier("one password") == first
    other = credentials.scram_sha256_verifier("another password")
    assert other.split("$")[1] != first.split("$")[1]  # a different salt, not only different keys


def test_the_same_config_renders_byte_identical_secrets() -> None:
    from tools.mock_engine import evaluate_stack

    renders = [evaluate_stack("prod", {}, None) for _ in range(2)]
    assert decoded_secret(renders[0], names.PGBOUNCER_SECRET) == decoded_secret(renders[1], names.PGBOUNCER_SECRET)
    assert decoded_secret(renders[0], names.METADATA_SECRET) == decoded_secret(renders[1], names.METADATA_SECRET)


def test_postgresql_accepts_the_verifier_as_the_password(postgres: PostgresServer) -> None:
    """Real SCRAM: a role whose password is set to the verifier logs in with the plaintext, not otherwise."""
    import psycopg2

    password = "pgbouncer-" + secrets.token_hex(8)
    role = "scram_probe"
    postgres.sql(f"DROP ROLE IF EXISTS {role}")
    postgres.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{credentials.scram_sha256_verifier(password)}'")
    stored = postgres.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")
    assert credentials.scram_sha256_verifier(password) in stored
    login = {"host": "127.0.0.1", "port": postgres.port, "user": role, "dbname": "postgres"}
    psycopg2.connect(password=password, **login).close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(password=password + "x", **login)


# --- who connects where ---------------------------------------------------------------------------------------

POOLED = (names.METADATA_SECRET, names.METADATA_POOLED_CONNECTION_KEY)
DIRECT = (names.METADATA_SECRET, names.METADATA_CONNECTION_KEY)


def database_urls_by_container(evaluation: Evaluation) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for obj in evaluation.kubernetes_objects():
        if obj["kind"] not in ("Deployment", "CronJob"):
            continue
        if obj["kind"] == "CronJob":
            obj = {"kind": "Pod", "spec": obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]}
            name = names.DATABASE_CLEANUP
        else:
            name = obj["metadata"]["name"]
        for container in containers(obj, init=True):
            if f"{E.SQL_ALCHEMY_CONN}_CMD" in env_of(container):
                found[f"{name}/{container['name']}"] = command_secret(obj, container, E.SQL_ALCHEMY_CONN)
    return found


def test_airflow_processes_go_through_pgbouncer_and_migrations_connect_directly(dev_on: Evaluation) -> None:
    found = database_urls_by_container(dev_on)
    assert found.pop(f"{names.SCHEDULER}/migrate-database") == DIRECT
    assert found == {
        f"{names.API_SERVER}/wait-for-migrations": POOLED,
        f"{names.API_SERVER}/bootstrap-admin": POOLED,
        f"{names.API_SERVER}/api-server": POOLED,
        f"{names.SCHEDULER}/scheduler": POOLED,
        f"{names.DAG_PROCESSOR}/wait-for-migrations": POOLED,
        f"{names.DAG_PROCESSOR}/dag-processor": POOLED,
        f"{names.TRIGGERER}/wait-for-migrations": POOLED,
        f"{names.TRIGGERER}/triggerer": POOLED,
        f"{names.DATABASE_CLEANUP}/wait-for-migrations": POOLED,
        f"{names.DATABASE_CLEANUP}/db-clean": POOLED,
    }


def test_without_pgbouncer_everyone_connects_directly() -> None:
    found = database_urls_by_container(evaluate_ok("dev", databaseCleanup={"enabled": True}))
    assert found and set(found.values()) == {DIRECT}


def test_celery_workers_and_task_pods_hold_no_database_url(prod: Evaluation) -> None:
    for obj in prod.kubernetes_objects():
        if obj["kind"] == "Deployment" and obj["metadata"]["name"].startswith(f"{names.WORKER}-"):
            for container in containers(obj, init=True):
                assert not [k for k in env_of(container) if k.startswith(E.SQL_ALCHEMY_CONN)], container["name"]


def test_the_migration_step_gets_the_verifier_and_keda_keeps_its_direct_url(prod: Evaluation) -> None:
    scheduler = prod.find("Deployment", names.SCHEDULER)
    migrate = next(c for c in containers(scheduler, init=True) if c["name"] == "migrate-database")
    path = env_of(migrate)[E.SCRAM_VERIFIER_FILE]
    assert secret_file_source(scheduler, migrate, path) == (names.METADATA_SECRET, names.METADATA_SCRAM_VERIFIER_KEY)
    main = next(c for c in containers(scheduler) if c["name"] == "scheduler")
    assert E.SCRAM_VERIFIER_FILE not in env_of(main)
    metadata = decoded_secret(prod, names.METADATA_SECRET)
    keda = decoded_secret(prod, names.KEDA_DATABASE_SECRET)[names.KEDA_CONNECTION_KEY]
    assert urlsplit(keda).netloc.endswith("@airflow-postgres.airflow.svc.cluster.local:5432")
    pooled = urlsplit(metadata[names.METADATA_POOLED_CONNECTION_KEY])
    direct = urlsplit(metadata[names.METADATA_CONNECTION_KEY])
    assert (pooled.hostname, pooled.port) == ("airflow-pgbouncer.airflow.svc.cluster.local", 6432)
    assert (pooled.username, pooled.password, pooled.path) == (direct.username, direct.password, direct.path)
    assert metadata[names.METADATA_SCRAM_VERIFIER_KEY] == credentials.scram_sha256_verifier(direct.password or "")


def test_an_external_database_is_fronted_too() -> None:
    evaluation = evaluate_ok(
        "dev",
        secret_overrides={"externalDatabaseUrl": EXTERNAL_URL},
        database={"mode": "external"},
        **ON,
    )
    ini = ini_of(evaluation)
    assert ini["databases"]["warehouse"] == "host=db.example.com port=5433 dbname=warehouse"
    assert ini["pgbouncer"]["server_tls_sslmode"] == "require"
    assert ini["pgbouncer"]["stats_users"] == "dbuser"
    userlist = decoded_secret(evaluation, names.PGBOUNCER_SECRET)[names.PGBOUNCER_USERLIST_KEY]
    assert userlist == f'"dbuser" "{credentials.scram_sha256_verifier("s3cr@t")}"\n'
    metadata = decoded_secret(evaluation, names.METADATA_SECRET)
    assert metadata[names.METADATA_POOLED_CONNECTION_KEY] == (
        "postgresql+psycopg2://dbuser:s3cr%40t@airflow-pgbouncer.airflow-dev.svc.cluster.local:6432/warehouse"
    )
    assert not [o for o in evaluation.kubernetes_objects() if o["metadata"]["name"] == names.POSTGRES]


def test_the_ini_renders_as_pgbouncer_reads_it() -> None:
    config = StackConfig(pgbouncer=model.PgBouncerConfig(enabled=True, poolMode="session"))
    text = pgbouncer.ini(config, "postgresql+psycopg2://u:p@h.example:5432/db")
    assert "\n[pgbouncer]\n" in text and text.endswith("\n")
    assert not [line for line in text.splitlines() if line != line.rstrip()]
    assert "pool_mode = session" in text
    assert "unix_socket_dir =\n" in text


# --- validation -------------------------------------------------------------------------------------------------


def test_pool_mode_statement_is_refused() -> None:
    problem = only_problem(pgbouncer={"enabled": True, "poolMode": "statement"})
    assert problem.key == "airflow-k8s:pgbouncer.poolMode"
    assert problem.value == json.dumps("statement")
    assert "transaction" in problem.allowed and "session" in problem.allowed


def test_a_pool_that_does_not_fit_the_server_is_refused() -> None:
    problem = only_problem(pgbouncer={"enabled": True, "poolSize": 50, "databaseMaxConnections": 100})
    assert problem.key == "airflow-k8s:pgbouncer.poolSize"
    assert problem.value == "50"
    assert problem.allowed.startswith("at most 45:")


def test_a_server_too_small_for_the_direct_connections_is_refused() -> None:
    problem = only_problem(pgbouncer={"enabled": True, "databaseMaxConnections": 11})
    assert problem.key == "airflow-k8s:pgbouncer.databaseMaxConnections"
    assert problem.value == "11"
    assert problem.allowed.startswith("at least 12:")


def test_an_old_pgbouncer_image_is_refused() -> None:
    image = "apache/airflow:airflow-pgbouncer-2023.02.24-1.16.1"
    problem = only_problem(pgbouncer={"enabled": True, "image": image})
    assert problem.key == "airflow-k8s:pgbouncer.image"
    assert "1.21 or later" in problem.allowed


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("replicas", 0, "at least 1"),
        ("maxClientConnections", 0, "at least 1"),
        ("poolSize", -1, "at least 1"),
        ("image", "pgbouncer:latest", "must pin a version"),
        ("notAKey", 1, "unknown key"),
    ],
)
def test_each_value_is_validated(key: str, value: Any, allowed: str) -> None:
    problem = only_problem(pgbouncer={"enabled": True, key: value})
    assert problem.key == f"airflow-k8s:pgbouncer.{key}"
    assert allowed in problem.allowed
