"""The dataset gate's child process: ms-swift's own `swift export --to_cached_dataset true`, then a summary.

Run as `python -m mhsft.datagate.worker SPEC.json EXPORT-ARGS...`. It calls `swift.pipelines.export_main`,
the function the `swift export` command itself runs, so the rows are read, standardised and tokenised exactly
as `swift sft` would (model on the meta device: tokenizer only). Then it reads the saved dataset back and
writes `rows.json` beside it: per split, each kept row's source dataset, token count and dialogue fingerprint,
and (with packing) the packed sequence lengths from swift's own packing function. Only this module imports
swift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mhsft.datagate.scan import fingerprint


def _texts(messages: Any) -> list[Any]:
    """The non-system turn texts of a saved row (swift stores each message as a JSON string)."""
    turns = [json.loads(m) if isinstance(m, str) else m for m in messages or []]
    return [m.get("content") for m in turns if isinstance(m, dict) and m.get("role") != "system"]


def _split(folder: Path) -> dict[str, list[Any]] | None:
    if not folder.is_dir():
        return None
    from datasets import load_from_disk

    table = load_from_disk(str(folder)).data
    lengths = [max(x) if isinstance(x, list) else x for x in table.column("lengths").to_pylist()]
    none = [None] * len(lengths)
    names = table.column_names
    return {
        "dataset": table.column("dataset").to_pylist() if "dataset" in names else none,
        "lengths": lengths,
        "sig": [fingerprint(_texts(m)) for m in table.column("messages").to_pylist()] if "messages" in names else none,
    }


def packed(lengths: list[int], packing: dict[str, Any]) -> list[int]:
    """Packed sequence lengths, as swift's PackingDataset makes them (batches of 1000, one process)."""
    from swift.dataset.packing import PackingDataset, calculate_matched_group

    limit, strategy = packing["max_length"], packing["truncation"]
    if strategy == "delete":
        rows = [(i, n) for i, n in enumerate(lengths) if n <= limit]
    else:
        rows = [(i, min(n, limit)) for i, n in enumerate(lengths)]
    out: list[int] = []
    pending: list[tuple[int, int]] = []
    step = PackingDataset.PACKING_BATCH_SIZE
    for start in range(0, max(len(rows), 1), step):
        pending += rows[start : start + step]
        groups, pending = calculate_matched_group(
            pending, packing["length"], is_finished=start + step >= len(rows), strategy=packing["strategy"]
        )
        out += [sum(n for _, n in group) for group in groups]
    return out


def main(spec_path: str, argv: list[str]) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    from swift.pipelines import export_main

    export_main(argv)
    out = Path(spec["out"])
    summary: dict[str, Any] = {"train": _split(out / "train"), "val": _split(out / "val")}
    if spec.get("packing") and summary["train"]:
        summary["packed"] = packed(summary["train"]["lengths"], spec["packing"])
    (out / "rows.json").write_text(json.dumps(summary), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
