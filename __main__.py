"""airflow-k8s: Apache Airflow 3 on Kubernetes as one Pulumi stack. Loads the config, creates the root."""

import pulumi

from components.config.loading import load_from_pulumi
from components.kube.provider import kubernetes_provider
from components.stack import AirflowStack, AirflowStackArgs

# Everything is validated before anything is registered: the whole config, then the DAG folder.
config = load_from_pulumi()
args = AirflowStackArgs(config)
provider = kubernetes_provider(config.kube_context)
stack = AirflowStack("airflow", args, pulumi.ResourceOptions(providers=[provider]))
for name, value in stack.outputs.items():
    pulumi.export(name, value)
