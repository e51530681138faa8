"""Security posture, offline: checkov against the allowlist, NetworkPolicy paths, no secret leaks."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest

from components.config import names
from tests.netpol import Endpoint, allowed
from tests.variants import VARIANTS, evaluate_variant
from tools.mock_engine import Evaluation, Secret, reveal, walk
from tools.render import render
from tools.security_scan import Finding, load_allowlist, scan, stale, unexpected

CHECKOV_VARIANTS = [
    "dev",
    "prod",
    "kubernetes-executor",
    "celery-keda",
    "external-database-connections-git-ssh",
    "http-route-sso-subpath",
    "podmonitor-logs-volume-cleanup",
    "placement-hpa",
]


@pytest.fixture(scope="module")
def checkov() -> tuple[list[Finding], int]:
    return scan({f"{name}.yaml": render(evaluate_variant(name)) for name in CHECKOV_VARIANTS})


def test_checkov_fails_nothing_outside_the_allowlist(checkov: tuple[list[Finding], int]) -> None:
    findings, passed = checkov
    assert passed > 1000
    bad = unexpected(findings, load_allowlist())
    assert not bad, "\n".join(f"{f.check} {f.resource} ({f.file}): {f.name}" for f in bad)


def test_every_allowlist_entry_still_matches_a_finding(checkov: tuple[list[Finding], int]) -> None:
    findings, _ = checkov
    assert stale(findings, load_allowlist()) == []


def test_every_allowlist_entry_has_a_one_line_reason() -> None:
    allowances = load_allowlist()
    assert allowances
    for allowance in allowances:
        assert allowance.check.startswith("CKV_K8S_")
        assert 20 < len(allowance.reason) < 200 and "\n" not in allowance.reason


def test_secrets_are_never_in_the_environment_of_stack_pods(checkov: tuple[list[Finding], int]) -> None:
    findings, _ = checkov
    # checkov's "prefer secrets as files" only fires for the user's connections (envFrom their Secret)
    assert {f.resource.split(".")[-1] for f in findings if f.check == "CKV_K8S_35"} <= {
        names.API_SERVER,
        names.SCHEDULER,
        names.DAG_PROCESSOR,
        names.TRIGGERER,
    }
    assert not [f for f in findings if f.check == "CKV_K8S_35" and not f.file.startswith("external-database")]


# --- NetworkPolicies ---


def policies(evaluation: Evaluation) -> list[dict[str, Any]]:
    return [reveal(o) for o in evaluation.kubernetes_objects() if o["kind"] == "NetworkPolicy"]


def pod(evaluation: Evaluation, component: str, **extra: str) -> Endpoint:
    namespace = evaluation.outputs["namespace"]
    return Endpoint(namespace, {**names.labels(component, namespace), **extra})


def kpo(evaluation: Evaluation) -> Endpoint:
    return Endpoint(evaluation.outputs["namespace"], {"kubernetes_pod_operator": "True", "dag_id": "x"})


INTERNET = Endpoint(None, ip="93.184.216.34")
PRIVATE_HOST = Endpoint(None, ip="10.20.30.40")
C = names.Component


@pytest.fixture(scope="module")
def dev() -> Evaluation:
    return evaluate_variant("dev")


@pytest.fixture(scope="module")
def prod() -> Evaluation:
    return evaluate_variant("prod")


def test_everything_is_denied_by_default_in_both_directions(dev: Evaluation) -> None:
    [deny] = [p for p in policies(dev) if p["metadata"]["name"] == "airflow-default-deny"]
    # no empty rule lists: the API server drops them, and the object would change on every apply
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    stranger = Endpoint("airflow-dev", {"app": "something-else"})
    assert not allowed(policies(dev), stranger, INTERNET, 443)
    assert not allowed(policies(dev), kpo(dev), stranger, 80)


def test_every_policy_states_the_paths_it_allows(prod: Evaluation) -> None:
    for policy in policies(prod):
        assert policy["metadata"]["annotations"]["airflow-k8s/allows"], policy["metadata"]["name"]
    [kpo_policy] = [p for p in policies(prod) if p["metadata"]["name"] == "airflow-pod-operator-tasks"]
    assert "kpo_service_dns" in kpo_policy["metadata"]["annotations"]["airflow-k8s/allows"]


@pytest.mark.parametrize(
    ("source", "destination", "port", "expected"),
    [
        # the metadata database: Airflow's servers only
        (C.SCHEDULER, C.POSTGRES, 5432, True),
        (C.API_SERVER, C.POSTGRES, 5432, True),
        (C.DAG_PROCESSOR, C.POSTGRES, 5432, True),
        (C.TRIGGERER, C.POSTGRES, 5432, True),
        ("kpo", C.POSTGRES, 5432, False),
        (C.SCHEDULER, C.POSTGRES, 22, False),
        # the execution API and the UI
        (C.SCHEDULER, C.API_SERVER, 8080, True),
        ("kpo", C.API_SERVER, 8080, True),
        ("kpo", C.SCHEDULER, 8974, False),
        # task logs served by the scheduler (LocalExecutor) and the triggerer
        (C.API_SERVER, C.SCHEDULER, 8793, True),
        (C.API_SERVER, C.TRIGGERER, 8794, True),
        (C.DAG_PROCESSOR, C.SCHEDULER, 8793, False),
        # task egress: the internet yes, private ranges no
        ("kpo", "internet", 443, True),
        ("kpo", "private", 443, False),
        (C.SCHEDULER, "internet", 443, True),  # LocalExecutor tasks run in the scheduler
        (C.DAG_PROCESSOR, "internet", 443, False),
        (C.API_SERVER, "internet", 443, False),
        (C.POSTGRES, "internet", 443, False),
    ],
)
def test_dev_paths(dev: Evaluation, source: str, destination: str, port: int, expected: bool) -> None:
    endpoints = {"kpo": kpo(dev), "internet": INTERNET, "private": PRIVATE_HOST}
    src = endpoints.get(source) or pod(dev, source)
    dst = endpoints.get(destination) or pod(dev, destination)
    assert allowed(policies(dev), src, dst, port) == expected


def test_every_pod_may_resolve_names(dev: Evaluation) -> None:
    dns = Endpoint(None, ip="10.96.0.10")
    for component in (C.POSTGRES, C.API_SERVER, C.SCHEDULER):
        assert allowed(policies(dev), pod(dev, component), dns, 53, "UDP")
    assert allowed(policies(dev), kpo(dev), dns, 53, "TCP")


@pytest.mark.parametrize(
    ("source", "destination", "port", "expected"),
    [
        (C.WORKER, C.REDIS, 6379, True),
        (C.SCHEDULER, C.REDIS, 6379, True),
        (C.API_SERVER, C.REDIS, 6379, False),
        (C.DAG_PROCESSOR, C.REDIS, 6379, False),
        ("kpo", C.REDIS, 6379, False),
        # workers run task code: no path to the database (results go to Redis, tasks use the execution API)
        (C.WORKER, C.POSTGRES, 5432, False),
        (C.WORKER, C.API_SERVER, 8080, True),
        (C.KUBERNETES_TASK, C.API_SERVER, 8080, True),
        (C.KUBERNETES_TASK, C.POSTGRES, 5432, False),
        (C.API_SERVER, C.WORKER, 8793, True),
        (C.WORKER, "internet", 443, True),
        # git-sync runs in every Airflow pod of prod, so those pods may reach the Git server's ports
        (C.SCHEDULER, "internet", 443, True),
        (C.SCHEDULER, "internet", 80, False),
        (C.API_SERVER, "internet", 8443, False),
        (C.WORKER, "kube-api", 6443, True),
        (C.DAG_PROCESSOR, "kube-api", 6443, False),
        # PgBouncer (on in prod): Airflow's servers reach the database through it, not directly...
        (C.API_SERVER, C.PGBOUNCER, 6432, True),
        (C.SCHEDULER, C.PGBOUNCER, 6432, True),
        (C.DAG_PROCESSOR, C.PGBOUNCER, 6432, True),
        (C.TRIGGERER, C.PGBOUNCER, 6432, True),
        (C.DATABASE_CLEANUP, C.PGBOUNCER, 6432, True),
        (C.PGBOUNCER, C.POSTGRES, 5432, True),
        (C.API_SERVER, C.POSTGRES, 5432, False),
        (C.DAG_PROCESSOR, C.POSTGRES, 5432, False),
        (C.TRIGGERER, C.POSTGRES, 5432, False),
        (C.DATABASE_CLEANUP, C.POSTGRES, 5432, False),
        # ...but the scheduler's migration step connects directly (a policy cannot tell it from the scheduler)
        (C.SCHEDULER, C.POSTGRES, 5432, True),
        # task code reaches neither
        (C.WORKER, C.PGBOUNCER, 6432, False),
        (C.KUBERNETES_TASK, C.PGBOUNCER, 6432, False),
        ("kpo", C.PGBOUNCER, 6432, False),
        (C.PGBOUNCER, "internet", 443, False),
        (C.PGBOUNCER, C.API_SERVER, 8080, False),
    ],
)
def test_prod_paths(prod: Evaluation, source: str, destination: str, port: int, expected: bool) -> None:
    endpoints = {"kpo": kpo(prod), "internet": INTERNET, "kube-api": Endpoint(None, ip="172.20.0.1")}
    src = endpoints.get(source) or pod(
        prod, source, **({names.WORKER_SET_LABEL: "heavy"} if source == C.WORKER else {})
    )
    dst = endpoints.get(destination) or pod(
        prod, destination, **({names.WORKER_SET_LABEL: "default"} if destination == C.WORKER else {})
    )
    assert allowed(policies(prod), src, dst, port) == expected


def test_without_tasks_or_git_sync_the_control_plane_has_no_way_out() -> None:
    evaluation = evaluate_variant("kubernetes-executor")
    for component in (C.SCHEDULER, C.API_SERVER, C.DAG_PROCESSOR):
        assert not allowed(policies(evaluation), pod(evaluation, component), INTERNET, 443), component
    # launching pods still reaches the API server's (private) endpoint
    assert allowed(policies(evaluation), pod(evaluation, C.SCHEDULER), Endpoint(None, ip="172.18.0.2"), 6443)


def test_users_reach_the_api_server_only_from_the_configured_sources(prod: Evaluation) -> None:
    ingress = Endpoint("ingress-nginx", {"app": "controller"})
    elsewhere = Endpoint("default", {"app": "curious"})
    assert allowed(policies(prod), ingress, pod(prod, C.API_SERVER), 8080)
    assert not allowed(policies(prod), elsewhere, pod(prod, C.API_SERVER), 8080)
    assert not allowed(policies(prod), ingress, pod(prod, C.SCHEDULER), 8974)


def test_the_keda_operator_reaches_postgres_and_no_other_namespace_does() -> None:
    evaluation = evaluate_variant("celery-keda")
    operator = Endpoint("keda", {"app": "keda-operator"})
    assert allowed(policies(evaluation), operator, pod(evaluation, C.POSTGRES), 5432)
    assert not allowed(policies(evaluation), Endpoint("monitoring", {}), pod(evaluation, C.POSTGRES), 5432)
    assert not allowed(policies(evaluate_variant("dev")), operator, pod(evaluate_variant("dev"), C.POSTGRES), 5432)


def test_network_policies_can_be_turned_off() -> None:
    assert not policies(evaluate_variant("git-https-no-network-policies"))


# --- no secret leaks ---


def secret_values(evaluation: Evaluation, variant: str) -> set[str]:
    """Every generated or configured secret, in the forms it could leak in (plain, base64, URL-quoted)."""
    values: set[str] = set()
    for registration in evaluation.registrations:
        if registration.type.startswith("random:"):
            for key in ("result", "base64", "hex"):
                if key in registration.outputs:
                    values.add(str(registration.outputs[key]))
    _, _, secret_config = VARIANTS[variant]
    for key, value in secret_config.items():
        if key == "auth":  # an object holding one secret
            values.add(value["oidc"]["clientSecret"])
            continue
        texts = list(value.values()) if isinstance(value, dict) else [value]
        for text in texts:
            values.add(text)
            values.add(text.split("://", 1)[1].split("@")[0].split(":")[1])  # the password alone
    forms = set(values)
    for value in values:
        forms |= {
            base64.b64encode(value.encode()).decode(),
            quote(value, safe=""),
            value.replace("+", "-").replace("/", "_"),
        }
    return {form for form in forms if len(form) >= 8}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_object_but_a_secret_and_no_plain_output_contains_a_secret_value(variant: str) -> None:
    evaluation = evaluate_variant(variant)
    values = secret_values(evaluation, variant)
    assert len(values) >= 10
    for obj in evaluation.kubernetes_objects():
        if obj["kind"] == "Secret":
            assert isinstance(obj["data"], Secret)
            continue
        text = json.dumps(reveal(obj))
        leaked = [v for v in values if v in text]
        assert not leaked, (obj["kind"], obj["metadata"]["name"])
    for key, output in evaluation.outputs.items():
        if not isinstance(output, Secret):
            assert not [v for v in values if v in json.dumps(output)], key
    # and the render, Secrets included, shows none of them
    rendered = render(evaluation)
    assert not [v for v in values if v in rendered]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_input_carrying_a_secret_value_is_marked_secret(variant: str) -> None:
    evaluation = evaluate_variant(variant)
    values = secret_values(evaluation, variant)
    for registration in evaluation.registrations:
        if registration.type.startswith("random:"):
            continue
        for path, leaf, is_secret in walk(registration.inputs):
            if isinstance(leaf, str) and any(value in leaf for value in values):
                assert is_secret, (registration.name, path)
