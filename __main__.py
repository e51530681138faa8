"""airflow-k8s: Apache Airflow 3 on Kubernetes as one Pulumi stack. Wiring only; see components/."""

import pulumi

from components import config as stack_config
from components import dags
from components.airflow_config import AirflowConfig, AirflowConfigArgs
from components.api_server import ApiServer, ApiServerArgs, port_forward_command
from components.celery_workers import CeleryWorkers, CeleryWorkersArgs
from components.dag_processor import DagProcessor, DagProcessorArgs
from components.examples import ExampleResources, ExampleResourcesArgs
from components.keda import Autoscaling, AutoscalingArgs
from components.namespace import Namespace, NamespaceArgs
from components.network_policies import NetworkPolicies, NetworkPoliciesArgs
from components.pod_template import PodTemplate, PodTemplateArgs
from components.postgres import Postgres, PostgresArgs
from components.provider import kubernetes_provider
from components.rbac import Rbac, RbacArgs
from components.redis import Redis, RedisArgs
from components.rollout import ContentRegistry
from components.scheduler import Scheduler, SchedulerArgs
from components.secrets import StackSecrets, StackSecretsArgs
from components.triggerer import Triggerer, TriggererArgs

# Validate everything before anything is registered: the whole configuration, and the DAG folder
# when it ships as a ConfigMap.
config = stack_config.load_from_pulumi()
dag_bundle = dags.collect() if config.dags.delivery == "configmap" else None
dag_paths = dag_bundle.paths if dag_bundle is not None else None

provider = kubernetes_provider(config)
scope = pulumi.ResourceOptions(providers=[provider])
registry = ContentRegistry()

namespace = Namespace(
    "namespace", NamespaceArgs(config.namespace, config.pod_security_level, config.protect_data), scope
)
registry.namespace = namespace.resource
NetworkPolicies("network-policies", NetworkPoliciesArgs(config, namespace.resource), scope)
Rbac("rbac", RbacArgs(config, namespace.resource, registry), scope)
secrets = StackSecrets("secrets", StackSecretsArgs(config, namespace.resource, registry), scope)
AirflowConfig("airflow-config", AirflowConfigArgs(config, namespace.resource, registry), scope)
dags.DagDelivery("dags", dags.DagDeliveryArgs(config, namespace.resource, registry, dag_bundle), scope)
if config.dags.example_resources:
    ExampleResources("examples", ExampleResourcesArgs(config, namespace.resource, registry), scope)
if config.in_cluster_database:
    Postgres("postgres", PostgresArgs(config, registry), scope)
if config.uses_celery:
    Redis("redis", RedisArgs(config, registry), scope)
if config.uses_kubernetes_executor:
    PodTemplate("pod-template", PodTemplateArgs(config, registry, dag_paths), scope)

# Each workload waits for exactly the objects its pods reference (registry.dependencies).
api_server = ApiServer("api-server", ApiServerArgs(config, registry, dag_paths), scope)
Scheduler("scheduler", SchedulerArgs(config, registry, dag_paths), scope)
DagProcessor("dag-processor", DagProcessorArgs(config, registry, dag_paths), scope)
Triggerer("triggerer", TriggererArgs(config, registry, dag_paths), scope)
if config.uses_celery:
    CeleryWorkers("celery-workers", CeleryWorkersArgs(config, registry, dag_paths), scope)
Autoscaling("autoscaling", AutoscalingArgs(config, registry), scope)

pulumi.export("namespace", config.namespace)
pulumi.export("databaseHost", secrets.database_host)
pulumi.export("secretNames", sorted(registry.secrets))
pulumi.export("apiServerUrl", api_server.url)
pulumi.export("uiUrl", api_server.ui_url)
pulumi.export("portForwardCommand", port_forward_command(config))
pulumi.export("adminUsername", config.auth.admin_username)
pulumi.export("adminPassword", pulumi.Output.secret(secrets.admin_password))
