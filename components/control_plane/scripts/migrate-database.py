"""The scheduler's migration step: bring the metadata database to this image's schema, then keep the
read-only KEDA role in sync.

Runs in an init container of every scheduler pod. `airflow db migrate` takes a database lock, so a
second scheduler waits for the first. With KEDA on (AIRFLOW_K8S_KEDA_ROLE set), the role KEDA logs in
as is created if missing, its password set to the stack's, and its rights reduced to SELECT on the two
tables KEDA's queries read; running this again changes nothing. With PgBouncer on
(AIRFLOW_K8S_SCRAM_VERIFIER_FILE set), the stack's own role first gets the SCRAM verifier PgBouncer holds
(the same password, stored with the same salt), which PgBouncer's SCRAM pass-through needs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import Any

KEDA_TABLES = ("task_instance", "trigger")


def metadata_url() -> str:
    command = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
    return subprocess.run(shlex.split(command), capture_output=True, text=True, check=True).stdout.strip()


def connect(url: str) -> Any:
    import psycopg2
    from psycopg2.extensions import make_dsn
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    options: dict[str, Any] = {str(k): str(v) for k, v in parsed.query.items()}
    dsn = make_dsn(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        **options,
    )
    return psycopg2.connect(dsn)


def sync_keda_role(url: str, role: str, password: str) -> None:
    from psycopg2 import sql

    connection = connect(url)
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
    connection = connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("ALTER ROLE CURRENT_USER PASSWORD %s", (verifier,))
    finally:
        connection.close()
    print("migrate-database: the role's SCRAM verifier is PgBouncer's", flush=True)


def main() -> int:
    verifier_file = os.environ.get("AIRFLOW_K8S_SCRAM_VERIFIER_FILE")
    if verifier_file:
        with open(verifier_file) as file:
            sync_scram_verifier(metadata_url(), file.read().strip())
    migrated = subprocess.run(["airflow", "db", "migrate"], check=False)
    if migrated.returncode != 0:
        return migrated.returncode
    role = os.environ.get("AIRFLOW_K8S_KEDA_ROLE")
    if role:
        with open(os.environ["AIRFLOW_K8S_KEDA_PASSWORD_FILE"]) as file:
            password = file.read().strip()
        sync_keda_role(metadata_url(), role, password)
    return 0


if __name__ == "__main__":
    sys.exit(main())
