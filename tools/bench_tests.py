"""Benchmark (not a test): how long each test tier takes, so a slower suite shows before it hurts.

    uv run --frozen --group test python -m tools.bench_tests [--runs 3] [--tier fast|full]

Runs each tier's command (the same ones the README and docs/architecture.md give) --runs times and
prints the wall-clock seconds of each run, the CPU seconds it used (its processes, user + system), the
median, and pytest's own summary line. Wall-clock time depends on the machine and its load: compare
figures taken on the same machine, idle. Before each run it times a fixed pure-Python loop (the
"reference"): on a shared or throttled host the same machine's speed varies, and the reference shows
by how much. The goals are 60 s for the fast tier and 5 min for the full suite on 2 idle cores.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TIERS: dict[str, list[str]] = {
    "fast": ["uv", "run", "--frozen", "--group", "test", "pytest", "-q", "-m", "not real"],
    "full": ["uv", "run", "--frozen", "--group", "test", "pytest", "-q"],
}
GOALS = {"fast": 60.0, "full": 300.0}
SUMMARY = re.compile(r"^=*\s*(\d+ passed.*?)\s*=*$", re.MULTILINE)


def reference_seconds() -> float:
    """A fixed single-threaded pure-Python workload: how fast this machine is right now."""
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number * number
    return time.perf_counter() - started


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tier(command: list[str]) -> tuple[float, float, str, int]:
    cpu_before = children_cpu()
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    cpu = children_cpu() - cpu_before
    summaries = SUMMARY.findall(result.stdout)
    summary = summaries[-1] if summaries else result.stdout.strip().splitlines()[-1:]
    return elapsed, cpu, str(summary), result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tier", choices=sorted(TIERS), action="append")
    args = parser.parse_args()
    tiers: list[str] = args.tier or ["fast", "full"]
    print(f"cores: {os.cpu_count()}  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    failed = False
    for tier in tiers:
        times: list[float] = []
        for run in range(1, args.runs + 1):
            reference = reference_seconds()
            elapsed, cpu, summary, code = run_tier(TIERS[tier])
            times.append(elapsed)
            failed |= code != 0
            print(
                f"{tier:>4} run {run}: {elapsed:6.1f} s  cpu {cpu:6.1f} s  reference {reference:.2f} s"
                f"  exit {code}  {summary}",
                flush=True,
            )
        median = statistics.median(times)
        print(f"{tier:>4} median {median:.1f} s (goal {GOALS[tier]:.0f} s)  command: {' '.join(TIERS[tier])}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
