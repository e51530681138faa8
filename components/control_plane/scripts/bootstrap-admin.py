"""Create the admin user of the FAB auth manager, or reset its password to the generated one.

Idempotent: runs in an init container of every api-server pod. The password comes from a mounted Secret
file (never from the environment or a command line).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
from werkzeug.security import check_password_hash


def main() -> int:
    username = os.environ["AIRFLOW_K8S_ADMIN_USERNAME"]
    with open(os.environ["AIRFLOW_K8S_ADMIN_PASSWORD_FILE"]) as file:
        password = file.read().strip()
    email = os.environ["AIRFLOW_K8S_ADMIN_EMAIL"]
    with get_application_builder() as appbuilder:
        security: Any = appbuilder.sm  # FAB's security manager is untyped
        user = security.find_user(username=username)
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
