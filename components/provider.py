"""The stack's own Kubernetes provider, so its behaviour does not depend on ambient defaults."""

from __future__ import annotations

import pulumi

from components.config import StackConfig


def kubernetes_provider(config: StackConfig) -> pulumi.ProviderResource:
    from pulumi_kubernetes.provider import Provider

    return Provider(
        "kubernetes",
        context=config.kube_context,
        # Server-side apply (the default, made explicit): fields owned by others, such as the
        # replicas KEDA sets, are not taken over by `pulumi up`.
        enable_server_side_apply=True,
        # Update ConfigMaps and Secrets in place instead of replacing them (delete + create under the
        # same name) on every content change; pods roll through checksum annotations instead.
        enable_config_map_mutable=True,
        enable_secret_mutable=True,
    )
