"""Benchmark the dataset gate and the views whose cost grows with the work.

Usage:  .venv/bin/python scripts/bench_datagate.py [--sizes 20000,100000] [--rounds 1] [--skip-train]
1. The line scan on a generated jsonl of --scan-rows ShareGPT rows: rows/s and the peak memory it allocates
   (tracemalloc; flat = independent of the file size). Goal: >= 100k rows/s.
2. For each size: `mhsft data check` (cold cache, on every core) vs the bare single-process
   `swift export --to_cached_dataset true` it runs, on realistic generated ShareGPT rows (2-6 turns, answers
   50-800 characters), paired runs (gate, bare, gate, bare, ...), wall time and peak RSS from
   `/usr/bin/time -v` (the largest process of each tree). Goals: gate <= 0.6x the bare export's time on a
   2-core machine, peak RSS <= 1.1x. Then a cache hit of the largest size: the CLI's wall time and the
   gate's own time in it. Goal: <= 0.5 s.
3. Matching kept rows to source lines for 20k and 200k copies of one row (the report's matcher). Goal: linear.
4. `mhsft runs show` on a run with a 100k-line logging.jsonl: wall time and peak RSS. Goal: < 1 s, < 100 MB.
5. `mhsft train tiny` with the gate (cold cache, and warm) vs `--no-data-check`, median of --rounds.
Not a test: timings depend on the machine (and on what else runs on it: the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

MHSFT = [sys.executable, "-m", "mhsft"]
PROSE = (
    "the of and to in is it that for on with as was at by an be this from or have not are but what all were when "
    "we there can your which their if do will each about how up out them then many some so these would other into "
    "has more two like see time could no make than first been its who now people made over did down only way find "
    "use may water long little very after words called just where most know"
)
WORDS = PROSE.split()


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def sharegpt(n: int, path: Path, seed: int = 0) -> Path:
    """`n` ShareGPT rows: 1-3 exchanges (2-6 turns), questions 20-200 characters, answers 50-800."""
    rng = random.Random(seed)

    def text(i: int, low: int, high: int) -> str:
        size = rng.randint(low, high)
        words, length = [str(i)], len(str(i))
        while length < size:
            words.append(rng.choice(WORDS))
            length += len(words[-1]) + 1
        return " ".join(words)[:size]

    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            turns = []
            for _ in range(rng.randint(1, 3)):
                turns += [{"from": "human", "value": text(i, 20, 200)}, {"from": "gpt", "value": text(i, 50, 800)}]
            f.write(json.dumps({"conversations": turns}) + "\n")
    return path


def measured(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS in MiB of the largest process, the result) of a command under /usr/bin/time -v."""
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *argv], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"failed: {shlex.join(argv)}\n{result.stderr[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    return elapsed, int(peak.group(1)) / 1024 if peak else float("nan"), result


def bench_scan(rows: int, folder: Path) -> None:
    from mhsft.datagate.scan import scan

    path = sharegpt(rows, folder / "scan.jsonl")
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
        f"line scan (with fingerprints): {found.rows} rows ({size:.0f} MiB) in {best:.3f} s = "
        f"{found.rows / best:,.0f} rows/s, peak allocation {peak:.2f} MiB (median of 3)",
        flush=True,
    )
    path.unlink()


def bare_export(stderr: str, out: Path) -> list[str]:
    """The gate's export as a bare single-process `swift export` into `out`, from the line the gate printed."""
    line = next(x for x in stderr.splitlines() if x.startswith("data check: ") and " swift export " in x)
    words = shlex.split(line.removeprefix("data check: "))
    words = words[words.index("swift") + 1 :]
    at = words.index("--dataset_num_proc")
    del words[at : at + 2]
    at = words.index("--output_dir")
    words[at + 1] = str(out)
    return [str(Path(sys.executable).parent / "swift"), *words]


def bench_gate(sizes: list[int], rounds: int, fx_root: Path, env: dict[str, str], root: Path) -> None:
    for size in sizes:
        data = sharegpt(size, root / f"rows-{size}.jsonl")
        sets = ["--set", f"sft.dataset=['{data}']", "--set", "sft.max_length=4096", "--set", "data_check.max_dropped=1"]
        gate_argv = [*MHSFT, "data", "check", "tiny", *sets]
        cache = fx_root / ".mhsft" / "data-cache"
        gate, bare, used = [], [], ""
        for _ in range(rounds):
            shutil.rmtree(cache, ignore_errors=True)
            seconds, rss, result = measured(gate_argv, env, fx_root)
            gate.append((seconds, rss))
            used = next((x for x in result.stderr.splitlines() if "tokenising with" in x), "")
            out = root / "bare-export"
            shutil.rmtree(out, ignore_errors=True)
            bare.append(measured(bare_export(result.stderr, out), env, fx_root)[:2])
        g, b = (statistics.median(s for s, _ in x) for x in (gate, bare))
        gm, bm = (statistics.median(m for _, m in x) for x in (gate, bare))
        print(
            f"gate on {size} rows: {g:.1f} s vs bare single-process export {b:.1f} s = {g / b:.2f}x; peak RSS "
            f"{gm:.0f} vs {bm:.0f} MiB = {gm / bm:.2f}x (median of {rounds} paired runs; {used.strip()}; {load()})",
            flush=True,
        )
        if size == max(sizes):
            hits = [measured([*gate_argv, "--json"], env, fx_root) for _ in range(3)]
            inner = [json.loads(h[2].stdout)["elapsed_s"] for h in hits]
            print(
                f"cache hit on {size} rows: mhsft data check {statistics.median(h[0] for h in hits):.2f} s "
                f"(the gate itself {statistics.median(inner):.2f} s), peak RSS "
                f"{statistics.median(h[1] for h in hits):.0f} MiB (median of 3)",
                flush=True,
            )
        data.unlink()


def bench_copies(root: Path) -> None:
    """The report's matcher on N copies of one row, all kept."""
    from mhsft.datagate.report import analyse
    from mhsft.datagate.rows import Split
    from mhsft.datagate.scan import fingerprint, scan
    from mhsft.datagate.spec import GateSpec

    times = {}
    for copies in (20_000, 200_000):
        path = root / f"copies-{copies}.jsonl"
        row = json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})
        path.write_text((row + "\n") * copies, encoding="utf-8")
        found = scan(path)
        rows = {"train": Split.of([str(path)] * copies, [10] * copies, [fingerprint(["q", "a"])] * copies)}
        started = time.perf_counter()
        report = analyse(
            GateSpec({}, None, "delete", None, ()), [(str(path), "train")], {str(path): found}, rows, {}, {}
        )
        times[copies] = time.perf_counter() - started
        assert report["total"]["dropped"] == 0
        path.unlink()
    print(
        f"matching copies of one row: 20k {times[20_000]:.3f} s, 200k {times[200_000]:.3f} s "
        f"({times[200_000] / times[20_000]:.1f}x for 10x the rows; linear = 10x)",
        flush=True,
    )


def bench_show(root: Path, env: dict[str, str], lines: int = 100_000) -> None:
    """`mhsft runs show` on a finished run whose logging.jsonl has `lines` train rows and 20 checkpoints."""
    from mhsft.runs.records import RunRecord

    work = root / "show"
    run_dir = work / "out" / "v0-20260101-000000"
    run_dir.mkdir(parents=True)
    rng = random.Random(0)
    with (run_dir / "logging.jsonl").open("w", encoding="utf-8") as f:
        for step in range(1, lines + 1):
            row = {"loss": 2 / (1 + step / 1000) + rng.random() / 10, "grad_norm": 1.3, "learning_rate": 1e-4}
            row |= {"token_acc": 0.5, "epoch": step / lines, "global_step/max_steps": f"{step}/{lines}"}
            row |= {"elapsed_time": "1h", "remaining_time": "1h", "memory(GiB)": 3.1, "train_speed(iter/s)": 2.0}
            f.write(json.dumps(row) + "\n")
            if step % (lines // 20) == 0:
                f.write(json.dumps({"eval_loss": 1 / (1 + step / 1000), "global_step/max_steps": f"{step}/{lines}"}))
                f.write("\n")
                (run_dir / f"checkpoint-{step}").mkdir()
                (run_dir / f"checkpoint-{step}" / "trainer_state.json").write_text("{}", encoding="utf-8")
        f.write(json.dumps({"train_runtime": 3600.0, "train_loss": 0.5, "global_step": lines}) + "\n")
    RunRecord(
        id="20260101-000000-sft-bench",
        command="sft",
        recipe="bench.toml",
        recipe_name="bench",
        recipe_sha256=None,
        argv=["swift", "sft"],
        env={},
        secrets=[],
        cwd=str(work),
        versions={},
        started_at="2026-01-01T00:00:00+00:00",
        status="succeeded",
        ended_at="2026-01-01T01:00:00+00:00",
        duration_s=3600.0,
        exit_code=0,
        output_dir=str(work / "out"),
        run_dir=str(run_dir),
    ).save()
    shown = [measured([*MHSFT, "runs", "show"], env | {"COLUMNS": "100"}, work) for _ in range(3)]
    print(
        f"runs show on a {lines}-line logging.jsonl: {statistics.median(s[0] for s in shown):.2f} s, peak RSS "
        f"{statistics.median(s[1] for s in shown):.0f} MiB (median of 3; {load()})",
        flush=True,
    )


def bench_train(rounds: int, fx_root: Path, env: dict[str, str]) -> None:
    train = [*MHSFT, "train", "tiny"]
    cache = fx_root / ".mhsft" / "data-cache"
    cold, warm, raw = [], [], []
    for _ in range(rounds):
        shutil.rmtree(cache, ignore_errors=True)
        cold.append(measured(train, env, fx_root)[0])
        warm.append(measured(train, env, fx_root)[0])
        raw.append(measured([*train, "--no-data-check"], env, fx_root)[0])
    c, w, r = (statistics.median(x) for x in (cold, warm, raw))
    print(
        f"mhsft train tiny: gate cold {c:.1f} s ({c / r:.2f}x), gate warm {w:.1f} s ({w / r:.2f}x), "
        f"--no-data-check {r:.1f} s (median of {rounds})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan-rows", type=int, default=200_000)
    parser.add_argument("--sizes", default="20000,100000", help="row counts for the gate vs the bare export")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-gate", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    options = parser.parse_args()
    from mhsft.selfcheck.tiny import build

    print(f"start: {load()}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="mhsft-bench-gate-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWANLAB", "MHSFT"))}
    env |= {"HOME": str(root), "HF_HUB_OFFLINE": "1"}
    try:
        bench_scan(options.scan_rows, root)
        bench_copies(root)
        bench_show(root, env)
        fx = build(root / "tiny")
        env["MHSFT_TINY_DIR"] = str(fx.root)
        if not options.skip_gate:
            bench_gate([int(n) for n in options.sizes.split(",")], options.rounds, fx.root, env, root)
        if not options.skip_train:
            bench_train(options.rounds, fx.root, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
