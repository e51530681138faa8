"""The scheduler's migration step: bring the metadata database to this image's schema, then keep the
read-only KEDA role in sync.

Runs in an init container of every scheduler pod. When the version tables are already at this image's
head (every rollout that does not change the Airflow version), it does not start Airflow at all: one
query decides (metadata_db.py). Otherwise `airflow db migrate` runs; it takes a database lock, so a
second scheduler waits for the first. With KEDA on (AIRFLOW_K8S_KEDA_ROLE set), the role KEDA logs in
as is created if missing, its password set to the stack's, and its rights reduced to SELECT on the two
tables KEDA's queries read; running this again changes nothing. With PgBouncer on
(AIRFLOW_K8S_SCRAM_VERIFIER_FILE set), the stack's own role first gets the SCRAM verifier PgBouncer holds
(the same password, stored with the same salt), which PgBouncer's SCRAM pass-through needs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import metadata_db

KEDA_TABLES = ("task_instance", "trigger")


def sync_keda_role(url: str, role: str, password: str) -> None:
    from psycopg2 import sql

    connection = metadata_db.connect(url)
    connection.autocommit = True
    name = sql.Identifier(role)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
            cursor.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD %s").format(
                    name
                ),
                (password,),
            )
            cursor.execute("SELECT current_database()")
            database = sql.Identifier(cursor.fetchone()[0])
            cursor.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, name))
            cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))
            cursor.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(name))
            cursor.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {}").format(name))
            tables = sql.SQL(", ").join(sql.Identifier(table) for table in KEDA_TABLES)
            cursor.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(tables, name))
    finally:
        connection.close()
    print(f"migrate-database: role {role!r} may SELECT {', '.join(KEDA_TABLES)} and nothing else", flush=True)


def sync_scram_verifier(url: str, verifier: str) -> None:
    """Store the role's password as this exact verifier (PostgreSQL keeps a pre-hashed SCRAM secret as
    given); a role may always change its own password. Running it again changes nothing."""
    connection = metadata_db.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("ALTER ROLE CURRENT_USER PASSWORD %s", (verifier,))
    finally:
        connection.close()
    print("migrate-database: the role's SCRAM verifier is PgBouncer's", flush=True)


class Downgrade(Exception):
    """The database is newer than this image: nothing may be written."""


def already_at_head(url: str) -> bool:
    try:
        connection = metadata_db.connect(url)
    except Exception as error:  # not reachable yet: `airflow db migrate` waits for it and says why
        print(f"migrate-database: could not check the schema ({type(error).__name__}); migrating", flush=True)
        return False
    try:
        if refusal := metadata_db.newer_schema(connection):
            raise Downgrade(refusal)
        at_head, detail = metadata_db.schema_at_head(connection)
    finally:
        connection.close()
    print(f"migrate-database: {detail}", flush=True)
    return at_head


def main() -> int:
    url = metadata_db.database_url()
    try:
        at_head = already_at_head(url)
    except Downgrade as refusal:
        print(f"migrate-database: refusing to start: {refusal}", file=sys.stderr, flush=True)
        return 3
    verifier_file = os.environ.get("AIRFLOW_K8S_SCRAM_VERIFIER_FILE")
    if verifier_file:
        with open(verifier_file) as file:
            sync_scram_verifier(url, file.read().strip())
    if at_head:
        print("migrate-database: nothing to migrate; Airflow not started", flush=True)
    else:
        migrated = subprocess.run(["airflow", "db", "migrate"], check=False)
        if migrated.returncode != 0:
            return migrated.returncode
    role = os.environ.get("AIRFLOW_K8S_KEDA_ROLE")
    if role:
        with open(os.environ["AIRFLOW_K8S_KEDA_PASSWORD_FILE"]) as file:
            password = file.read().strip()
        sync_keda_role(url, role, password)
    return 0


if __name__ == "__main__":
    sys.exit(main())
