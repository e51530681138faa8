"""Liveness of this pod's dag-processor or triggerer: what `airflow jobs check --job-type TYPE --local` checks,
in one query and without starting Airflow (the CLI needs seconds of CPU per probe, more under a limit).

Alive: a job of that type, in state running, recorded with this pod's host name (the stack's
hostname_callable, airflow.utils.net.get_host_ip_address: the pod's IP), whose last heartbeat is within
Airflow's health check threshold of that job type (the same settings `jobs check` reads, default 30 s).
"""

from __future__ import annotations

import os
import socket
import sys

import metadata_db

THRESHOLDS = {
    # job type -> (the setting's environment variable, Airflow's default)
    "DagProcessorJob": ("AIRFLOW__DAG_PROCESSOR__HEALTH_CHECK_THRESHOLD", 30.0),
    "TriggererJob": ("AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD", 30.0),
}


def host_name() -> str:
    """airflow.utils.net.get_host_ip_address, without importing Airflow."""
    name = socket.gethostname()
    try:
        for address in socket.getaddrinfo(name, None, 0, socket.SOCK_DGRAM, 0, socket.AI_CANONNAME):
            if address[3]:
                name = address[3]
                break
    except OSError:
        pass
    return socket.gethostbyname(name)


def main() -> int:
    job_type = sys.argv[1]
    variable, default = THRESHOLDS[job_type]
    threshold = float(os.environ.get(variable, default))
    connection = metadata_db.connect(metadata_db.database_url(), timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM job WHERE job_type = %s AND state = 'running' AND hostname = %s"
                " AND latest_heartbeat > now() - make_interval(secs => %s)",
                (job_type, host_name(), threshold),
            )
            alive = cursor.fetchone()[0]
    finally:
        connection.close()
    if alive == 1:
        print("Found one alive job.")
        return 0
    print(f"{alive} alive {job_type} jobs on {host_name()}: expected one", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
