"""What swift logged for a training run: `logging.jsonl` (train and eval rows, the final line) and checkpoints."""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsft.runs import checkpoints

try:  # orjson reads a long log about 4x faster than the standard json module
    from orjson import loads as fast_loads
except ImportError:  # pragma: no cover
    from json import loads as fast_loads

_PROGRESS_KEYS = ("global_step/max_steps", "elapsed_time", "remaining_time", "train_speed(s/it)", "epoch")


@dataclass
class History:
    """Loss series `[(step, value)]`, the final metrics, progress, and the best/last checkpoints swift named."""

    train: list[tuple[int, float]] = field(default_factory=list)
    eval: list[tuple[int, float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    best: str | None = None
    last: str | None = None

    def loss_at(self, series: str, step: int, exact: bool = False) -> float | None:
        """The value logged at `step` in `train` or `eval` (the newest at or before it; `exact`: at it), or None."""
        logged = getattr(self, series)
        at = bisect.bisect_right(logged, step, key=lambda point: point[0])
        if not at or (exact and logged[at - 1][0] != step):
            return None
        return logged[at - 1][1]

    def finite(self) -> History:
        """The loss series without their nan/inf points (what a curve can draw)."""
        kept = {name: [(s, v) for s, v in getattr(self, name) if math.isfinite(v)] for name in ("train", "eval")}
        return History(train=kept["train"], eval=kept["eval"])

    def divergence(self) -> str | None:
        """A warning when a logged loss is nan or inf (the run diverged), naming the first such step."""
        bad = [(s, v, name) for name in ("train", "eval") for s, v in getattr(self, name) if not math.isfinite(v)]
        if not bad:
            return None
        step, value, name = min(bad, key=lambda b: b[0])
        return (
            f"the {name} loss is {value} at step {step}: the run diverged; checkpoints saved from then on may hold "
            "broken weights (lower the learning rate, or resume from a checkpoint before it)."
        )


def _parse(line: bytes) -> Any:
    """One JSON line: orjson, else the standard module (which also reads swift's NaN/Infinity); None if garbled."""
    try:
        return fast_loads(line)
    except ValueError:
        pass
    try:
        return json.loads(line)
    except ValueError:
        return None


def _objects(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a jsonl file, streamed line by line; a line being written (or garbled) is skipped."""
    try:
        with path.open("rb") as f:
            for line in f:
                if isinstance(row := _parse(line), dict):
                    yield row
    except OSError:
        return


def rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a jsonl file; a line being written (or garbled) is skipped."""
    return list(_objects(path))


def _step(row: dict[str, Any]) -> tuple[int, int] | None:
    """(step, max_steps) from swift's `global_step/max_steps` ("12/20")."""
    done, _, total = str(row.get("global_step/max_steps")).partition("/")
    try:
        return int(done), int(total)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    """A logged number, nan and inf included (a diverged run logs them); None for anything else."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def json_safe(value: Any) -> Any:
    """`value` with each nan/inf float as the string "nan", "inf" or "-inf" (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _add(series: list[tuple[int, float]], step: int, value: float) -> None:
    """Append a point; a step logged again (a run resumed from an earlier checkpoint) replaces the points from it
    on, so a series stays in step order."""
    while series and series[-1][0] >= step:
        series.pop()
    series.append((step, value))


def read(run_dir: Path) -> History:
    """Parse `run_dir/logging.jsonl` in one streamed pass (a run still going has only some of it)."""
    history = History()
    newest: tuple[dict[str, Any], tuple[int, int]] | None = None  # the last row with a step: the progress
    for row in _objects(run_dir / "logging.jsonl"):
        step = _step(row)
        if step is not None:
            newest = row, step
        if step is not None and (loss := _number(row.get("loss"))) is not None:
            _add(history.train, step[0], loss)
        elif step is not None and (loss := _number(row.get("eval_loss"))) is not None:
            _add(history.eval, step[0], loss)
            history.metrics |= {k: v for k, v in row.items() if k.startswith("eval_")}
        elif "train_runtime" in row or "train_loss" in row:
            history.metrics |= {k: v for k, v in row.items() if k not in _PROGRESS_KEYS}
        if "last_model_checkpoint" in row or "best_model_checkpoint" in row:
            history.last = row.get("last_model_checkpoint") or history.last
            history.best = row.get("best_model_checkpoint") or history.best
            history.metrics |= {k: row[k] for k in ("best_metric", "global_step") if k in row}
    if newest is not None:
        row, (done, total) = newest
        history.progress = {"step": done, "max_steps": total} | {
            k: row[k] for k in ("elapsed_time", "remaining_time") if k in row
        }
    if history.train:
        history.metrics["last_loss"] = history.train[-1][1]
    return history


def checkpoint_rows(run_dir: Path, history: History) -> list[dict[str, Any]]:
    """Each complete checkpoint with its step, the train/eval loss logged at that step, and best/last marks."""
    best = checkpoints.best(run_dir)
    last = checkpoints.latest(run_dir)
    rows = []
    for path in checkpoints.checkpoints(run_dir):
        step = int(path.name.split("-")[1])
        rows.append(
            {
                "path": str(path),
                "step": step,
                "train_loss": history.loss_at("train", step),
                "eval_loss": history.loss_at("eval", step, exact=True),
                "best": best is not None and path.resolve() == best.resolve(),
                "last": last is not None and path.resolve() == last.resolve(),
            }
        )
    return rows
