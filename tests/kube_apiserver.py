"""A real Kubernetes API server for the tests: etcd and kube-apiserver on loopback, on free ports.

Where the binaries come from, first found wins:

* ``AIRFLOW_K8S_KUBE_APISERVER``: a kube-apiserver binary (or its ``.xz``);
* ``KUBEBUILDER_ASSETS``: controller-runtime's envtest folder, holding ``kube-apiserver`` and ``etcd``
  (``setup-envtest use 1.36 -p path`` prints it);
* ``../shared/kube-apiserver/*.xz`` beside the project (the developers' machines and CI), unpacked once
  into ``~/.cache/airflow-k8s`` after its sha256 is checked against that folder's SOURCE.md;
* a binary unpacked so earlier, for a clone elsewhere on the same machine (e.g. a clean clone in /tmp).

etcd is ``etcd`` on the PATH (Debian: ``apt-get install etcd-server``) unless KUBEBUILDER_ASSETS has one.
The server runs with RBAC and the default admission plugins (Pod Security among them), an admin token
in ``system:masters``, and service-account signing keys made here. No controller-manager runs, so
workloads create no pods; pods are checked with server-side dry-run creates.

``start(crds=CRDS)`` (or ``install_crds`` on a running server) installs the CustomResourceDefinitions
vendored in ``tools/crds`` (KEDA's ScaledObject and TriggerAuthentication; Gateway API's HTTPRoute,
Gateway, GatewayClass and ReferenceGrant; the Prometheus operator's ServiceMonitor, PodMonitor and
PrometheusRule) with server-side apply and waits until each is Established, so the custom kinds are
checked by the API server itself: their schemas and their CEL rules.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import lzma
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.postgres_server import free_port

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "kube-apiserver"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "airflow-k8s"
ADMIN_TOKEN = "airflow-k8s-test-admin-token"
HOW_TO_GET = (
    "no kube-apiserver found: set AIRFLOW_K8S_KUBE_APISERVER to a kube-apiserver binary, or KUBEBUILDER_ASSETS "
    "to an envtest folder (go run sigs.k8s.io/controller-runtime/tools/setup-envtest@latest use 1.36 -p path), "
    "or keep ../shared/kube-apiserver beside the project; and install etcd (Debian: apt-get install etcd-server)"
)
CRDS = tuple(sorted((ROOT / "tools" / "crds").glob("*/*.yaml")))
"""Every CustomResourceDefinition vendored in tools/crds (KEDA, Gateway API, Prometheus operator), found by
this glob: a new folder there is installed with no change here."""
CRD_FIELD_MANAGER = "test-setup"


class BinariesMissing(RuntimeError):
    pass


class ApiError(RuntimeError):
    """A non-2xx answer: ``status`` is the HTTP code, ``body`` the server's Status object."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {self.message}")

    @property
    def message(self) -> str:
        """The server's message, with every cause (field path and reason) it lists."""
        details = cast("dict[str, Any]", self.body.get("details") or {})
        causes = cast("list[dict[str, Any]]", details.get("causes") or [])
        parts = [str(self.body.get("message", ""))]
        parts += [f"{cause.get('field', '')}: {cause.get('message', '')}" for cause in causes]
        return "\n".join(parts)


def _unpack(archive: Path) -> Path:
    """An .xz binary, unpacked once into the cache (checked against SOURCE.md's sha256 when it has one)."""
    target = CACHE / archive.name.removesuffix(".xz")
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    # one partial file per process: parallel test workers may unpack at the same time
    partial = target.with_suffix(f".partial-{os.getpid()}")
    with lzma.open(archive) as source, partial.open("wb") as out:
        shutil.copyfileobj(source, out)
    source_md = archive.parent / "SOURCE.md"
    if source_md.exists():
        expected = re.findall(r"sha256 of the decompressed binary: `([0-9a-f]{64})`", source_md.read_text())
        actual = hashlib.sha256(partial.read_bytes()).hexdigest()
        if expected and expected[0] != actual:
            partial.unlink()
            raise BinariesMissing(f"{archive} unpacked to sha256 {actual}, SOURCE.md says {expected[0]}")
    partial.chmod(0o755)
    partial.rename(target)
    return target


def find_binaries() -> tuple[Path, Path]:
    """(kube-apiserver, etcd), or BinariesMissing saying how to get them."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    apiserver: Path | None = None
    etcd: Path | None = None
    if explicit := os.environ.get("AIRFLOW_K8S_KUBE_APISERVER"):
        apiserver = Path(explicit)
        apiserver = _unpack(apiserver) if apiserver.suffix == ".xz" else apiserver
    elif assets and (Path(assets) / "kube-apiserver").exists():
        apiserver = Path(assets) / "kube-apiserver"
    elif archives := sorted(SHARED.glob("kube-apiserver-*.xz")):
        apiserver = _unpack(archives[-1])
    elif unpacked := sorted(p for p in CACHE.glob("kube-apiserver-*") if ".partial-" not in p.name):
        # unpacked (and checked against SOURCE.md) by an earlier run from a checkout beside ../shared
        apiserver = unpacked[-1]
    if assets and (Path(assets) / "etcd").exists():
        etcd = Path(assets) / "etcd"
    elif found := shutil.which("etcd"):
        etcd = Path(found)
    if apiserver is None or etcd is None:
        raise BinariesMissing(HOW_TO_GET)
    return apiserver, etcd


@dataclass
class ApiServer:
    url: str
    token: str
    directory: Path
    processes: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                # its graceful shutdown waits for clients that are gone: nothing is lost here
                process.kill()
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API call as the admin: the answer's JSON, or ApiError on a non-2xx answer."""
        url = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60, context=insecure_context()) as response:
                return cast("dict[str, Any]", json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                status = cast("dict[str, Any]", json.loads(raw))
            except ValueError:
                status = {"message": raw.decode(errors="replace")}
            raise ApiError(error.code, status) from None

    def apply(self, path: str, manifest: dict[str, Any], field_manager: str, **query: str) -> dict[str, Any]:
        """Server-side apply (forced, strict field validation) of ``manifest`` at its object ``path``."""
        return self.request(
            "PATCH",
            path,
            manifest,
            query={"fieldManager": field_manager, "force": "true", "fieldValidation": "Strict", **query},
            content_type="application/apply-patch+yaml",
        )


def install_crds(server: ApiServer, paths: Sequence[Path] = CRDS, timeout: float = 120) -> list[str]:
    """Server-side apply every CustomResourceDefinition in ``paths``; return their names once all are
    Established (their kinds are served from then on)."""
    names: list[str] = []
    for path in paths:
        for document in cast("list[dict[str, Any] | None]", list(yaml.safe_load_all(path.read_text()))):
            if document and document.get("kind") == "CustomResourceDefinition":
                crd = document
                name = str(crd["metadata"]["name"])
                server.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", crd, CRD_FIELD_MANAGER)
                names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        wait_established(server, name, deadline)
    return names


def wait_established(server: ApiServer, name: str, deadline: float) -> None:
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        found = server.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        status = cast("dict[str, Any]", found.get("status") or {})
        conditions = cast("list[dict[str, str]]", status.get("conditions") or [])
        last = {condition["type"]: condition["status"] for condition in conditions}
        if last.get("Established") == "True":
            return
        time.sleep(0.1)
    raise TimeoutError(f"CRD {name} not Established: {last}")


@functools.cache
def insecure_context() -> ssl.SSLContext:
    """The test server's certificate is its own, made at start-up. One context for every request: a new
    one reads the system's CA bundle."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _wait_ready(url: str, token: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    context = insecure_context()
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kube-apiserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        request = urllib.request.Request(f"{url}/readyz", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                if response.status == 200:
                    return
        except OSError as error:
            last = error
        time.sleep(0.5)
    raise TimeoutError(f"kube-apiserver not ready after {timeout}s: {last}\n{log.read_text()[-3000:]}")


def start(crds: Sequence[Path] = ()) -> ApiServer:
    """A running server; with ``crds`` (e.g. ``CRDS``), those CustomResourceDefinitions installed and
    Established."""
    apiserver, etcd = find_binaries()
    directory = Path(tempfile.mkdtemp(prefix="airflow-k8s-apiserver-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        client, peer = free_port(), free_port()
        etcd_log = (directory / "etcd.log").open("wb")
        processes.append(
            subprocess.Popen(
                [
                    str(etcd),
                    f"--data-dir={directory / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{client}",
                    f"--advertise-client-urls=http://127.0.0.1:{client}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer}",
                    "--unsafe-no-fsync",
                ],
                stdout=etcd_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (directory / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (directory / "sa.pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        (directory / "tokens.csv").write_text(f'{ADMIN_TOKEN},test-admin,1000,"system:masters"\n')
        port = free_port()
        log = directory / "kube-apiserver.log"
        processes.append(
            subprocess.Popen(
                [
                    str(apiserver),
                    f"--etcd-servers=http://127.0.0.1:{client}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={port}",
                    f"--cert-dir={directory / 'certs'}",
                    # loopback is not a valid Endpoints address: nothing reconciles the kubernetes Service
                    "--endpoint-reconciler-type=none",
                    "--authorization-mode=RBAC",
                    f"--token-auth-file={directory / 'tokens.csv'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={directory / 'sa.pub'}",
                    f"--service-account-signing-key-file={directory / 'sa.key'}",
                    "--service-cluster-ip-range=10.96.0.0/16",
                ],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        url = f"https://127.0.0.1:{port}"
        _wait_ready(url, ADMIN_TOKEN, processes[-1], log, timeout=300)
        server = ApiServer(url, ADMIN_TOKEN, directory, processes)
        install_crds(server, crds)
        return server
    except BaseException:
        ApiServer("", "", directory, processes).stop()
        raise


MODULES = (
    "tests/test_apiserver_real.py",
    "tests/test_gateway_api_schema.py",
    "tests/test_prometheus_operator_schema.py",
)
"""The modules that share the session's server (one xdist scope, tests/conftest.py): each works in
namespaces of its own."""


@contextlib.contextmanager
def running(crds: Sequence[Path] = CRDS) -> Iterator[ApiServer]:
    """A server with ``crds`` installed; skipped (with how to get the binaries) where they are missing,
    unless AIRFLOW_K8S_REQUIRE_REAL_TIERS is set (CI)."""
    import pytest

    try:
        server = start(crds=crds)
    except BinariesMissing as missing:
        if os.environ.get("AIRFLOW_K8S_REQUIRE_REAL_TIERS"):
            raise  # CI installs the binaries: a missing one is a failure there, not a skip
        pytest.skip(str(missing))
    try:
        yield server
    finally:
        server.stop()


def create_namespace(server: ApiServer, namespace: str) -> ApiServer:
    server.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    return server
