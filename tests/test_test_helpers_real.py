"""The helpers for browser tests work for real: the reverse proxy, headless Chromium, the OIDC provider.

A stdlib HTTP server echoes what reached it; the proxy stands in front of it over TLS; Chromium reaches
the proxy by a public host name; and a relying party built on authlib logs a person in at the OIDC mock
through the browser, the way Airflow's FAB auth manager will.
"""

from __future__ import annotations

import hashlib
import html
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import flask
import httpx
import pytest
import werkzeug.serving
from authlib.integrations.flask_client import OAuth  # pyright: ignore[reportMissingTypeStubs]
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from werkzeug.middleware.proxy_fix import ProxyFix

from tests.browser import artifacts_dir, chromium, save_screenshot
from tests.oidc_provider import oidc_provider
from tests.reverse_proxy import ReverseProxy, Route, TlsFiles, self_signed_certificate

pytestmark = pytest.mark.real

HOST = "airflow.example.test"
RP_HOST = "rp.example.test"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with what it received: JSON by default, an HTML page for *.html, a redirect for */redirect."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real backend

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _answer(self) -> None:
        body = self._body()
        server = self.server
        assert isinstance(server, EchoServer)
        path = self.path.split("?", 1)[0]
        if path.endswith("/redirect"):
            self._send(302, b"", [("Location", "/airflow/elsewhere?from=redirect")])
        elif path.endswith("/big"):
            self._send(200, big_body(), [("Content-Type", "application/octet-stream")])
        elif path.endswith(".html"):
            rows = "".join(
                f'<dt>{html.escape(name)}</dt><dd id="{html.escape(name.lower())}">{html.escape(value)}</dd>'
                for name, value in self.headers.items()
            )
            page = f"<!doctype html><title>echo</title><h1 id=backend>{server.name}</h1><dl>{rows}</dl>"
            cookie = ("Set-Cookie", "visited=yes; Path=/airflow; Secure; HttpOnly; SameSite=Lax")
            self._send(200, page.encode(), [("Content-Type", "text/html; charset=utf-8"), cookie])
        else:
            echo = {
                "backend": server.name,
                "method": self.command,
                "path": self.path,
                "headers": [[name.lower(), value] for name, value in self.headers.items()],
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            }
            cookies = [("Set-Cookie", "first=1; Path=/"), ("Set-Cookie", "second=2; Path=/airflow; HttpOnly")]
            self._send(201, json.dumps(echo).encode(), [("Content-Type", "application/json"), *cookies])

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.name = name

    @property
    def backend(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server_address[1])


def big_body() -> bytes:
    return hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)  # 3 MiB, the same every time


@pytest.fixture(scope="module")
def echo_servers() -> Iterator[dict[str, EchoServer]]:
    servers = {name: EchoServer(name) for name in ("airflow", "root")}
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True) for s in servers.values()
    ]
    for thread in threads:
        thread.start()
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), [HOST, "*.example.test"])


@pytest.fixture(scope="module")
def proxy(echo_servers: dict[str, EchoServer], tls: TlsFiles) -> Iterator[ReverseProxy]:
    routes = [
        Route(host=HOST, path="/airflow", backend=echo_servers["airflow"].backend),
        Route(host=HOST, path="/airflow/static/", backend=echo_servers["root"].backend),
        Route(host="root.example.test", path="/", backend=echo_servers["root"].backend),
    ]
    with ReverseProxy(routes=routes, tls=tls) as running:
        yield running


def https_client(tls: TlsFiles) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=tls.cert), trust_env=False, timeout=30)


def via_proxy(
    client: httpx.Client, proxy: ReverseProxy, method: str, host: str, target: str, **kwargs: Any
) -> httpx.Response:
    """A request as a browser sends it to https://HOST:PORT/...: connected to 127.0.0.1, TLS checked for HOST."""
    return client.request(
        method,
        f"https://127.0.0.1:{proxy.port}{target}",
        headers={"Host": f"{host}:{proxy.port}", **kwargs.pop("headers", {})},
        extensions={"sni_hostname": host},
        **kwargs,
    )


def echoed_headers(response: httpx.Response) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


def test_proxy_forwards_prefixed_path_body_and_headers_unchanged_over_tls(proxy: ReverseProxy, tls: TlsFiles) -> None:
    upload = bytes(range(256)) * (4 * 1024 * 4)  # 4 MiB
    with https_client(tls) as client:
        response = via_proxy(
            client,
            proxy,
            "POST",
            HOST,
            "/airflow/api/v2/dags/a%2Fb?q=one%20two&q=3",
            content=upload,
            headers={
                "X-Forwarded-For": "203.0.113.9",
                "X-Custom": "kept",
                "Cookie": "session=abc",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "for the proxy only",
            },
        )
    assert response.status_code == 201, response.text
    echo = response.json()
    assert echo["backend"] == "airflow"
    assert (echo["method"], echo["path"]) == ("POST", "/airflow/api/v2/dags/a%2Fb?q=one%20two&q=3")
    assert (echo["body_length"], echo["body_sha256"]) == (len(upload), hashlib.sha256(upload).hexdigest())
    headers = echoed_headers(response)
    authority = f"{HOST}:{proxy.port}"
    assert headers["host"] == [authority]
    assert headers["x-custom"] == ["kept"]
    assert headers["cookie"] == ["session=abc"]
    assert "x-hop" not in headers  # named in Connection: hop-by-hop
    # as ingress-nginx: the client's own X-Forwarded-For is replaced by its address, not trusted
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["https"]
    assert headers["x-forwarded-host"] == [authority]
    assert headers["x-forwarded-port"] == [str(proxy.port)]
    assert response.headers.get_list("set-cookie") == ["first=1; Path=/", "second=2; Path=/airflow; HttpOnly"]


def test_proxy_keeps_no_cookies_between_clients(proxy: ReverseProxy, tls: TlsFiles) -> None:
    with https_client(tls) as first:
        answered = via_proxy(first, proxy, "POST", HOST, "/airflow/login", content=b"x")
        assert answered.headers.get_list("set-cookie")  # the backend set cookies for the first client
    with https_client(tls) as second:
        echoed = via_proxy(second, proxy, "GET", HOST, "/airflow/whoami")
    assert "cookie" not in echoed_headers(echoed)


def test_proxy_streams_chunked_uploads_and_large_answers(proxy: ReverseProxy, tls: TlsFiles) -> None:
    pieces = [bytes([n]) * 100_000 for n in range(20)]
    with https_client(tls) as client:
        uploaded = via_proxy(client, proxy, "PUT", HOST, "/airflow/upload", content=iter(pieces))
        downloaded = via_proxy(client, proxy, "GET", HOST, "/airflow/big")
    assert uploaded.json()["body_sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert downloaded.status_code == 200
    assert downloaded.content == big_body()


def test_proxy_passes_redirects_on_without_following_them(proxy: ReverseProxy, tls: TlsFiles) -> None:
    with https_client(tls) as client:
        response = via_proxy(client, proxy, "GET", HOST, "/airflow/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "/airflow/elsewhere?from=redirect"


@pytest.mark.parametrize(
    ("host", "target", "expected"),
    [
        (HOST, "/airflow", "airflow"),
        (HOST.upper(), "/airflow/", "airflow"),
        (HOST, "/airflowx", None),
        (HOST, "/airflow/static/app.js", "root"),  # the longest prefix wins
        (HOST, "/airflow/static", "root"),  # "/airflow/static/" is a prefix of "/airflow/static" too
        (HOST, "/airflow/staticx", "airflow"),
        (HOST, "/", None),
        ("other.example.test", "/airflow/x", None),
        ("root.example.test", "/anything/at/all", "root"),
        ("root.example.test", "/airflow/x", "root"),
    ],
)
def test_proxy_routes_by_host_and_path_prefix(
    proxy: ReverseProxy, tls: TlsFiles, host: str, target: str, expected: str | None
) -> None:
    with https_client(tls) as client:
        response = via_proxy(client, proxy, "GET", host.lower(), target, headers={"Host": f"{host}:{proxy.port}"})
    if expected is None:
        assert response.status_code == 404
    else:
        assert response.status_code == 201, response.text
        assert response.json()["backend"] == expected


def test_proxy_without_tls_forwards_http_as_the_scheme(echo_servers: dict[str, EchoServer]) -> None:
    with ReverseProxy(routes=[Route(host=None, path="/", backend=echo_servers["root"].backend)]) as plain:
        response = httpx.get(plain.url("127.0.0.1", "/x"), trust_env=False)
    assert response.status_code == 201
    assert echoed_headers(response)["x-forwarded-proto"] == ["http"]


def test_proxy_answers_502_when_the_backend_is_down(tls: TlsFiles) -> None:
    nobody = EchoServer("gone")
    backend = nobody.backend
    nobody.server_close()
    with (
        ReverseProxy(routes=[Route(host=HOST, path="/", backend=backend)], tls=tls) as lonely,
        https_client(tls) as client,
    ):
        response = via_proxy(client, lonely, "GET", HOST, "/")
    assert response.status_code == 502


def test_chromium_reaches_the_proxy_by_its_public_name_over_https(
    proxy: ReverseProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_selenium_manager(*args: object) -> dict[str, str]:
        raise AssertionError("Selenium Manager ran: it would download a browser or driver")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_selenium_manager)
    monkeypatch.setenv("AIRFLOW_K8S_TEST_ARTIFACTS", str(tmp_path / "artifacts"))
    with chromium(host_rules={HOST: "127.0.0.1"}, ignore_certificate_errors=True) as driver:
        driver.get(proxy.url(HOST, "/airflow/hello.html?x=1"))
        assert driver.find_element(By.ID, "backend").text == "airflow"
        assert driver.find_element(By.ID, "host").text == f"{HOST}:{proxy.port}"
        assert driver.find_element(By.ID, "x-forwarded-proto").text == "https"
        untyped: Any = driver  # execute_script and get_cookies are not fully annotated
        assert untyped.execute_script("return [window.innerWidth, location.protocol]") == [1400, "https:"]
        # a Secure cookie is kept over https even with the certificate error ignored
        cookies: list[dict[str, Any]] = untyped.get_cookies()
        assert {cookie["name"]: cookie["value"] for cookie in cookies} == {"visited": "yes"}
        screenshot = save_screenshot(driver, "helpers/through proxy")
        # any other name does not resolve: the browser stays on this machine
        with pytest.raises(WebDriverException, match="ERR_NAME_NOT_RESOLVED"):
            driver.get(proxy.url("unmapped.example.test", "/airflow/hello.html"))
    assert screenshot == artifacts_dir() / "helpers_through_proxy.png"
    assert screenshot.parent == tmp_path / "artifacts"
    assert screenshot.read_bytes().startswith(PNG_MAGIC)


def test_chromium_names_the_debian_packages_when_missing(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="apt-get install chromium chromium-driver"),
        chromium(binary=tmp_path / "none"),
    ):
        pass


def relying_party(issuer_metadata_url: str) -> flask.Flask:
    """A web app that logs people in with OIDC through authlib, served under /rp behind the proxy."""
    app = flask.Flask("relying_party")
    app.secret_key = "test-only"
    app.config["SESSION_COOKIE_SECURE"] = True  # as behind a TLS ingress
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)  # type: ignore[method-assign]
    oauth: Any = OAuth(app)
    oauth.register(
        "oidc",
        client_id="relying-party",
        client_secret="secret",
        server_metadata_url=issuer_metadata_url,
        client_kwargs={"scope": "openid email profile"},
    )

    @app.get("/rp/login")
    def login() -> Any:
        return oauth.oidc.authorize_redirect(flask.url_for("callback", _external=True))

    @app.get("/rp/callback")
    def callback() -> str:
        token: dict[str, Any] = oauth.oidc.authorize_access_token()
        claims: dict[str, Any] = token["userinfo"]  # the ID token's claims, signature and nonce checked
        groups = "".join(f"<li>{html.escape(group)}</li>" for group in claims.get("groups", []))
        return (
            f"<!doctype html><title>logged in</title><p id=sub>{html.escape(claims['sub'])}</p>"
            f"<p id=iss>{html.escape(claims['iss'])}</p><ul id=groups>{groups}</ul>"
        )

    return app


def test_browser_logs_in_at_the_oidc_provider_and_the_relying_party_sees_the_groups(tls: TlsFiles) -> None:
    groups = ["airflow-admins", "data-engineers"]
    with oidc_provider() as provider:
        provider.set_user("alice", {"email": "alice@example.test", "name": "Alice", "groups": groups})
        rp = werkzeug.serving.make_server("127.0.0.1", 0, relying_party(provider.metadata_url), threaded=True)
        rp_thread = threading.Thread(target=rp.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        rp_thread.start()
        try:
            route = Route(host=RP_HOST, path="/rp", backend=("127.0.0.1", rp.server_port))
            with (
                ReverseProxy(routes=[route], tls=tls) as proxy,
                chromium(host_rules={RP_HOST: "127.0.0.1"}, ignore_certificate_errors=True) as driver,
            ):
                wait = WebDriverWait(driver, 30)
                driver.get(proxy.url(RP_HOST, "/rp/login"))
                # the provider's own form, at the issuer's URL
                subject = wait.until(expected_conditions.presence_of_element_located((By.NAME, "sub")))
                assert driver.current_url.startswith(f"{provider.issuer_url}/oauth2/authorize?")
                subject.send_keys("alice")
                save_screenshot(driver, "helpers/oidc authorize form")
                driver.find_element(By.XPATH, "//button[@type='submit' and normalize-space()='Authorize']").click()
                shown = wait.until(expected_conditions.presence_of_element_located((By.ID, "groups")))
                assert driver.current_url.startswith(proxy.url(RP_HOST, "/rp/callback?"))
                assert [item.text for item in shown.find_elements(By.TAG_NAME, "li")] == groups
                assert driver.find_element(By.ID, "sub").text == "alice"
                assert driver.find_element(By.ID, "iss").text == provider.issuer_url
                save_screenshot(driver, "helpers/oidc logged in")
        finally:
            rp.shutdown()
            rp.server_close()
