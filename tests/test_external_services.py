"""The way out: stable names for services outside the cluster, and egress to exactly them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.config import names
from components.config.loading import ConfigError, load_stack_config
from dags import stack_context
from tests.netpol import Endpoint, allowed
from tests.support import evaluate_ok
from tests.test_security import kpo, pod, policies
from tools.mock_engine import Evaluation, reveal
from tools.validate import validate

C = names.Component
SERVICES: list[dict[str, Any]] = [
    {"name": "warehouse", "addresses": ["10.40.0.15", "10.40.0.16", "fd00::15"], "ports": [5432]},
    {"name": "lake", "addresses": ["lake.corp.example.com"], "ports": [443], "egressCidrs": ["10.8.0.0/16"]},
    {"name": "saas", "addresses": ["api.vendor.example.com"], "ports": [443]},
]


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    return evaluate_ok("dev", externalServices=SERVICES)


@pytest.fixture(scope="module")
def celery() -> Evaluation:
    return evaluate_ok("dev", executor="CeleryExecutor,KubernetesExecutor", externalServices=SERVICES)


def test_ip_addresses_get_a_selectorless_service_and_an_endpoint_slice_per_family(evaluation: Evaluation) -> None:
    service = reveal(evaluation.find("Service", "warehouse"))
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"] == [{"name": "tcp-5432", "port": 5432, "protocol": "TCP", "targetPort": 5432}]
    ipv4 = reveal(evaluation.find("EndpointSlice", "warehouse-ipv4"))
    assert ipv4["addressType"] == "IPv4"
    assert [e["addresses"] for e in ipv4["endpoints"]] == [["10.40.0.15"], ["10.40.0.16"]]
    assert ipv4["ports"] == [{"name": "tcp-5432", "port": 5432, "protocol": "TCP"}]
    labels = ipv4["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == "warehouse"
    # not a controller's value: no EndpointSlice controller adopts (and rewrites) the slice
    assert labels["endpointslice.kubernetes.io/managed-by"] == "airflow-k8s"
    ipv6 = reveal(evaluation.find("EndpointSlice", "warehouse-ipv6"))
    assert ipv6["addressType"] == "IPv6" and ipv6["endpoints"] == [
        {"addresses": ["fd00::15"], "conditions": {"ready": True}}
    ]


def test_a_dns_name_gets_an_external_name_service(evaluation: Evaluation) -> None:
    service = reveal(evaluation.find("Service", "lake"))
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == "lake.corp.example.com"
    assert not [s for s in evaluation.names_of("EndpointSlice") if s.startswith("lake")]


def test_the_objects_validate_strictly(evaluation: Evaluation) -> None:
    for obj in evaluation.kubernetes_objects():
        if obj["metadata"]["labels"]["app.kubernetes.io/component"] == C.EXTERNAL_SERVICE:
            validate(reveal(obj))


TASK_CODE = {
    "dev": [C.SCHEDULER, C.TRIGGERER],  # LocalExecutor: tasks run in the scheduler
    "celery": [C.WORKER, C.KUBERNETES_TASK, C.TRIGGERER],
}


@pytest.mark.parametrize("stack", ["dev", "celery"])
def test_task_pods_workers_and_triggerers_reach_exactly_the_addresses_and_ports(
    evaluation: Evaluation, celery: Evaluation, stack: str
) -> None:
    chosen = evaluation if stack == "dev" else celery
    rules = policies(chosen)
    sources = [pod(chosen, component) for component in TASK_CODE[stack]] + [kpo(chosen)]
    for source in sources:
        assert allowed(rules, source, Endpoint(None, ip="10.40.0.15"), 5432), source
        assert allowed(rules, source, Endpoint(None, ip="fd00::15"), 5432), source
        assert allowed(rules, source, Endpoint(None, ip="10.8.3.4"), 443), source
        # nothing more of the private ranges: another port, a neighbouring address
        assert not allowed(rules, source, Endpoint(None, ip="10.40.0.15"), 22), source
        assert not allowed(rules, source, Endpoint(None, ip="10.40.0.17"), 5432), source
        assert not allowed(rules, source, Endpoint(None, ip="10.8.3.4"), 80), source
    for component in (C.API_SERVER, C.DAG_PROCESSOR):
        assert not allowed(rules, pod(chosen, component), Endpoint(None, ip="10.40.0.15"), 5432), component


def test_without_external_services_the_private_address_is_closed() -> None:
    evaluation = evaluate_ok("dev", externalServices=[])
    assert not allowed(policies(evaluation), kpo(evaluation), Endpoint(None, ip="10.40.0.15"), 5432)


def test_the_policy_says_which_service_each_path_is_for(evaluation: Evaluation) -> None:
    [scheduler] = [p for p in policies(evaluation) if p["metadata"]["name"] == "airflow-scheduler"]
    assert (
        "external service warehouse (10.40.0.15, 10.40.0.16, fd00::15) on 5432"
        in (scheduler["metadata"]["annotations"]["airflow-k8s/allows"])
    )


def test_the_example_dag_reaches_the_dev_stacks_external_service_by_name() -> None:
    evaluation = evaluate_ok("dev")
    service = reveal(evaluation.find("Service", stack_context.EXAMPLE_EXTERNAL_SERVICE))
    assert stack_context.EXAMPLE_EXTERNAL_SERVICE_PORT in [p["port"] for p in service["spec"]["ports"]]
    [address] = reveal(evaluation.find("EndpointSlice", f"{stack_context.EXAMPLE_EXTERNAL_SERVICE}-ipv4"))["endpoints"]
    target = Endpoint(None, ip=address["addresses"][0])
    assert allowed(policies(evaluation), kpo(evaluation), target, stack_context.EXAMPLE_EXTERNAL_SERVICE_PORT)


# --- bad entries, before anything registers --------------------------------------------------------------


def problems(services: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_stack_config({"airflow-k8s:externalServices": json.dumps(services)}, set())
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"addresses": ["10.0.0.300"]},
            'externalServices[0].addresses[0] = "10.0.0.300": must be an IP address or a DNS name',
        ),
        (
            {"addresses": ["https://db.example.com"]},
            'externalServices[0].addresses[0] = "https://db.example.com": must be an IP address or a DNS name',
        ),
        (
            {"addresses": ["127.0.0.1"]},
            'externalServices[0].addresses[0] = "127.0.0.1": loopback, link-local, unspecified and multicast',
        ),
        (
            {"addresses": ["10.0.0.1", "db.example.com"]},
            'externalServices[0].addresses[1] = "db.example.com": a DNS name must be the only address',
        ),
        ({"addresses": []}, "externalServices[0].addresses = []: must list IP addresses or one DNS name"),
        ({"ports": [0, 70000]}, "externalServices[0].ports = [0, 70000]: ports 0, 70000 are outside 1-65535"),
        ({"ports": []}, "externalServices[0].ports = []: must list at least one port"),
        ({"name": "Warehouse"}, 'externalServices[0].name = "Warehouse": must be a DNS-1123 label'),
        ({"name": names.API_SERVER}, f'externalServices[0].name = "{names.API_SERVER}": already taken by a Service'),
        ({"egressCidrs": ["10.0.0.0/8"]}, 'externalServices[0].egressCidrs = ["10.0.0.0/8"]: only for a DNS name'),
    ],
)
def test_a_bad_entry_is_rejected_with_its_key_and_value(entry: dict[str, Any], expected: str) -> None:
    service = {"name": "warehouse", "addresses": ["10.0.0.1"], "ports": [5432], **entry}
    [found] = problems([service])
    assert found.startswith(f"airflow-k8s:{expected}"), found


def test_two_entries_may_not_share_a_name() -> None:
    entry = {"name": "warehouse", "addresses": ["10.0.0.1"], "ports": [5432]}
    [found] = problems([entry, entry])
    assert found == 'airflow-k8s:externalServices[1].name = "warehouse": already taken by externalServices[0]'
