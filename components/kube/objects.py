"""The one place Kubernetes objects are registered with Pulumi.

Spec builders across the program return typed, Kubernetes-shaped dicts (camelCase, exactly what
``kubectl apply`` would take; see ``manifest_types.pyi``). :func:`register` hands such a manifest to the
pulumi-kubernetes provider as the SDK class of its kind would, without importing the SDK's generated
modules (importing them costs more CPU than evaluating the whole program).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pulumi

from components.kube.sdk_aliases import SDK_ALIASES

if TYPE_CHECKING:
    from components.kube.manifest_types import Manifest

SECRET_FIELDS = {("v1", "Secret"): ["data", "stringData"]}
"""Fields the pulumi-kubernetes SDK always treats as secret for a kind, as inputs and as outputs."""


_ALIASES = {key: [pulumi.Alias(type_=token) for token in tokens] for key, tokens in SDK_ALIASES.items() if tokens}
"""The SDK's aliases as Alias objects, made once."""


def type_token(api_version: str, kind: str) -> str:
    """The Pulumi type of a Kubernetes object, as pulumi-kubernetes names it (core group: "core")."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


class KubernetesObject(pulumi.CustomResource):
    """Any Kubernetes object, registered as the pulumi-kubernetes class of its kind registers it.

    Same type token, same properties, same secret outputs and the same ``aliases`` (the kind's older
    API versions, so an API-version move is an update, not a replacement), handled by the stack's
    explicit provider with the same semantics. tests/test_kube_objects.py checks the parity with the
    SDK classes kind by kind.
    """

    def __init__(
        self, resource_name: str, manifest: Manifest | Mapping[str, Any], opts: pulumi.ResourceOptions
    ) -> None:
        key = (str(manifest["apiVersion"]), str(manifest["kind"]))
        props: dict[str, Any] = dict(manifest)
        extra: dict[str, Any] = {}
        if key in SECRET_FIELDS:
            for field in SECRET_FIELDS[key]:
                if props.get(field) is not None:
                    props[field] = pulumi.Output.secret(props[field])
            extra["additional_secret_outputs"] = [*(opts.additional_secret_outputs or []), *SECRET_FIELDS[key]]
        if key in _ALIASES:
            extra["aliases"] = [*(opts.aliases or []), *_ALIASES[key]]
        if extra:
            # One copy of the options, not a merge per option: this runs for every object.
            opts = copy.copy(opts)
            for option, value in extra.items():
                setattr(opts, option, value)
        super().__init__(type_token(*key), resource_name, props, opts)

    def output(self, field: str) -> pulumi.Output[Any]:
        """One of the object's fields as the provider returns it (e.g. ``metadata``)."""
        found: pulumi.Output[Any] = getattr(self, field)
        return found


def register(manifest: Manifest, opts: pulumi.ResourceOptions) -> KubernetesObject:
    """Register one Kubernetes object. Its Pulumi name is its Kubernetes name (unique per kind)."""
    return KubernetesObject(manifest["metadata"]["name"], manifest, opts)


def child_opts(
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    **options: Any,
) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), **options)
