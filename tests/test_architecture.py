"""The program's shape: layered packages whose imports point down, no import circle, no two modules with
one name, and manifests the type checker reads field by field."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import grimp
import pytest
from importlinter import cli

ROOT = Path(__file__).resolve().parent.parent
PROGRAM_FOLDERS = ("components", "dags", "tools", "tests")
LAYERS = ["stack", "control_plane", "executors", "observability", "airflow_pods", "foundation", "config", "kube"]


def python_modules() -> list[Path]:
    found = [ROOT / "__main__.py"]
    for folder in PROGRAM_FOLDERS:
        found += [p for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts]
        found += [p for p in (ROOT / folder).rglob("*.pyi") if ".venv" not in p.parts]
    return found


def test_components_are_the_documented_layers() -> None:
    packages = sorted(p.name for p in (ROOT / "components").iterdir() if (p / "__init__.py").exists())
    modules = sorted(p.stem for p in (ROOT / "components").glob("*.py") if p.stem != "__init__")
    assert sorted([*packages, *modules]) == sorted(LAYERS)
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for layer in LAYERS:
        assert f"`components/{layer}" in architecture, layer


def test_every_import_points_down_the_layers() -> None:
    # the contracts live in pyproject.toml ([tool.importlinter]); CI runs `lint-imports` too
    assert cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_no_module_imports_itself_through_a_circle() -> None:
    graph = grimp.build_graph("components", "dags", cache_dir=None)
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in graph.modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for module in modules:
        if module not in index:
            visit(module)
    assert circles == []


def test_no_two_modules_share_a_name() -> None:
    names = Counter(p.stem for p in python_modules() if p.stem not in ("__init__", "__main__"))
    packages = Counter(
        p.name
        for folder in PROGRAM_FOLDERS
        for p in (ROOT / folder).rglob("*")
        if (p / "__init__.py").exists() and ".venv" not in p.parts
    )
    shared = {name: count for name, count in (names + packages).items() if count > 1}
    assert shared == {}
    # nor with a library the program or its tests import (no `components/airflow`, no `components/dags`)
    for shadowed in ("airflow", "dags", "pulumi", "kubernetes", "redis", "yaml", "platform", "config"):
        assert not (ROOT / "components" / f"{shadowed}.py").exists()
    assert not (ROOT / "components" / "dags").exists() and not (ROOT / "components" / "airflow").exists()


@pytest.mark.parametrize(
    ("snippet", "complaint"),
    [
        ('port: ContainerPort = {"containerPort": 8080, "protcol": "TCP"}', '"protcol" is an undefined item'),
        ('port: ContainerPort = {"protocol": "TCP"}', '"containerPort" is required'),
        ('policy: NetworkPolicyIngressRule = {"form": []}', '"form" is an undefined item'),
    ],
)
def test_a_misspelt_or_missing_manifest_field_fails_the_type_check(
    tmp_path: Path, snippet: str, complaint: str
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from components.kube.manifest_types import ContainerPort, NetworkPolicyIngressRule\n"
        f"{snippet}\n"
    )
    pyright = Path(sys.executable).parent / "pyright"
    result = subprocess.run([str(pyright), str(probe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, result.stdout
    assert complaint in result.stdout, result.stdout
