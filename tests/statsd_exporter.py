"""Prometheus' statsd_exporter for the tests: on loopback, on free ports, with a mapping file or none.

Where the binary comes from, first found wins:

* ``AIRFLOW_K8S_STATSD_EXPORTER``: a statsd_exporter binary (or its ``.xz``);
* ``../shared/statsd-exporter/*.xz`` beside the project (the developers' machines and CI), unpacked once
  into ``~/.cache/airflow-k8s`` after its sha256 is checked against that folder's SOURCE.md;
* ``statsd_exporter`` on the PATH.

None of them: ``BinariesMissing`` saying how to get one (tests skip on it, unless
AIRFLOW_K8S_REQUIRE_REAL_TIERS is set, as in CI, where it is a failure).

``start(mapping_yaml)`` runs one: StatsD lines over UDP on ``.statsd_port`` (TCP off, its default listens
on every interface), Prometheus' text format at ``.metrics_url``. ``scrape()`` parses it with
prometheus_client; ``samples(name)`` picks one sample name's (labels, value) pairs. ``check_mapping``
has the exporter itself check a mapping file (``--check-config``) and returns its errors.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.kube_apiserver import CACHE, BinariesMissing, _unpack
from tests.postgres_server import free_port

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "statsd-exporter"
HOW_TO_GET = (
    "no statsd_exporter found: set AIRFLOW_K8S_STATSD_EXPORTER to a statsd_exporter binary (or its .xz), "
    "put statsd_exporter on the PATH (https://github.com/prometheus/statsd_exporter/releases), "
    "or keep ../shared/statsd-exporter beside the project"
)

__all__ = ["BinariesMissing", "StatsdExporter", "check_mapping", "find_binary", "start"]

Sample = tuple[dict[str, str], float]


def find_binary() -> Path:
    """The statsd_exporter binary, or BinariesMissing saying how to get one."""
    if explicit := os.environ.get("AIRFLOW_K8S_STATSD_EXPORTER"):
        binary = Path(explicit)
        if not binary.exists():
            raise BinariesMissing(f"AIRFLOW_K8S_STATSD_EXPORTER={explicit} does not exist; {HOW_TO_GET}")
        return _unpack(binary) if binary.suffix == ".xz" else binary
    if archives := sorted(SHARED.glob("statsd_exporter-*.xz")):
        return _unpack(archives[-1])
    if unpacked := sorted(p for p in CACHE.glob("statsd_exporter-*") if ".partial-" not in p.name):
        # unpacked (and checked against SOURCE.md) by an earlier run from a checkout beside ../shared
        return unpacked[-1]
    if found := shutil.which("statsd_exporter"):
        return Path(found)
    raise BinariesMissing(HOW_TO_GET)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StatsdExporter:
    statsd_port: int
    """UDP, on 127.0.0.1."""
    web_port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/metrics"

    @property
    def statsd_address(self) -> str:
        """What Airflow's ``[metrics] statsd_host``:``statsd_port`` point at."""
        return f"127.0.0.1:{self.statsd_port}"

    def log(self) -> str:
        return (self.directory / "statsd_exporter.log").read_text(errors="replace")

    def send(self, *lines: str) -> None:
        """Each StatsD line in a datagram of its own, as Airflow's StatsD client sends them."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for line in lines:
                sock.sendto(line.encode(), ("127.0.0.1", self.statsd_port))

    def text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return str(response.read().decode())

    def scrape(self) -> list[Metric]:
        """Every metric family /metrics shows (the exporter's own go_*, process_* and statsd_exporter_*
        families too)."""
        return list(text_string_to_metric_families(self.text()))

    def types(self) -> dict[str, str]:
        """Each metric name exactly as /metrics exposes it (what Prometheus stores and PromQL names), and
        its type: statsd_exporter serves the text format 0.0.4 and adds no ``_total`` to a counter's name."""
        found = re.findall(r"(?m)^# TYPE (\S+) (\S+)$", self.text())
        return dict(found)

    def samples(self, name: str) -> list[Sample]:
        """(labels, value) of every sample named exactly ``name``, as prometheus_client's parser names
        them: a counter's samples always end in ``_total`` (even when the exposed name has no such suffix);
        a histogram's are ``name_bucket`` (with ``le``), ``name_sum`` and ``name_count``."""
        return [(dict(s.labels), s.value) for family in self.scrape() for s in family.samples if s.name == name]

    def wait_for(self, name: str, until: Callable[[list[Sample]], bool] = bool, timeout: float = 10) -> list[Sample]:
        """``samples(name)`` once ``until`` holds for them: lines are applied asynchronously (the
        exporter flushes its event queue every 200 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.samples(name)
            if until(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> StatsdExporter:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _wait_ready(exporter: StatsdExporter, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if exporter.process.poll() is not None:
            raise RuntimeError(f"statsd_exporter exited with {exporter.process.returncode}:\n{exporter.log()[-3000:]}")
        # /metrics answers, and the UDP listener is up (it is logged once bound)
        try:
            exporter.text()
            if "Accepting StatsD Traffic" in exporter.log():
                return
        except OSError as error:
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"statsd_exporter not ready after {timeout}s: {last}\n{exporter.log()[-3000:]}")


def start(mapping_yaml: str | None = None, *extra_args: str, timeout: float = 30) -> StatsdExporter:
    """A running exporter, with ``mapping_yaml`` as its ``--statsd.mapping-config`` when given. Use it as
    a context manager, or call ``stop()``."""
    binary = find_binary()
    directory = Path(tempfile.mkdtemp(prefix="airflow-k8s-statsd-exporter-"))
    udp, web = free_udp_port(), free_port()
    arguments = [
        str(binary),
        f"--statsd.listen-udp=127.0.0.1:{udp}",
        "--statsd.listen-tcp=",
        f"--web.listen-address=127.0.0.1:{web}",
        *extra_args,
    ]
    if mapping_yaml is not None:
        (directory / "mapping.yml").write_text(mapping_yaml)
        arguments.append(f"--statsd.mapping-config={directory / 'mapping.yml'}")
    with (directory / "statsd_exporter.log").open("wb") as log:
        process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    exporter = StatsdExporter(udp, web, directory, process)
    try:
        _wait_ready(exporter, timeout)
    except BaseException:
        exporter.stop()
        raise
    return exporter


_ERROR = re.compile(r'level=ERROR .*?error="(?P<error>(?:[^"\\]|\\.)*)"')


def check_mapping(mapping_yaml: str) -> list[str]:
    """The exporter's own check of a mapping file (``--check-config``): its errors, [] when it is valid.

    It stops at the first error, and it ignores keys it does not know (a misspelt optional key passes)."""
    binary = find_binary()
    with tempfile.TemporaryDirectory(prefix="airflow-k8s-statsd-mapping-") as directory:
        path = Path(directory) / "mapping.yml"
        path.write_text(mapping_yaml)
        result = subprocess.run(
            [str(binary), "--check-config", f"--statsd.mapping-config={path}", "--statsd.listen-tcp="],
            capture_output=True,
            text=True,
            timeout=60,
        )
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return []
    errors = [re.sub(r"\\(.)", r"\1", match.group("error")) for match in _ERROR.finditer(output)]
    return errors or [output.strip() or f"statsd_exporter --check-config exited with {result.returncode}"]
