"""Measure how well `mhsft train --rehearse` projects a full run's wall time: the tiny recipe trained in full,
then rehearsed, the projection compared with the measured duration.

Usage:  .venv/bin/python scripts/bench_rehearse.py [--rounds 3] [--workdir /tmp/mhsft-bench-rehearse]
Goal: |projection error| <= 25% (median of the rounds) on a quiet machine. Not a test: two real trainings on a
shared CPU swing too much for an assert (the e2e test keeps a sanity band only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def mhsft(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mhsft"), *args], env=env, cwd=cwd, capture_output=True, text=True, check=True)


def one_round(work: Path, env: dict[str, str]) -> float:
    """The projection error of one full run + rehearsal in a fresh folder."""
    shutil.rmtree(work / "out", ignore_errors=True)
    shutil.rmtree(work / ".mhsft" / "runs", ignore_errors=True)
    mhsft("train", "tiny", "--set", f"sft.output_dir={work / 'out'}", env=env, cwd=work)
    (record,) = [json.loads(p.read_text()) for p in (work / ".mhsft" / "runs").glob("*-sft-*.json")]
    result = subprocess.run(
        [str(BIN / "mhsft"), "train", "tiny", "--rehearse", "--json", "--set", f"sft.output_dir={work / 'out'}"],
        env=env, cwd=work, capture_output=True, text=True,
    )  # fmt: skip
    projected = json.loads(result.stdout)["projection"]["wall_s"]
    error = (projected - record["duration_s"]) / record["duration_s"]
    print(f"full run {record['duration_s']:.1f} s, projected {projected:.1f} s: error {error:+.1%}")
    return error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mhsft-bench-rehearse"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from mhsft.selfcheck.tiny import build

    fx = build(args.workdir / "tiny")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWANLAB")}
    env |= {"MHSFT_TINY_DIR": str(fx.root), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    errors = [one_round(fx.root, env) for _ in range(args.rounds)]
    median = statistics.median(errors)
    print(f"projection error, median of {args.rounds}: {median:+.1%} (goal: within 25%)")


if __name__ == "__main__":
    main()
