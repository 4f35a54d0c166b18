"""EvalScope's own report files (`<work_dir>/reports/<model>/<benchmark>.json`) read back, and the base vs
fine-tuned rows built from them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mhsft.errors import MhsftError


@dataclass(frozen=True)
class Score:
    """One benchmark's result for one model: its main metric, every metric, and the number of samples."""

    benchmark: str
    metric: str
    score: float
    samples: int
    metrics: dict[str, float]


def label(identity: dict[str, Any]) -> str:
    """A metric's name with its dimensions, as in EvalScope's table: `rouge-l-recall`, `bleu-1`, `accuracy`."""
    dims = dict(identity.get("dimensions") or {})
    statistic = [dims.pop("statistic")] if "statistic" in dims else []  # last, as EvalScope shows it
    return "-".join(str(v) for v in [identity.get("name", "?"), *dims.values(), *statistic])


def score_of(report: dict[str, Any], benchmark: str) -> Score:
    """The Score in one EvalScope report (its primary metric; the first metric when it names none)."""
    metrics = [m for m in report.get("metrics", []) if isinstance(m, dict) and "identity" in m]
    if not metrics:
        raise ValueError("it holds no metrics")
    primary = report.get("primary_metric_identity")
    main = next((m for m in metrics if m["identity"] == primary), metrics[0])
    return Score(
        benchmark=benchmark,
        metric=label(main["identity"]),
        score=float(main["score"]),
        samples=int(main.get("num") or report.get("num") or 0),
        metrics={label(m["identity"]): float(m["score"]) for m in metrics},
    )


def read(work_dir: Path, model_id: str, benchmarks: list[str]) -> dict[str, Score]:
    """Each benchmark's Score from the report EvalScope wrote; an error naming the file when one is missing."""
    scores = {}
    for name in benchmarks:
        path = work_dir / "reports" / model_id / f"{name}.json"
        try:
            scores[name] = score_of(json.loads(path.read_text(encoding="utf-8")), name)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MhsftError(
                f"EvalScope wrote no usable report {path} ({exc}); its log is {work_dir / 'logs' / 'eval_log.log'}.",
                1,
            ) from None
    return scores


def rows(tuned: dict[str, Score], base: dict[str, Score] | None) -> list[dict[str, Any]]:
    """One row per benchmark: benchmark, metric, base, finetuned, delta, samples (and every metric of both)."""
    out = []
    for name, ft in tuned.items():
        b = base.get(name) if base else None
        out.append(
            {
                "benchmark": name,
                "metric": ft.metric,
                "base": b.score if b else None,
                "finetuned": ft.score,
                "delta": ft.score - b.score if b else None,
                "samples": ft.samples,
                "metrics": {"finetuned": ft.metrics, **({"base": b.metrics} if b else {})},
            }
        )
    return out
