"""The Airflow 3 control plane under the mock engine: workloads, wiring, probes, hardening, rollouts."""

from __future__ import annotations

from typing import Any

import pytest

from components.airflow_pods.environment import FAB_AUTH_MANAGER
from components.config import names
from components.kube import wiring
from tests.support import (
    Evaluation,
    Secret,
    command_secret,
    containers,
    decoded_secret,
    env_of,
    evaluate_ok,
    pod_spec,
    secret_file_source,
)
from tools.mock_engine import evaluate_stack

E = names.AirflowEnv
CREDENTIALS = (E.SQL_ALCHEMY_CONN, E.FERNET_KEY, E.JWT_SECRET, E.API_SECRET_KEY)
AIRFLOW_WORKLOADS = [names.API_SERVER, names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER]


def airflow_containers(evaluation: Evaluation) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for workload in AIRFLOW_WORKLOADS:
        for container in containers(evaluation.find("Deployment", workload), init=True):
            if container["image"].startswith("apache/airflow"):
                found.append((workload, container))
    return found


def test_each_component_is_a_deployment_of_the_pinned_airflow_image(dev: Evaluation) -> None:
    for workload, container in airflow_containers(dev):
        assert container["image"] == "apache/airflow:3.3.2", workload
    assert dev.names_of("Deployment") == set(AIRFLOW_WORKLOADS)


def test_image_tag_comes_from_config() -> None:
    evaluation = evaluate_ok(image={"repository": "apache/airflow", "tag": "3.3.1"})
    for _, container in airflow_containers(evaluation):
        assert container["image"] == "apache/airflow:3.3.1"


def test_api_server_service_is_cluster_ip_on_8080_selecting_api_server_pods(dev: Evaluation) -> None:
    service = dev.find("Service", names.API_SERVER)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": "http"}]
    template_labels = dev.find("Deployment", names.API_SERVER)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()
    [server] = [c for c in containers(dev.find("Deployment", names.API_SERVER)) if c["name"] == "api-server"]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in server["ports"]


def test_selectors_match_their_pod_templates(prod: Evaluation) -> None:
    for obj in prod.kubernetes_objects():
        if obj["kind"] in ("Deployment", "StatefulSet"):
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


# --- migrations ---


def test_scheduler_migrates_the_database_in_an_init_container(dev: Evaluation) -> None:
    init = pod_spec(dev.find("Deployment", names.SCHEDULER))["initContainers"][0]
    assert init["name"] == "migrate-database"
    assert init["args"] == ["python", "/opt/airflow-k8s/scripts/migrate-database.py"]


@pytest.mark.parametrize("workload", [names.API_SERVER, names.DAG_PROCESSOR, names.TRIGGERER])
def test_other_pods_wait_for_migrations_with_the_configured_bounded_timeout(workload: str) -> None:
    evaluation = evaluate_ok(migrationWaitTimeoutSeconds=123)
    [wait] = [
        c
        for c in pod_spec(evaluation.find("Deployment", workload))["initContainers"]
        if c["name"] == "wait-for-migrations"
    ]
    assert wait["args"] == ["python", "/opt/airflow-k8s/scripts/wait-for-migrations.py"]
    assert env_of(wait)[E.MIGRATION_WAIT_TIMEOUT] == "123"
    assert pod_spec(evaluation.find("Deployment", workload))["initContainers"][0]["name"] == "wait-for-migrations"


def test_an_image_upgrade_migrates_in_the_new_scheduler_pods_before_others_serve() -> None:
    before = evaluate_ok()
    after = evaluate_ok(image={"repository": "apache/airflow", "tag": "3.3.3"})
    migrate = pod_spec(after.find("Deployment", names.SCHEDULER))["initContainers"][0]
    assert migrate["name"] == "migrate-database"
    assert migrate["image"] == "apache/airflow:3.3.3"
    assert migrate["args"] == ["python", "/opt/airflow-k8s/scripts/migrate-database.py"]
    for workload in (names.API_SERVER, names.DAG_PROCESSOR, names.TRIGGERER):
        wait = pod_spec(after.find("Deployment", workload))["initContainers"][0]
        # the new image's check-migrations waits for the new schema
        assert (wait["name"], wait["image"]) == ("wait-for-migrations", "apache/airflow:3.3.3")
        # old pods keep serving until the new ones are ready
        strategy = after.find("Deployment", workload)["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert (
        before.find("Deployment", names.SCHEDULER)["spec"]["selector"]
        == after.find("Deployment", names.SCHEDULER)["spec"]["selector"]
    )


# --- configuration through the environment ---


# Who holds which secret key: (workload, container) -> what it reads. The README's security table says
# the same in words; tests/test_task_isolation_real.py proves the removals with real Airflow processes.
DB = (names.METADATA_SECRET, names.METADATA_CONNECTION_KEY)
FERNET = (names.KEYS_SECRET, names.FERNET_KEY)
JWT = (names.KEYS_SECRET, names.JWT_SECRET_KEY)
API_KEY = (names.KEYS_SECRET, names.API_SECRET_KEY)
BROKER = (names.REDIS_SECRET, names.REDIS_BROKER_URL_KEY)
ADMIN = (names.ADMIN_SECRET, names.ADMIN_PASSWORD_KEY)
KEDA = (names.KEDA_DATABASE_SECRET, names.KEDA_PASSWORD_KEY)
POOLED_DB = (names.METADATA_SECRET, names.METADATA_POOLED_CONNECTION_KEY)
SCRAM = (names.METADATA_SECRET, names.METADATA_SCRAM_VERIFIER_KEY)


def who_holds_what(
    executor: str, keda: bool = False, pgbouncer: bool = False
) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """With PgBouncer, every Airflow process reads the pooled URL instead, and the migration step (still
    direct) also the SCRAM verifier it sets on the role."""
    held = _who_holds_what(executor, keda)
    if not pgbouncer:
        return held
    pooled = {key: {POOLED_DB if item == DB else item for item in items} for key, items in held.items()}
    pooled[(names.SCHEDULER, "migrate-database")] = {DB, SCRAM, *({KEDA} if keda else set())}
    return pooled


def _who_holds_what(executor: str, keda: bool = False) -> dict[tuple[str, str], set[tuple[str, str]]]:
    local, celery = executor == "LocalExecutor", "CeleryExecutor" in executor
    return {
        (names.API_SERVER, "wait-for-migrations"): {DB},
        (names.API_SERVER, "bootstrap-admin"): {DB, FERNET, JWT, API_KEY, ADMIN},
        (names.API_SERVER, "api-server"): {DB, FERNET, JWT, API_KEY},
        (names.SCHEDULER, "migrate-database"): {DB, *({KEDA} if keda else set())},
        (names.SCHEDULER, "scheduler"): {
            DB,
            FERNET,
            JWT,
            *({API_KEY} if local else set()),
            *({BROKER} if celery else set()),
        },
        (names.DAG_PROCESSOR, "wait-for-migrations"): {DB},
        (names.DAG_PROCESSOR, "dag-processor"): {DB, FERNET},
        (names.TRIGGERER, "wait-for-migrations"): {DB},
        (names.TRIGGERER, "triggerer"): {DB, FERNET, API_KEY},
        # the log-cleanup sidecars delete old files: no secret at all
        (names.SCHEDULER, "log-cleanup"): set(),
        (names.DAG_PROCESSOR, "log-cleanup"): set(),
        (names.TRIGGERER, "log-cleanup"): set(),
    }


def secrets_read(obj: dict[str, Any], container: dict[str, Any]) -> set[tuple[str, str]]:
    """Every Secret key a container can read: mounted files (and what its variables point at)."""
    volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    found: set[tuple[str, str]] = set()
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "secret" not in volume:
            continue
        items = volume["secret"]["items"]
        keys = [mount["subPath"]] if "subPath" in mount else [item["key"] for item in items]
        found |= {(volume["secret"]["secretName"], key) for key in keys}
    for entry in container.get("env", []):
        assert "secretKeyRef" not in str(entry), (container["name"], entry["name"])
        if entry["name"].endswith("_CMD"):
            assert command_secret(obj, container, entry["name"].removesuffix("_CMD")) in found
    return found


@pytest.mark.parametrize(
    ("executor", "keda", "pgbouncer"),
    [
        ("LocalExecutor", False, False),
        ("KubernetesExecutor", False, False),
        ("CeleryExecutor", False, False),
        ("CeleryExecutor", True, False),
        ("LocalExecutor", False, True),
        ("CeleryExecutor", True, True),
    ],
)
def test_each_container_reads_exactly_the_secret_keys_it_needs(executor: str, keda: bool, pgbouncer: bool) -> None:
    evaluation = evaluate_ok(executor=executor, keda={"enabled": keda}, pgbouncer={"enabled": pgbouncer})
    expected = who_holds_what(executor, keda, pgbouncer)
    found = {
        (workload, container["name"]): secrets_read(evaluation.find("Deployment", workload), container)
        for workload in AIRFLOW_WORKLOADS
        for container in containers(evaluation.find("Deployment", workload), init=True)
        if container["image"].startswith("apache/airflow")
    }
    assert found == expected


def test_credentials_are_read_from_mounted_secret_files_not_the_environment(dev: Evaluation) -> None:
    server = next(c for c in containers(dev.find("Deployment", names.API_SERVER)) if c["name"] == "api-server")
    obj = dev.find("Deployment", names.API_SERVER)
    assert {v: command_secret(obj, server, v) for v in CREDENTIALS} == {
        E.SQL_ALCHEMY_CONN: DB,
        E.FERNET_KEY: FERNET,
        E.JWT_SECRET: JWT,
        E.API_SECRET_KEY: API_KEY,
    }
    for _, container in airflow_containers(dev):
        assert all("secretKeyRef" not in str(entry) for entry in container["env"]), container["name"]


def test_pods_mount_only_the_secret_keys_they_read(dev: Evaluation) -> None:
    spec = pod_spec(dev.find("Deployment", names.DAG_PROCESSOR))
    keys = next(v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == names.KEYS_SECRET)
    # the dag-processor signs nothing: its pod holds the Fernet key, not the JWT secret or the API key
    assert [item["key"] for item in keys["secret"]["items"]] == [names.FERNET_KEY]
    assert keys["secret"]["defaultMode"] == 0o440


def test_the_api_server_and_the_scheduler_share_one_jwt_secret(dev: Evaluation) -> None:
    holders = {(w, c) for (w, c), read in who_holds_what("LocalExecutor").items() if JWT in read}
    assert {w for w, _ in holders} == {names.API_SERVER, names.SCHEDULER}
    assert len(decoded_secret(dev, names.KEYS_SECRET)[names.JWT_SECRET_KEY]) >= 64


def test_without_a_public_url_no_base_url_is_set_and_the_execution_api_is_in_cluster(dev: Evaluation) -> None:
    for _, container in airflow_containers(dev):
        environment = env_of(container)
        # an in-cluster base_url would send a port-forwarding browser to a name it cannot resolve
        assert E.API_BASE_URL not in environment
        assert environment[E.EXECUTION_API_SERVER_URL] == (
            "http://airflow-api-server.airflow-dev.svc.cluster.local:8080/execution/"
        )


def test_a_base_url_with_a_path_prefixes_probes_and_the_execution_api() -> None:
    evaluation = evaluate_ok(apiServer={"baseUrl": "https://data.example.com/airflow"})
    [server] = [c for c in containers(evaluation.find("Deployment", names.API_SERVER)) if c["name"] == "api-server"]
    assert env_of(server)[E.API_BASE_URL] == "https://data.example.com/airflow"
    assert env_of(server)[E.EXECUTION_API_SERVER_URL] == (
        "http://airflow-api-server.airflow-dev.svc.cluster.local:8080/airflow/execution/"
    )
    assert server["livenessProbe"]["httpGet"]["path"] == "/airflow/api/v2/monitor/health"
    assert evaluation.outputs["uiUrl"] == "https://data.example.com/airflow"


def test_examples_are_off_and_fab_is_the_auth_manager(dev: Evaluation) -> None:
    for _, container in airflow_containers(dev):
        environment = env_of(container)
        assert environment[E.LOAD_EXAMPLES] == "False"
        assert environment[E.AUTH_MANAGER] == FAB_AUTH_MANAGER
        assert environment[E.EXECUTOR] == "LocalExecutor"


@pytest.mark.parametrize(
    ("overrides", "parallelism"),
    [
        # LocalExecutor: task processes share the scheduler's memory limit (1 GiB headroom, 256 MiB each)
        ({}, "4"),
        (
            {
                "scheduler": {
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "5Gi"}}
                }
            },
            "16",
        ),
        ({"executor": "KubernetesExecutor", "kubernetesExecutor": {"maxTaskPods": 40}}, "40"),
        # per scheduler: two schedulers split the capacity
        (
            {"executor": "KubernetesExecutor", "kubernetesExecutor": {"maxTaskPods": 40}, "scheduler": {"replicas": 2}},
            "20",
        ),
        ({"parallelism": 7}, "7"),
    ],
)
def test_parallelism_is_sized_to_the_executors_capacity(overrides: dict[str, Any], parallelism: str) -> None:
    evaluation = evaluate_ok(**overrides)
    [scheduler] = containers(evaluation.find("Deployment", names.SCHEDULER))
    assert env_of(scheduler)[E.PARALLELISM] == parallelism
    # only the scheduler's executor reads it
    assert all(E.PARALLELISM not in env_of(c) for w, c in airflow_containers(evaluation) if w != names.SCHEDULER)


def test_extra_environment_and_secrets_reach_every_airflow_container() -> None:
    evaluation = evaluate_ok(
        extraEnv={"AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Paris"}, extraEnvFromSecrets=["team-smtp-credentials"]
    )
    for _, container in airflow_containers(evaluation):
        assert env_of(container)["AIRFLOW__CORE__DEFAULT_TIMEZONE"] == "Europe/Paris"
        assert {"secretRef": {"name": "team-smtp-credentials"}} in container["envFrom"]


CONNECTIONS = {"warehouse": "postgresql://etl:wh-passw0rd-1234@warehouse.example.com:5432/dw"}


def test_connections_from_secret_config_become_airflow_conn_variables_from_a_secret() -> None:
    evaluation = evaluate_ok(secret_overrides={"connections": CONNECTIONS})
    assert decoded_secret(evaluation, names.CONNECTIONS_SECRET) == {"AIRFLOW_CONN_WAREHOUSE": CONNECTIONS["warehouse"]}
    for _, container in airflow_containers(evaluation):
        assert {"secretRef": {"name": names.CONNECTIONS_SECRET}} in container["envFrom"]
        assert "AIRFLOW_CONN_WAREHOUSE" not in env_of(container)


def test_connections_set_as_plain_config_are_rejected() -> None:
    from tools.mock_engine import evaluate_stack

    evaluation = evaluate_stack("dev", {"connections": CONNECTIONS})
    assert evaluation.error is not None
    assert "pulumi config set --secret connections" in str(evaluation.error)
    assert "wh-passw0rd" not in str(evaluation.error)


# --- rollouts on content changes ---


def annotations(evaluation: Evaluation, kind: str, name: str) -> dict[str, Any]:
    return evaluation.find(kind, name)["spec"]["template"]["metadata"].get("annotations", {})


def test_the_secrets_checksum_annotation_is_itself_a_pulumi_secret(dev: Evaluation) -> None:
    for workload in AIRFLOW_WORKLOADS:
        assert isinstance(annotations(dev, "Deployment", workload)[wiring.SECRETS_ANNOTATION], Secret)


def test_changing_a_secret_rolls_the_pods_that_use_it_in_place() -> None:
    before = evaluate_ok(secret_overrides={"connections": CONNECTIONS})
    after = evaluate_ok(secret_overrides={"connections": {"warehouse": "postgresql://etl:rotated-0000@wh:5432/dw"}})
    for workload in AIRFLOW_WORKLOADS:
        old = annotations(before, "Deployment", workload)
        new = annotations(after, "Deployment", workload)
        assert old[wiring.SECRETS_ANNOTATION] != new[wiring.SECRETS_ANNOTATION], workload
        assert old[wiring.CONFIG_ANNOTATION] == new[wiring.CONFIG_ANNOTATION]
        registration = after.registration_for("Deployment", workload)
        assert not registration.replace_on_changes and not registration.delete_before_replace
    # the database does not read connections: it is left alone
    assert annotations(before, "StatefulSet", names.POSTGRES) == annotations(after, "StatefulSet", names.POSTGRES)


def test_changing_the_scripts_config_map_rolls_only_airflow_pods(dev: Evaluation) -> None:
    from components.control_plane import settings as airflow_config

    original = airflow_config.AIRFLOW_CFG
    try:
        airflow_config.AIRFLOW_CFG = original + "# changed\n"
        changed = evaluate_stack("dev")  # a fresh run, not the tests' shared evaluation
    finally:
        airflow_config.AIRFLOW_CFG = original
    for workload in AIRFLOW_WORKLOADS:
        assert (
            annotations(dev, "Deployment", workload)[wiring.CONFIG_ANNOTATION]
            != annotations(changed, "Deployment", workload)[wiring.CONFIG_ANNOTATION]
        )
    assert annotations(dev, "StatefulSet", names.POSTGRES) == annotations(changed, "StatefulSet", names.POSTGRES)


# --- probes ---


def test_api_server_is_ready_only_once_the_execution_api_answers(dev: Evaluation) -> None:
    [server] = [c for c in containers(dev.find("Deployment", names.API_SERVER)) if c["name"] == "api-server"]
    for probe in ("startupProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/api/v2/monitor/health", "port": "http", "scheme": "HTTP"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/execution/health", "port": "http", "scheme": "HTTP"}


def test_task_processes_wait_for_the_execution_api_longer_than_the_sdk_default(dev: Evaluation) -> None:
    for name, container in airflow_containers(dev):
        assert env_of(container)[E.EXECUTION_API_TIMEOUT] == "60", name


def test_scheduler_probes_its_health_check_server(dev: Evaluation) -> None:
    [scheduler] = containers(dev.find("Deployment", names.SCHEDULER))
    environment = env_of(scheduler)
    assert environment[E.SCHEDULER_HEALTH_CHECK] == "True"
    assert environment[E.SCHEDULER_HEALTH_PORT] == "8974"
    assert {"name": "health", "containerPort": 8974, "protocol": "TCP"} in scheduler["ports"]
    assert scheduler["livenessProbe"]["httpGet"] == {"path": "/health", "port": "health", "scheme": "HTTP"}


@pytest.mark.parametrize(
    ("workload", "job"), [(names.DAG_PROCESSOR, "DagProcessorJob"), (names.TRIGGERER, "TriggererJob")]
)
def test_job_probes_query_the_database_instead_of_starting_the_cli(dev: Evaluation, workload: str, job: str) -> None:
    [container] = containers(dev.find("Deployment", workload))
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == ["python", "/opt/airflow-k8s/scripts/job-alive.py", job]
    # a start of up to 5 minutes, checked every 5 s
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


# --- hardening ---


def all_pod_specs(evaluation: Evaluation) -> list[tuple[str, dict[str, Any]]]:
    return [
        (obj["metadata"]["name"], obj["spec"]["template"]["spec"])
        for obj in evaluation.kubernetes_objects()
        if obj["kind"] in ("Deployment", "StatefulSet")
    ]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_pod_runs_non_root_with_runtime_default_seccomp(stack: str, dev: Evaluation, prod: Evaluation) -> None:
    for name, spec in all_pod_specs(dev if stack == "dev" else prod):
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        if name in (names.STATSD, names.PGBOUNCER):
            # the statsd_exporter's and PgBouncer's images' own user, nobody
            assert (context["runAsUser"], context["runAsGroup"]) == (65534, 65534), name
        elif name != names.POSTGRES and not name.startswith(names.REDIS):
            assert (context["runAsUser"], context["runAsGroup"]) == (50000, 0), name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_container_is_hardened_with_requests_and_limits(stack: str, dev: Evaluation, prod: Evaluation) -> None:
    for name, spec in all_pod_specs(dev if stack == "dev" else prod):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            context = container["securityContext"]
            where = (name, container["name"])
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["readOnlyRootFilesystem"] is True, where
            for part in ("requests", "limits"):
                assert set(container["resources"][part]) >= {"cpu", "memory"}, where


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_only_empty_dirs_and_data_claims_are_mounted_writable(stack: str, dev: Evaluation, prod: Evaluation) -> None:
    for obj in (dev if stack == "dev" else prod).kubernetes_objects():
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name, spec = obj["metadata"]["name"], obj["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        claims = {c["metadata"]["name"] for c in obj["spec"].get("volumeClaimTemplates", [])}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for mount in container.get("volumeMounts", []):
                if mount.get("readOnly"):
                    continue
                volume = volumes.get(mount["name"])
                # the database and broker write their data to their claims
                assert (volume is not None and "emptyDir" in volume) or mount["name"] in claims, (
                    name,
                    container["name"],
                    mount,
                )


def test_api_token_is_mounted_only_where_the_component_calls_the_api(dev: Evaluation) -> None:
    accounts = {
        obj["metadata"]["name"]: obj["automountServiceAccountToken"]
        for obj in dev.kubernetes_objects()
        if obj["kind"] == "ServiceAccount"
    }
    for name, spec in all_pod_specs(dev):
        assert spec["automountServiceAccountToken"] == accounts[spec["serviceAccountName"]], name
    assert pod_spec(dev.find("Deployment", names.DAG_PROCESSOR))["automountServiceAccountToken"] is False
    assert pod_spec(dev.find("Deployment", names.API_SERVER))["automountServiceAccountToken"] is False


def test_requests_and_limits_come_from_config() -> None:
    resources = {"requests": {"cpu": "700m", "memory": "900Mi"}, "limits": {"cpu": "3", "memory": "5Gi"}}
    evaluation = evaluate_ok(triggerer={"resources": resources})
    for container in containers(evaluation.find("Deployment", names.TRIGGERER), init=True):
        # the log-cleanup sidecar has its own small, fixed resources (it runs `find` once a minute)
        if container["name"] != "log-cleanup":
            assert container["resources"] == resources


# --- HA ---


def test_several_schedulers_get_a_disruption_budget_and_single_replicas_do_not(dev: Evaluation) -> None:
    assert "PodDisruptionBudget" not in {o["kind"] for o in dev.kubernetes_objects()}
    evaluation = evaluate_ok(scheduler={"replicas": 3})
    assert evaluation.find("Deployment", names.SCHEDULER)["spec"]["replicas"] == 3
    budget = evaluation.find("PodDisruptionBudget", names.SCHEDULER)
    assert budget["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": evaluation.find("Deployment", names.SCHEDULER)["spec"]["selector"]["matchLabels"]},
    }
    assert evaluation.names_of("PodDisruptionBudget") == {names.SCHEDULER}


def test_prod_has_a_disruption_budget_for_every_multi_replica_component(prod: Evaluation) -> None:
    for workload in AIRFLOW_WORKLOADS:
        deployment = prod.find("Deployment", workload)
        if deployment["spec"].get("replicas", 2) > 1:
            assert workload in prod.names_of("PodDisruptionBudget")


# --- outputs and login ---


def test_outputs_give_the_url_a_port_forward_command_and_the_secret_admin_login(dev: Evaluation) -> None:
    assert dev.outputs["apiServerUrl"] == "http://airflow-api-server.airflow-dev.svc.cluster.local:8080"
    assert dev.outputs["portForwardCommand"] == (
        "kubectl port-forward --namespace airflow-dev service/airflow-api-server 8080:8080"
    )
    # the URL to open is the one the port-forward serves
    assert dev.outputs["uiUrl"] == "http://localhost:8080"
    assert dev.outputs["adminUsername"] == "admin"
    assert isinstance(dev.outputs["adminPassword"], Secret)
    assert dev.outputs["adminPassword"].value == decoded_secret(dev, names.ADMIN_SECRET)[names.ADMIN_PASSWORD_KEY]


def test_admin_bootstrap_alone_reads_the_password_from_a_mounted_file(dev: Evaluation) -> None:
    deployment = dev.find("Deployment", names.API_SERVER)
    [bootstrap] = [c for c in pod_spec(deployment)["initContainers"] if c["name"] == "bootstrap-admin"]
    path = env_of(bootstrap)[E.ADMIN_PASSWORD_FILE]
    assert secret_file_source(deployment, bootstrap, path) == (names.ADMIN_SECRET, names.ADMIN_PASSWORD_KEY)
    for container in containers(deployment, init=True):
        if container["name"] != "bootstrap-admin":
            assert all("airflow-admin" not in m["name"] for m in container["volumeMounts"]), container["name"]


def test_task_logs_are_fetched_by_pod_ip_because_pod_names_do_not_resolve(dev: Evaluation, prod: Evaluation) -> None:
    for evaluation in (dev, prod):
        for obj in evaluation.kubernetes_objects():
            if obj["kind"] != "Deployment" or obj["metadata"]["name"] == names.PGBOUNCER:
                continue
            for container in containers(obj, init=True):
                if container["image"].startswith("apache/airflow"):
                    assert env_of(container)[E.HOSTNAME_CALLABLE] == "airflow.utils.net.get_host_ip_address"
