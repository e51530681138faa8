"""Placement and high availability: where every workload's pods run, the default spread of HA workloads,
and the api-server's HorizontalPodAutoscaler."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from components.config import names
from components.config.loading import ConfigError, Problem, load_stack_config
from components.foundation.placement import POD_TEMPLATE_HASH, SPREAD_TOPOLOGY_KEYS
from dags import stack_context
from tests.support import Evaluation, containers, env_of, evaluate_ok
from tests.variants import PLACEMENT

P = "airflow-k8s:"
C = names.Component
EVERYTHING: dict[str, Any] = {
    "executor": "CeleryExecutor,KubernetesExecutor",
    "metrics": {"enabled": True},
    "databaseCleanup": {"enabled": True},
    "pgbouncer": {"enabled": True, "replicas": 1},  # one pod: no default spread
}
PLACED_FIELDS = ("nodeSelector", "tolerations", "affinity", "priorityClassName")
GLOBAL_FIELDS: dict[str, Any] = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "airflow", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ],
    "affinity": PLACEMENT["affinity"],
    "priorityClassName": "airflow-standard",
}


def pod_specs(evaluation: Evaluation) -> dict[str, dict[str, Any]]:
    """Every pod spec the stack registers: workloads, the CronJob's, and the KubernetesExecutor's template."""
    found: dict[str, dict[str, Any]] = {}
    for obj in evaluation.kubernetes_objects():
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet"):
            found[where] = obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            found[where] = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == names.POD_TEMPLATE_CONFIG_MAP:
            found["task pod template"] = json.loads(obj["data"][names.POD_TEMPLATE_KEY])["spec"]
    return found


def task_pod_placement(evaluation: Evaluation) -> dict[str, Any]:
    environment = env_of(next(iter(containers(evaluation.find("Deployment", names.SCHEDULER)))))
    found: dict[str, Any] = json.loads(environment[stack_context.ENV_TASK_POD_PLACEMENT])
    return found


@pytest.fixture(scope="module")
def placed() -> Evaluation:
    return evaluate_ok("dev", placement=PLACEMENT, **EVERYTHING)


def test_every_workload_gets_the_global_placement(placed: Evaluation) -> None:
    specs = pod_specs(placed)
    expected = {
        f"Deployment/{names.API_SERVER}",
        f"Deployment/{names.SCHEDULER}",
        f"Deployment/{names.DAG_PROCESSOR}",
        f"Deployment/{names.TRIGGERER}",
        f"Deployment/{names.worker_set('default')}",
        f"Deployment/{names.STATSD}",
        f"Deployment/{names.PGBOUNCER}",
        f"StatefulSet/{names.POSTGRES}",
        f"StatefulSet/{names.REDIS}",
        f"CronJob/{names.DATABASE_CLEANUP}",
        "task pod template",
    }
    assert set(specs) == expected
    for where, spec in specs.items():
        assert {field: spec.get(field) for field in PLACED_FIELDS} == GLOBAL_FIELDS, where
    # KubernetesPodOperator pods, through the DAG contract
    assert task_pod_placement(placed) == GLOBAL_FIELDS


def test_no_placement_leaves_the_pods_as_they_were() -> None:
    for where, spec in pod_specs(evaluate_ok("dev", **EVERYTHING)).items():
        assert not set(spec) & {*PLACED_FIELDS, "topologySpreadConstraints"}, where
    assert task_pod_placement(evaluate_ok("dev", **EVERYTHING)) == {}


def test_a_components_field_replaces_the_global_one_and_the_others_stay() -> None:
    evaluation = evaluate_ok(
        "dev",
        placement=PLACEMENT,
        scheduler={"placement": {"nodeSelector": {"node-pool": "core"}, "tolerations": []}},
        database={"placement": {"priorityClassName": "database-critical"}},
        kubernetesExecutor={"placement": {"nodeSelector": {"node-pool": "tasks"}}},
        taskPods={"placement": {"affinity": {}, "priorityClassName": "tasks"}},
        workers=[
            {"name": "default"},
            {"name": "gpu", "queues": ["gpu"], "placement": {"nodeSelector": {"gpu": "a100"}}},
        ],
        **EVERYTHING,
    )
    specs = pod_specs(evaluation)
    scheduler = specs[f"Deployment/{names.SCHEDULER}"]
    assert scheduler["nodeSelector"] == {"node-pool": "core"}
    assert "tolerations" not in scheduler  # [] replaces the global tolerations with none
    assert scheduler["affinity"] == GLOBAL_FIELDS["affinity"]
    assert scheduler["priorityClassName"] == "airflow-standard"
    database = specs[f"StatefulSet/{names.POSTGRES}"]
    assert database["priorityClassName"] == "database-critical"
    assert database["nodeSelector"] == GLOBAL_FIELDS["nodeSelector"]
    assert specs["task pod template"]["nodeSelector"] == {"node-pool": "tasks"}
    assert specs["task pod template"]["tolerations"] == GLOBAL_FIELDS["tolerations"]
    assert specs[f"Deployment/{names.worker_set('gpu')}"]["nodeSelector"] == {"gpu": "a100"}
    assert specs[f"Deployment/{names.worker_set('default')}"]["nodeSelector"] == GLOBAL_FIELDS["nodeSelector"]
    kpo = task_pod_placement(evaluation)
    assert kpo["priorityClassName"] == "tasks" and "affinity" not in kpo
    assert kpo["tolerations"] == GLOBAL_FIELDS["tolerations"]


def default_spread(evaluation: Evaluation, name: str) -> list[dict[str, Any]] | None:
    spec = evaluation.find("Deployment", name)["spec"]["template"]["spec"]
    found: list[dict[str, Any]] | None = spec.get("topologySpreadConstraints")
    return found


def test_ha_workloads_spread_over_nodes_then_zones_by_their_own_selector() -> None:
    evaluation = evaluate_ok("dev", scheduler={"replicas": 2}, dagProcessor={"replicas": 3})
    for name, component in ((names.SCHEDULER, C.SCHEDULER), (names.DAG_PROCESSOR, C.DAG_PROCESSOR)):
        selector = evaluation.find("Deployment", name)["spec"]["selector"]["matchLabels"]
        assert selector == names.selector_labels(component, evaluation_namespace(evaluation))
        assert default_spread(evaluation, name) == [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
                "matchLabelKeys": [POD_TEMPLATE_HASH],
            }
            for key in SPREAD_TOPOLOGY_KEYS
        ]
    # single-replica workloads get none
    for name in (names.API_SERVER, names.TRIGGERER):
        assert default_spread(evaluation, name) is None
    for where, spec in pod_specs(evaluation).items():
        if names.SCHEDULER not in where and names.DAG_PROCESSOR not in where:
            assert "topologySpreadConstraints" not in spec, where


def evaluation_namespace(evaluation: Evaluation) -> str:
    return next(o for o in evaluation.kubernetes_objects() if o["kind"] == "Namespace")["metadata"]["name"]


def test_autoscaled_workloads_count_as_ha() -> None:
    evaluation = evaluate_ok(
        "dev",
        executor="CeleryExecutor",
        keda={"enabled": True},
        triggerer={"autoscaling": {"enabled": True}},
        apiServer={"autoscaling": {"enabled": True}},
    )
    for name in (names.worker_set("default"), names.TRIGGERER, names.API_SERVER):
        spread = default_spread(evaluation, name)
        assert spread is not None and len(spread) == 2, name
        assert evaluation.find("PodDisruptionBudget", name), name
    assert default_spread(evaluation, names.SCHEDULER) is None


def test_user_constraints_replace_the_default_spread_and_an_empty_list_turns_it_off() -> None:
    own = [{"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}]
    evaluation = evaluate_ok(
        "dev",
        placement={"topologySpreadConstraints": own},
        scheduler={"replicas": 2},
        dagProcessor={"replicas": 2, "placement": {"topologySpreadConstraints": []}},
    )
    assert default_spread(evaluation, names.SCHEDULER) == own
    assert default_spread(evaluation, names.DAG_PROCESSOR) is None
    # the user's constraints apply to single-replica workloads too: they asked for them
    assert default_spread(evaluation, names.API_SERVER) == own


def test_the_api_server_autoscaler_targets_the_deployment_which_leaves_replicas_to_it() -> None:
    evaluation = evaluate_ok(
        "dev", apiServer={"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 7, "memoryUtilization": 85}}
    )
    autoscaler = evaluation.find("HorizontalPodAutoscaler", names.API_SERVER)
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    spec = autoscaler["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": names.API_SERVER}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 7)
    assert spec["metrics"] == [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": resource,
                "container": "api-server",
                "target": {"type": "Utilization", "averageUtilization": percent},
            },
        }
        for resource, percent in (("cpu", 70), ("memory", 85))
    ]
    deployment = evaluation.find("Deployment", names.API_SERVER)
    assert "replicas" not in deployment["spec"]
    assert evaluation.registration_for("Deployment", names.API_SERVER).ignore_changes == ["spec.replicas"]
    assert evaluation.find("PodDisruptionBudget", names.API_SERVER)["spec"]["maxUnavailable"] == 1
    # utilization is a share of the request: the container has one
    [server] = [c for c in containers(deployment) if c["name"] == "api-server"]
    assert set(server["resources"]["requests"]) >= {"cpu", "memory"}
    without = evaluate_ok("dev")
    assert names.API_SERVER not in without.names_of("HorizontalPodAutoscaler")
    assert without.find("Deployment", names.API_SERVER)["spec"]["replicas"] == 1
    assert without.registration_for("Deployment", names.API_SERVER).ignore_changes == []


def test_kubernetes_pod_operator_defaults_carry_the_task_pod_placement(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {
        "nodeSelector": {"node-pool": "tasks"},
        "tolerations": [{"key": "tasks", "operator": "Exists"}],
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "priorityClassName": "airflow-tasks",
    }
    evaluation = evaluate_ok("dev", taskPods={"placement": fields})
    placement = task_pod_placement(evaluation)
    assert placement == {**fields, "tolerations": [{"key": "tasks", "operator": "Exists"}]}
    # every pod that parses or runs DAGs holds the same contract
    for name in (names.DAG_PROCESSOR, names.SCHEDULER):
        environment = env_of(next(iter(containers(evaluation.find("Deployment", name)))))
        assert json.loads(environment[stack_context.ENV_TASK_POD_PLACEMENT]) == placement
    stack = stack_context.StackContext(
        namespace="airflow",
        task_service_account=names.TASK_POD,
        api_server_url="http://airflow-api-server.airflow.svc.cluster.local:8080",
        example_secret=names.EXAMPLE_SECRET,
        example_config_map=names.EXAMPLE_CONFIG_MAP,
        task_pod_placement=json.dumps(placement),
    )
    from kubernetes.client import ApiClient

    # pod_defaults imports stack_context as the DAG folder has it: top level
    monkeypatch.syspath_prepend(str(Path(stack_context.__file__).parent))
    pod_defaults = importlib.import_module("pod_defaults")
    pod = pod_defaults.hardened(stack)["full_pod_spec"]
    spec = ApiClient().sanitize_for_serialization(pod)["spec"]
    assert spec == {"containers": [], **placement}
    unplaced = stack_context.StackContext(**{**stack.__dict__, "task_pod_placement": "{}"})
    assert "full_pod_spec" not in pod_defaults.hardened(unplaced)


# --- validation ----------------------------------------------------------------------------------------------


def problems_for(**values: Any) -> list[Problem]:
    raw = {f"{P}{key}": json.dumps(value) for key, value in values.items()}
    with pytest.raises(ConfigError) as caught:
        load_stack_config(raw, set())
    return caught.value.problems


def only_problem(**values: Any) -> Problem:
    found = problems_for(**values)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("placement", "key", "value", "allowed"),
    [
        (
            {"tolerations": [{"key": "a", "operator": "Matches"}]},
            "placement.tolerations[0].operator",
            '"Matches"',
            '"Exists", "Equal"',
        ),
        (
            {"tolerations": [{"key": "a", "effect": "NoRun"}]},
            "placement.tolerations[0].effect",
            '"NoRun"',
            '"NoSchedule", "PreferNoSchedule", "NoExecute"',
        ),
        (
            {"tolerations": [{"key": "a", "effect": "NoSchedule", "tolerationSeconds": 30}]},
            "placement.tolerations[0].tolerationSeconds",
            "30",
            "only with effect NoExecute",
        ),
        ({"tolerations": [{"value": "x"}]}, "placement.tolerations[0].key", "(not set)", "operator Exists"),
        (
            {"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]},
            "placement.tolerations[0].value",
            '"x"',
            "empty with operator Exists",
        ),
        (
            {"tolerations": [{"key": "bad key!", "operator": "Exists"}]},
            "placement.tolerations[0].key",
            '"bad key!"',
            "label key",
        ),
        ({"nodeSelector": {"Bad Key": "x"}}, "placement.nodeSelector", '{"Bad Key": "x"}', "label key"),
        ({"nodeSelector": {"pool": "-bad"}}, "placement.nodeSelector", '{"pool": "-bad"}', "label value"),
        ({"priorityClassName": "High_Priority"}, "placement.priorityClassName", '"High_Priority"', "PriorityClass"),
        (
            {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname"}]},
            "placement.topologySpreadConstraints[0].whenUnsatisfiable",
            "(not set)",
            "required",
        ),
        (
            {
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "Maybe"}
                ]
            },
            "placement.topologySpreadConstraints[0].whenUnsatisfiable",
            '"Maybe"',
            '"DoNotSchedule", "ScheduleAnyway"',
        ),
        (
            {
                "topologySpreadConstraints": [
                    {"maxSkew": 0, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}
                ]
            },
            "placement.topologySpreadConstraints[0].maxSkew",
            "0",
            "at least 1",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "zone", "operator": "Like", "values": ["a"]}]}
                            ]
                        }
                    }
                }
            },
            "placement.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
            ".matchExpressions[0].operator",
            '"Like"',
            '"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"',
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 101,
                                "preference": {
                                    "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]
                                },
                            }
                        ]
                    }
                }
            },
            "placement.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
            "101",
            "from 1 to 100",
        ),
        (
            {
                "affinity": {
                    "podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": {"a": "b"}}}
                        ]
                    }
                }
            },
            "placement.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
            "(not set)",
            "required",
        ),
        (
            {
                "affinity": {
                    "podAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]},
                            }
                        ]
                    }
                }
            },
            "placement.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector"
            ".matchExpressions[0].values",
            "[]",
            "at least one value with operator In",
        ),
        (
            {"affinity": {"nodeAfinity": {}}},
            "placement.affinity.nodeAfinity",
            "{}",
            "nodeAffinity, podAffinity, podAntiAffinity",
        ),
    ],
)
def test_bad_placement_names_key_value_and_what_is_allowed(
    placement: dict[str, Any], key: str, value: str, allowed: str
) -> None:
    problem = only_problem(placement=placement)
    assert problem.key == P + key
    assert problem.value == value
    assert allowed in problem.allowed


def test_a_components_placement_is_checked_like_the_global_one() -> None:
    problem = only_problem(workers=[{"name": "default", "placement": {"tolerations": [{"operator": "Sometimes"}]}}])
    assert problem.key == f"{P}workers[0].placement.tolerations[0].operator"
    problem = only_problem(taskPods={"placement": {"priorityClassName": "UPPER"}})
    assert problem.key == f"{P}taskPods.placement.priorityClassName"


def test_gt_and_lt_take_exactly_one_integer() -> None:
    term = {"matchExpressions": [{"key": "cpu-generation", "operator": "Gt", "values": ["three"]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    problem = only_problem(placement={"affinity": affinity})
    assert problem.key.endswith("matchExpressions[0].values")
    assert "exactly one integer" in problem.allowed


def test_autoscaling_bounds_and_conflicts_are_refused() -> None:
    problem = only_problem(apiServer={"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}})
    assert problem.key == f"{P}apiServer.autoscaling.minReplicas"
    assert problem.value == "5" and "at most maxReplicas (3)" in problem.allowed
    problem = only_problem(apiServer={"replicas": 2, "autoscaling": {"enabled": True}})
    assert problem.key == f"{P}apiServer.replicas"
    assert "HorizontalPodAutoscaler owns the replica count" in problem.allowed
    problem = only_problem(apiServer={"autoscaling": {"enabled": True, "minReplicas": 0}})
    assert problem.key == f"{P}apiServer.autoscaling.minReplicas"
    # replicas without autoscaling, or autoscaling off with replicas: fine
    load_stack_config({f"{P}apiServer": json.dumps({"replicas": 2, "autoscaling": {"enabled": False}})}, set())
