"""Where pods run: the ``placement`` section, typed as Kubernetes' own pod scheduling fields.

``nodeSelector``, ``tolerations``, ``affinity``, ``topologySpreadConstraints`` and ``priorityClassName``
are checked here field by field, before anything is registered: an operator, an effect or a
``whenUnsatisfiable`` outside Kubernetes' choices, a malformed label, a ``tolerationSeconds`` without
``NoExecute`` or a selector requirement whose values do not fit its operator is reported with its full
key (``airflow-k8s:scheduler.placement.affinity.nodeAffinity...``), its value and what is allowed, as
the API server would only report it at ``pulumi up``, one object at a time.

The global ``placement`` applies to every workload; a component's own ``placement`` replaces it field
by field (a field set there, even to an empty list, wins; an unset one falls back to the global one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field

from components.config import checks
from components.config.base import Rule, Section, check_error, show, valid

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY_HELP = (
    "a label key: [prefix/]name, the name at most 63 letters, digits, '-', '_' or '.', starting and ending "
    "alphanumeric, the prefix a DNS subdomain (e.g. topology.kubernetes.io/zone)"
)
LABEL_VALUE_HELP = (
    "a label value: empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
)


def is_label_key(value: str) -> bool:
    prefix, _, name = value.rpartition("/")
    if "/" in value and not checks.is_dns_subdomain(prefix):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def _label_key(value: str) -> str:
    if not is_label_key(value):
        raise check_error(f"must be {LABEL_KEY_HELP}")
    return value


def _label_value(value: str) -> str:
    if not is_label_value(value):
        raise check_error(f"must be {LABEL_VALUE_HELP}")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    keys = sorted(key for key in value if not is_label_key(key))
    if keys:
        raise check_error(f"{', '.join(map(show, keys))}: each key must be {LABEL_KEY_HELP}")
    bad = sorted(key for key, text in value.items() if not is_label_value(text))
    if bad:
        shown = ", ".join(f"{show(key)}: {show(value[key])}" for key in bad)
        raise check_error(f"{shown}: each value must be {LABEL_VALUE_HELP}")
    return value


def _weight(value: int) -> int:
    if not 1 <= value <= 100:
        raise check_error("must be an integer from 1 to 100")
    return value


def _priority_class(value: str) -> str:
    if not checks.is_dns_subdomain(value) or len(value) > 253:
        raise check_error(
            "must be a PriorityClass name (a DNS subdomain: lowercase letters, digits, '-' and '.'), "
            "e.g. airflow-critical or system-cluster-critical"
        )
    return value


LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Weight = Annotated[int, AfterValidator(_weight)]
PriorityClassName = Annotated[str, AfterValidator(_priority_class)]

TolerationOperator = Literal["Exists", "Equal"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
NodeSelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
WhenUnsatisfiable = Literal["DoNotSchedule", "ScheduleAnyway"]
InclusionPolicy = Literal["Honor", "Ignore"]


class KubernetesShape(Section):
    """A Kubernetes API object typed field by field: documented as one key (its Kubernetes type)."""

    REFERENCE_TYPE: ClassVar[str] = "object"

    def manifest(self) -> dict[str, Any]:
        """The object as the Kubernetes API takes it (camelCase, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _values_fit(operator: str, values: list[str] | None, needs_values: tuple[str, ...]) -> Iterator[Rule]:
    if operator in needs_values and not values:
        yield Rule(("values",), show(values or []), f"must list at least one value with operator {operator}")
    elif operator in ("Exists", "DoesNotExist") and values:
        yield Rule(("values",), show(values), f"must be empty with operator {operator}")


class LabelSelectorRequirementConfig(KubernetesShape):
    key: LabelKey = Field(description="Label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[LabelValue] | None = Field(default=None, description="Values (In and NotIn only).")

    def rules(self) -> Iterator[Rule]:
        if valid(self.operator, self.values):
            yield from _values_fit(self.operator, self.values, ("In", "NotIn"))


class LabelSelectorConfig(KubernetesShape):
    match_labels: Labels | None = Field(default=None, description="Labels the pods must carry.")
    match_expressions: list[LabelSelectorRequirementConfig] | None = Field(
        default=None, description="Requirements on the pods' labels."
    )


class TolerationConfig(KubernetesShape):
    REFERENCE_TYPE: ClassVar[str] = "list of Kubernetes Toleration"

    key: LabelKey | None = Field(default=None, description="Taint key; unset with Exists tolerates every taint.")
    operator: TolerationOperator = Field(default="Equal", description="Exists or Equal.")
    value: LabelValue | None = Field(default=None, description="Taint value (Equal only).")
    effect: TaintEffect | None = Field(
        default=None, description="NoSchedule, PreferNoSchedule or NoExecute; unset matches every effect."
    )
    toleration_seconds: checks.NonNegative | None = Field(
        default=None, description="How long a pod stays on a node tainted NoExecute (NoExecute only)."
    )

    def rules(self) -> Iterator[Rule]:
        if not valid(self.key, self.operator, self.value, self.effect, self.toleration_seconds):
            return
        if self.operator == "Equal" and self.key is None:
            yield Rule(("key",), "(not set)", "required with operator Equal; without a key, use operator Exists")
        if self.operator == "Exists" and self.value:
            yield Rule(("value",), show(self.value), "must be empty with operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            yield Rule(
                ("tolerationSeconds",),
                show(self.toleration_seconds),
                f"only with effect NoExecute (effect is {show(self.effect) if self.effect else 'not set'})",
            )


class TopologySpreadConstraintConfig(KubernetesShape):
    REFERENCE_TYPE: ClassVar[str] = "list of Kubernetes TopologySpreadConstraint"

    max_skew: checks.Positive = Field(description="Largest allowed difference in pods between two domains.")
    topology_key: LabelKey = Field(description="Node label that defines the domains, e.g. kubernetes.io/hostname.")
    when_unsatisfiable: WhenUnsatisfiable = Field(description="DoNotSchedule or ScheduleAnyway.")
    label_selector: LabelSelectorConfig | None = Field(default=None, description="Pods counted in each domain.")
    match_label_keys: list[LabelKey] | None = Field(
        default=None, description="Pod label keys whose values narrow the count, e.g. pod-template-hash."
    )
    min_domains: checks.Positive | None = Field(
        default=None, description="Minimum number of eligible domains (DoNotSchedule only)."
    )
    node_affinity_policy: InclusionPolicy | None = Field(default=None, description="Honor or Ignore.")
    node_taints_policy: InclusionPolicy | None = Field(default=None, description="Honor or Ignore.")

    def rules(self) -> Iterator[Rule]:
        given = valid(self.min_domains, self.when_unsatisfiable) and self.min_domains is not None
        if given and self.when_unsatisfiable != "DoNotSchedule":
            yield Rule(("minDomains",), show(self.min_domains), "only with whenUnsatisfiable DoNotSchedule")


class NodeSelectorRequirementConfig(KubernetesShape):
    key: str = Field(description="Node label key (or field, in matchFields).")
    operator: NodeSelectorOperator = Field(description="In, NotIn, Exists, DoesNotExist, Gt or Lt.")
    values: list[str] | None = Field(default=None, description="Values; one integer for Gt and Lt.")

    def rules(self) -> Iterator[Rule]:
        if valid(self.key) and not is_label_key(self.key):
            yield Rule(("key",), show(self.key), f"must be {LABEL_KEY_HELP}")
        if not valid(self.operator, self.values):
            return
        if self.operator in ("Gt", "Lt"):
            if not (self.values and len(self.values) == 1 and self.values[0].lstrip("-").isdigit()):
                yield Rule(("values",), show(self.values), f"must be exactly one integer with operator {self.operator}")
            return
        yield from _values_fit(self.operator, self.values, ("In", "NotIn"))
        for i, value in enumerate(self.values or []):
            if not is_label_value(value):
                yield Rule(("values", i), show(value), f"must be {LABEL_VALUE_HELP}")


class NodeSelectorTermConfig(KubernetesShape):
    match_expressions: list[NodeSelectorRequirementConfig] | None = Field(
        default=None, description="Requirements on the node's labels."
    )
    match_fields: list[NodeSelectorRequirementConfig] | None = Field(
        default=None, description="Requirements on the node's fields (metadata.name)."
    )

    def rules(self) -> Iterator[Rule]:
        if valid(self.match_expressions, self.match_fields) and not (self.match_expressions or self.match_fields):
            yield Rule(("matchExpressions",), "(not set)", "a term needs matchExpressions or matchFields")


class NodeSelectorConfig(KubernetesShape):
    node_selector_terms: list[NodeSelectorTermConfig] = Field(description="Terms; a node matching any one fits.")

    def rules(self) -> Iterator[Rule]:
        if valid(self.node_selector_terms) and not self.node_selector_terms:
            yield Rule(("nodeSelectorTerms",), "[]", "must list at least one term")


class PreferredSchedulingTermConfig(KubernetesShape):
    weight: Weight = Field(description="1-100.")
    preference: NodeSelectorTermConfig = Field(description="The node selector term.")


class NodeAffinityConfig(KubernetesShape):
    required_during_scheduling_ignored_during_execution: NodeSelectorConfig | None = Field(
        default=None, description="Nodes the pod must run on."
    )
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTermConfig] | None = Field(
        default=None, description="Nodes the pod prefers."
    )


class PodAffinityTermConfig(KubernetesShape):
    topology_key: LabelKey = Field(description="Node label that defines 'together', e.g. kubernetes.io/hostname.")
    label_selector: LabelSelectorConfig | None = Field(default=None, description="The other pods.")
    namespace_selector: LabelSelectorConfig | None = Field(default=None, description="Their namespaces.")
    namespaces: list[checks.DnsLabel] | None = Field(default=None, description="Their namespaces, by name.")
    match_label_keys: list[LabelKey] | None = Field(default=None, description="Label keys to match too.")
    mismatch_label_keys: list[LabelKey] | None = Field(default=None, description="Label keys to differ on.")


class WeightedPodAffinityTermConfig(KubernetesShape):
    weight: Weight = Field(description="1-100.")
    pod_affinity_term: PodAffinityTermConfig = Field(description="The pod affinity term.")


class PodAffinityConfig(KubernetesShape):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTermConfig] | None = Field(
        default=None, description="Terms that must hold."
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTermConfig] | None = Field(
        default=None, description="Terms that should hold."
    )


class AffinityConfig(KubernetesShape):
    REFERENCE_TYPE: ClassVar[str] = "Kubernetes Affinity"

    node_affinity: NodeAffinityConfig | None = Field(default=None, description="Node affinity.")
    pod_affinity: PodAffinityConfig | None = Field(default=None, description="Pod affinity.")
    pod_anti_affinity: PodAffinityConfig | None = Field(default=None, description="Pod anti-affinity.")


PLACEMENT_FIELDS = ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName")


class PlacementConfig(Section):
    """Kubernetes' scheduling fields of a pod; unset fields are left to the global placement (or out)."""

    node_selector: Labels | None = Field(
        default=None, description='Node labels the pods require, e.g. {"node-pool": "airflow"}.'
    )
    tolerations: list[TolerationConfig] | None = Field(
        default=None,
        description=(
            'Taints the pods tolerate, e.g. [{"key": "dedicated", "operator": "Equal", "value": "airflow", '
            '"effect": "NoSchedule"}].'
        ),
    )
    affinity: AffinityConfig | None = Field(
        default=None, description="nodeAffinity, podAffinity and podAntiAffinity, as in a pod spec."
    )
    topology_spread_constraints: list[TopologySpreadConstraintConfig] | None = Field(
        default=None,
        description=(
            "Spread constraints. Unset: workloads with more than one replica (or autoscaled) spread over "
            "kubernetes.io/hostname and topology.kubernetes.io/zone (ScheduleAnyway); [] turns that off."
        ),
    )
    priority_class_name: PriorityClassName | None = Field(
        default=None, description="PriorityClass of the pods (it must exist in the cluster)."
    )

    def merged_over(self, fallback: PlacementConfig) -> PlacementConfig:
        """This placement, each unset field taken from ``fallback``."""
        taken = {name: getattr(fallback, name) for name in type(self).model_fields if getattr(self, name) is None}
        return self.model_copy(update=taken)


class ComponentPlacementConfig(PlacementConfig):
    """A component's own placement: documented as one key (the fields are the global placement's)."""

    REFERENCE_TYPE: ClassVar[str] = "placement (the fields of `placement`)"


def component_placement(description: str) -> Any:
    """The ``placement`` field of a component section."""
    return Field(
        default_factory=ComponentPlacementConfig,
        description=f"{description}: fields set here replace the global `placement`'s (same fields).",
    )
