"""airflow-k8s: Apache Airflow 3 on Kubernetes as one Pulumi component.

The public entry points are ``components.stack`` (``AirflowStack``, ``AirflowStackArgs``) and
``components.config.model`` (``StackConfig`` and its sections). See docs/architecture.md for the layers.
"""
