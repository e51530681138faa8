"""The example DAGs and DAG delivery.

DAGs are loaded, and their pods built, inside a pod-like environment taken from the rendered
dag-processor: the DAG folder is the stack's ConfigMap laid out as kubelet lays it out, and every name a
DAG uses comes from the environment the stack injects.
"""

from __future__ import annotations

import collections
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.airflow_pods import dag_sources
from components.config import names
from components.kube import wiring
from tests.local_pod import LocalPod, copy_migrated_database, run_harness
from tests.postgres_server import PostgresServer
from tests.support import (
    Evaluation,
    containers,
    decoded_secret,
    env_of,
    evaluate_ok,
    pod_spec,
    reveal,
    secret_file_source,
)
from tools.mock_engine import evaluate_stack
from tools.validate import KUBERNETES_VERSIONS, validate

HARNESS = str(Path(__file__).resolve().parent / "dag_harness.py")
EXAMPLE_DAGS = {
    "kpo_print_then_sleep",
    "kpo_images_fan_out",
    "kpo_failure_demo",
    "kpo_service_dns",
    "kpo_secret_and_config",
    "kpo_xcom_to_python",
    "external_service_check",
}


TASK_POD_PLACEMENT: dict[str, Any] = {
    "nodeSelector": {"node-pool": "tasks"},
    "tolerations": [{"key": "tasks", "operator": "Exists", "effect": "NoSchedule"}],
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "priorityClassName": "airflow-tasks",
}
"""taskPods.placement: every pod task built with dags/pod_defaults.py lands there."""


@pytest.fixture(scope="module")
def stack() -> Evaluation:
    return evaluate_ok(
        "dev", database={"storageSize": "1Gi", "databaseName": "dags"}, taskPods={"placement": TASK_POD_PLACEMENT}
    )


@pytest.fixture(scope="module")
def dag_processor(stack: Evaluation, postgres: PostgresServer) -> Iterator[LocalPod]:
    pod = LocalPod(stack, "Deployment", names.DAG_PROCESSOR, postgres.port)
    yield pod
    pod.stop()


def harness(pod: LocalPod, *args: str, timeout: float = 300) -> Any:
    return run_harness(pod, "dag-processor", *args, timeout=timeout)


@pytest.fixture(scope="module")
def parsed(dag_processor: LocalPod) -> dict[str, Any]:
    """The DAG folder parsed once in the dag-processor's environment: what loaded, and every pod task's pod."""
    return harness(dag_processor, "load-and-pods")


@pytest.fixture(scope="module")
def loaded(parsed: dict[str, Any]) -> dict[str, Any]:
    return parsed["load"]


@pytest.fixture(scope="module")
def pods(parsed: dict[str, Any]) -> dict[str, Any]:
    return parsed["pods"]


def test_all_dags_load_without_import_errors_through_the_config_map(loaded: dict[str, Any]) -> None:
    assert loaded["import_errors"] == {}
    assert set(loaded["dag_ids"]) == EXAMPLE_DAGS
    # helpers ship with the DAGs but are not parsed as DAG files
    assert "stack_context.py" not in loaded["files"] and "pod_defaults.py" not in loaded["files"]


def test_every_pod_task_is_covered(pods: dict[str, Any]) -> None:
    assert set(pods) == {
        "kpo_print_then_sleep.print_value",
        "kpo_print_then_sleep.sleep",
        "kpo_images_fan_out.python_runtime",
        "kpo_images_fan_out.jvm_runtime",
        "kpo_images_fan_out.linux_runtime",
        "kpo_failure_demo.missing_command",
        "kpo_service_dns.call_api_server_health",
        "kpo_secret_and_config.use_secret_and_config",
        "kpo_xcom_to_python.produce",
        "external_service_check.connect_to_example_warehouse",
    }


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_task_pod_validates_strictly_as_a_pod(pods: dict[str, Any], version: str) -> None:
    for task, built in pods.items():
        pod = built["pod"]
        assert pod["kind"] == "Pod", task
        validate(pod, version)


def test_every_task_pod_runs_in_the_stack_namespace_under_the_task_identity(
    pods: dict[str, Any], stack: Evaluation
) -> None:
    for task, built in pods.items():
        pod = built["pod"]
        assert pod["metadata"]["namespace"] == "airflow-dev", task
        assert pod["spec"]["serviceAccountName"] == names.TASK_POD, task
        assert pod["spec"]["automountServiceAccountToken"] is False, task
    account = next(
        o
        for o in stack.kubernetes_objects()
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == names.TASK_POD
    )
    assert account["automountServiceAccountToken"] is False


def test_every_task_pod_is_hardened(pods: dict[str, Any]) -> None:
    for task, built in pods.items():
        spec = built["pod"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, task
        assert spec["securityContext"]["runAsUser"] == 65534, task
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, task
        for container in spec["containers"]:
            context = container["securityContext"]
            where = (task, container["name"])
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["readOnlyRootFilesystem"] is True, where


def test_every_task_pod_carries_the_stacks_task_pod_placement(pods: dict[str, Any]) -> None:
    for task, built in pods.items():
        spec = built["pod"]["spec"]
        assert {field: spec.get(field) for field in TASK_POD_PLACEMENT} == TASK_POD_PLACEMENT, task


def test_every_task_container_has_requests_and_limits(pods: dict[str, Any]) -> None:
    for task, built in pods.items():
        for container in built["pod"]["spec"]["containers"]:
            resources = container["resources"]
            assert set(resources["requests"]) >= {"cpu", "memory"}, (task, container["name"])
            assert set(resources["limits"]) >= {"cpu", "memory"}, (task, container["name"])


def test_every_task_image_is_pinned(pods: dict[str, Any]) -> None:
    for task, built in pods.items():
        for container in built["pod"]["spec"]["containers"]:
            image = container["image"]
            assert re.fullmatch(r"[a-z0-9./-]+:[0-9][A-Za-z0-9._-]*", image), (task, image)


def test_every_pod_task_says_what_happens_to_its_pod(pods: dict[str, Any]) -> None:
    for task, built in pods.items():
        expected = "delete_succeeded_pod" if task.startswith("kpo_failure_demo.") else "delete_pod"
        assert built["on_finish_action"] == expected, task


def test_the_xcom_sidecar_is_hardened_by_the_stacks_connection(pods: dict[str, Any]) -> None:
    pod = pods["kpo_xcom_to_python.produce"]["pod"]
    [sidecar] = [c for c in pod["spec"]["containers"] if c["name"] == "airflow-xcom-sidecar"]
    assert sidecar["image"] == "alpine:3.24.2"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["resources"]["limits"] == {"cpu": "100m", "memory": "32Mi"}


def test_secret_arrives_as_environment_and_as_files_and_settings_from_the_config_map(pods: dict[str, Any]) -> None:
    spec = pods["kpo_secret_and_config.use_secret_and_config"]["pod"]["spec"]
    [base] = spec["containers"]
    password = next(e for e in base["env"] if e["name"] == "EXAMPLE_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": names.EXAMPLE_SECRET, "key": "password"}
    secret_volumes = [v for v in spec["volumes"] if "secret" in v]
    assert [v["secret"]["secretName"] for v in secret_volumes] == [names.EXAMPLE_SECRET]
    mount = next(m for m in base["volumeMounts"] if m["name"] == secret_volumes[0]["name"])
    assert mount["mountPath"] == "/etc/example-credentials" and mount["readOnly"] is True
    assert base["envFrom"] == [{"configMapRef": {"name": names.EXAMPLE_CONFIG_MAP}}]


def test_service_example_uses_the_api_server_service_dns_name(pods: dict[str, Any]) -> None:
    [base] = pods["kpo_service_dns.call_api_server_health"]["pod"]["spec"]["containers"]
    url = next(e["value"] for e in base["env"] if e["name"] == "API_SERVER_URL")
    assert url == "http://airflow-api-server.airflow-dev.svc.cluster.local:8080"
    assert not re.search(r"\d+\.\d+\.\d+\.\d+", url)


def test_every_name_a_dag_uses_exists_among_the_stacks_objects(pods: dict[str, Any], stack: Evaluation) -> None:
    """The contract: namespaces, identities, Secrets, ConfigMaps and Services DAGs use are the stack's."""
    used: dict[str, set[str]] = {
        "Namespace": set(),
        "ServiceAccount": set(),
        "Secret": set(),
        "ConfigMap": set(),
        "Service": set(),
    }
    ports: dict[str, set[int]] = collections.defaultdict(set)
    for built in pods.values():
        pod = built["pod"]
        used["Namespace"].add(pod["metadata"]["namespace"])
        used["ServiceAccount"].add(pod["spec"]["serviceAccountName"])
        for volume in pod["spec"].get("volumes", []):
            if "secret" in volume:
                used["Secret"].add(volume["secret"]["secretName"])
            if "configMap" in volume:
                used["ConfigMap"].add(volume["configMap"]["name"])
        for container in pod["spec"]["containers"]:
            for entry in container.get("env", []):
                reference = entry.get("valueFrom", {})
                if "secretKeyRef" in reference:
                    used["Secret"].add(reference["secretKeyRef"]["name"])
                host = re.match(
                    r"(?:https?|tcp)://([a-z0-9.-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)", entry.get("value") or ""
                )
                if host:
                    used["Service"].add(host.group(1))
                    ports[host.group(1)].add(int(host.group(3)))
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    used["ConfigMap"].add(source["configMapRef"]["name"])
                if "secretRef" in source:
                    used["Secret"].add(source["secretRef"]["name"])
    for kind, wanted in used.items():
        assert wanted, kind
        assert wanted <= stack.names_of(kind), (kind, wanted - stack.names_of(kind))
    # and each Service serves the port the DAG connects to
    for service, wanted_ports in ports.items():
        served = {port["port"] for port in stack.find("Service", service)["spec"]["ports"]}
        assert wanted_ports <= served, (service, wanted_ports, served)
    # the example Secret holds the keys the DAG reads
    assert set(decoded_secret(stack, names.EXAMPLE_SECRET)) == {"username", "password"}


def test_dags_read_names_from_the_environment_the_stack_injects(stack: Evaluation) -> None:
    from dags import stack_context

    for workload in (names.DAG_PROCESSOR, names.SCHEDULER):
        environment = env_of(next(iter(containers(stack.find("Deployment", workload)))))
        for variable in stack_context.ENV_BY_FIELD.values():
            assert environment[variable], (workload, variable)
    template_source = (dag_sources.REPOSITORY_DAGS / "kpo_secret_and_config.py").read_text()
    assert names.EXAMPLE_SECRET not in template_source and "airflow-dev" not in template_source


# --- tasks that need no cluster, run for real ---


@pytest.fixture(scope="module")
def migrated(stack: Evaluation, postgres: PostgresServer) -> None:
    copy_migrated_database(stack, postgres)


def test_the_fan_out_start_task_runs_for_real(migrated: None, dag_processor: LocalPod) -> None:
    result = harness(dag_processor, "test", "kpo_images_fan_out", "(python|jvm|linux)_runtime")
    assert result["task_states"]["plan"] == "success"
    assert result["returns"]["plan"] == ["python", "jvm", "linux"]
    assert result["state"] == "success"


def test_the_python_task_consumes_the_pods_xcom_for_real(migrated: None, dag_processor: LocalPod) -> None:
    # The pod's own command runs here in place of the cluster; the XCom and the consumer are real.
    result = harness(dag_processor, "test", "kpo_xcom_to_python", "", "produce")
    assert result["task_states"] == {"produce": "success", "summarize": "success"}
    assert result["returns"]["produce"]["source"] == "pod"
    assert re.fullmatch(r"5 rows from the pod, total \d+\.\d\d", result["returns"]["summarize"])


# --- delivery modes ---


def test_config_map_delivery_ships_the_dags_folder_and_ignores_the_volume_internals(stack: Evaluation) -> None:
    data = reveal(stack.find("ConfigMap", names.DAGS_CONFIG_MAP)["data"])
    for path in dag_sources.REPOSITORY_DAGS.glob("*.py"):
        assert data[path.name] == path.read_text()
    ignore = data[".airflowignore"].splitlines()
    assert "stack_context.py" in ignore and dag_sources.CONFIG_MAP_IGNORE_LINE in ignore
    for workload in (names.API_SERVER, names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER):
        spec = pod_spec(stack.find("Deployment", workload))
        volume = next(v for v in spec["volumes"] if v["name"] == dag_sources.VOLUME)
        assert volume["configMap"]["name"] == names.DAGS_CONFIG_MAP
        assert {item["path"] for item in volume["configMap"]["items"]} == set(data)
        main = spec["containers"][0]
        assert {"name": dag_sources.VOLUME, "mountPath": "/opt/airflow/dags", "readOnly": True} in main["volumeMounts"]
        assert env_of(main)[names.AirflowEnv.DAGS_FOLDER] == "/opt/airflow/dags"


def test_subfolders_keep_their_layout_in_the_config_map(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "helpers.py").write_text("X = 1\n")
    (tmp_path / "flow.py").write_text("# airflow dag\n")
    bundle = dag_sources.collect(tmp_path)
    assert bundle.paths["common__helpers.py"] == "common/helpers.py"
    assert bundle.data["common__helpers.py"] == "X = 1\n"


def test_a_dags_folder_too_big_for_a_config_map_is_rejected_with_its_size_and_the_limit(tmp_path: Path) -> None:
    (tmp_path / "big_dag.py").write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(dag_sources.DagFolderError) as caught:
        dag_sources.collect(tmp_path)
    message = str(caught.value)
    assert "1048576 bytes (1 MiB)" in message
    assert re.search(r"holds 10\d{5} bytes \(1\.00 MiB\)", message)
    assert "git-sync" in message


def test_the_program_refuses_a_too_big_dags_folder_before_registering_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "big_dag.py").write_text("# " + "x" * (1024 * 1024) + "\n")
    monkeypatch.setattr(dag_sources, "REPOSITORY_DAGS", tmp_path)
    evaluation = evaluate_stack("dev")
    assert isinstance(evaluation.error, dag_sources.DagFolderError)
    assert evaluation.registrations == []


def test_changing_a_dag_rolls_the_pods_that_read_dags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: Evaluation
) -> None:
    copy = tmp_path / "dags"
    shutil.copytree(dag_sources.REPOSITORY_DAGS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "kpo_print_then_sleep.py").write_text((copy / "kpo_print_then_sleep.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(dag_sources, "REPOSITORY_DAGS", copy)
    changed = evaluate_ok("dev", database={"storageSize": "1Gi", "databaseName": "dags"})
    for workload in (names.API_SERVER, names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER):
        before = stack.find("Deployment", workload)["spec"]["template"]["metadata"]["annotations"][
            wiring.CONFIG_ANNOTATION
        ]
        after = changed.find("Deployment", workload)["spec"]["template"]["metadata"]["annotations"][
            wiring.CONFIG_ANNOTATION
        ]
        assert before != after, workload
    assert (
        stack.find("StatefulSet", names.POSTGRES)["spec"]["template"]
        == changed.find("StatefulSet", names.POSTGRES)["spec"]["template"]
    )


GIT = {
    "delivery": "git-sync",
    "gitSync": {
        "repo": "https://github.com/example/dags.git",
        "ref": "release",
        "period": "30s",
        "subPath": "airflow/dags",
    },
}


def git_sync_sidecar(spec: dict[str, Any]) -> dict[str, Any]:
    [sidecar] = [c for c in spec["initContainers"] if c["name"] == "git-sync"]
    return sidecar


def test_git_sync_delivery_checks_out_before_start_and_keeps_a_native_sidecar() -> None:
    evaluation = evaluate_ok(dags=GIT)
    assert names.DAGS_CONFIG_MAP not in evaluation.names_of("ConfigMap")
    spec = pod_spec(evaluation.find("Deployment", names.SCHEDULER))
    init = [c["name"] for c in spec["initContainers"]]
    assert init == ["git-sync-init", "migrate-database", "git-sync", "log-cleanup"]
    sidecar = git_sync_sidecar(spec)
    assert sidecar["restartPolicy"] == "Always"
    assert "restartPolicy" not in spec["initContainers"][0]
    environment = env_of(sidecar)
    assert environment["GITSYNC_REPO"] == "https://github.com/example/dags.git"
    assert environment["GITSYNC_REF"] == "release"
    assert environment["GITSYNC_PERIOD"] == "30s"
    assert env_of(spec["initContainers"][0])["GITSYNC_ONE_TIME"] == "true"
    assert sidecar["image"] == "registry.k8s.io/git-sync/git-sync:v4.7.0"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["runAsUser"] == 65533
    assert env_of(spec["containers"][0])[names.AirflowEnv.DAGS_FOLDER] == "/git/repo/airflow/dags"
    assert {"name": dag_sources.VOLUME, "mountPath": "/git", "readOnly": True} in spec["containers"][0]["volumeMounts"]


def test_git_sync_https_credentials_come_from_the_named_secret() -> None:
    evaluation = evaluate_ok(dags={**GIT, "gitSync": {**GIT["gitSync"], "credentialsSecret": "dags-repo-token"}})
    deployment = evaluation.find("Deployment", names.DAG_PROCESSOR)
    sidecar = git_sync_sidecar(pod_spec(deployment))
    environment = env_of(sidecar)
    assert environment["GITSYNC_USERNAME"] == {"secretKeyRef": {"name": "dags-repo-token", "key": "GITSYNC_USERNAME"}}
    # the token is a mounted file, not an environment variable
    assert "GITSYNC_PASSWORD" not in environment
    path = environment["GITSYNC_PASSWORD_FILE"]
    assert secret_file_source(deployment, sidecar, path) == ("dags-repo-token", "GITSYNC_PASSWORD")


def test_git_sync_ssh_key_is_mounted_from_the_named_secret_with_known_hosts() -> None:
    evaluation = evaluate_ok(
        dags={
            "delivery": "git-sync",
            "gitSync": {"repo": "git@github.com:example/dags.git", "credentialsSecret": "dags-deploy-key"},
        }
    )
    spec = pod_spec(evaluation.find("Deployment", names.DAG_PROCESSOR))
    sidecar = git_sync_sidecar(spec)
    environment = env_of(sidecar)
    assert environment["GITSYNC_SSH_KEY_FILE"] == "/etc/git-secret/ssh"
    assert environment["GITSYNC_SSH_KNOWN_HOSTS"] == "true"
    volume = next(v for v in spec["volumes"] if v["name"] == dag_sources.GIT_SECRET_VOLUME)
    assert volume["secret"]["secretName"] == "dags-deploy-key"
    assert "GITSYNC_PASSWORD" not in environment


def test_git_sync_needs_a_repository() -> None:
    evaluation = evaluate_stack("dev", {"dags": {"delivery": "git-sync"}})
    assert "airflow-k8s:dags.gitSync.repo" in str(evaluation.error)
    assert evaluation.registrations == []


def test_image_delivery_mounts_nothing_and_uses_the_images_dags_folder() -> None:
    evaluation = evaluate_ok(
        dags={"delivery": "image"}, image={"repository": "registry.example.com/airflow-dags", "tag": "2026.11.21"}
    )
    assert names.DAGS_CONFIG_MAP not in evaluation.names_of("ConfigMap")
    spec = pod_spec(evaluation.find("Deployment", names.SCHEDULER))
    assert dag_sources.VOLUME not in {v["name"] for v in spec["volumes"]}
    assert spec["containers"][0]["image"] == "registry.example.com/airflow-dags:2026.11.21"
    assert env_of(spec["containers"][0])[names.AirflowEnv.DAGS_FOLDER] == "/opt/airflow/dags"
