"""The base vs fine-tuned benchmark table of a run (`extra.eval` of its record, written by `mhsft eval`)."""

from __future__ import annotations

from typing import Any

HEADER = ["benchmark", "metric", "base", "fine-tuned", "delta", "samples"]


def _num(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else f"{value:+.4f}" if signed else f"{value:.4f}"


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The header and cells: scores to 4 places, a signed delta, `-` where there is no base score."""
    cells = [
        [
            str(r.get("benchmark")),
            str(r.get("metric")),
            _num(r.get("base")),
            _num(r.get("finetuned")),
            _num(r.get("delta"), True),
            str(r.get("samples")),
        ]
        for r in rows
    ]
    return HEADER, cells


def headline(evaluation: dict[str, Any] | None) -> str | None:
    """`general_qa rouge-l-recall 0.1200 -> 0.3400 (+0.2200); ...` for one line, or None without results."""
    if not isinstance(evaluation, dict) or not evaluation.get("benchmarks"):
        return None
    parts = []
    for r in evaluation["benchmarks"]:
        base = f"{_num(r.get('base'))} -> " if r.get("base") is not None else ""
        delta = f" ({_num(r.get('delta'), True)})" if r.get("delta") is not None else ""
        parts.append(f"{r.get('benchmark')} {r.get('metric')} {base}{_num(r.get('finetuned'))}{delta}")
    return "; ".join(parts)
