"""Run a container of a rendered pod spec on this machine, with real Airflow, as faithfully as we can.

* environment: literal values as given; ``secretKeyRef``/``secretRef`` resolved from the stack's own
  Secrets (the mock engine's values); the stack's Services (Postgres, PgBouncer, Redis, the api-server), by their
  cluster DNS names, mapped to the test's servers on 127.0.0.1;
* ports: a pod has its own network namespace in the cluster, not here. Every port a container listens
  on gets a free port of this machine (``LocalPod.port(8080)``), set through the Airflow setting (or the
  config file line) that chooses it, so two runs, or a developer's own services, never collide;
* volumes: ConfigMaps and Secrets written the way kubelet writes them (including the ``..data``
  directory and symlinks), emptyDirs as empty writable directories; container paths in the
  environment and arguments are mapped to those directories;
* a read-only root filesystem: the image's Airflow home and $HOME are directories the process cannot
  write to, only the emptyDir mounts are writable. When the tests run as root, processes run without
  CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv), so file permissions apply to them too.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config import names
from tests.postgres_server import PostgresServer, free_port
from tests.support import Evaluation, containers, decoded_secret, env_of, reveal

IMAGE_HOME = "/home/airflow"
WITHOUT_PERMISSION_BYPASS = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
VENV_BIN = Path(sys.executable).parent


# The Airflow setting that chooses each port an Airflow container listens on.
PORT_SETTINGS = {
    names.API_SERVER_PORT: "AIRFLOW__API__PORT",
    names.SCHEDULER_HEALTH_PORT: names.AirflowEnv.SCHEDULER_HEALTH_PORT,
    names.WORKER_LOG_PORT: "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    names.TRIGGERER_LOG_PORT: "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
}


class LocalPod:
    def __init__(
        self,
        evaluation: Evaluation,
        kind: str,
        name: str,
        database_port: int,
        root: Path | None = None,
        redis_port: int | None = None,
        api_server_port: int | None = None,
        manifest: dict[str, Any] | None = None,
        statsd_port: int | None = None,
        pgbouncer_port: int | None = None,
        claims: Mapping[str, Path] | None = None,
    ) -> None:
        self.evaluation = evaluation
        # a manifest the stack ships inside another object (the KubernetesExecutor's pod template)
        self.manifest = manifest if manifest is not None else evaluation.find(kind, name)
        self.spec = self.manifest["spec"]["template"]["spec"] if kind != "Pod" else self.manifest["spec"]
        self.namespace = self.manifest["metadata"]["namespace"]
        self.database_port = database_port
        self.redis_port = redis_port
        self.api_server_port = api_server_port
        self.pgbouncer_port = pgbouncer_port
        """The test's PgBouncer on 127.0.0.1, standing in for the stack's airflow-pgbouncer Service."""
        self.statsd_port = statsd_port
        self.claims = dict(claims or {})
        """Volume claim name -> a directory standing in for the volume (it outlives the pod)."""
        """The test's statsd_exporter (UDP on 127.0.0.1), standing in for the stack's airflow-statsd Service."""
        listened = {p["containerPort"] for c in self.all_containers() for p in c.get("ports", [])}
        self.ports = {container_port: free_port() for container_port in sorted(listened)}
        """Container port -> the port of this machine it listens on here."""
        self.root = root or Path(tempfile.mkdtemp(prefix=f"local-pod-{name}-"))
        self.root.chmod(0o755)
        # The image's filesystem: read-only for the process (the container's readOnlyRootFilesystem).
        self.airflow_home = self.root / "image" / "opt-airflow"
        self.home = self.root / "image" / "home-airflow"
        for directory in (self.airflow_home, self.home):
            directory.mkdir(parents=True)
        self.volumes = {volume["name"]: self._materialize(volume) for volume in self.spec.get("volumes", [])}
        # A mount below the image's directories (e.g. the logs emptyDir at /opt/airflow/logs) shows
        # up inside them, as in the container.
        for container in [*self.spec.get("initContainers", []), *self.spec["containers"]]:
            for volume_mount in container.get("volumeMounts", []):
                local = Path(self.local_path({}, volume_mount["mountPath"]))
                if local.is_relative_to(self.root / "image") and not local.is_symlink():
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.symlink_to(self.volumes[volume_mount["name"]])
        for directory in (self.airflow_home, self.home):
            directory.chmod(0o555)
        self.processes: list[subprocess.Popen[str]] = []

    # --- volumes ---

    def volume_dir(self, name: str) -> Path:
        return self.root / "volumes" / name

    def _materialize(self, volume: dict[str, Any]) -> Path:
        target = self.volume_dir(volume["name"])
        if "persistentVolumeClaim" in volume:
            claim = self.claims[volume["persistentVolumeClaim"]["claimName"]]
            claim.mkdir(parents=True, exist_ok=True)
            claim.chmod(0o777)  # the process runs without the permission bypass (see above)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(claim)
            return target
        if "emptyDir" in volume:
            target.mkdir(parents=True)
            return target
        if "configMap" in volume:
            source = volume["configMap"]
            data = reveal(self.evaluation.find("ConfigMap", source["name"])["data"])
        elif "secret" in volume:
            source = volume["secret"]
            encoded = reveal(self.evaluation.find("Secret", source["secretName"])["data"])
            # Secrets carry URLs to the stack's Services and config files naming container paths.
            pod_paths = {"volumeMounts": [m for c in self.all_containers() for m in c.get("volumeMounts", [])]}
            data = {
                k: self.local_path(pod_paths, self.map_host(base64.b64decode(v).decode())) for k, v in encoded.items()
            }
        else:
            raise NotImplementedError(f"volume type of {volume}")
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        write_atomic_volume(target, {item["path"]: data[item["key"]] for item in items})
        return target

    def mount_map(self, container: dict[str, Any]) -> dict[str, Path]:
        mapping = {"/opt/airflow": self.airflow_home, IMAGE_HOME: self.home}
        if not container:
            return mapping
        for volume_mount in container.get("volumeMounts", []):
            target = self.volume_dir(volume_mount["name"])
            # a subPath mount shows one entry of the volume at the mount path
            mapping[volume_mount["mountPath"]] = (
                target / volume_mount["subPath"] if "subPath" in volume_mount else target
            )
        return mapping

    def local_path(self, container: dict[str, Any], text: str) -> str:
        """Map every container path in ``text`` (a path, or a command such as ``cat /path``) to here."""
        mapping = self.mount_map(container)
        # one pass, longest paths first, so a mapped path is never mapped again
        alternatives = "|".join(re.escape(path) for path in sorted(mapping, key=len, reverse=True))
        pattern = rf"(?<![\w./-])({alternatives})(?=/|$|\s)"
        return re.sub(pattern, lambda match: str(mapping[match.group(1)]), text)

    # --- environment ---

    def secret_value(self, name: str, key: str) -> str:
        data = reveal(self.evaluation.find("Secret", name)["data"])
        return base64.b64decode(data[key]).decode()

    def visible_paths(self, name: str) -> list[Path]:
        """What a process of this container can see of the pod: the image's directories and its own
        mounts (another container's mounts are not in its filesystem)."""
        container = self.container(name)
        return [self.airflow_home, self.home, *self.mount_map(container).values()]

    def port(self, container_port: int) -> int:
        """Where this pod's container port listens on this machine."""
        return self.ports[container_port]

    def map_host(self, value: str) -> str:
        """The stack's Services, by their cluster DNS names, are the test's servers on 127.0.0.1; the
        pod's own ports, on loopback or in a config file's `port` line, are its ports here."""
        for service, port, local_port in (
            (names.POSTGRES, names.POSTGRES_PORT, self.database_port),
            (names.REDIS, names.REDIS_PORT, self.redis_port),
            (names.API_SERVER, names.API_SERVER_PORT, self.api_server_port),
            (names.PGBOUNCER, names.PGBOUNCER_PORT, self.pgbouncer_port),
        ):
            if local_port is not None:
                value = value.replace(f"{names.dns_name(service, self.namespace)}:{port}", f"127.0.0.1:{local_port}")
        for container_port, local_port in self.ports.items():
            value = re.sub(rf"(127\.0\.0\.1(?::| -p ))({container_port})\b", rf"\g<1>{local_port}", value)
            value = re.sub(rf"(?m)^port {container_port}$", f"port {local_port}", value)
        # a pod listens on every interface of its own network namespace; here, on loopback only
        return re.sub(r"(?m)^bind \* -::\*$", "bind 127.0.0.1", value)

    def environment(self, container: dict[str, Any]) -> dict[str, str]:
        environment = {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "AIRFLOW_HOME": str(self.airflow_home),
            "HOME": str(self.home),
            "TMPDIR": self.local_path(container, "/tmp"),
            # kubelet sets HOSTNAME to the pod's hostname (Celery's node name, probes use it)
            "HOSTNAME": socket.gethostname(),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for source in container.get("envFrom", []):
            secret = source["secretRef"]["name"]
            data = reveal(self.evaluation.find("Secret", secret)["data"])
            environment.update({k: base64.b64decode(v).decode() for k, v in data.items()})
        for entry in container.get("env", []):
            if "value" in entry:
                value = entry["value"]
            else:
                reference = entry["valueFrom"]["secretKeyRef"]
                value = self.secret_value(reference["name"], reference["key"])
            environment[entry["name"]] = self.map_host(self.local_path(container, value))
        for container_port, local_port in self.ports.items():
            if container_port in PORT_SETTINGS:
                environment[PORT_SETTINGS[container_port]] = str(local_port)
        statsd = names.AirflowEnv
        if self.statsd_port is not None and environment.get(statsd.STATSD_HOST) == names.dns_name(
            names.STATSD, self.namespace
        ):
            assert environment[statsd.STATSD_PORT] == str(names.STATSD_PORT), environment[statsd.STATSD_PORT]
            environment[statsd.STATSD_HOST] = "127.0.0.1"
            environment[statsd.STATSD_PORT] = str(self.statsd_port)
        return environment

    def all_containers(self) -> list[dict[str, Any]]:
        return [*self.spec.get("initContainers", []), *self.spec["containers"]]

    def container(self, name: str) -> dict[str, Any]:
        for container in self.all_containers():
            if container["name"] == name:
                return container
        raise KeyError(name)

    def command(self, container: dict[str, Any]) -> list[str]:
        arguments = container.get("command", []) + container.get("args", [])
        return [self.map_host(self.local_path(container, arg)) for arg in arguments]

    def _prefix(self) -> list[str]:
        return WITHOUT_PERMISSION_BYPASS if os.geteuid() == 0 else []

    def run(
        self, name: str, timeout: float, args: list[str] | None = None, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        container = self.container(name)
        command = args if args is not None else self.command(container)
        return subprocess.run(
            [*self._prefix(), *command],
            env={**self.environment(container), **(extra_env or {})},
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, name: str, extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        container = self.container(name)
        log = (self.root / f"{name}.log").open("w")
        process = subprocess.Popen(
            [*self._prefix(), *self.command(container)],
            env={**self.environment(container), **(extra_env or {})},
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def exec_probe(self, container_name: str, probe: str, timeout: float) -> subprocess.CompletedProcess[str]:
        container = self.container(container_name)
        return self.run(
            container_name, timeout, self.command({**container, "args": container[probe]["exec"]["command"]})
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def stack_database(evaluation: Evaluation) -> dict[str, Any]:
    """The stack's Postgres container environment: POSTGRES_DB and POSTGRES_USER name its database."""
    return env_of(next(containers(evaluation.find("StatefulSet", names.POSTGRES))))


def create_metadata_database(evaluation: Evaluation, postgres: PostgresServer) -> None:
    """An empty metadata database on the test server, named and owned as the stack's Postgres creates it:
    the official image makes POSTGRES_USER the server's superuser."""
    database = stack_database(evaluation)
    password = decoded_secret(evaluation, names.POSTGRES_SECRET)[names.POSTGRES_PASSWORD_KEY]
    postgres.create_database(database["POSTGRES_DB"], database["POSTGRES_USER"], password, superuser=True)


TEMPLATE_DATABASE = "airflow-k8s-migrated-template"
_TEMPLATES: dict[int, str] = {}
"""Server port -> the output of the migration step that made its template."""


def migrated_template(postgres: PostgresServer) -> str:
    """A metadata database migrated once per server by the real migration step, to copy from."""
    template_migration(postgres)
    return TEMPLATE_DATABASE


def template_migration(postgres: PostgresServer) -> str:
    """The output of the dev stack's migrate-database init container, run for real on an empty database
    to make the server's template (once per server)."""
    if postgres.port not in _TEMPLATES:
        from tests.support import evaluate_ok

        evaluation = evaluate_ok("dev", database={"databaseName": TEMPLATE_DATABASE})
        result = migrate_new_metadata_database(evaluation, postgres)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        _TEMPLATES[postgres.port] = result.stdout + result.stderr
    return _TEMPLATES[postgres.port]


ADMIN_TEMPLATE_DATABASE = "airflow-k8s-admin-template"
_ADMIN_TEMPLATES: set[int] = set()
"""The ports of the servers that hold an admin template."""


def admin_template(postgres: PostgresServer) -> str:
    """The migrated template after the api-server pod's real bootstrap-admin step created the generated
    admin login (FAB's roles and the user: seconds of CPU). Every stack generates the same admin password
    under the mock engine (a sentinel of the resource's name), so an api-server pod on a copy runs its own
    bootstrap-admin step and finds the login up to date with one query."""
    if postgres.port not in _ADMIN_TEMPLATES:
        from tests.support import evaluate_ok

        evaluation = evaluate_ok("dev", database={"databaseName": ADMIN_TEMPLATE_DATABASE})
        copy_migrated_database(evaluation, postgres)
        api_server = LocalPod(evaluation, "Deployment", names.API_SERVER, postgres.port)
        try:
            created = api_server.run("bootstrap-admin", timeout=600)
        finally:
            api_server.stop()
        assert created.returncode == 0 and "created user" in created.stdout, created.stderr[-3000:]
        _ADMIN_TEMPLATES.add(postgres.port)
    return ADMIN_TEMPLATE_DATABASE


def copy_migrated_database(evaluation: Evaluation, postgres: PostgresServer, with_admin: bool = False) -> None:
    """A migrated metadata database for this stack, copied from the template (no migration run).

    ``with_admin``: copied from the template that also holds the generated admin login, for tests that
    sign in but do not test the bootstrap itself (tests/test_control_plane_real.py does, on a database
    it migrates)."""
    template = admin_template(postgres) if with_admin else migrated_template(postgres)
    create_metadata_database(evaluation, postgres)
    database = stack_database(evaluation)
    postgres.clone(template, database["POSTGRES_DB"], database["POSTGRES_USER"])


def task_instance(evaluation: Evaluation, postgres: PostgresServer, ti_id: str) -> dict[str, Any]:
    """A task instance's state, hostname and try number, read from the stack's metadata database with one
    query (an Airflow process would spend seconds importing Airflow to read the same row)."""
    rows = postgres.rows(
        "SELECT state, hostname, try_number FROM task_instance WHERE id = %s::uuid",
        stack_database(evaluation)["POSTGRES_DB"],
        (ti_id,),
    )
    assert len(rows) == 1, f"task instance {ti_id}: {rows}"
    state, hostname, try_number = rows[0]
    return {"state": state, "hostname": hostname, "try_number": try_number}


def run_migration_step(
    evaluation: Evaluation, postgres: PostgresServer, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The scheduler pod's migrate-database init container, run for real on the stack's database (it
    migrates, and sets the roles' SCRAM verifier and KEDA's role where the stack has them)."""
    scheduler = LocalPod(evaluation, "Deployment", names.SCHEDULER, postgres.port)
    try:
        return scheduler.run("migrate-database", timeout=timeout)
    finally:
        scheduler.stop()


def migrate_new_metadata_database(evaluation: Evaluation, postgres: PostgresServer) -> subprocess.CompletedProcess[str]:
    """A new metadata database, migrated by the scheduler's migrate-database init container, for real."""
    create_metadata_database(evaluation, postgres)
    return run_migration_step(evaluation, postgres, timeout=300)


EXECUTE_WORKLOAD = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string"]
"""The command the KubernetesExecutor gives its task pods, before the workload's JSON."""


def task_pod(
    evaluation: Evaluation, database_port: int, api_server_port: int, template: dict[str, Any] | None = None
) -> LocalPod:
    """A KubernetesExecutor task pod, from the stack's pod template (or ``template``, a changed copy)."""
    if template is None:
        shipped = evaluation.find("ConfigMap", names.POD_TEMPLATE_CONFIG_MAP)["data"][names.POD_TEMPLATE_KEY]
        template = json.loads(shipped)
    return LocalPod(
        evaluation, "Pod", "airflow-task", database_port, api_server_port=api_server_port, manifest=template
    )


def run_workload(
    pod: LocalPod, workload: str, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a queued task's workload in a task pod's container, as the KubernetesExecutor's pods do."""
    return pod.run("base", 600, [*EXECUTE_WORKLOAD, workload], extra_env=extra_env)


def write_atomic_volume(target: Path, files: Mapping[str, str]) -> None:
    """Lay out a ConfigMap/Secret volume as kubelet's atomic writer does.

    target/..2026_01_01_00_00_00.000000000/<paths>   the real files
    target/..data -> ..2026_...                        flipped atomically on updates
    target/<top-level entry> -> ..data/<entry>         what the container sees
    """
    stamp = "..2026_01_01_00_00_00.000000000"
    real = target / stamp
    for relative, content in files.items():
        path = real / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (target / "..data").symlink_to(stamp)
    for entry in sorted({relative.split("/")[0] for relative in files}):
        (target / entry).symlink_to(f"..data/{entry}")
    for path in [target, *target.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def wait_for_http(url: str, timeout: float, process: subprocess.Popen[str] | None = None) -> int:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError as error:
            last = error
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


CELERY_READY = r"celery@\S+ ready\."
"""What a Celery worker logs once it consumes its queues."""


def wait_for_log(pod: LocalPod, container: str, pattern: str, process: subprocess.Popen[str], timeout: float) -> bool:
    """Whether a line matching ``pattern`` appeared in the container's log before its process ended or
    ``timeout`` passed. Reading the log costs nothing; an exec probe starts a Python process (seconds of
    CPU) each time, so the tests probe once this says the process is ready, instead of in a loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, pod.log(container), re.MULTILINE):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.25)
    return False


HARNESS = str(Path(__file__).resolve().parent / "dag_harness.py")


def run_harness(pod: LocalPod, container: str, *args: str, timeout: float = 600) -> Any:
    """Run tests/dag_harness.py in one of the pod's containers; its JSON result."""
    result = pod.run(container, timeout, ["python", HARNESS, *args])
    marker = [line for line in result.stdout.splitlines() if line.startswith("@@RESULT@@")]
    assert result.returncode == 0 and marker, (result.stdout[-3000:], result.stderr[-5000:])
    return json.loads(marker[-1].removeprefix("@@RESULT@@"))
