"""Benchmark a 2x2 sweep on the tiny model against the same four trials as four `mhsft train` runs.

Usage:  .venv/bin/python scripts/bench_sweep.py [--steps 1] [--workdir DIR]
Builds the tiny model and data (as `mhsft selftest` does), then in two fresh folders (each with an empty
dataset cache) runs `mhsft sweep tiny --grid sft.learning_rate=[1e-3,2e-3] --grid sft.lora_rank=[4,8]` and the
four `mhsft train tiny --set ...` runs one after the other, and prints the wall and CPU time of each, the
dataset-gate exports each ran, and the difference. Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = {"sft.learning_rate": ["1e-3", "2e-3"], "sft.lora_rank": ["4", "8"]}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argvs: list[list[str]], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall and CPU seconds of running `argvs` one after the other, and how many gate exports they ran."""
    cpu, started, exports = _children_cpu(), time.perf_counter(), 0
    for argv in argvs:
        result = subprocess.run(
            [sys.executable, "-m", "mhsft", *argv], cwd=cwd, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        exports += result.stderr.count("data check: ")
    return time.perf_counter() - started, _children_cpu() - cpu, exports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1, help="max_steps of each trial")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build (default: a temporary folder)")
    options = parser.parse_args()
    from mhsft.selfcheck.tiny import build

    root = Path(options.workdir or tempfile.mkdtemp(prefix="mhsft-bench-sweep-")).absolute()
    fx = build(root / "tiny")
    fixed = ["--set", f"sft.max_steps={options.steps}", "--set", f"sft.save_steps={options.steps}"]
    env = os.environ | {"MHSFT_TINY_DIR": str(fx.root), "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    sweep = [["sweep", "tiny", *(a for k, v in GRID.items() for a in ("--grid", f"{k}=[{','.join(v)}]")), *fixed]]
    trains = [
        ["train", "tiny", "--set", f"sft.learning_rate={lr}", "--set", f"sft.lora_rank={rank}", *fixed]
        for lr in GRID["sft.learning_rate"]
        for rank in GRID["sft.lora_rank"]
    ]
    figures = {}
    for name, argvs in (("mhsft sweep (2x2)", sweep), ("4 x mhsft train", trains)):
        work = root / name.split()[-1].strip("()")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        figures[name] = timed(argvs, work, env)
        wall, cpu, exports = figures[name]
        print(f"{name:18} wall {wall:7.1f} s  cpu {cpu:7.1f} s  gate exports {exports}", flush=True)
    (sweep_wall, sweep_cpu, _), (train_wall, train_cpu, _) = figures.values()
    print(
        f"sweep - trains: wall {sweep_wall - train_wall:+.1f} s ({sweep_wall / train_wall:.2f}x), "
        f"cpu {sweep_cpu - train_cpu:+.1f} s ({sweep_cpu / train_cpu:.2f}x); max_steps {options.steps}, "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
