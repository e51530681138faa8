"""The pre-upgrade backup's first step: decide whether this image would migrate the metadata database.

Writes the database's current revision to AIRFLOW_K8S_BACKUP_FLAG when a migration is pending (the
next container, pg_dump, then backs the database up); writes nothing when the schema is already at this
image's head or the database is empty (nothing to lose). Refuses, exit 3, when a newer Airflow migrated
the database (a downgrade): the Job fails, `pulumi up` stops before any pod changes, and the old pods
keep serving. Retries an unreachable database until AIRFLOW_K8S_MIGRATION_WAIT_TIMEOUT. Never starts
Airflow: one query (metadata_db.py).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import metadata_db


def main() -> int:
    flag = Path(os.environ["AIRFLOW_K8S_BACKUP_FLAG"])
    deadline = time.monotonic() + int(os.environ["AIRFLOW_K8S_MIGRATION_WAIT_TIMEOUT"])
    url = metadata_db.database_url()
    while True:
        try:
            connection = metadata_db.connect(url)
            break
        except Exception as error:  # Postgres still starting: retried until the deadline
            if time.monotonic() > deadline:
                print(f"backup-needed: database unreachable: {error}", file=sys.stderr)
                return 1
            time.sleep(2)
    try:
        if refusal := metadata_db.newer_schema(connection):
            print(f"backup-needed: refusing to start: {refusal}", file=sys.stderr)
            return 3
        current = metadata_db.current_revisions(connection)
        at_head, detail = metadata_db.schema_at_head(connection)
    finally:
        connection.close()
    if current.get("alembic_version") is None:
        print("backup-needed: the database is empty; nothing to back up")
    elif at_head:
        print("backup-needed: no migration pending; nothing to back up")
    else:
        flag.write_text(str(current["alembic_version"]))
        print(f"backup-needed: a migration is pending ({detail}); backing up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
