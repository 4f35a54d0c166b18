"""The dataset gate's report: rows read, kept and dropped with their causes, token lengths, packing, steps.

`analyse` joins the line scan (rows read, problems by line) with what swift's export kept (`rows.json`): a
source row whose dialogue fingerprint is not among the kept rows was dropped by swift, for the cause the scan
found on that line or, failing that, because swift's template rejected it. The report is a plain dict (it is
cached as JSON and printed with `--json`); `render` draws it in the terminal.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import IO, Any

from mhsft.datagate.scan import EXAMPLES, Cause, FileScan, signatures
from mhsft.datagate.spec import GateSpec
from mhsft.paths import display

REJECTED = "rejected by ms-swift's template"
TOO_LONG = "longer than max_length"
SCHEMA_VERSION = 1
HISTOGRAM_BINS = 12
_SAMPLE = re.compile(r"#\d+$")


def _causes(causes: dict[str, Cause]) -> dict[str, dict[str, Any]]:
    ordered = sorted(causes.items(), key=lambda kv: -kv[1].count)
    return {name: {"count": c.count, "examples": c.examples} for name, c in ordered}


def _rows_of(rows: dict[str, Any], source: str, only: bool) -> list[tuple[str, int, str | None]]:
    """(split, token count, fingerprint) of the kept rows that came from dataset `source`."""
    out = []
    for split in ("train", "val"):
        part = rows.get(split) or {"dataset": [], "lengths": [], "sig": []}
        for name, length, sig in zip(part["dataset"], part["lengths"], part["sig"], strict=True):
            if only or name == source or (name and source.startswith(str(name))):
                out.append((split, int(length), sig))
    return out


def _match(found: FileScan, kept: list[tuple[str, int, str | None]]) -> tuple[dict[int, int], list[int]]:
    """Source lines of the kept rows (by index in `kept`), and the source lines swift did not keep."""
    by_sig: dict[str | None, list[int]] = defaultdict(list)
    for number, sig in signatures(found.path):
        by_sig[sig].append(number)
    line_of = {}
    for i, (_, _, sig) in enumerate(kept):
        if sig is not None and by_sig.get(sig):
            line_of[i] = by_sig[sig].pop(0)
    return line_of, sorted(n for lines in by_sig.values() for n in lines)


def _dataset(
    entry: str, split: str, found: FileScan | None, kept: list[tuple[str, int, str | None]], spec: GateSpec
) -> tuple[dict[str, Any], list[int]]:
    """One dataset's part of the report, and the token counts of its rows that training keeps."""
    causes: dict[str, Cause] = {}
    warnings: dict[str, Cause] = {}
    line_of: dict[int, int] = {}
    read = found.rows if found and not _SAMPLE.search(entry) else len(kept)
    if found is not None and read >= len(kept):
        line_of, lost = _match(found, kept)
        where = display(found.path)
        if len(lost) == read - len(kept):  # every kept row found its line: name each dropped one
            for number in lost:
                causes.setdefault(found.lines.get(number, REJECTED), Cause()).add(f"{where}:{number}")
            for number in sorted(set(line_of.values()) & found.lines.keys()):
                warnings.setdefault(found.lines[number], Cause()).add(f"{where}:{number}")
        elif read > len(kept):
            causes[REJECTED] = Cause(read - len(kept))
    limit = spec.max_length
    truncated = 0
    lengths: list[int] = []
    for i, (_, length, _) in enumerate(kept):
        if limit is None or length <= limit or spec.truncation == "split":
            lengths.append(length)
        elif spec.truncation == "delete":
            place = f"{display(found.path)}:{line_of[i]}" if found and i in line_of else f"row {i + 1} of {entry}"
            causes.setdefault(TOO_LONG, Cause()).add(f"{place} ({length} tokens)")
        else:
            truncated += 1
            lengths.append(limit)
    if spec.packing and spec.truncation in ("left", "right"):  # the export ran at max_length: cut rows end there
        truncated += sum(1 for n in lengths if n == limit)
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


def _percentile(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def length_stats(lengths: Iterable[int], max_length: int | None) -> dict[str, Any]:
    """min/median/p95/p99/max/total of token counts, and a histogram over the rows' range (to max_length when
    that is within twice the longest row, so the limit shows where the rows stand against it)."""
    ordered = sorted(lengths)
    if not ordered:
        return {"rows": 0}
    low = ordered[0]
    top = max(ordered[-1], max_length if max_length and max_length <= 2 * ordered[-1] else 0)
    width = max(1, math.ceil((top - low + 1) / HISTOGRAM_BINS))
    count = min(HISTOGRAM_BINS, math.ceil((top - low + 1) / width))
    bins = [0] * count
    for n in ordered:
        bins[min(count - 1, (n - low) // width)] += 1
    return {
        "rows": len(ordered),
        "min": ordered[0],
        "median": _percentile(ordered, 0.5),
        "p95": _percentile(ordered, 0.95),
        "p99": _percentile(ordered, 0.99),
        "max": ordered[-1],
        "total_tokens": sum(ordered),
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


def _copies(kept: list[tuple[str, int, str | None]], count: int) -> list[list[tuple[str, int, str | None]]]:
    """The kept rows of a dataset listed `count` times, one share per listing: swift reads it once per listing
    and keeps the same rows each time, so the n-th copy of each row goes to the n-th listing."""
    shares: list[list[tuple[str, int, str | None]]] = [[] for _ in range(count)]
    seen: dict[str | None, int] = defaultdict(int)
    for row in kept:
        shares[seen[row[2]] % count].append(row)
        seen[row[2]] += 1
    return shares


def analyse(
    spec: GateSpec,
    entries: list[tuple[str, str]],
    scans: dict[str, FileScan],
    rows: dict[str, Any],
    sft: dict[str, Any],
    launch_env: dict[str, str],
) -> dict[str, Any]:
    """The whole report for the dataset `entries` ((name as swift gets it, train|val)) and swift's kept `rows`."""
    sources = [_SAMPLE.sub("", entry) for entry, _ in entries]
    shares = {s: _copies(_rows_of(rows, s, len(set(sources)) == 1), sources.count(s)) for s in set(sources)}
    parts, lengths = [], []
    for (entry, split), source in zip(entries, sources, strict=True):
        part, kept_lengths = _dataset(entry, split, scans.get(source), shares[source].pop(0), spec)
        parts.append(part)
        lengths += kept_lengths
    total = {k: sum(p[k] for p in parts) for k in ("read", "kept", "dropped", "truncated")}
    train_rows = _kept_in(rows.get("train"), spec)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "datasets": parts,
        "total": total
        | {"causes": _merged(parts, "causes"), "kept_with_problems": _merged(parts, "kept_with_problems")},
        "max_length": spec.max_length,
        "truncation_strategy": spec.truncation,
        "lengths": length_stats(lengths, spec.max_length),
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


def _kept_in(part: dict[str, Any] | None, spec: GateSpec) -> int:
    if not part:
        return 0
    if spec.truncation != "delete" or spec.max_length is None:
        return len(part["lengths"])
    return sum(1 for n in part["lengths"] if n <= spec.max_length)


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
