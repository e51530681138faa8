"""A real HTTP(S) reverse proxy on loopback that routes like an Ingress or a Gateway API HTTPRoute.

Each route names a host (or any host), a path prefix with Kubernetes' ``Prefix`` semantics (``/airflow``
matches ``/airflow`` and ``/airflow/...``, never ``/airflowx``; the longest matching prefix wins) and a
backend. The request goes to the backend as it came: method, the full path with its prefix (no rewrite),
query, body and headers, Host kept. The backend's answer comes back as it was: status, headers (every
``Set-Cookie``), body, and a redirect is passed on, never followed. Like ingress-nginx, the proxy sets
``X-Forwarded-For``, ``-Proto``, ``-Host``, ``-Port`` (and ``X-Real-IP``), replacing what the client sent.
Nothing matches: 404; the backend cannot be reached: 502.

An ASGI app in front of ``httpx.AsyncClient``, served by uvicorn in a background thread, over TLS when
given a certificate: HTTP/1.1 with keep-alive, bodies streamed both ways.
"""

from __future__ import annotations

import datetime
import http.cookiejar
import ipaddress
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ReverseProxy", "Route", "TlsFiles", "self_signed_certificate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# RFC 9110 §7.6.1: they describe one connection, not the message; a proxy neither forwards nor returns them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip"})
# the proxy answers `Expect: 100-continue` itself (uvicorn does), so the backend is not asked again
NOT_FORWARDED = HOP_BY_HOP | FORWARDED | {"expect"}


@dataclass(frozen=True)
class Route:
    """One rule: requests for ``host`` (None: any host) under ``path`` go to ``backend`` (address, port)."""

    host: str | None
    path: str
    backend: tuple[str, int]

    def matches(self, host: str, path: str) -> bool:
        if self.host is not None and self.host.lower() != host:
            return False
        prefix = self.path.rstrip("/")
        return not prefix or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate and its unencrypted PEM private key."""

    cert: Path
    key: Path


def self_signed_certificate(directory: Path, names: Sequence[str], days: int = 7) -> TlsFiles:
    """Write ``tls.crt`` and ``tls.key`` into ``directory``: a certificate for ``names`` signed by itself.

    A name that is an IP address goes in as an IP SAN. The certificate is its own CA (basic constraints
    critical, key identifiers present), so a client can trust exactly it: ``httpx.Client(verify=
    ssl.create_default_context(cafile=tls.cert))``.
    """
    if not names:
        raise ValueError("a certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(cert=directory / "tls.crt", key=directory / "tls.key")
    files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.key.chmod(0o600)
    return files


class _ProxyApp:
    """The ASGI app: route, forward, stream back."""

    def __init__(self, routes: Sequence[Route], port: int, read_timeout: float) -> None:
        self.routes = list(routes)
        self._port = port
        self._timeout = httpx.Timeout(read_timeout, connect=10.0)
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:  # websocket: not routed (ingress-nginx would upgrade; no test needs it yet)
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # no cap on connections: a browser opens several at once, each may wait on a slow backend
                self._client = httpx.AsyncClient(
                    # a proxy keeps no cookies: httpx's default jar would store one browser's session
                    # cookies and send them with every other client's requests
                    cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
                    timeout=self._timeout,
                    follow_redirects=False,
                    trust_env=False,
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def route(self, host: str, path: str) -> Route | None:
        candidates = [route for route in self.routes if route.matches(host, path)]
        # a rule for this very host beats one for any host (nginx's server_name, the HTTPRoute's hostnames);
        # among those, the longest prefix wins
        return max(candidates, key=lambda r: (r.host is not None, len(r.path.rstrip("/"))), default=None)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        host_header = next((value.decode("latin-1") for name, value in headers if name == b"host"), "")
        host = _without_port(host_header).lower()
        route = self.route(host, scope["path"])
        if route is None:
            await _plain(send, 404, b"404 Not Found: no route\n")
            return

        client_address = scope["client"][0] if scope.get("client") else ""
        scheme = "https" if scope["scheme"] == "https" else "http"
        # and the headers that the client's Connection header names are hop-by-hop too (RFC 9110 §7.6.1)
        listed = {
            token.strip().lower()
            for name, value in headers
            if name == b"connection"
            for token in value.decode("latin-1").split(",")
        }
        forwarded = [(name, value) for name, value in headers if name.decode("latin-1") not in NOT_FORWARDED | listed]
        forwarded += [
            (b"x-real-ip", client_address.encode()),
            (b"x-forwarded-for", client_address.encode()),
            (b"x-forwarded-host", host_header.encode("latin-1")),
            (b"x-forwarded-port", str(self._port).encode()),
            (b"x-forwarded-proto", scheme.encode()),
        ]
        has_body = any(name in (b"content-length", b"transfer-encoding") for name, _ in headers)
        address, port = route.backend
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if scope["query_string"]:
            raw_path += b"?" + scope["query_string"]
        url = httpx.URL(scheme="http", host=address, port=port, raw_path=raw_path)
        assert self._client is not None, "the proxy's lifespan has not started"
        request = self._client.build_request(
            scope["method"], url, headers=forwarded, content=_request_body(receive) if has_body else None
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as error:
            await _plain(send, 502, f"502 Bad Gateway: {type(error).__name__}: {error}\n".encode())
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (name, value)
                        for name, value in response.headers.raw
                        if name.decode("latin-1").lower() not in HOP_BY_HOP
                    ],
                }
            )
            # raw: the bytes as the backend encoded them (gzip stays gzip, Content-Length stays true)
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if chunk := message.get("body", b""):
            yield chunk
        if not message.get("more_body", False):
            return


async def _plain(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _without_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8080
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class ReverseProxy:
    """``with ReverseProxy(routes=[...], tls=TlsFiles(...) or None) as proxy:`` listens on 127.0.0.1:``proxy.port``.

    ``port`` is a free one when not given; it is bound before the server starts (no race for it).
    """

    def __init__(
        self,
        routes: Sequence[Route],
        tls: TlsFiles | None = None,
        *,
        port: int = 0,
        read_timeout: float = 300.0,
        startup_timeout: float = 30.0,
    ) -> None:
        self.tls = tls
        self._socket = socket.create_server(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        self.app = _ProxyApp(routes, self.port, read_timeout)
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            # the client's X-Forwarded-* are replaced, never trusted; the backend's Server and Date pass as they are
            proxy_headers=False,
            server_header=False,
            date_header=False,
            access_log=False,
            log_level="warning",
            timeout_keep_alive=75,  # nginx's keepalive_timeout: a browser's idle connections stay open
            timeout_graceful_shutdown=5,
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"reverse-proxy-{self.port}", daemon=True)
        self._startup_timeout = startup_timeout
        self._error: BaseException | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, host: str, path: str = "/") -> str:
        """The URL a client uses for ``path`` on ``host`` (a name it resolves to 127.0.0.1) through this proxy."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as error:  # reported by start(); the thread ends either way
            self._error = error

    def start(self) -> ReverseProxy:
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while self._thread.is_alive() and not self._server.started and time.monotonic() < deadline:
            self._thread.join(0.02)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"reverse proxy on port {self.port} did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> ReverseProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
