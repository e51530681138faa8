"""Value checks: each an annotated type whose error says what is allowed, in the stack's words."""

from __future__ import annotations

import ipaddress
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr

from components.config import names
from components.config.base import check_error
from components.kube.quantities import QUANTITY_HELP, parse_quantity

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_]+$")
_IMAGE = re.compile(
    r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$"
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_ANNOTATION_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|_CONN\b|FERNET|_KEY$")


T = TypeVar("T")


def _checked(check: Callable[[T], str | None]) -> AfterValidator:
    """A pydantic validator from a check that returns None when allowed, else what is allowed."""

    def validate(value: T) -> T:
        allowed = check(value)
        if allowed is not None:
            raise check_error(allowed)
        return value

    return AfterValidator(validate)


# --- the checks: None when allowed, else what is allowed ----------------------------------------------


def dns_label(value: str) -> str | None:
    if len(value) <= 63 and _DNS_LABEL.match(value):
        return None
    return (
        "must be a DNS-1123 label: lowercase letters, digits and '-', "
        "starting and ending alphanumeric, at most 63 characters"
    )


def short_dns_label(value: str) -> str | None:
    if len(value) <= 30 and _DNS_LABEL.match(value):
        return None
    return "must be a DNS-1123 label of at most 30 characters (it becomes part of object names)"


def is_dns_subdomain(value: str) -> bool:
    return 0 < len(value) <= 253 and all(_DNS_LABEL.match(part) for part in value.split("."))


def hostname(value: str) -> str | None:
    """A DNS name as Ingress and HTTPRoute hosts take it (lowercase, no IP address, no port)."""
    # an all-numeric last label is no top-level domain: such a name is a mistyped IP address
    if is_dns_subdomain(value) and "." in value and not value.rsplit(".", 1)[1].isdigit():
        return None
    return 'must be a lowercase DNS name such as "airflow.example.com" (no scheme, port or IP address)'


def quantity(value: str) -> str | None:
    return None if parse_quantity(value) is not None else f"must be {QUANTITY_HELP}"


def image_reference(value: str) -> str | None:
    if not _IMAGE.match(value):
        return 'must be an image reference with a pinned tag or digest, e.g. "postgres:17.7"'
    if value.endswith(":latest"):
        return "must pin a version: the tag 'latest' is not reproducible"
    return None


def image_repository(value: str) -> str | None:
    return None if _REPOSITORY.match(value) else 'must be an image repository such as "apache/airflow"'


def image_digest(value: str) -> str | None:
    return None if _DIGEST.match(value) else 'must be an image digest: "sha256:" and 64 hex digits'


def image_tag(value: str) -> str | None:
    if not _TAG.match(value):
        return 'must be an image tag such as "3.3.2"'
    if value == "latest":
        return "must pin a version: the tag 'latest' is not reproducible"
    return None


def http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname and not parts.query and not parts.fragment:
        return None
    return 'must be an http(s) URL without query or fragment, e.g. "https://airflow.example.com"'


def annotation_keys(value: dict[str, str]) -> str | None:
    bad = sorted(key for key in value if not _ANNOTATION_KEY.match(key) or len(key) > 316)
    if bad:
        return (
            f"{', '.join(bad)} are not annotation keys: [prefix/]name, e.g. nginx.ingress.kubernetes.io/proxy-body-size"
        )
    return None


def database_role(value: str) -> str | None:
    return None if _ROLE.match(value) else "must be a PostgreSQL role name: lowercase letters, digits and '_'"


def duration(value: str) -> str | None:
    return None if _DURATION.match(value) else 'must be a duration such as "30s", "1m" or "1h30m"'


def env_names(value: dict[str, str]) -> str | None:
    bad = [name for name in value if not _ENV_NAME.match(name)]
    if bad:
        return f"names {', '.join(sorted(bad))} are not valid environment variable names"
    reserved = sorted(name for name in value if name in names.STACK_MANAGED_ENV)
    if reserved:
        return f"{', '.join(reserved)} are set by the stack; use the dedicated setting instead"
    secretish = sorted(name for name in value if _SECRETISH.search(name.upper()))
    if secretish:
        return (
            f"{', '.join(secretish)} look like secrets, which must not be plain config: put them in a "
            "Kubernetes Secret and list it in extraEnvFromSecrets, or use the secret `connections` setting"
        )
    return None


def connection_id(value: str) -> str | None:
    return None if _CONN_ID.match(value) else "must use only letters, digits and '_'"


def dns_subdomain(value: str) -> str | None:
    return (
        None if is_dns_subdomain(value) else "must be a Kubernetes object name: lowercase letters, digits, '-' and '.'"
    )


def secret_names(value: list[str]) -> str | None:
    bad = [name for name in value if dns_label(name) is not None and not is_dns_subdomain(name)]
    return f"{', '.join(bad)} are not valid Secret names" if bad else None


def connection_ids(value: dict[str, SecretStr]) -> str | None:
    bad = sorted(conn_id for conn_id in value if not _CONN_ID.match(conn_id))
    if bad:
        return f"connection ids {', '.join(bad)} must use only letters, digits and '_' (they become AIRFLOW_CONN_<ID>)"
    return None


def external_database_url(value: SecretStr) -> str | None:
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("postgresql", "postgresql+psycopg2"):
        return "must be a PostgreSQL URL: postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB (value not shown)"
    if not parts.hostname or not parts.path.strip("/"):
        return "must name a host and a database: postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB (value not shown)"
    return None


def cidrs(value: list[str]) -> str | None:
    bad: list[str] = []
    for text in value:
        try:
            ipaddress.ip_network(text)
        except ValueError:
            bad.append(text)
    return f"{', '.join(bad)} are not CIDR blocks such as 10.0.0.0/8" if bad else None


def ports(value: list[int]) -> str | None:
    bad = [str(port) for port in value if not 1 <= port <= 65535]
    return f"ports {', '.join(bad)} are outside 1-65535" if bad else None


def network_peers(value: list[Any]) -> str | None:
    allowed = {"ipBlock", "namespaceSelector", "podSelector"}
    for peer in value:
        if not isinstance(peer, dict) or not peer or not set(peer) <= allowed:  # pyright: ignore[reportUnknownArgumentType]
            return "must be a list of NetworkPolicy peers, each with ipBlock, namespaceSelector and/or podSelector"
        block: Any = typing.cast("dict[str, Any]", peer).get("ipBlock")
        if block is not None and (
            not isinstance(block, dict) or cidrs([str(typing.cast("dict[str, Any]", block).get("cidr", ""))])
        ):
            return 'ipBlock must have a CIDR, e.g. {"ipBlock": {"cidr": "10.0.0.0/8"}}'
    return None


# --- annotated types ------------------------------------------------------------------------------------

NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
DnsLabel = Annotated[str, _checked(dns_label), Field(json_schema_extra={"pattern": _DNS_LABEL.pattern})]
ShortDnsLabel = Annotated[str, _checked(short_dns_label)]
Quantity = Annotated[str, _checked(quantity)]
ImageReference = Annotated[str, _checked(image_reference)]
ImageRepository = Annotated[str, _checked(image_repository)]
ImageTag = Annotated[str, _checked(image_tag)]
ImageDigest = Annotated[str, _checked(image_digest)]
HttpUrl = Annotated[str, _checked(http_url)]
Hostname = Annotated[str, _checked(hostname)]
ConnectionId = Annotated[str, _checked(connection_id)]
DnsSubdomainName = Annotated[str, _checked(dns_subdomain)]
Annotations = Annotated[dict[str, str], _checked(annotation_keys)]
DatabaseRole = Annotated[str, _checked(database_role)]
Duration = Annotated[str, _checked(duration), Field(json_schema_extra={"pattern": _DURATION.pattern})]
EnvNames = Annotated[dict[str, str], _checked(env_names)]
SecretNames = Annotated[list[str], _checked(secret_names)]
ConnectionIds = Annotated[dict[str, SecretStr], _checked(connection_ids)]
ExternalDatabaseUrl = Annotated[SecretStr, _checked(external_database_url)]
Cidrs = Annotated[list[str], _checked(cidrs)]
Ports = Annotated[list[int], _checked(ports)]
NetworkPeers = Annotated[list[Any], _checked(network_peers)]
