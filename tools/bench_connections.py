"""Benchmark (not a test): PostgreSQL connections with and without PgBouncer, for the same load.

    uv run --frozen --group test python -m tools.bench_connections [--pool-size N]

The load: the dev stack's api-server, dag-processor, scheduler (LocalExecutor) and triggerer, run from
their rendered pods with real Airflow 3.3 (tests/local_pod.py), run one DAG of eight parallel mapped
tasks to success. It runs twice on a fresh PostgreSQL: once as rendered (every process connects
directly), once with ``pgbouncer.enabled`` (Debian's pgbouncer configured from the rendered Secret, the
processes using the pooled URL). Printed: the peak of client backends PostgreSQL had on the metadata
database (``pg_stat_activity``, sampled every 0.2 s), and for PgBouncer its peak of client connections.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(pgbouncer: dict[str, Any] | None, api_workers: int) -> dict[str, Any]:
    from components.airflow_pods import dag_sources
    from tests import pgbouncer_server, postgres_server
    from tests.local_pod import copy_migrated_database, run_migration_step
    from tests.support import evaluate_ok

    database = "bench-pooled" if pgbouncer else "bench-direct"
    folder = Path(tempfile.mkdtemp(prefix="bench-dags-"))
    (folder / f"{pgbouncer_server.DAG_ID}.py").write_text(pgbouncer_server.DAG_FILE)
    dag_sources.REPOSITORY_DAGS = folder
    overrides: dict[str, Any] = {"database": {"databaseName": database}, "apiServer": {"workers": api_workers}}
    if pgbouncer:
        overrides["pgbouncer"] = pgbouncer
    stack = evaluate_ok("dev", **overrides)
    postgres = postgres_server.start()
    bouncer = None
    try:
        copy_migrated_database(stack, postgres)
        if pgbouncer:
            assert run_migration_step(stack, postgres, timeout=300).returncode == 0
            bouncer = pgbouncer_server.start(stack, postgres.port)
        backends = pgbouncer_server.Sampler(lambda: pgbouncer_server.backend_count(postgres, database))
        port = bouncer.port if bouncer else None
        with pgbouncer_server.components_running(stack, postgres, port) as (base, headers, _), backends.running():
            state = pgbouncer_server.run_dag(base, headers)
        result: dict[str, Any] = {"state": state, "peak_backends": backends.peak, "samples": len(backends.samples)}
        if bouncer:
            ini = bouncer.ini
            result["pool_size"] = next(
                int(line.split("=")[1]) for line in ini.splitlines() if line.startswith("default_pool_size")
            )
        return result
    finally:
        if bouncer:
            bouncer.stop()
        postgres.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool-size", type=int, default=None, help="pgbouncer.poolSize (default: derived)")
    parser.add_argument("--api-workers", type=int, default=1, help="apiServer.workers (dev: 1)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    direct = run(None, args.api_workers)
    pooled_config: dict[str, Any] = {"enabled": True, "replicas": 1}
    if args.pool_size is not None:
        pooled_config["poolSize"] = args.pool_size
    pooled = run(pooled_config, args.api_workers)
    print(f"apiServer.workers {args.api_workers}; one DAG of 8 parallel tasks (LocalExecutor)")
    print(f"{'load':<22} {'DAG run':<8} {'peak PostgreSQL connections (airflow database)':>48}")
    print(f"{'direct':<22} {direct['state']:<8} {direct['peak_backends']:>48}")
    label = f"PgBouncer (pool {pooled['pool_size']})"
    print(f"{label:<22} {pooled['state']:<8} {pooled['peak_backends']:>48}")
    return 0 if direct["state"] == pooled["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
