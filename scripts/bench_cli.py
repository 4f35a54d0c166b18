"""Benchmark what users feel on every call: `mhsft --help`, `--dry-run` and `validate` against `swift sft --help`.

Usage:  .venv/bin/python scripts/bench_cli.py [--runs 7]
Prints the median wall time of each command over N runs (one warm-up each) and the speed-up over swift.
Not a test: timings depend on the machine; the goal is >= 15x faster than `swift sft --help`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def median_seconds(argv: list[str], runs: int) -> float:
    subprocess.run(argv, cwd=REPO, capture_output=True)  # warm-up (page cache, .pyc)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    mhsft = str(BIN / "mhsft")
    baseline = median_seconds([str(BIN / "swift"), "sft", "--help"], runs)
    print(f"{'swift sft --help':48s} {baseline:7.3f} s  (baseline, median of {runs})")
    for argv in (
        [mhsft, "--help"],
        [mhsft, "train", "recipes/qwen7b.toml", "--dry-run"],
        [mhsft, "validate", "recipes/qwen7b.toml"],
        [mhsft, "train", "--help"],
    ):
        seconds = median_seconds(argv, runs)
        label = " ".join(["mhsft", *argv[1:]])
        print(f"{label:48s} {seconds:7.3f} s  {baseline / seconds:5.1f}x faster")


if __name__ == "__main__":
    main()
