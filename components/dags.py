"""DAG delivery: a ConfigMap of ./dags (dev), a git-sync sidecar, or DAGs baked into the image.

Pure functions give every Airflow pod the same view: the DAGs folder, the volumes and mounts that hold
it, and (git-sync) the containers that fill it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pulumi

from components import k8s, names, rollout
from components.config import StackConfig

REPOSITORY_DAGS = Path(__file__).resolve().parent.parent / "dags"
CONFIG_MAP_MOUNT = "/opt/airflow/dags"
IMAGE_DAGS_FOLDER = "/opt/airflow/dags"
GIT_ROOT = "/git"
GIT_LINK = "repo"
GIT_SECRET_MOUNT = "/etc/git-secret"
GIT_SYNC_UID = 65533
"""The git-sync image's own user: ssh needs a passwd entry for the running uid."""
VOLUME = "dags"
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


def config_map_manifest(config: StackConfig, bundle: DagBundle) -> k8s.Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": k8s.metadata(names.DAGS_CONFIG_MAP, names.Component.DAGS, config.namespace, config.namespace),
        "data": dict(sorted(bundle.data.items())),
    }


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


def volumes(config: StackConfig, bundle_paths: Mapping[str, str] | None = None) -> list[k8s.Manifest]:
    delivery = config.dags.delivery
    if delivery == "configmap":
        source: k8s.Manifest = {"name": names.DAGS_CONFIG_MAP}
        if bundle_paths is not None:
            source["items"] = [{"key": key, "path": path} for key, path in sorted(bundle_paths.items())]
        return [{"name": VOLUME, "configMap": source}]
    if delivery == "git-sync":
        found = [k8s.empty_dir(VOLUME, "2Gi"), k8s.empty_dir("git-sync-tmp", "256Mi")]
        git = config.dags.git_sync
        if git.credentials_secret and git.repo:
            keys = ["ssh", "known_hosts"] if uses_ssh(git.repo) else ["GITSYNC_PASSWORD"]
            items = [{"key": key, "path": key} for key in keys]
            found.append(
                {
                    "name": GIT_SECRET_VOLUME,
                    "secret": {"secretName": git.credentials_secret, "items": items, "defaultMode": 0o440},
                }
            )
        return found
    return []


def mounts(config: StackConfig) -> list[k8s.Manifest]:
    delivery = config.dags.delivery
    if delivery == "configmap":
        return [k8s.mount(VOLUME, CONFIG_MAP_MOUNT, read_only=True)]
    if delivery == "git-sync":
        return [k8s.mount(VOLUME, GIT_ROOT, read_only=True)]
    return []


def _git_sync_container(config: StackConfig, name: str, one_time: bool) -> k8s.Manifest:
    git = config.dags.git_sync
    assert git.repo is not None, "validated: git-sync delivery has a repository"
    environment = [
        k8s.env("GITSYNC_REPO", git.repo),
        k8s.env("GITSYNC_REF", git.ref),
        k8s.env("GITSYNC_ROOT", GIT_ROOT),
        k8s.env("GITSYNC_LINK", GIT_LINK),
        k8s.env("GITSYNC_DEPTH", "1"),
        k8s.env("GITSYNC_PERIOD", git.period),
        # Files written by git-sync must be readable by Airflow's uid (group 0).
        k8s.env("GITSYNC_GROUP_WRITE", "true"),
        # git keeps its config in $HOME; the root filesystem is read-only.
        k8s.env("HOME", "/tmp"),
    ]
    container_mounts = [k8s.mount(VOLUME, GIT_ROOT), k8s.mount("git-sync-tmp", "/tmp")]
    if one_time:
        environment.append(k8s.env("GITSYNC_ONE_TIME", "true"))
    else:
        # Keep serving the last good checkout through transient remote failures.
        environment.append(k8s.env("GITSYNC_MAX_FAILURES", "-1"))
    if git.credentials_secret:
        if uses_ssh(git.repo):
            environment += [
                k8s.env("GITSYNC_SSH_KEY_FILE", f"{GIT_SECRET_MOUNT}/ssh"),
                k8s.env("GITSYNC_SSH_KNOWN_HOSTS", "true"),
                k8s.env("GITSYNC_SSH_KNOWN_HOSTS_FILE", f"{GIT_SECRET_MOUNT}/known_hosts"),
            ]
            container_mounts.append(k8s.mount(GIT_SECRET_VOLUME, GIT_SECRET_MOUNT, read_only=True))
        else:
            environment += [
                k8s.env_from_secret("GITSYNC_USERNAME", git.credentials_secret, "GITSYNC_USERNAME"),
                k8s.env("GITSYNC_PASSWORD_FILE", f"{GIT_SECRET_MOUNT}/GITSYNC_PASSWORD"),
            ]
            container_mounts.append(k8s.mount(GIT_SECRET_VOLUME, GIT_SECRET_MOUNT, read_only=True))
    security = k8s.container_security_context()
    security["runAsUser"] = GIT_SYNC_UID
    container: k8s.Manifest = {
        "name": name,
        "image": git.image,
        "imagePullPolicy": "IfNotPresent",
        "env": environment,
        "resources": k8s.resources(git.resources),
        "securityContext": security,
        "volumeMounts": container_mounts,
    }
    if not one_time:
        # A native sidecar: starts before, and stops after, the pod's main containers.
        container["restartPolicy"] = "Always"
    return container


def init_containers(config: StackConfig) -> list[k8s.Manifest]:
    """Before anything reads DAGs: one complete checkout (git-sync)."""
    if config.dags.delivery != "git-sync":
        return []
    return [_git_sync_container(config, "git-sync-init", one_time=True)]


def sidecars(config: StackConfig) -> list[k8s.Manifest]:
    """Native sidecars (init containers with restartPolicy Always) that keep the DAGs current."""
    if config.dags.delivery != "git-sync":
        return []
    return [_git_sync_container(config, "git-sync", one_time=False)]


@dataclass(frozen=True)
class DagDeliveryArgs:
    config: StackConfig
    namespace: pulumi.Resource
    registry: rollout.ContentRegistry
    bundle: DagBundle | None


class DagDelivery(pulumi.ComponentResource):
    """The DAG ConfigMap (ConfigMap delivery); git-sync and image delivery need no object of their own."""

    def __init__(self, name: str, args: DagDeliveryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-k8s:dags:Delivery", name, None, opts)
        self.resources: list[pulumi.CustomResource] = []
        if args.bundle is not None:
            manifest = config_map_manifest(args.config, args.bundle)
            resource = k8s.register(manifest, k8s.child_opts(self, [args.namespace]))
            args.registry.add_config_map(names.DAGS_CONFIG_MAP, manifest["data"], resource)
            self.resources.append(resource)
        self.register_outputs({"delivery": args.config.dags.delivery, "folder": dags_folder(args.config)})
