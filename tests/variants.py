"""The stack configurations the offline checks cover: the committed stacks and the shapes they do not show."""

from __future__ import annotations

from typing import Any

from tests.support import Evaluation, evaluate_ok

EXTERNAL_URL = "postgresql+psycopg2://airflow:extSentinelPw91@db.example.com:5432/airflow"
CONNECTION_URI = "postgresql://etl:connSentinelPw73@warehouse.example.com:5432/dw"
OIDC_CLIENT_SECRET = "oidcSentinelSecret58"

PLACEMENT: dict[str, Any] = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "airflow", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {"matchExpressions": [{"key": "node-pool", "operator": "In", "values": ["airflow"]}]},
                }
            ]
        }
    },
    "priorityClassName": "airflow-standard",
}
"""A global placement with every kind of field (the PriorityClasses exist on the test API server)."""

# name -> (stack file, overrides, secret overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "dev": ("dev", {}, {}),
    "prod": ("prod", {}, {}),
    "kubernetes-executor": ("dev", {"executor": "KubernetesExecutor"}, {}),
    "celery": ("dev", {"executor": "CeleryExecutor"}, {}),
    "celery-kubernetes": ("dev", {"executor": "CeleryExecutor,KubernetesExecutor"}, {}),
    "celery-keda": (
        "dev",
        {
            "executor": "CeleryExecutor",
            "keda": {"enabled": True},
            "triggerer": {"autoscaling": {"enabled": True}},
            "redis": {"persistence": {"enabled": True}},
            "scheduler": {"replicas": 2},
        },
        {},
    ),
    "external-database-connections-git-ssh": (
        "dev",
        {
            "database": {"mode": "external"},
            "dags": {
                "delivery": "git-sync",
                "gitSync": {"repo": "git@github.com:example/dags.git", "credentialsSecret": "dags-deploy-key"},
            },
        },
        {"externalDatabaseUrl": EXTERNAL_URL, "connections": {"warehouse": CONNECTION_URI}},
    ),
    "http-route-sso-subpath": (
        "dev",
        {
            "apiServer": {
                "baseUrl": "https://data.example.com/airflow",
                "httpRoute": {
                    "enabled": True,
                    "gatewayNamespace": "envoy-gateway-system",
                    "parentRefs": [{"name": "shared", "namespace": "gateway-system", "sectionName": "https"}],
                },
            },
            "externalServices": [
                {
                    "name": "lake",
                    "addresses": ["lake.corp.example.com"],
                    "ports": [443],
                    "egressCidrs": ["10.8.0.0/16"],
                },
                {"name": "warehouse", "addresses": ["10.40.0.15", "fd00::15"], "ports": [5432, 5433]},
            ],
        },
        {
            "auth": {
                "adminLogin": False,
                "oidc": {
                    "enabled": True,
                    "issuerUrl": "https://login.example.com/realms/data",
                    "clientId": "airflow",
                    "clientSecret": OIDC_CLIENT_SECRET,
                    "roleMapping": {"airflow-admins": ["Admin"], "analysts": ["Viewer"]},
                },
            }
        },
    ),
    "git-https-no-network-policies": (
        "prod",
        {
            "dags": {
                "delivery": "git-sync",
                "gitSync": {"repo": "https://git.example.com/dags.git", "credentialsSecret": "dags-token"},
            },
            "network": {"enabled": False},
        },
        {},
    ),
    # observability without the Prometheus operator's ServiceMonitor: a PodMonitor, and the logs volume
    "podmonitor-logs-volume-cleanup": (
        "dev",
        {
            "executor": "CeleryExecutor,KubernetesExecutor",
            "metrics": {"enabled": True, "prometheus": {"enabled": True, "kind": "PodMonitor"}},
            "alerts": {"enabled": True, "labels": {"team": "data"}},
            "dashboard": {"enabled": True},
            "logging": {"volume": {"enabled": True, "storageClass": "efs"}, "retentionDays": 7},
            "databaseCleanup": {"enabled": True, "retentionDays": 30},
        },
        {},
    ),
    # remote logs in GCS with a connection from an existing Secret; metrics without any monitor
    "gcs-logs-metrics-only": (
        "dev",
        {
            "executor": "KubernetesExecutor",
            "metrics": {"enabled": True},
            "alerts": {"enabled": True},
            "logging": {
                "remote": {
                    "enabled": True,
                    "backend": "gcs",
                    "baseFolder": "gs://example-logs/dev",
                    "connectionSecret": "gcs-log-connection",
                }
            },
        },
        {},
    ),
    # placement everywhere (global, per component, task pods), the default spread, the api-server's HPA
    "placement-hpa": (
        "dev",
        {
            "executor": "CeleryExecutor,KubernetesExecutor",
            "keda": {"enabled": True},
            "metrics": {"enabled": True},
            "databaseCleanup": {"enabled": True},
            "placement": PLACEMENT,
            "apiServer": {
                "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5, "memoryUtilization": 80}
            },
            "scheduler": {
                "replicas": 2,
                "placement": {
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "scheduler"}},
                                }
                            ]
                        }
                    }
                },
            },
            "database": {
                "placement": {
                    "nodeSelector": {"node-pool": "stateful"},
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "topology.kubernetes.io/zone",
                                                "operator": "In",
                                                "values": ["zone-a"],
                                            },
                                            {"key": "cpu-generation", "operator": "Gt", "values": ["3"]},
                                        ]
                                    }
                                ]
                            }
                        }
                    },
                }
            },
            "workers": [
                {
                    "name": "default",
                    "placement": {
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 2,
                                "topologyKey": "topology.kubernetes.io/zone",
                                "whenUnsatisfiable": "DoNotSchedule",
                                "minDomains": 2,
                                "labelSelector": {
                                    "matchExpressions": [
                                        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["worker"]}
                                    ]
                                },
                                "matchLabelKeys": ["pod-template-hash"],
                                "nodeTaintsPolicy": "Honor",
                            }
                        ]
                    },
                }
            ],
            "taskPods": {"placement": {"priorityClassName": "airflow-tasks", "tolerations": [{"operator": "Exists"}]}},
            "kubernetesExecutor": {"placement": {"nodeSelector": {"node-pool": "tasks"}}},
        },
        {},
    ),
}


def evaluate_variant(name: str) -> Evaluation:
    """A variant's evaluation, made once per test process (see tests/support.evaluate_ok)."""
    stack, overrides, secret_overrides = VARIANTS[name]
    return evaluate_ok(stack, secret_overrides or None, **overrides)
