"""The dataset gate's child process: ms-swift's own `swift export --to_cached_dataset true`, then a summary.

Run as `python -m mhsft.datagate.worker SPEC.json EXPORT-ARGS...`. It calls `swift.pipelines.export_main`,
the function the `swift export` command itself runs, so the rows are read, standardised and tokenised exactly
as `swift sft` would (model on the meta device: tokenizer only); `--dataset_num_proc` splits the work over
processes without changing a row. Then it reads the saved dataset back a batch at a time and writes `rows.npz`
beside it (see `rows`): per split, each kept row's source dataset, token count and dialogue fingerprint, and
(with packing) the packed sequence lengths from swift's own packing function. Only this module imports swift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mhsft.datagate.rows import FILE, Split, save
from mhsft.datagate.scan import fingerprint, loads

BATCH = 1000  # rows read back at a time: the read-back's memory does not grow with the dataset


def _turn(message: Any) -> Any:
    """A saved message (swift stores each as a JSON string; the standard module also reads NaN)."""
    if not isinstance(message, str):
        return message
    try:
        return loads(message)
    except ValueError:
        return json.loads(message)


def _texts(messages: Any) -> list[Any]:
    """The non-system turn texts of a saved row."""
    turns = [_turn(m) for m in messages or []]
    return [m.get("content") for m in turns if isinstance(m, dict) and m.get("role") != "system"]


def _split(folder: Path) -> Split | None:
    """Each saved row's token count, fingerprint and dataset, read back BATCH rows at a time."""
    if not folder.is_dir():
        return None
    import numpy as np
    from datasets import load_from_disk

    table = load_from_disk(str(folder)).data
    columns = [c for c in ("lengths", "messages", "dataset") if c in table.column_names]
    lengths = np.empty(table.num_rows, dtype=np.int64)
    sigs = np.zeros(table.num_rows, dtype=np.uint64)
    dataset = np.full(table.num_rows, -1, dtype=np.int32)
    names: dict[str | None, int] = {}
    start = 0
    for batch in table.select(columns).to_batches(max_chunksize=BATCH):
        part = batch.to_pydict()
        end = start + batch.num_rows
        lengths[start:end] = [max(x) if isinstance(x, list) else x for x in part["lengths"]]
        if "messages" in part:
            sigs[start:end] = [fingerprint(_texts(m)) for m in part["messages"]]
        if "dataset" in part:
            dataset[start:end] = [names.setdefault(d, len(names)) for d in part["dataset"]]
        start = end
    return Split(lengths, sigs, dataset, list(names))


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
    splits = {"train": _split(out / "train"), "val": _split(out / "val")}
    train = splits["train"]
    lengths = train.lengths.tolist() if train is not None and spec.get("packing") else None
    save(out / FILE, splits, packed(lengths, spec["packing"]) if lengths is not None else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
