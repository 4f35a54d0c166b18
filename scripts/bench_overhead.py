"""Measure what mhsft costs on a real (tiny, CPU) training run: wall time vs the same raw `swift sft`, and
mhsft's own peak memory while it supervises swift.

Usage:  .venv/bin/python scripts/bench_overhead.py [--rounds 3] [--workdir /tmp/mhsft-bench]
Each round runs `mhsft train tiny --no-preflight` and the identical `swift sft` command (same argv, same
environment), alternating. Goals: ratio <= 1.05; mhsft's peak RSS <= 80 MB (it never imports torch).
Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of one process, in MB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds of a command, and the peak RSS of that process itself (not its children)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, peak_rss_mb(proc.pid))
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed with exit {proc.returncode}")
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mhsft-bench"))
    args = parser.parse_args()
    from mhsft.environment import load_environment
    from mhsft.recipe.load import load
    from mhsft.recipe.plan import train_plan
    from mhsft.recipe.validate import validate
    from mhsft.selfcheck.tiny import build
    from mhsft.train.before_start import new_swanlab_run_id

    root = build(args.workdir).root
    env = {**os.environ, "MHSFT_TINY_DIR": str(root), "HF_HUB_OFFLINE": "1"}
    environment = load_environment(base=env)
    recipe = validate(load("tiny", environment))
    mhsft_argv = [str(BIN / "mhsft"), "train", "tiny", "--no-preflight"]
    walls: dict[str, list[float]] = {"mhsft": [], "swift": []}
    peaks = []
    for n in range(args.rounds):
        wall, peak = timed(mhsft_argv, env, root)
        walls["mhsft"].append(wall)
        peaks.append(peak)
        plan = train_plan(recipe, environment, root, run_id=new_swanlab_run_id())  # a fresh run, as mhsft does
        walls["swift"].append(timed([str(BIN / "swift"), *plan.argv[1:]], plan.child_env(environment), root)[0])
        print(f"round {n + 1}: mhsft {wall:.1f} s (peak RSS {peak:.0f} MB), swift {walls['swift'][-1]:.1f} s")
    m, s = statistics.median(walls["mhsft"]), statistics.median(walls["swift"])
    print(f"median wall: mhsft train {m:.1f} s, raw swift sft {s:.1f} s, ratio {m / s:.3f} (goal <= 1.05)")
    print(f"mhsft peak RSS while supervising swift: {max(peaks):.0f} MB (goal <= 80 MB)")


if __name__ == "__main__":
    main()
