"""Time `mhsft runs`, `runs show ID` and `runs compare A B` over many run records (issue 18, item 22).

Usage:  .venv/bin/python scripts/bench_runs.py [N ...]   (default: 3000 5000 records, in a temporary folder)
Prints the wall and CPU time of each `python -m mhsft ...` as a user runs it (best of 3; on a machine other
jobs load, the CPU time is the figure that does not depend on them). Goals at 5,000 records:
`runs show ID` and `runs compare A B` under 1 s, `mhsft runs` under 2 s. Not a test: the numbers depend on
the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGV = ["swift", "sft", "--model", "Qwen/Qwen2.5-7B-Instruct", "--dataset", "data/train.jsonl"] + [
    f"--option_{i}" for i in range(40)
]


def write_records(folder: Path, count: int) -> list[str]:
    """`count` training records like a sweep leaves them (oldest first); returns their ids."""
    runs = folder / ".mhsft" / "runs"
    runs.mkdir(parents=True)
    ids = []
    for i in range(count):
        day, second = divmod(i, 86400)
        hms = (second // 3600, second // 60 % 60, second % 60)
        stamp = f"202611{1 + day:02d}-{hms[0]:02d}{hms[1]:02d}{hms[2]:02d}"
        run_id = f"{stamp}-sft-{i:04x}"
        record = {
            "id": run_id, "command": "sft", "recipe": str(folder / "r.toml"), "recipe_name": f"trial-{i}",
            "recipe_sha256": f"{i:064x}", "argv": [*ARGV, "--learning_rate", f"{1e-4 * (1 + i % 7):g}"],
            "env": {"NPROC_PER_NODE": "1", "SWANLAB_RUN_ID": f"run{i}"}, "secrets": ["SWANLAB_API_KEY"],
            "cwd": str(folder), "versions": {"mhsft": "0.1.0", "ms-swift": "4.6.0", "torch": "2.13.0"},
            "started_at": f"2026-11-{1 + day:02d}T{hms[0]:02d}:{hms[1]:02d}:{hms[2]:02d}.000+00:00",
            "status": "succeeded", "ended_at": None, "duration_s": 61.5, "exit_code": 0, "pid": 1000 + i,
            "output_dir": str(folder / "out"), "run_dir": str(folder / "out" / f"v{i}-{stamp}"),
            "swanlab_run_id": f"run{i}", "extra": {"data_check": {"rows": 1000, "kept": 990}},
        }  # fmt: skip
        (runs / f"{run_id}.json").write_text(json.dumps(record, indent=2) + "\n")
        ids.append(run_id)
    return ids


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `python -m mhsft ARGS`; the CPU time tells on a loaded machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mhsft", *args], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"mhsft {' '.join(args)} failed: {result.stderr[-500:]}")
    return elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [3000, 5000]
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            ids = write_records(folder, count)
            middle, other = ids[count // 2], ids[count // 3]
            for args in (["runs"], ["runs", "show", middle], ["runs", "compare", middle, other]):
                wall, cpu = min(timed(args, folder) for _ in range(3))
                shown = " ".join(a if a not in (middle, other) else "ID" for a in args)
                print(f"{count} records: mhsft {shown}: {wall:.2f} s wall, {cpu:.2f} s CPU (best of 3)")


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
