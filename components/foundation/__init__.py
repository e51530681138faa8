"""Layer 3: what Airflow stands on. The namespace, the identities and their RBAC, the generated
credentials, the network policies and the metadata database."""
