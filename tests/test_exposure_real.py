"""The UI in a real browser, through a proxy that routes like the rendered Ingress or HTTPRoute, with a subpath.

The api-server runs as the rendered pod describes (init containers first, its environment and mounted
files: real Airflow 3.3 on a real PostgreSQL). A real reverse proxy on loopback takes the routes of the
stack's own Ingress (HTTPS, self-signed certificate) or HTTPRoute (plain HTTP), and forwards the path
prefix unchanged with the X-Forwarded-* headers an ingress controller adds. Debian's headless Chromium
reaches the proxy by the public host name (its host resolver rules; no DNS, no /etc/hosts).

- Admin login: the browser opens the public URL, is sent to the login form, signs in with the
  generated admin password and sees the DAG list; a screenshot is saved (test-artifacts/).
- Single sign-on: a real OpenID Connect provider (oidc-provider-mock) on loopback. A user whose
  ``groups`` claim maps to Viewer may read but not change connections; one mapped to Admin may.

What only a real cluster shows: a real ingress controller or gateway, a real certificate (cert-manager),
cluster DNS. See docs/exposing.md.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from components.config import names
from components.control_plane import sso as sso_module
from tests.airflow_stack import reserialize_dags, start_api_server
from tests.browser import chromium, save_screenshot
from tests.local_pod import LocalPod, copy_migrated_database
from tests.oidc_provider import OidcProvider, oidc_provider
from tests.postgres_server import PostgresServer, free_port
from tests.reverse_proxy import ReverseProxy, Route, TlsFiles, self_signed_certificate
from tests.support import Evaluation, decoded_secret, evaluate_ok
from tools.mock_engine import reveal

pytestmark = pytest.mark.real

HOST = "airflow.example.test"
PREFIX = "/airflow"
SHOWN_DAGS = ("kpo_print_then_sleep", "kpo_xcom_to_python", "external_service_check")


@dataclass
class Exposed:
    stack: Evaluation
    pod: LocalPod
    proxy: ReverseProxy
    public_url: str

    def client(self, tls: TlsFiles | None = None) -> httpx.Client:
        """A client that reaches the public host name at the proxy (as DNS would), trusting its certificate."""
        verify: Any = ssl.create_default_context(cafile=str(tls.cert)) if tls is not None else True
        return httpx.Client(verify=verify, trust_env=False, timeout=60, follow_redirects=False)


def ingress_routes(stack: Evaluation, pod: LocalPod) -> list[Route]:
    """The rendered Ingress's rules, to the api-server Service's port (here: the local pod's)."""
    ingress = reveal(stack.find("Ingress", names.API_SERVER))
    backend = ("127.0.0.1", pod.port(names.API_SERVER_PORT))
    routes: list[Route] = []
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == names.API_SERVER and path["pathType"] == "Prefix"
            routes.append(Route(host=rule["host"], path=path["path"], backend=backend))
    return routes


def http_route_routes(stack: Evaluation, pod: LocalPod) -> list[Route]:
    """The rendered HTTPRoute's hostnames and path matches, to the api-server Service's port."""
    route = reveal(stack.find("HTTPRoute", names.API_SERVER))
    backend = ("127.0.0.1", pod.port(names.API_SERVER_PORT))
    routes: list[Route] = []
    for rule in route["spec"]["rules"]:
        assert [b["name"] for b in rule["backendRefs"]] == [names.API_SERVER]
        for match in rule["matches"]:
            assert match["path"]["type"] == "PathPrefix"
            routes += [Route(host=h, path=match["path"]["value"], backend=backend) for h in route["spec"]["hostnames"]]
    return routes


# --- admin login over HTTPS through the Ingress's routes, under a subpath ------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), [HOST])


@pytest.fixture(scope="module")
def ingress(postgres: PostgresServer, tls: TlsFiles) -> Iterator[Exposed]:
    port = free_port()
    public_url = f"https://{HOST}:{port}{PREFIX}"
    stack = evaluate_ok(
        "dev",
        database={"storageSize": "1Gi", "databaseName": "exposure"},
        apiServer={
            "workers": 1,
            "baseUrl": public_url,
            "ingress": {"enabled": True, "controllerNamespace": "ingress-nginx", "tls": {"secretName": "airflow-tls"}},
        },
    )
    copy_migrated_database(stack, postgres, with_admin=True)
    reserialize_dags(stack, postgres)
    pod = start_api_server(stack, postgres)
    try:
        with ReverseProxy(ingress_routes(stack, pod), tls=tls, port=port) as proxy:
            yield Exposed(stack, pod, proxy, public_url)
    finally:
        pod.stop()


def sign_in_with_password(driver: WebDriver, username: str, password: str) -> None:
    wait = WebDriverWait(driver, 120)
    field = wait.until(lambda d: d.find_elements(By.NAME, "username"))[0]
    field.send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "[type=submit]").click()


def test_a_browser_signs_in_at_the_public_url_and_sees_the_dag_list(ingress: Exposed) -> None:
    admin = decoded_secret(ingress.stack, names.ADMIN_SECRET)
    with chromium({HOST: "127.0.0.1"}, ignore_certificate_errors=True) as driver:
        driver.get(ingress.public_url + "/")
        # not signed in: sent to the login form, on the public host, under the prefix
        WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.NAME, "password"))
        assert driver.current_url.startswith(f"{ingress.public_url}/auth/login/"), driver.current_url
        save_screenshot(driver, "exposure-1-login-form")
        sign_in_with_password(driver, admin[names.ADMIN_USERNAME_KEY], admin[names.ADMIN_PASSWORD_KEY])
        WebDriverWait(driver, 120).until(lambda d: not d.current_url.startswith(f"{ingress.public_url}/auth/"))
        assert driver.current_url.startswith(ingress.public_url), driver.current_url
        driver.get(f"{ingress.public_url}/dags")
        WebDriverWait(driver, 120).until(lambda d: all(dag in d.page_source for dag in SHOWN_DAGS))
        assert driver.current_url == f"{ingress.public_url}/dags"
        shot = save_screenshot(driver, "exposure-2-dag-list-through-subpath")
        assert shot.stat().st_size > 10_000
        # the session's API token: only over https, only under the prefix, not for scripts
        token = next(c for c in driver.get_cookies() if c["name"] == "_token")
        assert token["secure"] is True and token["httpOnly"] is True
        assert token["path"].rstrip("/") == PREFIX
        # and the REST API, through the same route, accepts it
        with ingress.client(ingress_tls(ingress)) as client:
            response = client.get(
                f"https://127.0.0.1:{ingress.proxy.port}{PREFIX}/api/v2/dags",
                headers={"Host": f"{HOST}:{ingress.proxy.port}", "Authorization": f"Bearer {token['value']}"},
                extensions={"sni_hostname": HOST},
            )
        assert response.status_code == 200, response.text[:500]
        assert set(SHOWN_DAGS) <= {dag["dag_id"] for dag in response.json()["dags"]}


def ingress_tls(exposed: Exposed) -> TlsFiles:
    tls = exposed.proxy.tls
    assert tls is not None
    return tls


def test_outside_the_prefix_nothing_is_routed(ingress: Exposed) -> None:
    with ingress.client(ingress_tls(ingress)) as client:
        for path in ("/", "/api/v2/version", "/airflowx/"):
            response = client.get(
                f"https://127.0.0.1:{ingress.proxy.port}{path}",
                headers={"Host": f"{HOST}:{ingress.proxy.port}"},
                extensions={"sni_hostname": HOST},
            )
            assert response.status_code == 404, path


def test_with_a_public_base_url_redirects_use_that_url(ingress: Exposed) -> None:
    """Reached directly (as through `kubectl port-forward`), the api-server still sends a browser to the
    public URL: the one it is configured with, not the host and port the request came to."""
    direct = f"http://127.0.0.1:{ingress.pod.port(names.API_SERVER_PORT)}"
    with httpx.Client(base_url=direct, timeout=120) as client:
        response = client.get(f"{PREFIX}/api/v2/auth/login", params={"next": f"{PREFIX}/"})
        assert response.status_code in (302, 307), response.text[:500]
        location = response.headers["location"]
        assert location.startswith(f"{ingress.public_url}/auth/login/"), location


# --- single sign-on through the HTTPRoute's routes ---------------------------------------------------------


@dataclass
class SingleSignOn:
    exposed: Exposed
    provider: OidcProvider
    overrides: dict[str, Any]
    auth: dict[str, Any]
    """The stack's plain overrides, and its `auth` object (a secret config value)."""


VIEWER = ("vera", {"preferred_username": "vera", "email": "vera@example.test", "groups": ["analysts"]})
ADMIN = ("ada", {"preferred_username": "ada", "email": "ada@example.test", "groups": ["airflow-admins", "x"]})


@pytest.fixture(scope="module")
def sso(postgres: PostgresServer) -> Iterator[SingleSignOn]:
    port = free_port()
    # a plain-http public URL: the dev-setup case where a plain-http provider on loopback is allowed
    public_url = f"http://{HOST}:{port}{PREFIX}"
    with oidc_provider(users=dict([VIEWER, ADMIN])) as provider:
        overrides: dict[str, Any] = {
            "database": {"storageSize": "1Gi", "databaseName": "sso"},
            "apiServer": {
                "workers": 1,
                "baseUrl": public_url,
                "httpRoute": {
                    "enabled": True,
                    "gatewayNamespace": "envoy-gateway-system",
                    "parentRefs": [{"name": "shared", "namespace": "gateway-system"}],
                },
            },
        }
        auth: dict[str, Any] = {
            "oidc": {
                "enabled": True,
                "issuerUrl": provider.issuer_url,
                "clientId": "airflow",
                "clientSecret": "sso-test-client-secret",
                "roleMapping": {"airflow-admins": ["Admin"], "analysts": ["Viewer"]},
            }
        }
        stack = evaluate_ok("dev", secret_overrides={"auth": auth}, **overrides)
        copy_migrated_database(stack, postgres, with_admin=True)
        pod = start_api_server(stack, postgres)
        try:
            with ReverseProxy(http_route_routes(stack, pod), port=port) as proxy:
                yield SingleSignOn(Exposed(stack, pod, proxy, public_url), provider, overrides, auth)
        finally:
            pod.stop()


def sign_in_through_the_provider(driver: WebDriver, sso: SingleSignOn, subject: str, shot: str) -> str:
    """Open the UI, choose the provider, authorize as ``subject``; return the session's API token."""
    try:
        return _sign_in_through_the_provider(driver, sso, subject, shot)
    except TimeoutException:
        save_screenshot(driver, f"{shot}-failed")
        raise AssertionError(f"stuck at {driver.current_url}: {driver.page_source[:1500]}") from None


def _sign_in_through_the_provider(driver: WebDriver, sso: SingleSignOn, subject: str, shot: str) -> str:
    exposed = sso.exposed
    driver.get(exposed.public_url + "/")
    wait = WebDriverWait(driver, 120)
    # the provider's form: its text field (recent users also appear as buttons named "sub")
    subject_field = (By.CSS_SELECTOR, "input[name=sub]")
    found = wait.until(lambda d: d.find_elements(By.ID, "btn-signin-sso") or d.find_elements(*subject_field))[0]
    if found.tag_name != "input":
        save_screenshot(driver, f"{shot}-1-sign-in-page")
        found.click()
    field = wait.until(lambda d: d.find_elements(*subject_field))[0]
    assert driver.current_url.startswith(f"{sso.provider.issuer_url}/oauth2/authorize"), driver.current_url
    field.send_keys(subject)
    driver.find_element(By.XPATH, "//button[@type='submit' and normalize-space()='Authorize']").click()
    wait.until(lambda d: d.current_url.startswith(exposed.public_url) and "/auth/" not in d.current_url)
    wait.until(lambda d: any(c["name"] == "_token" for c in d.get_cookies()))
    save_screenshot(driver, f"{shot}-2-signed-in")
    return next(c["value"] for c in driver.get_cookies() if c["name"] == "_token")


def create_connection(sso: SingleSignOn, token: str, conn_id: str) -> httpx.Response:
    with sso.exposed.client() as client:
        return client.post(
            f"http://127.0.0.1:{sso.exposed.proxy.port}{PREFIX}/api/v2/connections",
            headers={"Host": f"{HOST}:{sso.exposed.proxy.port}", "Authorization": f"Bearer {token}"},
            json={"connection_id": conn_id, "conn_type": "http", "host": "example.test"},
        )


def read_connections(sso: SingleSignOn, token: str) -> httpx.Response:
    with sso.exposed.client() as client:
        return client.get(
            f"http://127.0.0.1:{sso.exposed.proxy.port}{PREFIX}/api/v2/dags",
            headers={"Host": f"{HOST}:{sso.exposed.proxy.port}", "Authorization": f"Bearer {token}"},
        )


def test_a_user_mapped_to_viewer_signs_in_and_may_not_change_connections(sso: SingleSignOn) -> None:
    with chromium({HOST: "127.0.0.1"}) as driver:
        token = sign_in_through_the_provider(driver, sso, VIEWER[0], "sso-viewer")
    assert read_connections(sso, token).status_code == 200
    refused = create_connection(sso, token, "viewer_was_here")
    assert refused.status_code == 403, refused.text[:500]


def test_a_user_mapped_to_admin_signs_in_and_may(sso: SingleSignOn) -> None:
    with chromium({HOST: "127.0.0.1"}) as driver:
        token = sign_in_through_the_provider(driver, sso, ADMIN[0], "sso-admin")
    created = create_connection(sso, token, "admin_was_here")
    assert created.status_code == 201, created.text[:500]


def test_the_generated_admin_still_gets_an_api_token_with_its_password(sso: SingleSignOn) -> None:
    admin = decoded_secret(sso.exposed.stack, names.ADMIN_SECRET)
    with sso.exposed.client() as client:
        response = client.post(
            f"http://127.0.0.1:{sso.exposed.proxy.port}{PREFIX}/auth/token",
            headers={"Host": f"{HOST}:{sso.exposed.proxy.port}"},
            json={"username": admin[names.ADMIN_USERNAME_KEY], "password": admin[names.ADMIN_PASSWORD_KEY]},
        )
        assert response.status_code == 201, response.text[:500]
        wrong = client.post(
            f"http://127.0.0.1:{sso.exposed.proxy.port}{PREFIX}/auth/token",
            headers={"Host": f"{HOST}:{sso.exposed.proxy.port}"},
            json={"username": admin[names.ADMIN_USERNAME_KEY], "password": "not-the-password"},
        )
        assert wrong.status_code == 401


def test_the_client_secret_reached_the_api_server_only_as_a_file(sso: SingleSignOn) -> None:
    pod = sso.exposed.pod
    server = pod.container("api-server")
    assert "sso-test-client-secret" not in str(server.get("env"))
    assert Path(pod.local_path(server, sso_module.CLIENT_SECRET.path)).read_text() == "sso-test-client-secret"
    bootstrap = pod.container("bootstrap-admin")
    assert not Path(pod.local_path(bootstrap, sso_module.CLIENT_SECRET.path)).exists()


def test_switching_the_admin_login_off_deactivates_the_admin(sso: SingleSignOn, postgres: PostgresServer) -> None:
    """Last in this module: it changes the database the other tests share."""
    exposed = sso.exposed
    admin = decoded_secret(exposed.stack, names.ADMIN_SECRET)
    off = evaluate_ok("dev", secret_overrides={"auth": {**sso.auth, "adminLogin": False}}, **sso.overrides)
    step = LocalPod(off, "Deployment", names.API_SERVER, postgres.port).run("bootstrap-admin", timeout=600)
    assert step.returncode == 0, step.stderr[-2000:]
    assert "deactivated" in step.stdout
    with exposed.client() as client:
        response = client.post(
            f"http://127.0.0.1:{exposed.proxy.port}{PREFIX}/auth/token",
            headers={"Host": f"{HOST}:{exposed.proxy.port}"},
            json={"username": admin[names.ADMIN_USERNAME_KEY], "password": admin[names.ADMIN_PASSWORD_KEY]},
        )
    assert response.status_code == 401, response.text[:300]
