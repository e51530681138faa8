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
rbac = Rbac("rbac", RbacArgs(config, namespace.resource), scope)
secrets = StackSecrets("secrets", StackSecretsArgs(config, namespace.resource, registry), scope)
airflow_config = AirflowConfig("airflow-config", AirflowConfigArgs(config, namespace.resource, registry), scope)
dag_delivery = dags.DagDelivery("dags", dags.DagDeliveryArgs(config, namespace.resource, registry, dag_bundle), scope)
prerequisites = [
    namespace.resource,
    *rbac.resources,
    *secrets.resources,
    *airflow_config.resources,
    *dag_delivery.resources,
]
if config.dags.example_resources:
    ExampleResources("examples", ExampleResourcesArgs(config, namespace.resource, registry), scope)
if config.in_cluster_database:
    Postgres(
        "postgres", PostgresArgs(config, namespace.resource, [*rbac.resources, *secrets.resources], registry), scope
    )
if config.uses_kubernetes_executor:
    pod_template = PodTemplate("pod-template", PodTemplateArgs(config, namespace.resource, registry, dag_paths), scope)
    prerequisites.append(pod_template.resource)
if config.uses_celery:
    redis = Redis("redis", RedisArgs(config, namespace.resource, rbac.resources, registry), scope)
    prerequisites += redis.resources

api_server = ApiServer("api-server", ApiServerArgs(config, registry, prerequisites, dag_paths), scope)
Scheduler("scheduler", SchedulerArgs(config, registry, prerequisites, dag_paths), scope)
DagProcessor("dag-processor", DagProcessorArgs(config, registry, prerequisites, dag_paths), scope)
triggerer = Triggerer("triggerer", TriggererArgs(config, registry, prerequisites, dag_paths), scope)
scaled = [*triggerer.resources]
if config.uses_celery:
    workers = CeleryWorkers("celery-workers", CeleryWorkersArgs(config, registry, prerequisites, dag_paths), scope)
    scaled += workers.resources
Autoscaling("autoscaling", AutoscalingArgs(config, namespace.resource, [*secrets.resources, *scaled]), scope)

pulumi.export("namespace", config.namespace)
pulumi.export("databaseHost", secrets.database_host)
pulumi.export("secretNames", sorted(registry.secrets))
pulumi.export("apiServerUrl", api_server.url)
pulumi.export("portForwardCommand", port_forward_command(config))
pulumi.export("adminUsername", config.auth.admin_username)
pulumi.export("adminPassword", pulumi.Output.secret(secrets.admin_password))
