"""The README is a promise: its commands are the ones CI runs, its reference matches the code."""

from __future__ import annotations

import re
from pathlib import Path

from tools.config_reference import README, render_readme

ROOT = Path(__file__).resolve().parent.parent


def bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_configuration_reference_is_generated_from_the_config_model() -> None:
    text = README.read_text()
    assert render_readme(text) == text, "run: python -m tools.config_reference --write"


def test_readme_deploy_command_is_pulumi_up_on_the_dev_stack() -> None:
    assert "pulumi up --stack dev" in bash_blocks(README.read_text())


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
