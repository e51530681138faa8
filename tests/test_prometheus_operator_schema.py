"""The Prometheus operator's ServiceMonitor, PodMonitor and PrometheusRule (monitoring.coreos.com/v1) are
checked like KEDA's and Gateway API's objects: offline against the vendored CRDs' schemas, unknown fields
rejected (tools/validate.py), and on a real API server with the CRDs installed (tests/kube_apiserver.py);
they register as pulumi-kubernetes' CustomResource would."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from tests import kube_apiserver
from tests.support import assert_registers_as_the_sdk_custom_resource
from tools.validate import KUBERNETES_VERSIONS, SchemaError, validate

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        Manifest,
        PodMonitorManifest,
        PrometheusRuleManifest,
        ServiceMonitorManifest,
    )

NAMESPACE = "prometheus-operator-test"
GROUP_VERSION = "/apis/monitoring.coreos.com/v1"
PLURALS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules"}
CRDS = tuple(path for path in kube_apiserver.CRDS if path.parent.name == "prometheus-operator-v0.93.0")
"""The Prometheus operator's CRDs, as tests/kube_apiserver.py finds every CRD in tools/crds."""


def service_monitor() -> ServiceMonitorManifest:
    """The StatsD exporter's metrics, scraped through its Service: typed by the generated ServiceMonitorManifest."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "airflow-statsd", "namespace": NAMESPACE, "labels": {"release": "prometheus"}},
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": "statsd"}},
            "namespaceSelector": {"matchNames": [NAMESPACE]},
            "endpoints": [
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "scheme": "http",
                    "interval": "30s",
                    "scrapeTimeout": "10s",
                    "honorLabels": True,
                    "relabelings": [
                        {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"}
                    ],
                    "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"], "regex": "go_.*"}],
                }
            ],
        },
    }


def pod_monitor() -> PodMonitorManifest:
    """The API server's pods, scraped over TLS: typed by the generated PodMonitorManifest."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "airflow-api-server", "namespace": NAMESPACE},
        "spec": {
            "selector": {
                "matchLabels": {"app.kubernetes.io/name": "airflow"},
                "matchExpressions": [{"key": "component", "operator": "In", "values": ["api-server"]}],
            },
            "podMetricsEndpoints": [
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "scheme": "https",
                    "interval": "1m",
                    "tlsConfig": {
                        "ca": {"secret": {"name": "airflow-metrics-ca", "key": "ca.crt"}},
                        "serverName": "airflow-api-server",
                        "minVersion": "TLS12",
                    },
                    "relabelings": [{"action": "labeldrop", "regex": "pod_template_hash"}],
                }
            ],
        },
    }


def prometheus_rule() -> PrometheusRuleManifest:
    """An alert and a recording rule: typed by the generated PrometheusRuleManifest."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "airflow", "namespace": NAMESPACE},
        "spec": {
            "groups": [
                {
                    "name": "airflow",
                    "interval": "1m",
                    "rules": [
                        {
                            "alert": "AirflowSchedulerDown",
                            "expr": 'absent(up{job="airflow-scheduler"} == 1)',
                            "for": "5m",
                            "labels": {"severity": "critical"},
                            "annotations": {"summary": "No Airflow scheduler has been up for 5 minutes"},
                        },
                        {
                            "record": "airflow:dag_processing_import_errors:sum",
                            "expr": "sum(airflow_dag_processing_import_errors)",
                        },
                    ],
                }
            ]
        },
    }


FACTORIES: list[Callable[[], Manifest]] = [service_monitor, pod_monitor, prometheus_rule]


def as_dict(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(manifest))


# the invalid ones: a misspelt field and a bad value in each kind


def misspelt_scrape_timeout(monitor: dict[str, Any]) -> None:
    endpoint = monitor["spec"]["endpoints"][0]
    endpoint["scrapeTimout"] = endpoint.pop("scrapeTimeout")


def unknown_scheme(monitor: dict[str, Any]) -> None:
    monitor["spec"]["endpoints"][0]["scheme"] = "ftp"


def interval_in_words(monitor: dict[str, Any]) -> None:
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"


def misspelt_pod_metrics_endpoints(monitor: dict[str, Any]) -> None:
    monitor["spec"]["podMetricEndpoints"] = monitor["spec"].pop("podMetricsEndpoints")


def unknown_relabel_action(monitor: dict[str, Any]) -> None:
    monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "dropp"


def unknown_tls_version(monitor: dict[str, Any]) -> None:
    monitor["spec"]["podMetricsEndpoints"][0]["tlsConfig"]["minVersion"] = "TLS1.2"


def misspelt_annotations(rule: dict[str, Any]) -> None:
    first = rule["spec"]["groups"][0]["rules"][0]
    first["annotation"] = first.pop("annotations")


def duration_in_words(rule: dict[str, Any]) -> None:
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"


def unknown_partial_response_strategy(rule: dict[str, Any]) -> None:
    rule["spec"]["groups"][0]["partial_response_strategy"] = "ignore"


class Invalid(NamedTuple):
    factory: Callable[[], Manifest]
    change: Callable[[dict[str, Any]], None]
    field: str
    """Where the offline error says the problem is."""
    says: str
    """What it says."""


INVALID = [
    Invalid(service_monitor, misspelt_scrape_timeout, "at spec.endpoints[0]:", "'scrapeTimout' was unexpected"),
    Invalid(service_monitor, unknown_scheme, "at spec.endpoints[0].scheme:", "'ftp' is not one of"),
    Invalid(service_monitor, interval_in_words, "at spec.endpoints[0].interval:", "'30 seconds' does not match"),
    Invalid(pod_monitor, misspelt_pod_metrics_endpoints, "at spec:", "'podMetricEndpoints' was unexpected"),
    Invalid(
        pod_monitor, unknown_relabel_action, "at spec.podMetricsEndpoints[0].relabelings[0].action:", "'dropp' is not"
    ),
    Invalid(
        pod_monitor, unknown_tls_version, "at spec.podMetricsEndpoints[0].tlsConfig.minVersion:", "'TLS1.2' is not"
    ),
    Invalid(prometheus_rule, misspelt_annotations, "at spec.groups[0].rules[0]:", "'annotation' was unexpected"),
    Invalid(prometheus_rule, duration_in_words, "at spec.groups[0].rules[0].for:", "'5 minutes' does not match"),
    Invalid(
        prometheus_rule,
        unknown_partial_response_strategy,
        "at spec.groups[0].partial_response_strategy:",
        "'ignore' does not match",
    ),
]


# --- offline: the vendored CRDs' schemas, made strict ---------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("factory", FACTORIES, ids=[factory.__name__ for factory in FACTORIES])
def test_a_valid_object_of_each_kind_passes(factory: Callable[[], Manifest], version: str) -> None:
    validate(as_dict(factory()), version)


@pytest.mark.parametrize("invalid", INVALID, ids=[invalid.change.__name__ for invalid in INVALID])
def test_an_invalid_object_fails_naming_the_field(invalid: Invalid) -> None:
    obj = as_dict(invalid.factory())
    invalid.change(obj)
    with pytest.raises(SchemaError) as raised:
        validate(obj)
    message = str(raised.value)
    assert message.startswith(f"{obj['kind']}/{obj['metadata']['name']} "), message
    assert invalid.field in message and invalid.says in message, message


def test_each_kind_has_a_misspelt_field_and_a_bad_value_case() -> None:
    for factory in FACTORIES:
        changes = [invalid.change.__name__ for invalid in INVALID if invalid.factory is factory]
        assert any(name.startswith("misspelt_") for name in changes), factory.__name__
        assert any(not name.startswith("misspelt_") for name in changes), factory.__name__


def test_a_case_insensitive_pattern_of_the_crd_reads_as_the_api_server_reads_it() -> None:
    # ^(?i)(abort|warn)?$ is RE2; Python's re only takes inline flags first: validate.py moves them there
    rule = as_dict(prometheus_rule())
    rule["spec"]["groups"][0]["partial_response_strategy"] = "ABORT"
    validate(rule)


def test_the_real_api_server_tier_installs_these_crds() -> None:
    assert sorted(path.name for path in CRDS) == [
        "monitoring.coreos.com_podmonitors.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
        "monitoring.coreos.com_servicemonitors.yaml",
    ]


# --- registration: as pulumi-kubernetes' CustomResource registers it -----------------------------------


@pytest.mark.parametrize("factory", FACTORIES, ids=[factory.__name__ for factory in FACTORIES])
def test_each_kind_registers_as_the_sdk_custom_resource_would(factory: Callable[[], Manifest]) -> None:
    assert_registers_as_the_sdk_custom_resource(factory())


# --- a real kube-apiserver with the vendored CRDs installed ---------------------------------------------


@pytest.fixture(scope="module")
def server(kube_api_server: kube_apiserver.ApiServer) -> kube_apiserver.ApiServer:
    return kube_apiserver.create_namespace(kube_api_server, NAMESPACE)


def collection(kind: str) -> str:
    return f"{GROUP_VERSION}/namespaces/{NAMESPACE}/{PLURALS[kind]}"


def apply(server: kube_apiserver.ApiServer, obj: dict[str, Any], **query: str) -> dict[str, Any]:
    path = f"{collection(obj['kind'])}/{obj['metadata']['name']}"
    return server.apply(path, obj, "pulumi-kubernetes", **query)


@pytest.mark.real
def test_the_real_api_server_serves_the_kinds_and_refuses_invalid_objects(server: kube_apiserver.ApiServer) -> None:
    served = server.request("GET", GROUP_VERSION)
    assert set(PLURALS.values()) <= {resource["name"] for resource in served["resources"]}

    # the valid ones: a strict dry run, then a real server-side apply, read back unchanged
    for factory in FACTORIES:
        valid = as_dict(factory())
        apply(server, valid, dryRun="All")
        apply(server, valid)
        stored = server.request("GET", f"{collection(valid['kind'])}/{valid['metadata']['name']}")
        assert stored["spec"] == valid["spec"], valid["kind"]
    # RE2's inline flag, as offline
    case_insensitive = as_dict(prometheus_rule())
    case_insensitive["spec"]["groups"][0]["partial_response_strategy"] = "ABORT"
    apply(server, case_insensitive, dryRun="All")

    # each invalid one is refused, the message naming the field (as the offline check's does); an unknown
    # field fails server-side apply's conversion to a typed patch, which the server answers with a 500
    refused = {
        misspelt_scrape_timeout: (500, ".spec.endpoints[0].scrapeTimout: field not declared in schema"),
        unknown_scheme: (422, 'spec.endpoints[0].scheme: Unsupported value: "ftp"'),
        interval_in_words: (422, "spec.endpoints[0].interval: Invalid value"),
        misspelt_pod_metrics_endpoints: (500, ".spec.podMetricEndpoints: field not declared in schema"),
        unknown_relabel_action: (422, 'spec.podMetricsEndpoints[0].relabelings[0].action: Unsupported value: "dropp"'),
        unknown_tls_version: (422, 'spec.podMetricsEndpoints[0].tlsConfig.minVersion: Unsupported value: "TLS1.2"'),
        # groups is a map keyed by name (x-kubernetes-list-type: map) to server-side apply
        misspelt_annotations: (500, '.spec.groups[name="airflow"].rules[0].annotation: field not declared in schema'),
        duration_in_words: (422, "spec.groups[0].rules[0].for: Invalid value"),
        unknown_partial_response_strategy: (422, "spec.groups[0].partial_response_strategy: Invalid value"),
    }
    assert set(refused) == {invalid.change for invalid in INVALID}
    for invalid in INVALID:
        obj = as_dict(invalid.factory())
        obj["metadata"]["name"] = f"invalid-{invalid.change.__name__.replace('_', '-')}"
        invalid.change(obj)
        status, says = refused[invalid.change]
        with pytest.raises(kube_apiserver.ApiError) as raised:
            apply(server, obj, dryRun="All")
        assert (raised.value.status, says in raised.value.message) == (status, True), (invalid.change, raised.value)
    # none of them was stored
    for kind, plural in PLURALS.items():
        listed = server.request("GET", collection(kind))
        assert [item["metadata"]["name"] for item in listed["items"]] == [
            factory()["metadata"]["name"] for factory in FACTORIES if factory()["kind"] == kind
        ], plural
