"""PgBouncer in front of the metadata database (``pgbouncer.enabled``).

Airflow's processes (api-server, scheduler, dag-processor, triggerer, the `db clean` job) connect to the
PgBouncer Service on 6432 with the pooled URL of the metadata Secret; PgBouncer shares a few server
connections among them (transaction pooling by default). The scheduler's migration step and KEDA connect
to the database directly (docs/operations.md#pgbouncer says why).

No plaintext password in PgBouncer's config: its ``userlist.txt`` holds the database user's SCRAM-SHA-256
verifier (``credentials.scram_sha256_verifier``). Clients log in to PgBouncer with SCRAM against it, and
PgBouncer logs in to PostgreSQL by SCRAM pass-through, which works because the migration step sets the
very same verifier (same salt and iterations) on the role. ``pgbouncer.ini`` and ``userlist.txt`` live in
one Secret; the pods' checksum annotation rolls them when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.config import names
from components.config.model import StackConfig
from components.foundation.credentials import database_login, register_secret, scram_sha256_verifier
from components.foundation.identities import identities
from components.foundation.placement import placed
from components.kube import builders, objects
from components.kube.wiring import IdentityHandle, NamespaceHandle, SecretHandle, wire

if TYPE_CHECKING:
    from components.kube.manifest_types import (
        Container,
        DeploymentManifest,
        ObjectMeta,
        PodDisruptionBudgetManifest,
        PodSpec,
        Probe,
        ServiceManifest,
    )

C = names.Component
NOBODY = 65534
"""The image's user (Alpine's nobody); the official chart runs it as 65534 too."""
CONFIG_DIR = "/etc/pgbouncer"
INI_PATH = f"{CONFIG_DIR}/{names.PGBOUNCER_INI_KEY}"
USERLIST_PATH = f"{CONFIG_DIR}/{names.PGBOUNCER_USERLIST_KEY}"
PORT_NAME = "pgbouncer"
MAX_PREPARED_STATEMENTS = 200
"""Protocol-level prepared statements PgBouncer tracks per server connection in transaction pooling: Airflow's
async engine (asyncpg) prepares every statement (PgBouncer 1.21+)."""
CONFIG_KEYS = frozenset({names.PGBOUNCER_INI_KEY, names.PGBOUNCER_USERLIST_KEY})


# --- pure builders ------------------------------------------------------------------------------------


def userlist(user: str, password: str) -> str:
    """PgBouncer's auth_file: the user and its SCRAM verifier, never the password."""
    quoted = user.replace('"', '""')
    return f'"{quoted}" "{scram_sha256_verifier(password)}"\n'


def server_sslmode(config: StackConfig, sslmode: str | None) -> str:
    """TLS from PgBouncer to the database: the in-cluster server has none; an external one gets its URL's
    sslmode (libpq's default, prefer, without one)."""
    if config.in_cluster_database:
        return "disable"
    return sslmode or "prefer"


def ini(config: StackConfig, direct_url: str) -> str:
    """pgbouncer.ini: one database (the metadata database, by its own name) and the pool sizes the config
    derives (StackConfig.pgbouncer_pool_size, pgbouncer_max_client_connections)."""
    login = database_login(direct_url)
    pool = config.pgbouncer_pool_size
    # No user= in the database entry: PgBouncer then logs in as the client did, by SCRAM pass-through.
    database = f"{login.database} = host={login.host} port={login.port} dbname={login.database}"
    settings = {
        "listen_addr": "*",
        "listen_port": str(names.PGBOUNCER_PORT),
        # no Unix socket: nothing to write on the read-only root filesystem
        "unix_socket_dir": "",
        "auth_type": "scram-sha-256",
        "auth_file": USERLIST_PATH,
        "pool_mode": config.pgbouncer.pool_mode,
        "max_client_conn": str(config.pgbouncer_max_client_connections),
        "default_pool_size": str(pool),
        "max_db_connections": str(pool),
        "min_pool_size": "0",
        "reserve_pool_size": "0",
        "max_prepared_statements": str(MAX_PREPARED_STATEMENTS),
        "server_tls_sslmode": server_sslmode(config, login.sslmode),
        # the stack's user may read SHOW POOLS/SERVERS/STATS on the admin console (no admin commands)
        "stats_users": login.user,
        "ignore_startup_parameters": "extra_float_digits",
        "log_connections": "0",
        "log_disconnections": "0",
    }
    lines = [
        "[databases]",
        database,
        "",
        "[pgbouncer]",
        *(f"{key} = {value}".rstrip() for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


def config_secret_content(config: StackConfig, direct_url: str) -> dict[str, str]:
    login = database_login(direct_url)
    return {
        names.PGBOUNCER_INI_KEY: ini(config, direct_url),
        names.PGBOUNCER_USERLIST_KEY: userlist(login.user, login.password),
    }


def probe(period: int, failures: int) -> Probe:
    return {
        "tcpSocket": {"port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def pod_spec(config: StackConfig) -> PodSpec:
    bouncer = config.pgbouncer
    container: Container = {
        "name": "pgbouncer",
        "image": bouncer.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["pgbouncer", INI_PATH],
        "ports": [{"name": PORT_NAME, "containerPort": names.PGBOUNCER_PORT, "protocol": "TCP"}],
        "resources": builders.resources(bouncer.resources.requests, bouncer.resources.limits),
        "securityContext": builders.container_security_context(),
        "readinessProbe": probe(period=10, failures=3),
        "livenessProbe": probe(period=20, failures=6),
        "volumeMounts": [
            builders.mount("config", INI_PATH, read_only=True, sub_path=names.PGBOUNCER_INI_KEY),
            builders.mount("config", USERLIST_PATH, read_only=True, sub_path=names.PGBOUNCER_USERLIST_KEY),
            builders.mount("tmp", "/tmp"),
        ],
    }
    identity = identities(config)[names.PGBOUNCER]
    return {
        "serviceAccountName": identity.name,
        "automountServiceAccountToken": False,
        "securityContext": builders.pod_security_context(NOBODY, NOBODY, NOBODY),
        # PgBouncer finishes running transactions on SIGTERM before it exits
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [
            {
                "name": "config",
                "secret": {
                    "secretName": names.PGBOUNCER_SECRET,
                    "items": [{"key": key, "path": key} for key in sorted(CONFIG_KEYS)],
                    "defaultMode": 0o440,
                },
            },
            builders.empty_dir("tmp", "16Mi"),
        ],
    }


def deployment_manifest(
    config: StackConfig, template_annotations: dict[str, str | pulumi.Output[str]]
) -> DeploymentManifest:
    namespace = config.namespace
    template_meta: ObjectMeta = {"labels": names.labels(C.PGBOUNCER, namespace)}
    if template_annotations:
        template_meta["annotations"] = template_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names.metadata(names.PGBOUNCER, C.PGBOUNCER, namespace, namespace),
        "spec": {
            "replicas": config.pgbouncer.replicas,
            "selector": {"matchLabels": names.selector_labels(C.PGBOUNCER, namespace)},
            "revisionHistoryLimit": 5,
            # a new pod is ready before an old one goes: the pooled URL always answers
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": template_meta,
                "spec": placed(
                    config,
                    pod_spec(config),
                    config.pgbouncer.placement,
                    spread=names.selector_labels(C.PGBOUNCER, namespace) if config.pgbouncer.replicas > 1 else None,
                ),
            },
        },
    }


def disruption_budget_manifest(config: StackConfig) -> PodDisruptionBudgetManifest:
    namespace = config.namespace
    selector = names.selector_labels(C.PGBOUNCER, namespace)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": names.metadata(names.PGBOUNCER, C.PGBOUNCER, namespace, namespace),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }


def service_manifest(config: StackConfig) -> ServiceManifest:
    namespace = config.namespace
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.metadata(names.PGBOUNCER, C.PGBOUNCER, namespace, namespace),
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": PORT_NAME, "port": names.PGBOUNCER_PORT, "protocol": "TCP", "targetPort": PORT_NAME}],
            "selector": names.selector_labels(C.PGBOUNCER, namespace),
        },
    }


# --- component ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgBouncerArgs:
    config: StackConfig
    namespace: NamespaceHandle
    identity: IdentityHandle
    metadata: SecretHandle
    """The metadata Secret: PgBouncer's config is derived from its direct URL."""


class PgBouncer(pulumi.ComponentResource):
    config_secret: SecretHandle

    def __init__(self, name: str, args: PgBouncerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:foundation:PgBouncer", name, None, opts)
        config = args.config
        self.config_secret = register_secret(
            self,
            names.PGBOUNCER_SECRET,
            C.PGBOUNCER,
            args.namespace,
            CONFIG_KEYS,
            args.metadata.content.apply(
                lambda data: config_secret_content(config, data[names.METADATA_CONNECTION_KEY])
            ),
        )
        wiring = wire(pod_spec(config), args.namespace, args.identity, [self.config_secret])
        self.service = objects.register(service_manifest(config), objects.child_opts(self, [args.namespace.resource]))
        self.deployment = objects.register(
            deployment_manifest(config, wiring.annotations),
            objects.child_opts(self, [*wiring.depends_on, self.service]),
        )
        if config.pgbouncer.replicas > 1:
            objects.register(disruption_budget_manifest(config), objects.child_opts(self, [args.namespace.resource]))
        self.dns_name = names.dns_name(names.PGBOUNCER, config.namespace)
        self.register_outputs({"dnsName": self.dns_name})
