"""The in-cluster Postgres: headless Service, one-replica StatefulSet, kept volume, hardened pod."""

from __future__ import annotations

import re

from components.config import names
from tests.support import Evaluation, containers, env_of, evaluate_ok, pod_spec, secret_file_source


def test_headless_service_has_a_stable_name_and_the_postgres_port(dev: Evaluation) -> None:
    service = dev.find("Service", names.POSTGRES)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [{"name": "postgres", "port": 5432, "protocol": "TCP", "targetPort": "postgres"}]
    statefulset = dev.find("StatefulSet", names.POSTGRES)
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_statefulset_is_one_replica_governed_by_the_headless_service(dev: Evaluation) -> None:
    spec = dev.find("StatefulSet", names.POSTGRES)["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == names.POSTGRES


def test_image_is_the_official_postgres_pinned_to_major_minor(dev: Evaluation) -> None:
    [container] = containers(dev.find("StatefulSet", names.POSTGRES))
    assert re.fullmatch(r"postgres:\d+\.\d+", container["image"])


def test_volume_claim_template_takes_size_and_class_from_config(dev: Evaluation, prod: Evaluation) -> None:
    [claim] = dev.find("StatefulSet", names.POSTGRES)["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]
    [prod_claim] = prod.find("StatefulSet", names.POSTGRES)["spec"]["volumeClaimTemplates"]
    assert prod_claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert prod_claim["spec"]["storageClassName"] == "standard-rwo"
    [container] = containers(dev.find("StatefulSet", names.POSTGRES))
    data_mount = next(m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert env_of(container)["PGDATA"].startswith(data_mount["mountPath"] + "/")


def test_volume_claim_is_retained_when_the_statefulset_is_deleted_or_scaled(dev: Evaluation) -> None:
    spec = dev.find("StatefulSet", names.POSTGRES)["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_claim_template_changes_never_replace_the_statefulset(dev: Evaluation, prod: Evaluation) -> None:
    for evaluation in (dev, prod):
        registration = evaluation.registration_for("StatefulSet", names.POSTGRES)
        assert registration.ignore_changes == ["spec.volumeClaimTemplates"]


def test_prod_protects_the_statefulset(dev: Evaluation, prod: Evaluation) -> None:
    assert prod.registration_for("StatefulSet", names.POSTGRES).protect
    assert not dev.registration_for("StatefulSet", names.POSTGRES).protect


def test_probes_use_pg_isready(dev: Evaluation) -> None:
    [container] = containers(dev.find("StatefulSet", names.POSTGRES))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "pg_isready"
        assert "--username" in command and "airflow" in command


def test_password_comes_from_the_secret_as_a_mounted_file(dev: Evaluation) -> None:
    statefulset = dev.find("StatefulSet", names.POSTGRES)
    [container] = containers(statefulset)
    environment = env_of(container)
    assert "POSTGRES_PASSWORD" not in environment
    path = environment["POSTGRES_PASSWORD_FILE"]
    assert secret_file_source(statefulset, container, path) == (names.POSTGRES_SECRET, names.POSTGRES_PASSWORD_KEY)
    assert environment["POSTGRES_USER"] == "airflow"
    assert names.POSTGRES_SECRET in dev.names_of("Secret")


def test_runs_as_the_images_postgres_user_with_a_hardened_context(dev: Evaluation) -> None:
    spec = pod_spec(dev.find("StatefulSet", names.POSTGRES))
    assert spec["securityContext"]["runAsUser"] == 999
    assert spec["securityContext"]["fsGroup"] == 999
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == names.POSTGRES
    [container] = containers(dev.find("StatefulSet", names.POSTGRES))
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    writable = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/run/postgresql", "/tmp"} <= writable


def test_requests_and_limits_come_from_config() -> None:
    resources = {"requests": {"cpu": "300m", "memory": "384Mi"}, "limits": {"cpu": "3", "memory": "3Gi"}}
    evaluation = evaluate_ok(database={"storageSize": "1Gi", "resources": resources})
    [container] = containers(evaluation.find("StatefulSet", names.POSTGRES))
    assert container["resources"] == resources


def test_database_dns_name_matches_the_service(dev: Evaluation) -> None:
    assert dev.outputs["databaseHost"] == names.dns_name(names.POSTGRES, "airflow-dev")
    assert dev.outputs["databaseHost"] == "airflow-postgres.airflow-dev.svc.cluster.local"
