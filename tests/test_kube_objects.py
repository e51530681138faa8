"""Registration parity: the program's thin KubernetesObject registers every object exactly as the
pulumi-kubernetes SDK class of its kind would (type token, inputs, secret outputs)."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pulumi

from components.kube.objects import KubernetesObject, type_token
from tests.support import Evaluation
from tools.mock_engine import evaluate, reveal

SDK_CLASSES = {
    ("v1", "Namespace"): ("pulumi_kubernetes.core.v1", "Namespace"),
    ("v1", "ServiceAccount"): ("pulumi_kubernetes.core.v1", "ServiceAccount"),
    ("v1", "Secret"): ("pulumi_kubernetes.core.v1", "Secret"),
    ("v1", "ConfigMap"): ("pulumi_kubernetes.core.v1", "ConfigMap"),
    ("v1", "Service"): ("pulumi_kubernetes.core.v1", "Service"),
    ("v1", "PersistentVolumeClaim"): ("pulumi_kubernetes.core.v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"): ("pulumi_kubernetes.apps.v1", "Deployment"),
    ("apps/v1", "StatefulSet"): ("pulumi_kubernetes.apps.v1", "StatefulSet"),
    ("batch/v1", "CronJob"): ("pulumi_kubernetes.batch.v1", "CronJob"),
    ("batch/v1", "Job"): ("pulumi_kubernetes.batch.v1", "Job"),
    ("rbac.authorization.k8s.io/v1", "Role"): ("pulumi_kubernetes.rbac.v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("pulumi_kubernetes.rbac.v1", "RoleBinding"),
    ("policy/v1", "PodDisruptionBudget"): ("pulumi_kubernetes.policy.v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("pulumi_kubernetes.autoscaling.v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("pulumi_kubernetes.networking.v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"): ("pulumi_kubernetes.networking.v1", "Ingress"),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("pulumi_kubernetes.discovery.v1", "EndpointSlice"),
}


def sdk_register(manifest: dict[str, Any]) -> None:
    key = (manifest["apiVersion"], manifest["kind"])
    name = manifest["metadata"]["name"]
    if key in SDK_CLASSES:
        module, cls = SDK_CLASSES[key]
        fields = {
            re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v
            for k, v in manifest.items()
            if k not in ("apiVersion", "kind")
        }
        getattr(importlib.import_module(module), cls)(name, **fields)
    else:
        from pulumi_kubernetes.apiextensions import CustomResource

        extra = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
        CustomResource(
            name, api_version=manifest["apiVersion"], kind=manifest["kind"], metadata=manifest["metadata"], **extra
        )


def test_every_object_registers_as_the_sdk_class_of_its_kind(prod: Evaluation) -> None:
    manifests = [reveal(obj) for obj in prod.kubernetes_objects()]
    assert {(m["apiVersion"], m["kind"]) for m in manifests} >= set(SDK_CLASSES)

    def through_sdk() -> None:
        for manifest in manifests:
            sdk_register(manifest)

    def through_program() -> None:
        for manifest in manifests:
            KubernetesObject(manifest["metadata"]["name"], manifest, pulumi.ResourceOptions())

    sdk, ours = evaluate({}, program=through_sdk), evaluate({}, program=through_program)
    assert sdk.error is None and ours.error is None
    by_sdk = {(r.type, r.name): r for r in sdk.registrations}
    by_ours = {(r.type, r.name): r for r in ours.registrations}
    assert set(by_sdk) == set(by_ours)
    assert any(r.aliases for r in sdk.registrations), "the SDK declares aliases for some kinds (e.g. Deployment)"
    for key, expected in by_sdk.items():
        actual = by_ours[key]
        # same values, marked secret at the same places
        assert actual.inputs == expected.inputs, key
        assert sorted(actual.additional_secret_outputs) == sorted(expected.additional_secret_outputs), key
        # the same aliases: an API-version move of the kind updates the object in place
        assert actual.aliases == expected.aliases, key


def test_type_tokens_follow_pulumi_kubernetes() -> None:
    assert type_token("v1", "Secret") == "kubernetes:core/v1:Secret"
    assert type_token("apps/v1", "Deployment") == "kubernetes:apps/v1:Deployment"
    assert type_token("keda.sh/v1alpha1", "ScaledObject") == "kubernetes:keda.sh/v1alpha1:ScaledObject"
