"""airflow-k8s: Apache Airflow 3 on Kubernetes as one Pulumi stack. Wiring only; see components/."""

import pulumi

from components import config as stack_config
from components.namespace import Namespace, NamespaceArgs
from components.postgres import Postgres, PostgresArgs
from components.provider import kubernetes_provider
from components.rbac import Rbac, RbacArgs
from components.rollout import ContentRegistry
from components.secrets import StackSecrets, StackSecretsArgs

# Validate the whole configuration before anything is registered.
config = stack_config.load_from_pulumi()

provider = kubernetes_provider(config)
scope = pulumi.ResourceOptions(providers=[provider])
registry = ContentRegistry()

namespace = Namespace(
    "namespace",
    NamespaceArgs(config.namespace, config.pod_security_level, config.protect_data),
    scope,
)
rbac = Rbac("rbac", RbacArgs(config, namespace.resource), scope)
secrets = StackSecrets("secrets", StackSecretsArgs(config, namespace.resource, registry), scope)
database_host: str | pulumi.Output[str] = secrets.database_host
if config.in_cluster_database:
    Postgres(
        "postgres", PostgresArgs(config, namespace.resource, [*rbac.resources, *secrets.resources], registry), scope
    )

pulumi.export("namespace", config.namespace)
pulumi.export("databaseHost", database_host)
pulumi.export("secretNames", secrets.secret_names)
