"""Stack config is validated as a whole: every problem named with key, value and what is allowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.config.loading import ConfigError, Problem, load_stack_config
from components.config.model import StackConfig
from tools.mock_engine import evaluate, evaluate_stack, stack_config

ROOT = Path(__file__).resolve().parent.parent
P = "airflow-k8s:"
VALID_DATABASE = {"storageSize": "2Gi"}


def problems_for(secret_keys: set[str] | None = None, **values: Any) -> list[Problem]:
    raw = {f"{P}database": json.dumps(VALID_DATABASE)}
    for key, value in values.items():
        raw[f"{P}{key}"] = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(ConfigError) as caught:
        load_stack_config(raw, {f"{P}{k}" for k in (secret_keys or set())})
    return caught.value.problems


def only_problem(**values: Any) -> Problem:
    found = problems_for(**values)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("namespace", ["Airflow", "air_flow", "-airflow", "airflow-", "a" * 64, ""])
def test_namespace_must_be_a_dns_1123_label(namespace: str) -> None:
    problem = only_problem(namespace=namespace)
    assert problem.key == "airflow-k8s:namespace"
    assert problem.value == json.dumps(namespace)
    assert "DNS-1123 label" in problem.allowed


@pytest.mark.parametrize(
    ("replicas", "allowed"), [(-1, "non-negative"), (1.5, "integer"), ("two", "integer"), (True, "integer")]
)
def test_replicas_must_be_non_negative_integers(replicas: Any, allowed: str) -> None:
    problem = only_problem(scheduler={"replicas": replicas})
    assert problem.key == "airflow-k8s:scheduler.replicas"
    assert problem.value == json.dumps(replicas)
    assert allowed in problem.allowed


def test_zero_replicas_are_allowed() -> None:
    raw = {f"{P}database": json.dumps(VALID_DATABASE), f"{P}apiServer": json.dumps({"replicas": 0})}
    assert load_stack_config(raw, set()).api_server.replicas == 0


@pytest.mark.parametrize("executor", ["SequentialExecutor", "celeryexecutor", "KubernetesExecutor,CeleryExecutor", ""])
def test_unknown_executor_is_rejected_with_the_allowed_values(executor: str) -> None:
    problem = only_problem(executor=executor)
    assert problem.key == "airflow-k8s:executor"
    for allowed in ("LocalExecutor", "KubernetesExecutor", "CeleryExecutor", "CeleryExecutor,KubernetesExecutor"):
        assert json.dumps(allowed) in problem.allowed


@pytest.mark.parametrize("text", ["2GB", "1.5.1Gi", "abc", "-1", "512 Mi", "1Gib"])
def test_malformed_quantities_are_rejected(text: str) -> None:
    resources = {"requests": {"cpu": "100m", "memory": text}, "limits": {"cpu": "1", "memory": "4Gi"}}
    problem = only_problem(triggerer={"resources": resources})
    assert problem.key == "airflow-k8s:triggerer.resources.requests.memory"
    assert problem.value == json.dumps(text)
    assert "Kubernetes quantity" in problem.allowed


@pytest.mark.parametrize("text", ["500m", "2", "0.5", "2Gi", "1500Mi", "1e3", "1G"])
def test_well_formed_quantities_are_accepted(text: str) -> None:
    resources = {"requests": {"cpu": "1m", "memory": "1Mi"}, "limits": {"cpu": text, "memory": "8Gi"}}
    raw = {f"{P}database": json.dumps(VALID_DATABASE), f"{P}triggerer": json.dumps({"resources": resources})}
    assert load_stack_config(raw, set()).triggerer.resources.limits["cpu"] == text


def test_memory_in_millibytes_is_flagged_as_a_typo() -> None:
    resources = {"requests": {"cpu": "100m", "memory": "512m"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    problem = only_problem(triggerer={"resources": resources})
    assert problem.key.endswith("requests.memory")
    assert "millibytes" in problem.allowed


def test_limits_below_requests_are_rejected() -> None:
    resources = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "1500m", "memory": "1Gi"}}
    problem = only_problem(scheduler={"resources": resources})
    assert problem.key == "airflow-k8s:scheduler.resources.limits.cpu"
    assert problem.value == '"1500m"'
    assert "at least the request (2)" in problem.allowed


def test_cpu_and_memory_requests_and_limits_are_all_required() -> None:
    found = problems_for(dagProcessor={"resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}})
    assert {p.key for p in found} == {
        "airflow-k8s:dagProcessor.resources.requests.memory",
        "airflow-k8s:dagProcessor.resources.limits.cpu",
    }


def test_in_cluster_database_without_a_storage_size_gets_the_documented_default() -> None:
    config = load_stack_config({f"{P}database": json.dumps({"mode": "in-cluster"})}, set())
    assert config.database.storage_size == "8Gi"
    problem = only_problem(database={"mode": "in-cluster", "storageSize": "8 gigs"})
    assert problem.key == "airflow-k8s:database.storageSize"
    assert "Kubernetes quantity" in problem.allowed


def test_external_database_needs_a_connection_url() -> None:
    problem = only_problem(database={"mode": "external"})
    assert problem.key == "airflow-k8s:externalDatabaseUrl"
    assert "pulumi config set --secret externalDatabaseUrl" in problem.allowed


def test_external_database_url_must_be_set_as_a_secret() -> None:
    url = "postgresql+psycopg2://airflow:hunter2hunter2@db.example.com:5432/airflow"
    problem = only_problem(database={"mode": "external"}, externalDatabaseUrl=url)
    assert problem.key == "airflow-k8s:externalDatabaseUrl"
    assert "--secret" in problem.allowed
    assert "hunter2" not in str(problem)


def test_a_bad_external_database_url_is_reported_without_showing_it() -> None:
    found = problems_for(
        secret_keys={"externalDatabaseUrl"},
        database={"mode": "external"},
        externalDatabaseUrl="mysql://root:hunter2hunter2@db/airflow",
    )
    [problem] = found
    assert problem.value == "[secret]"
    assert "PostgreSQL URL" in problem.allowed
    assert "hunter2" not in str(ConfigError(found))


def test_unknown_keys_are_rejected_with_the_allowed_keys() -> None:
    found = problems_for(shceduler={"replicas": 2}, scheduler={"replica": 2})
    keys = {p.key: p for p in found}
    assert set(keys) == {"airflow-k8s:shceduler", "airflow-k8s:scheduler.replica"}
    assert "scheduler" in keys["airflow-k8s:shceduler"].allowed
    assert "replicas" in keys["airflow-k8s:scheduler.replica"].allowed


def test_plain_config_must_not_carry_secrets_in_extra_env() -> None:
    problem = only_problem(extraEnv={"AIRFLOW__SMTP__SMTP_PASSWORD": "hunter2hunter2"})
    assert problem.key == "airflow-k8s:extraEnv"
    assert "secret" in problem.allowed


def test_extra_env_may_not_override_what_the_stack_sets() -> None:
    problem = only_problem(extraEnv={"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})
    assert "set by the stack" in problem.allowed


def test_every_problem_is_reported_at_once() -> None:
    found = problems_for(
        namespace="Bad_Namespace",
        executor="SequentialExecutor",
        scheduler={
            "replicas": -2,
            "resources": {"requests": {"cpu": "2", "memory": "2GB"}, "limits": {"cpu": "1", "memory": "4Gi"}},
        },
        apiServer={"replicas": 1.5},
        database={"mode": "external"},
    )
    assert [p.key for p in found] == [
        "airflow-k8s:namespace",
        "airflow-k8s:executor",
        "airflow-k8s:apiServer.replicas",
        "airflow-k8s:scheduler.replicas",
        "airflow-k8s:scheduler.resources.requests.memory",
        "airflow-k8s:scheduler.resources.limits.cpu",
        "airflow-k8s:externalDatabaseUrl",
    ]
    message = str(ConfigError(found))
    assert message.startswith("invalid stack configuration (7 problem(s))")
    for problem in found:
        assert str(problem) in message


def test_an_invalid_config_registers_no_resource_at_all() -> None:
    config, secret_keys = stack_config(
        "dev", {"namespace": "Bad_Namespace", "executor": "Nope", "scheduler": {"replicas": -1}}
    )
    evaluation = evaluate(config, secret_keys)
    assert isinstance(evaluation.error, ConfigError)
    assert len(evaluation.error.problems) == 3
    assert evaluation.registrations == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stack_files_are_valid(stack: str) -> None:
    evaluation = evaluate_stack(stack)
    assert evaluation.error is None
    config, secret_keys = stack_config(stack)
    assert isinstance(load_stack_config(config, secret_keys), StackConfig)


def test_the_stack_files_json_schema_accepts_the_committed_stacks_and_rejects_a_typo() -> None:
    import jsonschema
    import yaml

    from tools.config_reference import SCHEMA

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for stack in ("dev", "prod"):
        document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        assert list(validator.iter_errors(document)) == [], stack
    secret = {"config": {"airflow-k8s:externalDatabaseUrl": {"secure": "AAABADl1Y2lwaGVydGV4dA=="}}}
    assert list(validator.iter_errors(secret)) == []
    typo = {"config": {"airflow-k8s:scheduler": {"replica": 2}, "airflow-k8s:executor": "LocalExecuter"}}
    messages = sorted(error.message for error in validator.iter_errors(typo))
    assert any("'replica' was unexpected" in message for message in messages), messages
    assert any("'LocalExecuter' is not one of" in message for message in messages), messages


# --- a stack file may set nothing, or any one section -------------------------------------------------


def test_an_empty_stack_file_deploys_on_the_documented_defaults() -> None:
    evaluation = evaluate({}, set())
    assert evaluation.error is None, evaluation.error
    assert evaluation.find("Namespace", "airflow")
    claim = evaluation.find("StatefulSet", "airflow-postgres")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"} <= (
        evaluation.names_of("Deployment")
    )


SECTION_SAMPLES: dict[str, Any] = {
    "namespace": "team-a",
    "kubeContext": "kind-airflow",
    "podSecurityLevel": "baseline",
    "image": {"tag": "3.3.1"},
    "executor": "KubernetesExecutor",
    "apiServer": {"replicas": 2},
    "scheduler": {"replicas": 2},
    "dagProcessor": {"replicas": 2},
    "triggerer": {"capacity": 50},
    "workers": [{"name": "default"}],
    "keda": {"operatorNamespace": "autoscaling"},
    "kubernetesExecutor": {"maxTaskPods": 4},
    "database": {"storageClass": "fast"},
    "externalDatabaseUrl": None,
    "pgbouncer": {"enabled": True},
    "redis": {"persistence": {"enabled": True}},
    "dags": {"delivery": "image"},
    "placement": {"nodeSelector": {"kubernetes.io/os": "linux"}},
    "taskPods": {},
    "auth": {"adminUsername": "root-admin"},
    "network": {"enabled": False},
    "rotation": {"jwtSecret": 1},
    "protectData": True,
    "migrationWaitTimeoutSeconds": 60,
    "parallelism": 8,
    "extraEnv": {"AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Paris"},
    "extraEnvFromSecrets": ["team-a-env"],
    "connections": None,
    "externalServices": [{"name": "warehouse", "addresses": ["10.1.2.3"], "ports": [5432]}],
    "metrics": {"enabled": True},
    "alerts": {"heartbeatMissingMinutes": 10},
    "dashboard": {"labels": {"grafana_dashboard": "1"}},
    "logging": {"retentionDays": 7},
    "databaseCleanup": {"enabled": True},
    "backup": {"keep": 3},
}


def test_every_top_level_key_has_a_sample_below() -> None:
    assert set(SECTION_SAMPLES) == {field.alias for field in StackConfig.model_fields.values()}


@pytest.mark.parametrize("key", sorted(k for k, v in SECTION_SAMPLES.items() if v is not None))
def test_each_top_level_key_given_alone_deploys(key: str) -> None:
    value = SECTION_SAMPLES[key]
    config = {f"{P}{key}": value if isinstance(value, str) else json.dumps(value)}
    evaluation = evaluate(config, set())
    assert evaluation.error is None, evaluation.error
    assert evaluation.kubernetes_objects()


@pytest.mark.parametrize("section", ["image", "scheduler", "database", "dags", "network", "triggerer"])
def test_a_partial_section_is_validated_like_a_full_one(section: str) -> None:
    problem = only_problem(**{section: {"notAKey": 1}})
    assert problem.key == f"airflow-k8s:{section}.notAKey"
    assert "unknown key" in problem.allowed


# --- the image ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["2.10.5", "2.11.0-python3.12", "slim-2.10.5", "latest-python3.12", "main"])
def test_the_official_image_must_be_an_airflow_3_release(tag: str) -> None:
    problem = only_problem(image={"tag": tag})
    assert problem.key == "airflow-k8s:image.tag"
    assert problem.value == json.dumps(tag)
    assert "Airflow 3 release" in problem.allowed


@pytest.mark.parametrize("tag", ["3.3.2", "3.3.2-python3.12", "slim-3.3.2", "3.2.1"])
def test_official_airflow_3_tags_are_accepted(tag: str) -> None:
    config = load_stack_config({f"{P}image": json.dumps({"tag": tag})}, set())
    assert config.image.airflow_version is not None and config.image.airflow_version[0] == 3


def test_a_custom_image_repository_may_use_any_tag() -> None:
    image = {"repository": "registry.example.com/data/airflow", "tag": "2026.11.21"}
    config = load_stack_config({f"{P}image": json.dumps(image)}, set())
    assert config.image.reference == "registry.example.com/data/airflow:2026.11.21"
