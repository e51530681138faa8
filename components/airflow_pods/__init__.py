"""Layer 4: how an Airflow pod is built. Pure functions of the stack config: the environment (Airflow's
only configuration source), credentials as mounted files, DAG sources, containers, probes and the
hardened pod; plus the thin registration of an Airflow workload."""
