"""Layer 5: Airflow's own services. The api-server, scheduler, dag-processor and triggerer, and what
they mount: Airflow's settings and scripts, the DAG ConfigMap, the KubernetesExecutor's task pod
template and the example DAGs' resources."""
