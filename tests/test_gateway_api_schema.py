"""Gateway API HTTPRoutes (gateway.networking.k8s.io/v1) are checked like KEDA's objects: offline against
the vendored CRD's schema, unknown fields rejected (tools/validate.py), and on a real API server with the
CRDs installed (tests/kube_apiserver.py); they register as pulumi-kubernetes' CustomResource would."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests import kube_apiserver
from tests.support import assert_registers_as_the_sdk_custom_resource
from tools.validate import KUBERNETES_VERSIONS, SchemaError, validate

if TYPE_CHECKING:
    from components.kube.manifest_types import HTTPRouteManifest

NAMESPACE = "gateway-api-test"
ROUTES = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NAMESPACE}/httproutes"


def http_route() -> HTTPRouteManifest:
    """The Airflow UI behind a shared Gateway: typed by the generated HTTPRouteManifest."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "airflow-ui", "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "airflow"}},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["airflow.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": "airflow-api-server", "port": 8080}],
                    "timeouts": {"request": "30s"},
                }
            ],
        },
    }


def route_dict() -> dict[str, Any]:
    return dict(copy.deepcopy(http_route()))


def misspelt_parent_refs(route: dict[str, Any]) -> None:
    route["spec"]["parentRef"] = route["spec"].pop("parentRefs")


def bad_path_type(route: dict[str, Any]) -> None:
    route["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefixx"


def uppercase_hostname(route: dict[str, Any]) -> None:
    route["spec"]["hostnames"] = ["Airflow.Example.com"]


def hostname_with_port(route: dict[str, Any]) -> None:
    route["spec"]["hostnames"] = ["airflow.example.com:443"]


def backend_port_out_of_range(route: dict[str, Any]) -> None:
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = 70000


INVALID: list[tuple[Callable[[dict[str, Any]], None], str, str]] = [
    # (change, the field the offline error names, what it says)
    (misspelt_parent_refs, "at spec:", "'parentRef' was unexpected"),
    (bad_path_type, "at spec.rules[0].matches[0].path.type:", "'Prefixx' is not one of"),
    (uppercase_hostname, "at spec.hostnames[0]:", "'Airflow.Example.com' does not match"),
    (hostname_with_port, "at spec.hostnames[0]:", "'airflow.example.com:443' does not match"),
    (backend_port_out_of_range, "at spec.rules[0].backendRefs[0].port:", "greater than the maximum of 65535"),
]


# --- offline: the vendored CRD's schema, made strict --------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_a_valid_http_route_passes(version: str) -> None:
    validate(route_dict(), version)


@pytest.mark.parametrize(("change", "field", "says"), INVALID, ids=[change.__name__ for change, _, _ in INVALID])
def test_an_invalid_http_route_fails_naming_the_field(
    change: Callable[[dict[str, Any]], None], field: str, says: str
) -> None:
    route = route_dict()
    change(route)
    with pytest.raises(SchemaError) as raised:
        validate(route)
    message = str(raised.value)
    assert message.startswith("HTTPRoute/airflow-ui "), message
    assert field in message and says in message, message


def test_the_other_gateway_api_kinds_validate_against_their_crds() -> None:
    gateway: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "public", "namespace": "gateways"},
        "spec": {
            "gatewayClassName": "example",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
            # a oneOf of partial schemas: their properties must not make either branch strict
            "addresses": [{"type": "Hostname", "value": "lb.example.com"}, {"type": "IPAddress", "value": "10.0.0.1"}],
        },
    }
    gateway_class = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "example"},
        "spec": {"controllerName": "example.com/gateway-controller"},
    }
    grant = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "routes-to-airflow", "namespace": NAMESPACE},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "gateways"}],
            "to": [{"group": "", "kind": "Service"}],
        },
    }
    for obj in (gateway, gateway_class, grant):
        validate(obj)
    gateway["spec"]["listeners"][0]["protocoll"] = "HTTP"
    with pytest.raises(SchemaError, match=r"at spec\.listeners\[0\]: .*'protocoll' was unexpected"):
        validate(gateway)


# --- registration: as pulumi-kubernetes' CustomResource registers it -----------------------------------


def test_an_http_route_registers_as_the_sdk_custom_resource_would() -> None:
    assert_registers_as_the_sdk_custom_resource(http_route())


# --- a real kube-apiserver with the vendored CRDs installed ---------------------------------------------


@pytest.fixture(scope="module")
def server(kube_api_server: kube_apiserver.ApiServer) -> kube_apiserver.ApiServer:
    return kube_apiserver.create_namespace(kube_api_server, NAMESPACE)


def apply_route(server: kube_apiserver.ApiServer, route: dict[str, Any], **query: str) -> dict[str, Any]:
    return server.apply(f"{ROUTES}/{route['metadata']['name']}", route, "pulumi-kubernetes", **query)


def relative_path(route: dict[str, Any]) -> None:
    # only a CEL rule of the CRD says so: the offline schema check lets it through
    route["spec"]["rules"][0]["matches"][0]["path"]["value"] = "airflow"


@pytest.mark.real
def test_the_real_api_server_serves_the_gateway_api_kinds_and_refuses_invalid_http_routes(
    server: kube_apiserver.ApiServer,
) -> None:
    served = server.request("GET", "/apis/gateway.networking.k8s.io/v1")
    assert {"httproutes", "gateways", "gatewayclasses", "referencegrants"} <= {r["name"] for r in served["resources"]}

    # the valid route: a strict dry run, then a real server-side apply, read back with the CRD's defaults
    dry = apply_route(server, route_dict(), dryRun="All")
    assert dry["spec"]["hostnames"] == ["airflow.example.com"]
    apply_route(server, route_dict())
    stored = server.request("GET", f"{ROUTES}/airflow-ui")
    assert stored["spec"]["parentRefs"][0] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "public",
        "namespace": "gateways",
        "sectionName": "https",
    }
    assert stored["spec"]["rules"][0]["backendRefs"][0]["kind"] == "Service"

    # each invalid one is refused, the message naming the field (as the offline check's does); an unknown
    # field fails server-side apply's conversion to a typed patch, which the server answers with a 500
    refused = {
        misspelt_parent_refs: (500, ".spec.parentRef: field not declared in schema"),
        bad_path_type: (422, 'spec.rules[0].matches[0].path.type: Unsupported value: "Prefixx"'),
        uppercase_hostname: (422, "spec.hostnames[0]: Invalid value"),
        hostname_with_port: (422, "spec.hostnames[0]: Invalid value"),
        backend_port_out_of_range: (422, "spec.rules[0].backendRefs[0].port: Invalid value"),
        relative_path: (422, "spec.rules[0].matches[0].path: Invalid value"),
    }
    cel_only = route_dict()
    relative_path(cel_only)
    validate(cel_only)  # the CRD's CEL rules run on the API server only
    for change, (status, says) in refused.items():
        route = route_dict()
        route["metadata"]["name"] = f"invalid-{change.__name__.replace('_', '-')}"
        change(route)
        with pytest.raises(kube_apiserver.ApiError) as raised:
            apply_route(server, route, dryRun="All")
        assert (raised.value.status, says in raised.value.message) == (status, True), (change.__name__, raised.value)
    # none of them was stored
    listed = server.request("GET", ROUTES)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["airflow-ui"]
