"""Measure `mhsft eval` on the tiny model (CPU): one server for base + LoRA vs one server per model (the way two
`swift eval` runs deploy), and how fast an uncached benchmark is refused offline.

Usage:  .venv/bin/python scripts/bench_eval.py [--rounds 2] [--workdir /tmp/mhsft-bench-eval] [--limit 8]
        [--checkpoint CKPT]  (a tiny checkpoint already trained: no training first)
It trains `tiny` once (with its val rows as the held-out set), then alternates `mhsft eval --json` and
`mhsft eval --two-servers --json` on the same checkpoint with the same settings. Goals: one server <= 0.6x the
wall time of two; refusing `--bench gsm8k` with no cache and no hub <= 5 s (a closed hub port, and no DNS in a
loopback-only network namespace where `unshare -n` is allowed). Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = ["--set", "eval.eval_generation_config={max_tokens = 8}"]


def run(argv: list[str], env: dict[str, str], cwd: Path, ok: bool = True) -> tuple[float, str]:
    """Wall seconds and stdout of `python -m mhsft ARGV`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mhsft", *argv], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if ok and done.returncode != 0:
        raise SystemExit(f"mhsft {' '.join(argv[:2])} failed with exit {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mhsft-bench-eval"))
    parser.add_argument("--checkpoint", type=Path, help="a tiny checkpoint to use instead of training one")
    args = parser.parse_args()
    from mhsft.selfcheck.tiny import build

    fx = build(args.workdir)
    home = args.workdir / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWANLAB_", "MODELSCOPE_", "HF_"))}
    env |= {"HOME": str(home), "MHSFT_TINY_DIR": str(fx.root), "HF_HUB_OFFLINE": "1"}
    env |= {"MODELSCOPE_ENDPOINT": "http://127.0.0.1:9"}  # closed: nothing beyond this machine
    settings = [*SETTINGS, "--set", f"eval.eval_limit={args.limit}", "--set", f"sft.val_dataset=['{fx.val}']"]
    if args.checkpoint:
        settings += ["--checkpoint", str(args.checkpoint)]
    elif not list((fx.root / ".mhsft" / "runs").glob("*-sft-*.json")):
        run(["train", "tiny", "--no-preflight", "--set", f"sft.val_dataset=['{fx.val}']"], env, fx.root)
    one, two = [], []
    for _ in range(args.rounds):
        for label, extra, into in (("one server", [], one), ("two servers", ["--two-servers"], two)):
            elapsed, out = run(["eval", "tiny", "--json", *extra, *settings], env, fx.root)
            into.append(elapsed)
            rows = json.loads(out)["benchmarks"]
            print(f"  {label}: {elapsed:.1f} s ({rows[0]['benchmark']} {rows[0]['metric']}: {rows[0]['finetuned']})")
    ratio = statistics.median(one) / statistics.median(two)
    print(f"one server {statistics.median(one):.1f} s vs two servers {statistics.median(two):.1f} s: ratio {ratio:.2f}")
    ckpt = args.checkpoint or next(fx.root.glob("output/v*/checkpoint-*"))
    refuse = ["eval", "-c", str(ckpt), "--bench", "gsm8k"]
    closed, _ = run(refuse, env, fx.root, ok=False)
    print(f"uncached gsm8k refused with the hub port closed: {closed:.2f} s")
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        netns = ["unshare", "-n", sys.executable, "-m", "mhsft", *refuse]
        started = time.perf_counter()
        subprocess.run(netns, env={**env, "MODELSCOPE_ENDPOINT": ""}, cwd=fx.root, capture_output=True)
        print(f"uncached gsm8k refused with no network (DNS fails): {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
