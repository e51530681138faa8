"""Headless Debian Chromium driven by Selenium through Debian's chromedriver: a person's browser for the tests.

Nothing is downloaded: the driver's path is given to Selenium, which then never runs Selenium Manager
(the one part of Selenium that would fetch a browser or driver). Host names are resolved by Chromium's
own ``--host-resolver-rules``: a public name such as ``airflow.example.test`` reaches a local proxy with
no /etc/hosts entry and no DNS, and every other name fails to resolve, so the browser's background
requests go nowhere. Ports stay in the URLs (``https://airflow.example.test:PORT/airflow``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

__all__ = ["ARTIFACTS_ENV", "CHROMEDRIVER", "CHROMIUM", "artifacts_dir", "chromium", "save_screenshot"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS_ENV = "AIRFLOW_K8S_TEST_ARTIFACTS"
REPOSITORY = Path(__file__).resolve().parent.parent
WINDOW_SIZE = (1400, 900)

# Belt and braces: were Selenium Manager ever run, it stays offline and downloads no browser.
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_BROWSER_DOWNLOAD", "true")


def chromium_arguments(host_rules: Mapping[str, str], ignore_certificate_errors: bool) -> list[str]:
    """The command-line flags: headless, as root in a container, offline but for the mapped hosts."""
    # "MAP * ~NOTFOUND" makes any other name unresolvable; loopback stays reachable by name and by address
    rules = [f"MAP {host} {address}" for host, address in host_rules.items()]
    rules += ["MAP * ~NOTFOUND", "EXCLUDE localhost", "EXCLUDE 127.0.0.1"]
    arguments = [
        "--headless=new",
        "--no-sandbox",  # root (and most containers) cannot use Chromium's sandbox
        "--disable-dev-shm-usage",  # a container's /dev/shm is small: shared memory goes to /tmp
        "--disable-gpu",
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
        f"--host-resolver-rules={', '.join(rules)}",
        "--no-proxy-server",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-domain-reliability",
        "--disable-features=OptimizationHints,MediaRouter,Translate",
        "--lang=en-US",
    ]
    if ignore_certificate_errors:
        arguments.append("--ignore-certificate-errors")
    return arguments


@contextmanager
def chromium(
    host_rules: Mapping[str, str] | None = None,
    *,
    ignore_certificate_errors: bool = False,
    binary: Path = CHROMIUM,
    driver: Path = CHROMEDRIVER,
    page_load_timeout: float = 60.0,
) -> Generator[WebDriver, None, None]:
    """A fresh headless Chromium (its own temporary profile: no cookies carried over), quit on exit.

    ``host_rules`` maps host names to the address Chromium connects to, e.g.
    ``{"airflow.example.test": "127.0.0.1"}``.
    """
    missing = [
        f"{path} (Debian package {package})"
        for path, package in ((binary, "chromium"), (driver, "chromium-driver"))
        if not path.is_file()
    ]
    if missing:
        raise RuntimeError(
            f"headless browser tests need Debian's Chromium and its driver; missing: {', '.join(missing)}. "
            "Install them with `apt-get install chromium chromium-driver` (no browser is downloaded)."
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for argument in chromium_arguments(host_rules or {}, ignore_certificate_errors):
        options.add_argument(argument)
    # Debian's chromedriver would otherwise use the user's default profile (~/.config/chromium), and one
    # test's cookies would sign the next test's browser in
    profile = tempfile.TemporaryDirectory(prefix="airflow-k8s-chromium-")
    options.add_argument(f"--user-data-dir={profile.name}")
    options.accept_insecure_certs = ignore_certificate_errors
    # an explicit driver path: Selenium skips Selenium Manager altogether (selenium.webdriver.common.driver_finder)
    service = Service(executable_path=str(driver))
    browser = webdriver.Chrome(options=options, service=service)
    try:
        browser.set_page_load_timeout(page_load_timeout)
        yield browser
    finally:
        browser.quit()
        profile.cleanup()


def artifacts_dir() -> Path:
    """Where screenshots go: ``$AIRFLOW_K8S_TEST_ARTIFACTS``, else ``test-artifacts/`` in the repository."""
    configured = os.environ.get(ARTIFACTS_ENV)
    directory = Path(configured) if configured else REPOSITORY / "test-artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_screenshot(driver: WebDriver, name: str) -> Path:
    """Save what the browser shows as ``<artifacts>/<name>.png`` (other characters than [A-Za-z0-9._-] become _)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name.removesuffix(".png")).strip("._") or "screenshot"
    path = artifacts_dir() / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(driver.get_screenshot_as_png())
    return path
