"""The rehearsal's datasets: the longest kept rows of the gate's cached datasets, longest first.

Picking the rows needs only the gate's `rows.npz`; copying them (`datasets`' `select` + `save_to_disk`) runs
in a child process (`python -m mhsft.rehearse.subset SPEC.json`) so that mhsft itself never imports datasets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mhsft.errors import MhsftError

COPY_TIMEOUT_S = 600


def longest(lengths: list[int], count: int, max_length: int | None, truncation: str | None) -> list[int]:
    """Indices of the `count` longest rows, longest first (repeated when there are fewer rows).

    With `truncation_strategy = "delete"` a row longer than max_length is dropped by swift, so it is never picked.
    """
    usable = [i for i, n in enumerate(lengths) if truncation != "delete" or max_length is None or n <= max_length]
    order = sorted(usable, key=lambda i: -lengths[i])
    if not order or count <= 0:
        return []
    return (order * -(-count // len(order)))[:count]


def copy_rows(source: str, indices: list[int], out: Path) -> Path:
    """Save the rows `indices` of the arrow dataset at `source` to `out`, in that order (in a child process)."""
    spec = out.with_suffix(".json")
    spec.write_text(json.dumps({"source": source, "indices": indices, "out": str(out)}), encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mhsft.rehearse.subset", str(spec)],
            capture_output=True,
            text=True,
            timeout=COPY_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise MhsftError(
            f"copying the longest rows of {source} took over {COPY_TIMEOUT_S} s; nothing was trained."
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MhsftError(f"could not copy the longest rows of {source} into {out}: {last}. Nothing was trained.")
    return out


def main(spec_path: str) -> int:
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    from datasets import load_from_disk

    load_from_disk(spec["source"]).select(spec["indices"]).save_to_disk(spec["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
