"""Create the admin user of the FAB auth manager, or reset its password to the generated one; or, when
the stack switched the admin login off (no password file), deactivate that user.

Idempotent: runs in an init container of every api-server pod. The password comes from a mounted Secret
file (never from the environment or a command line). When the user is already as it should be (every
rollout after the first), one query finds that out and Airflow is not started at all; deactivating is one
statement too. Only creating, resetting or reactivating the user starts FAB.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import metadata_db
from werkzeug.security import check_password_hash


def already_done(username: str, password: str | None) -> bool:
    """Whether the user is already active with this password (or, without one, absent or inactive)."""
    try:
        connection = metadata_db.connect(metadata_db.database_url())
    except Exception:
        return False  # Airflow's own start below waits and reports
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT password, active FROM ab_user WHERE username = %s", (username,))
            row = cursor.fetchone()
    except Exception:
        return False  # no ab_user table yet: Airflow creates it
    finally:
        connection.close()
    if password is None:
        return row is None or not row[1]
    return row is not None and bool(row[1]) and check_password_hash(row[0], password)


def deactivate(username: str) -> int:
    """The admin login is off: the user may no longer sign in (FAB checks ``active`` at every sign-in and
    token request). One statement; Airflow is not started."""
    connection = metadata_db.connect(metadata_db.database_url())
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE ab_user SET active = false WHERE username = %s AND active", (username,))
            deactivated = cursor.rowcount > 0
        connection.commit()
    finally:
        connection.close()
    if deactivated:
        print(f"bootstrap-admin: admin login off; deactivated {username!r}")
    else:
        print(f"bootstrap-admin: admin login off; no active user {username!r}")
    return 0


def main() -> int:
    username = os.environ["AIRFLOW_K8S_ADMIN_USERNAME"]
    password_file = os.environ.get("AIRFLOW_K8S_ADMIN_PASSWORD_FILE")
    password = None
    if password_file:
        with open(password_file) as file:
            password = file.read().strip()
    if already_done(username, password):
        print(f"bootstrap-admin: user {username!r} is up to date; Airflow not started")
        return 0
    if password is None:
        return deactivate(username)
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    email = os.environ["AIRFLOW_K8S_ADMIN_EMAIL"]
    with get_application_builder() as appbuilder:
        security: Any = appbuilder.sm  # FAB's security manager is untyped
        user = security.find_user(username=username)
        if user is not None and not user.active:
            user.active = True
            security.update_user(user)
            print(f"bootstrap-admin: reactivated {username!r}")
        if user is None:
            role = security.find_role("Admin")
            created = security.add_user(username, "Airflow", "Admin", email, role, password=password)
            if not created:
                # Another api-server replica may have created it at the same moment.
                if security.find_user(username=username) is None:
                    print(f"bootstrap-admin: could not create user {username!r}", file=sys.stderr)
                    return 1
                print(f"bootstrap-admin: user {username!r} created concurrently")
                return 0
            print(f"bootstrap-admin: created user {username!r}")
        elif not check_password_hash(user.password, password):
            if not security.reset_password(user.id, password):
                print(f"bootstrap-admin: could not reset the password of {username!r}", file=sys.stderr)
                return 1
            print(f"bootstrap-admin: reset the password of {username!r} to the stack's")
        else:
            print(f"bootstrap-admin: user {username!r} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
