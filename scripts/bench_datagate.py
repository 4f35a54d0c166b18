"""Benchmark the dataset gate: the line scan, the whole gate vs the bare export, and train with vs without it.

Usage:  .venv/bin/python scripts/bench_datagate.py [--rows 200000] [--rounds 3] [--skip-train]
1. The line scan on a generated jsonl of ROWS ShareGPT rows: rows/s and the peak memory it allocates
   (tracemalloc; flat = independent of the file size). Goal: >= 100k rows/s.
2. On the tiny fixtures: `mhsft data check tiny` (cold cache) vs the bare `swift export --to_cached_dataset
   true` command it runs, alternating, median of ROUNDS. Goal: <= 1.3x.
3. `mhsft train tiny` with the gate (cold cache, and warm: a second train of the same recipe) vs
   `mhsft train tiny --no-data-check`, median of ROUNDS. Goal: <= 1.05x.
Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

BIN = Path(sys.executable).parent


def bench_scan(rows: int, folder: Path) -> None:
    from mhsft.datagate.scan import scan

    path = folder / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            turns = [
                {"from": "human", "value": f"Question number {i}: what is {i} plus {i}?"},
                {"from": "gpt", "value": f"It is {2 * i}."},
            ]
            f.write(json.dumps({"conversations": turns}) + "\n")
    size = path.stat().st_size / 2**20
    times = []
    for _ in range(3):
        started = time.perf_counter()
        found = scan(path)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    scan(path)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best = statistics.median(times)
    print(
        f"line scan: {found.rows} rows ({size:.0f} MiB) in {best:.3f} s = {found.rows / best:,.0f} rows/s, "
        f"peak allocation {peak:.2f} MiB (median of 3)"
    )


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{result.stderr[-2000:]}")
    return elapsed


def export_argv(work: Path, env: dict[str, str]) -> list[str]:
    """The bare swift export the gate runs, read back from the line the gate prints."""
    result = subprocess.run(
        [str(BIN / "mhsft"), "data", "check", "tiny", "--json"], env=env, cwd=work, capture_output=True, text=True
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("data check: "))
    import shlex

    words = shlex.split(line.removeprefix("data check: "))
    start = words.index("swift")
    return [str(BIN / "swift"), *words[start + 1 :]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-train", action="store_true")
    options = parser.parse_args()
    from mhsft.selfcheck.tiny import build

    root = Path(tempfile.mkdtemp(prefix="mhsft-bench-gate-"))
    bench_scan(options.rows, root)
    fx = build(root / "tiny")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWANLAB", "MHSFT"))}
    env |= {"MHSFT_TINY_DIR": str(fx.root), "HOME": str(root), "HF_HUB_OFFLINE": "1"}
    work = fx.root
    cache = work / ".mhsft" / "data-cache"
    export = export_argv(work, env)
    out = export[export.index("--output_dir") + 1]
    gate, bare = [], []
    for _ in range(options.rounds):
        shutil.rmtree(cache, ignore_errors=True)
        gate.append(timed([str(BIN / "mhsft"), "data", "check", "tiny"], env, work))
        shutil.rmtree(out, ignore_errors=True)
        bare.append(timed(export, env, work))
    g, b = statistics.median(gate), statistics.median(bare)
    print(f"gate (cold) {g:.2f} s vs bare swift export {b:.2f} s: {g / b:.2f}x (median of {options.rounds})")
    if options.skip_train:
        return
    train = [str(BIN / "mhsft"), "train", "tiny"]
    cold, warm, raw = [], [], []
    for _ in range(options.rounds):
        shutil.rmtree(cache, ignore_errors=True)
        cold.append(timed(train, env, work))
        warm.append(timed(train, env, work))
        raw.append(timed([*train, "--no-data-check"], env, work))
    c, w, r = (statistics.median(x) for x in (cold, warm, raw))
    print(
        f"mhsft train tiny: gate cold {c:.1f} s ({c / r:.2f}x), gate warm {w:.1f} s ({w / r:.2f}x), "
        f"--no-data-check {r:.1f} s (median of {options.rounds})"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
