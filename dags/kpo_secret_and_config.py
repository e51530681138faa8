"""Example 4: a pod gets credentials from a Kubernetes Secret and settings from a ConfigMap.

The Secret arrives twice: one key as an environment variable, the whole Secret as read-only files.
The ConfigMap's keys become environment variables. Both objects are created by the stack. The task
prints only lengths and the username, never a password.
"""

from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk import DAG
from kubernetes.client import models as k8s
from pod_defaults import BUSYBOX, hardened
from stack_context import StackContext

stack = StackContext.from_env()
CREDENTIALS_DIR = "/etc/example-credentials"

with DAG(
    dag_id="kpo_secret_and_config",
    description="Credentials from a Secret (env and file), settings from a ConfigMap",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "kubernetes-pod-operator", "secrets"],
):
    KubernetesPodOperator(
        task_id="use_secret_and_config",
        name="use-secret-and-config",
        image=BUSYBOX,
        cmds=[
            "sh",
            "-c",
            f'echo "user from file: $(cat {CREDENTIALS_DIR}/username)"; '
            'echo "password from env has ${#EXAMPLE_PASSWORD} characters"; '
            'echo "greeting from ConfigMap: $GREETING ($TARGET_ENVIRONMENT)"',
        ],
        secrets=[
            Secret("env", "EXAMPLE_PASSWORD", stack.example_secret, "password"),
            Secret("volume", CREDENTIALS_DIR, stack.example_secret),
        ],
        env_from=[k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=stack.example_config_map))],
        **hardened(stack),
    )
