"""Render a stack to Kubernetes YAML offline: the program evaluated with the Pulumi mock engine.

No Pulumi CLI, no cluster. The output is deterministic (objects in a fixed kind order then by name,
keys sorted, integers as integers, multi-line strings as blocks) and secret values are redacted. Each
object carries its Pulumi resource options (protect, ignoreChanges) as a comment, so they show up in
a review diff too.

    uv run --frozen --group test python -m tools.render --stack dev            # print to stdout
    uv run --frozen --group test python -m tools.render --stack prod --out prod.yaml
    uv run --frozen --group test python -m tools.render --update-snapshots     # refresh tests/snapshots/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tools.mock_engine import ROOT, Evaluation, Registration, Secret, evaluate_stack

SNAPSHOTS = ROOT / "tests" / "snapshots"
SNAPSHOT_STACKS = ("dev", "prod")
REDACTED = "<redacted>"
KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Secret",
    "ConfigMap",
    "Service",
    "StatefulSet",
    "Deployment",
    "PodDisruptionBudget",
    "TriggerAuthentication",
    "ScaledObject",
]


class RenderError(RuntimeError):
    pass


def redact(value: Any, show_secrets: bool = False) -> Any:
    """Replace secret values by REDACTED, keeping the shape (a Secret's keys stay visible)."""
    if isinstance(value, Secret):
        inner = value.value
        if show_secrets:
            return redact(inner, show_secrets)
        if isinstance(inner, dict):
            return {k: REDACTED for k in inner}  # pyright: ignore[reportUnknownVariableType]
        if isinstance(inner, list):
            return [REDACTED for _ in inner]  # pyright: ignore[reportUnknownVariableType]
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, show_secrets) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [redact(v, show_secrets) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    if "\n" in text:
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", text)


_Dumper.add_representer(str, _represent_str)


def dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=120, allow_unicode=True)


def _sort_key(registration: Registration) -> tuple[int, str, str]:
    kind = registration.inputs.get("kind", "")
    order = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return order, kind, registration.inputs.get("metadata", {}).get("name", "")


def _options(registration: Registration) -> str:
    options = []
    if registration.protect:
        options.append("protect")
    if registration.ignore_changes:
        options.append("ignoreChanges=" + ",".join(registration.ignore_changes))
    if registration.retain_on_delete:
        options.append("retainOnDelete")
    if registration.delete_before_replace:
        options.append("deleteBeforeReplace")
    return "; ".join(options)


def render(evaluation: Evaluation, show_secrets: bool = False) -> str:
    if evaluation.error is not None:
        raise RenderError(f"the program failed for stack {evaluation.stack}: {evaluation.error}")
    kubernetes = sorted(
        (r for r in evaluation.registrations if r.custom and r.inputs.get("apiVersion") and r.inputs.get("kind")),
        key=_sort_key,
    )
    others = sorted(
        (r for r in evaluation.registrations if r.custom and r not in kubernetes), key=lambda r: (r.type, r.name)
    )
    lines = [
        f"# airflow-k8s: stack {evaluation.stack}, rendered offline with the Pulumi mock engine.",
        f"# {len(kubernetes)} Kubernetes objects. Secret values are "
        + ("SHOWN (mock values)." if show_secrets else "redacted."),
        "# Refresh: uv run --frozen --group test python -m tools.render --update-snapshots",
        "# Also registered (not Kubernetes objects):",
    ]
    for registration in others:
        inputs = redact({k: v for k, v in registration.inputs.items() if not k.startswith("__")}, show_secrets)
        options = _options(registration)
        details = json.dumps(inputs, sort_keys=True)
        lines.append(f"#   {registration.type} {registration.name} {details}" + (f"  [{options}]" if options else ""))
    lines.append("# Stack outputs:")
    for key, value in sorted(evaluation.outputs.items()):
        lines.append(f"#   {key}: {json.dumps(redact(value, show_secrets))}")
    documents = []
    for registration in kubernetes:
        manifest = {k: v for k, v in registration.inputs.items() if not k.startswith("__")}
        header = f"# pulumi: {options}\n" if (options := _options(registration)) else ""
        documents.append(header + dump(redact(manifest, show_secrets)))
    return "\n".join(lines) + "\n---\n" + "---\n".join(documents)


def render_stack(stack: str, show_secrets: bool = False) -> str:
    return render(evaluate_stack(stack), show_secrets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="dev", help="stack config file Pulumi.<stack>.yaml (default dev)")
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")
    parser.add_argument("--show-secrets", action="store_true", help="print the mock engine's secret values")
    parser.add_argument(
        "--update-snapshots", action="store_true", help=f"rewrite tests/snapshots/ for {', '.join(SNAPSHOT_STACKS)}"
    )
    args = parser.parse_args()
    try:
        if args.update_snapshots:
            SNAPSHOTS.mkdir(parents=True, exist_ok=True)
            for stack in SNAPSHOT_STACKS:
                (SNAPSHOTS / f"{stack}.yaml").write_text(render_stack(stack))
                print(f"wrote {SNAPSHOTS / f'{stack}.yaml'}")
            return 0
        text = render_stack(args.stack, args.show_secrets)
    except RenderError as error:
        print(error, file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
