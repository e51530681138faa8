"""Where a pod's DAGs come from: a ConfigMap of ./dags (dev), a git-sync sidecar, Airflow's Git DAG
bundle (Airflow clones the repository itself, per DAG version), or the image.

Pure functions give every Airflow pod the same view: the DAGs folder, the volumes and mounts that hold
it, and (git-sync) the containers that fill it. The DAG folder itself is read and checked here, before
anything is registered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from components.config import names
from components.config.model import StackConfig
from components.kube import builders

if TYPE_CHECKING:
    from components.kube.manifest_types import ConfigMapVolumeSource, Container, EnvVar, KeyToPath, Volume, VolumeMount

REPOSITORY_DAGS = Path(__file__).resolve().parent.parent.parent / "dags"
CONFIG_MAP_MOUNT = "/opt/airflow/dags"
IMAGE_DAGS_FOLDER = "/opt/airflow/dags"
GIT_ROOT = "/git"
GIT_LINK = "repo"
GIT_SECRET_MOUNT = "/etc/git-secret"
GIT_SYNC_UID = 65533
"""The git-sync image's own user: ssh needs a passwd entry for the running uid."""
VOLUME = "dags"
BUNDLE_VOLUME = "dag-bundles"
BUNDLE_STORAGE = "/opt/airflow/dag-bundles"
"""[dag_processor] dag_bundle_storage_path: the bare clone and one checkout per DAG version in use."""
GIT_BUNDLE_CLASSPATH = "airflow.providers.git.bundles.git.GitDagBundle"
GIT_SECRET_VOLUME = "git-secret"
CONFIG_MAP_LIMIT_BYTES = 1024 * 1024
"""The API server rejects ConfigMaps whose keys and values exceed 1 MiB together."""
IGNORE_FILE = ".airflowignore"
# A ConfigMap volume holds ..data (a symlink) and ..<timestamp> (the real directory) next to the
# files. Airflow walks the folder following symlinks and stops with "Detected recursive loop" when it
# meets both, so the ConfigMap's ignore file always excludes them.
CONFIG_MAP_IGNORE_LINE = "..*/  # airflow-k8s: the ConfigMap volume's own ..data directories"
_SKIPPED_PARTS = {"__pycache__", ".git", ".pytest_cache"}
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class DagFolderError(ValueError):
    """The DAG folder cannot be shipped as a ConfigMap."""


@dataclass(frozen=True)
class DagBundle:
    """The DAG folder as ConfigMap data: key -> content, and key -> relative path in the volume."""

    data: dict[str, str]
    paths: dict[str, str]

    @property
    def size_bytes(self) -> int:
        return sum(len(key.encode()) + len(value.encode()) for key, value in self.data.items())


def _key_for(relative: str) -> str:
    return relative.replace("/", "__")


def collect(folder: Path | None = None) -> DagBundle:
    """Read a DAG folder (default: the repository's dags/) into ConfigMap data, or raise DagFolderError."""
    folder = folder if folder is not None else REPOSITORY_DAGS
    data: dict[str, str] = {}
    paths: dict[str, str] = {}
    problems: list[str] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if not path.is_file() or _SKIPPED_PARTS & set(path.relative_to(folder).parts) or path.suffix == ".pyc":
            continue
        key = _key_for(relative)
        if not _KEY.match(key) or key in data:
            problems.append(f"{relative}: cannot be a ConfigMap key (letters, digits, '-', '_', '.' only)")
            continue
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.append(f"{relative}: not UTF-8 text")
            continue
        data[key] = content
        paths[key] = relative
    ignore_lines = data.get(IGNORE_FILE, "").splitlines()
    data[IGNORE_FILE] = "\n".join([*ignore_lines, CONFIG_MAP_IGNORE_LINE]) + "\n"
    paths[IGNORE_FILE] = IGNORE_FILE
    bundle = DagBundle(data=data, paths=paths)
    if bundle.size_bytes > CONFIG_MAP_LIMIT_BYTES:
        problems.append(
            f"the DAG folder {folder} holds {bundle.size_bytes} bytes ({bundle.size_bytes / 2**20:.2f} MiB) of "
            f"file names and content; a ConfigMap holds at most {CONFIG_MAP_LIMIT_BYTES} bytes (1 MiB). "
            "Deliver the DAGs with git-sync (dags.delivery: git-sync) or bake them into the image "
            "(dags.delivery: image)"
        )
    if problems:
        raise DagFolderError("cannot ship the DAGs as a ConfigMap:\n" + "\n".join(f"  - {p}" for p in problems))
    return bundle


# --- what pods see -----------------------------------------------------------------------------------


def uses_ssh(repo: str) -> bool:
    return repo.startswith(("git@", "ssh://")) or urlsplit(repo).scheme == "ssh"


def dags_folder(config: StackConfig) -> str:
    delivery = config.dags.delivery
    if delivery == "configmap":
        return CONFIG_MAP_MOUNT
    if delivery == "git-sync":
        sub_path = config.dags.git_sync.sub_path.strip("/")
        return f"{GIT_ROOT}/{GIT_LINK}" + (f"/{sub_path}" if sub_path else "")
    return IMAGE_DAGS_FOLDER


def volumes(config: StackConfig, bundle_paths: Mapping[str, str] | None = None) -> list[Volume]:
    delivery = config.dags.delivery
    if delivery == "configmap":
        source: ConfigMapVolumeSource = {"name": names.DAGS_CONFIG_MAP}
        if bundle_paths is not None:
            source["items"] = [{"key": key, "path": path} for key, path in sorted(bundle_paths.items())]
        return [{"name": VOLUME, "configMap": source}]
    if delivery == "git-sync":
        found = [builders.empty_dir(VOLUME, "2Gi"), builders.empty_dir("git-sync-tmp", "256Mi")]
        git = config.dags.git_sync
        if git.credentials_secret and git.repo:
            keys = ["ssh", "known_hosts"] if uses_ssh(git.repo) else ["GITSYNC_PASSWORD"]
            items: list[KeyToPath] = [{"key": key, "path": key} for key in keys]
            found.append(
                {
                    "name": GIT_SECRET_VOLUME,
                    "secret": {"secretName": git.credentials_secret, "items": items, "defaultMode": 0o440},
                }
            )
        return found
    return []


def mounts(config: StackConfig) -> list[VolumeMount]:
    delivery = config.dags.delivery
    if delivery == "configmap":
        return [builders.mount(VOLUME, CONFIG_MAP_MOUNT, read_only=True)]
    if delivery == "git-sync":
        return [builders.mount(VOLUME, GIT_ROOT, read_only=True)]
    return []


def _git_sync_container(config: StackConfig, name: str, one_time: bool) -> Container:
    git = config.dags.git_sync
    assert git.repo is not None, "validated: git-sync delivery has a repository"
    environment: list[EnvVar] = [
        builders.env("GITSYNC_REPO", git.repo),
        builders.env("GITSYNC_REF", git.ref),
        builders.env("GITSYNC_ROOT", GIT_ROOT),
        builders.env("GITSYNC_LINK", GIT_LINK),
        builders.env("GITSYNC_DEPTH", "1"),
        builders.env("GITSYNC_PERIOD", git.period),
        # Files written by git-sync must be readable by Airflow's uid (group 0).
        builders.env("GITSYNC_GROUP_WRITE", "true"),
        # git keeps its config in $HOME; the root filesystem is read-only.
        builders.env("HOME", "/tmp"),
    ]
    container_mounts = [builders.mount(VOLUME, GIT_ROOT), builders.mount("git-sync-tmp", "/tmp")]
    if one_time:
        environment.append(builders.env("GITSYNC_ONE_TIME", "true"))
    else:
        # Keep serving the last good checkout through transient remote failures.
        environment.append(builders.env("GITSYNC_MAX_FAILURES", "-1"))
    if git.credentials_secret:
        if uses_ssh(git.repo):
            environment += [
                builders.env("GITSYNC_SSH_KEY_FILE", f"{GIT_SECRET_MOUNT}/ssh"),
                builders.env("GITSYNC_SSH_KNOWN_HOSTS", "true"),
                builders.env("GITSYNC_SSH_KNOWN_HOSTS_FILE", f"{GIT_SECRET_MOUNT}/known_hosts"),
            ]
            container_mounts.append(builders.mount(GIT_SECRET_VOLUME, GIT_SECRET_MOUNT, read_only=True))
        else:
            environment += [
                builders.env_from_secret("GITSYNC_USERNAME", git.credentials_secret, "GITSYNC_USERNAME"),
                builders.env("GITSYNC_PASSWORD_FILE", f"{GIT_SECRET_MOUNT}/GITSYNC_PASSWORD"),
            ]
            container_mounts.append(builders.mount(GIT_SECRET_VOLUME, GIT_SECRET_MOUNT, read_only=True))
    security = builders.container_security_context()
    security["runAsUser"] = GIT_SYNC_UID
    container: Container = {
        "name": name,
        "image": git.image,
        "imagePullPolicy": "IfNotPresent",
        "env": environment,
        "resources": builders.resources(git.resources.requests, git.resources.limits),
        "securityContext": security,
        "volumeMounts": container_mounts,
    }
    if not one_time:
        # A native sidecar: starts before, and stops after, the pod's main containers.
        container["restartPolicy"] = "Always"
    return container


def init_containers(config: StackConfig) -> list[Container]:
    """Before anything reads DAGs: one complete checkout (git-sync)."""
    if config.dags.delivery != "git-sync":
        return []
    return [_git_sync_container(config, "git-sync-init", one_time=True)]


def sidecars(config: StackConfig) -> list[Container]:
    """Native sidecars (init containers with restartPolicy Always) that keep the DAGs current."""
    if config.dags.delivery != "git-sync":
        return []
    return [_git_sync_container(config, "git-sync", one_time=False)]


# --- Git DAG bundle (dags.delivery: git-bundle) ---------------------------------------------------


def bundle_config_list(config: StackConfig) -> str:
    """[dag_processor] dag_bundle_config_list: one GitDagBundle. The URL is given as ``repo_url``, so a
    public repository needs no connection; with credentials the connection adds only the token or key."""
    bundle = config.dags.git_bundle
    assert bundle.repo is not None, "validated: git-bundle delivery has a repository"
    kwargs: dict[str, object] = {
        "repo_url": bundle.repo,
        "tracking_ref": bundle.ref,
        "refresh_interval": bundle.refresh_interval,
    }
    if sub_path := bundle.sub_path.strip("/"):
        kwargs["subdir"] = sub_path
    if bundle.credentials_secret:
        kwargs["git_conn_id"] = names.GIT_BUNDLE_CONNECTION_ID
    entry = {"name": names.GIT_BUNDLE_NAME, "classpath": GIT_BUNDLE_CLASSPATH, "kwargs": kwargs}
    return json.dumps([entry], sort_keys=True, separators=(",", ":"))


def bundle_env(config: StackConfig) -> list[EnvVar]:
    """Which bundles exist and where they are kept: the same in every Airflow process (no secret)."""
    if config.dags.delivery != "git-bundle":
        return []
    return [
        builders.env(names.AirflowEnv.DAG_BUNDLE_CONFIG_LIST, bundle_config_list(config)),
        builders.env(names.AirflowEnv.DAG_BUNDLE_STORAGE_PATH, BUNDLE_STORAGE),
    ]


def bundle_connection_env() -> str:
    return f"AIRFLOW_CONN_{names.GIT_BUNDLE_CONNECTION_ID.upper()}"


def bundle_credentials(config: StackConfig) -> list[EnvVar]:
    """The Git connection (``AIRFLOW_CONN_<ID>`` from the user's Secret), for the processes that clone."""
    bundle = config.dags.git_bundle
    if config.dags.delivery != "git-bundle" or not bundle.credentials_secret:
        return []
    return [
        builders.env_from_secret(bundle_connection_env(), bundle.credentials_secret, names.GIT_BUNDLE_CONNECTION_KEY)
    ]


def bundle_mounts(config: StackConfig) -> list[VolumeMount]:
    """The writable clone directory, for the processes that clone (the root filesystem is read-only)."""
    if config.dags.delivery != "git-bundle":
        return []
    return [builders.mount(BUNDLE_VOLUME, BUNDLE_STORAGE)]


def bundle_volumes(config: StackConfig) -> list[Volume]:
    """The clone directory, in pods with a container that clones."""
    if config.dags.delivery != "git-bundle":
        return []
    return [builders.empty_dir(BUNDLE_VOLUME, "2Gi")]
