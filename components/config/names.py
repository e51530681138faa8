"""One source of truth for object names, labels, ports and the environment the stack manages.

Every Kubernetes object gets an explicit, stable name from here (stable DNS, stable references);
components, DAG contract tests and the renderer import these instead of repeating literals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from dags import stack_context

if TYPE_CHECKING:
    from pulumi import Output

    from components.kube.manifest_types import NamedObjectMeta

# --- workloads and their identities ---
API_SERVER = "airflow-api-server"
SCHEDULER = "airflow-scheduler"
DAG_PROCESSOR = "airflow-dag-processor"
TRIGGERER = "airflow-triggerer"
WORKER = "airflow-worker"
"""Identity of Celery workers and KubernetesExecutor task pods."""
TASK_POD = "airflow-task"
"""Identity of KubernetesPodOperator pods: no RBAC, no token."""
POSTGRES = "airflow-postgres"
REDIS = "airflow-redis"
DATABASE_CLEANUP = "airflow-database-cleanup"
"""The `airflow db clean` CronJob and its identity."""
STATSD = "airflow-statsd"
"""The StatsD exporter: its Deployment, Service, identity and mapping ConfigMap."""
PGBOUNCER = "airflow-pgbouncer"
"""PgBouncer: its Deployment, Service, identity and disruption budget."""
DATABASE_BACKUP = "airflow-database-backup"
"""The pre-upgrade backup: its identity, and the prefix of its Job's name (one Job per Airflow image)."""
BACKUPS_CLAIM = "airflow-database-backups"
"""The volume claim the pre-upgrade backups are kept on."""
ALERT_RULES = "airflow-alert-rules"
"""The alert rules: a ConfigMap with the plain rules file, and the PrometheusRule."""
ALERT_RULES_KEY = "airflow-rules.yaml"
DASHBOARD = "airflow-dashboard"
"""The Grafana dashboard ConfigMap."""
DASHBOARD_KEY = "airflow.json"
STACK_SERVICES = (API_SERVER, POSTGRES, REDIS, STATSD, PGBOUNCER)
"""Service names the stack itself uses (external services may not take them)."""
POD_LAUNCHER_ROLE = "airflow-pod-launcher"
POD_LOG_READER_ROLE = "airflow-pod-log-reader"


def worker_set(name: str) -> str:
    return f"{WORKER}-{name}"


def role_binding(identity: str, role: str) -> str:
    return f"{identity}-{role.removeprefix('airflow-')}"


# --- Secrets and their keys ---
METADATA_SECRET = "airflow-metadata"
METADATA_CONNECTION_KEY = "connection"
"""SQLAlchemy URL of the database itself (postgresql+psycopg2://): migrations, and every Airflow process
without PgBouncer."""
METADATA_POOLED_CONNECTION_KEY = "pooled-connection"
"""SQLAlchemy URL through PgBouncer (pgbouncer.enabled): what Airflow's processes use."""
METADATA_SCRAM_VERIFIER_KEY = "scram-verifier"
"""The database user's SCRAM-SHA-256 verifier (pgbouncer.enabled): the migration step sets it on the role,
so PgBouncer's copy and PostgreSQL's are identical (SCRAM pass-through needs that)."""
PGBOUNCER_SECRET = "airflow-pgbouncer-config"
PGBOUNCER_INI_KEY = "pgbouncer.ini"
PGBOUNCER_USERLIST_KEY = "userlist.txt"
KEDA_DATABASE_SECRET = "airflow-keda-database"
"""KEDA's own read-only database login: its password (for the migration step) and its URL (for KEDA)."""
KEDA_PASSWORD_KEY = "password"
KEDA_CONNECTION_KEY = "connection"

POSTGRES_SECRET = "airflow-postgres-credentials"
POSTGRES_PASSWORD_KEY = "password"

KEYS_SECRET = "airflow-keys"
FERNET_KEY = "fernet-key"
API_SECRET_KEY = "api-secret-key"
JWT_SECRET_KEY = "jwt-secret"

ADMIN_SECRET = "airflow-admin"
ADMIN_USERNAME_KEY = "username"
ADMIN_PASSWORD_KEY = "password"

CONNECTIONS_SECRET = "airflow-connections"

OIDC_SECRET = "airflow-oidc"
OIDC_CLIENT_SECRET_KEY = "client-secret"

API_SERVER_TLS_SECRET = "airflow-api-server-tls"
"""The TLS Secret cert-manager writes for the Ingress (when tls.secretName is not set)."""

REDIS_SECRET = "airflow-redis"
REDIS_PASSWORD_KEY = "password"
REDIS_CONFIG_KEY = "redis.conf"
REDIS_BROKER_URL_KEY = "broker-url"

REMOTE_LOG_CONNECTION_KEY = "connection"
"""The key of logging.remote.connectionSecret that holds the log store's Airflow connection."""

EXAMPLE_SECRET = "airflow-example-credentials"
EXAMPLE_CONFIG_MAP = "airflow-example-settings"

# --- ConfigMaps ---
AIRFLOW_CONFIG_MAP = "airflow-config"
AIRFLOW_CFG_KEY = "airflow.cfg"
SCRIPTS_CONFIG_MAP = "airflow-scripts"
POD_TEMPLATE_CONFIG_MAP = "airflow-pod-template"
POD_TEMPLATE_KEY = "pod_template.yaml"
DAGS_CONFIG_MAP = "airflow-dags"
GIT_BUNDLE_NAME = "dags"
"""The Git DAG bundle's name in Airflow (dag_bundle_config_list; DAGs and versions show it)."""
GIT_BUNDLE_CONNECTION_ID = "airflow_k8s_dags_git"
"""The Airflow connection holding the Git credentials (dags.gitBundle.credentialsSecret)."""
GIT_BUNDLE_CONNECTION_KEY = "connection"
"""The key of dags.gitBundle.credentialsSecret holding that connection (JSON or URI)."""
LOGS_CLAIM = "airflow-logs"
"""The shared task-logs volume claim (logging.volume)."""
WEBSERVER_CONFIG_MAP = "airflow-webserver-config"
WEBSERVER_CONFIG_KEY = "webserver_config.py"

# --- KEDA ---
KEDA_TRIGGER_AUTH = "airflow-keda-postgres"
KEDA_CONNECTION_PARAMETER = "connection"
WORKER_SET_LABEL = "airflow-k8s/worker-set"
"""Tells the pods of one worker set from another's (part of their Deployment's selector)."""

# --- ports ---
API_SERVER_PORT = 8080
SCHEDULER_HEALTH_PORT = 8974
WORKER_LOG_PORT = 8793
TRIGGERER_LOG_PORT = 8794
POSTGRES_PORT = 5432
REDIS_PORT = 6379
STATSD_PORT = 9125
METRICS_PORT = 9102
PGBOUNCER_PORT = 6432

# --- labels ---
PART_OF = "airflow"
MANAGED_BY = "pulumi"


class Component:
    """Values of app.kubernetes.io/component."""

    API_SERVER = "api-server"
    SCHEDULER = "scheduler"
    DAG_PROCESSOR = "dag-processor"
    TRIGGERER = "triggerer"
    WORKER = "worker"
    KUBERNETES_TASK = "kubernetes-executor-task"
    POSTGRES = "postgres"
    REDIS = "redis"
    RBAC = "rbac"
    SECRETS = "secrets"
    CONFIG = "config"
    NAMESPACE = "namespace"
    NETWORK = "network-policy"
    AUTOSCALING = "autoscaling"
    DAGS = "dags"
    EXAMPLES = "examples"
    EXPOSURE = "exposure"
    DATABASE_CLEANUP = "database-cleanup"
    DATABASE_BACKUP = "database-backup"
    METRICS = "metrics"
    ALERTS = "alerts"
    DASHBOARD = "dashboard"
    LOGS = "logs"
    EXTERNAL_SERVICE = "external-service"
    PGBOUNCER = "pgbouncer"


def app_name(component: str) -> str:
    """app.kubernetes.io/name: the application the object belongs to."""
    return {Component.POSTGRES: "postgres", Component.REDIS: "redis", Component.PGBOUNCER: "pgbouncer"}.get(
        component, "airflow"
    )


def selector_labels(component: str, instance: str, worker_set: str | None = None) -> dict[str, str]:
    """The immutable subset used in selectors; never change it (Deployment selectors cannot change)."""
    selector = {
        "app.kubernetes.io/name": app_name(component),
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
    }
    if worker_set is not None:
        selector[WORKER_SET_LABEL] = worker_set
    return selector


def labels(component: str, instance: str, worker_set: str | None = None) -> dict[str, str]:
    return {
        **selector_labels(component, instance, worker_set),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def metadata(
    name: str,
    component: str,
    instance: str,
    namespace: str | None = None,
    annotations: Mapping[str, str | Output[str]] | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> NamedObjectMeta:
    """An object's metadata: its explicit name and the app.kubernetes.io/* labels."""
    meta: NamedObjectMeta = {"name": name, "labels": {**labels(component, instance), **(extra_labels or {})}}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def dns_name(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


class AirflowEnv:
    """Environment variables the stack sets in Airflow containers (users may not override them)."""

    EXECUTOR = "AIRFLOW__CORE__EXECUTOR"
    SQL_ALCHEMY_CONN = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
    FERNET_KEY = "AIRFLOW__CORE__FERNET_KEY"
    API_SECRET_KEY = "AIRFLOW__API__SECRET_KEY"
    JWT_SECRET = "AIRFLOW__API_AUTH__JWT_SECRET"
    API_BASE_URL = "AIRFLOW__API__BASE_URL"
    EXECUTION_API_SERVER_URL = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
    EXECUTION_API_TIMEOUT = "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"
    LOAD_EXAMPLES = "AIRFLOW__CORE__LOAD_EXAMPLES"
    PARALLELISM = "AIRFLOW__CORE__PARALLELISM"
    AUTH_MANAGER = "AIRFLOW__CORE__AUTH_MANAGER"
    DAGS_FOLDER = "AIRFLOW__CORE__DAGS_FOLDER"
    DAG_BUNDLE_CONFIG_LIST = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"
    DAG_BUNDLE_STORAGE_PATH = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH"
    AIRFLOW_CONFIG = "AIRFLOW_CONFIG"
    HOSTNAME_CALLABLE = "AIRFLOW__CORE__HOSTNAME_CALLABLE"
    CONNECTION_CHECK_MAX_COUNT = "CONNECTION_CHECK_MAX_COUNT"
    API_WORKERS = "AIRFLOW__API__WORKERS"
    SCHEDULER_HEALTH_CHECK = "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"
    SCHEDULER_HEALTH_PORT = "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"
    TRIGGERER_CAPACITY = "AIRFLOW__TRIGGERER__CAPACITY"
    POD_TEMPLATE_FILE = "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"
    KUBERNETES_NAMESPACE = "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"
    DELETE_WORKER_PODS = "AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS"
    DELETE_WORKER_PODS_ON_FAILURE = "AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS_ON_FAILURE"
    CELERY_BROKER_URL = "AIRFLOW__CELERY__BROKER_URL"
    CELERY_RESULT_BACKEND = "AIRFLOW__CELERY__RESULT_BACKEND"
    CELERY_WORKER_CONCURRENCY = "AIRFLOW__CELERY__WORKER_CONCURRENCY"
    KUBERNETES_CONNECTION = "AIRFLOW_CONN_KUBERNETES_DEFAULT"
    ADMIN_USERNAME = "AIRFLOW_K8S_ADMIN_USERNAME"
    ADMIN_PASSWORD_FILE = "AIRFLOW_K8S_ADMIN_PASSWORD_FILE"
    ADMIN_EMAIL = "AIRFLOW_K8S_ADMIN_EMAIL"
    MIGRATION_WAIT_TIMEOUT = "AIRFLOW_K8S_MIGRATION_WAIT_TIMEOUT"
    KEDA_ROLE = "AIRFLOW_K8S_KEDA_ROLE"
    KEDA_PASSWORD_FILE = "AIRFLOW_K8S_KEDA_PASSWORD_FILE"
    SCRAM_VERIFIER_FILE = "AIRFLOW_K8S_SCRAM_VERIFIER_FILE"
    WORKER_QUEUES = "AIRFLOW_K8S_WORKER_QUEUES"
    DRAIN_SECONDS = "AIRFLOW_K8S_DRAIN_SECONDS"
    OIDC_CLIENT_SECRET_FILE = "AIRFLOW_K8S_OIDC_CLIENT_SECRET_FILE"
    FAB_CONFIG_FILE = "AIRFLOW__FAB__CONFIG_FILE"
    FAB_PROXY_FIX = "AIRFLOW__FAB__ENABLE_PROXY_FIX"
    DB_CLEAN_RETENTION_DAYS = "AIRFLOW_K8S_DB_CLEAN_RETENTION_DAYS"
    LOG_RETENTION_DAYS = "AIRFLOW_K8S_LOG_RETENTION_DAYS"
    REMOTE_LOGGING = "AIRFLOW__LOGGING__REMOTE_LOGGING"
    REMOTE_BASE_LOG_FOLDER = "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"
    REMOTE_LOG_CONN_ID = "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"
    DELETE_LOCAL_LOGS = "AIRFLOW__LOGGING__DELETE_LOCAL_LOGS"
    STATSD_ON = "AIRFLOW__METRICS__STATSD_ON"
    STATSD_HOST = "AIRFLOW__METRICS__STATSD_HOST"
    STATSD_PORT = "AIRFLOW__METRICS__STATSD_PORT"
    STATSD_PREFIX = "AIRFLOW__METRICS__STATSD_PREFIX"
    STATSD_INFLUXDB_ENABLED = "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED"
    # the contract with DAGs (dags/stack_context.py)
    NAMESPACE = stack_context.ENV_NAMESPACE
    TASK_SERVICE_ACCOUNT = stack_context.ENV_TASK_SERVICE_ACCOUNT
    API_SERVER_URL = stack_context.ENV_API_SERVER_URL
    EXAMPLE_SECRET = stack_context.ENV_EXAMPLE_SECRET
    EXAMPLE_CONFIG_MAP = stack_context.ENV_EXAMPLE_CONFIG_MAP
    TASK_POD_PLACEMENT = stack_context.ENV_TASK_POD_PLACEMENT


_MANAGED = [value for name, value in vars(AirflowEnv).items() if name.isupper() and isinstance(value, str)]
STACK_MANAGED_ENV = frozenset(
    [*_MANAGED, *(f"{value}_CMD" for value in _MANAGED), *(f"{value}_SECRET" for value in _MANAGED)]
)
