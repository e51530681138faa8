"""The README is a promise: its commands are the ones CI runs, its reference matches the code, its
quick start is complete, and it stays short (the rest lives in docs/)."""

from __future__ import annotations

import re
from pathlib import Path

from tools import config_reference, typed_manifests

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def commands(text: str) -> list[str]:
    """Each command of the bash blocks, comments and line continuations resolved."""
    found: list[str] = []
    for block in bash_blocks(text):
        joined = block.replace("\\\n", " ")
        found += [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines() if line.strip()]
    return found


def quick_start_block(title: str) -> str:
    """The bash block that follows the README paragraph containing ``title``."""
    text = README.read_text()
    return re.findall(r"```bash\n(.*?)```", text[text.index(title) :], flags=re.S)[0]


def test_configuration_reference_and_schema_are_generated_from_the_config_model() -> None:
    for path, text in config_reference.outputs().items():
        assert path.read_text() == text, f"{path.name} is stale; run: python -m tools.config_reference --write"


def test_typed_manifest_stubs_and_sdk_aliases_are_generated_from_the_installed_sdk() -> None:
    for path, text in typed_manifests.outputs().items():
        assert path.read_text() == text, f"{path.name} is stale; run: python -m tools.typed_manifests --write"


def test_readme_deploy_command_is_pulumi_up_on_the_dev_stack() -> None:
    assert "pulumi up --stack dev" in commands(README.read_text())


def test_the_quick_start_goes_from_a_new_cluster_to_a_dag_run_and_back() -> None:
    steps = commands(README.read_text())
    expected = [
        "kind create cluster --name airflow",
        "pulumi login --local",
        "pulumi stack init dev",
        "pulumi up --stack dev",
        "$(pulumi stack output --stack dev portForwardCommand) &",
        "pulumi destroy --stack dev",
        "kind delete cluster --name airflow",
    ]
    positions = [steps.index(step) for step in expected]
    assert positions == sorted(positions)
    assert any(step.startswith("export PULUMI_CONFIG_PASSPHRASE=") for step in steps)
    assert any("adminPassword --show-secrets" in step for step in steps)
    assert any("/dagRuns" in step for step in steps)
    assert "protectData" in README.read_text()


def test_the_readme_stays_short_and_links_the_docs() -> None:
    text = README.read_text()
    assert len(text.encode()) <= 8 * 1024
    for link in re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", text):
        assert (ROOT / link).exists(), link


def test_ci_runs_the_readme_test_command_last() -> None:
    blocks = bash_blocks(README.read_text())
    test_command = "uv run --frozen --group test pytest"
    assert test_command in blocks
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == test_command


def test_pulumi_project_uses_the_uv_toolchain() -> None:
    project = (ROOT / "Pulumi.yaml").read_text()
    assert "name: airflow-k8s" in project
    assert "toolchain: uv" in project
