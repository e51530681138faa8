"""The way in: Ingress and HTTPRoute from apiServer.baseUrl, TLS, the public URL everywhere, the policy."""

from __future__ import annotations

from typing import Any

import pytest

from components.config import names
from components.config.loading import ConfigError, load_stack_config
from tests.netpol import Endpoint, allowed
from tests.support import containers, env_of, evaluate_ok
from tests.test_security import pod, policies
from tools.mock_engine import Evaluation, reveal
from tools.validate import validate

C = names.Component
PUBLIC = "https://airflow.example.com/airflow"
INGRESS: dict[str, Any] = {
    "baseUrl": PUBLIC,
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "controllerNamespace": "ingress-nginx",
        "tls": {"clusterIssuer": "letsencrypt"},
    },
}
ROUTE: dict[str, Any] = {
    "baseUrl": PUBLIC,
    "httpRoute": {
        "enabled": True,
        "gatewayNamespace": "envoy-gateway-system",
        "parentRefs": [{"name": "shared", "namespace": "gateway-system", "sectionName": "https"}],
    },
}


def problems(**values: Any) -> list[str]:
    raw = {
        f"airflow-k8s:{key}": value if isinstance(value, str) else __import__("json").dumps(value)
        for key, value in values.items()
    }
    with pytest.raises(ConfigError) as caught:
        load_stack_config(raw, set())
    return [str(problem) for problem in caught.value.problems]


@pytest.fixture(scope="module")
def ingress() -> Evaluation:
    return evaluate_ok("dev", apiServer=INGRESS)


@pytest.fixture(scope="module")
def route() -> Evaluation:
    return evaluate_ok("dev", apiServer=ROUTE)


# --- the objects ---------------------------------------------------------------------------------------


def test_the_ingress_routes_the_public_host_and_path_to_the_api_server_service(ingress: Evaluation) -> None:
    manifest = reveal(ingress.find("Ingress", names.API_SERVER))
    spec = manifest["spec"]
    assert spec["ingressClassName"] == "nginx"
    [rule] = spec["rules"]
    assert rule["host"] == "airflow.example.com"
    [path] = rule["http"]["paths"]
    # the prefix is forwarded unchanged: Airflow serves under [api] base_url's path itself
    assert path == {
        "path": "/airflow",
        "pathType": "Prefix",
        "backend": {"service": {"name": names.API_SERVER, "port": {"name": "http"}}},
    }
    assert manifest["metadata"]["labels"]["app.kubernetes.io/component"] == C.EXPOSURE


def test_cert_manager_issues_the_ingress_certificate_into_the_stacks_secret(ingress: Evaluation) -> None:
    manifest = reveal(ingress.find("Ingress", names.API_SERVER))
    assert manifest["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert manifest["spec"]["tls"] == [{"hosts": ["airflow.example.com"], "secretName": names.API_SERVER_TLS_SECRET}]


def test_an_existing_tls_secret_and_extra_hosts_and_annotations() -> None:
    evaluation = evaluate_ok(
        "dev",
        apiServer={
            "baseUrl": "https://airflow.example.com",
            "ingress": {
                "enabled": True,
                "controllerNamespace": "ingress-nginx",
                "extraHosts": ["airflow.internal.example.com"],
                "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "16m"},
                "tls": {"secretName": "wildcard-tls"},
            },
        },
    )
    manifest = reveal(evaluation.find("Ingress", names.API_SERVER))
    assert manifest["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-body-size": "16m"}
    hosts = ["airflow.example.com", "airflow.internal.example.com"]
    assert [rule["host"] for rule in manifest["spec"]["rules"]] == hosts
    assert manifest["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/"
    assert manifest["spec"]["tls"] == [{"hosts": hosts, "secretName": "wildcard-tls"}]
    assert "ingressClassName" not in manifest["spec"]


def test_the_http_route_attaches_to_the_gateway_listener_and_matches_the_public_path(route: Evaluation) -> None:
    manifest = reveal(route.find("HTTPRoute", names.API_SERVER))
    assert manifest["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = manifest["spec"]
    assert spec["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "shared",
            "namespace": "gateway-system",
            "sectionName": "https",
        }
    ]
    assert spec["hostnames"] == ["airflow.example.com"]
    [rule] = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/airflow"}}]
    assert rule["backendRefs"] == [{"group": "", "kind": "Service", "name": names.API_SERVER, "port": 8080}]


@pytest.mark.parametrize("kind", ["Ingress", "HTTPRoute"])
def test_exposure_objects_validate_strictly(ingress: Evaluation, route: Evaluation, kind: str) -> None:
    evaluation = ingress if kind == "Ingress" else route
    validate(reveal(evaluation.find(kind, names.API_SERVER)))


def test_without_exposure_there_is_no_route_in() -> None:
    evaluation = evaluate_ok("dev")
    assert not evaluation.names_of("Ingress") and not evaluation.names_of("HTTPRoute")


# --- the public URL everywhere ----------------------------------------------------------------------------


def api_server_env(evaluation: Evaluation) -> dict[str, Any]:
    return env_of(next(iter(containers(evaluation.find("Deployment", names.API_SERVER)))))


def test_the_public_url_is_airflows_base_url_and_the_url_users_open(ingress: Evaluation) -> None:
    environment = api_server_env(ingress)
    assert environment["AIRFLOW__API__BASE_URL"] == PUBLIC
    assert ingress.outputs["uiUrl"] == PUBLIC
    # tasks still reach the execution API inside the cluster (under the same path prefix)
    assert environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        "http://airflow-api-server.airflow-dev.svc.cluster.local:8080/airflow/execution/"
    )


def test_behind_a_proxy_the_api_server_trusts_its_forwarded_headers(ingress: Evaluation, route: Evaluation) -> None:
    assert api_server_env(ingress)[names.AirflowEnv.FAB_PROXY_FIX] == "True"
    assert api_server_env(route)[names.AirflowEnv.FAB_PROXY_FIX] == "True"
    assert names.AirflowEnv.FAB_PROXY_FIX not in api_server_env(evaluate_ok("dev"))


def test_probes_follow_the_public_path(ingress: Evaluation) -> None:
    server = next(iter(containers(ingress.find("Deployment", names.API_SERVER))))
    assert server["livenessProbe"]["httpGet"]["path"] == "/airflow/api/v2/monitor/health"
    assert server["readinessProbe"]["httpGet"]["path"] == "/airflow/execution/health"


# --- the NetworkPolicy follows ---------------------------------------------------------------------------


def test_only_the_ingress_controller_reaches_the_api_server(ingress: Evaluation) -> None:
    controller = Endpoint("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    assert allowed(policies(ingress), controller, pod(ingress, C.API_SERVER), 8080)
    assert not allowed(policies(ingress), controller, pod(ingress, C.SCHEDULER), 8974)
    assert not allowed(policies(ingress), Endpoint("default", {"app": "curious"}), pod(ingress, C.API_SERVER), 8080)
    assert not allowed(policies(ingress), Endpoint("envoy-gateway-system", {}), pod(ingress, C.API_SERVER), 8080)


def test_only_the_gateways_proxies_reach_the_api_server(route: Evaluation) -> None:
    proxy = Endpoint("envoy-gateway-system", {"gateway.envoyproxy.io/owning-gateway-name": "shared"})
    assert allowed(policies(route), proxy, pod(route, C.API_SERVER), 8080)
    assert not allowed(policies(route), Endpoint("ingress-nginx", {}), pod(route, C.API_SERVER), 8080)


def test_unexposed_the_api_server_admits_no_other_namespace() -> None:
    evaluation = evaluate_ok("dev")
    for namespace in ("ingress-nginx", "default", "kube-system"):
        assert not allowed(policies(evaluation), Endpoint(namespace, {}), pod(evaluation, C.API_SERVER), 8080)


# --- bad input, before anything registers ------------------------------------------------------------


def test_exposure_needs_a_public_url() -> None:
    found = problems(apiServer={"ingress": {"enabled": True, "controllerNamespace": "ingress-nginx"}})
    assert any(p.startswith("airflow-k8s:apiServer.baseUrl = (not set): required with ingress.enabled") for p in found)


def test_the_controller_namespace_is_required_with_network_policies() -> None:
    [found] = problems(apiServer={"baseUrl": "http://airflow.example.com", "ingress": {"enabled": True}})
    assert found.startswith("airflow-k8s:apiServer.ingress.controllerNamespace = (not set): required")
    assert "ingress-nginx" in found
    [found] = problems(apiServer={**ROUTE, "httpRoute": {**ROUTE["httpRoute"], "gatewayNamespace": None}})
    assert found.startswith("airflow-k8s:apiServer.httpRoute.gatewayNamespace = (not set): required")


def test_without_network_policies_no_controller_namespace_is_needed() -> None:
    evaluation = evaluate_ok(
        "dev",
        apiServer={"baseUrl": "http://airflow.example.com", "ingress": {"enabled": True}},
        network={"enabled": False},
    )
    assert evaluation.names_of("Ingress") == {names.API_SERVER}


def test_an_https_url_needs_tls_and_tls_needs_https() -> None:
    ingress = {"enabled": True, "controllerNamespace": "ingress-nginx"}
    [found] = problems(apiServer={"baseUrl": "https://airflow.example.com", "ingress": ingress})
    assert found.startswith("airflow-k8s:apiServer.ingress.tls = (not set): required when baseUrl is https")
    [found] = problems(
        apiServer={"baseUrl": "http://airflow.example.com", "ingress": {**ingress, "tls": {"secretName": "x"}}}
    )
    assert (
        found == 'airflow-k8s:apiServer.baseUrl = "http://airflow.example.com": must be https when ingress.tls is set'
    )


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({}, "airflow-k8s:apiServer.ingress.tls.secretName = (not set): TLS needs a certificate"),
        ({"clusterIssuer": "a", "issuer": "b"}, 'airflow-k8s:apiServer.ingress.tls.issuer = "b": set clusterIssuer'),
    ],
)
def test_tls_names_one_certificate_source(tls: dict[str, str], expected: str) -> None:
    ingress = {"enabled": True, "controllerNamespace": "ingress-nginx", "tls": tls}
    [found] = problems(apiServer={"baseUrl": "https://airflow.example.com", "ingress": ingress})
    assert found.startswith(expected)


@pytest.mark.parametrize("host", ["Airflow.example.com", "airflow.example.com:443", "10.0.0.1", "localhost"])
def test_extra_hosts_are_dns_names(host: str) -> None:
    ingress = {"enabled": True, "controllerNamespace": "ingress-nginx", "extraHosts": [host]}
    [found] = problems(apiServer={"baseUrl": "http://airflow.example.com", "ingress": ingress})
    assert found.startswith(f'airflow-k8s:apiServer.ingress.extraHosts[0] = "{host}": must be a lowercase DNS name')


def test_an_http_route_needs_a_gateway() -> None:
    [found] = problems(apiServer={**ROUTE, "httpRoute": {**ROUTE["httpRoute"], "parentRefs": []}})
    assert found.startswith("airflow-k8s:apiServer.httpRoute.parentRefs = []: name at least one Gateway")


def test_cert_manager_annotations_go_through_tls() -> None:
    ingress = {**INGRESS["ingress"], "annotations": {"cert-manager.io/cluster-issuer": "other"}}
    [found] = problems(apiServer={"baseUrl": PUBLIC, "ingress": ingress})
    assert found.startswith('airflow-k8s:apiServer.ingress.annotations.cert-manager.io/cluster-issuer = "other"')
