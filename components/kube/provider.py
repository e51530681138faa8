"""The stack's own Kubernetes provider, so its behaviour does not depend on ambient defaults."""

from __future__ import annotations

import pulumi


def kubernetes_provider(context: str | None, name: str = "kubernetes") -> pulumi.ProviderResource:
    """A provider for the kubeconfig ``context`` (None: the current context).

    Changing the context of an existing stack replaces this provider, and with it every object the
    stack manages: the objects are deleted from the old cluster and created in the new one.
    """
    from pulumi_kubernetes.provider import Provider

    return Provider(
        name,
        context=context,
        # Server-side apply (the default, made explicit): fields owned by others, such as the
        # replicas KEDA sets, are not taken over by `pulumi up`.
        enable_server_side_apply=True,
        # Update ConfigMaps and Secrets in place instead of replacing them (delete + create under the
        # same name) on every content change; pods roll through checksum annotations instead.
        enable_config_map_mutable=True,
        enable_secret_mutable=True,
    )
