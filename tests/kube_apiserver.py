"""A real Kubernetes API server for the tests: etcd and kube-apiserver on loopback, on free ports.

Where the binaries come from, first found wins:

* ``AIRFLOW_K8S_KUBE_APISERVER``: a kube-apiserver binary (or its ``.xz``);
* ``KUBEBUILDER_ASSETS``: controller-runtime's envtest folder, holding ``kube-apiserver`` and ``etcd``
  (``setup-envtest use 1.36 -p path`` prints it);
* ``../shared/kube-apiserver/*.xz`` beside the project (the developers' machines and CI), unpacked once
  into ``~/.cache/airflow-k8s`` after its sha256 is checked against that folder's SOURCE.md.

etcd is ``etcd`` on the PATH (Debian: ``apt-get install etcd-server``) unless KUBEBUILDER_ASSETS has one.
The server runs with RBAC and the default admission plugins (Pod Security among them), an admin token
in ``system:masters``, and service-account signing keys made here. No controller-manager runs, so
workloads create no pods; pods are checked with server-side dry-run creates.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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


class BinariesMissing(RuntimeError):
    pass


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


def _wait_ready(url: str, token: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
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


def start() -> ApiServer:
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
        return ApiServer(url, ADMIN_TOKEN, directory, processes)
    except BaseException:
        ApiServer("", "", directory, processes).stop()
        raise
