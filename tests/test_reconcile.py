"""Reconcile safety: routine changes touch exactly the objects they should, update them in place, and
never touch the database volume."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from components.airflow_pods import dag_sources
from components.config import names
from tests.support import evaluate_ok
from tools.mock_engine import Evaluation
from tools.reconcile import changed_paths, diff, provider_flags

AIRFLOW_DEV = {f"Deployment/{n}" for n in (names.API_SERVER, names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER)}
AIRFLOW_PROD = AIRFLOW_DEV | {f"Deployment/{names.worker_set('default')}", f"Deployment/{names.worker_set('heavy')}"}
CELERY_CAPACITY_RULES = {f"ConfigMap/{names.ALERT_RULES}", f"PrometheusRule/{names.ALERT_RULES}"}
NEW_SET = {"name": "reports", "queues": ["reports"], "concurrency": 4, "autoscaling": {"maxReplicas": 2}}

# (stack, change, objects changed in place, objects added, random resources regenerated)
ROUTINE: dict[str, tuple[str, dict[str, Any], set[str], set[str], set[str]]] = {
    "scheduler replicas": (
        "dev",
        {"scheduler": {"replicas": 2}},
        {"Deployment/airflow-scheduler"},
        {"PodDisruptionBudget/airflow-scheduler"},
        set(),
    ),
    "image tag (dev)": ("dev", {"image": {"repository": "apache/airflow", "tag": "3.3.3"}}, AIRFLOW_DEV, set(), set()),
    "image tag (prod)": (
        "prod",
        {"image": {"repository": "apache/airflow", "tag": "3.3.3"}},
        AIRFLOW_PROD | {f"ConfigMap/{names.POD_TEMPLATE_CONFIG_MAP}", f"CronJob/{names.DATABASE_CLEANUP}"},
        set(),
        set(),
    ),
    "triggerer resources": (
        "dev",
        {
            "triggerer": {
                "resources": {"requests": {"cpu": "300m", "memory": "600Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
            }
        },
        {"Deployment/airflow-triggerer"},
        set(),
        set(),
    ),
    # parallelism follows the workers' capacity, so the scheduler rolls too
    "KEDA maximum": (
        "prod",
        {"workers": "prod-default-max-20"},
        # the Celery backlog alert's threshold is the worker sets' capacity at KEDA's maximum
        {"ScaledObject/airflow-worker-default", "Deployment/airflow-scheduler", *CELERY_CAPACITY_RULES},
        set(),
        set(),
    ),
    "a new worker queue set": (
        "prod",
        {"workers": "prod-plus-reports"},
        {"Deployment/airflow-scheduler", *CELERY_CAPACITY_RULES},
        {
            "Deployment/airflow-worker-reports",
            "PodDisruptionBudget/airflow-worker-reports",
            "ScaledObject/airflow-worker-reports",
        },
        set(),
    ),
    "rotate the JWT secret": (
        "dev",
        {"rotation": {"jwtSecret": 1}},
        # only the pods that read the JWT secret roll (each pod's checksum covers the keys it reads)
        {f"Secret/{names.KEYS_SECRET}", f"Deployment/{names.API_SERVER}", f"Deployment/{names.SCHEDULER}"},
        set(),
        {"RandomBytes/jwt-secret"},
    ),
    "rotate the Redis password": (
        "prod",
        {"rotation": {"redisPassword": 1}},
        {f"Secret/{names.REDIS_SECRET}", f"StatefulSet/{names.REDIS}", f"Deployment/{names.SCHEDULER}"}
        | (AIRFLOW_PROD - AIRFLOW_DEV),
        set(),
        {"RandomPassword/redis-password"},
    ),
    "DAG content": ("dev", {"dags-change": True}, {f"ConfigMap/{names.DAGS_CONFIG_MAP}"} | AIRFLOW_DEV, set(), set()),
}


def prod_workers(change: str) -> list[dict[str, Any]]:
    import yaml

    workers = yaml.safe_load(Path("Pulumi.prod.yaml").read_text())["config"]["airflow-k8s:workers"]
    if change == "prod-default-max-20":
        workers[0]["autoscaling"]["maxReplicas"] = 20
    elif change == "prod-plus-reports":
        workers.append(NEW_SET)
    return workers


def evaluate_change(stack: str, change: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Evaluation:
    overrides = dict(change)
    if "workers" in overrides:
        overrides["workers"] = prod_workers(overrides["workers"])
    if overrides.pop("dags-change", False):
        copy = tmp_path / "dags"
        shutil.copytree(dag_sources.REPOSITORY_DAGS, copy, ignore=shutil.ignore_patterns("__pycache__"))
        target = copy / "kpo_print_then_sleep.py"
        target.write_text(target.read_text().replace('"sleep", "20"', '"sleep", "30"'))
        monkeypatch.setattr(dag_sources, "REPOSITORY_DAGS", copy)
    return evaluate_ok(stack, **overrides)


@pytest.mark.parametrize("case", list(ROUTINE))
def test_routine_change_updates_exactly_its_objects_in_place(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, change, in_place, added, regenerated = ROUTINE[case]
    before = evaluate_ok(stack)
    after = evaluate_change(stack, change, tmp_path, monkeypatch)
    changes = diff(before, after)
    kubernetes = {k: c for k, c in changes.items() if not k.startswith(("RandomBytes/", "RandomPassword/"))}
    # a new Airflow image gets its own pre-upgrade backup Job (the old image's finished Job goes)
    old_jobs = {f"Job/{name}" for name in before.names_of("Job")}
    new_jobs = {f"Job/{name}" for name in after.names_of("Job")}
    assert {k for k, c in kubernetes.items() if c.action == "changed"} == in_place
    assert {k for k, c in kubernetes.items() if c.action == "added"} == added | (new_jobs - old_jobs)
    assert {k for k, c in kubernetes.items() if c.action == "removed"} == old_jobs - new_jobs
    assert not [c for c in kubernetes.values() if c.action == "replaced"], kubernetes
    if "image" not in change:
        assert old_jobs == new_jobs
    # the only replacements are the random values regenerated on purpose
    assert {k for k, c in changes.items() if c.action == "replaced"} == regenerated
    assert f"StatefulSet/{names.POSTGRES}" not in changes


def test_workload_changes_touch_only_the_pod_template_and_replicas() -> None:
    changes = diff(evaluate_ok("prod"), evaluate_ok("prod", image={"repository": "apache/airflow", "tag": "3.3.3"}))
    for key in AIRFLOW_PROD:
        for path in changes[key].paths:
            assert path.startswith(("spec.template.", "metadata.labels.app.kubernetes.io/version")), (key, path)


def test_a_storage_size_change_is_ignored_instead_of_replacing_the_database() -> None:
    before = evaluate_ok("dev")
    after = evaluate_ok("dev", database={"storageSize": "20Gi"})
    statefulset = f"StatefulSet/{names.POSTGRES}"
    raw = changed_paths(
        before.registration_for("StatefulSet", names.POSTGRES).inputs,
        after.registration_for("StatefulSet", names.POSTGRES).inputs,
    )
    # the template did change (a replacement-forcing field) ...
    assert raw == ["spec.volumeClaimTemplates[0].spec.resources.requests.storage"]
    # ... but the resource ignores it, so `pulumi up` changes nothing
    assert statefulset not in diff(before, after)


def test_the_checker_flags_changes_that_force_replacement() -> None:
    before = evaluate_ok("dev")
    # moving the stack to another namespace replaces every namespaced object, the database included
    changes = diff(before, evaluate_ok("dev", namespace="airflow-other"))
    for key in ("Deployment/airflow-scheduler", f"StatefulSet/{names.POSTGRES}", f"Secret/{names.KEYS_SECRET}"):
        assert changes[key].action == "replaced", key
        assert "metadata.namespace" in changes[key].forcing
    # turning Redis persistence on adds a claim template: the broker StatefulSet is replaced
    celery = evaluate_ok("dev", executor="CeleryExecutor")
    persistent = evaluate_ok("dev", executor="CeleryExecutor", redis={"persistence": {"enabled": True}})
    broker = diff(celery, persistent)[f"StatefulSet/{names.REDIS}"]
    assert broker.action == "replaced" and broker.forcing == ("spec.volumeClaimTemplates",)


def test_config_map_and_secret_data_update_in_place_because_the_provider_says_so(dev: Evaluation) -> None:
    flags = provider_flags(dev)
    assert flags["enableConfigMapMutable"] and flags["enableSecretMutable"] and flags["enableServerSideApply"]


def test_changing_the_kube_context_replaces_the_provider_and_every_object() -> None:
    before = evaluate_ok("dev")
    changes = diff(before, evaluate_ok("dev", kubeContext="kind-elsewhere"))
    provider = changes.pop("kubernetes/kubernetes")
    assert (provider.action, provider.forcing) == ("replaced", ("context",))
    objects = {f"{o['kind']}/{o['metadata']['name']}" for o in before.kubernetes_objects()}
    assert set(changes) == objects
    assert all(change.action == "replaced" and "provider" in change.forcing for change in changes.values())
