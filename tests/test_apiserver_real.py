"""The rendered stacks on a real Kubernetes API server (kube-apiserver 1.36 with etcd; RBAC and Pod
Security admission on): every object passes a strict server-side dry run and is applied with server-side
apply as pulumi-kubernetes applies it; a second apply changes nothing; every pod the stack or its DAGs
create is admitted as `restricted`; and each ServiceAccount may do exactly what docs/security.md says.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client as kube_client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ApiException

from components.config import names
from tests import kube_apiserver
from tests.local_pod import LocalPod
from tests.support import Evaluation, reveal
from tests.variants import VARIANTS
from tools.mock_engine import evaluate_stack

# The test server's certificate is its own, made at start-up.
pytestmark = [pytest.mark.real, pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]

ROOT = Path(__file__).resolve().parent.parent
FIELD_MANAGER = "pulumi-kubernetes"
"""The field manager pulumi-kubernetes applies with."""
SECURITY_DOC = ROOT / "docs" / "security.md"
PRIORITY_CLASSES = ("airflow-standard", "airflow-tasks")


@pytest.fixture(scope="module")
def server(kube_api_server: kube_apiserver.ApiServer) -> kube_apiserver.ApiServer:
    """The session's server (every vendored CRD installed), with the PriorityClasses the variants'
    placement names (a cluster's admins create them)."""
    api = dynamic(kube_api_server)
    classes = api.resources.get(api_version="scheduling.k8s.io/v1", kind="PriorityClass")
    for name in PRIORITY_CLASSES:
        body = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}}
        api.server_side_apply(classes, body={**body, "value": 1000}, field_manager="test-setup")
    return kube_api_server


_CLIENTS: dict[tuple[str, str | None], DynamicClient] = {}


def dynamic(server: kube_apiserver.ApiServer, impersonate: str | None = None) -> DynamicClient:
    """A client for the server as the admin, or impersonating ``impersonate``: one per identity, kept
    (a new one opens new TLS connections, each reading the system's CA bundle: ~30 ms of CPU, and the
    admission and RBAC tests ask as a few identities hundreds of times)."""
    if (server.url, impersonate) not in _CLIENTS:
        _CLIENTS[(server.url, impersonate)] = _new_client(server, impersonate)
    return _CLIENTS[(server.url, impersonate)]


def _new_client(server: kube_apiserver.ApiServer, impersonate: str | None) -> DynamicClient:
    configuration = kube_client.Configuration()
    configuration.host = server.url
    configuration.verify_ssl = False
    configuration.api_key = {"BearerToken": server.token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    api = kube_client.ApiClient(configuration)
    # the TLS context every client shares, made once (urllib3 would make one per connection)
    api.rest_client.pool_manager = urllib3.PoolManager(
        num_pools=4, maxsize=4, ssl_context=kube_apiserver.insecure_context()
    )
    if impersonate is not None:
        # A ServiceAccount's groups (system:serviceaccounts[:NAMESPACE], system:authenticated) come with it.
        api.set_default_header("Impersonate-User", impersonate)
    return DynamicClient(api)


# --- the variants on the server --------------------------------------------------------------------------

SERVER_VARIANTS = [
    "dev",
    "kubernetes-executor",
    "celery",
    "celery-kubernetes",
    "celery-keda",
    "prod",
    "external-database-connections-git-ssh",
    "git-https-no-network-policies",
    "http-route-sso-subpath",
    "podmonitor-logs-volume-cleanup",
    "gcs-logs-metrics-only",
    "placement-hpa",
]
DAG_PODS_VARIANT = "placement-hpa"
"""Celery and Kubernetes executors, with task pods placed (taskPods.placement, kubernetesExecutor.placement)."""


@dataclass
class Applied:
    variant: str
    namespace: str
    evaluation: Evaluation
    objects: list[dict[str, Any]]
    dry_run_errors: dict[str, str] = field(default_factory=lambda: {})
    first: dict[str, tuple[int | None, str]] = field(default_factory=lambda: {})
    second: dict[str, tuple[int | None, str]] = field(default_factory=lambda: {})


def key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def namespace_for(variant: str) -> str:
    return f"t-{variant}"[:63].rstrip("-")


def evaluate_on(variant: str) -> Evaluation:
    stack, overrides, secret_overrides = VARIANTS[variant]
    evaluation = evaluate_stack(stack, {**overrides, "namespace": namespace_for(variant)}, secret_overrides)
    assert evaluation.error is None, evaluation.error
    return evaluation


def apply(api: DynamicClient, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    resource = api.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    result = api.server_side_apply(
        resource,
        body=obj,
        name=obj["metadata"]["name"],
        namespace=obj["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        dry_run="All" if dry_run else None,
        query_params=[("fieldValidation", "Strict")],
    )
    return result.to_dict()


def version_of(live: dict[str, Any]) -> tuple[int | None, str]:
    if live["kind"] == "PersistentVolumeClaim":
        # kube-apiserver bumps a new claim's resourceVersion once on its first re-apply, with no change to
        # its content (207 -> 208 -> 208 -> 208 over four applies, every field identical): the content
        # is what must not change
        content = copy.deepcopy(live)
        del content["metadata"]["resourceVersion"]
        return None, hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return live["metadata"].get("generation"), live["metadata"]["resourceVersion"]


@pytest.fixture(scope="module", params=SERVER_VARIANTS)
def applied(request: pytest.FixtureRequest, server: kube_apiserver.ApiServer) -> Applied:
    return apply_variant(server, request.param)


_APPLIED: dict[tuple[str, str], Applied] = {}


def apply_variant(server: kube_apiserver.ApiServer, variant: str) -> Applied:
    """Dry run, apply and apply again (once per server and variant)."""
    if (server.url, variant) not in _APPLIED:
        _APPLIED[(server.url, variant)] = _apply_variant(server, variant)
    return _APPLIED[(server.url, variant)]


def _apply_variant(server: kube_apiserver.ApiServer, variant: str) -> Applied:
    evaluation = evaluate_on(variant)
    objects = [reveal(obj) for obj in evaluation.kubernetes_objects()]
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    others = [o for o in objects if o["kind"] != "Namespace"]
    result = Applied(variant, namespace_for(variant), evaluation, objects)
    api = dynamic(server)
    for namespace in namespaces:
        apply(api, namespace)
    for obj in others:
        try:
            apply(api, obj, dry_run=True)
        except ApiException as error:
            result.dry_run_errors[key(obj)] = str(error.body)[:2000]
    for obj in [*namespaces, *others]:
        result.first[key(obj)] = version_of(apply(api, obj))
    for obj in [*namespaces, *others]:
        result.second[key(obj)] = version_of(apply(api, obj))
    return result


def test_every_object_passes_a_strict_server_side_dry_run(applied: Applied) -> None:
    assert applied.dry_run_errors == {}
    assert len(applied.objects) > 20


def test_a_second_apply_changes_no_object(applied: Applied) -> None:
    changed = {k: (applied.first[k], applied.second[k]) for k in applied.first if applied.first[k] != applied.second[k]}
    assert changed == {}
    assert len(applied.second) == len(applied.objects)


def workload_pods(applied: Applied) -> dict[str, dict[str, Any]]:
    """A Pod for each workload's template, and the KubernetesExecutor's task pod template."""
    pods: dict[str, dict[str, Any]] = {}
    for obj in applied.objects:
        if obj["kind"] in ("Job", "CronJob"):
            job = obj["spec"] if obj["kind"] == "Job" else obj["spec"]["jobTemplate"]["spec"]
            template = copy.deepcopy(job["template"])
            pods[key(obj)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{obj['metadata']['name']}-admission"[:63],
                    "namespace": applied.namespace,
                    "labels": template["metadata"]["labels"],
                },
                "spec": template["spec"],
            }
        if obj["kind"] in ("Deployment", "StatefulSet"):
            template = copy.deepcopy(obj["spec"]["template"])
            # The StatefulSet controller adds a volume per claim template (data-NAME-0 for the first pod).
            for claim in obj["spec"].get("volumeClaimTemplates", []):
                claim_name = f"{claim['metadata']['name']}-{obj['metadata']['name']}-0"
                volume = {"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}}
                template["spec"].setdefault("volumes", []).append(volume)
            pods[key(obj)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{obj['metadata']['name']}-admission",
                    "namespace": applied.namespace,
                    "labels": template["metadata"]["labels"],
                },
                "spec": template["spec"],
            }
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == names.POD_TEMPLATE_CONFIG_MAP:
            template = json.loads(obj["data"][names.POD_TEMPLATE_KEY])
            template["metadata"]["name"] = "kubernetes-executor-task-admission"
            pods["task pod template"] = template
    return pods


def admit(server: kube_apiserver.ApiServer, pod: dict[str, Any]) -> str | None:
    """None when the API server (Pod Security `restricted` on the namespace) admits the pod, else why not."""
    api = dynamic(server)
    pods = api.resources.get(api_version="v1", kind="Pod")
    try:
        pods.create(body=pod, namespace=pod["metadata"]["namespace"], query_params=[("dryRun", "All")])
    except ApiException as error:
        return str(json.loads(error.body).get("message", error.body))[:2000]
    return None


def test_every_workload_pod_and_task_pod_is_admitted_as_restricted(
    applied: Applied, server: kube_apiserver.ApiServer
) -> None:
    namespace = next(o for o in applied.objects if o["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = workload_pods(applied)
    assert pods
    refused = {name: why for name, pod in pods.items() if (why := admit(server, pod)) is not None}
    assert refused == {}


def test_a_privileged_pod_is_refused_there_so_admission_really_runs(
    applied: Applied, server: kube_apiserver.ApiServer
) -> None:
    pod = copy.deepcopy(next(iter(workload_pods(applied).values())))
    pod["metadata"]["name"] = "not-restricted"
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = admit(server, pod)
    assert refused is not None and "restricted" in refused


@pytest.fixture(scope="module")
def dag_pods(server: kube_apiserver.ApiServer, postgres: Any) -> dict[str, Any]:
    """The pods the example DAGs' operators build, and the KubernetesExecutor's own task pod, in the
    namespace of a variant that uses the KubernetesExecutor and places task pods (built by real Airflow,
    in its pods)."""
    from tests.test_dags import harness

    evaluation = evaluate_on(DAG_PODS_VARIANT)
    processor = LocalPod(evaluation, "Deployment", names.DAG_PROCESSOR, postgres.port)
    scheduler = LocalPod(evaluation, "Deployment", names.SCHEDULER, postgres.port)
    try:
        built = {task: entry["pod"] for task, entry in harness(processor, "pods").items()}
        result = scheduler.run(
            "scheduler", 300, ["python", str(ROOT / "tests" / "dag_harness.py"), "kubernetes-executor-pod"]
        )
        marker = [line for line in result.stdout.splitlines() if line.startswith("@@RESULT@@")]
        assert result.returncode == 0 and marker, result.stderr[-3000:]
        built["KubernetesExecutor task pod"] = json.loads(marker[-1].removeprefix("@@RESULT@@"))["pod"]
    finally:
        processor.stop()
        scheduler.stop()
    return built


def test_the_example_dags_pods_and_the_executors_task_pod_are_admitted_as_restricted(
    dag_pods: dict[str, Any], server: kube_apiserver.ApiServer
) -> None:
    applied = apply_variant(server, DAG_PODS_VARIANT)  # their namespace, identities and Secrets
    refused: dict[str, str] = {}
    for task, built in dag_pods.items():
        pod = copy.deepcopy(built)
        pod["metadata"]["name"] = re.sub(r"[^a-z0-9-]", "-", task.lower())[:60]
        pod["metadata"].pop("generateName", None)
        assert pod["metadata"]["namespace"] == applied.namespace, task
        if (why := admit(server, pod)) is not None:
            refused[task] = why
    assert refused == {}
    assert len(dag_pods) >= 10


# --- identities: exactly the documented rights ------------------------------------------------------------


def documented_rights() -> dict[str, set[tuple[str, str]]]:
    """docs/security.md's identity table: ServiceAccount -> {(resource, verb)}."""
    text = SECURITY_DOC.read_text()
    section = text[text.index("## Identities") :]
    rights: dict[str, set[tuple[str, str]]] = {}
    for row in re.findall(r"^\| `(airflow-[a-z-]+)` \|[^|]*\|([^|]*)\|", section, flags=re.M):
        account, cell = row
        granted: set[tuple[str, str]] = set()
        for resource, verbs in re.findall(r"`([a-z/]+)`: ([a-z, ]+)", cell):
            granted |= {(resource, verb.strip()) for verb in verbs.split(",")}
        rights[account] = granted
    return rights


def rights_of(server: kube_apiserver.ApiServer, namespace: str, account: str) -> set[tuple[str, str]]:
    api = dynamic(server, f"system:serviceaccount:{namespace}:{account}")
    reviews = api.resources.get(api_version="authorization.k8s.io/v1", kind="SelfSubjectRulesReview")
    review = reviews.create(
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        }
    ).to_dict()
    found: set[tuple[str, str]] = set()
    for rule in review["status"]["resourceRules"]:
        for resource in rule.get("resources", []):
            for verb in rule["verbs"]:
                found.add((resource, verb))
    return found


def test_each_service_account_may_do_exactly_what_the_docs_say(
    applied: Applied, server: kube_apiserver.ApiServer
) -> None:
    documented = documented_rights()
    baseline = rights_of(server, applied.namespace, "nobody-at-all")  # what every authenticated user may do
    accounts = [o["metadata"]["name"] for o in applied.objects if o["kind"] == "ServiceAccount"]
    assert accounts
    tokens = {
        o["metadata"]["name"]: o["automountServiceAccountToken"]
        for o in applied.objects
        if o["kind"] == "ServiceAccount"
    }
    for account in accounts:
        granted = rights_of(server, applied.namespace, account) - baseline
        expected = documented[account] if tokens[account] else set()
        assert granted == expected, account
        # the API token is mounted exactly where some right is granted
        assert tokens[account] == bool(granted), account
