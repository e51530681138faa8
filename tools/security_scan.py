"""checkov (kubernetes framework, offline) over rendered stacks, held against checkov-allowlist.yaml.

    uv run --frozen --group test python -m tools.security_scan --stack dev --stack prod

checkov runs in its own locked environment (tools/checkov): it pins libraries Airflow 3.3 and current
Pulumi cannot share. It is used from tools/checkov/.venv when present, else through `uv run`.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools.mock_engine import ROOT

CHECKOV_PROJECT = ROOT / "tools" / "checkov"
ALLOWLIST = ROOT / "checkov-allowlist.yaml"


@dataclass(frozen=True)
class Finding:
    check: str
    name: str
    resource: str
    """checkov's resource id: Kind.namespace.name"""
    file: str


@dataclass(frozen=True)
class Allowance:
    check: str
    resources: tuple[str, ...]
    reason: str

    def covers(self, finding: Finding) -> bool:
        return finding.check == self.check and any(fnmatch.fnmatchcase(finding.resource, p) for p in self.resources)


def checkov_command() -> list[str]:
    local = CHECKOV_PROJECT / ".venv" / "bin" / "checkov"
    if local.exists():
        return [str(local)]
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise RuntimeError("checkov is not installed: run `uv sync --frozen --project tools/checkov`")
    return [uv, "run", "--frozen", "--project", str(CHECKOV_PROJECT), "checkov"]


def scan(files: dict[str, str]) -> tuple[list[Finding], int]:
    """Scan rendered YAML documents (file name -> text): the failed checks, and how many passed."""
    with tempfile.TemporaryDirectory() as directory:
        for name, text in files.items():
            Path(directory, name).write_text(text)
        result = subprocess.run(
            [
                *checkov_command(),
                "--directory",
                directory,
                "--framework",
                "kubernetes",
                "--output",
                "json",
                "--compact",
                "--quiet",
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
            timeout=600,
        )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise RuntimeError(f"checkov failed ({result.returncode}): {result.stderr[-3000:]}")
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    findings: list[Finding] = []
    passed = 0
    for report in reports:
        if not isinstance(report, dict) or "results" not in report:
            continue
        passed += int(report["summary"]["passed"])
        for failed in report["results"]["failed_checks"]:
            findings.append(
                Finding(failed["check_id"], failed["check_name"], failed["resource"], Path(failed["file_path"]).name)
            )
    return sorted(set(findings), key=lambda f: (f.check, f.resource, f.file)), passed


def load_allowlist(path: Path = ALLOWLIST) -> list[Allowance]:
    entries = yaml.safe_load(path.read_text()) or []
    allowances = []
    for entry in entries:
        if not entry.get("reason", "").strip() or "\n" in entry["reason"].strip():
            raise ValueError(f"allowlist entry for {entry.get('check')} needs a one-line reason")
        allowances.append(Allowance(entry["check"], tuple(entry["resources"]), entry["reason"].strip()))
    return allowances


def unexpected(findings: Iterable[Finding], allowances: list[Allowance]) -> list[Finding]:
    return [f for f in findings if not any(a.covers(f) for a in allowances)]


def stale(findings: Iterable[Finding], allowances: list[Allowance]) -> list[tuple[str, str]]:
    """(check, resource pattern) pairs of the allowlist that match no finding."""
    found = list(findings)
    unused = []
    for allowance in allowances:
        for pattern in allowance.resources:
            if not any(f.check == allowance.check and fnmatch.fnmatchcase(f.resource, pattern) for f in found):
                unused.append((allowance.check, pattern))
    return unused


def main() -> int:
    from tools.render import render_stack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", action="append", default=[], help="stack to scan (repeatable; default dev and prod)")
    args = parser.parse_args()
    stacks = args.stack or ["dev", "prod"]
    findings, passed = scan({f"{stack}.yaml": render_stack(stack) for stack in stacks})
    allowances = load_allowlist()
    bad = unexpected(findings, allowances)
    for finding in findings:
        status = "NOT ALLOWED" if finding in bad else "allowlisted"
        print(f"{status:12} {finding.check:12} {finding.resource:55} {finding.file}  ({finding.name})")
    print(f"{passed} passed, {len(findings)} failed ({len(bad)} not allowlisted) over {', '.join(stacks)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
