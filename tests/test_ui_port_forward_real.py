"""The UI through `kubectl port-forward`, as a new user reaches it.

The api-server runs as the rendered dev pod describes (its init containers first, its environment and
mounted files), with real Airflow 3.3 on a real PostgreSQL. A loopback TCP relay on another port stands
in for `kubectl port-forward 9090:8080`; the client follows redirects like a browser, keeps cookies,
and knows no cluster DNS name. Every redirect must stay on the host and port the client used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from components.config import names
from tests.airflow_stack import RunningApiServer
from tests.relay import TcpRelay
from tests.support import decoded_secret
from tests.test_dags import EXAMPLE_DAGS
from tests.test_readme import quick_start_block

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def api_server(dev_api_server: RunningApiServer) -> RunningApiServer:
    return dev_api_server


def locations(response: httpx.Response) -> list[str]:
    """Every Location header on the way to ``response``, made absolute as a browser would."""
    found: list[str] = []
    for hop in [*response.history, response]:
        if "location" in hop.headers:
            found.append(urljoin(str(hop.url), hop.headers["location"]))
    return found


def login_form(page: httpx.Response) -> tuple[str, dict[str, str]]:
    """The FAB login form's action and hidden fields."""
    forms = re.finditer(r"<form[^>]*>(.*?)</form>", page.text, flags=re.S)
    form = next((f for f in forms if 'name="password"' in f.group(1)), None)
    assert form is not None, page.text[:2000]
    action = re.search(r'action="([^"]*)"', form.group(0))
    hidden = dict(re.findall(r'<input[^>]*name="(csrf_token)"[^>]*value="([^"]*)"', form.group(1)))
    assert "csrf_token" in hidden, form.group(0)[:2000]
    target = urljoin(str(page.url), action.group(1) if action and action.group(1) else str(page.url))
    return target, hidden


def test_login_through_a_port_forward_on_another_port_stays_on_that_host(api_server: RunningApiServer) -> None:
    admin = decoded_secret(api_server.stack, names.ADMIN_SECRET)
    with TcpRelay(api_server.port) as relay:
        origin = f"127.0.0.1:{relay.port}"
        assert relay.port != names.API_SERVER_PORT and relay.port != api_server.port
        with httpx.Client(base_url=f"http://{origin}", follow_redirects=True, timeout=120) as browser:
            # What the UI does when nobody is logged in.
            page = browser.get("/api/v2/auth/login", params={"next": "/"})
            chain = locations(page)
            assert chain, "the login entry point redirects to the auth manager's form"
            assert {urlsplit(url).netloc for url in chain} == {origin}, chain
            assert page.status_code == 200 and 'name="password"' in page.text, page.text[:2000]

            action, hidden = login_form(page)
            assert urlsplit(action).netloc == origin
            landed = browser.post(action, data={**hidden, "username": admin["username"], "password": admin["password"]})
            chain = locations(landed)
            assert chain, "a successful login redirects"
            assert {urlsplit(url).netloc for url in chain} == {origin}, chain
            assert landed.status_code == 200
            assert "_token" in browser.cookies

            dags_page = browser.get("/dags")
            assert dags_page.status_code == 200
            assert not dags_page.history, locations(dags_page)
            listed = browser.get("/api/v2/dags", params={"limit": 100})
            assert listed.status_code == 200, listed.text[:2000]
            assert {dag["dag_id"] for dag in listed.json()["dags"]} == EXAMPLE_DAGS


def test_a_wrong_password_does_not_log_in(api_server: RunningApiServer) -> None:
    with (
        TcpRelay(api_server.port) as relay,
        httpx.Client(base_url=f"http://127.0.0.1:{relay.port}", follow_redirects=True, timeout=120) as browser,
    ):
        page = browser.get("/auth/login/")
        action, hidden = login_form(page)
        browser.post(action, data={**hidden, "username": "admin", "password": "admin"})
        assert "_token" not in browser.cookies
        assert browser.get("/api/v2/dags").status_code == 401


def test_the_readme_quick_start_runs_an_example_dag_through_the_port_forward(api_server: RunningApiServer) -> None:
    """The README's own commands (curl and python3), as a user pastes them, against the api-server."""
    block = quick_start_block("Run an example DAG")
    admin = decoded_secret(api_server.stack, names.ADMIN_SECRET)
    with TcpRelay(api_server.port) as relay:
        environment = {
            **os.environ,
            "AIRFLOW_URL": f"http://127.0.0.1:{relay.port}",
            "AIRFLOW_PASSWORD": admin["password"],
        }
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], env=environment, capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads(result.stdout)
    assert run["dag_id"] == "kpo_print_then_sleep"
    assert run["state"] == "queued"
