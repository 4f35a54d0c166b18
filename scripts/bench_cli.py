"""Benchmark what users feel on every call: `mhsft --help`, `--dry-run` and `validate` against `swift sft --help`.

Usage:  .venv/bin/python scripts/bench_cli.py [--runs 7]
Prints, for each command, the median wall time over N runs (one warm-up each), the speed-up over swift, the goal,
and the median CPU time (user + system; steadier than wall time on a busy machine). The runs write .pyc files
as an installed package has them (PYTHONDONTWRITEBYTECODE is dropped for the children).
Not a test: timings depend on the machine. Goals: `--dry-run` (and `validate`) >= 25x, `--help` >= 15x.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def medians(argv: list[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `argv` over `runs` runs, after one warm-up (page cache, .pyc)."""
    subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True)
    wall, cpu = [], []
    for _ in range(runs):
        cpu_before, started = _children_cpu(), time.perf_counter()
        subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, check=False)
        wall.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - cpu_before)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    mhsft = str(BIN / "mhsft")
    baseline, baseline_cpu = medians([str(BIN / "swift"), "sft", "--help"], runs)
    print(f"{'swift sft --help':44s} {baseline:7.3f} s  (baseline, median of {runs})   cpu {baseline_cpu:6.3f} s")
    for argv, goal in (
        ([mhsft, "--help"], 15),
        ([mhsft, "train", "recipes/qwen7b.toml", "--dry-run"], 25),
        ([mhsft, "validate", "recipes/qwen7b.toml"], 25),
        ([mhsft, "train", "--help"], 15),
    ):
        seconds, cpu = medians(argv, runs)
        label = " ".join(["mhsft", *argv[1:]])
        speedup = baseline / seconds
        verdict = "ok" if speedup >= goal else "BELOW GOAL"
        print(
            f"{label:44s} {seconds:7.3f} s  {speedup:5.1f}x faster (goal {goal}x: {verdict})"
            f"   cpu {cpu:6.3f} s, {baseline_cpu / cpu:5.1f}x"
        )


if __name__ == "__main__":
    main()
