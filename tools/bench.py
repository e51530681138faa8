"""Benchmark (not a test): the cost of evaluating the program, per stack variant.

    uv run --frozen --group test python -m tools.bench [--runs 3]
    uv run --frozen --group test python -m tools.bench --instructions     # needs valgrind

Each variant runs in fresh Python processes. "cold" is the whole process's CPU time (user + system):
interpreter start, imports and one evaluation of the program with the Pulumi mock engine, which is
what a `pulumi preview` pays in the language host. "imports" is the part spent before the program
ran; "warm" is a second evaluation in the same process. Medians over --runs processes.

CPU seconds move with the machine's load. ``--instructions`` counts instructions instead, with
valgrind's callgrind, which gives the same figure on every run: "cold" for a process that evaluates
once, "warm" for what a second evaluation adds (about 50 times slower to measure).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
sys.path.insert(0, {root!r})
from tools.mock_engine import evaluate_stack
imports = cpu()
overrides = json.loads({overrides!r})
evaluation = evaluate_stack({stack!r}, overrides)
assert evaluation.error is None, evaluation.error
cold = cpu()
start = time.process_time()
evaluate_stack({stack!r}, overrides)
warm = time.process_time() - start
objects = len(evaluation.kubernetes_objects())
print(json.dumps({{"cold": cold, "imports": imports, "warm": warm, "objects": objects}}))
"""


def worker_sets(count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"set-{i}", "queues": [f"queue-{i}"], "concurrency": 8, "autoscaling": {"maxReplicas": 4}}
        for i in range(count)
    ]


VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "prod, 1 worker queue set": ("prod", {"workers": worker_sets(1)}),
    "prod, 10 worker queue sets": ("prod", {"workers": worker_sets(10)}),
    "prod, 100 worker queue sets": ("prod", {"workers": worker_sets(100)}),
}


def measure(stack: str, overrides: dict[str, Any]) -> dict[str, float]:
    code = CHILD.format(root=str(ROOT), stack=stack, overrides=json.dumps(overrides))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=dict(os.environ)
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


INSTRUCTIONS_CHILD = """
import sys
sys.path.insert(0, {root!r})
from tools.mock_engine import evaluate_stack
import json
overrides = json.loads({overrides!r})
for _ in range({evaluations}):
    assert evaluate_stack({stack!r}, overrides).error is None
"""


def instructions(stack: str, overrides: dict[str, Any], evaluations: int) -> int:
    code = INSTRUCTIONS_CHILD.format(
        root=str(ROOT), stack=stack, overrides=json.dumps(overrides), evaluations=evaluations
    )
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out", sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    return int(re.findall(r"Collected : (\d+)", result.stderr)[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="count instructions with valgrind")
    parser.add_argument("--variant", action="append", help="only these variants (default: all)")
    args = parser.parse_args()
    chosen = {name: VARIANTS[name] for name in (args.variant or VARIANTS)}
    if args.instructions:
        print(f"{'variant':30} {'cold Ginstr':>12} {'warm Ginstr':>12}")
        for name, (stack, overrides) in chosen.items():
            once = instructions(stack, overrides, 1)
            twice = instructions(stack, overrides, 2)
            print(f"{name:30} {once / 1e9:>12.3f} {(twice - once) / 1e9:>12.3f}", flush=True)
        return 0
    print(f"{'variant':30} {'objects':>7} {'cold CPU s':>10} {'imports s':>10} {'warm CPU s':>10}")
    for name, (stack, overrides) in chosen.items():
        runs = [measure(stack, overrides) for _ in range(args.runs)]
        row = {key: statistics.median(run[key] for run in runs) for key in ("cold", "imports", "warm", "objects")}
        print(f"{name:30} {int(row['objects']):>7} {row['cold']:>10.2f} {row['imports']:>10.2f} {row['warm']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
