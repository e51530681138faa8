"""Every documented config key does something: changing it from its default changes what the program
registers. A key the program ignored would pass every other test; here it fails."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.config.model import StackConfig
from tests.support import canonical, evaluate_ok
from tools.config_reference import reference_rows

CELERY: dict[str, Any] = {"executor": "CeleryExecutor"}
KEDA: dict[str, Any] = {"executor": "CeleryExecutor", "keda": {"enabled": True}}
TRIGGERER_SCALED: dict[str, Any] = {"keda": {"enabled": True}, "triggerer": {"autoscaling": {"enabled": True}}}
KUBERNETES: dict[str, Any] = {"executor": "KubernetesExecutor"}
GIT: dict[str, Any] = {"dags": {"delivery": "git-sync", "gitSync": {"repo": "https://git.example.com/dags.git"}}}
BUNDLE: dict[str, Any] = {"dags": {"delivery": "git-bundle", "gitBundle": {"repo": "https://git.example.com/dags.git"}}}
EXTERNAL_URL = "postgresql+psycopg2://airflow:extPw0rd44@db.example.com:5432/airflow"
EXTERNAL: dict[str, Any] = {"database": {"mode": "external"}}
PUBLIC = "https://airflow.example.com"
INGRESS: dict[str, Any] = {
    "apiServer": {
        "baseUrl": PUBLIC,
        "ingress": {"enabled": True, "controllerNamespace": "ingress-nginx", "tls": {"secretName": "airflow-tls"}},
    }
}
ROUTE: dict[str, Any] = {
    "apiServer": {
        "baseUrl": PUBLIC,
        "httpRoute": {"enabled": True, "gatewayNamespace": "gateway-system", "parentRefs": [{"name": "shared"}]},
    }
}
OIDC: dict[str, Any] = {
    "auth": {
        "oidc": {
            "enabled": True,
            "issuerUrl": "https://login.example.com/realms/example",
            "clientId": "airflow",
            "clientSecret": "client-secret-1",
            "roleMapping": {"airflow-admins": ["Admin"]},
        }
    }
}
"""Set as a secret config value: the object holds the client secret."""
EXTERNAL_IPS: dict[str, Any] = {"externalServices": [{"name": "warehouse", "addresses": ["10.1.2.3"], "ports": [5432]}]}
EXTERNAL_DNS: dict[str, Any] = {
    "externalServices": [{"name": "warehouse", "addresses": ["db.corp.example.com"], "ports": [5432]}]
}
METRICS: dict[str, Any] = {"metrics": {"enabled": True}}
PROMETHEUS: dict[str, Any] = {"metrics": {"enabled": True, "prometheus": {"enabled": True}}}
ALERTS: dict[str, Any] = {**METRICS, "alerts": {"enabled": True}}
DASHBOARD: dict[str, Any] = {**METRICS, "dashboard": {"enabled": True}}
REMOTE_S3: dict[str, Any] = {"logging": {"remote": {"enabled": True, "baseFolder": "s3://logs/airflow"}}}
REMOTE_GCS: dict[str, Any] = {
    "logging": {"remote": {"enabled": True, "backend": "gcs", "baseFolder": "gs://logs/airflow"}}
}
LOGS_VOLUME: dict[str, Any] = {"logging": {"volume": {"enabled": True}}}
CLEANUP: dict[str, Any] = {"databaseCleanup": {"enabled": True}}
API_HPA: dict[str, Any] = {"apiServer": {"autoscaling": {"enabled": True}}}
NODE_POOL: dict[str, Any] = {"nodeSelector": {"node-pool": "airflow"}}
PGBOUNCER: dict[str, Any] = {"pgbouncer": {"enabled": True}}
RESOURCES = {"requests": {"cpu": "300m", "memory": "700Mi"}, "limits": {"cpu": "3", "memory": "5Gi"}}
LIMITS_ONLY = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "4", "memory": "6Gi"}}


def with_value(context: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """The context stack's overrides with ``key`` (dotted; ``list[]`` is the list's first item) set."""
    overrides = copy.deepcopy(context)
    target: dict[str, Any] = overrides
    parts = key.split(".")
    for part in parts[:-1]:
        if part.endswith("[]"):
            items = target.setdefault(part[:-2], [])
            if not items:
                items.append({"name": "default"})
            target = items[0]
        else:
            target = target.setdefault(part, {})
    target[parts[-1]] = value
    return overrides


# documented key -> (the stack it matters in, a value other than the default)
SAMPLES: dict[str, tuple[dict[str, Any], Any]] = {
    "namespace": ({}, "elsewhere"),
    "kubeContext": ({}, "kind-other"),
    "podSecurityLevel": ({}, "baseline"),
    "image.repository": ({}, "registry.example.com/airflow"),
    "image.tag": ({}, "3.3.1"),
    "image.digest": ({}, "sha256:" + "a" * 64),
    "image.pullPolicy": ({}, "Always"),
    "executor": ({}, "KubernetesExecutor"),
    "apiServer.replicas": ({}, 2),
    "apiServer.workers": ({}, 4),
    "apiServer.baseUrl": ({}, "https://airflow.example.com"),
    "apiServer.ingress.enabled": (with_value(INGRESS, "apiServer.ingress.enabled", False), True),
    "apiServer.ingress.className": (INGRESS, "traefik"),
    "apiServer.ingress.extraHosts": (INGRESS, ["airflow.internal.example.com"]),
    "apiServer.ingress.annotations": (INGRESS, {"nginx.ingress.kubernetes.io/proxy-body-size": "16m"}),
    "apiServer.ingress.controllerNamespace": (INGRESS, "traefik"),
    "apiServer.ingress.tls.secretName": (INGRESS, "other-tls"),
    "apiServer.ingress.tls.clusterIssuer": (INGRESS, "letsencrypt"),
    "apiServer.ingress.tls.issuer": (INGRESS, "local-ca"),
    "apiServer.httpRoute.enabled": (with_value(ROUTE, "apiServer.httpRoute.enabled", False), True),
    "apiServer.httpRoute.extraHostnames": (ROUTE, ["airflow.internal.example.com"]),
    "apiServer.httpRoute.gatewayNamespace": (ROUTE, "envoy-gateway-system"),
    "apiServer.httpRoute.parentRefs[].name": (ROUTE, "other-gateway"),
    "apiServer.httpRoute.parentRefs[].namespace": (ROUTE, "gateway-system"),
    "apiServer.httpRoute.parentRefs[].sectionName": (ROUTE, "https"),
    "auth.adminLogin": (OIDC, False),
    "auth.oidc.enabled": (with_value(OIDC, "auth.oidc.enabled", False), True),
    "auth.oidc.issuerUrl": (OIDC, "https://idp.example.com"),
    "auth.oidc.clientId": (OIDC, "airflow-prod"),
    "auth.oidc.clientSecret": (OIDC, "client-secret-2"),
    "auth.oidc.scopes": (OIDC, ["openid", "email", "profile", "groups"]),
    "auth.oidc.rolesClaim": (OIDC, "roles"),
    "auth.oidc.usernameClaim": (OIDC, "email"),
    "auth.oidc.roleMapping": (OIDC, {"airflow-admins": ["Admin"], "analysts": ["Viewer"]}),
    "auth.oidc.defaultRole": (OIDC, "Viewer"),
    "auth.oidc.providerName": (OIDC, "keycloak"),
    "pgbouncer.enabled": ({}, True),
    "pgbouncer.replicas": (PGBOUNCER, 3),
    "pgbouncer.image": (PGBOUNCER, "apache/airflow:airflow-pgbouncer-2024.01.19-1.21.0"),
    "pgbouncer.resources.requests": (PGBOUNCER, {"cpu": "100m", "memory": "96Mi"}),
    "pgbouncer.resources.limits": (PGBOUNCER, {"cpu": "1", "memory": "512Mi"}),
    "pgbouncer.poolMode": (PGBOUNCER, "session"),
    "pgbouncer.maxClientConnections": (PGBOUNCER, 500),
    "pgbouncer.poolSize": (PGBOUNCER, 20),
    "pgbouncer.databaseMaxConnections": (PGBOUNCER, 200),
    "externalServices[].name": (EXTERNAL_IPS, "lake"),
    "externalServices[].addresses": (EXTERNAL_IPS, ["10.1.2.4"]),
    "externalServices[].ports": (EXTERNAL_IPS, [5433]),
    "externalServices[].egressCidrs": (EXTERNAL_DNS, ["10.9.0.0/16"]),
    "apiServer.autoscaling.enabled": ({}, True),
    "apiServer.autoscaling.minReplicas": (API_HPA, 3),
    "apiServer.autoscaling.maxReplicas": (API_HPA, 8),
    "apiServer.autoscaling.cpuUtilization": (API_HPA, 60),
    "apiServer.autoscaling.memoryUtilization": (API_HPA, 80),
    "apiServer.placement": ({}, NODE_POOL),
    "scheduler.placement": ({}, NODE_POOL),
    "dagProcessor.placement": ({}, NODE_POOL),
    "triggerer.placement": ({}, NODE_POOL),
    "workers[].placement": (CELERY, NODE_POOL),
    "kubernetesExecutor.placement": (KUBERNETES, NODE_POOL),
    "database.placement": ({}, NODE_POOL),
    "redis.placement": (CELERY, NODE_POOL),
    "metrics.placement": (METRICS, NODE_POOL),
    "pgbouncer.placement": (PGBOUNCER, NODE_POOL),
    "databaseCleanup.placement": (CLEANUP, NODE_POOL),
    "taskPods.placement": ({}, {"priorityClassName": "airflow-tasks"}),
    "placement.nodeSelector": ({}, {"node-pool": "airflow"}),
    "placement.tolerations": ({}, [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]),
    "placement.affinity": (
        {},
        {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}
                ]
            }
        },
    ),
    "placement.topologySpreadConstraints": (
        {},
        [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}],
    ),
    "placement.priorityClassName": ({}, "airflow-standard"),
    "apiServer.resources.requests": ({}, RESOURCES["requests"]),
    "apiServer.resources.limits": ({}, LIMITS_ONLY["limits"]),
    "scheduler.replicas": ({}, 2),
    "scheduler.resources.requests": ({}, {"cpu": "600m", "memory": "1Gi"}),
    "scheduler.resources.limits": ({}, {"cpu": "2", "memory": "3Gi"}),
    "dagProcessor.replicas": ({}, 2),
    "dagProcessor.resources.requests": ({}, RESOURCES["requests"]),
    "dagProcessor.resources.limits": ({}, LIMITS_ONLY["limits"]),
    "triggerer.replicas": ({}, 2),
    "triggerer.capacity": ({}, 50),
    "triggerer.resources.requests": ({}, RESOURCES["requests"]),
    "triggerer.resources.limits": ({}, LIMITS_ONLY["limits"]),
    "triggerer.autoscaling.minReplicas": (TRIGGERER_SCALED, 2),
    "triggerer.autoscaling.maxReplicas": (TRIGGERER_SCALED, 5),
    "triggerer.autoscaling.pollingInterval": (TRIGGERER_SCALED, 45),
    "triggerer.autoscaling.cooldownPeriod": (TRIGGERER_SCALED, 120),
    "triggerer.autoscaling.enabled": (KEDA, True),
    "workers[].name": (CELERY, "reports"),
    "workers[].queues": (CELERY, ["reports"]),
    "workers[].concurrency": (CELERY, 3),
    "workers[].replicas": (CELERY, 2),
    "workers[].terminationGracePeriodSeconds": (CELERY, 900),
    "workers[].resources.requests": (CELERY, RESOURCES["requests"]),
    "workers[].resources.limits": (CELERY, LIMITS_ONLY["limits"]),
    "workers[].logServerResources.requests": (CELERY, {"cpu": "20m", "memory": "200Mi"}),
    "workers[].logServerResources.limits": (CELERY, {"cpu": "400m", "memory": "512Mi"}),
    "workers[].autoscaling.minReplicas": (KEDA, 1),
    "workers[].autoscaling.maxReplicas": (KEDA, 7),
    "workers[].autoscaling.pollingInterval": (KEDA, 20),
    "workers[].autoscaling.cooldownPeriod": (KEDA, 60),
    "keda.enabled": (CELERY, True),
    "keda.operatorNamespace": (KEDA, "autoscalers"),
    "keda.databaseRole": (KEDA, "keda_reader"),
    "kubernetesExecutor.deleteWorkerPods": (KUBERNETES, False),
    "kubernetesExecutor.deleteWorkerPodsOnFailure": (KUBERNETES, True),
    "kubernetesExecutor.maxTaskPods": (KUBERNETES, 4),
    "kubernetesExecutor.workerResources.requests": (KUBERNETES, RESOURCES["requests"]),
    "kubernetesExecutor.workerResources.limits": (KUBERNETES, LIMITS_ONLY["limits"]),
    "database.mode": ({}, "in-cluster"),  # special-cased below: external needs its URL
    "database.storageSize": ({}, "20Gi"),
    "database.storageClass": ({}, "fast-ssd"),
    "database.image": ({}, "postgres:17.6"),
    "database.databaseName": ({}, "metadata"),
    "database.user": ({}, "airflow-owner"),
    "database.resources.requests": ({}, RESOURCES["requests"]),
    "database.resources.limits": ({}, LIMITS_ONLY["limits"]),
    "externalDatabaseUrl": (EXTERNAL, None),  # special-cased below: a secret
    "redis.image": (CELERY, "redis:7.4.1"),
    "redis.resources.requests": (CELERY, {"cpu": "50m", "memory": "64Mi"}),
    "redis.resources.limits": (CELERY, {"cpu": "1", "memory": "512Mi"}),
    "redis.persistence.enabled": (CELERY, True),
    "redis.persistence.size": ({**CELERY, "redis": {"persistence": {"enabled": True}}}, "4Gi"),
    "redis.persistence.storageClass": ({**CELERY, "redis": {"persistence": {"enabled": True}}}, "fast-ssd"),
    "dags.delivery": ({}, "image"),
    "dags.gitSync.repo": (GIT, "https://git.example.com/other.git"),
    "dags.gitSync.ref": (GIT, "release"),
    "dags.gitSync.period": (GIT, "5m"),
    "dags.gitSync.subPath": (GIT, "airflow/dags"),
    "dags.gitSync.credentialsSecret": (GIT, "dags-token"),
    "dags.gitSync.image": (GIT, "registry.k8s.io/git-sync/git-sync:v4.6.0"),
    "dags.gitSync.resources.requests": (GIT, {"cpu": "20m", "memory": "32Mi"}),
    "dags.gitSync.resources.limits": (GIT, {"cpu": "400m", "memory": "512Mi"}),
    "dags.gitBundle.repo": (BUNDLE, "git@git.example.com:team/other.git"),
    "dags.gitBundle.ref": (BUNDLE, "release"),
    "dags.gitBundle.subPath": (BUNDLE, "airflow/dags"),
    "dags.gitBundle.credentialsSecret": (BUNDLE, "dags-git"),
    "dags.gitBundle.refreshInterval": (BUNDLE, 30),
    "dags.exampleResources": ({}, False),
    "taskPods.xcomSidecarImage": ({}, "alpine:3.23.0"),
    "auth.adminUsername": ({}, "operator"),
    "auth.adminEmail": ({}, "ops@example.com"),
    "network.enabled": ({}, False),
    "network.apiServerIngressFrom": ({}, [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]),
    "network.taskEgressTo": ({}, [{"ipBlock": {"cidr": "203.0.113.0/24"}}]),
    "network.kubeApiServerCidrs": ({}, ["192.0.2.10/32"]),
    "network.kubeApiServerPorts": ({}, [443]),
    "network.gitEgressPorts": (GIT, [443]),
    "network.gitEgressTo": (GIT, [{"ipBlock": {"cidr": "198.51.100.0/24"}}]),
    "rotation.apiSecretKey": ({}, 1),
    "rotation.jwtSecret": ({}, 1),
    "rotation.adminPassword": ({}, 1),
    "rotation.redisPassword": (CELERY, 1),
    "rotation.examplePassword": ({}, 1),
    "protectData": ({}, True),
    "migrationWaitTimeoutSeconds": ({}, 120),
    "parallelism": ({}, 9),
    "extraEnv": ({}, {"AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Paris"}),
    "extraEnvFromSecrets": ({}, ["team-env"]),
    "connections": ({}, None),  # special-cased below: a secret
    "metrics.enabled": ({}, True),
    "metrics.exporterImage": (METRICS, "prom/statsd-exporter:v0.29.0"),
    "metrics.exporterResources.requests": (METRICS, {"cpu": "20m", "memory": "32Mi"}),
    "metrics.exporterResources.limits": (METRICS, {"cpu": "500m", "memory": "256Mi"}),
    "metrics.scraperNamespace": (METRICS, "observability"),
    "metrics.prometheus.enabled": (METRICS, True),
    "metrics.prometheus.kind": (PROMETHEUS, "PodMonitor"),
    "metrics.prometheus.interval": (PROMETHEUS, "15s"),
    "metrics.prometheus.labels": (PROMETHEUS, {"release": "kube-prometheus-stack"}),
    "alerts.enabled": (METRICS, True),
    "alerts.heartbeatMissingMinutes": (ALERTS, 10),
    "alerts.queuedMinutes": (ALERTS, 60),
    "alerts.failureRatePercent": (ALERTS, 50),
    "alerts.failureWindow": (ALERTS, "1h"),
    "alerts.poolStarvationMinutes": (ALERTS, 20),
    "alerts.celeryBacklogMinutes": ({**CELERY, **ALERTS}, 30),
    "alerts.labels": (ALERTS, {"team": "data-platform"}),
    "dashboard.enabled": (METRICS, True),
    "dashboard.labels": (DASHBOARD, {"grafana_dashboard": "airflow"}),
    "logging.remote.enabled": ({"logging": {"remote": {"baseFolder": "s3://logs/airflow"}}}, True),
    "logging.remote.backend": (REMOTE_S3, None),  # special-cased below: the base folder's scheme follows it
    "logging.remote.baseFolder": (REMOTE_S3, "s3://other-bucket/logs"),
    "logging.remote.connectionId": (REMOTE_S3, "s3_logs"),
    "logging.remote.connectionSecret": (REMOTE_S3, "s3-log-connection"),
    "logging.remote.serviceAccountAnnotations": (
        REMOTE_S3,
        {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/airflow-logs"},
    ),
    "logging.remote.deleteLocalLogs": (REMOTE_S3, False),
    "logging.volume.enabled": ({}, True),
    "logging.volume.size": (LOGS_VOLUME, "50Gi"),
    "logging.volume.storageClass": (LOGS_VOLUME, "efs"),
    "logging.retentionDays": ({}, 3),
    "backup.enabled": ({}, False),
    "backup.keep": ({}, 10),
    "backup.size": ({}, "50Gi"),
    "backup.storageClass": ({}, "standard-rwo"),
    "backup.resources.requests": ({}, {"cpu": "50m", "memory": "128Mi"}),
    "backup.resources.limits": ({}, {"cpu": "2", "memory": "2Gi"}),
    "databaseCleanup.enabled": ({}, True),
    "databaseCleanup.schedule": (CLEANUP, "0 4 * * 0"),
    "databaseCleanup.retentionDays": (CLEANUP, 30),
    "databaseCleanup.resources.requests": (CLEANUP, {"cpu": "50m", "memory": "256Mi"}),
    "databaseCleanup.resources.limits": (CLEANUP, {"cpu": "2", "memory": "2Gi"}),
}


def documented_keys() -> set[str]:
    return {row.key for row in reference_rows(StackConfig) if row.type not in ("object", "list of objects")}


def test_every_documented_key_has_a_sample() -> None:
    assert set(SAMPLES) == documented_keys()


def resources_pair(key: str, value: Any, context: dict[str, Any]) -> dict[str, Any]:
    """A requests or limits map needs its partner, at least as large / at most as large."""
    if key.endswith(".requests"):
        return with_value(with_value(context, key.replace(".requests", ".limits"), RESOURCES["limits"]), key, value)
    return with_value(with_value(context, key.replace(".limits", ".requests"), LIMITS_ONLY["requests"]), key, value)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_changing_the_key_changes_what_is_registered(key: str) -> None:
    context, value = SAMPLES[key]
    secrets: dict[str, Any] = {}
    changed_secrets: dict[str, Any] = {}
    if key == "database.mode":
        before = {}
        after = with_value({}, key, "external")
        changed_secrets = {"externalDatabaseUrl": EXTERNAL_URL}
    elif key == "externalDatabaseUrl":
        before, after = context, context
        secrets = {"externalDatabaseUrl": EXTERNAL_URL}
        changed_secrets = {"externalDatabaseUrl": EXTERNAL_URL.replace("db.example.com", "db2.example.com")}
    elif key == "logging.remote.backend":
        before, after = REMOTE_S3, REMOTE_GCS
    elif key == "connections":
        before, after = context, context
        changed_secrets = {"connections": {"warehouse": "postgresql://u:p@dw.example.com:5432/dw"}}
    elif key.endswith((".requests", ".limits")):
        default = LIMITS_ONLY["requests"] if key.endswith(".requests") else RESOURCES["limits"]
        before = resources_pair(key, default, context)
        after = resources_pair(key, value, context)
    else:
        before, after = context, with_value(context, key, value)
    before, after = copy.deepcopy(before), copy.deepcopy(after)
    if "auth" in after and "oidc" in after["auth"]:
        # the auth object holds the client secret: Pulumi keeps it as a secret config value
        secrets = {**secrets, "auth": before.pop("auth")} if "auth" in before else secrets
        changed_secrets = {**(changed_secrets or secrets), "auth": after.pop("auth")}
    baseline = evaluate_ok("dev", secret_overrides=secrets or None, **before)
    changed = evaluate_ok("dev", secret_overrides=changed_secrets or secrets or None, **after)
    assert canonical(changed) != canonical(baseline), f"{key} changes nothing the program registers"
