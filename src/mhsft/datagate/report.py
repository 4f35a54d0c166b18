"""The dataset gate's report: rows read, kept and dropped with their causes, token lengths, packing, steps.

`analyse` joins the line scan (rows read, problems by line) with what swift's export kept (`rows.npz`): a
source row whose dialogue fingerprint is not among the kept rows was dropped by swift, for the cause the scan
found on that line or, failing that, because swift's template rejected it. The report is a plain dict (it is
cached as JSON and printed with `--json`); `render` draws it in the terminal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from mhsft.datagate.rows import SPLITS, Split
from mhsft.datagate.scan import EXAMPLES, Cause, FileScan
from mhsft.datagate.spec import GateSpec

REJECTED = "rejected by ms-swift's template"
TOO_LONG = "longer than max_length"
SCHEMA_VERSION = 1
HISTOGRAM_BINS = 12
_SAMPLE = re.compile(r"#\d+$")


def _causes(causes: dict[str, Cause]) -> dict[str, dict[str, Any]]:
    ordered = sorted(causes.items(), key=lambda kv: -kv[1].count)
    return {name: {"count": c.count, "examples": c.examples} for name, c in ordered}


@dataclass
class Kept:
    """The kept rows of one dataset (both splits, in the order swift saved them): token counts, fingerprints."""

    lengths: Any  # numpy int64
    sigs: Any  # numpy uint64

    def __len__(self) -> int:
        return len(self.lengths)


def _rows_of(rows: dict[str, Any], source: str, only: bool) -> Kept:
    """The kept rows that came from dataset `source` (every row when it is the only dataset)."""
    import numpy as np

    parts = [rows[s] for s in SPLITS if rows.get(s) is not None]
    masks = [p.of_source(lambda n: only or n == source or (n and source.startswith(str(n)))) for p in parts]
    lengths = [p.lengths[m] for p, m in zip(parts, masks, strict=True)]
    sigs = [p.sigs[m] for p, m in zip(parts, masks, strict=True)]
    return Kept(_joined(lengths, np.int64), _joined(sigs, np.uint64))


def _joined(arrays: list[Any], dtype: Any) -> Any:
    """numpy arrays end to end (an empty one of `dtype` for none)."""
    import numpy as np

    return np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)


def _ranks(sigs: Any) -> Any:
    """Each row's count of earlier rows with the same fingerprint (0 for a dialogue's first copy)."""
    import numpy as np

    order = np.argsort(sigs, kind="stable")
    ordered = sigs[order]
    ranks = np.empty(len(sigs), dtype=np.int64)
    ranks[order] = np.arange(len(sigs)) - np.searchsorted(ordered, ordered, "left")
    return ranks


def _match(found: FileScan, kept: Kept) -> tuple[Any, Any]:
    """The source line of each kept row (0: not found) and the source lines swift did not keep, in line order.

    Rows with one fingerprint pair up in order (the n-th kept copy of a dialogue is its n-th source line): stable
    sorts and binary searches, so 200k copies of one row cost what 200k different rows do."""
    import numpy as np

    source = np.frombuffer(found.sigs, dtype=np.uint64)
    numbers = np.frombuffer(found.numbers, dtype=np.uint64)
    by_source = np.argsort(source, kind="stable")
    ordered = source[by_source]
    at = np.searchsorted(ordered, kept.sigs, "left") + _ranks(kept.sigs)
    paired = (kept.sigs != 0) & (at < np.searchsorted(ordered, kept.sigs, "right"))
    line_of = np.zeros(len(kept), dtype=np.uint64)
    line_of[paired] = numbers[by_source[at[paired]]]
    used = np.zeros(len(source), dtype=bool)
    used[by_source[at[paired]]] = True
    return line_of, numbers[~used]


def _place(found: FileScan | None, line: int, index: int, entry: str) -> str:
    """Where a kept row is: `file:line` when its line is known, else its place among the kept rows."""
    return found.place(line) if found and line else f"row {index + 1} of {entry}"


def _dataset(entry: str, split: str, found: FileScan | None, kept: Kept, spec: GateSpec) -> tuple[dict[str, Any], Any]:
    """One dataset's part of the report, and the token counts of its rows that training keeps."""
    import numpy as np

    causes: dict[str, Cause] = {}
    warnings: dict[str, Cause] = {}
    line_of = np.zeros(len(kept), dtype=np.uint64)
    read = found.rows if found and not _SAMPLE.search(entry) else len(kept)
    if found is not None and read >= len(kept):
        line_of, lost = _match(found, kept)
        if len(lost) == read - len(kept):  # every kept row found its line: name each dropped one
            for number in lost.tolist():
                causes.setdefault(found.lines.get(number, REJECTED), Cause()).add(found.place(number))
            problems = np.asarray(sorted(found.lines), dtype=np.uint64)
            for number in problems[np.isin(problems, line_of)].tolist():
                warnings.setdefault(found.lines[number], Cause()).add(found.place(number))
        elif read > len(kept):
            causes[REJECTED] = Cause(read - len(kept))
    limit = spec.max_length
    lengths, truncated = kept.lengths, 0
    if limit is not None and spec.truncation != "split":
        over = np.flatnonzero(lengths > limit)
        if spec.truncation == "delete":
            if len(over):
                examples = [
                    f"{_place(found, int(line_of[i]), i, entry)} ({lengths[i]} tokens)" for i in over[:EXAMPLES]
                ]
                causes[TOO_LONG] = Cause(len(over), examples)
            lengths = lengths[lengths <= limit]
        else:
            truncated = len(over)
            lengths = np.minimum(lengths, limit)
        if spec.packing and spec.truncation in ("left", "right"):  # the export ran at max_length: cut rows end there
            truncated += int(np.count_nonzero(lengths == limit))
    part = {
        "name": entry,
        "split": split,
        "read": read,
        "kept": len(lengths),
        "dropped": read - len(lengths),
        "truncated": truncated,
        "causes": _causes(causes),
        "kept_with_problems": _causes(warnings),
    }
    return part, lengths


def _merged(parts: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """The causes under `key` of every dataset, added up (examples: the first few)."""
    total: dict[str, Cause] = {}
    for part in parts:
        for name, cause in part[key].items():
            into = total.setdefault(name, Cause())
            into.count += cause["count"]
            into.examples += cause["examples"][: EXAMPLES - len(into.examples)]
    return _causes(total)


def length_stats(lengths: Sequence[int] | Any, max_length: int | None) -> dict[str, Any]:
    """min/median/p95/p99/max/total of token counts, and a histogram over the rows' range (to max_length when
    that is within twice the longest row, so the limit shows where the rows stand against it)."""
    import numpy as np

    ordered = np.sort(np.asarray(lengths, dtype=np.int64))
    if not len(ordered):
        return {"rows": 0}
    low, high = int(ordered[0]), int(ordered[-1])
    top = max(high, max_length if max_length and max_length <= 2 * high else 0)
    width = max(1, math.ceil((top - low + 1) / HISTOGRAM_BINS))
    count = min(HISTOGRAM_BINS, math.ceil((top - low + 1) / width))
    bins = np.bincount(np.minimum((ordered - low) // width, count - 1), minlength=count).tolist()

    def percentile(q: float) -> int:
        return int(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])

    return {
        "rows": len(ordered),
        "min": low,
        "median": percentile(0.5),
        "p95": percentile(0.95),
        "p99": percentile(0.99),
        "max": high,
        "total_tokens": int(ordered.sum()),
        "histogram": [[low + i * width, low + (i + 1) * width - 1, n] for i, n in enumerate(bins)],
    }


def steps_per_epoch(units: int, sft: dict[str, Any], launch_env: dict[str, str]) -> dict[str, int]:
    """Optimizer steps per epoch for `units` training sequences, as the HF trainer under swift counts them."""
    world = int(launch_env.get("NPROC_PER_NODE", "1")) * int(launch_env.get("NNODES", "1"))
    batch = int(sft.get("per_device_train_batch_size", 1))
    accum = int(sft.get("gradient_accumulation_steps") or max(1, math.ceil(16 / batch / world)))
    batches = math.ceil(units / (batch * world)) if units else 0
    return {
        "processes": world,
        "batch_size": batch,
        "gradient_accumulation_steps": accum,
        "steps_per_epoch": max(batches // accum, 1) if batches else 0,
    }


def _copies(kept: Kept, count: int) -> list[Kept]:
    """The kept rows of a dataset listed `count` times, one share per listing: swift reads it once per listing
    and keeps the same rows each time, so the n-th copy of each row goes to the n-th listing."""
    share = _ranks(kept.sigs) % count
    return [Kept(kept.lengths[share == i], kept.sigs[share == i]) for i in range(count)]


def analyse(
    spec: GateSpec,
    entries: list[tuple[str, str]],
    scans: dict[str, FileScan],
    rows: dict[str, Any],
    sft: dict[str, Any],
    launch_env: dict[str, str],
) -> dict[str, Any]:
    """The whole report for the dataset `entries` ((name as swift gets it, train|val)) and swift's kept `rows`."""
    import numpy as np

    sources = [_SAMPLE.sub("", entry) for entry, _ in entries]
    shares = {s: _copies(_rows_of(rows, s, len(set(sources)) == 1), sources.count(s)) for s in set(sources)}
    parts, lengths = [], []
    for (entry, split), source in zip(entries, sources, strict=True):
        part, kept_lengths = _dataset(entry, split, scans.get(source), shares[source].pop(0), spec)
        parts.append(part)
        lengths.append(kept_lengths)
    total = {k: sum(p[k] for p in parts) for k in ("read", "kept", "dropped", "truncated")}
    train_rows = _kept_in(rows.get("train"), spec)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "datasets": parts,
        "total": total
        | {"causes": _merged(parts, "causes"), "kept_with_problems": _merged(parts, "kept_with_problems")},
        "max_length": spec.max_length,
        "truncation_strategy": spec.truncation,
        "lengths": length_stats(_joined(lengths, np.int64), spec.max_length),
        "train_rows": train_rows,
        "val_rows": _kept_in(rows.get("val"), spec),
        "packing": None,
    }
    if spec.packing and rows.get("packed") is not None:
        packed = rows["packed"]
        size = spec.packing["length"] or 1
        report["packing"] = {
            "sequences": len(packed),
            "packing_length": size,
            "fill_mean": round(sum(packed) / (len(packed) * size), 4) if packed else 0.0,
            "fill_min": round(min(packed) / size, 4) if packed else 0.0,
        }
    report["steps"] = steps_per_epoch(sequences(report), sft, launch_env)
    return report


def sequences(report: dict[str, Any]) -> int:
    """The training sequences of an epoch: packed sequences with packing, else the kept train rows."""
    return report["packing"]["sequences"] if report["packing"] else report["train_rows"]


def _kept_in(part: Split | None, spec: GateSpec) -> int:
    if part is None:
        return 0
    if spec.truncation != "delete" or spec.max_length is None:
        return len(part.lengths)
    return int((part.lengths <= spec.max_length).sum())


def shares(report: dict[str, Any]) -> tuple[float, float]:
    """(dropped share of rows read, truncated share of rows kept)."""
    total = report["total"]
    dropped = total["dropped"] / total["read"] if total["read"] else 0.0
    truncated = total["truncated"] / total["kept"] if total["kept"] else 0.0
    return dropped, truncated


def render(report: dict[str, Any], title: str, out: IO[str] | None = None) -> None:
    """The report in the terminal (or `out`): a table per dataset, the causes, lengths and a histogram."""
    from rich.console import Console
    from rich.table import Table

    from mhsft.ui import clean

    console = Console(highlight=False, file=out)
    table = Table(title=title, title_justify="left")
    for column in ("dataset", "split", "read", "kept", "dropped", "truncated"):
        table.add_column(column, justify="left" if column in ("dataset", "split") else "right", overflow="fold")
    rows = [*report["datasets"], {"name": "total", "split": "", **report["total"]}]
    for part in rows:
        table.add_row(
            clean(str(part["name"])), part["split"], *(str(part[k]) for k in ("read", "kept", "dropped", "truncated"))
        )
    console.print(table)
    for key, verb in (("causes", "dropped"), ("kept_with_problems", "kept, but")):
        for name, cause in report["total"][key].items():
            console.print(f"[bold]{cause['count']} {verb}: {name}[/bold]")
            for example in cause["examples"]:
                console.print(f"  {clean(example)}", markup=False)
    stats = report["lengths"]
    if stats["rows"]:
        console.print(
            f"token lengths of {stats['rows']} kept rows: min {stats['min']}, median {stats['median']}, "
            f"p95 {stats['p95']}, p99 {stats['p99']}, max {stats['max']}, total {stats['total_tokens']} tokens"
        )
        _histogram(console, stats["histogram"], report["max_length"])
    if report["packing"]:
        p = report["packing"]
        console.print(
            f"packing: {p['sequences']} sequences of up to {p['packing_length']} tokens, "
            f"{p['fill_mean']:.0%} full on average (least full {p['fill_min']:.0%})"
        )
    s = report["steps"]
    console.print(
        f"steps per epoch: {s['steps_per_epoch']} ({report['train_rows']} train rows"
        f"{', packed' if report['packing'] else ''}; batch {s['batch_size']} x {s['processes']} process(es) x "
        f"grad-accum {s['gradient_accumulation_steps']}); {report['val_rows']} validation rows"
    )


def _histogram(console: Any, bins: list[list[int]], max_length: int | None) -> None:
    from rich.text import Text

    peak = max(count for _, _, count in bins) or 1
    if max_length is not None and max_length > bins[-1][1]:
        console.print(f"  (max_length {max_length} is above every kept row)")
    for low, high, count in bins:
        bar = "█" * max(1 if count else 0, round(30 * count / peak))
        mark = "  <- max_length" if max_length is not None and low <= max_length <= high else ""
        line = Text(f"  {low:>7}-{high:<7} {count:>7} ")
        line.append(bar, style="cyan")
        line.append(mark, style="bold yellow")
        console.print(line)


def biggest_cause(report: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    causes = report["total"]["causes"]
    return next(iter(causes.items()), None)


def dataset_names(sft: dict[str, Any], localize: Any) -> list[tuple[str, str]]:
    """(name as rendered for swift, split) for every [sft] dataset and val_dataset entry."""
    out = []
    for key, split in (("dataset", "train"), ("val_dataset", "val")):
        value = sft.get(key) or []
        for item in value if isinstance(value, list) else [value]:
            out.append((localize(key, str(item)), split))
    return out


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The short form kept in run records and shown by doctor."""
    stats = report["lengths"]
    return {
        "rows_read": report["total"]["read"],
        "rows_kept": report["total"]["kept"],
        "rows_dropped": report["total"]["dropped"],
        "rows_truncated": report["total"]["truncated"],
        "tokens": {k: stats.get(k) for k in ("min", "median", "p95", "max", "total_tokens")},
        "steps_per_epoch": report["steps"]["steps_per_epoch"],
        "key": report.get("key"),
        "cache_hit": report.get("cache_hit"),
    }
