"""Executors under the mock engine: KubernetesExecutor pod template, Celery with Redis, KEDA."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from components.config import names
from components.config.loading import ConfigError
from components.executors.celery_workers import CELERY_APP, DRAIN_SCRIPT
from tests.support import (
    Evaluation,
    Secret,
    command_secret,
    containers,
    decoded_secret,
    env_of,
    evaluate_ok,
    pod_spec,
    reveal,
    secret_file_source,
)
from tools.mock_engine import evaluate_stack, walk
from tools.validate import KUBERNETES_VERSIONS, validate

E = names.AirflowEnv
ROOT = Path(__file__).resolve().parent.parent


def kinds(evaluation: Evaluation) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in evaluation.kubernetes_objects()}


@pytest.mark.parametrize(
    ("executor", "redis", "template", "workers"),
    [
        ("LocalExecutor", False, False, False),
        ("KubernetesExecutor", False, True, False),
        ("CeleryExecutor", True, False, True),
        ("CeleryExecutor,KubernetesExecutor", True, True, True),
    ],
)
def test_each_executor_gets_exactly_the_objects_it_needs(
    executor: str, redis: bool, template: bool, workers: bool
) -> None:
    evaluation = evaluate_ok(executor=executor)
    found = kinds(evaluation)
    assert (("StatefulSet", names.REDIS) in found) == redis
    assert (("Secret", names.REDIS_SECRET) in found) == redis
    assert (("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP) in found) == template
    assert (("Deployment", names.worker_set("default")) in found) == workers
    for _, container in [
        (w, c) for w in (names.SCHEDULER, names.API_SERVER) for c in containers(evaluation.find("Deployment", w))
    ]:
        assert env_of(container)[E.EXECUTOR] == executor


def test_executor_validation_lists_the_allowed_values() -> None:
    evaluation = evaluate_stack("dev", {"executor": "LocalExecutor,KubernetesExecutor"})
    assert isinstance(evaluation.error, ConfigError)
    assert '"CeleryExecutor,KubernetesExecutor"' in str(evaluation.error)


# --- KubernetesExecutor ---


@pytest.fixture(scope="module")
def kubernetes_executor() -> Evaluation:
    return evaluate_ok(
        executor="KubernetesExecutor",
        kubernetesExecutor={
            "deleteWorkerPods": True,
            "deleteWorkerPodsOnFailure": True,
            "workerResources": {
                "requests": {"cpu": "300m", "memory": "600Mi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            },
        },
    )


def pod_template(evaluation: Evaluation) -> dict[str, Any]:
    text = reveal(evaluation.find("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP)["data"])[names.POD_TEMPLATE_KEY]
    return json.loads(text)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_pod_template_validates_strictly_as_a_pod(kubernetes_executor: Evaluation, version: str) -> None:
    template = pod_template(kubernetes_executor)
    assert template["kind"] == "Pod"
    validate(template, version)


def test_pod_template_runs_the_worker_identity_in_the_stack_namespace(kubernetes_executor: Evaluation) -> None:
    template = pod_template(kubernetes_executor)
    assert template["metadata"]["namespace"] == "airflow-dev"
    assert template["spec"]["serviceAccountName"] == names.WORKER
    # task pods may launch KubernetesPodOperator pods
    assert template["spec"]["automountServiceAccountToken"] is True
    assert template["spec"]["restartPolicy"] == "Never"


def test_pod_template_is_hardened_with_the_configured_resources(kubernetes_executor: Evaluation) -> None:
    spec = pod_template(kubernetes_executor)["spec"]
    assert spec["securityContext"]["runAsUser"] == 50000
    assert spec["securityContext"]["runAsNonRoot"] is True
    [base] = spec["containers"]
    assert base["name"] == "base"
    assert base["securityContext"]["readOnlyRootFilesystem"] is True
    assert base["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert base["resources"] == {
        "requests": {"cpu": "300m", "memory": "600Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }


def test_pod_template_reaches_the_execution_api_and_the_dags_and_holds_no_secret(
    kubernetes_executor: Evaluation,
) -> None:
    template = pod_template(kubernetes_executor)
    [base] = template["spec"]["containers"]
    deployment = kubernetes_executor.find("Deployment", names.SCHEDULER)
    [scheduler] = containers(deployment)
    scheduler_env = env_of(scheduler)
    for variable in (E.EXECUTION_API_SERVER_URL, E.DAGS_FOLDER, E.EXECUTOR):
        assert env_of(base)[variable] == scheduler_env[variable]
    # task code runs here: no database URL, no Fernet key, no signing key; the task's token comes with
    # its workload (tests/test_task_isolation_real.py runs a task to success like this)
    for variable in (E.SQL_ALCHEMY_CONN, E.FERNET_KEY, E.JWT_SECRET, E.API_SECRET_KEY):
        assert f"{variable}_CMD" not in env_of(base) and variable not in env_of(base)
    assert not [v for v in template["spec"]["volumes"] if "secret" in v]
    assert {m["mountPath"] for m in base["volumeMounts"]} >= {"/opt/airflow/dags", "/tmp", "/opt/airflow/logs"}


def test_scheduler_mounts_the_template_and_configures_pod_deletion(kubernetes_executor: Evaluation) -> None:
    [scheduler] = containers(kubernetes_executor.find("Deployment", names.SCHEDULER))
    environment = env_of(scheduler)
    mount = next(m for m in scheduler["volumeMounts"] if m["mountPath"] == "/opt/airflow-k8s/pod-template")
    assert environment[E.POD_TEMPLATE_FILE] == f"{mount['mountPath']}/{names.POD_TEMPLATE_KEY}"
    assert environment[E.KUBERNETES_NAMESPACE] == "airflow-dev"
    assert environment[E.DELETE_WORKER_PODS] == "True"
    assert environment[E.DELETE_WORKER_PODS_ON_FAILURE] == "True"
    volume = next(
        v
        for v in pod_spec(kubernetes_executor.find("Deployment", names.SCHEDULER))["volumes"]
        if v["name"] == mount["name"]
    )
    assert volume["configMap"]["name"] == names.POD_TEMPLATE_CONFIG_MAP


def test_git_sync_task_pods_check_out_once_and_keep_no_sidecar() -> None:
    evaluation = evaluate_ok(
        executor="KubernetesExecutor",
        dags={"delivery": "git-sync", "gitSync": {"repo": "https://example.com/dags.git"}},
    )
    spec = pod_template(evaluation)["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["git-sync-init"]
    assert all(c.get("restartPolicy") != "Always" for c in spec["initContainers"])


# --- Celery and Redis ---


@pytest.fixture(scope="module")
def celery() -> Evaluation:
    return evaluate_ok(
        executor="CeleryExecutor",
        workers=[
            {"name": "default", "queues": ["default"], "concurrency": 12, "replicas": 2},
            {"name": "gpu", "queues": ["gpu", "ml"], "concurrency": 2, "terminationGracePeriodSeconds": 3600},
        ],
    )


def test_redis_password_is_generated_and_only_in_the_secret(celery: Evaluation) -> None:
    data = decoded_secret(celery, names.REDIS_SECRET)
    password = data[names.REDIS_PASSWORD_KEY]
    assert len(password) == 32
    assert f"requirepass {password}" in data[names.REDIS_CONFIG_KEY].splitlines()
    assert data[names.REDIS_BROKER_URL_KEY] == f"redis://:{password}@airflow-redis.airflow-dev.svc.cluster.local:6379/0"
    for registration in celery.registrations:
        for path, leaf, is_secret in walk(registration.inputs):
            if isinstance(leaf, str) and password in leaf:
                assert is_secret, (registration.name, path)


def test_redis_runs_hardened_with_its_config_from_the_secret_and_authenticated_probes(celery: Evaluation) -> None:
    statefulset = celery.find("StatefulSet", names.REDIS)
    spec = pod_spec(statefulset)
    assert spec["securityContext"]["runAsUser"] == 999
    assert spec["automountServiceAccountToken"] is False
    [redis] = spec["containers"]
    assert redis["args"] == ["redis-server", "/etc/redis/redis.conf"]
    # no password in the environment or in arguments: probes read the mounted file
    assert "env" not in redis
    password_file = secret_file_source(statefulset, redis, "/etc/redis/password")
    assert password_file == (names.REDIS_SECRET, names.REDIS_PASSWORD_KEY)
    for probe in ("readinessProbe", "livenessProbe"):
        command = redis[probe]["exec"]["command"][-1]
        assert 'REDISCLI_AUTH="$(cat /etc/redis/password)"' in command and "ping" in command
    config_volume = next(v for v in spec["volumes"] if v["name"] == "redis-config")
    assert config_volume["secret"]["secretName"] == names.REDIS_SECRET
    assert redis["securityContext"]["readOnlyRootFilesystem"] is True
    assert set(redis["resources"]) == {"requests", "limits"}


def test_redis_persistence_is_optional() -> None:
    ephemeral = evaluate_ok(executor="CeleryExecutor")
    spec = ephemeral.find("StatefulSet", names.REDIS)["spec"]
    assert "volumeClaimTemplates" not in spec
    assert "emptyDir" in next(v for v in spec["template"]["spec"]["volumes"] if v["name"] == "data")
    assert "appendonly no" in decoded_secret(ephemeral, names.REDIS_SECRET)[names.REDIS_CONFIG_KEY]
    persistent = evaluate_ok(executor="CeleryExecutor", redis={"persistence": {"enabled": True, "size": "5Gi"}})
    [claim] = persistent.find("StatefulSet", names.REDIS)["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert "appendonly yes" in decoded_secret(persistent, names.REDIS_SECRET)[names.REDIS_CONFIG_KEY]


def test_broker_and_result_backend_come_from_the_broker_secret(celery: Evaluation) -> None:
    for workload in (names.SCHEDULER, names.worker_set("default")):
        deployment = celery.find("Deployment", workload)
        container = next(iter(containers(deployment)))
        # results live in Redis too, so the workers that run task code need no database login
        for variable in (E.CELERY_BROKER_URL, E.CELERY_RESULT_BACKEND):
            assert command_secret(deployment, container, variable) == (names.REDIS_SECRET, names.REDIS_BROKER_URL_KEY)
    assert decoded_secret(celery, names.REDIS_SECRET)[names.REDIS_BROKER_URL_KEY].startswith("redis://")
    server = next(iter(containers(celery.find("Deployment", names.API_SERVER))))
    assert f"{E.CELERY_BROKER_URL}_CMD" not in env_of(server)


def test_a_celery_worker_holds_only_the_broker_and_its_log_server_only_the_api_key(celery: Evaluation) -> None:
    deployment = celery.find("Deployment", names.worker_set("default"))
    spec = pod_spec(deployment)
    [main] = spec["containers"]
    [log_server] = [c for c in spec["initContainers"] if c["name"] == "log-server"]
    assert main["args"][-1] == "--skip-serve-logs"
    assert {(m["name"], m.get("subPath")) for m in main["volumeMounts"] if m["name"].startswith("secret-")} == {
        (f"secret-{names.REDIS_SECRET}", names.REDIS_BROKER_URL_KEY)
    }
    assert log_server["restartPolicy"] == "Always"  # a native sidecar, beside the worker
    assert command_secret(deployment, log_server, E.API_SECRET_KEY) == (names.KEYS_SECRET, names.API_SECRET_KEY)
    assert {m["name"] for m in log_server["volumeMounts"] if m["name"].startswith("secret-")} == {
        f"secret-{names.KEYS_SECRET}"
    }
    logs = next(m for m in log_server["volumeMounts"] if m["name"] == "logs")
    assert logs.get("readOnly") is True
    assert log_server["ports"] == [{"name": "task-logs", "containerPort": names.WORKER_LOG_PORT, "protocol": "TCP"}]
    # workers never wait for migrations: they do not touch the database
    assert [c["name"] for c in spec["initContainers"]] == ["log-server", "log-cleanup"]


def worker(evaluation: Evaluation, name: str) -> dict[str, Any]:
    [container] = containers(evaluation.find("Deployment", names.worker_set(name)))
    return container


def test_one_worker_deployment_per_queue_set_with_its_queues_and_concurrency(celery: Evaluation) -> None:
    assert celery.names_of("Deployment") >= {names.worker_set("default"), names.worker_set("gpu")}
    gpu = worker(celery, "gpu")
    assert gpu["args"] == [
        "airflow",
        "celery",
        "worker",
        "--queues",
        "gpu,ml",
        "--concurrency",
        "2",
        "--skip-serve-logs",
    ]
    assert env_of(gpu)[E.CELERY_WORKER_CONCURRENCY] == "2"
    assert worker(celery, "default")["args"][-2] == "12"


def test_worker_sets_never_select_each_others_pods(celery: Evaluation) -> None:
    default = celery.find("Deployment", names.worker_set("default"))["spec"]
    gpu = celery.find("Deployment", names.worker_set("gpu"))["spec"]
    assert not default["selector"]["matchLabels"].items() <= gpu["template"]["metadata"]["labels"].items()
    assert not gpu["selector"]["matchLabels"].items() <= default["template"]["metadata"]["labels"].items()


def test_worker_liveness_pings_its_own_celery_node(celery: Evaluation) -> None:
    command = worker(celery, "default")["livenessProbe"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    assert f"celery --app {CELERY_APP} inspect ping" in command[2]
    assert '--destination "celery@${HOSTNAME}"' in command[2]
    assert worker(celery, "default")["livenessProbe"]["timeoutSeconds"] >= 30


def test_workers_drain_gracefully_before_they_stop(celery: Evaluation) -> None:
    default = celery.find("Deployment", names.worker_set("default"))
    assert pod_spec(default)["terminationGracePeriodSeconds"] == 600
    gpu = celery.find("Deployment", names.worker_set("gpu"))
    assert pod_spec(gpu)["terminationGracePeriodSeconds"] == 3600
    container = worker(celery, "gpu")
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["python", DRAIN_SCRIPT]
    environment = env_of(container)
    assert environment[E.WORKER_QUEUES] == "gpu,ml"
    # the drain ends before the grace period, leaving Celery time for its warm shutdown
    assert 0 < int(environment[E.DRAIN_SECONDS]) < 3600


def load_drain_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "celery_drain", ROOT / "components/control_plane/scripts/celery-drain.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeCeleryControl:
    """Answers like a worker that finishes one task per inspection."""

    def __init__(self, running: int) -> None:
        self.running = running
        self.cancelled: list[tuple[str, list[str]]] = []

    @property
    def control(self) -> FakeCeleryControl:
        return self

    def cancel_consumer(self, queue: str, destination: list[str], reply: bool, timeout: float) -> None:
        self.cancelled.append((queue, destination))

    def inspect(self, destination: list[str], timeout: float) -> FakeCeleryControl:
        return self

    def active(self) -> dict[str, list[str]] | None:
        tasks = [f"task-{i}" for i in range(self.running)]
        self.running = max(0, self.running - 1)
        return {"celery@worker-0": tasks}


def test_drain_stops_consuming_every_queue_then_waits_for_running_tasks() -> None:
    drain = load_drain_script()
    app = FakeCeleryControl(running=3)
    assert drain.drain(app, "celery@worker-0", ["gpu", "ml"], deadline_seconds=5, poll_seconds=0)
    assert app.cancelled == [("gpu", ["celery@worker-0"]), ("ml", ["celery@worker-0"])]
    assert app.running == 0


def test_drain_gives_up_at_its_deadline_without_claiming_success() -> None:
    drain = load_drain_script()

    class Busy(FakeCeleryControl):
        def active(self) -> dict[str, list[str]] | None:
            return None  # no answer: not treated as idle

    assert (
        drain.drain(Busy(running=1), "celery@worker-0", ["default"], deadline_seconds=0.05, poll_seconds=0.01) is False
    )


# --- KEDA ---


@pytest.fixture(scope="module")
def autoscaled() -> Evaluation:
    return evaluate_ok(
        executor="CeleryExecutor,KubernetesExecutor",
        keda={"enabled": True, "operatorNamespace": "keda-system"},
        workers=[
            {
                "name": "default",
                "queues": ["default"],
                "concurrency": 16,
                "autoscaling": {"minReplicas": 1, "maxReplicas": 10, "pollingInterval": 5, "cooldownPeriod": 120},
            },
            {"name": "heavy", "queues": ["heavy", "ml"], "concurrency": 4},
        ],
        triggerer={"autoscaling": {"enabled": True, "maxReplicas": 5}},
    )


def test_one_scaled_object_per_worker_set_targets_its_deployment(autoscaled: Evaluation) -> None:
    for name in ("default", "heavy"):
        scaled = autoscaled.find("ScaledObject", names.worker_set(name))
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        assert scaled["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": names.worker_set(name),
        }
        assert names.worker_set(name) in autoscaled.names_of("Deployment")


def test_scaled_object_bounds_and_timing_come_from_config(autoscaled: Evaluation) -> None:
    spec = autoscaled.find("ScaledObject", names.worker_set("default"))["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"], spec["cooldownPeriod"]) == (
        1,
        10,
        5,
        120,
    )
    defaults = autoscaled.find("ScaledObject", names.worker_set("heavy"))["spec"]
    assert (defaults["minReplicaCount"], defaults["maxReplicaCount"]) == (0, 3)


def test_trigger_counts_the_sets_queues_divided_by_its_concurrency(autoscaled: Evaluation) -> None:
    [trigger] = autoscaled.find("ScaledObject", names.worker_set("heavy"))["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"]["targetQueryValue"] == "1"
    query = trigger["metadata"]["query"]
    assert "COUNT(*)::decimal / 4)" in query
    assert "state IN ('queued', 'running')" in query
    assert "queue IN ('heavy', 'ml')" in query
    # multi-executor: KubernetesExecutor task instances never count
    assert "executor NOT IN ('KubernetesExecutor'" in query
    assert env_of(worker(autoscaled, "heavy"))[E.CELERY_WORKER_CONCURRENCY] == "4"


def test_celery_only_query_has_no_executor_filter() -> None:
    evaluation = evaluate_ok(executor="CeleryExecutor", keda={"enabled": True})
    query = evaluation.find("ScaledObject", names.worker_set("default"))["spec"]["triggers"][0]["metadata"]["query"]
    assert "executor" not in query


def test_keda_logs_in_with_its_own_read_only_role_through_a_trigger_authentication(autoscaled: Evaluation) -> None:
    authentication = autoscaled.find("TriggerAuthentication", names.KEDA_TRIGGER_AUTH)
    assert authentication["spec"] == {
        "secretTargetRef": [
            {"parameter": "connection", "name": names.KEDA_DATABASE_SECRET, "key": names.KEDA_CONNECTION_KEY}
        ]
    }
    login = decoded_secret(autoscaled, names.KEDA_DATABASE_SECRET)
    url = urlsplit(login[names.KEDA_CONNECTION_KEY])
    assert (url.scheme, url.username, unquote(url.password or "")) == ("postgresql", "airflow_keda", login["password"])
    owner = urlsplit(decoded_secret(autoscaled, names.METADATA_SECRET)[names.METADATA_CONNECTION_KEY])
    assert (url.hostname, url.port, url.path) == (owner.hostname, owner.port, owner.path)
    # the owner's URL is not in KEDA's Secret, and KEDA's not in Airflow's
    assert owner.password not in json.dumps(login)
    assert set(decoded_secret(autoscaled, names.METADATA_SECRET)) == {names.METADATA_CONNECTION_KEY}
    password = decoded_secret(autoscaled, names.POSTGRES_SECRET)[names.POSTGRES_PASSWORD_KEY]
    for kind in ("ScaledObject", "TriggerAuthentication"):
        for name in autoscaled.names_of(kind):
            text = json.dumps(reveal(autoscaled.find(kind, name)))
            assert password not in text and "postgresql://" not in text
            for trigger in autoscaled.find(kind, name).get("spec", {}).get("triggers", []):
                assert trigger["authenticationRef"] == {"name": names.KEDA_TRIGGER_AUTH}


def test_the_migration_step_keeps_the_keda_role_in_sync_with_its_password(autoscaled: Evaluation) -> None:
    deployment = autoscaled.find("Deployment", names.SCHEDULER)
    [migrate] = [c for c in pod_spec(deployment)["initContainers"] if c["name"] == "migrate-database"]
    environment = env_of(migrate)
    assert environment[E.KEDA_ROLE] == "airflow_keda"
    source = secret_file_source(deployment, migrate, environment[E.KEDA_PASSWORD_FILE])
    assert source == (names.KEDA_DATABASE_SECRET, names.KEDA_PASSWORD_KEY)
    # without KEDA there is no role to keep
    [plain] = [
        c
        for c in pod_spec(evaluate_ok().find("Deployment", names.SCHEDULER))["initContainers"]
        if c["name"] == "migrate-database"
    ]
    assert E.KEDA_ROLE not in env_of(plain)


def test_scaled_workloads_leave_replicas_to_keda(autoscaled: Evaluation) -> None:
    for workload in (names.worker_set("default"), names.worker_set("heavy"), names.TRIGGERER):
        assert "replicas" not in autoscaled.find("Deployment", workload)["spec"]
        assert autoscaled.registration_for("Deployment", workload).ignore_changes == ["spec.replicas"]
    # the rest keep their configured replicas, which `pulumi up` manages
    assert autoscaled.find("Deployment", names.SCHEDULER)["spec"]["replicas"] == 1
    assert autoscaled.registration_for("Deployment", names.SCHEDULER).ignore_changes == []


def test_without_keda_workers_get_their_configured_replicas(celery: Evaluation) -> None:
    assert celery.find("Deployment", names.worker_set("default"))["spec"]["replicas"] == 2
    assert celery.registration_for("Deployment", names.worker_set("default")).ignore_changes == []
    assert "ScaledObject" not in {o["kind"] for o in celery.kubernetes_objects()}


def test_triggerer_scaled_object_counts_triggers_per_capacity(autoscaled: Evaluation) -> None:
    scaled = autoscaled.find("ScaledObject", names.TRIGGERER)
    assert scaled["spec"]["scaleTargetRef"]["name"] == names.TRIGGERER
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert query == "SELECT ceil(COUNT(*)::decimal / 1000)\nFROM trigger"
    assert scaled["spec"]["maxReplicaCount"] == 5


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_keda_objects_validate_against_the_crds_with_unknown_fields_rejected(
    autoscaled: Evaluation, version: str
) -> None:
    for kind in ("ScaledObject", "TriggerAuthentication"):
        for name in autoscaled.names_of(kind):
            validate(reveal(autoscaled.find(kind, name)), version)
    with pytest.raises(ValueError, match="unexpected"):
        bad = reveal(autoscaled.find("ScaledObject", names.worker_set("default")))
        bad["spec"]["triggers"][0]["authRef"] = {"name": "typo"}
        validate(bad)


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        (
            {"workers": [{"name": "a", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}]},
            "workers[0].autoscaling.minReplicas",
            "at most maxReplicas",
        ),
        (
            {"workers": [{"name": "a", "autoscaling": {"minReplicas": -1}}]},
            "workers[0].autoscaling.minReplicas",
            "non-negative",
        ),
        (
            {"workers": [{"name": "a", "autoscaling": {"maxReplicas": 0}}]},
            "workers[0].autoscaling.maxReplicas",
            "at least 1",
        ),
        (
            {"workers": [{"name": "a", "autoscaling": {"pollingInterval": 2.5}}]},
            "workers[0].autoscaling.pollingInterval",
            "integer",
        ),
        (
            {"workers": [{"name": "a", "autoscaling": {"cooldownPeriod": -5}}]},
            "workers[0].autoscaling.cooldownPeriod",
            "non-negative",
        ),
        ({"workers": [{"name": "a"}, {"name": "a", "queues": ["b"]}]}, "workers[1].name", "unique"),
        ({"workers": [{"name": "a"}, {"name": "b"}]}, "workers[1].queues", "already consumed"),
        ({"workers": [{"name": "a", "queues": ["bad queue"]}]}, "workers[0].queues[0]", "queue names"),
        ({"workers": [{"name": "a", "queues": []}]}, "workers[0].queues", "at least one queue"),
        ({"workers": [{"name": "Bad_Name"}]}, "workers[0].name", "DNS-1123"),
        (
            {"triggerer": {"autoscaling": {"enabled": True}}, "keda": {"enabled": False}},
            "triggerer.autoscaling.enabled",
            "keda.enabled",
        ),
        ({"executor": "KubernetesExecutor", "keda": {"enabled": True}}, "keda.enabled", "nothing to autoscale"),
    ],
)
def test_autoscaling_and_worker_settings_are_validated(overrides: dict[str, Any], key: str, allowed: str) -> None:
    base: dict[str, Any] = {"executor": "CeleryExecutor", "keda": {"enabled": True}}
    evaluation = evaluate_stack("dev", {**base, **overrides})
    assert isinstance(evaluation.error, ConfigError), evaluation.error
    [problem] = [p for p in evaluation.error.problems if p.key == f"airflow-k8s:{key}"]
    assert allowed in problem.allowed
    assert evaluation.registrations == []


def test_prod_runs_celery_and_kubernetes_executors_with_keda(prod: Evaluation) -> None:
    [scheduler] = containers(prod.find("Deployment", names.SCHEDULER))
    assert env_of(scheduler)[E.EXECUTOR] == "CeleryExecutor,KubernetesExecutor"
    assert prod.names_of("ScaledObject") == {names.worker_set("default"), names.worker_set("heavy")}
    assert isinstance(prod.find("Secret", names.REDIS_SECRET)["data"], Secret)


def test_dev_stays_light(dev: Evaluation) -> None:
    assert env_of(next(iter(containers(dev.find("Deployment", names.SCHEDULER)))))[E.EXECUTOR] == "LocalExecutor"
    assert not {"ScaledObject", "TriggerAuthentication"} & {o["kind"] for o in dev.kubernetes_objects()}
    assert names.REDIS not in dev.names_of("StatefulSet")


# --- the KubernetesExecutor's own pod construction, for real ---


@pytest.mark.real
def test_the_kubernetes_executor_builds_a_valid_task_pod_from_the_template(kubernetes_executor: Evaluation) -> None:
    from tests.local_pod import LocalPod

    scheduler = LocalPod(kubernetes_executor, "Deployment", names.SCHEDULER, database_port=5432)
    try:
        harness = str(ROOT / "tests" / "dag_harness.py")
        result = scheduler.run("scheduler", 180, ["python", harness, "kubernetes-executor-pod"])
    finally:
        scheduler.stop()
    marker = [line for line in result.stdout.splitlines() if line.startswith("@@RESULT@@")]
    assert result.returncode == 0 and marker, result.stderr[-3000:]
    built = json.loads(marker[-1].removeprefix("@@RESULT@@"))
    pod = built["pod"]
    for version in KUBERNETES_VERSIONS:
        validate(pod, version)
    template = pod_template(kubernetes_executor)
    [base] = pod["spec"]["containers"]
    [template_base] = template["spec"]["containers"]
    # the template's image, identity, hardening, resources and wiring survive; the executor adds the command
    assert base["image"] == template_base["image"] == "apache/airflow:3.3.2"
    assert base["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
    assert pod["spec"]["serviceAccountName"] == names.WORKER
    assert pod["metadata"]["namespace"] == "airflow-dev"
    assert pod["spec"]["securityContext"] == template["spec"]["securityContext"]
    assert base["securityContext"] == template_base["securityContext"]
    assert base["resources"] == template_base["resources"]
    names_in_env = {e["name"] for e in base["env"]}
    assert {e["name"] for e in template_base["env"]} <= names_in_env
    assert "AIRFLOW_IS_K8S_EXECUTOR_POD" in names_in_env
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == names.Component.KUBERNETES_TASK
