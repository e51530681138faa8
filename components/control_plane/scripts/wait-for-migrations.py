"""Wait, at most AIRFLOW_K8S_MIGRATION_WAIT_TIMEOUT seconds, until the metadata database is reachable and its
schema is at the head revision of this image's Airflow (core and FAB tables).

It reads the version tables with one query and never starts Airflow, so a pod whose database is already
migrated (every rollout without a new Airflow version) passes this step in a fraction of a second. An
unreachable database (Postgres still starting, DNS not ready) is retried until the deadline.
"""

from __future__ import annotations

import os
import sys
import time

import metadata_db

RETRY_SECONDS = 2


def main() -> int:
    limit = int(os.environ["AIRFLOW_K8S_MIGRATION_WAIT_TIMEOUT"])
    deadline = time.monotonic() + limit
    url = metadata_db.database_url()
    attempt = 0
    last = "not checked"
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print(
                f"wait-for-migrations: gave up after {limit}s and {attempt - 1} attempts: "
                f"database unreachable or not migrated ({last})",
                file=sys.stderr,
            )
            return 1
        try:
            connection = metadata_db.connect(url, timeout=max(1, min(10, int(remaining))))
            try:
                if refusal := metadata_db.newer_schema(connection):
                    print(f"wait-for-migrations: refusing to start: {refusal}", file=sys.stderr)
                    return 3
                at_head, last = metadata_db.schema_at_head(connection)
            finally:
                connection.close()
            if at_head:
                print(f"wait-for-migrations: schema at head after {attempt} attempt(s)")
                return 0
        except Exception as error:  # unreachable, refused, not created yet: retried until the deadline
            last = f"{type(error).__name__}: {str(error).strip()}"
        time.sleep(max(0.0, min(RETRY_SECONDS, deadline - time.monotonic())))


if __name__ == "__main__":
    sys.exit(main())
